/* chanc testing: the in-process communicator and the test-case fixture.
 *
 * A fixture owns a libuv loop, an app and every communicator made from it.
 * A communicator is one simulated client on the in-process transport: no
 * sockets, and every receive first runs the app until it has *settled*
 * (nothing queued, nothing held), so tests never sleep and never flake. The
 * timeouts only bound a hung app.
 *
 * The same communicator calls drive a live server over sockets
 * (chanc_test_create_remote); chanc/ws_client.h is the socket client
 * underneath, for tests that need the wire itself.
 *
 * Failing assertions print what was expected, what arrived, and the
 * communicator's transcript with the file and line of the assertion.
 * This header includes <cmocka.h> with its prerequisites, so a test file
 * needs only `#include <chanc/testing.h>`. */
#ifndef CHANC_TESTING_H
#define CHANC_TESTING_H

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "chanc.h"
#include "chanc/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct chanc_communicator chanc_communicator_t;

typedef struct chanc_test {
    chanc_app_t *app; /* routes go here (in the setup callback) */
    void *data;       /* for the application's own fixture */
    struct chanc_test_private *priv;
} chanc_test_t;

typedef struct chanc_test_options {
    /* Register routes etc. on t->app; return 0 or fail the setup. */
    int (*setup)(chanc_test_t *t, void *ud);
    /* Runs in chanc_test_destroy after every communicator is closed and
     * the app settled, before the app goes (may be NULL). */
    void (*teardown)(chanc_test_t *t, void *ud);
    void *ud;
    /* The app's configuration, with its defaults (chanc/app.h): max_frame,
     * rate_limit, rate_burst, layer (stolen; NULL: the in-memory layer),
     * keepalive_ms (0: off), keepalive_timeout_ms. The fixture supplies
     * the loop and the virtual clock: app.loop and app.clock are ignored. */
    chanc_app_config_t app;
    int64_t wall_start_ms; /* virtual wall clock start; 0: 2026-01-01T00:00:00Z */
    /* The test's name, for transcript files (CHANC_TRANSCRIPT_DIR); NULL:
     * "test<N>" (N counts fixtures in the process). chanc_unit_test passes
     * it to the setup as the cmocka initial state. Copied. */
    const char *name;
    /* Bytes a client that stopped reading may have queued before the app
     * closes it as a slow client (1008); 0: 1 MiB, the server's default. */
    size_t max_queue;
    /* true: no conformance check of the frames the app sends (see "the
     * conformance check" below); CHANC_CONFORMANCE=0 in the environment
     * turns it off for every fixture. */
    bool conformance_off;
    /* The schedule (docs/testing.md, "Explored schedules"): 0, the run's
     * (CHANC_SEED=n, or each of CHANC_EXPLORE=K's; FIFO when neither is
     * set); n, schedule n always (a regression test pinning one). */
    uint64_t seed;
} chanc_test_options_t;

/* --- running tests ------------------------------------------------------ */

/* Explored schedules: with CHANC_EXPLORE=K in the environment,
 * chanc_run_group_tests runs every test K times, under schedules 1..K: the
 * order of the work nothing orders (which client's frames run first, where
 * another thread's results land, which group member gets a message first,
 * timers due at the same instant) drawn from a generator seeded with the
 * schedule's number (chanc/schedule.h). A failure prints
 *   [  SEED    ] test_x failed under schedule 7 (CHANC_EXPLORE); replay:
 *   CHANC_SEED=7 CHANC_TEST=test_x /path/to/the/test/program
 * and that command replays it exactly. Neither variable set: FIFO, as in
 * production. */

/* cmocka's skip(), told to the runner first: a test skipped under an
 * explored schedule is not reported as that schedule's failure. */
CHANC_API void chanc_skip_at(const char *file, int line);
#undef skip
#define skip() chanc_skip_at(__FILE__, __LINE__)

