// SPDX-License-Identifier: MIT
/*
 * store_sqlite.c - the SQLite backend: connections, pragmas, migrations, transactions, the
 * checkpointer. The queue statements are in store_sqlite_queue.c.
 *
 * Connections (all SQLITE_OPEN_NOMUTEX; each is used by one thread at a time):
 *   wdb   the writer: only the group-commit writer thread runs statements on it (open and close
 *         run before the writer starts / after it stopped).
 *   rdb   the reader: under base.read_mu; WAL lets it read while the writer writes.
 * Checkpoints: wal_autocheckpoint is off. A checkpointer thread with its own connection copies
 *   the WAL beside the writer, woken every ckpt_pages, and the writer tries to restart the WAL
 *   (RESTART, not waiting) after each group once it passes wal_restart_pages (ckpt_main). No
 *   caller waits for a checkpoint and the WAL is reused, not grown - while that try succeeds.
 * WAL bound: it does not always: a checkpoint cannot restart the WAL while a reader holds a
 *   snapshot older than its end (a long herald_sql_query, another process's read transaction)
 *   or while another checkpoint runs, and the writer would go on appending (59 MB was seen under
 *   load). So at wal_max_pages no group begins (sq_begin -> wal_reset) until a RESTART has
 *   succeeded: it waits for our checkpointer thread, retries past another process's checkpoint,
 *   and lets SQLite's busy handler wait up to wal_wait_ms for old readers; then the group fails
 *   with HERALD_EBUSY (not sticky: the next group tries again). The WAL file thus never holds
 *   more than wal_max_pages plus one group's pages (per process writing); in durability NORMAL
 *   that is also the most a power loss can take. A larger group grows the file; journal_size_limit
 *   shrinks it back to wal_max_pages at the next restart. herald.h states these numbers.
 * I/O failures: every SQLite failure goes through herald__sq_fail / describe(), which names the
 *   cause ("disk full", "I/O error on fsync", ...); a failed checkpoint (checkpointer thread or
 *   writer) is kept in ckpt_src: sq_begin refuses every group after it and sq_after_commit makes
 *   it sticky in store.c (invariant 2).
 * Durability: journal_mode=WAL. FULL -> the WAL is fsynced after every commit group, but not
 *   by the commit: the connection runs synchronous=NORMAL and the store's syncer thread calls
 *   sq_sync (fdatasync of the WAL through a descriptor of our own) before the group's callers
 *   are released, while the writer already runs the next group. A crash before that fsync
 *   loses only groups nobody was told about; SQLite's WAL checksums make recovery stop at the
 *   last whole commit, so what survives is always a prefix. Checkpoints still fsync the WAL
 *   before copying it (synchronous=NORMAL does that). NORMAL -> synchronous=NORMAL and no
 *   syncer: the WAL reaches the disk at the checkpointer's checkpoints (herald.h's bound).
 * Identity: application_id = 'HRLD'; user_version = the highest applied migration. A file with
 *   another application_id, or foreign tables and none, is refused (HERALD_ENOTHERALD); a
 *   user_version above what this build knows is refused (HERALD_ESCHEMA). Each migration runs in
 *   its own transaction together with its user_version bump.
 */
#include "store/store_sqlite.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/migrations.h"

#define HERALD_APP_ID 0x48524c44 /* 'HRLD' */
#define BUSY_TIMEOUT_MS 10000    /* how long a connection waits for another process's lock */

/* The WAL bound (pages of 4 KiB; see "WAL bound" at the top). herald.h and the README state
 * these numbers: change them together. */
static int ckpt_pages = 1000;        /* ~4 MiB of WAL between the checkpointer's runs */
static int wal_restart_pages = 8000; /* ~32 MiB: the writer tries to restart the WAL */
static int wal_max_pages = 10000;    /* ~40 MiB: no group begins until the WAL restarted */
static int wal_wait_ms = BUSY_TIMEOUT_MS; /* how long a group waits for that */

void herald__sq_test_wal_limits(int ckpt, int restart, int max, int wait_ms)
{
    ckpt_pages = ckpt > 0 ? ckpt : 1000;
    wal_restart_pages = restart > 0 ? restart : 8000;
    wal_max_pages = max > 0 ? max : 10000;
    wal_wait_ms = wait_ms > 0 ? wait_ms : BUSY_TIMEOUT_MS;
}

/* What an I/O failure means to the user, or NULL: "disk full" (SQLite's SQLITE_FULL is ENOSPC
 * on a write; an fsync may report ENOSPC too), "I/O error on fsync", ... */
static const char *io_cause(int src, int sys_errno)
{
    if ((src & 0xff) == SQLITE_FULL || sys_errno == ENOSPC || sys_errno == EDQUOT)
        return "disk full";
    switch (src) {
    case SQLITE_IOERR_FSYNC:
    case SQLITE_IOERR_DIR_FSYNC:
        return "I/O error on fsync";
    case SQLITE_IOERR_WRITE:
        return "I/O error on write";
    case SQLITE_IOERR_READ:
    case SQLITE_IOERR_SHORT_READ:
        return "I/O error on read";
    default:
        return (src & 0xff) == SQLITE_IOERR ? "I/O error" : NULL;
    }
}

