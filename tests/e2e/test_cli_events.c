// SPDX-License-Identifier: MIT
/*
 * test_cli_events.c - the event commands of the `herald` CLI added with issue 3
 * (tests/e2e/CLI_CONTRACT.md): topics subscribe / unsubscribe / list, publish (plain and as an
 * event), trace (text and --json), config check, catalog check, send --type with --catalog
 * (strict refuses, warn sends) and metrics --json.
 * Every test owns a temp dir (also its cwd) and passes `--store sqlite:TMPDIR/h.db`
 * (tests/support/cli.h). Files the commands read are written into the cwd.
 */
#include <criterion/criterion.h>
#include <jansson.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

TestSuite(cli_events, .init = hx_e2e_setup, .fini = hx_e2e_teardown, .timeout = 60);

/* ---- helpers -------------------------------------------------------------------------------- */

static void write_file(const char *name, const char *text)
{
    FILE *f = fopen(name, "w");
    cr_assert_not_null(f, "cannot write %s", name);
    fputs(text, f);
    fclose(f);
}

static char *trim(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\r'))
        s[--n] = 0;
    return s;
}

/* The `topics list --json` entry of topic, or NULL (borrowed from list). */
static json_t *topic_entry(json_t *list, const char *topic)
{
    cr_assert(json_is_array(list), "topics list --json must print an array");
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *t = json_array_get(list, i);
        if (strcmp(hx_json_str(t, "topic"), topic) == 0)
            return t;
    }
    return NULL;
}

/* Asserts the queues of a topics-list entry are exactly `want` (in order). */
static void assert_topic_queues(json_t *t, const char *const *want, size_t n)
{
    json_t *qs = json_object_get(t, "queues");
    cr_assert(json_is_array(qs), "topic entry lacks a queues array");
    cr_assert_eq(json_array_size(qs), n, "topic has %zu queues, want %zu", json_array_size(qs),
                 n);
    for (size_t i = 0; i < n; i++)
        cr_assert_str_eq(json_string_value(json_array_get(qs, i)), want[i]);
}

/* ---- topics --------------------------------------------------------------------------------- */

Test(cli_events, topics_subscribe_unsubscribe_and_list_json)
{
    hx_cli_mkq("a");
    hx_cli_mkq("b");
    OKV(NULL, "topics", "subscribe", "orders", "b");
    OKV(NULL, "topics", "subscribe", "orders", "a");
    OKV(NULL, "topics", "subscribe", "orders", "a"); /* twice: a no-op */
    json_t *l = JSON(NULL, "topics", "list", "--json");
    cr_assert_eq(json_array_size(l), 1);
    json_t *t = topic_entry(l, "orders");
    cr_assert_not_null(t, "topic orders not listed");
    assert_topic_queues(t, (const char *const[]){ "a", "b" }, 2);
    cr_assert_eq(hx_json_int(t, "published_total"), 0);
    cr_assert_eq(hx_json_int(t, "unrouted_total"), 0);
    json_decref(l);

    OKV(NULL, "topics", "unsubscribe", "orders", "b");
    l = JSON(NULL, "topics", "list", "--json");
    t = topic_entry(l, "orders");
    cr_assert_not_null(t);
    assert_topic_queues(t, (const char *const[]){ "a" }, 1);
    json_decref(l);

    free(FAIL(1, NULL, "topics", "unsubscribe", "orders", "b")); /* no longer subscribed */
    free(FAIL(1, NULL, "topics", "subscribe", "orders", "ghost")); /* no such queue */
}

/* ---- publish -------------------------------------------------------------------------------- */

Test(cli_events, publish_copies_the_body_into_every_subscribed_queue)
{
    hx_cli_mkq("a");
    hx_cli_mkq("b");
    OKV(NULL, "topics", "subscribe", "orders", "a");
    OKV(NULL, "topics", "subscribe", "orders", "b");
    char *out = OK(NULL, "publish", "orders", "{\"n\":1}");
    cr_assert(strstr(out, "published to 2 queues"), "publish printed [%s]", out);
    free(out);
    json_t *r = JSON(NULL, "publish", "orders", "{\"n\":2}", "--json");
    cr_assert_eq(hx_json_int(r, "queues"), 2);
    json_decref(r);
    HX_CLI_ASSERT_STATS("a", { "sent_total", 2 }, { "backlog_count", 2 });
    HX_CLI_ASSERT_STATS("b", { "sent_total", 2 }, { "backlog_count", 2 });
    json_t *arr = JSON(NULL, "pull", "b", "--batch", "10", "--json");
    cr_assert_eq(json_array_size(arr), 2);
    char *b0 = hx_json_body(json_array_get(arr, 0));
    cr_assert_str_eq(b0, "{\"n\":1}");
    free(b0);
    json_decref(arr);
    json_t *l = JSON(NULL, "topics", "list", "--json");
    cr_assert_eq(hx_json_int(topic_entry(l, "orders"), "published_total"), 2);
    json_decref(l);
    free(FAIL(1, NULL, "publish", "no-such-topic", "{}"));
}

