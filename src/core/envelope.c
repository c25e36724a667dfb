// SPDX-License-Identifier: MIT
/*
 * envelope.c - the event envelope (the reference architecture's DomainMessage):
 *   {"event_id": UUID, "type": "domain.action", "source": "service",
 *    "timestamp": "2026-01-01T00:00:00.000Z", "correlation_id": "..." (optional),
 *    "payload": { ... }}
 * Encoding validates every field and names the bad one; parsing does the same for a body that
 * claims to be an envelope, in one pass over it (text.c; no JSON tree). Bodies from the store
 * were validated when sent: herald__envelope_parse_stored checks their fields, not their JSON,
 * and herald__envelope_trace reads only the fields (encode writes correlation_id before the
 * payload, so a trace reader looks for it near the start). event_id is minted as UUIDv7 unless
 * the caller re-publishes one.
 * Threads: any. Ownership: encode returns text to free with herald__free (herald_free);
 * parse fills a caller-owned struct whose payload_json is freed by herald_envelope_deinit().
 */
#include "core/core.h"

#include <string.h>

bool herald__event_type_valid(const char *t)
{
    size_t n = t ? strlen(t) : 0;
    if (n < 3 || n > HERALD_EVENT_TYPE_MAX)
        return false;
    int segments = 0;
    bool at_start = true;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (at_start) {
            if (c < 'a' || c > 'z')
                return false;
            at_start = false;
            segments++;
        } else if (c == '.') {
            at_start = true;
        } else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
            return false;
        }
    }
    return !at_start && segments >= 2;
}

static bool source_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n > HERALD_EVENT_SOURCE_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("._:/-", c)))
            return false;
    }
    return true;
}

static bool correlation_valid(const char *s)
{
    size_t n = strlen(s);
    if (n > HERALD_CORRELATION_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x21 || s[i] > 0x7e)
            return false;
    return true;
}

int herald__event_check(const herald_event *e)
{
    if (!e)
        return herald__err(HERALD_EENVELOPE, "event is NULL");
    uint8_t b[16];
    if (e->event_id && !herald__uuid_parse(e->event_id, b))
        return herald__err(HERALD_EENVELOPE, "event_id '%.60s' is not a UUID", e->event_id);
    if (!herald__event_type_valid(e->type))
        return herald__err(HERALD_EENVELOPE,
                           "type '%.120s' is not dot notation domain.action (lowercase "
                           "[a-z][a-z0-9_]* segments, at least two, at most %d bytes)",
                           e->type ? e->type : "(null)", HERALD_EVENT_TYPE_MAX);
    if (!source_valid(e->source))
        return herald__err(HERALD_EENVELOPE,
                           "source '%.120s' is invalid: 1-%d characters of A-Z a-z 0-9 . _ : / -",
                           e->source ? e->source : "(null)", HERALD_EVENT_SOURCE_MAX);
    if (e->correlation_id && !correlation_valid(e->correlation_id))
        return herald__err(HERALD_EENVELOPE,
                           "correlation_id is invalid: at most %d printable ASCII characters",
                           HERALD_CORRELATION_ID_MAX);
    if (!e->payload_json)
        return herald__err(HERALD_EENVELOPE, "payload is missing (use {} for an empty one)");
    size_t len = e->payload_len ? e->payload_len : strlen(e->payload_json);
    if (herald__json_scan_depth(e->payload_json, len, true, HERALD_JSON_MAX_DEPTH - 1,
                                "payload") < 0) {
        char detail[400];
        herald__err_copy(detail, sizeof detail);
        return herald__err(HERALD_EENVELOPE, "%s", detail);
    }
    return 0;
}

/* Appends to a growing buffer (capacity computed up front, so no overflow). */
static char *put(char *d, const char *s, size_t n)
{
    memcpy(d, s, n);
    return d + n;
}

#define PUTS(d, lit) put((d), (lit), sizeof(lit) - 1)

