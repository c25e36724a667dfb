// SPDX-License-Identifier: MIT
/*
 * test_cli_errors.c - the failures of the `herald` CLI contract (tests/e2e/CLI_CONTRACT.md):
 * usage errors exit 2 with usage on stderr; bad input (sizes, batch limits, bad JSON or content
 * type, delays, unknown queues, malformed lease ids, paused queues, bad store URLs, files that
 * are not Herald databases or are newer) exits 1 with a "herald: " message on stderr naming the
 * problem, and changes NOTHING (checked by comparing `queues stats --json` / `queues list --json`
 * before and after). The working contract is in test_cli.c.
 * Every test owns a temp dir (also its cwd) and passes `--store sqlite:TMPDIR/h.db` on every
 * call (tests/support/cli.h).
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <sqlite3.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

TestSuite(cli, .init = hx_e2e_setup, .fini = hx_e2e_teardown, .timeout = 60);

/* ------------------------------------------------------------------------------------------- *
 * Usage errors (exit 2)
 * ------------------------------------------------------------------------------------------- */

Test(cli, unknown_command_exits_2_with_usage_on_stderr)
{
    free(FAIL(2, NULL, "frobnicate"));
    free(FAIL(2, NULL, "queues", "frobnicate"));
}

Test(cli, no_command_exits_2)
{
    free(FAIL(2, NULL, "--json"));
}

Test(cli, unknown_option_exits_2_and_changes_nothing)
{
    hx_cli_mkq("orders");
    json_t *list = JSON(NULL, "queues", "list", "--json");
    json_t *before = hx_cli_stats("orders");
    free(FAIL(2, NULL, "queues", "create", "other", "--bogus"));
    free(FAIL(2, NULL, "send", "orders", "--bogus", "{}"));
    free(FAIL(2, NULL, "send-batch", "orders", "--no-such-option"));
    free(FAIL(2, NULL, "pull", "orders", "--frob", "--json"));
    free(FAIL(2, NULL, "queues", "list", "--bogus"));
    hx_assert_list_unchanged(list);
    hx_assert_stats_unchanged("orders", before);
    json_decref(list);
    json_decref(before);
}

Test(cli, missing_name_exits_2)
{
    static const char *const cmds[][3] = {
        { "queues", "create" }, { "queues", "get" },    { "queues", "update" },
        { "queues", "delete" }, { "queues", "purge" },  { "queues", "pause" },
        { "queues", "resume" }, { "queues", "stats" },  { "send" },
        { "send-batch" },       { "pull" },             { "peek" },
        { "ack" },              { "retry" },
    };
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
        const char *argv[8] = { "--store", hx_e2e.url };
        size_t n = 2;
        for (size_t k = 0; k < 3 && cmds[i][k]; k++)
            argv[n++] = cmds[i][k];
        argv[n] = NULL;
        char *out = NULL, *err = NULL;
        int rc = hx_cli(argv, NULL, &out, &err);
        cr_expect_eq(rc, 2, "herald %s %s (no NAME): exit %d, want 2; stderr: %s", cmds[i][0],
                     cmds[i][1] ? cmds[i][1] : "", rc, err);
        cr_expect(strlen(err) > 0, "herald %s %s: usage text belongs on stderr", cmds[i][0],
                  cmds[i][1] ? cmds[i][1] : "");
        free(out);
        free(err);
    }
}

Test(cli, send_without_body_and_ack_without_lease_exit_2)
{
    hx_cli_mkq("orders");
    json_t *before = hx_cli_stats("orders");
    free(FAIL(2, NULL, "send", "orders"));
    free(FAIL(2, NULL, "ack", "orders"));
    free(FAIL(2, NULL, "retry", "orders"));
    hx_assert_stats_unchanged("orders", before);
    json_decref(before);
}

/* ------------------------------------------------------------------------------------------- *
 * Bad input: exit 1, a clear message, nothing changed
 * ------------------------------------------------------------------------------------------- */

