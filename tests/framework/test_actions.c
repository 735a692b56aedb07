/* framework.actions: action handlers (chanc_consumer_t.actions). A frame
 * goes to its type's handler after validation; the handler's reply is
 * checked (declared by the entry, valid) and sent before `complete`, or
 * is a server bug answered with the handler error frame; a handler may
 * defer and reply later (chanc_conn_reply); a type without a handler goes
 * to receive_message; the union is derived from the table (validation
 * errors as with `incoming`); route checks; the AsyncAPI document. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chanc/asyncapi.h"
#include "chanc/testing.h"

/* ---- message types --------------------------------------------------------- */

static const chanc_message_type_t msg_add = {
    .action = "add",
    .payload = CHANC_OBJECT(CHANC_FIELD("a", CHANC_INTEGER()), CHANC_FIELD("b", CHANC_INTEGER()))};
static const chanc_message_type_t msg_sum = {.action = "sum", .payload = CHANC_INTEGER()};
static const chanc_message_type_t msg_note = {.action = "note", .payload = CHANC_STRING()};
/* Handlers with bugs, or that fail. */
static const chanc_message_type_t msg_stray = {.action = "stray"};     /* replies with sum */
static const chanc_message_type_t msg_malformed = {.action = "malformed"}; /* sum "x" */
static const chanc_message_type_t msg_fail = {.action = "fail"};       /* -1, reply set */
/* Deferred: the sum of a and b after a ms on the virtual clock. */
static const chanc_message_type_t msg_later = {
    .action = "later",
    .payload = CHANC_OBJECT(CHANC_FIELD("a", CHANC_INTEGER()), CHANC_FIELD("b", CHANC_INTEGER()))};
/* Deferred: an undeclared reply later, then a failed resume. */
static const chanc_message_type_t msg_later_stray = {.action = "later_stray"};
/* No handler in the table: receive_message answers "hooked". */
static const chanc_message_type_t msg_hook = {.action = "hook", .payload = CHANC_STRING()};
static const chanc_message_type_t msg_hooked = {.action = "hooked", .payload = CHANC_STRING()};

/* How many times each handler ran. */
static int added, hooks;

/* ---- handlers --------------------------------------------------------------- */

static json_int_t sum_of(const json_t *payload) {
    return json_integer_value(json_object_get(payload, "a")) +
           json_integer_value(json_object_get(payload, "b"));
}

static int on_add(chanc_conn_t *c, const json_t *payload, chanc_reply_t *reply) {
    (void)c;
    added++;
    reply->type = &msg_sum;
    reply->payload = json_integer(sum_of(payload));
    return 0;
}

static int on_stray(chanc_conn_t *c, const json_t *payload, chanc_reply_t *reply) {
    (void)c;
    (void)payload;
    reply->type = &msg_sum; /* not in its replies: note */
    reply->payload = json_integer(1);
    return 0;
}

static int on_malformed(chanc_conn_t *c, const json_t *payload, chanc_reply_t *reply) {
    (void)c;
    (void)payload;
    reply->type = &msg_sum;
    reply->payload = json_string("x"); /* sum is an integer */
    return 0;
}

static int on_fail(chanc_conn_t *c, const json_t *payload, chanc_reply_t *reply) {
    (void)c;
    (void)payload;
    reply->type = &msg_sum; /* dropped: the handler failed */
    reply->payload = json_integer(2);
    return CHANC_EIO;
}

typedef struct later {
    chanc_conn_t *c;
    json_int_t sum;
    bool stray;
} later_t;

static void later_done(void *arg) {
    later_t *l = arg;
    int rc;
    if (l->stray) {
        /* The bug's error frame goes now; the failed resume adds none. */
        assert_int_equal(chanc_conn_reply(l->c, &msg_hooked, json_string("no")),
                         CHANC_EVALIDATION);
        rc = CHANC_EIO;
    } else {
        rc = chanc_conn_reply(l->c, &msg_sum, json_integer(l->sum));
    }
    chanc_conn_resume(l->c, rc);
    free(l);
}

static int on_later(chanc_conn_t *c, const json_t *payload, chanc_reply_t *reply) {
    (void)reply;
    later_t *l = calloc(1, sizeof *l);
    if (!l)
        return CHANC_ENOMEM;
    l->c = c;
    l->stray = json_is_null(payload);
    l->sum = l->stray ? 0 : sum_of(payload);
    assert_int_equal(chanc_conn_defer(c), 0);
    chanc_app_timer_start(chanc_conn_app(c), l->stray ? 5 : (uint64_t)l->sum, later_done, l);
    return 0;
}

