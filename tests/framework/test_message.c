/* framework.message: the message API on its own, without a connection:
 * schemas, union validation into the documented error list
 * [{"type","loc","msg"}] (one test per error kind, exact type and loc),
 * the 64-error cap, truncation of echoed client text, UTF-8 string
 * lengths, and one-call building of outgoing frames.
 *
 * json_invalid and frame_type are produced by the connection before the
 * message API sees a frame; framework.bad_input covers them. */
#include <chanc/testing.h>
#include <stdlib.h>
#include <string.h>

/* --- message types -------------------------------------------------------- */

static const chanc_message_type_t t_ping = {.action = "ping", .payload = CHANC_NULL()};
static const chanc_message_type_t t_bare = {.action = "bare"}; /* payload NULL */
static const chanc_message_type_t t_text = {
    .action = "text", .payload = CHANC_STRING(.min_length = 2, .max_length = 5)};
static const chanc_message_type_t t_count = {
    .action = "count", .payload = CHANC_INTEGER(.has_minimum = true, .minimum = -3,
                                                .has_maximum = true, .maximum = 10)};
static const chanc_message_type_t t_ratio = {
    .action = "ratio", .payload = CHANC_NUMBER(.has_minimum = true, .minimum = 0,
                                               .has_maximum = true, .maximum = 0.5)};
static const chanc_message_type_t t_flag = {.action = "flag", .payload = CHANC_BOOLEAN(.nullable = false)};
static const chanc_message_type_t t_tags = {
    .action = "tags", .payload = CHANC_ARRAY(CHANC_STRING(.max_length = 3), .min_length = 1,
                                             .max_length = 3)};
static const chanc_message_type_t t_any = {.action = "any", .payload = CHANC_ANY(.nullable = true)};
static const chanc_message_type_t t_maybe = {.action = "maybe",
                                             .payload = CHANC_STRING(.nullable = true)};
static const chanc_message_type_t t_order = {
    .action = "order",
    .payload = CHANC_OBJECT(
        CHANC_FIELD("id", CHANC_INTEGER(.has_minimum = true, .minimum = 1)),
        CHANC_FIELD("items",
                    CHANC_ARRAY(CHANC_OBJECT(CHANC_FIELD("name", CHANC_STRING(.min_length = 1)),
                                             CHANC_OPTIONAL("qty", CHANC_INTEGER(
                                                                       .has_minimum = true,
                                                                       .minimum = 1))),
                                .max_length = 10)),
        CHANC_OPTIONAL("note", CHANC_STRING(.nullable = true)),
        CHANC_OPTIONAL("gift", CHANC_BOOLEAN(.nullable = false)),
        CHANC_OPTIONAL("meta", CHANC_OBJECT_OPEN(CHANC_OPTIONAL("source", CHANC_STRING()))))};
/* Bounds whose text %g would mangle (1.23457e+08, 1e+06). */
static const chanc_message_type_t t_big = {
    .action = "big", .payload = CHANC_INTEGER(.has_minimum = true, .minimum = 1000000,
                                              .has_maximum = true, .maximum = 123456789)};

static const chanc_message_type_t *const incoming[] = {
    &t_ping, &t_bare, &t_text, &t_count, &t_ratio, &t_flag, &t_tags,
    &t_any,  &t_maybe, &t_order, &t_big, NULL};

/* --- helpers ------------------------------------------------------------- */

static json_t *parse(const char *text) {
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (!v)
        fail_msg("bad JSON in test: %s: %s", text, jerr.text);
    return v;
}

/* Validate frame text; returns the error array (NULL when valid). */
static json_t *errors_of(const char *frame_text) {
    json_t *frame = parse(frame_text);
    json_t *errors = (json_t *)0x1; /* must be overwritten */
    const chanc_message_type_t *type = NULL;
    int rc = chanc_message_validate(incoming, frame, &type, &errors);
    json_decref(frame);
    if (rc == 0) {
        assert_null(errors);
        assert_non_null(type);
        return NULL;
    }
    assert_int_equal(rc, CHANC_EVALIDATION);
    assert_non_null(errors);
    assert_true(json_is_array(errors));
    assert_true(json_array_size(errors) >= 1);
    return errors;
}

/* Frame text validates, as the given type. */
static void assert_valid(const char *frame_text, const chanc_message_type_t *expected) {
    json_t *frame = parse(frame_text);
    json_t *errors = NULL;
    const chanc_message_type_t *type = NULL;
    int rc = chanc_message_validate(incoming, frame, &type, &errors);
    if (rc != 0) {
        char *e = chanc_json_dump(errors);
        print_error("unexpected errors for %s: %s\n", frame_text, e);
        free(e);
    }
    assert_int_equal(rc, 0);
    assert_null(errors);
    assert_ptr_equal(type, expected);
    json_decref(frame);
}

/* The error at index i has exactly this type and loc (JSON text), only the
 * keys type/loc/msg, and a non-empty msg. */
static void assert_error_at(const json_t *errors, size_t i, const char *type, const char *loc) {
    json_t *e = json_array_get(errors, i);
    assert_non_null(e);
    assert_int_equal(json_object_size(e), 3);
    assert_string_equal(json_string_value(json_object_get(e, "type")), type);
    json_t *want = parse(loc);
    json_t *got = json_object_get(e, "loc");
    if (!json_equal(got, want)) {
        char *g = chanc_json_dump(got);
        print_error("error %zu: loc %s, expected %s\n", i, g, loc);
        free(g);
        fail();
    }
    json_decref(want);
    const char *msg = json_string_value(json_object_get(e, "msg"));
    assert_non_null(msg);
    assert_true(strlen(msg) > 0);
}

static const char *msg_at(const json_t *errors, size_t i) {
    return json_string_value(json_object_get(json_array_get(errors, i), "msg"));
}

/* Exactly one error, of this type at this loc (and this msg unless
 * msg is NULL). */
