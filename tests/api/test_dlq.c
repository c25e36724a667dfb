// SPDX-License-Identifier: MIT
/*
 * test_dlq.c - dead-letter tooling through the public API: the attempt history of a message
 * (herald_message_attempts: every failed retry with its error, every expired lease, kept across
 * the move to the DLQ), herald_dlq_redrive (back to the source queue or to another one, by id,
 * at most N, paced, optionally edited with path=value sets or an RFC 7386 merge patch) and the
 * redrive audit (herald_redrive_audit). Bad input of every kind must change nothing: the DLQ, the
 * target and the audit are compared before and after.
 * Each test owns a temp dir and a store on a fake clock (tests/support/support.h); only the
 * pacing test looks at real time, and only as a lower bound.
 */
#include <criterion/criterion.h>
#include <jansson.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald.h"
#include "support.h"

static hx_env env;

static void setup(void)
{
    hx_env_setup(&env, 0);
}

static void teardown(void)
{
    hx_env_teardown(&env);
}

TestSuite(dlq, .init = setup, .fini = teardown, .timeout = 60);

#define LONG_VIS (3600LL * 1000)

/* ---- helpers ------------------------------------------------------------------------------- */

/* Creates queue `name` with max_retries and a dead-letter queue (NULL: none). */
static void mkq(const char *name, int64_t max_retries, const char *dlq)
{
    herald_queue_settings st;
    herald_queue_settings_init(&st);
    st.max_retries = max_retries;
    st.dead_letter_queue = dlq;
    hx_create_queue(env.store, name, &st);
}

/* Sends an event (an envelope body) of this type and payload to q; returns the message id. */
static void send_event(const char *q, const char *type, const char *payload,
                       char id[HERALD_ID_SIZE])
{
    herald_event e = { .type = type, .source = "tests", .payload_json = payload };
    char eid[HERALD_ID_SIZE];
    char *body = NULL;
    size_t len = 0;
    int rc = herald_event_encode(env.store, &e, eid, &body, &len);
    cr_assert_eq(rc, 0, "herald_event_encode: %s", herald_last_error());
    herald_msg m = { .body = body, .body_len = len, .content_type = HERALD_CONTENT_JSON,
                     .delay_s = HERALD_UNSET };
    hx_send(env.store, q, &m, id);
    herald_free(body);
}

static void send_text(const char *q, const char *text, char id[HERALD_ID_SIZE])
{
    herald_msg m = { .body = text, .body_len = strlen(text), .content_type = HERALD_CONTENT_TEXT,
                     .delay_s = HERALD_UNSET };
    hx_send(env.store, q, &m, id);
}

/* Pulls the one visible message of q and retries it with `error`: returns the settle result.
 * Asserts that the pulled message is `id` (when given). */
static herald_settle_result fail_once(const char *q, const char *id, const char *error)
{
    herald_batch b = { 0 };
    cr_assert_eq(hx_pull(env.store, q, 1, LONG_VIS, &b), 1, "nothing to pull from %s", q);
    if (id)
        cr_assert_str_eq(b.msgs[0].id, id);
    const char *lease = b.msgs[0].lease_id;
    herald_settle_result r;
    int rc = herald_retry(env.store, q, &lease, 1, 0, error, &r);
    cr_assert_eq(rc, 0, "herald_retry: %s", herald_last_error());
    herald_batch_deinit(&b);
    return r;
}

/* Kills every visible message of q (a queue with max_retries 0 and a DLQ): one pull of up to
 * 100, each retried with `error`. Returns how many died. */
static size_t kill_all(const char *q, const char *error)
{
    size_t total = 0;
    for (;;) {
        herald_batch b = { 0 };
        size_t n = hx_pull(env.store, q, 100, LONG_VIS, &b);
        if (n == 0) {
            herald_batch_deinit(&b);
            return total;
        }
        const char *leases[100];
        for (size_t i = 0; i < n; i++)
            leases[i] = b.msgs[i].lease_id;
        herald_settle_result r;
        int rc = herald_retry(env.store, q, leases, n, 0, error, &r);
        cr_assert_eq(rc, 0, "herald_retry: %s", herald_last_error());
        cr_assert_eq(r.n_dead, (int64_t)n, "expected %zu dead, got %lld (max_retries 0?)", n,
                     (long long)r.n_dead);
        herald_batch_deinit(&b);
        total += n;
    }
}

/* Sends JSON `body` to src (max_retries 0) and dead-letters it with `error`. */
static void dead_json(const char *src, const char *body, const char *error,
                      char id[HERALD_ID_SIZE])
{
    hx_send_json(env.store, src, body, HERALD_UNSET, id);
    cr_assert_eq(kill_all(src, error), 1);
}

static herald_redrive_opts ropts(void)
{
    herald_redrive_opts o;
    herald_redrive_opts_init(&o);
    return o;
}

static int redrive(const char *dlq, const herald_redrive_opts *o, int64_t *moved)
{
    return herald_dlq_redrive(env.store, dlq, o, moved);
}

/* Redrives and asserts success and the number moved. */
static void redrive_ok(const char *dlq, const herald_redrive_opts *o, int64_t want_moved)
{
    int64_t moved = -1;
    int rc = redrive(dlq, o, &moved);
    cr_assert_eq(rc, 0, "herald_dlq_redrive(%s): %s (%s)", dlq, herald_err_name(rc),
                 herald_last_error());
    cr_assert_eq(moved, want_moved, "moved %lld, expected %lld", (long long)moved,
                 (long long)want_moved);
}

typedef struct audit_list {
    herald_audit_entry *e;
    size_t n;
} audit_list;

