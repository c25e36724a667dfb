// SPDX-License-Identifier: MIT
/*
 * test_callback_misuse.c - callbacks that call back into the store they run in (herald.h,
 * Conventions): a call that would wait for the thread it runs on - a synchronous write from a
 * tx_handler, a route function, an outbox function or an async send callback (the store's
 * writer or syncer), a read from a herald_sql_query row callback (the store's reader),
 * herald_store_close from either - fails at once with HERALD_EINVAL and a message that says
 * why, instead of hanging the process. What a callback may do still works: herald_tx_* in a tx
 * handler, calls on another store, reads from the writer, async sends from a row callback.
 *
 * Each callback records the rc and herald_last_error() of its misuse; the test thread waits
 * for the callback to have run and asserts. Without the refusal each misuse hangs: the suite's
 * timeout turns that into a failure instead of a stuck CI job.
 */
#include <criterion/criterion.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald.h"
#include "support.h"

static hx_env env;
static herald_consumer *g_c;

static void setup(void)
{
    hx_env_setup(&env, HX_ENV_REAL_CLOCK);
    g_c = NULL;
}

static void teardown(void)
{
    herald_consumer_stop(g_c);
    hx_env_teardown(&env);
}

TestSuite(callback_misuse, .init = setup, .fini = teardown, .timeout = 30);

/* What a callback saw when it misused the store. */
typedef struct seen {
    atomic_int calls;
    int rc;          /* of the misuse */
    char err[512];   /* herald_last_error() right after it */
    int rc2;         /* of a second call, where a test makes one */
    char err2[512];
    herald_store *s; /* the store the callback runs in */
    herald_store *other;
} seen;

static void note(int rc, int *rc_out, char *err_out)
{
    *rc_out = rc;
    snprintf(err_out, 512, "%s", herald_last_error());
}

static const herald_msg *msg_json(const char *json)
{
    static _Thread_local herald_msg m;
    herald_msg_init(&m);
    m.body = json;
    m.body_len = strlen(json);
    return &m;
}

static void assert_refused(int rc, const char *err, const char *what, const char *names)
{
    cr_assert_eq(rc, HERALD_EINVAL, "%s returned %s (%s), want HERALD_EINVAL", what,
                 herald_err_name(rc), err);
    cr_assert(hx_contains_ci(err, names) && hx_contains_ci(err, "wait for itself"),
              "%s: the message does not say why: \"%s\"", what, err);
}

/* ---- the store's writer: tx handlers, route functions, outbox functions ------------------- */

static int tx_send_misuse(herald_tx *tx, const herald_message *m, const herald_envelope *env_,
                          void *ud)
{
    (void)tx;
    (void)m;
    (void)env_;
    seen *w = ud;
    note(herald_send(w->s, "elsewhere", msg_json("{}"), NULL), &w->rc, w->err);
    note(herald_queue_create(w->s, "made-in-a-handler", NULL), &w->rc2, w->err2);
    atomic_fetch_add(&w->calls, 1);
    return 0;
}

static herald_consumer_cfg tx_cfg(const char *const *queue, herald_tx_handler_cb h, void *ud)
{
    herald_consumer_cfg c;
    herald_consumer_cfg_init(&c);
    c.queues = queue;
    c.n_queues = 1;
    c.tx_handler = h;
    c.ud = ud;
    c.max_batch_timeout_ms = 0;
    return c;
}

Test(callback_misuse, send_from_a_tx_handler_is_einval_and_says_why)
{
    static const char *const q[] = { "jobs" };
    hx_create_queue(env.store, "jobs", NULL);
    hx_create_queue(env.store, "elsewhere", NULL);
    seen w = { .s = env.store };
    herald_consumer_cfg c = tx_cfg(q, tx_send_misuse, &w);
    g_c = hx_consumer_start(env.store, &c);
    hx_send_json(env.store, "jobs", "{\"n\":1}", HERALD_UNSET, NULL);
    HX_AWAIT(atomic_load(&w.calls) == 1);
    assert_refused(w.rc, w.err, "herald_send in a tx_handler", "tx_handler");
    assert_refused(w.rc2, w.err2, "herald_queue_create in a tx_handler", "writer");
    /* the handler returned 0: its message is acked, and the writer goes on working */
    HX_AWAIT(hx_stats(env.store, "jobs").acked_total == 1);
    cr_assert_eq(hx_stats(env.store, "elsewhere").backlog_count, 0);
    herald_queue_info info;
    cr_assert_eq(herald_queue_get(env.store, "made-in-a-handler", &info), HERALD_ENOQUEUE);
}

static int tx_wait_misuse(herald_tx *tx, const herald_message *m, const herald_envelope *env_,
                          void *ud)
{
    (void)tx;
    (void)m;
    (void)env_;
    seen *w = ud;
    /* the queue holds this very message until the handler's transaction commits: without the
     * refusal the wait could only end at its (one day) timeout */
    note(herald_queue_wait_empty(w->s, "jobs", 86400000), &w->rc, w->err);
    atomic_fetch_add(&w->calls, 1);
    return 0;
}