static void expect_one(const char *frame_text, const char *type, const char *loc,
                       const char *msg) {
    json_t *errors = errors_of(frame_text);
    assert_non_null(errors);
    if (json_array_size(errors) != 1) {
        char *e = chanc_json_dump(errors);
        print_error("%s: expected one error, got %s\n", frame_text, e);
        free(e);
        fail();
    }
    assert_error_at(errors, 0, type, loc);
    if (msg)
        assert_string_equal(msg_at(errors, 0), msg);
    json_decref(errors);
}

static char *repeat(const char *unit, size_t times) {
    size_t n = strlen(unit);
    char *s = malloc(n * times + 1);
    for (size_t i = 0; i < times; i++)
        memcpy(s + i * n, unit, n);
    s[n * times] = '\0';
    return s;
}

/* --- valid frames ------------------------------------------------------ */

static void test_valid_frames_pass(void **state) {
    (void)state;
    assert_valid("{\"action\":\"ping\",\"payload\":null}", &t_ping);
    assert_valid("{\"action\":\"text\",\"payload\":\"hey\"}", &t_text);
    assert_valid("{\"action\":\"count\",\"payload\":-3}", &t_count); /* bounds inclusive */
    assert_valid("{\"action\":\"count\",\"payload\":10}", &t_count);
    assert_valid("{\"action\":\"ratio\",\"payload\":0}", &t_ratio); /* integer is a number */
    assert_valid("{\"action\":\"ratio\",\"payload\":0.5}", &t_ratio);
    assert_valid("{\"action\":\"flag\",\"payload\":false}", &t_flag);
    assert_valid("{\"action\":\"tags\",\"payload\":[\"a\",\"bc\",\"def\"]}", &t_tags);
    assert_valid("{\"action\":\"order\",\"payload\":{\"id\":1,\"items\":[]}}", &t_order);
    assert_valid("{\"action\":\"order\",\"payload\":{\"id\":7,\"items\":[{\"name\":\"x\",\"qty\":2},"
                 "{\"name\":\"y\"}],\"note\":\"hi\",\"gift\":true,\"meta\":{}}}",
                 &t_order);
    assert_valid("{\"action\":\"big\",\"payload\":123456789}", &t_big);

    /* type may be NULL; errors may be NULL. */
    json_t *frame = parse("{\"action\":\"flag\",\"payload\":true}");
    assert_int_equal(chanc_message_validate(incoming, frame, NULL, NULL), 0);
    json_decref(frame);
}

/* Two members with one action. */
static const chanc_message_type_t a1 = {.action = "dup", .payload = CHANC_STRING(.min_length = 0)};
static const chanc_message_type_t a2 = {.action = "dup", .payload = CHANC_INTEGER(.nullable = false)};

static void test_first_member_with_the_action_is_chosen(void **state) {
    (void)state;
    const chanc_message_type_t *const u[] = {&a1, &a2, NULL};
    json_t *frame = parse("{\"action\":\"dup\",\"payload\":\"s\"}");
    const chanc_message_type_t *type = NULL;
    assert_int_equal(chanc_message_validate(u, frame, &type, NULL), 0);
    assert_ptr_equal(type, &a1);
    json_decref(frame);
    /* Discriminated: no fall-through to the second member. */
    frame = parse("{\"action\":\"dup\",\"payload\":1}");
    json_t *errors = NULL;
    assert_int_equal(chanc_message_validate(u, frame, &type, &errors), CHANC_EVALIDATION);
    assert_error_at(errors, 0, "string_type", "[\"payload\"]");
    json_decref(errors);
    json_decref(frame);
}

/* --- one test per error kind ----------------------------------------------- */

static void test_dict_type_for_a_non_object_frame(void **state) {
    (void)state;
    expect_one("[1,2]", "dict_type", "[]", "Input should be a valid object");
    expect_one("\"ping\"", "dict_type", "[]", NULL);
    expect_one("null", "dict_type", "[]", NULL);
    expect_one("3", "dict_type", "[]", NULL);
}

static void test_dict_type_for_a_non_object_field(void **state) {
    (void)state;
    expect_one("{\"action\":\"order\",\"payload\":[]}", "dict_type", "[\"payload\"]", NULL);
    expect_one("{\"action\":\"order\",\"payload\":{\"id\":1,\"items\":[],\"meta\":\"m\"}}", "dict_type",
               "[\"payload\",\"meta\"]", "Input should be a valid object");
    expect_one("{\"action\":\"order\",\"payload\":{\"id\":1,\"items\":[3]}}", "dict_type",
               "[\"payload\",\"items\",0]", NULL);
}

static void test_union_tag_not_found(void **state) {
    (void)state;
    const char *msg = "Unable to extract tag using discriminator 'action'";
    expect_one("{\"payload\":null}", "union_tag_not_found", "[\"action\"]", msg);
    expect_one("{}", "union_tag_not_found", "[\"action\"]", msg);
    expect_one("{\"action\":1,\"payload\":null}", "union_tag_not_found", "[\"action\"]", msg);
    expect_one("{\"action\":null}", "union_tag_not_found", "[\"action\"]", msg);
    expect_one("{\"action\":[\"ping\"]}", "union_tag_not_found", "[\"action\"]", msg);
}

static void test_union_tag_invalid(void **state) {
    (void)state;
    json_t *errors = errors_of("{\"action\":\"nope\",\"payload\":null,\"x\":1}");
    assert_int_equal(json_array_size(errors), 1); /* extra keys not checked past the tag */
    assert_error_at(errors, 0, "union_tag_invalid", "[\"action\"]");
    const char *msg = msg_at(errors, 0);
    assert_non_null(strstr(msg, "Input tag 'nope' found using 'action' does not match any of the "
                                "expected tags: 'ping', 'bare', 'text'"));
    json_decref(errors);

    /* Case-sensitive, and the empty string is a tag like any other. */
    expect_one("{\"action\":\"PING\"}", "union_tag_invalid", "[\"action\"]", NULL);
    expect_one("{\"action\":\"\"}", "union_tag_invalid", "[\"action\"]", NULL);

    /* A NULL union knows no action. */
    json_t *frame = parse("{\"action\":\"ping\"}");
    errors = NULL;
    assert_int_equal(chanc_message_validate(NULL, frame, NULL, &errors), CHANC_EVALIDATION);
    assert_int_equal(json_array_size(errors), 1);
    assert_error_at(errors, 0, "union_tag_invalid", "[\"action\"]");
    json_decref(errors);
    json_decref(frame);
}

