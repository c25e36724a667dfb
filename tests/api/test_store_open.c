// SPDX-License-Identifier: MIT
/*
 * test_store_open.c - herald_store_open / herald_store_close through the public API: URL
 * parsing, unwritable paths, files that are not Herald databases (plain text, someone else's
 * SQLite database), a database written by a newer Herald (schema version raised by patching
 * SQLite's user_version header field), reopening keeps data, schema version reporting, and the
 * durability URL option.
 * Each test owns a temp dir and a fake clock; stores opened here are closed in fini.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "herald.h"
#include "store/migrations.h"
#include "support.h"

static hx_env env; /* dir and fake clock; env.store is opened by the tests that need it */
static char g_ro_dir[4096];

static void setup(void)
{
    hx_env_setup(&env, HX_ENV_NO_STORE);
    g_ro_dir[0] = 0;
}

static void teardown(void)
{
    if (g_ro_dir[0])
        chmod(g_ro_dir, 0700);
    hx_env_teardown(&env);
}

TestSuite(store_open, .init = setup, .fini = teardown, .timeout = 30);

/* ---- helpers ------------------------------------------------------------------------------- */

static char *path_in(const char *name)
{
    size_t n = strlen(env.dir) + strlen(name) + 2;
    char *p = malloc(n);
    cr_assert_not_null(p);
    snprintf(p, n, "%s/%s", env.dir, name);
    return p;
}

static int open_url(const char *url, herald_store **out)
{
    herald_store_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.clock = &env.clock.clock;
    return herald_store_open(url, &cfg, out);
}

static herald_store *open_ok(const char *url)
{
    herald_store *s = NULL;
    int rc = open_url(url, &s);
    cr_assert_eq(rc, 0, "open %s: %s: %s", url, herald_err_name(rc), herald_last_error());
    cr_assert_not_null(s);
    return s;
}

/* Opens url expecting a refusal; returns the rc. A store that did open is closed at once, and *s
 * keeps its value so that the caller's cr_assert_null(s) still fails. */
static int open_refused(const char *url, herald_store **s)
{
    *s = NULL;
    int rc = open_url(url, s);
    if (rc == 0)
        herald_store_close(*s);
    return rc;
}

/* open_refused() on the file `name` in the test's dir. */
static int open_name_refused(const char *name, herald_store **s)
{
    char *u = hx_url(env.dir, name);
    int rc = open_refused(u, s);
    free(u);
    return rc;
}

static bool file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static off_t file_size(const char *p)
{
    struct stat st;
    if (stat(p, &st) != 0)
        return -1;
    return st.st_size;
}

