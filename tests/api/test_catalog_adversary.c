// SPDX-License-Identifier: MIT
/*
 * test_catalog_adversary.c - catalogs written to break things (issue 7 §4): a catalog that
 * `herald catalog gen` cannot turn into a correct header is refused when loaded (so `catalog
 * check` refuses it), naming file:line:col and the clash; the headers of tricky catalogs that
 * are valid compile with -std=c11 and -std=gnu11 (-Wall -Wextra -Werror) and, linked and run,
 * encode what the catalog check accepts and report a NULL required field in herald_last_error();
 * the JSONC reader refuses truncated input and names an out-of-range number; the payload check
 * accepts what Herald accepts as JSON.
 */
#include <criterion/criterion.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

static hx_env g_env;

static void setup(void)
{
    hx_env_setup(&g_env, 0);
}

static void teardown(void)
{
    hx_env_teardown(&g_env);
}

TestSuite(catalog_adversary, .init = setup, .fini = teardown, .timeout = 120);

static const char *repo_root(void)
{
    static char root[4096];
    snprintf(root, sizeof root, "%s", __FILE__);
    char *p = strstr(root, "/tests/api/test_catalog_adversary.c");
    cr_assert_not_null(p, "cannot find the repository from %s", __FILE__);
    *p = 0;
    return root;
}

/* Asserts that the catalog text is refused with HERALD_ECONFIG and a message holding each of
 * the NULL-terminated fragments. */
static void refused(const char *text, ...)
{
    herald_catalog *c = NULL;
    int rc = herald_catalog_parse(text, strlen(text), "t.jsonc", &c);
    cr_assert_eq(rc, HERALD_ECONFIG, "accepted (rc %d): %s", rc, text);
    cr_assert_null(c);
    const char *msg = herald_last_error();
    va_list ap;
    va_start(ap, text);
    for (const char *frag = va_arg(ap, const char *); frag; frag = va_arg(ap, const char *))
        cr_assert(strstr(msg, frag), "'%s' lacks '%s' (catalog: %s)", msg, frag, text);
    va_end(ap);
}
#define REFUSED(text, ...) refused(text, __VA_ARGS__, (const char *)NULL)

static herald_catalog *parse_ok(const char *text)
{
    herald_catalog *c = NULL;
    cr_assert_eq(herald_catalog_parse(text, strlen(text), "t.jsonc", &c), 0, "%s",
                 herald_last_error());
    return c;
}

Test(catalog_adversary, the_jsonc_reader_refuses_truncated_input_and_names_a_huge_number)
{
    REFUSED("{\"events\":{}} /* open", "t.jsonc:1:", "unterminated /* comment");
    REFUSED("{\"events\":{}}\n// fine\n/* not closed\n", "t.jsonc:", "comment");
    REFUSED("\"abc\\", "t.jsonc:1:", "unterminated string");
    REFUSED("{\"events\":{\"a.b\":{\"description\":\"x\\", "unterminated string");
    REFUSED("{\"events\":{},\n  \"x\": 1e999}", "t.jsonc:2:8", "number out of range");
    REFUSED("{\"events\":{}, \"x\": -1e999}", "t.jsonc:1:20", "number out of range");
}

Test(catalog_adversary, two_types_that_generate_one_function_are_refused_naming_it)
{
    REFUSED("{\"events\": {\"a.b\": {\"payload\": {}},\n"
            "  \"a.b_tx\": {\"payload\": {}}}}",
            "t.jsonc:2:13", "'a.b'", "'a.b_tx'", "a_b_tx_send");
    REFUSED("{\"events\": {\"a.b_c\": {\"payload\": {}}, \"a_b.c\": {\"payload\": {}}}}",
            "t.jsonc:1:", "a_b_c_");
    REFUSED("{\"events\": {\"x.y_tx\": {\"payload\": {}}, \"x.y\": {\"payload\": {}}}}",
            "x_y_tx_send");
    REFUSED("{\"events\": {\"herald.queue\": {\"payload\": {}}}}", "t.jsonc:1:", "herald_");
}

