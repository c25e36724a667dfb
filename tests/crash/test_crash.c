// SPDX-License-Identifier: MIT
/*
 * test_crash.c - real crashes: a child process works on the store through the public API, the
 * test SIGKILLs it at some point of its work, reopens the store and checks that nothing
 * acknowledged was lost, nothing was duplicated and the database opens cleanly.
 *
 * Protocol between child and parent: a pipe. A producer child writes the ids of every batch
 * *after* herald_send_batch (or its async callback) reported it durable, as fixed records of
 * HERALD_ID_SIZE bytes ("<uuid>\0"); one write per batch, at most PIPE_BUF bytes, so records
 * from several threads never interleave. A record starting with '!' reports a failed send.
 * Consumer children write one short marker once they hold their lease.
 *
 * Rules: the parent never has a store open across fork() (the writer thread would not survive
 * it); children never call Criterion (they _exit() with a code instead) and die with the test
 * process (PR_SET_PDEATHSIG); every wait is bounded.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <jansson.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "support.h"

#define REC HERALD_ID_SIZE           /* bytes per record on the pipe */
#define LONG_VIS (12LL * 3600 * 1000) /* lease long enough to never expire during a test */

static char *g_dir;
static char *g_url;

static void setup(void)
{
    g_dir = hx_tmpdir();
    g_url = hx_url(g_dir, "herald.db"); /* what hx_open() opens */
    signal(SIGPIPE, SIG_IGN);
}

static void teardown(void)
{
    hx_rmrf(g_dir);
    free(g_dir);
    free(g_url);
}

TestSuite(crash, .init = setup, .fini = teardown, .timeout = 120);

/* ------------------------------------------------------------------------------------------- *
 * Time, processes, pipes
 * ------------------------------------------------------------------------------------------- */

/* The child's exit codes, for a failed hx_assert_killed(). */
#define CHILD_CODES "20+: a send/pull failed, 10: open failed, 9x: setup"

/* Reads one short marker (bounded wait). Returns the bytes read, 0 on EOF/timeout. */
static size_t read_marker(int fd, char *buf, size_t cap, int64_t timeout_ms)
{
    struct pollfd pf = { fd, POLLIN, 0 };
    int r = poll(&pf, 1, (int)timeout_ms);
    if (r <= 0)
        return 0;
    ssize_t n = read(fd, buf, cap - 1);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    return (size_t)n;
}

/* SIGKILLs the child, closes the parent's end of the pipe and reaps the child (bounded). Returns
 * its wait status; *killed_at (may be NULL) gets the time of the kill. */
static int kill_and_reap(pid_t pid, int rfd, int64_t *killed_at)
{
    kill(pid, SIGKILL);
    if (killed_at)
        *killed_at = hx_mono_ms();
    close(rfd);
    return hx_reap(pid, 10000);
}

/* ------------------------------------------------------------------------------------------- *
 * Id records from the pipe
 * ------------------------------------------------------------------------------------------- */

typedef struct idset {
    char (*ids)[REC];
    size_t n, cap;
    size_t errors;       /* '!' records: sends that failed in the child */
    char first_error[REC];
    char part[REC];      /* an incomplete record carried to the next read */
    size_t part_len;
} idset;

static void idset_add(idset *s, const char *id)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->ids = realloc(s->ids, s->cap * REC);
        cr_assert_not_null(s->ids);
    }
    memcpy(s->ids[s->n], id, REC);
    s->ids[s->n][REC - 1] = 0;
    s->n++;
}

static void idset_free(idset *s)
{
    free(s->ids);
    memset(s, 0, sizeof *s);
}

static void idset_record(idset *s, const char *rec)
{
    if (rec[0] == '!') {
        if (s->errors++ == 0)
            memcpy(s->first_error, rec, REC);
        return;
    }
    idset_add(s, rec);
}

static void idset_feed(idset *s, const char *buf, size_t len)
{
    while (len > 0) {
        size_t take = REC - s->part_len;
        if (take > len)
            take = len;
        memcpy(s->part + s->part_len, buf, take);
        s->part_len += take;
        buf += take;
        len -= take;
        if (s->part_len == REC) {
            idset_record(s, s->part);
            s->part_len = 0;
        }
    }
}

