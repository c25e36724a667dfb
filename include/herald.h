// SPDX-License-Identifier: MIT
/*
 * herald.h - the one public header of Herald: durable queues on an embedded store, topics and
 * CloudEvents-style events with an optional catalog, the consumer runtime that drives C handlers
 * from queues (effectively-once transactional handlers included), fan-out routes, the
 * transactional outbox, and the configuration-file runtime.
 *
 * Conventions (hold for every function below unless its comment says otherwise):
 *   - Fallible functions return int: 0 ok, < 0 error. OS failures are -errno; Herald's own codes
 *     are the HERALD_E* values (<= -4000). herald_strerror(rc) names any of them.
 *   - herald_last_error() returns a thread-local human message for the most recent failure on
 *     this thread (it names what is wrong: the field, the limit, the queue). Valid until the next
 *     Herald call on the same thread.
 *   - Arguments are borrowed for the call. Out-parameters are set only on success.
 *   - Times stored and reported are wall-clock milliseconds since the Unix epoch (`*_ms`);
 *     durations are milliseconds (`*_ms`) unless the name says seconds (`*_s`).
 *   - Threads: a herald_store is safe to use from any number of threads at once.
 *   - Callbacks that run inside a store: tx handlers, route functions, outbox functions and
 *     herald_send_cb completions run on the store's own writer (or syncer) thread, and a
 *     herald_sql_query row callback runs while the store's reader is held. Such a callback
 *     must not wait for what runs it: a call on the SAME store that would - from the writer or
 *     syncer, any synchronous write (herald_send, herald_sql_exec, herald_queue_create, ...) or
 *     herald_store_close; from a row callback, those and every read (herald_queue_stats_get,
 *     herald_sql_query, ...) - fails at once with HERALD_EINVAL and herald_last_error() says
 *     why, instead of hanging forever. What such a callback may use: its own handle
 *     (herald_tx_*, herald_row_*), herald_send_batch_async, and other stores. (Stopping a
 *     consumer, router or outbox flusher of that store from it is not detected: it would wait
 *     for itself.)
 *   - Nothing that writes returns before its transaction is durable in the store's durability
 *     mode (see herald_durability).
 */
#ifndef HERALD_H
#define HERALD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define HERALD_API __attribute__((visibility("default")))
#else
#define HERALD_API
#endif

/* ---------------------------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------------------------- */

/* X-macro list: name, value, HTTP status, short text. Also yields herald_err_name(). */
#define HERALD_ERRORS(X)                                                                          \
    X(HERALD_EINVAL, -4000, 400, "invalid argument")                                              \
    X(HERALD_ENOQUEUE, -4001, 404, "queue not found")                                             \
    X(HERALD_EEXIST, -4002, 409, "already exists")                                                \
    X(HERALD_ETOOBIG, -4003, 413, "too large")                                                    \
    X(HERALD_EBADJSON, -4004, 400, "body is not valid JSON")                                      \
    X(HERALD_EBADTYPE, -4005, 400, "bad content type")                                            \
    X(HERALD_EDELAY, -4006, 400, "delay out of range")                                            \
    X(HERALD_EBATCH, -4007, 400, "batch has too many messages")                                   \
    X(HERALD_ELEASE, -4008, 400, "malformed lease id")                                            \
    X(HERALD_EURL, -4009, 400, "malformed store URL")                                             \
    X(HERALD_ENOTHERALD, -4010, 500, "file is not a Herald database")                             \
    X(HERALD_ESCHEMA, -4011, 500, "database schema is newer than this Herald")                    \
    X(HERALD_ESTORE, -4012, 500, "store failure")                                                 \
    X(HERALD_EBUSY, -4013, 503, "store is busy")                                                  \
    X(HERALD_EPAUSED, -4014, 409, "queue delivery is paused")                                     \
    X(HERALD_ENOMEM, -4015, 500, "out of memory")                                                 \
    X(HERALD_ECLOSED, -4016, 500, "store is closing")                                             \
    X(HERALD_EIO, -4017, 500, "I/O error on the store")                                           \
    X(HERALD_EREADONLY, -4018, 500, "store is read-only or not writable")                      \
    X(HERALD_EENVELOPE, -4019, 400, "malformed event envelope")                                 \
    X(HERALD_ESQL, -4020, 400, "SQL statement failed")                                          \
    X(HERALD_EDENIED, -4021, 403, "not allowed")                                               \
    X(HERALD_ENOTOPIC, -4022, 404, "topic not found")                                           \
    X(HERALD_ECONFIG, -4023, 400, "bad configuration or catalog file")                          \
    X(HERALD_ECATALOG, -4024, 400, "event does not match the catalog")                          \
    X(HERALD_ETIMEDOUT, -4025, 504, "timed out")

enum herald_err {
#define HERALD_X_ENUM(name, value, http, text) name = (value),
    HERALD_ERRORS(HERALD_X_ENUM)
#undef HERALD_X_ENUM
};

/* Short static text for any rc (HERALD_E* or -errno). Never NULL. */
HERALD_API const char *herald_strerror(int rc);
/* Symbolic name ("HERALD_ENOQUEUE", "ENOENT"), never NULL. */
HERALD_API const char *herald_err_name(int rc);
/* The detailed message of this thread's last failed call (see Conventions). Never NULL. */
HERALD_API const char *herald_last_error(void);
/* Records text (copied, at most 511 bytes, invalid UTF-8 replaced; NULL or "": herald_strerror(rc))
 * as this thread's last error and returns rc, so code that fails on its own - the functions
 * `herald catalog gen` generates, a wrapper of your own - can report as Herald does:
 * `return herald_last_error_set(HERALD_EINVAL, "order.placed payload: field 'id' is NULL");` */
HERALD_API int herald_last_error_set(int rc, const char *text);

/* ---------------------------------------------------------------------------------------------
 * Store
 * ------------------------------------------------------------------------------------------- */

typedef struct herald_store herald_store;

/* Durability of a committed write.
 *   HERALD_DURABILITY_FULL (default): every commit group is fsynced before any caller in it is
 *     released. An accepted message survives process crash and power loss. The fsync runs
 *     beside the next group's work, so a reader (stats, peek, herald_sql_query) may see a commit
 *     a moment before it is durable; no call returns, no callback runs and no lease is handed
 *     out before. (A tx_handler may already process such a message in the next group: its
 *     effects commit after it, so a power loss takes both or neither.) If the fsync fails
 *     (HERALD_EIO), the outcome of the writes not yet confirmed is unknown - as with any
 *     database - and the store refuses writes until reopened (see "I/O failures" below).
 *   HERALD_DURABILITY_NORMAL: commits are written to the log but fsynced only at checkpoints,
 *     which a thread of the store runs every ~4 MiB of log. Survives a process crash (kill -9).
 *     A power loss or OS crash may lose the commits made since the last checkpoint: usually
 *     under ~8 MiB of log (a fraction of a second of writes), at most the log's bound below.
 *     Never corrupts the database.
 * The log's bound (both modes): the write-ahead log (PATH-wal) holds at most 10,000 pages of
 *   4 KiB (~40 MiB) plus one commit group (what every thread submitted while the previous group
 *   committed; one purge or herald_sql_exec writes all it changes in one group; a file grown
 *   past the bound by such a group shrinks back at the log's next restart). Past ~32 MiB
 *   the writer restarts the log when no reader is in the way; at 10,000 pages no group begins
 *   until it has: it waits up to 10 s for readers of older snapshots (a herald_sql_query still
 *   running its row callbacks, a read transaction of another process) and then fails that
 *   group's writes with HERALD_EBUSY, whose message says so; writes resume once the reader ends.
 *   Each process writing to the store may add one group of its own.
 * I/O failures: a write, fsync or checkpoint that fails (disk full, EIO) fails the writes not
 *   yet confirmed with HERALD_EIO; herald_last_error() names the cause ("disk full", "I/O error
 *   on fsync", "I/O error on write", "checkpoint failed: ..."). The error is sticky: every later
 *   write fails with HERALD_EIO and the same cause, reads go on. No confirmed write is lost. To
 *   write again, fix the cause - free space: at least the size of PATH-wal, which checkpoints
 *   copy into the database file - and reopen: herald_store_close(), then herald_store_open()
 *   (`herald run` keeps its store open until it exits: restart it). */
typedef enum herald_durability {
    HERALD_DURABILITY_FULL = 0,
    HERALD_DURABILITY_NORMAL = 1,
} herald_durability;

