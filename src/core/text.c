// SPDX-License-Identifier: MIT
/*
 * text.c - text helpers: UTF-8 validity, and the cutting (on a character boundary) and cleaning
 * (invalid bytes -> U+FFFD) of texts that are stored or logged, such as error texts; JSON
 * well-formedness (a scanner that allocates nothing, names line and column, and limits nesting
 * to HERALD_JSON_MAX_DEPTH), the members of a JSON object in one pass (validating, or
 * structure-only for stored bodies), JSON string decoding and compaction, queue-name syntax,
 * base64 for the pull wire shape, and the dot-path lookup of a field in a JSON text (jansson)
 * for the middleware's per-key limits.
 * Invariants: (1) herald__json_members_trusted, herald__json_unescape and herald__json_compact
 * take text that was validated before (by the scanner here, at send): they check only structure
 * and bounds, and never read past the text they are given, even when it is not valid after all
 * (a damaged store; tests/unit/test_text.c and fuzz/fuzz_json.c hold them to it); (2) a member is
 * handed to a callback only once the ',' or '}' after it was seen; (3) what herald__utf8_copy
 * writes is valid UTF-8.
 * Threads: any (no state).
 */
#include "core/core.h"

#include <jansson.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The length (1..4) of the valid UTF-8 sequence at s[0..n), or 0 if it is not one (RFC 3629:
 * no overlong forms, no surrogates, nothing above U+10FFFF). */
static size_t utf8_seq(const uint8_t *s, size_t n)
{
    uint8_t c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
        len = 2;
        cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3;
        cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[k] & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

bool herald__utf8_valid(const void *p, size_t n)
{
    const uint8_t *s = p;
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t len = utf8_seq(s + i, n - i);
        if (len == 0)
            return false;
        i += len;
    }
    return true;
}

size_t herald__utf8_cut(const char *s, size_t n, size_t max)
{
    if (n <= max)
        return n;
    size_t k = max;
    /* back over continuation bytes to the start of the character that does not fit */
    while (k > 0 && ((uint8_t)s[k] & 0xc0) == 0x80 && max - k < 3)
        k--;
    return ((uint8_t)s[k] & 0xc0) == 0x80 ? max : k; /* not UTF-8 there: cut anywhere */
}

size_t herald__utf8_copy(char *dst, size_t cap, const char *src)
{
    static const char fffd[] = "\xef\xbf\xbd"; /* U+FFFD REPLACEMENT CHARACTER */
    if (cap == 0)
        return 0;
    const uint8_t *s = (const uint8_t *)(src ? src : "");
    size_t n = strlen((const char *)s), i = 0, k = 0;
    while (i < n) {
        size_t len = utf8_seq(s + i, n - i);
        const char *from = len ? (const char *)s + i : fffd;
        size_t put = len ? len : 3;
        if (k + put > cap - 1)
            break; /* a whole character or nothing */
        memcpy(dst + k, from, put);
        k += put;
        i += len ? len : 1;
    }
    dst[k] = 0;
    return k;
}

char *herald__utf8_dup(const char *src, size_t max)
{
    size_t n = src ? strlen(src) : 0;
    size_t cap = (n * 3 < max ? n * 3 : max) + 1; /* each bad byte may become 3 */
    char *d = herald__xmalloc(cap);
    herald__utf8_copy(d, cap, src);
    return d;
}

/* A validating JSON scanner (RFC 8259): no allocation, no tree; used on hot paths (every json
 * send, every envelope) where jansson would build and free a whole tree. Duplicate object keys
 * are accepted (as JSON.parse and jansson's default do). Nesting is limited to max_depth
 * (HERALD_JSON_MAX_DEPTH for a whole body; one less for what sits inside an envelope). */
typedef struct jscan {
    const uint8_t *p, *end, *line_start;
    int line;
    int max_depth; /* 1..HERALD_JSON_MAX_DEPTH */
    const char *err;
} jscan;

static void js_ws(jscan *j)
{
    while (j->p < j->end) {
        uint8_t c = *j->p;
        if (c == '\n') {
            j->line++;
            j->line_start = j->p + 1;
        } else if (c != ' ' && c != '\t' && c != '\r') {
            return;
        }
        j->p++;
    }
}

