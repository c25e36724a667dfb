// SPDX-License-Identifier: MIT
/*
 * test_config_apply.c - the configuration describes the system, not one process (issue 7 §1):
 * `herald config apply` writes herald.jsonc's queues, topics and catalog to the store, and
 * every later producer - here each `herald send` / `herald publish` is a process of its own -
 * is held to that catalog. Also: `herald run` applies on start; catalog evolution (breaking
 * changes named and refused unless --force, one transaction: a refused apply changes nothing),
 * `catalog diff` and `catalog history`; the global --config and its ./herald.jsonc default;
 * --json of `config check` and `catalog check`; the "retention" alias; examples/herald.jsonc.
 * Every test owns a temp dir (also its cwd) and a store in it (tests/support/cli.h).
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

TestSuite(config_apply, .init = hx_e2e_setup, .fini = hx_e2e_teardown, .timeout = 120);

/* ---- helpers -------------------------------------------------------------------------------- */

static void write_file(const char *name, const char *text)
{
    FILE *f = fopen(name, "w");
    cr_assert_not_null(f, "cannot write %s", name);
    fputs(text, f);
    fclose(f);
}

static const char catalog_v1[] =
    "{ \"events\": {\n"
    "  \"content.ready\": { \"payload\": { \"content_id\": \"string\", \"words\": \"integer\",\n"
    "                                    \"note\": \"string?\" } },\n"
    "  \"brand.created\": { \"payload\": { \"slug\": \"string\" } } } }\n";

/* herald.jsonc naming events.jsonc, a queue `events`, and a topic over `events` + `audit`. */
static void write_config(const char *mode)
{
    char text[1024];
    snprintf(text, sizeof text,
             "{ \"catalog\": { \"file\": \"events.jsonc\", \"mode\": \"%s\" },\n"
             "  \"queues\": [ { \"name\": \"events\" }, { \"name\": \"audit\" } ],\n"
             "  \"topics\": { \"brand-topic\": [\"events\", \"audit\"] } }\n",
             mode);
    write_file("herald.jsonc", text);
}

static void setup_v1(void)
{
    write_file("events.jsonc", catalog_v1);
    write_config("strict");
    OKV(NULL, "config", "apply");
}

/* The number of catalog versions in the store. */
static size_t n_versions(void)
{
    json_t *h = JSON(NULL, "catalog", "history", "--json");
    cr_assert(json_is_array(h), "catalog history --json must print an array");
    size_t n = json_array_size(h);
    json_decref(h);
    return n;
}

/* ---- the catalog binds every producer on the store ------------------------------------------ */

Test(config_apply, after_apply_a_send_from_another_process_is_checked_naming_the_field)
{
    setup_v1();
    /* The case: a payload without the required field, from a separate `herald send`. */
    char *err = FAIL(1, NULL, "send", "events", "--type", "content.ready", "--source", "sm",
                     "{\"content_id\":\"c1\"}");
    cr_assert(hx_mentions(err, "words"), "the refusal must name the missing field: %s", err);
    cr_assert(hx_mentions(err, "content.ready"), "the refusal must name the type: %s", err);
    free(err);
    err = FAIL(1, NULL, "send", "events", "--type", "content.ready", "--source", "sm",
               "{\"content_id\":7,\"words\":3}");
    cr_assert(hx_mentions(err, "content_id"), "a wrong type must name the field: %s", err);
    free(err);
    err = FAIL(1, NULL, "send", "events", "--type", "nobody.knows", "--source", "sm", "{}");
    cr_assert(hx_mentions(err, "nobody.knows"), "an unknown type must be named: %s", err);
    free(err);
    cr_assert_eq(hx_cli_stat("events", "backlog_count"), 0, "a refused event was stored");
    char *id = OK(NULL, "send", "events", "--type", "content.ready", "--source", "sm",
                  "{\"content_id\":\"c1\",\"words\":3}");
    free(id);
    cr_assert_eq(hx_cli_stat("events", "backlog_count"), 1);
}

