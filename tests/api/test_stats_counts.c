// SPDX-License-Identifier: MIT
/*
 * test_stats_counts.c - herald_queue_stats_get reads counts the store keeps (migration 0013)
 * instead of counting rows: after every kind of insert and delete - send, publish, pull + ack,
 * retry, dead-lettering, redrive with an edit that changes the size, consumer acks (plain,
 * traced, effectively-once), purge, acks of messages already gone, retention - the backlog
 * count and bytes equal what peek finds, and a store of schema 11 with messages gets its
 * counts when it is upgraded.
 */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/migrations.h"
#include "support.h"

static hx_env g_env;
#define S (g_env.store)

static void setup(void)
{
    hx_env_setup(&g_env, 0);
}

static void teardown(void)
{
    hx_env_teardown(&g_env);
}

TestSuite(stats_counts, .init = setup, .fini = teardown, .timeout = 60);

/* The stats of q must agree with its messages as peek lists them (at most 100 here). */
static void check(const char *q, int64_t want_count)
{
    herald_batch b = { 0 };
    cr_assert_eq(herald_peek(S, q, 100, &b), 0, "%s", herald_last_error());
    int64_t bytes = 0, oldest = 0;
    for (size_t i = 0; i < b.n; i++) {
        bytes += (int64_t)b.msgs[i].body_len;
        if (!oldest || b.msgs[i].timestamp_ms < oldest)
            oldest = b.msgs[i].timestamp_ms;
    }
    herald_queue_stats st = hx_stats(S, q);
    cr_assert_eq((int64_t)b.n, want_count, "%s: peek finds %zu", q, b.n);
    cr_assert_eq(st.backlog_count, want_count, "%s: backlog_count %lld, want %lld", q,
                 (long long)st.backlog_count, (long long)want_count);
    cr_assert_eq(st.backlog_bytes, bytes, "%s: backlog_bytes %lld, peek sums %lld", q,
                 (long long)st.backlog_bytes, (long long)bytes);
    cr_assert_eq(st.visible_count + st.delayed_count + st.leased_count, st.backlog_count);
    cr_assert_eq(st.oldest_message_timestamp_ms, oldest, "%s: oldest", q);
    herald_batch_deinit(&b);
}

static void send_body(const char *q, const char *body)
{
    herald_msg m = HERALD_MSG_INIT;
    m.body = body;
    m.body_len = strlen(body);
    cr_assert_eq(herald_send(S, q, &m, NULL), 0, "%s", herald_last_error());
}

static void mkq(const char *name, int64_t max_retries, const char *dlq, int64_t retention_s)
{
    herald_queue_settings st;
    herald_queue_settings_init(&st);
    if (max_retries != HERALD_UNSET)
        st.max_retries = max_retries;
    st.dead_letter_queue = dlq;
    if (retention_s != HERALD_UNSET)
        st.message_retention_period_s = retention_s;
    hx_create_queue(S, name, &st);
}

static int ack_all(herald_delivery *d, void *ud)
{
    (void)d;
    (void)ud;
    return 0;
}

