/* chat-server as a child process for integration tests: a scratch
 * database (SQLite file; a PostgreSQL schema when CHAT_TEST_PG is set), spawn on a free port (read from its "listening on" line), stop
 * with a signal, log in over HTTP. CHAT_SERVER_PATH and CHANC_FIXTURES_DIR
 * come from the test target's compile definitions. */
#ifndef SERVER_PROC_H
#define SERVER_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "chat_test.h"

typedef struct server_proc {
    pid_t pid;          /* 0 when not running */
    int port;
    chat_test_db_t store; /* --db store.url */
    const char *layer;  /* --layer URL; NULL: the default (memory) */
    int workers;        /* > 1: --workers N on the fixed port p->port
                         * (redis_proc_free_port finds one) */
    bool metrics;       /* --metrics-allow 127.0.0.1/32,::1/128: GET /metrics
                         * answers this machine's clients */
    bool no_seed;       /* no --seed: what a new database gets without a
                         * seeding flag */
    const char *const *args; /* more arguments (NULL-terminated; may be NULL),
                         * after the others: a later flag wins */
    const char *stderr_path; /* chat-server's stderr (its log) into this file
                         * (truncated); NULL: inherited */
} server_proc_t;

/* Make the scratch database (tag: for the reader; unused); 0 or -1. */
int server_proc_init(server_proc_t *p, const char *tag);
/* Spawn chat-server on a free port with --db, --seed fixtures/chat.json
 * (unless p->no_seed), --log-level warn, --pwhash <pwhash> and p->args,
 * behind `wrapper` (space-separated
 * command, e.g. valgrind and its flags; NULL: none). Waits for its
 * "listening on" line (one per worker). With p->layer, also --layer
 * p->layer. 0 or -1 (printed). */
int server_proc_start(server_proc_t *p, const char *pwhash, const char *wrapper);
/* Send sig and reap; the wait status. */
int server_proc_stop(server_proc_t *p, int sig);
/* Kill what still runs (SIGKILL), remove the scratch database. */
void server_proc_dispose(server_proc_t *p);
/* POST /login as user to 127.0.0.1:port: the HTTP status; the Set-Cookie
 * value into set_cookie (may be NULL) when there is one, else "". */
int server_proc_login_status(int port, const char *user, const char *password, char *set_cookie,
                             size_t n, int timeout_ms);
/* POST /login as user; "sessionid=…" into cookie (asserts 302). */
void server_proc_login(const server_proc_t *p, const char *user, const char *password,
                       char *cookie, size_t len, int timeout_ms);

#endif
