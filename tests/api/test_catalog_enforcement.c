// SPDX-License-Identifier: MIT
/*
 * test_catalog_enforcement.c - a catalog set on a store (herald_store_set_catalog) checks every
 * event sent through it, not only herald_send_event: herald_publish_event (a topic: no
 * subscriber gets a refused event), herald_tx_send_event (inside an effectively-once handler:
 * the send fails with HERALD_ECATALOG and nothing is sent) and herald_outbox_add (strict: an
 * error and no outbox row; warn: stored). test_catalog.c covers herald_send_event.
 * The consumer runs on the real clock; outcomes are awaited with bounded polling.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald.h"
#include "support.h"

static hx_env g_env;
#define S (g_env.store)
static herald_catalog *g_cat;
static herald_consumer *g_c;

static const char CATALOG[] =
    "{ \"events\": { \"order.placed\": { \"payload\": { \"order_id\": \"string\" } } } }";

#define GOOD_EVENT                                                                                \
    ((herald_event){ .type = "order.placed", .source = "shop",                                    \
                     .payload_json = "{\"order_id\":\"o-1\"}" })
/* refused by the catalog: order_id must be a string */
#define BAD_EVENT                                                                                 \
    ((herald_event){ .type = "order.placed", .source = "shop", .payload_json = "{\"order_id\":7}" })

static void setup(void)
{
    hx_env_setup(&g_env, HX_ENV_REAL_CLOCK);
    g_c = NULL;
    cr_assert_eq(herald_catalog_parse(CATALOG, strlen(CATALOG), "cat.jsonc", &g_cat), 0, "%s",
                 herald_last_error());
    hx_create_queue(S, "a", NULL);
    hx_create_queue(S, "b", NULL);
}

static void teardown(void)
{
    herald_consumer_stop(g_c);
    g_c = NULL;
    herald_store_set_catalog(S, NULL, HERALD_CATALOG_STRICT);
    herald_catalog_free(g_cat);
    g_cat = NULL;
    hx_env_teardown(&g_env);
}

TestSuite(catalog_enforced, .init = setup, .fini = teardown, .timeout = 60);

/* ---- herald_publish_event ---- */

static int64_t published_total(const char *topic)
{
    herald_topic_info *t = NULL;
    size_t n = 0;
    cr_assert_eq(herald_topic_list(S, &t, &n), 0, "%s", herald_last_error());
    int64_t v = -1;
    for (size_t i = 0; i < n; i++)
        if (strcmp(t[i].name, topic) == 0)
            v = t[i].published_total;
    herald_topic_list_free(t, n);
    return v;
}

Test(catalog_enforced, publish_event_in_strict_mode_refuses_a_bad_event_for_every_subscriber)
{
    cr_assert_eq(herald_topic_subscribe(S, "orders", "a"), 0, "%s", herald_last_error());
    cr_assert_eq(herald_topic_subscribe(S, "orders", "b"), 0, "%s", herald_last_error());
    herald_store_set_catalog(S, g_cat, HERALD_CATALOG_STRICT);
    herald_event bad = BAD_EVENT;
    int rc = herald_publish_event(S, "orders", &bad, HERALD_UNSET, NULL);
    cr_assert_eq(rc, HERALD_ECATALOG, "got %s", herald_err_name(rc));
    cr_assert(hx_mentions(herald_last_error(), "order_id"), "%s", herald_last_error());
    cr_assert_eq(hx_stats(S, "a").sent_total, 0, "a got the refused event");
    cr_assert_eq(hx_stats(S, "b").sent_total, 0, "b got the refused event");
    herald_event unknown = { .type = "order.unknown", .source = "shop", .payload_json = "{}" };
    cr_assert_eq(herald_publish_event(S, "orders", &unknown, HERALD_UNSET, NULL),
                 HERALD_ECATALOG);
    cr_assert_eq(hx_stats(S, "a").sent_total, 0);
    cr_assert(published_total("orders") <= 0, "refused publishes were counted");

    herald_event good = GOOD_EVENT;
    cr_assert_eq(herald_publish_event(S, "orders", &good, HERALD_UNSET, NULL), 0, "%s",
                 herald_last_error());
    cr_assert_eq(hx_stats(S, "a").sent_total, 1);
    cr_assert_eq(hx_stats(S, "b").sent_total, 1);
}

Test(catalog_enforced, publish_event_in_warn_mode_publishes_a_bad_event)
{
    cr_assert_eq(herald_topic_subscribe(S, "orders", "a"), 0, "%s", herald_last_error());
    herald_store_set_catalog(S, g_cat, HERALD_CATALOG_WARN);
    herald_event bad = BAD_EVENT;
    cr_assert_eq(herald_publish_event(S, "orders", &bad, HERALD_UNSET, NULL), 0, "%s",
                 herald_last_error());
    cr_assert_eq(hx_stats(S, "a").sent_total, 1);
}

/* ---- herald_tx_send_event ---- */

static struct {
    pthread_mutex_t mu;
    int calls;
    int bad_rc, good_rc;
} T = { PTHREAD_MUTEX_INITIALIZER, 0, 1, 1 };

/* Sends a bad then a good event to "b"; records both rcs; succeeds. */
static int h_sends(herald_tx *tx, const herald_message *m, const herald_envelope *env, void *ud)
{
    (void)m;
    (void)env;
    (void)ud;
    herald_event bad = BAD_EVENT, good = GOOD_EVENT;
    int rb = herald_tx_send_event(tx, "b", &bad, NULL);
    int rg = herald_tx_send_event(tx, "b", &good, NULL);
    pthread_mutex_lock(&T.mu);
    T.calls++;
    T.bad_rc = rb;
    T.good_rc = rg;
    pthread_mutex_unlock(&T.mu);
    return 0;
}

