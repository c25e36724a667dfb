// SPDX-License-Identifier: MIT
/*
 * main.c - the `herald` command: global options (accepted anywhere), dispatch to the command
 * handlers (`herald queues create`, `herald send`, `herald dlq redrive`, ... - nouns with verbs
 * where a noun has several, the Cloudflare wrangler shape), and the helpers they share (cli.h).
 */
#include "cli/cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const usage_main =
    "usage: herald [--store URL] [--config FILE] [--json] [--durability full|normal] COMMAND ...\n"
    "\n"
    "Queues:\n"
    "  queues create NAME [--max-retries N] [--retry-delay S] [--dead-letter-queue DLQ]\n"
    "                     [--delivery-delay S] [--max-message-bytes N]\n"
    "                     [--message-retention-period S]   (alias: --retention S)\n"
    "  queues update NAME [same options as create]\n"
    "  queues list | get NAME | delete NAME | purge NAME | pause NAME | resume NAME\n"
    "  queues stats NAME\n"
    "Messages:\n"
    "  send NAME [--delay S] [--content-type json|text|bytes] BODY   (BODY - = stdin)\n"
    "  send-batch NAME [--delay S] [--content-type T]   one body per stdin line (<= 100)\n"
    "  pull NAME [--batch N] [--visibility-timeout S]\n"
    "  ack NAME LEASE_ID...\n"
    "  retry NAME LEASE_ID... [--delay S]\n"
    "  peek NAME [--batch N]\n"
    "  send NAME --type T --source S [--correlation-id C] PAYLOAD   an event (envelope)\n"
    "Dead letters:\n"
    "  dlq list [DLQ] | show DLQ ID | audit [DLQ]\n"
    "  dlq redrive DLQ [--id ID]... [--to Q] [--set PATH=VALUE]... [--patch JSON] [--rate N/s]\n"
    "Topics (fan-out in one transaction):\n"
    "  topics subscribe TOPIC QUEUE | unsubscribe TOPIC QUEUE | list\n"
    "  publish TOPIC [--delay S] [--content-type T] BODY   (or --type/--source: an event)\n"
    "Runtime:\n"
    "  run                     applies herald.jsonc to the store, then runs its fan-out\n"
    "                          routes until SIGINT/SIGTERM\n"
    "  config check [FILE]     check a configuration without applying it\n"
    "  config apply [FILE] [--force] [--dry-run]   queues, topics and catalog to the store\n"
    "Event catalog:\n"
    "  catalog gen FILE [-o OUT] [--guard NAME]   typed C header from a catalog\n"
    "  catalog check FILE\n"
    "  catalog diff OLD NEW    changes between two catalog files, breaking ones marked\n"
    "  catalog history         the catalog versions applied to the store\n"
    "  send/publish ... --catalog FILE [--catalog-mode strict|warn]   check events first\n"
    "Observability:\n"
    "  metrics                 handler counts and latency: routers, consumers with metrics\n"
    "  trace CORRELATION_ID    a whole chain of messages in time order\n"
    "Other:\n"
    "  bench queue [--messages N] [--durability normal] [--w3-seconds S] [--w3-rate N]\n"
    "  bench eo [--messages N] [--concurrency N]   effectively-once handler benchmark\n"
    "  bench stats [--sizes N,N,...] [--calls N]   queue stats cost at growing backlogs\n"
    "  version [--json]\n"
    "\n"
    "Global options:\n"
    "  --store URL        store to use (default $HERALD_STORE, else sqlite:herald.db);\n"
    "                     sqlite:PATH[?durability=full|normal]\n"
    "  --config FILE      configuration (default ./herald.jsonc when it exists): run,\n"
    "                     config check, config apply; send/publish of an event warn when\n"
    "                     its catalog is not the one applied to the store\n"
    "  --json             machine-readable output\n"
    "  --durability MODE  full (default: fsync per commit group) or normal\n"
    "Exit codes: 0 ok, 1 failed, 2 usage (also an option value out of its range).\n"
    "Every command takes --help.\n";

int cli_usage(const char *usage, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("herald: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (usage)
        fputs(usage, stderr);
    return CLI_USAGE;
}

int cli_fail(const char *what, int rc)
{
    fprintf(stderr, "herald: %s: %s (%s)\n", what, herald_last_error(), herald_err_name(rc));
    return CLI_FAIL;
}

const char *cli_opt_get(const cli_opt *opts, int n_opts, const char *name)
{
    for (int i = 0; i < n_opts; i++)
        if (strcmp(opts[i].name, name) == 0)
            return opts[i].value;
    return NULL;
}

int cli_parse(int argc, char **argv, cli_opt *opts, int n_opts, char **pos, int *n_pos,
              bool *help)
{
    *n_pos = 0;
    *help = false;
    bool only_pos = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || strcmp(a, "-") == 0) {
            pos[(*n_pos)++] = argv[i];
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = true;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            *help = true;
            continue;
        }
        if (strncmp(a, "--", 2) != 0)
            return cli_usage(NULL, "unknown option '%s'", a);
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        cli_opt *o = NULL;
        for (int k = 0; k < n_opts; k++)
            if (strlen(opts[k].name) == nlen && strncmp(opts[k].name, name, nlen) == 0)
                o = &opts[k];
        if (!o)
            return cli_usage(NULL, "unknown option '--%.*s' (see --help)", (int)nlen, name);
        if (!o->has_value) {
            if (eq)
                return cli_usage(NULL, "option '--%s' takes no value", o->name);
            o->value = "1";
        } else if (eq) {
            o->value = eq + 1;
        } else if (i + 1 < argc) {
            o->value = argv[++i];
        } else {
            return cli_usage(NULL, "option '--%s' needs a value", o->name);
        }
    }
    return CLI_OK;
}