/* Clock injection for tests. now_ms returns wall-clock ms since the epoch; it is called from
 * any thread of the store. Every timer of Herald runs on this clock: stored times, delays and
 * retry delays, retention, lease expiry and renewal, a consumer's max_batch_timeout, the rate
 * limiter's refill, the outbox flusher's failure backoff. Time moves only when now_ms's value
 * does; a thread waiting for a due time sleeps at most until then in real time (or its poll
 * interval) and re-reads the clock whenever it wakes: after moving a fake clock, call
 * herald_store_wake() on each store using it, so waiting threads see the new time at once. */
typedef struct herald_clock {
    int64_t (*now_ms)(void *ud);
    void *ud;
} herald_clock;

typedef struct herald_store_cfg {
    herald_durability durability; /* default FULL; overrides the URL's ?durability= */
    bool durability_set;          /* true: use .durability; false: URL or default */
    const herald_clock *clock;    /* NULL = real clock. Keeps: clock until herald_store_close */
} herald_store_cfg;

/* Opens (creating if missing) the store at `url` and applies pending schema migrations.
 * url: "sqlite:PATH" or "sqlite:PATH?durability=full|normal"; NULL means "sqlite:herald.db".
 * cfg: may be NULL (defaults).
 * Errors: HERALD_EURL (malformed URL or unknown scheme), HERALD_EREADONLY / -EACCES (path not
 *   writable), HERALD_ENOTHERALD (the file exists and is not a Herald database, or is not a
 *   regular file: /dev/null, a directory, a FIFO), HERALD_ESCHEMA (written by a newer Herald),
 *   HERALD_EIO (disk full or an I/O error: the message names it), HERALD_ESTORE, HERALD_ENOMEM.
 * On success *out owns the store; free it with herald_store_close(). */
HERALD_API int herald_store_open(const char *url, const herald_store_cfg *cfg, herald_store **out);

/* Drains the group-commit writer (every submitted write completes first), then closes.
 * NULL does nothing. No other call on the store may run concurrently or afterwards. Called from
 * a callback running inside s (Conventions) it would wait for itself: it logs why, sets
 * herald_last_error() and returns, leaving the store open. */
HERALD_API void herald_store_close(herald_store *s);

/* Current schema version of an open store (the highest applied migration). */
HERALD_API int herald_store_schema_version(herald_store *s);
/* Highest schema version this build knows. */
HERALD_API int herald_schema_version_supported(void);

/* Wakes every thread of Herald waiting on this store (consumers, routers, the outbox flusher
 * of this service store) so it re-reads the clock and the queues. Tests call it after
 * advancing an injected clock (see herald_clock). Thread: any, callbacks included. */
HERALD_API void herald_store_wake(herald_store *s);

/* ---------------------------------------------------------------------------------------------
 * Queues
 * ------------------------------------------------------------------------------------------- */

#define HERALD_QUEUE_NAME_MAX 63         /* bytes; [A-Za-z0-9_-], first char alnum */
#define HERALD_MAX_MESSAGE_BYTES 128000  /* default per-message limit (Cloudflare's) */
#define HERALD_MAX_BATCH_MESSAGES 100    /* per send-batch and per lease */
#define HERALD_MAX_BATCH_BYTES 256000    /* per send-batch, bodies summed */
#define HERALD_MAX_DELAY_S (365 * 86400) /* delays: 0 .. 365 days */
#define HERALD_DEFAULT_RETENTION_S 345600
#define HERALD_MIN_RETENTION_S 60
#define HERALD_MAX_RETENTION_S (365 * 86400)
#define HERALD_DEFAULT_MAX_RETRIES 3
#define HERALD_MAX_RETRIES_LIMIT 100
#define HERALD_DEFAULT_VISIBILITY_MS 30000
#define HERALD_MAX_VISIBILITY_MS (12 * 3600 * 1000)
#define HERALD_ID_SIZE 37       /* UUID text + NUL */
#define HERALD_LEASE_ID_SIZE 64 /* lease id text + NUL */
#define HERALD_UNSET (-1)       /* "not given" for optional integer settings and delays */

/* Settings of a queue. Integer fields set to HERALD_UNSET take the default (create) or stay
 * unchanged (update); dead_letter_queue NULL means none (create) / unchanged (update), "" clears. */
typedef struct herald_queue_settings {
    int64_t delivery_delay_s;         /* default 0; 0 .. HERALD_MAX_DELAY_S */
    int64_t message_retention_period_s; /* default 4 days; 60 s .. 365 days; counted from when a
                                         * message first becomes visible */
    int64_t max_message_bytes;        /* default 128,000; 1 .. 1,048,576 */
    int64_t max_retries;              /* default 3; 0 .. 100: a message is delivered at most
                                       * max_retries + 1 times, then dead-lettered or deleted */
    int64_t retry_delay_s;            /* default 0; 0 .. HERALD_MAX_DELAY_S */
    const char *dead_letter_queue;    /* created if missing when the first message dies */
} herald_queue_settings;

/* Initializes every field to "unset". */
HERALD_API void herald_queue_settings_init(herald_queue_settings *s);

typedef struct herald_queue_info {
    char name[HERALD_QUEUE_NAME_MAX + 1];
    char queue_id[HERALD_ID_SIZE]; /* stable UUID of the queue */
    int64_t created_ms, modified_ms;
    int64_t delivery_delay_s, message_retention_period_s, max_message_bytes, max_retries,
        retry_delay_s;
    char dead_letter_queue[HERALD_QUEUE_NAME_MAX + 1]; /* "" when none */
    bool is_paused;
} herald_queue_info;

typedef struct herald_queue_stats {
    int64_t backlog_count;              /* messages stored: visible + delayed + leased */
    int64_t backlog_bytes;              /* their body bytes */
    int64_t oldest_message_timestamp_ms; /* send time of the oldest, 0 when empty; looked for
                                          * among the delayed and leased messages and the next
                                          * 100 in delivery order (one that became visible again
                                          * behind 100 younger ones can be missed) */
    int64_t visible_count;              /* deliverable now */
    int64_t delayed_count;              /* not yet visible (delay or retry delay) */
    int64_t leased_count;               /* in flight under a lease */
    int64_t sent_total, acked_total, retried_total, dead_lettered_total, deleted_total,
        expired_total; /* counters since creation; deleted = exhausted with no DLQ */
} herald_queue_stats;

/* Creates a queue. settings may be NULL. Errors: HERALD_EINVAL (bad name or a setting out of
 * range; the message names it), HERALD_EEXIST (name taken), store errors. */
HERALD_API int herald_queue_create(herald_store *s, const char *name,
                                   const herald_queue_settings *settings);
/* Changes the settings given (fields not UNSET/NULL). Errors: HERALD_ENOQUEUE, HERALD_EINVAL. */
HERALD_API int herald_queue_update(herald_store *s, const char *name,
                                   const herald_queue_settings *settings);
/* Errors: HERALD_ENOQUEUE. */
HERALD_API int herald_queue_get(herald_store *s, const char *name, herald_queue_info *out);
/* *out: array of *n_out infos sorted by name, free with herald_free(). */
HERALD_API int herald_queue_list(herald_store *s, herald_queue_info **out, size_t *n_out);
/* Deletes the queue and every message in it. Errors: HERALD_ENOQUEUE. */
HERALD_API int herald_queue_delete(herald_store *s, const char *name);
/* Deletes every stored message (visible, delayed, leased). n_deleted may be NULL. */
HERALD_API int herald_queue_purge(herald_store *s, const char *name, int64_t *n_deleted);
/* Pause stops delivery (pull returns HERALD_EPAUSED, consumers wait); sends are still accepted.*/
HERALD_API int herald_queue_pause(herald_store *s, const char *name);
HERALD_API int herald_queue_resume(herald_store *s, const char *name);
/* A queue's stats. Costs the same however many messages wait: the store keeps each queue's
 * count and bytes; only the delayed and leased messages are looked at one by one (and, between
 * a message's retention end and the next retention sweep, the queue's messages). Errors:
 * HERALD_ENOQUEUE, HERALD_EINVAL (NULL store). */
HERALD_API int herald_queue_stats_get(herald_store *s, const char *name, herald_queue_stats *out);
/* Waits until queue `name` holds no message (backlog_count 0: nothing visible, delayed or
 * leased), for at most timeout_ms of the store's clock (0: check once). Wakes on commits in
 * this process and, for other processes' commits, on the consumers' adaptive poll (1 ms after
 * a change, up to 250 ms idle): no busy loop. Returns 0 when drained. Errors: HERALD_ETIMEDOUT
 * (still not empty at the deadline; the message says how many remain), HERALD_ENOQUEUE (also
 * for a NULL or invalid name), HERALD_EINVAL (NULL store, timeout_ms < 0 or over 365 days;
 * or called from a callback the store runs - a tx_handler, route, outbox or completion callback,
 * a herald_sql_query row callback - where it would wait for its own thread). */
