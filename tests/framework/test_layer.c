/* framework.layer: the channel-layer interface seen from a layer's side. A
 * recording layer (what a Redis layer will do, minus Redis) proves that
 * consumers need no change, that a process subscribes once per group, that
 * one group message is published once whatever the number of local
 * members, and that deliveries come back through chanc_layer_deliver_*. */
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
    return chanc_app_defer(l->app, come_back, h);
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
    chanc_test_options_t opts = {.setup = demo_setup, .layer = &rl->base};
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

int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_one_subscription_per_group_per_process),
        T(test_group_message_published_once_and_delivered_by_the_layer),
        cmocka_unit_test(test_envelope_variants_from_remote_bytes),
    };
    return cmocka_run_group_tests_name("framework.layer", tests, NULL, NULL);
}
