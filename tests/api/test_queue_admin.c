// SPDX-License-Identifier: MIT
/*
 * test_queue_admin.c - queue administration through include/herald.h: create / get / list /
 * update / delete / purge / pause / resume, the documented defaults, the validation of names and
 * settings (the error names the problem and a failed call changes nothing), and
 * HERALD_ENOQUEUE from every operation on a queue that does not exist.
 * Each test owns a temp dir and a store on a fake clock (tests/support).
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
    hx_env_setup(&env, 0);
}

static void teardown(void)
{
    hx_env_teardown(&env);
}

TestSuite(queue_admin, .init = setup, .fini = teardown, .timeout = 30);

/* ---- helpers ------------------------------------------------------------------------------- */

static herald_queue_info get_info(const char *name)
{
    herald_queue_info qi;
    memset(&qi, 0, sizeof qi);
    int rc = herald_queue_get(env.store, name, &qi);
    cr_assert_eq(rc, 0, "herald_queue_get(%s) = %s: %s", name, herald_err_name(rc),
                 herald_last_error());
    return qi;
}

static herald_queue_stats get_stats(const char *name)
{
    return hx_stats(env.store, name);
}

static size_t queue_count(void)
{
    herald_queue_info *list = NULL;
    size_t n = 99;
    int rc = herald_queue_list(env.store, &list, &n);
    cr_assert_eq(rc, 0, "herald_queue_list = %s: %s", herald_err_name(rc), herald_last_error());
    herald_free(list);
    return n;
}

static void create_ok(const char *name, const herald_queue_settings *st)
{
    hx_create_queue(env.store, name, st);
}

static void send_json(const char *q, const char *json, int64_t delay_s)
{
    hx_send_json(env.store, q, json, delay_s, NULL);
}

static void assert_same_settings(herald_queue_info now, const herald_queue_info *b)
{
    const herald_queue_info *a = &now;
    cr_assert_str_eq(a->name, b->name);
    cr_assert_str_eq(a->queue_id, b->queue_id);
    cr_assert_eq(a->delivery_delay_s, b->delivery_delay_s);
    cr_assert_eq(a->message_retention_period_s, b->message_retention_period_s);
    cr_assert_eq(a->max_message_bytes, b->max_message_bytes);
    cr_assert_eq(a->max_retries, b->max_retries);
    cr_assert_eq(a->retry_delay_s, b->retry_delay_s);
    cr_assert_str_eq(a->dead_letter_queue, b->dead_letter_queue);
    cr_assert_eq(a->is_paused, b->is_paused);
    cr_assert_eq(a->created_ms, b->created_ms);
    cr_assert_eq(a->modified_ms, b->modified_ms);
}

/* The documented defaults, as settings. */
static const herald_queue_settings DEFAULTS = {
    .delivery_delay_s = 0, .message_retention_period_s = 345600, .max_message_bytes = 128000,
    .max_retries = 3, .retry_delay_s = 0, .dead_letter_queue = "",
};

/* Settings with every field given (dlq NULL: left unset). */
static herald_queue_settings settings(int64_t delay_s, int64_t retention_s, int64_t max_bytes,
                                      int64_t max_retries, int64_t retry_delay_s, const char *dlq)
{
    return (herald_queue_settings){ .delivery_delay_s = delay_s,
                                    .message_retention_period_s = retention_s,
                                    .max_message_bytes = max_bytes,
                                    .max_retries = max_retries,
                                    .retry_delay_s = retry_delay_s,
                                    .dead_letter_queue = dlq };
}

/* The six settings of qi are those of want (a NULL dead_letter_queue: none, ""). */
static void assert_info_has(herald_queue_info qi, herald_queue_settings want)
{
    cr_assert_eq(qi.delivery_delay_s, want.delivery_delay_s);
    cr_assert_eq(qi.message_retention_period_s, want.message_retention_period_s);
    cr_assert_eq(qi.max_message_bytes, want.max_message_bytes);
    cr_assert_eq(qi.max_retries, want.max_retries);
    cr_assert_eq(qi.retry_delay_s, want.retry_delay_s);
    cr_assert_str_eq(qi.dead_letter_queue, want.dead_letter_queue ? want.dead_letter_queue : "");
}