Test(catalog_enforced, tx_send_event_of_a_bad_event_fails_with_ecatalog_and_sends_nothing)
{
    herald_store_set_catalog(S, g_cat, HERALD_CATALOG_STRICT);
    hx_send_json(S, "a", "{\"go\":1}", HERALD_UNSET, NULL);
    static const char *const qs[] = { "a" };
    herald_consumer_cfg c;
    herald_consumer_cfg_init(&c);
    c.queues = qs;
    c.n_queues = 1;
    c.tx_handler = h_sends;
    c.max_batch_timeout_ms = 0;
    c.retry_delay_s = 0;
    g_c = hx_consumer_start(S, &c);
    HX_WAIT_UNTIL(hx_stats(S, "a").acked_total == 1, 10000);
    herald_consumer_stop(g_c);
    g_c = NULL;
    pthread_mutex_lock(&T.mu);
    int calls = T.calls, bad_rc = T.bad_rc, good_rc = T.good_rc;
    pthread_mutex_unlock(&T.mu);
    cr_assert_eq(calls, 1, "handler calls %d", calls);
    cr_assert_eq(bad_rc, HERALD_ECATALOG, "tx_send_event of a bad event: %s",
                 herald_err_name(bad_rc));
    cr_assert_eq(good_rc, 0, "tx_send_event of a good event: %s", herald_err_name(good_rc));
    herald_batch b = { 0 };
    cr_assert_eq(hx_peek(S, "b", &b), 1, "only the good event is sent");
    herald_envelope en;
    cr_assert_eq(herald_envelope_parse(b.msgs[0].body, b.msgs[0].body_len, &en), 0);
    cr_assert_str_eq(en.payload_json, "{\"order_id\":\"o-1\"}");
    herald_envelope_deinit(&en);
    herald_batch_deinit(&b);
}

/* ---- herald_outbox_add ---- */

typedef struct add_run {
    herald_event e;
    int add_rc;
} add_run;

static int fn_add(herald_tx *tx, void *ud)
{
    add_run *r = ud;
    r->add_rc = herald_outbox_add(tx, "a", false, &r->e, NULL);
    return r->add_rc;
}

Test(catalog_enforced, outbox_add_follows_the_catalog_mode_of_the_service_store)
{
    struct {
        herald_catalog_mode mode;
        herald_event e;
        int want;
        int64_t pending_after;
    } cases[] = {
        { HERALD_CATALOG_STRICT, BAD_EVENT, HERALD_ECATALOG, 0 },
        { HERALD_CATALOG_STRICT,
          { .type = "order.unknown", .source = "shop", .payload_json = "{}" },
          HERALD_ECATALOG, 0 },
        { HERALD_CATALOG_STRICT, GOOD_EVENT, 0, 1 },
        { HERALD_CATALOG_WARN, BAD_EVENT, 0, 2 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        herald_store_set_catalog(S, g_cat, cases[i].mode);
        add_run r = { .e = cases[i].e, .add_rc = 1 };
        int rc = herald_outbox_run(S, fn_add, &r);
        cr_assert_eq(r.add_rc, cases[i].want, "case %zu: outbox_add: got %s, want %s (%s)", i,
                     herald_err_name(r.add_rc), herald_err_name(cases[i].want),
                     herald_last_error());
        cr_assert_eq(rc, cases[i].want, "case %zu: outbox_run: %s", i, herald_err_name(rc));
        int64_t pending = -1;
        cr_assert_eq(herald_outbox_pending(S, &pending), 0, "%s", herald_last_error());
        cr_assert_eq(pending, cases[i].pending_after, "case %zu: %lld pending, want %lld", i,
                     (long long)pending, (long long)cases[i].pending_after);
    }
}

/* ---- replacing the catalog while events are sent ---- */

static atomic_int g_sending;

static void *send_loop(void *arg)
{
    (void)arg;
    int failures = 0;
    while (atomic_load(&g_sending)) {
        herald_event e = BAD_EVENT;
        if (herald_send_event(S, "a", &e, HERALD_UNSET, NULL) != HERALD_ECATALOG)
            failures++;
    }
    return (void *)(intptr_t)failures;
}

/* herald.h: the store keeps a catalog until the next herald_store_set_catalog call, so the
 * caller may free the old one as soon as that call returns - even while another thread is in
 * the middle of checking an event against it (under ASan, a use after free otherwise). Every
 * bad event is refused by whichever catalog is set. */
Test(catalog_enforced, the_old_catalog_may_be_freed_once_a_new_one_is_set)
{
    herald_store_set_catalog(S, g_cat, HERALD_CATALOG_STRICT);
    atomic_store(&g_sending, 1);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, send_loop, NULL), 0);
    for (int i = 0; i < 300; i++) {
        herald_catalog *next = NULL;
        cr_assert_eq(herald_catalog_parse(CATALOG, strlen(CATALOG), "cat.jsonc", &next), 0);
        herald_store_set_catalog(S, next, HERALD_CATALOG_STRICT);
        herald_catalog_free(g_cat);
        g_cat = next;
    }
    atomic_store(&g_sending, 0);
    void *failures = NULL;
    pthread_join(t, &failures);
    cr_assert_eq((intptr_t)failures, 0, "%ld bad events were not refused",
                 (long)(intptr_t)failures);
    cr_assert_eq(hx_stats(S, "a").backlog_count, 0);
}
