/* The chat application: storage (users, sessions, rooms, members,
 * messages), the JSON fixture loader, and the chat consumer on the
 * framework. No sqlite3.h here: the store is opaque, so a second backend
 * (PostgreSQL) can sit behind the same functions.
 *
 * Every function runs on the calling thread and blocks it until the
 * database answers (SQLite or PostgreSQL); a store is used by one thread at
 * a time. In chat-server no store call runs on the loop thread: the chat
 * consumer and the HTTP views each own a database thread with its own
 * connection (chat_store_open_like). Each returns 0 or a negative CHANC_E…
 * code (CHANC_EIO when the database fails or is unreachable); json_t
 * results are new references. */
#ifndef CHANC_CHAT_H
#define CHANC_CHAT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chanc.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- storage --------------------------------------------------------- */

typedef struct chat_store chat_store_t;

#define CHAT_USERNAME_MAX 150    /* characters, Django's limit */
#define CHAT_ROOM_NAME_MAX 100
#define CHAT_MESSAGE_MAX 4000    /* characters of one chat message */
#define CHAT_ANNOUNCEMENT_MAX 500 /* characters of one announcement */
#define CHAT_HISTORY_LIMIT 50    /* messages sent on join */
#define CHAT_SESSION_TOKEN_LEN 64 /* hex characters (32 random bytes) */
/* The session cookie's name, and its name with secure cookies (HTTPS only:
 * the __Host- prefix makes browsers refuse it unless Secure, host-only and
 * Path=/). */
#define CHAT_SESSION_COOKIE "sessionid"
#define CHAT_SESSION_COOKIE_SECURE "__Host-sessionid"

typedef struct chat_store_options {
    /* The database: a PostgreSQL URL ("postgresql://…" or "postgres://…",
     * libpq's connection URI: user, password, host or a Unix socket
     * directory, port, dbname, parameters); otherwise an SQLite file path
     * (created if missing), optionally prefixed "sqlite:", or ":memory:".
     * Both backends run the same numbered migrations on open. */
    const char *path;
    /* Wall time for timestamps and session expiry; NULL: system clock.
     * Copied. Tests pass the fixture's virtual clock. */
    const chanc_clock_t *clock;
    /* libsodium crypto_pwhash limits for new passwords; 0: the
     * INTERACTIVE limits (argon2id). Tests lower them to the minimum. */
    unsigned long long pwhash_opslimit;
    size_t pwhash_memlimit;
    /* Session lifetime; 0: 14 days (Django's default). */
    int64_t session_ttl_ms;
    /* SQLite only. false (default): WAL with synchronous=NORMAL, durable across a
     * crash of the process (kill -9); true: synchronous=FULL, durable
     * across power loss too, at an fsync per commit. */
    bool sync_full;
    /* SQLite only. WAL pages that wake the checkpoint thread (a PASSIVE checkpoint on
     * its own connection, so commits never pay for it); 0: 1000. */
    int checkpoint_pages;
} chat_store_options_t;

typedef struct chat_user {
    int64_t id;
    char username[CHAT_USERNAME_MAX * 4 + 1]; /* UTF-8 */
    bool is_staff; /* may post announcements (chat_store_set_user_staff) */
} chat_user_t;

typedef struct chat_room {
    int64_t id;
    char name[CHAT_ROOM_NAME_MAX * 4 + 1];
    char slug[CHAT_ROOM_NAME_MAX + 1];
    int64_t created_at_ms;
    bool is_private; /* only its members see it (rooms are public when created) */
} chat_room_t;

/* Open (and create/migrate) a store. err says why on failure. */
int chat_store_open(const chat_store_options_t *opt, chat_store_t **out,
                    chanc_error_t *err);
/* Close; NULL is a no-op. */
void chat_store_close(chat_store_t *s);
/* A second connection to the same database with the same options (for
 * another thread; clock NULL: s's), sharing s's injected faults; s must
 * outlive it. CHANC_EINVAL for an in-memory SQLite database, which a
 * second connection cannot see (chat_store_is_shareable says so first). */
int chat_store_open_like(const chat_store_t *s, const chanc_clock_t *clock, chat_store_t **out,
                         chanc_error_t *err);
bool chat_store_is_shareable(const chat_store_t *s);
/* "sqlite" or "postgresql" (for logs: the URL may hold a password). */
const char *chat_store_backend_name(const chat_store_t *s);
/* Whether db names a PostgreSQL database (postgresql:// or postgres://). */
bool chat_store_is_postgresql_url(const char *db);
/* The schema version after migrations (for tests and --version). */
int chat_store_schema_version(chat_store_t *s);
int64_t chat_store_now_ms(const chat_store_t *s);
/* Wait until no checkpoint is requested or running; returns how many have
 * run so far (0 for a store without WAL, and on PostgreSQL). For tests
 * and tools. */
unsigned long chat_store_checkpoints_wait(chat_store_t *s);

/* Users. Usernames: 1–150 characters of letters, digits and @.+-_ .
 * Passwords are stored as argon2id hashes (crypto_pwhash_str), never in
 * clear. create: CHANC_EEXIST when taken, CHANC_EINVAL for a bad name or
 * an empty password. check_password: 0 and *out filled, or CHANC_EDENIED
 * for an unknown user or a wrong password (same answer, same cost). */
