// SPDX-License-Identifier: MIT
/*
 * test_run.c - `herald run` as a user runs it: it applies herald.jsonc, routes events while
 * running, exits 0 after SIGTERM once in-flight batches are done; and a kill -9 in the middle of
 * routing loses and duplicates nothing once it runs again.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support.h"

static hx_env g_env;
static char g_url[4200], g_cfg[4200];

static void setup(void)
{
    hx_env_setup(&g_env, HX_ENV_NO_STORE | HX_ENV_REAL_CLOCK);
    snprintf(g_url, sizeof g_url, "sqlite:%s/run.db", g_env.dir);
    snprintf(g_cfg, sizeof g_cfg, "%s/herald.jsonc", g_env.dir);
    FILE *f = fopen(g_cfg, "w");
    cr_assert_not_null(f);
    fputs("{ \"queues\": [ { \"name\": \"events\" }, { \"name\": \"a\" }, { \"name\": \"b\" } ],\n"
          "  \"routes\": [ { \"from\": \"events\", \"type\": \"x.*\", \"to\": [\"a\", \"b\"] } ] }\n",
          f);
    fclose(f);
}

static void teardown(void)
{
    hx_env_teardown(&g_env);
}

TestSuite(run, .init = setup, .fini = teardown, .timeout = 120);

static pid_t start_run(void)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        char log[4300]; /* kept for the failure messages below */
        snprintf(log, sizeof log, "%s/run.log", g_env.dir);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0)
            dup2(fd, 2);
        execl(hx_herald_bin(), hx_herald_bin(), "--store", g_url, "run", "--config", g_cfg,
              (char *)NULL);
        _exit(127);
    }
    return pid;
}

static herald_store *open_store(void)
{
    herald_store *s = NULL;
    cr_assert_eq(herald_store_open(g_url, NULL, &s), 0, "%s", herald_last_error());
    return s;
}

/* The last lines `herald run` wrote to stderr (all runs of this test), for failure messages. */
static const char *run_log(void)
{
    static char tail[2048];
    char path[4300];
    snprintf(path, sizeof path, "%s/run.log", g_env.dir);
    tail[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return "(no output)";
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, size > (long)sizeof tail - 1 ? size - (long)sizeof tail + 1 : 0, SEEK_SET);
    size_t n = fread(tail, 1, sizeof tail - 1, f);
    tail[n] = 0;
    fclose(f);
    return n ? tail : "(no output)";
}

/* Waits until `herald run` has applied the configuration (its queues exist). */
static void wait_configured(void)
{
    for (int i = 0; i < 3000; i++) { /* 30 s: a loaded CI machine starts slowly */
        herald_store *s = NULL;
        if (herald_store_open(g_url, NULL, &s) == 0) {
            herald_queue_info qi;
            bool ok = herald_queue_get(s, "b", &qi) == 0;
            herald_store_close(s);
            if (ok)
                return;
        }
        hx_sleep_ms(10);
    }
    cr_assert_fail("herald run did not apply its configuration; its stderr:\n%s", run_log());
}

static void send_events(herald_store *s, int from, int n)
{
    for (int i = from; i < from + n;) {
        herald_msg msgs[100];
        char *bodies[100];
        int k = 0;
        for (; k < 100 && i < from + n; k++, i++) {
            char payload[64];
            snprintf(payload, sizeof payload, "{\"i\":%d}", i);
            herald_event e = { .type = "x.y", .source = "test", .payload_json = payload };
            size_t len = 0;
            cr_assert_eq(herald_event_encode(s, &e, NULL, &bodies[k], &len), 0);
            msgs[k] = (herald_msg){ .body = bodies[k], .body_len = len,
                                    .content_type = HERALD_CONTENT_JSON,
                                    .delay_s = HERALD_UNSET };
        }
        cr_assert_eq(herald_send_batch(s, "events", msgs, (size_t)k, HERALD_UNSET, NULL), 0);
        for (int j = 0; j < k; j++)
            herald_free(bodies[j]);
    }
}

static void wait_backlog(herald_store *s, const char *q, int64_t n)
{
    HX_AWAIT(hx_stats(s, q).backlog_count == n);
}

Test(run, routes_while_running_and_exits_0_on_sigterm)
{
    pid_t pid = start_run();
    wait_configured();
    herald_store *s = open_store();
    send_events(s, 0, 20);
    wait_backlog(s, "events", 0);
    wait_backlog(s, "a", 20);
    wait_backlog(s, "b", 20);
    herald_store_close(s);
    kill(pid, SIGTERM);
    int st = 0;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "herald run did not exit 0 on SIGTERM");
}

Test(run, kill_9_while_routing_loses_and_duplicates_nothing)
{
    /* Configure first (a short run), queue 20000 events while nothing routes, then kill the
     * router as soon as it has routed some of them: in the middle of its work. */
    pid_t pid = start_run();
    wait_configured();
    kill(pid, SIGTERM);
    int st0 = 0;
    waitpid(pid, &st0, 0);
    herald_store *s = open_store();
    send_events(s, 0, 20000);
    pid = start_run();
    for (int i = 0; i < 20000 && hx_stats(s, "a").backlog_count == 0; i++)
        hx_sleep_us(200);
    kill(pid, SIGKILL); /* before anything else: closing the store takes a checkpoint */
    herald_store_close(s);
    int st = 0;
    waitpid(pid, &st, 0);
    cr_assert(WIFSIGNALED(st));
    s = open_store();
    int64_t routed_before = hx_stats(s, "a").backlog_count;
    herald_store_close(s);
    /* Routers are effectively-once consumers: a batch in flight at the kill was never leased,
     * only taken inside a transaction that died with the process, so the next run routes it
     * at once. Run again and wait (bounded). */
    pid = start_run();
    s = open_store();
    for (int i = 0; i < 12000 && hx_stats(s, "events").backlog_count > 0; i++)
        hx_sleep_ms(5);
    kill(pid, SIGTERM);
    waitpid(pid, &st, 0);
    cr_assert_lt(routed_before, 20000, "the kill came after all routing: the test proves nothing");
    cr_assert_eq(hx_stats(s, "a").backlog_count, 20000, "lost or duplicated (had %lld at the kill)",
                 (long long)routed_before);
    cr_assert_eq(hx_stats(s, "b").backlog_count, 20000);
    cr_assert_eq(hx_stats(s, "events").backlog_count, 0);
    herald_store_close(s);
}
