/* The leak ledger: process-wide counts of what the framework creates and
 * frees (connections, envelopes, frame buffers), so a test fixture can fail
 * a test that leaves something alive without valgrind. Counting is a
 * relaxed atomic add per object; any thread may read. */
#ifndef CHANC_LEDGER_H
#define CHANC_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chanc/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct chanc_ledger {
    uint64_t conns_opened, conns_freed;         /* chanc_conn_open / closed */
    uint64_t envelopes_created, envelopes_freed; /* chanc_envelope_new / last unref */
    uint64_t bufs_created, bufs_freed;           /* chanc_buf_* (static ones excluded) */
} chanc_ledger_t;

/* Copy the current counts into out. */
CHANC_API void chanc_ledger_get(chanc_ledger_t *out);

/* TEST ONLY: allocation-failure injection (the testing library's sweep,
 * CHANC_OOM; docs/testing.md "Allocation-failure sweep"). Every allocation
 * the framework makes itself (core, protocol, the in-memory layer; not
 * libwebsockets', libuv's or libc's own) first asks fn(size, ud), from
 * whichever thread allocates: true makes that allocation fail (NULL, as
 * malloc would). NULL (the default) restores plain allocation. Set it
 * while no other thread allocates through the framework. An application
 * never calls this. */
typedef bool (*chanc_alloc_fail_fn)(size_t size, void *ud);
CHANC_API void chanc_ledger_set_alloc_hook(chanc_alloc_fail_fn fn, void *ud);

#ifdef __cplusplus
}
#endif
#endif
