// SPDX-License-Identifier: MIT
/*
 * alloc.c - the only place that calls malloc/free. Internal allocations abort on exhaustion
 * (the store makes a restart lossless); input-sized ones are capped and fail softly.
 */
#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n)
{
    fprintf(stderr, "herald: out of memory allocating %zu bytes\n", n);
    abort();
}

void *herald__xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *herald__xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom(n * size);
    return p;
}

void *herald__xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *herald__xstrdup(const char *s)
{
    return herald__xmemdup(s, strlen(s) + 1);
}

void *herald__xmemdup(const void *p, size_t n)
{
    void *q = herald__xmalloc(n);
    if (n)
        memcpy(q, p, n);
    return q;
}

void *herald__try_malloc(size_t n, size_t cap)
{
    if (n > cap)
        return NULL;
    return malloc(n ? n : 1);
}

void herald__free(void *p)
{
    free(p);
}

void herald_free(void *p)
{
    free(p);
}
