// SPDX-License-Identifier: MIT
/*
 * test_cli_dlq.c - `herald dlq`: list the dead-letter queues (with counts) or the dead letters of
 * one, show one with its attempt history, redrive (edited, paced, attributed) and read the audit.
 * Usage errors exit 2; bad input exits 1 with a "herald: " message and changes nothing.
 * The dead letters are made through the public API (retry with an error text, which the CLI has
 * no option for), on the same store file the CLI then opens; the store is closed before any CLI
 * call. Every test owns a temp dir (also its cwd) and passes `--store sqlite:TMPDIR/h.db`.
 */
#include <criterion/criterion.h>
#include <jansson.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

TestSuite(cli_dlq, .init = hx_e2e_setup, .fini = hx_e2e_teardown, .timeout = 60);

/* ---- making dead letters through the API ---------------------------------------------------- */


static void send_event(herald_store *s, const char *q, const char *type, const char *payload,
                       char id[HERALD_ID_SIZE])
{
    herald_event e = { .type = type, .source = "e2e", .payload_json = payload };
    char *body = NULL;
    size_t len = 0;
    cr_assert_eq(herald_event_encode(s, &e, NULL, &body, &len), 0, "%s", herald_last_error());
    herald_msg m = { .body = body, .body_len = len, .content_type = HERALD_CONTENT_JSON,
                     .delay_s = HERALD_UNSET };
    hx_send(s, q, &m, id);
    herald_free(body);
}

/* The common scene: "orders" (max_retries 1) -> DLQ "orders-dlq" holding an event (type
 * order.placed, payload {"n":1}) that failed with "boom 1" then "boom 2", and a plain JSON
 * message {"plain":true} that failed twice with "bad"; a queue "other" without a DLQ. */
static void scene(char ev[HERALD_ID_SIZE], char plain[HERALD_ID_SIZE])
{
    herald_store *s = hx_e2e_open_store();
    hx_mkq_dlq(s, "orders", 1, "orders-dlq");
    hx_create_queue(s, "other", NULL);
    send_event(s, "orders", "order.placed", "{\"n\":1}", ev);
    hx_fail_all(s, "orders", "boom 1");
    hx_fail_all(s, "orders", "boom 2");
    hx_send_json(s, "orders", "{\"plain\":true}", HERALD_UNSET, plain);
    hx_fail_all(s, "orders", "bad");
    hx_fail_all(s, "orders", "bad");
    cr_assert_eq(hx_stats(s, "orders-dlq").backlog_count, 2);
    cr_assert_eq(hx_stats(s, "orders").backlog_count, 0);
    herald_store_close(s);
}

static json_t *dlq_list(const char *dlq)
{
    return JSON(NULL, "dlq", "list", dlq, "--json");
}

static json_t *audit_json(void)
{
    return JSON(NULL, "dlq", "audit", "--json");
}

/* Asserts the DLQ's messages, the target's stats and the audit are as before (and frees). */
static void assert_nothing_changed(json_t *dlq_before, json_t *target_before,
                                   const char *target)
{
    json_t *now = dlq_list("orders-dlq");
    char *a = json_dumps(dlq_before, JSON_SORT_KEYS), *b = json_dumps(now, JSON_SORT_KEYS);
    cr_expect_str_eq(b, a, "the DLQ changed");
    free(a);
    free(b);
    json_decref(now);
    json_decref(dlq_before);
    hx_assert_stats_unchanged(target, target_before);
    json_decref(target_before);
    json_t *au = audit_json();
    cr_expect_eq(json_array_size(au), 0, "the audit must stay empty");
    json_decref(au);
}

/* ------------------------------------------------------------------------------------------- *
 * list / show
 * ------------------------------------------------------------------------------------------- */

