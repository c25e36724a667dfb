// SPDX-License-Identifier: MIT
/*
 * cmd_msg.c - `herald send | send-batch | pull | peek | ack | retry`.
 * Pull and peek print Cloudflare's pull shape: {id, body, attempts, timestamp_ms, lease_id,
 * metadata{"CF-Content-Type"}}; json and bytes bodies are base64 (RFC 4648), text is plain.
 * Without --json they print one line per message with the body (up to 200 bytes, cut on a UTF-8
 * character boundary); when stdout is a terminal, control characters in it (C0, DEL, C1) are
 * escaped (\n, \t, \x1b, \u009b, and \\ for a backslash) so that a body cannot move the cursor,
 * recolour or retitle the user's terminal. Piped output keeps the bytes as they are.
 */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STDIN_MAX (64 * 1024 * 1024)

static const char *const usage_send =
    "usage: herald send NAME [--delay S] [--content-type json|text|bytes] BODY\n"
    "       herald send NAME --type T --source S [--correlation-id C] [--delay S]\n"
    "                   [--catalog FILE [--catalog-mode strict|warn]] PAYLOAD\n"
    "  BODY is the message body; - reads it from stdin. Prints the message id once the message\n"
    "  is durable. Default content type json (the body must be valid JSON). --delay S: 0 ..\n"
    "  31536000 (365 days); default the queue's delivery_delay.\n"
    "  With --type, sends an event: the body is the envelope {event_id, type (domain.action),\n"
    "  source, timestamp, correlation_id, payload} around PAYLOAD (a JSON object); prints the\n"
    "  event_id (a UUIDv7). --catalog FILE checks the event against that event catalog first\n"
    "  (strict: refuse it, the default; warn: log and send).\n";
static const char *const usage_send_batch =
    "usage: herald send-batch NAME [--delay S] [--content-type json|text|bytes]\n"
    "  Reads one body per line from stdin (empty lines skipped): at most 100 messages, each\n"
    "  within the queue's max_message_bytes, 256,000 bytes in all. Sends them atomically and\n"
    "  prints their ids in input order, one per line, only after all are durable.\n";
static const char *const usage_pull =
    "usage: herald pull NAME [--batch N] [--visibility-timeout S]\n"
    "  Leases up to N (default 5, max 100) visible messages for S seconds (default 30).\n"
    "  Ack them with `herald ack NAME LEASE_ID...` before the lease expires.\n";
static const char *const usage_peek =
    "usage: herald peek NAME [--batch N]\n"
    "  Shows up to N (default 10, max 100) messages without leasing them.\n";
static const char *const usage_ack = "usage: herald ack NAME LEASE_ID...\n"
                                     "  Acknowledges (deletes) the leased messages.\n";
static const char *const usage_retry =
    "usage: herald retry NAME LEASE_ID... [--delay S]\n"
    "  Makes the leased messages visible again after S seconds (default: the queue's\n"
    "  retry_delay). A message out of retries goes to the dead-letter queue.\n";

/* Reads all of stdin; NULL (with a message) when larger than STDIN_MAX. */
static char *read_stdin(size_t *len)
{
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
    for (;;) {
        if (n == cap) {
            if (cap >= STDIN_MAX) {
                free(buf);
                fprintf(stderr, "herald: stdin is larger than %d bytes\n", STDIN_MAX);
                return NULL;
            }
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n, stdin);
        n += r;
        if (r == 0)
            break;
    }
    *len = n;
    return buf;
}

static int common_parse(int argc, char **argv, cli_opt *opts, int n_opts, char ***pos,
                        int *n_pos, const char *usage)
{
    bool help = false;
    *pos = calloc((size_t)argc + 1, sizeof **pos);
    if (!*pos)
        return CLI_FAIL;
    int rc = cli_parse(argc, argv, opts, n_opts, *pos, n_pos, &help);
    if (rc != CLI_OK) {
        fputs(usage, stderr);
        return rc;
    }
    if (help) {
        fputs(usage, stdout);
        return -1; /* handled */
    }
    return CLI_OK;
}