Test(cli, oversized_message_fails_and_sends_nothing)
{
    hx_cli_mkq("orders");
    json_t *before = hx_cli_stats("orders");
    char *body = hx_json_string_body(128001);
    char *err = FAIL(1, body, "send", "orders", "-");
    free(body);
    cr_assert(hx_contains_ci(err, "128000") || hx_contains_ci(err, "128,000") ||
                  hx_contains_ci(err, "too large") || hx_contains_ci(err, "too big"),
              "stderr should name the size limit: %s", err);
    free(err);
    hx_assert_stats_unchanged("orders", before);
    json_decref(before);
}

Test(cli, oversized_message_for_the_queue_limit_fails)
{
    OKV(NULL, "queues", "create", "orders", "--max-message-bytes", "10");
    json_t *before = hx_cli_stats("orders");
    free(FAIL(1, NULL, "send", "orders", "\"0123456789\"")); /* 12 bytes */
    hx_assert_stats_unchanged("orders", before);
    json_decref(before);
    OKV(NULL, "send", "orders", "\"01234567\""); /* 10 bytes: ok */
}

Test(cli, send_batch_of_101_lines_fails_and_sends_nothing)
{
    hx_cli_mkq("orders");
    json_t *before = hx_cli_stats("orders");
    char in[101 * 16 + 1] = "";
    size_t off = 0;
    for (int i = 0; i < 101; i++)
        off += (size_t)snprintf(in + off, sizeof in - off, "{\"i\":%d}\n", i);
    char *err = FAIL(1, in, "send-batch", "orders");
    cr_assert(hx_contains_ci(err, "100") || hx_contains_ci(err, "101"),
              "stderr should name the limit: %s", err);
    free(err);
    hx_assert_stats_unchanged("orders", before);
    json_decref(before);
}

Test(cli, send_batch_of_100_lines_is_accepted)
{
    hx_cli_mkq("orders");
    char in[100 * 16 + 1] = "";
    size_t off = 0;
    for (int i = 0; i < 100; i++)
        off += (size_t)snprintf(in + off, sizeof in - off, "{\"i\":%d}\n", i);
    char *out = OK(in, "send-batch", "orders");
    char *lines[128];
    cr_assert_eq(hx_split_lines(out, lines, 128), 100);
    free(out);
    cr_assert_eq(hx_cli_stat("orders", "backlog_count"), 100);
}

Test(cli, send_batch_with_a_bad_line_names_it_and_sends_nothing)
{
    hx_cli_mkq("orders");
    json_t *before = hx_cli_stats("orders");
    char *err = FAIL(1, "{\"a\":1}\nthis is not json\n{\"c\":3}\n", "send-batch", "orders");
    cr_assert(hx_contains_ci(err, "line 2"), "stderr should name line 2: %s", err);
    free(err);
    hx_assert_stats_unchanged("orders", before);
    json_decref(before);
}

Test(cli, send_batch_over_256000_bytes_fails_and_sends_nothing)
{
    hx_cli_mkq("orders");
    json_t *before = hx_cli_stats("orders");
    /* three lines of 100,000 bytes: each under the message limit, 300,000 in total */
    size_t line = 100000;
    char *in = malloc(3 * (line + 1) + 1);
    cr_assert(in);
    size_t off = 0;
    for (int i = 0; i < 3; i++) {
        char *b = hx_json_string_body(line);
        memcpy(in + off, b, line);
        free(b);
        off += line;
        in[off++] = '\n';
    }
    in[off] = 0;
    char *err = FAIL(1, in, "send-batch", "orders");
    free(in);
    free(err);
    hx_assert_stats_unchanged("orders", before);
    json_decref(before);
}

Test(cli, bad_content_type_fails_and_sends_nothing)
{
    hx_cli_mkq("orders");
    json_t *before = hx_cli_stats("orders");
    char *err = FAIL(1, NULL, "send", "orders", "--content-type", "xml", "{}");
    cr_assert(hx_contains_ci(err, "xml") || hx_contains_ci(err, "content type") ||
                  hx_contains_ci(err, "content-type"),
              "stderr should name the content type: %s", err);
    free(err);
    hx_assert_stats_unchanged("orders", before);
    json_decref(before);
}

