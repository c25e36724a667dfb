// SPDX-License-Identifier: MIT
/*
 * cmd_config.c - `herald config check [FILE]` (checks, changes nothing) and `herald config apply
 * [FILE] [--force] [--dry-run]` (writes the queues, topic subscriptions and event catalog the
 * file declares to the store, in one transaction: herald_config_apply). FILE defaults to the
 * global --config, else ./herald.jsonc (cli_config_path, shared with `herald run`).
 * A refused apply (a breaking catalog change) exits 1 and lists each breaking change on its own
 * line, from a dry run of the same file. cli_config_catalog_notice: `send`/`publish` of an
 * event warn when the configuration names a catalog the store does not have in force (events
 * are checked against the store's; the notice says the file was not applied).
 */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/runtime.h"

static const char *const usage_config =
    "usage: herald config check [FILE]\n"
    "       herald config apply [FILE] [--force] [--dry-run]\n"
    "  FILE: the configuration (default: the global --config FILE, else ./herald.jsonc).\n"
    "  check  checks the file without changing anything. Queues it names but does not\n"
    "         configure are looked up in the store only when one is given (--store or\n"
    "         $HERALD_STORE). --json: {\"config\":FILE,\"valid\":true|false,...}.\n"
    "  apply  writes what the file declares to the store, in one transaction: creates its\n"
    "         queues (updates the settings it gives for existing ones), adds its topic\n"
    "         subscriptions, and stores its event catalog as a new version when it changed.\n"
    "         From then on every producer on the store, in any process, is checked against\n"
    "         that catalog. A change that breaks compatibility (a field removed, a field's\n"
    "         type changed, an optional field made required, a required one optional or\n"
    "         added, an event type removed while in use) is refused, naming each one, and\n"
    "         nothing is changed; --force applies it anyway. --dry-run reports what would\n"
    "         change and changes nothing. --json: the report of herald_config_apply.\n";

const char *cli_config_path(const cli_ctx *ctx, const char *given)
{
    if (given)
        return given;
    if (ctx->config_path)
        return ctx->config_path;
    return access("herald.jsonc", F_OK) == 0 ? "herald.jsonc" : NULL;
}

void cli_config_catalog_notice(const cli_ctx *ctx, herald_store *s)
{
    const char *path = cli_config_path(ctx, NULL);
    if (!path)
        return;
    char why[160] = "";
    int rc = herald__config_catalog_pending(s, path, why, sizeof why);
    if (rc < 0)
        fprintf(stderr, "herald: warning: cannot read the catalog of %s: %s\n", path,
                herald_last_error());
    else if (rc > 0)
        fprintf(stderr, "herald: warning: %s names a catalog that is not applied (%s): the "
                        "event is checked against the store's; `herald config apply` applies "
                        "it\n",
                path, why);
    herald__err_clear();
}

static int config_check(const cli_ctx *ctx, const char *path)
{
    herald_store *s = NULL; /* no store named: do not create the default one to check a file */
    int rc;
    if (ctx->store_given && (rc = cli_open(ctx, &s)) != CLI_OK)
        return rc;
    int hrc = herald_config_check(s, path);
    herald_store_close(s);
    if (ctx->json)
        cli_print_json(hrc < 0 ? json_pack("{s:s,s:b,s:s,s:s}", "config", path, "valid", 0,
                                           "error", herald_last_error(), "code",
                                           herald_err_name(hrc))
                               : json_pack("{s:s,s:b}", "config", path, "valid", 1));
    if (hrc < 0)
        return cli_fail("config check", hrc);
    if (!ctx->json)
        printf("%s: valid\n", path);
    return CLI_OK;
}

static const char *change_mark(json_t *c)
{
    const char *k = json_string_value(json_object_get(c, "change"));
    if (json_is_true(json_object_get(c, "breaking")))
        return "!";
    return k && strstr(k, "added") ? "+" : k && strstr(k, "removed") ? "-" : "~";
}

