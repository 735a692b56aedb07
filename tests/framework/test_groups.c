/* framework.groups: fan-out among several communicators, is_mine and
 * is_current per recipient, exclude_current, leaving groups, membership
 * (chanc_conn_in_group), and that a group message is encoded once and
 * shared. */
#include "test_common.h"

/* Connect `user` to the lobby and drain its join-time frames. */
static chanc_communicator_t *join(chanc_test_t *t, const char *user) {
    chanc_communicator_t *c = room_client(t, "lobby", user);
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    json_t *drain = chanc_communicator_receive_all_json(c, 1000);
    json_decref(drain);
    return c;
}

static void test_joiner_receives_its_own_joined_message(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *a = room_client(t, "lobby", "alice");
    chanc_assert_connect(a);
    chanc_assert_authenticated_status_ok(a);
    json_t *msgs = chanc_communicator_receive_all_json(a, 1000);
    json_t *joined = chanc_json_find(msgs, "{\"action\":\"joined\"}");
    assert_non_null(joined);
    assert_string_equal(chanc_json_str(joined, "/payload/username"), "alice");
    assert_true(json_is_true(json_object_get(joined, "is_mine")));
    assert_true(json_is_true(json_object_get(joined, "is_current")));
    json_decref(msgs);
}

static void test_fan_out_to_three_with_is_mine_and_is_current(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *a1 = join(t, "alice");
    chanc_communicator_t *b = join(t, "bob");
    chanc_communicator_t *a2 = join(t, "alice"); /* alice's second tab */
    json_t *drain = chanc_communicator_receive_all_json(a1, 1000);
    json_decref(drain);
    drain = chanc_communicator_receive_all_json(b, 1000);
    json_decref(drain);

    chanc_communicator_send_message(a1, &demo_say, json_string("hi all"));
    json_t *m_a1 = chanc_communicator_receive_all_json(a1, 1000);
    json_t *m_b = chanc_communicator_receive_all_json(b, 1000);
    json_t *m_a2 = chanc_communicator_receive_all_json(a2, 1000);
    const char *said = "{\"action\":\"said\",\"payload\":{\"username\":\"alice\",\"text\":\"hi all\"},";
    char want[256];
    snprintf(want, sizeof want, "[%s\"is_mine\":true,\"is_current\":true}]", said);
    chanc_assert_json_match(m_a1, want);
    snprintf(want, sizeof want, "[%s\"is_mine\":false,\"is_current\":false}]", said);
    chanc_assert_json_match(m_b, want);
    snprintf(want, sizeof want, "[%s\"is_mine\":true,\"is_current\":false}]", said);
    chanc_assert_json_match(m_a2, want);
    /* Exactly one copy each: the sender once, too. */
    assert_int_equal(json_array_size(m_a1), 1);
    json_decref(m_a1);
    json_decref(m_b);
    json_decref(m_a2);
}

static void test_group_complete_follows_each_relayed_message(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *a = join(t, "alice");
    chanc_communicator_t *b = join(t, "bob");
    json_t *drain = chanc_communicator_receive_all_json(a, 1000);
    json_decref(drain);
    chanc_communicator_send_message(a, &demo_say, json_string("x"));
    json_t *raw = chanc_communicator_receive_until_action(b, "group_complete", 1000);
    chanc_assert_json_match(raw, "[{\"action\":\"said\"},{\"action\":\"group_complete\",\"payload\":null}]");
    json_decref(raw);
    /* The sender: complete for its frame, then its own copy + group_complete. */
    raw = chanc_communicator_receive_until_action(a, "group_complete", 1000);
    chanc_assert_json_match(raw, "[{\"action\":\"complete\"},{\"action\":\"said\",\"is_current\":true},"
                                 "{\"action\":\"group_complete\"}]");
    json_decref(raw);
    chanc_assert_receive_nothing(a);
    chanc_assert_receive_nothing(b);
}