/* "disk full (database or disk is full; errno 28: No space left on device; sqlite code 13)",
 * or SQLite's own message when src is not an I/O failure. */
static void describe(sqlite3 *db, int src, char *buf, size_t n)
{
    const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(src);
    bool is_io = (src & 0xff) == SQLITE_IOERR || (src & 0xff) == SQLITE_FULL;
    int e = db && is_io ? sqlite3_system_errno(db) : 0; /* else it may be a stale one */
    const char *cause = io_cause(src, e);
    if (!cause)
        snprintf(buf, n, "%s (sqlite code %d)", msg, src);
    else if (e)
        snprintf(buf, n, "%s (%s; errno %d: %s; sqlite code %d)", cause, msg, e, strerror(e),
                 src);
    else
        snprintf(buf, n, "%s (%s; sqlite code %d)", cause, msg, src);
}

int herald__sq_fail(sqlite3 *db, int src, const char *what)
{
    char msg[320];
    describe(db, src, msg, sizeof msg);
    int rc;
    switch (src & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        rc = HERALD_EBUSY;
        break;
    case SQLITE_IOERR:
    case SQLITE_FULL:
        rc = HERALD_EIO;
        break;
    case SQLITE_NOTADB:
        rc = HERALD_ENOTHERALD;
        break;
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
        rc = HERALD_EREADONLY;
        break;
    case SQLITE_CONSTRAINT: /* only a duplicate key means "exists"; NOT NULL etc. do not */
        rc = src == SQLITE_CONSTRAINT_UNIQUE || src == SQLITE_CONSTRAINT_PRIMARYKEY
                 ? HERALD_EEXIST
                 : HERALD_ESTORE;
        break;
    case SQLITE_NOMEM:
        rc = HERALD_ENOMEM;
        break;
    default:
        rc = HERALD_ESTORE;
        break;
    }
    return herald__err(rc, "%s: %s", what, msg);
}

int herald__sq_exec(sq_store *q, sqlite3_stmt *st, const char *what)
{
    int src = sqlite3_step(st);
    int rc = (src == SQLITE_DONE || src == SQLITE_ROW) ? 0 : herald__sq_fail(q->wdb, src, what);
    sqlite3_reset(st);
    return rc;
}

int herald__sq_collect(sqlite3 *db, sqlite3_stmt *st, size_t elem_size,
                       void (*fill)(sqlite3_stmt *st, void *elem), void **out, size_t *n,
                       const char *what)
{
    size_t cap = 16, k = 0;
    char *v = herald__xcalloc(cap, elem_size);
    int src;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (k == cap) {
            cap *= 2;
            v = herald__xrealloc(v, cap * elem_size);
        }
        memset(v + k * elem_size, 0, elem_size);
        fill(st, v + k * elem_size);
        k++;
    }
    sqlite3_reset(st);
    if (src != SQLITE_DONE) {
        herald__free(v);
        return herald__sq_fail(db, src, what);
    }
    *out = v;
    *n = k;
    return 0;
}

static int exec_sql(sqlite3 *db, const char *sql, const char *what)
{
    char *emsg = NULL;
    int src = sqlite3_exec(db, sql, NULL, NULL, &emsg);
    sqlite3_free(emsg);
    return src == SQLITE_OK ? 0 : herald__sq_fail(db, src, what);
}

static int pragma_int(sqlite3 *db, const char *sql, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (src == SQLITE_OK) {
        src = sqlite3_step(st);
        if (src == SQLITE_ROW) {
            *out = sqlite3_column_int64(st, 0);
            src = SQLITE_OK;
        }
    }
    int rc = src == SQLITE_OK ? 0 : herald__sq_fail(db, src, sql);
    sqlite3_finalize(st);
    return rc;
}

/* ---- URL ---- */

static int parse_location(const char *rest, const herald__store_opts *o, char **path_out,
                          herald_durability *dur)
{
    *dur = HERALD_DURABILITY_FULL;
    if (strncmp(rest, "//", 2) == 0)
        rest += 2;
    const char *qm = strchr(rest, '?');
    size_t plen = qm ? (size_t)(qm - rest) : strlen(rest);
    if (plen == 0)
        return herald__err(HERALD_EURL,
                           "malformed store URL 'sqlite:%s': the database path is empty", rest);
    if (qm) {
        const char *p = qm + 1;
        while (*p) {
            const char *amp = strchr(p, '&');
            size_t n = amp ? (size_t)(amp - p) : strlen(p);
            if (n == 15 && strncmp(p, "durability=full", 15) == 0)
                *dur = HERALD_DURABILITY_FULL;
            else if (n == 17 && strncmp(p, "durability=normal", 17) == 0)
                *dur = HERALD_DURABILITY_NORMAL;
            else
                return herald__err(HERALD_EURL,
                                   "malformed store URL: unknown parameter '%.*s' (known: "
                                   "durability=full|normal)",
                                   (int)n, p);
            p += n;
            if (*p == '&')
                p++;
        }
    }
    if (o->durability_set)
        *dur = o->durability;
    *path_out = herald__xmalloc(plen + 1);
    memcpy(*path_out, rest, plen);
    (*path_out)[plen] = 0;
    return 0;
}

