// SPDX-License-Identifier: MIT
/*
 * test_catalog.c - the event catalog through herald.h and the CLI: loading (with errors that
 * name file, line and column), payload checks, strict and warn modes on sends, and the
 * generated C header - which must compile, and must stop compiling code written against an
 * older schema (the point of generating it).
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
    hx_env_setup(&g_env, 0);
    hx_create_queue(S, "sm-commands", NULL);
}

static void teardown(void)
{
    hx_env_teardown(&g_env);
}

TestSuite(catalog, .init = setup, .fini = teardown, .timeout = 60);

/* The repository root, from this file's path (CMake compiles it by absolute path). */
static const char *repo_root(void)
{
    static char root[4096];
    snprintf(root, sizeof root, "%s", __FILE__);
    char *p = strstr(root, "/tests/api/test_catalog.c");
    cr_assert_not_null(p, "cannot find the repository from %s", __FILE__);
    *p = 0;
    return root;
}

static herald_catalog *example(void)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/examples/events.jsonc", repo_root());
    herald_catalog *c = NULL;
    cr_assert_eq(herald_catalog_load(path, &c), 0, "%s", herald_last_error());
    return c;
}

static herald_catalog *parse_ok(const char *text)
{
    herald_catalog *c = NULL;
    cr_assert_eq(herald_catalog_parse(text, strlen(text), "t.jsonc", &c), 0, "%s",
                 herald_last_error());
    return c;
}

static void parse_fails(const char *text, const char *where, const char *what)
{
    herald_catalog *c = NULL;
    int rc = herald_catalog_parse(text, strlen(text), "t.jsonc", &c);
    cr_assert_eq(rc, HERALD_ECONFIG, "accepted: %s", text);
    cr_assert_null(c);
    cr_assert(strstr(herald_last_error(), where), "'%s' lacks position '%s'", herald_last_error(),
              where);
    cr_assert(hx_mentions(herald_last_error(), what), "'%s' does not name '%s'",
              herald_last_error(), what);
}

Test(catalog, the_example_catalog_has_the_seven_reference_event_types)
{
    herald_catalog *c = example();
    cr_assert_eq(herald_catalog_count(c), 7);
    const char *types[] = { "research.requested", "research.completed", "content.generate",
                            "content.ready",      "content.publish",    "content.published",
                            "performance.report" };
    for (int i = 0; i < 7; i++)
        cr_assert_neq(herald_catalog_check(c, types[i], "{}", 2), HERALD_EINVAL);
    herald_catalog_free(c);
}