static int finish(char **pos, int rc)
{
    free(pos);
    return rc < 0 ? CLI_OK : rc;
}

/* --delay S: HERALD_UNSET when absent; out of 0..365 days is a usage error stating the value. */
static int opt_delay(const cli_opt *o, int n, int64_t *delay)
{
    const char *v = cli_opt_get(o, n, "delay");
    *delay = HERALD_UNSET;
    if (!v)
        return CLI_OK;
    return cli_int_range("delay", v, 0, HERALD_MAX_DELAY_S, "s", delay);
}

static int opt_type(const char *cmd, const cli_opt *o, int n, herald_content_type *t)
{
    const char *v = cli_opt_get(o, n, "content-type");
    *t = HERALD_CONTENT_JSON;
    if (!v)
        return CLI_OK;
    int rc = herald_content_type_parse(v, t);
    if (rc < 0)
        return cli_fail(cmd, rc);
    return CLI_OK;
}

static const char *const usage_publish =
    "usage: herald publish TOPIC [--delay S] [--content-type json|text|bytes] BODY\n"
    "       herald publish TOPIC --type T --source S [--correlation-id C] [--delay S]\n"
    "                      [--catalog FILE [--catalog-mode strict|warn]] PAYLOAD\n"
    "  Copies the message into every queue subscribed to TOPIC in one transaction (all or\n"
    "  none); prints the message id of the first copy (or the event_id) and how many queues.\n"
    "  --catalog FILE checks the event against that event catalog first (as for send).\n";

