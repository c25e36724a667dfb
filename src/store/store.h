// SPDX-License-Identifier: MIT
/*
 * store.h - the store layer's contract for the layers above: open/close by URL, the group-commit
 * writer (ops run on one writer thread inside one transaction per commit group), wrappers for the
 * backend's queue primitives, read-side queries, and the wake-up generation that consumers wait
 * on. Nothing here names a backend: SQLite lives behind herald_store_ops in store_impl.h.
 */
#ifndef HERALD_STORE_STORE_H
#define HERALD_STORE_STORE_H

#include <string.h>

#include "core/core.h"

/* One message to insert (ids are minted by the queue layer). */
/* What tracing knows of an enveloped message with a correlation id ("" = not traced). */
typedef struct herald__trace_info {
    char correlation_id[HERALD_CORRELATION_ID_MAX + 1];
    char event_id[HERALD_ID_SIZE];
    char type[HERALD_EVENT_TYPE_MAX + 1];
} herald__trace_info;

typedef struct herald__msg_in {
    char id[HERALD_ID_SIZE];
    const void *body;
    size_t body_len;
    herald_content_type content_type;
    int64_t delay_s; /* HERALD_UNSET: batch delay, else queue delivery_delay */
    herald__trace_info trace;
} herald__msg_in;

/* Consumer-level overrides of a queue's retry settings; UNSET/NULL = the queue's own. */
typedef struct herald__policy {
    int64_t max_retries;
    int64_t retry_delay_s;
    const char *dead_letter_queue;
    const char *handler_name; /* for the trace; NULL: "pull" */
} herald__policy;

/* A lease id, parsed: the message's row and the random tag of that lease. */
typedef struct herald__lease_ref {
    int64_t seq;
    int64_t tag;
} herald__lease_ref;

typedef struct herald__settle_item {
    herald__lease_ref ref;
    bool is_retry;
    bool is_dead;      /* retry only: straight to the DLQ (a permanent error) */
    bool is_taken;     /* taken by herald__store_take in this op, not leased */
    int64_t delay_s;   /* retry only; HERALD_UNSET = policy retry_delay */
    const char *error; /* retry only; may be NULL */
    const char *processed_event_id; /* ack only: record (queue, id) processed, with the ack */
    const char *processed_type;
    const herald__trace_info *trace; /* NULL: not traced */
    const char *message_id;          /* with trace */
    int attempt;                     /* with trace */
    int64_t body_bytes; /* the message's body length when > 0 (what the lease or take read):
                         * keeps the queue's byte count without reading the row; 0: looked up */
} herald__settle_item;

/* Marks the settlement of m as traced, with the correlation of its parsed envelope (t: the
 * item's storage for it), when the envelope has a correlation id. */
static inline void herald__settle_trace(herald__settle_item *it, herald__trace_info *t,
                                        const herald_message *m, const herald_envelope *env)
{
    if (!env || !env->correlation_id[0])
        return;
    memcpy(t->correlation_id, env->correlation_id, sizeof t->correlation_id);
    memcpy(t->event_id, env->event_id, sizeof t->event_id);
    memcpy(t->type, env->type, sizeof t->type);
    it->trace = t;
    it->message_id = m->id;
    it->attempt = m->attempts;
}

/* Formats / parses "hl1.<seq hex>.<tag hex>". Parse returns false when malformed. */
void herald__lease_format(herald__lease_ref r, char out[HERALD_LEASE_ID_SIZE]);
bool herald__lease_parse(const char *s, herald__lease_ref *out);

/* ---- the group-commit writer ---- */

typedef struct herald__op herald__op;
/* Runs on the writer thread inside the group's transaction (under a savepoint of its own: a
 * failing op is rolled back alone). Returns 0 or < 0 (with herald__err detail). */
typedef int (*herald__op_run_fn)(herald_store *s, herald__op *op);
/* Runs once the group's commit is durable (or failed), with op->rc final: on the writer
 * thread, or on the syncer thread when the backend defers the fsync (store.c). */
typedef void (*herald__op_done_fn)(herald__op *op);