static audit_list audit(const char *dlq)
{
    audit_list a = { 0 };
    int rc = herald_redrive_audit(env.store, dlq, &a.e, &a.n);
    cr_assert_eq(rc, 0, "herald_redrive_audit: %s", herald_last_error());
    return a;
}

static size_t audit_count(const char *dlq)
{
    audit_list a = audit(dlq);
    herald_free(a.e);
    return a.n;
}

typedef struct attempts_list {
    herald_attempt *a;
    size_t n;
} attempts_list;

static attempts_list attempts(const char *id)
{
    attempts_list l = { 0 };
    int rc = herald_message_attempts(env.store, id, &l.a, &l.n);
    cr_assert_eq(rc, 0, "herald_message_attempts: %s", herald_last_error());
    return l;
}

/* The message of q with this id (peeked), copied into *out with its body; false if absent. */
static bool find_in(const char *q, const char *id, herald_message *out, char **body)
{
    herald_batch b = { 0 };
    size_t n = hx_peek(env.store, q, &b);
    bool found = false;
    for (size_t i = 0; i < n && !found; i++) {
        if (strcmp(b.msgs[i].id, id) != 0)
            continue;
        found = true;
        if (out) {
            *out = b.msgs[i];
            out->body = NULL;
            out->last_error = NULL;
        }
        if (body) {
            *body = malloc(b.msgs[i].body_len + 1);
            memcpy(*body, b.msgs[i].body, b.msgs[i].body_len);
            (*body)[b.msgs[i].body_len] = 0;
        }
    }
    herald_batch_deinit(&b);
    return found;
}

/* "id:body|id:body|..." of every message of q in peek order: a snapshot for "unchanged". */
static char *snapshot(const char *q)
{
    herald_batch b = { 0 };
    size_t n = hx_peek(env.store, q, &b);
    size_t cap = 64;
    for (size_t i = 0; i < n; i++)
        cap += strlen(b.msgs[i].id) + b.msgs[i].body_len + 64;
    char *s = malloc(cap);
    size_t len = 0;
    s[0] = 0;
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, cap - len, "%s:%d:%s:%.*s|", b.msgs[i].id,
                                b.msgs[i].attempts, b.msgs[i].dead_from_queue,
                                (int)b.msgs[i].body_len, (const char *)b.msgs[i].body);
    herald_batch_deinit(&b);
    return s;
}

typedef struct state {
    char *dlq, *target;
    int64_t target_sent;
    size_t n_audit;
} state;

static state take_state(const char *dlq, const char *target)
{
    state st = { .dlq = snapshot(dlq), .target = snapshot(target),
                 .target_sent = hx_stats(env.store, target).sent_total,
                 .n_audit = audit_count(NULL) };
    return st;
}

/* Asserts that nothing changed since `before` (and frees it). */
static void assert_unchanged(state before, const char *dlq, const char *target)
{
    state now = take_state(dlq, target);
    cr_assert_str_eq(now.dlq, before.dlq, "DLQ %s changed", dlq);
    cr_assert_str_eq(now.target, before.target, "queue %s changed", target);
    cr_assert_eq(now.target_sent, before.target_sent, "sent_total of %s changed", target);
    cr_assert_eq(now.n_audit, before.n_audit, "the audit changed: %zu -> %zu entries",
                 before.n_audit, now.n_audit);
    free(before.dlq);
    free(before.target);
    free(now.dlq);
    free(now.target);
}

/* Parses the body of message `id` of q and returns the JSON (caller decrefs). */
static json_t *body_json_of(const char *q, const char *id)
{
    char *body = NULL;
    cr_assert(find_in(q, id, NULL, &body), "message %s is not in %s", id, q);
    json_error_t je;
    json_t *j = json_loads(body, JSON_DECODE_ANY, &je);
    cr_assert(j, "body of %s is not JSON: %s [%s]", id, je.text, body);
    free(body);
    return j;
}

static size_t count_of(const char *q)
{
    return (size_t)hx_stats(env.store, q).backlog_count;
}

/* ------------------------------------------------------------------------------------------- *
 * Attempt history
 * ------------------------------------------------------------------------------------------- */

Test(dlq, attempts_list_every_failed_retry_in_order_with_error_and_queue)
{
    mkq("src", 2, "dlq");
    char id[HERALD_ID_SIZE];
    hx_send_json(env.store, "src", "{\"n\":1}", HERALD_UNSET, id);
    int64_t t0 = hx_clock_now(&env.clock);
    herald_settle_result r = fail_once("src", id, "boom 1");
    cr_assert_eq(r.n_retried, 1);
    hx_clock_advance(&env.clock, 1000);
    r = fail_once("src", id, "boom 2");
    cr_assert_eq(r.n_retried, 1);
    hx_clock_advance(&env.clock, 1000);
    r = fail_once("src", id, "boom 3"); /* the third delivery of max_retries 2: dead */
    cr_assert_eq(r.n_dead, 1);

    attempts_list l = attempts(id);
    cr_assert_eq(l.n, 3, "expected 3 attempts, got %zu", l.n);
    static const char *const errs[] = { "boom 1", "boom 2", "boom 3" };
    for (size_t i = 0; i < 3; i++) {
        cr_expect_eq(l.a[i].attempt, (int)i + 1, "entry %zu: attempt %d", i, l.a[i].attempt);
        cr_expect_str_eq(l.a[i].error, errs[i], "entry %zu", i);
        cr_expect_str_eq(l.a[i].queue, "src", "entry %zu", i);
        cr_expect_eq(l.a[i].at_ms, t0 + (int64_t)i * 1000, "entry %zu: at_ms %lld", i,
                     (long long)l.a[i].at_ms);
    }
    herald_free(l.a);

    /* The message is in the DLQ under the same id, with the history of where it came from. */
    herald_batch b = { 0 };
    cr_assert_eq(hx_peek(env.store, "dlq", &b), 1);
    cr_expect_str_eq(b.msgs[0].id, id);
    cr_expect_str_eq(b.msgs[0].dead_from_queue, "src");
    cr_expect_eq(b.msgs[0].dead_attempts, 3);
    cr_expect_str_eq(b.msgs[0].last_error, "boom 3");
    herald_batch_deinit(&b);
    cr_expect_eq(count_of("src"), 0);
}

