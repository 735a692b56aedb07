/* The chat store's insides: the backend interface (SQLite in store_sqlite.c,
 * PostgreSQL in store_pg.c) under the common layer in store.c, and helpers
 * shared with fixtures.c. Not part of the public API. */
#ifndef CHAT_STORE_INTERNAL_H
#define CHAT_STORE_INTERNAL_H

#include <sodium.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chanc/chat.h"

/* One backend: the SQL for each operation, already validated by store.c
 * (names, lengths, UTF-8, hashes), so a backend only binds and runs. Every
 * function returns 0 or a negative CHANC_E… code: CHANC_EEXIST for a
 * unique violation, CHANC_ENOTFOUND for no row (or a missing foreign
 * key), CHANC_EBUSY for a lock or serialisation failure, CHANC_EIO for
 * anything else (logged with the database's text). One thread at a time
 * per store (in chat-server, a database thread). */
typedef struct chat_store_backend {
    const char *name; /* "sqlite", "postgresql" */
    void (*close)(chat_store_t *s);
    const char *(*errmsg)(chat_store_t *s);

    /* Migrations (store.c runs the loop): begin takes the write lock, so
     * two processes opening one new database do not both migrate. */
    int (*tx_begin)(chat_store_t *s);
    int (*tx_commit)(chat_store_t *s);
    void (*tx_rollback)(chat_store_t *s); /* best effort, safe outside one */
    int (*version_get)(chat_store_t *s, int *version);
    int (*version_set)(chat_store_t *s, int version);
    int (*exec_script)(chat_store_t *s, const char *sql); /* constant SQL only */

    int (*user_insert)(chat_store_t *s, const char *username, const char *hash, int64_t now,
                       int64_t *id_out);
    /* hash may be NULL; ENOTFOUND when unknown. */
    int (*user_by_name)(chat_store_t *s, const char *username, chat_user_t *out, char *hash,
                        size_t hash_size);
    int (*user_count)(chat_store_t *s, int64_t *out);
    int (*session_purge)(chat_store_t *s, int64_t now);
    int (*session_insert)(chat_store_t *s, const char *token, int64_t user_id, int64_t expires);
    int (*session_user)(chat_store_t *s, const char *token, chat_user_t *out, int64_t *expires);
    int (*session_delete)(chat_store_t *s, const char *token); /* ENOTFOUND: none */
    int (*room_insert)(chat_store_t *s, const char *name, const char *slug, int64_t now,
                       int64_t *id_out);
    int (*room_by_id)(chat_store_t *s, int64_t id, chat_room_t *out);
    int (*room_by_slug)(chat_store_t *s, const char *slug, chat_room_t *out);
    int (*room_set_private)(chat_store_t *s, int64_t room_id, bool is_private); /* ENOTFOUND */
    int (*user_set_staff)(chat_store_t *s, int64_t user_id, bool is_staff);     /* ENOTFOUND */
    int (*list_rooms)(chat_store_t *s, json_t **out);
    int (*list_rooms_for)(chat_store_t *s, int64_t user_id, json_t **out);
    int (*room_members)(chat_store_t *s, int64_t room_id, int limit, json_t **out);
    int (*member_insert)(chat_store_t *s, int64_t room_id, int64_t user_id);
    int (*member_check)(chat_store_t *s, int64_t room_id, int64_t user_id, bool *out);
    /* Committed when it returns, unless inside tx_begin/tx_commit. */
    int (*message_insert)(chat_store_t *s, int64_t room_id, int64_t user_id, const char *text,
                          size_t len, int64_t ts_ms, int64_t *id_out);
    int (*history)(chat_store_t *s, int64_t room_id, int limit, json_t **out);
    int (*message_count)(chat_store_t *s, int64_t room_id, int64_t *out);
    unsigned long (*checkpoints_wait)(chat_store_t *s); /* NULL: none */
} chat_store_backend_t;

