// SPDX-License-Identifier: MIT
/*
 * outbox.h - the outbox layer. Its contract is public (herald_outbox_* in herald.h). It writes
 * through the consume layer's transactions (herald_tx), a small step past DESIGN.md's "store,
 * queue": the outbox's write is the same kind of user transaction as an effectively-once
 * handler's, so it shares that code rather than copying it.
 */
#ifndef HERALD_OUTBOX_OUTBOX_H
#define HERALD_OUTBOX_OUTBOX_H

#include "consume/consume.h"

#endif