static void write_file(const char *p, const void *data, size_t n)
{
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f, "fopen %s: %s", p, strerror(errno));
    cr_assert_eq(fwrite(data, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
}

/* Runs /usr/bin/sqlite3 DB SQL; returns its exit status, or -1 when it is not installed. */
static int run_sqlite3(const char *db, const char *sql)
{
    if (access("/usr/bin/sqlite3", X_OK) != 0)
        return -1;
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int devnull = open("/dev/null", 0);
        if (devnull >= 0) {
            dup2(devnull, 0);
        }
        execl("/usr/bin/sqlite3", "sqlite3", db, sql, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void assert_same_file(const char *p, const char *before, size_t before_len)
{
    size_t len = 0;
    char *now = hx_read_file(p, &len);
    cr_assert_not_null(now, "%s disappeared", p);
    cr_assert_eq(len, before_len, "%s changed size: %zu -> %zu", p, before_len, len);
    cr_assert_eq(memcmp(now, before, len), 0, "%s was modified", p);
    free(now);
}

/* ---- URLs ----------------------------------------------------------------------------------- */

Test(store_open, malformed_urls_are_eurl)
{
    char *bogus = hx_url(env.dir, "x.db?durability=bogus");
    const char *bad[] = { "", "postgres", "foo:x", "sqlite:", bogus, "sqlite:/x?durability=bogus",
                          "sqlite", ":x.db", "mysql://localhost/db" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        herald_store *s = NULL;
        int rc = open_url(bad[i], &s);
        if (rc == 0) {
            herald_store_close(s);
            s = NULL;
        }
        cr_expect_eq(rc, HERALD_EURL, "url '%s': got %s (%d)", bad[i], herald_err_name(rc), rc);
        cr_assert_null(s, "url '%s': out set on failure", bad[i]);
        cr_assert_neq(herald_last_error()[0], 0, "url '%s': no error message", bad[i]);
    }
    /* the bogus option is named, and no database file was left behind */
    herald_store *s = NULL;
    cr_assert_eq(open_url(bogus, &s), HERALD_EURL);
    const char *e = herald_last_error();
    cr_assert(strstr(e, "durability") || strstr(e, "bogus"), "last error '%s'", e);
    char *p = path_in("x.db");
    cr_assert_not(file_exists(p), "a rejected URL created %s", p);
    free(p);
    free(bogus);
}

Test(store_open, durability_normal_and_full_urls_work_and_share_the_data)
{
    char *un = hx_url(env.dir, "d.db?durability=normal");
    char *uf = hx_url(env.dir, "d.db?durability=full");
    env.store = open_ok(un);
    cr_assert_eq(herald_queue_create(env.store, "q", NULL), 0);
    herald_msg m = { "{\"n\":1}", 7, HERALD_CONTENT_JSON, HERALD_UNSET };
    char id[HERALD_ID_SIZE];
    cr_assert_eq(herald_send(env.store, "q", &m, id), 0, "%s", herald_last_error());
    hx_env_close(&env);

    env.store = open_ok(uf);
    herald_batch b = { 0 };
    cr_assert_eq(herald_peek(env.store, "q", 10, &b), 0);
    cr_assert_eq(b.n, 1);
    cr_assert_str_eq(b.msgs[0].id, id);
    herald_batch_deinit(&b);
    free(un);
    free(uf);
}

Test(store_open, cfg_durability_overrides_and_null_cfg_is_fine)
{
    char *u = hx_url(env.dir, "c.db");
    herald_store_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.durability = HERALD_DURABILITY_NORMAL;
    cfg.durability_set = true;
    cfg.clock = &env.clock.clock;
    cr_assert_eq(herald_store_open(u, &cfg, &env.store), 0, "%s", herald_last_error());
    cr_assert_eq(herald_queue_create(env.store, "q", NULL), 0);
    hx_env_close(&env);
    cr_assert_eq(herald_store_open(u, NULL, &env.store), 0, "%s", herald_last_error());
    herald_queue_info qi;
    cr_assert_eq(herald_queue_get(env.store, "q", &qi), 0);
    free(u);
}

Test(store_open, open_creates_a_missing_database_file)
{
    char *u = hx_url(env.dir, "new.db");
    char *p = path_in("new.db");
    cr_assert_not(file_exists(p));
    env.store = open_ok(u);
    cr_assert(file_exists(p), "no file at %s", p);
    free(u);
    free(p);
}

/* ---- unwritable paths ----------------------------------------------------------------------- */

Test(store_open, path_in_a_missing_directory_is_an_error)
{
    herald_store *s = NULL;
    int rc = open_refused("sqlite:/nonexistent-dir-herald-test/x.db", &s);
    cr_assert_lt(rc, 0, "opened a store in a directory that does not exist");
    cr_assert_null(s);
    cr_assert_neq(herald_last_error()[0], 0);

    rc = open_name_refused("no/such/dir/x.db", &s);
    cr_assert_lt(rc, 0);
}

Test(store_open, path_in_a_read_only_directory_is_an_error)
{
    if (geteuid() == 0)
        cr_skip_test("running as root: directory permissions are not enforced");
    snprintf(g_ro_dir, sizeof g_ro_dir, "%s/ro", env.dir);
    cr_assert_eq(mkdir(g_ro_dir, 0700), 0);
    cr_assert_eq(chmod(g_ro_dir, 0500), 0);
    char *u = hx_url(g_ro_dir, "x.db");
    herald_store *s = NULL;
    int rc = open_refused(u, &s);
    cr_assert_lt(rc, 0, "opened a store in a read-only directory");
    cr_assert(rc == HERALD_EREADONLY || rc == -EACCES || rc == HERALD_EIO || rc == -EPERM ||
                  rc == -EROFS || rc == HERALD_ESTORE,
              "unexpected error %s (%d)", herald_err_name(rc), rc);
    cr_assert_null(s);
    free(u);
}

/* ---- not a Herald database ------------------------------------------------------------------ */

Test(store_open, text_file_is_enotherald_and_left_untouched)
{
    char text[4096];
    size_t n = 0;
    while (n + 64 < sizeof text)
        n += (size_t)snprintf(text + n, sizeof text - n, "hello world, this is not a database\n");
    char *p = path_in("notes.txt");
    write_file(p, text, n);
    herald_store *s = NULL;
    int rc = open_name_refused("notes.txt", &s);
    cr_assert_eq(rc, HERALD_ENOTHERALD, "got %s (%d)", herald_err_name(rc), rc);
    cr_assert_null(s);
    cr_assert_neq(herald_last_error()[0], 0);
    assert_same_file(p, text, n);
    free(p);
}

Test(store_open, short_text_file_is_enotherald)
{
    char *p = path_in("hello.db");
    write_file(p, "hello world\n", 12);
    herald_store *s = NULL;
    int rc = open_name_refused("hello.db", &s);
    cr_assert_eq(rc, HERALD_ENOTHERALD, "got %s (%d)", herald_err_name(rc), rc);
    assert_same_file(p, "hello world\n", 12);
    free(p);
}

Test(store_open, someone_elses_sqlite_database_is_enotherald_and_left_untouched)
{
    char *p = path_in("foreign.db");
    int st = run_sqlite3(p, "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT);"
                            "INSERT INTO customers(name) VALUES('ada');");
    if (st < 0)
        cr_skip_test("/usr/bin/sqlite3 is not installed");
    cr_assert_eq(st, 0, "sqlite3 failed");
    size_t len = 0;
    char *before = hx_read_file(p, &len);
    cr_assert_not_null(before);
    cr_assert_geq(len, 100);
    cr_assert_eq(memcmp(before, "SQLite format 3", 16), 0);

    herald_store *s = NULL;
    int rc = open_name_refused("foreign.db", &s);
    cr_assert_eq(rc, HERALD_ENOTHERALD, "got %s (%d)", herald_err_name(rc), rc);
    cr_assert_null(s);
    assert_same_file(p, before, len);
    free(before);
    free(p);
}

/* ---- newer schema --------------------------------------------------------------------------- */

/* SQLite keeps user_version as a 4-byte big-endian integer at offset 60 of the database file. */
static void patch_user_version(const char *p, uint32_t v)
{
    FILE *f = fopen(p, "r+b");
    cr_assert_not_null(f, "fopen %s: %s", p, strerror(errno));
    unsigned char be[4] = { (unsigned char)(v >> 24), (unsigned char)(v >> 16),
                            (unsigned char)(v >> 8), (unsigned char)v };
    cr_assert_eq(fseek(f, 60, SEEK_SET), 0);
    cr_assert_eq(fwrite(be, 1, 4, f), 4);
    cr_assert_eq(fclose(f), 0);
}

static uint32_t read_user_version(const char *p)
{
    size_t len = 0;
    char *d = hx_read_file(p, &len);
    cr_assert_not_null(d);
    cr_assert_geq(len, 100);
    const unsigned char *u = (const unsigned char *)d + 60;
    uint32_t v = ((uint32_t)u[0] << 24) | ((uint32_t)u[1] << 16) | ((uint32_t)u[2] << 8) | u[3];
    free(d);
    return v;
}

Test(store_open, database_from_a_newer_herald_is_eschema_naming_the_version)
{
    hx_env_reopen(&env);
    cr_assert_eq(herald_queue_create(env.store, "q", NULL), 0);
    hx_env_close(&env);

    char *p = path_in("herald.db");
    char *wal = path_in("herald.db-wal");
    off_t wal_size = file_size(wal);
    if (wal_size > 0)
        cr_log_warn("herald_store_close left a %lld-byte WAL file (%s): the store was not "
                    "checkpointed into the main file", (long long)wal_size, wal);
    uint32_t v = read_user_version(p);
    cr_log_info("user_version after close: %u (supported schema %d)", v,
                herald_schema_version_supported());

    patch_user_version(p, 9999);
    size_t len = 0;
    char *before = hx_read_file(p, &len);
    cr_assert_not_null(before);

    herald_store *s = NULL;
    int rc = open_name_refused("herald.db", &s);
    cr_assert_eq(rc, HERALD_ESCHEMA, "got %s (%d)%s", herald_err_name(rc), rc,
                 wal_size > 0 ? " (a WAL file was left by close)" : "");
    cr_assert_null(s);
    const char *e = herald_last_error();
    cr_assert(strstr(e, "9999") != NULL, "last error '%s' does not name version 9999", e);
    assert_same_file(p, before, len);
    free(before);
    free(p);
    free(wal);
}

Test(store_open, close_checkpoints_everything_into_the_main_file)
{
    hx_env_reopen(&env);
    cr_assert_eq(herald_queue_create(env.store, "q", NULL), 0);
    herald_msg m = { "{}", 2, HERALD_CONTENT_JSON, HERALD_UNSET };
    cr_assert_eq(herald_send(env.store, "q", &m, NULL), 0);
    hx_env_close(&env);
    char *wal = path_in("herald.db-wal");
    off_t sz = file_size(wal);
    cr_assert(sz <= 0, "close left %lld bytes in %s", (long long)sz, wal);
    char *p = path_in("herald.db");
    cr_assert_eq(read_user_version(p), (uint32_t)herald_schema_version_supported(),
                 "user_version in the main file is not the schema version");
    free(wal);
    free(p);
}

/* The WAL's size bound (a long stream of writes, a reader holding an old snapshot): see
 * test_wal_bound.c. */

/* The checkpointer thread (durability full) copies the WAL into the database while the store is
 * busy: after ~8 MiB of sends - past its 1000-page trigger, well short of the writer's own
 * restart at 8000 pages - the database file grows. (Its first version never attached to the WAL and
 * copied nothing; the writer did all of it at 8000 pages.) */
static void checkpointer_case(const char *url_suffix)
{
    char url[4200];
    snprintf(url, sizeof url, "sqlite:%s/ck.db%s", env.dir, url_suffix);
    herald_store *s = NULL;
    cr_assert_eq(herald_store_open(url, NULL, &s), 0, "%s", herald_last_error());
    cr_assert_eq(herald_queue_create(s, "q", NULL), 0);
    char *db = path_in("ck.db");
    off_t before = file_size(db);
    static char body[1024];
    memset(body, 'y', sizeof body);
    herald_msg msgs[100];
    for (int i = 0; i < 100; i++)
        msgs[i] = (herald_msg){ body, sizeof body, HERALD_CONTENT_BYTES, HERALD_UNSET };
    for (int k = 0; k < 80; k++)
        cr_assert_eq(herald_send_batch(s, "q", msgs, 100, HERALD_UNSET, NULL), 0);
    /* one more commit after the trigger, then give the thread a bounded while */
    off_t after = file_size(db);
    for (int i = 0; i < 400 && after < before + (4LL << 20); i++) {
        cr_assert_eq(herald_send_batch(s, "q", msgs, 1, HERALD_UNSET, NULL), 0);
        hx_sleep_ms(25);
        after = file_size(db);
    }
    cr_assert_geq(after, before + (4LL << 20),
                  "the database file grew from %lld to %lld bytes only: nothing was checkpointed",
                  (long long)before, (long long)after);
    herald_store_close(s);
    free(db);
}

Test(store_open, the_checkpointer_thread_copies_the_wal_into_the_database, .timeout = 60)
{
    checkpointer_case("");
}

/* Durability normal: the checkpoints that make its commits durable happen as the WAL grows
 * (on the same thread; this shows they happen, not where). */
Test(store_open, durability_normal_checkpoints_as_the_wal_grows, .timeout = 60)
{
    checkpointer_case("?durability=normal");
}

/* A store made by a Herald of schema 9 (message seqs by AUTOINCREMENT) upgrades to seqs handed
 * out from a mark: its messages are kept, and the seq of its newest message - acked, so only
 * sqlite_sequence remembered it - is not handed out again. */
Test(store_open, a_schema_9_store_upgrades_and_keeps_its_seq_high_water_mark)
{
    char *p = path_in("old.db");
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(p, &db), SQLITE_OK);
    for (int i = 0; i < herald__n_migrations && herald__migrations[i].version <= 9; i++)
        cr_assert_eq(sqlite3_exec(db, herald__migrations[i].sql, NULL, NULL, NULL), SQLITE_OK,
                     "%s: %s", herald__migrations[i].name, sqlite3_errmsg(db));
    const char *fill =
        "PRAGMA application_id = 1213353028; /* HRLD */ PRAGMA user_version = 9;"
        "INSERT INTO herald_queues (name, uuid, created_ms, modified_ms, delivery_delay_s, "
        "  retention_s, max_message_bytes, max_retries, retry_delay_s) "
        "  VALUES ('q', 'u', 0, 0, 0, 345600, 128000, 3, 0);"
        "INSERT INTO herald_messages (queue_id, visible_at_ms, expires_at_ms, sent_ms, "
        "  content_type, id, body) VALUES (1, 0, 9000000000000, 0, 1, 'a', X'41'), "
        "  (1, 0, 9000000000000, 0, 1, 'b', X'42'), (1, 0, 9000000000000, 0, 1, 'c', X'43');"
        "DELETE FROM herald_messages WHERE id = 'c';"; /* seq 3: only sqlite_sequence knows */
    cr_assert_eq(sqlite3_exec(db, fill, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_close(db);

    char url[4200];
    snprintf(url, sizeof url, "sqlite:%s", p);
    herald_store *s = NULL;
    cr_assert_eq(herald_store_open(url, NULL, &s), 0, "%s", herald_last_error());
    cr_assert_eq(herald_store_schema_version(s), herald_schema_version_supported());
    cr_assert_eq(hx_stats(s, "q").backlog_count, 2, "the old messages were not kept");
    herald_msg m = { "\"D\"", 3, HERALD_CONTENT_JSON, HERALD_UNSET };
    char id[HERALD_ID_SIZE];
    cr_assert_eq(herald_send(s, "q", &m, id), 0, "%s", herald_last_error());
    herald_batch b = { 0 };
    cr_assert_eq(hx_pull(s, "q", 3, HERALD_UNSET, &b), 3);
    for (size_t i = 0; i < b.n; i++) {
        if (strcmp(b.msgs[i].id, id) != 0)
            continue;
        unsigned long long seq = strtoull(b.msgs[i].lease_id + 4, NULL, 16);
        cr_assert_gt(seq, 3, "the new message got seq %llu: the upgrade lost the mark", seq);
    }
    herald_batch_deinit(&b);
    herald_store_close(s);
    free(p);
}

/* ---- reopen and versions -------------------------------------------------------------------- */

Test(store_open, reopen_keeps_queues_settings_and_messages)
{
    hx_env_reopen(&env);
    herald_queue_settings st;
    herald_queue_settings_init(&st);
    st.max_retries = 7;
    st.delivery_delay_s = 0;
    st.dead_letter_queue = "dlq";
    cr_assert_eq(herald_queue_create(env.store, "orders", &st), 0);
    herald_queue_info before;
    cr_assert_eq(herald_queue_get(env.store, "orders", &before), 0);
    const char *bodies[3] = { "{\"n\":1}", "{\"n\":2}", "{\"n\":3}" };
    char ids[3][HERALD_ID_SIZE];
    for (int i = 0; i < 3; i++) {
        herald_msg m = { bodies[i], strlen(bodies[i]), HERALD_CONTENT_JSON, HERALD_UNSET };
        cr_assert_eq(herald_send(env.store, "orders", &m, ids[i]), 0);
    }
    herald_batch b = { 0 };
    cr_assert_eq(herald_pull(env.store, "orders", 1, HERALD_UNSET, &b), 0);
    cr_assert_eq(b.n, 1);
    char acked[HERALD_ID_SIZE];
    snprintf(acked, sizeof acked, "%s", b.msgs[0].id);
    const char *lease[] = { b.msgs[0].lease_id };
    cr_assert_eq(herald_ack(env.store, "orders", lease, 1, NULL), 0);
    herald_batch_deinit(&b);
    hx_env_close(&env);

    hx_env_reopen(&env);
    herald_queue_info after;
    cr_assert_eq(herald_queue_get(env.store, "orders", &after), 0, "%s", herald_last_error());
    cr_assert_str_eq(after.queue_id, before.queue_id);
    cr_assert_eq(after.max_retries, 7);
    cr_assert_str_eq(after.dead_letter_queue, "dlq");
    cr_assert_eq(after.created_ms, before.created_ms);
    herald_queue_stats qs;
    cr_assert_eq(herald_queue_stats_get(env.store, "orders", &qs), 0);
    cr_assert_eq(qs.backlog_count, 2);
    cr_assert_eq(qs.sent_total, 3);
    cr_assert_eq(qs.acked_total, 1);
    cr_assert_eq(herald_peek(env.store, "orders", 10, &b), 0);
    cr_assert_eq(b.n, 2);
    for (size_t i = 0; i < b.n; i++) {
        cr_assert_str_neq(b.msgs[i].id, acked, "acked message is back after reopen");
        bool found = false;
        for (int k = 0; k < 3; k++) {
            if (strcmp(b.msgs[i].id, ids[k]) == 0) {
                found = true;
                cr_assert_eq(b.msgs[i].body_len, strlen(bodies[k]));
                cr_assert_eq(memcmp(b.msgs[i].body, bodies[k], b.msgs[i].body_len), 0);
            }
        }
        cr_assert(found);
    }
    herald_batch_deinit(&b);
}

Test(store_open, schema_version_of_a_new_store_is_the_supported_version)
{
    int sup = herald_schema_version_supported();
    cr_assert_gt(sup, 0);
    hx_env_reopen(&env);
    cr_assert_eq(herald_store_schema_version(env.store), sup);
    hx_env_close(&env);
    hx_env_reopen(&env);
    cr_assert_eq(herald_store_schema_version(env.store), sup, "reopen changed the schema version");
}

Test(store_open, close_of_null_does_nothing_and_version_is_set)
{
    herald_store_close(NULL);
    cr_assert_not_null(herald_version());
    cr_assert_neq(herald_version()[0], 0);
}

/* Processes that create the same new store at once all open it: one runs the migrations, the
 * others wait for it, and none judges the half-made file "not a Herald database". Repeated on
 * fresh files, since the window is narrow. */
Test(store_open, processes_creating_one_new_store_at_once_all_open_it)
{
    enum { ROUNDS = 20, PROCS = 4 };
    for (int r = 0; r < ROUNDS; r++) {
        char url[4200];
        snprintf(url, sizeof url, "sqlite:%s/race-%d.db", env.dir, r);
        pid_t pids[PROCS];
        for (int k = 0; k < PROCS; k++) {
            pids[k] = fork();
            cr_assert_geq(pids[k], 0);
            if (pids[k] == 0) {
                herald_store *s = NULL;
                int rc = herald_store_open(url, NULL, &s);
                if (rc < 0)
                    fprintf(stderr, "round %d: %s\n", r, herald_last_error());
                herald_store_close(s);
                _exit(rc < 0 ? 1 : 0);
            }
        }
        for (int k = 0; k < PROCS; k++) {
            int st = 0;
            while (waitpid(pids[k], &st, 0) < 0 && errno == EINTR) {
            }
            cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                      "round %d: a process could not open the new store (status 0x%x)", r, st);
        }
    }
}

static atomic_int g_upgrade_calls;

static int count_calls(herald_tx *tx, const herald_message *m, const herald_envelope *en,
                       void *ud)
{
    (void)tx;
    (void)m;
    (void)en;
    (void)ud;
    atomic_fetch_add(&g_upgrade_calls, 1);
    return 0;
}

/* A schema-10 store's processed-event records survive migration 0011, which moves those of
 * non-v7 event ids to their own table: both events, sent again, are duplicates. */
Test(store_open, processed_records_of_a_schema_10_store_still_deduplicate)
{
    static const char *const v7 = "01890a5b-2c3d-7e4f-8a1b-2c3d4e5f6a7b";
    static const char *const v4 = "3f2a1c4e-9b7d-4e21-a5f0-6c8d2b1e7a90";
    char *p = path_in("old10.db");
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(p, &db), SQLITE_OK);
    for (int i = 0; i < herald__n_migrations && herald__migrations[i].version <= 10; i++)
        cr_assert_eq(sqlite3_exec(db, herald__migrations[i].sql, NULL, NULL, NULL), SQLITE_OK,
                     "%s: %s", herald__migrations[i].name, sqlite3_errmsg(db));
    char fill[1024];
    snprintf(fill, sizeof fill,
             "PRAGMA application_id = 1213353028; PRAGMA user_version = 10;"
             "INSERT INTO herald_queues (name, uuid, created_ms, modified_ms, delivery_delay_s, "
             "  retention_s, max_message_bytes, max_retries, retry_delay_s) "
             "  VALUES ('in', 'u', 0, 0, 0, 345600, 128000, 3, 0);"
             "INSERT INTO herald_processed_events VALUES (1, '%s', 'x.y', %lld), "
             "  (1, '%s', 'x.y', %lld);",
             v7, (long long)hx_clock_now(&env.clock), v4, (long long)hx_clock_now(&env.clock));
    cr_assert_eq(sqlite3_exec(db, fill, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_close(db);

    char url[4200];
    snprintf(url, sizeof url, "sqlite:%s", p);
    herald_store_cfg cfg = { .clock = &env.clock.clock };
    herald_store *s = NULL;
    cr_assert_eq(herald_store_open(url, &cfg, &s), 0, "%s", herald_last_error());
    const char *ids[2] = { v7, v4 };
    for (int i = 0; i < 2; i++) {
        herald_event e = { .event_id = ids[i], .type = "x.y", .source = "t", .payload_json = "{}" };
        cr_assert_eq(herald_send_event(s, "in", &e, HERALD_UNSET, NULL), 0, "%s",
                     herald_last_error());
    }
    atomic_store(&g_upgrade_calls, 0);
    herald_consumer_cfg c;
    herald_consumer_cfg_init(&c);
    const char *qs[] = { "in" };
    c.queues = qs;
    c.n_queues = 1;
    c.tx_handler = count_calls;
    c.max_batch_timeout_ms = 0;
    herald_consumer *cons = NULL;
    cr_assert_eq(herald_consumer_start(s, &c, &cons), 0, "%s", herald_last_error());
    HX_WAIT_UNTIL(hx_stats(s, "in").acked_total == 2, 10000);
    herald_consumer_stop(cons);
    cr_assert_eq(hx_stats(s, "in").acked_total, 2);
    cr_assert_eq(atomic_load(&g_upgrade_calls), 0,
                 "%d handler calls: a processed record was lost by the upgrade",
                 atomic_load(&g_upgrade_calls));
    herald_store_close(s);
    free(p);
}