HERALD_API int herald_queue_wait_empty(herald_store *s, const char *name, int64_t timeout_ms);

/* ---------------------------------------------------------------------------------------------
 * Messages: send
 * ------------------------------------------------------------------------------------------- */

typedef enum herald_content_type {
    HERALD_CONTENT_JSON = 0, /* default; the body must parse as one JSON value (UTF-8) */
    HERALD_CONTENT_TEXT = 1, /* valid UTF-8 text */
    HERALD_CONTENT_BYTES = 2,
} herald_content_type;

/* Parses "json" / "text" / "bytes". Errors: HERALD_EBADTYPE. */
HERALD_API int herald_content_type_parse(const char *s, herald_content_type *out);
HERALD_API const char *herald_content_type_name(herald_content_type t);

/* One message to send. Borrowed for the call. Start from HERALD_MSG_INIT (or herald_msg_init):
 *     herald_msg m = HERALD_MSG_INIT;
 *     m.body = "{\"order\":1}";
 *     m.body_len = strlen(m.body);
 * Beware: a zero-initialised herald_msg (`= { 0 }`, memset, calloc) has delay_s = 0, which is an
 * explicit "no delay": it overrides the batch delay and the queue's delivery_delay (a queue with a
 * 60 s delivery_delay would deliver it at once). HERALD_MSG_INIT leaves delay_s unset. */
typedef struct herald_msg {
    const void *body;
    size_t body_len;
    herald_content_type content_type; /* default HERALD_CONTENT_JSON */
    int64_t delay_s; /* HERALD_UNSET: batch delay, else the queue's delivery_delay. 0 overrides */
} herald_msg;

/* A message with no body, content type json and delay_s unset. An initializer; also usable as a
 * compound literal: `msgs[i] = (herald_msg)HERALD_MSG_INIT;`. */
#define HERALD_MSG_INIT                                                                           \
    { .body = NULL, .body_len = 0, .content_type = HERALD_CONTENT_JSON, .delay_s = HERALD_UNSET }

/* Sets *m to HERALD_MSG_INIT (for messages in arrays or allocated memory). */
HERALD_API void herald_msg_init(herald_msg *m);

/* Checks one message as a send would (content type, JSON / UTF-8 validity, size against the
 * 128,000-byte default, delay range) without sending it. Errors: as herald_send. */
HERALD_API int herald_msg_validate(const herald_msg *m);

/* Sends one message; returns after it is durable. id_out (may be NULL) receives its id.
 * Errors: HERALD_ENOQUEUE, HERALD_ETOOBIG (body > queue max_message_bytes), HERALD_EBADJSON,
 *   HERALD_EBADTYPE (text not UTF-8, unknown type), HERALD_EDELAY, store errors. */
HERALD_API int herald_send(herald_store *s, const char *queue, const herald_msg *m,
                           char id_out[HERALD_ID_SIZE]);

/* Sends 1..100 messages (bodies summed <= 256,000 bytes) atomically: all or none.
 * batch_delay_s: HERALD_UNSET or 0 .. 365 days; applies to messages whose delay_s is UNSET.
 * ids_out (may be NULL): n slots, filled in input order after the batch is durable.
 * Errors: as herald_send, plus HERALD_EBATCH (0 or > 100 messages), HERALD_ETOOBIG (batch bytes);
 *   the message says which index is wrong. */
HERALD_API int herald_send_batch(herald_store *s, const char *queue, const herald_msg *msgs,
                                 size_t n, int64_t batch_delay_s, char (*ids_out)[HERALD_ID_SIZE]);

/* Completion of an asynchronous send: rc as herald_send_batch; ids valid only during the call
 * (n of them, input order; NULL when rc < 0). Runs on a thread of the store (the writer, or in
 * durability full the syncer, which releases commits after their fsync): it must be quick; a
 * synchronous write to this store from it fails with HERALD_EINVAL (Conventions). */
typedef void (*herald_send_cb)(void *ud, int rc, const char (*ids)[HERALD_ID_SIZE], size_t n);

/* Like herald_send_batch, but returns once the batch is validated and queued for the next group
 * commit; cb runs exactly once after it is durable (or failed). Lets one thread keep many batches
 * in flight so that one fsync covers them all. If this returns < 0, cb is never called.
 * The bodies are copied; msgs may be freed on return. */
HERALD_API int herald_send_batch_async(herald_store *s, const char *queue, const herald_msg *msgs,
                                       size_t n, int64_t batch_delay_s, herald_send_cb cb,
                                       void *ud);

/* ---------------------------------------------------------------------------------------------
 * Messages: pull, ack, retry, peek
 * ------------------------------------------------------------------------------------------- */

typedef struct herald_message {
    char id[HERALD_ID_SIZE];             /* stable across retries and dead-lettering */
    int64_t timestamp_ms;                /* when it was first sent */
    herald_content_type content_type;
    const uint8_t *body;                 /* owned by the batch; NUL-terminated for convenience */
    size_t body_len;
    int attempts;                        /* deliveries so far, this one included (from 1) */
    char lease_id[HERALD_LEASE_ID_SIZE]; /* "" in peek results */
    /* Dead-letter history (set on messages in a DLQ, else "" / 0): */
    char dead_from_queue[HERALD_QUEUE_NAME_MAX + 1];
    int dead_attempts;          /* attempts made in the source queue */
    const char *last_error;     /* last failure text, "" if none; owned by the batch */
    int64_t visible_at_ms;      /* peek only: when it is (or was) deliverable */
} herald_message;

typedef struct herald_batch {
    char queue[HERALD_QUEUE_NAME_MAX + 1];
    herald_message *msgs;
    size_t n;
    void *priv_mem; /* owned storage */
} herald_batch;

/* Frees what a batch owns and empties it. NULL or an empty batch is fine. */
HERALD_API void herald_batch_deinit(herald_batch *b);

/* Leases up to max_n (1..100) visible messages for visibility_ms (1 .. 12 h; HERALD_UNSET = 30 s).
 * Each leased message's attempts is incremented. A message whose max_retries + 1 deliveries are
 * used up (its last lease expired unsettled) is dead-lettered instead of delivered; expired
 * messages (retention) are deleted. Returns 0 with b->n == 0 when nothing is visible (no wait).
 * Errors: HERALD_ENOQUEUE, HERALD_EPAUSED, HERALD_EINVAL (max_n, visibility). */
HERALD_API int herald_pull(herald_store *s, const char *queue, int max_n, int64_t visibility_ms,
                           herald_batch *b);

/* Outcome of an ack/retry call, per lease id. */
typedef struct herald_settle_result {
    int64_t n_acked;    /* messages deleted */
    int64_t n_retried;  /* made visible again later */
    int64_t n_dead;     /* moved to the DLQ or deleted: max_retries exhausted */
    int64_t n_missing;  /* lease referred to no message (already acked, purged, expired) */
    int64_t n_stale;    /* retry with a lease that is no longer current: ignored */
} herald_settle_result;

/* Acknowledges (deletes) the messages of the given leases. A late ack (lease expired, even if the
 * message was since redelivered) is accepted. Errors: HERALD_ELEASE (malformed id: nothing is
 * changed), HERALD_EBATCH (more than 10000 lease ids), HERALD_ENOQUEUE. result may be NULL. */
HERALD_API int herald_ack(herald_store *s, const char *queue, const char *const *lease_ids,
                          size_t n, herald_settle_result *result);

/* Makes the messages visible again after delay_s (HERALD_UNSET = the queue's retry_delay_s;
 * 0 .. 365 days). A message that has had max_retries + 1 deliveries goes to the queue's
 * dead-letter queue (kept: id, body, timestamp, attempts, error) or, with none, is deleted and
 * logged. error may be NULL (recorded as the last error); an error text is kept as at most
 * HERALD_ERROR_TEXT_MAX bytes of valid UTF-8 (cut between characters, invalid bytes replaced by
 * U+FFFD), here and in every *_set_error. Errors: as herald_ack, HERALD_EDELAY. */
HERALD_API int herald_retry(herald_store *s, const char *queue, const char *const *lease_ids,
                            size_t n, int64_t delay_s, const char *error,
                            herald_settle_result *result);

#define HERALD_ERROR_TEXT_MAX 255 /* bytes of an error text a message keeps */

/* Up to max_n (1..100) messages in delivery order, without leasing (any state). */
HERALD_API int herald_peek(herald_store *s, const char *queue, int max_n, herald_batch *b);

/* ---------------------------------------------------------------------------------------------
 * Events: the envelope (DomainMessage) every message of an event-driven system carries
 * ------------------------------------------------------------------------------------------- */

