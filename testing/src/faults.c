/* Fault injection in the channel layer: the fixture wraps the app's layer
 * so that a test can drop the next published message or hold it until the
 * virtual clock has moved on. */
#include <stdlib.h>
#include <string.h>

#include "testing_internal.h"

typedef struct delayed {
    struct delayed *next;
    uint64_t due; /* virtual mono ms */
    chanc_envelope_t *env;
    bool is_group;
    char target[];
} delayed_t;

typedef struct fault_layer {
    chanc_layer_t base;
    chanc_layer_t *inner;
    bool drop_next;
    uint64_t delay_next; /* 0: none */
    delayed_t *delayed;  /* sorted by due, FIFO among equals */
    struct chanc_test_private *p;
} fault_layer_t;

static int f_subscribe(chanc_layer_t *l, const char *group) {
    fault_layer_t *f = (fault_layer_t *)l;
    return f->inner->ops->subscribe(f->inner, group);
}

static int f_unsubscribe(chanc_layer_t *l, const char *group) {
    fault_layer_t *f = (fault_layer_t *)l;
    return f->inner->ops->unsubscribe(f->inner, group);
}

static int publish(fault_layer_t *f, const char *target, chanc_envelope_t *env, bool is_group) {
    f->inner->app = f->base.app;
    if (is_group)
        chanc__capture_published(f->p, target, env);
    if (f->drop_next) {
        f->drop_next = false;
        chanc_log(CHANC_LOG_DEBUG, "test: layer dropped a message for %s", target);
        return 0;
    }
    if (f->delay_next) {
        size_t n = strlen(target);
        delayed_t *d = malloc(sizeof *d + n + 1);
        if (!d)
            return CHANC_ENOMEM;
        d->due = f->p->mono_ms + f->delay_next;
        d->env = chanc_envelope_ref(env);
        d->is_group = is_group;
        memcpy(d->target, target, n + 1);
        f->delay_next = 0;
        delayed_t **at = &f->delayed;
        while (*at && (*at)->due <= d->due)
            at = &(*at)->next;
        d->next = *at;
        *at = d;
        return 0;
    }
    return is_group ? f->inner->ops->publish_group(f->inner, target, env)
                    : f->inner->ops->publish_channel(f->inner, target, env);
}

static int f_publish_group(chanc_layer_t *l, const char *group, chanc_envelope_t *env) {
    return publish((fault_layer_t *)l, group, env, true);
}

static int f_publish_channel(chanc_layer_t *l, const char *channel, chanc_envelope_t *env) {
    return publish((fault_layer_t *)l, channel, env, false);
}

static void f_destroy(chanc_layer_t *l) {
    fault_layer_t *f = (fault_layer_t *)l;
    while (f->delayed) {
        delayed_t *d = f->delayed;
        f->delayed = d->next;
        chanc_envelope_unref(d->env);
        free(d);
    }
    f->inner->ops->destroy(f->inner);
    if (f->p->fault_layer == l)
        f->p->fault_layer = NULL;
    free(f);
}

/* The wrapped layer sees the app and reports its own counters. */
static void f_attach(chanc_layer_t *l) {
    fault_layer_t *f = (fault_layer_t *)l;
    f->inner->app = f->base.app;
    if (f->inner->ops->attach)
        f->inner->ops->attach(f->inner);
}

static void f_stats(const chanc_layer_t *l, chanc_layer_stats_t *out) {
    const fault_layer_t *f = (const fault_layer_t *)l;
    if (f->inner->ops->stats)
        f->inner->ops->stats(f->inner, out);
}

static const chanc_layer_ops_t fault_ops = {
    .attach = f_attach,
    .stats = f_stats,
    .name = "test-faults",
    .subscribe = f_subscribe,
    .unsubscribe = f_unsubscribe,
    .publish_group = f_publish_group,
    .publish_channel = f_publish_channel,
    .destroy = f_destroy,
};

chanc_layer_t *chanc__fault_layer_wrap(struct chanc_test_private *p, chanc_layer_t *inner) {
    if (!inner)
        inner = chanc_layer_memory_create();
    fault_layer_t *f = inner ? calloc(1, sizeof *f) : NULL;
    if (!f) {
        if (inner)
            inner->ops->destroy(inner);
        return NULL;
    }
    f->base.ops = &fault_ops;
    f->inner = inner;
    f->p = p;
    p->fault_layer = &f->base;
    return &f->base;
}

bool chanc__fault_layer_next_due(const struct chanc_test_private *p, uint64_t *due) {
    const fault_layer_t *f = (const fault_layer_t *)p->fault_layer;
    if (!f || !f->delayed)
        return false;
    *due = f->delayed->due;
    return true;
}

void chanc__fault_layer_run_due(struct chanc_test_private *p, chanc_app_t *app) {
    fault_layer_t *f = (fault_layer_t *)p->fault_layer;
    while (f && f->delayed && f->delayed->due <= p->mono_ms) {
        delayed_t *d = f->delayed;
        f->delayed = d->next;
        if (d->is_group)
            chanc_layer_deliver_group(app, d->target, d->env);
        else
            chanc_layer_deliver_channel(app, d->target, d->env);
        chanc_envelope_unref(d->env);
        free(d);
    }
}

chanc_layer_t *chanc_test_layer(chanc_test_t *t) {
    fault_layer_t *f = (fault_layer_t *)t->priv->fault_layer;
    return f ? f->inner : t->app ? chanc_app_layer(t->app) : NULL;
}

void chanc_test_layer_drop_next(chanc_test_t *t) {
    fault_layer_t *f = (fault_layer_t *)t->priv->fault_layer;
    if (f)
        f->drop_next = true;
}

void chanc_test_layer_delay_next(chanc_test_t *t, uint64_t ms) {
    fault_layer_t *f = (fault_layer_t *)t->priv->fault_layer;
    if (f)
        f->delay_next = ms ? ms : 1;
}
