// SPDX-License-Identifier: MIT
/*
 * bench_util.c - see bench_util.h; and `herald bench` dispatching to the workloads.
 */
#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int64_t bench_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int bench_fail(const char *what, int rc)
{
    fprintf(stderr, "herald: bench: %s failed: %s (%s)\n", what, herald_last_error(),
            herald_err_name(rc));
    return CLI_FAIL;
}

int bench_store_open(bench_store *b, const cli_ctx *ctx, const char *dir)
{
    memset(b, 0, sizeof *b);
    if (dir) {
        snprintf(b->dir, sizeof b->dir, "%s", dir);
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(b->dir, sizeof b->dir, "%s/herald-bench-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(b->dir)) {
            perror("herald: bench: mkdtemp");
            return CLI_FAIL;
        }
        b->is_temp_dir = true;
    }
    herald_durability dur = ctx->durability_set ? ctx->durability : HERALD_DURABILITY_FULL;
    b->dur_name = dur == HERALD_DURABILITY_FULL ? "full" : "normal";
    snprintf(b->url, sizeof b->url, "sqlite:%s/bench.db", b->dir);
    herald_store_cfg cfg = { .durability = dur, .durability_set = true };
    int rc = herald_store_open(b->url, &cfg, &b->store);
    if (rc < 0) {
        bench_fail("open", rc);
        if (b->is_temp_dir)
            rmdir(b->dir);
        return CLI_FAIL;
    }
    return CLI_OK;
}

void bench_store_close(bench_store *b)
{
    herald_store_close(b->store);
    b->store = NULL;
    const char *sfx[] = { "bench.db", "bench.db-wal", "bench.db-shm" };
    char p[4200];
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", b->dir, sfx[i]);
        unlink(p);
    }
    if (b->is_temp_dir)
        rmdir(b->dir);
}

void bench_window_init(bench_window *w, int max)
{
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->in_flight = 0;
    w->max = max;
    w->failures = 0;
}

void bench_window_acquire(bench_window *w)
{
    pthread_mutex_lock(&w->mu);
    while (w->in_flight >= w->max)
        pthread_cond_wait(&w->cv, &w->mu);
    w->in_flight++;
    pthread_mutex_unlock(&w->mu);
}

void bench_window_release(bench_window *w, int rc)
{
    pthread_mutex_lock(&w->mu);
    if (rc < 0)
        w->failures++;
    w->in_flight--;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int bench_window_drain(bench_window *w)
{
    pthread_mutex_lock(&w->mu);
    while (w->in_flight > 0)
        pthread_cond_wait(&w->cv, &w->mu);
    int failures = w->failures;
    pthread_mutex_unlock(&w->mu);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    return failures ? HERALD_ESTORE : 0;
}

static const char *const usage_bench =
    "usage: herald bench queue [options]   queue workloads W1-W3 (see --help of each)\n"
    "       herald bench eo [options]      effectively-once handler: 1 insert + 1 send/msg\n"
    "       herald bench stats [options]   queue stats cost at growing backlogs\n";

int cmd_bench(const cli_ctx *ctx, int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "queue") == 0)
        return bench_queue(ctx, argc - 1, argv + 1);
    if (argc >= 1 && strcmp(argv[0], "eo") == 0)
        return bench_eo(ctx, argc - 1, argv + 1);
    if (argc >= 1 && strcmp(argv[0], "stats") == 0)
        return bench_stats(ctx, argc - 1, argv + 1);
    if (argc >= 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
        fputs(usage_bench, stdout);
        return CLI_OK;
    }
    return cli_usage(usage_bench, "bench: expected 'queue', 'eo' or 'stats'");
}
