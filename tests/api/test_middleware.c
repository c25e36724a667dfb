// SPDX-License-Identifier: MIT
/*
 * test_middleware.c - per-message chains through herald.h: composition order, error classes
 * and their retry policy (transient 10 s, rate-limited 60 s, permanent straight to the DLQ,
 * exponential backoff capped), dedup, rate limiting, metrics readable from the store, structured
 * log lines, and the correlation trace of what the consumer did.
 * The suite runs on the real clock; tests of times (retry delays, the rate limiter's refill)
 * reopen the store on the fake clock. Outcomes are awaited on conditions (HX_AWAIT).
 */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

static hx_env g_env;
#define S (g_env.store)

static void setup(void)
{
    hx_env_setup(&g_env, HX_ENV_REAL_CLOCK);
    herald_queue_settings st;
    herald_queue_settings_init(&st);
    st.dead_letter_queue = "jobs-dlq";
    st.max_retries = 5;
    hx_create_queue(S, "jobs", &st);
}

static void teardown(void)
{
    hx_env_teardown(&g_env);
}

TestSuite(middleware, .init = setup, .fini = teardown, .timeout = 60);

static void send_ev(const char *type, const char *payload, const char *event_id, const char *corr)
{
    herald_event e = { .event_id = event_id, .type = type, .source = "test",
                       .correlation_id = corr, .payload_json = payload };
    cr_assert_eq(herald_send_event(S, "jobs", &e, HERALD_UNSET, NULL), 0, "%s",
                 herald_last_error());
}

static herald_consumer *start(herald_chain *ch, const herald_retry_policy *p)
{
    herald_consumer_cfg cfg;
    herald_consumer_cfg_init(&cfg);
    const char *qs[] = { "jobs" };
    static const char *queues_static[1];
    queues_static[0] = qs[0];
    cfg.queues = queues_static;
    cfg.n_queues = 1;
    cfg.chain = ch;
    cfg.max_batch_timeout_ms = 0;
    cfg.name = "worker-a";
    if (p)
        cfg.retry_policy = *p;
    herald_consumer *c = NULL;
    cr_assert_eq(herald_consumer_start(S, &cfg, &c), 0, "%s", herald_last_error());
    return c;
}

/* Messages of "jobs" settled so far, by what the store committed: acked, retried, dead. */
static int64_t n_settled(void)
{
    herald_queue_stats st = hx_stats(S, "jobs");
    return st.acked_total + st.retried_total + st.dead_lettered_total + st.deleted_total;
}

/* Waits until the consumer's settlements of n messages (acked, retried or dead-lettered) have
 * committed. */
static void wait_settled(herald_consumer *c, int64_t n)
{
    (void)c;
    HX_AWAIT(n_settled() >= n);
}

/* ---- composition ---- */

typedef struct order_log {
    pthread_mutex_t mu;
    char text[256];
} order_log;

static order_log g_order = { PTHREAD_MUTEX_INITIALIZER, "" };

static void note(const char *s)
{
    pthread_mutex_lock(&g_order.mu);
    strncat(g_order.text, s, sizeof g_order.text - strlen(g_order.text) - 1);
    pthread_mutex_unlock(&g_order.mu);
}

/* Notes "<tag><" before and "><tag>" after the rest of the chain; st is the tag ("a", "b"). */
static int mw_tagged(herald_msg_ctx *c, const herald_message *m, const herald_envelope *env,
                     void *st)
{
    const char *tag = st;
    char mark[16];
    snprintf(mark, sizeof mark, "%s<", tag);
    note(mark);
    int rc = herald_mw_next(c, m, env);
    snprintf(mark, sizeof mark, ">%s", tag);
    note(mark);
    return rc;
}

static int h_ok(herald_msg_ctx *c, const herald_message *m, const herald_envelope *env, void *ud)
{
    (void)c;
    (void)m;
    (void)env;
    (void)ud;
    note("H");
    return 0;
}

