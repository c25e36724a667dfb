// SPDX-License-Identifier: MIT
/*
 * test_pull.c - the pull side through the public API: herald_pull leases, herald_ack,
 * herald_retry, herald_peek, lease expiry, max_retries and dead-lettering (by retry and by
 * lease expiry), retention, pause/resume, purge and the stats a queue reports.
 * Each test owns a temp dir and a store on a fake clock; lease timeouts, delays and retention
 * are passed with hx_clock_advance, never by sleeping.
 */
#include <criterion/criterion.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "herald.h"
#include "support.h"

static hx_env env;

static void setup(void)
{
    hx_env_setup_with_queue(&env, "q"); /* every test has queue "q" */
}

static void teardown(void)
{
    hx_env_teardown(&env);
}

TestSuite(pull, .init = setup, .fini = teardown, .timeout = 30);

/* ---- helpers ------------------------------------------------------------------------------- */

static void create_queue(const char *name, int64_t max_retries, const char *dlq,
                         int64_t retention_s, int64_t retry_delay_s)
{
    herald_queue_settings st;
    herald_queue_settings_init(&st);
    st.max_retries = max_retries;
    st.dead_letter_queue = dlq;
    st.message_retention_period_s = retention_s;
    st.retry_delay_s = retry_delay_s;
    hx_create_queue(env.store, name, &st);
}

static void send_d(const char *q, const char *json, int64_t delay_s, char id[HERALD_ID_SIZE])
{
    hx_send_json(env.store, q, json, delay_s, id);
}

static void send1(const char *q, const char *json, char id[HERALD_ID_SIZE])
{
    hx_send_json(env.store, q, json, HERALD_UNSET, id);
}

/* Pulls with visibility_ms and returns the count; asserts rc == 0. */
static size_t pull_v(const char *q, int max_n, int64_t vis_ms, herald_batch *b)
{
    return hx_pull(env.store, q, max_n, vis_ms, b);
}

static size_t pull_n(const char *q, int max_n, herald_batch *b)
{
    return hx_pull(env.store, q, max_n, HERALD_UNSET, b);
}

static size_t peek_n(const char *q, herald_batch *b)
{
    return hx_peek(env.store, q, b);
}

static herald_queue_stats stats(const char *q)
{
    return hx_stats(env.store, q);
}

static herald_settle_result ack1(const char *q, const char *lease)
{
    return hx_ack1(env.store, q, lease);
}

static herald_settle_result retry1(const char *q, const char *lease, int64_t delay_s,
                                   const char *err)
{
    herald_settle_result r;
    memset(&r, 0, sizeof r);
    const char *ids[] = { lease };
    int rc = herald_retry(env.store, q, ids, 1, delay_s, err, &r);
    cr_assert_eq(rc, 0, "retry: %s: %s", herald_err_name(rc), herald_last_error());
    return r;
}

/* ---- pull / lease --------------------------------------------------------------------------- */

Test(pull, pull_leases_up_to_max_n_with_attempts_starting_at_1)
{
    char ids[5][HERALD_ID_SIZE];
    const char *bodies[5] = { "0", "1", "2", "3", "4" };
    for (int i = 0; i < 5; i++)
        send1("q", bodies[i], ids[i]);
    herald_batch b = { 0 };
    cr_assert_eq(pull_n("q", 3, &b), 3);
    cr_assert_str_eq(b.queue, "q");
    for (size_t i = 0; i < 3; i++) {
        const herald_message *m = &b.msgs[i];
        cr_assert_eq(m->attempts, 1, "attempts %d", m->attempts);
        cr_assert_neq(m->lease_id[0], 0, "empty lease id");
        cr_assert_eq(m->timestamp_ms, hx_clock_now(&env.clock));
        cr_assert_eq(m->content_type, HERALD_CONTENT_JSON);
        bool known = false;
        for (int k = 0; k < 5; k++) {
            if (strcmp(m->id, ids[k]) == 0) {
                known = true;
                cr_assert(hx_body_is(m, bodies[k]), "id %s has wrong body", m->id);
            }
        }
        cr_assert(known, "pulled unknown id %s", m->id);
        for (size_t j = 0; j < i; j++) {
            cr_assert_str_neq(m->id, b.msgs[j].id);
            cr_assert_str_neq(m->lease_id, b.msgs[j].lease_id);
        }
    }
    herald_queue_stats st = stats("q");
    cr_assert_eq(st.leased_count, 3);
    cr_assert_eq(st.visible_count, 2);
    cr_assert_eq(st.backlog_count, 5);
    herald_batch_deinit(&b);
}

Test(pull, leased_messages_are_not_returned_by_a_second_pull)
{
    char ids[5][HERALD_ID_SIZE];
    for (int i = 0; i < 5; i++)
        send1("q", "{}", ids[i]);
    herald_batch a = { 0 }, b = { 0 }, c = { 0 };
    cr_assert_eq(pull_n("q", 3, &a), 3);
    cr_assert_eq(pull_n("q", 10, &b), 2);
    for (size_t i = 0; i < b.n; i++)
        for (size_t j = 0; j < a.n; j++)
            cr_assert_str_neq(b.msgs[i].id, a.msgs[j].id, "message leased twice");
    cr_assert_eq(pull_n("q", 10, &c), 0, "third pull should find nothing");
    herald_batch_deinit(&a);
    herald_batch_deinit(&b);
    herald_batch_deinit(&c);
}

Test(pull, pull_on_empty_queue_returns_zero_messages_at_once)
{
    herald_batch b = { 0 };
    cr_assert_eq(herald_pull(env.store, "q", 10, HERALD_UNSET, &b), 0);
    cr_assert_eq(b.n, 0);
    herald_batch_deinit(&b);
}

