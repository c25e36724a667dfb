// SPDX-License-Identifier: MIT
/*
 * bench_queue.c - `herald bench queue`: the workloads our peers were measured with, on a fresh
 * store in a temp directory, through the public API only.
 *   W1  produce N (200,000) messages of 256 B in batches of 100 from one thread. The producer
 *       keeps up to --window batches in flight with herald_send_batch_async: each batch is
 *       acknowledged only once durable, and one group commit (one fsync) covers many batches.
 *       W1s is the same with herald_send_batch (one batch in flight: a commit per batch).
 *   W2  consume and ack them in batches of 100 with the push-consumer runtime
 *       (max_batch_size 100, max_batch_timeout 0, --concurrency handlers); W2p with the pull
 *       API from one thread (pull 100, ack 100, repeat).
 *   W3  one producer at a fixed --w3-rate (5,000 msg/s) for --w3-seconds (10 s), open loop:
 *       message i is due at start + i/rate and its latency runs from that scheduled time to the
 *       moment the consumer's handler sees it; a consumer acks as it goes. p50/p99/max.
 * Durability is FULL (fsync per commit group) unless --durability normal.
 */
#include "bench_util.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const usage_bench =
    "usage: herald bench queue [--messages N] [--durability full|normal] [--window N]\n"
    "                          [--concurrency N] [--w3-seconds S] [--w3-rate N] [--dir DIR]\n"
    "  W1 produce N (default 200,000) 256-byte messages in batches of 100 from one thread\n"
    "  W2 consume and ack them in batches of 100\n"
    "  W3 one producer at a fixed rate (default 5,000 msg/s for 10 s), open loop; latency\n"
    "     from each message's scheduled send time to its delivery: p50/p99/max\n"
    "  Runs on a fresh store in a temp directory (or --dir), removed afterwards.\n";

#define BODY_BYTES 256

static void fill_body(char *buf, int64_t stamp)
{
    /* A JSON object of exactly BODY_BYTES bytes: {"t":<stamp>,"p":"xxx...x"} */
    int n = snprintf(buf, BODY_BYTES + 1, "{\"t\":%" PRId64 ",\"p\":\"", stamp);
    memset(buf + n, 'x', (size_t)(BODY_BYTES - n - 2));
    buf[BODY_BYTES - 2] = '"';
    buf[BODY_BYTES - 1] = '}';
    buf[BODY_BYTES] = 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_ms(const int64_t *sorted, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)sorted[i] / 1e6;
}

/* Starts a push consumer on one queue that takes batches of 100 as soon as any is visible. */
static int start_consumer(herald_store *s, const char *const *queue, herald_handler_cb h,
                          void *ud, int concurrency, herald_consumer **out)
{
    herald_consumer_cfg cfg;
    herald_consumer_cfg_init(&cfg);
    cfg.queues = queue;
    cfg.n_queues = 1;
    cfg.handler = h;
    cfg.ud = ud;
    cfg.max_batch_size = 100;
    cfg.max_batch_timeout_ms = 0;
    cfg.max_concurrency = concurrency;
    return herald_consumer_start(s, &cfg, out);
}

/* ---- W1 ---- */

typedef struct w1_state {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int in_flight;
    int failures;
    int64_t *lat; /* per batch: submit -> durable, ns */
    size_t n_lat;
} w1_state;

typedef struct w1_batch {
    w1_state *st;
    int64_t t0;
} w1_batch;

static void w1_done(void *ud, int rc, const char (*ids)[HERALD_ID_SIZE], size_t n)
{
    (void)ids;
    (void)n;
    w1_batch *b = ud;
    w1_state *st = b->st;
    int64_t dt = bench_mono_ns() - b->t0;
    pthread_mutex_lock(&st->mu);
    if (rc < 0)
        st->failures++;
    st->lat[st->n_lat++] = dt;
    st->in_flight--;
    pthread_cond_signal(&st->cv);
    pthread_mutex_unlock(&st->mu);
    free(b);
}

/* The 100 messages of a W1 batch (the same bodies every time). */
static void w1_batch_init(herald_msg msgs[100])
{
    static char bodies[100][BODY_BYTES + 1];
    for (int i = 0; i < 100; i++) {
        fill_body(bodies[i], i);
        herald_msg_init(&msgs[i]);
        msgs[i].body = bodies[i];
        msgs[i].body_len = BODY_BYTES;
    }
}