Test(cli_events, publish_with_type_and_source_sends_one_event_to_every_subscriber)
{
    hx_cli_mkq("a");
    hx_cli_mkq("b");
    OKV(NULL, "topics", "subscribe", "orders", "a");
    OKV(NULL, "topics", "subscribe", "orders", "b");
    char *out = OK(NULL, "publish", "orders", "--type", "order.placed", "--source", "shop",
                   "{\"order_id\":\"o-1\"}");
    char *event_id = trim(out);
    cr_assert(hx_is_uuid(event_id), "publish --type printed [%s], want the event_id", event_id);
    static const char *const qs[] = { "a", "b" };
    for (size_t i = 0; i < 2; i++) {
        json_t *arr = JSON(NULL, "pull", qs[i], "--json");
        cr_assert_eq(json_array_size(arr), 1, "queue %s", qs[i]);
        char *body = hx_json_body(json_array_get(arr, 0));
        json_t *env = hx_parse_json(body);
        cr_assert_str_eq(hx_json_str(env, "event_id"), event_id, "queue %s", qs[i]);
        cr_assert_str_eq(hx_json_str(env, "type"), "order.placed");
        cr_assert_str_eq(hx_json_str(env, "source"), "shop");
        cr_assert_str_eq(hx_json_str(json_object_get(env, "payload"), "order_id"), "o-1");
        json_decref(env);
        free(body);
        json_decref(arr);
    }
    free(out);
}

/* ---- trace ---------------------------------------------------------------------------------- */

Test(cli_events, trace_shows_a_correlated_event_sent_and_acked_by_pull)
{
    hx_cli_mkq("q");
    char *out = OK(NULL, "send", "q", "--type", "order.placed", "--source", "shop",
                   "--correlation-id", "corr-42", "{\"order_id\":\"o-1\"}");
    char *event_id = trim(out);
    json_t *arr = JSON(NULL, "pull", "q", "--json");
    cr_assert_eq(json_array_size(arr), 1);
    json_t *m = json_array_get(arr, 0);
    char msg_id[HERALD_ID_SIZE];
    snprintf(msg_id, sizeof msg_id, "%s", hx_json_str(m, "id"));
    char *acked = OK(NULL, "ack", "q", hx_json_str(m, "lease_id"));
    free(acked);
    json_decref(arr);

    json_t *tr = JSON(NULL, "trace", "corr-42", "--json");
    cr_assert(json_is_array(tr), "trace --json must print an array");
    cr_assert_eq(json_array_size(tr), 2, "trace has %zu entries, want sent + acked",
                 json_array_size(tr));
    static const char *const keys[] = { "at",   "what",    "queue",   "message_id", "event_id",
                                        "type", "handler", "attempt", "detail" };
    for (size_t i = 0; i < 2; i++) {
        json_t *e = json_array_get(tr, i);
        for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
            cr_assert_not_null(json_object_get(e, keys[k]), "entry %zu lacks %s", i, keys[k]);
        cr_assert_str_eq(hx_json_str(e, "queue"), "q");
        cr_assert_str_eq(hx_json_str(e, "event_id"), event_id);
        cr_assert_str_eq(hx_json_str(e, "message_id"), msg_id);
        cr_assert_str_eq(hx_json_str(e, "type"), "order.placed");
        cr_assert(hx_is_iso8601(hx_json_str(e, "at")), "at: %s", hx_json_str(e, "at"));
    }
    json_t *sent = json_array_get(tr, 0), *ack = json_array_get(tr, 1);
    cr_assert_str_eq(hx_json_str(sent, "what"), "sent");
    cr_assert_str_eq(hx_json_str(ack, "what"), "acked");
    cr_assert_str_eq(hx_json_str(ack, "handler"), "pull");
    cr_assert_eq(hx_json_int(ack, "attempt"), 1);
    json_decref(tr);

    char *text = OK(NULL, "trace", "corr-42");
    char *lines[8];
    size_t n = hx_split_lines(text, lines, 8);
    cr_assert_eq(n, 2, "trace printed %zu lines", n);
    cr_assert(strstr(lines[0], "sent") && strstr(lines[0], "order.placed"), "line 1: %s",
              lines[0]);
    cr_assert(strstr(lines[1], "acked") && strstr(lines[1], "by pull"), "line 2: %s", lines[1]);
    free(text);
    free(out);
}

