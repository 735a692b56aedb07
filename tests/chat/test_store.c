/* chat.store: the chat store — migrations, users and password hashing,
 * sessions and expiry, rooms and members, message history, and the JSON
 * fixture loader. Each test opens a fresh store. On SQLite (chat.store):
 * ":memory:" for most, a temporary file where WAL or persistence matters.
 * On PostgreSQL (chat.store.pg, CHAT_TEST_PG set): a fresh schema each
 * time, dropped after the test. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chanc/chat.h"
#include "chat_test.h"
#include "store_internal.h" /* transactions, for the lost-connection test */
#include "store_testing.h"

#ifndef CHANC_FIXTURES_DIR
#error "CHANC_FIXTURES_DIR must name the fixtures directory"
#endif

/* ---- fixture helpers ---------------------------------------------------- */

static int64_t fake_now_ms;

static int64_t fake_wall_ms(void *ud) {
    (void)ud;
    return fake_now_ms;
}

static const chanc_clock_t fake_clock = {NULL, fake_wall_ms, NULL};

/* 2026-01-01T00:00:00.000Z */
#define T0 INT64_C(1767225600000)

static chat_store_options_t fast_options(const char *path) {
    chat_store_options_t o = {
        .path = path,
        .clock = &fake_clock,
        .pwhash_opslimit = crypto_pwhash_OPSLIMIT_MIN,
        .pwhash_memlimit = crypto_pwhash_MEMLIMIT_MIN,
    };
    return o;
}

static chat_store_t *open_store_opts(const chat_store_options_t *o) {
    chat_store_t *s = NULL;
    chanc_error_t err = {0};
    int rc = chat_store_open(o, &s, &err);
    if (rc != 0)
        print_error("chat_store_open(%s): %s\n", o->path, err.text);
    assert_int_equal(rc, 0);
    assert_non_null(s);
    return s;
}

static chat_store_t *open_store(const char *path) {
    fake_now_ms = T0;
    chat_store_options_t o = fast_options(path);
    return open_store_opts(&o);
}

static bool pg_mode; /* CHAT_TEST_PG: every store on PostgreSQL */

/* Scratch databases made during the current test, dropped by its
 * teardown (after the test closed its stores, or failed half-way). */
static chat_test_db_t scratch[8];
static int scratch_n;

static chat_test_db_t *scratch_db(void) {
    assert_true(scratch_n < (int)(sizeof scratch / sizeof scratch[0]));
    chat_test_db_t *db = &scratch[scratch_n++];
    assert_int_equal(chat_test_db_create(db), 0);
    return db;
}

static int drop_scratch(void **state) {
    (void)state;
    while (scratch_n > 0)
        chat_test_db_drop(&scratch[--scratch_n]);
    return 0;
}

/* A fresh store with nothing on disk to look at: SQLite ":memory:", or a
 * new PostgreSQL schema. */
static chat_store_t *open_mem(void) { return open_store(pg_mode ? scratch_db()->url : ":memory:"); }

/* A fresh database that outlives its stores (reopened, or looked at
 * directly): a temporary SQLite file, or a PostgreSQL schema. */
typedef struct tmpdb {
    const char *path;
} tmpdb_t;

static void tmpdb_make(tmpdb_t *t) { t->path = scratch_db()->url; }

/* A direct connection to the store's database, for looking behind the
 * store's back with plain SQL. */
typedef struct raw {
    sqlite3 *lite;
    PGconn *pg;
} raw_t;