int chat_store_create_user(chat_store_t *s, const char *username,
                           const char *password, int64_t *id_out);
int chat_store_check_password(chat_store_t *s, const char *username,
                              const char *password, chat_user_t *out);
int chat_store_get_user(chat_store_t *s, const char *username, chat_user_t *out);

/* check_password in two halves, so that the ~100 ms hash verification can
 * run off the loop thread: password_lookup (the store's thread) copies the user's
 * hash, or for an unknown user a dummy hash (*known false, *out zeroed);
 * chat_password_verify (any thread, touches no store) checks a password
 * against it. Log in only when known && verify. */
#define CHAT_PASSWORD_HASH_MAX 128
int chat_store_password_lookup(chat_store_t *s, const char *username, chat_user_t *out,
                               char hash[CHAT_PASSWORD_HASH_MAX], bool *known);
bool chat_password_verify(const char *hash, const char *password);

/* Sessions: a random 32-byte token (hex) valid for session_ttl_ms.
 * session_user: CHANC_ENOTFOUND when unknown, malformed or expired. */
int chat_store_create_session(chat_store_t *s, int64_t user_id,
                              char token_out[CHAT_SESSION_TOKEN_LEN + 1]);
int chat_store_session_user(chat_store_t *s, const char *token, chat_user_t *out);
/* The same, and the wall time (ms) at which the session expires. */
int chat_store_session_user_until(chat_store_t *s, const char *token, chat_user_t *out,
                                  int64_t *expires_ms);
int chat_store_delete_session(chat_store_t *s, const char *token);
/* The group every chat socket of a session joins: "chat_session_" and 32
 * hex digits of a BLAKE2b hash of the token (a group name travels to Redis
 * and may be logged; the token must not). Any thread. */
#define CHAT_SESSION_GROUP_MAX 48
void chat_session_group(const char *token, char out[CHAT_SESSION_GROUP_MAX]);

/* Rooms and members. add_member is idempotent. A room is created public;
 * set_room_private makes it private (or public again): CHANC_ENOTFOUND for
 * no such room. */
int chat_store_create_room(chat_store_t *s, const char *name, const char *slug,
                           int64_t *id_out);
int chat_store_get_room(chat_store_t *s, int64_t id, chat_room_t *out);
int chat_store_set_room_private(chat_store_t *s, int64_t room_id, bool is_private);
/* Make a user staff (or not): staff may post announcements to the rooms
 * they may see. Users are created non-staff. CHANC_ENOTFOUND: no such user. */
int chat_store_set_user_staff(chat_store_t *s, int64_t user_id, bool is_staff);
/* New array of {"id","name","slug","private","member"} ordered by name (byte
 * order), then id. list_rooms: every room ("member" false); list_rooms_for:
 * what user_id may see — the public rooms and the private ones they are a
 * member of, "member" saying whether they are. */
int chat_store_list_rooms(chat_store_t *s, json_t **out);
int chat_store_list_rooms_for(chat_store_t *s, int64_t user_id, json_t **out);
/* New array of the usernames of a room's members (at most limit), in byte
 * order. */
int chat_store_room_members(chat_store_t *s, int64_t room_id, int limit, json_t **out);
int chat_store_add_member(chat_store_t *s, int64_t room_id, int64_t user_id);
int chat_store_is_member(chat_store_t *s, int64_t room_id, int64_t user_id,
                         bool *out);

/* Messages. add_message commits before it returns (the "committed before
 * complete" guarantee rests on this). text is UTF-8, len bytes, 1–4000
 * characters, no NUL byte (CHANC_EINVAL otherwise). */
int chat_store_add_message(chat_store_t *s, int64_t room_id, int64_t user_id,
                           const char *text, size_t len, int64_t ts_ms,
                           int64_t *id_out);
/* Several messages, committed together (one transaction: one commit, one
 * fsync), each with its own result: m[i].rc is 0 (m[i].id set) or what
 * add_message would have said. Returns 0, or CHANC_EINVAL for bad
 * arguments. If the batch fails as a whole it is rolled back and each
 * message tried alone, so one bad row fails only itself. */
typedef struct chat_store_msg {
    int64_t room_id, user_id, ts_ms;
    const char *text;
    size_t len;
    int64_t id; /* out */
    int rc;     /* out */
} chat_store_msg_t;
int chat_store_add_messages(chat_store_t *s, chat_store_msg_t *m, size_t n);
/* New array of the last `limit` messages of a room, oldest first, each
 * {"username","message","timestamp"} (ISO 8601 UTC, milliseconds),
 * ordered by timestamp then id. */
int chat_store_history(chat_store_t *s, int64_t room_id, int limit, json_t **out);
int chat_store_message_count(chat_store_t *s, int64_t room_id, int64_t *out);
/* Number of users (0: a new database, chat-server seeds it). */
int chat_store_user_count(chat_store_t *s, int64_t *out);

