/* chat.durability (label integration): a chat message whose `complete` the
 * sender received survives kill -9 of chat-server (DESIGN.md, "Guarantees").
 *
 * Each round starts chat-server on the same database, logs three users in
 * (POST /login), connects them to room 1 and lets them send numbered chat
 * messages ("d<user>-<round>-<seq>") as fast as they can, a few in flight
 * per sender, counting the `complete` frames (one per message, in order per
 * connection). Once every sender has at least one complete and k completes
 * arrived in all (k drawn from a seeded PRNG: the randomness is of timing
 * only), the server is killed with SIGKILL. After 20 such rounds one more
 * ends with SIGTERM, which must exit 0.
 *
 * After every restart (and at the end) the SQLite file is read directly:
 * every message whose complete arrived is there exactly once, every
 * stored test message was sent, and each sender's messages are stored in
 * the order they were sent. Messages without a complete may or may not be
 * there, but never twice.
 *
 * CHANC_DURABILITY_SEED=N replays a run's timing; CHANC_DURABILITY_ROUNDS=N
 * changes the number of kill -9 rounds. Nothing sleeps: the threads wait
 * on sockets and a condition variable, each bounded by a timeout that only
 * catches a hung server. The senders go as fast as the server lets them,
 * far over the default rate limit, so the server runs with
 * CHAT_RATE_LIMIT=off: this test is about kills, not refusals. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <chanc/testing.h>
#include <chanc/ws_client.h>
#include <sqlite3.h>

#include "server_proc.h"

#define NSENDERS 3
#define MAX_ROUNDS 64
#define WINDOW 4          /* messages in flight per sender */
#define MAX_KILL_AFTER 400 /* k is drawn from [NSENDERS, MAX_KILL_AFTER] */
#define WAIT_MS 30000      /* bounds every wait; only a hung server reaches it */

static const struct {
    const char *name, *password;
} users[NSENDERS] = {
    {"testuser", "testpass123"},
    {"alice", "alice-pass-1"},
    {"bob", "bob-pass-1"},
};

/* ---- a tiny seeded PRNG (splitmix64), so a run's timing can be replayed -- */

static uint64_t prng_state;
static uint64_t prng_next(void) {
    uint64_t z = (prng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* ---- the server process -------------------------------------------------- */

static server_proc_t server;

static int start_server(void) { return server_proc_start(&server, "min", NULL); }

static int stop_server(int sig) { return server_proc_stop(&server, sig); }

/* POST /login; the Cookie header line for the session. */
static void login(const char *user, const char *password, char *header, size_t len) {
    char cookie[200];
    server_proc_login(&server, user, password, cookie, sizeof cookie, WAIT_MS);
    snprintf(header, len, "Cookie: %s", cookie);
}

/* ---- the senders ----------------------------------------------------------- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

typedef struct sender {
    int index, round;
    chanc_ws_client_t *ws;
    pthread_t thread;
    /* Per round, under mu: messages sent, completes received. */
    long sent[MAX_ROUNDS], completed[MAX_ROUNDS];
    char error[256]; /* an unexpected frame, under mu */
} sender_t;

static sender_t senders[NSENDERS];

static void *send_loop(void *arg) {
    sender_t *s = arg;
    const char *name = users[s->index].name;
    long sent = 0, completed = 0;
    for (;;) {
        while (sent - completed < WINDOW) {
            char text[96];
            snprintf(text, sizeof text, "{\"action\":\"chat\",\"payload\":\"d%s-%d-%ld\"}", name,
                     s->round, sent);
            /* Counted before the send: a frame half-written when the server
             * dies may still have arrived, and must then be accounted for. */
            pthread_mutex_lock(&mu);
            s->sent[s->round] = ++sent;
            pthread_mutex_unlock(&mu);
            if (chanc_ws_client_send_text(s->ws, text) < 0)
                return NULL;
        }
        chanc_ws_frame_t f;
        if (chanc_ws_client_receive_frame(s->ws, &f, WAIT_MS) < 0) {
            if (!chanc_ws_client_eof(s->ws) && !chanc_ws_client_closed(s->ws)) {
                pthread_mutex_lock(&mu);
                snprintf(s->error, sizeof s->error, "%s: no frame for %d ms", name, WAIT_MS);
                pthread_cond_broadcast(&cv);
                pthread_mutex_unlock(&mu);
            }
            return NULL;
        }
        if (f.opcode == CHANC_WS_OP_CLOSE) {
            chanc_ws_frame_dispose(&f);
            return NULL;
        }
        json_t *j =
            f.opcode == CHANC_WS_OP_TEXT ? json_loadb((const char *)f.data, f.len, 0, NULL) : NULL;
        const char *action = json_string_value(json_object_get(j, "action"));
        if (action && strcmp(action, "complete") == 0) {
            pthread_mutex_lock(&mu);
            s->completed[s->round] = ++completed;
            pthread_cond_broadcast(&cv);
            pthread_mutex_unlock(&mu);
        } else if (!action || strcmp(action, "error") == 0) {
            pthread_mutex_lock(&mu);
            snprintf(s->error, sizeof s->error, "%s: unexpected frame %.*s", name,
                     (int)(f.len > 200 ? 200 : f.len), (const char *)f.data);
            pthread_cond_broadcast(&cv);
            pthread_mutex_unlock(&mu);
        }
        json_decref(j);
        chanc_ws_frame_dispose(&f);
    }
}

/* Connect the senders to room 1 and read up to their history frame. */
static void connect_senders(int round) {
    for (int i = 0; i < NSENDERS; i++) {
        char cookie[240];
        login(users[i].name, users[i].password, cookie, sizeof cookie);
        const char *headers[] = {cookie, NULL};
        int status = 0;
        sender_t *s = &senders[i];
        s->index = i;
        s->round = round;
        s->ws = chanc_ws_client_connect(
            server.port, "/ws/chat/1/",
            &(chanc_ws_client_options_t){.headers = headers, .timeout_ms = WAIT_MS}, &status);
        if (!s->ws)
            fail_msg("round %d: %s could not connect (HTTP %d)", round, users[i].name, status);
        json_t *auth = chanc_ws_client_receive_json(s->ws, true, WAIT_MS);
        assert_non_null(auth);
        assert_string_equal(json_string_value(json_object_get(auth, "action")), "authentication");
        json_decref(auth);
        json_t *history = chanc_ws_client_receive_action(s->ws, "history", WAIT_MS);
        assert_non_null(history);
        json_decref(history);
    }
}

/* Wait until every sender has a complete and `k` completes arrived in all;
 * fails on a sender's error or a hung server. */
static void wait_for_completes(int round, long k) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&mu);
    for (;;) {
        long total = 0;
        bool each = true;
        for (int i = 0; i < NSENDERS; i++) {
            if (senders[i].error[0]) {
                pthread_mutex_unlock(&mu);
                fail_msg("round %d: %s", round, senders[i].error);
            }
            total += senders[i].completed[round];
            each = each && senders[i].completed[round] > 0;
        }
        if (each && total >= k)
            break;
        if (pthread_cond_timedwait(&cv, &mu, &deadline) == ETIMEDOUT) {
            pthread_mutex_unlock(&mu);
            fail_msg("round %d: only %ld of %ld completes after %d ms", round, total, k, WAIT_MS);
        }
    }
    pthread_mutex_unlock(&mu);
}