#define HERALD_EVENT_TYPE_MAX 100 /* bytes of `type`, dot notation: "research.completed" */
#define HERALD_EVENT_SOURCE_MAX 100
#define HERALD_CORRELATION_ID_MAX 128
/* JSON nesting: a JSON body (and an envelope) may nest at most HERALD_JSON_MAX_DEPTH levels of
 * objects and arrays. An event's payload sits one level inside its envelope, so a payload may
 * nest at most HERALD_JSON_MAX_DEPTH - 1: the payload check, the catalog check and the envelope
 * all apply this one limit. */
#define HERALD_JSON_MAX_DEPTH 512

/* An event to send. Borrowed for the call. */
typedef struct herald_event {
    const char *event_id;       /* NULL: Herald mints a UUIDv7; else a UUID (re-publishing) */
    const char *type;           /* domain.action: [a-z][a-z0-9_]* segments joined by '.', >= 2 */
    const char *source;         /* emitting service: 1..100 of [A-Za-z0-9._:/-] */
    const char *correlation_id; /* NULL or "": none; else 1..128 printable ASCII */
    const char *payload_json;   /* a JSON object (references, not data) */
    size_t payload_len;         /* 0: strlen(payload_json) */
} herald_event;

/* A parsed envelope. Strings are NUL-terminated; payload_json is owned (herald_envelope_deinit). */
typedef struct herald_envelope {
    char event_id[HERALD_ID_SIZE];
    char type[HERALD_EVENT_TYPE_MAX + 1];
    char source[HERALD_EVENT_SOURCE_MAX + 1];
    char correlation_id[HERALD_CORRELATION_ID_MAX + 1]; /* "" when none */
    char timestamp[40];                                 /* ISO 8601 UTC as sent */
    char *payload_json; /* the payload's JSON text as sent, without whitespace between tokens */
    size_t payload_len;
} herald_envelope;

/* Builds the envelope body {"event_id","type","source","timestamp","correlation_id"?,"payload"}
 * (timestamp = now in ISO 8601 UTC with ms; the payload text is kept as given, trimmed).
 * *json_out: NUL-terminated, free with herald_free(); len_out and event_id_out may be NULL.
 * Errors: HERALD_EENVELOPE, with a message naming the field that is wrong. */
HERALD_API int herald_event_encode(herald_store *s, const herald_event *e,
                                   char event_id_out[HERALD_ID_SIZE], char **json_out,
                                   size_t *len_out);

/* Parses an enveloped body. Errors: HERALD_EENVELOPE naming the missing or malformed field. */
HERALD_API int herald_envelope_parse(const void *body, size_t len, herald_envelope *out);
HERALD_API void herald_envelope_deinit(herald_envelope *e);

/* Sends an event: its envelope is the message body (content type json), so every consumer and
 * `herald pull` sees event_id, type, ... in the body. delay_s: HERALD_UNSET or 0 .. 365 days.
 * event_id_out (may be NULL) gets the event's id. Errors: HERALD_EENVELOPE, HERALD_ECATALOG (a
 * strict catalog in force on the store, or set on this handle, refuses it: see
 * herald_store_set_catalog), and as herald_send. */
HERALD_API int herald_send_event(herald_store *s, const char *queue, const herald_event *e,
                                 int64_t delay_s, char event_id_out[HERALD_ID_SIZE]);

/* ---------------------------------------------------------------------------------------------
 * Event catalog: every event type with its payload fields
 * ------------------------------------------------------------------------------------------- */

/* A catalog file (JSONC) looks like:
 *   { "events": {
 *       "research.completed": { "description": "optional text",
 *         "payload": { "brand_slug": "string", "research_ids": "string[]",
 *                      "keywords_researched": "integer", "note": "string?" } } } }
 * Field types: string, integer, number, boolean, string[], object; a trailing '?' marks an
 * optional field. A catalog loads only if herald_catalog_gen_header can turn it into a correct
 * header: field names are C identifiers ([a-z_][a-z0-9_]*, at most 64 bytes, not starting "__")
 * other than C keywords (C11, C23, GNU) and lowercase macros the header's includes or GNU mode
 * predefine (linux, unix, stdin, errno, ...); no two fields of a type may make one struct member
 * (tags + tags_len for a string[] tags; n + has_n for an optional integer, number or boolean n);
 * no two types may make one C identifier (a.b and a.b_tx both give a_b_tx_send; a.b_c and
 * a_b.c); no type may start herald. or hgen. (names of herald.h and the header). */
typedef struct herald_catalog herald_catalog;

typedef enum herald_catalog_mode {
    HERALD_CATALOG_STRICT = 0, /* unknown types and bad payloads are refused (HERALD_ECATALOG) */
    HERALD_CATALOG_WARN = 1,   /* they are sent, and logged as a warning */
} herald_catalog_mode;

/* Loads a catalog file. Errors: HERALD_ECONFIG "FILE:LINE:COL: what" (syntax errors, unknown
 * keys, bad field types, bad event type names, the name clashes above, naming both names and
 * the identifier). *out: free with herald_catalog_free(). */
HERALD_API int herald_catalog_load(const char *path, herald_catalog **out);
HERALD_API int herald_catalog_parse(const char *text, size_t len, const char *name,
                                    herald_catalog **out);
HERALD_API void herald_catalog_free(herald_catalog *c);
/* Number of event types. */
HERALD_API size_t herald_catalog_count(const herald_catalog *c);

/* Checks a payload (a JSON object) against type's schema: the type must be in the catalog,
 * every required field present with its type, no field the catalog does not list. The payload
 * is read by the rules every send applies (any JSON number, \u0000 in strings, nesting up to
 * HERALD_JSON_MAX_DEPTH - 1); an integer field must fit int64_t (its type in the generated
 * struct). len 0: strlen(payload_json). Errors: HERALD_ECATALOG naming the type and the field
 * (or why the payload is not a JSON object). */
HERALD_API int herald_catalog_check(const herald_catalog *c, const char *type,
                                    const char *payload_json, size_t len);

/* The catalog in force on a store is the one applied to it (herald_config_apply, `herald
 * config apply`, `herald run`), from any process: it is stored in the store, and every event
 * any producer sends (herald_send_event, herald_publish_event, herald_tx_send_event,
 * herald_outbox_add, the outbox flusher's publishes, the CLI) is checked against the version in
 * force when the check runs (a process sees another's apply at its next event; see
 * src/store/store_catalog.c for the exact bound). Plain messages are never checked.
 *
 * herald_store_set_catalog adds a catalog of this handle's own, checked in the given mode IN
 * ADDITION to the stored one: it can add checks, never lift the store's. NULL removes it.
 * Errors: HERALD_EINVAL (s NULL, unknown mode). Keeps: c until herald_store_close() or the
 * next call. Thread: any. */
HERALD_API int herald_store_set_catalog(herald_store *s, const herald_catalog *c,
                                        herald_catalog_mode mode);

/* The catalog in force in the store. *version_out: its version (0: none was ever applied; then
 * *catalog_out is NULL). mode_out and catalog_out may be NULL; *catalog_out: free with
 * herald_catalog_free(). Errors: HERALD_EINVAL, store errors. */
HERALD_API int herald_store_catalog_get(herald_store *s, int64_t *version_out,
                                        herald_catalog_mode *mode_out,
                                        herald_catalog **catalog_out);

/* Every catalog version applied to the store, oldest first, as a JSON array:
 *   [{"version":1,"applied_at":"2026-12-04T16:00:00.000Z","mode":"strict","forced":false,
 *     "source":"events.jsonc","event_types":3,"changes":[CHANGE...]}, ...]
 * CHANGE: {"change":"type_added"|"type_removed"|"field_added"|"field_removed"|
 *          "field_type_changed"|"field_made_required"|"field_made_optional"|
 *          "description_changed"|"mode_changed", "type":T (not for mode_changed), "field":F?,
 *          "from":X?, "to":Y?, "breaking":bool, "text":"a sentence"}; a type_removed also has
 *          "breaking_if_in_use":true, and "in_use":"where" when it was. The rule that decides
 *          "breaking": herald_config_apply. *json_out: free with herald_free(). */
HERALD_API int herald_catalog_history(herald_store *s, char **json_out);

/* Writes a self-contained C header: per event type a payload struct whose members are the
 * catalog's fields, and typed constructors/senders, so a changed schema is a compile error in
 * every service that uses it. Descriptions become one-line comments ("*" "/" written "* /").
 * A generated function that refuses its input (a NULL required string, a NaN) returns
 * HERALD_EINVAL and sets herald_last_error() naming the type and the field. guard: the include
 * guard, [A-Z][A-Z0-9_]* (NULL: HERALD_EVENTS_H). *out: NUL-terminated text, free with
 * herald_free(). Errors: HERALD_EINVAL (a bad guard). */
