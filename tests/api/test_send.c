// SPDX-License-Identifier: MIT
/*
 * test_send.c - herald_send / herald_send_batch / herald_send_batch_async through the public
 * API: content types (json default and validated, text must be UTF-8, bytes round-trip any
 * byte), size limits (per message, per queue, per batch), batch count limits, atomicity of a
 * batch, the delay range and its precedence (message > batch > queue; explicit 0 wins), the
 * form and order of returned ids, and the async callback contract (exactly once).
 * Each test owns a temp dir and a store on a fake clock; delays are passed with
 * hx_clock_advance, never by sleeping.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "herald.h"
#include "support.h"

static hx_env env;

static void setup(void)
{
    hx_env_setup_with_queue(&env, "q"); /* every test has queue "q" */
}

static void teardown(void)
{
    hx_env_teardown(&env);
}

TestSuite(send, .init = setup, .fini = teardown, .timeout = 30);

/* ---- helpers ------------------------------------------------------------------------------- */

static herald_msg mk(const void *body, size_t len, herald_content_type t, int64_t delay_s)
{
    herald_msg m;
    memset(&m, 0, sizeof m);
    m.body = body;
    m.body_len = len;
    m.content_type = t;
    m.delay_s = delay_s;
    return m;
}

static herald_msg json(const char *s)
{
    return mk(s, strlen(s), HERALD_CONTENT_JSON, HERALD_UNSET);
}

static herald_msg json_d(const char *s, int64_t delay_s)
{
    return mk(s, strlen(s), HERALD_CONTENT_JSON, delay_s);
}

static herald_msg bytes(const void *body, size_t len)
{
    return mk(body, len, HERALD_CONTENT_BYTES, HERALD_UNSET);
}

static herald_queue_stats stats(const char *q)
{
    return hx_stats(env.store, q);
}

static void assert_nothing_stored(const char *q)
{
    herald_queue_stats st = stats(q);
    cr_assert_eq(st.backlog_count, 0, "backlog_count %lld", (long long)st.backlog_count);
    cr_assert_eq(st.backlog_bytes, 0);
    cr_assert_eq(st.sent_total, 0, "sent_total %lld", (long long)st.sent_total);
}

/* Finds the peeked message with this id, or NULL. */
static const herald_message *find_id(const herald_batch *b, const char *id)
{
    for (size_t i = 0; i < b->n; i++) {
        if (strcmp(b->msgs[i].id, id) == 0)
            return &b->msgs[i];
    }
    return NULL;
}

static size_t pull_n(const char *q, int max_n, herald_batch *b)
{
    return hx_pull(env.store, q, max_n, HERALD_UNSET, b);
}

/* Pulls q: exactly one message, the one with this id, must be delivered; acks it (so that an
 * expiring lease cannot bring it back). */
static void assert_next_delivery_is(const char *q, const char *id)
{
    herald_batch b = { 0 };
    cr_assert_eq(pull_n(q, 10, &b), 1);
    cr_assert_str_eq(b.msgs[0].id, id);
    hx_ack1(env.store, q, b.msgs[0].lease_id);
    herald_batch_deinit(&b);
}

static void assert_body(const herald_message *m, const void *body, size_t len)
{
    cr_assert_eq(m->body_len, len, "body_len %zu, expected %zu", m->body_len, len);
    cr_assert_not_null(m->body);
    cr_assert_eq(memcmp(m->body, body, len), 0, "body differs");
    cr_assert_eq(m->body[len], 0, "body is not NUL-terminated");
}

/* ---- content types -------------------------------------------------------------------------- */

Test(send, json_is_the_default_content_type_and_the_body_round_trips)
{
    const char *body = "{\"order\":42,\"items\":[\"a\",\"b\"]}";
    herald_msg m;
    memset(&m, 0, sizeof m); /* content_type 0 = default */
    m.body = body;
    m.body_len = strlen(body);
    m.delay_s = HERALD_UNSET;
    char id[HERALD_ID_SIZE] = "";
    hx_send(env.store, "q", &m, id);

    herald_batch b = { 0 };
    hx_peek(env.store, "q", &b);
    cr_assert_eq(b.n, 1);
    cr_assert_str_eq(b.msgs[0].id, id);
    cr_assert_eq(b.msgs[0].content_type, HERALD_CONTENT_JSON);
    assert_body(&b.msgs[0], body, strlen(body));
    herald_batch_deinit(&b);
    cr_assert_str_eq(herald_content_type_name(HERALD_CONTENT_JSON), "json");
}

