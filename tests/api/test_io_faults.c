// SPDX-License-Identifier: MIT
/*
 * test_io_faults.c - I/O failures under the store, the way SQLite tests itself: a test VFS
 * ("faulty", registered as the default, wrapping the platform's) makes writes or syncs of the
 * database file or of the WAL fail with SQLITE_FULL (ENOSPC), SQLITE_IOERR_WRITE or
 * SQLITE_IOERR_FSYNC, and the fault point "sqlite.wal_sync" makes the syncer's own fdatasync of
 * the WAL fail (it does not go through SQLite). For each path - the writer's commit, the
 * syncer's fsync, a checkpoint, opening a new store - the store must
 *   - fail the writes not yet confirmed with HERALD_EIO and a message naming the cause ("disk
 *     full", "I/O error on fsync", "I/O error on write");
 *   - refuse every later write with that same cause (store.c invariant 2: sticky until reopen);
 *   - lose no message it confirmed, and reopen cleanly (PRAGMA integrity_check) once the fault
 *     is gone, accepting writes again.
 * A real full file system (tmpfs) is tests/crash/test_disk_full.c. Each test owns a temp dir;
 * faults are armed per test process (Criterion forks one per test).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "herald.h"
#include "store/store_impl.h"
#include "support.h"

/* ---- the faulty VFS ------------------------------------------------------------------------- */

enum { K_DB, K_WAL, K_OTHER, K_N };
enum { OP_WRITE, OP_SYNC, OP_N };

static atomic_int armed[K_N][OP_N]; /* the SQLite code a call returns; 0: it runs */
static sqlite3_vfs *real_vfs;
static sqlite3_vfs faulty_vfs;

typedef struct ff_file {
    sqlite3_file base;
    int kind;
    sqlite3_file *real; /* the platform's file, allocated right after this struct */
} ff_file;

static void arm(int kind, int op, int code)
{
    atomic_store(&armed[kind][op], code);
}

static void disarm_all(void)
{
    for (int k = 0; k < K_N; k++)
        for (int o = 0; o < OP_N; o++)
            arm(k, o, 0);
    herald__fault_io_arm("sqlite.wal_sync", 0, 0);
}

#define REAL(f) (((ff_file *)(f))->real)

static int ff_close(sqlite3_file *f)
{
    return REAL(f)->pMethods->xClose(REAL(f));
}
static int ff_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off)
{
    return REAL(f)->pMethods->xRead(REAL(f), p, n, off);
}
static int ff_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
    int code = atomic_load(&armed[((ff_file *)f)->kind][OP_WRITE]);
    return code ? code : REAL(f)->pMethods->xWrite(REAL(f), p, n, off);
}
static int ff_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    return REAL(f)->pMethods->xTruncate(REAL(f), size);
}
static int ff_sync(sqlite3_file *f, int flags)
{
    int code = atomic_load(&armed[((ff_file *)f)->kind][OP_SYNC]);
    return code ? code : REAL(f)->pMethods->xSync(REAL(f), flags);
}
static int ff_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}
static int ff_lock(sqlite3_file *f, int l)
{
    return REAL(f)->pMethods->xLock(REAL(f), l);
}
static int ff_unlock(sqlite3_file *f, int l)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), l);
}
static int ff_check_reserved(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int ff_file_control(sqlite3_file *f, int op, void *arg)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int ff_sector_size(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}
static int ff_device_chars(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int ff_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, pgsz, extend, pp);
}
static int ff_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}
static void ff_shm_barrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}
static int ff_shm_unmap(sqlite3_file *f, int del)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}
static int ff_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp)
{
    return REAL(f)->pMethods->xFetch(REAL(f), off, n, pp);
}
static int ff_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static const sqlite3_io_methods ff_methods = {
    3,           ff_close,      ff_read,         ff_write,       ff_truncate,
    ff_sync,     ff_file_size,  ff_lock,         ff_unlock,      ff_check_reserved,
    ff_file_control, ff_sector_size, ff_device_chars, ff_shm_map, ff_shm_lock,
    ff_shm_barrier, ff_shm_unmap, ff_fetch,     ff_unfetch,
};

static int ff_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
    (void)vfs;
    ff_file *ff = (ff_file *)f;
    ff->real = (sqlite3_file *)(ff + 1);
    ff->kind = flags & SQLITE_OPEN_MAIN_DB ? K_DB : flags & SQLITE_OPEN_WAL ? K_WAL : K_OTHER;
    int rc = real_vfs->xOpen(real_vfs, name, ff->real, flags, out_flags);
    ff->base.pMethods = rc == SQLITE_OK && ff->real->pMethods ? &ff_methods : NULL;
    return rc;
}

