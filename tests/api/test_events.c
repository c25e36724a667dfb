// SPDX-License-Identifier: MIT
/*
 * test_events.c - the event envelope (include/herald.h "Events: the envelope"; the reference
 * architecture's DomainMessage): herald_event_encode, herald_envelope_parse, herald_send_event
 * and `herald send --type ... --source ...`.
 *
 * What is checked: the body is exactly the envelope {event_id, type, source, timestamp,
 * correlation_id only when given, payload}; a minted event_id is a UUIDv7; a given one is kept
 * (lowercased); the timestamp is ISO 8601 UTC with ms, ending in Z, read from the STORE's clock
 * (the fake clock of hx_env); parse round-trips encode; every malformed field is refused with
 * HERALD_EENVELOPE and a message naming that field, and a refused herald_send_event sends
 * nothing. The CLI suite prints/pulls an event through the `herald` binary.
 */
#include <criterion/criterion.h>
#include <jansson.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "herald.h"
#include "support.h"

static hx_env env;

static void setup(void)
{
    hx_env_setup_with_queue(&env, "q"); /* fake clock at 2026-01-01T00:00:00Z */
}

static void teardown(void)
{
    hx_env_teardown(&env);
}

TestSuite(events, .init = setup, .fini = teardown, .timeout = 30);

/* ---- helpers ------------------------------------------------------------------------------- */

#define FIXED_ID "01890a5b-2c3d-7e4f-8a1b-2c3d4e5f6a7b"
#define PAYLOAD "{\"research_id\":\"abc\"}"

static herald_event ev(const char *type, const char *source, const char *corr,
                       const char *payload)
{
    herald_event e;
    memset(&e, 0, sizeof e);
    e.type = type;
    e.source = source;
    e.correlation_id = corr;
    e.payload_json = payload;
    return e;
}

static herald_event good(void)
{
    return ev("research.completed", "gatherfeed", NULL, PAYLOAD);
}

/* Encodes e; asserts success and returns the body (caller frees with herald_free). */
static char *encode_ok(const herald_event *e, char id[HERALD_ID_SIZE])
{
    char *json = NULL;
    size_t len = 0;
    int rc = herald_event_encode(env.store, e, id, &json, &len);
    cr_assert_eq(rc, 0, "herald_event_encode: %s (%s)", herald_err_name(rc), herald_last_error());
    cr_assert_not_null(json);
    cr_assert_eq(len, strlen(json), "len_out %zu, strlen %zu", len, strlen(json));
    return json;
}

/* Asserts encode fails with HERALD_EENVELOPE naming `field`, and that send_event fails the
 * same way and sends nothing. */
static void assert_refused(const herald_event *e, const char *field, const char *what)
{
    char *json = NULL;
    char id[HERALD_ID_SIZE] = "untouched";
    int rc = herald_event_encode(env.store, e, id, &json, NULL);
    cr_assert_eq(rc, HERALD_EENVELOPE, "%s: encode rc %s, want HERALD_EENVELOPE", what,
                 herald_err_name(rc));
    cr_assert(hx_mentions(herald_last_error(), field), "%s: error does not name '%s': %s", what,
              field, herald_last_error());
    cr_assert_null(json, "%s: json_out set on failure", what);
    cr_assert_str_eq(id, "untouched", "%s: event_id_out set on failure", what);

    herald_queue_stats before = hx_stats(env.store, "q");
    rc = herald_send_event(env.store, "q", e, HERALD_UNSET, id);
    cr_assert_eq(rc, HERALD_EENVELOPE, "%s: send_event rc %s, want HERALD_EENVELOPE", what,
                 herald_err_name(rc));
    cr_assert(hx_mentions(herald_last_error(), field), "%s: send error does not name '%s': %s",
              what, field, herald_last_error());
    cr_assert_str_eq(id, "untouched", "%s: event_id_out set on failure", what);
    herald_queue_stats after = hx_stats(env.store, "q");
    cr_assert_eq(after.sent_total, before.sent_total, "%s: a message was sent", what);
    cr_assert_eq(after.backlog_count, before.backlog_count, "%s: backlog changed", what);
}

static bool is_uuid_v7(const char *s)
{
    return hx_is_uuid(s) && s[14] == '7' && strchr("89abAB", s[19]) != NULL;
}