/* ---- identity and migrations ---- */

/* The three reads are one read transaction: another process may be running the first
 * migration, and reads from before and after its commit would make a half-made store. */
static int read_identity(sqlite3 *db, const char *path, int64_t *app_id, int64_t *user_version,
                         int64_t *n_objects)
{
    int rc = pragma_int(db, "PRAGMA application_id", app_id);
    if (rc < 0 && (sqlite3_errcode(db) & 0xff) == SQLITE_NOTADB)
        return herald__err(HERALD_ENOTHERALD, "'%s' is not a Herald database (not an SQLite file)",
                           path);
    if (rc == 0)
        rc = pragma_int(db, "PRAGMA user_version", user_version);
    if (rc == 0)
        rc = pragma_int(db, "SELECT count(*) FROM sqlite_schema", n_objects);
    return rc;
}

static int check_identity(sqlite3 *db, const char *path)
{
    int64_t app_id = 0, user_version = 0, n_objects = 0;
    int rc = exec_sql(db, "BEGIN", "begin reading the store's identity");
    if (rc == 0) {
        rc = read_identity(db, path, &app_id, &user_version, &n_objects);
        if (!sqlite3_get_autocommit(db))
            (void)sqlite3_exec(db, "COMMIT", NULL, NULL, NULL); /* a read: nothing to keep */
    }
    if (rc < 0)
        return rc;
    if (app_id == 0 && n_objects == 0 && user_version == 0)
        return 0; /* new: claimed by the first migration */
    if (app_id != HERALD_APP_ID)
        return herald__err(HERALD_ENOTHERALD,
                           "'%s' is not a Herald database (an SQLite file with application_id "
                           "0x%llx and %lld schema objects)",
                           path, (unsigned long long)app_id, (long long)n_objects);
    int known = herald__n_migrations ? herald__migrations[herald__n_migrations - 1].version : 0;
    if (user_version > known)
        return herald__err(HERALD_ESCHEMA,
                           "'%s' has schema version %lld, newer than this Herald supports (%d): "
                           "upgrade Herald to open it",
                           path, (long long)user_version, known);
    return 0;
}