/* Use instead of cmocka_run_group_tests (same arguments; returns the
 * number of failed tests). The red path becomes a first-class result:
 * - a failing body (a chanc or a plain cmocka assertion, values held,
 *   communicators open, work deferred) is reported FAILED and listed in
 *   the summary; the fixture's teardown still completes (connections
 *   closed, scratch files removed) and what it finds (the leak ledger)
 *   is a note under the failure, not a second one. jansson values the
 *   failed test held are kept reachable, so valgrind stays clean too. After a
 *   plain cmocka assertion, the fixture's transcripts and log are printed
 *   after the summary;
 * - a leak the ledger finds after a passing body fails the test (FAILED,
 *   listed), once the test's teardown has finished;
 * - CHANC_TEST=pattern runs only the tests whose names match (cmocka's
 *   filter: `*` and `?`), CHANC_TEST_SKIP=pattern skips some;
 * - CHANC_TEST_TIMES=1 prints each test's setup, body and teardown
 *   times; with CMOCKA_MESSAGE_OUTPUT=xml and CMOCKA_XML_FILE they are
 *   written into the JUnit XML (the testcase's time, and properties
 *   setup_time, body_time, teardown_time in seconds). */
#define chanc_run_group_tests(tests, group_setup, group_teardown)                               \
    chanc_run_group_tests_at(#tests, (tests), sizeof(tests) / sizeof((tests)[0]), (group_setup), \
                             (group_teardown), __FILE__, __LINE__)
#define chanc_run_group_tests_name(name, tests, group_setup, group_teardown)                     \
    chanc_run_group_tests_at((name), (tests), sizeof(tests) / sizeof((tests)[0]), (group_setup), \
                             (group_teardown), __FILE__, __LINE__)
/* The function behind the two macros (file and line of the call). */
CHANC_API int chanc_run_group_tests_at(const char *group, const struct CMUnitTest *tests,
                                       size_t n, CMFixtureFunction group_setup,
                                       CMFixtureFunction group_teardown, const char *file,
                                       int line);

/* cmocka_unit_test_setup_teardown, with the test's name as the initial
 * state: a setup that reads `*state` before replacing it (as the chat
 * fixture's does) names the test's transcript files after it. */
