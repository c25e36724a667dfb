// SPDX-License-Identifier: MIT
/*
 * test_cli.c - drives the `herald` binary exactly as a user does and checks the contract of
 * tests/e2e/CLI_CONTRACT.md: queue management, send / send-batch / pull / ack / retry / peek,
 * --json shapes (parsed with jansson), --help everywhere, exit codes 0/1/2, and bad input that
 * must fail with exit 1, a "herald: " message on stderr naming the problem and NOTHING changed
 * (checked by comparing `queues stats --json` / `queues list --json` before and after).
 * Every test owns a temp dir (also its cwd, so a stray default store lands there) and passes
 * `--store sqlite:TMPDIR/h.db` on every call.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <sqlite3.h>

#include <ctype.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "support.h"

#define MAX_ARGS 64

static char *g_dir; /* the test's temp dir (also cwd) */
static char *g_url; /* "sqlite:DIR/h.db" */
static char *g_db;  /* "DIR/h.db" */

static void setup(void)
{
    g_dir = hx_tmpdir();
    size_t n = strlen(g_dir) + 32;
    g_url = malloc(n);
    g_db = malloc(n);
    cr_assert(g_url && g_db);
    snprintf(g_url, n, "sqlite:%s/h.db", g_dir);
    snprintf(g_db, n, "%s/h.db", g_dir);
    cr_assert_eq(chdir(g_dir), 0);
}

static void teardown(void)
{
    if (chdir("/") != 0) {
        /* nothing useful to do; the dir is removed by absolute path anyway */
    }
    hx_rmrf(g_dir);
    free(g_dir);
    free(g_url);
    free(g_db);
}

/* ------------------------------------------------------------------------------------------- *
 * Running the CLI
 * ------------------------------------------------------------------------------------------- */

/* Runs herald with `--store URL` (when url != NULL) followed by the NULL-terminated args. */
static int vrun(const char *url, const char *in, char **out, char **err, va_list ap)
{
    const char *argv[MAX_ARGS + 3];
    size_t n = 0;
    if (url) {
        argv[n++] = "--store";
        argv[n++] = url;
    }
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL) {
        cr_assert(n < MAX_ARGS, "too many args");
        argv[n++] = a;
    }
    argv[n] = NULL;
    return hx_cli(argv, in, out, err);
}

/* Full control: returns the exit code, stdout and stderr (callers free). */
static int run_store(const char *url, const char *in, char **out, char **err, ...)
{
    va_list ap;
    va_start(ap, err);
    int rc = vrun(url, in, out, err, ap);
    va_end(ap);
    return rc;
}
#define RUN(in, out, err, ...) run_store(g_url, in, out, err, __VA_ARGS__, (const char *)NULL)
#define RUN_AT(url, in, out, err, ...) run_store(url, in, out, err, __VA_ARGS__, (const char *)NULL)

/* Runs, asserts exit 0, returns stdout (caller frees). */
static char *ok_(const char *in, ...)
{
    va_list ap;
    va_start(ap, in);
    char *out = NULL, *err = NULL;
    int rc = vrun(g_url, in, &out, &err, ap);
    va_end(ap);
    cr_assert_eq(rc, 0, "expected exit 0, got %d; stderr: %s; stdout: %s", rc, err, out);
    free(err);
    return out;
}
#define OK(in, ...) ok_(in, __VA_ARGS__, (const char *)NULL)
#define OKV(in, ...) free(ok_(in, __VA_ARGS__, (const char *)NULL))

static json_t *parse_json(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    cr_assert_not_null(j, "stdout is not one JSON value (%s at line %d col %d): [%s]", je.text,
                       je.line, je.column, text);
    return j;
}

/* Runs, asserts exit 0, parses stdout as exactly one JSON object/array. */
static json_t *json_(const char *in, ...)
{
    va_list ap;
    va_start(ap, in);
    char *out = NULL, *err = NULL;
    int rc = vrun(g_url, in, &out, &err, ap);
    va_end(ap);
    cr_assert_eq(rc, 0, "expected exit 0, got %d; stderr: %s; stdout: %s", rc, err, out);
    json_t *j = parse_json(out);
    free(out);
    free(err);
    return j;
}
#define JSON(in, ...) json_(in, __VA_ARGS__, (const char *)NULL)

