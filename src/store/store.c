// SPDX-License-Identifier: MIT
/*
 * store.c - opens a backend by URL scheme, runs the group-commit writer, and wraps every backend
 * slot (only this file calls through herald_store_ops).
 *
 * The writer (one thread per open store):
 *   IDLE -> GATHER   an op arrives (herald__store_exec / _submit append to head..tail)
 *   GATHER -> RUN    the writer takes every pending op at once, begins one transaction
 *   RUN -> COMMIT    each op runs under its own savepoint; a failing op is rolled back alone
 *   COMMIT -> IDLE   one commit (one fsync in FULL mode, see "deferred sync"); then every op of
 *                    the group is released:
 *                    synchronous callers are signalled, async ops get done() called
 * Deferred sync (FULL, backends with ops->sync): the commit itself does not fsync; the writer
 *   hands the committed group to the syncer thread and goes on with the next group at once.
 *   The syncer takes every group committed so far, fsyncs once (ops->sync) and only then
 *   releases them, in commit order. The writer's next transaction overlaps the previous fsync.
 * Invariants: (1) no op is released before the commit that contains it is durable in the
 *   configured mode (the backend's commit, or commit + ops->sync); (2) a failed commit or sync
 *   fails every op not yet released and makes the store's error sticky: later writes fail with
 *   it until reopen. So do an I/O error (HERALD_EIO) in an op's own statements or in begin, and
 *   a failed checkpoint (after_commit); the failure's detail is kept (sticky_err) and repeated
 *   by every refusal, so the cause stays visible;
 *   (3) ops are run in submission order, so one thread's writes are applied in its order;
 *   (4) herald_store_close() first drains every pending op.
 * Wake-ups: commits of ops marked `wakes` bump `gen` and broadcast wake_cv; consumers wait on it.
 * Threads: herald__store_exec/_submit/read wrappers: any. Writer-side wrappers: writer only.
 */
#include "store/store_impl.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern const herald_store_ops herald__store_sqlite;

static const char *fault_point; /* env HERALD_FAULT, read once */

static void fault_init(void)
{
    fault_point = getenv("HERALD_FAULT");
}

static const herald_store_ops *const backends[] = { &herald__store_sqlite };

/* ---- callbacks that run inside the store ----
 * The writer and syncer threads run user code - tx handlers, route and outbox functions, the
 * completions of async ops (herald_send_cb) - and herald__store_user_query runs row callbacks
 * while it holds read_mu. Each marks its thread: a stack of cb_marks, kept on the thread's own
 * stack. A blocking wrapper that would wait for what a mark of its store holds refuses with
 * HERALD_EINVAL instead of hanging (herald.h, Conventions):
 *   on the writer or syncer (IN_WRITER): herald__store_exec, herald_store_close;
 *   in a row callback (IN_READER): those, and every wrapper that takes read_mu.
 * herald__store_submit never waits, so it is allowed everywhere. */
enum { IN_WRITER = 1u << 0, IN_READER = 1u << 1 };

typedef struct cb_mark {
    const herald_store *s;
    unsigned in; /* IN_* */
    const struct cb_mark *prev;
} cb_mark;

static _Thread_local const cb_mark *cb_marks; /* this thread's innermost mark */

/* Returns 0, or HERALD_EINVAL (with the reason) if this thread runs a callback of s that holds
 * one of `waits_for` (IN_*): the call would wait for itself. */
static int check_not_inside(const herald_store *s, unsigned waits_for)
{
    unsigned in = 0;
    for (const cb_mark *m = cb_marks; m; m = m->prev)
        if (m->s == s)
            in |= m->in;
    in &= waits_for;
    if (in & IN_READER)
        return herald__err(HERALD_EINVAL,
                           "called from a herald_sql_query row callback, which holds the "
                           "store's reader: this call waits for that reader, so it would wait "
                           "for itself forever (collect the rows, and call it after "
                           "herald_sql_query returns)");
    if (in & IN_WRITER)
        return herald__err(HERALD_EINVAL,
                           "called on the store's writer thread, from a callback the store "
                           "runs (a tx_handler, route function, outbox function or completion "
                           "callback): this call waits for that thread, so it would wait for "
                           "itself forever (inside a tx_handler use herald_tx_*; elsewhere "
                           "herald_send_batch_async or another thread)");
    return 0;
}

/* Takes read_mu, unless this thread already holds it in a row callback (then the refusal). */
static int read_lock(herald_store *s)
{
    int rc = check_not_inside(s, IN_READER);
    if (rc == 0)
        pthread_mutex_lock(&s->read_mu);
    return rc;
}

#define READ_LOCK_OR_RETURN(s)                                                                    \
    do {                                                                                          \
        int lrc_ = read_lock(s);                                                                  \
        if (lrc_ < 0)                                                                             \
            return lrc_;                                                                          \
    } while (0)

