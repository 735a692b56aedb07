/* A consumer with a bug that only some orders show, for testing.explore.*
 * (tests/testing/check_explore): the FIFO run passes, CHANC_EXPLORE finds
 * a failing schedule within K seeds and prints its seed, and the printed
 * command fails again with that seed.
 *
 * The "claim" consumer: the first client to send `claim` leads and is told
 * `you_lead`; each later claimant is told who leads. The bug: the leader
 * is told through the first connection that opened, not through the
 * claimant. While the first to open is also the first whose claim runs
 * (FIFO, the order the test sent them in) every answer is right; when the
 * other client's claim runs first, the wrong client is told it leads. The
 * fixed consumer answers the claimant; the same test passes under every
 * schedule. */
#include <string.h>

#include "chanc/testing.h"

static const chanc_message_type_t claim_msg = {.action = "claim"};
static const chanc_message_type_t you_lead_msg = {.action = "you_lead"};
static const chanc_message_type_t leader_is_msg = {.action = "leader_is",
                                                   .payload = CHANC_STRING()};
static const chanc_message_type_t *const claim_incoming[] = {&claim_msg, NULL};

static struct {
    chanc_conn_t *first_open, *leader;
    bool fixed;
} lobby;

static int claim_post_auth(chanc_conn_t *c) {
    if (!lobby.first_open)
        lobby.first_open = c;
    return 0;
}

static int claim_receive(chanc_conn_t *c, const chanc_message_type_t *type, const json_t *payload,
                         const json_t *frame) {
    (void)type;
    (void)payload;
    (void)frame;
    if (lobby.leader)
        return chanc_conn_send(c, &leader_is_msg,
                               json_string(chanc_conn_param(lobby.leader, "name")));
    lobby.leader = c;
    return chanc_conn_send(lobby.fixed ? c : lobby.first_open, &you_lead_msg, NULL);
}

static void claim_disconnect(chanc_conn_t *c, int code) {
    (void)code;
    if (lobby.first_open == c)
        lobby.first_open = NULL;
    if (lobby.leader == c)
        lobby.leader = NULL;
}

static const chanc_consumer_t claim = {.name = "claim",
                                       .incoming = claim_incoming,
                                       .post_authentication = claim_post_auth,
                                       .receive_message = claim_receive,
                                       .disconnect = claim_disconnect};

static int routes(chanc_test_t *t, void *ud) {
    (void)ud;
    return chanc_app_route(t->app, "ws/claim/{name}/", &claim, NULL);
}

static int setup(void **state) {
    lobby.first_open = lobby.leader = NULL;
    lobby.fixed = strstr(*state, "fixed") != NULL;
    *state = chanc_test_create(&(chanc_test_options_t){.setup = routes, .name = *state});
    return *state ? 0 : -1;
}

static int teardown(void **state) {
    chanc_test_destroy(*state);
    return 0;
}

/* Both claim at once: exactly one leads, and the other is told its name. */
static void claim_race(chanc_test_t *t) {
    chanc_communicator_t *ann = chanc_test_communicator(t, "/ws/claim/ann/");
    chanc_communicator_t *bob = chanc_test_communicator(t, "/ws/claim/bob/");
    chanc_assert_connect(ann);
    chanc_assert_authenticated_status_ok(ann);
    chanc_assert_connect(bob);
    chanc_assert_authenticated_status_ok(bob);
    chanc_communicator_send_message(ann, &claim_msg, NULL);
    chanc_communicator_send_message(bob, &claim_msg, NULL);
    json_t *a = chanc_communicator_receive_all_json(ann, 1000);
    json_t *b = chanc_communicator_receive_all_json(bob, 1000);
    bool ann_leads = chanc_json_find(a, "{\"action\":\"you_lead\"}") != NULL;
    chanc_assert_json_match(ann_leads ? a : b, "[{\"action\":\"you_lead\"}]");
    chanc_assert_json_match(ann_leads ? b : a,
                            ann_leads ? "[{\"action\":\"leader_is\",\"payload\":\"ann\"}]"
                                      : "[{\"action\":\"leader_is\",\"payload\":\"bob\"}]");
    json_decref(a);
    json_decref(b);
}

static void test_claim_buggy(void **state) { claim_race(*state); }
static void test_claim_fixed(void **state) { claim_race(*state); }

int main(void) {
    const struct CMUnitTest tests[] = {
        chanc_unit_test(test_claim_buggy, setup, teardown),
        chanc_unit_test(test_claim_fixed, setup, teardown),
    };
    return chanc_run_group_tests(tests, NULL, NULL);
}
