// SPDX-License-Identifier: MIT
/*
 * test_effectively_once.c - effectively-once handlers (include/herald.h "Effectively-once
 * handlers", herald_consumer_cfg.tx_handler / processed_retention_s) and SQL for user code
 * (herald_sql_exec / herald_sql_query / herald_tx_exec), through the public API.
 *
 * What is checked: a tx handler's SQL, its sends and the ack commit together; a failing handler
 * leaves nothing behind and its message is retried (then dead-lettered with the error it set);
 * a duplicated event (same event_id) runs the handler once per queue; a body that is not an
 * envelope reaches the handler with env NULL; events sent from a handler inherit the
 * correlation id; processed records are pruned after processed_retention_s (fake clock);
 * user SQL binds every argument type, reports SQL errors, and may not touch Herald's tables,
 * control transactions, ATTACH or PRAGMA.
 *
 * Consumer suites use the REAL clock; outcomes are awaited by polling stats in a bounded loop
 * (WAIT_UNTIL, 15 s); no test asserts how long anything took. Handlers run on the store's writer
 * thread: they only use herald_tx_* and record into R under its mutex; the test thread asserts.
 */
#include <criterion/criterion.h>
#include <jansson.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald.h"
#include "support.h"

static hx_env env;
static herald_consumer *g_c;

/* ---- what handlers did --------------------------------------------------------------------- */

enum { MAX_CALLS = 512, N_PROBES = 16 };

typedef struct call {
    char msg_id[HERALD_ID_SIZE];
    char event_id[HERALD_ID_SIZE]; /* "" when env was NULL */
    int attempts;
} call;

static struct {
    pthread_mutex_t mu;
    call calls[MAX_CALLS];
    int n_calls;
    int n_env_null;
    int first_rc;          /* first unexpected herald_tx_* failure (0 = none) */
    char first_err[300];
    int probe_rc[N_PROBES]; /* deny probe: rc per statement */
    int64_t own_write_seen; /* deny probe: rows its tx_query saw after its own insert */
} R;

static void rec_reset(void)
{
    memset(&R, 0, sizeof R);
    pthread_mutex_init(&R.mu, NULL);
}

static int n_calls(void)
{
    pthread_mutex_lock(&R.mu);
    int n = R.n_calls;
    pthread_mutex_unlock(&R.mu);
    return n;
}

/* How the main handler behaves. */
typedef struct mode {
    bool send_event;  /* herald_tx_send_event to "out" */
    bool send_plain;  /* herald_tx_send of a JSON message to "out_plain" */
    bool fail_first;  /* return -1 on attempt 1 (after doing its work) */
    bool always_fail; /* return -1 always (after doing its work) */
    bool fail_marked; /* return -1 on attempt 1 if the payload has "fail" (after its work) */
    const char *error; /* herald_tx_set_error before failing */
    int fail_rc;       /* what a failure returns (0: -1) */
} mode;

static void note_failure(int rc, const char *what)
{
    pthread_mutex_lock(&R.mu);
    if (R.first_rc == 0) {
        R.first_rc = rc;
        snprintf(R.first_err, sizeof R.first_err, "%s: %s: %s", what, herald_err_name(rc),
                 herald_last_error());
    }
    pthread_mutex_unlock(&R.mu);
}

static int h_main(herald_tx *tx, const herald_message *m, const herald_envelope *en, void *ud)
{
    const mode *md = ud;
    pthread_mutex_lock(&R.mu);
    if (R.n_calls < MAX_CALLS) {
        call *c = &R.calls[R.n_calls];
        memcpy(c->msg_id, m->id, HERALD_ID_SIZE);
        snprintf(c->event_id, sizeof c->event_id, "%s", en ? en->event_id : "");
        c->attempts = m->attempts;
    }
    R.n_calls++;
    if (!en)
        R.n_env_null++;
    pthread_mutex_unlock(&R.mu);

    const char *key = en ? en->event_id : m->id;
    herald_arg a[2] = { HERALD_ARG_S(key), HERALD_ARG_I(m->attempts) };
    int rc = herald_tx_exec(tx, "INSERT INTO effects(event_id, attempts) VALUES (?, ?)", a, 2,
                            NULL);
    if (rc < 0) {
        note_failure(rc, "tx_exec insert");
        return rc;
    }
    if (md->send_event) {
        char payload[128];
        snprintf(payload, sizeof payload, "{\"from\":\"%s\"}", key);
        herald_event e = { .type = "effect.done", .source = "eo-test", .payload_json = payload };
        if (en && strstr(en->payload_json, "\"explicit\""))
            e.correlation_id = "explicit-x";
        char id[HERALD_ID_SIZE];
        rc = herald_tx_send_event(tx, "out", &e, id);
        if (rc < 0) {
            note_failure(rc, "tx_send_event");
            return rc;
        }
    }
    if (md->send_plain) {
        static const char body[] = "{\"plain\":true}";
        herald_msg pm = { .body = body, .body_len = sizeof body - 1,
                          .content_type = HERALD_CONTENT_JSON, .delay_s = HERALD_UNSET };
        char id[HERALD_ID_SIZE];
        rc = herald_tx_send(tx, "out_plain", &pm, id);
        if (rc < 0) {
            note_failure(rc, "tx_send");
            return rc;
        }
    }
    bool marked = en && strstr(en->payload_json, "\"fail\"");
    if (md->always_fail || (md->fail_first && m->attempts == 1) ||
        (md->fail_marked && marked && m->attempts == 1)) {
        if (md->error)
            herald_tx_set_error(tx, md->error);
        return md->fail_rc ? md->fail_rc : -1;
    }
    return 0;
}

/* ---- fixture and helpers -------------------------------------------------------------------- */

static void create_effects_table(void)
{
    int rc = herald_sql_exec(env.store,
                             "CREATE TABLE IF NOT EXISTS effects(event_id TEXT, attempts INTEGER)",
                             NULL, 0, NULL);
    cr_assert_eq(rc, 0, "create effects: %s: %s", herald_err_name(rc), herald_last_error());
}

static void setup_with(unsigned flags)
{
    rec_reset();
    hx_env_setup(&env, flags);
    g_c = NULL;
    create_effects_table();
    hx_create_queue(env.store, "in", NULL);
    hx_create_queue(env.store, "out", NULL);
    hx_create_queue(env.store, "out_plain", NULL);
}

static void setup_real(void)
{
    setup_with(HX_ENV_REAL_CLOCK);
}

