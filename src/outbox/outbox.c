// SPDX-License-Identifier: MIT
/*
 * outbox.c - the transactional outbox and its flusher.
 *   write:  herald_outbox_run -> one op on the service database: the service's SQL and every
 *           herald_outbox_add row commit together (or neither).
 *   flush:  read pending rows in order (reader), send them to the bus in batches of consecutive
 *           rows with the same destination (<= 100 messages, <= 256,000 bytes), then mark the
 *           page's published rows in one op on the service database. Publish-then-mark: a crash in
 *           between publishes the rows again on the next pass; their envelopes carry the same
 *           event_id, so effectively-once consumers skip the duplicates. Nothing is lost.
 *   flusher thread: flushes when the service database commits (its wake generation) or, for
 *           other processes, on the adaptive data_version poll; failures back off 100 ms..30 s
 *           on the service store's clock (herald__store_now: a test's fake clock; service
 *           commits do not cut a backoff short, stopping does);
 *           published rows are pruned after PRUNE_AFTER_MS.
 * Invariant: a row is marked only after the bus confirmed it durable.
 */
#include "outbox/outbox.h"

#include <pthread.h>
#include <string.h>

#define PAGE 100
#define PRUNE_AFTER_MS (7LL * 86400 * 1000)

typedef struct add_ctx {
    herald_outbox_fn fn;
    void *ud;
} add_ctx;

static int run_user_fn(herald_tx *tx, void *ud)
{
    add_ctx *a = ud;
    return a->fn(tx, a->ud);
}

int herald_outbox_run(herald_store *service_db, herald_outbox_fn fn, void *ud)
{
    herald__err_clear();
    if (!service_db || !fn)
        return herald__err(HERALD_EINVAL, "herald_outbox_run: NULL argument");
    add_ctx a = { .fn = fn, .ud = ud };
    return herald__tx_in_op(service_db, run_user_fn, &a);
}

int herald_outbox_add(herald_tx *tx, const char *dest, bool is_topic, const herald_event *e,
                      char event_id_out[HERALD_ID_SIZE])
{
    herald__err_clear();
    if (!tx || !e)
        return herald__err(HERALD_EINVAL, "herald_outbox_add: NULL argument");
    if (!dest || !herald__name_valid(dest))
        return herald__err(HERALD_EINVAL, "outbox destination '%.80s' is not a valid %s name",
                           dest ? dest : "(null)", is_topic ? "topic" : "queue");
    herald_store *s = herald__tx_store(tx);
    char *body = NULL;
    size_t len = 0;
    char id[HERALD_ID_SIZE];
    int rc = herald__queue_encode_event(s, e, id, &body, &len);
    if (rc < 0)
        return rc;
    if (len > HERALD_MAX_MESSAGE_BYTES) {
        herald__free(body);
        return herald__err(HERALD_ETOOBIG, "outbox event of %zu bytes exceeds %d bytes", len,
                           HERALD_MAX_MESSAGE_BYTES);
    }
    rc = herald__store_outbox_put(s, dest, is_topic, id, body, len);
    herald__free(body);
    if (rc == 0 && event_id_out)
        memcpy(event_id_out, id, HERALD_ID_SIZE);
    return rc;
}

typedef struct mark_op {
    herald__op base;
    const int64_t *seqs;
    size_t n;
} mark_op;

static int mark_run(herald_store *s, herald__op *op)
{
    mark_op *m = (mark_op *)op;
    return herald__store_outbox_mark(s, m->seqs, m->n);
}

/* Publishes rows[from..to) (same destination) in one bus call. */
static int publish_group(herald_store *bus, const herald__outbox_row *rows, size_t from,
                         size_t to)
{
    for (size_t i = from; i < to; i++) { /* the bus's catalog binds the flusher too */
        int rc = herald__store_check_envelope(bus, rows[i].body, rows[i].len);
        if (rc < 0)
            return rc;
    }
    herald_msg msgs[PAGE];
    size_t n = 0;
    for (size_t i = from; i < to; i++, n++)
        msgs[n] = (herald_msg){ .body = rows[i].body, .body_len = rows[i].len,
                                .content_type = HERALD_CONTENT_JSON, .delay_s = HERALD_UNSET };
    return rows[from].is_topic
               ? herald_publish(bus, rows[from].dest, msgs, n, HERALD_UNSET, NULL)
               : herald_send_batch(bus, rows[from].dest, msgs, n, HERALD_UNSET, NULL);
}

