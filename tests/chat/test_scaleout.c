/* chat.scaleout (label scaleout): two chat-server processes on different
 * ports share rooms through a throwaway redis-server (--layer redis://…)
 * and one SQLite file (WAL; PostgreSQL storage is a separate piece of
 * work). Members on different processes see each other's user_joined,
 * chat (with the right flags) and user_left; history is the same from
 * both; an announcement posted on one process reaches a member on the
 * other; Redis restarts and delivery comes back (what was sent meanwhile is
 * in the history, not delivered live: at-most-once); a SIGKILLed process
 * leaves the other serving. chat-server --workers 2 shares one port and
 * the rooms (and is refused without Redis). CHAT_LIVE_WRAPPER runs the
 * servers under a tool (the memcheck variant). */
#include <hiredis/hiredis.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <chanc/testing.h>
#include <chanc/ws_client.h>

#include "redis_proc.h"
#include "server_proc.h"

/* Bounds for a hung server, not waits: generous, since the memcheck
 * variant runs three processes under valgrind on a shared machine. */
#define WAIT_MS 60000

static redis_proc_t redis;
static server_proc_t one, two;
static server_proc_t w; /* the --workers test's; global so that a failed
                         * test still gets it stopped in stop_all */
static const char *wrapper;

static int start_all(void **state) {
    (void)state;
    wrapper = getenv("CHAT_LIVE_WRAPPER");
    const char *pwhash = wrapper ? "min" : "interactive";
    if (redis_proc_start(&redis) < 0 || server_proc_init(&one, "scale1") < 0 ||
        server_proc_init(&two, "scale2") < 0)
        return -1;
    one.layer = two.layer = redis.url;
    /* One database for both: the first seeds it, the second finds it seeded. */
    snprintf(two.store.url, sizeof two.store.url, "%s", one.store.url);
    if (server_proc_start(&one, pwhash, wrapper) < 0 || server_proc_start(&two, pwhash, wrapper) < 0)
        return -1;
    return 0;
}

static int stop_all(void **state) {
    (void)state;
    int failed = 0;
    server_proc_t *procs[2] = {&one, &two};
    for (int i = 0; i < 2; i++) {
        if (procs[i]->pid <= 0)
            continue; /* the one the test killed */
        int status = server_proc_stop(procs[i], SIGTERM);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "chat.scaleout: chat-server did not exit 0 on SIGTERM (status %d%s)\n",
                    status, WIFEXITED(status) && WEXITSTATUS(status) == 99 ? ": valgrind errors" : "");
            failed = -1;
        }
    }
    server_proc_dispose(&w);
    server_proc_dispose(&two);
    server_proc_dispose(&one);
    redis_proc_dispose(&redis);
    return failed;
}

/* One remote fixture per server. */
typedef struct scale {
    chanc_test_t *t1, *t2;
} scale_t;

static uint64_t quiet_ms(void) {
    const char *q = getenv("CHAT_LIVE_QUIET_MS");
    return q ? strtoull(q, NULL, 10) : 0;
}

static int setup(void **state) {
    scale_t *s = calloc(1, sizeof *s);
    s->t1 = chanc_test_create_remote(&(chanc_test_remote_options_t){.port = one.port,
                                                                    .quiet_ms = quiet_ms()});
    s->t2 = chanc_test_create_remote(&(chanc_test_remote_options_t){.port = two.port,
                                                                    .quiet_ms = quiet_ms()});
    *state = s;
    return s->t1 && s->t2 ? 0 : -1;
}

