// SPDX-License-Identifier: MIT
/*
 * test_consumer.c - the push consumer runtime (herald_consumer_start / _stop) through the
 * public API, against Cloudflare's consumer rules (cloudflare-api.md §7 items 9-19, 25, 26):
 * batching by size or timeout, never an empty batch, what a delivery carries, settlement
 * (return 0 acks, < 0 retries, first call wins, per-message beats *_all, ack_all beats failure),
 * retry delay precedence, attempts and dead-lettering, max_concurrency, wake-up on send, no
 * busy polling when idle, several queues, draining on stop, pause, and config validation.
 *
 * The suite runs on the real clock with small timeouts; tests of times (the batch timeout,
 * retry delays, send timestamps) reopen the store on the fake clock and assert exact values.
 * Outcomes are awaited on conditions (HX_AWAIT, WAIT_UNTIL); a negative check ("nothing is
 * delivered") is witnessed by a second queue the same dispatcher pass looks at, not slept on.
 * No test asserts how long anything took. Handlers run on consumer threads: they only record
 * into R (under its mutex) and the test thread asserts.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "herald.h"
#include "support.h"

static hx_env env;
static herald_consumer *g_c;

/* ---- what handlers saw ---------------------------------------------------------------------- */

typedef struct rec {
    char id[HERALD_ID_SIZE];
    char body[48];
    int attempts;
    int64_t timestamp_ms;
    herald_content_type content_type;
    char queue[HERALD_QUEUE_NAME_MAX + 1];
    int batch; /* index of the batch it came in */
} rec;

enum { MAX_RECS = 1024, MAX_BATCHES = 512 };

static struct {
    pthread_mutex_t mu;
    rec recs[MAX_RECS];
    int n_recs;
    size_t batch_sizes[MAX_BATCHES];
    int n_batches;
    int empty_batches;
    atomic_int in_flight;
    atomic_int max_in_flight;
    atomic_int started;
    atomic_int finished;
    int want_overlap; /* h_slow_tracked: wait until this many handlers ran at once */
    int hold_ms;      /* h_slow_tracked: then hold the message this long */
} R;

static void rec_reset(void)
{
    memset(&R, 0, sizeof R);
    pthread_mutex_init(&R.mu, NULL);
    atomic_store(&R.in_flight, 0);
    atomic_store(&R.max_in_flight, 0);
    atomic_store(&R.started, 0);
    atomic_store(&R.finished, 0);
}

static void record(herald_delivery *d)
{
    size_t n = herald_delivery_count(d);
    const char *q = herald_delivery_queue(d);
    pthread_mutex_lock(&R.mu);
    int bi = R.n_batches;
    if (R.n_batches < MAX_BATCHES)
        R.batch_sizes[R.n_batches] = n;
    R.n_batches++;
    if (n == 0)
        R.empty_batches++;
    for (size_t i = 0; i < n && R.n_recs < MAX_RECS; i++) {
        const herald_message *m = herald_delivery_msg(d, i);
        rec *r = &R.recs[R.n_recs++];
        snprintf(r->id, sizeof r->id, "%s", m->id);
        size_t len = m->body_len < sizeof r->body - 1 ? m->body_len : sizeof r->body - 1;
        memcpy(r->body, m->body, len);
        r->body[len] = 0;
        r->attempts = m->attempts;
        r->timestamp_ms = m->timestamp_ms;
        r->content_type = m->content_type;
        snprintf(r->queue, sizeof r->queue, "%s", q ? q : "(null)");
        r->batch = bi;
    }
    pthread_mutex_unlock(&R.mu);
}

static int n_batches(void)
{
    pthread_mutex_lock(&R.mu);
    int n = R.n_batches;
    pthread_mutex_unlock(&R.mu);
    return n;
}

static int n_recs(void)
{
    pthread_mutex_lock(&R.mu);
    int n = R.n_recs;
    pthread_mutex_unlock(&R.mu);
    return n;
}

/* How many times a message with this body was delivered; *last_attempts gets the attempts of
 * its last delivery (0 if never). */
static int deliveries_of(const char *body, int *last_attempts)
{
    int n = 0, last = 0;
    pthread_mutex_lock(&R.mu);
    for (int i = 0; i < R.n_recs; i++) {
        if (strcmp(R.recs[i].body, body) == 0) {
            n++;
            if (R.recs[i].attempts != n)
                last = -1000 - R.recs[i].attempts; /* out of order: make it visible */
            else if (last >= 0)
                last = R.recs[i].attempts;
        }
    }
    pthread_mutex_unlock(&R.mu);
    if (last_attempts)
        *last_attempts = last;
    return n;
}

static bool any_first_attempt(herald_delivery *d)
{
    for (size_t i = 0; i < herald_delivery_count(d); i++) {
        if (herald_delivery_msg(d, i)->attempts == 1)
            return true;
    }
    return false;
}

/* ---- fixture and helpers -------------------------------------------------------------------- */

static void setup(void)
{
    rec_reset();
    hx_env_setup(&env, HX_ENV_REAL_CLOCK); /* batch timeouts are real time */
    g_c = NULL;
}

static void stop(void)
{
    herald_consumer_stop(g_c);
    g_c = NULL;
}

