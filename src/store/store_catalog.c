// SPDX-License-Identifier: MIT
/*
 * store_catalog.c - the event catalog that binds every producer on a store, in every process.
 * (The catalog part of store.c, kept apart; its backend calls are wrappers in store.c.)
 *
 * Two catalogs may apply to a store handle:
 *   stored    the store's own: the highest version in herald_catalog_versions (migration
 *             0012), written by herald_config_apply (`herald config apply`, `herald run`) from
 *             any process. It binds every producer on the store: herald_send_event,
 *             herald_publish_event, herald_tx_send_event, herald_outbox_add, the outbox
 *             flusher's publishes (herald__store_check_envelope), the CLI.
 *   explicit  herald_store_set_catalog: this handle only, checked in addition to the stored
 *             one. It can add a check; it never lifts the store's.
 * An event passes when it passes each catalog there is, each in its own mode (strict refuses
 * with HERALD_ECATALOG; warn logs and lets it through).
 *
 * Staleness, and why plain sends pay nothing: every event check first reads the version in
 * force from the store (one read of the table's largest key: inside an op on the writer thread,
 * in that op's transaction; on any other thread, on the reader connection) and reads and parses
 * the catalog again only when that version differs from the one it holds. So a check uses the
 * catalog committed when the check began. An apply committing between an event's check and the
 * commit of its send - at most the time that send waits for its group commit - is not seen by
 * that event; inside an effectively-once handler or an outbox function (the writer thread) the
 * version is read in the very transaction that commits the send, so there is no window at all.
 * Messages that are not events (herald_send, herald_publish) never look at the catalog.
 *
 * Ownership: `stored` is owned here; it is replaced only under the write lock, which waits for
 * checks in progress (each holds the read lock), and freed at herald_store_close.
 * Threads: any.
 */
#include "store/store_impl.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void herald__catalog_row_deinit(herald__catalog_row *r)
{
    if (!r)
        return;
    herald__free(r->catalog);
    herald__free(r->changes);
    herald__free(r->source);
    memset(r, 0, sizeof *r);
}

void herald__store_catalog_deinit(herald_store *s)
{
    herald_catalog_free(s->stored);
    s->stored = NULL;
    pthread_rwlock_destroy(&s->catalog_lock);
}

/* The write lock waits for checks in progress: once this returns, the old explicit catalog is
 * unused and its owner may free it (herald.h: "Keeps: c until ... the next call"). */
int herald_store_set_catalog(herald_store *s, const herald_catalog *c, herald_catalog_mode mode)
{
    herald__err_clear();
    if (!s)
        return herald__err(HERALD_EINVAL, "herald_store_set_catalog: store is NULL");
    if (mode != HERALD_CATALOG_STRICT && mode != HERALD_CATALOG_WARN)
        return herald__err(HERALD_EINVAL, "herald_store_set_catalog: mode %d is neither "
                           "HERALD_CATALOG_STRICT nor HERALD_CATALOG_WARN", (int)mode);
    pthread_rwlock_wrlock(&s->catalog_lock);
    s->catalog = c;
    s->catalog_mode = mode;
    pthread_rwlock_unlock(&s->catalog_lock);
    return 0;
}

/* Reads the version in force and its text, parses it and installs it if it is newer than the
 * one held (two threads may refresh at once: the newer wins). */
static int refresh(herald_store *s)
{
    herald__catalog_row row = { 0 };
    int rc = herald__store_catalog_get_now(s, &row);
    herald_catalog *c = NULL;
    if (rc == 0 && row.version > 0) {
        char detail[400];
        rc = herald_catalog_parse(row.catalog, strlen(row.catalog), "stored catalog", &c);
        if (rc < 0) {
            herald__err_copy(detail, sizeof detail);
            rc = herald__err(HERALD_ESTORE, "the store's catalog (version %lld) cannot be read: "
                             "%s", (long long)row.version, detail);
        }
    }
    if (rc == 0) {
        pthread_rwlock_wrlock(&s->catalog_lock);
        if (row.version != s->stored_version) {
            herald_catalog *old = s->stored;
            s->stored = c;
            s->stored_mode = row.mode;
            s->stored_version = row.version;
            c = old;
        }
        pthread_rwlock_unlock(&s->catalog_lock);
    }
    herald_catalog_free(c);
    herald__catalog_row_deinit(&row);
    return rc;
}

