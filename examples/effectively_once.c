// SPDX-License-Identifier: MIT
/*
 * effectively_once.c - an effectively-once handler with a natural-key write.
 * The handler records research results keyed by (brand, keyword) with INSERT ... ON CONFLICT DO
 * NOTHING - idempotent in the database itself (the reference architecture's "natural business
 * key" strategy) - and emits research.completed in the same transaction as the ack. The same
 * event is sent twice on purpose: Herald's processed-event record skips the duplicate, and even
 * without it the natural key would keep one row.
 * Usage: herald_example_eo [STORE_URL]   (default: a store in a temp directory under $TMPDIR or
 * /tmp, removed at exit)
 * Build it against an installed Herald:  cc effectively_once.c $(pkg-config --cflags --libs herald)
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* mkdtemp, dirent: with a plain -std=c11 too */
#endif
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "herald.h"

static int on_research(herald_tx *tx, const herald_message *m, const herald_envelope *env,
                       void *ud)
{
    (void)m;
    (void)ud;
    if (!env)
        return HERALD_FAIL_PERMANENT; /* not an event: nothing sensible to do */
    herald_arg args[] = { HERALD_ARG_S("niche-fi"), HERALD_ARG_S(env->payload_json) };
    int64_t changes = 0;
    int rc = herald_tx_exec(tx,
                            "INSERT INTO research (brand, request) VALUES (?, ?) "
                            "ON CONFLICT (brand, request) DO NOTHING",
                            args, 2, &changes);
    if (rc < 0)
        return rc;
    herald_event done = { .type = "research.completed", .source = "gatherfeed",
                          .payload_json = "{\"brand_slug\":\"niche-fi\",\"research_ids\":[]}" };
    return herald_tx_send_event(tx, "brand-events", &done, NULL);
}

static herald_store *store;                  /* the example's store */
static char temp_dir[256]; /* $TMPDIR/herald-eo-XXXXXX: removed at exit if the example made it */
static int made_temp_dir;

/* Closes the store, then removes the temp dir and the store files in it. */
static void cleanup(void)
{
    herald_store_close(store);
    store = NULL;
    if (!made_temp_dir)
        return;
    DIR *d = opendir(temp_dir);
    if (d) {
        for (struct dirent *e; (e = readdir(d)) != NULL;) {
            char path[512];
            snprintf(path, sizeof path, "%s/%s", temp_dir, e->d_name);
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
                unlink(path);
        }
        closedir(d);
    }
    rmdir(temp_dir);
}

/* Exits with the library's message when a call failed (ok_rc: one failure that is fine). */
static void must(int rc, int ok_rc, const char *what)
{
    if (rc < 0 && rc != ok_rc) {
        fprintf(stderr, "%s: %s: %s\n", what, herald_err_name(rc), herald_last_error());
        cleanup();
        exit(1);
    }
}

int main(int argc, char **argv)
{
    char url[300];
    const char *tmp = getenv("TMPDIR");
    snprintf(temp_dir, sizeof temp_dir, "%s/herald-eo-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (argc > 1) {
        snprintf(url, sizeof url, "%s", argv[1]);
    } else if (mkdtemp(temp_dir)) {
        made_temp_dir = 1;
        snprintf(url, sizeof url, "sqlite:%s/eo.db", temp_dir);
    } else {
        perror("mkdtemp");
        return 1;
    }
    printf("effectively-once example on %s\n", url);
    must(herald_store_open(url, NULL, &store), 0, "open");
    must(herald_sql_exec(store,
                         "CREATE TABLE IF NOT EXISTS research (brand TEXT NOT NULL, request TEXT "
                         "NOT NULL, PRIMARY KEY (brand, request))",
                         NULL, 0, NULL),
         0, "create table");
    must(herald_queue_create(store, "research-commands", NULL), HERALD_EEXIST, "create queue");
    must(herald_queue_create(store, "brand-events", NULL), HERALD_EEXIST, "create queue");
    herald_event req = { .event_id = "01a21a8a-86ce-7049-952d-70f1da8c7c28",
                         .type = "research.requested", .source = "brand-agent",
                         .payload_json = "{\"keywords\":[\"budgeting apps\"]}" };
    must(herald_send_event(store, "research-commands", &req, HERALD_UNSET, NULL), 0, "send");
    must(herald_send_event(store, "research-commands", &req, HERALD_UNSET, NULL), 0, "send again");

    herald_consumer_cfg cfg;
    herald_consumer_cfg_init(&cfg);
    const char *queues[] = { "research-commands" };
    cfg.queues = queues;
    cfg.n_queues = 1;
    cfg.tx_handler = on_research;
    cfg.max_batch_timeout_ms = 0;
    herald_consumer *c = NULL;
    must(herald_consumer_start(store, &cfg, &c), 0, "consumer");
    int wrc = herald_queue_wait_empty(store, "research-commands", 10000); /* both handled */
    herald_consumer_stop(c);
    must(wrc, 0, "wait for the consumer");
    herald_queue_stats ev = { 0 };
    must(herald_queue_stats_get(store, "brand-events", &ev), 0, "stats");
    printf("2 deliveries of one event -> %lld research.completed event (the duplicate was "
           "skipped)\n",
           (long long)ev.backlog_count);
    cleanup();
    return ev.backlog_count == 1 ? 0 : 1;
}