Test(send, json_accepts_any_single_json_value)
{
    const char *ok[] = { "{}", "[]", "[1,2,3]", "42", "-1.5e3", "\"hello\"", "null", "true",
                         "false", " {\"ws\": [ 1 , 2 ] }\n", "{\"a\":{\"b\":[{}]}}",
                         "\"caf\xc3\xa9\"" };
    size_t n = sizeof ok / sizeof ok[0];
    for (size_t i = 0; i < n; i++) {
        herald_msg m = json(ok[i]);
        int rc = herald_send(env.store, "q", &m, NULL);
        cr_expect_eq(rc, 0, "'%s' rejected: %s: %s", ok[i], herald_err_name(rc),
                     herald_last_error());
    }
    cr_assert_eq(stats("q").backlog_count, (int64_t)n);
}

Test(send, invalid_json_is_ebadjson_and_stores_nothing)
{
    const char *bad[] = { "", "{", "}", "{\"a\":1", "{'a':1}", "[1,]", "hello", "{} {}",
                          "{\"a\":1}}", "nul", "   " };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        herald_msg m = json(bad[i]);
        char id[HERALD_ID_SIZE] = "untouched";
        int rc = herald_send(env.store, "q", &m, id);
        cr_expect_eq(rc, HERALD_EBADJSON, "'%s': got %s (%d)", bad[i], herald_err_name(rc), rc);
        cr_expect(hx_mentions(herald_last_error(), "json"), "'%s': last error '%s'", bad[i],
                  herald_last_error());
        cr_assert_str_eq(id, "untouched", "id_out written on failure");
    }
    assert_nothing_stored("q");
}

Test(send, text_round_trips_utf8)
{
    const char *body = "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80 not json {";
    herald_msg m = mk(body, strlen(body), HERALD_CONTENT_TEXT, HERALD_UNSET);
    char id[HERALD_ID_SIZE];
    hx_send(env.store, "q", &m, id);
    herald_batch b = { 0 };
    cr_assert_eq(pull_n("q", 10, &b), 1);
    cr_assert_str_eq(b.msgs[0].id, id);
    cr_assert_eq(b.msgs[0].content_type, HERALD_CONTENT_TEXT);
    assert_body(&b.msgs[0], body, strlen(body));
    herald_batch_deinit(&b);
}

Test(send, text_with_invalid_utf8_is_ebadtype_and_stores_nothing)
{
    const char *bad[] = { "\xff\xfe", "abc\xc3", "\x80" "abc", "\xc0\xaf", "ok \xe2\x82",
                          "\xf8\x88\x80\x80\x80" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        herald_msg m = mk(bad[i], strlen(bad[i]), HERALD_CONTENT_TEXT, HERALD_UNSET);
        int rc = herald_send(env.store, "q", &m, NULL);
        cr_expect_eq(rc, HERALD_EBADTYPE, "case %zu: got %s (%d)", i, herald_err_name(rc), rc);
        cr_expect(hx_mentions(herald_last_error(), "utf"), "case %zu: last error '%s'", i,
                  herald_last_error());
    }
    assert_nothing_stored("q");
}

Test(send, unknown_content_type_is_ebadtype)
{
    herald_msg m = mk("{}", 2, (herald_content_type)7, HERALD_UNSET);
    cr_assert_eq(herald_send(env.store, "q", &m, NULL), HERALD_EBADTYPE);
    m.content_type = (herald_content_type)-3;
    cr_assert_eq(herald_send(env.store, "q", &m, NULL), HERALD_EBADTYPE);
    assert_nothing_stored("q");
}

Test(send, content_type_names_parse_and_print)
{
    herald_content_type t = HERALD_CONTENT_BYTES;
    cr_assert_eq(herald_content_type_parse("json", &t), 0);
    cr_assert_eq(t, HERALD_CONTENT_JSON);
    cr_assert_eq(herald_content_type_parse("text", &t), 0);
    cr_assert_eq(t, HERALD_CONTENT_TEXT);
    cr_assert_eq(herald_content_type_parse("bytes", &t), 0);
    cr_assert_eq(t, HERALD_CONTENT_BYTES);
    t = HERALD_CONTENT_TEXT;
    cr_assert_eq(herald_content_type_parse("v8", &t), HERALD_EBADTYPE);
    cr_assert_eq(t, HERALD_CONTENT_TEXT, "out set on failure");
    cr_assert_str_eq(herald_content_type_name(HERALD_CONTENT_TEXT), "text");
    cr_assert_str_eq(herald_content_type_name(HERALD_CONTENT_BYTES), "bytes");
}

