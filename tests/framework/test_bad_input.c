/* framework.bad_input: every kind of bad frame gets its documented answer
 * (an error frame, or a close with a documented code), and a bystander on
 * the same app keeps working. Table-driven: one row per input. */
#include "test_common.h"

typedef enum { ANSWER_ERROR, ANSWER_CLOSE } answer_kind_t;

typedef struct row {
    const char *name;
    char *(*make)(size_t *len, bool *binary); /* malloc'd bytes */
    answer_kind_t kind;
    const char *error_pattern; /* ANSWER_ERROR: the whole error frame */
    int close_code;            /* ANSWER_CLOSE */
} row_t;

static char *dup_text(const char *s, size_t *len) {
    *len = strlen(s);
    return strdup(s);
}

static char *malformed(size_t *len, bool *bin) { (void)bin; return dup_text("{\"action\": \"echo\",", len); }
static char *not_object(size_t *len, bool *bin) { (void)bin; return dup_text("[1,2,3]", len); }
static char *bare_string(size_t *len, bool *bin) { (void)bin; return dup_text("\"hello\"", len); }
static char *json_null_frame(size_t *len, bool *bin) { (void)bin; return dup_text("null", len); }
static char *empty(size_t *len, bool *bin) { (void)bin; return dup_text("", len); }
static char *unknown_action(size_t *len, bool *bin) { (void)bin; return dup_text("{\"action\":\"rm -rf\",\"payload\":1}", len); }
static char *no_action(size_t *len, bool *bin) { (void)bin; return dup_text("{\"payload\":\"x\"}", len); }
static char *sql_and_html(size_t *len, bool *bin) {
    (void)bin;
    return dup_text("{\"action\":\"echo\",\"payload\":\"'; DROP TABLE x;-- <img src=x onerror=alert(1)>\"}", len);
}

static char *raw_nul(size_t *len, bool *bin) {
    (void)bin;
    static const char bytes[] = "{\"action\":\"echo\",\"payload\":\"a\0b\"}";
    *len = sizeof bytes - 1;
    char *s = malloc(*len);
    memcpy(s, bytes, *len);
    return s;
}

static char *long_action(size_t *len, bool *bin) {
    (void)bin;
    size_t n = 10000; /* under the frame limit, so it reaches validation */
    char *s = malloc(n + 64);
    int k = sprintf(s, "{\"action\":\"");
    memset(s + k, 'a', n);
    strcpy(s + k + n, "\",\"payload\":null}");
    *len = strlen(s);
    return s;
}

static char *deep_nesting(size_t *len, bool *bin) {
    (void)bin;
    size_t depth = 10000;
    char *s = malloc(2 * depth + 64);
    char *p = s + sprintf(s, "{\"action\":\"echo\",\"payload\":");
    memset(p, '[', depth);
    memset(p + depth, ']', depth);
    strcpy(p + 2 * depth, "}");
    *len = strlen(s);
    return s;
}

static char *one_mib(size_t *len, bool *bin) {
    (void)bin;
    size_t n = 1024 * 1024 + 16;
    char *s = malloc(n + 64);
    int k = sprintf(s, "{\"action\":\"echo\",\"payload\":\"");
    memset(s + k, 'x', n);
    strcpy(s + k + n, "\"}");
    *len = strlen(s);
    return s;
}

static char *just_over_limit(size_t *len, bool *bin) {
    (void)bin;
    *len = CHANC_DEFAULT_MAX_FRAME + 1;
    char *s = malloc(*len);
    memset(s, ' ', *len); /* whitespace: size is checked before parsing */
    return s;
}

static char *invalid_utf8(size_t *len, bool *bin) {
    (void)bin;
    return dup_text("{\"action\":\"echo\",\"payload\":\"\xC3\x28\"}", len);
}

static char *overlong_utf8(size_t *len, bool *bin) {
    (void)bin;
    return dup_text("{\"action\":\"echo\",\"payload\":\"\xC0\xAF\"}", len);
}

static char *surrogate_utf8(size_t *len, bool *bin) {
    (void)bin;
    return dup_text("{\"action\":\"echo\",\"payload\":\"\xED\xA0\x80\"}", len);
}

static char *binary_frame(size_t *len, bool *bin) {
    *bin = true;
    return dup_text("{\"action\":\"ping\"}", len);
}

#define ERR(type) "{\"action\":\"error\",\"payload\":[{\"type\":\"" type "\"}]}"