Test(config_apply, after_apply_a_publish_from_another_process_is_checked)
{
    setup_v1();
    char *err = FAIL(1, NULL, "publish", "brand-topic", "--type", "brand.created", "--source",
                     "sm", "{\"slug\":1}");
    cr_assert(hx_mentions(err, "slug"), "the refusal must name the field: %s", err);
    free(err);
    cr_assert_eq(hx_cli_stat("events", "backlog_count"), 0);
    cr_assert_eq(hx_cli_stat("audit", "backlog_count"), 0);
    OKV(NULL, "publish", "brand-topic", "--type", "brand.created", "--source", "sm",
        "{\"slug\":\"acme\"}");
    cr_assert_eq(hx_cli_stat("audit", "backlog_count"), 1);
}

Test(config_apply, warn_mode_sends_what_the_catalog_refuses)
{
    write_file("events.jsonc", catalog_v1);
    write_config("warn");
    OKV(NULL, "config", "apply");
    OKV(NULL, "send", "events", "--type", "content.ready", "--source", "sm", "{}");
    cr_assert_eq(hx_cli_stat("events", "backlog_count"), 1);
}

Test(config_apply, plain_messages_are_not_checked)
{
    setup_v1();
    OKV(NULL, "send", "events", "{\"anything\":true}");
    cr_assert_eq(hx_cli_stat("events", "backlog_count"), 1);
}

Test(config_apply, topics_and_queues_declared_exist_after_apply_without_run)
{
    write_file("events.jsonc", catalog_v1);
    write_config("strict");
    json_t *before = JSON(NULL, "topics", "list", "--json");
    cr_assert_eq(json_array_size(before), 0);
    json_decref(before);
    json_t *r = JSON(NULL, "config", "apply", "--json");
    cr_assert_eq(json_array_size(json_object_get(r, "queues_created")), 2);
    cr_assert_eq(hx_json_int(json_object_get(r, "catalog"), "version"), 1);
    json_decref(r);
    json_t *topics = JSON(NULL, "topics", "list", "--json");
    cr_assert_eq(json_array_size(topics), 1, "the declared topic must exist after apply");
    json_t *t = json_array_get(topics, 0);
    cr_assert_str_eq(hx_json_str(t, "topic"), "brand-topic");
    cr_assert_eq(json_array_size(json_object_get(t, "queues")), 2);
    json_decref(topics);
    json_t *q = JSON(NULL, "queues", "get", "audit", "--json");
    json_decref(q);
}

Test(config_apply, applying_the_same_configuration_again_keeps_one_version)
{
    setup_v1();
    char *out = OK(NULL, "config", "apply");
    cr_assert(hx_mentions(out, "unchanged"), "a second apply should say unchanged: %s", out);
    free(out);
    cr_assert_eq(n_versions(), 1);
}

Test(config_apply, run_applies_the_configuration_on_start)
{
    write_file("events.jsonc", catalog_v1);
    write_config("strict");
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execl(hx_herald_bin(), "herald", "--store", hx_e2e.url, "run", (char *)NULL);
        _exit(127);
    }
    /* Another process sees the catalog version once `herald run` has applied it. */
    HX_AWAIT(access(hx_e2e.db, F_OK) == 0 && n_versions() == 1);
    char *err = FAIL(1, NULL, "send", "events", "--type", "content.ready", "--source", "sm",
                     "{\"content_id\":\"c1\"}");
    cr_assert(hx_mentions(err, "words"), "%s", err);
    free(err);
    kill(pid, SIGTERM);
    int st = hx_reap(pid, 60000);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "herald run must exit 0 after SIGTERM");
}

/* ---- --config and its default --------------------------------------------------------------- */

Test(config_apply, config_is_a_global_option_defaulting_to_herald_jsonc)
{
    write_file("events.jsonc", catalog_v1);
    write_file("other.jsonc", "{ \"queues\": [ { \"name\": \"other\" } ] }\n");
    /* --config anywhere on the line, before or after the command */
    OKV(NULL, "--config", "other.jsonc", "config", "apply");
    json_t *q = JSON(NULL, "queues", "get", "other", "--json");
    json_decref(q);
    char *err = FAIL(1, NULL, "config", "apply");
    cr_assert(hx_mentions(err, "herald.jsonc"), "without a file it must say which: %s", err);
    free(err);
    write_config("strict");
    OKV(NULL, "config", "apply"); /* ./herald.jsonc */
    cr_assert_eq(n_versions(), 1);
    OKV(NULL, "config", "check", "--config", "other.jsonc");
    err = FAIL(1, NULL, "config", "check", "--config", "missing.jsonc");
    cr_assert(hx_mentions(err, "missing.jsonc"), "%s", err);
    free(err);
}

