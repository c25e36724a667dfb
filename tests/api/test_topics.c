// SPDX-License-Identifier: MIT
/*
 * test_topics.c - topics through herald.h: a publish is copied into every subscribed queue in
 * one transaction; subscribe/unsubscribe/list; unrouted publishes are counted; bad input changes
 * nothing; and a kill -9 in the middle of publishing never leaves subscribers disagreeing.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support.h"

static hx_env g_env;
#define S (g_env.store)

static void setup(void)
{
    hx_env_setup(&g_env, 0);
    hx_create_queue(S, "sm-commands", NULL);
    hx_create_queue(S, "analytics", NULL);
    hx_create_queue(S, "other", NULL);
}

static void teardown(void)
{
    hx_env_teardown(&g_env);
}

TestSuite(topics, .init = setup, .fini = teardown, .timeout = 60);

static herald_msg json_msg(const char *body)
{
    return (herald_msg){ .body = body, .body_len = strlen(body),
                         .content_type = HERALD_CONTENT_JSON, .delay_s = HERALD_UNSET };
}

static void subscribe_both(void)
{
    cr_assert_eq(herald_topic_subscribe(S, "brand-events", "sm-commands"), 0, "%s",
                 herald_last_error());
    cr_assert_eq(herald_topic_subscribe(S, "brand-events", "analytics"), 0, "%s",
                 herald_last_error());
}

Test(topics, publish_copies_every_message_into_every_subscribed_queue)
{
    subscribe_both();
    herald_msg m[2] = { json_msg("{\"n\":1}"), json_msg("{\"n\":2}") };
    size_t nq = 0;
    cr_assert_eq(herald_publish(S, "brand-events", m, 2, HERALD_UNSET, &nq), 0, "%s",
                 herald_last_error());
    cr_assert_eq(nq, 2);
    const char *qs[] = { "sm-commands", "analytics" };
    char first_ids[2][HERALD_ID_SIZE];
    for (int k = 0; k < 2; k++) {
        herald_batch b = { 0 };
        cr_assert_eq(hx_peek(S, qs[k], &b), 2);
        cr_assert(hx_body_is(&b.msgs[0], "{\"n\":1}") || hx_body_is(&b.msgs[1], "{\"n\":1}"));
        cr_assert(hx_body_is(&b.msgs[0], "{\"n\":2}") || hx_body_is(&b.msgs[1], "{\"n\":2}"));
        memcpy(first_ids[k], b.msgs[0].id, HERALD_ID_SIZE);
        herald_batch_deinit(&b);
    }
    cr_assert_str_neq(first_ids[0], first_ids[1], "each copy is its own message");
    cr_assert_eq(hx_stats(S, "other").backlog_count, 0, "a queue not subscribed gets nothing");
}

Test(topics, an_event_keeps_its_event_id_in_every_copy)
{
    subscribe_both();
    herald_event e = { .type = "research.completed", .source = "gatherfeed",
                       .payload_json = "{\"brand_slug\":\"niche-fi\"}" };
    char event_id[HERALD_ID_SIZE];
    cr_assert_eq(herald_publish_event(S, "brand-events", &e, HERALD_UNSET, event_id), 0, "%s",
                 herald_last_error());
    const char *qs[] = { "sm-commands", "analytics" };
    for (int k = 0; k < 2; k++) {
        herald_batch b = { 0 };
        cr_assert_eq(hx_peek(S, qs[k], &b), 1);
        herald_envelope env;
        cr_assert_eq(herald_envelope_parse(b.msgs[0].body, b.msgs[0].body_len, &env), 0);
        cr_assert_str_eq(env.event_id, event_id);
        cr_assert_str_eq(env.type, "research.completed");
        herald_envelope_deinit(&env);
        herald_batch_deinit(&b);
    }
}

Test(topics, subscribing_twice_is_a_no_op_and_list_shows_queues_and_counters)
{
    subscribe_both();
    cr_assert_eq(herald_topic_subscribe(S, "brand-events", "analytics"), 0);
    herald_msg m = json_msg("{}");
    cr_assert_eq(herald_publish(S, "brand-events", &m, 1, HERALD_UNSET, NULL), 0);
    cr_assert_eq(hx_stats(S, "analytics").backlog_count, 1, "subscribed once, one copy");
    herald_topic_info *t = NULL;
    size_t n = 0;
    cr_assert_eq(herald_topic_list(S, &t, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(t[0].name, "brand-events");
    cr_assert_eq(t[0].n_queues, 2);
    cr_assert_str_eq(t[0].queues[0], "analytics"); /* sorted */
    cr_assert_str_eq(t[0].queues[1], "sm-commands");
    cr_assert_eq(t[0].published_total, 1);
    cr_assert_eq(t[0].unrouted_total, 0);
    herald_topic_list_free(t, n);
}

