// SPDX-License-Identifier: MIT
/*
 * cmd_dlq.c - `herald dlq list [DLQ] | show DLQ ID | redrive DLQ ... | audit [DLQ]`.
 */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const usage_dlq =
    "usage: herald dlq list [DLQ]           dead-letter queues, or the messages of one\n"
    "       herald dlq show DLQ MESSAGE_ID  a dead letter with the error of every attempt\n"
    "       herald dlq redrive DLQ [--id ID]... [--max N] [--to QUEUE]\n"
    "                          [--set PATH=VALUE]... [--patch JSON] [--rate N/s] [--by WHO]\n"
    "           moves dead letters back to their source queue (or QUEUE), optionally edited\n"
    "           (--set payload.field=value, or an RFC 7386 merge patch), N per second at most,\n"
    "           each recorded in the audit. An edit that breaks any body moves nothing.\n"
    "       herald dlq audit [DLQ]          who redrove what, when, with which edit\n";

static json_t *dead_json(const herald_message *m)
{
    herald_envelope env;
    bool is_env = m->content_type == HERALD_CONTENT_JSON &&
                  herald_envelope_parse(m->body, m->body_len, &env) == 0;
    json_t *o = json_pack("{s:s, s:s, s:i, s:s, s:I}", "id", m->id, "dead_from_queue",
                          m->dead_from_queue, "dead_attempts", m->dead_attempts, "last_error",
                          m->last_error ? m->last_error : "", "timestamp_ms",
                          (json_int_t)m->timestamp_ms);
    if (is_env) {
        json_object_set_new(o, "type", json_string(env.type));
        json_object_set_new(o, "event_id", json_string(env.event_id));
        herald_envelope_deinit(&env);
    }
    return o;
}

static int list(const cli_ctx *ctx, herald_store *s, const char *dlq)
{
    if (dlq) {
        herald_batch b;
        int rc = herald_peek(s, dlq, 100, &b);
        if (rc < 0)
            return cli_fail("dlq list", rc);
        json_t *arr = json_array();
        for (size_t i = 0; i < b.n; i++)
            json_array_append_new(arr, dead_json(&b.msgs[i]));
        herald_queue_stats qs;
        if (herald_queue_stats_get(s, dlq, &qs) == 0 && qs.backlog_count > (int64_t)b.n)
            fprintf(stderr, "herald: dlq list: showing the first %zu of %lld dead letters\n",
                    b.n, (long long)qs.backlog_count);
        if (ctx->json) {
            cli_print_json(arr);
        } else {
            size_t i;
            json_t *v;
            json_array_foreach(arr, i, v)
            {
                printf("%s  from=%s attempts=%d  %s  %s\n",
                       json_string_value(json_object_get(v, "id")),
                       json_string_value(json_object_get(v, "dead_from_queue")),
                       (int)json_integer_value(json_object_get(v, "dead_attempts")),
                       json_object_get(v, "type")
                           ? json_string_value(json_object_get(v, "type"))
                           : "-",
                       json_string_value(json_object_get(v, "last_error")));
            }
            json_decref(arr);
        }
        herald_batch_deinit(&b);
        return CLI_OK;
    }
    /* Dead-letter queues: those some queue names as its DLQ. */
    herald_queue_info *qs = NULL;
    size_t n = 0;
    int rc = herald_queue_list(s, &qs, &n);
    if (rc < 0)
        return cli_fail("dlq list", rc);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        bool is_dlq = false;
        for (size_t k = 0; k < n && !is_dlq; k++)
            is_dlq = strcmp(qs[k].dead_letter_queue, qs[i].name) == 0;
        herald_queue_stats st;
        if (!is_dlq || herald_queue_stats_get(s, qs[i].name, &st) < 0)
            continue;
        json_array_append_new(arr, json_pack("{s:s, s:I}", "queue", qs[i].name, "backlog_count",
                                             (json_int_t)st.backlog_count));
    }
    herald_free(qs);
    if (ctx->json) {
        cli_print_json(arr);
        return CLI_OK;
    }
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        printf("%s  %lld dead letters\n", json_string_value(json_object_get(v, "queue")),
               (long long)json_integer_value(json_object_get(v, "backlog_count")));
    }
    json_decref(arr);
    return CLI_OK;
}