/* ---- create / get: defaults and stored values ----------------------------------------------- */

Test(queue_admin, create_with_null_settings_applies_documented_defaults)
{
    int64_t now = hx_clock_now(&env.clock);
    create_ok("orders", NULL);
    herald_queue_info qi = get_info("orders");
    cr_assert_str_eq(qi.name, "orders");
    cr_assert(hx_is_uuid(qi.queue_id), "queue_id '%s' is not a UUID", qi.queue_id);
    assert_info_has(qi, DEFAULTS);
    cr_assert_eq(qi.message_retention_period_s, HERALD_DEFAULT_RETENTION_S);
    cr_assert_not(qi.is_paused);
    cr_assert_eq(qi.created_ms, now, "created_ms %lld, clock %lld", (long long)qi.created_ms,
                 (long long)now);
}

Test(queue_admin, create_with_all_unset_settings_equals_defaults)
{
    herald_queue_settings st;
    herald_queue_settings_init(&st);
    cr_assert_eq(st.delivery_delay_s, HERALD_UNSET);
    cr_assert_eq(st.message_retention_period_s, HERALD_UNSET);
    cr_assert_eq(st.max_message_bytes, HERALD_UNSET);
    cr_assert_eq(st.max_retries, HERALD_UNSET);
    cr_assert_eq(st.retry_delay_s, HERALD_UNSET);
    cr_assert_null(st.dead_letter_queue);
    create_ok("q1", &st);
    assert_info_has(get_info("q1"), DEFAULTS);
}

Test(queue_admin, create_stores_every_given_setting)
{
    herald_queue_settings st = settings(10, 3600, 5000, 7, 20, "orders-dlq");
    create_ok("orders", &st);
    herald_queue_info qi = get_info("orders");
    assert_info_has(qi, st);
    cr_assert_not(qi.is_paused);
}

Test(queue_admin, create_accepts_boundary_values)
{
    char name63[64];
    memset(name63, 'a', 63);
    name63[63] = 0;
    create_ok(name63, NULL);
    cr_assert_str_eq(get_info(name63).name, name63);

    /* the lowest and the highest value of every setting */
    herald_queue_settings lo = settings(0, 60, 1, 0, 0, NULL);
    create_ok("lo", &lo);
    assert_info_has(get_info("lo"), lo);

    herald_queue_settings hi = settings(HERALD_MAX_DELAY_S, HERALD_MAX_RETENTION_S, 1048576, 100,
                                        HERALD_MAX_DELAY_S, NULL);
    create_ok("hi", &hi);
    assert_info_has(get_info("hi"), settings(365LL * 86400, 365LL * 86400, 1048576, 100,
                                             365LL * 86400, NULL));
}

Test(queue_admin, names_may_use_letters_digits_underscore_and_dash)
{
    create_ok("A-b_9", NULL);
    create_ok("9lives", NULL);
    cr_assert_str_eq(get_info("A-b_9").name, "A-b_9");
    cr_assert_str_eq(get_info("9lives").name, "9lives");
}

Test(queue_admin, queue_ids_are_distinct_uuids_and_stable)
{
    create_ok("a", NULL);
    create_ok("b", NULL);
    herald_queue_info a1 = get_info("a"), b1 = get_info("b");
    cr_assert(hx_is_uuid(a1.queue_id));
    cr_assert(hx_is_uuid(b1.queue_id));
    cr_assert_str_neq(a1.queue_id, b1.queue_id);
    herald_queue_settings st;
    herald_queue_settings_init(&st);
    st.max_retries = 9;
    cr_assert_eq(herald_queue_update(env.store, "a", &st), 0);
    cr_assert_str_eq(get_info("a").queue_id, a1.queue_id);
}

