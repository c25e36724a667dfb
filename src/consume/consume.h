// SPDX-License-Identifier: MIT
/*
 * consume.h - the consumer layer's internal contract: the push-consumer runtime (consumer.c)
 * runs effectively-once batches through tx.c. The public side is herald_consumer_*,
 * herald_delivery_*, herald_tx_* and herald_sql_* in herald.h.
 */
#ifndef HERALD_CONSUME_CONSUME_H
#define HERALD_CONSUME_CONSUME_H

#include "queue/queue.h"

/* One effectively-once batch (see tx.c): an op that takes up to max_n messages of queue,
 * runs handler on each and settles them, in one transaction. The caller fills store, queue,
 * max_n, handler, ud, policy, on_done and ud_caller. */
typedef struct herald__eo_op herald__eo_op;
struct herald__eo_op {
    herald__op base;
    herald_store *store;
    const char *queue;
    int max_n;
    herald_tx_handler_cb handler;
    void *ud;
    const herald__policy *policy;
    /* After the batch's commit is durable (rc 0) or failed (rc < 0, herald__err set): on the
     * store's writer or syncer thread. The results below are final then. */
    void (*on_done)(herald__eo_op *o, int rc);
    /* Writer thread, while the op runs: it took max_n messages (more may be waiting). */
    void (*on_full)(herald__eo_op *o);
    void *ud_caller;
    /* results: messages taken (0: none was visible), and how they ended */
    int64_t n_taken, n_ok, n_failed, n_duplicates;
    /* private (writer thread, during the op) */
    herald_store *s;
    herald_batch batch;
    herald_envelope *envs;
    bool *has_env;
    char **errors;
    herald__trace_info *traces;
    unsigned char *outcome; /* per message: EO_* of tx.c */
};

/* Submits the op and returns at once; o->on_done follows. rc < 0 from on_done: the
 * transaction failed and nothing of the batch happened (its messages stay visible). Returns
 * < 0 (and on_done is not called) when the store refused the op. o must live until on_done. */
int herald__eo_submit(herald__eo_op *o);

/* The context of one message going through a chain (middleware.c, filled by consumer.c). */
struct herald_msg_ctx {
    const herald_chain *chain;
    const char *queue;
    herald_store *store; /* the consumer's: its clock times the rate limiter */
    char error[256];
    bool is_duplicate;     /* dedup: already processed, the handler did not run */
    bool record_processed; /* dedup: record (queue, event_id) with the ack */
    int priv_pos;          /* next layer */
};

/* Outcome name of a handler result ("ok", "transient", ...). */
const char *herald__outcome_name(int rc, bool is_duplicate);
/* Adds one handled message that took ms to metric m (count, sum, histogram bucket). */
void herald__metric_observe(herald_metric *m, double ms);
/* Flushes the chain's metrics if a second passed since the last flush. */
void herald__chain_tick(herald_chain *ch);

/* Runs fn(tx, ud) as one op of s's writer: its SQL (herald_tx_*) commits together; fn < 0 rolls
 * it back. The transactional outbox is built on it. */
int herald__tx_in_op(herald_store *s, int (*fn)(herald_tx *tx, void *ud), void *ud);
/* The store a tx writes to. */
herald_store *herald__tx_store(herald_tx *tx);

#endif