/* `send` (to a queue) and `publish` (to a topic) share options and output. */
static int send_or_publish(const cli_ctx *ctx, int argc, char **argv, bool to_topic)
{
    const char *cmd = to_topic ? "publish" : "send";
    const char *usage = to_topic ? usage_publish : usage_send;
    cli_opt opts[] = { { "delay", true, NULL },          { "content-type", true, NULL },
                       { "type", true, NULL },           { "source", true, NULL },
                       { "correlation-id", true, NULL }, { "catalog", true, NULL },
                       { "catalog-mode", true, NULL } };
    int n_opts = (int)(sizeof opts / sizeof opts[0]);
    char **pos;
    int n_pos;
    int rc = common_parse(argc, argv, opts, n_opts, &pos, &n_pos, usage);
    if (rc != CLI_OK)
        return finish(pos, rc);
    herald_event e = { .type = cli_opt_get(opts, n_opts, "type"),
                       .source = cli_opt_get(opts, n_opts, "source"),
                       .correlation_id = cli_opt_get(opts, n_opts, "correlation-id") };
    bool is_event = e.type != NULL;
    if (!is_event && (e.source || e.correlation_id))
        return finish(pos, cli_usage(usage, "%s: --source and --correlation-id need --type", cmd));
    if (is_event && !e.source)
        return finish(pos, cli_usage(usage, "%s: --type needs --source (the emitting service)",
                                     cmd));
    const char *catalog_file = cli_opt_get(opts, n_opts, "catalog");
    const char *catalog_mode = cli_opt_get(opts, n_opts, "catalog-mode");
    if (catalog_file && !is_event)
        return finish(pos, cli_usage(usage, "%s: --catalog checks events: it needs --type", cmd));
    if (catalog_mode && (!catalog_file || (strcmp(catalog_mode, "strict") != 0 &&
                                           strcmp(catalog_mode, "warn") != 0)))
        return finish(pos, cli_usage(usage, "%s: --catalog-mode is strict or warn, with --catalog",
                                     cmd));
    if (n_pos != 2)
        return finish(pos, cli_usage(usage, n_pos < 2 ? "%s: missing %s" : "%s: too many arguments%s",
                                     cmd, n_pos == 0 ? "NAME and BODY" : n_pos == 1 ? "BODY" : ""));
    herald_msg m = HERALD_MSG_INIT;
    if ((rc = opt_delay(opts, n_opts, &m.delay_s)) != CLI_OK ||
        (rc = opt_type(cmd, opts, n_opts, &m.content_type)) != CLI_OK)
        return finish(pos, rc);
    if (is_event && m.content_type != HERALD_CONTENT_JSON) {
        fprintf(stderr, "herald: %s: an event's content type is json\n", cmd);
        return finish(pos, CLI_FAIL);
    }
    char *owned = NULL;
    if (strcmp(pos[1], "-") == 0) {
        size_t len = 0;
        owned = read_stdin(&len);
        if (!owned)
            return finish(pos, CLI_FAIL);
        m.body = owned;
        m.body_len = len;
    } else {
        m.body = pos[1];
        m.body_len = strlen(pos[1]);
    }
    e.payload_json = m.body;
    e.payload_len = m.body_len;
    herald_catalog *catalog = NULL;
    if (catalog_file) {
        int crc = herald_catalog_load(catalog_file, &catalog);
        if (crc < 0) {
            free(owned);
            return finish(pos, cli_fail(cmd, crc));
        }
    }
    herald_store *s = NULL;
    if ((rc = cli_open(ctx, &s)) == CLI_OK) {
        char id[HERALD_ID_SIZE] = "";
        size_t n_queues = 0;
        int hrc;
        if (catalog)
            herald_store_set_catalog(s, catalog, catalog_mode && catalog_mode[0] == 'w'
                                                     ? HERALD_CATALOG_WARN
                                                     : HERALD_CATALOG_STRICT);
        if (is_event) /* the configuration's catalog binds only once applied: say so */
            cli_config_catalog_notice(ctx, s);
        if (to_topic && is_event)
            hrc = herald_publish_event(s, pos[0], &e, m.delay_s, id);
        else if (to_topic)
            hrc = herald_publish(s, pos[0], &m, 1, HERALD_UNSET, &n_queues);
        else if (is_event)
            hrc = herald_send_event(s, pos[0], &e, m.delay_s, id);
        else
            hrc = herald_send(s, pos[0], &m, id);
        if (hrc < 0) {
            rc = cli_fail(cmd, hrc);
        } else if (ctx->json) {
            json_t *j = json_object();
            if (id[0])
                json_object_set_new(j, is_event ? "event_id" : "id", json_string(id));
            if (to_topic && !is_event)
                json_object_set_new(j, "queues", json_integer((json_int_t)n_queues));
            cli_print_json(j);
        } else if (to_topic && !is_event) {
            printf("published to %zu queue%s\n", n_queues, n_queues == 1 ? "" : "s");
        } else {
            puts(id);
        }
        herald_store_close(s);
    }
    herald_catalog_free(catalog);
    free(owned);
    return finish(pos, rc);
}

int cmd_send(const cli_ctx *ctx, int argc, char **argv)
{
    return send_or_publish(ctx, argc, argv, false);
}

int cmd_publish(const cli_ctx *ctx, int argc, char **argv)
{
    return send_or_publish(ctx, argc, argv, true);
}

