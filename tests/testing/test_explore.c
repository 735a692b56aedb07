/* testing.explore: explored schedules (chanc/schedule.h, docs/testing.md
 * "Explored schedules"). Under a seeded scheduler the framework's
 * documented orders still hold (one connection's frames, one sender's group
 * messages, every member seeing a group's messages in one order, a frame's
 * `complete` after its outcome), a seed names one schedule exactly, and the
 * schedules really differ: which client's frames run first and which of the
 * timers due at one instant runs first change from seed to seed. The tests
 * without a seed of their own run under the run's schedule: FIFO in the
 * unit suite, schedules 1..K under the `explore` label. */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <string.h>

#include "chanc/testing.h"

/* --- a relay: every member of one group hears what each says ------------ */

static const chanc_message_type_t say_msg = {.action = "say", .payload = CHANC_STRING()};
static const chanc_message_type_t *const relay_incoming[] = {&say_msg, NULL};

static int relay_groups(chanc_conn_t *c) { return chanc_conn_group_add(c, "relay"); }

static int relay_receive(chanc_conn_t *c, const chanc_message_type_t *type, const json_t *payload,
                         const json_t *frame) {
    (void)type;
    (void)frame;
    return chanc_conn_group_send(c, "relay",
                                 json_pack("{s:s,s:{s:s,s:O}}", "action", "said", "payload",
                                           "from", chanc_conn_param(c, "name"), "text", payload),
                                 0);
}

static const chanc_consumer_t relay = {.name = "relay",
                                       .incoming = relay_incoming,
                                       .build_groups = relay_groups,
                                       .receive_message = relay_receive,
                                       .send_completion = true};

static int relay_routes(chanc_test_t *t, void *ud) {
    (void)ud;
    return chanc_app_route(t->app, "ws/relay/{name}/", &relay, NULL);
}

static chanc_test_t *relay_fixture(uint64_t seed, const char *name) {
    return chanc_test_create(&(chanc_test_options_t){.setup = relay_routes,
                                                     .name = name,
                                                     .seed = seed,
                                                     .app.rate_limit = CHANC_RATE_UNLIMITED});
}

static chanc_communicator_t *member(chanc_test_t *t, const char *name) {
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/relay/%s/", name);
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    return c;
}

#define SENDERS 3
#define FRAMES 4
static const char *const names[SENDERS] = {"ann", "bob", "cy"};

/* An observer and the senders, connected; then each sender's FRAMES
 * frames ("ann0", "ann1", …), all queued before the app runs. The
 * observer; the senders in c. */
static chanc_communicator_t *start_round(chanc_test_t *t, chanc_communicator_t **c) {
    chanc_communicator_t *obs = member(t, "obs");
    for (int s = 0; s < SENDERS; s++)
        c[s] = member(t, names[s]);
    for (int f = 0; f < FRAMES; f++)
        for (int s = 0; s < SENDERS; s++) {
            char text[16];
            snprintf(text, sizeof text, "%s%d", names[s], f);
            assert_int_equal(chanc_communicator_send_message(c[s], &say_msg, json_string(text)),
                             0);
        }
    return obs;
}

/* The order in which the observer heard a round, as "ann0 cy0 ann1 …". */
static void relay_round(chanc_test_t *t, char *heard, size_t size) {
    chanc_communicator_t *c[SENDERS];
    json_t *got = chanc_communicator_receive_all_json(start_round(t, c), 5000);
    assert_int_equal(json_array_size(got), SENDERS * FRAMES);
    size_t len = 0;
    heard[0] = '\0';
    for (size_t i = 0; i < json_array_size(got); i++)
        len += (size_t)snprintf(heard + len, size - len, "%s%s", i ? " " : "",
                                chanc_json_str(json_array_get(got, i), "/payload/text"));
    json_decref(got);
}

/* --- the documented orders, under the run's schedule --------------------- */