static bool is_lower(const char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            return false;
    return true;
}

/* Parses text as a JSON object and asserts its keys are exactly `keys` (n of them). */
static json_t *parse_obj_with_keys(const char *text, const char *const *keys, size_t n)
{
    json_error_t je;
    json_t *o = json_loads(text, 0, &je);
    cr_assert_not_null(o, "body is not JSON: %s: %s", je.text, text);
    cr_assert(json_is_object(o), "body is not an object: %s", text);
    cr_assert_eq(json_object_size(o), n, "body has %zu keys, want %zu: %s", json_object_size(o),
                 n, text);
    for (size_t i = 0; i < n; i++)
        cr_assert_not_null(json_object_get(o, keys[i]), "key %s missing: %s", keys[i], text);
    return o;
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    cr_assert_not_null(s);
    memset(s, c, n);
    s[n] = 0;
    return s;
}

/* ---- encode: the body ---------------------------------------------------------------------- */

Test(events, encode_body_is_exactly_the_envelope_without_correlation_id)
{
    herald_event e = good();
    e.event_id = FIXED_ID;
    char id[HERALD_ID_SIZE];
    char *json = encode_ok(&e, id);
    cr_assert_str_eq(id, FIXED_ID);
    cr_assert_str_eq(json,
                     "{\"event_id\":\"" FIXED_ID "\",\"type\":\"research.completed\","
                     "\"source\":\"gatherfeed\",\"timestamp\":\"2026-01-01T00:00:00.000Z\","
                     "\"payload\":" PAYLOAD "}");
    herald_free(json);
}

Test(events, encode_body_has_correlation_id_only_when_given)
{
    herald_event e = good();
    e.correlation_id = "brand-cycle-42";
    char *json = encode_ok(&e, NULL);
    static const char *const with[] = { "event_id", "type", "source", "timestamp",
                                        "correlation_id", "payload" };
    json_t *o = parse_obj_with_keys(json, with, 6);
    cr_assert_str_eq(json_string_value(json_object_get(o, "correlation_id")), "brand-cycle-42");
    json_decref(o);
    herald_free(json);

    e.correlation_id = ""; /* "" means none */
    json = encode_ok(&e, NULL);
    static const char *const without[] = { "event_id", "type", "source", "timestamp",
                                           "payload" };
    o = parse_obj_with_keys(json, without, 5);
    json_decref(o);
    herald_free(json);
}

Test(events, encode_mints_a_uuidv7_event_id_and_reports_it)
{
    herald_event e = good();
    char id[HERALD_ID_SIZE];
    char *json = encode_ok(&e, id);
    cr_assert(is_uuid_v7(id), "minted event_id is not a UUIDv7: %s", id);
    cr_assert(is_lower(id), "event_id not lowercase: %s", id);
    static const char *const keys[] = { "event_id", "type", "source", "timestamp", "payload" };
    json_t *o = parse_obj_with_keys(json, keys, 5);
    cr_assert_str_eq(json_string_value(json_object_get(o, "event_id")), id);
    cr_assert_str_eq(json_string_value(json_object_get(o, "type")), "research.completed");
    cr_assert_str_eq(json_string_value(json_object_get(o, "source")), "gatherfeed");
    json_t *p = json_object_get(o, "payload");
    cr_assert(json_is_object(p));
    cr_assert_str_eq(json_string_value(json_object_get(p, "research_id")), "abc");
    json_decref(o);
    herald_free(json);

    /* two events get two ids */
    char id2[HERALD_ID_SIZE];
    json = encode_ok(&e, id2);
    cr_assert(is_uuid_v7(id2), "%s", id2);
    cr_assert_str_neq(id, id2, "two events share an event_id");
    herald_free(json);
}

Test(events, encode_timestamp_is_iso8601_utc_from_the_store_clock)
{
    herald_event e = good();
    char *json = encode_ok(&e, NULL);
    static const char *const keys[] = { "event_id", "type", "source", "timestamp", "payload" };
    json_t *o = parse_obj_with_keys(json, keys, 5);
    cr_assert_str_eq(json_string_value(json_object_get(o, "timestamp")),
                     "2026-01-01T00:00:00.000Z");
    json_decref(o);
    herald_free(json);

    hx_clock_advance(&env.clock, 86400000LL + 3723456LL); /* +1 day 1:02:03.456 */
    json = encode_ok(&e, NULL);
    o = parse_obj_with_keys(json, keys, 5);
    const char *ts = json_string_value(json_object_get(o, "timestamp"));
    cr_assert_str_eq(ts, "2026-01-02T01:02:03.456Z");
    cr_assert_eq(ts[strlen(ts) - 1], 'Z');
    json_decref(o);
    herald_free(json);
}

