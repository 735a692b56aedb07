/* The leak ledger's counters (see chanc/ledger.h). */
#include <stdlib.h>
#include <string.h>

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

/* --- failable allocations (chanc_ledger_set_alloc_hook) ------------------- */

static _Atomic(chanc_alloc_fail_fn) alloc_hook;
static void *_Atomic alloc_hook_ud;

void chanc_ledger_set_alloc_hook(chanc_alloc_fail_fn fn, void *ud) {
    atomic_store(&alloc_hook_ud, ud);
    atomic_store(&alloc_hook, fn);
}

static bool fail_now(size_t n) {
    chanc_alloc_fail_fn fn = atomic_load_explicit(&alloc_hook, memory_order_acquire);
    return fn && fn(n, atomic_load_explicit(&alloc_hook_ud, memory_order_relaxed));
}

void *chanc__malloc(size_t n) { return fail_now(n) ? NULL : malloc(n); }

void *chanc__calloc(size_t n, size_t size) { return fail_now(n * size) ? NULL : calloc(n, size); }

void *chanc__realloc(void *p, size_t n) { return fail_now(n) ? NULL : realloc(p, n); }

char *chanc__strdup(const char *s) { return fail_now(strlen(s) + 1) ? NULL : strdup(s); }

char *chanc__strndup(const char *s, size_t n) { return fail_now(n + 1) ? NULL : strndup(s, n); }
