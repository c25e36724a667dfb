// SPDX-License-Identifier: MIT
/*
 * test_outbox_crash.c - the transactional outbox survives SIGKILL on both sides:
 *   service side: a child commits business rows and outbox events (herald_outbox_run) in a
 *     loop and reports each committed counter on a pipe; the test kills it mid-loop. After a
 *     reopen the business table and the outbox hold the same rows (neither without the other),
 *     every reported counter is in both, and a flush publishes exactly that many events.
 *   flusher side: N pending rows; a worker (outbox_worker.c, fork+exec) flushes them and the
 *     test kills it when the bus has some but not all of them, a few times; or the library
 *     kills it at a fault point (HERALD_FAULT, read once per process) between publishing and
 *     marking. A final flush then leaves nothing pending; every event of the outbox is on the
 *     bus at least once (a republished row has the same event_id), and an effectively-once
 *     consumer ends with exactly N effects (a table without a unique constraint).
 *
 * Rules: the parent never has a store open across fork() (the writer thread would not survive
 * it); children never call Criterion (they _exit() with a code) and die with the test process
 * (PR_SET_PDEATHSIG); every wait is bounded.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "herald.h"
#include "support.h"

#ifndef HERALD_OUTBOX_WORKER
#error "HERALD_OUTBOX_WORKER (path of the outbox_worker program) must be defined by the build"
#endif

static char *g_dir;
static char *g_svc_url; /* DIR/service.db */
static char *g_bus_url; /* DIR/bus.db */

static void setup(void)
{
    g_dir = hx_tmpdir();
    g_svc_url = hx_url(g_dir, "service.db");
    g_bus_url = hx_url(g_dir, "bus.db");
    signal(SIGPIPE, SIG_IGN);
}

static void teardown(void)
{
    hx_rmrf(g_dir);
    free(g_dir);
    free(g_svc_url);
    free(g_bus_url);
}

TestSuite(outbox_crash, .init = setup, .fini = teardown, .timeout = 240);

static herald_store *open_svc(void)
{
    return hx_open_file(g_dir, "service.db", NULL);
}

static herald_store *open_bus(void)
{
    return hx_open_file(g_dir, "bus.db", NULL);
}

/* ---- processes and pipes --------------------------------------------------------------------- */

/* The children's exit codes, for a failed hx_assert_killed(). */
#define CHILD_CODES "0: it finished, 2x: a Herald call failed, 10: open, 9x: setup"

static int64_t pending_of(herald_store *svc)
{
    int64_t n = -1;
    int rc = herald_outbox_pending(svc, &n);
    cr_assert_eq(rc, 0, "outbox_pending: %s: %s", herald_err_name(rc), herald_last_error());
    return n;
}

/* ============================================================================================ *
 * (a) the service side: killed while committing rows and events
 * ============================================================================================ */

#define SVC_ROUNDS 3

static int svc_fn(herald_tx *tx, void *ud)
{
    int64_t i = *(const int64_t *)ud;
    herald_arg a = HERALD_ARG_I(i);
    int rc = herald_tx_exec(tx, "INSERT INTO business(n) VALUES (?)", &a, 1, NULL);
    if (rc < 0)
        return rc;
    char payload[48];
    snprintf(payload, sizeof payload, "{\"i\":%lld}", (long long)i);
    herald_event e = { .type = "order.created", .source = "order-svc", .payload_json = payload };
    return herald_outbox_add(tx, "orders", false, &e, NULL);
}

/* The child: commits counters base, base+1, ... and reports each after it is durable. */
static void service_child(int wfd, int64_t base)
{
    herald_store *s = NULL;
    if (herald_store_open(g_svc_url, NULL, &s) < 0)
        _exit(10);
    for (int64_t i = base;; i++) {
        if (herald_outbox_run(s, svc_fn, &i) < 0)
            _exit(20);
        hx_write_all(wfd, &i, sizeof i); /* 8 bytes: one atomic pipe write */
    }
}

typedef struct i64s {
    int64_t *v;
    size_t n, cap;
} i64s;

static void i64s_add(i64s *a, int64_t x)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 1024;
        a->v = realloc(a->v, a->cap * sizeof *a->v);
        cr_assert_not_null(a->v);
    }
    a->v[a->n++] = x;
}