static int receive(chanc_conn_t *c, const chanc_message_type_t *type, const json_t *payload,
                   const json_t *frame) {
    (void)frame;
    hooks++;
    /* Not an action handler's frame: no reply from here. */
    assert_int_equal(chanc_conn_reply(c, &msg_sum, json_integer(0)), CHANC_EINVAL);
    assert_ptr_equal(type, &msg_hook);
    return chanc_conn_send(c, &msg_hooked, json_incref((json_t *)payload));
}

/* ---- consumers -------------------------------------------------------------- */

static const chanc_message_type_t *const sum_reply[] = {&msg_sum, NULL};
static const chanc_message_type_t *const note_reply[] = {&msg_note, NULL};

/* The union is derived from the table: add, stray, …, hook (in order). */
static const chanc_action_t calc_actions[] = {
    {.type = &msg_add, .handle = on_add, .replies = sum_reply},
    {.type = &msg_stray, .handle = on_stray, .replies = note_reply},
    {.type = &msg_malformed, .handle = on_malformed, .replies = sum_reply},
    {.type = &msg_fail, .handle = on_fail, .replies = sum_reply},
    {.type = &msg_later, .handle = on_later, .replies = sum_reply},
    {.type = &msg_later_stray, .handle = on_later, .replies = sum_reply},
    {.type = &msg_hook}, /* no handler: receive_message */
    {0},
};
/* sum also declared here: the document lists it once. */
static const chanc_message_type_t *const calc_outgoing[] = {&msg_hooked, &msg_sum, NULL};

static const chanc_consumer_t calc = {
    .name = "calc",
    .actions = calc_actions,
    .outgoing = calc_outgoing,
    .receive_message = receive,
    .send_completion = true,
};

/* Both incoming and a table: incoming is the union; hook has no entry and
 * goes to receive_message. */
static const chanc_message_type_t *const mixed_incoming[] = {&msg_hook, &msg_add, NULL};
static const chanc_action_t mixed_actions[] = {
    {.type = &msg_add, .handle = on_add, .replies = sum_reply},
    {0},
};
static const chanc_consumer_t mixed = {
    .name = "mixed",
    .incoming = mixed_incoming,
    .actions = mixed_actions,
    .receive_message = receive,
    .send_completion = true,
};

/* The same union as calc's, declared as `incoming`, no table: the
 * validation errors must be the same. */
static const chanc_message_type_t *const plain_incoming[] = {
    &msg_add, &msg_stray, &msg_malformed, &msg_fail, &msg_later, &msg_later_stray, &msg_hook,
    NULL};
static const chanc_consumer_t plain = {
    .name = "plain", .incoming = plain_incoming, .send_completion = true};

static int setup_routes(chanc_test_t *t, void *ud) {
    (void)ud;
    added = hooks = 0;
    int rc = chanc_app_route(t->app, "ws/calc/", &calc, NULL);
    if (rc == 0)
        rc = chanc_app_route(t->app, "ws/mixed/", &mixed, NULL);
    return rc ? rc : chanc_app_route(t->app, "ws/plain/", &plain, NULL);
}

static int fixture_setup(void **state) {
    chanc_test_options_t o = {.setup = setup_routes, .name = *state};
    *state = chanc_test_create(&o);
    return *state ? 0 : -1;
}
static int fixture_teardown(void **state) {
    chanc_test_destroy(*state);
    return 0;
}

static chanc_communicator_t *client(chanc_test_t *t, const char *path) {
    chanc_communicator_t *c = chanc_test_communicator(t, "%s", path);
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    return c;
}

static void send_add(chanc_communicator_t *c, const chanc_message_type_t *type, int a, int b) {
    assert_int_equal(chanc_communicator_send_message(c, type, json_pack("{s:i,s:i}", "a", a, "b", b)),
                     0);
}

/* Every waiting frame, completions included. */
static json_t *take_all(chanc_communicator_t *c) {
    json_t *all = json_array();
    json_t *f;
    while ((f = chanc_communicator_receive_json(c, 1000)))
        json_array_append_new(all, f);
    return all;
}

static void assert_frames(chanc_communicator_t *c, const char *pattern, size_t n) {
    json_t *all = take_all(c);
    chanc_assert_json_match(all, pattern);
    assert_int_equal(json_array_size(all), n);
    json_decref(all);
}

#define HANDLER_ERROR "{\"action\":\"error\",\"payload\":{\"detail\":\"Failed to process message\"}}"