Test(stats_counts, pull_ack_retry_dead_letter_redrive_publish_and_purge_keep_the_counts)
{
    mkq("q", 0, "dlq", HERALD_UNSET);
    check("q", 0);
    const char *bodies[] = { "1", "[22]", "{\"a\":333}", "\"4444\"", "[5,5,5,5,5]" };
    for (int i = 0; i < 5; i++) {
        send_body("q", bodies[i]);
        hx_clock_advance(&g_env.clock, 1000);
    }
    herald_msg delayed = HERALD_MSG_INIT;
    delayed.body = "{\"later\":true}";
    delayed.body_len = strlen(delayed.body);
    delayed.delay_s = 600;
    cr_assert_eq(herald_send(S, "q", &delayed, NULL), 0);
    check("q", 6);

    herald_batch b = { 0 };
    cr_assert_eq(hx_pull(S, "q", 3, 30000, &b), 3);
    check("q", 6); /* leased still count */
    hx_ack1(S, "q", b.msgs[0].lease_id);
    check("q", 5);
    const char *lease = b.msgs[2].lease_id; /* {"a":333}; max_retries 0: to the DLQ */
    cr_assert_eq(herald_retry(S, "q", &lease, 1, 0, "boom", NULL), 0);
    check("q", 4);
    check("dlq", 1);
    hx_ack1(S, "q", b.msgs[0].lease_id); /* a repeated ack deletes nothing */
    check("q", 4);
    herald_batch_deinit(&b);

    /* redrive with an edit that makes the body longer */
    herald_redrive_opts o;
    herald_redrive_opts_init(&o);
    const char *set[] = { "x=\"a much longer value than before\"" };
    o.set = set;
    o.n_set = 1;
    o.to_queue = "q";
    int64_t moved = 0;
    cr_assert_eq(herald_dlq_redrive(S, "dlq", &o, &moved), 0, "%s", herald_last_error());
    cr_assert_eq(moved, 1);
    check("dlq", 0);
    check("q", 5);
    herald_queue_stats st = hx_stats(S, "q");
    cr_assert_gt(st.backlog_bytes, 1 + 4 + 8 + 6 + 11 + 14, "the edit made a body longer");

    /* a topic copies into two queues */
    mkq("sub-a", HERALD_UNSET, NULL, HERALD_UNSET);
    mkq("sub-b", HERALD_UNSET, NULL, HERALD_UNSET);
    cr_assert_eq(herald_topic_subscribe(S, "t", "sub-a"), 0);
    cr_assert_eq(herald_topic_subscribe(S, "t", "sub-b"), 0);
    herald_msg pm[2];
    for (int i = 0; i < 2; i++) {
        herald_msg_init(&pm[i]);
        pm[i].body = i ? "{\"p\":22}" : "{\"p\":1}";
        pm[i].body_len = strlen(pm[i].body);
    }
    cr_assert_eq(herald_publish(S, "t", pm, 2, HERALD_UNSET, NULL), 0, "%s", herald_last_error());
    check("sub-a", 2);
    check("sub-b", 2);

    int64_t n = 0;
    cr_assert_eq(herald_queue_purge(S, "q", &n), 0);
    cr_assert_eq(n, 5);
    check("q", 0);
    send_body("q", "[1]"); /* counting goes on after a purge */
    check("q", 1);
    cr_assert_eq(herald_queue_delete(S, "sub-a"), 0);
    check("sub-b", 2);
}

Test(stats_counts, messages_past_retention_leave_the_backlog_at_once_and_the_sweep_deletes_them)
{
    mkq("short", HERALD_UNSET, NULL, 60);
    mkq("long", HERALD_UNSET, NULL, HERALD_UNSET);
    for (int i = 0; i < 4; i++)
        send_body("short", "{\"s\":1}");
    send_body("long", "[1]");
    hx_clock_advance(&g_env.clock, 30 * 1000);
    send_body("short", "{\"young\":1}");
    check("short", 5);
    hx_clock_advance(&g_env.clock, 31 * 1000); /* the first four are past 60 s */
    check("short", 1);
    check("long", 1);
    /* a consumer of the store runs the retention sweep as it starts */
    herald_consumer_cfg cfg;
    herald_consumer_cfg_init(&cfg);
    const char *qs[] = { "long" };
    cfg.queues = qs;
    cfg.n_queues = 1;
    cfg.handler = ack_all;
    cfg.max_batch_timeout_ms = 0;
    herald_consumer *c = hx_consumer_start(S, &cfg);
    HX_WAIT_UNTIL(hx_stats(S, "short").expired_total == 4, 10000);
    cr_assert_eq(herald_queue_wait_empty(S, "long", 60000), 0, "%s", herald_last_error());
    herald_consumer_stop(c);
    check("short", 1);
    check("long", 0);
    hx_clock_advance(&g_env.clock, 60 * 1000);
    check("short", 0);
}

/* ---- consumers ---- */

static atomic_int g_entered, g_release;

static int blocking_handler(herald_delivery *d, void *ud)
{
    (void)d;
    (void)ud;
    atomic_store(&g_entered, 1);
    while (!atomic_load(&g_release))
        hx_sleep_ms(1);
    return 0;
}