Test(middleware, the_first_middleware_added_is_the_outermost)
{
    herald_chain *ch = NULL;
    cr_assert_eq(herald_chain_new(h_ok, NULL, &ch), 0);
    cr_assert_eq(herald_chain_use(ch, mw_tagged, (void *)"a"), 0);
    cr_assert_eq(herald_chain_use(ch, mw_tagged, (void *)"b"), 0);
    send_ev("job.run", "{}", NULL, NULL);
    herald_consumer *c = start(ch, NULL);
    wait_settled(c, 1);
    herald_consumer_stop(c);
    herald_chain_free(ch);
    cr_assert_str_eq(g_order.text, "a<b<H>b>a");
    cr_assert_eq(hx_stats(S, "jobs").backlog_count, 0, "a success acks");
}

/* ---- error classes ---- */

static int h_by_payload(herald_msg_ctx *c, const herald_message *m, const herald_envelope *env,
                        void *ud)
{
    (void)m;
    (void)ud;
    if (strstr(env->payload_json, "\"permanent\"")) {
        herald_msg_ctx_set_error(c, "bad input: cannot ever work");
        return HERALD_FAIL_PERMANENT;
    }
    if (strstr(env->payload_json, "\"limited\""))
        return HERALD_FAIL_RATE_LIMITED;
    if (strstr(env->payload_json, "\"transient\""))
        return HERALD_FAIL_TRANSIENT;
    return -42; /* any other failure counts as transient */
}

/* Reopens the test's store on its fake clock (the suite runs on the real one). */
static void use_fake_clock(void)
{
    hx_env_close(&g_env);
    g_env.flags &= ~(unsigned)HX_ENV_REAL_CLOCK;
    hx_env_reopen(&g_env);
}

static int64_t visible_delay_s(const char *payload_fragment, int64_t t0)
{
    herald_batch b = { 0 };
    size_t n = hx_peek(S, "jobs", &b);
    int64_t d = -1;
    for (size_t i = 0; i < n; i++)
        if (strstr((const char *)b.msgs[i].body, payload_fragment))
            d = (b.msgs[i].visible_at_ms - t0 + 500) / 1000;
    herald_batch_deinit(&b);
    return d;
}

Test(middleware, error_classes_pick_the_retry_policy)
{
    herald_chain *ch = NULL;
    cr_assert_eq(herald_chain_new(h_by_payload, NULL, &ch), 0);
    use_fake_clock(); /* the retries' visible times are exact on it */
    send_ev("job.run", "{\"k\":\"permanent\"}", NULL, NULL);
    send_ev("job.run", "{\"k\":\"limited\"}", NULL, NULL);
    send_ev("job.run", "{\"k\":\"transient\"}", NULL, NULL);
    send_ev("job.run", "{\"k\":\"other\"}", NULL, NULL);
    int64_t t0 = hx_clock_now(&g_env.clock);
    herald_consumer *c = start(ch, NULL);
    wait_settled(c, 4);
    herald_consumer_stop(c);
    herald_chain_free(ch);
    cr_assert_eq(hx_stats(S, "jobs-dlq").backlog_count, 1, "permanent goes straight to the DLQ");
    herald_batch b = { 0 };
    cr_assert_eq(hx_peek(S, "jobs-dlq", &b), 1);
    cr_assert_str_eq(b.msgs[0].last_error, "bad input: cannot ever work");
    cr_assert_eq(b.msgs[0].dead_attempts, 1, "no retry before the DLQ");
    herald_batch_deinit(&b);
    int64_t limited = visible_delay_s("limited", t0), transient = visible_delay_s("transient", t0),
            other = visible_delay_s("other", t0);
    cr_assert_eq(limited, 60, "rate-limited retries in 60 s, got %lld", (long long)limited);
    cr_assert_eq(transient, 10, "transient retries in 10 s, got %lld", (long long)transient);
    cr_assert_eq(other, 10, "other failures are transient, got %lld", (long long)other);
}