struct chat_store {
    const chat_store_backend_t *be;
    void *db; /* the backend's own state */
    chanc_clock_t clock;
    unsigned long long opslimit;
    size_t memlimit;
    int64_t session_ttl_ms;
    int version;
    /* chat_store_fail_next_inserts (store_testing.h): tests' fault
     * injection. A store opened with chat_store_open_like shares its
     * parent's counter. */
    _Atomic int fail_inserts_own;
    _Atomic int *fail_inserts;
    /* What it was opened with, for chat_store_open_like. */
    chat_store_options_t opt;
    char *path;
    /* check_password verifies unknown users against this, so that an
     * unknown user costs as much as a wrong password. */
    char dummy_hash[crypto_pwhash_STRBYTES];
};

/* The schema, one entry per version, in each backend's dialect: the same
 * tables, columns and indexes, the same version numbers. Append only;
 * never edit a migration that has shipped. */
typedef struct chat_migration {
    const char *sqlite;
    const char *postgresql;
} chat_migration_t;
extern const chat_migration_t chat_migrations[];
extern const int chat_schema_version;

/* The statements of both backends, prepared once per connection: the same
 * queries on SQLite and PostgreSQL. Parameters are $1, $2, … in order of
 * first use (SQLite numbers "$1" as a named parameter, in order of
 * appearance). X(name, sql, postgresql): postgresql is NULL where the text
 * is the same. */
#define CHAT_STATEMENTS(X)                                                               \
    X(USER_INSERT,                                                                       \
      "INSERT INTO users(username, password_hash, created_at) VALUES ($1, $2, $3)"       \
      " RETURNING id", NULL)                                                             \
    X(USER_BY_NAME,                                                                      \
      "SELECT id, username, password_hash, is_staff FROM users WHERE username = $1", NULL) \
    X(USER_SET_STAFF, "UPDATE users SET is_staff = $1 WHERE id = $2", NULL)              \
    X(SESSION_PURGE, "DELETE FROM sessions WHERE expires_at <= $1", NULL)                \
    X(SESSION_INSERT, "INSERT INTO sessions(token, user_id, expires_at) VALUES ($1, $2, $3)", \
      NULL)                                                                              \
    X(SESSION_USER,                                                                      \
      "SELECT u.id, u.username, s.expires_at, u.is_staff FROM sessions s"                \
      " JOIN users u ON u.id = s.user_id WHERE s.token = $1", NULL)                      \
    X(SESSION_DELETE, "DELETE FROM sessions WHERE token = $1", NULL)                     \
    X(ROOM_INSERT,                                                                       \
      "INSERT INTO rooms(name, slug, created_at) VALUES ($1, $2, $3) RETURNING id", NULL) \
    X(ROOM_BY_ID, "SELECT id, name, slug, created_at, private FROM rooms WHERE id = $1", NULL) \
    X(ROOM_BY_SLUG, "SELECT id, name, slug, created_at, private FROM rooms WHERE slug = $1",     \
      NULL)                                                                              \
    X(ROOM_SET_PRIVATE, "UPDATE rooms SET private = $1 WHERE id = $2", NULL)             \
    /* Byte order on both (SQLite's default BINARY; PostgreSQL's "C"). */                \
    X(ROOM_LIST, "SELECT id, name, slug, private, 0 FROM rooms ORDER BY name, id",       \
      "SELECT id, name, slug, private, 0 FROM rooms ORDER BY name COLLATE \"C\", id")    \
    /* The public rooms and the private ones user $1 is a member of. */                 \
    X(ROOM_LIST_FOR,                                                                     \
      "SELECT r.id, r.name, r.slug, r.private,"                                          \
      "       CASE WHEN m.user_id IS NULL THEN 0 ELSE 1 END"                             \
      " FROM rooms r LEFT JOIN room_members m ON m.room_id = r.id AND m.user_id = $1"    \
      " WHERE r.private = 0 OR m.user_id IS NOT NULL ORDER BY r.name, r.id",             \
      "SELECT r.id, r.name, r.slug, r.private,"                                          \
      "       CASE WHEN m.user_id IS NULL THEN 0 ELSE 1 END"                             \
      " FROM rooms r LEFT JOIN room_members m ON m.room_id = r.id AND m.user_id = $1"    \
      " WHERE r.private = 0 OR m.user_id IS NOT NULL ORDER BY r.name COLLATE \"C\", r.id") \
    X(ROOM_MEMBERS,                                                                      \
      "SELECT u.username FROM room_members m JOIN users u ON u.id = m.user_id"           \
      " WHERE m.room_id = $1 ORDER BY u.username LIMIT $2",                              \
      "SELECT u.username FROM room_members m JOIN users u ON u.id = m.user_id"           \
      " WHERE m.room_id = $1 ORDER BY u.username COLLATE \"C\" LIMIT $2")                \
    X(MEMBER_INSERT,                                                                     \
      "INSERT INTO room_members(room_id, user_id) VALUES ($1, $2)"                       \
      " ON CONFLICT (room_id, user_id) DO NOTHING", NULL)                                \
    X(MEMBER_CHECK, "SELECT 1 FROM room_members WHERE room_id = $1 AND user_id = $2", NULL) \
    X(MESSAGE_INSERT,                                                                    \
      "INSERT INTO messages(room_id, user_id, text, created_at)"                         \
      " VALUES ($1, $2, $3, $4) RETURNING id", NULL)                                     \
    X(HISTORY,                                                                           \
      "SELECT username, text, created_at FROM ("                                         \
      "  SELECT m.id AS id, u.username AS username, m.text AS text,"                     \
      "         m.created_at AS created_at"                                              \
      "  FROM messages m JOIN users u ON u.id = m.user_id"                               \
      "  WHERE m.room_id = $1"                                                           \
      "  ORDER BY m.created_at DESC, m.id DESC LIMIT $2"                                 \
      ") AS h ORDER BY created_at, id", NULL)                                            \
    X(MESSAGE_COUNT, "SELECT COUNT(*) FROM messages WHERE room_id = $1", NULL)           \
    X(USER_COUNT, "SELECT COUNT(*) FROM users", NULL)