Test(queue_admin, new_queue_has_empty_stats)
{
    create_ok("q", NULL);
    herald_queue_stats st = get_stats("q");
    cr_assert_eq(st.backlog_count, 0);
    cr_assert_eq(st.backlog_bytes, 0);
    cr_assert_eq(st.oldest_message_timestamp_ms, 0);
    cr_assert_eq(st.visible_count, 0);
    cr_assert_eq(st.delayed_count, 0);
    cr_assert_eq(st.leased_count, 0);
    cr_assert_eq(st.sent_total, 0);
    cr_assert_eq(st.acked_total, 0);
    cr_assert_eq(st.retried_total, 0);
    cr_assert_eq(st.dead_lettered_total, 0);
    cr_assert_eq(st.deleted_total, 0);
    cr_assert_eq(st.expired_total, 0);
}

/* ---- list ---------------------------------------------------------------------------------- */

Test(queue_admin, list_of_empty_store_is_empty)
{
    cr_assert_eq(queue_count(), 0);
}

Test(queue_admin, list_returns_every_queue_sorted_by_name)
{
    create_ok("charlie", NULL);
    create_ok("alpha", NULL);
    herald_queue_settings st;
    herald_queue_settings_init(&st);
    st.max_retries = 5;
    create_ok("bravo", &st);

    herald_queue_info *list = NULL;
    size_t n = 0;
    cr_assert_eq(herald_queue_list(env.store, &list, &n), 0);
    cr_assert_eq(n, 3);
    cr_assert_not_null(list);
    cr_assert_str_eq(list[0].name, "alpha");
    cr_assert_str_eq(list[1].name, "bravo");
    cr_assert_str_eq(list[2].name, "charlie");
    cr_assert_eq(list[1].max_retries, 5);
    cr_assert_eq(list[0].max_retries, 3);
    herald_queue_info b = get_info("bravo");
    cr_assert_str_eq(list[1].queue_id, b.queue_id);
    herald_free(list);
}

/* ---- update -------------------------------------------------------------------------------- */

Test(queue_admin, update_changes_only_the_given_fields_and_bumps_modified)
{
    herald_queue_settings st;
    herald_queue_settings_init(&st);
    st.delivery_delay_s = 5;
    st.retry_delay_s = 7;
    st.dead_letter_queue = "dlq";
    create_ok("q", &st);
    herald_queue_info before = get_info("q");

    hx_clock_advance(&env.clock, 5000);
    herald_queue_settings up;
    herald_queue_settings_init(&up);
    up.max_retries = 9;
    up.message_retention_period_s = 7200;
    cr_assert_eq(herald_queue_update(env.store, "q", &up), 0, "%s", herald_last_error());

    herald_queue_info after = get_info("q");
    assert_info_has(after, settings(5, 7200, 128000, 9, 7, "dlq"));
    cr_assert_str_eq(after.queue_id, before.queue_id);
    cr_assert_eq(after.created_ms, before.created_ms);
    cr_assert_eq(after.modified_ms, hx_clock_now(&env.clock), "modified_ms %lld, clock %lld",
                 (long long)after.modified_ms, (long long)hx_clock_now(&env.clock));
}

Test(queue_admin, update_dead_letter_queue_null_keeps_and_empty_string_clears)
{
    herald_queue_settings st;
    herald_queue_settings_init(&st);
    st.dead_letter_queue = "dlq";
    create_ok("q", &st);

    herald_queue_settings up;
    herald_queue_settings_init(&up); /* dead_letter_queue NULL: unchanged */
    up.max_retries = 1;
    cr_assert_eq(herald_queue_update(env.store, "q", &up), 0);
    cr_assert_str_eq(get_info("q").dead_letter_queue, "dlq");

    up.dead_letter_queue = "other";
    cr_assert_eq(herald_queue_update(env.store, "q", &up), 0);
    cr_assert_str_eq(get_info("q").dead_letter_queue, "other");

    up.dead_letter_queue = "";
    cr_assert_eq(herald_queue_update(env.store, "q", &up), 0);
    cr_assert_str_eq(get_info("q").dead_letter_queue, "");
}