/* Reads what is available within timeout_ms. Returns false at EOF. */
static bool pump(int fd, idset *s, int timeout_ms)
{
    struct pollfd pf = { fd, POLLIN, 0 };
    int r = poll(&pf, 1, timeout_ms);
    if (r < 0 && errno == EINTR)
        return true;
    cr_assert(r >= 0, "poll: %s", strerror(errno));
    if (r == 0)
        return true;
    char buf[65536];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
        return true;
    cr_assert(n >= 0, "read: %s", strerror(errno));
    if (n == 0)
        return false;
    idset_feed(s, buf, (size_t)n);
    return true;
}

/* After the kill: everything the child wrote before it died is still in the pipe. */
static void drain_to_eof(int fd, idset *s)
{
    int64_t end = hx_mono_ms() + 10000;
    while (pump(fd, s, 100))
        cr_assert(hx_mono_ms() < end, "the pipe did not reach EOF after the kill");
    cr_assert_eq(s->part_len, 0, "a torn record on the pipe (%zu bytes)", s->part_len);
}

static int cmp_id(const void *a, const void *b)
{
    return memcmp(a, b, REC);
}

static void idset_sort(idset *s)
{
    qsort(s->ids, s->n, REC, cmp_id);
}

static bool idset_has(const idset *s, const char *id)
{
    char key[REC] = { 0 };
    memcpy(key, id, strnlen(id, REC - 1));
    return bsearch(key, s->ids, s->n, REC, cmp_id) != NULL;
}

/* Index of the first duplicate in a sorted set, or -1. */
static long idset_first_dup(const idset *s)
{
    for (size_t i = 1; i < s->n; i++)
        if (memcmp(s->ids[i - 1], s->ids[i], REC) == 0)
            return (long)i;
    return -1;
}

/* Every message in b is one of `sent` (sorted), delivered for the second time. */
static void assert_redeliveries(const idset *sent, const herald_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        cr_assert(idset_has(sent, b->msgs[i].id), "unknown id %s", b->msgs[i].id);
        cr_assert_eq(b->msgs[i].attempts, 2, "message %s: attempts %d, want 2", b->msgs[i].id,
                     b->msgs[i].attempts);
    }
}

/* ------------------------------------------------------------------------------------------- *
 * Store helpers (parent side)
 * ------------------------------------------------------------------------------------------- */

static herald_store *reopen(void)
{
    herald_store *s = NULL;
    int rc = herald_store_open(g_url, NULL, &s);
    cr_assert_eq(rc, 0, "reopen after the crash failed: %s (%s): %s", herald_err_name(rc),
                 herald_strerror(rc), herald_last_error());
    cr_assert_eq(herald_store_schema_version(s), herald_schema_version_supported(),
                 "schema version after reopen");
    return s;
}

/* Closes s and reopens the store on a fake clock ahead_ms past the real wall clock: a lease the
 * dead child took on the real clock has expired there, without waiting for it. */
static hx_clock g_ahead;
static herald_store *reopen_ahead(herald_store *s, int64_t ahead_ms)
{
    herald_store_close(s);
    hx_clock_init(&g_ahead);
    g_ahead.now_ms = hx_wall_ms() + ahead_ms;
    herald_store_cfg cfg = { 0 };
    cfg.clock = &g_ahead.clock;
    herald_store *out = NULL;
    int rc = herald_store_open(g_url, &cfg, &out);
    cr_assert_eq(rc, 0, "reopen: %s: %s", herald_err_name(rc), herald_last_error());
    return out;
}

/* Right after a kill, the lease the child took at `leased_at` is still live: a pull of q must
 * find nothing. Checked only within window_ms of leased_at (after a slow reopen it cannot be). */
static void assert_lease_still_live(herald_store *s, const char *q, int64_t leased_at,
                                    int64_t window_ms)
{
    herald_batch b = { 0 };
    int rc = herald_pull(s, q, 100, LONG_VIS, &b);
    cr_assert_eq(rc, 0, "%s", herald_last_error());
    if (hx_mono_ms() - leased_at < window_ms)
        cr_assert_eq(b.n, 0, "%zu messages under a live lease were delivered", b.n);
    else
        cr_log_warn("reopen took too long to check the live lease");
    herald_batch_deinit(&b);
}

/* The child's store: any failure ends the child with code 10. */
static herald_store *child_open(void)
{
    herald_store *s = NULL;
    if (herald_store_open(g_url, NULL, &s) < 0)
        _exit(10);
    return s;
}

/* A stored message, as drained by pull. */
typedef struct drained {
    idset ids;          /* every id pulled, in pull order */
    char **bodies;      /* NUL-terminated copies, parallel to ids */
    int *attempts;
    size_t cap;
} drained;

