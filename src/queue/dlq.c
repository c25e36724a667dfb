// SPDX-License-Identifier: MIT
/*
 * dlq.c - dead-letter tooling: attempt history, redrive (optionally edited, rate limited,
 * audited) and the audit list.
 * Redrive runs in two passes so that a bad edit changes nothing: (1) select the messages (all, or
 * the given ids - every id must be there), apply the edits to each body and check the result
 * (valid JSON; a valid envelope where the original was one; within the destination queue's
 * max_message_bytes); (2) move them one transaction each (the store inserts the copy, deletes the
 * dead letter and records the audit together, and an edited envelope's row is traced under the
 * correlation id, event id and type its new body carries), pacing at rate_per_s (0, or
 * HERALD_REDRIVE_MIN_RATE..MAX_RATE: NaN and infinity refused). A message removed meanwhile
 * (acked by a DLQ consumer) is skipped.
 * Edit paths are checked whole before the body is touched: every segment non-empty, valid UTF-8
 * (jansson refuses other keys and frees what it was handed). The audit's edit text is valid
 * UTF-8, cut on a character boundary.
 */
#include "queue/queue.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void herald_redrive_opts_init(herald_redrive_opts *o)
{
    memset(o, 0, sizeof *o);
}

int herald_message_attempts(herald_store *s, const char *message_id, herald_attempt **out,
                            size_t *n_out)
{
    herald__err_clear();
    if (!s || !message_id || !out || !n_out)
        return herald__err(HERALD_EINVAL, "herald_message_attempts: NULL argument");
    return herald__store_attempts(s, message_id, out, n_out);
}

int herald_message_get(herald_store *s, const char *queue, const char *message_id,
                       herald_batch *b)
{
    herald__err_clear();
    if (!s || !queue || !message_id || !b)
        return herald__err(HERALD_EINVAL, "herald_message_get: NULL argument");
    herald_queue_info qi;
    int rc = herald_queue_get(s, queue, &qi);
    return rc < 0 ? rc : herald__store_msg_get(s, queue, message_id, b);
}

int herald_redrive_audit(herald_store *s, const char *dlq, herald_audit_entry **out,
                         size_t *n_out)
{
    herald__err_clear();
    if (!s || !out || !n_out)
        return herald__err(HERALD_EINVAL, "herald_redrive_audit: NULL argument");
    return herald__store_audit(s, dlq, out, n_out);
}

/* ---- edits ---- */

/* PATH=VALUE: PATH is dot-separated object keys (created when missing), each non-empty valid
 * UTF-8 (jansson refuses other keys, and used to free the new child it had been handed: the
 * whole path is checked before anything changes). VALUE is JSON, or else the text itself. */
static int set_path(json_t *root, const char *assign)
{
    char shown[120]; /* the edit as a message may show it: valid UTF-8 */
    herald__utf8_copy(shown, sizeof shown, assign);
    const char *eq = strchr(assign, '=');
    if (!eq || eq == assign)
        return herald__err(HERALD_EINVAL, "edit '%s' is not PATH=VALUE", shown);
    char path[256];
    size_t plen = (size_t)(eq - assign);
    if (plen >= sizeof path)
        return herald__err(HERALD_EINVAL, "edit '%s': the path is longer than %zu bytes", shown,
                           sizeof path - 1);
    memcpy(path, assign, plen);
    path[plen] = 0;
    char shown_path[120];
    herald__utf8_copy(shown_path, sizeof shown_path, path);
    if (!herald__utf8_valid(path, plen))
        return herald__err(HERALD_EINVAL, "edit path '%s' is not valid UTF-8", shown_path);
    if (path[0] == '.' || path[plen - 1] == '.' || strstr(path, ".."))
        return herald__err(HERALD_EINVAL, "edit path '%s' has an empty segment", shown_path);
    json_error_t je;
    json_t *val = json_loads(eq + 1, JSON_DECODE_ANY, &je);
    if (!val)
        val = json_string(eq + 1); /* not JSON: the text itself */
    if (!val)
        return herald__err(HERALD_EINVAL, "edit value of '%s' is not valid UTF-8", shown_path);
    json_t *cur = root;
    char *save = NULL;
    for (char *seg = strtok_r(path, ".", &save); seg;) {
        char *next = strtok_r(NULL, ".", &save);
        if (!json_is_object(cur)) {
            json_decref(val);
            return herald__err(HERALD_EINVAL, "edit path '%s' goes through a value that is not "
                                              "an object",
                               shown_path);
        }
        if (!next) {
            if (json_object_set_new(cur, seg, val) != 0) /* val is released either way */
                return herald__err(HERALD_ENOMEM, "edit path '%s': cannot set it", shown_path);
            return 0;
        }
        json_t *child = json_object_get(cur, seg);
        if (!child) {
            child = json_object();
            if (!child || json_object_set_new(cur, seg, child) != 0) {
                json_decref(val);
                return herald__err(HERALD_ENOMEM, "edit path '%s': cannot set it", shown_path);
            }
        }
        cur = child;
        seg = next;
    }
    json_decref(val); /* unreachable: the path has a segment */
    return herald__err(HERALD_EINVAL, "edit '%s' has an empty path", shown);
}