static raw_t raw_open(const char *path) {
    raw_t r = {0};
    if (pg_mode) {
        r.pg = PQconnectdb(path);
        if (PQstatus(r.pg) != CONNECTION_OK)
            fail_msg("connecting to %s: %s", path, PQerrorMessage(r.pg));
    } else {
        assert_int_equal(sqlite3_open_v2(path, &r.lite, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
        sqlite3_busy_timeout(r.lite, 5000);
    }
    return r;
}

static void raw_close(raw_t *r) {
    sqlite3_close(r->lite);
    PQfinish(r->pg);
}

/* The first column of the only row, as text, into buf. */
static const char *raw_text(raw_t *r, const char *sql, char *buf, size_t size) {
    if (r->pg) {
        PGresult *res = PQexec(r->pg, sql);
        if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
            fail_msg("%s: %s", sql, PQresultErrorMessage(res));
        snprintf(buf, size, "%s", PQgetvalue(res, 0, 0));
        PQclear(res);
    } else {
        sqlite3_stmt *st = NULL;
        assert_int_equal(sqlite3_prepare_v2(r->lite, sql, -1, &st, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        const char *v = (const char *)sqlite3_column_text(st, 0);
        assert_non_null(v);
        snprintf(buf, size, "%s", v);
        sqlite3_finalize(st);
    }
    return buf;
}

static int64_t raw_int(raw_t *r, const char *sql) {
    char buf[64];
    return strtoll(raw_text(r, sql, buf, sizeof buf), NULL, 10);
}

static void raw_exec(raw_t *r, const char *sql) {
    if (r->pg) {
        PGresult *res = PQexec(r->pg, sql);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            fail_msg("%s: %s", sql, PQresultErrorMessage(res));
        PQclear(res);
    } else {
        assert_int_equal(sqlite3_exec(r->lite, sql, NULL, NULL, NULL), SQLITE_OK);
    }
}

static int64_t make_user(chat_store_t *s, const char *name) {
    int64_t id = 0;
    assert_int_equal(chat_store_create_user(s, name, "secret-pass", &id), 0);
    assert_true(id > 0);
    return id;
}

static int64_t make_room(chat_store_t *s, const char *name, const char *slug) {
    int64_t id = 0;
    assert_int_equal(chat_store_create_room(s, name, slug, &id), 0);
    assert_true(id > 0);
    return id;
}

static int64_t add_msg(chat_store_t *s, int64_t room, int64_t user, const char *text,
                       int64_t ts) {
    int64_t id = 0;
    assert_int_equal(chat_store_add_message(s, room, user, text, strlen(text), ts, &id), 0);
    return id;
}

/* The "message" texts of a history array, checked against expected. */
static void assert_history_texts(const json_t *hist, const char *const *expected, size_t n) {
    assert_true(json_is_array(hist));
    assert_int_equal(json_array_size(hist), n);
    for (size_t i = 0; i < n; i++) {
        const char *got = json_string_value(json_object_get(json_array_get(hist, i), "message"));
        assert_non_null(got);
        assert_string_equal(got, expected[i]);
    }
}

static void load_fixture_file(chat_store_t *s, const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", CHANC_FIXTURES_DIR, name);
    chanc_error_t err = {0};
    int rc = chat_store_load_fixtures(s, path, &err);
    if (rc != 0)
        print_error("loading %s: %s\n", path, err.text);
    assert_int_equal(rc, 0);
}

/* ---- schema and persistence ---------------------------------------------- */

static void test_migrations_and_reopen(void **state) {
    (void)state;
    tmpdb_t t;
    tmpdb_make(&t);

    chat_store_t *s = open_store(t.path);
    assert_int_equal(chat_store_schema_version(s), chat_schema_version);
    int64_t uid = make_user(s, "alice");
    int64_t rid = make_room(s, "General", "general");
    assert_int_equal(chat_store_add_member(s, rid, uid), 0);
    add_msg(s, rid, uid, "persisted", T0);

    /* Every table is there (and, on SQLite, WAL is on). */
    raw_t db = raw_open(t.path);
    char mode[32];
    if (pg_mode) {
        assert_int_equal(raw_int(&db, "SELECT COUNT(*) FROM information_schema.tables WHERE "
                                      "table_schema = current_schema() AND table_name IN "
                                      "('schema_version', 'users', 'sessions', 'rooms', "
                                      "'room_members', 'messages')"),
                         6);
        /* OFFSET 0 fences the subquery: pg_get_indexdef runs for this
         * schema's indexes only, never for those of a test dropping its
         * schema at the same moment ("could not open relation with OID"). */
        assert_int_equal(raw_int(&db, "SELECT COUNT(*) FROM (SELECT indexdef FROM pg_indexes "
                                      "WHERE schemaname = current_schema() OFFSET 0) i "
                                      "WHERE indexdef LIKE '%messages%room_id, created_at, id%'"),
                         1);
    } else {
        assert_string_equal(raw_text(&db, "PRAGMA journal_mode", mode, sizeof mode), "wal");
        assert_int_equal(raw_int(&db, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND "
                                      "name IN ('schema_version', 'users', 'sessions', 'rooms', "
                                      "'room_members', 'messages')"),
                         6);
        assert_int_equal(raw_int(&db, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND "
                                      "sql LIKE '%messages%room_id%created_at%id%'"),
                         1);
    }
    /* The message is committed: visible to another connection. */
    assert_int_equal(raw_int(&db, "SELECT COUNT(*) FROM messages"), 1);
    raw_close(&db);
    chat_store_close(s);

    /* Reopening runs no migration again and keeps the data. */
    s = open_store(t.path);
    assert_int_equal(chat_store_schema_version(s), chat_schema_version);
    chat_user_t u;
    assert_int_equal(chat_store_get_user(s, "alice", &u), 0);
    assert_int_equal(u.id, uid);
    int64_t count = -1;
    assert_int_equal(chat_store_message_count(s, rid, &count), 0);
    assert_int_equal(count, 1);
    bool member = false;
    assert_int_equal(chat_store_is_member(s, rid, uid, &member), 0);
    assert_true(member);
    chat_store_close(s);

    db = raw_open(t.path);
    assert_int_equal(raw_int(&db, "SELECT COUNT(*) FROM schema_version"), 1);
    assert_int_equal(raw_int(&db, "SELECT version FROM schema_version"), chat_schema_version);
    raw_close(&db);
}

/* A database of schema version 1 (before private rooms) is migrated: its
 * rooms stay public, and can be made private afterwards. */
static void test_migration_2_keeps_rooms_public(void **state) {
    (void)state;
    tmpdb_t t;
    tmpdb_make(&t);
    if (!pg_mode) { /* an empty file is an empty SQLite database */
        FILE *f = fopen(t.path, "w");
        assert_non_null(f);
        fclose(f);
    }
    raw_t db = raw_open(t.path);
    raw_exec(&db, pg_mode ? chat_migrations[0].postgresql : chat_migrations[0].sqlite);
    raw_exec(&db, "CREATE TABLE schema_version(version INTEGER NOT NULL);"
                  "INSERT INTO schema_version(version) VALUES (1);"
                  "INSERT INTO rooms(name, slug, created_at) VALUES ('Old', 'old', 0)");
    raw_close(&db);

    chat_store_t *s = open_store(t.path);
    assert_int_equal(chat_store_schema_version(s), chat_schema_version);
    chat_room_t r;
    assert_int_equal(chat_store_room_by_slug(s, "old", &r), 0);
    assert_false(r.is_private);
    assert_int_equal(chat_store_set_room_private(s, r.id, true), 0);
    assert_int_equal(chat_store_get_room(s, r.id, &r), 0);
    assert_true(r.is_private);
    chat_store_close(s);
}

/* A database of schema version 2 (before staff) is migrated: its users are
 * not staff; one is made staff, and a session lookup says so. */
static void test_migration_3_adds_non_staff_users(void **state) {
    (void)state;
    tmpdb_t t;
    tmpdb_make(&t);
    if (!pg_mode) {
        FILE *f = fopen(t.path, "w");
        assert_non_null(f);
        fclose(f);
    }
    raw_t db = raw_open(t.path);
    for (int v = 0; v < 2; v++)
        raw_exec(&db, pg_mode ? chat_migrations[v].postgresql : chat_migrations[v].sqlite);
    raw_exec(&db, "CREATE TABLE schema_version(version INTEGER NOT NULL);"
                  "INSERT INTO schema_version(version) VALUES (2);"
                  "INSERT INTO users(username, password_hash, created_at) VALUES ('old', 'x', 0)");
    raw_close(&db);

    chat_store_t *s = open_store(t.path);
    assert_int_equal(chat_store_schema_version(s), 3);
    chat_user_t u;
    assert_int_equal(chat_store_get_user(s, "old", &u), 0);
    assert_false(u.is_staff);
    assert_int_equal(chat_store_set_user_staff(s, u.id, true), 0);
    assert_int_equal(chat_store_get_user(s, "old", &u), 0);
    assert_true(u.is_staff);
    char token[CHAT_SESSION_TOKEN_LEN + 1];
    assert_int_equal(chat_store_create_session(s, u.id, token), 0);
    chat_user_t by_session;
    assert_int_equal(chat_store_session_user(s, token, &by_session), 0);
    assert_true(by_session.is_staff);
    assert_int_equal(chat_store_set_user_staff(s, 424242, true), CHANC_ENOTFOUND);
    chat_store_close(s);
}

static void test_newer_schema_refused(void **state) {
    (void)state;
    tmpdb_t t;
    tmpdb_make(&t);
    chat_store_close(open_store(t.path));

    raw_t db = raw_open(t.path);
    raw_exec(&db, "UPDATE schema_version SET version = 99");
    raw_close(&db);

    chat_store_options_t o = fast_options(t.path);
    chat_store_t *s = (chat_store_t *)&o; /* must be reset to NULL */
    chanc_error_t err = {0};
    int rc = chat_store_open(&o, &s, &err);
    assert_int_equal(rc, CHANC_EINVAL);
    assert_int_equal(err.code, CHANC_EINVAL);
    assert_null(s);
    assert_non_null(strstr(err.text, "newer"));
    assert_non_null(strstr(err.text, "99"));
}

static void test_open_bad_options(void **state) {
    (void)state;
    chat_store_t *s = NULL;
    chanc_error_t err = {0};
    chat_store_options_t o = fast_options(NULL);
    assert_int_equal(chat_store_open(&o, &s, &err), CHANC_EINVAL);
    assert_null(s);
    assert_true(err.text[0] != '\0');

    o = fast_options("/nonexistent-dir-chanc/x/chat.db");
    err = (chanc_error_t){0};
    assert_int_equal(chat_store_open(&o, &s, &err), CHANC_EIO);
    assert_null(s);
    assert_non_null(strstr(err.text, "/nonexistent-dir-chanc/x/chat.db"));

    chat_store_close(NULL); /* a no-op */
}

static void test_db_names_select_the_backend(void **state) {
    (void)state;
    assert_true(chat_store_is_postgresql_url("postgresql://db.example/chat"));
    assert_true(chat_store_is_postgresql_url("postgres:///chat?host=/run/postgresql"));
    assert_false(chat_store_is_postgresql_url("chanc-chat.db"));
    assert_false(chat_store_is_postgresql_url("sqlite:postgresql.db"));
    assert_false(chat_store_is_postgresql_url(NULL));

    chat_store_t *s = open_store("sqlite::memory:");
    assert_string_equal(chat_store_backend_name(s), "sqlite");
    chat_store_close(s);
    s = open_mem();
    assert_string_equal(chat_store_backend_name(s), pg_mode ? "postgresql" : "sqlite");
    chat_store_close(s);

    /* No server there: a clear error, and never the password. */
    chat_store_options_t o =
        fast_options("postgresql://chat:s3cret-pw@/chat?host=/nonexistent-dir-chanc");
    chanc_error_t err = {0};
    s = (chat_store_t *)&o;
    assert_int_equal(chat_store_open(&o, &s, &err), CHANC_EIO);
    assert_null(s);
    assert_non_null(strstr(err.text, "cannot connect to PostgreSQL"));
    assert_non_null(strstr(err.text, "/nonexistent-dir-chanc"));
    assert_null(strstr(err.text, "s3cret"));
}

/* End the store's connection from the server side: its backend, picked
 * by process id. Never by a name its connections share: a backend whose
 * client has gone (the previous raw connection, the store's connection
 * terminated before) stays in pg_stat_activity until its process has
 * exited, which the client does not wait for (under load, a while).
 * pg_terminate_backend has signalled the backend when it returns true;
 * the backend handles the signal before it reads another statement, so
 * the store's next statement finds the connection gone. Returns the pid. */
static int terminate_store_connection(chat_store_t *s, const char *url) {
    int pid = chat_store__pg_backend_pid(s);
    assert_true(pid > 0);
    char sql[64], buf[8];
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d)", pid);
    raw_t raw = raw_open(url);
    assert_string_equal(raw_text(&raw, sql, buf, sizeof buf), "t");
    raw_close(&raw);
    return pid;
}

/* The server ends the store's connection (a restart, a failover): the
 * statement that finds it gone fails with CHANC_EIO, the next one runs on
 * a new connection, statements prepared again. */
static void test_pg_lost_connection_is_reset(void **state) {
    (void)state;
    if (!pg_mode)
        skip();
    const char *url = scratch_db()->url;
    chat_store_t *s = open_store(url);
    int64_t u = make_user(s, "alice");
    int64_t r = make_room(s, "General", "general");
    add_msg(s, r, u, "before", T0);

    int lost = terminate_store_connection(s, url);

    assert_int_equal(chat_store_add_message(s, r, u, "lost", 4, T0 + 1, NULL), CHANC_EIO);
    add_msg(s, r, u, "after", T0 + 2);
    assert_int_not_equal(chat_store__pg_backend_pid(s), lost); /* a new connection */

    /* Lost inside a transaction: no reset until the rollback, so the rest
     * of it cannot commit on its own. */
    assert_int_equal(chat_store__tx_begin(s), 0);
    add_msg(s, r, u, "in the lost transaction", T0 + 3);
    terminate_store_connection(s, url);
    assert_int_equal(chat_store_add_message(s, r, u, "x", 1, T0 + 4, NULL), CHANC_EIO);
    assert_int_equal(chat_store_add_message(s, r, u, "y", 1, T0 + 5, NULL), CHANC_EIO);
    assert_true(chat_store__tx_commit(s) < 0);
    chat_store__tx_rollback(s);
    json_t *hist = NULL;
    assert_int_equal(chat_store_history(s, r, 10, &hist), 0);
    assert_history_texts(hist, (const char *const[]){"before", "after"}, 2);
    json_decref(hist);
    chat_store_close(s);
}

/* ---- users ---------------------------------------------------------------- */

static void test_create_user_and_duplicate(void **state) {
    (void)state;
    chat_store_t *s = open_mem();
    int64_t a = make_user(s, "alice");
    int64_t b = make_user(s, "bob");
    assert_true(b != a);

    int64_t id = -7;
    assert_int_equal(chat_store_create_user(s, "alice", "other-pass", &id), CHANC_EEXIST);
    assert_int_equal(id, -7);

    chat_user_t u;
    assert_int_equal(chat_store_get_user(s, "bob", &u), 0);
    assert_int_equal(u.id, b);
    assert_string_equal(u.username, "bob");
    assert_int_equal(chat_store_get_user(s, "carol", &u), CHANC_ENOTFOUND);
    /* Usernames are case-sensitive, like Django's default. */
    assert_int_equal(chat_store_get_user(s, "Alice", &u), CHANC_ENOTFOUND);
    chat_store_close(s);
}

static void test_bad_usernames(void **state) {
    (void)state;
    chat_store_t *s = open_mem();
    char long_name[CHAT_USERNAME_MAX + 2];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0'; /* 151 characters */

    const char *const bad[] = {"", "a b", "tab\there", "semi;colon", "quote'", "slash/",
                               "<script>", "\xc3\xa9t\xc3\xa9", "nul\x01", "new\nline",
                               long_name};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(chat_store_create_user(s, bad[i], "pw-123456", NULL), CHANC_EINVAL);
    assert_int_equal(chat_store_create_user(s, NULL, "pw-123456", NULL), CHANC_EINVAL);

    /* Empty or missing password. */
    assert_int_equal(chat_store_create_user(s, "nopass", "", NULL), CHANC_EINVAL);
    assert_int_equal(chat_store_create_user(s, "nopass", NULL, NULL), CHANC_EINVAL);

    /* The edges that are fine: 150 characters, every allowed symbol. */
    long_name[CHAT_USERNAME_MAX] = '\0';
    assert_int_equal(chat_store_create_user(s, long_name, "pw-123456", NULL), 0);
    assert_int_equal(chat_store_create_user(s, "a.b+c-d_e@F9", "pw-123456", NULL), 0);
    assert_int_equal(chat_store_create_user(s, "x", "pw-123456", NULL), 0);
    chat_user_t u;
    assert_int_equal(chat_store_get_user(s, long_name, &u), 0);
    assert_string_equal(u.username, long_name);
    chat_store_close(s);
}

static void test_password_not_stored_in_clear(void **state) {
    (void)state;
    tmpdb_t t;
    tmpdb_make(&t);
    chat_store_t *s = open_store(t.path);
    make_user(s, "alice");
    assert_int_equal(chat_store_create_user(s, "bob", "hunter2-secret", NULL), 0);
    chat_store_close(s);

    raw_t db = raw_open(t.path);
    char hash[256];
    raw_text(&db, "SELECT password_hash FROM users WHERE username = 'bob'", hash, sizeof hash);
    assert_int_equal(strncmp(hash, "$argon2id$", 10), 0);
    assert_null(strstr(hash, "hunter2-secret"));
    assert_null(strstr(hash, "hunter2"));
    /* Two users never share a hash (random salt), even for one password. */
    assert_int_equal(raw_int(&db, "SELECT COUNT(DISTINCT password_hash) FROM users"), 2);
    raw_close(&db);
}

static void test_check_password(void **state) {
    (void)state;
    chat_store_t *s = open_mem();
    int64_t id = 0;
    assert_int_equal(chat_store_create_user(s, "alice", "alice-pass-1", &id), 0);

    chat_user_t u = {0};
    assert_int_equal(chat_store_check_password(s, "alice", "alice-pass-1", &u), 0);
    assert_int_equal(u.id, id);
    assert_string_equal(u.username, "alice");

    chat_user_t untouched = {.id = 42};
    assert_int_equal(chat_store_check_password(s, "alice", "alice-pass-2", &untouched),
                     CHANC_EDENIED);
    assert_int_equal(untouched.id, 42);
    assert_int_equal(chat_store_check_password(s, "alice", "", &untouched), CHANC_EDENIED);
    assert_int_equal(chat_store_check_password(s, "alice", "alice-pass-1x", &untouched),
                     CHANC_EDENIED);
    /* An unknown user gets the same answer as a wrong password. */
    assert_int_equal(chat_store_check_password(s, "mallory", "alice-pass-1", &untouched),
                     CHANC_EDENIED);
    assert_int_equal(chat_store_check_password(s, "bad name!", "x", &untouched), CHANC_EDENIED);
    assert_int_equal(untouched.id, 42);
    chat_store_close(s);
}

/* ---- sessions -------------------------------------------------------------- */

static bool is_lower_hex64(const char *t) {
    if (strlen(t) != CHAT_SESSION_TOKEN_LEN)
        return false;
    for (const char *p = t; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

static void test_sessions_lifecycle(void **state) {
    (void)state;
    chat_store_t *s = open_mem();
    int64_t alice = make_user(s, "alice");
    int64_t bob = make_user(s, "bob");

    char t1[CHAT_SESSION_TOKEN_LEN + 1], t2[CHAT_SESSION_TOKEN_LEN + 1];
    assert_int_equal(chat_store_create_session(s, alice, t1), 0);
    assert_int_equal(chat_store_create_session(s, bob, t2), 0);
    assert_true(is_lower_hex64(t1));
    assert_true(is_lower_hex64(t2));
    assert_string_not_equal(t1, t2);

    chat_user_t u;
    assert_int_equal(chat_store_session_user(s, t1, &u), 0);
    assert_int_equal(u.id, alice);
    assert_string_equal(u.username, "alice");
    assert_int_equal(chat_store_session_user(s, t2, &u), 0);
    assert_int_equal(u.id, bob);

    assert_int_equal(chat_store_delete_session(s, t1), 0);
    assert_int_equal(chat_store_session_user(s, t1, &u), CHANC_ENOTFOUND);
    assert_int_equal(chat_store_delete_session(s, t1), CHANC_ENOTFOUND);
    /* Deleting one session leaves the others. */
    assert_int_equal(chat_store_session_user(s, t2, &u), 0);

    /* A session for no user is refused (foreign key). */
    char t3[CHAT_SESSION_TOKEN_LEN + 1];
    assert_int_equal(chat_store_create_session(s, 9999, t3), CHANC_ENOTFOUND);
    chat_store_close(s);
}

static void test_session_expiry(void **state) {
    (void)state;
    fake_now_ms = T0;
    chat_store_options_t o = fast_options(":memory:");
    o.session_ttl_ms = 60 * 1000;
    chat_store_t *s = open_store_opts(&o);
    assert_int_equal(chat_store_now_ms(s), T0);
    int64_t alice = make_user(s, "alice");

    char tok[CHAT_SESSION_TOKEN_LEN + 1];
    assert_int_equal(chat_store_create_session(s, alice, tok), 0);
    chat_user_t u;
    fake_now_ms = T0 + 60 * 1000 - 1;
    assert_int_equal(chat_store_now_ms(s), fake_now_ms);
    assert_int_equal(chat_store_session_user(s, tok, &u), 0);
    fake_now_ms = T0 + 60 * 1000; /* expires_at <= now: gone */
    assert_int_equal(chat_store_session_user(s, tok, &u), CHANC_ENOTFOUND);
    fake_now_ms += 24 * 60 * 60 * 1000;
    assert_int_equal(chat_store_session_user(s, tok, &u), CHANC_ENOTFOUND);

    /* A later login works, and the expired one stays dead. */
    char tok2[CHAT_SESSION_TOKEN_LEN + 1];
    assert_int_equal(chat_store_create_session(s, alice, tok2), 0);
    assert_int_equal(chat_store_session_user(s, tok2, &u), 0);
    assert_int_equal(chat_store_session_user(s, tok, &u), CHANC_ENOTFOUND);
    chat_store_close(s);
}

static void test_session_default_ttl_is_14_days(void **state) {
    (void)state;
    chat_store_t *s = open_mem();
    int64_t alice = make_user(s, "alice");
    char tok[CHAT_SESSION_TOKEN_LEN + 1];
    assert_int_equal(chat_store_create_session(s, alice, tok), 0);
    chat_user_t u;
    fake_now_ms = T0 + 14LL * 24 * 60 * 60 * 1000 - 1;
    assert_int_equal(chat_store_session_user(s, tok, &u), 0);
    fake_now_ms += 1;
    assert_int_equal(chat_store_session_user(s, tok, &u), CHANC_ENOTFOUND);
    chat_store_close(s);
}

static void test_session_malformed_and_forged(void **state) {
    (void)state;
    chat_store_t *s = open_mem();
    int64_t alice = make_user(s, "alice");
    char tok[CHAT_SESSION_TOKEN_LEN + 1];
    assert_int_equal(chat_store_create_session(s, alice, tok), 0);

    char upper[CHAT_SESSION_TOKEN_LEN + 1], longer[CHAT_SESSION_TOKEN_LEN + 2],
        shorter[CHAT_SESSION_TOKEN_LEN], flipped[CHAT_SESSION_TOKEN_LEN + 1],
        forged[CHAT_SESSION_TOKEN_LEN + 1], nonhex[CHAT_SESSION_TOKEN_LEN + 1],
        injected[CHAT_SESSION_TOKEN_LEN + 1];
    for (size_t i = 0; i <= CHAT_SESSION_TOKEN_LEN; i++)
        upper[i] = (char)(tok[i] >= 'a' && tok[i] <= 'f' ? tok[i] - 32 : tok[i]);
    snprintf(longer, sizeof longer, "%s0", tok);
    memcpy(shorter, tok, sizeof shorter - 1);
    shorter[sizeof shorter - 1] = '\0';
    memcpy(flipped, tok, sizeof flipped);
    flipped[10] = flipped[10] == '0' ? '1' : '0';
    memset(forged, '0', CHAT_SESSION_TOKEN_LEN);
    forged[CHAT_SESSION_TOKEN_LEN] = '\0';
    memcpy(nonhex, tok, sizeof nonhex);
    nonhex[0] = 'g';
    /* 64 characters that would match everything if pasted into SQL. */
    snprintf(injected, sizeof injected, "%-64s", "' OR '1'='1");

    bool has_upper = strcmp(upper, tok) != 0;
    const char *const bad[] = {"", "abc", longer, shorter, flipped, forged, nonhex, injected,
                               has_upper ? upper : forged};
    chat_user_t u = {.id = 42};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(chat_store_session_user(s, bad[i], &u), CHANC_ENOTFOUND);
        assert_int_equal(chat_store_delete_session(s, bad[i]), CHANC_ENOTFOUND);
    }
    assert_int_equal(chat_store_session_user(s, NULL, &u), CHANC_ENOTFOUND);
    assert_int_equal(u.id, 42);
    /* None of that disturbed the real session. */
    assert_int_equal(chat_store_session_user(s, tok, &u), 0);
    assert_int_equal(u.id, alice);
    chat_store_close(s);
}

/* ---- rooms and members ------------------------------------------------------- */

static void test_rooms(void **state) {
    (void)state;
    chat_store_t *s = open_mem();
    int64_t g = make_room(s, "General", "general");
    fake_now_ms = T0 + 5;
    int64_t r = make_room(s, "Random talk \xe2\x98\x95", "random_2-x");

    chat_room_t room;
    assert_int_equal(chat_store_get_room(s, g, &room), 0);
    assert_int_equal(room.id, g);
    assert_string_equal(room.name, "General");
    assert_string_equal(room.slug, "general");
    assert_int_equal(room.created_at_ms, T0);
    assert_int_equal(chat_store_get_room(s, r, &room), 0);
    assert_string_equal(room.name, "Random talk \xe2\x98\x95");
    assert_int_equal(room.created_at_ms, T0 + 5);

    assert_int_equal(chat_store_room_by_slug(s, "general", &room), 0);
    assert_int_equal(room.id, g);
    assert_int_equal(chat_store_get_room(s, 9999, &room), CHANC_ENOTFOUND);
    assert_int_equal(chat_store_room_by_slug(s, "nope", &room), CHANC_ENOTFOUND);
    assert_int_equal(chat_store_room_by_slug(s, "Bad Slug", &room), CHANC_ENOTFOUND);

    assert_int_equal(chat_store_create_room(s, "Other", "general", NULL), CHANC_EEXIST);

    char long_slug[CHAT_ROOM_NAME_MAX + 2];
    memset(long_slug, 'a', sizeof long_slug - 1);
    long_slug[sizeof long_slug - 1] = '\0';
    char long_name[CHAT_ROOM_NAME_MAX * 2 + 3]; /* 101 two-byte characters */
    for (int i = 0; i < CHAT_ROOM_NAME_MAX + 1; i++)
        memcpy(long_name + 2 * i, "\xc3\xa9", 2);
    long_name[2 * (CHAT_ROOM_NAME_MAX + 1)] = '\0';
    const char *const bad_slugs[] = {"", "General", "a b", "a/b", "caf\xc3\xa9", long_slug};
    for (size_t i = 0; i < sizeof bad_slugs / sizeof bad_slugs[0]; i++)
        assert_int_equal(chat_store_create_room(s, "Name", bad_slugs[i], NULL), CHANC_EINVAL);
    assert_int_equal(chat_store_create_room(s, "", "empty", NULL), CHANC_EINVAL);
    assert_int_equal(chat_store_create_room(s, long_name, "longname", NULL), CHANC_EINVAL);
    assert_int_equal(chat_store_create_room(s, "bad \xff utf8", "badutf", NULL), CHANC_EINVAL);
    assert_int_equal(chat_store_create_room(s, NULL, "nullname", NULL), CHANC_EINVAL);
    /* 100 two-byte characters is fine: the limit is in characters. */
    long_name[2 * CHAT_ROOM_NAME_MAX] = '\0';
    long_slug[CHAT_ROOM_NAME_MAX] = '\0';
    make_room(s, long_name, long_slug);
    assert_int_equal(chat_store_room_by_slug(s, long_slug, &room), 0);
    assert_string_equal(room.name, long_name);
    chat_store_close(s);
}

static void test_list_rooms(void **state) {
    (void)state;
    chat_store_t *s = open_mem();
    json_t *rooms = NULL;
    assert_int_equal(chat_store_list_rooms(s, &rooms), 0);
    assert_true(json_is_array(rooms));
    assert_int_equal(json_array_size(rooms), 0);
    json_decref(rooms);

    int64_t z = make_room(s, "Zebra", "zebra");
    int64_t a = make_room(s, "Alpha", "alpha");
    int64_t m = make_room(s, "Middle", "middle");
    assert_int_equal(chat_store_list_rooms(s, &rooms), 0);
    assert_int_equal(json_array_size(rooms), 3);
    const struct {
        int64_t id;
        const char *name, *slug;
    } want[] = {{a, "Alpha", "alpha"}, {m, "Middle", "middle"}, {z, "Zebra", "zebra"}};
    for (size_t i = 0; i < 3; i++) {
        json_t *r = json_array_get(rooms, i);
        assert_int_equal(json_object_size(r), 5);
        assert_int_equal(json_integer_value(json_object_get(r, "id")), want[i].id);
        assert_string_equal(json_string_value(json_object_get(r, "name")), want[i].name);
        assert_string_equal(json_string_value(json_object_get(r, "slug")), want[i].slug);
        assert_true(json_is_false(json_object_get(r, "private")));
        assert_true(json_is_false(json_object_get(r, "member")));
    }
    json_decref(rooms);
    chat_store_close(s);
}

/* Private rooms: created public, made private (and back); a user's list
 * holds the public rooms and the private ones they are a member of, each
 * saying whether they are; the members' names in byte order, limited. */
static void test_private_rooms(void **state) {
    (void)state;
    chat_store_t *s = open_mem();
    int64_t alice = make_user(s, "alice"), bob = make_user(s, "bob"), zed = make_user(s, "Zed");
    int64_t pub = make_room(s, "Public", "public");
    int64_t priv = make_room(s, "Hidden", "hidden");
    chat_room_t r;
    assert_int_equal(chat_store_get_room(s, priv, &r), 0);
    assert_false(r.is_private);
    assert_int_equal(chat_store_set_room_private(s, priv, true), 0);
    assert_int_equal(chat_store_get_room(s, priv, &r), 0);
    assert_true(r.is_private);
    assert_int_equal(chat_store_room_by_slug(s, "hidden", &r), 0);
    assert_true(r.is_private);
    assert_int_equal(chat_store_set_room_private(s, 424242, true), CHANC_ENOTFOUND);
    assert_int_equal(chat_store_add_member(s, priv, alice), 0);
    assert_int_equal(chat_store_add_member(s, priv, zed), 0);
    assert_int_equal(chat_store_add_member(s, pub, bob), 0);

    json_t *rooms = NULL;
    assert_int_equal(chat_store_list_rooms_for(s, alice, &rooms), 0);
    char want[300];
    snprintf(want, sizeof want,
             "[{\"id\":%lld,\"name\":\"Hidden\",\"slug\":\"hidden\",\"private\":true,\"member\":true},"
             "{\"id\":%lld,\"name\":\"Public\",\"slug\":\"public\",\"private\":false,\"member\":false}]",
             (long long)priv, (long long)pub);
    json_t *w = json_loads(want, 0, NULL);
    assert_true(json_equal(rooms, w));
    json_decref(w);
    json_decref(rooms);
    assert_int_equal(chat_store_list_rooms_for(s, bob, &rooms), 0); /* not a member of Hidden */
    assert_int_equal(json_array_size(rooms), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(rooms, 0), "slug")),
                        "public");
    assert_true(json_is_true(json_object_get(json_array_get(rooms, 0), "member")));
    json_decref(rooms);
    assert_int_equal(chat_store_list_rooms(s, &rooms), 0); /* every room */
    assert_int_equal(json_array_size(rooms), 2);
    json_decref(rooms);

    json_t *members = NULL;
    assert_int_equal(chat_store_room_members(s, priv, 10, &members), 0);
    w = json_pack("[s,s]", "Zed", "alice"); /* byte order */
    assert_true(json_equal(members, w));
    json_decref(w);
    json_decref(members);
    assert_int_equal(chat_store_room_members(s, priv, 1, &members), 0);
    assert_int_equal(json_array_size(members), 1);
    json_decref(members);

    assert_int_equal(chat_store_set_room_private(s, priv, false), 0); /* public again */
    assert_int_equal(chat_store_list_rooms_for(s, bob, &rooms), 0);
    assert_int_equal(json_array_size(rooms), 2);
    json_decref(rooms);
    chat_store_close(s);
}

static void test_members(void **state) {
    (void)state;
    chat_store_t *s = open_mem();
    int64_t alice = make_user(s, "alice");
    int64_t bob = make_user(s, "bob");
    int64_t g = make_room(s, "General", "general");
    int64_t r = make_room(s, "Random", "random");

    bool yes = true;
    assert_int_equal(chat_store_is_member(s, g, alice, &yes), 0);
    assert_false(yes);
    assert_int_equal(chat_store_add_member(s, g, alice), 0);
    assert_int_equal(chat_store_add_member(s, g, alice), 0); /* idempotent */
    assert_int_equal(chat_store_add_member(s, g, alice), 0);
    assert_int_equal(chat_store_is_member(s, g, alice, &yes), 0);
    assert_true(yes);
    assert_int_equal(chat_store_is_member(s, g, bob, &yes), 0);
    assert_false(yes);
    assert_int_equal(chat_store_is_member(s, r, alice, &yes), 0);
    assert_false(yes);
    assert_int_equal(chat_store_is_member(s, 9999, alice, &yes), 0);
    assert_false(yes);

    /* Membership of something that does not exist is refused. */
    assert_int_equal(chat_store_add_member(s, 9999, alice), CHANC_ENOTFOUND);
    assert_int_equal(chat_store_add_member(s, g, 9999), CHANC_ENOTFOUND);
    chat_store_close(s);
}

/* ---- messages ---------------------------------------------------------------- */

static void test_history_order_and_limit(void **state) {
    (void)state;
    chat_store_t *s = open_mem();
    int64_t alice = make_user(s, "alice");
    int64_t bob = make_user(s, "bob");
    int64_t g = make_room(s, "General", "general");
    int64_t r = make_room(s, "Random", "random");

    /* Inserted out of time order: history follows the timestamps. */
    add_msg(s, g, alice, "third", T0 + 3000);
    add_msg(s, g, bob, "first", T0 + 1000);
    add_msg(s, g, alice, "fourth", T0 + 4123);
    add_msg(s, g, bob, "second", T0 + 2000);
    add_msg(s, r, bob, "elsewhere", T0);

    json_t *h = NULL;
    assert_int_equal(chat_store_history(s, g, 50, &h), 0);
    const char *const all[] = {"first", "second", "third", "fourth"};
    assert_history_texts(h, all, 4);
    json_t *last = json_array_get(h, 3);
    assert_int_equal(json_object_size(last), 3);
    assert_string_equal(json_string_value(json_object_get(last, "username")), "alice");
    assert_string_equal(json_string_value(json_object_get(last, "timestamp")),
                        "2026-01-01T00:00:04.123Z");
    assert_string_equal(json_string_value(json_object_get(json_array_get(h, 0), "username")),
                        "bob");
    json_decref(h);

    /* The last `limit` messages, still oldest first. */
    assert_int_equal(chat_store_history(s, g, 2, &h), 0);
    const char *const tail[] = {"third", "fourth"};
    assert_history_texts(h, tail, 2);
    json_decref(h);

    assert_int_equal(chat_store_history(s, g, 0, &h), 0);
    assert_int_equal(json_array_size(h), 0);
    json_decref(h);
    assert_int_equal(chat_store_history(s, 9999, 50, &h), 0);
    assert_int_equal(json_array_size(h), 0);
    json_decref(h);
    h = NULL;
    assert_int_equal(chat_store_history(s, g, -1, &h), CHANC_EINVAL);
    assert_null(h);
    chat_store_close(s);
}

static void test_history_ties_ordered_by_id(void **state) {
    (void)state;
    chat_store_t *s = open_mem();
    int64_t alice = make_user(s, "alice");
    int64_t g = make_room(s, "General", "general");
    add_msg(s, g, alice, "early", T0);
    int64_t a = add_msg(s, g, alice, "tie-a", T0 + 500);
    int64_t b = add_msg(s, g, alice, "tie-b", T0 + 500);
    int64_t c = add_msg(s, g, alice, "tie-c", T0 + 500);
    assert_true(a < b && b < c);

    json_t *h = NULL;
    assert_int_equal(chat_store_history(s, g, 10, &h), 0);
    const char *const all[] = {"early", "tie-a", "tie-b", "tie-c"};
    assert_history_texts(h, all, 4);
    json_decref(h);
    /* The cut falls inside the tie: the newest ids win. */
    assert_int_equal(chat_store_history(s, g, 2, &h), 0);
    const char *const two[] = {"tie-b", "tie-c"};
    assert_history_texts(h, two, 2);
    json_decref(h);
    chat_store_close(s);
}

static void test_message_round_trip(void **state) {
    (void)state;
    chat_store_t *s = open_mem();
    int64_t alice = make_user(s, "alice");
    int64_t g = make_room(s, "General", "general");

    char *big = malloc(CHAT_MESSAGE_MAX + 1);
    assert_non_null(big);
    for (int i = 0; i < CHAT_MESSAGE_MAX; i++)
        big[i] = (char)('a' + i % 26);
    big[CHAT_MESSAGE_MAX] = '\0';
    /* 4000 characters of 4-byte emoji: 16000 bytes, still 4000 characters. */
    size_t emoji_len = (size_t)CHAT_MESSAGE_MAX * 4;
    char *emoji = malloc(emoji_len + 1);
    assert_non_null(emoji);
    for (int i = 0; i < CHAT_MESSAGE_MAX; i++)
        memcpy(emoji + 4 * i, "\xf0\x9f\x98\x80", 4);
    emoji[emoji_len] = '\0';

    const char *const texts[] = {
        "'); DROP TABLE messages;--",
        "<img src=x onerror=alert(1)>",
        "\"double\" and 'single' quotes, back\\slash, `tick`",
        "emoji \xf0\x9f\x8e\x89 \xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd caf\xc3\xa9 \xe4\xb8\xad\xe6\x96\x87",
        "%s %n %% ? ?1 :name @x $y",
        "  leading and trailing spaces  ",
        "multi\nline\r\n\ttext",
        big,
        emoji,
    };
    size_t n = sizeof texts / sizeof texts[0];
    for (size_t i = 0; i < n; i++)
        add_msg(s, g, alice, texts[i], T0 + (int64_t)i);

    json_t *h = NULL;
    assert_int_equal(chat_store_history(s, g, 50, &h), 0);
    assert_int_equal(json_array_size(h), n);
    for (size_t i = 0; i < n; i++) {
        json_t *msg = json_object_get(json_array_get(h, i), "message");
        assert_true(json_is_string(msg));
        assert_int_equal(json_string_length(msg), strlen(texts[i]));
        assert_memory_equal(json_string_value(msg), texts[i], strlen(texts[i]));
    }
    json_decref(h);

    /* The table survived the would-be injection. */
    int64_t count = 0;
    assert_int_equal(chat_store_message_count(s, g, &count), 0);
    assert_int_equal(count, (int64_t)n);

    /* Only `len` bytes are stored, whatever follows them. */
    const char *prefix = "keep this|drop that";
    int64_t id = 0;
    assert_int_equal(chat_store_add_message(s, g, alice, prefix, 9, T0 + 100, &id), 0);
    assert_int_equal(chat_store_history(s, g, 1, &h), 0);
    assert_string_equal(json_string_value(json_object_get(json_array_get(h, 0), "message")),
                        "keep this");
    json_decref(h);

    /* Too long (4001 characters), empty, or not UTF-8: refused. */
    char *over = malloc(CHAT_MESSAGE_MAX + 2);
    assert_non_null(over);
    memset(over, 'x', CHAT_MESSAGE_MAX + 1);
    over[CHAT_MESSAGE_MAX + 1] = '\0';
    assert_int_equal(chat_store_add_message(s, g, alice, over, strlen(over), T0, NULL),
                     CHANC_EINVAL);
    assert_int_equal(chat_store_add_message(s, g, alice, "", 0, T0, NULL), CHANC_EINVAL);
    assert_int_equal(chat_store_add_message(s, g, alice, "\xc3(", 2, T0, NULL), CHANC_EINVAL);
    assert_int_equal(chat_store_add_message(s, g, alice, "a\0b", 3, T0, NULL), CHANC_EINVAL);
    assert_int_equal(chat_store_add_message(s, g, alice, NULL, 3, T0, NULL), CHANC_EINVAL);
    /* Unknown room or user: the foreign keys say no. */
    assert_int_equal(chat_store_add_message(s, 9999, alice, "x", 1, T0, NULL), CHANC_ENOTFOUND);
    assert_int_equal(chat_store_add_message(s, g, 9999, "x", 1, T0, NULL), CHANC_ENOTFOUND);
    assert_int_equal(chat_store_message_count(s, g, &count), 0);
    assert_int_equal(count, (int64_t)n + 1);

    free(over);
    free(emoji);
    free(big);
    chat_store_close(s);
}

static void test_message_count(void **state) {
    (void)state;
    chat_store_t *s = open_mem();
    int64_t alice = make_user(s, "alice");
    int64_t g = make_room(s, "General", "general");
    int64_t r = make_room(s, "Random", "random");
    int64_t count = -1;
    assert_int_equal(chat_store_message_count(s, g, &count), 0);
    assert_int_equal(count, 0);
    for (int i = 0; i < 7; i++)
        add_msg(s, g, alice, "hello", T0 + i);
    add_msg(s, r, alice, "other room", T0);
    assert_int_equal(chat_store_message_count(s, g, &count), 0);
    assert_int_equal(count, 7);
    assert_int_equal(chat_store_message_count(s, r, &count), 0);
    assert_int_equal(count, 1);
    assert_int_equal(chat_store_message_count(s, 9999, &count), 0);
    assert_int_equal(count, 0);
    chat_store_close(s);
}

/* Several messages in one transaction (what the database thread commits
 * when messages wait): each gets its own result; a bad one fails alone. */
static void test_add_messages_commits_a_batch_and_fails_rows_alone(void **state) {
    (void)state;
    chat_store_t *s = open_mem();
    int64_t alice = make_user(s, "alice");
    int64_t g = make_room(s, "General", "general");
    chat_store_msg_t m[5] = {
        {.room_id = g, .user_id = alice, .ts_ms = T0 + 1, .text = "one", .len = 3},
        {.room_id = g, .user_id = alice, .ts_ms = T0 + 2, .text = "", .len = 0},
        {.room_id = 9999, .user_id = alice, .ts_ms = T0 + 3, .text = "nowhere", .len = 7},
        {.room_id = g, .user_id = alice, .ts_ms = T0 + 4, .text = "two", .len = 3},
        {.room_id = g, .user_id = alice, .ts_ms = T0 + 5, .text = "three", .len = 5},
    };
    assert_int_equal(chat_store_add_messages(s, m, 5), 0);
    assert_int_equal(m[0].rc, 0);
    assert_int_equal(m[1].rc, CHANC_EINVAL);
    assert_int_equal(m[2].rc, CHANC_ENOTFOUND); /* the batch failed on it: rows alone */
    assert_int_equal(m[3].rc, 0);
    assert_int_equal(m[4].rc, 0);
    assert_true(m[0].id > 0 && m[3].id > m[0].id && m[4].id > m[3].id);
    json_t *h = NULL;
    assert_int_equal(chat_store_history(s, g, 50, &h), 0);
    chanc_assert_json_match(h, "[{\"message\":\"one\"},{\"message\":\"two\"},"
                               "{\"message\":\"three\"}]");
    assert_int_equal(json_array_size(h), 3);
    json_decref(h);

    /* An injected fault fails the next insert only; the rest commit. */
    chat_store_fail_next_inserts(s, 1);
    chat_store_msg_t f[3] = {
        {.room_id = g, .user_id = alice, .ts_ms = T0 + 6, .text = "lost", .len = 4},
        {.room_id = g, .user_id = alice, .ts_ms = T0 + 7, .text = "kept", .len = 4},
        {.room_id = g, .user_id = alice, .ts_ms = T0 + 8, .text = "kept too", .len = 8},
    };
    assert_int_equal(chat_store_add_messages(s, f, 3), 0);
    assert_int_equal(f[0].rc, CHANC_EIO);
    assert_int_equal(f[1].rc, 0);
    assert_int_equal(f[2].rc, 0);
    int64_t count = 0;
    assert_int_equal(chat_store_message_count(s, g, &count), 0);
    assert_int_equal(count, 5);
    assert_int_equal(chat_store_add_messages(s, NULL, 0), 0);
    assert_int_equal(chat_store_add_messages(s, NULL, 1), CHANC_EINVAL);
    chat_store_close(s);
}

/* A second connection for another thread: same database, same options,
 * the parent's injected faults; an in-memory SQLite database has none. */
static void test_open_like_shares_the_database_and_faults(void **state) {
    (void)state;
    chanc_error_t err;
    chat_store_t *mem = open_store(":memory:");
    chat_store_t *none = NULL;
    assert_false(chat_store_is_shareable(mem));
    assert_int_equal(chat_store_open_like(mem, NULL, &none, &err), CHANC_EINVAL);
    assert_null(none);
    chat_store_close(mem);

    tmpdb_t db;
    tmpdb_make(&db);
    chat_store_t *s = open_store(db.path);
    assert_true(chat_store_is_shareable(s));
    chat_store_t *t = NULL;
    assert_int_equal(chat_store_open_like(s, NULL, &t, &err), 0);
    int64_t alice = make_user(s, "alice");
    int64_t g = make_room(s, "General", "general");
    chat_store_fail_next_inserts(s, 1);
    assert_int_equal(chat_store_add_message(t, g, alice, "x", 1, T0, NULL), CHANC_EIO);
    assert_int_equal(chat_store_add_message(t, g, alice, "y", 1, T0, NULL), 0);
    int64_t count = 0;
    assert_int_equal(chat_store_message_count(s, g, &count), 0);
    assert_int_equal(count, 1);
    chat_store_close(t);
    chat_store_close(s);
}

/* ---- fixtures ------------------------------------------------------------------ */

static void test_fixtures_chat_json(void **state) {
    (void)state;
    chat_store_t *s = open_mem();
    load_fixture_file(s, "chat.json");

    json_t *rooms = NULL;
    assert_int_equal(chat_store_list_rooms(s, &rooms), 0);
    assert_int_equal(json_array_size(rooms), 3);
    json_decref(rooms);

    const char *const slugs[] = {"general", "random", "private"};
    const char *const names[] = {"General", "Random", "Private"};
    for (int i = 0; i < 3; i++) {
        chat_room_t room;
        assert_int_equal(chat_store_get_room(s, i + 1, &room), 0);
        assert_string_equal(room.slug, slugs[i]);
        assert_string_equal(room.name, names[i]);
        assert_int_equal(room.is_private, i == 2); /* "private": true */
    }

    const char *const users[] = {"testuser", "alice", "bob", "carol", "dave"};
    const char *const passwords[] = {"testpass123", "alice-pass-1", "bob-pass-1",
                                     "carol-pass-1", "dave-pass-1"};
    chat_user_t u[5];
    for (int i = 0; i < 5; i++) {
        assert_int_equal(chat_store_check_password(s, users[i], passwords[i], &u[i]), 0);
        assert_string_equal(u[i].username, users[i]);
    }
    assert_int_equal(chat_store_check_password(s, "alice", "testpass123", NULL), CHANC_EDENIED);

    /* Members: general testuser alice bob carol; random testuser alice;
     * private alice only. */
    const bool want[3][5] = {{true, true, true, true, false},
                             {true, true, false, false, false},
                             {false, true, false, false, false}};
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < 5; i++) {
            bool yes = !want[r][i];
            assert_int_equal(chat_store_is_member(s, r + 1, u[i].id, &yes), 0);
            assert_int_equal(yes, want[r][i]);
        }

    int64_t count = -1;
    assert_int_equal(chat_store_message_count(s, 1, &count), 0);
    assert_int_equal(count, 3);
    assert_int_equal(chat_store_message_count(s, 2, &count), 0);
    assert_int_equal(count, 0);

    json_t *h = NULL;
    assert_int_equal(chat_store_history(s, 1, CHAT_HISTORY_LIMIT, &h), 0);
    json_t *expect = json_pack(
        "[{s:s, s:s, s:s}, {s:s, s:s, s:s}, {s:s, s:s, s:s}]", "username", "alice", "message",
        "Welcome to General!", "timestamp", "2025-12-31T23:50:00.000Z", "username", "bob",
        "message", "hi alice", "timestamp", "2025-12-31T23:51:00.000Z", "username", "alice",
        "message", "Has anyone seen the release notes?", "timestamp",
        "2025-12-31T23:52:00.000Z");
    assert_non_null(expect);
    assert_true(json_equal(h, expect));
    json_decref(expect);
    json_decref(h);
    chat_store_close(s);
}

static void test_fixtures_history60(void **state) {
    (void)state;
    chat_store_t *s = open_mem();
    load_fixture_file(s, "chat.json");
    load_fixture_file(s, "history60.json");

    chat_room_t busy;
    assert_int_equal(chat_store_room_by_slug(s, "busy", &busy), 0);
    assert_int_equal(busy.id, 4);
    int64_t count = 0;
    assert_int_equal(chat_store_message_count(s, busy.id, &count), 0);
    assert_int_equal(count, 60);

    json_t *h = NULL;
    assert_int_equal(chat_store_history(s, busy.id, CHAT_HISTORY_LIMIT, &h), 0);
    assert_int_equal(json_array_size(h), 50);
    for (size_t i = 0; i < 50; i++) {
        char want[32];
        int n = (int)i + 11;
        snprintf(want, sizeof want, "message %d", n);
        json_t *m = json_array_get(h, i);
        assert_string_equal(json_string_value(json_object_get(m, "message")), want);
        assert_string_equal(json_string_value(json_object_get(m, "username")),
                            n % 2 ? "alice" : "testuser");
    }
    /* 59 and 60 share a timestamp; id breaks the tie. */
    assert_string_equal(json_string_value(json_object_get(json_array_get(h, 48), "timestamp")),
                        json_string_value(json_object_get(json_array_get(h, 49), "timestamp")));
    assert_string_equal(json_string_value(json_object_get(json_array_get(h, 0), "timestamp")),
                        "2025-12-31T22:10:00.000Z");
    json_decref(h);

    /* General is untouched by the second fixture. */
    assert_int_equal(chat_store_message_count(s, 1, &count), 0);
    assert_int_equal(count, 3);
    chat_store_close(s);
}

static int64_t total_messages(chat_store_t *s) {
    int64_t total = 0;
    for (int64_t r = 1; r <= 10; r++) {
        int64_t c = 0;
        assert_int_equal(chat_store_message_count(s, r, &c), 0);
        total += c;
    }
    return total;
}

static void test_fixture_errors_roll_back(void **state) {
    (void)state;
    chat_store_t *s = open_mem();
    load_fixture_file(s, "chat.json");

    /* Each fixture starts with valid work (a new user, a new room, a
     * message) that must vanish when a later entry fails. */
#define PRELUDE                                                                       \
    "\"users\": [{\"username\": \"newbie\", \"password\": \"pw-newbie\"}],"           \
    "\"rooms\": [{\"name\": \"New\", \"slug\": \"new\", \"members\": [\"newbie\"]}],"
#define OK_MSG "{\"room\": \"new\", \"username\": \"newbie\", \"message\": \"x\"}"
    const struct {
        const char *json;
        int code;
        const char *needle;
    } cases[] = {
        {"{" PRELUDE "\"messages\": [" OK_MSG "," OK_MSG "," OK_MSG ","
         "{\"room\": \"nope\", \"username\": \"alice\", \"message\": \"m\"}]}",
         CHANC_ENOTFOUND, "messages[3]: unknown room 'nope'"},
        {"{" PRELUDE "\"messages\": [" OK_MSG ","
         "{\"room\": \"general\", \"username\": \"zed\", \"message\": \"m\"}]}",
         CHANC_ENOTFOUND, "messages[1]: unknown user 'zed'"},
        {"{" PRELUDE "\"messages\": [" OK_MSG ","
         "{\"room\": \"general\", \"username\": \"alice\", \"message\": \"m\","
         " \"timestamp\": \"2025-12-31 23:50:00Z\"}]}",
         CHANC_EINVAL, "messages[1]: bad timestamp '2025-12-31 23:50:00Z'"},
        {"{" PRELUDE "\"messages\": [" OK_MSG ","
         "{\"room\": \"general\", \"username\": \"alice\", \"message\": \"m\","
         " \"timestamp\": \"2025-02-29T00:00:00.000Z\"}]}",
         CHANC_EINVAL, "messages[1]: bad timestamp"},
        {"{" PRELUDE "\"messages\": [" OK_MSG ","
         "{\"room\": \"general\", \"username\": \"alice\", \"message\": \"m\","
         " \"timestamp\": \"2025-12-31T23:50:00.00Z\"}]}",
         CHANC_EINVAL, "messages[1]: bad timestamp"},
        {"{" PRELUDE "\"messages\": [" OK_MSG ","
         "{\"room\": \"general\", \"username\": \"alice\", \"message\": \"m\","
         " \"timestamp\": \"2025-12-31T23:50:00.000+00:00\"}]}",
         CHANC_EINVAL, "messages[1]: bad timestamp"},
        {"{" PRELUDE "\"messages\": [" OK_MSG ","
         "{\"room\": \"general\", \"username\": \"alice\", \"message\": \"m\","
         " \"timestamp\": \"2025-12-31T24:00:00Z\"}]}",
         CHANC_EINVAL, "messages[1]: bad timestamp"},
        {"{\"users\": [{\"username\": \"newbie\", \"password\": \"p\"},"
         " {\"username\": \"bob\", \"password\": \"p\"}]}",
         CHANC_EEXIST, "users[1]: user 'bob' already exists"},
        {"{" PRELUDE "\"messages\": [" OK_MSG "]," " \"extra\": 1}", CHANC_EINVAL, "extra"},
        {"{\"users\": [{\"username\": \"newbie\", \"password\": \"p\"}],"
         " \"rooms\": [{\"name\": \"New\", \"slug\": \"new\", \"members\": [\"newbie\", \"ghost\"]}]}",
         CHANC_ENOTFOUND, "rooms[0].members[1]: unknown user 'ghost'"},
        {"{" PRELUDE "\"messages\": [{\"room\": \"new\", \"username\": \"newbie\"}]}",
         CHANC_EINVAL, "messages[0]"},
        {"{\"rooms\": [{\"name\": \"G2\", \"slug\": \"general\"}]}", CHANC_EEXIST,
         "rooms[0]: slug 'general' already exists"},
        {"{\"rooms\": [{\"name\": \"New\", \"slug\": \"new\", \"private\": \"yes\"}]}",
         CHANC_EINVAL, "rooms[0]"},
    };
#undef PRELUDE
#undef OK_MSG

    int64_t before = total_messages(s);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_error_t je;
        json_t *fx = json_loads(cases[i].json, 0, &je);
        if (!fx)
            print_error("case %zu: %s\n", i, je.text);
        assert_non_null(fx);
        chanc_error_t err = {0};
        int rc = chat_store_load_fixtures_json(s, fx, &err);
        json_decref(fx);
        if (rc != cases[i].code || !strstr(err.text, cases[i].needle))
            print_error("case %zu: rc %d, err '%s'\n", i, rc, err.text);
        assert_int_equal(rc, cases[i].code);
        assert_int_equal(err.code, cases[i].code);
        assert_non_null(strstr(err.text, cases[i].needle));

        /* Rolled back: no new user, room or message. */
        chat_user_t u;
        chat_room_t r;
        assert_int_equal(chat_store_get_user(s, "newbie", &u), CHANC_ENOTFOUND);
        assert_int_equal(chat_store_room_by_slug(s, "new", &r), CHANC_ENOTFOUND);
        assert_int_equal(total_messages(s), before);
        json_t *rooms = NULL;
        assert_int_equal(chat_store_list_rooms(s, &rooms), 0);
        assert_int_equal(json_array_size(rooms), 3);
        json_decref(rooms);
    }

    /* The store still works after all those rollbacks, and a timestamp
     * without milliseconds (or none at all: now) is accepted. */
    json_t *fx = json_pack(
        "{s:[{s:s}], s:[{s:s, s:s, s:s, s:s}, {s:s, s:s, s:s}]}", "users", "username", "nopw",
        "messages", "room", "random", "username", "dave", "message", "leap day", "timestamp",
        "2024-02-29T12:34:56Z", "room", "random", "username", "nopw", "message", "now");
    assert_non_null(fx);
    chanc_error_t err = {0};
    assert_int_equal(chat_store_load_fixtures_json(s, fx, &err), 0);
    json_decref(fx);
    /* A fixture user without a password exists but cannot log in. */
    chat_user_t nopw;
    assert_int_equal(chat_store_get_user(s, "nopw", &nopw), 0);
    assert_int_equal(chat_store_check_password(s, "nopw", "", NULL), CHANC_EDENIED);
    assert_int_equal(chat_store_check_password(s, "nopw", "!unusable", NULL), CHANC_EDENIED);
    json_t *h = NULL;
    assert_int_equal(chat_store_history(s, 2, 10, &h), 0);
    assert_int_equal(json_array_size(h), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(h, 0), "timestamp")),
                        "2024-02-29T12:34:56.000Z");
    assert_string_equal(json_string_value(json_object_get(json_array_get(h, 1), "timestamp")),
                        "2026-01-01T00:00:00.000Z");
    json_decref(h);

    /* Not an object at all. */
    json_t *arr = json_array();
    assert_int_equal(chat_store_load_fixtures_json(s, arr, &err), CHANC_EINVAL);
    json_decref(arr);
    chat_store_close(s);
}