/* ---- the check against the database file ---------------------------------- */

static long checked_last; /* completed messages checked in the last pass */
static long extra_last;   /* stored without their complete (in flight at the kill) */

static void check_database(int rounds) {
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(server.store.url, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, WAIT_MS);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT u.username, m.text FROM messages m "
                                        "JOIN users u ON u.id = m.user_id "
                                        "ORDER BY m.created_at, m.id",
                                        -1, &st, NULL),
                     SQLITE_OK);
    /* Per sender and round: how many stored; the last (round, seq) seen. */
    static long stored[NSENDERS][MAX_ROUNDS];
    memset(stored, 0, sizeof stored);
    int last_round[NSENDERS];
    long last_seq[NSENDERS];
    for (int i = 0; i < NSENDERS; i++)
        last_round[i] = -1, last_seq[i] = -1;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *user = (const char *)sqlite3_column_text(st, 0);
        const char *text = (const char *)sqlite3_column_text(st, 1);
        int i = 0;
        while (i < NSENDERS && strcmp(user, users[i].name) != 0)
            i++;
        char name[32];
        int round = -1;
        long seq = -1;
        char tail;
        if (i == NSENDERS || !text || text[0] != 'd' ||
            sscanf(text + 1, "%31[a-z]-%d-%ld%c", name, &round, &seq, &tail) != 3)
            continue; /* not a durability message (the fixtures' own) */
        if (strcmp(name, user) != 0)
            fail_msg("message \"%s\" stored as %s's", text, user);
        if (round < 0 || round >= rounds || seq < 0 || seq >= senders[i].sent[round])
            fail_msg("message \"%s\" was never sent (round %d: %ld sent)", text, round,
                     round >= 0 && round < rounds ? senders[i].sent[round] : 0);
        if (round < last_round[i] || (round == last_round[i] && seq <= last_seq[i]))
            fail_msg("%s's message \"%s\" stored after d%s-%d-%ld: %s", user, text, user,
                     last_round[i], last_seq[i],
                     round == last_round[i] && seq == last_seq[i] ? "stored twice"
                                                                  : "out of order");
        last_round[i] = round;
        last_seq[i] = seq;
        stored[i][round]++;
    }
    assert_int_equal(rc, SQLITE_DONE);
    sqlite3_finalize(st);
    sqlite3_close(db);

    /* Stored in strictly increasing order, so once each; and the first
     * `completed` of each round must all be there: every seq below it. */
    long checked = 0, extra = 0;
    for (int i = 0; i < NSENDERS; i++)
        for (int r = 0; r < rounds; r++) {
            long c = senders[i].completed[r];
            if (stored[i][r] < c)
                fail_msg("lost: %s round %d: %ld completes received, %ld stored", users[i].name,
                         r, c, stored[i][r]);
            checked += c;
            extra += stored[i][r] - c;
        }
    checked_last = checked;
    extra_last = extra;
}

