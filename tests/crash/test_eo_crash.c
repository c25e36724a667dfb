// SPDX-License-Identifier: MIT
/*
 * test_eo_crash.c - effectively-once processing survives a SIGKILL at every point of a
 * transactional batch: nothing is lost, no effect and no send happens twice.
 *
 * The library kills its own process at a named fault point when HERALD_FAULT=<point> is in the
 * environment at process start (read once per process). So the worker (eo_worker.c, path in
 * HERALD_EO_WORKER) is fork+exec'd with the variable set: first with the fault, where it must
 * die of SIGKILL, then without, where it must drain queue "in" and exit 0. The store of each
 * test is fresh and prepared by the parent (table effects without a unique constraint, queues
 * "in" and "out", 50 events plus one duplicate of the first); the parent never holds the store
 * open while a worker runs. Afterwards: effects holds exactly 50 rows with 50 distinct event
 * ids, "out" exactly 50 messages, one per event, and "in" is empty with all 51 acked.
 * store.* points fire on the worker's first commit of any kind; that is still a valid crash.
 * Every wait is bounded.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "herald.h"
#include "support.h"

#ifndef HERALD_EO_WORKER
#error "HERALD_EO_WORKER (path of the eo_worker program) must be defined by the build"
#endif

#define N_EVENTS 50

static char *g_dir;
static char *g_url;

static void setup(void)
{
    g_dir = hx_tmpdir();
    g_url = hx_url(g_dir, "herald.db"); /* what hx_open() opens */
}

static void teardown(void)
{
    hx_rmrf(g_dir);
    free(g_dir);
    free(g_url);
}

TestSuite(eo_crash, .init = setup, .fini = teardown, .timeout = 180);

/* ---- the store ------------------------------------------------------------------------------ */

static char g_ids[N_EVENTS][HERALD_ID_SIZE];

static void prepare_store(void)
{
    herald_store *s = hx_open(g_dir, NULL);
    int rc = herald_sql_exec(s, "CREATE TABLE effects(event_id TEXT, attempts INTEGER)", NULL, 0,
                             NULL);
    cr_assert_eq(rc, 0, "create effects: %s", herald_last_error());
    hx_create_queue(s, "in", NULL);
    hx_create_queue(s, "out", NULL);
    for (int i = 0; i <= N_EVENTS; i++) {
        char payload[64];
        snprintf(payload, sizeof payload, "{\"n\":%d}", i);
        herald_event e = { .event_id = i == N_EVENTS ? g_ids[0] : NULL,
                           .type = "research.completed", .source = "eo-crash-test",
                           .payload_json = payload };
        char id[HERALD_ID_SIZE];
        rc = herald_send_event(s, "in", &e, HERALD_UNSET, id);
        cr_assert_eq(rc, 0, "send_event %d: %s", i, herald_last_error());
        if (i < N_EVENTS)
            memcpy(g_ids[i], id, HERALD_ID_SIZE);
        else
            cr_assert_str_eq(id, g_ids[0]);
    }
    herald_queue_stats st = hx_stats(s, "in");
    cr_assert_eq(st.backlog_count, N_EVENTS + 1);
    herald_store_close(s);
}

