// SPDX-License-Identifier: MIT
/*
 * queue.c - the public queue API: queue administration, send (sync, batch, async), pull, ack,
 * retry, peek, stats. Validates every argument on the caller's thread before any side effect
 * (names, ranges, content types, JSON, UTF-8, sizes), mints message ids (UUIDv7), then hands one
 * op to the store's group-commit writer. Checks that need the queue row (it exists, its
 * max_message_bytes, its delivery_delay) run in the writer inside the same transaction.
 * Ownership: synchronous calls borrow everything; async sends copy the bodies into the op, which
 *   frees itself after its callback. Threads: any.
 */
#include "queue/queue.h"

#include <stdio.h>
#include <string.h>

#define HARD_MAX_MESSAGE_BYTES (1024 * 1024)

static int check_name(const char *name, const char *what)
{
    if (!name)
        return herald__err(HERALD_EINVAL, "%s is missing", what);
    if (!herald__name_valid(name))
        return herald__err(HERALD_EINVAL,
                           "%s '%.80s' is invalid: use 1-%d characters of A-Z a-z 0-9 _ -, "
                           "starting with a letter or digit",
                           what, name, HERALD_QUEUE_NAME_MAX);
    return 0;
}

/* code: HERALD_EDELAY for a message's delay, HERALD_EINVAL for a queue/consumer setting. */
static int check_delay_as(int64_t delay_s, const char *what, int code)
{
    if (delay_s == HERALD_UNSET)
        return 0;
    if (delay_s < 0 || delay_s > HERALD_MAX_DELAY_S)
        return herald__err(code, "%s of %lld s is out of range 0..%d s (365 days)", what,
                           (long long)delay_s, HERALD_MAX_DELAY_S);
    return 0;
}

static int check_delay(int64_t delay_s, const char *what)
{
    return check_delay_as(delay_s, what, HERALD_EDELAY);
}

static int check_settings(const char *name, const herald_queue_settings *st)
{
    int rc = 0;
    if (!st)
        return 0;
    if ((rc = check_delay_as(st->delivery_delay_s, "delivery_delay", HERALD_EINVAL)) < 0 ||
        (rc = check_delay_as(st->retry_delay_s, "retry_delay", HERALD_EINVAL)) < 0)
        return rc;
    if (st->message_retention_period_s != HERALD_UNSET &&
        (st->message_retention_period_s < HERALD_MIN_RETENTION_S ||
         st->message_retention_period_s > HERALD_MAX_RETENTION_S))
        return herald__err(HERALD_EINVAL, "message_retention_period %lld is out of range %d..%d",
                           (long long)st->message_retention_period_s, HERALD_MIN_RETENTION_S,
                           HERALD_MAX_RETENTION_S);
    if (st->max_message_bytes != HERALD_UNSET &&
        (st->max_message_bytes < 1 || st->max_message_bytes > HARD_MAX_MESSAGE_BYTES))
        return herald__err(HERALD_EINVAL, "max_message_bytes %lld is out of range 1..%d",
                           (long long)st->max_message_bytes, HARD_MAX_MESSAGE_BYTES);
    if (st->max_retries != HERALD_UNSET &&
        (st->max_retries < 0 || st->max_retries > HERALD_MAX_RETRIES_LIMIT))
        return herald__err(HERALD_EINVAL, "max_retries %lld is out of range 0..%d",
                           (long long)st->max_retries, HERALD_MAX_RETRIES_LIMIT);
    if (st->dead_letter_queue && st->dead_letter_queue[0]) {
        if ((rc = check_name(st->dead_letter_queue, "dead_letter_queue")) < 0)
            return rc;
        if (strcmp(st->dead_letter_queue, name) == 0)
            return herald__err(HERALD_EINVAL,
                               "dead_letter_queue '%s' cannot be the queue itself", name);
    }
    return 0;
}

int herald__queue_check_settings(const char *name, const herald_queue_settings *st)
{
    return check_settings(name, st);
}

int herald__queue_check_policy(const herald__policy *p)
{
    int rc;
    if (p->max_retries != HERALD_UNSET &&
        (p->max_retries < 0 || p->max_retries > HERALD_MAX_RETRIES_LIMIT))
        return herald__err(HERALD_EINVAL, "max_retries %lld is out of range 0..%d",
                           (long long)p->max_retries, HERALD_MAX_RETRIES_LIMIT);
    if ((rc = check_delay_as(p->retry_delay_s, "retry_delay", HERALD_EINVAL)) < 0)
        return rc;
    if (p->dead_letter_queue && p->dead_letter_queue[0])
        return check_name(p->dead_letter_queue, "dead_letter_queue");
    return 0;
}

void herald_queue_settings_init(herald_queue_settings *s)
{
    s->delivery_delay_s = HERALD_UNSET;
    s->message_retention_period_s = HERALD_UNSET;
    s->max_message_bytes = HERALD_UNSET;
    s->max_retries = HERALD_UNSET;
    s->retry_delay_s = HERALD_UNSET;
    s->dead_letter_queue = NULL;
}

