/* The chat store on SQLite (the embedded default): WAL, prepared
 * statements, and a checkpoint thread so that commits never pay for a
 * checkpoint. The backend interface is in store_internal.h.
 *
 * Every statement is prepared once at open and only ever bound: no SQL is
 * built from data anywhere. Statements are reset (and their bindings
 * cleared) before a function returns, so no read transaction outlives a
 * call and WAL checkpoints are never held back. */
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chanc/chat.h"
#include "chanc/log.h"
#include "store_internal.h"

#define BUSY_TIMEOUT_MS 5000
#define DEFAULT_CHECKPOINT_PAGES 1000 /* SQLite's own autocheckpoint default */

/* ---- statements ---------------------------------------------------------- */

/* SQLite's own, prepared before the migrations run (they only need
 * schema_version); the shared ones (chat_statements) after. */
#define SQ_STATEMENTS(X)                                                           \
    X(BEGIN, "BEGIN IMMEDIATE")                                                    \
    X(COMMIT, "COMMIT")                                                            \
    X(ROLLBACK, "ROLLBACK")                                                        \
    X(VERSION_GET, "SELECT COALESCE(MAX(version), 0) FROM schema_version")         \
    X(VERSION_CLEAR, "DELETE FROM schema_version")                                 \
    X(VERSION_SET, "INSERT INTO schema_version(version) VALUES (?1)")

enum {
#define X(name, sql) SQ_##name,
    SQ_STATEMENTS(X)
#undef X
    SQ__COUNT
};

static const char *const sq_sql[SQ__COUNT] = {
#define X(name, sql) sql,
    SQ_STATEMENTS(X)
#undef X
};

typedef struct sq {
    sqlite3 *db;
    sqlite3_stmt *own[SQ__COUNT];      /* SQ_… */
    sqlite3_stmt *st[CHAT_ST__COUNT]; /* CHAT_ST_… */
    struct checkpointer *ckpt; /* NULL unless a WAL file */
} sq_t;

static sq_t *sq(chat_store_t *s) { return s->db; }

/* ---- WAL checkpoints off the committing thread ------------------------------
 *
 * SQLite's autocheckpoint runs inside the commit that crosses the
 * threshold: measured, one commit in ~1000 then takes ~8 ms instead of
 * ~25 us, stalling every other connection on the loop. Instead the WAL
 * hook wakes a thread with its own connection that runs a PASSIVE
 * checkpoint, which never blocks the writer. */

struct checkpointer {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    sqlite3 *db;
    int pages;        /* wake the thread at this many WAL pages */
    bool requested, busy, stop;
    unsigned long runs;
};

static void *checkpoint_main(void *arg) {
    struct checkpointer *k = arg;
    pthread_mutex_lock(&k->mu);
    for (;;) {
        while (!k->requested && !k->stop)
            pthread_cond_wait(&k->cv, &k->mu);
        if (k->stop)
            break;
        k->requested = false;
        k->busy = true;
        pthread_mutex_unlock(&k->mu);
        int log = 0, done = 0;
        int rc = sqlite3_wal_checkpoint_v2(k->db, "main", SQLITE_CHECKPOINT_PASSIVE, &log, &done);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            chanc_log(CHANC_LOG_WARN, "chat store: checkpoint: %s", sqlite3_errmsg(k->db));
        pthread_mutex_lock(&k->mu);
        k->busy = false;
        k->runs++;
        pthread_cond_broadcast(&k->cv);
    }
    pthread_mutex_unlock(&k->mu);
    return NULL;
}

static int wal_hook(void *ud, sqlite3 *db, const char *name, int pages) {
    (void)db;
    (void)name;
    struct checkpointer *k = ud;
    if (pages >= k->pages) {
        pthread_mutex_lock(&k->mu);
        if (!k->busy && !k->requested) {
            k->requested = true;
            pthread_cond_signal(&k->cv);
        }
        pthread_mutex_unlock(&k->mu);
    }
    return SQLITE_OK;
}