/* ---- lease ids ---- */

/* "hl1.<seq in hex>.<tag in 16 hex digits>", by hand: one per leased message. */
void herald__lease_format(herald__lease_ref r, char out[HERALD_LEASE_ID_SIZE])
{
    static const char hex[] = "0123456789abcdef";
    char *d = out;
    memcpy(d, "hl1.", 4);
    d += 4;
    uint64_t seq = (uint64_t)r.seq, tag = (uint64_t)r.tag;
    int n = 1;
    while (n < 16 && seq >> (4 * n))
        n++;
    for (int i = n - 1; i >= 0; i--)
        *d++ = hex[(seq >> (4 * i)) & 0xf];
    *d++ = '.';
    for (int i = 15; i >= 0; i--)
        *d++ = hex[(tag >> (4 * i)) & 0xf];
    *d = 0;
}

static bool parse_hex(const char *s, size_t n, uint64_t *out)
{
    if (n == 0 || n > 16)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int d = c >= 'A' && c <= 'F' ? -1 : herald__hexdigit(c); /* lease ids are lowercase */
        if (d < 0)
            return false;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return true;
}

bool herald__lease_parse(const char *s, herald__lease_ref *out)
{
    if (!s || strncmp(s, "hl1.", 4) != 0)
        return false;
    const char *a = s + 4, *dot = strchr(a, '.');
    if (!dot)
        return false;
    uint64_t seq, tag;
    if (!parse_hex(a, (size_t)(dot - a), &seq) || strlen(dot + 1) != 16 ||
        !parse_hex(dot + 1, 16, &tag) || seq == 0 || seq > INT64_MAX)
        return false;
    out->seq = (int64_t)seq;
    out->tag = (int64_t)tag;
    return true;
}

/* ---- open / close ---- */

static void *writer_main(void *arg);
static void *syncer_main(void *arg);

static int parse_scheme(const char *url, const herald_store_ops **ops, const char **rest)
{
    const char *colon = strchr(url, ':');
    if (!colon || colon == url)
        return herald__err(HERALD_EURL,
                           "malformed store URL '%s': expected SCHEME:LOCATION, e.g. "
                           "sqlite:herald.db",
                           url);
    size_t n = (size_t)(colon - url);
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++) {
        if (strlen(backends[i]->scheme) == n && strncmp(backends[i]->scheme, url, n) == 0) {
            *ops = backends[i];
            *rest = colon + 1;
            return 0;
        }
    }
    return herald__err(HERALD_EURL,
                       "malformed store URL '%s': unknown scheme '%.*s' (this build supports "
                       "'sqlite:')",
                       url, (int)n, url);
}

static void store_destroy(herald_store *s)
{
    pthread_cond_destroy(&s->work_cv);
    pthread_cond_destroy(&s->done_cv);
    pthread_cond_destroy(&s->wake_cv);
    pthread_cond_destroy(&s->sync_cv);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->read_mu);
    herald__store_catalog_deinit(s); /* store_catalog.c */
    s->ops->close(s);
}

int herald_store_open(const char *url, const herald_store_cfg *cfg, herald_store **out)
{
    herald__err_clear();
    if (!out)
        return herald__err(HERALD_EINVAL, "herald_store_open: out is NULL");
    if (!url)
        url = "sqlite:herald.db";
    const herald_store_ops *ops = NULL;
    const char *rest = NULL;
    int rc = parse_scheme(url, &ops, &rest);
    if (rc < 0)
        return rc;
    if (ops->abi != HERALD_STORE_ABI)
        return herald__err(HERALD_ESTORE, "backend %s has ABI %d, expected %d", ops->scheme,
                           ops->abi, HERALD_STORE_ABI);
    herald__store_opts o = { .durability = HERALD_DURABILITY_FULL, .durability_set = false };
    if (cfg && cfg->durability_set) {
        o.durability = cfg->durability;
        o.durability_set = true;
    }
    herald_store *s = NULL;
    rc = ops->open(rest, &o, &s);
    if (rc < 0)
        return rc;
    s->ops = ops;
    s->sticky_rc = 0;
    s->clock = cfg ? cfg->clock : NULL;
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->read_mu, NULL);
    pthread_rwlock_init(&s->catalog_lock, NULL);
    pthread_cond_init(&s->work_cv, NULL);
    pthread_cond_init(&s->done_cv, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->wake_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&s->sync_cv, NULL);
    s->head = s->tail = NULL;
    s->is_stopping = false;
    s->gen = 1;
    s->next_sweep_ms = 0;
    s->sync_head = s->sync_tail = NULL;
    s->sync_wakes = false;
    s->writer_done = false;
    s->has_syncer = s->has_syncer && ops->sync; /* the backend's open says */
    int prc = s->has_syncer ? pthread_create(&s->syncer, NULL, syncer_main, s) : 0;
    if (prc == 0) {
        prc = pthread_create(&s->writer, NULL, writer_main, s);
        if (prc != 0 && s->has_syncer) {
            pthread_mutex_lock(&s->mu);
            s->writer_done = true;
            pthread_cond_signal(&s->sync_cv);
            pthread_mutex_unlock(&s->mu);
            pthread_join(s->syncer, NULL);
        }
    }
    if (prc != 0) {
        store_destroy(s);
        return herald__err(-prc, "cannot start the store writer thread: %s", strerror(prc));
    }
    *out = s;
    return 0;
}

