// SPDX-License-Identifier: MIT
/*
 * queue.h - the queue layer's contract for the layers above: leasing with a consumer's policy
 * (sync and async), asynchronous settlement, lease extension, the retention sweep, sends inside
 * a writer op, and the event encoding every event sender shares.
 * The public queue API (herald_queue_*, herald_send*, herald_pull, ...) is in herald.h.
 */
#ifndef HERALD_QUEUE_QUEUE_H
#define HERALD_QUEUE_QUEUE_H

#include "store/store.h"

/* Leases like herald_pull, with a consumer's retry policy (p may be NULL). */
int herald__queue_lease(herald_store *s, const char *queue, int max_n, int64_t visibility_ms,
                        const herald__policy *p, herald_batch *out);

/* Completion of an async lease: on success *b is the caller's (free with herald_batch_deinit);
 * rc < 0: b is empty. Runs on the writer thread, or the syncer thread (durability full). */
typedef void (*herald__queue_lease_cb)(void *ud, int rc, herald_batch *b);

/* Like herald__queue_lease, asynchronously: many leases submitted together share one commit.
 * p is copied. If this returns < 0, cb is never called. */
int herald__queue_lease_async(herald_store *s, const char *queue, int max_n,
                              int64_t visibility_ms, const herald__policy *p,
                              herald__queue_lease_cb cb, void *ud);

/* Completion of an async settle: rc, and the settle result (NULL on failure). */
typedef void (*herald__queue_done_cb)(void *ud, int rc, const herald_settle_result *res);

/* Settles items (copied) with policy p (copied); cb runs once after the commit is durable, on
 * the writer or syncer thread. If this returns < 0, cb is never called. */
int herald__queue_settle_async(herald_store *s, const char *queue,
                               const herald__settle_item *items, size_t n,
                               const herald__policy *p, herald__queue_done_cb cb, void *ud);

/* Extends the given leases to until_ms (only leases still current are changed). Synchronous. */
int herald__queue_extend(herald_store *s, const char *queue, const herald__lease_ref *refs,
                         size_t n, int64_t until_ms);

/* Deletes messages past their retention in every queue (found on the reader, deleted on the
 * writer in pages) and prunes the attempt history and traces; n_expired may be NULL. */
int herald__queue_sweep(herald_store *s, int64_t *n_expired);

/* Encodes an event's envelope (timestamp from the store clock) and checks it against the
 * store's catalog: what every event-sending call does first. *body: herald__free. */
int herald__queue_encode_event(herald_store *s, const herald_event *e, char id[HERALD_ID_SIZE],
                               char **body, size_t *len);

/* Writer thread only (inside an op): validates and inserts messages as herald_send_batch would,
 * in the current transaction. ids_out: n slots. */
int herald__queue_put_in_tx(herald_store *s, const char *queue, const herald_msg *msgs, size_t n,
                            int64_t batch_delay_s, char (*ids_out)[HERALD_ID_SIZE]);
/* Same for one envelope Herald just encoded (its JSON is known valid: not parsed again). */
int herald__queue_put_envelope_in_tx(herald_store *s, const char *queue, const char *body,
                                     size_t len, const herald__trace_info *trace,
                                     char id_out[HERALD_ID_SIZE]);

/* Validates a batch as herald_send_batch does (no queue name) and mints ids into in[n]. */
int herald__queue_prepare_batch(herald_store *s, const herald_msg *msgs, size_t n,
                                int64_t batch_delay_s, herald__msg_in *in);

/* Checks queue settings' ranges as create/update do (names the bad setting). */
int herald__queue_check_settings(const char *name, const herald_queue_settings *st);

/* Checks a consumer-level policy's ranges (names the bad setting). */
int herald__queue_check_policy(const herald__policy *p);

/* dlq.c: a redrive's edits (herald_redrive_opts set / merge_patch) applied to one JSON body,
 * checked as redrive checks them (JSON, still an envelope if it was one, size); *out: the new
 * body (herald__free). id names the message in errors. No store involved (the fuzzer's way in). */
int herald__dlq_edit(const char *id, const void *body, size_t body_len, const char *const *set,
                     size_t n_set, const char *merge_patch_text, char **out, size_t *len);

#endif
