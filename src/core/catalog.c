// SPDX-License-Identifier: MIT
/*
 * catalog.c - the event catalog: loads the JSONC catalog (every event type and its payload
 * fields), checks payloads against it, and generates a typed C header from it.
 * Format and field types: see herald.h. Errors while loading name file:line:col (jsonc.c keeps
 * the positions). Ownership: a herald_catalog owns everything it holds; it is immutable after
 * load, so any number of threads may check payloads against it at once.
 */
#include "core/core.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef enum ftype { F_STRING, F_INTEGER, F_NUMBER, F_BOOLEAN, F_STRINGS, F_OBJECT } ftype;

static const char *const ftype_names[] = { "string", "integer", "number",
                                           "boolean", "string[]", "object" };

typedef struct field {
    char *name;
    ftype type;
    bool is_optional;
} field;

typedef struct evtype {
    char *type;
    char *description;
    field *fields;
    size_t n_fields;
} evtype;

struct herald_catalog {
    evtype *types;
    size_t n;
};

static const char *const c_keywords[] = {
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
    "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
    "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch", "typedef",
    "union", "unsigned", "void", "volatile", "while", "bool", "true", "false", NULL
};

static bool c_ident_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64 || !((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    for (int i = 0; c_keywords[i]; i++)
        if (strcmp(s, c_keywords[i]) == 0)
            return false;
    return true;
}

void herald_catalog_free(herald_catalog *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++) {
        for (size_t k = 0; k < c->types[i].n_fields; k++)
            herald__free(c->types[i].fields[k].name);
        herald__free(c->types[i].fields);
        herald__free(c->types[i].type);
        herald__free(c->types[i].description);
    }
    herald__free(c->types);
    herald__free(c);
}

static int load_type(const herald__jsonc *j, const char *type, json_t *def, evtype *out)
{
    if (!herald__event_type_valid(type))
        return herald__jsonc_err(j, def, "event type '%s' is not dot notation domain.action", type);
    if (!json_is_object(def))
        return herald__jsonc_err(j, def, "event type '%s' must be an object with a \"payload\"", type);
    const char *key;
    json_t *v;
    json_object_foreach(def, key, v)
    {
        if (strcmp(key, "payload") != 0 && strcmp(key, "description") != 0)
            return herald__jsonc_err(j, v, "event type '%s': unknown key '%s' (known: payload, description)",
                      type, key);
    }
    json_t *desc = json_object_get(def, "description");
    if (desc && !json_is_string(desc))
        return herald__jsonc_err(j, desc, "event type '%s': description must be a string", type);
    json_t *payload = json_object_get(def, "payload");
    if (!payload)
        return herald__jsonc_err(j, def, "event type '%s': \"payload\" is missing", type);
    if (!json_is_object(payload))
        return herald__jsonc_err(j, payload, "event type '%s': \"payload\" must be an object of fields",
                  type);
    out->type = herald__xstrdup(type);
    out->description = desc ? herald__xstrdup(json_string_value(desc)) : NULL;
    out->fields = herald__xcalloc(json_object_size(payload) + 1, sizeof *out->fields);
    json_object_foreach(payload, key, v)
    {
        if (!c_ident_valid(key))
            return herald__jsonc_err(j, v,
                      "event type '%s': field name '%s' must be a C identifier "
                      "([a-z_][a-z0-9_]*, not a keyword)",
                      type, key);
        if (!json_is_string(v))
            return herald__jsonc_err(j, v, "event type '%s': field '%s' needs a type string", type, key);
        char spec[32];
        snprintf(spec, sizeof spec, "%s", json_string_value(v));
        size_t n = strlen(spec);
        bool optional = n > 0 && spec[n - 1] == '?';
        if (optional)
            spec[n - 1] = 0;
        int t = -1;
        for (int k = 0; k < 6; k++)
            if (strcmp(spec, ftype_names[k]) == 0)
                t = k;
        if (t < 0)
            return herald__jsonc_err(j, v,
                      "event type '%s': field '%s' has an unknown type (use string, integer, "
                      "number, boolean, string[] or object, with ? for optional)",
                      type, key);
        field *f = &out->fields[out->n_fields++];
        f->name = herald__xstrdup(key);
        f->type = (ftype)t;
        f->is_optional = optional;
    }
    return 0;
}