/* The completed messages of a round are its first `completed` ones: each of
 * them, by its text, exactly once. */
static void check_prefixes(int rounds) {
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(server.store.url, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, WAIT_MS);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT count(*) FROM messages m "
                                        "JOIN users u ON u.id = m.user_id "
                                        "WHERE u.username = ?1 AND m.text = ?2",
                                        -1, &st, NULL),
                     SQLITE_OK);
    for (int i = 0; i < NSENDERS; i++)
        for (int r = 0; r < rounds; r++)
            for (long q = 0; q < senders[i].completed[r]; q++) {
                char text[96];
                snprintf(text, sizeof text, "d%s-%d-%ld", users[i].name, r, q);
                sqlite3_bind_text(st, 1, users[i].name, -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 2, text, -1, SQLITE_TRANSIENT);
                assert_int_equal(sqlite3_step(st), SQLITE_ROW);
                long n = (long)sqlite3_column_int64(st, 0);
                if (n != 1)
                    fail_msg("\"%s\" completed but stored %ld times", text, n);
                sqlite3_reset(st);
            }
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* ---- one round ---------------------------------------------------------- */

static void run_round(int round, int sig) {
    long k = NSENDERS + (long)(prng_next() % (MAX_KILL_AFTER - NSENDERS + 1));
    connect_senders(round);
    for (int i = 0; i < NSENDERS; i++)
        assert_int_equal(pthread_create(&senders[i].thread, NULL, send_loop, &senders[i]), 0);
    wait_for_completes(round, k);
    int status = stop_server(sig);
    for (int i = 0; i < NSENDERS; i++) {
        pthread_join(senders[i].thread, NULL);
        chanc_ws_client_free(senders[i].ws);
        senders[i].ws = NULL;
        if (senders[i].error[0])
            fail_msg("round %d: %s", round, senders[i].error);
    }
    if (sig == SIGKILL) {
        if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
            fail_msg("round %d: chat-server did not die of SIGKILL (status %d)", round, status);
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fail_msg("round %d: chat-server did not exit 0 on SIGTERM (status %d)", round, status);
    }
    long sent = 0, completed = 0;
    for (int i = 0; i < NSENDERS; i++)
        sent += senders[i].sent[round], completed += senders[i].completed[round];
    printf("round %2d: %-7s after %3ld completes (k=%ld): %ld sent, %ld completed\n", round,
           sig == SIGKILL ? "SIGKILL" : "SIGTERM", completed, k, sent, completed);
    fflush(stdout);
}

static void test_kill9_loses_no_completed_message(void **state) {
    (void)state;
    const char *env_seed = getenv("CHANC_DURABILITY_SEED");
    uint64_t seed = env_seed && *env_seed ? strtoull(env_seed, NULL, 10)
                                          : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16);
    prng_state = seed;
    const char *env_rounds = getenv("CHANC_DURABILITY_ROUNDS");
    int kills = env_rounds && *env_rounds ? atoi(env_rounds) : 20;
    if (kills < 1 || kills > MAX_ROUNDS - 1)
        kills = 20;
    printf("chat.durability: seed %" PRIu64 " (CHANC_DURABILITY_SEED=%" PRIu64
           " replays the timing), %d kill -9 rounds + 1 SIGTERM round\n",
           seed, seed, kills);
    fflush(stdout);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int round = 0; round <= kills; round++) {
        assert_int_equal(start_server(), 0);
        if (round > 0) {
            /* The restarted server recovered the database: check it while
             * it runs (a second connection, as any reader would). */
            check_database(round);
            check_prefixes(round);
        }
        run_round(round, round < kills ? SIGKILL : SIGTERM);
    }
    /* After the clean shutdown, straight from the file. */
    check_database(kills + 1);
    check_prefixes(kills + 1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long sent = 0;
    for (int i = 0; i < NSENDERS; i++)
        for (int r = 0; r <= kills; r++)
            sent += senders[i].sent[r];
    printf("chat.durability: %d kill -9 rounds + 1 SIGTERM round, %ld completed messages "
           "checked (each present exactly once, in order per sender), %ld sent, %ld stored "
           "without their complete, %.1f s\n",
           kills, checked_last, sent, extra_last,
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
}

static int group_setup(void **state) {
    (void)state;
    return server_proc_init(&server, "durability");
}

static int group_teardown(void **state) {
    (void)state;
    server_proc_dispose(&server);
    return 0;
}

int main(void) {
    setenv("CHAT_RATE_LIMIT", "off", 1); /* inherited by chat-server */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill9_loses_no_completed_message),
    };
    return chanc_run_group_tests_name("chat.durability", tests, group_setup, group_teardown);
}
