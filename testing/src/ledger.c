/* The leak ledger, testing side: jansson allocates through counting
 * functions in every test process (installed before main, so before any
 * jansson allocation), and a fixture compares what is alive at teardown
 * with what was alive when it was made.
 *
 * Every live jansson block is also remembered, with the number of the
 * allocation that made it, in a table of *disguised* addresses: valgrind
 * does not take them for pointers, so a jansson value a passing test
 * forgets is still "definitely lost" to memcheck. When a test fails
 * holding values (cmocka's longjmp skips its json_decref calls), the
 * fixture asks for the blocks made since it started to be kept: their
 * real addresses go to a list valgrind can see, so the failing path is
 * as clean under memcheck as the passing one. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testing_internal.h"

static _Atomic uint64_t json_allocs, json_frees;

/* Open addressing, linear probing, backward-shift deletion; key 0 is an
 * empty slot. Plain malloc: the table is not itself counted. */
#define DISGUISE ((uintptr_t)0x5a5aa5a5c3c33c3cULL)
typedef struct slot {
    uintptr_t key; /* address ^ DISGUISE */
    uint64_t seq;  /* json_allocs when it was made */
    bool app;      /* made by the app in an allocation-failure run (oom.c) */
} slot_t;
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static slot_t *table;
static size_t table_cap, table_len;
static bool table_broken; /* out of memory once: stop tracking */

static size_t slot_of(uintptr_t key, size_t cap) {
    uint64_t h = (uint64_t)key * 0x9e3779b97f4a7c15ULL;
    return (size_t)(h >> 17) & (cap - 1);
}

static bool table_grow(void) {
    size_t cap = table_cap ? table_cap * 2 : 1024;
    slot_t *t = calloc(cap, sizeof *t);
    if (!t)
        return false;
    for (size_t i = 0; i < table_cap; i++)
        if (table[i].key) {
            size_t j = slot_of(table[i].key, cap);
            while (t[j].key)
                j = (j + 1) & (cap - 1);
            t[j] = table[i];
        }
    free(table);
    table = t;
    table_cap = cap;
    return true;
}

static void table_put(void *p, uint64_t seq, bool app) {
    uintptr_t key = (uintptr_t)p ^ DISGUISE;
    pthread_mutex_lock(&table_lock);
    if (!table_broken && (table_len + 1) * 2 > table_cap && !table_grow())
        table_broken = true;
    if (!table_broken) {
        size_t i = slot_of(key, table_cap);
        while (table[i].key && table[i].key != key)
            i = (i + 1) & (table_cap - 1);
        if (!table[i].key)
            table_len++;
        table[i] = (slot_t){key, seq, app};
    }
    pthread_mutex_unlock(&table_lock);
}

static void table_del(void *p) {
    uintptr_t key = (uintptr_t)p ^ DISGUISE;
    pthread_mutex_lock(&table_lock);
    if (table_cap) {
        size_t mask = table_cap - 1, i = slot_of(key, table_cap);
        while (table[i].key && table[i].key != key)
            i = (i + 1) & mask;
        if (table[i].key) {
            /* Shift back the entries that probed past the hole. */
            size_t hole = i;
            for (size_t j = (i + 1) & mask; table[j].key; j = (j + 1) & mask) {
                size_t home = slot_of(table[j].key, table_cap);
                if (((j - home) & mask) >= ((j - hole) & mask)) {
                    table[hole] = table[j];
                    hole = j;
                }
            }
            table[hole].key = 0;
            table_len--;
        }
    }
    pthread_mutex_unlock(&table_lock);
}

static void *counting_malloc(size_t n) {
    if (chanc__oom_fail_json(n))
        return NULL;
    void *p = malloc(n);
    if (p)
        table_put(p, atomic_fetch_add_explicit(&json_allocs, 1, memory_order_relaxed) + 1,
                  chanc__oom_in_app());
    return p;
}

static void counting_free(void *p) {
    if (!p)
        return;
    atomic_fetch_add_explicit(&json_frees, 1, memory_order_relaxed);
    table_del(p);
    free(p);
}

/* Blocks a failed test still held: reachable from here until exit. */
static void **kept;
static size_t kept_len;

size_t chanc__ledger_keep_since(uint64_t seq, size_t *app_alive) {
    size_t n = 0;
    *app_alive = 0;
    pthread_mutex_lock(&table_lock);
    for (size_t i = 0; i < table_cap; i++) {
        if (!table[i].key || table[i].seq <= seq)
            continue;
        if (table[i].app) {
            ++*app_alive;
            continue;
        }
        void **k = realloc(kept, (kept_len + 1) * sizeof *k);
        if (!k)
            break;
        kept = k;
        kept[kept_len++] = (void *)(table[i].key ^ DISGUISE);
        /* Forgotten by the table (a later free of it is harmless). */
        table[i].seq = 0;
        n++;
    }
    pthread_mutex_unlock(&table_lock);
    return n;
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

uint64_t chanc__ledger_json_seq(void) {
    return atomic_load_explicit(&json_allocs, memory_order_relaxed);
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