Test(dlq, attempts_of_unknown_message_is_empty)
{
    attempts_list l = attempts("00000000-0000-7000-8000-000000000000");
    cr_expect_eq(l.n, 0);
    herald_free(l.a);
    herald_attempt *a = NULL;
    size_t n = 0;
    cr_expect_eq(herald_message_attempts(env.store, NULL, &a, &n), HERALD_EINVAL);
}

Test(dlq, expired_lease_is_recorded_as_visibility_timeout)
{
    mkq("src", 3, "dlq");
    char id[HERALD_ID_SIZE];
    hx_send_json(env.store, "src", "{}", HERALD_UNSET, id);
    herald_batch b = { 0 };
    cr_assert_eq(hx_pull(env.store, "src", 1, 1000, &b), 1);
    cr_assert_eq(b.msgs[0].attempts, 1);
    hx_clock_advance(&env.clock, 1500); /* the lease expires unsettled */
    cr_assert_eq(hx_pull(env.store, "src", 1, LONG_VIS, &b), 1);
    cr_assert_eq(b.msgs[0].attempts, 2);
    const char *lease = b.msgs[0].lease_id;
    cr_assert_eq(herald_retry(env.store, "src", &lease, 1, 0, "handler said no", NULL), 0);
    herald_batch_deinit(&b);

    attempts_list l = attempts(id);
    cr_assert_eq(l.n, 2, "expected 2 attempts, got %zu", l.n);
    cr_expect_eq(l.a[0].attempt, 1);
    cr_expect(hx_contains_ci(l.a[0].error, "visibility timeout expired"),
              "attempt 1 should be a visibility timeout, got '%s'", l.a[0].error);
    cr_expect_str_eq(l.a[0].queue, "src");
    cr_expect_eq(l.a[1].attempt, 2);
    cr_expect_str_eq(l.a[1].error, "handler said no");
    herald_free(l.a);
}

Test(dlq, last_lease_expiring_dead_letters_with_visibility_timeout_in_history)
{
    mkq("src", 0, "dlq");
    char id[HERALD_ID_SIZE];
    hx_send_json(env.store, "src", "{}", HERALD_UNSET, id);
    herald_batch b = { 0 };
    cr_assert_eq(hx_pull(env.store, "src", 1, 1000, &b), 1);
    hx_clock_advance(&env.clock, 2000);
    cr_assert_eq(hx_pull(env.store, "src", 1, LONG_VIS, &b), 0, "it must go to the DLQ instead");
    herald_batch_deinit(&b);

    cr_assert_eq(hx_peek(env.store, "dlq", &b), 1);
    cr_expect_str_eq(b.msgs[0].id, id);
    cr_expect_eq(b.msgs[0].dead_attempts, 1);
    cr_expect(hx_contains_ci(b.msgs[0].last_error, "visibility timeout expired"), "'%s'",
              b.msgs[0].last_error);
    herald_batch_deinit(&b);

    attempts_list l = attempts(id);
    cr_assert_eq(l.n, 1, "got %zu attempts", l.n);
    cr_expect_eq(l.a[0].attempt, 1);
    cr_expect(hx_contains_ci(l.a[0].error, "visibility timeout expired"), "'%s'", l.a[0].error);
    herald_free(l.a);
}

/* ------------------------------------------------------------------------------------------- *
 * Redrive
 * ------------------------------------------------------------------------------------------- */