static void test_fixtures_missing_file(void **state) {
    (void)state;
    chat_store_t *s = open_mem();
    chanc_error_t err = {0};
    int rc = chat_store_load_fixtures(s, CHANC_FIXTURES_DIR "/no-such-fixture.json", &err);
    assert_true(rc == CHANC_EIO || rc == CHANC_ENOTFOUND);
    assert_int_equal(err.code, rc);
    assert_non_null(strstr(err.text, "no-such-fixture.json"));

    /* A file that is not JSON fails too, with its name. */
    const char *base = getenv("TMPDIR");
    char path[600];
    snprintf(path, sizeof path, "%s/chanc-fixture-XXXXXX", base && *base ? base : "/tmp");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    fputs("{\"users\": [", f);
    fclose(f);
    err = (chanc_error_t){0};
    assert_int_equal(chat_store_load_fixtures(s, path, &err), CHANC_EINVAL);
    assert_non_null(strstr(err.text, "chanc-fixture-"));
    unlink(path);
    chat_store_close(s);
}

/* ---- WAL checkpoints run on their own thread ------------------------------ */

static void test_checkpoints_run_off_the_committing_thread(void **state) {
    (void)state;
    if (pg_mode)
        skip(); /* SQLite's WAL; PostgreSQL checkpoints by itself */
    tmpdb_t t;
    tmpdb_make(&t);
    fake_now_ms = T0;
    chat_store_options_t o = fast_options(t.path);
    o.checkpoint_pages = 8; /* small, so a few messages cross it */
    chat_store_t *s = open_store_opts(&o);
    int64_t u = make_user(s, "writer");
    int64_t r = make_room(s, "Room", "room");
    char text[2001];
    memset(text, 'w', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    for (int i = 0; i < 100; i++)
        add_msg(s, r, u, text, T0 + i);
    assert_true(chat_store_checkpoints_wait(s) >= 1);

    /* Everything is still there, in order, from another connection too. */
    raw_t raw = raw_open(t.path);
    assert_int_equal(raw_int(&raw, "SELECT count(*) FROM messages"), 100);
    raw_close(&raw);
    json_t *hist = NULL;
    assert_int_equal(chat_store_history(s, r, 50, &hist), 0);
    assert_int_equal(json_array_size(hist), 50);
    json_decref(hist);
    chat_store_close(s);

    chat_store_t *mem = open_mem(); /* no WAL, no checkpoint thread */
    assert_int_equal(chat_store_checkpoints_wait(mem), 0);
    chat_store_close(mem);
}

int main(void) {
    pg_mode = chat_test_pg();
#define STORE_TEST(fn) cmocka_unit_test_teardown(fn, drop_scratch)
    const struct CMUnitTest tests[] = {
        STORE_TEST(test_checkpoints_run_off_the_committing_thread),
        STORE_TEST(test_migrations_and_reopen),
        STORE_TEST(test_migration_2_keeps_rooms_public),
        STORE_TEST(test_migration_3_adds_non_staff_users),
        STORE_TEST(test_add_messages_commits_a_batch_and_fails_rows_alone),
        STORE_TEST(test_open_like_shares_the_database_and_faults),
        STORE_TEST(test_newer_schema_refused),
        STORE_TEST(test_open_bad_options),
        STORE_TEST(test_db_names_select_the_backend),
        STORE_TEST(test_pg_lost_connection_is_reset),
        STORE_TEST(test_create_user_and_duplicate),
        STORE_TEST(test_bad_usernames),
        STORE_TEST(test_password_not_stored_in_clear),
        STORE_TEST(test_check_password),
        STORE_TEST(test_sessions_lifecycle),
        STORE_TEST(test_session_expiry),
        STORE_TEST(test_session_default_ttl_is_14_days),
        STORE_TEST(test_session_malformed_and_forged),
        STORE_TEST(test_rooms),
        STORE_TEST(test_list_rooms),
        STORE_TEST(test_private_rooms),
        STORE_TEST(test_members),
        STORE_TEST(test_history_order_and_limit),
        STORE_TEST(test_history_ties_ordered_by_id),
        STORE_TEST(test_message_round_trip),
        STORE_TEST(test_message_count),
        STORE_TEST(test_fixtures_chat_json),
        STORE_TEST(test_fixtures_history60),
        STORE_TEST(test_fixture_errors_roll_back),
        STORE_TEST(test_fixtures_missing_file),
    };
    return chanc_run_group_tests_name(pg_mode ? "chat.store.pg" : "chat.store", tests, NULL, NULL);
}
