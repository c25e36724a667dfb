// SPDX-License-Identifier: MIT
/*
 * test_cli_newcomer.c - what a new user of the `herald` CLI met on a fresh clone (issue 7 §3, §4):
 *   - an out-of-range option value (--delay -1, --batch 500, --max-retries 101, ...) is a usage
 *     error (exit 2) whose message states the value given and the allowed range, and changes
 *     nothing; -1 is not turned into "-2";
 *   - `version` honours --json; `send --help` and `publish --help` mention --catalog;
 *   - a single send over the queue's max_message_bytes does not speak of "message 0";
 *   - `peek` / `pull` escape control characters of a body when stdout is a terminal (checked on
 *     a pseudo-terminal), keep them when piped, and --json escapes them as JSON does.
 * Every test owns a temp dir (also its cwd) and passes `--store sqlite:TMPDIR/h.db` on every call.
 */
#include <criterion/criterion.h>
#include <jansson.h>

#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"

TestSuite(newcomer, .init = hx_e2e_setup, .fini = hx_e2e_teardown, .timeout = 60);

/* ---- out-of-range option values -------------------------------------------------------------- */

/* Runs the words (NULL-terminated, without --store) on the test's store; asserts exit 2 and that
 * stderr contains each of the NUL-separated needles of `needles` and no "-2". */
static void assert_usage_error(const char *in, const char *const *words, const char *const *needles)
{
    char *out = NULL, *err = NULL;
    size_t n = 0;
    while (words[n])
        n++;
    const char *argv[16] = { "--store", hx_e2e.url };
    cr_assert(n + 3 <= sizeof argv / sizeof argv[0]);
    for (size_t i = 0; i < n; i++)
        argv[2 + i] = words[i];
    int rc = hx_cli(argv, in, &out, &err);
    cr_assert_eq(rc, 2, "`%s %s %s %s`: expected exit 2 (usage), got %d; stderr: %s", words[0],
                 words[1], n > 2 ? words[2] : "", n > 3 ? words[3] : "", rc, err);
    for (size_t i = 0; needles[i]; i++)
        cr_assert(strstr(err, needles[i]), "`%s %s`: stderr should contain '%s': %s", words[0],
                  words[1], needles[i], err);
    cr_assert_null(strstr(err, "-2 "), "stderr must not invent a value: %s", err);
    cr_assert_str_empty(out, "nothing on stdout: %s", out);
    free(out);
    free(err);
}

#define WORDS(...) ((const char *const[]){ __VA_ARGS__, NULL })

Test(newcomer, a_delay_of_minus_one_states_the_value_given_and_the_range)
{
    hx_cli_mkq("orders");
    json_t *before = hx_cli_stats("orders");
    assert_usage_error(NULL, WORDS("send", "orders", "--delay", "-1", "{}"),
                       WORDS("--delay", "-1 s", "0..31536000"));
    assert_usage_error("{}\n", WORDS("send-batch", "orders", "--delay", "-1"),
                       WORDS("--delay", "-1 s", "0..31536000"));
    assert_usage_error(NULL, WORDS("publish", "orders", "--delay", "-1", "{}"),
                       WORDS("--delay", "-1 s", "0..31536000"));
    assert_usage_error(NULL, WORDS("retry", "orders", "hl1.1.x", "--delay", "-1"),
                       WORDS("--delay", "-1 s", "0..31536000"));
    assert_usage_error(NULL, WORDS("queues", "create", "other", "--retry-delay", "-1"),
                       WORDS("--retry-delay", "-1 s", "0..31536000"));
    assert_usage_error(NULL, WORDS("queues", "update", "orders", "--delivery-delay", "-1"),
                       WORDS("--delivery-delay", "-1 s", "0..31536000"));
    hx_assert_stats_unchanged("orders", before);
    json_t *list = JSON(NULL, "queues", "list", "--json");
    cr_assert_eq(json_array_size(list), 1, "queues create with a bad option created a queue");
    json_decref(list);
    json_decref(before);
}