/* ---- tests ------------------------------------------------------------------ */

static void test_the_reply_comes_before_complete(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = client(t, "/ws/calc/");
    send_add(c, &msg_add, 2, 3);
    assert_frames(c, "[{\"action\":\"sum\",\"payload\":5},{\"action\":\"complete\"}]", 2);
    assert_int_equal(added, 1);
    assert_int_equal(hooks, 0);
}

static void test_each_type_goes_to_its_handler(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = client(t, "/ws/calc/");
    send_add(c, &msg_add, 1, 1);
    chanc_communicator_send_message(c, &msg_hook, json_string("hi"));
    send_add(c, &msg_add, 20, 22);
    chanc_assert_receive_all_match(c, "[{\"action\":\"sum\",\"payload\":2},"
                                      "{\"action\":\"hooked\",\"payload\":\"hi\"},"
                                      "{\"action\":\"sum\",\"payload\":42}]");
    assert_int_equal(added, 2);
    assert_int_equal(hooks, 1);
    assert_true(chanc_test_log_contains(t, CHANC_LOG_ERROR,
                                        "chanc_conn_reply outside an action handler's frame"));
}

static void test_an_undeclared_reply_is_the_error_frame_and_a_log_line(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = client(t, "/ws/calc/");
    chanc_communicator_send_message(c, &msg_stray, NULL);
    assert_frames(c, "[" HANDLER_ERROR ",{\"action\":\"complete\"}]", 2);
    assert_true(chanc_test_log_contains(
        t, CHANC_LOG_ERROR, "stray handler replied with sum, not one of its declared replies"));
    /* Still usable. */
    send_add(c, &msg_add, 1, 2);
    chanc_assert_receive_all_match(c, "[{\"action\":\"sum\",\"payload\":3}]");
    chanc_assert_open(c);
}

static void test_an_invalid_reply_payload_is_the_error_frame(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = client(t, "/ws/calc/");
    chanc_communicator_send_message(c, &msg_malformed, NULL);
    assert_frames(c, "[" HANDLER_ERROR ",{\"action\":\"complete\"}]", 2);
    assert_true(chanc_test_log_contains(t, CHANC_LOG_ERROR,
                                        "malformed handler's reply sum is invalid"));
    chanc_assert_open(c);
}

static void test_a_failing_handler_sends_the_error_frame_not_its_reply(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = client(t, "/ws/calc/");
    chanc_communicator_send_message(c, &msg_fail, NULL);
    assert_frames(c, "[" HANDLER_ERROR ",{\"action\":\"complete\"}]", 2);
    assert_true(chanc_test_log_contains(t, CHANC_LOG_ERROR, "fail handler failed"));
    chanc_app_stats_t st;
    chanc_app_stats(t->app, &st);
    assert_int_equal(st.handler_errors, 1);
    chanc_assert_open(c);
}

static void test_a_deferred_handler_replies_later_on_the_virtual_clock(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = client(t, "/ws/calc/");
    send_add(c, &msg_later, 4, 6); /* 10 ms */
    send_add(c, &msg_add, 1, 1);   /* waits behind it */
    chanc_assert_receive_nothing(c);
    chanc_test_advance(t, 9);
    chanc_assert_receive_nothing(c);
    chanc_test_advance(t, 1);
    assert_frames(c,
                  "[{\"action\":\"sum\",\"payload\":10},{\"action\":\"complete\"},"
                  "{\"action\":\"sum\",\"payload\":2},{\"action\":\"complete\"}]",
                  4);
}

static void test_a_bad_reply_later_is_one_error_frame(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = client(t, "/ws/calc/");
    chanc_communicator_send_message(c, &msg_later_stray, NULL);
    chanc_test_advance(t, 5);
    assert_frames(c, "[" HANDLER_ERROR ",{\"action\":\"complete\"}]", 2);
    assert_true(chanc_test_log_contains(
        t, CHANC_LOG_ERROR, "later_stray handler replied with hooked, not one of its declared"));
    chanc_app_stats_t st;
    chanc_app_stats(t->app, &st);
    assert_int_equal(st.handler_errors, 1);
}

static void test_with_incoming_too_types_without_a_handler_go_to_receive_message(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = client(t, "/ws/mixed/");
    chanc_communicator_send_message(c, &msg_hook, json_string("x"));
    send_add(c, &msg_add, 2, 2);
    chanc_assert_receive_all_match(c, "[{\"action\":\"hooked\",\"payload\":\"x\"},"
                                      "{\"action\":\"sum\",\"payload\":4}]");
    /* Not in this union, although calc's table has it. */
    send_add(c, &msg_later, 1, 1);
    chanc_assert_receive_all_match(
        c, "[{\"action\":\"error\",\"payload\":[{\"type\":\"union_tag_invalid\"}]}]");
    assert_int_equal(added, 1);
    assert_int_equal(hooks, 1);
}