static void setup_fake(void)
{
    setup_with(0);
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

TestSuite(eo, .init = setup_real, .fini = teardown, .timeout = 60);
TestSuite(eo_fake, .init = setup_fake, .fini = teardown, .timeout = 60);
TestSuite(sql, .init = setup_fake, .fini = teardown, .timeout = 30);

/* Polls cond every 5 ms for up to 15 s. */
#define WAIT_UNTIL(cond) HX_WAIT_UNTIL(cond, 15000)

static herald_queue_stats stats(const char *q)
{
    return hx_stats(env.store, q);
}

static bool drained(const char *q, int64_t acked)
{
    herald_queue_stats st = stats(q);
    return st.acked_total >= acked && st.backlog_count == 0;
}

static void wait_drained(const char *q, int64_t acked)
{
    WAIT_UNTIL(drained(q, acked));
    herald_queue_stats st = stats(q);
    cr_assert(st.acked_total == acked && st.backlog_count == 0,
              "queue %s: acked %lld (want %lld), backlog %lld (want 0)", q,
              (long long)st.acked_total, (long long)acked, (long long)st.backlog_count);
}

static herald_consumer_cfg tx_cfg(const char *const *queues, size_t n, herald_tx_handler_cb h,
                                  void *ud)
{
    herald_consumer_cfg c;
    herald_consumer_cfg_init(&c);
    c.queues = queues;
    c.n_queues = n;
    c.tx_handler = h;
    c.ud = ud;
    c.max_batch_size = 10;
    c.max_batch_timeout_ms = 0;
    c.retry_delay_s = 0;
    c.visibility_timeout_ms = 5000;
    return c;
}

static void start(const herald_consumer_cfg *c)
{
    g_c = hx_consumer_start(env.store, c);
}

/* Queue "in": max_retries, dead-letter queue "in-dlq" (created), retries at once. */
static void use_dlq(int64_t max_retries)
{
    herald_queue_settings st;
    herald_queue_settings_init(&st);
    st.max_retries = max_retries;
    st.dead_letter_queue = "in-dlq";
    st.retry_delay_s = 0;
    cr_assert_eq(herald_queue_update(env.store, "in", &st), 0, "%s", herald_last_error());
    hx_create_queue(env.store, "in-dlq", NULL);
}

static const char *const Q_IN[] = { "in" };

static void start_in(mode *md)
{
    herald_consumer_cfg c = tx_cfg(Q_IN, 1, h_main, md);
    start(&c);
}

static void assert_no_handler_failure(void)
{
    pthread_mutex_lock(&R.mu);
    int rc = R.first_rc;
    char err[300];
    memcpy(err, R.first_err, sizeof err);
    pthread_mutex_unlock(&R.mu);
    cr_assert_eq(rc, 0, "a herald_tx_* call in the handler failed: %s", err);
}

/* Sends an event to q; event_id may be NULL (minted). Returns nothing; id_out may be NULL. */
static void send_ev(const char *q, const char *event_id, const char *corr, const char *payload,
                    char id_out[HERALD_ID_SIZE])
{
    herald_event e = { .event_id = event_id, .type = "research.completed",
                       .source = "gatherfeed", .correlation_id = corr,
                       .payload_json = payload ? payload : "{\"research_id\":\"abc\"}" };
    int rc = herald_send_event(env.store, q, &e, HERALD_UNSET, id_out);
    cr_assert_eq(rc, 0, "send_event: %s: %s", herald_err_name(rc), herald_last_error());
}

/* Rows of effects, and how many distinct event ids they hold. */
static void effects_count(int64_t *rows, int64_t *distinct)
{
    int64_t v[4] = { -1, -1, -1, -1 };
    int rc = herald_sql_query(env.store, "SELECT count(*), count(DISTINCT event_id) FROM effects",
                              NULL, 0, hx_cb_ints, v);
    cr_assert_eq(rc, 0, "count effects: %s: %s", herald_err_name(rc), herald_last_error());
    *rows = v[0];
    if (distinct)
        *distinct = v[1];
}

static int64_t effects_rows(void)
{
    int64_t n;
    effects_count(&n, NULL);
    return n;
}

/* Peeks every message of q (up to 100) into b and returns how many. */
static size_t peek_all(const char *q, herald_batch *b)
{
    return hx_peek(env.store, q, b);
}

/* ---- commit together ------------------------------------------------------------------------ */

#define N_EVENTS 25

Test(eo, handler_sql_sends_and_ack_commit_together)
{
    char ids[N_EVENTS][HERALD_ID_SIZE];
    for (int i = 0; i < N_EVENTS; i++)
        send_ev("in", NULL, NULL, NULL, ids[i]);
    mode md = { .send_event = true, .send_plain = true };
    start_in(&md);
    wait_drained("in", N_EVENTS);
    stop();
    assert_no_handler_failure();

    cr_assert_eq(n_calls(), N_EVENTS, "handler ran %d times for %d events", n_calls(), N_EVENTS);
    int64_t rows, distinct;
    effects_count(&rows, &distinct);
    cr_assert_eq(rows, N_EVENTS, "effects rows %lld", (long long)rows);
    cr_assert_eq(distinct, N_EVENTS, "distinct event ids %lld", (long long)distinct);
    herald_queue_stats out = stats("out"), plain = stats("out_plain"), in = stats("in");
    cr_assert_eq(out.backlog_count, N_EVENTS, "out has %lld messages", (long long)out.backlog_count);
    cr_assert_eq(out.sent_total, N_EVENTS);
    cr_assert_eq(plain.backlog_count, N_EVENTS, "out_plain has %lld",
                 (long long)plain.backlog_count);
    cr_assert_eq(in.backlog_count, 0);
    cr_assert_eq(in.acked_total, N_EVENTS);
    cr_assert_eq(in.retried_total, 0);

    /* every event has its effect row and its out event */
    for (int i = 0; i < N_EVENTS; i++) {
        int64_t v[4] = { 0 };
        herald_arg a = HERALD_ARG_S(ids[i]);
        cr_assert_eq(herald_sql_query(env.store, "SELECT count(*) FROM effects WHERE event_id = ?",
                                      &a, 1, hx_cb_ints, v),
                     0, "%s", herald_last_error());
        cr_assert_eq(v[0], 1, "event %s has %lld effect rows", ids[i], (long long)v[0]);
    }
    herald_batch b = { 0 };
    cr_assert_eq(peek_all("out", &b), N_EVENTS);
    for (size_t i = 0; i < b.n; i++) {
        herald_envelope en;
        cr_assert_eq(herald_envelope_parse(b.msgs[i].body, b.msgs[i].body_len, &en), 0,
                     "out message is not an envelope: %s", herald_last_error());
        cr_assert_str_eq(en.type, "effect.done");
        cr_assert_str_eq(en.source, "eo-test");
        bool found = false;
        for (int k = 0; k < N_EVENTS && !found; k++) {
            char from[1024];
            snprintf(from, sizeof from, "{\"from\":\"%s\"}", ids[k]);
            found = strcmp(en.payload_json, from) == 0;
        }
        cr_assert(found, "out event %s comes from no in event", en.payload_json);
        herald_envelope_deinit(&en);
    }
    herald_batch_deinit(&b);
}

Test(eo, counters_report_the_work)
{
    for (int i = 0; i < 5; i++)
        send_ev("in", NULL, NULL, NULL, NULL);
    mode md = { 0 };
    start_in(&md);
    herald_consumer_counters cc;
    memset(&cc, 0, sizeof cc);
    WAIT_UNTIL((herald_consumer_counters_get(g_c, &cc), cc.acked >= 5));
    cr_assert_eq(cc.acked, 5, "acked %lld", (long long)cc.acked);
    cr_assert_eq(cc.delivered, 5, "delivered %lld", (long long)cc.delivered);
    cr_assert_geq(cc.batches, 1);
    cr_assert_eq(cc.handler_failures, 0);
    wait_drained("in", 5);
}

/* ---- failure: rollback, retry, dead letter -------------------------------------------------- */

Test(eo, failing_handler_is_rolled_back_and_retried)
{
    char ids[5][HERALD_ID_SIZE];
    for (int i = 0; i < 5; i++)
        send_ev("in", NULL, NULL, NULL, ids[i]);
    mode md = { .send_event = true, .send_plain = true, .fail_first = true };
    start_in(&md);
    wait_drained("in", 5);
    stop();
    assert_no_handler_failure();

    cr_assert_eq(n_calls(), 10, "handler ran %d times, want 2 per event", n_calls());
    int64_t rows, distinct;
    effects_count(&rows, &distinct);
    cr_assert_eq(rows, 5, "effects rows %lld: the failed attempts' inserts were not rolled back",
                 (long long)rows);
    cr_assert_eq(distinct, 5);
    /* the surviving effect of each event is the one of attempt 2 */
    int64_t v[4] = { 0 };
    cr_assert_eq(herald_sql_query(env.store, "SELECT min(attempts), max(attempts) FROM effects",
                                  NULL, 0, hx_cb_ints, v),
                 0);
    cr_assert_eq(v[0], 2, "min attempts %lld", (long long)v[0]);
    cr_assert_eq(v[1], 2, "max attempts %lld", (long long)v[1]);
    cr_assert_eq(stats("out").sent_total, 5, "out: the failed attempts' sends were not rolled back");
    cr_assert_eq(stats("out").backlog_count, 5);
    cr_assert_eq(stats("out_plain").backlog_count, 5);
    herald_queue_stats in = stats("in");
    cr_assert_eq(in.retried_total, 5, "retried %lld", (long long)in.retried_total);
    cr_assert_eq(in.acked_total, 5);
    cr_assert_eq(in.dead_lettered_total, 0);

    /* each event: a call with attempts 1, then one with attempts 2 */
    pthread_mutex_lock(&R.mu);
    for (int i = 0; i < 5; i++) {
        int a1 = 0, a2 = 0, other = 0;
        for (int k = 0; k < R.n_calls; k++) {
            if (strcmp(R.calls[k].event_id, ids[i]) != 0)
                continue;
            if (R.calls[k].attempts == 1)
                a1++;
            else if (R.calls[k].attempts == 2)
                a2++;
            else
                other++;
        }
        pthread_mutex_unlock(&R.mu);
        cr_assert(a1 == 1 && a2 == 1 && other == 0,
                  "event %s: %d calls with attempts 1, %d with 2, %d other", ids[i], a1, a2,
                  other);
        pthread_mutex_lock(&R.mu);
    }
    pthread_mutex_unlock(&R.mu);
}

/* A paused queue gets no batches (and no failures counted for it); resumed, it drains. */
Test(eo, a_paused_queue_is_not_taken_from_until_resumed)
{
    cr_assert_eq(herald_queue_pause(env.store, "in"), 0, "%s", herald_last_error());
    for (int i = 0; i < 5; i++)
        send_ev("in", NULL, NULL, NULL, NULL);
    /* Queue "in2" is the witness: each dispatcher pass that takes its message looked at the
     * paused "in" too (no batch timeout: a batch of "in" would be due at once). */
    hx_create_queue(env.store, "in2", NULL);
    static const char *const qs[] = { "in", "in2" };
    mode md = { .send_event = true };
    herald_consumer_cfg c = tx_cfg(qs, 2, h_main, &md);
    start(&c);
    for (int i = 1; i <= 3; i++) {
        send_ev("in2", NULL, NULL, NULL, NULL);
        wait_drained("in2", i);
    }
    cr_assert_eq(n_calls(), 3, "a handler ran on a paused queue");
    herald_consumer_counters cc;
    herald_consumer_counters_get(g_c, &cc);
    cr_assert_eq(cc.handler_failures, 0, "the pause counted as %lld failures",
                 (long long)cc.handler_failures);
    cr_assert_eq(herald_queue_resume(env.store, "in"), 0);
    wait_drained("in", 5);
    stop();
    assert_no_handler_failure();
    cr_assert_eq(effects_rows(), 8);
}

/* One failure among successes in one batch: the batch's transaction is redone without the
 * failed message; the others' effects commit once, the failed one's not at all. */
Test(eo, one_failing_message_in_a_batch_leaves_the_others_effects_once)
{
    char ids[7][HERALD_ID_SIZE];
    for (int i = 0; i < 7; i++)
        send_ev("in", NULL, NULL, i == 3 ? "{\"fail\":true}" : NULL, ids[i]);
    mode md = { .send_event = true, .send_plain = true, .fail_marked = true };
    start_in(&md); /* batches of 10: all seven in one */
    wait_drained("in", 7);
    stop();
    assert_no_handler_failure();
    int64_t rows, distinct;
    effects_count(&rows, &distinct);
    cr_assert_eq(rows, 7, "effects rows %lld, want one per event", (long long)rows);
    cr_assert_eq(distinct, 7);
    int64_t att[4] = { 0 };
    herald_arg a[1] = { HERALD_ARG_S(ids[3]) };
    cr_assert_eq(herald_sql_query(env.store, "SELECT attempts FROM effects WHERE event_id = ?", a,
                                  1, hx_cb_ints, att),
                 0);
    cr_assert_eq(att[0], 2, "the failed event's surviving effect is of attempt %lld, want 2",
                 (long long)att[0]);
    cr_assert_eq(stats("out").sent_total, 7, "out sent %lld, want 7: the failed attempt's send "
                 "was kept, or a redone handler's send doubled", (long long)stats("out").sent_total);
    cr_assert_eq(stats("out_plain").backlog_count, 7);
    herald_queue_stats in = stats("in");
    cr_assert_eq(in.retried_total, 1, "retried %lld", (long long)in.retried_total);
    cr_assert_eq(in.acked_total, 7);
    /* the failed handler ran once per delivery: not again when the batch was redone */
    int n3 = 0;
    pthread_mutex_lock(&R.mu);
    for (int k = 0; k < R.n_calls; k++)
        n3 += strcmp(R.calls[k].event_id, ids[3]) == 0;
    pthread_mutex_unlock(&R.mu);
    cr_assert_eq(n3, 2, "the failing event's handler ran %d times, want 2 (one per delivery)", n3);
}

Test(eo, always_failing_handler_dead_letters_with_the_error_it_set)
{
    use_dlq(2);
    char id[HERALD_ID_SIZE];
    send_ev("in", NULL, NULL, NULL, id);
    mode md = { .send_event = true, .send_plain = true, .always_fail = true,
                .error = "boom: research abc not found" };
    start_in(&md);
    WAIT_UNTIL(stats("in-dlq").backlog_count == 1 && stats("in").backlog_count == 0);
    stop();
    assert_no_handler_failure();

    cr_assert_eq(stats("in-dlq").backlog_count, 1, "dlq backlog %lld",
                 (long long)stats("in-dlq").backlog_count);
    cr_assert_eq(stats("in").backlog_count, 0);
    cr_assert_eq(stats("in").dead_lettered_total, 1);
    cr_assert_eq(n_calls(), 3, "handler ran %d times, want max_retries + 1 = 3", n_calls());
    cr_assert_eq(effects_rows(), 0, "a failed handler's effects were kept");
    cr_assert_eq(stats("out").sent_total, 0, "a failed handler's event was sent");
    cr_assert_eq(stats("out_plain").sent_total, 0, "a failed handler's message was sent");

    herald_batch b = { 0 };
    cr_assert_eq(peek_all("in-dlq", &b), 1);
    const herald_message *m = &b.msgs[0];
    cr_assert_str_eq(m->last_error, "boom: research abc not found");
    cr_assert_str_eq(m->dead_from_queue, "in");
    cr_assert_eq(m->dead_attempts, 3, "dead_attempts %d", m->dead_attempts);
    herald_envelope en;
    cr_assert_eq(herald_envelope_parse(m->body, m->body_len, &en), 0, "dlq body: %s",
                 herald_last_error());
    cr_assert_str_eq(en.event_id, id, "the dead letter is the original event");
    herald_envelope_deinit(&en);
    herald_batch_deinit(&b);
}

Test(eo, failing_handler_without_an_error_still_records_one)
{
    use_dlq(0);
    send_ev("in", NULL, NULL, NULL, NULL);
    mode md = { .always_fail = true };
    start_in(&md);
    WAIT_UNTIL(stats("in-dlq").backlog_count == 1);
    stop();
    herald_batch b = { 0 };
    cr_assert_eq(peek_all("in-dlq", &b), 1);
    cr_assert(b.msgs[0].last_error && b.msgs[0].last_error[0], "last_error is empty");
    herald_batch_deinit(&b);
    cr_assert_eq(effects_rows(), 0);
}

/* ---- duplicates ----------------------------------------------------------------------------- */

#define DUP_ID "01890a5b-2c3d-7e4f-8a1b-2c3d4e5f6a7b"

Test(eo, duplicated_event_runs_the_handler_once_and_acks_both)
{
    send_ev("in", DUP_ID, NULL, NULL, NULL);
    send_ev("in", DUP_ID, NULL, NULL, NULL); /* the same envelope again (re-published) */
    mode md = { .send_event = true };
    start_in(&md);
    wait_drained("in", 2);
    cr_assert_eq(n_calls(), 1, "handler ran %d times for one event sent twice", n_calls());

    /* and again, once the first is long processed (a separate batch) */
    send_ev("in", DUP_ID, NULL, NULL, NULL);
    wait_drained("in", 3);
    stop();
    assert_no_handler_failure();
    cr_assert_eq(n_calls(), 1, "handler ran %d times for one event sent 3 times", n_calls());
    int64_t rows, distinct;
    effects_count(&rows, &distinct);
    cr_assert_eq(rows, 1, "effects rows %lld", (long long)rows);
    cr_assert_eq(stats("out").backlog_count, 1, "out has %lld",
                 (long long)stats("out").backlog_count);
    herald_queue_stats in = stats("in");
    cr_assert_eq(in.acked_total, 3);
    cr_assert_eq(in.retried_total, 0);
    cr_assert_eq(in.dead_lettered_total + in.deleted_total, 0);
}

Test(eo, duplicate_of_an_event_whose_handler_failed_is_processed_later)
{
    /* a failed attempt records nothing: the redelivery runs the handler again */
    send_ev("in", DUP_ID, NULL, NULL, NULL);
    mode md = { .fail_first = true };
    start_in(&md);
    wait_drained("in", 1);
    stop();
    cr_assert_eq(n_calls(), 2);
    cr_assert_eq(effects_rows(), 1);
}

Test(eo, same_event_id_on_two_queues_is_processed_once_per_queue)
{
    hx_create_queue(env.store, "in2", NULL);
    send_ev("in", DUP_ID, NULL, NULL, NULL);
    send_ev("in2", DUP_ID, NULL, NULL, NULL);
    static const char *const qs[] = { "in", "in2" };
    mode md = { .send_event = true };
    herald_consumer_cfg c = tx_cfg(qs, 2, h_main, &md);
    start(&c);
    wait_drained("in", 1);
    wait_drained("in2", 1);
    /* duplicates on both queues are skipped */
    send_ev("in", DUP_ID, NULL, NULL, NULL);
    send_ev("in2", DUP_ID, NULL, NULL, NULL);
    wait_drained("in", 2);
    wait_drained("in2", 2);
    stop();
    assert_no_handler_failure();
    cr_assert_eq(n_calls(), 2, "handler ran %d times, want once per queue", n_calls());
    int64_t rows, distinct;
    effects_count(&rows, &distinct);
    cr_assert_eq(rows, 2);
    cr_assert_eq(distinct, 1);
    cr_assert_eq(stats("out").backlog_count, 2);
}

Test(eo, duplicate_detection_survives_a_store_reopen)
{
    send_ev("in", DUP_ID, NULL, NULL, NULL);
    mode md = { 0 };
    start_in(&md);
    wait_drained("in", 1);
    stop();
    hx_env_close(&env);
    hx_env_reopen(&env);
    send_ev("in", DUP_ID, NULL, NULL, NULL);
    start_in(&md);
    wait_drained("in", 2);
    stop();
    cr_assert_eq(n_calls(), 1, "handler ran %d times", n_calls());
    cr_assert_eq(effects_rows(), 1);
}

/* ---- non-envelope bodies -------------------------------------------------------------------- */

Test(eo, non_envelope_bodies_reach_the_handler_with_env_null)
{
    hx_send_json(env.store, "in", "{\"hello\":\"world\"}", HERALD_UNSET, NULL);
    hx_send_json(env.store, "in", "{\"hello\":\"world\"}", HERALD_UNSET, NULL); /* no dedup */
    hx_send_json(env.store, "in", "[1,2,3]", HERALD_UNSET, NULL);
    /* looks like an envelope but lacks payload: not one */
    hx_send_json(env.store, "in",
                 "{\"event_id\":\"" DUP_ID "\",\"type\":\"a.b\",\"source\":\"s\","
                 "\"timestamp\":\"2026-01-01T00:00:00.000Z\"}",
                 HERALD_UNSET, NULL);
    herald_msg t = { .body = "plain text", .body_len = 10, .content_type = HERALD_CONTENT_TEXT,
                     .delay_s = HERALD_UNSET };
    hx_send(env.store, "in", &t, NULL);
    mode md = { .send_event = true };
    start_in(&md);
    wait_drained("in", 5);
    stop();
    assert_no_handler_failure();
    cr_assert_eq(n_calls(), 5, "handler ran %d times for 5 non-envelope messages", n_calls());
    pthread_mutex_lock(&R.mu);
    int n_null = R.n_env_null;
    pthread_mutex_unlock(&R.mu);
    cr_assert_eq(n_null, 5, "env was NULL in %d of 5 calls", n_null);
    cr_assert_eq(effects_rows(), 5);

    /* an event sent while handling a non-envelope message has no correlation id to inherit */
    herald_batch b = { 0 };
    cr_assert_eq(peek_all("out", &b), 5);
    for (size_t i = 0; i < b.n; i++) {
        herald_envelope en;
        cr_assert_eq(herald_envelope_parse(b.msgs[i].body, b.msgs[i].body_len, &en), 0);
        cr_assert_str_eq(en.correlation_id, "", "correlation_id [%s] out of nowhere",
                         en.correlation_id);
        herald_envelope_deinit(&en);
    }
    herald_batch_deinit(&b);
}

/* ---- correlation inheritance ---------------------------------------------------------------- */

/* The out event whose payload is {"from": key}; asserts there is exactly one. */
static void out_correlation_of(const herald_batch *b, const char *key, char *corr, size_t cap)
{
    char want[128];
    snprintf(want, sizeof want, "{\"from\":\"%s\"}", key);
    int found = 0;
    for (size_t i = 0; i < b->n; i++) {
        herald_envelope en;
        cr_assert_eq(herald_envelope_parse(b->msgs[i].body, b->msgs[i].body_len, &en), 0);
        if (strcmp(en.payload_json, want) == 0) {
            found++;
            snprintf(corr, cap, "%s", en.correlation_id);
        }
        herald_envelope_deinit(&en);
    }
    cr_assert_eq(found, 1, "%d out events for %s", found, key);
}

Test(eo, sent_events_inherit_or_keep_the_correlation_id)
{
    char with_corr[HERALD_ID_SIZE], without[HERALD_ID_SIZE], explicit_id[HERALD_ID_SIZE];
    send_ev("in", NULL, "chain-1", NULL, with_corr);
    send_ev("in", NULL, NULL, NULL, without);
    send_ev("in", NULL, "chain-3", "{\"mode\":\"explicit\"}", explicit_id);
    mode md = { .send_event = true };
    start_in(&md);
    wait_drained("in", 3);
    stop();
    assert_no_handler_failure();

    herald_batch b = { 0 };
    cr_assert_eq(peek_all("out", &b), 3);
    char corr[HERALD_CORRELATION_ID_MAX + 1];
    out_correlation_of(&b, with_corr, corr, sizeof corr);
    cr_assert_str_eq(corr, "chain-1", "inherits the handled event's correlation_id");
    out_correlation_of(&b, without, corr, sizeof corr);
    cr_assert_str_eq(corr, "", "nothing to inherit: no correlation_id (got %s)", corr);
    out_correlation_of(&b, explicit_id, corr, sizeof corr);
    cr_assert_str_eq(corr, "explicit-x", "an explicit correlation_id is kept");
    herald_batch_deinit(&b);
}

/* ---- pruning of processed records (fake clock) ---------------------------------------------- */

/* Retention 60 s: a duplicate 30 s after processing is skipped, and 2 minutes after it the
 * record is gone and the event runs again. id: a UUIDv7 (the record is pruned by its key
 * range; this one was created in 2023, long before the clock's "now" - its processed time is
 * what counts) or another version (the table with the age index). */
/* Moves the fake clock by ms (at least the 60 s sweep interval) and waits until the
 * consumer's sweep ran: it expires a witness message of queue "ret" (retention 60 s, sent
 * here), and it prunes processed events in the same turn of the dispatcher, before that
 * takes another batch. n_before: witnesses expired so far. */
static void advance_past_a_sweep(int64_t ms, int64_t n_before)
{
    herald_queue_info info;
    if (herald_queue_get(env.store, "ret", &info) == HERALD_ENOQUEUE) {
        herald_queue_settings st;
        herald_queue_settings_init(&st);
        st.message_retention_period_s = 60;
        hx_create_queue(env.store, "ret", &st);
    }
    hx_send_json(env.store, "ret", "{}", HERALD_UNSET, NULL);
    hx_clock_advance(&env.clock, ms);
    herald_store_wake(env.store);
    HX_AWAIT(stats("ret").expired_total == n_before + 1);
}

static void prune_case(const char *id)
{
    mode md = { 0 };
    herald_consumer_cfg c = tx_cfg(Q_IN, 1, h_main, &md);
    c.processed_retention_s = 60;
    c.max_batch_size = 1;
    start(&c);

    send_ev("in", id, NULL, NULL, NULL);
    wait_drained("in", 1);
    cr_assert_eq(n_calls(), 1);

    /* within the retention: a duplicate */
    hx_clock_advance(&env.clock, 30000);
    herald_store_wake(env.store);
    send_ev("in", id, NULL, NULL, NULL);
    wait_drained("in", 2);
    cr_assert_eq(n_calls(), 1, "a duplicate 30 s later (retention 60 s) ran the handler");

    /* 2 minutes after processing: the record is pruned by the consumer's sweep */
    advance_past_a_sweep(90000, 0);
    send_ev("in", id, NULL, NULL, NULL);
    wait_drained("in", 3);
    cr_assert_eq(n_calls(), 2, "the event was not processed again after 2 minutes with "
                               "processed_retention_s = 60");
    stop();
    cr_assert_eq(effects_rows(), 2);
}

Test(eo_fake, processed_records_are_pruned_after_processed_retention)
{
    prune_case(DUP_ID);
}

Test(eo_fake, processed_records_of_non_v7_event_ids_are_deduplicated_and_pruned_too)
{
    prune_case("3f2a1c4e-9b7d-4e21-a5f0-6c8d2b1e7a90"); /* a UUIDv4 */
}

/* A message a pull consumer leased and let expire is taken by an effectively-once consumer
 * like any visible one: the expired lease is one failed attempt (recorded, and counted in
 * attempts), and the effect happens once. */
Test(eo_fake, a_message_whose_pull_lease_expired_is_taken_and_its_attempt_counted)
{
    char id[HERALD_ID_SIZE];
    send_ev("in", NULL, NULL, NULL, id);
    herald_batch b = { 0 };
    cr_assert_eq(hx_pull(env.store, "in", 1, 1000, &b), 1);
    char msg_id[HERALD_ID_SIZE];
    memcpy(msg_id, b.msgs[0].id, sizeof msg_id);
    herald_batch_deinit(&b);
    hx_clock_advance(&env.clock, 2000); /* the lease expires unsettled */
    mode md = { 0 };
    start_in(&md);
    wait_drained("in", 1);
    stop();
    cr_assert_eq(effects_rows(), 1);
    int64_t att[4] = { 0 };
    cr_assert_eq(herald_sql_query(env.store, "SELECT attempts FROM effects", NULL, 0, hx_cb_ints,
                                  att),
                 0);
    cr_assert_eq(att[0], 2, "the handler saw attempts %lld, want 2 (the expired lease was 1)",
                 (long long)att[0]);
    herald_attempt *a = NULL;
    size_t n = 0;
    cr_assert_eq(herald_message_attempts(env.store, msg_id, &a, &n), 0);
    cr_assert_eq(n, 1, "attempt records: %zu", n);
    cr_assert(strstr(a[0].error, "visibility timeout"), "%s", a[0].error);
    herald_free(a);
}

Test(eo_fake, processed_records_are_kept_for_the_default_retention)
{
    mode md = { 0 };
    herald_consumer_cfg c = tx_cfg(Q_IN, 1, h_main, &md);
    c.max_batch_size = 1;
    start(&c);
    send_ev("in", DUP_ID, NULL, NULL, NULL);
    wait_drained("in", 1);
    /* 6 days later (default 7): still a duplicate, even after sweeps */
    for (int d = 0; d < 6; d++)
        advance_past_a_sweep(86400000LL, d);
    send_ev("in", DUP_ID, NULL, NULL, NULL);
    wait_drained("in", 2);
    stop();
    cr_assert_eq(n_calls(), 1, "a duplicate 6 days later ran the handler again");
}

/* ---- herald_tx_exec rules ------------------------------------------------------------------- */

static const char *const DENY_SQL[] = {
    "SELECT count(*) FROM herald_messages",
    "INSERT INTO herald_queues(name) VALUES ('x')",
    "DELETE FROM herald_messages",
    "UPDATE herald_queues SET name = 'y'",
    "DROP TABLE herald_messages",
    "SELECT * FROM HERALD_QUEUES",
    "SELECT * FROM main.herald_processed_events",
    "SAVEPOINT s1",
    "RELEASE s1",
    "COMMIT",
    "BEGIN",
    "ROLLBACK",
    "PRAGMA user_version = 7",
    "ATTACH DATABASE ':memory:' AS aux",
};
#define N_DENY (sizeof DENY_SQL / sizeof DENY_SQL[0])

static int h_deny_probe(herald_tx *tx, const herald_message *m, const herald_envelope *en,
                        void *ud)
{
    (void)m;
    (void)en;
    (void)ud;
    int rcs[N_PROBES];
    for (size_t i = 0; i < N_DENY; i++)
        rcs[i] = herald_tx_exec(tx, DENY_SQL[i], NULL, 0, NULL);
    int rq = herald_tx_query(tx, "SELECT count(*) FROM herald_messages", NULL, 0, hx_cb_ints,
                             (int64_t[4]){ 0 });
    /* its own write is visible to its own query */
    herald_arg a[2] = { HERALD_ARG_S("probe"), HERALD_ARG_I(1) };
    int ri = herald_tx_exec(tx, "INSERT INTO effects(event_id, attempts) VALUES (?, ?)", a, 2,
                            NULL);
    int64_t v[4] = { -1 };
    int rs = herald_tx_query(tx, "SELECT count(*) FROM effects", NULL, 0, hx_cb_ints, v);
    pthread_mutex_lock(&R.mu);
    R.n_calls++;
    for (size_t i = 0; i < N_DENY; i++)
        R.probe_rc[i] = rcs[i];
    R.probe_rc[N_DENY] = rq;
    R.own_write_seen = ri == 0 && rs == 0 ? v[0] : -100 + ri + rs;
    pthread_mutex_unlock(&R.mu);
    return 0;
}

Test(eo, tx_exec_may_not_touch_herald_tables_or_control_transactions)
{
    cr_assert_leq(N_DENY + 1, N_PROBES);
    send_ev("in", NULL, NULL, NULL, NULL);
    herald_consumer_cfg c = tx_cfg(Q_IN, 1, h_deny_probe, NULL);
    start(&c);
    wait_drained("in", 1);
    stop();
    cr_assert_eq(n_calls(), 1);
    for (size_t i = 0; i < N_DENY; i++)
        cr_assert_eq(R.probe_rc[i], HERALD_EDENIED, "herald_tx_exec(\"%s\"): %s, want EDENIED",
                     DENY_SQL[i], herald_err_name(R.probe_rc[i]));
    cr_assert_eq(R.probe_rc[N_DENY], HERALD_EDENIED, "herald_tx_query on herald_messages: %s",
                 herald_err_name(R.probe_rc[N_DENY]));
    cr_assert_eq(R.own_write_seen, 1, "tx_query saw %lld rows after its own insert",
                 (long long)R.own_write_seen);
    cr_assert_eq(effects_rows(), 1, "the handler's insert committed");
    /* the store is intact */
    cr_assert_eq(stats("in").acked_total, 1);
    hx_send_json(env.store, "in", "{}", HERALD_UNSET, NULL);
    cr_assert_eq(stats("in").backlog_count, 1);
}

/* ---- consumer config ------------------------------------------------------------------------ */

static int h_plain(herald_delivery *d, void *ud)
{
    (void)d;
    (void)ud;
    return 0;
}

Test(eo, cfg_with_both_handler_and_tx_handler_is_einval)
{
    mode md = { 0 };
    herald_consumer_cfg c = tx_cfg(Q_IN, 1, h_main, &md);
    c.handler = h_plain;
    herald_consumer *out = NULL;
    int rc = herald_consumer_start(env.store, &c, &out);
    cr_assert_eq(rc, HERALD_EINVAL, "rc %s", herald_err_name(rc));
    cr_assert_null(out);
    cr_assert(hx_mentions(herald_last_error(), "handler"), "error: %s", herald_last_error());
}

Test(eo, processed_retention_out_of_range_is_einval)
{
    mode md = { 0 };
    static const int64_t bad[] = { 59, 0, -2, HERALD_MAX_DELAY_S + 1LL };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        herald_consumer_cfg c = tx_cfg(Q_IN, 1, h_main, &md);
        c.processed_retention_s = bad[i];
        herald_consumer *out = NULL;
        int rc = herald_consumer_start(env.store, &c, &out);
        cr_assert_eq(rc, HERALD_EINVAL, "retention %lld: rc %s", (long long)bad[i],
                     herald_err_name(rc));
        cr_assert_null(out);
        cr_assert(hx_mentions(herald_last_error(), "retention"), "error: %s",
                  herald_last_error());
    }
    static const int64_t good[] = { 60, HERALD_MAX_DELAY_S, HERALD_UNSET };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        herald_consumer_cfg c = tx_cfg(Q_IN, 1, h_main, &md);
        c.processed_retention_s = good[i];
        start(&c);
        stop();
    }
}