static void test_extra_forbidden_top_level(void **state) {
    (void)state;
    expect_one("{\"action\":\"ping\",\"payload\":null,\"colour\":\"red\"}", "extra_forbidden",
               "[\"colour\"]", "Extra inputs are not permitted");
}

static void test_extra_forbidden_in_payload(void **state) {
    (void)state;
    expect_one("{\"action\":\"order\",\"payload\":{\"id\":1,\"items\":[],\"colour\":\"red\"}}",
               "extra_forbidden", "[\"payload\",\"colour\"]", "Extra inputs are not permitted");
    expect_one("{\"action\":\"order\",\"payload\":{\"id\":1,\"items\":[{\"name\":\"a\",\"x\":0}]}}",
               "extra_forbidden", "[\"payload\",\"items\",0,\"x\"]", NULL);
}

static void test_missing_payload(void **state) {
    (void)state;
    expect_one("{\"action\":\"text\"}", "missing", "[\"payload\"]", "Field required");
    /* An "any" payload is still a required key. */
    expect_one("{\"action\":\"any\"}", "missing", "[\"payload\"]", NULL);
}

static void test_missing_field(void **state) {
    (void)state;
    expect_one("{\"action\":\"order\",\"payload\":{\"items\":[]}}", "missing", "[\"payload\",\"id\"]",
               "Field required");
    expect_one("{\"action\":\"order\",\"payload\":{\"id\":1,\"items\":[{\"qty\":1}]}}", "missing",
               "[\"payload\",\"items\",0,\"name\"]", NULL);
}

static void test_none_required(void **state) {
    (void)state;
    expect_one("{\"action\":\"ping\",\"payload\":1}", "none_required", "[\"payload\"]",
               "Input should be null");
    expect_one("{\"action\":\"ping\",\"payload\":{}}", "none_required", "[\"payload\"]", NULL);
    expect_one("{\"action\":\"ping\",\"payload\":false}", "none_required", "[\"payload\"]", NULL);
    expect_one("{\"action\":\"bare\",\"payload\":\"x\"}", "none_required", "[\"payload\"]", NULL);
}

static void test_null_payload_absent_or_null_is_accepted(void **state) {
    (void)state;
    assert_valid("{\"action\":\"ping\"}", &t_ping);
    assert_valid("{\"action\":\"ping\",\"payload\":null}", &t_ping);
    assert_valid("{\"action\":\"bare\"}", &t_bare);
    assert_valid("{\"action\":\"bare\",\"payload\":null}", &t_bare);
}

static void test_string_type(void **state) {
    (void)state;
    expect_one("{\"action\":\"text\",\"payload\":42}", "string_type", "[\"payload\"]",
               "Input should be a valid string");
    expect_one("{\"action\":\"text\",\"payload\":null}", "string_type", "[\"payload\"]", NULL);
    expect_one("{\"action\":\"tags\",\"payload\":[\"a\",1]}", "string_type", "[\"payload\",1]", NULL);
}

static void test_string_too_short(void **state) {
    (void)state;
    expect_one("{\"action\":\"text\",\"payload\":\"a\"}", "string_too_short", "[\"payload\"]",
               "String should have at least 2 characters");
    expect_one("{\"action\":\"text\",\"payload\":\"\"}", "string_too_short", "[\"payload\"]", NULL);
    expect_one("{\"action\":\"order\",\"payload\":{\"id\":1,\"items\":[{\"name\":\"\"}]}}",
               "string_too_short", "[\"payload\",\"items\",0,\"name\"]",
               "String should have at least 1 character");
}

static void test_string_too_long(void **state) {
    (void)state;
    expect_one("{\"action\":\"text\",\"payload\":\"abcdef\"}", "string_too_long", "[\"payload\"]",
               "String should have at most 5 characters");
    expect_one("{\"action\":\"tags\",\"payload\":[\"abcd\"]}", "string_too_long", "[\"payload\",0]",
               "String should have at most 3 characters");
}

static void test_string_length_counts_code_points_not_bytes(void **state) {
    (void)state;
    /* max 5: five 2-byte characters (10 bytes) fit, six do not. */
    assert_valid("{\"action\":\"text\",\"payload\":\"\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\"}", &t_text);
    expect_one("{\"action\":\"text\",\"payload\":\"\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\"}",
               "string_too_long", "[\"payload\"]", NULL);
    /* 3-byte (CJK) and 4-byte (emoji, outside the BMP: one code point, not
     * two UTF-16 units) characters. */
    assert_valid("{\"action\":\"text\",\"payload\":\"\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\"}", &t_text);
    assert_valid("{\"action\":\"text\",\"payload\":\"\xF0\x9F\x98\x80\xF0\x9F\x98\x80\"}", &t_text);
    expect_one("{\"action\":\"text\",\"payload\":\"\xF0\x9F\x98\x80\"}", "string_too_short",
               "[\"payload\"]", NULL);
    /* \u escapes decode to the same code points. */
    assert_valid("{\"action\":\"text\",\"payload\":\"\\ud83d\\ude00\\u00e9\"}", &t_text);
    expect_one("{\"action\":\"text\",\"payload\":\"\\ud83d\\ude00\"}", "string_too_short",
               "[\"payload\"]", NULL);
    /* The 4-byte limit of the item schema (max 3) is in characters too. */
    assert_valid("{\"action\":\"tags\",\"payload\":[\"\xF0\x9F\x98\x80\xF0\x9F\x98\x80\xF0\x9F\x98\x80\"]}",
                 &t_tags);
}

