// SPDX-License-Identifier: MIT
/*
 * fuzz_json.c - text.c's JSON scanner against jansson as the oracle. Properties: the scanner
 * and jansson agree on whether the input is one JSON value (except where jansson's number
 * limits or Herald's nesting limit, HERALD_JSON_MAX_DEPTH, are documented to differ); on an
 * object, the validating and the trusted member walks see the same members, every key decodes
 * (herald__json_unescape) to a key jansson has; compaction keeps the value (json_equal); and
 * no function reads past its input (ASan: the input sits in an exact-size buffer).
 */
#include "fuzz_common.h"

#include <jansson.h>
#include <string.h>

typedef struct seen {
    const char *key[64], *val[64];
    size_t klen[64], vlen[64];
    size_t n;
    json_t *doc;
} seen;

static int on_member(void *ud, const char *key, size_t klen, const char *val, size_t vlen)
{
    seen *s = ud;
    if (s->n < 64) {
        s->key[s->n] = key;
        s->klen[s->n] = klen;
        s->val[s->n] = val;
        s->vlen[s->n] = vlen;
    }
    s->n++;
    char *k = malloc(klen + 1);
    size_t dlen = 0;
    FUZZ_CHECK(herald__json_unescape(key - 1, klen + 2, k, klen + 1, &dlen));
    FUZZ_CHECK(json_object_getn(s->doc, k, dlen) != NULL);
    free(k);
    return 0;
}

static int on_trusted(void *ud, const char *key, size_t klen, const char *val, size_t vlen)
{
    seen *s = ud;
    if (s->n < 64) {
        FUZZ_CHECK(s->key[s->n] == key && s->klen[s->n] == klen);
        FUZZ_CHECK(s->val[s->n] == val && s->vlen[s->n] == vlen);
    }
    s->n++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    herald__err_clear();
    int ours = herald__json_check(data, size, "input");
    json_error_t je;
    json_t *doc = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (ours == 0 && !doc) /* jansson cannot hold every number JSON allows, nor \u0000 in a key */
        FUZZ_CHECK(strstr(je.text, "too big") || strstr(je.text, "overflow") ||
                   strstr(je.text, "NUL byte in object key"));
    if (ours < 0 && doc) /* jansson ends the input at a NUL byte; Herald refuses the rest */
        FUZZ_CHECK(strstr(herald_last_error(), "HERALD_JSON_MAX_DEPTH") || memchr(data, 0, size));
    if (ours < 0 || !doc) {
        json_decref(doc);
        return 0;
    }
    if (json_is_object(doc)) {
        seen a = { .doc = doc };
        int rc = herald__json_members(data, size, "input", on_member, &a);
        /* its values may nest one level less than a whole body */
        FUZZ_CHECK(rc == 0 || strstr(herald_last_error(), "HERALD_JSON_MAX_DEPTH"));
        if (rc == 0) {
            FUZZ_CHECK(a.n >= json_object_size(doc));
            seen b = a;
            b.n = 0;
            bool ws = false;
            FUZZ_CHECK(herald__json_members_trusted(data, size, on_trusted, &b, &ws) == 0);
            FUZZ_CHECK(b.n == a.n);
        }
    }
    char *compact = malloc(size + 1);
    size_t clen = herald__json_compact((const char *)data, size, compact);
    FUZZ_CHECK(clen <= size);
    json_t *again = json_loadb(compact, clen, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    FUZZ_CHECK(again && json_equal(doc, again));
    FUZZ_CHECK(herald__json_check(compact, clen, "compact") == 0);
    json_decref(again);
    free(compact);
    json_decref(doc);
    return 0;
}
