// SPDX-License-Identifier: MIT
/*
 * test_routes.c - fan-out routing and herald.jsonc through herald.h: type and glob matching,
 * conditions, programmable routes, unrouted counting, the envelope kept intact, duplicates
 * routed once, bad routes refused (unknown queues, self routes, cycles, bad conditions), and a
 * configuration that is checked whole before anything is applied.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

static hx_env g_env;
#define S (g_env.store)

static void setup(void)
{
    hx_env_setup(&g_env, HX_ENV_REAL_CLOCK);
    const char *qs[] = { "brand-events", "sm-commands", "analytics", "social-commands" };
    for (int i = 0; i < 4; i++)
        hx_create_queue(S, qs[i], NULL);
}

static void teardown(void)
{
    hx_env_teardown(&g_env);
}

TestSuite(routes, .init = setup, .fini = teardown, .timeout = 60);

static void send_ev(const char *q, const char *type, const char *payload, const char *event_id)
{
    herald_event e = { .event_id = event_id, .type = type, .source = "test",
                       .payload_json = payload };
    cr_assert_eq(herald_send_event(S, q, &e, HERALD_UNSET, NULL), 0, "%s", herald_last_error());
}

/* Waits until the source queue is drained by the router. */
static void wait_drained(const char *q)
{
    HX_AWAIT(hx_stats(S, q).backlog_count == 0);
}

static int64_t backlog(const char *q)
{
    return hx_stats(S, q).backlog_count;
}

static herald_router *standard_router(void)
{
    herald_router *r = NULL;
    cr_assert_eq(herald_router_new(S, &r), 0);
    const char *to1[] = { "sm-commands", "analytics" };
    herald_route r1 = { .from = "brand-events", .type = "research.completed", .to = to1,
                        .n_to = 2 };
    cr_assert_eq(herald_router_add(r, &r1), 0, "%s", herald_last_error());
    const char *to2[] = { "social-commands" };
    herald_route_cond c = { .path = "payload.brand_slug", .op = HERALD_COND_NE,
                            .value_json = "\"internal-tools\"" };
    herald_route r2 = { .from = "brand-events", .type = "content.*", .to = to2, .n_to = 1,
                        .when = &c, .n_when = 1 };
    cr_assert_eq(herald_router_add(r, &r2), 0, "%s", herald_last_error());
    return r;
}

Test(routes, routes_by_exact_type_glob_and_condition_and_counts_the_unrouted)
{
    herald_router *r = standard_router();
    cr_assert_eq(herald_router_start(r), 0, "%s", herald_last_error());
    send_ev("brand-events", "research.completed", "{\"brand_slug\":\"a\"}", NULL);
    send_ev("brand-events", "content.ready", "{\"brand_slug\":\"niche\"}", NULL);
    send_ev("brand-events", "content.ready", "{\"brand_slug\":\"internal-tools\"}", NULL);
    send_ev("brand-events", "performance.report", "{}", NULL);
    wait_drained("brand-events");
    int64_t routed = 0, unrouted = 0;
    HX_AWAIT((herald_router_counts(r, &routed, &unrouted), routed + unrouted >= 4));
    herald_router_free(r);
    cr_assert_eq(backlog("sm-commands"), 1);
    cr_assert_eq(backlog("analytics"), 1);
    cr_assert_eq(backlog("social-commands"), 1, "internal-tools is filtered by the condition");
    cr_assert_eq(routed, 2);
    cr_assert_eq(unrouted, 2, "a filtered and an unmatched event are counted, not lost silently");
}

Test(routes, a_routed_copy_keeps_the_whole_envelope)
{
    herald_router *r = standard_router();
    cr_assert_eq(herald_router_start(r), 0);
    const char *id = "01a21a8a-86ce-7049-952d-70f1da8c7c28";
    send_ev("brand-events", "research.completed", "{\"brand_slug\":\"a\",\"n\":[1,2]}", id);
    wait_drained("brand-events");
    herald_router_free(r);
    herald_batch b = { 0 };
    cr_assert_eq(hx_peek(S, "analytics", &b), 1);
    herald_envelope env;
    cr_assert_eq(herald_envelope_parse(b.msgs[0].body, b.msgs[0].body_len, &env), 0);
    cr_assert_str_eq(env.event_id, id);
    cr_assert_str_eq(env.type, "research.completed");
    cr_assert_str_eq(env.source, "test");
    cr_assert_str_eq(env.payload_json, "{\"brand_slug\":\"a\",\"n\":[1,2]}");
    herald_envelope_deinit(&env);
    herald_batch_deinit(&b);
}