Test(cli, non_json_body_with_json_type_fails_and_sends_nothing)
{
    hx_cli_mkq("orders");
    json_t *before = hx_cli_stats("orders");
    char *err = FAIL(1, NULL, "send", "orders", "hello world");
    cr_assert(hx_contains_ci(err, "json"), "stderr should say the body is not JSON: %s", err);
    free(err);
    err = FAIL(1, "{\"a\":", "send", "orders", "--content-type", "json", "-");
    cr_assert(hx_contains_ci(err, "json"), "stderr should say the body is not JSON: %s", err);
    free(err);
    hx_assert_stats_unchanged("orders", before);
    json_decref(before);
}

Test(cli, delay_over_365_days_fails_and_sends_nothing)
{
    hx_cli_mkq("orders");
    json_t *before = hx_cli_stats("orders");
    /* an out-of-range option value is a usage error (exit 2), like an unknown option */
    char *err = FAIL(2, NULL, "send", "orders", "--delay", "31536001", "{}");
    cr_assert(hx_contains_ci(err, "delay"), "stderr should name the delay: %s", err);
    free(err);
    err = FAIL(2, "{}\n", "send-batch", "orders", "--delay", "31536001");
    cr_assert(hx_contains_ci(err, "delay"), "stderr should name the delay: %s", err);
    free(err);
    hx_assert_stats_unchanged("orders", before);
    json_decref(before);
}

Test(cli, unknown_queue_fails_and_creates_nothing)
{
    hx_cli_mkq("orders");
    json_t *list = JSON(NULL, "queues", "list", "--json");
    char *err = FAIL(1, NULL, "send", "nosuch", "{}");
    cr_assert(hx_contains_ci(err, "nosuch"), "stderr should name the queue: %s", err);
    free(err);
    err = FAIL(1, "{}\n", "send-batch", "nosuch");
    cr_assert(hx_contains_ci(err, "nosuch"), "stderr should name the queue: %s", err);
    free(err);
    err = FAIL(1, NULL, "pull", "nosuch", "--json");
    cr_assert(hx_contains_ci(err, "nosuch"), "stderr should name the queue: %s", err);
    free(err);
    err = FAIL(1, NULL, "peek", "nosuch", "--json");
    free(err);
    hx_assert_list_unchanged(list);
    json_decref(list);
}

Test(cli, duplicate_queue_create_fails_and_keeps_the_original)
{
    json_t *orig = JSON(NULL, "queues", "create", "orders", "--json");
    char *err = FAIL(1, NULL, "queues", "create", "orders", "--max-retries", "9");
    cr_assert(hx_contains_ci(err, "orders") || hx_contains_ci(err, "exists"),
              "stderr should say the queue exists: %s", err);
    free(err);
    json_t *now = JSON(NULL, "queues", "get", "orders", "--json");
    cr_assert(json_equal(orig, now), "a failed create changed the existing queue");
    json_decref(orig);
    json_decref(now);
}

Test(cli, malformed_lease_id_fails_and_acks_nothing)
{
    json_t *p = hx_cli_send_and_pull_one("orders", "{\"a\":1}");
    const char *good = hx_json_str(json_array_get(p, 0), "lease_id");
    json_t *before = hx_cli_stats("orders");
    char *err = FAIL(1, NULL, "ack", "orders", "not-a-lease");
    cr_assert(hx_contains_ci(err, "lease"), "stderr should name the lease id: %s", err);
    free(err);
    /* a bad id among good ones: nothing is changed */
    err = FAIL(1, NULL, "ack", "orders", good, "not-a-lease");
    free(err);
    err = FAIL(1, NULL, "retry", "orders", good, "not-a-lease");
    free(err);
    hx_assert_stats_unchanged("orders", before);
    json_decref(before);
    cr_assert_eq(hx_cli_stat("orders", "leased_count"), 1);
    /* and the good lease still works afterwards */
    char *out = OK(NULL, "ack", "orders", good);
    cr_assert(strstr(out, "acked 1") != NULL, "ack output: [%s]", out);
    free(out);
    json_decref(p);
}