static int migrate(sqlite3 *db, int *version_out)
{
    int64_t cur = 0;
    int rc = pragma_int(db, "PRAGMA user_version", &cur);
    for (int i = 0; rc == 0 && i < herald__n_migrations; i++) {
        const herald__migration *m = &herald__migrations[i];
        if (m->version <= cur)
            continue;
        if ((rc = exec_sql(db, "BEGIN IMMEDIATE", "begin migration")) < 0)
            break;
        /* Re-read inside the write lock: another process may have migrated meanwhile. */
        if ((rc = pragma_int(db, "PRAGMA user_version", &cur)) == 0 && m->version > cur) {
            char tail[96];
            snprintf(tail, sizeof tail, "PRAGMA application_id = %d; PRAGMA user_version = %d;",
                     HERALD_APP_ID, m->version);
            rc = exec_sql(db, m->sql, m->name);
            if (rc == 0)
                rc = exec_sql(db, tail, "set schema version");
        }
        if (rc == 0)
            rc = exec_sql(db, "COMMIT", "commit migration");
        if (rc < 0) { /* keep the first error: a failed ROLLBACK must not replace it */
            if (!sqlite3_get_autocommit(db))
                (void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            break;
        }
        cur = m->version;
    }
    if (rc == 0)
        *version_out = (int)cur;
    return rc;
}

int herald_schema_version_supported(void)
{
    return herald__n_migrations ? herald__migrations[herald__n_migrations - 1].version : 0;
}

/* ---- checkpoints ---- */

static int wal_hook(void *ud, sqlite3 *db, const char *name, int pages)
{
    (void)db;
    (void)name;
    ((sq_store *)ud)->wal_pages = pages;
    return SQLITE_OK;
}

static int open_conn(const char *path, int flags, sqlite3 **out);

/* The background checkpointer: PASSIVE checkpoints on a connection of its own, so that copying
 * the WAL into the database and the fsyncs that go with it run beside the writer instead of
 * inside it (in durability normal, those fsyncs are what makes commits durable). A busy writer
 * never lets a concurrent checkpoint finish the whole WAL (new frames arrive meanwhile), so the
 * WAL would not restart and would grow without bound: once it passes wal_restart_pages the
 * writer itself tries a RESTART checkpoint between groups - by then the checkpointer has copied
 * nearly everything, so that is short - and past wal_max_pages it waits for one (wal_reset). */
static void *ckpt_main(void *arg)
{
    sq_store *q = arg;
    pthread_mutex_lock(&q->ckpt_mu);
    for (;;) {
        while (!q->ckpt_wanted && !q->ckpt_stop)
            pthread_cond_wait(&q->ckpt_cv, &q->ckpt_mu);
        if (q->ckpt_stop)
            break;
        q->ckpt_wanted = false;
        q->ckpt_running = true;
        pthread_mutex_unlock(&q->ckpt_mu);
        int log = 0, done = 0;
        int src = sqlite3_wal_checkpoint_v2(q->cdb, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
        pthread_mutex_lock(&q->ckpt_mu);
        q->ckpt_running = false;
        pthread_cond_broadcast(&q->ckpt_idle_cv);
        if (src != SQLITE_OK && src != SQLITE_BUSY && q->ckpt_src == SQLITE_OK) {
            q->ckpt_src = src; /* sq_begin refuses groups; sq_after_commit makes it sticky */
            describe(q->cdb, src, q->ckpt_err, sizeof q->ckpt_err);
        }
    }
    pthread_mutex_unlock(&q->ckpt_mu);
    return NULL;
}

static int ckpt_start(sq_store *q)
{
    int rc = open_conn(q->path, SQLITE_OPEN_READWRITE, &q->cdb);
    /* A connection that never read has not opened the WAL: its checkpoints would do nothing
     * (SQLite returns OK with log -1). One read attaches it. */
    if (rc == 0)
        rc = exec_sql(q->cdb, "SELECT count(*) FROM sqlite_schema", "open the checkpointer");
    if (rc < 0)
        return rc;
    pthread_mutex_init(&q->ckpt_mu, NULL);
    pthread_cond_init(&q->ckpt_cv, NULL);
    pthread_cond_init(&q->ckpt_idle_cv, NULL);
    int prc = pthread_create(&q->ckpt_thread, NULL, ckpt_main, q);
    if (prc != 0) {
        pthread_cond_destroy(&q->ckpt_idle_cv);
        pthread_cond_destroy(&q->ckpt_cv);
        pthread_mutex_destroy(&q->ckpt_mu);
        return herald__err(-prc, "cannot start the checkpointer thread: %s", strerror(prc));
    }
    q->has_ckpt_thread = true;
    return 0;
}

static void ckpt_stop(sq_store *q)
{
    if (q->has_ckpt_thread) {
        pthread_mutex_lock(&q->ckpt_mu);
        q->ckpt_stop = true;
        pthread_cond_signal(&q->ckpt_cv);
        pthread_mutex_unlock(&q->ckpt_mu);
        pthread_join(q->ckpt_thread, NULL);
        pthread_cond_destroy(&q->ckpt_idle_cv);
        pthread_cond_destroy(&q->ckpt_cv);
        pthread_mutex_destroy(&q->ckpt_mu);
        q->has_ckpt_thread = false;
    }
    sqlite3_close(q->cdb);
    q->cdb = NULL;
}

/* Debug log of a checkpoint the writer ran (what: why), started at monotonic t0_ns. */
static void log_checkpoint(const char *what, int log, int done, int64_t t0_ns)
{
    if (!herald__log_enabled(HERALD_LOG_DEBUG))
        return;
    char b[96];
    snprintf(b, sizeof b, "%d frames, %d backfilled, %.2f ms", log, done,
             (double)(herald__mono_ns() - t0_ns) / 1e6);
    herald__log(HERALD_LOG_DEBUG, what, "result", b, NULL);
}

/* Writer thread, between commit groups: wake the checkpointer once the WAL passes ckpt_pages
 * more frames, and try to RESTART the WAL past wal_restart_pages (see ckpt_main; past
 * wal_max_pages sq_begin insists: wal_reset). */
static int sq_after_commit(herald_store *s)
{
    sq_store *q = (sq_store *)s;
    pthread_mutex_lock(&q->ckpt_mu);
    int bad = q->ckpt_reported ? SQLITE_OK : q->ckpt_src;
    q->ckpt_reported = q->ckpt_reported || bad != SQLITE_OK; /* sticky in store.c now */
    if (q->wal_pages < q->ckpt_asked_at) /* the WAL restarted by itself */
        q->ckpt_asked_at = 0;
    if (bad == SQLITE_OK && q->wal_pages >= q->ckpt_asked_at + ckpt_pages) {
        q->ckpt_wanted = true;
        q->ckpt_asked_at = q->wal_pages;
        pthread_cond_signal(&q->ckpt_cv);
    }
    pthread_mutex_unlock(&q->ckpt_mu);
    if (bad != SQLITE_OK)
        return herald__err(HERALD_EIO, "checkpoint failed: %s", q->ckpt_err);
    if (q->wal_pages < wal_restart_pages)
        return 0;
    int log = 0, done = 0;
    int64_t t0 = herald__mono_ns();
    /* RESTART waits for readers of older snapshots and for the checkpointer thread: never
     * here, with the write lock held - if it is busy, the next group tries again. */
    sqlite3_busy_timeout(q->wdb, 0);
    int src = sqlite3_wal_checkpoint_v2(q->wdb, NULL, SQLITE_CHECKPOINT_RESTART, &log, &done);
    sqlite3_busy_timeout(q->wdb, BUSY_TIMEOUT_MS);
    log_checkpoint("checkpoint", log, done, t0);
    if ((src & 0xff) == SQLITE_BUSY) /* a reader or the checkpointer held it back: next time */
        return 0;
    q->wal_pages = 0;
    q->ckpt_asked_at = 0;
    if (src == SQLITE_OK)
        return 0;
    /* In durability normal a checkpoint is where the WAL reaches the disk: a failure is a
     * failed durable write (STYLE.md §7.2). */
    return herald__sq_fail(q->wdb, src, "checkpoint");
}

/* Writer thread, before a group begins, once the WAL holds wal_max_pages: the WAL must restart
 * before it grows further (the bound, see the top). A RESTART checkpoint copies what is left
 * and waits - up to wal_wait_ms - for the readers of older snapshots to finish; SQLite's busy
 * handler does the waiting, except for another connection's checkpoint, which makes it return
 * at once: ours is waited for here, another process's by trying again. */
static int wal_reset(sq_store *q)
{
    pthread_mutex_lock(&q->ckpt_mu);
    q->ckpt_wanted = false; /* only this thread sets it: the checkpointer stays idle */
    while (q->ckpt_running)
        pthread_cond_wait(&q->ckpt_idle_cv, &q->ckpt_mu);
    pthread_mutex_unlock(&q->ckpt_mu);
    int64_t t0 = herald__mono_ns(), deadline = t0 + (int64_t)wal_wait_ms * 1000000;
    int src, log = 0, done = 0;
    for (;;) {
        int64_t left_ms = (deadline - herald__mono_ns()) / 1000000;
        sqlite3_busy_timeout(q->wdb, left_ms > 0 ? (int)left_ms : 0);
        src = sqlite3_wal_checkpoint_v2(q->wdb, NULL, SQLITE_CHECKPOINT_RESTART, &log, &done);
        if ((src & 0xff) != SQLITE_BUSY || herald__mono_ns() >= deadline)
            break;
        usleep(1000); /* another process's checkpoint holds the checkpoint lock */
    }
    sqlite3_busy_timeout(q->wdb, BUSY_TIMEOUT_MS);
    log_checkpoint("wal limit reached: restart", log, done, t0);
    if (src == SQLITE_OK) {
        q->wal_pages = 0;
        q->ckpt_asked_at = 0;
        return 0;
    }
    if ((src & 0xff) == SQLITE_BUSY) {
        herald__log(HERALD_LOG_WARN, "the write-ahead log is at its limit and a reader of an "
                    "older snapshot keeps it from restarting: writes fail with HERALD_EBUSY "
                    "until it ends", "store", q->path, NULL);
        return herald__err(HERALD_EBUSY,
                           "the write-ahead log of '%s' reached its limit of %d pages (~%d MiB) "
                           "and could not be restarted within %d ms: a reader has held an older "
                           "snapshot all that time (a herald_sql_query still running its row "
                           "callback, or a read transaction of another process); writes resume "
                           "once it ends",
                           q->path, wal_max_pages, (int)((int64_t)wal_max_pages * 4096 >> 20),
                           wal_wait_ms);
    }
    int rc = herald__sq_fail(q->wdb, src, "checkpoint (write-ahead log restart)");
    pthread_mutex_lock(&q->ckpt_mu);
    if (q->ckpt_src == SQLITE_OK) { /* sticky, as the checkpointer's failures (sq_after_commit) */
        q->ckpt_src = src;
        describe(q->wdb, src, q->ckpt_err, sizeof q->ckpt_err);
    }
    pthread_mutex_unlock(&q->ckpt_mu);
    return rc;
}

/* ---- open / close ---- */

static void sq_close(herald_store *s);

/* The message seq mark and the highest seq (sq_begin). */
static const char seq_read_sql[] = "SELECT (SELECT value FROM herald_meta "
                                   "WHERE key = 'message_seq'), "
                                   "(SELECT max(seq) FROM herald_messages)";

static int prepare_all(sq_store *q)
{
    static const char *const generic[] = {
        [W_SEQ_READ] = seq_read_sql,
        [W_SEQ_MARK] = "UPDATE herald_meta SET value = ?1 WHERE key = 'message_seq'",
        [W_BEGIN] = "BEGIN IMMEDIATE",   [W_COMMIT] = "COMMIT",
        [W_ROLLBACK] = "ROLLBACK",       [W_SAVEPOINT] = "SAVEPOINT op",
        [W_RELEASE] = "RELEASE op",      [W_ROLLBACK_TO] = "ROLLBACK TO op",
        [W_SP_BEGIN] = "SAVEPOINT msg",  [W_SP_RELEASE] = "RELEASE msg",
        [W_SP_ROLLBACK] = "ROLLBACK TO msg",
    };
    for (int i = 0; i < W_N; i++) {
        const char *sql = i < (int)(sizeof generic / sizeof generic[0]) && generic[i]
                              ? generic[i]
                          : i == W_LEASE_BATCH || i == W_ACK_BATCH ? herald__sq_batch_sql(i)
                                                                   : herald__sq_wsql[i];
        int src = sqlite3_prepare_v3(q->wdb, sql, -1, SQLITE_PREPARE_PERSISTENT, &q->w[i], NULL);
        if (src != SQLITE_OK)
            return herald__sq_fail(q->wdb, src, "prepare writer statement");
    }
    for (int i = 0; i < R_N; i++) {
        int src = sqlite3_prepare_v3(q->rdb, herald__sq_rsql[i], -1, SQLITE_PREPARE_PERSISTENT,
                                     &q->r[i], NULL);
        if (src != SQLITE_OK)
            return herald__sq_fail(q->rdb, src, "prepare reader statement");
    }
    return 0;
}

static int open_conn(const char *path, int flags, sqlite3 **out)
{
    sqlite3 *db = NULL;
    int src = sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOMUTEX, NULL);
    if (src != SQLITE_OK) {
        int rc = herald__err(src == SQLITE_CANTOPEN || src == SQLITE_PERM ||
                                     src == SQLITE_READONLY
                                 ? HERALD_EREADONLY
                                 : HERALD_ESTORE,
                             "cannot open or create the store '%s': %s (does the directory exist "
                             "and is it writable?)",
                             path, db ? sqlite3_errmsg(db) : sqlite3_errstr(src));
        sqlite3_close(db);
        return rc;
    }
    sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(db, 1);
    *out = db;
    return 0;
}

/* ---- the deferred fsync (durability FULL) ---- */

/* fsyncs the directory holding path, so a newly created file's name is durable too. */
static int sync_dir_of(const char *path)
{
    char *copy = herald__xstrdup(path);
    int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;
    if (dfd < 0 || fsync(dfd) != 0)
        rc = herald__err(HERALD_EIO, "cannot sync the directory of '%s': %s", path,
                         strerror(errno));
    if (dfd >= 0)
        close(dfd);
    herald__free(copy);
    return rc;
}

/* Opens (or reopens, if SQLite replaced the file) our descriptor of the WAL. */
static int wal_open(sq_store *q, bool must_exist)
{
    char wal[4096];
    if (snprintf(wal, sizeof wal, "%s-wal", q->path) >= (int)sizeof wal)
        return herald__err(HERALD_EINVAL, "store path too long: %s", q->path);
    if (q->wal_fd >= 0)
        close(q->wal_fd);
    q->wal_fd = open(wal, O_RDONLY | O_CLOEXEC);
    if (q->wal_fd < 0 && errno == ENOENT && !must_exist)
        return 0; /* no WAL yet: sq_sync opens it after the first commit made one */
    if (q->wal_fd < 0)
        return herald__err(HERALD_EIO, "cannot open the write-ahead log '%s' to sync it: %s",
                           wal, strerror(errno));
    return sync_dir_of(wal);
}

/* Syncer thread (store.c): makes every commit so far durable. fdatasync on our descriptor
 * flushes the file's pages whoever wrote them. */
static int sq_sync(herald_store *s)
{
    sq_store *q = (sq_store *)s;
    struct stat st;
    int rc = 0;
    if (q->wal_fd < 0 || (fstat(q->wal_fd, &st) == 0 && st.st_nlink == 0))
        rc = wal_open(q, true); /* none yet, or SQLite made a new one: sync that */
    if (rc < 0)
        return rc;
    int e = -herald__fault_io("sqlite.wal_sync");
    if (e == 0 && fdatasync(q->wal_fd) != 0)
        e = errno;
    if (e == ENOSPC || e == EDQUOT)
        return herald__err(HERALD_EIO, "disk full: fsync of the write-ahead log of '%s' failed: "
                           "%s", q->path, strerror(e));
    if (e != 0)
        return herald__err(HERALD_EIO, "I/O error on fsync of the write-ahead log of '%s': %s",
                           q->path, strerror(e));
    return 0;
}

static const char *file_kind(mode_t m)
{
    return S_ISDIR(m)    ? "a directory"
           : S_ISCHR(m)  ? "a character device"
           : S_ISBLK(m)  ? "a block device"
           : S_ISFIFO(m) ? "a FIFO"
           : S_ISSOCK(m) ? "a socket"
                         : "not a regular file";
}

/* A store is a regular file (or none yet). SQLite would open /dev/null or a FIFO and fail later
 * with an error that names a symptom ("no transaction is active"), not the cause. */
static int check_regular(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0 || S_ISREG(st.st_mode))
        return 0; /* missing: created; unreadable: open_conn says why */
    return herald__err(HERALD_ENOTHERALD,
                       "'%s' is not a Herald database: it is %s, and a store is a regular file "
                       "(an SQLite database)",
                       path, file_kind(st.st_mode));
}

