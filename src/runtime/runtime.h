// SPDX-License-Identifier: MIT
/*
 * runtime.h - the runtime layer: configuration (config.c) and what runs from it. Its contract is
 * public (herald_runtime_*, herald_config_check in herald.h).
 */
#ifndef HERALD_RUNTIME_RUNTIME_H
#define HERALD_RUNTIME_RUNTIME_H

#include "route/route.h"

#endif