static void teardown(void)
{
    stop();
    hx_env_teardown(&env);
}

TestSuite(consumer, .init = setup, .fini = teardown, .timeout = 60);

/* Polls cond every 5 ms for up to 10 s. */
#define WAIT_UNTIL(cond) HX_WAIT_UNTIL(cond, 10000)

static void create_queue(const char *name, int64_t retry_delay_s)
{
    herald_queue_settings st;
    herald_queue_settings_init(&st);
    st.retry_delay_s = retry_delay_s;
    hx_create_queue(env.store, name, &st);
}

static void send_json(const char *q, const char *json, char id[HERALD_ID_SIZE])
{
    hx_send_json(env.store, q, json, HERALD_UNSET, id);
}

/* Sends the bodies in one atomic batch. */
static void send_all(const char *q, const char *const *bodies, size_t n)
{
    herald_msg m[100];
    cr_assert_leq(n, 100);
    for (size_t i = 0; i < n; i++) {
        m[i].body = bodies[i];
        m[i].body_len = strlen(bodies[i]);
        m[i].content_type = HERALD_CONTENT_JSON;
        m[i].delay_s = HERALD_UNSET;
    }
    int rc = herald_send_batch(env.store, q, m, n, HERALD_UNSET, NULL);
    cr_assert_eq(rc, 0, "send_batch %s: %s: %s", q, herald_err_name(rc), herald_last_error());
}

static herald_queue_stats stats(const char *q)
{
    return hx_stats(env.store, q);
}

/* backlog of a queue that may not exist yet (-1 then) */
static int64_t backlog_or_minus1(const char *q)
{
    herald_queue_stats st;
    if (herald_queue_stats_get(env.store, q, &st) != 0)
        return -1;
    return st.backlog_count;
}

static herald_consumer_cfg cfg_for(const char *const *queues, size_t n, herald_handler_cb h)
{
    herald_consumer_cfg c;
    herald_consumer_cfg_init(&c);
    c.queues = queues;
    c.n_queues = n;
    c.handler = h;
    c.ud = &R;
    return c;
}

static void start(const herald_consumer_cfg *c)
{
    g_c = hx_consumer_start(env.store, c);
}

static const char *const QS_Q[] = { "q" }; /* the queue most tests consume */

/* A consumer of queue "q" with handler h, delivering up to max_batch_size messages per batch
 * after at most max_batch_timeout_ms (either may be HERALD_UNSET: the default). */
static herald_consumer_cfg cfg_q(herald_handler_cb h, int max_batch_size,
                                 int64_t max_batch_timeout_ms)
{
    herald_consumer_cfg c = cfg_for(QS_Q, 1, h);
    c.max_batch_size = max_batch_size;
    c.max_batch_timeout_ms = max_batch_timeout_ms;
    return c;
}

/* The settlement tests: creates "q", sends the n bodies in one batch and starts a consumer with
 * handler h that gets them in one batch (50 ms timeout) and retries with no delay. */
static void start_settlement(herald_handler_cb h, const char *const *bodies, size_t n)
{
    create_queue("q", HERALD_UNSET);
    send_all("q", bodies, n);
    herald_consumer_cfg c = cfg_q(h, (int)n, 50);
    c.retry_delay_s = 0;
    start(&c);
}

/* Waits (bounded) until n messages of "q" were acked and nothing is left in it. */
static void wait_acked_and_empty(int64_t n)
{
    WAIT_UNTIL(stats("q").acked_total == n && stats("q").backlog_count == 0);
}

/* Waits (bounded) until n messages of "q" were acked, and asserts that they were; why: what
 * it means when they were not (NULL: nothing to add). */
static void assert_acked_soon(int64_t n, const char *why)
{
    WAIT_UNTIL(stats("q").acked_total == n);
    int64_t got = stats("q").acked_total;
    cr_assert_eq(got, n, "acked %lld of %lld%s%s", (long long)got, (long long)n, why ? ": " : "",
                 why ? why : "");
}

/* visible_at of the message with this body in q, via peek (-1 if absent). */
static int64_t visible_at_of(const char *q, const char *body)
{
    herald_batch b = { 0 };
    int rc = herald_peek(env.store, q, 100, &b);
    cr_assert_eq(rc, 0, "peek: %s", herald_last_error());
    int64_t at = -1;
    for (size_t i = 0; i < b.n; i++) {
        if (hx_body_is(&b.msgs[i], body))
            at = b.msgs[i].visible_at_ms;
    }
    herald_batch_deinit(&b);
    return at;
}

/* Asserts visible_at of body is now + delay_s on the fake clock (which the test does not move
 * between the retry and this check: see use_fake_clock). */
static void assert_retry_delay(const char *q, const char *body, int64_t delay_s)
{
    int64_t at = visible_at_of(q, body);
    cr_assert_neq(at, -1, "%s not in queue", body);
    int64_t now = hx_clock_now(&env.clock);
    cr_assert_eq(at, now + delay_s * 1000, "%s: visible %lld ms after the retry, expected a %lld s "
                 "delay", body, (long long)(at - now), (long long)delay_s);
}

/* ---- handlers ------------------------------------------------------------------------------- */

static int h_record_ok(herald_delivery *d, void *ud)
{
    (void)ud;
    record(d);
    return 0;
}

