// SPDX-License-Identifier: MIT
/*
 * cli.h - shared fixtures of the end-to-end suites (tests/e2e): a temp dir per test that is also
 * the cwd, a store URL in it, runners of the `herald` CLI that pass `--store URL` and assert the
 * exit code, and the JSON accessors that read what `--json` prints (jansson).
 * Functions that assert may only be called from a test.
 */
#ifndef HERALD_TESTS_CLI_H
#define HERALD_TESTS_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "support.h"

/* The store of the running test. */
typedef struct hx_e2e_env {
    char *dir; /* the test's temp dir (also its cwd) */
    char *url; /* "sqlite:DIR/h.db" */
    char *db;  /* "DIR/h.db" */
} hx_e2e_env;
extern hx_e2e_env hx_e2e;

/* TestSuite .init / .fini: make (and cd into) / remove the temp dir. */
void hx_e2e_setup(void);
void hx_e2e_teardown(void);

/* ---- running the CLI ------------------------------------------------------------------------ */

/* Runs herald with `--store URL` (when url != NULL) followed by the NULL-terminated args, with
 * stdin `in`; returns the exit code, stdout and stderr (callers free). */
int hx_run_store(const char *url, const char *in, char **out, char **err, ...);
/* Runs herald --store URL followed by at most max_words words of `words` (a NULL word ends them
 * early); returns the exit code, stdout and stderr (callers free). */
int hx_run_words(const char *const *words, size_t max_words, char **out, char **err);
/* On the test's store: asserts exit 0 and returns stdout (caller frees). */
char *hx_cli_ok(const char *in, ...);
/* On the test's store: asserts exit 0 and parses stdout as exactly one JSON value. */
json_t *hx_cli_json(const char *in, ...);
/* On the test's store: asserts exit `want` and a message on stderr (for exit 1, starting with
 * "herald: "); returns stderr (caller frees). */
char *hx_cli_fail(int want, const char *in, ...);

#define RUN(in, out, err, ...) \
    hx_run_store(hx_e2e.url, in, out, err, __VA_ARGS__, (const char *)NULL)
#define RUN_AT(url, in, out, err, ...) \
    hx_run_store(url, in, out, err, __VA_ARGS__, (const char *)NULL)
#define OK(in, ...) hx_cli_ok(in, __VA_ARGS__, (const char *)NULL)
#define OKV(in, ...) free(hx_cli_ok(in, __VA_ARGS__, (const char *)NULL))
#define JSON(in, ...) hx_cli_json(in, __VA_ARGS__, (const char *)NULL)
#define FAIL(want, in, ...) hx_cli_fail(want, in, __VA_ARGS__, (const char *)NULL)

/* ---- queues and stats through the CLI ------------------------------------------------------- */

void hx_cli_mkq(const char *name);               /* queues create NAME; asserts exit 0 */
/* Creates queue q, sends the JSON body and pulls it: returns the pull's array of exactly one
 * message, whose "lease_id" is live (caller decrefs). */
json_t *hx_cli_send_and_pull_one(const char *q, const char *body);
json_t *hx_cli_stats(const char *q);             /* queues stats Q --json */
json_int_t hx_cli_stat(const char *q, const char *key); /* one integer of it */
/* Asserts the stats of q / the queue list equal a snapshot taken earlier (nothing changed). */
/* One integer of `queues stats` and the value it must have. */
typedef struct hx_stat_want {
    const char *key;
    json_int_t want;
} hx_stat_want;
/* Asserts that `queues stats Q --json` has each of the n keys with its value. */
void hx_cli_assert_stats(const char *q, const hx_stat_want *w, size_t n);
#define HX_CLI_ASSERT_STATS(q, ...)                                                               \
    hx_cli_assert_stats((q), (const hx_stat_want[]){ __VA_ARGS__ },                               \
                        sizeof((const hx_stat_want[]){ __VA_ARGS__ }) / sizeof(hx_stat_want))
void hx_assert_stats_unchanged(const char *q, json_t *before);
void hx_assert_list_unchanged(json_t *before);

/* ---- reading output ------------------------------------------------------------------------- */

json_t *hx_parse_json(const char *text); /* asserts one JSON value */
const char *hx_json_str(json_t *obj, const char *key); /* assert the key has that type */
json_int_t hx_json_int(json_t *obj, const char *key);
bool hx_json_bool(json_t *obj, const char *key);
/* The message in arr with this "id", or NULL. */
json_t *hx_find_by_id(json_t *arr, const char *id);
/* The body of a pulled/peeked message as the sender gave it: base64-decoded for json/bytes,
 * plain for text (per the contract). Caller frees. */
char *hx_json_body(json_t *m);
/* YYYY-MM-DDTHH:MM:SS... */
bool hx_is_iso8601(const char *s);
/* Splits text in place into trimmed non-empty lines; returns the count (asserts <= max). */
size_t hx_split_lines(char *text, char **lines, size_t max);

/* ---- dead letters through the API (the e2e DLQ tests) --------------------------------------- */

/* The e2e store (hx_e2e.dir/h.db) opened in this process; close with herald_store_close. */
herald_store *hx_e2e_open_store(void);
/* Creates queue `name` with max_retries and dead_letter_queue `dlq` (NULL: none). */
void hx_mkq_dlq(herald_store *s, const char *name, int64_t max_retries, const char *dlq);
/* Pulls every visible message of q (an hour's lease) and retries each with `error`, once. */
void hx_fail_all(herald_store *s, const char *q, const char *error);

/* ---- making input --------------------------------------------------------------------------- */

char *hx_repeat_char(char c, size_t n); /* n times c, NUL-terminated; caller frees */
/* A JSON string body of exactly `total` bytes: '"' + (total-2) * 'a' + '"'. Caller frees. */
char *hx_json_string_body(size_t total);
/* Entries of dir other than . and .. */
size_t hx_dir_entries(const char *dir);

#endif
