/* The consumers described in conformance_consumer.h. */
#include <string.h>

#include "conformance_consumer.h"

const chanc_message_type_t conf_ask = {.action = "ask", .payload = CHANC_STRING()};
const chanc_message_type_t conf_said = {.action = "said", .payload = CHANC_STRING()};
const chanc_message_type_t conf_said_all = {
    .action = "said_all",
    .payload = CHANC_STRING(),
    .frame_fields = (const chanc_field_t[]){CHANC_GROUP_FRAME_FIELDS, {0}}};
static const chanc_message_type_t *const incoming[] = {&conf_ask, NULL};
static const chanc_message_type_t *const outgoing[] = {&conf_said, &conf_said_all, NULL};

static int join(chanc_conn_t *c) { return chanc_conn_group_add(c, "conf"); }

static int answer(chanc_conn_t *c, const chanc_message_type_t *type, const json_t *payload,
                  const json_t *frame) {
    (void)type;
    (void)frame;
    const char *what = json_string_value(payload);
    if (!strcmp(what, "ok"))
        return chanc_conn_send(c, &conf_said, json_string("ok"));
    if (!strcmp(what, "group"))
        return chanc_conn_group_send_message(c, "conf", &conf_said_all, json_string("x"), 0);
    if (!strcmp(what, "undeclared"))
        return chanc_conn_send_json(c, json_pack("{s:s,s:n}", "action", "surprise", "payload"));
    if (!strcmp(what, "off"))
        return chanc_conn_send_json(c, json_pack("{s:s,s:i}", "action", "said", "payload", 42));
    if (!strcmp(what, "beside"))
        return chanc_conn_send_json(
            c, json_pack("{s:s,s:s,s:i}", "action", "said", "payload", "x", "room", 1));
    return CHANC_EHANDLER;
}

static const chanc_consumer_t declared = {
    .name = "declared",
    .incoming = incoming,
    .outgoing = outgoing,
    .build_groups = join,
    .receive_message = answer,
    .send_completion = true,
};

static const chanc_consumer_t undeclared = {
    .name = "undeclared",
    .incoming = incoming,
    .build_groups = join,
    .receive_message = answer,
    .send_completion = true,
};

int conformance_setup(chanc_test_t *t, void *ud) {
    (void)ud;
    int rc = chanc_app_route(t->app, "ws/declared/", &declared, NULL);
    return rc ? rc : chanc_app_route(t->app, "ws/undeclared/", &undeclared, NULL);
}

int conformance_fixture_setup(void **state) {
    *state = chanc_test_create(&(chanc_test_options_t){.setup = conformance_setup, .name = *state});
    return *state ? 0 : -1;
}

int conformance_fixture_teardown(void **state) {
    chanc_test_destroy(*state);
    return 0;
}

chanc_communicator_t *conformance_client(chanc_test_t *t, const char *path) {
    chanc_communicator_t *c = chanc_test_communicator(t, "%s", path);
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    return c;
}