Test(callback_misuse, wait_empty_from_a_tx_handler_is_einval_and_says_why)
{
    static const char *const q[] = { "jobs" };
    hx_create_queue(env.store, "jobs", NULL);
    seen w = { .s = env.store };
    herald_consumer_cfg c = tx_cfg(q, tx_wait_misuse, &w);
    g_c = hx_consumer_start(env.store, &c);
    hx_send_json(env.store, "jobs", "{\"n\":1}", HERALD_UNSET, NULL);
    HX_AWAIT(atomic_load(&w.calls) == 1);
    assert_refused(w.rc, w.err, "herald_queue_wait_empty in a tx_handler", "tx_handler");
    cr_assert_eq(herald_queue_wait_empty(env.store, "jobs", 30000), 0); /* outside: it works */
}

/* What a tx handler may do: its own tx, reads of the store, and calls on another store. */
static int tx_legit(herald_tx *tx, const herald_message *m, const herald_envelope *env_,
                    void *ud)
{
    (void)env_;
    seen *w = ud;
    herald_arg a = HERALD_ARG_S(m->id);
    int rc = herald_tx_exec(tx, "INSERT INTO effects(id) VALUES (?)", &a, 1, NULL);
    int64_t n[4] = { -1, -1, -1, -1 };
    if (rc == 0)
        rc = herald_tx_query(tx, "SELECT count(*) FROM effects", NULL, 0, hx_cb_ints, n);
    if (rc == 0 && n[0] != 1)
        rc = -1000 - (int)n[0];
    if (rc == 0)
        rc = herald_tx_send(tx, "out", msg_json("{\"from\":\"tx\"}"), NULL);
    herald_queue_stats st;
    if (rc == 0)
        rc = herald_queue_stats_get(w->s, "jobs", &st); /* a read: the reader, not the writer */
    if (rc == 0)
        rc = herald_send(w->other, "remote", msg_json("{\"from\":\"handler\"}"), NULL);
    note(rc, &w->rc, w->err);
    atomic_fetch_add(&w->calls, 1);
    return rc;
}

Test(callback_misuse, a_tx_handler_still_uses_its_tx_reads_and_other_stores)
{
    static const char *const q[] = { "jobs" };
    hx_create_queue(env.store, "jobs", NULL);
    hx_create_queue(env.store, "out", NULL);
    cr_assert_eq(herald_sql_exec(env.store, "CREATE TABLE effects(id TEXT)", NULL, 0, NULL), 0);
    herald_store *other = hx_open_file(env.dir, "other.db", NULL);
    hx_create_queue(other, "remote", NULL);
    seen w = { .s = env.store, .other = other };
    herald_consumer_cfg c = tx_cfg(q, tx_legit, &w);
    g_c = hx_consumer_start(env.store, &c);
    hx_send_json(env.store, "jobs", "{\"n\":1}", HERALD_UNSET, NULL);
    HX_AWAIT(atomic_load(&w.calls) >= 1);
    cr_assert_eq(w.rc, 0, "the handler failed: %s: %s", herald_err_name(w.rc), w.err);
    HX_AWAIT(hx_stats(env.store, "jobs").acked_total == 1);
    cr_assert_eq(hx_stats(env.store, "out").backlog_count, 1, "herald_tx_send did not commit");
    cr_assert_eq(hx_stats(other, "remote").backlog_count, 1);
    herald_consumer_stop(g_c);
    g_c = NULL;
    herald_store_close(other);
}

static int route_misuse(const herald_message *m, const herald_envelope *env_, const char **dests,
                        size_t cap, size_t *n_dests, void *ud)
{
    (void)m;
    (void)env_;
    (void)cap;
    seen *w = ud;
    note(herald_send(w->s, "out", msg_json("{\"sent\":\"by hand\"}"), NULL), &w->rc, w->err);
    dests[0] = "out";
    *n_dests = 1;
    atomic_fetch_add(&w->calls, 1);
    return 0;
}

Test(callback_misuse, send_from_a_route_function_is_einval_and_says_why)
{
    hx_create_queue(env.store, "in", NULL);
    hx_create_queue(env.store, "out", NULL);
    seen w = { .s = env.store };
    herald_router *r = NULL;
    cr_assert_eq(herald_router_new(env.store, &r), 0, "%s", herald_last_error());
    cr_assert_eq(herald_router_add_fn(r, "in", route_misuse, &w), 0, "%s", herald_last_error());
    cr_assert_eq(herald_router_start(r), 0, "%s", herald_last_error());
    herald_event e = { .type = "order.placed", .source = "test", .payload_json = "{}" };
    cr_assert_eq(herald_send_event(env.store, "in", &e, HERALD_UNSET, NULL), 0);
    HX_AWAIT(hx_stats(env.store, "out").backlog_count == 1);
    herald_router_free(r);
    assert_refused(w.rc, w.err, "herald_send in a route function", "route function");
    cr_assert_eq(hx_stats(env.store, "out").backlog_count, 1, "only the routed copy arrives");
}

