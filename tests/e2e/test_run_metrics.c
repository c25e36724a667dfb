// SPDX-License-Identifier: MIT
/*
 * test_run_metrics.c - `herald metrics` after `herald run` routed messages: the routers that
 * `herald run` starts record handler metrics (count, outcome, latency) per source queue and
 * event type, with no middleware to configure. Messages come from another process (`herald
 * send`); the test waits for the drain with herald_queue_wait_empty, which a third process (the
 * router) causes.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "support.h"

static char g_cfg[4200];

static void setup(void)
{
    hx_e2e_setup();
    snprintf(g_cfg, sizeof g_cfg, "%s/herald.jsonc", hx_e2e.dir);
    FILE *f = fopen(g_cfg, "w");
    cr_assert_not_null(f);
    fputs("{ \"queues\": [ { \"name\": \"events\" }, { \"name\": \"a\" } ],\n"
          "  \"routes\": [ { \"from\": \"events\", \"type\": \"x.*\", \"to\": [\"a\"] } ] }\n",
          f);
    fclose(f);
}

TestSuite(run_metrics, .init = setup, .fini = hx_e2e_teardown, .timeout = 120);

static pid_t start_run(void)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execl(hx_herald_bin(), hx_herald_bin(), "--store", hx_e2e.url, "run", "--config", g_cfg,
              (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* The count of the metric (queue, type, outcome) in `herald metrics --json`, 0 if absent. */
static json_int_t metric_count(const char *queue, const char *type, const char *outcome)
{
    json_t *arr = JSON(NULL, "metrics", "--json");
    cr_assert(json_is_array(arr));
    json_int_t n = 0;
    size_t i;
    json_t *m;
    json_array_foreach(arr, i, m)
    {
        if (strcmp(hx_json_str(m, "queue"), queue) == 0 &&
            strcmp(hx_json_str(m, "type"), type) == 0 &&
            strcmp(hx_json_str(m, "outcome"), outcome) == 0) {
            n = hx_json_int(m, "count");
            cr_assert(json_is_array(json_object_get(m, "buckets")), "no latency histogram");
        }
    }
    json_decref(arr);
    return n;
}

/* Opens the store once it exists (*s keeps the handle) and says whether queue q is there. */
static bool queue_exists(herald_store **s, const char *q)
{
    herald_queue_info qi;
    if (!*s && herald_store_open(hx_e2e.url, NULL, s) != 0)
        return false;
    return herald_queue_get(*s, q, &qi) == 0;
}

Test(run_metrics, herald_metrics_shows_what_the_routers_of_herald_run_handled)
{
    json_t *before = JSON(NULL, "metrics", "--json");
    cr_assert_eq(json_array_size(before), 0, "a fresh store has metrics");
    json_decref(before);
    pid_t pid = start_run();
    herald_store *s = NULL;
    /* `herald send` creates nothing: wait for `herald run` to have applied the queues */
    HX_AWAIT(queue_exists(&s, "a"));
    for (int i = 0; i < 5; i++)
        OKV(NULL, "send", "events", "--type", "x.made", "--source", "t", "{\"i\":1}");
    for (int i = 0; i < 3; i++)
        OKV(NULL, "send", "events", "--type", "y.other", "--source", "t", "{\"i\":2}");

    /* drained by the router in the other process: wait_empty sees it through data_version */
    cr_assert_eq(herald_queue_wait_empty(s, "events", 60000), 0, "%s", herald_last_error());
    cr_assert_eq(hx_stats(s, "a").backlog_count, 5);
    /* while it runs, the metrics are written about once a second */
    HX_AWAIT(metric_count("events", "x.made", "ok") >= 5);
    cr_assert_eq(metric_count("events", "x.made", "ok"), 5, "each routed message counted once");
    herald_store_close(s);

    kill(pid, SIGTERM);
    int st = 0;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* after the stop: everything written, each message once */
    cr_assert_eq(metric_count("events", "x.made", "ok"), 5);
    cr_assert_eq(metric_count("events", "y.other", "ok"), 3, "unrouted messages are handled too");
    char *text = OK(NULL, "metrics");
    cr_assert(strstr(text, "x.made"), "%s", text);
    free(text);
}