/* First delivery: explicitly ack "0", then fail. Later deliveries succeed. */
static int h_ack_zero_then_fail(herald_delivery *d, void *ud)
{
    (void)ud;
    record(d);
    bool first = any_first_attempt(d);
    for (size_t i = 0; i < herald_delivery_count(d); i++) {
        const herald_message *m = herald_delivery_msg(d, i);
        if (m->attempts == 1 && hx_body_is(m, "\"0\""))
            herald_delivery_ack(d, i);
    }
    return first ? -1 : 0;
}

/* "a": ack then retry (ack wins); "b": retry then ack (retry wins); the handler then fails. */
static int h_first_call_wins(herald_delivery *d, void *ud)
{
    (void)ud;
    record(d);
    bool first = any_first_attempt(d);
    for (size_t i = 0; i < herald_delivery_count(d); i++) {
        const herald_message *m = herald_delivery_msg(d, i);
        if (m->attempts != 1)
            continue;
        if (hx_body_is(m, "\"a\"")) {
            herald_delivery_ack(d, i);
            herald_delivery_retry(d, i, 0);
        } else if (hx_body_is(m, "\"b\"")) {
            herald_delivery_retry(d, i, 0);
            herald_delivery_ack(d, i);
        }
    }
    return first ? -1 : 0;
}

/* First delivery of "x": retry it, then ack_all. */
static int h_retry_x_then_ack_all(herald_delivery *d, void *ud)
{
    (void)ud;
    record(d);
    for (size_t i = 0; i < herald_delivery_count(d); i++) {
        const herald_message *m = herald_delivery_msg(d, i);
        if (m->attempts == 1 && hx_body_is(m, "\"x\""))
            herald_delivery_retry(d, i, 0);
    }
    herald_delivery_ack_all(d);
    return 0;
}

/* First delivery: ack "x", then retry_all; return 0 (already settled: no effect). */
static int h_ack_x_then_retry_all(herald_delivery *d, void *ud)
{
    (void)ud;
    record(d);
    if (!any_first_attempt(d))
        return 0;
    for (size_t i = 0; i < herald_delivery_count(d); i++) {
        const herald_message *m = herald_delivery_msg(d, i);
        if (hx_body_is(m, "\"x\""))
            herald_delivery_ack(d, i);
    }
    herald_delivery_retry_all(d, 0);
    return 0;
}

static int h_ack_all_then_fail(herald_delivery *d, void *ud)
{
    (void)ud;
    record(d);
    herald_delivery_ack_all(d);
    herald_delivery_set_error(d, "failed after ack_all");
    return -1;
}

/* "a": retry(1000 s); "d": retry(UNSET = retry_all's); then retry_all(2000 s). */
static int h_delay_precedence(herald_delivery *d, void *ud)
{
    (void)ud;
    record(d);
    for (size_t i = 0; i < herald_delivery_count(d); i++) {
        const herald_message *m = herald_delivery_msg(d, i);
        if (hx_body_is(m, "\"a\""))
            herald_delivery_retry(d, i, 1000);
        else if (hx_body_is(m, "\"d\""))
            herald_delivery_retry(d, i, HERALD_UNSET);
    }
    herald_delivery_retry_all(d, 2000);
    return 0;
}

/* "e": retry(UNSET) with no retry_all; everything else by failing. */
static int h_unset_retry_and_fail(herald_delivery *d, void *ud)
{
    (void)ud;
    record(d);
    for (size_t i = 0; i < herald_delivery_count(d); i++) {
        if (hx_body_is(herald_delivery_msg(d, i), "\"e\""))
            herald_delivery_retry(d, i, HERALD_UNSET);
    }
    return -1;
}

static int h_always_fail(herald_delivery *d, void *ud)
{
    (void)ud;
    record(d);
    herald_delivery_set_error(d, "handler exploded");
    return -1;
}

static int h_slow_tracked(herald_delivery *d, void *ud)
{
    (void)ud;
    int now = atomic_fetch_add(&R.in_flight, 1) + 1;
    int prev = atomic_load(&R.max_in_flight);
    while (now > prev && !atomic_compare_exchange_weak(&R.max_in_flight, &prev, now)) {
    }
    record(d);
    int64_t end = hx_mono_ms() + 10000; /* a rendezvous that cannot happen ends here */
    while (atomic_load(&R.max_in_flight) < R.want_overlap && hx_mono_ms() < end)
        hx_sleep_ms(1);
    if (R.hold_ms > 0)
        hx_sleep_ms(R.hold_ms);
    atomic_fetch_sub(&R.in_flight, 1);
    return 0;
}

static int h_slow_200(herald_delivery *d, void *ud)
{
    (void)ud;
    record(d);
    atomic_store(&R.started, 1);
    hx_sleep_ms(200);
    atomic_store(&R.finished, 1);
    return 0;
}

/* ---- batching (items 9-12) ------------------------------------------------------------------ */