Test(pull, pull_with_max_n_0_or_101_is_einval)
{
    send1("q", "{}", NULL);
    herald_batch b = { 0 };
    int rc = herald_pull(env.store, "q", 0, HERALD_UNSET, &b);
    cr_assert_eq(rc, HERALD_EINVAL, "max_n 0: got %s", herald_err_name(rc));
    cr_assert(hx_contains_ci(herald_last_error(), "max_n") ||
                  hx_contains_ci(herald_last_error(), "batch"),
              "last error '%s'", herald_last_error());
    rc = herald_pull(env.store, "q", 101, HERALD_UNSET, &b);
    cr_assert_eq(rc, HERALD_EINVAL, "max_n 101: got %s", herald_err_name(rc));
    cr_assert_eq(stats("q").leased_count, 0, "a refused pull leased something");
    cr_assert_eq(pull_n("q", 100, &b), 1);
    herald_batch_deinit(&b);
}

Test(pull, pull_with_visibility_out_of_range_is_einval)
{
    send1("q", "{}", NULL);
    herald_batch b = { 0 };
    int rc = herald_pull(env.store, "q", 1, 0, &b);
    cr_assert_eq(rc, HERALD_EINVAL, "visibility 0: got %s", herald_err_name(rc));
    rc = herald_pull(env.store, "q", 1, (int64_t)HERALD_MAX_VISIBILITY_MS + 1, &b);
    cr_assert_eq(rc, HERALD_EINVAL, "visibility 12h+1ms: got %s", herald_err_name(rc));
    cr_assert(hx_contains_ci(herald_last_error(), "visibility"), "last error '%s'",
              herald_last_error());
    cr_assert_eq(stats("q").leased_count, 0);
    cr_assert_eq(pull_v("q", 1, HERALD_MAX_VISIBILITY_MS, &b), 1);
    herald_batch_deinit(&b);
}

Test(pull, default_visibility_is_30_seconds)
{
    char id[HERALD_ID_SIZE];
    send1("q", "{}", id);
    herald_batch b = { 0 };
    cr_assert_eq(pull_n("q", 1, &b), 1);
    hx_clock_advance(&env.clock, 29 * 1000);
    cr_assert_eq(pull_n("q", 1, &b), 0, "lease expired before 30 s");
    hx_clock_advance(&env.clock, 1001);
    cr_assert_eq(pull_n("q", 1, &b), 1, "lease did not expire after 30 s");
    cr_assert_str_eq(b.msgs[0].id, id);
    herald_batch_deinit(&b);
}

Test(pull, expired_lease_makes_message_visible_again_with_attempts_plus_one)
{
    char id[HERALD_ID_SIZE];
    send1("q", "{\"v\":1}", id);
    herald_batch b = { 0 };
    cr_assert_eq(pull_v("q", 1, 5000, &b), 1);
    cr_assert_eq(b.msgs[0].attempts, 1);
    char first_lease[HERALD_LEASE_ID_SIZE];
    snprintf(first_lease, sizeof first_lease, "%s", b.msgs[0].lease_id);

    hx_clock_advance(&env.clock, 4999);
    cr_assert_eq(pull_v("q", 1, 5000, &b), 0, "visible before its lease expired");
    hx_clock_advance(&env.clock, 2);
    herald_queue_stats st = stats("q");
    cr_assert_eq(st.leased_count, 0, "an expired lease still counted as leased");
    cr_assert_eq(st.visible_count, 1);
    cr_assert_eq(pull_v("q", 1, 5000, &b), 1);
    cr_assert_str_eq(b.msgs[0].id, id);
    cr_assert_eq(b.msgs[0].attempts, 2);
    cr_assert(hx_body_is(&b.msgs[0], "{\"v\":1}"));
    cr_assert_str_neq(b.msgs[0].lease_id, first_lease, "a new delivery reuses the lease id");

    hx_clock_advance(&env.clock, 5001);
    cr_assert_eq(pull_v("q", 1, 5000, &b), 1);
    cr_assert_eq(b.msgs[0].attempts, 3);
    herald_batch_deinit(&b);
}

/* ---- ack ------------------------------------------------------------------------------------ */

/* q holds nothing any more: peek shows nothing, nothing comes back even later_ms on, and `lease`
 * (which held a message of q) now refers to nothing. what: "acked", "purged". */
static void assert_gone_for_good(const char *q, int64_t later_ms, const char *lease,
                                 const char *what)
{
    herald_batch b = { 0 };
    cr_assert_eq(peek_n(q, &b), 0, "%s message still shows in a peek", what);
    hx_clock_advance(&env.clock, later_ms);
    cr_assert_eq(pull_n(q, 10, &b), 0, "%s message came back", what);
    herald_settle_result r = ack1(q, lease);
    cr_assert_eq(r.n_acked, 0);
    cr_assert_eq(r.n_missing, 1);
    herald_batch_deinit(&b);
}

Test(pull, ack_deletes_the_message)
{
    char id[HERALD_ID_SIZE];
    send1("q", "{}", id);
    send1("q", "[]", NULL);
    herald_batch b = { 0 };
    cr_assert_eq(pull_n("q", 1, &b), 1);
    char acked_id[HERALD_ID_SIZE];
    snprintf(acked_id, sizeof acked_id, "%s", b.msgs[0].id);
    herald_settle_result r = ack1("q", b.msgs[0].lease_id);
    cr_assert_eq(r.n_acked, 1);
    cr_assert_eq(r.n_missing, 0);
    cr_assert_eq(r.n_retried, 0);
    cr_assert_eq(r.n_dead, 0);
    herald_queue_stats st = stats("q");
    cr_assert_eq(st.backlog_count, 1);
    cr_assert_eq(st.leased_count, 0);
    cr_assert_eq(st.acked_total, 1);

    /* never comes back, even long after its lease would have expired */
    hx_clock_advance(&env.clock, 3600 * 1000);
    cr_assert_eq(peek_n("q", &b), 1);
    cr_assert_str_neq(b.msgs[0].id, acked_id);
    cr_assert_eq(pull_n("q", 10, &b), 1);
    cr_assert_str_neq(b.msgs[0].id, acked_id);
    herald_batch_deinit(&b);
}