Test(queue_admin, update_with_one_bad_setting_is_einval_and_changes_nothing)
{
    create_ok("q", NULL);
    herald_queue_info before = get_info("q");
    hx_clock_advance(&env.clock, 1000);

    herald_queue_settings up;
    herald_queue_settings_init(&up);
    up.max_retries = 5;                 /* fine */
    up.delivery_delay_s = 10;           /* fine */
    up.message_retention_period_s = 10; /* below 60 s */
    int rc = herald_queue_update(env.store, "q", &up);
    cr_assert_eq(rc, HERALD_EINVAL, "got %s", herald_err_name(rc));
    cr_assert(hx_mentions(herald_last_error(), "retention"), "last error '%s' does not name the "
              "retention setting", herald_last_error());

    assert_same_settings(get_info("q"), &before);
}

/* ---- delete / purge / pause / resume -------------------------------------------------------- */

Test(queue_admin, delete_removes_the_queue_and_its_messages)
{
    create_ok("q", NULL);
    create_ok("keep", NULL);
    herald_queue_info old = get_info("q");
    send_json("q", "{\"n\":1}", HERALD_UNSET);
    send_json("q", "{\"n\":2}", HERALD_UNSET);
    send_json("keep", "{\"n\":3}", HERALD_UNSET);

    cr_assert_eq(herald_queue_delete(env.store, "q"), 0, "%s", herald_last_error());
    herald_queue_info qi;
    cr_assert_eq(herald_queue_get(env.store, "q", &qi), HERALD_ENOQUEUE);
    cr_assert_eq(queue_count(), 1);

    /* a new queue of the same name starts empty and has a new id */
    create_ok("q", NULL);
    herald_queue_stats st = get_stats("q");
    cr_assert_eq(st.backlog_count, 0);
    cr_assert_eq(st.sent_total, 0);
    herald_batch b = { 0 };
    cr_assert_eq(herald_peek(env.store, "q", 10, &b), 0);
    cr_assert_eq(b.n, 0);
    herald_batch_deinit(&b);
    cr_assert_str_neq(get_info("q").queue_id, old.queue_id);

    /* the other queue is untouched */
    cr_assert_eq(get_stats("keep").backlog_count, 1);
}

Test(queue_admin, delete_twice_is_enoqueue)
{
    create_ok("q", NULL);
    cr_assert_eq(herald_queue_delete(env.store, "q"), 0);
    cr_assert_eq(herald_queue_delete(env.store, "q"), HERALD_ENOQUEUE);
}

Test(queue_admin, purge_deletes_every_message_and_reports_the_count)
{
    create_ok("q", NULL);
    send_json("q", "1", HERALD_UNSET);
    send_json("q", "2", HERALD_UNSET);
    send_json("q", "3", 600);
    int64_t n = -1;
    cr_assert_eq(herald_queue_purge(env.store, "q", &n), 0, "%s", herald_last_error());
    cr_assert_eq(n, 3);
    herald_queue_stats st = get_stats("q");
    cr_assert_eq(st.backlog_count, 0);
    cr_assert_eq(st.backlog_bytes, 0);
    cr_assert_eq(st.delayed_count, 0);
    /* the queue itself stays */
    get_info("q");
    /* n_deleted may be NULL */
    send_json("q", "4", HERALD_UNSET);
    cr_assert_eq(herald_queue_purge(env.store, "q", NULL), 0);
    cr_assert_eq(get_stats("q").backlog_count, 0);
}

Test(queue_admin, purge_of_empty_queue_deletes_zero)
{
    create_ok("q", NULL);
    int64_t n = -1;
    cr_assert_eq(herald_queue_purge(env.store, "q", &n), 0);
    cr_assert_eq(n, 0);
}

Test(queue_admin, pause_and_resume_toggle_is_paused)
{
    create_ok("q", NULL);
    cr_assert_not(get_info("q").is_paused);
    cr_assert_eq(herald_queue_pause(env.store, "q"), 0, "%s", herald_last_error());
    cr_assert(get_info("q").is_paused);
    cr_assert_eq(herald_queue_resume(env.store, "q"), 0, "%s", herald_last_error());
    cr_assert_not(get_info("q").is_paused);
}

