/* testing.derive: inputs derived from the schemas (chanc_schema_cases,
 * chanc_assert_schema_cases) and the protocol coverage (chanc_coverage_*).
 *
 * The cases' expected outcomes are checked against an oracle that is not
 * the generator: jansson's parser and the framework's validator
 * (chanc_message_validate), case by case; then the same cases go through
 * the echo demo consumer; and a consumer that accepts more than its
 * declared schema makes the assertion fail. */
#include <dirent.h>
#include <unistd.h>

#include "test_common.h"

/* --- the cases ------------------------------------------------------------- */

/* Every case's expected answer is what the framework's parser and
 * validator say of its frame. */
static void check_against_validator(const chanc_message_type_t *type) {
    const chanc_message_type_t *const incoming[] = {type, NULL};
    json_t *cases = chanc_schema_cases(type);
    assert_non_null(cases);
    size_t i;
    json_t *k;
    json_array_foreach(cases, i, k) {
        const char *frame_text = chanc_json_str(k, "/frame");
        json_t *frame = json_loads(frame_text, JSON_DECODE_ANY, NULL);
        json_t *errors = NULL;
        if (!frame)
            errors = json_pack("[{s:s,s:[]}]", "type", "json_invalid", "loc");
        else
            chanc_message_validate(incoming, frame, NULL, &errors);
        json_t *got = json_array(); /* the validator's items without msg */
        size_t j;
        json_t *e;
        json_array_foreach(errors, j, e) json_array_append_new(
            got, json_pack("{s:O,s:O}", "type", json_object_get(e, "type"), "loc",
                           json_object_get(e, "loc")));
        if (!json_equal(got, json_object_get(k, "errors"))) {
            char *want = chanc_json_dump(json_object_get(k, "errors")), *have = chanc_json_dump(got);
            print_error("case %zu (%s): %s\n  expected %s\n  validator %s\n", i,
                        chanc_json_str(k, "/name"), frame_text, want, have);
            free(want);
            free(have);
            fail();
        }
        assert_int_equal(json_is_true(json_object_get(k, "valid")), json_array_size(got) == 0);
        json_decref(got);
        json_decref(errors);
        json_decref(frame);
    }
    json_decref(cases);
}

static const chanc_message_type_t nested = {
    .action = "nested",
    .payload = CHANC_OBJECT(
        CHANC_FIELD("id", CHANC_INTEGER(.has_minimum = true, .minimum = -3, .has_maximum = true,
                                        .maximum = 9)),
        CHANC_FIELD("ratio", CHANC_NUMBER(.has_minimum = true, .minimum = 0.25)),
        CHANC_FIELD("items", CHANC_ARRAY(CHANC_OBJECT_OPEN(CHANC_FIELD("k", CHANC_STRING(.max_length = 2))),
                                         .min_length = 1, .max_length = 2)),
        CHANC_OPTIONAL("flag", CHANC_BOOLEAN(.nullable = true)),
        CHANC_OPTIONAL("any", CHANC_ANY()))};

static void test_cases_agree_with_the_validator(void **state) {
    (void)state;
    check_against_validator(&demo_echo);
    check_against_validator(&demo_shout);
    check_against_validator(&demo_ping);
    check_against_validator(&demo_fail);
    check_against_validator(&nested);
}