int herald__event_encode_at(const herald_event *e, int64_t now_ms, char event_id[HERALD_ID_SIZE],
                            char **json_out, size_t *len_out)
{
    int rc = herald__event_check(e);
    if (rc < 0)
        return rc;
    char id[HERALD_ID_SIZE];
    if (e->event_id) {
        uint8_t b[16];
        herald__uuid_parse(e->event_id, b);
        herald__uuid_format(b, id); /* normalized to lowercase */
    } else {
        herald__uuid7_at(now_ms, id);
    }
    char ts[40];
    herald__iso8601(now_ms, ts, sizeof ts);
    /* The payload goes in verbatim (validated above), trimmed of surrounding whitespace; the
     * other fields hold only characters that need no escaping, but the correlation id. */
    const char *pl = e->payload_json;
    size_t plen = e->payload_len ? e->payload_len : strlen(pl);
    while (plen && strchr(" \t\r\n", pl[0])) {
        pl++;
        plen--;
    }
    while (plen && strchr(" \t\r\n", pl[plen - 1]))
        plen--;
    const char *corr = e->correlation_id && e->correlation_id[0] ? e->correlation_id : NULL;
    size_t cap = 160 + strlen(e->type) + strlen(e->source) + (corr ? 2 * strlen(corr) : 0) +
                 plen;
    char *buf = herald__xmalloc(cap), *d = buf;
    d = PUTS(d, "{\"event_id\":\"");
    d = put(d, id, HERALD_ID_SIZE - 1);
    d = PUTS(d, "\",\"type\":\"");
    d = put(d, e->type, strlen(e->type));
    d = PUTS(d, "\",\"source\":\"");
    d = put(d, e->source, strlen(e->source));
    d = PUTS(d, "\",\"timestamp\":\"");
    d = put(d, ts, strlen(ts));
    if (corr) {
        d = PUTS(d, "\",\"correlation_id\":\"");
        for (const char *c = corr; *c; c++) {
            if (*c == '"' || *c == '\\')
                *d++ = '\\';
            *d++ = *c;
        }
    }
    d = PUTS(d, "\",\"payload\":");
    d = put(d, pl, plen);
    *d++ = '}';
    *d = 0;
    *json_out = buf;
    if (len_out)
        *len_out = (size_t)(d - buf);
    if (event_id)
        memcpy(event_id, id, HERALD_ID_SIZE);
    return 0;
}

/* The envelope's fields as found by one pass over the body (no JSON tree: this runs for every
 * message an effectively-once or middleware consumer handles). The last of duplicate keys wins,
 * as with JSON.parse. */
enum { F_EVENT_ID, F_TYPE, F_SOURCE, F_TIMESTAMP, F_CORRELATION, F_PAYLOAD, F_N };
static const char *const field_names[F_N] = { "event_id", "type", "source", "timestamp",
                                              "correlation_id", "payload" };

typedef struct env_scan {
    const char *val[F_N];
    size_t len[F_N];
    const bool *value_ws; /* trusted walk: whether the current value has whitespace */
    bool payload_ws;
} env_scan;

static int env_member(void *ud, const char *key, size_t klen, const char *val, size_t vlen)
{
    env_scan *es = ud;
    char k[24];
    if (memchr(key, '\\', klen)) { /* an escaped key: compare what it means */
        if (!herald__json_unescape(key - 1, klen + 2, k, sizeof k, &klen))
            return 0; /* longer than any field name */
        key = k;
    }
    static const size_t name_len[F_N] = { 8, 4, 6, 9, 14, 7 };
    for (int f = 0; f < F_N; f++) {
        if (name_len[f] == klen && memcmp(field_names[f], key, klen) == 0) {
            es->val[f] = val;
            es->len[f] = vlen;
            if (f == F_PAYLOAD)
                es->payload_ws = !es->value_ws || *es->value_ws;
        }
    }
    return 0;
}

static int get_str(const env_scan *es, int f, bool required, char *dst, size_t cap)
{
    const char *key = field_names[f], *v = es->val[f];
    if (!v || (es->len[f] == 4 && memcmp(v, "null", 4) == 0)) {
        dst[0] = 0;
        return required ? herald__err(HERALD_EENVELOPE, "envelope field '%s' is missing", key) : 0;
    }
    if (v[0] != '"')
        return herald__err(HERALD_EENVELOPE, "envelope field '%s' must be a string", key);
    size_t n = 0;
    if (!herald__json_unescape(v, es->len[f], dst, cap, &n))
        return herald__err(HERALD_EENVELOPE, "envelope field '%s' is longer than %zu bytes", key,
                           cap - 1);
    if (strlen(dst) != n)
        return herald__err(HERALD_EENVELOPE, "envelope field '%s' contains a NUL character",
                           key);
    return 0;
}