Test(cli, pull_on_a_paused_queue_says_paused)
{
    hx_cli_mkq("orders");
    OKV(NULL, "send", "orders", "{}");
    OKV(NULL, "queues", "pause", "orders");
    json_t *before = hx_cli_stats("orders");
    char *err = FAIL(1, NULL, "pull", "orders");
    cr_assert(hx_contains_ci(err, "paused"), "stderr should mention paused: %s", err);
    free(err);
    hx_assert_stats_unchanged("orders", before);
    json_decref(before);
}

Test(cli, malformed_store_url_fails_naming_it_and_creates_no_file)
{
    char *out = NULL, *err = NULL;
    int rc = RUN_AT("foo:bar", NULL, &out, &err, "queues", "list");
    cr_assert_eq(rc, 1, "exit %d; stderr: %s", rc, err);
    cr_assert(strncmp(err, "herald: ", 8) == 0, "stderr: [%s]", err);
    cr_assert(strstr(err, "foo:bar") != NULL, "stderr should name the URL: %s", err);
    free(out);
    free(err);
    rc = RUN_AT("foo:bar", NULL, &out, &err, "queues", "create", "orders");
    cr_assert_eq(rc, 1, "exit %d; stderr: %s", rc, err);
    free(out);
    free(err);
    cr_assert_eq(hx_dir_entries(hx_e2e.dir), 0, "a malformed URL created a file in the cwd");
}

Test(cli, unwritable_store_path_fails)
{
    char *out = NULL, *err = NULL;
    int rc = RUN_AT("sqlite:/nonexistent-dir/h.db", NULL, &out, &err, "queues", "create",
                    "orders");
    cr_assert_eq(rc, 1, "exit %d; stderr: %s", rc, err);
    cr_assert(strncmp(err, "herald: ", 8) == 0, "stderr: [%s]", err);
    cr_assert(hx_contains_ci(err, "nonexistent-dir") || hx_contains_ci(err, "writable") ||
                  hx_contains_ci(err, "read-only") || hx_contains_ci(err, "no such"),
              "stderr should say what is wrong with the path: %s", err);
    free(out);
    free(err);
    cr_assert_eq(access("/nonexistent-dir", F_OK), -1);
}

Test(cli, a_file_that_is_not_a_database_is_refused_and_left_alone)
{
    FILE *f = fopen(hx_e2e.db, "wb");
    cr_assert_not_null(f);
    for (int i = 0; i < 200; i++)
        fputs("this is a text file, certainly not a Herald database\n", f);
    fclose(f);
    size_t len0 = 0;
    char *before = hx_read_file(hx_e2e.db, &len0);
    char *err = FAIL(1, NULL, "queues", "list");
    cr_assert(strstr(err, "not a Herald database") != NULL, "stderr: %s", err);
    free(err);
    err = FAIL(1, NULL, "queues", "create", "orders");
    cr_assert(strstr(err, "not a Herald database") != NULL, "stderr: %s", err);
    free(err);
    size_t len1 = 0;
    char *after = hx_read_file(hx_e2e.db, &len1);
    cr_assert(len0 == len1 && memcmp(before, after, len0) == 0, "the foreign file was modified");
    free(before);
    free(after);
}

