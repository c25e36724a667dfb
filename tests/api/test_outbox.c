// SPDX-License-Identifier: MIT
/*
 * test_outbox.c - the transactional outbox (include/herald.h "Transactional outbox":
 * herald_outbox_run / _add / _flush / _pending / _flusher_start / _flusher_stop), through the
 * public API.
 *
 * The model: the service's database is one herald_store (DIR/service.db) holding a business
 * table `orders`; the bus is another (DIR/bus.db). herald_outbox_run writes a business row and
 * outbox events in one transaction; herald_outbox_flush publishes pending rows to the bus
 * (queue send or topic publish) and marks them published.
 *
 * What is checked: the business row and the event commit together, and a failing fn (or one
 * that propagates an add error) leaves neither; flush publishes to queues and topics (every
 * subscriber), keeps the envelope as written at add time (event_id, type, source,
 * correlation_id, payload, timestamp), keeps order per destination and across a page of 100
 * rows, splits by the batch byte limit, and marks what it published (a second flush publishes
 * nothing); a bus error stops the pass with the failing row (and every later one) pending and
 * returns that error, and a later flush delivers; bad names, malformed events and NULL
 * arguments are refused; the flusher thread delivers rows written before and after it started,
 * sees commits of another handle on the same file, retries after a bus error, and stops
 * promptly; a duplicate of a published event is processed once by an effectively-once consumer.
 *
 * Suites: `outbox` runs on the fake clock (both stores share env.clock); `outbox_rt` runs on the
 * real clock (flusher thread, consumer) and awaits outcomes in bounded polling loops
 * (WAIT_UNTIL, 15 s). fn callbacks run on the service store's writer thread: they only record
 * into their plan; the test thread asserts.
 */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "herald.h"
#include "support.h"

static hx_env env;
static herald_store *svc;  /* the service database: DIR/service.db */
static herald_store *bus;  /* the bus: DIR/bus.db */
static herald_store *svc2; /* a second handle on DIR/service.db (a "other process" stand-in) */
static herald_outbox_flusher *g_f;
static herald_consumer *g_c;

#define T0_ISO "2026-01-01T00:00:00.000Z" /* hx_clock's start, as an envelope timestamp */

static void open_stores(bool real_clock)
{
    hx_clock *c = real_clock ? NULL : &env.clock;
    svc = hx_open_file(env.dir, "service.db", c);
    bus = hx_open_file(env.dir, "bus.db", c);
    int rc = herald_sql_exec(svc,
                             "CREATE TABLE orders(id INTEGER PRIMARY KEY, n INTEGER NOT NULL, "
                             "note TEXT)",
                             NULL, 0, NULL);
    cr_assert_eq(rc, 0, "create orders: %s: %s", herald_err_name(rc), herald_last_error());
}

static void setup_fake(void)
{
    hx_env_setup(&env, HX_ENV_NO_STORE);
    open_stores(false);
}

static void setup_real(void)
{
    hx_env_setup(&env, HX_ENV_NO_STORE | HX_ENV_REAL_CLOCK);
    open_stores(true);
}

static void teardown(void)
{
    herald_outbox_flusher_stop(g_f);
    g_f = NULL;
    herald_consumer_stop(g_c);
    g_c = NULL;
    herald_store_close(svc2);
    herald_store_close(svc);
    herald_store_close(bus);
    svc = bus = svc2 = NULL;
    hx_env_teardown(&env);
}

TestSuite(outbox, .init = setup_fake, .fini = teardown, .timeout = 60);
TestSuite(outbox_rt, .init = setup_real, .fini = teardown, .timeout = 90);

/* Polls cond every 5 ms for up to 15 s. */
#define WAIT_UNTIL(cond) HX_WAIT_UNTIL(cond, 15000)

/* ---- what one herald_outbox_run does ---------------------------------------------------------- */

enum { MAX_ADDS = 16 };

typedef struct add_spec {
    const char *dest;
    bool is_topic;
    herald_event e;
    bool e_null;  /* pass e = NULL */
    bool no_id;   /* pass event_id_out = NULL */
} add_spec;

typedef struct plan {
    int64_t order_n;      /* value of the business row (always inserted first) */
    add_spec adds[MAX_ADDS];
    size_t n_adds;
    const char *sql_last; /* a statement run after the adds (NULL: none); its error returns */
    int fail_rc;          /* returned at the end when != 0 */
    bool keep_going;      /* an add error is recorded, not returned */
    /* filled by fn (on the writer thread) */
    int calls;
    int insert_rc;
    int add_rc[MAX_ADDS];
    char ids[MAX_ADDS][HERALD_ID_SIZE];
    char add_err[MAX_ADDS][256];
} plan;

static int plan_fn(herald_tx *tx, void *ud)
{
    plan *p = ud;
    p->calls++;
    herald_arg a[2] = { HERALD_ARG_I(p->order_n), HERALD_ARG_S("business") };
    p->insert_rc = herald_tx_exec(tx, "INSERT INTO orders(n, note) VALUES (?, ?)", a, 2, NULL);
    if (p->insert_rc < 0)
        return p->insert_rc;
    for (size_t i = 0; i < p->n_adds; i++) {
        add_spec *s = &p->adds[i];
        int rc = herald_outbox_add(tx, s->dest, s->is_topic, s->e_null ? NULL : &s->e,
                                   s->no_id ? NULL : p->ids[i]);
        p->add_rc[i] = rc;
        if (rc < 0) {
            snprintf(p->add_err[i], sizeof p->add_err[i], "%s", herald_last_error());
            if (!p->keep_going)
                return rc;
        }
    }
    if (p->sql_last) {
        int rc = herald_tx_exec(tx, p->sql_last, NULL, 0, NULL);
        if (rc < 0)
            return rc;
    }
    return p->fail_rc;
}

static herald_event order_event(const char *payload)
{
    return (herald_event){ .type = "order.created", .source = "order-svc",
                           .payload_json = payload };
}

