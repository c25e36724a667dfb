// SPDX-License-Identifier: MIT
/*
 * test_catalog_store.c - the catalog belongs to the store (issue 7 §1), through herald.h: once a
 * configuration is applied (herald_config_apply here, or `herald config apply` from another
 * process), every library producer is checked against the catalog in force - herald_send_event,
 * herald_publish_event, herald_tx_send_event in an effectively-once handler, herald_outbox_add
 * and the outbox flusher's publishes - including a handle that was opened, and had sent, before
 * the apply. Also: an explicit herald_store_set_catalog adds to the stored one and never lifts
 * it; set_catalog's errors; herald_store_catalog_get / herald_catalog_history; a refused apply
 * changes nothing (one transaction); a failed herald_runtime_start on a bad route condition
 * frees everything it parsed (the ASan build's leak check fails the test otherwise).
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

static hx_env g_env;

static void setup(void)
{
    hx_env_setup(&g_env, 0);
}

static void teardown(void)
{
    hx_env_teardown(&g_env);
}

TestSuite(catalog_store, .init = setup, .fini = teardown, .timeout = 120);

/* ---- helpers -------------------------------------------------------------------------------- */

static char *path_in(const char *name)
{
    size_t n = strlen(g_env.dir) + strlen(name) + 2;
    char *p = malloc(n);
    cr_assert_not_null(p);
    snprintf(p, n, "%s/%s", g_env.dir, name);
    return p;
}

static void write_in(const char *name, const char *text)
{
    char *p = path_in(name);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f, "cannot write %s", p);
    fputs(text, f);
    fclose(f);
    free(p);
}

/* events.jsonc with content.ready {content_id: string, words: integer}, and a herald.jsonc
 * with queues `events`, `out` and a topic `t` over `events`, in mode `mode`. */
static char *write_config(const char *mode)
{
    write_in("events.jsonc", "{ \"events\": { \"content.ready\": { \"payload\": {\n"
                             "  \"content_id\": \"string\", \"words\": \"integer\" } } } }\n");
    char text[600];
    snprintf(text, sizeof text,
             "{ \"catalog\": { \"file\": \"events.jsonc\", \"mode\": \"%s\" },\n"
             "  \"queues\": [ { \"name\": \"events\" }, { \"name\": \"out\" } ],\n"
             "  \"topics\": { \"t\": [\"events\"] } }\n",
             mode);
    write_in("herald.jsonc", text);
    return path_in("herald.jsonc");
}

static void apply(herald_store *s, const char *mode)
{
    char *cfg = write_config(mode);
    cr_assert_eq(herald_config_apply(s, cfg, 0, NULL), 0, "%s", herald_last_error());
    free(cfg);
}

static const herald_event good = { .type = "content.ready", .source = "sm",
                                   .payload_json = "{\"content_id\":\"c1\",\"words\":3}" };
static const herald_event bad = { .type = "content.ready", .source = "sm",
                                  .payload_json = "{\"content_id\":\"c1\"}" };

/* `herald --store URL config apply FILE [extra]` in a process of its own; asserts exit 0. */
static void cli_apply(const char *file, const char *extra)
{
    char *url = hx_url(g_env.dir, "herald.db");
    const char *argv[] = { "--store", url, "config", "apply", file, extra, NULL };
    char *out = NULL, *err = NULL;
    int rc = hx_cli(argv, NULL, &out, &err);
    cr_assert_eq(rc, 0, "herald config apply: %s", err);
    free(out);
    free(err);
    free(url);
}

/* ---- every library producer is bound ------------------------------------------------------- */

