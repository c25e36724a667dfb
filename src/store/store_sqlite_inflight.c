// SPDX-License-Identifier: MIT
/*
 * store_sqlite_inflight.c - the in-flight journal of effectively-once batches.
 *
 * An effectively-once batch takes its messages without a write (herald__sq_take): its handlers,
 * records and settlements commit together, so no lease is needed to keep others away. What a
 * lease also did is count the attempt before the handler runs, so that a message whose handler
 * crashes the process still reaches its dead-letter queue after max_retries. The journal keeps
 * that, better: the take writes (seq, attempts) of every taken message to a small file of this
 * store handle, "<db>-inflight-<pid>-<n>", mapped into memory (MAP_SHARED: plain stores, no
 * system call; a crashed process's writes survive in the page cache - a power loss is not a
 * poison message), and the batch marks which handler is running. The file is held under
 * flock(LOCK_EX) while the store is open and removed at close.
 * Recovery (sq_open, before the writer starts): a journal whose lock can be taken belongs to a
 * process that is gone. If a handler was running, only its message is charged: attempts + 1
 * and an attempt record ("the process exited while its handler ran"), in one transaction, if it
 * still has the recorded attempts count (so a repeated recovery - a crash between commit and
 * unlink - changes nothing); the other messages of the batch lost nothing but a try. Then the
 * file is removed.
 * Making one races with recovery: a process recovering between our open() and flock() finds
 * the new ".tmp" file unlocked, takes it for the leftover of a process that died while making
 * one, and removes it; our link() then fails with ENOENT and we make another (journal_create).
 * Layout (int64, host byte order): "HRLDINF1", n, running index (-1: no handler running), then
 * n pairs (seq, attempts).
 */
#include "store/store_sqlite.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "HRLDINF1"
#define DIED "the process exited while its handler ran"

static atomic_int journal_counter; /* distinguishes store handles of one process */

enum { J_MAGIC, J_N, J_RUNNING, J_PAIRS };
#define JOURNAL_BYTES ((size_t)(J_PAIRS + 2 * HERALD_MAX_BATCH_MESSAGES) * sizeof(int64_t))

/* One try at making the journal file. Returns 0, or the errno of the step that failed:
 * ENOENT when a recovering process removed the new file in the moment before it was locked (it
 * looked like the leftover of a process that died while making one; the caller tries again). */
static int journal_try_create(sq_store *q, char *final, size_t cap, int *fd_out, void **map_out)
{
    /* The name has a random part: processes of two containers sharing the store's directory
     * can have the same pid. */
    char tmp[4200];
    int k = atomic_fetch_add(&journal_counter, 1);
    int len = snprintf(tmp, sizeof tmp, "%s-inflight-%ld-%d-%016llx.tmp", q->path,
                       (long)getpid(), k, (unsigned long long)herald__rand64());
    if (len < 0 || len >= (int)sizeof tmp || (size_t)len - 4 >= cap)
        return ENAMETOOLONG;
    memcpy(final, tmp, (size_t)len - 4);
    final[len - 4] = 0;
    /* Locked before it has its final name, so a recovering process never sees it unlocked;
     * link(), unlike rename(), never replaces a file that exists. */
    int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0 && herald__fault_io("sqlite.journal_taken") < 0) {
        /* Fault point (one shot): what a process recovering at this instant does to the new,
         * not yet locked file (herald__sq_inflight_recover). */
        herald__fault_io_arm("sqlite.journal_taken", 0, 0);
        unlink(tmp);
    }
    void *map = MAP_FAILED;
    /* Its blocks are allocated now, not when a store through the mapping first touches them:
     * on a full disk that store would be a SIGBUS; this is ENOSPC, reported. */
    int falloc = fd >= 0 && flock(fd, LOCK_EX) == 0 ? posix_fallocate(fd, 0, JOURNAL_BYTES) : -1;
    if (falloc > 0)
        errno = falloc;
    if (falloc == 0)
        map = mmap(NULL, JOURNAL_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int linked = map != MAP_FAILED ? link(tmp, final) : -1;
    int e = errno;
    if (fd >= 0)
        unlink(tmp);
    if (linked != 0) {
        if (map != MAP_FAILED)
            munmap(map, JOURNAL_BYTES);
        if (fd >= 0)
            close(fd);
        return e ? e : EIO;
    }
    *fd_out = fd;
    *map_out = map;
    return 0;
}

static int journal_create(sq_store *q)
{
    char final[4200];
    int fd = -1, e = 0;
    void *map = NULL;
    for (int tries = 0; tries < 8; tries++) {
        e = journal_try_create(q, final, sizeof final, &fd, &map);
        if (e != ENOENT)
            break;
    }
    if (e == ENAMETOOLONG)
        return herald__err(HERALD_EINVAL, "store path too long: %s", q->path);
    /* A full disk is the store's failure (HERALD_EIO: sticky, as a failed write); anything
     * else fails this batch alone, which is tried again. */
    if (e != 0)
        return herald__err(e == ENOSPC || e == EDQUOT || e == EIO ? HERALD_EIO : HERALD_ESTORE,
                           "%scannot create the in-flight journal '%s': %s",
                           e == ENOSPC || e == EDQUOT ? "disk full: " : "", final, strerror(e));
    q->inflight_fd = fd;
    q->inflight_map = map;
    q->inflight_path = herald__xstrdup(final);
    return 0;
}

