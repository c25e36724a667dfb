// SPDX-License-Identifier: MIT
/*
 * bench_eo.c - `herald bench eo`: an effectively-once handler doing one SQL insert and one
 * outgoing send per message (issue 3's target: >= 100,000 messages/s durable).
 *   setup (not timed): N enveloped events of ~256 B in queue eo-in, a user table bench_effects.
 *   timed: a push consumer with a tx_handler (batches of 100, --concurrency handlers) that for
 *   each event inserts a row into bench_effects and sends one event to eo-out, all committed
 *   together with the ack and the processed-event record.
 *   check: bench_effects holds exactly N rows and eo-out exactly N messages.
 */
#include "cli/cli.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

static const char *const usage_eo =
    "usage: herald bench eo [--messages N] [--concurrency N] [--durability full|normal]\n"
    "                       [--dir DIR]\n"
    "  Effectively-once: per message one SQL insert and one outgoing send, committed with the\n"
    "  ack. N defaults to 100,000.\n";

typedef struct eo_state {
    atomic_llong done;
    int64_t target;
} eo_state;

static int eo_handler(herald_tx *tx, const herald_message *m, const herald_envelope *env,
                      void *ud)
{
    (void)m;
    eo_state *st = ud;
    herald_arg args[] = { HERALD_ARG_S(env->event_id), HERALD_ARG_I((int64_t)env->payload_len) };
    int rc = herald_tx_exec(tx, "INSERT INTO bench_effects (event_id, size) VALUES (?, ?)", args,
                            2, NULL);
    if (rc < 0)
        return rc;
    herald_event out = { .type = "bench.done", .source = "bench", .payload_json = "{\"ok\":1}" };
    rc = herald_tx_send_event(tx, "eo-out", &out, NULL);
    if (rc == 0)
        atomic_fetch_add(&st->done, 1);
    return rc;
}

static int count_cb(void *ud, const herald_row *row)
{
    *(int64_t *)ud = herald_row_get(row, 0).i;
    return 0;
}

static void prefill_done(void *ud, int rc, const char (*ids)[HERALD_ID_SIZE], size_t n)
{
    (void)ids;
    (void)n;
    bench_window *w = ud;
    bench_window_release(w, rc);
}

static int prefill(herald_store *s, int64_t n_msgs)
{
    bench_window w;
    bench_window_init(&w, 32);
    char pad[160];
    memset(pad, 'x', sizeof pad - 1);
    pad[sizeof pad - 1] = 0;
    int rc = 0;
    for (int64_t k = 0; k < n_msgs && rc == 0; k += 100) {
        herald_msg msgs[100];
        char *bodies[100];
        size_t n = (size_t)(n_msgs - k < 100 ? n_msgs - k : 100);
        for (size_t i = 0; i < n && rc == 0; i++) {
            char payload[256];
            snprintf(payload, sizeof payload, "{\"n\":%lld,\"pad\":\"%s\"}",
                     (long long)(k + (int64_t)i), pad);
            herald_event e = { .type = "bench.requested", .source = "bench",
                               .payload_json = payload };
            size_t len = 0;
            rc = herald_event_encode(s, &e, NULL, &bodies[i], &len);
            herald_msg_init(&msgs[i]);
            msgs[i].body = bodies[i];
            msgs[i].body_len = len;
        }
        bench_window_acquire(&w);
        if (rc == 0)
            rc = herald_send_batch_async(s, "eo-in", msgs, n, HERALD_UNSET, prefill_done, &w);
        if (rc < 0)
            bench_window_release(&w, rc);
        for (size_t i = 0; i < n; i++)
            herald_free(bodies[i]);
    }
    int wrc = bench_window_drain(&w);
    return rc < 0 ? rc : wrc;
}