Test(catalog_store, a_handle_opened_before_another_process_applies_is_refused_after_it)
{
    hx_create_queue(g_env.store, "events", NULL);
    /* this handle has sent events before any catalog existed */
    cr_assert_eq(herald_send_event(g_env.store, "events", &bad, HERALD_UNSET, NULL), 0);
    char *cfg = write_config("strict");
    cli_apply(cfg, NULL); /* another process */
    int rc = herald_send_event(g_env.store, "events", &bad, HERALD_UNSET, NULL);
    cr_assert_eq(rc, HERALD_ECATALOG, "got %s: %s", herald_err_name(rc), herald_last_error());
    cr_assert(hx_mentions(herald_last_error(), "words"), "%s", herald_last_error());
    cr_assert_eq(herald_send_event(g_env.store, "events", &good, HERALD_UNSET, NULL), 0);
    /* a newer version from the other process binds this handle at its next event */
    write_in("events.jsonc", "{ \"events\": { \"content.ready\": { \"payload\": {\n"
                             "  \"content_id\": \"integer\", \"words\": \"integer\" } } } }\n");
    cli_apply(cfg, "--force");
    rc = herald_send_event(g_env.store, "events", &good, HERALD_UNSET, NULL);
    cr_assert_eq(rc, HERALD_ECATALOG, "version 2 must bind: %s", herald_last_error());
    cr_assert(hx_mentions(herald_last_error(), "content_id"), "%s", herald_last_error());
    free(cfg);
}

Test(catalog_store, publish_event_is_checked)
{
    apply(g_env.store, "strict");
    int rc = herald_publish_event(g_env.store, "t", &bad, HERALD_UNSET, NULL);
    cr_assert_eq(rc, HERALD_ECATALOG, "%s", herald_last_error());
    cr_assert_eq(hx_stats(g_env.store, "events").backlog_count, 0);
    cr_assert_eq(herald_publish_event(g_env.store, "t", &good, HERALD_UNSET, NULL), 0);
}

static atomic_int g_tx_rc = 1;

static int send_bad_in_tx(herald_tx *tx, const herald_message *m, const herald_envelope *env,
                          void *ud)
{
    (void)m;
    (void)env;
    (void)ud;
    atomic_store(&g_tx_rc, herald_tx_send_event(tx, "out", &bad, NULL));
    return 0;
}

Test(catalog_store, tx_send_event_in_an_effectively_once_handler_is_checked)
{
    apply(g_env.store, "strict");
    cr_assert_eq(herald_send_event(g_env.store, "events", &good, HERALD_UNSET, NULL), 0);
    const char *qs[] = { "events" };
    herald_consumer_cfg c;
    herald_consumer_cfg_init(&c);
    c.queues = qs;
    c.n_queues = 1;
    c.tx_handler = send_bad_in_tx;
    c.max_batch_timeout_ms = 0;
    herald_consumer *cons = hx_consumer_start(g_env.store, &c);
    HX_AWAIT(atomic_load(&g_tx_rc) != 1);
    herald_consumer_stop(cons);
    cr_assert_eq(atomic_load(&g_tx_rc), HERALD_ECATALOG, "tx send got %s",
                 herald_err_name(atomic_load(&g_tx_rc)));
    cr_assert_eq(hx_stats(g_env.store, "out").backlog_count, 0);
}

static int add_bad(herald_tx *tx, void *ud)
{
    (void)ud;
    return herald_outbox_add(tx, "events", false, &bad, NULL);
}

Test(catalog_store, outbox_add_is_checked_against_the_service_database_catalog)
{
    apply(g_env.store, "strict"); /* the service database is this store here */
    int rc = herald_outbox_run(g_env.store, add_bad, NULL);
    cr_assert_eq(rc, HERALD_ECATALOG, "%s", herald_last_error());
    int64_t pending = -1;
    cr_assert_eq(herald_outbox_pending(g_env.store, &pending), 0);
    cr_assert_eq(pending, 0);
}