Test(cli_dlq, list_names_the_dead_letter_queues_with_counts)
{
    char ev[HERALD_ID_SIZE], plain[HERALD_ID_SIZE];
    scene(ev, plain);
    herald_store *s = hx_e2e_open_store();
    hx_mkq_dlq(s, "mail", 0, "mail-dlq");
    hx_send_json(s, "mail", "{}", HERALD_UNSET, NULL);
    hx_fail_all(s, "mail", "smtp down");
    herald_store_close(s);

    json_t *l = JSON(NULL, "dlq", "list", "--json");
    cr_assert(json_is_array(l));
    cr_expect_eq(json_array_size(l), 2, "only the DLQs: %s", json_dumps(l, 0));
    size_t i;
    json_t *v;
    int seen = 0;
    json_array_foreach(l, i, v)
    {
        const char *q = hx_json_str(v, "queue");
        if (strcmp(q, "orders-dlq") == 0) {
            cr_expect_eq(hx_json_int(v, "backlog_count"), 2);
            seen |= 1;
        } else if (strcmp(q, "mail-dlq") == 0) {
            cr_expect_eq(hx_json_int(v, "backlog_count"), 1);
            seen |= 2;
        } else {
            cr_expect_fail("queue %s is not a dead-letter queue", q);
        }
    }
    cr_expect_eq(seen, 3);
    json_decref(l);

    char *out = OK(NULL, "dlq", "list");
    cr_expect(strstr(out, "orders-dlq") && strstr(out, "mail-dlq"), "[%s]", out);
    cr_expect(!strstr(out, "other"), "[%s]", out);
    free(out);
}

Test(cli_dlq, list_of_no_dlq_is_empty)
{
    hx_cli_mkq("plain");
    json_t *l = JSON(NULL, "dlq", "list", "--json");
    cr_expect(json_is_array(l) && json_array_size(l) == 0);
    json_decref(l);
}

Test(cli_dlq, list_one_dlq_shows_its_dead_letters)
{
    char ev[HERALD_ID_SIZE], plain[HERALD_ID_SIZE];
    scene(ev, plain);
    json_t *l = dlq_list("orders-dlq");
    cr_assert_eq(json_array_size(l), 2, "%s", json_dumps(l, 0));
    json_t *e = hx_find_by_id(l, ev), *p = hx_find_by_id(l, plain);
    cr_assert(e && p, "both ids listed");
    cr_expect_str_eq(hx_json_str(e, "dead_from_queue"), "orders");
    cr_expect_eq(hx_json_int(e, "dead_attempts"), 2);
    cr_expect_str_eq(hx_json_str(e, "last_error"), "boom 2");
    cr_expect_str_eq(hx_json_str(e, "type"), "order.placed", "envelopes show their type");
    cr_expect(hx_is_uuid(hx_json_str(e, "event_id")));
    cr_expect_str_eq(hx_json_str(p, "dead_from_queue"), "orders");
    cr_expect_eq(hx_json_int(p, "dead_attempts"), 2);
    cr_expect_str_eq(hx_json_str(p, "last_error"), "bad");
    cr_expect_null(json_object_get(p, "type"), "a plain JSON body has no type");
    json_decref(l);

    char *out = OK(NULL, "dlq", "list", "orders-dlq");
    cr_expect(strstr(out, ev) && strstr(out, plain) && strstr(out, "order.placed") &&
                  strstr(out, "boom 2"),
              "[%s]", out);
    free(out);
}

Test(cli_dlq, show_prints_the_body_and_every_attempt)
{
    char ev[HERALD_ID_SIZE], plain[HERALD_ID_SIZE];
    scene(ev, plain);
    json_t *m = JSON(NULL, "dlq", "show", "orders-dlq", ev, "--json");
    cr_expect_str_eq(hx_json_str(m, "id"), ev);
    cr_expect_str_eq(hx_json_str(m, "dead_from_queue"), "orders");
    const char *body = hx_json_str(m, "body");
    json_t *bj = hx_parse_json(body);
    cr_expect_str_eq(json_string_value(json_object_get(bj, "type")), "order.placed");
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(bj, "payload"), "n")), 1);
    json_decref(bj);
    json_t *at = json_object_get(m, "attempts");
    cr_assert(json_is_array(at));
    cr_assert_eq(json_array_size(at), 2, "%s", json_dumps(at, 0));
    static const char *const errs[] = { "boom 1", "boom 2" };
    for (size_t i = 0; i < 2; i++) {
        json_t *a = json_array_get(at, i);
        cr_expect_eq(hx_json_int(a, "attempt"), (json_int_t)i + 1);
        cr_expect_str_eq(hx_json_str(a, "error"), errs[i]);
        cr_expect_str_eq(hx_json_str(a, "queue"), "orders");
        cr_expect(hx_json_int(a, "at_ms") > 0);
    }
    json_decref(m);

    char *out = OK(NULL, "dlq", "show", "orders-dlq", plain);
    cr_expect(strstr(out, plain) && strstr(out, "bad"), "[%s]", out);
    free(out);
}

Test(cli_dlq, show_finds_a_message_beyond_the_first_hundred)
{
    herald_store *s = hx_e2e_open_store();
    hx_mkq_dlq(s, "bulk", 0, "bulk-dlq");
    char ids[150][HERALD_ID_SIZE];
    for (int i = 0; i < 150; i++)
        hx_send_json(s, "bulk", "{}", HERALD_UNSET, ids[i]);
    hx_fail_all(s, "bulk", "first hundred");
    hx_fail_all(s, "bulk", "the rest");
    cr_assert_eq(hx_stats(s, "bulk-dlq").backlog_count, 150);
    herald_store_close(s);
    /* The last to die is the 150th in delivery order. */
    char *out = NULL, *err = NULL;
    int rc = RUN(NULL, &out, &err, "dlq", "show", "bulk-dlq", ids[149], "--json");
    cr_expect_eq(rc, 0, "dlq show of the 150th dead letter: exit %d, stderr: %s", rc, err);
    if (rc == 0) {
        json_t *m = hx_parse_json(out);
        cr_expect_str_eq(hx_json_str(m, "id"), ids[149]);
        cr_expect_str_eq(hx_json_str(m, "last_error"), "the rest");
        json_decref(m);
    }
    free(out);
    free(err);
    json_t *l = JSON(NULL, "dlq", "list", "--json");
    cr_expect_eq(hx_json_int(json_array_get(l, 0), "backlog_count"), 150);
    json_decref(l);
}

Test(cli_dlq, show_of_a_message_not_in_the_dlq_exits_1)
{
    char ev[HERALD_ID_SIZE], plain[HERALD_ID_SIZE];
    scene(ev, plain);
    char *err = FAIL(1, NULL, "dlq", "show", "orders-dlq", "01890000-0000-7000-8000-000000000000");
    cr_expect(strstr(err, "01890000-0000-7000-8000-000000000000"), "[%s]", err);
    free(err);
    err = FAIL(1, NULL, "dlq", "show", "no-such-dlq", ev);
    cr_expect(strstr(err, "no-such-dlq"), "[%s]", err);
    free(err);
    err = FAIL(1, NULL, "dlq", "list", "no-such-dlq");
    cr_expect(strstr(err, "no-such-dlq"), "[%s]", err);
    free(err);
}

/* ------------------------------------------------------------------------------------------- *
 * redrive / audit
 * ------------------------------------------------------------------------------------------- */