Test(send, bytes_round_trip_every_byte_value_including_nul)
{
    uint8_t body[512];
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (uint8_t)(i * 7 + 3);
    body[0] = 0;
    body[1] = 0xff;
    body[200] = 0;
    for (int i = 0; i < 256; i++)
        body[256 + i] = (uint8_t)i;
    herald_msg m = bytes(body, sizeof body);
    char id[HERALD_ID_SIZE];
    hx_send(env.store, "q", &m, id);
    cr_assert_eq(stats("q").backlog_bytes, (int64_t)sizeof body);

    herald_batch b = { 0 };
    hx_peek(env.store, "q", &b);
    cr_assert_eq(b.n, 1);
    cr_assert_eq(b.msgs[0].content_type, HERALD_CONTENT_BYTES);
    assert_body(&b.msgs[0], body, sizeof body);
    herald_batch_deinit(&b);

    cr_assert_eq(pull_n("q", 1, &b), 1);
    cr_assert_str_eq(b.msgs[0].id, id);
    cr_assert_eq(b.msgs[0].content_type, HERALD_CONTENT_BYTES);
    assert_body(&b.msgs[0], body, sizeof body);
    herald_batch_deinit(&b);
}

Test(send, empty_bytes_body_round_trips)
{
    herald_msg m = bytes("", 0);
    hx_send(env.store, "q", &m, NULL);
    herald_batch b = { 0 };
    cr_assert_eq(pull_n("q", 1, &b), 1);
    cr_assert_eq(b.msgs[0].body_len, 0);
    herald_batch_deinit(&b);
}

/* ---- sizes ---------------------------------------------------------------------------------- */

Test(send, body_of_exactly_128000_bytes_is_accepted_and_one_more_is_etoobig)
{
    uint8_t *big = calloc(1, 128001);
    cr_assert_not_null(big);
    memset(big, 'x', 128001);
    herald_msg m = bytes(big, 128000);
    hx_send(env.store, "q", &m, NULL);
    m.body_len = 128001;
    int rc = herald_send(env.store, "q", &m, NULL);
    cr_assert_eq(rc, HERALD_ETOOBIG, "got %s", herald_err_name(rc));
    cr_assert(hx_mentions(herald_last_error(), "128000") ||
                  hx_mentions(herald_last_error(), "128,000"),
              "last error '%s' does not name the limit", herald_last_error());

    /* the same limit for a JSON body: a string of 127998 chars plus its quotes */
    char *j = malloc(128002);
    cr_assert_not_null(j);
    j[0] = '"';
    memset(j + 1, 'a', 127998);
    j[127999] = '"';
    j[128000] = 0;
    herald_msg mj = json(j);
    cr_assert_eq(mj.body_len, 128000);
    hx_send(env.store, "q", &mj, NULL);
    j[127999] = 'a';
    j[128000] = '"';
    j[128001] = 0;
    mj = json(j);
    cr_assert_eq(herald_send(env.store, "q", &mj, NULL), HERALD_ETOOBIG);

    herald_queue_stats st = stats("q");
    cr_assert_eq(st.backlog_count, 2);
    cr_assert_eq(st.backlog_bytes, 256000);
    free(big);
    free(j);
}

Test(send, queue_max_message_bytes_is_respected)
{
    herald_queue_settings st;
    herald_queue_settings_init(&st);
    st.max_message_bytes = 10;
    hx_create_queue(env.store, "small", &st);
    herald_msg ok = bytes("0123456789", 10);
    hx_send(env.store, "small", &ok, NULL);
    herald_msg big = bytes("0123456789A", 11);
    int rc = herald_send(env.store, "small", &big, NULL);
    cr_assert_eq(rc, HERALD_ETOOBIG, "got %s", herald_err_name(rc));
    cr_assert_eq(stats("small").backlog_count, 1);

    /* in a batch too */
    herald_msg two[2] = { ok, big };
    rc = herald_send_batch(env.store, "small", two, 2, HERALD_UNSET, NULL);
    cr_assert_eq(rc, HERALD_ETOOBIG, "batch: got %s", herald_err_name(rc));
    cr_assert_eq(stats("small").backlog_count, 1);
}

Test(send, queue_max_message_bytes_can_raise_the_limit_above_128000)
{
    herald_queue_settings st;
    herald_queue_settings_init(&st);
    st.max_message_bytes = 200000;
    hx_create_queue(env.store, "large", &st);
    uint8_t *body = calloc(1, 200001);
    cr_assert_not_null(body);
    herald_msg m = bytes(body, 150000);
    hx_send(env.store, "large", &m, NULL);
    m.body_len = 200000;
    hx_send(env.store, "large", &m, NULL);
    m.body_len = 200001;
    cr_assert_eq(herald_send(env.store, "large", &m, NULL), HERALD_ETOOBIG);
    cr_assert_eq(stats("large").backlog_count, 2);
    free(body);
}