Test(queue_admin, pause_keeps_settings)
{
    herald_queue_settings st;
    herald_queue_settings_init(&st);
    st.max_retries = 8;
    create_ok("q", &st);
    cr_assert_eq(herald_queue_pause(env.store, "q"), 0);
    cr_assert_eq(get_info("q").max_retries, 8);
    cr_assert_eq(herald_queue_resume(env.store, "q"), 0);
    cr_assert_eq(get_info("q").max_retries, 8);
}

/* ---- bad input ------------------------------------------------------------------------------ */

Test(queue_admin, create_rejects_bad_names_with_einval_and_creates_nothing)
{
    char name64[65];
    memset(name64, 'a', 64);
    name64[64] = 0;
    const char *bad[] = { "", name64, "a b", "../x", "a/b", "-abc", "_abc", "a.b", "q\n",
                          "ö" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = herald_queue_create(env.store, bad[i], NULL);
        cr_expect_eq(rc, HERALD_EINVAL, "name '%s': got %s (%d)", bad[i], herald_err_name(rc),
                     rc);
        const char *e = herald_last_error();
        cr_assert_not_null(e);
        cr_expect(hx_mentions(e, "name"), "name '%s': last error '%s' does not mention the name",
                  bad[i], e);
    }
    cr_assert_eq(queue_count(), 0);
}

Test(queue_admin, create_with_null_name_is_einval)
{
    cr_assert_eq(herald_queue_create(env.store, NULL, NULL), HERALD_EINVAL);
    cr_assert_eq(queue_count(), 0);
}

typedef struct bad_setting {
    const char *what; /* the word the error must contain */
    int64_t delivery_delay_s, retention_s, max_message_bytes, max_retries, retry_delay_s;
} bad_setting;

#define U HERALD_UNSET
static const bad_setting BAD_SETTINGS[] = {
    { "delivery_delay", 365LL * 86400 + 1, U, U, U, U },
    { "delivery_delay", -2, U, U, U, U },
    { "retention", U, 59, U, U, U },
    { "retention", U, 0, U, U, U },
    { "retention", U, 365LL * 86400 + 1, U, U, U },
    { "max_message_bytes", U, U, 0, U, U },
    { "max_message_bytes", U, U, 1048577, U, U },
    { "max_retries", U, U, U, 101, U },
    { "max_retries", U, U, U, -2, U },
    { "retry_delay", U, U, U, U, 365LL * 86400 + 1 },
    { "retry_delay", U, U, U, U, -5 },
};
#undef U

static herald_queue_settings settings_of(const bad_setting *b)
{
    herald_queue_settings st;
    herald_queue_settings_init(&st);
    st.delivery_delay_s = b->delivery_delay_s;
    st.message_retention_period_s = b->retention_s;
    st.max_message_bytes = b->max_message_bytes;
    st.max_retries = b->max_retries;
    st.retry_delay_s = b->retry_delay_s;
    return st;
}

Test(queue_admin, create_rejects_out_of_range_settings_naming_the_setting)
{
    for (size_t i = 0; i < sizeof BAD_SETTINGS / sizeof BAD_SETTINGS[0]; i++) {
        herald_queue_settings st = settings_of(&BAD_SETTINGS[i]);
        int rc = herald_queue_create(env.store, "q", &st);
        cr_expect_eq(rc, HERALD_EINVAL, "case %zu (%s): got %s (%d)", i, BAD_SETTINGS[i].what,
                     herald_err_name(rc), rc);
        cr_expect(hx_mentions(herald_last_error(), BAD_SETTINGS[i].what),
                  "case %zu: last error '%s' does not name '%s'", i, herald_last_error(),
                  BAD_SETTINGS[i].what);
        herald_queue_info qi;
        cr_assert_eq(herald_queue_get(env.store, "q", &qi), HERALD_ENOQUEUE,
                     "case %zu: a rejected create left a queue behind", i);
    }
    cr_assert_eq(queue_count(), 0);
}