/* ---- herald_sql_exec / herald_sql_query ----------------------------------------------------- */

static void exec_ok(const char *sql, const herald_arg *args, size_t n, int64_t *changes)
{
    int rc = herald_sql_exec(env.store, sql, args, n, changes);
    cr_assert_eq(rc, 0, "sql_exec(%s): %s: %s", sql, herald_err_name(rc), herald_last_error());
}

typedef struct got_row {
    int cols;
    herald_arg v[8];
    char text[8][64];
    int n_rows;
} got_row;

/* Copies the first row (text/blob into buffers) and counts rows. */
static int cb_copy(void *ud, const herald_row *r)
{
    got_row *g = ud;
    if (g->n_rows++ > 0)
        return 0;
    g->cols = herald_row_columns(r);
    for (int i = 0; i < g->cols && i < 8; i++) {
        g->v[i] = herald_row_get(r, i);
        if (g->v[i].type == HERALD_ARG_TEXT || g->v[i].type == HERALD_ARG_BLOB) {
            size_t n = g->v[i].len < 63 ? g->v[i].len : 63;
            memcpy(g->text[i], g->v[i].p, n);
            g->text[i][n] = 0;
            if (g->v[i].type == HERALD_ARG_TEXT) /* NUL-terminated during the callback */
                g->text[i][63] = ((const char *)g->v[i].p)[g->v[i].len] == 0 ? 1 : 2;
        }
    }
    return 0;
}

