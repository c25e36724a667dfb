// SPDX-License-Identifier: MIT
/*
 * test_cli_store_files.c - `--store sqlite:PATH` where PATH is not a regular file: /dev/null, a
 * directory, a FIFO. The CLI exits 1 with a "herald: " message that names what the path is
 * (issue 7 §4: /dev/null used to report "cannot rollback - no transaction is active", the
 * symptom of a failed migration on a file that cannot hold a database), and leaves the path as
 * it was. Each test owns a temp dir (also its cwd).
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
