/* framework.router: route patterns (Django path() converters) compiled and
 * matched by the internal router, then the same through chanc_app_route
 * and a connection: first match wins, params readable from the consumer,
 * unmatched paths refused with 4404. */
#include <chanc/testing.h>
#include <stdlib.h>
#include <string.h>

#include "router_internal.h"

/* --- log capture (bad patterns are logged) ---------------------------------- */

static int errors_logged;
static char last_log[256];

static void capture(chanc_log_level_t level, const char *line, void *ud) {
    (void)ud;
    if (level == CHANC_LOG_ERROR) {
        errors_logged++;
        snprintf(last_log, sizeof last_log, "%s", line);
    }
}

static int log_setup(void **state) {
    (void)state;
    errors_logged = 0;
    last_log[0] = '\0';
    chanc_log_set_emitter(capture, NULL);
    return 0;
}

static int log_teardown(void **state) {
    (void)state;
    chanc_log_set_emitter(NULL, NULL);
    return 0;
}

/* --- helpers -------------------------------------------------------------- */

static chanc__route_t *route(const char *pattern) {
    chanc__route_t *r = chanc__route_new(pattern);
    if (!r)
        fail_msg("pattern refused: %s", pattern);
    return r;
}

static void assert_no_match(const chanc__route_t *r, const char *path) {
    chanc__params_t p;
    if (chanc__route_match(r, path, &p)) {
        print_error("\"%s\" unexpectedly matched \"%s\"\n", r->pattern, path);
        chanc__params_dispose(&p);
        fail();
    }
    assert_int_equal(p.n, 0); /* nothing left bound (valgrind: nothing leaked) */
}

/* path matches; expected is "name=value name=value" ("" for no params). */
static void assert_match(const chanc__route_t *r, const char *path, const char *expected) {
    chanc__params_t p;
    if (!chanc__route_match(r, path, &p)) {
        print_error("\"%s\" did not match \"%s\"\n", r->pattern, path);
        fail();
    }
    char got[2048] = "";
    size_t used = 0;
    for (size_t i = 0; i < p.n && used < sizeof got; i++)
        used += (size_t)snprintf(got + used, sizeof got - used, "%s%s=%s", i ? " " : "",
                                 p.names[i], p.values[i]);
    assert_true(used < sizeof got);
    chanc__params_dispose(&p);
    assert_int_equal(p.n, 0);
    assert_string_equal(got, expected);
}

/* One-shot: compile, match, free. */
static void match1(const char *pattern, const char *path, const char *expected) {
    chanc__route_t *r = route(pattern);
    assert_match(r, path, expected);
    chanc__route_free(r);
}

static void nomatch1(const char *pattern, const char *path) {
    chanc__route_t *r = route(pattern);
    assert_no_match(r, path);
    chanc__route_free(r);
}

static void assert_refused(const char *pattern) {
    int before = errors_logged;
    chanc__route_t *r = chanc__route_new(pattern);
    if (r) {
        print_error("pattern \"%s\" was accepted\n", pattern);
        chanc__route_free(r);
        fail();
    }
    assert_int_equal(errors_logged, before + 1);
    assert_non_null(strstr(last_log, "bad pattern"));
}

/* --- literal routes ------------------------------------------------------------ */

static void test_literal_route(void **state) {
    (void)state;
    chanc__route_t *r = route("ws/echo/");
    assert_string_equal(r->pattern, "ws/echo/");
    assert_match(r, "/ws/echo/", "");
    assert_match(r, "ws/echo/", ""); /* the leading '/' is optional */
    assert_no_match(r, "/ws/echo/x");
    assert_no_match(r, "/ws/ech/");
    assert_no_match(r, "/ws/echoo/");
    assert_no_match(r, "/WS/ECHO/"); /* case-sensitive */
    assert_no_match(r, "/ws/");
    assert_no_match(r, "/");
    assert_no_match(r, "");
    assert_no_match(r, "/xws/echo/");
    assert_no_match(r, " /ws/echo/");
    chanc__route_free(r);
}

static void test_trailing_slash_is_literal(void **state) {
    (void)state;
    /* No slash appending or collapsing: the path must end as the pattern. */
    chanc__route_t *with = route("ws/echo/");
    assert_no_match(with, "/ws/echo");
    assert_no_match(with, "/ws/echo//");
    chanc__route_free(with);
    chanc__route_t *without = route("ws/echo");
    assert_match(without, "/ws/echo", "");
    assert_no_match(without, "/ws/echo/");
    chanc__route_free(without);
}

