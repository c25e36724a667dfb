// SPDX-License-Identifier: MIT
/*
 * router.c - fan-out routing. A router holds routes (by type pattern and conditions) and
 * programmable routes, grouped by source queue; start() runs one effectively-once consumer per
 * source queue whose handler computes the destinations of each message and sends the original
 * body to each with herald_tx_send - so the copies, the processed-event record and the ack of
 * the source message commit together (a duplicate of the same event_id is skipped).
 * Matching: every route of the source queue whose type pattern matches (fnmatch(3) glob, e.g.
 * "content.*") and whose conditions all hold adds its destinations; destinations are unioned in
 * the order first seen. No destination: acked, counted, logged - the first message of each
 * (queue, type) in full, the later ones counted and logged as one summary line per
 * UNROUTED_SUMMARY_MS of store time (with the first message handled after the interval, and at
 * free), so a stream of unrouted messages (another `herald run` on the store with other routes)
 * cannot flood the log. At most MAX_UNROUTED_KINDS (queue, type) pairs are told apart; the rest
 * count as type "(other)".
 * Metrics: the routing consumers record handler metrics (has_metrics), so `herald metrics`
 * shows each source queue's routed messages by type and outcome, with latency.
 * Validation at add(): patterns, condition paths and JSON values, queues that exist, no route to
 * its own source, no cycle in the graph of queue -> queue edges (a cycle would copy forever).
 * Threads: add/start/free from one thread; handlers run on the store's writer thread. The
 * unrouted-log state (kinds, counts, next summary) is guarded by log_mu.
 */
#include "route/route.h"

#include <fnmatch.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <string.h>

#define MAX_DESTS 64 /* destinations of one message (and of one route) */
#define UNROUTED_SUMMARY_MS 60000 /* unrouted messages after the first: one line a minute */
#define MAX_UNROUTED_KINDS 64

typedef struct unrouted_kind {
    char queue[HERALD_QUEUE_NAME_MAX + 1];
    char type[HERALD_EVENT_TYPE_MAX + 1];
    int64_t n_since; /* since the last summary, not logged yet */
} unrouted_kind;

typedef struct cond {
    char *path;
    herald_cond_op op;
    json_t *value;
} cond;

typedef struct rule {
    char *type;
    char **to;
    size_t n_to;
    cond *when;
    size_t n_when;
    herald_route_fn fn; /* programmable: type/to/when unused */
    void *fn_ud;
} rule;

typedef struct source {
    herald_router *r;
    char *queue;
    rule *rules;
    size_t n_rules;
    herald_consumer *consumer;
} source;

struct herald_router {
    herald_store *s;
    source *sources;
    size_t n_sources;
    bool is_started;
    atomic_llong routed, unrouted;
    pthread_mutex_t log_mu;
    unrouted_kind kinds[MAX_UNROUTED_KINDS + 1]; /* log_mu; the last is "(other)" */
    size_t n_kinds;                              /* log_mu */
    int64_t n_unlogged;                          /* log_mu: sum of n_since */
    int64_t summary_due_ms;                      /* log_mu: store time of the next summary */
};

int herald_router_new(herald_store *s, herald_router **out)
{
    herald__err_clear();
    if (!s || !out)
        return herald__err(HERALD_EINVAL, "herald_router_new: NULL argument");
    herald_router *r = herald__xcalloc(1, sizeof *r);
    r->s = s;
    atomic_init(&r->routed, 0);
    atomic_init(&r->unrouted, 0);
    pthread_mutex_init(&r->log_mu, NULL);
    *out = r;
    return 0;
}

static source *source_of(herald_router *r, const char *queue, bool create)
{
    for (size_t i = 0; i < r->n_sources; i++)
        if (strcmp(r->sources[i].queue, queue) == 0)
            return &r->sources[i];
    if (!create)
        return NULL;
    r->sources = herald__xrealloc(r->sources, (r->n_sources + 1) * sizeof *r->sources);
    source *src = &r->sources[r->n_sources++];
    memset(src, 0, sizeof *src);
    src->r = r;
    src->queue = herald__xstrdup(queue);
    return src;
}

static void rule_free(rule *u)
{
    herald__free(u->type);
    for (size_t i = 0; i < u->n_to; i++)
        herald__free(u->to[i]);
    herald__free(u->to);
    for (size_t i = 0; i < u->n_when; i++) {
        herald__free(u->when[i].path);
        json_decref(u->when[i].value);
    }
    herald__free(u->when);
}