Test(pull, ack_of_several_leases_in_one_call)
{
    for (int i = 0; i < 4; i++)
        send1("q", "{}", NULL);
    herald_batch b = { 0 };
    cr_assert_eq(pull_n("q", 4, &b), 4);
    const char *ids[4];
    for (int i = 0; i < 4; i++)
        ids[i] = b.msgs[i].lease_id;
    herald_settle_result r;
    memset(&r, 0, sizeof r);
    cr_assert_eq(herald_ack(env.store, "q", ids, 4, &r), 0);
    cr_assert_eq(r.n_acked, 4);
    cr_assert_eq(stats("q").backlog_count, 0);
    cr_assert_eq(stats("q").acked_total, 4);
    /* result may be NULL */
    send1("q", "{}", NULL);
    cr_assert_eq(pull_n("q", 1, &b), 1);
    const char *one[] = { b.msgs[0].lease_id };
    cr_assert_eq(herald_ack(env.store, "q", one, 1, NULL), 0);
    cr_assert_eq(stats("q").backlog_count, 0);
    herald_batch_deinit(&b);
}

Test(pull, late_ack_after_lease_expiry_is_accepted)
{
    send1("q", "{}", NULL);
    herald_batch b = { 0 };
    cr_assert_eq(pull_v("q", 1, 1000, &b), 1);
    hx_clock_advance(&env.clock, 5000);
    herald_settle_result r = ack1("q", b.msgs[0].lease_id);
    cr_assert_eq(r.n_acked, 1, "late ack: n_acked %lld n_missing %lld n_stale %lld",
                 (long long)r.n_acked, (long long)r.n_missing, (long long)r.n_stale);
    cr_assert_eq(stats("q").backlog_count, 0);
    cr_assert_eq(pull_n("q", 1, &b), 0);
    herald_batch_deinit(&b);
}

/* Sends one message to q (its id to id), leases it for 1 s, lets that lease expire and leases it
 * again for 60 s: the first lease goes to old_lease, *b holds the redelivery. */
static void lease_twice(const char *q, char id[HERALD_ID_SIZE],
                        char old_lease[HERALD_LEASE_ID_SIZE], herald_batch *b)
{
    send1(q, "{}", id);
    cr_assert_eq(pull_v(q, 1, 1000, b), 1);
    snprintf(old_lease, HERALD_LEASE_ID_SIZE, "%s", b->msgs[0].lease_id);
    hx_clock_advance(&env.clock, 2000);
    cr_assert_eq(pull_v(q, 1, 60000, b), 1);
}

Test(pull, late_ack_after_redelivery_is_accepted_and_deletes_the_message)
{
    char id[HERALD_ID_SIZE], old_lease[HERALD_LEASE_ID_SIZE];
    herald_batch b = { 0 };
    lease_twice("q", id, old_lease, &b);
    cr_assert_str_eq(b.msgs[0].id, id);
    cr_assert_eq(b.msgs[0].attempts, 2);
    char new_lease[HERALD_LEASE_ID_SIZE];
    snprintf(new_lease, sizeof new_lease, "%s", b.msgs[0].lease_id);

    herald_settle_result r = ack1("q", old_lease);
    cr_assert_eq(r.n_acked, 1, "late ack after redelivery: n_acked %lld n_missing %lld",
                 (long long)r.n_acked, (long long)r.n_missing);
    herald_queue_stats st = stats("q");
    cr_assert_eq(st.backlog_count, 0);
    cr_assert_eq(st.acked_total, 1);
    herald_batch_deinit(&b);
    /* gone, and now the current lease refers to nothing */
    assert_gone_for_good("q", 120 * 1000, new_lease, "acked");
}

Test(pull, ack_of_unknown_but_wellformed_lease_counts_missing)
{
    send1("q", "{}", NULL);
    send1("q", "{}", NULL);
    herald_batch b = { 0 };
    cr_assert_eq(pull_n("q", 2, &b), 2);
    herald_settle_result r = ack1("q", b.msgs[0].lease_id);
    cr_assert_eq(r.n_acked, 1);
    /* the same lease again: well-formed, but its message is gone */
    const char *ids[] = { b.msgs[0].lease_id, b.msgs[1].lease_id };
    herald_settle_result r2;
    memset(&r2, 0, sizeof r2);
    cr_assert_eq(herald_ack(env.store, "q", ids, 2, &r2), 0, "%s", herald_last_error());
    cr_assert_eq(r2.n_missing, 1);
    cr_assert_eq(r2.n_acked, 1);
    cr_assert_eq(stats("q").backlog_count, 0);
    cr_assert_eq(stats("q").acked_total, 2);
    herald_batch_deinit(&b);
}

Test(pull, malformed_lease_id_is_elease_and_changes_nothing)
{
    send1("q", "{}", NULL);
    herald_batch b = { 0 };
    cr_assert_eq(pull_n("q", 1, &b), 1);
    char longid[300];
    memset(longid, 'f', sizeof longid - 1);
    longid[sizeof longid - 1] = 0;
    const char *bad[] = { "not a lease id!", "", longid };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *ids[] = { b.msgs[0].lease_id, bad[i] };
        herald_settle_result r;
        memset(&r, 0, sizeof r);
        int rc = herald_ack(env.store, "q", ids, 2, &r);
        cr_assert_eq(rc, HERALD_ELEASE, "ack with bad id %zu: got %s", i, herald_err_name(rc));
        cr_assert(hx_contains_ci(herald_last_error(), "lease"), "last error '%s'",
                  herald_last_error());
        rc = herald_retry(env.store, "q", ids, 2, 0, "x", &r);
        cr_assert_eq(rc, HERALD_ELEASE, "retry with bad id %zu: got %s", i,
                     herald_err_name(rc));
        /* the valid lease in the same call was neither acked nor retried */
        herald_queue_stats st = stats("q");
        cr_assert_eq(st.backlog_count, 1, "case %zu: message deleted", i);
        cr_assert_eq(st.leased_count, 1, "case %zu: lease released", i);
        cr_assert_eq(st.acked_total, 0);
        cr_assert_eq(st.retried_total, 0);
    }
    herald_batch c = { 0 };
    cr_assert_eq(pull_n("q", 1, &c), 0);
    herald_settle_result r = ack1("q", b.msgs[0].lease_id);
    cr_assert_eq(r.n_acked, 1);
    herald_batch_deinit(&b);
    herald_batch_deinit(&c);
}

