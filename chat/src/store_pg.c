/* The chat store on PostgreSQL (libpq), for several chat-server processes
 * sharing one history. The backend interface is in store_internal.h.
 *
 * Every statement is prepared once per connection (PQprepare) and run
 * with its parameters out of line (PQexecPrepared): no SQL is built from
 * data anywhere. Calls block the calling thread (a database thread in
 * the server, never the loop) until PostgreSQL answers, as the SQLite
 * backend does; each
 * autocommit statement is committed when it returns. A lost connection is
 * reset before the next statement (and the statements prepared again);
 * the statement that found it lost fails with CHANC_EIO and is not
 * retried, since an insert may or may not have committed. */
#include <inttypes.h>
#include <libpq-fe.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chanc/chat.h"
#include "chanc/log.h"
#include "store_internal.h"
#include "store_testing.h"

/* Serialises migrations between processes opening one database. */
#define MIGRATION_LOCK_KEY "7461126001"

/* Migrations run these before the tables exist, so they are not prepared. */
#define SQL_VERSION_GET "SELECT COALESCE(MAX(version), 0) FROM schema_version"
#define SQL_VERSION_CLEAR "DELETE FROM schema_version"
#define SQL_VERSION_SET "INSERT INTO schema_version(version) VALUES ($1)"

typedef struct pg {
    PGconn *conn;
    bool prepared; /* the statements exist on this connection */
    bool in_tx;    /* between tx_begin and tx_commit/tx_rollback */
    char err[256]; /* the last failure, for errmsg */
} pg_t;

static pg_t *pg(chat_store_t *s) { return s->db; }

/* Parameters of one statement, as text (integers) or bytes (text whose
 * length the caller knows; sent in binary format, which for PostgreSQL's
 * text type is the bytes themselves). */
typedef struct params {
    int n;
    const char *val[4];
    int len[4];
    int fmt[4];
    char num[4][24];
} params_t;

static void p_int(params_t *p, int64_t v) {
    snprintf(p->num[p->n], sizeof p->num[p->n], "%" PRId64, v);
    p->val[p->n] = p->num[p->n];
    p->len[p->n] = 0;
    p->fmt[p->n++] = 0;
}

static void p_str(params_t *p, const char *str) {
    p->val[p->n] = str;
    p->len[p->n] = 0;
    p->fmt[p->n++] = 0;
}

static void p_bytes(params_t *p, const char *bytes, size_t len) {
    p->val[p->n] = bytes;
    p->len[p->n] = (int)len;
    p->fmt[p->n++] = 1;
}

/* Keep libpq's text for errmsg. */
static void keep_error(pg_t *q, const char *text) {
    if (!text || !*text)
        text = "unknown PostgreSQL error";
    /* libpq's text runs over several lines ("\n\tIs the server running…"):
     * one line, parts joined by "; ". */
    size_t o = 0;
    for (const char *p = text; *p && o + 3 < sizeof q->err; p++) {
        if (*p == '\n') {
            while (p[1] == '\t' || p[1] == ' ' || p[1] == '\n')
                p++;
            if (p[1])
                q->err[o++] = ';', q->err[o++] = ' ';
        } else {
            q->err[o++] = *p;
        }
    }
    q->err[o] = '\0';
}

/* SQLSTATE classes to chanc codes. Constraint answers the store expects
 * (unique, foreign key) are not logged; the rest are. */
static int map_sqlstate(const char *state, bool *expected) {
    *expected = false;
    if (!state)
        return CHANC_EIO; /* no server answer: the connection */
    if (!strcmp(state, "23505")) {
        *expected = true;
        return CHANC_EEXIST;
    }
    if (!strcmp(state, "23503")) {
        *expected = true;
        return CHANC_ENOTFOUND;
    }
    if (!strncmp(state, "23", 2) || !strncmp(state, "22", 2))
        return CHANC_EINVAL; /* other constraints; data exceptions (e.g. a NUL byte in text) */
    if (!strcmp(state, "40001") || !strcmp(state, "40P01") || !strcmp(state, "55P03") ||
        !strcmp(state, "57014"))
        return CHANC_EBUSY; /* serialisation, deadlock, lock timeout, statement timeout */
    if (!strcmp(state, "53200"))
        return CHANC_ENOMEM;
    return CHANC_EIO;
}

