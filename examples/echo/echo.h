/* The echo application: one route, ws/echo/, where a client sends typed
 * `echo` messages and gets each one back. The smallest whole chanc
 * application: a message type, a consumer, a route (echo.c); a server
 * around it (main.c); its tests (tests/examples/test_echo.c). */
#ifndef ECHO_H
#define ECHO_H

#include <chanc.h>

/* {"action":"echo","payload":"…"}: a string of 1 to 1000 characters, both
 * ways. */
extern const chanc_message_type_t echo_message;

/* Route ws/echo/ to the echo consumer. 0 or a negative CHANC_E… code. */
int echo_route(chanc_app_t *app);

#endif
