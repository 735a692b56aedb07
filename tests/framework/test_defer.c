/* framework.defer: a handler that finishes later (chanc_conn_defer /
 * chanc_conn_resume). Its `complete` waits for the result, the frames
 * behind it wait in order, a client that goes meanwhile is released only
 * after the result, and a consumer's prepare step can wait for a lookup
 * before authentication. Work finishes on the virtual clock (timers) and
 * on real threads (libuv's pool, holding the app). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chanc/testing.h"

/* ---- a consumer whose "later" frames finish on a timer or a thread ------- */

static const chanc_message_type_t msg_later = {.action = "later", .payload = CHANC_INTEGER()};
static const chanc_message_type_t msg_thread = {.action = "thread", .payload = CHANC_INTEGER()};
static const chanc_message_type_t msg_now = {.action = "now", .payload = CHANC_INTEGER()};
static const chanc_message_type_t msg_both = {.action = "both"}; /* defers twice: refused */
static const chanc_message_type_t msg_inline = {.action = "inline"}; /* resumes inside the hook */
static const chanc_message_type_t *const incoming[] = {&msg_later, &msg_thread, &msg_now,
                                                       &msg_both, &msg_inline, NULL};

/* What happened, in order, across connections: "done:N", "disconnect". */
static char events[64][32];
static int nevents;
static void event(const char *fmt, long long v) {
    if (nevents < 64)
        snprintf(events[nevents++], sizeof events[0], fmt, v);
}

typedef struct later {
    chanc_conn_t *c;
    long long n;
    uv_work_t work;
} later_t;

/* Finish one frame: "done" with its number (negative numbers fail). */
static void finish(later_t *l) {
    event("done:%lld", l->n);
    if (!chanc_conn_is_closing(l->c))
        chanc_conn_send_json(l->c, json_pack("{s:s,s:I}", "action", "done", "payload", l->n));
    chanc_conn_resume(l->c, l->n < 0 ? CHANC_EIO : 0);
    free(l);
}

static void on_timer(void *arg) { finish(arg); }

static void work_cb(uv_work_t *w) {
    later_t *l = w->data;
    usleep(1000u * (unsigned)(l->n < 0 ? -l->n : l->n) % 5000u); /* off the loop */
}
static void after_work_cb(uv_work_t *w, int status) {
    (void)status;
    later_t *l = w->data;
    chanc_app_t *app = chanc_conn_app(l->c);
    finish(l);
    chanc_app_release(app);
}

static int receive(chanc_conn_t *c, const chanc_message_type_t *type, const json_t *payload,
                   const json_t *frame) {
    (void)frame;
    long long n = json_integer_value(payload);
    if (type == &msg_now)
        return chanc_conn_send_json(c, json_pack("{s:s,s:I}", "action", "now", "payload", n));
    if (type == &msg_inline) {
        assert_int_equal(chanc_conn_defer(c), 0);
        chanc_conn_resume(c, 0);
        return chanc_conn_send_json(c, json_pack("{s:s}", "action", "inlined"));
    }
    if (type == &msg_both) {
        assert_int_equal(chanc_conn_defer(c), 0);
        assert_int_equal(chanc_conn_defer(c), CHANC_EINVAL);
        chanc_conn_resume(c, 0);
        return 0;
    }
    later_t *l = calloc(1, sizeof *l);
    if (!l)
        return CHANC_ENOMEM;
    l->c = c;
    l->n = n;
    assert_int_equal(chanc_conn_defer(c), 0);
    if (type == &msg_later) {
        chanc_app_timer_start(chanc_conn_app(c), (uint64_t)(n < 0 ? -n : n), on_timer, l);
        return 0;
    }
    l->work.data = l;
    chanc_app_hold(chanc_conn_app(c));
    assert_int_equal(uv_queue_work(chanc_app_loop(chanc_conn_app(c)), &l->work, work_cb,
                                   after_work_cb),
                     0);
    return 0;
}

static void disconnect(chanc_conn_t *c, int code) {
    (void)c;
    event("disconnect:%lld", code);
}