Test(pull, null_lease_id_is_elease)
{
    send1("q", "{}", NULL);
    herald_batch b = { 0 };
    cr_assert_eq(pull_n("q", 1, &b), 1);
    const char *ids[] = { b.msgs[0].lease_id, NULL };
    int rc = herald_ack(env.store, "q", ids, 2, NULL);
    cr_assert_eq(rc, HERALD_ELEASE, "got %s", herald_err_name(rc));
    cr_assert_eq(stats("q").leased_count, 1);
    herald_batch_deinit(&b);
}

Test(pull, more_than_10000_lease_ids_is_ebatch_and_changes_nothing)
{
    send1("q", "{}", NULL);
    herald_batch b = { 0 };
    cr_assert_eq(pull_n("q", 1, &b), 1);
    enum { N = 10001 };
    const char **ids = calloc(N, sizeof *ids);
    cr_assert_not_null(ids);
    for (size_t i = 0; i < N; i++)
        ids[i] = b.msgs[0].lease_id;
    int rc = herald_ack(env.store, "q", ids, N, NULL);
    cr_assert_eq(rc, HERALD_EBATCH, "ack: got %s", herald_err_name(rc));
    cr_assert(strstr(herald_last_error(), "10000"), "last error '%s'", herald_last_error());
    rc = herald_retry(env.store, "q", ids, N, 0, "x", NULL);
    cr_assert_eq(rc, HERALD_EBATCH, "retry: got %s", herald_err_name(rc));
    cr_assert_eq(stats("q").leased_count, 1, "the lease was settled");
    cr_assert_eq(stats("q").acked_total, 0);
    free(ids);
    herald_batch_deinit(&b);
}

/* ---- retry ---------------------------------------------------------------------------------- */

Test(pull, retry_with_delay_redelivers_after_the_delay_with_attempts_plus_one)
{
    char id[HERALD_ID_SIZE];
    send1("q", "{\"r\":1}", id);
    herald_batch b = { 0 };
    cr_assert_eq(pull_n("q", 1, &b), 1);
    int64_t t_retry = hx_clock_now(&env.clock);
    herald_settle_result r = retry1("q", b.msgs[0].lease_id, 60, "try later");
    cr_assert_eq(r.n_retried, 1);
    cr_assert_eq(r.n_dead, 0);

    herald_queue_stats st = stats("q");
    cr_assert_eq(st.delayed_count, 1);
    cr_assert_eq(st.leased_count, 0);
    cr_assert_eq(st.visible_count, 0);
    cr_assert_eq(st.retried_total, 1);
    cr_assert_eq(peek_n("q", &b), 1);
    cr_assert_eq(b.msgs[0].visible_at_ms, t_retry + 60000);

    cr_assert_eq(pull_n("q", 1, &b), 0);
    hx_clock_advance(&env.clock, 59999);
    cr_assert_eq(pull_n("q", 1, &b), 0, "retried message delivered early");
    hx_clock_advance(&env.clock, 2);
    cr_assert_eq(pull_n("q", 1, &b), 1);
    cr_assert_str_eq(b.msgs[0].id, id);
    cr_assert_eq(b.msgs[0].attempts, 2);
    cr_assert(hx_body_is(&b.msgs[0], "{\"r\":1}"));
    herald_batch_deinit(&b);
}

Test(pull, retry_with_zero_delay_is_visible_at_once)
{
    send1("q", "{}", NULL);
    herald_batch b = { 0 };
    cr_assert_eq(pull_n("q", 1, &b), 1);
    retry1("q", b.msgs[0].lease_id, 0, NULL);
    cr_assert_eq(pull_n("q", 1, &b), 1);
    cr_assert_eq(b.msgs[0].attempts, 2);
    herald_batch_deinit(&b);
}

Test(pull, retry_with_unset_delay_uses_the_queue_retry_delay)
{
    create_queue("rq", HERALD_UNSET, NULL, HERALD_UNSET, 30);
    send1("rq", "{}", NULL);
    herald_batch b = { 0 };
    cr_assert_eq(pull_n("rq", 1, &b), 1);
    int64_t t = hx_clock_now(&env.clock);
    retry1("rq", b.msgs[0].lease_id, HERALD_UNSET, NULL);
    cr_assert_eq(peek_n("rq", &b), 1);
    cr_assert_eq(b.msgs[0].visible_at_ms, t + 30000);
    cr_assert_eq(pull_n("rq", 1, &b), 0);
    hx_clock_advance(&env.clock, 30001);
    cr_assert_eq(pull_n("rq", 1, &b), 1);
    herald_batch_deinit(&b);
}

Test(pull, retry_with_delay_out_of_range_is_edelay_and_changes_nothing)
{
    send1("q", "{}", NULL);
    herald_batch b = { 0 };
    cr_assert_eq(pull_n("q", 1, &b), 1);
    const char *ids[] = { b.msgs[0].lease_id };
    int rc = herald_retry(env.store, "q", ids, 1, HERALD_MAX_DELAY_S + 1, NULL, NULL);
    cr_assert_eq(rc, HERALD_EDELAY, "got %s", herald_err_name(rc));
    rc = herald_retry(env.store, "q", ids, 1, -2, NULL, NULL);
    cr_assert_eq(rc, HERALD_EDELAY, "got %s", herald_err_name(rc));
    herald_queue_stats st = stats("q");
    cr_assert_eq(st.leased_count, 1);
    cr_assert_eq(st.retried_total, 0);
    herald_settle_result r = retry1("q", b.msgs[0].lease_id, HERALD_MAX_DELAY_S, NULL);
    cr_assert_eq(r.n_retried, 1);
    herald_batch_deinit(&b);
}