/* Reads what is available (waits up to timeout_ms for something); false at EOF. */
static bool pump(int rfd, i64s *got, int timeout_ms)
{
    struct pollfd pf = { .fd = rfd, .events = POLLIN };
    int pr = poll(&pf, 1, timeout_ms);
    if (pr <= 0)
        return true;
    int64_t buf[512];
    ssize_t r = read(rfd, buf, sizeof buf);
    if (r < 0 && errno == EINTR)
        return true;
    cr_assert(r >= 0, "read: %s", strerror(errno));
    if (r == 0)
        return false;
    cr_assert_eq(r % (ssize_t)sizeof buf[0], 0, "torn record on the pipe (%zd bytes)", r);
    for (ssize_t k = 0; k < r / (ssize_t)sizeof buf[0]; k++)
        i64s_add(got, buf[k]);
    return true;
}

static int cb_collect(void *ud, const herald_row *r)
{
    i64s_add(ud, herald_row_get(r, 0).i);
    return 0;
}

/* After a kill: business rows == pending events, the rows are exactly 1..B (the child counts
 * up from max+1), every reported counter is there, at most one per round is unreported.
 * Returns B. */
static int64_t check_service(const i64s *reported, int rounds, const char *what)
{
    herald_store *svc = open_svc();
    int64_t b = hx_sql_int(svc, "SELECT count(*) FROM business");
    int64_t p = pending_of(svc);
    cr_assert_eq(b, p, "%s: %lld business rows but %lld pending events", what, (long long)b,
                 (long long)p);
    i64s ns = { 0 };
    int rc = herald_sql_query(svc, "SELECT n FROM business ORDER BY n", NULL, 0, cb_collect, &ns);
    cr_assert_eq(rc, 0, "%s", herald_last_error());
    cr_assert_eq((int64_t)ns.n, b);
    for (size_t k = 0; k < ns.n; k++)
        cr_assert_eq(ns.v[k], (int64_t)k + 1, "%s: business row #%zu is %lld (lost or doubled)",
                     what, k, (long long)ns.v[k]);
    for (size_t k = 0; k < reported->n; k++)
        cr_assert(reported->v[k] >= 1 && reported->v[k] <= b,
                  "%s: counter %lld was reported committed but is not stored (%lld rows)", what,
                  (long long)reported->v[k], (long long)b);
    cr_assert_leq(b - (int64_t)reported->n, rounds, "%s: %lld rows, %zu reported", what,
                  (long long)b, reported->n);
    free(ns.v);
    herald_store_close(svc);
    return b;
}

Test(outbox_crash, service_killed_mid_run_keeps_rows_and_events_together)
{
    herald_store *svc = open_svc();
    cr_assert_eq(herald_sql_exec(svc, "CREATE TABLE business(n INTEGER NOT NULL)", NULL, 0, NULL),
                 0, "%s", herald_last_error());
    herald_store_close(svc);

    srand((unsigned)getpid());
    i64s reported = { 0 };
    int64_t b = 0;
    for (int round = 1; round <= SVC_ROUNDS; round++) {
        int rfd = -1, wfd = -1;
        size_t before = reported.n;
        pid_t pid = hx_fork_child(&rfd, &wfd);
        if (pid == 0)
            service_child(wfd, b + 1);

        size_t want = 100 + (size_t)(rand() % 100);
        int64_t end = hx_mono_ms() + 60000;
        bool open = true;
        while (open && reported.n - before < want && hx_mono_ms() < end)
            open = pump(rfd, &reported, 100);
        hx_sleep_us(rand() % 3000); /* land anywhere in a commit */
        if (kill(pid, SIGKILL) != 0)
            cr_log_warn("kill: %s", strerror(errno));
        while (open)
            open = pump(rfd, &reported, 1000);
        close(rfd);
        int st = hx_reap(pid, 10000);
        char what[32];
        snprintf(what, sizeof what, "round %d", round);
        hx_assert_killed(st, what, CHILD_CODES);
        cr_assert_geq(reported.n - before, want, "%s: the child reported only %zu commits in 60 s",
                      what, reported.n - before);
        for (size_t k = before; k < reported.n; k++)
            cr_assert_eq(reported.v[k], b + 1 + (int64_t)(k - before), "%s: pipe out of order",
                         what);
        b = check_service(&reported, round, what);
    }

    /* every committed event, and nothing else, is published exactly once */
    herald_store *s = open_svc(), *bus = open_bus();
    hx_create_queue(bus, "orders", NULL);
    int64_t n = -1;
    int rc = herald_outbox_flush(s, bus, &n);
    cr_assert_eq(rc, 0, "flush: %s: %s", herald_err_name(rc), herald_last_error());
    cr_assert_eq(n, b, "flush published %lld events for %lld business rows", (long long)n,
                 (long long)b);
    cr_assert_eq(pending_of(s), 0);
    cr_assert_eq(hx_stats(bus, "orders").backlog_count, b);
    herald_batch batch = { 0 };
    int64_t next = 1;
    while (hx_pull(bus, "orders", 100, HERALD_MAX_VISIBILITY_MS, &batch) > 0) {
        for (size_t k = 0; k < batch.n; k++, next++) {
            herald_envelope en;
            cr_assert_eq(herald_envelope_parse(batch.msgs[k].body, batch.msgs[k].body_len, &en), 0,
                         "%s", herald_last_error());
            long long i = -1;
            cr_assert_eq(sscanf(en.payload_json, "{\"i\":%lld}", &i), 1, "[%s]", en.payload_json);
            herald_envelope_deinit(&en);
            cr_assert_eq(i, next, "bus message #%lld carries counter %lld", next, i);
        }
    }
    herald_batch_deinit(&batch);
    cr_assert_eq(next - 1, b);
    free(reported.v);
    herald_store_close(bus);
    herald_store_close(s);
}

