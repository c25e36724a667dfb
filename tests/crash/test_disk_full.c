// SPDX-License-Identifier: MIT
/*
 * test_disk_full.c - a store on a real full file system. A child process makes a private mount
 * namespace (unshare(CLONE_NEWNS), / made MS_PRIVATE so nothing leaks out), mounts a 2 MiB
 * tmpfs, puts a 1 MiB ballast file on it and a store beside it, and sends 4 KiB messages
 * until the file system is full. Then:
 *   - the send that hit the full disk fails with HERALD_EIO and "disk full" in
 *     herald_last_error() (a commit, an fsync or a checkpoint: whichever hit ENOSPC first);
 *   - every later write is refused with the same cause (sticky), reads go on; `herald send`
 *     from another process exits 1 saying "disk full";
 *   - after the ballast is deleted (space freed) the CLI's send works, and the store reopens and
 *     accepts writes, passes
 *     PRAGMA integrity_check, and holds every message whose send was confirmed.
 * The same with small WAL limits (herald__sq_test_wal_limits), so that checkpoints - which
 * grow the database file - meet the full disk too. And an effectively-once consumer that takes
 * its first batch on a full disk: its in-flight journal (a file mapped into memory) cannot be
 * allocated - a "disk full" error, where it was a SIGBUS that killed the process.
 * Needs root (CAP_SYS_ADMIN) for the namespace and the mount: skipped with the reason
 * otherwise (CI runs as root). The parent has no store open across fork(); the child never
 * calls Criterion: it writes what it found to a pipe, and exits 0 (passed), 1 (failed: the
 * text says why) or 77 (skipped).
 */
#define _GNU_SOURCE 1 /* unshare */
#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store/store_impl.h"
#include "support.h"

#define SKIP 77
#define MSG_BYTES 4096
#define MAX_MSGS 2000 /* 8 MiB: far past the 2 MiB file system */

static char *g_dir;

static void setup(void)
{
    g_dir = hx_tmpdir();
}

static void teardown(void)
{
    hx_rmrf(g_dir); /* the mount existed only in the child's namespace */
    free(g_dir);
}

TestSuite(disk_full, .init = setup, .fini = teardown, .timeout = 120);

/* ---- the child ------------------------------------------------------------------------------ */

static int g_out = -1; /* the pipe to the parent */

static void say(const char *fmt, ...)
{
    char b[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b, sizeof b - 1, fmt, ap);
    va_end(ap);
    n = n < 0 ? 0 : n > (int)sizeof b - 2 ? (int)sizeof b - 2 : n;
    b[n++] = '\n';
    hx_write_all(g_out, b, (size_t)n);
}