int cmd_send_batch(const cli_ctx *ctx, int argc, char **argv)
{
    cli_opt opts[] = { { "delay", true, NULL }, { "content-type", true, NULL } };
    char **pos;
    int n_pos;
    int rc = common_parse(argc, argv, opts, 2, &pos, &n_pos, usage_send_batch);
    if (rc != CLI_OK)
        return finish(pos, rc);
    if (n_pos != 1)
        return finish(pos, cli_usage(usage_send_batch, n_pos < 1 ? "send-batch: missing NAME"
                                                                 : "send-batch: too many "
                                                                   "arguments"));
    int64_t delay;
    herald_content_type type;
    if ((rc = opt_delay(opts, 2, &delay)) != CLI_OK || (rc = opt_type("send-batch", opts, 2, &type)) != CLI_OK)
        return finish(pos, rc);
    size_t len = 0;
    char *in = read_stdin(&len);
    if (!in)
        return finish(pos, CLI_FAIL);
    herald_msg msgs[HERALD_MAX_BATCH_MESSAGES];
    int lines[HERALD_MAX_BATCH_MESSAGES];
    size_t n = 0;
    int line = 0;
    rc = CLI_OK;
    for (size_t off = 0; off < len && rc == CLI_OK;) {
        char *nl = memchr(in + off, '\n', len - off);
        size_t l = nl ? (size_t)(nl - (in + off)) : len - off;
        line++;
        size_t body_len = l;
        if (body_len > 0 && in[off + body_len - 1] == '\r')
            body_len--;
        if (body_len > 0) {
            if (n == HERALD_MAX_BATCH_MESSAGES) {
                fprintf(stderr,
                        "herald: send-batch: more than %d messages on stdin (line %d); nothing "
                        "was sent\n",
                        HERALD_MAX_BATCH_MESSAGES, line);
                rc = CLI_FAIL;
                break;
            }
            herald_msg *m = &msgs[n];
            herald_msg_init(m);
            m->body = in + off;
            m->body_len = body_len;
            m->content_type = type;
            int vrc = herald_msg_validate(m);
            if (vrc < 0) {
                fprintf(stderr, "herald: send-batch: line %d: %s (%s); nothing was sent\n", line,
                        herald_last_error(), herald_err_name(vrc));
                rc = CLI_FAIL;
                break;
            }
            lines[n++] = line;
        }
        off += l + (nl ? 1 : 0);
    }
    if (rc == CLI_OK && n == 0) {
        fprintf(stderr, "herald: send-batch: no messages on stdin; nothing was sent\n");
        rc = CLI_FAIL;
    }
    herald_store *s = NULL;
    if (rc == CLI_OK && (rc = cli_open(ctx, &s)) == CLI_OK) {
        herald_queue_info qi;
        int hrc = herald_queue_get(s, pos[0], &qi);
        for (size_t i = 0; hrc == 0 && i < n; i++) {
            if ((int64_t)msgs[i].body_len > qi.max_message_bytes) {
                fprintf(stderr,
                        "herald: send-batch: line %d: body of %zu bytes exceeds "
                        "max_message_bytes %lld of queue '%s'; nothing was sent\n",
                        lines[i], msgs[i].body_len, (long long)qi.max_message_bytes, pos[0]);
                hrc = HERALD_ETOOBIG;
                rc = CLI_FAIL;
            }
        }
        char(*ids)[HERALD_ID_SIZE] = herald__xcalloc(n + 1, HERALD_ID_SIZE);
        if (hrc == 0)
            hrc = herald_send_batch(s, pos[0], msgs, n, delay, ids);
        if (hrc < 0 && rc == CLI_OK) {
            rc = cli_fail("send-batch", hrc);
            fprintf(stderr, "herald: send-batch: nothing was sent\n");
        } else if (hrc == 0 && ctx->json) {
            json_t *arr = json_array();
            for (size_t i = 0; i < n; i++)
                json_array_append_new(arr, json_string(ids[i]));
            cli_print_json(arr);
        } else if (hrc == 0) {
            for (size_t i = 0; i < n; i++)
                puts(ids[i]);
        }
        herald__free(ids);
        herald_store_close(s);
    }
    free(in);
    return finish(pos, rc);
}