Test(topics, unsubscribe_stops_the_copies_and_a_topic_without_subscribers_counts_unrouted)
{
    subscribe_both();
    cr_assert_eq(herald_topic_unsubscribe(S, "brand-events", "analytics"), 0);
    cr_assert_eq(herald_topic_unsubscribe(S, "brand-events", "sm-commands"), 0);
    herald_msg m = json_msg("{}");
    size_t nq = 99;
    cr_assert_eq(herald_publish(S, "brand-events", &m, 1, HERALD_UNSET, &nq), 0);
    cr_assert_eq(nq, 0);
    herald_topic_info *t = NULL;
    size_t n = 0;
    cr_assert_eq(herald_topic_list(S, &t, &n), 0);
    cr_assert_eq(t[0].unrouted_total, 1, "counted, not silently dropped");
    herald_topic_list_free(t, n);
    cr_assert_eq(hx_stats(S, "analytics").backlog_count, 0);
}

Test(topics, deleting_a_queue_removes_its_subscriptions)
{
    subscribe_both();
    cr_assert_eq(herald_queue_delete(S, "analytics"), 0);
    herald_msg m = json_msg("{}");
    size_t nq = 0;
    cr_assert_eq(herald_publish(S, "brand-events", &m, 1, HERALD_UNSET, &nq), 0, "%s",
                 herald_last_error());
    cr_assert_eq(nq, 1);
}

Test(topics, bad_input_is_refused_and_changes_nothing)
{
    subscribe_both();
    herald_msg m = json_msg("{}");
    cr_assert_eq(herald_publish(S, "no-such-topic", &m, 1, HERALD_UNSET, NULL), HERALD_ENOTOPIC);
    cr_assert(hx_mentions(herald_last_error(), "no-such-topic"), "%s", herald_last_error());
    cr_assert_eq(herald_topic_subscribe(S, "bad topic", "analytics"), HERALD_EINVAL);
    cr_assert(hx_mentions(herald_last_error(), "topic"), "%s", herald_last_error());
    cr_assert_eq(herald_topic_subscribe(S, "brand-events", "missing-queue"), HERALD_ENOQUEUE);
    cr_assert(hx_mentions(herald_last_error(), "missing-queue"), "%s", herald_last_error());
    cr_assert_eq(herald_topic_unsubscribe(S, "brand-events", "other"), HERALD_ENOTOPIC);
    cr_assert_eq(herald_topic_unsubscribe(S, "nope", "other"), HERALD_ENOTOPIC);
    herald_msg bad = json_msg("{not json");
    cr_assert_eq(herald_publish(S, "brand-events", &bad, 1, HERALD_UNSET, NULL), HERALD_EBADJSON);
    cr_assert_eq(herald_publish(S, "brand-events", &m, 0, HERALD_UNSET, NULL), HERALD_EBATCH);
    herald_event e = { .type = "Bad", .source = "s", .payload_json = "{}" };
    cr_assert_eq(herald_publish_event(S, "brand-events", &e, HERALD_UNSET, NULL),
                 HERALD_EENVELOPE);
    cr_assert_eq(hx_stats(S, "analytics").backlog_count, 0);
    cr_assert_eq(hx_stats(S, "sm-commands").backlog_count, 0);
    herald_topic_info *t = NULL;
    size_t n = 0;
    cr_assert_eq(herald_topic_list(S, &t, &n), 0);
    cr_assert_eq(n, 1, "no topic was created by a failed call");
    cr_assert_eq(t[0].published_total, 0);
    herald_topic_list_free(t, n);
}

