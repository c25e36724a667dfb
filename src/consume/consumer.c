// SPDX-License-Identifier: MIT
/*
 * consumer.c - the push-consumer runtime: batches messages from one or more queues and runs a C
 * handler on them, then settles every message by Cloudflare's rules.
 *
 * Threads of one consumer:
 *   dispatcher  decides when batches are due and submits their leases asynchronously (several
 *               leases share one group commit), renews the leases of held batches, sweeps
 *               expired messages once a minute. It keeps up to 2 x max_concurrency batches in
 *               hand (leasing, queued, running): while handlers run, the next batches are
 *               already leased, so a handler never waits for a lease round trip.
 *   workers     max_concurrency threads; each runs the handler on one delivery at a time, then
 *               submits the settlement asynchronously (the worker is free at once; the delivery
 *               is freed when the settlement's group commit is durable, on the writer or
 *               syncer thread).
 * A tx_handler consumer has no workers and takes no leases: the dispatcher submits
 * effectively-once ops (dispatch_eo), each of which takes, handles and settles a batch on the
 * writer thread in one transaction (tx.c); up to max_eo ops are outstanding (n_eo, counted in
 * pending[] too); visibility_timeout does not apply to it. An op the store failed holds its
 * queue back for EO_BACKOFF_MS (retry_at_ms).
 * A batch is due when max_batch_size messages are visible, or max_batch_timeout after the
 * dispatcher first saw a visible message of that queue, whichever comes first (checklist 9).
 * Every timer (batch timeout, delayed messages, lease renewal, EO_BACKOFF_MS, the sweep) runs
 * on the store's clock (herald__store_now: an injected herald_clock in tests), never on the
 * monotonic clock: a test moves time with its fake clock, then herald_store_wake().
 *
 * States of a delivery and who moves it:
 *   LEASING -> QUEUED    leased() (writer or syncer thread): the lease committed, on the job list
 *   QUEUED  -> RUNNING   worker_main() takes it from the job list
 *   RUNNING -> SETTLING  worker_main() after the handler: herald__queue_settle_async()
 *   SETTLING -> freed    settled() / eo_committed() after the commit (writer or syncer thread)
 * Wake-ups (no busy polling): the dispatcher sleeps on the store's wake generation until a
 *   commit in this process, a worker freeing a slot, the next due time (delayed message, batch
 *   timeout, lease renewal) or the cross-process poll (PRAGMA data_version; 1 ms after activity,
 *   doubling to 250 ms when idle).
 * Invariants: (1) at most max_concurrency handlers run at once, and at most 2 x max_concurrency
 *   batches are held (tx_handler: at most max_eo ops outstanding); (2) a message is settled
 *   once; (3) stop() returns only after every leased batch has been handled and its settlement
 *   committed (or failed and logged), and every submitted effectively-once op has completed.
 * Stop (join_all): is_stopping ends new leases and ops (checked under mu where pending[] is
 *   counted); submitted leases and ops land; the workers finish every held batch while the
 *   dispatcher keeps renewing their leases; then the dispatcher exits; then the last
 *   settlements commit.
 * Counters (herald_consumer_counters_get): acked/retried are added by the completion callbacks
 *   (settled(), eo_committed()) from what the store committed. n_submitted counts settlements
 *   and effectively-once ops before they are handed to the store, n_completed after their
 *   callback ran; counters_get waits until n_completed reaches the n_submitted it saw. An op
 *   that committed before the call was submitted before it, and ops complete in commit order,
 *   so every settlement committed before the call is counted when it returns.
 * Metrics (has_metrics): each handled message adds (queue, type, outcome, handler duration) to
 *   an accumulator (metrics_mu); the dispatcher writes it to the store at most once a second,
 *   and join_all writes the rest.
 * Locks: c->mu guards jobs, held, n_held, n_settling, pending, n_eo, retry_at_ms, is_stopping,
 *   workers_stop, dispatcher_exit, n_submitted, n_completed. metrics_mu guards acc, n_acc.
 */
#include "consume/consume.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define POLL_MIN_MS 1
#define POLL_MAX_MS 250
#define SWEEP_EVERY_MS 60000
#define EO_BACKOFF_MS 1000 /* a queue whose effectively-once op failed waits this long */
#define NOT_SEEN INT64_MIN /* first_seen_ms: no visible message is waiting */
#define METRICS_EVERY_MS 1000 /* handler metrics are written at most once a second */

enum { ST_NONE = 0, ST_ACK = 1, ST_RETRY = 2 };

struct herald_delivery {
    herald_consumer *c;
    herald_batch batch;
    uint8_t *state;   /* per message: ST_* */
    int64_t *delay_s; /* per message retry delay, HERALD_UNSET = batch/consumer */
    uint8_t all_state;
    int64_t all_delay_s;
    char error[256];
    int64_t renew_at_ms; /* wall ms at which the dispatcher extends the lease */
    herald_delivery *next_job;  /* job list */
    herald_delivery *next_held; /* held list (QUEUED and RUNNING), for lease renewal */
};

struct herald_consumer {
    herald_store *s;
    char **queues;
    size_t n_queues;
    herald_handler_cb handler;
    herald_tx_handler_cb tx_handler;
    herald_chain *chain;
    herald_retry_policy retry_policy;
    char *name;
    int64_t processed_retention_s;
    void *ud;
    int max_batch_size;
    int64_t max_batch_timeout_ms;
    int max_concurrency;
    int64_t visibility_ms;
    herald__policy policy;
    char *dlq_copy;
    pthread_t dispatcher;
    pthread_t *workers;
    int n_workers;
    pthread_mutex_t mu;
    pthread_cond_t job_cv;     /* workers wait for jobs */
    pthread_cond_t settle_cv;  /* stop() waits for settlements */
    herald_delivery *jobs, *jobs_tail; /* guarded by mu */
    herald_delivery *held;             /* guarded by mu: QUEUED and RUNNING deliveries */
    int n_held;     /* guarded by mu: batches from lease submission until the handler returns */
    int n_settling; /* guarded by mu */
    int *pending;   /* mu: per queue, leases / eo ops submitted, not yet completed */
    bool is_stopping;                  /* guarded by mu: the dispatcher stops */
    bool workers_stop;                 /* guarded by mu: workers exit once the jobs are done */
    bool dispatcher_exit;              /* guarded by mu: renewals end, the dispatcher returns */
    int max_held;
    int max_eo, n_eo; /* tx_handler: effectively-once ops allowed / outstanding (mu) */
    int64_t *retry_at_ms; /* tx_handler, per queue: no op before this store time (mu) */
    int64_t *first_seen_ms; /* dispatcher only, per queue: store time the dispatcher first saw
                             * a visible message of it, NOT_SEEN when none is waiting */
    atomic_llong n_batches, n_delivered, n_acked, n_retried, n_failures;
    int64_t n_submitted, n_completed; /* mu: settlements and eo ops handed to the store / done */
    bool has_metrics;
    pthread_mutex_t metrics_mu;
    herald_metric *acc; /* metrics_mu: not yet written */
    size_t n_acc, cap_acc;
    int64_t metrics_due_ms; /* dispatcher: the next write of acc (store time) */
};