/* RFC 7386: returns the patched target (a new reference). */
static json_t *merge_patch(json_t *target, json_t *patch)
{
    if (!json_is_object(patch))
        return json_incref(patch);
    json_t *t = json_is_object(target) ? json_deep_copy(target) : json_object();
    const char *key;
    json_t *v;
    json_object_foreach(patch, key, v)
    {
        if (json_is_null(v)) {
            json_object_del(t, key);
        } else {
            json_t *merged = merge_patch(json_object_get(t, key), v);
            json_object_set_new(t, key, merged);
        }
    }
    return t;
}

int herald__dlq_edit(const char *id, const void *body, size_t body_len, const char *const *set,
                     size_t n_set, const char *merge_patch_text, char **out, size_t *len)
{
    herald_envelope env;
    bool was_envelope = herald_envelope_parse(body, body_len, &env) == 0;
    if (was_envelope)
        herald_envelope_deinit(&env);
    json_error_t je;
    json_t *doc = json_loadb(body, body_len, JSON_ALLOW_NUL, &je);
    if (!doc)
        return herald__err(HERALD_EINVAL, "message %s: body cannot be edited: %s", id, je.text);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n_set; i++)
        rc = set_path(doc, set[i]);
    if (rc == 0 && merge_patch_text) {
        json_t *patch = json_loads(merge_patch_text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
        if (!patch) {
            rc = herald__err(HERALD_EINVAL, "merge patch is not JSON: %s (line %d, column %d)",
                             je.text, je.line, je.column);
        } else {
            json_t *res = merge_patch(doc, patch);
            json_decref(patch);
            json_decref(doc);
            doc = res;
        }
    }
    json_t *payload = was_envelope ? json_object_get(doc, "payload") : NULL;
    if (rc == 0 && payload) { /* payload last, as encoded: trace readers look near the start */
        json_incref(payload);
        json_object_del(doc, "payload");
        json_object_set_new(doc, "payload", payload);
    }
    char *text = rc == 0 ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY)
                         : NULL;
    json_decref(doc);
    if (rc < 0)
        return rc;
    if (!text)
        return herald__err(HERALD_ENOMEM, "cannot encode the edited body");
    *len = strlen(text);
    *out = herald__xmemdup(text, *len + 1);
    free(text); /* lint:ok jansson allocates with malloc */
    if (was_envelope && herald_envelope_parse(*out, *len, &env) < 0) {
        char detail[300];
        herald__err_copy(detail, sizeof detail);
        herald__free(*out);
        *out = NULL;
        return herald__err(HERALD_EENVELOPE, "message %s: the edit breaks its envelope: %s", id,
                           detail);
    }
    if (was_envelope)
        herald_envelope_deinit(&env);
    if (*len > HERALD_MAX_MESSAGE_BYTES) {
        herald__free(*out);
        *out = NULL;
        return herald__err(HERALD_ETOOBIG, "message %s: the edited body has %zu bytes", id,
                           *len);
    }
    return 0;
}