static void test_int_type(void **state) {
    (void)state;
    expect_one("{\"action\":\"count\",\"payload\":1.5}", "int_type", "[\"payload\"]",
               "Input should be a valid integer");
    expect_one("{\"action\":\"count\",\"payload\":\"3\"}", "int_type", "[\"payload\"]", NULL);
    expect_one("{\"action\":\"count\",\"payload\":true}", "int_type", "[\"payload\"]", NULL);
    expect_one("{\"action\":\"order\",\"payload\":{\"id\":1,\"items\":[{\"name\":\"a\",\"qty\":\"2\"}]}}",
               "int_type", "[\"payload\",\"items\",0,\"qty\"]", NULL);
}

static void test_float_type(void **state) {
    (void)state;
    expect_one("{\"action\":\"ratio\",\"payload\":\"0.5\"}", "float_type", "[\"payload\"]",
               "Input should be a valid number");
    expect_one("{\"action\":\"ratio\",\"payload\":null}", "float_type", "[\"payload\"]", NULL);
    expect_one("{\"action\":\"ratio\",\"payload\":[]}", "float_type", "[\"payload\"]", NULL);
}

static void test_bool_type(void **state) {
    (void)state;
    expect_one("{\"action\":\"flag\",\"payload\":1}", "bool_type", "[\"payload\"]",
               "Input should be a valid boolean");
    expect_one("{\"action\":\"flag\",\"payload\":\"true\"}", "bool_type", "[\"payload\"]", NULL);
    expect_one("{\"action\":\"order\",\"payload\":{\"id\":1,\"items\":[],\"gift\":null}}", "bool_type",
               "[\"payload\",\"gift\"]", NULL);
}

static void test_list_type(void **state) {
    (void)state;
    expect_one("{\"action\":\"tags\",\"payload\":\"a\"}", "list_type", "[\"payload\"]",
               "Input should be a valid array");
    expect_one("{\"action\":\"tags\",\"payload\":{\"0\":\"a\"}}", "list_type", "[\"payload\"]", NULL);
    expect_one("{\"action\":\"order\",\"payload\":{\"id\":1,\"items\":null}}", "list_type",
               "[\"payload\",\"items\"]", NULL);
}

static void test_too_short(void **state) {
    (void)state;
    expect_one("{\"action\":\"tags\",\"payload\":[]}", "too_short", "[\"payload\"]",
               "Array should have at least 1 item, not 0");
}

static void test_too_long(void **state) {
    (void)state;
    expect_one("{\"action\":\"tags\",\"payload\":[\"a\",\"b\",\"c\",\"d\"]}", "too_long", "[\"payload\"]",
               "Array should have at most 3 items, not 4");
    expect_one("{\"action\":\"order\",\"payload\":{\"id\":1,\"items\":[{\"name\":\"a\"},{\"name\":\"a\"},"
               "{\"name\":\"a\"},{\"name\":\"a\"},{\"name\":\"a\"},{\"name\":\"a\"},{\"name\":\"a\"},"
               "{\"name\":\"a\"},{\"name\":\"a\"},{\"name\":\"a\"},{\"name\":\"a\"}]}}",
               "too_long", "[\"payload\",\"items\"]", "Array should have at most 10 items, not 11");
}

static void test_too_long_still_checks_the_items(void **state) {
    (void)state;
    json_t *errors = errors_of("{\"action\":\"tags\",\"payload\":[\"a\",\"b\",\"c\",4]}");
    assert_int_equal(json_array_size(errors), 2);
    assert_error_at(errors, 0, "too_long", "[\"payload\"]");
    assert_error_at(errors, 1, "string_type", "[\"payload\",3]");
    json_decref(errors);
}

static void test_greater_than_equal(void **state) {
    (void)state;
    expect_one("{\"action\":\"count\",\"payload\":-4}", "greater_than_equal", "[\"payload\"]",
               "Input should be greater than or equal to -3");
    expect_one("{\"action\":\"ratio\",\"payload\":-0.001}", "greater_than_equal", "[\"payload\"]",
               "Input should be greater than or equal to 0");
    expect_one("{\"action\":\"order\",\"payload\":{\"id\":0,\"items\":[]}}", "greater_than_equal",
               "[\"payload\",\"id\"]", "Input should be greater than or equal to 1");
    expect_one("{\"action\":\"count\",\"payload\":-9223372036854775807}", "greater_than_equal",
               "[\"payload\"]", NULL);
}

static void test_less_than_equal(void **state) {
    (void)state;
    expect_one("{\"action\":\"count\",\"payload\":11}", "less_than_equal", "[\"payload\"]",
               "Input should be less than or equal to 10");
    expect_one("{\"action\":\"ratio\",\"payload\":0.5000001}", "less_than_equal", "[\"payload\"]",
               "Input should be less than or equal to 0.5");
    expect_one("{\"action\":\"count\",\"payload\":9223372036854775807}", "less_than_equal",
               "[\"payload\"]", NULL);
}

static void test_bound_messages_print_the_bound_exactly(void **state) {
    (void)state;
    expect_one("{\"action\":\"big\",\"payload\":999999}", "greater_than_equal", "[\"payload\"]",
               "Input should be greater than or equal to 1000000");
    expect_one("{\"action\":\"big\",\"payload\":123456790}", "less_than_equal", "[\"payload\"]",
               "Input should be less than or equal to 123456789");
}

/* --- paths, optional, nullable, open objects ------------------------------ */

static void test_nested_loc_paths(void **state) {
    (void)state;
    json_t *errors = errors_of(
        "{\"action\":\"order\",\"payload\":{\"id\":\"x\",\"items\":[{\"name\":\"a\"},{\"name\":\"b\","
        "\"qty\":0},{\"name\":5}],\"meta\":{\"source\":[]}},\"extra\":true}");
    /* Top-level extras first, then the payload in field order. */
    assert_int_equal(json_array_size(errors), 5);
    assert_error_at(errors, 0, "extra_forbidden", "[\"extra\"]");
    assert_error_at(errors, 1, "int_type", "[\"payload\",\"id\"]");
    assert_error_at(errors, 2, "greater_than_equal", "[\"payload\",\"items\",1,\"qty\"]");
    assert_error_at(errors, 3, "string_type", "[\"payload\",\"items\",2,\"name\"]");
    assert_error_at(errors, 4, "string_type", "[\"payload\",\"meta\",\"source\"]");
    json_decref(errors);
}

