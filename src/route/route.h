// SPDX-License-Identifier: MIT
/*
 * route.h - the route layer. Its contract is public (herald_router_* in herald.h); the
 * configuration loader (runtime/) builds routers through it.
 */
#ifndef HERALD_ROUTE_ROUTE_H
#define HERALD_ROUTE_ROUTE_H

#include "consume/consume.h"

#endif