static int show(const cli_ctx *ctx, herald_store *s, const char *dlq, const char *id)
{
    herald_batch b;
    int rc = herald_message_get(s, dlq, id, &b);
    if (rc < 0)
        return cli_fail("dlq show", rc);
    const herald_message *found = b.n ? &b.msgs[0] : NULL;
    if (!found) {
        fprintf(stderr, "herald: dlq show: message %s is not in '%s'\n", id, dlq);
        herald_batch_deinit(&b);
        return CLI_FAIL;
    }
    herald_attempt *at = NULL;
    size_t n = 0;
    rc = herald_message_attempts(s, id, &at, &n);
    if (rc < 0) {
        herald_batch_deinit(&b);
        return cli_fail("dlq show", rc);
    }
    json_t *o = dead_json(found);
    json_object_set_new(o, "body", json_stringn((const char *)found->body, found->body_len));
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:i, s:I, s:s, s:s}", "attempt", at[i].attempt,
                                             "at_ms", (json_int_t)at[i].at_ms, "queue",
                                             at[i].queue, "error", at[i].error));
    json_object_set_new(o, "attempts", arr);
    herald_free(at);
    herald_batch_deinit(&b);
    if (ctx->json) {
        cli_print_json(o);
        return CLI_OK;
    }
    char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    puts(text ? text : "");
    free(text);
    json_decref(o);
    return CLI_OK;
}

static int audit(const cli_ctx *ctx, herald_store *s, const char *dlq)
{
    herald_audit_entry *a = NULL;
    size_t n = 0;
    int rc = herald_redrive_audit(s, dlq, &a, &n);
    if (rc < 0)
        return cli_fail("dlq audit", rc);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        char ts[40];
        herald__iso8601(a[i].at_ms, ts, sizeof ts);
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "at", ts, "by",
                                             a[i].actor, "dlq", a[i].dlq, "message_id",
                                             a[i].message_id, "to", a[i].to_queue, "edit",
                                             a[i].edit));
    }
    herald_free(a);
    if (ctx->json) {
        cli_print_json(arr);
        return CLI_OK;
    }
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        printf("%s  %s  %s -> %s  %s  %s\n", json_string_value(json_object_get(v, "at")),
               json_string_value(json_object_get(v, "by")),
               json_string_value(json_object_get(v, "dlq")),
               json_string_value(json_object_get(v, "to")),
               json_string_value(json_object_get(v, "message_id")),
               json_string_value(json_object_get(v, "edit")));
    }
    json_decref(arr);
    return CLI_OK;
}

