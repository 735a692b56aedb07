/* framework.events: typed server events to a group and to one connection
 * (chanc_app_group_event, chanc_app_channel_event), posted from another
 * thread (chanc_app_post_event), and a handler that passes an event on to
 * its client (chanc_conn_pass_event) or not; events to a closing
 * connection, bad payloads and misuse; posts pending when the app goes. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "chanc/testing.h"

/* ---- a board consumer: ws/board/{name}/ --------------------------------- *
 * Every connection joins the group "board" and records its channel by
 * name. On the event `notice` a connection named quiet* says nothing to
 * its client, the others pass it on as the declared outgoing `notice`
 * (whose text is shorter than the event's may be). On `bye` the hook
 * closes its connection (4000), then tries to pass the event on. */

static const chanc_message_type_t ev_notice = {
    .action = "notice",
    .payload = CHANC_OBJECT(CHANC_FIELD("text", CHANC_STRING(.min_length = 1, .max_length = 100)))};
static const chanc_message_type_t ev_bye = {.action = "bye"};
static const chanc_message_type_t ev_other = {.action = "other"}; /* not in `events` */
static const chanc_message_type_t *const board_events[] = {&ev_notice, &ev_bye, NULL};

static const chanc_message_type_t out_notice = {
    .action = "notice",
    .payload = CHANC_OBJECT(CHANC_FIELD("text", CHANC_STRING(.min_length = 1, .max_length = 20)))};
static const chanc_message_type_t out_bye = {.action = "bye"};
static const chanc_message_type_t out_undeclared = {.action = "notice"}; /* not in `outgoing` */
static const chanc_message_type_t *const board_outgoing[] = {
    &chanc_msg_authentication, &out_notice, &out_bye, NULL};

#define MAX_CONNS 8
static struct {
    char name[32];
    char channel[48];
    int events;  /* receive_event ran */
    int pass_rc; /* chanc_conn_pass_event's last answer */
} conns[MAX_CONNS];
static int nconns;

static int index_of(const char *name) {
    for (int i = 0; i < nconns; i++)
        if (strcmp(conns[i].name, name) == 0)
            return i;
    return -1;
}

static int slot(chanc_conn_t *c) { return index_of(chanc_conn_param(c, "name")); }

static int find(const char *name) {
    int i = index_of(name);
    if (i < 0)
        fail_msg("no connection called %s", name);
    return i;
}

static int board_groups(chanc_conn_t *c) {
    if (nconns == MAX_CONNS)
        return CHANC_ENOMEM;
    snprintf(conns[nconns].name, sizeof conns[0].name, "%s", chanc_conn_param(c, "name"));
    snprintf(conns[nconns].channel, sizeof conns[0].channel, "%s", chanc_conn_channel(c));
    nconns++;
    return chanc_conn_group_add(c, "board");
}

static int board_event(chanc_conn_t *c, const chanc_message_type_t *type, const json_t *payload) {
    (void)payload;
    int i = slot(c);
    conns[i].events++;
    const char *name = conns[i].name;
    if (type == &ev_bye) {
        chanc_conn_close(c, 4000, "bye");
        conns[i].pass_rc = chanc_conn_pass_event(c, &out_bye);
        return 0;
    }
    if (strncmp(name, "quiet", 5) == 0)
        return 0; /* this one's client is not told */
    conns[i].pass_rc = chanc_conn_pass_event(
        c, strncmp(name, "undeclared", 10) == 0 ? &out_undeclared : &out_notice);
    return 0;
}

static const chanc_consumer_t board = {
    .name = "board",
    .outgoing = board_outgoing,
    .build_groups = board_groups,
    .events = board_events,
    .receive_event = board_event,
};

static int setup_routes(chanc_test_t *t, void *ud) {
    (void)ud;
    return chanc_app_route(t->app, "ws/board/{name}/", &board, NULL);
}

static int fixture_setup(void **state) {
    memset(conns, 0, sizeof conns);
    nconns = 0;
    chanc_test_options_t opts = {.setup = setup_routes, .name = *state};
    *state = chanc_test_create(&opts);
    return *state ? 0 : -1;
}

static int fixture_teardown(void **state) {
    chanc_test_destroy(*state);
    return 0;
}

static chanc_communicator_t *join(chanc_test_t *t, const char *name) {
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/board/%s/", name);
    chanc_assert_connect(c);
    chanc_assert_authenticated_status_ok(c);
    return c;
}

static json_t *notice(const char *text) { return json_pack("{s:s}", "text", text); }

/* ---- group and channel events ---------------------------------------------- */

/* A group event reaches every member's handler before the call returns;
 * two pass it on, the quiet one does not. The two clients get the same
 * frame, encoded once when the event was sent. */