int herald__hexdigit(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

int herald__hex4(const void *s)
{
    const uint8_t *p = s;
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int d = herald__hexdigit(p[i]);
        if (d < 0)
            return -1;
        v = v << 4 | d;
    }
    return v;
}

static bool js_string(jscan *j)
{
    j->p++; /* opening quote */
    const uint8_t *run = j->p;
    while (j->p < j->end) {
        uint8_t c = *j->p;
        if (c == '"') {
            if (!herald__utf8_valid(run, (size_t)(j->p - run)))
                return (j->err = "invalid UTF-8 in string", false);
            j->p++;
            return true;
        }
        if (c < 0x20)
            return (j->err = "control character in string", false);
        if (c == '\\') {
            if (!herald__utf8_valid(run, (size_t)(j->p - run)))
                return (j->err = "invalid UTF-8 in string", false);
            if (j->end - j->p < 2)
                return (j->err = "unterminated string", false);
            uint8_t e = j->p[1];
            if (e == 'u') {
                if (j->end - j->p < 6 || herald__hex4(j->p + 2) < 0)
                    return (j->err = "invalid \\u escape", false);
                int cp = herald__hex4(j->p + 2);
                j->p += 6;
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u' ||
                        herald__hex4(j->p + 2) < 0xdc00 || herald__hex4(j->p + 2) > 0xdfff)
                        return (j->err = "invalid Unicode surrogate pair", false);
                    j->p += 6;
                } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                    return (j->err = "invalid Unicode surrogate", false);
                }
            } else if (strchr("\"\\/bfnrt", e) && e) {
                j->p += 2;
            } else {
                return (j->err = "invalid escape in string", false);
            }
            run = j->p;
            continue;
        }
        j->p++;
    }
    return (j->err = "unterminated string", false);
}

static bool js_digits(jscan *j)
{
    const uint8_t *s = j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
        j->p++;
    return j->p > s;
}

static bool js_number(jscan *j)
{
    if (*j->p == '-')
        j->p++;
    if (j->p < j->end && *j->p == '0')
        j->p++;
    else if (!js_digits(j))
        return (j->err = "invalid number", false);
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (!js_digits(j))
            return (j->err = "invalid number: digits expected after '.'", false);
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (!js_digits(j))
            return (j->err = "invalid number: digits expected in exponent", false);
    }
    return true;
}

static bool js_word(jscan *j, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n) != 0)
        return (j->err = "invalid literal", false);
    j->p += n;
    return true;
}

/* Scans one value iteratively (nesting up to j->max_depth on an explicit stack). */
static bool js_value(jscan *j)
{
    char stack[HERALD_JSON_MAX_DEPTH];
    int depth = 0;
    for (;;) {
        /* expect a value */
        js_ws(j);
        if (j->p >= j->end)
            return (j->err = "unexpected end of input, value expected", false);
        uint8_t c = *j->p;
        if (c == '{' || c == '[') {
            if (depth == j->max_depth)
                return (j->err = "nested deeper than HERALD_JSON_MAX_DEPTH (" HERALD__STR(
                                     HERALD_JSON_MAX_DEPTH) " levels, an event's envelope "
                                                            "included)",
                        false);
            stack[depth++] = (char)c;
            j->p++;
            js_ws(j);
            if (j->p < j->end && *j->p == (c == '{' ? '}' : ']')) {
                j->p++;
                depth--;
                goto after_value;
            }
            if (c == '{')
                goto object_key;
            continue;
        } else if (c == '"') {
            if (!js_string(j))
                return false;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            if (!js_number(j))
                return false;
        } else if (c == 't') {
            if (!js_word(j, "true"))
                return false;
        } else if (c == 'f') {
            if (!js_word(j, "false"))
                return false;
        } else if (c == 'n') {
            if (!js_word(j, "null"))
                return false;
        } else {
            return (j->err = "unexpected character, value expected", false);
        }
    after_value:
        for (;;) {
            if (depth == 0)
                return true;
            js_ws(j);
            if (j->p >= j->end)
                return (j->err = "unexpected end of input", false);
            c = *j->p;
            char top = stack[depth - 1];
            if (c == ',') {
                j->p++;
                if (top == '{')
                    goto object_key;
                break; /* next array element */
            }
            if ((top == '{' && c == '}') || (top == '[' && c == ']')) {
                j->p++;
                depth--;
                continue;
            }
            return (j->err = top == '{' ? "',' or '}' expected" : "',' or ']' expected", false);
        }
        continue;
    object_key:
        js_ws(j);
        if (j->p >= j->end || *j->p != '"')
            return (j->err = "string key expected", false);
        if (!js_string(j))
            return false;
        js_ws(j);
        if (j->p >= j->end || *j->p != ':')
            return (j->err = "':' expected", false);
        j->p++;
    }
}

