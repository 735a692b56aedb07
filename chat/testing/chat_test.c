/* The chat test fixture described in chat_test.h. */
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "chat_test.h"
#include "store_testing.h" /* chat_store_fail_next_inserts */

#ifndef CHAT_FIXTURES_DIR
#error "CHAT_FIXTURES_DIR must name the fixtures/ directory"
#endif

static int load(chat_test_t *t, const char *name) {
    char path[512];
    chanc_error_t err = {0};
    snprintf(path, sizeof path, "%s/%s", CHAT_FIXTURES_DIR, name);
    int rc = chat_store_load_fixtures(t->store, path, &err);
    if (rc < 0)
        fprintf(stderr, "chat_test: fixture %s: %s\n", path, err.text);
    return rc;
}

/* ---- scratch databases ---------------------------------------------------- */

bool chat_test_pg(void) {
    const char *f = getenv("CHAT_TEST_PG");
    return f && *f;
}

/* The PostgreSQL server's URL, read once from the file CHAT_TEST_PG names. */
static const char *pg_admin_url(void) {
    static char url[512];
    if (url[0])
        return url;
    const char *file = getenv("CHAT_TEST_PG");
    FILE *fp = file ? fopen(file, "r") : NULL;
    if (!fp || !fgets(url, sizeof url, fp)) {
        fprintf(stderr, "chat_test: CHAT_TEST_PG=%s: cannot read the server URL (is the "
                        "pg_cluster fixture running?)\n", file ? file : "");
        url[0] = '\0';
    }
    if (fp)
        fclose(fp);
    url[strcspn(url, "\r\n")] = '\0';
    return url[0] ? url : NULL;
}

static void quiet(void *ud, const char *message) {
    (void)ud;
    (void)message; /* "drop cascades to …" */
}

/* Run one constant statement on the server as its superuser. */
static int pg_admin(const char *sql) {
    const char *url = pg_admin_url();
    if (!url)
        return -1;
    PGconn *conn = PQconnectdb(url);
    int rc = -1;
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "chat_test: connecting to %s: %s", url, PQerrorMessage(conn));
    } else {
        PQsetNoticeProcessor(conn, quiet, NULL);
        PGresult *res = PQexec(conn, sql);
        if (PQresultStatus(res) == PGRES_COMMAND_OK)
            rc = 0;
        else
            fprintf(stderr, "chat_test: %s: %s", sql, PQresultErrorMessage(res));
        PQclear(res);
    }
    PQfinish(conn);
    return rc;
}