/* Fixtures (JSON files in fixtures/): {"users":[{"username","password",
 * "is_staff"?}],
 * "rooms":[{"name","slug","private"?,"members":[username…]}],
 * "messages":[{"room":slug,"username","message","timestamp"}]}, loaded in
 * one transaction (all or nothing). err names the offending entry. */
int chat_store_load_fixtures(chat_store_t *s, const char *path, chanc_error_t *err);
int chat_store_load_fixtures_json(chat_store_t *s, const json_t *fx, chanc_error_t *err);
/* Room id by slug (fixtures refer to rooms by slug). */
int chat_store_room_by_slug(chat_store_t *s, const char *slug, chat_room_t *out);

/* ---- the chat consumer --------------------------------------------------- */

/* Incoming: chat (1–4000 characters), ping. Outgoing: the rest. */
extern const chanc_message_type_t chat_msg_chat, chat_msg_ping, chat_msg_pong,
    chat_msg_user_joined, chat_msg_user_left, chat_msg_history;
/* The chat frame a room's members get (action "chat", with username,
 * timestamp, is_mine and is_current beside the payload). */
extern const chanc_message_type_t chat_msg_chat_relayed;

/* The internal event (chanc_app_group_event) that ends a session's
 * sockets: sent to its chat_session_group by chat_session_end. */
extern const chanc_message_type_t chat_event_session_ended;
/* A session has ended (a logout; call it after deleting the session):
 * every chat socket opened with it gets the authentication frame 401
 * "Logged out." and is closed with 4401 — those in this process before this
 * returns (so nothing more reaches them after the logout's answer), those
 * of other chat-server processes when the event reaches them through the
 * channel layer. token: the session's (a malformed one ends nothing).
 * Loop thread; 0 or a negative CHANC_E… code. */
int chat_session_end(chanc_app_t *app, const char *token);

/* Announcements: the typed event `announcement` ({"message","username",
 * "timestamp"}) to a room's group, and the outgoing frame of the same
 * action and payload each member's socket passes it on as. */
extern const chanc_message_type_t chat_event_announcement, chat_msg_announcement;
/* Send an announcement (message: 1-500 characters) by `username` at wall
 * time ts_ms to every member of the room, in every process: the room's
 * sockets in this process have it before this returns. Nothing is stored.
 * Loop thread; 0, CHANC_EINVAL, CHANC_EVALIDATION (message out of
 * bounds), or the layer's error. Authorisation is the caller's
 * (POST /api/rooms/{id}/announcements: staff only). */
int chat_announce(chanc_app_t *app, int64_t room_id, const char *message, const char *username,
                  int64_t ts_ms);

/* Route ws/chat/{pk:int}/ to the chat consumer. It starts a database
 * thread on a second connection to s's database (or, for an in-memory
 * SQLite database, uses s inline) and stops it in chanc_app_destroy; `s`
 * is borrowed and must outlive the app. */
int chat_register(chanc_app_t *app, chat_store_t *s);
/* The same with options (NULL: the defaults). secure_cookies: the session
 * is read from CHAT_SESSION_COOKIE_SECURE only (as the views set it with
 * chat_views_t.secure_cookies), never from a plain "sessionid". */
typedef struct chat_options {
    bool secure_cookies;
    /* Presence (docs/protocol.md, "Presence"): a room with at most
     * presence_threshold members connected to this process gets the
     * seed's user_joined / user_left per join and leave; past it, the
     * joins and leaves of one presence_interval_ms (on the app's clock)
     * go out as one `presence` frame, encoded once for the whole room.
     * Back to single frames once the room is down to half the threshold.
     * 0: the defaults, CHAT_PRESENCE_THRESHOLD and CHAT_PRESENCE_INTERVAL_MS. */
    size_t presence_threshold;
    uint32_t presence_interval_ms;
} chat_options_t;
#define CHAT_PRESENCE_THRESHOLD 100    /* members (in this process) */
#define CHAT_PRESENCE_INTERVAL_MS 1000
#define CHAT_PRESENCE_LIST_MAX 50      /* usernames per list in one presence frame */
/* The coalesced presence frame: {"joined":[…],"left":[…],"joined_count",
 * "left_count","online"}. */
extern const chanc_message_type_t chat_msg_presence;
int chat_register_with(chanc_app_t *app, chat_store_t *s, const chat_options_t *opt);

/* How long chat messages' commits took, for metrics: process-wide, since
 * start. The database thread commits the messages waiting at once, in one
 * transaction; each message counts that transaction's time (insert to
 * commit, on the monotonic clock). bucket[i] counts messages whose commit
 * took at most chat_commit_bucket_us[i] microseconds and more than the
 * bound before; bucket[CHAT_COMMIT_BUCKETS] the rest. transactions:
 * commits (count / transactions = messages per commit). */
#define CHAT_COMMIT_BUCKETS 10
extern const uint32_t chat_commit_bucket_us[CHAT_COMMIT_BUCKETS];
typedef struct chat_commit_stats {
    uint64_t count, failed, sum_ns, transactions;
    uint64_t bucket[CHAT_COMMIT_BUCKETS + 1];
} chat_commit_stats_t;
void chat_commit_stats(chat_commit_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif
