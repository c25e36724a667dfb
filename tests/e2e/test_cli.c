// SPDX-License-Identifier: MIT
/*
 * test_cli.c - drives the `herald` binary exactly as a user does and checks the working contract
 * of tests/e2e/CLI_CONTRACT.md: queue management, send / send-batch / pull / ack / retry / peek,
 * --json shapes (parsed with jansson), global options, --help everywhere and bench. What must fail
 * (exit 1 or 2, nothing changed) is in test_cli_errors.c.
 * Every test owns a temp dir (also its cwd, so a stray default store lands there) and passes
 * `--store sqlite:TMPDIR/h.db` on every call (tests/support/cli.h).
 */
#include <criterion/criterion.h>
#include <jansson.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *const STATS_KEYS[] = {
    "backlog_count",  "backlog_bytes",       "oldest_message_timestamp_ms",
    "delayed_count",  "leased_count",        "visible_count",
    "sent_total",     "acked_total",         "retried_total",
    "dead_lettered_total", "deleted_total",  "expired_total",
};

/* ------------------------------------------------------------------------------------------- *
 * queues
 * ------------------------------------------------------------------------------------------- */

TestSuite(cli, .init = hx_e2e_setup, .fini = hx_e2e_teardown, .timeout = 60);

Test(cli, queues_create_json_prints_queue_object_with_defaults)
{
    json_t *q = JSON(NULL, "queues", "create", "orders", "--json");
    cr_assert(json_is_object(q));
    cr_assert(hx_is_uuid(hx_json_str(q, "queue_id")), "queue_id not a UUID: %s",
              hx_json_str(q, "queue_id"));
    cr_assert_str_eq(hx_json_str(q, "queue_name"), "orders");
    const char *created = hx_json_str(q, "created_on"), *modified = hx_json_str(q, "modified_on");
    cr_assert(hx_is_iso8601(created), "created_on: %s", created);
    cr_assert(hx_is_iso8601(modified), "modified_on: %s", modified);
    json_t *s = json_object_get(q, "settings");
    cr_assert(json_is_object(s), "settings missing");
    cr_assert_eq(hx_json_int(s, "delivery_delay"), 0);
    cr_assert_eq(hx_json_bool(s, "delivery_paused"), false);
    cr_assert_eq(hx_json_int(s, "message_retention_period"), 345600);
    cr_assert_eq(hx_json_int(s, "max_message_bytes"), 128000);
    cr_assert_eq(hx_json_int(s, "max_retries"), 3);
    cr_assert_eq(hx_json_int(s, "retry_delay"), 0);
    cr_assert_str_eq(hx_json_str(s, "dead_letter_queue"), "");

    /* get returns the same object */
    json_t *g = JSON(NULL, "queues", "get", "orders", "--json");
    cr_assert(json_equal(q, g), "queues get differs from what create printed");
    json_decref(q);
    json_decref(g);
}

Test(cli, queues_create_without_json_prints_nothing_on_stdout)
{
    char *out = OK(NULL, "queues", "create", "orders");
    cr_assert_str_eq(out, "", "stdout: [%s]", out);
    free(out);
}

Test(cli, queues_create_with_options_sets_every_setting)
{
    OKV(NULL, "queues", "create", "orders", "--max-retries", "5", "--retry-delay", "10",
        "--dead-letter-queue", "orders-dlq", "--delivery-delay", "2", "--max-message-bytes",
        "1000", "--retention", "120");
    json_t *q = JSON(NULL, "queues", "get", "orders", "--json");
    json_t *s = json_object_get(q, "settings");
    cr_assert_eq(hx_json_int(s, "max_retries"), 5);
    cr_assert_eq(hx_json_int(s, "retry_delay"), 10);
    cr_assert_str_eq(hx_json_str(s, "dead_letter_queue"), "orders-dlq");
    cr_assert_eq(hx_json_int(s, "delivery_delay"), 2);
    cr_assert_eq(hx_json_int(s, "max_message_bytes"), 1000);
    cr_assert_eq(hx_json_int(s, "message_retention_period"), 120);
    json_decref(q);
}

Test(cli, queues_list_json_is_sorted_by_name)
{
    json_t *empty = JSON(NULL, "queues", "list", "--json");
    cr_assert(json_is_array(empty) && json_array_size(empty) == 0, "fresh store lists queues");
    json_decref(empty);

    hx_cli_mkq("bravo");
    hx_cli_mkq("alpha");
    hx_cli_mkq("charlie");
    json_t *l = JSON(NULL, "queues", "list", "--json");
    cr_assert(json_is_array(l));
    cr_assert_eq(json_array_size(l), 3);
    const char *want[] = { "alpha", "bravo", "charlie" };
    for (size_t i = 0; i < 3; i++) {
        json_t *q = json_array_get(l, i);
        cr_assert_str_eq(hx_json_str(q, "queue_name"), want[i]);
        cr_assert(hx_is_uuid(hx_json_str(q, "queue_id")));
        cr_assert(json_is_object(json_object_get(q, "settings")));
    }
    /* queue ids are distinct */
    cr_assert_str_neq(hx_json_str(json_array_get(l, 0), "queue_id"),
                      hx_json_str(json_array_get(l, 1), "queue_id"));
    json_decref(l);
}

Test(cli, queues_update_changes_only_the_given_settings)
{
    json_t *before = JSON(NULL, "queues", "create", "orders", "--retry-delay", "4", "--json");
    OKV(NULL, "queues", "update", "orders", "--max-retries", "7", "--delivery-delay", "9");
    json_t *after = JSON(NULL, "queues", "get", "orders", "--json");
    cr_assert_str_eq(hx_json_str(after, "queue_id"), hx_json_str(before, "queue_id"));
    cr_assert_str_eq(hx_json_str(after, "created_on"), hx_json_str(before, "created_on"));
    json_t *s = json_object_get(after, "settings");
    cr_assert_eq(hx_json_int(s, "max_retries"), 7);
    cr_assert_eq(hx_json_int(s, "delivery_delay"), 9);
    cr_assert_eq(hx_json_int(s, "retry_delay"), 4, "update must keep settings it was not given");
    cr_assert_eq(hx_json_int(s, "message_retention_period"), 345600);
    cr_assert_eq(hx_json_int(s, "max_message_bytes"), 128000);
    json_decref(before);
    json_decref(after);
}

Test(cli, queues_update_out_of_range_fails_and_changes_nothing)
{
    hx_cli_mkq("orders");
    json_t *before = JSON(NULL, "queues", "get", "orders", "--json");
    char *err = FAIL(2, NULL, "queues", "update", "orders", "--max-retries", "101"); /* usage */
    cr_assert(hx_contains_ci(err, "retries"), "stderr should name the setting: %s", err);
    free(err);
    json_t *after = JSON(NULL, "queues", "get", "orders", "--json");
    cr_assert(json_equal(before, after), "a failed update changed the queue");
    json_decref(before);
    json_decref(after);
}

Test(cli, queues_update_unknown_queue_fails)
{
    char *err = FAIL(1, NULL, "queues", "update", "nosuch", "--max-retries", "2");
    cr_assert(hx_contains_ci(err, "nosuch"), "stderr should name the queue: %s", err);
    free(err);
    json_t *l = JSON(NULL, "queues", "list", "--json");
    cr_assert_eq(json_array_size(l), 0, "update must not create the queue");
    json_decref(l);
}

Test(cli, queues_create_bad_name_fails_and_creates_nothing)
{
    json_t *before = JSON(NULL, "queues", "list", "--json");
    free(FAIL(1, NULL, "queues", "create", "bad name!"));
    free(FAIL(1, NULL, "queues", "create", "_leading_underscore"));
    char *longname = hx_repeat_char('a', 64); /* HERALD_QUEUE_NAME_MAX is 63 */
    free(FAIL(1, NULL, "queues", "create", longname));
    free(longname);
    hx_assert_list_unchanged(before);
    json_decref(before);
}

Test(cli, queues_delete_removes_the_queue_and_its_messages)
{
    hx_cli_mkq("orders");
    hx_cli_mkq("keep");
    OKV(NULL, "send", "orders", "{\"a\":1}");
    OKV(NULL, "queues", "delete", "orders");
    char *err = FAIL(1, NULL, "queues", "get", "orders");
    cr_assert(hx_contains_ci(err, "orders"), "stderr should name the queue: %s", err);
    free(err);
    json_t *l = JSON(NULL, "queues", "list", "--json");
    cr_assert_eq(json_array_size(l), 1);
    cr_assert_str_eq(hx_json_str(json_array_get(l, 0), "queue_name"), "keep");
    json_decref(l);
    /* recreating gives an empty queue */
    hx_cli_mkq("orders");
    cr_assert_eq(hx_cli_stat("orders", "backlog_count"), 0);
}

Test(cli, queues_delete_unknown_queue_fails)
{
    hx_cli_mkq("keep");
    json_t *before = JSON(NULL, "queues", "list", "--json");
    free(FAIL(1, NULL, "queues", "delete", "nosuch"));
    hx_assert_list_unchanged(before);
    json_decref(before);
}

Test(cli, queues_purge_deletes_every_message)
{
    hx_cli_mkq("orders");
    OKV(NULL, "send", "orders", "{\"a\":1}");
    OKV(NULL, "send", "orders", "{\"a\":2}");
    OKV(NULL, "send", "orders", "--delay", "3600", "{\"a\":3}"); /* delayed */
    json_t *p = JSON(NULL, "pull", "orders", "--batch", "1", "--json"); /* one leased */
    cr_assert_eq(json_array_size(p), 1);
    json_decref(p);
    cr_assert_eq(hx_cli_stat("orders", "backlog_count"), 3);
    OKV(NULL, "queues", "purge", "orders");
    HX_CLI_ASSERT_STATS("orders", { "backlog_count", 0 }, { "backlog_bytes", 0 },
                        { "visible_count", 0 }, { "delayed_count", 0 }, { "leased_count", 0 },
                        { "oldest_message_timestamp_ms", 0 });
    p = JSON(NULL, "pull", "orders", "--json");
    cr_assert_eq(json_array_size(p), 0);
    json_decref(p);
    /* the queue itself stays */
    json_decref(JSON(NULL, "queues", "get", "orders", "--json"));
}

Test(cli, queues_pause_stops_delivery_and_resume_restarts_it)
{
    hx_cli_mkq("orders");
    OKV(NULL, "queues", "pause", "orders");
    json_t *q = JSON(NULL, "queues", "get", "orders", "--json");
    cr_assert_eq(hx_json_bool(json_object_get(q, "settings"), "delivery_paused"), true);
    json_decref(q);

    /* sends are still accepted while paused */
    OKV(NULL, "send", "orders", "{\"a\":1}");
    cr_assert_eq(hx_cli_stat("orders", "backlog_count"), 1);

    json_t *before = hx_cli_stats("orders");
    char *err = FAIL(1, NULL, "pull", "orders", "--json");
    cr_assert(hx_contains_ci(err, "paused"), "stderr should say paused: %s", err);
    free(err);
    hx_assert_stats_unchanged("orders", before);
    json_decref(before);

    OKV(NULL, "queues", "resume", "orders");
    q = JSON(NULL, "queues", "get", "orders", "--json");
    cr_assert_eq(hx_json_bool(json_object_get(q, "settings"), "delivery_paused"), false);
    json_decref(q);
    json_t *p = JSON(NULL, "pull", "orders", "--json");
    cr_assert_eq(json_array_size(p), 1);
    json_decref(p);
}

Test(cli, queues_stats_json_has_every_key_as_an_integer)
{
    hx_cli_mkq("orders");
    json_t *s = hx_cli_stats("orders");
    cr_assert(json_is_object(s));
    for (size_t i = 0; i < sizeof STATS_KEYS / sizeof *STATS_KEYS; i++) {
        json_t *v = json_object_get(s, STATS_KEYS[i]);
        cr_assert(json_is_integer(v), "stats key %s missing or not an integer", STATS_KEYS[i]);
        cr_assert_eq(json_integer_value(v), 0, "fresh queue: %s != 0", STATS_KEYS[i]);
    }
    json_decref(s);

    int64_t t0 = hx_wall_ms();
    OKV(NULL, "send", "orders", "{\"a\":1}"); /* 7 bytes */
    s = hx_cli_stats("orders");
    cr_assert_eq(hx_json_int(s, "backlog_count"), 1);
    cr_assert_eq(hx_json_int(s, "backlog_bytes"), 7);
    cr_assert_eq(hx_json_int(s, "visible_count"), 1);
    cr_assert_eq(hx_json_int(s, "delayed_count"), 0);
    cr_assert_eq(hx_json_int(s, "leased_count"), 0);
    cr_assert_eq(hx_json_int(s, "sent_total"), 1);
    json_int_t oldest = hx_json_int(s, "oldest_message_timestamp_ms");
    cr_assert(oldest >= t0 - 5000 && oldest <= hx_wall_ms() + 5000,
              "oldest_message_timestamp_ms %lld is not the send time (~%lld)", (long long)oldest,
              (long long)t0);
    json_decref(s);
}

Test(cli, queues_stats_unknown_queue_fails)
{
    char *err = FAIL(1, NULL, "queues", "stats", "nosuch", "--json");
    cr_assert(hx_contains_ci(err, "nosuch"), "stderr should name the queue: %s", err);
    free(err);
}

/* ------------------------------------------------------------------------------------------- *
 * send / send-batch / pull / ack / retry / peek
 * ------------------------------------------------------------------------------------------- */

Test(cli, send_json_prints_an_id_and_pull_returns_the_body_base64)
{
    hx_cli_mkq("orders");
    char *out = OK(NULL, "send", "orders", "{\"a\":1}");
    char *lines[4];
    size_t n = hx_split_lines(out, lines, 4);
    cr_assert_eq(n, 1, "send prints one line");
    cr_assert(hx_is_uuid(lines[0]), "not a UUID: [%s]", lines[0]);
    char id[64];
    snprintf(id, sizeof id, "%s", lines[0]);
    free(out);

    json_t *j = JSON(NULL, "send", "orders", "--json", "[1,2,3]");
    cr_assert(hx_is_uuid(hx_json_str(j, "id")));
    cr_assert_str_neq(hx_json_str(j, "id"), id);
    char id2[64];
    snprintf(id2, sizeof id2, "%s", hx_json_str(j, "id"));
    json_decref(j);

    int64_t t0 = hx_wall_ms();
    json_t *p = JSON(NULL, "pull", "orders", "--batch", "10", "--json");
    cr_assert(json_is_array(p));
    cr_assert_eq(json_array_size(p), 2);
    json_t *m = hx_find_by_id(p, id);
    cr_assert_not_null(m, "pulled messages lack id %s", id);
    cr_assert_str_eq(hx_json_str(json_object_get(m, "metadata"), "CF-Content-Type"), "json");
    cr_assert_str_eq(hx_json_str(m, "body"), "eyJhIjoxfQ==", "body must be base64 of {\"a\":1}");
    char *b = hx_json_body(m);
    cr_assert_str_eq(b, "{\"a\":1}");
    free(b);
    cr_assert_eq(hx_json_int(m, "attempts"), 1);
    json_int_t ts = hx_json_int(m, "timestamp_ms");
    cr_assert(ts > t0 - 60000 && ts <= t0 + 1000, "timestamp_ms %lld", (long long)ts);
    cr_assert(strlen(hx_json_str(m, "lease_id")) > 0, "lease_id empty");
    m = hx_find_by_id(p, id2);
    cr_assert_not_null(m);
    b = hx_json_body(m);
    cr_assert_str_eq(b, "[1,2,3]");
    free(b);
    cr_assert_str_neq(hx_json_str(json_array_get(p, 0), "lease_id"),
                      hx_json_str(json_array_get(p, 1), "lease_id"));
    json_decref(p);
}

Test(cli, send_text_content_type_is_pulled_as_plain_text)
{
    hx_cli_mkq("orders");
    json_t *j = JSON(NULL, "send", "orders", "--content-type", "text", "--json",
                     "hello, world: not json");
    char id[64];
    snprintf(id, sizeof id, "%s", hx_json_str(j, "id"));
    json_decref(j);
    json_t *p = JSON(NULL, "pull", "orders", "--json");
    cr_assert_eq(json_array_size(p), 1);
    json_t *m = json_array_get(p, 0);
    cr_assert_str_eq(hx_json_str(m, "id"), id);
    cr_assert_str_eq(hx_json_str(json_object_get(m, "metadata"), "CF-Content-Type"), "text");
    cr_assert_str_eq(hx_json_str(m, "body"), "hello, world: not json");
    json_decref(p);
}

Test(cli, send_bytes_content_type_is_pulled_base64)
{
    hx_cli_mkq("orders");
    OKV(NULL, "send", "orders", "--content-type", "bytes", "abc");
    json_t *p = JSON(NULL, "pull", "orders", "--json");
    cr_assert_eq(json_array_size(p), 1);
    json_t *m = json_array_get(p, 0);
    cr_assert_str_eq(hx_json_str(json_object_get(m, "metadata"), "CF-Content-Type"), "bytes");
    cr_assert_str_eq(hx_json_str(m, "body"), "YWJj");
    json_decref(p);
}

Test(cli, send_body_dash_reads_stdin)
{
    hx_cli_mkq("orders");
    const char *body = "{\"from\":\"stdin\",\"n\":[1,2,3]}";
    char *out = OK(body, "send", "orders", "-");
    char *lines[4];
    cr_assert_eq(hx_split_lines(out, lines, 4), 1);
    cr_assert(hx_is_uuid(lines[0]));
    free(out);
    json_t *p = JSON(NULL, "pull", "orders", "--json");
    cr_assert_eq(json_array_size(p), 1);
    char *b = hx_json_body(json_array_get(p, 0));
    cr_assert_str_eq(b, body);
    free(b);
    json_decref(p);
    cr_assert_eq(hx_cli_stat("orders", "backlog_bytes"), (json_int_t)strlen(body));
}

Test(cli, send_text_from_stdin_keeps_the_body)
{
    hx_cli_mkq("orders");
    OKV("plain text from stdin", "send", "orders", "--content-type", "text", "-");
    json_t *p = JSON(NULL, "pull", "orders", "--json");
    cr_assert_eq(json_array_size(p), 1);
    cr_assert_str_eq(hx_json_str(json_array_get(p, 0), "body"), "plain text from stdin");
    json_decref(p);
}

Test(cli, send_batch_prints_ids_in_order_pull_returns_them_and_ack_empties_the_queue)
{
    hx_cli_mkq("orders");
    const char *bodies[3] = { "{\"n\":1}", "{\"n\":2}", "{\"n\":3}" };
    char *out = OK("{\"n\":1}\n{\"n\":2}\n\n{\"n\":3}\n", "send-batch", "orders");
    char *lines[8];
    size_t n = hx_split_lines(out, lines, 8);
    cr_assert_eq(n, 3, "send-batch of 3 lines (plus one empty) prints 3 ids, got %zu", n);
    char ids[3][64];
    for (size_t i = 0; i < 3; i++) {
        cr_assert(hx_is_uuid(lines[i]), "line %zu not a UUID: [%s]", i + 1, lines[i]);
        snprintf(ids[i], sizeof ids[i], "%s", lines[i]);
    }
    free(out);
    cr_assert_str_neq(ids[0], ids[1]);
    cr_assert_str_neq(ids[1], ids[2]);
    cr_assert_str_neq(ids[0], ids[2]);
    cr_assert_eq(hx_cli_stat("orders", "backlog_count"), 3);

    /* ids are printed in input order: peek (delivery order) lists the bodies in that order */
    json_t *pk = JSON(NULL, "peek", "orders", "--batch", "10", "--json");
    cr_assert_eq(json_array_size(pk), 3);
    for (size_t i = 0; i < 3; i++) {
        json_t *m = hx_find_by_id(pk, ids[i]);
        cr_assert_not_null(m, "peek lacks id %s", ids[i]);
        char *b = hx_json_body(m);
        cr_assert_str_eq(b, bodies[i], "id on line %zu belongs to body %s, not %s", i + 1, b,
                         bodies[i]);
        free(b);
    }
    json_decref(pk);

    json_t *p = JSON(NULL, "pull", "orders", "--batch", "10", "--json");
    cr_assert_eq(json_array_size(p), 3);
    const char *leases[3];
    for (size_t i = 0; i < 3; i++) {
        json_t *m = hx_find_by_id(p, ids[i]);
        cr_assert_not_null(m, "pull lacks id %s", ids[i]);
        char *b = hx_json_body(m);
        cr_assert_str_eq(b, bodies[i]);
        free(b);
        cr_assert_eq(hx_json_int(m, "attempts"), 1);
        leases[i] = hx_json_str(m, "lease_id");
    }
    cr_assert_eq(hx_cli_stat("orders", "leased_count"), 3);

    out = OK(NULL, "ack", "orders", leases[0], leases[1], leases[2]);
    cr_assert(strstr(out, "acked 3") != NULL, "ack output: [%s]", out);
    free(out);
    json_decref(p);

    HX_CLI_ASSERT_STATS("orders", { "backlog_count", 0 }, { "leased_count", 0 },
                        { "acked_total", 3 }, { "sent_total", 3 });
}

Test(cli, ack_json_reports_ack_count_and_missing)
{
    json_t *p = hx_cli_send_and_pull_one("orders", "{\"a\":1}");
    const char *lease = hx_json_str(json_array_get(p, 0), "lease_id");
    json_t *a = JSON(NULL, "ack", "orders", lease, "--json");
    cr_assert_eq(hx_json_int(a, "ackCount"), 1);
    cr_assert_eq(hx_json_int(a, "missing"), 0);
    json_decref(a);
    /* acking the same (well-formed) lease again: nothing to ack, reported missing */
    a = JSON(NULL, "ack", "orders", lease, "--json");
    cr_assert_eq(hx_json_int(a, "ackCount"), 0);
    cr_assert_eq(hx_json_int(a, "missing"), 1);
    json_decref(a);
    json_decref(p);
    cr_assert_eq(hx_cli_stat("orders", "acked_total"), 1);
}

Test(cli, pull_plain_output_has_lease_id_id_attempts_and_body)
{
    hx_cli_mkq("orders");
    char *out = OK(NULL, "send", "orders", "--content-type", "text", "hi there");
    char id[64];
    char *lines[4];
    cr_assert_eq(hx_split_lines(out, lines, 4), 1);
    snprintf(id, sizeof id, "%s", lines[0]);
    free(out);
    out = OK(NULL, "pull", "orders");
    cr_assert_eq(hx_split_lines(out, lines, 4), 1, "one line per message");
    cr_assert(strstr(lines[0], id) != NULL, "line lacks the id: [%s]", lines[0]);
    cr_assert(strstr(lines[0], "attempts=1") != NULL, "line lacks attempts=1: [%s]", lines[0]);
    cr_assert(strstr(lines[0], "hi there") != NULL, "line lacks the body: [%s]", lines[0]);
    /* the first field is the lease id: a user copies it into ack */
    char lease[256];
    size_t k = strcspn(lines[0], " \t");
    cr_assert(k > 0 && k < sizeof lease);
    memcpy(lease, lines[0], k);
    lease[k] = 0;
    free(out);
    out = OK(NULL, "ack", "orders", lease);
    cr_assert(strstr(out, "acked 1") != NULL, "ack output: [%s]", out);
    free(out);
    cr_assert_eq(hx_cli_stat("orders", "backlog_count"), 0);
}

Test(cli, pull_respects_batch_and_leased_messages_are_not_pulled_again)
{
    hx_cli_mkq("orders");
    char in[256] = "";
    size_t off = 0;
    for (int i = 0; i < 5; i++)
        off += (size_t)snprintf(in + off, sizeof in - off, "{\"i\":%d}\n", i);
    OKV(in, "send-batch", "orders");
    json_t *p1 = JSON(NULL, "pull", "orders", "--batch", "2", "--json");
    cr_assert_eq(json_array_size(p1), 2);
    json_t *p2 = JSON(NULL, "pull", "orders", "--batch", "10", "--visibility-timeout", "60",
                      "--json");
    cr_assert_eq(json_array_size(p2), 3);
    for (size_t i = 0; i < 3; i++)
        cr_assert_null(hx_find_by_id(p1, hx_json_str(json_array_get(p2, i), "id")),
                       "a leased message was delivered twice");
    json_t *p3 = JSON(NULL, "pull", "orders", "--json");
    cr_assert_eq(json_array_size(p3), 0);
    cr_assert_eq(hx_cli_stat("orders", "leased_count"), 5);
    json_decref(p1);
    json_decref(p2);
    json_decref(p3);
}

Test(cli, retry_with_delay_hides_the_message_until_then)
{
    json_t *p = hx_cli_send_and_pull_one("orders", "{\"a\":1}");
    const char *lease = hx_json_str(json_array_get(p, 0), "lease_id");
    int64_t t0 = hx_wall_ms();
    json_t *r = JSON(NULL, "retry", "orders", lease, "--delay", "3600", "--json");
    cr_assert_eq(hx_json_int(r, "retryCount"), 1);
    cr_assert_eq(hx_json_int(r, "deadCount"), 0);
    cr_assert_eq(hx_json_int(r, "stale"), 0);
    json_decref(r);
    json_decref(p);

    HX_CLI_ASSERT_STATS("orders", { "backlog_count", 1 }, { "delayed_count", 1 },
                        { "visible_count", 0 }, { "leased_count", 0 }, { "retried_total", 1 });

    p = JSON(NULL, "pull", "orders", "--json");
    cr_assert_eq(json_array_size(p), 0, "a message retried with --delay 3600 was delivered");
    json_decref(p);

    json_t *pk = JSON(NULL, "peek", "orders", "--json");
    cr_assert_eq(json_array_size(pk), 1);
    json_int_t vis = hx_json_int(json_array_get(pk, 0), "visible_at_ms");
    cr_assert(vis >= t0 + 3590 * 1000LL && vis <= hx_wall_ms() + 3610 * 1000LL,
              "visible_at_ms %lld is not ~1 h from now (%lld)", (long long)vis, (long long)t0);
    json_decref(pk);
}

/* `send orders {"a":1}`; copies the one line it prints (the id) into id. */
static void send_a1(char id[64])
{
    char *out = OK(NULL, "send", "orders", "{\"a\":1}");
    char *lines[2];
    cr_assert_eq(hx_split_lines(out, lines, 2), 1);
    snprintf(id, 64, "%s", lines[0]);
    free(out);
}

Test(cli, retry_without_delay_redelivers_with_attempts_2)
{
    hx_cli_mkq("orders");
    char id[64];
    send_a1(id);
    json_t *p = JSON(NULL, "pull", "orders", "--json");
    cr_assert_eq(json_array_size(p), 1);
    char *out = OK(NULL, "retry", "orders", hx_json_str(json_array_get(p, 0), "lease_id"));
    cr_assert(strstr(out, "retried 1") != NULL, "retry output: [%s]", out);
    free(out);
    json_decref(p);
    p = JSON(NULL, "pull", "orders", "--json");
    cr_assert_eq(json_array_size(p), 1);
    cr_assert_str_eq(hx_json_str(json_array_get(p, 0), "id"), id,
                     "id must be stable across retries");
    cr_assert_eq(hx_json_int(json_array_get(p, 0), "attempts"), 2);
    json_decref(p);
}

