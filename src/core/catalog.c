// SPDX-License-Identifier: MIT
/*
 * catalog.c - the event catalog: loads the JSONC catalog (every event type and its payload
 * fields), checks payloads against it, and generates a typed C header from it.
 * Format and field types: see herald.h. Errors while loading name file:line:col (jsonc.c keeps
 * the positions). Ownership: a herald_catalog owns everything it holds; it is immutable after
 * load, so any number of threads may check payloads against it at once.
 */
#include "core/core.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
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

/* Names a field may not have: the generated header makes each field a struct member, so a C
 * keyword (C11, C23, GNU), a lowercase macro of the headers it includes or a macro the compiler
 * predefines in GNU mode (`linux`, `unix`, ...) would break it. */
static const char *const c_reserved[] = {
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
    "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
    "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch", "typedef",
    "union", "unsigned", "void", "volatile", "while",
    /* C23 and GNU keywords */
    "bool", "true", "false", "alignas", "alignof", "constexpr", "nullptr", "static_assert",
    "thread_local", "typeof", "typeof_unqual", "asm",
    /* macros of <stdbool.h> <stddef.h> <stdio.h> <stdlib.h> <string.h> with lowercase names */
    "offsetof", "stdin", "stdout", "stderr", "errno", "assert", "alloca",
    /* macros GCC and Clang predefine in GNU mode on some target */
    "linux", "unix", "i386", "i486", "i586", "i686", "sun", "sparc", "mips", "vax", "hppa",
    "m68k", "mc68000", "pdp11", "bsd", "sgi", "ibm", "amiga", NULL
};

