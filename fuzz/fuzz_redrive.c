// SPDX-License-Identifier: MIT
/*
 * fuzz_redrive.c - redrive edits (`dlq redrive --set PATH=VALUE`, `--patch JSON`) applied to a
 * body, as herald__dlq_edit does for each dead letter. Input: lines; the first is the body, each
 * later line an edit "PATH=VALUE", or "patch JSON" for a merge patch (the last one wins).
 * Properties: no crash, no use-after-free, no leak; an edit that succeeds yields valid JSON of at
 * most HERALD_MAX_MESSAGE_BYTES, still an envelope if the body was one; a failure says why.
 */
#include "fuzz_common.h"
#include "queue/queue.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_strndup(data, size);
    char *lines[17];
    size_t n = 0;
    for (char *p = text; p && n < 17;) {
        lines[n++] = p;
        char *nl = strchr(p, '\n');
        if (nl)
            *nl++ = 0;
        p = nl;
    }
    const char *body = lines[0];
    size_t body_len = strlen(body);
    const char *sets[16];
    size_t n_set = 0;
    const char *patch = NULL;
    for (size_t i = 1; i < n; i++) {
        if (strncmp(lines[i], "patch ", 6) == 0)
            patch = lines[i] + 6;
        else
            sets[n_set++] = lines[i];
    }
    if (herald__json_check(body, body_len, "body") == 0) { /* dead letters hold valid JSON */
        herald_envelope env;
        bool was_envelope = herald_envelope_parse(body, body_len, &env) == 0;
        if (was_envelope)
            herald_envelope_deinit(&env);
        char *out = NULL;
        size_t len = 0;
        herald__err_clear();
        int rc = herald__dlq_edit("m", body, body_len, sets, n_set, patch, &out, &len);
        if (rc == 0) {
            FUZZ_CHECK(out && strlen(out) == len && len <= HERALD_MAX_MESSAGE_BYTES);
            FUZZ_CHECK(herald__json_check(out, len, "edited") == 0);
            if (was_envelope) {
                FUZZ_CHECK(herald_envelope_parse(out, len, &env) == 0);
                herald_envelope_deinit(&env);
            }
            herald__free(out);
        } else {
            FUZZ_CHECK(out == NULL);
            FUZZ_CHECK(strcmp(herald_last_error(), "no error") != 0);
            FUZZ_CHECK(herald__utf8_valid(herald_last_error(), strlen(herald_last_error())));
        }
    }
    free(text);
    return 0;
}