#define chanc_unit_test(f, setup, teardown) \
    { #f, f, setup, teardown, (void *)#f }

/* A fresh loop, app (in-memory layer, virtual clock) and options->setup.
 * NULL on failure (printed). */
CHANC_API chanc_test_t *chanc_test_create(const chanc_test_options_t *options);
/* A fixture for a live server on 127.0.0.1:port: its communicators speak
 * WebSocket over real sockets, with the same calls as in process. t->app
 * is NULL; the clock is real (chanc_test_advance does nothing there).
 * Settling over a socket is inferred, not known: a receive reads until
 * every frame sent has had its "complete", then until no frame has come
 * for quiet_ms. A refused handshake reports 4000 + the HTTP status as the
 * close code (404 → 4404, 403 → 4403). NULL on a bad port. */
typedef struct chanc_test_remote_options {
    int port;
    uint64_t quiet_ms; /* 0: 100 */
} chanc_test_remote_options_t;
CHANC_API chanc_test_t *chanc_test_create_remote(const chanc_test_remote_options_t *options);

/* Disconnect whatever the test left open, settle, run teardown, destroy the
 * app, close the loop (fails the test if a libuv handle was left open),
 * write the transcripts when CHANC_TRANSCRIPT_DIR is set, and check the
 * leak ledger: the test fails, naming what is still alive, when a
 * connection, envelope, frame buffer or jansson allocation made since the
 * fixture was created was not freed. destroy(NULL) is a no-op. */
CHANC_API void chanc_test_destroy(chanc_test_t *t);

/* Header given to every communicator created afterwards (e.g. the session
 * cookie of the logged-in user). Copied. Replaces a header of that name. */
CHANC_API int chanc_test_set_default_header(chanc_test_t *t, const char *name,
                                            const char *value);
/* Move the virtual clock (mono and wall together) forward by ms: the
 * clock steps to each timer that falls due on the way (framework timers
 * and delayed layer deliveries), in due order, runs it and settles; then
 * it moves to the end and settles. Nothing waits on real time. */
CHANC_API void chanc_test_advance(chanc_test_t *t, uint64_t ms);
/* Run the app until settled; 0 or CHANC_ETIMEDOUT. */
CHANC_API int chanc_test_settle(chanc_test_t *t, uint64_t timeout_ms);
/* True when a log line at level <= max_level contains `needle` since the
 * fixture was made (log lines are captured, not printed, and shown with a
 * failing assertion's transcript). */
CHANC_API bool chanc_test_log_contains(const chanc_test_t *t, chanc_log_level_t max_level,
                                       const char *needle);

/* A new communicator for path (printf format), with the fixture's default
 * headers. Owned by the fixture. Out of memory fails the test (NULL only
 * when a fail handler of chanc_testing_set_fail_handler returns). */
CHANC_API chanc_communicator_t *chanc_test_communicator(chanc_test_t *t, const char *path_fmt, ...)
    CHANC_PRINTF_FORMAT(2, 3);

/* --- the leak ledger ---------------------------------------------------- */

/* What is alive now that was not when the fixture was made (counts may be
 * negative when a test frees something older). jansson allocations are
 * counted through json_set_alloc_funcs, set once before main in every
 * process linking this library: free text from json_dumps with jansson's
 * free (json_get_alloc_funcs) or use chanc_json_dump (plain malloc). */
typedef struct chanc_test_ledger {
    int64_t connections, envelopes, buffers, json;
} chanc_test_ledger_t;
CHANC_API void chanc_test_ledger(const chanc_test_t *t, chanc_test_ledger_t *out);

/* --- fault injection (in process) ----------------------------------------- */

/* The layer the app was created with (options.app.layer, or the in-memory
 * one). The fixture wraps it to inject faults, so chanc_app_layer(t->app)
 * is the wrapper; layer-specific calls (chanc_layer_redis_sync) want this. */
CHANC_API chanc_layer_t *chanc_test_layer(chanc_test_t *t);
/* The channel layer drops the next published message (group or channel):
 * nobody gets it. */
CHANC_API void chanc_test_layer_drop_next(chanc_test_t *t);
/* The channel layer holds the next published message until the virtual
 * clock has moved ms forward (chanc_test_advance delivers it then). */
CHANC_API void chanc_test_layer_delay_next(chanc_test_t *t, uint64_t ms);

/* --- the conformance check ----------------------------------------------- */

/* Every frame the app writes to an in-process communicator is checked
 * against what its connection's consumer declares it may send
 * (chanc_consumer_declared: the framework's own frames, the action
 * table's replies and the consumer's `outgoing` list): a frame conforms when one declared type has
 * its action, its payload validates against the type's schema and the keys
 * beside action and payload are the type's frame_fields (required ones
 * present, each validating). A frame that does not conform fails the test
 * at the next point where the test lets the app run (a receive, an
 * assertion, chanc_test_settle/advance, or the fixture's destroy), with
 * every offending frame, its communicator and why (the validation error
 * items), then the transcripts and the log. On by default; off with the
 * fixture option conformance_off or CHANC_CONFORMANCE=0 in the
 * environment. A consumer whose `outgoing` is NULL is undeclared and not
 * checked (a note in the fixture's log says so, once). Not done for a live
 * server's fixture (chanc_test_create_remote): its consumers are out of
 * reach. */

/* Whether frame conforms to type (as above); each problem is appended to
 * errors (an array, may be NULL) as a validation error item whose loc
 * starts with "payload" or the key beside it ("action": the action
 * differs; "frame": not an object). */
CHANC_API bool chanc_test_frame_conforms(const chanc_message_type_t *type, const json_t *frame,
                                         json_t *errors);

/* --- broadcasts: groups seen from the test ---------------------------------- */

/* From now on, record every message published to group by this app (a
 * consumer's chanc_conn_group_send, chanc_app_group_send, an internal
 * event of chanc_app_group_event), as published: the frame without the
 * per-recipient is_mine/is_current, recorded when it is handed to the
 * channel layer, so also when no member is connected (or the layer drops
 * it). In process only. 0, CHANC_EINVAL (bad group name, remote fixture)
 * or CHANC_ENOMEM. Idempotent. */
CHANC_API int chanc_test_capture_group(chanc_test_t *t, const char *group);
/* What was captured for group since the last take, as a new array
 * (consumed); NULL when group is not captured. After settling. */
CHANC_API json_t *chanc_test_group_sent(chanc_test_t *t, const char *group);

/* Deliver into group, as if another process had published it through the
 * channel layer (a foreign sender node; chanc_layer_deliver_group on the
 * next loop turn), then settle:
 * - inject_event: an internal event (payload stolen, validated against
 *   type) runs the receive_event hook of every local member's consumer;
 * - inject_group_frame: a group frame (stolen; a JSON object, as
 *   chanc_conn_group_send takes it, keys beside the payload included)
 *   reaches every local member's client with is_mine (sender_user, may be
 *   NULL, against the member's user id) and is_current false.
 * Only in process. Failures (a bad group name, a payload off its schema,
 * a frame that is not an object, a remote fixture) are reported like an
 * assertion's, with every communicator's transcript; use the macros. */
CHANC_API bool chanc_test_inject_event_at(chanc_test_t *t, const char *group,
                                          const chanc_message_type_t *type, json_t *payload,
                                          const char *file, int line);
CHANC_API bool chanc_test_inject_group_frame_at(chanc_test_t *t, const char *group, json_t *frame,
                                                const char *sender_user, const char *file,
                                                int line);
#define chanc_test_inject_event(t, group, type, payload) \
    chanc_test_inject_event_at((t), (group), (type), (payload), __FILE__, __LINE__)
#define chanc_test_inject_group_frame(t, group, frame, sender_user) \
    chanc_test_inject_group_frame_at((t), (group), (frame), (sender_user), __FILE__, __LINE__)

/* --- the allocation-failure sweep ---------------------------------------- */

/* CHANC_OOM=1 runs each selected test once per allocation of its body,
 * each run in a new process with that allocation failing (CHANC_OOM_AT=N
 * replays one), and checks every run: no crash or hang, nothing left by
 * the leak ledger, only documented frames and close codes, the failure
 * visible to a client; see docs/testing.md, "Allocation-failure sweep".
 * The probe checks that the app still serves: after the failure, with
 * nothing failing any more, it makes a new communicator of t and does a
 * round trip (true: it worked). Only called in such a run, before the
 * fixture's teardown; a chanc assertion failing in it is recorded, not
 * raised. One per process (set it in the fixture's setup); NULL: none. */
CHANC_API void chanc_test_set_oom_probe(bool (*probe)(chanc_test_t *t, void *ud), void *ud);

/* --- the communicator ------------------------------------------------- */

/* Set/replace a request header before connect. Copied. */
CHANC_API int chanc_communicator_set_header(chanc_communicator_t *c, const char *name,
                                            const char *value);
/* Open the connection and settle. True when the handshake was accepted
 * (authentication may still fail: see the authentication frame); false
 * when refused, with chanc_communicator_close_code() saying why
 * (CHANC_CLOSE_NOT_FOUND for an unmatched path). */
CHANC_API bool chanc_communicator_connect(chanc_communicator_t *c, uint64_t timeout_ms);

/* Next frame sent to this client (any action, completions included), as a
 * new reference; NULL if none once the app has settled. */
CHANC_API json_t *chanc_communicator_receive_json(chanc_communicator_t *c, uint64_t timeout_ms);
/* Every frame sent to this client once the app has settled, without
 * "complete"/"group_complete", as a new array (possibly empty). */
CHANC_API json_t *chanc_communicator_receive_all_json(chanc_communicator_t *c, uint64_t timeout_ms);
/* Frames up to and including the first with `action` (completions
 * included), as a new array; NULL (and nothing consumed) if none came. */
CHANC_API json_t *chanc_communicator_receive_until_action(chanc_communicator_t *c,
                                                          const char *action,
                                                          uint64_t timeout_ms);
/* True when nothing but completions ("complete"/"group_complete", which
 * it drops, as receive_all_json does) is waiting once the app has
 * settled. Use chanc_communicator_pending to count completions too. */
CHANC_API bool chanc_communicator_receive_nothing(chanc_communicator_t *c, uint64_t timeout_ms);
/* Number of frames waiting (after settling). */
CHANC_API size_t chanc_communicator_pending(chanc_communicator_t *c, uint64_t timeout_ms);

/* The next waiting frame's bytes without consuming it (after settling);
 * borrowed, valid until it is consumed. Lets a test check that recipients
 * share one encoded buffer. NULL when nothing is waiting. */
CHANC_API const chanc_buf_t *chanc_communicator_peek_raw(chanc_communicator_t *c);

/* Send a frame (stolen). 0, CHANC_ECLOSED. */
CHANC_API int chanc_communicator_send_json(chanc_communicator_t *c, json_t *frame);
/* Send a typed frame: payload stolen, NOT validated (tests send bad input
 * on purpose). */
CHANC_API int chanc_communicator_send_message(chanc_communicator_t *c,
                                              const chanc_message_type_t *type,
                                              json_t *payload);
/* Send any bytes as one text (or binary) frame. */
CHANC_API int chanc_communicator_send_raw(chanc_communicator_t *c, const void *data,
                                          size_t len, bool binary);
/* Send a NUL-terminated string as one text frame. */
CHANC_API int chanc_communicator_send_text(chanc_communicator_t *c, const char *text);

/* Close from the client side (1000) and settle; the app runs its
 * disconnect hook. No-op when already closed. */
CHANC_API void chanc_communicator_disconnect(chanc_communicator_t *c);
CHANC_API void chanc_communicator_disconnect_code(chanc_communicator_t *c, int code);

/* Fault injection: the next frame the app writes to this client fails in
 * the transport (as a broken socket would); the app closes the connection
 * with 1011 "delivery failed". Others are unaffected. */
CHANC_API void chanc_communicator_fail_next_delivery(chanc_communicator_t *c);
/* The client stops reading: frames the app sends stay in its outgoing
 * queue (not received) until resume_reading; once more than the fixture's
 * max_queue bytes wait, the app closes it as a slow client (1008). */
CHANC_API void chanc_communicator_stop_reading(chanc_communicator_t *c);
CHANC_API void chanc_communicator_resume_reading(chanc_communicator_t *c);

/* Keepalive: the client answers the app's pings (the default) or, with
 * false, ignores them like a dead peer (the app then closes it, 4408). */
CHANC_API void chanc_communicator_answer_pings(chanc_communicator_t *c, bool answer);

/* True once the connection is closed (by either side). */
CHANC_API bool chanc_communicator_closed(chanc_communicator_t *c);
/* Close code (0 while open) and reason (borrowed, "" if none). */
CHANC_API int chanc_communicator_close_code(const chanc_communicator_t *c);
CHANC_API const char *chanc_communicator_close_reason(const chanc_communicator_t *c);

/* The transcript: an array of {"t": ms of virtual time since fixture
 * start, "dir": "open"|"send"|"recv"|"ping"|"pong"|"close"|"disconnect"|
 * "refused", "frame": text, "code": n}. Borrowed. */
CHANC_API const json_t *chanc_communicator_transcript(const chanc_communicator_t *c);
/* Print the transcript and the frames not yet consumed. */
CHANC_API void chanc_communicator_print_transcript(const chanc_communicator_t *c, FILE *out);
CHANC_API const char *chanc_communicator_path(const chanc_communicator_t *c);

/* The transcript as JSON Lines, one entry a line, frames parsed when they
 * are JSON; each value at a JSON pointer in masks (NULL-terminated, may be
 * NULL; a segment "*" matches any array index or key) is
 * replaced by "<masked>". 0 or CHANC_EIO. */
CHANC_API int chanc_communicator_write_transcript(const chanc_communicator_t *c, FILE *out,
                                                  const char *const *masks);

/* --- JSON matching ------------------------------------------------------ */

/* Subset match: objects match when every key of pattern matches the same
 * key in value; arrays when they have the same length and match item by
 * item; numbers by value (1 matches 1.0); other values by equality. */
CHANC_API bool chanc_json_match(const json_t *value, const json_t *pattern);
/* First element of array matching pattern (JSON text); borrowed, or NULL
 * (also for bad pattern text, which is printed). */
CHANC_API json_t *chanc_json_find(const json_t *array, const char *pattern);
/* Describe the first place where value fails to match pattern
 * ("at /payload/username: expected \"bob\", got \"alice\""); malloc'd
 * text, NULL when they match. */
CHANC_API char *chanc_json_mismatch(const json_t *value, const json_t *pattern);

/* --- assertions ---------------------------------------------------------- */

/* What a failed assertion calls. The default prints the message with
 * cmocka's cm_print_error and fails the test (cmocka's _fail). A test of
 * the assertions themselves can install one that records the message and
 * returns; the assertion then returns false. NULL restores the default. */
typedef void (*chanc_fail_fn)(const char *file, int line, const char *message,
                              void *ud);
CHANC_API void chanc_testing_set_fail_handler(chanc_fail_fn fn, void *ud);

/* The functions behind the chanc_assert_* macros below, with the file and
 * line of the call (the macros fill them in): call the macros. */
CHANC_API bool chanc_assert_auth_status_at(chanc_communicator_t *c, int status,
                                           const char *file, int line);
CHANC_API bool chanc_assert_closed_at(chanc_communicator_t *c, int code, const char *file,
                                      int line);
CHANC_API bool chanc_assert_receive_nothing_at(chanc_communicator_t *c, const char *file,
                                               int line);
CHANC_API bool chanc_assert_open_at(chanc_communicator_t *c, const char *file, int line);
CHANC_API bool chanc_assert_json_match_at(const json_t *value, const char *pattern,
                                          chanc_communicator_t *context, const char *file,
                                          int line);
CHANC_API bool chanc_assert_receive_match_at(chanc_communicator_t *c, const char *pattern,
                                             const char *file, int line);
CHANC_API bool chanc_assert_connect_at(chanc_communicator_t *c, const char *file, int line);
CHANC_API bool chanc_assert_receive_all_match_at(chanc_communicator_t *c, const char *pattern,
                                                 const char *file, int line);

CHANC_API bool chanc_assert_group_sent_match_at(chanc_test_t *t, const char *group,
                                               const char *pattern, const char *file, int line);
CHANC_API bool chanc_assert_group_sent_nothing_at(chanc_test_t *t, const char *group,
                                                 const char *file, int line);
CHANC_API bool chanc_assert_in_group_at(chanc_communicator_t *c, const char *group, bool in,
                                        const char *file, int line);

CHANC_API bool chanc_assert_transcript_matches_at(const char *file, int line, const char *base_dir,
                                                  chanc_communicator_t *c, const char *path, ...);
#ifdef CHANC_SOURCE_DIR
#define CHANC__SOURCE_DIR CHANC_SOURCE_DIR
#else
#define CHANC__SOURCE_DIR NULL
#endif

/* connect; fails with the close code and transcript. The chanc_assert_*
 * macros let a hung app run 10 s before failing (a bound, never a wait). */
#define chanc_assert_connect(c) chanc_assert_connect_at((c), __FILE__, __LINE__)
/* Next frame is {"action":"authentication"} with status_code 200. */
#define chanc_assert_authenticated_status_ok(c) \
    chanc_assert_auth_status_at((c), 200, __FILE__, __LINE__)
#define chanc_assert_authenticated_status(c, status) \
    chanc_assert_auth_status_at((c), (status), __FILE__, __LINE__)
/* After settling, the server closed (or refused) with `code`. */
#define chanc_assert_closed(c, code) chanc_assert_closed_at((c), (code), __FILE__, __LINE__)
/* After settling, the connection is still open (fails with the close code). */
#define chanc_assert_open(c) chanc_assert_open_at((c), __FILE__, __LINE__)
#define chanc_assert_receive_nothing(c) \
    chanc_assert_receive_nothing_at((c), __FILE__, __LINE__)
/* value (json_t *) matches pattern (JSON text) as chanc_json_match; a
 * failure shows every communicator of the live fixture(s). */
#define chanc_assert_json_match(value, pattern) \
    chanc_assert_json_match_at((value), (pattern), NULL, __FILE__, __LINE__)
/* Every frame c has been sent once the app has settled, completions
 * dropped (receive_all_json), as one array matching pattern (a JSON
 * array: the same number of frames, each a subset match); they are
 * consumed. Nothing to free, and a failure shows c's transcript:
 *   chanc_assert_receive_all_match(c, "[{\"action\":\"chat\",\"payload\":\"hi\"}]"); */
#define chanc_assert_receive_all_match(c, pattern) \
    chanc_assert_receive_all_match_at((c), (pattern), __FILE__, __LINE__)
/* Next non-completion frame matches pattern (JSON text); it is consumed. */
#define chanc_assert_receive_match(c, pattern) \
    chanc_assert_receive_match_at((c), (pattern), __FILE__, __LINE__)

/* Broadcasts. Everything published to group (captured since
 * chanc_test_capture_group or the last of these assertions) once the app
 * has settled, as one array matching pattern (a JSON array: the same
 * number of messages, each a subset match, as receive_all_match); it is
 * consumed. A failure shows every communicator's transcript:
 *   chanc_test_capture_group(t, "room");
 *   ... a client sends "hi" ...
 *   chanc_assert_group_sent_match(t, "room", "[{\"action\":\"chat\",\"payload\":\"hi\"}]"); */
#define chanc_assert_group_sent_match(t, group, pattern) \
    chanc_assert_group_sent_match_at((t), (group), (pattern), __FILE__, __LINE__)
/* Nothing was published to group (captured) once the app has settled. */
#define chanc_assert_group_sent_nothing(t, group) \
    chanc_assert_group_sent_nothing_at((t), (group), __FILE__, __LINE__)
/* After settling, c's server-side connection is (is not) a member of
 * group (chanc_conn_in_group). In process only; a closed connection is in
 * no group. */
#define chanc_assert_in_group(c, group) \
    chanc_assert_in_group_at((c), (group), true, __FILE__, __LINE__)
#define chanc_assert_not_in_group(c, group) \
    chanc_assert_in_group_at((c), (group), false, __FILE__, __LINE__)

/* The whole conversation of c so far equals the golden transcript at path
 * (JSON Lines, as chanc_communicator_write_transcript writes): every entry's
 * direction, virtual time, close code and frame (compared as JSON), after
 * masking the JSON pointers given after path (volatile fields; "*" matches
 * any index or key). A relative path is taken from the source tree
 * (CHANC_SOURCE_DIR, compiled in by chanc_add_test) or else the working
 * directory. With CHANC_UPDATE_TRANSCRIPTS=1 in the environment it
 * (re)records the file instead and passes. On a mismatch it prints the
 * first differing entry, the JSON pointer where they differ and the
 * transcript.
 *   chanc_assert_transcript_matches(c, "fixtures/transcripts/chat_message.jsonl");
 *   chanc_assert_transcript_matches(c, "fixtures/transcripts/x.jsonl", "/timestamp"); */
#define chanc_assert_transcript_matches(...)                                              \
    chanc_assert_transcript_matches_at(__FILE__, __LINE__, CHANC__SOURCE_DIR, __VA_ARGS__, \
                                       (const char *)NULL)

#ifdef __cplusplus
}
#endif

/* Derived inputs and protocol coverage. */
#include "chanc/derive.h"
#endif