Test(dlq, redrive_all_back_to_source_keeps_id_and_timestamp_and_restarts_attempts)
{
    mkq("src", 2, "dlq");
    char id1[HERALD_ID_SIZE], id2[HERALD_ID_SIZE];
    hx_send_json(env.store, "src", "{\"k\":1}", HERALD_UNSET, id1);
    hx_clock_advance(&env.clock, 10);
    hx_send_json(env.store, "src", "{\"k\":2}", HERALD_UNSET, id2);
    herald_message before1, before2;
    cr_assert(find_in("src", id1, &before1, NULL));
    cr_assert(find_in("src", id2, &before2, NULL));
    for (int i = 0; i < 3; i++) { /* three deliveries each: both die */
        herald_batch b = { 0 };
        cr_assert_eq(hx_pull(env.store, "src", 10, LONG_VIS, &b), 2);
        const char *leases[2] = { b.msgs[0].lease_id, b.msgs[1].lease_id };
        cr_assert_eq(herald_retry(env.store, "src", leases, 2, 0, "nope", NULL), 0);
        herald_batch_deinit(&b);
    }
    cr_assert_eq(count_of("dlq"), 2);
    cr_assert_eq(count_of("src"), 0);
    int64_t sent_before = hx_stats(env.store, "src").sent_total;

    hx_clock_advance(&env.clock, 60000);
    int64_t t_redrive = hx_clock_now(&env.clock);
    herald_redrive_opts o = ropts();
    o.actor = "alice";
    redrive_ok("dlq", &o, 2);

    cr_expect_eq(count_of("dlq"), 0, "the DLQ must be empty");
    herald_batch b = { 0 };
    cr_expect_eq(hx_peek(env.store, "dlq", &b), 0);
    herald_queue_stats st = hx_stats(env.store, "src");
    cr_expect_eq(st.backlog_count, 2);
    cr_expect_eq(st.visible_count, 2, "redriven messages are visible at once");
    cr_expect_eq(st.sent_total, sent_before + 2, "sent_total %lld, expected %lld",
                 (long long)st.sent_total, (long long)(sent_before + 2));

    herald_message m;
    char *body = NULL;
    cr_assert(find_in("src", id1, &m, &body), "message 1 is not back in src");
    cr_expect_eq(m.timestamp_ms, before1.timestamp_ms, "timestamp_ms changed");
    cr_expect_str_eq(body, "{\"k\":1}");
    cr_expect_str_eq(m.dead_from_queue, "", "not a dead letter any more");
    cr_expect_eq(m.dead_attempts, 0);
    free(body);
    cr_assert(find_in("src", id2, &m, &body));
    cr_expect_eq(m.timestamp_ms, before2.timestamp_ms);
    cr_expect_str_eq(body, "{\"k\":2}");
    free(body);

    /* Attempts start over: the next pull is attempt 1, and it has all its retries again. */
    cr_assert_eq(hx_pull(env.store, "src", 10, LONG_VIS, &b), 2);
    for (size_t i = 0; i < 2; i++)
        cr_expect_eq(b.msgs[i].attempts, 1, "attempts after redrive: %d", b.msgs[i].attempts);
    herald_batch_deinit(&b);
    hx_clock_advance(&env.clock, LONG_VIS + 1); /* let both leases expire: attempt 1 failed */
    cr_assert_eq(hx_pull(env.store, "src", 10, LONG_VIS, &b), 2, "not dead: 2 of 3 left");
    cr_expect_eq(b.msgs[0].attempts, 2);
    herald_batch_deinit(&b);

    /* The audit: one entry per message. */
    audit_list a = audit("dlq");
    cr_assert_eq(a.n, 2, "audit has %zu entries", a.n);
    bool seen1 = false, seen2 = false;
    for (size_t i = 0; i < a.n; i++) {
        cr_expect_str_eq(a.e[i].actor, "alice");
        cr_expect_str_eq(a.e[i].dlq, "dlq");
        cr_expect_str_eq(a.e[i].to_queue, "src");
        cr_expect_str_eq(a.e[i].edit, "");
        cr_expect_eq(a.e[i].at_ms, t_redrive);
        seen1 |= strcmp(a.e[i].message_id, id1) == 0;
        seen2 |= strcmp(a.e[i].message_id, id2) == 0;
    }
    cr_expect(seen1 && seen2, "the audit must name both messages");
    herald_free(a.e);
    cr_expect_eq(audit_count(NULL), 2, "audit of all DLQs");
    cr_expect_eq(audit_count("src"), 0, "audit of another DLQ");
}

Test(dlq, redrive_single_message_audit_entry)
{
    mkq("src", 0, "dlq");
    char id[HERALD_ID_SIZE];
    dead_json("src", "{\"a\":1}", "err", id);
    herald_redrive_opts o = ropts(); /* no actor: "unknown" */
    redrive_ok("dlq", &o, 1);
    audit_list a = audit(NULL);
    cr_assert_eq(a.n, 1);
    cr_expect_str_eq(a.e[0].actor, "unknown");
    cr_expect_str_eq(a.e[0].dlq, "dlq");
    cr_expect_str_eq(a.e[0].message_id, id);
    cr_expect_str_eq(a.e[0].to_queue, "src");
    cr_expect_str_eq(a.e[0].edit, "");
    herald_free(a.e);
    /* The history of the earlier life is still there, under the same id. */
    attempts_list l = attempts(id);
    cr_expect_eq(l.n, 1);
    herald_free(l.a);
}

Test(dlq, redrive_of_empty_dlq_moves_nothing)
{
    mkq("src", 0, "dlq");
    hx_create_queue(env.store, "dlq", NULL);
    herald_redrive_opts o = ropts();
    redrive_ok("dlq", &o, 0);
    cr_expect_eq(audit_count(NULL), 0);
}

Test(dlq, redrive_keeps_text_and_bytes_bodies_as_they_are)
{
    mkq("src", 0, "dlq");
    char tid[HERALD_ID_SIZE], bid[HERALD_ID_SIZE];
    send_text("src", "plain text, not JSON", tid);
    static const uint8_t raw[] = { 0x00, 0xff, 0x10, 0x80 };
    herald_msg m = { .body = raw, .body_len = sizeof raw, .content_type = HERALD_CONTENT_BYTES,
                     .delay_s = HERALD_UNSET };
    hx_send(env.store, "src", &m, bid);
    cr_assert_eq(kill_all("src", "x"), 2);
    herald_redrive_opts o = ropts();
    redrive_ok("dlq", &o, 2);
    herald_batch b = { 0 };
    cr_assert_eq(hx_peek(env.store, "src", &b), 2);
    for (size_t i = 0; i < 2; i++) {
        if (strcmp(b.msgs[i].id, tid) == 0) {
            cr_expect_eq(b.msgs[i].content_type, HERALD_CONTENT_TEXT);
            cr_expect(hx_body_is(&b.msgs[i], "plain text, not JSON"));
        } else {
            cr_expect_str_eq(b.msgs[i].id, bid);
            cr_expect_eq(b.msgs[i].content_type, HERALD_CONTENT_BYTES);
            cr_expect_eq(b.msgs[i].body_len, sizeof raw);
            cr_expect(memcmp(b.msgs[i].body, raw, sizeof raw) == 0, "bytes body changed");
        }
    }
    herald_batch_deinit(&b);
}