Test(config_apply, an_event_send_warns_while_the_configured_catalog_is_not_applied)
{
    write_file("events.jsonc", catalog_v1);
    write_config("strict");
    OKV(NULL, "queues", "create", "events");
    char *out = NULL, *err = NULL;
    int rc = RUN(NULL, &out, &err, "send", "events", "--type", "content.ready", "--source", "sm",
                 "{\"content_id\":\"c1\"}");
    cr_assert_eq(rc, 0, "no catalog is in force yet: %s", err);
    cr_assert(hx_mentions(err, "herald.jsonc") && hx_mentions(err, "not applied") &&
                  hx_mentions(err, "config apply"),
              "the send must say the configured catalog is not applied: %s", err);
    free(out);
    free(err);
    OKV(NULL, "config", "apply");
    rc = RUN(NULL, &out, &err, "send", "events", "--type", "content.ready", "--source", "sm",
             "{\"content_id\":\"c1\",\"words\":2}");
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert(!hx_mentions(err, "warning"), "applied: no warning expected: %s", err);
    free(out);
    free(err);
    /* the file changes again: the store keeps its version, and the send says so */
    write_file("events.jsonc", "{ \"events\": { \"content.ready\": { \"payload\": {\n"
                               "  \"content_id\": \"string\", \"words\": \"integer\",\n"
                               "  \"note\": \"string?\", \"lang\": \"string?\" } } } }\n");
    rc = RUN(NULL, &out, &err, "send", "events", "--type", "content.ready", "--source", "sm",
             "{\"content_id\":\"c1\",\"words\":2}");
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert(hx_mentions(err, "version 1"), "%s", err);
    free(out);
    free(err);
}

/* ---- evolution ------------------------------------------------------------------------------ */

Test(config_apply, a_breaking_change_is_refused_naming_each_change_and_nothing_is_applied)
{
    setup_v1();
    /* removes required `words`, changes `content_id` to integer, makes `note` required; and
     * the same file adds a queue: none of it may be applied */
    write_file("events.jsonc",
               "{ \"events\": {\n"
               "  \"content.ready\": { \"payload\": { \"content_id\": \"integer\",\n"
               "                                    \"note\": \"string\" } },\n"
               "  \"brand.created\": { \"payload\": { \"slug\": \"string\" } } } }\n");
    write_file("herald.jsonc",
               "{ \"catalog\": { \"file\": \"events.jsonc\" },\n"
               "  \"queues\": [ { \"name\": \"events\" }, { \"name\": \"new-queue\" } ] }\n");
    char *err = FAIL(1, NULL, "config", "apply");
    cr_assert(hx_mentions(err, "words") && hx_mentions(err, "removed"), "%s", err);
    cr_assert(hx_mentions(err, "content_id") && hx_mentions(err, "from string to integer"), "%s",
              err);
    cr_assert(hx_mentions(err, "note") && hx_mentions(err, "made required"), "%s", err);
    cr_assert(hx_mentions(err, "--force"), "the refusal must say how to apply anyway: %s", err);
    free(err);
    /* nothing of the refused apply happened: no queue, no version; the old catalog binds */
    char *e2 = FAIL(1, NULL, "queues", "get", "new-queue");
    free(e2);
    cr_assert_eq(n_versions(), 1);
    OKV(NULL, "send", "events", "--type", "content.ready", "--source", "sm",
        "{\"content_id\":\"c1\",\"words\":1}");
    /* --force applies it, recorded as forced */
    char *out = OK(NULL, "config", "apply", "--force");
    cr_assert(hx_mentions(out, "version 2"), "%s", out);
    free(out);
    json_t *h = JSON(NULL, "catalog", "history", "--json");
    cr_assert_eq(json_array_size(h), 2);
    json_t *v2 = json_array_get(h, 1);
    cr_assert(hx_json_bool(v2, "forced"));
    cr_assert_eq(json_array_size(json_object_get(v2, "changes")), 3);
    json_decref(h);
    json_t *q = JSON(NULL, "queues", "get", "new-queue", "--json");
    json_decref(q);
    err = FAIL(1, NULL, "send", "events", "--type", "content.ready", "--source", "sm",
               "{\"content_id\":\"c1\",\"words\":1}");
    cr_assert(hx_mentions(err, "content_id"), "the new catalog must bind now: %s", err);
    free(err);
}