static const chanc_consumer_t later_consumer = {
    .name = "later",
    .incoming = incoming,
    .receive_message = receive,
    .disconnect = disconnect,
    .send_completion = true,
};

/* ---- a consumer that looks its user up before authenticating ------------- */

typedef struct slow_state {
    char user[32];
    long long ms;
} slow_state_t;

static void prepared(void *arg) {
    chanc_conn_t *c = arg;
    slow_state_t *st = chanc_conn_state(c);
    event("prepared:%lld", st->ms);
    if (st->ms > 0) /* 0: nobody */
        snprintf(st->user, sizeof st->user, "user%lld", st->ms);
    chanc_conn_resume(c, st->ms == 13 ? CHANC_EIO : 0);
}

static int slow_prepare(chanc_conn_t *c) {
    slow_state_t *st = chanc_conn_state(c);
    int64_t ms = 0;
    chanc_conn_param_int(c, "ms", &ms);
    st->ms = ms;
    assert_int_equal(chanc_conn_defer(c), 0);
    chanc_app_timer_start(chanc_conn_app(c), (uint64_t)ms, prepared, c);
    return 0;
}

static int slow_auth(chanc_conn_t *c, void *ud, chanc_status_t *st) {
    (void)ud;
    (void)st;
    const slow_state_t *s = chanc_conn_state(c);
    if (!s->user[0])
        return CHANC_AUTH_SKIP;
    return chanc_conn_set_user(c, s->user, s->user, NULL, NULL) < 0 ? CHANC_AUTH_SKIP
                                                                     : CHANC_AUTH_OK;
}
static const chanc_authenticator_t slow_authenticator = {.name = "slow", .authenticate = slow_auth};
static const chanc_authenticator_t *const slow_auths[] = {&slow_authenticator, NULL};
static const chanc_permission_t *const slow_perms[] = {&chanc_is_authenticated, NULL};

static int slow_post(chanc_conn_t *c) {
    /* Not a hook that may defer; and nothing to resume. */
    assert_int_equal(chanc_conn_defer(c), CHANC_EINVAL);
    chanc_conn_resume(c, 0); /* logged, ignored */
    return chanc_conn_send_json(
        c, json_pack("{s:s,s:s}", "action", "hello", "payload", chanc_conn_username(c)));
}

static const chanc_consumer_t slow_consumer = {
    .name = "slow",
    .incoming = incoming,
    .prepare = slow_prepare,
    .authenticators = slow_auths,
    .permissions = slow_perms,
    .post_authentication = slow_post,
    .receive_message = receive,
    .disconnect = disconnect,
    .state_size = sizeof(slow_state_t),
    .send_completion = true,
};

static int setup_routes(chanc_test_t *t, void *ud) {
    (void)ud;
    nevents = 0;
    int rc = chanc_app_route(t->app, "ws/later/", &later_consumer, NULL);
    return rc ? rc : chanc_app_route(t->app, "ws/slow/{ms:int}/", &slow_consumer, NULL);
}

static int fixture_setup(void **state) {
    chanc_test_options_t o = {
        .setup = setup_routes, .app.rate_limit = 5, .app.rate_burst = 3, .name = *state};
    *state = chanc_test_create(&o);
    return *state ? 0 : -1;
}
static int fixture_teardown(void **state) {
    chanc_test_destroy(*state);
    return 0;
}

static chanc_communicator_t *later_client(chanc_test_t *t) {
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/later/");
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    return c;
}

static void send_n(chanc_communicator_t *c, const chanc_message_type_t *type, long long n) {
    assert_int_equal(chanc_communicator_send_message(c, type, json_integer(n)), 0);
}