static bool pattern_valid(const char *p)
{
    size_t n = p ? strlen(p) : 0;
    if (n == 0 || n > HERALD_EVENT_TYPE_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == '*' || c == '?'))
            return false;
    }
    return true;
}

static bool path_valid(const char *p)
{
    if (!p)
        return false;
    if (strcmp(p, "type") == 0 || strcmp(p, "source") == 0 || strcmp(p, "correlation_id") == 0 ||
        strcmp(p, "event_id") == 0)
        return true;
    if (strncmp(p, "payload.", 8) != 0 || !p[8])
        return false;
    for (const char *c = p + 8; *c; c++)
        if (*c == '.' && (c[1] == '.' || c[1] == 0))
            return false;
    return true;
}

bool herald__route_closes_cycle(const herald__route_edge *edges, size_t n, const char *from,
                                const char *to)
{
    /* Queues to visit, starting at `to`; each queue enters at most once. */
    const char **seen = herald__xcalloc(n + 2, sizeof *seen);
    size_t n_seen = 0, next = 0;
    seen[n_seen++] = to;
    bool found = false;
    while (!found && next < n_seen) {
        const char *q = seen[next++];
        if (strcmp(q, from) == 0) {
            found = true;
            break;
        }
        for (size_t i = 0; i < n; i++) {
            if (strcmp(edges[i].from, q) != 0)
                continue;
            bool known = false;
            for (size_t k = 0; k < n_seen && !known; k++)
                known = strcmp(seen[k], edges[i].to) == 0;
            if (!known)
                seen[n_seen++] = edges[i].to;
        }
    }
    herald__free(seen);
    return found;
}

/* The router's edges so far (borrowed strings). */
static herald__route_edge *router_edges(const herald_router *r, size_t *n)
{
    size_t cap = 0;
    for (size_t i = 0; i < r->n_sources; i++)
        for (size_t k = 0; k < r->sources[i].n_rules; k++)
            cap += r->sources[i].rules[k].n_to;
    herald__route_edge *e = herald__xcalloc(cap + 1, sizeof *e);
    *n = 0;
    for (size_t i = 0; i < r->n_sources; i++)
        for (size_t k = 0; k < r->sources[i].n_rules; k++)
            for (size_t d = 0; d < r->sources[i].rules[k].n_to; d++)
                e[(*n)++] = (herald__route_edge){ r->sources[i].queue,
                                                  r->sources[i].rules[k].to[d] };
    return e;
}

int herald__route_pattern_check(const char *type)
{
    if (!pattern_valid(type))
        return herald__err(HERALD_EINVAL,
                           "route type pattern '%.100s' is invalid: lowercase dot notation, with "
                           "* and ? as wildcards",
                           type ? type : "(null)");
    return 0;
}

int herald__route_cond_check(const herald_route_cond *c)
{
    if (!path_valid(c->path))
        return herald__err(HERALD_EINVAL,
                           "route condition path '%.100s' is invalid: use payload.FIELD, "
                           "type, source, event_id or correlation_id",
                           c->path ? c->path : "(null)");
    if (c->op != HERALD_COND_EQ && c->op != HERALD_COND_NE && c->op != HERALD_COND_EXISTS)
        return herald__err(HERALD_EINVAL, "route condition on '%s': unknown operator %d",
                           c->path, (int)c->op);
    if (c->op != HERALD_COND_EXISTS) {
        json_error_t je;
        json_t *v = c->value_json ? json_loads(c->value_json, JSON_DECODE_ANY, &je) : NULL;
        if (!v)
            return herald__err(HERALD_EINVAL,
                               "route condition on '%s': value is not a JSON value", c->path);
        json_decref(v);
    }
    return 0;
}