static json_t *message_json(const herald_message *m, bool with_lease, bool with_state)
{
    json_t *body;
    if (m->content_type == HERALD_CONTENT_TEXT) {
        body = json_stringn((const char *)m->body, m->body_len);
    } else {
        char *out = herald__base64(m->body, m->body_len);
        body = json_string(out);
        herald__free(out);
    }
    json_t *o = json_object();
    json_object_set_new(o, "id", json_string(m->id));
    json_object_set_new(o, "body", body);
    json_object_set_new(o, "attempts", json_integer(m->attempts));
    json_object_set_new(o, "timestamp_ms", json_integer(m->timestamp_ms));
    if (with_lease)
        json_object_set_new(o, "lease_id", json_string(m->lease_id));
    json_object_set_new(o, "metadata", json_pack("{s:s}", "CF-Content-Type",
                                                 herald_content_type_name(m->content_type)));
    if (with_state)
        json_object_set_new(o, "visible_at_ms", json_integer(m->visible_at_ms));
    if (m->dead_from_queue[0]) { /* a dead letter: its history, always all three keys */
        json_object_set_new(o, "dead_from_queue", json_string(m->dead_from_queue));
        json_object_set_new(o, "dead_attempts", json_integer(m->dead_attempts));
        json_object_set_new(o, "last_error", json_string(m->last_error ? m->last_error : ""));
    } else if (m->last_error && m->last_error[0]) {
        json_object_set_new(o, "last_error", json_string(m->last_error));
    }
    return o;
}

#define BODY_SHOWN_MAX 200 /* bytes of a body shown on one human-readable line */

/* Writes body[0..len) to stdout; with escape, control characters are written as escapes. */
static void put_body(const uint8_t *body, size_t len, bool escape)
{
    if (!escape) {
        fwrite(body, 1, len, stdout);
        return;
    }
    for (size_t i = 0; i < len; i++) {
        uint8_t c = body[i];
        if (c == '\n') {
            fputs("\\n", stdout);
        } else if (c == '\t') {
            fputs("\\t", stdout);
        } else if (c == '\r') {
            fputs("\\r", stdout);
        } else if (c == '\\') {
            fputs("\\\\", stdout);
        } else if (c < 0x20 || c == 0x7f) {
            printf("\\x%02x", c);
        } else if (c == 0xc2 && i + 1 < len && body[i + 1] >= 0x80 && body[i + 1] <= 0x9f) {
            printf("\\u%04x", body[++i]); /* C1 control, e.g. U+009B (CSI) */
        } else {
            putchar(c);
        }
    }
}

static void print_batch(const cli_ctx *ctx, const herald_batch *b, bool with_lease)
{
    if (ctx->json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < b->n; i++)
            json_array_append_new(arr, message_json(&b->msgs[i], with_lease, !with_lease));
        cli_print_json(arr);
        return;
    }
    bool escape = isatty(STDOUT_FILENO) == 1;
    for (size_t i = 0; i < b->n; i++) {
        const herald_message *m = &b->msgs[i];
        printf("%s%s%s  attempts=%d  ", with_lease ? m->lease_id : "", with_lease ? "  " : "",
               m->id, m->attempts);
        if (m->content_type == HERALD_CONTENT_BYTES) {
            puts("(bytes)");
            continue;
        }
        size_t shown = m->body_len;
        if (shown > BODY_SHOWN_MAX) {
            shown = BODY_SHOWN_MAX;
            while (shown > 0 && (m->body[shown] & 0xc0) == 0x80)
                shown--; /* do not cut a UTF-8 character */
        }
        put_body(m->body, shown, escape);
        puts(shown < m->body_len ? "..." : "");
    }
}

static int pull_or_peek(const cli_ctx *ctx, int argc, char **argv, bool is_pull)
{
    cli_opt opts[] = { { "batch", true, NULL }, { "visibility-timeout", true, NULL } };
    int n_opts = is_pull ? 2 : 1;
    const char *usage = is_pull ? usage_pull : usage_peek;
    char **pos;
    int n_pos;
    int rc = common_parse(argc, argv, opts, n_opts, &pos, &n_pos, usage);
    if (rc != CLI_OK)
        return finish(pos, rc);
    if (n_pos != 1)
        return finish(pos, cli_usage(usage, n_pos < 1 ? "missing NAME" : "too many arguments"));
    int64_t batch = is_pull ? 5 : 10, vis_s = 30;
    const char *v;
    if ((v = cli_opt_get(opts, n_opts, "batch")) &&
        cli_int_range("batch", v, 1, HERALD_MAX_BATCH_MESSAGES, "", &batch) != CLI_OK)
        return finish(pos, CLI_USAGE);
    if (is_pull && (v = cli_opt_get(opts, n_opts, "visibility-timeout")) &&
        cli_int_range("visibility-timeout", v, 1, HERALD_MAX_VISIBILITY_MS / 1000, "s",
                      &vis_s) != CLI_OK)
        return finish(pos, CLI_USAGE);
    herald_store *s = NULL;
    if ((rc = cli_open(ctx, &s)) == CLI_OK) {
        herald_batch b;
        int hrc = is_pull ? herald_pull(s, pos[0], (int)batch, vis_s * 1000, &b)
                          : herald_peek(s, pos[0], (int)batch, &b);
        if (hrc < 0) {
            rc = cli_fail(is_pull ? "pull" : "peek", hrc);
        } else {
            print_batch(ctx, &b, is_pull);
            herald_batch_deinit(&b);
        }
        herald_store_close(s);
    }
    return finish(pos, rc);
}