/* ---- batches -------------------------------------------------------------------------------- */

Test(send, batch_of_zero_or_101_messages_is_ebatch)
{
    static herald_msg msgs[101];
    for (int i = 0; i < 101; i++)
        msgs[i] = json("{}");
    char (*ids)[HERALD_ID_SIZE] = calloc(101, HERALD_ID_SIZE);
    int rc = herald_send_batch(env.store, "q", msgs, 0, HERALD_UNSET, ids);
    cr_assert_eq(rc, HERALD_EBATCH, "n=0: got %s", herald_err_name(rc));
    rc = herald_send_batch(env.store, "q", msgs, 101, HERALD_UNSET, ids);
    cr_assert_eq(rc, HERALD_EBATCH, "n=101: got %s", herald_err_name(rc));
    cr_assert(hx_mentions(herald_last_error(), "100"), "last error '%s' does not name the limit",
              herald_last_error());
    assert_nothing_stored("q");

    rc = herald_send_batch(env.store, "q", msgs, 100, HERALD_UNSET, ids);
    cr_assert_eq(rc, 0, "n=100: %s", herald_last_error());
    herald_queue_stats st = stats("q");
    cr_assert_eq(st.backlog_count, 100);
    cr_assert_eq(st.sent_total, 100);
    free(ids);
}

Test(send, batch_over_256000_total_bytes_is_etoobig_and_exactly_256000_is_accepted)
{
    uint8_t *body = calloc(1, 128000);
    cr_assert_not_null(body);
    herald_msg m3[3] = { bytes(body, 100000), bytes(body, 100000), bytes(body, 100000) };
    int rc = herald_send_batch(env.store, "q", m3, 3, HERALD_UNSET, NULL);
    cr_assert_eq(rc, HERALD_ETOOBIG, "300000 bytes: got %s", herald_err_name(rc));
    cr_assert(hx_mentions(herald_last_error(), "256000") ||
                  hx_mentions(herald_last_error(), "256,000"),
              "last error '%s' does not name the batch limit", herald_last_error());
    assert_nothing_stored("q");

    herald_msg m2[3] = { bytes(body, 128000), bytes(body, 127999), bytes(body, 1) };
    rc = herald_send_batch(env.store, "q", m2, 3, HERALD_UNSET, NULL);
    cr_assert_eq(rc, 0, "256000 bytes: %s: %s", herald_err_name(rc), herald_last_error());
    m2[2].body_len = 2;
    rc = herald_send_batch(env.store, "q", m2, 3, HERALD_UNSET, NULL);
    cr_assert_eq(rc, HERALD_ETOOBIG, "256001 bytes: got %s", herald_err_name(rc));
    herald_queue_stats st = stats("q");
    cr_assert_eq(st.backlog_count, 3);
    cr_assert_eq(st.backlog_bytes, 256000);
    free(body);
}

Test(send, batch_with_one_oversized_message_is_etoobig)
{
    uint8_t *body = calloc(1, 128001);
    cr_assert_not_null(body);
    herald_msg m[2] = { bytes(body, 10), bytes(body, 128001) };
    cr_assert_eq(herald_send_batch(env.store, "q", m, 2, HERALD_UNSET, NULL), HERALD_ETOOBIG);
    assert_nothing_stored("q");
    free(body);
}

typedef struct bad_batch_case {
    const char *why;
    int idx;      /* which message is bad */
    int expected; /* rc */
} bad_batch_case;

Test(send, batch_with_one_bad_message_sends_nothing_and_names_its_index)
{
    const bad_batch_case cases[] = {
        { "bad json", 2, HERALD_EBADJSON },
        { "bad utf8 text", 3, HERALD_EBADTYPE },
        { "bad delay", 1, HERALD_EDELAY },
        { "unknown type", 2, HERALD_EBADTYPE },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        herald_msg m[4] = { json("{\"i\":0}"), json("{\"i\":1}"), json("{\"i\":2}"),
                            json("{\"i\":3}") };
        int bi = cases[c].idx;
        switch (c) {
        case 0: m[bi] = json("{\"i\":"); break;
        case 1: m[bi] = mk("\xff", 1, HERALD_CONTENT_TEXT, HERALD_UNSET); break;
        case 2: m[bi].delay_s = HERALD_MAX_DELAY_S + 1; break;
        default: m[bi].content_type = (herald_content_type)9; break;
        }
        char ids[4][HERALD_ID_SIZE];
        memset(ids, 0, sizeof ids);
        int rc = herald_send_batch(env.store, "q", m, 4, 0, ids);
        cr_expect_eq(rc, cases[c].expected, "%s: got %s (%d)", cases[c].why,
                     herald_err_name(rc), rc);
        char idx[8];
        snprintf(idx, sizeof idx, "%d", bi);
        cr_expect(hx_mentions(herald_last_error(), idx),
                  "%s: last error '%s' does not name index %d", cases[c].why, herald_last_error(),
                  bi);
        for (int i = 0; i < 4; i++)
            cr_assert_eq(ids[i][0], 0, "%s: ids_out written on failure", cases[c].why);
        assert_nothing_stored("q");
    }
}