static int load(const herald__jsonc *j, herald_catalog **out)
{
    json_t *root = herald__jsonc_root(j);
    if (!json_is_object(root))
        return herald__jsonc_err(j, root, "a catalog is an object with \"events\"");
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "events") != 0)
            return herald__jsonc_err(j, v, "unknown key '%s' (a catalog has only \"events\")", key);
    }
    json_t *events = json_object_get(root, "events");
    if (!json_is_object(events))
        return herald__jsonc_err(j, events ? events : root, "\"events\" must be an object of event types");
    herald_catalog *c = herald__xcalloc(1, sizeof *c);
    c->types = herald__xcalloc(json_object_size(events) + 1, sizeof *c->types);
    int rc = 0;
    json_object_foreach(events, key, v)
    {
        rc = load_type(j, key, v, &c->types[c->n]);
        c->n++; /* counted even on failure so that free releases what it holds */
        if (rc < 0)
            break;
    }
    if (rc < 0) {
        herald_catalog_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int herald_catalog_parse(const char *text, size_t len, const char *name, herald_catalog **out)
{
    herald__err_clear();
    if (!text || !out)
        return herald__err(HERALD_EINVAL, "herald_catalog_parse: NULL argument");
    herald__jsonc *j = NULL;
    int rc = herald__jsonc_parse(text, len, name ? name : "catalog", &j);
    if (rc == 0)
        rc = load(j, out);
    herald__jsonc_free(j);
    return rc;
}

int herald_catalog_load(const char *path, herald_catalog **out)
{
    herald__err_clear();
    if (!path || !out)
        return herald__err(HERALD_EINVAL, "herald_catalog_load: NULL argument");
    herald__jsonc *j = NULL;
    int rc = herald__jsonc_load(path, &j);
    if (rc == 0)
        rc = load(j, out);
    herald__jsonc_free(j);
    return rc;
}

size_t herald_catalog_count(const herald_catalog *c)
{
    return c ? c->n : 0;
}

static const evtype *find(const herald_catalog *c, const char *type)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->types[i].type, type) == 0)
            return &c->types[i];
    return NULL;
}

static bool type_ok(ftype t, json_t *v)
{
    switch (t) {
    case F_STRING:
        return json_is_string(v);
    case F_INTEGER:
        return json_is_integer(v);
    case F_NUMBER:
        return json_is_number(v);
    case F_BOOLEAN:
        return json_is_boolean(v);
    case F_OBJECT:
        return json_is_object(v);
    case F_STRINGS: {
        if (!json_is_array(v))
            return false;
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            if (!json_is_string(e))
                return false;
        }
        return true;
    }
    }
    return false;
}

int herald_catalog_check(const herald_catalog *c, const char *type, const char *payload_json,
                         size_t len)
{
    herald__err_clear();
    if (!c || !type || !payload_json)
        return herald__err(HERALD_EINVAL, "herald_catalog_check: NULL argument");
    const evtype *t = find(c, type);
    if (!t)
        return herald__err(HERALD_ECATALOG, "event type '%.100s' is not in the catalog", type);
    json_error_t je;
    json_t *p = json_loadb(payload_json, len ? len : strlen(payload_json), 0, &je);
    if (!json_is_object(p)) {
        json_decref(p);
        return herald__err(HERALD_ECATALOG, "event '%s': the payload is not a JSON object",
                           type);
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < t->n_fields; i++) {
        const field *f = &t->fields[i];
        json_t *v = json_object_get(p, f->name);
        if (!v || json_is_null(v)) {
            if (!f->is_optional)
                rc = herald__err(HERALD_ECATALOG, "event '%s': payload field '%s' (%s) is missing",
                                 type, f->name, ftype_names[f->type]);
        } else if (!type_ok(f->type, v)) {
            rc = herald__err(HERALD_ECATALOG, "event '%s': payload field '%s' must be %s", type,
                             f->name, ftype_names[f->type]);
        }
    }
    const char *key;
    json_t *v;
    json_object_foreach(p, key, v)
    {
        if (rc < 0)
            break;
        bool known = false;
        for (size_t i = 0; i < t->n_fields && !known; i++)
            known = strcmp(t->fields[i].name, key) == 0;
        if (!known)
            rc = herald__err(HERALD_ECATALOG,
                             "event '%s': payload field '%.100s' is not in the catalog", type, key);
    }
    json_decref(p);
    return rc;
}