HERALD_API int herald_catalog_gen_header(const herald_catalog *c, const char *guard, char **out);

/* ---------------------------------------------------------------------------------------------
 * Dead letters: history, redrive, audit
 * ------------------------------------------------------------------------------------------- */

/* One failed delivery of a message: a retry (with the handler's error) or an expired lease. */
typedef struct herald_attempt {
    int attempt;        /* which delivery (1 = the first) */
    int64_t at_ms;      /* when it was recorded */
    char queue[HERALD_QUEUE_NAME_MAX + 1];
    char error[512];    /* truncated */
} herald_attempt;

/* One message of queue by id, in any state (not leased by this call): b->n is 1, or 0 when the
 * queue does not hold it. Errors: HERALD_ENOQUEUE. */
HERALD_API int herald_message_get(herald_store *s, const char *queue, const char *message_id,
                                  herald_batch *b);

/* The failed attempts of message_id in time order (kept 14 days). *out: herald_free(). */
HERALD_API int herald_message_attempts(herald_store *s, const char *message_id,
                                       herald_attempt **out, size_t *n_out);

typedef struct herald_redrive_opts {
    const char *const *ids;   /* messages to move; n_ids 0 = every message of the DLQ */
    size_t n_ids;
    int64_t max;              /* at most this many (0 = no limit) */
    const char *to_queue;     /* NULL: back to each message's source queue */
    const char *const *set;   /* edits "path=value": path like payload.brand_slug; value is JSON
                               * if it parses as JSON, else a string */
    size_t n_set;
    const char *merge_patch;  /* an RFC 7386 JSON merge patch for the body, or NULL */
    double rate_per_s;        /* messages per second: 0 = no limit, else
                               * HERALD_REDRIVE_MIN_RATE..HERALD_REDRIVE_MAX_RATE */
    const char *actor;        /* who, for the audit (NULL: "unknown") */
} herald_redrive_opts;

#define HERALD_REDRIVE_MIN_RATE 0.001 /* messages per second: one every 1000 s */
#define HERALD_REDRIVE_MAX_RATE 1e6

HERALD_API void herald_redrive_opts_init(herald_redrive_opts *o);

/* Moves dead messages from dlq back to their source queue (or to_queue), keeping their id and
 * timestamp, with attempts starting over; optionally edited. Every selected message is edited
 * and checked first (an edit must leave valid JSON, and a valid envelope where it was one), so
 * an edit that breaks any body moves nothing. Each move is its own transaction together with
 * its audit record (who, when, which message, where to, what edit).
 * Edit paths are dot-separated keys, each non-empty valid UTF-8. A redriven message of an envelope
 * is traced under the correlation id, event id and type its (edited) body carries.
 * n_moved may be NULL. Errors: HERALD_ENOQUEUE (dlq, a source queue or to_queue),
 * HERALD_EINVAL (bad edit syntax or path, an edit of a non-JSON body, unknown message id, rate
 * out of range), HERALD_EBADJSON / HERALD_EENVELOPE (the edit breaks a body), HERALD_ETOOBIG (a
 * body, edited or not, over the destination queue's max_message_bytes). */
HERALD_API int herald_dlq_redrive(herald_store *s, const char *dlq, const herald_redrive_opts *o,
                                  int64_t *n_moved);

typedef struct herald_audit_entry {
    int64_t at_ms;
    char actor[128];
    char dlq[HERALD_QUEUE_NAME_MAX + 1];
    char message_id[HERALD_ID_SIZE];
    char to_queue[HERALD_QUEUE_NAME_MAX + 1];
    char edit[512]; /* "" when unchanged; truncated */
} herald_audit_entry;

/* Redrive audit records, oldest first; dlq NULL = all. *out: herald_free(). */
HERALD_API int herald_redrive_audit(herald_store *s, const char *dlq, herald_audit_entry **out,
                                    size_t *n_out);

/* ---------------------------------------------------------------------------------------------
 * Topics: fan-out at send time, in one transaction
 * ------------------------------------------------------------------------------------------- */

/* Subscribes queue to topic (the topic is created if missing; subscribing twice is a no-op).
 * Errors: HERALD_EINVAL (bad topic name: the queue-name rule), HERALD_ENOQUEUE. */
HERALD_API int herald_topic_subscribe(herald_store *s, const char *topic, const char *queue);
/* Errors: HERALD_ENOTOPIC (no such topic or queue not subscribed). */
HERALD_API int herald_topic_unsubscribe(herald_store *s, const char *topic, const char *queue);

typedef struct herald_topic_info {
    char name[HERALD_QUEUE_NAME_MAX + 1];
    char (*queues)[HERALD_QUEUE_NAME_MAX + 1]; /* subscribed queues, sorted; owned by the list */
    size_t n_queues;
    int64_t published_total, unrouted_total; /* unrouted: published with no subscriber */
} herald_topic_info;

/* All topics, sorted by name; free with herald_topic_list_free(). */
HERALD_API int herald_topic_list(herald_store *s, herald_topic_info **out, size_t *n_out);
HERALD_API void herald_topic_list_free(herald_topic_info *list, size_t n);

/* Publishes 1..100 messages (the herald_send_batch limits) to topic: each is copied into every
 * subscribed queue in ONE transaction, durable on return - every subscriber has it or none does.
 * Each copy gets its own message id; the body (and an envelope's event_id) is the same.
 * n_queues_out (may be NULL): how many queues received the batch. A topic without subscribers
 * accepts the publish, counts it as unrouted and logs a warning (nothing is silently dropped).
 * Errors: HERALD_ENOTOPIC, and as herald_send_batch (a copy too big for one subscriber's
 * max_message_bytes fails the whole publish). */
HERALD_API int herald_publish(herald_store *s, const char *topic, const herald_msg *msgs, size_t n,
                              int64_t batch_delay_s, size_t *n_queues_out);
/* Publishes one event (its envelope is the body of every copy). Errors: HERALD_EENVELOPE,
 * HERALD_ECATALOG (a strict catalog in force refuses it), and as herald_publish. */
HERALD_API int herald_publish_event(herald_store *s, const char *topic, const herald_event *e,
                                    int64_t delay_s, char event_id_out[HERALD_ID_SIZE]);

/* ---------------------------------------------------------------------------------------------
 * SQL for user code, on the store's own database: portable `?` placeholders
 * ------------------------------------------------------------------------------------------- */

typedef enum herald_arg_type {
    HERALD_ARG_NULL = 0,
    HERALD_ARG_INT = 1,
    HERALD_ARG_REAL = 2,
    HERALD_ARG_TEXT = 3,
    HERALD_ARG_BLOB = 4,
} herald_arg_type;

/* One bound parameter or one result column. Text/blob are borrowed. */
typedef struct herald_arg {
    herald_arg_type type;
    int64_t i;
    double r;
    const void *p;
    size_t len; /* text: SIZE_MAX = NUL-terminated */
} herald_arg;

#define HERALD_ARG_I(v) ((herald_arg){ .type = HERALD_ARG_INT, .i = (v) })
#define HERALD_ARG_D(v) ((herald_arg){ .type = HERALD_ARG_REAL, .r = (v) })
#define HERALD_ARG_S(s) ((herald_arg){ .type = HERALD_ARG_TEXT, .p = (s), .len = SIZE_MAX })
#define HERALD_ARG_B(ptr, n) ((herald_arg){ .type = HERALD_ARG_BLOB, .p = (ptr), .len = (n) })
#define HERALD_ARG_NIL ((herald_arg){ .type = HERALD_ARG_NULL })

/* A result row, valid during the row callback only. */
typedef struct herald_row herald_row;
HERALD_API int herald_row_columns(const herald_row *r);
/* Column i (0-based): type and value; text is NUL-terminated; valid during the callback. */
HERALD_API herald_arg herald_row_get(const herald_row *r, int i);
/* Called per row; return 0 to go on, < 0 to stop (that value is returned by the query). In a
 * herald_sql_query it runs while the store's reader is held: a call on the same store from it
 * (other than herald_send_batch_async) fails with HERALD_EINVAL (Conventions). */
typedef int (*herald_row_cb)(void *ud, const herald_row *row);

/* Runs SQL on the store's database in its own transaction, durable on return: for the schema of
 * user tables (CREATE TABLE IF NOT EXISTS ...) and one-off writes. Several statements separated
 * by ';' are allowed when n_args == 0. User SQL may not touch Herald's own tables (herald_*),
 * control transactions (BEGIN, COMMIT, SAVEPOINT, ...), ATTACH or PRAGMA: HERALD_EDENIED.
 * Errors: HERALD_ESQL (the database's message is kept), HERALD_EDENIED, HERALD_EINVAL. */
