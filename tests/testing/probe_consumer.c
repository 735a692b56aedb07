/* The probe consumer described in probe_consumer.h. */
#include <stdlib.h>
#include <time.h>

#include "probe_consumer.h"

const chanc_message_type_t probe_echo = {.action = "echo", .payload = CHANC_STRING()};
const chanc_message_type_t probe_later = {.action = "later", .payload = CHANC_STRING()};
const chanc_message_type_t probe_leak = {.action = "leak"};
static const chanc_message_type_t *const incoming[] = {&probe_echo, &probe_later, &probe_leak, NULL};
static const chanc_message_type_t probe_reply = {.action = "reply", .payload = CHANC_STRING()};
static const chanc_message_type_t *const outgoing[] = {&probe_reply, NULL};

static json_t *kept; /* the "leak": an array freed at exit */

static void free_kept(void) { json_decref(kept); }

typedef struct later {
    uv_work_t work;
    chanc_app_t *app;
    char channel[64];
    json_t *frame;
} later_t;

static void slow_work(uv_work_t *w) {
    (void)w;
    /* Work that takes a while on another thread (a slow database). */
    nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
}

static void after_slow_work(uv_work_t *w, int status) {
    (void)status;
    later_t *l = w->data;
    chanc_app_channel_send(l->app, l->channel, l->frame);
    chanc_app_release(l->app);
    free(l);
}

static int on_message(chanc_conn_t *c, const chanc_message_type_t *type, const json_t *payload,
                      const json_t *frame) {
    if (type == &probe_leak) {
        if (!kept) {
            kept = json_array();
            atexit(free_kept);
        }
        return json_array_append(kept, (json_t *)frame);
    }
    json_t *reply = json_pack("{s:s,s:O}", "action", "reply", "payload", payload);
    if (type == &probe_echo)
        return chanc_conn_send_json(c, reply);
    later_t *l = calloc(1, sizeof *l);
    l->app = chanc_conn_app(c);
    snprintf(l->channel, sizeof l->channel, "%s", chanc_conn_channel(c));
    l->frame = reply;
    l->work.data = l;
    chanc_app_hold(l->app);
    return uv_queue_work(chanc_app_loop(l->app), &l->work, slow_work, after_slow_work);
}

static const chanc_consumer_t probe = {
    .name = "probe",
    .incoming = incoming,
    .outgoing = outgoing,
    .receive_message = on_message,
    .send_completion = true,
};

int probe_setup(chanc_test_t *t, void *ud) {
    (void)ud;
    return chanc_app_route(t->app, "ws/probe/", &probe, NULL);
}

int probe_fixture_setup(void **state) {
    *state = chanc_test_create(&(chanc_test_options_t){.setup = probe_setup, .name = *state});
    return *state ? 0 : -1;
}

int probe_fixture_teardown(void **state) {
    chanc_test_destroy(*state);
    return 0;
}
