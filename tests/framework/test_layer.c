/* framework.layer: the channel-layer interface seen from a layer's side. A
 * recording layer proves that consumers need no change, that a process
 * subscribes once per group, that one group message is published once
 * whatever the number of local members, and that deliveries come back
 * through chanc_layer_deliver_*. Then the same behaviour tests run against
 * a real layer, chosen by argv[1]: "memory" (default; ctest
 * framework.layer) or "redis" (framework.layer.redis: a throwaway
 * redis-server, two apps as two processes, Redis restarts). */
#include <hiredis/hiredis.h>
#include <signal.h>
#include <uv.h>

#include "redis_proc.h"
#include "test_common.h"

typedef struct op {
    const char *what;
    char target[64];
} op_t;

typedef struct recording_layer {
    chanc_layer_t base;
    op_t ops[64];
    size_t nops;
    int published;
} recording_layer_t;

static recording_layer_t *rl; /* the fixture's layer, for assertions */

static void log_op(chanc_layer_t *l, const char *what, const char *target) {
    recording_layer_t *r = (recording_layer_t *)l;
    if (r->nops < 64) {
        r->ops[r->nops].what = what;
        snprintf(r->ops[r->nops].target, sizeof r->ops[r->nops].target, "%s", target);
        r->nops++;
    }
}

static int rec_subscribe(chanc_layer_t *l, const char *g) {
    log_op(l, "subscribe", g);
    return 0;
}

static int rec_unsubscribe(chanc_layer_t *l, const char *g) {
    log_op(l, "unsubscribe", g);
    return 0;
}

typedef struct hop {
    chanc_app_t *app;
    chanc_envelope_t *env;
    char group[64];
} hop_t;

/* Like a broker round trip: the message comes back on a later loop turn,
 * re-encoded from bytes as another process would see it. */
static void come_back(void *arg) {
    hop_t *h = arg;
    chanc_buf_t *copy = chanc_buf_new(h->env->frame->data, h->env->frame->len);
    chanc_envelope_t *remote = chanc_envelope_new(copy, h->env->sender_user, h->env->sender_node,
                                                  h->env->sender_conn, h->env->flags);
    chanc_buf_unref(copy);
    chanc_layer_deliver_group(h->app, h->group, remote);
    chanc_envelope_unref(remote);
    chanc_envelope_unref(h->env);
    free(h);
}

static int rec_publish_group(chanc_layer_t *l, const char *g, chanc_envelope_t *env) {
    recording_layer_t *r = (recording_layer_t *)l;
    log_op(l, "publish", g);
    r->published++;
    hop_t *h = calloc(1, sizeof *h);
    h->app = l->app;
    h->env = chanc_envelope_ref(env);
    snprintf(h->group, sizeof h->group, "%s", g);
    return chanc_app_call_soon(l->app, come_back, h);
}

static int rec_publish_channel(chanc_layer_t *l, const char *ch, chanc_envelope_t *env) {
    (void)env;
    log_op(l, "publish_channel", ch);
    return 0;
}

static void rec_destroy(chanc_layer_t *l) {
    free(l);
    rl = NULL;
}

static const chanc_layer_ops_t recording_ops = {
    .name = "recording",
    .subscribe = rec_subscribe,
    .unsubscribe = rec_unsubscribe,
    .publish_group = rec_publish_group,
    .publish_channel = rec_publish_channel,
    .destroy = rec_destroy,
};

static int setup(void **state) {
    rl = calloc(1, sizeof *rl);
    rl->base.ops = &recording_ops;
    chanc_test_options_t opts = {.setup = demo_setup, .app.layer = &rl->base};
    *state = chanc_test_create(&opts);
    return *state ? 0 : -1;
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, demo_fixture_teardown)

