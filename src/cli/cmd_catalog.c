// SPDX-License-Identifier: MIT
/*
 * cmd_catalog.c - `herald catalog gen FILE [-o OUT] [--guard G]`; `catalog check`, `diff` and
 * `history` are in cmd_catalog_registry.c.
 * gen writes the header atomically when -o names a file (temp file, fsync, rename, fsync the
 * directory; through a symlink, the target is replaced), and writes through a device or FIFO
 * (/dev/null, /dev/stdout) instead of replacing it.
 */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const usage_catalog =
    "usage: herald catalog gen FILE [-o OUT] [--guard NAME]   typed C header (stdout default)\n"
    "       herald catalog check FILE                         validate a catalog file\n"
    "       herald catalog diff OLD NEW                       changes, breaking ones marked\n"
    "       herald catalog history                            versions applied to the store\n"
    "A catalog lists every event type and its payload fields; see examples/events.jsonc.\n";

/* Temp file beside path (unique name: two runs do not share it), fsync, rename over path, then
 * fsync the directory so the rename itself survives a crash. -1 with errno on failure; path is
 * then untouched and the temp file removed. */
static int write_atomically(const char *path, const char *text)
{
    size_t n = strlen(path) + 16;
    char *tmp = herald__xmalloc(n);
    snprintf(tmp, n, "%s.XXXXXX", path);
    int fd = mkstemp(tmp);
    int rc = fd < 0 || fchmod(fd, 0644) != 0 ? -1 : 0;
    size_t len = strlen(text), off = 0;
    while (rc == 0 && off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w <= 0)
            rc = -1;
        else
            off += (size_t)w;
    }
    if (rc == 0 && fsync(fd) != 0)
        rc = -1;
    if (fd >= 0 && close(fd) != 0)
        rc = -1;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -1;
    if (rc != 0 && fd >= 0) {
        int e = errno;
        unlink(tmp);
        errno = e;
    }
    if (rc == 0) {
        char *dir = herald__xstrdup(path);
        int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY);
        if (dfd < 0 || fsync(dfd) != 0)
            rc = -1;
        if (dfd >= 0)
            close(dfd);
        herald__free(dir);
    }
    herald__free(tmp);
    return rc;
}

/* Writes text to what is already at path and is not a regular file (a device such as
 * /dev/null or /dev/stdout, a FIFO): through it, never replacing it. */
static int write_through(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = strlen(text), off = 0;
    int rc = 0;
    while (rc == 0 && off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            rc = -1;
        else
            off += (size_t)w;
    }
    if (close(fd) != 0 && rc == 0)
        rc = -1;
    return rc;
}

/* -o OUT: a regular file (or a new one) is replaced atomically; a symlink to one has its target
 * replaced and stays a link; a device or FIFO is written through; a directory or a dangling link
 * is refused. Returns CLI_OK or CLI_FAIL (message printed). */
static int write_output(const char *out, const char *text)
{
    struct stat st, lst;
    if (lstat(out, &lst) == 0 && S_ISLNK(lst.st_mode) && stat(out, &st) != 0) {
        fprintf(stderr, "herald: catalog gen: cannot write '%s': a symbolic link to nothing (%s)\n",
                out, strerror(errno));
        return CLI_FAIL;
    }
    int rc = 0;
    if (stat(out, &st) != 0) {
        rc = write_atomically(out, text); /* a new file */
    } else if (S_ISDIR(st.st_mode)) {
        fprintf(stderr, "herald: catalog gen: '%s' is a directory: -o needs a file\n", out);
        return CLI_FAIL;
    } else if (!S_ISREG(st.st_mode)) {
        rc = write_through(out, text);
    } else if (S_ISLNK(lst.st_mode)) {
        char *target = realpath(out, NULL);
        rc = target ? write_atomically(target, text) : -1;
        free(target); /* lint:ok realpath allocates with malloc */
    } else {
        rc = write_atomically(out, text);
    }
    if (rc != 0) {
        fprintf(stderr, "herald: catalog gen: cannot write %s: %s\n", out, strerror(errno));
        return CLI_FAIL;
    }
    return CLI_OK;
}

int cmd_catalog(const cli_ctx *ctx, int argc, char **argv)
{
    /* check, diff, history: cmd_catalog_registry.c */
    if (argc > 0 && (strcmp(argv[0], "check") == 0 || strcmp(argv[0], "diff") == 0 ||
                     strcmp(argv[0], "history") == 0))
        return cmd_catalog_registry(ctx, argc, argv);
    /* -o is the one short option of the CLI: map it to --out before parsing. */
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "-o") == 0)
            argv[i] = "--out";
    cli_opt opts[] = { { "out", true, NULL }, { "guard", true, NULL } };
    char *pos[8];
    int n_pos = 0;
    bool help = false;
    if (argc > 7)
        return cli_usage(usage_catalog, "too many arguments");
    int rc = cli_parse(argc, argv, opts, 2, pos, &n_pos, &help);
    if (rc != CLI_OK)
        return rc;
    if (help) {
        fputs(usage_catalog, stdout);
        return CLI_OK;
    }
    if (n_pos != 2 || (strcmp(pos[0], "gen") != 0 && strcmp(pos[0], "check") != 0))
        return cli_usage(usage_catalog, n_pos < 2 ? "catalog: needs a verb and FILE"
                                                  : "catalog: expected gen|check FILE");
    bool is_gen = strcmp(pos[0], "gen") == 0;
    if (!is_gen && (opts[0].value || opts[1].value))
        return cli_usage(usage_catalog, "catalog check: takes no options");
    herald_catalog *c = NULL;
    int hrc = herald_catalog_load(pos[1], &c);
    if (hrc < 0)
        return cli_fail("catalog", hrc);
    if (!is_gen) {
        printf("%s: %zu event types, valid\n", pos[1], herald_catalog_count(c));
        herald_catalog_free(c);
        return CLI_OK;
    }
    char *text = NULL;
    hrc = herald_catalog_gen_header(c, opts[1].value, &text);
    herald_catalog_free(c);
    if (hrc < 0)
        return cli_fail("catalog gen", hrc);
    const char *out = opts[0].value;
    if (!out || strcmp(out, "-") == 0) {
        fputs(text, stdout);
    } else {
        rc = write_output(out, text);
    }
    herald_free(text);
    return rc;
}
