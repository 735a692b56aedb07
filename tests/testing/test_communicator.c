/* testing.communicator: the harness's contract. Settling covers deferred
 * work, layer deliveries and work held on other threads, so receives need
 * no sleeps; the fixture cleans up what a test leaves open. */
#include <pthread.h>

#include "test_common.h"

/* --- a consumer whose reply is produced on libuv's threadpool ------------ */

typedef struct job {
    uv_work_t req;
    chanc_app_t *app;
    char channel[64];
    long result;
} job_t;

/* A test that needs the work to finish after the client's close (an order
 * no schedule may change otherwise: the close could come after the result)
 * sets finish_after_close; the consumer's disconnect hook opens the gate. */
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static bool finish_after_close, closed_seen;

static void work(uv_work_t *req) {
    job_t *j = req->data;
    pthread_mutex_lock(&gate_mu);
    while (finish_after_close && !closed_seen)
        pthread_cond_wait(&gate_cv, &gate_mu);
    pthread_mutex_unlock(&gate_mu);
    long acc = 0;
    for (long i = 0; i < 2000000; i++) /* some real work off the loop */
        acc += i % 7;
    j->result = acc;
}

static void after_work(uv_work_t *req, int status) {
    (void)status;
    job_t *j = req->data;
    /* Answer through the app by channel name: the connection may be gone. */
    chanc_app_channel_send(j->app, j->channel,
                           json_pack("{s:s,s:I}", "action", "computed", "payload", (json_int_t)j->result));
    chanc_app_release(j->app);
    free(j);
}

static const chanc_message_type_t compute_msg = {.action = "compute"};
static const chanc_message_type_t *const compute_incoming[] = {&compute_msg, NULL};

static int compute_receive(chanc_conn_t *c, const chanc_message_type_t *type, const json_t *payload,
                           const json_t *frame) {
    (void)type;
    (void)payload;
    (void)frame;
    job_t *j = calloc(1, sizeof *j);
    j->req.data = j;
    j->app = chanc_conn_app(c);
    snprintf(j->channel, sizeof j->channel, "%s", chanc_conn_channel(c));
    chanc_app_hold(j->app); /* released in after_work */
    return uv_queue_work(chanc_app_loop(j->app), &j->req, work, after_work) == 0 ? 0 : CHANC_EIO;
}