/* One business row with value n and one event {"i":n} to dest; asserts success; id may be NULL. */
static void add_one(herald_store *s, const char *dest, bool is_topic, int64_t n,
                    char id[HERALD_ID_SIZE])
{
    char payload[64];
    snprintf(payload, sizeof payload, "{\"i\":%lld}", (long long)n);
    plan p = { .order_n = n, .n_adds = 1 };
    p.adds[0] = (add_spec){ .dest = dest, .is_topic = is_topic, .e = order_event(payload) };
    int rc = herald_outbox_run(s, plan_fn, &p);
    cr_assert_eq(rc, 0, "outbox_run (event %lld to %s): %s: %s", (long long)n, dest,
                 herald_err_name(rc), herald_last_error());
    cr_assert_eq(p.add_rc[0], 0);
    if (id)
        memcpy(id, p.ids[0], HERALD_ID_SIZE);
}

/* ---- reading back ---------------------------------------------------------------------------- */

static int64_t orders(void)
{
    return hx_sql_int(svc, "SELECT count(*) FROM orders");
}

static int64_t pending(void)
{
    int64_t n = -1;
    int rc = herald_outbox_pending(svc, &n);
    cr_assert_eq(rc, 0, "outbox_pending: %s: %s", herald_err_name(rc), herald_last_error());
    return n;
}

static int64_t flush_ok(void)
{
    int64_t n = -1;
    int rc = herald_outbox_flush(svc, bus, &n);
    cr_assert_eq(rc, 0, "outbox_flush: %s: %s", herald_err_name(rc), herald_last_error());
    return n;
}

static int64_t backlog(herald_store *s, const char *q)
{
    return hx_stats(s, q).backlog_count;
}

/* Every message of a bus queue, pulled (leased for 12 h) in delivery order, parsed. */
typedef struct got {
    herald_envelope *env;
    size_t n;
} got;

static void got_free(got *g)
{
    for (size_t i = 0; i < g->n; i++)
        herald_envelope_deinit(&g->env[i]);
    free(g->env);
    memset(g, 0, sizeof *g);
}

static void drain(herald_store *s, const char *q, got *g)
{
    memset(g, 0, sizeof *g);
    herald_batch b = { 0 };
    size_t cap = 0;
    for (;;) {
        size_t n = hx_pull(s, q, 100, HERALD_MAX_VISIBILITY_MS, &b);
        if (n == 0)
            break;
        for (size_t k = 0; k < n; k++) {
            const herald_message *m = &b.msgs[k];
            cr_assert_eq(m->content_type, HERALD_CONTENT_JSON, "%s[%zu]: content type %d", q,
                         g->n, (int)m->content_type);
            if (g->n == cap) {
                cap = cap ? cap * 2 : 64;
                g->env = realloc(g->env, cap * sizeof *g->env);
                cr_assert_not_null(g->env);
            }
            int rc = herald_envelope_parse(m->body, m->body_len, &g->env[g->n]);
            cr_assert_eq(rc, 0, "%s[%zu]: not an envelope: %s: [%.*s]", q, g->n,
                         herald_last_error(), (int)m->body_len, (const char *)m->body);
            g->n++;
        }
    }
    herald_batch_deinit(&b);
}

/* The i of a {"i":N} payload. */
static long payload_i(const herald_envelope *e)
{
    long v = -1;
    cr_assert_eq(sscanf(e->payload_json, "{\"i\":%ld}", &v), 1, "payload [%s]", e->payload_json);
    return v;
}

/* ---- run: commit together -------------------------------------------------------------------- */

Test(outbox, run_commits_the_business_row_and_the_event_together)
{
    hx_create_queue(bus, "orders", NULL);
    plan p = { .order_n = 7, .n_adds = 1 };
    p.adds[0] = (add_spec){ .dest = "orders", .e = order_event("{\"i\":7}") };
    int rc = herald_outbox_run(svc, plan_fn, &p);
    cr_assert_eq(rc, 0, "outbox_run: %s: %s", herald_err_name(rc), herald_last_error());
    cr_assert_eq(p.calls, 1, "fn ran %d times", p.calls);
    cr_assert_eq(p.insert_rc, 0);
    cr_assert_eq(p.add_rc[0], 0, "outbox_add: %s", p.add_err[0]);
    cr_assert(hx_is_uuid(p.ids[0]), "event id [%s]", p.ids[0]);
    cr_assert_eq(orders(), 1);
    cr_assert_eq(hx_sql_int(svc, "SELECT n FROM orders"), 7);
    cr_assert_eq(pending(), 1);
    cr_assert_eq(backlog(bus, "orders"), 0, "nothing reaches the bus before a flush");

    /* several events in one run; event_id_out may be NULL */
    plan q = { .order_n = 8, .n_adds = 3 };
    q.adds[0] = (add_spec){ .dest = "orders", .e = order_event("{\"i\":8}") };
    q.adds[1] = (add_spec){ .dest = "order-events", .is_topic = true,
                            .e = order_event("{\"i\":9}") };
    q.adds[2] = (add_spec){ .dest = "orders", .e = order_event("{\"i\":10}"), .no_id = true };
    rc = herald_outbox_run(svc, plan_fn, &q);
    cr_assert_eq(rc, 0, "outbox_run: %s: %s", herald_err_name(rc), herald_last_error());
    cr_assert_str_neq(q.ids[0], q.ids[1], "two events got the same id");
    cr_assert_str_neq(q.ids[0], p.ids[0]);
    cr_assert_eq(orders(), 2);
    cr_assert_eq(pending(), 4);
}

