/* framework.auth: the authentication pipeline (authenticators →
 * has_permission → get_object → has_object_permission → frame →
 * build_groups → post_authentication), every documented status with its
 * close code, and the session-cookie helpers. */
#include "test_common.h"

/* --- extra consumers: lookups that fail, hooks that fail, auth order ----- */

static int lookup_fails(chanc_conn_t *c, void **obj) {
    (void)c;
    (void)obj;
    return CHANC_EIO;
}

static int skip_auth(chanc_conn_t *c, void *ud, chanc_status_t *st) {
    (void)c;
    (void)st;
    (*(int *)ud)++;
    return CHANC_AUTH_SKIP;
}

static int header_auth(chanc_conn_t *c, void *ud, chanc_status_t *st) {
    (void)st;
    (*(int *)ud)++;
    const char *u = chanc_conn_header(c, "x-user");
    if (!u)
        return CHANC_AUTH_SKIP;
    return chanc_conn_set_user(c, "7", u, NULL, NULL) == 0 ? CHANC_AUTH_OK : CHANC_AUTH_SKIP;
}

static int never_auth(chanc_conn_t *c, void *ud, chanc_status_t *st) {
    (void)ud;
    (void)st;
    if (chanc_conn_is_authenticated(c))
        fail_msg("an authenticator after a successful one ran");
    return CHANC_AUTH_SKIP;
}

static int skip_calls, header_calls;
static int build_groups_calls, post_auth_calls;
static const chanc_authenticator_t skip_a = {.name = "skip", .authenticate = skip_auth, .ud = &skip_calls};
static const chanc_authenticator_t header_a = {.name = "header", .authenticate = header_auth,
                                               .ud = &header_calls};
static const chanc_authenticator_t never_a = {.name = "never", .authenticate = never_auth};
static const chanc_authenticator_t *const chain[] = {&skip_a, &header_a, &never_a, NULL};

static int failing_build_groups(chanc_conn_t *c) {
    (void)c;
    build_groups_calls++;
    return CHANC_EIO;
}

static int failing_post_auth(chanc_conn_t *c) {
    (void)c;
    post_auth_calls++;
    return CHANC_EIO;
}

static int counting_build_groups(chanc_conn_t *c) {
    build_groups_calls++;
    return chanc_conn_group_add(c, "g");
}

static const chanc_permission_t *const authed[] = {&chanc_is_authenticated, NULL};

/* Refusals that forget chanc_deny, and errors: the pipeline fails closed. */
static int refuse_bare(chanc_conn_t *c, chanc_status_t *st) {
    (void)c;
    (void)st;
    return 403; /* no chanc_deny */
}
static int permission_error(chanc_conn_t *c, void *obj, chanc_status_t *st) {
    (void)c;
    (void)obj;
    (void)st;
    return CHANC_EIO;
}
static int auth_error(chanc_conn_t *c, void *ud, chanc_status_t *st) {
    (void)c;
    (void)ud;
    (void)st;
    return CHANC_EIO; /* neither SKIP, OK nor FAILED */
}
static const chanc_permission_t bare_p = {.name = "bare", .has_permission = refuse_bare};
static const chanc_permission_t error_p = {.name = "error", .has_object_permission = permission_error};
static const chanc_permission_t *const bare_list[] = {&bare_p, NULL};
static const chanc_permission_t *const error_list[] = {&error_p, NULL};
static const chanc_authenticator_t error_a = {.name = "error", .authenticate = auth_error};
static const chanc_authenticator_t *const error_auths[] = {&error_a, NULL};
static const chanc_consumer_t bare_refusal = {.name = "bare", .permissions = bare_list};
static const chanc_consumer_t failing_permission = {.name = "perm_error", .permissions = error_list};
static const chanc_consumer_t failing_auth = {.name = "auth_error", .authenticators = error_auths};

static const chanc_consumer_t broken_lookup = {
    .name = "broken_lookup", .permissions = NULL, .get_object = lookup_fails};
static const chanc_consumer_t chained = {
    .name = "chained", .authenticators = chain, .permissions = authed,
    .build_groups = counting_build_groups};
static const chanc_consumer_t open_door = {.name = "open", .build_groups = counting_build_groups};
static const chanc_consumer_t bad_groups = {.name = "bad_groups",
                                            .build_groups = failing_build_groups,
                                            .post_authentication = failing_post_auth};
static const chanc_consumer_t bad_post = {.name = "bad_post",
                                          .build_groups = counting_build_groups,
                                          .post_authentication = failing_post_auth};