/* Case-insensitive substring test. */
static bool has_ci(const char *hay, const char *needle)
{
    if (!hay)
        return false;
    size_t n = strlen(needle);
    for (const char *p = hay; *p; p++) {
        size_t i = 0;
        while (i < n && p[i] && tolower((unsigned char)p[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n)
            return true;
    }
    return n == 0;
}

/* Runs, asserts exit `want`; for exit 1 also asserts the "herald: " prefix. Returns stderr. */
static char *fail_(int want, const char *in, ...)
{
    va_list ap;
    va_start(ap, in);
    char *out = NULL, *err = NULL;
    int rc = vrun(g_url, in, &out, &err, ap);
    va_end(ap);
    cr_assert_eq(rc, want, "expected exit %d, got %d; stderr: %s; stdout: %s", want, rc, err, out);
    cr_assert(err && strlen(err) > 0, "expected a message on stderr");
    if (want == 1)
        cr_assert(strncmp(err, "herald: ", 8) == 0, "stderr must start with 'herald: ': [%s]",
                  err);
    free(out);
    return err;
}
#define FAIL(want, in, ...) fail_(want, in, __VA_ARGS__, (const char *)NULL)

/* ------------------------------------------------------------------------------------------- *
 * Small helpers
 * ------------------------------------------------------------------------------------------- */

static void mkq(const char *name)
{
    OKV(NULL, "queues", "create", name);
}

static json_t *stats(const char *q)
{
    return JSON(NULL, "queues", "stats", q, "--json");
}

static json_int_t stat_of(const char *q, const char *key)
{
    json_t *s = stats(q);
    json_t *v = json_object_get(s, key);
    cr_assert(json_is_integer(v), "stats key %s missing or not an integer", key);
    json_int_t r = json_integer_value(v);
    json_decref(s);
    return r;
}

/* Asserts the stats of q equal a snapshot taken earlier (nothing changed). */
static void assert_stats_unchanged(const char *q, json_t *before)
{
    json_t *after = stats(q);
    char *a = json_dumps(before, JSON_SORT_KEYS), *b = json_dumps(after, JSON_SORT_KEYS);
    cr_assert(json_equal(before, after), "stats changed:\n before %s\n after  %s", a, b);
    free(a);
    free(b);
    json_decref(after);
}

static void assert_list_unchanged(json_t *before)
{
    json_t *after = JSON(NULL, "queues", "list", "--json");
    char *a = json_dumps(before, JSON_SORT_KEYS), *b = json_dumps(after, JSON_SORT_KEYS);
    cr_assert(json_equal(before, after), "queue list changed:\n before %s\n after  %s", a, b);
    free(a);
    free(b);
    json_decref(after);
}

static bool is_uuid(const char *s)
{
    if (!s || strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
        } else if (!isxdigit((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

static bool is_iso8601(const char *s)
{
    /* YYYY-MM-DDTHH:MM:SS... */
    if (!s || strlen(s) < 19)
        return false;
    for (int i = 0; i < 19; i++) {
        char c = s[i];
        bool ok;
        if (i == 4 || i == 7)
            ok = c == '-';
        else if (i == 10)
            ok = c == 'T';
        else if (i == 13 || i == 16)
            ok = c == ':';
        else
            ok = isdigit((unsigned char)c);
        if (!ok)
            return false;
    }
    return true;
}

static const char *str_of(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    cr_assert(json_is_string(v), "key %s missing or not a string", key);
    return json_string_value(v);
}

static json_int_t int_of(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    cr_assert(json_is_integer(v), "key %s missing or not an integer", key);
    return json_integer_value(v);
}

static bool bool_of(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    cr_assert(json_is_boolean(v), "key %s missing or not a boolean", key);
    return json_is_true(v);
}

/* RFC 4648 base64 decode (standard alphabet, padding optional). Returns malloc'd NUL-terminated
 * bytes and their length, or NULL on a malformed input. */
static char *b64_decode(const char *in, size_t *len_out)
{
    size_t n = strlen(in);
    char *out = malloc(n / 4 * 3 + 4);
    cr_assert(out);
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        int v;
        if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= 'a' && c <= 'z')
            v = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
            v = c - '0' + 52;
        else if (c == '+')
            v = 62;
        else if (c == '/')
            v = 63;
        else if (c == '=')
            break;
        else {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    out[o] = 0;
    if (len_out)
        *len_out = o;
    return out;
}

/* The body of a pulled/peeked message as the sender gave it: base64-decoded for json/bytes,
 * plain for text (per the contract). Caller frees. */
static char *body_of(json_t *m)
{
    const char *ct = str_of(json_object_get(m, "metadata"), "CF-Content-Type");
    const char *b = str_of(m, "body");
    if (strcmp(ct, "text") == 0)
        return strdup(b);
    char *d = b64_decode(b, NULL);
    cr_assert_not_null(d, "body of a %s message is not base64: [%s]", ct, b);
    return d;
}

/* Splits stdout in place into trimmed non-empty lines; returns the count. */
static size_t split_lines(char *text, char **lines, size_t max)
{
    size_t n = 0;
    char *l = text;
    while (l && *l) {
        char *nl = strchr(l, '\n');
        if (nl)
            *nl = 0;
        size_t k = strlen(l);
        while (k > 0 && (l[k - 1] == '\r' || l[k - 1] == ' '))
            l[--k] = 0;
        if (k > 0) {
            cr_assert(n < max, "too many lines");
            lines[n++] = l;
        }
        l = nl ? nl + 1 : NULL;
    }
    return n;
}

static char *repeat_char(char c, size_t n)
{
    char *p = malloc(n + 1);
    cr_assert(p);
    memset(p, c, n);
    p[n] = 0;
    return p;
}

/* A JSON string body of exactly `total` bytes: '"' + (total-2) * 'a' + '"'. */
static char *json_string_body(size_t total)
{
    char *p = repeat_char('a', total);
    p[0] = '"';
    p[total - 1] = '"';
    return p;
}

static json_t *find_by_id(json_t *arr, const char *id)
{
    size_t i;
    json_t *m;
    json_array_foreach(arr, i, m)
    {
        if (strcmp(str_of(m, "id"), id) == 0)
            return m;
    }
    return NULL;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    }
    closedir(d);
    return n;
}

static const char *const STATS_KEYS[] = {
    "backlog_count",  "backlog_bytes",       "oldest_message_timestamp_ms",
    "delayed_count",  "leased_count",        "visible_count",
    "sent_total",     "acked_total",         "retried_total",
    "dead_lettered_total", "deleted_total",  "expired_total",
};

/* ------------------------------------------------------------------------------------------- *
 * queues
 * ------------------------------------------------------------------------------------------- */

TestSuite(cli, .init = setup, .fini = teardown, .timeout = 60);

Test(cli, queues_create_json_prints_queue_object_with_defaults)
{
    json_t *q = JSON(NULL, "queues", "create", "orders", "--json");
    cr_assert(json_is_object(q));
    cr_assert(is_uuid(str_of(q, "queue_id")), "queue_id not a UUID: %s", str_of(q, "queue_id"));
    cr_assert_str_eq(str_of(q, "queue_name"), "orders");
    cr_assert(is_iso8601(str_of(q, "created_on")), "created_on: %s", str_of(q, "created_on"));
    cr_assert(is_iso8601(str_of(q, "modified_on")), "modified_on: %s", str_of(q, "modified_on"));
    json_t *s = json_object_get(q, "settings");
    cr_assert(json_is_object(s), "settings missing");
    cr_assert_eq(int_of(s, "delivery_delay"), 0);
    cr_assert_eq(bool_of(s, "delivery_paused"), false);
    cr_assert_eq(int_of(s, "message_retention_period"), 345600);
    cr_assert_eq(int_of(s, "max_message_bytes"), 128000);
    cr_assert_eq(int_of(s, "max_retries"), 3);
    cr_assert_eq(int_of(s, "retry_delay"), 0);
    cr_assert_str_eq(str_of(s, "dead_letter_queue"), "");

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
    cr_assert_eq(int_of(s, "max_retries"), 5);
    cr_assert_eq(int_of(s, "retry_delay"), 10);
    cr_assert_str_eq(str_of(s, "dead_letter_queue"), "orders-dlq");
    cr_assert_eq(int_of(s, "delivery_delay"), 2);
    cr_assert_eq(int_of(s, "max_message_bytes"), 1000);
    cr_assert_eq(int_of(s, "message_retention_period"), 120);
    json_decref(q);
}

Test(cli, queues_list_json_is_sorted_by_name)
{
    json_t *empty = JSON(NULL, "queues", "list", "--json");
    cr_assert(json_is_array(empty) && json_array_size(empty) == 0, "fresh store lists queues");
    json_decref(empty);

    mkq("bravo");
    mkq("alpha");
    mkq("charlie");
    json_t *l = JSON(NULL, "queues", "list", "--json");
    cr_assert(json_is_array(l));
    cr_assert_eq(json_array_size(l), 3);
    const char *want[] = { "alpha", "bravo", "charlie" };
    for (size_t i = 0; i < 3; i++) {
        json_t *q = json_array_get(l, i);
        cr_assert_str_eq(str_of(q, "queue_name"), want[i]);
        cr_assert(is_uuid(str_of(q, "queue_id")));
        cr_assert(json_is_object(json_object_get(q, "settings")));
    }
    /* queue ids are distinct */
    cr_assert_str_neq(str_of(json_array_get(l, 0), "queue_id"),
                      str_of(json_array_get(l, 1), "queue_id"));
    json_decref(l);
}

Test(cli, queues_update_changes_only_the_given_settings)
{
    json_t *before = JSON(NULL, "queues", "create", "orders", "--retry-delay", "4", "--json");
    OKV(NULL, "queues", "update", "orders", "--max-retries", "7", "--delivery-delay", "9");
    json_t *after = JSON(NULL, "queues", "get", "orders", "--json");
    cr_assert_str_eq(str_of(after, "queue_id"), str_of(before, "queue_id"));
    cr_assert_str_eq(str_of(after, "created_on"), str_of(before, "created_on"));
    json_t *s = json_object_get(after, "settings");
    cr_assert_eq(int_of(s, "max_retries"), 7);
    cr_assert_eq(int_of(s, "delivery_delay"), 9);
    cr_assert_eq(int_of(s, "retry_delay"), 4, "update must keep settings it was not given");
    cr_assert_eq(int_of(s, "message_retention_period"), 345600);
    cr_assert_eq(int_of(s, "max_message_bytes"), 128000);
    json_decref(before);
    json_decref(after);
}

Test(cli, queues_update_out_of_range_fails_and_changes_nothing)
{
    mkq("orders");
    json_t *before = JSON(NULL, "queues", "get", "orders", "--json");
    char *err = FAIL(1, NULL, "queues", "update", "orders", "--max-retries", "101");
    cr_assert(has_ci(err, "retries"), "stderr should name the setting: %s", err);
    free(err);
    json_t *after = JSON(NULL, "queues", "get", "orders", "--json");
    cr_assert(json_equal(before, after), "a failed update changed the queue");
    json_decref(before);
    json_decref(after);
}

Test(cli, queues_update_unknown_queue_fails)
{
    char *err = FAIL(1, NULL, "queues", "update", "nosuch", "--max-retries", "2");
    cr_assert(has_ci(err, "nosuch"), "stderr should name the queue: %s", err);
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
    char *longname = repeat_char('a', 64); /* HERALD_QUEUE_NAME_MAX is 63 */
    free(FAIL(1, NULL, "queues", "create", longname));
    free(longname);
    assert_list_unchanged(before);
    json_decref(before);
}

Test(cli, queues_delete_removes_the_queue_and_its_messages)
{
    mkq("orders");
    mkq("keep");
    OKV(NULL, "send", "orders", "{\"a\":1}");
    OKV(NULL, "queues", "delete", "orders");
    char *err = FAIL(1, NULL, "queues", "get", "orders");
    cr_assert(has_ci(err, "orders"), "stderr should name the queue: %s", err);
    free(err);
    json_t *l = JSON(NULL, "queues", "list", "--json");
    cr_assert_eq(json_array_size(l), 1);
    cr_assert_str_eq(str_of(json_array_get(l, 0), "queue_name"), "keep");
    json_decref(l);
    /* recreating gives an empty queue */
    mkq("orders");
    cr_assert_eq(stat_of("orders", "backlog_count"), 0);
}

Test(cli, queues_delete_unknown_queue_fails)
{
    mkq("keep");
    json_t *before = JSON(NULL, "queues", "list", "--json");
    free(FAIL(1, NULL, "queues", "delete", "nosuch"));
    assert_list_unchanged(before);
    json_decref(before);
}

Test(cli, queues_purge_deletes_every_message)
{
    mkq("orders");
    OKV(NULL, "send", "orders", "{\"a\":1}");
    OKV(NULL, "send", "orders", "{\"a\":2}");
    OKV(NULL, "send", "orders", "--delay", "3600", "{\"a\":3}"); /* delayed */
    json_t *p = JSON(NULL, "pull", "orders", "--batch", "1", "--json"); /* one leased */
    cr_assert_eq(json_array_size(p), 1);
    json_decref(p);
    cr_assert_eq(stat_of("orders", "backlog_count"), 3);
    OKV(NULL, "queues", "purge", "orders");
    json_t *s = stats("orders");
    cr_assert_eq(int_of(s, "backlog_count"), 0);
    cr_assert_eq(int_of(s, "backlog_bytes"), 0);
    cr_assert_eq(int_of(s, "visible_count"), 0);
    cr_assert_eq(int_of(s, "delayed_count"), 0);
    cr_assert_eq(int_of(s, "leased_count"), 0);
    cr_assert_eq(int_of(s, "oldest_message_timestamp_ms"), 0);
    json_decref(s);
    p = JSON(NULL, "pull", "orders", "--json");
    cr_assert_eq(json_array_size(p), 0);
    json_decref(p);
    /* the queue itself stays */
    json_decref(JSON(NULL, "queues", "get", "orders", "--json"));
}

Test(cli, queues_pause_stops_delivery_and_resume_restarts_it)
{
    mkq("orders");
    OKV(NULL, "queues", "pause", "orders");
    json_t *q = JSON(NULL, "queues", "get", "orders", "--json");
    cr_assert_eq(bool_of(json_object_get(q, "settings"), "delivery_paused"), true);
    json_decref(q);

    /* sends are still accepted while paused */
    OKV(NULL, "send", "orders", "{\"a\":1}");
    cr_assert_eq(stat_of("orders", "backlog_count"), 1);

    json_t *before = stats("orders");
    char *err = FAIL(1, NULL, "pull", "orders", "--json");
    cr_assert(has_ci(err, "paused"), "stderr should say paused: %s", err);
    free(err);
    assert_stats_unchanged("orders", before);
    json_decref(before);

    OKV(NULL, "queues", "resume", "orders");
    q = JSON(NULL, "queues", "get", "orders", "--json");
    cr_assert_eq(bool_of(json_object_get(q, "settings"), "delivery_paused"), false);
    json_decref(q);
    json_t *p = JSON(NULL, "pull", "orders", "--json");
    cr_assert_eq(json_array_size(p), 1);
    json_decref(p);
}

Test(cli, queues_stats_json_has_every_key_as_an_integer)
{
    mkq("orders");
    json_t *s = stats("orders");
    cr_assert(json_is_object(s));
    for (size_t i = 0; i < sizeof STATS_KEYS / sizeof *STATS_KEYS; i++) {
        json_t *v = json_object_get(s, STATS_KEYS[i]);
        cr_assert(json_is_integer(v), "stats key %s missing or not an integer", STATS_KEYS[i]);
        cr_assert_eq(json_integer_value(v), 0, "fresh queue: %s != 0", STATS_KEYS[i]);
    }
    json_decref(s);

    int64_t t0 = now_ms();
    OKV(NULL, "send", "orders", "{\"a\":1}"); /* 7 bytes */
    s = stats("orders");
    cr_assert_eq(int_of(s, "backlog_count"), 1);
    cr_assert_eq(int_of(s, "backlog_bytes"), 7);
    cr_assert_eq(int_of(s, "visible_count"), 1);
    cr_assert_eq(int_of(s, "delayed_count"), 0);
    cr_assert_eq(int_of(s, "leased_count"), 0);
    cr_assert_eq(int_of(s, "sent_total"), 1);
    json_int_t oldest = int_of(s, "oldest_message_timestamp_ms");
    cr_assert(oldest >= t0 - 5000 && oldest <= now_ms() + 5000,
              "oldest_message_timestamp_ms %lld is not the send time (~%lld)", (long long)oldest,
              (long long)t0);
    json_decref(s);
}

Test(cli, queues_stats_unknown_queue_fails)
{
    char *err = FAIL(1, NULL, "queues", "stats", "nosuch", "--json");
    cr_assert(has_ci(err, "nosuch"), "stderr should name the queue: %s", err);
    free(err);
}

/* ------------------------------------------------------------------------------------------- *
 * send / send-batch / pull / ack / retry / peek
 * ------------------------------------------------------------------------------------------- */

Test(cli, send_json_prints_an_id_and_pull_returns_the_body_base64)
{
    mkq("orders");
    char *out = OK(NULL, "send", "orders", "{\"a\":1}");
    char *lines[4];
    size_t n = split_lines(out, lines, 4);
    cr_assert_eq(n, 1, "send prints one line");
    cr_assert(is_uuid(lines[0]), "not a UUID: [%s]", lines[0]);
    char id[64];
    snprintf(id, sizeof id, "%s", lines[0]);
    free(out);

    json_t *j = JSON(NULL, "send", "orders", "--json", "[1,2,3]");
    cr_assert(is_uuid(str_of(j, "id")));
    cr_assert_str_neq(str_of(j, "id"), id);
    char id2[64];
    snprintf(id2, sizeof id2, "%s", str_of(j, "id"));
    json_decref(j);

    int64_t t0 = now_ms();
    json_t *p = JSON(NULL, "pull", "orders", "--batch", "10", "--json");
    cr_assert(json_is_array(p));
    cr_assert_eq(json_array_size(p), 2);
    json_t *m = find_by_id(p, id);
    cr_assert_not_null(m, "pulled messages lack id %s", id);
    cr_assert_str_eq(str_of(json_object_get(m, "metadata"), "CF-Content-Type"), "json");
    cr_assert_str_eq(str_of(m, "body"), "eyJhIjoxfQ==", "body must be base64 of {\"a\":1}");
    char *b = body_of(m);
    cr_assert_str_eq(b, "{\"a\":1}");
    free(b);
    cr_assert_eq(int_of(m, "attempts"), 1);
    json_int_t ts = int_of(m, "timestamp_ms");
    cr_assert(ts > t0 - 60000 && ts <= t0 + 1000, "timestamp_ms %lld", (long long)ts);
    cr_assert(strlen(str_of(m, "lease_id")) > 0, "lease_id empty");
    m = find_by_id(p, id2);
    cr_assert_not_null(m);
    b = body_of(m);
    cr_assert_str_eq(b, "[1,2,3]");
    free(b);
    cr_assert_str_neq(str_of(json_array_get(p, 0), "lease_id"),
                      str_of(json_array_get(p, 1), "lease_id"));
    json_decref(p);
}

Test(cli, send_text_content_type_is_pulled_as_plain_text)
{
    mkq("orders");
    json_t *j = JSON(NULL, "send", "orders", "--content-type", "text", "--json",
                     "hello, world: not json");
    char id[64];
    snprintf(id, sizeof id, "%s", str_of(j, "id"));
    json_decref(j);
    json_t *p = JSON(NULL, "pull", "orders", "--json");
    cr_assert_eq(json_array_size(p), 1);
    json_t *m = json_array_get(p, 0);
    cr_assert_str_eq(str_of(m, "id"), id);
    cr_assert_str_eq(str_of(json_object_get(m, "metadata"), "CF-Content-Type"), "text");
    cr_assert_str_eq(str_of(m, "body"), "hello, world: not json");
    json_decref(p);
}

Test(cli, send_bytes_content_type_is_pulled_base64)
{
    mkq("orders");
    OKV(NULL, "send", "orders", "--content-type", "bytes", "abc");
    json_t *p = JSON(NULL, "pull", "orders", "--json");
    cr_assert_eq(json_array_size(p), 1);
    json_t *m = json_array_get(p, 0);
    cr_assert_str_eq(str_of(json_object_get(m, "metadata"), "CF-Content-Type"), "bytes");
    cr_assert_str_eq(str_of(m, "body"), "YWJj");
    json_decref(p);
}

Test(cli, send_body_dash_reads_stdin)
{
    mkq("orders");
    const char *body = "{\"from\":\"stdin\",\"n\":[1,2,3]}";
    char *out = OK(body, "send", "orders", "-");
    char *lines[4];
    cr_assert_eq(split_lines(out, lines, 4), 1);
    cr_assert(is_uuid(lines[0]));
    free(out);
    json_t *p = JSON(NULL, "pull", "orders", "--json");
    cr_assert_eq(json_array_size(p), 1);
    char *b = body_of(json_array_get(p, 0));
    cr_assert_str_eq(b, body);
    free(b);
    json_decref(p);
    cr_assert_eq(stat_of("orders", "backlog_bytes"), (json_int_t)strlen(body));
}

Test(cli, send_text_from_stdin_keeps_the_body)
{
    mkq("orders");
    OKV("plain text from stdin", "send", "orders", "--content-type", "text", "-");
    json_t *p = JSON(NULL, "pull", "orders", "--json");
    cr_assert_eq(json_array_size(p), 1);
    cr_assert_str_eq(str_of(json_array_get(p, 0), "body"), "plain text from stdin");
    json_decref(p);
}

Test(cli, send_batch_prints_ids_in_order_pull_returns_them_and_ack_empties_the_queue)
{
    mkq("orders");
    const char *bodies[3] = { "{\"n\":1}", "{\"n\":2}", "{\"n\":3}" };
    char *out = OK("{\"n\":1}\n{\"n\":2}\n\n{\"n\":3}\n", "send-batch", "orders");
    char *lines[8];
    size_t n = split_lines(out, lines, 8);
    cr_assert_eq(n, 3, "send-batch of 3 lines (plus one empty) prints 3 ids, got %zu", n);
    char ids[3][64];
    for (size_t i = 0; i < 3; i++) {
        cr_assert(is_uuid(lines[i]), "line %zu not a UUID: [%s]", i + 1, lines[i]);
        snprintf(ids[i], sizeof ids[i], "%s", lines[i]);
    }
    free(out);
    cr_assert_str_neq(ids[0], ids[1]);
    cr_assert_str_neq(ids[1], ids[2]);
    cr_assert_str_neq(ids[0], ids[2]);
    cr_assert_eq(stat_of("orders", "backlog_count"), 3);

    /* ids are printed in input order: peek (delivery order) lists the bodies in that order */
    json_t *pk = JSON(NULL, "peek", "orders", "--batch", "10", "--json");
    cr_assert_eq(json_array_size(pk), 3);
    for (size_t i = 0; i < 3; i++) {
        json_t *m = find_by_id(pk, ids[i]);
        cr_assert_not_null(m, "peek lacks id %s", ids[i]);
        char *b = body_of(m);
        cr_assert_str_eq(b, bodies[i], "id on line %zu belongs to body %s, not %s", i + 1, b,
                         bodies[i]);
        free(b);
    }
    json_decref(pk);

    json_t *p = JSON(NULL, "pull", "orders", "--batch", "10", "--json");
    cr_assert_eq(json_array_size(p), 3);
    const char *leases[3];
    for (size_t i = 0; i < 3; i++) {
        json_t *m = find_by_id(p, ids[i]);
        cr_assert_not_null(m, "pull lacks id %s", ids[i]);
        char *b = body_of(m);
        cr_assert_str_eq(b, bodies[i]);
        free(b);
        cr_assert_eq(int_of(m, "attempts"), 1);
        leases[i] = str_of(m, "lease_id");
    }
    cr_assert_eq(stat_of("orders", "leased_count"), 3);

    out = OK(NULL, "ack", "orders", leases[0], leases[1], leases[2]);
    cr_assert(strstr(out, "acked 3") != NULL, "ack output: [%s]", out);
    free(out);
    json_decref(p);

    json_t *s = stats("orders");
    cr_assert_eq(int_of(s, "backlog_count"), 0);
    cr_assert_eq(int_of(s, "leased_count"), 0);
    cr_assert_eq(int_of(s, "acked_total"), 3);
    cr_assert_eq(int_of(s, "sent_total"), 3);
    json_decref(s);
}

Test(cli, ack_json_reports_ack_count_and_missing)
{
    mkq("orders");
    OKV(NULL, "send", "orders", "{\"a\":1}");
    json_t *p = JSON(NULL, "pull", "orders", "--json");
    cr_assert_eq(json_array_size(p), 1);
    const char *lease = str_of(json_array_get(p, 0), "lease_id");
    json_t *a = JSON(NULL, "ack", "orders", lease, "--json");
    cr_assert_eq(int_of(a, "ackCount"), 1);
    cr_assert_eq(int_of(a, "missing"), 0);
    json_decref(a);
    /* acking the same (well-formed) lease again: nothing to ack, reported missing */
    a = JSON(NULL, "ack", "orders", lease, "--json");
    cr_assert_eq(int_of(a, "ackCount"), 0);
    cr_assert_eq(int_of(a, "missing"), 1);
    json_decref(a);
    json_decref(p);
    cr_assert_eq(stat_of("orders", "acked_total"), 1);
}

Test(cli, pull_plain_output_has_lease_id_id_attempts_and_body)
{
    mkq("orders");
    char *out = OK(NULL, "send", "orders", "--content-type", "text", "hi there");
    char id[64];
    char *lines[4];
    cr_assert_eq(split_lines(out, lines, 4), 1);
    snprintf(id, sizeof id, "%s", lines[0]);
    free(out);
    out = OK(NULL, "pull", "orders");
    cr_assert_eq(split_lines(out, lines, 4), 1, "one line per message");
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
    cr_assert_eq(stat_of("orders", "backlog_count"), 0);
}

Test(cli, pull_respects_batch_and_leased_messages_are_not_pulled_again)
{
    mkq("orders");
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
        cr_assert_null(find_by_id(p1, str_of(json_array_get(p2, i), "id")),
                       "a leased message was delivered twice");
    json_t *p3 = JSON(NULL, "pull", "orders", "--json");
    cr_assert_eq(json_array_size(p3), 0);
    cr_assert_eq(stat_of("orders", "leased_count"), 5);
    json_decref(p1);
    json_decref(p2);
    json_decref(p3);
}

Test(cli, retry_with_delay_hides_the_message_until_then)
{
    mkq("orders");
    OKV(NULL, "send", "orders", "{\"a\":1}");
    json_t *p = JSON(NULL, "pull", "orders", "--json");
    cr_assert_eq(json_array_size(p), 1);
    const char *lease = str_of(json_array_get(p, 0), "lease_id");
    int64_t t0 = now_ms();
    json_t *r = JSON(NULL, "retry", "orders", lease, "--delay", "3600", "--json");
    cr_assert_eq(int_of(r, "retryCount"), 1);
    cr_assert_eq(int_of(r, "deadCount"), 0);
    cr_assert_eq(int_of(r, "stale"), 0);
    json_decref(r);
    json_decref(p);

    json_t *s = stats("orders");
    cr_assert_eq(int_of(s, "backlog_count"), 1);
    cr_assert_eq(int_of(s, "delayed_count"), 1);
    cr_assert_eq(int_of(s, "visible_count"), 0);
    cr_assert_eq(int_of(s, "leased_count"), 0);
    cr_assert_eq(int_of(s, "retried_total"), 1);
    json_decref(s);

    p = JSON(NULL, "pull", "orders", "--json");
    cr_assert_eq(json_array_size(p), 0, "a message retried with --delay 3600 was delivered");
    json_decref(p);

    json_t *pk = JSON(NULL, "peek", "orders", "--json");
    cr_assert_eq(json_array_size(pk), 1);
    json_int_t vis = int_of(json_array_get(pk, 0), "visible_at_ms");
    cr_assert(vis >= t0 + 3590 * 1000LL && vis <= now_ms() + 3610 * 1000LL,
              "visible_at_ms %lld is not ~1 h from now (%lld)", (long long)vis, (long long)t0);
    json_decref(pk);
}

Test(cli, retry_without_delay_redelivers_with_attempts_2)
{
    mkq("orders");
    char *out = OK(NULL, "send", "orders", "{\"a\":1}");
    char *lines[2];
    cr_assert_eq(split_lines(out, lines, 2), 1);
    char id[64];
    snprintf(id, sizeof id, "%s", lines[0]);
    free(out);
    json_t *p = JSON(NULL, "pull", "orders", "--json");
    cr_assert_eq(json_array_size(p), 1);
    out = OK(NULL, "retry", "orders", str_of(json_array_get(p, 0), "lease_id"));
    cr_assert(strstr(out, "retried 1") != NULL, "retry output: [%s]", out);
    free(out);
    json_decref(p);
    p = JSON(NULL, "pull", "orders", "--json");
    cr_assert_eq(json_array_size(p), 1);
    cr_assert_str_eq(str_of(json_array_get(p, 0), "id"), id, "id must be stable across retries");
    cr_assert_eq(int_of(json_array_get(p, 0), "attempts"), 2);
    json_decref(p);
}

Test(cli, retry_past_max_retries_dead_letters_and_peek_shows_history)
{
    OKV(NULL, "queues", "create", "orders", "--max-retries", "0", "--dead-letter-queue", "dlq");
    char *out = OK(NULL, "send", "orders", "{\"a\":1}");
    char *lines[2];
    cr_assert_eq(split_lines(out, lines, 2), 1);
    char id[64];
    snprintf(id, sizeof id, "%s", lines[0]);
    free(out);
    json_t *p = JSON(NULL, "pull", "orders", "--json");
    cr_assert_eq(json_array_size(p), 1);
    json_t *r = JSON(NULL, "retry", "orders", str_of(json_array_get(p, 0), "lease_id"), "--json");
    cr_assert_eq(int_of(r, "deadCount"), 1);
    cr_assert_eq(int_of(r, "retryCount"), 0);
    json_decref(r);
    json_decref(p);
    cr_assert_eq(stat_of("orders", "backlog_count"), 0);
    cr_assert_eq(stat_of("orders", "dead_lettered_total"), 1);

    json_t *pk = JSON(NULL, "peek", "dlq", "--json");
    cr_assert_eq(json_array_size(pk), 1);
    json_t *m = json_array_get(pk, 0);
    cr_assert_str_eq(str_of(m, "id"), id);
    cr_assert_str_eq(str_of(m, "dead_from_queue"), "orders");
    cr_assert_eq(int_of(m, "dead_attempts"), 1);
    cr_assert(json_is_string(json_object_get(m, "last_error")),
              "CLI_CONTRACT: peek of a dead letter has \"last_error\" (\"\" when none)");
    char *b = body_of(m);
    cr_assert_str_eq(b, "{\"a\":1}");
    free(b);
    json_decref(pk);
}

Test(cli, peek_does_not_lease)
{
    mkq("orders");
    OKV(NULL, "send", "orders", "{\"a\":1}");
    OKV(NULL, "send", "orders", "--content-type", "text", "two");
    json_t *pk1 = JSON(NULL, "peek", "orders", "--json");
    cr_assert(json_is_array(pk1));
    cr_assert_eq(json_array_size(pk1), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *m = json_array_get(pk1, i);
        cr_assert(is_uuid(str_of(m, "id")));
        cr_assert(json_is_string(json_object_get(m, "body")));
        cr_assert(json_is_integer(json_object_get(m, "attempts")));
        cr_assert(json_is_integer(json_object_get(m, "timestamp_ms")));
        cr_assert(json_is_integer(json_object_get(m, "visible_at_ms")));
        cr_assert(json_is_object(json_object_get(m, "metadata")));
        cr_assert_null(json_object_get(m, "lease_id"), "peek output must have no lease_id");
    }
    /* delivery order: the first sent comes first */
    char *b = body_of(json_array_get(pk1, 0));
    cr_assert_str_eq(b, "{\"a\":1}");
    free(b);
    cr_assert_str_eq(str_of(json_array_get(pk1, 1), "body"), "two");

    json_t *s = stats("orders");
    cr_assert_eq(int_of(s, "leased_count"), 0);
    cr_assert_eq(int_of(s, "visible_count"), 2);
    json_decref(s);

    json_t *pk2 = JSON(NULL, "peek", "orders", "--json");
    cr_assert(json_equal(pk1, pk2), "peeking twice changed the messages");
    json_decref(pk2);

    json_t *p = JSON(NULL, "pull", "orders", "--batch", "10", "--json");
    cr_assert_eq(json_array_size(p), 2, "peeked messages must stay available");
    for (size_t i = 0; i < 2; i++)
        cr_assert_eq(int_of(json_array_get(p, i), "attempts"), 1);
    json_decref(p);
    json_decref(pk1);
}

Test(cli, delay_at_the_limit_is_accepted_and_delayed)
{
    mkq("orders");
    OKV(NULL, "send", "orders", "--delay", "31536000", "{\"a\":1}");
    json_t *s = stats("orders");
    cr_assert_eq(int_of(s, "delayed_count"), 1);
    cr_assert_eq(int_of(s, "visible_count"), 0);
    json_decref(s);
}

Test(cli, send_batch_with_delay_delays_every_message)
{
    mkq("orders");
    OKV("{\"a\":1}\n{\"a\":2}\n", "send-batch", "orders", "--delay", "60");
    json_t *s = stats("orders");
    cr_assert_eq(int_of(s, "delayed_count"), 2);
    cr_assert_eq(int_of(s, "visible_count"), 0);
    json_decref(s);
}

Test(cli, message_of_exactly_128000_bytes_is_accepted)
{
    mkq("orders");
    char *body = json_string_body(128000);
    OKV(body, "send", "orders", "-");
    free(body);
    cr_assert_eq(stat_of("orders", "backlog_bytes"), 128000);
}

Test(cli, global_options_are_accepted_anywhere)
{
    mkq("orders");
    char *out = NULL, *err = NULL;
    int rc = run_store(NULL, NULL, &out, &err, "queues", "get", "orders", "--json", "--store",
                       g_url, (const char *)NULL);
    cr_assert_eq(rc, 0, "stderr: %s", err);
    json_t *a = parse_json(out);
    free(out);
    free(err);
    rc = run_store(NULL, NULL, &out, &err, "--json", "queues", "--store", g_url, "get", "orders",
                   (const char *)NULL);
    cr_assert_eq(rc, 0, "stderr: %s", err);
    json_t *b = parse_json(out);
    cr_assert(json_equal(a, b));
    free(out);
    free(err);
    json_decref(a);
    json_decref(b);
}

Test(cli, herald_store_env_is_the_default_store)
{
    cr_assert_eq(setenv("HERALD_STORE", g_url, 1), 0);
    char *out = NULL, *err = NULL;
    int rc = run_store(NULL, NULL, &out, &err, "queues", "create", "viaenv", (const char *)NULL);
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
 * --help and usage errors (exit 2)
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
    };
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
        const char *argv[8] = { "--store", g_url };
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
    mkq("orders");
    json_t *list = JSON(NULL, "queues", "list", "--json");
    json_t *before = stats("orders");
    free(FAIL(2, NULL, "queues", "create", "other", "--bogus"));
    free(FAIL(2, NULL, "send", "orders", "--bogus", "{}"));
    free(FAIL(2, NULL, "send-batch", "orders", "--no-such-option"));
    free(FAIL(2, NULL, "pull", "orders", "--frob", "--json"));
    free(FAIL(2, NULL, "queues", "list", "--bogus"));
    assert_list_unchanged(list);
    assert_stats_unchanged("orders", before);
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
        const char *argv[8] = { "--store", g_url };
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
    mkq("orders");
    json_t *before = stats("orders");
    free(FAIL(2, NULL, "send", "orders"));
    free(FAIL(2, NULL, "ack", "orders"));
    free(FAIL(2, NULL, "retry", "orders"));
    assert_stats_unchanged("orders", before);
    json_decref(before);
}

/* ------------------------------------------------------------------------------------------- *
 * Bad input: exit 1, a clear message, nothing changed
 * ------------------------------------------------------------------------------------------- */

Test(cli, oversized_message_fails_and_sends_nothing)
{
    mkq("orders");
    json_t *before = stats("orders");
    char *body = json_string_body(128001);
    char *err = FAIL(1, body, "send", "orders", "-");
    free(body);
    cr_assert(has_ci(err, "128000") || has_ci(err, "128,000") || has_ci(err, "too large") ||
                  has_ci(err, "too big"),
              "stderr should name the size limit: %s", err);
    free(err);
    assert_stats_unchanged("orders", before);
    json_decref(before);
}

Test(cli, oversized_message_for_the_queue_limit_fails)
{
    OKV(NULL, "queues", "create", "orders", "--max-message-bytes", "10");
    json_t *before = stats("orders");
    free(FAIL(1, NULL, "send", "orders", "\"0123456789\"")); /* 12 bytes */
    assert_stats_unchanged("orders", before);
    json_decref(before);
    OKV(NULL, "send", "orders", "\"01234567\""); /* 10 bytes: ok */
}

Test(cli, send_batch_of_101_lines_fails_and_sends_nothing)
{
    mkq("orders");
    json_t *before = stats("orders");
    char in[101 * 16 + 1] = "";
    size_t off = 0;
    for (int i = 0; i < 101; i++)
        off += (size_t)snprintf(in + off, sizeof in - off, "{\"i\":%d}\n", i);
    char *err = FAIL(1, in, "send-batch", "orders");
    cr_assert(has_ci(err, "100") || has_ci(err, "101"), "stderr should name the limit: %s", err);
    free(err);
    assert_stats_unchanged("orders", before);
    json_decref(before);
}

Test(cli, send_batch_of_100_lines_is_accepted)
{
    mkq("orders");
    char in[100 * 16 + 1] = "";
    size_t off = 0;
    for (int i = 0; i < 100; i++)
        off += (size_t)snprintf(in + off, sizeof in - off, "{\"i\":%d}\n", i);
    char *out = OK(in, "send-batch", "orders");
    char *lines[128];
    cr_assert_eq(split_lines(out, lines, 128), 100);
    free(out);
    cr_assert_eq(stat_of("orders", "backlog_count"), 100);
}

Test(cli, send_batch_with_a_bad_line_names_it_and_sends_nothing)
{
    mkq("orders");
    json_t *before = stats("orders");
    char *err = FAIL(1, "{\"a\":1}\nthis is not json\n{\"c\":3}\n", "send-batch", "orders");
    cr_assert(has_ci(err, "line 2"), "stderr should name line 2: %s", err);
    free(err);
    assert_stats_unchanged("orders", before);
    json_decref(before);
}

Test(cli, send_batch_over_256000_bytes_fails_and_sends_nothing)
{
    mkq("orders");
    json_t *before = stats("orders");
    /* three lines of 100,000 bytes: each under the message limit, 300,000 in total */
    size_t line = 100000;
    char *in = malloc(3 * (line + 1) + 1);
    cr_assert(in);
    size_t off = 0;
    for (int i = 0; i < 3; i++) {
        char *b = json_string_body(line);
        memcpy(in + off, b, line);
        free(b);
        off += line;
        in[off++] = '\n';
    }
    in[off] = 0;
    char *err = FAIL(1, in, "send-batch", "orders");
    free(in);
    free(err);
    assert_stats_unchanged("orders", before);
    json_decref(before);
}

Test(cli, bad_content_type_fails_and_sends_nothing)
{
    mkq("orders");
    json_t *before = stats("orders");
    char *err = FAIL(1, NULL, "send", "orders", "--content-type", "xml", "{}");
    cr_assert(has_ci(err, "xml") || has_ci(err, "content type") || has_ci(err, "content-type"),
              "stderr should name the content type: %s", err);
    free(err);
    assert_stats_unchanged("orders", before);
    json_decref(before);
}

Test(cli, non_json_body_with_json_type_fails_and_sends_nothing)
{
    mkq("orders");
    json_t *before = stats("orders");
    char *err = FAIL(1, NULL, "send", "orders", "hello world");
    cr_assert(has_ci(err, "json"), "stderr should say the body is not JSON: %s", err);
    free(err);
    err = FAIL(1, "{\"a\":", "send", "orders", "--content-type", "json", "-");
    cr_assert(has_ci(err, "json"), "stderr should say the body is not JSON: %s", err);
    free(err);
    assert_stats_unchanged("orders", before);
    json_decref(before);
}

Test(cli, delay_over_365_days_fails_and_sends_nothing)
{
    mkq("orders");
    json_t *before = stats("orders");
    char *err = FAIL(1, NULL, "send", "orders", "--delay", "31536001", "{}");
    cr_assert(has_ci(err, "delay"), "stderr should name the delay: %s", err);
    free(err);
    err = FAIL(1, "{}\n", "send-batch", "orders", "--delay", "31536001");
    cr_assert(has_ci(err, "delay"), "stderr should name the delay: %s", err);
    free(err);
    assert_stats_unchanged("orders", before);
    json_decref(before);
}

Test(cli, unknown_queue_fails_and_creates_nothing)
{
    mkq("orders");
    json_t *list = JSON(NULL, "queues", "list", "--json");
    char *err = FAIL(1, NULL, "send", "nosuch", "{}");
    cr_assert(has_ci(err, "nosuch"), "stderr should name the queue: %s", err);
    free(err);
    err = FAIL(1, "{}\n", "send-batch", "nosuch");
    cr_assert(has_ci(err, "nosuch"), "stderr should name the queue: %s", err);
    free(err);
    err = FAIL(1, NULL, "pull", "nosuch", "--json");
    cr_assert(has_ci(err, "nosuch"), "stderr should name the queue: %s", err);
    free(err);
    err = FAIL(1, NULL, "peek", "nosuch", "--json");
    free(err);
    assert_list_unchanged(list);
    json_decref(list);
}

Test(cli, duplicate_queue_create_fails_and_keeps_the_original)
{
    json_t *orig = JSON(NULL, "queues", "create", "orders", "--json");
    char *err = FAIL(1, NULL, "queues", "create", "orders", "--max-retries", "9");
    cr_assert(has_ci(err, "orders") || has_ci(err, "exists"),
              "stderr should say the queue exists: %s", err);
    free(err);
    json_t *now = JSON(NULL, "queues", "get", "orders", "--json");
    cr_assert(json_equal(orig, now), "a failed create changed the existing queue");
    json_decref(orig);
    json_decref(now);
}

Test(cli, malformed_lease_id_fails_and_acks_nothing)
{
    mkq("orders");
    OKV(NULL, "send", "orders", "{\"a\":1}");
    json_t *p = JSON(NULL, "pull", "orders", "--json");
    cr_assert_eq(json_array_size(p), 1);
    const char *good = str_of(json_array_get(p, 0), "lease_id");
    json_t *before = stats("orders");
    char *err = FAIL(1, NULL, "ack", "orders", "not-a-lease");
    cr_assert(has_ci(err, "lease"), "stderr should name the lease id: %s", err);
    free(err);
    /* a bad id among good ones: nothing is changed */
    err = FAIL(1, NULL, "ack", "orders", good, "not-a-lease");
    free(err);
    err = FAIL(1, NULL, "retry", "orders", good, "not-a-lease");
    free(err);
    assert_stats_unchanged("orders", before);
    json_decref(before);
    cr_assert_eq(stat_of("orders", "leased_count"), 1);
    /* and the good lease still works afterwards */
    char *out = OK(NULL, "ack", "orders", good);
    cr_assert(strstr(out, "acked 1") != NULL, "ack output: [%s]", out);
    free(out);
    json_decref(p);
}

Test(cli, pull_on_a_paused_queue_says_paused)
{
    mkq("orders");
    OKV(NULL, "send", "orders", "{}");
    OKV(NULL, "queues", "pause", "orders");
    json_t *before = stats("orders");
    char *err = FAIL(1, NULL, "pull", "orders");
    cr_assert(has_ci(err, "paused"), "stderr should mention paused: %s", err);
    free(err);
    assert_stats_unchanged("orders", before);
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
    cr_assert_eq(dir_entries(g_dir), 0, "a malformed URL created a file in the cwd");
}

Test(cli, unwritable_store_path_fails)
{
    char *out = NULL, *err = NULL;
    int rc = RUN_AT("sqlite:/nonexistent-dir/h.db", NULL, &out, &err, "queues", "create",
                    "orders");
    cr_assert_eq(rc, 1, "exit %d; stderr: %s", rc, err);
    cr_assert(strncmp(err, "herald: ", 8) == 0, "stderr: [%s]", err);
    cr_assert(has_ci(err, "nonexistent-dir") || has_ci(err, "writable") ||
                  has_ci(err, "read-only") || has_ci(err, "no such"),
              "stderr should say what is wrong with the path: %s", err);
    free(out);
    free(err);
    cr_assert_eq(access("/nonexistent-dir", F_OK), -1);
}

Test(cli, a_file_that_is_not_a_database_is_refused_and_left_alone)
{
    FILE *f = fopen(g_db, "wb");
    cr_assert_not_null(f);
    for (int i = 0; i < 200; i++)
        fputs("this is a text file, certainly not a Herald database\n", f);
    fclose(f);
    size_t len0 = 0;
    char *before = hx_read_file(g_db, &len0);
    char *err = FAIL(1, NULL, "queues", "list");
    cr_assert(strstr(err, "not a Herald database") != NULL, "stderr: %s", err);
    free(err);
    err = FAIL(1, NULL, "queues", "create", "orders");
    cr_assert(strstr(err, "not a Herald database") != NULL, "stderr: %s", err);
    free(err);
    size_t len1 = 0;
    char *after = hx_read_file(g_db, &len1);
    cr_assert(len0 == len1 && memcmp(before, after, len0) == 0, "the foreign file was modified");
    free(before);
    free(after);
}

Test(cli, a_foreign_sqlite_database_is_refused_and_left_alone)
{
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(g_db, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db,
                              "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT);"
                              "INSERT INTO users(name) VALUES('ada');",
                              NULL, NULL, NULL),
                 SQLITE_OK);
    sqlite3_close(db);

    char *err = FAIL(1, NULL, "queues", "create", "orders");
    cr_assert(strstr(err, "not a Herald database") != NULL, "stderr: %s", err);
    free(err);

    cr_assert_eq(sqlite3_open_v2(g_db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
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
    mkq("orders");
    int v = db_user_version(g_db);
    cr_assert_eq(v, herald_schema_version_supported(), "user_version after create");
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(g_db, &db), SQLITE_OK);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", v + 1);
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    char *err = FAIL(1, NULL, "queues", "list");
    cr_assert(has_ci(err, "newer"), "stderr should say the schema is newer: %s", err);
    free(err);
    err = FAIL(1, NULL, "send", "orders", "{}");
    cr_assert(has_ci(err, "newer"), "stderr should say the schema is newer: %s", err);
    free(err);
    cr_assert_eq(db_user_version(g_db), v + 1, "the newer store was modified");
}

Test(cli, durability_in_the_url_or_option_is_not_part_of_the_path)
{
    char url[512];
    snprintf(url, sizeof url, "%s?durability=normal", g_url);
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
    cr_assert_eq(stat_of("orders", "backlog_count"), 1);
    char odd[512];
    snprintf(odd, sizeof odd, "%s?durability=normal", g_db);
    cr_assert_neq(access(odd, F_OK), 0, "the URL's query string became part of the file name");
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