/* ---- the generated header ---- */

typedef struct sbuf {
    char *p;
    size_t n, cap;
} sbuf;

static void emit(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void emit(sbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        if (k >= 0 && (size_t)k < b->cap - b->n) {
            b->n += (size_t)k;
            return;
        }
        b->cap = b->cap * 2 + (size_t)(k > 0 ? k : 0) + 256;
        b->p = herald__xrealloc(b->p, b->cap);
    }
}

static void c_name(const char *type, char *out, size_t cap)
{
    snprintf(out, cap, "%s", type);
    for (char *p = out; *p; p++)
        if (*p == '.')
            *p = '_';
}

static const char gen_prelude[] =
    "#include <stdbool.h>\n#include <stddef.h>\n#include <stdint.h>\n#include <stdio.h>\n"
    "#include <stdlib.h>\n#include <string.h>\n\n#include \"herald.h\"\n\n"
    "/* A small JSON writer for the payloads below. */\n"
    "typedef struct hgen_buf { char *p; size_t n, cap; int rc; } hgen_buf;\n"
    "static inline void hgen_put(hgen_buf *b, const char *s, size_t n)\n{\n"
    "    if (b->rc < 0) return;\n"
    "    if (b->n + n + 1 > b->cap) {\n"
    "        size_t cap = (b->n + n + 1) * 2;\n"
    "        char *p = (char *)realloc(b->p, cap);\n"
    "        if (!p) { b->rc = HERALD_ENOMEM; return; }\n"
    "        b->p = p; b->cap = cap;\n    }\n"
    "    memcpy(b->p + b->n, s, n); b->n += n; b->p[b->n] = 0;\n}\n"
    "static inline void hgen_key(hgen_buf *b, const char *k)\n{\n"
    "    hgen_put(b, b->n > 1 ? \",\\\"\" : \"\\\"\", b->n > 1 ? 2 : 1);\n"
    "    hgen_put(b, k, strlen(k)); hgen_put(b, \"\\\":\", 2);\n}\n"
    "static inline void hgen_str(hgen_buf *b, const char *s)\n{\n"
    "    if (!s) { b->rc = HERALD_EINVAL; return; }\n"
    "    hgen_put(b, \"\\\"\", 1);\n"
    "    for (; *s; s++) {\n"
    "        unsigned char c = (unsigned char)*s; char e[8];\n"
    "        if (c == '\"' || c == '\\\\') { e[0] = '\\\\'; e[1] = (char)c; hgen_put(b, e, 2); }\n"
    "        else if (c < 0x20) { snprintf(e, sizeof e, \"\\\\u%04x\", c); hgen_put(b, e, 6); }\n"
    "        else hgen_put(b, (const char *)&c, 1);\n    }\n"
    "    hgen_put(b, \"\\\"\", 1);\n}\n"
    "static inline void hgen_int(hgen_buf *b, int64_t v)\n{\n"
    "    char t[32]; int n = snprintf(t, sizeof t, \"%lld\", (long long)v); hgen_put(b, t, (size_t)n);\n}\n"
    "static inline void hgen_num(hgen_buf *b, double v)\n{\n"
    "    char t[40]; int n = snprintf(t, sizeof t, \"%.17g\", v);\n"
    "    if (v != v || v - v != 0) { b->rc = HERALD_EINVAL; return; } /* NaN, inf: not JSON */\n"
    "    hgen_put(b, t, (size_t)n);\n}\n"
    "static inline void hgen_strs(hgen_buf *b, const char *const *v, size_t n)\n{\n"
    "    hgen_put(b, \"[\", 1);\n"
    "    for (size_t i = 0; i < n; i++) { if (i) hgen_put(b, \",\", 1); hgen_str(b, v[i]); }\n"
    "    hgen_put(b, \"]\", 1);\n}\n"
    "static inline void hgen_raw(hgen_buf *b, const char *json)\n{\n"
    "    if (!json) { b->rc = HERALD_EINVAL; return; }\n"
    "    hgen_put(b, json, strlen(json)); /* checked as JSON when the event is sent */\n}\n\n";