Test(pull, retry_with_a_stale_lease_is_ignored)
{
    char id[HERALD_ID_SIZE], old_lease[HERALD_LEASE_ID_SIZE];
    herald_batch b = { 0 };
    lease_twice("q", id, old_lease, &b);
    herald_settle_result r = retry1("q", old_lease, 0, NULL);
    cr_assert_eq(r.n_stale, 1, "n_stale %lld n_retried %lld n_missing %lld",
                 (long long)r.n_stale, (long long)r.n_retried, (long long)r.n_missing);
    cr_assert_eq(r.n_retried, 0);
    /* still leased under the new lease */
    herald_batch c = { 0 };
    cr_assert_eq(pull_n("q", 1, &c), 0);
    cr_assert_eq(stats("q").leased_count, 1);
    cr_assert_eq(ack1("q", b.msgs[0].lease_id).n_acked, 1);
    herald_batch_deinit(&b);
    herald_batch_deinit(&c);
}

/* ---- max_retries and dead letters ----------------------------------------------------------- */

Test(pull, after_max_retries_retries_the_message_moves_to_the_auto_created_dlq)
{
    create_queue("src", 2, "dead", HERALD_UNSET, HERALD_UNSET);
    herald_queue_info qi;
    cr_assert_eq(herald_queue_get(env.store, "dead", &qi), HERALD_ENOQUEUE, "DLQ exists too early");

    char id[HERALD_ID_SIZE];
    int64_t t_sent = hx_clock_now(&env.clock);
    send1("src", "{\"poison\":true}", id);
    herald_batch b = { 0 };
    for (int attempt = 1; attempt <= 3; attempt++) {
        hx_clock_advance(&env.clock, 1000);
        cr_assert_eq(pull_n("src", 1, &b), 1, "delivery %d missing", attempt);
        cr_assert_eq(b.msgs[0].attempts, attempt);
        char err[32];
        snprintf(err, sizeof err, "boom %d", attempt);
        herald_settle_result r = retry1("src", b.msgs[0].lease_id, 0, err);
        if (attempt < 3) {
            cr_assert_eq(r.n_retried, 1, "retry %d: n_retried %lld", attempt,
                         (long long)r.n_retried);
            cr_assert_eq(r.n_dead, 0);
        } else {
            cr_assert_eq(r.n_dead, 1, "final retry: n_dead %lld n_retried %lld",
                         (long long)r.n_dead, (long long)r.n_retried);
            cr_assert_eq(r.n_retried, 0);
        }
    }
    cr_assert_eq(pull_n("src", 1, &b), 0, "delivered more than max_retries + 1 times");
    herald_queue_stats st = stats("src");
    cr_assert_eq(st.backlog_count, 0);
    cr_assert_eq(st.dead_lettered_total, 1);
    cr_assert_eq(st.retried_total, 2);

    cr_assert_eq(herald_queue_get(env.store, "dead", &qi), 0, "DLQ not created: %s",
                 herald_last_error());
    cr_assert_eq(stats("dead").backlog_count, 1);
    cr_assert_eq(peek_n("dead", &b), 1);
    const herald_message *m = &b.msgs[0];
    cr_assert_str_eq(m->id, id, "DLQ copy has a new id");
    cr_assert_eq(m->timestamp_ms, t_sent, "DLQ copy lost the send timestamp");
    cr_assert_eq(m->content_type, HERALD_CONTENT_JSON);
    cr_assert(hx_body_is(m, "{\"poison\":true}"));
    cr_assert_str_eq(m->dead_from_queue, "src");
    cr_assert_eq(m->dead_attempts, 3);
    cr_assert_not_null(m->last_error);
    cr_assert_str_eq(m->last_error, "boom 3");
    cr_assert_eq(m->lease_id[0], 0, "peek result has a lease id");

    /* and it can be pulled from the DLQ like any message */
    cr_assert_eq(pull_n("dead", 1, &b), 1);
    cr_assert_str_eq(b.msgs[0].id, id);
    cr_assert_str_eq(b.msgs[0].dead_from_queue, "src");
    herald_batch_deinit(&b);
}

Test(pull, max_retries_zero_dead_letters_on_the_first_retry)
{
    create_queue("src", 0, "dead", HERALD_UNSET, HERALD_UNSET);
    send1("src", "{}", NULL);
    herald_batch b = { 0 };
    cr_assert_eq(pull_n("src", 1, &b), 1);
    herald_settle_result r = retry1("src", b.msgs[0].lease_id, 0, NULL);
    cr_assert_eq(r.n_dead, 1);
    cr_assert_eq(stats("src").backlog_count, 0);
    cr_assert_eq(stats("dead").backlog_count, 1);
    herald_batch_deinit(&b);
}

Test(pull, without_dlq_an_exhausted_message_is_deleted)
{
    create_queue("src", 1, NULL, HERALD_UNSET, HERALD_UNSET);
    send1("src", "{}", NULL);
    herald_batch b = { 0 };
    cr_assert_eq(pull_n("src", 1, &b), 1);
    cr_assert_eq(retry1("src", b.msgs[0].lease_id, 0, "e1").n_retried, 1);
    cr_assert_eq(pull_n("src", 1, &b), 1);
    cr_assert_eq(b.msgs[0].attempts, 2);
    herald_settle_result r = retry1("src", b.msgs[0].lease_id, 0, "e2");
    cr_assert_eq(r.n_dead, 1);
    herald_queue_stats st = stats("src");
    cr_assert_eq(st.backlog_count, 0);
    cr_assert_eq(st.deleted_total, 1);
    cr_assert_eq(pull_n("src", 1, &b), 0);
    cr_assert_eq(peek_n("src", &b), 0);
    /* no queue list entry appeared besides ours */
    herald_queue_info *list = NULL;
    size_t n = 0;
    cr_assert_eq(herald_queue_list(env.store, &list, &n), 0);
    cr_assert_eq(n, 2, "queues: %zu", n); /* "q" from setup and "src" */
    herald_free(list);
    herald_batch_deinit(&b);
}

