/* The in-memory channel layer: one process; a published message is
 * delivered to local members on the next loop turn, in publish order, like
 * a real layer's round trip (and so "settled" covers it). Its deliveries
 * are chanc_app_call_soon work: one lane with the app's, which a test's
 * scheduler keeps in order (chanc/schedule.h). */
#include <stdlib.h>
#include <string.h>

#include "chanc/app.h"
#include "chanc/layer.h"
#include "../core/ledger_internal.h"

typedef struct memory_layer {
    chanc_layer_t base;
    chanc_layer_stats_t stats;
} memory_layer_t;

typedef struct pending {
    memory_layer_t *layer;
    chanc_envelope_t *env;
    bool is_group;
    char target[];
} pending_t;

static void run_pending(void *arg) {
    pending_t *p = arg;
    chanc_app_t *app = p->layer->base.app;
    p->layer->stats.received++;
    if (p->is_group)
        chanc_layer_deliver_group(app, p->target, p->env);
    else
        chanc_layer_deliver_channel(app, p->target, p->env);
    chanc_envelope_unref(p->env);
    free(p);
}

static int publish(chanc_layer_t *l, const char *target, chanc_envelope_t *env, bool is_group) {
    size_t n = strlen(target);
    pending_t *p = chanc__malloc(sizeof *p + n + 1);
    if (!p)
        return CHANC_ENOMEM;
    p->layer = (memory_layer_t *)l;
    p->env = chanc_envelope_ref(env);
    p->is_group = is_group;
    memcpy(p->target, target, n + 1);
    int rc = chanc_app_call_soon(l->app, run_pending, p);
    if (rc < 0) {
        chanc_envelope_unref(env);
        free(p);
        return rc;
    }
    p->layer->stats.published++;
    return 0;
}

static int mem_publish_group(chanc_layer_t *l, const char *group, chanc_envelope_t *env) {
    return publish(l, group, env, true);
}

static int mem_publish_channel(chanc_layer_t *l, const char *channel, chanc_envelope_t *env) {
    return publish(l, channel, env, false);
}

static int mem_subscribe(chanc_layer_t *l, const char *group) {
    (void)l;
    (void)group;
    return 0; /* membership lives in the app; nothing to tell anyone */
}

static void mem_destroy(chanc_layer_t *l) { free(l); }

static void mem_stats(const chanc_layer_t *l, chanc_layer_stats_t *out) {
    *out = ((const memory_layer_t *)l)->stats;
    out->connected = true;
}

static const chanc_layer_ops_t memory_ops = {
    .name = "memory",
    .subscribe = mem_subscribe,
    .unsubscribe = mem_subscribe,
    .publish_group = mem_publish_group,
    .publish_channel = mem_publish_channel,
    .destroy = mem_destroy,
    .stats = mem_stats,
};

chanc_layer_t *chanc_layer_memory_create(void) {
    memory_layer_t *m = chanc__calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->base.ops = &memory_ops;
    return &m->base;
}
