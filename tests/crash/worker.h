// SPDX-License-Identifier: MIT
/*
 * worker.h - the time helpers of the crash tests' child programs (eo_worker.c,
 * outbox_worker.c). They link only the library, not the Criterion-based test support, so these
 * are header-only.
 */
#ifndef HERALD_TESTS_CRASH_WORKER_H
#define HERALD_TESTS_CRASH_WORKER_H

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC, ms. */
static inline int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleeps ms, resumed after signals. */
static inline void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0) {
    }
}

#endif
