// SPDX-License-Identifier: MIT
/*
 * test_cli_store_files.c - `--store sqlite:PATH` where PATH is not a regular file: /dev/null, a
 * directory, a FIFO. The CLI exits 1 with a "herald: " message that names what the path is
 * (issue 7 §4: /dev/null used to report "cannot rollback - no transaction is active", the
 * symptom of a failed migration on a file that cannot hold a database), and leaves the path as
 * it was. And a send whose fsync fails (HERALD_FAULT=sqlite.wal_sync=EIO|ENOSPC): exit 1 naming
 * the cause, and the next process works. Each test owns a temp dir (also its cwd).
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

TestSuite(cli_store_files, .init = hx_e2e_setup, .fini = hx_e2e_teardown, .timeout = 60);

/* Runs `herald --store sqlite:PATH queues list` and asserts exit 1 with a message naming
 * PATH and `kind`. */
static void refused(const char *path, const char *kind)
{
    char url[4200];
    snprintf(url, sizeof url, "sqlite:%s", path);
    char *out = NULL, *err = NULL;
    int rc = RUN_AT(url, NULL, &out, &err, "queues", "list");
    cr_assert_eq(rc, 1, "exit %d for %s; stderr: %s", rc, url, err);
    cr_assert(strncmp(err, "herald: ", 8) == 0, "stderr: %s", err);
    cr_assert(strstr(err, path) && strstr(err, kind),
              "stderr does not name '%s' and what it is (%s): %s", path, kind, err);
    cr_assert(strstr(err, "HERALD_ENOTHERALD"), "stderr: %s", err);
    cr_assert_null(strstr(err, "no transaction"), "a symptom instead of the cause: %s", err);
    free(out);
    free(err);
}

Test(cli_store_files, dev_null_as_the_store_names_a_character_device)
{
    struct stat before;
    cr_assert_eq(stat("/dev/null", &before), 0);
    refused("/dev/null", "character device");
    struct stat after;
    cr_assert_eq(stat("/dev/null", &after), 0);
    cr_assert(S_ISCHR(after.st_mode) && after.st_rdev == before.st_rdev,
              "/dev/null is no longer the null device");
    cr_assert_neq(access("/dev/null-wal", F_OK), 0, "a WAL was made beside /dev/null");
}

Test(cli_store_files, a_directory_as_the_store_names_a_directory)
{
    cr_assert_eq(mkdir("d", 0700), 0);
    char path[4200];
    snprintf(path, sizeof path, "%s/d", hx_e2e.dir);
    refused(path, "directory");
}

Test(cli_store_files, a_fifo_as_the_store_names_a_fifo)
{
    cr_assert_eq(mkfifo("f", 0600), 0);
    char path[4200];
    snprintf(path, sizeof path, "%s/f", hx_e2e.dir);
    refused(path, "FIFO");
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert(S_ISFIFO(st.st_mode), "the FIFO was replaced");
}

/* An fsync that fails (fault point sqlite.wal_sync, armed through HERALD_FAULT in the CLI's
 * environment): the send exits 1 naming the cause; the next process reopens the store, which
 * holds what was confirmed before and accepts writes. */
static void failed_fsync_case(const char *fault, const char *cause)
{
    hx_cli_mkq("q");
    OKV(NULL, "send", "q", "{\"n\":1}");
    cr_assert_eq(setenv("HERALD_FAULT", fault, 1), 0);
    char *out = NULL, *err = NULL;
    int rc = RUN(NULL, &out, &err, "send", "q", "{\"n\":2}");
    unsetenv("HERALD_FAULT");
    cr_assert_eq(rc, 1, "exit %d; stderr: %s", rc, err);
    const char *line = strstr(err, "herald: "); /* after the store's JSON log line */
    cr_assert(line && strstr(line, cause) && strstr(line, "HERALD_EIO"),
              "stderr does not name the cause (%s): %s", cause, err);
    free(out);
    free(err);
    OKV(NULL, "send", "q", "{\"n\":3}");
    cr_assert_geq(hx_cli_stat("q", "backlog_count"), 2, "a confirmed message is lost");
}

Test(cli_store_files, a_send_whose_fsync_fails_exits_1_with_io_error_on_fsync)
{
    failed_fsync_case("sqlite.wal_sync=EIO", "I/O error on fsync");
}

Test(cli_store_files, a_send_whose_fsync_finds_the_disk_full_exits_1_with_disk_full)
{
    failed_fsync_case("sqlite.wal_sync=ENOSPC", "disk full");
}