Test(consumer, batch_is_delivered_as_soon_as_max_batch_size_messages_are_available)
{
    create_queue("q", HERALD_UNSET);
    const char *bodies[10] = { "0", "1", "2", "3", "4", "5", "6", "7", "8", "9" };
    send_all("q", bodies, 10);
    /* a timeout of 60 s: only a full batch can be delivered within the wait */
    herald_consumer_cfg c = cfg_q(h_record_ok, 5, 60000);
    start(&c);
    assert_acked_soon(10, "full batches were not delivered without waiting for the 60 s "
                          "timeout");
    cr_assert_eq(n_batches(), 2);
    cr_assert_eq(R.batch_sizes[0], 5);
    cr_assert_eq(R.batch_sizes[1], 5);
    cr_assert_eq(stats("q").backlog_count, 0);
}

/* Reopens the test's store on its fake clock (the suite runs on the real one). */
static void use_fake_clock(void)
{
    hx_env_close(&env);
    env.flags &= ~(unsigned)HX_ENV_REAL_CLOCK;
    hx_env_reopen(&env);
}

/* Sends a full batch (3) to "full" and waits until it was handled: the dispatcher pass that
 * leased it looked at every queue of the consumer, "part" included. */
static void full_batch_witness(int64_t acked_before)
{
    const char *bodies[3] = { "\"f1\"", "\"f2\"", "\"f3\"" };
    send_all("full", bodies, 3);
    HX_AWAIT(stats("full").acked_total == acked_before + 3);
}

Test(consumer, fewer_than_max_batch_size_are_delivered_after_max_batch_timeout)
{
    /* On the fake clock, with the longest timeout (60 s): "p" waits in queue "part" until the
     * store's clock passes its timeout, however long the test takes; a full batch of queue
     * "full" goes at once. Each full batch is a witness: "p" was committed before it, so the
     * dispatcher pass that leased it saw "p" too and, but for the timeout, would have leased
     * "p" in that pass - before the full batch's ack commits. */
    use_fake_clock();
    create_queue("full", HERALD_UNSET);
    create_queue("part", HERALD_UNSET);
    static const char *const qs[] = { "full", "part" };
    herald_consumer_cfg c = cfg_for(qs, 2, h_record_ok);
    c.max_batch_size = 3;
    c.max_batch_timeout_ms = 60000;
    start(&c);
    send_json("part", "\"p\"", NULL);
    full_batch_witness(0);
    cr_assert_eq(deliveries_of("\"p\"", NULL), 0, "a partial batch went before its timeout");
    cr_assert_eq(stats("part").visible_count, 1);

    hx_clock_advance(&env.clock, 59999); /* 1 ms short of the timeout */
    herald_store_wake(env.store);
    full_batch_witness(3);
    cr_assert_eq(deliveries_of("\"p\"", NULL), 0, "a partial batch went 1 ms early");
    cr_assert_eq(stats("part").visible_count, 1);

    hx_clock_advance(&env.clock, 1); /* the timeout, on the store's clock */
    herald_store_wake(env.store);
    HX_AWAIT(stats("part").acked_total == 1);
    cr_assert_eq(deliveries_of("\"p\"", NULL), 1);
    cr_assert_eq(n_batches(), 3);
    cr_assert_eq(R.batch_sizes[2], 1, "the partial batch is \"p\" alone");
}

Test(consumer, empty_batches_are_never_delivered)
{
    /* Queue "w" is the witness: every dispatcher pass that delivers its message also looked
     * at the empty "q" (no timeout: a batch of "q" would be due at once). */
    create_queue("q", HERALD_UNSET);
    create_queue("w", HERALD_UNSET);
    static const char *const qs[] = { "q", "w" };
    herald_consumer_cfg c = cfg_for(qs, 2, h_record_ok);
    c.max_batch_size = 1;
    c.max_batch_timeout_ms = 0;
    start(&c);
    for (int i = 1; i <= 3; i++) {
        send_json("w", "\"w\"", NULL);
        HX_AWAIT(stats("w").acked_total == i);
    }
    cr_assert_eq(n_batches(), 3, "handler called on an empty queue");
    send_json("q", "{}", NULL);
    assert_acked_soon(1, NULL);
    send_json("w", "\"w\"", NULL);
    HX_AWAIT(stats("w").acked_total == 4);
    stop(); /* its threads are joined: nothing is delivered after this */
    cr_assert_eq(n_batches(), 5);
    cr_assert_eq(R.empty_batches, 0);
}

Test(consumer, delivery_carries_queue_name_id_timestamp_body_and_attempts_from_1)
{
    use_fake_clock(); /* the send time is exact on it */
    create_queue("orders", HERALD_UNSET);
    static const char *const qs[] = { "orders" };
    herald_consumer_cfg c = cfg_for(qs, 1, h_record_ok);
    c.max_batch_size = 2;
    c.max_batch_timeout_ms = 100;
    int64_t t0 = hx_clock_now(&env.clock);
    char id1[HERALD_ID_SIZE], id2[HERALD_ID_SIZE];
    send_json("orders", "{\"n\":1}", id1);
    herald_msg tm = { "plain text", 10, HERALD_CONTENT_TEXT, HERALD_UNSET };
    cr_assert_eq(herald_send(env.store, "orders", &tm, id2), 0);
    start(&c);
    WAIT_UNTIL(stats("orders").acked_total == 2);
    cr_assert_eq(n_recs(), 2);
    for (int i = 0; i < 2; i++) {
        rec *r = &R.recs[i];
        cr_assert_str_eq(r->queue, "orders");
        cr_assert_eq(r->attempts, 1);
        cr_assert_eq(r->timestamp_ms, t0, "timestamp %lld not the send time %lld",
                     (long long)r->timestamp_ms, (long long)t0);
        if (strcmp(r->id, id1) == 0) {
            cr_assert_str_eq(r->body, "{\"n\":1}");
            cr_assert_eq(r->content_type, HERALD_CONTENT_JSON);
        } else {
            cr_assert_str_eq(r->id, id2, "unknown id %s", r->id);
            cr_assert_str_eq(r->body, "plain text");
            cr_assert_eq(r->content_type, HERALD_CONTENT_TEXT);
        }
    }
}