static void test_one_subscription_per_group_per_process(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *c[4];
    for (int i = 0; i < 4; i++) {
        c[i] = room_client(t, "lobby", i % 2 ? "bob" : "alice");
        chanc_assert_connect(c[i]);
    }
    size_t subscribes = 0;
    for (size_t i = 0; i < rl->nops; i++)
        subscribes += !strcmp(rl->ops[i].what, "subscribe");
    assert_int_equal(subscribes, 1);
    assert_string_equal(rl->ops[0].what, "subscribe");
    assert_string_equal(rl->ops[0].target, "room_lobby");
    for (int i = 0; i < 3; i++)
        chanc_communicator_disconnect(c[i]);
    assert_string_not_equal(rl->ops[rl->nops - 1].what, "unsubscribe");
    chanc_communicator_disconnect(c[3]); /* the last member leaves */
    assert_string_equal(rl->ops[rl->nops - 1].what, "unsubscribe");
    assert_string_equal(rl->ops[rl->nops - 1].target, "room_lobby");
}

static void test_group_message_published_once_and_delivered_by_the_layer(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *a = room_client(t, "lobby", "alice");
    chanc_communicator_t *b = room_client(t, "lobby", "bob");
    chanc_assert_connect(a);
    chanc_assert_connect(b);
    json_t *d = chanc_communicator_receive_all_json(a, 1000);
    json_decref(d);
    d = chanc_communicator_receive_all_json(b, 1000);
    json_decref(d);
    int before = rl->published;
    chanc_communicator_send_message(a, &demo_say, json_string("via the layer"));
    json_t *ma = chanc_communicator_receive_all_json(a, 1000);
    json_t *mb = chanc_communicator_receive_all_json(b, 1000);
    assert_int_equal(rl->published - before, 1);
    chanc_assert_json_match(ma, "[{\"action\":\"said\",\"is_mine\":true,\"is_current\":true}]");
    chanc_assert_json_match(mb, "[{\"action\":\"said\",\"is_mine\":false,\"is_current\":false}]");
    json_decref(ma);
    json_decref(mb);
}

static void test_envelope_variants_from_remote_bytes(void **state) {
    (void)state;
    /* An envelope rebuilt from bytes (another process) gives the same
     * variants: sender identity travels with it, not in the JSON. */
    chanc_buf_t *frame = chanc_buf_new("{\"action\":\"x\"}", 14);
    chanc_envelope_t *e = chanc_envelope_new(frame, "7", 42, 3, 0);
    chanc_buf_unref(frame);
    assert_string_equal(e->sender_user, "7");
    assert_int_equal(e->sender_node, 42);
    assert_int_equal(e->sender_conn, 3);
    assert_int_equal(e->refcount, 1);
    chanc_envelope_ref(e);
    chanc_envelope_unref(e);
    chanc_envelope_unref(e); /* freed: valgrind checks */
}

/* --- the same tests on each real layer --------------------------------- */

static bool use_redis;
static redis_proc_t redis;

/* ws/inbox/: tells the client its channel name, for channel sends. */
static const chanc_message_type_t inbox = {.action = "inbox", .payload = CHANC_STRING()};
static int inbox_hello(chanc_conn_t *c) {
    return chanc_conn_send(c, &inbox, json_string(chanc_conn_channel(c)));
}

/* The event `poke`, passed on to the client as the frame `poke`. */
static const chanc_message_type_t poke = {
    .action = "poke", .payload = CHANC_OBJECT(CHANC_FIELD("n", CHANC_INTEGER()))};
static const chanc_message_type_t *const inbox_events[] = {&poke, NULL};
/* What chanc_app_channel_send sends it in test_channel_send_…. */
static const chanc_message_type_t direct = {.action = "direct", .payload = CHANC_INTEGER()};
static const chanc_message_type_t *const inbox_outgoing[] = {&inbox, &poke, &direct, NULL};
static int pokes; /* receive_event ran */
static int inbox_event(chanc_conn_t *c, const chanc_message_type_t *type, const json_t *payload) {
    (void)payload;
    pokes++;
    return chanc_conn_pass_event(c, type);
}

static const chanc_consumer_t inbox_consumer = {.post_authentication = inbox_hello,
                                                .outgoing = inbox_outgoing,
                                                .events = inbox_events,
                                                .receive_event = inbox_event};

static int node_setup(chanc_test_t *t, void *ud) {
    int rc = demo_setup(t, ud);
    return rc ? rc : chanc_app_route(t->app, "ws/inbox/", &inbox_consumer, NULL);
}