static int teardown(void **state) {
    scale_t *s = *state;
    chanc_test_destroy(s->t1);
    chanc_test_destroy(s->t2);
    free(s);
    return 0;
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

static const chanc_message_type_t chat = {.action = "chat"};

/* A member of General (room 1) on the server behind t, past its history
 * and its own user_joined (which comes back through Redis, so after the
 * history that the server sends directly). */
static chanc_communicator_t *connected(chanc_test_t *t, const server_proc_t *p, const char *user,
                                       const char *password) {
    char cookie[200];
    server_proc_login(p, user, password, cookie, sizeof cookie, WAIT_MS);
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/chat/1/");
    chanc_communicator_set_header(c, "Cookie", cookie);
    assert_true(chanc_communicator_connect(c, WAIT_MS));
    return c;
}

static chanc_communicator_t *member(chanc_test_t *t, const server_proc_t *p, const char *user,
                                    const char *password) {
    chanc_communicator_t *c = connected(t, p, user, password);
    chanc_assert_authenticated_status_ok(c);
    json_t *first = chanc_communicator_receive_until_action(c, "history", WAIT_MS);
    assert_non_null(first);
    bool joined = chanc_json_find(first, "{\"action\":\"user_joined\",\"is_current\":true}");
    json_decref(first);
    if (!joined) {
        json_t *rest = chanc_communicator_receive_until_action(c, "user_joined", WAIT_MS);
        assert_non_null(rest);
        chanc_assert_json_match(json_array_get(rest, json_array_size(rest) - 1),
                                "{\"is_current\":true}");
        json_decref(rest);
    }
    return c;
}

/* The next frame with `action` that matches pattern (frames before it are
 * skipped). Frames from the other process are not tied to anything this
 * client sent, so wait for them; a frame with wrong flags never matches
 * and the wait fails with the transcript. */
static void expect(chanc_communicator_t *c, const char *action, const char *pattern) {
    json_t *want = json_loads(pattern, 0, NULL);
    assert_non_null(want);
    for (int i = 0; i < 100; i++) {
        json_t *got = chanc_communicator_receive_until_action(c, action, WAIT_MS);
        if (!got)
            break;
        bool ok = chanc_json_match(json_array_get(got, json_array_size(got) - 1), want);
        json_decref(got);
        if (ok) {
            json_decref(want);
            return;
        }
    }
    json_decref(want);
    chanc_communicator_print_transcript(c, stderr);
    fail_msg("no \"%s\" frame matching %s arrived", action, pattern);
}

static void test_members_on_two_processes_see_each_other(void **state) {
    scale_t *s = *state;
    chanc_communicator_t *alice = member(s->t1, &one, "alice", "alice-pass-1");
    chanc_communicator_t *bob = member(s->t2, &two, "bob", "bob-pass-1");
    expect(alice, "user_joined",
           "{\"payload\":{\"username\":\"bob\"},\"is_mine\":false,\"is_current\":false}");

    chanc_communicator_t *alice2 = member(s->t2, &two, "alice", "alice-pass-1");
    expect(alice, "user_joined", "{\"payload\":{\"username\":\"alice\"},\"is_mine\":true,"
                                 "\"is_current\":false}");
    expect(bob, "user_joined", "{\"payload\":{\"username\":\"alice\"},\"is_mine\":false}");

    chanc_communicator_send_message(alice, &chat, json_string("from process one"));
    expect(alice, "chat", "{\"payload\":\"from process one\",\"username\":\"alice\","
                          "\"is_mine\":true,\"is_current\":true}");
    expect(bob, "chat", "{\"payload\":\"from process one\",\"is_mine\":false,\"is_current\":false}");
    expect(alice2, "chat", "{\"payload\":\"from process one\",\"is_mine\":true,\"is_current\":false}");

    chanc_communicator_send_message(bob, &chat, json_string("from process two"));
    expect(alice, "chat", "{\"payload\":\"from process two\",\"username\":\"bob\","
                          "\"is_mine\":false,\"is_current\":false}");
    expect(bob, "chat", "{\"payload\":\"from process two\",\"is_mine\":true,\"is_current\":true}");

    chanc_communicator_disconnect(bob);
    expect(alice, "user_left", "{\"payload\":{\"username\":\"bob\"},\"is_mine\":false}");
    expect(alice2, "user_left", "{\"payload\":{\"username\":\"bob\"}}");
    chanc_communicator_disconnect(alice2);
    chanc_communicator_disconnect(alice);
}

static json_t *history_on(chanc_test_t *t, const server_proc_t *p) {
    chanc_communicator_t *c = connected(t, p, "testuser", "testpass123");
    json_t *got = chanc_communicator_receive_until_action(c, "history", WAIT_MS);
    assert_non_null(got);
    json_t *h = json_incref(json_object_get(json_array_get(got, json_array_size(got) - 1), "payload"));
    json_decref(got);
    chanc_communicator_disconnect(c);
    return h;
}

static void test_history_is_the_same_from_both(void **state) {
    scale_t *s = *state;
    json_t *h1 = history_on(s->t1, &one);
    json_t *h2 = history_on(s->t2, &two);
    assert_true(json_array_size(h1) >= 5); /* the fixtures' three + the test's two */
    assert_true(json_equal(h1, h2));
    json_decref(h1);
    json_decref(h2);
}

/* An announcement posted over HTTP on process one (alice is staff) reaches
 * a member connected to process two: the typed event through Redis,
 * passed on by that process's consumer. */
static void test_announcement_on_one_process_reaches_the_other(void **state) {
    scale_t *s = *state;
    chanc_communicator_t *bob = member(s->t2, &two, "bob", "bob-pass-1");
    char cookie[200], req[1024];
    server_proc_login(&one, "alice", "alice-pass-1", cookie, sizeof cookie, WAIT_MS);
    const char *body = "{\"message\":\"across processes\"}";
    int len = snprintf(req, sizeof req,
                       "POST /api/rooms/1/announcements HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                       "Cookie: %s\r\nContent-Type: application/json\r\n"
                       "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                       one.port, cookie, strlen(body), body);
    chanc_http_client_response_t r;
    assert_int_equal(chanc_http_client_exchange(one.port, req, (size_t)len, false, &r, WAIT_MS),
                     0);
    assert_int_equal(r.status, 201);
    chanc_http_client_response_dispose(&r);
    expect(bob, "announcement",
           "{\"payload\":{\"message\":\"across processes\",\"username\":\"alice\"}}");
    chanc_communicator_disconnect(bob);
}

static void test_redis_restart_and_delivery_recovers(void **state) {
    scale_t *s = *state;
    chanc_communicator_t *alice = member(s->t1, &one, "alice", "alice-pass-1");
    chanc_communicator_t *bob = member(s->t2, &two, "bob", "bob-pass-1");
    expect(alice, "user_joined", "{\"payload\":{\"username\":\"bob\"}}");

    redis_proc_stop(&redis, SIGKILL);
    /* Redis is gone: the chat is stored (complete comes), not delivered
     * live; both clients stay connected. */
    chanc_communicator_send_message(alice, &chat, json_string("while redis was down"));
    json_t *c = chanc_communicator_receive_until_action(alice, "complete", WAIT_MS);
    assert_non_null(c);
    json_decref(c);
    assert_false(chanc_communicator_closed(alice));
    assert_false(chanc_communicator_closed(bob));

    assert_int_equal(redis_proc_start(&redis), 0);
    /* The servers reconnect on their backoff timers (not observable from
     * here): probe until a chat crosses again, bounded. */
    bool recovered = false;
    uint64_t deadline = uv_hrtime() + (uint64_t)WAIT_MS * 1000000u;
    for (int i = 0; !recovered && uv_hrtime() < deadline; i++) {
        char text[32];
        snprintf(text, sizeof text, "probe %d", i);
        chanc_communicator_send_message(alice, &chat, json_string(text));
        json_t *got = chanc_communicator_receive_until_action(bob, "chat", 250);
        if (got) {
            recovered = true;
            chanc_assert_json_match(json_array_get(got, json_array_size(got) - 1),
                                    "{\"username\":\"alice\",\"is_mine\":false}");
            json_decref(got);
        }
    }
    assert_true(recovered);
    /* And the other way round. */
    chanc_communicator_send_message(bob, &chat, json_string("bob again"));
    expect(alice, "chat", "{\"payload\":\"bob again\",\"is_mine\":false,\"is_current\":false}");
    /* Durable: the message sent during the outage is in the history. */
    json_t *h = history_on(s->t2, &two);
    assert_non_null(chanc_json_find(h, "{\"username\":\"alice\",\"message\":\"while redis was down\"}"));
    json_decref(h);
    chanc_communicator_disconnect(alice);
    chanc_communicator_disconnect(bob);
}

/* POST /logout to process p with the session cookie; its status. */
static int logout_on(const server_proc_t *p, const char *cookie) {
    char req[400];
    int n = snprintf(req, sizeof req,
                     "POST /logout HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nOrigin: http://127.0.0.1:%d\r\n"
                     "Cookie: %s\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                     p->port, p->port, cookie);
    chanc_http_client_response_t r;
    assert_int_equal(chanc_http_client_exchange(p->port, req, (size_t)n, false, &r, WAIT_MS), 0);
    int status = r.status;
    chanc_http_client_response_dispose(&r);
    return status;
}

/* A logout on one process closes the session's sockets on the other (the
 * session_ended event through Redis), without waiting for them to send a
 * frame; the user's other session, on the same process, stays. */
static void test_logout_on_one_process_closes_the_socket_on_the_other(void **state) {
    scale_t *s = *state;
    chanc_communicator_t *bob = member(s->t1, &one, "bob", "bob-pass-1");
    char cookie[200], other[200];
    server_proc_login(&one, "alice", "alice-pass-1", cookie, sizeof cookie, WAIT_MS);
    chanc_communicator_t *alice = chanc_test_communicator(s->t2, "/ws/chat/1/");
    chanc_communicator_set_header(alice, "Cookie", cookie);
    assert_true(chanc_communicator_connect(alice, WAIT_MS));
    chanc_assert_authenticated_status_ok(alice);
    json_t *h = chanc_communicator_receive_until_action(alice, "history", WAIT_MS);
    assert_non_null(h);
    json_decref(h);
    server_proc_login(&two, "alice", "alice-pass-1", other, sizeof other, WAIT_MS);
    chanc_communicator_t *alice_other = chanc_test_communicator(s->t2, "/ws/chat/1/");
    chanc_communicator_set_header(alice_other, "Cookie", other);
    assert_true(chanc_communicator_connect(alice_other, WAIT_MS));
    chanc_assert_authenticated_status_ok(alice_other);
    expect(bob, "user_joined", "{\"payload\":{\"username\":\"alice\"}}");
    expect(bob, "user_joined", "{\"payload\":{\"username\":\"alice\"}}");

    assert_int_equal(logout_on(&one, cookie), 302);
    json_t *got = chanc_communicator_receive_until_action(alice, "authentication", WAIT_MS);
    assert_non_null(got);
    chanc_assert_json_match(json_array_get(got, json_array_size(got) - 1),
                            "{\"payload\":{\"status_code\":401,\"data\":{\"detail\":\"Logged out.\"}}}");
    json_decref(got);
    chanc_assert_closed(alice, 4401);
    assert_string_equal(chanc_communicator_close_reason(alice), "Logged out");
    expect(bob, "user_left", "{\"payload\":{\"username\":\"alice\"}}");
    assert_false(chanc_communicator_closed(alice_other));
    chanc_communicator_send_message(alice_other, &chat, json_string("my other session"));
    expect(bob, "chat", "{\"payload\":\"my other session\",\"username\":\"alice\"}");
    chanc_communicator_disconnect(alice_other);
    chanc_communicator_disconnect(bob);
}

static void test_sigkill_of_one_process_leaves_the_other_serving(void **state) {
    scale_t *s = *state;
    chanc_communicator_t *alice = member(s->t1, &one, "alice", "alice-pass-1");
    chanc_communicator_t *bob = member(s->t2, &two, "bob", "bob-pass-1");
    chanc_communicator_t *carol = member(s->t2, &two, "carol", "carol-pass-1");
    expect(bob, "user_joined", "{\"payload\":{\"username\":\"carol\"}}");

    server_proc_stop(&one, SIGKILL);
    json_t *rest = chanc_communicator_receive_all_json(alice, WAIT_MS);
    json_decref(rest);
    assert_true(chanc_communicator_closed(alice));

    chanc_communicator_send_message(bob, &chat, json_string("still here"));
    expect(bob, "chat", "{\"payload\":\"still here\",\"is_mine\":true,\"is_current\":true}");
    expect(carol, "chat", "{\"payload\":\"still here\",\"is_mine\":false,\"is_current\":false}");
    assert_false(chanc_communicator_closed(bob));
    assert_false(chanc_communicator_closed(carol));
    /* New members are still welcome on the survivor. */
    chanc_communicator_t *alice_again = member(s->t2, &two, "alice", "alice-pass-1");
    expect(bob, "user_joined", "{\"payload\":{\"username\":\"alice\"}}");
    chanc_communicator_disconnect(alice_again);
    chanc_communicator_disconnect(carol);
    chanc_communicator_disconnect(bob);
}

/* How many processes subscribe to General's group, as Redis sees it. */
static long long general_subscribers(void) {
    redisContext *rc = redisConnect("127.0.0.1", redis.port);
    assert_true(rc && !rc->err);
    redisReply *r = redisCommand(rc, "PUBSUB NUMSUB chanc:0:g:chat_room_1");
    assert_true(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2);
    long long n = r->element[1]->integer;
    freeReplyObject(r);
    redisFree(rc);
    return n;
}

static void test_workers_share_one_port_and_the_rooms(void **state) {
    scale_t *s = *state;
    assert_int_equal(server_proc_init(&w, "workers"), 0);
    w.layer = redis.url;
    w.workers = 2;
    w.port = redis_proc_free_port();
    assert_int_equal(server_proc_start(&w, wrapper ? "min" : "interactive", wrapper), 0);
    chanc_test_t *t = chanc_test_create_remote(&(chanc_test_remote_options_t){
        .port = w.port, .quiet_ms = quiet_ms()});
    char alice_cookie[200], bob_cookie[200];
    server_proc_login(&w, "alice", "alice-pass-1", alice_cookie, sizeof alice_cookie, WAIT_MS);
    server_proc_login(&w, "bob", "bob-pass-1", bob_cookie, sizeof bob_cookie, WAIT_MS);
    /* The kernel spreads connections over the workers: connect until both
     * have members in the room (Redis then counts two subscribers). */
    chanc_communicator_t *c[40];
    size_t n = 0;
    long long subscribers = 0;
    while (n < 40 && subscribers < 2) {
        c[n] = chanc_test_communicator(t, "/ws/chat/1/");
        chanc_communicator_set_header(c[n], "Cookie", n % 2 ? bob_cookie : alice_cookie);
        assert_true(chanc_communicator_connect(c[n], WAIT_MS));
        json_t *h = chanc_communicator_receive_until_action(c[n], "history", WAIT_MS);
        assert_non_null(h);
        json_decref(h);
        n++;
        subscribers = general_subscribers();
    }
    assert_int_equal(subscribers, 2);
    chanc_communicator_send_message(c[0], &chat, json_string("to every worker"));
    expect(c[0], "chat", "{\"payload\":\"to every worker\",\"is_mine\":true,\"is_current\":true}");
    for (size_t i = 1; i < n; i++)
        expect(c[i], "chat", i % 2 ? "{\"payload\":\"to every worker\",\"is_mine\":false,"
                                     "\"is_current\":false}"
                                   : "{\"payload\":\"to every worker\",\"is_mine\":true,"
                                     "\"is_current\":false}");
    chanc_test_destroy(t);
    /* SIGTERM to the supervisor stops the workers; all exit 0. */
    int status = server_proc_stop(&w, SIGTERM);
    server_proc_dispose(&w);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    (void)s;
}

static int exit_status_of(char *const argv[]) {
    pid_t pid;
    extern char **environ;
    if (posix_spawn(&pid, argv[0], NULL, NULL, argv, environ) != 0)
        return -1;
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_workers_without_redis_are_refused(void **state) {
    (void)state;
    char *no_layer[] = {CHAT_SERVER_PATH, "--workers", "2", "--port", "1", NULL};
    assert_int_equal(exit_status_of(no_layer), 2);
    char *no_port[] = {CHAT_SERVER_PATH, "--workers", "2", "--port", "0", "--layer",
                       "redis://127.0.0.1:1", NULL};
    assert_int_equal(exit_status_of(no_port), 2);
    char *bad_url[] = {CHAT_SERVER_PATH, "--layer", "redis://host:port", NULL};
    assert_int_equal(exit_status_of(bad_url), 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_members_on_two_processes_see_each_other),
        T(test_history_is_the_same_from_both),
        T(test_announcement_on_one_process_reaches_the_other),
        T(test_redis_restart_and_delivery_recovers),
        T(test_logout_on_one_process_closes_the_socket_on_the_other),
        T(test_sigkill_of_one_process_leaves_the_other_serving),
        T(test_workers_share_one_port_and_the_rooms),
        cmocka_unit_test(test_workers_without_redis_are_refused),
    };
    return chanc_run_group_tests_name("chat.scaleout", tests, start_all, stop_all);
}