int herald__route_check(const herald_route *route)
{
    if (!route->from)
        return herald__err(HERALD_EINVAL, "route has no source queue (from)");
    int rc = herald__route_pattern_check(route->type);
    if (rc < 0)
        return rc;
    if (route->n_to == 0 || !route->to)
        return herald__err(HERALD_EINVAL, "route from '%s' for '%s' has no destination (to)",
                           route->from, route->type);
    if (route->n_to > MAX_DESTS)
        return herald__err(HERALD_EINVAL, "route from '%s' has %zu destinations; at most %d",
                           route->from, route->n_to, MAX_DESTS);
    for (size_t i = 0; i < route->n_to; i++) {
        if (!route->to[i])
            return herald__err(HERALD_EINVAL, "route destination %zu is NULL", i);
        if (strcmp(route->to[i], route->from) == 0)
            return herald__err(HERALD_EINVAL,
                               "route from '%s' for '%s' sends to its own source queue (a cycle)",
                               route->from, route->type);
    }
    for (size_t i = 0; i < route->n_when; i++)
        if ((rc = herald__route_cond_check(&route->when[i])) < 0)
            return rc;
    return 0;
}

static int queue_exists(herald_store *s, const char *name, const char *role)
{
    herald_queue_info qi;
    int rc = herald_queue_get(s, name, &qi);
    if (rc == HERALD_ENOQUEUE)
        return herald__err(HERALD_ENOQUEUE, "route %s queue '%.80s' does not exist", role, name);
    return rc;
}

int herald_router_add(herald_router *r, const herald_route *route)
{
    herald__err_clear();
    if (!r || !route)
        return herald__err(HERALD_EINVAL, "herald_router_add: NULL argument");
    if (r->is_started)
        return herald__err(HERALD_EINVAL, "routes are added before herald_router_start");
    int rc = herald__route_check(route);
    if (rc == 0)
        rc = queue_exists(r->s, route->from, "source");
    for (size_t i = 0; rc == 0 && i < route->n_to; i++)
        rc = queue_exists(r->s, route->to[i], "destination");
    size_t n_edges = 0;
    herald__route_edge *edges = rc == 0 ? router_edges(r, &n_edges) : NULL;
    for (size_t i = 0; rc == 0 && i < route->n_to; i++)
        if (herald__route_closes_cycle(edges, n_edges, route->from, route->to[i]))
            rc = herald__err(HERALD_EINVAL,
                             "route from '%s' to '%s' closes a cycle of routes (messages would "
                             "be copied forever)",
                             route->from, route->to[i]);
    herald__free(edges);
    if (rc < 0)
        return rc;
    rule u = { 0 };
    u.when = herald__xcalloc(route->n_when + 1, sizeof *u.when);
    for (size_t i = 0; i < route->n_when; i++) { /* checked above */
        const herald_route_cond *c = &route->when[i];
        u.when[i].path = herald__xstrdup(c->path);
        u.when[i].op = c->op;
        u.when[i].value =
            c->op == HERALD_COND_EXISTS ? NULL : json_loads(c->value_json, JSON_DECODE_ANY, NULL);
    }
    u.n_when = route->n_when;
    u.type = herald__xstrdup(route->type);
    u.to = herald__xcalloc(route->n_to, sizeof *u.to);
    for (size_t i = 0; i < route->n_to; i++)
        u.to[u.n_to++] = herald__xstrdup(route->to[i]);
    source *src = source_of(r, route->from, true);
    src->rules = herald__xrealloc(src->rules, (src->n_rules + 1) * sizeof *src->rules);
    src->rules[src->n_rules++] = u;
    return 0;
}

int herald_router_add_fn(herald_router *r, const char *from, herald_route_fn fn, void *ud)
{
    herald__err_clear();
    if (!r || !from || !fn)
        return herald__err(HERALD_EINVAL, "herald_router_add_fn: NULL argument");
    if (r->is_started)
        return herald__err(HERALD_EINVAL, "routes are added before herald_router_start");
    int rc = queue_exists(r->s, from, "source");
    if (rc < 0)
        return rc;
    source *src = source_of(r, from, true);
    src->rules = herald__xrealloc(src->rules, (src->n_rules + 1) * sizeof *src->rules);
    rule *u = &src->rules[src->n_rules++];
    memset(u, 0, sizeof *u);
    u->fn = fn;
    u->fn_ud = ud;
    return 0;
}

/* ---- matching ---- */

static json_t *lookup(json_t *doc, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *cur = doc;
    char *save = NULL;
    for (char *seg = strtok_r(buf, ".", &save); seg && cur; seg = strtok_r(NULL, ".", &save))
        cur = json_is_object(cur) ? json_object_get(cur, seg) : NULL;
    return cur && !json_is_null(cur) ? cur : NULL;
}