/* with_payload false: the fields only (payload_json stays NULL; nothing to deinit). */
static int parse(const void *body, size_t len, herald_envelope *out, bool trusted,
                 bool with_payload)
{
    env_scan es;
    memset(&es, 0, sizeof es);
    bool value_ws = false;
    int rc;
    if (trusted) {
        es.value_ws = &value_ws;
        rc = herald__json_members_trusted(body, len, env_member, &es, &value_ws);
        if (rc < 0)
            return herald__err(HERALD_EENVELOPE, "body is not a JSON object");
    } else {
        rc = herald__json_members(body, len, "body", env_member, &es);
    }
    if (rc < 0) { /* "body is not valid JSON: ... (line, column)" / "body must be a JSON object" */
        char detail[300];
        herald__err_copy(detail, sizeof detail);
        return herald__err(HERALD_EENVELOPE, "%s", detail);
    }
    herald_envelope e;
    memset(&e, 0, sizeof e);
    rc = get_str(&es, F_EVENT_ID, true, e.event_id, sizeof e.event_id);
    uint8_t b[16];
    if (rc == 0 && !herald__uuid_parse(e.event_id, b))
        rc = herald__err(HERALD_EENVELOPE, "envelope field 'event_id' is not a UUID");
    if (rc == 0)
        rc = get_str(&es, F_TYPE, true, e.type, sizeof e.type);
    if (rc == 0 && !herald__event_type_valid(e.type))
        rc = herald__err(HERALD_EENVELOPE, "envelope field 'type' '%s' is not domain.action",
                         e.type);
    if (rc == 0)
        rc = get_str(&es, F_SOURCE, true, e.source, sizeof e.source);
    if (rc == 0)
        rc = get_str(&es, F_TIMESTAMP, true, e.timestamp, sizeof e.timestamp);
    if (rc == 0)
        rc = get_str(&es, F_CORRELATION, false, e.correlation_id, sizeof e.correlation_id);
    const char *p = es.val[F_PAYLOAD];
    if (rc == 0 && (!p || p[0] != '{'))
        rc = herald__err(HERALD_EENVELOPE, "envelope field 'payload' %s",
                         p ? "must be a JSON object" : "is missing");
    if (rc < 0)
        return rc;
    if (!with_payload) {
        *out = e;
        return 0;
    }
    e.payload_json = herald__xmalloc(es.len[F_PAYLOAD] + 1);
    if (es.payload_ws) {
        e.payload_len = herald__json_compact(p, es.len[F_PAYLOAD], e.payload_json);
    } else { /* already compact: the common case of bodies Herald encoded */
        memcpy(e.payload_json, p, es.len[F_PAYLOAD]);
        e.payload_json[es.len[F_PAYLOAD]] = 0;
        e.payload_len = es.len[F_PAYLOAD];
    }
    *out = e;
    return 0;
}

int herald_envelope_parse(const void *body, size_t len, herald_envelope *out)
{
    herald__err_clear();
    if (!body || !out)
        return herald__err(HERALD_EINVAL, "herald_envelope_parse: NULL argument");
    return parse(body, len, out, false, true);
}

int herald__envelope_parse_stored(const void *body, size_t len, herald_envelope *out)
{
    herald__err_clear();
    return parse(body, len, out, true, true);
}

void herald_envelope_deinit(herald_envelope *e)
{
    if (!e)
        return;
    herald__free(e->payload_json);
    e->payload_json = NULL;
    e->payload_len = 0;
}

bool herald__envelope_trace(const void *body, size_t len, char corr[HERALD_CORRELATION_ID_MAX + 1],
                            char event_id[HERALD_ID_SIZE], char type[HERALD_EVENT_TYPE_MAX + 1])
{
    static const char prefix[] = "{\"event_id\":\"";
    static const char key[] = "\"correlation_id\"";
    if (len < sizeof prefix || memcmp(body, prefix, sizeof prefix - 1) != 0)
        return false;
    const char *b = body;
    bool has_key = false;
    for (size_t i = 0; !has_key && i + sizeof key - 1 <= len && i < 400; i++)
        has_key = b[i] == '"' && memcmp(b + i, key, sizeof key - 1) == 0;
    if (!has_key) /* Herald writes correlation_id before the payload: near the start */
        return false;
    herald_envelope env;
    if (parse(body, len, &env, true, false) < 0) { /* the fields: no copy of the payload */
        herald__err_clear();
        return false;
    }
    bool traced = env.correlation_id[0] != 0;
    if (traced) {
        memcpy(corr, env.correlation_id, sizeof env.correlation_id);
        memcpy(event_id, env.event_id, sizeof env.event_id);
        memcpy(type, env.type, sizeof env.type);
    }
    return traced;
}