/* Every waiting frame, completions included. */
static json_t *take_all(chanc_communicator_t *c) {
    json_t *all = json_array();
    json_t *f;
    while ((f = chanc_communicator_receive_json(c, 1000)))
        json_array_append_new(all, f);
    return all;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_complete_waits_for_the_result_and_later_frames_wait_behind(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = later_client(t);
    send_n(c, &msg_later, 100);
    send_n(c, &msg_now, 1);
    /* Nothing until the virtual clock moves: not "done", not the complete,
     * and not the "now" frame queued behind. */
    chanc_assert_receive_nothing(c);
    chanc_test_advance(t, 99);
    chanc_assert_receive_nothing(c);
    chanc_test_advance(t, 1);
    json_t *all = take_all(c);
    chanc_assert_json_match(all, "[{\"action\":\"done\",\"payload\":100},"
                                 "{\"action\":\"complete\"},"
                                 "{\"action\":\"now\",\"payload\":1},"
                                 "{\"action\":\"complete\"}]");
    assert_int_equal(json_array_size(all), 4);
    json_decref(all);
}

static void test_a_failed_result_is_the_error_frame_then_complete(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = later_client(t);
    send_n(c, &msg_later, -5);
    send_n(c, &msg_later, 5);
    chanc_test_advance(t, 5);
    json_t *all = take_all(c);
    chanc_assert_json_match(
        all, "[{\"action\":\"done\",\"payload\":-5},"
             "{\"action\":\"error\",\"payload\":{\"detail\":\"Failed to process message\"}},"
             "{\"action\":\"complete\"}]");
    assert_int_equal(json_array_size(all), 3);
    json_decref(all);
    /* The second frame started only after the first ended: its 5 ms run
     * from then. */
    chanc_assert_receive_nothing(c);
    chanc_test_advance(t, 5);
    chanc_assert_receive_match(c, "{\"action\":\"done\",\"payload\":5}");
    assert_true(chanc_test_log_contains(t, CHANC_LOG_ERROR, "deferred handler failed"));
}

static void test_refused_and_invalid_frames_keep_their_place_in_line(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = later_client(t);
    send_n(c, &msg_later, 10);                      /* token 1 of 3 */
    chanc_communicator_send_text(c, "{\"action\":\"nope\"}"); /* 2: invalid */
    send_n(c, &msg_now, 2);                         /* 3 */
    send_n(c, &msg_now, 3);                         /* refused: over the burst */
    chanc_assert_receive_nothing(c);
    chanc_test_advance(t, 10);
    json_t *all = take_all(c);
    chanc_assert_json_match(all, "[{\"action\":\"done\",\"payload\":10},{\"action\":\"complete\"},"
                                 "{\"action\":\"error\"},{\"action\":\"complete\"},"
                                 "{\"action\":\"now\",\"payload\":2},{\"action\":\"complete\"},"
                                 "{\"action\":\"error\",\"payload\":[{\"type\":\"rate_limited\"}]},"
                                 "{\"action\":\"complete\"}]");
    assert_int_equal(json_array_size(all), 8);
    json_decref(all);
}

static void test_a_client_that_goes_is_released_after_the_result(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = later_client(t);
    send_n(c, &msg_later, 50);
    send_n(c, &msg_now, 7); /* dropped with the connection: never ran */
    chanc_communicator_disconnect(c);
    chanc_test_settle(t, 1000);
    assert_int_equal(nevents, 0); /* the disconnect hook waits for the result */
    assert_int_equal(chanc_app_connections(t->app), 1);
    chanc_test_advance(t, 50);
    assert_int_equal(nevents, 2);
    assert_string_equal(events[0], "done:50");
    assert_string_equal(events[1], "disconnect:1000");
    assert_int_equal(chanc_app_connections(t->app), 0);
}

static void test_defer_only_inside_a_hook_and_once(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = later_client(t);
    chanc_communicator_send_message(c, &msg_both, NULL);
    json_t *all = take_all(c);
    chanc_assert_json_match(all, "[{\"action\":\"complete\"}]");
    assert_int_equal(json_array_size(all), 1);
    json_decref(all);
    /* A resume inside the hook that deferred: the hook's frame goes first,
     * one complete. */
    chanc_communicator_send_message(c, &msg_inline, NULL);
    all = take_all(c);
    chanc_assert_json_match(all, "[{\"action\":\"inlined\"},{\"action\":\"complete\"}]");
    assert_int_equal(json_array_size(all), 2);
    json_decref(all);
}

static void test_frames_on_real_threads_complete_in_order_per_client(void **state) {
    chanc_test_t *t = *state;
    enum { CLIENTS = 6, FRAMES = 3 }; /* 3: within the test's burst */
    chanc_communicator_t *cs[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        cs[i] = later_client(t);
    /* Mixed durations, so threads finish out of order across clients. */
    for (int f = 0; f < FRAMES; f++)
        for (int i = 0; i < CLIENTS; i++)
            send_n(cs[i], &msg_thread, (i * 7 + f * 3) % 4 + i * 100 + f * 1000);
    for (int i = 0; i < CLIENTS; i++) {
        json_t *all = take_all(cs[i]);
        assert_int_equal(json_array_size(all), 2 * FRAMES);
        for (int f = 0; f < FRAMES; f++) {
            json_t *done = json_array_get(all, 2 * (size_t)f);
            assert_string_equal(json_string_value(json_object_get(done, "action")), "done");
            assert_int_equal(json_integer_value(json_object_get(done, "payload")),
                             (i * 7 + f * 3) % 4 + i * 100 + f * 1000);
            chanc_assert_json_match(json_array_get(all, 2 * (size_t)f + 1),
                                    "{\"action\":\"complete\"}");
        }
        json_decref(all);
    }
}

static void test_prepare_waits_and_frames_sent_meanwhile_run_after(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/slow/30/");
    chanc_assert_connect(c);
    send_n(c, &msg_now, 1); /* before the authentication frame */
    chanc_assert_receive_nothing(c);
    chanc_test_advance(t, 30);
    json_t *all = take_all(c);
    chanc_assert_json_match(all, "[{\"action\":\"authentication\",\"payload\":{\"status_code\":200}},"
                                 "{\"action\":\"hello\",\"payload\":\"user30\"},"
                                 "{\"action\":\"now\",\"payload\":1},"
                                 "{\"action\":\"complete\"}]");
    assert_int_equal(json_array_size(all), 4);
    json_decref(all);
    assert_true(chanc_test_log_contains(t, CHANC_LOG_ERROR,
                                        "chanc_conn_resume without chanc_conn_defer"));
}

/* ---- back-pressure: a transport of our own that records pause calls ------ */

typedef struct fake {
    int writes, pauses, resumes;
    bool paused;
} fake_t;
static int fake_write(void *tctx, chanc_buf_t *frame) {
    (void)frame;
    ((fake_t *)tctx)->writes++;
    return 0;
}
static void fake_close(void *tctx, int code, const char *reason) {
    (void)tctx;
    (void)code;
    (void)reason;
}
static void fake_pause(void *tctx, bool paused) {
    fake_t *f = tctx;
    assert_true(f->paused != paused); /* only changes are reported */
    f->paused = paused;
    paused ? f->pauses++ : f->resumes++;
}
static const chanc_transport_ops_t fake_ops = {
    .write = fake_write, .close = fake_close, .pause = fake_pause};

/* Frames piling up behind a deferred one: the transport is told to stop
 * reading at CHANC_RX_QUEUE_MAX waiting frames and to go on once fewer
 * than half are left; every frame still runs, in order. */
static void test_a_backlog_pauses_reading_until_it_has_run(void **state) {
    chanc_test_t *t = *state;
    fake_t f = {0};
    chanc_conn_t *c = NULL;
    chanc_request_t req = {"/ws/later/", NULL, 0};
    assert_int_equal(chanc_conn_open(t->app, &req, &fake_ops, &f, &c), 0);
    chanc_transport_opened(c);
    assert_int_equal(f.writes, 1); /* the authentication frame */
    const char *later = "{\"action\":\"later\",\"payload\":10}";
    const char *now = "{\"action\":\"now\",\"payload\":0}";
    /* The first defers; the next CHANC_RX_QUEUE_MAX wait (the burst of
     * this fixture is 3 frames: the rest wait as refused frames). */
    chanc_transport_received(c, later, strlen(later), false);
    for (int i = 0; i < CHANC_RX_QUEUE_MAX - 1; i++)
        chanc_transport_received(c, now, strlen(now), false);
    assert_int_equal(f.pauses, 0);
    chanc_transport_received(c, now, strlen(now), false);
    assert_int_equal(f.pauses, 1);
    assert_true(f.paused);
    assert_int_equal(f.writes, 1); /* nothing answered yet */
    chanc_test_advance(t, 10);
    /* done + complete for the first, then an answer + complete for each. */
    assert_int_equal(f.writes, 1 + 2 + 2 * CHANC_RX_QUEUE_MAX);
    assert_false(f.paused);
    assert_int_equal(f.resumes, 1);
    chanc_transport_closed(c, 1000);
    assert_int_equal(nevents, 2); /* done:10, then the disconnect */
    assert_string_equal(events[1], "disconnect:1000");
}

static void test_prepare_result_drives_authentication(void **state) {
    chanc_test_t *t = *state;
    /* Loaded nobody: anonymous → 403, as DRF says without credentials. */
    chanc_communicator_t *anon = chanc_test_communicator(t, "/ws/slow/0/");
    chanc_assert_connect(anon);
    send_n(anon, &msg_now, 1); /* never runs */
    chanc_test_advance(t, 0);
    chanc_assert_authenticated_status(anon, 403);
    chanc_assert_closed(anon, 4403);
    /* The lookup failed: 500 → 4500, logged. */
    chanc_communicator_t *broken = chanc_test_communicator(t, "/ws/slow/13/");
    chanc_assert_connect(broken);
    chanc_test_advance(t, 13);
    chanc_assert_authenticated_status(broken, 500);
    chanc_assert_closed(broken, 4500);
    assert_true(chanc_test_log_contains(t, CHANC_LOG_ERROR, "prepare failed"));
}

static void test_a_client_gone_before_prepare_ends_gets_no_hooks(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/slow/40/");
    chanc_assert_connect(c);
    chanc_communicator_disconnect(c);
    chanc_test_settle(t, 1000);
    assert_int_equal(chanc_app_connections(t->app), 1);
    chanc_test_advance(t, 40);
    assert_int_equal(nevents, 1); /* prepared, no disconnect: never authenticated */
    assert_string_equal(events[0], "prepared:40");
    assert_int_equal(chanc_app_connections(t->app), 0);
}

/* The server closes the connection (invalid UTF-8: 1007) while prepare
 * is still running: when prepare ends, nothing more happens — no
 * authentication frame, no hooks, nothing logged as an error. */
static void test_a_connection_closed_during_prepare_gets_no_hooks(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/slow/40/");
    chanc_assert_connect(c);
    chanc_communicator_send_raw(c, "\"\xff\"", 3, false);
    chanc_test_advance(t, 40);
    chanc_assert_closed(c, 1007);
    chanc_assert_receive_nothing(c);
    assert_int_equal(nevents, 1); /* prepared; no disconnect: never authenticated */
    assert_false(chanc_test_log_contains(t, CHANC_LOG_ERROR, "conn"));
    assert_int_equal(chanc_app_connections(t->app), 0);
}

#define T(fn) chanc_unit_test(fn, fixture_setup, fixture_teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_complete_waits_for_the_result_and_later_frames_wait_behind),
        T(test_a_failed_result_is_the_error_frame_then_complete),
        T(test_refused_and_invalid_frames_keep_their_place_in_line),
        T(test_a_client_that_goes_is_released_after_the_result),
        T(test_defer_only_inside_a_hook_and_once),
        T(test_frames_on_real_threads_complete_in_order_per_client),
        T(test_prepare_waits_and_frames_sent_meanwhile_run_after),
        T(test_prepare_result_drives_authentication),
        T(test_a_client_gone_before_prepare_ends_gets_no_hooks),
        T(test_a_connection_closed_during_prepare_gets_no_hooks),
        T(test_a_backlog_pauses_reading_until_it_has_run),
    };
    return chanc_run_group_tests_name("framework.defer", tests, NULL, NULL);
}
