/* Explored schedules: a hook that lets a test decide, from a seeded
 * generator, the order of the app's work that nothing orders.
 *
 * Without a scheduler (production, and a test run without CHANC_SEED or
 * CHANC_EXPLORE) the app runs its deferred work first in, first out, and
 * pays nothing for this hook. With one installed (the testing fixture does
 * it: docs/testing.md "Explored schedules"), the app asks it:
 * - which lane's next item of deferred work runs next (one item a loop
 *   turn): a lane is FIFO in itself, lanes are not ordered among
 *   themselves. Each client connection's frames, pongs and close form one
 *   lane (the order of one socket); chanc_app_call_soon and the in-memory
 *   layer's deliveries form the app's lane (their documented FIFO);
 *   chanc_app_call_soon_ordered names a lane of the caller's own (a
 *   database thread's completions, in the chat);
 * - in which order the local members of a group get one group message;
 * - which of several timers due at the same instant runs first.
 * What the framework promises holds under every schedule: one
 * connection's frames in arrival order, its `complete` after its resume,
 * one sender's group messages in the order sent, every member of a group
 * seeing the group's messages in one order. Loop thread only. */
#ifndef CHANC_SCHEDULE_H
#define CHANC_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chanc/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct chanc_app chanc_app_t;

typedef struct chanc_scheduler {
    /* A number in [0, n) for n >= 2, drawn from the test's generator:
     * which of n ready alternatives goes first. */
    size_t (*choose)(void *ud, size_t n);
    void *ud;
} chanc_scheduler_t;

/* Install (copied) or remove (NULL) the app's scheduler. */
CHANC_API void chanc_app_set_scheduler(chanc_app_t *app, const chanc_scheduler_t *scheduler);
/* True while a scheduler is installed: code that brings another thread's
 * results back to the loop may then queue them with
 * chanc_app_call_soon_ordered so that the schedule places them. */
CHANC_API bool chanc_app_exploring(const chanc_app_t *app);
/* chanc_app_call_soon in lane `order` (any pointer that names it; NULL:
 * the app's lane, as chanc_app_call_soon): FIFO with the other work of
 * that lane, unordered with other lanes' under a scheduler (FIFO with
 * everything without one). 0 or CHANC_ENOMEM. */
CHANC_API int chanc_app_call_soon_ordered(chanc_app_t *app, const void *order,
                                          void (*fn)(void *arg), void *arg);

#ifdef __cplusplus
}
#endif
#endif