static void print_report(json_t *r, const char *store_url)
{
    bool dry = json_is_true(json_object_get(r, "dry_run"));
    json_t *created = json_object_get(r, "queues_created");
    json_t *updated = json_object_get(r, "queues_updated");
    json_t *topics = json_object_get(r, "topics");
    size_t n_subs = 0;
    const char *t;
    json_t *v;
    json_object_foreach(topics, t, v)
    {
        n_subs += json_array_size(v);
    }
    printf("%s %s to %s: %zu queue%s created, %zu updated, %zu topic subscription%s\n",
           dry ? "would apply" : "applied", json_string_value(json_object_get(r, "config")),
           store_url, json_array_size(created), json_array_size(created) == 1 ? "" : "s",
           json_array_size(updated), n_subs, n_subs == 1 ? "" : "s");
    json_t *cat = json_object_get(r, "catalog");
    if (!json_is_object(cat))
        return;
    json_int_t prev = json_integer_value(json_object_get(cat, "previous_version"));
    json_int_t ver = json_integer_value(json_object_get(cat, "version"));
    json_t *changes = json_object_get(cat, "changes");
    if (!json_is_true(json_object_get(cat, "changed")))
        printf("catalog %s: unchanged (version %lld in force)\n",
               json_string_value(json_object_get(cat, "file")), (long long)ver);
    else if (dry)
        printf("catalog %s: would become version %lld (in force: %lld), %zu change%s, %lld "
               "breaking\n",
               json_string_value(json_object_get(cat, "file")), (long long)prev + 1,
               (long long)prev, json_array_size(changes),
               json_array_size(changes) == 1 ? "" : "s",
               (long long)json_integer_value(json_object_get(cat, "breaking")));
    else
        printf("catalog %s: version %lld in force (was %lld), %zu change%s%s\n",
               json_string_value(json_object_get(cat, "file")), (long long)ver, (long long)prev,
               json_array_size(changes), json_array_size(changes) == 1 ? "" : "s",
               json_is_true(json_object_get(cat, "forced")) ? ", breaking ones forced" : "");
    size_t i;
    json_t *c;
    json_array_foreach(changes, i, c)
    {
        printf("  %s %s\n", change_mark(c), json_string_value(json_object_get(c, "text")));
    }
}

/* After a refusal: the breaking changes, one per line, from a dry run (it changes nothing). */
static void print_breaking(herald_store *s, const char *path)
{
    char *text = NULL;
    if (herald_config_apply(s, path, HERALD_CONFIG_DRY_RUN, &text) < 0)
        return;
    json_t *r = json_loads(text, 0, NULL);
    herald_free(text);
    json_t *changes = json_object_get(json_object_get(r, "catalog"), "changes");
    size_t i;
    json_t *c;
    json_array_foreach(changes, i, c)
    {
        if (json_is_true(json_object_get(c, "breaking")))
            fprintf(stderr, "herald: breaking: %s\n",
                    json_string_value(json_object_get(c, "text")));
    }
    json_decref(r);
}

static int config_apply(const cli_ctx *ctx, const char *path, bool force, bool dry_run)
{
    herald_store *s = NULL;
    int rc = cli_open(ctx, &s);
    if (rc != CLI_OK)
        return rc;
    unsigned flags = (force ? HERALD_CONFIG_FORCE : 0u) | (dry_run ? HERALD_CONFIG_DRY_RUN : 0u);
    char *text = NULL;
    int hrc = herald_config_apply(s, path, flags, &text);
    if (hrc < 0) {
        rc = cli_fail("config apply", hrc);
        if (hrc == HERALD_ECATALOG)
            print_breaking(s, path);
        herald_store_close(s);
        return rc;
    }
    herald_store_close(s);
    if (ctx->json) {
        puts(text);
    } else {
        json_t *r = json_loads(text, 0, NULL);
        print_report(r, ctx->store_url);
        json_decref(r);
    }
    herald_free(text);
    return CLI_OK;
}

int cmd_config(const cli_ctx *ctx, int argc, char **argv)
{
    cli_opt opts[] = { { "force", false, NULL }, { "dry-run", false, NULL } };
    char *pos[8];
    int n_pos = 0;
    bool help = false;
    if (argc > 6)
        return cli_usage(usage_config, "too many arguments");
    int rc = cli_parse(argc, argv, opts, 2, pos, &n_pos, &help);
    if (rc != CLI_OK)
        return rc;
    if (help) {
        fputs(usage_config, stdout);
        return CLI_OK;
    }
    bool is_check = n_pos >= 1 && strcmp(pos[0], "check") == 0;
    bool is_apply = n_pos >= 1 && strcmp(pos[0], "apply") == 0;
    if ((!is_check && !is_apply) || n_pos > 2)
        return cli_usage(usage_config, "config: expected 'check [FILE]' or 'apply [FILE]'");
    if (is_check && (opts[0].value || opts[1].value))
        return cli_usage(usage_config, "config check: --force and --dry-run are for apply");
    const char *path = cli_config_path(ctx, n_pos == 2 ? pos[1] : NULL);
    if (!path) {
        fprintf(stderr, "herald: config %s: no configuration: ./herald.jsonc does not exist "
                        "(give FILE or --config FILE)\n",
                pos[0]);
        return CLI_FAIL;
    }
    return is_check ? config_check(ctx, path)
                    : config_apply(ctx, path, opts[0].value != NULL, opts[1].value != NULL);
}
