/* A small consumer (the five-minute tutorial's shape), compiled against the installed chanc. */
#include <string.h>

#include "lobby.h"

const chanc_message_type_t chat = {
    .action = "chat",
    .payload = CHANC_STRING(.min_length = 1, .max_length = 4000),
};
const chanc_message_type_t move = {
    .action = "move",
    .payload = CHANC_OBJECT(CHANC_FIELD("x", CHANC_INTEGER()),
                            CHANC_FIELD("y", CHANC_INTEGER()),
                            CHANC_OPTIONAL("label", CHANC_STRING(.max_length = 20))),
};
const chanc_message_type_t ping = {.action = "ping"}; /* payload null */
static const chanc_message_type_t *const incoming[] = {&chat, &move, &ping, NULL};

static int join(chanc_conn_t *c) { /* build_groups */
    return chanc_conn_group_add(c, "lobby");
}

static int on_message(chanc_conn_t *c, const chanc_message_type_t *type,
                      const json_t *payload, const json_t *frame) {
    (void)payload;
    if (type == &ping)
        return chanc_conn_send_json(c, json_pack("{s:s,s:n}", "action", "pong", "payload"));
    /* Everyone in the lobby gets it once, with is_mine / is_current. */
    return chanc_conn_group_send(c, NULL, json_deep_copy(frame), 0);
}

static int session_lookup(chanc_conn_t *c, const char *value, void *ud) {
    (void)ud;
    if (strcmp(value, "alice-session") == 0)
        return chanc_conn_set_user(c, "1", "alice", NULL, NULL) == 0 ? CHANC_AUTH_OK
                                                                      : CHANC_AUTH_SKIP;
    if (strcmp(value, "bob-session") == 0)
        return chanc_conn_set_user(c, "2", "bob", NULL, NULL) == 0 ? CHANC_AUTH_OK
                                                                    : CHANC_AUTH_SKIP;
    return CHANC_AUTH_SKIP;
}

static chanc_cookie_auth_t my_session_auth;
static const chanc_authenticator_t *const auth[] = {&my_session_auth.base, NULL};
static const chanc_permission_t *const perms[] = {&chanc_is_authenticated, NULL};

static const chanc_consumer_t lobby = {
    .name = "lobby",
    .incoming = incoming,
    .authenticators = auth,
    .permissions = perms,
    .build_groups = join,
    .receive_message = on_message,
    .send_completion = true,
};

int lobby_register(chanc_app_t *app) {
    chanc_cookie_auth_init(&my_session_auth, "sessionid", session_lookup, NULL);
    return chanc_app_route(app, "ws/lobby/", &lobby, NULL);
}