Test(events, encode_keeps_a_given_event_id_normalized_to_lowercase)
{
    herald_event e = good();
    e.event_id = "01890A5B-2C3D-7E4F-8A1B-2C3D4E5F6A7B";
    char id[HERALD_ID_SIZE];
    char *json = encode_ok(&e, id);
    cr_assert_str_eq(id, FIXED_ID);
    cr_assert(strstr(json, "\"event_id\":\"" FIXED_ID "\""), "body: %s", json);
    herald_free(json);

    /* a version-4 UUID (the reference architecture's) is kept as is */
    e.event_id = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";
    json = encode_ok(&e, id);
    cr_assert_str_eq(id, "3f2504e0-4f89-41d3-9a0c-0305e82c3301");
    cr_assert(strstr(json, "\"event_id\":\"3f2504e0-4f89-41d3-9a0c-0305e82c3301\""), "%s", json);
    herald_free(json);
}

Test(events, encode_accepts_the_limits)
{
    /* type: 100 bytes, several segments with digits and '_' */
    char *t = repeat('a', HERALD_EVENT_TYPE_MAX);
    t[10] = '.';
    t[20] = '_';
    t[30] = '.';
    t[31] = 'b';
    t[32] = '9';
    char *src = repeat('S', HERALD_EVENT_SOURCE_MAX);
    char *corr = repeat('c', HERALD_CORRELATION_ID_MAX);
    corr[0] = '!';
    corr[1] = '~';
    corr[2] = '"';
    corr[3] = '\\';
    herald_event e = ev(t, src, corr, "{}");
    char *json = encode_ok(&e, NULL);
    herald_envelope en;
    int rc = herald_envelope_parse(json, strlen(json), &en);
    cr_assert_eq(rc, 0, "parse: %s", herald_last_error());
    cr_assert_str_eq(en.type, t);
    cr_assert_str_eq(en.source, src);
    cr_assert_str_eq(en.correlation_id, corr);
    herald_envelope_deinit(&en);
    herald_free(json);

    static const char *const ok_types[] = { "a.b", "research.completed", "a_1.b2.c_d" };
    static const char *const ok_sources[] = { "a", "scalable-media", "svc.v2:eu/west_1" };
    for (size_t i = 0; i < 3; i++) {
        e = ev(ok_types[i], ok_sources[i], NULL, "{}");
        json = encode_ok(&e, NULL);
        herald_free(json);
    }
    free(t);
    free(src);
    free(corr);
}

Test(events, encode_uses_payload_len_when_given)
{
    herald_event e = good();
    e.event_id = FIXED_ID;
    e.payload_json = "{\"a\":1}GARBAGE";
    e.payload_len = 7;
    char *json = encode_ok(&e, NULL);
    cr_assert(strstr(json, "\"payload\":{\"a\":1}}") != NULL, "body: %s", json);
    cr_assert(strstr(json, "GARBAGE") == NULL, "body: %s", json);
    herald_free(json);
}

/* ---- encode: refused input ----------------------------------------------------------------- */

/* Each of the n values bad[] (NULL where listed), then long_value, in the string field at offset
 * `field` of an otherwise good event is refused, naming `name`. */
static void assert_values_refused(size_t field, const char *name, const char *const *bad,
                                  size_t n, const char *long_value)
{
    char what[96];
    for (size_t i = 0; i < n; i++) {
        herald_event e = good();
        *(const char **)((char *)&e + field) = bad[i];
        snprintf(what, sizeof what, "%s #%zu '%s'", name, i, bad[i] ? bad[i] : "(null)");
        assert_refused(&e, name, what);
    }
    herald_event e = good();
    *(const char **)((char *)&e + field) = long_value;
    snprintf(what, sizeof what, "%s of %zu bytes", name, strlen(long_value));
    assert_refused(&e, name, what);
}

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