Test(routes, a_duplicated_event_is_routed_once)
{
    herald_router *r = standard_router();
    cr_assert_eq(herald_router_start(r), 0);
    const char *id = "01a21a8a-86ce-7049-952d-70f1da8c7c28";
    send_ev("brand-events", "research.completed", "{\"brand_slug\":\"a\"}", id);
    send_ev("brand-events", "research.completed", "{\"brand_slug\":\"a\"}", id);
    wait_drained("brand-events");
    herald_router_free(r);
    cr_assert_eq(backlog("sm-commands"), 1);
    cr_assert_eq(backlog("analytics"), 1);
}

static int by_brand(const herald_message *m, const herald_envelope *env, const char **dests,
                    size_t cap, size_t *n, void *ud)
{
    (void)m;
    (void)cap;
    int *calls = ud;
    (*calls)++;
    *n = 0;
    if (env && strstr(env->payload_json, "\"vip\""))
        dests[(*n)++] = "sm-commands";
    dests[(*n)++] = "analytics";
    return 0;
}

Test(routes, a_programmable_route_chooses_destinations_per_message)
{
    herald_router *r = NULL;
    cr_assert_eq(herald_router_new(S, &r), 0);
    int calls = 0;
    cr_assert_eq(herald_router_add_fn(r, "brand-events", by_brand, &calls), 0);
    cr_assert_eq(herald_router_start(r), 0);
    send_ev("brand-events", "x.y", "{\"tier\":\"vip\"}", NULL);
    send_ev("brand-events", "x.y", "{\"tier\":\"basic\"}", NULL);
    wait_drained("brand-events");
    herald_router_free(r);
    cr_assert_eq(calls, 2);
    cr_assert_eq(backlog("sm-commands"), 1);
    cr_assert_eq(backlog("analytics"), 2);
}

Test(routes, bad_routes_are_refused_naming_the_problem)
{
    herald_router *r = NULL;
    cr_assert_eq(herald_router_new(S, &r), 0);
    const char *to_missing[] = { "nope" };
    herald_route a = { .from = "brand-events", .type = "a.b", .to = to_missing, .n_to = 1 };
    cr_assert_eq(herald_router_add(r, &a), HERALD_ENOQUEUE);
    cr_assert(hx_mentions(herald_last_error(), "nope"), "%s", herald_last_error());
    const char *to_self[] = { "brand-events" };
    herald_route b = { .from = "brand-events", .type = "a.b", .to = to_self, .n_to = 1 };
    cr_assert_eq(herald_router_add(r, &b), HERALD_EINVAL);
    cr_assert(hx_mentions(herald_last_error(), "cycle"), "%s", herald_last_error());
    const char *to_sm[] = { "sm-commands" }, *to_be[] = { "brand-events" };
    herald_route c1 = { .from = "brand-events", .type = "a.b", .to = to_sm, .n_to = 1 };
    cr_assert_eq(herald_router_add(r, &c1), 0);
    herald_route c2 = { .from = "sm-commands", .type = "a.*", .to = to_be, .n_to = 1 };
    cr_assert_eq(herald_router_add(r, &c2), HERALD_EINVAL, "sm -> brand -> sm is a cycle");
    cr_assert(hx_mentions(herald_last_error(), "cycle"), "%s", herald_last_error());
    herald_route d = { .from = "brand-events", .type = "Bad Type", .to = to_sm, .n_to = 1 };
    cr_assert_eq(herald_router_add(r, &d), HERALD_EINVAL);
    cr_assert(hx_mentions(herald_last_error(), "Bad Type"));
    herald_route_cond bad_path = { .path = "payloadx", .op = HERALD_COND_EXISTS };
    herald_route e = { .from = "brand-events", .type = "a.b", .to = to_sm, .n_to = 1,
                       .when = &bad_path, .n_when = 1 };
    cr_assert_eq(herald_router_add(r, &e), HERALD_EINVAL);
    cr_assert(hx_mentions(herald_last_error(), "payloadx"));
    herald_route_cond bad_val = { .path = "payload.x", .op = HERALD_COND_EQ,
                                  .value_json = "{not json" };
    herald_route f = { .from = "brand-events", .type = "a.b", .to = to_sm, .n_to = 1,
                       .when = &bad_val, .n_when = 1 };
    cr_assert_eq(herald_router_add(r, &f), HERALD_EINVAL);
    herald_route g = { .from = "brand-events", .type = "a.b", .to = NULL, .n_to = 0 };
    cr_assert_eq(herald_router_add(r, &g), HERALD_EINVAL);
    herald_router_free(r);
}

