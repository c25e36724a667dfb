// SPDX-License-Identifier: MIT
/*
 * test_counters.c - consumer counters agree with what the store committed, can be read after
 * stop, and herald_queue_wait_empty waits for a drain (by this process or another), times out
 * on the store's clock, and refuses bad arguments. Consumers record handler metrics when asked
 * (has_metrics).
 * Drains are awaited with herald_queue_wait_empty: no sleep, no polling loop in the test.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support.h"

static hx_env g_env;
#define S (g_env.store)

static void real_clock(void)
{
    hx_env_setup(&g_env, HX_ENV_REAL_CLOCK);
    hx_create_queue(S, "q", NULL);
}

static void fake_clock(void)
{
    hx_env_setup(&g_env, 0);
    hx_create_queue(S, "q", NULL);
}

static void teardown(void)
{
    hx_env_teardown(&g_env);
}

TestSuite(counters, .init = real_clock, .fini = teardown, .timeout = 60);
TestSuite(wait_empty, .init = fake_clock, .fini = teardown, .timeout = 60);

static void send_n(herald_store *s, const char *q, int n)
{
    for (int i = 0; i < n;) {
        herald_msg msgs[100];
        int k = 0;
        for (; k < 100 && i < n; k++, i++) {
            herald_msg_init(&msgs[k]);
            msgs[k].body = "{\"x\":1}";
            msgs[k].body_len = 7;
        }
        cr_assert_eq(herald_send_batch(s, q, msgs, (size_t)k, HERALD_UNSET, NULL), 0, "%s",
                     herald_last_error());
    }
}

static int ack_all(herald_delivery *d, void *ud)
{
    (void)d;
    (void)ud;
    return 0;
}

/* Every third message is retried (to its end: max_retries 0 dead-letters it). */
static int some_fail(herald_delivery *d, void *ud)
{
    (void)ud;
    for (size_t i = 0; i < herald_delivery_count(d); i++)
        if (herald_delivery_msg(d, i)->body_len % 3 == 0)
            herald_delivery_retry(d, i, 0);
    return 0;
}

static int tx_ok(herald_tx *tx, const herald_message *m, const herald_envelope *env, void *ud)
{
    (void)tx;
    (void)m;
    (void)env;
    (void)ud;
    return 0;
}

static herald_consumer *start(herald_handler_cb h, herald_tx_handler_cb tx, int concurrency)
{
    herald_consumer_cfg cfg;
    herald_consumer_cfg_init(&cfg);
    const char *qs[] = { "q" };
    cfg.queues = qs;
    cfg.n_queues = 1;
    cfg.handler = h;
    cfg.tx_handler = tx;
    cfg.max_batch_size = 10;
    cfg.max_batch_timeout_ms = 0;
    cfg.max_concurrency = concurrency;
    cfg.max_retries = 0;
    return hx_consumer_start(S, &cfg);
}

Test(counters, once_the_backlog_is_0_the_counters_say_every_message_was_acked)
{
    /* Durability full: settlements are released after the fsync, so a reader sees the commit
     * first. Many rounds give the lag many chances to show. */
    herald_consumer *c = start(ack_all, NULL, 4);
    int64_t total = 0;
    for (int round = 0; round < 20; round++) {
        send_n(S, "q", 100);
        total += 100;
        cr_assert_eq(herald_queue_wait_empty(S, "q", 60000), 0, "%s", herald_last_error());
        herald_consumer_counters k;
        herald_consumer_counters_get(c, &k);
        cr_assert_eq(k.acked, total, "round %d: backlog 0 but acked %lld of %lld", round,
                     (long long)k.acked, (long long)total);
        cr_assert_eq(k.delivered, total);
        cr_assert_eq(k.retried, 0);
    }
    herald_consumer_stop(c);
}

Test(counters, an_effectively_once_consumer_counts_what_committed_too)
{
    herald_consumer *c = start(NULL, tx_ok, 2);
    int64_t total = 0;
    for (int round = 0; round < 10; round++) {
        send_n(S, "q", 250);
        total += 250;
        cr_assert_eq(herald_queue_wait_empty(S, "q", 60000), 0, "%s", herald_last_error());
        herald_consumer_counters k;
        herald_consumer_counters_get(c, &k);
        cr_assert_eq(k.acked, total, "round %d: acked %lld of %lld", round, (long long)k.acked,
                     (long long)total);
    }
    herald_consumer_stop(c);
}