/* ============================================================================================ *
 * (b) the flusher side: killed between (or while) publishing and marking
 * ============================================================================================ */

#define N_ROWS 500

static char g_ids[N_ROWS][HERALD_ID_SIZE];

typedef struct prep_ctx {
    int from, to;
    char (*ids)[HERALD_ID_SIZE];
} prep_ctx;

static int prep_fn(herald_tx *tx, void *ud)
{
    prep_ctx *c = ud;
    for (int i = c->from; i < c->to; i++) {
        char payload[48];
        snprintf(payload, sizeof payload, "{\"i\":%d}", i);
        herald_event e = { .type = "order.created", .source = "order-svc",
                           .payload_json = payload };
        /* one destination per row, alternating: every row is its own bus call and mark */
        int rc = herald_outbox_add(tx, i % 2 ? "qb" : "qa", false, &e, c->ids[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* N_ROWS pending rows in DIR/service.db; queues qa, qb and table effects in DIR/bus.db. */
static void prepare_outbox(void)
{
    herald_store *svc = open_svc();
    for (int i = 0; i < N_ROWS; i += 50) {
        prep_ctx c = { .from = i, .to = i + 50, .ids = g_ids };
        int rc = herald_outbox_run(svc, prep_fn, &c);
        cr_assert_eq(rc, 0, "prepare: %s: %s", herald_err_name(rc), herald_last_error());
    }
    cr_assert_eq(pending_of(svc), N_ROWS);
    herald_store_close(svc);
    herald_store *bus = open_bus();
    hx_create_queue(bus, "qa", NULL);
    hx_create_queue(bus, "qb", NULL);
    cr_assert_eq(herald_sql_exec(bus, "CREATE TABLE effects(event_id TEXT)", NULL, 0, NULL), 0,
                 "%s", herald_last_error());
    herald_store_close(bus);
}

/* fork+exec the worker; fault NULL: HERALD_FAULT unset. */
static pid_t spawn_worker(const char *mode, const char *fault)
{
    const char *const argv[] = { HERALD_OUTBOX_WORKER, mode, g_svc_url, g_bus_url, NULL };
    return hx_exec_worker(argv, fault);
}

static int64_t bus_sent(herald_store *bus)
{
    return hx_stats(bus, "qa").sent_total + hx_stats(bus, "qb").sent_total;
}

/* Runs the worker and kills it once the bus was sent at least `target` messages in total.
 * Returns the total seen at the kill. The bus handle is opened after the fork, closed before
 * returning. */
static int64_t flush_and_kill(const char *mode, int64_t target, const char *what)
{
    pid_t pid = spawn_worker(mode, NULL);
    herald_store *bus = open_bus();
    int64_t end = hx_mono_ms() + 60000, sent = 0;
    bool exited = false;
    int st = 0;
    while (hx_mono_ms() < end) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            exited = true;
            break;
        }
        if ((sent = bus_sent(bus)) >= target)
            break;
        hx_sleep_us(500);
    }
    if (!exited) {
        st = hx_kill_and_reap(pid, 10000);
    }
    herald_store_close(bus);
    if (exited && WIFEXITED(st))
        cr_assert_fail("%s: the worker finished (exit %d) before the bus had %lld messages (%lld)",
                       what, WEXITSTATUS(st), (long long)target, (long long)sent);
    hx_assert_killed(st, what, CHILD_CODES);
    cr_assert_geq(sent, target, "%s: the bus had only %lld messages after 60 s", what,
                  (long long)sent);
    return sent;
}

/* A crash by the library at a fault point of the worker's first commit. */
static void flush_with_fault(const char *fault)
{
    pid_t pid = spawn_worker("flush", fault);
    int st = hx_reap(pid, 60000);
    hx_assert_killed(st, fault, CHILD_CODES);
}

static atomic_int g_calls;

static int id_index(const char *id)
{
    for (int i = 0; i < N_ROWS; i++)
        if (strcmp(g_ids[i], id) == 0)
            return i;
    return -1;
}

/* Pulls every message of q (held), counts event ids into seen[], then makes them visible again.
 * Returns how many messages q held. */
static int64_t census(herald_store *bus, const char *q, int seen[N_ROWS])
{
    enum { MAX_BATCHES = 64 };
    herald_batch bs[MAX_BATCHES];
    memset(bs, 0, sizeof bs);
    int nb = 0;
    int64_t total = 0;
    for (;;) {
        cr_assert_lt(nb, MAX_BATCHES, "%s holds too many messages", q);
        if (hx_pull(bus, q, 100, HERALD_MAX_VISIBILITY_MS, &bs[nb]) == 0)
            break;
        for (size_t k = 0; k < bs[nb].n; k++) {
            const herald_message *m = &bs[nb].msgs[k];
            herald_envelope en;
            cr_assert_eq(herald_envelope_parse(m->body, m->body_len, &en), 0, "%s: %s", q,
                         herald_last_error());
            int i = id_index(en.event_id);
            cr_assert_geq(i, 0, "%s: event %s is not from the outbox", q, en.event_id);
            cr_assert_str_eq(q, i % 2 ? "qb" : "qa", "event %d reached the wrong queue", i);
            long v = -1;
            cr_assert_eq(sscanf(en.payload_json, "{\"i\":%ld}", &v), 1);
            cr_assert_eq(v, i, "event %s carries payload %s", en.event_id, en.payload_json);
            herald_envelope_deinit(&en);
            seen[i]++;
        }
        total += (int64_t)bs[nb].n;
        nb++;
    }
    for (int k = 0; k <= nb && k < MAX_BATCHES; k++) {
        if (bs[k].n > 0) {
            const char *leases[100];
            for (size_t j = 0; j < bs[k].n; j++)
                leases[j] = bs[k].msgs[j].lease_id;
            herald_settle_result r;
            int rc = herald_retry(bus, q, leases, bs[k].n, 0, NULL, &r);
            cr_assert_eq(rc, 0, "retry: %s", herald_last_error());
            cr_assert_eq(r.n_retried, (int64_t)bs[k].n);
        }
        herald_batch_deinit(&bs[k]);
    }
    return total;
}

/* The final complete flush and the checks of (b). Returns how many events were on the bus more
 * than once. */
static int final_flush_and_consume(const char *what)
{
    herald_store *svc = open_svc(), *bus = open_bus();
    int64_t n = -1;
    int rc = herald_outbox_flush(svc, bus, &n);
    cr_assert_eq(rc, 0, "%s: final flush: %s: %s", what, herald_err_name(rc), herald_last_error());
    cr_assert_eq(pending_of(svc), 0, "%s: rows still pending after a complete flush", what);

    static int seen[N_ROWS];
    memset(seen, 0, sizeof seen);
    int64_t total = census(bus, "qa", seen) + census(bus, "qb", seen);
    int dups = 0;
    for (int i = 0; i < N_ROWS; i++) {
        cr_assert_geq(seen[i], 1, "%s: event %d (%s) never reached the bus", what, i, g_ids[i]);
        if (seen[i] > 1)
            dups++;
    }
    cr_assert_eq(total, bus_sent(bus), "%s", what);
    cr_log_info("%s: %lld messages on the bus for %d events (%d events more than once)", what,
                (long long)total, N_ROWS, dups);

    atomic_store(&g_calls, 0);
    static const char *const qs[] = { "qa", "qb" };
    herald_consumer_cfg c;
    herald_consumer_cfg_init(&c);
    c.queues = qs;
    c.n_queues = 2;
    c.tx_handler = hx_effects_handler;
    c.ud = &g_calls;
    c.max_batch_size = 100;
    c.max_batch_timeout_ms = 0;
    c.retry_delay_s = 0;
    herald_consumer *cons = hx_consumer_start(bus, &c);
    HX_AWAIT(hx_stats(bus, "qa").backlog_count + hx_stats(bus, "qb").backlog_count == 0);
    herald_consumer_stop(cons);
    herald_queue_stats qa = hx_stats(bus, "qa"), qb = hx_stats(bus, "qb");
    cr_assert_eq(qa.backlog_count + qb.backlog_count, 0, "%s: %lld messages left after 30 s", what,
                 (long long)(qa.backlog_count + qb.backlog_count));
    cr_assert_eq(qa.acked_total + qb.acked_total, total, "%s", what);
    cr_assert_eq(qa.dead_lettered_total + qb.dead_lettered_total + qa.deleted_total +
                     qb.deleted_total,
                 0, "%s: messages died", what);
    cr_assert_eq(hx_sql_int(bus, "SELECT count(*) FROM effects"), N_ROWS,
                 "%s: %lld effects for %d events", what,
                 (long long)hx_sql_int(bus, "SELECT count(*) FROM effects"), N_ROWS);
    cr_assert_eq(hx_sql_int(bus, "SELECT count(DISTINCT event_id) FROM effects"), N_ROWS, "%s",
                 what);
    cr_assert_eq(atomic_load(&g_calls), N_ROWS, "%s: the handler ran %d times", what,
                 atomic_load(&g_calls));
    herald_store_close(bus);
    herald_store_close(svc);
    return dups;
}

Test(outbox_crash, flusher_killed_mid_flush_loses_nothing_and_effects_happen_once)
{
    prepare_outbox();
    static const char *const modes[] = { "flush", "flusher", "flush" };
    int64_t prev = N_ROWS;
    for (int r = 0; r < 3; r++) {
        char what[48];
        snprintf(what, sizeof what, "kill %d (%s)", r + 1, modes[r]);
        int64_t target = (int64_t)N_ROWS * (r + 1) / 4; /* 125, 250, 375 */
        int64_t sent = flush_and_kill(modes[r], target, what);
        herald_store *svc = open_svc();
        int64_t p = pending_of(svc);
        herald_store_close(svc);
        cr_log_info("%s: killed with %lld sent, %lld pending", what, (long long)sent,
                    (long long)p);
        cr_assert_gt(p, 0, "%s: nothing pending: the kill came after the flush", what);
        cr_assert_lt(p, prev, "%s: %lld pending, %lld before: no row was marked", what,
                     (long long)p, (long long)prev);
        prev = p;
    }
    final_flush_and_consume("after 3 kills");
}

Test(outbox_crash, killed_between_publish_and_mark_publishes_again_harmlessly)
{
    prepare_outbox();
    /* the worker's first commit is the bus send of row 0 (qa): killed right after it */
    flush_with_fault("store.after_commit");
    herald_store *bus = open_bus();
    cr_assert_eq(bus_sent(bus), 1, "the first bus call should have committed one message");
    herald_store_close(bus);
    herald_store *svc = open_svc();
    cr_assert_eq(pending_of(svc), N_ROWS, "a row was marked although the mark never committed");
    herald_store_close(svc);

    /* killed before its first commit: nothing more on the bus, nothing marked */
    flush_with_fault("store.before_commit");
    bus = open_bus();
    cr_assert_eq(bus_sent(bus), 1);
    herald_store_close(bus);
    svc = open_svc();
    cr_assert_eq(pending_of(svc), N_ROWS);
    herald_store_close(svc);

    int dups = final_flush_and_consume("after a kill between publish and mark");
    cr_assert_eq(dups, 1, "row 0 is republished exactly once (found %d duplicated events)", dups);
}