/* NULL when name can be a field (a member of the generated struct); else why not. */
static const char *field_name_problem(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64 || !((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
        return "must be a C identifier ([a-z_][a-z0-9_]*, at most 64 bytes)";
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return "must be a C identifier ([a-z_][a-z0-9_]*, at most 64 bytes)";
    if (s[0] == '_' && s[1] == '_')
        return "must not start with '__' (reserved for the C implementation)";
    for (int i = 0; c_reserved[i]; i++)
        if (strcmp(s, c_reserved[i]) == 0)
            return "is a C keyword or a predefined macro, which the generated header cannot use "
                   "as a struct member";
    return NULL;
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

/* The generated struct holds, per field, the member NAME, and has_NAME (optional integer,
 * number, boolean) or NAME_len (string[]): two fields must not produce one member. */
static bool needs_flag(const field *f)
{
    return f->is_optional && (f->type == F_INTEGER || f->type == F_NUMBER || f->type == F_BOOLEAN);
}

static size_t member_names(const field *f, char out[2][80])
{
    size_t n = 0;
    snprintf(out[n++], 80, "%s", f->name);
    if (needs_flag(f))
        snprintf(out[n++], 80, "has_%s", f->name);
    if (f->type == F_STRINGS)
        snprintf(out[n++], 80, "%s_len", f->name);
    return n;
}

static int member_clash(const herald__jsonc *j, json_t *payload, const evtype *t)
{
    for (size_t a = 0; a < t->n_fields; a++) {
        char ma[2][80];
        size_t na = member_names(&t->fields[a], ma);
        for (size_t b = a + 1; b < t->n_fields; b++) {
            char mb[2][80];
            size_t nb = member_names(&t->fields[b], mb);
            for (size_t x = 0; x < na; x++)
                for (size_t y = 0; y < nb; y++)
                    if (strcmp(ma[x], mb[y]) == 0)
                        return herald__jsonc_err(
                            j, json_object_get(payload, t->fields[b].name),
                            "event type '%s': fields '%s' and '%s' both become the struct "
                            "member '%s' of the generated header",
                            t->type, t->fields[a].name, t->fields[b].name, ma[x]);
        }
    }
    return 0;
}

/* The C name of an event type ("a.b" -> "a_b") and the identifiers the header defines for it. */
static void c_name(const char *type, char *out, size_t cap)
{
    snprintf(out, cap, "%s", type);
    for (char *p = out; *p; p++)
        if (*p == '.')
            *p = '_';
}

static const char *const gen_suffixes[] = { "_TYPE",    "_payload", "_encode",
                                            "_send",    "_publish", "_tx_send" };
#define N_SUFFIXES (sizeof gen_suffixes / sizeof gen_suffixes[0])

/* NULL when types a and b generate no common identifier, else the identifier (in buf). */
static const char *type_clash(const char *a, const char *b, char *buf, size_t cap)
{
    char ia[128], ib[128];
    c_name(a, ia, sizeof ia);
    c_name(b, ib, sizeof ib);
    for (size_t x = 0; x < N_SUFFIXES; x++) {
        for (size_t y = 0; y < N_SUFFIXES; y++) {
            char na[160], nb[160];
            snprintf(na, sizeof na, "%s%s", ia, gen_suffixes[x]);
            snprintf(nb, sizeof nb, "%s%s", ib, gen_suffixes[y]);
            if (strcmp(na, nb) == 0) {
                snprintf(buf, cap, "%s", na);
                return buf;
            }
        }
    }
    return NULL;
}

/* NULL when the header can name type t, else why not. Names starting herald_ or hgen_ are the
 * library's and the header's own. */
static const char *type_name_problem(const char *t)
{
    if (strncmp(t, "herald.", 7) == 0 || strncmp(t, "hgen.", 5) == 0 ||
        strncmp(t, "hgen_", 5) == 0)
        return "its C name would start with herald_ or hgen_, which the generated header "
               "and herald.h reserve";
    return NULL;
}

static int load_type(const herald__jsonc *j, const char *type, json_t *def, evtype *out)
{
    if (!herald__event_type_valid(type))
        return herald__jsonc_err(j, def, "event type '%.120s' is not dot notation domain.action",
                                 type);
    const char *type_why = type_name_problem(type);
    if (type_why)
        return herald__jsonc_err(j, def, "event type '%s': %s", type, type_why);
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
        const char *why = field_name_problem(key);
        if (why)
            return herald__jsonc_err(j, v, "event type '%s': field name '%.80s' %s", type, key,
                                     why);
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
    return member_clash(j, payload, out);
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
        for (size_t i = 0; rc == 0 && i + 1 < c->n; i++) {
            char ident[200];
            if (type_clash(c->types[i].type, key, ident, sizeof ident))
                rc = herald__jsonc_err(j, v,
                                       "event types '%s' and '%s' both define '%s' in the "
                                       "generated header",
                                       c->types[i].type, key, ident);
        }
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

/* The payload is checked on its text with the scanner Herald validates every body with (text.c),
 * not with a JSON library: what Herald accepts as JSON (any number, \u0000 in strings, nesting
 * up to HERALD_JSON_MAX_DEPTH - 1) the catalog check accepts too, and refuses only what breaks
 * the catalog. */
typedef struct pmember {
    char key[80]; /* decoded; "" when longer than any field name */
    const char *raw;
    size_t raw_len, vlen;
    const char *val;
} pmember;

typedef struct pmembers {
    pmember *m;
    size_t n, cap;
} pmembers;

static int collect_member(void *ud, const char *key, size_t klen, const char *val, size_t vlen)
{
    pmembers *ms = ud;
    if (ms->n == ms->cap) {
        ms->cap = ms->cap ? ms->cap * 2 : 16;
        ms->m = herald__xrealloc(ms->m, ms->cap * sizeof *ms->m);
    }
    pmember *m = &ms->m[ms->n++];
    size_t decoded = 0;
    /* too long for a field name, or holding \u0000: no field has that name */
    if (!herald__json_unescape(key - 1, klen + 2, m->key, sizeof m->key, &decoded) ||
        strlen(m->key) != decoded)
        m->key[0] = 0;
    m->raw = key;
    m->raw_len = klen;
    m->val = val;
    m->vlen = vlen;
    return 0;
}

/* Whether the (valid) array text v holds only strings. */
static bool all_strings(const char *v, size_t n)
{
    size_t i = 1; /* after '[' */
    for (;;) {
        while (i < n && strchr(" \t\r\n", v[i]))
            i++;
        if (i >= n || v[i] == ']')
            return true;
        if (v[i] != '"')
            return false;
        for (i++; i < n && v[i] != '"'; i++)
            if (v[i] == '\\')
                i++;
        i++; /* closing quote */
        while (i < n && strchr(" \t\r\n", v[i]))
            i++;
        if (i < n && v[i] == ',')
            i++;
    }
}

/* NULL when value v (valid JSON text) has type t, else what is wrong with it. */
static const char *type_problem(ftype t, const char *v, size_t n)
{
    char c = v[0];
    bool is_num = c == '-' || (c >= '0' && c <= '9');
    switch (t) {
    case F_STRING:
        return c == '"' ? NULL : "";
    case F_INTEGER: {
        if (!is_num || memchr(v, '.', n) || memchr(v, 'e', n) || memchr(v, 'E', n))
            return "";
        char tmp[32];
        if (n >= sizeof tmp)
            return " (a 64-bit integer)";
        memcpy(tmp, v, n);
        tmp[n] = 0;
        errno = 0;
        (void)strtoll(tmp, NULL, 10);
        return errno == ERANGE ? " (a 64-bit integer)" : NULL;
    }
    case F_NUMBER:
        return is_num ? NULL : "";
    case F_BOOLEAN:
        return c == 't' || c == 'f' ? NULL : "";
    case F_OBJECT:
        return c == '{' ? NULL : "";
    case F_STRINGS:
        return c == '[' && all_strings(v, n) ? NULL : "";
    }
    return "";
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
    if (!len)
        len = strlen(payload_json);
    if (herald__json_scan_depth(payload_json, len, true, HERALD_JSON_MAX_DEPTH - 1, "payload") <
        0) {
        char detail[400];
        herald__err_copy(detail, sizeof detail);
        return herald__err(HERALD_ECATALOG, "event '%s': %s", type, detail);
    }
    pmembers ms = { 0 };
    bool ws = false;
    int rc = herald__json_members_trusted(payload_json, len, collect_member, &ms, &ws);
    if (rc < 0) /* cannot happen: scanned above */
        rc = herald__err(HERALD_ECATALOG, "event '%s': the payload is not a JSON object", type);
    for (size_t i = 0; rc == 0 && i < t->n_fields; i++) {
        const field *f = &t->fields[i];
        const pmember *m = NULL;
        for (size_t k = 0; k < ms.n; k++) /* the last of duplicate keys wins, as in JSON.parse */
            if (strcmp(ms.m[k].key, f->name) == 0)
                m = &ms.m[k];
        const char *why = NULL;
        if (!m || (m->vlen == 4 && memcmp(m->val, "null", 4) == 0)) {
            if (!f->is_optional)
                rc = herald__err(HERALD_ECATALOG, "event '%s': payload field '%s' (%s) is missing",
                                 type, f->name, ftype_names[f->type]);
        } else if ((why = type_problem(f->type, m->val, m->vlen))) {
            rc = herald__err(HERALD_ECATALOG, "event '%s': payload field '%s' must be %s%s", type,
                             f->name, ftype_names[f->type], why);
        }
    }
    for (size_t k = 0; rc == 0 && k < ms.n; k++) {
        bool known = false;
        for (size_t i = 0; i < t->n_fields && !known; i++)
            known = strcmp(t->fields[i].name, ms.m[k].key) == 0;
        if (!known)
            rc = herald__err(HERALD_ECATALOG,
                             "event '%s': payload field '%.*s' is not in the catalog", type,
                             (int)herald__utf8_cut(ms.m[k].raw, ms.m[k].raw_len, 100),
                             ms.m[k].raw);
    }
    herald__free(ms.m);
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

/* Appends a description inside a block comment: on one line, with no comment delimiter and no
 * control character, so that it can neither end the comment nor nest one. */
static void emit_comment_text(sbuf *b, const char *text)
{
    for (const char *p = text; *p; p++) {
        char c = *p;
        if ((unsigned char)c < 0x20 || c == 0x7f)
            c = ' ';
        emit(b, "%c", c);
        if ((c == '*' && p[1] == '/') || (c == '/' && p[1] == '*'))
            emit(b, " "); /* "*" "/" -> "* /", "/" "*" -> "/ *" */
    }
}

static const char gen_prelude[] =
    "#include <stdbool.h>\n"
    "#include <stddef.h>\n"
    "#include <stdint.h>\n"
    "#include <stdio.h>\n"
    "#include <stdlib.h>\n"
    "#include <string.h>\n"
    "\n"
    "#include \"herald.h\"\n"
    "\n"
    "/* A small JSON writer for the payloads below. A failure is recorded once, in rc and in\n"
    " * herald_last_error(), naming the event type and the field. */\n"
    "typedef struct hgen_buf { char *p; size_t n, cap; int rc; const char *type; } hgen_buf;\n"
    "static inline void hgen_fail(hgen_buf *b, int rc, const char *field, const char *why)\n"
    "{\n"
    "    char m[240];\n"
    "    if (b->rc < 0) return;\n"
    "    snprintf(m, sizeof m, \"%s payload: field '%s' %s\", b->type, field, why);\n"
    "    b->rc = herald_last_error_set(rc, m);\n"
    "}\n"
    "static inline void hgen_put(hgen_buf *b, const char *s, size_t n)\n"
    "{\n"
    "    if (b->rc < 0) return;\n"
    "    if (b->n + n + 1 > b->cap) {\n"
    "        size_t cap = (b->n + n + 1) * 2;\n"
    "        char *p = (char *)realloc(b->p, cap);\n"
    "        if (!p) {\n"
    "            b->rc = herald_last_error_set(HERALD_ENOMEM, \"payload: out of memory\");\n"
    "            return;\n"
    "        }\n"
    "        b->p = p; b->cap = cap;\n"
    "    }\n"
    "    memcpy(b->p + b->n, s, n); b->n += n; b->p[b->n] = 0;\n"
    "}\n"
    "static inline void hgen_key(hgen_buf *b, const char *k)\n"
    "{\n"
    "    hgen_put(b, b->n > 1 ? \",\\\"\" : \"\\\"\", b->n > 1 ? 2 : 1);\n"
    "    hgen_put(b, k, strlen(k)); hgen_put(b, \"\\\":\", 2);\n"
    "}\n"
    "static inline void hgen_str(hgen_buf *b, const char *s, const char *field)\n"
    "{\n"
    "    if (!s) { hgen_fail(b, HERALD_EINVAL, field, \"is NULL (required)\"); return; }\n"
    "    hgen_put(b, \"\\\"\", 1);\n"
    "    for (; *s; s++) {\n"
    "        unsigned char c = (unsigned char)*s; char e[8];\n"
    "        if (c == '\"' || c == '\\\\') { e[0] = '\\\\'; e[1] = (char)c; hgen_put(b, e, 2); }\n"
    "        else if (c < 0x20) { snprintf(e, sizeof e, \"\\\\u%04x\", c); hgen_put(b, e, 6); }\n"
    "        else hgen_put(b, (const char *)&c, 1);\n"
    "    }\n"
    "    hgen_put(b, \"\\\"\", 1);\n"
    "}\n"
    "static inline void hgen_int(hgen_buf *b, int64_t v)\n"
    "{\n"
    "    char t[32]; int n = snprintf(t, sizeof t, \"%lld\", (long long)v);\n"
    "    hgen_put(b, t, (size_t)n);\n"
    "}\n"
    "static inline void hgen_num(hgen_buf *b, double v, const char *field)\n"
    "{\n"
    "    char t[40]; int n = snprintf(t, sizeof t, \"%.17g\", v);\n"
    "    if (v != v || v - v != 0) { /* NaN, infinity: JSON has no such number */\n"
    "        hgen_fail(b, HERALD_EINVAL, field, \"is NaN or infinite, which JSON cannot hold\");\n"
    "        return;\n"
    "    }\n"
    "    hgen_put(b, t, (size_t)n);\n"
    "}\n"
    "static inline void hgen_strs(hgen_buf *b, const char *const *v, size_t n, const char *field)\n"
    "{\n"
    "    if (!v && n) {\n"
    "        hgen_fail(b, HERALD_EINVAL, field, \"is NULL with a non-zero length\");\n"
    "        return;\n"
    "    }\n"
    "    hgen_put(b, \"[\", 1);\n"
    "    for (size_t i = 0; i < n; i++) {\n"
    "        if (i) hgen_put(b, \",\", 1);\n"
    "        hgen_str(b, v[i], field);\n"
    "    }\n"
    "    hgen_put(b, \"]\", 1);\n"
    "}\n"
    "static inline void hgen_raw(hgen_buf *b, const char *json, const char *field)\n"
    "{\n"
    "    if (!json) { hgen_fail(b, HERALD_EINVAL, field, \"is NULL (required)\"); return; }\n"
    "    hgen_put(b, json, strlen(json)); /* checked as JSON when the event is sent */\n"
    "}\n"
    "\n";

static const char *const c_types[] = { "const char *", "int64_t ", "double ", "bool ",
                                       "const char *const *", "const char *" };

static void gen_type(sbuf *b, const evtype *t)
{
    char id[128];
    c_name(t->type, id, sizeof id);
    emit(b, "/* ---- %s", t->type);
    if (t->description) {
        emit(b, ": ");
        emit_comment_text(b, t->description);
    }
    emit(b, " ---- */\n\n#define %s_TYPE \"%s\"\n\n", id, t->type);
    emit(b, "typedef struct %s_payload {\n", id);
    for (size_t i = 0; i < t->n_fields; i++) {
        const field *f = &t->fields[i];
        bool has_flag = needs_flag(f);
        if (has_flag)
            emit(b, "    bool has_%s; /* optional: false = absent */\n", f->name);
        emit(b, "    %s%s;%s\n", c_types[f->type], f->name,
             f->type == F_OBJECT ? " /* JSON object text */"
             : f->is_optional && !has_flag ? " /* optional: NULL = absent */"
                                             : "");
        if (f->type == F_STRINGS)
            emit(b, "    size_t %s_len;\n", f->name);
    }
    if (t->n_fields == 0)
        emit(b, "    char unused_; /* the payload has no fields */\n");
    emit(b, "} %s_payload;\n\n", id);
    /* encode */
    emit(b,
         "/* The payload as JSON (*json_out: free with free()). Errors (herald_last_error() names\n"
         " * the field): HERALD_EINVAL (a NULL required string, NaN), HERALD_ENOMEM. */\n"
         "static inline int %s_encode(const %s_payload *p, char **json_out)\n{\n"
         "    hgen_buf b = { NULL, 0, 0, 0, %s_TYPE };\n    hgen_put(&b, \"{\", 1);\n",
         id, id, id);
    if (t->n_fields == 0)
        emit(b, "    (void)p;\n");
    for (size_t i = 0; i < t->n_fields; i++) {
        const field *f = &t->fields[i];
        const char *n = f->name;
        bool flag = needs_flag(f);
        const char *indent = f->is_optional ? "        " : "    ";
        if (flag)
            emit(b, "    if (p->has_%s) {\n", n);
        else if (f->is_optional)
            emit(b, "    if (p->%s) {\n", n);
        emit(b, "%shgen_key(&b, \"%s\");\n", indent, n);
        switch (f->type) {
        case F_STRING:
            emit(b, "%shgen_str(&b, p->%s, \"%s\");\n", indent, n, n);
            break;
        case F_INTEGER:
            emit(b, "%shgen_int(&b, p->%s);\n", indent, n);
            break;
        case F_NUMBER:
            emit(b, "%shgen_num(&b, p->%s, \"%s\");\n", indent, n, n);
            break;
        case F_BOOLEAN:
            emit(b, "%shgen_put(&b, p->%s ? \"true\" : \"false\", p->%s ? 4 : 5);\n", indent, n,
                 n);
            break;
        case F_STRINGS:
            emit(b, "%shgen_strs(&b, p->%s, p->%s_len, \"%s\");\n", indent, n, n, n);
            break;
        case F_OBJECT:
            emit(b, "%shgen_raw(&b, p->%s, \"%s\");\n", indent, n, n);
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
    bool guard_ok = g[0] >= 'A' && g[0] <= 'Z' && strlen(g) <= 128;
    for (const char *p = g; guard_ok && *p; p++)
        guard_ok = (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_';
    if (!guard_ok)
        return herald__err(HERALD_EINVAL,
                           "include guard '%.60s' must be an identifier of [A-Z0-9_] starting "
                           "with a letter A-Z (at most 128 bytes)",
                           g);
    /* load() refused clashes already; a catalog is immutable, so this only guards the rule. */
    for (size_t i = 0; i < c->n; i++) {
        for (size_t k = i + 1; k < c->n; k++) {
            char ident[200];
            if (type_clash(c->types[i].type, c->types[k].type, ident, sizeof ident))
                return herald__err(HERALD_ECONFIG,
                                   "event types '%s' and '%s' both define '%s' in the generated "
                                   "header",
                                   c->types[i].type, c->types[k].type, ident);
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