int chat_test_db_create(chat_test_db_t *db) {
    memset(db, 0, sizeof *db);
    if (chat_test_pg()) {
        /* A schema per test (cheaper than a database), named from digits
         * only; the store finds it through search_path. */
        static unsigned counter;
        char sql[128];
        snprintf(db->schema, sizeof db->schema, "t_%ld_%u", (long)getpid(), ++counter);
        snprintf(sql, sizeof sql, "CREATE SCHEMA %s", db->schema);
        const char *admin = pg_admin_url();
        if (!admin || pg_admin(sql) < 0) {
            db->schema[0] = '\0';
            return -1;
        }
        snprintf(db->url, sizeof db->url, "%s%coptions=-csearch_path%%3D%s", admin,
                 strchr(admin, '?') ? '&' : '?', db->schema);
        return 0;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(db->dir, sizeof db->dir, "%s/chanc-chat-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(db->dir)) {
        fprintf(stderr, "chat_test: mkdtemp %s: %s\n", db->dir, strerror(errno));
        db->dir[0] = '\0';
        return -1;
    }
    snprintf(db->url, sizeof db->url, "%s/chat.db", db->dir);
    return 0;
}

void chat_test_db_drop(chat_test_db_t *db) {
    if (db->schema[0]) {
        char sql[128];
        snprintf(sql, sizeof sql, "DROP SCHEMA %s CASCADE", db->schema);
        pg_admin(sql);
    } else if (db->dir[0]) {
        static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
        char path[700];
        for (size_t i = 0; i < sizeof suffix / sizeof *suffix; i++) {
            snprintf(path, sizeof path, "%s%s", db->url, suffix[i]);
            unlink(path);
        }
        rmdir(db->dir);
    }
    memset(db, 0, sizeof *db);
}

/* ---- the fixture ------------------------------------------------------------- */

static const char *session_cookie(const chat_test_t *t) {
    return t->secure_cookies ? CHAT_SESSION_COOKIE_SECURE : CHAT_SESSION_COOKIE;
}

static int chat_setup(chanc_test_t *ct, void *ud) {
    chat_test_t *t = ud;
    if (t->in_memory && !chat_test_pg())
        snprintf(t->db.url, sizeof t->db.url, ":memory:"); /* nothing to drop */
    else if (chat_test_db_create(&t->db) < 0)
        return -1;
    chanc_error_t err = {0};
    chat_store_options_t so = {.path = t->db.url,
                               .clock = chanc_app_clock(ct->app),
                               .pwhash_opslimit = 1,     /* crypto_pwhash_OPSLIMIT_MIN */
                               .pwhash_memlimit = 8192}; /* crypto_pwhash_MEMLIMIT_MIN */
    if (chat_store_open(&so, &t->store, &err) < 0) {
        fprintf(stderr, "chat_test: %s\n", err.text);
        return -1;
    }
    t->chat.secure_cookies = t->secure_cookies;
    return chat_register_with(ct->app, t->store, &t->chat);
}

/* The allocation-failure sweep's probe (chanc_test_set_oom_probe): after
 * the failure, a new member's round trip in General still works. */
static bool probe_round_trip(chanc_test_t *test, void *ud) {
    (void)test;
    chat_test_t *t = ud;
    chanc_communicator_t *c = chat_test_client(t, t->room_id, "testuser");
    if (!c || !chanc_communicator_connect(c, 10000))
        return false;
    json_t *auth = chanc_communicator_receive_json(c, 10000);
    bool ok = auth && json_integer_value(chanc_json_ptr(auth, "/payload/status_code")) == 200;
    json_decref(auth);
    json_decref(chanc_communicator_receive_all_json(c, 10000)); /* history, user_joined */
    json_t *got = NULL;
    if (ok && chanc_communicator_send_message(c, &chat_msg_chat, json_string("oom probe")) == 0)
        got = chanc_communicator_receive_until_action(c, "chat", 10000);
    ok = ok && chanc_json_find(got, "{\"action\":\"chat\",\"payload\":\"oom probe\"}");
    json_decref(got);
    chanc_communicator_disconnect(c);
    return ok;
}

chat_test_t *chat_test_create(const chat_test_options_t *opt) {
    chat_test_t *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->in_memory = opt && opt->in_memory;
    t->secure_cookies = opt && opt->secure_cookies;
    if (opt) {
        t->chat.presence_threshold = opt->presence_threshold;
        t->chat.presence_interval_ms = opt->presence_interval_ms;
    }
    t->test = chanc_test_create(
        &(chanc_test_options_t){.setup = chat_setup, .ud = t, .name = opt ? opt->name : NULL,
                                .app.keepalive_ms = opt ? opt->keepalive_ms : 0});
    if (!t->test)
        goto fail;
    if (load(t, "chat.json") < 0)
        goto fail;
    for (const char *const *f = opt ? opt->fixtures : NULL; f && *f; f++)
        if (load(t, *f) < 0)
            goto fail;
    chat_user_t u;
    char token[CHAT_SESSION_TOKEN_LEN + 1], cookie[CHAT_SESSION_TOKEN_LEN + 32];
    if (chat_store_get_user(t->store, "testuser", &u) < 0 ||
        chat_store_create_session(t->store, u.id, token) < 0)
        goto fail;
    t->user_id = u.id;
    snprintf(cookie, sizeof cookie, "%s=%s", session_cookie(t), token);
    if (chanc_test_set_default_header(t->test, "Cookie", cookie) < 0)
        goto fail;
    t->room_id = chat_test_room(t, "general");
    if (t->room_id <= 0)
        goto fail;
    chanc_test_set_oom_probe(probe_round_trip, t);
    return t;
fail:
    chat_test_destroy(t);
    return NULL;
}

void chat_test_destroy(chat_test_t *t) {
    if (!t)
        return;
    chanc_test_destroy(t->test); /* connections first: they use the store */
    chat_store_close(t->store);
    chat_test_db_drop(&t->db);
    free(t);
}

int chat_test_setup(void **state) {
    *state = chat_test_create(&(chat_test_options_t){.name = *state}); /* chanc_unit_test */
    return *state ? 0 : -1;
}

int chat_test_setup_busy(void **state) {
    static const char *const busy[] = {"history60.json", NULL};
    *state = chat_test_create(&(chat_test_options_t){.fixtures = busy, .name = *state});
    return *state ? 0 : -1;
}

/* The store fails the next insert into messages before it reaches the
 * database (either backend), as a failed commit would: nothing stored. */
int chat_test_fail_next_commit(chat_test_t *t) {
    chat_store_fail_next_inserts(t->store, 1);
    return 0;
}

int chat_test_teardown(void **state) {
    chat_test_destroy(*state);
    return 0;
}

int64_t chat_test_room(chat_test_t *t, const char *slug) {
    chat_room_t r;
    return chat_store_room_by_slug(t->store, slug, &r) < 0 ? -1 : r.id;
}

const char *chat_test_capture_room(chat_test_t *t, int64_t room_id,
                                   char out[CHAT_TEST_GROUP_MAX]) {
    snprintf(out, CHAT_TEST_GROUP_MAX, "chat_room_%lld", (long long)room_id); /* consumer.c's */
    assert_int_equal(chanc_test_capture_group(t->test, out), 0);
    return out;
}

chanc_communicator_t *chat_test_client(chat_test_t *t, int64_t room_id, const char *username) {
    chanc_communicator_t *c = chanc_test_communicator(t->test, "/ws/chat/%lld/", (long long)room_id);
    if (!c)
        return NULL;
    char cookie[CHAT_SESSION_TOKEN_LEN + 32] = "";
    chat_user_t u;
    char token[CHAT_SESSION_TOKEN_LEN + 1];
    if (username && chat_store_get_user(t->store, username, &u) == 0 &&
        chat_store_create_session(t->store, u.id, token) == 0)
        snprintf(cookie, sizeof cookie, "%s=%s", session_cookie(t), token);
    chanc_communicator_set_header(c, "Cookie", cookie); /* "" : anonymous */
    return c;
}

chanc_communicator_t *chat_test_member(chat_test_t *t, int64_t room_id, const char *username) {
    chanc_communicator_t *c = chat_test_client(t, room_id, username);
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    json_decref(chanc_communicator_receive_all_json(c, 1000));
    return c;
}

size_t chat_test_numbered(const json_t *frames, const char *prefix, int *out, bool *from_history,
                          size_t cap) {
    size_t count = 0, plen = strlen(prefix), i;
    json_t *f;
    json_array_foreach(frames, i, f) {
        const char *action = json_string_value(json_object_get(f, "action"));
        json_t *items = NULL;
        if (action && strcmp(action, "history") == 0)
            items = json_object_get(f, "payload");
        else if (!action || strcmp(action, "chat") != 0)
            continue;
        size_t n = items ? json_array_size(items) : 1;
        for (size_t k = 0; k < n; k++) {
            json_t *m = items ? json_array_get(items, k) : f;
            const char *text = json_string_value(json_object_get(m, items ? "message" : "payload"));
            char *end;
            if (!text || strncmp(text, prefix, plen) != 0)
                continue;
            long v = strtol(text + plen, &end, 10);
            if (end == text + plen || *end)
                continue;
            if (count < cap) {
                out[count] = (int)v;
                if (from_history)
                    from_history[count] = items != NULL;
            }
            count++;
        }
    }
    return count;
}
