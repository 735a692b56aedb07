/* framework.asyncapi: the AsyncAPI 3.0.0 document generated from an app's
 * routes (chanc_asyncapi_document) — channels, parameters, operations,
 * messages as whole frames, schema bounds, the security scheme, events,
 * close codes — and the HTML page rendered from it. The document's
 * validity by the official parser is asyncapi.chat (and tests/package). */
#include <chanc/testing.h>
#include <stdlib.h>
#include <string.h>

/* --- a small app ------------------------------------------------------------- */

static const chanc_message_type_t say = {
    .action = "say",
    .payload = CHANC_STRING(.min_length = 1, .max_length = 100),
    .description = "Say something.",
};
static const chanc_message_type_t move = {
    .action = "move",
    .payload = CHANC_OBJECT(
        CHANC_FIELD("x", CHANC_INTEGER(.has_minimum = true, .minimum = 0, .has_maximum = true,
                                       .maximum = 9)),
        CHANC_FIELD("speed", CHANC_NUMBER(.has_maximum = true, .maximum = 2.5)),
        CHANC_OPTIONAL("label", CHANC_STRING(.max_length = 20, .nullable = true)),
        CHANC_OPTIONAL("tags", CHANC_ARRAY(CHANC_STRING(), .max_length = 3))),
};
static const chanc_message_type_t leave = {.action = "leave"}; /* payload null */
static const chanc_message_type_t *const incoming[] = {&say, &move, &leave, NULL};

/* What the room gets for `say`: the same action, other fields beside it. */
static const chanc_message_type_t said = {
    .action = "say",
    .name = "said",
    .payload = CHANC_STRING(.min_length = 1, .max_length = 100),
    .frame_fields = (const chanc_field_t[]){CHANC_FIELD("who", CHANC_STRING()),
                                            CHANC_GROUP_FRAME_FIELDS, {0}},
};
static const chanc_message_type_t board = {
    .action = "board",
    .payload = CHANC_OBJECT_OPEN(CHANC_FIELD("cells", CHANC_ARRAY(CHANC_BOOLEAN()))),
};
static const chanc_message_type_t *const outgoing[] = {&said, &board, &chanc_msg_complete, NULL};

static const chanc_message_type_t kick = {
    .action = "kick", .payload = CHANC_OBJECT(CHANC_FIELD("reason", CHANC_STRING()))};
static const chanc_message_type_t *const events[] = {&kick, NULL};

static int anyone(chanc_conn_t *c, void *ud, chanc_status_t *st) {
    (void)c, (void)ud, (void)st;
    return CHANC_AUTH_SKIP;
}
static const chanc_authenticator_t cookie_auth = {.name = "cookie", .authenticate = anyone};
static const chanc_authenticator_t *const auth[] = {&cookie_auth, NULL};

static int on_message(chanc_conn_t *c, const chanc_message_type_t *type, const json_t *payload,
                      const json_t *frame) {
    (void)c, (void)type, (void)payload, (void)frame;
    return 0;
}

static const chanc_consumer_t game = {
    .name = "game",
    .incoming = incoming,
    .outgoing = outgoing,
    .authenticators = auth,
    .receive_message = on_message,
    .events = events,
    .send_completion = true,
};

/* No incoming union, no outgoing list, no authenticators. */
static const chanc_consumer_t bare = {.name = "bare"};

static const chanc_asyncapi_security_t session = {
    .id = "session", .name = "sid", .in = "cookie", .description = "the session"};

typedef struct app_state {
    uv_loop_t loop;
    chanc_app_t *app;
} app_state_t;

static int setup(void **state) {
    app_state_t *s = calloc(1, sizeof *s);
    assert_non_null(s);
    assert_int_equal(uv_loop_init(&s->loop), 0);
    s->app = chanc_app_create(&(chanc_app_config_t){.loop = &s->loop}, NULL);
    assert_non_null(s->app);
    *state = s;
    return 0;
}