static bool conds_hold(const rule *u, json_t *doc)
{
    for (size_t i = 0; i < u->n_when; i++) {
        const cond *c = &u->when[i];
        json_t *v = doc ? lookup(doc, c->path) : NULL;
        switch (c->op) {
        case HERALD_COND_EXISTS:
            if (!v)
                return false;
            break;
        case HERALD_COND_EQ:
            if (!v || !json_equal(v, c->value))
                return false;
            break;
        case HERALD_COND_NE:
            if (v && json_equal(v, c->value))
                return false;
            break;
        }
    }
    return true;
}

/* ---- unrouted messages: logged once per kind, then summarized ---- */

/* Logs one line with the counts of every kind since the last summary (log_mu held). */
static void unrouted_summary(herald_router *r)
{
    if (r->n_unlogged == 0)
        return;
    char counts[2048];
    size_t len = 0;
    counts[0] = 0;
    for (size_t i = 0; i < r->n_kinds; i++) {
        unrouted_kind *k = &r->kinds[i];
        if (k->n_since == 0)
            continue;
        int w = snprintf(counts + len, sizeof counts - len, "%s%s:%s=%lld", len ? " " : "",
                         k->queue, k->type, (long long)k->n_since);
        if (w > 0)
            len = len + (size_t)w < sizeof counts ? len + (size_t)w : sizeof counts - 1;
        k->n_since = 0;
    }
    char total[24];
    snprintf(total, sizeof total, "%lld", (long long)r->n_unlogged);
    herald__log(HERALD_LOG_WARN, "more messages no route matches: acked and counted", "count",
                total, "by_queue_type", counts, NULL);
    r->n_unlogged = 0;
}

/* Writer thread: message of (queue, type) matched no route (type NULL: not an envelope). */
static void unrouted_note(herald_router *r, const char *queue, const char *type,
                          const char *event_id, int64_t now_ms)
{
    const char *t = type ? type : "(not an envelope)";
    pthread_mutex_lock(&r->log_mu);
    unrouted_kind *k = NULL;
    for (size_t i = 0; i < r->n_kinds && !k; i++)
        if (strcmp(r->kinds[i].type, t) == 0 && strcmp(r->kinds[i].queue, queue) == 0)
            k = &r->kinds[i];
    bool is_first = !k;
    if (!k && r->n_kinds < MAX_UNROUTED_KINDS) {
        k = &r->kinds[r->n_kinds++];
        snprintf(k->queue, sizeof k->queue, "%s", queue);
        snprintf(k->type, sizeof k->type, "%s", t);
        k->n_since = 0;
    } else if (!k) { /* too many kinds: one bucket for the rest, summarized only */
        k = &r->kinds[MAX_UNROUTED_KINDS];
        if (!k->queue[0]) {
            snprintf(k->queue, sizeof k->queue, "%s", "(any)");
            snprintf(k->type, sizeof k->type, "%s", "(other)");
            r->n_kinds = MAX_UNROUTED_KINDS + 1;
        }
        is_first = false;
    }
    if (is_first) {
        herald__log(HERALD_LOG_WARN, "no route matches the message: acked and counted (more of "
                    "this type are summarized once a minute)", "queue", queue, "type", t,
                    "event_id", event_id ? event_id : "", NULL);
    } else {
        k->n_since++;
        if (r->n_unlogged++ == 0 && r->summary_due_ms <= now_ms)
            r->summary_due_ms = now_ms + UNROUTED_SUMMARY_MS;
    }
    pthread_mutex_unlock(&r->log_mu);
}

/* Writer thread, per handled message: logs the summary once its interval ended. */
static void unrouted_tick(herald_router *r, int64_t now_ms)
{
    pthread_mutex_lock(&r->log_mu);
    if (r->n_unlogged > 0 && now_ms >= r->summary_due_ms) {
        unrouted_summary(r);
        r->summary_due_ms = now_ms + UNROUTED_SUMMARY_MS;
    }
    pthread_mutex_unlock(&r->log_mu);
}

/* Adds q unless present; false when the message would have more than MAX_DESTS. */
static bool add_dest(const char **dests, size_t *n, const char *q)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp(dests[i], q) == 0)
            return true;
    if (*n == MAX_DESTS)
        return false;
    dests[(*n)++] = q;
    return true;
}

