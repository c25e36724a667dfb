// SPDX-License-Identifier: MIT
/*
 * test_wal_bound.c - the write-ahead log's size bound (herald.h, herald_durability): the writer
 * begins no commit group while the WAL holds its limit of pages; it restarts the WAL first,
 * waiting for readers of older snapshots, and fails the group's writes with HERALD_EBUSY if one
 * holds on past the wait - so the WAL never exceeds the limit plus one commit group, however
 * the checkpoints race with the writes. (It used to be a soft target: a test streaming 62 MiB
 * saw the WAL reach 59 MB under load.)
 * The mechanism is tested, not a race: herald__sq_test_wal_limits shrinks the limits (50-page
 * checkpoints, restart tried at 100 pages, limit 200 pages), and a reader of an old snapshot -
 * a second SQLite connection in a read transaction - is the condition that used to let the WAL
 * grow. Each test owns a temp dir; the limits are per test process (Criterion forks).
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "herald.h"
#include "store/store_impl.h"
#include "support.h"

#define CKPT 50
#define RESTART 100
#define LIMIT 200
#define FRAME 4120  /* a WAL frame: 24-byte header + a 4096-byte page */
#define GROUP 64    /* pages one test batch (10 x 1 KiB) adds to the WAL, with room to spare */
#define BOUND (32 + (off_t)(LIMIT + GROUP) * FRAME) /* WAL header + frames */

static hx_env env;

static void setup(void)
{
    hx_env_setup(&env, HX_ENV_NO_STORE);
}

static void teardown(void)
{
    hx_env_teardown(&env);
}

TestSuite(wal_bound, .init = setup, .fini = teardown, .timeout = 120);