Test(cli_dlq, redrive_with_edit_rate_and_actor_then_audit)
{
    char ev[HERALD_ID_SIZE], plain[HERALD_ID_SIZE];
    scene(ev, plain);
    json_int_t sent = hx_cli_stat("orders", "sent_total");
    char *out = OK(NULL, "dlq", "redrive", "orders-dlq", "--id", ev, "--set", "payload.n=2",
                   "--rate", "100/s", "--by", "alice");
    cr_expect(strstr(out, "1"), "[%s]", out);
    free(out);
    cr_expect_eq(hx_cli_stat("orders", "sent_total"), sent + 1);
    cr_expect_eq(hx_cli_stat("orders-dlq", "backlog_count"), 1);

    /* The message is back in orders under its id, with the edited payload. */
    json_t *pk = JSON(NULL, "peek", "orders", "--json");
    json_t *m = hx_find_by_id(pk, ev);
    cr_assert(m, "the redriven message is in orders");
    cr_expect_eq(hx_json_int(m, "attempts"), 0, "attempts start over");
    char *body = hx_json_body(m);
    json_t *bj = hx_parse_json(body);
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(bj, "payload"), "n")), 2);
    cr_expect_str_eq(json_string_value(json_object_get(bj, "type")), "order.placed");
    json_decref(bj);
    free(body);
    json_decref(pk);

    json_t *au = audit_json();
    cr_assert_eq(json_array_size(au), 1, "%s", json_dumps(au, 0));
    json_t *a = json_array_get(au, 0);
    cr_expect_str_eq(hx_json_str(a, "by"), "alice");
    cr_expect_str_eq(hx_json_str(a, "dlq"), "orders-dlq");
    cr_expect_str_eq(hx_json_str(a, "message_id"), ev);
    cr_expect_str_eq(hx_json_str(a, "to"), "orders");
    cr_expect(strstr(hx_json_str(a, "edit"), "payload.n=2"), "edit: %s", hx_json_str(a, "edit"));
    cr_expect(hx_is_iso8601(hx_json_str(a, "at")), "at: %s", hx_json_str(a, "at"));
    json_decref(au);

    /* Filtered by DLQ; and the text form. */
    au = JSON(NULL, "dlq", "audit", "orders-dlq", "--json");
    cr_expect_eq(json_array_size(au), 1);
    json_decref(au);
    au = JSON(NULL, "dlq", "audit", "other", "--json");
    cr_expect_eq(json_array_size(au), 0);
    json_decref(au);
    out = OK(NULL, "dlq", "audit");
    cr_expect(strstr(out, "alice") && strstr(out, ev) && strstr(out, "payload.n=2"), "[%s]", out);
    free(out);
}

Test(cli_dlq, redrive_all_to_another_queue_json)
{
    char ev[HERALD_ID_SIZE], plain[HERALD_ID_SIZE];
    scene(ev, plain);
    json_t *r = JSON(NULL, "dlq", "redrive", "orders-dlq", "--to", "other", "--by", "bob",
                     "--json");
    cr_expect_eq(hx_json_int(r, "moved"), 2);
    json_decref(r);
    cr_expect_eq(hx_cli_stat("orders-dlq", "backlog_count"), 0);
    cr_expect_eq(hx_cli_stat("other", "backlog_count"), 2);
    cr_expect_eq(hx_cli_stat("orders", "backlog_count"), 0);
    json_t *au = audit_json();
    cr_expect_eq(json_array_size(au), 2);
    for (size_t i = 0; i < json_array_size(au); i++) {
        cr_expect_str_eq(hx_json_str(json_array_get(au, i), "to"), "other");
        cr_expect_str_eq(hx_json_str(json_array_get(au, i), "by"), "bob");
        cr_expect_str_eq(hx_json_str(json_array_get(au, i), "edit"), "");
    }
    json_decref(au);
}

Test(cli_dlq, redrive_max_and_patch)
{
    char ev[HERALD_ID_SIZE], plain[HERALD_ID_SIZE];
    scene(ev, plain);
    json_t *r = JSON(NULL, "dlq", "redrive", "orders-dlq", "--max", "1", "--patch",
                     "{\"extra\":1}", "--json");
    cr_expect_eq(hx_json_int(r, "moved"), 1);
    json_decref(r);
    cr_expect_eq(hx_cli_stat("orders-dlq", "backlog_count"), 1);
    json_t *au = audit_json();
    cr_assert_eq(json_array_size(au), 1);
    cr_expect(strstr(hx_json_str(json_array_get(au, 0), "edit"), "{\"extra\":1}"), "edit: %s",
              hx_json_str(json_array_get(au, 0), "edit"));
    json_decref(au);
}

/* ------------------------------------------------------------------------------------------- *
 * Usage errors: exit 2
 * ------------------------------------------------------------------------------------------- */

/* The bad-input tests: the scene, and the DLQ's list and the stats of "orders" before the bad
 * command. */
typedef struct before {
    char ev[HERALD_ID_SIZE], plain[HERALD_ID_SIZE];
    json_t *dlq, *src;
} before;

static before scene_before(void)
{
    before b;
    scene(b.ev, b.plain);
    b.dlq = dlq_list("orders-dlq");
    b.src = hx_cli_stats("orders");
    return b;
}

/* Nothing changed since scene_before() (and frees what it took). */
static void assert_scene_unchanged(before *b)
{
    assert_nothing_changed(b->dlq, b->src, "orders");
}

