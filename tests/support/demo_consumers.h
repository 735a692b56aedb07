/* Small consumers the framework tests drive through the communicator:
 *  ws/echo/             no auth; echo, shout, fail, ping
 *  ws/room/{name:slug}/ token auth ("Authorization: Token alice|bob|carol";
 *                       "Token bad" → 401), is_authenticated, room lookup
 *                       (lobby, private; else 404), "private" only for
 *                       alice (403); group room_<name>; joined/said/left;
 *                       internal event demo_kick {"username"}: that user's
 *                       connections get "kicked" and close 4001
 *  ws/cookie/           session-cookie auth (sessionid=s-alice → alice) */
#ifndef DEMO_CONSUMERS_H
#define DEMO_CONSUMERS_H

#include "chanc/testing.h"

extern const chanc_message_type_t demo_echo, demo_shout, demo_fail, demo_ping, demo_pong,
    demo_say, demo_whisper, demo_leave_group, demo_kick;

/* Registers the three routes; a chanc_test_options_t.setup callback. */
int demo_setup(chanc_test_t *t, void *ud);

/* How many times each hook ran (reset by demo_setup). */
typedef struct demo_counters {
    int post_authentication, disconnect, build_groups, disposed;
    int events; /* internal events run by a room consumer */
} demo_counters_t;
extern demo_counters_t demo_counters;

#endif