int herald__json_scan_depth(const void *p, size_t n, bool must_be_object, int max_depth,
                            const char *what)
{
    jscan j = { .p = p, .end = (const uint8_t *)p + n, .line_start = p, .line = 1,
                .max_depth = max_depth < 1 || max_depth > HERALD_JSON_MAX_DEPTH
                                 ? HERALD_JSON_MAX_DEPTH
                                 : max_depth };
    js_ws(&j);
    bool is_object = j.p < j.end && *j.p == '{';
    bool ok = js_value(&j);
    if (ok) {
        js_ws(&j);
        if (j.p != j.end) {
            ok = false;
            j.err = "end of input expected after the value";
        }
    }
    if (!ok)
        return herald__err(HERALD_EBADJSON, "%s is not valid JSON: %s (line %d, column %d)", what,
                           j.err, j.line, (int)(j.p - j.line_start) + 1);
    if (must_be_object && !is_object)
        return herald__err(HERALD_EBADJSON, "%s must be a JSON object", what);
    return 0;
}

int herald__json_scan(const void *p, size_t n, bool must_be_object, const char *what)
{
    return herald__json_scan_depth(p, n, must_be_object, HERALD_JSON_MAX_DEPTH, what);
}

int herald__json_check(const void *p, size_t n, const char *what)
{
    return herald__json_scan(p, n, false, what);
}

static int scan_fail(const jscan *j, const char *what)
{
    return herald__err(HERALD_EBADJSON, "%s is not valid JSON: %s (line %d, column %d)", what,
                       j->err, j->line, (int)(j->p - j->line_start) + 1);
}

int herald__json_members(const void *p, size_t n, const char *what, herald__json_member_fn fn,
                         void *ud)
{
    /* the object is one level: its values may nest one less */
    jscan j = { .p = p, .end = (const uint8_t *)p + n, .line_start = p, .line = 1,
                .max_depth = HERALD_JSON_MAX_DEPTH - 1 };
    js_ws(&j);
    if (j.p >= j.end || *j.p != '{') {
        /* say whether it is JSON at all */
        int rc = herald__json_scan(p, n, false, what);
        return rc < 0 ? rc : herald__err(HERALD_EBADJSON, "%s must be a JSON object", what);
    }
    j.p++;
    js_ws(&j);
    if (j.p < j.end && *j.p == '}') {
        j.p++;
    } else {
        for (;;) {
            js_ws(&j);
            if (j.p >= j.end || *j.p != '"')
                return (j.err = "string key expected", scan_fail(&j, what));
            const uint8_t *k = j.p;
            if (!js_string(&j))
                return scan_fail(&j, what);
            const uint8_t *k_end = j.p;
            js_ws(&j);
            if (j.p >= j.end || *j.p != ':')
                return (j.err = "':' expected", scan_fail(&j, what));
            j.p++;
            js_ws(&j);
            const uint8_t *v = j.p;
            if (!js_value(&j))
                return scan_fail(&j, what);
            int rc = fn(ud, (const char *)k + 1, (size_t)(k_end - k) - 2, (const char *)v,
                        (size_t)(j.p - v));
            if (rc != 0)
                return rc;
            js_ws(&j);
            if (j.p < j.end && *j.p == ',') {
                j.p++;
                continue;
            }
            if (j.p < j.end && *j.p == '}') {
                j.p++;
                break;
            }
            return (j.err = j.p < j.end ? "',' or '}' expected" : "unexpected end of input",
                    scan_fail(&j, what));
        }
    }
    js_ws(&j);
    if (j.p != j.end)
        return (j.err = "end of input expected after the value", scan_fail(&j, what));
    return 0;
}

