// SPDX-License-Identifier: MIT
/*
 * tx.c - effectively-once processing: the herald_tx a handler runs in, user SQL
 * (herald_sql_*), and the batch op that runs tx handlers on the writer thread.
 *
 * One batch is one op of the group-commit writer (eo_run). It takes up to max_n visible
 * messages of its queue (herald__store_take: no lease, no write - nobody else can see them
 * before this transaction commits), parses their envelopes, and for each message, in order:
 *   enveloped and (queue, event_id) already processed -> ack, no handler call (a duplicate)
 *   else record (queue, event_id) processed (if enveloped) and call handler(tx, m, env):
 *     0    -> ack
 *     < 0  -> its SQL, sends and record vanish; retry (or dead-letter); the attempt counts
 *   then all acks/retries of the batch are settled in the same op.
 * A failure is undone without a savepoint per message in the common case: see run_handlers.
 * The whole batch commits as one transaction (with whatever else the group holds): the
 * handler's effects, its sends, the processed records and the acks are durable together or not
 * at all. A crash anywhere before the commit leaves the messages untouched and visible: the
 * next batch takes them and processes them once. If the process died inside a handler, the
 * store's in-flight journal charges that message an attempt at the next open
 * (store_sqlite_inflight.c), so a message that kills its consumer still dead-letters.
 * Threads: handlers run on the writer thread; herald_tx_* only there, during the handler.
 */
#include "consume/consume.h"

#include <stdio.h>
#include <string.h>

struct herald_tx {
    herald_store *s;
    const herald_message *m;
    const herald_envelope *env;
    char error[256];
};

/* ---- herald_tx ---- */

int herald_tx_exec(herald_tx *tx, const char *sql, const herald_arg *args, size_t n_args,
                   int64_t *changes)
{
    herald__err_clear();
    if (!tx)
        return herald__err(HERALD_EINVAL, "herald_tx_exec: tx is NULL");
    return herald__store_user_sql(tx->s, sql, args, n_args, false, changes, NULL, NULL);
}

int herald_tx_query(herald_tx *tx, const char *sql, const herald_arg *args, size_t n_args,
                    herald_row_cb cb, void *ud)
{
    herald__err_clear();
    if (!tx || !cb)
        return herald__err(HERALD_EINVAL, "herald_tx_query: NULL argument");
    return herald__store_user_sql(tx->s, sql, args, n_args, false, NULL, cb, ud);
}

int herald_tx_send(herald_tx *tx, const char *queue, const herald_msg *m,
                   char id_out[HERALD_ID_SIZE])
{
    herald__err_clear();
    if (!tx || !m)
        return herald__err(HERALD_EINVAL, "herald_tx_send: NULL argument");
    char ids[1][HERALD_ID_SIZE];
    int rc = herald__queue_put_in_tx(tx->s, queue, m, 1, HERALD_UNSET, ids);
    if (rc == 0 && id_out)
        memcpy(id_out, ids[0], HERALD_ID_SIZE);
    return rc;
}

int herald_tx_send_event(herald_tx *tx, const char *queue, const herald_event *e,
                         char event_id_out[HERALD_ID_SIZE])
{
    herald__err_clear();
    if (!tx || !e)
        return herald__err(HERALD_EINVAL, "herald_tx_send_event: NULL argument");
    herald_event ev = *e;
    if ((!ev.correlation_id || !ev.correlation_id[0]) && tx->env && tx->env->correlation_id[0])
        ev.correlation_id = tx->env->correlation_id;
    char *body = NULL;
    size_t len = 0;
    char id[HERALD_ID_SIZE];
    int rc = herald__queue_encode_event(tx->s, &ev, id, &body, &len);
    if (rc < 0)
        return rc;
    herald__trace_info t;
    bool traced = ev.correlation_id && ev.correlation_id[0];
    if (traced) {
        snprintf(t.correlation_id, sizeof t.correlation_id, "%s", ev.correlation_id);
        memcpy(t.event_id, id, HERALD_ID_SIZE);
        snprintf(t.type, sizeof t.type, "%s", ev.type);
    }
    rc = herald__queue_put_envelope_in_tx(tx->s, queue, body, len, traced ? &t : NULL, NULL);
    herald__free(body);
    if (rc == 0 && event_id_out)
        memcpy(event_id_out, id, HERALD_ID_SIZE);
    return rc;
}

void herald_tx_set_error(herald_tx *tx, const char *error)
{
    if (tx) /* valid UTF-8, cut between characters: the tools read it back as JSON */
        herald__utf8_copy(tx->error, sizeof tx->error, error);
}

/* ---- herald_sql_* ---- */

typedef struct sql_op {
    herald__op base;
    const char *sql;
    const herald_arg *args;
    size_t n;
    int64_t changes;
} sql_op;

static int sql_run(herald_store *s, herald__op *op)
{
    sql_op *q = (sql_op *)op;
    return herald__store_user_sql(s, q->sql, q->args, q->n, q->n == 0, &q->changes, NULL, NULL);
}