struct herald__op {
    herald__op_run_fn run;
    herald__op_done_fn done; /* NULL: a synchronous caller waits in herald__store_exec */
    bool wakes;              /* a successful commit of this op should wake consumers */
    int rc;
    char err[256];           /* detail text of a failure, copied from the writer thread */
    bool priv_finished;      /* guarded by the store's writer mutex */
    herald__op *priv_next;
};

/* Submits op and waits until its group commit is durable; returns op->rc and re-raises the
 * detail text on the calling thread. */
int herald__store_exec(herald_store *s, herald__op *op);
/* Submits op; op->done runs exactly once later. Returns HERALD_ECLOSED (done not called) if the
 * store is closing, or its sticky error. */
int herald__store_submit(herald_store *s, herald__op *op);

/* ---- writer-side primitives: call only from an op's run function ---- */

int herald__store_queue_create(herald_store *s, const char *name, const herald_queue_settings *st,
                               const char *uuid);
int herald__store_queue_update(herald_store *s, const char *name, const herald_queue_settings *st);
int herald__store_queue_delete(herald_store *s, const char *name);
int herald__store_queue_purge(herald_store *s, const char *name, int64_t *n_deleted);
int herald__store_queue_set_paused(herald_store *s, const char *name, bool paused);
int herald__store_msg_put(herald_store *s, const char *queue, const herald__msg_in *m, size_t n,
                          int64_t batch_delay_s);
int herald__store_lease(herald_store *s, const char *queue, int max_n, int64_t visibility_ms,
                        const herald__policy *p, herald_batch *out);
/* Takes up to max_n visible messages of queue for an effectively-once batch: like a lease,
 * but no row changes - every taken message must be settled (is_taken) in the same op, which
 * keeps it from everyone else. The attempt is counted where it fails (settle) or, if the
 * process dies first, from the in-flight journal at the next open. m->attempts counts this
 * attempt. */
int herald__store_take(herald_store *s, const char *queue, int max_n, const herald__policy *p,
                       herald_batch *out);
/* Writer side: the handler of message i of the last take runs now (-1: none). If the process
 * dies meanwhile, that message's attempt is counted at the next open (no system call). */
void herald__store_inflight_running(herald_store *s, int64_t i);
int herald__store_settle(herald_store *s, const char *queue, const herald__settle_item *items,
                         size_t n, const herald__policy *p, herald_settle_result *res);
int herald__store_extend(herald_store *s, const char *queue, const herald__lease_ref *refs,
                         size_t n, int64_t until_ms);
/* Prunes the attempt history and traces past their retention (writer side). */
int herald__store_sweep(herald_store *s, int64_t *n_pruned);
/* Deletes the given rows if they are still expired; counts them per queue (writer side). */
int herald__store_expire(herald_store *s, const int64_t *seqs, size_t n, int64_t *n_deleted);
/* Up to max expired rows with seq > after_seq, in seq order (read side). */
int herald__store_expired_scan(herald_store *s, int64_t after_seq, int64_t *seqs, size_t max,
                               size_t *n);

/* Topics (writer side). */
int herald__store_topic_subscribe(herald_store *s, const char *topic, const char *queue);
int herald__store_topic_unsubscribe(herald_store *s, const char *topic, const char *queue);
/* Inserts msgs into every queue subscribed to topic; *n_queues: how many. Counts the publish. */
int herald__store_topic_publish(herald_store *s, const char *topic, const herald__msg_in *m,
                                size_t n, int64_t batch_delay_s, size_t *n_queues);

/* Outbox (writer side). */
int herald__store_outbox_put(herald_store *s, const char *dest, bool is_topic,
                             const char *event_id, const void *body, size_t len);
int herald__store_outbox_mark(herald_store *s, const int64_t *seqs, size_t n);
int herald__store_outbox_prune(herald_store *s, int64_t before_ms, int64_t *n_pruned);

/* A pending outbox row (read side). */
typedef struct herald__outbox_row {
    int64_t seq;
    char dest[HERALD_QUEUE_NAME_MAX + 1];
    bool is_topic;
    void *body; /* owned: herald__free */
    size_t len;
} herald__outbox_row;

/* A dead letter, as redrive reads it (read side). */
typedef struct herald__dead_row {
    int64_t seq, visible_at_ms;
    char id[HERALD_ID_SIZE];
    char dead_from[HERALD_QUEUE_NAME_MAX + 1];
    herald_content_type content_type;
    void *body; /* owned: herald__free */
    size_t len;
} herald__dead_row;