/* ---- administration ops ---- */

typedef enum admin_kind {
    ADMIN_CREATE,
    ADMIN_UPDATE,
    ADMIN_DELETE,
    ADMIN_PURGE,
    ADMIN_PAUSE,
    ADMIN_RESUME,
} admin_kind;

typedef struct admin_op {
    herald__op base;
    admin_kind kind;
    const char *name;
    herald_queue_settings st;
    char uuid[HERALD_ID_SIZE];
    int64_t n_deleted;
} admin_op;

static int admin_run(herald_store *s, herald__op *op)
{
    admin_op *a = (admin_op *)op;
    switch (a->kind) {
    case ADMIN_CREATE:
        return herald__store_queue_create(s, a->name, &a->st, a->uuid);
    case ADMIN_UPDATE:
        return herald__store_queue_update(s, a->name, &a->st);
    case ADMIN_DELETE:
        return herald__store_queue_delete(s, a->name);
    case ADMIN_PURGE:
        return herald__store_queue_purge(s, a->name, &a->n_deleted);
    case ADMIN_PAUSE:
        return herald__store_queue_set_paused(s, a->name, true);
    case ADMIN_RESUME:
        return herald__store_queue_set_paused(s, a->name, false);
    }
    return herald__err(HERALD_EINVAL, "unknown queue operation");
}

static int admin(herald_store *s, admin_kind kind, const char *name,
                 const herald_queue_settings *st, int64_t *n_deleted)
{
    herald__err_clear();
    if (!s)
        return herald__err(HERALD_EINVAL, "store is NULL");
    int rc = check_name(name, "queue name");
    if (rc < 0)
        return kind == ADMIN_CREATE ? rc : herald__err(HERALD_ENOQUEUE, "%s", herald_last_error());
    admin_op a;
    memset(&a, 0, sizeof a);
    a.base.run = admin_run;
    a.base.wakes = kind == ADMIN_RESUME || kind == ADMIN_UPDATE;
    a.kind = kind;
    a.name = name;
    herald_queue_settings_init(&a.st);
    if (st)
        a.st = *st;
    if (kind == ADMIN_CREATE || kind == ADMIN_UPDATE) {
        if ((rc = check_settings(name, &a.st)) < 0)
            return rc;
    }
    if (kind == ADMIN_CREATE) {
        if (a.st.delivery_delay_s == HERALD_UNSET)
            a.st.delivery_delay_s = 0;
        if (a.st.message_retention_period_s == HERALD_UNSET)
            a.st.message_retention_period_s = HERALD_DEFAULT_RETENTION_S;
        if (a.st.max_message_bytes == HERALD_UNSET)
            a.st.max_message_bytes = HERALD_MAX_MESSAGE_BYTES;
        if (a.st.max_retries == HERALD_UNSET)
            a.st.max_retries = HERALD_DEFAULT_MAX_RETRIES;
        if (a.st.retry_delay_s == HERALD_UNSET)
            a.st.retry_delay_s = 0;
        if (!a.st.dead_letter_queue)
            a.st.dead_letter_queue = "";
        herald__uuid7_at(herald__store_now(s), a.uuid);
    }
    rc = herald__store_exec(s, &a.base);
    if (rc == 0 && n_deleted)
        *n_deleted = a.n_deleted;
    return rc;
}

int herald_queue_create(herald_store *s, const char *name, const herald_queue_settings *settings)
{
    return admin(s, ADMIN_CREATE, name, settings, NULL);
}

int herald_queue_update(herald_store *s, const char *name, const herald_queue_settings *settings)
{
    return admin(s, ADMIN_UPDATE, name, settings, NULL);
}

int herald_queue_delete(herald_store *s, const char *name)
{
    return admin(s, ADMIN_DELETE, name, NULL, NULL);
}

int herald_queue_purge(herald_store *s, const char *name, int64_t *n_deleted)
{
    return admin(s, ADMIN_PURGE, name, NULL, n_deleted);
}

int herald_queue_pause(herald_store *s, const char *name)
{
    return admin(s, ADMIN_PAUSE, name, NULL, NULL);
}

int herald_queue_resume(herald_store *s, const char *name)
{
    return admin(s, ADMIN_RESUME, name, NULL, NULL);
}

/* ---- reads ---- */

static int check_read_name(herald_store *s, const char *name)
{
    herald__err_clear();
    if (!s)
        return herald__err(HERALD_EINVAL, "store is NULL");
    if (!name || !herald__name_valid(name))
        return herald__err(HERALD_ENOQUEUE, "queue '%.80s' does not exist (invalid name)",
                           name ? name : "(null)");
    return 0;
}