void herald_store_close(herald_store *s)
{
    if (!s)
        return;
    if (check_not_inside(s, IN_WRITER | IN_READER) < 0) { /* it would join its own thread */
        herald__log(HERALD_LOG_ERROR, "herald_store_close refused; the store stays open",
                    "detail", herald_last_error(), NULL);
        return;
    }
    pthread_mutex_lock(&s->mu);
    s->is_stopping = true;
    pthread_cond_broadcast(&s->work_cv);
    pthread_cond_broadcast(&s->wake_cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->writer, NULL);
    if (s->has_syncer)
        pthread_join(s->syncer, NULL); /* it releases the last groups first */
    store_destroy(s);
}

int herald_store_schema_version(herald_store *s)
{
    return s->ops->schema_version(s);
}

/* ---- the writer ---- */

static void release_group(herald_store *s, herald__op *list, bool wakes)
{
    pthread_mutex_lock(&s->mu);
    if (wakes) {
        s->gen++;
        pthread_cond_broadcast(&s->wake_cv);
    }
    herald__op *async_list = NULL, **async_tail = &async_list;
    for (herald__op *op = list, *next; op; op = next) {
        next = op->priv_next;
        if (op->done) {
            op->priv_next = NULL;
            *async_tail = op;
            async_tail = &op->priv_next;
        } else {
            op->priv_finished = true;
        }
    }
    pthread_cond_broadcast(&s->done_cv);
    pthread_mutex_unlock(&s->mu);
    for (herald__op *op = async_list, *next; op; op = next) {
        next = op->priv_next;
        op->done(op); /* may free op */
    }
}

static void fail_op(herald__op *op, int rc)
{
    op->rc = rc;
    herald__err_keep(rc);
    herald__err_copy(op->err, sizeof op->err);
}

/* Invariant 2. The calling thread's last error is the failure's detail ("commit: disk full
 * ..."): every later refusal repeats it, so the cause stays visible after the first caller. */
static void set_sticky(herald_store *s, int rc)
{
    pthread_mutex_lock(&s->mu);
    if (s->sticky_rc == 0) {
        s->sticky_rc = rc; /* enqueue() reads it under mu */
        snprintf(s->sticky_err, sizeof s->sticky_err, "%s", herald_last_error());
    }
    pthread_mutex_unlock(&s->mu);
}

/* A group whose commit returned: released now, or handed to the syncer (in commit order). */
static void group_committed(herald_store *s, herald__op *list, bool wakes)
{
    if (!s->has_syncer) {
        release_group(s, list, wakes);
        return;
    }
    herald__op *last = list;
    while (last->priv_next)
        last = last->priv_next;
    pthread_mutex_lock(&s->mu);
    if (s->sync_tail)
        s->sync_tail->priv_next = list;
    else
        s->sync_head = list;
    s->sync_tail = last;
    s->sync_wakes = s->sync_wakes || wakes;
    pthread_cond_signal(&s->sync_cv);
    pthread_mutex_unlock(&s->mu);
}