static int teardown(void **state) {
    app_state_t *s = *state;
    chanc_app_destroy(s->app);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&s->loop), 0);
    free(s);
    return 0;
}

static json_t *document(chanc_app_t *app) {
    chanc_error_t err = {0};
    json_t *doc = chanc_asyncapi_document(
        app,
        &(chanc_asyncapi_info_t){.title = "game", .version = "2.0.0", .description = "A game.",
                                 .host = "localhost:9000", .security = &session},
        &err);
    if (!doc)
        fail_msg("no document: %s", err.text);
    return doc;
}

static const json_t *at(const json_t *v, const char *path) { /* "a/b/c" */
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *save = NULL, *k = strtok_r(buf, "/", &save); k && v; k = strtok_r(NULL, "/", &save))
        v = json_is_array(v) ? json_array_get(v, (size_t)atoi(k)) : json_object_get(v, k);
    if (!v)
        fail_msg("nothing at %s", path);
    return v;
}

/* --- tests ------------------------------------------------------------------- */

static void test_channels_and_operations(void **state) {
    app_state_t *s = *state;
    assert_int_equal(chanc_app_route(s->app, "ws/game/{room:int}/{nick}/", &game, NULL), 0);
    json_t *doc = document(s->app);
    chanc_assert_json_match(doc, "{\"asyncapi\": \"3.0.0\", \"info\": {\"title\": \"game\","
                                 " \"version\": \"2.0.0\", \"description\": \"A game.\"},"
                                 " \"defaultContentType\": \"application/json\","
                                 " \"servers\": {\"default\": {\"host\": \"localhost:9000\","
                                 " \"protocol\": \"ws\"}}}");
    chanc_assert_json_match(at(doc, "channels/game"),
                            "{\"address\": \"/ws/game/{room}/{nick}/\","
                            " \"parameters\": {\"room\": {\"description\": \"int: digits ([0-9]+)\"},"
                            " \"nick\": {}}}");
    /* receive: the incoming union, in order */
    chanc_assert_json_match(at(doc, "operations/game_receive"),
                            "{\"action\": \"receive\", \"channel\": {\"$ref\": \"#/channels/game\"},"
                            " \"messages\": [{\"$ref\": \"#/channels/game/messages/say\"},"
                            " {\"$ref\": \"#/channels/game/messages/move\"},"
                            " {\"$ref\": \"#/channels/game/messages/leave\"}],"
                            " \"security\": [{\"$ref\": \"#/components/securitySchemes/session\"}]}");
    /* send: the framework's frames first, then the declared ones (complete
     * once although both list it) */
    chanc_assert_json_match(
        at(doc, "operations/game_send"),
        "{\"action\": \"send\", \"messages\": ["
        "{\"$ref\": \"#/channels/game/messages/authentication\"},"
        " {\"$ref\": \"#/channels/game/messages/error\"},"
        " {\"$ref\": \"#/channels/game/messages/handler_error\"},"
        " {\"$ref\": \"#/channels/game/messages/complete\"},"
        " {\"$ref\": \"#/channels/game/messages/group_complete\"},"
        " {\"$ref\": \"#/channels/game/messages/said\"},"
        " {\"$ref\": \"#/channels/game/messages/board\"}]}");
    assert_int_equal(json_object_size(at(doc, "channels/game/messages")), 10);
    chanc_assert_json_match(at(doc, "channels/game/messages/said"),
                            "{\"$ref\": \"#/components/messages/said\"}");
    chanc_assert_json_match(at(doc, "components/messages/said"),
                            "{\"name\": \"say\", \"contentType\": \"application/json\","
                            " \"payload\": {\"$ref\": \"#/components/schemas/said\"}}");
    chanc_assert_json_match(at(doc, "components/messages/say"),
                            "{\"name\": \"say\", \"description\": \"Say something.\"}");
    chanc_assert_json_match(at(doc, "channels/game/x-chanc-events"),
                            "[{\"name\": \"kick\", \"payload\": {\"type\": \"object\","
                            " \"required\": [\"reason\"]}}]");
    assert_non_null(chanc_json_find(at(doc, "info/x-chanc-close-codes"), "{\"code\": 4408}"));
    assert_non_null(chanc_json_find(at(doc, "info/x-chanc-close-codes"), "{\"code\": 1009}"));
    json_decref(doc);
}