Test(counters, the_final_counters_are_read_at_stop)
{
    send_n(S, "q", 300);
    herald_consumer *c = start(ack_all, NULL, 2);
    cr_assert_eq(herald_queue_wait_empty(S, "q", 60000), 0, "%s", herald_last_error());
    herald_consumer_counters k;
    memset(&k, 0xff, sizeof k);
    herald_consumer_stop_counters(c, &k);
    cr_assert_eq(k.acked, 300);
    cr_assert_eq(k.delivered, 300);
    cr_assert_eq(k.retried, 0);
    cr_assert_eq(k.handler_failures, 0);
    cr_assert_geq(k.batches, 30, "batches of at most 10");
    herald_consumer_stop_counters(NULL, &k); /* does nothing */
    herald_consumer_stop_counters(start(ack_all, NULL, 1), NULL);
}

Test(counters, retried_and_dead_lettered_messages_are_counted_at_stop)
{
    /* bodies of 7 and 9 bytes: the 9-byte ones (every third) are retried and, with
     * max_retries 0, dead-lettered (deleted: no DLQ) */
    herald_msg m[3];
    const char *bodies[] = { "{\"x\":1}", "{\"x\":2}", "{\"x\":333}" };
    for (int i = 0; i < 3; i++) {
        herald_msg_init(&m[i]);
        m[i].body = bodies[i];
        m[i].body_len = strlen(bodies[i]);
    }
    for (int r = 0; r < 10; r++)
        cr_assert_eq(herald_send_batch(S, "q", m, 3, HERALD_UNSET, NULL), 0);
    herald_consumer *c = start(some_fail, NULL, 1);
    cr_assert_eq(herald_queue_wait_empty(S, "q", 60000), 0, "%s", herald_last_error());
    herald_consumer_counters k;
    herald_consumer_stop_counters(c, &k);
    cr_assert_eq(k.acked, 20);
    cr_assert_eq(k.retried, 10);
    herald_queue_stats st = hx_stats(S, "q");
    cr_assert_eq(st.acked_total, k.acked);
    cr_assert_eq(st.deleted_total, k.retried);
}

/* ---- metrics on a plain consumer ---- */

Test(counters, a_consumer_with_has_metrics_records_handler_metrics)
{
    herald_event e = { .type = "job.done", .source = "test", .payload_json = "{}" };
    for (int i = 0; i < 4; i++)
        cr_assert_eq(herald_send_event(S, "q", &e, HERALD_UNSET, NULL), 0);
    send_n(S, "q", 2); /* not envelopes: type "" */
    herald_consumer_cfg cfg;
    herald_consumer_cfg_init(&cfg);
    cr_assert_eq(cfg.has_metrics, false, "metrics are off unless asked for");
    const char *qs[] = { "q" };
    cfg.queues = qs;
    cfg.n_queues = 1;
    cfg.handler = ack_all;
    cfg.max_batch_timeout_ms = 0;
    cfg.has_metrics = true;
    herald_consumer *c = hx_consumer_start(S, &cfg);
    cr_assert_eq(herald_queue_wait_empty(S, "q", 60000), 0, "%s", herald_last_error());
    herald_consumer_stop(c); /* writes what is left */
    herald_metric *m = NULL;
    size_t n = 0;
    cr_assert_eq(herald_metrics_list(S, &m, &n), 0);
    int64_t typed = 0, untyped = 0;
    for (size_t i = 0; i < n; i++) {
        cr_assert_str_eq(m[i].queue, "q");
        cr_assert_str_eq(m[i].outcome, "ok");
        int64_t in_buckets = 0;
        for (int b = 0; b < HERALD_METRIC_BUCKETS; b++)
            in_buckets += m[i].buckets[b];
        cr_assert_eq(in_buckets, m[i].count, "the histogram holds every message");
        if (strcmp(m[i].type, "job.done") == 0)
            typed += m[i].count;
        else if (m[i].type[0] == 0)
            untyped += m[i].count;
    }
    herald_free(m);
    cr_assert_eq(typed, 4);
    cr_assert_eq(untyped, 2);
}

Test(counters, a_consumer_without_has_metrics_records_none)
{
    send_n(S, "q", 5);
    herald_consumer *c = start(ack_all, NULL, 1);
    cr_assert_eq(herald_queue_wait_empty(S, "q", 60000), 0, "%s", herald_last_error());
    herald_consumer_stop(c);
    herald_metric *m = NULL;
    size_t n = 99;
    cr_assert_eq(herald_metrics_list(S, &m, &n), 0);
    cr_assert_eq(n, 0);
    herald_free(m);
}

/* ---- herald_queue_wait_empty ---- */

