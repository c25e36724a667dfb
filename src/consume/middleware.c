// SPDX-License-Identifier: MIT
/*
 * middleware.c - per-message handler chains: composable wrappers around a handler, and the
 * built-ins (dedup, structured logging, metrics, rate limiting).
 * A chain is an array of layers; herald_mw_next() advances the context's position, so each
 * layer runs the rest of the chain inside its own code (before/after, or not at all).
 * Built-in state is kept per chain, guarded by the chain's mutex where workers share it
 * (metrics table, token buckets). Metrics are flushed to the store by herald__chain_tick()
 * (called by the consumer after each batch, at most once a second) and by herald_chain_free().
 * The consumer turns outcomes into settlements (consumer.c): ok/duplicate -> ack (recording the
 * processed event when dedup asked for it), permanent -> dead letter, rate-limited/transient ->
 * retry with the policy's delay.
 */
#include "consume/consume.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define MAX_LAYERS 16

typedef struct layer {
    herald_mw_fn fn;
    void *state;
    void (*free_state)(void *state);
} layer;

struct herald_chain {
    herald_msg_handler_cb handler;
    void *ud;
    layer layers[MAX_LAYERS];
    int n_layers;
    pthread_mutex_t mu;
    /* metrics (guarded by mu) */
    herald_store *metrics_store;
    herald_metric *acc;
    size_t n_acc, cap_acc;
    int64_t last_flush_ns;
};

/* herald_msg_ctx is defined in consume.h (the consumer fills it). */

const char *herald_msg_ctx_queue(const herald_msg_ctx *c)
{
    return c->queue;
}

void herald_msg_ctx_set_error(herald_msg_ctx *c, const char *error)
{
    herald__utf8_copy(c->error, sizeof c->error, error); /* valid UTF-8, cut between characters */
}

int herald_mw_next(herald_msg_ctx *c, const herald_message *m, const herald_envelope *env)
{
    const herald_chain *ch = c->chain;
    int i = c->priv_pos++;
    if (i < ch->n_layers)
        return ch->layers[i].fn(c, m, env, ch->layers[i].state);
    return ch->handler(c, m, env, ch->ud);
}

int herald_chain_new(herald_msg_handler_cb handler, void *ud, herald_chain **out)
{
    herald__err_clear();
    if (!handler || !out)
        return herald__err(HERALD_EINVAL, "herald_chain_new: NULL argument");
    herald_chain *ch = herald__xcalloc(1, sizeof *ch);
    ch->handler = handler;
    ch->ud = ud;
    pthread_mutex_init(&ch->mu, NULL);
    *out = ch;
    return 0;
}

static int add_layer(herald_chain *ch, herald_mw_fn fn, void *state, void (*free_state)(void *))
{
    if (ch->n_layers == MAX_LAYERS) {
        if (free_state)
            free_state(state);
        return herald__err(HERALD_EINVAL, "a chain holds at most %d middleware", MAX_LAYERS);
    }
    ch->layers[ch->n_layers++] = (layer){ .fn = fn, .state = state, .free_state = free_state };
    return 0;
}

int herald_chain_use(herald_chain *ch, herald_mw_fn fn, void *state)
{
    herald__err_clear();
    if (!ch || !fn)
        return herald__err(HERALD_EINVAL, "herald_chain_use: NULL argument");
    return add_layer(ch, fn, state, NULL);
}

/* ---- dedup ---- */

static int dedup_mw(herald_msg_ctx *c, const herald_message *m, const herald_envelope *env,
                    void *state)
{
    herald_store *s = state;
    if (!env)
        return herald_mw_next(c, m, env);
    bool seen = false;
    if (herald__store_processed_check(s, c->queue, env->event_id, &seen) == 0 && seen) {
        c->is_duplicate = true;
        return 0;
    }
    int rc = herald_mw_next(c, m, env);
    if (rc == 0)
        c->record_processed = true;
    return rc;
}

int herald_chain_use_dedup(herald_chain *ch, herald_store *s)
{
    herald__err_clear();
    if (!ch || !s)
        return herald__err(HERALD_EINVAL, "herald_chain_use_dedup: NULL argument");
    return add_layer(ch, dedup_mw, s, NULL);
}

/* ---- outcome names ---- */

const char *herald__outcome_name(int rc, bool is_duplicate)
{
    if (is_duplicate)
        return "duplicate";
    switch (rc) {
    case 0:
        return "ok";
    case HERALD_FAIL_RATE_LIMITED:
        return "rate_limited";
    case HERALD_FAIL_PERMANENT:
        return "permanent";
    default:
        return "transient";
    }
}

/* ---- logging ---- */

static int logging_mw(herald_msg_ctx *c, const herald_message *m, const herald_envelope *env,
                      void *state)
{
    (void)state;
    int64_t t0 = herald__mono_ns();
    int rc = herald_mw_next(c, m, env);
    char dur[32], att[16];
    snprintf(dur, sizeof dur, "%.3f", (double)(herald__mono_ns() - t0) / 1e6);
    snprintf(att, sizeof att, "%d", m->attempts);
    herald__log_always("handled", "queue", c->queue, "event_id", env ? env->event_id : NULL,
                       "type", env ? env->type : NULL, "correlation_id",
                       env && env->correlation_id[0] ? env->correlation_id : NULL, "message_id",
                       m->id, "attempts", att, "duration_ms", dur, "outcome",
                       herald__outcome_name(rc, c->is_duplicate), "error",
                       rc < 0 ? c->error : NULL, NULL);
    return rc;
}