int herald_queue_get(herald_store *s, const char *name, herald_queue_info *out)
{
    int rc = check_read_name(s, name);
    if (rc < 0)
        return rc;
    herald_queue_info info;
    rc = herald__store_queue_get(s, name, &info);
    if (rc == 0)
        *out = info;
    return rc;
}

int herald_queue_list(herald_store *s, herald_queue_info **out, size_t *n_out)
{
    herald__err_clear();
    if (!s || !out || !n_out)
        return herald__err(HERALD_EINVAL, "herald_queue_list: NULL argument");
    return herald__store_queue_list(s, out, n_out);
}

int herald_queue_stats_get(herald_store *s, const char *name, herald_queue_stats *out)
{
    int rc = check_read_name(s, name);
    if (rc < 0)
        return rc;
    return herald__store_queue_stats(s, name, out);
}

/* Sleeps between looks at the backlog: woken by this process's commits at once (the store's
 * wake generation); other processes' commits are seen through data_version, polled like the
 * consumer's dispatcher does (1 ms after a change, doubling to 250 ms when idle). The timeout
 * runs on the store's clock, so tests drive it with their fake clock. */
int herald_queue_wait_empty(herald_store *s, const char *name, int64_t timeout_ms)
{
    int rc = check_read_name(s, name);
    if (rc < 0)
        return rc;
    if (timeout_ms < 0 || timeout_ms > HERALD_MAX_DELAY_S * 1000LL)
        return herald__err(HERALD_EINVAL, "wait_empty timeout %lld ms is out of range 0..%lld",
                           (long long)timeout_ms, HERALD_MAX_DELAY_S * 1000LL);
    if ((rc = herald__store_check_may_wait(s)) < 0) /* it would wait for its own thread */
        return rc;
    int64_t deadline_ms = herald__store_now(s) + timeout_ms;
    uint64_t seen = herald__store_gen(s);
    int64_t data_version = 0;
    (void)herald__store_data_version(s, &data_version);
    int64_t poll_ms = 1;
    for (;;) {
        herald_queue_stats st;
        if ((rc = herald__store_queue_stats(s, name, &st)) < 0)
            return rc;
        if (st.backlog_count == 0)
            return 0;
        int64_t now_ms = herald__store_now(s);
        if (now_ms >= deadline_ms)
            return herald__err(HERALD_ETIMEDOUT,
                               "queue '%s' still holds %lld messages after %lld ms", name,
                               (long long)st.backlog_count, (long long)timeout_ms);
        int64_t wait_ms = deadline_ms - now_ms < poll_ms ? deadline_ms - now_ms : poll_ms;
        uint64_t g = herald__store_wait(s, seen, herald__mono_ns() + wait_ms * 1000000);
        if (g != seen) {
            seen = g;
            poll_ms = 1;
            continue;
        }
        int64_t dv = data_version;
        if (herald__store_data_version(s, &dv) == 0 && dv != data_version) {
            data_version = dv;
            poll_ms = 1;
        } else if (poll_ms < 250) {
            poll_ms = poll_ms * 2 < 250 ? poll_ms * 2 : 250;
        }
    }
}

int herald_peek(herald_store *s, const char *queue, int max_n, herald_batch *b)
{
    int rc = check_read_name(s, queue);
    if (rc < 0)
        return rc;
    if (max_n < 1 || max_n > HERALD_MAX_BATCH_MESSAGES)
        return herald__err(HERALD_EINVAL, "batch size %d is out of range 1..%d", max_n,
                           HERALD_MAX_BATCH_MESSAGES);
    return herald__store_peek(s, queue, max_n, b);
}

/* ---- content types ---- */

static const char *const type_names[] = { "json", "text", "bytes" };

int herald_content_type_parse(const char *s, herald_content_type *out)
{
    herald__err_clear();
    for (int i = 0; i < 3; i++) {
        if (s && strcmp(s, type_names[i]) == 0) {
            *out = (herald_content_type)i;
            return 0;
        }
    }
    return herald__err(HERALD_EBADTYPE, "content type '%.40s' is not one of json, text, bytes",
                       s ? s : "(null)");
}

const char *herald_content_type_name(herald_content_type t)
{
    return (unsigned)t < 3 ? type_names[t] : "unknown";
}

/* ---- send ---- */