static int auth_setup(chanc_test_t *t, void *ud) {
    skip_calls = header_calls = build_groups_calls = post_auth_calls = 0;
    int rc = demo_setup(t, ud);
    if (!rc)
        rc = chanc_app_route(t->app, "ws/broken/", &broken_lookup, NULL);
    if (!rc)
        rc = chanc_app_route(t->app, "ws/chained/", &chained, NULL);
    if (!rc)
        rc = chanc_app_route(t->app, "ws/open/", &open_door, NULL);
    if (!rc)
        rc = chanc_app_route(t->app, "ws/bad_groups/", &bad_groups, NULL);
    if (!rc)
        rc = chanc_app_route(t->app, "ws/bad_post/", &bad_post, NULL);
    if (!rc)
        rc = chanc_app_route(t->app, "ws/bare/", &bare_refusal, NULL);
    if (!rc)
        rc = chanc_app_route(t->app, "ws/perm_error/", &failing_permission, NULL);
    if (!rc)
        rc = chanc_app_route(t->app, "ws/auth_error/", &failing_auth, NULL);
    return rc;
}

static int auth_fixture(void **state) {
    *state = chanc_test_create(&(chanc_test_options_t){.setup = auth_setup});
    return *state ? 0 : -1;
}

#define AUTH_TEST(fn) cmocka_unit_test_setup_teardown(fn, auth_fixture, demo_fixture_teardown)

/* --- the documented statuses ---------------------------------------------- */

static void test_200_frame_is_exact_and_groups_are_joined(void **state) {
    chanc_communicator_t *a = room_client(*state, "lobby", "alice");
    chanc_assert_connect(a);
    chanc_assert_receive_match(a, "{\"action\":\"authentication\",\"payload\":{\"status_code\":200,"
                                  "\"status_text\":\"OK\",\"data\":{\"detail\":\"OK\"}}}");
    json_t *all = chanc_communicator_receive_all_json(a, 1000);
    chanc_assert_json_match(all, "[{\"action\":\"joined\",\"payload\":{\"username\":\"alice\"}}]");
    json_decref(all);
    assert_int_equal(demo_counters.build_groups, 1);
    assert_int_equal(demo_counters.post_authentication, 1);
}

static void test_anonymous_gets_403_then_4403_and_no_hook_runs(void **state) {
    chanc_communicator_t *member = room_client(*state, "lobby", "bob");
    chanc_assert_connect(member);
    chanc_assert_authenticated_status_ok(member);
    json_decref(chanc_communicator_receive_all_json(member, 1000));

    chanc_communicator_t *anon = room_client(*state, "lobby", NULL);
    chanc_assert_connect(anon);
    chanc_assert_receive_match(anon, "{\"action\":\"authentication\",\"payload\":{\"status_code\":403,"
                                     "\"status_text\":\"Forbidden\",\"data\":{\"detail\":"
                                     "\"Authentication credentials were not provided.\"}}}");
    chanc_assert_closed(anon, 4403);
    assert_int_equal(demo_counters.build_groups, 1); /* bob's only */
    assert_int_equal(demo_counters.post_authentication, 1);
    chanc_assert_receive_nothing(member); /* no join, no leave from the refused one */
}

static void test_rejected_token_gets_401_then_4401(void **state) {
    chanc_communicator_t *c = room_client(*state, "lobby", "mallory");
    chanc_assert_connect(c);
    chanc_assert_receive_match(c, "{\"action\":\"authentication\",\"payload\":{\"status_code\":401,"
                                  "\"status_text\":\"Unauthorized\",\"data\":{\"detail\":\"Invalid token.\"}}}");
    chanc_assert_closed(c, 4401);
}

static void test_missing_object_gets_404_then_4404(void **state) {
    chanc_communicator_t *c = room_client(*state, "attic", "alice");
    chanc_assert_connect(c);
    chanc_assert_receive_match(c, "{\"action\":\"authentication\",\"payload\":{\"status_code\":404,"
                                  "\"status_text\":\"Not Found\",\"data\":{\"detail\":\"Not found.\"}}}");
    chanc_assert_closed(c, 4404);
    assert_int_equal(demo_counters.build_groups, 0);
}

static void test_object_permission_denied_gets_its_detail(void **state) {
    chanc_communicator_t *bob = room_client(*state, "private", "bob");
    chanc_assert_connect(bob);
    chanc_assert_receive_match(bob, "{\"payload\":{\"status_code\":403,\"data\":{\"detail\":"
                                    "\"You are not a member of this room.\"}}}");
    chanc_assert_closed(bob, 4403);

    chanc_communicator_t *alice = room_client(*state, "private", "alice");
    chanc_assert_connect(alice);
    chanc_assert_authenticated_status_ok(alice);
}