/* The derived union validates as `incoming` does: the same error frames,
 * and no handler runs. */
static void test_validation_errors_are_unchanged(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *calc_c = client(t, "/ws/calc/");
    chanc_communicator_t *plain_c = client(t, "/ws/plain/");
    const char *frames[] = {
        "{\"action\":\"add\",\"payload\":{\"a\":\"one\",\"b\":2}}",
        "{\"action\":\"add\",\"payload\":{\"a\":1}}",
        "{\"action\":\"add\",\"payload\":{\"a\":1,\"b\":2},\"extra\":1}",
        "{\"action\":\"nope\"}",
        "{\"payload\":1}",
        "[1]",
        "{\"action\":\"hook\",\"payload\":5}",
    };
    for (size_t i = 0; i < sizeof frames / sizeof *frames; i++) {
        chanc_communicator_send_text(calc_c, frames[i]);
        chanc_communicator_send_text(plain_c, frames[i]);
        json_t *a = take_all(calc_c), *b = take_all(plain_c);
        assert_int_equal(json_array_size(a), 2); /* the error, complete */
        if (!json_equal(a, b)) {
            char *sa = json_dumps(a, 0), *sb = json_dumps(b, 0);
            fail_msg("%s: calc sent %s, plain %s", frames[i], sa, sb);
        }
        chanc_assert_json_match(json_array_get(a, 0), "{\"action\":\"error\"}");
        assert_true(json_is_array(json_object_get(json_array_get(a, 0), "payload")));
        json_decref(a);
        json_decref(b);
    }
    assert_int_equal(added, 0);
    assert_int_equal(hooks, 0);
    /* The expected tags are the table's, in order. */
    chanc_communicator_send_text(calc_c, "{\"action\":\"nope\"}");
    json_t *all = take_all(calc_c);
    const char *msg = chanc_json_str(all, "/0/payload/0/msg");
    assert_non_null(msg);
    assert_non_null(strstr(msg, "'add', 'stray', 'malformed', 'fail', 'later', 'later_stray', "
                                "'hook'"));
    json_decref(all);
}

/* ---- route checks ------------------------------------------------------------ */

static const chanc_action_t twice_actions[] = {
    {.type = &msg_add, .handle = on_add}, {.type = &msg_add, .handle = on_add}, {0}};
static const chanc_consumer_t twice = {.name = "twice", .actions = twice_actions};

/* Two types with one action name: the derived union could not tell them
 * apart. */
static const chanc_message_type_t msg_add_again = {.action = "add"};
static const chanc_action_t same_name_actions[] = {
    {.type = &msg_add, .handle = on_add}, {.type = &msg_add_again, .handle = on_add}, {0}};
static const chanc_consumer_t same_name = {.name = "same_name", .actions = same_name_actions};

static const chanc_message_type_t *const only_hook[] = {&msg_hook, NULL};
static const chanc_consumer_t missing = {
    .name = "missing", .incoming = only_hook, .actions = mixed_actions};

static void test_routes_refuse_tables_that_do_not_fit(void **state) {
    chanc_test_t *t = *state;
    assert_int_equal(chanc_app_route(t->app, "ws/twice/", &twice, NULL), CHANC_EINVAL);
    assert_true(chanc_test_log_contains(t, CHANC_LOG_ERROR,
                                        "consumer twice: action \"add\" is in its table twice"));
    assert_int_equal(chanc_app_route(t->app, "ws/same/", &same_name, NULL), CHANC_EINVAL);
    assert_int_equal(chanc_app_route(t->app, "ws/missing/", &missing, NULL), CHANC_EINVAL);
    assert_true(chanc_test_log_contains(
        t, CHANC_LOG_ERROR,
        "consumer missing: action \"add\" has a handler but is not in its incoming union"));
    /* None was added. */
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/twice/");
    assert_false(chanc_communicator_connect(c, 1000));
    chanc_assert_closed(c, CHANC_CLOSE_NOT_FOUND);
}

/* ---- the AsyncAPI document ---------------------------------------------------- */

