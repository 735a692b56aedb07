/* chat.live (label integration): the chat tests against a real chat-server
 * process over loopback sockets. The group setup starts chat-server on a
 * free port with a fresh database seeded from fixtures/chat.json; the
 * tests use the same communicator calls as in process, made from
 * chanc_test_create_remote; the group teardown sends SIGTERM and requires
 * exit status 0. */
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chanc/testing.h>

#include "ws_client.h"

extern char **environ;

#ifndef CHAT_SERVER_PATH
#error "CHAT_SERVER_PATH must name the chat-server binary"
#endif

static struct {
    pid_t pid;
    int port;
    char dir[256], db[300];
} server;

static int start_server(void **state) {
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(server.dir, sizeof server.dir, "%s/chanc-live-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(server.dir))
        return -1;
    snprintf(server.db, sizeof server.db, "%s/live.db", server.dir);
    int out[2];
    if (pipe(out) < 0)
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    /* CHAT_LIVE_WRAPPER (e.g. valgrind and its flags, space-separated)
     * runs the server under a tool; the memcheck variant of this test. */
    char *argv[32];
    size_t argc = 0;
    char *wrapper = getenv("CHAT_LIVE_WRAPPER") ? strdup(getenv("CHAT_LIVE_WRAPPER")) : NULL;
    for (char *save = NULL, *w = wrapper ? strtok_r(wrapper, " ", &save) : NULL; w && argc < 20;
         w = strtok_r(NULL, " ", &save))
        argv[argc++] = w;
    char *server_args[] = {CHAT_SERVER_PATH, "--port", "0", "--db", server.db, "--seed",
                           CHANC_FIXTURES_DIR "/chat.json", "--log-level", "warn", "--pwhash",
                           getenv("CHAT_LIVE_WRAPPER") ? "min" : "interactive", NULL};
    for (size_t i = 0; server_args[i]; i++)
        argv[argc++] = server_args[i];
    argv[argc] = NULL;
    int rc = posix_spawnp(&server.pid, argv[0], &fa, NULL, argv, environ);
    free(wrapper);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    if (rc != 0) {
        close(out[0]);
        fprintf(stderr, "chat.live: cannot start %s: %s\n", CHAT_SERVER_PATH, strerror(rc));
        return -1;
    }
    /* The server prints "listening on http://127.0.0.1:PORT/" once it
     * accepts connections (it seeds first). */
    FILE *f = fdopen(out[0], "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "listening on http://%*[^:]:%d/", &server.port) == 1)
            break;
    if (f)
        fclose(f);
    if (server.port <= 0) {
        fprintf(stderr, "chat.live: chat-server did not report its port\n");
        kill(server.pid, SIGKILL);
        waitpid(server.pid, NULL, 0);
        return -1;
    }
    return 0;
}

static int stop_server(void **state) {
    (void)state;
    int status = 0;
    kill(server.pid, SIGTERM);
    while (waitpid(server.pid, &status, 0) < 0 && errno == EINTR)
        ;
    static const char *const sfx[] = {"", "-wal", "-shm"};
    char p[320];
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", server.db, sfx[i]);
        unlink(p);
    }
    rmdir(server.dir);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "chat.live: chat-server did not exit 0 on SIGTERM (status %d%s)\n", status,
                WIFEXITED(status) && WEXITSTATUS(status) == 99 ? ": valgrind found errors" : "");
        return -1;
    }
    return 0;
}