static int check_msg(const herald_msg *m, size_t i, size_t n)
{
    char what[48];
    if (n > 1)
        snprintf(what, sizeof what, "message %zu", i);
    else
        snprintf(what, sizeof what, "message");
    if (!m->body && m->body_len > 0)
        return herald__err(HERALD_EINVAL, "%s: body is NULL", what);
    if (m->body_len > HARD_MAX_MESSAGE_BYTES)
        return herald__err(HERALD_ETOOBIG, "%s: body of %zu bytes is too large", what,
                           m->body_len);
    int rc;
    char dwhat[64];
    snprintf(dwhat, sizeof dwhat, "%s: delay", what);
    if ((rc = check_delay(m->delay_s, dwhat)) < 0)
        return rc;
    switch (m->content_type) {
    case HERALD_CONTENT_JSON: {
        char jwhat[64];
        snprintf(jwhat, sizeof jwhat, "%s body", what);
        return herald__json_check(m->body ? m->body : "", m->body_len, jwhat);
    }
    case HERALD_CONTENT_TEXT:
        if (!herald__utf8_valid(m->body, m->body_len))
            return herald__err(HERALD_EBADTYPE,
                               "%s: content type text needs valid UTF-8; use bytes for binary",
                               what);
        return 0;
    case HERALD_CONTENT_BYTES:
        return 0;
    }
    return herald__err(HERALD_EBADTYPE, "%s: content type %d is not json, text or bytes", what,
                       (int)m->content_type);
}

void herald_msg_init(herald_msg *m)
{
    *m = (herald_msg)HERALD_MSG_INIT;
}

int herald_msg_validate(const herald_msg *m)
{
    herald__err_clear();
    if (!m)
        return herald__err(HERALD_EINVAL, "message is NULL");
    int rc = check_msg(m, 0, 1);
    if (rc == 0 && m->body_len > HERALD_MAX_MESSAGE_BYTES)
        rc = herald__err(HERALD_ETOOBIG, "message: body of %zu bytes exceeds the limit of %d bytes",
                         m->body_len, HERALD_MAX_MESSAGE_BYTES);
    return rc;
}

static int check_msgs(const herald_msg *msgs, size_t n, int64_t batch_delay_s)
{
    int rc;
    if (n == 0 || n > HERALD_MAX_BATCH_MESSAGES || !msgs)
        return herald__err(HERALD_EBATCH, "a batch holds 1..%d messages, got %zu",
                           HERALD_MAX_BATCH_MESSAGES, n);
    if ((rc = check_delay(batch_delay_s, "batch delay")) < 0)
        return rc;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if ((rc = check_msg(&msgs[i], i, n)) < 0)
            return rc;
        total += msgs[i].body_len;
    }
    if (n > 1 && total > HERALD_MAX_BATCH_BYTES)
        return herald__err(HERALD_ETOOBIG, "batch of %zu bytes exceeds the limit of %d bytes",
                           total, HERALD_MAX_BATCH_BYTES);
    return 0;
}

static int check_batch(herald_store *s, const char *queue, const herald_msg *msgs, size_t n,
                       int64_t batch_delay_s)
{
    int rc = check_read_name(s, queue);
    return rc < 0 ? rc : check_msgs(msgs, n, batch_delay_s);
}

typedef struct put_op {
    herald__op base;
    const char *queue;
    herald__msg_in *msgs;
    size_t n;
    int64_t batch_delay_s;
    /* async only: */
    herald_send_cb cb;
    void *ud;
    char *queue_copy;
    uint8_t *bodies;
} put_op;

static int put_run(herald_store *s, herald__op *op)
{
    put_op *p = (put_op *)op;
    return herald__store_msg_put(s, p->queue, p->msgs, p->n, p->batch_delay_s);
}

static void mint_ids(herald_store *s, herald__msg_in *in, const herald_msg *msgs, size_t n)
{
    int64_t now = herald__store_now(s);
    for (size_t i = 0; i < n; i++) {
        herald__uuid7_at(now, in[i].id);
        in[i].body = msgs[i].body;
        in[i].body_len = msgs[i].body_len;
        in[i].content_type = msgs[i].content_type;
        in[i].delay_s = msgs[i].delay_s;
        herald__trace_info *t = &in[i].trace;
        t->correlation_id[0] = 0;
        if (msgs[i].content_type == HERALD_CONTENT_JSON)
            (void)herald__envelope_trace(msgs[i].body, msgs[i].body_len, t->correlation_id,
                                         t->event_id, t->type);
    }
}

int herald_send_batch(herald_store *s, const char *queue, const herald_msg *msgs, size_t n,
                      int64_t batch_delay_s, char (*ids_out)[HERALD_ID_SIZE])
{
    herald__err_clear();
    int rc = check_batch(s, queue, msgs, n, batch_delay_s);
    if (rc < 0)
        return rc;
    herald__msg_in in[HERALD_MAX_BATCH_MESSAGES];
    mint_ids(s, in, msgs, n);
    put_op p;
    memset(&p, 0, sizeof p);
    p.base.run = put_run;
    p.base.wakes = true;
    p.queue = queue;
    p.msgs = in;
    p.n = n;
    p.batch_delay_s = batch_delay_s;
    rc = herald__store_exec(s, &p.base);
    if (rc == 0 && ids_out) {
        for (size_t i = 0; i < n; i++)
            memcpy(ids_out[i], in[i].id, HERALD_ID_SIZE);
    }
    return rc;
}