/* ---- settlement (items 13-17) --------------------------------------------------------------- */

Test(consumer, handler_returning_0_acks_every_unsettled_message)
{
    create_queue("q", HERALD_UNSET);
    const char *bodies[5] = { "1", "2", "3", "4", "5" };
    send_all("q", bodies, 5);
    herald_consumer_cfg c = cfg_q(h_record_ok, 10, 50);
    start(&c);
    WAIT_UNTIL(stats("q").acked_total == 5);
    herald_queue_stats st = stats("q");
    cr_assert_eq(st.acked_total, 5);
    cr_assert_eq(st.backlog_count, 0);
    cr_assert_eq(st.retried_total, 0);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(deliveries_of(bodies[i], NULL), 1, "%s delivered more than once", bodies[i]);
    /* the counters follow the commit's fsync; a reader may see the commit a moment before */
    herald_consumer_counters k;
    memset(&k, 0, sizeof k);
    WAIT_UNTIL((herald_consumer_counters_get(g_c, &k), k.acked == 5));
    cr_assert_geq(k.batches, 1);
    cr_assert_eq(k.delivered, 5);
    cr_assert_eq(k.acked, 5);
    cr_assert_eq(k.retried, 0);
    cr_assert_eq(k.handler_failures, 0);
}

Test(consumer, handler_failure_retries_unsettled_messages_except_explicitly_acked_ones)
{
    const char *bodies[3] = { "\"0\"", "\"1\"", "\"2\"" };
    start_settlement(h_ack_zero_then_fail, bodies, 3);
    wait_acked_and_empty(3);
    herald_queue_stats st = stats("q");
    cr_assert_eq(st.acked_total, 3);
    cr_assert_eq(st.backlog_count, 0);
    cr_assert_eq(st.retried_total, 2);
    int last = 0;
    cr_assert_eq(deliveries_of("\"0\"", &last), 1, "explicitly acked message was redelivered");
    cr_assert_eq(deliveries_of("\"1\"", &last), 2);
    cr_assert_eq(last, 2, "attempts on redelivery: %d", last);
    cr_assert_eq(deliveries_of("\"2\"", &last), 2);
    cr_assert_eq(last, 2);
    herald_consumer_counters k;
    WAIT_UNTIL((herald_consumer_counters_get(g_c, &k), k.retried == 2));
    cr_assert_geq(k.handler_failures, 1);
    cr_assert_eq(k.retried, 2);
}

Test(consumer, first_settlement_call_on_a_message_wins)
{
    const char *bodies[2] = { "\"a\"", "\"b\"" };
    start_settlement(h_first_call_wins, bodies, 2);
    wait_acked_and_empty(2);
    cr_assert_eq(stats("q").backlog_count, 0);
    int last = 0;
    cr_assert_eq(deliveries_of("\"a\"", &last), 1, "ack then retry: the retry won");
    cr_assert_eq(deliveries_of("\"b\"", &last), 2, "retry then ack: the ack won");
    cr_assert_eq(last, 2);
}

Test(consumer, per_message_retry_beats_ack_all)
{
    const char *bodies[3] = { "\"x\"", "\"y\"", "\"z\"" };
    start_settlement(h_retry_x_then_ack_all, bodies, 3);
    wait_acked_and_empty(3);
    cr_assert_eq(stats("q").backlog_count, 0);
    int last = 0;
    cr_assert_eq(deliveries_of("\"x\"", &last), 2, "ack_all overrode the explicit retry");
    cr_assert_eq(last, 2);
    cr_assert_eq(deliveries_of("\"y\"", NULL), 1);
    cr_assert_eq(deliveries_of("\"z\"", NULL), 1);
    cr_assert_eq(stats("q").retried_total, 1);
}

Test(consumer, per_message_ack_beats_retry_all)
{
    const char *bodies[3] = { "\"x\"", "\"y\"", "\"z\"" };
    start_settlement(h_ack_x_then_retry_all, bodies, 3);
    wait_acked_and_empty(3);
    cr_assert_eq(stats("q").backlog_count, 0);
    int last = 0;
    cr_assert_eq(deliveries_of("\"x\"", NULL), 1, "retry_all overrode the explicit ack");
    cr_assert_eq(deliveries_of("\"y\"", &last), 2, "retry_all (then return 0) did not retry y");
    cr_assert_eq(last, 2);
    cr_assert_eq(deliveries_of("\"z\"", &last), 2);
    cr_assert_eq(stats("q").retried_total, 2);
}