static void test_exclude_current_skips_only_the_sender(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *a1 = join(t, "alice");
    chanc_communicator_t *a2 = join(t, "alice");
    chanc_communicator_t *b = join(t, "bob");
    json_t *drain = chanc_communicator_receive_all_json(a1, 1000);
    json_decref(drain);
    drain = chanc_communicator_receive_all_json(a2, 1000);
    json_decref(drain);
    chanc_communicator_send_message(a1, &demo_whisper, json_string("psst"));
    json_t *m_a1 = chanc_communicator_receive_all_json(a1, 1000);
    json_t *m_a2 = chanc_communicator_receive_all_json(a2, 1000);
    json_t *m_b = chanc_communicator_receive_all_json(b, 1000);
    chanc_assert_json_match(m_a1, "[]");
    chanc_assert_json_match(m_a2, "[{\"action\":\"said\",\"payload\":{\"text\":\"psst\"},"
                                  "\"is_mine\":true,\"is_current\":false}]");
    chanc_assert_json_match(m_b, "[{\"action\":\"said\",\"is_mine\":false,\"is_current\":false}]");
    json_decref(m_a1);
    json_decref(m_a2);
    json_decref(m_b);
}

static void test_disconnect_leaves_group_and_others_hear_it(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *a = join(t, "alice");
    chanc_communicator_t *b = join(t, "bob");
    json_t *drain = chanc_communicator_receive_all_json(a, 1000);
    json_decref(drain);
    chanc_communicator_disconnect(b);
    json_t *m_a = chanc_communicator_receive_all_json(a, 1000);
    chanc_assert_json_match(m_a, "[{\"action\":\"left\",\"payload\":{\"username\":\"bob\"},"
                                 "\"is_mine\":false,\"is_current\":false}]");
    json_decref(m_a);
    /* Nothing reaches the closed client afterwards. */
    chanc_communicator_send_message(a, &demo_say, json_string("anyone?"));
    json_t *m_b = chanc_communicator_receive_all_json(b, 1000);
    chanc_assert_json_match(m_b, "[]");
    json_decref(m_b);
    assert_int_equal(chanc_app_connections(t->app), 1);
}

static void test_leaving_a_group_stops_delivery(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *a = join(t, "alice");
    chanc_communicator_t *b = join(t, "bob");
    json_t *drain = chanc_communicator_receive_all_json(a, 1000);
    json_decref(drain);
    chanc_communicator_send_message(b, &demo_leave_group, NULL);
    drain = chanc_communicator_receive_all_json(b, 1000);
    json_decref(drain);
    chanc_communicator_send_message(a, &demo_say, json_string("still there?"));
    chanc_assert_receive_nothing(b);
    json_t *m_a = chanc_communicator_receive_all_json(a, 1000);
    chanc_assert_json_match(m_a, "[{\"action\":\"said\",\"is_current\":true}]");
    json_decref(m_a);
}

static void test_groups_do_not_leak_between_rooms(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *lobby = join(t, "alice");
    chanc_communicator_t *priv = room_client(t, "private", "alice");
    chanc_assert_connect(priv);
    chanc_assert_authenticated_status_ok(priv);
    json_t *drain = chanc_communicator_receive_all_json(priv, 1000);
    json_decref(drain);
    chanc_communicator_send_message(priv, &demo_say, json_string("secret"));
    chanc_assert_receive_nothing(lobby);
}

static void test_app_group_send_and_channel_send(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *a = join(t, "alice");
    assert_int_equal(chanc_app_group_send(t->app, "room_lobby",
                                          json_pack("{s:s,s:n}", "action", "notice", "payload")),
                     0);
    json_t *m = chanc_communicator_receive_all_json(a, 1000);
    chanc_assert_json_match(m, "[{\"action\":\"notice\",\"payload\":null,\"is_mine\":false,"
                               "\"is_current\":false}]");
    json_decref(m);
    /* Not an object: refused, nothing sent, nothing leaked. */
    assert_int_equal(chanc_app_group_send(t->app, "room_lobby", json_string("x")), CHANC_EINVAL);
    /* Channel send to an unknown channel is silently dropped, like Channels. */
    assert_int_equal(chanc_app_channel_send(t->app, "nobody!1",
                                            json_pack("{s:s}", "action", "x")), 0);
    chanc_assert_receive_nothing(a);
}

/* An internal event reaches every member's consumer (here: each room
 * consumer counts it; bob's closes his connection), before
 * chanc_app_group_event returns, and no client is sent the event itself. A
 * group message queued before it is not delivered to the connection the
 * event closed, and the layer's own copy does not run it a second time. */
