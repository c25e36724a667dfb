// SPDX-License-Identifier: MIT
/*
 * cli.h - shared pieces of the `herald` command: global options, argument parsing, output.
 * Exit codes: 0 ok, 1 failed (message on stderr), 2 usage.
 */
#ifndef HERALD_CLI_CLI_H
#define HERALD_CLI_CLI_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/core.h" /* the CLI is linked with the library: its text helpers too */
#include "herald.h"

#define CLI_OK 0
#define CLI_FAIL 1
#define CLI_USAGE 2

typedef struct cli_ctx {
    const char *store_url;
    bool store_given; /* --store or $HERALD_STORE, not the default */
    const char *config_path; /* --config FILE; NULL: not given (see cli_config_path) */
    bool json;
    bool durability_set;
    herald_durability durability;
} cli_ctx;

/* One option of a command: "--name VALUE" or "--name=VALUE" (has_value), or a flag. */
typedef struct cli_opt {
    const char *name;
    bool has_value;
    const char *value; /* out: NULL if not given; "1" for a given flag */
} cli_opt;

/* Parses args into opts and positionals (pos must have room for argc). Unknown options and
 * missing values print a usage error naming them and return CLI_USAGE; -h/--help sets *help. */
int cli_parse(int argc, char **argv, cli_opt *opts, int n_opts, char **pos, int *n_pos,
              bool *help);
const char *cli_opt_get(const cli_opt *opts, int n_opts, const char *name);
/* Strict integer parse of an option value; usage error naming the option on failure. */
int cli_int(const char *opt_name, const char *s, int64_t *out);
/* cli_int, then lo <= value <= hi: out of range is a usage error (exit 2) that states the value
 * given and the range (`unit` e.g. "s", "" for none). */
int cli_int_range(const char *opt_name, const char *s, int64_t lo, int64_t hi, const char *unit,
                  int64_t *out);

int cli_open(const cli_ctx *ctx, herald_store **out);
/* The configuration a command reads: `given` (a FILE argument) if not NULL, else --config, else
 * ./herald.jsonc when it exists; NULL when none (cmd_config.c). */
const char *cli_config_path(const cli_ctx *ctx, const char *given);
/* Before an event is sent: a warning on stderr when that configuration names a catalog that is
 * not the one in force in the store s (it was not applied). Changes nothing. */
void cli_config_catalog_notice(const cli_ctx *ctx, herald_store *s);
/* Prints "herald: <what>: <last error>" to stderr; returns CLI_FAIL. */
int cli_fail(const char *what, int rc);
int cli_usage(const char *usage, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints j (compact, one line) to stdout and decrefs it. */
void cli_print_json(json_t *j);

int cmd_queues(const cli_ctx *ctx, int argc, char **argv);
int cmd_send(const cli_ctx *ctx, int argc, char **argv);
int cmd_publish(const cli_ctx *ctx, int argc, char **argv);
int cmd_topics(const cli_ctx *ctx, int argc, char **argv);
int cmd_catalog(const cli_ctx *ctx, int argc, char **argv);
int cmd_catalog_registry(const cli_ctx *ctx, int argc, char **argv); /* check, diff, history */
int cmd_run(const cli_ctx *ctx, int argc, char **argv);
int cmd_dlq(const cli_ctx *ctx, int argc, char **argv);
int cmd_metrics(const cli_ctx *ctx, int argc, char **argv);
int cmd_trace(const cli_ctx *ctx, int argc, char **argv);
int cmd_config(const cli_ctx *ctx, int argc, char **argv);
int cmd_send_batch(const cli_ctx *ctx, int argc, char **argv);
int cmd_pull(const cli_ctx *ctx, int argc, char **argv);
int cmd_peek(const cli_ctx *ctx, int argc, char **argv);
int cmd_ack(const cli_ctx *ctx, int argc, char **argv);
int cmd_retry(const cli_ctx *ctx, int argc, char **argv);
int cmd_bench(const cli_ctx *ctx, int argc, char **argv);

#endif
