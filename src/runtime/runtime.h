// SPDX-License-Identifier: MIT
/*
 * runtime.h - the runtime layer: configuration (config.c) and what runs from it. Its contract is
 * public (herald_runtime_*, herald_config_check in herald.h).
 */
#ifndef HERALD_RUNTIME_RUNTIME_H
#define HERALD_RUNTIME_RUNTIME_H

#include "route/route.h"

/* 1 when the catalog the configuration at config_path names (file and mode) is not the one in
 * force in the store - it was not applied (why: what differs) -, 0 when it is or the file has
 * no catalog, < 0 when the file or its catalog cannot be read (herald_last_error says why).
 * For the CLI's notice on event sends (cmd_config.c). */
int herald__config_catalog_pending(herald_store *s, const char *config_path, char *why,
                                   size_t cap);

#endif