Test(sql, every_arg_type_round_trips)
{
    exec_ok("CREATE TABLE t(id INTEGER PRIMARY KEY, i INTEGER, r REAL, s TEXT, b BLOB, n)", NULL,
            0, NULL);
    static const unsigned char blob[] = { 0x00, 0x01, 0xff, 0x00, 0x7f };
    const char *text = "h\xc3\xa9llo"; /* UTF-8 */
    herald_arg a[6] = { HERALD_ARG_I(1), HERALD_ARG_I(INT64_MIN), HERALD_ARG_D(-2.5),
                        HERALD_ARG_S(text), HERALD_ARG_B(blob, sizeof blob), HERALD_ARG_NIL };
    int64_t changes = -1;
    exec_ok("INSERT INTO t(id, i, r, s, b, n) VALUES (?, ?, ?, ?, ?, ?)", a, 6, &changes);
    cr_assert_eq(changes, 1);
    /* text with an explicit length takes only that prefix; INT64_MAX; empty blob */
    herald_arg a2[6] = { HERALD_ARG_I(2), HERALD_ARG_I(INT64_MAX), HERALD_ARG_D(1e300),
                         { .type = HERALD_ARG_TEXT, .p = "abcdef", .len = 3 },
                         HERALD_ARG_B(NULL, 0), HERALD_ARG_NIL };
    exec_ok("INSERT INTO t(id, i, r, s, b, n) VALUES (?, ?, ?, ?, ?, ?)", a2, 6, NULL);

    got_row g;
    memset(&g, 0, sizeof g);
    herald_arg k = HERALD_ARG_I(1);
    int rc = herald_sql_query(env.store, "SELECT i, r, s, b, n, id FROM t WHERE id = ?", &k, 1,
                              cb_copy, &g);
    cr_assert_eq(rc, 0, "%s", herald_last_error());
    cr_assert_eq(g.n_rows, 1);
    cr_assert_eq(g.cols, 6);
    cr_assert_eq(g.v[0].type, HERALD_ARG_INT);
    cr_assert_eq(g.v[0].i, INT64_MIN);
    cr_assert_eq(g.v[1].type, HERALD_ARG_REAL);
    cr_assert_float_eq(g.v[1].r, -2.5, 1e-12);
    cr_assert_eq(g.v[2].type, HERALD_ARG_TEXT);
    cr_assert_eq(g.v[2].len, strlen(text));
    cr_assert_str_eq(g.text[2], text);
    cr_assert_eq(g.text[2][63], 1, "text column is not NUL-terminated in the callback");
    cr_assert_eq(g.v[3].type, HERALD_ARG_BLOB);
    cr_assert_eq(g.v[3].len, sizeof blob);
    cr_assert_eq(memcmp(g.text[3], blob, sizeof blob), 0, "blob bytes differ");
    cr_assert_eq(g.v[4].type, HERALD_ARG_NULL);
    cr_assert_eq(g.v[5].type, HERALD_ARG_INT);
    cr_assert_eq(g.v[5].i, 1);

    memset(&g, 0, sizeof g);
    k = HERALD_ARG_I(2);
    rc = herald_sql_query(env.store, "SELECT i, r, s, length(b), typeof(b) FROM t WHERE id = ?",
                          &k, 1, cb_copy, &g);
    cr_assert_eq(rc, 0, "%s", herald_last_error());
    cr_assert_eq(g.v[0].i, INT64_MAX);
    cr_assert_float_eq(g.v[1].r, 1e300, 1e288);
    cr_assert_str_eq(g.text[2], "abc");
    cr_assert_eq(g.v[3].i, 0);
    cr_assert_str_eq(g.text[4], "blob", "an empty blob is stored as %s", g.text[4]);

    /* a column index out of range reads as NULL */
    memset(&g, 0, sizeof g);
    cr_assert_eq(herald_sql_query(env.store, "SELECT count(*) FROM t", NULL, 0, cb_copy, &g), 0);
    cr_assert_eq(g.v[0].i, 2);
}