int herald__queue_prepare_batch(herald_store *s, const herald_msg *msgs, size_t n,
                                int64_t batch_delay_s, herald__msg_in *in)
{
    int rc = check_msgs(msgs, n, batch_delay_s);
    if (rc == 0)
        mint_ids(s, in, msgs, n);
    return rc;
}

int herald__queue_put_in_tx(herald_store *s, const char *queue, const herald_msg *msgs, size_t n,
                            int64_t batch_delay_s, char (*ids_out)[HERALD_ID_SIZE])
{
    int rc = check_batch(s, queue, msgs, n, batch_delay_s);
    if (rc < 0)
        return rc;
    herald__msg_in in[HERALD_MAX_BATCH_MESSAGES];
    mint_ids(s, in, msgs, n);
    rc = herald__store_msg_put(s, queue, in, n, batch_delay_s);
    if (rc == 0 && ids_out) {
        for (size_t i = 0; i < n; i++)
            memcpy(ids_out[i], in[i].id, HERALD_ID_SIZE);
    }
    return rc;
}

int herald__queue_put_envelope_in_tx(herald_store *s, const char *queue, const char *body,
                                     size_t len, const herald__trace_info *trace,
                                     char id_out[HERALD_ID_SIZE])
{
    int rc = check_read_name(s, queue);
    if (rc < 0)
        return rc;
    herald__msg_in in[1];
    herald__uuid7_at(herald__store_now(s), in[0].id);
    in[0].body = body;
    in[0].body_len = len;
    in[0].content_type = HERALD_CONTENT_JSON;
    in[0].delay_s = HERALD_UNSET;
    if (trace)
        in[0].trace = *trace; /* known to the caller: no need to parse the body again */
    else
        in[0].trace.correlation_id[0] = 0;
    rc = herald__store_msg_put(s, queue, in, 1, HERALD_UNSET);
    if (rc == 0 && id_out)
        memcpy(id_out, in[0].id, HERALD_ID_SIZE);
    return rc;
}

int herald_send(herald_store *s, const char *queue, const herald_msg *m,
                char id_out[HERALD_ID_SIZE])
{
    herald__err_clear();
    if (!m)
        return herald__err(HERALD_EINVAL, "message is NULL");
    char ids[1][HERALD_ID_SIZE];
    int rc = herald_send_batch(s, queue, m, 1, HERALD_UNSET, ids);
    if (rc == 0 && id_out)
        memcpy(id_out, ids[0], HERALD_ID_SIZE);
    return rc;
}

static void put_op_free(put_op *p)
{
    herald__free(p->bodies);
    herald__free(p->msgs);
    herald__free(p->queue_copy);
    herald__free(p);
}

static void put_done(herald__op *op)
{
    put_op *p = (put_op *)op;
    if (p->base.rc == 0) {
        char(*ids)[HERALD_ID_SIZE] = herald__xmalloc(p->n * HERALD_ID_SIZE);
        for (size_t i = 0; i < p->n; i++)
            memcpy(ids[i], p->msgs[i].id, HERALD_ID_SIZE);
        p->cb(p->ud, 0, (const char(*)[HERALD_ID_SIZE])ids, p->n);
        herald__free(ids);
    } else {
        herald__err(p->base.rc, "%s", p->base.err);
        p->cb(p->ud, p->base.rc, NULL, 0);
    }
    put_op_free(p);
}

int herald_send_batch_async(herald_store *s, const char *queue, const herald_msg *msgs, size_t n,
                            int64_t batch_delay_s, herald_send_cb cb, void *ud)
{
    herald__err_clear();
    if (!cb)
        return herald__err(HERALD_EINVAL, "herald_send_batch_async: callback is NULL");
    int rc = check_batch(s, queue, msgs, n, batch_delay_s);
    if (rc < 0)
        return rc;
    put_op *p = herald__xcalloc(1, sizeof *p);
    p->msgs = herald__xmalloc(n * sizeof *p->msgs);
    mint_ids(s, p->msgs, msgs, n);
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += msgs[i].body_len;
    p->bodies = herald__xmalloc(total);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        if (msgs[i].body_len)
            memcpy(p->bodies + off, msgs[i].body, msgs[i].body_len);
        p->msgs[i].body = p->bodies + off;
        off += msgs[i].body_len;
    }
    p->queue_copy = herald__xstrdup(queue);
    p->queue = p->queue_copy;
    p->n = n;
    p->batch_delay_s = batch_delay_s;
    p->cb = cb;
    p->ud = ud;
    p->base.run = put_run;
    p->base.done = put_done;
    p->base.wakes = true;
    rc = herald__store_submit(s, &p->base);
    if (rc < 0)
        put_op_free(p);
    return rc;
}

/* ---- lease / pull ---- */

typedef struct lease_op {
    herald__op base;
    const char *queue;
    int max_n;
    int64_t visibility_ms;
    const herald__policy *policy;
    herald_batch *out;
} lease_op;

