/* A small string-keyed hash map (chained, power-of-two buckets) for groups
 * and channel names. Keys are copied; values borrowed. */
#ifndef CHANC_MAP_INTERNAL_H
#define CHANC_MAP_INTERNAL_H

#include <stddef.h>

typedef struct chanc__map_entry {
    struct chanc__map_entry *next;
    size_t hash;
    void *value;
    char key[];
} chanc__map_entry_t;

typedef struct chanc__map {
    chanc__map_entry_t **buckets;
    size_t nbuckets; /* 0 or a power of two */
    size_t count;
} chanc__map_t;

void chanc__map_init(chanc__map_t *m);
/* Frees the entries (not the values). */
void chanc__map_dispose(chanc__map_t *m);
void *chanc__map_get(const chanc__map_t *m, const char *key);
/* Insert or replace; 0 or CHANC_ENOMEM. */
int chanc__map_set(chanc__map_t *m, const char *key, void *value);
/* Remove; returns the old value or NULL. */
void *chanc__map_remove(chanc__map_t *m, const char *key);
/* Iterate: visit(key, value, ud) for each entry; must not modify the map. */
void chanc__map_each(const chanc__map_t *m,
                     void (*visit)(const char *key, void *value, void *ud), void *ud);

#endif