Test(cli, retry_past_max_retries_dead_letters_and_peek_shows_history)
{
    OKV(NULL, "queues", "create", "orders", "--max-retries", "0", "--dead-letter-queue", "dlq");
    char id[64];
    send_a1(id);
    json_t *p = JSON(NULL, "pull", "orders", "--json");
    cr_assert_eq(json_array_size(p), 1);
    const char *lease = hx_json_str(json_array_get(p, 0), "lease_id");
    json_t *r = JSON(NULL, "retry", "orders", lease, "--json");
    cr_assert_eq(hx_json_int(r, "deadCount"), 1);
    cr_assert_eq(hx_json_int(r, "retryCount"), 0);
    json_decref(r);
    json_decref(p);
    cr_assert_eq(hx_cli_stat("orders", "backlog_count"), 0);
    cr_assert_eq(hx_cli_stat("orders", "dead_lettered_total"), 1);

    json_t *pk = JSON(NULL, "peek", "dlq", "--json");
    cr_assert_eq(json_array_size(pk), 1);
    json_t *m = json_array_get(pk, 0);
    cr_assert_str_eq(hx_json_str(m, "id"), id);
    cr_assert_str_eq(hx_json_str(m, "dead_from_queue"), "orders");
    cr_assert_eq(hx_json_int(m, "dead_attempts"), 1);
    cr_assert(json_is_string(json_object_get(m, "last_error")),
              "CLI_CONTRACT: peek of a dead letter has \"last_error\" (\"\" when none)");
    char *b = hx_json_body(m);
    cr_assert_str_eq(b, "{\"a\":1}");
    free(b);
    json_decref(pk);
}

Test(cli, peek_does_not_lease)
{
    hx_cli_mkq("orders");
    OKV(NULL, "send", "orders", "{\"a\":1}");
    OKV(NULL, "send", "orders", "--content-type", "text", "two");
    json_t *pk1 = JSON(NULL, "peek", "orders", "--json");
    cr_assert(json_is_array(pk1));
    cr_assert_eq(json_array_size(pk1), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *m = json_array_get(pk1, i);
        cr_assert(hx_is_uuid(hx_json_str(m, "id")));
        cr_assert(json_is_string(json_object_get(m, "body")));
        cr_assert(json_is_integer(json_object_get(m, "attempts")));
        cr_assert(json_is_integer(json_object_get(m, "timestamp_ms")));
        cr_assert(json_is_integer(json_object_get(m, "visible_at_ms")));
        cr_assert(json_is_object(json_object_get(m, "metadata")));
        cr_assert_null(json_object_get(m, "lease_id"), "peek output must have no lease_id");
    }
    /* delivery order: the first sent comes first */
    char *b = hx_json_body(json_array_get(pk1, 0));
    cr_assert_str_eq(b, "{\"a\":1}");
    free(b);
    cr_assert_str_eq(hx_json_str(json_array_get(pk1, 1), "body"), "two");

    HX_CLI_ASSERT_STATS("orders", { "leased_count", 0 }, { "visible_count", 2 });

    json_t *pk2 = JSON(NULL, "peek", "orders", "--json");
    cr_assert(json_equal(pk1, pk2), "peeking twice changed the messages");
    json_decref(pk2);

    json_t *p = JSON(NULL, "pull", "orders", "--batch", "10", "--json");
    cr_assert_eq(json_array_size(p), 2, "peeked messages must stay available");
    for (size_t i = 0; i < 2; i++)
        cr_assert_eq(hx_json_int(json_array_get(p, i), "attempts"), 1);
    json_decref(p);
    json_decref(pk1);
}

Test(cli, delay_at_the_limit_is_accepted_and_delayed)
{
    hx_cli_mkq("orders");
    OKV(NULL, "send", "orders", "--delay", "31536000", "{\"a\":1}");
    HX_CLI_ASSERT_STATS("orders", { "delayed_count", 1 }, { "visible_count", 0 });
}

Test(cli, send_batch_with_delay_delays_every_message)
{
    hx_cli_mkq("orders");
    OKV("{\"a\":1}\n{\"a\":2}\n", "send-batch", "orders", "--delay", "60");
    HX_CLI_ASSERT_STATS("orders", { "delayed_count", 2 }, { "visible_count", 0 });
}

Test(cli, message_of_exactly_128000_bytes_is_accepted)
{
    hx_cli_mkq("orders");
    char *body = hx_json_string_body(128000);
    OKV(body, "send", "orders", "-");
    free(body);
    cr_assert_eq(hx_cli_stat("orders", "backlog_bytes"), 128000);
}

Test(cli, global_options_are_accepted_anywhere)
{
    hx_cli_mkq("orders");
    char *out = NULL, *err = NULL;
    int rc = hx_run_store(NULL, NULL, &out, &err, "queues", "get", "orders", "--json", "--store",
                          hx_e2e.url, (const char *)NULL);
    cr_assert_eq(rc, 0, "stderr: %s", err);
    json_t *a = hx_parse_json(out);
    free(out);
    free(err);
    rc = hx_run_store(NULL, NULL, &out, &err, "--json", "queues", "--store", hx_e2e.url, "get",
                      "orders", (const char *)NULL);
    cr_assert_eq(rc, 0, "stderr: %s", err);
    json_t *b = hx_parse_json(out);
    cr_assert(json_equal(a, b));
    free(out);
    free(err);
    json_decref(a);
    json_decref(b);
}