int bench_eo(const cli_ctx *ctx, int argc, char **argv)
{
    cli_opt opts[] = { { "messages", true, NULL }, { "concurrency", true, NULL },
                       { "dir", true, NULL } };
    int n_opts = 3;
    char *pos[16];
    int n_pos = 0;
    bool help = false;
    if (argc > 14)
        return cli_usage(usage_eo, "too many arguments");
    int rc = cli_parse(argc, argv, opts, n_opts, pos, &n_pos, &help);
    if (rc != CLI_OK)
        return rc;
    if (help) {
        fputs(usage_eo, stdout);
        return CLI_OK;
    }
    int64_t n_msgs = 100000, conc = 2;
    const char *v;
    if ((v = cli_opt_get(opts, n_opts, "messages")) && cli_int("messages", v, &n_msgs) != CLI_OK)
        return CLI_USAGE;
    if ((v = cli_opt_get(opts, n_opts, "concurrency")) &&
        cli_int("concurrency", v, &conc) != CLI_OK)
        return CLI_USAGE;
    if (n_msgs < 100 || n_msgs > 100000000 || conc < 1 || conc > 250)
        return cli_usage(usage_eo, "--messages 100..100000000, --concurrency 1..250");
    bench_store bs;
    if (bench_store_open(&bs, ctx, cli_opt_get(opts, n_opts, "dir")) != CLI_OK)
        return CLI_FAIL;
    herald_store *s = bs.store;
    int out = CLI_OK;
    if ((rc = herald_queue_create(s, "eo-in", NULL)) < 0 ||
        (rc = herald_queue_create(s, "eo-out", NULL)) < 0 ||
        (rc = herald_sql_exec(s,
                              "CREATE TABLE bench_effects (event_id TEXT PRIMARY KEY, "
                              "size INTEGER NOT NULL)",
                              NULL, 0, NULL)) < 0 ||
        (rc = prefill(s, n_msgs)) < 0)
        out = bench_fail("setup", rc);
    eo_state st = { .target = n_msgs };
    atomic_init(&st.done, 0);
    double rate = 0;
    if (out == CLI_OK) {
        herald_consumer_cfg cfg;
        herald_consumer_cfg_init(&cfg);
        const char *qs[] = { "eo-in" };
        cfg.queues = qs;
        cfg.n_queues = 1;
        cfg.tx_handler = eo_handler;
        cfg.ud = &st;
        cfg.max_batch_size = 100;
        cfg.max_batch_timeout_ms = 0;
        cfg.max_concurrency = (int)conc;
        herald_consumer *c = NULL;
        int64_t t0 = bench_mono_ns();
        if ((rc = herald_consumer_start(s, &cfg, &c)) < 0) {
            out = bench_fail("start consumer", rc);
        } else {
            herald_consumer_counters cc;
            for (;;) { /* counted once each batch's commit is durable */
                herald_consumer_counters_get(c, &cc);
                if (cc.acked >= n_msgs)
                    break;
                usleep(1000);
            }
            herald_consumer_stop(c);
            rate = (double)n_msgs / ((double)(bench_mono_ns() - t0) / 1e9);
        }
    }
    int64_t effects = -1, sent = -1;
    if (out == CLI_OK) {
        herald_queue_stats qo;
        (void)herald_sql_query(s, "SELECT count(*) FROM bench_effects", NULL, 0, count_cb,
                               &effects);
        if (herald_queue_stats_get(s, "eo-out", &qo) == 0)
            sent = qo.backlog_count;
        if (effects != n_msgs || sent != n_msgs) {
            fprintf(stderr, "herald: bench eo: expected %lld effects and sends, got %lld and %lld\n",
                    (long long)n_msgs, (long long)effects, (long long)sent);
            out = CLI_FAIL;
        }
    }
    bench_store_close(&bs);
    if (out != CLI_OK)
        return out;
    if (ctx->json) {
        cli_print_json(json_pack("{s:s, s:I, s:I, s:f, s:I, s:I}", "durability", bs.dur_name,
                                 "messages", (json_int_t)n_msgs, "concurrency", (json_int_t)conc,
                                 "eo_msgs_per_s", rate, "effects", (json_int_t)effects, "sends",
                                 (json_int_t)sent));
    } else {
        printf("EO   effectively-once: 1 SQL insert + 1 send per message, %lld messages: "
               "%.0f msg/s\n",
               (long long)n_msgs, rate);
        printf("     effects %lld, sends %lld (each exactly once); durability %s\n",
               (long long)effects, (long long)sent, bs.dur_name);
    }
    return CLI_OK;
}
