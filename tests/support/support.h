// SPDX-License-Identifier: MIT
/*
 * support.h - shared test fixtures: a temp dir per test, a fake clock, a store opened on it,
 * and a runner for the `herald` CLI that captures exit code, stdout and stderr.
 */
#ifndef HERALD_TESTS_SUPPORT_H
#define HERALD_TESTS_SUPPORT_H

#include <stdint.h>
#include <stddef.h>
#include "herald.h"

/* A fake wall clock; starts at 2026-01-01T00:00:00Z. Thread-safe. */
typedef struct hx_clock {
    herald_clock clock; /* pass &c->clock in herald_store_cfg */
    int64_t now_ms;     /* atomically accessed */
} hx_clock;
void hx_clock_init(hx_clock *c);
void hx_clock_advance(hx_clock *c, int64_t ms);
int64_t hx_clock_now(hx_clock *c);

/* Makes a fresh temp dir (mkdtemp under $TMPDIR or /tmp); aborts on failure. Caller frees
 * with hx_rmrf() + free(). */
char *hx_tmpdir(void);
void hx_rmrf(const char *dir);

/* "sqlite:DIR/NAME"; returns a static-per-call malloc'd string (caller frees). */
char *hx_url(const char *dir, const char *name);

/* Opens DIR/herald.db with the fake clock (clock may be NULL = real clock); asserts success. */
herald_store *hx_open(const char *dir, hx_clock *clock);

/* Runs the herald CLI (HERALD_BIN) with argv (NULL-terminated, without argv[0]), feeding
 * stdin_text (may be NULL = empty stdin). Captures stdout/stderr (malloc'd, NUL-terminated,
 * caller frees; out/err may be NULL). Returns the exit code, or 128+signal. */
int hx_cli(const char *const *argv, const char *stdin_text, char **out, char **err);

/* Path of the herald binary under test. */
const char *hx_herald_bin(void);

/* Reads a whole file (NUL-terminated); NULL if missing. */
char *hx_read_file(const char *path, size_t *len);

/* CPU time (user+sys, microseconds) of this process so far. */
int64_t hx_cpu_us(void);

#endif
