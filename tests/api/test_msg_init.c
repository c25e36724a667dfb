// SPDX-License-Identifier: MIT
/*
 * test_msg_init.c - HERALD_MSG_INIT and herald_msg_init() mean "delay unset": a message made
 * with either takes the queue's delivery_delay (and the batch delay), while an explicit
 * delay_s = 0 still overrides both. This is the footgun of issue 7: a zero-initialised
 * herald_msg has delay_s = 0 and silently skips the queue's delay.
 * Each test owns a temp dir and a store on a fake clock; the delay is observed through
 * herald_peek's visible_at_ms and the stats' delayed/visible counts, never by sleeping.
 */
#include <criterion/criterion.h>

#include <string.h>

#include "herald.h"
#include "support.h"

static hx_env env;

/* Queue "slow" delays every message by 60 s unless the message says otherwise. */
static void setup(void)
{
    hx_env_setup(&env, 0);
    herald_queue_settings st;
    herald_queue_settings_init(&st);
    st.delivery_delay_s = 60;
    hx_create_queue(env.store, "slow", &st);
}

static void teardown(void)
{
    hx_env_teardown(&env);
}

TestSuite(msg_init, .init = setup, .fini = teardown, .timeout = 30);

/* The delay the store gave the only message in "slow": visible_at - sent, in ms. */
static int64_t delay_of_only_message(void)
{
    herald_batch b;
    cr_assert_eq(herald_peek(env.store, "slow", 10, &b), 0, "%s", herald_last_error());
    cr_assert_eq(b.n, 1);
    int64_t d = b.msgs[0].visible_at_ms - b.msgs[0].timestamp_ms;
    herald_batch_deinit(&b);
    return d;
}

Test(msg_init, the_initializer_means_json_with_the_delay_unset)
{
    herald_msg m = HERALD_MSG_INIT;
    cr_assert_null(m.body);
    cr_assert_eq(m.body_len, 0);
    cr_assert_eq(m.content_type, HERALD_CONTENT_JSON);
    cr_assert_eq(m.delay_s, HERALD_UNSET);
    herald_msg f;
    memset(&f, 0x5a, sizeof f);
    herald_msg_init(&f);
    cr_assert_null(f.body, "herald_msg_init must equal HERALD_MSG_INIT");
    cr_assert_eq(f.body_len, 0);
    cr_assert_eq(f.content_type, HERALD_CONTENT_JSON);
    cr_assert_eq(f.delay_s, HERALD_UNSET);
}

Test(msg_init, a_message_from_HERALD_MSG_INIT_honours_the_queues_delivery_delay)
{
    herald_msg m = HERALD_MSG_INIT;
    m.body = "{\"order\":1}";
    m.body_len = strlen(m.body);
    cr_assert_eq(herald_send(env.store, "slow", &m, NULL), 0, "%s", herald_last_error());
    cr_assert_eq(delay_of_only_message(), 60000);
    herald_queue_stats st;
    cr_assert_eq(herald_queue_stats_get(env.store, "slow", &st), 0);
    cr_assert_eq(st.delayed_count, 1);
    cr_assert_eq(st.visible_count, 0);
}

Test(msg_init, a_message_from_herald_msg_init_honours_the_queues_delivery_delay_in_a_batch)
{
    herald_msg msgs[3];
    for (int i = 0; i < 3; i++) {
        herald_msg_init(&msgs[i]);
        msgs[i].body = "{}";
        msgs[i].body_len = 2;
    }
    cr_assert_eq(herald_send_batch(env.store, "slow", msgs, 3, HERALD_UNSET, NULL), 0, "%s",
                 herald_last_error());
    herald_queue_stats st;
    cr_assert_eq(herald_queue_stats_get(env.store, "slow", &st), 0);
    cr_assert_eq(st.delayed_count, 3);
    hx_clock_advance(&env.clock, 60000);
    cr_assert_eq(herald_queue_stats_get(env.store, "slow", &st), 0);
    cr_assert_eq(st.visible_count, 3, "the queue's 60 s delay has passed");
}

Test(msg_init, the_batch_delay_applies_to_HERALD_MSG_INIT_messages)
{
    herald_msg m = HERALD_MSG_INIT;
    m.body = "{}";
    m.body_len = 2;
    cr_assert_eq(herald_send_batch(env.store, "slow", &m, 1, 5, NULL), 0, "%s",
                 herald_last_error());
    cr_assert_eq(delay_of_only_message(), 5000);
}

Test(msg_init, an_explicit_zero_delay_still_overrides_the_queues_delivery_delay)
{
    herald_msg m = HERALD_MSG_INIT;
    m.body = "{}";
    m.body_len = 2;
    m.delay_s = 0;
    cr_assert_eq(herald_send(env.store, "slow", &m, NULL), 0, "%s", herald_last_error());
    cr_assert_eq(delay_of_only_message(), 0);
    herald_queue_stats st;
    cr_assert_eq(herald_queue_stats_get(env.store, "slow", &st), 0);
    cr_assert_eq(st.visible_count, 1);
}

Test(msg_init, a_zero_initialised_message_is_the_explicit_zero_the_header_warns_about)
{
    herald_msg m = { 0 };
    m.body = "{}";
    m.body_len = 2;
    cr_assert_eq(herald_send(env.store, "slow", &m, NULL), 0, "%s", herald_last_error());
    cr_assert_eq(delay_of_only_message(), 0, "delay_s = 0 overrides the queue's 60 s");
}

Test(msg_init, the_compound_literal_form_works_for_assignment)
{
    herald_msg m;
    m = (herald_msg)HERALD_MSG_INIT;
    m.body = "\"x\"";
    m.body_len = 3;
    cr_assert_eq(herald_msg_validate(&m), 0, "%s", herald_last_error());
    cr_assert_eq(herald_send(env.store, "slow", &m, NULL), 0, "%s", herald_last_error());
    cr_assert_eq(delay_of_only_message(), 60000);
}
