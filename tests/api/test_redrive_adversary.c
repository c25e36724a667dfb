// SPDX-License-Identifier: MIT
/*
 * test_redrive_adversary.c - herald_dlq_redrive given what a caller should not give it (issue 7
 * §4): a rate that is NaN, infinite or too small to pace (it turned pacing off, and 1e9 / rate of
 * infinity was undefined behaviour), edit paths that are not valid UTF-8 or have an empty
 * segment (a use-after-free in jansson's hands, or an edit silently dropped), and a body over the
 * destination's max_message_bytes. Each is refused with a message naming what is wrong, and
 * nothing moves.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "support.h"

static hx_env env;
#define S (env.store)

static char dead_id[HERALD_ID_SIZE];

static void setup(void)
{
    hx_env_setup(&env, 0);
    herald_queue_settings st;
    herald_queue_settings_init(&st);
    st.max_retries = 0;
    st.dead_letter_queue = "jobs-dlq";
    hx_create_queue(S, "jobs", &st);
    hx_create_queue(S, "jobs-dlq", NULL);
    hx_send_json(S, "jobs", "{\"a\":{\"b\":1},\"text\":\"more than twenty bytes\"}", HERALD_UNSET,
                 dead_id);
    herald_batch b = { 0 };
    cr_assert_eq(hx_pull(S, "jobs", 1, 60000, &b), 1);
    const char *lease = b.msgs[0].lease_id;
    cr_assert_eq(herald_retry(S, "jobs", &lease, 1, 0, "boom", NULL), 0);
    herald_batch_deinit(&b);
    cr_assert_eq(hx_stats(S, "jobs-dlq").backlog_count, 1);
}

static void teardown(void)
{
    hx_env_teardown(&env);
}

TestSuite(redrive_adversary, .init = setup, .fini = teardown, .timeout = 60);

static void assert_nothing_moved(void)
{
    cr_assert_eq(hx_stats(S, "jobs-dlq").backlog_count, 1);
    cr_assert_eq(hx_stats(S, "jobs").backlog_count, 0);
    herald_audit_entry *a = NULL;
    size_t n = 9;
    cr_assert_eq(herald_redrive_audit(S, NULL, &a, &n), 0);
    cr_assert_eq(n, 0);
    herald_free(a);
}

Test(redrive_adversary, a_rate_that_is_not_a_finite_rate_in_range_is_refused)
{
    const double bad[] = { NAN, INFINITY, -INFINITY, 1e-300, -1, HERALD_REDRIVE_MAX_RATE * 2 };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        herald_redrive_opts o;
        herald_redrive_opts_init(&o);
        o.rate_per_s = bad[i];
        int64_t moved = -1;
        cr_assert_eq(herald_dlq_redrive(S, "jobs-dlq", &o, &moved), HERALD_EINVAL, "rate %g",
                     bad[i]);
        cr_assert(strstr(herald_last_error(), "out of range: 0 (no limit) or 0.001..1e+06"),
                  "%s", herald_last_error());
        assert_nothing_moved();
    }
    herald_redrive_opts o;
    herald_redrive_opts_init(&o);
    o.rate_per_s = HERALD_REDRIVE_MAX_RATE;
    int64_t moved = 0;
    cr_assert_eq(herald_dlq_redrive(S, "jobs-dlq", &o, &moved), 0, "%s", herald_last_error());
    cr_assert_eq(moved, 1);
}

Test(redrive_adversary, edit_paths_that_are_not_utf8_or_have_an_empty_segment_are_refused)
{
    static const char *const bad[] = { "x\xff.y=1", "a.b\xff=1", "\xff=1", "a..b=1", ".a=1",
                                       "a.=1" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        herald_redrive_opts o;
        herald_redrive_opts_init(&o);
        const char *set[] = { "a.b=2", bad[i] }; /* a good edit first: it must not land alone */
        o.set = set;
        o.n_set = 2;
        cr_assert_eq(herald_dlq_redrive(S, "jobs-dlq", &o, NULL), HERALD_EINVAL, "'%s'", bad[i]);
        const char *m = herald_last_error();
        cr_assert(strstr(m, "edit path '"), "%s", m);
        cr_assert(strstr(m, "not valid UTF-8") || strstr(m, "empty segment"), "%s", m);
        cr_assert(herald__utf8_valid(m, strlen(m)), "the message is not UTF-8");
        assert_nothing_moved();
    }
}

Test(redrive_adversary, a_body_over_the_destination_max_message_bytes_is_refused)
{
    herald_queue_settings st;
    herald_queue_settings_init(&st);
    st.max_message_bytes = 20;
    hx_create_queue(S, "tiny", &st);
    herald_redrive_opts o;
    herald_redrive_opts_init(&o);
    o.to_queue = "tiny";
    cr_assert_eq(herald_dlq_redrive(S, "jobs-dlq", &o, NULL), HERALD_ETOOBIG);
    cr_assert(strstr(herald_last_error(), "over the 20-byte max_message_bytes of queue 'tiny'"),
              "%s", herald_last_error());
    cr_assert(strstr(herald_last_error(), dead_id), "%s", herald_last_error());
    cr_assert_eq(hx_stats(S, "tiny").backlog_count, 0);
    assert_nothing_moved();
    /* the source queue's own limit holds too */
    herald_queue_settings up;
    herald_queue_settings_init(&up);
    up.max_message_bytes = 10;
    cr_assert_eq(herald_queue_update(S, "jobs", &up), 0, "%s", herald_last_error());
    herald_redrive_opts_init(&o);
    cr_assert_eq(herald_dlq_redrive(S, "jobs-dlq", &o, NULL), HERALD_ETOOBIG);
    cr_assert(strstr(herald_last_error(), "queue 'jobs'"), "%s", herald_last_error());
    assert_nothing_moved();
}
