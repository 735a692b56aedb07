/* The leak ledger's counters, bumped where objects are made and freed. */
#ifndef CHANC_LEDGER_INTERNAL_H
#define CHANC_LEDGER_INTERNAL_H

#include <stdatomic.h>

#include "chanc/ledger.h"

typedef struct chanc__ledger_counters {
    _Atomic uint64_t conns_opened, conns_freed;
    _Atomic uint64_t envelopes_created, envelopes_freed;
    _Atomic uint64_t bufs_created, bufs_freed;
} chanc__ledger_counters_t;

extern chanc__ledger_counters_t chanc__ledger;

#define CHANC__COUNT(field) atomic_fetch_add_explicit(&chanc__ledger.field, 1, memory_order_relaxed)

#endif