Test(queue_admin, update_rejects_out_of_range_settings_and_changes_nothing)
{
    create_ok("q", NULL);
    herald_queue_info before = get_info("q");
    for (size_t i = 0; i < sizeof BAD_SETTINGS / sizeof BAD_SETTINGS[0]; i++) {
        hx_clock_advance(&env.clock, 1000);
        herald_queue_settings st = settings_of(&BAD_SETTINGS[i]);
        int rc = herald_queue_update(env.store, "q", &st);
        cr_expect_eq(rc, HERALD_EINVAL, "case %zu (%s): got %s (%d)", i, BAD_SETTINGS[i].what,
                     herald_err_name(rc), rc);
        cr_expect(hx_mentions(herald_last_error(), BAD_SETTINGS[i].what),
                  "case %zu: last error '%s' does not name '%s'", i, herald_last_error(),
                  BAD_SETTINGS[i].what);
        assert_same_settings(get_info("q"), &before);
    }
}

Test(queue_admin, create_rejects_bad_dead_letter_queue_name)
{
    herald_queue_settings st;
    herald_queue_settings_init(&st);
    st.dead_letter_queue = "bad name";
    int rc = herald_queue_create(env.store, "q", &st);
    cr_assert_eq(rc, HERALD_EINVAL, "got %s", herald_err_name(rc));
    cr_assert(hx_mentions(herald_last_error(), "dead_letter"), "last error '%s'",
              herald_last_error());
    cr_assert_eq(queue_count(), 0);
}

Test(queue_admin, create_duplicate_name_is_eexist_and_keeps_the_original)
{
    herald_queue_settings st;
    herald_queue_settings_init(&st);
    st.max_retries = 4;
    create_ok("orders", &st);
    send_json("orders", "{}", HERALD_UNSET);
    herald_queue_info before = get_info("orders");

    hx_clock_advance(&env.clock, 1000);
    herald_queue_settings other;
    herald_queue_settings_init(&other);
    other.max_retries = 9;
    other.delivery_delay_s = 30;
    int rc = herald_queue_create(env.store, "orders", &other);
    cr_assert_eq(rc, HERALD_EEXIST, "got %s", herald_err_name(rc));
    cr_assert(hx_mentions(herald_last_error(), "orders"), "last error '%s' does not name the queue",
              herald_last_error());
    assert_same_settings(get_info("orders"), &before);
    cr_assert_eq(get_stats("orders").backlog_count, 1);
    cr_assert_eq(queue_count(), 1);
}

/* ---- unknown queue: every operation -------------------------------------------------------- */

