// SPDX-License-Identifier: MIT
/*
 * test_error_text.c - error texts that would have made dead letters vanish from the tools
 * (issue 7 §4): each way an error text enters the store - herald_retry, a batch handler's
 * herald_delivery_set_error, a chain's herald_msg_ctx_set_error, an effectively-once handler's
 * herald_tx_set_error - given invalid UTF-8 or a text whose cut at HERALD_ERROR_TEXT_MAX bytes
 * falls inside a character, keeps valid UTF-8 of at most HERALD_ERROR_TEXT_MAX bytes: as the
 * dead letter's last_error, in its attempt history and in its trace. The consumers run on the
 * real clock; outcomes are awaited (HX_AWAIT), never slept for.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

static hx_env g_env;
#define S (g_env.store)

static void setup(void)
{
    hx_env_setup(&g_env, HX_ENV_REAL_CLOCK);
    herald_queue_settings st;
    herald_queue_settings_init(&st);
    st.dead_letter_queue = "jobs-dlq";
    st.max_retries = 0; /* the first failure dead-letters */
    hx_create_queue(S, "jobs", &st);
    hx_create_queue(S, "jobs-dlq", NULL);
}

static void teardown(void)
{
    hx_env_teardown(&g_env);
}

TestSuite(error_text, .init = setup, .fini = teardown, .timeout = 60);

/* A 300-byte text: 254 'e', then U+00E9 (2 bytes) across the 255-byte cut, then ASCII. */
static const char *long_text(void)
{
    static char t[301];
    memset(t, 'e', 254);
    memcpy(t + 254, "\xc3\xa9", 2);
    memset(t + 256, 'z', 44);
    t[300] = 0;
    return t;
}

static bool utf8_ok(const char *s)
{
    /* the tools print error texts as JSON strings: jansson refuses what is not UTF-8 */
    json_t *j = json_string(s);
    json_decref(j);
    return j != NULL;
}

static void send_traced(void)
{
    herald_event e = { .type = "job.run", .source = "t", .correlation_id = "c-1",
                       .payload_json = "{}" };
    cr_assert_eq(herald_send_event(S, "jobs", &e, HERALD_UNSET, NULL), 0, "%s",
                 herald_last_error());
}

static int64_t dead_count(void)
{
    return hx_stats(S, "jobs-dlq").backlog_count;
}

/* The dead letter's last_error, its attempt and its dead_lettered trace step all hold valid
 * UTF-8 starting with `want`, at most HERALD_ERROR_TEXT_MAX bytes. */
static void assert_dead_letter_error(const char *want)
{
    herald_batch b;
    cr_assert_eq(herald_peek(S, "jobs-dlq", 10, &b), 0);
    cr_assert_eq(b.n, 1);
    const char *le = b.msgs[0].last_error;
    cr_assert(utf8_ok(le), "last_error is not UTF-8");
    cr_assert_leq(strlen(le), HERALD_ERROR_TEXT_MAX);
    cr_assert_eq(strncmp(le, want, strlen(want)), 0, "last_error '%s'", le);
    herald_attempt *at = NULL;
    size_t n = 0;
    cr_assert_eq(herald_message_attempts(S, b.msgs[0].id, &at, &n), 0);
    cr_assert_geq(n, 1);
    cr_assert(utf8_ok(at[n - 1].error), "the attempt's error is not UTF-8");
    cr_assert_str_eq(at[n - 1].error, le);
    herald_free(at);
    herald_batch_deinit(&b);
    herald_trace_entry *t = NULL;
    cr_assert_eq(herald_trace(S, "c-1", &t, &n), 0);
    bool dead = false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(t[i].what, "dead_lettered") == 0) {
            dead = true;
            cr_assert(utf8_ok(t[i].detail), "the trace detail is not UTF-8");
            cr_assert_eq(strncmp(t[i].detail, want, strlen(want)), 0, "%s", t[i].detail);
        }
    cr_assert(dead);
    herald_free(t);
}