Test(catalog, check_accepts_matching_payloads_and_names_the_field_that_is_wrong)
{
    herald_catalog *c = example();
    const char *ok = "{\"brand_slug\":\"b\",\"research_ids\":[\"r\"],\"keywords_researched\":3}";
    cr_assert_eq(herald_catalog_check(c, "research.completed", ok, 0), 0, "%s",
                 herald_last_error());
    const char *with_opt = "{\"brand_slug\":\"b\",\"research_ids\":[],\"keywords_researched\":3,"
                           "\"note\":\"n\"}";
    cr_assert_eq(herald_catalog_check(c, "research.completed", with_opt, 0), 0);
    const char *null_opt = "{\"brand_slug\":\"b\",\"research_ids\":[],\"keywords_researched\":3,"
                           "\"note\":null}";
    cr_assert_eq(herald_catalog_check(c, "research.completed", null_opt, 0), 0);
    struct {
        const char *payload, *field;
    } bad[] = {
        { "{\"research_ids\":[],\"keywords_researched\":3}", "brand_slug" },
        { "{\"brand_slug\":1,\"research_ids\":[],\"keywords_researched\":3}", "brand_slug" },
        { "{\"brand_slug\":\"b\",\"research_ids\":[1],\"keywords_researched\":3}", "research_ids" },
        { "{\"brand_slug\":\"b\",\"research_ids\":[],\"keywords_researched\":3.5}",
          "keywords_researched" },
        { "{\"brand_slug\":\"b\",\"research_ids\":[],\"keywords_researched\":3,\"extra\":1}",
          "extra" },
        { "{\"brand_slug\":\"b\",\"research_ids\":[],\"keywords_researched\":3,\"note\":5}",
          "note" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_expect_eq(herald_catalog_check(c, "research.completed", bad[i].payload, 0),
                     HERALD_ECATALOG, "case %zu accepted", i);
        cr_expect(hx_mentions(herald_last_error(), bad[i].field), "case %zu: '%s' lacks '%s'", i,
                  herald_last_error(), bad[i].field);
    }
    cr_assert_eq(herald_catalog_check(c, "research.unknown", "{}", 0), HERALD_ECATALOG);
    cr_assert(hx_mentions(herald_last_error(), "research.unknown"));
    /* number accepts integers; the performance report has one */
    cr_assert_eq(herald_catalog_check(c, "performance.report",
                                      "{\"brand_slug\":\"b\",\"url\":\"u\",\"impressions\":1,"
                                      "\"clicks\":0,\"position\":3,\"period\":\"w1\"}",
                                      0),
                 0, "%s", herald_last_error());
    herald_catalog_free(c);
}

/* A research.completed event that the example catalog refuses: research_ids is missing. */
#define BAD_RESEARCH                                                                              \
    ((herald_event){ .type = "research.completed", .source = "gatherfeed",                        \
                     .payload_json = "{\"brand_slug\":\"b\"}" })

Test(catalog, strict_mode_refuses_bad_events_and_stores_nothing)
{
    herald_catalog *c = example();
    herald_store_set_catalog(S, c, HERALD_CATALOG_STRICT);
    herald_event bad = BAD_RESEARCH;
    cr_assert_eq(herald_send_event(S, "sm-commands", &bad, HERALD_UNSET, NULL), HERALD_ECATALOG);
    cr_assert(hx_mentions(herald_last_error(), "research_ids"), "%s", herald_last_error());
    herald_event unknown = { .type = "made.up", .source = "s", .payload_json = "{}" };
    cr_assert_eq(herald_send_event(S, "sm-commands", &unknown, HERALD_UNSET, NULL),
                 HERALD_ECATALOG);
    cr_assert_eq(hx_stats(S, "sm-commands").sent_total, 0);
    herald_event good = { .type = "content.publish", .source = "sm",
                          .payload_json = "{\"brand_slug\":\"b\",\"content_id\":\"c\","
                                          "\"keyword\":\"k\"}" };
    cr_assert_eq(herald_send_event(S, "sm-commands", &good, HERALD_UNSET, NULL), 0, "%s",
                 herald_last_error());
    cr_assert_eq(hx_stats(S, "sm-commands").sent_total, 1);
    herald_store_set_catalog(S, NULL, HERALD_CATALOG_STRICT);
    cr_assert_eq(herald_send_event(S, "sm-commands", &unknown, HERALD_UNSET, NULL), 0,
                 "without a catalog nothing is checked");
    herald_catalog_free(c);
}

Test(catalog, warn_mode_sends_the_bad_event_anyway)
{
    herald_catalog *c = example();
    herald_store_set_catalog(S, c, HERALD_CATALOG_WARN);
    herald_event bad = BAD_RESEARCH;
    cr_assert_eq(herald_send_event(S, "sm-commands", &bad, HERALD_UNSET, NULL), 0);
    cr_assert_eq(hx_stats(S, "sm-commands").sent_total, 1);
    herald_store_set_catalog(S, NULL, HERALD_CATALOG_STRICT);
    herald_catalog_free(c);
}

Test(catalog, comments_and_trailing_commas_are_allowed)
{
    herald_catalog *c = parse_ok("// a catalog\n{ /* events */ \"events\": {\n"
                                 "  \"a.b\": { \"payload\": { \"x\": \"string\", }, },\n"
                                 "}, }\n");
    cr_assert_eq(herald_catalog_count(c), 1);
    cr_assert_eq(herald_catalog_check(c, "a.b", "{\"x\":\"y\"}", 0), 0);
    herald_catalog_free(c);
}

Test(catalog, a_bad_catalog_is_an_error_naming_file_line_and_column)
{
    parse_fails("{\"events\": {\n  \"a.b\": {\"payload\": {\"x\": \"string\"}}\n  ]}", "t.jsonc:3:3",
                "expected");
    parse_fails("{\"events\": {}, \"event\": {}}", "t.jsonc:1:", "event");
    parse_fails("{\"events\": {\n \"a.b\": {\"payload\": {}, \"payloads\": {}}}}", "t.jsonc:2:",
                "payloads");
    parse_fails("{\"events\": {\n\n \"a.b\": {\"payload\": {\"x\": \"strin\"}}}}", "t.jsonc:3:",
                "x");
    parse_fails("{\"events\": {\"NotDot\": {\"payload\": {}}}}", "t.jsonc:1:", "NotDot");
    parse_fails("{\"events\": {\"a.b\": {\"payload\": {\"Bad-Name\": \"string\"}}}}", "t.jsonc:1:",
                "Bad-Name");
    parse_fails("{\"events\": {\"a.b\": {\"payload\": {\"int\": \"string\"}}}}", "t.jsonc:1:",
                "int");
    parse_fails("{\"events\": {\"a.b\": {}}}", "t.jsonc:1:", "payload");
    parse_fails("{\"events\": {\"a.b\": {\"payload\": {}}, \"a.b\": {\"payload\": {}}}}",
                "t.jsonc:1:", "duplicate");
    parse_fails("{\"events\": {} /* never closed", "t.jsonc:1:", "comment");
    parse_fails("", "t.jsonc:1:1", "value");
}

Test(catalog, load_of_a_missing_file_names_it)
{
    herald_catalog *c = NULL;
    cr_assert_eq(herald_catalog_load("/nonexistent/events.jsonc", &c), HERALD_ECONFIG);
    cr_assert(strstr(herald_last_error(), "/nonexistent/events.jsonc"));
}

/* Runs `herald catalog gen` on a catalog and compiles a program against the header. */
static int compile_against(const char *catalog_text, const char *program)
{
    char path[4200], hdr[4200], src[4200], cmd[9000];
    snprintf(path, sizeof path, "%s/cat.jsonc", g_env.dir);
    snprintf(hdr, sizeof hdr, "%s/events.h", g_env.dir);
    snprintf(src, sizeof src, "%s/use.c", g_env.dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(catalog_text, f);
    fclose(f);
    const char *argv[] = { "catalog", "gen", path, "-o", hdr, NULL };
    char *err = NULL;
    int rc = hx_cli(argv, NULL, NULL, &err);
    cr_assert_eq(rc, 0, "catalog gen failed: %s", err);
    free(err);
    f = fopen(src, "w");
    cr_assert_not_null(f);
    fprintf(f, "#include \"events.h\"\n%s\n", program);
    fclose(f);
    snprintf(cmd, sizeof cmd,
             "cc -std=c11 -Wall -Werror -fsyntax-only -I'%s/include' -I'%s' '%s' 2>'%s/cc.log'",
             repo_root(), g_env.dir, src, g_env.dir);
    return system(cmd);
}

static const char *const v1 =
    "{\"events\": {\"research.completed\": {\"payload\": {\"brand_slug\": \"string\","
    " \"research_ids\": \"string[]\", \"keywords_researched\": \"integer\","
    " \"note\": \"string?\", \"score\": \"number?\", \"meta\": \"object?\"}}}}";

static const char *const program =
    "int send_one(herald_store *s);\n"
    "int send_one(herald_store *s)\n{\n"
    "    const char *ids[] = { \"r1\" };\n"
    "    research_completed_payload p = { .brand_slug = \"b\", .research_ids = ids,\n"
    "        .research_ids_len = 1, .keywords_researched = 3, .has_score = true, .score = 0.5 };\n"
    "    char id[HERALD_ID_SIZE];\n"
    "    return research_completed_send(s, \"q\", \"svc\", NULL, &p, id);\n}\n";

Test(catalog, the_generated_header_compiles_and_a_changed_schema_breaks_the_build)
{
    cr_assert_eq(compile_against(v1, program), 0, "the generated header does not compile");
    /* The same program against a catalog where a field was renamed must not compile. */
    char v2[1024];
    snprintf(v2, sizeof v2, "%s", v1);
    char *p = strstr(v2, "keywords_researched");
    memcpy(p, "keywords_count_xxxxx", 19); /* same length: keywords_count_xxxx */
    cr_assert_neq(compile_against(v2, program), 0, "a renamed field still compiled");
}

Test(catalog, generated_senders_build_payloads_the_catalog_accepts)
{
    /* What the generated encoder writes must pass the catalog check (run through the CLI:
     * the program cannot be linked here, so check its JSON shape by the same rules). */
    herald_catalog *c = parse_ok(v1);
    cr_assert_eq(herald_catalog_check(c, "research.completed",
                                      "{\"brand_slug\":\"b\",\"research_ids\":[\"r1\"],"
                                      "\"keywords_researched\":3,\"score\":0.5}",
                                      0),
                 0, "%s", herald_last_error());
    char *hdr = NULL;
    cr_assert_eq(herald_catalog_gen_header(c, "MY_EVENTS_H", &hdr), 0);
    cr_assert(strstr(hdr, "#ifndef MY_EVENTS_H"));
    cr_assert(strstr(hdr, "typedef struct research_completed_payload"));
    cr_assert(strstr(hdr, "bool has_score;"));
    cr_assert(strstr(hdr, "research_completed_tx_send"));
    herald_free(hdr);
    cr_assert_eq(herald_catalog_gen_header(c, "bad guard", &hdr), HERALD_EINVAL);
    herald_catalog_free(c);
}
