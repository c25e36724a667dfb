// SPDX-License-Identifier: MIT
/*
 * config.c - herald.jsonc: parse (jsonc.c keeps every value's line), check everything, then
 * apply, so a bad file changes nothing. Shape: see herald.h.
 * Checking: known keys only (an unknown key is usually a typo that would silently do nothing),
 * value types and ranges, queue names, route type patterns and conditions, that every queue a
 * route or topic names is configured here or already exists in the store, no route cycles,
 * and the catalog file (loaded here, relative to the config file's directory).
 * The configuration describes the system, not one process: applying it (herald_config_apply;
 * herald_runtime_start applies before it starts the routers) writes what it declares to the
 * store, in ONE writer op (one transaction: all of it or nothing):
 *   queues   created when missing (defaults as herald_queue_create), else the settings the file
 *            gives are updated
 *   topics   subscriptions added (existing ones kept)
 *   catalog  a new stored version when its canonical text or mode differs from the version in
 *            force; the changes are judged by catalog_evolve.c and a breaking change refuses
 *            the whole apply (HERALD_ECATALOG naming each one) unless HERALD_CONFIG_FORCE.
 *            "In use" for a removed type, decided inside the op: messages of the type in any
 *            queue (dead letters included), pending outbox rows, or a route of this file whose
 *            type is exactly it. A file without "catalog" leaves the stored one in force.
 * Routes are not stored: they run in the process that started the runtime.
 * Ownership: a config owns its JSONC document; names in it point into the document.
 * Threads: the apply op runs on the store's writer thread; everything else on the caller's.
 */
#include "runtime/runtime.h"

#include <jansson.h>

#include "core/catalog_evolve.h"
#include <stdarg.h>
#include <libgen.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

typedef struct cfg_queue {
    const char *name;
    herald_queue_settings st;
    const json_t *node;
} cfg_queue;

typedef struct cfg_route {
    herald_route r;
    const char **to;
    herald_route_cond *when;
    char **cond_values; /* owned JSON texts; n_cond_slots of them, NULL where unused */
    size_t n_cond_slots;
    const json_t *node;
} cfg_route;

typedef struct cfg_topic {
    const char *name;
    const char **queues;
    size_t n;
    const json_t *node;
} cfg_topic;

typedef struct config {
    const char *path;
    herald__jsonc *doc;
    herald_catalog *catalog;
    herald_catalog_mode catalog_mode;
    char *catalog_text; /* canonical (catalog_evolve.c); owned */
    char *catalog_file; /* the catalog's path as resolved; owned */
    cfg_queue *queues;
    size_t n_queues;
    cfg_topic *topics;
    size_t n_topics;
    cfg_route *routes;
    size_t n_routes;
} config;

struct herald_runtime {
    herald_store *s;
    herald_router *router;
};

static int at(const config *c, const json_t *v, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int at(const config *c, const json_t *v, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = herald__jsonc_errv(c->doc, v, fmt, ap);
    va_end(ap);
    return rc;
}

/* The error a lower layer just recorded, restated at a node's line. */
static int at_detail(const config *c, const json_t *v, const char *where)
{
    char detail[400];
    herald__err_copy(detail, sizeof detail);
    return at(c, v, "%s: %s", where, detail);
}

static void config_free(config *c)
{
    for (size_t i = 0; i < c->n_routes; i++) {
        herald__free(c->routes[i].to);
        herald__free(c->routes[i].when);
        for (size_t k = 0; k < c->routes[i].n_cond_slots; k++) /* a failed parse_when too */
            herald__free(c->routes[i].cond_values[k]);
        herald__free(c->routes[i].cond_values);
    }
    herald__free(c->routes);
    for (size_t i = 0; i < c->n_topics; i++)
        herald__free(c->topics[i].queues);
    herald__free(c->topics);
    herald__free(c->queues);
    herald_catalog_free(c->catalog);
    herald__free(c->catalog_text);
    herald__free(c->catalog_file);
    herald__jsonc_free(c->doc);
    memset(c, 0, sizeof *c);
}

/* Unknown keys are errors: `allowed` is a NULL-terminated list. */
static int only_keys(const config *c, const json_t *obj, const char *where,
                     const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        bool ok = false;
        for (int i = 0; allowed[i] && !ok; i++)
            ok = strcmp(key, allowed[i]) == 0;
        if (!ok)
            return at(c, v, "unknown key '%s' in %s", key, where);
    }
    return 0;
}