Test(outbox, run_is_durable_across_a_reopen)
{
    char id[HERALD_ID_SIZE];
    add_one(svc, "orders", false, 1, id);
    herald_store_close(svc);
    svc = hx_open_file(env.dir, "service.db", &env.clock);
    cr_assert_eq(orders(), 1);
    cr_assert_eq(pending(), 1);
    hx_create_queue(bus, "orders", NULL);
    cr_assert_eq(flush_ok(), 1);
    got g;
    drain(bus, "orders", &g);
    cr_assert_eq(g.n, 1);
    cr_assert_str_eq(g.env[0].event_id, id);
    got_free(&g);
}

Test(outbox, a_failing_fn_rolls_back_the_row_and_the_event)
{
    plan p = { .order_n = 1, .n_adds = 2, .fail_rc = -77 };
    p.adds[0] = (add_spec){ .dest = "orders", .e = order_event("{\"i\":1}") };
    p.adds[1] = (add_spec){ .dest = "audit", .is_topic = true, .e = order_event("{\"i\":1}") };
    int rc = herald_outbox_run(svc, plan_fn, &p);
    cr_assert_eq(rc, -77, "outbox_run returned %d (%s), want fn's -77", rc, herald_err_name(rc));
    cr_assert_eq(p.calls, 1);
    cr_assert_eq(p.add_rc[0], 0);
    cr_assert_eq(p.add_rc[1], 0);
    cr_assert_eq(orders(), 0, "the business row survived the rollback");
    cr_assert_eq(pending(), 0, "the event survived the rollback");

    /* a Herald error code from fn is returned as is */
    plan e = { .order_n = 2, .n_adds = 1, .fail_rc = HERALD_EBUSY };
    e.adds[0] = (add_spec){ .dest = "orders", .e = order_event("{\"i\":2}") };
    cr_assert_eq(herald_outbox_run(svc, plan_fn, &e), HERALD_EBUSY);
    cr_assert_eq(orders(), 0);
    cr_assert_eq(pending(), 0);

    /* a failing statement after the add, propagated: the add is gone too */
    plan s = { .order_n = 3, .n_adds = 1, .sql_last = "INSERT INTO no_such_table VALUES (1)" };
    s.adds[0] = (add_spec){ .dest = "orders", .e = order_event("{\"i\":3}") };
    rc = herald_outbox_run(svc, plan_fn, &s);
    cr_assert_eq(rc, HERALD_ESQL, "outbox_run returned %s, want HERALD_ESQL", herald_err_name(rc));
    cr_assert_eq(s.add_rc[0], 0);
    cr_assert_eq(orders(), 0);
    cr_assert_eq(pending(), 0);

    /* the store is fine afterwards */
    add_one(svc, "orders", false, 4, NULL);
    cr_assert_eq(orders(), 1);
    cr_assert_eq(pending(), 1);
    hx_create_queue(bus, "orders", NULL);
    hx_create_queue(bus, "audit-q", NULL);
    cr_assert_eq(herald_topic_subscribe(bus, "audit", "audit-q"), 0);
    cr_assert_eq(flush_ok(), 1, "only the committed event is published");
    cr_assert_eq(backlog(bus, "orders"), 1);
    cr_assert_eq(backlog(bus, "audit-q"), 0);
}

/* ---- flush ----------------------------------------------------------------------------------- */

Test(outbox, flush_to_a_queue_keeps_the_envelope_and_the_order_and_marks_the_rows)
{
    hx_create_queue(bus, "orders", NULL);
    enum { N = 5 };
    static const char explicit_id[] = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
    char ids[N][HERALD_ID_SIZE];
    for (int i = 0; i < N; i++) {
        char payload[64];
        snprintf(payload, sizeof payload, "{\"i\":%d}", i);
        plan p = { .order_n = i, .n_adds = 1 };
        p.adds[0] = (add_spec){ .dest = "orders",
                                .e = { .event_id = i == 3 ? explicit_id : NULL,
                                       .type = "order.created", .source = "order-svc",
                                       .correlation_id = "corr-7", .payload_json = payload } };
        int rc = herald_outbox_run(svc, plan_fn, &p);
        cr_assert_eq(rc, 0, "run %d: %s: %s", i, herald_err_name(rc), herald_last_error());
        memcpy(ids[i], p.ids[0], HERALD_ID_SIZE);
    }
    cr_assert_str_eq(ids[3], explicit_id, "a given event_id is kept");
    cr_assert_eq(pending(), N);

    /* the envelope was built when the row was added, not when it is flushed */
    hx_clock_advance(&env.clock, 5000);
    cr_assert_eq(flush_ok(), N);
    cr_assert_eq(pending(), 0);

    herald_queue_stats st = hx_stats(bus, "orders");
    cr_assert_eq(st.backlog_count, N);
    cr_assert_eq(st.sent_total, N);
    got g;
    drain(bus, "orders", &g);
    cr_assert_eq(g.n, N);
    for (int i = 0; i < N; i++) {
        const herald_envelope *e = &g.env[i];
        cr_assert_str_eq(e->event_id, ids[i], "message %d: event_id %s, want %s", i, e->event_id,
                         ids[i]);
        cr_assert_str_eq(e->type, "order.created");
        cr_assert_str_eq(e->source, "order-svc");
        cr_assert_str_eq(e->correlation_id, "corr-7");
        cr_assert_str_eq(e->timestamp, T0_ISO, "message %d: timestamp %s", i, e->timestamp);
        cr_assert_eq(payload_i(e), i, "message %d carries payload %s", i, e->payload_json);
    }
    got_free(&g);

    /* marked: a second pass publishes nothing */
    cr_assert_eq(flush_ok(), 0);
    cr_assert_eq(hx_stats(bus, "orders").sent_total, N, "a second flush published again");
    cr_assert_eq(pending(), 0);

    /* n_published may be NULL */
    add_one(svc, "orders", false, 99, NULL);
    cr_assert_eq(herald_outbox_flush(svc, bus, NULL), 0, "%s", herald_last_error());
    cr_assert_eq(pending(), 0);
    cr_assert_eq(hx_stats(bus, "orders").sent_total, N + 1);
}