static void test_cases_cover_each_kind_of_input(void **state) {
    (void)state;
    json_t *cases = chanc_schema_cases(&demo_shout);
    /* text: 1..20 code points; 21 wide characters are 84 bytes */
    chanc_assert_json_match(
        chanc_json_find(cases, "{\"name\": \"payload.text: 21 code points of U+1F600 (84 bytes)\"}"),
        "{\"valid\": false, \"errors\": [{\"type\": \"string_too_long\", \"loc\": [\"payload\", \"text\"]}]}");
    chanc_assert_json_match(
        chanc_json_find(cases, "{\"name\": \"payload.text: 20 code points of U+1F600 (80 bytes)\"}"),
        "{\"valid\": true, \"errors\": []}");
    chanc_assert_json_match(chanc_json_find(cases, "{\"name\": \"payload: required field \\\"text\\\" missing\"}"),
                            "{\"errors\": [{\"type\": \"missing\", \"loc\": [\"payload\", \"text\"]}]}");
    chanc_assert_json_match(chanc_json_find(cases, "{\"name\": \"payload.times: 6 (above the maximum)\"}"),
                            "{\"frame\": \"{\\\"action\\\":\\\"shout\\\",\\\"payload\\\":{\\\"text\\\":\\\"x\\\",\\\"times\\\":6}}\","
                            " \"errors\": [{\"type\": \"less_than_equal\", \"loc\": [\"payload\", \"times\"]}]}");
    chanc_assert_json_match(chanc_json_find(cases, "{\"name\": \"payload.tags: 4 items\"}"),
                            "{\"errors\": [{\"type\": \"too_long\"}]}");
    chanc_assert_json_match(chanc_json_find(cases, "{\"name\": \"payload.tags[0]: 0 (wrong type)\"}"),
                            "{\"errors\": [{\"type\": \"string_type\", \"loc\": [\"payload\", \"tags\", 0]}]}");
    chanc_assert_json_match(chanc_json_find(cases, "{\"name\": \"payload.note: null (nullable)\"}"),
                            "{\"valid\": true}");
    chanc_assert_json_match(chanc_json_find(cases, "{\"name\": \"payload.meta: undeclared key \\\"zz_extra\\\" (kept)\"}"),
                            "{\"valid\": true}");
    chanc_assert_json_match(chanc_json_find(cases, "{\"name\": \"payload: undeclared key \\\"zz_extra\\\" (forbidden)\"}"),
                            "{\"errors\": [{\"type\": \"extra_forbidden\", \"loc\": [\"payload\", \"zz_extra\"]}]}");
    /* texts jansson cannot hold: sent as written */
    json_t *lone = chanc_json_find(cases, "{\"errors\": [{\"type\": \"json_invalid\"}]}");
    assert_non_null(lone);
    assert_non_null(strstr(chanc_json_str(lone, "/frame"), "\\ud800"));
    assert_non_null(chanc_json_find(cases, "{\"frame\": \"{\\\"action\\\":\\\"shout\\\",\\\"payload\\\":1e400}\"}"));
    /* the first case is the minimal valid frame */
    chanc_assert_json_match(json_array_get(cases, 0),
                            "{\"valid\": true, \"frame\": \"{\\\"action\\\":\\\"shout\\\",\\\"payload\\\":{\\\"text\\\":\\\"x\\\"}}\"}");
    /* deterministic: the same type, the same cases */
    json_t *again = chanc_schema_cases(&demo_shout);
    assert_true(json_equal(cases, again));
    print_message("shout: %zu cases\n", json_array_size(cases));
    json_decref(again);
    json_decref(cases);
    assert_null(chanc_schema_cases(NULL));
}

/* --- through a communicator -------------------------------------------------- */

static void test_assert_schema_cases_through_the_echo_consumer(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/echo/");
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    const chanc_message_type_t *types[] = {&demo_echo, &demo_shout, &demo_ping, &demo_fail};
    for (size_t i = 0; i < 4; i++) {
        json_t *cases = chanc_schema_cases(types[i]);
        assert_int_equal(chanc_assert_schema_cases(c, types[i]), json_array_size(cases));
        json_decref(cases);
    }
    chanc_communicator_send_message(c, &demo_ping, NULL);
    chanc_assert_receive_match(c, "{\"action\":\"pong\"}");
}

/* A consumer that accepts up to 100 characters where the client was told
 * 10: the derived case of 11 is accepted, and the assertion says so. */
static const chanc_message_type_t told = {.action = "echo", .payload = CHANC_STRING(.max_length = 10)};

static struct {
    int failures;
    char *message;
} rec;

static void record_failure(const char *file, int line, const char *message, void *ud) {
    (void)file;
    (void)line;
    (void)ud;
    rec.failures++;
    free(rec.message);
    rec.message = strdup(message);
}

static void test_a_schema_mismatch_fails_naming_the_case(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/echo/");
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    chanc_testing_set_fail_handler(record_failure, NULL);
    size_t passed = chanc_assert_schema_cases(c, &told);
    chanc_testing_set_fail_handler(NULL, NULL);
    assert_int_equal(rec.failures, 1);
    assert_non_null(strstr(rec.message, "(payload: 11 code points of ASCII)"));
    assert_non_null(strstr(rec.message, "\"type\":\"string_too_long\""));
    assert_non_null(strstr(rec.message, "transcript of /ws/echo/"));
    assert_true(passed > 0);
    free(rec.message);
    rec.message = NULL;
}

/* --- coverage ------------------------------------------------------------------ */

static json_t *consumer_report(const char *name) {
    json_t *all = chanc_coverage_report();
    json_t *r = json_incref(json_object_get(json_object_get(all, "consumers"), name));
    json_decref(all);
    return r;
}

/* A consumer of its own, so that no other test of this program adds to
 * its coverage: echo answers, fail fails, the rest is accepted. */
static const chanc_message_type_t *const probe_incoming[] = {&demo_echo, &demo_shout, &demo_fail,
                                                             &demo_ping, NULL};