static void assert_processed_once(const char *label)
{
    herald_store *s = hx_open(g_dir, NULL);
    int64_t v[4] = { -1, -1 };
    int rc = herald_sql_query(s, "SELECT count(*), count(DISTINCT event_id) FROM effects", NULL,
                              0, hx_cb_ints, v);
    cr_assert_eq(rc, 0, "%s: count effects: %s", label, herald_last_error());
    cr_assert_eq(v[0], N_EVENTS, "%s: effects has %lld rows, want %d", label, (long long)v[0],
                 N_EVENTS);
    cr_assert_eq(v[1], N_EVENTS, "%s: effects has %lld distinct event ids, want %d", label,
                 (long long)v[1], N_EVENTS);
    for (int i = 0; i < N_EVENTS; i++) {
        herald_arg a = HERALD_ARG_S(g_ids[i]);
        int64_t n[4] = { -1 };
        rc = herald_sql_query(s, "SELECT count(*) FROM effects WHERE event_id = ?", &a, 1,
                              hx_cb_ints, n);
        cr_assert_eq(rc, 0, "%s", herald_last_error());
        cr_assert_eq(n[0], 1, "%s: event %d (%s) has %lld effects", label, i, g_ids[i],
                     (long long)n[0]);
    }

    herald_queue_stats in = hx_stats(s, "in"), out = hx_stats(s, "out");
    cr_assert_eq(in.backlog_count, 0, "%s: \"in\" still holds %lld", label,
                 (long long)in.backlog_count);
    cr_assert_eq(in.acked_total, N_EVENTS + 1, "%s: \"in\" acked %lld, want %d", label,
                 (long long)in.acked_total, N_EVENTS + 1);
    cr_assert_eq(in.dead_lettered_total + in.deleted_total, 0, "%s: messages died", label);
    cr_assert_eq(out.backlog_count, N_EVENTS, "%s: \"out\" holds %lld messages, want %d", label,
                 (long long)out.backlog_count, N_EVENTS);
    cr_assert_eq(out.sent_total, N_EVENTS, "%s: \"out\" was sent %lld messages, want %d", label,
                 (long long)out.sent_total, N_EVENTS);

    /* one out event per in event */
    herald_batch b = { 0 };
    cr_assert_eq(hx_peek(s, "out", &b), N_EVENTS);
    int seen[N_EVENTS] = { 0 };
    for (size_t k = 0; k < b.n; k++) {
        herald_envelope en;
        cr_assert_eq(herald_envelope_parse(b.msgs[k].body, b.msgs[k].body_len, &en), 0, "%s",
                     herald_last_error());
        for (int i = 0; i < N_EVENTS; i++) {
            char from[2048];
            snprintf(from, sizeof from, "{\"from\":\"%s\"}", g_ids[i]);
            if (strcmp(en.payload_json, from) == 0)
                seen[i]++;
        }
        herald_envelope_deinit(&en);
    }
    for (int i = 0; i < N_EVENTS; i++)
        cr_assert_eq(seen[i], 1, "%s: event %d has %d out events", label, i, seen[i]);
    herald_batch_deinit(&b);
    herald_store_close(s);
}

/* ---- the worker ----------------------------------------------------------------------------- */

/* Runs the worker on the test's store with HERALD_FAULT=fault (NULL: unset); returns its wait
 * status (bounded: 60 s). */
static int run_worker(const char *fault)
{
    const char *const argv[] = { HERALD_EO_WORKER, g_url, NULL };
    return hx_reap(hx_exec_worker(argv, fault), 60000);
}

static void assert_exit_0(int st, const char *what)
{
    if (WIFSIGNALED(st))
        cr_assert_fail("%s: worker died of signal %d", what, WTERMSIG(st));
    cr_assert(WIFEXITED(st), "%s: status 0x%x", what, st);
    cr_assert_eq(WEXITSTATUS(st), 0,
                 "%s: worker exited %d (3: \"in\" not drained in 20 s, 1x: setup, 127: exec)", what,
                 WEXITSTATUS(st));
}

/* charged: how many events' surviving effect ran on a second attempt - the in-flight journal
 * charges the one message whose handler was running at the kill, and no other (-1: the kill
 * point runs beside the writer, which may be in a handler or not: not checked). */
static void crash_then_recover(const char *fault, int charged)
{
    prepare_store();
    int st = run_worker(fault);
    hx_assert_killed(st, fault, "not killed at the fault point; 3: \"in\" not drained in 20 s, "
                                "1x: setup, 127: exec");
    st = run_worker(NULL);
    char what[80];
    snprintf(what, sizeof what, "recovery after %s", fault);
    assert_exit_0(st, what);
    assert_processed_once(fault);
    if (charged < 0)
        return;
    herald_store *s = hx_open(g_dir, NULL);
    int64_t v[4] = { -1 };
    cr_assert_eq(herald_sql_query(s, "SELECT count(*) FROM effects WHERE attempts > 1", NULL, 0,
                                  hx_cb_ints, v),
                 0);
    cr_assert_eq(v[0], charged, "%s: %lld effects ran on a second attempt, want %d", fault,
                 (long long)v[0], charged);
    herald_store_close(s);
}

/* ---- tests ---------------------------------------------------------------------------------- */