static void test_several_errors_in_one_object(void **state) {
    (void)state;
    json_t *errors = errors_of("{\"action\":\"order\",\"payload\":{\"items\":{},\"zzz\":1}}");
    assert_int_equal(json_array_size(errors), 3);
    assert_error_at(errors, 0, "missing", "[\"payload\",\"id\"]");
    assert_error_at(errors, 1, "list_type", "[\"payload\",\"items\"]");
    assert_error_at(errors, 2, "extra_forbidden", "[\"payload\",\"zzz\"]");
    json_decref(errors);
}

static void test_optional_fields_may_be_absent(void **state) {
    (void)state;
    assert_valid("{\"action\":\"order\",\"payload\":{\"id\":1,\"items\":[{\"name\":\"n\"}]}}", &t_order);
    /* Present optional fields are still validated. */
    expect_one("{\"action\":\"order\",\"payload\":{\"id\":1,\"items\":[],\"note\":3}}", "string_type",
               "[\"payload\",\"note\"]", NULL);
}

static void test_nullable_accepts_null_only_where_declared(void **state) {
    (void)state;
    assert_valid("{\"action\":\"maybe\",\"payload\":null}", &t_maybe);
    assert_valid("{\"action\":\"maybe\",\"payload\":\"s\"}", &t_maybe);
    expect_one("{\"action\":\"maybe\",\"payload\":1}", "string_type", "[\"payload\"]", NULL);
    expect_one("{\"action\":\"maybe\"}", "missing", "[\"payload\"]", NULL); /* null, not absent */
    assert_valid("{\"action\":\"order\",\"payload\":{\"id\":1,\"items\":[],\"note\":null}}", &t_order);
    expect_one("{\"action\":\"order\",\"payload\":{\"id\":null,\"items\":[]}}", "int_type",
               "[\"payload\",\"id\"]", NULL);
}

static void test_any_accepts_every_value(void **state) {
    (void)state;
    static const char *const values[] = {"null", "0", "1.5", "\"s\"", "[1,[2]]", "{\"k\":{}}", "true"};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        char frame[64];
        snprintf(frame, sizeof frame, "{\"action\":\"any\",\"payload\":%s}", values[i]);
        assert_valid(frame, &t_any);
    }
    /* A NULL item schema is "any" too. */
    const chanc_schema_t *anything = CHANC_ARRAY(NULL, .max_length = 2);
    json_t *errs = json_array();
    json_t *v = parse("[null,{\"a\":1}]");
    assert_int_equal(chanc_schema_validate(anything, v, NULL, errs), 0);
    json_decref(v);
    json_decref(errs);
}

static void test_open_object_keeps_extra_keys(void **state) {
    (void)state;
    json_t *frame = parse("{\"action\":\"order\",\"payload\":{\"id\":1,\"items\":[],"
                          "\"meta\":{\"source\":\"web\",\"colour\":\"red\",\"n\":[1]}}}");
    const chanc_message_type_t *type = NULL;
    json_t *errors = NULL;
    assert_int_equal(chanc_message_validate(incoming, frame, &type, &errors), 0);
    assert_ptr_equal(type, &t_order);
    /* Validation does not strip them: the handler sees them. */
    json_t *meta = chanc_json_ptr(frame, "/payload/meta");
    assert_int_equal(json_object_size(meta), 3);
    assert_string_equal(chanc_json_str(frame, "/payload/meta/colour"), "red");
    json_decref(frame);
    /* Declared fields of an open object are still checked. */
    expect_one("{\"action\":\"order\",\"payload\":{\"id\":1,\"items\":[],\"meta\":{\"source\":1,"
               "\"x\":2}}}",
               "string_type", "[\"payload\",\"meta\",\"source\"]", NULL);
}

static void test_schema_validate_with_loc_prefix(void **state) {
    (void)state;
    const chanc_schema_t *s = CHANC_OBJECT(CHANC_FIELD("a", CHANC_ARRAY(CHANC_INTEGER(.nullable = false),
                                                                         .max_length = 0)));
    json_t *v = parse("{\"a\":[1,\"2\",3,\"4\"]}");
    json_t *errors = json_array();
    json_array_append_new(errors, json_string("kept")); /* appended to, not replaced */
    json_t *prefix = parse("[\"payload\",\"deep\",7]");
    assert_int_equal(chanc_schema_validate(s, v, prefix, errors), 2);
    assert_int_equal(json_array_size(errors), 3);
    assert_string_equal(json_string_value(json_array_get(errors, 0)), "kept");
    assert_error_at(errors, 1, "int_type", "[\"payload\",\"deep\",7,\"a\",1]");
    assert_error_at(errors, 2, "int_type", "[\"payload\",\"deep\",7,\"a\",3]");
    /* The prefix is borrowed and left alone. */
    assert_int_equal(json_array_size(prefix), 3);
    json_decref(prefix);
    json_decref(errors);

    /* No prefix: loc is the path inside the value; [] at the root. */
    errors = json_array();
    assert_int_equal(chanc_schema_validate(s, v, NULL, errors), 2);
    assert_error_at(errors, 0, "int_type", "[\"a\",1]");
    json_t *root = json_string("x");
    assert_int_equal(chanc_schema_validate(s, root, NULL, errors), 1);
    assert_error_at(errors, 2, "dict_type", "[]");
    json_decref(root);
    json_decref(errors);
    json_decref(v);

    /* A NULL schema accepts anything. */
    errors = json_array();
    assert_int_equal(chanc_schema_validate(NULL, json_null(), NULL, errors), 0);
    assert_int_equal(json_array_size(errors), 0);
    json_decref(errors);
}