int cmd_dlq(const cli_ctx *ctx, int argc, char **argv)
{
    /* Repeatable options (--id, --set) are collected before the common parser sees them. */
    const char **ids = herald__xcalloc((size_t)argc + 1, sizeof *ids);
    const char **sets = herald__xcalloc((size_t)argc + 1, sizeof *sets);
    char **rest = herald__xcalloc((size_t)argc + 1, sizeof *rest);
    size_t n_ids = 0, n_sets = 0;
    int n_rest = 0, rc = CLI_OK;
    for (int i = 0; i < argc; i++) {
        if ((strcmp(argv[i], "--id") == 0 || strcmp(argv[i], "--set") == 0) && i + 1 < argc) {
            if (argv[i][2] == 'i')
                ids[n_ids++] = argv[++i];
            else
                sets[n_sets++] = argv[++i];
        } else {
            rest[n_rest++] = argv[i];
        }
    }
    cli_opt opts[] = { { "max", true, NULL },  { "to", true, NULL }, { "patch", true, NULL },
                       { "rate", true, NULL }, { "by", true, NULL } };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    char **pos = herald__xcalloc((size_t)n_rest + 1, sizeof *pos);
    int n_pos = 0;
    bool help = false;
    rc = cli_parse(n_rest, rest, opts, n_opts, pos, &n_pos, &help);
    if (rc != CLI_OK)
        goto out_pos;
    if (help) {
        fputs(usage_dlq, stdout);
        goto out_pos;
    }
    const char *verb = n_pos > 0 ? pos[0] : "";
    bool is_redrive = strcmp(verb, "redrive") == 0;
    if (!is_redrive && (n_ids || n_sets)) {
        rc = cli_usage(usage_dlq, "dlq %s: --id and --set belong to redrive", verb);
        goto out_pos;
    }
    for (int i = 0; !is_redrive && i < n_opts; i++)
        if (opts[i].value) {
            rc = cli_usage(usage_dlq, "dlq %s: option '--%s' belongs to redrive", verb,
                           opts[i].name);
            goto out_pos;
        }
    if (!((strcmp(verb, "list") == 0 && n_pos <= 2) || (strcmp(verb, "audit") == 0 && n_pos <= 2) ||
          (strcmp(verb, "show") == 0 && n_pos == 3) || (is_redrive && n_pos == 2))) {
        rc = cli_usage(usage_dlq, "dlq: expected list [DLQ], show DLQ ID, redrive DLQ or "
                                  "audit [DLQ]");
        goto out_pos;
    }
    herald_redrive_opts ro;
    herald_redrive_opts_init(&ro);
    if (is_redrive) {
        const char *v;
        if ((v = cli_opt_get(opts, n_opts, "max")) && cli_int_range("max", v, 0, INT64_MAX, "", &ro.max) != CLI_OK) {
            rc = CLI_USAGE;
            goto out_pos;
        }
        if ((v = cli_opt_get(opts, n_opts, "rate"))) {
            char *end = NULL;
            ro.rate_per_s = strtod(v, &end);
            /* !(in range) refuses NaN too; inf and 1e-300 are out of range */
            if (!end || end == v || (*end && strcmp(end, "/s") != 0) ||
                !(ro.rate_per_s >= HERALD_REDRIVE_MIN_RATE &&
                  ro.rate_per_s <= HERALD_REDRIVE_MAX_RATE)) {
                rc = cli_usage(usage_dlq, "--rate needs a number of messages per second from %g "
                                          "to %g, e.g. 10/s, got '%s'",
                               HERALD_REDRIVE_MIN_RATE, HERALD_REDRIVE_MAX_RATE, v);
                goto out_pos;
            }
        }
        ro.ids = ids;
        ro.n_ids = n_ids;
        ro.set = sets;
        ro.n_set = n_sets;
        ro.to_queue = cli_opt_get(opts, n_opts, "to");
        ro.merge_patch = cli_opt_get(opts, n_opts, "patch");
        ro.actor = cli_opt_get(opts, n_opts, "by");
        if (!ro.actor)
            ro.actor = getenv("USER") ? getenv("USER") : "cli";
    }
    herald_store *s = NULL;
    if ((rc = cli_open(ctx, &s)) != CLI_OK)
        goto out_pos;
    if (strcmp(verb, "list") == 0) {
        rc = list(ctx, s, n_pos == 2 ? pos[1] : NULL);
    } else if (strcmp(verb, "show") == 0) {
        rc = show(ctx, s, pos[1], pos[2]);
    } else if (strcmp(verb, "audit") == 0) {
        rc = audit(ctx, s, n_pos == 2 ? pos[1] : NULL);
    } else {
        int64_t moved = 0;
        int hrc = herald_dlq_redrive(s, pos[1], &ro, &moved);
        if (hrc < 0) {
            rc = cli_fail("dlq redrive", hrc);
            if (moved)
                fprintf(stderr, "herald: dlq redrive: %lld moved before the error\n",
                        (long long)moved);
        } else if (ctx->json) {
            cli_print_json(json_pack("{s:I}", "moved", (json_int_t)moved));
        } else {
            printf("redrove %lld message%s\n", (long long)moved, moved == 1 ? "" : "s");
        }
    }
    herald_store_close(s);
out_pos:
    herald__free(pos);
    herald__free(ids);
    herald__free(sets);
    herald__free(rest);
    return rc;
}