Test(events, type_not_in_dot_notation_is_refused_naming_type)
{
    char *long_type = repeat('a', HERALD_EVENT_TYPE_MAX + 1);
    long_type[5] = '.';
    static const char *const bad[] = { "Research", "research", "a.", ".a", "a..b",
                                       "Research.Completed", "research.Completed", "1a.b",
                                       "a.1b", "a-b.c", "a.b ", "", NULL };
    assert_values_refused(offsetof(herald_event, type), "type", bad, N_OF(bad), long_type);
    free(long_type);
}

Test(events, bad_source_is_refused_naming_source)
{
    char *long_src = repeat('s', HERALD_EVENT_SOURCE_MAX + 1);
    static const char *const bad[] = { "", "svc name", "svc@host", "svc\n", "svc\"", "sv\xc3\xa9",
                                       NULL };
    assert_values_refused(offsetof(herald_event, source), "source", bad, N_OF(bad), long_src);
    free(long_src);
}

Test(events, bad_correlation_id_is_refused_naming_it)
{
    char *long_corr = repeat('c', HERALD_CORRELATION_ID_MAX + 1);
    static const char *const bad[] = { "a b", " ", "a\tb", "a\x01" "b", "a\x7f", "caf\xc3\xa9" };
    assert_values_refused(offsetof(herald_event, correlation_id), "correlation_id", bad,
                          N_OF(bad), long_corr);
    free(long_corr);
}

Test(events, payload_not_a_json_object_is_refused_naming_payload)
{
    static const char *const bad[] = { "{not json", "{\"a\":1", "[1,2]", "\"str\"", "42", "null",
                                       "{} {}", "" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        herald_event e = good();
        e.payload_json = bad[i];
        char what[64];
        snprintf(what, sizeof what, "payload '%s'", bad[i]);
        assert_refused(&e, "payload", what);
    }
    herald_event e = good();
    e.payload_json = NULL;
    assert_refused(&e, "payload", "payload NULL");
}

Test(events, event_id_not_a_uuid_is_refused_naming_event_id)
{
    static const char *const bad[] = { "not-a-uuid", "", "01890a5b2c3d7e4f8a1b2c3d4e5f6a7b",
                                       "01890a5b-2c3d-7e4f-8a1b-2c3d4e5f6a7", /* 35 chars */
                                       "01890a5b-2c3d-7e4f-8a1b-2c3d4e5f6a7bc",
                                       "g1890a5b-2c3d-7e4f-8a1b-2c3d4e5f6a7b" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        herald_event e = good();
        e.event_id = bad[i];
        char what[80];
        snprintf(what, sizeof what, "event_id '%s'", bad[i]);
        assert_refused(&e, "event_id", what);
    }
}

Test(events, null_event_is_refused)
{
    char *json = NULL;
    int rc = herald_event_encode(env.store, NULL, NULL, &json, NULL);
    cr_assert_eq(rc, HERALD_EENVELOPE, "rc %s", herald_err_name(rc));
    cr_assert_null(json);
    rc = herald_send_event(env.store, "q", NULL, HERALD_UNSET, NULL);
    cr_assert(rc < 0, "send_event(NULL) succeeded");
    cr_assert_eq(hx_stats(env.store, "q").sent_total, 0);
}

/* ---- parse --------------------------------------------------------------------------------- */