Test(cli, herald_store_env_is_the_default_store)
{
    cr_assert_eq(setenv("HERALD_STORE", hx_e2e.url, 1), 0);
    char *out = NULL, *err = NULL;
    int rc = hx_run_store(NULL, NULL, &out, &err, "queues", "create", "viaenv", (const char *)NULL);
    cr_assert_eq(rc, 0, "stderr: %s", err);
    free(out);
    free(err);
    unsetenv("HERALD_STORE");
    json_decref(JSON(NULL, "queues", "get", "viaenv", "--json"));
}

Test(cli, version_prints_a_version)
{
    char *out = OK(NULL, "version");
    cr_assert(strlen(out) > 0 && strchr(out, '.') != NULL, "version output: [%s]", out);
    free(out);
}

/* ------------------------------------------------------------------------------------------- *
 * --help (usage errors: test_cli_errors.c)
 * ------------------------------------------------------------------------------------------- */

Test(cli, help_on_every_command_exits_0_and_prints_to_stdout)
{
    static const char *const cmds[][4] = {
        { "--help" },
        { "-h" },
        { "queues", "--help" },
        { "queues", "create", "--help" },
        { "queues", "list", "--help" },
        { "queues", "get", "--help" },
        { "queues", "update", "--help" },
        { "queues", "delete", "--help" },
        { "queues", "purge", "--help" },
        { "queues", "pause", "--help" },
        { "queues", "resume", "--help" },
        { "queues", "stats", "--help" },
        { "send", "--help" },
        { "send", "-h" },
        { "send-batch", "--help" },
        { "pull", "--help" },
        { "ack", "--help" },
        { "retry", "--help" },
        { "peek", "--help" },
        { "bench", "queue", "--help" },
        { "version", "--help" },
        { "topics", "--help" },
        { "topics", "subscribe", "--help" },
        { "topics", "unsubscribe", "--help" },
        { "topics", "list", "--help" },
        { "publish", "--help" },
        { "catalog", "--help" },
        { "catalog", "check", "--help" },
        { "catalog", "gen", "--help" },
        { "run", "--help" },
        { "config", "--help" },
        { "config", "check", "--help" },
        { "dlq", "--help" },
        { "dlq", "list", "--help" },
        { "dlq", "redrive", "--help" },
        { "metrics", "--help" },
        { "trace", "--help" },
    };
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
        const char *argv[8] = { "--store", hx_e2e.url };
        size_t n = 2;
        for (size_t k = 0; k < 4 && cmds[i][k]; k++)
            argv[n++] = cmds[i][k];
        argv[n] = NULL;
        char *out = NULL, *err = NULL;
        int rc = hx_cli(argv, NULL, &out, &err);
        char what[128] = "";
        for (size_t k = 2; k < n; k++) {
            strncat(what, argv[k], sizeof what - strlen(what) - 1);
            strncat(what, " ", sizeof what - strlen(what) - 1);
        }
        cr_expect_eq(rc, 0, "herald %s: exit %d; stderr: %s", what, rc, err);
        cr_expect(strlen(out) > 0, "herald %s: help must go to stdout", what);
        free(out);
        free(err);
    }
}

/* ------------------------------------------------------------------------------------------- *
 * bench
 * ------------------------------------------------------------------------------------------- */

/* W3 runs 10 s by default; `bench queue --help` documents --w3-seconds to shorten it. */
Test(cli, bench_queue_json_prints_one_object_with_positive_numbers)
{
    json_t *b = JSON(NULL, "bench", "queue", "--messages", "2000", "--w3-seconds", "1", "--json");
    cr_assert(json_is_object(b), "bench --json must print one JSON object");
    static const char *const keys[] = { "w1_produce_msgs_per_s", "w2_consume_msgs_per_s",
                                        "w3_p50_ms", "w3_p99_ms", "w3_max_ms" };
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        json_t *v = json_object_get(b, keys[i]);
        cr_assert(json_is_number(v), "bench key %s missing or not a number", keys[i]);
        cr_assert(json_number_value(v) > 0, "bench %s = %g, want > 0", keys[i],
                  json_number_value(v));
    }
    json_t *d = json_object_get(b, "durability");
    cr_assert_not_null(d, "bench output lacks durability");
    if (json_is_string(d))
        cr_assert_str_eq(json_string_value(d), "full", "default durability is full");
    json_decref(b);
}
