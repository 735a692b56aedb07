/* chat.docs: the chat's AsyncAPI document and its page.
 *
 * - The frames the chat really sends, in a session that makes each of them
 *   (join, history, a second member, chat, ping, an announcement, a bad frame, a failed
 *   commit, a member leaving, a refused anonymous client, a room past the
 *   presence threshold), each match one
 *   of the consumer's declared outgoing types (chanc_test_frame_conforms:
 *   the payload validates, the keys beside it are the type's frame_fields;
 *   the fixture's conformance check does the same for every test), and
 *   each declared type is seen. The document's send operation lists
 *   exactly those types.
 * - GET /asyncapi.json and GET /docs: built once, public (no login), the
 *   views' CSP on the page; other methods 405; without chat_docs_build 404.
 * (The document's validity by the official parser: asyncapi.chat.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chanc/chat_docs.h"
#include "chat_test.h"

/* The chat consumer's outgoing list (chat/src/consumer.c), by name. */
static const chanc_message_type_t *const declared[] = {
    &chanc_msg_authentication, &chat_msg_history, &chat_msg_user_joined,
    &chat_msg_user_left, &chat_msg_presence, &chat_msg_chat_relayed, &chat_msg_pong, &chat_msg_announcement,
    &chanc_msg_validation_error, &chanc_msg_handler_error, &chanc_msg_complete,
    &chanc_msg_group_complete, NULL};

/* Every frame c received conforms; returns how many; *seen gets each
 * matching type's bit. */
static size_t check_received(chanc_communicator_t *c, unsigned *seen) {
    size_t i, n = 0;
    json_t *e;
    json_array_foreach(chanc_communicator_transcript(c), i, e) {
        if (strcmp(json_string_value(json_object_get(e, "dir")), "recv") != 0)
            continue;
        const char *text = json_string_value(json_object_get(e, "frame"));
        json_t *frame = json_loads(text, 0, NULL);
        bool ok = false;
        for (size_t k = 0; declared[k]; k++)
            if (chanc_test_frame_conforms(declared[k], frame, NULL)) {
                ok = true;
                *seen |= 1u << k;
            }
        json_decref(frame);
        if (!ok) {
            chanc_communicator_print_transcript(c, stderr);
            fail_msg("an undeclared frame, or one that does not match its type: %s", text);
        }
        n++;
    }
    return n;
}

/* The chat fixture with a presence threshold of 2, so a few members make
 * a room big enough for the coalesced form. */
static int setup_small_presence(void **state) {
    *state = chat_test_create(&(chat_test_options_t){.name = *state, .presence_threshold = 2});
    return *state ? 0 : -1;
}

static void test_sent_frames_match_the_declarations(void **state) {
    chat_test_t *t = *state;
    chanc_communicator_t *c = chat_test_member(t, t->room_id, "testuser");
    chanc_communicator_t *a = chat_test_member(t, t->room_id, "alice");
    chanc_communicator_send_message(c, &chat_msg_chat, json_string("hello"));
    chanc_assert_receive_match(a, "{\"action\":\"chat\",\"payload\":\"hello\"}");
    chanc_communicator_send_message(c, &chat_msg_ping, NULL);
    chanc_assert_receive_match(c, "{\"action\":\"user_joined\"}"); /* alice's */
    chanc_assert_receive_match(c, "{\"action\":\"chat\"}");
    chanc_assert_receive_match(c, "{\"action\":\"pong\"}");
    assert_int_equal(chat_announce(t->test->app, t->room_id, "Fire drill", "alice",
                                   chanc_app_wall_ms(t->test->app)),
                     0);
    chanc_assert_receive_match(a, "{\"action\":\"announcement\"}");
    chanc_assert_receive_match(c, "{\"action\":\"announcement\"}");
    chanc_communicator_send_text(c, "{\"action\":\"chat\",\"payload\":\"x\",\"room\":2}");
    chanc_assert_receive_match(c, "{\"action\":\"error\",\"payload\":[{\"type\":\"extra_forbidden\"}]}");
    assert_int_equal(chat_test_fail_next_commit(t), 0);
    chanc_communicator_send_message(c, &chat_msg_chat, json_string("lost"));
    chanc_assert_receive_match(c, "{\"action\":\"error\",\"payload\":{\"detail\":\"Failed to process message\"}}");
    chanc_communicator_disconnect(a);
    chanc_assert_receive_match(c, "{\"action\":\"user_left\",\"payload\":{\"username\":\"alice\"}}");
    chanc_communicator_t *anon = chat_test_client(t, t->room_id, NULL);
    chanc_communicator_connect(anon, 1000);
    chanc_assert_authenticated_status(anon, 403);
    /* A room past the presence threshold (2 here): one presence frame. */
    chat_test_member(t, t->room_id, "bob");
    chat_test_member(t, t->room_id, "carol");
    chanc_test_advance(t->test, CHAT_PRESENCE_INTERVAL_MS);
    chanc_assert_receive_match(c, "{\"action\":\"user_joined\",\"payload\":{\"username\":\"bob\"}}");
    chanc_assert_receive_match(c, "{\"action\":\"presence\",\"payload\":{\"joined\":[\"carol\"]}}");

    unsigned seen = 0;
    size_t n = check_received(c, &seen) + check_received(a, &seen) + check_received(anon, &seen);
    assert_true(n >= 12);
    for (size_t k = 0; declared[k]; k++)
        if (!(seen & (1u << k)))
            fail_msg("no frame of type %s was seen",
                     declared[k]->name ? declared[k]->name : declared[k]->action);
    chanc_communicator_disconnect(c);
}

