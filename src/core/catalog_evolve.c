// SPDX-License-Identifier: MIT
/*
 * catalog_evolve.c - how a catalog evolves: its canonical text (what a store keeps, so that
 * equal catalogs compare equal) and the changes between two versions, each judged compatible or
 * breaking.
 *
 * The rule. A change is compatible when (a) every payload the old catalog accepted is still
 * accepted - producers that have not been updated keep working - and (b) every payload the new
 * one accepts still has each field the old one required, with its type - consumers that have
 * not been updated keep working. Since a check refuses fields the catalog does not list:
 *   compatible: a new event type; a new optional field; a changed description; a mode change
 *   breaking:   a new required field (a)          a field removed, required or optional (a)
 *               a field's type changed (a, b)     an optional field made required (a)
 *               a required field made optional (b)
 *               an event type removed while it is still in use (a): the store decides "in use"
 *               (messages of the type waiting in a queue or dead-letter queue, pending outbox
 *               rows, a route of the applied configuration naming it; see config.c)
 * Formats: the canonical text is {"events":{TYPE:{"description":D?,"payload":{FIELD:"type[?]"}}}}
 * with keys sorted and no whitespace; a change is the JSON object herald.h describes at
 * herald_catalog_history.
 * Ownership: results belong to the caller. Threads: any (no shared state).
 */
#include "core/catalog_evolve.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- canonical text ---- */

static char *dump_sorted(json_t *v)
{
    char *t = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS);
    HERALD_CHECK(t != NULL);
    char *copy = herald__xstrdup(t);
    free(t); /* lint:ok jansson allocates with malloc */
    return copy;
}

int herald__catalog_canonical_file(const char *path, char **text_out, herald_catalog **cat_out)
{
    herald_catalog *cat = NULL;
    int rc = herald_catalog_load(path, &cat); /* every check, with FILE:LINE:COL errors */
    if (rc < 0)
        return rc;
    herald__jsonc *j = NULL;
    if ((rc = herald__jsonc_load(path, &j)) < 0) { /* the file changed in between */
        herald_catalog_free(cat);
        return rc;
    }
    json_t *events = json_object_get(herald__jsonc_root(j), "events");
    json_t *out_events = json_object();
    const char *type;
    json_t *def;
    json_object_foreach(events, type, def)
    {
        json_t *t = json_object();
        json_t *desc = json_object_get(def, "description");
        if (json_is_string(desc))
            json_object_set_new(t, "description", json_string(json_string_value(desc)));
        json_object_set_new(t, "payload", json_deep_copy(json_object_get(def, "payload")));
        json_object_set_new(out_events, type, t);
    }
    json_t *root = json_pack("{s:o}", "events", out_events);
    *text_out = dump_sorted(root);
    json_decref(root);
    herald__jsonc_free(j);
    if (cat_out)
        *cat_out = cat;
    else
        herald_catalog_free(cat);
    return 0;
}

/* ---- changes ---- */

static json_t *parse_canonical(const char *text, const char *which)
{
    if (!text)
        return json_pack("{s:{}}", "events");
    json_error_t je;
    json_t *v = json_loads(text, 0, &je);
    if (!json_is_object(json_object_get(v, "events"))) {
        json_decref(v);
        herald__err(HERALD_ESTORE, "the %s catalog is not a canonical catalog text", which);
        return NULL;
    }
    return v;
}

static bool is_optional(const char *spec)
{
    size_t n = strlen(spec);
    return n > 0 && spec[n - 1] == '?';
}

/* The field type without its '?'. */
static void base_type(const char *spec, char *out, size_t cap)
{
    snprintf(out, cap, "%s", spec);
    size_t n = strlen(out);
    if (n > 0 && out[n - 1] == '?')
        out[n - 1] = 0;
}

static void add(json_t *changes, const char *change, const char *type, const char *field,
                const char *from, const char *to, bool breaking, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));
