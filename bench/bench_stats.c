// SPDX-License-Identifier: MIT
/*
 * bench_stats.c - `herald bench stats`: what herald_queue_stats_get costs as the backlog grows.
 * One queue is filled (batches of 100 messages of 64 B, asynchronous sends, not timed) to each
 * backlog of --sizes in turn; at each, --calls stats calls are timed one by one (mean, p50,
 * p99, in microseconds). With the per-queue counts of migration 0013 the figures stay flat from
 * 10 to millions of waiting messages (the stats used to count the queue's rows: O(backlog)).
 * The first --leased messages stay under a lease throughout, so the delayed/leased part of the
 * stats has rows to look at too.
 */
#include "bench_util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const usage_stats =
    "usage: herald bench stats [--sizes N,N,...] [--calls N] [--leased N]\n"
    "                          [--durability full|normal] [--dir DIR]\n"
    "  Times herald_queue_stats_get at each backlog of --sizes (default 10,100000,1000000;\n"
    "  messages of 64 B, --leased of them (default 5) under a lease, the rest visible):\n"
    "  mean, p50 and p99 of --calls (default 2000) calls.\n"
    "  Runs on a fresh store in a temp directory (or --dir), removed afterwards.\n";

#define BODY_BYTES 64
#define MAX_SIZES 16

static void sent_cb(void *ud, int rc, const char (*ids)[HERALD_ID_SIZE], size_t n)
{
    (void)ids;
    (void)n;
    bench_window_release(ud, rc);
}