Test(newcomer, every_out_of_range_option_value_is_a_usage_error_and_changes_nothing)
{
    hx_cli_mkq("orders");
    OKV(NULL, "send", "orders", "{\"n\":1}");
    json_t *before = hx_cli_stats("orders");
    json_t *q_before = JSON(NULL, "queues", "get", "orders", "--json");
    assert_usage_error(NULL, WORDS("pull", "orders", "--batch", "500"),
                       WORDS("--batch", "500", "1..100"));
    assert_usage_error(NULL, WORDS("pull", "orders", "--batch", "0"), WORDS("--batch", "1..100"));
    assert_usage_error(NULL, WORDS("dlq", "redrive", "orders", "--max", "-1"),
                       WORDS("--max", "-1", "0.."));
    assert_usage_error(NULL, WORDS("peek", "orders", "--batch", "101"),
                       WORDS("--batch", "101", "1..100"));
    assert_usage_error(NULL, WORDS("pull", "orders", "--visibility-timeout", "0"),
                       WORDS("--visibility-timeout", "0 s", "1..43200"));
    assert_usage_error(NULL, WORDS("pull", "orders", "--visibility-timeout", "43201"),
                       WORDS("--visibility-timeout", "43201 s", "1..43200"));
    assert_usage_error(NULL, WORDS("send", "orders", "--delay", "31536001", "{}"),
                       WORDS("--delay", "31536001 s", "0..31536000"));
    assert_usage_error("{}\n", WORDS("send-batch", "orders", "--delay", "31536001"),
                       WORDS("--delay", "31536001"));
    assert_usage_error(NULL, WORDS("queues", "update", "orders", "--max-retries", "101"),
                       WORDS("--max-retries", "101", "0..100"));
    assert_usage_error(NULL, WORDS("queues", "update", "orders", "--max-retries", "-1"),
                       WORDS("--max-retries", "-1", "0..100"));
    assert_usage_error(NULL, WORDS("queues", "update", "orders", "--max-message-bytes", "0"),
                       WORDS("--max-message-bytes", "0 bytes", "1..1048576"));
    assert_usage_error(NULL, WORDS("queues", "create", "other", "--retention", "59"),
                       WORDS("--retention", "59 s", "60..31536000"));
    hx_assert_stats_unchanged("orders", before);
    json_t *q_after = JSON(NULL, "queues", "get", "orders", "--json");
    cr_assert(json_equal(q_before, q_after), "a refused update changed the queue");
    json_decref(q_after);
    json_decref(q_before);
    json_decref(before);
}

Test(newcomer, in_range_limits_are_still_accepted)
{
    OKV(NULL, "queues", "create", "orders", "--max-retries", "100", "--retention", "60",
        "--max-message-bytes", "1048576", "--retry-delay", "31536000");
    OKV(NULL, "send", "orders", "--delay", "0", "{}");
    json_t *arr = JSON(NULL, "pull", "orders", "--batch", "100", "--visibility-timeout", "43200",
                       "--json");
    cr_assert_eq(json_array_size(arr), 1);
    json_decref(arr);
}

/* ---- version, help ------------------------------------------------------------------------- */

Test(newcomer, version_honours_json)
{
    json_t *v = JSON(NULL, "version", "--json");
    cr_assert(json_is_object(v));
    const char *s = hx_json_str(v, "version");
    cr_assert(strlen(s) >= 5 && strchr(s, '.'), "version '%s' is not X.Y.Z", s);
    char *human = OK(NULL, "version");
    cr_assert(strncmp(human, "herald ", 7) == 0 && strstr(human, s), "plain: %s", human);
    free(human);
    json_decref(v);
    free(FAIL(2, NULL, "version", "extra"));
}

