// SPDX-License-Identifier: MIT
/*
 * uuid.c - UUIDv7 (RFC 9562 §5.7) from getrandom(2).
 * Layout: 48-bit unix ms | ver 7 | 12-bit rand_a used as a counter | var 10 | 62-bit random.
 * Monotonic within the process (RFC 9562 §6.2 method 1): when the clock does not advance, the
 * 12-bit counter increments; when it wraps, the timestamp is advanced by one ms.
 * Threads: any; the last (ms, counter) pair is guarded by `mu`; random bytes come from a
 * per-thread pool, emptied in a fork child (pthread_atfork) so it never repeats the parent's.
 */
#include "core/core.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t last_ms; /* guarded by mu */
static uint32_t last_ctr; /* guarded by mu */

static void fill_random_sys(void *p, size_t n)
{
    uint8_t *b = p;
    while (n > 0) {
        ssize_t r = getrandom(b, n, 0);
        if (r < 0)
            continue; /* EINTR; getrandom on a booted system does not otherwise fail */
        b += r;
        n -= (size_t)r;
    }
}

/* Random bytes from a per-thread pool refilled by getrandom(2) 4 KiB at a time: one syscall
 * per 256 ids instead of one per id. After fork() the child's only thread (the one that forked)
 * empties its pool in an atfork handler, so parent and child never hand out the same bytes. */
static _Thread_local uint8_t pool[4096];
static _Thread_local size_t pool_left;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static void pool_forget(void)
{
    memset(pool, 0, sizeof pool);
    pool_left = 0;
}

static void atfork_register(void)
{
    pthread_atfork(NULL, NULL, pool_forget);
}

static void fill_random(void *p, size_t n)
{
    if (n > sizeof pool) {
        fill_random_sys(p, n);
        return;
    }
    pthread_once(&atfork_once, atfork_register);
    if (pool_left < n) {
        fill_random_sys(pool, sizeof pool);
        pool_left = sizeof pool;
    }
    memcpy(p, pool + sizeof pool - pool_left, n);
    memset(pool + sizeof pool - pool_left, 0, n);
    pool_left -= n;
}

uint64_t herald__rand64(void)
{
    uint64_t v;
    fill_random(&v, sizeof v);
    return v;
}

void herald__uuid_format(const uint8_t b[16], char out[HERALD_ID_SIZE])
{
    static const char hex[] = "0123456789abcdef";
    int j = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[j++] = '-';
        out[j++] = hex[b[i] >> 4];
        out[j++] = hex[b[i] & 15];
    }
    out[j] = 0;
}

void herald__uuid7_at(int64_t ms, char out[HERALD_ID_SIZE])
{
    uint8_t b[16];
    fill_random(b, sizeof b);
    pthread_mutex_lock(&mu);
    uint32_t ctr;
    if (ms > last_ms) {
        ctr = ((uint32_t)b[6] << 8 | b[7]) & 0x3ff; /* random start, leaves headroom */
    } else {
        ms = last_ms;
        ctr = last_ctr + 1;
        if (ctr > 0xfff) {
            ms++;
            ctr = 0;
        }
    }
    last_ms = ms;
    last_ctr = ctr;
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < 6; i++)
        b[i] = (uint8_t)((uint64_t)ms >> (40 - 8 * i));
    b[6] = (uint8_t)(0x70 | (ctr >> 8));
    b[7] = (uint8_t)(ctr & 0xff);
    b[8] = (uint8_t)(0x80 | (b[8] & 0x3f));
    herald__uuid_format(b, out);
}

void herald__uuid7(char out[HERALD_ID_SIZE])
{
    herald__uuid7_at(herald__wall_ms(), out);
}

bool herald__uuid_parse(const char *s, uint8_t out[16])
{
    if (strlen(s) != 36)
        return false;
    int j = 0;
    for (int i = 0; i < 36;) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
            i++;
            continue;
        }
        int hi = herald__hexdigit(s[i]), lo = herald__hexdigit(s[i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[j++] = (uint8_t)(hi << 4 | lo);
        i += 2;
    }
    return true;
}