static void test_schemas_are_whole_frames_with_bounds(void **state) {
    app_state_t *s = *state;
    assert_int_equal(chanc_app_route(s->app, "ws/game/", &game, NULL), 0);
    json_t *doc = document(s->app);
    const json_t *schemas = at(doc, "components/schemas");
    chanc_assert_json_match(at(schemas, "say"),
                            "{\"type\": \"object\", \"additionalProperties\": false,"
                            " \"required\": [\"action\", \"payload\"],"
                            " \"properties\": {\"action\": {\"type\": \"string\", \"const\": \"say\"},"
                            " \"payload\": {\"type\": \"string\", \"minLength\": 1, \"maxLength\": 100}}}");
    /* lengths count code points, and say so */
    assert_non_null(strstr(json_string_value(at(schemas, "say/properties/payload/description")),
                           "code points"));
    const json_t *mv = at(schemas, "move/properties/payload");
    chanc_assert_json_match(mv, "{\"type\": \"object\", \"additionalProperties\": false,"
                                " \"required\": [\"x\", \"speed\"]}");
    chanc_assert_json_match(at(mv, "properties"),
                            "{\"x\": {\"type\": \"integer\", \"minimum\": 0, \"maximum\": 9},"
                            " \"speed\": {\"type\": \"number\", \"maximum\": 2.5},"
                            " \"label\": {\"type\": [\"string\", \"null\"], \"maxLength\": 20},"
                            " \"tags\": {\"type\": \"array\", \"maxItems\": 3,"
                            " \"items\": {\"type\": \"string\"}}}");
    assert_null(json_object_get(at(mv, "properties/x"), "exclusiveMinimum"));
    /* a null payload: may be absent */
    chanc_assert_json_match(at(schemas, "leave"), "{\"required\": [\"action\"],"
                                                  " \"properties\": {\"payload\": {\"type\": \"null\"}}}");
    /* frame fields beside the payload; a group message's is_mine, is_current */
    chanc_assert_json_match(at(schemas, "said"),
                            "{\"required\": [\"action\", \"payload\", \"who\", \"is_mine\","
                            " \"is_current\"], \"properties\": {\"who\": {\"type\": \"string\"},"
                            " \"is_mine\": {\"type\": \"boolean\"},"
                            " \"is_current\": {\"type\": \"boolean\"}}}");
    /* CHANC_OBJECT_OPEN: extra keys allowed */
    assert_null(json_object_get(at(schemas, "board/properties/payload"), "additionalProperties"));
    /* the framework's frames */
    chanc_assert_json_match(at(schemas, "authentication/properties/payload"),
                            "{\"required\": [\"status_code\", \"status_text\", \"data\"],"
                            " \"properties\": {\"status_code\": {\"type\": \"integer\"}}}");
    chanc_assert_json_match(at(schemas, "error/properties/payload"),
                            "{\"type\": \"array\", \"minItems\": 1, \"maxItems\": 64,"
                            " \"items\": {\"required\": [\"type\", \"loc\", \"msg\"],"
                            " \"properties\": {\"loc\": {\"type\": \"array\"}}}}");
    chanc_assert_json_match(at(schemas, "handler_error/properties/payload"),
                            "{\"required\": [\"detail\"]}");
    chanc_assert_json_match(at(schemas, "handler_error/properties/action"), "{\"const\": \"error\"}");
    json_decref(doc);
}