static void run_group(herald_store *s, herald__op *list)
{
    bool wakes = false;
    pthread_mutex_lock(&s->mu);
    int rc = s->sticky_rc;
    if (rc < 0) /* ops queued before it failed */
        herald__err(rc, "the store refuses writes until it is reopened: an earlier write "
                    "failed: %s", s->sticky_err);
    pthread_mutex_unlock(&s->mu);
    if (rc == 0) {
        rc = s->ops->begin(s);
        if (rc == HERALD_EIO) /* the disk failed before the group began (e.g. a checkpoint) */
            set_sticky(s, rc);
    }
    if (rc < 0) {
        for (herald__op *op = list; op; op = op->priv_next)
            fail_op(op, rc);
        group_committed(s, list, false);
        return;
    }
    for (herald__op *op = list; op; op = op->priv_next) {
        herald__err_clear();
        int src = s->ops->savepoint(s);
        if (src == 0) {
            op->rc = op->run(s, op);
            if (op->rc < 0) {
                fail_op(op, op->rc);
                /* An I/O error (disk full, a failed write) is the store's, not the op's: the
                 * group fails as a failed commit does, and the error is sticky. */
                src = op->rc == HERALD_EIO ? op->rc : s->ops->rollback_to(s);
            }
            if (src == 0)
                src = s->ops->release(s);
        }
        if (src < 0) { /* the transaction itself is broken: fail the group */
            rc = src;
            break;
        }
        if (op->rc == 0 && op->wakes)
            wakes = true;
    }
    if (rc < 0 && rc != HERALD_EIO && !s->ops->in_transaction(s)) {
        /* A statement of an op ended the transaction (user SQL with ON CONFLICT ROLLBACK or
         * RAISE(ROLLBACK)): nothing of the group is kept, and nothing is wrong with the store.
         * The group's ops fail - the culprit with its own error - and writing goes on. */
        herald__log(HERALD_LOG_WARN, "an operation rolled back its commit group; the group "
                    "fails", "detail", herald_last_error(), NULL);
        herald__err(HERALD_ESTORE, "another operation of this commit group rolled the "
                    "transaction back; nothing of this one was kept (it may be retried)");
        for (herald__op *op = list; op; op = op->priv_next)
            if (op->rc == 0)
                fail_op(op, HERALD_ESTORE);
        group_committed(s, list, false);
        return;
    }
    if (rc == 0) {
        herald__fault("store.before_commit");
        rc = s->ops->commit(s);
    }
    if (rc == 0)
        herald__fault("store.after_commit");
    if (rc < 0) {
        set_sticky(s, rc); /* first: it keeps this thread's detail, which rollback may replace */
        herald__log(HERALD_LOG_ERROR, "store commit failed; store refuses writes until reopened",
                    "error", herald_strerror(rc), "detail", herald_last_error(), NULL);
        char cause[256];
        snprintf(cause, sizeof cause, "%s", herald_last_error());
        (void)s->ops->rollback(s);
        herald__err(rc, "%s", cause);
        for (herald__op *op = list; op; op = op->priv_next)
            fail_op(op, rc);
        wakes = false;
    }
    group_committed(s, list, wakes);
}

static void *writer_main(void *arg)
{
    herald_store *s = arg;
    const cb_mark mark = { .s = s, .in = IN_WRITER, .prev = NULL };
    cb_marks = &mark; /* every callback it runs */
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->head && !s->is_stopping)
            pthread_cond_wait(&s->work_cv, &s->mu);
        if (!s->head && s->is_stopping)
            break;
        herald__op *list = s->head;
        s->head = s->tail = NULL;
        pthread_mutex_unlock(&s->mu);
        run_group(s, list);
        int crc = s->ops->after_commit(s);
        if (crc < 0) {
            herald__log(HERALD_LOG_ERROR, "checkpoint failed; store refuses writes until reopened",
                        "detail", herald_last_error(), NULL);
            set_sticky(s, crc);
        }
        pthread_mutex_lock(&s->mu);
    }
    s->writer_done = true;
    pthread_cond_signal(&s->sync_cv);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* The syncer: one fsync for every group committed since the last one, then their release.
 * After a failed fsync nothing committed later is trusted either (the kernel may have dropped
 * the dirty pages and reported it once): those groups fail too. */
static void *syncer_main(void *arg)
{
    herald_store *s = arg;
    const cb_mark mark = { .s = s, .in = IN_WRITER, .prev = NULL };
    cb_marks = &mark; /* every callback it runs */
    int failed_rc = 0;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->sync_head && !s->writer_done)
            pthread_cond_wait(&s->sync_cv, &s->mu);
        if (!s->sync_head)
            break;
        herald__op *list = s->sync_head;
        bool wakes = s->sync_wakes;
        s->sync_head = s->sync_tail = NULL;
        s->sync_wakes = false;
        pthread_mutex_unlock(&s->mu);
        herald__err_clear();
        int rc = failed_rc ? failed_rc : s->ops->sync(s);
        if (rc < 0) {
            if (!failed_rc)
                herald__log(HERALD_LOG_ERROR, "store sync failed; store refuses writes until "
                            "reopened", "error", herald_strerror(rc), "detail",
                            herald_last_error(), NULL);
            failed_rc = rc;
            char cause[256];
            snprintf(cause, sizeof cause, "%s", herald_last_error());
            herald__err(rc, "the store could not make the commit durable: %s", cause);
            set_sticky(s, rc);
            for (herald__op *op = list; op; op = op->priv_next)
                if (op->rc == 0)
                    fail_op(op, rc);
            wakes = false;
        }
        release_group(s, list, wakes);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static int enqueue(herald_store *s, herald__op *op)
{
    op->rc = 0;
    op->err[0] = 0;
    op->priv_finished = false;
    op->priv_next = NULL;
    if (s->is_stopping)
        return herald__err(HERALD_ECLOSED, "the store is closing");
    if (s->sticky_rc < 0)
        return herald__err(s->sticky_rc,
                           "the store refuses writes until it is reopened: an earlier write "
                           "failed: %s",
                           s->sticky_err);
    if (s->tail)
        s->tail->priv_next = op;
    else
        s->head = op;
    s->tail = op;
    pthread_cond_signal(&s->work_cv);
    return 0;
}