/* A fixture ("process") on the layer under test. */
static chanc_test_t *node(void) {
    chanc_layer_t *layer;
    if (use_redis) {
        chanc_layer_redis_options_t o = {.track_settled = true, .backoff_min_ms = 20,
                                         .backoff_max_ms = 200};
        layer = chanc_layer_redis_create(redis.url, &o, NULL);
    } else {
        layer = chanc_layer_memory_create();
    }
    assert_non_null(layer);
    chanc_test_options_t opts = {.setup = node_setup, .app.layer = layer};
    chanc_test_t *t = chanc_test_create(&opts);
    assert_non_null(t);
    /* The first connection attempt is held: settled means connected. */
    assert_int_equal(chanc_test_settle(t, 5000), 0);
    return t;
}

static chanc_layer_stats_t stats(chanc_test_t *t) {
    chanc_layer_stats_t s;
    assert_int_equal(chanc_layer_stats(chanc_app_layer(t->app), &s), 0);
    return s;
}

/* Another process's messages are not t's own work: let `from` finish
 * publishing, then make t wait for what was published so far. */
static void sync_with(chanc_test_t *t, chanc_test_t *from) {
    assert_int_equal(chanc_test_settle(from, 5000), 0);
    assert_int_equal(chanc_layer_redis_sync(chanc_test_layer(t)), 0);
}

static void drain(chanc_communicator_t *c) {
    json_t *d = chanc_communicator_receive_all_json(c, 5000);
    json_decref(d);
}

static int backend_setup(void **state) {
    *state = node();
    return 0;
}

#define B(fn) cmocka_unit_test_setup_teardown(fn, backend_setup, demo_fixture_teardown)

static void test_members_get_one_publish_with_their_flags(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *a = room_client(t, "lobby", "alice");
    chanc_communicator_t *a2 = room_client(t, "lobby", "alice");
    chanc_communicator_t *b = room_client(t, "lobby", "bob");
    chanc_assert_connect(a);
    chanc_assert_connect(a2);
    chanc_assert_connect(b);
    drain(a);
    drain(a2);
    drain(b);
    chanc_layer_stats_t before = stats(t);
    chanc_communicator_send_message(a, &demo_say, json_string("hello"));
    chanc_assert_receive_match(a, "{\"action\":\"said\",\"is_mine\":true,\"is_current\":true}");
    chanc_assert_receive_match(a2, "{\"action\":\"said\",\"is_mine\":true,\"is_current\":false}");
    chanc_assert_receive_match(b, "{\"action\":\"said\",\"is_mine\":false,\"is_current\":false}");
    chanc_layer_stats_t after = stats(t);
    assert_int_equal(after.published - before.published, 1); /* once for three members */
    assert_int_equal(after.received - before.received, 1);
    assert_true(after.connected);
    assert_int_equal(after.dropped, 0);
}

static void test_app_group_send_without_sender(void **state) {
    chanc_test_t *t = *state;
    chanc_communicator_t *a = room_client(t, "lobby", "alice");
    chanc_assert_connect(a);
    drain(a);
    assert_int_equal(chanc_app_group_send(t->app, "room_lobby",
                                          json_pack("{s:s,s:n}", "action", "notice", "payload")),
                     0);
    chanc_assert_receive_match(a, "{\"action\":\"notice\",\"is_mine\":false,\"is_current\":false}");
    /* A group nobody here is in, and an unknown channel: nothing, no error. */
    assert_int_equal(chanc_app_group_send(t->app, "room_empty", json_pack("{s:s}", "action", "x")), 0);
    assert_int_equal(chanc_app_channel_send(t->app, "nobody!1", json_pack("{s:s}", "action", "x")), 0);
    chanc_assert_receive_nothing(a);
}

/* Two connections to ws/inbox/ in t's process: c, whose channel name is
 * copied to channel, and other, drained (it must get nothing). */
static void inbox_pair(chanc_test_t *t, chanc_communicator_t **c, chanc_communicator_t **other,
                       char *channel, size_t size) {
    *c = chanc_test_communicator(t, "/ws/inbox/");
    *other = chanc_test_communicator(t, "/ws/inbox/");
    chanc_assert_connect(*c);
    chanc_assert_connect(*other);
    json_t *hello = chanc_communicator_receive_until_action(*c, "inbox", 5000);
    assert_non_null(hello);
    snprintf(channel, size, "%s", chanc_json_str(hello, "/1/payload"));
    json_decref(hello);
    drain(*other);
}