HERALD_API int herald_sql_exec(herald_store *s, const char *sql, const herald_arg *args,
                               size_t n_args, int64_t *changes);
/* Runs one read-only statement on a snapshot of the store; cb per row. Errors: as above, and
 * HERALD_EDENIED for a statement that writes. */
HERALD_API int herald_sql_query(herald_store *s, const char *sql, const herald_arg *args,
                                size_t n_args, herald_row_cb cb, void *ud);

/* ---------------------------------------------------------------------------------------------
 * Effectively-once handlers: the handler's SQL, its sends and the ack commit together
 * ------------------------------------------------------------------------------------------- */

/* The transaction an effectively-once handler runs in. Valid during the handler only. */
typedef struct herald_tx herald_tx;

/* Runs one statement in the handler's transaction (same rules as herald_sql_exec).
 * Prepared statements are cached per SQL text. changes may be NULL. */
HERALD_API int herald_tx_exec(herald_tx *tx, const char *sql, const herald_arg *args,
                              size_t n_args, int64_t *changes);
HERALD_API int herald_tx_query(herald_tx *tx, const char *sql, const herald_arg *args,
                               size_t n_args, herald_row_cb cb, void *ud);
/* Sends a message in the handler's transaction: it exists only if the handler succeeds and the
 * transaction commits. Errors: as herald_send. */
HERALD_API int herald_tx_send(herald_tx *tx, const char *queue, const herald_msg *m,
                              char id_out[HERALD_ID_SIZE]);
/* Sends an event in the handler's transaction. Without a correlation_id it inherits the handled
 * event's correlation_id (if it has one: a chain starts where a producer sets one). Errors: as
 * herald_send_event. */
HERALD_API int herald_tx_send_event(herald_tx *tx, const char *queue, const herald_event *e,
                                    char event_id_out[HERALD_ID_SIZE]);
/* Records why the handler fails (the message's last_error; see HERALD_ERROR_TEXT_MAX). */
HERALD_API void herald_tx_set_error(herald_tx *tx, const char *error);

/* An effectively-once handler: runs on the store's writer thread inside the transaction that
 * will ack m, so it must be quick and only use herald_tx_* (no blocking I/O, no other Herald
 * calls: a synchronous write to its store fails with HERALD_EINVAL, see Conventions).
 * Return 0: its SQL and sends commit together with the ack and, for an enveloped message,
 * the record that (queue, event_id) was processed; a redelivered or duplicated message with the
 * same event_id is then acked without calling the handler again. Return < 0: everything it did
 * is rolled back and the message is retried (or dead-lettered) as with herald_delivery_retry;
 * HERALD_FAIL_PERMANENT sends it straight to the dead-letter queue instead.
 * Its batches take no lease: a batch is taken, handled and settled in one transaction, so no
 * other consumer can see its messages meanwhile. Handlers run one at a time on the writer;
 * max_concurrency sets how many batches wait for it (2 x max(4, max_concurrency)). An attempt
 * counts when the handler fails, or when the process dies while the handler runs (counted at
 * the next herald_store_open of the store), so a message that crashes its consumer reaches the
 * dead-letter queue after max_retries like any other. If the store fails (not a handler), the
 * batch is rolled back, no attempt counts, and its queue is tried again a second later.
 * A handler may be called more than once for one message - after a redelivery, or when another
 * message of its batch fails and the batch's transaction is redone without it - so only its
 * herald_tx_* effects are exactly-once; keep other side effects out of it.
 * env is the parsed envelope, or NULL when the body is not one (no duplicate detection then). */
typedef int (*herald_tx_handler_cb)(herald_tx *tx, const herald_message *m,
                                    const herald_envelope *env, void *ud);

/* ---------------------------------------------------------------------------------------------
 * Transactional outbox: business data in the service's own database, events to the bus
 * ------------------------------------------------------------------------------------------- */

/* A service keeps its business data in a database of its own - a Herald store opened on its
 * file (herald_store_open("sqlite:service.db")) - and writes events into that database's
 * outbox in the same transaction as the data. A flusher then publishes the outbox to the bus
 * store and marks the rows published. A crash on the service side loses neither (or both); a
 * crash of the flusher between publishing and marking publishes a row again, with the same
 * event_id, which effectively-once consumers skip. */

/* Runs fn in one transaction of the service database (fn uses herald_tx_exec/_query for its
 * data and herald_outbox_add for events); durable on return. fn returning < 0 rolls back
 * everything it did and that rc is returned. fn runs on the store's writer thread (a synchronous
 * write to service_db from it fails with HERALD_EINVAL, see Conventions). */
typedef int (*herald_outbox_fn)(herald_tx *tx, void *ud);
HERALD_API int herald_outbox_run(herald_store *service_db, herald_outbox_fn fn, void *ud);

/* Inside herald_outbox_run: adds an event for queue (is_topic false) or topic `dest`. It is
 * checked here against the service database's catalogs (applied to it, or set with
 * herald_store_set_catalog), and against the bus's catalog in force when it is flushed. Errors: HERALD_EENVELOPE, HERALD_EINVAL (bad name), HERALD_ETOOBIG
 * (an envelope over 128,000 bytes), HERALD_ECATALOG (strict catalog). */
HERALD_API int herald_outbox_add(herald_tx *tx, const char *dest, bool is_topic,
                                 const herald_event *e, char event_id_out[HERALD_ID_SIZE]);

/* One pass: publishes every pending row (in order) to `bus` and marks it published.
 * n_published (may be NULL) is set also on failure, to what was published before it. Errors of
 * the bus (an unknown queue, HERALD_ECATALOG: an event the bus's catalog refuses...) stop the
 * pass; the row stays pending and the error is returned. */
HERALD_API int herald_outbox_flush(herald_store *service_db, herald_store *bus,
                                   int64_t *n_published);
/* Rows not yet published. */
HERALD_API int herald_outbox_pending(herald_store *service_db, int64_t *n_pending);

/* A flusher thread: flushes whenever the service database commits (in this process at once,
 * from other processes within the adaptive poll), retrying failures with backoff; prunes
 * published rows after 7 days. Keeps: both stores until herald_outbox_flusher_stop(). */
typedef struct herald_outbox_flusher herald_outbox_flusher;
HERALD_API int herald_outbox_flusher_start(herald_store *service_db, herald_store *bus,
                                           herald_outbox_flusher **out);
/* Finishes the current pass and stops. NULL does nothing. */
HERALD_API void herald_outbox_flusher_stop(herald_outbox_flusher *f);

/* ---------------------------------------------------------------------------------------------
 * Correlation trace
 * ------------------------------------------------------------------------------------------- */

/* One step in the life of a message whose envelope has a correlation_id. Messages sent while
 * handling another (herald_tx_send_event) inherit its correlation_id, so one id follows a whole
 * chain of commands and events. */
typedef struct herald_trace_entry {
    int64_t at_ms;
    char what[16]; /* sent, acked, retried, dead_lettered */
    char queue[HERALD_QUEUE_NAME_MAX + 1];
    char message_id[HERALD_ID_SIZE];
    char event_id[HERALD_ID_SIZE];
    char type[HERALD_EVENT_TYPE_MAX + 1];
    char handler[101]; /* consumer name ("" for sends, "pull" for the pull API) */
    int attempt;       /* delivery the step belongs to (0 for sends) */
    char detail[256];  /* the error of a retry or dead letter */
} herald_trace_entry;

/* Every recorded step of correlation_id, in time order (kept 7 days). *out: herald_free(). */
HERALD_API int herald_trace(herald_store *s, const char *correlation_id,
                            herald_trace_entry **out, size_t *n_out);

/* ---------------------------------------------------------------------------------------------
 * Per-message handlers and middleware
 * ------------------------------------------------------------------------------------------- */

/* What a per-message handler returns: 0 = done (acked), or an error class that picks the retry
 * policy (herald_retry_policy): */
#define HERALD_FAIL_TRANSIENT (-1)    /* retry after transient_delay_s (or the backoff) */
#define HERALD_FAIL_RATE_LIMITED (-2) /* retry after rate_limited_delay_s */
#define HERALD_FAIL_PERMANENT (-3)    /* no retry: straight to the dead-letter queue */
/* Any other value < 0 counts as transient. */

typedef struct herald_msg_ctx herald_msg_ctx;
HERALD_API const char *herald_msg_ctx_queue(const herald_msg_ctx *c);
/* Why the message failed (its last_error, the log line). Copied (see HERALD_ERROR_TEXT_MAX). */
HERALD_API void herald_msg_ctx_set_error(herald_msg_ctx *c, const char *error);