static int cb_oob(void *ud, const herald_row *r)
{
    herald_arg *out = ud;
    out[0] = herald_row_get(r, 5);
    out[1] = herald_row_get(r, -1);
    return 0;
}

Test(sql, row_get_out_of_range_is_null)
{
    herald_arg out[2] = { HERALD_ARG_I(9), HERALD_ARG_I(9) };
    cr_assert_eq(herald_sql_query(env.store, "SELECT 1, 2", NULL, 0, cb_oob, out), 0);
    cr_assert_eq(out[0].type, HERALD_ARG_NULL);
    cr_assert_eq(out[1].type, HERALD_ARG_NULL);
}

static int cb_stop_after_2(void *ud, const herald_row *r)
{
    (void)r;
    int *n = ud;
    return ++*n >= 2 ? -77 : 0;
}

Test(sql, multi_statement_exec_without_args_works_and_callback_can_stop)
{
    exec_ok("CREATE TABLE a(x INTEGER); CREATE INDEX a_x ON a(x);\n"
            "INSERT INTO a VALUES (1); INSERT INTO a VALUES (2), (3);",
            NULL, 0, NULL);
    exec_ok("UPDATE a SET x = x + 10 WHERE x >= 2", NULL, 0, NULL);
    int64_t v[4] = { 0 };
    cr_assert_eq(herald_sql_query(env.store, "SELECT sum(x), count(*) FROM a", NULL, 0, hx_cb_ints,
                                  v),
                 0);
    cr_assert_eq(v[0], 1 + 12 + 13);
    cr_assert_eq(v[1], 3);
    int n = 0;
    int rc = herald_sql_query(env.store, "SELECT x FROM a ORDER BY x", NULL, 0, cb_stop_after_2,
                              &n);
    cr_assert_eq(rc, -77, "a callback's negative return is the query's rc, got %d", rc);
    cr_assert_eq(n, 2);
    /* data survives a reopen (durable) */
    hx_env_close(&env);
    hx_env_reopen(&env);
    memset(v, 0, sizeof v);
    cr_assert_eq(herald_sql_query(env.store, "SELECT count(*) FROM a", NULL, 0, hx_cb_ints, v), 0);
    cr_assert_eq(v[0], 3);
}