static int run_w1(herald_store *s, const char *queue, int64_t n_msgs, int window, double *rate,
                  double *p99_batch_ms)
{
    herald_msg msgs[100];
    w1_batch_init(msgs);
    size_t n_batches = (size_t)((n_msgs + 99) / 100);
    w1_state st = { .lat = calloc(n_batches, sizeof(int64_t)) };
    pthread_mutex_init(&st.mu, NULL);
    pthread_cond_init(&st.cv, NULL);
    int64_t t0 = bench_mono_ns();
    int64_t left = n_msgs;
    int rc = 0;
    while (left > 0 && rc == 0) {
        size_t n = left >= 100 ? 100 : (size_t)left;
        pthread_mutex_lock(&st.mu);
        while (st.in_flight >= window)
            pthread_cond_wait(&st.cv, &st.mu);
        st.in_flight++;
        pthread_mutex_unlock(&st.mu);
        w1_batch *b = malloc(sizeof *b);
        b->st = &st;
        b->t0 = bench_mono_ns();
        rc = herald_send_batch_async(s, queue, msgs, n, HERALD_UNSET, w1_done, b);
        if (rc < 0) {
            free(b);
            pthread_mutex_lock(&st.mu);
            st.in_flight--;
            pthread_mutex_unlock(&st.mu);
        }
        left -= (int64_t)n;
    }
    pthread_mutex_lock(&st.mu);
    while (st.in_flight > 0)
        pthread_cond_wait(&st.cv, &st.mu);
    pthread_mutex_unlock(&st.mu);
    int64_t dt = bench_mono_ns() - t0;
    if (rc == 0 && st.failures)
        rc = HERALD_ESTORE;
    qsort(st.lat, st.n_lat, sizeof(int64_t), cmp_i64);
    *p99_batch_ms = pct_ms(st.lat, st.n_lat, 0.99);
    *rate = (double)n_msgs / ((double)dt / 1e9);
    free(st.lat);
    pthread_mutex_destroy(&st.mu);
    pthread_cond_destroy(&st.cv);
    return rc;
}

static int run_w1_sync(herald_store *s, const char *queue, int64_t n_msgs, double *rate)
{
    herald_msg msgs[100];
    w1_batch_init(msgs);
    int64_t t0 = bench_mono_ns();
    for (int64_t left = n_msgs; left > 0; left -= 100) {
        int rc = herald_send_batch(s, queue, msgs, left >= 100 ? 100 : (size_t)left,
                                   HERALD_UNSET, NULL);
        if (rc < 0)
            return rc;
    }
    *rate = (double)n_msgs / ((double)(bench_mono_ns() - t0) / 1e9);
    return 0;
}

/* ---- W2 ---- */

typedef struct w2_state {
    atomic_llong seen;
    int64_t target;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} w2_state;

static int w2_handler(herald_delivery *d, void *ud)
{
    w2_state *st = ud;
    size_t n = herald_delivery_count(d);
    long long total = atomic_fetch_add(&st->seen, (long long)n) + (long long)n;
    if (total >= st->target) {
        pthread_mutex_lock(&st->mu);
        pthread_cond_signal(&st->cv);
        pthread_mutex_unlock(&st->mu);
    }
    return 0;
}

static int run_w2(herald_store *s, const char *queue, int64_t n_msgs, int concurrency,
                  double *rate)
{
    w2_state st = { .target = n_msgs };
    atomic_init(&st.seen, 0);
    pthread_mutex_init(&st.mu, NULL);
    pthread_cond_init(&st.cv, NULL);
    const char *qs[] = { queue };
    int64_t t0 = bench_mono_ns();
    herald_consumer *c = NULL;
    int rc = start_consumer(s, qs, w2_handler, &st, concurrency, &c);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&st.mu);
    while (atomic_load(&st.seen) < n_msgs)
        pthread_cond_wait(&st.cv, &st.mu);
    pthread_mutex_unlock(&st.mu);
    herald_consumer_stop(c); /* returns once every settlement (ack) has committed */
    int64_t dt = bench_mono_ns() - t0;
    herald_queue_stats qs_after;
    rc = herald_queue_stats_get(s, queue, &qs_after);
    if (rc == 0 && qs_after.backlog_count != 0) {
        fprintf(stderr, "herald: bench: W2 left %lld messages unacked\n",
                (long long)qs_after.backlog_count);
        rc = HERALD_ESTORE;
    }
    *rate = (double)n_msgs / ((double)dt / 1e9);
    pthread_mutex_destroy(&st.mu);
    pthread_cond_destroy(&st.cv);
    return rc;
}