Test(newcomer, send_and_publish_help_mention_catalog)
{
    static const char *const cmds[] = { "send", "publish" };
    for (size_t i = 0; i < 2; i++) {
        char *out = OK(NULL, cmds[i], "--help");
        cr_assert(strstr(out, "--catalog FILE"), "`%s --help` should mention --catalog: %s",
                  cmds[i], out);
        cr_assert(strstr(out, "--catalog-mode"), "`%s --help`: %s", cmds[i], out);
        free(out);
    }
}

/* ---- a single send names no index ----------------------------------------------------------- */

Test(newcomer, a_single_send_over_the_queue_limit_does_not_speak_of_message_0)
{
    hx_cli_mkq("orders");
    char *body = hx_json_string_body(128001);
    char *err = FAIL(1, body, "send", "orders", "-");
    cr_assert(strstr(err, "128001 bytes"), "stderr should state the size: %s", err);
    cr_assert(strstr(err, "max_message_bytes 128000"), "and the limit: %s", err);
    cr_assert_null(strstr(err, "message 0"), "a single send has no message 0: %s", err);
    free(err);
    free(body);
    cr_assert_eq(hx_cli_stat("orders", "backlog_count"), 0);
}

/* ---- control characters in bodies ----------------------------------------------------------- */

/* Runs herald --store URL ARGS... with stdout and stderr on a pseudo-terminal (raw mode, so the
 * bytes arrive as written); returns what it wrote (caller frees) and its exit code in *rc. */
static char *run_on_tty(int *rc, ...)
{
    const char *argv[16] = { hx_herald_bin(), "--store", hx_e2e.url };
    size_t n = 3;
    va_list ap;
    va_start(ap, rc);
    for (const char *a; (a = va_arg(ap, const char *)) != NULL;) {
        cr_assert(n + 1 < sizeof argv / sizeof argv[0]);
        argv[n++] = a;
    }
    va_end(ap);
    argv[n] = NULL;
    int master = -1, slave = -1;
    cr_assert_eq(openpty(&master, &slave, NULL, NULL, NULL), 0, "openpty: %s", strerror(errno));
    struct termios t;
    cr_assert_eq(tcgetattr(slave, &t), 0);
    cfmakeraw(&t);
    cr_assert_eq(tcsetattr(slave, TCSANOW, &t), 0);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(slave, 1) < 0 || dup2(slave, 2) < 0)
            _exit(126);
        close(master);
        close(slave);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(slave);
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    cr_assert(buf);
    for (;;) { /* until the child's side is closed: EIO (Linux) or EOF */
        if (len + 1 == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            cr_assert(buf);
        }
        ssize_t r = read(master, buf + len, cap - 1 - len);
        if (r > 0)
            len += (size_t)r;
        else if (r < 0 && errno == EINTR)
            continue;
        else
            break;
    }
    buf[len] = 0;
    close(master);
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    *rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return buf;
}

/* A text body that would clear the screen, recolour and retitle a terminal. */
static const char HOSTILE[] = "a\x1b[2J\x1b[31mred\x1b]0;owned\x07\r\nb\tc\\d\x7f\xc2\x9bz";

Test(newcomer, peek_and_pull_escape_control_characters_on_a_terminal)
{
    hx_cli_mkq("orders");
    OKV(HOSTILE, "send", "orders", "--content-type", "text", "-");
    static const char *const cmds[] = { "peek", "pull" };
    for (size_t i = 0; i < 2; i++) {
        int rc = -1;
        char *out = run_on_tty(&rc, cmds[i], "orders", (const char *)NULL);
        cr_assert_eq(rc, 0, "%s on a tty: exit %d: %s", cmds[i], rc, out);
        cr_assert(strstr(out, "a\\x1b[2J\\x1b[31mred\\x1b]0;owned\\x07\\r\\nb\\tc\\\\d\\x7f\\u009bz"),
                  "%s on a tty should show the body escaped: [%s]", cmds[i], out);
        cr_assert_null(strchr(out, '\x1b'), "%s wrote a raw ESC to the terminal", cmds[i]);
        cr_assert_null(strchr(out, '\x07'), "%s wrote a raw BEL to the terminal", cmds[i]);
        cr_assert_null(strstr(out, "\xc2\x9b"), "%s wrote a raw CSI (U+009B)", cmds[i]);
        free(out);
    }
}

