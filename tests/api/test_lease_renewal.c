// SPDX-License-Identifier: MIT
/*
 * test_lease_renewal.c - what keeps a push consumer's lease alive and what wakes a waiting
 * consumer (include/herald.h herald_consumer_cfg.visibility_timeout_ms "renewed while the
 * handler runs", herald_store_wake):
 *   - a handler that runs several times longer than visibility_timeout_ms still gets its
 *     message exactly once (attempts 1, one call, acked): the runtime renewed the lease, half
 *     way to each expiry on the store's clock (fake clock: each renewal is awaited);
 *   - herald_consumer_stop during such a slow handler lets it finish and commits its ack, with
 *     no redelivery and no expired lease on record;
 *   - on the fake clock, a consumer waiting for a delayed message delivers it once the clock
 *     passed the delay, not 1 ms before, with herald_store_wake as the only nudge. (The idle
 *     consumer also re-reads the clock every <= 250 ms, so this cannot prove the wake itself
 *     did it; only a timing assertion could, and tests assert no timings.)
 * Tests wait on conditions (HX_AWAIT); no test asserts how long anything took.
 */
#include <criterion/criterion.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald.h"
#include "support.h"

static hx_env env;
static herald_consumer *g_c;

/* What the handler saw (written on consumer threads, read by the test thread). */
static struct {
    atomic_int calls;
    atomic_int max_attempts;
    atomic_int started;
    atomic_int finished;
    int64_t sleep_first_ms; /* how long the first call sleeps */
    atomic_int release;     /* h_held: the test lets the handler return */
} R;

/* Runs until the test sets R.release (bounded: a test that never does fails anyway). */
static int h_held(herald_delivery *d, void *ud)
{
    (void)ud;
    atomic_fetch_add(&R.calls, 1);
    for (size_t i = 0; i < herald_delivery_count(d); i++) {
        int a = herald_delivery_msg(d, i)->attempts;
        if (a > atomic_load(&R.max_attempts))
            atomic_store(&R.max_attempts, a);
    }
    atomic_store(&R.started, 1);
    int64_t end = hx_mono_ms() + HX_AWAIT_MS;
    while (!atomic_load(&R.release) && hx_mono_ms() < end)
        hx_sleep_ms(1);
    atomic_store(&R.finished, 1);
    return 0;
}

static int h_slow_first(herald_delivery *d, void *ud)
{
    (void)ud;
    int n = atomic_fetch_add(&R.calls, 1) + 1;
    for (size_t i = 0; i < herald_delivery_count(d); i++) {
        int a = herald_delivery_msg(d, i)->attempts;
        if (a > atomic_load(&R.max_attempts))
            atomic_store(&R.max_attempts, a);
    }
    atomic_store(&R.started, 1);
    if (n == 1)
        hx_sleep_ms(R.sleep_first_ms);
    atomic_store(&R.finished, 1);
    return 0;
}

static void setup_with(unsigned flags)
{
    memset(&R, 0, sizeof R);
    hx_env_setup(&env, flags);
    g_c = NULL;
    hx_create_queue(env.store, "q", NULL);
}

static void setup_real(void)
{
    setup_with(HX_ENV_REAL_CLOCK);
}

static void setup_fake(void)
{
    setup_with(0);
}

static void teardown(void)
{
    herald_consumer_stop(g_c);
    g_c = NULL;
    hx_env_teardown(&env);
}

TestSuite(lease, .init = setup_real, .fini = teardown, .timeout = 60);
TestSuite(lease_fake, .init = setup_fake, .fini = teardown, .timeout = 60);
TestSuite(wake, .init = setup_fake, .fini = teardown, .timeout = 60);

static const char *const QS[] = { "q" };

/* A consumer of "q": one message per batch, no batch wait, a 500 ms lease, two handlers at once
 * (so that a redelivery during the slow handler would reach the second one). */
static herald_consumer_cfg slow_cfg(void)
{
    herald_consumer_cfg c;
    herald_consumer_cfg_init(&c);
    c.queues = QS;
    c.n_queues = 1;
    c.handler = h_slow_first;
    c.max_batch_size = 1;
    c.max_batch_timeout_ms = 0;
    c.max_concurrency = 2;
    c.retry_delay_s = 0;
    c.visibility_timeout_ms = 500;
    return c;
}

/* Failed attempts on record for the message (an expired lease is one). */
static size_t failed_attempts(const char *id)
{
    herald_attempt *a = NULL;
    size_t n = 0;
    int rc = herald_message_attempts(env.store, id, &a, &n);
    cr_assert_eq(rc, 0, "message_attempts: %s: %s", herald_err_name(rc), herald_last_error());
    herald_free(a);
    return n;
}

/* When the leased message's lease expires (peek shows it as its visible_at_ms). */
static int64_t lease_until(void)
{
    herald_batch b = { 0 };
    cr_assert_eq(hx_peek(env.store, "q", &b), 1);
    int64_t t = b.msgs[0].visible_at_ms;
    herald_batch_deinit(&b);
    return t;
}

