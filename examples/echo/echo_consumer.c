/* The demo room consumer (see echo_consumer.h). */
#include <stdio.h>
#include <string.h>

#include "echo_consumer.h"

const chanc_message_type_t demo_chat_message = {
    .action = "chat", .payload = CHANC_STRING(.min_length = 1, .max_length = 4000)};
const chanc_message_type_t demo_ping_message = {.action = "ping"};
static const chanc_message_type_t pong = {.action = "pong"};
#define PRESENCE_SCHEMA                                                      \
    CHANC_OBJECT(CHANC_FIELD("username", CHANC_STRING()),                    \
                 CHANC_FIELD("room_name", CHANC_STRING()),                   \
                 CHANC_FIELD("timestamp", CHANC_STRING()))
static const chanc_message_type_t joined = {.action = "user_joined", .payload = PRESENCE_SCHEMA};
static const chanc_message_type_t left = {.action = "user_left", .payload = PRESENCE_SCHEMA};
static const chanc_message_type_t *const incoming[] = {&demo_chat_message, &demo_ping_message,
                                                       NULL};

static int token(chanc_conn_t *c, void *ud, chanc_status_t *st) {
    (void)ud;
    (void)st;
    const char *h = chanc_conn_header(c, "authorization");
    if (!h || strncmp(h, "Token ", 6) != 0 || !h[6])
        return CHANC_AUTH_SKIP;
    chanc_conn_set_user(c, h + 6, h + 6, NULL, NULL);
    return CHANC_AUTH_OK;
}

static const chanc_authenticator_t token_auth = {.name = "token", .authenticate = token};
static const chanc_authenticator_t *const auths[] = {&token_auth, NULL};
static const chanc_permission_t *const perms[] = {&chanc_is_authenticated, NULL};

static json_t *presence_payload(chanc_conn_t *c) {
    char ts[32];
    chanc_format_timestamp(chanc_app_wall_ms(chanc_conn_app(c)), ts);
    return json_pack("{s:s,s:s,s:s}", "username", chanc_conn_username(c), "room_name",
                     chanc_conn_param(c, "name"), "timestamp", ts);
}

static int build_groups(chanc_conn_t *c) {
    char group[64];
    snprintf(group, sizeof group, "room_%s", chanc_conn_param(c, "name"));
    return chanc_conn_group_add(c, group);
}

static int post_auth(chanc_conn_t *c) {
    return chanc_conn_group_send_message(c, NULL, &joined, presence_payload(c), 0);
}

static int receive(chanc_conn_t *c, const chanc_message_type_t *type, const json_t *payload,
                   const json_t *frame) {
    (void)frame;
    if (type == &demo_ping_message)
        return chanc_conn_send(c, &pong, NULL);
    char ts[32];
    chanc_format_timestamp(chanc_app_wall_ms(chanc_conn_app(c)), ts);
    return chanc_conn_group_send(c, NULL,
                                 json_pack("{s:s,s:O,s:s,s:s}", "action", "chat", "payload",
                                           payload, "username", chanc_conn_username(c),
                                           "timestamp", ts),
                                 0);
}

static void on_disconnect(chanc_conn_t *c, int code) {
    (void)code;
    chanc_conn_group_send_message(c, NULL, &left, presence_payload(c), CHANC_EXCLUDE_CURRENT);
}

static const chanc_consumer_t room = {
    .name = "room",
    .incoming = incoming,
    .authenticators = auths,
    .permissions = perms,
    .build_groups = build_groups,
    .post_authentication = post_auth,
    .receive_message = receive,
    .disconnect = on_disconnect,
    .send_completion = true,
};

int demo_register(chanc_app_t *app) { return chanc_app_route(app, "ws/room/{name:slug}/", &room, NULL); }
