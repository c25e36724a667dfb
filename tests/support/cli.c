// SPDX-License-Identifier: MIT
/*
 * cli.c - the end-to-end fixtures of cli.h.
 */
#define _XOPEN_SOURCE 700
#include "cli.h"

#include <criterion/criterion.h>

#include <ctype.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_ARGS 64

hx_e2e_env hx_e2e;

void hx_e2e_setup(void)
{
    hx_e2e.dir = hx_tmpdir();
    size_t n = strlen(hx_e2e.dir) + 32;
    hx_e2e.url = malloc(n);
    hx_e2e.db = malloc(n);
    cr_assert(hx_e2e.url && hx_e2e.db);
    snprintf(hx_e2e.url, n, "sqlite:%s/h.db", hx_e2e.dir);
    snprintf(hx_e2e.db, n, "%s/h.db", hx_e2e.dir);
    cr_assert_eq(chdir(hx_e2e.dir), 0);
}

void hx_e2e_teardown(void)
{
    if (chdir("/") != 0) {
        /* nothing useful to do; the dir is removed by absolute path anyway */
    }
    hx_rmrf(hx_e2e.dir);
    free(hx_e2e.dir);
    free(hx_e2e.url);
    free(hx_e2e.db);
    memset(&hx_e2e, 0, sizeof hx_e2e);
}

/* ---- running the CLI ------------------------------------------------------------------------ */

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

int hx_run_store(const char *url, const char *in, char **out, char **err, ...)
{
    va_list ap;
    va_start(ap, err);
    int rc = vrun(url, in, out, err, ap);
    va_end(ap);
    return rc;
}

int hx_run_words(const char *const *words, size_t max_words, char **out, char **err)
{
    const char *argv[MAX_ARGS + 3] = { "--store", hx_e2e.url };
    size_t n = 2;
    cr_assert(max_words <= MAX_ARGS, "too many args");
    for (size_t k = 0; k < max_words && words[k]; k++)
        argv[n++] = words[k];
    argv[n] = NULL;
    return hx_cli(argv, NULL, out, err);
}

/* Runs on the test's store, asserts exit 0 and returns stdout. */
static char *vok(const char *in, va_list ap)
{
    char *out = NULL, *err = NULL;
    int rc = vrun(hx_e2e.url, in, &out, &err, ap);
    cr_assert_eq(rc, 0, "expected exit 0, got %d; stderr: %s; stdout: %s", rc, err, out);
    free(err);
    return out;
}

char *hx_cli_ok(const char *in, ...)
{
    va_list ap;
    va_start(ap, in);
    char *out = vok(in, ap);
    va_end(ap);
    return out;
}

json_t *hx_cli_json(const char *in, ...)
{
    va_list ap;
    va_start(ap, in);
    char *out = vok(in, ap);
    va_end(ap);
    json_t *j = hx_parse_json(out);
    free(out);
    return j;
}

char *hx_cli_fail(int want, const char *in, ...)
{
    va_list ap;
    va_start(ap, in);
    char *out = NULL, *err = NULL;
    int rc = vrun(hx_e2e.url, in, &out, &err, ap);
    va_end(ap);
    cr_assert_eq(rc, want, "expected exit %d, got %d; stderr: %s; stdout: %s", want, rc, err, out);
    cr_assert(err && strlen(err) > 0, "expected a message on stderr");
    if (want == 1)
        cr_assert(strncmp(err, "herald: ", 8) == 0, "stderr must start with 'herald: ': [%s]",
                  err);
    free(out);
    return err;
}

/* ---- queues and stats through the CLI ------------------------------------------------------- */

void hx_cli_mkq(const char *name)
{
    OKV(NULL, "queues", "create", name);
}

json_t *hx_cli_stats(const char *q)
{
    return JSON(NULL, "queues", "stats", q, "--json");
}

void hx_cli_assert_stats(const char *q, const hx_stat_want *w, size_t n)
{
    json_t *s = hx_cli_stats(q);
    for (size_t i = 0; i < n; i++) {
        json_int_t got = hx_json_int(s, w[i].key);
        cr_assert_eq(got, w[i].want, "queues stats %s: %s is %lld, want %lld", q, w[i].key,
                     (long long)got, (long long)w[i].want);
    }
    json_decref(s);
}