Test(events, parse_round_trips_encode)
{
    herald_event e = good();
    e.correlation_id = "corr-7";
    e.payload_json = "{\"research_id\":\"abc\",\"n\":[1,2,{\"x\":null}],\"s\":\"\\u00e9\\\"\"}";
    hx_clock_advance(&env.clock, 1500);
    char id[HERALD_ID_SIZE];
    char *json = encode_ok(&e, id);
    herald_envelope en;
    memset(&en, 0, sizeof en);
    int rc = herald_envelope_parse(json, strlen(json), &en);
    cr_assert_eq(rc, 0, "parse: %s (%s)", herald_err_name(rc), herald_last_error());
    cr_assert_str_eq(en.event_id, id);
    cr_assert_str_eq(en.type, "research.completed");
    cr_assert_str_eq(en.source, "gatherfeed");
    cr_assert_str_eq(en.correlation_id, "corr-7");
    cr_assert_str_eq(en.timestamp, "2026-01-01T00:00:01.500Z");
    cr_assert_not_null(en.payload_json);
    cr_assert_eq(en.payload_len, strlen(en.payload_json));
    /* the payload is the same JSON object */
    json_t *a = json_loads(e.payload_json, 0, NULL), *b = json_loads(en.payload_json, 0, NULL);
    cr_assert_not_null(b, "payload_json is not JSON: %s", en.payload_json);
    cr_assert(json_equal(a, b), "payload differs: %s", en.payload_json);
    json_decref(a);
    json_decref(b);
    herald_envelope_deinit(&en);
    cr_assert_null(en.payload_json);
    herald_free(json);

    /* without correlation id: "" */
    e.correlation_id = NULL;
    json = encode_ok(&e, id);
    rc = herald_envelope_parse(json, strlen(json), &en);
    cr_assert_eq(rc, 0, "parse: %s", herald_last_error());
    cr_assert_str_eq(en.correlation_id, "");
    cr_assert_str_eq(en.event_id, id);
    herald_envelope_deinit(&en);
    herald_free(json);
}

Test(events, parse_gives_a_compact_payload)
{
    const char *body = "{ \"event_id\" : \"" FIXED_ID "\", \"type\": \"a.b\", \"source\": \"s\", "
                       "\"timestamp\": \"2026-01-01T00:00:00.000Z\", "
                       "\"payload\": { \"k\" : 1 , \"z\" : \"v\" } }";
    herald_envelope en;
    int rc = herald_envelope_parse(body, strlen(body), &en);
    cr_assert_eq(rc, 0, "parse: %s", herald_last_error());
    cr_assert_str_eq(en.payload_json, "{\"k\":1,\"z\":\"v\"}");
    cr_assert_eq(en.payload_len, strlen("{\"k\":1,\"z\":\"v\"}"));
    cr_assert_str_eq(en.correlation_id, "");
    herald_envelope_deinit(&en);
    herald_envelope_deinit(NULL); /* fine */
}

static void assert_parse_fails(const char *body, const char *field)
{
    herald_envelope en;
    memset(&en, 0x5a, sizeof en);
    int rc = herald_envelope_parse(body, strlen(body), &en);
    cr_assert_eq(rc, HERALD_EENVELOPE, "parse of [%s]: rc %s, want HERALD_EENVELOPE", body,
                 herald_err_name(rc));
    if (field)
        cr_assert(hx_mentions(herald_last_error(), field),
                  "parse of [%s]: error does not name '%s': %s", body, field,
                  herald_last_error());
    cr_assert_eq((unsigned char)en.event_id[0], 0x5a, "out set on failure");
}

#define F_ID "\"event_id\":\"" FIXED_ID "\""
#define F_TYPE "\"type\":\"a.b\""
#define F_SRC "\"source\":\"svc\""
#define F_TS "\"timestamp\":\"2026-01-01T00:00:00.000Z\""
#define F_PL "\"payload\":{}"

Test(events, parse_refuses_a_body_missing_any_required_field)
{
    assert_parse_fails("{" F_TYPE "," F_SRC "," F_TS "," F_PL "}", "event_id");
    assert_parse_fails("{" F_ID "," F_SRC "," F_TS "," F_PL "}", "type");
    assert_parse_fails("{" F_ID "," F_TYPE "," F_TS "," F_PL "}", "source");
    assert_parse_fails("{" F_ID "," F_TYPE "," F_SRC "," F_PL "}", "timestamp");
    assert_parse_fails("{" F_ID "," F_TYPE "," F_SRC "," F_TS "}", "payload");
    /* and the complete one parses */
    const char *ok = "{" F_ID "," F_TYPE "," F_SRC "," F_TS "," F_PL "}";
    herald_envelope en;
    cr_assert_eq(herald_envelope_parse(ok, strlen(ok), &en), 0, "%s", herald_last_error());
    cr_assert_str_eq(en.payload_json, "{}");
    herald_envelope_deinit(&en);
}