int herald_sql_exec(herald_store *s, const char *sql, const herald_arg *args, size_t n_args,
                    int64_t *changes)
{
    herald__err_clear();
    if (!s || !sql || (n_args && !args))
        return herald__err(HERALD_EINVAL, "herald_sql_exec: NULL argument");
    sql_op q = { .base = { .run = sql_run }, .sql = sql, .args = args, .n = n_args };
    int rc = herald__store_exec(s, &q.base);
    if (rc == 0 && changes)
        *changes = q.changes;
    return rc;
}

int herald_sql_query(herald_store *s, const char *sql, const herald_arg *args, size_t n_args,
                     herald_row_cb cb, void *ud)
{
    herald__err_clear();
    if (!s || !sql || !cb || (n_args && !args))
        return herald__err(HERALD_EINVAL, "herald_sql_query: NULL argument");
    return herald__store_user_query(s, sql, args, n_args, cb, ud);
}

/* ---- the effectively-once batch op ---- */

enum { EO_OK = 1, EO_DUPLICATE, EO_FAILED }; /* outcome of one message */

/* Runs message i. careful: under a savepoint of its own, so a failed handler rolls back only
 * its own work; otherwise a failed handler returns EO_FAILED and the caller must undo the op.
 * Returns < 0 when the transaction itself failed. */
static int process_one(herald__eo_op *o, size_t i, herald__settle_item *it, bool careful)
{
    herald_store *s = o->s;
    const herald_message *m = &o->batch.msgs[i];
    const herald_envelope *env = o->has_env[i] ? &o->envs[i] : NULL;
    herald__err_clear();
    int rc = careful ? herald__store_sp_begin(s) : 0;
    bool is_new = true;
    /* Claim the event first: the record is rolled back with everything else if the handler
     * fails, and a duplicate costs one insert attempt. */
    if (rc == 0 && env)
        rc = herald__store_processed_claim(s, o->queue, env->event_id, env->type,
                                           &is_new);
    if (rc < 0) {
        if (careful) /* keep the savepoint stack (and the store's counter snapshots) level */
            (void)herald__store_sp_rollback(s);
        return rc;
    }
    if (!is_new) {
        o->outcome[i] = EO_DUPLICATE;
        return careful ? herald__store_sp_release(s) : 0;
    }
    herald_tx tx = { .s = s, .m = m, .env = env };
    herald__store_inflight_running(s, (int64_t)i); /* a crash from here on charges m */
    herald__fault("eo.before_handler");
    int hrc = o->handler(&tx, m, env, o->ud);
    herald__fault("eo.after_handler");
    herald__store_inflight_running(s, -1);
    if (hrc == 0) {
        o->outcome[i] = EO_OK;
        return careful ? herald__store_sp_release(s) : 0;
    }
    o->outcome[i] = EO_FAILED;
    it->is_retry = true;
    it->is_dead = hrc == HERALD_FAIL_PERMANENT; /* the error classes of herald.h */
    if (!tx.error[0]) {
        char why[600];
        snprintf(why, sizeof why, "handler failed: %s", herald_last_error());
        herald_tx_set_error(&tx, why);
    }
    herald__free(o->errors[i]);
    o->errors[i] = herald__xstrdup(tx.error);
    it->error = o->errors[i];
    return careful ? herald__store_sp_rollback(s) : EO_FAILED;
}

/* The settlement of message i before its handler runs: an ack, with its trace. */
static void item_init(herald__eo_op *o, size_t i, herald__settle_item *it)
{
    const herald_message *m = &o->batch.msgs[i];
    memset(it, 0, sizeof *it);
    (void)herald__lease_parse(m->lease_id, &it->ref);
    it->is_taken = true;
    it->delay_s = HERALD_UNSET;
    it->body_bytes = (int64_t)m->body_len; /* the queue's byte count needs no read */
    herald__settle_trace(it, &o->traces[i], m, o->has_env[i] ? &o->envs[i] : NULL);
}

/* Runs the taken batch: the common case costs no savepoint per message (a savepoint makes
 * SQLite copy every page a message touches first, ~4 KiB each): the batch runs straight
 * through under one savepoint. If a handler fails, that savepoint is rolled back and the batch
 * runs again carefully, each message under its own savepoint, without calling the failed
 * handler a second time. Handlers before it run twice (herald.h says a handler may run more
 * than once; only its herald_tx_* effects count, and they commit once). */