/* ---- configuration ---- */

static char *write_file(const char *name, const char *text)
{
    size_t n = strlen(g_env.dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", g_env.dir, name);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
    return p;
}

static const char *const good_config =
    "// the reference architecture's wiring\n"
    "{\n"
    "  \"catalog\": { \"file\": \"events.jsonc\", \"mode\": \"strict\" },\n"
    "  \"queues\": [ { \"name\": \"cfg-commands\", \"max_retries\": 5,\n"
    "                  \"dead_letter_queue\": \"cfg-commands-dlq\" },\n"
    "                { \"name\": \"cfg-events\" }, ],\n"
    "  \"topics\": { \"cfg-topic\": [\"cfg-commands\", \"analytics\"] },\n"
    "  \"routes\": [ { \"from\": \"cfg-events\", \"type\": \"a.*\", \"to\": [\"cfg-commands\"],\n"
    "                  \"when\": { \"payload.k\": { \"eq\": 1 } } } ]\n"
    "}\n";

static const char *const catalog_text =
    "{ \"events\": { \"a.b\": { \"payload\": { \"k\": \"integer\" } } } }";

Test(routes, a_configuration_creates_queues_topics_catalog_and_routes)
{
    free(write_file("events.jsonc", catalog_text));
    char *path = write_file("herald.jsonc", good_config);
    cr_assert_eq(herald_config_check(S, path), 0, "%s", herald_last_error());
    herald_runtime *rt = NULL;
    cr_assert_eq(herald_runtime_start(S, path, &rt), 0, "%s", herald_last_error());
    herald_queue_info qi;
    cr_assert_eq(herald_queue_get(S, "cfg-commands", &qi), 0);
    cr_assert_eq(qi.max_retries, 5);
    cr_assert_str_eq(qi.dead_letter_queue, "cfg-commands-dlq");
    herald_event bad = { .type = "a.b", .source = "t", .payload_json = "{\"k\":\"no\"}" };
    cr_assert_eq(herald_send_event(S, "cfg-events", &bad, HERALD_UNSET, NULL), HERALD_ECATALOG,
                 "the configured catalog is enforced");
    send_ev("cfg-events", "a.b", "{\"k\":1}", NULL);
    wait_drained("cfg-events");
    herald_msg m = { .body = "{}", .body_len = 2, .delay_s = HERALD_UNSET };
    size_t nq = 0;
    cr_assert_eq(herald_publish(S, "cfg-topic", &m, 1, HERALD_UNSET, &nq), 0);
    cr_assert_eq(nq, 2);
    herald_runtime_stop(rt);
    cr_assert_eq(backlog("cfg-commands"), 2, "one routed, one published");
    free(path);
}

static void config_fails(const char *text, const char *line, const char *what)
{
    free(write_file("events.jsonc", catalog_text));
    char *path = write_file("bad.jsonc", text);
    herald_queue_info *before = NULL;
    size_t n_before = 0;
    cr_assert_eq(herald_queue_list(S, &before, &n_before), 0);
    herald_runtime *rt = NULL;
    int rc = herald_runtime_start(S, path, &rt);
    cr_assert_eq(rc, HERALD_ECONFIG, "accepted:\n%s", text);
    cr_assert_null(rt);
    cr_assert(strstr(herald_last_error(), line), "'%s' lacks '%s'", herald_last_error(), line);
    cr_assert(hx_mentions(herald_last_error(), what), "'%s' lacks '%s'", herald_last_error(),
              what);
    herald_queue_info *after = NULL;
    size_t n_after = 0;
    cr_assert_eq(herald_queue_list(S, &after, &n_after), 0);
    cr_assert_eq(n_after, n_before, "a failed configuration created queues");
    herald_free(before);
    herald_free(after);
    cr_assert_eq(herald_config_check(S, path), HERALD_ECONFIG);
    free(path);
}

Test(routes, a_bad_configuration_changes_nothing_and_names_key_and_line)
{
    config_fails("{\n  \"queues\": [ { \"name\": \"q1\", \"max_retry\": 5 } ]\n}", "bad.jsonc:2:",
                 "max_retry");
    config_fails("{\n\n  \"routs\": []\n}", "bad.jsonc:3:", "routs");
    config_fails("{ \"queues\": [ { \"name\": \"q1\", \"max_retries\": \"5\" } ] }", "bad.jsonc:1:",
                 "max_retries");
    config_fails("{ \"queues\": [ { \"name\": \"q1\", \"max_retries\": 500 } ] }", "bad.jsonc:1:",
                 "max_retries");
    config_fails("{ \"queues\": [ { \"name\": \"q1\" } ],\n"
                 "  \"routes\": [ { \"from\": \"q1\", \"type\": \"a.b\", \"to\": [\"ghost\"] } ] }",
                 "bad.jsonc:2:", "ghost");
    config_fails("{ \"queues\": [ { \"name\": \"q1\" }, { \"name\": \"q2\" } ],\n"
                 "  \"routes\": [ { \"from\": \"q1\", \"type\": \"a.b\", \"to\": [\"q2\"] },\n"
                 "               { \"from\": \"q2\", \"type\": \"a.b\", \"to\": [\"q1\"] } ] }",
                 "bad.jsonc:", "cycle");
    config_fails("{ \"queues\": [ { \"name\": \"q1\" } ],\n \"topics\": { \"t\": [\"ghost\"] } }",
                 "bad.jsonc:2:", "ghost");
    config_fails("{ \"catalog\": { \"file\": \"missing.jsonc\" } }", "bad.jsonc:1:", "missing");
    config_fails("{ \"queues\": [ { \"name\": \"q1\" } ] ", "bad.jsonc:1:", "expected");
    config_fails("{ \"queues\": [ { \"name\": \"q1\" }, { \"name\": \"q1\" } ] }", "bad.jsonc:1:",
                 "twice");
    config_fails("{ \"queues\": [ { \"name\": \"q1\" } ], \"routes\": [ { \"from\": \"q1\",\n"
                 " \"type\": \"a.b\", \"to\": [\"analytics\"],\n"
                 " \"when\": { \"payload.x\": { \"gt\": 1 } } } ] }",
                 "bad.jsonc:3:", "gt");
}

/* ---- programmable routes that fail ---- */

static int fn_fails(const herald_message *m, const herald_envelope *env, const char **dests,
                    size_t cap, size_t *n, void *ud)
{
    (void)m;
    (void)env;
    (void)cap;
    (void)ud;
    dests[0] = "analytics"; /* filled, but the route fails */
    *n = 1;
    return -1;
}

static int fn_to_ghost(const herald_message *m, const herald_envelope *env, const char **dests,
                       size_t cap, size_t *n, void *ud)
{
    (void)m;
    (void)env;
    (void)cap;
    (void)ud;
    dests[0] = "analytics";
    dests[1] = "ghost-queue"; /* does not exist */
    *n = 2;
    return 0;
}

Test(routes, a_programmable_route_that_fails_or_names_a_missing_queue_retries_and_routes_nothing)
{
    struct {
        const char *name;
        herald_route_fn fn;
    } cases[] = {
        { "returns < 0", fn_fails },
        { "names a missing queue", fn_to_ghost },
    };
    herald_queue_settings st;
    herald_queue_settings_init(&st);
    st.retry_delay_s = 3600; /* a retried message stays put */
    cr_assert_eq(herald_queue_update(S, "brand-events", &st), 0, "%s", herald_last_error());
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert_eq(herald_queue_purge(S, "brand-events", NULL), 0);
        int64_t retried0 = hx_stats(S, "brand-events").retried_total;
        herald_router *r = NULL;
        cr_assert_eq(herald_router_new(S, &r), 0);
        cr_assert_eq(herald_router_add_fn(r, "brand-events", cases[i].fn, NULL), 0, "%s",
                     herald_last_error());
        cr_assert_eq(herald_router_start(r), 0, "%s", herald_last_error());
        send_ev("brand-events", "x.y", "{}", NULL);
        HX_WAIT_UNTIL(hx_stats(S, "brand-events").retried_total > retried0, 10000);
        int64_t routed = -1, unrouted = -1;
        herald_router_counts(r, &routed, &unrouted);
        herald_router_free(r);
        herald_queue_stats be = hx_stats(S, "brand-events");
        cr_assert_eq(be.retried_total - retried0, 1, "%s: the message was not retried",
                     cases[i].name);
        cr_assert_eq(be.backlog_count, 1, "%s: the message is gone", cases[i].name);
        cr_assert_eq(be.acked_total, 0, "%s: the message was acked", cases[i].name);
        cr_assert_eq(backlog("analytics"), 0, "%s: a copy was routed", cases[i].name);
        cr_assert_eq(routed, 0, "%s", cases[i].name);
    }
    cr_assert_eq(herald_queue_get(S, "ghost-queue", &(herald_queue_info){ 0 }), HERALD_ENOQUEUE,
                 "the route created the queue it named");
}