static void checkpointer_stop(sq_t *s) {
    struct checkpointer *k = s->ckpt;
    if (!k)
        return;
    sqlite3_wal_hook(s->db, NULL, NULL);
    pthread_mutex_lock(&k->mu);
    k->stop = true;
    pthread_cond_signal(&k->cv);
    pthread_mutex_unlock(&k->mu);
    pthread_join(k->thread, NULL);
    sqlite3_close(k->db);
    pthread_cond_destroy(&k->cv);
    pthread_mutex_destroy(&k->mu);
    free(k);
    s->ckpt = NULL;
}

static int checkpointer_start(sq_t *s, const char *path, int pages, chanc_error_t *err) {
    struct checkpointer *k = calloc(1, sizeof *k);
    if (!k)
        return chanc_error_set(err, CHANC_ENOMEM, "out of memory");
    k->pages = pages > 0 ? pages : DEFAULT_CHECKPOINT_PAGES;
    if (sqlite3_open_v2(path, &k->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        int rc = chanc_error_set(err, CHANC_EIO, "checkpointer: cannot open %s: %s", path,
                                 k->db ? sqlite3_errmsg(k->db) : "out of memory");
        sqlite3_close(k->db);
        free(k);
        return rc;
    }
    sqlite3_busy_timeout(k->db, BUSY_TIMEOUT_MS);
    pthread_mutex_init(&k->mu, NULL);
    pthread_cond_init(&k->cv, NULL);
    if (pthread_create(&k->thread, NULL, checkpoint_main, k) != 0) {
        sqlite3_close(k->db);
        pthread_cond_destroy(&k->cv);
        pthread_mutex_destroy(&k->mu);
        free(k);
        return chanc_error_set(err, CHANC_ENOMEM, "checkpointer: cannot start a thread");
    }
    s->ckpt = k;
    sqlite3_wal_hook(s->db, wal_hook, k); /* replaces the inline autocheckpoint */
    return 0;
}

static unsigned long sq_checkpoints_wait(chat_store_t *s) {
    struct checkpointer *k = sq(s)->ckpt;
    if (!k)
        return 0;
    pthread_mutex_lock(&k->mu);
    while (k->requested || k->busy)
        pthread_cond_wait(&k->cv, &k->mu);
    unsigned long runs = k->runs;
    pthread_mutex_unlock(&k->mu);
    return runs;
}

/* Release a statement after use: no open cursor, no dangling bindings. */
static void st_done(sqlite3_stmt *st) {
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

static int map_sqlite(int rc) {
    switch (rc & 0xff) {
    case SQLITE_NOMEM:
        return CHANC_ENOMEM;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return CHANC_EBUSY;
    case SQLITE_TOOBIG:
        return CHANC_ETOOBIG;
    case SQLITE_RANGE:
    case SQLITE_MISUSE:
        return CHANC_EINVAL;
    case SQLITE_CONSTRAINT:
        switch (rc) {
        case SQLITE_CONSTRAINT_UNIQUE:
        case SQLITE_CONSTRAINT_PRIMARYKEY:
            return CHANC_EEXIST;
        case SQLITE_CONSTRAINT_FOREIGNKEY:
            return CHANC_ENOTFOUND;
        default:
            return CHANC_EINVAL;
        }
    default:
        return CHANC_EIO;
    }
}

/* A failed step: log what SQLite says unless it is an expected
 * constraint answer, and map the code. */
static int sql_fail(sq_t *s, sqlite3_stmt *st, int rc) {
    int code = map_sqlite(rc);
    if ((rc & 0xff) != SQLITE_CONSTRAINT)
        chanc_log(CHANC_LOG_ERROR, "chat store: %s: %s (%s)",
                  sqlite3_sql(st) ? sqlite3_sql(st) : "?", sqlite3_errmsg(s->db),
                  sqlite3_errstr(rc));
    return code;
}

/* Run a statement expected to produce no row; resets it. */
static int st_exec(sq_t *s, sqlite3_stmt *st) {
    int rc = sqlite3_step(st);
    int out = rc == SQLITE_DONE ? 0 : sql_fail(s, st, rc);
    st_done(st);
    return out;
}

static int bind_str(sqlite3_stmt *st, int i, const char *str) {
    return sqlite3_bind_text(st, i, str, -1, SQLITE_STATIC);
}

/* Copy a text column into dst; false if NULL or too long. */
static bool copy_col(char *dst, size_t size, sqlite3_stmt *st, int col) {
    const unsigned char *t = sqlite3_column_text(st, col);
    int n = sqlite3_column_bytes(st, col);
    if (!t || n < 0 || (size_t)n >= size)
        return false;
    memcpy(dst, t, (size_t)n);
    dst[n] = '\0';
    return true;
}



/* Step a bound single-row query: 0 with the row ready to read (the caller
 * reads its columns, then st_done), or CHANC_ENOTFOUND / an error with the
 * statement already released. */
static int step_row(sq_t *q, sqlite3_stmt *st) {
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        return 0;
    int res = rc == SQLITE_DONE ? CHANC_ENOTFOUND : sql_fail(q, st, rc);
    st_done(st);
    return res;
}

/* Step a bound one-row, one-integer query (a COUNT) into *out. */
static int count_query(sq_t *q, sqlite3_stmt *st, int64_t *out) {
    int rc = sqlite3_step(st);
    int res = 0;
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    else
        res = sql_fail(q, st, rc);
    st_done(st);
    return res;
}

/* Run an INSERT … RETURNING id: its row, then done (the commit, outside
 * a transaction). */
static int insert_id(sq_t *q, sqlite3_stmt *st, int64_t *id_out) {
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        if (id_out)
            *id_out = sqlite3_column_int64(st, 0);
        rc = sqlite3_step(st);
    }
    int out = rc == SQLITE_DONE ? 0 : sql_fail(q, st, rc);
    st_done(st);
    return out;
}

/* Step a bound statement, turning each row into a JSON object with
 * row_fn (NULL on a bad row or OOM), into a new array *out. */
static int rows_to_array(sq_t *q, sqlite3_stmt *st, json_t *(*row_fn)(sqlite3_stmt *),
                         json_t **out) {
    *out = NULL;
    json_t *arr = json_array();
    int rc = SQLITE_DONE, res = arr ? 0 : CHANC_ENOMEM;
    while (res == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *row = row_fn(st);
        if (!row) /* a NULL column the store cannot have written, or OOM */
            res = sqlite3_errcode(q->db) == SQLITE_NOMEM ? CHANC_ENOMEM : CHANC_EIO;
        else if (json_array_append_new(arr, row) != 0)
            res = CHANC_ENOMEM;
    }
    if (res == 0 && rc != SQLITE_DONE)
        res = sql_fail(q, st, rc);
    st_done(st);
    if (res < 0) {
        json_decref(arr);
        return res;
    }
    *out = arr;
    return 0;
}

/* ---- the backend ------------------------------------------------------------ */

static const char *sq_errmsg(chat_store_t *s) { return sqlite3_errmsg(sq(s)->db); }

static int sq_tx_begin(chat_store_t *s) { return st_exec(sq(s), sq(s)->own[SQ_BEGIN]); }

static int sq_tx_commit(chat_store_t *s) { return st_exec(sq(s), sq(s)->own[SQ_COMMIT]); }

static void sq_tx_rollback(chat_store_t *s) {
    sq_t *q = sq(s);
    if (!sqlite3_get_autocommit(q->db)) {
        sqlite3_step(q->own[SQ_ROLLBACK]);
        st_done(q->own[SQ_ROLLBACK]);
    }
}

static int sq_version_get(chat_store_t *s, int *version) {
    sq_t *q = sq(s);
    int64_t v = 0;
    int rc = count_query(q, q->own[SQ_VERSION_GET], &v);
    if (rc == 0)
        *version = v < 0 ? -1 : v > INT_MAX ? INT_MAX : (int)v;
    return rc;
}

static int sq_version_set(chat_store_t *s, int version) {
    sq_t *q = sq(s);
    int rc = st_exec(q, q->own[SQ_VERSION_CLEAR]);
    if (rc < 0)
        return rc;
    sqlite3_bind_int(q->own[SQ_VERSION_SET], 1, version);
    return st_exec(q, q->own[SQ_VERSION_SET]);
}

static int sq_exec_script(chat_store_t *s, const char *sql) {
    int rc = sqlite3_exec(sq(s)->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : map_sqlite(rc);
}

static int sq_user_insert(chat_store_t *s, const char *username, const char *hash, int64_t now,
                          int64_t *id_out) {
    sq_t *q = sq(s);
    sqlite3_stmt *st = q->st[CHAT_ST_USER_INSERT];
    bind_str(st, 1, username);
    bind_str(st, 2, hash);
    sqlite3_bind_int64(st, 3, now);
    return insert_id(q, st, id_out);
}

static int sq_user_by_name(chat_store_t *s, const char *username, chat_user_t *out, char *hash,
                           size_t hash_size) {
    sq_t *q = sq(s);
    sqlite3_stmt *st = q->st[CHAT_ST_USER_BY_NAME];
    bind_str(st, 1, username);
    int res = step_row(q, st);
    if (res < 0)
        return res;
    chat_user_t u = {.id = sqlite3_column_int64(st, 0), .is_staff = sqlite3_column_int(st, 3) != 0};
    if (!copy_col(u.username, sizeof u.username, st, 1) ||
        (hash && !copy_col(hash, hash_size, st, 2)))
        res = CHANC_EIO; /* a row the store could not have written */
    else if (out)
        *out = u;
    st_done(st);
    return res;
}

static int sq_user_count(chat_store_t *s, int64_t *out) {
    return count_query(sq(s), sq(s)->st[CHAT_ST_USER_COUNT], out);
}

static int sq_session_purge(chat_store_t *s, int64_t now) {
    sq_t *q = sq(s);
    sqlite3_bind_int64(q->st[CHAT_ST_SESSION_PURGE], 1, now);
    return st_exec(q, q->st[CHAT_ST_SESSION_PURGE]);
}

static int sq_session_insert(chat_store_t *s, const char *token, int64_t user_id,
                             int64_t expires) {
    sq_t *q = sq(s);
    sqlite3_stmt *st = q->st[CHAT_ST_SESSION_INSERT];
    bind_str(st, 1, token);
    sqlite3_bind_int64(st, 2, user_id);
    sqlite3_bind_int64(st, 3, expires);
    return st_exec(q, st);
}

static int sq_session_user(chat_store_t *s, const char *token, chat_user_t *out,
                           int64_t *expires) {
    sq_t *q = sq(s);
    sqlite3_stmt *st = q->st[CHAT_ST_SESSION_USER];
    bind_str(st, 1, token);
    int res = step_row(q, st);
    if (res < 0)
        return res;
    out->id = sqlite3_column_int64(st, 0);
    *expires = sqlite3_column_int64(st, 2);
    out->is_staff = sqlite3_column_int(st, 3) != 0;
    if (!copy_col(out->username, sizeof out->username, st, 1))
        res = CHANC_EIO;
    st_done(st);
    return res;
}

static int sq_session_delete(chat_store_t *s, const char *token) {
    sq_t *q = sq(s);
    sqlite3_stmt *st = q->st[CHAT_ST_SESSION_DELETE];
    bind_str(st, 1, token);
    int rc = st_exec(q, st);
    if (rc == 0 && sqlite3_changes(q->db) == 0)
        rc = CHANC_ENOTFOUND;
    return rc;
}

static int sq_room_insert(chat_store_t *s, const char *name, const char *slug, int64_t now,
                          int64_t *id_out) {
    sq_t *q = sq(s);
    sqlite3_stmt *st = q->st[CHAT_ST_ROOM_INSERT];
    bind_str(st, 1, name);
    bind_str(st, 2, slug);
    sqlite3_bind_int64(st, 3, now);
    return insert_id(q, st, id_out);
}

/* Step a room query (id, name, slug, created_at, private) and fill out. */
static int read_room(sq_t *q, sqlite3_stmt *st, chat_room_t *out) {
    int res = step_row(q, st);
    if (res < 0)
        return res;
    chat_room_t r = {.id = sqlite3_column_int64(st, 0),
                     .created_at_ms = sqlite3_column_int64(st, 3),
                     .is_private = sqlite3_column_int(st, 4) != 0};
    if (!copy_col(r.name, sizeof r.name, st, 1) || !copy_col(r.slug, sizeof r.slug, st, 2))
        res = CHANC_EIO;
    else if (out)
        *out = r;
    st_done(st);
    return res;
}

static int sq_room_by_id(chat_store_t *s, int64_t id, chat_room_t *out) {
    sq_t *q = sq(s);
    sqlite3_bind_int64(q->st[CHAT_ST_ROOM_BY_ID], 1, id);
    return read_room(q, q->st[CHAT_ST_ROOM_BY_ID], out);
}

static int sq_room_by_slug(chat_store_t *s, const char *slug, chat_room_t *out) {
    sq_t *q = sq(s);
    bind_str(q->st[CHAT_ST_ROOM_BY_SLUG], 1, slug);
    return read_room(q, q->st[CHAT_ST_ROOM_BY_SLUG], out);
}

/* id, name, slug, private, member */
static json_t *room_row(sqlite3_stmt *st) {
    const char *name = (const char *)sqlite3_column_text(st, 1);
    int name_len = sqlite3_column_bytes(st, 1);
    const char *slug = (const char *)sqlite3_column_text(st, 2);
    int slug_len = sqlite3_column_bytes(st, 2);
    if (!name || !slug)
        return NULL;
    return json_pack("{s:I, s:s%, s:s%, s:b, s:b}", "id", (json_int_t)sqlite3_column_int64(st, 0),
                     "name", name, (size_t)name_len, "slug", slug, (size_t)slug_len, "private",
                     sqlite3_column_int(st, 3) != 0, "member", sqlite3_column_int(st, 4) != 0);
}

/* UPDATE … SET <flag> = $1 WHERE id = $2; ENOTFOUND when no row has id. */
static int set_flag(chat_store_t *s, int which, bool flag, int64_t id) {
    sq_t *q = sq(s);
    sqlite3_stmt *st = q->st[which];
    sqlite3_bind_int(st, 1, flag);
    sqlite3_bind_int64(st, 2, id);
    int rc = st_exec(q, st);
    if (rc == 0 && sqlite3_changes(q->db) == 0)
        rc = CHANC_ENOTFOUND;
    return rc;
}

static int sq_room_set_private(chat_store_t *s, int64_t room_id, bool is_private) {
    return set_flag(s, CHAT_ST_ROOM_SET_PRIVATE, is_private, room_id);
}

static int sq_user_set_staff(chat_store_t *s, int64_t user_id, bool is_staff) {
    return set_flag(s, CHAT_ST_USER_SET_STAFF, is_staff, user_id);
}

static int sq_list_rooms(chat_store_t *s, json_t **out) {
    return rows_to_array(sq(s), sq(s)->st[CHAT_ST_ROOM_LIST], room_row, out);
}

static int sq_list_rooms_for(chat_store_t *s, int64_t user_id, json_t **out) {
    sq_t *q = sq(s);
    sqlite3_bind_int64(q->st[CHAT_ST_ROOM_LIST_FOR], 1, user_id);
    return rows_to_array(q, q->st[CHAT_ST_ROOM_LIST_FOR], room_row, out);
}

static json_t *member_row(sqlite3_stmt *st) {
    const char *name = (const char *)sqlite3_column_text(st, 0);
    return name ? json_stringn(name, (size_t)sqlite3_column_bytes(st, 0)) : NULL;
}

static int sq_room_members(chat_store_t *s, int64_t room_id, int limit, json_t **out) {
    sq_t *q = sq(s);
    sqlite3_stmt *st = q->st[CHAT_ST_ROOM_MEMBERS];
    sqlite3_bind_int64(st, 1, room_id);
    sqlite3_bind_int(st, 2, limit);
    return rows_to_array(q, st, member_row, out);
}

static int sq_member_insert(chat_store_t *s, int64_t room_id, int64_t user_id) {
    sq_t *q = sq(s);
    sqlite3_stmt *st = q->st[CHAT_ST_MEMBER_INSERT];
    sqlite3_bind_int64(st, 1, room_id);
    sqlite3_bind_int64(st, 2, user_id);
    return st_exec(q, st);
}

static int sq_member_check(chat_store_t *s, int64_t room_id, int64_t user_id, bool *out) {
    sq_t *q = sq(s);
    sqlite3_stmt *st = q->st[CHAT_ST_MEMBER_CHECK];
    sqlite3_bind_int64(st, 1, room_id);
    sqlite3_bind_int64(st, 2, user_id);
    int rc = sqlite3_step(st);
    int res = 0;
    if (rc == SQLITE_ROW)
        *out = true;
    else if (rc == SQLITE_DONE)
        *out = false;
    else
        res = sql_fail(q, st, rc);
    st_done(st);
    return res;
}

static int sq_message_insert(chat_store_t *s, int64_t room_id, int64_t user_id, const char *text,
                             size_t len, int64_t ts_ms, int64_t *id_out) {
    sq_t *q = sq(s);
    sqlite3_stmt *st = q->st[CHAT_ST_MESSAGE_INSERT];
    sqlite3_bind_int64(st, 1, room_id);
    sqlite3_bind_int64(st, 2, user_id);
    sqlite3_bind_text(st, 3, text, (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, ts_ms);
    /* Autocommit: the row is committed when the step returns (unless the
     * caller holds a transaction, as the fixture loader does). */
    return insert_id(q, st, id_out);
}

static json_t *history_row(sqlite3_stmt *st) {
    const char *user = (const char *)sqlite3_column_text(st, 0);
    int user_len = sqlite3_column_bytes(st, 0);
    const char *text = (const char *)sqlite3_column_text(st, 1);
    int text_len = sqlite3_column_bytes(st, 1);
    if (!user || !text)
        return NULL;
    char ts[32];
    chanc_format_timestamp(sqlite3_column_int64(st, 2), ts);
    return json_pack("{s:s%, s:s%, s:s}", "username", user, (size_t)user_len, "message", text,
                     (size_t)text_len, "timestamp", ts);
}

static int sq_history(chat_store_t *s, int64_t room_id, int limit, json_t **out) {
    sq_t *q = sq(s);
    sqlite3_stmt *st = q->st[CHAT_ST_HISTORY];
    sqlite3_bind_int64(st, 1, room_id);
    sqlite3_bind_int(st, 2, limit);
    return rows_to_array(q, st, history_row, out);
}

static int sq_message_count(chat_store_t *s, int64_t room_id, int64_t *out) {
    sq_t *q = sq(s);
    sqlite3_bind_int64(q->st[CHAT_ST_MESSAGE_COUNT], 1, room_id);
    return count_query(q, q->st[CHAT_ST_MESSAGE_COUNT], out);
}

static void sq_close(chat_store_t *s) {
    sq_t *q = sq(s);
    if (!q)
        return;
    checkpointer_stop(q);
    for (int i = 0; i < SQ__COUNT; i++)
        sqlite3_finalize(q->own[i]);
    for (int i = 0; i < CHAT_ST__COUNT; i++)
        sqlite3_finalize(q->st[i]);
    if (q->db && sqlite3_close(q->db) != SQLITE_OK)
        chanc_log(CHANC_LOG_ERROR, "chat store: close: %s", sqlite3_errmsg(q->db));
    free(q);
    s->db = NULL;
}

static const chat_store_backend_t sqlite_backend = {
    .name = "sqlite",
    .close = sq_close,
    .errmsg = sq_errmsg,
    .tx_begin = sq_tx_begin,
    .tx_commit = sq_tx_commit,
    .tx_rollback = sq_tx_rollback,
    .version_get = sq_version_get,
    .version_set = sq_version_set,
    .exec_script = sq_exec_script,
    .user_insert = sq_user_insert,
    .user_by_name = sq_user_by_name,
    .user_count = sq_user_count,
    .session_purge = sq_session_purge,
    .session_insert = sq_session_insert,
    .session_user = sq_session_user,
    .session_delete = sq_session_delete,
    .room_insert = sq_room_insert,
    .room_by_id = sq_room_by_id,
    .room_by_slug = sq_room_by_slug,
    .room_set_private = sq_room_set_private,
    .user_set_staff = sq_user_set_staff,
    .list_rooms = sq_list_rooms,
    .list_rooms_for = sq_list_rooms_for,
    .room_members = sq_room_members,
    .member_insert = sq_member_insert,
    .member_check = sq_member_check,
    .message_insert = sq_message_insert,
    .history = sq_history,
    .message_count = sq_message_count,
    .checkpoints_wait = sq_checkpoints_wait,
};

/* ---- open ----------------------------------------------------------------------- */

static int prepare(sq_t *q, const char *name, const char *sql, sqlite3_stmt **st,
                   chanc_error_t *err) {
    int rc = sqlite3_prepare_v3(q->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
    return rc == SQLITE_OK ? 0
                           : chanc_error_set(err, map_sqlite(rc), "preparing %s: %s", name,
                                             sqlite3_errmsg(q->db));
}

static int prepare_own(sq_t *q, chanc_error_t *err) {
    int rc = 0;
    for (int i = 0; i < SQ__COUNT && rc == 0; i++)
        rc = prepare(q, sq_sql[i], sq_sql[i], &q->own[i], err);
    return rc;
}

static int prepare_shared(sq_t *q, chanc_error_t *err) {
    int rc = 0;
    for (int i = 0; i < CHAT_ST__COUNT && rc == 0; i++)
        rc = prepare(q, chat_statements[i].name, chat_statements[i].sqlite, &q->st[i], err);
    return rc;
}

static int exec_const(sq_t *q, const char *sql, const char *what, chanc_error_t *err) {
    char *msg = NULL;
    int rc = sqlite3_exec(q->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        int code = chanc_error_set(err, map_sqlite(rc), "%s: %s", what,
                                   msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return code;
    }
    return 0;
}

int chat_store__open_sqlite(chat_store_t *s, const chat_store_options_t *opt, const char *path,
                            chanc_error_t *err) {
    sq_t *q = calloc(1, sizeof *q);
    if (!q)
        return chanc_error_set(err, CHANC_ENOMEM, "out of memory");
    s->be = &sqlite_backend;
    s->db = q;
    int rc = sqlite3_open_v2(path, &q->db,
                             SQLITE_OPEN_CREATE | SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK)
        return chanc_error_set(err, rc == SQLITE_NOMEM ? CHANC_ENOMEM : CHANC_EIO,
                               "cannot open %s: %s", path,
                               q->db ? sqlite3_errmsg(q->db) : sqlite3_errstr(rc));
    sqlite3_extended_result_codes(q->db, 1);
    sqlite3_busy_timeout(q->db, BUSY_TIMEOUT_MS);

    bool is_wal = false;
    if (strcmp(path, ":memory:") != 0) {
        sqlite3_stmt *wal = NULL;
        rc = sqlite3_prepare_v2(q->db, "PRAGMA journal_mode=WAL", -1, &wal, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(wal);
        if (rc != SQLITE_ROW) {
            rc = chanc_error_set(err, map_sqlite(rc), "cannot open %s: %s", path,
                                 sqlite3_errmsg(q->db));
            sqlite3_finalize(wal);
            return rc;
        }
        const unsigned char *mode = sqlite3_column_text(wal, 0);
        is_wal = mode && strcmp((const char *)mode, "wal") == 0;
        if (!is_wal)
            chanc_log(CHANC_LOG_WARN, "chat store: %s: WAL unavailable, journal mode %s", path,
                      mode ? (const char *)mode : "?");
        sqlite3_finalize(wal);
    }
    if ((rc = exec_const(q,
                         opt->sync_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
                         "setting synchronous", err)) < 0 ||
        (rc = exec_const(q, "PRAGMA foreign_keys=ON", "enabling foreign keys", err)) < 0 ||
        (rc = exec_const(q, "PRAGMA busy_timeout=5000", "setting busy_timeout", err)) < 0)
        return rc;

    /* The version statements exist once schema_version does; the rest
     * after the migrations. */
    if ((rc = exec_const(q, "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL)",
                         "creating schema_version", err)) < 0 ||
        (rc = prepare_own(q, err)) < 0 ||
        (rc = chat_store__migrate(s, sqlite3_db_filename(q->db, "main"), false, err)) < 0 ||
        (rc = prepare_shared(q, err)) < 0)
        return rc;
    if (is_wal && (rc = checkpointer_start(q, path, opt->checkpoint_pages, err)) < 0)
        return rc;
    return 0;
}
