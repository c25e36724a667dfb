// SPDX-License-Identifier: MIT
/*
 * fuzz_common.h - shared by the libFuzzer harnesses: quiet logging, and FUZZ_CHECK, which aborts
 * (a finding) with the condition and Herald's last error when a property does not hold.
 */
#ifndef HERALD_FUZZ_COMMON_H
#define HERALD_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/core.h"

#define FUZZ_CHECK(cond)                                                                          \
    do {                                                                                          \
        if (!(cond)) {                                                                            \
            fprintf(stderr, "%s:%d: property failed: %s (last error: %s)\n", __FILE__, __LINE__,  \
                    #cond, herald_last_error());                                                  \
            abort();                                                                              \
        }                                                                                         \
    } while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    setenv("HERALD_LOG", "off", 1);
    return 0;
}

/* A NUL-terminated copy of data (free with free()). */
static inline char *fuzz_strndup(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    for (size_t i = 0; i < size; i++)
        s[i] = (char)data[i];
    s[size] = 0;
    return s;
}

#endif
