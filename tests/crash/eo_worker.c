// SPDX-License-Identifier: MIT
/*
 * eo_worker.c - the child program of test_eo_crash.c (not a Criterion test): runs an
 * effectively-once consumer on queue "in" of the store at argv[1] until "in" is empty.
 *
 * Its handler inserts the event's event_id and attempt into the user table effects (no
 * unique constraint: a second effect would show as a second row) and sends one event to queue
 * "out" in the same transaction. The test exec's it with HERALD_FAULT=<point> in its
 * environment, so the library SIGKILLs it at that point, then once more without.
 * The parent creates the table and both queues beforehand, so herald_consumer_start has nothing
 * to create.
 *
 * With a second argument N, the handler of the event whose payload is {"n":N} kills the process
 * (a poison message), and the consumer has max_retries 2 and dead-letter queue "in-dlq".
 *
 * Exit codes: 0 "in" is empty; 2 usage; 3 "in" not empty after 20 s; 10 open failed;
 * 11 consumer start failed; 12 stats failed.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "herald.h"
#include "worker.h"

static char poison[32]; /* the payload that kills the process, "" for none */

static int handler(herald_tx *tx, const herald_message *m, const herald_envelope *env, void *ud)
{
    (void)ud;
    if (!env) {
        herald_tx_set_error(tx, "eo_worker: not an envelope");
        return -1;
    }
    if (poison[0] && strcmp(env->payload_json, poison) == 0)
        raise(SIGKILL);
    herald_arg a[2] = { HERALD_ARG_S(env->event_id), HERALD_ARG_I(m->attempts) };
    int rc = herald_tx_exec(tx, "INSERT INTO effects(event_id, attempts) VALUES (?, ?)", a, 2,
                            NULL);
    if (rc < 0)
        return rc;
    char payload[96];
    snprintf(payload, sizeof payload, "{\"from\":\"%s\"}", env->event_id);
    herald_event e = { .type = "effect.done", .source = "eo-worker", .payload_json = payload };
    return herald_tx_send_event(tx, "out", &e, NULL);
}

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: eo_worker STORE_URL [POISON_N]\n");
        return 2;
    }
    if (argc == 3)
        snprintf(poison, sizeof poison, "{\"n\":%d}", atoi(argv[2]));
    herald_store *s = NULL;
    int rc = herald_store_open(argv[1], NULL, &s);
    if (rc < 0) {
        fprintf(stderr, "eo_worker: open: %s\n", herald_last_error());
        return 10;
    }
    static const char *const queues[] = { "in" };
    herald_consumer_cfg c;
    herald_consumer_cfg_init(&c);
    c.queues = queues;
    c.n_queues = 1;
    c.tx_handler = handler;
    c.visibility_timeout_ms = 1000;
    c.max_batch_size = 10;
    c.max_batch_timeout_ms = 0;
    c.retry_delay_s = 0;
    if (poison[0]) {
        c.max_retries = 2;
        c.dead_letter_queue = "in-dlq";
    }
    herald_consumer *cons = NULL;
    rc = herald_consumer_start(s, &c, &cons);
    if (rc < 0) {
        fprintf(stderr, "eo_worker: consumer start: %s\n", herald_last_error());
        herald_store_close(s);
        return 11;
    }
    int code = 3;
    int64_t end = mono_ms() + 20000;
    while (mono_ms() < end) {
        herald_queue_stats st;
        rc = herald_queue_stats_get(s, "in", &st);
        if (rc < 0) {
            fprintf(stderr, "eo_worker: stats: %s\n", herald_last_error());
            code = 12;
            break;
        }
        if (st.backlog_count == 0) {
            code = 0;
            break;
        }
        sleep_ms(10);
    }
    herald_consumer_stop(cons);
    herald_store_close(s);
    if (code == 3)
        fprintf(stderr, "eo_worker: \"in\" not empty after 20 s\n");
    return code;
}