/* A failed result: keep and log the text, map the code, free res. */
static int pg_fail(pg_t *q, PGresult *res, const char *what) {
    keep_error(q, res ? PQresultErrorMessage(res) : PQerrorMessage(q->conn));
    bool expected;
    int code = map_sqlstate(res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL, &expected);
    if (!expected)
        chanc_log(CHANC_LOG_ERROR, "chat store: %s: %s", what, q->err);
    PQclear(res);
    return code;
}

/* The shared statements (chat_statements), once the schema is current;
 * and the session's lock wait bound (a reset connection loses both). A
 * statement waiting longer than 5 s for a lock fails with CHANC_EBUSY, as
 * SQLite's busy timeout does: nothing waits on a lock forever, not even a
 * shutdown waiting for the database thread. */
static int prepare_all(pg_t *q) {
    PGresult *set = PQexec(q->conn, "SET lock_timeout = '5s'");
    if (PQresultStatus(set) != PGRES_COMMAND_OK)
        return pg_fail(q, set, "SET lock_timeout");
    PQclear(set);
    for (int i = 0; i < CHAT_ST__COUNT; i++) {
        const chat_statement_t *d = &chat_statements[i];
        PGresult *res = PQprepare(q->conn, d->name, d->postgresql, 0, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            return pg_fail(q, res, d->name);
        PQclear(res);
    }
    q->prepared = true;
    return 0;
}

/* A connection found lost is reset before the next statement, outside a
 * transaction only: a transaction's earlier statements went with it, so
 * its remaining statements fail until the caller rolls back. */
static int ensure_connected(pg_t *q) {
    if (PQstatus(q->conn) == CONNECTION_OK)
        return 0;
    if (q->in_tx) {
        keep_error(q, "connection to PostgreSQL lost inside a transaction");
        return CHANC_EIO;
    }
    chanc_log(CHANC_LOG_WARN, "chat store: PostgreSQL connection lost; reconnecting");
    q->prepared = false;
    PQreset(q->conn);
    if (PQstatus(q->conn) != CONNECTION_OK) {
        keep_error(q, PQerrorMessage(q->conn));
        chanc_log(CHANC_LOG_ERROR, "chat store: reconnecting to PostgreSQL: %s", q->err);
        return CHANC_EIO;
    }
    chanc_log(CHANC_LOG_INFO, "chat store: PostgreSQL connection re-established");
    return 0;
}

/* The result of one statement: 0 with *out the result (PQclear it), or
 * a negative code and *out NULL. */
static int check(pg_t *q, PGresult *res, const char *what, PGresult **out) {
    ExecStatusType status = PQresultStatus(res);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)
        return pg_fail(q, res, what);
    *out = res;
    return 0;
}

/* Run prepared statement st (st < 0: the SQL text sql, unprepared). */
static int run_sql(pg_t *q, int st, const char *sql, const params_t *p, PGresult **out) {
    *out = NULL;
    int rc = ensure_connected(q);
    if (rc < 0)
        return rc;
    if (st < 0)
        return check(q, PQexecParams(q->conn, sql, p->n, NULL, p->val, p->len, p->fmt, 0), sql, out);
    if (!q->prepared && (rc = prepare_all(q)) < 0)
        return rc;
    const char *name = chat_statements[st].name;
    return check(q, PQexecPrepared(q->conn, name, p->n, p->val, p->len, p->fmt, 0), name, out);
}

static int run(pg_t *q, int st, const params_t *p, PGresult **out) {
    return run_sql(q, st, NULL, p, out);
}

