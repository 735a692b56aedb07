/* The chat store on SQLite: schema migrations, users (argon2id password
 * hashes), sessions, rooms, members and messages.
 *
 * Every statement is prepared once at open and only ever bound: no SQL is
 * built from data anywhere. Statements are reset (and their bindings
 * cleared) before a function returns, so no read transaction outlives a
 * call and WAL checkpoints are never held back. */
#include <limits.h>
#include <pthread.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chanc/chat.h"
#include "chanc/log.h"
#include "store_internal.h"

#define DEFAULT_SESSION_TTL_MS (14LL * 24 * 60 * 60 * 1000)
#define BUSY_TIMEOUT_MS 5000
#define DEFAULT_CHECKPOINT_PAGES 1000 /* SQLite's own autocheckpoint default */

/* ---- schema ------------------------------------------------------------ */

/* Forward migrations: migrations[i] takes the schema from version i to
 * i + 1. Append only; never edit a migration that has shipped. */
static const char *const migrations[] = {
    /* 1: the initial schema. Times are integer milliseconds since the
     * Unix epoch (UTC). */
    "CREATE TABLE users ("
    "  id INTEGER PRIMARY KEY,"
    "  username TEXT NOT NULL UNIQUE,"
    "  password_hash TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL"
    ");"
    "CREATE TABLE sessions ("
    "  token TEXT PRIMARY KEY,"
    "  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  expires_at INTEGER NOT NULL"
    ");"
    "CREATE INDEX sessions_user_id ON sessions(user_id);"
    "CREATE INDEX sessions_expires_at ON sessions(expires_at);"
    "CREATE TABLE rooms ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  slug TEXT NOT NULL UNIQUE,"
    "  created_at INTEGER NOT NULL"
    ");"
    "CREATE TABLE room_members ("
    "  room_id INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,"
    "  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  PRIMARY KEY (room_id, user_id)"
    ");"
    "CREATE INDEX room_members_user_id ON room_members(user_id);"
    "CREATE TABLE messages ("
    "  id INTEGER PRIMARY KEY,"
    "  room_id INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,"
    "  user_id INTEGER NOT NULL REFERENCES users(id),"
    "  text TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL"
    ");"
    "CREATE INDEX messages_room_created ON messages(room_id, created_at, id);"
    "CREATE INDEX messages_user_id ON messages(user_id);",
};

#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

/* ---- statements ---------------------------------------------------------- */

/* X(name, early, sql). "early" statements only need schema_version and
 * are prepared before the migrations run; the rest after. */
#define STATEMENTS(X)                                                              \
    X(BEGIN, 1, "BEGIN IMMEDIATE")                                                 \
    X(COMMIT, 1, "COMMIT")                                                         \
    X(ROLLBACK, 1, "ROLLBACK")                                                     \
    X(VERSION_GET, 1, "SELECT COALESCE(MAX(version), 0) FROM schema_version")      \
    X(VERSION_CLEAR, 1, "DELETE FROM schema_version")                              \
    X(VERSION_SET, 1, "INSERT INTO schema_version(version) VALUES (?1)")           \
    X(USER_INSERT, 0,                                                              \
      "INSERT INTO users(username, password_hash, created_at) VALUES (?1, ?2, ?3)") \
    X(USER_BY_NAME, 0, "SELECT id, username, password_hash FROM users WHERE username = ?1") \
    X(SESSION_PURGE, 0, "DELETE FROM sessions WHERE expires_at <= ?1")             \
    X(SESSION_INSERT, 0,                                                           \
      "INSERT INTO sessions(token, user_id, expires_at) VALUES (?1, ?2, ?3)")       \
    X(SESSION_USER, 0,                                                             \
      "SELECT u.id, u.username, s.expires_at FROM sessions s"                      \
      " JOIN users u ON u.id = s.user_id WHERE s.token = ?1")                      \
    X(SESSION_DELETE, 0, "DELETE FROM sessions WHERE token = ?1")                  \
    X(ROOM_INSERT, 0, "INSERT INTO rooms(name, slug, created_at) VALUES (?1, ?2, ?3)") \
    X(ROOM_BY_ID, 0, "SELECT id, name, slug, created_at FROM rooms WHERE id = ?1") \
    X(ROOM_BY_SLUG, 0, "SELECT id, name, slug, created_at FROM rooms WHERE slug = ?1") \
    X(ROOM_LIST, 0, "SELECT id, name, slug FROM rooms ORDER BY name, id")          \
    X(MEMBER_INSERT, 0,                                                            \
      "INSERT INTO room_members(room_id, user_id) VALUES (?1, ?2)"                 \
      " ON CONFLICT (room_id, user_id) DO NOTHING")                                \
    X(MEMBER_CHECK, 0, "SELECT 1 FROM room_members WHERE room_id = ?1 AND user_id = ?2") \
    X(MESSAGE_INSERT, 0,                                                           \
      "INSERT INTO messages(room_id, user_id, text, created_at)"                   \
      " VALUES (?1, ?2, ?3, ?4)")                                                  \
    X(HISTORY, 0,                                                                  \
      "SELECT username, text, created_at FROM ("                                   \
      "  SELECT m.id AS id, u.username AS username, m.text AS text,"               \
      "         m.created_at AS created_at"                                        \
      "  FROM messages m JOIN users u ON u.id = m.user_id"                         \
      "  WHERE m.room_id = ?1"                                                     \
      "  ORDER BY m.created_at DESC, m.id DESC LIMIT ?2"                           \
      ") ORDER BY created_at, id")                                                 \
    X(MESSAGE_COUNT, 0, "SELECT COUNT(*) FROM messages WHERE room_id = ?1")         \
    X(USER_COUNT, 0, "SELECT COUNT(*) FROM users")