static void test_frame_and_sender_orders_hold(void **state) {
    (void)state;
    chanc_test_t *t = relay_fixture(0, "frame_and_sender_orders");
    chanc_communicator_t *c[SENDERS], *obs = start_round(t, c);
    /* Every member, senders included, hears the same sequence: one order
     * per group, and in it each sender's frames in the order sent. */
    json_t *heard = chanc_communicator_receive_all_json(obs, 5000);
    assert_int_equal(json_array_size(heard), SENDERS * FRAMES);
    int next[SENDERS] = {0};
    for (size_t i = 0; i < json_array_size(heard); i++) {
        const json_t *m = json_array_get(heard, i);
        int s = 0;
        while (s < SENDERS && strcmp(names[s], chanc_json_str(m, "/payload/from")) != 0)
            s++;
        assert_true(s < SENDERS);
        char want[16];
        snprintf(want, sizeof want, "%s%d", names[s], next[s]++);
        assert_string_equal(chanc_json_str(m, "/payload/text"), want);
    }
    for (int s = 0; s < SENDERS; s++) {
        /* The sender's own copies: the same sequence; and a complete for
         * each of its frames. */
        json_t *all = json_array();
        json_t *f;
        size_t completes = 0;
        while ((f = chanc_communicator_receive_json(c[s], 1000)) != NULL) {
            const char *action = chanc_json_str(f, "/action");
            if (strcmp(action, "complete") == 0)
                completes++;
            else if (strcmp(action, "group_complete") != 0)
                json_array_append(all, f);
            json_decref(f);
        }
        assert_int_equal(completes, FRAMES);
        assert_int_equal(json_array_size(all), json_array_size(heard));
        for (size_t i = 0; i < json_array_size(all); i++)
            assert_true(json_equal(json_object_get(json_array_get(all, i), "payload"),
                                   json_object_get(json_array_get(heard, i), "payload")));
        json_decref(all);
    }
    json_decref(heard);
    chanc_test_destroy(t);
}

/* --- a seed names one schedule; the schedules differ ----------------------- */

#define SEEDS 24

static void test_a_seed_replays_its_schedule_and_seeds_differ(void **state) {
    (void)state;
    char first[SEEDS][256];
    int distinct = 0;
    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        chanc_test_t *t = relay_fixture(seed, "replay");
        relay_round(t, first[seed - 1], sizeof first[0]);
        chanc_test_destroy(t);
        bool seen = false;
        for (uint64_t s = 1; s < seed && !seen; s++)
            seen = strcmp(first[s - 1], first[seed - 1]) == 0;
        distinct += !seen;
    }
    /* Again, seed by seed: the same order each time. */
    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        char again[256];
        chanc_test_t *t = relay_fixture(seed, "replay");
        relay_round(t, again, sizeof again);
        chanc_test_destroy(t);
        assert_string_equal(again, first[seed - 1]);
    }
    /* 12 frames from 3 senders: 34,650 orders keep each sender's; 24
     * seeds drawing among them give (nearly) 24 different ones. */
    printf("[   INFO   ] %d distinct orders in %d seeds; seed 1: %s\n", distinct, SEEDS, first[0]);
    assert_true(distinct >= SEEDS / 2);
}

/* --- one message's recipients ----------------------------------------------- */

/* A transport of our own that writes down which connection each frame was
 * written to, in the order of the writes. */
typedef struct recorder {
    char name;
    char *log;
} recorder_t;

static int record_write(void *tctx, chanc_buf_t *frame) {
    recorder_t *r = tctx;
    if (memmem(frame->data, frame->len, "\"said\"", 6)) {
        size_t n = strlen(r->log);
        r->log[n] = r->name;
        r->log[n + 1] = '\0';
    }
    return 0;
}

static void record_close(void *tctx, int code, const char *reason) {
    (void)tctx, (void)code, (void)reason;
}