static void drained_free(drained *d)
{
    for (size_t i = 0; i < d->ids.n; i++)
        free(d->bodies[i]);
    free(d->bodies);
    free(d->attempts);
    idset_free(&d->ids);
}

/* Leases every visible message of q for a long time and records it. */
static void drain_queue(herald_store *s, const char *q, drained *d)
{
    memset(d, 0, sizeof *d);
    for (int guard = 0; guard < 100000; guard++) {
        herald_batch b = { 0 };
        int rc = herald_pull(s, q, 100, LONG_VIS, &b);
        cr_assert_eq(rc, 0, "pull %s: %s: %s", q, herald_err_name(rc), herald_last_error());
        if (b.n == 0) {
            herald_batch_deinit(&b);
            return;
        }
        for (size_t i = 0; i < b.n; i++) {
            if (d->ids.n == d->cap) {
                d->cap = d->cap ? d->cap * 2 : 1024;
                d->bodies = realloc(d->bodies, d->cap * sizeof *d->bodies);
                d->attempts = realloc(d->attempts, d->cap * sizeof *d->attempts);
                cr_assert(d->bodies && d->attempts);
            }
            d->bodies[d->ids.n] = strndup((const char *)b.msgs[i].body, b.msgs[i].body_len);
            d->attempts[d->ids.n] = b.msgs[i].attempts;
            idset_add(&d->ids, b.msgs[i].id);
        }
        herald_batch_deinit(&b);
    }
    cr_assert_fail("drain_queue did not terminate");
}

/* Every confirmed id is stored, and no id is stored twice. */
static void assert_confirmed_present_no_dups(const idset *confirmed, drained *d)
{
    idset sorted = { 0 };
    for (size_t i = 0; i < d->ids.n; i++)
        idset_add(&sorted, d->ids.ids[i]);
    idset_sort(&sorted);
    long dup = idset_first_dup(&sorted);
    cr_assert(dup < 0, "id %s stored twice", dup >= 0 ? sorted.ids[dup] : "");
    size_t missing = 0;
    const char *first_missing = NULL;
    for (size_t i = 0; i < confirmed->n; i++) {
        if (!idset_has(&sorted, confirmed->ids[i])) {
            if (missing++ == 0)
                first_missing = confirmed->ids[i];
        }
    }
    cr_assert_eq(missing, 0, "%zu of %zu confirmed ids lost after the crash (first: %s)", missing,
                 confirmed->n, first_missing ? first_missing : "");
    idset_free(&sorted);
}

/* Creates the queues and optionally sends n messages {"n":i} to the first (their ids, sorted,
 * into *sent unless it is NULL); closes the store (so that no store thread exists when the test
 * forks). */
static void prepare(const char *const *queues, size_t n_queues, int n_msgs, idset *sent)
{
    herald_store *s = hx_open(g_dir, NULL);
    for (size_t i = 0; i < n_queues; i++) {
        int rc = herald_queue_create(s, queues[i], NULL);
        cr_assert_eq(rc, 0, "create %s: %s", queues[i], herald_last_error());
    }
    for (int i = 0; i < n_msgs; i++) {
        char body[32];
        snprintf(body, sizeof body, "{\"n\":%d}", i);
        herald_msg m = { body, strlen(body), HERALD_CONTENT_JSON, HERALD_UNSET };
        char id[HERALD_ID_SIZE];
        int rc = herald_send(s, queues[0], &m, id);
        cr_assert_eq(rc, 0, "send: %s", herald_last_error());
        if (sent)
            idset_add(sent, id);
    }
    if (sent)
        idset_sort(sent);
    herald_store_close(s);
}

/* ------------------------------------------------------------------------------------------- *
 * a) producer killed mid-load
 * ------------------------------------------------------------------------------------------- */

#define PROD_BATCH 100

static void producer_child(int wfd)
{
    herald_store *s = child_open();
    static char bodies[PROD_BATCH][32];
    static char ids[PROD_BATCH][HERALD_ID_SIZE];
    herald_msg msgs[PROD_BATCH];
    int64_t end = hx_mono_ms() + 60000;
    for (long b = 0; hx_mono_ms() < end; b++) {
        for (int i = 0; i < PROD_BATCH; i++) {
            snprintf(bodies[i], sizeof bodies[i], "{\"n\":%ld}", b * PROD_BATCH + i);
            msgs[i] = (herald_msg){ bodies[i], strlen(bodies[i]), HERALD_CONTENT_JSON,
                                    HERALD_UNSET };
        }
        memset(ids, 0, sizeof ids);
        if (herald_send_batch(s, "q", msgs, PROD_BATCH, HERALD_UNSET, ids) < 0)
            _exit(20);
        hx_write_all(wfd, ids, sizeof ids); /* 3,700 bytes <= PIPE_BUF: one atomic write */
    }
    _exit(21);
}