Test(consumer, ack_all_acks_even_when_the_handler_fails)
{
    const char *bodies[3] = { "1", "2", "3" };
    start_settlement(h_ack_all_then_fail, bodies, 3);
    HX_AWAIT(stats("q").acked_total == 3);
    stop(); /* the settlement committed whole: a retry of any message would show in it */
    herald_queue_stats st = stats("q");
    cr_assert_eq(st.acked_total, 3);
    cr_assert_eq(st.retried_total, 0);
    cr_assert_eq(st.backlog_count, 0);
    cr_assert_eq(n_recs(), 3);
}

/* ---- retry delays (item 18) ----------------------------------------------------------------- */

Test(consumer, retry_delay_message_beats_retry_all_beats_consumer_setting)
{
    use_fake_clock();
    create_queue("q", 4000);
    const char *bodies[3] = { "\"a\"", "\"b\"", "\"d\"" };
    send_all("q", bodies, 3);
    herald_consumer_cfg c = cfg_q(h_delay_precedence, 3, 50);
    c.retry_delay_s = 3000;
    start(&c);
    WAIT_UNTIL(stats("q").retried_total == 3 && stats("q").leased_count == 0);
    herald_queue_stats st = stats("q");
    cr_assert_eq(st.retried_total, 3);
    cr_assert_eq(st.delayed_count, 3);
    assert_retry_delay("q", "\"a\"", 1000); /* retry(1000) */
    assert_retry_delay("q", "\"d\"", 2000); /* retry(UNSET) -> retry_all's */
    assert_retry_delay("q", "\"b\"", 2000); /* retry_all(2000) */
}

Test(consumer, failed_or_unset_retry_uses_the_consumer_retry_delay_over_the_queue_s)
{
    use_fake_clock();
    create_queue("q", 4000);
    const char *bodies[2] = { "\"c\"", "\"e\"" };
    send_all("q", bodies, 2);
    herald_consumer_cfg c = cfg_q(h_unset_retry_and_fail, 2, 50);
    c.retry_delay_s = 3000;
    start(&c);
    WAIT_UNTIL(stats("q").retried_total == 2 && stats("q").leased_count == 0);
    cr_assert_eq(stats("q").retried_total, 2);
    assert_retry_delay("q", "\"c\"", 3000);
    assert_retry_delay("q", "\"e\"", 3000);
}

Test(consumer, consumer_without_retry_delay_uses_the_queue_retry_delay)
{
    use_fake_clock();
    create_queue("q", 4000);
    send_json("q", "\"c\"", NULL);
    herald_consumer_cfg c = cfg_q(h_unset_retry_and_fail, 1, 0);
    start(&c);
    WAIT_UNTIL(stats("q").retried_total == 1 && stats("q").leased_count == 0);
    cr_assert_eq(stats("q").retried_total, 1);
    assert_retry_delay("q", "\"c\"", 4000);
}

/* ---- attempts and dead letters (item 19) ---------------------------------------------------- */

Test(consumer, attempts_increment_and_after_max_retries_the_message_reaches_the_consumer_dlq)
{
    use_fake_clock(); /* the send time is exact on it; retry_delay 0 needs no time to pass */
    create_queue("src", HERALD_UNSET); /* queue: max_retries 3, no DLQ */
    char id[HERALD_ID_SIZE];
    int64_t t0 = hx_clock_now(&env.clock);
    send_json("src", "{\"poison\":1}", id);
    static const char *const qs[] = { "src" };
    herald_consumer_cfg c = cfg_for(qs, 1, h_always_fail);
    c.max_batch_size = 1;
    c.max_batch_timeout_ms = 0;
    c.max_retries = 2;
    c.retry_delay_s = 0;
    c.dead_letter_queue = "cdlq";
    start(&c);
    WAIT_UNTIL(backlog_or_minus1("cdlq") == 1);
    cr_assert_eq(backlog_or_minus1("cdlq"), 1, "message never reached the consumer's DLQ");
    stop();

    cr_assert_eq(n_recs(), 3, "deliveries: %d, expected max_retries + 1 = 3", n_recs());
    for (int i = 0; i < 3; i++) {
        cr_assert_str_eq(R.recs[i].id, id);
        cr_assert_eq(R.recs[i].attempts, i + 1);
    }
    herald_queue_stats st = stats("src");
    cr_assert_eq(st.backlog_count, 0);
    cr_assert_eq(st.dead_lettered_total, 1);

    herald_batch b = { 0 };
    cr_assert_eq(herald_peek(env.store, "cdlq", 10, &b), 0);
    cr_assert_eq(b.n, 1);
    const herald_message *m = &b.msgs[0];
    cr_assert_str_eq(m->id, id);
    cr_assert_eq(m->timestamp_ms, t0);
    cr_assert(hx_body_is(m, "{\"poison\":1}"));
    cr_assert_str_eq(m->dead_from_queue, "src");
    cr_assert_eq(m->dead_attempts, 3);
    cr_assert_not_null(m->last_error);
    cr_assert_str_eq(m->last_error, "handler exploded");
    herald_batch_deinit(&b);
}

/* ---- concurrency (item 25) ------------------------------------------------------------------ */

