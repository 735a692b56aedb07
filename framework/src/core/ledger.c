/* The leak ledger's counters (see chanc/ledger.h). */
#include "ledger_internal.h"

chanc__ledger_counters_t chanc__ledger;

void chanc_ledger_get(chanc_ledger_t *out) {
    out->conns_opened = atomic_load_explicit(&chanc__ledger.conns_opened, memory_order_relaxed);
    out->conns_freed = atomic_load_explicit(&chanc__ledger.conns_freed, memory_order_relaxed);
    out->envelopes_created =
        atomic_load_explicit(&chanc__ledger.envelopes_created, memory_order_relaxed);
    out->envelopes_freed = atomic_load_explicit(&chanc__ledger.envelopes_freed, memory_order_relaxed);
    out->bufs_created = atomic_load_explicit(&chanc__ledger.bufs_created, memory_order_relaxed);
    out->bufs_freed = atomic_load_explicit(&chanc__ledger.bufs_freed, memory_order_relaxed);
}