static void test_security_scheme(void **state) {
    app_state_t *s = *state;
    assert_int_equal(chanc_app_route(s->app, "ws/game/", &game, NULL), 0);
    json_t *doc = document(s->app);
    chanc_assert_json_match(at(doc, "components/securitySchemes"),
                            "{\"session\": {\"type\": \"httpApiKey\", \"name\": \"sid\","
                            " \"in\": \"cookie\", \"description\": \"the session\"}}");
    json_decref(doc);
}

/* A consumer without incoming, outgoing or authenticators still gets a
 * channel: the framework's frames, no receive operation, no security. */
static void test_undeclared_consumer(void **state) {
    app_state_t *s = *state;
    assert_int_equal(chanc_app_route(s->app, "ws/bare/{rest:path}", &bare, NULL), 0);
    assert_int_equal(chanc_app_route(s->app, "ws/other/", &bare, NULL), 0);
    json_t *doc = document(s->app);
    assert_non_null(strstr(json_string_value(at(doc, "channels/bare/description")),
                           "not declared"));
    chanc_assert_json_match(at(doc, "channels/bare"),
                            "{\"address\": \"/ws/bare/{rest}\", \"parameters\": {\"rest\":"
                            " {\"description\": \"path: any text, '/' included\"}}}");
    chanc_assert_json_match(at(doc, "channels/bare_2"), "{\"address\": \"/ws/other/\"}");
    assert_null(json_object_get(at(doc, "operations"), "bare_receive"));
    chanc_assert_json_match(at(doc, "operations/bare_send"),
                            "{\"messages\": [{\"$ref\": \"#/channels/bare/messages/authentication\"},"
                            " {\"$ref\": \"#/channels/bare/messages/error\"}]}");
    assert_null(json_object_get(at(doc, "operations/bare_send"), "security"));
    assert_int_equal(json_object_size(at(doc, "components/messages")), 2);
    json_decref(doc);
}

static void test_two_types_one_action(void **state) {
    static const chanc_message_type_t a = {.action = "x"}, b = {.action = "x"};
    static const chanc_message_type_t *const in[] = {&a, NULL}, *const out[] = {&b, NULL};
    static const chanc_consumer_t cons = {.name = "c", .incoming = in, .outgoing = out};
    app_state_t *s = *state;
    assert_int_equal(chanc_app_route(s->app, "c/", &cons, NULL), 0);
    json_t *doc = document(s->app);
    chanc_assert_json_match(at(doc, "components/messages"),
                            "{\"x\": {\"name\": \"x\"}, \"x_2\": {\"name\": \"x\"}}");
    json_decref(doc);
}

/* What a consumer declares, each type once, in order: incoming (the union,
 * or the action table's types), outgoing (the framework's frames it can
 * get — handler_error with receive_message or actions, the completions
 * with send_completion —, the actions' replies, its list). */
static const char *const *names_of(const chanc_message_type_t *const *types, const char **out) {
    size_t n = 0;
    for (; types[n]; n++)
        out[n] = types[n]->name ? types[n]->name : types[n]->action;
    out[n] = NULL;
    return out;
}

static void assert_names(const chanc_message_type_t *const *types, const char *const *want) {
    const char *got[16];
    names_of(types, got);
    size_t i = 0;
    for (; want[i]; i++) {
        assert_non_null(got[i]);
        assert_string_equal(got[i], want[i]);
    }
    assert_null(got[i]);
}

static int act(chanc_conn_t *c, const json_t *payload, chanc_reply_t *reply) {
    (void)c, (void)payload, (void)reply;
    return 0;
}