Test(dlq, redrive_with_set_edits_the_envelope_payload)
{
    mkq("src", 0, "dlq");
    char id[HERALD_ID_SIZE];
    send_event("src", "research.completed", "{\"brand_slug\":\"old\",\"n\":1,\"keep\":true}", id);
    cr_assert_eq(kill_all("src", "bad slug"), 1);
    json_t *orig = body_json_of("dlq", id);

    static const char *const sets[] = { "payload.brand_slug=\"x\"", "payload.n=5",
                                        "payload.label=hello world", "payload.meta.k=[1,2]" };
    herald_redrive_opts o = ropts();
    o.set = sets;
    o.n_set = 4;
    o.actor = "bob";
    redrive_ok("dlq", &o, 1);

    json_t *j = body_json_of("src", id);
    json_t *p = json_object_get(j, "payload");
    cr_assert(json_is_object(p));
    cr_expect_str_eq(json_string_value(json_object_get(p, "brand_slug")), "x",
                     "a JSON string value is the string itself");
    cr_expect(json_is_integer(json_object_get(p, "n")), "\"5\" parses as JSON: an integer");
    cr_expect_eq(json_integer_value(json_object_get(p, "n")), 5);
    cr_expect(json_is_true(json_object_get(p, "keep")), "untouched fields stay");
    cr_expect_str_eq(json_string_value(json_object_get(p, "label")), "hello world",
                     "a value that is not JSON is a string");
    json_t *meta = json_object_get(p, "meta");
    cr_expect(json_is_object(meta), "a missing intermediate object is created");
    cr_expect_eq(json_array_size(json_object_get(meta, "k")), 2);
    /* The envelope around it is unchanged. */
    static const char *const keys[] = { "event_id", "type", "source", "timestamp" };
    for (size_t i = 0; i < 4; i++)
        cr_expect(json_equal(json_object_get(j, keys[i]), json_object_get(orig, keys[i])),
                  "envelope field %s changed", keys[i]);
    json_decref(j);
    json_decref(orig);

    audit_list a = audit("dlq");
    cr_assert_eq(a.n, 1);
    cr_expect_str_eq(a.e[0].actor, "bob");
    cr_expect_str_eq(a.e[0].message_id, id);
    for (size_t i = 0; i < 4; i++)
        cr_expect(strstr(a.e[0].edit, sets[i]) != NULL, "audit edit '%s' lacks '%s'",
                  a.e[0].edit, sets[i]);
    herald_free(a.e);
}

Test(dlq, redrive_with_merge_patch_removes_and_adds_fields)
{
    mkq("src", 0, "dlq");
    char id[HERALD_ID_SIZE];
    send_event("src", "order.placed", "{\"drop\":\"me\",\"keep\":{\"a\":1,\"b\":2}}", id);
    cr_assert_eq(kill_all("src", "x"), 1);
    static const char patch[] = "{\"payload\":{\"drop\":null,\"add\":1,\"keep\":{\"b\":null}}}";
    herald_redrive_opts o = ropts();
    o.merge_patch = patch;
    redrive_ok("dlq", &o, 1);

    json_t *j = body_json_of("src", id);
    json_t *p = json_object_get(j, "payload");
    cr_expect_null(json_object_get(p, "drop"), "null in the patch removes the field");
    cr_expect_eq(json_integer_value(json_object_get(p, "add")), 1);
    json_t *keep = json_object_get(p, "keep");
    cr_expect_eq(json_integer_value(json_object_get(keep, "a")), 1, "merge is recursive");
    cr_expect_null(json_object_get(keep, "b"));
    cr_expect_str_eq(json_string_value(json_object_get(j, "type")), "order.placed");
    json_decref(j);

    audit_list a = audit("dlq");
    cr_assert_eq(a.n, 1);
    cr_expect(strstr(a.e[0].edit, patch) != NULL, "audit edit '%s' lacks the patch", a.e[0].edit);
    herald_free(a.e);
}

Test(dlq, redrive_edits_plain_json_without_envelope)
{
    mkq("src", 0, "dlq");
    char id[HERALD_ID_SIZE];
    dead_json("src", "{\"a\":1}", "x", id);
    static const char *const sets[] = { "b=\"two\"" };
    herald_redrive_opts o = ropts();
    o.set = sets;
    o.n_set = 1;
    o.merge_patch = "{\"a\":null}";
    redrive_ok("dlq", &o, 1);
    json_t *j = body_json_of("src", id);
    cr_expect_null(json_object_get(j, "a"));
    cr_expect_str_eq(json_string_value(json_object_get(j, "b")), "two");
    json_decref(j);
    audit_list a = audit("dlq");
    cr_assert_eq(a.n, 1);
    cr_expect(strstr(a.e[0].edit, "b=\"two\""), "edit: '%s'", a.e[0].edit);
    cr_expect(strstr(a.e[0].edit, "{\"a\":null}"), "edit: '%s'", a.e[0].edit);
    herald_free(a.e);
}

Test(dlq, redrive_to_another_queue)
{
    mkq("src", 0, "dlq");
    hx_create_queue(env.store, "other", NULL);
    char id[HERALD_ID_SIZE];
    dead_json("src", "{\"to\":\"other\"}", "x", id);
    int64_t src_sent = hx_stats(env.store, "src").sent_total;
    herald_redrive_opts o = ropts();
    o.to_queue = "other";
    redrive_ok("dlq", &o, 1);
    cr_expect_eq(count_of("dlq"), 0);
    cr_expect_eq(count_of("src"), 0, "nothing goes back to the source");
    cr_expect_eq(hx_stats(env.store, "src").sent_total, src_sent);
    cr_expect_eq(hx_stats(env.store, "other").sent_total, 1);
    cr_expect(find_in("other", id, NULL, NULL), "the message is in 'other' under its id");
    audit_list a = audit("dlq");
    cr_assert_eq(a.n, 1);
    cr_expect_str_eq(a.e[0].to_queue, "other");
    cr_expect_str_eq(a.e[0].message_id, id);
    herald_free(a.e);
}

