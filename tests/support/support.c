// SPDX-License-Identifier: MIT
/*
 * support.c - the fixtures of support.h. Test-only code: aborts on setup failures; the
 * asserting wrappers fail the calling test through Criterion.
 */
#define _XOPEN_SOURCE 700
#include "support.h"

#include <criterion/criterion.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <poll.h>

static int64_t fake_now(void *ud)
{
    hx_clock *c = ud;
    return __atomic_load_n(&c->now_ms, __ATOMIC_SEQ_CST);
}

void hx_clock_init(hx_clock *c)
{
    c->clock.now_ms = fake_now;
    c->clock.ud = c;
    c->now_ms = 1767225600000LL; /* 2026-01-01T00:00:00Z */
}

void hx_clock_advance(hx_clock *c, int64_t ms)
{
    __atomic_add_fetch(&c->now_ms, ms, __ATOMIC_SEQ_CST);
}

int64_t hx_clock_now(hx_clock *c)
{
    return fake_now(c);
}

char *hx_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    size_t n = strlen(base) + 32;
    char *p = malloc(n);
    if (!p)
        abort();
    snprintf(p, n, "%s/herald-test-XXXXXX", base);
    if (!mkdtemp(p)) {
        perror("mkdtemp");
        abort();
    }
    return p;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void hx_rmrf(const char *dir)
{
    if (dir)
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

char *hx_url(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 16;
    char *p = malloc(n);
    if (!p)
        abort();
    snprintf(p, n, "sqlite:%s/%s", dir, name);
    return p;
}

herald_store *hx_open(const char *dir, hx_clock *clock)
{
    return hx_open_file(dir, "herald.db", clock);
}

herald_store *hx_open_file(const char *dir, const char *file, hx_clock *clock)
{
    char *url = hx_url(dir, file);
    herald_store_cfg cfg = { 0 };
    cfg.clock = clock ? &clock->clock : NULL;
    herald_store *s = NULL;
    int rc = herald_store_open(url, &cfg, &s);
    if (rc < 0) {
        fprintf(stderr, "hx_open(%s): %s: %s\n", url, herald_strerror(rc), herald_last_error());
        abort();
    }
    free(url);
    return s;
}

const char *hx_herald_bin(void)
{
    const char *e = getenv("HERALD_BIN");
    return e && *e ? e : HERALD_BIN;
}

typedef struct buf {
    char *p;
    size_t n, cap;
} buf;

static void buf_add(buf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            abort();
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

int hx_cli(const char *const *argv, const char *stdin_text, char **out, char **err)
{
    int pin[2], pout[2], perr[2];
    if (pipe(pin) || pipe(pout) || pipe(perr))
        abort();
    pid_t pid = fork();
    if (pid < 0)
        abort();
    if (pid == 0) {
        dup2(pin[0], 0);
        dup2(pout[1], 1);
        dup2(perr[1], 2);
        close(pin[0]); close(pin[1]); close(pout[0]); close(pout[1]); close(perr[0]); close(perr[1]);
        size_t n = 0;
        while (argv[n])
            n++;
        char **av = calloc(n + 2, sizeof *av);
        av[0] = (char *)hx_herald_bin();
        for (size_t i = 0; i < n; i++)
            av[i + 1] = (char *)argv[i];
        execv(av[0], av);
        _exit(127);
    }
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);
    signal(SIGPIPE, SIG_IGN);
    size_t in_len = stdin_text ? strlen(stdin_text) : 0, in_off = 0;
    if (in_len == 0) {
        close(pin[1]);
        pin[1] = -1;
    }
    buf bo = { 0 }, be = { 0 };
    buf_add(&bo, "", 0);
    buf_add(&be, "", 0);
    int open_fds = 2;
    while (open_fds > 0 || pin[1] >= 0) {
        struct pollfd fds[3] = { { pout[0], POLLIN, 0 }, { perr[0], POLLIN, 0 },
                                 { pin[1], POLLOUT, 0 } };
        if (poll(fds, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            abort();
        }
        char tmp[65536];
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd >= 0 && (fds[i].revents & (POLLIN | POLLHUP | POLLERR))) {
                ssize_t r = read(fds[i].fd, tmp, sizeof tmp);
                if (r > 0) {
                    buf_add(i == 0 ? &bo : &be, tmp, (size_t)r);
                } else {
                    close(fds[i].fd);
                    if (i == 0)
                        pout[0] = -1;
                    else
                        perr[0] = -1;
                    open_fds--;
                }
            }
        }
        if (pin[1] >= 0 && (fds[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t w = write(pin[1], stdin_text + in_off, in_len - in_off);
            if (w > 0)
                in_off += (size_t)w;
            if (w <= 0 || in_off == in_len) {
                close(pin[1]);
                pin[1] = -1;
            }
        }
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (out)
        *out = bo.p;
    else
        free(bo.p);
    if (err)
        *err = be.p;
    else
        free(be.p);
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    return 128 + WTERMSIG(st);
}

char *hx_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    buf b = { 0 };
    buf_add(&b, "", 0);
    char tmp[65536];
    size_t r;
    while ((r = fread(tmp, 1, sizeof tmp, f)) > 0)
        buf_add(&b, tmp, r);
    fclose(f);
    if (len)
        *len = b.n;
    return b.p;
}

int64_t hx_cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (int64_t)ru.ru_utime.tv_sec * 1000000 + ru.ru_utime.tv_usec +
           (int64_t)ru.ru_stime.tv_sec * 1000000 + ru.ru_stime.tv_usec;
}

/* ---- per-test environment ------------------------------------------------------------------- */

void hx_env_setup(hx_env *e, unsigned flags)
{
    memset(e, 0, sizeof *e);
    e->flags = flags;
    e->dir = hx_tmpdir();
    hx_clock_init(&e->clock);
    if (!(flags & HX_ENV_NO_STORE))
        hx_env_reopen(e);
}

void hx_env_setup_with_queue(hx_env *e, const char *queue)
{
    hx_env_setup(e, 0);
    hx_create_queue(e->store, queue, NULL);
}

void hx_env_close(hx_env *e)
{
    herald_store_close(e->store);
    e->store = NULL;
}

void hx_env_reopen(hx_env *e)
{
    if (e->store)
        abort(); /* a test bug: two stores on one file */
    e->store = hx_open(e->dir, (e->flags & HX_ENV_REAL_CLOCK) ? NULL : &e->clock);
}

void hx_env_teardown(hx_env *e)
{
    hx_env_close(e);
    hx_rmrf(e->dir);
    free(e->dir);
    memset(e, 0, sizeof *e);
}

/* ---- time ----------------------------------------------------------------------------------- */

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t hx_wall_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

int64_t hx_mono_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

void hx_sleep_us(int64_t us)
{
    struct timespec ts = { (time_t)(us / 1000000), (long)(us % 1000000) * 1000 };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

void hx_sleep_ms(int64_t ms)
{
    hx_sleep_us(ms * 1000);
}

/* ---- predicates ----------------------------------------------------------------------------- */

/* Does needle match at h? With fuzzy_underscore, '_' in needle also matches ' ' or '-'. */
static bool match_at(const char *h, const char *needle, size_t n, bool fuzzy_underscore)
{
    for (size_t i = 0; i < n; i++) {
        if (!h[i])
            return false;
        char a = (char)tolower((unsigned char)h[i]);
        char b = (char)tolower((unsigned char)needle[i]);
        if (a == b)
            continue;
        if (fuzzy_underscore && b == '_' && (a == ' ' || a == '-'))
            continue;
        return false;
    }
    return true;
}

static bool search_ci(const char *hay, const char *needle, bool fuzzy_underscore)
{
    if (!hay || !needle)
        return false;
    size_t n = strlen(needle);
    for (const char *h = hay; *h; h++) {
        if (match_at(h, needle, n, fuzzy_underscore))
            return true;
    }
    return false;
}

bool hx_mentions(const char *hay, const char *needle)
{
    return search_ci(hay, needle, true);
}

bool hx_contains_ci(const char *hay, const char *needle)
{
    return search_ci(hay, needle, false);
}

bool hx_is_uuid(const char *s)
{
    if (!s || strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
        } else if (!isxdigit((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

bool hx_body_is(const herald_message *m, const char *s)
{
    return m->body_len == strlen(s) && memcmp(m->body, s, m->body_len) == 0;
}

/* ---- asserting wrappers of the public API --------------------------------------------------- */

void hx_create_queue(herald_store *s, const char *name, const herald_queue_settings *st)
{
    int rc = herald_queue_create(s, name, st);
    cr_assert_eq(rc, 0, "herald_queue_create(%s) = %s: %s", name, herald_err_name(rc),
                 herald_last_error());
}

void hx_send(herald_store *s, const char *q, const herald_msg *m, char id[HERALD_ID_SIZE])
{
    int rc = herald_send(s, q, m, id);
    cr_assert_eq(rc, 0, "herald_send(%s) = %s: %s", q, herald_err_name(rc), herald_last_error());
}

void hx_send_json(herald_store *s, const char *q, const char *json, int64_t delay_s,
                  char id[HERALD_ID_SIZE])
{
    herald_msg m = { json, strlen(json), HERALD_CONTENT_JSON, delay_s };
    hx_send(s, q, &m, id);
}

herald_queue_stats hx_stats(herald_store *s, const char *q)
{
    herald_queue_stats st;
    memset(&st, 0, sizeof st);
    int rc = herald_queue_stats_get(s, q, &st);
    cr_assert_eq(rc, 0, "herald_queue_stats_get(%s) = %s: %s", q, herald_err_name(rc),
                 herald_last_error());
    return st;
}

size_t hx_pull(herald_store *s, const char *q, int max_n, int64_t visibility_ms, herald_batch *b)
{
    herald_batch_deinit(b); /* b may hold an earlier (possibly empty) result */
    int rc = herald_pull(s, q, max_n, visibility_ms, b);
    cr_assert_eq(rc, 0, "herald_pull(%s) = %s: %s", q, herald_err_name(rc), herald_last_error());
    return b->n;
}

size_t hx_peek(herald_store *s, const char *q, herald_batch *b)
{
    herald_batch_deinit(b);
    int rc = herald_peek(s, q, 100, b);
    cr_assert_eq(rc, 0, "herald_peek(%s) = %s: %s", q, herald_err_name(rc), herald_last_error());
    return b->n;
}

herald_settle_result hx_ack1(herald_store *s, const char *q, const char *lease)
{
    herald_settle_result r;
    memset(&r, 0, sizeof r);
    const char *leases[] = { lease };
    int rc = herald_ack(s, q, leases, 1, &r);
    cr_assert_eq(rc, 0, "herald_ack(%s) = %s: %s", q, herald_err_name(rc), herald_last_error());
    return r;
}

herald_consumer *hx_consumer_start(herald_store *s, const herald_consumer_cfg *c)
{
    herald_consumer *out = NULL;
    int rc = herald_consumer_start(s, c, &out);
    cr_assert_eq(rc, 0, "consumer_start: %s: %s", herald_err_name(rc), herald_last_error());
    cr_assert_not_null(out);
    return out;
}

int hx_effects_handler(herald_tx *tx, const herald_message *m, const herald_envelope *en,
                       void *ud)
{
    (void)m;
    if (ud)
        atomic_fetch_add((atomic_int *)ud, 1);
    if (!en) {
        herald_tx_set_error(tx, "not an envelope");
        return -1;
    }
    herald_arg a = HERALD_ARG_S(en->event_id);
    return herald_tx_exec(tx, "INSERT INTO effects(event_id) VALUES (?)", &a, 1, NULL);
}

/* ---- SQL ------------------------------------------------------------------------------------ */

int hx_cb_ints(void *ud, const herald_row *r)
{
    int64_t *out = ud;
    for (int i = 0; i < herald_row_columns(r) && i < 4; i++)
        out[i] = herald_row_get(r, i).i;
    return 0;
}

static int cb_int(void *ud, const herald_row *r)
{
    *(int64_t *)ud = herald_row_get(r, 0).i;
    return 0;
}

int64_t hx_sql_int(herald_store *s, const char *sql)
{
    int64_t v = -1;
    int rc = herald_sql_query(s, sql, NULL, 0, cb_int, &v);
    cr_assert_eq(rc, 0, "%s: %s: %s", sql, herald_err_name(rc), herald_last_error());
    return v;
}

/* ---- child processes ------------------------------------------------------------------------ */

void hx_write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            _exit(90); /* the parent went away */
        c += w;
        n -= (size_t)w;
    }
}

pid_t hx_fork_child(int *rfd, int *wfd)
{
    int p[2] = { -1, -1 };
    if (wfd)
        cr_assert_eq(pipe(p), 0, "pipe: %s", strerror(errno));
    fflush(stdout);
    fflush(stderr);
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(91);
        if (wfd) {
            close(p[0]);
            *wfd = p[1];
            *rfd = -1;
        }
        return 0;
    }
    if (wfd) {
        close(p[1]);
        *rfd = p[0];
        *wfd = -1;
    }
    return pid;
}

pid_t hx_exec_worker(const char *const *argv, const char *fault)
{
    pid_t pid = hx_fork_child(NULL, NULL);
    if (pid == 0) {
        if (fault)
            setenv("HERALD_FAULT", fault, 1);
        else
            unsetenv("HERALD_FAULT");
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

int hx_reap(pid_t pid, int64_t timeout_ms)
{
    int64_t end = hx_mono_ms() + timeout_ms;
    for (;;) {
        int st = 0;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        cr_assert(r == 0 || (r < 0 && errno == EINTR), "waitpid: %s", strerror(errno));
        if (hx_mono_ms() > end) {
            kill(pid, SIGKILL);
            (void)waitpid(pid, &st, 0);
            cr_assert_fail("child %d did not end within %lld ms", (int)pid, (long long)timeout_ms);
        }
        hx_sleep_ms(2);
    }
}

int hx_kill_and_reap(pid_t pid, int64_t timeout_ms)
{
    kill(pid, SIGKILL);
    return hx_reap(pid, timeout_ms);
}

void hx_assert_killed(int st, const char *what, const char *codes)
{
    const char *sep = what ? ": " : "";
    what = what ? what : "";
    if (WIFEXITED(st))
        cr_assert_fail("%s%sthe child exited by itself with code %d before it was killed (%s)",
                       what, sep, WEXITSTATUS(st), codes ? codes : "?");
    cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "%s%schild ended with status 0x%x",
              what, sep, st);
}

_Noreturn void hx_child_wait_for_kill(int code)
{
    for (int i = 0; i < 600; i++)
        hx_sleep_ms(100);
    _exit(code);
}
