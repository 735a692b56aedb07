/* chanc testing: hostile and boundary inputs derived from a message type's
 * schema, and the protocol coverage of a test run. Included by
 * <chanc/testing.h>.
 *
 * Derived inputs. From a chanc_message_type_t the harness builds the
 * frames a careful tester would write by hand: each required field
 * missing; each field of every JSON type it does not accept (null
 * included, unless nullable); every bound and its neighbours (string
 * length in code points min-1, min, max, max+1, in ASCII and in 4-byte
 * characters, so a byte count shows; numeric minimum/maximum and the
 * integers or doubles beside them; array lengths); an extra key (refused
 * with extra_forbidden, or kept by CHANC_OBJECT_OPEN); escaped surrogate
 * pairs, U+FFFF, escaped lone surrogates and \u0000 (jansson refuses the
 * last three: json_invalid); huge numbers (1e400, 2^63, -2^63-1:
 * json_invalid, jansson refuses what it cannot hold). Each case knows its
 * documented outcome: accepted, or the validation error items
 * {"type","loc"} the framework answers (docs/protocol.md).
 *
 * Protocol coverage. Every in-process fixture records, per consumer (by
 * name), the incoming actions the app accepted, the outgoing messages it
 * sent (the consumer's `outgoing` list and the framework's own frames),
 * the validation error types and the close codes it produced, and what
 * the consumer declares. With CHANC_COVERAGE_DIR set, each test program
 * writes it to <dir>/<program>.coverage.json; chanc_coverage_summarise
 * merges the files of a run and lists what no test exercised. */
#ifndef CHANC_DERIVE_H
#define CHANC_DERIVE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "chanc.h"
#include "chanc/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct chanc_communicator chanc_communicator_t;

/* --- derived inputs ------------------------------------------------------- */

/* The cases derived from type, as a new JSON array (NULL for a NULL type),
 * in a fixed order (the first is the minimal valid frame):
 *   {"name":   "payload.text: 21 code points of U+1F600 (84 bytes)",
 *    "frame":  the frame's exact text (a string: some cases, such as
 *              "\ud800" or 1e400, cannot be a json_t),
 *    "valid":  true when the framework accepts it,
 *    "errors": the expected error items [{"type", "loc"}], [] when valid}
 * For a loop of one's own: send "frame" with chanc_communicator_send_text,
 * compare the answer with "errors". */
CHANC_API json_t *chanc_schema_cases(const chanc_message_type_t *type);

/* Send every case of chanc_schema_cases(type) on c (connected, past its
 * authentication frame) and check each answer: an invalid case gets
 * exactly one frame, {"action":"error"} whose payload has the expected
 * items (type and loc, in order; msg is not compared); a valid case gets
 * no validation error, and whatever the consumer does with it is fine;
 * after every case the connection is still open. Last, the first valid
 * case is sent again and must not be refused: the connection is still
 * usable. A failure names the case and shows c's transcript. Cases whose
 * frame exceeds the app's max_frame (remote fixtures: the default) are
 * skipped. The line printed says how many ran. Returns the number of
 * cases that passed (all of them unless an assertion failed). */
CHANC_API size_t chanc_assert_schema_cases_at(chanc_communicator_t *c,
                                              const chanc_message_type_t *type,
                                              const char *file, int line);
#define chanc_assert_schema_cases(c, type) \
    chanc_assert_schema_cases_at((c), (type), __FILE__, __LINE__)

/* --- protocol coverage ------------------------------------------------------ */

/* What this process's fixtures have recorded so far (fixtures add theirs
 * when destroyed), as a new object:
 *   {"program": "test_chat_consumer",
 *    "consumers": {"chat": {
 *        "incoming":    {"declared": ["chat", "ping"], "covered": ["chat"]},
 *        "outgoing":    {"declared": [...], "covered": [...]},
 *        "errors":      {"declared": ["json_invalid", ...], "covered": [...]},
 *        "close_codes": {"declared": [1007, ...], "covered": [4403]},
 *        "undeclared":  {"outgoing": [...], "close_codes": [4001]}}}}
 * Outgoing messages are named as in the AsyncAPI document (a type's name,
 * else its action). Declared error types are those the framework can
 * answer for the consumer's incoming union (its schemas' kinds and
 * bounds, plus the frame-level ones); declared close codes are those its
 * hooks make possible (docs/testing.md, "Protocol coverage"). */
CHANC_API json_t *chanc_coverage_report(void);

/* Merge every *.coverage.json in dir and print, per consumer, covered /
 * declared for each of the four kinds and the items no test exercised,
 * then one summary line. Returns the number of unexercised items, or -1
 * when dir cannot be read or holds no coverage file. */
CHANC_API long chanc_coverage_summarise(const char *dir, FILE *out);

#ifdef __cplusplus
}
#endif
#endif
