// SPDX-License-Identifier: MIT
/*
 * support.h - shared test fixtures: a temp dir per test, a fake clock, a store opened on it,
 * and a runner for the `herald` CLI that captures exit code, stdout and stderr; plus the small
 * predicates and asserting wrappers of the public API that several suites use.
 * Functions that assert (hx_create_queue, hx_send, ...) may only be called from a test.
 */
#ifndef HERALD_TESTS_SUPPORT_H
#define HERALD_TESTS_SUPPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>
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
/* Opens DIR/FILE (e.g. "service.db", "bus.db") like hx_open; asserts success. */
herald_store *hx_open_file(const char *dir, const char *file, hx_clock *clock);

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

/* ---- per-test environment ------------------------------------------------------------------- */

/* A test's temp dir, fake clock and the store opened on DIR/herald.db. */
typedef struct hx_env {
    char *dir;           /* fresh temp dir; removed by hx_env_teardown */
    hx_clock clock;      /* fake clock at 2026-01-01T00:00:00Z (unused with HX_ENV_REAL_CLOCK) */
    herald_store *store; /* NULL with HX_ENV_NO_STORE, or after hx_env_close */
    unsigned flags;
} hx_env;

enum {
    HX_ENV_REAL_CLOCK = 1u << 0, /* the store runs on the real clock (e.g. consumer timeouts) */
    HX_ENV_NO_STORE = 1u << 1,   /* make the dir and clock only; the test opens what it needs */
};

/* Makes the dir and clock and (unless HX_ENV_NO_STORE) opens the store; aborts on failure. */
void hx_env_setup(hx_env *e, unsigned flags);
/* hx_env_setup(e, 0), then creates the queue `queue` with default settings. */
void hx_env_setup_with_queue(hx_env *e, const char *queue);
/* Closes the store (if open), removes the dir and clears *e. */
void hx_env_teardown(hx_env *e);
/* Closes the store (draining its writer); e->store becomes NULL. */
void hx_env_close(hx_env *e);
/* Opens DIR/herald.db again, with the env's clock, into e->store (which must be closed). */
void hx_env_reopen(hx_env *e);

/* ---- time ----------------------------------------------------------------------------------- */

/* Polls cond every 5 ms for up to timeout_ms (then goes on: assert the condition after it). */
#define HX_WAIT_UNTIL(cond, timeout_ms)                                                           \
    do {                                                                                          \
        for (int64_t w_ = 0; w_ < (int64_t)(timeout_ms) / 5 && !(cond); w_++)                     \
            hx_sleep_ms(5);                                                                       \
    } while (0)

/* Waits until cond holds: re-checks it about every millisecond and fails the test, naming cond,
 * after a generous HX_AWAIT_MS (an outcome that never comes, not a slow one). For outcomes that
 * follow from what the test did; it asserts no timing. Only from a test (it asserts). */