static const chanc_transport_ops_t recorder_ops = {.write = record_write, .close = record_close};

/* Five members get one group message: the order of the writes. */
static void recipients_round(uint64_t seed, char out[8]) {
    chanc_test_t *t = relay_fixture(seed, "recipients");
    out[0] = '\0';
    recorder_t r[5];
    chanc_conn_t *c[5];
    for (int i = 0; i < 5; i++) {
        r[i] = (recorder_t){(char)('a' + i), out};
        char path[32];
        snprintf(path, sizeof path, "/ws/relay/%c/", r[i].name);
        chanc_request_t req = {path, NULL, 0};
        assert_int_equal(chanc_conn_open(t->app, &req, &recorder_ops, &r[i], &c[i]), 0);
        chanc_transport_opened(c[i]);
    }
    assert_int_equal(chanc_test_settle(t, 1000), 0);
    const char *say = "{\"action\":\"say\",\"payload\":\"hi\"}";
    chanc_transport_received(c[0], say, strlen(say), false);
    assert_int_equal(chanc_test_settle(t, 1000), 0);
    for (int i = 0; i < 5; i++)
        chanc_transport_closed(c[i], 1000);
    chanc_test_destroy(t);
}

static void test_one_message_reaches_its_members_in_a_drawn_order(void **state) {
    (void)state;
    char order[8], again[8];
    int differ = 0;
    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        recipients_round(seed, order);
        recipients_round(seed, again);
        assert_string_equal(order, again);
        assert_int_equal(strlen(order), 5); /* each member once */
        for (char m = 'a'; m <= 'e'; m++)
            assert_non_null(strchr(order, m));
        differ += strcmp(order, "abcde") != 0;
    }
    assert_true(differ > 0);
}

/* --- timers due at one instant --------------------------------------------- */

typedef struct tick {
    char *log;
    char name;
} tick_t;

static void on_tick(void *arg) {
    tick_t *k = arg;
    size_t n = strlen(k->log);
    k->log[n] = k->name;
    k->log[n + 1] = '\0';
}

/* a, b, c and d due at 100 ms, e at 50 ms and f at 150 ms: the order they
 * ran in. */
static void timers_round(uint64_t seed, char out[8]) {
    chanc_test_t *t =
        chanc_test_create(&(chanc_test_options_t){.name = "timers", .seed = seed});
    out[0] = '\0';
    tick_t k[6];
    for (int i = 0; i < 6; i++) {
        k[i] = (tick_t){out, (char)('a' + i)};
        uint64_t delay = i == 4 ? 50 : i == 5 ? 150 : 100;
        assert_non_null(chanc_app_timer_start(t->app, delay, on_tick, &k[i]));
    }
    chanc_test_advance(t, 200);
    chanc_test_destroy(t);
}

static void test_timers_due_together_run_in_a_drawn_order(void **state) {
    (void)state;
    char fifo[8], order[8], again[8];
    timers_round(0, fifo);
    if (!getenv("CHANC_SEED") && !getenv("CHANC_EXPLORE"))
        assert_string_equal(fifo, "eabcdf"); /* without a scheduler: start order */
    int differ = 0;
    for (uint64_t seed = 1; seed <= SEEDS; seed++) {
        timers_round(seed, order);
        timers_round(seed, again);
        assert_string_equal(order, again);
        /* Due order holds under every schedule: e first, f last. */
        assert_int_equal(order[0], 'e');
        assert_int_equal(order[5], 'f');
        differ += strcmp(order, "eabcdf") != 0;
    }
    assert_true(differ > 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_and_sender_orders_hold),
        cmocka_unit_test(test_a_seed_replays_its_schedule_and_seeds_differ),
        cmocka_unit_test(test_one_message_reaches_its_members_in_a_drawn_order),
        cmocka_unit_test(test_timers_due_together_run_in_a_drawn_order),
    };
    return chanc_run_group_tests(tests, NULL, NULL);
}
