/* The chat application's test fixture, on top of chanc's: a fresh app on a
 * virtual clock, a fresh store (a temporary SQLite file, WAL, removed
 * afterwards; or, when CHAT_TEST_PG is set, a fresh PostgreSQL schema,
 * dropped afterwards) loaded from fixtures/chat.json, the chat consumer routed,
 * and "testuser" logged in: every communicator made from the fixture
 * carries testuser's session cookie unless it sets its own.
 *
 *   static void test_x(void **state) {
 *       chat_test_t *t = *state;
 *       chanc_communicator_t *c = chanc_test_communicator(t->test, "/ws/chat/%lld/",
 *                                                         (long long)t->room_id);
 *       ...
 *   }
 *   CHAT_TEST(test_x)   (in the tests run by chanc_run_group_tests)
 */
#ifndef CHAT_TEST_H
#define CHAT_TEST_H

#include <chanc/testing.h>

#include "chanc/chat.h"

/* A scratch database for one test. The backend is chosen by the
 * environment: CHAT_TEST_PG names a file holding the URL of a PostgreSQL
 * server (written by tests/support/pg_cluster, which ctest runs as a
 * fixture); unset, SQLite files in $TMPDIR. */
typedef struct chat_test_db {
    char url[600];    /* what chat_store_options_t.path takes */
    char dir[256];    /* SQLite: the temporary directory */
    char schema[64];  /* PostgreSQL: the schema (search_path in url) */
} chat_test_db_t;

/* Whether the tests run against PostgreSQL (CHAT_TEST_PG set). */
bool chat_test_pg(void);
/* A fresh, empty database: 0, or -1 (printed). */
int chat_test_db_create(chat_test_db_t *db);
/* Remove it (files, or the schema and all in it); safe on a zeroed db
 * and while a store still has it open. */
void chat_test_db_drop(chat_test_db_t *db);

typedef struct chat_test {
    chanc_test_t *test;   /* the chanc fixture: communicators, clock, logs */
    chat_store_t *store;  /* fresh, fixtures loaded */
    int64_t room_id;      /* "General": testuser, alice, bob, carol */
    int64_t user_id;      /* testuser */
    chat_test_db_t db;    /* the scratch database (db.url) */
    bool in_memory;       /* chat_test_options_t.in_memory */
    bool secure_cookies;  /* chat_test_options_t.secure_cookies */
    chat_options_t chat;  /* what chat_register_with was given */
} chat_test_t;

typedef struct chat_test_options {
    /* Extra fixture files (names in fixtures/), loaded after chat.json;
     * NULL-terminated, may be NULL. */
    const char *const *fixtures;
    const char *name; /* the test's name (transcript files); may be NULL */
    /* SQLite ":memory:" instead of a scratch file (ignored on PostgreSQL):
     * one connection, so the consumer's store jobs run inline on the loop
     * thread (still finishing on a later turn) instead of on its database
     * thread. For fuzzing, where a thread hop per frame costs executions. */
    bool in_memory;
    /* The consumer reads the session from CHAT_SESSION_COOKIE_SECURE
     * (chat_register_with), and the fixture's cookies carry that name. */
    bool secure_cookies;
    /* The app's keepalive (chanc_app_config_t.keepalive_ms; 0: off). */
    uint64_t keepalive_ms;
    /* chat_options_t's presence settings (0: the defaults). */
    size_t presence_threshold;
    uint32_t presence_interval_ms;
} chat_test_options_t;

/* NULL on failure (printed). */
chat_test_t *chat_test_create(const chat_test_options_t *opt);
/* Disconnects, settles, closes the store and removes the database. */
void chat_test_destroy(chat_test_t *t);

/* cmocka setup/teardown: *state is a chat_test_t. The _busy variant also
 * loads fixtures/history60.json (room "busy": 60 messages). Registered
 * with chanc_unit_test (or CHAT_TEST), the cmocka initial state is the
 * test's name, used for its transcript file. */
int chat_test_setup(void **state);
int chat_test_setup_busy(void **state);
int chat_test_teardown(void **state);

/* A communicator on room_id logged in as `username` (a new session), or
 * anonymous when username is NULL. Owned by the fixture. */
chanc_communicator_t *chat_test_client(chat_test_t *t, int64_t room_id, const char *username);
/* Connected, authenticated (200 asserted) and drained of the join frames. */
chanc_communicator_t *chat_test_member(chat_test_t *t, int64_t room_id, const char *username);
/* Room id by fixture slug ("general", "random", "private", "busy"). */
int64_t chat_test_room(chat_test_t *t, const char *slug);

/* The group of room_id's sockets ("chat_room_<id>") into out, captured
 * from now on (chanc_test_capture_group): what the room is sent can be
 * asserted without a member as witness.
 *   char room[CHAT_TEST_GROUP_MAX];
 *   chat_test_capture_room(t, t->room_id, room);
 *   ...
 *   chanc_assert_group_sent_match(t->test, room, "[{\"action\":\"chat\"}]"); */
#define CHAT_TEST_GROUP_MAX 40
const char *chat_test_capture_room(chat_test_t *t, int64_t room_id,
                                   char out[CHAT_TEST_GROUP_MAX]);

/* The numbered chat messages a member received, in the order received:
 * from frames (what a communicator received, e.g. receive_all_json), each
 * `history` frame's items and each live `chat` frame whose text is
 * "<prefix><number>" (the rest, say the fixture's messages, skipped).
 * Their numbers go to out (at most cap of them) and, when from_history is
 * not NULL, whether each came in a history. Returns how many there were
 * (more than cap: only cap written). For "each message once, in order,
 * in history or live":
 *   int n[64]; bool h[64];
 *   size_t k = chat_test_numbered(frames, "burst ", n, h, 64); */
size_t chat_test_numbered(const json_t *frames, const char *prefix, int *out, bool *from_history,
                          size_t cap);

/* Fault injection: the next message the store writes fails to commit
 * (SQLite aborts the write: nothing is stored); later writes succeed.
 * 0 or a negative CHANC_E code. */
int chat_test_fail_next_commit(chat_test_t *t);

#define CHAT_TEST(fn) chanc_unit_test(fn, chat_test_setup, chat_test_teardown)

#endif