static void test_lookup_error_gets_500_then_4500(void **state) {
    chanc_communicator_t *c = chanc_test_communicator(*state, "/ws/broken/");
    chanc_assert_connect(c);
    chanc_assert_receive_match(c, "{\"action\":\"authentication\",\"payload\":{\"status_code\":500,"
                                  "\"status_text\":\"Internal Server Error\"}}");
    chanc_assert_closed(c, 4500);
}

static void test_a_refusal_without_chanc_deny_still_refuses(void **state) {
    chanc_communicator_t *c = chanc_test_communicator(*state, "/ws/bare/");
    chanc_assert_connect(c);
    chanc_assert_receive_match(c, "{\"action\":\"authentication\",\"payload\":{\"status_code\":403,"
                                  "\"status_text\":\"Forbidden\",\"data\":{\"detail\":"
                                  "\"You do not have permission to perform this action.\"}}}");
    chanc_assert_closed(c, 4403);
}

static void test_permission_and_authenticator_errors_fail_closed(void **state) {
    chanc_communicator_t *p = chanc_test_communicator(*state, "/ws/perm_error/");
    chanc_assert_connect(p);
    chanc_assert_receive_match(p, "{\"action\":\"authentication\",\"payload\":{\"status_code\":500,"
                                  "\"status_text\":\"Internal Server Error\"}}");
    chanc_assert_closed(p, 4500);
    chanc_communicator_t *a = chanc_test_communicator(*state, "/ws/auth_error/");
    chanc_assert_connect(a);
    chanc_assert_receive_match(a, "{\"action\":\"authentication\",\"payload\":{\"status_code\":500,"
                                  "\"status_text\":\"Internal Server Error\"}}");
    chanc_assert_closed(a, 4500);
    assert_true(chanc_test_log_contains(*state, CHANC_LOG_ERROR, "authenticator error"));
}

static void test_frames_after_a_refusal_are_not_processed(void **state) {
    chanc_communicator_t *c = room_client(*state, "lobby", NULL);
    chanc_assert_connect(c);
    chanc_communicator_send_message(c, &demo_say, json_string("sneaky"));
    chanc_assert_authenticated_status(c, 403);
    chanc_assert_closed(c, 4403);
    chanc_assert_receive_nothing(c);

    chanc_communicator_t *alice = room_client(*state, "lobby", "alice");
    chanc_assert_connect(alice);
    chanc_assert_authenticated_status_ok(alice);
    json_t *all = chanc_communicator_receive_all_json(alice, 1000);
    assert_null(chanc_json_find(all, "{\"action\":\"said\"}"));
    json_decref(all);
}

/* --- authenticator chain, defaults, failing hooks ------------------------- */

static void test_authenticators_run_in_order_until_one_succeeds(void **state) {
    chanc_communicator_t *c = chanc_test_communicator(*state, "/ws/chained/");
    chanc_communicator_set_header(c, "X-User", "zoe");
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    assert_int_equal(skip_calls, 1);
    assert_int_equal(header_calls, 1); /* never_a did not run (it would fail) */

    chanc_communicator_t *anon = chanc_test_communicator(*state, "/ws/chained/");
    chanc_assert_connect(anon);
    chanc_assert_authenticated_status(anon, 403); /* all skipped → anonymous */
    chanc_assert_closed(anon, 4403);
}

static void test_no_permissions_means_allow_any(void **state) {
    chanc_communicator_t *c = chanc_test_communicator(*state, "/ws/open/");
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    assert_int_equal(build_groups_calls, 1);
}

static void test_failing_build_groups_closes_1011_without_post_auth(void **state) {
    chanc_communicator_t *c = chanc_test_communicator(*state, "/ws/bad_groups/");
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c); /* the frame precedes build_groups */
    chanc_assert_closed(c, 1011);
    assert_int_equal(build_groups_calls, 1);
    assert_int_equal(post_auth_calls, 0);
    assert_true(chanc_test_log_contains(*state, CHANC_LOG_ERROR, "build_groups"));
}

static void test_failing_post_authentication_closes_1011(void **state) {
    chanc_communicator_t *c = chanc_test_communicator(*state, "/ws/bad_post/");
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    chanc_assert_closed(c, 1011);
    assert_int_equal(post_auth_calls, 1);
}

/* --- cookies ---------------------------------------------------------------- */

static void test_session_cookie_authenticates(void **state) {
    chanc_communicator_t *c = chanc_test_communicator(*state, "/ws/cookie/");
    chanc_communicator_set_header(c, "Cookie", "csrftoken=abc; sessionid=s-alice; theme=dark");
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);

    chanc_communicator_t *forged = chanc_test_communicator(*state, "/ws/cookie/");
    chanc_communicator_set_header(forged, "Cookie", "sessionid=s-mallory");
    chanc_assert_connect(forged);
    chanc_assert_authenticated_status(forged, 403); /* unknown session: anonymous */
    chanc_assert_closed(forged, 4403);

    chanc_communicator_t *lookalike = chanc_test_communicator(*state, "/ws/cookie/");
    chanc_communicator_set_header(lookalike, "Cookie", "xsessionid=s-alice");
    chanc_assert_connect(lookalike);
    chanc_assert_authenticated_status(lookalike, 403);
}