/* ---- delays --------------------------------------------------------------------------------- */

/* visible_at of a message relative to `t0`, in seconds, via peek. */
static int64_t delay_of(const herald_batch *b, const char *id, int64_t t0)
{
    const herald_message *m = find_id(b, id);
    cr_assert_not_null(m, "message %s not found by peek", id);
    return (m->visible_at_ms - t0) / 1000;
}

Test(send, message_delay_beats_batch_delay_beats_queue_delivery_delay)
{
    herald_queue_settings st;
    herald_queue_settings_init(&st);
    st.delivery_delay_s = 1000;
    hx_create_queue(env.store, "dq", &st);
    int64_t t0 = hx_clock_now(&env.clock);

    herald_msg m[3] = { json_d("\"msg10\"", 10), json_d("\"batch\"", HERALD_UNSET),
                        json_d("\"zero\"", 0) };
    char ids[3][HERALD_ID_SIZE];
    cr_assert_eq(herald_send_batch(env.store, "dq", m, 3, 100, ids), 0, "%s", herald_last_error());
    herald_msg q1 = json_d("\"queue\"", HERALD_UNSET);
    char qid[HERALD_ID_SIZE];
    cr_assert_eq(herald_send_batch(env.store, "dq", &q1, 1, HERALD_UNSET, &qid), 0);

    herald_batch b = { 0 };
    hx_peek(env.store, "dq", &b);
    cr_assert_eq(b.n, 4);
    cr_assert_eq(delay_of(&b, ids[0], t0), 10, "message delay");
    cr_assert_eq(delay_of(&b, ids[1], t0), 100, "batch delay");
    cr_assert_eq(delay_of(&b, ids[2], t0), 0, "explicit 0");
    cr_assert_eq(delay_of(&b, qid, t0), 1000, "queue delay");
    herald_batch_deinit(&b);

    herald_queue_stats s = stats("dq");
    cr_assert_eq(s.visible_count, 1);
    cr_assert_eq(s.delayed_count, 3);

    /* and by delivery: only "zero" now, "msg10" after 10 s, "batch" after 100 s */
    assert_next_delivery_is("dq", ids[2]);
    hx_clock_advance(&env.clock, 10 * 1000 + 1);
    assert_next_delivery_is("dq", ids[0]);
    hx_clock_advance(&env.clock, 90 * 1000);
    assert_next_delivery_is("dq", ids[1]);
    hx_clock_advance(&env.clock, 900 * 1000);
    assert_next_delivery_is("dq", qid);
}

Test(send, explicit_zero_delay_overrides_queue_delivery_delay)
{
    herald_queue_settings st;
    herald_queue_settings_init(&st);
    st.delivery_delay_s = 600;
    hx_create_queue(env.store, "dq", &st);

    char id0[HERALD_ID_SIZE], idu[HERALD_ID_SIZE];
    herald_msg zero = json_d("\"zero\"", 0);
    herald_msg unset = json_d("\"unset\"", HERALD_UNSET);
    hx_send(env.store, "dq", &zero, id0);
    hx_send(env.store, "dq", &unset, idu);
    assert_next_delivery_is("dq", id0);

    /* a batch delay of 0 also overrides the queue's */
    char idb[HERALD_ID_SIZE];
    cr_assert_eq(herald_send_batch(env.store, "dq", &unset, 1, 0, &idb), 0);
    assert_next_delivery_is("dq", idb);

    hx_clock_advance(&env.clock, 600 * 1000 + 1);
    assert_next_delivery_is("dq", idu);
}

Test(send, delayed_message_is_not_pulled_until_the_clock_passes_its_delay)
{
    char id[HERALD_ID_SIZE];
    herald_msg m = json_d("{\"later\":true}", 30);
    int64_t t0 = hx_clock_now(&env.clock);
    hx_send(env.store, "q", &m, id);
    herald_queue_stats st = stats("q");
    cr_assert_eq(st.delayed_count, 1);
    cr_assert_eq(st.visible_count, 0);
    cr_assert_eq(st.backlog_count, 1);

    herald_batch b = { 0 };
    cr_assert_eq(pull_n("q", 10, &b), 0);
    hx_clock_advance(&env.clock, 30 * 1000 - 1);
    cr_assert_eq(pull_n("q", 10, &b), 0, "delivered 1 ms early");
    hx_clock_advance(&env.clock, 2);
    cr_assert_eq(pull_n("q", 10, &b), 1);
    cr_assert_str_eq(b.msgs[0].id, id);
    cr_assert_eq(b.msgs[0].attempts, 1);
    cr_assert_eq(b.msgs[0].timestamp_ms, t0, "timestamp is the send time");
    herald_batch_deinit(&b);
}

