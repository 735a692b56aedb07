/* fuzz_frames: libFuzzer over frame decoding, validation and dispatch into
 * the chat consumer, through the in-process transport.
 *
 * Once: the chat test fixture (a fresh in-memory SQLite store loaded from
 * fixtures/chat.json, the chat consumer routed, testuser logged in; in
 * memory the consumer's store jobs run inline, so an input costs no thread
 * hop: about twice the executions of a file store) and one
 * communicator joined to room "general". Each input is sent as one text
 * frame (chanc_communicator_send_raw), the app is settled and every frame
 * it answered is drained. When an input closes the connection (invalid
 * UTF-8: 1007, ...), the next input gets a new communicator; the fixture
 * itself is rebuilt now and then, because communicators live as long as
 * their fixture and chat messages accumulate in the store.
 *
 *   build-fuzz/tests/fuzz/fuzz_frames -max_total_time=60 <corpus dir> \
 *       fixtures/fuzz/frames
 *
 * A crash, a sanitizer report, a leak at exit or a hung app (a settle that
 * times out) is a finding. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "chat_test.h"

#define SETTLE_MS 5000
#define MAX_COMMUNICATORS 256 /* rebuild the fixture after this many */
#define MAX_INPUTS 20000      /* ... or after this many inputs */

static chat_test_t *fixture;
static chanc_communicator_t *client;
static size_t communicators, inputs;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void drop_fixture(void) {
    chat_test_destroy(fixture); /* disconnects, settles, removes the database */
    fixture = NULL;
    client = NULL;
}

static void at_exit(void) {
    drop_fixture();
}

static void ensure_client(void) {
    if (client && !chanc_communicator_closed(client))
        return;
    if (fixture && (communicators >= MAX_COMMUNICATORS || inputs >= MAX_INPUTS))
        drop_fixture();
    if (!fixture) {
        fixture = chat_test_create(&(chat_test_options_t){.in_memory = true});
        if (!fixture) {
            fprintf(stderr, "fuzz_frames: cannot create the chat fixture\n");
            abort();
        }
        communicators = inputs = 0;
    }
    client = chanc_test_communicator(fixture->test, "/ws/chat/%lld/",
                                     (long long)fixture->room_id);
    communicators++;
    if (!client || !chanc_communicator_connect(client, SETTLE_MS)) {
        fprintf(stderr, "fuzz_frames: testuser cannot join room %lld\n",
                (long long)fixture->room_id);
        abort();
    }
    /* authentication, history, user_joined */
    json_decref(chanc_communicator_receive_all_json(client, SETTLE_MS));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int registered;
    if (!registered) {
        registered = 1;
        atexit(at_exit);
    }
    ensure_client();
    inputs++;
    /* 10 virtual ms per input: the rate limit (200/s) never refuses, so
     * every input reaches validation and dispatch. */
    chanc_test_advance(fixture->test, 10);
    chanc_communicator_send_raw(client, data, size, false);
    if (chanc_test_settle(fixture->test, SETTLE_MS) != 0) {
        fprintf(stderr, "fuzz_frames: the app did not settle within %d ms\n", SETTLE_MS);
        chanc_communicator_print_transcript(client, stderr);
        abort();
    }
    /* Drain what the app answered (completions included) so the
     * communicator's queue does not grow across inputs. */
    json_t *f;
    while ((f = chanc_communicator_receive_json(client, SETTLE_MS)) != NULL)
        json_decref(f);
    return 0;
}
