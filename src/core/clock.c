// SPDX-License-Identifier: MIT
/*
 * clock.c - wall clock (stored times, ms since the epoch) and monotonic clock (scheduling, ns).
 * A herald_clock injected by tests replaces the wall clock everywhere a stored time is made.
 */
#include "core/core.h"

#include <stdio.h>
#include <time.h>

int64_t herald__wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t herald__mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t herald__clock_now(const herald_clock *c)
{
    return c && c->now_ms ? c->now_ms(c->ud) : herald__wall_ms();
}

void herald__iso8601(int64_t ms, char *buf, size_t cap)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}