/* --- the 64-error cap ---------------------------------------------------- */

static void test_at_most_64_errors_per_frame(void **state) {
    (void)state;
    /* 100 extra keys in the payload. */
    json_t *frame = parse("{\"action\":\"order\",\"payload\":{\"id\":1,\"items\":[]}}");
    json_t *payload = json_object_get(frame, "payload");
    for (int i = 0; i < 100; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%03d", i);
        json_object_set_new(payload, key, json_integer(i));
    }
    json_t *errors = NULL;
    assert_int_equal(chanc_message_validate(incoming, frame, NULL, &errors), CHANC_EVALIDATION);
    assert_int_equal(json_array_size(errors), CHANC_MAX_VALIDATION_ERRORS);
    assert_int_equal(CHANC_MAX_VALIDATION_ERRORS, 64);
    for (size_t i = 0; i < json_array_size(errors); i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(errors, i), "type")),
                            "extra_forbidden");
    json_decref(errors);
    json_decref(frame);

    /* 200 bad array items (and the cap also stops the array walk). */
    const chanc_schema_t *ints = CHANC_ARRAY(CHANC_INTEGER(.nullable = false), .max_length = 0);
    json_t *arr = json_array();
    for (int i = 0; i < 200; i++)
        json_array_append_new(arr, json_string("no"));
    json_t *errs = json_array();
    assert_int_equal(chanc_schema_validate(ints, arr, NULL, errs), 64);
    assert_int_equal(json_array_size(errs), 64);
    assert_error_at(errs, 63, "int_type", "[63]");
    json_decref(errs);
    json_decref(arr);

    /* 65 problems (too_long + 64 bad items): the first 64 are kept. */
    json_t *big = parse("{\"action\":\"tags\"}");
    json_t *items = json_array();
    for (int i = 0; i < 64; i++)
        json_array_append_new(items, json_integer(i));
    json_object_set_new(big, "payload", items);
    errors = NULL;
    assert_int_equal(chanc_message_validate(incoming, big, NULL, &errors), CHANC_EVALIDATION);
    assert_int_equal(json_array_size(errors), 64);
    assert_error_at(errors, 0, "too_long", "[\"payload\"]");
    assert_error_at(errors, 63, "string_type", "[\"payload\",62]");
    json_decref(errors);
    json_decref(big);
}

/* --- echoed client text is cut at 64 bytes + "…" -------------------------- */

static void test_long_unknown_action_is_truncated_in_msg(void **state) {
    (void)state;
    char *action = repeat("a", 10000);
    json_t *frame = json_pack("{s:s,s:n}", "action", action, "payload");
    json_t *errors = NULL;
    assert_int_equal(chanc_message_validate(incoming, frame, NULL, &errors), CHANC_EVALIDATION);
    assert_int_equal(json_array_size(errors), 1);
    assert_error_at(errors, 0, "union_tag_invalid", "[\"action\"]");
    const char *msg = msg_at(errors, 0);
    char *expect = repeat("a", 64);
    char head[128];
    snprintf(head, sizeof head, "Input tag '%s\xE2\x80\xA6' found", expect);
    assert_non_null(strstr(msg, head));
    assert_true(strlen(msg) < 256);
    free(expect);
    json_decref(errors);
    json_decref(frame);
    free(action);

    /* 64 bytes exactly: echoed whole, no ellipsis. */
    action = repeat("b", 64);
    frame = json_pack("{s:s}", "action", action);
    assert_int_equal(chanc_message_validate(incoming, frame, NULL, &errors), CHANC_EVALIDATION);
    char whole[128];
    snprintf(whole, sizeof whole, "Input tag '%s' found", action);
    assert_non_null(strstr(msg_at(errors, 0), whole));
    json_decref(errors);
    json_decref(frame);
    free(action);
}

static void test_long_unknown_key_is_truncated_in_loc(void **state) {
    (void)state;
    char *key = repeat("k", 300);
    char *cut = repeat("k", 64);
    char expect[128];
    snprintf(expect, sizeof expect, "%s\xE2\x80\xA6", cut);

    json_t *frame = json_pack("{s:s,s:n,s:i}", "action", "ping", "payload", key, 1);
    json_t *errors = NULL;
    assert_int_equal(chanc_message_validate(incoming, frame, NULL, &errors), CHANC_EVALIDATION);
    assert_int_equal(json_array_size(errors), 1);
    json_t *loc = json_object_get(json_array_get(errors, 0), "loc");
    assert_int_equal(json_array_size(loc), 1);
    assert_string_equal(json_string_value(json_array_get(loc, 0)), expect);
    json_decref(errors);
    json_decref(frame);

    frame = json_pack("{s:s,s:{s:i,s:[],s:i}}", "action", "order", "payload", "id", 1, "items", key, 2);
    assert_int_equal(chanc_message_validate(incoming, frame, NULL, &errors), CHANC_EVALIDATION);
    loc = json_object_get(json_array_get(errors, 0), "loc");
    assert_int_equal(json_array_size(loc), 2);
    assert_string_equal(json_string_value(json_array_get(loc, 0)), "payload");
    assert_string_equal(json_string_value(json_array_get(loc, 1)), expect);
    json_decref(errors);
    json_decref(frame);
    free(key);
    free(cut);
}

