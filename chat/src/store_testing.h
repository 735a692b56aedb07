/* The store's test hooks: for the chat's tests and their fixture
 * (chat/testing), never for the application. Not public. */
#ifndef CHAT_STORE_TESTING_H
#define CHAT_STORE_TESTING_H

#include "chanc/chat.h"

/* Fault injection: the next n message inserts (chat_store_add_message, and
 * each message of chat_store_add_messages) fail with CHANC_EIO before
 * reaching the database, as a failed commit would (nothing stored), on
 * either backend. A store opened with chat_store_open_like shares its
 * parent's count. */
void chat_store_fail_next_inserts(chat_store_t *s, int n);

/* The process id of the PostgreSQL backend serving the store's connection
 * (PQbackendPID), so a test can pick exactly that backend out of
 * pg_stat_activity; 0 on SQLite or while the connection is lost. */
int chat_store__pg_backend_pid(const chat_store_t *s);

#endif