/* ---- configuration: check changes nothing; errors name file and line ---- */

static size_t n_queues(void)
{
    herald_queue_info *q = NULL;
    size_t n = 0;
    cr_assert_eq(herald_queue_list(S, &q, &n), 0);
    herald_free(q);
    return n;
}

static size_t n_topics(void)
{
    herald_topic_info *t = NULL;
    size_t n = 0;
    cr_assert_eq(herald_topic_list(S, &t, &n), 0);
    herald_topic_list_free(t, n);
    return n;
}

Test(routes, config_check_of_a_good_configuration_changes_nothing)
{
    free(write_file("events.jsonc", catalog_text));
    char *path = write_file("herald.jsonc", good_config);
    size_t q0 = n_queues(), t0 = n_topics();
    cr_assert_eq(herald_config_check(S, path), 0, "%s", herald_last_error());
    cr_assert_eq(n_queues(), q0, "config check created queues");
    cr_assert_eq(n_topics(), t0, "config check created topics");
    herald_queue_info qi;
    cr_assert_eq(herald_queue_get(S, "cfg-commands", &qi), HERALD_ENOQUEUE);
    /* no catalog installed: an event the configured catalog refuses is accepted */
    herald_event e = { .type = "a.b", .source = "t", .payload_json = "{\"k\":\"no\"}" };
    cr_assert_eq(herald_send_event(S, "analytics", &e, HERALD_UNSET, NULL), 0, "%s",
                 herald_last_error());
    /* and with no store at all */
    cr_assert_eq(herald_config_check(NULL, path), 0, "%s", herald_last_error());
    free(path);
}

