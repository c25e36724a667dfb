// SPDX-License-Identifier: MIT
/*
 * test_inflight_race.c - the in-flight journal of an effectively-once consumer against a
 * process that recovers journals at the same moment (store_sqlite_inflight.c): a store opened
 * by another process (every `herald send` does it) removes ".tmp" journal files it finds
 * unlocked. One that is being made by a live consumer, between its open() and its flock(), is
 * removed too; the consumer must make another and go on. CI saw the failure this guards against:
 * `herald run`'s store refused every write ("cannot create the in-flight journal ...: No such
 * file or directory", sticky) while `herald send` processes opened the store.
 * The fault point "sqlite.journal_taken" removes the new file at exactly that instant, once.
 * The store runs on a fake clock that does not move: a batch that failed on the journal would
 * be tried again only after the consumer's backoff (a second of store time), that is never -
 * so the message is handled at once only if the journal is made again within the same take.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include "herald.h"
#include "store/store_impl.h"
#include "support.h"

static hx_env env;
static herald_consumer *g_c;

static void setup(void)
{
    hx_env_setup(&env, 0); /* the fake clock stands still: a failed batch would wait forever */
    g_c = NULL;
}

static void teardown(void)
{
    herald_consumer_stop(g_c);
    hx_env_teardown(&env);
}

TestSuite(inflight_race, .init = setup, .fini = teardown, .timeout = 60);

static atomic_int handled;

static int count_handler(herald_tx *tx, const herald_message *m, const herald_envelope *e,
                         void *ud)
{
    (void)tx;
    (void)m;
    (void)e;
    (void)ud;
    atomic_fetch_add(&handled, 1);
    return 0;
}

Test(inflight_race, a_journal_removed_by_a_recovering_process_while_made_is_made_again)
{
    static const char *const q[] = { "jobs" };
    hx_create_queue(env.store, "jobs", NULL);
    herald__fault_io_arm("sqlite.journal_taken", EIO, 0);
    herald_consumer_cfg c;
    herald_consumer_cfg_init(&c);
    c.queues = q;
    c.n_queues = 1;
    c.tx_handler = count_handler;
    c.max_batch_timeout_ms = 0;
    g_c = hx_consumer_start(env.store, &c);
    hx_send_json(env.store, "jobs", "{\"n\":1}", HERALD_UNSET, NULL);
    HX_AWAIT(hx_stats(env.store, "jobs").acked_total == 1);
    cr_assert_eq(atomic_load(&handled), 1);
    /* the store is not failed: it takes writes, and the consumer handles them */
    hx_send_json(env.store, "jobs", "{\"n\":2}", HERALD_UNSET, NULL);
    HX_AWAIT(hx_stats(env.store, "jobs").acked_total == 2);
    cr_assert_eq(atomic_load(&handled), 2);
}