/* True on a thread running an effectively-once handler of any consumer (the store's writer):
 * there, herald_consumer_counters_get must not wait for ops that need this thread. */
static _Thread_local bool in_tx_handler;

/* ---- handler metrics (has_metrics) ---- */

static void metric_add(herald_consumer *c, const char *queue, const char *type,
                       const char *outcome, double ms)
{
    pthread_mutex_lock(&c->metrics_mu);
    herald_metric *m = NULL;
    for (size_t i = 0; i < c->n_acc && !m; i++)
        if (strcmp(c->acc[i].type, type) == 0 && strcmp(c->acc[i].outcome, outcome) == 0 &&
            strcmp(c->acc[i].queue, queue) == 0)
            m = &c->acc[i];
    if (!m) {
        if (c->n_acc == c->cap_acc) {
            c->cap_acc = c->cap_acc ? c->cap_acc * 2 : 8;
            c->acc = herald__xrealloc(c->acc, c->cap_acc * sizeof *c->acc);
        }
        m = &c->acc[c->n_acc++];
        memset(m, 0, sizeof *m);
        snprintf(m->queue, sizeof m->queue, "%s", queue);
        snprintf(m->type, sizeof m->type, "%s", type);
        snprintf(m->outcome, sizeof m->outcome, "%s", outcome);
    }
    herald__metric_observe(m, ms);
    pthread_mutex_unlock(&c->metrics_mu);
}

typedef struct metrics_op {
    herald__op base;
    herald_metric *m;
    size_t n;
} metrics_op;

static int metrics_run(herald_store *s, herald__op *op)
{
    metrics_op *o = (metrics_op *)op;
    return herald__store_metrics_add(s, o->m, o->n);
}

static void metrics_done(herald__op *op)
{
    metrics_op *o = (metrics_op *)op;
    if (o->base.rc < 0)
        herald__log(HERALD_LOG_WARN, "could not write handler metrics", "error", o->base.err,
                    NULL);
    herald__free(o->m);
    herald__free(o);
}

/* Writes the accumulated metrics: asynchronously (dispatcher) or waiting for the commit. */
static void metrics_flush(herald_consumer *c, bool wait)
{
    pthread_mutex_lock(&c->metrics_mu);
    metrics_op *o = herald__xcalloc(1, sizeof *o);
    o->m = c->acc;
    o->n = c->n_acc;
    c->acc = NULL;
    c->n_acc = c->cap_acc = 0;
    pthread_mutex_unlock(&c->metrics_mu);
    if (o->n == 0) {
        herald__free(o);
        return;
    }
    o->base.run = metrics_run;
    if (wait) {
        if (herald__store_exec(c->s, &o->base) < 0)
            herald__log(HERALD_LOG_WARN, "could not write handler metrics", "error",
                        herald_last_error(), NULL);
        herald__free(o->m);
        herald__free(o);
        return;
    }
    o->base.done = metrics_done;
    int rc = herald__store_submit(c->s, &o->base);
    if (rc < 0) {
        o->base.rc = rc;
        snprintf(o->base.err, sizeof o->base.err, "%s", herald_last_error());
        metrics_done(&o->base);
    }
}

/* The event type of a message for its metric ("" when it is not an envelope). */
static void metric_type(const herald_message *m, char type[HERALD_EVENT_TYPE_MAX + 1])
{
    type[0] = 0;
    herald_envelope env;
    if (m->content_type == HERALD_CONTENT_JSON &&
        herald__envelope_parse_stored(m->body, m->body_len, &env) == 0) {
        snprintf(type, HERALD_EVENT_TYPE_MAX + 1, "%s", env.type);
        herald_envelope_deinit(&env);
    }
}

void herald_consumer_cfg_init(herald_consumer_cfg *c)
{
    memset(c, 0, sizeof *c);
    c->max_batch_size = HERALD_UNSET;
    c->max_batch_timeout_ms = HERALD_UNSET;
    c->max_retries = HERALD_UNSET;
    c->retry_delay_s = HERALD_UNSET;
    c->max_concurrency = HERALD_UNSET;
    c->visibility_timeout_ms = HERALD_UNSET;
    c->processed_retention_s = HERALD_UNSET;
    c->retry_policy = (herald_retry_policy){ .transient_delay_s = 10,
                                             .rate_limited_delay_s = 60,
                                             .is_exponential = false,
                                             .backoff_cap_s = 300 };
}

/* ---- the delivery API (handler side) ---- */

const char *herald_delivery_queue(const herald_delivery *d)
{
    return d->batch.queue;
}

size_t herald_delivery_count(const herald_delivery *d)
{
    return d->batch.n;
}

const herald_message *herald_delivery_msg(const herald_delivery *d, size_t i)
{
    return i < d->batch.n ? &d->batch.msgs[i] : NULL;
}

void herald_delivery_ack(herald_delivery *d, size_t i)
{
    if (i < d->batch.n && d->state[i] == ST_NONE)
        d->state[i] = ST_ACK;
}

void herald_delivery_retry(herald_delivery *d, size_t i, int64_t delay_s)
{
    if (i < d->batch.n && d->state[i] == ST_NONE) {
        d->state[i] = ST_RETRY;
        d->delay_s[i] = delay_s < 0 ? HERALD_UNSET
                        : delay_s > HERALD_MAX_DELAY_S ? HERALD_MAX_DELAY_S
                                                       : delay_s;
    }
}