static int sq_open(const char *rest, const herald__store_opts *o, herald_store **out)
{
    char *path = NULL;
    herald_durability dur;
    int rc = parse_location(rest, o, &path, &dur);
    if (rc == 0)
        rc = check_regular(path);
    if (rc < 0) {
        herald__free(path);
        return rc;
    }
    sq_store *q = herald__xcalloc(1, sizeof *q);
    q->path = path;
    q->wal_fd = -1;
    q->inflight_fd = -1;
    q->base.durability = dur;
    rc = open_conn(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &q->wdb);
    if (rc == 0)
        rc = check_identity(q->wdb, path);
    if (rc == 0) {
        sqlite3_stmt *st = NULL;
        int src = sqlite3_prepare_v2(q->wdb, "PRAGMA journal_mode=WAL", -1, &st, NULL);
        if (src == SQLITE_OK)
            src = sqlite3_step(st);
        /* Two processes creating the same new file race for the switch to WAL; the loser gets
         * SQLITE_BUSY without the busy handler: wait and try again (bounded, ~5 s). */
        for (int tries = 0; (src & 0xff) == SQLITE_BUSY && tries < 500; tries++) {
            sqlite3_reset(st);
            usleep(10000);
            src = sqlite3_step(st);
        }
        if (src == SQLITE_ROW &&
            strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0)
            rc = herald__err(HERALD_EREADONLY,
                             "cannot switch '%s' to WAL mode (is the file or its directory "
                             "read-only?)",
                             path);
        else if (src != SQLITE_ROW)
            rc = herald__sq_fail(q->wdb, src, "set WAL mode (is the store writable?)");
        sqlite3_finalize(st);
    }
    /* FULL: the commits' fsync is sq_sync's, on the syncer thread (see the top). The
     * migrations run before the syncer exists: they keep synchronous=FULL. */
    if (rc == 0)
        rc = exec_sql(q->wdb, "PRAGMA synchronous=FULL", "set durability");
    if (rc == 0)
        rc = exec_sql(q->wdb, "PRAGMA cache_size=-32768; PRAGMA temp_store=MEMORY",
                      "set cache");
    if (rc == 0) { /* a WAL that one large group grew past the bound shrinks back when it
                    * restarts (SQLite truncates it at the first commit after a restart) */
        char lim[64];
        snprintf(lim, sizeof lim, "PRAGMA journal_size_limit=%lld",
                 (long long)(32 + (int64_t)wal_max_pages * (4096 + 24)));
        rc = exec_sql(q->wdb, lim, "set the WAL size limit");
    }
    if (rc == 0)
        rc = migrate(q->wdb, &q->schema_version);
    if (rc == 0)
        rc = herald__sq_inflight_recover(q);
    if (rc == 0 && dur == HERALD_DURABILITY_FULL)
        rc = wal_open(q, false);
    if (rc == 0)
        rc = exec_sql(q->wdb, "PRAGMA synchronous=NORMAL", "set durability");
    q->base.has_syncer = rc == 0 && dur == HERALD_DURABILITY_FULL;
    if (rc == 0)
        rc = open_conn(path, SQLITE_OPEN_READWRITE, &q->rdb);
    if (rc == 0) /* before prepare_all: installing it expires every prepared statement */
        herald__sq_install_authorizer(q);
    if (rc == 0)
        rc = prepare_all(q);
    if (rc == 0)
        rc = ckpt_start(q);
    if (rc == 0) {
        sqlite3_wal_autocheckpoint(q->wdb, 0); /* sq_after_commit() and ckpt_main() do it */
        sqlite3_wal_hook(q->wdb, wal_hook, q);
    }
    if (rc < 0) {
        sq_close(&q->base);
        return rc;
    }
    *out = &q->base;
    return 0;
}