static int run_w2_pull(herald_store *s, const char *queue, int64_t n_msgs, double *rate)
{
    int64_t t0 = bench_mono_ns(), got = 0;
    while (got < n_msgs) {
        herald_batch b;
        int rc = herald_pull(s, queue, 100, 30000, &b);
        if (rc < 0)
            return rc;
        if (b.n == 0) {
            herald_batch_deinit(&b);
            break;
        }
        const char *leases[100];
        for (size_t i = 0; i < b.n; i++)
            leases[i] = b.msgs[i].lease_id;
        rc = herald_ack(s, queue, leases, b.n, NULL);
        got += (int64_t)b.n;
        herald_batch_deinit(&b);
        if (rc < 0)
            return rc;
    }
    *rate = (double)got / ((double)(bench_mono_ns() - t0) / 1e9);
    return got == n_msgs ? 0 : HERALD_ESTORE;
}

/* ---- W3 ---- */

typedef struct w3_state {
    int64_t *lat;
    atomic_llong n_lat;
    int64_t cap;
    atomic_int send_failures;
} w3_state;

static int w3_handler(herald_delivery *d, void *ud)
{
    w3_state *st = ud;
    int64_t now = bench_mono_ns();
    for (size_t i = 0; i < herald_delivery_count(d); i++) {
        const herald_message *m = herald_delivery_msg(d, i);
        int64_t sched = strtoll((const char *)m->body + 5, NULL, 10);
        long long k = atomic_fetch_add(&st->n_lat, 1);
        if (k < st->cap)
            st->lat[k] = now - sched;
    }
    return 0;
}

static void w3_sent(void *ud, int rc, const char (*ids)[HERALD_ID_SIZE], size_t n)
{
    (void)ids;
    (void)n;
    if (rc < 0)
        atomic_fetch_add(&((w3_state *)ud)->send_failures, 1);
}

static int run_w3(herald_store *s, const char *queue, int64_t seconds, int64_t rate_per_s,
                  double *p50, double *p99, double *pmax, int64_t *n_out)
{
    int64_t total = seconds * rate_per_s;
    w3_state st = { .lat = calloc((size_t)total, sizeof(int64_t)), .cap = total };
    atomic_init(&st.n_lat, 0);
    atomic_init(&st.send_failures, 0);
    const char *qs[] = { queue };
    herald_consumer *c = NULL;
    int rc = start_consumer(s, qs, w3_handler, &st, 1, &c);
    if (rc < 0) {
        free(st.lat);
        return rc;
    }
    int64_t period = 1000000000LL / rate_per_s;
    int64_t start = bench_mono_ns() + 10000000; /* 10 ms warm-up */
    char body[BODY_BYTES + 1];
    for (int64_t i = 0; i < total && rc == 0; i++) {
        int64_t due = start + i * period;
        struct timespec ts = { .tv_sec = due / 1000000000LL, .tv_nsec = due % 1000000000LL };
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0) {
        }
        fill_body(body, due);
        herald_msg m = HERALD_MSG_INIT;
        m.body = body;
        m.body_len = BODY_BYTES;
        rc = herald_send_batch_async(s, queue, &m, 1, HERALD_UNSET, w3_sent, &st);
    }
    int64_t wait_until = bench_mono_ns() + 30LL * 1000000000LL;
    while (rc == 0 && atomic_load(&st.n_lat) < total && bench_mono_ns() < wait_until)
        usleep(1000);
    herald_consumer_stop(c);
    int64_t n = atomic_load(&st.n_lat);
    if (n > total)
        n = total;
    if (rc == 0 && (n < total || atomic_load(&st.send_failures)))
        rc = HERALD_ESTORE;
    qsort(st.lat, (size_t)n, sizeof(int64_t), cmp_i64);
    *p50 = pct_ms(st.lat, (size_t)n, 0.50);
    *p99 = pct_ms(st.lat, (size_t)n, 0.99);
    *pmax = n ? (double)st.lat[n - 1] / 1e6 : 0;
    *n_out = n;
    free(st.lat);
    return rc;
}

/* ---- driver ---- */

