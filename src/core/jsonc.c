// SPDX-License-Identifier: MIT
/*
 * jsonc.c - JSON with comments (JSONC: line and block comments, trailing commas), parsed into
 * a jansson tree while remembering where every value starts, so configuration and catalog errors
 * can name the file, line and column ("events.jsonc:12:7: unknown key 'payloads'").
 * Recursive descent, depth-limited (JSONC_MAX_DEPTH); strings are decoded (escapes, \uXXXX with
 * surrogate pairs) and must be valid UTF-8; duplicate object keys are an error (in a
 * configuration file the second one is always a mistake).
 * Ownership: herald__jsonc owns the tree and the positions; free with herald__jsonc_free().
 */
#include "core/core.h"

#include <errno.h>
#include <stdarg.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSONC_MAX_DEPTH 128

typedef struct pos {
    const json_t *v;
    int line, col;
} pos;

struct herald__jsonc {
    json_t *root;
    pos *pos;
    size_t n_pos, cap_pos;
    char *file;
};

typedef struct parser {
    const char *p, *end, *line_start;
    int line;
    herald__jsonc *j;
    char err[300];
} parser;

static int col_of(const parser *ps)
{
    return (int)(ps->p - ps->line_start) + 1;
}

static bool fail(parser *ps, const char *msg)
{
    if (!ps->err[0])
        snprintf(ps->err, sizeof ps->err, "%s", msg);
    return false;
}

static void remember(parser *ps, const json_t *v, int line, int col)
{
    /* true, false and null are shared singletons in jansson: one position cannot name them. */
    if (json_is_true(v) || json_is_false(v) || json_is_null(v))
        return;
    herald__jsonc *j = ps->j;
    if (j->n_pos == j->cap_pos) {
        j->cap_pos = j->cap_pos ? j->cap_pos * 2 : 64;
        j->pos = herald__xrealloc(j->pos, j->cap_pos * sizeof *j->pos);
    }
    j->pos[j->n_pos++] = (pos){ .v = v, .line = line, .col = col };
}

static bool skip_ws(parser *ps)
{
    while (ps->p < ps->end) {
        char c = *ps->p;
        if (c == '\n') {
            ps->line++;
            ps->p++;
            ps->line_start = ps->p;
        } else if (c == ' ' || c == '\t' || c == '\r') {
            ps->p++;
        } else if (c == '/' && ps->p + 1 < ps->end && ps->p[1] == '/') {
            while (ps->p < ps->end && *ps->p != '\n')
                ps->p++;
        } else if (c == '/' && ps->p + 1 < ps->end && ps->p[1] == '*') {
            ps->p += 2;
            for (;;) {
                if (ps->p + 1 >= ps->end)
                    return fail(ps, "unterminated /* comment");
                if (ps->p[0] == '*' && ps->p[1] == '/') {
                    ps->p += 2;
                    break;
                }
                if (*ps->p == '\n') {
                    ps->line++;
                    ps->line_start = ps->p + 1;
                }
                ps->p++;
            }
        } else {
            return true;
        }
    }
    return true;
}

