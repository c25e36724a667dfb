// SPDX-License-Identifier: MIT
/*
 * test_router_log.c - a router logs unrouted messages without flooding the log: the first
 * message of each (queue, type) in full, the rest as one summary line per minute of store time
 * (and at free) with counts by queue and type. Two routers on one store (two `herald run`
 * processes with different routes) each do the same. The log (stderr) is captured into a file
 * and its lines are counted; the interval runs on the fake clock.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support.h"

static hx_env g_env;
#define S (g_env.store)
static char g_log[4200];
static int g_saved_fd = -1;

static void setup(void)
{
    hx_env_setup(&g_env, 0);
    hx_create_queue(S, "events", NULL);
    hx_create_queue(S, "a", NULL);
    snprintf(g_log, sizeof g_log, "%s/stderr.log", g_env.dir);
    fflush(stderr);
    g_saved_fd = dup(2);
    FILE *f = fopen(g_log, "w");
    cr_assert(f && g_saved_fd >= 0);
    dup2(fileno(f), 2);
    fclose(f);
}

static void teardown(void)
{
    fflush(stderr);
    if (g_saved_fd >= 0) {
        dup2(g_saved_fd, 2);
        close(g_saved_fd);
    }
    hx_env_teardown(&g_env);
}

TestSuite(router_log, .init = setup, .fini = teardown, .timeout = 60);

static void send_ev(herald_store *s, const char *type, int n)
{
    herald_event e = { .type = type, .source = "test", .payload_json = "{}" };
    for (int i = 0; i < n; i++)
        cr_assert_eq(herald_send_event(s, "events", &e, HERALD_UNSET, NULL), 0, "%s",
                     herald_last_error());
}

static herald_router *router_on(herald_store *s)
{
    herald_router *r = NULL;
    cr_assert_eq(herald_router_new(s, &r), 0);
    const char *to[] = { "a" };
    herald_route rt = { .from = "events", .type = "x.*", .to = to, .n_to = 1 };
    cr_assert_eq(herald_router_add(r, &rt), 0, "%s", herald_last_error());
    cr_assert_eq(herald_router_start(r), 0, "%s", herald_last_error());
    return r;
}

typedef struct log_count {
    int first_lines;    /* "no route matches the message" */
    int summary_lines;  /* "more messages no route matches" */
    int64_t summarized; /* sum of the summaries' counts */
    int other_lines;
} log_count;

static log_count count_log(void)
{
    fflush(stderr);
    char *text = hx_read_file(g_log, NULL);
    cr_assert_not_null(text);
    log_count c = { 0 };
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        if (strstr(line, "\"no route matches the message")) {
            c.first_lines++;
        } else if (strstr(line, "\"more messages no route matches")) {
            c.summary_lines++;
            const char *n = strstr(line, "\"count\":\"");
            cr_assert_not_null(n, "%s", line);
            c.summarized += strtoll(n + 9, NULL, 10);
        } else {
            c.other_lines++;
        }
    }
    free(text);
    return c;
}

Test(router_log, the_first_unrouted_message_of_a_type_is_logged_the_rest_summarized)
{
    send_ev(S, "b.y", 200);
    send_ev(S, "c.z", 50);
    send_ev(S, "x.k", 5); /* routed: never logged */
    herald_router *r = router_on(S);
    cr_assert_eq(herald_queue_wait_empty(S, "events", 60000), 0, "%s", herald_last_error());
    log_count c = count_log();
    cr_assert_eq(c.first_lines, 2, "one line per type, got %d", c.first_lines);
    cr_assert_eq(c.summary_lines, 0, "a summary before its minute passed");

    /* a minute later, the next message handled brings the summary of the last one */
    hx_clock_advance(&g_env.clock, 60000);
    herald_store_wake(S);
    send_ev(S, "b.y", 1);
    cr_assert_eq(herald_queue_wait_empty(S, "events", 60000), 0, "%s", herald_last_error());
    c = count_log();
    cr_assert_eq(c.summary_lines, 1);
    cr_assert_eq(c.summarized, 199 + 49);
    char *text = hx_read_file(g_log, NULL);
    cr_assert(strstr(text, "events:b.y=199") && strstr(text, "events:c.z=49"), "%s", text);
    free(text);

    herald_router_free(r); /* the last interval's count */
    c = count_log();
    cr_assert_eq(c.first_lines, 2);
    cr_assert_eq(c.summary_lines, 2);
    cr_assert_eq(c.summarized, 199 + 49 + 1, "every unrouted message is accounted for");
    cr_assert_eq(c.other_lines, 0);
    cr_assert_eq(hx_stats(S, "a").backlog_count, 5);
}

Test(router_log, two_routers_on_one_store_log_a_handful_of_lines_for_200_unrouted_messages)
{
    herald_store *s2 = hx_open(g_env.dir, &g_env.clock); /* the second `herald run` */
    send_ev(S, "b.y", 150);
    send_ev(S, "c.z", 50);
    herald_router *r1 = router_on(S);
    herald_router *r2 = router_on(s2);
    cr_assert_eq(herald_queue_wait_empty(S, "events", 60000), 0, "%s", herald_last_error());
    herald_router_free(r1);
    herald_router_free(r2);
    herald_store_close(s2);
    log_count c = count_log();
    /* each router: at most one line per type, one summary at free */
    cr_assert_leq(c.first_lines, 4, "%d lines", c.first_lines);
    cr_assert_geq(c.first_lines, 2);
    cr_assert_leq(c.summary_lines, 2);
    cr_assert_eq(c.first_lines + c.summarized, 200, "first lines + summarized counts");
}