Test(error_text, herald_retry_replaces_invalid_utf8)
{
    send_traced();
    herald_batch b = { 0 };
    cr_assert_eq(hx_pull(S, "jobs", 1, 60000, &b), 1);
    const char *lease = b.msgs[0].lease_id;
    cr_assert_eq(herald_retry(S, "jobs", &lease, 1, 0, "bad \xff", NULL), 0);
    herald_batch_deinit(&b);
    assert_dead_letter_error("bad \xef\xbf\xbd");
}

Test(error_text, herald_retry_cuts_a_long_text_between_characters)
{
    send_traced();
    herald_batch b = { 0 };
    cr_assert_eq(hx_pull(S, "jobs", 1, 60000, &b), 1);
    const char *lease = b.msgs[0].lease_id;
    cr_assert_eq(herald_retry(S, "jobs", &lease, 1, 0, long_text(), NULL), 0);
    herald_batch_deinit(&b);
    assert_dead_letter_error("eeeeeeeeee");
    herald_batch p;
    cr_assert_eq(herald_peek(S, "jobs-dlq", 1, &p), 0);
    cr_assert_eq(strlen(p.msgs[0].last_error), 254);
    herald_batch_deinit(&p);
}

static herald_consumer *start(herald_consumer_cfg *cfg)
{
    static const char *const qs[] = { "jobs" };
    cfg->queues = qs;
    cfg->n_queues = 1;
    cfg->max_batch_timeout_ms = 0;
    herald_consumer *c = NULL;
    cr_assert_eq(herald_consumer_start(S, cfg, &c), 0, "%s", herald_last_error());
    return c;
}

static int batch_fails(herald_delivery *d, void *ud)
{
    herald_delivery_set_error(d, ud);
    return -1;
}

Test(error_text, a_batch_handlers_error_is_cut_between_characters)
{
    send_traced();
    herald_consumer_cfg cfg;
    herald_consumer_cfg_init(&cfg);
    cfg.handler = batch_fails;
    cfg.ud = (void *)long_text();
    herald_consumer *c = start(&cfg);
    HX_AWAIT(dead_count() == 1);
    herald_consumer_stop(c);
    assert_dead_letter_error("eeeeeeeeee");
}

static int chain_fails(herald_msg_ctx *c, const herald_message *m, const herald_envelope *env,
                       void *ud)
{
    (void)m;
    (void)env;
    herald_msg_ctx_set_error(c, ud);
    return HERALD_FAIL_PERMANENT;
}

Test(error_text, a_chain_handlers_invalid_utf8_is_replaced)
{
    send_traced();
    herald_chain *ch = NULL;
    cr_assert_eq(herald_chain_new(chain_fails, "chain \xc3 \xff\xfe", &ch), 0);
    herald_consumer_cfg cfg;
    herald_consumer_cfg_init(&cfg);
    cfg.chain = ch;
    herald_consumer *c = start(&cfg);
    HX_AWAIT(dead_count() == 1);
    herald_consumer_stop(c);
    herald_chain_free(ch);
    assert_dead_letter_error("chain \xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd");
}

static int tx_fails(herald_tx *tx, const herald_message *m, const herald_envelope *env, void *ud)
{
    (void)m;
    (void)env;
    herald_tx_set_error(tx, ud);
    return HERALD_FAIL_PERMANENT;
}

Test(error_text, an_effectively_once_handlers_error_is_cut_between_characters)
{
    send_traced();
    herald_consumer_cfg cfg;
    herald_consumer_cfg_init(&cfg);
    cfg.tx_handler = tx_fails;
    cfg.ud = (void *)long_text();
    herald_consumer *c = start(&cfg);
    HX_AWAIT(dead_count() == 1);
    herald_consumer_stop(c);
    assert_dead_letter_error("eeeeeeeeee");
}