static void test_group_event_passed_on_or_not(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *ann = join(t, "ann");
    chanc_communicator_t *bob = join(t, "bob");
    chanc_communicator_t *quiet = join(t, "quiet");
    chanc_app_stats_t before, after;
    chanc_app_stats(t->app, &before);
    assert_int_equal(chanc_app_group_event(t->app, "board", &ev_notice, notice("hello")), 0);
    assert_int_equal(conns[find("ann")].events + conns[find("bob")].events +
                         conns[find("quiet")].events,
                     3);
    chanc_assert_receive_all_match(ann, "[{\"action\":\"notice\",\"payload\":{\"text\":\"hello\"}}]");
    chanc_assert_receive_all_match(bob, "[{\"action\":\"notice\",\"payload\":{\"text\":\"hello\"}}]");
    chanc_assert_receive_nothing(quiet);
    chanc_app_stats(t->app, &after);
    assert_int_equal(after.encodes - before.encodes, 1); /* one encoding, two clients */
    assert_int_equal(conns[find("ann")].pass_rc, 0);
    /* ...and the in-memory layer's copy does not run the handlers again. */
    assert_int_equal(conns[find("ann")].events, 1);
}

/* A channel event reaches that one connection; a channel nobody owns is
 * no error; a name that is not a channel name is refused. */
static void test_channel_event_reaches_one_connection(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *ann = join(t, "ann");
    chanc_communicator_t *bob = join(t, "bob");
    assert_int_equal(chanc_app_channel_event(t->app, conns[find("bob")].channel, &ev_notice,
                                             notice("just you")),
                     0);
    chanc_assert_receive_all_match(bob,
                                   "[{\"action\":\"notice\",\"payload\":{\"text\":\"just you\"}}]");
    chanc_assert_receive_nothing(ann);
    assert_int_equal(conns[find("ann")].events, 0);
    assert_int_equal(chanc_app_channel_event(t->app, "0123456789abcdef!999999", &ev_notice,
                                             notice("nobody")),
                     0);
    assert_int_equal(chanc_app_channel_event(t->app, "board", &ev_notice, notice("x")),
                     CHANC_EINVAL);
    assert_int_equal(chanc_app_channel_event(t->app, NULL, &ev_notice, notice("x")), CHANC_EINVAL);
    chanc_assert_receive_nothing(ann);
    chanc_assert_receive_nothing(bob);
}

/* ---- from another thread ------------------------------------------------------ */

#define POSTS 40
typedef struct poster {
    chanc_app_t *app;
    char channel[48];
    int rc[POSTS];
    int bad_payload_rc, bad_name_rc, bad_kind_rc;
} poster_t;

/* Alternately to the group and to ann's channel, numbered; then three
 * refusals, answered on this thread. */
static void post_thread(void *arg) {
    poster_t *p = arg;
    for (int i = 0; i < POSTS; i++) {
        char text[16];
        snprintf(text, sizeof text, "n%d", i);
        p->rc[i] = i % 2 ? chanc_app_post_event(p->app, CHANC_EVENT_CHANNEL, p->channel,
                                                &ev_notice, notice(text))
                         : chanc_app_post_event(p->app, CHANC_EVENT_GROUP, "board", &ev_notice,
                                                notice(text));
    }
    p->bad_payload_rc = chanc_app_post_event(p->app, CHANC_EVENT_GROUP, "board", &ev_notice,
                                             json_pack("{s:i}", "text", 1));
    p->bad_name_rc =
        chanc_app_post_event(p->app, CHANC_EVENT_GROUP, "no spaces", &ev_notice, notice("x"));
    p->bad_kind_rc = chanc_app_post_event(p->app, (chanc_event_target_t)7, "board", &ev_notice,
                                          notice("x"));
}

static void test_post_event_from_a_thread(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *ann = join(t, "ann");
    chanc_communicator_t *bob = join(t, "bob");
    poster_t p = {.app = t->app};
    snprintf(p.channel, sizeof p.channel, "%s", conns[find("ann")].channel);
    uv_thread_t th;
    assert_int_equal(uv_thread_create(&th, post_thread, &p), 0);
    assert_int_equal(uv_thread_join(&th), 0);
    for (int i = 0; i < POSTS; i++)
        assert_int_equal(p.rc[i], 0);
    assert_int_equal(p.bad_payload_rc, CHANC_EVALIDATION);
    assert_int_equal(p.bad_name_rc, CHANC_EINVAL);
    assert_int_equal(p.bad_kind_rc, CHANC_EINVAL);
    /* Queued, not delivered: the app is not settled until the loop sent them. */
    assert_false(chanc_app_settled(t->app));
    assert_int_equal(chanc_test_settle(t, 5000), 0);
    /* ann: all of them, in posting order; bob: the group's half. */
    json_t *got = chanc_communicator_receive_all_json(ann, 1000);
    assert_int_equal(json_array_size(got), POSTS);
    for (int i = 0; i < POSTS; i++) {
        char want[96];
        snprintf(want, sizeof want, "{\"action\":\"notice\",\"payload\":{\"text\":\"n%d\"}}", i);
        chanc_assert_json_match(json_array_get(got, (size_t)i), want);
    }
    json_decref(got);
    got = chanc_communicator_receive_all_json(bob, 1000);
    assert_int_equal(json_array_size(got), POSTS / 2);
    chanc_assert_json_match(json_array_get(got, 1), "{\"payload\":{\"text\":\"n2\"}}");
    json_decref(got);
}