static int get_int(const config *c, const json_t *obj, const char *key, const char *where,
                   int64_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    if (!json_is_integer(v))
        return at(c, v, "%s.%s must be an integer", where, key);
    *out = json_integer_value(v);
    if (*out < 0)
        return at(c, v, "%s.%s must not be negative", where, key);
    return 0;
}

static int parse_queues(config *c, const json_t *arr)
{
    /* "retention" is accepted for message_retention_period (the CLI's --retention). */
    static const char *const keys[] = { "name",           "max_retries",
                                        "retry_delay",    "dead_letter_queue",
                                        "delivery_delay", "message_retention_period",
                                        "retention",      "max_message_bytes", NULL };
    if (!json_is_array(arr))
        return at(c, arr, "\"queues\" must be an array of queue objects");
    c->queues = herald__xcalloc(json_array_size(arr) + 1, sizeof *c->queues);
    size_t i;
    json_t *q;
    json_array_foreach((json_t *)arr, i, q)
    {
        char where[32];
        snprintf(where, sizeof where, "queues[%zu]", i);
        if (!json_is_object(q))
            return at(c, q, "%s must be an object", where);
        int rc = only_keys(c, q, where, keys);
        if (rc < 0)
            return rc;
        json_t *name = json_object_get(q, "name");
        if (!json_is_string(name))
            return at(c, name ? name : q, "%s.name must be a string", where);
        if (!herald__name_valid(json_string_value(name)))
            return at(c, name, "%s.name '%s' is not a valid queue name", where,
                      json_string_value(name));
        for (size_t k = 0; k < c->n_queues; k++)
            if (strcmp(c->queues[k].name, json_string_value(name)) == 0)
                return at(c, name, "queue '%s' is configured twice", json_string_value(name));
        cfg_queue *cq = &c->queues[c->n_queues++];
        cq->name = json_string_value(name);
        cq->node = q;
        herald_queue_settings_init(&cq->st);
        if ((rc = get_int(c, q, "max_retries", where, &cq->st.max_retries)) < 0 ||
            (rc = get_int(c, q, "retry_delay", where, &cq->st.retry_delay_s)) < 0 ||
            (rc = get_int(c, q, "delivery_delay", where, &cq->st.delivery_delay_s)) < 0 ||
            (rc = get_int(c, q, "message_retention_period", where,
                          &cq->st.message_retention_period_s)) < 0 ||
            (rc = get_int(c, q, "retention", where, &cq->st.message_retention_period_s)) < 0 ||
            (rc = get_int(c, q, "max_message_bytes", where, &cq->st.max_message_bytes)) < 0)
            return rc;
        if (json_object_get(q, "retention") && json_object_get(q, "message_retention_period"))
            return at(c, json_object_get(q, "retention"),
                      "%s: give message_retention_period or its alias retention, not both",
                      where);
        json_t *dlq = json_object_get(q, "dead_letter_queue");
        if (dlq && !json_is_string(dlq))
            return at(c, dlq, "%s.dead_letter_queue must be a string", where);
        if (dlq)
            cq->st.dead_letter_queue = json_string_value(dlq);
    }
    return 0;
}

static int string_list(const config *c, const json_t *arr, const char *where, const char ***out,
                       size_t *n)
{
    if (!json_is_array(arr) || json_array_size(arr) == 0)
        return at(c, arr, "%s must be a non-empty array of queue names", where);
    *out = herald__xcalloc(json_array_size(arr), sizeof **out);
    *n = 0;
    size_t i;
    json_t *v;
    json_array_foreach((json_t *)arr, i, v)
    {
        if (!json_is_string(v))
            return at(c, v, "%s[%zu] must be a queue name", where, i);
        (*out)[(*n)++] = json_string_value(v);
    }
    return 0;
}