static void setup_vfs(void)
{
    real_vfs = sqlite3_vfs_find(NULL);
    cr_assert_not_null(real_vfs);
    faulty_vfs = *real_vfs;
    faulty_vfs.zName = "faulty";
    faulty_vfs.pNext = NULL;
    faulty_vfs.szOsFile = (int)sizeof(ff_file) + real_vfs->szOsFile;
    faulty_vfs.xOpen = ff_open;
    cr_assert_eq(sqlite3_vfs_register(&faulty_vfs, 1), SQLITE_OK);
}

/* ---- fixtures -------------------------------------------------------------------------------- */

static hx_env env;

static void setup(void)
{
    hx_env_setup(&env, HX_ENV_NO_STORE);
    setup_vfs();
}

static void teardown(void)
{
    disarm_all();
    hx_env_teardown(&env);
}

TestSuite(io_faults, .init = setup, .fini = teardown, .timeout = 120);

static char *db_path(void)
{
    char *p = malloc(strlen(env.dir) + 16);
    cr_assert_not_null(p);
    sprintf(p, "%s/herald.db", env.dir);
    return p;
}

static int try_open(const char *params, herald_store **s)
{
    char *db = db_path();
    char url[4300];
    snprintf(url, sizeof url, "sqlite:%s%s", db, params);
    free(db);
    herald_store_cfg cfg = { .clock = &env.clock.clock };
    *s = NULL;
    return herald_store_open(url, &cfg, s);
}

static herald_store *open_store(const char *params)
{
    herald_store *s = NULL;
    int rc = try_open(params, &s);
    cr_assert_eq(rc, 0, "open: %s: %s", herald_err_name(rc), herald_last_error());
    return s;
}

/* Confirmed ids, kept by the senders (any thread). */
typedef struct ids {
    pthread_mutex_t mu;
    char (*v)[HERALD_ID_SIZE];
    size_t n, cap;
} ids;

static void ids_add(ids *c, const char *id)
{
    pthread_mutex_lock(&c->mu);
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 256;
        c->v = realloc(c->v, c->cap * sizeof *c->v);
    }
    memcpy(c->v[c->n++], id, HERALD_ID_SIZE);
    pthread_mutex_unlock(&c->mu);
}

static size_t ids_count(ids *c)
{
    pthread_mutex_lock(&c->mu);
    size_t n = c->n;
    pthread_mutex_unlock(&c->mu);
    return n;
}

static int send_one(herald_store *s, ids *confirmed)
{
    static const char body[] = "{\"payload\":\"0123456789012345678901234567890123456789\"}";
    herald_msg m = { body, sizeof body - 1, HERALD_CONTENT_JSON, HERALD_UNSET };
    char id[HERALD_ID_SIZE];
    int rc = herald_send(s, "q", &m, id);
    if (rc == 0)
        ids_add(confirmed, id);
    return rc;
}

static int send_batch(herald_store *s, ids *confirmed)
{
    static char body[2048];
    memset(body, 'b', sizeof body);
    herald_msg m[10];
    for (int i = 0; i < 10; i++)
        m[i] = (herald_msg){ body, sizeof body, HERALD_CONTENT_BYTES, HERALD_UNSET };
    char out[10][HERALD_ID_SIZE];
    int rc = herald_send_batch(s, "q", m, 10, HERALD_UNSET, out);
    for (int i = 0; rc == 0 && i < 10; i++)
        ids_add(confirmed, out[i]);
    return rc;
}

/* The error after a failure, and every refusal after it, names `cause`. */
static void assert_sticky(herald_store *s, int first_rc, const char *first_err, const char *cause)
{
    cr_assert_eq(first_rc, HERALD_EIO, "the failed write returned %s: %s",
                 herald_err_name(first_rc), first_err);
    cr_assert(strstr(first_err, cause), "the error does not name '%s': %s", cause, first_err);
    ids ignored = { .mu = PTHREAD_MUTEX_INITIALIZER };
    int rc = send_one(s, &ignored);
    cr_assert_eq(rc, HERALD_EIO, "a send after the failure: %s", herald_err_name(rc));
    const char *e = herald_last_error();
    cr_assert(strstr(e, "refuses writes") && strstr(e, cause),
              "the refusal does not say it is sticky and why ('%s'): %s", cause, e);
    rc = herald_queue_create(s, "other", NULL);
    cr_assert_eq(rc, HERALD_EIO, "queue create after the failure: %s", herald_err_name(rc));
    cr_assert(strstr(herald_last_error(), cause), "%s", herald_last_error());
    cr_assert_eq(ignored.n, 0);
    free(ignored.v);
}