static char *path_in(const char *name)
{
    char *p = malloc(strlen(env.dir) + strlen(name) + 2);
    cr_assert_not_null(p);
    sprintf(p, "%s/%s", env.dir, name);
    return p;
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static herald_store *open_store(const char *params)
{
    char *db = path_in("herald.db");
    char url[4300];
    snprintf(url, sizeof url, "sqlite:%s%s", db, params);
    free(db);
    herald_store_cfg cfg = { .clock = &env.clock.clock };
    herald_store *s = NULL;
    int rc = herald_store_open(url, &cfg, &s);
    cr_assert_eq(rc, 0, "open %s: %s", url, herald_last_error());
    return s;
}

static int send10(herald_store *s)
{
    static char body[1024];
    memset(body, 'w', sizeof body);
    herald_msg m[10];
    for (int i = 0; i < 10; i++)
        m[i] = (herald_msg){ body, sizeof body, HERALD_CONTENT_BYTES, HERALD_UNSET };
    return herald_send_batch(s, "q", m, 10, HERALD_UNSET, NULL);
}

/* A read transaction on its own connection: its snapshot is older than every later commit. */
static sqlite3 *begin_old_snapshot(void)
{
    char *db = path_in("herald.db");
    sqlite3 *r = NULL;
    cr_assert_eq(sqlite3_open_v2(db, &r, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    free(db);
    cr_assert_eq(sqlite3_exec(r, "BEGIN; SELECT count(*) FROM herald_messages;", NULL, NULL,
                              NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(r));
    return r;
}

static void end_snapshot(sqlite3 *r)
{
    cr_assert_eq(sqlite3_exec(r, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(r);
}

/* No reader in the way: a stream of ten times the limit keeps the WAL within the bound. */
static void stream_case(const char *params)
{
    herald__sq_test_wal_limits(CKPT, RESTART, LIMIT, 0);
    herald_store *s = open_store(params);
    cr_assert_eq(herald_queue_create(s, "q", NULL), 0);
    char *wal = path_in("herald.db-wal");
    off_t max_wal = 0;
    for (int k = 0; k < 10 * LIMIT / 3; k++) { /* ~3 pages of bodies per batch */
        cr_assert_eq(send10(s), 0, "batch %d: %s", k, herald_last_error());
        off_t sz = file_size(wal);
        max_wal = sz > max_wal ? sz : max_wal;
    }
    cr_assert_eq(hx_stats(s, "q").backlog_count, 10 * (10 * LIMIT / 3));
    cr_assert_leq(max_wal, BOUND, "the WAL grew to %lld bytes, past its bound of %lld",
                  (long long)max_wal, (long long)BOUND);
    herald_store_close(s);
    free(wal);
}

Test(wal_bound, a_long_stream_of_writes_keeps_the_wal_within_its_limit)
{
    stream_case("");
}

Test(wal_bound, a_long_stream_of_writes_keeps_the_wal_within_its_limit_in_durability_normal)
{
    stream_case("?durability=normal");
}

/* The condition that let the WAL grow: a reader keeps an old snapshot, so no checkpoint can
 * restart the WAL. Writes stop at the limit with HERALD_EBUSY naming the reason (after the
 * wait, 200 ms here), the WAL stays within the bound, nothing becomes sticky, and once the
 * reader ends the writes go on and the WAL restarts. */
static void reader_case(const char *params)
{
    herald__sq_test_wal_limits(CKPT, RESTART, LIMIT, 200);
    herald_store *s = open_store(params);
    cr_assert_eq(herald_queue_create(s, "q", NULL), 0);
    cr_assert_eq(send10(s), 0);
    sqlite3 *r = begin_old_snapshot();
    char *wal = path_in("herald.db-wal");
    off_t max_wal = 0;
    int rc = 0, k = 0, sent = 1;
    for (; k < 20 * LIMIT && rc == 0; k++) { /* without the bound: ~20 times the limit */
        rc = send10(s);
        sent += rc == 0;
        off_t sz = file_size(wal);
        max_wal = sz > max_wal ? sz : max_wal;
    }
    cr_assert_eq(rc, HERALD_EBUSY,
                 "%d batches went through with a reader holding an old snapshot (rc %s); the "
                 "WAL grew to %lld bytes (bound %lld)",
                 k, herald_err_name(rc), (long long)max_wal, (long long)BOUND);
    const char *e = herald_last_error();
    cr_assert(strstr(e, "write-ahead log") && strstr(e, "snapshot"),
              "the error does not say why: %s", e);
    cr_assert_leq(max_wal, BOUND, "the WAL grew to %lld bytes, past its bound of %lld",
                  (long long)max_wal, (long long)BOUND);
    cr_assert_eq(hx_stats(s, "q").backlog_count, 10 * sent, "the refused batch was kept");

    end_snapshot(r);
    for (int i = 0; i < 3 * LIMIT / 3; i++) { /* three more limits' worth: the WAL restarts */
        cr_assert_eq(send10(s), 0, "after the reader ended: %s", herald_last_error());
        sent++;
        off_t sz = file_size(wal);
        max_wal = sz > max_wal ? sz : max_wal;
    }
    cr_assert_leq(max_wal, BOUND, "after the reader ended the WAL grew to %lld bytes (bound %lld)",
                  (long long)max_wal, (long long)BOUND);
    herald_store_close(s);
    s = open_store(params);
    cr_assert_eq(hx_stats(s, "q").backlog_count, 10 * sent);
    herald_store_close(s);
    free(wal);
}

Test(wal_bound, a_reader_of_an_old_snapshot_stops_writes_at_the_wal_limit_with_ebusy)
{
    reader_case("");
}

Test(wal_bound, a_reader_of_an_old_snapshot_stops_writes_at_the_wal_limit_in_durability_normal)
{
    reader_case("?durability=normal");
}

/* A reader that ends while a group waits at the limit lets that group through: with the
 * default wait (10 s) a short reader costs the writers a pause, not an error. The reader
 * thread ends its snapshot once the WAL file has reached the limit (the writer waits then). */
typedef struct {
    sqlite3 *r;
    char *wal;
    atomic_bool stop;
} reader_arg;

static void *reader_main(void *p)
{
    reader_arg *a = p;
    off_t at_limit = 32 + (off_t)LIMIT * FRAME;
    while (!atomic_load(&a->stop) && file_size(a->wal) < at_limit)
        hx_sleep_ms(1);
    sqlite3_exec(a->r, "COMMIT", NULL, NULL, NULL);
    return NULL;
}

Test(wal_bound, a_reader_that_ends_while_the_writer_waits_lets_the_writes_through)
{
    herald__sq_test_wal_limits(CKPT, RESTART, LIMIT, 0);
    herald_store *s = open_store("");
    cr_assert_eq(herald_queue_create(s, "q", NULL), 0);
    cr_assert_eq(send10(s), 0);
    reader_arg a = { .r = begin_old_snapshot(), .wal = path_in("herald.db-wal") };
    atomic_init(&a.stop, false);
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, reader_main, &a), 0);
    off_t max_wal = 0;
    int n = 3 * LIMIT / 3;
    for (int k = 0; k < n; k++) {
        int rc = send10(s);
        if (rc != 0) {
            atomic_store(&a.stop, true);
            pthread_join(t, NULL);
        }
        cr_assert_eq(rc, 0, "batch %d: %s", k, herald_last_error());
        off_t sz = file_size(a.wal);
        max_wal = sz > max_wal ? sz : max_wal;
    }
    atomic_store(&a.stop, true);
    pthread_join(t, NULL);
    sqlite3_close(a.r);
    cr_assert_eq(hx_stats(s, "q").backlog_count, 10 * (n + 1));
    cr_assert_leq(max_wal, BOUND, "the WAL grew to %lld bytes, past its bound of %lld",
                  (long long)max_wal, (long long)BOUND);
    herald_store_close(s);
    free(a.wal);
}

/* One group larger than the limit (a herald_sql_exec writing ~2 MiB) grows the WAL file past
 * the bound - it must hold the whole transaction - but the file shrinks back to the limit when
 * the WAL next restarts (journal_size_limit), instead of keeping its high-water mark. */
Test(wal_bound, a_wal_grown_by_one_large_group_shrinks_back_at_the_next_restart)
{
    herald__sq_test_wal_limits(CKPT, RESTART, LIMIT, 0);
    herald_store *s = open_store("");
    cr_assert_eq(herald_queue_create(s, "q", NULL), 0);
    cr_assert_eq(herald_sql_exec(s, "CREATE TABLE big(b BLOB)", NULL, 0, NULL), 0, "%s",
                 herald_last_error());
    cr_assert_eq(herald_sql_exec(s,
                                 "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                                 "WHERE i < 2000) INSERT INTO big SELECT zeroblob(1000) FROM n",
                                 NULL, 0, NULL),
                 0, "%s", herald_last_error());
    char *wal = path_in("herald.db-wal");
    off_t grown = file_size(wal);
    cr_assert_gt(grown, BOUND, "the large group did not grow the WAL (%lld bytes)",
                 (long long)grown);
    off_t limit = 32 + (off_t)LIMIT * FRAME;
    off_t sz = grown;
    for (int k = 0; k < 3 * LIMIT && sz > limit; k++) { /* a few groups restart it */
        cr_assert_eq(send10(s), 0, "%s", herald_last_error());
        sz = file_size(wal);
    }
    cr_assert_leq(sz, limit, "the WAL stayed at %lld bytes after growing to %lld (limit %lld)",
                  (long long)sz, (long long)grown, (long long)limit);
    herald_store_close(s);
    free(wal);
}