#define HX_AWAIT_MS 30000
#define HX_AWAIT(cond)                                                                            \
    do {                                                                                          \
        int64_t hx_end_ = hx_mono_ms() + HX_AWAIT_MS;                                             \
        while (!(cond)) {                                                                         \
            if (hx_mono_ms() > hx_end_)                                                           \
                cr_assert_fail("%s:%d: waited %d s for: %s", __FILE__, __LINE__,                  \
                               HX_AWAIT_MS / 1000, #cond);                                        \
            hx_sleep_ms(1);                                                                       \
        }                                                                                         \
    } while (0)

int64_t hx_wall_ms(void); /* CLOCK_REALTIME, ms */
int64_t hx_mono_ms(void); /* CLOCK_MONOTONIC, ms */
void hx_sleep_us(int64_t us); /* real sleep, resumed after signals */
void hx_sleep_ms(int64_t ms);

/* ---- predicates ----------------------------------------------------------------------------- */

/* Case-insensitive search for needle in hay; '_' in needle also matches ' ' or '-' (so
 * "max_retries" matches "max retries" and "max-retries"). False if either is NULL. */
bool hx_mentions(const char *hay, const char *needle);
/* Case-insensitive substring test, nothing more. False if either is NULL. */
bool hx_contains_ci(const char *hay, const char *needle);
/* 8-4-4-4-12 hex digits with dashes. False for NULL. */
bool hx_is_uuid(const char *s);
/* The message's body is exactly the string s. */
bool hx_body_is(const herald_message *m, const char *s);

/* ---- asserting wrappers of the public API --------------------------------------------------- */

/* herald_queue_create; asserts success. st may be NULL (defaults). */
void hx_create_queue(herald_store *s, const char *name, const herald_queue_settings *st);
/* herald_send; asserts success. id may be NULL. */
void hx_send(herald_store *s, const char *q, const herald_msg *m, char id[HERALD_ID_SIZE]);
/* Sends one JSON message with this delay (HERALD_UNSET: the queue's); asserts success. */
void hx_send_json(herald_store *s, const char *q, const char *json, int64_t delay_s,
                  char id[HERALD_ID_SIZE]);
/* herald_consumer_start; asserts success and returns the consumer. */
herald_consumer *hx_consumer_start(herald_store *s, const herald_consumer_cfg *c);
/* An effectively-once tx handler: counts its calls in *(atomic_int *)ud (ud may be NULL) and
 * inserts the event's event_id into the user table effects(event_id); fails (-1) a message
 * without an envelope. */
int hx_effects_handler(herald_tx *tx, const herald_message *m, const herald_envelope *en,
                       void *ud);
/* herald_queue_stats_get; asserts success. */
herald_queue_stats hx_stats(herald_store *s, const char *q);
/* Empties *b, then pulls up to max_n with this visibility (HERALD_UNSET: default); asserts
 * rc 0 and returns the count. */
size_t hx_pull(herald_store *s, const char *q, int max_n, int64_t visibility_ms, herald_batch *b);
/* Empties *b, then peeks up to 100 messages; asserts rc 0 and returns the count. */
size_t hx_peek(herald_store *s, const char *q, herald_batch *b);
/* Acks one lease; asserts rc 0 and returns the settle result. */
herald_settle_result hx_ack1(herald_store *s, const char *q, const char *lease);

/* ---- SQL ------------------------------------------------------------------------------------ */

/* herald_sql_query row callback: copies up to 4 integer columns of the row into
 * ((int64_t *)ud)[0..3] (the last row wins). */
int hx_cb_ints(void *ud, const herald_row *r);
/* The first column of the last row of `sql` (no args) as an integer, -1 without rows; asserts
 * success. */
int64_t hx_sql_int(herald_store *s, const char *sql);

/* ---- child processes (crash tests) ---------------------------------------------------------- *
 * A child never calls Criterion: it _exit()s with a code. Children die with the test process
 * (PR_SET_PDEATHSIG); every wait is bounded. */

/* Writes all n bytes to fd; _exit(90) if that fails (the parent went away). For children. */
void hx_write_all(int fd, const void *p, size_t n);
/* fork() with a pipe child -> parent (wfd NULL: no pipe, rfd unused). Returns the pid, 0 in the
 * child. The parent gets the read end in *rfd (*wfd = -1), the child the write end in *wfd
 * (*rfd = -1). Flushes stdio first. */
pid_t hx_fork_child(int *rfd, int *wfd);
/* fork + execv(argv[0], argv) with HERALD_FAULT=fault in the environment (NULL: unset); the
 * child _exit(127)s if exec fails. Returns the pid. */
pid_t hx_exec_worker(const char *const *argv, const char *fault);
/* Waits (bounded) for the child to end and returns its wait status; on timeout SIGKILLs and
 * reaps it, then fails the test. */
int hx_reap(pid_t pid, int64_t timeout_ms);
/* SIGKILLs the child, then hx_reap(pid, timeout_ms). */
int hx_kill_and_reap(pid_t pid, int64_t timeout_ms);
/* Asserts that wait status st is a death by SIGKILL. what labels the failure (NULL: none);
 * codes explains the child's exit codes (for a child that exited by itself). */
void hx_assert_killed(int st, const char *what, const char *codes);
/* A child's last step: waits "forever" (60 s) for the parent's SIGKILL, then _exit(code). */
_Noreturn void hx_child_wait_for_kill(int code);

#endif