Test(sql, changes_counts_the_rows_the_statements_changed)
{
    int64_t changes = -1;
    exec_ok("CREATE TABLE a(x INTEGER); CREATE INDEX a_x ON a(x);\n"
            "INSERT INTO a VALUES (1); INSERT INTO a VALUES (2), (3);",
            NULL, 0, &changes);
    cr_assert_eq(changes, 3, "3 rows inserted (after 2 DDL statements), changes %lld",
                 (long long)changes);
    herald_arg a = HERALD_ARG_I(2);
    exec_ok("UPDATE a SET x = x + 10 WHERE x >= ?", &a, 1, &changes);
    cr_assert_eq(changes, 2);
    exec_ok("CREATE TABLE b(y)", NULL, 0, &changes);
    cr_assert_eq(changes, 0, "CREATE TABLE changed no row, changes %lld", (long long)changes);
}

Test(sql, sql_errors_are_esql_naming_the_error)
{
    int rc = herald_sql_exec(env.store, "CREATE TABLEE oops(x)", NULL, 0, NULL);
    cr_assert_eq(rc, HERALD_ESQL, "rc %s", herald_err_name(rc));
    cr_assert(hx_contains_ci(herald_last_error(), "syntax error"), "error: %s",
              herald_last_error());
    rc = herald_sql_query(env.store, "SELEC 1", NULL, 0, hx_cb_ints, (int64_t[4]){ 0 });
    cr_assert_eq(rc, HERALD_ESQL, "rc %s", herald_err_name(rc));
    cr_assert(hx_contains_ci(herald_last_error(), "syntax error"), "error: %s",
              herald_last_error());
    rc = herald_sql_exec(env.store, "INSERT INTO no_such_table VALUES (1)", NULL, 0, NULL);
    cr_assert_eq(rc, HERALD_ESQL, "rc %s", herald_err_name(rc));
    cr_assert(hx_contains_ci(herald_last_error(), "no_such_table"), "error: %s",
              herald_last_error());
    exec_ok("CREATE TABLE u(k TEXT UNIQUE)", NULL, 0, NULL);
    herald_arg a = HERALD_ARG_S("k1");
    exec_ok("INSERT INTO u VALUES (?)", &a, 1, NULL);
    rc = herald_sql_exec(env.store, "INSERT INTO u VALUES (?)", &a, 1, NULL);
    cr_assert_eq(rc, HERALD_ESQL, "unique violation: rc %s", herald_err_name(rc));
    cr_assert(hx_contains_ci(herald_last_error(), "unique"), "error: %s", herald_last_error());
}

Test(sql, failed_multi_statement_exec_changes_nothing)
{
    exec_ok("CREATE TABLE m(x)", NULL, 0, NULL);
    int rc = herald_sql_exec(env.store, "INSERT INTO m VALUES (1); INSERT INTO nope VALUES (2)",
                             NULL, 0, NULL);
    cr_assert_eq(rc, HERALD_ESQL, "rc %s", herald_err_name(rc));
    rc = herald_sql_exec(env.store, "INSERT INTO m VALUES (1); DELETE FROM herald_messages",
                         NULL, 0, NULL);
    cr_assert_eq(rc, HERALD_EDENIED, "rc %s", herald_err_name(rc));
    int64_t v[4] = { -1 };
    cr_assert_eq(herald_sql_query(env.store, "SELECT count(*) FROM m", NULL, 0, hx_cb_ints, v), 0);
    cr_assert_eq(v[0], 0, "a failed exec left %lld rows: it runs in its own transaction",
                 (long long)v[0]);
}

