/* testing.harness: the leak ledger's counts, virtual time running timers in
 * order, receive_nothing seeing a late frame, transcripts written to
 * CHANC_TRANSCRIPT_DIR. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "probe_consumer.h"


static void test_ledger_counts_what_is_alive(void **state) {
    chanc_test_t *t = *state;
    chanc_test_ledger_t l;
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/probe/");
    chanc_assert_connect(c);
    chanc_test_ledger(t, &l);
    assert_int_equal(l.connections, 1);
    json_t *v = json_pack("{s:[i,i]}", "a", 1, 2);
    chanc_test_ledger_t with;
    chanc_test_ledger(t, &with);
    assert_true(with.json >= l.json + 4); /* object, array, two integers */
    json_decref(v);
    chanc_communicator_disconnect(c);
    chanc_test_ledger(t, &l);
    assert_int_equal(l.connections, 0);
    assert_int_equal(l.envelopes, 0);
}

typedef struct tick {
    chanc_app_t *app;
    uint64_t at[8];
    int n;
} ticks_t;

static ticks_t ticks;

static void tick(void *arg) {
    ticks.at[ticks.n++] = chanc_app_mono_ms(ticks.app) * 10 + (uint64_t)(uintptr_t)arg;
}

static void tick_and_start_another(void *arg) {
    tick(arg);
    chanc_app_timer_start(ticks.app, 50, tick, (void *)4);
}

static void test_advance_runs_due_timers_in_order(void **state) {
    chanc_test_t *t = *state;
    ticks = (ticks_t){.app = t->app};
    uint64_t t0 = chanc_app_mono_ms(t->app);
    chanc_app_timer_start(t->app, 300, tick, (void *)3);
    chanc_app_timer_start(t->app, 100, tick_and_start_another, (void *)1);
    chanc_app_timer_start(t->app, 200, tick, (void *)2);
    chanc_timer_t *never = chanc_app_timer_start(t->app, 250, tick, (void *)9);
    chanc_timer_cancel(never);
    chanc_test_advance(t, 99);
    assert_int_equal(ticks.n, 0);
    chanc_test_advance(t, 1000);
    assert_int_equal(ticks.n, 4);
    /* Each ran with the clock at its own due time, in due order. */
    assert_int_equal(ticks.at[0], (t0 + 100) * 10 + 1);
    assert_int_equal(ticks.at[1], (t0 + 150) * 10 + 4);
    assert_int_equal(ticks.at[2], (t0 + 200) * 10 + 2);
    assert_int_equal(ticks.at[3], (t0 + 300) * 10 + 3);
    assert_int_equal(chanc_app_mono_ms(t->app), t0 + 1099);
    uint64_t due;
    assert_false(chanc_app_next_timer(t->app, &due));
}

static void test_receive_nothing_sees_a_frame_after_slow_work(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/probe/");
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    chanc_communicator_send_message(c, &probe_later, json_string("x"));
    assert_false(chanc_communicator_receive_nothing(c, 10000)); /* a bound, not a wait */
    chanc_assert_receive_match(c, "{\"action\":\"reply\",\"payload\":\"x\"}");
}

static void test_transcripts_go_to_the_directory(void **state) {
    (void)state;
    char dir[] = "/tmp/chanc-transcripts-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *saved = getenv("CHANC_TRANSCRIPT_DIR") ? strdup(getenv("CHANC_TRANSCRIPT_DIR")) : NULL;
    setenv("CHANC_TRANSCRIPT_DIR", dir, 1);
    chanc_test_t *t = chanc_test_create(&(chanc_test_options_t){.setup = probe_setup, .name = "named"});
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/probe/");
    chanc_assert_connect(c);
    chanc_communicator_send_message(c, &probe_echo, json_string("hi"));
    chanc_test_destroy(t);
    if (saved) {
        setenv("CHANC_TRANSCRIPT_DIR", saved, 1);
        free(saved);
    } else {
        unsetenv("CHANC_TRANSCRIPT_DIR");
    }
    char path[256];
    snprintf(path, sizeof path, "%s/test_testing_harness.named.jsonl", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[512];
    int n = 0;
    bool saw_reply = false;
    while (fgets(line, sizeof line, f)) {
        n++;
        json_t *e = json_loads(line, 0, NULL);
        assert_non_null(e);
        if (chanc_json_str(e, "/frame/action") && !strcmp(chanc_json_str(e, "/frame/action"), "reply"))
            saw_reply = true;
        assert_int_equal(chanc_json_int(e, "/client", -1), 0);
        json_decref(e);
    }
    fclose(f);
    assert_true(n >= 5); /* open, auth, send, reply, complete, disconnect */
    assert_true(saw_reply);
    unlink(path);
    rmdir(dir);
}

static int setup_keepalive(void **state) {
    *state = chanc_test_create(&(chanc_test_options_t){
        .setup = probe_setup,
        .name = *state,
        .app = {.keepalive_ms = 30000, .keepalive_timeout_ms = 10000}});
    return *state ? 0 : -1;
}

static size_t count_dir(const chanc_communicator_t *c, const char *dir) {
    size_t n = 0, i;
    json_t *e;
    json_array_foreach(chanc_communicator_transcript(c), i, e)
        n += !strcmp(json_string_value(json_object_get(e, "dir")), dir);
    return n;
}

static void test_keepalive_pings_idle_clients_only(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/probe/");
    chanc_assert_connect(c);
    chanc_test_advance(t, 29999);
    assert_int_equal(count_dir(c, "ping"), 0);
    chanc_test_advance(t, 1);
    assert_int_equal(count_dir(c, "ping"), 1);
    assert_int_equal(count_dir(c, "pong"), 1); /* answered: stays open */
    /* Activity postpones the next ping: a frame at +20 s, ping at +50 s. */
    chanc_test_advance(t, 20000);
    chanc_communicator_send_message(c, &probe_echo, json_string("busy"));
    chanc_test_advance(t, 29999);
    assert_int_equal(count_dir(c, "ping"), 1);
    chanc_test_advance(t, 1);
    assert_int_equal(count_dir(c, "ping"), 2);
    assert_false(chanc_communicator_closed(c));
}

static void test_keepalive_closes_a_client_that_does_not_answer(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *quiet = chanc_test_communicator(t, "/ws/probe/");
    chanc_communicator_t *alive = chanc_test_communicator(t, "/ws/probe/");
    chanc_assert_connect(quiet);
    chanc_assert_connect(alive);
    chanc_communicator_answer_pings(quiet, false);
    chanc_test_advance(t, 30000 + 9999);
    assert_false(chanc_communicator_closed(quiet));
    chanc_test_advance(t, 1);
    chanc_assert_closed(quiet, 4408);
    assert_string_equal(chanc_communicator_close_reason(quiet), "keepalive timeout");
    assert_false(chanc_communicator_closed(alive));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        PROBE_TEST(test_ledger_counts_what_is_alive),
        PROBE_TEST(test_advance_runs_due_timers_in_order),
        PROBE_TEST(test_receive_nothing_sees_a_frame_after_slow_work),
        cmocka_unit_test(test_transcripts_go_to_the_directory),
        chanc_unit_test(test_keepalive_pings_idle_clients_only, setup_keepalive,
                        probe_fixture_teardown),
        chanc_unit_test(test_keepalive_closes_a_client_that_does_not_answer, setup_keepalive,
                        probe_fixture_teardown),
    };
    return chanc_run_group_tests_name("testing.harness", tests, NULL, NULL);
}