Test(dlq, redrive_by_ids_moves_only_those)
{
    mkq("src", 0, "dlq");
    char ids[4][HERALD_ID_SIZE];
    for (int i = 0; i < 4; i++) {
        char body[32];
        snprintf(body, sizeof body, "{\"i\":%d}", i);
        hx_send_json(env.store, "src", body, HERALD_UNSET, ids[i]);
    }
    cr_assert_eq(kill_all("src", "x"), 4);
    const char *sel[] = { ids[3], ids[1] };
    herald_redrive_opts o = ropts();
    o.ids = sel;
    o.n_ids = 2;
    redrive_ok("dlq", &o, 2);
    cr_expect(find_in("src", ids[1], NULL, NULL));
    cr_expect(find_in("src", ids[3], NULL, NULL));
    cr_expect(find_in("dlq", ids[0], NULL, NULL));
    cr_expect(find_in("dlq", ids[2], NULL, NULL));
    cr_expect_eq(count_of("src"), 2);
    cr_expect_eq(count_of("dlq"), 2);
    cr_expect_eq(audit_count("dlq"), 2);
}

/* Sends n "{}" messages to src, 1 ms apart, then kills them one at a time, 1 ms apart, so that
 * the DLQ order is the send order; their ids go to ids. */
static void dead_in_order(const char *src, int n, char (*ids)[HERALD_ID_SIZE])
{
    for (int i = 0; i < n; i++) {
        hx_send_json(env.store, src, "{}", HERALD_UNSET, ids[i]);
        hx_clock_advance(&env.clock, 1);
    }
    for (int i = 0; i < n; i++) {
        fail_once(src, ids[i], "x");
        hx_clock_advance(&env.clock, 1);
    }
}

Test(dlq, redrive_max_limits_the_count_oldest_first)
{
    mkq("src", 0, "dlq");
    char ids[5][HERALD_ID_SIZE];
    dead_in_order("src", 5, ids);
    cr_assert_eq(count_of("dlq"), 5);
    herald_redrive_opts o = ropts();
    o.max = 2;
    redrive_ok("dlq", &o, 2);
    cr_expect_eq(count_of("dlq"), 3);
    cr_expect_eq(count_of("src"), 2);
    cr_expect(find_in("src", ids[0], NULL, NULL), "the oldest dead letter goes first");
    cr_expect(find_in("src", ids[1], NULL, NULL));
    cr_expect_eq(audit_count(NULL), 2);
}

Test(dlq, redrive_max_with_more_ids_moves_max_of_them)
{
    mkq("src", 0, "dlq");
    char ids[3][HERALD_ID_SIZE];
    dead_in_order("src", 3, ids);
    /* max together with ids: at most max of the given ones (every id is in the DLQ). */
    const char *sel[] = { ids[0], ids[1], ids[2] };
    herald_redrive_opts o = ropts();
    o.ids = sel;
    o.n_ids = 3;
    o.max = 1;
    redrive_ok("dlq", &o, 1);
    cr_expect_eq(count_of("dlq"), 2);
    cr_expect(find_in("src", ids[0], NULL, NULL));
    cr_expect_eq(audit_count(NULL), 1);
}

Test(dlq, redrive_rate_paces_and_completes)
{
    mkq("src", 0, "dlq");
    for (int i = 0; i < 3; i++)
        hx_send_json(env.store, "src", "{}", HERALD_UNSET, NULL);
    cr_assert_eq(kill_all("src", "x"), 3);
    herald_redrive_opts o = ropts();
    o.rate_per_s = 1000;
    redrive_ok("dlq", &o, 3);
    cr_expect_eq(count_of("dlq"), 0);
    cr_expect_eq(count_of("src"), 3);

    /* Only a lower bound: 3 messages at 20/s take at least the 2 intervals between them. */
    cr_assert_eq(kill_all("src", "x"), 3);
    o.rate_per_s = 20;
    int64_t t0 = hx_mono_ms();
    redrive_ok("dlq", &o, 3);
    int64_t took = hx_mono_ms() - t0;
    cr_expect(took >= 90, "3 messages at 20/s took only %lld ms", (long long)took);
}

/* ------------------------------------------------------------------------------------------- *
 * Bad input changes nothing
 * ------------------------------------------------------------------------------------------- */

/* src (max_retries 0) -> dlq with two dead letters: a plain JSON one and an event. */
static void two_dead(char plain[HERALD_ID_SIZE], char event[HERALD_ID_SIZE])
{
    mkq("src", 0, "dlq");
    hx_send_json(env.store, "src", "{\"plain\":true}", HERALD_UNSET, plain);
    send_event("src", "research.completed", "{\"brand_slug\":\"b\"}", event);
    cr_assert_eq(kill_all("src", "x"), 2);
    hx_create_queue(env.store, "other", NULL);
}

/* herald_last_error() of the last expect_fail's redrive (later calls overwrite the original). */
static char g_err[1024];

static void expect_fail(const char *dlq, const herald_redrive_opts *o, int want,
                        const char *target)
{
    state before = take_state("dlq", target);
    int64_t moved = 0;
    int rc = redrive(dlq, o, &moved);
    snprintf(g_err, sizeof g_err, "%s", herald_last_error());
    cr_expect_eq(rc, want, "expected %s, got %s (%s)", herald_err_name(want), herald_err_name(rc),
                 g_err);
    cr_expect_eq(moved, 0, "moved %lld", (long long)moved);
    assert_unchanged(before, "dlq", target);
}

