// SPDX-License-Identifier: MIT
/*
 * test_cli_adversary.c - the CLI against input meant to break it (issue 7 §4): redrive edits
 * with paths that are not valid UTF-8, redrive into a queue whose max_message_bytes the body
 * exceeds, redrive edits of the correlation id (traced under the new one), --rate values that
 * are not a rate, dead letters whose error text was invalid UTF-8 or cut inside a character
 * (every tool still shows them), and `catalog gen -o` on a device, a symlink and a directory.
 * Dead letters are made through the public API on the store file the CLI then opens (the store
 * is closed before any CLI call). Every test owns a temp dir (also its cwd).
 */
#include <criterion/criterion.h>
#include <jansson.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "cli.h"

TestSuite(cli_adversary, .init = hx_e2e_setup, .fini = hx_e2e_teardown, .timeout = 60);


/* "orders" (max_retries 0) -> "orders-dlq" holding one event of correlation id "corr-1" with
 * payload `payload`, dead-lettered with `error`; closes the store. */
static void dead_event(const char *payload, const char *error, char id[HERALD_ID_SIZE])
{
    herald_store *s = hx_e2e_open_store();
    hx_mkq_dlq(s, "orders", 0, "orders-dlq");
    herald_event e = { .type = "order.placed", .source = "e2e", .correlation_id = "corr-1",
                       .payload_json = payload };
    cr_assert_eq(herald_send_event(s, "orders", &e, HERALD_UNSET, NULL), 0, "%s",
                 herald_last_error());
    hx_fail_all(s, "orders", error);
    herald_batch b;
    cr_assert_eq(herald_peek(s, "orders-dlq", 10, &b), 0);
    cr_assert_eq(b.n, 1);
    memcpy(id, b.msgs[0].id, HERALD_ID_SIZE);
    herald_batch_deinit(&b);
    herald_store_close(s);
}

static json_t *dlq_list(void)
{
    return JSON(NULL, "dlq", "list", "orders-dlq", "--json");
}

/* Nothing moved and nothing audited. */
static void assert_unchanged(const char *id)
{
    json_t *l = dlq_list();
    cr_assert_eq(json_array_size(l), 1);
    cr_assert_str_eq(hx_json_str(json_array_get(l, 0), "id"), id);
    json_decref(l);
    json_t *au = JSON(NULL, "dlq", "audit", "--json");
    cr_assert_eq(json_array_size(au), 0, "the audit must stay empty");
    json_decref(au);
    cr_assert_eq(hx_cli_stat("orders", "backlog_count"), 0);
}

/* ---- redrive --set paths ------------------------------------------------------------------ */

Test(cli_adversary, redrive_set_with_a_path_that_is_not_utf8_is_refused_naming_it)
{
    char id[HERALD_ID_SIZE];
    dead_event("{\"n\":1}", "boom", id);
    /* x\xff.y: the first segment (jansson used to free the new child, then use it) */
    char *err = FAIL(1, NULL, "dlq", "redrive", "orders-dlq", "--set", "x\xff.y=1");
    cr_assert(strstr(err, "edit path 'x\xef\xbf\xbd.y' is not valid UTF-8"), "%s", err);
    free(err);
    assert_unchanged(id);
    /* a.b\xff: the last one (the edit was silently dropped, exit 0) */
    err = FAIL(1, NULL, "dlq", "redrive", "orders-dlq", "--set", "payload.b\xff=1");
    cr_assert(strstr(err, "payload.b\xef\xbf\xbd"), "%s", err);
    cr_assert(strstr(err, "not valid UTF-8"), "%s", err);
    free(err);
    assert_unchanged(id);
    static const char *const empty[] = { "payload..n=2", ".n=2", "payload.=2" };
    for (size_t i = 0; i < 3; i++) {
        err = FAIL(1, NULL, "dlq", "redrive", "orders-dlq", "--set", empty[i]);
        cr_assert(strstr(err, "has an empty segment"), "%s: %s", empty[i], err);
        free(err);
    }
    assert_unchanged(id);
    /* a good edit of the same message still works, and is audited */
    OKV(NULL, "dlq", "redrive", "orders-dlq", "--set", "payload.n=2", "--by", "me");
    json_t *au = JSON(NULL, "dlq", "audit", "--json");
    cr_assert_eq(json_array_size(au), 1);
    cr_assert_str_eq(hx_json_str(json_array_get(au, 0), "edit"), "set payload.n=2");
    json_decref(au);
}