static void test_channel_send_reaches_one_connection_in_any_process(void **state) {
    chanc_test_t *t = *state;
    chanc_test_t *t2 = use_redis ? node() : t; /* the recipient's process */
    chanc_communicator_t *c, *other;
    char channel[64];
    inbox_pair(t2, &c, &other, channel, sizeof channel);
    assert_int_equal(chanc_app_channel_send(t->app, channel,
                                            json_pack("{s:s,s:i}", "action", "direct", "payload", 7)),
                     0);
    if (use_redis)
        sync_with(t2, t);
    /* As sent: no is_mine/is_current on a channel message. */
    json_t *got = chanc_communicator_receive_all_json(c, 5000);
    chanc_assert_json_match(got, "[{\"action\":\"direct\",\"payload\":7}]");
    assert_null(json_object_get(json_array_get(got, 0), "is_mine"));
    json_decref(got);
    chanc_assert_receive_nothing(other);
    if (t2 != t)
        chanc_test_destroy(t2);
}

/* A channel event reaches the one connection, in whichever process it
 * lives (through the layer: a channel message flagged as an event), and
 * its consumer runs once. */
static void test_channel_event_reaches_one_connection_in_any_process(void **state) {
    chanc_test_t *t = *state;
    chanc_test_t *t2 = use_redis ? node() : t; /* the recipient's process */
    chanc_communicator_t *c, *other;
    char channel[64];
    inbox_pair(t2, &c, &other, channel, sizeof channel);
    pokes = 0;
    assert_int_equal(chanc_app_channel_event(t->app, channel, &poke, json_pack("{s:i}", "n", 7)),
                     0);
    if (use_redis)
        sync_with(t2, t);
    chanc_assert_receive_all_match(c, "[{\"action\":\"poke\",\"payload\":{\"n\":7}}]");
    chanc_assert_receive_nothing(other);
    assert_int_equal(pokes, 1);
    if (use_redis) /* what the sender's layer saw of it: nothing ran there */
        sync_with(t, t2);
    assert_int_equal(pokes, 1);
    if (t2 != t)
        chanc_test_destroy(t2);
}

/* Redis's own view of a group: how many processes subscribe to it. */
static long long numsub(const char *group) {
    redisContext *rc = redisConnect("127.0.0.1", redis.port);
    assert_non_null(rc);
    assert_int_equal(rc->err, 0);
    redisReply *r = redisCommand(rc, "PUBSUB NUMSUB chanc:0:g:%s", group);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    long long n = r->element[1]->integer;
    freeReplyObject(r);
    redisFree(rc);
    return n;
}

static void test_one_subscription_per_process_until_the_last_member_leaves(void **state) {
    chanc_test_t *t = *state;
    if (!use_redis)
        skip(); /* the memory layer has no server to ask; see the recording tests */
    chanc_test_t *t2 = node();
    chanc_communicator_t *c[3] = {room_client(t, "lobby", "alice"), room_client(t, "lobby", "bob"),
                                  room_client(t2, "lobby", "carol")};
    for (int i = 0; i < 3; i++)
        chanc_assert_connect(c[i]);
    assert_int_equal(numsub("room_lobby"), 2); /* two processes, three members */
    chanc_communicator_disconnect(c[0]);
    assert_int_equal(numsub("room_lobby"), 2);
    chanc_communicator_disconnect(c[1]); /* the last member here */
    assert_int_equal(numsub("room_lobby"), 1);
    /* Back again: subscribed again (and a leave/join race cannot lose it). */
    chanc_communicator_t *again = room_client(t, "lobby", "alice");
    chanc_assert_connect(again);
    chanc_communicator_disconnect(again);
    again = room_client(t, "lobby", "alice");
    chanc_assert_connect(again);
    assert_int_equal(numsub("room_lobby"), 2);
    drain(again);
    drain(c[2]);
    chanc_communicator_send_message(c[2], &demo_say, json_string("still there?"));
    sync_with(t, t2);
    chanc_assert_receive_match(again, "{\"action\":\"said\",\"is_mine\":false}");
    chanc_communicator_disconnect(c[2]);
    assert_int_equal(numsub("room_lobby"), 1);
    chanc_test_destroy(t2);
}