Test(wait_empty, returns_at_once_for_an_empty_queue_and_refuses_bad_arguments)
{
    cr_assert_eq(herald_queue_wait_empty(S, "q", 0), 0);
    cr_assert_eq(herald_queue_wait_empty(S, "q", 1000), 0);
    cr_assert_eq(herald_queue_wait_empty(NULL, "q", 0), HERALD_EINVAL);
    cr_assert_eq(herald_queue_wait_empty(S, NULL, 0), HERALD_ENOQUEUE);
    cr_assert_eq(herald_queue_wait_empty(S, "q", -1), HERALD_EINVAL);
    cr_assert(hx_mentions(herald_last_error(), "timeout"), "%s", herald_last_error());
    cr_assert_eq(herald_queue_wait_empty(S, "nope", 0), HERALD_ENOQUEUE);
    cr_assert(hx_mentions(herald_last_error(), "nope"), "%s", herald_last_error());
}

Test(wait_empty, a_timeout_of_0_checks_once)
{
    send_n(S, "q", 3);
    cr_assert_eq(herald_queue_wait_empty(S, "q", 0), HERALD_ETIMEDOUT);
    cr_assert(hx_mentions(herald_last_error(), "3 messages"), "%s", herald_last_error());
    cr_assert_str_eq(herald_err_name(HERALD_ETIMEDOUT), "HERALD_ETIMEDOUT");
}

/* A store clock that moves 10 minutes forward at every read (from the fake clock's start). */
static int64_t ticking_now(void *ud)
{
    return __atomic_add_fetch((int64_t *)ud, 600000, __ATOMIC_SEQ_CST);
}

Test(wait_empty, times_out_when_the_store_clock_passes_the_deadline)
{
    send_n(S, "q", 1);
    int64_t t = hx_clock_now(&g_env.clock);
    herald_clock ticking = { .now_ms = ticking_now, .ud = &t };
    herald_store_cfg cfg = { .clock = &ticking };
    char *url = hx_url(g_env.dir, "herald.db");
    herald_store *s = NULL;
    cr_assert_eq(herald_store_open(url, &cfg, &s), 0, "%s", herald_last_error());
    free(url);
    int64_t t0 = __atomic_load_n(&t, __ATOMIC_SEQ_CST);
    /* an hour of store time: the ticking clock passes it after a few looks; nothing drains */
    cr_assert_eq(herald_queue_wait_empty(s, "q", 3600 * 1000), HERALD_ETIMEDOUT);
    cr_assert(hx_mentions(herald_last_error(), "1 messages"), "%s", herald_last_error());
    cr_assert_geq(__atomic_load_n(&t, __ATOMIC_SEQ_CST) - t0, 3600 * 1000,
                  "timed out before the deadline on the store clock");
    herald_store_close(s);
    cr_assert_eq(hx_stats(S, "q").backlog_count, 1);
}

typedef struct waiter {
    pthread_t t;
    int64_t timeout_ms;
    int rc;
} waiter;

static void *wait_main(void *arg)
{
    waiter *w = arg;
    w->rc = herald_queue_wait_empty(S, "q", w->timeout_ms);
    return NULL;
}

Test(wait_empty, returns_when_this_process_drains_the_queue)
{
    send_n(S, "q", 2);
    waiter w = { .timeout_ms = 60000, .rc = 1 };
    cr_assert_eq(pthread_create(&w.t, NULL, wait_main, &w), 0);
    herald_batch b = { 0 };
    cr_assert_eq(hx_pull(S, "q", 10, 30000, &b), 2);
    hx_ack1(S, "q", b.msgs[0].lease_id);
    hx_ack1(S, "q", b.msgs[1].lease_id);
    herald_batch_deinit(&b);
    pthread_join(w.t, NULL);
    cr_assert_eq(w.rc, 0, "%s", herald_strerror(w.rc));
}

Test(wait_empty, wakes_for_a_drain_by_another_process)
{
    send_n(S, "q", 50);
    int go[2];
    cr_assert_eq(pipe(go), 0);
    pid_t pid = hx_fork_child(NULL, NULL);
    if (pid == 0) { /* the other process: waits for the word, then drains with its own handle */
        close(go[1]);
        char c;
        if (read(go[0], &c, 1) != 1)
            _exit(2);
        hx_clock clock;
        hx_clock_init(&clock);
        herald_store *s = hx_open(g_env.dir, &clock);
        int64_t n = 0;
        _exit(herald_queue_purge(s, "q", &n) == 0 && n == 50 ? 0 : 3);
    }
    close(go[0]);
    cr_assert_eq(write(go[1], "g", 1), 1);
    close(go[1]);
    /* the fake clock never reaches this deadline: only the drain can end the wait */
    cr_assert_eq(herald_queue_wait_empty(S, "q", 60000), 0, "%s", herald_last_error());
    cr_assert_eq(hx_reap(pid, 30000), 0);
}