void herald_delivery_ack_all(herald_delivery *d)
{
    if (d->all_state == ST_NONE)
        d->all_state = ST_ACK;
}

void herald_delivery_retry_all(herald_delivery *d, int64_t delay_s)
{
    if (d->all_state == ST_NONE) {
        d->all_state = ST_RETRY;
        d->all_delay_s = delay_s < 0 ? HERALD_UNSET
                         : delay_s > HERALD_MAX_DELAY_S ? HERALD_MAX_DELAY_S
                                                        : delay_s;
    }
}

void herald_delivery_set_error(herald_delivery *d, const char *error)
{
    herald__utf8_copy(d->error, sizeof d->error, error); /* valid UTF-8, cut between characters */
}

static void delivery_free(herald_delivery *d)
{
    herald_batch_deinit(&d->batch);
    herald__free(d->state);
    herald__free(d->delay_s);
    herald__free(d);
}

/* ---- settlement ---- */

static void held_remove(herald_consumer *c, herald_delivery *d)
{
    for (herald_delivery **pp = &c->held; *pp; pp = &(*pp)->next_held) {
        if (*pp == d) {
            *pp = d->next_held;
            d->next_held = NULL;
            return;
        }
    }
}

/* Writer or syncer thread: the settlement of d committed (or failed). */
static void settled(void *ud, int rc, const herald_settle_result *res)
{
    herald_delivery *d = ud;
    herald_consumer *c = d->c;
    if (rc < 0)
        herald__log(HERALD_LOG_ERROR, "consumer could not settle a batch; its messages will be "
                    "redelivered after the visibility timeout",
                    "queue", d->batch.queue, "error", herald_last_error(), NULL);
    if (res) { /* counted from what committed */
        atomic_fetch_add(&c->n_acked, res->n_acked);
        atomic_fetch_add(&c->n_retried, res->n_retried + res->n_dead);
    }
    delivery_free(d);
    pthread_mutex_lock(&c->mu);
    c->n_settling--;
    c->n_completed++;
    pthread_cond_broadcast(&c->settle_cv);
    pthread_mutex_unlock(&c->mu);
}

/* Trace info for the traced messages of a batch (NULL entries for the others). */
static herald__trace_info *trace_batch(const herald_batch *b, herald__settle_item *items)
{
    herald__trace_info *t = NULL;
    for (size_t i = 0; i < b->n; i++) {
        const herald_message *m = &b->msgs[i];
        herald__trace_info tmp;
        if (m->content_type != HERALD_CONTENT_JSON ||
            !herald__envelope_trace(m->body, m->body_len, tmp.correlation_id, tmp.event_id,
                                    tmp.type))
            continue;
        if (!t)
            t = herald__xcalloc(b->n, sizeof *t);
        t[i] = tmp;
        items[i].trace = &t[i];
        items[i].message_id = m->id;
        items[i].attempt = m->attempts;
    }
    return t;
}

/* Hands d's settlement to the writer; d leaves the held list (no more renewals) and is freed
 * by settled() after the commit. */
static void submit_settlement(herald_consumer *c, herald_delivery *d,
                              const herald__settle_item *items)
{
    pthread_mutex_lock(&c->mu);
    held_remove(c, d);
    c->n_settling++;
    c->n_submitted++;
    pthread_mutex_unlock(&c->mu);
    int rc = herald__queue_settle_async(c->s, d->batch.queue, items, d->batch.n, &c->policy,
                                        settled, d);
    if (rc < 0)
        settled(d, rc, NULL);
}

/* Applies Cloudflare's precedence: per-message call > ack_all/retry_all > handler outcome.
 * handler_ms: how long the batch's handler ran (each message's metric). */
static void settle(herald_consumer *c, herald_delivery *d, int handler_rc, double handler_ms)
{
    size_t n = d->batch.n;
    herald__settle_item *items = herald__xcalloc(n, sizeof *items);
    herald__trace_info *traces = trace_batch(&d->batch, items);
    const char *error = d->error[0] ? d->error : handler_rc < 0 ? "handler failed" : NULL;
    for (size_t i = 0; i < n; i++) {
        herald__settle_item *it = &items[i];
        (void)herald__lease_parse(d->batch.msgs[i].lease_id, &it->ref);
        it->body_bytes = (int64_t)d->batch.msgs[i].body_len;
        uint8_t st = d->state[i];
        int64_t delay = HERALD_UNSET;
        if (st == ST_RETRY) {
            delay = d->delay_s[i] != HERALD_UNSET ? d->delay_s[i] : d->all_delay_s;
        } else if (st == ST_NONE) {
            st = d->all_state != ST_NONE ? d->all_state : handler_rc == 0 ? ST_ACK : ST_RETRY;
            delay = d->all_delay_s;
        }
        it->is_retry = st == ST_RETRY;
        it->delay_s = it->is_retry ? delay : HERALD_UNSET;
        it->error = it->is_retry ? error : NULL;
        if (c->has_metrics) {
            char type[HERALD_EVENT_TYPE_MAX + 1];
            metric_type(&d->batch.msgs[i], type);
            metric_add(c, d->batch.queue, type, it->is_retry ? "transient" : "ok", handler_ms);
        }
    }
    submit_settlement(c, d, items);
    herald__free(items);
    herald__free(traces);
}