Test(middleware, the_retry_policy_is_configurable_and_backoff_is_exponential_and_capped)
{
    herald_chain *ch = NULL;
    cr_assert_eq(herald_chain_new(h_by_payload, NULL, &ch), 0);
    /* attempts 1 -> delay 100; to see the doubling the message must come back: use a message
     * whose earlier attempts are already counted by pulling it twice first. */
    use_fake_clock();
    send_ev("job.run", "{\"k\":\"transient\"}", NULL, NULL);
    for (int i = 0; i < 3; i++) { /* three deliveries that expire */
        herald_batch b = { 0 };
        cr_assert_eq(hx_pull(S, "jobs", 1, 1, &b), 1);
        herald_batch_deinit(&b);
        hx_clock_advance(&g_env.clock, 2); /* past the 1 ms lease */
    }
    herald_retry_policy p = { .transient_delay_s = 100, .rate_limited_delay_s = 7,
                              .is_exponential = true, .backoff_cap_s = 300 };
    int64_t t0 = hx_clock_now(&g_env.clock);
    herald_consumer *c = start(ch, &p);
    wait_settled(c, 1);
    herald_consumer_stop(c);
    herald_chain_free(ch);
    /* fourth delivery: 100 * 2^3 = 800 s, capped at 300 s */
    int64_t d = visible_delay_s("transient", t0);
    cr_assert_eq(d, 300, "backoff capped at 300 s, got %lld", (long long)d);
}

/* ---- dedup ---- */

static int g_calls;

static int h_count(herald_msg_ctx *c, const herald_message *m, const herald_envelope *env,
                   void *ud)
{
    (void)c;
    (void)m;
    (void)env;
    (void)ud;
    __atomic_add_fetch(&g_calls, 1, __ATOMIC_SEQ_CST);
    return 0;
}

/* id: a UUIDv7, or another version (its record lives in another table, migration 0011). */
static void dedup_case(const char *id)
{
    herald_chain *ch = NULL;
    cr_assert_eq(herald_chain_new(h_count, NULL, &ch), 0);
    cr_assert_eq(herald_chain_use_dedup(ch, S), 0);
    send_ev("job.run", "{}", id, NULL);
    herald_consumer *c = start(ch, NULL);
    wait_settled(c, 1);
    send_ev("job.run", "{}", id, NULL); /* the same event again, after the first was recorded */
    send_ev("job.run", "{}", NULL, NULL);
    wait_settled(c, 3);
    herald_consumer_stop(c);
    herald_chain_free(ch);
    cr_assert_eq(g_calls, 2, "the duplicate did not reach the handler");
    cr_assert_eq(hx_stats(S, "jobs").backlog_count, 0, "the duplicate is acked");
}

Test(middleware, dedup_skips_an_event_already_processed)
{
    dedup_case("01a21a8a-86ce-7049-952d-70f1da8c7c28");
}

Test(middleware, dedup_skips_an_event_already_processed_whatever_its_uuid_version)
{
    dedup_case("9c1e3f5a-2b4d-4f60-8a7b-1c2d3e4f5a6b"); /* a UUIDv4 */
}

/* ---- rate limiting ---- */

Test(middleware, rate_limit_is_a_token_bucket_per_key)
{
    herald_chain *ch = NULL;
    cr_assert_eq(herald_chain_new(h_count, NULL, &ch), 0);
    cr_assert_eq(herald_chain_use_rate_limit(ch, "payload.brand", 0.001, 2), 0);
    for (int i = 0; i < 3; i++)
        send_ev("job.run", "{\"brand\":\"a\"}", NULL, NULL);
    send_ev("job.run", "{\"brand\":\"b\"}", NULL, NULL);
    herald_consumer *c = start(ch, NULL);
    wait_settled(c, 4);
    herald_consumer_stop(c);
    herald_chain_free(ch);
    cr_assert_eq(g_calls, 3, "brand a gets its burst of 2, brand b its own bucket");
    herald_queue_stats st = hx_stats(S, "jobs");
    cr_assert_eq(st.delayed_count, 1, "the third 'a' is retried later");
    cr_assert_eq(herald_chain_use_rate_limit(NULL, NULL, 1, 1), HERALD_EINVAL);
    herald_chain *ch2 = NULL;
    cr_assert_eq(herald_chain_new(h_count, NULL, &ch2), 0);
    cr_assert_eq(herald_chain_use_rate_limit(ch2, "brand", 1, 1), HERALD_EINVAL);
    cr_assert(hx_mentions(herald_last_error(), "brand"));
    cr_assert_eq(herald_chain_use_rate_limit(ch2, NULL, 0, 1), HERALD_EINVAL);
    herald_chain_free(ch2);
}

