// SPDX-License-Identifier: MIT
/*
 * test_retention.c - the retention sweep: a running consumer deletes messages past their
 * queue's message_retention_period in every queue of the store (not only its own), counts them
 * as expired per queue, in pages (more than one page here), and leaves the rest alone.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "support.h"

static hx_env g_env;
#define S (g_env.store)

static void setup(void)
{
    hx_env_setup(&g_env, 0);
}

static void teardown(void)
{
    hx_env_teardown(&g_env);
}

TestSuite(retention, .init = setup, .fini = teardown, .timeout = 60);

static void fill(const char *q, int n)
{
    for (int i = 0; i < n; i += 100) {
        herald_msg m[100];
        for (int k = 0; k < 100; k++)
            m[k] = (herald_msg){ .body = "{}", .body_len = 2, .delay_s = HERALD_UNSET };
        cr_assert_eq(herald_send_batch(S, q, m, 100, HERALD_UNSET, NULL), 0);
    }
}

static int never_called(herald_delivery *d, void *ud)
{
    (void)d;
    (void)ud;
    return 0;
}

Test(retention, the_sweep_deletes_expired_messages_of_every_queue_and_counts_them)
{
    herald_queue_settings st;
    herald_queue_settings_init(&st);
    st.message_retention_period_s = 60;
    hx_create_queue(S, "short-a", &st);
    hx_create_queue(S, "short-b", &st);
    hx_create_queue(S, "long", NULL); /* 4 days */
    hx_create_queue(S, "other", NULL);
    fill("short-a", 1500); /* more than one page of the sweep */
    fill("short-b", 200);
    fill("long", 300);
    hx_clock_advance(&g_env.clock, 61 * 1000);
    fill("short-a", 100); /* sent now: not expired */
    /* A consumer on an unrelated queue: its sweep covers the whole store. */
    herald_consumer_cfg cfg;
    herald_consumer_cfg_init(&cfg);
    const char *qs[] = { "other" };
    cfg.queues = qs;
    cfg.n_queues = 1;
    cfg.handler = never_called;
    herald_consumer *c = NULL;
    cr_assert_eq(herald_consumer_start(S, &cfg, &c), 0);
    HX_AWAIT(hx_stats(S, "short-a").expired_total == 1500 &&
             hx_stats(S, "short-b").expired_total == 200);
    herald_consumer_stop(c);
    herald_queue_stats a = hx_stats(S, "short-a"), b = hx_stats(S, "short-b"),
                       l = hx_stats(S, "long");
    cr_assert_eq(a.backlog_count, 100, "the fresh messages stay");
    cr_assert_eq(b.backlog_count, 0);
    cr_assert_eq(l.backlog_count, 300, "a longer retention is respected");
    cr_assert_eq(l.expired_total, 0);
    /* the rows are really gone, not only hidden: a second sweep finds nothing more */
    hx_clock_advance(&g_env.clock, 61 * 1000);
    cr_assert_eq(herald_consumer_start(S, &cfg, &c), 0);
    HX_AWAIT(hx_stats(S, "short-a").expired_total >= 1600);
    herald_consumer_stop(c);
    cr_assert_eq(hx_stats(S, "short-a").expired_total, 1600, "counted once each");
}