/* Dead letters of dlq after the position (visible_at_ms, seq) in delivery order. */
int herald__store_dead_page(herald_store *s, const char *dlq, int64_t after_visible_ms,
                            int64_t after_seq, herald__dead_row *rows, size_t max, size_t *n);
/* The message `id` of queue (any state) as a one-message batch; empty batch when absent. */
int herald__store_msg_get(herald_store *s, const char *queue, const char *id, herald_batch *out);
int herald__store_attempts(herald_store *s, const char *message_id, herald_attempt **out,
                           size_t *n);
int herald__store_audit(herald_store *s, const char *dlq, herald_audit_entry **out, size_t *n);
/* Writer side: moves dead letter `seq` of dlq to to_queue (NULL: its source), with body (NULL:
 * unchanged), and records the audit. *moved false when the row is gone already. */
int herald__store_redrive_one(herald_store *s, const char *dlq, int64_t seq, const char *to_queue,
                              const void *body, size_t len, const char *actor, const char *edit,
                              bool *moved);

/* Adds metric deltas (writer side). */
int herald__store_metrics_add(herald_store *s, const herald_metric *m, size_t n);

/* Nested savepoint around one message of an effectively-once batch. */
int herald__store_sp_begin(herald_store *s);
int herald__store_sp_release(herald_store *s);
int herald__store_sp_rollback(herald_store *s); /* rolls back to it and releases it */
/* User SQL on the writer connection, inside the current transaction (see herald_tx_exec).
 * is_multi: several ';'-separated statements allowed (no args). cb may be NULL. */
int herald__store_user_sql(herald_store *s, const char *sql, const herald_arg *args, size_t n,
                           bool is_multi, int64_t *changes, herald_row_cb cb, void *ud);
/* Records (queue, event_id) as processed; *is_new false when it already was (a duplicate).
 * Inside the message's savepoint, so a failed handler's rollback removes the record too. */
int herald__store_processed_claim(herald_store *s, const char *queue, const char *event_id,
                                  const char *type, bool *is_new);
/* Prunes records older than retention_s. */
int herald__store_processed_prune(herald_store *s, const char *queue, int64_t retention_s,
                                  int64_t *n_pruned);

/* ---- read side: any thread, no writer round trip; sees every commit already returned ---- */

int herald__store_queue_get(herald_store *s, const char *name, herald_queue_info *out);
int herald__store_queue_list(herald_store *s, herald_queue_info **out, size_t *n);
int herald__store_queue_stats(herald_store *s, const char *name, herald_queue_stats *out);
int herald__store_peek(herald_store *s, const char *name, int max_n, herald_batch *out);
/* For a consumer's dispatcher: how many are deliverable now (counted up to `limit`), when the
 * next not-yet-visible message becomes visible (INT64_MAX if none), and whether paused. */
int herald__store_ready(herald_store *s, const char *name, int limit, int *n_ready,
                        int64_t *next_due_ms, bool *is_paused);
int herald__store_topic_list(herald_store *s, herald_topic_info **out, size_t *n);
/* Up to max pending outbox rows in order; *n how many. */
int herald__store_outbox_pending(herald_store *s, herald__outbox_row *rows, size_t max,
                                 size_t *n);
int herald__store_outbox_count(herald_store *s, int64_t *n_pending);
/* Was (queue, event_id) processed? (read side, for the dedup middleware) */
int herald__store_processed_check(herald_store *s, const char *queue, const char *event_id,
                                  bool *seen);
int herald__store_metrics_list(herald_store *s, herald_metric **out, size_t *n);
int herald__store_trace(herald_store *s, const char *corr, herald_trace_entry **out, size_t *n);
/* Runs one read-only user statement on the reader (see herald_sql_query). */
int herald__store_user_query(herald_store *s, const char *sql, const herald_arg *args, size_t n,
                             herald_row_cb cb, void *ud);
/* A number that changes whenever any process commits to the store. */
int herald__store_data_version(herald_store *s, int64_t *out);

/* ---- clock and wake-ups ---- */

int64_t herald__store_now(herald_store *s); /* the store's wall clock (injected in tests) */