#define ASSERT_ENOQUEUE(call)                                                                    \
    do {                                                                                         \
        int rc_ = (call);                                                                        \
        cr_assert_eq(rc_, HERALD_ENOQUEUE, "%s: got %s (%d)", #call, herald_err_name(rc_), rc_); \
        cr_assert(hx_mentions(herald_last_error(), "nope"),                                      \
                  "%s: last error '%s' does not name the queue", #call, herald_last_error());    \
    } while (0)

Test(queue_admin, admin_ops_on_unknown_queue_are_enoqueue)
{
    herald_queue_info qi;
    herald_queue_stats st;
    herald_queue_settings up;
    herald_queue_settings_init(&up);
    up.max_retries = 5;
    int64_t n = 0;
    ASSERT_ENOQUEUE(herald_queue_get(env.store, "nope", &qi));
    ASSERT_ENOQUEUE(herald_queue_update(env.store, "nope", &up));
    ASSERT_ENOQUEUE(herald_queue_delete(env.store, "nope"));
    ASSERT_ENOQUEUE(herald_queue_purge(env.store, "nope", &n));
    ASSERT_ENOQUEUE(herald_queue_pause(env.store, "nope"));
    ASSERT_ENOQUEUE(herald_queue_resume(env.store, "nope"));
    ASSERT_ENOQUEUE(herald_queue_stats_get(env.store, "nope", &st));
    /* nothing was created on the way */
    cr_assert_eq(queue_count(), 0);
}

typedef struct async_box {
    int calls;
    int rc;
} async_box;

static void async_cb(void *ud, int rc, const char (*ids)[HERALD_ID_SIZE], size_t n)
{
    (void)ids;
    (void)n;
    async_box *b = ud;
    __atomic_add_fetch(&b->calls, 1, __ATOMIC_SEQ_CST);
    __atomic_store_n(&b->rc, rc, __ATOMIC_SEQ_CST);
}

Test(queue_admin, message_ops_on_unknown_queue_are_enoqueue)
{
    /* a real, well-formed lease id from another queue */
    create_ok("real", NULL);
    send_json("real", "{}", HERALD_UNSET);
    herald_batch lb = { 0 };
    cr_assert_eq(herald_pull(env.store, "real", 1, HERALD_UNSET, &lb), 0);
    cr_assert_eq(lb.n, 1);
    char lease[HERALD_LEASE_ID_SIZE];
    snprintf(lease, sizeof lease, "%s", lb.msgs[0].lease_id);
    herald_batch_deinit(&lb);
    const char *leases[] = { lease };

    herald_msg m = { "{}", 2, HERALD_CONTENT_JSON, HERALD_UNSET };
    char id[HERALD_ID_SIZE];
    char ids[1][HERALD_ID_SIZE];
    herald_batch b = { 0 };
    herald_settle_result r;
    ASSERT_ENOQUEUE(herald_send(env.store, "nope", &m, id));
    ASSERT_ENOQUEUE(herald_send_batch(env.store, "nope", &m, 1, HERALD_UNSET, ids));
    ASSERT_ENOQUEUE(herald_pull(env.store, "nope", 1, HERALD_UNSET, &b));
    ASSERT_ENOQUEUE(herald_peek(env.store, "nope", 1, &b));
    ASSERT_ENOQUEUE(herald_ack(env.store, "nope", leases, 1, &r));
    ASSERT_ENOQUEUE(herald_retry(env.store, "nope", leases, 1, 0, NULL, &r));

    /* async: either refused at once, or the callback reports ENOQUEUE (exactly once) */
    async_box box = { 0, 0 };
    int rc = herald_send_batch_async(env.store, "nope", &m, 1, HERALD_UNSET, async_cb, &box);
    hx_env_close(&env); /* drains the writer: a callback has run by now */
    int calls = __atomic_load_n(&box.calls, __ATOMIC_SEQ_CST);
    if (rc < 0) {
        cr_assert_eq(rc, HERALD_ENOQUEUE, "async: got %s", herald_err_name(rc));
        cr_assert_eq(calls, 0, "async refused with %d but called back", rc);
    } else {
        cr_assert_eq(calls, 1, "async callback ran %d times", calls);
        cr_assert_eq(box.rc, HERALD_ENOQUEUE, "async callback rc %s", herald_err_name(box.rc));
    }

    /* the lease in "real" was not touched: reopen and check it is still leased */
    hx_env_reopen(&env);
    herald_queue_stats st = get_stats("real");
    cr_assert_eq(st.backlog_count, 1);
    cr_assert_eq(st.leased_count, 1);
    herald_queue_info qi;
    cr_assert_eq(herald_queue_get(env.store, "nope", &qi), HERALD_ENOQUEUE);
}

/* ---- errors have names --------------------------------------------------------------------- */

Test(queue_admin, error_codes_have_names_and_text)
{
    cr_assert_str_eq(herald_err_name(HERALD_ENOQUEUE), "HERALD_ENOQUEUE");
    cr_assert_str_eq(herald_err_name(HERALD_EEXIST), "HERALD_EEXIST");
    cr_assert_str_eq(herald_err_name(HERALD_EINVAL), "HERALD_EINVAL");
    cr_assert_str_eq(herald_strerror(HERALD_ENOQUEUE), "queue not found");
    cr_assert_not_null(herald_strerror(-12345));
    cr_assert_not_null(herald_err_name(-12345));
    cr_assert_not_null(herald_last_error());
}