Test(catalog_adversary, fields_that_generate_one_struct_member_are_refused_naming_it)
{
    REFUSED("{\"events\": {\"a.b\": {\"payload\": {\"tags\": \"string[]\",\n"
            "   \"tags_len\": \"integer\"}}}}",
            "t.jsonc:2:16", "'tags'", "'tags_len'", "member 'tags_len'");
    REFUSED("{\"events\": {\"a.b\": {\"payload\": {\"n\": \"integer?\", \"has_n\": \"boolean\"}}}}",
            "t.jsonc:1:", "member 'has_n'");
    /* the other order too */
    REFUSED("{\"events\": {\"a.b\": {\"payload\": {\"has_n\": \"boolean\", \"n\": \"number?\"}}}}",
            "member 'has_n'");
    /* a required n has no has_n: no clash */
    herald_catalog_free(parse_ok("{\"events\": {\"a.b\": {\"payload\": "
                                 "{\"n\": \"integer\", \"has_n\": \"boolean\"}}}}"));
}

Test(catalog_adversary, field_names_the_compiler_predefines_or_reserves_are_refused)
{
    static const char *const bad[] = { "linux", "unix", "i386", "asm", "typeof", "alignas",
                                       "offsetof", "errno", "__x", "bool", "int" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[200];
        snprintf(text, sizeof text, "{\"events\": {\"a.b\": {\"payload\": {\"%s\": \"string\"}}}}",
                 bad[i]);
        char want[80];
        snprintf(want, sizeof want, "field name '%s'", bad[i]);
        REFUSED(text, "t.jsonc:1:", want);
    }
}

Test(catalog_adversary, a_guard_that_is_not_an_identifier_is_refused)
{
    herald_catalog *c = parse_ok("{\"events\": {\"a.b\": {\"payload\": {}}}}");
    char *h = NULL;
    static const char *const bad[] = { "", "1ABC", "_X", "A B", "a_b", "X\n#define Y" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(herald_catalog_gen_header(c, bad[i], &h), HERALD_EINVAL, "'%s'", bad[i]);
        cr_assert_null(h);
        cr_assert(strstr(herald_last_error(), "include guard"), "%s", herald_last_error());
    }
    cr_assert_eq(herald_catalog_gen_header(c, "X1_H", &h), 0);
    herald_free(h);
    herald_catalog_free(c);
}

/* A valid catalog meant to trip the generator: descriptions that try to close their comment or
 * start a line, names near the reserved ones, every field type, optional and not. */
static const char *const tricky =
    "{\"events\": {\n"
    "  \"a.b\": {\"description\": \"ends */ int injected = 1; /* and\\nnew line #define X 1\","
    " \"payload\": {\"n\": \"integer?\", \"tags\": \"string[]\", \"has_m\": \"boolean\","
    " \"m\": \"integer\", \"linux_\": \"string\", \"unix2\": \"number?\", \"o\": \"object?\","
    " \"s\": \"string?\", \"p\": \"string\", \"json\": \"string?\"}},\n"
    "  \"a.b_t\": {\"description\": \"trigraph ?\?/ and a backslash \\\\\", \"payload\": {}},\n"
    "  \"a.bc\": {\"payload\": {\"_x\": \"boolean?\"}},\n"
    "  \"x.send\": {\"payload\": {\"b\": \"string\"}}\n"
    "}}";

/* The program built against the header: encodes one payload, checks the catalog accepts it,
 * and sends one with a NULL required field, printing what herald_last_error() says. */