Test(topics, a_copy_too_big_for_one_subscriber_fails_the_whole_publish)
{
    herald_queue_settings st;
    herald_queue_settings_init(&st);
    st.max_message_bytes = 10;
    hx_create_queue(S, "tiny", &st);
    subscribe_both();
    cr_assert_eq(herald_topic_subscribe(S, "brand-events", "tiny"), 0);
    herald_msg m = json_msg("{\"long\":\"0123456789\"}");
    cr_assert_eq(herald_publish(S, "brand-events", &m, 1, HERALD_UNSET, NULL), HERALD_ETOOBIG);
    cr_assert(hx_mentions(herald_last_error(), "tiny"), "%s", herald_last_error());
    cr_assert_eq(hx_stats(S, "analytics").backlog_count, 0, "all or none");
    cr_assert_eq(hx_stats(S, "sm-commands").backlog_count, 0, "all or none");
}

/* A child publishes in a loop; the parent kills it at a random moment. Afterwards every
 * subscriber holds exactly the same set of bodies: a publish is all or nothing. */
Test(topics, kill_9_while_publishing_never_leaves_subscribers_disagreeing, .timeout = 120)
{
    subscribe_both();
    char *url = hx_url(g_env.dir, "herald.db");
    hx_env_close(&g_env);
    for (int round = 0; round < 4; round++) {
        int rfd = -1, wfd = -1;
        pid_t pid = hx_fork_child(&rfd, &wfd);
        if (pid == 0) {
            herald_store *s = NULL;
            if (herald_store_open(url, NULL, &s) < 0)
                _exit(3);
            for (int i = 0; i < 100000; i++) {
                char body[64];
                snprintf(body, sizeof body, "{\"round\":%d,\"i\":%d}", round, i);
                herald_msg m[3] = { json_msg(body), json_msg(body), json_msg(body) };
                if (herald_publish(s, "brand-events", m, 3, HERALD_UNSET, NULL) < 0)
                    _exit(4);
                if (i == 0)
                    hx_write_all(wfd, "p", 1); /* one publish is durable */
            }
            _exit(0);
        }
        char c = 0;
        cr_assert_eq(read(rfd, &c, 1), 1, "the child published nothing");
        close(rfd);
        /* not a synchronisation: only where in its publishing loop the kill lands */
        hx_sleep_us(rand() % (20000 + round * 40000));
        kill(pid, SIGKILL);
        int st = 0;
        waitpid(pid, &st, 0);
        cr_assert(WIFSIGNALED(st), "child exited early with %d", WEXITSTATUS(st));
    }
    herald_store *s = NULL;
    cr_assert_eq(herald_store_open(url, NULL, &s), 0, "%s", herald_last_error());
    herald_queue_stats a = hx_stats(s, "analytics"), b = hx_stats(s, "sm-commands");
    cr_assert_gt(a.backlog_count, 0, "the children published something");
    cr_assert_eq(a.backlog_count, b.backlog_count);
    cr_assert_eq(a.backlog_count % 3, 0, "batches of 3 are never split");
    cr_assert_eq(a.backlog_bytes, b.backlog_bytes);
    herald_topic_info *t = NULL;
    size_t n = 0;
    cr_assert_eq(herald_topic_list(s, &t, &n), 0);
    cr_assert_eq(t[0].published_total, a.backlog_count, "the counter commits with the copies");
    herald_topic_list_free(t, n);
    herald_store_close(s);
    free(url);
}