/* Sends messages to queue until it holds `target` (it holds *have). */
static int fill(herald_store *s, const char *queue, int64_t *have, int64_t target)
{
    static char body[BODY_BYTES + 1];
    memset(body, 'x', BODY_BYTES);
    body[0] = '"';
    body[BODY_BYTES - 1] = '"';
    herald_msg msgs[100];
    for (int i = 0; i < 100; i++) {
        herald_msg_init(&msgs[i]);
        msgs[i].body = body;
        msgs[i].body_len = BODY_BYTES;
    }
    bench_window w;
    bench_window_init(&w, 64);
    int rc = 0;
    while (rc == 0 && *have < target) {
        int64_t n = target - *have < 100 ? target - *have : 100;
        bench_window_acquire(&w);
        rc = herald_send_batch_async(s, queue, msgs, (size_t)n, HERALD_UNSET, sent_cb, &w);
        if (rc < 0)
            bench_window_release(&w, rc);
        else
            *have += n;
    }
    int drc = bench_window_drain(&w);
    return rc < 0 ? rc : drc;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

typedef struct stats_row {
    int64_t backlog;
    double mean_us, p50_us, p99_us;
} stats_row;

static int time_stats(herald_store *s, const char *queue, int64_t calls, int64_t want,
                      stats_row *out)
{
    int64_t *ns = calloc((size_t)calls, sizeof *ns); /* lint:ok bench scratch */
    if (!ns)
        return HERALD_ENOMEM;
    int64_t sum = 0;
    int rc = 0;
    for (int64_t i = 0; rc == 0 && i < calls; i++) {
        herald_queue_stats st;
        int64_t t0 = bench_mono_ns();
        rc = herald_queue_stats_get(s, queue, &st);
        ns[i] = bench_mono_ns() - t0;
        sum += ns[i];
        if (rc == 0 && st.backlog_count != want) {
            fprintf(stderr, "herald: bench stats: backlog %lld, expected %lld\n",
                    (long long)st.backlog_count, (long long)want);
            rc = HERALD_ESTORE;
        }
    }
    if (rc == 0) {
        qsort(ns, (size_t)calls, sizeof *ns, cmp_i64);
        out->backlog = want;
        out->mean_us = (double)sum / (double)calls / 1e3;
        out->p50_us = (double)ns[calls / 2] / 1e3;
        out->p99_us = (double)ns[(calls * 99) / 100] / 1e3;
    }
    free(ns); /* lint:ok */
    return rc;
}

static int parse_sizes(const char *v, int64_t *sizes, int *n)
{
    *n = 0;
    const char *p = v;
    while (*p) {
        char *end = NULL;
        long long x = strtoll(p, &end, 10);
        if (end == p || x < 1 || x > 100000000 || (*end && *end != ',') || *n == MAX_SIZES ||
            (*n > 0 && x <= sizes[*n - 1]))
            return cli_usage(usage_stats, "--sizes: expected up to %d increasing counts "
                                          "1..100000000, comma-separated, got '%s'",
                             MAX_SIZES, v);
        sizes[(*n)++] = x;
        p = *end ? end + 1 : end;
    }
    return *n ? CLI_OK : cli_usage(usage_stats, "--sizes is empty");
}

int bench_stats(const cli_ctx *ctx, int argc, char **argv)
{
    cli_opt opts[] = { { "sizes", true, NULL }, { "calls", true, NULL }, { "dir", true, NULL },
                       { "leased", true, NULL } };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    char *pos[8];
    int n_pos = 0;
    bool help = false;
    if (argc > 8)
        return cli_usage(usage_stats, "too many arguments");
    int rc = cli_parse(argc, argv, opts, n_opts, pos, &n_pos, &help);
    if (rc != CLI_OK)
        return rc;
    if (help) {
        fputs(usage_stats, stdout);
        return CLI_OK;
    }
    if (n_pos != 0)
        return cli_usage(usage_stats, "bench stats: unexpected argument '%s'", pos[0]);
    int64_t sizes[MAX_SIZES] = { 10, 100000, 1000000 };
    int n_sizes = 3;
    const char *v = cli_opt_get(opts, n_opts, "sizes");
    if (v && parse_sizes(v, sizes, &n_sizes) != CLI_OK)
        return CLI_USAGE;
    int64_t calls = 2000, n_leased = 5;
    v = cli_opt_get(opts, n_opts, "calls");
    if (v && cli_int("calls", v, &calls) != CLI_OK)
        return CLI_USAGE;
    if (calls < 10 || calls > 1000000)
        return cli_usage(NULL, "--calls must be in 10..1000000");
    v = cli_opt_get(opts, n_opts, "leased");
    if (v && cli_int("leased", v, &n_leased) != CLI_OK)
        return CLI_USAGE;
    if (n_leased < 0 || n_leased > 10000)
        return cli_usage(NULL, "--leased must be in 0..10000");
    bench_store bs;
    if (bench_store_open(&bs, ctx, cli_opt_get(opts, n_opts, "dir")) != CLI_OK)
        return CLI_FAIL;
    herald_store *s = bs.store;
    int out = CLI_OK;
    stats_row rows[MAX_SIZES];
    if ((rc = herald_queue_create(s, "stats", NULL)) < 0)
        out = bench_fail("create queue", rc);
    /* some messages under a lease, in the timed queue: the delayed/leased range is not empty */
    int64_t have = 0;
    herald_batch leased[100];
    size_t n_batches = 0;
    if (out == CLI_OK && n_leased > 0 && (rc = fill(s, "stats", &have, n_leased)) < 0)
        out = bench_fail("send", rc);
    for (int64_t got = 0; out == CLI_OK && got < n_leased; n_batches++) {
        rc = herald_pull(s, "stats", 100, 3600 * 1000, &leased[n_batches]);
        if (rc < 0 || leased[n_batches].n == 0) {
            out = bench_fail("pull", rc < 0 ? rc : HERALD_ESTORE);
            n_batches++;
            break;
        }
        got += (int64_t)leased[n_batches].n;
    }
    if (!ctx->json && out == CLI_OK)
        printf("herald bench stats: %lld calls per backlog, %lld of the messages leased, "
               "durability %s\n",
               (long long)calls, (long long)n_leased, bs.dur_name);
    int k = 0;
    for (; out == CLI_OK && k < n_sizes; k++) {
        int64_t target = sizes[k] > n_leased ? sizes[k] : n_leased;
        if ((rc = fill(s, "stats", &have, target)) < 0) {
            out = bench_fail("send", rc);
        } else if ((rc = time_stats(s, "stats", calls, have, &rows[k])) < 0) {
            out = bench_fail("stats", rc);
        } else if (!ctx->json) {
            printf("  backlog %10" PRId64 ": mean %8.1f us  p50 %8.1f us  p99 %8.1f us\n",
                   rows[k].backlog, rows[k].mean_us, rows[k].p50_us, rows[k].p99_us);
            fflush(stdout);
        }
    }
    for (size_t i = 0; i < n_batches; i++)
        herald_batch_deinit(&leased[i]);
    bench_store_close(&bs);
    if (out != CLI_OK)
        return out;
    if (ctx->json) {
        json_t *arr = json_array();
        for (int i = 0; i < k; i++)
            json_array_append_new(arr, json_pack("{s:I, s:f, s:f, s:f}", "backlog",
                                                 (json_int_t)rows[i].backlog, "mean_us",
                                                 rows[i].mean_us, "p50_us", rows[i].p50_us,
                                                 "p99_us", rows[i].p99_us));
        cli_print_json(json_pack("{s:s, s:I, s:I, s:o}", "durability", bs.dur_name, "calls",
                                 (json_int_t)calls, "leased", (json_int_t)n_leased, "stats",
                                 arr));
    }
    return CLI_OK;
}