Test(pull, lease_expiring_max_retries_plus_one_times_dead_letters_on_next_pull)
{
    create_queue("src", 2, "dead", HERALD_UNSET, HERALD_UNSET);
    char id[HERALD_ID_SIZE];
    int64_t t_sent = hx_clock_now(&env.clock);
    send1("src", "\"lost\"", id);
    herald_batch b = { 0 };
    for (int attempt = 1; attempt <= 3; attempt++) {
        cr_assert_eq(pull_v("src", 1, 1000, &b), 1, "delivery %d missing", attempt);
        cr_assert_eq(b.msgs[0].attempts, attempt);
        hx_clock_advance(&env.clock, 1001);
    }
    cr_assert_eq(pull_v("src", 1, 1000, &b), 0, "delivered a 4th time with max_retries 2");
    herald_queue_stats st = stats("src");
    cr_assert_eq(st.backlog_count, 0);
    cr_assert_eq(st.dead_lettered_total, 1);

    cr_assert_eq(peek_n("dead", &b), 1);
    cr_assert_str_eq(b.msgs[0].id, id);
    cr_assert_eq(b.msgs[0].timestamp_ms, t_sent);
    cr_assert(hx_body_is(&b.msgs[0], "\"lost\""));
    cr_assert_str_eq(b.msgs[0].dead_from_queue, "src");
    cr_assert_eq(b.msgs[0].dead_attempts, 3);
    herald_batch_deinit(&b);
}

/* ---- retention ------------------------------------------------------------------------------ */

Test(pull, message_older_than_retention_is_gone_from_pull_peek_and_stats)
{
    create_queue("rq", HERALD_UNSET, NULL, 60, HERALD_UNSET);
    send1("rq", "{}", NULL);
    herald_batch b = { 0 };
    hx_clock_advance(&env.clock, 59 * 1000);
    cr_assert_eq(peek_n("rq", &b), 1, "expired before its retention period");
    cr_assert_eq(stats("rq").backlog_count, 1);
    hx_clock_advance(&env.clock, 2 * 1000);
    cr_assert_eq(stats("rq").backlog_count, 0, "expired message still counted");
    cr_assert_eq(peek_n("rq", &b), 0, "expired message still peekable");
    cr_assert_eq(pull_n("rq", 10, &b), 0, "expired message delivered");
    herald_queue_stats st = stats("rq");
    cr_assert_eq(st.backlog_count, 0);
    cr_assert_eq(st.backlog_bytes, 0);
    cr_assert_eq(st.visible_count, 0);
    cr_assert_eq(st.oldest_message_timestamp_ms, 0);
    cr_assert_eq(st.expired_total, 1);
    herald_batch_deinit(&b);
}

Test(pull, retention_counts_from_when_a_delayed_message_became_visible)
{
    create_queue("rq", HERALD_UNSET, NULL, 60, HERALD_UNSET);
    char now_id[HERALD_ID_SIZE], later_id[HERALD_ID_SIZE];
    send_d("rq", "\"now\"", 0, now_id);
    send_d("rq", "\"later\"", 120, later_id);
    hx_clock_advance(&env.clock, 121 * 1000);
    /* "now" is 121 s old; "later" has been visible for 1 s */
    herald_batch b = { 0 };
    cr_assert_eq(peek_n("rq", &b), 1);
    cr_assert_str_eq(b.msgs[0].id, later_id);
    cr_assert_eq(pull_n("rq", 10, &b), 1);
    cr_assert_str_eq(b.msgs[0].id, later_id);
    ack1("rq", b.msgs[0].lease_id);
    cr_assert_eq(stats("rq").backlog_count, 0);
    herald_batch_deinit(&b);
}

Test(pull, retention_applies_while_the_queue_is_paused)
{
    create_queue("rq", HERALD_UNSET, NULL, 60, HERALD_UNSET);
    send1("rq", "{}", NULL);
    cr_assert_eq(herald_queue_pause(env.store, "rq"), 0);
    hx_clock_advance(&env.clock, 61 * 1000);
    cr_assert_eq(stats("rq").backlog_count, 0);
    herald_batch b = { 0 };
    cr_assert_eq(peek_n("rq", &b), 0);
    cr_assert_eq(herald_queue_resume(env.store, "rq"), 0);
    cr_assert_eq(pull_n("rq", 10, &b), 0);
    herald_batch_deinit(&b);
}

/* ---- pause / resume / purge ----------------------------------------------------------------- */

Test(pull, paused_queue_refuses_pull_accepts_send_and_resume_delivers)
{
    cr_assert_eq(herald_queue_pause(env.store, "q"), 0);
    char id[HERALD_ID_SIZE];
    send1("q", "{\"while\":\"paused\"}", id);
    cr_assert_eq(stats("q").backlog_count, 1);
    herald_batch b = { 0 };
    int rc = herald_pull(env.store, "q", 10, HERALD_UNSET, &b);
    cr_assert_eq(rc, HERALD_EPAUSED, "got %s", herald_err_name(rc));
    cr_assert(hx_contains_ci(herald_last_error(), "paus"), "last error '%s'", herald_last_error());
    cr_assert_eq(stats("q").leased_count, 0);

    cr_assert_eq(herald_queue_resume(env.store, "q"), 0);
    cr_assert_eq(pull_n("q", 10, &b), 1);
    cr_assert_str_eq(b.msgs[0].id, id);
    cr_assert_eq(b.msgs[0].attempts, 1);
    herald_batch_deinit(&b);
}

Test(pull, ack_still_works_on_a_paused_queue)
{
    send1("q", "{}", NULL);
    herald_batch b = { 0 };
    cr_assert_eq(pull_n("q", 1, &b), 1);
    cr_assert_eq(herald_queue_pause(env.store, "q"), 0);
    cr_assert_eq(ack1("q", b.msgs[0].lease_id).n_acked, 1);
    cr_assert_eq(stats("q").backlog_count, 0);
    herald_batch_deinit(&b);
}

