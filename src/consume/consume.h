// SPDX-License-Identifier: MIT
/*
 * consume.h - the consumer layer. Its whole contract is public (herald_consumer_* and
 * herald_delivery_* in herald.h); this header exists for the layer rule "one header per layer".
 */
#ifndef HERALD_CONSUME_CONSUME_H
#define HERALD_CONSUME_CONSUME_H

#include "queue/queue.h"

#endif