static int check_one(const herald_catalog *c, herald_catalog_mode mode, const herald_event *e,
                     const char *which)
{
    if (!c)
        return 0;
    int rc = herald_catalog_check(c, e->type, e->payload_json, e->payload_len);
    if (rc < 0 && mode == HERALD_CATALOG_WARN) {
        herald__log(HERALD_LOG_WARN, "event does not match the catalog (warn mode: sent anyway)",
                    "catalog", which, "type", e->type, "problem", herald_last_error(), NULL);
        herald__err_clear();
        return 0;
    }
    return rc;
}

int herald__store_check_event(herald_store *s, const herald_event *e)
{
    int64_t version = 0;
    int rc = herald__store_catalog_version_now(s, &version);
    if (rc < 0)
        return rc;
    pthread_rwlock_rdlock(&s->catalog_lock);
    bool is_stale = version != s->stored_version;
    pthread_rwlock_unlock(&s->catalog_lock);
    if (is_stale && (rc = refresh(s)) < 0)
        return rc;
    pthread_rwlock_rdlock(&s->catalog_lock);
    rc = check_one(s->stored, s->stored_mode, e, "the store's");
    if (rc == 0)
        rc = check_one(s->catalog, s->catalog_mode, e, "set on this handle");
    pthread_rwlock_unlock(&s->catalog_lock);
    return rc;
}

int herald__store_check_envelope(herald_store *s, const void *body, size_t len)
{
    herald_envelope env;
    int rc = herald_envelope_parse(body, len, &env);
    if (rc < 0)
        return rc;
    herald_event e = { .event_id = env.event_id, .type = env.type, .source = env.source,
                       .payload_json = env.payload_json, .payload_len = env.payload_len };
    rc = herald__store_check_event(s, &e);
    herald_envelope_deinit(&env);
    return rc;
}

int herald_store_catalog_get(herald_store *s, int64_t *version_out, herald_catalog_mode *mode_out,
                             herald_catalog **catalog_out)
{
    herald__err_clear();
    if (!s || !version_out)
        return herald__err(HERALD_EINVAL, "herald_store_catalog_get: NULL argument");
    herald__catalog_row row = { 0 };
    int rc = herald__store_catalog_get_now(s, &row);
    herald_catalog *c = NULL;
    if (rc == 0 && row.version > 0 && catalog_out)
        rc = herald_catalog_parse(row.catalog, strlen(row.catalog), "stored catalog", &c);
    if (rc == 0) {
        *version_out = row.version;
        if (mode_out)
            *mode_out = row.mode;
        if (catalog_out)
            *catalog_out = c;
    }
    herald__catalog_row_deinit(&row);
    return rc;
}

int herald_catalog_history(herald_store *s, char **json_out)
{
    herald__err_clear();
    if (!s || !json_out)
        return herald__err(HERALD_EINVAL, "herald_catalog_history: NULL argument");
    herald__catalog_row *rows = NULL;
    size_t n = 0;
    int rc = herald__store_catalog_history(s, &rows, &n);
    if (rc < 0)
        return rc;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        herald__catalog_row *r = &rows[i];
        char at[40];
        herald__iso8601(r->applied_ms, at, sizeof at);
        json_t *cat = json_loads(r->catalog, 0, NULL);
        json_t *changes = json_loads(r->changes, 0, NULL);
        json_t *events = json_object_get(cat, "events");
        json_array_append_new(
            arr, json_pack("{s:I,s:s,s:s,s:b,s:s,s:I,s:o}", "version", (json_int_t)r->version,
                           "applied_at", at, "mode",
                           r->mode == HERALD_CATALOG_WARN ? "warn" : "strict", "forced",
                           r->is_forced, "source", r->source ? r->source : "", "event_types",
                           (json_int_t)json_object_size(events),
                           "changes", changes ? changes : json_array()));
        json_decref(cat);
        herald__catalog_row_deinit(r);
    }
    herald__free(rows);
    char *text = json_dumps(arr, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(arr);
    if (!text)
        return herald__err(HERALD_ENOMEM, "herald_catalog_history: out of memory");
    *json_out = herald__xstrdup(text);
    free(text); /* lint:ok jansson allocates with malloc */
    return 0;
}
