/* A tiny room consumer: the preview the demo program serves until the chat
 * server lands. Route: ws/room/{name:slug}/; "Authorization: Token <name>"
 * logs in as <name>; incoming chat (1–4000 characters) and ping. */
#ifndef ECHO_CONSUMER_H
#define ECHO_CONSUMER_H

#include "chanc.h"

extern const chanc_message_type_t demo_chat_message, demo_ping_message;
int demo_register(chanc_app_t *app);

#endif