static size_t put_utf8(char *d, uint32_t cp)
{
    if (cp < 0x80) {
        d[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (char)(0xc0 | cp >> 6);
        d[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (char)(0xe0 | cp >> 12);
        d[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        d[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    d[0] = (char)(0xf0 | cp >> 18);
    d[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    d[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    d[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Decodes a string at ps->p (the opening quote) into a malloc'd buffer. */
static char *parse_string(parser *ps, size_t *len)
{
    ps->p++;
    size_t cap = 32, n = 0;
    char *buf = herald__xmalloc(cap);
    while (ps->p < ps->end && *ps->p != '"') {
        if (n + 8 > cap) {
            cap *= 2;
            buf = herald__xrealloc(buf, cap);
        }
        unsigned char c = (unsigned char)*ps->p;
        if (c < 0x20) {
            herald__free(buf);
            fail(ps, c == '\n' ? "unterminated string" : "control character in string");
            return NULL;
        }
        if (c != '\\') {
            buf[n++] = (char)c;
            ps->p++;
            continue;
        }
        if (ps->p + 1 >= ps->end) { /* a backslash as the last byte: no closing quote */
            herald__free(buf);
            ps->p = ps->end;
            fail(ps, "unterminated string");
            return NULL;
        }
        char e = ps->p[1];
        ps->p += 2;
        const char *simple = strchr("\"\\/bfnrt", e);
        if (simple && e) {
            static const char out[] = "\"\\/\b\f\n\r\t";
            buf[n++] = out[simple - "\"\\/bfnrt"];
            continue;
        }
        if (e != 'u' || ps->end - ps->p < 4 || herald__hex4(ps->p) < 0) {
            herald__free(buf);
            fail(ps, "invalid escape in string");
            return NULL;
        }
        uint32_t cp = (uint32_t)herald__hex4(ps->p);
        ps->p += 4;
        if (cp >= 0xd800 && cp <= 0xdbff) {
            int lo = ps->end - ps->p >= 6 && ps->p[0] == '\\' && ps->p[1] == 'u'
                         ? herald__hex4(ps->p + 2)
                         : -1;
            if (lo < 0xdc00 || lo > 0xdfff) {
                herald__free(buf);
                fail(ps, "invalid Unicode surrogate pair");
                return NULL;
            }
            cp = 0x10000 + ((cp - 0xd800) << 10) + ((uint32_t)lo - 0xdc00);
            ps->p += 6;
        } else if (cp >= 0xdc00 && cp <= 0xdfff) {
            herald__free(buf);
            fail(ps, "invalid Unicode surrogate");
            return NULL;
        }
        if (cp == 0) {
            herald__free(buf);
            fail(ps, "\\u0000 is not allowed in a configuration string");
            return NULL;
        }
        n += put_utf8(buf + n, cp);
    }
    if (ps->p >= ps->end) {
        herald__free(buf);
        fail(ps, "unterminated string");
        return NULL;
    }
    ps->p++; /* closing quote */
    buf[n] = 0;
    if (!herald__utf8_valid(buf, n)) {
        herald__free(buf);
        fail(ps, "invalid UTF-8 in string");
        return NULL;
    }
    *len = n;
    return buf;
}

static json_t *parse_value(parser *ps, int depth);

static json_t *parse_object(parser *ps, int depth)
{
    json_t *o = json_object();
    ps->p++;
    for (;;) {
        if (!skip_ws(ps))
            goto bad;
        if (ps->p < ps->end && *ps->p == '}') {
            ps->p++;
            return o;
        }
        if (ps->p >= ps->end || *ps->p != '"') {
            fail(ps, "string key or '}' expected");
            goto bad;
        }
        size_t klen;
        char *key = parse_string(ps, &klen);
        if (!key)
            goto bad;
        if (json_object_get(o, key)) {
            snprintf(ps->err, sizeof ps->err, "duplicate key '%.100s'", key);
            herald__free(key);
            goto bad;
        }
        if (!skip_ws(ps) || ps->p >= ps->end || *ps->p != ':') {
            herald__free(key);
            fail(ps, "':' expected after a key");
            goto bad;
        }
        ps->p++;
        json_t *v = parse_value(ps, depth + 1);
        if (!v) {
            herald__free(key);
            goto bad;
        }
        json_object_set_new(o, key, v);
        herald__free(key);
        if (!skip_ws(ps))
            goto bad;
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue; /* a trailing comma is allowed: the loop accepts '}' next */
        }
        if (ps->p < ps->end && *ps->p == '}') {
            ps->p++;
            return o;
        }
        fail(ps, "',' or '}' expected");
        goto bad;
    }
bad:
    json_decref(o);
    return NULL;
}

static json_t *parse_array(parser *ps, int depth)
{
    json_t *a = json_array();
    ps->p++;
    for (;;) {
        if (!skip_ws(ps))
            goto bad;
        if (ps->p < ps->end && *ps->p == ']') {
            ps->p++;
            return a;
        }
        json_t *v = parse_value(ps, depth + 1);
        if (!v)
            goto bad;
        json_array_append_new(a, v);
        if (!skip_ws(ps))
            goto bad;
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == ']') {
            ps->p++;
            return a;
        }
        fail(ps, "',' or ']' expected");
        goto bad;
    }
bad:
    json_decref(a);
    return NULL;
}

static json_t *parse_number(parser *ps)
{
    const char *s = ps->p;
    bool is_real = false;
    if (ps->p < ps->end && *ps->p == '-')
        ps->p++;
    const char *digits = ps->p;
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
        ps->p++;
    if (ps->p == digits || (digits[0] == '0' && ps->p - digits > 1)) {
        fail(ps, "invalid number");
        return NULL;
    }
    if (ps->p < ps->end && *ps->p == '.') {
        is_real = true;
        ps->p++;
        const char *f = ps->p;
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
            ps->p++;
        if (ps->p == f) {
            fail(ps, "invalid number: digits expected after '.'");
            return NULL;
        }
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        is_real = true;
        ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-'))
            ps->p++;
        const char *x = ps->p;
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9')
            ps->p++;
        if (ps->p == x) {
            fail(ps, "invalid number: digits expected in the exponent");
            return NULL;
        }
    }
    char tmp[64];
    size_t n = (size_t)(ps->p - s);
    if (n >= sizeof tmp) {
        fail(ps, "number too long");
        return NULL;
    }
    memcpy(tmp, s, n);
    tmp[n] = 0;
    if (!is_real) {
        errno = 0;
        long long v = strtoll(tmp, NULL, 10);
        if (errno == 0)
            return json_integer(v);
    }
    double d = strtod(tmp, NULL);
    if (d - d != 0) { /* beyond double: jansson has no value for it */
        ps->p = s;
        fail(ps, "number out of range (beyond +-1.8e308)");
        return NULL;
    }
    return json_real(d);
}

static json_t *parse_value(parser *ps, int depth)
{
    if (depth > JSONC_MAX_DEPTH) {
        fail(ps, "nesting too deep");
        return NULL;
    }
    if (!skip_ws(ps))
        return NULL;
    if (ps->p >= ps->end) {
        fail(ps, "unexpected end of input, value expected");
        return NULL;
    }
    int line = ps->line, col = col_of(ps);
    json_t *v = NULL;
    char c = *ps->p;
    if (c == '{') {
        v = parse_object(ps, depth);
    } else if (c == '[') {
        v = parse_array(ps, depth);
    } else if (c == '"') {
        size_t n;
        char *s = parse_string(ps, &n);
        if (s) {
            v = json_stringn(s, n);
            herald__free(s);
        }
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        v = parse_number(ps);
    } else if ((size_t)(ps->end - ps->p) >= 4 && memcmp(ps->p, "true", 4) == 0) {
        ps->p += 4;
        v = json_true();
    } else if ((size_t)(ps->end - ps->p) >= 5 && memcmp(ps->p, "false", 5) == 0) {
        ps->p += 5;
        v = json_false();
    } else if ((size_t)(ps->end - ps->p) >= 4 && memcmp(ps->p, "null", 4) == 0) {
        ps->p += 4;
        v = json_null();
    } else {
        fail(ps, "unexpected character, value expected");
    }
    if (v)
        remember(ps, v, line, col);
    return v;
}

int herald__jsonc_parse(const char *text, size_t n, const char *file, herald__jsonc **out)
{
    herald__jsonc *j = herald__xcalloc(1, sizeof *j);
    j->file = herald__xstrdup(file ? file : "<input>");
    parser ps = { .p = text, .end = text + n, .line_start = text, .line = 1, .j = j };
    if (n >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) /* UTF-8 byte order mark */
        ps.p = ps.line_start = text + 3;
    json_t *root = parse_value(&ps, 0);
    if (root && (!skip_ws(&ps) || ps.p < ps.end)) { /* an open comment after it, or text */
        json_decref(root);
        root = NULL;
        fail(&ps, "end of input expected after the value");
    }
    if (!root) {
        int rc = herald__err(HERALD_ECONFIG, "%s:%d:%d: %s", j->file, ps.line, col_of(&ps),
                             ps.err[0] ? ps.err : "syntax error");
        herald__jsonc_free(j);
        return rc;
    }
    j->root = root;
    *out = j;
    return 0;
}

int herald__jsonc_load(const char *path, herald__jsonc **out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return herald__err(HERALD_ECONFIG, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 8192, n = 0;
    char *buf = herald__xmalloc(cap);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            if (cap >= 64u * 1024 * 1024) {
                fclose(f);
                herald__free(buf);
                return herald__err(HERALD_ECONFIG, "%s: larger than 64 MiB", path);
            }
            cap *= 2;
            buf = herald__xrealloc(buf, cap);
        }
    }
    bool read_error = ferror(f) != 0;
    fclose(f);
    if (read_error) {
        herald__free(buf);
        return herald__err(HERALD_ECONFIG, "%s: read error", path);
    }
    int rc = herald__jsonc_parse(buf, n, path, out);
    herald__free(buf);
    return rc;
}

json_t *herald__jsonc_root(const herald__jsonc *j)
{
    return j->root;
}

int herald__jsonc_line(const herald__jsonc *j, const json_t *v, int *col)
{
    for (size_t i = 0; i < j->n_pos; i++) {
        if (j->pos[i].v == v) {
            if (col)
                *col = j->pos[i].col;
            return j->pos[i].line;
        }
    }
    if (col)
        *col = 0;
    return 0;
}

int herald__jsonc_errv(const herald__jsonc *j, const json_t *v, const char *fmt, va_list ap)
{
    int col = 0;
    int line = herald__jsonc_line(j, v, &col);
    char msg[400];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (line == 0) /* a node without a position (true, false, null): the file alone */
        return herald__err(HERALD_ECONFIG, "%s: %s", j->file, msg);
    return herald__err(HERALD_ECONFIG, "%s:%d:%d: %s", j->file, line, col, msg);
}

int herald__jsonc_err(const herald__jsonc *j, const json_t *v, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = herald__jsonc_errv(j, v, fmt, ap);
    va_end(ap);
    return rc;
}

void herald__jsonc_free(herald__jsonc *j)
{
    if (!j)
        return;
    json_decref(j->root);
    herald__free(j->pos);
    herald__free(j->file);
    herald__free(j);
}