static const char *const c_types[] = { "const char *", "int64_t ", "double ", "bool ",
                                       "const char *const *", "const char *" };

static void gen_type(sbuf *b, const evtype *t)
{
    char id[128];
    c_name(t->type, id, sizeof id);
    emit(b, "/* ---- %s%s%s ---- */\n\n#define %s_TYPE \"%s\"\n\n", t->type,
         t->description ? ": " : "", t->description ? t->description : "", id, t->type);
    emit(b, "typedef struct %s_payload {\n", id);
    for (size_t i = 0; i < t->n_fields; i++) {
        const field *f = &t->fields[i];
        bool needs_flag = f->is_optional &&
                          (f->type == F_INTEGER || f->type == F_NUMBER || f->type == F_BOOLEAN);
        if (needs_flag)
            emit(b, "    bool has_%s; /* optional: false = absent */\n", f->name);
        emit(b, "    %s%s;%s\n", c_types[f->type], f->name,
             f->type == F_OBJECT ? " /* JSON object text */"
             : f->is_optional && !needs_flag ? " /* optional: NULL = absent */"
                                             : "");
        if (f->type == F_STRINGS)
            emit(b, "    size_t %s_len;\n", f->name);
    }
    if (t->n_fields == 0)
        emit(b, "    char unused_; /* the payload has no fields */\n");
    emit(b, "} %s_payload;\n\n", id);
    /* encode */
    emit(b,
         "/* The payload as JSON (*json_out: free with free()). Errors: HERALD_EINVAL (a NULL\n"
         " * required string, NaN), HERALD_ENOMEM. */\n"
         "static inline int %s_encode(const %s_payload *p, char **json_out)\n{\n"
         "    hgen_buf b = { 0 };\n    hgen_put(&b, \"{\", 1);\n",
         id, id);
    for (size_t i = 0; i < t->n_fields; i++) {
        const field *f = &t->fields[i];
        const char *n = f->name;
        bool flag = f->is_optional &&
                    (f->type == F_INTEGER || f->type == F_NUMBER || f->type == F_BOOLEAN);
        const char *indent = f->is_optional ? "        " : "    ";
        if (flag)
            emit(b, "    if (p->has_%s) {\n", n);
        else if (f->is_optional)
            emit(b, "    if (p->%s) {\n", n);
        emit(b, "%shgen_key(&b, \"%s\");\n", indent, n);
        switch (f->type) {
        case F_STRING:
            emit(b, "%shgen_str(&b, p->%s);\n", indent, n);
            break;
        case F_INTEGER:
            emit(b, "%shgen_int(&b, p->%s);\n", indent, n);
            break;
        case F_NUMBER:
            emit(b, "%shgen_num(&b, p->%s);\n", indent, n);
            break;
        case F_BOOLEAN:
            emit(b, "%shgen_put(&b, p->%s ? \"true\" : \"false\", p->%s ? 4 : 5);\n", indent, n,
                 n);
            break;
        case F_STRINGS:
            emit(b, "%shgen_strs(&b, p->%s, p->%s_len);\n", indent, n, n);
            break;
        case F_OBJECT:
            emit(b, "%shgen_raw(&b, p->%s);\n", indent, n);
            break;
        }
        if (f->is_optional)
            emit(b, "    }\n");
    }
    emit(b, "    hgen_put(&b, \"}\", 1);\n"
            "    if (b.rc < 0) { free(b.p); return b.rc; }\n"
            "    *json_out = b.p;\n    return 0;\n}\n\n");
    /* send / publish / tx_send */
    static const char *const verbs[] = { "send", "publish" };
    for (int k = 0; k < 2; k++) {
        emit(b,
             "static inline int %s_%s(herald_store *s, const char *%s, const char *source,\n"
             "    const char *correlation_id, const %s_payload *p, char event_id_out[HERALD_ID_SIZE])\n"
             "{\n"
             "    char *json = NULL;\n    int rc = %s_encode(p, &json);\n    if (rc < 0) return rc;\n"
             "    herald_event e = { .type = %s_TYPE, .source = source,\n"
             "                       .correlation_id = correlation_id, .payload_json = json };\n"
             "    rc = herald_%s_event(s, %s, &e, HERALD_UNSET, event_id_out);\n"
             "    free(json);\n    return rc;\n}\n\n",
             id, verbs[k], k == 0 ? "queue" : "topic", id, id, id, verbs[k],
             k == 0 ? "queue" : "topic");
    }
    emit(b,
         "/* In an effectively-once handler: commits with the handled message's ack. */\n"
         "static inline int %s_tx_send(herald_tx *tx, const char *queue, const char *source,\n"
         "    const %s_payload *p, char event_id_out[HERALD_ID_SIZE])\n{\n"
         "    char *json = NULL;\n    int rc = %s_encode(p, &json);\n    if (rc < 0) return rc;\n"
         "    herald_event e = { .type = %s_TYPE, .source = source, .payload_json = json };\n"
         "    rc = herald_tx_send_event(tx, queue, &e, event_id_out);\n"
         "    free(json);\n    return rc;\n}\n\n",
         id, id, id, id);
}