/* ---- config check --------------------------------------------------------------------------- */

static const char GOOD_CONFIG[] =
    "{\n"
    "  \"queues\": [ { \"name\": \"q1\" }, { \"name\": \"q2\" } ],\n"
    "  \"routes\": [ { \"from\": \"q1\", \"type\": \"content.*\", \"to\": [\"q2\"] } ]\n"
    "}\n";

/* line 4: the route with an invalid type pattern */
static const char BAD_PATTERN_CONFIG[] =
    "{\n"
    "  \"queues\": [ { \"name\": \"q1\" }, { \"name\": \"q2\" } ],\n"
    "  \"routes\": [\n"
    "    { \"from\": \"q1\", \"type\": \"Content.*\", \"to\": [\"q2\"] } ]\n"
    "}\n";

Test(cli_events, config_check_of_a_valid_file_says_valid_and_creates_nothing)
{
    write_file("good.jsonc", GOOD_CONFIG);
    char *out = OK(NULL, "config", "check", "good.jsonc");
    cr_assert(hx_contains_ci(out, "valid"), "config check printed [%s]", out);
    free(out);
    json_t *l = JSON(NULL, "queues", "list", "--json");
    cr_assert_eq(json_array_size(l), 0, "config check created %zu queues", json_array_size(l));
    json_decref(l);
}

Test(cli_events, config_check_of_a_bad_type_pattern_exits_1_naming_the_line_and_creates_nothing)
{
    write_file("bad.jsonc", BAD_PATTERN_CONFIG);
    char *err = FAIL(1, NULL, "config", "check", "bad.jsonc");
    cr_assert(strstr(err, "bad.jsonc:4"), "stderr does not name bad.jsonc:4: %s", err);
    cr_assert(strstr(err, "Content.*"), "stderr does not name the pattern: %s", err);
    free(err);
    json_t *l = JSON(NULL, "queues", "list", "--json");
    cr_assert_eq(json_array_size(l), 0, "a refused config created %zu queues",
                 json_array_size(l));
    json_decref(l);
}

/* ---- catalog check -------------------------------------------------------------------------- */

static const char CATALOG[] =
    "// events of the shop\n"
    "{ \"events\": {\n"
    "  \"order.placed\": { \"payload\": { \"order_id\": \"string\", \"n\": \"integer?\" } } } }\n";

Test(cli_events, catalog_check_says_valid_or_exits_1_naming_the_line)
{
    write_file("cat.jsonc", CATALOG);
    char *out = OK(NULL, "catalog", "check", "cat.jsonc");
    cr_assert(hx_contains_ci(out, "valid"), "catalog check printed [%s]", out);
    free(out);
    write_file("badcat.jsonc", "{ \"events\": {\n"
                               "  \"order.placed\": { \"payload\": {\n"
                               "    \"order_id\": \"strng\" } } } }\n");
    char *err = FAIL(1, NULL, "catalog", "check", "badcat.jsonc");
    cr_assert(strstr(err, "badcat.jsonc:3"), "stderr does not name badcat.jsonc:3: %s", err);
    cr_assert(strstr(err, "order_id"), "stderr does not name the field: %s", err);
    free(err);
}

Test(cli_events, catalog_gen_writes_the_header_whole_or_names_the_path_it_cannot_write)
{
    write_file("cat.jsonc", CATALOG);
    size_t before = hx_dir_entries(".");
    OKV(NULL, "catalog", "gen", "cat.jsonc", "-o", "events.h");
    OKV(NULL, "catalog", "gen", "cat.jsonc", "-o", "events.h"); /* replaces it */
    cr_assert_eq(hx_dir_entries("."), before + 1, "gen left temp files beside events.h");
    char *h = hx_read_file("events.h", NULL);
    cr_assert(h && strstr(h, "order_placed"), "the header lacks the event");
    free(h);
    char *err = FAIL(1, NULL, "catalog", "gen", "cat.jsonc", "-o", "no-such-dir/events.h");
    cr_assert(strstr(err, "no-such-dir/events.h"), "error does not name the path: %s", err);
    free(err);
    cr_assert_eq(hx_dir_entries("."), before + 1, "a failed gen left files behind");
}