static const char *const program =
    "#include \"events.h\"\n"
    "#include <stdio.h>\n"
    "#include <string.h>\n"
    "int main(int argc, char **argv)\n{\n"
    "    (void)argc;\n"
    "    herald_catalog *c = NULL;\n"
    "    if (herald_catalog_load(argv[1], &c) < 0) { puts(herald_last_error()); return 2; }\n"
    "    const char *tags[] = { \"t\\\"1\", \"\\n\" };\n"
    "    a_b_payload p = { .has_n = true, .n = -5, .tags = tags, .tags_len = 2,\n"
    "                      .has_m = false, .m = 9, .linux_ = \"l\", .p = \"\", .o = \"{}\" };\n"
    "    char *json = NULL;\n"
    "    if (a_b_encode(&p, &json) != 0) return 3;\n"
    "    if (herald_catalog_check(c, a_b_TYPE, json, 0) != 0) {\n"
    "        printf(\"check: %s\\n\", herald_last_error()); return 4;\n    }\n"
    "    printf(\"json: %s\\n\", json);\n"
    "    free(json);\n"
    "    p.linux_ = NULL;\n"
    "    char id[HERALD_ID_SIZE];\n"
    "    int rc = a_b_send(NULL, \"q\", \"svc\", NULL, &p, id);\n"
    "    printf(\"send: %s: %s\\n\", herald_err_name(rc), herald_last_error());\n"
    "    x_send_payload q = { .b = NULL };\n"
    "    rc = x_send_tx_send(NULL, \"q\", \"svc\", &q, id);\n"
    "    printf(\"tx_send: %s: %s\\n\", herald_err_name(rc), herald_last_error());\n"
    "    herald_catalog_free(c);\n"
    "    return 0;\n}\n";

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    fputs(text, f);
    fclose(f);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    char *buf = calloc(1, 1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

Test(catalog_adversary, the_header_of_a_tricky_catalog_compiles_in_c11_and_gnu11_and_runs)
{
    char cat[4200], hdr[4200], src[4200], exe[4200], cmd[16384];
    snprintf(cat, sizeof cat, "%s/cat.jsonc", g_env.dir);
    snprintf(hdr, sizeof hdr, "%s/events.h", g_env.dir);
    snprintf(src, sizeof src, "%s/use.c", g_env.dir);
    snprintf(exe, sizeof exe, "%s/use", g_env.dir);
    write_file(cat, tricky);
    const char *check[] = { "catalog", "check", cat, NULL };
    char *err = NULL;
    cr_assert_eq(hx_cli(check, NULL, NULL, &err), 0, "catalog check: %s", err);
    free(err);
    const char *gen[] = { "catalog", "gen", cat, "-o", hdr, NULL };
    cr_assert_eq(hx_cli(gen, NULL, NULL, &err), 0, "catalog gen: %s", err);
    free(err);
    char *h = read_file(hdr);
    cr_assert_null(strstr(h, "int injected = 1; /*"), "the description escaped its comment");
    cr_assert(strstr(h, "ends * / int injected = 1; / * and new line #define X 1"), "%s", h);
    free(h);
    write_file(src, program);
    /* the library beside the herald binary; the same sanitizers as this test, if any */
    char bin[4096];
    snprintf(bin, sizeof bin, "%s", HERALD_BIN);
    const char *libdir = dirname(bin);
#if defined(__SANITIZE_ADDRESS__)
    const char *san = "-fsanitize=address,undefined";
#else
    const char *san = "";
#endif
    static const char *const stds[] = { "c11", "gnu11", "c17", "gnu17" };
    for (size_t i = 0; i < sizeof stds / sizeof stds[0]; i++) {
        snprintf(cmd, sizeof cmd,
                 "cc -std=%s -Wall -Wextra -Wshadow -Wstrict-prototypes -Werror %s "
                 "-I'%s/include' -I'%s' '%s' -o '%s' '%s/libherald.a' -lsqlite3 -ljansson "
                 "-lpthread -lm 2>'%s/cc.log'",
                 stds[i], san, repo_root(), g_env.dir, src, exe, libdir, g_env.dir);
        char logp[4200];
        snprintf(logp, sizeof logp, "%s/cc.log", g_env.dir);
        int rc = system(cmd);
        char *log = read_file(logp);
        cr_assert_eq(rc, 0, "-std=%s: the generated header does not compile:\n%s", stds[i], log);
        free(log);
    }
    snprintf(cmd, sizeof cmd, "'%s' '%s' >'%s/run.out' 2>&1", exe, cat, g_env.dir);
    int rc = system(cmd);
    char outp[4200];
    snprintf(outp, sizeof outp, "%s/run.out", g_env.dir);
    char *out = read_file(outp);
    cr_assert_eq(rc, 0, "the program failed: %s", out);
    cr_assert(strstr(out, "json: {\"n\":-5,\"tags\":[\"t\\\"1\",\"\\u000a\"],"), "%s", out);
    cr_assert(strstr(out, "\"has_m\":false,\"m\":9,\"linux_\":\"l\""), "%s", out);
    cr_assert(strstr(out, "send: HERALD_EINVAL: a.b payload: field 'linux_' is NULL"), "%s", out);
    cr_assert(strstr(out, "tx_send: HERALD_EINVAL: x.send payload: field 'b' is NULL"), "%s",
              out);
    free(out);
}

Test(catalog_adversary, the_payload_check_accepts_what_herald_accepts_as_json)
{
    herald_catalog *c = parse_ok(
        "{\"events\": {\"a.b\": {\"payload\": {\"n\": \"number\", \"s\": \"string\","
        " \"o\": \"object?\", \"i\": \"integer?\", \"l\": \"string[]?\"}}}}");
    /* a huge number, \u0000 in a string, an escaped key: all valid JSON Herald sends */
    cr_assert_eq(herald_catalog_check(c, "a.b",
                                      "{\"n\": 99999999999999999999, \"s\": \"a\\u0000b\"}", 0),
                 0, "%s", herald_last_error());
    cr_assert_eq(herald_catalog_check(c, "a.b",
                                      "{\"\\u006e\": 1e300, \"s\": \"\", \"o\": {\"x\": "
                                      "123456789012345678901234567890}, \"l\": [\"a\", \"\\\"]\"]}",
                                      0),
                 0, "%s", herald_last_error());
    /* an integer field must fit int64_t, the type the generated struct gives it */
    cr_assert_eq(
        herald_catalog_check(c, "a.b", "{\"n\":1,\"s\":\"\",\"i\":99999999999999999999}", 0),
        HERALD_ECATALOG);
    cr_assert(strstr(herald_last_error(), "'i' must be integer (a 64-bit integer)"), "%s",
              herald_last_error());
    cr_assert_eq(herald_catalog_check(c, "a.b", "{\"n\":1,\"s\":\"\",\"i\":1.5}", 0),
                 HERALD_ECATALOG);
    cr_assert_eq(herald_catalog_check(c, "a.b", "{\"n\":1,\"s\":\"\",\"l\":[\"a\",1]}", 0),
                 HERALD_ECATALOG);
    cr_assert(strstr(herald_last_error(), "'l' must be string[]"), "%s", herald_last_error());
    cr_assert_eq(herald_catalog_check(c, "a.b", "{\"n\":1,\"s\":\"\",\"z\\u0000\":1}", 0),
                 HERALD_ECATALOG);
    cr_assert(strstr(herald_last_error(), "not in the catalog"), "%s", herald_last_error());
    cr_assert_eq(herald_catalog_check(c, "a.b", "{\"n\":1,\"s\":\"\"", 0), HERALD_ECATALOG);
    cr_assert(strstr(herald_last_error(), "not valid JSON"), "%s", herald_last_error());
    herald_catalog_free(c);
}

/* {"o": [[...[0]...]]} nesting `depth` levels in all. */
static char *nested_payload(int depth)
{
    char *s = malloc((size_t)depth * 2 + 32), *d = s;
    d += sprintf(d, "{\"o\":");
    for (int i = 0; i < depth - 1; i++)
        *d++ = '[';
    *d++ = '0';
    for (int i = 0; i < depth - 1; i++)
        *d++ = ']';
    *d++ = '}';
    *d = 0;
    return s;
}

Test(catalog_adversary, the_payload_check_and_the_envelope_apply_one_depth_limit)
{
    herald_catalog *c = parse_ok("{\"events\": {\"a.b\": {\"payload\": {\"o\": \"string[]?\"}}}}");
    hx_create_queue(g_env.store, "q", NULL);
    for (int depth = HERALD_JSON_MAX_DEPTH - 1; depth <= HERALD_JSON_MAX_DEPTH; depth++) {
        char *payload = nested_payload(depth);
        herald_event e = { .type = "a.b", .source = "t", .payload_json = payload };
        char id[HERALD_ID_SIZE];
        int sent = herald_send_event(g_env.store, "q", &e, HERALD_UNSET, id);
        int checked = herald_catalog_check(c, "a.b", payload, 0);
        if (depth == HERALD_JSON_MAX_DEPTH - 1) {
            cr_assert_eq(sent, 0, "%s", herald_last_error());
            /* refused for its type (an array of arrays), not for its depth */
            cr_assert_eq(checked, HERALD_ECATALOG);
            cr_assert(strstr(herald_last_error(), "must be string[]"), "%s", herald_last_error());
        } else {
            cr_assert_eq(sent, HERALD_EENVELOPE);
            cr_assert(strstr(herald_last_error(), "HERALD_JSON_MAX_DEPTH"), "%s",
                      herald_last_error());
            cr_assert_eq(checked, HERALD_ECATALOG);
            cr_assert(strstr(herald_last_error(), "HERALD_JSON_MAX_DEPTH"), "%s",
                      herald_last_error());
        }
        free(payload);
    }
    herald_catalog_free(c);
}
