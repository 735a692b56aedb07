#ifndef LOBBY_H
#define LOBBY_H
#include <chanc.h>

extern const chanc_message_type_t chat, move, ping;
int lobby_register(chanc_app_t *app);
#endif