Test(cli_dlq, usage_errors_exit_2_and_change_nothing)
{
    before b = scene_before();
    free(FAIL(2, NULL, "dlq"));
    free(FAIL(2, NULL, "dlq", "frobnicate"));
    free(FAIL(2, NULL, "dlq", "show", "orders-dlq"));
    free(FAIL(2, NULL, "dlq", "show"));
    free(FAIL(2, NULL, "dlq", "redrive"));
    free(FAIL(2, NULL, "dlq", "redrive", "orders-dlq", "--rate", "abc"));
    free(FAIL(2, NULL, "dlq", "redrive", "orders-dlq", "--rate", "0"));
    free(FAIL(2, NULL, "dlq", "redrive", "orders-dlq", "--rate", "-5/s"));
    free(FAIL(2, NULL, "dlq", "redrive", "orders-dlq", "--rate", "10/m"));
    free(FAIL(2, NULL, "dlq", "redrive", "orders-dlq", "--max", "lots"));
    free(FAIL(2, NULL, "dlq", "redrive", "orders-dlq", "--bogus"));
    free(FAIL(2, NULL, "dlq", "list", "--set", "payload.n=2"));
    free(FAIL(2, NULL, "dlq", "list", "orders-dlq", "--set", "payload.n=2"));
    free(FAIL(2, NULL, "dlq", "list", "orders-dlq", "--id", b.ev));
    free(FAIL(2, NULL, "dlq", "show", "orders-dlq", b.ev, "--to", "other"));
    free(FAIL(2, NULL, "dlq", "audit", "--rate", "1/s"));
    assert_scene_unchanged(&b);
}

Test(cli_dlq, help_exits_0_on_stdout)
{
    char *out = OK(NULL, "dlq", "--help");
    cr_expect(strstr(out, "redrive"), "[%s]", out);
    free(out);
}

/* ------------------------------------------------------------------------------------------- *
 * Bad input: exit 1, nothing changed
 * ------------------------------------------------------------------------------------------- */

Test(cli_dlq, redrive_of_unknown_dlq_exits_1_and_changes_nothing)
{
    before b = scene_before();
    char *err = FAIL(1, NULL, "dlq", "redrive", "no-such-dlq");
    cr_expect(strstr(err, "no-such-dlq"), "stderr names the queue: [%s]", err);
    free(err);
    assert_scene_unchanged(&b);
}

Test(cli_dlq, redrive_to_unknown_queue_exits_1_and_changes_nothing)
{
    before b = scene_before();
    char *err = FAIL(1, NULL, "dlq", "redrive", "orders-dlq", "--to", "nowhere");
    cr_expect(strstr(err, "nowhere"), "stderr names the queue: [%s]", err);
    free(err);
    assert_scene_unchanged(&b);
}

Test(cli_dlq, edit_breaking_the_envelope_exits_1_and_changes_nothing)
{
    before b = scene_before();
    char *err = FAIL(1, NULL, "dlq", "redrive", "orders-dlq", "--set", "type=Bad", "--by", "x");
    cr_expect(hx_contains_ci(err, "envelope"), "stderr: [%s]", err);
    cr_expect(strstr(err, b.ev), "stderr names the message: [%s]", err);
    free(err);
    err = FAIL(1, NULL, "dlq", "redrive", "orders-dlq", "--set", "payload=5");
    cr_expect(hx_contains_ci(err, "envelope"), "stderr: [%s]", err);
    free(err);
    assert_scene_unchanged(&b);
}

Test(cli_dlq, bad_patch_or_unknown_id_exits_1_and_changes_nothing)
{
    before b = scene_before();
    char *err = FAIL(1, NULL, "dlq", "redrive", "orders-dlq", "--patch", "{not json");
    cr_expect(hx_contains_ci(err, "patch"), "stderr: [%s]", err);
    free(err);
    err = FAIL(1, NULL, "dlq", "redrive", "orders-dlq", "--id", b.ev, "--id",
               "01890000-0000-7000-8000-00000000beef");
    cr_expect(strstr(err, "01890000-0000-7000-8000-00000000beef"), "stderr: [%s]", err);
    free(err);
    assert_scene_unchanged(&b);
}