static const row_t rows[] = {
    {"malformed JSON", malformed, ANSWER_ERROR, ERR("json_invalid"), 0},
    {"JSON array, not an object", not_object, ANSWER_ERROR,
     "{\"action\":\"error\",\"payload\":[{\"type\":\"dict_type\",\"loc\":[],\"msg\":\"Input should be a valid object\"}]}", 0},
    {"JSON string, not an object", bare_string, ANSWER_ERROR, ERR("dict_type"), 0},
    {"JSON null", json_null_frame, ANSWER_ERROR, ERR("dict_type"), 0},
    {"empty frame", empty, ANSWER_ERROR, ERR("json_invalid"), 0},
    {"unknown action", unknown_action, ANSWER_ERROR,
     "{\"action\":\"error\",\"payload\":[{\"type\":\"union_tag_invalid\",\"loc\":[\"action\"]}]}", 0},
    {"no action", no_action, ANSWER_ERROR, ERR("union_tag_not_found"), 0},
    {"raw NUL byte", raw_nul, ANSWER_ERROR, ERR("json_invalid"), 0},
    {"10,000-character action", long_action, ANSWER_ERROR, ERR("union_tag_invalid"), 0},
    {"10,000 levels of nesting", deep_nesting, ANSWER_ERROR, ERR("json_invalid"), 0},
    {"binary frame", binary_frame, ANSWER_ERROR, ERR("frame_type"), 0},
    {"SQL and HTML in text (valid: echoed verbatim)", sql_and_html, ANSWER_ERROR,
     "{\"action\":\"echo\",\"payload\":\"'; DROP TABLE x;-- <img src=x onerror=alert(1)>\"}", 0},
    {"1 MiB frame", one_mib, ANSWER_CLOSE, NULL, CHANC_CLOSE_TOO_BIG},
    {"limit + 1 byte", just_over_limit, ANSWER_CLOSE, NULL, CHANC_CLOSE_TOO_BIG},
    {"invalid UTF-8", invalid_utf8, ANSWER_CLOSE, NULL, CHANC_CLOSE_INVALID_UTF8},
    {"overlong UTF-8", overlong_utf8, ANSWER_CLOSE, NULL, CHANC_CLOSE_INVALID_UTF8},
    {"UTF-16 surrogate in UTF-8", surrogate_utf8, ANSWER_CLOSE, NULL, CHANC_CLOSE_INVALID_UTF8},
};

/* A client of the echo consumer, connected, past its authentication. */
static chanc_communicator_t *echo_client(chanc_test_t *t) {
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/echo/");
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    return c;
}

static void check_row(chanc_test_t *t, const row_t *r) {
    print_message("row: %s\n", r->name);
    chanc_communicator_t *bystander = echo_client(t);
    chanc_communicator_t *c = echo_client(t);

    size_t len = 0;
    bool binary = false;
    char *bytes = r->make(&len, &binary);
    assert_int_equal(chanc_communicator_send_raw(c, bytes, len, binary), 0);
    free(bytes);

    if (r->kind == ANSWER_ERROR) {
        chanc_assert_receive_match(c, r->error_pattern);
        json_t *rest = chanc_communicator_receive_all_json(c, 1000);
        chanc_assert_json_match(rest, "[]"); /* exactly one answer (+ complete) */
        json_decref(rest);
        /* The connection stays usable. */
        chanc_communicator_send_message(c, &demo_ping, NULL);
        chanc_assert_receive_match(c, "{\"action\":\"pong\"}");
    } else {
        chanc_assert_closed(c, r->close_code);
        json_t *rest = chanc_communicator_receive_all_json(c, 1000);
        chanc_assert_json_match(rest, "[]"); /* closed without an answer frame */
        json_decref(rest);
    }
    /* The bystander never saw anything and still works. */
    chanc_assert_receive_nothing(bystander);
    chanc_communicator_send_message(bystander, &demo_echo, json_string("still here"));
    chanc_assert_receive_match(bystander, "{\"action\":\"echo\",\"payload\":\"still here\"}");
    chanc_communicator_disconnect(bystander);
    chanc_communicator_disconnect(c);
    assert_int_equal(chanc_app_connections(t->app), 0);
}

static void test_bad_input_matrix(void **state) {
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        check_row(*state, &rows[i]);
}

/* What the schemas say, derived (chanc/derive.h): every echo consumer
 * type's missing payload, wrong types, bounds and neighbours, extra keys,
 * surrogates and huge numbers get their documented error items, on one
 * connection that stays usable; a bystander sees nothing of it. */