static void test_truncation_does_not_split_utf8(void **state) {
    (void)state;
    /* "a" + 40 × "é": byte 64 is the second byte of the 32nd "é", so the
     * cut falls back to byte 63 ("a" + 31 × "é"). */
    char *tail = repeat("\xC3\xA9", 40);
    char key[128];
    snprintf(key, sizeof key, "a%s", tail);
    char *kept = repeat("\xC3\xA9", 31);
    char expect[128];
    snprintf(expect, sizeof expect, "a%s\xE2\x80\xA6", kept);

    json_t *frame = json_pack("{s:s,s:n,s:i}", "action", "ping", "payload", key, 1);
    json_t *errors = NULL;
    assert_int_equal(chanc_message_validate(incoming, frame, NULL, &errors), CHANC_EVALIDATION);
    assert_string_equal(json_string_value(chanc_json_ptr(errors, "/0/loc/0")), expect);
    json_decref(errors);
    json_decref(frame);

    /* Same for an unknown action (40 × "é" = 80 bytes: cut at 64). */
    char *k32 = repeat("\xC3\xA9", 32);
    char head[160];
    snprintf(head, sizeof head, "Input tag '%s\xE2\x80\xA6'", k32);
    frame = json_pack("{s:s}", "action", tail);
    assert_int_equal(chanc_message_validate(incoming, frame, NULL, &errors), CHANC_EVALIDATION);
    assert_non_null(strstr(msg_at(errors, 0), head));
    json_decref(errors);
    json_decref(frame);
    free(k32);
    free(kept);
    free(tail);
}

/* --- chanc_errors_append ---------------------------------------------------- */

static void test_errors_append(void **state) {
    (void)state;
    json_t *errors = json_array();
    assert_int_equal(chanc_errors_append(errors, "value_error", json_pack("[s,i]", "payload", 2),
                                         "Room %s is full (%d)", "lobby", 10),
                     0);
    assert_int_equal(chanc_errors_append(errors, "value_error", NULL, "no loc"), 0);
    assert_int_equal(json_array_size(errors), 2);
    assert_error_at(errors, 0, "value_error", "[\"payload\",2]");
    assert_string_equal(msg_at(errors, 0), "Room lobby is full (10)");
    assert_error_at(errors, 1, "value_error", "[]");
    json_decref(errors);
}

static void test_long_msg_is_cut_on_a_character_boundary(void **state) {
    (void)state;
    /* 300 × "é" = 600 bytes: cut to fit the message buffer, but never in
     * the middle of a character (the msg must stay a valid string). */
    char *text = repeat("\xC3\xA9", 300);
    for (int pad = 0; pad < 4; pad++) { /* every alignment of the cut */
        json_t *errors = json_array();
        assert_int_equal(chanc_errors_append(errors, "value_error", NULL, "%.*s%s", pad, "xxx", text),
                         0);
        assert_error_at(errors, 0, "value_error", "[]");
        const char *msg = msg_at(errors, 0);
        assert_true(strlen(msg) > 200);
        assert_int_equal(strncmp(msg, "xxx", (size_t)pad), 0);
        json_decref(errors);
    }
    /* A 3-byte and a 4-byte character across the cut. */
    static const char *const units[] = {"\xE6\x97\xA5", "\xF0\x9F\x98\x80"};
    for (size_t u = 0; u < 2; u++) {
        char *many = repeat(units[u], 200);
        for (int pad = 0; pad < 4; pad++) {
            json_t *errors = json_array();
            chanc_errors_append(errors, "value_error", NULL, "%.*s%s", pad, "xxx", many);
            assert_error_at(errors, 0, "value_error", "[]");
            json_decref(errors);
        }
        free(many);
    }
    free(text);
}

/* --- building outgoing frames --------------------------------------------- */

static void test_build_frame_in_one_call(void **state) {
    (void)state;
    chanc_error_t err = {0};
    json_t *payload = json_pack("{s:i,s:[{s:s,s:i}],s:{s:s,s:b}}", "id", 9, "items", "name", "tea",
                                "qty", 2, "meta", "source", "api", "free", 1);
    json_t *frame = chanc_message_build(&t_order, payload, &err);
    assert_non_null(frame);
    assert_int_equal(json_object_size(frame), 2);
    assert_string_equal(chanc_json_str(frame, "/action"), "order");
    assert_ptr_equal(json_object_get(frame, "payload"), payload); /* stolen, not copied */
    assert_string_equal(chanc_json_str(frame, "/payload/items/0/name"), "tea");
    assert_true(json_is_true(chanc_json_ptr(frame, "/payload/meta/free")));
    /* What we build, we accept. */
    assert_int_equal(chanc_message_validate(incoming, frame, NULL, NULL), 0);
    json_decref(frame);

    frame = chanc_message_build(&t_text, json_string("hi"), NULL);
    chanc_assert_json_match(frame, "{\"action\":\"text\",\"payload\":\"hi\"}");
    json_decref(frame);
}

static void test_build_null_payload(void **state) {
    (void)state;
    json_t *frame = chanc_message_build(&t_ping, NULL, NULL);
    assert_non_null(frame);
    assert_int_equal(json_object_size(frame), 2);
    assert_true(json_is_null(json_object_get(frame, "payload"))); /* present, null */
    json_decref(frame);
    frame = chanc_message_build(&t_bare, json_null(), NULL);
    chanc_assert_json_match(frame, "{\"action\":\"bare\",\"payload\":null}");
    json_decref(frame);
    /* NULL payload means JSON null: fine for a nullable schema. */
    frame = chanc_message_build(&t_maybe, NULL, NULL);
    chanc_assert_json_match(frame, "{\"action\":\"maybe\",\"payload\":null}");
    json_decref(frame);
}

