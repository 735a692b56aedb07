/* The demo consumers described in demo_consumers.h. */
#include <string.h>

#include "demo_consumers.h"

demo_counters_t demo_counters;

/* --- echo ------------------------------------------------------------------ */

const chanc_message_type_t demo_echo = {.action = "echo",
                                        .payload = CHANC_STRING(.max_length = 100)};
const chanc_message_type_t demo_shout = {
    .action = "shout",
    .payload = CHANC_OBJECT(CHANC_FIELD("text", CHANC_STRING(.min_length = 1, .max_length = 20)),
                            CHANC_OPTIONAL("times", CHANC_INTEGER(.has_minimum = true, .minimum = 1,
                                                                  .has_maximum = true, .maximum = 5)),
                            CHANC_OPTIONAL("tags", CHANC_ARRAY(CHANC_STRING(), .max_length = 3)),
                            CHANC_OPTIONAL("loud", CHANC_BOOLEAN()),
                            CHANC_OPTIONAL("meta", CHANC_OBJECT_OPEN(CHANC_OPTIONAL("n", CHANC_NUMBER()))),
                            CHANC_OPTIONAL("note", CHANC_STRING(.nullable = true)))};
const chanc_message_type_t demo_fail = {.action = "fail"};
const chanc_message_type_t demo_ping = {.action = "ping", .payload = CHANC_NULL()};
const chanc_message_type_t demo_pong = {.action = "pong", .payload = CHANC_NULL()};

static const chanc_message_type_t *const echo_incoming[] = {&demo_echo, &demo_shout, &demo_fail,
                                                            &demo_ping, NULL};

static int echo_receive(chanc_conn_t *c, const chanc_message_type_t *type, const json_t *payload,
                        const json_t *frame) {
    (void)frame;
    if (type == &demo_echo)
        return chanc_conn_send(c, &demo_echo, json_incref((json_t *)payload));
    if (type == &demo_ping)
        return chanc_conn_send(c, &demo_pong, NULL);
    if (type == &demo_shout) {
        json_int_t times = json_integer_value(json_object_get(payload, "times"));
        json_t *out = json_array();
        for (json_int_t i = 0; i < (times ? times : 1); i++)
            json_array_append(out, json_object_get(payload, "text"));
        return chanc_conn_send_json(c, json_pack("{s:s,s:o}", "action", "shouted", "payload", out));
    }
    return CHANC_EHANDLER; /* demo_fail */
}

/* What the echo consumer sends (the fixture's conformance check reads it). */
static const chanc_message_type_t shouted_msg = {.action = "shouted",
                                                 .payload = CHANC_ARRAY(CHANC_STRING())};
static const chanc_message_type_t *const echo_outgoing[] = {&demo_echo, &demo_pong, &shouted_msg,
                                                            NULL};

static const chanc_consumer_t echo_consumer = {
    .name = "echo",
    .incoming = echo_incoming,
    .outgoing = echo_outgoing,
    .receive_message = echo_receive,
    .send_completion = true,
};

/* --- room -------------------------------------------------------------------- */

const chanc_message_type_t demo_say = {.action = "say",
                                       .payload = CHANC_STRING(.min_length = 1, .max_length = 200)};
const chanc_message_type_t demo_whisper = {.action = "whisper", .payload = CHANC_STRING()};
const chanc_message_type_t demo_leave_group = {.action = "leave_group"};
static const chanc_message_type_t joined_msg = {
    .action = "joined", .payload = CHANC_OBJECT(CHANC_FIELD("username", CHANC_STRING()))};
static const chanc_message_type_t *const room_incoming[] = {&demo_say, &demo_whisper,
                                                            &demo_leave_group, &demo_ping, NULL};

