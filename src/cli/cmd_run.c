// SPDX-License-Identifier: MIT
/*
 * cmd_run.c - `herald run [--config FILE]`: runs the runtime of a configuration (queues,
 * topics, catalog, fan-out routers) until SIGINT or SIGTERM, then drains in-flight batches and
 * exits 0. `herald config check [FILE]` checks a configuration without applying it.
 * Signals are blocked in every thread and taken with sigwait() by the main thread.
 */
#include "cli/cli.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *const usage_run =
    "usage: herald run [--config FILE]\n"
    "  Applies the configuration (default ./herald.jsonc): creates its queues, subscribes its\n"
    "  topics, installs its event catalog and runs its fan-out routes until SIGINT/SIGTERM,\n"
    "  then finishes in-flight batches and exits 0.\n";
static const char *const usage_config =
    "usage: herald config check [FILE]   (default ./herald.jsonc)\n"
    "  Checks the file without changing anything. Queues it names but does not configure are\n"
    "  looked up in the store only when one is given (--store or $HERALD_STORE).\n";

static const char *config_path(const char *given, bool *missing)
{
    *missing = false;
    if (given)
        return given;
    if (access("herald.jsonc", F_OK) == 0)
        return "herald.jsonc";
    *missing = true;
    return NULL;
}

int cmd_run(const cli_ctx *ctx, int argc, char **argv)
{
    cli_opt opts[] = { { "config", true, NULL } };
    char *pos[4];
    int n_pos = 0;
    bool help = false;
    if (argc > 3)
        return cli_usage(usage_run, "too many arguments");
    int rc = cli_parse(argc, argv, opts, 1, pos, &n_pos, &help);
    if (rc != CLI_OK)
        return rc;
    if (help) {
        fputs(usage_run, stdout);
        return CLI_OK;
    }
    if (n_pos != 0)
        return cli_usage(usage_run, "run: unexpected argument '%s'", pos[0]);
    bool missing;
    const char *path = config_path(opts[0].value, &missing);
    if (missing) {
        fprintf(stderr, "herald: run: no configuration: ./herald.jsonc does not exist (give "
                        "--config FILE)\n");
        return CLI_FAIL;
    }
    /* Block the signals before any thread exists, so that every thread inherits the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    herald_store *s = NULL;
    if ((rc = cli_open(ctx, &s)) != CLI_OK)
        return rc;
    herald_runtime *rt = NULL;
    int hrc = herald_runtime_start(s, path, &rt);
    if (hrc < 0) {
        rc = cli_fail("run", hrc);
        herald_store_close(s);
        return rc;
    }
    fprintf(stderr, "herald: running %s on %s; SIGINT or SIGTERM stops\n", path, ctx->store_url);
    int sig = 0;
    sigwait(&set, &sig);
    /* A second SIGINT/SIGTERM while draining ends the process at once (default action): what
     * is stored is crash-safe, and an operator must be able to stop a drain that hangs. */
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    int64_t routed = 0, unrouted = 0;
    herald_runtime_counts(rt, &routed, &unrouted);
    fprintf(stderr,
            "herald: %s after routing %lld (unrouted %lld): finishing in-flight batches; "
            "signal again to exit now\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM", (long long)routed, (long long)unrouted);
    herald_runtime_stop(rt);
    herald_store_close(s);
    fprintf(stderr, "herald: stopped\n");
    return CLI_OK;
}

int cmd_config(const cli_ctx *ctx, int argc, char **argv)
{
    char *pos[4];
    int n_pos = 0;
    bool help = false;
    if (argc > 3)
        return cli_usage(usage_config, "too many arguments");
    int rc = cli_parse(argc, argv, NULL, 0, pos, &n_pos, &help);
    if (rc != CLI_OK)
        return rc;
    if (help) {
        fputs(usage_config, stdout);
        return CLI_OK;
    }
    if (n_pos < 1 || strcmp(pos[0], "check") != 0 || n_pos > 2)
        return cli_usage(usage_config, "config: expected 'check [FILE]'");
    bool missing;
    const char *path = config_path(n_pos == 2 ? pos[1] : NULL, &missing);
    if (missing) {
        fprintf(stderr, "herald: config check: ./herald.jsonc does not exist\n");
        return CLI_FAIL;
    }
    herald_store *s = NULL; /* no store named: do not create the default one to check a file */
    if (ctx->store_given && (rc = cli_open(ctx, &s)) != CLI_OK)
        return rc;
    int hrc = herald_config_check(s, path);
    herald_store_close(s);
    if (hrc < 0)
        return cli_fail("config check", hrc);
    printf("%s: valid\n", path);
    return CLI_OK;
}