static int run_handlers(herald__eo_op *o, herald__settle_item *items)
{
    herald_store *s = o->s;
    size_t n = o->batch.n;
    int rc = herald__store_sp_begin(s);
    size_t failed = n; /* the message whose failure made the batch run carefully */
    for (size_t i = 0; rc == 0 && i < n; i++) {
        item_init(o, i, &items[i]);
        rc = process_one(o, i, &items[i], false);
        if (rc == EO_FAILED)
            failed = i;
    }
    if (rc == 0)
        return herald__store_sp_release(s);
    if (rc != EO_FAILED) { /* the store failed: the op fails; leave no savepoint behind */
        (void)herald__store_sp_rollback(s);
        return rc;
    }
    rc = herald__store_sp_rollback(s);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (i == failed)
            continue; /* its item and error stand; its work is undone */
        item_init(o, i, &items[i]);
        rc = process_one(o, i, &items[i], true);
    }
    return rc;
}

static void eo_free_batch(herald__eo_op *o)
{
    for (size_t i = 0; i < o->batch.n; i++) {
        if (o->errors)
            herald__free(o->errors[i]);
        if (o->has_env && o->has_env[i])
            herald_envelope_deinit(&o->envs[i]);
    }
    herald__free(o->errors);
    herald__free(o->traces);
    herald__free(o->outcome);
    herald__free(o->envs);
    herald__free(o->has_env);
    o->errors = NULL;
    o->traces = NULL;
    o->outcome = NULL;
    o->envs = NULL;
    o->has_env = NULL;
    herald_batch_deinit(&o->batch);
}

/* The op: take a batch (no lease: nobody else sees these rows before this transaction
 * commits, and the in-flight journal counts the attempt if the process dies meanwhile), parse
 * the envelopes, run the handlers, settle - all in the writer's transaction. */
static int eo_run(herald_store *s, herald__op *op)
{
    herald__eo_op *o = (herald__eo_op *)op;
    o->s = s;
    o->n_taken = o->n_ok = o->n_failed = o->n_duplicates = 0;
    int rc = herald__store_take(s, o->queue, o->max_n, o->policy, &o->batch);
    if (rc < 0)
        return rc;
    size_t n = o->batch.n;
    o->n_taken = (int64_t)n;
    if (n == (size_t)o->max_n && o->on_full)
        o->on_full(o);
    if (n == 0) {
        herald_batch_deinit(&o->batch);
        return 0;
    }
    o->envs = herald__xcalloc(n, sizeof *o->envs);
    o->has_env = herald__xcalloc(n, sizeof *o->has_env);
    o->errors = herald__xcalloc(n, sizeof *o->errors);
    o->traces = herald__xcalloc(n, sizeof *o->traces);
    o->outcome = herald__xcalloc(n, sizeof *o->outcome);
    for (size_t i = 0; i < n; i++) {
        const herald_message *m = &o->batch.msgs[i];
        o->has_env[i] = m->content_type == HERALD_CONTENT_JSON &&
                        herald__envelope_parse_stored(m->body, m->body_len, &o->envs[i]) == 0;
    }
    herald__settle_item *items = herald__xcalloc(n, sizeof *items);
    rc = run_handlers(o, items);
    for (size_t i = 0; i < n; i++) {
        o->n_ok += o->outcome[i] == EO_OK;
        o->n_failed += o->outcome[i] == EO_FAILED;
        o->n_duplicates += o->outcome[i] == EO_DUPLICATE;
    }
    herald_settle_result res;
    if (rc == 0)
        rc = herald__store_settle(s, o->queue, items, n, o->policy, &res);
    herald__free(items);
    eo_free_batch(o);
    herald__fault("eo.before_commit");
    return rc;
}

/* Writer or syncer thread: the group holding the batch is durable, or failed. */
static void eo_done(herald__op *op)
{
    herald__eo_op *o = (herald__eo_op *)op;
    int rc = op->rc;
    if (rc == 0 && o->n_taken > 0)
        herald__fault("eo.after_commit");
    herald__err_clear();
    if (rc < 0)
        herald__err(rc, "%s", op->err[0] ? op->err : herald_strerror(rc));
    o->on_done(o, rc); /* may free o */
}

int herald__eo_submit(herald__eo_op *o)
{
    herald__err_clear();
    memset(&o->batch, 0, sizeof o->batch);
    o->envs = NULL;
    o->has_env = NULL;
    o->errors = NULL;
    o->traces = NULL;
    o->outcome = NULL;
    o->base = (herald__op){ .run = eo_run, .done = eo_done, .wakes = true };
    return herald__store_submit(o->store, &o->base);
}

/* ---- plain transactions (the outbox) ---- */

typedef struct fn_op {
    herald__op base;
    int (*fn)(herald_tx *tx, void *ud);
    void *ud;
} fn_op;

static int fn_run(herald_store *s, herald__op *op)
{
    fn_op *f = (fn_op *)op;
    herald_tx tx = { .s = s };
    return f->fn(&tx, f->ud);
}

int herald__tx_in_op(herald_store *s, int (*fn)(herald_tx *tx, void *ud), void *ud)
{
    fn_op f = { .base = { .run = fn_run, .wakes = true }, .fn = fn, .ud = ud };
    return herald__store_exec(s, &f.base);
}

herald_store *herald__tx_store(herald_tx *tx)
{
    return tx->s;
}