/* The handler at the end of a chain. env: the parsed envelope, or NULL. Runs on a consumer
 * worker thread (not in a store transaction: for that, use a tx_handler). */
typedef int (*herald_msg_handler_cb)(herald_msg_ctx *c, const herald_message *m,
                                     const herald_envelope *env, void *ud);
/* A middleware: does its part and calls herald_mw_next() to run the rest of the chain (or not,
 * to short-circuit), returning the outcome. */
typedef int (*herald_mw_fn)(herald_msg_ctx *c, const herald_message *m, const herald_envelope *env,
                            void *state);
HERALD_API int herald_mw_next(herald_msg_ctx *c, const herald_message *m,
                              const herald_envelope *env);

/* A chain of middleware around a handler; the first herald_chain_use is the outermost. A chain
 * serves one consumer (herald_consumer_cfg.chain) and is thread-safe for its workers. */
typedef struct herald_chain herald_chain;
HERALD_API int herald_chain_new(herald_msg_handler_cb handler, void *ud, herald_chain **out);
/* Keeps: state until herald_chain_free(). */
HERALD_API int herald_chain_use(herald_chain *ch, herald_mw_fn fn, void *state);
/* Skips a message whose (queue, event_id) was processed; a success is recorded as processed in
 * the transaction that acks it. (A crash between the handler and that commit can still repeat
 * the handler's external effects: for exactly-once effects use a tx_handler.) */
HERALD_API int herald_chain_use_dedup(herald_chain *ch, herald_store *s);
/* One JSON line per message on stderr: event_id, type, correlation_id, queue, attempts,
 * duration_ms, outcome, error. */
HERALD_API int herald_chain_use_logging(herald_chain *ch);
/* Counts and latency histograms per queue, event type and outcome, written to the store about
 * once a second and when the chain is freed; read with herald_metrics_list / `herald metrics`. */
HERALD_API int herald_chain_use_metrics(herald_chain *ch, herald_store *s);
/* A token bucket per key: key_path is an envelope path ("payload.brand_slug", "type", "source")
 * or NULL for one bucket; rate_per_s tokens a second, up to burst. Without a token the message
 * fails as HERALD_FAIL_RATE_LIMITED without reaching the handler. */
HERALD_API int herald_chain_use_rate_limit(herald_chain *ch, const char *key_path,
                                           double rate_per_s, double burst);
/* Flushes pending metrics and frees. Call after the consumer using it stopped. NULL: no-op. */
HERALD_API void herald_chain_free(herald_chain *ch);

/* How error classes map to retries (per consumer). */
typedef struct herald_retry_policy {
    int64_t transient_delay_s;    /* default 10 */
    int64_t rate_limited_delay_s; /* default 60 */
    bool is_exponential;          /* transient delay doubles per attempt: d * 2^(attempts-1) */
    int64_t backoff_cap_s;        /* default 300 */
} herald_retry_policy;

#define HERALD_METRIC_BUCKETS 13 /* upper bounds (ms): 1 2 5 10 25 50 100 250 500 1000 2500
                                  * 5000, and above */
typedef struct herald_metric {
    char queue[HERALD_QUEUE_NAME_MAX + 1];
    char type[HERALD_EVENT_TYPE_MAX + 1]; /* "" for messages without an envelope */
    char outcome[16]; /* ok, duplicate, transient, rate_limited, permanent */
    int64_t count;
    double sum_ms;
    int64_t buckets[HERALD_METRIC_BUCKETS];
} herald_metric;
/* All metrics in the store. *out: herald_free(). */
HERALD_API int herald_metrics_list(herald_store *s, herald_metric **out, size_t *n_out);
/* Estimated quantile (0..1) in ms from the histogram (bucket upper bound). */
HERALD_API double herald_metric_quantile(const herald_metric *m, double q);

/* ---------------------------------------------------------------------------------------------
 * Consumer runtime (push consumers)
 * ------------------------------------------------------------------------------------------- */

/* The batch a handler receives. Settle calls: first call on a message wins; a per-message call
 * beats ack_all/retry_all; if the handler returns 0 every unsettled message is acked, if it
 * returns < 0 every unsettled message is retried (Cloudflare's rules). */
typedef struct herald_delivery herald_delivery;

HERALD_API const char *herald_delivery_queue(const herald_delivery *d);
HERALD_API size_t herald_delivery_count(const herald_delivery *d);
/* i < count; the message lives until the handler returns. */
HERALD_API const herald_message *herald_delivery_msg(const herald_delivery *d, size_t i);
HERALD_API void herald_delivery_ack(herald_delivery *d, size_t i);
/* delay_s: HERALD_UNSET = retry_all's delay, else the consumer's retry_delay. */
HERALD_API void herald_delivery_retry(herald_delivery *d, size_t i, int64_t delay_s);
HERALD_API void herald_delivery_ack_all(herald_delivery *d);
HERALD_API void herald_delivery_retry_all(herald_delivery *d, int64_t delay_s);
/* Records why the handler failed (kept as the messages' last_error). Copied: at most
 * HERALD_ERROR_TEXT_MAX bytes, cut between characters, invalid UTF-8 replaced by U+FFFD. */
HERALD_API void herald_delivery_set_error(herald_delivery *d, const char *error);

/* A handler: return 0 (success) or < 0 (failure). Runs on a consumer worker thread; up to
 * max_concurrency handlers of one consumer run at once. */
typedef int (*herald_handler_cb)(herald_delivery *d, void *ud);

typedef struct herald_consumer_cfg {
    const char *const *queues; /* one or more queue names; created if missing */
    size_t n_queues;
    herald_handler_cb handler;
    void *ud;                     /* Keeps: ud until herald_consumer_stop() returns */
    int max_batch_size;           /* HERALD_UNSET = 10; 1 .. 100 */
    int64_t max_batch_timeout_ms; /* HERALD_UNSET = 5000; 0 .. 60000 */
    int64_t max_retries;          /* HERALD_UNSET = the queue's setting; 0 .. 100 */
    int64_t retry_delay_s;        /* HERALD_UNSET = the queue's setting; 0 .. 365 days */
    int max_concurrency;          /* HERALD_UNSET = 1; 1 .. 250 */
    const char *dead_letter_queue; /* NULL = the queue's setting */
    int64_t visibility_timeout_ms; /* lease per batch, renewed while the handler runs;
                                    * HERALD_UNSET = 30 s. Not used with tx_handler: its
                                    * batches take no lease (see herald_tx_handler_cb) */
    /* A per-message middleware chain instead of `handler` (exactly one of handler, tx_handler,
     * chain); its outcomes retry by retry_policy. Keeps: chain until herald_consumer_stop(). */
    const herald_chain *chain;
    herald_retry_policy retry_policy; /* set by herald_consumer_cfg_init to the defaults */
    const char *name; /* the handler's name in traces; NULL: "consumer:<first queue>" */
    /* Effectively-once instead of `handler`: */
    herald_tx_handler_cb tx_handler;
    int64_t processed_retention_s; /* how long processed event ids are kept for duplicate
                                    * detection; HERALD_UNSET = 7 days; 60 s .. 365 days */
    /* true: record handler metrics - per queue, event type and outcome a count and a latency
     * histogram - into the store (herald_metrics_list, `herald metrics`), written about once a
     * second and at stop. Outcomes: a batch handler's acked messages "ok", retried ones
     * "transient", each with the batch's handler duration; a chain's or a tx_handler's messages
     * their own outcome and duration (a tx_handler's duplicates, which it does not see, are not
     * counted). A chain that uses herald_chain_use_metrics already records: do not set both.
     * Default false. */
    bool has_metrics;
} herald_consumer_cfg;

HERALD_API void herald_consumer_cfg_init(herald_consumer_cfg *c);

typedef struct herald_consumer herald_consumer;

/* Starts a consumer: its threads begin leasing and delivering at once. A message sent in this
 * process wakes it immediately; a message sent by another process is seen within the adaptive
 * poll interval (1 ms after activity, growing to 250 ms when idle); delayed messages and expiring
 * leases fire from a timer. Errors: HERALD_EINVAL (the message names the setting), store errors.
 * Keeps: s until herald_consumer_stop(). */
HERALD_API int herald_consumer_start(herald_store *s, const herald_consumer_cfg *cfg,
                                     herald_consumer **out);

/* Stops leasing, lets in-flight handlers finish and their settlements commit, joins the threads
 * and frees the consumer. NULL does nothing. */
HERALD_API void herald_consumer_stop(herald_consumer *c);