/* ---- trusted JSON: text the store validated when it was sent ---- */

/* The end of the string literal starting at the quote p, or NULL. memchr finds the candidate
 * closing quote; an odd run of backslashes before it escapes it. */
static const uint8_t *skip_string(const uint8_t *p, const uint8_t *end)
{
    const uint8_t *from = p + 1;
    while (from < end) {
        const uint8_t *q = memchr(from, '"', (size_t)(end - from));
        if (!q)
            return NULL;
        const uint8_t *b = q;
        while (b > from && b[-1] == '\\')
            b--;
        if ((q - b) % 2 == 0)
            return q + 1;
        from = q + 1;
    }
    return NULL;
}

static bool is_ws(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The end of the value starting at p (no leading whitespace), or NULL. *has_ws: whitespace seen
 * outside strings. Checks structure only: what it skips was validated before. */
static const uint8_t *skip_value(const uint8_t *p, const uint8_t *end, bool *has_ws)
{
    int depth = 0;
    while (p < end) {
        uint8_t c = *p;
        if (c == '"') {
            if (!(p = skip_string(p, end)))
                return NULL;
        } else if (c == '{' || c == '[') {
            depth++;
            p++;
        } else if (c == '}' || c == ']') {
            if (--depth < 0)
                return NULL;
            p++;
        } else if (depth == 0 && c == ',') {
            return NULL; /* a scalar cannot start with ',' */
        } else {
            if (is_ws(c))
                *has_ws = true;
            p++;
            /* a scalar at the top ends before ',', '}', ']' or whitespace */
            while (depth == 0 && p < end && !is_ws(*p) && *p != ',' && *p != '}' && *p != ']')
                p++;
        }
        if (depth == 0)
            return p;
    }
    return NULL;
}

int herald__json_members_trusted(const void *p, size_t n, herald__json_member_fn fn, void *ud,
                                 bool *value_ws)
{
    const uint8_t *c = p, *end = c + n;
    while (c < end && is_ws(*c))
        c++;
    if (c >= end || *c != '{')
        return -1;
    c++;
    while (c < end && is_ws(*c))
        c++;
    bool closed = c < end && *c == '}';
    if (closed)
        c++;
    while (!closed) {
        while (c < end && is_ws(*c))
            c++;
        if (c >= end || *c != '"')
            return -1;
        const uint8_t *k = c;
        if (!(c = skip_string(c, end)))
            return -1;
        const uint8_t *k_end = c;
        while (c < end && is_ws(*c))
            c++;
        if (c >= end || *c != ':')
            return -1;
        c++;
        while (c < end && is_ws(*c))
            c++;
        const uint8_t *v = c;
        bool ws = false;
        if (!(c = skip_value(c, end, &ws)))
            return -1;
        const uint8_t *v_end = c;
        while (c < end && is_ws(*c))
            c++;
        /* the member is whole only with its ',' or '}': check before handing it out */
        if (c >= end || (*c != ',' && *c != '}'))
            return -1;
        closed = *c++ == '}';
        *value_ws = ws;
        int rc = fn(ud, (const char *)k + 1, (size_t)(k_end - k) - 2, (const char *)v,
                    (size_t)(v_end - v));
        if (rc != 0)
            return rc;
    }
    while (c < end && is_ws(*c))
        c++;
    return c == end ? 0 : -1;
}

/* Appends code point cp as UTF-8 at d (room checked by the caller: 4 bytes). */
static char *put_utf8(char *d, uint32_t cp)
{
    if (cp < 0x80) {
        *d++ = (char)cp;
    } else if (cp < 0x800) {
        *d++ = (char)(0xc0 | cp >> 6);
        *d++ = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        *d++ = (char)(0xe0 | cp >> 12);
        *d++ = (char)(0x80 | (cp >> 6 & 0x3f));
        *d++ = (char)(0x80 | (cp & 0x3f));
    } else {
        *d++ = (char)(0xf0 | cp >> 18);
        *d++ = (char)(0x80 | (cp >> 12 & 0x3f));
        *d++ = (char)(0x80 | (cp >> 6 & 0x3f));
        *d++ = (char)(0x80 | (cp & 0x3f));
    }
    return d;
}

bool herald__json_unescape(const char *s, size_t n, char *dst, size_t cap, size_t *len)
{
    if (cap)
        dst[0] = 0;
    if (n < 2 || s[0] != '"' || s[n - 1] != '"')
        return false;
    const char *p = s + 1, *end = s + n - 1; /* inside the quotes */
    size_t k = 0;
    while (p < end) {
        char one = 0;
        uint32_t cp = 0;
        if (*p != '\\') {
            one = *p++;
        } else {
            /* each escape is checked to lie inside the quotes: text from a damaged store must
             * not make this read past it */
            if (end - p < 2)
                return false;
            char e = p[1];
            p += 2;
            switch (e) {
            case 'b': one = '\b'; break;
            case 'f': one = '\f'; break;
            case 'n': one = '\n'; break;
            case 'r': one = '\r'; break;
            case 't': one = '\t'; break;
            case 'u': {
                int hi = end - p >= 4 ? herald__hex4(p) : -1;
                if (hi < 0)
                    return false;
                cp = (uint32_t)hi;
                p += 4;
                if (cp >= 0xd800 && cp <= 0xdbff) { /* a low surrogate must follow */
                    int lo = end - p >= 6 && p[0] == '\\' && p[1] == 'u' ? herald__hex4(p + 2)
                                                                        : -1;
                    if (lo < 0xdc00 || lo > 0xdfff)
                        return false;
                    cp = 0x10000 + ((cp - 0xd800) << 10) + ((uint32_t)lo - 0xdc00);
                    p += 6;
                } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                    return false;
                }
                break;
            }
            default: one = e; break; /* " \\ / */
            }
        }
        size_t need = one || !cp ? 1 : cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        if (cap < k + need + 1) { /* and the NUL */
            if (cap)
                dst[0] = 0;
            return false;
        }
        if (one || !cp)
            dst[k++] = one;
        else
            k = (size_t)(put_utf8(dst + k, cp) - dst);
    }
    dst[k] = 0;
    if (len)
        *len = k;
    return true;
}