/* Both herald_config_check and herald_runtime_start refuse text with HERALD_ECONFIG naming
 * `where` ("bad.jsonc:LINE:") and `what`, and nothing in the store changes. */
static void refused_by_check_and_start(const char *text, const char *where, const char *what)
{
    char *path = write_file("bad.jsonc", text);
    size_t q0 = n_queues(), t0 = n_topics();
    int rc = herald_config_check(S, path);
    cr_expect_eq(rc, HERALD_ECONFIG, "config_check accepted (%s):\n%s", herald_err_name(rc),
                 text);
    cr_expect(strstr(herald_last_error(), where), "config_check: '%s' lacks '%s'",
              herald_last_error(), where);
    cr_expect(hx_mentions(herald_last_error(), what), "config_check: '%s' lacks '%s'",
              herald_last_error(), what);
    herald_runtime *rt = NULL;
    rc = herald_runtime_start(S, path, &rt);
    cr_expect_eq(rc, HERALD_ECONFIG, "runtime_start accepted (%s):\n%s", herald_err_name(rc),
                 text);
    cr_expect(strstr(herald_last_error(), where), "runtime_start: '%s' lacks '%s'",
              herald_last_error(), where);
    cr_expect(hx_mentions(herald_last_error(), what), "runtime_start: '%s' lacks '%s'",
              herald_last_error(), what);
    if (rc == 0)
        herald_runtime_stop(rt);
    cr_expect_eq(n_queues(), q0, "queues were created");
    cr_expect_eq(n_topics(), t0, "topics were created");
    free(path);
}