/* ---- redrive and the destination queue ------------------------------------------------------ */

Test(cli_adversary, redrive_refuses_a_body_over_the_destination_max_message_bytes)
{
    char id[HERALD_ID_SIZE];
    dead_event("{\"text\":\"a payload long enough to be over fifty bytes once enveloped\"}",
               "boom", id);
    OKV(NULL, "queues", "create", "small", "--max-message-bytes", "50");
    char *err = FAIL(1, NULL, "dlq", "redrive", "orders-dlq", "--to", "small");
    cr_assert(strstr(err, id), "%s", err);
    cr_assert(strstr(err, "max_message_bytes of queue 'small'"), "%s", err);
    free(err);
    cr_assert_eq(hx_cli_stat("small", "backlog_count"), 0);
    assert_unchanged(id);
    /* an edit that makes it small enough is let through */
    OKV(NULL, "queues", "create", "medium", "--max-message-bytes", "200");
    err = FAIL(1, NULL, "dlq", "redrive", "orders-dlq", "--to", "medium", "--set",
               "payload.text=\"" /* 300 bytes */
               "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
               "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
               "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
               "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"");
    cr_assert(strstr(err, "edited body"), "%s", err);
    free(err);
    assert_unchanged(id);
    OKV(NULL, "dlq", "redrive", "orders-dlq", "--to", "medium", "--set", "payload.text=\"short\"");
    cr_assert_eq(hx_cli_stat("medium", "backlog_count"), 1);
}

Test(cli_adversary, a_redrive_that_edits_the_correlation_id_is_traced_under_the_new_one)
{
    char id[HERALD_ID_SIZE];
    dead_event("{\"n\":1}", "boom", id);
    OKV(NULL, "dlq", "redrive", "orders-dlq", "--set", "correlation_id=corr-2", "--set",
        "type=order.fixed");
    /* consume the redriven message: its ack is recorded under the correlation id of its row */
    json_t *pulled = JSON(NULL, "pull", "orders", "--json");
    cr_assert_eq(json_array_size(pulled), 1);
    OKV(NULL, "ack", "orders", hx_json_str(json_array_get(pulled, 0), "lease_id"));
    json_decref(pulled);
    json_t *t2 = JSON(NULL, "trace", "corr-2", "--json");
    cr_assert_eq(json_array_size(t2), 1, "the redriven message is not traced under corr-2");
    cr_assert_str_eq(hx_json_str(json_array_get(t2, 0), "what"), "acked");
    cr_assert_str_eq(hx_json_str(json_array_get(t2, 0), "type"), "order.fixed");
    cr_assert_str_eq(hx_json_str(json_array_get(t2, 0), "message_id"), id);
    json_decref(t2);
    json_t *t1 = JSON(NULL, "trace", "corr-1", "--json");
    size_t n = json_array_size(t1);
    for (size_t i = 0; i < n; i++)
        cr_assert_str_neq(hx_json_str(json_array_get(t1, i), "what"), "acked",
                          "the ack went to the old correlation id");
    json_decref(t1);
}

Test(cli_adversary, redrive_rate_must_be_a_finite_rate_in_range)
{
    char id[HERALD_ID_SIZE];
    dead_event("{\"n\":1}", "boom", id);
    static const char *const bad[] = { "nan/s", "inf/s", "-inf/s", "1e-300/s", "0/s",
                                       "1e7/s", "-1/s",  "nan",    "infinity/s" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *err = FAIL(2, NULL, "dlq", "redrive", "orders-dlq", "--rate", bad[i]);
        cr_assert(strstr(err, "--rate needs a number of messages per second from 0.001 to 1e+06"),
                  "%s: %s", bad[i], err);
        cr_assert(strstr(err, bad[i]), "%s", err);
        free(err);
    }
    assert_unchanged(id);
    OKV(NULL, "dlq", "redrive", "orders-dlq", "--rate", "1000/s");
    cr_assert_eq(hx_cli_stat("orders", "backlog_count"), 1);
}

/* ---- error texts ---------------------------------------------------------------------------- */

/* Asserts that every tool shows the dead letter id of "orders-dlq" with an error text holding
 * `want`. */
static void tools_show(const char *id, const char *want)
{
    json_t *l = dlq_list();
    cr_assert_eq(json_array_size(l), 1, "dlq list --json lost the dead letter");
    cr_assert_str_eq(hx_json_str(json_array_get(l, 0), "id"), id);
    const char *le = hx_json_str(json_array_get(l, 0), "last_error");
    cr_assert(strstr(le, want), "last_error '%s' lacks '%s'", le, want);
    json_decref(l);
    char *text = OK(NULL, "dlq", "list", "orders-dlq");
    cr_assert(strstr(text, id) && strstr(text, want), "dlq list: %s", text);
    free(text);
    json_t *show = JSON(NULL, "dlq", "show", "orders-dlq", id, "--json");
    char *dump = json_dumps(show, 0);
    cr_assert(strstr(dump, id), "dlq show --json: %s", dump);
    free(dump);
    json_decref(show);
    text = OK(NULL, "dlq", "show", "orders-dlq", id);
    cr_assert(strstr(text, id) && strstr(text, want), "dlq show: %s", text);
    free(text);
    json_t *pk = JSON(NULL, "peek", "orders-dlq", "--json");
    cr_assert_eq(json_array_size(pk), 1);
    cr_assert(strstr(hx_json_str(json_array_get(pk, 0), "last_error"), want));
    json_decref(pk);
    json_t *tr = JSON(NULL, "trace", "corr-1", "--json");
    bool dead = false;
    for (size_t i = 0; i < json_array_size(tr); i++)
        if (strcmp(hx_json_str(json_array_get(tr, i), "what"), "dead_lettered") == 0) {
            dead = true;
            cr_assert(strstr(hx_json_str(json_array_get(tr, i), "detail"), want));
        }
    cr_assert(dead, "trace --json lost the dead_lettered step");
    json_decref(tr);
}

Test(cli_adversary, a_dead_letter_whose_error_was_invalid_utf8_is_shown_by_every_tool)
{
    char id[HERALD_ID_SIZE];
    dead_event("{\"n\":1}", "bad \xff", id);
    tools_show(id, "bad \xef\xbf\xbd");
}

Test(cli_adversary, a_dead_letter_whose_long_error_was_cut_is_shown_by_every_tool)
{
    /* 254 bytes, then a 2-byte character across the 255-byte cut, then more */
    char error[400];
    memset(error, 'e', 254);
    snprintf(error + 254, sizeof error - 254, "\xc3\xa9 and then some more text");
    char id[HERALD_ID_SIZE];
    dead_event("{\"n\":1}", error, id);
    tools_show(id, "eeeeeeeeee");
    json_t *l = dlq_list();
    cr_assert_eq(strlen(hx_json_str(json_array_get(l, 0), "last_error")), 254);
    json_decref(l);
}

/* ---- catalog gen -o ------------------------------------------------------------------------- */

static void write_catalog(void)
{
    FILE *f = fopen("cat.jsonc", "w");
    cr_assert_not_null(f);
    fputs("{\"events\": {\"a.b\": {\"payload\": {\"n\": \"integer\"}}}}", f);
    fclose(f);
}

Test(cli_adversary, catalog_gen_writes_through_a_device_instead_of_replacing_it)
{
    write_catalog();
    /* As root (where the bug replaced /dev/null itself) a private null device in the test's
     * dir, so that a regression breaks only that; otherwise /dev/null, which a user cannot
     * replace anyway. */
    const char *dev = geteuid() == 0 ? NULL : "/dev/null";
    if (!dev && mknod("null", S_IFCHR | 0666, makedev(1, 3)) == 0) {
        int fd = open("null", O_WRONLY); /* a nodev mount refuses to open it: then no device */
        if (fd >= 0) {
            dev = "null";
            close(fd);
        }
    }
    if (dev) {
        struct stat before;
        cr_assert_eq(stat(dev, &before), 0);
        cr_assert(S_ISCHR(before.st_mode));
        OKV(NULL, "catalog", "gen", "cat.jsonc", "-o", dev);
        struct stat after;
        cr_assert_eq(stat(dev, &after), 0);
        cr_assert(S_ISCHR(after.st_mode), "%s is not a character device any more", dev);
        cr_assert_eq(after.st_rdev, before.st_rdev);
    }
    /* and a FIFO is written through too: a reader gets the header */
    cr_assert_eq(mkfifo("fifo", 0600), 0);
    FILE *r = popen("cat fifo > from-fifo.h", "r");
    cr_assert_not_null(r);
    OKV(NULL, "catalog", "gen", "cat.jsonc", "-o", "fifo");
    pclose(r);
    struct stat st;
    cr_assert_eq(lstat("fifo", &st), 0);
    cr_assert(S_ISFIFO(st.st_mode), "the FIFO was replaced");
    cr_assert_eq(stat("from-fifo.h", &st), 0);
    cr_assert_gt(st.st_size, 100);
}

Test(cli_adversary, catalog_gen_on_a_symlink_replaces_the_target_and_keeps_the_link)
{
    write_catalog();
    cr_assert_eq(mkdir("inc", 0755), 0);
    FILE *f = fopen("inc/real.h", "w");
    fputs("old\n", f);
    fclose(f);
    cr_assert_eq(symlink("inc/real.h", "events.h"), 0);
    OKV(NULL, "catalog", "gen", "cat.jsonc", "-o", "events.h");
    struct stat st;
    cr_assert_eq(lstat("events.h", &st), 0);
    cr_assert(S_ISLNK(st.st_mode), "-o replaced the symlink with a file");
    f = fopen("inc/real.h", "r");
    char buf[200] = "";
    cr_assert_not_null(fgets(buf, sizeof buf, f));
    fclose(f);
    cr_assert(strstr(buf, "Generated by `herald catalog gen`"), "%s", buf);
    cr_assert_eq(access("inc/real.h.tmp", F_OK), -1);
    /* a dangling link is refused, naming it */
    cr_assert_eq(symlink("nowhere/x.h", "dangling.h"), 0);
    char *err = FAIL(1, NULL, "catalog", "gen", "cat.jsonc", "-o", "dangling.h");
    cr_assert(strstr(err, "dangling.h"), "%s", err);
    free(err);
    cr_assert_eq(lstat("dangling.h", &st), 0);
    cr_assert(S_ISLNK(st.st_mode));
}

Test(cli_adversary, catalog_gen_to_a_directory_is_refused)
{
    write_catalog();
    cr_assert_eq(mkdir("d", 0755), 0);
    char *err = FAIL(1, NULL, "catalog", "gen", "cat.jsonc", "-o", "d");
    cr_assert(strstr(err, "'d' is a directory"), "%s", err);
    free(err);
}

Test(cli_adversary, catalog_check_refuses_a_comment_left_open_after_the_catalog)
{
    FILE *f = fopen("cat.jsonc", "w");
    fputs("{\"events\": {}}\n/* not closed\n", f);
    fclose(f);
    char *err = FAIL(1, NULL, "catalog", "check", "cat.jsonc");
    cr_assert(strstr(err, "cat.jsonc:"), "%s", err);
    cr_assert(strstr(err, "unterminated /* comment"), "%s", err);
    free(err);
}
