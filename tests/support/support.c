// SPDX-License-Identifier: MIT
/*
 * support.c - the fixtures of support.h. Test-only code: aborts on setup failures.
 */
#define _XOPEN_SOURCE 700
#include "support.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
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
    char *url = hx_url(dir, "herald.db");
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