static int token_auth(chanc_conn_t *c, void *ud, chanc_status_t *st) {
    (void)ud;
    const char *h = chanc_conn_header(c, "authorization");
    if (!h || strncmp(h, "Token ", 6) != 0)
        return CHANC_AUTH_SKIP;
    const char *user = h + 6;
    static const char *const users[] = {"alice", "bob", "carol"};
    for (size_t i = 0; i < 3; i++)
        if (strcmp(user, users[i]) == 0) {
            char id[16];
            snprintf(id, sizeof id, "%zu", i + 1);
            chanc_conn_set_user(c, id, user, NULL, NULL);
            return CHANC_AUTH_OK;
        }
    chanc_deny(st, 401, "Invalid token.");
    return CHANC_AUTH_FAILED;
}

static const chanc_authenticator_t token_authenticator = {.name = "token", .authenticate = token_auth};

typedef struct room {
    char name[32];
} room_t;

static int room_lookup(chanc_conn_t *c, void **obj) {
    const char *name = chanc_conn_param(c, "name");
    if (strcmp(name, "lobby") != 0 && strcmp(name, "private") != 0)
        return CHANC_ENOTFOUND;
    room_t *r = calloc(1, sizeof *r);
    if (!r)
        return CHANC_ENOMEM;
    snprintf(r->name, sizeof r->name, "%s", name);
    *obj = r;
    return 0;
}

static int is_member(chanc_conn_t *c, void *obj, chanc_status_t *st) {
    room_t *r = obj;
    if (strcmp(r->name, "private") == 0 && strcmp(chanc_conn_username(c), "alice") != 0)
        return chanc_deny(st, 403, "You are not a member of this room.");
    return 0;
}

static const chanc_permission_t is_room_member = {.name = "is_room_member",
                                                  .has_object_permission = is_member};

static const char *room_group(chanc_conn_t *c) {
    return ((const char *)chanc_conn_state(c));
}

static int room_build_groups(chanc_conn_t *c) {
    demo_counters.build_groups++;
    room_t *r = chanc_conn_object(c);
    snprintf(chanc_conn_state(c), 64, "room_%s", r->name);
    return chanc_conn_group_add(c, room_group(c));
}

static int room_post_auth(chanc_conn_t *c) {
    demo_counters.post_authentication++;
    return chanc_conn_group_send_message(
        c, room_group(c), &joined_msg, json_pack("{s:s}", "username", chanc_conn_username(c)), 0);
}

static int room_receive(chanc_conn_t *c, const chanc_message_type_t *type, const json_t *payload,
                        const json_t *frame) {
    (void)frame;
    if (type == &demo_ping)
        return chanc_conn_send(c, &demo_pong, NULL);
    if (type == &demo_leave_group)
        return chanc_conn_group_discard(c, room_group(c));
    json_t *msg = json_pack("{s:s,s:{s:s,s:O}}", "action", "said", "payload", "username",
                            chanc_conn_username(c), "text", payload);
    return chanc_conn_group_send(c, NULL, msg, type == &demo_whisper ? CHANC_EXCLUDE_CURRENT : 0);
}

static void room_disconnect(chanc_conn_t *c, int code) {
    (void)code;
    demo_counters.disconnect++;
    chanc_conn_group_send(c, room_group(c),
                          json_pack("{s:s,s:{s:s}}", "action", "left", "payload", "username",
                                    chanc_conn_username(c)),
                          CHANC_EXCLUDE_CURRENT);
}

/* Internal event: the named user is removed from the room ("kicked"
 * frame, close 4001); every member's consumer counts the event. */
const chanc_message_type_t demo_kick = {
    .action = "kick", .payload = CHANC_OBJECT(CHANC_FIELD("username", CHANC_STRING()))};
static const chanc_message_type_t *const room_events[] = {&demo_kick, NULL};

static int room_event(chanc_conn_t *c, const chanc_message_type_t *type, const json_t *payload) {
    (void)type; /* demo_kick: the only one */
    demo_counters.events++;
    if (strcmp(json_string_value(json_object_get(payload, "username")), chanc_conn_username(c)) != 0)
        return 0;
    chanc_conn_send_json(c, json_pack("{s:s,s:n}", "action", "kicked", "payload"));
    chanc_conn_close(c, 4001, "kicked");
    return 0;
}

