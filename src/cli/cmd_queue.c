// SPDX-License-Identifier: MIT
/*
 * cmd_queue.c - `herald queues create|update|list|get|delete|purge|pause|resume|stats`.
 * JSON output follows Cloudflare's Queue object (queue_id, queue_name, created_on, modified_on,
 * settings{delivery_delay, delivery_paused, message_retention_period}) plus Herald's settings.
 */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

static const char *const usage_queues =
    "usage: herald queues create NAME [--max-retries N] [--retry-delay S]\n"
    "                            [--dead-letter-queue DLQ] [--delivery-delay S]\n"
    "                            [--max-message-bytes N] [--message-retention-period S]\n"
    "       (--retention S is another name of --message-retention-period: herald.jsonc's key)\n"
    "       herald queues update NAME [same options as create]\n"
    "       herald queues list\n"
    "       herald queues get NAME\n"
    "       herald queues delete NAME\n"
    "       herald queues purge NAME       delete every message (visible, delayed, leased)\n"
    "       herald queues pause NAME       stop delivery; sends are still accepted\n"
    "       herald queues resume NAME\n"
    "       herald queues stats NAME       backlog, delayed, leased, counters\n"
    "Add --json for machine output.\n";

static json_t *queue_json(const herald_queue_info *q)
{
    char created[40], modified[40];
    herald__iso8601(q->created_ms, created, sizeof created);
    herald__iso8601(q->modified_ms, modified, sizeof modified);
    return json_pack("{s:s, s:s, s:s, s:s, s:{s:I, s:b, s:I, s:I, s:I, s:I, s:s}}", "queue_id",
                     q->queue_id, "queue_name", q->name, "created_on", created, "modified_on",
                     modified, "settings", "delivery_delay", (json_int_t)q->delivery_delay_s,
                     "delivery_paused", q->is_paused, "message_retention_period",
                     (json_int_t)q->message_retention_period_s, "max_message_bytes",
                     (json_int_t)q->max_message_bytes, "max_retries",
                     (json_int_t)q->max_retries, "retry_delay", (json_int_t)q->retry_delay_s,
                     "dead_letter_queue", q->dead_letter_queue);
}

static void print_queue_human(const herald_queue_info *q)
{
    printf("%s%s\n  id %s\n  delivery_delay %llds  retention %llds  max_message_bytes %lld\n"
           "  max_retries %lld  retry_delay %llds  dead_letter_queue %s\n",
           q->name, q->is_paused ? "  (paused)" : "", q->queue_id,
           (long long)q->delivery_delay_s, (long long)q->message_retention_period_s,
           (long long)q->max_message_bytes, (long long)q->max_retries,
           (long long)q->retry_delay_s, q->dead_letter_queue[0] ? q->dead_letter_queue : "-");
}

static int settings_from_opts(const cli_opt *o, int n, herald_queue_settings *st)
{
    herald_queue_settings_init(st);
    /* The ranges of herald_queue_settings (herald.h): a value outside is a usage error that
     * states the value given, before the store is opened. */
    struct {
        const char *name;
        int64_t *field;
        int64_t lo, hi;
        const char *unit;
    } ints[] = {
        { "max-retries", &st->max_retries, 0, HERALD_MAX_RETRIES_LIMIT, "" },
        { "retry-delay", &st->retry_delay_s, 0, HERALD_MAX_DELAY_S, "s" },
        { "delivery-delay", &st->delivery_delay_s, 0, HERALD_MAX_DELAY_S, "s" },
        { "max-message-bytes", &st->max_message_bytes, 1, 1024 * 1024, "bytes" },
        { "retention", &st->message_retention_period_s, HERALD_MIN_RETENTION_S,
          HERALD_MAX_RETENTION_S, "s" },
        { "message-retention-period", &st->message_retention_period_s, HERALD_MIN_RETENTION_S,
          HERALD_MAX_RETENTION_S, "s" },
    };
    if (cli_opt_get(o, n, "retention") && cli_opt_get(o, n, "message-retention-period"))
        return cli_usage(NULL, "give --message-retention-period or its alias --retention, "
                               "not both");
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        const char *v = cli_opt_get(o, n, ints[i].name);
        if (v && cli_int_range(ints[i].name, v, ints[i].lo, ints[i].hi, ints[i].unit,
                               ints[i].field) != CLI_OK)
            return CLI_USAGE;
    }
    st->dead_letter_queue = cli_opt_get(o, n, "dead-letter-queue");
    return CLI_OK;
}

static int print_one(const cli_ctx *ctx, herald_store *s, const char *name)
{
    herald_queue_info q;
    int rc = herald_queue_get(s, name, &q);
    if (rc < 0)
        return cli_fail("queues get", rc);
    if (ctx->json)
        cli_print_json(queue_json(&q));
    else
        print_queue_human(&q);
    return CLI_OK;
}

