/* String-keyed chained hash map (FNV-1a), grown at load factor 1. */
#include <stdlib.h>
#include <string.h>

#include "chanc/error.h"
#include "map_internal.h"
#ifdef CHANC_MAP_PLAIN_ALLOC
/* Compiled into chanc_redis, which sees only chanc's public symbols. */
#define chanc__malloc malloc
#define chanc__calloc calloc
#else
#include "ledger_internal.h"
#endif

static size_t hash_str(const char *s) {
    size_t h = (size_t)1469598103934665603ULL;
    while (*s) {
        h ^= (unsigned char)*s++;
        h *= (size_t)1099511628211ULL;
    }
    return h;
}

void chanc__map_init(chanc__map_t *m) { memset(m, 0, sizeof *m); }

void chanc__map_dispose(chanc__map_t *m) {
    for (size_t i = 0; i < m->nbuckets; i++) {
        chanc__map_entry_t *e = m->buckets[i];
        while (e) {
            chanc__map_entry_t *next = e->next;
            free(e);
            e = next;
        }
    }
    free(m->buckets);
    chanc__map_init(m);
}

static chanc__map_entry_t **find(const chanc__map_t *m, const char *key, size_t h) {
    if (!m->nbuckets)
        return NULL;
    chanc__map_entry_t **pp = &m->buckets[h & (m->nbuckets - 1)];
    while (*pp && ((*pp)->hash != h || strcmp((*pp)->key, key) != 0))
        pp = &(*pp)->next;
    return pp;
}

void *chanc__map_get(const chanc__map_t *m, const char *key) {
    chanc__map_entry_t **pp = find(m, key, hash_str(key));
    return pp && *pp ? (*pp)->value : NULL;
}

static int grow(chanc__map_t *m) {
    size_t n = m->nbuckets ? m->nbuckets * 2 : 16;
    chanc__map_entry_t **b = chanc__calloc(n, sizeof *b);
    if (!b)
        return CHANC_ENOMEM;
    for (size_t i = 0; i < m->nbuckets; i++) {
        chanc__map_entry_t *e = m->buckets[i];
        while (e) {
            chanc__map_entry_t *next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
    return 0;
}

int chanc__map_set(chanc__map_t *m, const char *key, void *value) {
    size_t h = hash_str(key);
    chanc__map_entry_t **pp = find(m, key, h);
    if (pp && *pp) {
        (*pp)->value = value;
        return 0;
    }
    if (m->count >= m->nbuckets && grow(m) < 0)
        return CHANC_ENOMEM;
    size_t klen = strlen(key);
    chanc__map_entry_t *e = chanc__malloc(sizeof *e + klen + 1);
    if (!e)
        return CHANC_ENOMEM;
    memcpy(e->key, key, klen + 1);
    e->hash = h;
    e->value = value;
    e->next = m->buckets[h & (m->nbuckets - 1)];
    m->buckets[h & (m->nbuckets - 1)] = e;
    m->count++;
    return 0;
}

void *chanc__map_remove(chanc__map_t *m, const char *key) {
    chanc__map_entry_t **pp = find(m, key, hash_str(key));
    if (!pp || !*pp)
        return NULL;
    chanc__map_entry_t *e = *pp;
    void *v = e->value;
    *pp = e->next;
    free(e);
    m->count--;
    return v;
}

void chanc__map_each(const chanc__map_t *m,
                     void (*visit)(const char *key, void *value, void *ud), void *ud) {
    for (size_t i = 0; i < m->nbuckets; i++)
        for (chanc__map_entry_t *e = m->buckets[i]; e; e = e->next)
            visit(e->key, e->value, ud);
}