static void room_dispose(chanc_conn_t *c, void *state) {
    (void)c;
    (void)state;
    demo_counters.disposed++;
}

/* What the room consumer sends: its group messages carry is_mine and
 * is_current beside the payload. */
#define GROUP_FRAME .frame_fields = (const chanc_field_t[]){CHANC_GROUP_FRAME_FIELDS, {0}}
static const chanc_message_type_t joined_relayed = {.action = "joined",
                                                    .payload = CHANC_OBJECT(CHANC_FIELD(
                                                        "username", CHANC_STRING())),
                                                    GROUP_FRAME};
static const chanc_message_type_t said_msg = {
    .action = "said",
    .payload = CHANC_OBJECT(CHANC_FIELD("username", CHANC_STRING()),
                            CHANC_FIELD("text", CHANC_STRING())),
    GROUP_FRAME};
static const chanc_message_type_t left_msg = {
    .action = "left", .payload = CHANC_OBJECT(CHANC_FIELD("username", CHANC_STRING())),
    GROUP_FRAME};
static const chanc_message_type_t kicked_msg = {.action = "kicked"};
/* The app's own announcement to a room (chanc_app_group_send in the tests). */
static const chanc_message_type_t notice_msg = {.action = "notice", GROUP_FRAME};
static const chanc_message_type_t *const room_outgoing[] = {
    &joined_relayed, &said_msg, &left_msg, &demo_pong, &kicked_msg, &notice_msg, NULL};

static const chanc_authenticator_t *const room_auth[] = {&token_authenticator, NULL};
static const chanc_permission_t *const room_perms[] = {&chanc_is_authenticated, &is_room_member,
                                                       NULL};

static const chanc_consumer_t room_consumer = {
    .name = "room",
    .incoming = room_incoming,
    .outgoing = room_outgoing,
    .authenticators = room_auth,
    .permissions = room_perms,
    .get_object = room_lookup,
    .free_object = free,
    .build_groups = room_build_groups,
    .post_authentication = room_post_auth,
    .receive_message = room_receive,
    .disconnect = room_disconnect,
    .events = room_events,
    .receive_event = room_event,
    .state_size = 64,
    .dispose_state = room_dispose,
    .send_completion = true,
};

/* --- cookie --------------------------------------------------------------- */

static int session_lookup(chanc_conn_t *c, const char *value, void *ud) {
    (void)ud;
    if (strcmp(value, "s-alice") != 0)
        return CHANC_AUTH_SKIP;
    chanc_conn_set_user(c, "1", "alice", NULL, NULL);
    return CHANC_AUTH_OK;
}

static chanc_cookie_auth_t cookie_auth;
static const chanc_authenticator_t *const cookie_auths[] = {&cookie_auth.base, NULL};
static const chanc_permission_t *const cookie_perms[] = {&chanc_is_authenticated, NULL};
static const chanc_consumer_t cookie_consumer = {
    .name = "cookie",
    .incoming = echo_incoming,
    .outgoing = echo_outgoing,
    .authenticators = cookie_auths,
    .permissions = cookie_perms,
    .receive_message = echo_receive,
};

int demo_setup(chanc_test_t *t, void *ud) {
    (void)ud;
    memset(&demo_counters, 0, sizeof demo_counters);
    chanc_cookie_auth_init(&cookie_auth, "sessionid", session_lookup, NULL);
    int rc = chanc_app_route(t->app, "ws/echo/", &echo_consumer, NULL);
    if (rc == 0)
        rc = chanc_app_route(t->app, "ws/room/{name:slug}/", &room_consumer, NULL);
    if (rc == 0)
        rc = chanc_app_route(t->app, "ws/cookie/", &cookie_consumer, NULL);
    return rc;
}
