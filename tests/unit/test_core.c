// SPDX-License-Identifier: MIT
/*
 * test_core.c - unit tests of the core layer (ids, UTF-8, JSON checks, names) and of the lease
 * id format of the store layer: the small pieces written by hand (DESIGN.md §8).
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/core.h"
#include "store/store.h"

Test(uuid7, has_version_7_variant_10_and_is_monotonic_within_one_millisecond)
{
    char prev[HERALD_ID_SIZE] = "";
    for (int i = 0; i < 10000; i++) {
        char id[HERALD_ID_SIZE];
        herald__uuid7_at(1767225600000LL, id); /* same ms every time: the counter must order */
        cr_assert_eq(strlen(id), 36);
        cr_assert_eq(id[14], '7', "version nibble of %s", id);
        cr_assert(strchr("89ab", id[19]), "variant of %s", id);
        cr_assert(strcmp(id, prev) > 0, "%s after %s is not increasing", id, prev);
        uint8_t b[16];
        cr_assert(herald__uuid_parse(id, b));
        char back[HERALD_ID_SIZE];
        herald__uuid_format(b, back);
        cr_assert_str_eq(back, id);
        memcpy(prev, id, sizeof prev);
    }
}

Test(uuid7, encodes_the_millisecond_timestamp_in_the_first_48_bits)
{
    char id[HERALD_ID_SIZE];
    herald__uuid7_at(0x0123456789abLL + 1000000, id);
    uint8_t b[16];
    cr_assert(herald__uuid_parse(id, b));
    int64_t ms = 0;
    for (int i = 0; i < 6; i++)
        ms = ms << 8 | b[i];
    cr_assert_geq(ms, 0x0123456789abLL + 1000000); /* >=: monotonic across earlier tests */
}

Test(rand64, a_forked_child_does_not_repeat_the_parents_random_bytes)
{
    (void)herald__rand64(); /* the pool of this thread is full now */
    int fd[2];
    cr_assert_eq(pipe(fd), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        uint64_t v[4];
        for (int i = 0; i < 4; i++)
            v[i] = herald__rand64();
        _exit(write(fd[1], v, sizeof v) == (ssize_t)sizeof v ? 0 : 1);
    }
    uint64_t mine[4], theirs[4];
    for (int i = 0; i < 4; i++)
        mine[i] = herald__rand64();
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert_eq(read(fd[0], theirs, sizeof theirs), (ssize_t)sizeof theirs);
    close(fd[0]);
    close(fd[1]);
    cr_assert(memcmp(mine, theirs, sizeof mine) != 0,
              "the child handed out the same random bytes as its parent");
}

Test(uuid, parse_rejects_malformed_text)
{
    uint8_t b[16];
    cr_assert_not(herald__uuid_parse("", b));
    cr_assert_not(herald__uuid_parse("01a21a8a-86ce-7049-952d-70f1da8c7c2", b));
    cr_assert_not(herald__uuid_parse("01a21a8a-86ce-7049-952d-70f1da8c7c2g", b));
    cr_assert_not(herald__uuid_parse("01a21a8a086ce-7049-952d-70f1da8c7c28", b));
}