static void test_derived_inputs(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *bystander = echo_client(t);
    chanc_communicator_t *c = echo_client(t);
    const chanc_message_type_t *types[] = {&demo_echo, &demo_shout, &demo_fail, &demo_ping};
    size_t total = 0;
    for (size_t i = 0; i < 4; i++) {
        json_t *cases = chanc_schema_cases(types[i]);
        size_t n = chanc_assert_schema_cases(c, types[i]);
        assert_int_equal(n, json_array_size(cases));
        total += n;
        json_decref(cases);
    }
    assert_true(total > 100);
    chanc_assert_receive_nothing(bystander);
    /* The room consumer's types, through a member of the lobby. */
    chanc_communicator_t *alice = room_client(t, "lobby", "alice");
    chanc_assert_connect(alice);
    chanc_assert_authenticated_status_ok(alice);
    json_decref(chanc_communicator_receive_all_json(alice, 1000)); /* joined */
    chanc_assert_schema_cases(alice, &demo_whisper); /* say: its accepted cases go to the room */
    chanc_assert_schema_cases(alice, &demo_say);
    chanc_assert_schema_cases(alice, &demo_ping);
}

static void test_long_action_is_echoed_truncated(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/echo/");
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    size_t len;
    bool bin = false;
    char *bytes = long_action(&len, &bin);
    chanc_communicator_send_raw(c, bytes, len, false);
    free(bytes);
    json_t *err = chanc_communicator_receive_json(c, 1000);
    assert_non_null(err);
    char *text = chanc_json_dump(err);
    assert_true(strlen(text) < 400); /* 10 KB in, a small answer out */
    free(text);
    json_decref(err);
}

/* jansson's error text quotes the token it stopped in, cut inside a UTF-8
 * sequence here ("\u00e" then the first byte of U+0421): the item keeps
 * its msg, the bad byte replaced (fuzz.frames found items without one). */
static void test_invalid_json_quoting_half_a_character_keeps_its_msg(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/echo/");
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    chanc_communicator_send_text(c, "{\"action\"\":caf\xc3\xa9 \\u00e\xd0\xa1\x03\"}");
    json_t *err = chanc_communicator_receive_json(c, 1000);
    chanc_assert_json_match(err, "{\"action\": \"error\", \"payload\": [{\"type\": \"json_invalid\"}]}");
    const char *msg = chanc_json_str(err, "/payload/0/msg");
    assert_non_null(msg);
    assert_true(strncmp(msg, "Invalid JSON: ", 14) == 0);
    json_decref(err);
    chanc_assert_open(c);
}

static void send_numbered(chanc_communicator_t *c, int from, int to) {
    for (int i = from; i < to; i++) {
        char frame[64];
        snprintf(frame, sizeof frame, "{\"action\":\"echo\",\"payload\":\"%d\"}", i);
        chanc_communicator_send_text(c, frame);
    }
}

/* Answers [0, n) must be echoes of first.. in order, the rest rate_limited
 * refusals; returns the number of echoes. */
static size_t check_answers(json_t *all, int first) {
    size_t i, echoes = 0;
    json_t *f;
    json_array_foreach(all, i, f) {
        if (strcmp(chanc_json_str(f, "/action"), "echo") == 0) {
            assert_int_equal(echoes, i); /* no echo after a refusal */
            char want[24];
            snprintf(want, sizeof want, "%d", first + (int)i);
            assert_string_equal(chanc_json_str(f, "/payload"), want);
            echoes++;
        } else {
            chanc_assert_json_match(f, "{\"action\":\"error\",\"payload\":[{\"type\":"
                                       "\"rate_limited\",\"loc\":[],\"ctx\":"
                                       "{\"limit_per_second\":200,\"burst\":400}}]}");
        }
    }
    return echoes;
}

/* A flood of 10,000 frames at one instant: the default limit (200/s,
 * bursts of 400) answers the first 400 and refuses the rest, one
 * rate_limited error each, in order; after a virtual second 200 more pass;
 * a bystander is never slowed. */
static void test_flood_of_frames_is_rate_limited(void **state) {
    chanc_test_t *t = *state;
    assert_int_equal(chanc_app_rate_limit(t->app), CHANC_DEFAULT_RATE_LIMIT);
    chanc_communicator_t *bystander = chanc_test_communicator(t, "/ws/echo/");
    chanc_assert_connect(bystander);
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/echo/");
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    send_numbered(c, 0, 10000);
    json_t *all = chanc_communicator_receive_all_json(c, 10000);
    assert_int_equal(json_array_size(all), 10000); /* every frame answered */
    assert_int_equal(check_answers(all, 0), 400);
    json_decref(all);

    chanc_test_advance(t, 1000); /* 200 frames' worth of tokens */
    send_numbered(c, 400, 700);
    all = chanc_communicator_receive_all_json(c, 10000);
    assert_int_equal(json_array_size(all), 300);
    assert_int_equal(check_answers(all, 400), 200);
    json_decref(all);

    chanc_assert_authenticated_status_ok(bystander);
    chanc_communicator_send_message(bystander, &demo_echo, json_string("unaffected"));
    chanc_assert_receive_match(bystander, "{\"action\":\"echo\",\"payload\":\"unaffected\"}");
}