static int lease_run(herald_store *s, herald__op *op)
{
    lease_op *l = (lease_op *)op;
    return herald__store_lease(s, l->queue, l->max_n, l->visibility_ms, l->policy, l->out);
}

int herald__queue_lease(herald_store *s, const char *queue, int max_n, int64_t visibility_ms,
                        const herald__policy *p, herald_batch *out)
{
    herald_batch b;
    memset(&b, 0, sizeof b);
    lease_op l = { .base = { .run = lease_run },
                   .queue = queue,
                   .max_n = max_n,
                   .visibility_ms = visibility_ms,
                   .policy = p,
                   .out = &b };
    int rc = herald__store_exec(s, &l.base);
    if (rc == 0)
        *out = b;
    else
        herald_batch_deinit(&b); /* the lease ran but its group's commit failed */
    return rc;
}

typedef struct lease_async_op {
    lease_op l;
    herald_batch b;
    herald__policy policy;
    char *queue_copy, *dlq_copy;
    herald__queue_lease_cb cb;
    void *ud;
} lease_async_op;

static void lease_async_free(lease_async_op *a)
{
    herald__free(a->queue_copy);
    herald__free(a->dlq_copy);
    herald__free(a);
}

static void lease_async_done(herald__op *op)
{
    lease_async_op *a = (lease_async_op *)op;
    if (a->l.base.rc < 0) {
        herald__err(a->l.base.rc, "%s", a->l.base.err);
        herald_batch_deinit(&a->b); /* the lease ran but its commit failed: nothing was leased */
    }
    a->cb(a->ud, a->l.base.rc, &a->b);
    lease_async_free(a);
}

int herald__queue_lease_async(herald_store *s, const char *queue, int max_n,
                              int64_t visibility_ms, const herald__policy *p,
                              herald__queue_lease_cb cb, void *ud)
{
    lease_async_op *a = herald__xcalloc(1, sizeof *a);
    a->queue_copy = herald__xstrdup(queue);
    if (p) {
        a->policy = *p;
        if (p->dead_letter_queue) {
            a->dlq_copy = herald__xstrdup(p->dead_letter_queue);
            a->policy.dead_letter_queue = a->dlq_copy;
        }
    }
    a->l = (lease_op){ .base = { .run = lease_run, .done = lease_async_done },
                       .queue = a->queue_copy,
                       .max_n = max_n,
                       .visibility_ms = visibility_ms,
                       .policy = p ? &a->policy : NULL,
                       .out = &a->b };
    a->cb = cb;
    a->ud = ud;
    int rc = herald__store_submit(s, &a->l.base);
    if (rc < 0)
        lease_async_free(a);
    return rc;
}

int herald_pull(herald_store *s, const char *queue, int max_n, int64_t visibility_ms,
                herald_batch *b)
{
    int rc = check_read_name(s, queue);
    if (rc < 0)
        return rc;
    if (!b)
        return herald__err(HERALD_EINVAL, "herald_pull: batch is NULL");
    if (max_n < 1 || max_n > HERALD_MAX_BATCH_MESSAGES)
        return herald__err(HERALD_EINVAL, "batch size %d is out of range 1..%d", max_n,
                           HERALD_MAX_BATCH_MESSAGES);
    if (visibility_ms == HERALD_UNSET)
        visibility_ms = HERALD_DEFAULT_VISIBILITY_MS;
    if (visibility_ms < 1 || visibility_ms > HERALD_MAX_VISIBILITY_MS)
        return herald__err(HERALD_EINVAL, "visibility timeout %lld ms is out of range 1..%d ms",
                           (long long)visibility_ms, HERALD_MAX_VISIBILITY_MS);
    return herald__queue_lease(s, queue, max_n, visibility_ms, NULL, b);
}

/* ---- settle ---- */

typedef struct settle_op {
    herald__op base;
    const char *queue;
    const herald__settle_item *items;
    size_t n;
    const herald__policy *policy;
    herald_settle_result res;
    /* async only: owned copies */
    herald__queue_done_cb cb;
    void *ud;
    char *queue_copy;
    herald__settle_item *items_copy;
    herald__policy policy_copy;
    char *dlq_copy, *handler_copy;
    char **errors;
    herald__trace_info *traces;
    char (*msg_ids)[HERALD_ID_SIZE];
} settle_op;

static int settle_run(herald_store *s, herald__op *op)
{
    settle_op *st = (settle_op *)op;
    return herald__store_settle(s, st->queue, st->items, st->n, st->policy, &st->res);
}

static int parse_leases(const char *const *lease_ids, size_t n, herald__settle_item **out)
{
    if (!lease_ids || n == 0)
        return herald__err(HERALD_ELEASE, "no lease ids given");
    if (n > 10000)
        return herald__err(HERALD_EBATCH, "at most 10000 lease ids per call, got %zu", n);
    herald__settle_item *items = herald__xcalloc(n, sizeof *items);
    for (size_t i = 0; i < n; i++) {
        if (!herald__lease_parse(lease_ids[i], &items[i].ref)) {
            herald__free(items);
            return herald__err(HERALD_ELEASE, "lease id %zu '%.80s' is malformed", i,
                               lease_ids[i] ? lease_ids[i] : "(null)");
        }
    }
    *out = items;
    return 0;
}