static void test_group_event_reaches_consumers_at_once_never_clients(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *a = join(t, "alice");
    chanc_communicator_t *b = join(t, "bob");
    chanc_communicator_t *a2 = join(t, "alice");
    json_decref(chanc_communicator_receive_all_json(a, 1000));
    json_decref(chanc_communicator_receive_all_json(b, 1000));
    /* Queued for the next loop turn, like any group message in flight... */
    assert_int_equal(chanc_app_group_send(t->app, "room_lobby",
                                          json_pack("{s:s,s:n}", "action", "notice", "payload")),
                     0);
    /* ...then the event: run by all three consumers before it returns. */
    assert_int_equal(chanc_app_group_event(t->app, "room_lobby", &demo_kick,
                                           json_pack("{s:s}", "username", "bob")),
                     0);
    assert_int_equal(demo_counters.events, 3);
    chanc_assert_receive_match(b, "{\"action\":\"kicked\"}");
    chanc_assert_closed(b, 4001); /* and never the notice queued before the event */
    assert_string_equal(chanc_communicator_close_reason(b), "kicked");
    json_t *got = chanc_communicator_receive_all_json(a, 1000);
    chanc_assert_json_match(got, "[{\"action\":\"notice\"},{\"action\":\"left\","
                                 "\"payload\":{\"username\":\"bob\"}}]");
    json_decref(got);
    got = chanc_communicator_receive_all_json(a2, 1000);
    chanc_assert_json_match(got, "[{\"action\":\"notice\"},{\"action\":\"left\"}]");
    json_decref(got);
    assert_int_equal(demo_counters.events, 3); /* the layer's copy was not run again */
}

/* The payload is validated against the event's type; a bad group name is
 * refused; a consumer that does not list an event ignores it; a group
 * without members here is no error. Nothing reaches a client. */
static void test_group_event_is_validated_and_ignored_where_unknown(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *a = join(t, "alice");
    assert_int_equal(chanc_app_group_event(t->app, "room_lobby", &demo_kick,
                                           json_pack("{s:i}", "username", 7)),
                     CHANC_EVALIDATION);
    assert_int_equal(chanc_app_group_event(t->app, "room lobby", &demo_kick,
                                           json_pack("{s:s}", "username", "alice")),
                     CHANC_EINVAL);
    static const chanc_message_type_t unknown = {.action = "unknown"};
    assert_int_equal(chanc_app_group_event(t->app, "room_lobby", &unknown, NULL), 0);
    assert_int_equal(chanc_app_group_event(t->app, "room_nobody", &demo_kick,
                                           json_pack("{s:s}", "username", "alice")),
                     0);
    assert_int_equal(demo_counters.events, 0);
    chanc_assert_receive_nothing(a);
    assert_false(chanc_communicator_closed(a));
}

static void test_group_messages_share_one_encoding(void **state) {
    /* Ten recipients, three variants (sender; alice's other tabs; bob):
     * every recipient's frame is one of exactly three shared buffers. */
    chanc_test_t *t = *state;
    chanc_communicator_t *c[10];
    for (int i = 0; i < 10; i++)
        c[i] = join(t, i % 2 ? "bob" : "alice");
    for (int i = 0; i < 10; i++) {
        json_t *d = chanc_communicator_receive_all_json(c[i], 1000);
        json_decref(d);
    }
    chanc_communicator_send_message(c[0], &demo_say, json_string("shared"));
    chanc_test_settle(t, 1000);
    json_t *skip = chanc_communicator_receive_json(c[0], 1000); /* its "complete" */
    chanc_assert_json_match(skip, "{\"action\":\"complete\"}");
    json_decref(skip);
    const chanc_buf_t *bufs[10];
    for (int i = 0; i < 10; i++) {
        bufs[i] = chanc_communicator_peek_raw(c[i]);
        assert_non_null(bufs[i]);
    }
    int distinct = 0;
    for (int i = 0; i < 10; i++) {
        int j = 0;
        while (j < i && bufs[i] != bufs[j])
            j++;
        distinct += j == i;
    }
    assert_int_equal(distinct, 3);
    assert_ptr_equal(bufs[2], bufs[4]); /* alice's other tabs */
    assert_ptr_equal(bufs[1], bufs[9]); /* bob's tabs */
    assert_ptr_not_equal(bufs[0], bufs[2]);
}

/* A consumer without presence, so that 1,000 members join in O(N): the
 * user is the query string ("?alice"), everyone is in group "quiet", and
 * `say` goes to the group. */
