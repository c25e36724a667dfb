// SPDX-License-Identifier: MIT
/*
 * test_config_apply_crash.c - `herald config apply` is one transaction: killed (SIGKILL, at the
 * library's fault points, HERALD_FAULT) just before its commit, nothing of the configuration is
 * in the store - no queue, no topic, no catalog version - and applying again works; killed just
 * after it, all of it is. The apply is a process of its own (fork + exec of the herald binary);
 * the test reads the store through herald.h after the kill.
 * Rules: the parent never has a store open across fork(); every wait is bounded.
 */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "herald.h"
#include "support.h"

static char *g_dir;
static char g_cfg[4200], g_url[4200];

static void write_in(const char *name, const char *text)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

static void setup(void)
{
    g_dir = hx_tmpdir();
    snprintf(g_url, sizeof g_url, "sqlite:%s/h.db", g_dir);
    snprintf(g_cfg, sizeof g_cfg, "%s/herald.jsonc", g_dir);
    write_in("events.jsonc", "{ \"events\": { \"content.ready\": { \"payload\": {\n"
                             "  \"content_id\": \"string\" } } } }\n");
    write_in("herald.jsonc", "{ \"catalog\": { \"file\": \"events.jsonc\" },\n"
                             "  \"queues\": [ { \"name\": \"a\" }, { \"name\": \"b\" } ],\n"
                             "  \"topics\": { \"t\": [\"a\", \"b\"] } }\n");
}

static void teardown(void)
{
    hx_rmrf(g_dir);
    free(g_dir);
}

TestSuite(config_apply_crash, .init = setup, .fini = teardown, .timeout = 120);

/* Runs `herald --store URL config apply CFG` with HERALD_FAULT=fault; asserts it was killed. */
static void apply_killed_at(const char *fault)
{
    const char *argv[] = { hx_herald_bin(), "--store", g_url, "config", "apply", g_cfg, NULL };
    pid_t pid = hx_exec_worker(argv, fault);
    int st = hx_reap(pid, 60000);
    hx_assert_killed(st, fault, "the apply exited by itself");
}

/* What of the configuration is in the store: queues a and b, topic t, catalog version. */
static void inspect(int *n_queues, size_t *n_topics, int64_t *version)
{
    herald_store *s = NULL;
    cr_assert_eq(herald_store_open(g_url, NULL, &s), 0, "%s", herald_last_error());
    herald_queue_info qi;
    *n_queues = (herald_queue_get(s, "a", &qi) == 0) + (herald_queue_get(s, "b", &qi) == 0);
    herald_topic_info *t = NULL;
    cr_assert_eq(herald_topic_list(s, &t, n_topics), 0);
    herald_topic_list_free(t, *n_topics);
    cr_assert_eq(herald_store_catalog_get(s, version, NULL, NULL), 0);
    herald_store_close(s);
}

Test(config_apply_crash, killed_before_its_commit_an_apply_leaves_nothing_and_can_run_again)
{
    apply_killed_at("store.before_commit");
    int n_queues;
    size_t n_topics;
    int64_t version;
    inspect(&n_queues, &n_topics, &version);
    cr_assert_eq(n_queues, 0, "%d queues of a killed apply are in the store", n_queues);
    cr_assert_eq(n_topics, 0);
    cr_assert_eq(version, 0, "a catalog version of a killed apply is in the store");
    const char *argv[] = { "--store", g_url, "config", "apply", g_cfg, NULL };
    char *err = NULL;
    cr_assert_eq(hx_cli(argv, NULL, NULL, &err), 0, "apply after the crash: %s", err);
    free(err);
    inspect(&n_queues, &n_topics, &version);
    cr_assert(n_queues == 2 && n_topics == 1 && version == 1);
}

Test(config_apply_crash, killed_after_its_commit_an_apply_is_whole)
{
    apply_killed_at("store.after_commit");
    int n_queues;
    size_t n_topics;
    int64_t version;
    inspect(&n_queues, &n_topics, &version);
    cr_assert(n_queues == 2 && n_topics == 1 && version == 1,
              "queues %d, topics %zu, catalog version %lld", n_queues, n_topics,
              (long long)version);
}
