/* chanc-demo: a room consumer served over the in-process transport.
 * Default: two users chat in a room and the transcripts are printed.
 * --interactive NAME: you are NAME in room "lobby"; each line you type is
 * sent as one frame, the server's answers are printed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chanc/testing.h"
#include "echo_consumer.h"

static int setup(chanc_test_t *t, void *ud) {
    (void)ud;
    return demo_register(t->app);
}

static chanc_communicator_t *client(chanc_test_t *t, const char *user) {
    chanc_communicator_t *c = chanc_test_communicator(t, "/ws/room/lobby/");
    char auth[128];
    snprintf(auth, sizeof auth, "Token %s", user);
    chanc_communicator_set_header(c, "Authorization", auth);
    if (!chanc_communicator_connect(c, 1000)) {
        fprintf(stderr, "connect refused: %d\n", chanc_communicator_close_code(c));
        return NULL;
    }
    return c;
}

static void print_frames(const char *who, json_t *frames) {
    size_t i;
    json_t *f;
    json_array_foreach(frames, i, f) {
        char *s = json_dumps(f, JSON_COMPACT);
        printf("  %-6s ← %s\n", who, s);
        free(s);
    }
    json_decref(frames);
}

static int scripted(chanc_test_t *t) {
    printf("chanc %s demo: alice and bob in room \"lobby\" (in-process transport)\n\n", CHANC_VERSION);
    chanc_communicator_t *alice = client(t, "alice");
    print_frames("alice", chanc_communicator_receive_all_json(alice, 1000));
    chanc_communicator_t *bob = client(t, "bob");
    print_frames("alice", chanc_communicator_receive_all_json(alice, 1000));
    print_frames("bob", chanc_communicator_receive_all_json(bob, 1000));
    printf("  alice  → chat \"Hello, Bob!\"\n");
    chanc_communicator_send_message(alice, &demo_chat_message, json_string("Hello, Bob!"));
    print_frames("alice", chanc_communicator_receive_all_json(alice, 1000));
    print_frames("bob", chanc_communicator_receive_all_json(bob, 1000));
    printf("  bob    → chat \"\" (too short: a typed error comes back)\n");
    chanc_communicator_send_message(bob, &demo_chat_message, json_string(""));
    print_frames("bob", chanc_communicator_receive_all_json(bob, 1000));
    printf("  bob    disconnects\n");
    chanc_communicator_disconnect(bob);
    print_frames("alice", chanc_communicator_receive_all_json(alice, 1000));
    printf("\nTry it yourself: chanc-demo --interactive yourname\n");
    return 0;
}

static int interactive(chanc_test_t *t, const char *user) {
    chanc_communicator_t *c = client(t, user);
    if (!c)
        return 1;
    print_frames(user, chanc_communicator_receive_all_json(c, 1000));
    fprintf(stderr, "type frames, e.g. {\"action\":\"chat\",\"payload\":\"hi\"}; Ctrl-D quits\n");
    char line[8192];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!*line)
            continue;
        chanc_communicator_send_text(c, line);
        json_t *frames = chanc_communicator_receive_all_json(c, 1000);
        print_frames(user, frames);
        if (chanc_communicator_closed(c)) {
            printf("closed: %d %s\n", chanc_communicator_close_code(c),
                   chanc_communicator_close_reason(c));
            break;
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: chanc-demo [--interactive NAME]\n");
        return 0;
    }
    chanc_test_options_t opts = {.setup = setup};
    chanc_test_t *t = chanc_test_create(&opts);
    if (!t)
        return 1;
    int rc = argc > 2 && !strcmp(argv[1], "--interactive") ? interactive(t, argv[2]) : scripted(t);
    chanc_test_destroy(t);
    return rc;
}
