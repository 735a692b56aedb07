/* Every public header and the macro forms a consumer writes, compiled the
 * strictest way a user may (-std=c11 -pedantic -Werror, no feature macro of
 * its own: the package supplies what its headers need). The Redis layer is
 * called so that the link line has to carry libchanc_redis and hiredis (its
 * own dependency) too. */
#include <chanc.h>
#include <chanc/server.h>
#include <chanc/testing.h>

static const chanc_message_type_t tags = {
    .action = "tags",
    .payload = CHANC_OBJECT(CHANC_FIELD("all", CHANC_ARRAY(CHANC_STRING())),
                            CHANC_OPTIONAL("some", CHANC_ARRAY(CHANC_INTEGER(), .max_length = 2)),
                            CHANC_OPTIONAL("any", CHANC_ANY())),
};
static const chanc_message_type_t *const incoming[] = {&tags, NULL};

static void test_schemas_from_the_macros(void **state) {
    (void)state;
    const chanc_message_type_t *type = NULL;
    json_t *errors = NULL;
    json_t *frame = json_pack("{s:s,s:{s:[s],s:[i,i]}}", "action", "tags", "payload", "all",
                              "a", "some", 1, 2);
    assert_int_equal(chanc_message_validate(incoming, frame, &type, &errors), 0);
    assert_ptr_equal(type, &tags);
    json_decref(frame);

    frame = json_pack("{s:s,s:{s:[i],s:[i,i,i]}}", "action", "tags", "payload", "all", 1,
                      "some", 1, 2, 3);
    assert_int_equal(chanc_message_validate(incoming, frame, &type, &errors),
                     CHANC_EVALIDATION);
    chanc_assert_json_match(errors, "[{\"loc\":[\"payload\",\"all\",0]},"
                                    "{\"loc\":[\"payload\",\"some\"]}]");
    assert_int_equal(chanc_errors_append(errors, "custom", NULL, "%d", 3), 0);
    json_decref(errors);
    json_decref(frame);
    chanc_log(CHANC_LOG_DEBUG, "below the default level: not printed");
}

static void test_redis_layer_links(void **state) {
    (void)state;
    chanc_error_t err = {0};
    assert_null(chanc_layer_redis_create("http://not-redis/", NULL, &err));
    assert_int_equal(err.code, CHANC_EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schemas_from_the_macros),
        cmocka_unit_test(test_redis_layer_links),
    };
    return chanc_run_group_tests_name("package.strict", tests, NULL, NULL);
}