Test(consumer, max_concurrency_caps_concurrent_handlers_and_is_reached)
{
    create_queue("q", HERALD_UNSET);
    const char *bodies[6] = { "1", "2", "3", "4", "5", "6" };
    send_all("q", bodies, 6);
    herald_consumer_cfg c = cfg_q(h_slow_tracked, 1, 0);
    c.max_concurrency = 2;
    R.want_overlap = 2; /* the first two handlers wait for each other */
    start(&c);
    assert_acked_soon(6, NULL);
    int mx = atomic_load(&R.max_in_flight);
    cr_assert_leq(mx, 2, "%d handlers ran at once with max_concurrency 2", mx);
    cr_assert_eq(mx, 2, "max_concurrency 2 never ran two handlers at once");
}

Test(consumer, default_concurrency_runs_one_handler_at_a_time)
{
    create_queue("q", HERALD_UNSET);
    const char *bodies[3] = { "1", "2", "3" };
    send_all("q", bodies, 3);
    herald_consumer_cfg c = cfg_q(h_slow_tracked, 1, 0);
    R.hold_ms = 100; /* the window a second handler, wrongly started, would run in */
    start(&c);
    assert_acked_soon(3, NULL);
    cr_assert_eq(atomic_load(&R.max_in_flight), 1);
}

/* ---- wake-up and idling --------------------------------------------------------------------- */

Test(consumer, message_sent_while_the_consumer_is_idle_is_delivered)
{
    create_queue("q", HERALD_UNSET);
    herald_consumer_cfg c = cfg_q(h_record_ok, 1, 0);
    start(&c);
    hx_sleep_ms(400); /* long enough for any poll interval to back off to idle */
    char id[HERALD_ID_SIZE];
    send_json("q", "\"wake\"", id);
    assert_acked_soon(1, "idle consumer never picked up the message");
    cr_assert_str_eq(R.recs[0].id, id);
}

Test(consumer, idle_consumer_does_not_busy_poll)
{
    create_queue("q", HERALD_UNSET);
    herald_consumer_cfg c = cfg_q(h_record_ok, HERALD_UNSET, 0);
    start(&c);
    hx_sleep_ms(50);
    int64_t cpu0 = hx_cpu_us();
    hx_sleep_ms(300);
    int64_t used = hx_cpu_us() - cpu0;
    cr_assert_lt(used, 50000, "idle consumer used %lld us of CPU in 300 ms", (long long)used);
    cr_assert_eq(n_batches(), 0);
}

Test(consumer, one_consumer_serves_several_queues)
{
    create_queue("q1", HERALD_UNSET);
    /* q2 is created by the consumer */
    static const char *const qs[] = { "q1", "q2" };
    herald_consumer_cfg c = cfg_for(qs, 2, h_record_ok);
    c.max_batch_size = 1;
    c.max_batch_timeout_ms = 0;
    start(&c);
    herald_queue_info qi;
    cr_assert_eq(herald_queue_get(env.store, "q2", &qi), 0, "consumer did not create q2: %s",
                 herald_last_error());
    char id1[HERALD_ID_SIZE], id2[HERALD_ID_SIZE];
    send_json("q1", "\"one\"", id1);
    send_json("q2", "\"two\"", id2);
    WAIT_UNTIL(stats("q1").acked_total == 1 && stats("q2").acked_total == 1);
    cr_assert_eq(stats("q1").acked_total, 1);
    cr_assert_eq(stats("q2").acked_total, 1);
    cr_assert_eq(n_recs(), 2);
    for (int i = 0; i < 2; i++) {
        if (strcmp(R.recs[i].id, id1) == 0) {
            cr_assert_str_eq(R.recs[i].queue, "q1");
            cr_assert_str_eq(R.recs[i].body, "\"one\"");
        } else {
            cr_assert_str_eq(R.recs[i].id, id2);
            cr_assert_str_eq(R.recs[i].queue, "q2");
            cr_assert_str_eq(R.recs[i].body, "\"two\"");
        }
    }
}

/* ---- stop and pause (item 26) --------------------------------------------------------------- */

Test(consumer, stop_lets_the_in_flight_handler_finish_and_commits_its_ack)
{
    create_queue("q", HERALD_UNSET);
    herald_consumer_cfg c = cfg_q(h_slow_200, 1, 0);
    start(&c);
    send_json("q", "{}", NULL);
    WAIT_UNTIL(atomic_load(&R.started) == 1);
    cr_assert_eq(atomic_load(&R.started), 1, "handler never started");
    stop();
    cr_assert_eq(atomic_load(&R.finished), 1, "stop returned before the handler finished");
    herald_queue_stats st = stats("q");
    cr_assert_eq(st.acked_total, 1, "the drained handler's ack was not committed");
    cr_assert_eq(st.backlog_count, 0);
    cr_assert_eq(st.leased_count, 0);
}

Test(consumer, stop_of_idle_consumer_returns_and_null_is_fine)
{
    create_queue("q", HERALD_UNSET);
    herald_consumer_cfg c = cfg_q(h_record_ok, HERALD_UNSET, HERALD_UNSET);
    start(&c);
    stop();
    herald_consumer_stop(NULL);
    /* nothing consumes any more: its threads are joined */
    send_json("q", "{}", NULL);
    cr_assert_eq(n_batches(), 0);
    cr_assert_eq(stats("q").backlog_count, 1);
}