static int parse_topics(config *c, const json_t *obj)
{
    if (!json_is_object(obj))
        return at(c, obj, "\"topics\" must be an object: topic name -> array of queues");
    c->topics = herald__xcalloc(json_object_size(obj) + 1, sizeof *c->topics);
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        if (!herald__name_valid(key))
            return at(c, v, "topic name '%s' is invalid", key);
        cfg_topic *t = &c->topics[c->n_topics++];
        t->name = key;
        t->node = v;
        char where[100];
        snprintf(where, sizeof where, "topics.%s", key);
        int rc = string_list(c, v, where, &t->queues, &t->n);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int parse_when(config *c, cfg_route *cr, const json_t *when, const char *where)
{
    if (!json_is_object(when))
        return at(c, when, "%s.when must be an object: path -> { eq | ne | exists }", where);
    size_t n = json_object_size(when);
    cr->when = herald__xcalloc(n + 1, sizeof *cr->when);
    cr->cond_values = herald__xcalloc(n + 1, sizeof *cr->cond_values);
    cr->n_cond_slots = n;
    const char *path;
    json_t *spec;
    json_object_foreach((json_t *)when, path, spec)
    {
        if (!json_is_object(spec) || json_object_size(spec) != 1)
            return at(c, spec, "%s.when.%s must be one of {\"eq\": v}, {\"ne\": v}, "
                               "{\"exists\": true}",
                      where, path);
        const char *op;
        json_t *val;
        json_object_foreach(spec, op, val)
        {
            herald_route_cond *rc = &cr->when[cr->r.n_when];
            rc->path = path;
            if (strcmp(op, "eq") == 0 || strcmp(op, "ne") == 0) {
                rc->op = op[0] == 'e' ? HERALD_COND_EQ : HERALD_COND_NE;
                char *text = json_dumps(val, JSON_ENCODE_ANY | JSON_COMPACT);
                cr->cond_values[cr->r.n_when] = herald__xstrdup(text ? text : "null");
                free(text); /* lint:ok jansson allocates with malloc */
                rc->value_json = cr->cond_values[cr->r.n_when];
            } else if (strcmp(op, "exists") == 0) {
                if (!json_is_true(val))
                    return at(c, spec, "%s.when.%s.exists must be true", where, path);
                rc->op = HERALD_COND_EXISTS;
            } else {
                return at(c, spec, "%s.when.%s: unknown operator '%s' (eq, ne, exists)", where,
                          path, op);
            }
            if (herald__route_cond_check(rc) < 0)
                return at_detail(c, spec, where);
            cr->r.n_when++;
        }
    }
    cr->r.when = cr->when;
    return 0;
}

static int parse_routes(config *c, const json_t *arr)
{
    static const char *const keys[] = { "from", "type", "to", "when", NULL };
    if (!json_is_array(arr))
        return at(c, arr, "\"routes\" must be an array of route objects");
    c->routes = herald__xcalloc(json_array_size(arr) + 1, sizeof *c->routes);
    size_t i;
    json_t *r;
    json_array_foreach((json_t *)arr, i, r)
    {
        char where[32];
        snprintf(where, sizeof where, "routes[%zu]", i);
        if (!json_is_object(r))
            return at(c, r, "%s must be an object", where);
        int rc = only_keys(c, r, where, keys);
        if (rc < 0)
            return rc;
        cfg_route *cr = &c->routes[c->n_routes++];
        cr->node = r;
        json_t *from = json_object_get(r, "from"), *type = json_object_get(r, "type");
        if (!json_is_string(from))
            return at(c, from ? from : r, "%s.from must be a queue name", where);
        if (!json_is_string(type))
            return at(c, type ? type : r, "%s.type must be an event type or pattern", where);
        cr->r.from = json_string_value(from);
        cr->r.type = json_string_value(type);
        if ((rc = herald__route_pattern_check(cr->r.type)) < 0)
            return at_detail(c, type, where);
        json_t *to = json_object_get(r, "to");
        char w2[48];
        snprintf(w2, sizeof w2, "%s.to", where);
        if ((rc = string_list(c, to ? to : r, w2, &cr->to, &cr->r.n_to)) < 0)
            return rc;
        cr->r.to = cr->to;
        json_t *when = json_object_get(r, "when");
        if (when && (rc = parse_when(c, cr, when, where)) < 0)
            return rc;
        if ((rc = herald__route_check(&cr->r)) < 0)
            return at_detail(c, to ? to : r, where);
    }
    return 0;
}

static bool configured(const config *c, const char *q)
{
    for (size_t i = 0; i < c->n_queues; i++)
        if (strcmp(c->queues[i].name, q) == 0)
            return true;
    return false;
}

static int queue_known(const config *c, herald_store *s, const json_t *node, const char *q,
                       const char *role)
{
    if (configured(c, q))
        return 0;
    herald_queue_info qi;
    if (!s || herald_queue_get(s, q, &qi) == 0) /* no store: cannot tell, assume it exists */
        return 0;
    return at(c, node, "%s names queue '%s', which is neither configured in \"queues\" nor in "
                       "the store",
              role, q);
}

static int cross_check(config *c, herald_store *s)
{
    int rc;
    for (size_t i = 0; i < c->n_topics; i++)
        for (size_t k = 0; k < c->topics[i].n; k++)
            if ((rc = queue_known(c, s, c->topics[i].node, c->topics[i].queues[k], "a topic")) < 0)
                return rc;
    /* Edges are added route by route, as herald_router_add will when the file is applied. */
    size_t n_edges = 0, cap = 0;
    for (size_t i = 0; i < c->n_routes; i++)
        cap += c->routes[i].r.n_to;
    herald__route_edge *edges = herald__xcalloc(cap + 1, sizeof *edges);
    rc = 0;
    for (size_t i = 0; rc == 0 && i < c->n_routes; i++) {
        const cfg_route *r = &c->routes[i];
        rc = queue_known(c, s, r->node, r->r.from, "a route's \"from\"");
        for (size_t k = 0; rc == 0 && k < r->r.n_to; k++) {
            rc = queue_known(c, s, r->node, r->r.to[k], "a route's \"to\"");
            if (rc == 0 && herald__route_closes_cycle(edges, n_edges, r->r.from, r->r.to[k]))
                rc = at(c, r->node,
                        "route from '%s' to '%s' closes a cycle of routes (messages would be "
                        "copied forever)",
                        r->r.from, r->r.to[k]);
            edges[n_edges++] = (herald__route_edge){ r->r.from, r->r.to[k] };
        }
    }
    herald__free(edges);
    return rc;
}

static int load(const char *path, herald_store *s, config *c)
{
    memset(c, 0, sizeof *c);
    c->path = path;
    int rc = herald__jsonc_load(path, &c->doc);
    if (rc < 0)
        return rc;
    json_t *root = herald__jsonc_root(c->doc);
    static const char *const keys[] = { "catalog", "queues", "topics", "routes", NULL };
    if (!json_is_object(root))
        return at(c, root, "the configuration must be a JSON object");
    if ((rc = only_keys(c, root, "the configuration", keys)) < 0)
        return rc;
    json_t *v;
    if ((v = json_object_get(root, "queues")) && (rc = parse_queues(c, v)) < 0)
        return rc;
    if ((v = json_object_get(root, "topics")) && (rc = parse_topics(c, v)) < 0)
        return rc;
    if ((v = json_object_get(root, "routes")) && (rc = parse_routes(c, v)) < 0)
        return rc;
    if ((v = json_object_get(root, "catalog"))) {
        static const char *const ckeys[] = { "file", "mode", NULL };
        if (!json_is_object(v))
            return at(c, v, "\"catalog\" must be an object {\"file\", \"mode\"}");
        if ((rc = only_keys(c, v, "catalog", ckeys)) < 0)
            return rc;
        json_t *file = json_object_get(v, "file"), *mode = json_object_get(v, "mode");
        if (!json_is_string(file))
            return at(c, file ? file : v, "catalog.file must be a path");
        c->catalog_mode = HERALD_CATALOG_STRICT;
        if (mode && (!json_is_string(mode) || (strcmp(json_string_value(mode), "strict") != 0 &&
                                               strcmp(json_string_value(mode), "warn") != 0)))
            return at(c, mode, "catalog.mode must be \"strict\" or \"warn\"");
        if (mode && strcmp(json_string_value(mode), "warn") == 0)
            c->catalog_mode = HERALD_CATALOG_WARN;
        char full[4096];
        const char *f = json_string_value(file);
        if (f[0] == '/') {
            snprintf(full, sizeof full, "%s", f);
        } else {
            char dir[4096];
            snprintf(dir, sizeof dir, "%s", path);
            snprintf(full, sizeof full, "%s/%s", dirname(dir), f);
        }
        c->catalog_file = herald__xstrdup(full);
        if ((rc = herald__catalog_canonical_file(full, &c->catalog_text, &c->catalog)) < 0)
            return at_detail(c, file, "catalog");
    }
    /* Settings ranges: the queue layer's own checks, reported at the queue's line. */
    for (size_t i = 0; i < c->n_queues; i++) {
        herald_queue_settings st = c->queues[i].st;
        rc = herald__queue_check_settings(c->queues[i].name, &st);
        if (rc < 0) {
            char where[300];
            snprintf(where, sizeof where, "queue '%s'", c->queues[i].name);
            return at_detail(c, c->queues[i].node, where);
        }
    }
    return cross_check(c, s);
}

int herald_config_check(herald_store *s, const char *config_path)
{
    herald__err_clear();
    if (!config_path)
        return herald__err(HERALD_EINVAL, "herald_config_check: NULL path");
    config c;
    int rc = load(config_path, s, &c);
    config_free(&c);
    return rc;
}

/* ---- applying to the store: one writer op ---- */

typedef struct apply_op {
    herald__op base;
    config *c;
    unsigned flags;
    bool is_dry_done; /* a dry run got to its end: its rollback is not a failure */
    char err[512];    /* the failure's whole text (an op's own err keeps 255 bytes) */
    json_t *report;   /* built on the writer thread; the caller's after exec */
} apply_op;

/* The savepoint of a dry run is rolled back by failing the op with this code. */
#define DRY_RUN_RC HERALD_ECLOSED

/* What herald_queue_create would fill in for settings the file does not give. */
static herald_queue_settings with_defaults(herald_queue_settings st)
{
    if (st.delivery_delay_s == HERALD_UNSET)
        st.delivery_delay_s = 0;
    if (st.message_retention_period_s == HERALD_UNSET)
        st.message_retention_period_s = HERALD_DEFAULT_RETENTION_S;
    if (st.max_message_bytes == HERALD_UNSET)
        st.max_message_bytes = HERALD_MAX_MESSAGE_BYTES;
    if (st.max_retries == HERALD_UNSET)
        st.max_retries = HERALD_DEFAULT_MAX_RETRIES;
    if (st.retry_delay_s == HERALD_UNSET)
        st.retry_delay_s = 0;
    if (!st.dead_letter_queue)
        st.dead_letter_queue = "";
    return st;
}

static int apply_queues(herald_store *s, const config *c, json_t *report)
{
    json_t *created = json_array(), *updated = json_array();
    json_object_set_new(report, "queues_created", created);
    json_object_set_new(report, "queues_updated", updated);
    for (size_t i = 0; i < c->n_queues; i++) {
        const cfg_queue *q = &c->queues[i];
        int rc = herald__store_queue_update(s, q->name, &q->st); /* the settings it gives */
        if (rc == 0) {
            json_array_append_new(updated, json_string(q->name));
            continue;
        }
        if (rc != HERALD_ENOQUEUE)
            return rc;
        herald__err_clear();
        char uuid[HERALD_ID_SIZE];
        herald__uuid7_at(herald__store_now(s), uuid);
        herald_queue_settings st = with_defaults(q->st);
        if ((rc = herald__store_queue_create(s, q->name, &st, uuid)) < 0)
            return rc;
        json_array_append_new(created, json_string(q->name));
    }
    return 0;
}

static int apply_topics(herald_store *s, const config *c, json_t *report)
{
    json_t *topics = json_object();
    json_object_set_new(report, "topics", topics);
    for (size_t i = 0; i < c->n_topics; i++) {
        json_t *subs = json_array();
        json_object_set_new(topics, c->topics[i].name, subs);
        for (size_t k = 0; k < c->topics[i].n; k++) {
            int rc = herald__store_topic_subscribe(s, c->topics[i].name, c->topics[i].queues[k]);
            if (rc < 0)
                return rc;
            json_array_append_new(subs, json_string(c->topics[i].queues[k]));
        }
    }
    return 0;
}

static const char *mode_name(herald_catalog_mode m)
{
    return m == HERALD_CATALOG_WARN ? "warn" : "strict";
}

/* Marks each removed type that is still in use breaking, saying where it is used. */
static int judge_removed_types(herald_store *s, const config *c, json_t *changes)
{
    size_t i;
    json_t *ch;
    json_array_foreach(changes, i, ch)
    {
        if (strcmp(json_string_value(json_object_get(ch, "change")), "type_removed") != 0)
            continue;
        const char *type = json_string_value(json_object_get(ch, "type"));
        int64_t n_msgs = 0, n_outbox = 0;
        int rc = herald__store_catalog_in_use(s, type, &n_msgs, &n_outbox);
        if (rc < 0)
            return rc;
        char why[300] = "";
        size_t len = 0;
        if (n_msgs > 0)
            len += (size_t)snprintf(why + len, sizeof why - len, "%lld message%s waiting in "
                                    "queues", (long long)n_msgs, n_msgs == 1 ? "" : "s");
        if (n_outbox > 0 && len < sizeof why)
            len += (size_t)snprintf(why + len, sizeof why - len, "%s%lld outbox row%s pending",
                                    len ? ", " : "", (long long)n_outbox,
                                    n_outbox == 1 ? "" : "s");
        for (size_t r = 0; r < c->n_routes && len < sizeof why; r++)
            if (strcmp(c->routes[r].r.type, type) == 0)
                len += (size_t)snprintf(why + len, sizeof why - len,
                                        "%sthe route from '%s' names it", len ? ", " : "",
                                        c->routes[r].r.from);
        if (why[0])
            herald__catalog_mark_in_use(changes, type, why);
    }
    return 0;
}

static int apply_catalog(herald_store *s, const config *c, unsigned flags, json_t *report)
{
    if (!c->catalog_text) {
        json_object_set_new(report, "catalog", json_null());
        return 0;
    }
    herald__catalog_row cur = { 0 };
    int rc = herald__store_catalog_get(s, &cur);
    if (rc < 0)
        return rc;
    json_t *cat = json_pack("{s:s,s:s,s:I}", "file", c->catalog_file, "mode",
                            mode_name(c->catalog_mode), "previous_version",
                            (json_int_t)cur.version);
    json_object_set_new(report, "catalog", cat);
    bool same = cur.version > 0 && strcmp(cur.catalog, c->catalog_text) == 0 &&
                cur.mode == c->catalog_mode;
    json_t *changes = NULL;
    if (!same)
        rc = herald__catalog_diff(cur.version > 0 ? cur.catalog : NULL, c->catalog_text,
                                  &changes);
    if (rc == 0 && changes && cur.version > 0 && cur.mode != c->catalog_mode) {
        char text[80];
        snprintf(text, sizeof text, "mode changed from %s to %s", mode_name(cur.mode),
                 mode_name(c->catalog_mode));
        json_array_append_new(changes, json_pack("{s:s,s:s,s:s,s:b,s:s}", "change",
                                                 "mode_changed", "from", mode_name(cur.mode),
                                                 "to", mode_name(c->catalog_mode), "breaking",
                                                 0, "text", text));
    }
    if (rc == 0 && changes)
        rc = judge_removed_types(s, c, changes);
    size_t n_breaking = changes ? herald__catalog_n_breaking(changes) : 0;
    bool is_forced = n_breaking > 0 && (flags & HERALD_CONFIG_FORCE);
    json_object_set_new(cat, "changed", json_boolean(!same));
    json_object_set_new(cat, "changes", changes ? json_incref(changes) : json_array());
    json_object_set_new(cat, "breaking", json_integer((json_int_t)n_breaking));
    json_object_set_new(cat, "forced", json_boolean(is_forced));
    int64_t version = cur.version;
    if (rc == 0 && n_breaking > 0 && !(flags & (HERALD_CONFIG_FORCE | HERALD_CONFIG_DRY_RUN))) {
        char list[300]; /* with the rest, within the 511 bytes of an error text */
        herald__catalog_breaking_text(changes, list, sizeof list);
        rc = herald__err(HERALD_ECATALOG,
                         "%.120s: %zu catalog change%s break%s compatibility, so nothing was "
                         "applied (--force applies it anyway): %s",
                         c->catalog_file, n_breaking, n_breaking == 1 ? "" : "s",
                         n_breaking == 1 ? "s" : "", list);
    } else if (rc == 0 && !same) {
        char *changes_text = json_dumps(changes, JSON_COMPACT | JSON_PRESERVE_ORDER);
        herald__catalog_row row = { .mode = c->catalog_mode, .is_forced = is_forced,
                                    .catalog = c->catalog_text, .changes = changes_text,
                                    .source = c->catalog_file };
        rc = changes_text ? herald__store_catalog_put(s, &row, &version)
                          : herald__err(HERALD_ENOMEM, "catalog changes: out of memory");
        free(changes_text); /* lint:ok jansson allocates with malloc */
    }
    json_object_set_new(cat, "version", json_integer((json_int_t)version));
    json_decref(changes);
    herald__catalog_row_deinit(&cur);
    return rc;
}

static int apply_run(herald_store *s, herald__op *op)
{
    apply_op *a = (apply_op *)op;
    a->report = json_pack("{s:s,s:b}", "config", a->c->path, "dry_run",
                          (a->flags & HERALD_CONFIG_DRY_RUN) != 0);
    int rc = apply_queues(s, a->c, a->report);
    if (rc == 0)
        rc = apply_topics(s, a->c, a->report);
    if (rc == 0)
        rc = apply_catalog(s, a->c, a->flags, a->report);
    if (rc == 0 && (a->flags & HERALD_CONFIG_DRY_RUN)) {
        a->is_dry_done = true;
        return herald__err(DRY_RUN_RC, "dry run: rolled back");
    }
    if (rc < 0)
        herald__err_copy(a->err, sizeof a->err);
    return rc;
}

/* Writes what c declares to the store in one op; *report (may be NULL) as herald.h says. */
static int apply_config(herald_store *s, config *c, unsigned flags, json_t **report)
{
    apply_op a = { .base = { .run = apply_run, .wakes = true }, .c = c, .flags = flags };
    int rc = herald__store_exec(s, &a.base);
    if (a.is_dry_done && rc == DRY_RUN_RC) {
        herald__err_clear();
        rc = 0;
    } else if (rc < 0 && a.err[0]) {
        herald__err(rc, "%s", a.err);
    }
    if (rc == 0 && report)
        *report = a.report;
    else
        json_decref(a.report);
    return rc;
}

int herald_config_apply(herald_store *s, const char *config_path, unsigned flags,
                        char **report_json)
{
    herald__err_clear();
    if (!s || !config_path)
        return herald__err(HERALD_EINVAL, "herald_config_apply: NULL argument");
    if (flags & ~(unsigned)(HERALD_CONFIG_FORCE | HERALD_CONFIG_DRY_RUN))
        return herald__err(HERALD_EINVAL, "herald_config_apply: unknown flags 0x%x", flags);
    config c;
    int rc = load(config_path, s, &c);
    json_t *report = NULL;
    if (rc == 0)
        rc = apply_config(s, &c, flags, &report);
    config_free(&c);
    if (rc == 0 && report_json) {
        char *text = json_dumps(report, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (text) {
            *report_json = herald__xstrdup(text);
            free(text); /* lint:ok jansson allocates with malloc */
        } else {
            rc = herald__err(HERALD_ENOMEM, "herald_config_apply: out of memory");
        }
    }
    json_decref(report);
    return rc;
}

int herald__config_catalog_pending(herald_store *s, const char *config_path, char *why,
                                   size_t cap)
{
    herald__jsonc *j = NULL;
    int rc = herald__jsonc_load(config_path, &j);
    if (rc < 0)
        return rc;
    json_t *cat = json_object_get(herald__jsonc_root(j), "catalog");
    const char *file = json_string_value(json_object_get(cat, "file"));
    const char *mode = json_string_value(json_object_get(cat, "mode"));
    int pending = 0;
    char full[4096], dir[4096];
    char *text = NULL;
    herald__catalog_row row = { 0 };
    if (file) {
        snprintf(dir, sizeof dir, "%s", config_path);
        if (file[0] == '/')
            snprintf(full, sizeof full, "%s", file);
        else
            snprintf(full, sizeof full, "%s/%s", dirname(dir), file);
        rc = herald__catalog_canonical_file(full, &text, NULL);
        if (rc == 0)
            rc = herald__store_catalog_get_now(s, &row);
    }
    if (file && rc == 0) {
        herald_catalog_mode m = mode && strcmp(mode, "warn") == 0 ? HERALD_CATALOG_WARN
                                                                  : HERALD_CATALOG_STRICT;
        if (row.version == 0)
            snprintf(why, cap, "no catalog is applied to this store");
        else if (strcmp(row.catalog, text) != 0 || row.mode != m)
            snprintf(why, cap, "the store's catalog in force is version %lld, not this one",
                     (long long)row.version);
        pending = row.version == 0 || strcmp(row.catalog, text) != 0 || row.mode != m;
    }
    herald__catalog_row_deinit(&row);
    herald__free(text);
    herald__jsonc_free(j);
    return rc < 0 ? rc : pending;
}

int herald_runtime_start(herald_store *s, const char *config_path, herald_runtime **out)
{
    herald__err_clear();
    if (!s || !config_path || !out)
        return herald__err(HERALD_EINVAL, "herald_runtime_start: NULL argument");
    config c;
    int rc = load(config_path, s, &c);
    if (rc == 0)
        rc = apply_config(s, &c, 0, NULL);
    herald_runtime *rt = NULL;
    if (rc == 0) {
        rt = herald__xcalloc(1, sizeof *rt);
        rt->s = s;
        if (c.n_routes > 0)
            rc = herald_router_new(s, &rt->router);
        for (size_t i = 0; rc == 0 && i < c.n_routes; i++)
            rc = herald_router_add(rt->router, &c.routes[i].r);
        if (rc == 0 && rt->router)
            rc = herald_router_start(rt->router);
    }
    config_free(&c);
    if (rc < 0) {
        herald_runtime_stop(rt);
        return rc;
    }
    *out = rt;
    return 0;
}

void herald_runtime_stop(herald_runtime *rt)
{
    if (!rt)
        return;
    herald_router_free(rt->router);
    herald__free(rt);
}

void herald_runtime_counts(herald_runtime *rt, int64_t *routed, int64_t *unrouted)
{
    int64_t a = 0, b = 0;
    if (rt && rt->router)
        herald_router_counts(rt->router, &a, &b);
    if (routed)
        *routed = a;
    if (unrouted)
        *unrouted = b;
}