Test(catalog_store, the_flusher_is_held_to_the_bus_catalog)
{
    herald_store *svc = hx_open_file(g_env.dir, "service.db", &g_env.clock);
    apply(g_env.store, "strict"); /* g_env.store is the bus */
    cr_assert_eq(herald_outbox_run(svc, add_bad, NULL), 0, "the service has no catalog");
    int64_t n = -1;
    int rc = herald_outbox_flush(svc, g_env.store, &n);
    cr_assert_eq(rc, HERALD_ECATALOG, "got %s: %s", herald_err_name(rc), herald_last_error());
    cr_assert_eq(n, 0);
    int64_t pending = -1;
    cr_assert_eq(herald_outbox_pending(svc, &pending), 0);
    cr_assert_eq(pending, 1, "the refused row stays pending");
    cr_assert_eq(hx_stats(g_env.store, "events").backlog_count, 0);
    herald_store_close(svc);
}

Test(catalog_store, warn_mode_sends_and_plain_messages_are_never_checked)
{
    apply(g_env.store, "warn");
    cr_assert_eq(herald_send_event(g_env.store, "events", &bad, HERALD_UNSET, NULL), 0);
    hx_send_json(g_env.store, "events", "{\"type\":\"content.ready\"}", HERALD_UNSET, NULL);
    cr_assert_eq(hx_stats(g_env.store, "events").backlog_count, 2);
}

/* ---- the explicit catalog adds, never lifts ------------------------------------------------ */

Test(catalog_store, set_catalog_adds_to_the_stored_one_and_never_lifts_it)
{
    apply(g_env.store, "strict");
    herald_catalog *strict_words = NULL;
    const char *text = "{\"events\":{\"content.ready\":{\"payload\":{\"content_id\":\"string\","
                       "\"words\":\"integer\",\"lang\":\"string\"}}}}";
    cr_assert_eq(herald_catalog_parse(text, strlen(text), "mine", &strict_words), 0);
    cr_assert_eq(herald_store_set_catalog(g_env.store, strict_words, HERALD_CATALOG_STRICT), 0);
    int rc = herald_send_event(g_env.store, "events", &good, HERALD_UNSET, NULL);
    cr_assert_eq(rc, HERALD_ECATALOG, "the handle's own catalog must apply too");
    cr_assert(hx_mentions(herald_last_error(), "lang"), "%s", herald_last_error());
    cr_assert_eq(herald_store_set_catalog(g_env.store, NULL, HERALD_CATALOG_STRICT), 0);
    herald_catalog_free(strict_words);
    cr_assert_eq(herald_send_event(g_env.store, "events", &good, HERALD_UNSET, NULL), 0);
    rc = herald_send_event(g_env.store, "events", &bad, HERALD_UNSET, NULL);
    cr_assert_eq(rc, HERALD_ECATALOG, "removing the handle's catalog must not lift the store's");
}

Test(catalog_store, set_catalog_reports_bad_arguments)
{
    cr_assert_eq(herald_store_set_catalog(NULL, NULL, HERALD_CATALOG_STRICT), HERALD_EINVAL);
    cr_assert_eq(herald_store_set_catalog(g_env.store, NULL, (herald_catalog_mode)7),
                 HERALD_EINVAL);
    cr_assert(hx_mentions(herald_last_error(), "mode"), "%s", herald_last_error());
}

/* ---- reading the stored catalog; atomicity -------------------------------------------------- */

Test(catalog_store, the_stored_catalog_and_its_history_can_be_read)
{
    int64_t v = -1;
    cr_assert_eq(herald_store_catalog_get(g_env.store, &v, NULL, NULL), 0);
    cr_assert_eq(v, 0, "no catalog applied yet");
    apply(g_env.store, "warn");
    herald_catalog *c = NULL;
    herald_catalog_mode mode = HERALD_CATALOG_STRICT;
    cr_assert_eq(herald_store_catalog_get(g_env.store, &v, &mode, &c), 0);
    cr_assert_eq(v, 1);
    cr_assert_eq(mode, HERALD_CATALOG_WARN);
    cr_assert_eq(herald_catalog_count(c), 1);
    herald_catalog_free(c);
    apply(g_env.store, "strict"); /* a mode change is a version too */
    char *json = NULL;
    cr_assert_eq(herald_catalog_history(g_env.store, &json), 0);
    json_t *h = json_loads(json, 0, NULL);
    herald_free(json);
    cr_assert_eq(json_array_size(h), 2);
    json_t *changes = json_object_get(json_array_get(h, 1), "changes");
    cr_assert_eq(json_array_size(changes), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(changes, 0), "change")),
                     "mode_changed");
    json_decref(h);
}