static void test_two_processes_see_each_others_messages(void **state) {
    chanc_test_t *t = *state;
    if (!use_redis)
        skip(); /* one process by definition */
    chanc_test_t *t2 = node();
    chanc_communicator_t *a = room_client(t, "lobby", "alice");
    chanc_communicator_t *b = room_client(t2, "lobby", "bob");
    chanc_communicator_t *a2 = room_client(t2, "lobby", "alice"); /* alice's other tab */
    chanc_assert_connect(a);
    chanc_assert_connect(b);
    chanc_assert_connect(a2);
    sync_with(t, t2);
    drain(a);
    drain(b);
    drain(a2);
    chanc_communicator_send_message(a, &demo_say, json_string("across"));
    chanc_assert_receive_match(a, "{\"action\":\"said\",\"payload\":{\"text\":\"across\"},"
                                  "\"is_mine\":true,\"is_current\":true}");
    sync_with(t2, t);
    chanc_assert_receive_match(b, "{\"action\":\"said\",\"is_mine\":false,\"is_current\":false}");
    chanc_assert_receive_match(a2, "{\"action\":\"said\",\"is_mine\":true,\"is_current\":false}");
    chanc_communicator_send_message(b, &demo_say, json_string("back"));
    chanc_assert_receive_match(b, "{\"action\":\"said\",\"is_mine\":true,\"is_current\":true}");
    sync_with(t, t2);
    chanc_assert_receive_match(a, "{\"action\":\"said\",\"payload\":{\"text\":\"back\"},"
                                  "\"is_mine\":false,\"is_current\":false}");
    chanc_assert_receive_nothing(a);
    assert_int_equal(stats(t).published, 2);  /* alice's joined + said */
    chanc_test_destroy(t2);
}

/* An internal event reaches the consumers of every member in every
 * process exactly once: this process's members before the call returns,
 * the other process's through the layer; no client is sent the event. */
static void test_group_event_reaches_every_process_once(void **state) {
    chanc_test_t *t = *state;
    chanc_test_t *t2 = use_redis ? node() : t; /* the other process */
    chanc_communicator_t *a = room_client(t, "lobby", "alice");
    chanc_communicator_t *b = room_client(t2, "lobby", "bob");
    chanc_communicator_t *b2 = room_client(t, "lobby", "bob"); /* bob's tab here */
    chanc_assert_connect(a);
    chanc_assert_connect(b);
    chanc_assert_connect(b2);
    if (use_redis) {
        sync_with(t, t2);
        sync_with(t2, t);
    }
    drain(a);
    drain(b);
    drain(b2);
    assert_int_equal(chanc_app_group_event(t->app, "room_lobby", &demo_kick,
                                           json_pack("{s:s}", "username", "bob")),
                     0);
    assert_int_equal(demo_counters.events, use_redis ? 2 : 3); /* a, b2 (and b): at once */
    chanc_assert_receive_match(b2, "{\"action\":\"kicked\"}");
    chanc_assert_closed(b2, 4001);
    if (use_redis)
        sync_with(t2, t);
    chanc_assert_receive_match(b, "{\"action\":\"kicked\"}");
    chanc_assert_closed(b, 4001);
    if (use_redis)
        sync_with(t, t2);
    json_t *got = chanc_communicator_receive_all_json(a, 5000);
    chanc_assert_json_match(got, "[{\"action\":\"left\"},{\"action\":\"left\"}]"); /* no event */
    json_decref(got);
    assert_int_equal(demo_counters.events, 3); /* once each, whatever came back */
    if (t2 != t)
        chanc_test_destroy(t2);
}

/* Run both apps' loops until pred holds. The Redis server is another
 * process and reconnection waits on backoff timers, so there is nothing
 * to settle on: poll, bounded by timeout_ms. */
