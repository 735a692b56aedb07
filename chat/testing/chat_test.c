/* The chat test fixture described in chat_test.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "chat_test.h"

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

static int chat_setup(chanc_test_t *ct, void *ud) {
    chat_test_t *t = ud;
    const char *tmp = getenv("TMPDIR");
    snprintf(t->dir, sizeof t->dir, "%s/chanc-chat-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(t->dir)) {
        fprintf(stderr, "chat_test: mkdtemp %s: %s\n", t->dir, strerror(errno));
        t->dir[0] = '\0';
        return -1;
    }
    snprintf(t->db_path, sizeof t->db_path, "%s/chat.db", t->dir);
    chanc_error_t err = {0};
    chat_store_options_t so = {.path = t->db_path,
                               .clock = chanc_app_clock(ct->app),
                               .pwhash_opslimit = 1,     /* crypto_pwhash_OPSLIMIT_MIN */
                               .pwhash_memlimit = 8192}; /* crypto_pwhash_MEMLIMIT_MIN */
    if (chat_store_open(&so, &t->store, &err) < 0) {
        fprintf(stderr, "chat_test: %s\n", err.text);
        return -1;
    }
    return chat_register(ct->app, t->store);
}

chat_test_t *chat_test_create(const chat_test_options_t *opt) {
    chat_test_t *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->test = chanc_test_create(
        &(chanc_test_options_t){.setup = chat_setup, .ud = t, .name = opt ? opt->name : NULL});
    if (!t->test)
        goto fail;
    if (load(t, "chat.json") < 0)
        goto fail;
    for (const char *const *f = opt ? opt->fixtures : NULL; f && *f; f++)
        if (load(t, *f) < 0)
            goto fail;
    chat_user_t u;
    char token[CHAT_SESSION_TOKEN_LEN + 1], cookie[CHAT_SESSION_TOKEN_LEN + 16];
    if (chat_store_get_user(t->store, "testuser", &u) < 0 ||
        chat_store_create_session(t->store, u.id, token) < 0)
        goto fail;
    t->user_id = u.id;
    snprintf(cookie, sizeof cookie, "sessionid=%s", token);
    if (chanc_test_set_default_header(t->test, "Cookie", cookie) < 0)
        goto fail;
    t->room_id = chat_test_room(t, "general");
    if (t->room_id <= 0)
        goto fail;
    return t;
fail:
    chat_test_destroy(t);
    return NULL;
}

static void remove_db(chat_test_t *t) {
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
    char path[300];
    for (size_t i = 0; i < sizeof suffix / sizeof *suffix; i++) {
        snprintf(path, sizeof path, "%s%s", t->db_path, suffix[i]);
        unlink(path);
    }
    rmdir(t->dir);
}

void chat_test_destroy(chat_test_t *t) {
    if (!t)
        return;
    chanc_test_destroy(t->test); /* connections first: they use the store */
    chat_store_close(t->store);
    if (t->dir[0])
        remove_db(t);
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

/* A trigger through a second connection: it aborts one insert into
 * messages (RAISE(FAIL) keeps the counter's decrement, committed by the
 * failing statement's own autocommit) and lets later ones through, so the
 * store's code runs unchanged. */
int chat_test_fail_next_commit(chat_test_t *t) {
    static const char sql[] =
        "CREATE TABLE IF NOT EXISTS chanc_test_faults(pending INTEGER NOT NULL);"
        "INSERT INTO chanc_test_faults VALUES (1);"
        "CREATE TRIGGER IF NOT EXISTS chanc_test_fail_commit BEFORE INSERT ON messages"
        " WHEN (SELECT sum(pending) FROM chanc_test_faults) > 0 BEGIN"
        "  DELETE FROM chanc_test_faults WHERE rowid = (SELECT min(rowid) FROM chanc_test_faults);"
        "  SELECT RAISE(FAIL, 'injected fault: commit failed');"
        " END;";
    sqlite3 *db = NULL;
    char *msg = NULL;
    int rc = sqlite3_open_v2(t->db_path, &db, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fprintf(stderr, "chat_test_fail_next_commit: %s\n", msg ? msg : sqlite3_errmsg(db));
    sqlite3_free(msg);
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : CHANC_EIO;
}

int chat_test_teardown(void **state) {
    chat_test_destroy(*state);
    return 0;
}

int64_t chat_test_room(chat_test_t *t, const char *slug) {
    chat_room_t r;
    return chat_store_room_by_slug(t->store, slug, &r) < 0 ? -1 : r.id;
}

chanc_communicator_t *chat_test_client(chat_test_t *t, int64_t room_id, const char *username) {
    chanc_communicator_t *c = chanc_test_communicator(t->test, "/ws/chat/%lld/", (long long)room_id);
    if (!c)
        return NULL;
    char cookie[CHAT_SESSION_TOKEN_LEN + 16] = "";
    chat_user_t u;
    char token[CHAT_SESSION_TOKEN_LEN + 1];
    if (username && chat_store_get_user(t->store, username, &u) == 0 &&
        chat_store_create_session(t->store, u.id, token) == 0)
        snprintf(cookie, sizeof cookie, "sessionid=%s", token);
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