Test(crash, producer_killed_mid_load_loses_no_confirmed_message)
{
    _Static_assert(PROD_BATCH * REC <= PIPE_BUF, "one batch of ids per atomic pipe write");
    const char *queues[] = { "q" };
    prepare(queues, 1, 0, NULL);

    int rfd, wfd;
    pid_t pid = hx_fork_child(&rfd, &wfd);
    if (pid == 0)
        producer_child(wfd);

    idset confirmed = { 0 };
    int64_t end = hx_mono_ms() + 60000;
    bool open = true;
    while (open && confirmed.n < 2000 && hx_mono_ms() < end)
        open = pump(rfd, &confirmed, 100);
    if (kill(pid, SIGKILL) != 0)
        cr_log_warn("kill: %s", strerror(errno));
    if (open)
        drain_to_eof(rfd, &confirmed);
    close(rfd);
    int st = hx_reap(pid, 10000);
    hx_assert_killed(st, NULL, CHILD_CODES);
    cr_assert_geq(confirmed.n, 2000, "the producer confirmed only %zu ids in 60 s", confirmed.n);
    cr_assert_eq(confirmed.n % PROD_BATCH, 0);

    herald_store *s = reopen();
    herald_queue_stats qs = hx_stats(s, "q");
    int64_t stored = qs.backlog_count;
    cr_assert_eq(stored % PROD_BATCH, 0, "batches are atomic, yet %lld messages are stored",
                 (long long)stored);
    /* one synchronous producer: at most the batch in flight was committed but not reported */
    cr_assert(stored == (int64_t)confirmed.n || stored == (int64_t)confirmed.n + PROD_BATCH,
              "stored %lld, confirmed %zu", (long long)stored, confirmed.n);
    cr_assert_eq(qs.sent_total, stored);
    cr_assert_eq(qs.visible_count, stored);
    cr_assert_eq(qs.leased_count, 0);
    cr_assert_eq(qs.delayed_count, 0);

    drained d;
    drain_queue(s, "q", &d);
    cr_assert_eq((int64_t)d.ids.n, stored, "pull found %zu of %lld stored messages", d.ids.n,
                 (long long)stored);
    assert_confirmed_present_no_dups(&confirmed, &d);
    /* bodies are exactly {"n":0} .. {"n":stored-1}: none lost, none torn, none repeated */
    char *seen = calloc((size_t)stored, 1);
    cr_assert_not_null(seen);
    for (size_t i = 0; i < d.ids.n; i++) {
        long k = -1;
        cr_assert_eq(sscanf(d.bodies[i], "{\"n\":%ld}", &k), 1, "body [%s]", d.bodies[i]);
        cr_assert(k >= 0 && k < stored, "body n=%ld out of range", k);
        cr_assert(!seen[k], "body n=%ld stored twice", k);
        seen[k] = 1;
        cr_assert_eq(d.attempts[i], 1);
    }
    free(seen);

    qs = hx_stats(s, "q");
    cr_assert_eq(qs.leased_count, stored);
    cr_assert_eq(qs.visible_count, 0);
    drained_free(&d);
    idset_free(&confirmed);
    herald_store_close(s);
}

/* ------------------------------------------------------------------------------------------- *
 * b) killed during group commit: 4 synchronous sender threads + async sends with a window
 * ------------------------------------------------------------------------------------------- */

#define GC_BATCH 10
#define GC_THREADS 4
#define GC_WINDOW 16
#define GC_ROUNDS 5

typedef struct gc_ctx {
    herald_store *s;
    const char *queue;
    int wfd;
    int64_t end_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int inflight;
} gc_ctx;

typedef struct gc_thread {
    gc_ctx *ctx;
    int tag;
} gc_thread;

static void gc_write_error(int wfd, int rc)
{
    char rec[REC] = { 0 };
    snprintf(rec, sizeof rec, "!%d", rc);
    hx_write_all(wfd, rec, REC);
}

static void gc_fill(herald_msg *msgs, char (*bodies)[48], int tag, long b)
{
    for (int i = 0; i < GC_BATCH; i++) {
        snprintf(bodies[i], 48, "{\"t\":%d,\"b\":%ld,\"i\":%d}", tag, b, i);
        msgs[i] = (herald_msg){ bodies[i], strlen(bodies[i]), HERALD_CONTENT_JSON, HERALD_UNSET };
    }
}