enum {
#define X(name, sql, pgsql) CHAT_ST_##name,
    CHAT_STATEMENTS(X)
#undef X
        CHAT_ST__COUNT
};

typedef struct chat_statement {
    const char *name; /* "chanc_USER_INSERT": PostgreSQL's prepared name */
    const char *sqlite;
    const char *postgresql;
} chat_statement_t;
extern const chat_statement_t chat_statements[CHAT_ST__COUNT];

/* Backends: fill s->be and s->db, connect, run chat_store__migrate. On
 * failure they leave s->db NULL or closable by s->be->close. */
int chat_store__open_sqlite(chat_store_t *s, const chat_store_options_t *opt, const char *path,
                            chanc_error_t *err);
int chat_store__open_pg(chat_store_t *s, const chat_store_options_t *opt, const char *url,
                        chanc_error_t *err);
/* Bring the schema to chat_schema_version, one migration per transaction;
 * sets s->version. `where` names the database in messages. */
int chat_store__migrate(chat_store_t *s, const char *where, bool postgresql, chanc_error_t *err);

/* Transactions for the fixture loader. Each returns 0 or a negative
 * CHANC_E… code. */
int chat_store__tx_begin(chat_store_t *s);
int chat_store__tx_commit(chat_store_t *s);
/* Best effort; safe when no transaction is open. */
void chat_store__tx_rollback(chat_store_t *s);

/* create_user with an optional password: NULL stores an unusable hash
 * (check_password always denies), like Django's set_unusable_password. */
int chat_store__create_user_opt(chat_store_t *s, const char *username,
                               const char *password, int64_t *id_out);

/* The database's text for the last failure on the store's connection. */
const char *chat_store__errmsg(chat_store_t *s);

/* Validation shared with the fixture loader. */
bool chat_valid_username(const char *username);
bool chat_valid_slug(const char *slug);

#endif