int cli_int(const char *opt_name, const char *s, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || !end || end == s || *end)
        return cli_usage(NULL, "option '--%s' needs an integer, got '%s'", opt_name, s);
    *out = v;
    return CLI_OK;
}

int cli_int_range(const char *opt_name, const char *s, int64_t lo, int64_t hi, const char *unit,
                  int64_t *out)
{
    int64_t v;
    if (cli_int(opt_name, s, &v) != CLI_OK)
        return CLI_USAGE;
    if (v < lo || v > hi)
        return cli_usage(NULL, "option '--%s' is %lld%s%s: it must be %lld..%lld%s%s", opt_name,
                         (long long)v, *unit ? " " : "", unit, (long long)lo, (long long)hi,
                         *unit ? " " : "", unit);
    *out = v;
    return CLI_OK;
}

int cli_open(const cli_ctx *ctx, herald_store **out)
{
    herald_store_cfg cfg = { 0 };
    cfg.durability = ctx->durability;
    cfg.durability_set = ctx->durability_set;
    int rc = herald_store_open(ctx->store_url, &cfg, out);
    if (rc < 0) {
        fprintf(stderr, "herald: cannot open store: %s (%s)\n", herald_last_error(),
                herald_err_name(rc));
        return CLI_FAIL;
    }
    return CLI_OK;
}

void cli_print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    if (s) {
        puts(s);
        free(s);
    }
    json_decref(j);
}

static int cmd_version(const cli_ctx *ctx, int argc, char **argv)
{
    static const char *const usage = "usage: herald version [--json]\n"
                                     "  Prints Herald's version; --json: {\"version\":\"X.Y.Z\"}.\n";
    if (argc > 0 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
        fputs(usage, stdout);
        return CLI_OK;
    }
    if (argc > 0)
        return cli_usage(usage, "version: unexpected argument '%s'", argv[0]);
    if (ctx->json)
        cli_print_json(json_pack("{s:s}", "version", herald_version()));
    else
        printf("herald %s\n", herald_version());
    return CLI_OK;
}

typedef struct command {
    const char *name;
    int (*run)(const cli_ctx *ctx, int argc, char **argv);
} command;

static const command commands[] = {
    { "queues", cmd_queues }, { "send", cmd_send }, { "send-batch", cmd_send_batch },
    { "pull", cmd_pull },     { "peek", cmd_peek }, { "ack", cmd_ack },
    { "retry", cmd_retry },   { "bench", cmd_bench },
    { "topics", cmd_topics }, { "publish", cmd_publish }, { "catalog", cmd_catalog },
    { "run", cmd_run },       { "config", cmd_config }, { "dlq", cmd_dlq },
    { "metrics", cmd_metrics }, { "trace", cmd_trace },
};

int main(int argc, char **argv)
{
    cli_ctx ctx = { 0 };
    ctx.store_url = getenv("HERALD_STORE");
    ctx.store_given = ctx.store_url && *ctx.store_url;
    if (!ctx.store_given)
        ctx.store_url = "sqlite:herald.db";
    /* Global options may appear anywhere: take them out first. */
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    if (!rest)
        return CLI_FAIL;
    int n = 0;
    bool help = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--json") == 0) {
            ctx.json = true;
        } else if (strcmp(a, "--store") == 0 || strncmp(a, "--store=", 8) == 0 ||
                   strcmp(a, "--config") == 0 || strncmp(a, "--config=", 9) == 0 ||
                   strcmp(a, "--durability") == 0 || strncmp(a, "--durability=", 13) == 0) {
            bool is_store = a[2] == 's', is_config = a[2] == 'c';
            const char *v = strchr(a, '=');
            if (v) {
                v++;
            } else if (i + 1 < argc) {
                v = argv[++i];
            } else {
                free(rest);
                return cli_usage(usage_main, "option '%s' needs a value", a);
            }
            if (is_store) {
                ctx.store_url = v;
                ctx.store_given = true;
            } else if (is_config) {
                ctx.config_path = v;
            } else if (strcmp(v, "full") == 0 || strcmp(v, "normal") == 0) {
                ctx.durability_set = true;
                ctx.durability = v[0] == 'f' ? HERALD_DURABILITY_FULL : HERALD_DURABILITY_NORMAL;
            } else {
                free(rest);
                return cli_usage(NULL, "--durability must be full or normal, got '%s'", v);
            }
        } else if (n == 0 && (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)) {
            help = true;
        } else {
            rest[n++] = argv[i];
        }
    }
    int rc;
    if (n == 0) {
        if (help) {
            fputs(usage_main, stdout);
            rc = CLI_OK;
        } else {
            rc = cli_usage(usage_main, "missing command");
        }
    } else if (strcmp(rest[0], "version") == 0 || strcmp(rest[0], "--version") == 0) {
        rc = cmd_version(&ctx, n - 1, rest + 1);
    } else if (strcmp(rest[0], "help") == 0) {
        fputs(usage_main, stdout);
        rc = CLI_OK;
    } else {
        rc = -1;
        for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
            if (strcmp(rest[0], commands[i].name) == 0)
                rc = commands[i].run(&ctx, n - 1, rest + 1);
        if (rc == -1)
            rc = cli_usage(usage_main, "unknown command '%s'", rest[0]);
    }
    free(rest);
    return rc;
}
