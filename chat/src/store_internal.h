/* Helpers shared by store.c and fixtures.c; not part of the public API. */
#ifndef CHAT_STORE_INTERNAL_H
#define CHAT_STORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chanc/chat.h"

/* Transactions on the store's connection (prepared statements, no SQL
 * text at the call site). begin is BEGIN IMMEDIATE: the write lock is
 * taken up front, so a busy database fails here and not half-way. Each
 * returns 0 or a negative CHANC_E… code. */
int chat_store_tx_begin(chat_store_t *s);
int chat_store_tx_commit(chat_store_t *s);
/* Best effort; safe when no transaction is open. */
void chat_store_tx_rollback(chat_store_t *s);

/* create_user with an optional password: NULL stores an unusable hash
 * (check_password always denies), like Django's set_unusable_password. */
int chat_store_create_user_opt(chat_store_t *s, const char *username,
                               const char *password, int64_t *id_out);

/* SQLite's text for the last failure on the store's connection. */
const char *chat_store_errmsg(chat_store_t *s);

/* Validation shared with the fixture loader. */
bool chat_valid_username(const char *username);
bool chat_valid_slug(const char *slug);
/* Number of code points of valid UTF-8 text, or -1 if invalid. */
long chat_utf8_length(const char *text, size_t len);

#endif