static int probe_receive(chanc_conn_t *c, const chanc_message_type_t *type, const json_t *payload,
                         const json_t *frame) {
    (void)frame;
    if (type == &demo_fail)
        return CHANC_EHANDLER;
    return type == &demo_echo ? chanc_conn_send(c, &demo_echo, json_incref((json_t *)payload)) : 0;
}

static const chanc_consumer_t probe = {.name = "coverage_probe",
                                       .incoming = probe_incoming,
                                       .receive_message = probe_receive,
                                       .send_completion = true};

static int probe_setup(chanc_test_t *t, void *ud) {
    (void)ud;
    return chanc_app_route(t->app, "ws/probe/", &probe, NULL);
}

static void test_coverage_records_what_the_tests_exercised(void **state) {
    (void)state;
    char dir[] = "/tmp/chanc-coverage-XXXXXX";
    assert_non_null(mkdtemp(dir));
    setenv("CHANC_COVERAGE_DIR", dir, 1);
    chanc_test_t *t = chanc_test_create(&(chanc_test_options_t){.setup = probe_setup});
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/probe/");
    chanc_assert_connect(c);
    chanc_communicator_send_message(c, &demo_echo, json_string("hi"));
    chanc_communicator_send_text(c, "{\"action\":\"shout\",\"payload\":{}}");
    chanc_communicator_send_message(c, &demo_fail, NULL);
    json_decref(chanc_communicator_receive_all_json(c, 1000));
    chanc_communicator_send_text(c, "{\"action\":\"echo\",\"payload\":\"\xC3\x28\"}");
    chanc_assert_closed(c, CHANC_CLOSE_INVALID_UTF8);
    chanc_test_destroy(t); /* records */
    unsetenv("CHANC_COVERAGE_DIR");

    json_t *echo = consumer_report("coverage_probe");
    chanc_assert_json_match(echo, "{\"incoming\": {\"declared\": [\"echo\", \"shout\", \"fail\", \"ping\"]},"
                                  " \"close_codes\": {\"declared\": [1007, 1008, 1009, 1011, 4408]}}");
    json_t *covered = json_object_get(json_object_get(echo, "incoming"), "covered");
    assert_non_null(chanc_json_find(covered, "\"echo\""));
    assert_non_null(chanc_json_find(covered, "\"fail\""));
    assert_null(chanc_json_find(covered, "\"shout\"")); /* refused: not received */
    covered = json_object_get(json_object_get(echo, "outgoing"), "covered");
    assert_non_null(chanc_json_find(covered, "\"authentication\""));
    assert_non_null(chanc_json_find(covered, "\"handler_error\""));
    assert_non_null(chanc_json_find(covered, "\"error\""));
    chanc_assert_json_match(json_object_get(echo, "errors"), "{\"covered\": [\"missing\"]}");
    chanc_assert_json_match(json_object_get(echo, "close_codes"), "{\"covered\": [1007]}");
    /* what the echo consumer sends without declaring it (no outgoing list) */
    assert_non_null(chanc_json_find(json_object_get(json_object_get(echo, "undeclared"), "outgoing"),
                                    "\"echo\""));
    json_t *declared_errors = json_object_get(json_object_get(echo, "errors"), "declared");
    assert_non_null(chanc_json_find(declared_errors, "\"less_than_equal\"")); /* shout.times */
    assert_non_null(chanc_json_find(declared_errors, "\"rate_limited\""));
    json_decref(echo);

    /* the file, and the summary over the directory */
    char *path = chanc_strdupf("%s/test_testing_derive.coverage.json", dir);
    json_t *file = json_load_file(path, 0, NULL);
    assert_non_null(file);
    chanc_assert_json_match(file, "{\"program\": \"test_testing_derive\", \"consumers\": {\"echo\": {}}}");
    json_decref(file);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    long missing = chanc_coverage_summarise(dir, out);
    fclose(out);
    print_message("%s", text);
    assert_true(missing > 0);
    assert_non_null(strstr(text, "  coverage_probe: incoming 2/4,"));
    assert_non_null(strstr(text, "    incoming no test exercised: shout ping\n"));
    assert_non_null(strstr(text, "not exercised\n"));
    free(text);
    unlink(path);
    free(path);
    assert_int_equal(rmdir(dir), 0);
    out = open_memstream(&text, &len);
    assert_int_equal(chanc_coverage_summarise(dir, out), -1); /* gone */
    fclose(out);
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cases_agree_with_the_validator),
        cmocka_unit_test(test_cases_cover_each_kind_of_input),
        DEMO_TEST(test_assert_schema_cases_through_the_echo_consumer),
        DEMO_TEST(test_a_schema_mismatch_fails_naming_the_case),
        cmocka_unit_test(test_coverage_records_what_the_tests_exercised),
    };
    return chanc_run_group_tests_name("testing.derive", tests, NULL, NULL);
}