int herald__sq_inflight_note(sq_store *q, const int64_t *seqs, const int64_t *attempts, size_t n)
{
    HERALD_CHECK(n <= HERALD_MAX_BATCH_MESSAGES);
    if (!q->inflight_map) {
        int rc = journal_create(q);
        if (rc < 0)
            return rc;
    }
    volatile int64_t *j = q->inflight_map; /* stores to a shared mapping: none is dropped */
    j[J_RUNNING] = -1;
    j[J_N] = 0; /* a torn batch reads as empty */
    for (size_t i = 0; i < n; i++) {
        j[J_PAIRS + 2 * i] = seqs[i];
        j[J_PAIRS + 2 * i + 1] = attempts[i];
    }
    int64_t magic;
    memcpy(&magic, MAGIC, 8);
    j[J_MAGIC] = magic;
    j[J_N] = (int64_t)n;
    return 0;
}

void herald__sq_inflight_running(sq_store *q, int64_t i)
{
    if (q->inflight_map)
        ((volatile int64_t *)q->inflight_map)[J_RUNNING] = i;
}

void herald__sq_inflight_close(sq_store *q)
{
    if (q->inflight_fd >= 0) {
        unlink(q->inflight_path); /* before the lock goes: nobody recovers a clean close */
        munmap(q->inflight_map, JOURNAL_BYTES);
        close(q->inflight_fd);
    }
    q->inflight_fd = -1;
    q->inflight_map = NULL;
    herald__free(q->inflight_path);
    q->inflight_path = NULL;
}

/* Applies one dead process's journal (fd locked by us): charges the message whose handler was
 * running, if any. */
static int apply_journal(sq_store *q, int fd, const char *path)
{
    int64_t j[J_PAIRS + 2 * HERALD_MAX_BATCH_MESSAGES];
    ssize_t got = pread(fd, j, sizeof j, 0);
    if (got < (ssize_t)(J_PAIRS * sizeof j[0]) || memcmp(&j[J_MAGIC], MAGIC, 8) != 0 ||
        j[J_N] <= 0 || j[J_N] > HERALD_MAX_BATCH_MESSAGES || j[J_RUNNING] < 0 ||
        j[J_RUNNING] >= j[J_N] || got < (ssize_t)((J_PAIRS + 2 * j[J_N]) * sizeof j[0]))
        return 0; /* no handler was running: nothing to charge */
    int64_t seq = j[J_PAIRS + 2 * j[J_RUNNING]], attempts = j[J_PAIRS + 2 * j[J_RUNNING] + 1];
    static const char *const sql[2] = {
        "INSERT INTO herald_attempts (message_id, queue, attempt, error, at_ms) "
        "SELECT m.id, q.name, m.attempts + 1, ?3, ?4 FROM herald_messages m "
        "JOIN herald_queues q ON q.queue_id = m.queue_id WHERE m.seq = ?1 AND m.attempts = ?2",
        "UPDATE herald_messages SET attempts = attempts + 1, last_error = ?3 "
        "WHERE seq = ?1 AND attempts = ?2",
    };
    int src = sqlite3_exec(q->wdb, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    int changed = 0;
    for (int k = 0; src == SQLITE_OK && k < 2; k++) {
        sqlite3_stmt *st = NULL;
        src = sqlite3_prepare_v2(q->wdb, sql[k], -1, &st, NULL);
        if (src == SQLITE_OK) {
            sqlite3_bind_int64(st, 1, seq);
            sqlite3_bind_int64(st, 2, attempts);
            sqlite3_bind_text(st, 3, DIED, -1, SQLITE_STATIC);
            if (k == 0)
                sqlite3_bind_int64(st, 4, herald__wall_ms());
            src = sqlite3_step(st);
            src = src == SQLITE_DONE ? SQLITE_OK : src;
            changed = sqlite3_changes(q->wdb);
        }
        sqlite3_finalize(st);
    }
    if (src == SQLITE_OK)
        src = sqlite3_exec(q->wdb, "COMMIT", NULL, NULL, NULL);
    if (src != SQLITE_OK) {
        int rc = herald__sq_fail(q->wdb, src, "recover the in-flight journal");
        if (!sqlite3_get_autocommit(q->wdb))
            (void)sqlite3_exec(q->wdb, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    if (changed > 0) {
        char b[32];
        snprintf(b, sizeof b, "%lld", (long long)seq);
        herald__log(HERALD_LOG_WARN, "a process exited while an effectively-once handler ran; "
                    "the attempt is counted", "journal", path, "seq", b, NULL);
    }
    return 0;
}

int herald__sq_inflight_recover(sq_store *q)
{
    char *copy = herald__xstrdup(q->path), *copy2 = herald__xstrdup(q->path);
    const char *dir = dirname(copy), *base = basename(copy2);
    char prefix[512];
    int plen = snprintf(prefix, sizeof prefix, "%s-inflight-", base);
    DIR *d = opendir(dir);
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && d && plen < (int)sizeof prefix && (e = readdir(d))) {
        size_t nl = strlen(e->d_name);
        if (strncmp(e->d_name, prefix, (size_t)plen) != 0)
            continue;
        bool is_tmp = nl > 4 && strcmp(e->d_name + nl - 4, ".tmp") == 0; /* died while made */
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        struct stat st, now;
        /* locked: its process is alive; unlinked or replaced meanwhile: someone else
         * recovered it */
        if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &st) == 0 && st.st_nlink > 0) {
            rc = is_tmp ? 0 : apply_journal(q, fd, path);
            if (rc == 0 && stat(path, &now) == 0 && now.st_ino == st.st_ino &&
                now.st_dev == st.st_dev)
                unlink(path);
        }
        close(fd);
    }
    if (d)
        closedir(d);
    herald__free(copy);
    herald__free(copy2);
    return rc;
}