/* Events still queued when the app is destroyed are freed undelivered
 * (valgrind: no leak), and a post once destroy has begun is refused. */
static int closed_rc;
static void post_during_destroy(void *arg) {
    closed_rc = chanc_app_post_event(arg, CHANC_EVENT_GROUP, "board", &ev_notice, notice("late"));
}

static void post_three(void *arg) {
    for (int i = 0; i < 3; i++)
        chanc_app_post_event(arg, CHANC_EVENT_GROUP, "board", &ev_notice, notice("pending"));
}

static void test_posts_pending_at_destroy_are_freed(void **state) {
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    chanc_app_config_t cfg = {.loop = &loop};
    chanc_app_t *app = chanc_app_create(&cfg, NULL);
    assert_non_null(app);
    assert_int_equal(chanc_app_on_destroy(app, post_during_destroy, app), 0);
    uv_thread_t th;
    assert_int_equal(uv_thread_create(&th, post_three, app), 0);
    assert_int_equal(uv_thread_join(&th), 0);
    assert_false(chanc_app_settled(app));
    closed_rc = 0;
    chanc_app_destroy(app);
    assert_int_equal(closed_rc, CHANC_ECLOSED);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- handlers, closing connections, bad input ----------------------------------- */

/* A hook that closed its own connection cannot pass the event on; a
 * closing connection's hook does not run for later events. */
static void test_events_to_a_closing_connection(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *ann = join(t, "ann");
    chanc_communicator_t *bob = join(t, "bob");
    assert_int_equal(chanc_app_channel_event(t->app, conns[find("bob")].channel, &ev_bye, NULL),
                     0);
    assert_int_equal(conns[find("bob")].pass_rc, CHANC_ECLOSED);
    assert_int_equal(chanc_app_group_event(t->app, "board", &ev_notice, notice("after")), 0);
    assert_int_equal(conns[find("bob")].events, 1); /* only bye */
    chanc_assert_closed(bob, 4000);
    chanc_assert_receive_all_match(ann, "[{\"action\":\"notice\",\"payload\":{\"text\":\"after\"}}]");
    /* A post to a connection that has gone meanwhile: delivered to nobody. */
    assert_int_equal(chanc_app_post_event(t->app, CHANC_EVENT_CHANNEL, conns[find("bob")].channel,
                                          &ev_notice, notice("gone")),
                     0);
    assert_int_equal(chanc_test_settle(t, 5000), 0);
    assert_int_equal(conns[find("bob")].events, 1);
    chanc_assert_receive_nothing(ann);
}

/* A payload that does not match the event's type is refused and reaches
 * nobody; an event the consumer does not list is ignored; an event the
 * outgoing type does not accept (text over 20) is not passed on; passing
 * on as an undeclared type, or outside a hook, is refused. */
static void test_bad_payloads_and_misuse(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *ann = join(t, "ann");
    chanc_communicator_t *und = join(t, "undeclared");
    assert_int_equal(chanc_app_group_event(t->app, "board", &ev_notice, json_pack("{s:i}", "text", 3)),
                     CHANC_EVALIDATION);
    assert_int_equal(chanc_app_group_event(t->app, "board", &ev_notice, json_string("hi")),
                     CHANC_EVALIDATION);
    assert_int_equal(chanc_app_group_event(t->app, "board", &ev_other, NULL), 0);
    assert_int_equal(chanc_app_group_event(t->app, "board", NULL, NULL), CHANC_EINVAL);
    assert_int_equal(conns[find("ann")].events, 0);

    assert_int_equal(chanc_app_group_event(t->app, "board", &ev_notice,
                                           notice("longer than twenty characters")),
                     0);
    assert_int_equal(conns[find("ann")].events, 1);
    assert_int_equal(conns[find("ann")].pass_rc, CHANC_EVALIDATION);
    assert_true(chanc_test_log_contains(t, CHANC_LOG_ERROR, "not passed on as notice"));
    assert_int_equal(conns[find("undeclared")].pass_rc, CHANC_EINVAL);
    assert_int_equal(chanc_conn_pass_event(NULL, &out_notice), CHANC_EINVAL);
    chanc_assert_receive_nothing(ann);
    chanc_assert_receive_nothing(und);
    assert_false(chanc_communicator_closed(ann));
}

int main(void) {
#define T(f) chanc_unit_test(f, fixture_setup, fixture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_group_event_passed_on_or_not),
        T(test_channel_event_reaches_one_connection),
        T(test_post_event_from_a_thread),
        cmocka_unit_test(test_posts_pending_at_destroy_are_freed),
        T(test_events_to_a_closing_connection),
        T(test_bad_payloads_and_misuse),
    };
    return chanc_run_group_tests_name("framework.events", tests, NULL, NULL);
}