Test(eo_crash, without_a_fault_every_event_is_processed_once)
{
    prepare_store();
    assert_exit_0(run_worker(NULL), "no fault");
    assert_processed_once("no fault");
}

Test(eo_crash, killed_before_the_handler)
{
    crash_then_recover("eo.before_handler", 1);
}

Test(eo_crash, killed_after_the_handler)
{
    crash_then_recover("eo.after_handler", 1);
}

Test(eo_crash, killed_before_the_batch_commits)
{
    crash_then_recover("eo.before_commit", 0);
}

Test(eo_crash, killed_after_the_batch_committed)
{
    crash_then_recover("eo.after_commit", -1);
}

Test(eo_crash, killed_before_a_store_commit)
{
    crash_then_recover("store.before_commit", 0);
}

Test(eo_crash, killed_after_a_store_commit)
{
    crash_then_recover("store.after_commit", -1);
}

Test(eo_crash, an_unknown_fault_point_does_nothing)
{
    prepare_store();
    assert_exit_0(run_worker("no.such_point"), "unknown fault point");
    assert_processed_once("unknown fault point");
}

/* A handler that kills the process on one message (a poison message): no lease counts the
 * attempt before the handler runs, the in-flight journal does. After max_retries + 1 = 3 deaths
 * the message goes to the dead-letter queue with three attempt records; the messages of its
 * batches were not charged for its crashes, and every other event took effect once. */
Test(eo_crash, a_poison_message_that_kills_the_process_is_dead_lettered_after_max_retries)
{
    prepare_store();
    const char *const argv[] = { HERALD_EO_WORKER, g_url, "3", NULL };
    int kills = 0, st = 0;
    for (int run = 0; run < 6; run++) {
        st = hx_reap(hx_exec_worker(argv, NULL), 60000);
        if (!WIFSIGNALED(st))
            break;
        cr_assert_eq(WTERMSIG(st), SIGKILL, "worker died of signal %d", WTERMSIG(st));
        kills++;
    }
    assert_exit_0(st, "the run after the poison message was dead-lettered");
    cr_assert_eq(kills, 3, "the poison message killed %d workers, want max_retries + 1 = 3", kills);

    herald_store *s = hx_open(g_dir, NULL);
    herald_batch b = { 0 };
    cr_assert_eq(hx_peek(s, "in-dlq", &b), 1, "in-dlq should hold the poison message alone");
    herald_envelope en;
    cr_assert_eq(herald_envelope_parse(b.msgs[0].body, b.msgs[0].body_len, &en), 0);
    cr_assert_str_eq(en.payload_json, "{\"n\":3}");
    herald_envelope_deinit(&en);
    cr_assert_eq(b.msgs[0].dead_attempts, 3, "dead_attempts %d", b.msgs[0].dead_attempts);
    cr_assert(b.msgs[0].last_error && strstr(b.msgs[0].last_error, "exited"),
              "the dead letter's last error: %s", b.msgs[0].last_error);
    herald_attempt *at = NULL;
    size_t n_at = 0;
    cr_assert_eq(herald_message_attempts(s, b.msgs[0].id, &at, &n_at), 0, "%s",
                 herald_last_error());
    cr_assert_eq(n_at, 3, "attempt records: %zu", n_at);
    for (size_t i = 0; i < n_at; i++)
        cr_assert(strstr(at[i].error, "exited"), "attempt %zu: %s", i, at[i].error);
    herald_free(at);
    herald_batch_deinit(&b);

    int64_t v[4] = { -1, -1 };
    cr_assert_eq(herald_sql_query(s, "SELECT count(*), count(DISTINCT event_id) FROM effects",
                                  NULL, 0, hx_cb_ints, v),
                 0);
    cr_assert_eq(v[0], N_EVENTS - 1, "effects rows %lld, want one per event but the poison one",
                 (long long)v[0]);
    cr_assert_eq(v[1], N_EVENTS - 1);
    herald_queue_stats in = hx_stats(s, "in");
    cr_assert_eq(in.backlog_count, 0);
    cr_assert_eq(in.dead_lettered_total, 1, "dead-lettered %lld: batch-mates were charged too",
                 (long long)in.dead_lettered_total);
    herald_store_close(s);
}
