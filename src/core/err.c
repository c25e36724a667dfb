// SPDX-License-Identifier: MIT
/*
 * err.c - Herald's error codes (the X-macro list in herald.h) and the per-thread detail text.
 * Invariants: (1) every public entry point clears the detail before work, so
 *   herald_last_error() speaks of the last failed call; (2) herald__err() keeps the first detail
 *   recorded for a failure: a layer that only propagates rc does not overwrite it.
 * Threads: any; the detail text is thread-local.
 */
#include "core/core.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char err_text[512];
static _Thread_local int err_rc;

int herald__err(int rc, const char *fmt, ...)
{
    /* Messages quote user input ("%.100s"), which may cut a character or be invalid UTF-8:
     * the text is cleaned, so that JSON output and log lines can carry it. */
    char text[sizeof err_text];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    herald__utf8_copy(err_text, sizeof err_text, text);
    err_rc = rc;
    return rc;
}

int herald__err_keep(int rc)
{
    if (err_rc != rc || !err_text[0]) {
        snprintf(err_text, sizeof err_text, "%s", herald_strerror(rc));
        err_rc = rc;
    }
    return rc;
}

void herald__err_clear(void)
{
    err_text[0] = 0;
    err_rc = 0;
}

void herald__err_copy(char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", err_text);
}

const char *herald_last_error(void)
{
    return err_text[0] ? err_text : "no error";
}

int herald_last_error_set(int rc, const char *text)
{
    herald__utf8_copy(err_text, sizeof err_text, text && text[0] ? text : herald_strerror(rc));
    err_rc = rc;
    return rc;
}

const char *herald_strerror(int rc)
{
    switch (rc) {
#define HERALD_X_TEXT(name, value, http, text)                                                    \
    case name:                                                                                    \
        return text;
        HERALD_ERRORS(HERALD_X_TEXT)
#undef HERALD_X_TEXT
    case 0:
        return "ok";
    default:
        break;
    }
    if (rc < 0 && rc > -4000)
        return strerror(-rc);
    return "unknown error";
}

const char *herald_err_name(int rc)
{
    switch (rc) {
#define HERALD_X_NAME(name, value, http, text)                                                    \
    case name:                                                                                    \
        return #name;
        HERALD_ERRORS(HERALD_X_NAME)
#undef HERALD_X_NAME
    case 0:
        return "OK";
    case -ENOENT:
        return "ENOENT";
    case -EACCES:
        return "EACCES";
    case -ENOMEM:
        return "ENOMEM";
    case -EINVAL:
        return "EINVAL";
    default:
        return "EUNKNOWN";
    }
}

int herald__err_http(int rc)
{
    switch (rc) {
#define HERALD_X_HTTP(name, value, http, text)                                                    \
    case name:                                                                                    \
        return http;
        HERALD_ERRORS(HERALD_X_HTTP)
#undef HERALD_X_HTTP
    default:
        return 500;
    }
}

void herald__check_failed(const char *expr, const char *file, int line)
{
    fprintf(stderr, "herald: invariant failed: %s at %s:%d\n", expr, file, line);
    abort();
}