Test(config_apply, a_dry_run_reports_and_changes_nothing)
{
    setup_v1();
    write_file("events.jsonc", "{ \"events\": { \"brand.created\": { \"payload\": { \"slug\": "
                               "\"string\" } } } }\n");
    json_t *r = JSON(NULL, "config", "apply", "--dry-run", "--json");
    cr_assert(hx_json_bool(r, "dry_run"));
    json_t *cat = json_object_get(r, "catalog");
    cr_assert(hx_json_bool(cat, "changed"));
    cr_assert_eq(hx_json_int(cat, "breaking"), 0, "the removed type is not in use");
    json_decref(r);
    cr_assert_eq(n_versions(), 1, "a dry run must not store a version");
}

Test(config_apply, compatible_changes_are_applied_and_history_lists_them)
{
    setup_v1();
    write_file("events.jsonc",
               "{ \"events\": {\n"
               "  \"content.ready\": { \"description\": \"ready to publish\",\n"
               "     \"payload\": { \"content_id\": \"string\", \"words\": \"integer\",\n"
               "                    \"note\": \"string?\", \"lang\": \"string?\" } },\n"
               "  \"brand.created\": { \"payload\": { \"slug\": \"string\" } },\n"
               "  \"brand.deleted\": { \"payload\": { \"slug\": \"string\" } } } }\n");
    OKV(NULL, "config", "apply");
    json_t *h = JSON(NULL, "catalog", "history", "--json");
    cr_assert_eq(json_array_size(h), 2);
    json_t *v2 = json_array_get(h, 1);
    cr_assert_eq(hx_json_int(v2, "version"), 2);
    cr_assert(!hx_json_bool(v2, "forced"));
    cr_assert(hx_is_iso8601(hx_json_str(v2, "applied_at")));
    json_t *changes = json_object_get(v2, "changes");
    cr_assert_eq(json_array_size(changes), 3, "description, optional field, new type");
    bool saw_field = false, saw_type = false;
    for (size_t i = 0; i < json_array_size(changes); i++) {
        json_t *c = json_array_get(changes, i);
        const char *kind = hx_json_str(c, "change");
        cr_assert(!hx_json_bool(c, "breaking"), "%s must be compatible", kind);
        saw_field = saw_field || strcmp(kind, "field_added") == 0;
        saw_type = saw_type || strcmp(kind, "type_added") == 0;
    }
    cr_assert(saw_field && saw_type);
    json_decref(h);
    char *out = OK(NULL, "catalog", "history");
    cr_assert(hx_mentions(out, "version 1") && hx_mentions(out, "version 2"), "%s", out);
    cr_assert(hx_mentions(out, "lang"), "history must say what changed: %s", out);
    free(out);
    OKV(NULL, "send", "events", "--type", "brand.deleted", "--source", "sm",
        "{\"slug\":\"acme\"}");
}

Test(config_apply, removing_a_type_still_in_use_is_refused_until_it_is_not)
{
    setup_v1();
    OKV(NULL, "send", "events", "--type", "brand.created", "--source", "sm",
        "{\"slug\":\"acme\"}");
    write_file("events.jsonc", "{ \"events\": { \"content.ready\": { \"payload\": {\n"
                               "  \"content_id\": \"string\", \"words\": \"integer\",\n"
                               "  \"note\": \"string?\" } } } }\n");
    char *err = FAIL(1, NULL, "config", "apply");
    cr_assert(hx_mentions(err, "brand.created") && hx_mentions(err, "in use"), "%s", err);
    cr_assert(hx_mentions(err, "1 message"), "it must say where it is in use: %s", err);
    free(err);
    /* a route of the applied file that names the type keeps it in use too */
    OKV(NULL, "queues", "purge", "events");
    write_file("herald.jsonc",
               "{ \"catalog\": { \"file\": \"events.jsonc\" },\n"
               "  \"queues\": [ { \"name\": \"events\" }, { \"name\": \"audit\" } ],\n"
               "  \"routes\": [ { \"from\": \"events\", \"type\": \"brand.created\",\n"
               "                  \"to\": [\"audit\"] } ] }\n");
    err = FAIL(1, NULL, "config", "apply");
    cr_assert(hx_mentions(err, "route from 'events'"), "%s", err);
    free(err);
    write_config("strict");
    OKV(NULL, "config", "apply");
    cr_assert_eq(n_versions(), 2);
}