static void add(json_t *changes, const char *change, const char *type, const char *field,
                const char *from, const char *to, bool breaking, const char *fmt, ...)
{
    char text[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    json_t *c = json_pack("{s:s,s:s}", "change", change, "type", type);
    if (field)
        json_object_set_new(c, "field", json_string(field));
    if (from)
        json_object_set_new(c, "from", json_string(from));
    if (to)
        json_object_set_new(c, "to", json_string(to));
    json_object_set_new(c, "breaking", json_boolean(breaking));
    json_object_set_new(c, "text", json_string(text));
    json_array_append_new(changes, c);
}

static void diff_fields(json_t *changes, const char *type, json_t *old_p, json_t *new_p)
{
    const char *f;
    json_t *v;
    json_object_foreach(old_p, f, v)
    {
        const char *os = json_string_value(v);
        json_t *nv = json_object_get(new_p, f);
        if (!nv) {
            if (is_optional(os))
                add(changes, "field_removed", type, f, os, NULL, true,
                    "event type '%s': optional field '%s' (%s) removed: payloads that still "
                    "carry it would be refused", type, f, os);
            else
                add(changes, "field_removed", type, f, os, NULL, true,
                    "event type '%s': required field '%s' (%s) removed", type, f, os);
            continue;
        }
        const char *ns = json_string_value(nv);
        char ob[32], nb[32];
        base_type(os, ob, sizeof ob);
        base_type(ns, nb, sizeof nb);
        if (strcmp(ob, nb) != 0)
            add(changes, "field_type_changed", type, f, os, ns, true,
                "event type '%s': field '%s' changed type from %s to %s", type, f, ob, nb);
        else if (is_optional(os) && !is_optional(ns))
            add(changes, "field_made_required", type, f, os, ns, true,
                "event type '%s': optional field '%s' (%s) made required", type, f, nb);
        else if (!is_optional(os) && is_optional(ns))
            add(changes, "field_made_optional", type, f, os, ns, true,
                "event type '%s': required field '%s' (%s) made optional: consumers that rely "
                "on it may not get it", type, f, ob);
    }
    json_object_foreach(new_p, f, v)
    {
        if (json_object_get(old_p, f))
            continue;
        const char *ns = json_string_value(v);
        if (is_optional(ns))
            add(changes, "field_added", type, f, NULL, ns, false,
                "event type '%s': optional field '%s' (%s) added", type, f, ns);
        else
            add(changes, "field_added", type, f, NULL, ns, true,
                "event type '%s': required field '%s' (%s) added: producers that do not send "
                "it yet would be refused", type, f, ns);
    }
}

/* jansson iterates objects in insertion order; canonical texts are sorted, so both are. */
int herald__catalog_diff(const char *old_text, const char *new_text, json_t **out)
{
    json_t *old_c = parse_canonical(old_text, "old");
    json_t *new_c = old_c ? parse_canonical(new_text, "new") : NULL;
    if (!old_c || !new_c) {
        json_decref(old_c);
        return HERALD_ESTORE;
    }
    json_t *olde = json_object_get(old_c, "events"), *newe = json_object_get(new_c, "events");
    json_t *changes = json_array();
    const char *type;
    json_t *def;
    json_object_foreach(olde, type, def)
    {
        json_t *nd = json_object_get(newe, type);
        if (!nd) {
            add(changes, "type_removed", type, NULL, NULL, NULL, false,
                "event type '%s' removed", type);
            json_object_set_new(json_array_get(changes, json_array_size(changes) - 1),
                                "breaking_if_in_use", json_true());
            continue;
        }
        json_t *od = json_object_get(def, "description"), *ndd = json_object_get(nd, "description");
        if (!json_equal(od, ndd) && (od || ndd))
            add(changes, "description_changed", type, NULL, json_string_value(od),
                json_string_value(ndd), false, "event type '%s': description changed", type);
        diff_fields(changes, type, json_object_get(def, "payload"),
                    json_object_get(nd, "payload"));
    }
    json_object_foreach(newe, type, def)
    {
        if (!json_object_get(olde, type))
            add(changes, "type_added", type, NULL, NULL, NULL, false, "event type '%s' added",
                type);
    }
    json_decref(old_c);
    json_decref(new_c);
    *out = changes;
    return 0;
}

void herald__catalog_mark_in_use(json_t *changes, const char *type, const char *why)
{
    size_t i;
    json_t *c;
    json_array_foreach(changes, i, c)
    {
        if (strcmp(json_string_value(json_object_get(c, "change")), "type_removed") != 0 ||
            strcmp(json_string_value(json_object_get(c, "type")), type) != 0)
            continue;
        char text[600];
        snprintf(text, sizeof text, "event type '%s' removed while still in use (%s)", type, why);
        json_object_set_new(c, "breaking", json_true());
        json_object_set_new(c, "in_use", json_string(why));
        json_object_set_new(c, "text", json_string(text));
    }
}

size_t herald__catalog_n_breaking(const json_t *changes)
{
    size_t i, n = 0;
    json_t *c;
    json_array_foreach((json_t *)changes, i, c)
    {
        if (json_is_true(json_object_get(c, "breaking")))
            n++;
    }
    return n;
}

void herald__catalog_breaking_text(const json_t *changes, char *buf, size_t cap)
{
    size_t i, len = 0;
    json_t *c;
    buf[0] = 0;
    json_array_foreach((json_t *)changes, i, c)
    {
        if (!json_is_true(json_object_get(c, "breaking")))
            continue;
        const char *t = json_string_value(json_object_get(c, "text"));
        int k = snprintf(buf + len, cap - len, "%s%s", len ? "; " : "", t ? t : "");
        if (k < 0 || (size_t)k >= cap - len) {
            len = herald__utf8_cut(buf, strlen(buf), cap > 4 ? cap - 4 : 0);
            snprintf(buf + len, cap - len, "...");
            return;
        }
        len += (size_t)k;
    }
}