int herald_chain_use_logging(herald_chain *ch)
{
    herald__err_clear();
    if (!ch)
        return herald__err(HERALD_EINVAL, "herald_chain_use_logging: NULL chain");
    return add_layer(ch, logging_mw, NULL, NULL);
}

/* ---- metrics ---- */

static const double bucket_ms[HERALD_METRIC_BUCKETS - 1] = { 1,   2,   5,    10,   25,   50,
                                                             100, 250, 500, 1000, 2500, 5000 };

void herald__metric_observe(herald_metric *m, double ms)
{
    m->count++;
    m->sum_ms += ms;
    int b = 0;
    while (b < HERALD_METRIC_BUCKETS - 1 && ms > bucket_ms[b])
        b++;
    m->buckets[b]++;
}

static void metric_record(herald_chain *ch, const char *queue, const char *type,
                          const char *outcome, double ms)
{
    pthread_mutex_lock(&ch->mu);
    herald_metric *m = NULL;
    for (size_t i = 0; i < ch->n_acc && !m; i++)
        if (strcmp(ch->acc[i].queue, queue) == 0 && strcmp(ch->acc[i].type, type) == 0 &&
            strcmp(ch->acc[i].outcome, outcome) == 0)
            m = &ch->acc[i];
    if (!m) {
        if (ch->n_acc == ch->cap_acc) {
            ch->cap_acc = ch->cap_acc ? ch->cap_acc * 2 : 16;
            ch->acc = herald__xrealloc(ch->acc, ch->cap_acc * sizeof *ch->acc);
        }
        m = &ch->acc[ch->n_acc++];
        memset(m, 0, sizeof *m);
        snprintf(m->queue, sizeof m->queue, "%s", queue);
        snprintf(m->type, sizeof m->type, "%s", type);
        snprintf(m->outcome, sizeof m->outcome, "%s", outcome);
    }
    herald__metric_observe(m, ms);
    pthread_mutex_unlock(&ch->mu);
}

static int metrics_mw(herald_msg_ctx *c, const herald_message *m, const herald_envelope *env,
                      void *state)
{
    herald_chain *ch = state;
    int64_t t0 = herald__mono_ns();
    int rc = herald_mw_next(c, m, env);
    metric_record(ch, c->queue, env ? env->type : "", herald__outcome_name(rc, c->is_duplicate),
                  (double)(herald__mono_ns() - t0) / 1e6);
    return rc;
}

int herald_chain_use_metrics(herald_chain *ch, herald_store *s)
{
    herald__err_clear();
    if (!ch || !s)
        return herald__err(HERALD_EINVAL, "herald_chain_use_metrics: NULL argument");
    if (ch->metrics_store)
        return herald__err(HERALD_EINVAL, "the chain has metrics already");
    ch->metrics_store = s;
    return add_layer(ch, metrics_mw, ch, NULL);
}

typedef struct metrics_op {
    herald__op base;
    const herald_metric *m;
    size_t n;
} metrics_op;

static int metrics_run(herald_store *s, herald__op *op)
{
    metrics_op *o = (metrics_op *)op;
    return herald__store_metrics_add(s, o->m, o->n);
}

static void flush_metrics(herald_chain *ch)
{
    pthread_mutex_lock(&ch->mu);
    herald_metric *acc = ch->acc;
    size_t n = ch->n_acc;
    ch->acc = NULL;
    ch->n_acc = ch->cap_acc = 0;
    ch->last_flush_ns = herald__mono_ns();
    pthread_mutex_unlock(&ch->mu);
    if (n > 0) {
        metrics_op o = { .base = { .run = metrics_run }, .m = acc, .n = n };
        if (herald__store_exec(ch->metrics_store, &o.base) < 0)
            herald__log(HERALD_LOG_WARN, "could not write handler metrics", "error",
                        herald_last_error(), NULL);
    }
    herald__free(acc);
}

void herald__chain_tick(herald_chain *ch)
{
    if (!ch->metrics_store)
        return;
    pthread_mutex_lock(&ch->mu);
    bool due = ch->n_acc > 0 && herald__mono_ns() - ch->last_flush_ns >= 1000000000LL;
    pthread_mutex_unlock(&ch->mu);
    if (due)
        flush_metrics(ch);
}

int herald_metrics_list(herald_store *s, herald_metric **out, size_t *n_out)
{
    herald__err_clear();
    if (!s || !out || !n_out)
        return herald__err(HERALD_EINVAL, "herald_metrics_list: NULL argument");
    return herald__store_metrics_list(s, out, n_out);
}