Test(middleware, rate_limit_tokens_come_back_on_the_store_clock)
{
    /* One token per 1000 s of the store's clock, burst 1; a rate-limited message comes back
     * 1 s later (the policy). Only the fake clock moves time: a bucket refilled by any other
     * clock stays empty however long the test takes. */
    use_fake_clock();
    herald_chain *ch = NULL;
    cr_assert_eq(herald_chain_new(h_count, NULL, &ch), 0);
    cr_assert_eq(herald_chain_use_rate_limit(ch, NULL, 0.001, 1), 0);
    send_ev("job.run", "{\"n\":1}", NULL, NULL);
    send_ev("job.run", "{\"n\":2}", NULL, NULL);
    herald_retry_policy p = { .transient_delay_s = 1, .rate_limited_delay_s = 1,
                              .is_exponential = false, .backoff_cap_s = 1 };
    herald_consumer *c = start(ch, &p);
    HX_AWAIT(n_settled() == 2);
    cr_assert_eq(__atomic_load_n(&g_calls, __ATOMIC_SEQ_CST), 1, "the burst is one message");
    cr_assert_eq(hx_stats(S, "jobs").retried_total, 1, "the second is rate-limited");

    hx_clock_advance(&g_env.clock, 1000); /* it is visible again; the bucket has 0.001 token */
    herald_store_wake(S);
    HX_AWAIT(hx_stats(S, "jobs").retried_total == 2);
    cr_assert_eq(__atomic_load_n(&g_calls, __ATOMIC_SEQ_CST), 1, "a token came back early");

    hx_clock_advance(&g_env.clock, 1000 * 1000); /* 1000 s: a whole token */
    herald_store_wake(S);
    HX_AWAIT(hx_stats(S, "jobs").acked_total == 2);
    herald_consumer_stop(c);
    herald_chain_free(ch);
    cr_assert_eq(__atomic_load_n(&g_calls, __ATOMIC_SEQ_CST), 2);
    cr_assert_eq(hx_stats(S, "jobs").retried_total, 2);
}

/* ---- metrics ---- */

Test(middleware, metrics_count_outcomes_per_queue_and_type_and_are_readable_from_the_store)
{
    herald_chain *ch = NULL;
    cr_assert_eq(herald_chain_new(h_by_payload, NULL, &ch), 0);
    cr_assert_eq(herald_chain_use_metrics(ch, S), 0);
    send_ev("job.run", "{\"k\":\"transient\"}", NULL, NULL);
    send_ev("job.run", "{\"k\":\"permanent\"}", NULL, NULL);
    send_ev("job.other", "{\"k\":\"limited\"}", NULL, NULL);
    herald_consumer *c = start(ch, NULL);
    wait_settled(c, 3);
    herald_consumer_stop(c);
    herald_chain_free(ch); /* flushes */
    herald_metric *m = NULL;
    size_t n = 0;
    cr_assert_eq(herald_metrics_list(S, &m, &n), 0);
    cr_assert_eq(n, 3);
    int64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        cr_assert_str_eq(m[i].queue, "jobs");
        total += m[i].count;
        int64_t in_buckets = 0;
        for (int b = 0; b < HERALD_METRIC_BUCKETS; b++)
            in_buckets += m[i].buckets[b];
        cr_assert_eq(in_buckets, m[i].count);
        cr_assert(herald_metric_quantile(&m[i], 0.5) > 0);
        if (strcmp(m[i].type, "job.other") == 0)
            cr_assert_str_eq(m[i].outcome, "rate_limited");
    }
    cr_assert_eq(total, 3);
    herald_free(m);
    /* and through the CLI */
    char *url = hx_url(g_env.dir, "herald.db");
    const char *argv[] = { "--store", url, "metrics", "--json", NULL };
    char *out = NULL;
    cr_assert_eq(hx_cli(argv, NULL, &out, NULL), 0);
    cr_assert(strstr(out, "\"outcome\":\"permanent\""), "%s", out);
    free(out);
    free(url);
}