Test(consumer, paused_queue_is_not_delivered_until_resumed)
{
    create_queue("q", HERALD_UNSET);
    create_queue("w", HERALD_UNSET); /* the witness: see empty_batches_are_never_delivered */
    cr_assert_eq(herald_queue_pause(env.store, "q"), 0);
    send_json("q", "\"held\"", NULL);
    static const char *const qs[] = { "q", "w" };
    herald_consumer_cfg c = cfg_for(qs, 2, h_record_ok);
    c.max_batch_size = 1;
    c.max_batch_timeout_ms = 0;
    start(&c);
    for (int i = 1; i <= 3; i++) {
        send_json("w", "\"w\"", NULL);
        HX_AWAIT(stats("w").acked_total == i);
    }
    cr_assert_eq(deliveries_of("\"held\"", NULL), 0, "a paused queue was delivered");
    cr_assert_eq(stats("q").backlog_count, 1);
    cr_assert_eq(herald_queue_resume(env.store, "q"), 0);
    assert_acked_soon(1, "resume did not restart delivery");
    cr_assert_eq(deliveries_of("\"held\"", NULL), 1);
}

/* ---- config validation ---------------------------------------------------------------------- */

typedef struct bad_cfg {
    const char *what; /* the setting the error must name */
    int which;
} bad_cfg;

Test(consumer, bad_config_is_einval_naming_the_setting)
{
    create_queue("q", HERALD_UNSET);
    static const char *const bad_names[] = { "bad name" };
    const bad_cfg cases[] = {
        { "max_batch_size", 0 },   { "max_batch_size", 1 },   { "max_batch_timeout", 2 },
        { "max_batch_timeout", 3 }, { "max_concurrency", 4 }, { "max_concurrency", 5 },
        { "handler", 6 },          { "queue", 7 },            { "queue", 8 },
        { "max_retries", 9 },      { "retry_delay", 10 },     { "queue", 11 },
        { "dead_letter", 12 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        herald_consumer_cfg c = cfg_for(QS_Q, 1, h_record_ok);
        switch (cases[i].which) {
        case 0: c.max_batch_size = 0; break;
        case 1: c.max_batch_size = 101; break;
        case 2: c.max_batch_timeout_ms = 60001; break;
        case 3: c.max_batch_timeout_ms = -2; break;
        case 4: c.max_concurrency = 0; break;
        case 5: c.max_concurrency = 251; break;
        case 6: c.handler = NULL; break;
        case 7: c.n_queues = 0; break;
        case 8: c.queues = NULL; c.n_queues = 0; break;
        case 9: c.max_retries = 101; break;
        case 10: c.retry_delay_s = HERALD_MAX_DELAY_S + 1; break;
        case 11: c.queues = bad_names; c.n_queues = 1; break;
        default: c.dead_letter_queue = "bad name"; break;
        }
        herald_consumer *out = NULL;
        int rc = herald_consumer_start(env.store, &c, &out);
        if (rc == 0) {
            herald_consumer_stop(out);
            cr_expect_fail("case %zu (%s): accepted", i, cases[i].what);
            continue;
        }
        cr_expect_eq(rc, HERALD_EINVAL, "case %zu (%s): got %s (%d)", i, cases[i].what,
                     herald_err_name(rc), rc);
        cr_expect(hx_mentions(herald_last_error(), cases[i].what),
                  "case %zu: last error '%s' does not name '%s'", i, herald_last_error(),
                  cases[i].what);
        cr_assert_null(out, "case %zu: out set on failure", i);
    }
    herald_queue_info qi;
    cr_assert_eq(herald_queue_get(env.store, "bad name", &qi) < 0, 1);
}

Test(consumer, boundary_config_values_are_accepted)
{
    create_queue("q", HERALD_UNSET);
    herald_consumer_cfg c = cfg_q(h_record_ok, 100, 60000);
    c.max_concurrency = 250;
    c.max_retries = 100;
    c.retry_delay_s = HERALD_MAX_DELAY_S;
    start(&c);
    stop();
    c.max_batch_size = 1;
    c.max_batch_timeout_ms = 0;
    c.max_concurrency = 1;
    c.max_retries = 0;
    c.retry_delay_s = 0;
    start(&c);
    stop();
}

Test(consumer, cfg_init_sets_every_optional_field_to_unset)
{
    herald_consumer_cfg c;
    memset(&c, 0x5a, sizeof c);
    herald_consumer_cfg_init(&c);
    cr_assert_null(c.queues);
    cr_assert_eq(c.n_queues, 0);
    cr_assert_null(c.handler);
    cr_assert_eq(c.max_batch_size, HERALD_UNSET);
    cr_assert_eq(c.max_batch_timeout_ms, HERALD_UNSET);
    cr_assert_eq(c.max_retries, HERALD_UNSET);
    cr_assert_eq(c.retry_delay_s, HERALD_UNSET);
    cr_assert_eq(c.max_concurrency, HERALD_UNSET);
    cr_assert_null(c.dead_letter_queue);
    cr_assert_eq(c.visibility_timeout_ms, HERALD_UNSET);
}