static void sq_close(herald_store *s)
{
    sq_store *q = (sq_store *)s;
    herald__sq_cache_free(q->wcache);
    herald__sq_cache_free(q->rcache);
    herald__free(q->qcache);
    herald__free(q->pending);
    for (int i = 0; i < W_N; i++)
        sqlite3_finalize(q->w[i]);
    for (int i = 0; i < R_N; i++)
        sqlite3_finalize(q->r[i]);
    herald__sq_catalog_close(q);
    ckpt_stop(q);
    sqlite3_close(q->rdb);
    if (q->wdb && q->schema_version > 0)
        (void)sqlite3_wal_checkpoint_v2(q->wdb, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    sqlite3_close(q->wdb);
    herald__sq_inflight_close(q);
    if (q->wal_fd >= 0)
        close(q->wal_fd);
    herald__free(q->path);
    herald__free(q);
}

static int sq_schema_version(herald_store *s)
{
    return ((sq_store *)s)->schema_version;
}

/* ---- transactions (writer thread) ---- */

static int sq_begin(herald_store *s)
{
    sq_store *q = (sq_store *)s;
    herald__sq_qcache_clear(q);
    herald__sq_counters_reset(q);
    pthread_mutex_lock(&q->ckpt_mu);
    int bad = q->ckpt_src;
    pthread_mutex_unlock(&q->ckpt_mu);
    if (bad != SQLITE_OK) /* a checkpoint failed: no group begins (invariant 2 of store.c) */
        return herald__err(HERALD_EIO, "checkpoint failed: %s", q->ckpt_err);
    int rc = q->wal_pages >= wal_max_pages ? wal_reset(q) : 0;
    if (rc < 0)
        return rc;
    rc = herald__sq_exec(q, q->w[W_BEGIN], "begin transaction");
    if (rc < 0)
        return rc;
    /* Inside the write lock: other processes' seqs are in the mark or in the table. */
    sqlite3_stmt *st = q->w[W_SEQ_READ];
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        q->seq_mark = sqlite3_column_int64(st, 0);
        int64_t max_seq = sqlite3_column_int64(st, 1);
        q->next_seq = (max_seq > q->seq_mark ? max_seq : q->seq_mark) + 1;
        src = sqlite3_step(st);
    }
    sqlite3_reset(st);
    if (src == SQLITE_DONE)
        return 0;
    rc = herald__sq_fail(q->wdb, src, "read the message seq mark");
    if (!sqlite3_get_autocommit(q->wdb)) /* the BEGIN held: do not keep the write lock */
        (void)sqlite3_exec(q->wdb, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static int sq_commit(herald_store *s)
{
    sq_store *q = (sq_store *)s;
    int rc = herald__sq_counters_flush(q);
    if (rc == 0 && q->next_seq - 1 > q->seq_mark) {
        sqlite3_bind_int64(q->w[W_SEQ_MARK], 1, q->next_seq - 1);
        rc = herald__sq_exec(q, q->w[W_SEQ_MARK], "record the message seq mark");
    }
    return rc < 0 ? rc : herald__sq_exec(q, q->w[W_COMMIT], "commit");
}

static int sq_rollback(herald_store *s)
{
    sq_store *q = (sq_store *)s;
    herald__sq_qcache_clear(q);
    herald__sq_counters_reset(q);
    if (sqlite3_get_autocommit(q->wdb))
        return 0; /* SQLite already rolled back (e.g. after an I/O error) */
    return herald__sq_exec(q, q->w[W_ROLLBACK], "rollback");
}

static int sq_savepoint(herald_store *s)
{
    sq_store *q = (sq_store *)s;
    herald__sq_counters_savepoint(q);
    return herald__sq_exec(q, q->w[W_SAVEPOINT], "savepoint");
}

static int sq_release(herald_store *s)
{
    sq_store *q = (sq_store *)s;
    herald__sq_counters_release(q);
    return herald__sq_exec(q, q->w[W_RELEASE], "release savepoint");
}

static int sq_rollback_to(herald_store *s)
{
    sq_store *q = (sq_store *)s;
    herald__sq_qcache_clear(q);
    herald__sq_counters_rollback_to(q);
    return herald__sq_exec(q, q->w[W_ROLLBACK_TO], "rollback to savepoint");
}

static bool sq_in_transaction(herald_store *s)
{
    return !sqlite3_get_autocommit(((sq_store *)s)->wdb);
}

static void sq_inflight_running(herald_store *s, int64_t i)
{
    herald__sq_inflight_running((sq_store *)s, i);
}

const herald_store_ops herald__store_sqlite = {
    .scheme = "sqlite",
    .abi = HERALD_STORE_ABI,
    .sync = sq_sync,
    .open = sq_open,
    .close = sq_close,
    .schema_version = sq_schema_version,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .savepoint = sq_savepoint,
    .release = sq_release,
    .rollback_to = sq_rollback_to,
    .after_commit = sq_after_commit,
    .queue_create = herald__sq_queue_create,
    .queue_update = herald__sq_queue_update,
    .queue_delete = herald__sq_queue_delete,
    .queue_purge = herald__sq_queue_purge,
    .queue_set_paused = herald__sq_queue_set_paused,
    .msg_put = herald__sq_msg_put,
    .lease = herald__sq_lease,
    .take = herald__sq_take,
    .inflight_running = sq_inflight_running,
    .in_transaction = sq_in_transaction,
    .settle = herald__sq_settle,
    .extend = herald__sq_extend,
    .sweep = herald__sq_sweep,
    .expire = herald__sq_expire,
    .expired_scan = herald__sq_expired_scan,
    .queue_get = herald__sq_queue_get,
    .queue_list = herald__sq_queue_list,
    .queue_stats = herald__sq_queue_stats,
    .peek = herald__sq_peek,
    .ready = herald__sq_ready,
    .data_version = herald__sq_data_version,
    .catalog_version = herald__sq_catalog_version,
    .catalog_get = herald__sq_catalog_get,
    .catalog_put = herald__sq_catalog_put,
    .catalog_in_use = herald__sq_catalog_in_use,
    .catalog_history = herald__sq_catalog_history,
    .sp_begin = herald__sq_sp_begin,
    .sp_release = herald__sq_sp_release,
    .sp_rollback = herald__sq_sp_rollback,
    .user_sql = herald__sq_user_sql,
    .processed_claim = herald__sq_processed_claim,
    .topic_subscribe = herald__sq_topic_subscribe,
    .topic_unsubscribe = herald__sq_topic_unsubscribe,
    .topic_publish = herald__sq_topic_publish,
    .topic_list = herald__sq_topic_list,
    .outbox_put = herald__sq_outbox_put,
    .outbox_mark = herald__sq_outbox_mark,
    .outbox_prune = herald__sq_outbox_prune,
    .outbox_pending = herald__sq_outbox_pending,
    .outbox_count = herald__sq_outbox_count,
    .redrive_one = herald__sq_redrive_one,
    .dead_page = herald__sq_dead_page,
    .attempts = herald__sq_attempts,
    .msg_get = herald__sq_msg_get,
    .audit = herald__sq_audit,
    .processed_check = herald__sq_processed_check,
    .metrics_add = herald__sq_metrics_add,
    .metrics_list = herald__sq_metrics_list,
    .trace = herald__sq_trace,
    .processed_prune = herald__sq_processed_prune,
};