static int outbox_misuse(herald_tx *tx, void *ud)
{
    (void)tx;
    seen *w = ud;
    note(herald_send(w->s, "orders", msg_json("{}"), NULL), &w->rc, w->err);
    int64_t n = 0;
    note(herald_outbox_pending(w->s, &n), &w->rc2, w->err2); /* a read: allowed */
    atomic_fetch_add(&w->calls, 1);
    return 0;
}

Test(callback_misuse, send_from_an_outbox_function_is_einval_and_says_why)
{
    hx_create_queue(env.store, "orders", NULL);
    seen w = { .s = env.store };
    cr_assert_eq(herald_outbox_run(env.store, outbox_misuse, &w), 0, "%s", herald_last_error());
    cr_assert_eq(atomic_load(&w.calls), 1);
    assert_refused(w.rc, w.err, "herald_send in an outbox function", "outbox function");
    cr_assert_eq(w.rc2, 0, "herald_outbox_pending in an outbox function: %s", w.err2);
    cr_assert_eq(hx_stats(env.store, "orders").backlog_count, 0);
}

/* ---- completions of async sends (the writer, or the syncer in durability full) ------------- */

static void send_cb_misuse(void *ud, int rc, const char (*ids)[HERALD_ID_SIZE], size_t n)
{
    (void)rc;
    (void)ids;
    (void)n;
    seen *w = ud;
    note(herald_send(w->s, "q", msg_json("{\"from\":\"callback\"}"), NULL), &w->rc, w->err);
    atomic_fetch_add(&w->calls, 1);
}

static void send_from_an_async_callback(herald_store *s)
{
    hx_create_queue(s, "q", NULL);
    seen w = { .s = s };
    int rc = herald_send_batch_async(s, "q", msg_json("{}"), 1, HERALD_UNSET, send_cb_misuse, &w);
    cr_assert_eq(rc, 0, "%s", herald_last_error());
    HX_AWAIT(atomic_load(&w.calls) == 1);
    assert_refused(w.rc, w.err, "herald_send in a herald_send_cb", "completion callback");
    cr_assert_eq(hx_stats(s, "q").backlog_count, 1);
}

Test(callback_misuse, send_from_an_async_send_callback_is_einval_in_full_durability)
{
    send_from_an_async_callback(env.store); /* the default: the syncer runs the callback */
}

Test(callback_misuse, send_from_an_async_send_callback_is_einval_in_normal_durability)
{
    char *url = hx_url(env.dir, "normal.db");
    herald_store_cfg cfg = { .durability = HERALD_DURABILITY_NORMAL, .durability_set = true };
    herald_store *s = NULL;
    cr_assert_eq(herald_store_open(url, &cfg, &s), 0, "%s", herald_last_error());
    free(url);
    send_from_an_async_callback(s); /* no syncer: the writer runs the callback */
    herald_store_close(s);
}

/* ---- herald_sql_query row callbacks (the store's reader) ------------------------------------ */

static void sent_cb(void *ud, int rc, const char (*ids)[HERALD_ID_SIZE], size_t n)
{
    (void)ids;
    (void)n;
    seen *w = ud;
    w->rc2 = rc;
    atomic_fetch_add(&w->calls, 1);
}

static int row_misuse(void *ud, const herald_row *r)
{
    (void)r;
    seen *w = ud;
    herald_queue_stats st;
    note(herald_queue_stats_get(w->s, "q", &st), &w->rc, w->err);
    int64_t v[4];
    int rc = herald_sql_query(w->s, "SELECT 2", NULL, 0, hx_cb_ints, v);
    if (rc != HERALD_EINVAL) /* a nested query is a read too */
        w->rc = rc;
    rc = herald_send(w->s, "q", msg_json("{}"), NULL);
    if (rc != HERALD_EINVAL) /* a write would wait on the writer while holding the reader */
        w->rc = rc;
    herald_store_close(w->s); /* refused: the store stays open */
    /* never waits, so allowed: */
    rc = herald_send_batch_async(w->s, "q", msg_json("{\"async\":1}"), 1, HERALD_UNSET, sent_cb,
                                 w);
    if (rc != 0)
        w->rc = rc;
    return 0;
}

Test(callback_misuse, stats_from_a_sql_query_row_callback_is_einval_and_says_why)
{
    hx_create_queue(env.store, "q", NULL);
    seen w = { .s = env.store, .rc2 = 1 };
    int rc = herald_sql_query(env.store, "SELECT 1", NULL, 0, row_misuse, &w);
    cr_assert_eq(rc, 0, "the query itself: %s: %s", herald_err_name(rc), herald_last_error());
    assert_refused(w.rc, w.err, "herald_queue_stats_get in a row callback", "row callback");
    HX_AWAIT(atomic_load(&w.calls) == 1);
    cr_assert_eq(w.rc2, 0, "the async send from the row callback failed");
    /* herald_store_close was refused: the store still works */
    hx_send_json(env.store, "q", "{}", HERALD_UNSET, NULL);
    cr_assert_eq(hx_stats(env.store, "q").backlog_count, 2);
}