double herald_metric_quantile(const herald_metric *m, double q)
{
    if (!m || m->count == 0)
        return 0;
    double target = q * (double)m->count;
    int64_t seen = 0;
    for (int b = 0; b < HERALD_METRIC_BUCKETS; b++) {
        seen += m->buckets[b];
        if ((double)seen >= target)
            return b < HERALD_METRIC_BUCKETS - 1 ? bucket_ms[b] : INFINITY;
    }
    return INFINITY;
}

/* ---- rate limiting ----
 * A token bucket per key, refilled on the store's clock (herald__store_now of the consumer's
 * store), so a test with an injected clock decides when tokens come back. */

typedef struct bucket {
    char key[192];
    double tokens;
    int64_t last_ms; /* store time tokens were last added */
} bucket;

typedef struct rate_state {
    char path[128];
    bool has_path;
    double rate, burst;
    pthread_mutex_t mu;
    bucket *b;
    size_t n, cap;
} rate_state;

static void rate_free(void *p)
{
    rate_state *r = p;
    pthread_mutex_destroy(&r->mu);
    herald__free(r->b);
    herald__free(r);
}

/* The value at an envelope path as text ("" when missing). */
static void key_of(const rate_state *r, const herald_envelope *env, char *out, size_t cap)
{
    out[0] = 0;
    if (!r->has_path || !env)
        return;
    if (strcmp(r->path, "type") == 0) {
        snprintf(out, cap, "%s", env->type);
    } else if (strcmp(r->path, "source") == 0) {
        snprintf(out, cap, "%s", env->source);
    } else if (strcmp(r->path, "correlation_id") == 0) {
        snprintf(out, cap, "%s", env->correlation_id);
    } else if (strncmp(r->path, "payload.", 8) == 0) {
        herald__json_path_text(env->payload_json, env->payload_len, r->path + 8, out, cap);
    }
}

static int rate_mw(herald_msg_ctx *c, const herald_message *m, const herald_envelope *env,
                   void *state)
{
    rate_state *r = state;
    char key[192];
    key_of(r, env, key, sizeof key);
    int64_t now = herald__store_now(c->store); /* the store's clock: a test's fake clock */
    pthread_mutex_lock(&r->mu);
    bucket *b = NULL;
    for (size_t i = 0; i < r->n && !b; i++)
        if (strcmp(r->b[i].key, key) == 0)
            b = &r->b[i];
    if (!b) {
        if (r->n == r->cap) {
            r->cap = r->cap ? r->cap * 2 : 16;
            r->b = herald__xrealloc(r->b, r->cap * sizeof *r->b);
        }
        b = &r->b[r->n++];
        snprintf(b->key, sizeof b->key, "%s", key);
        b->tokens = r->burst;
        b->last_ms = now;
    }
    if (now > b->last_ms) { /* a wall clock set back adds nothing until it passes last_ms */
        b->tokens += (double)(now - b->last_ms) / 1e3 * r->rate;
        b->last_ms = now;
    }
    if (b->tokens > r->burst)
        b->tokens = r->burst;
    bool ok = b->tokens >= 1.0;
    if (ok)
        b->tokens -= 1.0;
    pthread_mutex_unlock(&r->mu);
    if (!ok) {
        char err[600]; /* set_error cuts it on a character boundary */
        snprintf(err, sizeof err, "rate limited (key '%s')", key);
        herald_msg_ctx_set_error(c, err);
        return HERALD_FAIL_RATE_LIMITED;
    }
    return herald_mw_next(c, m, env);
}

int herald_chain_use_rate_limit(herald_chain *ch, const char *key_path, double rate_per_s,
                                double burst)
{
    herald__err_clear();
    if (!ch)
        return herald__err(HERALD_EINVAL, "herald_chain_use_rate_limit: NULL chain");
    if (!(rate_per_s > 0) || !(burst >= 1))
        return herald__err(HERALD_EINVAL, "rate limit needs rate_per_s > 0 and burst >= 1");
    if (key_path && strcmp(key_path, "type") != 0 && strcmp(key_path, "source") != 0 &&
        strcmp(key_path, "correlation_id") != 0 &&
        (strncmp(key_path, "payload.", 8) != 0 || !key_path[8] || strlen(key_path) >= 128))
        return herald__err(HERALD_EINVAL,
                           "rate limit key '%.100s' must be payload.FIELD, type, source or "
                           "correlation_id",
                           key_path);
    rate_state *r = herald__xcalloc(1, sizeof *r);
    if (key_path) {
        snprintf(r->path, sizeof r->path, "%s", key_path);
        r->has_path = true;
    }
    r->rate = rate_per_s;
    r->burst = burst;
    pthread_mutex_init(&r->mu, NULL);
    return add_layer(ch, rate_mw, r, rate_free);
}

void herald_chain_free(herald_chain *ch)
{
    if (!ch)
        return;
    if (ch->metrics_store)
        flush_metrics(ch);
    for (int i = 0; i < ch->n_layers; i++)
        if (ch->layers[i].free_state)
            ch->layers[i].free_state(ch->layers[i].state);
    herald__free(ch->acc);
    pthread_mutex_destroy(&ch->mu);
    herald__free(ch);
}
