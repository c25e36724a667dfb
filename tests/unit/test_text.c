// SPDX-License-Identifier: MIT
/*
 * test_text.c - unit tests of text.c's defences (issue 7 §4): the trusted walk and the string
 * decoder never read past the text they are given (inputs sit in exact-size heap buffers so
 * that ASan sees any over-read), a member is handed out only once it is complete, error texts
 * are cut on character boundaries and cleaned of invalid UTF-8, and one nesting limit holds for
 * bodies, payloads and envelopes.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

/* s without its NUL in a buffer of exactly strlen(s) bytes (caller frees). */
static char *exact(const char *s)
{
    size_t n = strlen(s);
    char *p = malloc(n ? n : 1);
    cr_assert_not_null(p);
    memcpy(p, s, n);
    return p;
}

static int count_member(void *ud, const char *key, size_t klen, const char *val, size_t vlen)
{
    (void)key;
    (void)klen;
    (void)val;
    (void)vlen;
    (*(int *)ud)++;
    return 0;
}

Test(json_members_trusted, does_not_hand_out_a_member_whose_object_is_not_closed)
{
    static const char *const bad[] = { "{\"a\":1", "{\"a\":1 x", "{\"a\":1]", "{\"a\":1,",
                                       "{\"a\":1,}", "{\"a\":1} x", "{\"a\":1}}" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *p = exact(bad[i]);
        int calls = 0;
        bool ws = false;
        cr_assert_eq(herald__json_members_trusted(p, strlen(bad[i]), count_member, &calls, &ws),
                     -1, "'%s' was accepted", bad[i]);
        if (!strchr(bad[i], ',') && !strchr(bad[i], '}')) /* "a" never ended */
            cr_assert_eq(calls, 0, "'%s': the callback ran for an unfinished member", bad[i]);
        free(p);
    }
    char *p = exact(" {\"a\":1, \"b\" : [2] } \n");
    int calls = 0;
    bool ws = false;
    cr_assert_eq(herald__json_members_trusted(p, strlen(" {\"a\":1, \"b\" : [2] } \n"),
                                              count_member, &calls, &ws),
                 0);
    cr_assert_eq(calls, 2);
    free(p);
}

static int unescape_key(void *ud, const char *key, size_t klen, const char *val, size_t vlen)
{
    (void)val;
    (void)vlen;
    char out[64];
    *(bool *)ud = herald__json_unescape(key - 1, klen + 2, out, sizeof out, NULL);
    return 0;
}

Test(json_unescape, a_lone_high_surrogate_at_the_end_is_refused_without_reading_past_the_text)
{
    /* The shape that made ASan report a heap-buffer-overflow: exact size, no closing brace. */
    const char *text = "{\"\\ud800\":1";
    char *p = exact(text);
    bool decoded = true;
    bool ws = false;
    (void)herald__json_members_trusted(p, strlen(text), unescape_key, &decoded, &ws);
    free(p);
    /* Straight at the decoder: every truncated escape, each in an exact-size buffer. */
    static const char *const bad[] = { "\"\\ud800\"", "\"\\ud800\\u\"", "\"\\ud800\\udc0\"",
                                       "\"\\udc00\"",  "\"\\u12\"",      "\"\\\"",
                                       "\"abc",        "x",              "\"\\ud800\\n\"" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *s = exact(bad[i]);
        char out[32] = "junk";
        cr_assert_not(herald__json_unescape(s, strlen(bad[i]), out, sizeof out, NULL),
                      "'%s' decoded", bad[i]);
        cr_assert_str_eq(out, "");
        free(s);
    }
    char *s = exact("\"a\\ud83d\\ude00\\u00e9\"");
    char out[32];
    size_t n = 0;
    cr_assert(herald__json_unescape(s, strlen("\"a\\ud83d\\ude00\\u00e9\""), out, sizeof out, &n));
    cr_assert_str_eq(out, "a\xf0\x9f\x98\x80\xc3\xa9");
    cr_assert_eq(n, 7);
    free(s);
}

Test(json_compact, a_trailing_backslash_does_not_make_it_read_past_the_text)
{
    const char *text = "\"ab\\";
    char *p = exact(text);
    char out[16];
    size_t n = herald__json_compact(p, strlen(text), out);
    cr_assert_leq(n, strlen(text));
    free(p);
}

Test(utf8_cut, never_ends_inside_a_character)
{
    const char *s = "ab\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"; /* a b é € 😀 */
    size_t n = strlen(s);
    cr_assert_eq(herald__utf8_cut(s, n, 100), n);
    cr_assert_eq(herald__utf8_cut(s, n, 3), 2);
    cr_assert_eq(herald__utf8_cut(s, n, 4), 4);
    cr_assert_eq(herald__utf8_cut(s, n, 6), 4);
    cr_assert_eq(herald__utf8_cut(s, n, 7), 7);
    cr_assert_eq(herald__utf8_cut(s, n, 10), 7);
    for (size_t max = 0; max <= n; max++)
        cr_assert(herald__utf8_valid(s, herald__utf8_cut(s, n, max)), "cut at %zu", max);
}