/* A middleware chain: one chain run per message, outcomes mapped by the retry policy. */
static void run_chain(herald_consumer *c, herald_delivery *d)
{
    size_t n = d->batch.n;
    herald__settle_item *items = herald__xcalloc(n, sizeof *items);
    herald__trace_info *traces = herald__xcalloc(n, sizeof *traces);
    char **errors = herald__xcalloc(n, sizeof *errors);
    herald_envelope *envs = herald__xcalloc(n, sizeof *envs);
    bool *has_env = herald__xcalloc(n, sizeof *has_env);
    const herald_retry_policy *p = &c->retry_policy;
    bool any_failure = false;
    for (size_t i = 0; i < n; i++) {
        const herald_message *m = &d->batch.msgs[i];
        has_env[i] = m->content_type == HERALD_CONTENT_JSON &&
                     herald__envelope_parse_stored(m->body, m->body_len, &envs[i]) == 0;
        herald__settle_trace(&items[i], &traces[i], m, has_env[i] ? &envs[i] : NULL);
        herald_msg_ctx ctx = { .chain = c->chain, .queue = d->batch.queue, .store = c->s };
        int64_t t0 = c->has_metrics ? herald__mono_ns() : 0;
        int rc = herald_mw_next(&ctx, m, has_env[i] ? &envs[i] : NULL);
        if (c->has_metrics)
            metric_add(c, d->batch.queue, has_env[i] ? envs[i].type : "",
                       herald__outcome_name(rc, ctx.is_duplicate),
                       (double)(herald__mono_ns() - t0) / 1e6);
        herald__settle_item *it = &items[i];
        (void)herald__lease_parse(m->lease_id, &it->ref);
        it->body_bytes = (int64_t)m->body_len;
        it->delay_s = HERALD_UNSET;
        if (rc == 0) {
            if (ctx.record_processed && has_env[i]) {
                it->processed_event_id = envs[i].event_id;
                it->processed_type = envs[i].type;
            }
            continue;
        }
        any_failure = true;
        it->is_retry = true;
        errors[i] = herald__xstrdup(ctx.error[0] ? ctx.error
                                                 : herald__outcome_name(rc, false));
        it->error = errors[i];
        if (rc == HERALD_FAIL_PERMANENT) {
            it->is_dead = true;
        } else if (rc == HERALD_FAIL_RATE_LIMITED) {
            it->delay_s = p->rate_limited_delay_s;
        } else {
            int64_t delay = p->transient_delay_s;
            for (int k = 1; p->is_exponential && k < m->attempts && delay < p->backoff_cap_s;
                 k++)
                delay *= 2;
            if (p->is_exponential && delay > p->backoff_cap_s)
                delay = p->backoff_cap_s;
            it->delay_s = delay;
        }
    }
    if (any_failure)
        atomic_fetch_add(&c->n_failures, 1);
    submit_settlement(c, d, items);
    for (size_t i = 0; i < n; i++) {
        herald__free(errors[i]);
        if (has_env[i])
            herald_envelope_deinit(&envs[i]);
    }
    herald__free(errors);
    herald__free(envs);
    herald__free(has_env);
    herald__free(items);
    herald__free(traces);
    herald__chain_tick(c->chain);
}

/* ---- workers ---- */

static void *worker_main(void *arg)
{
    herald_consumer *c = arg;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->jobs && !c->workers_stop)
            pthread_cond_wait(&c->job_cv, &c->mu);
        herald_delivery *d = c->jobs;
        if (!d)
            break; /* stopping and nothing left */
        c->jobs = d->next_job;
        if (!c->jobs)
            c->jobs_tail = NULL;
        pthread_mutex_unlock(&c->mu);

        atomic_fetch_add(&c->n_batches, 1);
        atomic_fetch_add(&c->n_delivered, (long long)d->batch.n);
        if (c->chain) {
            run_chain(c, d);
        } else {
            int64_t t0 = herald__mono_ns();
            int hrc = c->handler(d, c->ud);
            double ms = (double)(herald__mono_ns() - t0) / 1e6;
            if (hrc < 0)
                atomic_fetch_add(&c->n_failures, 1);
            settle(c, d, hrc < 0 ? hrc : 0, ms);
        }

        pthread_mutex_lock(&c->mu);
        c->n_held--;
        pthread_mutex_unlock(&c->mu);
        herald_store_wake(c->s); /* a slot is free: let the dispatcher look again */
        pthread_mutex_lock(&c->mu);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

/* ---- dispatcher ---- */

typedef struct lease_ctx {
    herald_consumer *c;
    size_t qi;
} lease_ctx;

/* Writer or syncer thread: a lease submitted by dispatch() committed (or failed). */
static void leased(void *ud, int rc, herald_batch *b)
{
    lease_ctx *lc = ud;
    herald_consumer *c = lc->c;
    herald_store *s = c->s; /* c may be freed once pending[qi] drops, below */
    size_t qi = lc->qi;
    herald__free(lc);
    if (rc < 0 && rc != HERALD_EPAUSED && rc != HERALD_ENOQUEUE)
        herald__log(HERALD_LOG_WARN, "consumer lease failed", "queue", c->queues[qi], "error",
                    herald_last_error(), NULL);
    herald_delivery *d = NULL;
    if (rc == 0 && b->n > 0) {
        d = herald__xcalloc(1, sizeof *d);
        d->c = c;
        d->batch = *b;
        d->state = herald__xcalloc(b->n, 1);
        d->delay_s = herald__xmalloc(b->n * sizeof *d->delay_s);
        for (size_t i = 0; i < b->n; i++)
            d->delay_s[i] = HERALD_UNSET;
        d->all_delay_s = HERALD_UNSET;
        d->renew_at_ms = herald__store_now(c->s) + c->visibility_ms / 2;
    } else if (rc == 0) {
        herald_batch_deinit(b);
    }
    pthread_mutex_lock(&c->mu);
    c->pending[qi]--;
    pthread_cond_broadcast(&c->settle_cv);
    if (d) {
        d->next_held = c->held;
        c->held = d;
        if (c->jobs_tail)
            c->jobs_tail->next_job = d;
        else
            c->jobs = d;
        c->jobs_tail = d;
        pthread_cond_signal(&c->job_cv);
    } else {
        c->n_held--;
    }
    pthread_mutex_unlock(&c->mu);
    herald_store_wake(s); /* the dispatcher may look at this queue again */
}

/* ---- effectively-once batches (tx_handler) ----
 * No lease and no worker: the dispatcher submits ops that take a batch on the writer, run the
 * handlers there and settle it, in one transaction (tx.c). Up to max_eo ops are outstanding;
 * an op that took a full batch wakes the dispatcher while it still runs, so the next op is
 * queued before this group commits and the writer never waits for the fsync. */
typedef struct eo_job {
    herald__eo_op op;
    herald_consumer *c;
    size_t qi;
} eo_job;

