// SPDX-License-Identifier: MIT
/*
 * cmd_metrics.c - `herald metrics`: the handler metrics in the store (counts and latency
 * quantiles per queue, event type and outcome), written by the routers `herald run` starts, by
 * consumers started with has_metrics and by the metrics middleware.
 */
#include "cli/cli.h"

#include <math.h>
#include <stdio.h>

static const char *const usage_metrics =
    "usage: herald metrics   handler counts and latency (p50/p99 from the histogram) per queue,\n"
    "                        event type and outcome, as recorded by the routers of\n"
    "                        `herald run`, consumers with has_metrics and the metrics\n"
    "                        middleware\n";

int cmd_metrics(const cli_ctx *ctx, int argc, char **argv)
{
    char *pos[4];
    int n_pos = 0;
    bool help = false;
    if (argc > 3)
        return cli_usage(usage_metrics, "too many arguments");
    int rc = cli_parse(argc, argv, NULL, 0, pos, &n_pos, &help);
    if (rc != CLI_OK)
        return rc;
    if (help) {
        fputs(usage_metrics, stdout);
        return CLI_OK;
    }
    if (n_pos != 0)
        return cli_usage(usage_metrics, "metrics: takes no arguments");
    herald_store *s = NULL;
    if ((rc = cli_open(ctx, &s)) != CLI_OK)
        return rc;
    herald_metric *m = NULL;
    size_t n = 0;
    int hrc = herald_metrics_list(s, &m, &n);
    herald_store_close(s);
    if (hrc < 0)
        return cli_fail("metrics", hrc);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *b = json_array();
        for (int k = 0; k < HERALD_METRIC_BUCKETS; k++)
            json_array_append_new(b, json_integer(m[i].buckets[k]));
        double p50 = herald_metric_quantile(&m[i], 0.5), p99 = herald_metric_quantile(&m[i], 0.99);
        json_array_append_new(
            arr, json_pack("{s:s, s:s, s:s, s:I, s:f, s:o, s:o, s:o}", "queue", m[i].queue, "type",
                           m[i].type, "outcome", m[i].outcome, "count", (json_int_t)m[i].count,
                           "mean_ms", m[i].count ? m[i].sum_ms / (double)m[i].count : 0.0,
                           "p50_ms_le", isinf(p50) ? json_null() : json_real(p50), "p99_ms_le",
                           isinf(p99) ? json_null() : json_real(p99), "buckets", b));
    }
    herald_free(m);
    if (ctx->json) {
        cli_print_json(arr);
        return CLI_OK;
    }
    printf("%-20s %-24s %-12s %10s %10s %10s %10s\n", "queue", "type", "outcome", "count",
           "mean ms", "p50 <= ms", "p99 <= ms");
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        json_t *p50 = json_object_get(v, "p50_ms_le"), *p99 = json_object_get(v, "p99_ms_le");
        printf("%-20s %-24s %-12s %10lld %10.2f %10.0f %10.0f\n",
               json_string_value(json_object_get(v, "queue")),
               json_string_value(json_object_get(v, "type")),
               json_string_value(json_object_get(v, "outcome")),
               (long long)json_integer_value(json_object_get(v, "count")),
               json_real_value(json_object_get(v, "mean_ms")),
               json_is_null(p50) ? INFINITY : json_real_value(p50),
               json_is_null(p99) ? INFINITY : json_real_value(p99));
    }
    json_decref(arr);
    return CLI_OK;
}

static const char *const usage_trace =
    "usage: herald trace CORRELATION_ID   every message of a correlation chain - sent, handled\n"
    "                                     by which consumer, retried, dead-lettered - in order\n";

int cmd_trace(const cli_ctx *ctx, int argc, char **argv)
{
    char *pos[4];
    int n_pos = 0;
    bool help = false;
    if (argc > 3)
        return cli_usage(usage_trace, "too many arguments");
    int rc = cli_parse(argc, argv, NULL, 0, pos, &n_pos, &help);
    if (rc != CLI_OK)
        return rc;
    if (help) {
        fputs(usage_trace, stdout);
        return CLI_OK;
    }
    if (n_pos != 1)
        return cli_usage(usage_trace, "trace: needs one CORRELATION_ID");
    herald_store *s = NULL;
    if ((rc = cli_open(ctx, &s)) != CLI_OK)
        return rc;
    herald_trace_entry *t = NULL;
    size_t n = 0;
    int hrc = herald_trace(s, pos[0], &t, &n);
    herald_store_close(s);
    if (hrc < 0)
        return cli_fail("trace", hrc);
    if (n == 0 && !ctx->json) /* not an error: an empty trace, as --json prints [] */
        fprintf(stderr, "herald: trace: nothing recorded for correlation id '%s'\n", pos[0]);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        char ts[40];
        herald__iso8601(t[i].at_ms, ts, sizeof ts);
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:s}", "at",
                                             ts, "what", t[i].what, "queue", t[i].queue,
                                             "message_id", t[i].message_id, "event_id",
                                             t[i].event_id, "type", t[i].type, "handler",
                                             t[i].handler, "attempt", t[i].attempt, "detail",
                                             t[i].detail));
    }
    if (ctx->json) {
        cli_print_json(arr);
    } else {
        for (size_t i = 0; i < n; i++) {
            char ts[40];
            herald__iso8601(t[i].at_ms, ts, sizeof ts);
            printf("%s  %-13s %-20s %-24s %s%s%s%s\n", ts, t[i].what, t[i].queue, t[i].type,
                   t[i].handler[0] ? "by " : "", t[i].handler,
                   t[i].detail[0] ? "  error: " : "", t[i].detail);
        }
        json_decref(arr);
    }
    herald_free(t);
    return CLI_OK;
}
