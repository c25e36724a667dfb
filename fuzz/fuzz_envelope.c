// SPDX-License-Identifier: MIT
/*
 * fuzz_envelope.c - envelope parsing. Properties: herald_envelope_parse never reads past the
 * body; where the body is valid JSON, the stored-body parser (herald__envelope_parse_stored, the
 * trusted walk) gives the same answer and the same fields; a parsed envelope encodes again
 * (herald__event_encode_at) into a body that parses to the same fields and payload, and that
 * herald__envelope_trace reads consistently.
 */
#include "fuzz_common.h"

#include <string.h>
#include <strings.h>

static void same(const herald_envelope *a, const herald_envelope *b, bool with_ts)
{
    FUZZ_CHECK(strcasecmp(a->event_id, b->event_id) == 0); /* encode writes it lowercase */
    FUZZ_CHECK(strcmp(a->type, b->type) == 0);
    FUZZ_CHECK(strcmp(a->source, b->source) == 0);
    FUZZ_CHECK(strcmp(a->correlation_id, b->correlation_id) == 0);
    FUZZ_CHECK(!with_ts || strcmp(a->timestamp, b->timestamp) == 0);
    FUZZ_CHECK(a->payload_len == b->payload_len);
    FUZZ_CHECK(memcmp(a->payload_json, b->payload_json, a->payload_len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    herald_envelope env;
    int rc = herald_envelope_parse(data, size, &env);
    if (herald__json_check(data, size, "body") == 0) {
        herald_envelope st;
        int src = herald__envelope_parse_stored(data, size, &st);
        FUZZ_CHECK((rc == 0) == (src == 0));
        if (src == 0) {
            same(&env, &st, true);
            herald_envelope_deinit(&st);
        }
        char corr[HERALD_CORRELATION_ID_MAX + 1], id[HERALD_ID_SIZE],
            type[HERALD_EVENT_TYPE_MAX + 1];
        if (herald__envelope_trace(data, size, corr, id, type))
            FUZZ_CHECK(rc == 0 && strcmp(corr, env.correlation_id) == 0);
    }
    if (rc < 0)
        return 0;
    /* Re-encode what was parsed: fields that pass the checks of encode must round-trip. */
    herald_event e = { .event_id = env.event_id, .type = env.type, .source = env.source,
                       .correlation_id = env.correlation_id,
                       .payload_json = env.payload_json, .payload_len = env.payload_len };
    char *body = NULL;
    size_t len = 0;
    char event_id[HERALD_ID_SIZE];
    if (herald__event_encode_at(&e, 1767225600000LL, event_id, &body, &len) == 0) {
        herald_envelope back;
        FUZZ_CHECK(herald_envelope_parse(body, len, &back) == 0);
        FUZZ_CHECK(strcmp(back.event_id, event_id) == 0);
        same(&env, &back, false);
        char corr[HERALD_CORRELATION_ID_MAX + 1], id[HERALD_ID_SIZE],
            type[HERALD_EVENT_TYPE_MAX + 1];
        bool traced = herald__envelope_trace(body, len, corr, id, type);
        FUZZ_CHECK(traced == (env.correlation_id[0] != 0));
        if (traced)
            FUZZ_CHECK(strcmp(corr, env.correlation_id) == 0 && strcmp(type, env.type) == 0);
        herald_envelope_deinit(&back);
        herald__free(body);
    }
    herald_envelope_deinit(&env);
    return 0;
}