/* ---- the event catalog (store_catalog.c) ---- */

/* One stored catalog version (a row of herald_catalog_versions). Strings are owned:
 * herald__catalog_row_deinit. */
typedef struct herald__catalog_row {
    int64_t version; /* 1, 2, ...; 0: none */
    int64_t applied_ms;
    herald_catalog_mode mode;
    bool is_forced;
    char *catalog; /* canonical JSON {"events":{...}} */
    char *changes; /* JSON array of the changes from the previous version */
    char *source;  /* the file it came from ("" if unknown) */
} herald__catalog_row;
void herald__catalog_row_deinit(herald__catalog_row *r);

/* Checks an event against the store's catalogs: the stored one in force (its version is read
 * from the store on every call, so another process's apply is seen; see store_catalog.c) and
 * the one herald_store_set_catalog set, each in its mode: strict returns HERALD_ECATALOG naming
 * the problem; warn logs it and goes on. */
int herald__store_check_event(herald_store *s, const herald_event *e);
/* The same for an enveloped body Herald wrote (outbox rows): parsed, then checked. */
int herald__store_check_envelope(herald_store *s, const void *body, size_t len);
/* The version in force (0: none): inside an op on the writer thread, read in its transaction;
 * on any other thread, on the reader. catalog_get_now: that version's row (version 0: none). */
int herald__store_catalog_version_now(herald_store *s, int64_t *version);
int herald__store_catalog_get_now(herald_store *s, herald__catalog_row *out);
/* Writer side (inside an op): the version in force (*out.version 0: none) with its text. */
int herald__store_catalog_get(herald_store *s, herald__catalog_row *out);
/* Writer side: stores row as the next version; *version_out gets it. */
int herald__store_catalog_put(herald_store *s, const herald__catalog_row *row,
                              int64_t *version_out);
/* Writer side: how many messages (any queue, dead letters included) and pending outbox rows
 * carry an event of `type`. */
int herald__store_catalog_in_use(herald_store *s, const char *type, int64_t *n_messages,
                                 int64_t *n_outbox);
/* Read side: every stored version, oldest first (*out: herald__catalog_row_deinit each, then
 * herald__free). */
int herald__store_catalog_history(herald_store *s, herald__catalog_row **out, size_t *n);
/* Frees what store_catalog.c holds (herald_store_close). */
void herald__store_catalog_deinit(herald_store *s);
/* True for exactly one caller per `every_ms` of store time (the others get false): lets one of
 * the store's consumers run the store-wide retention sweep. */
bool herald__store_sweep_turn(herald_store *s, int64_t now_ms, int64_t every_ms);
/* 0, or HERALD_EINVAL (with the reason as the last error) when this thread runs a callback of s
 * (writer, syncer, or a herald_sql_query row callback): a call that waits for the store's
 * commits or its reader would wait for itself there. herald_queue_wait_empty asks it first. */
int herald__store_check_may_wait(const herald_store *s);
/* The wake generation: bumped by commits of waking ops and by herald_store_wake(). */
uint64_t herald__store_gen(herald_store *s);
/* Waits until the generation differs from `seen` or monotonic deadline_ns passes (INT64_MAX =
 * no deadline). Returns the current generation. */
uint64_t herald__store_wait(herald_store *s, uint64_t seen, int64_t deadline_ns);

/* ---- rows of user queries: the backend fills in the accessors ---- */

struct herald_row {
    int (*columns)(const herald_row *r);
    herald_arg (*get)(const herald_row *r, int i);
    void *impl;
};

/* ---- fault injection for crash tests ---- */

/* Kills the process with SIGKILL when env HERALD_FAULT names `point` (read once). Points:
 * "store.before_commit", "store.after_commit", "eo.before_handler", "eo.after_handler". */
void herald__fault(const char *point);

/* ---- batches ---- */

/* Allocation helpers for building herald_batch results (owned via priv_mem). */
void herald__batch_init(herald_batch *b, const char *queue, size_t cap);
herald_message *herald__batch_push(herald_batch *b);
/* Copies bytes into memory owned by the batch; returns the NUL-terminated copy. */
void *herald__batch_keep(herald_batch *b, const void *p, size_t n);

#endif