Test(events, parse_refuses_fields_of_the_wrong_type)
{
    assert_parse_fails("{\"event_id\":42," F_TYPE "," F_SRC "," F_TS "," F_PL "}", "event_id");
    assert_parse_fails("{\"event_id\":\"nope\"," F_TYPE "," F_SRC "," F_TS "," F_PL "}",
                       "event_id");
    assert_parse_fails("{" F_ID ",\"type\":[\"a.b\"]," F_SRC "," F_TS "," F_PL "}", "type");
    assert_parse_fails("{" F_ID ",\"type\":\"Research\"," F_SRC "," F_TS "," F_PL "}", "type");
    assert_parse_fails("{" F_ID "," F_TYPE ",\"source\":{}," F_TS "," F_PL "}", "source");
    assert_parse_fails("{" F_ID "," F_TYPE "," F_SRC ",\"timestamp\":1767225600000," F_PL "}",
                       "timestamp");
    assert_parse_fails("{" F_ID "," F_TYPE "," F_SRC "," F_TS ",\"correlation_id\":7," F_PL "}",
                       "correlation_id");
    assert_parse_fails("{" F_ID "," F_TYPE "," F_SRC "," F_TS ",\"payload\":[1]}", "payload");
    assert_parse_fails("{" F_ID "," F_TYPE "," F_SRC "," F_TS ",\"payload\":\"{}\"}", "payload");
    assert_parse_fails("{" F_ID "," F_TYPE "," F_SRC "," F_TS ",\"payload\":null}", "payload");
}

Test(events, parse_refuses_non_json_and_non_objects)
{
    assert_parse_fails("not json", NULL);
    assert_parse_fails("{\"event_id\":", NULL);
    assert_parse_fails("[1,2,3]", NULL);
    assert_parse_fails("\"just a string\"", NULL);
    assert_parse_fails("{}", "event_id");
}

/* ---- herald_send_event ---------------------------------------------------------------------- */

Test(events, send_event_body_is_the_envelope_as_encoded)
{
    herald_event e = good();
    e.event_id = FIXED_ID;
    e.correlation_id = "chain-1";
    char id[HERALD_ID_SIZE];
    int rc = herald_send_event(env.store, "q", &e, HERALD_UNSET, id);
    cr_assert_eq(rc, 0, "send_event: %s", herald_last_error());
    cr_assert_str_eq(id, FIXED_ID);
    char *expect = encode_ok(&e, NULL); /* same clock instant: the same text */

    herald_batch b = { 0 };
    cr_assert_eq(hx_pull(env.store, "q", 10, HERALD_UNSET, &b), 1);
    const herald_message *m = &b.msgs[0];
    cr_assert_eq(m->content_type, HERALD_CONTENT_JSON);
    cr_assert(hx_body_is(m, expect), "body [%.*s]\nwant [%s]", (int)m->body_len,
              (const char *)m->body, expect);
    cr_assert_str_neq(m->id, FIXED_ID, "the message id is not the event id");
    herald_envelope en;
    cr_assert_eq(herald_envelope_parse(m->body, m->body_len, &en), 0, "%s", herald_last_error());
    cr_assert_str_eq(en.event_id, FIXED_ID);
    cr_assert_str_eq(en.correlation_id, "chain-1");
    cr_assert_str_eq(en.timestamp, "2026-01-01T00:00:00.000Z");
    herald_envelope_deinit(&en);
    herald_batch_deinit(&b);
    herald_free(expect);
}

