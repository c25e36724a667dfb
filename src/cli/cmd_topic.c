// SPDX-License-Identifier: MIT
/*
 * cmd_topic.c - `herald topics subscribe|unsubscribe|list`.
 */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

static const char *const usage_topics =
    "usage: herald topics subscribe TOPIC QUEUE   copy every publish to TOPIC into QUEUE\n"
    "       herald topics unsubscribe TOPIC QUEUE\n"
    "       herald topics list                    topics, their queues and counters\n"
    "Publish with `herald publish TOPIC BODY`. Add --json for machine output.\n";

int cmd_topics(const cli_ctx *ctx, int argc, char **argv)
{
    char *pos[8];
    int n_pos = 0;
    bool help = false;
    if (argc > 6)
        return cli_usage(usage_topics, "too many arguments");
    int rc = cli_parse(argc, argv, NULL, 0, pos, &n_pos, &help);
    if (rc != CLI_OK)
        return rc;
    if (help) {
        fputs(usage_topics, stdout);
        return CLI_OK;
    }
    if (n_pos == 0)
        return cli_usage(usage_topics, "topics: missing verb");
    const char *verb = pos[0];
    bool is_list = strcmp(verb, "list") == 0;
    bool is_sub = strcmp(verb, "subscribe") == 0, is_unsub = strcmp(verb, "unsubscribe") == 0;
    if (!is_list && !is_sub && !is_unsub)
        return cli_usage(usage_topics, "topics: unknown verb '%s'", verb);
    if (is_list ? n_pos != 1 : n_pos != 3)
        return cli_usage(usage_topics, is_list ? "topics list: takes no arguments"
                                               : "topics %s: needs TOPIC and QUEUE",
                         verb);
    herald_store *s = NULL;
    if ((rc = cli_open(ctx, &s)) != CLI_OK)
        return rc;
    if (is_list) {
        herald_topic_info *t = NULL;
        size_t n = 0;
        int hrc = herald_topic_list(s, &t, &n);
        if (hrc < 0) {
            rc = cli_fail("topics list", hrc);
        } else if (ctx->json) {
            json_t *arr = json_array();
            for (size_t i = 0; i < n; i++) {
                json_t *qs = json_array();
                for (size_t k = 0; k < t[i].n_queues; k++)
                    json_array_append_new(qs, json_string(t[i].queues[k]));
                json_array_append_new(arr, json_pack("{s:s, s:o, s:I, s:I}", "topic", t[i].name,
                                                     "queues", qs, "published_total",
                                                     (json_int_t)t[i].published_total,
                                                     "unrouted_total",
                                                     (json_int_t)t[i].unrouted_total));
            }
            cli_print_json(arr);
        } else {
            for (size_t i = 0; i < n; i++) {
                printf("%s ->", t[i].name);
                for (size_t k = 0; k < t[i].n_queues; k++)
                    printf(" %s", t[i].queues[k]);
                printf("%s  (published %lld, unrouted %lld)\n", t[i].n_queues ? "" : " (none)",
                       (long long)t[i].published_total, (long long)t[i].unrouted_total);
            }
        }
        herald_topic_list_free(t, n);
    } else {
        int hrc = is_sub ? herald_topic_subscribe(s, pos[1], pos[2])
                         : herald_topic_unsubscribe(s, pos[1], pos[2]);
        if (hrc < 0)
            rc = cli_fail(is_sub ? "topics subscribe" : "topics unsubscribe", hrc);
    }
    herald_store_close(s);
    return rc;
}
