// SPDX-License-Identifier: MIT
/*
 * core.h - the core layer's internal contract: errors with detail text, allocation, structured
 * log, clock, ids, text checks. Talks to nothing else in Herald.
 */
#ifndef HERALD_CORE_CORE_H
#define HERALD_CORE_CORE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "herald.h"

/* ---- errors (err.c) ---- */

/* Records a detail message for `rc` in this thread's last-error slot and returns rc, so
 * `return herald__err(HERALD_EINVAL, "max_retries %d out of range 0..100", n);` reads naturally. */
int herald__err(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Like herald__err without changing the detail text if one is already set for this rc. */
int herald__err_keep(int rc);
/* Clears this thread's detail message (called at the top of public entry points). */
void herald__err_clear(void);
/* Copies this thread's detail text into buf (for handing across threads). */
void herald__err_copy(char *buf, size_t cap);
/* HTTP status for rc (500 for unknown). */
int herald__err_http(int rc);

/* Invariants that guard stored data: checked in every build; on failure logs file:line and
 * aborts (a restart recovers from the store). */
#define HERALD_CHECK(x)                                                                           \
    do {                                                                                          \
        if (!(x))                                                                                 \
            herald__check_failed(#x, __FILE__, __LINE__);                                         \
    } while (0)
void herald__check_failed(const char *expr, const char *file, int line)
    __attribute__((noreturn));

/* ---- allocation (alloc.c) ---- */

/* Aborts on exhaustion: internal fixed-size allocations; restart recovers from the store. */
void *herald__xmalloc(size_t n);
void *herald__xcalloc(size_t n, size_t size);
void *herald__xrealloc(void *p, size_t n);
char *herald__xstrdup(const char *s);
void *herald__xmemdup(const void *p, size_t n);
/* Input-sized data: NULL when n > cap or on exhaustion (caller returns ENOMEM/ETOOBIG). */
void *herald__try_malloc(size_t n, size_t cap);
void herald__free(void *p);

/* ---- log (log.c) ---- */

typedef enum herald__log_level {
    HERALD_LOG_DEBUG = 0,
    HERALD_LOG_INFO = 1,
    HERALD_LOG_WARN = 2,
    HERALD_LOG_ERROR = 3,
    HERALD_LOG_OFF = 4,
} herald__log_level;

/* One JSON line on stderr: {"ts":"…","level":"warn","msg":"…", <kv pairs>}. kv is a NULL-
 * terminated list of (key, string value) pairs. Level from env HERALD_LOG (debug|info|warn|
 * error|off; default warn). Thread: any. */
void herald__log(herald__log_level lvl, const char *msg, ...);
bool herald__log_enabled(herald__log_level lvl);
/* Like herald__log at info level, but printed unless HERALD_LOG=off (middleware logging). */
void herald__log_always(const char *msg, ...);

/* ---- clock (clock.c) ---- */

int64_t herald__wall_ms(void);        /* real wall clock */
int64_t herald__mono_ns(void);        /* CLOCK_MONOTONIC */
int64_t herald__clock_now(const herald_clock *c); /* c NULL -> real */
/* Formats ms-since-epoch as "2026-01-01T00:00:00.000Z" into buf (>= 32 bytes). */
void herald__iso8601(int64_t ms, char *buf, size_t cap);

/* ---- ids (uuid.c) ---- */

/* UUIDv7 (RFC 9562) text, lowercase, 36 chars + NUL, from getrandom(2); monotonic within a
 * process even within one millisecond. Thread: any. */
void herald__uuid7(char out[HERALD_ID_SIZE]);
void herald__uuid7_at(int64_t ms, char out[HERALD_ID_SIZE]);
/* Random 64-bit value from getrandom(2). */
uint64_t herald__rand64(void);
/* Text UUID -> 16 bytes; false if malformed. */
bool herald__uuid_parse(const char *s, uint8_t out[16]);
void herald__uuid_format(const uint8_t in[16], char out[HERALD_ID_SIZE]);

/* ---- text (text.c) ---- */

bool herald__utf8_valid(const void *p, size_t n);
/* The longest prefix of s[0..n) of at most max bytes that does not end inside a UTF-8
 * character: n when n <= max. */
size_t herald__utf8_cut(const char *s, size_t n, size_t max);
/* Copies the NUL-terminated src (NULL: "") into dst[0..cap) as valid UTF-8: every byte that does
 * not start a valid sequence becomes U+FFFD, and the copy stops before the first character that
 * would not fit in cap - 1 bytes. NUL-terminates (cap > 0); returns the length written. Every
 * text that may come from a user and is stored or logged (error texts) goes through it. */
size_t herald__utf8_copy(char *dst, size_t cap, const char *src);
/* herald__utf8_copy into a new buffer of at most max + 1 bytes (free with herald__free). */
char *herald__utf8_dup(const char *src, size_t max);
/* Longest error text a message keeps (its last_error, an attempt's error): bytes, without NUL. */
#define HERALD__ERROR_TEXT_MAX HERALD_ERROR_TEXT_MAX
#define HERALD__STR_(x) #x
#define HERALD__STR(x) HERALD__STR_(x)
/* The value of one hex digit (either case), or -1. */
int herald__hexdigit(int c);
/* The value of 4 hex digits at s (either case), or -1. */
int herald__hex4(const void *s);
/* 0 if p[0..n) is exactly one JSON value (RFC 8259, UTF-8; duplicate keys accepted); else
 * HERALD_EBADJSON with detail naming `what`, line and column. No allocation. */
int herald__json_check(const void *p, size_t n, const char *what);
/* Same; must_be_object also requires the value to be an object. */
int herald__json_scan(const void *p, size_t n, bool must_be_object, const char *what);
/* Same with nesting limited to max_depth (HERALD_JSON_MAX_DEPTH - 1 for an event's payload, which
 * its envelope wraps in one more level). */
int herald__json_scan_depth(const void *p, size_t n, bool must_be_object, int max_depth,
                            const char *what);
/* Calls fn for each member of the JSON object that is exactly p[0..n) (validated whole, as
 * herald__json_scan; member values nest at most HERALD_JSON_MAX_DEPTH - 1): key points between the key's quotes (escapes not decoded), val/vlen is
 * the value's text. Stops at fn's first non-zero result and returns it. Not an object or not
 * valid JSON: HERALD_EBADJSON with detail naming `what`, line and column. No allocation. */
typedef int (*herald__json_member_fn)(void *ud, const char *key, size_t klen, const char *val,
                                      size_t vlen);
int herald__json_members(const void *p, size_t n, const char *what, herald__json_member_fn fn,
                         void *ud);
/* Like herald__json_members, for text already validated (a stored message body): checks the
 * structure only, so it is several times faster. Returns -1 (no error detail) when the text is
 * not one object after all; fn sees a member only once its ',' or '}' was seen. *value_ws: the last value given to fn had whitespace outside its
 * strings (needs herald__json_compact). */
int herald__json_members_trusted(const void *p, size_t n, herald__json_member_fn fn, void *ud,
                                 bool *value_ws);
/* Decodes a valid JSON string literal s[0..n) (quotes included) into dst as UTF-8, NUL-ended;
 * false (dst "") when it needs more than cap - 1 bytes, or when s is not a string literal with
 * well-formed escapes after all (checked, never read past s + n). *len (may be NULL): its
 * length. */
bool herald__json_unescape(const char *s, size_t n, char *dst, size_t cap, size_t *len);
/* Copies the valid JSON text s[0..n) to dst without whitespace outside strings; returns the
 * length written (<= n) and NUL-terminates (dst holds n + 1). */
size_t herald__json_compact(const char *s, size_t n, char *dst);
/* RFC 4648 base64; returns NUL-terminated text to free with herald__free. */
char *herald__base64(const void *p, size_t n);
/* The value at a dot path (relative to the object) of a JSON text, as text: a string's
 * characters, other values as compact JSON; "" when absent. */
void herald__json_path_text(const char *json, size_t len, const char *path, char *out,
                            size_t cap);
/* Queue names: 1..63 bytes of [A-Za-z0-9_-], first alnum. */
bool herald__name_valid(const char *name);

/* ---- envelope (envelope.c) ---- */

bool herald__event_type_valid(const char *type);
/* herald_envelope_parse for a body that is valid JSON already (a stored message, or one
 * validated for sending): checks the envelope's fields but not the JSON again, several times
 * faster. */
int herald__envelope_parse_stored(const void *body, size_t len, herald_envelope *out);
/* Fills corr/event_id/type from an envelope body (valid JSON, as above) that carries a
 * correlation_id; false (and nothing written) for any other body. Cheap for bodies that are not
 * envelopes. */
bool herald__envelope_trace(const void *body, size_t len, char corr[HERALD_CORRELATION_ID_MAX + 1],
                            char event_id[HERALD_ID_SIZE], char type[HERALD_EVENT_TYPE_MAX + 1]);

/* Validates every field of e (the message names the bad one): HERALD_EENVELOPE. */
int herald__event_check(const herald_event *e);
/* Encodes e with timestamp now_ms (see herald_event_encode). */
int herald__event_encode_at(const herald_event *e, int64_t now_ms, char event_id[HERALD_ID_SIZE],
                            char **json_out, size_t *len_out);

/* ---- JSONC with positions (jsonc.c) ---- */

typedef struct herald__jsonc herald__jsonc;
struct json_t;
/* Parses text (// and block comments, trailing commas). Errors: HERALD_ECONFIG with detail
 * "FILE:LINE:COL: what". file names the input in messages. */
int herald__jsonc_parse(const char *text, size_t n, const char *file, herald__jsonc **out);
int herald__jsonc_load(const char *path, herald__jsonc **out);
struct json_t *herald__jsonc_root(const herald__jsonc *j); /* owned by j */
/* Line (and column) where value v starts; 0 if v is not from this document. */
int herald__jsonc_line(const herald__jsonc *j, const struct json_t *v, int *col);
/* Records HERALD_ECONFIG "FILE:LINE:COL: message" at value v (just "FILE: message" when v has
 * no position) and returns HERALD_ECONFIG. */
int herald__jsonc_err(const herald__jsonc *j, const struct json_t *v, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int herald__jsonc_errv(const herald__jsonc *j, const struct json_t *v, const char *fmt,
                       va_list ap) __attribute__((format(printf, 3, 0)));
void herald__jsonc_free(herald__jsonc *j);

#endif