Test(events, send_event_mints_ids_and_honours_the_delay)
{
    herald_event e = good();
    char id1[HERALD_ID_SIZE], id2[HERALD_ID_SIZE];
    cr_assert_eq(herald_send_event(env.store, "q", &e, HERALD_UNSET, id1), 0, "%s",
                 herald_last_error());
    cr_assert_eq(herald_send_event(env.store, "q", &e, 30, id2), 0, "%s", herald_last_error());
    cr_assert(is_uuid_v7(id1), "%s", id1);
    cr_assert(is_uuid_v7(id2), "%s", id2);
    cr_assert_str_neq(id1, id2);
    herald_queue_stats st = hx_stats(env.store, "q");
    cr_assert_eq(st.sent_total, 2);
    cr_assert_eq(st.visible_count, 1);
    cr_assert_eq(st.delayed_count, 1);

    herald_batch b = { 0 };
    cr_assert_eq(hx_pull(env.store, "q", 10, HERALD_UNSET, &b), 1);
    herald_envelope en;
    cr_assert_eq(herald_envelope_parse(b.msgs[0].body, b.msgs[0].body_len, &en), 0);
    cr_assert_str_eq(en.event_id, id1);
    herald_envelope_deinit(&en);
    hx_ack1(env.store, "q", b.msgs[0].lease_id);
    hx_clock_advance(&env.clock, 31000);
    cr_assert_eq(hx_pull(env.store, "q", 10, HERALD_UNSET, &b), 1);
    cr_assert_eq(herald_envelope_parse(b.msgs[0].body, b.msgs[0].body_len, &en), 0);
    cr_assert_str_eq(en.event_id, id2);
    cr_assert_str_eq(en.timestamp, "2026-01-01T00:00:00.000Z", "timestamp is the send time");
    herald_envelope_deinit(&en);
    herald_batch_deinit(&b);

    /* a delay out of range is refused and sends nothing */
    int rc = herald_send_event(env.store, "q", &e, HERALD_MAX_DELAY_S + 1, NULL);
    cr_assert_eq(rc, HERALD_EDELAY, "rc %s", herald_err_name(rc));
    cr_assert_eq(hx_stats(env.store, "q").sent_total, 2);
}

Test(events, send_event_to_a_missing_queue_is_enoqueue)
{
    herald_event e = good();
    int rc = herald_send_event(env.store, "nope", &e, HERALD_UNSET, NULL);
    cr_assert_eq(rc, HERALD_ENOQUEUE, "rc %s", herald_err_name(rc));
}

Test(events, send_event_respects_the_queue_max_message_bytes)
{
    herald_queue_settings st;
    herald_queue_settings_init(&st);
    st.max_message_bytes = 200;
    hx_create_queue(env.store, "small", &st);
    herald_event e = good();
    cr_assert_eq(herald_send_event(env.store, "small", &e, HERALD_UNSET, NULL), 0, "%s",
                 herald_last_error());
    char *big = malloc(300);
    cr_assert_not_null(big);
    snprintf(big, 300, "{\"k\":\"%0200d\"}", 0);
    e.payload_json = big;
    int rc = herald_send_event(env.store, "small", &e, HERALD_UNSET, NULL);
    cr_assert_eq(rc, HERALD_ETOOBIG, "rc %s", herald_err_name(rc));
    cr_assert_eq(hx_stats(env.store, "small").sent_total, 1);
    free(big);
}

/* ---- the CLI -------------------------------------------------------------------------------- */

TestSuite(events_cli, .init = hx_e2e_setup, .fini = hx_e2e_teardown, .timeout = 60);

static char *trim(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\r'))
        s[--n] = 0;
    return s;
}

Test(events_cli, send_with_type_prints_the_event_id_and_pull_shows_the_envelope)
{
    hx_cli_mkq("q");
    char *out = OK(NULL, "send", "q", "--type", "research.completed", "--source", "gatherfeed",
                   "--correlation-id", "cycle-9", "{\"research_id\":\"abc\"}");
    char *id = trim(out);
    cr_assert(is_uuid_v7(id), "send printed [%s], want a UUIDv7 event_id", id);

    json_t *arr = JSON(NULL, "pull", "q", "--json");
    cr_assert_eq(json_array_size(arr), 1);
    json_t *m = json_array_get(arr, 0);
    cr_assert_str_eq(hx_json_str(json_object_get(m, "metadata"), "CF-Content-Type"), "json");
    char *body = hx_json_body(m); /* base64-decoded */
    static const char *const keys[] = { "event_id", "type", "source", "timestamp",
                                        "correlation_id", "payload" };
    json_t *o = parse_obj_with_keys(body, keys, 6);
    cr_assert_str_eq(json_string_value(json_object_get(o, "event_id")), id);
    cr_assert_str_eq(json_string_value(json_object_get(o, "type")), "research.completed");
    cr_assert_str_eq(json_string_value(json_object_get(o, "source")), "gatherfeed");
    cr_assert_str_eq(json_string_value(json_object_get(o, "correlation_id")), "cycle-9");
    const char *ts = json_string_value(json_object_get(o, "timestamp"));
    cr_assert(hx_is_iso8601(ts) && ts[strlen(ts) - 1] == 'Z', "timestamp %s", ts);
    json_t *p = json_object_get(o, "payload");
    cr_assert_str_eq(json_string_value(json_object_get(p, "research_id")), "abc");
    json_decref(o);
    free(body);
    json_decref(arr);
    free(out);
}