static int stats(const cli_ctx *ctx, herald_store *s, const char *name)
{
    herald_queue_stats st;
    int rc = herald_queue_stats_get(s, name, &st);
    if (rc < 0)
        return cli_fail("queues stats", rc);
    json_t *j = json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "backlog_count",
        (json_int_t)st.backlog_count, "backlog_bytes", (json_int_t)st.backlog_bytes,
        "oldest_message_timestamp_ms", (json_int_t)st.oldest_message_timestamp_ms,
        "delayed_count", (json_int_t)st.delayed_count, "leased_count",
        (json_int_t)st.leased_count, "visible_count", (json_int_t)st.visible_count, "sent_total",
        (json_int_t)st.sent_total, "acked_total", (json_int_t)st.acked_total, "retried_total",
        (json_int_t)st.retried_total, "dead_lettered_total", (json_int_t)st.dead_lettered_total,
        "deleted_total", (json_int_t)st.deleted_total, "expired_total",
        (json_int_t)st.expired_total);
    if (ctx->json) {
        cli_print_json(j);
        return CLI_OK;
    }
    const char *key;
    json_t *v;
    json_object_foreach(j, key, v)
    {
        printf("%-28s %lld\n", key, (long long)json_integer_value(v));
    }
    json_decref(j);
    return CLI_OK;
}

int cmd_queues(const cli_ctx *ctx, int argc, char **argv)
{
    cli_opt opts[] = {
        { "max-retries", true, NULL },     { "retry-delay", true, NULL },
        { "dead-letter-queue", true, NULL }, { "delivery-delay", true, NULL },
        { "max-message-bytes", true, NULL }, { "retention", true, NULL },
        { "message-retention-period", true, NULL },
    };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    char *pos[64];
    int n_pos = 0;
    bool help = false;
    if (argc > 60)
        return cli_usage(usage_queues, "too many arguments");
    int rc = cli_parse(argc, argv, opts, n_opts, pos, &n_pos, &help);
    if (rc != CLI_OK)
        return rc;
    if (help) {
        fputs(usage_queues, stdout);
        return CLI_OK;
    }
    if (n_pos == 0)
        return cli_usage(usage_queues, "queues: missing verb");
    const char *verb = pos[0];
    static const char *const verbs[] = { "create", "update", "list",  "get",   "delete",
                                         "purge",  "pause",  "resume", "stats" };
    bool known = false;
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        known = known || strcmp(verb, verbs[i]) == 0;
    if (!known)
        return cli_usage(usage_queues, "queues: unknown verb '%s'", verb);
    bool takes_opts = strcmp(verb, "create") == 0 || strcmp(verb, "update") == 0;
    for (int i = 0; !takes_opts && i < n_opts; i++)
        if (opts[i].value)
            return cli_usage(usage_queues, "queues %s: option '--%s' does not apply", verb,
                             opts[i].name);
    bool is_list = strcmp(verb, "list") == 0;
    if (!is_list && n_pos != 2)
        return cli_usage(usage_queues, n_pos < 2 ? "queues %s: missing NAME"
                                                 : "queues %s: too many arguments",
                         verb);
    if (is_list && n_pos != 1)
        return cli_usage(usage_queues, "queues list: takes no arguments");
    const char *name = is_list ? NULL : pos[1];
    herald_queue_settings st;
    if (takes_opts && settings_from_opts(opts, n_opts, &st) != CLI_OK)
        return CLI_USAGE;

    herald_store *s = NULL;
    if ((rc = cli_open(ctx, &s)) != CLI_OK)
        return rc;
    int out = CLI_OK;
    if (is_list) {
        herald_queue_info *qs = NULL;
        size_t n = 0;
        rc = herald_queue_list(s, &qs, &n);
        if (rc < 0) {
            out = cli_fail("queues list", rc);
        } else if (ctx->json) {
            json_t *arr = json_array();
            for (size_t i = 0; i < n; i++)
                json_array_append_new(arr, queue_json(&qs[i]));
            cli_print_json(arr);
        } else {
            for (size_t i = 0; i < n; i++)
                printf("%s%s\n", qs[i].name, qs[i].is_paused ? "  (paused)" : "");
        }
        herald_free(qs);
    } else if (strcmp(verb, "create") == 0 || strcmp(verb, "update") == 0) {
        bool create = verb[0] == 'c';
        rc = create ? herald_queue_create(s, name, &st) : herald_queue_update(s, name, &st);
        if (rc < 0)
            out = cli_fail(create ? "queues create" : "queues update", rc);
        else if (ctx->json)
            out = print_one(ctx, s, name);
    } else if (strcmp(verb, "get") == 0) {
        out = print_one(ctx, s, name);
    } else if (strcmp(verb, "stats") == 0) {
        out = stats(ctx, s, name);
    } else if (strcmp(verb, "purge") == 0) {
        int64_t n = 0;
        rc = herald_queue_purge(s, name, &n);
        if (rc < 0)
            out = cli_fail("queues purge", rc);
        else if (ctx->json)
            cli_print_json(json_pack("{s:I}", "deleted", (json_int_t)n));
        else
            printf("purged %lld messages\n", (long long)n);
    } else {
        int (*fn)(herald_store *, const char *) = strcmp(verb, "delete") == 0 ? herald_queue_delete
                                                  : strcmp(verb, "pause") == 0
                                                      ? herald_queue_pause
                                                      : herald_queue_resume;
        rc = fn(s, name);
        if (rc < 0) {
            char what[32];
            snprintf(what, sizeof what, "queues %s", verb);
            out = cli_fail(what, rc);
        } else if (ctx->json) {
            cli_print_json(json_pack("{s:b}", "success", 1));
        }
    }
    herald_store_close(s);
    return out;
}