static int query_user(chanc_conn_t *c, void *ud, chanc_status_t *st) {
    (void)ud;
    (void)st;
    return chanc_conn_set_user(c, chanc_conn_query(c), chanc_conn_query(c), NULL, NULL) < 0
               ? CHANC_AUTH_FAILED
               : CHANC_AUTH_OK;
}
static const chanc_authenticator_t query_auth = {.name = "query", .authenticate = query_user};
static const chanc_authenticator_t *const quiet_auth[] = {&query_auth, NULL};
static const chanc_message_type_t *const quiet_incoming[] = {&demo_say, NULL};
static int quiet_groups(chanc_conn_t *c) { return chanc_conn_group_add(c, "quiet"); }
static int quiet_receive(chanc_conn_t *c, const chanc_message_type_t *type, const json_t *payload,
                         const json_t *frame) {
    (void)type;
    (void)frame;
    return chanc_conn_group_send(c, "quiet", json_pack("{s:s,s:O}", "action", "said", "payload", payload), 0);
}
static const chanc_message_type_t quiet_said = {
    .action = "said", .payload = CHANC_STRING(),
    .frame_fields = (const chanc_field_t[]){CHANC_GROUP_FRAME_FIELDS, {0}}};
static const chanc_message_type_t *const quiet_outgoing[] = {&quiet_said, NULL};
static const chanc_consumer_t quiet_consumer = {
    .name = "quiet", .incoming = quiet_incoming, .outgoing = quiet_outgoing,
    .authenticators = quiet_auth,
    .build_groups = quiet_groups, .receive_message = quiet_receive,
    .send_completion = true};
static int quiet_setup(chanc_test_t *t, void *ud) {
    (void)ud;
    return chanc_app_route(t->app, "ws/quiet/", &quiet_consumer, NULL);
}

/* 1,000 recipients: the app's counters show one JSON encode for the group
 * message and three variants (sender; the sender's other connections;
 * everyone else), whatever the room's size; each `group_complete` and the
 * sender's `complete` are pre-encoded buffers. */
static void test_group_send_to_1000_encodes_once(void **state) {
    (void)state;
    enum { N = 1000 };
    chanc_test_t *t = chanc_test_create(&(chanc_test_options_t){.setup = quiet_setup});
    assert_non_null(t);
    chanc_communicator_t **c = calloc(N, sizeof *c);
    for (int i = 0; i < N; i++) {
        c[i] = chanc_test_communicator(t, "/ws/quiet/?%s", i % 2 ? "bob" : "alice");
        chanc_assert_connect(c[i]);
        chanc_assert_authenticated_status_ok(c[i]);
    }
    chanc_app_stats_t before, after;
    chanc_app_stats(t->app, &before);
    chanc_communicator_send_message(c[0], &demo_say, json_string("to a thousand"));
    assert_int_equal(chanc_test_settle(t, 10000), 0);
    chanc_app_stats(t->app, &after);
    assert_int_equal(after.encodes - before.encodes, 1);
    assert_int_equal(after.variants - before.variants, 3);
    assert_int_equal(after.group_messages - before.group_messages, 1);
    assert_int_equal(after.group_deliveries - before.group_deliveries, N);
    assert_int_equal(after.frames_in - before.frames_in, 1);
    /* a delivery and a group_complete each, and the sender's complete */
    assert_int_equal(after.frames_out - before.frames_out, 2 * N + 1);
    chanc_assert_receive_match(c[0], "{\"action\":\"said\",\"is_mine\":true,\"is_current\":true}");
    chanc_assert_receive_match(c[2], "{\"action\":\"said\",\"is_mine\":true,\"is_current\":false}");
    chanc_assert_receive_match(c[N - 1], "{\"action\":\"said\",\"is_mine\":false}");
    free(c);
    chanc_test_destroy(t);
}

/* --- chanc_conn_in_group: a consumer that joins, leaves and answers ------- */

static const chanc_message_type_t member_join = {
    .action = "join", .payload = CHANC_OBJECT(CHANC_FIELD("group", CHANC_STRING()))};
static const chanc_message_type_t member_leave = {
    .action = "leave", .payload = CHANC_OBJECT(CHANC_FIELD("group", CHANC_STRING()))};
/* {"group": name} or {} (asks about NULL). */
static const chanc_message_type_t member_ask = {
    .action = "ask", .payload = CHANC_OBJECT(CHANC_OPTIONAL("group", CHANC_STRING()))};
static const chanc_message_type_t member_answer = {.action = "in_group",
                                                   .payload = CHANC_BOOLEAN()};