size_t herald__json_compact(const char *s, size_t n, char *dst)
{
    char *d = dst;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            *d++ = c;
            if (c == '\\' && i + 1 < n) /* valid JSON: an escape is never last */
                *d++ = s[++i];
            else if (c == '"')
                in_str = false;
        } else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            *d++ = c;
            in_str = c == '"';
        }
    }
    *d = 0;
    return (size_t)(d - dst);
}

char *herald__base64(const void *p, size_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const uint8_t *s = p;
    char *out = herald__xmalloc((n + 2) / 3 * 4 + 1);
    size_t j = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)s[i + 1] << 8;
        if (i + 2 < n)
            v |= s[i + 2];
        out[j++] = tbl[v >> 18 & 63];
        out[j++] = tbl[v >> 12 & 63];
        out[j++] = (char)(i + 1 < n ? tbl[v >> 6 & 63] : '=');
        out[j++] = (char)(i + 2 < n ? tbl[v & 63] : '=');
    }
    out[j] = 0;
    return out;
}

bool herald__name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > HERALD_QUEUE_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '-' && c != '_')))
            return false;
    }
    return true;
}

void herald__json_path_text(const char *json, size_t len, const char *path, char *out,
                            size_t cap)
{
    out[0] = 0;
    json_t *doc = json_loadb(json, len, 0, NULL);
    json_t *cur = doc;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    char *save = NULL;
    for (char *seg = strtok_r(buf, ".", &save); seg && cur; seg = strtok_r(NULL, ".", &save))
        cur = json_is_object(cur) ? json_object_get(cur, seg) : NULL;
    if (json_is_string(cur)) {
        snprintf(out, cap, "%s", json_string_value(cur));
    } else if (cur && !json_is_null(cur)) {
        char *t = json_dumps(cur, JSON_COMPACT | JSON_ENCODE_ANY);
        if (t)
            snprintf(out, cap, "%s", t);
        free(t); /* lint:ok jansson allocates with malloc */
    }
    json_decref(doc);
}