static int unlimited(chanc_test_t *t, void *ud) { return demo_setup(t, ud); }

static void test_rate_limit_can_be_turned_off(void **state) {
    (void)state;
    chanc_test_options_t opts = {.setup = unlimited, .app.rate_limit = CHANC_RATE_UNLIMITED};
    chanc_test_t *t = chanc_test_create(&opts);
    assert_non_null(t);
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/echo/");
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    send_numbered(c, 0, 10000);
    json_t *all = chanc_communicator_receive_all_json(c, 10000);
    assert_int_equal(json_array_size(all), 10000);
    assert_int_equal(check_answers(all, 0), 10000);
    json_decref(all);
    chanc_test_destroy(t);
}

static void test_rate_limit_and_burst_are_settings(void **state) {
    (void)state;
    chanc_test_options_t opts = {.setup = unlimited, .app.rate_limit = 5, .app.rate_burst = 3};
    chanc_test_t *t = chanc_test_create(&opts);
    assert_non_null(t);
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/echo/");
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    send_numbered(c, 0, 4);
    chanc_assert_receive_match(c, "{\"action\":\"echo\",\"payload\":\"0\"}");
    chanc_assert_receive_match(c, "{\"action\":\"echo\",\"payload\":\"1\"}");
    chanc_assert_receive_match(c, "{\"action\":\"echo\",\"payload\":\"2\"}");
    chanc_assert_receive_match(c, "{\"action\":\"error\",\"payload\":[{\"type\":\"rate_limited\","
                                  "\"msg\":\"Too many messages: at most 5 per second (bursts of 3); "
                                  "this one was not processed\"}]}");
    chanc_test_advance(t, 199); /* 0.995 of a token: still refused */
    send_numbered(c, 4, 5);
    chanc_assert_receive_match(c, "{\"action\":\"error\",\"payload\":[{\"type\":\"rate_limited\"}]}");
    chanc_test_advance(t, 1); /* one frame per 200 ms */
    send_numbered(c, 5, 6);
    chanc_assert_receive_match(c, "{\"action\":\"echo\",\"payload\":\"5\"}");
    chanc_test_advance(t, 60000); /* refills to the burst, not beyond */
    send_numbered(c, 6, 10);
    json_t *all = chanc_communicator_receive_all_json(c, 1000);
    assert_int_equal(json_array_size(all), 4);
    assert_string_equal(chanc_json_str(all, "/2/payload"), "8");
    assert_string_equal(chanc_json_str(all, "/3/action"), "error");
    json_decref(all);
    chanc_test_destroy(t);
}

static int small_frames(chanc_test_t *t, void *ud) { return demo_setup(t, ud); }

static void test_max_frame_is_configurable(void **state) {
    (void)state;
    chanc_test_options_t opts = {.setup = small_frames, .app.max_frame = 64};
    chanc_test_t *t = chanc_test_create(&opts);
    assert_non_null(t);
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/echo/");
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    chanc_communicator_send_text(c, "{\"action\":\"echo\",\"payload\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}" /* 64 bytes */);
    chanc_assert_receive_match(c, "{\"action\":\"echo\"}");
    chanc_communicator_send_text(c, "{\"action\":\"echo\",\"payload\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}" /* 65 */);
    chanc_assert_closed(c, CHANC_CLOSE_TOO_BIG);
    assert_string_equal(chanc_communicator_close_reason(c), "frame too large");
    chanc_test_destroy(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        DEMO_TEST(test_bad_input_matrix),
        DEMO_TEST(test_derived_inputs),
        DEMO_TEST(test_long_action_is_echoed_truncated),
        DEMO_TEST(test_invalid_json_quoting_half_a_character_keeps_its_msg),
        DEMO_TEST(test_flood_of_frames_is_rate_limited),
        cmocka_unit_test(test_rate_limit_can_be_turned_off),
        cmocka_unit_test(test_rate_limit_and_burst_are_settings),
        cmocka_unit_test(test_max_frame_is_configurable),
    };
    return chanc_run_group_tests_name("framework.bad_input", tests, NULL, NULL);
}
