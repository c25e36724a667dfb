// SPDX-License-Identifier: MIT
/*
 * cmd_catalog_registry.c - the catalog commands other than `gen` (cmd_catalog.c), which treat
 * the catalog as a registry of schema versions:
 *   herald catalog check FILE       is FILE a valid catalog (--json: {"file","valid",...})
 *   herald catalog diff OLD NEW     the changes from OLD to NEW, breaking ones marked, by the
 *                                   rule of src/core/catalog_evolve.c (exit 0 either way; a
 *                                   removed type is breaking only if in use, which only
 *                                   `herald config apply` can tell against a store)
 *   herald catalog history          the versions applied to the store, with time and changes
 */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

#include "core/catalog_evolve.h"

static const char *const usage_registry =
    "usage: herald catalog check FILE        validate a catalog file\n"
    "       herald catalog diff OLD NEW      changes between two catalog files\n"
    "       herald catalog history           catalog versions applied to the store\n"
    "  diff marks each change that breaks compatibility with '!': a field removed, a field's\n"
    "  type changed, an optional field made required or a required one optional, a required\n"
    "  field added; a removed event type is breaking if it is still in use (`herald config\n"
    "  apply` checks that against the store). Added types and optional fields are compatible.\n"
    "  --json: machine output (history: the array of herald_catalog_history).\n";

static const char *mark(json_t *c)
{
    const char *k = json_string_value(json_object_get(c, "change"));
    if (json_is_true(json_object_get(c, "breaking")))
        return "!";
    return k && strstr(k, "added") ? "+" : k && strstr(k, "removed") ? "-" : "~";
}

static void print_changes(json_t *changes)
{
    size_t i;
    json_t *c;
    json_array_foreach(changes, i, c)
    {
        printf("  %s %s%s\n", mark(c), json_string_value(json_object_get(c, "text")),
               json_is_true(json_object_get(c, "breaking_if_in_use"))
                   ? " (breaking if still in use)"
                   : "");
    }
}

static int check(const cli_ctx *ctx, const char *file)
{
    herald_catalog *c = NULL;
    int hrc = herald_catalog_load(file, &c);
    if (ctx->json)
        cli_print_json(hrc < 0 ? json_pack("{s:s,s:b,s:s,s:s}", "file", file, "valid", 0,
                                           "error", herald_last_error(), "code",
                                           herald_err_name(hrc))
                               : json_pack("{s:s,s:b,s:I}", "file", file, "valid", 1,
                                           "event_types", (json_int_t)herald_catalog_count(c)));
    if (hrc < 0)
        return cli_fail("catalog check", hrc);
    if (!ctx->json)
        printf("%s: %zu event types, valid\n", file, herald_catalog_count(c));
    herald_catalog_free(c);
    return CLI_OK;
}

static int diff(const cli_ctx *ctx, const char *old_file, const char *new_file)
{
    char *old_text = NULL, *new_text = NULL;
    int hrc = herald__catalog_canonical_file(old_file, &old_text, NULL);
    if (hrc == 0)
        hrc = herald__catalog_canonical_file(new_file, &new_text, NULL);
    json_t *changes = NULL;
    if (hrc == 0)
        hrc = herald__catalog_diff(old_text, new_text, &changes);
    herald__free(old_text);
    herald__free(new_text);
    if (hrc < 0)
        return cli_fail("catalog diff", hrc);
    size_t n_breaking = herald__catalog_n_breaking(changes);
    if (ctx->json) {
        cli_print_json(json_pack("{s:s,s:s,s:O,s:I}", "old", old_file, "new", new_file,
                                 "changes", changes, "breaking", (json_int_t)n_breaking));
    } else {
        printf("%s -> %s: %zu change%s, %zu breaking\n", old_file, new_file,
               json_array_size(changes), json_array_size(changes) == 1 ? "" : "s", n_breaking);
        print_changes(changes);
    }
    json_decref(changes);
    return CLI_OK;
}

static int history(const cli_ctx *ctx)
{
    herald_store *s = NULL;
    int rc = cli_open(ctx, &s);
    if (rc != CLI_OK)
        return rc;
    char *text = NULL;
    int hrc = herald_catalog_history(s, &text);
    herald_store_close(s);
    if (hrc < 0)
        return cli_fail("catalog history", hrc);
    if (ctx->json) {
        puts(text);
        herald_free(text);
        return CLI_OK;
    }
    json_t *versions = json_loads(text, 0, NULL);
    herald_free(text);
    if (json_array_size(versions) == 0)
        printf("no catalog has been applied to this store (herald config apply)\n");
    size_t i;
    json_t *v;
    json_array_foreach(versions, i, v)
    {
        printf("version %lld  %s  %s  %lld event types  from %s%s%s\n",
               (long long)json_integer_value(json_object_get(v, "version")),
               json_string_value(json_object_get(v, "applied_at")),
               json_string_value(json_object_get(v, "mode")),
               (long long)json_integer_value(json_object_get(v, "event_types")),
               json_string_value(json_object_get(v, "source")),
               json_is_true(json_object_get(v, "forced")) ? "  (forced)" : "",
               i + 1 == json_array_size(versions) ? "  (in force)" : "");
        print_changes(json_object_get(v, "changes"));
    }
    json_decref(versions);
    return CLI_OK;
}

int cmd_catalog_registry(const cli_ctx *ctx, int argc, char **argv)
{
    char *pos[8];
    int n_pos = 0;
    bool help = false;
    if (argc > 7)
        return cli_usage(usage_registry, "too many arguments");
    int rc = cli_parse(argc, argv, NULL, 0, pos, &n_pos, &help);
    if (rc != CLI_OK)
        return rc;
    if (help) {
        fputs(usage_registry, stdout);
        return CLI_OK;
    }
    if (n_pos == 2 && strcmp(pos[0], "check") == 0)
        return check(ctx, pos[1]);
    if (n_pos == 3 && strcmp(pos[0], "diff") == 0)
        return diff(ctx, pos[1], pos[2]);
    if (n_pos == 1 && strcmp(pos[0], "history") == 0)
        return history(ctx);
    return cli_usage(usage_registry, "catalog %s: expected %s", n_pos ? pos[0] : "",
                     n_pos && strcmp(pos[0], "diff") == 0      ? "diff OLD NEW"
                     : n_pos && strcmp(pos[0], "history") == 0 ? "history (no arguments)"
                                                               : "check FILE");
}
