// SPDX-License-Identifier: MIT
/*
 * fuzz_catalog.c - catalog loading, payload checks and header generation. Input: a catalog
 * text, optionally followed by a NUL byte and a payload. Properties: no crash or leak; a catalog
 * that loads generates a header, twice the same (deterministic), whose comments cannot be
 * closed by a description and which starts with its include guard; the payload check of every
 * type either accepts or names why not, and never accepts what is not valid JSON.
 */
#include "fuzz_common.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t clen = nul ? (size_t)(nul - data) : size;
    herald_catalog *c = NULL;
    if (herald_catalog_parse((const char *)data, clen, "fuzz.jsonc", &c) < 0)
        return 0;
    char *h1 = NULL, *h2 = NULL;
    FUZZ_CHECK(herald_catalog_gen_header(c, NULL, &h1) == 0);
    FUZZ_CHECK(herald_catalog_gen_header(c, NULL, &h2) == 0);
    FUZZ_CHECK(strcmp(h1, h2) == 0);
    FUZZ_CHECK(strstr(h1, "#ifndef HERALD_EVENTS_H\n#define HERALD_EVENTS_H\n"));
    /* every comment of the header closes on the line it opens (descriptions are one line) */
    for (const char *p = strstr(h1, "/* ---- "); p; p = strstr(p + 1, "/* ---- ")) {
        const char *eol = strchr(p, '\n');
        const char *close = strstr(p + 2, "*/");
        FUZZ_CHECK(close && eol && close < eol);
        FUZZ_CHECK(strncmp(close, "*/\n", 3) == 0);
    }
    herald_free(h1);
    herald_free(h2);
    if (nul) {
        const char *payload = (const char *)nul + 1;
        size_t plen = size - clen - 1;
        char *copy = fuzz_strndup((const uint8_t *)payload, plen);
        bool valid = plen > 0 && herald__json_check(payload, plen, "payload") == 0;
        /* the types are not listed by the API: try the ones the text names, and one more */
        static const char *const tries[] = { "a.b", "order.placed", "x.y" };
        for (size_t i = 0; i < 3; i++) {
            int rc = herald_catalog_check(c, tries[i], copy, plen);
            FUZZ_CHECK(rc == 0 || rc == HERALD_ECATALOG || rc == HERALD_EINVAL);
            if (rc == 0)
                FUZZ_CHECK(valid);
        }
        free(copy);
    }
    herald_catalog_free(c);
    return 0;
}