static int settle_sync(herald_store *s, const char *queue, herald__settle_item *items, size_t n,
                       herald_settle_result *result)
{
    settle_op op;
    memset(&op, 0, sizeof op);
    op.base.run = settle_run;
    op.base.wakes = true;
    op.queue = queue;
    op.items = items;
    op.n = n;
    int rc = herald__store_exec(s, &op.base);
    if (rc == 0 && result)
        *result = op.res;
    return rc;
}

int herald_ack(herald_store *s, const char *queue, const char *const *lease_ids, size_t n,
               herald_settle_result *result)
{
    int rc = check_read_name(s, queue);
    if (rc < 0)
        return rc;
    herald__settle_item *items = NULL;
    if ((rc = parse_leases(lease_ids, n, &items)) < 0)
        return rc;
    rc = settle_sync(s, queue, items, n, result);
    herald__free(items);
    return rc;
}

int herald_retry(herald_store *s, const char *queue, const char *const *lease_ids, size_t n,
                 int64_t delay_s, const char *error, herald_settle_result *result)
{
    int rc = check_read_name(s, queue);
    if (rc < 0)
        return rc;
    if ((rc = check_delay(delay_s, "retry delay")) < 0)
        return rc;
    herald__settle_item *items = NULL;
    if ((rc = parse_leases(lease_ids, n, &items)) < 0)
        return rc;
    /* stored, then read back as JSON by the tools: valid UTF-8, cut between characters */
    char *clean = error ? herald__utf8_dup(error, HERALD__ERROR_TEXT_MAX) : NULL;
    for (size_t i = 0; i < n; i++) {
        items[i].is_retry = true;
        items[i].delay_s = delay_s;
        items[i].error = clean;
    }
    rc = settle_sync(s, queue, items, n, result);
    herald__free(clean);
    herald__free(items);
    return rc;
}

static void settle_op_free(settle_op *st)
{
    for (size_t i = 0; i < st->n; i++) {
        herald__free(st->errors[i]);
        herald__free((char *)st->items_copy[i].processed_event_id);
        herald__free((char *)st->items_copy[i].processed_type);
    }
    herald__free(st->errors);
    herald__free(st->items_copy);
    herald__free(st->queue_copy);
    herald__free(st->dlq_copy);
    herald__free(st->handler_copy);
    herald__free(st->traces);
    herald__free(st->msg_ids);
    herald__free(st);
}

static void settle_done(herald__op *op)
{
    settle_op *st = (settle_op *)op;
    if (st->base.rc < 0)
        herald__err(st->base.rc, "%s", st->base.err);
    st->cb(st->ud, st->base.rc, st->base.rc == 0 ? &st->res : NULL);
    settle_op_free(st);
}

int herald__queue_settle_async(herald_store *s, const char *queue,
                               const herald__settle_item *items, size_t n,
                               const herald__policy *p, herald__queue_done_cb cb, void *ud)
{
    settle_op *st = herald__xcalloc(1, sizeof *st);
    st->queue_copy = herald__xstrdup(queue);
    st->queue = st->queue_copy;
    st->items_copy = herald__xmemdup(items, n * sizeof *items);
    st->errors = herald__xcalloc(n ? n : 1, sizeof *st->errors);
    for (size_t i = 0; i < n; i++) {
        if (items[i].error) {
            st->errors[i] = herald__xstrdup(items[i].error);
            st->items_copy[i].error = st->errors[i];
        }
        if (items[i].processed_event_id) {
            st->items_copy[i].processed_event_id = herald__xstrdup(items[i].processed_event_id);
            st->items_copy[i].processed_type =
                herald__xstrdup(items[i].processed_type ? items[i].processed_type : "");
        }
        if (items[i].trace) {
            if (!st->traces) {
                st->traces = herald__xcalloc(n, sizeof *st->traces);
                st->msg_ids = herald__xcalloc(n, sizeof *st->msg_ids);
            }
            st->traces[i] = *items[i].trace;
            st->items_copy[i].trace = &st->traces[i];
            snprintf(st->msg_ids[i], sizeof st->msg_ids[i], "%s",
                     items[i].message_id ? items[i].message_id : "");
            st->items_copy[i].message_id = st->msg_ids[i];
        }
    }
    st->items = st->items_copy;
    st->n = n;
    if (p) {
        st->policy_copy = *p;
        if (p->dead_letter_queue) {
            st->dlq_copy = herald__xstrdup(p->dead_letter_queue);
            st->policy_copy.dead_letter_queue = st->dlq_copy;
        }
        if (p->handler_name) {
            st->handler_copy = herald__xstrdup(p->handler_name);
            st->policy_copy.handler_name = st->handler_copy;
        }
        st->policy = &st->policy_copy;
    }
    st->cb = cb;
    st->ud = ud;
    st->base.run = settle_run;
    st->base.done = settle_done;
    st->base.wakes = true;
    int rc = herald__store_submit(s, &st->base);
    if (rc < 0)
        settle_op_free(st);
    return rc;
}