#define CHECK(cond, ...)                                                                          \
    do {                                                                                          \
        if (!(cond)) {                                                                            \
            say("FAILED at line %d: " #cond, __LINE__);                                           \
            say(__VA_ARGS__);                                                                     \
            _exit(1);                                                                             \
        }                                                                                         \
    } while (0)

static herald_store *child_open(const char *url)
{
    herald_store *s = NULL;
    int rc = herald_store_open(url, NULL, &s);
    CHECK(rc == 0, "open %s: %s: %s", url, herald_err_name(rc), herald_last_error());
    return s;
}

static void mount_small_tmpfs(const char *mnt)
{
    if (unshare(CLONE_NEWNS) != 0) {
        say("unshare(CLONE_NEWNS): %s - a private mount namespace needs root (CAP_SYS_ADMIN)",
            strerror(errno));
        _exit(SKIP);
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        say("making / private in the new namespace: %s", strerror(errno));
        _exit(SKIP);
    }
    if (mount("tmpfs", mnt, "tmpfs", 0, "size=2m") != 0) {
        say("mount tmpfs size=2m on %s: %s", mnt, strerror(errno));
        _exit(SKIP);
    }
}

/* Runs `herald --store URL send q BODY` (inherits this namespace); returns the exit code and
 * up to cap - 1 bytes of its stderr in err. */
static int cli_send(const char *url, const char *body, char *err, size_t cap)
{
    int p[2];
    CHECK(pipe(p) == 0, "pipe: %s", strerror(errno));
    pid_t pid = fork();
    CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(p[1], 2);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        close(p[0]);
        execl(hx_herald_bin(), "herald", "--store", url, "send", "q", body, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    size_t len = 0;
    ssize_t r;
    while (len < cap - 1 && (r = read(p[0], err + len, cap - 1 - len)) > 0)
        len += (size_t)r;
    err[len] = 0;
    close(p[0]);
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid, "waitpid: %s", strerror(errno));
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void write_ballast(const char *path, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(fd >= 0, "ballast: %s", strerror(errno));
    static char buf[4096];
    memset(buf, 'B', sizeof buf);
    for (size_t done = 0; done < n; done += sizeof buf)
        CHECK(write(fd, buf, sizeof buf) == (ssize_t)sizeof buf, "ballast: %s", strerror(errno));
    close(fd);
}

/* Fills the file system to the last byte. */
static void fill(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(fd >= 0, "filler: %s", strerror(errno));
    static char buf[512];
    memset(buf, 'F', sizeof buf);
    while (write(fd, buf, sizeof buf) > 0)
        ;
    CHECK(errno == ENOSPC, "filling: %s", strerror(errno));
    close(fd);
}

static void child(const char *params, bool small_wal)
{
    if (small_wal)
        herald__sq_test_wal_limits(10, 20, 40, 0);
    char mnt[4096], db[4200], ballast[4200], url[4300];
    snprintf(mnt, sizeof mnt, "%s/mnt", g_dir);
    snprintf(db, sizeof db, "%s/h.db", mnt);
    snprintf(ballast, sizeof ballast, "%s/ballast", mnt);
    snprintf(url, sizeof url, "sqlite:%s%s", db, params);
    mount_small_tmpfs(mnt);
    write_ballast(ballast, 1024 * 1024);

    herald_store *s = child_open(url);
    CHECK(herald_queue_create(s, "q", NULL) == 0, "%s", herald_last_error());
    static char body[MSG_BYTES];
    memset(body, 'x', sizeof body);
    herald_msg m = { body, sizeof body, HERALD_CONTENT_BYTES, HERALD_UNSET };
    static char confirmed[MAX_MSGS][HERALD_ID_SIZE];
    int n = 0, rc = 0;
    for (; n < MAX_MSGS; n++) {
        rc = herald_send(s, "q", &m, confirmed[n]);
        if (rc != 0)
            break;
    }
    char first[512];
    snprintf(first, sizeof first, "%s", herald_last_error());
    say("%d messages of %d bytes confirmed; the next send: %s: %s", n, MSG_BYTES,
        herald_err_name(rc), first);
    CHECK(rc == HERALD_EIO, "a 2 MiB file system took %d messages of %d bytes (rc %s)", n,
          MSG_BYTES, herald_err_name(rc));
    CHECK(strstr(first, "disk full"), "the error does not say the disk is full: %s", first);

    rc = herald_send(s, "q", &m, NULL);
    CHECK(rc == HERALD_EIO && strstr(herald_last_error(), "refuses writes") &&
              strstr(herald_last_error(), "disk full"),
          "a later send: %s: %s", herald_err_name(rc), herald_last_error());
    herald_queue_stats st;
    rc = herald_queue_stats_get(s, "q", &st);
    CHECK(rc == 0, "reads after the failure: %s", herald_last_error());
    herald_store_close(s);
    /* Another process: `herald send`. The space the WAL file already has is reused (what the
     * failed commit wrote past the WAL's end; with small limits, the whole restarted WAL):
     * take the last free bytes and send a body larger than that (60 KB). */
    char filler[4200];
    snprintf(filler, sizeof filler, "%s/filler", mnt);
    fill(filler);
    char err[4096];
    int code;
    if (!small_wal) {
        static char big[60003];
        memset(big, 'c', sizeof big - 1);
        big[0] = big[sizeof big - 2] = '"';
        code = cli_send(url, big, err, sizeof err);
        CHECK(code == 1 && strstr(err, "herald: ") && strstr(err, "disk full"),
              "herald send on the full disk: exit %d, stderr: %s", code, err);
    }

    CHECK(unlink(ballast) == 0 && unlink(filler) == 0, "freeing space: %s", strerror(errno));
    code = cli_send(url, "{\"cli\":2}", err, sizeof err);
    CHECK(code == 0, "herald send after space was freed: exit %d, stderr: %s", code, err);
    s = child_open(url);
    rc = herald_send(s, "q", &m, NULL);
    CHECK(rc == 0, "a send after space was freed and the store reopened: %s: %s",
          herald_err_name(rc), herald_last_error());
    herald_store_close(s);

    sqlite3 *raw = NULL;
    CHECK(sqlite3_open_v2(db, &raw, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK, "raw open");
    sqlite3_stmt *q = NULL;
    CHECK(sqlite3_prepare_v2(raw, "PRAGMA integrity_check", -1, &q, NULL) == SQLITE_OK, "prep");
    CHECK(sqlite3_step(q) == SQLITE_ROW, "integrity_check: %s", sqlite3_errmsg(raw));
    CHECK(strcmp((const char *)sqlite3_column_text(q, 0), "ok") == 0, "integrity_check: %s",
          (const char *)sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
    CHECK(sqlite3_prepare_v2(raw, "SELECT count(*) FROM herald_messages WHERE id = ?1", -1, &q,
                             NULL) == SQLITE_OK,
          "prep");
    for (int i = 0; i < n; i++) {
        sqlite3_bind_text(q, 1, confirmed[i], -1, SQLITE_STATIC);
        CHECK(sqlite3_step(q) == SQLITE_ROW && sqlite3_column_int(q, 0) == 1,
              "confirmed message %d of %d (%s) is lost", i, n, confirmed[i]);
        sqlite3_reset(q);
    }
    sqlite3_finalize(q);
    sqlite3_close(raw);
    say("after freeing space: reopened, a send went through, integrity ok, all %d confirmed "
        "messages present", n);
    _exit(0);
}

/* ---- the parent ----------------------------------------------------------------------------- */

typedef void (*child_fn)(const char *params, bool small_wal);

static void run_case(child_fn fn, const char *params, bool small_wal)
{
    char mnt[4096];
    snprintf(mnt, sizeof mnt, "%s/mnt", g_dir);
    cr_assert_eq(mkdir(mnt, 0700), 0, "%s", strerror(errno));
    int rfd = -1, wfd = -1;
    pid_t pid = hx_fork_child(&rfd, &wfd);
    if (pid == 0) {
        g_out = wfd;
        fn(params, small_wal);
    }
    char text[8192];
    size_t len = 0;
    for (;;) {
        struct pollfd p = { .fd = rfd, .events = POLLIN };
        int pr = poll(&p, 1, 100000);
        cr_assert_gt(pr, 0, "the child wrote nothing for 100 s");
        ssize_t r = read(rfd, text + len, sizeof text - 1 - len);
        if (r <= 0)
            break;
        len += (size_t)r;
        if (len == sizeof text - 1)
            break;
    }
    text[len] = 0;
    close(rfd);
    int st = hx_reap(pid, 60000);
    if (WIFEXITED(st) && WEXITSTATUS(st) == SKIP)
        cr_skip_test("no real full file system here: %s", text);
    cr_assert(!WIFSIGNALED(st), "the child was killed by signal %d (%s); it reported:\n%s",
              WTERMSIG(st), strsignal(WTERMSIG(st)), text);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child (status 0x%x) reported:\n%s", st,
              text);
    cr_log_info("%s", text);
}

Test(disk_full, a_full_file_system_fails_sends_cleanly_and_a_reopen_after_freeing_space_works)
{
    run_case(child, "", false);
}

Test(disk_full, a_full_file_system_in_durability_normal_fails_sends_cleanly_too)
{
    run_case(child, "?durability=normal", false);
}

Test(disk_full, checkpoints_on_a_full_file_system_fail_cleanly_too)
{
    run_case(child, "", true);
}

/* ---- an effectively-once consumer on a full disk ---------------------------------------- */

static int ok_handler(herald_tx *tx, const herald_message *m, const herald_envelope *en,
                      void *ud)
{
    (void)tx;
    (void)m;
    (void)en;
    (void)ud;
    return 0;
}

static bool file_mentions(const char *path, const char *needle)
{
    char *t = hx_read_file(path, NULL);
    bool found = t && strstr(t, needle);
    free(t);
    return found;
}

static void eo_child(const char *params, bool small_wal)
{
    (void)small_wal;
    char mnt[4096], url[4300], filler[4200], log[4200];
    snprintf(mnt, sizeof mnt, "%s/mnt", g_dir);
    snprintf(url, sizeof url, "sqlite:%s/h.db%s", mnt, params);
    snprintf(filler, sizeof filler, "%s/filler", mnt);
    snprintf(log, sizeof log, "%s/child.log", g_dir); /* not on the tmpfs */
    mount_small_tmpfs(mnt);
    int lfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(lfd >= 0 && dup2(lfd, 2) == 2, "stderr to %s: %s", log, strerror(errno));

    herald_store *s = child_open(url);
    CHECK(herald_queue_create(s, "q", NULL) == 0, "%s", herald_last_error());
    herald_event e = { .type = "disk.full", .source = "test", .payload_json = "{}",
                       .payload_len = 2 };
    CHECK(herald_send_event(s, "q", &e, HERALD_UNSET, NULL) == 0, "%s", herald_last_error());
    fill(filler);

    herald_consumer_cfg c;
    herald_consumer_cfg_init(&c);
    const char *qs[] = { "q" };
    c.queues = qs;
    c.n_queues = 1;
    c.tx_handler = ok_handler;
    c.max_batch_size = 1; /* take the one message at once, not after max_batch_timeout */
    herald_consumer *con = NULL;
    int rc = herald_consumer_start(s, &c, &con);
    CHECK(rc == 0, "consumer start: %s", herald_last_error());
    for (int i = 0; i < 2000 && !file_mentions(log, "in-flight journal"); i++)
        hx_sleep_ms(10);
    CHECK(file_mentions(log, "in-flight journal"),
          "the consumer's take never reported the journal it could not make");
    herald_consumer_stop(con);
    rc = herald_send_event(s, "q", &e, HERALD_UNSET, NULL);
    CHECK(rc == HERALD_EIO && strstr(herald_last_error(), "disk full") &&
              strstr(herald_last_error(), "in-flight journal"),
          "a send after the failed take: %s: %s", herald_err_name(rc), herald_last_error());
    herald_store_close(s);
    CHECK(unlink(filler) == 0, "freeing space: %s", strerror(errno));
    s = child_open(url);
    CHECK(hx_stats(s, "q").backlog_count == 1, "the message is gone");
    herald_store_close(s);
    say("the take on a full disk reported: disk full (in-flight journal); the store reopened "
        "with its message after space was freed");
    _exit(0);
}

Test(disk_full, an_effectively_once_take_on_a_full_disk_reports_disk_full_instead_of_sigbus)
{
    run_case(eo_child, "", false);
}