static void *gc_sync_sender(void *arg)
{
    gc_thread *t = arg;
    char bodies[GC_BATCH][48];
    char ids[GC_BATCH][HERALD_ID_SIZE];
    herald_msg msgs[GC_BATCH];
    for (long b = 0; hx_mono_ms() < t->ctx->end_ms; b++) {
        gc_fill(msgs, bodies, t->tag, b);
        memset(ids, 0, sizeof ids);
        int rc = herald_send_batch(t->ctx->s, t->ctx->queue, msgs, GC_BATCH, HERALD_UNSET, ids);
        if (rc < 0) {
            gc_write_error(t->ctx->wfd, rc);
            return NULL;
        }
        hx_write_all(t->ctx->wfd, ids, sizeof ids);
    }
    return NULL;
}

static void gc_async_done(void *ud, int rc, const char (*ids)[HERALD_ID_SIZE], size_t n)
{
    gc_ctx *c = ud;
    if (rc < 0 || n != GC_BATCH || ids == NULL)
        gc_write_error(c->wfd, rc < 0 ? rc : -1);
    else
        hx_write_all(c->wfd, ids, n * HERALD_ID_SIZE);
    pthread_mutex_lock(&c->mu);
    c->inflight--;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void gc_child(const char *queue, int wfd)
{
    gc_ctx c = { .queue = queue, .wfd = wfd, .end_ms = hx_mono_ms() + 60000 };
    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.cv, NULL);
    c.s = child_open();
    pthread_t th[GC_THREADS];
    gc_thread args[GC_THREADS];
    for (int i = 0; i < GC_THREADS; i++) {
        args[i] = (gc_thread){ &c, i + 1 };
        if (pthread_create(&th[i], NULL, gc_sync_sender, &args[i]) != 0)
            _exit(92);
    }
    /* this thread: async batches, tag 0, at most GC_WINDOW in flight */
    char bodies[GC_BATCH][48];
    herald_msg msgs[GC_BATCH];
    for (long b = 0; hx_mono_ms() < c.end_ms; b++) {
        pthread_mutex_lock(&c.mu);
        while (c.inflight >= GC_WINDOW)
            pthread_cond_wait(&c.cv, &c.mu);
        c.inflight++;
        pthread_mutex_unlock(&c.mu);
        gc_fill(msgs, bodies, 0, b);
        int rc = herald_send_batch_async(c.s, queue, msgs, GC_BATCH, HERALD_UNSET, gc_async_done,
                                         &c);
        if (rc < 0) {
            gc_write_error(wfd, rc);
            _exit(22);
        }
    }
    _exit(23);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Batches are atomic: every (sender, batch) group has all GC_BATCH messages or none. */
static void assert_whole_batches(const drained *d, const char *queue)
{
    int64_t *keys = calloc(d->ids.n + 1, sizeof *keys);
    cr_assert_not_null(keys);
    for (size_t i = 0; i < d->ids.n; i++) {
        int t = -1, k = -1;
        long b = -1;
        cr_assert_eq(sscanf(d->bodies[i], "{\"t\":%d,\"b\":%ld,\"i\":%d}", &t, &b, &k), 3,
                     "%s: torn body [%s]", queue, d->bodies[i]);
        cr_assert(t >= 0 && t <= GC_THREADS && b >= 0 && k >= 0 && k < GC_BATCH);
        keys[i] = ((int64_t)t << 40) | ((int64_t)b << 8) | k;
    }
    qsort(keys, d->ids.n, sizeof *keys, cmp_i64);
    for (size_t i = 1; i < d->ids.n; i++)
        cr_assert_neq(keys[i - 1], keys[i], "%s: body stored twice (key %llx)", queue,
                      (unsigned long long)keys[i]);
    for (size_t i = 0; i < d->ids.n;) {
        int64_t group = keys[i] >> 8;
        size_t j = i;
        while (j < d->ids.n && (keys[j] >> 8) == group)
            j++;
        cr_assert_eq(j - i, GC_BATCH, "%s: batch t=%lld b=%lld has %zu of %d messages", queue,
                     (long long)(group >> 32), (long long)(group & 0xffffffff), j - i, GC_BATCH);
        i = j;
    }
    free(keys);
}

Test(crash, kill_during_group_commit_loses_and_duplicates_nothing, .timeout = 180)
{
    const char *queues[GC_ROUNDS] = { "g0", "g1", "g2", "g3", "g4" };
    prepare(queues, GC_ROUNDS, 0, NULL);
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    cr_log_info("kill_during_group_commit: seed %u", seed);
    static const int base_delay_ms[GC_ROUNDS] = { 1, 9, 19, 33, 50 };
    int64_t stored_per_round[GC_ROUNDS] = { 0 };

    for (int r = 0; r < GC_ROUNDS; r++) {
        int delay = base_delay_ms[r] - (int)(rand_r(&seed) % 5);
        if (delay < 1)
            delay = 1;

        int rfd, wfd;
        pid_t pid = hx_fork_child(&rfd, &wfd);
        if (pid == 0)
            gc_child(queues[r], wfd);

        /* wait for the load to run (first confirmation), then let it run `delay` ms more */
        idset confirmed = { 0 };
        int64_t end = hx_mono_ms() + 30000;
        bool open = true;
        while (open && confirmed.n == 0 && confirmed.errors == 0 && hx_mono_ms() < end)
            open = pump(rfd, &confirmed, 50);
        int64_t kill_at = hx_mono_ms() + delay;
        while (open && hx_mono_ms() < kill_at)
            open = pump(rfd, &confirmed, 1);
        kill(pid, SIGKILL);
        if (open)
            drain_to_eof(rfd, &confirmed);
        close(rfd);
        int st = hx_reap(pid, 10000);
        cr_assert_eq(confirmed.errors, 0, "round %d: a send failed in the child: %s", r,
                     confirmed.first_error);
        hx_assert_killed(st, NULL, CHILD_CODES);
        cr_assert_gt(confirmed.n, 0, "round %d: nothing was confirmed within 30 s", r);
        cr_log_info("round %d: killed %d ms into the load, %zu ids confirmed", r, delay,
                    confirmed.n);

        herald_store *s = reopen();
        herald_queue_stats qs = hx_stats(s, queues[r]);
        cr_assert_geq(qs.backlog_count, (int64_t)confirmed.n, "round %d", r);
        cr_assert_eq(qs.sent_total, qs.backlog_count, "round %d", r);
        cr_assert_eq(qs.leased_count, 0, "round %d", r);
        drained d;
        drain_queue(s, queues[r], &d);
        cr_assert_eq((int64_t)d.ids.n, qs.backlog_count, "round %d: pulled %zu of %lld", r,
                     d.ids.n, (long long)qs.backlog_count);
        assert_confirmed_present_no_dups(&confirmed, &d);
        assert_whole_batches(&d, queues[r]);
        stored_per_round[r] = (int64_t)d.ids.n;
        /* earlier rounds' queues are untouched by this crash */
        for (int k = 0; k < r; k++) {
            herald_queue_stats old = hx_stats(s, queues[k]);
            cr_assert_eq(old.backlog_count, stored_per_round[k], "round %d: queue %s changed", r,
                         queues[k]);
            cr_assert_eq(old.leased_count, stored_per_round[k]);
        }
        drained_free(&d);
        idset_free(&confirmed);
        herald_store_close(s);
    }

    /* a last clean reopen sees every round */
    herald_store *s = reopen();
    for (int k = 0; k < GC_ROUNDS; k++) {
        herald_queue_stats st = hx_stats(s, queues[k]);
        cr_assert_eq(st.backlog_count, stored_per_round[k]);
    }
    herald_store_close(s);
}

/* ------------------------------------------------------------------------------------------- *
 * c) consumer killed between pull and ack
 * ------------------------------------------------------------------------------------------- */

/* The store of the consumer tests: queue "q" holding 10 messages (ids into *sent; may be NULL). */
static void prepare_q10(idset *sent)
{
    const char *queues[] = { "q" };
    prepare(queues, 1, 10, sent);
}

Test(crash, consumer_killed_before_ack_gets_messages_redelivered_after_the_lease)
{
    idset sent = { 0 };
    prepare_q10(&sent);

    int rfd, wfd;
    pid_t pid = hx_fork_child(&rfd, &wfd);
    if (pid == 0) {
        herald_store *s = child_open();
        herald_batch b = { 0 };
        if (herald_pull(s, "q", 10, 1000, &b) < 0)
            _exit(24);
        if (b.n != 10)
            _exit(25);
        hx_write_all(wfd, "P", 1);
        hx_child_wait_for_kill(26); /* never acks */
    }

    char m[16];
    size_t got = read_marker(rfd, m, sizeof m, 20000);
    int64_t leased_at = hx_mono_ms(); /* the lease started before the marker was written */
    int st = kill_and_reap(pid, rfd, NULL);
    cr_assert(got == 1 && m[0] == 'P', "the child never reported its pull (status 0x%x)", st);
    hx_assert_killed(st, NULL, CHILD_CODES);

    herald_store *s = reopen();
    assert_lease_still_live(s, "q", leased_at, 800);
    herald_batch b = { 0 };
    herald_queue_stats qs = hx_stats(s, "q");
    cr_assert_eq(qs.backlog_count, 10);

    /* the lease was 1000 ms on the real clock of the dead process: look 1.2 s later */
    s = reopen_ahead(s, 1200);
    int rc = herald_pull(s, "q", 100, LONG_VIS, &b);
    cr_assert_eq(rc, 0, "%s", herald_last_error());
    cr_assert_eq(b.n, 10, "after the lease expired, %zu of 10 messages were redelivered", b.n);
    assert_redeliveries(&sent, &b);
    herald_batch_deinit(&b);
    qs = hx_stats(s, "q");
    cr_assert_eq(qs.backlog_count, 10);
    cr_assert_eq(qs.leased_count, 10);
    cr_assert_eq(qs.acked_total, 0);
    idset_free(&sent);
    herald_store_close(s);
}

/* ------------------------------------------------------------------------------------------- *
 * d) consumer runtime killed while its handler runs
 * ------------------------------------------------------------------------------------------- */

typedef struct hang_ud {
    int wfd;
} hang_ud;

static int hang_handler(herald_delivery *d, void *ud)
{
    hang_ud *h = ud;
    char m[8];
    size_t n = herald_delivery_count(d);
    snprintf(m, sizeof m, "S%03zu", n > 999 ? (size_t)999 : n);
    hx_write_all(h->wfd, m, 4);
    hx_child_wait_for_kill(27); /* inside the handler: the consumer never settles */
}

Test(crash, consumer_runtime_killed_mid_handler_loses_nothing)
{
    idset sent = { 0 };
    prepare_q10(&sent);

    int rfd, wfd;
    pid_t pid = hx_fork_child(&rfd, &wfd);
    if (pid == 0) {
        herald_store *s = child_open();
        static hang_ud ud;
        ud.wfd = wfd;
        static const char *const qs[] = { "q" };
        herald_consumer_cfg cfg;
        herald_consumer_cfg_init(&cfg);
        cfg.queues = qs;
        cfg.n_queues = 1;
        cfg.handler = hang_handler;
        cfg.ud = &ud;
        cfg.max_batch_size = 10;
        cfg.max_batch_timeout_ms = 0;
        cfg.max_concurrency = 1;
        cfg.visibility_timeout_ms = 1000;
        herald_consumer *c = NULL;
        if (herald_consumer_start(s, &cfg, &c) < 0)
            _exit(28);
        hx_child_wait_for_kill(29);
    }

    char m[16];
    size_t got = read_marker(rfd, m, sizeof m, 20000);
    int64_t killed_at;
    int st = kill_and_reap(pid, rfd, &killed_at);
    cr_assert(got >= 4 && m[0] == 'S', "the handler never started (status 0x%x)", st);
    hx_assert_killed(st, NULL, CHILD_CODES);
    int delivered = (int)strtol(m + 1, NULL, 10);
    cr_assert_eq(delivered, 10, "the handler got %d messages, want one batch of 10", delivered);

    herald_store *s = reopen();
    assert_lease_still_live(s, "q", killed_at, 500);

    /* the lease (renewed while the handler ran) expires within ~1 s of the kill: look 2 s
     * later on the store's clock */
    s = reopen_ahead(s, 2000);
    idset got_ids = { 0 };
    herald_batch b = { 0 };
    int rc = herald_pull(s, "q", 100, LONG_VIS, &b);
    cr_assert_eq(rc, 0, "%s", herald_last_error());
    assert_redeliveries(&sent, &b);
    for (size_t i = 0; i < b.n; i++)
        idset_add(&got_ids, b.msgs[i].id);
    herald_batch_deinit(&b);
    cr_assert_eq(got_ids.n, 10, "%zu of 10 messages came back 2 s after the kill", got_ids.n);
    idset_sort(&got_ids);
    cr_assert_lt(idset_first_dup(&got_ids), 0, "a message was redelivered twice");
    herald_queue_stats qs = hx_stats(s, "q");
    cr_assert_eq(qs.backlog_count, 10);
    cr_assert_eq(qs.acked_total, 0);
    cr_assert_eq(qs.dead_lettered_total + qs.deleted_total, 0);
    idset_free(&got_ids);
    idset_free(&sent);
    herald_store_close(s);
}

/* ------------------------------------------------------------------------------------------- *
 * e) acks are durable; f) a crash while the store is first created
 * ------------------------------------------------------------------------------------------- */

Test(crash, acked_messages_stay_acked_after_a_kill)
{
    prepare_q10(NULL);

    int rfd, wfd;
    pid_t pid = hx_fork_child(&rfd, &wfd);
    if (pid == 0) {
        herald_store *s = child_open();
        herald_batch b = { 0 };
        if (herald_pull(s, "q", 10, LONG_VIS, &b) < 0 || b.n != 10)
            _exit(30);
        const char *leases[10];
        for (size_t i = 0; i < 10; i++)
            leases[i] = b.msgs[i].lease_id;
        herald_settle_result res;
        if (herald_ack(s, "q", leases, 10, &res) < 0 || res.n_acked != 10)
            _exit(31);
        hx_write_all(wfd, "A", 1);
        hx_child_wait_for_kill(32);
    }
    char m[16];
    size_t got = read_marker(rfd, m, sizeof m, 20000);
    int st = kill_and_reap(pid, rfd, NULL);
    cr_assert(got == 1 && m[0] == 'A', "the child never reported its ack (status 0x%x)", st);
    hx_assert_killed(st, NULL, CHILD_CODES);

    herald_store *s = reopen();
    herald_queue_stats qs = hx_stats(s, "q");
    cr_assert_eq(qs.backlog_count, 0, "acked messages came back after a crash");
    cr_assert_eq(qs.acked_total, 10);
    herald_batch b = { 0 };
    cr_assert_eq(herald_pull(s, "q", 100, LONG_VIS, &b), 0);
    cr_assert_eq(b.n, 0);
    herald_batch_deinit(&b);
    herald_store_close(s);
}

Test(crash, kill_while_the_store_is_first_created_leaves_it_openable)
{
    static const int delays_us[] = { 0, 200, 500, 1000, 2000, 4000, 8000, 16000, 32000 };
    for (size_t r = 0; r < sizeof delays_us / sizeof *delays_us; r++) {
        char name[32];
        snprintf(name, sizeof name, "r%zu.db", r);
        free(g_url);
        g_url = hx_url(g_dir, name);

        int rfd, wfd;
        pid_t pid = hx_fork_child(&rfd, &wfd);
        if (pid == 0) {
            herald_store *s = child_open();
            if (herald_queue_create(s, "q", NULL) < 0)
                _exit(33);
            herald_msg msg = { "{}", 2, HERALD_CONTENT_JSON, HERALD_UNSET };
            if (herald_send(s, "q", &msg, NULL) < 0)
                _exit(34);
            hx_write_all(wfd, "D", 1);
            herald_store_close(s);
            _exit(0);
        }
        hx_sleep_us(delays_us[r]);
        kill(pid, SIGKILL);
        char m[4];
        size_t got = read_marker(rfd, m, sizeof m, 10000);
        close(rfd);
        int st = hx_reap(pid, 10000);
        cr_assert(!WIFEXITED(st) || WEXITSTATUS(st) == 0, "round %zu: child failed with %d", r,
                  WEXITSTATUS(st));

        herald_store *s = reopen();
        int rc = herald_queue_create(s, "q", NULL);
        cr_assert(rc == 0 || rc == HERALD_EEXIST, "round %zu: create after crash: %s: %s", r,
                  herald_err_name(rc), herald_last_error());
        if (got == 1)
            cr_assert_eq(rc, HERALD_EEXIST, "round %zu: the child's confirmed queue is gone", r);
        herald_queue_stats before = hx_stats(s, "q");
        if (got == 1)
            cr_assert_geq(before.backlog_count, 1, "round %zu: confirmed message lost", r);
        herald_msg msg = { "{\"after\":true}", 14, HERALD_CONTENT_JSON, HERALD_UNSET };
        rc = herald_send(s, "q", &msg, NULL);
        cr_assert_eq(rc, 0, "round %zu: send after crash: %s", r, herald_last_error());
        herald_queue_stats after = hx_stats(s, "q");
        cr_assert_eq(after.backlog_count, before.backlog_count + 1);
        herald_store_close(s);
        cr_log_info("round %zu: killed after %d us (child %s)", r, delays_us[r],
                    got ? "had finished" : "was still working");
    }
}