/* A consumer's counters (monotonic). batches / delivered: handed to the handler; acked /
 * retried (retried includes dead-lettered): settlements counted once the store committed them;
 * handler_failures: handler calls that failed (a chain's or tx_handler's batch with at least
 * one failed message counts once). */
typedef struct herald_consumer_counters {
    int64_t batches, delivered, acked, retried, handler_failures;
} herald_consumer_counters;
/* Reads the counters of a running consumer. Guarantee: every settlement of this consumer that
 * committed before the call is counted - the call waits (about one group commit at most) for
 * the settlements already handed to the store. So once herald_queue_stats_get (or
 * herald_queue_wait_empty) has seen a queue drained by this consumer alone, acked + retried
 * read afterwards account for every message it took. From inside a tx_handler it does not
 * wait, nor from any other callback the store runs (an async completion, a row callback):
 * there it may lag by the settlements in flight. */
HERALD_API void herald_consumer_counters_get(herald_consumer *c, herald_consumer_counters *out);
/* herald_consumer_stop, and before freeing fills *final_out (may be NULL) with the final
 * counters: everything the consumer took is settled and counted. NULL c does nothing. */
HERALD_API void herald_consumer_stop_counters(herald_consumer *c,
                                              herald_consumer_counters *final_out);

/* ---------------------------------------------------------------------------------------------
 * Fan-out routing: route events from a queue to other queues by type and payload
 * ------------------------------------------------------------------------------------------- */

typedef enum herald_cond_op {
    HERALD_COND_EQ = 0,     /* field equals value_json */
    HERALD_COND_NE = 1,     /* field is absent or differs from value_json */
    HERALD_COND_EXISTS = 2, /* field is present (and not null) */
} herald_cond_op;

/* A condition on the envelope: path is "payload.a.b", "type", "source", "event_id" or
 * "correlation_id". */
typedef struct herald_route_cond {
    const char *path;
    herald_cond_op op;
    const char *value_json; /* eq/ne: a JSON value ("\"internal-tools\"", "3", "true") */
} herald_route_cond;

/* A route: events of `type` (exact, or a glob such as "content.*") read from queue `from` are
 * copied into every queue of `to` when every condition holds. */
typedef struct herald_route {
    const char *from;
    const char *type;
    const char *const *to;
    size_t n_to;
    const herald_route_cond *when;
    size_t n_when;
} herald_route;

/* A programmable route: sees each message and fills dests[0..cap) with destination queue names
 * (borrowed until it returns), *n_dests how many. Return < 0 to fail the message (retried).
 * Runs inside the routing transaction, on the writer thread: keep it quick (a synchronous
 * write to the router's store from it fails with HERALD_EINVAL, see Conventions). */
typedef int (*herald_route_fn)(const herald_message *m, const herald_envelope *env,
                               const char **dests, size_t cap, size_t *n_dests, void *ud);

typedef struct herald_router herald_router;

/* A router: one effectively-once consumer per source queue. A routed copy is the original
 * body (envelope and event_id included), written to every destination in the same transaction
 * that acks the source message, so a crash can neither lose nor duplicate a copy. A message
 * that no route matches is acked, counted (herald_router_counts) and logged. */
HERALD_API int herald_router_new(herald_store *s, herald_router **out);
/* Errors: HERALD_EINVAL (bad type pattern, condition path/op/value, no destination, a route to
 * its own source queue, a cycle through other routes; the message names it), HERALD_ENOQUEUE
 * (a source or destination queue that does not exist). */
HERALD_API int herald_router_add(herald_router *r, const herald_route *route);
/* Adds a programmable route on queue `from`. Keeps: ud until herald_router_free(). */
HERALD_API int herald_router_add_fn(herald_router *r, const char *from, herald_route_fn fn,
                                    void *ud);
/* Starts consuming every source queue (batches of 100, no batch wait). */
HERALD_API int herald_router_start(herald_router *r);
/* Stops (draining in-flight batches) and frees. NULL does nothing. */
HERALD_API void herald_router_free(herald_router *r);
/* Messages routed to at least one queue, and messages no route matched, since start. */
HERALD_API void herald_router_counts(herald_router *r, int64_t *routed, int64_t *unrouted);

/* ---------------------------------------------------------------------------------------------
 * Configuration (herald.jsonc) and the runtime
 * ------------------------------------------------------------------------------------------- */

/* herald.jsonc (JSON with comments, in wrangler's spirit):
 *   { "catalog": { "file": "events.jsonc", "mode": "strict" | "warn" },
 *     "queues": [ { "name": "sm-commands", "max_retries": 5, "retry_delay": 0,
 *                   "dead_letter_queue": "sm-commands-dlq", "delivery_delay": 0,
 *                   "message_retention_period": 345600, "max_message_bytes": 128000 } ],
 *     "topics": { "brand-events-topic": ["sm-commands", "analytics"] },
 *     "routes": [ { "from": "brand-events", "type": "content.*", "to": ["social-commands"],
 *                   "when": { "payload.brand_slug": { "ne": "internal-tools" } } } ] }
 * Every key is optional; unknown keys and wrong types are errors naming the key and its line.
 * "retention" is accepted as another name of "message_retention_period" (the CLI's flag).
 * Relative file paths (the catalog) are relative to the configuration file. A commented file
 * with every key: examples/herald.jsonc. */
typedef struct herald_runtime herald_runtime;

/* herald_config_apply flags. */
#define HERALD_CONFIG_FORCE 1u   /* apply a catalog change even if it breaks compatibility */
#define HERALD_CONFIG_DRY_RUN 2u /* check and report what would change; change nothing */

/* The configuration describes the system, not one process: this writes what it declares to the
 * store, so that every process on the store sees it. It checks the whole file first (as
 * herald_config_check), then in ONE transaction (all of it or nothing): creates missing queues
 * and updates the settings the file gives for existing ones, adds topic subscriptions, and, if
 * the file has a "catalog" whose text or mode differs from the one in force, stores it as the
 * next catalog version (herald_catalog_history). Without "catalog" the stored one stays.
 * Catalog evolution is checked: compatible changes (a new event type, a new optional field, a
 * description, the mode) are applied; a breaking change - a field removed, a field's type
 * changed, an optional field made required or a required one optional, a required field
 * added, an event type removed while in use (messages of it waiting in a queue or dead-letter
 * queue, pending outbox rows, or a route of this file naming it) - refuses the whole apply
 * with HERALD_ECATALOG naming each one, unless flags has HERALD_CONFIG_FORCE.
 * report_json (may be NULL): {"config":PATH,"dry_run":B,"queues_created":[..],
 *   "queues_updated":[..],"topics":{T:[Q..]},"catalog":null | {"file":F,"mode":M,
 *   "previous_version":N,"version":N,"changed":B,"changes":[CHANGE..],"breaking":N,
 *   "forced":B}} (CHANGE: see herald_catalog_history); free with herald_free().
 * Errors: HERALD_ECONFIG "FILE:LINE:COL: what", HERALD_ECATALOG (breaking changes), store
 * errors - and then nothing was changed. */
HERALD_API int herald_config_apply(herald_store *s, const char *config_path, unsigned flags,
                                   char **report_json);

/* Applies the configuration as herald_config_apply(s, config_path, 0, NULL) does, then starts
 * the fan-out routers of its "routes" (routes live in this process; they are not stored).
 * Errors: as herald_config_apply - and then nothing was changed.
 * Keeps: s until herald_runtime_stop(). */
HERALD_API int herald_runtime_start(herald_store *s, const char *config_path,
                                    herald_runtime **out);
/* Only the checks of herald_runtime_start (changes nothing). s may be NULL: then queues that the
 * file names but does not configure cannot be checked against a store, and are assumed to exist.*/
HERALD_API int herald_config_check(herald_store *s, const char *config_path);
/* Stops the routers (draining in-flight batches) and frees. The applied configuration stays in
 * the store (the catalog keeps binding every producer). NULL: no-op. */
HERALD_API void herald_runtime_stop(herald_runtime *rt);
/* Routed and unrouted message counts of all routers of the runtime. */
HERALD_API void herald_runtime_counts(herald_runtime *rt, int64_t *routed, int64_t *unrouted);

/* ---------------------------------------------------------------------------------------------
 * Misc
 * ------------------------------------------------------------------------------------------- */

/* Frees memory a Herald call returned for the caller to free (lists, texts, traces, generated
 * headers: every "free with herald_free()" below). NULL does nothing. */
HERALD_API void herald_free(void *p);

/* Library version string, e.g. "0.1.0". */
HERALD_API const char *herald_version(void);

#ifdef __cplusplus
}
#endif
#endif /* HERALD_H */