Test(stats_counts, a_batch_acked_after_part_of_it_expired_leaves_the_counts_right)
{
    /* A consumer holds 10 messages; meanwhile 5 of them pass their retention and another
     * process's retention sweep deletes them; then the batch is acked. Its page of acks finds 5
     * of its 10 rows: the count must drop by exactly the 5 it deleted. */
    mkq("q", HERALD_UNSET, NULL, 60);
    mkq("other", HERALD_UNSET, NULL, HERALD_UNSET);
    for (int i = 0; i < 5; i++)
        send_body("q", "{\"old\":1}");
    hx_clock_advance(&g_env.clock, 40 * 1000);
    for (int i = 0; i < 5; i++)
        send_body("q", "{\"young\":22}");
    herald_consumer_cfg cfg;
    herald_consumer_cfg_init(&cfg);
    const char *qs[] = { "q" };
    cfg.queues = qs;
    cfg.n_queues = 1;
    cfg.handler = blocking_handler;
    cfg.max_batch_size = 10;
    cfg.max_batch_timeout_ms = 0;
    herald_consumer *c = hx_consumer_start(S, &cfg);
    HX_WAIT_UNTIL(atomic_load(&g_entered), 10000);
    cr_assert_eq(hx_stats(S, "q").leased_count, 10, "the batch took all ten");
    hx_clock_advance(&g_env.clock, 25 * 1000); /* the old five expired */
    herald_store *s2 = hx_open(g_env.dir, &g_env.clock);
    const char *oq[] = { "other" };
    herald_consumer_cfg cfg2;
    herald_consumer_cfg_init(&cfg2);
    cfg2.queues = oq;
    cfg2.n_queues = 1;
    cfg2.handler = ack_all;
    herald_consumer *sweeper = hx_consumer_start(s2, &cfg2); /* sweeps as it starts */
    HX_WAIT_UNTIL(hx_stats(S, "q").expired_total == 5, 10000);
    cr_assert_eq(hx_stats(S, "q").expired_total, 5);
    herald_consumer_stop(sweeper);
    herald_store_close(s2);
    check("q", 5);
    atomic_store(&g_release, 1);
    herald_consumer_counters k;
    herald_consumer_stop_counters(c, &k); /* the batch is settled when it returns */
    cr_assert_eq(k.acked, 5, "the five still there were acked");
    check("q", 0);
    send_body("q", "[7]");
    check("q", 1);
}

static int tx_ok(herald_tx *tx, const herald_message *m, const herald_envelope *env, void *ud)
{
    (void)tx;
    (void)m;
    (void)env;
    (void)ud;
    return 0;
}

Test(stats_counts, consumer_acks_plain_traced_and_effectively_once_keep_the_counts)
{
    mkq("plain", HERALD_UNSET, NULL, HERALD_UNSET);
    mkq("eo", HERALD_UNSET, NULL, HERALD_UNSET);
    for (int i = 0; i < 30; i++) {
        send_body("plain", i % 2 ? "{\"odd\":1}" : "[0]");
        herald_event e = { .type = "x.y", .source = "t", .correlation_id = i % 3 ? "c1" : NULL,
                           .payload_json = "{\"k\":1}" };
        cr_assert_eq(herald_send_event(S, "plain", &e, HERALD_UNSET, NULL), 0);
        cr_assert_eq(herald_send_event(S, "eo", &e, HERALD_UNSET, NULL), 0);
    }
    send_body("eo", "\"\""); /* not an envelope */
    check("plain", 60);
    herald_consumer_cfg cfg;
    herald_consumer_cfg_init(&cfg);
    const char *q1[] = { "plain" };
    cfg.queues = q1;
    cfg.n_queues = 1;
    cfg.handler = ack_all;
    cfg.max_batch_size = 7;
    cfg.max_batch_timeout_ms = 0;
    herald_consumer *c1 = hx_consumer_start(S, &cfg);
    herald_consumer_cfg_init(&cfg);
    const char *q2[] = { "eo" };
    cfg.queues = q2;
    cfg.n_queues = 1;
    cfg.tx_handler = tx_ok;
    cfg.max_batch_timeout_ms = 0;
    herald_consumer *c2 = hx_consumer_start(S, &cfg);
    cr_assert_eq(herald_queue_wait_empty(S, "plain", 60000), 0, "%s", herald_last_error());
    cr_assert_eq(herald_queue_wait_empty(S, "eo", 60000), 0, "%s", herald_last_error());
    herald_consumer_stop(c1);
    herald_consumer_stop(c2);
    check("plain", 0);
    check("eo", 0);
    send_body("plain", "[1,2,3]");
    check("plain", 1);
}

