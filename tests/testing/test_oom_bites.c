/* The allocation-failure sweep bites: consumers that mishandle a failed
 * allocation, swept (CHANC_OOM=1) by tests/testing/check_oom_bites, which
 * requires the sweep to fail naming the allocation and what broke, and
 * its replay command to break the same way. The argument picks one:
 *   crash    a consumer that uses chanc_strdupf's result unchecked;
 *   leak     one that returns on a failed allocation, forgetting a value;
 *   careful  the same consumer written right: the sweep passes. */
#include <string.h>

#include <chanc/testing.h>

static const chanc_message_type_t shout = {
    .action = "shout", .payload = CHANC_STRING(.min_length = 1, .max_length = 100)};
static const chanc_message_type_t *const incoming[] = {&shout, NULL};
static const char *which = "careful";

/* Sends the payload back in capitals. */
static int receive(chanc_conn_t *c, const chanc_message_type_t *type, const json_t *payload,
                   const json_t *frame) {
    (void)type;
    (void)frame;
    json_t *echo = json_array(); /* the reply's copies, say */
    char *loud = chanc_strdupf("%s!", json_string_value(payload));
    if (!strcmp(which, "crash")) {
        loud[strlen(loud) - 1] = '!'; /* the bug: loud may be NULL */
    } else if (!loud || !echo) {
        if (!strcmp(which, "careful"))
            json_decref(echo);
        return CHANC_ENOMEM; /* "leak" forgets echo here */
    }
    for (char *p = loud; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
    json_decref(echo);
    int rc = chanc_conn_send(c, &shout, json_string(loud));
    free(loud);
    return rc;
}

static const chanc_consumer_t consumer = {
    .name = "shout", .incoming = incoming, .receive_message = receive, .send_completion = true};

static int routes(chanc_test_t *t, void *ud) {
    (void)ud;
    return chanc_app_route(t->app, "ws/shout/", &consumer, NULL);
}

/* The app still serves after the failure: a new client's round trip. */
static bool probe(chanc_test_t *t, void *ud) {
    (void)ud;
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/shout/");
    if (!chanc_communicator_connect(c, 1000))
        return false;
    chanc_communicator_send_message(c, &shout, json_string("still"));
    json_t *got = chanc_communicator_receive_until_action(c, "shout", 1000);
    bool ok = chanc_json_find(got, "{\"payload\":\"STILL!\"}") != NULL;
    json_decref(got);
    chanc_communicator_disconnect(c);
    return ok;
}

static int setup(void **state) {
    *state = chanc_test_create(&(chanc_test_options_t){.setup = routes, .name = *state});
    chanc_test_set_oom_probe(probe, NULL);
    return *state ? 0 : -1;
}

static int teardown(void **state) {
    chanc_test_destroy(*state);
    return 0;
}

static void test_shout(void **state) {
    chanc_communicator_t *c = chanc_test_communicator(*state, "/ws/shout/");
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    chanc_communicator_send_message(c, &shout, json_string("hello"));
    chanc_assert_receive_all_match(c, "[{\"action\":\"shout\",\"payload\":\"HELLO!\"}]");
}

int main(int argc, char **argv) {
    if (argc > 1)
        which = argv[1];
    const struct CMUnitTest tests[] = {chanc_unit_test(test_shout, setup, teardown)};
    return chanc_run_group_tests(tests, NULL, NULL);
}
