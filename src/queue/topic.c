// SPDX-License-Identifier: MIT
/*
 * topic.c - the public topic API: subscribe, unsubscribe, list, publish. A publish is one op of
 * the group-commit writer that inserts every message into every subscribed queue (the store
 * does it in the op's transaction), so subscribers never disagree about what was published.
 * Validation happens here, on the caller's thread, before any side effect.
 */
#include "queue/queue.h"

#include <string.h>

typedef struct topic_op {
    herald__op base;
    int kind; /* 0 subscribe, 1 unsubscribe, 2 publish */
    const char *topic, *queue;
    const herald__msg_in *msgs;
    size_t n;
    int64_t batch_delay_s;
    size_t n_queues;
} topic_op;

static int topic_run(herald_store *s, herald__op *op)
{
    topic_op *t = (topic_op *)op;
    switch (t->kind) {
    case 0:
        return herald__store_topic_subscribe(s, t->topic, t->queue);
    case 1:
        return herald__store_topic_unsubscribe(s, t->topic, t->queue);
    default:
        return herald__store_topic_publish(s, t->topic, t->msgs, t->n, t->batch_delay_s,
                                           &t->n_queues);
    }
}

static int check_topic(herald_store *s, const char *topic)
{
    if (!s)
        return herald__err(HERALD_EINVAL, "store is NULL");
    if (!topic || !herald__name_valid(topic))
        return herald__err(HERALD_EINVAL,
                           "topic name '%.80s' is invalid: use 1-%d characters of A-Z a-z 0-9 _ "
                           "-, starting with a letter or digit",
                           topic ? topic : "(null)", HERALD_QUEUE_NAME_MAX);
    return 0;
}

static int sub_or_unsub(herald_store *s, int kind, const char *topic, const char *queue)
{
    herald__err_clear();
    int rc = check_topic(s, topic);
    if (rc < 0)
        return rc;
    if (!queue || !herald__name_valid(queue))
        return herald__err(kind == 0 ? HERALD_ENOQUEUE : HERALD_ENOTOPIC,
                           "queue '%.80s' does not exist (invalid name)", queue ? queue : "(null)");
    topic_op t = { .base = { .run = topic_run }, .kind = kind, .topic = topic, .queue = queue };
    return herald__store_exec(s, &t.base);
}

int herald_topic_subscribe(herald_store *s, const char *topic, const char *queue)
{
    return sub_or_unsub(s, 0, topic, queue);
}

int herald_topic_unsubscribe(herald_store *s, const char *topic, const char *queue)
{
    return sub_or_unsub(s, 1, topic, queue);
}

int herald_topic_list(herald_store *s, herald_topic_info **out, size_t *n_out)
{
    herald__err_clear();
    if (!s || !out || !n_out)
        return herald__err(HERALD_EINVAL, "herald_topic_list: NULL argument");
    return herald__store_topic_list(s, out, n_out);
}

void herald_topic_list_free(herald_topic_info *list, size_t n)
{
    if (!list)
        return;
    for (size_t i = 0; i < n; i++)
        herald__free(list[i].queues);
    herald__free(list);
}

int herald_publish(herald_store *s, const char *topic, const herald_msg *msgs, size_t n,
                   int64_t batch_delay_s, size_t *n_queues_out)
{
    herald__err_clear();
    int rc = check_topic(s, topic);
    if (rc < 0)
        return rc;
    herald__msg_in in[HERALD_MAX_BATCH_MESSAGES];
    if ((rc = herald__queue_prepare_batch(s, msgs, n, batch_delay_s, in)) < 0)
        return rc;
    topic_op t = { .base = { .run = topic_run, .wakes = true },
                   .kind = 2,
                   .topic = topic,
                   .msgs = in,
                   .n = n,
                   .batch_delay_s = batch_delay_s };
    rc = herald__store_exec(s, &t.base);
    if (rc == 0 && n_queues_out)
        *n_queues_out = t.n_queues;
    return rc;
}

int herald_publish_event(herald_store *s, const char *topic, const herald_event *e,
                         int64_t delay_s, char event_id_out[HERALD_ID_SIZE])
{
    herald__err_clear();
    int rc = check_topic(s, topic);
    if (rc < 0)
        return rc;
    char *body = NULL;
    size_t len = 0;
    char id[HERALD_ID_SIZE];
    if ((rc = herald__queue_encode_event(s, e, id, &body, &len)) < 0)
        return rc;
    herald_msg m = { .body = body, .body_len = len, .content_type = HERALD_CONTENT_JSON,
                     .delay_s = delay_s };
    rc = herald_publish(s, topic, &m, 1, HERALD_UNSET, NULL);
    herald__free(body);
    if (rc == 0 && event_id_out)
        memcpy(event_id_out, id, HERALD_ID_SIZE);
    return rc;
}