static void test_declared(void **state) {
    (void)state;
    const chanc_message_type_t *types[16];
    assert_int_equal(chanc_consumer_declared(&game, CHANC_DECLARED_OUTGOING, types, 16), 7);
    assert_names(types, (const char *const[]){"authentication", "error", "handler_error",
                                               "complete", "group_complete", "said", "board",
                                               NULL}); /* chanc_msg_complete listed again: once */
    assert_int_equal(chanc_consumer_declared(&bare, CHANC_DECLARED_OUTGOING, types, 16), 2);
    assert_int_equal(chanc_consumer_declared(&bare, CHANC_DECLARED_INCOMING, types, 16), 0);
    assert_null(types[0]);
    /* too small: as many as fit, and the count */
    assert_int_equal(chanc_consumer_declared(&game, CHANC_DECLARED_OUTGOING, types, 3), 7);
    assert_names(types, (const char *const[]){"authentication", "error", NULL});
    /* an action table: its types in, its replies out */
    static const chanc_message_type_t ask = {.action = "ask"}, answer = {.action = "answer"};
    static const chanc_message_type_t *const replies[] = {&answer, NULL};
    static const chanc_action_t actions[] = {{.type = &ask, .handle = act, .replies = replies},
                                             {0}};
    static const chanc_consumer_t table = {.name = "table", .actions = actions};
    chanc_consumer_declared(&table, CHANC_DECLARED_INCOMING, types, 16);
    assert_names(types, (const char *const[]){"ask", NULL});
    chanc_consumer_declared(&table, CHANC_DECLARED_OUTGOING, types, 16);
    assert_names(types, (const char *const[]){"authentication", "error", "handler_error",
                                               "answer", NULL});
    assert_true(chanc_group_name_valid("room_1.a-b"));
    assert_false(chanc_group_name_valid("room 1"));
    assert_false(chanc_group_name_valid(""));
    assert_false(chanc_group_name_valid(NULL));
}

static void test_bad_info(void **state) {
    app_state_t *s = *state;
    chanc_error_t err = {0};
    assert_null(chanc_asyncapi_document(s->app, &(chanc_asyncapi_info_t){.version = "1"}, &err));
    assert_int_equal(err.code, CHANC_EINVAL);
    assert_null(chanc_asyncapi_document(s->app, NULL, NULL));
}

static void test_html_page(void **state) {
    app_state_t *s = *state;
    assert_int_equal(chanc_app_route(s->app, "ws/game/{room:int}/", &game, NULL), 0);
    chanc_error_t err = {0};
    json_t *doc = chanc_asyncapi_document(
        s->app, &(chanc_asyncapi_info_t){.title = "<b>Tom & \"Jerry\"</b>", .version = "1",
                                         .host = "h:1", .security = &session},
        &err);
    assert_non_null(doc);
    char *html = chanc_asyncapi_html(doc, "/static/style.css");
    assert_non_null(html);
    assert_non_null(strstr(html, "<h1>&lt;b&gt;Tom &amp; &quot;Jerry&quot;&lt;/b&gt;</h1>"));
    assert_null(strstr(html, "<b>Tom"));
    assert_non_null(strstr(html, "<link rel=\"stylesheet\" href=\"/static/style.css\">"));
    assert_non_null(strstr(html, "<code>/ws/game/{room}/</code>"));
    assert_non_null(strstr(html, "id=\"message-said\""));
    assert_non_null(strstr(html, "<code>kick</code>"));
    assert_non_null(strstr(html, "<td>4408</td>"));
    assert_non_null(strstr(html, "Route <code>ws/game/{room:int}/</code>")); /* `code` spans */
    /* nothing a strict CSP refuses: no script, no inline style, no other site */
    assert_null(strstr(html, "<script"));
    assert_null(strstr(html, "style="));
    assert_null(strstr(html, "<style"));
    assert_null(strstr(html, "http://"));
    assert_null(strstr(html, "https://"));
    assert_null(strstr(html, "src="));
    free(html);
    /* without a style sheet: no link */
    html = chanc_asyncapi_html(doc, NULL);
    assert_null(strstr(html, "<link"));
    free(html);
    json_decref(doc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_channels_and_operations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schemas_are_whole_frames_with_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_security_scheme, setup, teardown),
        cmocka_unit_test_setup_teardown(test_undeclared_consumer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_types_one_action, setup, teardown),
        cmocka_unit_test(test_declared),
        cmocka_unit_test_setup_teardown(test_bad_info, setup, teardown),
        cmocka_unit_test_setup_teardown(test_html_page, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