Test(pull, purge_removes_visible_delayed_and_leased_messages)
{
    send1("q", "\"visible\"", NULL);
    send_d("q", "\"delayed\"", 100, NULL);
    send1("q", "\"leased\"", NULL);
    herald_batch b = { 0 };
    cr_assert_eq(pull_n("q", 1, &b), 1);
    char lease[HERALD_LEASE_ID_SIZE];
    snprintf(lease, sizeof lease, "%s", b.msgs[0].lease_id);
    herald_queue_stats st = stats("q");
    cr_assert_eq(st.backlog_count, 3);
    cr_assert_eq(st.leased_count, 1);
    cr_assert_eq(st.delayed_count, 1);

    int64_t n = -1;
    cr_assert_eq(herald_queue_purge(env.store, "q", &n), 0);
    cr_assert_eq(n, 3);
    st = stats("q");
    cr_assert_eq(st.backlog_count, 0);
    cr_assert_eq(st.backlog_bytes, 0);
    cr_assert_eq(st.leased_count, 0);
    cr_assert_eq(st.delayed_count, 0);
    cr_assert_eq(st.visible_count, 0);
    herald_batch_deinit(&b);
    assert_gone_for_good("q", 200 * 1000, lease, "purged");
}

/* ---- stats ---------------------------------------------------------------------------------- */

Test(pull, stats_report_backlog_states_oldest_and_counters)
{
    int64_t t0 = hx_clock_now(&env.clock);
    send1("q", "\"aa\"", NULL); /* 4 bytes */
    hx_clock_advance(&env.clock, 1000);
    send1("q", "\"bbbb\"", NULL); /* 6 bytes */
    hx_clock_advance(&env.clock, 1000);
    send1("q", "\"cccccc\"", NULL); /* 8 bytes */
    send_d("q", "[1]", 500, NULL); /* 3 bytes, delayed */

    herald_queue_stats st = stats("q");
    cr_assert_eq(st.backlog_count, 4);
    cr_assert_eq(st.backlog_bytes, 21);
    cr_assert_eq(st.oldest_message_timestamp_ms, t0);
    cr_assert_eq(st.visible_count, 3);
    cr_assert_eq(st.delayed_count, 1);
    cr_assert_eq(st.leased_count, 0);
    cr_assert_eq(st.sent_total, 4);

    herald_batch b = { 0 };
    cr_assert_eq(pull_n("q", 2, &b), 2);
    st = stats("q");
    cr_assert_eq(st.leased_count, 2);
    cr_assert_eq(st.visible_count, 1);
    cr_assert_eq(st.delayed_count, 1);
    cr_assert_eq(st.backlog_count, 4);

    int64_t acked_bytes = (int64_t)b.msgs[0].body_len;
    int64_t acked_ts = b.msgs[0].timestamp_ms;
    ack1("q", b.msgs[0].lease_id);
    retry1("q", b.msgs[1].lease_id, 10, NULL);
    st = stats("q");
    cr_assert_eq(st.backlog_count, 3);
    cr_assert_eq(st.backlog_bytes, 21 - acked_bytes);
    cr_assert_eq(st.leased_count, 0);
    cr_assert_eq(st.delayed_count, 2);
    cr_assert_eq(st.visible_count, 1);
    cr_assert_eq(st.acked_total, 1);
    cr_assert_eq(st.retried_total, 1);
    cr_assert_eq(st.sent_total, 4);
    cr_assert_eq(st.dead_lettered_total, 0);
    cr_assert_eq(st.deleted_total, 0);
    cr_assert_eq(st.expired_total, 0);
    if (acked_ts == t0)
        cr_assert_gt(st.oldest_message_timestamp_ms, t0);
    else
        cr_assert_eq(st.oldest_message_timestamp_ms, t0);

    /* drain everything: oldest goes back to 0 */
    int64_t n;
    cr_assert_eq(herald_queue_purge(env.store, "q", &n), 0);
    st = stats("q");
    cr_assert_eq(st.oldest_message_timestamp_ms, 0);
    cr_assert_eq(st.sent_total, 4, "purge changed sent_total");
    herald_batch_deinit(&b);
}

/* ---- peek ----------------------------------------------------------------------------------- */

Test(pull, peek_does_not_lease_or_change_attempts)
{
    char id[HERALD_ID_SIZE];
    send1("q", "{\"p\":1}", id);
    herald_batch b = { 0 };
    cr_assert_eq(peek_n("q", &b), 1);
    cr_assert_str_eq(b.msgs[0].id, id);
    cr_assert_eq(b.msgs[0].lease_id[0], 0, "peek returned a lease id");
    int attempts0 = b.msgs[0].attempts;
    cr_assert(hx_body_is(&b.msgs[0], "{\"p\":1}"));
    cr_assert_eq(b.msgs[0].visible_at_ms, hx_clock_now(&env.clock));
    cr_assert_eq(peek_n("q", &b), 1);
    cr_assert_eq(b.msgs[0].attempts, attempts0);
    herald_queue_stats st = stats("q");
    cr_assert_eq(st.leased_count, 0);
    cr_assert_eq(st.visible_count, 1);

    cr_assert_eq(pull_n("q", 1, &b), 1, "peek hid the message");
    cr_assert_eq(b.msgs[0].attempts, 1, "peek counted as a delivery");
    /* peek shows leased messages too, without taking them */
    herald_batch c = { 0 };
    cr_assert_eq(peek_n("q", &c), 1);
    cr_assert_eq(c.msgs[0].attempts, 1);
    cr_assert_eq(c.msgs[0].lease_id[0], 0);
    cr_assert_eq(stats("q").leased_count, 1);
    cr_assert_eq(ack1("q", b.msgs[0].lease_id).n_acked, 1, "peek disturbed the lease");
    herald_batch_deinit(&b);
    herald_batch_deinit(&c);
}

Test(pull, peek_shows_delayed_messages_with_their_visible_time)
{
    int64_t t0 = hx_clock_now(&env.clock);
    send_d("q", "1", 42, NULL);
    herald_batch b = { 0 };
    cr_assert_eq(peek_n("q", &b), 1);
    cr_assert_eq(b.msgs[0].visible_at_ms, t0 + 42000);
    herald_batch_deinit(&b);
}

Test(pull, peek_with_max_n_0_or_101_is_einval)
{
    herald_batch b = { 0 };
    cr_assert_eq(herald_peek(env.store, "q", 0, &b), HERALD_EINVAL);
    cr_assert_eq(herald_peek(env.store, "q", 101, &b), HERALD_EINVAL);
}