int bench_queue(const cli_ctx *ctx, int argc, char **argv)
{
    cli_opt opts[] = { { "messages", true, NULL },   { "window", true, NULL },
                       { "concurrency", true, NULL }, { "w3-seconds", true, NULL },
                       { "w3-rate", true, NULL },    { "dir", true, NULL } };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    char *pos[16];
    int n_pos = 0;
    bool help = false;
    if (argc > 14)
        return cli_usage(usage_bench, "too many arguments");
    int rc = cli_parse(argc, argv, opts, n_opts, pos, &n_pos, &help);
    if (rc != CLI_OK)
        return rc;
    if (help) {
        fputs(usage_bench, stdout);
        return CLI_OK;
    }
    if (n_pos != 0)
        return cli_usage(usage_bench, "bench queue: unexpected argument '%s'", pos[0]);
    int64_t n_msgs = 200000, window = 32, conc = 2, w3_s = 10, w3_rate = 5000;
    struct {
        const char *name;
        int64_t *v;
        int64_t lo, hi;
    } ints[] = { { "messages", &n_msgs, 100, 100000000 }, { "window", &window, 1, 10000 },
                 { "concurrency", &conc, 1, 250 },       { "w3-seconds", &w3_s, 1, 3600 },
                 { "w3-rate", &w3_rate, 1, 1000000 } };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        const char *v = cli_opt_get(opts, n_opts, ints[i].name);
        if (v && cli_int(ints[i].name, v, ints[i].v) != CLI_OK)
            return CLI_USAGE;
        if (*ints[i].v < ints[i].lo || *ints[i].v > ints[i].hi)
            return cli_usage(NULL, "--%s must be in %lld..%lld", ints[i].name,
                             (long long)ints[i].lo, (long long)ints[i].hi);
    }
    bench_store bs;
    if (bench_store_open(&bs, ctx, cli_opt_get(opts, n_opts, "dir")) != CLI_OK)
        return CLI_FAIL;
    herald_store *s = bs.store;
    const char *dur_name = bs.dur_name;
    const char *url = bs.url;
    double w1 = 0, w1_p99 = 0, w1s = 0, w2 = 0, w2p = 0, p50 = 0, p99 = 0, pmax = 0;
    int64_t n_w3 = 0;
    int out = CLI_OK;
    if (!ctx->json)
        printf("herald bench queue: %lld messages of %d B, durability %s, store %s\n",
                (long long)n_msgs, BODY_BYTES, dur_name, url);
    if ((rc = herald_queue_create(s, "bench", NULL)) < 0 ||
        (rc = herald_queue_create(s, "bench-sync", NULL)) < 0 ||
        (rc = herald_queue_create(s, "bench-w3", NULL)) < 0)
        out = bench_fail("create queues", rc);
    if (out == CLI_OK && (rc = run_w1(s, "bench", n_msgs, (int)window, &w1, &w1_p99)) < 0)
        out = bench_fail("W1", rc);
    if (out == CLI_OK && (rc = run_w2(s, "bench", n_msgs, (int)conc, &w2)) < 0)
        out = bench_fail("W2", rc);
    int64_t n_small = n_msgs / 4 < 100 ? 100 : n_msgs / 4;
    if (out == CLI_OK && (rc = run_w1_sync(s, "bench-sync", n_small, &w1s)) < 0)
        out = bench_fail("W1s", rc);
    if (out == CLI_OK && (rc = run_w2_pull(s, "bench-sync", n_small, &w2p)) < 0)
        out = bench_fail("W2p", rc);
    if (out == CLI_OK &&
        (rc = run_w3(s, "bench-w3", w3_s, w3_rate, &p50, &p99, &pmax, &n_w3)) < 0)
        out = bench_fail("W3", rc);
    bench_store_close(&bs);
    if (out != CLI_OK)
        return out;
    if (ctx->json) {
        cli_print_json(json_pack(
            "{s:s, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:I}",
            "durability", dur_name, "messages", (json_int_t)n_msgs, "window",
            (json_int_t)window, "concurrency", (json_int_t)conc, "w1_produce_msgs_per_s", w1,
            "w1_batch_p99_ms", w1_p99, "w1_sync_produce_msgs_per_s", w1s,
            "w2_consume_msgs_per_s", w2, "w2_pull_consume_msgs_per_s", w2p, "w3_p50_ms", p50,
            "w3_p99_ms", p99, "w3_max_ms", pmax, "w3_messages", (json_int_t)n_w3, "w3_rate",
            (json_int_t)w3_rate));
        return CLI_OK;
    }
    printf("%-4s %-58s %14s\n", "", "workload", "result");
    printf("%-4s %-58s %10.0f msg/s\n", "W1",
           "produce, batches of 100, async window (durable on callback)", w1);
    printf("%-4s %-58s %10.2f ms\n", "", "  batch send->durable p99", w1_p99);
    printf("%-4s %-58s %10.0f msg/s\n", "W1s", "produce, batches of 100, one at a time (sync)",
           w1s);
    printf("%-4s %-58s %10.0f msg/s\n", "W2", "consume+ack, push consumer, batches of 100", w2);
    printf("%-4s %-58s %10.0f msg/s\n", "W2p", "consume+ack, pull+ack API, one thread", w2p);
    printf("%-4s %-58s %10.2f ms\n", "W3", "fixed-rate open loop, scheduled->delivered p50", p50);
    printf("%-4s %-58s %10.2f ms\n", "", "  p99", p99);
    printf("%-4s %-58s %10.2f ms\n", "", "  max", pmax);
    printf("durability %s; W3 %lld messages at %lld msg/s\n", dur_name, (long long)n_w3,
           (long long)w3_rate);
    return CLI_OK;
}