Test(sql, wrong_number_of_args_is_einval)
{
    exec_ok("CREATE TABLE w(a, b)", NULL, 0, NULL);
    herald_arg a[3] = { HERALD_ARG_I(1), HERALD_ARG_I(2), HERALD_ARG_I(3) };
    int rc = herald_sql_exec(env.store, "INSERT INTO w VALUES (?, ?)", a, 3, NULL);
    cr_assert_eq(rc, HERALD_EINVAL, "3 args for 2: rc %s", herald_err_name(rc));
    rc = herald_sql_exec(env.store, "INSERT INTO w VALUES (?, ?)", a, 1, NULL);
    cr_assert_eq(rc, HERALD_EINVAL, "1 arg for 2: rc %s", herald_err_name(rc));
    rc = herald_sql_query(env.store, "SELECT * FROM w WHERE a = ?", a, 2, hx_cb_ints,
                          (int64_t[4]){ 0 });
    cr_assert_eq(rc, HERALD_EINVAL, "query 2 args for 1: rc %s", herald_err_name(rc));
    rc = herald_sql_exec(env.store, "INSERT INTO w VALUES (1, 2)", a, 1, NULL);
    cr_assert_eq(rc, HERALD_EINVAL, "1 arg for 0: rc %s", herald_err_name(rc));
    int64_t v[4] = { -1 };
    cr_assert_eq(herald_sql_query(env.store, "SELECT count(*) FROM w", NULL, 0, hx_cb_ints, v), 0);
    cr_assert_eq(v[0], 0);
}

Test(sql, no_args_for_a_statement_with_parameters_is_einval)
{
    exec_ok("CREATE TABLE w(a)", NULL, 0, NULL);
    int rc = herald_sql_exec(env.store, "INSERT INTO w VALUES (?)", NULL, 0, NULL);
    cr_assert_eq(rc, HERALD_EINVAL, "0 args for 1 parameter: rc %s (a NULL was bound?)",
                 herald_err_name(rc));
    int64_t v[4] = { -1 };
    cr_assert_eq(herald_sql_query(env.store, "SELECT count(*) FROM w", NULL, 0, hx_cb_ints, v), 0);
    cr_assert_eq(v[0], 0, "a row was inserted");
}

Test(sql, herald_tables_transactions_attach_pragma_are_denied)
{
    hx_create_queue(env.store, "q", NULL);
    hx_send_json(env.store, "q", "{\"keep\":1}", HERALD_UNSET, NULL);
    for (size_t i = 0; i < N_DENY; i++) {
        int rc = herald_sql_exec(env.store, DENY_SQL[i], NULL, 0, NULL);
        cr_assert_eq(rc, HERALD_EDENIED, "sql_exec(\"%s\"): %s (%s), want EDENIED", DENY_SQL[i],
                     herald_err_name(rc), herald_last_error());
        rc = herald_sql_query(env.store, DENY_SQL[i], NULL, 0, hx_cb_ints, (int64_t[4]){ 0 });
        cr_assert_eq(rc, HERALD_EDENIED, "sql_query(\"%s\"): %s (%s), want EDENIED", DENY_SQL[i],
                     herald_err_name(rc), herald_last_error());
    }
    /* with bound args too (the cached single-statement path) */
    herald_arg a = HERALD_ARG_S("q");
    int rc = herald_sql_exec(env.store, "DELETE FROM herald_queues WHERE name = ?", &a, 1, NULL);
    cr_assert_eq(rc, HERALD_EDENIED, "rc %s", herald_err_name(rc));
    rc = herald_sql_query(env.store, "SELECT * FROM herald_queues WHERE name = ?", &a, 1,
                          hx_cb_ints, (int64_t[4]){ 0 });
    cr_assert_eq(rc, HERALD_EDENIED, "rc %s", herald_err_name(rc));
    rc = herald_sql_exec(env.store, "DETACH DATABASE main", NULL, 0, NULL);
    cr_assert_eq(rc, HERALD_EDENIED, "DETACH: rc %s", herald_err_name(rc));
    rc = herald_sql_exec(env.store, "PRAGMA journal_mode", NULL, 0, NULL);
    cr_assert_eq(rc, HERALD_EDENIED, "PRAGMA read: rc %s", herald_err_name(rc));
    /* nothing was touched */
    herald_queue_stats st = hx_stats(env.store, "q");
    cr_assert_eq(st.backlog_count, 1);
    herald_batch b = { 0 };
    cr_assert_eq(hx_pull(env.store, "q", 10, HERALD_UNSET, &b), 1);
    cr_assert(hx_body_is(&b.msgs[0], "{\"keep\":1}"));
    herald_batch_deinit(&b);
}

Test(sql, query_with_a_write_is_denied_and_writes_nothing)
{
    exec_ok("CREATE TABLE qw(x)", NULL, 0, NULL);
    int rc = herald_sql_query(env.store, "INSERT INTO qw VALUES (1)", NULL, 0, hx_cb_ints,
                              (int64_t[4]){ 0 });
    cr_assert_eq(rc, HERALD_EDENIED, "rc %s", herald_err_name(rc));
    rc = herald_sql_query(env.store, "CREATE TABLE qw2(x)", NULL, 0, hx_cb_ints, (int64_t[4]){ 0 });
    cr_assert_eq(rc, HERALD_EDENIED, "CREATE via query: rc %s", herald_err_name(rc));
    rc = herald_sql_query(env.store, "DELETE FROM qw", NULL, 0, hx_cb_ints, (int64_t[4]){ 0 });
    cr_assert_eq(rc, HERALD_EDENIED, "DELETE via query: rc %s", herald_err_name(rc));
    int64_t v[4] = { -1 };
    cr_assert_eq(herald_sql_query(env.store, "SELECT count(*) FROM qw", NULL, 0, hx_cb_ints, v), 0);
    cr_assert_eq(v[0], 0);
}

Test(sql, a_view_or_trigger_cannot_reach_herald_tables)
{
    hx_create_queue(env.store, "q", NULL);
    hx_send_json(env.store, "q", "{\"keep\":1}", HERALD_UNSET, NULL);
    /* a view over herald_messages: refused when made or when read */
    int rc_c = herald_sql_exec(env.store, "CREATE VIEW v AS SELECT 1 AS x FROM herald_messages", NULL,
                               0, NULL);
    if (rc_c == 0) {
        int64_t v[4] = { -1 };
        int rc = herald_sql_query(env.store, "SELECT count(*) FROM v", NULL, 0, hx_cb_ints, v);
        cr_assert_eq(rc, HERALD_EDENIED, "reading herald_messages through a view: rc %s, count "
                     "%lld", herald_err_name(rc), (long long)v[0]);
    } else {
        cr_assert_eq(rc_c, HERALD_EDENIED, "rc %s", herald_err_name(rc_c));
    }
    /* a trigger on a user table that deletes Herald's messages */
    exec_ok("CREATE TABLE tt(x)", NULL, 0, NULL);
    rc_c = herald_sql_exec(env.store,
                           "CREATE TRIGGER tr AFTER INSERT ON tt BEGIN "
                           "DELETE FROM herald_messages; END",
                           NULL, 0, NULL);
    if (rc_c == 0) {
        herald_arg a = HERALD_ARG_I(1);
        int rc = herald_sql_exec(env.store, "INSERT INTO tt VALUES (?)", &a, 1, NULL);
        cr_assert_eq(rc, HERALD_EDENIED, "insert firing a trigger on herald_messages: rc %s",
                     herald_err_name(rc));
    } else {
        cr_assert_eq(rc_c, HERALD_EDENIED, "rc %s", herald_err_name(rc_c));
    }
    cr_assert_eq(hx_stats(env.store, "q").backlog_count, 1);
    herald_batch b = { 0 };
    cr_assert_eq(hx_peek(env.store, "q", &b), 1, "Herald's messages were deleted");
    herald_batch_deinit(&b);
}

Test(sql, a_cached_statement_recompiled_after_a_schema_change_is_still_checked)
{
    hx_create_queue(env.store, "q", NULL);
    hx_send_json(env.store, "q", "{\"keep\":1}", HERALD_UNSET, NULL);
    exec_ok("CREATE TABLE tt(x)", NULL, 0, NULL);
    herald_arg a = HERALD_ARG_I(1);
    /* cache the statement while it is harmless */
    exec_ok("INSERT INTO tt VALUES (?)", &a, 1, NULL);
    /* then add a trigger that reaches Herald's table (allowed or not at creation) */
    int rc_c = herald_sql_exec(env.store,
                               "CREATE TRIGGER tr2 AFTER INSERT ON tt BEGIN "
                               "DELETE FROM herald_messages; END",
                               NULL, 0, NULL);
    cr_assert(rc_c == 0 || rc_c == HERALD_EDENIED, "rc %s", herald_err_name(rc_c));
    int rc = herald_sql_exec(env.store, "INSERT INTO tt VALUES (?)", &a, 1, NULL);
    if (rc_c == 0)
        cr_assert_eq(rc, HERALD_EDENIED,
                     "the cached INSERT, recompiled after CREATE TRIGGER, ran the trigger's "
                     "DELETE FROM herald_messages: rc %s",
                     herald_err_name(rc));
    cr_assert_eq(hx_stats(env.store, "q").backlog_count, 1);
    herald_batch b = { 0 };
    cr_assert_eq(hx_peek(env.store, "q", &b), 1,
                 "Herald's messages were deleted through a recompiled cached statement");
    herald_batch_deinit(&b);
}