Test(outbox, flush_to_a_topic_reaches_every_subscriber)
{
    hx_create_queue(bus, "billing", NULL);
    hx_create_queue(bus, "shipping", NULL);
    hx_create_queue(bus, "bystander", NULL);
    cr_assert_eq(herald_topic_subscribe(bus, "order-events", "billing"), 0, "%s",
                 herald_last_error());
    cr_assert_eq(herald_topic_subscribe(bus, "order-events", "shipping"), 0, "%s",
                 herald_last_error());
    char ids[3][HERALD_ID_SIZE];
    for (int i = 0; i < 3; i++)
        add_one(svc, "order-events", true, i, ids[i]);
    cr_assert_eq(pending(), 3);
    cr_assert_eq(flush_ok(), 3, "n_published counts outbox rows");
    cr_assert_eq(pending(), 0);
    cr_assert_eq(backlog(bus, "bystander"), 0);

    static const char *const subs[] = { "billing", "shipping" };
    for (int k = 0; k < 2; k++) {
        got g;
        drain(bus, subs[k], &g);
        cr_assert_eq(g.n, 3, "%s received %zu events", subs[k], g.n);
        for (int i = 0; i < 3; i++) {
            cr_assert_str_eq(g.env[i].event_id, ids[i], "%s[%d]", subs[k], i);
            cr_assert_eq(payload_i(&g.env[i]), i);
            cr_assert_str_eq(g.env[i].type, "order.created");
        }
        got_free(&g);
    }
    herald_topic_info *list = NULL;
    size_t n = 0;
    cr_assert_eq(herald_topic_list(bus, &list, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(list[0].name, "order-events");
    cr_assert_eq(list[0].unrouted_total, 0);
    herald_topic_list_free(list, n);

    cr_assert_eq(flush_ok(), 0);
    cr_assert_eq(backlog(bus, "billing"), 3);
}

Test(outbox, flush_of_250_rows_across_two_queues_and_pages)
{
    hx_create_queue(bus, "qa", NULL);
    hx_create_queue(bus, "qb", NULL);
    enum { N = 250, PER_RUN = 10, BLOCK = 7 };
    /* destinations in blocks of 7 (qa, qb, qa, ...): groups cross the 100-row page boundary */
    static char ids[N][HERALD_ID_SIZE];
    static char payloads[N][32];
    for (int r = 0; r < N / PER_RUN; r++) {
        plan p = { .order_n = r, .n_adds = PER_RUN };
        for (int k = 0; k < PER_RUN; k++) {
            int i = r * PER_RUN + k;
            snprintf(payloads[i], sizeof payloads[i], "{\"i\":%d}", i);
            p.adds[k] = (add_spec){ .dest = (i / BLOCK) % 2 ? "qb" : "qa",
                                    .e = order_event(payloads[i]) };
        }
        int rc = herald_outbox_run(svc, plan_fn, &p);
        cr_assert_eq(rc, 0, "run %d: %s: %s", r, herald_err_name(rc), herald_last_error());
        for (int k = 0; k < PER_RUN; k++)
            memcpy(ids[r * PER_RUN + k], p.ids[k], HERALD_ID_SIZE);
    }
    cr_assert_eq(orders(), N / PER_RUN);
    cr_assert_eq(pending(), N);
    cr_assert_eq(flush_ok(), N);
    cr_assert_eq(pending(), 0);

    got a, b;
    drain(bus, "qa", &a);
    drain(bus, "qb", &b);
    cr_assert_eq(a.n + b.n, N, "qa %zu + qb %zu messages, want %d", a.n, b.n, N);
    size_t ka = 0, kb = 0;
    for (int i = 0; i < N; i++) {
        bool to_b = (i / BLOCK) % 2;
        got *g = to_b ? &b : &a;
        size_t *k = to_b ? &kb : &ka;
        cr_assert_lt(*k, g->n, "event %d missing from %s", i, to_b ? "qb" : "qa");
        const herald_envelope *e = &g->env[*k];
        cr_assert_eq(payload_i(e), i, "%s[%zu] is event %ld, want %d (order)", to_b ? "qb" : "qa",
                     *k, payload_i(e), i);
        cr_assert_str_eq(e->event_id, ids[i]);
        (*k)++;
    }
    cr_assert_eq(ka, a.n);
    cr_assert_eq(kb, b.n);
    got_free(&a);
    got_free(&b);
    cr_assert_eq(flush_ok(), 0);
    cr_assert_eq(hx_stats(bus, "qa").sent_total + hx_stats(bus, "qb").sent_total, N);
}

/* A {"i":N,"blob":"xxx..."} payload of about `bytes` bytes; caller frees. */
static char *big_payload(int i, size_t bytes)
{
    char *p = malloc(bytes + 64);
    cr_assert_not_null(p);
    int h = snprintf(p, 64, "{\"i\":%d,\"blob\":\"", i);
    memset(p + h, 'x', bytes);
    memcpy(p + h + bytes, "\"}", 3);
    return p;
}

Test(outbox, flush_splits_big_events_by_the_batch_byte_limit)
{
    hx_create_queue(bus, "orders", NULL);
    enum { N = 5 };
    /* ~100 KB each: any two are fine in one batch, three exceed 256,000 bytes */
    for (int i = 0; i < N; i++) {
        char *payload = big_payload(i, 100000);
        plan p = { .order_n = i, .n_adds = 1 };
        p.adds[0] = (add_spec){ .dest = "orders", .e = order_event(payload) };
        int rc = herald_outbox_run(svc, plan_fn, &p);
        free(payload);
        cr_assert_eq(rc, 0, "run %d: %s: %s", i, herald_err_name(rc), herald_last_error());
    }
    cr_assert_eq(flush_ok(), N);
    cr_assert_eq(pending(), 0);
    got g;
    drain(bus, "orders", &g);
    cr_assert_eq(g.n, N);
    for (int i = 0; i < N; i++) {
        long v = -1;
        cr_assert_eq(sscanf(g.env[i].payload_json, "{\"i\":%ld,", &v), 1);
        cr_assert_eq(v, i, "order: message %d is event %ld", i, v);
        cr_assert_gt(g.env[i].payload_len, 100000);
    }
    got_free(&g);
}

Test(outbox, an_event_over_the_message_limit_is_refused_at_add)
{
    char *payload = big_payload(0, HERALD_MAX_MESSAGE_BYTES);
    plan p = { .order_n = 1, .n_adds = 1 };
    p.adds[0] = (add_spec){ .dest = "orders", .e = order_event(payload) };
    int rc = herald_outbox_run(svc, plan_fn, &p);
    free(payload);
    cr_assert_eq(p.add_rc[0], HERALD_ETOOBIG, "outbox_add of a %d-byte payload: %s",
                 HERALD_MAX_MESSAGE_BYTES, herald_err_name(p.add_rc[0]));
    cr_assert_eq(rc, HERALD_ETOOBIG);
    cr_assert_eq(orders(), 0);
    cr_assert_eq(pending(), 0);
}

Test(outbox, payload_len_bounds_the_payload)
{
    hx_create_queue(bus, "orders", NULL);
    static const char text[] = "{\"i\":42}  trailing garbage";
    plan p = { .order_n = 1, .n_adds = 1 };
    p.adds[0] = (add_spec){ .dest = "orders", .e = order_event(text) };
    p.adds[0].e.payload_len = 8; /* {"i":42} */
    int rc = herald_outbox_run(svc, plan_fn, &p);
    cr_assert_eq(rc, 0, "%s: %s", herald_err_name(rc), herald_last_error());
    cr_assert_eq(flush_ok(), 1);
    got g;
    drain(bus, "orders", &g);
    cr_assert_eq(g.n, 1);
    cr_assert_str_eq(g.env[0].payload_json, "{\"i\":42}");
    got_free(&g);
}

/* ---- bus errors ------------------------------------------------------------------------------ */

Test(outbox, an_unknown_bus_queue_fails_the_flush_and_keeps_the_row_pending)
{
    char id[HERALD_ID_SIZE];
    add_one(svc, "late", false, 1, id);
    int64_t n = -1;
    int rc = herald_outbox_flush(svc, bus, &n);
    cr_assert_eq(rc, HERALD_ENOQUEUE, "flush to a missing queue returned %s, want HERALD_ENOQUEUE",
                 herald_err_name(rc));
    cr_assert(hx_mentions(herald_last_error(), "late"), "error [%s] does not name the queue",
              herald_last_error());
    cr_assert_eq(pending(), 1, "the failed row was marked");
    /* again: still failing, still pending */
    cr_assert_eq(herald_outbox_flush(svc, bus, NULL), HERALD_ENOQUEUE);
    cr_assert_eq(pending(), 1);

    hx_create_queue(bus, "late", NULL);
    cr_assert_eq(flush_ok(), 1);
    cr_assert_eq(pending(), 0);
    got g;
    drain(bus, "late", &g);
    cr_assert_eq(g.n, 1);
    cr_assert_str_eq(g.env[0].event_id, id);
    got_free(&g);
    cr_assert_eq(flush_ok(), 0);
}

Test(outbox, a_bus_error_stops_the_pass_in_order)
{
    hx_create_queue(bus, "ok", NULL);
    add_one(svc, "ok", false, 0, NULL);
    add_one(svc, "late", false, 1, NULL);
    add_one(svc, "ok", false, 2, NULL);
    int rc = herald_outbox_flush(svc, bus, NULL);
    cr_assert_eq(rc, HERALD_ENOQUEUE, "flush returned %s", herald_err_name(rc));
    cr_assert_eq(backlog(bus, "ok"), 1, "rows after the failing one must wait (order)");
    cr_assert_eq(pending(), 2, "the row before the failure is published and marked, the rest not");

    hx_create_queue(bus, "late", NULL);
    cr_assert_eq(flush_ok(), 2);
    cr_assert_eq(pending(), 0);
    got g;
    drain(bus, "ok", &g);
    cr_assert_eq(g.n, 2, "ok has %zu messages (a duplicate?)", g.n);
    cr_assert_eq(payload_i(&g.env[0]), 0);
    cr_assert_eq(payload_i(&g.env[1]), 2);
    got_free(&g);
    cr_assert_eq(backlog(bus, "late"), 1);
}

Test(outbox, an_unknown_bus_topic_fails_the_flush_and_keeps_the_row_pending)
{
    add_one(svc, "news", true, 1, NULL);
    int rc = herald_outbox_flush(svc, bus, NULL);
    cr_assert_eq(rc, HERALD_ENOTOPIC, "flush to a missing topic returned %s",
                 herald_err_name(rc));
    cr_assert_eq(pending(), 1);
    hx_create_queue(bus, "reader", NULL);
    cr_assert_eq(herald_topic_subscribe(bus, "news", "reader"), 0);
    cr_assert_eq(flush_ok(), 1);
    cr_assert_eq(pending(), 0);
    cr_assert_eq(backlog(bus, "reader"), 1);
}

Test(outbox, a_bus_queue_with_a_smaller_limit_fails_the_flush_until_raised)
{
    herald_queue_settings st;
    herald_queue_settings_init(&st);
    st.max_message_bytes = 100;
    hx_create_queue(bus, "tiny", &st);
    add_one(svc, "tiny", false, 1, NULL); /* an envelope is well over 100 bytes */
    int rc = herald_outbox_flush(svc, bus, NULL);
    cr_assert_eq(rc, HERALD_ETOOBIG, "flush returned %s", herald_err_name(rc));
    cr_assert_eq(pending(), 1);
    cr_assert_eq(backlog(bus, "tiny"), 0);
    st.max_message_bytes = HERALD_MAX_MESSAGE_BYTES;
    cr_assert_eq(herald_queue_update(bus, "tiny", &st), 0);
    cr_assert_eq(flush_ok(), 1);
    cr_assert_eq(pending(), 0);
    cr_assert_eq(backlog(bus, "tiny"), 1);
}

/* ---- bad input ------------------------------------------------------------------------------- */

Test(outbox, bad_destination_names_are_refused)
{
    char too_long[HERALD_QUEUE_NAME_MAX + 2];
    memset(too_long, 'a', sizeof too_long - 1);
    too_long[sizeof too_long - 1] = 0;
    const char *bad[] = { "", "bad name", "-lead", "q!", "a/b", too_long, NULL };
    enum { NB = sizeof bad / sizeof bad[0] };
    for (int topic = 0; topic < 2; topic++) {
        /* fn ignores the errors: each failed add leaves nothing, the business row commits */
        plan p = { .order_n = topic, .n_adds = NB, .keep_going = true };
        for (int i = 0; i < NB; i++)
            p.adds[i] = (add_spec){ .dest = bad[i], .is_topic = topic,
                                    .e = order_event("{\"i\":1}") };
        int rc = herald_outbox_run(svc, plan_fn, &p);
        cr_assert_eq(rc, 0, "%s", herald_last_error());
        for (int i = 0; i < NB; i++) {
            cr_assert_eq(p.add_rc[i], HERALD_EINVAL, "%s name [%s]: %s, want HERALD_EINVAL",
                         topic ? "topic" : "queue", bad[i] ? bad[i] : "(NULL)",
                         herald_err_name(p.add_rc[i]));
            cr_assert(p.add_err[i][0], "no error message for name [%s]",
                      bad[i] ? bad[i] : "(NULL)");
        }
        cr_assert_eq(orders(), topic + 1);
        cr_assert_eq(pending(), 0, "a refused add left a row");
    }
    /* the longest valid name is fine */
    too_long[HERALD_QUEUE_NAME_MAX] = 0;
    add_one(svc, too_long, false, 5, NULL);
    cr_assert_eq(pending(), 1);

    /* fn propagates the error: the whole run rolls back, the good add before it too */
    plan p = { .order_n = 9, .n_adds = 2 };
    p.adds[0] = (add_spec){ .dest = "fine", .e = order_event("{\"i\":1}") };
    p.adds[1] = (add_spec){ .dest = "not fine", .e = order_event("{\"i\":2}") };
    int rc = herald_outbox_run(svc, plan_fn, &p);
    cr_assert_eq(rc, HERALD_EINVAL, "run returned %s", herald_err_name(rc));
    cr_assert_eq(p.add_rc[0], 0);
    cr_assert(hx_mentions(herald_last_error(), "not fine"), "error [%s] does not name the dest",
              herald_last_error());
    cr_assert_eq(orders(), 3);
    cr_assert_eq(pending(), 1);
}

Test(outbox, malformed_events_are_refused)
{
    char long_corr[HERALD_CORRELATION_ID_MAX + 2];
    memset(long_corr, 'c', sizeof long_corr - 1);
    long_corr[sizeof long_corr - 1] = 0;
    const herald_event base = order_event("{\"i\":1}");
    herald_event bad[12];
    int nb = 0;
    bad[nb] = base, bad[nb++].type = "BadType";
    bad[nb] = base, bad[nb++].type = "single";
    bad[nb] = base, bad[nb++].type = "order..created";
    bad[nb] = base, bad[nb++].type = NULL;
    bad[nb] = base, bad[nb++].source = NULL;
    bad[nb] = base, bad[nb++].source = "";
    bad[nb] = base, bad[nb++].source = "has space";
    bad[nb] = base, bad[nb++].payload_json = "[1]";
    bad[nb] = base, bad[nb++].payload_json = "{not json";
    bad[nb] = base, bad[nb++].payload_json = NULL;
    bad[nb] = base, bad[nb++].event_id = "not-a-uuid";
    bad[nb] = base, bad[nb++].correlation_id = long_corr;

    plan p = { .order_n = 1, .n_adds = (size_t)nb, .keep_going = true };
    for (int i = 0; i < nb; i++)
        p.adds[i] = (add_spec){ .dest = "orders", .e = bad[i] };
    int rc = herald_outbox_run(svc, plan_fn, &p);
    cr_assert_eq(rc, 0, "%s", herald_last_error());
    for (int i = 0; i < nb; i++) {
        cr_assert_eq(p.add_rc[i], HERALD_EENVELOPE, "bad event #%d: %s (%s), want HERALD_EENVELOPE",
                     i, herald_err_name(p.add_rc[i]), p.add_err[i]);
        cr_assert(p.add_err[i][0], "bad event #%d: no error message", i);
    }
    cr_assert_eq(orders(), 1);
    cr_assert_eq(pending(), 0, "a refused event left a row");

    /* propagated: rolls back the business row and the good event added before it */
    plan q = { .order_n = 2, .n_adds = 2 };
    q.adds[0] = (add_spec){ .dest = "orders", .e = base };
    q.adds[1] = (add_spec){ .dest = "orders", .e = bad[0] };
    rc = herald_outbox_run(svc, plan_fn, &q);
    cr_assert_eq(rc, HERALD_EENVELOPE, "run returned %s", herald_err_name(rc));
    cr_assert(hx_mentions(herald_last_error(), "type"), "error [%s] does not name the field",
              herald_last_error());
    cr_assert_eq(q.add_rc[0], 0);
    cr_assert_eq(orders(), 1);
    cr_assert_eq(pending(), 0);
}

static int fn_noop(herald_tx *tx, void *ud)
{
    (void)tx;
    (void)ud;
    return 0;
}

Test(outbox, null_arguments_are_refused)
{
    int dummy = 0;
    cr_assert_eq(herald_outbox_run(NULL, fn_noop, &dummy), HERALD_EINVAL);
    cr_assert_eq(herald_outbox_run(svc, NULL, &dummy), HERALD_EINVAL);
    cr_assert_eq(herald_outbox_run(svc, fn_noop, NULL), 0, "ud may be NULL");

    herald_event e = order_event("{\"i\":1}");
    cr_assert_eq(herald_outbox_add(NULL, "orders", false, &e, NULL), HERALD_EINVAL);
    plan p = { .order_n = 1, .n_adds = 1, .keep_going = true };
    p.adds[0] = (add_spec){ .dest = "orders", .e_null = true };
    cr_assert_eq(herald_outbox_run(svc, plan_fn, &p), 0);
    cr_assert_eq(p.add_rc[0], HERALD_EINVAL, "outbox_add(e NULL): %s",
                 herald_err_name(p.add_rc[0]));
    cr_assert_eq(pending(), 0);

    int64_t n = 12345;
    cr_assert_eq(herald_outbox_flush(NULL, bus, &n), HERALD_EINVAL);
    cr_assert_eq(herald_outbox_flush(svc, NULL, &n), HERALD_EINVAL);
    cr_assert_eq(n, 12345, "n_published was set on failure");
    cr_assert_eq(herald_outbox_pending(NULL, &n), HERALD_EINVAL);
    cr_assert_eq(herald_outbox_pending(svc, NULL), HERALD_EINVAL);
    cr_assert_eq(n, 12345);

    herald_outbox_flusher *f = (herald_outbox_flusher *)&dummy;
    cr_assert_eq(herald_outbox_flusher_start(NULL, bus, &f), HERALD_EINVAL);
    cr_assert_eq(herald_outbox_flusher_start(svc, NULL, &f), HERALD_EINVAL);
    cr_assert_eq(herald_outbox_flusher_start(svc, bus, NULL), HERALD_EINVAL);
    cr_assert_eq(f, (herald_outbox_flusher *)&dummy, "out was set on failure");
    herald_outbox_flusher_stop(NULL);
}

/* ---- the flusher thread (real clock) ---------------------------------------------------------- */

static void start_flusher(void)
{
    int rc = herald_outbox_flusher_start(svc, bus, &g_f);
    cr_assert_eq(rc, 0, "flusher_start: %s: %s", herald_err_name(rc), herald_last_error());
    cr_assert_not_null(g_f);
}

static void stop_flusher(void)
{
    herald_outbox_flusher_stop(g_f);
    g_f = NULL;
}

static void wait_backlog(const char *q, int64_t want)
{
    WAIT_UNTIL(backlog(bus, q) >= want);
    int64_t got_n = backlog(bus, q);
    cr_assert_eq(got_n, want, "bus queue %s holds %lld messages after 15 s, want %lld", q,
                 (long long)got_n, (long long)want);
}

Test(outbox_rt, the_flusher_delivers_rows_written_before_and_after_it_started)
{
    hx_create_queue(bus, "orders", NULL);
    add_one(svc, "orders", false, 0, NULL);
    start_flusher();
    wait_backlog("orders", 1);
    WAIT_UNTIL(pending() == 0);
    cr_assert_eq(pending(), 0, "delivered but not marked");

    enum { N = 40 };
    for (int i = 1; i < N; i++)
        add_one(svc, "orders", false, i, NULL);
    wait_backlog("orders", N);
    WAIT_UNTIL(pending() == 0);
    cr_assert_eq(pending(), 0);
    stop_flusher();

    got g;
    drain(bus, "orders", &g);
    cr_assert_eq(g.n, N, "the bus got %zu messages, want %d (no duplicates)", g.n, N);
    for (int i = 0; i < N; i++)
        cr_assert_eq(payload_i(&g.env[i]), i, "order: message %d is event %ld", i,
                     payload_i(&g.env[i]));
    got_free(&g);

    /* stopped means stopped: its thread is joined, nothing flushes any more */
    add_one(svc, "orders", false, N, NULL);
    cr_assert_eq(pending(), 1, "a row was flushed after flusher_stop");
    cr_assert_eq(hx_stats(bus, "orders").sent_total, N);
}

Test(outbox_rt, the_flusher_sees_commits_of_another_handle_on_the_file)
{
    hx_create_queue(bus, "orders", NULL);
    svc2 = hx_open_file(env.dir, "service.db", NULL);
    start_flusher();
    add_one(svc, "orders", false, 0, NULL);
    wait_backlog("orders", 1); /* the flusher is running and idle: it waits on svc */
    for (int i = 1; i < 4; i++) /* commits it can only see by polling the file */
        add_one(svc2, "orders", false, i, NULL);
    wait_backlog("orders", 4);
    WAIT_UNTIL(pending() == 0);
    cr_assert_eq(pending(), 0);
    stop_flusher();
    got g;
    drain(bus, "orders", &g);
    cr_assert_eq(g.n, 4);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(payload_i(&g.env[i]), i);
    got_free(&g);
}

/* ---- the flusher's failure backoff, on the fake clock ------------------------------------------
 * Each failed pass logs one "outbox flush failed" line: stderr goes to a file the test reads.
 * The backoff (100 ms, doubling, 30 s at most) runs on the service store's clock, which only
 * the test moves: while it stands still a failed flusher never tries again, whatever happens
 * meanwhile (service commits wake it) and however long the test takes. */

static char g_log_path[4200];
static int g_saved_stderr = -1;

static void capture_stderr(void)
{
    snprintf(g_log_path, sizeof g_log_path, "%s/stderr.log", env.dir);
    fflush(stderr);
    g_saved_stderr = dup(2);
    int fd = open(g_log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert(fd >= 0 && g_saved_stderr >= 0);
    dup2(fd, 2);
    close(fd);
}

static void restore_stderr(void)
{
    if (g_saved_stderr < 0)
        return;
    fflush(stderr);
    dup2(g_saved_stderr, 2);
    close(g_saved_stderr);
    g_saved_stderr = -1;
}

/* Failed flusher passes so far (lines logged). */
static int failures(void)
{
    char *text = hx_read_file(g_log_path, NULL);
    int n = 0;
    for (const char *p = text; p && (p = strstr(p, "outbox flush failed")); p++)
        n++;
    free(text);
    return n;
}

static void advance(int64_t ms)
{
    hx_clock_advance(&env.clock, ms);
    herald_store_wake(svc);
}

Test(outbox, the_flusher_retries_a_bus_error_when_its_backoff_has_passed_on_the_store_clock)
{
    add_one(svc, "late", false, 0, NULL); /* the bus has no queue "late" yet */
    capture_stderr();
    start_flusher();
    HX_AWAIT(failures() == 1);
    /* every backoff, 1 ms short and then exactly: 100 ms .. 25.6 s (51 s in all: only the
     * store's clock can pass that within the test) */
    int64_t k = 1;
    for (int64_t backoff = 100; backoff <= 25600; backoff *= 2, k++) {
        advance(backoff - 1);
        add_one(svc, "late", false, (int)k, NULL); /* a service commit wakes it too */
        cr_assert_eq(failures(), k, "a pass ran %lld ms into a %lld ms backoff",
                     (long long)(backoff - 1), (long long)backoff);
        advance(1);
        HX_AWAIT(failures() == k + 1);
    }
    hx_create_queue(bus, "late", NULL);
    advance(29999); /* the backoff is capped at 30 s (not 51.2 s) */
    add_one(svc, "late", false, (int)k, NULL);
    cr_assert_eq(failures(), k);
    cr_assert_eq(backlog(bus, "late"), 0, "the flusher cut its backoff short");
    advance(1);
    HX_AWAIT(backlog(bus, "late") == k + 1 && pending() == 0);
    stop_flusher();
    restore_stderr();
    cr_assert_eq(failures(), k);
    cr_assert_eq(hx_stats(bus, "late").sent_total, k + 1, "each row once");
}

Test(outbox, service_commits_do_not_cut_the_failure_backoff_short)
{
    /* The bus queue is missing, so every pass fails. Each add commits on the service database
     * and wakes the flusher; the store's clock stands still, so the first failure's backoff
     * never ends and there is no second pass, however many commits come. */
    add_one(svc, "late", false, 0, NULL);
    capture_stderr();
    start_flusher();
    HX_AWAIT(failures() == 1);
    for (int i = 1; i <= 200; i++)
        add_one(svc, "late", false, i, NULL);
    int n = failures();
    stop_flusher();
    restore_stderr();
    cr_assert_eq(n, 1, "%d failed passes while the clock stood still: commits cut the backoff "
                       "short", n);
    cr_assert_eq(pending(), 201, "rows were lost or marked while the bus failed");
}

Test(outbox, flusher_stop_interrupts_the_backoff)
{
    add_one(svc, "late", false, 1, NULL);
    capture_stderr();
    start_flusher();
    HX_AWAIT(failures() == 1);
    advance(100);
    HX_AWAIT(failures() == 2); /* now in a 200 ms backoff that the still clock never ends */
    stop_flusher();            /* returns: stopping ends the backoff (else: the suite timeout) */
    restore_stderr();
    cr_assert_eq(failures(), 2);
    cr_assert_eq(pending(), 1);
}

/* ---- a duplicate publish is harmless ---------------------------------------------------------- */

static atomic_int g_calls;

Test(outbox_rt, a_published_event_sent_again_is_processed_once)
{
    atomic_store(&g_calls, 0);
    hx_create_queue(bus, "orders", NULL);
    cr_assert_eq(herald_sql_exec(bus, "CREATE TABLE effects(event_id TEXT)", NULL, 0, NULL), 0,
                 "%s", herald_last_error());
    char id[HERALD_ID_SIZE];
    add_one(svc, "orders", false, 1, id);
    cr_assert_eq(flush_ok(), 1);

    /* what a flusher killed between publishing and marking would do: publish the same body */
    herald_batch b = { 0 };
    cr_assert_eq(hx_peek(bus, "orders", &b), 1);
    herald_msg m = { .body = b.msgs[0].body, .body_len = b.msgs[0].body_len,
                     .content_type = b.msgs[0].content_type, .delay_s = HERALD_UNSET };
    hx_send(bus, "orders", &m, NULL);
    herald_batch_deinit(&b);
    cr_assert_eq(hx_peek(bus, "orders", &b), 2);
    for (size_t i = 0; i < 2; i++) {
        herald_envelope en;
        cr_assert_eq(herald_envelope_parse(b.msgs[i].body, b.msgs[i].body_len, &en), 0);
        cr_assert_str_eq(en.event_id, id);
        herald_envelope_deinit(&en);
    }
    herald_batch_deinit(&b);

    static const char *const qs[] = { "orders" };
    herald_consumer_cfg c;
    herald_consumer_cfg_init(&c);
    c.queues = qs;
    c.n_queues = 1;
    c.tx_handler = hx_effects_handler;
    c.ud = &g_calls;
    c.max_batch_size = 10;
    c.max_batch_timeout_ms = 0;
    c.retry_delay_s = 0;
    g_c = hx_consumer_start(bus, &c);
    WAIT_UNTIL(hx_stats(bus, "orders").acked_total >= 2);
    herald_consumer_stop(g_c);
    g_c = NULL;
    herald_queue_stats st = hx_stats(bus, "orders");
    cr_assert_eq(st.acked_total, 2, "acked %lld of 2", (long long)st.acked_total);
    cr_assert_eq(st.backlog_count, 0);
    cr_assert_eq(hx_sql_int(bus, "SELECT count(*) FROM effects"), 1,
                 "the duplicate was processed again");
    cr_assert_eq(atomic_load(&g_calls), 1, "the handler ran %d times", atomic_load(&g_calls));
}