Test(dlq, unknown_dlq_is_enoqueue)
{
    char p[HERALD_ID_SIZE], e[HERALD_ID_SIZE];
    two_dead(p, e);
    herald_redrive_opts o = ropts();
    expect_fail("no-such-dlq", &o, HERALD_ENOQUEUE, "src");
    cr_expect(hx_contains_ci(g_err, "no-such-dlq"), "'%s'", g_err);
}

Test(dlq, unknown_to_queue_is_enoqueue)
{
    char p[HERALD_ID_SIZE], e[HERALD_ID_SIZE];
    two_dead(p, e);
    herald_redrive_opts o = ropts();
    o.to_queue = "nowhere";
    expect_fail("dlq", &o, HERALD_ENOQUEUE, "src");
    cr_expect(hx_contains_ci(g_err, "nowhere"), "'%s'", g_err);
}

Test(dlq, id_not_in_dlq_is_einval_naming_it)
{
    char p[HERALD_ID_SIZE], e[HERALD_ID_SIZE];
    two_dead(p, e);
    static const char missing[] = "01890000-0000-7000-8000-00000000abcd";
    const char *sel[] = { p, missing };
    herald_redrive_opts o = ropts();
    o.ids = sel;
    o.n_ids = 2;
    expect_fail("dlq", &o, HERALD_EINVAL, "src");
    cr_expect(hx_contains_ci(g_err, missing), "'%s'", g_err);

    /* A message that is in another queue (not this DLQ) is not in it either. */
    char live[HERALD_ID_SIZE];
    hx_send_json(env.store, "other", "{}", HERALD_UNSET, live);
    const char *sel2[] = { live };
    o.ids = sel2;
    o.n_ids = 1;
    expect_fail("dlq", &o, HERALD_EINVAL, "other");
    cr_expect(hx_contains_ci(g_err, live), "'%s'", g_err);
}

Test(dlq, null_id_is_einval)
{
    char p[HERALD_ID_SIZE], e[HERALD_ID_SIZE];
    two_dead(p, e);
    const char *sel[] = { p, NULL };
    herald_redrive_opts o = ropts();
    o.ids = sel;
    o.n_ids = 2;
    expect_fail("dlq", &o, HERALD_EINVAL, "src");
}

Test(dlq, edit_setting_a_bad_type_breaks_the_envelope)
{
    char p[HERALD_ID_SIZE], e[HERALD_ID_SIZE];
    two_dead(p, e); /* the plain message comes first and is fine with the edit */
    static const char *const sets[] = { "type=Bad" };
    herald_redrive_opts o = ropts();
    o.set = sets;
    o.n_set = 1;
    expect_fail("dlq", &o, HERALD_EENVELOPE, "src");
    cr_expect(hx_contains_ci(g_err, e), "the error names the message: '%s'", g_err);
}

Test(dlq, edit_setting_payload_to_a_number_breaks_the_envelope)
{
    char p[HERALD_ID_SIZE], e[HERALD_ID_SIZE];
    two_dead(p, e);
    static const char *const sets[] = { "payload=5" };
    herald_redrive_opts o = ropts();
    o.set = sets;
    o.n_set = 1;
    expect_fail("dlq", &o, HERALD_EENVELOPE, "src");
    /* Same through a merge patch that drops a required field. */
    o.n_set = 0;
    o.merge_patch = "{\"event_id\":null}";
    expect_fail("dlq", &o, HERALD_EENVELOPE, "src");
}

Test(dlq, malformed_set_is_einval)
{
    char p[HERALD_ID_SIZE], e[HERALD_ID_SIZE];
    two_dead(p, e);
    static const char *const no_eq[] = { "payload.brand_slug" };
    static const char *const empty_path[] = { "=5" };
    herald_redrive_opts o = ropts();
    o.set = no_eq;
    o.n_set = 1;
    expect_fail("dlq", &o, HERALD_EINVAL, "src");
    o.set = empty_path;
    expect_fail("dlq", &o, HERALD_EINVAL, "src");
}

Test(dlq, set_through_a_non_object_is_einval)
{
    char p[HERALD_ID_SIZE], e[HERALD_ID_SIZE];
    two_dead(p, e);
    static const char *const sets[] = { "plain.x=1" }; /* "plain" is true, not an object */
    const char *sel[] = { p };
    herald_redrive_opts o = ropts();
    o.ids = sel;
    o.n_ids = 1;
    o.set = sets;
    o.n_set = 1;
    expect_fail("dlq", &o, HERALD_EINVAL, "src");
}

Test(dlq, merge_patch_that_is_not_json_is_einval)
{
    char p[HERALD_ID_SIZE], e[HERALD_ID_SIZE];
    two_dead(p, e);
    herald_redrive_opts o = ropts();
    o.merge_patch = "{\"payload\":";
    expect_fail("dlq", &o, HERALD_EINVAL, "src");
}

Test(dlq, editing_a_text_message_is_einval)
{
    char p[HERALD_ID_SIZE], e[HERALD_ID_SIZE], t[HERALD_ID_SIZE];
    two_dead(p, e);
    send_text("src", "just text", t);
    cr_assert_eq(kill_all("src", "x"), 1);
    static const char *const sets[] = { "a=1" };
    herald_redrive_opts o = ropts();
    o.set = sets;
    o.n_set = 1;
    expect_fail("dlq", &o, HERALD_EINVAL, "src");
    cr_expect(hx_contains_ci(g_err, t), "the error names the message: '%s'", g_err);
    /* Without an edit the text message moves like any other. */
    const char *sel[] = { t };
    herald_redrive_opts plain = ropts();
    plain.ids = sel;
    plain.n_ids = 1;
    redrive_ok("dlq", &plain, 1);
}