Test(newcomer, piped_peek_keeps_the_body_bytes_and_json_escapes_them)
{
    hx_cli_mkq("orders");
    OKV(HOSTILE, "send", "orders", "--content-type", "text", "-");
    char *out = OK(NULL, "peek", "orders");
    cr_assert(strstr(out, HOSTILE), "piped output keeps the body as sent: [%s]", out);
    free(out);
    for (int tty = 0; tty < 2; tty++) {
        int rc = 0;
        out = tty ? run_on_tty(&rc, "peek", "orders", "--json", (const char *)NULL)
                  : OK(NULL, "peek", "orders", "--json");
        cr_assert_eq(rc, 0);
        cr_assert_null(strchr(out, '\x1b'), "--json must escape ESC: [%s]", out);
        cr_assert(hx_contains_ci(out, "\\u001b[2J"), "--json escapes ESC as \\u001b: [%s]", out);
        json_t *arr = hx_parse_json(out);
        char *body = hx_json_body(json_array_get(arr, 0));
        cr_assert_str_eq(body, HOSTILE, "--json round-trips the body");
        free(body);
        json_decref(arr);
        free(out);
    }
}

Test(newcomer, a_long_body_is_cut_on_a_character_boundary)
{
    hx_cli_mkq("orders");
    /* 199 ASCII bytes, then a 2-byte character straddling byte 200 */
    char body[256];
    memset(body, 'x', 199);
    memcpy(body + 199, "\xc3\xa9tail", 7);
    body[206] = 0;
    OKV(body, "send", "orders", "--content-type", "text", "-");
    char *out = OK(NULL, "peek", "orders");
    char want[256];
    memset(want, 'x', 199);
    memcpy(want + 199, "...", 4);
    cr_assert(strstr(out, want), "cut before the character, then '...': [%s]", out);
    cr_assert_null(strchr(out, '\xc3'), "half a character was printed: [%s]", out);
    free(out);
}

/* ---- the examples leave no temp directory ---------------------------------------------------- */

/* Runs BUILD_DIR/<program> (the herald binary's directory) with TMPDIR set to a fresh dir; asserts
 * exit 0, that its store was in that dir (it prints the store URL) and that the dir is empty
 * afterwards. */
static void assert_leaves_nothing(const char *program)
{
    char path[1024];
    snprintf(path, sizeof path, "%s", hx_herald_bin());
    char *slash = strrchr(path, '/');
    cr_assert(slash);
    snprintf(slash + 1, sizeof path - (size_t)(slash + 1 - path), "%s", program);
    char *tmp = hx_tmpdir();
    char out_path[1024];
    snprintf(out_path, sizeof out_path, "%s/%s.out", hx_e2e.dir, program);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0 || dup2(fd, 1) < 0 || setenv("TMPDIR", tmp, 1) != 0)
            _exit(126);
        execl(path, path, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s failed (status %d)", path, st);
    char *out = hx_read_file(out_path, NULL);
    char want[600];
    snprintf(want, sizeof want, "sqlite:%s/herald-", tmp);
    cr_assert(out && strstr(out, want), "%s should keep its store under $TMPDIR (%s): %s", program,
              tmp, out);
    free(out);
    cr_assert_eq(hx_dir_entries(tmp), 0, "%s left its temp directory behind in %s", program, tmp);
    hx_rmrf(tmp);
    free(tmp);
}

Test(newcomer, the_tour_and_the_eo_example_remove_their_temp_store, .timeout = 120)
{
    assert_leaves_nothing("herald_tour");
    assert_leaves_nothing("herald_example_eo");
}