/* The document's send operation is the declared list, nothing else. */
static void test_document_lists_the_declarations(void **state) {
    chat_test_t *t = *state;
    chanc_error_t err = {0};
    json_t *doc = chat_asyncapi_document(t->test->app, NULL, true, &err);
    assert_non_null(doc);
    json_t *send = json_object_get(json_object_get(json_object_get(doc, "operations"), "chat_send"),
                                   "messages");
    assert_int_equal(json_array_size(send), sizeof declared / sizeof *declared - 1);
    for (size_t k = 0; declared[k]; k++) {
        char ref[128];
        snprintf(ref, sizeof ref, "{\"$ref\":\"#/channels/chat/messages/%s\"}",
                 declared[k]->name ? declared[k]->name : declared[k]->action);
        assert_non_null(chanc_json_find(send, ref));
    }
    /* secure cookies: the __Host- cookie, wss; no host: no servers */
    chanc_assert_json_match(doc, "{\"components\":{\"securitySchemes\":{\"session\":"
                                 "{\"type\":\"httpApiKey\",\"in\":\"cookie\","
                                 "\"name\":\"__Host-sessionid\"}}}}");
    assert_null(json_object_get(doc, "servers"));
    chanc_assert_json_match(json_object_get(doc, "channels"),
                            "{\"chat\":{\"address\":\"/ws/chat/{pk}/\",\"x-chanc-events\":"
                            "[{\"name\":\"session_ended\"},{\"name\":\"announcement\"}]}}");
    json_decref(doc);
}

static const char *header_of(const chanc_http_response_t *r, const char *name) {
    for (size_t i = 0; i < r->nheaders; i++)
        if (!strcmp(r->headers[i].name, name))
            return r->headers[i].value;
    return NULL;
}

static int request(chat_views_t *v, const char *method, const char *path,
                   chanc_http_response_t *resp) {
    chanc_http_request_t req = {.method = method, .path = path};
    *resp = (chanc_http_response_t){0};
    assert_int_equal(chat_views_handle(v, &req, resp), 0);
    return resp->status;
}

/* Outlive the app: chat_docs_build frees the documents at its destroy. */
static chat_views_t views, bare;

static void test_served_documents(void **state) {
    chat_test_t *t = *state;
    chanc_error_t err = {0};
    views = (chat_views_t){.store = t->store, .app = t->test->app};
    assert_int_equal(chat_docs_build(&views, "localhost:8000", &err), 0);
    assert_int_equal(chat_docs_build(&views, "localhost:8000", &err), CHANC_EINVAL); /* once */

    chanc_http_response_t r;
    assert_int_equal(request(&views, "GET", "/asyncapi.json", &r), 200); /* no login */
    assert_string_equal(r.content_type, "application/json");
    json_t *doc = json_loadb(r.body, r.body_len, 0, NULL);
    free(r.body);
    assert_non_null(doc);
    chanc_assert_json_match(doc, "{\"asyncapi\":\"3.0.0\",\"servers\":{\"default\":"
                                 "{\"host\":\"localhost:8000\",\"protocol\":\"ws\"}},"
                                 "\"components\":{\"securitySchemes\":{\"session\":"
                                 "{\"name\":\"sessionid\"}}}}");
    json_decref(doc);

    assert_int_equal(request(&views, "GET", "/docs", &r), 200);
    assert_string_equal(r.content_type, "text/html; charset=utf-8");
    assert_string_equal(header_of(&r, "Content-Security-Policy"), CHAT_CSP);
    assert_non_null(strstr(r.body, "<code>/ws/chat/{pk}/</code>"));
    assert_non_null(strstr(r.body, "id=\"message-chat_relayed\""));
    assert_non_null(strstr(r.body, "<link rel=\"stylesheet\" href=\"/static/style.css\">"));
    assert_null(strstr(r.body, "<script"));
    free(r.body);

    assert_int_equal(request(&views, "HEAD", "/docs", &r), 200);
    free(r.body);
    assert_int_equal(request(&views, "POST", "/asyncapi.json", &r), 405);
    assert_string_equal(header_of(&r, "Allow"), "GET, HEAD");
    free(r.body);
    bare = (chat_views_t){.store = t->store, .app = t->test->app};
    assert_int_equal(request(&bare, "GET", "/docs", &r), 404);
    free(r.body);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        chanc_unit_test(test_sent_frames_match_the_declarations, setup_small_presence,
                        chat_test_teardown),
        CHAT_TEST(test_document_lists_the_declarations),
        CHAT_TEST(test_served_documents),
    };
    return chanc_run_group_tests(tests, NULL, NULL);
}