static void test_the_document_lists_replies_and_marks_them(void **state) {
    chanc_test_t *t = *state;
    chanc_asyncapi_info_t info = {.title = "calc", .version = "1.0.0"};
    chanc_error_t err;
    json_t *doc = chanc_asyncapi_document(t->app, &info, &err);
    assert_non_null(doc);
    /* send: the framework's frames (handler_error: there is a table), the
     * outgoing list, the replies (sum once, note added). */
    chanc_assert_json_match(chanc_json_ptr(doc, "/operations/calc_send/messages"),
                            "[{\"$ref\":\"#/channels/calc/messages/authentication\"},"
                            "{\"$ref\":\"#/channels/calc/messages/error\"},"
                            "{\"$ref\":\"#/channels/calc/messages/handler_error\"},"
                            "{\"$ref\":\"#/channels/calc/messages/complete\"},"
                            "{\"$ref\":\"#/channels/calc/messages/group_complete\"},"
                            "{\"$ref\":\"#/channels/calc/messages/hooked\"},"
                            "{\"$ref\":\"#/channels/calc/messages/sum\"},"
                            "{\"$ref\":\"#/channels/calc/messages/note\"}]");
    /* receive: the union, less the types whose handler declares replies
     * (every one but hook)... */
    chanc_assert_json_match(chanc_json_ptr(doc, "/operations/calc_receive/messages"),
                            "[{\"$ref\":\"#/channels/calc/messages/hook\"}]");
    /* ...each of which has its own operation with its reply. */
    chanc_assert_json_match(chanc_json_ptr(doc, "/operations/calc_add"),
                            "{\"action\":\"receive\",\"channel\":{\"$ref\":\"#/channels/calc\"},"
                            "\"messages\":[{\"$ref\":\"#/channels/calc/messages/add\"}],"
                            "\"reply\":{\"channel\":{\"$ref\":\"#/channels/calc\"},"
                            "\"messages\":[{\"$ref\":\"#/channels/calc/messages/sum\"}]}}");
    chanc_assert_json_match(chanc_json_ptr(doc, "/operations/calc_stray/reply/messages"),
                            "[{\"$ref\":\"#/channels/calc/messages/note\"}]");
    /* mixed: incoming is the union; add has a reply, hook none. */
    chanc_assert_json_match(chanc_json_ptr(doc, "/operations/mixed_receive/messages"),
                            "[{\"$ref\":\"#/channels/mixed/messages/hook\"}]");
    assert_non_null(chanc_json_ptr(doc, "/operations/mixed_add/reply"));
    /* plain: no table, no handler: no handler error, no reply. */
    assert_null(chanc_json_find(chanc_json_ptr(doc, "/operations/plain_send/messages"),
                                "{\"$ref\":\"#/channels/plain/messages/handler_error\"}"));
    assert_null(chanc_json_ptr(doc, "/operations/plain_add"));
    /* The page shows the replies. */
    char *page = chanc_asyncapi_html(doc, NULL);
    assert_non_null(page);
    assert_non_null(strstr(page, "<p>Answered with:</p>\n<ul>\n<li><a href=\"#message-sum\">"));
    free(page);
    json_decref(doc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        chanc_unit_test(test_the_reply_comes_before_complete, fixture_setup, fixture_teardown),
        chanc_unit_test(test_each_type_goes_to_its_handler, fixture_setup, fixture_teardown),
        chanc_unit_test(test_an_undeclared_reply_is_the_error_frame_and_a_log_line, fixture_setup,
                        fixture_teardown),
        chanc_unit_test(test_an_invalid_reply_payload_is_the_error_frame, fixture_setup,
                        fixture_teardown),
        chanc_unit_test(test_a_failing_handler_sends_the_error_frame_not_its_reply, fixture_setup,
                        fixture_teardown),
        chanc_unit_test(test_a_deferred_handler_replies_later_on_the_virtual_clock, fixture_setup,
                        fixture_teardown),
        chanc_unit_test(test_a_bad_reply_later_is_one_error_frame, fixture_setup,
                        fixture_teardown),
        chanc_unit_test(test_with_incoming_too_types_without_a_handler_go_to_receive_message,
                        fixture_setup, fixture_teardown),
        chanc_unit_test(test_validation_errors_are_unchanged, fixture_setup, fixture_teardown),
        chanc_unit_test(test_routes_refuse_tables_that_do_not_fit, fixture_setup,
                        fixture_teardown),
        chanc_unit_test(test_the_document_lists_replies_and_marks_them, fixture_setup,
                        fixture_teardown),
    };
    return chanc_run_group_tests_name("framework.actions", tests, NULL, NULL);
}