int herald__store_exec(herald_store *s, herald__op *op)
{
    int crc = check_not_inside(s, IN_WRITER | IN_READER);
    if (crc < 0)
        return crc;
    op->done = NULL;
    pthread_mutex_lock(&s->mu);
    int rc = enqueue(s, op);
    if (rc == 0) {
        while (!op->priv_finished)
            pthread_cond_wait(&s->done_cv, &s->mu);
        rc = op->rc;
    }
    pthread_mutex_unlock(&s->mu);
    if (rc < 0 && op->err[0])
        herald__err(rc, "%s", op->err);
    return rc;
}

int herald__store_submit(herald_store *s, herald__op *op)
{
    pthread_mutex_lock(&s->mu);
    int rc = enqueue(s, op);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* ---- the event catalog: store_catalog.c; its backend calls are here ---- */

static bool on_writer(herald_store *s)
{
    return pthread_equal(pthread_self(), s->writer) != 0;
}

int herald__store_catalog_version_now(herald_store *s, int64_t *version)
{
    if (on_writer(s)) /* inside an op: its transaction sees every commit before it */
        return s->ops->catalog_version(s, true, version);
    READ_LOCK_OR_RETURN(s);
    int rc = s->ops->catalog_version(s, false, version);
    pthread_mutex_unlock(&s->read_mu);
    return rc;
}

int herald__store_catalog_get_now(herald_store *s, herald__catalog_row *out)
{
    if (on_writer(s))
        return s->ops->catalog_get(s, true, out);
    READ_LOCK_OR_RETURN(s);
    int rc = s->ops->catalog_get(s, false, out);
    pthread_mutex_unlock(&s->read_mu);
    return rc;
}

int herald__store_catalog_get(herald_store *s, herald__catalog_row *out)
{
    return s->ops->catalog_get(s, true, out);
}

int herald__store_catalog_put(herald_store *s, const herald__catalog_row *row,
                              int64_t *version_out)
{
    return s->ops->catalog_put(s, row, herald__store_now(s), version_out);
}

int herald__store_catalog_in_use(herald_store *s, const char *type, int64_t *n_messages,
                                 int64_t *n_outbox)
{
    return s->ops->catalog_in_use(s, type, n_messages, n_outbox);
}

int herald__store_catalog_history(herald_store *s, herald__catalog_row **out, size_t *n)
{
    READ_LOCK_OR_RETURN(s);
    int rc = s->ops->catalog_history(s, out, n);
    pthread_mutex_unlock(&s->read_mu);
    return rc;
}

/* ---- writer-side wrappers ---- */

int64_t herald__store_now(herald_store *s)
{
    return herald__clock_now(s->clock);
}

int herald__store_queue_create(herald_store *s, const char *name, const herald_queue_settings *st,
                               const char *uuid)
{
    return s->ops->queue_create(s, name, st, uuid, herald__store_now(s));
}

int herald__store_queue_update(herald_store *s, const char *name, const herald_queue_settings *st)
{
    return s->ops->queue_update(s, name, st, herald__store_now(s));
}

int herald__store_queue_delete(herald_store *s, const char *name)
{
    return s->ops->queue_delete(s, name);
}

int herald__store_queue_purge(herald_store *s, const char *name, int64_t *n_deleted)
{
    return s->ops->queue_purge(s, name, n_deleted);
}

int herald__store_queue_set_paused(herald_store *s, const char *name, bool paused)
{
    return s->ops->queue_set_paused(s, name, paused, herald__store_now(s));
}

int herald__store_msg_put(herald_store *s, const char *queue, const herald__msg_in *m, size_t n,
                          int64_t batch_delay_s)
{
    return s->ops->msg_put(s, queue, m, n, batch_delay_s, herald__store_now(s));
}

int herald__store_lease(herald_store *s, const char *queue, int max_n, int64_t visibility_ms,
                        const herald__policy *p, herald_batch *out)
{
    return s->ops->lease(s, queue, max_n, visibility_ms, p, herald__store_now(s), out);
}

int herald__store_take(herald_store *s, const char *queue, int max_n, const herald__policy *p,
                       herald_batch *out)
{
    return s->ops->take(s, queue, max_n, p, herald__store_now(s), out);
}

void herald__store_inflight_running(herald_store *s, int64_t i)
{
    s->ops->inflight_running(s, i);
}

int herald__store_settle(herald_store *s, const char *queue, const herald__settle_item *items,
                         size_t n, const herald__policy *p, herald_settle_result *res)
{
    return s->ops->settle(s, queue, items, n, p, herald__store_now(s), res);
}

int herald__store_extend(herald_store *s, const char *queue, const herald__lease_ref *refs,
                         size_t n, int64_t until_ms)
{
    return s->ops->extend(s, queue, refs, n, until_ms);
}

int herald__store_sweep(herald_store *s, int64_t *n_pruned)
{
    return s->ops->sweep(s, herald__store_now(s), n_pruned);
}

int herald__store_expire(herald_store *s, const int64_t *seqs, size_t n, int64_t *n_deleted)
{
    return s->ops->expire(s, seqs, n, herald__store_now(s), n_deleted);
}

int herald__store_expired_scan(herald_store *s, int64_t after_seq, int64_t *seqs, size_t max,
                               size_t *n)
{
    READ_LOCK_OR_RETURN(s);
    int rc = s->ops->expired_scan(s, herald__store_now(s), after_seq, seqs, max, n);
    pthread_mutex_unlock(&s->read_mu);
    return rc;
}

int herald__store_topic_subscribe(herald_store *s, const char *topic, const char *queue)
{
    return s->ops->topic_subscribe(s, topic, queue, herald__store_now(s));
}

int herald__store_topic_unsubscribe(herald_store *s, const char *topic, const char *queue)
{
    return s->ops->topic_unsubscribe(s, topic, queue);
}

int herald__store_topic_publish(herald_store *s, const char *topic, const herald__msg_in *m,
                                size_t n, int64_t batch_delay_s, size_t *n_queues)
{
    return s->ops->topic_publish(s, topic, m, n, batch_delay_s, herald__store_now(s), n_queues);
}

int herald__store_topic_list(herald_store *s, herald_topic_info **out, size_t *n)
{
    READ_LOCK_OR_RETURN(s);
    int rc = s->ops->topic_list(s, out, n);
    pthread_mutex_unlock(&s->read_mu);
    return rc;
}

int herald__store_outbox_put(herald_store *s, const char *dest, bool is_topic,
                             const char *event_id, const void *body, size_t len)
{
    return s->ops->outbox_put(s, dest, is_topic, event_id, body, len, herald__store_now(s));
}

int herald__store_outbox_mark(herald_store *s, const int64_t *seqs, size_t n)
{
    return s->ops->outbox_mark(s, seqs, n, herald__store_now(s));
}

int herald__store_outbox_prune(herald_store *s, int64_t before_ms, int64_t *n_pruned)
{
    return s->ops->outbox_prune(s, before_ms, n_pruned);
}

int herald__store_outbox_pending(herald_store *s, herald__outbox_row *rows, size_t max,
                                 size_t *n)
{
    READ_LOCK_OR_RETURN(s);
    int rc = s->ops->outbox_pending(s, rows, max, n);
    pthread_mutex_unlock(&s->read_mu);
    return rc;
}

int herald__store_outbox_count(herald_store *s, int64_t *n_pending)
{
    READ_LOCK_OR_RETURN(s);
    int rc = s->ops->outbox_count(s, n_pending);
    pthread_mutex_unlock(&s->read_mu);
    return rc;
}

int herald__store_redrive_one(herald_store *s, const char *dlq, int64_t seq, const char *to_queue,
                              const void *body, size_t len, const char *actor, const char *edit,
                              bool *moved)
{
    return s->ops->redrive_one(s, dlq, seq, to_queue, body, len, actor, edit,
                               herald__store_now(s), moved);
}

int herald__store_dead_page(herald_store *s, const char *dlq, int64_t after_visible_ms,
                            int64_t after_seq, herald__dead_row *rows, size_t max, size_t *n)
{
    READ_LOCK_OR_RETURN(s);
    int rc = s->ops->dead_page(s, dlq, after_visible_ms, after_seq, herald__store_now(s), rows,
                               max, n);
    pthread_mutex_unlock(&s->read_mu);
    return rc;
}

int herald__store_msg_get(herald_store *s, const char *queue, const char *id, herald_batch *out)
{
    READ_LOCK_OR_RETURN(s);
    int rc = s->ops->msg_get(s, queue, id, herald__store_now(s), out);
    pthread_mutex_unlock(&s->read_mu);
    return rc;
}

int herald__store_attempts(herald_store *s, const char *message_id, herald_attempt **out,
                           size_t *n)
{
    READ_LOCK_OR_RETURN(s);
    int rc = s->ops->attempts(s, message_id, out, n);
    pthread_mutex_unlock(&s->read_mu);
    return rc;
}

int herald__store_audit(herald_store *s, const char *dlq, herald_audit_entry **out, size_t *n)
{
    READ_LOCK_OR_RETURN(s);
    int rc = s->ops->audit(s, dlq, out, n);
    pthread_mutex_unlock(&s->read_mu);
    return rc;
}

int herald__store_metrics_add(herald_store *s, const herald_metric *m, size_t n)
{
    return s->ops->metrics_add(s, m, n);
}

int herald__store_processed_check(herald_store *s, const char *queue, const char *event_id,
                                  bool *seen)
{
    READ_LOCK_OR_RETURN(s);
    int rc = s->ops->processed_check(s, queue, event_id, seen);
    pthread_mutex_unlock(&s->read_mu);
    return rc;
}

int herald__store_trace(herald_store *s, const char *corr, herald_trace_entry **out, size_t *n)
{
    READ_LOCK_OR_RETURN(s);
    int rc = s->ops->trace(s, corr, out, n);
    pthread_mutex_unlock(&s->read_mu);
    return rc;
}

int herald__store_metrics_list(herald_store *s, herald_metric **out, size_t *n)
{
    READ_LOCK_OR_RETURN(s);
    int rc = s->ops->metrics_list(s, out, n);
    pthread_mutex_unlock(&s->read_mu);
    return rc;
}

int herald__store_sp_begin(herald_store *s)
{
    return s->ops->sp_begin(s);
}

int herald__store_sp_release(herald_store *s)
{
    return s->ops->sp_release(s);
}

int herald__store_sp_rollback(herald_store *s)
{
    return s->ops->sp_rollback(s);
}

int herald__store_user_sql(herald_store *s, const char *sql, const herald_arg *args, size_t n,
                           bool is_multi, int64_t *changes, herald_row_cb cb, void *ud)
{
    return s->ops->user_sql(s, true, sql, args, n, is_multi, changes, cb, ud);
}

int herald__store_processed_claim(herald_store *s, const char *queue, const char *event_id,
                                  const char *type, bool *is_new)
{
    return s->ops->processed_claim(s, queue, event_id, type, herald__store_now(s), is_new);
}

int herald__store_processed_prune(herald_store *s, const char *queue, int64_t retention_s,
                                  int64_t *n_pruned)
{
    return s->ops->processed_prune(s, queue, herald__store_now(s) - retention_s * 1000,
                                   n_pruned);
}

/* ---- read side ---- */

int herald__store_user_query(herald_store *s, const char *sql, const herald_arg *args, size_t n,
                             herald_row_cb cb, void *ud)
{
    READ_LOCK_OR_RETURN(s);
    const cb_mark mark = { .s = s, .in = IN_READER, .prev = cb_marks };
    cb_marks = &mark; /* cb runs while this thread holds read_mu */
    int rc = s->ops->user_sql(s, false, sql, args, n, false, NULL, cb, ud);
    cb_marks = mark.prev;
    pthread_mutex_unlock(&s->read_mu);
    return rc;
}

int herald_row_columns(const herald_row *r)
{
    return r->columns(r);
}

herald_arg herald_row_get(const herald_row *r, int i)
{
    return r->get(r, i);
}

static pthread_once_t fault_once = PTHREAD_ONCE_INIT;

void herald__fault(const char *point)
{
    pthread_once(&fault_once, fault_init);
    if (fault_point && strcmp(fault_point, point) == 0)
        kill(getpid(), SIGKILL);
}

static pthread_mutex_t fault_io_mu = PTHREAD_MUTEX_INITIALIZER;
static char fault_io_point[64]; /* fault_io_mu: the armed point, "" if none */
static int fault_io_err, fault_io_after;

void herald__fault_io_arm(const char *point, int err, int after)
{
    pthread_mutex_lock(&fault_io_mu);
    snprintf(fault_io_point, sizeof fault_io_point, "%s", err ? point : "");
    fault_io_err = err;
    fault_io_after = after;
    pthread_mutex_unlock(&fault_io_mu);
}

/* Armed by herald__fault_io_arm, or by env HERALD_FAULT=<point>=EIO|ENOSPC (for processes a
 * test runs, such as the CLI). */
int herald__fault_io(const char *point)
{
    pthread_mutex_lock(&fault_io_mu);
    int rc = 0;
    if (fault_io_point[0] && strcmp(fault_io_point, point) == 0) {
        if (fault_io_after > 0)
            fault_io_after--;
        else
            rc = -fault_io_err;
    }
    pthread_mutex_unlock(&fault_io_mu);
    pthread_once(&fault_once, fault_init);
    size_t n = strlen(point);
    if (rc == 0 && fault_point && strncmp(fault_point, point, n) == 0 && fault_point[n] == '=')
        rc = strcmp(fault_point + n + 1, "ENOSPC") == 0 ? -ENOSPC : -EIO;
    return rc;
}

int herald__store_queue_get(herald_store *s, const char *name, herald_queue_info *out)
{
    READ_LOCK_OR_RETURN(s);
    int rc = s->ops->queue_get(s, name, out);
    pthread_mutex_unlock(&s->read_mu);
    return rc;
}

int herald__store_queue_list(herald_store *s, herald_queue_info **out, size_t *n)
{
    READ_LOCK_OR_RETURN(s);
    int rc = s->ops->queue_list(s, out, n);
    pthread_mutex_unlock(&s->read_mu);
    return rc;
}

int herald__store_queue_stats(herald_store *s, const char *name, herald_queue_stats *out)
{
    READ_LOCK_OR_RETURN(s);
    int rc = s->ops->queue_stats(s, name, herald__store_now(s), out);
    pthread_mutex_unlock(&s->read_mu);
    return rc;
}

int herald__store_peek(herald_store *s, const char *name, int max_n, herald_batch *out)
{
    READ_LOCK_OR_RETURN(s);
    int rc = s->ops->peek(s, name, max_n, herald__store_now(s), out);
    pthread_mutex_unlock(&s->read_mu);
    return rc;
}

int herald__store_ready(herald_store *s, const char *name, int limit, int *n_ready,
                        int64_t *next_due_ms, bool *is_paused)
{
    READ_LOCK_OR_RETURN(s);
    int rc = s->ops->ready(s, name, herald__store_now(s), limit, n_ready, next_due_ms, is_paused);
    pthread_mutex_unlock(&s->read_mu);
    return rc;
}

int herald__store_data_version(herald_store *s, int64_t *out)
{
    READ_LOCK_OR_RETURN(s);
    int rc = s->ops->data_version(s, out);
    pthread_mutex_unlock(&s->read_mu);
    return rc;
}

/* ---- wake-ups ---- */

int herald__store_check_may_wait(const herald_store *s)
{
    return check_not_inside(s, IN_WRITER | IN_READER);
}

uint64_t herald__store_gen(herald_store *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t g = s->gen;
    pthread_mutex_unlock(&s->mu);
    return g;
}

uint64_t herald__store_wait(herald_store *s, uint64_t seen, int64_t deadline_ns)
{
    pthread_mutex_lock(&s->mu);
    while (s->gen == seen && !s->is_stopping) {
        if (deadline_ns == INT64_MAX) {
            pthread_cond_wait(&s->wake_cv, &s->mu);
        } else {
            if (herald__mono_ns() >= deadline_ns)
                break;
            struct timespec ts = { .tv_sec = deadline_ns / 1000000000LL,
                                   .tv_nsec = deadline_ns % 1000000000LL };
            if (pthread_cond_timedwait(&s->wake_cv, &s->mu, &ts) == ETIMEDOUT)
                break;
        }
    }
    uint64_t g = s->gen;
    pthread_mutex_unlock(&s->mu);
    return g;
}

bool herald__store_sweep_turn(herald_store *s, int64_t now_ms, int64_t every_ms)
{
    pthread_mutex_lock(&s->mu);
    bool mine = now_ms >= s->next_sweep_ms;
    if (mine)
        s->next_sweep_ms = now_ms + every_ms;
    pthread_mutex_unlock(&s->mu);
    return mine;
}

void herald_store_wake(herald_store *s)
{
    pthread_mutex_lock(&s->mu);
    s->gen++;
    pthread_cond_broadcast(&s->wake_cv);
    pthread_mutex_unlock(&s->mu);
}

/* ---- batches ---- */

typedef struct batch_mem {
    void **ptrs;
    size_t n, cap;
    size_t msgs_cap;
} batch_mem;

void herald__batch_init(herald_batch *b, const char *queue, size_t cap)
{
    memset(b, 0, sizeof *b);
    snprintf(b->queue, sizeof b->queue, "%s", queue);
    batch_mem *m = herald__xcalloc(1, sizeof *m);
    m->msgs_cap = cap ? cap : 1;
    b->msgs = herald__xcalloc(m->msgs_cap, sizeof *b->msgs);
    b->priv_mem = m;
}

herald_message *herald__batch_push(herald_batch *b)
{
    batch_mem *m = b->priv_mem;
    if (b->n == m->msgs_cap) {
        m->msgs_cap *= 2;
        b->msgs = herald__xrealloc(b->msgs, m->msgs_cap * sizeof *b->msgs);
    }
    herald_message *msg = &b->msgs[b->n++];
    memset(msg, 0, sizeof *msg);
    msg->last_error = "";
    return msg;
}

void *herald__batch_keep(herald_batch *b, const void *p, size_t n)
{
    batch_mem *m = b->priv_mem;
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 16;
        m->ptrs = herald__xrealloc(m->ptrs, m->cap * sizeof *m->ptrs);
    }
    char *c = herald__xmalloc(n + 1);
    if (n)
        memcpy(c, p, n);
    c[n] = 0;
    m->ptrs[m->n++] = c;
    return c;
}

void herald_batch_deinit(herald_batch *b)
{
    if (!b)
        return;
    batch_mem *m = b->priv_mem;
    if (m) {
        for (size_t i = 0; i < m->n; i++)
            herald__free(m->ptrs[i]);
        herald__free(m->ptrs);
        herald__free(m);
    }
    herald__free(b->msgs);
    memset(b, 0, sizeof *b);
}