Test(pull, peek_returns_at_most_max_n)
{
    for (int i = 0; i < 5; i++)
        send1("q", "{}", NULL);
    herald_batch b = { 0 };
    cr_assert_eq(herald_peek(env.store, "q", 2, &b), 0);
    cr_assert_eq(b.n, 2);
    herald_batch_deinit(&b);
}

Test(pull, batch_deinit_empties_and_tolerates_null_and_empty)
{
    herald_batch_deinit(NULL);
    herald_batch e = { 0 };
    herald_batch_deinit(&e);
    send1("q", "{}", NULL);
    herald_batch b = { 0 };
    cr_assert_eq(pull_n("q", 1, &b), 1);
    herald_batch_deinit(&b);
    cr_assert_eq(b.n, 0);
    herald_batch_deinit(&b);
}

/* ---- a settled lease never reaches another message (seq reuse) ------------------------------ */

Test(pull, a_repeated_ack_never_deletes_a_message_sent_after_the_first_ack)
{
    send1("q", "\"A\"", NULL);
    herald_batch a = { 0 };
    cr_assert_eq(pull_n("q", 1, &a), 1);
    char lease_a[HERALD_LEASE_ID_SIZE];
    memcpy(lease_a, a.msgs[0].lease_id, sizeof lease_a);
    herald_batch_deinit(&a);
    cr_assert_eq(ack1("q", lease_a).n_acked, 1);

    char id_b[HERALD_ID_SIZE];
    send1("q", "\"B\"", id_b); /* may reuse A's storage slot */
    herald_settle_result r = ack1("q", lease_a);
    cr_assert_eq(r.n_acked, 0, "A's old lease acked %lld message(s)", (long long)r.n_acked);
    cr_assert_eq(r.n_missing, 1);
    cr_assert_eq(stats("q").backlog_count, 1, "B was deleted by A's old lease");

    /* B leased now: A's old lease still reaches nothing */
    herald_batch b = { 0 };
    cr_assert_eq(pull_n("q", 1, &b), 1);
    cr_assert_str_eq(b.msgs[0].id, id_b);
    r = ack1("q", lease_a);
    cr_assert_eq(r.n_acked, 0, "A's old lease acked leased B");
    cr_assert_eq(r.n_missing, 1);
    herald_queue_stats st = stats("q");
    cr_assert_eq(st.backlog_count, 1);
    cr_assert_eq(st.leased_count, 1);
    cr_assert_eq(st.acked_total, 1);
    cr_assert_eq(ack1("q", b.msgs[0].lease_id).n_acked, 1, "B's own lease still acks it");
    herald_batch_deinit(&b);
}

/* The mark of handed-out seqs is kept in the store: after a reopen (another process, or this
 * one later) the seq of a deleted newest message is still not handed out again. Each of the
 * three messages is the newest when it is acked, in a transaction of its own. */
Test(pull, a_seq_is_not_reused_after_the_store_is_reopened)
{
    char old_leases[3][HERALD_LEASE_ID_SIZE];
    for (int i = 0; i < 3; i++) {
        send1("q", "\"old\"", NULL);
        herald_batch a = { 0 };
        cr_assert_eq(pull_n("q", 1, &a), 1);
        memcpy(old_leases[i], a.msgs[0].lease_id, sizeof old_leases[i]);
        herald_batch_deinit(&a);
        cr_assert_eq(ack1("q", old_leases[i]).n_acked, 1);
        hx_env_close(&env);
        hx_env_reopen(&env);
    }
    char id_b[HERALD_ID_SIZE];
    send1("q", "\"B\"", id_b);
    for (int i = 0; i < 3; i++) {
        herald_settle_result r = ack1("q", old_leases[i]);
        cr_assert_eq(r.n_acked, 0, "an old lease acked the message sent after a reopen");
    }
    cr_assert_eq(stats("q").backlog_count, 1, "B was deleted by an old lease");
}

/* ---- herald_message_get --------------------------------------------------------------------- */

Test(pull, message_get_finds_a_message_in_any_state_by_id_and_not_elsewhere)
{
    char id[HERALD_ID_SIZE], other[HERALD_ID_SIZE];
    send1("q", "{\"k\":1}", id);
    create_queue("q2", HERALD_UNSET, NULL, HERALD_UNSET, HERALD_UNSET);
    send1("q2", "{}", other);
    herald_batch b = { 0 };
    cr_assert_eq(herald_message_get(env.store, "q", id, &b), 0, "%s", herald_last_error());
    cr_assert_eq(b.n, 1);
    cr_assert_str_eq(b.msgs[0].id, id);
    cr_assert(hx_body_is(&b.msgs[0], "{\"k\":1}"));
    cr_assert_eq(stats("q").leased_count, 0, "message_get leased the message");
    herald_batch_deinit(&b);

    /* leased, and not leased by message_get */
    herald_batch p = { 0 };
    cr_assert_eq(pull_n("q", 1, &p), 1);
    cr_assert_eq(herald_message_get(env.store, "q", id, &b), 0, "%s", herald_last_error());
    cr_assert_eq(b.n, 1, "a leased message is found");
    cr_assert_eq(b.msgs[0].attempts, 1);
    herald_batch_deinit(&b);
    herald_batch_deinit(&p);
    cr_assert_eq(stats("q").leased_count, 1);

    struct {
        const char *queue, *id;
    } absent[] = {
        { "q", other },                                 /* in another queue */
        { "q", "01a21a8a-86ce-7049-952d-70f1da8c7c28" }, /* no such message */
    };
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++) {
        herald_batch n = { 0 };
        int rc = herald_message_get(env.store, absent[i].queue, absent[i].id, &n);
        cr_assert_eq(rc, 0, "case %zu: %s: %s", i, herald_err_name(rc), herald_last_error());
        cr_assert_eq(n.n, 0, "case %zu: found %zu", i, n.n);
        herald_batch_deinit(&n);
    }
    herald_batch u = { 0 };
    cr_assert_eq(herald_message_get(env.store, "nope", id, &u), HERALD_ENOQUEUE);
    cr_assert(hx_mentions(herald_last_error(), "nope"), "%s", herald_last_error());
    herald_batch_deinit(&u);
}
