// SPDX-License-Identifier: MIT
/*
 * test_dlq_crash.c - a redrive killed midway: a child process redrives 300 dead letters at full
 * speed and is SIGKILLed while it works. Each move is one transaction together with its audit
 * record, so after reopening every message must be in exactly one place (the DLQ or its source
 * queue, never both, never twice) and the audit must hold exactly one record per moved message.
 *
 * Rules (as tests/crash/test_crash.c): the parent never has a store open across fork(); the
 * child never calls Criterion (it _exit()s with a code); it dies with the test process
 * (PR_SET_PDEATHSIG); every wait is bounded. The parent watches the progress through a store
 * handle it opens after the fork, and reads the final state both through the API and directly
 * with SQLite (peek shows at most 100 messages).
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <sqlite3.h>

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support.h"

#define N_DEAD 300
#define LONG_VIS (12LL * 3600 * 1000)

static char *g_dir;

static void setup(void)
{
    g_dir = hx_tmpdir();
}

static void teardown(void)
{
    hx_rmrf(g_dir);
    free(g_dir);
}

TestSuite(dlq_crash, .init = setup, .fini = teardown, .timeout = 180);

/* Fills src (max_retries 0, DLQ "dlq") with N_DEAD messages and kills them all; the ids go to
 * ids (sorted later). Opens and closes its own store. */
static void make_dead_letters(char (*ids)[HERALD_ID_SIZE])
{
    herald_store *s = hx_open(g_dir, NULL);
    herald_queue_settings st;
    herald_queue_settings_init(&st);
    st.max_retries = 0;
    st.dead_letter_queue = "dlq";
    hx_create_queue(s, "src", &st);
    for (int i = 0; i < N_DEAD; i += 100) {
        herald_msg m[100];
        char body[100][32];
        for (int k = 0; k < 100; k++) {
            snprintf(body[k], sizeof body[k], "{\"i\":%d}", i + k);
            m[k] = (herald_msg){ .body = body[k], .body_len = strlen(body[k]),
                                 .content_type = HERALD_CONTENT_JSON, .delay_s = HERALD_UNSET };
        }
        int rc = herald_send_batch(s, "src", m, 100, HERALD_UNSET, &ids[i]);
        cr_assert_eq(rc, 0, "send_batch: %s", herald_last_error());
    }
    for (int i = 0; i < N_DEAD; i += 100) {
        herald_batch b = { 0 };
        cr_assert_eq(hx_pull(s, "src", 100, LONG_VIS, &b), 100);
        const char *leases[100];
        for (int k = 0; k < 100; k++)
            leases[k] = b.msgs[k].lease_id;
        herald_settle_result r;
        cr_assert_eq(herald_retry(s, "src", leases, 100, 0, "poison", &r), 0, "%s",
                     herald_last_error());
        cr_assert_eq(r.n_dead, 100);
        herald_batch_deinit(&b);
    }
    cr_assert_eq(hx_stats(s, "dlq").backlog_count, N_DEAD);
    cr_assert_eq(hx_stats(s, "src").backlog_count, 0);
    herald_store_close(s);
}

/* The child: opens the store, redrives everything at full speed, then waits to be killed. */
_Noreturn static void child_redrive(const char *dir)
{
    char *url = hx_url(dir, "herald.db");
    herald_store *s = NULL;
    if (herald_store_open(url, NULL, &s) != 0)
        _exit(10);
    herald_redrive_opts o;
    herald_redrive_opts_init(&o);
    o.actor = "crash-test";
    int64_t moved = 0;
    if (herald_dlq_redrive(s, "dlq", &o, &moved) != 0)
        _exit(20);
    /* Finished before the kill: stay alive so the parent can tell (it reads the counts). */
    hx_child_wait_for_kill(30);
}

/* Where each message is, read with SQLite directly from the closed store. */
typedef struct placement {
    char (*ids)[HERALD_ID_SIZE];
    char (*queue)[HERALD_QUEUE_NAME_MAX + 1];
    size_t n;
} placement;