/* ---- extend, sweep ---- */

typedef struct extend_op {
    herald__op base;
    const char *queue;
    const herald__lease_ref *refs;
    size_t n;
    int64_t until_ms;
} extend_op;

static int extend_run(herald_store *s, herald__op *op)
{
    extend_op *e = (extend_op *)op;
    return herald__store_extend(s, e->queue, e->refs, e->n, e->until_ms);
}

int herald__queue_extend(herald_store *s, const char *queue, const herald__lease_ref *refs,
                         size_t n, int64_t until_ms)
{
    extend_op e = { .base = { .run = extend_run },
                    .queue = queue,
                    .refs = refs,
                    .n = n,
                    .until_ms = until_ms };
    return herald__store_exec(s, &e.base);
}

static int prune_history_run(herald_store *s, herald__op *op)
{
    (void)op;
    int64_t n = 0;
    return herald__store_sweep(s, &n);
}

typedef struct expire_op {
    herald__op base;
    const int64_t *seqs;
    size_t n;
    int64_t n_deleted;
} expire_op;

static int expire_run(herald_store *s, herald__op *op)
{
    expire_op *x = (expire_op *)op;
    return herald__store_expire(s, x->seqs, x->n, &x->n_deleted);
}

/* Retention: the expired rows are found on the reader (a resumable scan in seq order, which
 * does not hold up the writer) and deleted on the writer in pages, each re-checked there. */
int herald__queue_sweep(herald_store *s, int64_t *n_expired)
{
    int64_t total = 0, after = 0;
    int64_t seqs[1000];
    int rc = 0;
    for (;;) {
        size_t n = 0;
        if ((rc = herald__store_expired_scan(s, after, seqs, 1000, &n)) < 0 || n == 0)
            break;
        expire_op x = { .base = { .run = expire_run }, .seqs = seqs, .n = n };
        if ((rc = herald__store_exec(s, &x.base)) < 0)
            break;
        total += x.n_deleted;
        after = seqs[n - 1];
        if (n < 1000)
            break;
    }
    if (rc == 0) { /* attempt history and traces past their retention */
        herald__op prune = { .run = prune_history_run };
        rc = herald__store_exec(s, &prune);
    }
    if (rc == 0 && n_expired)
        *n_expired = total;
    return rc;
}

const char *herald_version(void)
{
    return HERALD_VERSION;
}

/* ---- events ---- */

int herald_event_encode(herald_store *s, const herald_event *e, char event_id_out[HERALD_ID_SIZE],
                        char **json_out, size_t *len_out)
{
    herald__err_clear();
    if (!json_out)
        return herald__err(HERALD_EINVAL, "herald_event_encode: json_out is NULL");
    int64_t now = s ? herald__store_now(s) : herald__wall_ms();
    return herald__event_encode_at(e, now, event_id_out, json_out, len_out);
}

int herald__queue_encode_event(herald_store *s, const herald_event *e, char id[HERALD_ID_SIZE],
                               char **body, size_t *len)
{
    int rc = herald__event_encode_at(e, herald__store_now(s), id, body, len);
    if (rc == 0 && (rc = herald__store_check_event(s, e)) < 0) {
        herald__free(*body);
        *body = NULL;
    }
    return rc;
}

int herald_send_event(herald_store *s, const char *queue, const herald_event *e, int64_t delay_s,
                      char event_id_out[HERALD_ID_SIZE])
{
    herald__err_clear();
    if (!s)
        return herald__err(HERALD_EINVAL, "store is NULL");
    char *body = NULL;
    size_t len = 0;
    char id[HERALD_ID_SIZE];
    int rc = herald__queue_encode_event(s, e, id, &body, &len);
    if (rc < 0)
        return rc;
    herald_msg m = { .body = body, .body_len = len, .content_type = HERALD_CONTENT_JSON,
                     .delay_s = delay_s };
    rc = herald_send(s, queue, &m, NULL);
    herald__free(body);
    if (rc == 0 && event_id_out)
        memcpy(event_id_out, id, HERALD_ID_SIZE);
    return rc;
}

int herald_trace(herald_store *s, const char *correlation_id, herald_trace_entry **out,
                 size_t *n_out)
{
    herald__err_clear();
    if (!s || !correlation_id || !out || !n_out)
        return herald__err(HERALD_EINVAL, "herald_trace: NULL argument");
    return herald__store_trace(s, correlation_id, out, n_out);
}