int herald_catalog_gen_header(const herald_catalog *c, const char *guard, char **out)
{
    herald__err_clear();
    if (!c || !out)
        return herald__err(HERALD_EINVAL, "herald_catalog_gen_header: NULL argument");
    const char *g = guard ? guard : "HERALD_EVENTS_H";
    for (const char *p = g; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return herald__err(HERALD_EINVAL, "include guard '%.60s' must be [A-Z0-9_]", g);
    /* Two types that map to one C name would collide. */
    for (size_t i = 0; i < c->n; i++) {
        char a[128], bname[128];
        c_name(c->types[i].type, a, sizeof a);
        for (size_t k = i + 1; k < c->n; k++) {
            c_name(c->types[k].type, bname, sizeof bname);
            if (strcmp(a, bname) == 0)
                return herald__err(HERALD_ECONFIG,
                                   "event types '%s' and '%s' both become the C name '%s'",
                                   c->types[i].type, c->types[k].type, a);
        }
    }
    sbuf b = { .p = herald__xmalloc(4096), .cap = 4096 };
    b.p[0] = 0;
    emit(&b,
         "/* Generated by `herald catalog gen` from the event catalog - do not edit.\n"
         " * Per event type: <name>_payload (the catalog's fields as members), <name>_encode,\n"
         " * <name>_send (to a queue), <name>_publish (to a topic), <name>_tx_send (inside an\n"
         " * effectively-once handler). A changed catalog changes these types, so code that no\n"
         " * longer matches it stops compiling. */\n#ifndef %s\n#define %s\n\n",
         g, g);
    emit(&b, "%s", gen_prelude);
    for (size_t i = 0; i < c->n; i++)
        gen_type(&b, &c->types[i]);
    emit(&b, "#endif /* %s */\n", g);
    *out = b.p;
    return 0;
}
