// SPDX-License-Identifier: MIT
/*
 * fuzz_jsonc.c - the JSONC reader of configuration and catalog files. Properties: no crash, no
 * read past the input, no leak; an error always names a position ("<input>:LINE:COL: what",
 * never a bare "syntax error"); a document that parses has a root with a position.
 */
#include "fuzz_common.h"

#include <jansson.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    herald__jsonc *j = NULL;
    herald__err_clear();
    int rc = herald__jsonc_parse((const char *)data, size, "f.jsonc", &j);
    if (rc < 0) {
        FUZZ_CHECK(rc == HERALD_ECONFIG);
        FUZZ_CHECK(strncmp(herald_last_error(), "f.jsonc:", 8) == 0);
        FUZZ_CHECK(!strstr(herald_last_error(), "syntax error"));
        return 0;
    }
    json_t *root = herald__jsonc_root(j);
    FUZZ_CHECK(root != NULL);
    int col = 0;
    if (!json_is_true(root) && !json_is_false(root) && !json_is_null(root))
        FUZZ_CHECK(herald__jsonc_line(j, root, &col) >= 1 && col >= 1);
    herald__jsonc_free(j);
    return 0;
}