Test(lease_fake, a_handler_running_past_the_visibility_timeout_keeps_its_lease_and_runs_once)
{
    char id[HERALD_ID_SIZE];
    hx_send_json(env.store, "q", "{\"slow\":true}", HERALD_UNSET, id);
    herald_consumer_cfg c = slow_cfg();
    c.handler = h_held;
    g_c = hx_consumer_start(env.store, &c);
    HX_AWAIT(atomic_load(&R.started) == 1);
    cr_assert_eq(lease_until(), hx_clock_now(&env.clock) + 500);
    /* 8 half-leases (4 leases of 500 ms) on the store's clock, each renewal awaited: the lease
     * is extended to now + 500 ms half way to its expiry, so it never lapses */
    for (int i = 0; i < 8; i++) {
        hx_clock_advance(&env.clock, 250);
        herald_store_wake(env.store);
        HX_AWAIT(lease_until() == hx_clock_now(&env.clock) + 500);
    }
    atomic_store(&R.release, 1);
    HX_AWAIT(hx_stats(env.store, "q").acked_total == 1);
    herald_consumer_stop(g_c); /* joined: a redelivery would have been handled by now */
    g_c = NULL;
    herald_queue_stats st = hx_stats(env.store, "q");
    cr_assert_eq(st.acked_total, 1, "acked %lld", (long long)st.acked_total);
    cr_assert_eq(atomic_load(&R.calls), 1,
                 "handler called %d times: the lease expired while the handler ran",
                 atomic_load(&R.calls));
    cr_assert_eq(atomic_load(&R.max_attempts), 1, "delivered with attempts %d",
                 atomic_load(&R.max_attempts));
    cr_assert_eq(st.backlog_count, 0);
    cr_assert_eq(st.retried_total, 0);
    cr_assert_eq(failed_attempts(id), 0, "an expired lease was recorded for the message");
}

Test(lease, stop_during_a_slow_handler_completes_it_without_redelivery)
{
    R.sleep_first_ms = 1800;
    char id[HERALD_ID_SIZE];
    hx_send_json(env.store, "q", "{\"slow\":true}", HERALD_UNSET, id);
    herald_consumer_cfg c = slow_cfg();
    g_c = hx_consumer_start(env.store, &c);
    HX_AWAIT(atomic_load(&R.started) == 1);
    herald_consumer_stop(g_c);
    g_c = NULL;
    cr_assert_eq(atomic_load(&R.finished), 1, "stop returned before the slow handler finished");
    cr_assert_eq(atomic_load(&R.calls), 1, "handler called %d times", atomic_load(&R.calls));
    cr_assert_eq(atomic_load(&R.max_attempts), 1);
    herald_queue_stats st = hx_stats(env.store, "q");
    cr_assert_eq(st.acked_total, 1, "the slow handler's ack was not committed");
    cr_assert_eq(st.backlog_count, 0);
    cr_assert_eq(st.leased_count, 0);
    cr_assert_eq(st.retried_total, 0);
    cr_assert_eq(failed_attempts(id), 0, "an expired lease was recorded for the message");
}

/* ---- herald_store_wake (fake clock) ---------------------------------------------------------- */

static int h_count(herald_delivery *d, void *ud)
{
    (void)ud;
    atomic_fetch_add(&R.calls, (int)herald_delivery_count(d));
    return 0;
}

Test(wake, a_waiting_consumer_delivers_a_delayed_message_once_the_clock_passes_its_delay)
{
    hx_send_json(env.store, "q", "\"later\"", 30, NULL);
    hx_create_queue(env.store, "w", NULL);
    static const char *const qs[] = { "q", "w" };
    herald_consumer_cfg c;
    herald_consumer_cfg_init(&c);
    c.queues = qs; /* "w": a witness; the pass that delivers its message looked at "q" too */
    c.n_queues = 2;
    c.handler = h_count;
    c.max_batch_size = 1;
    c.max_batch_timeout_ms = 0;
    g_c = hx_consumer_start(env.store, &c);
    hx_send_json(env.store, "w", "\"now\"", HERALD_UNSET, NULL);
    HX_AWAIT(hx_stats(env.store, "w").acked_total == 1);
    cr_assert_eq(atomic_load(&R.calls), 1, "a message delayed 30 s was delivered at once");
    cr_assert_eq(hx_stats(env.store, "q").delayed_count, 1);

    hx_clock_advance(&env.clock, 29999); /* 1 ms short */
    herald_store_wake(env.store);
    hx_send_json(env.store, "w", "\"now\"", HERALD_UNSET, NULL);
    HX_AWAIT(hx_stats(env.store, "w").acked_total == 2);
    cr_assert_eq(atomic_load(&R.calls), 2, "a message delayed 30 s was delivered 1 ms early");

    hx_clock_advance(&env.clock, 1);
    herald_store_wake(env.store); /* the only nudge: no send */
    HX_AWAIT(hx_stats(env.store, "q").acked_total == 1);
    cr_assert_eq(atomic_load(&R.calls), 3, "calls %d", atomic_load(&R.calls));
    cr_assert_eq(hx_stats(env.store, "q").acked_total, 1);
    cr_assert_eq(hx_stats(env.store, "q").backlog_count, 0);
}
