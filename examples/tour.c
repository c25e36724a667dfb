// SPDX-License-Identifier: MIT
/*
 * tour.c - `make run`: a short walk through Herald's queue core with the public API.
 *   1. opens (creates) a store and a queue whose dead-letter queue is "orders-dlq"
 *   2. sends one message and a batch, one of them delayed
 *   3. starts a push consumer: it acks good orders, retries a flaky one that then succeeds,
 *      and keeps failing a poison message until it lands in the dead-letter queue
 *   4. prints the stats of both queues and the dead letter with its history
 * Usage: herald_tour [STORE_URL]   (default: a fresh store in a temp directory under $TMPDIR or
 * /tmp, removed at exit, failures included)
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* mkdtemp, dirent: with a plain -std=c11 too */
#endif
#include <dirent.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "herald.h"

static atomic_int flaky_seen;
static atomic_int handled;

static int on_batch(herald_delivery *d, void *ud)
{
    (void)ud;
    for (size_t i = 0; i < herald_delivery_count(d); i++) {
        const herald_message *m = herald_delivery_msg(d, i);
        const char *body = (const char *)m->body;
        if (strstr(body, "\"poison\"")) {
            printf("  consumer: %s attempt %d -> failing (poison)\n", body, m->attempts);
            herald_delivery_set_error(d, "cannot parse order: poison pill");
            herald_delivery_retry(d, i, 0);
        } else if (strstr(body, "\"flaky\"") && atomic_fetch_add(&flaky_seen, 1) == 0) {
            printf("  consumer: %s attempt %d -> retry in 1 s (downstream busy)\n", body,
                   m->attempts);
            herald_delivery_retry(d, i, 1);
        } else {
            printf("  consumer: %s attempt %d -> ack\n", body, m->attempts);
            herald_delivery_ack(d, i);
            atomic_fetch_add(&handled, 1);
        }
    }
    fflush(stdout);
    return 0;
}

static void print_stats(herald_store *s, const char *q)
{
    herald_queue_stats st;
    if (herald_queue_stats_get(s, q, &st) < 0) {
        printf("  %s: %s\n", q, herald_last_error());
        return;
    }
    printf("  %-11s backlog %lld (%lld B)  delayed %lld  leased %lld | sent %lld  acked %lld  "
           "retried %lld  dead-lettered %lld\n",
           q, (long long)st.backlog_count, (long long)st.backlog_bytes,
           (long long)st.delayed_count, (long long)st.leased_count, (long long)st.sent_total,
           (long long)st.acked_total, (long long)st.retried_total,
           (long long)st.dead_lettered_total);
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "tour: %s: %s (%s)\n", what, herald_last_error(), herald_err_name(rc));
    return 1;
}

/* Removes the temp dir and the store files in it (the database, its WAL and journals). */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        for (struct dirent *e; (e = readdir(d)) != NULL;) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char path[512];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    if (rmdir(dir) != 0)
        perror("tour: cannot remove its temp dir");
}

static int tour(const char *url, bool is_temp);

int main(int argc, char **argv)
{
    char dir[256], url[300];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/herald-tour-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (argc > 1) {
        snprintf(url, sizeof url, "%s", argv[1]);
    } else {
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            return 1;
        }
        snprintf(url, sizeof url, "sqlite:%s/tour.db", dir);
    }
    int rc = tour(url, argc <= 1);
    if (argc <= 1)
        remove_dir(dir); /* the store is closed by now, whatever happened */
    return rc;
}