static void test_leading_slash(void **state) {
    (void)state;
    /* One leading '/' is stripped from the pattern and from the path. */
    chanc__route_t *r = route("/ws/echo/");
    assert_string_equal(r->pattern, "ws/echo/");
    assert_match(r, "/ws/echo/", "");
    assert_match(r, "ws/echo/", "");
    assert_no_match(r, "//ws/echo/"); /* only one */
    chanc__route_free(r);
    nomatch1("ws/echo/", "//ws/echo/");
}

static void test_empty_pattern_is_the_root(void **state) {
    (void)state;
    chanc__route_t *r = route("");
    assert_int_equal(r->nsegs, 0);
    assert_match(r, "/", "");
    assert_match(r, "", "");
    assert_match(r, "/?next=/x", "");
    assert_no_match(r, "/a");
    chanc__route_free(r);
    match1("/", "/", "");
}

static void test_query_string_is_ignored(void **state) {
    (void)state;
    match1("ws/echo/", "/ws/echo/?token=abc&next=/ws/other/", "");
    match1("ws/echo/", "/ws/echo/?", "");
    nomatch1("ws/echo/", "/ws/echo?x=/"); /* the query does not supply the slash */
    match1("ws/{name}/", "/ws/lobby/?a=b", "name=lobby");
    match1("ws/{rest:path}", "/ws/a/b?c=d/e", "rest=a/b"); /* even for path */
    nomatch1("ws/{name}/", "/ws/?x/");
}

static void test_percent_encoding_is_not_decoded(void **state) {
    (void)state;
    /* Paths are matched byte for byte: an encoded '/' is not a separator
     * and an encoded letter is not that letter. */
    match1("ws/{name}/", "/ws/a%2Fb/", "name=a%2Fb");
    nomatch1("ws/echo/", "/ws/%65cho/");
    nomatch1("ws/{name:slug}/", "/ws/a%20b/");
    match1("ws/{rest:path}", "/ws/%2e%2e/x", "rest=%2e%2e/x");
}

/* --- params ----------------------------------------------------------------- */

static void test_slug_param(void **state) {
    (void)state;
    chanc__route_t *r = route("ws/room/{name:slug}/");
    assert_int_equal(r->nsegs, 3);
    assert_match(r, "/ws/room/lobby/", "name=lobby");
    assert_match(r, "/ws/room/Big-room_2/", "name=Big-room_2");
    assert_match(r, "/ws/room/-/", "name=-");
    assert_match(r, "/ws/room/007/", "name=007");
    assert_no_match(r, "/ws/room//");      /* empty */
    assert_no_match(r, "/ws/room/a.b/");   /* '.' */
    assert_no_match(r, "/ws/room/a b/");   /* space */
    assert_no_match(r, "/ws/room/a+b/");
    assert_no_match(r, "/ws/room/a/b/");   /* '/' */
    assert_no_match(r, "/ws/room/caf\xC3\xA9/"); /* non-ASCII */
    assert_no_match(r, "/ws/room/lobby");   /* trailing literal missing */
    chanc__route_free(r);
    /* A very long slug is fine (copied whole). */
    char path[1100];
    char expect[1100];
    memset(path, 0, sizeof path);
    strcpy(path, "/ws/room/");
    memset(path + 9, 'z', 1000);
    strcat(path, "/");
    snprintf(expect, sizeof expect, "name=%.1000s", path + 9);
    match1("ws/room/{name:slug}/", path, expect);
}

static void test_int_param(void **state) {
    (void)state;
    chanc__route_t *r = route("ws/chat/{pk:int}/");
    assert_match(r, "/ws/chat/42/", "pk=42");
    assert_match(r, "/ws/chat/0/", "pk=0");
    assert_match(r, "/ws/chat/007/", "pk=007"); /* kept as text */
    assert_no_match(r, "/ws/chat//");   /* empty */
    assert_no_match(r, "/ws/chat/-1/"); /* digits only */
    assert_no_match(r, "/ws/chat/+1/");
    assert_no_match(r, "/ws/chat/1.5/");
    assert_no_match(r, "/ws/chat/1e3/");
    assert_no_match(r, "/ws/chat/0x10/");
    assert_no_match(r, "/ws/chat/ 1/");
    assert_no_match(r, "/ws/chat/12a/");
    assert_no_match(r, "/ws/chat/\xD9\xA3/"); /* ARABIC-INDIC DIGIT THREE is no digit */
    /* Beyond int64: the route still matches (the converter is [0-9]+);
     * chanc_conn_param_int refuses the value (see the app tests). */
    assert_match(r, "/ws/chat/99999999999999999999999/", "pk=99999999999999999999999");
    chanc__route_free(r);
}