Test(send, delay_of_365_days_is_accepted_and_one_second_more_is_edelay)
{
    herald_msg m = json_d("1", HERALD_MAX_DELAY_S);
    hx_send(env.store, "q", &m, NULL);
    m.delay_s = HERALD_MAX_DELAY_S + 1;
    int rc = herald_send(env.store, "q", &m, NULL);
    cr_assert_eq(rc, HERALD_EDELAY, "message delay: got %s", herald_err_name(rc));
    cr_assert(hx_mentions(herald_last_error(), "delay"), "last error '%s'", herald_last_error());

    herald_msg u = json_d("2", HERALD_UNSET);
    cr_assert_eq(herald_send_batch(env.store, "q", &u, 1, HERALD_MAX_DELAY_S, NULL), 0);
    rc = herald_send_batch(env.store, "q", &u, 1, HERALD_MAX_DELAY_S + 1, NULL);
    cr_assert_eq(rc, HERALD_EDELAY, "batch delay: got %s", herald_err_name(rc));

    herald_queue_stats st = stats("q");
    cr_assert_eq(st.backlog_count, 2);
    cr_assert_eq(st.delayed_count, 2);

    /* 365 days really is 365 days */
    herald_batch b = { 0 };
    hx_clock_advance(&env.clock, (int64_t)HERALD_MAX_DELAY_S * 1000 - 1000);
    cr_assert_eq(pull_n("q", 10, &b), 0);
    hx_clock_advance(&env.clock, 2000);
    cr_assert_eq(pull_n("q", 10, &b), 2);
    herald_batch_deinit(&b);
}

Test(send, negative_delay_other_than_unset_is_edelay)
{
    const int64_t bad[] = { -2, -100, -86400, INT64_MIN };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        herald_msg m = json_d("1", bad[i]);
        int rc = herald_send(env.store, "q", &m, NULL);
        cr_assert_eq(rc, HERALD_EDELAY, "delay %lld: got %s", (long long)bad[i],
                     herald_err_name(rc));
        herald_msg u = json_d("1", HERALD_UNSET);
        rc = herald_send_batch(env.store, "q", &u, 1, bad[i], NULL);
        cr_assert_eq(rc, HERALD_EDELAY, "batch delay %lld: got %s", (long long)bad[i],
                     herald_err_name(rc));
    }
    assert_nothing_stored("q");
}

/* ---- ids ------------------------------------------------------------------------------------ */

Test(send, ids_are_distinct_uuids_returned_in_input_order)
{
    enum { N = 50 };
    char bodies[N][16];
    herald_msg m[N];
    for (int i = 0; i < N; i++) {
        snprintf(bodies[i], sizeof bodies[i], "%d", i);
        m[i] = json_d(bodies[i], 0);
    }
    char ids[N][HERALD_ID_SIZE];
    cr_assert_eq(herald_send_batch(env.store, "q", m, N, HERALD_UNSET, ids), 0, "%s",
                 herald_last_error());
    for (int i = 0; i < N; i++) {
        cr_assert(hx_is_uuid(ids[i]), "id %d '%s' is not a UUID", i, ids[i]);
        for (int j = 0; j < i; j++)
            cr_assert_str_neq(ids[i], ids[j], "ids %d and %d are equal", i, j);
    }
    herald_batch b = { 0 };
    hx_peek(env.store, "q", &b);
    cr_assert_eq(b.n, N);
    for (int i = 0; i < N; i++) {
        const herald_message *pm = find_id(&b, ids[i]);
        cr_assert_not_null(pm, "id %d not stored", i);
        cr_assert_eq(pm->body_len, strlen(bodies[i]));
        cr_assert_eq(memcmp(pm->body, bodies[i], pm->body_len), 0,
                     "ids_out[%d] belongs to body '%.*s'", i, (int)pm->body_len, pm->body);
    }
    herald_batch_deinit(&b);

    /* single sends get fresh ids too */
    char one[HERALD_ID_SIZE], two[HERALD_ID_SIZE];
    herald_msg x = json("{}");
    hx_send(env.store, "q", &x, one);
    hx_send(env.store, "q", &x, two);
    cr_assert(hx_is_uuid(one));
    cr_assert(hx_is_uuid(two));
    cr_assert_str_neq(one, two);
    for (int i = 0; i < N; i++)
        cr_assert_str_neq(one, ids[i]);
}