/* ---- upgrade ---- */

Test(stats_counts, a_schema_11_store_with_messages_gets_its_counts_on_upgrade)
{
    char *url = hx_url(g_env.dir, "old11.db");
    const char *path = url + strlen("sqlite:");
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
    for (int i = 0; i < herald__n_migrations && herald__migrations[i].version <= 11; i++)
        cr_assert_eq(sqlite3_exec(db, herald__migrations[i].sql, NULL, NULL, NULL), SQLITE_OK,
                     "%s: %s", herald__migrations[i].name, sqlite3_errmsg(db));
    int64_t now = hx_clock_now(&g_env.clock), day = 86400 * 1000LL;
    char fill[4096];
    /* queue 1: three messages (one delayed, one past its retention); queue 2: none */
    snprintf(fill, sizeof fill,
             "PRAGMA application_id = 1213353028; PRAGMA user_version = 11;"
             "INSERT INTO herald_meta (key, value) VALUES ('message_seq', 3) "
             "  ON CONFLICT (key) DO UPDATE SET value = 3;"
             "INSERT INTO herald_queues (queue_id, name, uuid, created_ms, modified_ms, "
             "  delivery_delay_s, retention_s, max_message_bytes, max_retries, retry_delay_s) "
             "  VALUES (1, 'old', 'u1', 0, 0, 0, 345600, 128000, 3, 0),"
             "         (2, 'empty', 'u2', 0, 0, 0, 345600, 128000, 3, 0);"
             "INSERT INTO herald_messages (seq, queue_id, visible_at_ms, attempts, expires_at_ms, "
             "  sent_ms, content_type, id, body) VALUES "
             "  (1, 1, %lld, 0, %lld, %lld, 0, 'id-1', CAST('[1]' AS BLOB)),"
             "  (2, 1, %lld, 0, %lld, %lld, 0, 'id-2', CAST('{\"b\":22}' AS BLOB)),"
             "  (3, 1, %lld, 0, %lld, %lld, 0, 'id-3', CAST('\"expired\"' AS BLOB));",
             (long long)(now - 1000), (long long)(now + 3 * day), (long long)(now - 1000),
             (long long)(now + 60000), (long long)(now + 4 * day), (long long)now,
             (long long)(now - 5 * day), (long long)(now - day), (long long)(now - 5 * day));
    cr_assert_eq(sqlite3_exec(db, fill, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_close(db);

    hx_env_close(&g_env);
    herald_store_cfg cfg = { .clock = &g_env.clock.clock };
    cr_assert_eq(herald_store_open(url, &cfg, &g_env.store), 0, "%s", herald_last_error());
    free(url);
    cr_assert_eq(herald_store_schema_version(S), herald_schema_version_supported());
    herald_queue_stats st = hx_stats(S, "old");
    cr_assert_eq(st.backlog_count, 2, "the expired message counts: %lld",
                 (long long)st.backlog_count);
    cr_assert_eq(st.backlog_bytes, 3 + 8);
    cr_assert_eq(st.visible_count, 1);
    cr_assert_eq(st.delayed_count, 1);
    cr_assert_eq(st.oldest_message_timestamp_ms, now - 1000);
    check("old", 2);
    check("empty", 0);
    /* and the counts go on from there */
    send_body("old", "[4444]");
    check("old", 3);
    send_body("empty", "[1]");
    check("empty", 1);
}