static void test_build_refuses_an_invalid_frame(void **state) {
    (void)state;
    chanc_error_t err = {0};
    /* Payload stolen on failure too (valgrind checks it is released). */
    json_t *frame = chanc_message_build(
        &t_order, json_pack("{s:i,s:[{s:i}]}", "id", 1, "items", "name", 5), &err);
    assert_null(frame);
    assert_int_equal(err.code, CHANC_EVALIDATION);
    assert_non_null(strstr(err.text, "order"));
    assert_non_null(strstr(err.text, "Input should be a valid string"));
    assert_non_null(strstr(err.text, "[\"payload\",\"items\",0,\"name\"]"));

    memset(&err, 0, sizeof err);
    assert_null(chanc_message_build(&t_ping, json_string("x"), &err));
    assert_int_equal(err.code, CHANC_EVALIDATION);
    assert_non_null(strstr(err.text, "Input should be null"));

    memset(&err, 0, sizeof err);
    assert_null(chanc_message_build(&t_text, NULL, &err)); /* null for a string */
    assert_int_equal(err.code, CHANC_EVALIDATION);

    memset(&err, 0, sizeof err);
    assert_null(chanc_message_build(&t_text, json_string("far too long"), &err));
    assert_int_equal(err.code, CHANC_EVALIDATION);
    assert_non_null(strstr(err.text, "at most 5"));

    /* The first problem is reported; err may be NULL. */
    assert_null(chanc_message_build(&t_order, json_pack("{s:s}", "x", "y"), NULL));

    /* No type. */
    memset(&err, 0, sizeof err);
    assert_null(chanc_message_build(NULL, json_string("x"), &err));
    assert_int_equal(err.code, CHANC_EINVAL);
    static const chanc_message_type_t nameless = {.action = NULL};
    assert_null(chanc_message_build(&nameless, json_integer(1), &err));
    assert_int_equal(err.code, CHANC_EINVAL);
}

/* The one UTF-8 decoder: what is valid, what each sequence decodes to,
 * and every kind of invalid input (RFC 3629). */
static void test_utf8_decode_and_length(void **state) {
    (void)state;
    uint32_t cp = 0;
    assert_int_equal(chanc_utf8_decode((const unsigned char *)"A", 1, &cp), 1);
    assert_int_equal(cp, 0x41);
    assert_int_equal(chanc_utf8_decode((const unsigned char *)"\xc3\xa9", 2, &cp), 2);
    assert_int_equal(cp, 0xE9);
    assert_int_equal(chanc_utf8_decode((const unsigned char *)"\xe2\x98\x95", 3, &cp), 3);
    assert_int_equal(cp, 0x2615);
    assert_int_equal(chanc_utf8_decode((const unsigned char *)"\xf0\x9f\x98\x80", 4, &cp), 4);
    assert_int_equal(cp, 0x1F600);
    assert_int_equal(chanc_utf8_decode((const unsigned char *)"\xf4\x8f\xbf\xbf", 4, &cp), 4);
    assert_int_equal(cp, 0x10FFFF);
    static const struct {
        const char *bytes;
        size_t n;
    } bad[] = {
        {"\xc0\x80", 2},         /* overlong NUL */
        {"\xe0\x80\xaf", 3},     /* overlong '/' */
        {"\xed\xa0\x80", 3},     /* a surrogate */
        {"\xf4\x90\x80\x80", 4}, /* above U+10FFFF */
        {"\x80", 1},             /* a continuation first */
        {"\xff", 1},             /* never in UTF-8 */
        {"\xe2\x98", 2},         /* cut short */
        {"\xe2\x28\xa1", 3},     /* a bad continuation */
        {"", 0},                 /* nothing */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (chanc_utf8_decode((const unsigned char *)bad[i].bytes, bad[i].n, NULL) != 0)
            fail_msg("bad[%zu] decoded", i);
    assert_int_equal(chanc_utf8_length("Kitchen \xe2\x98\x95", 11), 9);
    assert_int_equal(chanc_utf8_length("", 0), 0);
    assert_int_equal(chanc_utf8_length("ok\xed\xa0\x80", 5), -1);
    assert_int_equal(chanc_utf8_length("a\0b", 3), 3); /* NUL is a character here */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_frames_pass),
        cmocka_unit_test(test_first_member_with_the_action_is_chosen),
        cmocka_unit_test(test_dict_type_for_a_non_object_frame),
        cmocka_unit_test(test_dict_type_for_a_non_object_field),
        cmocka_unit_test(test_union_tag_not_found),
        cmocka_unit_test(test_union_tag_invalid),
        cmocka_unit_test(test_extra_forbidden_top_level),
        cmocka_unit_test(test_extra_forbidden_in_payload),
        cmocka_unit_test(test_missing_payload),
        cmocka_unit_test(test_missing_field),
        cmocka_unit_test(test_none_required),
        cmocka_unit_test(test_null_payload_absent_or_null_is_accepted),
        cmocka_unit_test(test_string_type),
        cmocka_unit_test(test_string_too_short),
        cmocka_unit_test(test_string_too_long),
        cmocka_unit_test(test_string_length_counts_code_points_not_bytes),
        cmocka_unit_test(test_int_type),
        cmocka_unit_test(test_float_type),
        cmocka_unit_test(test_bool_type),
        cmocka_unit_test(test_list_type),
        cmocka_unit_test(test_too_short),
        cmocka_unit_test(test_too_long),
        cmocka_unit_test(test_too_long_still_checks_the_items),
        cmocka_unit_test(test_greater_than_equal),
        cmocka_unit_test(test_less_than_equal),
        cmocka_unit_test(test_bound_messages_print_the_bound_exactly),
        cmocka_unit_test(test_nested_loc_paths),
        cmocka_unit_test(test_several_errors_in_one_object),
        cmocka_unit_test(test_optional_fields_may_be_absent),
        cmocka_unit_test(test_nullable_accepts_null_only_where_declared),
        cmocka_unit_test(test_any_accepts_every_value),
        cmocka_unit_test(test_open_object_keeps_extra_keys),
        cmocka_unit_test(test_schema_validate_with_loc_prefix),
        cmocka_unit_test(test_at_most_64_errors_per_frame),
        cmocka_unit_test(test_long_unknown_action_is_truncated_in_msg),
        cmocka_unit_test(test_long_unknown_key_is_truncated_in_loc),
        cmocka_unit_test(test_truncation_does_not_split_utf8),
        cmocka_unit_test(test_errors_append),
        cmocka_unit_test(test_long_msg_is_cut_on_a_character_boundary),
        cmocka_unit_test(test_build_frame_in_one_call),
        cmocka_unit_test(test_build_null_payload),
        cmocka_unit_test(test_build_refuses_an_invalid_frame),
        cmocka_unit_test(test_utf8_decode_and_length),
    };
    return chanc_run_group_tests(tests, NULL, NULL);
}