/* ---- logging ---- */

Test(middleware, logging_writes_one_json_line_per_message)
{
    cr_redirect_stderr();
    herald_chain *ch = NULL;
    cr_assert_eq(herald_chain_new(h_by_payload, NULL, &ch), 0);
    cr_assert_eq(herald_chain_use_logging(ch), 0);
    send_ev("job.run", "{\"k\":\"transient\"}", NULL, "corr-9");
    herald_consumer *c = start(ch, NULL);
    wait_settled(c, 1);
    herald_consumer_stop(c);
    herald_chain_free(ch);
    fflush(stderr);
    char buf[4096] = "";
    FILE *f = cr_get_redirected_stderr();
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    cr_assert(strstr(buf, "\"msg\":\"handled\""), "%s", buf);
    cr_assert(strstr(buf, "\"type\":\"job.run\""), "%s", buf);
    cr_assert(strstr(buf, "\"correlation_id\":\"corr-9\""), "%s", buf);
    cr_assert(strstr(buf, "\"outcome\":\"transient\""), "%s", buf);
    cr_assert(strstr(buf, "\"attempts\":\"1\""), "%s", buf);
    cr_assert(strstr(buf, "\"duration_ms\""), "%s", buf);
    cr_assert(strstr(buf, "\"event_id\""), "%s", buf);
}

/* ---- trace ---- */