int herald_outbox_flush(herald_store *service_db, herald_store *bus, int64_t *n_published)
{
    herald__err_clear();
    if (!service_db || !bus)
        return herald__err(HERALD_EINVAL, "herald_outbox_flush: NULL store");
    int64_t total = 0;
    int rc = 0;
    herald__outbox_row rows[PAGE];
    for (;;) {
        size_t n = 0;
        if ((rc = herald__store_outbox_pending(service_db, rows, PAGE, &n)) < 0 || n == 0)
            break;
        /* Publish group by group, then mark what was published in one service commit (a
         * crash in between publishes those rows again: consumers dedup by event_id). */
        size_t from = 0, published = 0;
        while (rc == 0 && from < n) {
            size_t to = from + 1, bytes = rows[from].len;
            while (to < n && rows[to].is_topic == rows[from].is_topic &&
                   strcmp(rows[to].dest, rows[from].dest) == 0 &&
                   bytes + rows[to].len <= HERALD_MAX_BATCH_BYTES) {
                bytes += rows[to].len;
                to++;
            }
            rc = publish_group(bus, rows, from, to);
            if (rc == 0)
                published = to;
            from = to;
        }
        if (published > 0) {
            int64_t seqs[PAGE];
            for (size_t i = 0; i < published; i++)
                seqs[i] = rows[i].seq;
            mark_op m = { .base = { .run = mark_run }, .seqs = seqs, .n = published };
            int mrc = herald__store_exec(service_db, &m.base);
            if (mrc == 0)
                total += (int64_t)published;
            else if (rc == 0)
                rc = mrc;
        }
        for (size_t i = 0; i < n; i++)
            herald__free(rows[i].body);
        if (rc < 0 || n < PAGE)
            break;
    }
    if (n_published)
        *n_published = total;
    return rc;
}

int herald_outbox_pending(herald_store *service_db, int64_t *n_pending)
{
    herald__err_clear();
    if (!service_db || !n_pending)
        return herald__err(HERALD_EINVAL, "herald_outbox_pending: NULL argument");
    return herald__store_outbox_count(service_db, n_pending);
}

/* ---- the flusher thread ---- */

struct herald_outbox_flusher {
    herald_store *svc, *bus;
    pthread_t thread;
    pthread_mutex_t mu;
    bool is_stopping; /* guarded by mu */
};

static bool flusher_stopping(herald_outbox_flusher *f)
{
    pthread_mutex_lock(&f->mu);
    bool s = f->is_stopping;
    pthread_mutex_unlock(&f->mu);
    return s;
}

typedef struct prune_op {
    herald__op base;
    int64_t before_ms;
} prune_op;

static int prune_run(herald_store *s, herald__op *op)
{
    int64_t n = 0;
    return herald__store_outbox_prune(s, ((prune_op *)op)->before_ms, &n);
}

static void *flusher_main(void *arg)
{
    herald_outbox_flusher *f = arg;
    uint64_t seen = herald__store_gen(f->svc);
    int64_t dv = 0, poll_ms = 1, backoff_ms = 0, next_prune_ms = 0;
    (void)herald__store_data_version(f->svc, &dv);
    while (!flusher_stopping(f)) {
        int64_t now_ms = herald__store_now(f->svc);
        if (now_ms >= next_prune_ms) {
            prune_op p = { .base = { .run = prune_run }, .before_ms = now_ms - PRUNE_AFTER_MS };
            (void)herald__store_exec(f->svc, &p.base);
            next_prune_ms = now_ms + 3600 * 1000;
        }
        int64_t n = 0;
        int rc = herald_outbox_flush(f->svc, f->bus, &n);
        if (rc < 0) {
            herald__log(HERALD_LOG_WARN, "outbox flush failed; will retry", "error",
                        herald_last_error(), NULL);
            backoff_ms = backoff_ms ? (backoff_ms * 2 > 30000 ? 30000 : backoff_ms * 2) : 100;
            /* The whole backoff is waited, on the store's clock: service commits do not cut
             * it short (the bus is what failed), only stopping does. Each wake re-reads the
             * clock (a test moves its fake clock, then calls herald_store_wake). */
            int64_t retry_at_ms = now_ms + backoff_ms; /* from the start of the failed pass */
            for (;;) {
                int64_t left_ms = retry_at_ms - herald__store_now(f->svc);
                if (left_ms <= 0 || flusher_stopping(f))
                    break;
                seen = herald__store_wait(f->svc, seen, herald__mono_ns() + left_ms * 1000000);
            }
            continue;
        }
        backoff_ms = 0;
        if (n > 0)
            poll_ms = 1;
        uint64_t g = herald__store_wait(f->svc, seen, herald__mono_ns() + poll_ms * 1000000);
        if (g != seen) {
            seen = g;
            poll_ms = 1;
            continue;
        }
        int64_t v = dv;
        if (herald__store_data_version(f->svc, &v) == 0 && v != dv) {
            dv = v;
            poll_ms = 1;
        } else {
            poll_ms = poll_ms * 2 > 250 ? 250 : poll_ms * 2;
        }
    }
    return NULL;
}

int herald_outbox_flusher_start(herald_store *service_db, herald_store *bus,
                                herald_outbox_flusher **out)
{
    herald__err_clear();
    if (!service_db || !bus || !out)
        return herald__err(HERALD_EINVAL, "herald_outbox_flusher_start: NULL argument");
    herald_outbox_flusher *f = herald__xcalloc(1, sizeof *f);
    f->svc = service_db;
    f->bus = bus;
    pthread_mutex_init(&f->mu, NULL);
    int prc = pthread_create(&f->thread, NULL, flusher_main, f);
    if (prc != 0) {
        pthread_mutex_destroy(&f->mu);
        herald__free(f);
        return herald__err(-prc, "cannot start the outbox flusher thread");
    }
    *out = f;
    return 0;
}

void herald_outbox_flusher_stop(herald_outbox_flusher *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->mu);
    f->is_stopping = true;
    pthread_mutex_unlock(&f->mu);
    herald_store_wake(f->svc);
    pthread_join(f->thread, NULL);
    pthread_mutex_destroy(&f->mu);
    herald__free(f);
}