/* Writer or syncer thread: an effectively-once batch committed (or failed). */
static void eo_committed(herald__eo_op *o, int rc)
{
    eo_job *j = o->ud_caller;
    herald_consumer *c = j->c;
    herald_store *s = c->s; /* c may be freed once pending[qi] drops, below */
    bool failed = rc < 0 && rc != HERALD_EPAUSED && rc != HERALD_ENOQUEUE;
    if (failed) {
        herald__log(HERALD_LOG_ERROR, "effectively-once batch failed; its messages stay in the "
                    "queue and the queue is tried again in a second", "queue",
                    c->queues[j->qi], "error", herald_last_error(), NULL);
        atomic_fetch_add(&c->n_failures, 1);
    } else if (rc == 0 && o->n_taken > 0) {
        atomic_fetch_add(&c->n_batches, 1);
        atomic_fetch_add(&c->n_delivered, o->n_taken);
        atomic_fetch_add(&c->n_acked, o->n_ok + o->n_duplicates);
        atomic_fetch_add(&c->n_retried, o->n_failed);
        if (o->n_failed)
            atomic_fetch_add(&c->n_failures, 1);
    }
    pthread_mutex_lock(&c->mu);
    if (failed) /* the store failed, not a handler: no attempt counts, so do not spin */
        c->retry_at_ms[j->qi] = herald__store_now(s) + EO_BACKOFF_MS;
    c->pending[j->qi]--;
    c->n_eo--;
    c->n_completed++;
    pthread_cond_broadcast(&c->settle_cv);
    pthread_mutex_unlock(&c->mu);
    herald__free(j);
    herald_store_wake(s); /* the dispatcher may submit the next one */
}

/* Writer thread: runs the consumer's tx_handler on one message (marked, and timed for the
 * metrics when the consumer has them). */
static int run_tx_handler(herald_tx *tx, const herald_message *m, const herald_envelope *env,
                          void *ud)
{
    eo_job *j = ud;
    herald_consumer *c = j->c;
    int64_t t0 = c->has_metrics ? herald__mono_ns() : 0;
    in_tx_handler = true;
    int rc = c->tx_handler(tx, m, env, c->ud);
    in_tx_handler = false;
    if (c->has_metrics)
        metric_add(c, c->queues[j->qi], env ? env->type : "", herald__outcome_name(rc, false),
                   (double)(herald__mono_ns() - t0) / 1e6);
    return rc;
}

/* Writer thread, inside the op: it took a whole batch, so more may be waiting. */
static void eo_took_full(herald__eo_op *o)
{
    eo_job *j = o->ud_caller;
    herald_store_wake(j->c->s);
}

/* Submits up to `want` effectively-once ops on queue qi. Returns how many. */
static int dispatch_eo(herald_consumer *c, size_t qi, int want)
{
    int n = 0;
    for (; n < want; n++) {
        eo_job *j = herald__xcalloc(1, sizeof *j);
        j->c = c;
        j->qi = qi;
        j->op = (herald__eo_op){ .store = c->s, .queue = c->queues[qi],
                                 .max_n = c->max_batch_size, .handler = run_tx_handler,
                                 .ud = j, .policy = &c->policy, .on_done = eo_committed,
                                 .on_full = eo_took_full, .ud_caller = j };
        pthread_mutex_lock(&c->mu);
        bool stopping = c->is_stopping; /* stop() waits only for what is pending already */
        if (!stopping) {
            c->pending[qi]++;
            c->n_eo++;
            c->n_submitted++;
        }
        pthread_mutex_unlock(&c->mu);
        if (stopping) {
            herald__free(j);
            break;
        }
        if (herald__eo_submit(&j->op) < 0) {
            pthread_mutex_lock(&c->mu);
            c->pending[qi]--;
            c->n_eo--;
            c->n_completed++;
            pthread_mutex_unlock(&c->mu);
            herald__free(j);
            break;
        }
    }
    return n;
}

/* Submits up to `want` leases of queue qi (they join one group commit). Returns how many. */
static int dispatch(herald_consumer *c, size_t qi, int want)
{
    int n = 0;
    for (; n < want; n++) {
        lease_ctx *lc = herald__xmalloc(sizeof *lc);
        lc->c = c;
        lc->qi = qi;
        pthread_mutex_lock(&c->mu);
        bool stopping = c->is_stopping; /* stop() waits only for what is pending already */
        if (!stopping) {
            c->pending[qi]++;
            c->n_held++;
        }
        pthread_mutex_unlock(&c->mu);
        if (stopping) {
            herald__free(lc);
            break;
        }
        int rc = herald__queue_lease_async(c->s, c->queues[qi], c->max_batch_size,
                                           c->visibility_ms, &c->policy, leased, lc);
        if (rc < 0) {
            herald__free(lc);
            pthread_mutex_lock(&c->mu);
            c->pending[qi]--;
            c->n_held--;
            pthread_mutex_unlock(&c->mu);
            break;
        }
    }
    return n;
}

/* Batches the dispatcher may still take on, and whether queue qi has leases in flight. */
static int free_slots(herald_consumer *c, size_t qi, bool *has_pending)
{
    pthread_mutex_lock(&c->mu);
    int n = c->tx_handler ? c->max_eo - c->n_eo : c->max_held - c->n_held;
    *has_pending = c->pending[qi] > 0;
    pthread_mutex_unlock(&c->mu);
    return n;
}

/* Extends the leases of running batches that are half way to expiry. Returns the next wall
 * time a renewal is due (INT64_MAX if none). */
static int64_t renew_leases(herald_consumer *c, int64_t now_ms)
{
    int64_t next = INT64_MAX;
    for (;;) {
        herald_delivery *due = NULL;
        pthread_mutex_lock(&c->mu);
        for (herald_delivery *d = c->held; d; d = d->next_held) {
            if (d->renew_at_ms <= now_ms) {
                due = d;
                break;
            }
        }
        if (!due) {
            for (herald_delivery *d = c->held; d; d = d->next_held)
                if (d->renew_at_ms < next)
                    next = d->renew_at_ms;
            pthread_mutex_unlock(&c->mu);
            return next;
        }
        /* Copy the refs under the lock: the delivery may settle and be freed meanwhile. */
        size_t n = due->batch.n;
        herald__lease_ref *refs = herald__xmalloc(n * sizeof *refs);
        for (size_t i = 0; i < n; i++)
            (void)herald__lease_parse(due->batch.msgs[i].lease_id, &refs[i]);
        char queue[HERALD_QUEUE_NAME_MAX + 1];
        memcpy(queue, due->batch.queue, sizeof queue);
        due->renew_at_ms = now_ms + c->visibility_ms / 2;
        pthread_mutex_unlock(&c->mu);
        int rc = herald__queue_extend(c->s, queue, refs, n, now_ms + c->visibility_ms);
        if (rc < 0)
            herald__log(HERALD_LOG_WARN, "consumer could not extend a lease", "queue", queue,
                        "error", herald_last_error(), NULL);
        herald__free(refs);
    }
}

