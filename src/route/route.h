// SPDX-License-Identifier: MIT
/*
 * route.h - the route layer. Its contract is public (herald_router_* in herald.h); the
 * configuration loader (runtime/) builds routers through it.
 */
#ifndef HERALD_ROUTE_ROUTE_H
#define HERALD_ROUTE_ROUTE_H

#include "consume/consume.h"

/* Checks one route without a store: type pattern, destinations present and not the source,
 * conditions (path, operator, JSON value). HERALD_EINVAL naming the problem. The router and
 * the configuration loader both use it, so `config check` refuses what `run` would. */
int herald__route_check(const herald_route *route);

/* The parts of herald__route_check the configuration loader reports at their own line. */
int herald__route_pattern_check(const char *type);
int herald__route_cond_check(const herald_route_cond *cond);

/* A route edge: messages of queue `from` are copied to queue `to`. */
typedef struct herald__route_edge {
    const char *from, *to;
} herald__route_edge;

/* Would adding from -> to to these edges close a cycle (is `from` reachable from `to`)?
 * Breadth-first over the queues with a visited set: linear in the edges. */
bool herald__route_closes_cycle(const herald__route_edge *edges, size_t n, const char *from,
                                const char *to);

#endif