/* The edited body of one dead letter (herald__free), checked. */
static int edit_body(const herald_redrive_opts *o, const herald__dead_row *r, char **out,
                     size_t *len)
{
    if (r->content_type != HERALD_CONTENT_JSON)
        return herald__err(HERALD_EINVAL, "message %s has content type %s: only JSON bodies can "
                                          "be edited",
                           r->id, herald_content_type_name(r->content_type));
    return herald__dlq_edit(r->id, r->body, r->len, o->set, o->n_set, o->merge_patch, out, len);
}

/* The audit's text of the edits: valid UTF-8 (the audit is read back as JSON), cut on a
 * character boundary to fit herald_audit_entry.edit. */
static void describe_edits(const herald_redrive_opts *o, char *buf, size_t cap)
{
    char all[2048];
    size_t n = 0;
    all[0] = 0;
    for (size_t i = 0; i < o->n_set && n < sizeof all; i++)
        n += (size_t)snprintf(all + n, sizeof all - n, "%sset %s", n ? "; " : "", o->set[i]);
    if (o->merge_patch && n < sizeof all)
        snprintf(all + n, sizeof all - n, "%spatch %s", n ? "; " : "", o->merge_patch);
    herald__utf8_copy(buf, cap, all);
}

/* ---- redrive ---- */

typedef struct pick {
    int64_t seq;
    char *body; /* edited, or NULL = unchanged */
    size_t len;
} pick;

typedef struct redrive_op {
    herald__op base;
    const char *dlq, *to, *actor, *edit;
    const pick *p;
    bool moved;
} redrive_op;

static int redrive_run(herald_store *s, herald__op *op)
{
    redrive_op *r = (redrive_op *)op;
    return herald__store_redrive_one(s, r->dlq, r->p->seq, r->to, r->p->body, r->p->len,
                                     r->actor, r->edit, &r->moved);
}

static bool wanted(const herald_redrive_opts *o, const char *id, bool *found)
{
    if (o->n_ids == 0)
        return true;
    for (size_t i = 0; i < o->n_ids; i++)
        if (strcmp(o->ids[i], id) == 0) {
            found[i] = true;
            return true;
        }
    return false;
}

static void picks_free(pick *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        herald__free(p[i].body);
    herald__free(p);
}

/* The largest body the queue a dead letter goes to takes (to_max: to_queue's, or -1 to look up
 * the message's source queue). */
static int dest_max_bytes(herald_store *s, const herald__dead_row *r, int64_t to_max,
                          int64_t *max_out)
{
    if (to_max >= 0) {
        *max_out = to_max;
        return 0;
    }
    herald_queue_info qi;
    if (!r->dead_from[0] || herald_queue_get(s, r->dead_from, &qi) < 0)
        return -1;
    *max_out = qi.max_message_bytes;
    return 0;
}

static int select_and_edit(herald_store *s, const char *dlq, const herald_redrive_opts *o,
                           int64_t to_max, pick **out, size_t *n_out)
{
    bool edits = o->n_set > 0 || o->merge_patch;
    bool *found = herald__xcalloc(o->n_ids + 1, sizeof *found);
    size_t cap = 64, n = 0;
    pick *picks = herald__xmalloc(cap * sizeof *picks);
    int64_t after_vis = INT64_MIN, after_seq = 0;
    int rc = 0;
    herald__dead_row rows[100];
    for (;;) {
        size_t k = 0;
        if ((rc = herald__store_dead_page(s, dlq, after_vis, after_seq, rows, 100, &k)) < 0)
            break;
        for (size_t i = 0; i < k; i++) {
            herald__dead_row *r = &rows[i];
            after_vis = r->visible_at_ms;
            after_seq = r->seq;
            if (rc < 0 || !wanted(o, r->id, found) || (o->max > 0 && (int64_t)n >= o->max))
                continue;
            pick p = { .seq = r->seq };
            herald_queue_info qi;
            if (!o->to_queue && !r->dead_from[0])
                rc = herald__err(HERALD_EINVAL,
                                 "message %s in '%s' has no source queue (it was not "
                                 "dead-lettered); give a destination queue",
                                 r->id, dlq);
            else if (!o->to_queue && herald_queue_get(s, r->dead_from, &qi) < 0)
                rc = herald__err(HERALD_ENOQUEUE,
                                 "message %s: its source queue '%s' does not exist any more; "
                                 "give a destination queue",
                                 r->id, r->dead_from);
            if (rc == 0 && edits)
                rc = edit_body(o, r, &p.body, &p.len);
            int64_t max_bytes = 0;
            size_t len = p.body ? p.len : r->len;
            if (rc == 0 && dest_max_bytes(s, r, to_max, &max_bytes) == 0 &&
                (int64_t)len > max_bytes)
                rc = herald__err(HERALD_ETOOBIG,
                                 "message %s: its %sbody of %zu bytes is over the %" PRId64
                                 "-byte max_message_bytes of queue '%s'",
                                 r->id, p.body ? "edited " : "", len, max_bytes,
                                 o->to_queue ? o->to_queue : r->dead_from);
            if (rc < 0) {
                herald__free(p.body);
                continue;
            }
            if (n == cap) {
                cap *= 2;
                picks = herald__xrealloc(picks, cap * sizeof *picks);
            }
            picks[n++] = p;
        }
        for (size_t i = 0; i < k; i++)
            herald__free(rows[i].body);
        if (rc < 0 || k < 100)
            break;
    }
    for (size_t i = 0; rc == 0 && i < o->n_ids; i++)
        if (!found[i])
            rc = herald__err(HERALD_EINVAL, "message %.60s is not in dead-letter queue '%s'",
                             o->ids[i], dlq);
    herald__free(found);
    if (rc < 0) {
        picks_free(picks, n);
        return rc;
    }
    *out = picks;
    *n_out = n;
    return 0;
}