json_t *hx_cli_send_and_pull_one(const char *q, const char *body)
{
    hx_cli_mkq(q);
    OKV(NULL, "send", q, body);
    json_t *p = JSON(NULL, "pull", q, "--json");
    cr_assert_eq(json_array_size(p), 1);
    return p;
}

json_int_t hx_cli_stat(const char *q, const char *key)
{
    json_t *s = hx_cli_stats(q);
    json_t *v = json_object_get(s, key);
    cr_assert(json_is_integer(v), "stats key %s missing or not an integer", key);
    json_int_t r = json_integer_value(v);
    json_decref(s);
    return r;
}

static void assert_same_json(json_t *before, json_t *after, const char *what)
{
    char *a = json_dumps(before, JSON_SORT_KEYS), *b = json_dumps(after, JSON_SORT_KEYS);
    cr_assert(json_equal(before, after), "%s changed:\n before %s\n after  %s", what, a, b);
    free(a);
    free(b);
    json_decref(after);
}

void hx_assert_stats_unchanged(const char *q, json_t *before)
{
    assert_same_json(before, hx_cli_stats(q), "stats");
}

void hx_assert_list_unchanged(json_t *before)
{
    assert_same_json(before, JSON(NULL, "queues", "list", "--json"), "queue list");
}

/* ---- reading output ------------------------------------------------------------------------- */

json_t *hx_parse_json(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    cr_assert_not_null(j, "stdout is not one JSON value (%s at line %d col %d): [%s]", je.text,
                       je.line, je.column, text);
    return j;
}

const char *hx_json_str(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    cr_assert(json_is_string(v), "key %s missing or not a string", key);
    return json_string_value(v);
}

json_int_t hx_json_int(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    cr_assert(json_is_integer(v), "key %s missing or not an integer", key);
    return json_integer_value(v);
}

bool hx_json_bool(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    cr_assert(json_is_boolean(v), "key %s missing or not a boolean", key);
    return json_is_true(v);
}

json_t *hx_find_by_id(json_t *arr, const char *id)
{
    size_t i;
    json_t *m;
    json_array_foreach(arr, i, m)
    {
        if (strcmp(hx_json_str(m, "id"), id) == 0)
            return m;
    }
    return NULL;
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

char *hx_json_body(json_t *m)
{
    const char *ct = hx_json_str(json_object_get(m, "metadata"), "CF-Content-Type");
    const char *b = hx_json_str(m, "body");
    if (strcmp(ct, "text") == 0)
        return strdup(b);
    char *d = b64_decode(b, NULL);
    cr_assert_not_null(d, "body of a %s message is not base64: [%s]", ct, b);
    return d;
}

bool hx_is_iso8601(const char *s)
{
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

size_t hx_split_lines(char *text, char **lines, size_t max)
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

/* ---- making input --------------------------------------------------------------------------- */

char *hx_repeat_char(char c, size_t n)
{
    char *p = malloc(n + 1);
    cr_assert(p);
    memset(p, c, n);
    p[n] = 0;
    return p;
}

char *hx_json_string_body(size_t total)
{
    char *p = hx_repeat_char('a', total);
    p[0] = '"';
    p[total - 1] = '"';
    return p;
}

size_t hx_dir_entries(const char *dir)
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

/* ---- dead letters through the API ---- */

herald_store *hx_e2e_open_store(void)
{
    return hx_open_file(hx_e2e.dir, "h.db", NULL);
}

void hx_mkq_dlq(herald_store *s, const char *name, int64_t max_retries, const char *dlq)
{
    herald_queue_settings st;
    herald_queue_settings_init(&st);
    st.max_retries = max_retries;
    st.dead_letter_queue = dlq;
    hx_create_queue(s, name, &st);
}

void hx_fail_all(herald_store *s, const char *q, const char *error)
{
    herald_batch b = { 0 };
    size_t n = hx_pull(s, q, 100, 3600LL * 1000, &b);
    const char *leases[100];
    for (size_t i = 0; i < n; i++)
        leases[i] = b.msgs[i].lease_id;
    if (n > 0)
        cr_assert_eq(herald_retry(s, q, leases, n, 0, error, NULL), 0, "%s", herald_last_error());
    herald_batch_deinit(&b);
}