/* With the fault gone: the closed store passes integrity_check, holds every confirmed id, and
 * reopens for writing. */
static void assert_reopens_with_everything_confirmed(const char *params, ids *confirmed)
{
    disarm_all();
    char *db = db_path();
    sqlite3 *raw = NULL;
    cr_assert_eq(sqlite3_open_v2(db, &raw, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(raw, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    cr_assert_eq(sqlite3_prepare_v2(raw, "SELECT count(*) FROM herald_messages WHERE id = ?1", -1,
                                    &st, NULL),
                 SQLITE_OK);
    for (size_t i = 0; i < confirmed->n; i++) {
        sqlite3_bind_text(st, 1, confirmed->v[i], -1, SQLITE_STATIC);
        cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
        cr_assert_eq(sqlite3_column_int(st, 0), 1, "confirmed message %zu of %zu (%s) is lost", i,
                     confirmed->n, confirmed->v[i]);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    sqlite3_close(raw);
    free(db);

    herald_store *s = open_store(params);
    ids more = { .mu = PTHREAD_MUTEX_INITIALIZER };
    int rc = send_one(s, &more);
    cr_assert_eq(rc, 0, "a send after reopening: %s", herald_last_error());
    cr_assert_geq(hx_stats(s, "q").backlog_count, (int64_t)confirmed->n + 1);
    herald_store_close(s);
    free(more.v);
}

/* ---- the writer's commit --------------------------------------------------------------------- */

static void commit_case(const char *params, int code, const char *cause)
{
    herald_store *s = open_store(params);
    cr_assert_eq(herald_queue_create(s, "q", NULL), 0);
    ids confirmed = { .mu = PTHREAD_MUTEX_INITIALIZER };
    for (int i = 0; i < 20; i++)
        cr_assert_eq(send_one(s, &confirmed), 0, "%s", herald_last_error());
    arm(K_WAL, OP_WRITE, code);
    int rc = send_one(s, &confirmed);
    char err[512];
    snprintf(err, sizeof err, "%s", herald_last_error());
    assert_sticky(s, rc, err, cause);
    cr_assert_eq(hx_stats(s, "q").backlog_count, 20, "reads go on; the failed commit left nothing");
    herald_store_close(s);
    assert_reopens_with_everything_confirmed(params, &confirmed);
    free(confirmed.v);
}

Test(io_faults, a_commit_on_a_full_disk_is_a_sticky_disk_full_error)
{
    commit_case("", SQLITE_FULL, "disk full");
}

Test(io_faults, a_commit_on_a_full_disk_is_a_sticky_disk_full_error_in_durability_normal)
{
    commit_case("?durability=normal", SQLITE_FULL, "disk full");
}

Test(io_faults, a_failed_write_of_the_wal_is_a_sticky_io_error_on_write)
{
    commit_case("", SQLITE_IOERR_WRITE, "I/O error on write");
}

/* ---- the syncer's fsync (durability full) ---------------------------------------------------- */

static void sync_case(int err, const char *cause)
{
    herald_store *s = open_store("");
    cr_assert_eq(herald_queue_create(s, "q", NULL), 0);
    ids confirmed = { .mu = PTHREAD_MUTEX_INITIALIZER };
    for (int i = 0; i < 20; i++)
        cr_assert_eq(send_one(s, &confirmed), 0, "%s", herald_last_error());
    herald__fault_io_arm("sqlite.wal_sync", err, 0);
    int rc = send_one(s, &confirmed);
    char err_text[512];
    snprintf(err_text, sizeof err_text, "%s", herald_last_error());
    cr_assert(strstr(err_text, "could not make the commit durable"), "%s", err_text);
    assert_sticky(s, rc, err_text, cause);
    herald_store_close(s);
    assert_reopens_with_everything_confirmed("", &confirmed);
    free(confirmed.v);
}

Test(io_faults, a_failed_fsync_of_the_wal_is_a_sticky_io_error_on_fsync)
{
    sync_case(EIO, "I/O error on fsync");
}

Test(io_faults, an_enospc_fsync_of_the_wal_is_a_sticky_disk_full_error)
{
    sync_case(ENOSPC, "disk full");
}

/* Several threads sending one message at a time while the fsync starts failing: every send
 * confirmed before is kept, every later one fails (groups committed after the failed fsync
 * included: nothing after it is trusted). */
typedef struct sender {
    herald_store *s;
    ids *confirmed;
    atomic_int *n_failed;
} sender;

static void *sender_main(void *p)
{
    sender *a = p;
    for (int i = 0; i < 100000; i++) {
        if (send_one(a->s, a->confirmed) < 0) {
            atomic_fetch_add(a->n_failed, 1);
            break;
        }
    }
    return NULL;
}

Test(io_faults, concurrent_senders_lose_nothing_confirmed_when_the_fsync_fails)
{
    herald_store *s = open_store("");
    cr_assert_eq(herald_queue_create(s, "q", NULL), 0);
    ids confirmed = { .mu = PTHREAD_MUTEX_INITIALIZER };
    atomic_int n_failed;
    atomic_init(&n_failed, 0);
    sender a = { s, &confirmed, &n_failed };
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, sender_main, &a), 0);
    HX_WAIT_UNTIL(ids_count(&confirmed) >= 200, 60000);
    herald__fault_io_arm("sqlite.wal_sync", EIO, 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    cr_assert_eq(atomic_load(&n_failed), 4, "a sender never saw the failure");
    herald_store_close(s);
    assert_reopens_with_everything_confirmed("", &confirmed);
    free(confirmed.v);
}

/* ---- checkpoints ----------------------------------------------------------------------------- */

/* The database file is written only by checkpoints (WAL mode): the checkpointer thread's, or
 * the writer's restart of the WAL. Small WAL limits make them happen within ~100 KiB. */
static void checkpoint_case(const char *params, int op, int code, const char *cause)
{
    herald__sq_test_wal_limits(10, 20, 40, 0);
    herald_store *s = open_store(params);
    cr_assert_eq(herald_queue_create(s, "q", NULL), 0);
    ids confirmed = { .mu = PTHREAD_MUTEX_INITIALIZER };
    arm(K_DB, op, code);
    int rc = 0;
    for (int k = 0; k < 200 && rc == 0; k++) /* 4 MiB: 25 times the WAL limit */
        rc = send_batch(s, &confirmed);
    char err[512];
    snprintf(err, sizeof err, "%s", herald_last_error());
    cr_assert_neq(rc, 0, "no write failed although every checkpoint did");
    cr_assert(strstr(err, "checkpoint"), "the error does not say a checkpoint failed: %s", err);
    assert_sticky(s, rc, err, cause);
    herald_store_close(s);
    assert_reopens_with_everything_confirmed(params, &confirmed);
    free(confirmed.v);
}

Test(io_faults, a_failed_checkpoint_write_is_a_sticky_io_error)
{
    checkpoint_case("", OP_WRITE, SQLITE_IOERR_WRITE, "I/O error on write");
}

Test(io_faults, a_checkpoint_on_a_full_disk_is_a_sticky_disk_full_error_in_durability_normal)
{
    checkpoint_case("?durability=normal", OP_WRITE, SQLITE_FULL, "disk full");
}

Test(io_faults, a_failed_checkpoint_fsync_is_a_sticky_io_error_on_fsync_in_durability_normal)
{
    checkpoint_case("?durability=normal", OP_SYNC, SQLITE_IOERR_FSYNC, "I/O error on fsync");
}

/* ---- opening --------------------------------------------------------------------------------- */

Test(io_faults, opening_a_new_store_on_a_full_disk_names_disk_full)
{
    arm(K_DB, OP_WRITE, SQLITE_FULL);
    arm(K_WAL, OP_WRITE, SQLITE_FULL);
    herald_store *s = NULL;
    int rc = try_open("", &s);
    cr_assert_null(s);
    cr_assert_lt(rc, 0);
    const char *e = herald_last_error();
    cr_log_info("open on a full disk: %s: %s", herald_err_name(rc), e);
    cr_assert(strstr(e, "disk full"), "%s: %s", herald_err_name(rc), e);
    cr_assert_null(strstr(e, "no transaction"), "a symptom instead of the cause: %s", e);
    disarm_all();
    s = open_store("");
    cr_assert_eq(herald_queue_create(s, "q", NULL), 0);
    herald_store_close(s);
}