Test(send, id_out_and_ids_out_may_be_null)
{
    herald_msg m = json("{}");
    cr_assert_eq(herald_send(env.store, "q", &m, NULL), 0);
    cr_assert_eq(herald_send_batch(env.store, "q", &m, 1, HERALD_UNSET, NULL), 0);
    cr_assert_eq(stats("q").backlog_count, 2);
}

Test(send, send_counts_in_stats_sent_total_backlog_and_oldest_timestamp)
{
    int64_t t0 = hx_clock_now(&env.clock);
    herald_msg a = json("[1,2]");
    hx_send(env.store, "q", &a, NULL);
    hx_clock_advance(&env.clock, 5000);
    herald_msg m[2] = { json("{\"k\":\"v\"}"), json("7") };
    cr_assert_eq(herald_send_batch(env.store, "q", m, 2, HERALD_UNSET, NULL), 0);
    herald_queue_stats st = stats("q");
    cr_assert_eq(st.sent_total, 3);
    cr_assert_eq(st.backlog_count, 3);
    cr_assert_eq(st.visible_count, 3);
    cr_assert_eq(st.backlog_bytes, (int64_t)(strlen("[1,2]") + strlen("{\"k\":\"v\"}") + 1));
    cr_assert_eq(st.oldest_message_timestamp_ms, t0);
}

/* ---- async ---------------------------------------------------------------------------------- */

typedef struct async_box {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls;
    int rc;
    size_t n;
    char ids[8][HERALD_ID_SIZE];
    bool ids_null;
} async_box;

static void async_box_init(async_box *b)
{
    memset(b, 0, sizeof *b);
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
}

static void async_cb(void *ud, int rc, const char (*ids)[HERALD_ID_SIZE], size_t n)
{
    async_box *b = ud;
    pthread_mutex_lock(&b->mu);
    b->calls++;
    b->rc = rc;
    b->n = n;
    b->ids_null = ids == NULL;
    for (size_t i = 0; ids && i < n && i < 8; i++)
        memcpy(b->ids[i], ids[i], HERALD_ID_SIZE);
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

/* Waits up to 10 s for the first callback; returns the number of calls so far. */
static int async_wait(async_box *b)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    pthread_mutex_lock(&b->mu);
    while (b->calls == 0) {
        if (pthread_cond_timedwait(&b->cv, &b->mu, &dl) != 0)
            break;
    }
    int calls = b->calls;
    pthread_mutex_unlock(&b->mu);
    return calls;
}

Test(send, send_batch_async_calls_back_exactly_once_with_ids_in_input_order)
{
    async_box box;
    async_box_init(&box);
    char bodies[3][16] = { "\"b0\"", "\"b1\"", "\"b2\"" };
    herald_msg m[3];
    for (int i = 0; i < 3; i++)
        m[i] = json_d(bodies[i], 0);
    int rc = herald_send_batch_async(env.store, "q", m, 3, HERALD_UNSET, async_cb, &box);
    cr_assert_eq(rc, 0, "async: %s: %s", herald_err_name(rc), herald_last_error());
    /* the bodies were copied: scribble over ours */
    for (int i = 0; i < 3; i++)
        memcpy(bodies[i], "\"XX\"", 4);

    cr_assert_eq(async_wait(&box), 1, "callback not called within 10 s");
    cr_assert_eq(box.rc, 0, "callback rc %s", herald_err_name(box.rc));
    cr_assert_eq(box.n, 3);
    cr_assert_not(box.ids_null);

    /* the batch is durable and readable once the callback ran */
    herald_batch b = { 0 };
    hx_peek(env.store, "q", &b);
    cr_assert_eq(b.n, 3);
    for (int i = 0; i < 3; i++) {
        cr_assert(hx_is_uuid(box.ids[i]), "id %d '%s'", i, box.ids[i]);
        const herald_message *pm = find_id(&b, box.ids[i]);
        cr_assert_not_null(pm, "callback id %d not stored", i);
        char want[8];
        snprintf(want, sizeof want, "\"b%d\"", i);
        cr_assert_eq(pm->body_len, strlen(want));
        cr_assert_eq(memcmp(pm->body, want, pm->body_len), 0, "id %d has body '%.*s'", i,
                     (int)pm->body_len, pm->body);
    }
    herald_batch_deinit(&b);

    /* closing drains the writer: a second call would have happened by now */
    hx_env_close(&env);
    pthread_mutex_lock(&box.mu);
    int calls = box.calls;
    pthread_mutex_unlock(&box.mu);
    cr_assert_eq(calls, 1, "callback ran %d times", calls);
}