typedef struct prune_op {
    herald__op base;
    herald_consumer *c;
} prune_op;

static int prune_run(herald_store *s, herald__op *op)
{
    herald_consumer *c = ((prune_op *)op)->c;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < c->n_queues; i++) {
        int64_t n = 0;
        rc = herald__store_processed_prune(s, c->queues[i], c->processed_retention_s, &n);
        if (rc == HERALD_ENOQUEUE) /* deleted meanwhile: nothing to prune */
            rc = 0;
    }
    return rc;
}

/* Forgets processed event ids older than the retention (one transaction). */
static void prune_processed(herald_consumer *c)
{
    prune_op p = { .base = { .run = prune_run }, .c = c };
    if (herald__store_exec(c->s, &p.base) < 0)
        herald__log(HERALD_LOG_WARN, "could not prune processed events", "error",
                    herald_last_error(), NULL);
}

/* Stopping: no new leases, but the leases of batches still held are renewed until the
 * workers are done (dispatcher_exit). */
static bool draining(herald_consumer *c)
{
    pthread_mutex_lock(&c->mu);
    bool s = c->is_stopping;
    pthread_mutex_unlock(&c->mu);
    return s;
}

static bool dispatcher_done(herald_consumer *c)
{
    pthread_mutex_lock(&c->mu);
    bool s = c->dispatcher_exit;
    pthread_mutex_unlock(&c->mu);
    return s;
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* Submits the leases (tx_handler: the effectively-once ops) of every queue whose batch is due
 * (size reached or timeout passed), and lowers *due_ms to the store time the next one may be
 * due. Returns whether any was submitted. */
static bool lease_due(herald_consumer *c, int64_t now_ms, int64_t *due_ms, size_t *rr_io)
{
    herald_store *s = c->s;
    size_t rr = *rr_io;
    bool progress = false;
    for (size_t k = 0; k < c->n_queues; k++) {
        size_t qi = (rr + k) % c->n_queues;
        bool has_pending = false;
        int slots = free_slots(c, qi, &has_pending);
        if (slots <= 0)
            break;
        int in_flight = 0; /* messages that ops already submitted will take */
        if (c->tx_handler) {
            pthread_mutex_lock(&c->mu);
            in_flight = c->pending[qi] * c->max_batch_size;
            int64_t retry_at = c->retry_at_ms[qi];
            pthread_mutex_unlock(&c->mu);
            if (retry_at > now_ms) { /* its last op failed */
                *due_ms = min64(*due_ms, retry_at);
                continue;
            }
        } else if (has_pending) {
            continue; /* its leases land first; leased() wakes us */
        }
        int n_ready = 0;
        int64_t next_due = INT64_MAX;
        bool paused = false;
        if (herald__store_ready(s, c->queues[qi], in_flight + slots * c->max_batch_size,
                                &n_ready, &next_due, &paused) < 0 ||
            paused) {
            c->first_seen_ms[qi] = NOT_SEEN;
            continue;
        }
        n_ready -= in_flight;
        *due_ms = min64(*due_ms, next_due);
        if (n_ready <= 0) {
            c->first_seen_ms[qi] = NOT_SEEN;
            continue;
        }
        if (c->first_seen_ms[qi] == NOT_SEEN)
            c->first_seen_ms[qi] = now_ms;
        int64_t batch_due_ms = c->first_seen_ms[qi] + c->max_batch_timeout_ms;
        if (n_ready >= c->max_batch_size || now_ms >= batch_due_ms) {
            int want = n_ready / c->max_batch_size;
            if (want < 1)
                want = 1;
            if (want > slots)
                want = slots;
            if (c->tx_handler && want > (c->max_eo + 1) / 2)
                want = (c->max_eo + 1) / 2; /* the rest later: consecutive groups, not one */
            if ((c->tx_handler ? dispatch_eo(c, qi, want) : dispatch(c, qi, want)) > 0)
                progress = true;
            c->first_seen_ms[qi] = NOT_SEEN;
            rr = qi + 1;
        } else {
            *due_ms = min64(*due_ms, batch_due_ms);
        }
    }
    *rr_io = rr;
    return progress;
}

static void *dispatcher_main(void *arg)
{
    herald_consumer *c = arg;
    herald_store *s = c->s;
    uint64_t seen = herald__store_gen(s);
    int64_t data_version = 0;
    (void)herald__store_data_version(s, &data_version);
    int64_t poll_ms = POLL_MIN_MS;
    int64_t next_sweep_ms = herald__store_now(s); /* the store's clock: tests advance it */
    size_t rr = 0;
    while (!dispatcher_done(c)) {
        int64_t now_ms = herald__store_now(s);
        int64_t due_ms = INT64_MAX; /* store time of the earliest timer */
        bool progress = false;
        if (now_ms >= next_sweep_ms && !draining(c)) {
            /* Retention is store-wide: one consumer of the store sweeps per interval. */
            int64_t n_expired = 0;
            if (herald__store_sweep_turn(s, now_ms, SWEEP_EVERY_MS) &&
                herald__queue_sweep(s, &n_expired) < 0)
                herald__log(HERALD_LOG_WARN, "retention sweep failed", "error",
                            herald_last_error(), NULL);
            if (c->tx_handler || c->chain) /* dedup middleware records processed events too */
                prune_processed(c);
            next_sweep_ms = now_ms + SWEEP_EVERY_MS;
        }
        due_ms = min64(due_ms, next_sweep_ms);
        if (!draining(c) && lease_due(c, now_ms, &due_ms, &rr))
            progress = true;
        due_ms = min64(due_ms, renew_leases(c, now_ms));
        if (c->has_metrics) {
            if (now_ms >= c->metrics_due_ms) {
                metrics_flush(c, false);
                c->metrics_due_ms = now_ms + METRICS_EVERY_MS;
            }
            due_ms = min64(due_ms, c->metrics_due_ms);
        }
        if (progress) /* the leases' completions wake us */
            poll_ms = POLL_MIN_MS;
        /* Cross-process changes are only visible through data_version: poll, adaptively. The
         * timers run on the store's clock: sleep (real time) until the earliest is due by it,
         * at most the poll interval; a wake (herald_store_wake after a test moved its clock)
         * re-reads the clock. */
        int64_t wait_ms = due_ms - now_ms < poll_ms ? due_ms - now_ms : poll_ms;
        if (wait_ms < 0)
            wait_ms = 0;
        uint64_t g = herald__store_wait(s, seen, herald__mono_ns() + wait_ms * 1000000);
        if (g != seen) {
            seen = g;
            poll_ms = POLL_MIN_MS;
            continue;
        }
        int64_t dv = data_version;
        if (herald__store_data_version(s, &dv) == 0 && dv != data_version) {
            data_version = dv;
            poll_ms = POLL_MIN_MS;
        } else {
            poll_ms = min64(poll_ms * 2, POLL_MAX_MS);
        }
    }
    return NULL;
}

/* ---- start / stop ---- */

static int check_cfg(const herald_consumer_cfg *cfg)
{
    if (!cfg)
        return herald__err(HERALD_EINVAL, "consumer config is NULL");
    int n_handlers = (cfg->handler != NULL) + (cfg->tx_handler != NULL) + (cfg->chain != NULL);
    if (n_handlers == 0)
        return herald__err(HERALD_EINVAL,
                           "consumer handler is missing (handler, tx_handler or chain)");
    if (n_handlers > 1)
        return herald__err(HERALD_EINVAL, "consumer has more than one of handler, tx_handler and "
                                          "chain; give exactly one");
    const herald_retry_policy *rp = &cfg->retry_policy;
    if (cfg->chain && (rp->transient_delay_s < 0 || rp->transient_delay_s > HERALD_MAX_DELAY_S ||
                       rp->rate_limited_delay_s < 0 ||
                       rp->rate_limited_delay_s > HERALD_MAX_DELAY_S || rp->backoff_cap_s < 0 ||
                       rp->backoff_cap_s > HERALD_MAX_DELAY_S))
        return herald__err(HERALD_EINVAL, "retry_policy delays must be 0 .. %d s",
                           HERALD_MAX_DELAY_S);
    if (cfg->tx_handler && cfg->processed_retention_s != HERALD_UNSET &&
        (cfg->processed_retention_s < 60 || cfg->processed_retention_s > HERALD_MAX_DELAY_S))
        return herald__err(HERALD_EINVAL, "processed_retention %lld s is out of range 60..%d",
                           (long long)cfg->processed_retention_s, HERALD_MAX_DELAY_S);
    if (!cfg->queues || cfg->n_queues == 0)
        return herald__err(HERALD_EINVAL, "consumer needs at least one queue");
    if (cfg->name && (!cfg->name[0] || strlen(cfg->name) > 100))
        return herald__err(HERALD_EINVAL, "consumer name must be 1..100 characters");
    if (cfg->n_queues > 1000)
        return herald__err(HERALD_EINVAL, "consumer has %zu queues; at most 1000",
                           cfg->n_queues);
    for (size_t i = 0; i < cfg->n_queues; i++)
        if (!cfg->queues[i] || !herald__name_valid(cfg->queues[i]))
            return herald__err(HERALD_EINVAL, "consumer queue %zu name '%.80s' is invalid", i,
                               cfg->queues[i] ? cfg->queues[i] : "(null)");
    if (cfg->max_batch_size != HERALD_UNSET &&
        (cfg->max_batch_size < 1 || cfg->max_batch_size > HERALD_MAX_BATCH_MESSAGES))
        return herald__err(HERALD_EINVAL, "max_batch_size %d is out of range 1..%d",
                           cfg->max_batch_size, HERALD_MAX_BATCH_MESSAGES);
    if (cfg->max_batch_timeout_ms != HERALD_UNSET &&
        (cfg->max_batch_timeout_ms < 0 || cfg->max_batch_timeout_ms > 60000))
        return herald__err(HERALD_EINVAL, "max_batch_timeout %lld ms is out of range 0..60000",
                           (long long)cfg->max_batch_timeout_ms);
    if (cfg->max_concurrency != HERALD_UNSET &&
        (cfg->max_concurrency < 1 || cfg->max_concurrency > 250))
        return herald__err(HERALD_EINVAL, "max_concurrency %d is out of range 1..250",
                           cfg->max_concurrency);
    if (cfg->visibility_timeout_ms != HERALD_UNSET &&
        (cfg->visibility_timeout_ms < 100 ||
         cfg->visibility_timeout_ms > HERALD_MAX_VISIBILITY_MS))
        return herald__err(HERALD_EINVAL, "visibility_timeout %lld ms is out of range 100..%d",
                           (long long)cfg->visibility_timeout_ms, HERALD_MAX_VISIBILITY_MS);
    herald__policy p = { .max_retries = cfg->max_retries,
                         .retry_delay_s = cfg->retry_delay_s,
                         .dead_letter_queue = cfg->dead_letter_queue };
    return herald__queue_check_policy(&p);
}

static void consumer_free(herald_consumer *c)
{
    for (size_t i = 0; i < c->n_queues; i++)
        herald__free(c->queues[i]);
    herald__free(c->queues);
    herald__free(c->first_seen_ms);
    herald__free(c->pending);
    herald__free(c->retry_at_ms);
    herald__free(c->workers);
    herald__free(c->dlq_copy);
    herald__free(c->name);
    herald__free(c->acc);
    pthread_mutex_destroy(&c->metrics_mu);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->job_cv);
    pthread_cond_destroy(&c->settle_cv);
    herald__free(c);
}