Test(utf8_copy, replaces_invalid_bytes_and_cuts_on_a_character_boundary)
{
    char out[32];
    cr_assert_eq(herald__utf8_copy(out, sizeof out, "bad \xff"), 7);
    cr_assert_str_eq(out, "bad \xef\xbf\xbd");
    herald__utf8_copy(out, sizeof out, "\xc0\xaf|\xed\xa0\x80|\xe2\x82"); /* overlong, surrogate */
    cr_assert(herald__utf8_valid(out, strlen(out)), "%s", out);
    cr_assert(strchr(out, '|'));
    /* 254 ASCII bytes then a 2-byte character: 256 bytes, which 255 cannot hold whole */
    char in[300];
    memset(in, 'x', 254);
    memcpy(in + 254, "\xc3\xa9", 3);
    char big[256];
    cr_assert_eq(herald__utf8_copy(big, sizeof big, in), 254);
    cr_assert(herald__utf8_valid(big, strlen(big)));
    char *d = herald__utf8_dup(in, HERALD__ERROR_TEXT_MAX);
    cr_assert_eq(strlen(d), 254);
    herald__free(d);
    d = herald__utf8_dup(NULL, 10);
    cr_assert_str_eq(d, "");
    herald__free(d);
}

/* n levels of [ ... ] around 0, as an object's member "p" when in_object. */
static char *nested(int n, bool in_object)
{
    size_t cap = (size_t)n * 2 + 64;
    char *s = malloc(cap), *d = s;
    cr_assert_not_null(s);
    if (in_object)
        d += sprintf(d, "{\"p\":");
    for (int i = 0; i < n; i++)
        *d++ = '[';
    *d++ = '0';
    for (int i = 0; i < n; i++)
        *d++ = ']';
    if (in_object)
        *d++ = '}';
    *d = 0;
    return s;
}

Test(json_depth, one_limit_for_bodies_and_one_less_for_what_an_envelope_wraps)
{
    char *ok = nested(HERALD_JSON_MAX_DEPTH, false);
    cr_assert_eq(herald__json_check(ok, strlen(ok), "body"), 0);
    char *deep = nested(HERALD_JSON_MAX_DEPTH + 1, false);
    cr_assert_eq(herald__json_check(deep, strlen(deep), "body"), HERALD_EBADJSON);
    cr_assert(strstr(herald_last_error(), "HERALD_JSON_MAX_DEPTH"), "%s", herald_last_error());
    /* the object counts: a member may hold one level less, and the whole text then nests
     * exactly HERALD_JSON_MAX_DEPTH */
    char *member_ok = nested(HERALD_JSON_MAX_DEPTH - 1, true);
    cr_assert_eq(herald__json_check(member_ok, strlen(member_ok), "body"), 0);
    int calls = 0;
    cr_assert_eq(herald__json_members(member_ok, strlen(member_ok), "body", count_member, &calls),
                 0);
    char *member_deep = nested(HERALD_JSON_MAX_DEPTH, true);
    cr_assert_eq(herald__json_members(member_deep, strlen(member_deep), "body", count_member,
                                      &calls),
                 HERALD_EBADJSON);
    free(ok);
    free(deep);
    free(member_ok);
    free(member_deep);
}

Test(json_depth, a_payload_the_payload_check_accepts_also_makes_a_valid_envelope)
{
    for (int depth = HERALD_JSON_MAX_DEPTH - 2; depth <= HERALD_JSON_MAX_DEPTH; depth++) {
        /* a payload object nesting `depth` levels: {"p": [[...]]} */
        char *payload = nested(depth - 1, true);
        herald_event e = { .type = "a.b", .source = "t", .payload_json = payload };
        char *body = NULL;
        size_t len = 0;
        int rc = herald__event_encode_at(&e, 0, NULL, &body, &len);
        if (depth <= HERALD_JSON_MAX_DEPTH - 1) {
            cr_assert_eq(rc, 0, "depth %d: %s", depth, herald_last_error());
            cr_assert_eq(herald__json_check(body, len, "body"), 0, "depth %d: %s", depth,
                         herald_last_error());
            herald_envelope env;
            cr_assert_eq(herald_envelope_parse(body, len, &env), 0, "%s", herald_last_error());
            herald_envelope_deinit(&env);
            herald__free(body);
        } else {
            cr_assert_eq(rc, HERALD_EENVELOPE, "depth %d was accepted", depth);
            cr_assert(strstr(herald_last_error(), "HERALD_JSON_MAX_DEPTH"), "%s",
                      herald_last_error());
        }
        free(payload);
    }
}

Test(err_text, an_error_message_that_quotes_cut_or_invalid_input_is_valid_utf8)
{
    /* "%.5s" cuts "abcd" + U+00E9 inside the character; \xff is not UTF-8 at all */
    herald__err(HERALD_EINVAL, "queue '%.5s' and '%s'", "abcd\xc3\xa9", "x\xffy");
    const char *m = herald_last_error();
    cr_assert(herald__utf8_valid(m, strlen(m)), "%s", m);
    cr_assert_str_eq(m, "queue 'abcd\xef\xbf\xbd' and 'x\xef\xbf\xbdy'");
    cr_assert_eq(herald_last_error_set(HERALD_ENOMEM, "bad \xff"), HERALD_ENOMEM);
    cr_assert_str_eq(herald_last_error(), "bad \xef\xbf\xbd");
    herald_last_error_set(HERALD_ENOMEM, NULL);
    cr_assert_str_eq(herald_last_error(), herald_strerror(HERALD_ENOMEM));
}