static void test_str_and_path_params(void **state) {
    (void)state;
    match1("ws/{name}/", "/ws/any thing.%-~/", "name=any thing.%-~");
    match1("ws/{name:str}/", "/ws/x/", "name=x");
    nomatch1("ws/{name}/", "/ws/a/b/");
    nomatch1("ws/{name}/", "/ws//");
    match1("files/{rest:path}", "/files/a/b/c.txt", "rest=a/b/c.txt");
    match1("files/{rest:path}", "/files//", "rest=/");
    nomatch1("files/{rest:path}", "/files/"); /* non-empty */
}

static void test_params_bind_in_pattern_order(void **state) {
    (void)state;
    match1("ws/{org:slug}/{room:int}/{who}/", "/ws/acme/12/bob/", "org=acme room=12 who=bob");
    /* Adjacent params and params next to digits: longest first, then
     * backtracking to let the rest match. */
    match1("{a:int}{b:int}", "/123", "a=12 b=3");
    match1("v{n:int}5/", "/v1235/", "n=123");
    match1("{first:path}/end/{last:path}", "/x/y/end/z/end/w", "first=x/y/end/z last=w");
    match1("{a:slug}-{b:slug}", "/foo-bar-baz", "a=foo-bar b=baz");
    nomatch1("{a:int}{b:int}", "/1");
}

static void test_eight_params_at_most(void **state) {
    (void)state;
    assert_int_equal(CHANC__MAX_PARAMS, 8);
    chanc__route_t *r = route("{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}");
    assert_match(r, "/1/2/3/4/5/6/7/8", "a=1 b=2 c=3 d=4 e=5 f=6 g=7 h=8");
    chanc__route_free(r);
    assert_refused("{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}");
    assert_refused("{a:int}{b:int}{c:int}{d:int}{e:int}{f:int}{g:int}{h:int}{i:int}");
}

