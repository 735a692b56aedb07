/* Local group membership: the app's registry (name -> members) and each
 * connection's list of its groups; the layer is told when a group gets its
 * first local member or loses its last. Sending and delivering group
 * messages: delivery.c. */
#include <stdlib.h>
#include <string.h>

#include "app_internal.h"
#include "chanc/log.h"
#include "ledger_internal.h"

#define GROUP_NAME_MAX 100

bool chanc__group_name_valid(const char *g) {
    size_t n = 0;
    for (; g[n]; n++) {
        char ch = g[n];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.'))
            return false;
    }
    return n > 0 && n <= GROUP_NAME_MAX;
}

bool chanc_group_name_valid(const char *group) { return group && chanc__group_name_valid(group); }

static chanc__membership_t *find_membership(const chanc_conn_t *c, const char *group) {
    for (size_t i = 0; i < c->ngroups; i++)
        if (strcmp(c->groups[i].group->name, group) == 0)
            return &c->groups[i];
    return NULL;
}

bool chanc_conn_in_group(const chanc_conn_t *c, const char *group) {
    return group && find_membership(c, group) != NULL;
}

int chanc_conn_group_add(chanc_conn_t *c, const char *group) {
    if (!group || !chanc__group_name_valid(group))
        return CHANC_EINVAL;
    if (c->closing)
        return CHANC_ECLOSED;
    if (find_membership(c, group))
        return 0;
    chanc_app_t *app = c->app;
    if (c->ngroups == c->capgroups) {
        size_t cap = c->capgroups ? c->capgroups * 2 : 4;
        chanc__membership_t *m = chanc__realloc(c->groups, cap * sizeof *m);
        if (!m)
            return CHANC_ENOMEM;
        c->groups = m;
        c->capgroups = cap;
    }
    chanc__group_t *g = chanc__map_get(&app->groups, group);
    if (!g) {
        g = chanc__calloc(1, sizeof *g);
        if (!g || !(g->name = chanc__strdup(group)) || chanc__map_set(&app->groups, group, g) < 0) {
            if (g)
                free(g->name);
            free(g);
            return CHANC_ENOMEM;
        }
        int rc = app->layer->ops->subscribe(app->layer, group);
        if (rc < 0)
            chanc_log(CHANC_LOG_WARN, "layer %s: subscribe %s failed: %s", app->layer->ops->name,
                      group, chanc_strerror(rc));
    }
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 8;
        chanc_conn_t **mem = chanc__realloc(g->members, cap * sizeof *mem);
        if (!mem)
            return CHANC_ENOMEM; /* an empty group stays registered; harmless */
        g->members = mem;
        g->cap = cap;
    }
    g->members[g->n] = c;
    c->groups[c->ngroups++] = (chanc__membership_t){g, g->n};
    g->n++;
    return 0;
}

static void leave(chanc_conn_t *c, chanc__membership_t *m) {
    chanc_app_t *app = c->app;
    chanc__group_t *g = m->group;
    size_t idx = m->index;
    /* Swap-remove from the group, then fix the moved member's index. */
    g->members[idx] = g->members[--g->n];
    if (idx < g->n) {
        chanc__membership_t *moved = find_membership(g->members[idx], g->name);
        moved->index = idx;
    }
    *m = c->groups[--c->ngroups];
    if (g->n == 0) {
        chanc__map_remove(&app->groups, g->name);
        int rc = app->layer->ops->unsubscribe(app->layer, g->name);
        if (rc < 0)
            chanc_log(CHANC_LOG_WARN, "layer %s: unsubscribe %s failed: %s",
                      app->layer->ops->name, g->name, chanc_strerror(rc));
        free(g->members);
        free(g->name);
        free(g);
    }
}

int chanc_conn_group_discard(chanc_conn_t *c, const char *group) {
    chanc__membership_t *m = group ? find_membership(c, group) : NULL;
    if (m)
        leave(c, m);
    return 0;
}

void chanc__conn_leave_all(chanc_conn_t *c) {
    while (c->ngroups)
        leave(c, &c->groups[c->ngroups - 1]);
}
