// SPDX-License-Identifier: MIT
/*
 * log.c - structured log: one JSON object per line on stderr.
 * Level from env HERALD_LOG (debug|info|warn|error|off), read once; default warn.
 * Threads: any; one fputs per line so lines do not interleave.
 */
#include "core/core.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t level_once = PTHREAD_ONCE_INIT;
static herald__log_level level = HERALD_LOG_WARN;

static void level_init(void)
{
    const char *e = getenv("HERALD_LOG");
    if (!e)
        return;
    static const char *names[] = { "debug", "info", "warn", "error", "off" };
    for (int i = 0; i < 5; i++)
        if (strcmp(e, names[i]) == 0)
            level = (herald__log_level)i;
}

bool herald__log_enabled(herald__log_level lvl)
{
    pthread_once(&level_once, level_init);
    return lvl >= level;
}

static void log_line(herald__log_level lvl, const char *msg, va_list ap)
{
    static const char *names[] = { "debug", "info", "warn", "error", "off" };
    char ts[40];
    herald__iso8601(herald__wall_ms(), ts, sizeof ts);
    json_t *o = json_object();
    json_object_set_new(o, "ts", json_string(ts));
    json_object_set_new(o, "level", json_string(names[lvl]));
    json_object_set_new(o, "msg", json_string(msg));
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k)
            break;
        const char *v = va_arg(ap, const char *);
        if (v)
            json_object_set_new(o, k, json_string(v));
    }
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (line) {
        size_t n = strlen(line);
        char *l2 = herald__xmalloc(n + 2);
        memcpy(l2, line, n);
        l2[n] = '\n';
        l2[n + 1] = 0;
        fputs(l2, stderr);
        herald__free(l2);
        free(line); /* lint:ok jansson allocates with malloc */
    }
}

void herald__log(herald__log_level lvl, const char *msg, ...)
{
    if (!herald__log_enabled(lvl))
        return;
    va_list ap;
    va_start(ap, msg);
    log_line(lvl, msg, ap);
    va_end(ap);
}

void herald__log_always(const char *msg, ...)
{
    pthread_once(&level_once, level_init);
    if (level == HERALD_LOG_OFF)
        return;
    va_list ap;
    va_start(ap, msg);
    log_line(HERALD_LOG_INFO, msg, ap);
    va_end(ap);
}
