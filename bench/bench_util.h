// SPDX-License-Identifier: MIT
/*
 * bench_util.h - pieces the benchmarks share: a fresh store in a temp directory, a window of
 * asynchronous sends in flight, the monotonic clock, error reporting.
 */
#ifndef HERALD_BENCH_UTIL_H
#define HERALD_BENCH_UTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "cli/cli.h"

int64_t bench_mono_ns(void);
int bench_fail(const char *what, int rc);

/* A fresh store: DIR/bench.db (DIR a new temp dir unless given), durability from ctx. */
typedef struct bench_store {
    herald_store *store;
    char dir[4096];
    char url[4200];
    bool is_temp_dir;
    const char *dur_name;
} bench_store;
int bench_store_open(bench_store *b, const cli_ctx *ctx, const char *dir);
/* Closes the store and removes its files (and the temp dir). */
void bench_store_close(bench_store *b);

/* At most `max` asynchronous operations in flight. */
typedef struct bench_window {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int in_flight, max, failures;
} bench_window;
void bench_window_init(bench_window *w, int max);
void bench_window_acquire(bench_window *w);          /* waits for a free place */
void bench_window_release(bench_window *w, int rc);  /* from the completion callback */
int bench_window_drain(bench_window *w);             /* waits for all; < 0 if any failed */

int bench_queue(const cli_ctx *ctx, int argc, char **argv);
int bench_eo(const cli_ctx *ctx, int argc, char **argv);
int bench_stats(const cli_ctx *ctx, int argc, char **argv);

#endif
