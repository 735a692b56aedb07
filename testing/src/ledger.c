/* The leak ledger, testing side: jansson allocates through counting
 * functions in every test process (installed before main, so before any
 * jansson allocation), and a fixture compares what is alive at teardown
 * with what was alive when it was made. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testing_internal.h"

static _Atomic uint64_t json_allocs, json_frees;

static void *counting_malloc(size_t n) {
    void *p = malloc(n);
    if (p)
        atomic_fetch_add_explicit(&json_allocs, 1, memory_order_relaxed);
    return p;
}

static void counting_free(void *p) {
    if (!p)
        return;
    atomic_fetch_add_explicit(&json_frees, 1, memory_order_relaxed);
    free(p);
}

/* json_set_alloc_funcs is process-wide and must come before the first
 * jansson allocation: a value made with one allocator and freed with
 * another would skew the counts. A constructor of the testing library runs
 * before main. */
__attribute__((constructor)) static void install_counting_allocator(void) {
    json_set_alloc_funcs(counting_malloc, counting_free);
}

void chanc__ledger_snapshot(chanc_test_ledger_t *out) {
    chanc_ledger_t l;
    chanc_ledger_get(&l);
    out->connections = (int64_t)(l.conns_opened - l.conns_freed);
    out->envelopes = (int64_t)(l.envelopes_created - l.envelopes_freed);
    out->buffers = (int64_t)(l.bufs_created - l.bufs_freed);
    out->json = (int64_t)(atomic_load_explicit(&json_allocs, memory_order_relaxed) -
                          atomic_load_explicit(&json_frees, memory_order_relaxed));
}

void chanc_test_ledger(const chanc_test_t *t, chanc_test_ledger_t *out) {
    chanc_test_ledger_t now;
    chanc__ledger_snapshot(&now);
    const chanc_test_ledger_t *base = &t->priv->ledger_base;
    out->connections = now.connections - base->connections;
    out->envelopes = now.envelopes - base->envelopes;
    out->buffers = now.buffers - base->buffers;
    out->json = now.json - base->json;
}

char *chanc__ledger_describe(const chanc_test_ledger_t *l) {
    if (!l->connections && !l->envelopes && !l->buffers && !l->json)
        return NULL;
    char text[400];
    int n = snprintf(text, sizeof text, "leak ledger: still alive at teardown:");
    const struct {
        int64_t count;
        const char *what;
    } items[] = {{l->connections, "connection(s) (chanc_conn_t)"},
                 {l->envelopes, "envelope(s) (group/channel messages)"},
                 {l->buffers, "frame buffer(s) (chanc_buf_t)"},
                 {l->json, "jansson allocation(s) (json_t values; json_dumps text)"}};
    for (size_t i = 0; i < sizeof items / sizeof *items; i++)
        if (items[i].count && n > 0 && (size_t)n < sizeof text)
            n += snprintf(text + n, sizeof text - (size_t)n, " %lld %s", (long long)items[i].count,
                          items[i].what);
    return strdup(text);
}
