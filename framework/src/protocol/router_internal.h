/* Path routing with typed params (Django path() converters). */
#ifndef CHANC_ROUTER_INTERNAL_H
#define CHANC_ROUTER_INTERNAL_H

#include <stddef.h>

#include "chanc/consumer.h"

#define CHANC__MAX_PARAMS 8

typedef enum { SEG_LITERAL, SEG_STR, SEG_INT, SEG_SLUG, SEG_PATH } chanc__seg_kind_t;

typedef struct chanc__seg {
    chanc__seg_kind_t kind;
    char *text; /* literal text or param name */
} chanc__seg_t;

typedef struct chanc__route {
    struct chanc__route *next;
    char *pattern;
    chanc__seg_t *segs;
    size_t nsegs;
    const chanc_consumer_t *consumer;
    void *data;
    /* The union frames are validated against: the consumer's incoming,
     * or `derived` (owned) from its action table when incoming is NULL. */
    const chanc_message_type_t *const *incoming;
    const chanc_message_type_t **derived;
} chanc__route_t;

/* Bound params; values are malloc'd copies. */
typedef struct chanc__params {
    size_t n;
    const char *names[CHANC__MAX_PARAMS]; /* borrowed from the route */
    char *values[CHANC__MAX_PARAMS];
} chanc__params_t;

/* Parse a pattern into a route; NULL on a bad pattern (logged). */
chanc__route_t *chanc__route_new(const char *pattern);
void chanc__route_free(chanc__route_t *r);
/* Match path (leading '/' and "?query" ignored) against one route; on a
 * match fills params (free with chanc__params_dispose) and returns 1. */
int chanc__route_match(const chanc__route_t *r, const char *path, chanc__params_t *params);
void chanc__params_dispose(chanc__params_t *p);

#endif
