/* Local group membership and per-recipient delivery: the frame is encoded
 * once per envelope; each recipient gets one of at most four shared
 * variants (is_mine/is_current), built the first time it is needed. */
#include <stdlib.h>
#include <string.h>

#include "app_internal.h"
#include "chanc/log.h"

#define GROUP_NAME_MAX 100

static bool valid_group_name(const char *g) {
    size_t n = 0;
    for (; g[n]; n++) {
        char ch = g[n];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.'))
            return false;
    }
    return n > 0 && n <= GROUP_NAME_MAX;
}

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
    if (!group || !valid_group_name(group))
        return CHANC_EINVAL;
    if (c->closing)
        return CHANC_ECLOSED;
    if (find_membership(c, group))
        return 0;
    chanc_app_t *app = c->app;
    if (c->ngroups == c->capgroups) {
        size_t cap = c->capgroups ? c->capgroups * 2 : 4;
        chanc__membership_t *m = realloc(c->groups, cap * sizeof *m);
        if (!m)
            return CHANC_ENOMEM;
        c->groups = m;
        c->capgroups = cap;
    }
    chanc__group_t *g = chanc__map_get(&app->groups, group);
    if (!g) {
        g = calloc(1, sizeof *g);
        if (!g || !(g->name = strdup(group)) || chanc__map_set(&app->groups, group, g) < 0) {
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
        chanc_conn_t **mem = realloc(g->members, cap * sizeof *mem);
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

int chanc_conn_group_send(chanc_conn_t *c, const char *group, json_t *frame, unsigned flags) {
    if (group && !valid_group_name(group)) {
        json_decref(frame);
        return CHANC_EINVAL;
    }
    chanc_app_t *app = c->app;
    chanc_envelope_t *env =
        chanc__make_envelope(app, frame, c->user_id, c->id, flags & CHANC_EXCLUDE_CURRENT);
    if (!env)
        return CHANC_EINVAL;
    int rc = 0;
    if (group) {
        rc = app->layer->ops->publish_group(app->layer, group, env);
    } else {
        for (size_t i = 0; i < c->ngroups && rc == 0; i++)
            rc = app->layer->ops->publish_group(app->layer, c->groups[i].group->name, env);
    }
    chanc_envelope_unref(env);
    return rc;
}

int chanc_conn_group_send_message(chanc_conn_t *c, const char *group,
                                  const chanc_message_type_t *type, json_t *payload,
                                  unsigned flags) {
    chanc_error_t err;
    json_t *frame = chanc_message_build(type, payload, &err);
    if (!frame) {
        chanc_log(CHANC_LOG_ERROR, "conn %llu: group message not sent: %s",
                  (unsigned long long)c->id, err.text);
        return err.code;
    }
    return chanc_conn_group_send(c, group, frame, flags);
}

static const char *const suffixes[3] = {
    "\"is_mine\":false,\"is_current\":false}",
    "\"is_mine\":true,\"is_current\":false}",
    "\"is_mine\":true,\"is_current\":true}",
};

/* frame "{…}" → "{…,<suffix>" (no comma after an empty object). */
static chanc_buf_t *build_variant(const chanc_buf_t *frame, int v) {
    size_t slen = strlen(suffixes[v]);
    chanc_buf_t *b = chanc_buf_with_capacity(frame->len + slen + 1);
    if (!b)
        return NULL;
    chanc_buf_append(&b, frame->data, frame->len - 1);
    if (frame->len > 2)
        chanc_buf_append(&b, ",", 1);
    chanc_buf_append(&b, suffixes[v], slen);
    return b;
}

void chanc__conn_deliver(chanc_conn_t *c, chanc_envelope_t *env) {
    if (c->closing || !c->authenticated || (env->flags & CHANC_ENV_EVENT))
        return; /* an event is for consumers (chanc__deliver_event), never for a client */
    chanc_app_t *app = c->app;
    bool is_current = env->sender_conn && env->sender_node == app->node_id &&
                      env->sender_conn == c->id;
    if (is_current && (env->flags & CHANC_EXCLUDE_CURRENT))
        return;
    int v;
    if (env->flags & CHANC_ENV_NO_FLAGS) {
        v = 3;
    } else {
        bool is_mine = is_current || (env->sender_user && c->user_id &&
                                      env->sender_user_hash == c->user_hash &&
                                      strcmp(env->sender_user, c->user_id) == 0);
        v = is_current ? 2 : is_mine ? 1 : 0;
    }
    if (!env->variant[v]) {
        env->variant[v] = v == 3 ? chanc_buf_ref(env->frame) : build_variant(env->frame, v);
        app->stats.variants += v != 3;
        if (!env->variant[v]) {
            chanc_log(CHANC_LOG_ERROR, "conn %llu: out of memory delivering a group message",
                      (unsigned long long)c->id);
            return;
        }
    }
    app->stats.group_deliveries++;
    if (c->consumer->send_completion)
        chanc__conn_write_pair(c, env->variant[v], app->group_complete_buf);
    else
        chanc__conn_write(c, env->variant[v]);
}

/* --- internal events --------------------------------------------------------- */

/* One member's consumer gets the event (frame: {"action","payload"}). */
static void conn_event(chanc_conn_t *c, const json_t *frame) {
    const chanc_consumer_t *k = c->consumer;
    if (c->closing || !c->authenticated || !k->receive_event)
        return;
    const chanc_message_type_t *type = NULL;
    json_t *errors = NULL;
    if (!k->events || chanc_message_validate(k->events, frame, &type, &errors) < 0) {
        chanc_log(CHANC_LOG_DEBUG, "conn %llu: consumer %s ignores the event %.64s",
                  (unsigned long long)c->id, k->name ? k->name : "?",
                  json_string_value(json_object_get(frame, "action")));
        json_decref(errors);
        return;
    }
    json_t *payload = json_object_get(frame, "payload");
    json_t *null_payload = NULL;
    if (!payload)
        payload = null_payload = json_null();
    int rc = k->receive_event(c, type, payload);
    json_decref(null_payload);
    if (rc < 0)
        chanc_log(CHANC_LOG_ERROR, "conn %llu: event %s failed: %s", (unsigned long long)c->id,
                  type->action, chanc_strerror(rc));
}

void chanc__deliver_event(chanc_app_t *app, const char *group, const chanc_envelope_t *env) {
    chanc__group_t *g = chanc__map_get(&app->groups, group);
    if (!g || !g->n)
        return;
    json_t *frame = json_loadb((const char *)env->frame->data, env->frame->len, 0, NULL);
    /* A hook may close, join or leave (the group may go), even end another
     * member's deferred work: walk a copy of the members' channel names
     * and find each again (a connection that is gone is not found). */
    size_t n = g->n;
    char (*names)[sizeof g->members[0]->channel] = frame ? malloc(n * sizeof *names) : NULL;
    if (!names) {
        chanc_log(CHANC_LOG_ERROR, "group %s: an event could not be delivered (%s)", group,
                  frame ? "out of memory" : "not JSON");
        json_decref(frame);
        return;
    }
    for (size_t i = 0; i < n; i++)
        memcpy(names[i], g->members[i]->channel, sizeof names[i]);
    for (size_t i = 0; i < n; i++) {
        chanc_conn_t *c = chanc__map_get(&app->channels, names[i]);
        if (c)
            conn_event(c, frame);
    }
    free(names);
    json_decref(frame);
}

int chanc_app_group_event(chanc_app_t *app, const char *group, const chanc_message_type_t *type,
                          json_t *payload) {
    if (!app || !group || !valid_group_name(group) || !type) {
        json_decref(payload);
        return CHANC_EINVAL;
    }
    chanc_error_t err;
    json_t *frame = chanc_message_build(type, payload, &err);
    if (!frame) {
        chanc_log(CHANC_LOG_ERROR, "group %s: event not sent: %s", group, err.text);
        return err.code;
    }
    chanc_envelope_t *env = chanc__make_envelope(app, frame, NULL, 0, CHANC_ENV_EVENT);
    if (!env)
        return CHANC_ENOMEM;
    chanc__deliver_event(app, group, env); /* this process's members: now */
    int rc = app->layer->ops->publish_group(app->layer, group, env); /* the others */
    chanc_envelope_unref(env);
    return rc;
}