static int route_handler(herald_tx *tx, const herald_message *m, const herald_envelope *env,
                         void *ud)
{
    source *src = ud;
    unrouted_tick(src->r, herald__store_now(src->r->s));
    const char *dests[MAX_DESTS];
    size_t n = 0;
    json_t *doc = NULL;
    bool doc_loaded = false, fits = true;
    for (size_t i = 0; fits && i < src->n_rules; i++) {
        rule *u = &src->rules[i];
        if (u->fn) {
            const char *fd[MAX_DESTS];
            size_t fn_n = 0;
            int rc = u->fn(m, env, fd, MAX_DESTS, &fn_n, u->fn_ud);
            if (rc < 0) {
                json_decref(doc);
                herald_tx_set_error(tx, "programmable route failed");
                return rc;
            }
            for (size_t k = 0; fits && k < fn_n && k < MAX_DESTS; k++)
                if (fd[k] && strcmp(fd[k], src->queue) != 0)
                    fits = add_dest(dests, &n, fd[k]);
            continue;
        }
        if (!env || fnmatch(u->type, env->type, 0) != 0)
            continue;
        if (u->n_when > 0 && !doc_loaded) {
            doc = json_loadb((const char *)m->body, m->body_len, 0, NULL);
            doc_loaded = true;
        }
        if (conds_hold(u, doc))
            for (size_t k = 0; fits && k < u->n_to; k++)
                fits = add_dest(dests, &n, u->to[k]);
    }
    json_decref(doc);
    if (!fits) { /* never drop copies silently: fail, so it retries and ends in the DLQ */
        herald_tx_set_error(tx, "the routes give the message more than 64 destinations");
        return HERALD_FAIL_PERMANENT;
    }
    if (n == 0) {
        atomic_fetch_add(&src->r->unrouted, 1);
        unrouted_note(src->r, src->queue, env ? env->type : NULL, env ? env->event_id : NULL,
                      herald__store_now(src->r->s));
        return 0;
    }
    herald_msg copy = { .body = m->body, .body_len = m->body_len,
                        .content_type = m->content_type, .delay_s = HERALD_UNSET };
    for (size_t k = 0; k < n; k++) {
        int rc = herald_tx_send(tx, dests[k], &copy, NULL);
        if (rc < 0) {
            char err[300];
            snprintf(err, sizeof err, "routing to '%s' failed: %s", dests[k], herald_last_error());
            herald_tx_set_error(tx, err);
            return rc;
        }
    }
    atomic_fetch_add(&src->r->routed, 1);
    return 0;
}

int herald_router_start(herald_router *r)
{
    herald__err_clear();
    if (!r)
        return herald__err(HERALD_EINVAL, "herald_router_start: NULL router");
    if (r->is_started)
        return herald__err(HERALD_EINVAL, "router already started");
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < r->n_sources; i++) {
        source *src = &r->sources[i];
        herald_consumer_cfg cfg;
        herald_consumer_cfg_init(&cfg);
        const char *qs[] = { src->queue };
        cfg.queues = qs;
        cfg.n_queues = 1;
        cfg.tx_handler = route_handler;
        cfg.ud = src;
        cfg.max_batch_size = 100;
        cfg.max_batch_timeout_ms = 0;
        cfg.has_metrics = true; /* `herald metrics` shows what routers handled */
        rc = herald_consumer_start(r->s, &cfg, &src->consumer);
    }
    r->is_started = true;
    return rc;
}

void herald_router_counts(herald_router *r, int64_t *routed, int64_t *unrouted)
{
    if (routed)
        *routed = atomic_load(&r->routed);
    if (unrouted)
        *unrouted = atomic_load(&r->unrouted);
}

void herald_router_free(herald_router *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_sources; i++) {
        source *src = &r->sources[i];
        herald_consumer_stop(src->consumer);
        for (size_t k = 0; k < src->n_rules; k++)
            rule_free(&src->rules[k]);
        herald__free(src->rules);
        herald__free(src->queue);
    }
    pthread_mutex_lock(&r->log_mu);
    unrouted_summary(r); /* what the last interval counted */
    pthread_mutex_unlock(&r->log_mu);
    pthread_mutex_destroy(&r->log_mu);
    herald__free(r->sources);
    herald__free(r);
}