static bool run_until(chanc_test_t *t1, chanc_test_t *t2, bool (*pred)(chanc_test_t *, chanc_test_t *),
                      uint64_t timeout_ms) {
    uint64_t deadline = uv_hrtime() + timeout_ms * 1000000u;
    while (!pred(t1, t2)) {
        if (uv_hrtime() > deadline)
            return false;
        uv_run(chanc_app_loop(t1->app), UV_RUN_NOWAIT);
        uv_run(chanc_app_loop(t2->app), UV_RUN_NOWAIT);
        uv_sleep(2);
    }
    return true;
}

static bool both_down(chanc_test_t *t1, chanc_test_t *t2) {
    return !stats(t1).connected && !stats(t2).connected;
}

static bool both_up(chanc_test_t *t1, chanc_test_t *t2) {
    return stats(t1).connected && stats(t2).connected;
}

/* Log lines go to the fixture made last (one emitter per process). */
static bool logged(chanc_test_t *t1, chanc_test_t *t2, chanc_log_level_t level, const char *s) {
    return chanc_test_log_contains(t1, level, s) || chanc_test_log_contains(t2, level, s);
}

static void test_redis_restart_drops_while_down_then_recovers(void **state) {
    chanc_test_t *t = *state;
    if (!use_redis)
        skip();
    chanc_test_t *t2 = node();
    chanc_communicator_t *a = room_client(t, "lobby", "alice");
    chanc_communicator_t *b = room_client(t2, "lobby", "bob");
    chanc_assert_connect(a);
    chanc_assert_connect(b);
    sync_with(t, t2);
    drain(a);
    drain(b);

    redis_proc_stop(&redis, SIGKILL);
    assert_true(run_until(t, t2, both_down, 10000));
    /* While down: the message is dropped and counted; the connection and
     * the app carry on (the sender still gets its completion). */
    chanc_communicator_send_message(a, &demo_say, json_string("into the void"));
    chanc_assert_receive_nothing(a);
    assert_false(chanc_communicator_closed(a));
    assert_int_equal(stats(t).dropped, 1);
    assert_true(logged(t, t2, CHANC_LOG_WARN, "dropped until it is back"));

    assert_int_equal(redis_proc_start(&redis), 0);
    assert_true(run_until(t, t2, both_up, 10000));
    assert_int_equal(stats(t).reconnects, 2); /* subscriber and publisher */
    assert_true(logged(t, t2, CHANC_LOG_NOTICE, "reconnected"));
    assert_true(logged(t, t2, CHANC_LOG_NOTICE, "1 publish(es) dropped"));
    /* Groups were subscribed again: delivery works both ways. */
    chanc_communicator_send_message(a, &demo_say, json_string("back again"));
    chanc_assert_receive_match(a, "{\"action\":\"said\",\"is_current\":true}");
    sync_with(t2, t);
    chanc_assert_receive_match(b, "{\"action\":\"said\",\"payload\":{\"text\":\"back again\"}}");
    chanc_communicator_send_message(b, &demo_say, json_string("hi"));
    sync_with(t, t2);
    chanc_assert_receive_match(a, "{\"action\":\"said\",\"payload\":{\"text\":\"hi\"},\"is_mine\":false}");
    chanc_test_destroy(t2);
}

static void test_garbage_on_our_channels_is_ignored(void **state) {
    chanc_test_t *t = *state;
    if (!use_redis)
        skip();
    chanc_communicator_t *a = room_client(t, "lobby", "alice");
    chanc_assert_connect(a);
    drain(a);
    static const char *const junk[] = {"", "hello", "C1 g 0 zz 0 - 0\n{}", "C1 g 0 1 0 99 0\n{}",
                                       "C1 g 7 1 0 - 0\n{}", "C1 g 0 1 0 - 0\n", "C1 x 0 1 0 - 0\n{}",
                                       "C1 g 0 1 0 - 0\n{\"action\":\"notice\",\"payload\":null}"};
    redisContext *rc = redisConnect("127.0.0.1", redis.port);
    assert_non_null(rc);
    for (size_t i = 0; i < sizeof junk / sizeof *junk; i++) {
        redisReply *r = redisCommand(rc, "PUBLISH chanc:0:g:room_lobby %b", junk[i], strlen(junk[i]));
        freeReplyObject(r);
    }
    redisFree(rc);
    assert_int_equal(chanc_layer_redis_sync(chanc_test_layer(t)), 0);
    /* Only the well-formed one arrives (from "another process"; a frame
     * the room consumer declares, as the conformance check wants). */
    chanc_assert_receive_match(a, "{\"action\":\"notice\",\"is_mine\":false,\"is_current\":false}");
    chanc_assert_receive_nothing(a);
    assert_int_equal(stats(t).malformed, 7);
    assert_int_equal(stats(t).received, 2); /* alice's joined + ok */
}