Test(routes, a_bad_type_pattern_or_condition_path_is_econfig_from_check_and_start)
{
    refused_by_check_and_start("{ \"queues\": [ { \"name\": \"q1\" } ],\n"
                               "  \"topics\": { \"t1\": [\"q1\"] },\n"
                               "  \"routes\": [\n"
                               "    { \"from\": \"q1\", \"type\": \"Content.*\", \"to\": "
                               "[\"analytics\"] } ] }",
                               "bad.jsonc:4:", "Content.*");
    /* each route on a line of its own: the error names the line of the bad one */
    refused_by_check_and_start("{ \"queues\": [ { \"name\": \"q1\" } ],\n"
                               "  \"topics\": { \"t1\": [\"q1\"] }, \"routes\": [\n"
                               "    { \"from\": \"q1\", \"type\": \"a.b\", "
                               "\"to\": [\"analytics\"] },\n"
                               "    { \"from\": \"q1\", \"type\": \"c.d\", "
                               "\"to\": [\"analytics\"], "
                               "\"when\": { \"payloadx\": { \"exists\": true } } } ] }",
                               "bad.jsonc:4:", "payloadx");
}

Test(routes, an_exists_false_condition_error_names_the_line_of_its_route)
{
    refused_by_check_and_start("{ \"routes\": [\n"
                               "  { \"from\": \"brand-events\", \"type\": \"a.b\", \"to\": "
                               "[\"analytics\"] },\n"
                               "  { \"from\": \"brand-events\", \"type\": \"c.d\", \"to\": "
                               "[\"sm-commands\"], "
                               "\"when\": { \"payload.x\": { \"exists\": false } } },\n"
                               "  { \"from\": \"brand-events\", \"type\": \"e.f\", \"to\": "
                               "[\"analytics\"] }\n"
                               "] }",
                               "bad.jsonc:3:", "exists");
}

Test(routes, a_diamond_of_routes_is_accepted_and_a_longer_cycle_is_refused)
{
    herald_router *r = NULL;
    cr_assert_eq(herald_router_new(S, &r), 0);
    const char *be_to[] = { "sm-commands", "analytics" }, *to_social[] = { "social-commands" },
               *to_be[] = { "brand-events" };
    herald_route a = { .from = "brand-events", .type = "a.b", .to = be_to, .n_to = 2 };
    herald_route b = { .from = "sm-commands", .type = "a.b", .to = to_social, .n_to = 1 };
    herald_route c = { .from = "analytics", .type = "a.b", .to = to_social, .n_to = 1 };
    cr_assert_eq(herald_router_add(r, &a), 0, "%s", herald_last_error());
    cr_assert_eq(herald_router_add(r, &b), 0, "%s", herald_last_error());
    cr_assert_eq(herald_router_add(r, &c), 0, "two paths to one queue are not a cycle: %s",
                 herald_last_error());
    herald_route back = { .from = "social-commands", .type = "a.*", .to = to_be, .n_to = 1 };
    cr_assert_eq(herald_router_add(r, &back), HERALD_EINVAL,
                 "social -> brand -> sm -> social is a cycle");
    cr_assert(hx_mentions(herald_last_error(), "cycle"), "%s", herald_last_error());

    const char *many[65];
    for (size_t i = 0; i < 65; i++)
        many[i] = "analytics";
    herald_route wide = { .from = "sm-commands", .type = "x.y", .to = many, .n_to = 65 };
    cr_assert_eq(herald_router_add(r, &wide), HERALD_EINVAL);
    cr_assert(hx_mentions(herald_last_error(), "64"), "%s", herald_last_error());
    herald_router_free(r);

    refused_by_check_and_start("{ \"routes\": [\n"
                               "  { \"from\": \"brand-events\", \"type\": \"a.b\", \"to\": "
                               "[\"sm-commands\"] },\n"
                               "  { \"from\": \"sm-commands\", \"type\": \"a.b\", \"to\": "
                               "[\"analytics\"] },\n"
                               "  { \"from\": \"analytics\", \"type\": \"a.b\", \"to\": "
                               "[\"brand-events\"] }\n"
                               "] }",
                               "bad.jsonc:4:", "cycle");
}