int herald_dlq_redrive(herald_store *s, const char *dlq, const herald_redrive_opts *o,
                       int64_t *n_moved)
{
    herald__err_clear();
    if (!s || !dlq || !o)
        return herald__err(HERALD_EINVAL, "herald_dlq_redrive: NULL argument");
    herald_queue_info qi;
    int rc = herald_queue_get(s, dlq, &qi);
    if (rc < 0)
        return rc;
    int64_t to_max = -1;
    if (o->to_queue) {
        if ((rc = herald_queue_get(s, o->to_queue, &qi)) < 0)
            return rc;
        to_max = qi.max_message_bytes;
    }
    /* written as !(in range) so that NaN fails too; infinity is out of range */
    if (!(o->rate_per_s == 0 ||
          (o->rate_per_s >= HERALD_REDRIVE_MIN_RATE && o->rate_per_s <= HERALD_REDRIVE_MAX_RATE)))
        return herald__err(HERALD_EINVAL,
                           "rate %g per second is out of range: 0 (no limit) or %g..%g",
                           o->rate_per_s, HERALD_REDRIVE_MIN_RATE, HERALD_REDRIVE_MAX_RATE);
    if (o->max < 0)
        return herald__err(HERALD_EINVAL, "max must not be negative");
    for (size_t i = 0; i < o->n_ids; i++)
        if (!o->ids[i])
            return herald__err(HERALD_EINVAL, "message id %zu is NULL", i);
    pick *picks = NULL;
    size_t n = 0;
    if ((rc = select_and_edit(s, dlq, o, to_max, &picks, &n)) < 0)
        return rc;
    char edit[600];
    describe_edits(o, edit, sizeof edit);
    int64_t moved = 0;
    int64_t interval_ns = o->rate_per_s > 0 ? (int64_t)(1e9 / o->rate_per_s) : 0;
    int64_t next_ns = herald__mono_ns();
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (interval_ns > 0) {
            int64_t now = herald__mono_ns();
            if (next_ns > now) {
                struct timespec ts = { .tv_sec = (next_ns - now) / 1000000000LL,
                                       .tv_nsec = (next_ns - now) % 1000000000LL };
                nanosleep(&ts, NULL);
            }
            next_ns += interval_ns;
        }
        redrive_op r = { .base = { .run = redrive_run, .wakes = true },
                         .dlq = dlq,
                         .to = o->to_queue,
                         .actor = o->actor ? o->actor : "unknown",
                         .edit = edit,
                         .p = &picks[i] };
        rc = herald__store_exec(s, &r.base);
        if (rc == 0 && r.moved)
            moved++;
    }
    picks_free(picks, n);
    if (n_moved)
        *n_moved = moved;
    return rc;
}
