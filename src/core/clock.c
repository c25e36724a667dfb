// SPDX-License-Identifier: MIT
/*
 * clock.c - wall clock (stored times, ms since the epoch) and monotonic clock (scheduling, ns).
 * A herald_clock injected by tests replaces the wall clock everywhere a stored time is made.
 * herald__iso8601 formats a time by hand (it runs for every event encoded).
 * Threads: any (no state).
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

static void put_digits(char *d, unsigned v, int n)
{
    for (int i = n - 1; i >= 0; i--, v /= 10)
        d[i] = (char)('0' + v % 10);
}

/* On every enveloped send: formatted by hand (snprintf + gmtime_r cost ~10x more), the
 * calendar date by Hinnant's days-to-civil algorithm. */
void herald__iso8601(int64_t ms, char *buf, size_t cap)
{
    static const int64_t max_ms = 253402300799999; /* 9999-12-31T23:59:59.999Z */
    if (ms < 0 || ms > max_ms) {
        time_t secs = (time_t)(ms / 1000);
        struct tm tm;
        gmtime_r(&secs, &tm);
        snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
        return;
    }
    if (cap < 25) {
        if (cap)
            buf[0] = 0;
        return;
    }
    int64_t days = ms / 86400000, in_day = ms % 86400000;
    int64_t z = days + 719468, era = z / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    unsigned day = doy - (153 * mp + 2) / 5 + 1;
    unsigned month = mp < 10 ? mp + 3 : mp - 9;
    unsigned year = (unsigned)(yoe + era * 400) + (month <= 2);
    unsigned secs = (unsigned)(in_day / 1000);
    put_digits(buf, year, 4);
    buf[4] = '-';
    put_digits(buf + 5, month, 2);
    buf[7] = '-';
    put_digits(buf + 8, day, 2);
    buf[10] = 'T';
    put_digits(buf + 11, secs / 3600, 2);
    buf[13] = ':';
    put_digits(buf + 14, secs / 60 % 60, 2);
    buf[16] = ':';
    put_digits(buf + 17, secs % 60, 2);
    buf[19] = '.';
    put_digits(buf + 20, (unsigned)(in_day % 1000), 3);
    buf[23] = 'Z';
    buf[24] = 0;
}