Test(sql, a_cached_query_recompiled_after_a_view_change_is_still_checked)
{
    hx_create_queue(env.store, "q", NULL);
    hx_send_json(env.store, "q", "{\"keep\":1}", HERALD_UNSET, NULL);
    int rc;
    /* cache a query over a harmless view, then point the view at Herald's table */
    exec_ok("CREATE VIEW v2 AS SELECT 1 AS x", NULL, 0, NULL);
    int64_t v[4] = { -1 };
    cr_assert_eq(herald_sql_query(env.store, "SELECT count(*) FROM v2", NULL, 0, hx_cb_ints, v), 0);
    int rc_c = herald_sql_exec(env.store,
                           "DROP VIEW v2; CREATE VIEW v2 AS SELECT 1 AS x FROM herald_messages",
                           NULL, 0, NULL);
    cr_assert(rc_c == 0 || rc_c == HERALD_EDENIED, "rc %s", herald_err_name(rc_c));
    if (rc_c == 0) {
        v[0] = -1;
        rc = herald_sql_query(env.store, "SELECT count(*) FROM v2", NULL, 0, hx_cb_ints, v);
        cr_assert_eq(rc, HERALD_EDENIED,
                     "the cached query, recompiled after the view changed, read herald_messages: "
                     "rc %s, count %lld",
                     herald_err_name(rc), (long long)v[0]);
    }
}

Test(sql, null_arguments_are_einval)
{
    int rc = herald_sql_exec(NULL, "SELECT 1", NULL, 0, NULL);
    cr_assert_eq(rc, HERALD_EINVAL);
    rc = herald_sql_exec(env.store, NULL, NULL, 0, NULL);
    cr_assert_eq(rc, HERALD_EINVAL);
    rc = herald_sql_exec(env.store, "SELECT ?", NULL, 1, NULL);
    cr_assert_eq(rc, HERALD_EINVAL);
    rc = herald_sql_query(env.store, "SELECT 1", NULL, 0, NULL, NULL);
    cr_assert_eq(rc, HERALD_EINVAL);
    herald_arg t = { .type = HERALD_ARG_TEXT, .p = NULL, .len = SIZE_MAX };
    rc = herald_sql_exec(env.store, "SELECT ?", &t, 1, NULL);
    cr_assert_eq(rc, HERALD_EINVAL, "NULL text: rc %s", herald_err_name(rc));
}

/* ---- error classes of a tx handler ---------------------------------------------------------- */

Test(eo, permanent_failure_dead_letters_at_once_and_rolls_back)
{
    use_dlq(3);
    char id[HERALD_ID_SIZE];
    send_ev("in", NULL, NULL, NULL, id);
    mode md = { .send_event = true, .send_plain = true, .always_fail = true,
                .error = "cannot ever work", .fail_rc = HERALD_FAIL_PERMANENT };
    start_in(&md);
    WAIT_UNTIL(stats("in-dlq").backlog_count == 1 && stats("in").backlog_count == 0);
    stop(); /* the dead letter and the handler's rollback committed in one transaction */
    assert_no_handler_failure();

    cr_assert_eq(stats("in-dlq").backlog_count, 1, "not dead-lettered (in backlog %lld)",
                 (long long)stats("in").backlog_count);
    cr_assert_eq(n_calls(), 1, "handler ran %d times: a permanent failure was retried",
                 n_calls());
    herald_queue_stats in = stats("in");
    cr_assert_eq(in.retried_total, 0);
    cr_assert_eq(in.dead_lettered_total, 1);
    cr_assert_eq(effects_rows(), 0, "the failed handler's SQL was kept");
    cr_assert_eq(stats("out").sent_total, 0, "the failed handler's event was sent");
    cr_assert_eq(stats("out_plain").sent_total, 0, "the failed handler's message was sent");
    herald_batch b = { 0 };
    cr_assert_eq(peek_all("in-dlq", &b), 1);
    cr_assert_eq(b.msgs[0].dead_attempts, 1, "dead_attempts %d: retried before the DLQ",
                 b.msgs[0].dead_attempts);
    cr_assert_str_eq(b.msgs[0].last_error, "cannot ever work");
    cr_assert_str_eq(b.msgs[0].dead_from_queue, "in");
    herald_batch_deinit(&b);
}

Test(eo, other_negative_returns_are_retried_and_roll_back)
{
    static const int rcs[] = { -1, -42, HERALD_EINVAL };
    mode md = { .send_event = true, .send_plain = true, .fail_first = true };
    for (size_t i = 0; i < sizeof rcs / sizeof rcs[0]; i++) {
        md.fail_rc = rcs[i];
        int calls0 = n_calls();
        int64_t retried0 = stats("in").retried_total;
        send_ev("in", NULL, NULL, NULL, NULL);
        start_in(&md);
        wait_drained("in", (int64_t)i + 1);
        stop();
        assert_no_handler_failure();
        cr_assert_eq(n_calls() - calls0, 2, "rc %d: handler ran %d times, want 2", rcs[i],
                     n_calls() - calls0);
        cr_assert_eq(stats("in").retried_total - retried0, 1, "rc %d was not retried", rcs[i]);
        cr_assert_eq(stats("in").dead_lettered_total, 0, "rc %d was dead-lettered", rcs[i]);
        cr_assert_eq(effects_rows(), (int64_t)i + 1,
                     "rc %d: the failed attempt's SQL was kept (or the retry's lost)", rcs[i]);
        cr_assert_eq(stats("out").sent_total, (int64_t)i + 1, "rc %d", rcs[i]);
    }
}

/* ON CONFLICT ROLLBACK (or a trigger's RAISE(ROLLBACK)) ends the whole transaction, which the
 * authorizer cannot see: the statement fails naming why, and the store goes on writing (it
 * used to refuse every write until reopened). */
Test(sql, a_statement_that_rolls_back_the_transaction_fails_alone)
{
    exec_ok("CREATE TABLE uniq (x INTEGER UNIQUE)", NULL, 0, NULL);
    exec_ok("INSERT INTO uniq VALUES (1)", NULL, 0, NULL);
    int rc = herald_sql_exec(env.store, "INSERT OR ROLLBACK INTO uniq VALUES (1)", NULL, 0, NULL);
    cr_assert_eq(rc, HERALD_ESQL, "rc %s", herald_err_name(rc));
    cr_assert(strstr(herald_last_error(), "ROLLBACK"), "%s", herald_last_error());
    exec_ok("INSERT INTO uniq VALUES (2)", NULL, 0, NULL); /* the store still writes */
    send_ev("in", NULL, NULL, NULL, NULL);
    int64_t v[4] = { 0 };
    cr_assert_eq(herald_sql_query(env.store, "SELECT count(*) FROM uniq", NULL, 0, hx_cb_ints,
                                  v),
                 0);
    cr_assert_eq(v[0], 2);
    cr_assert_eq(stats("in").backlog_count, 1);
}

static int cb_nested_same_sql(void *ud, const herald_row *r);

typedef struct nested {
    herald_tx *tx;
    int outer_rows, inner_rows;
} nested;

static int cb_count(void *ud, const herald_row *r)
{
    (void)r;
    ((nested *)ud)->inner_rows++;
    return 0;
}

static int cb_nested_same_sql(void *ud, const herald_row *r)
{
    (void)r;
    nested *n = ud;
    n->outer_rows++;
    return herald_tx_query(n->tx, "SELECT event_id FROM effects", NULL, 0, cb_count, n) < 0 ? -1
                                                                                            : 0;
}

static nested g_nested;

static int h_nested(herald_tx *tx, const herald_message *m, const herald_envelope *en, void *ud)
{
    (void)m;
    (void)en;
    (void)ud;
    g_nested.tx = tx;
    return herald_tx_query(tx, "SELECT event_id FROM effects", NULL, 0, cb_nested_same_sql,
                           &g_nested);
}

/* A row callback may run the same query again: each runs to its end (the running statement is
 * not reset under it by the statement cache). */
Test(eo, a_query_callback_may_run_the_same_query_again)
{
    exec_ok("INSERT INTO effects(event_id, attempts) VALUES ('a', 1), ('b', 1), ('c', 1)", NULL,
            0, NULL);
    memset(&g_nested, 0, sizeof g_nested);
    send_ev("in", NULL, NULL, NULL, NULL);
    herald_consumer_cfg c = tx_cfg(Q_IN, 1, h_nested, NULL);
    start(&c);
    wait_drained("in", 1);
    stop();
    cr_assert_eq(g_nested.outer_rows, 3, "outer query saw %d rows", g_nested.outer_rows);
    cr_assert_eq(g_nested.inner_rows, 9, "inner queries saw %d rows", g_nested.inner_rows);
}