Test(config_apply, catalog_diff_marks_the_breaking_changes)
{
    write_file("old.jsonc", catalog_v1);
    write_file("new.jsonc",
               "{ \"events\": {\n"
               "  \"content.ready\": { \"payload\": { \"content_id\": \"string\",\n"
               "       \"words\": \"number\", \"note\": \"string?\", \"tags\": \"string[]?\" } },\n"
               "  \"user.joined\": { \"payload\": { \"id\": \"string\" } } } }\n");
    json_t *d = JSON(NULL, "catalog", "diff", "old.jsonc", "new.jsonc", "--json");
    cr_assert_eq(hx_json_int(d, "breaking"), 1, "only words: integer -> number breaks");
    json_t *changes = json_object_get(d, "changes");
    cr_assert_eq(json_array_size(changes), 4, "removed type, type change, field, new type");
    json_decref(d);
    char *out = OK(NULL, "catalog", "diff", "old.jsonc", "new.jsonc");
    cr_assert(hx_mentions(out, "! event type 'content.ready': field 'words' changed type"),
              "%s", out);
    cr_assert(hx_mentions(out, "+ event type 'user.joined' added"), "%s", out);
    cr_assert(hx_mentions(out, "brand.created' removed (breaking if still in use)"), "%s", out);
    free(out);
    char *err = FAIL(1, NULL, "catalog", "diff", "old.jsonc", "nope.jsonc");
    cr_assert(hx_mentions(err, "nope.jsonc"), "%s", err);
    free(err);
    err = FAIL(2, NULL, "catalog", "diff", "old.jsonc");
    free(err);
}

/* The judgement of each kind of change (catalog_evolve.c's rule), through `catalog diff`. */
Test(config_apply, each_kind_of_change_is_judged_compatible_or_breaking)
{
    write_file("old.jsonc",
               "{ \"events\": { \"a.b\": { \"description\": \"old\", \"payload\": {\n"
               "  \"req_removed\": \"string\", \"opt_removed\": \"string?\",\n"
               "  \"retyped\": \"integer\", \"to_required\": \"string?\",\n"
               "  \"to_optional\": \"string\", \"kept\": \"boolean\" } },\n"
               "  \"gone.type\": { \"payload\": {} } } }\n");
    write_file("new.jsonc",
               "{ \"events\": { \"a.b\": { \"description\": \"new\", \"payload\": {\n"
               "  \"retyped\": \"number\", \"to_required\": \"string\",\n"
               "  \"to_optional\": \"string?\", \"kept\": \"boolean\",\n"
               "  \"opt_added\": \"object?\", \"req_added\": \"string[]\" } },\n"
               "  \"new.type\": { \"payload\": {} } } }\n");
    static const struct {
        const char *change, *subject; /* subject: the field, or the type for type changes */
        bool breaking;
    } want[] = {
        { "field_removed", "req_removed", true },
        { "field_removed", "opt_removed", true },
        { "field_type_changed", "retyped", true },
        { "field_made_required", "to_required", true },
        { "field_made_optional", "to_optional", true },
        { "field_added", "req_added", true },
        { "field_added", "opt_added", false },
        { "description_changed", "a.b", false },
        { "type_removed", "gone.type", false }, /* not in use: no store to use it */
        { "type_added", "new.type", false },
    };
    json_t *d = JSON(NULL, "catalog", "diff", "old.jsonc", "new.jsonc", "--json");
    json_t *changes = json_object_get(d, "changes");
    cr_assert_eq(json_array_size(changes), sizeof want / sizeof want[0], "%zu changes",
                 json_array_size(changes));
    for (size_t w = 0; w < sizeof want / sizeof want[0]; w++) {
        json_t *found = NULL;
        for (size_t i = 0; i < json_array_size(changes) && !found; i++) {
            json_t *c = json_array_get(changes, i);
            json_t *f = json_object_get(c, "field");
            const char *subject = f ? json_string_value(f) : hx_json_str(c, "type");
            if (strcmp(hx_json_str(c, "change"), want[w].change) == 0 &&
                strcmp(subject, want[w].subject) == 0)
                found = c;
        }
        cr_assert_not_null(found, "no %s of %s", want[w].change, want[w].subject);
        cr_assert_eq(hx_json_bool(found, "breaking"), want[w].breaking, "%s of %s: breaking %d",
                     want[w].change, want[w].subject, (int)want[w].breaking);
    }
    cr_assert_eq(hx_json_int(d, "breaking"), 6);
    json_decref(d);
}

