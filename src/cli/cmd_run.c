// SPDX-License-Identifier: MIT
/*
 * cmd_run.c - `herald [--config FILE] run`: applies a configuration to the store (queues,
 * topics, catalog: herald_runtime_start) and runs its fan-out routers until SIGINT or SIGTERM,
 * then drains in-flight batches and exits 0. `herald config ...`: cmd_config.c.
 * Signals are blocked in every thread and taken with sigwait() by the main thread.
 */
#include "cli/cli.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *const usage_run =
    "usage: herald [--config FILE] run\n"
    "  Applies the configuration (--config FILE, default ./herald.jsonc) to the store - its\n"
    "  queues, topic subscriptions and event catalog, in one transaction, as `herald config\n"
    "  apply` does (a breaking catalog change is refused: apply it with `herald config apply\n"
    "  --force` first) - then runs its fan-out routes until SIGINT/SIGTERM, finishes in-flight\n"
    "  batches and exits 0.\n";

int cmd_run(const cli_ctx *ctx, int argc, char **argv)
{
    char *pos[4];
    int n_pos = 0;
    bool help = false;
    if (argc > 3)
        return cli_usage(usage_run, "too many arguments");
    int rc = cli_parse(argc, argv, NULL, 0, pos, &n_pos, &help);
    if (rc != CLI_OK)
        return rc;
    if (help) {
        fputs(usage_run, stdout);
        return CLI_OK;
    }
    if (n_pos != 0)
        return cli_usage(usage_run, "run: unexpected argument '%s'", pos[0]);
    const char *path = cli_config_path(ctx, NULL);
    if (!path) {
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
    int64_t version = 0;
    herald_catalog_mode mode = HERALD_CATALOG_STRICT;
    char cat[80] = "no event catalog";
    if (herald_store_catalog_get(s, &version, &mode, NULL) == 0 && version > 0)
        snprintf(cat, sizeof cat, "event catalog version %lld in force, %s", (long long)version,
                 mode == HERALD_CATALOG_WARN ? "warn" : "strict");
    fprintf(stderr, "herald: running %s on %s (%s); SIGINT or SIGTERM stops\n", path,
            ctx->store_url, cat);
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