enum {
#define X(name, early, sql) ST_##name,
    STATEMENTS(X)
#undef X
    ST__COUNT
};

static const struct {
    const char *name;
    int early;
    const char *sql;
} statement_defs[ST__COUNT] = {
#define X(name, early, sql) {#name, early, sql},
    STATEMENTS(X)
#undef X
};

struct chat_store {
    sqlite3 *db;
    sqlite3_stmt *st[ST__COUNT];
    chanc_clock_t clock;
    unsigned long long opslimit;
    size_t memlimit;
    int64_t session_ttl_ms;
    int version;
    /* check_password verifies unknown users against this, so that an
     * unknown user costs as much as a wrong password. */
    char dummy_hash[crypto_pwhash_STRBYTES];
    struct checkpointer *ckpt; /* NULL unless a WAL file */
};

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

static void checkpointer_stop(chat_store_t *s) {
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

static int checkpointer_start(chat_store_t *s, const char *path, int pages, chanc_error_t *err) {
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

unsigned long chat_store_checkpoints_wait(chat_store_t *s) {
    struct checkpointer *k = s ? s->ckpt : NULL;
    if (!k)
        return 0;
    pthread_mutex_lock(&k->mu);
    while (k->requested || k->busy)
        pthread_cond_wait(&k->cv, &k->mu);
    unsigned long runs = k->runs;
    pthread_mutex_unlock(&k->mu);
    return runs;
}

/* ---- helpers ------------------------------------------------------------- */

static int64_t system_wall_ms(void *ud) {
    (void)ud;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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
static int sql_fail(chat_store_t *s, sqlite3_stmt *st, int rc) {
    int code = map_sqlite(rc);
    if ((rc & 0xff) != SQLITE_CONSTRAINT)
        chanc_log(CHANC_LOG_ERROR, "chat store: %s: %s (%s)",
                  sqlite3_sql(st) ? sqlite3_sql(st) : "?", sqlite3_errmsg(s->db),
                  sqlite3_errstr(rc));
    return code;
}

/* Run a statement expected to produce no row; resets it. */
static int st_exec(chat_store_t *s, sqlite3_stmt *st) {
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

long chat_utf8_length(const char *text, size_t len) {
    const unsigned char *p = (const unsigned char *)text;
    size_t i = 0;
    long count = 0;
    while (i < len) {
        unsigned c = p[i];
        size_t n;
        unsigned cp;
        if (c < 0x80) {
            n = 1;
            cp = c;
        } else if (c >= 0xc2 && c <= 0xdf) {
            n = 2;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 3;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 4;
            cp = c & 0x07;
        } else {
            return -1;
        }
        if (len - i < n)
            return -1;
        for (size_t k = 1; k < n; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return -1;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
            return -1; /* overlong, surrogate or out of range */
        i += n;
        count++;
    }
    return count;
}

bool chat_valid_username(const char *username) {
    if (!username)
        return false;
    size_t n = strnlen(username, CHAT_USERNAME_MAX + 1);
    if (n == 0 || n > CHAT_USERNAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = username[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '@' || c == '.' || c == '+' || c == '-' || c == '_'))
            return false;
    }
    return true;
}

bool chat_valid_slug(const char *slug) {
    if (!slug)
        return false;
    size_t n = strnlen(slug, CHAT_ROOM_NAME_MAX + 1);
    if (n == 0 || n > CHAT_ROOM_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = slug[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* 1–100 characters of valid UTF-8, no control characters. */
static bool valid_room_name(const char *name) {
    if (!name)
        return false;
    size_t n = strnlen(name, CHAT_ROOM_NAME_MAX * 4 + 1);
    if (n > CHAT_ROOM_NAME_MAX * 4)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    long chars = chat_utf8_length(name, n);
    return chars >= 1 && chars <= CHAT_ROOM_NAME_MAX;
}

static bool valid_token(const char *token) {
    if (!token || strnlen(token, CHAT_SESSION_TOKEN_LEN + 1) != CHAT_SESSION_TOKEN_LEN)
        return false;
    for (size_t i = 0; i < CHAT_SESSION_TOKEN_LEN; i++) {
        char c = token[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return true;
}

const char *chat_store_errmsg(chat_store_t *s) { return s ? sqlite3_errmsg(s->db) : "no store"; }

/* ---- transactions --------------------------------------------------------- */

int chat_store_tx_begin(chat_store_t *s) { return st_exec(s, s->st[ST_BEGIN]); }

int chat_store_tx_commit(chat_store_t *s) { return st_exec(s, s->st[ST_COMMIT]); }

void chat_store_tx_rollback(chat_store_t *s) {
    if (!sqlite3_get_autocommit(s->db)) {
        sqlite3_step(s->st[ST_ROLLBACK]);
        st_done(s->st[ST_ROLLBACK]);
    }
}

/* ---- open / migrate / close ------------------------------------------------ */

static int prepare_all(chat_store_t *s, int early, chanc_error_t *err) {
    for (int i = 0; i < ST__COUNT; i++) {
        if (statement_defs[i].early != early)
            continue;
        int rc = sqlite3_prepare_v3(s->db, statement_defs[i].sql, -1, SQLITE_PREPARE_PERSISTENT,
                                    &s->st[i], NULL);
        if (rc != SQLITE_OK)
            return chanc_error_set(err, map_sqlite(rc), "preparing %s: %s", statement_defs[i].name,
                                   sqlite3_errmsg(s->db));
    }
    return 0;
}

static int exec_const(chat_store_t *s, const char *sql, const char *what, chanc_error_t *err) {
    char *msg = NULL;
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        int code = chanc_error_set(err, map_sqlite(rc), "%s: %s", what,
                                   msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return code;
    }
    return 0;
}

static int read_version(chat_store_t *s, int *version) {
    sqlite3_stmt *st = s->st[ST_VERSION_GET];
    int rc = sqlite3_step(st);
    int out = 0;
    if (rc == SQLITE_ROW) {
        sqlite3_int64 v = sqlite3_column_int64(st, 0);
        *version = v < 0 ? -1 : v > INT_MAX ? INT_MAX : (int)v;
    } else {
        out = sql_fail(s, st, rc);
    }
    st_done(st);
    return out;
}

/* Bring the schema to SCHEMA_VERSION, one migration per transaction. The
 * version is re-read under the write lock, so two processes opening the
 * same new file do not both migrate. */
static int migrate(chat_store_t *s, chanc_error_t *err) {
    int rc = exec_const(s, "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL)",
                        "creating schema_version", err);
    if (rc < 0)
        return rc;
    if ((rc = prepare_all(s, 1, err)) < 0)
        return rc;
    for (;;) {
        if ((rc = chat_store_tx_begin(s)) < 0)
            return chanc_error_set(err, rc, "migrating %s: cannot lock the database: %s",
                                   sqlite3_db_filename(s->db, "main"), sqlite3_errmsg(s->db));
        int v = 0;
        if ((rc = read_version(s, &v)) < 0) {
            chat_store_tx_rollback(s);
            return chanc_error_set(err, rc, "reading the schema version: %s",
                                   sqlite3_errmsg(s->db));
        }
        if (v < 0 || v > SCHEMA_VERSION) {
            chat_store_tx_rollback(s);
            return chanc_error_set(err, CHANC_EINVAL,
                                   "database schema version %d is newer than this program "
                                   "supports (%d); upgrade the program",
                                   v, SCHEMA_VERSION);
        }
        if (v == SCHEMA_VERSION) {
            s->version = v;
            return chat_store_tx_commit(s) < 0
                       ? chanc_error_set(err, CHANC_EIO, "commit: %s", sqlite3_errmsg(s->db))
                       : 0;
        }
        char what[64];
        snprintf(what, sizeof what, "migration %d", v + 1);
        rc = exec_const(s, migrations[v], what, err);
        if (rc == 0) {
            rc = st_exec(s, s->st[ST_VERSION_CLEAR]);
            if (rc == 0) {
                sqlite3_bind_int(s->st[ST_VERSION_SET], 1, v + 1);
                rc = st_exec(s, s->st[ST_VERSION_SET]);
            }
            if (rc < 0)
                chanc_error_set(err, rc, "%s: recording the version: %s", what,
                                sqlite3_errmsg(s->db));
        }
        if (rc == 0 && (rc = chat_store_tx_commit(s)) < 0)
            chanc_error_set(err, rc, "%s: commit: %s", what, sqlite3_errmsg(s->db));
        if (rc < 0) {
            chat_store_tx_rollback(s);
            return rc;
        }
        chanc_log(CHANC_LOG_INFO, "chat store: migrated to schema version %d", v + 1);
    }
}

int chat_store_open(const chat_store_options_t *opt, chat_store_t **out, chanc_error_t *err) {
    if (out)
        *out = NULL;
    if (!opt || !opt->path || !out)
        return chanc_error_set(err, CHANC_EINVAL, "chat_store_open: path and out are required");
    if (opt->session_ttl_ms < 0)
        return chanc_error_set(err, CHANC_EINVAL, "session_ttl_ms must not be negative");
    if (sodium_init() < 0)
        return chanc_error_set(err, CHANC_EIO, "libsodium failed to initialise");

    unsigned long long ops = opt->pwhash_opslimit ? opt->pwhash_opslimit
                                                  : crypto_pwhash_OPSLIMIT_INTERACTIVE;
    size_t mem = opt->pwhash_memlimit ? opt->pwhash_memlimit : crypto_pwhash_MEMLIMIT_INTERACTIVE;
    if (ops < crypto_pwhash_OPSLIMIT_MIN || ops > crypto_pwhash_OPSLIMIT_MAX ||
        mem < crypto_pwhash_MEMLIMIT_MIN || mem > crypto_pwhash_MEMLIMIT_MAX)
        return chanc_error_set(err, CHANC_EINVAL, "pwhash limits out of libsodium's range");

    chat_store_t *s = calloc(1, sizeof *s);
    if (!s)
        return chanc_error_set(err, CHANC_ENOMEM, "out of memory");
    s->clock = opt->clock ? *opt->clock : (chanc_clock_t){NULL, system_wall_ms, NULL};
    if (!s->clock.wall_ms) {
        s->clock.wall_ms = system_wall_ms;
        s->clock.ud = NULL;
    }
    s->opslimit = ops;
    s->memlimit = mem;
    s->session_ttl_ms = opt->session_ttl_ms ? opt->session_ttl_ms : DEFAULT_SESSION_TTL_MS;

    int rc = sqlite3_open_v2(opt->path, &s->db,
                             SQLITE_OPEN_CREATE | SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        rc = chanc_error_set(err, rc == SQLITE_NOMEM ? CHANC_ENOMEM : CHANC_EIO,
                             "cannot open %s: %s", opt->path,
                             s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);

    bool is_wal = false;
    if (strcmp(opt->path, ":memory:") != 0) {
        sqlite3_stmt *wal = NULL;
        rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &wal, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(wal);
        if (rc != SQLITE_ROW) {
            rc = chanc_error_set(err, map_sqlite(rc), "cannot open %s: %s", opt->path,
                                 sqlite3_errmsg(s->db));
            sqlite3_finalize(wal);
            goto fail;
        }
        const unsigned char *mode = sqlite3_column_text(wal, 0);
        is_wal = mode && strcmp((const char *)mode, "wal") == 0;
        if (!is_wal)
            chanc_log(CHANC_LOG_WARN, "chat store: %s: WAL unavailable, journal mode %s",
                      opt->path, mode ? (const char *)mode : "?");
        sqlite3_finalize(wal);
    }
    if ((rc = exec_const(s,
                         opt->sync_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL",
                         "setting synchronous", err)) < 0 ||
        (rc = exec_const(s, "PRAGMA foreign_keys=ON", "enabling foreign keys", err)) < 0 ||
        (rc = exec_const(s, "PRAGMA busy_timeout=5000", "setting busy_timeout", err)) < 0)
        goto fail;

    if ((rc = migrate(s, err)) < 0 || (rc = prepare_all(s, 0, err)) < 0)
        goto fail;
    if (is_wal && (rc = checkpointer_start(s, opt->path, opt->checkpoint_pages, err)) < 0)
        goto fail;

    *out = s;
    return 0;

fail:
    chat_store_close(s);
    return rc;
}

void chat_store_close(chat_store_t *s) {
    if (!s)
        return;
    checkpointer_stop(s);
    for (int i = 0; i < ST__COUNT; i++)
        sqlite3_finalize(s->st[i]);
    if (s->db && sqlite3_close(s->db) != SQLITE_OK)
        chanc_log(CHANC_LOG_ERROR, "chat store: close: %s", sqlite3_errmsg(s->db));
    free(s);
}

int chat_store_schema_version(chat_store_t *s) { return s ? s->version : 0; }

int64_t chat_store_now_ms(const chat_store_t *s) { return s->clock.wall_ms(s->clock.ud); }

/* ---- users ------------------------------------------------------------------ */

int chat_store_create_user_opt(chat_store_t *s, const char *username, const char *password,
                               int64_t *id_out) {
    if (!s || !chat_valid_username(username))
        return CHANC_EINVAL;
    char hash[crypto_pwhash_STRBYTES];
    if (password) {
        size_t n = strlen(password);
        if (n == 0)
            return CHANC_EINVAL;
        if (crypto_pwhash_str(hash, password, n, s->opslimit, s->memlimit) != 0)
            return CHANC_ENOMEM;
    } else {
        /* Not a valid hash: crypto_pwhash_str_verify never accepts it. */
        snprintf(hash, sizeof hash, "!unusable");
    }
    sqlite3_stmt *st = s->st[ST_USER_INSERT];
    bind_str(st, 1, username);
    bind_str(st, 2, hash);
    sqlite3_bind_int64(st, 3, chat_store_now_ms(s));
    int rc = st_exec(s, st);
    sodium_memzero(hash, sizeof hash);
    if (rc == 0 && id_out)
        *id_out = sqlite3_last_insert_rowid(s->db);
    return rc;
}

int chat_store_create_user(chat_store_t *s, const char *username, const char *password,
                           int64_t *id_out) {
    if (!password)
        return CHANC_EINVAL;
    return chat_store_create_user_opt(s, username, password, id_out);
}

/* Look a user up by name; with hash, also their password hash.
 * 0, CHANC_ENOTFOUND or an error. */
/* Step a bound single-row query: 0 with the row ready to read (the caller
 * reads its columns, then st_done), or CHANC_ENOTFOUND / an error with the
 * statement already released. */
static int step_row(chat_store_t *s, sqlite3_stmt *st) {
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        return 0;
    int res = rc == SQLITE_DONE ? CHANC_ENOTFOUND : sql_fail(s, st, rc);
    st_done(st);
    return res;
}

static int lookup_user(chat_store_t *s, const char *username, chat_user_t *out, char *hash,
                       size_t hash_size) {
    if (!chat_valid_username(username))
        return CHANC_ENOTFOUND;
    sqlite3_stmt *st = s->st[ST_USER_BY_NAME];
    bind_str(st, 1, username);
    int res = step_row(s, st);
    if (res < 0)
        return res;
    chat_user_t u = {.id = sqlite3_column_int64(st, 0)};
    if (!copy_col(u.username, sizeof u.username, st, 1) ||
        (hash && !copy_col(hash, hash_size, st, 2)))
        res = CHANC_EIO; /* a row the store could not have written */
    else if (out)
        *out = u;
    st_done(st);
    return res;
}

int chat_store_get_user(chat_store_t *s, const char *username, chat_user_t *out) {
    if (!s)
        return CHANC_EINVAL;
    return lookup_user(s, username, out, NULL, 0);
}

int chat_store_password_lookup(chat_store_t *s, const char *username, chat_user_t *out,
                               char hash[CHAT_PASSWORD_HASH_MAX], bool *known) {
    if (!s || !out || !hash || !known)
        return CHANC_EINVAL;
    _Static_assert(CHAT_PASSWORD_HASH_MAX >= crypto_pwhash_STRBYTES, "hash buffer");
    int rc = lookup_user(s, username ? username : "", out, hash, CHAT_PASSWORD_HASH_MAX);
    if (rc < 0 && rc != CHANC_ENOTFOUND)
        return rc;
    *known = rc == 0 && strncmp(hash, "$argon2", 7) == 0;
    if (*known)
        return 0;
    /* Unknown user, or one without a usable password: the dummy hash (made
     * on first need, so opening a store costs no hash), so that verifying
     * costs the same and answers no. */
    if (!s->dummy_hash[0] &&
        crypto_pwhash_str(s->dummy_hash, "chanc dummy password", 20, s->opslimit, s->memlimit) != 0) {
        s->dummy_hash[0] = '\0';
        return CHANC_ENOMEM;
    }
    memcpy(hash, s->dummy_hash, sizeof s->dummy_hash);
    memset(out, 0, sizeof *out);
    return 0;
}

bool chat_password_verify(const char *hash, const char *password) {
    if (!password)
        password = "";
    return crypto_pwhash_str_verify(hash, password, strlen(password)) == 0;
}

int chat_store_check_password(chat_store_t *s, const char *username, const char *password,
                              chat_user_t *out) {
    char hash[CHAT_PASSWORD_HASH_MAX];
    chat_user_t u;
    bool known = false;
    int rc = chat_store_password_lookup(s, username, &u, hash, &known);
    if (rc < 0)
        return rc;
    bool ok = chat_password_verify(hash, password);
    sodium_memzero(hash, sizeof hash);
    if (!known || !ok)
        return CHANC_EDENIED;
    if (out)
        *out = u;
    return 0;
}

/* ---- sessions --------------------------------------------------------------- */

int chat_store_create_session(chat_store_t *s, int64_t user_id,
                              char token_out[CHAT_SESSION_TOKEN_LEN + 1]) {
    if (!s || !token_out)
        return CHANC_EINVAL;
    int64_t now = chat_store_now_ms(s);
    /* Drop expired sessions now and then: here, on each login. */
    sqlite3_bind_int64(s->st[ST_SESSION_PURGE], 1, now);
    int rc = st_exec(s, s->st[ST_SESSION_PURGE]);
    if (rc < 0)
        return rc;

    unsigned char raw[CHAT_SESSION_TOKEN_LEN / 2];
    char token[CHAT_SESSION_TOKEN_LEN + 1];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(token, sizeof token, raw, sizeof raw);
    sodium_memzero(raw, sizeof raw);

    sqlite3_stmt *st = s->st[ST_SESSION_INSERT];
    bind_str(st, 1, token);
    sqlite3_bind_int64(st, 2, user_id);
    sqlite3_bind_int64(st, 3, now > INT64_MAX - s->session_ttl_ms ? INT64_MAX
                                                                  : now + s->session_ttl_ms);
    rc = st_exec(s, st);
    if (rc == 0)
        memcpy(token_out, token, sizeof token);
    sodium_memzero(token, sizeof token);
    return rc;
}

int chat_store_session_user(chat_store_t *s, const char *token, chat_user_t *out) {
    if (!s)
        return CHANC_EINVAL;
    if (!valid_token(token))
        return CHANC_ENOTFOUND;
    sqlite3_stmt *st = s->st[ST_SESSION_USER];
    bind_str(st, 1, token);
    int res = step_row(s, st);
    if (res < 0)
        return res;
    chat_user_t u = {.id = sqlite3_column_int64(st, 0)};
    if (sqlite3_column_int64(st, 2) <= chat_store_now_ms(s))
        res = CHANC_ENOTFOUND; /* expired */
    else if (!copy_col(u.username, sizeof u.username, st, 1))
        res = CHANC_EIO;
    else if (out)
        *out = u;
    st_done(st);
    return res;
}

int chat_store_delete_session(chat_store_t *s, const char *token) {
    if (!s)
        return CHANC_EINVAL;
    if (!valid_token(token))
        return CHANC_ENOTFOUND;
    sqlite3_stmt *st = s->st[ST_SESSION_DELETE];
    bind_str(st, 1, token);
    int rc = st_exec(s, st);
    if (rc == 0 && sqlite3_changes(s->db) == 0)
        rc = CHANC_ENOTFOUND;
    return rc;
}

/* ---- rooms and members --------------------------------------------------------- */

int chat_store_create_room(chat_store_t *s, const char *name, const char *slug,
                           int64_t *id_out) {
    if (!s || !valid_room_name(name) || !chat_valid_slug(slug))
        return CHANC_EINVAL;
    sqlite3_stmt *st = s->st[ST_ROOM_INSERT];
    bind_str(st, 1, name);
    bind_str(st, 2, slug);
    sqlite3_bind_int64(st, 3, chat_store_now_ms(s));
    int rc = st_exec(s, st);
    if (rc == 0 && id_out)
        *id_out = sqlite3_last_insert_rowid(s->db);
    return rc;
}

/* Step a room query (id, name, slug, created_at) and fill out. */
static int read_room(chat_store_t *s, sqlite3_stmt *st, chat_room_t *out) {
    int res = step_row(s, st);
    if (res < 0)
        return res;
    chat_room_t r = {.id = sqlite3_column_int64(st, 0), .created_at_ms = sqlite3_column_int64(st, 3)};
    if (!copy_col(r.name, sizeof r.name, st, 1) || !copy_col(r.slug, sizeof r.slug, st, 2))
        res = CHANC_EIO;
    else if (out)
        *out = r;
    st_done(st);
    return res;
}

int chat_store_get_room(chat_store_t *s, int64_t id, chat_room_t *out) {
    if (!s)
        return CHANC_EINVAL;
    sqlite3_stmt *st = s->st[ST_ROOM_BY_ID];
    sqlite3_bind_int64(st, 1, id);
    return read_room(s, st, out);
}

int chat_store_room_by_slug(chat_store_t *s, const char *slug, chat_room_t *out) {
    if (!s)
        return CHANC_EINVAL;
    if (!chat_valid_slug(slug))
        return CHANC_ENOTFOUND;
    sqlite3_stmt *st = s->st[ST_ROOM_BY_SLUG];
    bind_str(st, 1, slug);
    return read_room(s, st, out);
}

/* Step a bound statement, turning each row into a JSON object with
 * row_fn (NULL on a bad row or OOM), into a new array *out. */
static int rows_to_array(chat_store_t *s, sqlite3_stmt *st, json_t *(*row_fn)(sqlite3_stmt *),
                         json_t **out) {
    *out = NULL;
    json_t *arr = json_array();
    int rc = SQLITE_DONE, res = arr ? 0 : CHANC_ENOMEM;
    while (res == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *row = row_fn(st);
        if (!row) /* a NULL column the store cannot have written, or OOM */
            res = sqlite3_errcode(s->db) == SQLITE_NOMEM ? CHANC_ENOMEM : CHANC_EIO;
        else if (json_array_append_new(arr, row) != 0)
            res = CHANC_ENOMEM;
    }
    if (res == 0 && rc != SQLITE_DONE)
        res = sql_fail(s, st, rc);
    st_done(st);
    if (res < 0) {
        json_decref(arr);
        return res;
    }
    *out = arr;
    return 0;
}

static json_t *room_row(sqlite3_stmt *st) {
    const char *name = (const char *)sqlite3_column_text(st, 1);
    int name_len = sqlite3_column_bytes(st, 1);
    const char *slug = (const char *)sqlite3_column_text(st, 2);
    int slug_len = sqlite3_column_bytes(st, 2);
    if (!name || !slug)
        return NULL;
    return json_pack("{s:I, s:s%, s:s%}", "id", (json_int_t)sqlite3_column_int64(st, 0), "name",
                     name, (size_t)name_len, "slug", slug, (size_t)slug_len);
}

int chat_store_list_rooms(chat_store_t *s, json_t **out) {
    if (!s || !out)
        return CHANC_EINVAL;
    return rows_to_array(s, s->st[ST_ROOM_LIST], room_row, out);
}

int chat_store_add_member(chat_store_t *s, int64_t room_id, int64_t user_id) {
    if (!s)
        return CHANC_EINVAL;
    sqlite3_stmt *st = s->st[ST_MEMBER_INSERT];
    sqlite3_bind_int64(st, 1, room_id);
    sqlite3_bind_int64(st, 2, user_id);
    return st_exec(s, st);
}

int chat_store_is_member(chat_store_t *s, int64_t room_id, int64_t user_id, bool *out) {
    if (!s || !out)
        return CHANC_EINVAL;
    sqlite3_stmt *st = s->st[ST_MEMBER_CHECK];
    sqlite3_bind_int64(st, 1, room_id);
    sqlite3_bind_int64(st, 2, user_id);
    int rc = sqlite3_step(st);
    int res = 0;
    if (rc == SQLITE_ROW)
        *out = true;
    else if (rc == SQLITE_DONE)
        *out = false;
    else
        res = sql_fail(s, st, rc);
    st_done(st);
    return res;
}

/* ---- messages ------------------------------------------------------------------- */

int chat_store_add_message(chat_store_t *s, int64_t room_id, int64_t user_id, const char *text,
                           size_t len, int64_t ts_ms, int64_t *id_out) {
    if (!s || !text || len == 0 || len > (size_t)CHAT_MESSAGE_MAX * 4)
        return CHANC_EINVAL;
    long chars = chat_utf8_length(text, len);
    if (chars < 1 || chars > CHAT_MESSAGE_MAX)
        return CHANC_EINVAL;
    sqlite3_stmt *st = s->st[ST_MESSAGE_INSERT];
    sqlite3_bind_int64(st, 1, room_id);
    sqlite3_bind_int64(st, 2, user_id);
    sqlite3_bind_text(st, 3, text, (int)len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, ts_ms);
    /* Autocommit: the row is committed when the step returns (unless the
     * caller holds a transaction, as the fixture loader does). */
    int rc = st_exec(s, st);
    if (rc == 0 && id_out)
        *id_out = sqlite3_last_insert_rowid(s->db);
    return rc;
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

int chat_store_history(chat_store_t *s, int64_t room_id, int limit, json_t **out) {
    if (!s || !out || limit < 0)
        return CHANC_EINVAL;
    sqlite3_stmt *st = s->st[ST_HISTORY];
    sqlite3_bind_int64(st, 1, room_id);
    sqlite3_bind_int(st, 2, limit);
    return rows_to_array(s, st, history_row, out);
}

/* Step a bound one-row, one-integer query (a COUNT) into *out. */
static int count_query(chat_store_t *s, sqlite3_stmt *st, int64_t *out) {
    int rc = sqlite3_step(st);
    int res = 0;
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    else
        res = sql_fail(s, st, rc);
    st_done(st);
    return res;
}

int chat_store_message_count(chat_store_t *s, int64_t room_id, int64_t *out) {
    if (!s || !out)
        return CHANC_EINVAL;
    sqlite3_bind_int64(s->st[ST_MESSAGE_COUNT], 1, room_id);
    return count_query(s, s->st[ST_MESSAGE_COUNT], out);
}

int chat_store_user_count(chat_store_t *s, int64_t *out) {
    if (!s || !out)
        return CHANC_EINVAL;
    return count_query(s, s->st[ST_USER_COUNT], out);
}