Test(dlq, deleted_source_queue_is_enoqueue_unless_to_queue)
{
    mkq("src", 0, "dlq");
    mkq("src2", 0, "dlq");
    hx_create_queue(env.store, "other", NULL);
    char a[HERALD_ID_SIZE], b[HERALD_ID_SIZE];
    dead_json("src2", "{\"from\":2}", "x", b);
    dead_json("src", "{\"from\":1}", "x", a);
    cr_assert_eq(herald_queue_delete(env.store, "src"), 0);
    herald_redrive_opts o = ropts();
    expect_fail("dlq", &o, HERALD_ENOQUEUE, "src2"); /* src2's message must not move either */
    cr_expect(hx_contains_ci(g_err, "src"), "'%s'", g_err);

    o.to_queue = "other";
    redrive_ok("dlq", &o, 2);
    cr_expect(find_in("other", a, NULL, NULL));
    cr_expect(find_in("other", b, NULL, NULL));
}

Test(dlq, message_put_into_dlq_directly_has_no_source)
{
    mkq("src", 0, "dlq");
    hx_create_queue(env.store, "dlq", NULL);
    hx_create_queue(env.store, "other", NULL);
    char d[HERALD_ID_SIZE], dead[HERALD_ID_SIZE];
    dead_json("src", "{\"dead\":1}", "x", dead);
    hx_send_json(env.store, "dlq", "{\"direct\":1}", HERALD_UNSET, d);
    herald_redrive_opts o = ropts();
    expect_fail("dlq", &o, HERALD_EINVAL, "src");
    cr_expect(hx_contains_ci(g_err, d), "the error names the message: '%s'", g_err);

    o.to_queue = "other";
    redrive_ok("dlq", &o, 2);
    cr_expect(find_in("other", d, NULL, NULL));
    cr_expect(find_in("other", dead, NULL, NULL));
    cr_expect_eq(count_of("dlq"), 0);
}

Test(dlq, negative_rate_or_max_is_einval)
{
    char p[HERALD_ID_SIZE], e[HERALD_ID_SIZE];
    two_dead(p, e);
    herald_redrive_opts o = ropts();
    o.rate_per_s = -1;
    expect_fail("dlq", &o, HERALD_EINVAL, "src");
    o.rate_per_s = 0;
    o.max = -3;
    expect_fail("dlq", &o, HERALD_EINVAL, "src");
}

Test(dlq, null_arguments_are_einval)
{
    herald_redrive_opts o = ropts();
    cr_expect_eq(herald_dlq_redrive(env.store, NULL, &o, NULL), HERALD_EINVAL);
    hx_create_queue(env.store, "dlq", NULL);
    cr_expect_eq(herald_dlq_redrive(env.store, "dlq", NULL, NULL), HERALD_EINVAL);
    herald_audit_entry *a = NULL;
    cr_expect_eq(herald_redrive_audit(env.store, NULL, &a, NULL), HERALD_EINVAL);
}

Test(dlq, expired_dead_letters_are_not_redriven)
{
    /* A dead letter past the DLQ's retention is gone (stats and peek no longer show it); a
     * redrive must not bring it back to life with a fresh retention. */
    mkq("src", 0, "dlq");
    herald_queue_settings st;
    herald_queue_settings_init(&st);
    st.message_retention_period_s = 60;
    hx_create_queue(env.store, "dlq", &st);
    char id[HERALD_ID_SIZE];
    dead_json("src", "{\"old\":1}", "x", id);
    hx_clock_advance(&env.clock, 120 * 1000);
    cr_assert_eq(count_of("dlq"), 0, "expired: not counted any more");
    herald_redrive_opts o = ropts();
    int64_t moved = -1;
    cr_expect_eq(redrive("dlq", &o, &moved), 0, "%s", herald_last_error());
    cr_expect_eq(moved, 0, "an expired dead letter was redriven");
    cr_expect_eq(count_of("src"), 0, "an expired dead letter came back to life");
    cr_expect_eq(audit_count(NULL), 0);
}

/* A dead letter and its redriven copy keep their correlation: the trace goes on through the
 * dead-letter queue to the ack after the redrive. */
Test(dlq, a_redriven_message_stays_in_its_trace)
{
    mkq("src", 0, "dlq");
    herald_event e = { .type = "x.y", .source = "tests", .correlation_id = "corr-redrive",
                       .payload_json = "{}" };
    cr_assert_eq(herald_send_event(env.store, "src", &e, HERALD_UNSET, NULL), 0);
    herald_batch b = { 0 };
    cr_assert_eq(hx_pull(env.store, "src", 1, LONG_VIS, &b), 1);
    const char *lease = b.msgs[0].lease_id;
    cr_assert_eq(herald_retry(env.store, "src", &lease, 1, 0, "nope", NULL), 0);
    herald_batch_deinit(&b);
    cr_assert_eq(count_of("dlq"), 1);
    herald_redrive_opts o = ropts();
    int64_t moved = 0;
    cr_assert_eq(herald_dlq_redrive(env.store, "dlq", &o, &moved), 0, "%s", herald_last_error());
    cr_assert_eq(moved, 1);
    cr_assert_eq(hx_pull(env.store, "src", 1, LONG_VIS, &b), 1);
    lease = b.msgs[0].lease_id;
    cr_assert_eq(herald_ack(env.store, "src", &lease, 1, NULL), 0);
    herald_batch_deinit(&b);
    herald_trace_entry *t = NULL;
    size_t n = 0;
    cr_assert_eq(herald_trace(env.store, "corr-redrive", &t, &n), 0);
    cr_assert_geq(n, 3, "trace has %zu steps", n);
    cr_assert_str_eq(t[n - 1].what, "acked", "the last step is %s, not the ack after the redrive",
                     t[n - 1].what);
    herald_free(t);
}