Test(catalog_store, a_refused_apply_changes_nothing)
{
    apply(g_env.store, "strict");
    write_in("events.jsonc", "{ \"events\": { \"content.ready\": { \"payload\": {\n"
                             "  \"content_id\": \"string\" } } } }\n");
    write_in("herald.jsonc", "{ \"catalog\": { \"file\": \"events.jsonc\" },\n"
                             "  \"queues\": [ { \"name\": \"events\", \"max_retries\": 9 },\n"
                             "                { \"name\": \"brand-new\" } ],\n"
                             "  \"topics\": { \"t2\": [\"events\"] } }\n");
    char *cfg = path_in("herald.jsonc");
    char *report = NULL;
    int rc = herald_config_apply(g_env.store, cfg, 0, &report);
    cr_assert_eq(rc, HERALD_ECATALOG);
    cr_assert_null(report);
    cr_assert(hx_mentions(herald_last_error(), "words"), "%s", herald_last_error());
    herald_queue_info qi;
    cr_assert_eq(herald_queue_get(g_env.store, "brand-new", &qi), HERALD_ENOQUEUE);
    cr_assert_eq(herald_queue_get(g_env.store, "events", &qi), 0);
    cr_assert_neq(qi.max_retries, 9, "a refused apply updated a queue");
    herald_topic_info *topics = NULL;
    size_t n = 0;
    cr_assert_eq(herald_topic_list(g_env.store, &topics, &n), 0);
    cr_assert_eq(n, 1, "a refused apply subscribed a topic");
    herald_topic_list_free(topics, n);
    int64_t v = 0;
    cr_assert_eq(herald_store_catalog_get(g_env.store, &v, NULL, NULL), 0);
    cr_assert_eq(v, 1);
    /* forced: all of it */
    cr_assert_eq(herald_config_apply(g_env.store, cfg, HERALD_CONFIG_FORCE, &report), 0);
    cr_assert_not_null(report);
    herald_free(report);
    cr_assert_eq(herald_queue_get(g_env.store, "brand-new", &qi), 0);
    free(cfg);
}

Test(catalog_store, a_failed_runtime_start_on_a_bad_condition_path_frees_what_it_parsed)
{
    write_in("bad.jsonc", "{ \"queues\": [ { \"name\": \"a\" }, { \"name\": \"b\" } ],\n"
                          "  \"routes\": [ { \"from\": \"a\", \"type\": \"x.*\", \"to\": [\"b\"],\n"
                          "    \"when\": { \"payload.k\": { \"eq\": 1 },\n"
                          "                \"nowhere\": { \"eq\": \"v\" } } } ] }\n");
    char *cfg = path_in("bad.jsonc");
    for (int i = 0; i < 3; i++) {
        herald_runtime *rt = NULL;
        int rc = herald_runtime_start(g_env.store, cfg, &rt);
        cr_assert_eq(rc, HERALD_ECONFIG);
        cr_assert_null(rt);
        cr_assert(hx_mentions(herald_last_error(), "nowhere"), "%s", herald_last_error());
    }
    free(cfg);
#if defined(__SANITIZE_ADDRESS__)
    /* The ASan build: a leak at exit does not fail a Criterion test, so ask LeakSanitizer now
     * (it finds the condition value each failed start used to leak). */
    cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "memory leaked (see the report above)");
#endif
}