Test(send, send_batch_async_many_in_flight_each_called_once)
{
    enum { N = 20 };
    static async_box boxes[N];
    herald_msg m = json("{\"x\":1}");
    for (int i = 0; i < N; i++) {
        async_box_init(&boxes[i]);
        int rc = herald_send_batch_async(env.store, "q", &m, 1, HERALD_UNSET, async_cb, &boxes[i]);
        cr_assert_eq(rc, 0, "async %d: %s", i, herald_last_error());
    }
    for (int i = 0; i < N; i++)
        cr_assert_eq(async_wait(&boxes[i]), 1, "batch %d: no callback", i);
    cr_assert_eq(stats("q").backlog_count, N);
    hx_env_close(&env);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(boxes[i].calls, 1, "batch %d: %d calls", i, boxes[i].calls);
        cr_assert_eq(boxes[i].rc, 0);
        for (int j = 0; j < i; j++)
            cr_assert_str_neq(boxes[i].ids[0], boxes[j].ids[0]);
    }
}

Test(send, send_batch_async_with_bad_input_returns_error_and_never_calls_back)
{
    async_box box;
    async_box_init(&box);
    herald_msg m = json("{");
    int rc = herald_send_batch_async(env.store, "q", &m, 0, HERALD_UNSET, async_cb, &box);
    cr_assert_eq(rc, HERALD_EBATCH, "n=0: got %s", herald_err_name(rc));
    rc = herald_send_batch_async(env.store, "q", &m, 1, HERALD_UNSET, async_cb, &box);
    cr_assert_eq(rc, HERALD_EBADJSON, "bad json: got %s", herald_err_name(rc));
    herald_msg d = json_d("1", -7);
    rc = herald_send_batch_async(env.store, "q", &d, 1, HERALD_UNSET, async_cb, &box);
    cr_assert_eq(rc, HERALD_EDELAY, "bad delay: got %s", herald_err_name(rc));
    assert_nothing_stored("q");
    hx_env_close(&env);
    cr_assert_eq(box.calls, 0, "callback ran after a refused call");
}

/* ---- herald_msg_validate -------------------------------------------------------------------- */

Test(send, msg_validate_checks_a_message_as_send_would_without_sending)
{
    char *big = malloc(HERALD_MAX_MESSAGE_BYTES + 2);
    cr_assert_not_null(big);
    big[0] = '"';
    memset(big + 1, 'a', HERALD_MAX_MESSAGE_BYTES - 1); /* "aaa...a" of 128,001 bytes */
    big[HERALD_MAX_MESSAGE_BYTES] = '"';
    big[HERALD_MAX_MESSAGE_BYTES + 1] = 0;
    static const char bad_utf8[] = "ok \xC3\x28";
    struct {
        herald_msg m;
        int want;
    } cases[] = {
        { json("{\"a\":[1,2]}"), 0 },
        { json("42"), 0 },
        { mk("plain text", 10, HERALD_CONTENT_TEXT, HERALD_UNSET), 0 },
        { mk("\0\1\2", 3, HERALD_CONTENT_BYTES, 0), 0 },
        { json_d("{}", HERALD_MAX_DELAY_S), 0 },
        { mk(big, HERALD_MAX_MESSAGE_BYTES, HERALD_CONTENT_BYTES, HERALD_UNSET), 0 },
        { json("{\"a\":"), HERALD_EBADJSON },
        { json("not json"), HERALD_EBADJSON },
        { mk(bad_utf8, sizeof bad_utf8 - 1, HERALD_CONTENT_TEXT, HERALD_UNSET), HERALD_EBADTYPE },
        { mk("{}", 2, (herald_content_type)7, HERALD_UNSET), HERALD_EBADTYPE },
        { mk(big, HERALD_MAX_MESSAGE_BYTES + 1, HERALD_CONTENT_JSON, HERALD_UNSET),
          HERALD_ETOOBIG },
        { json_d("{}", HERALD_MAX_DELAY_S + 1), HERALD_EDELAY },
        { json_d("{}", -2), HERALD_EDELAY },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = herald_msg_validate(&cases[i].m);
        cr_expect_eq(rc, cases[i].want, "case %zu: got %s, want %s (%s)", i, herald_err_name(rc),
                     herald_err_name(cases[i].want), herald_last_error());
    }
    free(big);
    cr_assert_eq(hx_stats(env.store, "q").sent_total, 0, "validate sent something");
}