Test(events_cli, send_with_type_json_prints_event_id_and_omits_absent_correlation)
{
    hx_cli_mkq("q");
    json_t *r = JSON(NULL, "send", "q", "--type", "a.b", "--source", "svc", "{}", "--json");
    const char *id = hx_json_str(r, "event_id");
    cr_assert(is_uuid_v7(id), "event_id %s", id);
    json_t *arr = JSON(NULL, "pull", "q", "--json");
    cr_assert_eq(json_array_size(arr), 1);
    char *body = hx_json_body(json_array_get(arr, 0));
    static const char *const keys[] = { "event_id", "type", "source", "timestamp", "payload" };
    json_t *o = parse_obj_with_keys(body, keys, 5);
    cr_assert_str_eq(json_string_value(json_object_get(o, "event_id")), id);
    json_decref(o);
    free(body);
    json_decref(arr);
    json_decref(r);
}

Test(events_cli, source_or_correlation_without_type_is_a_usage_error)
{
    hx_cli_mkq("q");
    free(FAIL(2, NULL, "send", "q", "--source", "svc", "{}"));
    free(FAIL(2, NULL, "send", "q", "--correlation-id", "c", "{}"));
    free(FAIL(2, NULL, "send", "q", "--type", "a.b", "{}")); /* --type needs --source */
    cr_assert_eq(hx_cli_stat("q", "sent_total"), 0);
}

Test(events_cli, bad_fields_exit_1_naming_the_field_and_send_nothing)
{
    hx_cli_mkq("q");
    char *err = FAIL(1, NULL, "send", "q", "--type", "Research", "--source", "svc", "{}");
    cr_assert(hx_mentions(err, "type"), "stderr: %s", err);
    free(err);
    err = FAIL(1, NULL, "send", "q", "--type", "a.b", "--source", "bad source", "{}");
    cr_assert(hx_mentions(err, "source"), "stderr: %s", err);
    free(err);
    err = FAIL(1, NULL, "send", "q", "--type", "a.b", "--source", "svc", "--correlation-id",
               "has space", "{}");
    cr_assert(hx_mentions(err, "correlation_id"), "stderr: %s", err);
    free(err);
    err = FAIL(1, NULL, "send", "q", "--type", "a.b", "--source", "svc", "[1]");
    cr_assert(hx_mentions(err, "payload"), "stderr: %s", err);
    free(err);
    cr_assert_eq(hx_cli_stat("q", "sent_total"), 0);
}

/* The parser decodes escapes in keys and values as any JSON reader would, and refuses a NUL. */
Test(events, parse_decodes_escapes_and_refuses_a_nul_in_a_field)
{
    const char *body = "{\"event_id\":\"" FIXED_ID "\",\"typ\\u0065\":\"a.b\",\"source\":\"s\\/x\","
                       "\"timestamp\":\"2026-01-01T00:00:00.000Z\",\"correlation_id\":\"c\\\"1\","
                       "\"payload\":{\"k\":\"\\u00e9\"}}";
    herald_envelope en;
    int rc = herald_envelope_parse(body, strlen(body), &en);
    cr_assert_eq(rc, 0, "parse: %s", herald_last_error());
    cr_assert_str_eq(en.type, "a.b");
    cr_assert_str_eq(en.source, "s/x");
    cr_assert_str_eq(en.correlation_id, "c\"1");
    cr_assert_str_eq(en.payload_json, "{\"k\":\"\\u00e9\"}");
    herald_envelope_deinit(&en);
    assert_parse_fails("{\"event_id\":\"" FIXED_ID "\"," F_TYPE "," F_SRC "," F_TS
                       ",\"correlation_id\":\"a\\u0000b\"," F_PL "}",
                       "correlation_id");
    assert_parse_fails("{" F_ID "," F_TYPE "," F_SRC "," F_TS ",\"payload\":[]}", "payload");
    assert_parse_fails("[" F_ID "]", NULL);
    assert_parse_fails("{" F_ID "," F_TYPE "," F_SRC "," F_TS "," F_PL "} trailing", NULL);
}