static void test_bad_urls_are_refused_with_a_reason(void **state) {
    (void)state;
    static const char *const bad[] = {NULL, "", "localhost:6379", "http://x", "redis://",
                                      "redis://host:0", "redis://host:70000", "redis://host:x",
                                      "redis://host/abc", "redis://host:1/2/3", "redis://[::1",
                                      "redis://nopass@host"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        chanc_error_t err = {0};
        chanc_layer_t *l = chanc_layer_redis_create(bad[i], NULL, &err);
        if (l)
            fail_msg("accepted %s", bad[i]);
        assert_int_equal(err.code, CHANC_EINVAL);
        assert_non_null(strstr(err.text, "Redis URL"));
    }
    /* The reason never carries the password (chat-server prints it). */
    static const char *const with_password[] = {
        "rediss://:hunter22@h:1", "redis:/:hunter22@h", "redis://:hunter22@h:0",
        "redis://user:hunter22@h:1/x", "redis://u:hunter22@h/1/hunter22", "http://u:hunter22@x"};
    for (size_t i = 0; i < sizeof with_password / sizeof *with_password; i++) {
        chanc_error_t err = {0};
        assert_null(chanc_layer_redis_create(with_password[i], NULL, &err));
        assert_non_null(strstr(err.text, "Redis URL"));
        if (strstr(err.text, "hunter22"))
            fail_msg("%s: the reason shows the password: %s", with_password[i], err.text);
    }
    static const char *const good[] = {"redis://127.0.0.1", "redis://localhost:6380/2",
                                       "redis://:secret@10.0.0.1:7000/0", "redis://[::1]:6379/",
                                       "redis://user:pw@h"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        chanc_layer_t *l = chanc_layer_redis_create(good[i], NULL, NULL);
        assert_non_null(l);
        assert_true(chanc_layer_is_redis(l));
        chanc_layer_destroy(l); /* never attached: freed at once */
    }
}

static int redis_group_setup(void **state) {
    (void)state;
    return use_redis ? redis_proc_start(&redis) : 0;
}

static int redis_group_teardown(void **state) {
    (void)state;
    redis_proc_dispose(&redis);
    return 0;
}

int main(int argc, char **argv) {
    use_redis = argc > 1 && strcmp(argv[1], "redis") == 0;
    const struct CMUnitTest backend[] = {
        B(test_members_get_one_publish_with_their_flags),
        B(test_app_group_send_without_sender),
        B(test_channel_send_reaches_one_connection_in_any_process),
        B(test_channel_event_reaches_one_connection_in_any_process),
        B(test_one_subscription_per_process_until_the_last_member_leaves),
        B(test_two_processes_see_each_others_messages),
        B(test_group_event_reaches_every_process_once),
        B(test_redis_restart_drops_while_down_then_recovers),
        B(test_garbage_on_our_channels_is_ignored),
        cmocka_unit_test(test_bad_urls_are_refused_with_a_reason),
    };
    if (use_redis)
        return chanc_run_group_tests_name("framework.layer.redis", backend, redis_group_setup,
                                           redis_group_teardown);
    const struct CMUnitTest tests[] = {
        T(test_one_subscription_per_group_per_process),
        T(test_group_message_published_once_and_delivered_by_the_layer),
        cmocka_unit_test(test_envelope_variants_from_remote_bytes),
    };
    int failed = chanc_run_group_tests_name("framework.layer", tests, NULL, NULL);
    return failed + chanc_run_group_tests_name("framework.layer.memory", backend, NULL, NULL);
}