/* ---- --json, aliases, the example ----------------------------------------------------------- */

Test(config_apply, config_check_and_catalog_check_honour_json)
{
    write_file("events.jsonc", catalog_v1);
    write_config("strict");
    json_t *j = JSON(NULL, "config", "check", "--json");
    cr_assert(hx_json_bool(j, "valid"));
    cr_assert_str_eq(hx_json_str(j, "config"), "herald.jsonc");
    json_decref(j);
    j = JSON(NULL, "catalog", "check", "events.jsonc", "--json");
    cr_assert(hx_json_bool(j, "valid"));
    cr_assert_eq(hx_json_int(j, "event_types"), 2);
    json_decref(j);
    write_file("bad.jsonc", "{ \"queues\": 3 }\n");
    char *out = NULL, *err = NULL;
    int rc = RUN(NULL, &out, &err, "config", "check", "bad.jsonc", "--json");
    cr_assert_eq(rc, 1);
    j = hx_parse_json(out);
    cr_assert(!hx_json_bool(j, "valid"));
    cr_assert(hx_mentions(hx_json_str(j, "error"), "bad.jsonc:1"), "%s", out);
    json_decref(j);
    free(out);
    free(err);
}

Test(config_apply, retention_is_an_alias_of_message_retention_period)
{
    write_file("herald.jsonc", "{ \"queues\": [ { \"name\": \"a\", \"retention\": 3600 },\n"
                               "  { \"name\": \"b\", \"message_retention_period\": 7200 } ] }\n");
    OKV(NULL, "config", "apply");
    json_t *q = JSON(NULL, "queues", "get", "a", "--json");
    cr_assert_eq(hx_json_int(json_object_get(q, "settings"), "message_retention_period"), 3600);
    json_decref(q);
    write_file("both.jsonc", "{ \"queues\": [ { \"name\": \"a\", \"retention\": 3600,\n"
                             "  \"message_retention_period\": 60 } ] }\n");
    char *err = FAIL(1, NULL, "config", "check", "both.jsonc");
    cr_assert(hx_mentions(err, "not both"), "%s", err);
    free(err);
    /* the CLI: --message-retention-period, and --retention as its other name */
    OKV(NULL, "queues", "create", "c", "--message-retention-period", "7200");
    OKV(NULL, "queues", "create", "d", "--retention", "600");
    q = JSON(NULL, "queues", "get", "c", "--json");
    cr_assert_eq(hx_json_int(json_object_get(q, "settings"), "message_retention_period"), 7200);
    json_decref(q);
    q = JSON(NULL, "queues", "get", "d", "--json");
    cr_assert_eq(hx_json_int(json_object_get(q, "settings"), "message_retention_period"), 600);
    json_decref(q);
    err = FAIL(2, NULL, "queues", "update", "c", "--retention", "600",
               "--message-retention-period", "700");
    cr_assert(hx_mentions(err, "not both"), "%s", err);
    free(err);
}

static const char *repo_root(void)
{
    static char root[4096];
    snprintf(root, sizeof root, "%s", __FILE__);
    char *p = strstr(root, "/tests/e2e/test_config_apply.c");
    cr_assert_not_null(p, "cannot find the repository from %s", __FILE__);
    *p = 0;
    return root;
}

Test(config_apply, the_example_configuration_is_valid_and_applies)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/examples/herald.jsonc", repo_root());
    OKV(NULL, "config", "check", path);
    json_t *r = JSON(NULL, "config", "apply", path, "--json");
    cr_assert_eq(json_array_size(json_object_get(r, "queues_created")), 5);
    cr_assert_eq(hx_json_int(json_object_get(r, "catalog"), "version"), 1);
    json_decref(r);
}
