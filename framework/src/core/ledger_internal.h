/* The leak ledger's counters, bumped where objects are made and freed. */
#ifndef CHANC_LEDGER_INTERNAL_H
#define CHANC_LEDGER_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>

#include "chanc/ledger.h"

typedef struct chanc__ledger_counters {
    _Atomic uint64_t conns_opened, conns_freed;
    _Atomic uint64_t envelopes_created, envelopes_freed;
    _Atomic uint64_t bufs_created, bufs_freed;
} chanc__ledger_counters_t;

extern chanc__ledger_counters_t chanc__ledger;

/* The framework's allocations go through these (chanc_ledger_set_alloc_hook
 * may make any of them fail); free them with free(). */
void *chanc__malloc(size_t n);
void *chanc__calloc(size_t n, size_t size);
void *chanc__realloc(void *p, size_t n);
char *chanc__strdup(const char *s);
char *chanc__strndup(const char *s, size_t n);

#define CHANC__COUNT(field) atomic_fetch_add_explicit(&chanc__ledger.field, 1, memory_order_relaxed)

#endif