static bool any_pending(herald_consumer *c)
{
    for (size_t i = 0; i < c->n_queues; i++)
        if (c->pending[i] > 0)
            return true;
    return false;
}

static void join_all(herald_consumer *c, bool has_dispatcher)
{
    pthread_mutex_lock(&c->mu);
    c->is_stopping = true;
    pthread_mutex_unlock(&c->mu);
    herald_store_wake(c->s);
    /* Leases already submitted land (and become jobs) before the workers may exit. */
    pthread_mutex_lock(&c->mu);
    while (any_pending(c))
        pthread_cond_wait(&c->settle_cv, &c->mu);
    c->workers_stop = true;
    pthread_cond_broadcast(&c->job_cv);
    pthread_mutex_unlock(&c->mu);
    for (int i = 0; i < c->n_workers; i++) /* meanwhile the dispatcher renews their leases */
        pthread_join(c->workers[i], NULL);
    pthread_mutex_lock(&c->mu);
    c->dispatcher_exit = true;
    pthread_mutex_unlock(&c->mu);
    herald_store_wake(c->s);
    if (has_dispatcher)
        pthread_join(c->dispatcher, NULL);
    pthread_mutex_lock(&c->mu);
    while (c->n_settling > 0)
        pthread_cond_wait(&c->settle_cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
    if (c->has_metrics)
        metrics_flush(c, true);
}

int herald_consumer_start(herald_store *s, const herald_consumer_cfg *cfg, herald_consumer **out)
{
    herald__err_clear();
    if (!s || !out)
        return herald__err(HERALD_EINVAL, "herald_consumer_start: NULL argument");
    int rc = check_cfg(cfg);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < cfg->n_queues; i++) {
        rc = herald_queue_create(s, cfg->queues[i], NULL);
        if (rc == HERALD_EEXIST)
            rc = 0;
        if (rc < 0)
            return rc;
    }
    herald__err_clear();
    herald_consumer *c = herald__xcalloc(1, sizeof *c);
    c->s = s;
    c->n_queues = cfg->n_queues;
    c->queues = herald__xcalloc(cfg->n_queues, sizeof *c->queues);
    for (size_t i = 0; i < cfg->n_queues; i++)
        c->queues[i] = herald__xstrdup(cfg->queues[i]);
    c->first_seen_ms = herald__xcalloc(cfg->n_queues, sizeof *c->first_seen_ms);
    for (size_t i = 0; i < cfg->n_queues; i++)
        c->first_seen_ms[i] = NOT_SEEN;
    c->pending = herald__xcalloc(cfg->n_queues, sizeof *c->pending);
    c->retry_at_ms = herald__xcalloc(cfg->n_queues, sizeof *c->retry_at_ms);
    c->handler = cfg->handler;
    c->tx_handler = cfg->tx_handler;
    c->chain = (herald_chain *)cfg->chain;
    c->retry_policy = cfg->retry_policy;
    if (cfg->name) {
        c->name = herald__xstrdup(cfg->name);
    } else {
        size_t len = strlen(cfg->queues[0]) + 16;
        c->name = herald__xmalloc(len);
        snprintf(c->name, len, "consumer:%s", cfg->queues[0]);
    }
    c->policy.handler_name = c->name;
    c->processed_retention_s = cfg->processed_retention_s == HERALD_UNSET || !cfg->tx_handler
                                   ? 7 * 86400
                                   : cfg->processed_retention_s;
    c->ud = cfg->ud;
    c->max_batch_size = cfg->max_batch_size == HERALD_UNSET ? 10 : cfg->max_batch_size;
    c->max_batch_timeout_ms =
        cfg->max_batch_timeout_ms == HERALD_UNSET ? 5000 : cfg->max_batch_timeout_ms;
    c->max_concurrency = cfg->max_concurrency == HERALD_UNSET ? 1 : cfg->max_concurrency;
    c->max_held = 2 * c->max_concurrency;
    /* tx handlers run one at a time on the writer: concurrency is how many batches wait for
     * it, enough for the next commit group to be ready while one commits */
    c->max_eo = 2 * (c->max_concurrency < 4 ? 4 : c->max_concurrency);
    c->visibility_ms = cfg->visibility_timeout_ms == HERALD_UNSET ? HERALD_DEFAULT_VISIBILITY_MS
                                                                  : cfg->visibility_timeout_ms;
    c->policy.max_retries = cfg->max_retries;
    c->policy.retry_delay_s = cfg->retry_delay_s;
    if (cfg->dead_letter_queue) {
        c->dlq_copy = herald__xstrdup(cfg->dead_letter_queue);
        c->policy.dead_letter_queue = c->dlq_copy;
    }
    c->has_metrics = cfg->has_metrics;
    pthread_mutex_init(&c->metrics_mu, NULL);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->job_cv, NULL);
    pthread_cond_init(&c->settle_cv, NULL);
    c->workers = herald__xcalloc((size_t)c->max_concurrency, sizeof *c->workers);
    for (int i = 0; i < (c->tx_handler ? 0 : c->max_concurrency); i++) { /* see dispatch_eo */
        int prc = pthread_create(&c->workers[i], NULL, worker_main, c);
        if (prc != 0) {
            join_all(c, false);
            consumer_free(c);
            return herald__err(-prc, "cannot start consumer worker thread: %s", strerror(prc));
        }
        c->n_workers++;
    }
    int prc = pthread_create(&c->dispatcher, NULL, dispatcher_main, c);
    if (prc != 0) {
        join_all(c, false);
        consumer_free(c);
        return herald__err(-prc, "cannot start consumer dispatcher thread: %s", strerror(prc));
    }
    *out = c;
    return 0;
}

static void counters_read(herald_consumer *c, herald_consumer_counters *out)
{
    out->batches = atomic_load(&c->n_batches);
    out->delivered = atomic_load(&c->n_delivered);
    out->acked = atomic_load(&c->n_acked);
    out->retried = atomic_load(&c->n_retried);
    out->handler_failures = atomic_load(&c->n_failures);
}

void herald_consumer_stop(herald_consumer *c)
{
    herald_consumer_stop_counters(c, NULL);
}

void herald_consumer_stop_counters(herald_consumer *c, herald_consumer_counters *final_out)
{
    if (!c)
        return;
    join_all(c, true);
    if (final_out)
        counters_read(c, final_out);
    consumer_free(c);
}

void herald_consumer_counters_get(herald_consumer *c, herald_consumer_counters *out)
{
    /* Wait for the settlements already handed to the store (see "Counters" above): at most
     * about one group commit. Not on the writer thread, whose ops they are. */
    pthread_mutex_lock(&c->mu);
    int64_t target = c->n_submitted;
    bool may_wait = !in_tx_handler && herald__store_check_may_wait(c->s) == 0;
    while (may_wait && c->n_completed < target)
        pthread_cond_wait(&c->settle_cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
    counters_read(c, out);
}