Test(utf8, accepts_valid_and_rejects_overlong_surrogate_and_truncated_sequences)
{
    cr_assert(herald__utf8_valid("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15));
    cr_assert(herald__utf8_valid("", 0));
    cr_assert_not(herald__utf8_valid("\xc0\xaf", 2));         /* overlong '/' */
    cr_assert_not(herald__utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    cr_assert_not(herald__utf8_valid("\xe2\x82", 2));         /* truncated */
    cr_assert_not(herald__utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    cr_assert_not(herald__utf8_valid("\xff", 1));
}

Test(json_check, accepts_any_single_value_and_names_line_and_column_of_errors)
{
    cr_assert_eq(herald__json_check("{\"a\":[1,2]}", 11, "body"), 0);
    cr_assert_eq(herald__json_check("\"str\"", 5, "body"), 0);
    cr_assert_eq(herald__json_check("42", 2, "body"), 0);
    cr_assert_eq(herald__json_check("{\"a\":1}{", 8, "body"), HERALD_EBADJSON);
    cr_assert_eq(herald__json_check("{\n\"a\":}", 7, "body"), HERALD_EBADJSON);
    cr_assert(strstr(herald_last_error(), "line 2"), "%s", herald_last_error());
    cr_assert_eq(herald__json_check("", 0, "body"), HERALD_EBADJSON);
    cr_assert_eq(herald__json_check("{\"a\":1,\"a\":2}", 13, "body"), 0); /* as JSON.parse */
    cr_assert_eq(herald__json_check("[1,]", 4, "body"), HERALD_EBADJSON);
    cr_assert_eq(herald__json_check("\"\\ud800\"", 8, "body"), HERALD_EBADJSON);
    cr_assert_eq(herald__json_check("01", 2, "body"), HERALD_EBADJSON);
    cr_assert_eq(herald__json_check("\"a\tb\"", 5, "body"), HERALD_EBADJSON);
}

Test(names, follow_the_queue_name_rule)
{
    cr_assert(herald__name_valid("a"));
    cr_assert(herald__name_valid("orders-dlq_2"));
    cr_assert_not(herald__name_valid(""));
    cr_assert_not(herald__name_valid("-a"));
    cr_assert_not(herald__name_valid("a b"));
    cr_assert_not(herald__name_valid("../x"));
    char long_name[80];
    memset(long_name, 'a', sizeof long_name);
    long_name[64] = 0;
    cr_assert_not(herald__name_valid(long_name));
    long_name[63] = 0;
    cr_assert(herald__name_valid(long_name));
}

Test(lease_id, round_trips_and_rejects_malformed_ids)
{
    herald__lease_ref r = { .seq = 123456789, .tag = 0x7fffffffffffffffLL }, back;
    char s[HERALD_LEASE_ID_SIZE];
    herald__lease_format(r, s);
    cr_assert(herald__lease_parse(s, &back));
    cr_assert_eq(back.seq, r.seq);
    cr_assert_eq(back.tag, r.tag);
    cr_assert_not(herald__lease_parse("", &back));
    cr_assert_not(herald__lease_parse("hl1.", &back));
    cr_assert_not(herald__lease_parse("hl1.0.0000000000000001", &back)); /* seq 0 */
    cr_assert_not(herald__lease_parse("hl1.12.00000000000001", &back));  /* short tag */
    cr_assert_not(herald__lease_parse("hl2.12.0000000000000001", &back));
    cr_assert_not(herald__lease_parse("hl1.1G.0000000000000001", &back));
    cr_assert_not(herald__lease_parse("hl1.12.0000000000000001x", &back));
    /* the hand-written formatter writes what "hl1.%" PRIx64 ".%016" PRIx64 would */
    const int64_t seqs[] = { 1, 15, 16, 255, 0x123456789abcLL, INT64_MAX };
    const int64_t tags[] = { 0, 1, 0x0fedcba987654321LL, INT64_MAX };
    for (size_t i = 0; i < sizeof seqs / sizeof seqs[0]; i++) {
        for (size_t k = 0; k < sizeof tags / sizeof tags[0]; k++) {
            char want[HERALD_LEASE_ID_SIZE];
            snprintf(want, sizeof want, "hl1.%" PRIx64 ".%016" PRIx64, (uint64_t)seqs[i],
                     (uint64_t)tags[k]);
            herald__lease_format((herald__lease_ref){ .seq = seqs[i], .tag = tags[k] }, s);
            cr_assert_str_eq(s, want);
        }
    }
}

Test(base64, matches_rfc4648_test_vectors)
{
    const char *in[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
    const char *out[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
    for (int i = 0; i < 7; i++) {
        char *b = herald__base64(in[i], strlen(in[i]));
        cr_assert_str_eq(b, out[i]);
        herald__free(b);
    }
}

/* The hand-written ISO 8601 formatter agrees with gmtime_r + strftime on the calendar's corners
 * and on a spread of instants up to year 9999. */
static void iso_ref(int64_t ms, char *out, size_t cap)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char base[32];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, cap, "%s.%03dZ", base, (int)(ms % 1000));
}

Test(iso8601, matches_gmtime_on_corners_and_a_spread_of_instants)
{
    const int64_t corners[] = {
        0, 999, 86399999, 951782400000 /* 2000-02-29 */, 951868799999, 4107542400000 /* 2100-03-01 */,
        4107455999999 /* 2100-02-28T23:59:59.999 */, 1767225599999, 1767225600000,
        253402300799999 /* 9999-12-31T23:59:59.999 */, 1709164800123 /* 2024-02-29 */,
    };
    char got[40], want[40];
    for (size_t i = 0; i < sizeof corners / sizeof corners[0]; i++) {
        herald__iso8601(corners[i], got, sizeof got);
        iso_ref(corners[i], want, sizeof want);
        cr_assert_str_eq(got, want, "ms %lld", (long long)corners[i]);
    }
    uint64_t x = 88172645463325252ULL; /* xorshift: a fixed spread, the same every run */
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int64_t ms = (int64_t)(x % 253402300800000ULL);
        herald__iso8601(ms, got, sizeof got);
        iso_ref(ms, want, sizeof want);
        cr_assert_str_eq(got, want, "ms %lld", (long long)ms);
    }
    herald__iso8601(1767225600000, got, 10); /* too small a buffer: empty, not overrun */
    cr_assert_str_eq(got, "");
}

/* ---- the envelope's one-pass JSON helpers ---- */

Test(json_unescape, decodes_every_escape_and_surrogate_pairs_and_respects_the_capacity)
{
    const char *lit = "\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u00e9\\u20ac\\ud83d\\ude00\"";
    char out[64];
    size_t n = 0;
    cr_assert(herald__json_unescape(lit, strlen(lit), out, sizeof out, &n));
    const char want[] = "a\"b\\c/d\b\f\n\r\t\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
    cr_assert_eq(n, sizeof want - 1, "length %zu", n);
    cr_assert_eq(memcmp(out, want, sizeof want), 0);
    /* "abc" needs 4 bytes with the NUL: 4 fits, 3 does not */
    cr_assert(herald__json_unescape("\"abc\"", 5, out, 4, &n) && n == 3);
    cr_assert_not(herald__json_unescape("\"abc\"", 5, out, 3, &n));
    cr_assert_str_eq(out, "");
    /* a 2-byte character at the end counts as 2 */
    cr_assert(herald__json_unescape("\"a\\u00e9\"", 9, out, 4, &n) && n == 3);
    cr_assert_not(herald__json_unescape("\"a\\u00e9\"", 9, out, 3, &n));
}

Test(json_compact, drops_whitespace_outside_strings_only)
{
    const char *in = " { \"a b\" : [ 1 , \"x \\\" y\" ] ,\n\t\"c\" : { } } ";
    char out[128];
    size_t n = herald__json_compact(in, strlen(in), out);
    cr_assert_str_eq(out, "{\"a b\":[1,\"x \\\" y\"],\"c\":{}}");
    cr_assert_eq(n, strlen(out));
}

typedef struct members {
    int n;
    char keys[8][32];
    char vals[8][64];
} members;

static int collect_member(void *ud, const char *key, size_t klen, const char *val, size_t vlen)
{
    members *m = ud;
    if (m->n == 8)
        return 7; /* stop: returned as is */
    snprintf(m->keys[m->n], sizeof m->keys[0], "%.*s", (int)klen, key);
    snprintf(m->vals[m->n], sizeof m->vals[0], "%.*s", (int)vlen, val);
    m->n++;
    return 0;
}

Test(json_members, yields_each_member_with_its_raw_value_and_refuses_what_is_not_one_object)
{
    members m = { 0 };
    const char *doc = " {\"a\":1, \"b\" : {\"x\":[1,{}]} ,\"c\\u0041\":\"s\",\"d\":null} ";
    cr_assert_eq(herald__json_members(doc, strlen(doc), "doc", collect_member, &m), 0, "%s",
                 herald_last_error());
    cr_assert_eq(m.n, 4);
    cr_assert_str_eq(m.keys[1], "b");
    cr_assert_str_eq(m.vals[1], "{\"x\":[1,{}]}");
    cr_assert_str_eq(m.keys[2], "c\\u0041"); /* raw: escapes are the caller's to decode */
    cr_assert_str_eq(m.vals[2], "\"s\"");
    cr_assert_str_eq(m.vals[3], "null");
    memset(&m, 0, sizeof m);
    cr_assert_eq(herald__json_members("{}", 2, "doc", collect_member, &m), 0);
    cr_assert_eq(m.n, 0);
    const char *bad[] = { "[1]", "{\"a\":1} x", "{\"a\":1,}", "{\"a\" 1}", "{\"a\":tru}", "{",
                          "", "{\"a\":\"\xff\"}", "{1:2}" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&m, 0, sizeof m);
        int rc = herald__json_members(bad[i], strlen(bad[i]), "doc", collect_member, &m);
        cr_assert_eq(rc, HERALD_EBADJSON, "[%s]: rc %d", bad[i], rc);
        cr_assert(strstr(herald_last_error(), "doc"), "[%s]: %s", bad[i], herald_last_error());
    }
    /* fn's non-zero result stops the walk and is returned */
    memset(&m, 0, sizeof m);
    m.n = 8;
    cr_assert_eq(herald__json_members("{\"a\":1}", 7, "doc", collect_member, &m), 7);
}

/* The trusted walk (stored bodies, validated when sent) yields what the validating one does on
 * valid text, and on text that is not one object it says so without reading past the end. */
Test(json_members_trusted, agrees_with_the_validating_walk_and_stops_at_bad_structure)
{
    const char *docs[] = {
        "{}", " { \"a\" : 1 } ", "{\"a\":\"x\\\"}y\",\"b\":[1,{\"c\":[]}],\"d\":null}",
        "{\"k\\\\\":true,\"e\":-1.5e3,\"f\":{\"g\":\"}\"}}", "{\"p\":{ \"x\" : [ 1 , 2 ] }}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        members a = { 0 }, b = { 0 };
        bool ws = false;
        cr_assert_eq(herald__json_members(docs[i], strlen(docs[i]), "doc", collect_member, &a), 0);
        cr_assert_eq(herald__json_members_trusted(docs[i], strlen(docs[i]), collect_member, &b,
                                                  &ws),
                     0, "[%s]", docs[i]);
        cr_assert_eq(a.n, b.n, "[%s]: %d vs %d members", docs[i], a.n, b.n);
        for (int k = 0; k < a.n; k++) {
            cr_assert_str_eq(a.keys[k], b.keys[k]);
            cr_assert_str_eq(a.vals[k], b.vals[k], "[%s] member %d", docs[i], k);
        }
    }
    bool ws = false;
    members m = { 0 };
    cr_assert_eq(herald__json_members_trusted("{\"p\":{ \"x\":1}}", 14, collect_member, &m, &ws),
                 0);
    cr_assert(ws, "whitespace inside the value was not seen");
    memset(&m, 0, sizeof m);
    cr_assert_eq(herald__json_members_trusted("{\"p\":{\"x\":\" \"}}", 15, collect_member, &m,
                                              &ws),
                 0);
    cr_assert_not(ws, "whitespace inside a string is not whitespace of the value");
    /* truncated or not an object: -1, and (under ASan) no read past the end */
    const char *bad[] = { "", "[1]", "{", "{\"a\"", "{\"a\":", "{\"a\":\"x", "{\"a\":{\"b\":1}",
                          "{\"a\":1,", "{\"a\":1]", "{\"a\" 1}", "{\"a\":}}" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n = strlen(bad[i]);
        char *copy = malloc(n ? n : 1); /* exact size: an overread is an ASan error */
        memcpy(copy, bad[i], n);
        memset(&m, 0, sizeof m);
        cr_assert_eq(herald__json_members_trusted(copy, n, collect_member, &m, &ws), -1, "[%s]",
                     bad[i]);
        free(copy);
    }
}

/* herald__envelope_parse_stored gives the same envelope as herald_envelope_parse. */
Test(envelope, the_stored_body_parser_agrees_with_the_public_one)
{
    const char *bodies[] = {
        "{\"event_id\":\"01890a5b-2c3d-7e4f-8a1b-2c3d4e5f6a7b\",\"type\":\"a.b\",\"source\":\"s\","
        "\"timestamp\":\"2026-01-01T00:00:00.000Z\",\"payload\":{\"k\":[1,2],\"s\":\"x y\"}}",
        "{ \"event_id\" : \"01890a5b-2c3d-7e4f-8a1b-2c3d4e5f6a7b\", \"type\": \"a.b\", "
        "\"source\": \"s\\/t\", \"timestamp\": \"t\", \"correlation_id\": \"c\\\"1\", "
        "\"payload\": { \"k\" : 1 } }",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        herald_envelope a, b;
        cr_assert_eq(herald_envelope_parse(bodies[i], strlen(bodies[i]), &a), 0, "%s",
                     herald_last_error());
        cr_assert_eq(herald__envelope_parse_stored(bodies[i], strlen(bodies[i]), &b), 0, "%s",
                     herald_last_error());
        cr_assert_str_eq(a.event_id, b.event_id);
        cr_assert_str_eq(a.type, b.type);
        cr_assert_str_eq(a.source, b.source);
        cr_assert_str_eq(a.timestamp, b.timestamp);
        cr_assert_str_eq(a.correlation_id, b.correlation_id);
        cr_assert_str_eq(a.payload_json, b.payload_json);
        cr_assert_eq(a.payload_len, b.payload_len);
        herald_envelope_deinit(&a);
        herald_envelope_deinit(&b);
    }
    herald_envelope e;
    cr_assert_eq(herald__envelope_parse_stored("{\"type\":\"a.b\"}", 14, &e), HERALD_EENVELOPE);
    cr_assert_eq(herald__envelope_parse_stored("[]", 2, &e), HERALD_EENVELOPE);
}