static void test_cookie_get_parses_the_header(void **state) {
    (void)state;
    char out[16];
    assert_int_equal(chanc_cookie_get("sessionid=abc", "sessionid", out, sizeof out), 3);
    assert_string_equal(out, "abc");
    assert_int_equal(chanc_cookie_get("a=1;  sessionid=xyz ;b=2", "sessionid", out, sizeof out), 3);
    assert_string_equal(out, "xyz");
    assert_int_equal(chanc_cookie_get("sessionid=\"quoted\"", "sessionid", out, sizeof out), 6);
    assert_string_equal(out, "quoted");
    assert_int_equal(chanc_cookie_get("session=abc", "sessionid", out, sizeof out), CHANC_ENOTFOUND);
    assert_int_equal(chanc_cookie_get("xsessionid=abc", "sessionid", out, sizeof out), CHANC_ENOTFOUND);
    assert_int_equal(chanc_cookie_get("", "sessionid", out, sizeof out), CHANC_ENOTFOUND);
    assert_int_equal(chanc_cookie_get("sessionid=", "sessionid", out, sizeof out), 0);
    assert_string_equal(out, "");
    assert_int_equal(chanc_cookie_get("sessionid=0123456789abcdef", "sessionid", out, sizeof out),
                     CHANC_ETOOBIG);
    assert_int_equal(chanc_cookie_get("a=1; sessionid=first; sessionid=second", "sessionid", out,
                                      sizeof out), 5);
    assert_string_equal(out, "first");
}

static void test_huge_cookie_header_is_anonymous_not_a_crash(void **state) {
    size_t n = 64 * 1024;
    char *big = malloc(n + 32);
    assert_non_null(big);
    memcpy(big, "sessionid=", 10);
    memset(big + 10, 'a', n);
    big[10 + n] = '\0';
    chanc_communicator_t *c = chanc_test_communicator(*state, "/ws/cookie/");
    chanc_communicator_set_header(c, "Cookie", big);
    free(big);
    chanc_assert_connect(c);
    chanc_assert_authenticated_status(c, 403);
    chanc_assert_closed(c, 4403);
}

static void test_status_text_and_deny(void **state) {
    (void)state;
    assert_string_equal(chanc_status_text(200), "OK");
    assert_string_equal(chanc_status_text(401), "Unauthorized");
    assert_string_equal(chanc_status_text(403), "Forbidden");
    assert_string_equal(chanc_status_text(404), "Not Found");
    assert_string_equal(chanc_status_text(500), "Internal Server Error");
    chanc_status_t st;
    assert_int_equal(chanc_deny(&st, 403, "Nope."), 403);
    assert_int_equal(st.code, 403);
    assert_string_equal(st.detail, "Nope.");
    char longer[400];
    memset(longer, 'x', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    chanc_deny(&st, 403, longer); /* truncated, still terminated */
    assert_int_equal(strlen(st.detail), sizeof st.detail - 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        AUTH_TEST(test_200_frame_is_exact_and_groups_are_joined),
        AUTH_TEST(test_anonymous_gets_403_then_4403_and_no_hook_runs),
        AUTH_TEST(test_rejected_token_gets_401_then_4401),
        AUTH_TEST(test_missing_object_gets_404_then_4404),
        AUTH_TEST(test_object_permission_denied_gets_its_detail),
        AUTH_TEST(test_lookup_error_gets_500_then_4500),
        AUTH_TEST(test_a_refusal_without_chanc_deny_still_refuses),
        AUTH_TEST(test_permission_and_authenticator_errors_fail_closed),
        AUTH_TEST(test_frames_after_a_refusal_are_not_processed),
        AUTH_TEST(test_authenticators_run_in_order_until_one_succeeds),
        AUTH_TEST(test_no_permissions_means_allow_any),
        AUTH_TEST(test_failing_build_groups_closes_1011_without_post_auth),
        AUTH_TEST(test_failing_post_authentication_closes_1011),
        AUTH_TEST(test_session_cookie_authenticates),
        AUTH_TEST(test_huge_cookie_header_is_anonymous_not_a_crash),
        cmocka_unit_test(test_cookie_get_parses_the_header),
        cmocka_unit_test(test_status_text_and_deny),
    };
    return chanc_run_group_tests_name("framework.auth", tests, NULL, NULL);
}