/* ---- send --type with a catalog ------------------------------------------------------------- */

Test(cli_events, send_with_a_catalog_refuses_a_bad_event_in_strict_mode_and_sends_it_in_warn)
{
    write_file("cat.jsonc", CATALOG);
    hx_cli_mkq("q");
    char *err = FAIL(1, NULL, "send", "q", "--type", "order.placed", "--source", "shop",
                     "--catalog", "cat.jsonc", "{\"order_id\":7}");
    cr_assert(strstr(err, "order_id"), "stderr does not name the field: %s", err);
    free(err);
    err = FAIL(1, NULL, "send", "q", "--type", "order.cancelled", "--source", "shop",
               "--catalog", "cat.jsonc", "{}");
    free(err);
    HX_CLI_ASSERT_STATS("q", { "sent_total", 0 }, { "backlog_count", 0 });

    char *out = OK(NULL, "send", "q", "--type", "order.placed", "--source", "shop", "--catalog",
                   "cat.jsonc", "--catalog-mode", "warn", "{\"order_id\":7}");
    cr_assert(hx_is_uuid(trim(out)), "warn mode printed [%s], want the event_id", out);
    free(out);
    out = OK(NULL, "send", "q", "--type", "order.placed", "--source", "shop", "--catalog",
             "cat.jsonc", "{\"order_id\":\"o-1\"}");
    free(out);
    HX_CLI_ASSERT_STATS("q", { "sent_total", 2 }, { "backlog_count", 2 });
}

/* ---- metrics -------------------------------------------------------------------------------- */

static int h_ok(herald_msg_ctx *c, const herald_message *m, const herald_envelope *env, void *ud)
{
    (void)c;
    (void)m;
    (void)env;
    (void)ud;
    return 0;
}

Test(cli_events, metrics_json_has_every_key_per_queue_type_and_outcome)
{
    /* some metrics, written by the metrics middleware of a consumer on the test's store */
    herald_store *s = hx_open_file(hx_e2e.dir, "h.db", NULL);
    hx_create_queue(s, "jobs", NULL);
    herald_event e = { .type = "job.run", .source = "e2e", .payload_json = "{}" };
    for (int i = 0; i < 3; i++)
        cr_assert_eq(herald_send_event(s, "jobs", &e, HERALD_UNSET, NULL), 0, "%s",
                     herald_last_error());
    herald_chain *ch = NULL;
    cr_assert_eq(herald_chain_new(h_ok, NULL, &ch), 0);
    cr_assert_eq(herald_chain_use_metrics(ch, s), 0);
    static const char *const qs[] = { "jobs" };
    herald_consumer_cfg cfg;
    herald_consumer_cfg_init(&cfg);
    cfg.queues = qs;
    cfg.n_queues = 1;
    cfg.chain = ch;
    cfg.max_batch_timeout_ms = 0;
    herald_consumer *c = hx_consumer_start(s, &cfg);
    HX_WAIT_UNTIL(hx_stats(s, "jobs").acked_total == 3, 10000);
    herald_consumer_stop(c);
    herald_chain_free(ch); /* flushes the metrics */
    cr_assert_eq(hx_stats(s, "jobs").acked_total, 3);
    herald_store_close(s);

    json_t *arr = JSON(NULL, "metrics", "--json");
    cr_assert(json_is_array(arr), "metrics --json must print an array");
    cr_assert_eq(json_array_size(arr), 1, "metrics has %zu rows", json_array_size(arr));
    json_t *m = json_array_get(arr, 0);
    static const char *const keys[] = { "queue",   "type",      "outcome",   "count",
                                        "mean_ms", "p50_ms_le", "p99_ms_le", "buckets" };
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
        cr_assert_not_null(json_object_get(m, keys[k]), "metrics row lacks %s", keys[k]);
    cr_assert_str_eq(hx_json_str(m, "queue"), "jobs");
    cr_assert_str_eq(hx_json_str(m, "type"), "job.run");
    cr_assert_str_eq(hx_json_str(m, "outcome"), "ok");
    cr_assert_eq(hx_json_int(m, "count"), 3);
    cr_assert(json_is_number(json_object_get(m, "mean_ms")));
    json_t *b = json_object_get(m, "buckets");
    cr_assert(json_is_array(b) || json_is_object(b), "buckets is neither an array nor an object");
    json_decref(arr);
}
