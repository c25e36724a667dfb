// SPDX-License-Identifier: MIT
/*
 * catalog_evolve.h - a catalog's canonical JSON text (what the store keeps) and the changes
 * between two catalogs, each marked breaking or not (catalog_evolve.c). Used by the runtime
 * (herald_config_apply) and the CLI (`herald catalog diff`); nothing outside the library.
 */
#ifndef HERALD_CORE_CATALOG_EVOLVE_H
#define HERALD_CORE_CATALOG_EVOLVE_H

#include <jansson.h>

#include "core/core.h"

/* Loads a catalog file with herald_catalog_load (every error of that, naming FILE:LINE:COL),
 * and gives its canonical JSON text: {"events":{TYPE:{"description":D?,"payload":{FIELD:
 * "type[?]"}}}}, keys sorted, no whitespace - equal catalogs give equal texts.
 * *text_out: herald__free. cat_out may be NULL; else *cat_out: herald_catalog_free. */
int herald__catalog_canonical_file(const char *path, char **text_out, herald_catalog **cat_out);

/* The changes from old_text to new_text (canonical texts; old_text NULL: no catalog before), in
 * type then field order, as a JSON array of the objects herald.h describes at
 * herald_catalog_history. A removed type is "breaking" only if still in use, which a store
 * decides (herald__catalog_mark_in_use); here it carries "breaking":false and
 * "breaking_if_in_use":true. *out: json_decref. Errors: HERALD_ESTORE (a text that is not a
 * canonical catalog). */
int herald__catalog_diff(const char *old_text, const char *new_text, json_t **out);

/* Marks the type_removed change of `type` in changes breaking, saying why it is in use. */
void herald__catalog_mark_in_use(json_t *changes, const char *type, const char *why);

/* Number of breaking changes in a diff. */
size_t herald__catalog_n_breaking(const json_t *changes);

/* "; "-joined texts of the breaking changes into buf (cut at a character boundary). */
void herald__catalog_breaking_text(const json_t *changes, char *buf, size_t cap);

#endif