static void test_malformed_patterns_are_refused(void **state) {
    (void)state;
    static const char *const bad[] = {
        "{",            "ws/{pk",       "ws/{pk:int",  "ws/{}/",      "ws/{:int}/",
        "ws/{:}/",      "ws/{pk:}/",    "ws/{pk:float}/", "ws/{pk:Int}/", "ws/{pk:int }/",
        "ws/}/",        "ws/pk}/",      "}",           "ws/{a}}/",    "ws/{a:int}x}",
        /* names: identifiers, unique in the pattern */
        "ws/{a{b}/",    "ws/{a b}/",    "ws/{1x}/",    "ws/{x/y}/",   "ws/{x}/{x:int}/",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_refused(bad[i]);
    assert_non_null(strstr(last_log, "ws/{x}/{x:int}/"));
}

static void test_failed_match_leaves_no_params(void **state) {
    (void)state;
    /* Backtracking binds and unbinds params; a miss must leave none bound
     * and nothing allocated (valgrind). */
    chanc__route_t *r = route("{a:path}/{b:path}/{c:int}/end");
    assert_no_match(r, "/x/y/z/w/v/u/1/en");
    assert_match(r, "/x/y/z/1/end", "a=x/y b=z c=1");
    chanc__route_free(r);
    chanc__route_free(NULL); /* no-op */
}

/* --- through the app --------------------------------------------------------- */

/* Answers the handshake with what it was routed with. */
static int report_route(chanc_conn_t *c) {
    json_t *params = json_object();
    static const char *const names[] = {"name", "pk", "rest"};
    for (size_t i = 0; i < 3; i++) {
        const char *v = chanc_conn_param(c, names[i]);
        if (v)
            json_object_set_new(params, names[i], json_string(v));
    }
    int64_t pk = -1;
    int rc = chanc_conn_param_int(c, "pk", &pk);
    const char *q = chanc_conn_query(c);
    return chanc_conn_send_json(
        c, json_pack("{s:s,s:{s:s,s:s,s:o,s:o,s:o,s:s}}", "action", "routed", "payload", "route",
                     (const char *)chanc_conn_route_data(c), "path", chanc_conn_path(c), "query",
                     q ? json_string(q) : json_null(), "params", params, "pk_int",
                     rc == 0 ? json_integer((json_int_t)pk) : json_null(), "pk_rc",
                     chanc_err_name(rc)));
}

static const chanc_consumer_t reporter = {.name = "reporter",
                                          .post_authentication = report_route};

static int specific_first(chanc_test_t *t, void *ud) {
    (void)ud;
    if (chanc_app_route(t->app, "ws/room/special/", &reporter, "special") ||
        chanc_app_route(t->app, "/ws/room/{name:slug}/", &reporter, "slug") ||
        chanc_app_route(t->app, "ws/room/{name}/", &reporter, "str") ||
        chanc_app_route(t->app, "ws/chat/{pk:int}/", &reporter, "int") ||
        chanc_app_route(t->app, "ws/{rest:path}", &reporter, "catch-all"))
        return -1;
    return 0;
}

static int general_first(chanc_test_t *t, void *ud) {
    (void)ud;
    if (chanc_app_route(t->app, "ws/room/{name}/", &reporter, "str") ||
        chanc_app_route(t->app, "ws/room/special/", &reporter, "special"))
        return -1;
    return 0;
}

static int app_setup_specific(void **state) {
    chanc_test_options_t o = {.setup = specific_first};
    *state = chanc_test_create(&o);
    return *state ? 0 : -1;
}

static int app_setup_general(void **state) {
    chanc_test_options_t o = {.setup = general_first};
    *state = chanc_test_create(&o);
    return *state ? 0 : -1;
}

static int app_teardown(void **state) {
    chanc_test_destroy(*state);
    return 0;
}

static void expect_route(chanc_test_t *t, const char *path, const char *pattern) {
    chanc_communicator_t *c = chanc_test_communicator(t, "%s", path);
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    chanc_assert_receive_match(c, pattern);
    chanc_communicator_disconnect(c);
}

static void expect_refused(chanc_test_t *t, const char *path) {
    chanc_communicator_t *c = chanc_test_communicator(t, "%s", path);
    assert_false(chanc_communicator_connect(c, 1000));
    assert_int_equal(chanc_communicator_close_code(c), CHANC_CLOSE_NOT_FOUND);
}

static void test_app_first_match_wins(void **state) {
    chanc_test_t *t = *state;
    expect_route(t, "/ws/room/special/", "{\"payload\":{\"route\":\"special\"}}");
    expect_route(t, "/ws/room/lobby/", "{\"payload\":{\"route\":\"slug\",\"params\":{\"name\":\"lobby\"}}}");
    /* Not a slug: falls through to the str route. */
    expect_route(t, "/ws/room/a.b/", "{\"payload\":{\"route\":\"str\",\"params\":{\"name\":\"a.b\"}}}");
    /* Not an int: falls through to the catch-all. */
    expect_route(t, "/ws/chat/x/", "{\"payload\":{\"route\":\"catch-all\",\"params\":{\"rest\":\"chat/x/\"}}}");
    expect_refused(t, "/other/");
    expect_refused(t, "/ws/");
}

static void test_app_order_matters(void **state) {
    chanc_test_t *t = *state;
    /* The general route was registered first: it shadows the literal. */
    expect_route(t, "/ws/room/special/", "{\"payload\":{\"route\":\"str\",\"params\":{\"name\":\"special\"}}}");
    expect_refused(t, "/ws/room/");
}

static void test_app_int_param_and_query(void **state) {
    chanc_test_t *t = *state;
    expect_route(t, "/ws/chat/42/?since=10",
                 "{\"payload\":{\"route\":\"int\",\"path\":\"/ws/chat/42/\",\"query\":\"since=10\","
                 "\"params\":{\"pk\":\"42\"},\"pk_int\":42,\"pk_rc\":\"CHANC_OK\"}}");
    expect_route(t, "/ws/chat/9223372036854775807/",
                 "{\"payload\":{\"route\":\"int\",\"query\":null,\"pk_int\":9223372036854775807}}");
    /* One past INT64_MAX: routed, but the value is refused, not wrapped. */
    expect_route(t, "/ws/chat/9223372036854775808/",
                 "{\"payload\":{\"route\":\"int\",\"params\":{\"pk\":\"9223372036854775808\"},"
                 "\"pk_int\":null,\"pk_rc\":\"CHANC_EINVAL\"}}");
    expect_route(t, "/ws/chat/99999999999999999999999/",
                 "{\"payload\":{\"route\":\"int\",\"pk_int\":null,\"pk_rc\":\"CHANC_EINVAL\"}}");
    /* Leading zeros parse. */
    expect_route(t, "/ws/chat/007/", "{\"payload\":{\"pk_int\":7,\"pk_rc\":\"CHANC_OK\"}}");
    /* Absent param. */
    expect_route(t, "/ws/room/lobby/", "{\"payload\":{\"pk_int\":null,\"pk_rc\":\"CHANC_ENOTFOUND\"}}");
}

static void test_app_route_refuses_bad_patterns(void **state) {
    chanc_test_t *t = *state;
    assert_int_equal(chanc_app_route(t->app, "ws/{pk:nope}/", &reporter, NULL), CHANC_EINVAL);
    assert_int_equal(chanc_app_route(t->app, "ws/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}/", &reporter,
                                     NULL),
                     CHANC_EINVAL);
    assert_true(chanc_test_log_contains(t, CHANC_LOG_ERROR, "bad pattern"));
    assert_int_equal(chanc_app_route(t->app, NULL, &reporter, NULL), CHANC_EINVAL);
    assert_int_equal(chanc_app_route(t->app, "ws/x/", NULL, NULL), CHANC_EINVAL);
    assert_int_equal(chanc_app_route(NULL, "ws/x/", &reporter, NULL), CHANC_EINVAL);
    /* The refused routes were not added: the app still routes as before. */
    expect_route(t, "/ws/room/special/", "{\"payload\":{\"route\":\"special\"}}");
    /* A route added later comes after the existing ones. */
    assert_int_equal(chanc_app_route(t->app, "ws/late/", &reporter, "late"), 0);
    expect_route(t, "/ws/late/", "{\"payload\":{\"route\":\"catch-all\"}}");
    assert_int_equal(chanc_app_route(t->app, "late/", &reporter, "late"), 0);
    expect_route(t, "/late/", "{\"payload\":{\"route\":\"late\"}}");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_literal_route, log_setup, log_teardown),
        cmocka_unit_test_setup_teardown(test_trailing_slash_is_literal, log_setup, log_teardown),
        cmocka_unit_test_setup_teardown(test_leading_slash, log_setup, log_teardown),
        cmocka_unit_test_setup_teardown(test_empty_pattern_is_the_root, log_setup, log_teardown),
        cmocka_unit_test_setup_teardown(test_query_string_is_ignored, log_setup, log_teardown),
        cmocka_unit_test_setup_teardown(test_percent_encoding_is_not_decoded, log_setup, log_teardown),
        cmocka_unit_test_setup_teardown(test_slug_param, log_setup, log_teardown),
        cmocka_unit_test_setup_teardown(test_int_param, log_setup, log_teardown),
        cmocka_unit_test_setup_teardown(test_str_and_path_params, log_setup, log_teardown),
        cmocka_unit_test_setup_teardown(test_params_bind_in_pattern_order, log_setup, log_teardown),
        cmocka_unit_test_setup_teardown(test_eight_params_at_most, log_setup, log_teardown),
        cmocka_unit_test_setup_teardown(test_malformed_patterns_are_refused, log_setup, log_teardown),
        cmocka_unit_test_setup_teardown(test_failed_match_leaves_no_params, log_setup, log_teardown),
        cmocka_unit_test_setup_teardown(test_app_first_match_wins, app_setup_specific, app_teardown),
        cmocka_unit_test_setup_teardown(test_app_order_matters, app_setup_general, app_teardown),
        cmocka_unit_test_setup_teardown(test_app_int_param_and_query, app_setup_specific, app_teardown),
        cmocka_unit_test_setup_teardown(test_app_route_refuses_bad_patterns, app_setup_specific,
                                        app_teardown),
    };
    return chanc_run_group_tests(tests, NULL, NULL);
}