Test(middleware, the_trace_shows_which_handler_did_what_in_order)
{
    herald_chain *ch = NULL;
    cr_assert_eq(herald_chain_new(h_by_payload, NULL, &ch), 0);
    send_ev("job.run", "{\"k\":\"permanent\"}", NULL, "chain-1");
    herald_consumer *c = start(ch, NULL);
    wait_settled(c, 1);
    herald_consumer_stop(c);
    herald_chain_free(ch);
    herald_trace_entry *t = NULL;
    size_t n = 0;
    cr_assert_eq(herald_trace(S, "chain-1", &t, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(t[0].what, "sent");
    cr_assert_str_eq(t[0].queue, "jobs");
    cr_assert_str_eq(t[1].what, "dead_lettered");
    cr_assert_str_eq(t[1].handler, "worker-a");
    cr_assert_eq(t[1].attempt, 1);
    cr_assert_str_eq(t[1].detail, "bad input: cannot ever work");
    cr_assert(t[0].at_ms <= t[1].at_ms);
    herald_free(t);
    cr_assert_eq(herald_trace(S, "nothing-here", &t, &n), 0);
    cr_assert_eq(n, 0);
    herald_free(t);
}

Test(middleware, bad_chain_configuration_is_refused)
{
    herald_chain *ch = NULL;
    cr_assert_eq(herald_chain_new(NULL, NULL, &ch), HERALD_EINVAL);
    cr_assert_eq(herald_chain_new(h_ok, NULL, &ch), 0);
    herald_consumer_cfg cfg;
    herald_consumer_cfg_init(&cfg);
    const char *qs[] = { "jobs" };
    cfg.queues = qs;
    cfg.n_queues = 1;
    cfg.chain = ch;
    cfg.handler = (herald_handler_cb)1; /* two handlers */
    herald_consumer *c = NULL;
    cr_assert_eq(herald_consumer_start(S, &cfg, &c), HERALD_EINVAL);
    cfg.handler = NULL;
    cfg.retry_policy.transient_delay_s = -1;
    cr_assert_eq(herald_consumer_start(S, &cfg, &c), HERALD_EINVAL);
    cr_assert(hx_mentions(herald_last_error(), "retry_policy"));
    herald_chain_free(ch);
}

/* ---- dedup: a failure is not recorded as processed ---- */

static int g_fail_first_calls;

/* Fails (transient) the first delivery of each message, succeeds after. */
static int h_fail_first(herald_msg_ctx *c, const herald_message *m, const herald_envelope *env,
                        void *ud)
{
    (void)env;
    (void)ud;
    __atomic_add_fetch(&g_fail_first_calls, 1, __ATOMIC_SEQ_CST);
    if (m->attempts == 1) {
        herald_msg_ctx_set_error(c, "first attempt fails");
        return HERALD_FAIL_TRANSIENT;
    }
    return 0;
}

Test(middleware, dedup_does_not_record_a_failed_attempt_so_the_retry_runs_the_handler)
{
    herald_chain *ch = NULL;
    cr_assert_eq(herald_chain_new(h_fail_first, NULL, &ch), 0);
    cr_assert_eq(herald_chain_use_dedup(ch, S), 0);
    herald_retry_policy p = { .transient_delay_s = 0, .rate_limited_delay_s = 0,
                              .backoff_cap_s = 300 };
    const char *id = "01a21a8a-86ce-7049-952d-70f1da8c7c29";
    send_ev("job.run", "{}", id, NULL);
    herald_consumer *c = start(ch, &p);
    wait_settled(c, 2); /* attempt 1 retried, attempt 2 acked */
    int after_retry = __atomic_load_n(&g_fail_first_calls, __ATOMIC_SEQ_CST);
    herald_queue_stats st = hx_stats(S, "jobs");
    cr_expect_eq(after_retry, 2,
                 "handler ran %d times: the failed attempt was recorded as processed and its "
                 "redelivery skipped",
                 after_retry);
    cr_expect_eq(st.retried_total, 1);
    cr_expect_eq(st.acked_total, 1);

    send_ev("job.run", "{}", id, NULL); /* a duplicate after the success */
    wait_settled(c, 3);
    herald_consumer_stop(c);
    herald_chain_free(ch);
    cr_assert_eq(__atomic_load_n(&g_fail_first_calls, __ATOMIC_SEQ_CST), after_retry,
                 "the duplicate after the success reached the handler");
    cr_assert_eq(after_retry, 2);
    st = hx_stats(S, "jobs");
    cr_assert_eq(st.backlog_count, 0, "the duplicate is acked");
    cr_assert_eq(st.acked_total, 2);
    cr_assert_eq(st.dead_lettered_total, 0);
}

/* ---- herald_metric_quantile (a pure function of the histogram) ---- */

/* Bucket upper bounds (ms): 1 2 5 10 25 50 100 250 500 1000 2500 5000, then overflow. */
static herald_metric metric_of(const int64_t buckets[HERALD_METRIC_BUCKETS])
{
    herald_metric m;
    memset(&m, 0, sizeof m);
    snprintf(m.queue, sizeof m.queue, "jobs");
    snprintf(m.outcome, sizeof m.outcome, "ok");
    for (int i = 0; i < HERALD_METRIC_BUCKETS; i++) {
        m.buckets[i] = buckets[i];
        m.count += buckets[i];
    }
    m.sum_ms = (double)m.count; /* not used by the quantile */
    return m;
}

Test(metric_quantile, returns_the_upper_bound_of_the_bucket_holding_the_quantile)
{
    struct {
        int64_t buckets[HERALD_METRIC_BUCKETS];
        double q, want;
    } cases[] = {
        /* 40 at <= 5, 50 at <= 100, 10 at <= 1000: p50 in the 100 bucket, p99 in the 1000 one */
        { { [2] = 40, [6] = 50, [9] = 10 }, 0.5, 100 },
        { { [2] = 40, [6] = 50, [9] = 10 }, 0.99, 1000 },
        { { [0] = 7 }, 0.5, 1 },
        { { [0] = 7 }, 0.99, 1 },
        { { [11] = 3 }, 0.99, 5000 },
        /* above 5000 ms: the overflow bucket has no bound */
        { { [0] = 1, [12] = 99 }, 0.5, INFINITY },
        { { [0] = 1, [12] = 99 }, 0.99, INFINITY },
        { { [3] = 100, [12] = 1 }, 0.5, 10 },
        /* no observations */
        { { 0 }, 0.5, 0 },
        { { 0 }, 0.99, 0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        herald_metric m = metric_of(cases[i].buckets);
        double got = herald_metric_quantile(&m, cases[i].q);
        cr_expect(got == cases[i].want, "case %zu: q=%g: got %g, want %g", i, cases[i].q, got,
                  cases[i].want);
    }
}