static const chanc_message_type_t *const member_incoming[] = {&member_join, &member_leave,
                                                              &member_ask, NULL};
static const chanc_message_type_t *const member_outgoing[] = {&member_answer, NULL};

static int member_receive(chanc_conn_t *c, const chanc_message_type_t *type,
                          const json_t *payload, const json_t *frame) {
    (void)frame;
    const char *group = chanc_json_str(payload, "/group");
    if (type == &member_join)
        return chanc_conn_group_add(c, group);
    if (type == &member_leave)
        return chanc_conn_group_discard(c, group);
    return chanc_conn_send(c, &member_answer, json_boolean(chanc_conn_in_group(c, group)));
}

static const chanc_consumer_t member_consumer = {
    .name = "member",
    .incoming = member_incoming,
    .outgoing = member_outgoing,
    .receive_message = member_receive,
};

static int member_routes(chanc_test_t *t, void *ud) {
    (void)ud;
    return chanc_app_route(t->app, "ws/member/", &member_consumer, NULL);
}

static int member_fixture_setup(void **state) {
    chanc_test_options_t opts = {.setup = member_routes};
    *state = chanc_test_create(&opts);
    return *state ? 0 : -1;
}

/* Ask `c` whether it is in `group` (NULL: ask with no name). */
static bool in_group(chanc_communicator_t *c, const char *group) {
    json_t *payload = group ? json_pack("{s:s}", "group", group) : json_object();
    chanc_communicator_send_message(c, &member_ask, payload);
    json_t *answer = chanc_communicator_receive_json(c, 1000);
    assert_non_null(answer);
    chanc_assert_json_match(answer, "{\"action\":\"in_group\"}");
    bool yes = json_is_true(json_object_get(answer, "payload"));
    json_decref(answer);
    return yes;
}

static void send_group_op(chanc_communicator_t *c, const chanc_message_type_t *type,
                          const char *group) {
    chanc_communicator_send_message(c, type, json_pack("{s:s}", "group", group));
    chanc_assert_receive_nothing(c);
}

static void test_conn_in_group_follows_add_and_discard(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *a = chanc_test_communicator(t, "/ws/member/");
    chanc_communicator_t *b = chanc_test_communicator(t, "/ws/member/");
    chanc_assert_connect(a);
    chanc_assert_connect(b);
    chanc_assert_authenticated_status_ok(a);
    chanc_assert_authenticated_status_ok(b);

    assert_false(in_group(a, "red"));
    send_group_op(a, &member_join, "red");
    send_group_op(a, &member_join, "blue");
    send_group_op(b, &member_join, "red");
    assert_true(in_group(a, "red"));
    assert_true(in_group(a, "blue"));
    assert_false(in_group(a, "Red")); /* names are case-sensitive */
    assert_false(in_group(b, "blue")); /* another connection's group */
    assert_false(in_group(a, NULL));

    send_group_op(a, &member_leave, "red");
    assert_false(in_group(a, "red"));
    assert_true(in_group(a, "blue"));
    assert_true(in_group(b, "red")); /* the group lives on with b */
    send_group_op(a, &member_leave, "red"); /* leaving twice: nothing */
    assert_false(in_group(a, "red"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        DEMO_TEST(test_joiner_receives_its_own_joined_message),
        DEMO_TEST(test_fan_out_to_three_with_is_mine_and_is_current),
        DEMO_TEST(test_group_complete_follows_each_relayed_message),
        DEMO_TEST(test_exclude_current_skips_only_the_sender),
        DEMO_TEST(test_disconnect_leaves_group_and_others_hear_it),
        DEMO_TEST(test_leaving_a_group_stops_delivery),
        DEMO_TEST(test_groups_do_not_leak_between_rooms),
        DEMO_TEST(test_app_group_send_and_channel_send),
        DEMO_TEST(test_group_event_reaches_consumers_at_once_never_clients),
        DEMO_TEST(test_group_event_is_validated_and_ignored_where_unknown),
        DEMO_TEST(test_group_messages_share_one_encoding),
        cmocka_unit_test(test_group_send_to_1000_encodes_once),
        cmocka_unit_test_setup_teardown(test_conn_in_group_follows_add_and_discard,
                                        member_fixture_setup, demo_fixture_teardown),
    };
    return chanc_run_group_tests_name("framework.groups", tests, NULL, NULL);
}