/* Run a statement whose rows (if any) are not wanted. */
static int run_cmd(pg_t *q, int st, const params_t *p) {
    PGresult *res;
    int rc = run(q, st, p, &res);
    PQclear(res);
    return rc;
}

static int64_t get_int(const PGresult *res, int row, int col) {
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* Copy a text value into dst; false if NULL or too long. */
static bool copy_val(char *dst, size_t size, const PGresult *res, int row, int col) {
    if (PQgetisnull(res, row, col))
        return false;
    int n = PQgetlength(res, row, col);
    if (n < 0 || (size_t)n >= size)
        return false;
    memcpy(dst, PQgetvalue(res, row, col), (size_t)n);
    dst[n] = '\0';
    return true;
}

/* Run a statement expected to return at most one row: 0 with *out the
 * result, CHANC_ENOTFOUND for none, or an error. */
static int run_row(pg_t *q, int st, const params_t *p, PGresult **out) {
    int rc = run(q, st, p, out);
    if (rc == 0 && PQntuples(*out) < 1) {
        PQclear(*out);
        *out = NULL;
        rc = CHANC_ENOTFOUND;
    }
    return rc;
}

/* The first column of the only row as an integer: an INSERT … RETURNING
 * id, a COUNT. (A foreign key's CHANC_ENOTFOUND passes through.) */
static int run_int(pg_t *q, int st, const params_t *p, int64_t *out) {
    PGresult *res;
    int rc = run(q, st, p, &res);
    if (rc == 0 && PQntuples(res) != 1) {
        keep_error(q, "expected one row");
        rc = CHANC_EIO;
    } else if (rc == 0 && out) {
        *out = get_int(res, 0, 0);
    }
    PQclear(res);
    return rc;
}

/* Constant SQL, without parameters: transactions, migrations, locks. */
static int exec_const(pg_t *q, const char *sql, PGresult **out) {
    *out = NULL;
    int rc = ensure_connected(q);
    return rc < 0 ? rc : check(q, PQexec(q->conn, sql), sql, out);
}

static int exec_simple(pg_t *q, const char *sql) {
    PGresult *res;
    int rc = exec_const(q, sql, &res);
    PQclear(res);
    return rc;
}

/* ---- the backend ------------------------------------------------------------ */

static const char *pg_errmsg(chat_store_t *s) { return pg(s)->err; }

static int pg_tx_begin(chat_store_t *s) {
    int rc = exec_simple(pg(s), "BEGIN");
    pg(s)->in_tx = rc == 0;
    return rc;
}

/* COMMIT of a transaction that failed half-way answers ROLLBACK. */
static int pg_tx_commit(chat_store_t *s) {
    pg_t *q = pg(s);
    PGresult *res;
    int rc = exec_const(q, "COMMIT", &res);
    q->in_tx = false;
    if (rc == 0 && strcmp(PQcmdStatus(res), "COMMIT") != 0) {
        keep_error(q, "the transaction was rolled back");
        rc = CHANC_EIO;
    }
    PQclear(res);
    return rc;
}

static void pg_tx_rollback(chat_store_t *s) {
    pg_t *q = pg(s);
    q->in_tx = false;
    if (PQstatus(q->conn) == CONNECTION_OK && PQtransactionStatus(q->conn) != PQTRANS_IDLE)
        PQclear(PQexec(q->conn, "ROLLBACK"));
}

static int pg_version_get(chat_store_t *s, int *version) {
    params_t p = {0};
    PGresult *res;
    int rc = run_sql(pg(s), -1, SQL_VERSION_GET, &p, &res);
    if (rc == 0 && PQntuples(res) == 1) {
        int64_t v = get_int(res, 0, 0);
        *version = v < 0 ? -1 : v > INT_MAX ? INT_MAX : (int)v;
    } else if (rc == 0) {
        rc = CHANC_EIO;
    }
    PQclear(res);
    return rc;
}

static int pg_version_set(chat_store_t *s, int version) {
    params_t p = {0};
    PGresult *res;
    int rc = run_sql(pg(s), -1, SQL_VERSION_CLEAR, &p, &res);
    PQclear(res);
    if (rc < 0)
        return rc;
    p_int(&p, version);
    rc = run_sql(pg(s), -1, SQL_VERSION_SET, &p, &res);
    PQclear(res);
    return rc;
}

static int pg_exec_script(chat_store_t *s, const char *sql) { return exec_simple(pg(s), sql); }

static int pg_user_insert(chat_store_t *s, const char *username, const char *hash, int64_t now,
                          int64_t *id_out) {
    params_t p = {0};
    p_str(&p, username);
    p_str(&p, hash);
    p_int(&p, now);
    return run_int(pg(s), CHAT_ST_USER_INSERT, &p, id_out);
}

static int pg_user_by_name(chat_store_t *s, const char *username, chat_user_t *out, char *hash,
                           size_t hash_size) {
    params_t p = {0};
    p_str(&p, username);
    PGresult *res;
    int rc = run_row(pg(s), CHAT_ST_USER_BY_NAME, &p, &res);
    if (rc < 0)
        return rc;
    chat_user_t u = {.id = get_int(res, 0, 0), .is_staff = get_int(res, 0, 3) != 0};
    if (!copy_val(u.username, sizeof u.username, res, 0, 1) ||
        (hash && !copy_val(hash, hash_size, res, 0, 2)))
        rc = CHANC_EIO; /* a row the store could not have written */
    else if (out)
        *out = u;
    PQclear(res);
    return rc;
}

static int pg_user_count(chat_store_t *s, int64_t *out) {
    params_t p = {0};
    return run_int(pg(s), CHAT_ST_USER_COUNT, &p, out);
}

static int pg_session_purge(chat_store_t *s, int64_t now) {
    params_t p = {0};
    p_int(&p, now);
    return run_cmd(pg(s), CHAT_ST_SESSION_PURGE, &p);
}

static int pg_session_insert(chat_store_t *s, const char *token, int64_t user_id,
                             int64_t expires) {
    params_t p = {0};
    p_str(&p, token);
    p_int(&p, user_id);
    p_int(&p, expires);
    return run_cmd(pg(s), CHAT_ST_SESSION_INSERT, &p);
}

static int pg_session_user(chat_store_t *s, const char *token, chat_user_t *out,
                           int64_t *expires) {
    params_t p = {0};
    p_str(&p, token);
    PGresult *res;
    int rc = run_row(pg(s), CHAT_ST_SESSION_USER, &p, &res);
    if (rc < 0)
        return rc;
    out->id = get_int(res, 0, 0);
    *expires = get_int(res, 0, 2);
    out->is_staff = get_int(res, 0, 3) != 0;
    if (!copy_val(out->username, sizeof out->username, res, 0, 1))
        rc = CHANC_EIO;
    PQclear(res);
    return rc;
}

static int pg_session_delete(chat_store_t *s, const char *token) {
    params_t p = {0};
    p_str(&p, token);
    PGresult *res;
    int rc = run(pg(s), CHAT_ST_SESSION_DELETE, &p, &res);
    if (rc == 0 && strcmp(PQcmdTuples(res), "0") == 0)
        rc = CHANC_ENOTFOUND;
    PQclear(res);
    return rc;
}

static int pg_room_insert(chat_store_t *s, const char *name, const char *slug, int64_t now,
                          int64_t *id_out) {
    params_t p = {0};
    p_str(&p, name);
    p_str(&p, slug);
    p_int(&p, now);
    return run_int(pg(s), CHAT_ST_ROOM_INSERT, &p, id_out);
}

/* Run a room query (id, name, slug, created_at, private) and fill out. */
static int read_room(pg_t *q, int st, const params_t *p, chat_room_t *out) {
    PGresult *res;
    int rc = run_row(q, st, p, &res);
    if (rc < 0)
        return rc;
    chat_room_t r = {.id = get_int(res, 0, 0),
                     .created_at_ms = get_int(res, 0, 3),
                     .is_private = get_int(res, 0, 4) != 0};
    if (!copy_val(r.name, sizeof r.name, res, 0, 1) || !copy_val(r.slug, sizeof r.slug, res, 0, 2))
        rc = CHANC_EIO;
    else if (out)
        *out = r;
    PQclear(res);
    return rc;
}

static int pg_room_by_id(chat_store_t *s, int64_t id, chat_room_t *out) {
    params_t p = {0};
    p_int(&p, id);
    return read_room(pg(s), CHAT_ST_ROOM_BY_ID, &p, out);
}

static int pg_room_by_slug(chat_store_t *s, const char *slug, chat_room_t *out) {
    params_t p = {0};
    p_str(&p, slug);
    return read_room(pg(s), CHAT_ST_ROOM_BY_SLUG, &p, out);
}

/* Run a query and turn each row into a JSON object with row_fn (NULL on
 * a bad row or OOM), into a new array *out. */
static int rows_to_array(pg_t *q, int st, const params_t *p,
                         json_t *(*row_fn)(const PGresult *, int), json_t **out) {
    PGresult *res;
    int rc = run(q, st, p, &res);
    if (rc < 0)
        return rc;
    json_t *arr = json_array();
    rc = arr ? 0 : CHANC_ENOMEM;
    for (int i = 0, n = PQntuples(res); rc == 0 && i < n; i++) {
        json_t *row = row_fn(res, i);
        if (!row)
            rc = CHANC_EIO; /* a NULL column the store cannot have written, or OOM */
        else if (json_array_append_new(arr, row) != 0)
            rc = CHANC_ENOMEM;
    }
    PQclear(res);
    if (rc < 0) {
        json_decref(arr);
        return rc;
    }
    *out = arr;
    return 0;
}

/* id, name, slug, private, member */
static json_t *room_row(const PGresult *res, int i) {
    if (PQgetisnull(res, i, 1) || PQgetisnull(res, i, 2))
        return NULL;
    return json_pack("{s:I, s:s%, s:s%, s:b, s:b}", "id", (json_int_t)get_int(res, i, 0), "name",
                     PQgetvalue(res, i, 1), (size_t)PQgetlength(res, i, 1), "slug",
                     PQgetvalue(res, i, 2), (size_t)PQgetlength(res, i, 2), "private",
                     get_int(res, i, 3) != 0, "member", get_int(res, i, 4) != 0);
}

/* UPDATE … SET <flag> = $1 WHERE id = $2; ENOTFOUND when no row has id. */
static int set_flag(chat_store_t *s, int which, bool flag, int64_t id) {
    params_t p = {0};
    p_int(&p, flag);
    p_int(&p, id);
    PGresult *res;
    int rc = run(pg(s), which, &p, &res);
    if (rc == 0 && strcmp(PQcmdTuples(res), "0") == 0)
        rc = CHANC_ENOTFOUND;
    PQclear(res);
    return rc;
}

static int pg_room_set_private(chat_store_t *s, int64_t room_id, bool is_private) {
    return set_flag(s, CHAT_ST_ROOM_SET_PRIVATE, is_private, room_id);
}

static int pg_user_set_staff(chat_store_t *s, int64_t user_id, bool is_staff) {
    return set_flag(s, CHAT_ST_USER_SET_STAFF, is_staff, user_id);
}

static int pg_list_rooms(chat_store_t *s, json_t **out) {
    params_t p = {0};
    return rows_to_array(pg(s), CHAT_ST_ROOM_LIST, &p, room_row, out);
}

static int pg_list_rooms_for(chat_store_t *s, int64_t user_id, json_t **out) {
    params_t p = {0};
    p_int(&p, user_id);
    return rows_to_array(pg(s), CHAT_ST_ROOM_LIST_FOR, &p, room_row, out);
}

static json_t *member_row(const PGresult *res, int i) {
    if (PQgetisnull(res, i, 0))
        return NULL;
    return json_stringn(PQgetvalue(res, i, 0), (size_t)PQgetlength(res, i, 0));
}

static int pg_room_members(chat_store_t *s, int64_t room_id, int limit, json_t **out) {
    params_t p = {0};
    p_int(&p, room_id);
    p_int(&p, limit);
    return rows_to_array(pg(s), CHAT_ST_ROOM_MEMBERS, &p, member_row, out);
}

static int pg_member_insert(chat_store_t *s, int64_t room_id, int64_t user_id) {
    params_t p = {0};
    p_int(&p, room_id);
    p_int(&p, user_id);
    return run_cmd(pg(s), CHAT_ST_MEMBER_INSERT, &p);
}

static int pg_member_check(chat_store_t *s, int64_t room_id, int64_t user_id, bool *out) {
    params_t p = {0};
    p_int(&p, room_id);
    p_int(&p, user_id);
    PGresult *res;
    int rc = run(pg(s), CHAT_ST_MEMBER_CHECK, &p, &res);
    if (rc == 0)
        *out = PQntuples(res) > 0;
    PQclear(res);
    return rc;
}

static int pg_message_insert(chat_store_t *s, int64_t room_id, int64_t user_id, const char *text,
                             size_t len, int64_t ts_ms, int64_t *id_out) {
    params_t p = {0};
    p_int(&p, room_id);
    p_int(&p, user_id);
    p_bytes(&p, text, len);
    p_int(&p, ts_ms);
    /* Autocommit: committed when PostgreSQL answers (unless the caller
     * holds a transaction, as the fixture loader does). */
    return run_int(pg(s), CHAT_ST_MESSAGE_INSERT, &p, id_out);
}

static json_t *history_row(const PGresult *res, int i) {
    if (PQgetisnull(res, i, 0) || PQgetisnull(res, i, 1))
        return NULL;
    char ts[32];
    chanc_format_timestamp(get_int(res, i, 2), ts);
    return json_pack("{s:s%, s:s%, s:s}", "username", PQgetvalue(res, i, 0),
                     (size_t)PQgetlength(res, i, 0), "message", PQgetvalue(res, i, 1),
                     (size_t)PQgetlength(res, i, 1), "timestamp", ts);
}

static int pg_history(chat_store_t *s, int64_t room_id, int limit, json_t **out) {
    params_t p = {0};
    p_int(&p, room_id);
    p_int(&p, limit);
    return rows_to_array(pg(s), CHAT_ST_HISTORY, &p, history_row, out);
}

static int pg_message_count(chat_store_t *s, int64_t room_id, int64_t *out) {
    params_t p = {0};
    p_int(&p, room_id);
    return run_int(pg(s), CHAT_ST_MESSAGE_COUNT, &p, out);
}

static void pg_close(chat_store_t *s) {
    pg_t *q = pg(s);
    if (!q)
        return;
    PQfinish(q->conn);
    free(q);
    s->db = NULL;
}

static const chat_store_backend_t pg_backend = {
    .name = "postgresql",
    .close = pg_close,
    .errmsg = pg_errmsg,
    .tx_begin = pg_tx_begin,
    .tx_commit = pg_tx_commit,
    .tx_rollback = pg_tx_rollback,
    .version_get = pg_version_get,
    .version_set = pg_version_set,
    .exec_script = pg_exec_script,
    .user_insert = pg_user_insert,
    .user_by_name = pg_user_by_name,
    .user_count = pg_user_count,
    .session_purge = pg_session_purge,
    .session_insert = pg_session_insert,
    .session_user = pg_session_user,
    .session_delete = pg_session_delete,
    .room_insert = pg_room_insert,
    .room_by_id = pg_room_by_id,
    .room_by_slug = pg_room_by_slug,
    .room_set_private = pg_room_set_private,
    .user_set_staff = pg_user_set_staff,
    .list_rooms = pg_list_rooms,
    .list_rooms_for = pg_list_rooms_for,
    .room_members = pg_room_members,
    .member_insert = pg_member_insert,
    .member_check = pg_member_check,
    .message_insert = pg_message_insert,
    .history = pg_history,
    .message_count = pg_message_count,
    .checkpoints_wait = NULL,
};

int chat_store__pg_backend_pid(const chat_store_t *s) {
    if (!s || s->be != &pg_backend || !s->db)
        return 0;
    const pg_t *q = s->db;
    return PQstatus(q->conn) == CONNECTION_OK ? PQbackendPID(q->conn) : 0;
}

/* ---- open ----------------------------------------------------------------------- */

/* Server notices ("relation … already exists, skipping") go to the log,
 * not to stderr. */
static void on_notice(void *ud, const char *message) {
    (void)ud;
    chanc_log(CHANC_LOG_DEBUG, "chat store: PostgreSQL: %s", message);
}

int chat_store__open_pg(chat_store_t *s, const chat_store_options_t *opt, const char *url,
                        chanc_error_t *err) {
    (void)opt; /* sync_full and checkpoint_pages are SQLite's; PostgreSQL has its own settings */
    pg_t *q = calloc(1, sizeof *q);
    if (!q)
        return chanc_error_set(err, CHANC_ENOMEM, "out of memory");
    s->be = &pg_backend;
    s->db = q;
    /* The URL is never logged or echoed: it may hold a password. Bounds
     * first, the URL after them (libpq keeps the last value of a keyword,
     * so the URL's own connect_timeout, keepalives… win): a database host
     * that vanishes without a reset is noticed in about a minute, not
     * after TCP's ~15, so neither a database thread nor a shutdown waiting
     * for it hangs on it. */
    static const char *const keys[] = {"connect_timeout", "keepalives", "keepalives_idle",
                                       "keepalives_interval", "keepalives_count",
                                       "tcp_user_timeout", "dbname", NULL};
    const char *const values[] = {"10", "1", "30", "10", "3", "60000", url, NULL};
    q->conn = PQconnectdbParams(keys, values, 1);
    if (!q->conn)
        return chanc_error_set(err, CHANC_ENOMEM, "out of memory");
    if (PQstatus(q->conn) != CONNECTION_OK) {
        keep_error(q, PQerrorMessage(q->conn));
        return chanc_error_set(err, CHANC_EIO, "cannot connect to PostgreSQL: %s", q->err);
    }
    PQsetNoticeProcessor(q->conn, on_notice, NULL);
    if (PQsetClientEncoding(q->conn, "UTF8") != 0) {
        keep_error(q, PQerrorMessage(q->conn));
        return chanc_error_set(err, CHANC_EIO, "PostgreSQL: setting client encoding: %s", q->err);
    }
    char where[160];
    snprintf(where, sizeof where, "PostgreSQL database %s", PQdb(q->conn));
    /* One process migrates at a time; the others wait here, then find the
     * schema current. */
    int rc = exec_simple(q, "SELECT pg_advisory_lock(" MIGRATION_LOCK_KEY ")");
    if (rc < 0)
        return chanc_error_set(err, rc, "%s: taking the migration lock: %s", where, q->err);
    rc = chat_store__migrate(s, where, true, err);
    if (exec_simple(q, "SELECT pg_advisory_unlock(" MIGRATION_LOCK_KEY ")") < 0 && rc == 0)
        rc = chanc_error_set(err, CHANC_EIO, "%s: releasing the migration lock: %s", where, q->err);
    if (rc == 0 && (rc = prepare_all(q)) < 0)
        chanc_error_set(err, rc, "%s: preparing statements: %s", where, q->err);
    return rc;
}