int cmd_pull(const cli_ctx *ctx, int argc, char **argv)
{
    return pull_or_peek(ctx, argc, argv, true);
}

int cmd_peek(const cli_ctx *ctx, int argc, char **argv)
{
    return pull_or_peek(ctx, argc, argv, false);
}

static int ack_or_retry(const cli_ctx *ctx, int argc, char **argv, bool is_retry)
{
    cli_opt opts[] = { { "delay", true, NULL } };
    int n_opts = is_retry ? 1 : 0;
    const char *usage = is_retry ? usage_retry : usage_ack;
    char **pos;
    int n_pos;
    int rc = common_parse(argc, argv, opts, n_opts, &pos, &n_pos, usage);
    if (rc != CLI_OK)
        return finish(pos, rc);
    if (n_pos < 2)
        return finish(pos, cli_usage(usage, n_pos < 1 ? "missing NAME" : "missing LEASE_ID"));
    int64_t delay = HERALD_UNSET;
    if (is_retry && (rc = opt_delay(opts, n_opts, &delay)) != CLI_OK)
        return finish(pos, rc);
    herald_store *s = NULL;
    if ((rc = cli_open(ctx, &s)) == CLI_OK) {
        herald_settle_result r;
        const char *const *ids = (const char *const *)(pos + 1);
        size_t n = (size_t)(n_pos - 1);
        int hrc = is_retry ? herald_retry(s, pos[0], ids, n, delay, NULL, &r)
                           : herald_ack(s, pos[0], ids, n, &r);
        if (hrc < 0) {
            rc = cli_fail(is_retry ? "retry" : "ack", hrc);
        } else if (ctx->json) {
            cli_print_json(is_retry ? json_pack("{s:I, s:I, s:I, s:I}", "retryCount",
                                                (json_int_t)r.n_retried, "deadCount",
                                                (json_int_t)r.n_dead, "stale",
                                                (json_int_t)r.n_stale, "missing",
                                                (json_int_t)r.n_missing)
                                    : json_pack("{s:I, s:I}", "ackCount", (json_int_t)r.n_acked,
                                                "missing", (json_int_t)r.n_missing));
        } else if (is_retry) {
            printf("retried %lld", (long long)r.n_retried);
            if (r.n_dead)
                printf(", dead-lettered %lld", (long long)r.n_dead);
            if (r.n_stale)
                printf(", %lld stale leases ignored", (long long)r.n_stale);
            if (r.n_missing)
                printf(", %lld not found", (long long)r.n_missing);
            putchar('\n');
        } else {
            printf("acked %lld", (long long)r.n_acked);
            if (r.n_missing)
                printf(", %lld not found (already acked or gone)", (long long)r.n_missing);
            putchar('\n');
        }
        herald_store_close(s);
    }
    return finish(pos, rc);
}

int cmd_ack(const cli_ctx *ctx, int argc, char **argv)
{
    return ack_or_retry(ctx, argc, argv, false);
}

int cmd_retry(const cli_ctx *ctx, int argc, char **argv)
{
    return ack_or_retry(ctx, argc, argv, true);
}
