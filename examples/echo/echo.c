/* The echo consumer (echo.h). */
#include "echo.h"

/* A message type is an action and a payload schema. Frames reach the
 * consumer only once they validated against one of its incoming types;
 * anything else (another action, an empty or too long string) is answered
 * by the framework with a typed `error` frame. */
const chanc_message_type_t echo_message = {
    .action = "echo",
    .payload = CHANC_STRING(.min_length = 1, .max_length = 1000), /* characters */
};

static const chanc_message_type_t *const incoming[] = {&echo_message, NULL};

/* Each validated frame: send its payload back as an echo message (the
 * payload is borrowed; chanc_conn_send steals the reference it is given). */
static int receive(chanc_conn_t *c, const chanc_message_type_t *type, const json_t *payload,
                   const json_t *frame) {
    (void)type; /* echo_message: the only incoming type */
    (void)frame;
    return chanc_conn_send(c, &echo_message, json_incref((json_t *)payload));
}

/* No authenticators and no permissions: everyone may connect, as an
 * anonymous user (the client still gets its 200 authentication frame
 * first). See the tutorial in README.md for users, groups and rooms. */
static const chanc_consumer_t echo_consumer = {
    .name = "echo",
    .incoming = incoming,
    .receive_message = receive,
};

int echo_route(chanc_app_t *app) { return chanc_app_route(app, "ws/echo/", &echo_consumer, NULL); }