static void compute_disconnect(chanc_conn_t *c, int code) {
    (void)c;
    (void)code;
    pthread_mutex_lock(&gate_mu);
    closed_seen = true;
    pthread_cond_signal(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
}

static const chanc_consumer_t compute_consumer = {.name = "compute",
                                                  .incoming = compute_incoming,
                                                  .receive_message = compute_receive,
                                                  .disconnect = compute_disconnect};

static int compute_setup(chanc_test_t *t, void *ud) {
    int rc = demo_setup(t, ud);
    return rc ? rc : chanc_app_route(t->app, "ws/compute/", &compute_consumer, NULL);
}

static int compute_fixture(void **state) {
    chanc_test_options_t opts = {.setup = compute_setup};
    *state = chanc_test_create(&opts);
    return *state ? 0 : -1;
}

/* --- tests --------------------------------------------------------------- */

static void test_the_documented_flow(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = room_client(t, "lobby", "alice");
    assert_true(chanc_communicator_connect(c, 1000));
    chanc_assert_authenticated_status_ok(c);
    json_t *msgs = chanc_communicator_receive_all_json(c, 1000);
    json_t *join = chanc_json_find(msgs, "{\"action\":\"joined\"}");
    assert_non_null(join);
    assert_string_equal(chanc_json_str(join, "/payload/username"), "alice");
    json_decref(msgs);
    chanc_communicator_disconnect(c);
}

static void test_settle_waits_for_work_on_another_thread(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/compute/");
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    chanc_communicator_send_message(c, &compute_msg, NULL);
    json_t *msgs = chanc_communicator_receive_all_json(c, 5000);
    chanc_assert_json_match(msgs, "[{\"action\":\"computed\",\"payload\":5999995}]");
    json_decref(msgs);
}

static void test_work_finishing_after_disconnect_is_dropped(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/compute/");
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    pthread_mutex_lock(&gate_mu);
    finish_after_close = true; /* under any schedule (CHANC_EXPLORE) */
    closed_seen = false;
    pthread_mutex_unlock(&gate_mu);
    chanc_communicator_send_message(c, &compute_msg, NULL);
    chanc_communicator_disconnect(c); /* settles: the job completes, finds no one */
    assert_true(chanc_app_settled(t->app));
    pthread_mutex_lock(&gate_mu);
    finish_after_close = false;
    pthread_mutex_unlock(&gate_mu);
    chanc_assert_receive_nothing(c);
}

static void test_receive_json_returns_frames_in_order_then_null(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/echo/");
    chanc_assert_connect(c);
    assert_int_equal(chanc_communicator_pending(c, 1000), 1);
    json_t *auth = chanc_communicator_receive_json(c, 1000);
    chanc_assert_json_match(auth, "{\"action\":\"authentication\"}");
    json_decref(auth);
    assert_null(chanc_communicator_receive_json(c, 1000));
    assert_true(chanc_communicator_receive_nothing(c, 1000));
    assert_null(chanc_communicator_receive_until_action(c, "pong", 1000));
}

static void test_receive_until_action_leaves_later_frames(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/echo/");
    chanc_assert_connect(c);
    chanc_communicator_send_message(c, &demo_ping, NULL);
    chanc_communicator_send_message(c, &demo_echo, json_string("after"));
    json_t *upto = chanc_communicator_receive_until_action(c, "pong", 1000);
    chanc_assert_json_match(upto, "[{\"action\":\"authentication\"},{\"action\":\"pong\"}]");
    json_decref(upto);
    json_t *rest = chanc_communicator_receive_all_json(c, 1000);
    chanc_assert_json_match(rest, "[{\"action\":\"echo\",\"payload\":\"after\"}]");
    json_decref(rest);
}

static void test_transcript_records_both_directions_and_close(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/echo/");
    chanc_assert_connect(c);
    chanc_communicator_send_message(c, &demo_ping, NULL);
    chanc_test_settle(t, 1000);
    chanc_test_advance(t, 250);
    chanc_communicator_disconnect_code(c, 4321);
    const json_t *tr = chanc_communicator_transcript(c);
    chanc_assert_json_match(
        (json_t *)tr,
        "[{\"dir\":\"open\",\"t\":0},"
        "{\"dir\":\"recv\",\"frame\":\"{\\\"action\\\":\\\"authentication\\\",\\\"payload\\\":{\\\"status_code\\\":200,\\\"status_text\\\":\\\"OK\\\",\\\"data\\\":{\\\"detail\\\":\\\"OK\\\"}}}\"},"
        "{\"dir\":\"send\",\"frame\":\"{\\\"action\\\":\\\"ping\\\",\\\"payload\\\":null}\"},"
        "{\"dir\":\"recv\",\"frame\":\"{\\\"action\\\":\\\"pong\\\",\\\"payload\\\":null}\"},"
        "{\"dir\":\"recv\",\"frame\":\"{\\\"action\\\":\\\"complete\\\",\\\"payload\\\":null}\"},"
        "{\"dir\":\"disconnect\",\"code\":4321,\"t\":250}]");
}

static void test_server_close_is_reported_with_code_and_reason(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = room_client(t, "attic", "alice");
    assert_true(chanc_communicator_connect(c, 1000));
    chanc_assert_authenticated_status(c, 404);
    chanc_assert_closed(c, CHANC_CLOSE_NOT_FOUND);
    assert_string_equal(chanc_communicator_close_reason(c), "Not Found");
    assert_int_equal(chanc_communicator_send_text(c, "{}"), CHANC_ECLOSED);
    chanc_communicator_disconnect(c); /* no-op once closed */
    assert_int_equal(chanc_communicator_close_code(c), CHANC_CLOSE_NOT_FOUND);
}

static void test_default_headers_apply_to_new_communicators(void **state) {
    chanc_test_t *t = *state;
    chanc_test_set_default_header(t, "Cookie", "sessionid=s-alice");
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/cookie/");
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    chanc_communicator_t *anon = chanc_test_communicator(t, "/ws/cookie/");
    chanc_communicator_set_header(anon, "cookie", "sessionid=someone-else");
    chanc_assert_connect(anon);
    chanc_assert_authenticated_status(anon, 403);
}

static void test_fixture_cleans_up_open_communicators(void **state) {
    chanc_test_t *t = *state;
    /* Left open on purpose: teardown disconnects, runs the disconnect
     * hooks, settles and checks the loop closes cleanly (valgrind checks
     * nothing leaks). */
    for (int i = 0; i < 5; i++) {
        chanc_communicator_t *c = room_client(t, "lobby", i % 2 ? "bob" : "alice");
        chanc_assert_connect(c);
    }
    chanc_communicator_t *never = chanc_test_communicator(t, "/ws/echo/");
    (void)never; /* created, never connected */
    assert_int_equal(chanc_app_connections(t->app), 5);
}

static void test_two_fixtures_in_one_test(void **state) {
    (void)state;
    chanc_test_options_t opts = {.setup = demo_setup};
    chanc_test_t *other = chanc_test_create(&opts);
    assert_non_null(other);
    chanc_communicator_t *c = chanc_test_communicator(other, "/ws/echo/");
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    chanc_test_destroy(other);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        DEMO_TEST(test_the_documented_flow),
        cmocka_unit_test_setup_teardown(test_settle_waits_for_work_on_another_thread,
                                        compute_fixture, demo_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_work_finishing_after_disconnect_is_dropped,
                                        compute_fixture, demo_fixture_teardown),
        DEMO_TEST(test_receive_json_returns_frames_in_order_then_null),
        DEMO_TEST(test_receive_until_action_leaves_later_frames),
        DEMO_TEST(test_transcript_records_both_directions_and_close),
        DEMO_TEST(test_server_close_is_reported_with_code_and_reason),
        DEMO_TEST(test_default_headers_apply_to_new_communicators),
        DEMO_TEST(test_fixture_cleans_up_open_communicators),
        cmocka_unit_test(test_two_fixtures_in_one_test),
    };
    return chanc_run_group_tests_name("testing.communicator", tests, NULL, NULL);
}