/* The walk itself; returns the exit code (0: everything happened as shown). */
static int tour(const char *url, bool is_temp)
{
    printf("Herald %s - queue tour on %s (durability full)\n\n", herald_version(), url);
    herald_store *s = NULL;
    int rc = herald_store_open(url, NULL, &s);
    if (rc < 0)
        return fail("open store", rc);
    int out = 1;

    herald_queue_settings qs;
    herald_queue_settings_init(&qs);
    qs.max_retries = 2; /* 3 deliveries, then the dead-letter queue */
    qs.dead_letter_queue = "orders-dlq";
    rc = herald_queue_create(s, "orders", &qs);
    if (rc < 0 && rc != HERALD_EEXIST) {
        fail("create queue", rc);
        goto done;
    }
    printf("1. queue 'orders': max_retries 2, dead_letter_queue 'orders-dlq'\n");

    char id[HERALD_ID_SIZE];
    const char *one = "{\"order\":1,\"kind\":\"book\"}";
    herald_msg m = HERALD_MSG_INIT; /* json, delay unset: the queue's delivery_delay applies */
    m.body = one;
    m.body_len = strlen(one);
    if ((rc = herald_send(s, "orders", &m, id)) < 0) {
        fail("send", rc);
        goto done;
    }
    printf("2. sent %s (durable before send returned)\n", id);
    const char *bodies[] = { "{\"order\":2,\"kind\":\"flaky\"}", "{\"order\":3,\"kind\":\"poison\"}",
                             "{\"order\":4,\"kind\":\"lamp\"}" };
    herald_msg batch[3];
    for (int i = 0; i < 3; i++) {
        herald_msg_init(&batch[i]);
        batch[i].body = bodies[i];
        batch[i].body_len = strlen(bodies[i]);
    }
    batch[2].delay_s = 2; /* order 4 becomes visible in 2 s */
    char ids[3][HERALD_ID_SIZE];
    if ((rc = herald_send_batch(s, "orders", batch, 3, HERALD_UNSET, ids)) < 0) {
        fail("send batch", rc);
        goto done;
    }
    printf("   sent a batch of 3 atomically; order 4 is delayed by 2 s\n");
    const char *bad = "{not json";
    herald_msg badm = HERALD_MSG_INIT;
    badm.body = bad;
    badm.body_len = strlen(bad);
    rc = herald_send(s, "orders", &badm, NULL);
    printf("   a malformed body is refused: %s\n", herald_last_error());
    print_stats(s, "orders");

    printf("\n3. consumer (batches of up to 10, 200 ms batch timeout)\n");
    herald_consumer_cfg cc;
    herald_consumer_cfg_init(&cc);
    const char *queues[] = { "orders" };
    cc.queues = queues;
    cc.n_queues = 1;
    cc.handler = on_batch;
    cc.max_batch_timeout_ms = 200;
    herald_consumer *c = NULL;
    if ((rc = herald_consumer_start(s, &cc, &c)) < 0) {
        fail("start consumer", rc);
        goto done;
    }
    /* every order acked or dead-lettered: wait (no polling loop) up to 10 s */
    if ((rc = herald_queue_wait_empty(s, "orders", 10000)) < 0)
        fail("wait for the consumer", rc);
    herald_consumer_stop(c);

    printf("\n4. stats\n");
    print_stats(s, "orders");
    print_stats(s, "orders-dlq");
    herald_batch dl;
    if (herald_peek(s, "orders-dlq", 10, &dl) == 0) {
        for (size_t i = 0; i < dl.n; i++)
            printf("  dead letter %s %s: from '%s' after %d attempts, last error \"%s\"\n",
                   dl.msgs[i].id, (const char *)dl.msgs[i].body, dl.msgs[i].dead_from_queue,
                   dl.msgs[i].dead_attempts, dl.msgs[i].last_error);
        herald_batch_deinit(&dl);
    }
    herald_queue_stats final_orders, final_dlq;
    int ok = herald_queue_stats_get(s, "orders", &final_orders) == 0 &&
             herald_queue_stats_get(s, "orders-dlq", &final_dlq) == 0 &&
             final_orders.backlog_count == 0 && final_dlq.backlog_count == 1 &&
             atomic_load(&handled) == 3;
    printf("\nDone: %d orders handled.", atomic_load(&handled));
    if (is_temp)
        printf(" The store was a temp file and is removed; keep one with\n"
               "  build/herald_tour sqlite:tour.db && build/herald --store sqlite:tour.db "
               "queues stats orders\n");
    else
        printf(" Try the CLI: build/herald --store %s queues stats orders\n", url);
    out = ok ? 0 : 1; /* make test runs the tour too */
done:
    herald_store_close(s);
    return out;
}