/* Log in through POST /login; the Cookie header value for the session. */
static void login(const char *user, const char *password, char *cookie, size_t len) {
    char req[512], value[200];
    int body = snprintf(value, sizeof value, "username=%s&password=%s", user, password);
    int n = snprintf(req, sizeof req,
                     "POST /login HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                     "Content-Type: application/x-www-form-urlencoded\r\n"
                     "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                     server.port, body, value);
    http_resp_t r;
    assert_int_equal(http_exchange(server.port, req, (size_t)n, false, &r, 10000), 0);
    assert_int_equal(r.status, 302);
    char set[200];
    assert_non_null(http_header(&r, "Set-Cookie", set, sizeof set));
    set[strcspn(set, ";")] = '\0'; /* "sessionid=…" */
    snprintf(cookie, len, "%s", set);
    http_resp_dispose(&r);
}

typedef struct live {
    chanc_test_t *test;
    long long room_id;
} live_t;

static int live_setup(void **state) {
    live_t *t = calloc(1, sizeof *t);
    const char *quiet = getenv("CHAT_LIVE_QUIET_MS");
    t->test = chanc_test_create_remote(&(chanc_test_remote_options_t){
        .port = server.port, .quiet_ms = quiet ? strtoull(quiet, NULL, 10) : 0});
    t->room_id = 1; /* General */
    char cookie[200];
    login("testuser", "testpass123", cookie, sizeof cookie);
    chanc_test_set_default_header(t->test, "Cookie", cookie);
    *state = t;
    return 0;
}

static int live_teardown(void **state) {
    live_t *t = *state;
    chanc_test_destroy(t->test);
    free(t);
    return 0;
}

static chanc_communicator_t *member(live_t *t, const char *user, const char *password) {
    char cookie[200];
    login(user, password, cookie, sizeof cookie);
    chanc_communicator_t *c = chanc_test_communicator(t->test, "/ws/chat/%lld/", t->room_id);
    chanc_communicator_set_header(c, "Cookie", cookie);
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    json_decref(chanc_communicator_receive_all_json(c, 5000));
    return c;
}

/* ---- the seed's two tests, unchanged but for the fixture ------------------ */

static void test_connect_and_receive_history(void **state) {
    live_t *t = *state;
    chanc_communicator_t *c = chanc_test_communicator(t->test, "/ws/chat/%lld/", t->room_id);
    assert_true(chanc_communicator_connect(c, 5000));
    chanc_assert_authenticated_status_ok(c);
    json_t *msgs = chanc_communicator_receive_all_json(c, 5000);
    assert_true(json_array_size(msgs) >= 1);
    json_t *join = chanc_json_find(msgs, "{\"action\":\"user_joined\"}");
    assert_non_null(join);
    assert_string_equal(chanc_json_str(join, "/payload/username"), "testuser");
    json_decref(msgs);
    chanc_communicator_disconnect(c);
}

static void test_chat_message(void **state) {
    live_t *t = *state;
    chanc_communicator_t *c = chanc_test_communicator(t->test, "/ws/chat/%lld/", t->room_id);
    assert_true(chanc_communicator_connect(c, 5000));
    chanc_assert_authenticated_status_ok(c);
    json_decref(chanc_communicator_receive_all_json(c, 5000));
    chanc_communicator_send_message(c, &(chanc_message_type_t){.action = "chat"},
                                    json_string("Hello everyone!"));
    json_t *msgs = chanc_communicator_receive_all_json(c, 5000);
    assert_int_equal(json_array_size(msgs), 1);
    assert_string_equal(chanc_json_str(msgs, "/0/action"), "chat");
    assert_string_equal(chanc_json_str(msgs, "/0/payload"), "Hello everyone!");
    json_decref(msgs);
    chanc_communicator_disconnect(c);
}

/* ---- several members over sockets ---------------------------------------- */

static void test_three_members_exchange_with_flags(void **state) {
    live_t *t = *state;
    chanc_communicator_t *alice = member(t, "alice", "alice-pass-1");
    chanc_communicator_t *bob = member(t, "bob", "bob-pass-1");
    chanc_communicator_t *carol = member(t, "carol", "carol-pass-1");
    json_decref(chanc_communicator_receive_all_json(alice, 5000)); /* bob, carol joined */
    json_decref(chanc_communicator_receive_all_json(bob, 5000));

    chanc_communicator_send_message(bob, &(chanc_message_type_t){.action = "chat"},
                                    json_string("over a real socket"));
    chanc_assert_receive_match(bob, "{\"action\":\"chat\",\"payload\":\"over a real socket\","
                                    "\"username\":\"bob\",\"is_mine\":true,\"is_current\":true}");
    chanc_assert_receive_match(alice, "{\"action\":\"chat\",\"username\":\"bob\",\"is_mine\":false}");
    chanc_assert_receive_match(carol, "{\"action\":\"chat\",\"username\":\"bob\",\"is_mine\":false}");

    chanc_communicator_disconnect(carol);
    chanc_assert_receive_match(alice, "{\"action\":\"user_left\",\"payload\":{\"username\":\"carol\"}}");
    chanc_assert_receive_match(bob, "{\"action\":\"user_left\",\"payload\":{\"username\":\"carol\"}}");
}

static void test_refusals_over_a_socket(void **state) {
    live_t *t = *state;
    chanc_communicator_t *missing = chanc_test_communicator(t->test, "/ws/chat/424242/");
    chanc_assert_connect(missing);
    chanc_assert_authenticated_status(missing, 404);
    chanc_assert_closed(missing, 4404);

    chanc_communicator_t *anon = chanc_test_communicator(t->test, "/ws/chat/1/");
    chanc_communicator_set_header(anon, "Cookie", "sessionid=forged");
    chanc_assert_connect(anon);
    chanc_assert_authenticated_status(anon, 403);
    chanc_assert_closed(anon, 4403);

    chanc_communicator_t *nowhere = chanc_test_communicator(t->test, "/ws/nowhere/");
    assert_false(chanc_communicator_connect(nowhere, 5000));
    assert_int_equal(chanc_communicator_close_code(nowhere), 4404);

    chanc_communicator_t *foreign = chanc_test_communicator(t->test, "/ws/chat/1/");
    chanc_communicator_set_header(foreign, "Origin", "http://evil.example");
    assert_false(chanc_communicator_connect(foreign, 5000));
    assert_int_equal(chanc_communicator_close_code(foreign), 4403);
}

static void test_bad_input_is_answered_and_others_are_unaffected(void **state) {
    live_t *t = *state;
    chanc_communicator_t *alice = member(t, "alice", "alice-pass-1");
    chanc_communicator_t *c = chanc_test_communicator(t->test, "/ws/chat/%lld/", t->room_id);
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    json_decref(chanc_communicator_receive_all_json(c, 5000));
    json_decref(chanc_communicator_receive_all_json(alice, 5000));
    chanc_communicator_send_text(c, "{not json");
    chanc_assert_receive_match(c, "{\"action\":\"error\",\"payload\":[{\"type\":\"json_invalid\"}]}");
    chanc_communicator_send_text(c, "{\"action\":\"chat\",\"payload\":\"\"}");
    chanc_assert_receive_match(c, "{\"action\":\"error\",\"payload\":[{\"type\":\"string_too_short\"}]}");
    chanc_communicator_send_raw(c, "\xff\xfe", 2, false); /* invalid UTF-8 */
    chanc_assert_closed(c, 1007);
    /* alice sees testuser leave, and her connection still answers. */
    chanc_communicator_send_message(alice, &(chanc_message_type_t){.action = "ping"}, NULL);
    json_t *msgs = chanc_communicator_receive_all_json(alice, 5000);
    chanc_assert_json_match(msgs, "[{\"action\":\"user_left\",\"payload\":{\"username\":\"testuser\"}},"
                                  "{\"action\":\"pong\"}]");
    json_decref(msgs);
}

int main(void) {
#define LIVE(fn) cmocka_unit_test_setup_teardown(fn, live_setup, live_teardown)
    const struct CMUnitTest tests[] = {
        LIVE(test_connect_and_receive_history),
        LIVE(test_chat_message),
        LIVE(test_three_members_exchange_with_flags),
        LIVE(test_refusals_over_a_socket),
        LIVE(test_bad_input_is_answered_and_others_are_unaffected),
    };
    return cmocka_run_group_tests_name("chat.live", tests, start_server, stop_server);
}