Test(cli, a_foreign_sqlite_database_is_refused_and_left_alone)
{
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(hx_e2e.db, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db,
                              "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT);"
                              "INSERT INTO users(name) VALUES('ada');",
                              NULL, NULL, NULL),
                 SQLITE_OK);
    sqlite3_close(db);

    char *err = FAIL(1, NULL, "queues", "create", "orders");
    cr_assert(strstr(err, "not a Herald database") != NULL, "stderr: %s", err);
    free(err);

    cr_assert_eq(sqlite3_open_v2(hx_e2e.db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master", -1, &st, NULL),
                 SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int(st, 0), 1, "Herald added schema to a foreign database");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static int db_user_version(const char *path)
{
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    int v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* Simulates a store written by a newer Herald: the SQLite backend records the highest applied
 * migration in PRAGMA user_version (src/store/store_sqlite.c, "Identity"). */
Test(cli, a_newer_schema_is_refused_and_left_alone)
{
    hx_cli_mkq("orders");
    int v = db_user_version(hx_e2e.db);
    cr_assert_eq(v, herald_schema_version_supported(), "user_version after create");
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(hx_e2e.db, &db), SQLITE_OK);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", v + 1);
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    char *err = FAIL(1, NULL, "queues", "list");
    cr_assert(hx_contains_ci(err, "newer"), "stderr should say the schema is newer: %s", err);
    free(err);
    err = FAIL(1, NULL, "send", "orders", "{}");
    cr_assert(hx_contains_ci(err, "newer"), "stderr should say the schema is newer: %s", err);
    free(err);
    cr_assert_eq(db_user_version(hx_e2e.db), v + 1, "the newer store was modified");
}

Test(cli, durability_in_the_url_or_option_is_not_part_of_the_path)
{
    char url[512];
    snprintf(url, sizeof url, "%s?durability=normal", hx_e2e.url);
    char *out = NULL, *err = NULL;
    int rc = RUN_AT(url, NULL, &out, &err, "queues", "create", "orders");
    cr_assert_eq(rc, 0, "stderr: %s", err);
    free(out);
    free(err);
    rc = RUN(NULL, &out, &err, "--durability", "normal", "send", "orders", "{}");
    cr_assert_eq(rc, 0, "stderr: %s", err);
    free(out);
    free(err);
    /* the same file, reached by the plain URL */
    cr_assert_eq(hx_cli_stat("orders", "backlog_count"), 1);
    char odd[512];
    snprintf(odd, sizeof odd, "%s?durability=normal", hx_e2e.db);
    cr_assert_neq(access(odd, F_OK), 0, "the URL's query string became part of the file name");
}

/* ------------------------------------------------------------------------------------------- *
 * Commands that must not create a store or fail where nothing is wrong
 * ------------------------------------------------------------------------------------------- */

Test(cli, config_check_without_a_store_creates_no_database)
{
    unsetenv("HERALD_STORE");
    FILE *f = fopen("herald.jsonc", "w");
    cr_assert(f);
    fputs("{ \"queues\": [ { \"name\": \"a\" } ],\n"
          "  \"routes\": [ { \"from\": \"a\", \"type\": \"x.y\", \"to\": [\"elsewhere\"] } ] }\n",
          f);
    fclose(f);
    char *out = NULL, *err = NULL;
    int rc = hx_run_store(NULL, NULL, &out, &err, "config", "check", (const char *)NULL);
    cr_expect_eq(rc, 0, "config check exit %d: %s", rc, err);
    cr_expect(access("herald.db", F_OK) != 0, "config check created ./herald.db");
    free(out);
    free(err);
    /* With a store named, a queue neither configured nor in that store is an error. */
    hx_cli_mkq("other");
    char *e = FAIL(1, NULL, "config", "check", "herald.jsonc");
    cr_expect(strstr(e, "elsewhere"), "error does not name the missing queue: %s", e);
    cr_expect(strstr(e, "herald.jsonc:2:"), "error does not name the route's line: %s", e);
    free(e);
}

Test(cli, trace_of_an_unknown_correlation_id_is_empty_not_an_error)
{
    hx_cli_mkq("orders");
    json_t *t = JSON(NULL, "trace", "no-such-id", "--json");
    cr_expect(json_is_array(t) && json_array_size(t) == 0, "trace --json is not []");
    json_decref(t);
    char *text = OK(NULL, "trace", "no-such-id");
    cr_expect_eq(text[0], '\0', "trace printed [%s] for nothing", text);
    free(text);
}