static placement read_placement(void)
{
    char *path = malloc(strlen(g_dir) + 16);
    sprintf(path, "%s/herald.db", g_dir);
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    free(path);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT m.id, q.name FROM herald_messages m JOIN herald_queues q "
                                "ON q.queue_id = m.queue_id ORDER BY m.id",
                                -1, &st, NULL);
    cr_assert_eq(rc, SQLITE_OK, "%s", sqlite3_errmsg(db));
    placement p = { .ids = calloc(2 * N_DEAD + 1, HERALD_ID_SIZE),
                    .queue = calloc(2 * N_DEAD + 1, HERALD_QUEUE_NAME_MAX + 1) };
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        cr_assert(p.n < 2 * N_DEAD, "far too many messages in the store");
        snprintf(p.ids[p.n], HERALD_ID_SIZE, "%s", sqlite3_column_text(st, 0));
        snprintf(p.queue[p.n], HERALD_QUEUE_NAME_MAX + 1, "%s", sqlite3_column_text(st, 1));
        p.n++;
    }
    cr_assert_eq(rc, SQLITE_DONE, "%s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return p;
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

static int cmp_audit(const void *a, const void *b)
{
    return strcmp(((const herald_audit_entry *)a)->message_id,
                  ((const herald_audit_entry *)b)->message_id);
}

/* One round: fork the redriving child, kill it once `kill_after` messages have moved. Returns
 * how many had moved in the source queue when the kill landed (as seen after reopening). */
static int64_t run_round(char (*ids)[HERALD_ID_SIZE], int64_t kill_after)
{
    make_dead_letters(ids);
    pid_t pid = hx_fork_child(NULL, NULL);
    if (pid == 0)
        child_redrive(g_dir);
    /* Opened after the fork: this handle only watches. */
    herald_store *w = hx_open(g_dir, NULL);
    int64_t deadline = hx_mono_ms() + 60000;
    int64_t seen = 0;
    int st = 0;
    bool exited = false;
    for (;;) {
        herald_queue_stats qs;
        if (herald_queue_stats_get(w, "src", &qs) == 0)
            seen = qs.sent_total - N_DEAD; /* N_DEAD sent at first; each redrive counts one */
        if (seen >= kill_after)
            break;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            exited = true;
            break;
        }
        if (hx_mono_ms() > deadline) {
            (void)hx_kill_and_reap(pid, 10000);
            herald_store_close(w);
            cr_assert_fail("the child moved only %lld messages in 60 s", (long long)seen);
        }
        hx_sleep_us(200);
    }
    if (!exited) {
        hx_sleep_us(rand() % 500); /* land anywhere within the next move */
        st = hx_kill_and_reap(pid, 10000);
    }
    herald_store_close(w);
    hx_assert_killed(st, NULL, "10: open, 20: redrive failed");

    /* Reopen (recovery), then check the invariants. */
    herald_store *s = hx_open(g_dir, NULL);
    int64_t in_dlq = hx_stats(s, "dlq").backlog_count;
    int64_t in_src = hx_stats(s, "src").backlog_count;
    cr_expect_eq(in_dlq + in_src, N_DEAD, "DLQ %lld + source %lld != %d", (long long)in_dlq,
                 (long long)in_src, N_DEAD);
    herald_audit_entry *a = NULL;
    size_t n_audit = 0;
    cr_assert_eq(herald_redrive_audit(s, "dlq", &a, &n_audit), 0);
    cr_expect_eq((int64_t)n_audit, in_src, "audit has %zu entries, %lld messages moved", n_audit,
                 (long long)in_src);
    int64_t sent_extra = hx_stats(s, "src").sent_total - N_DEAD;
    cr_expect_eq(sent_extra, in_src, "sent_total counted %lld redrives, %lld moved",
                 (long long)sent_extra, (long long)in_src);
    herald_store_close(s);

    placement p = read_placement();
    cr_expect_eq(p.n, N_DEAD, "the store holds %zu messages, expected %d", p.n, N_DEAD);
    /* Sorted by id: a duplicate (in one queue or in both) is two equal neighbours. */
    size_t n_src = 0;
    for (size_t i = 0; i < p.n; i++) {
        cr_expect(strcmp(p.queue[i], "dlq") == 0 || strcmp(p.queue[i], "src") == 0,
                  "message %s is in queue %s", p.ids[i], p.queue[i]);
        n_src += strcmp(p.queue[i], "src") == 0;
        if (i > 0)
            cr_expect(strcmp(p.ids[i], p.ids[i - 1]) != 0, "message %s is stored twice (%s, %s)",
                      p.ids[i], p.queue[i - 1], p.queue[i]);
    }
    /* Exactly the ids that died, each once. */
    qsort(ids, N_DEAD, HERALD_ID_SIZE, cmp_id);
    if (p.n == N_DEAD)
        for (size_t i = 0; i < p.n; i++)
            cr_expect_str_eq(p.ids[i], ids[i], "the stored ids differ from the dead ones");
    /* Every audited message is in the source queue, each audited once. */
    qsort(a, n_audit, sizeof *a, cmp_audit);
    for (size_t i = 0; i < n_audit; i++) {
        if (i > 0)
            cr_expect(strcmp(a[i].message_id, a[i - 1].message_id) != 0,
                      "message %s is audited twice", a[i].message_id);
        char(*hit)[HERALD_ID_SIZE] = bsearch(a[i].message_id, p.ids, p.n, HERALD_ID_SIZE, cmp_id);
        cr_expect(hit != NULL, "audited message %s is not in the store", a[i].message_id);
        if (hit)
            cr_expect_str_eq(p.queue[hit - p.ids], "src", "audited message %s is in %s",
                             a[i].message_id, p.queue[hit - p.ids]);
        cr_expect_str_eq(a[i].actor, "crash-test");
        cr_expect_str_eq(a[i].to_queue, "src");
    }
    cr_expect_eq((int64_t)n_src, in_src);
    herald_free(a);
    free(p.ids);
    free(p.queue);
    return in_src;
}

Test(dlq_crash, redrive_killed_midway_leaves_each_message_in_exactly_one_place)
{
    /* Several kill points, each on a fresh store. */
    static const int64_t kill_after[] = { 1, 25, 120, 250 };
    for (size_t r = 0; r < sizeof kill_after / sizeof kill_after[0]; r++) {
        if (r > 0) {
            hx_rmrf(g_dir);
            free(g_dir);
            g_dir = hx_tmpdir();
        }
        char(*ids)[HERALD_ID_SIZE] = calloc(N_DEAD, HERALD_ID_SIZE);
        int64_t moved = run_round(ids, kill_after[r]);
        cr_log_info("killed after %lld of %d moves (aimed at %lld)", (long long)moved, N_DEAD,
                    (long long)kill_after[r]);
        cr_expect(moved > 0 && moved < N_DEAD, "the kill should land midway: %lld of %d moved",
                  (long long)moved, N_DEAD);
        free(ids);
    }
}
