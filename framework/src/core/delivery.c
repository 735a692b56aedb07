/* Delivery: how a frame becomes bytes for its recipients.
 *
 * Sending: a consumer's or the app's group/channel message is encoded once
 * (chanc__encode) into a refcounted envelope with its sender's identity
 * and handed to the channel layer (chanc_layer_t: layers/).
 * Receiving: the layer hands the envelope back on this process's loop
 * (chanc_layer_deliver_group / _channel) and each local recipient gets one
 * of at most four shared variants of the frame (is_mine/is_current added),
 * built the first time one is needed: no allocation per recipient.
 * Typed events (chanc_app_group_event, chanc_app_channel_event, and
 * chanc_app_post_event from other threads) go to the consumers'
 * receive_event hooks, never straight to a client: a hook passes one on
 * with chanc_conn_pass_event (the event's own bytes, shared). Group
 * membership itself lives in groups.c. */
#include <stdlib.h>
#include <string.h>

#include "app_internal.h"
#include "chanc/log.h"
#include "ledger_internal.h"

/* --- encoding ------------------------------------------------------------ */

typedef struct encoding {
    chanc_buf_t *b;
    bool failed;
} encoding_t;

/* Once an append has failed, every later one fails too: jansson does not
 * always stop at a failed callback, and a later append that succeeds
 * would leave a hole in the frame (the allocation-failure sweep sent
 * such a history frame, as invalid JSON). */
static int dump_cb(const char *buffer, size_t size, void *data) {
    encoding_t *e = data;
    e->failed = e->failed || chanc_buf_append(&e->b, buffer, size) != 0;
    return e->failed ? -1 : 0;
}

chanc_buf_t *chanc__encode(const json_t *value) {
    encoding_t e = {chanc_buf_with_capacity(256), false};
    if (!e.b)
        return NULL;
    if (json_dump_callback(value, dump_cb, &e, JSON_COMPACT | JSON_ENCODE_ANY) != 0 || e.failed) {
        chanc_buf_unref(e.b);
        return NULL;
    }
    return e.b;
}

/* --- envelopes ------------------------------------------------------------- */

uint64_t chanc__user_hash(const char *user_id) {
    if (!user_id)
        return 0;
    uint64_t h = 0xcbf29ce484222325u;
    for (const unsigned char *p = (const unsigned char *)user_id; *p; p++)
        h = (h ^ *p) * 0x100000001b3u;
    return h;
}

/* An envelope and what only delivery reads: allocated by
 * chanc_envelope_new only, so a chanc_envelope_t is always the first member
 * of one. */
typedef struct envelope {
    chanc_envelope_t pub;
    uint64_t sender_user_hash; /* of sender_user: recipients compare it before
                                * the string */
    /* Lazily built per-recipient variants: [0] neither flag,
     * [1] is_mine only, [2] is_mine and is_current, [3] no flags added. */
    chanc_buf_t *variant[4];
} envelope_t;

static envelope_t *priv(chanc_envelope_t *e) { return (envelope_t *)e; }

chanc_envelope_t *chanc_envelope_new(chanc_buf_t *frame, const char *sender_user,
                                     uint64_t sender_node, uint64_t sender_conn,
                                     uint32_t flags) {
    envelope_t *p = chanc__calloc(1, sizeof *p);
    if (!p)
        return NULL;
    chanc_envelope_t *e = &p->pub;
    CHANC__COUNT(envelopes_created);
    e->refcount = 1;
    e->flags = flags;
    e->frame = chanc_buf_ref(frame);
    e->sender_user = sender_user ? chanc__strdup(sender_user) : NULL;
    p->sender_user_hash = chanc__user_hash(sender_user);
    e->sender_node = sender_node;
    e->sender_conn = sender_conn;
    if (sender_user && !e->sender_user) {
        chanc_envelope_unref(e);
        return NULL;
    }
    return e;
}

chanc_envelope_t *chanc_envelope_ref(chanc_envelope_t *e) {
    if (e)
        e->refcount++;
    return e;
}

void chanc_envelope_unref(chanc_envelope_t *e) {
    if (!e || --e->refcount)
        return;
    envelope_t *p = priv(e);
    for (int i = 0; i < 4; i++)
        chanc_buf_unref(p->variant[i]);
    chanc_buf_unref(e->frame);
    free(e->sender_user);
    free(p);
    CHANC__COUNT(envelopes_freed);
}

chanc_envelope_t *chanc__make_envelope(chanc_app_t *app, json_t *frame, const char *user,
                                       uint64_t conn, uint32_t flags) {
    if (!json_is_object(frame)) {
        json_decref(frame);
        return NULL;
    }
    chanc_buf_t *buf = chanc__encode(frame);
    json_decref(frame);
    app->stats.encodes++;
    app->stats.group_messages++;
    chanc_envelope_t *env = buf ? chanc_envelope_new(buf, user, app->node_id, conn, flags) : NULL;
    chanc_buf_unref(buf);
    return env;
}

/* Run an event (env->flags has CHANC_ENV_EVENT) through the receive_event
 * hook of every local member of group / of the channel's connection. */
static void deliver_event(chanc_app_t *app, const char *group, const chanc_envelope_t *env);
static void deliver_channel_event(chanc_app_t *app, const char *channel,
                                  const chanc_envelope_t *env);
/* One envelope to one local connection (chooses the variant). */
static void conn_deliver(chanc_conn_t *c, chanc_envelope_t *env);

/* --- sending --------------------------------------------------------------- */

static int group_lost(chanc_app_t *app, const char *group);

/* The app's own message (no sending connection) to a group or a channel. */
static int app_send(chanc_app_t *app, const char *target, json_t *frame, bool is_group) {
    if (!frame && target && is_group) /* out of memory: see group_lost */
        return group_lost(app, target);
    chanc_envelope_t *env =
        target ? chanc__make_envelope(app, frame, NULL, 0, is_group ? 0 : CHANC_ENV_NO_FLAGS)
               : NULL;
    if (!target)
        json_decref(frame);
    if (!env)
        return CHANC_EINVAL;
    chanc_layer_t *l = app->layer;
    int rc = is_group ? l->ops->publish_group(l, target, env)
                      : l->ops->publish_channel(l, target, env);
    chanc_envelope_unref(env);
    return rc;
}

int chanc_app_group_send(chanc_app_t *app, const char *group, json_t *frame) {
    return app_send(app, group, frame, true);
}

int chanc_app_channel_send(chanc_app_t *app, const char *channel, json_t *frame) {
    return app_send(app, channel, frame, false);
}

/* A group message that ran out of memory before it reached the layer:
 * every member of the group in this process would silently miss it, so
 * they go, as a client does when its own frame cannot be made (1011). */
static int group_lost(chanc_app_t *app, const char *group) {
    chanc__group_t *g = chanc__map_get(&app->groups, group);
    chanc_log(CHANC_LOG_ERROR, "group %.100s: out of memory for a group message, closing its "
              "%zu member(s) here", group, g ? g->n : 0);
    for (size_t i = 0; g && i < g->n; i++)
        chanc_conn_close(g->members[i], CHANC_CLOSE_INTERNAL, "delivery failed");
    return CHANC_ENOMEM;
}

static int conn_group_lost(chanc_conn_t *c, const char *group) {
    if (group)
        return group_lost(c->app, group);
    for (size_t i = 0; i < c->ngroups; i++)
        group_lost(c->app, c->groups[i].group->name);
    return CHANC_ENOMEM;
}

int chanc_conn_group_send(chanc_conn_t *c, const char *group, json_t *frame, unsigned flags) {
    if (group && !chanc__group_name_valid(group)) {
        json_decref(frame);
        return CHANC_EINVAL;
    }
    if (!frame) /* a json_pack/json_object that ran out of memory */
        return conn_group_lost(c, group);
    if (!json_is_object(frame)) {
        json_decref(frame);
        return CHANC_EINVAL;
    }
    chanc_app_t *app = c->app;
    chanc_envelope_t *env =
        chanc__make_envelope(app, frame, c->user_id, c->id, flags & CHANC_EXCLUDE_CURRENT);
    if (!env)
        return conn_group_lost(c, group);
    int rc = 0;
    if (group) {
        rc = app->layer->ops->publish_group(app->layer, group, env);
        if (rc == CHANC_ENOMEM)
            group_lost(app, group);
    } else {
        for (size_t i = 0; i < c->ngroups && rc == 0; i++)
            if ((rc = app->layer->ops->publish_group(app->layer, c->groups[i].group->name, env)) ==
                CHANC_ENOMEM)
                group_lost(app, c->groups[i].group->name);
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
        if (err.code == CHANC_ENOMEM)
            return chanc_conn_group_send(c, group, NULL, flags);
        chanc_log(CHANC_LOG_ERROR, "conn %llu: group message not sent: %s",
                  (unsigned long long)c->id, err.text);
        return err.code;
    }
    return chanc_conn_group_send(c, group, frame, flags);
}

/* --- events ------------------------------------------------------------- */

/* A channel name as chanc_conn_channel makes them: 16 hex digits, '!',
 * a decimal connection id. Any thread. */
static bool channel_name_valid(const char *s) {
    size_t i = 0;
    for (; i < 16; i++)
        if (!strchr("0123456789abcdef", s[i]) || !s[i])
            return false;
    if (s[i++] != '!' || !s[i])
        return false;
    for (size_t n = 0; s[i]; i++, n++)
        if (s[i] < '0' || s[i] > '9' || n >= 20)
            return false;
    return true;
}

static bool target_valid(chanc_event_target_t kind, const char *name) {
    return name && (kind == CHANC_EVENT_GROUP     ? chanc__group_name_valid(name)
                    : kind == CHANC_EVENT_CHANNEL ? channel_name_valid(name)
                                                  : false);
}

/* Any thread: the event's frame (payload stolen), or NULL with *rc set. */
static json_t *event_frame(const chanc_app_t *app, chanc_event_target_t kind, const char *name,
                           const chanc_message_type_t *type, json_t *payload, int *rc,
                           chanc_error_t *err) {
    if (!app || !type || !target_valid(kind, name)) {
        json_decref(payload);
        *rc = CHANC_EINVAL;
        return NULL;
    }
    json_t *frame = chanc_message_build(type, payload, err);
    *rc = frame ? 0 : err->code;
    return frame;
}

/* Loop thread: send a built event frame (stolen). This process's
 * recipients get it now; other processes through the layer. */
static int send_event(chanc_app_t *app, chanc_event_target_t kind, const char *name,
                      json_t *frame) {
    chanc_envelope_t *env = chanc__make_envelope(app, frame, NULL, 0, CHANC_ENV_EVENT);
    if (!env)
        return CHANC_ENOMEM;
    chanc_layer_t *l = app->layer;
    int rc = 0;
    if (kind == CHANC_EVENT_GROUP) {
        deliver_event(app, name, env);            /* this process's members: now */
        rc = l->ops->publish_group(l, name, env); /* the others */
    } else if (chanc__map_get(&app->channels, name)) {
        deliver_channel_event(app, name, env); /* ours: now, and no one else's */
    } else {
        rc = l->ops->publish_channel(l, name, env); /* perhaps another process's */
    }
    chanc_envelope_unref(env);
    return rc;
}

static int app_event(chanc_app_t *app, chanc_event_target_t kind, const char *name,
                     const chanc_message_type_t *type, json_t *payload) {
    int rc;
    chanc_error_t err = {0};
    json_t *frame = event_frame(app, kind, name, type, payload, &rc, &err);
    if (!frame) {
        if (rc == CHANC_EVALIDATION)
            chanc_log(CHANC_LOG_ERROR, "%s %s: event not sent: %s",
                      kind == CHANC_EVENT_GROUP ? "group" : "channel", name, err.text);
        return rc;
    }
    return send_event(app, kind, name, frame);
}

int chanc_app_group_event(chanc_app_t *app, const char *group, const chanc_message_type_t *type,
                          json_t *payload) {
    return app_event(app, CHANC_EVENT_GROUP, group, type, payload);
}

int chanc_app_channel_event(chanc_app_t *app, const char *channel,
                            const chanc_message_type_t *type, json_t *payload) {
    return app_event(app, CHANC_EVENT_CHANNEL, channel, type, payload);
}

/* An event another thread posted, waiting for the loop. */
typedef struct chanc__post {
    struct chanc__post *next;
    chanc_event_target_t kind;
    json_t *frame;
    char name[]; /* group or channel */
} chanc__post_t;

int chanc_app_post_event(chanc_app_t *app, chanc_event_target_t kind, const char *name,
                         const chanc_message_type_t *type, json_t *payload) {
    int rc;
    chanc_error_t err = {0};
    json_t *frame = event_frame(app, kind, name, type, payload, &rc, &err);
    if (!frame)
        return rc; /* not logged: the caller has the code, and may not be on the loop */
    size_t len = strlen(name);
    chanc__post_t *p = malloc(sizeof *p + len + 1);
    if (!p) {
        json_decref(frame);
        return CHANC_ENOMEM;
    }
    p->next = NULL;
    p->kind = kind;
    p->frame = frame;
    memcpy(p->name, name, len + 1);
    uv_mutex_lock(&app->post_lock);
    bool closed = app->posts_closed;
    if (!closed) {
        *app->posts_tail = p;
        app->posts_tail = &p->next;
        atomic_fetch_add_explicit(&app->posts_pending, 1, memory_order_acq_rel);
        uv_async_send(&app->post_async); /* under the lock: destroy cannot close it meanwhile */
    }
    uv_mutex_unlock(&app->post_lock);
    if (closed) {
        json_decref(frame);
        free(p);
        return CHANC_ECLOSED;
    }
    return 0;
}

static chanc__post_t *posts_take(chanc_app_t *app) {
    uv_mutex_lock(&app->post_lock);
    chanc__post_t *list = app->posts;
    app->posts = NULL;
    app->posts_tail = &app->posts;
    uv_mutex_unlock(&app->post_lock);
    return list;
}

void chanc__posts_run(uv_async_t *h) {
    chanc_app_t *app = h->data;
    for (chanc__post_t *p = posts_take(app), *next; p; p = next) {
        next = p->next;
        int rc = send_event(app, p->kind, p->name, p->frame);
        if (rc < 0)
            chanc_log(CHANC_LOG_ERROR, "%s %s: posted event not sent: %s",
                      p->kind == CHANC_EVENT_GROUP ? "group" : "channel", p->name,
                      chanc_strerror(rc));
        free(p);
        /* After it was sent: settled means delivered here. */
        atomic_fetch_sub_explicit(&app->posts_pending, 1, memory_order_acq_rel);
    }
}

void chanc__posts_discard(chanc_app_t *app) {
    uv_mutex_lock(&app->post_lock);
    app->posts_closed = true;
    uv_mutex_unlock(&app->post_lock);
    size_t n = 0;
    for (chanc__post_t *p = posts_take(app), *next; p; p = next, n++) {
        next = p->next;
        json_decref(p->frame);
        free(p);
        atomic_fetch_sub_explicit(&app->posts_pending, 1, memory_order_acq_rel);
    }
    if (n)
        chanc_log(CHANC_LOG_INFO, "chanc_app_destroy: %zu posted event(s) not delivered", n);
}

/* --- receiving: the layer hands an envelope back ---------------------------- */

void chanc_layer_deliver_group(chanc_app_t *app, const char *group, chanc_envelope_t *env) {
    if (env->flags & CHANC_ENV_EVENT) {
        /* This process's own members had it when it was sent. */
        if (env->sender_node != app->node_id)
            deliver_event(app, group, env);
        return;
    }
    chanc__group_t *g = chanc__map_get(&app->groups, group);
    if (!g)
        return;
    /* Writes never call back into the app (transport contract), so the
     * member array cannot change under this loop. A test's scheduler
     * picks the members' order (schedule.c). */
    size_t *order = app->exploring && g->n > 1 ? chanc__malloc(g->n * sizeof *order) : NULL;
    if (order)
        chanc__schedule_shuffle(app, order, g->n);
    for (size_t i = 0; i < g->n; i++)
        conn_deliver(g->members[order ? order[i] : i], env);
    free(order);
}

void chanc_layer_deliver_channel(chanc_app_t *app, const char *channel, chanc_envelope_t *env) {
    if (env->flags & CHANC_ENV_EVENT) {
        /* The sender delivers its own connections' events itself. */
        if (env->sender_node != app->node_id)
            deliver_channel_event(app, channel, env);
        return;
    }
    chanc_conn_t *c = chanc__map_get(&app->channels, channel);
    if (c)
        conn_deliver(c, env);
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

static void conn_deliver(chanc_conn_t *c, chanc_envelope_t *env) {
    if (c->closing || !c->admitted || (env->flags & CHANC_ENV_EVENT))
        return; /* an event is for consumers (deliver_event), never for a client */
    chanc_app_t *app = c->app;
    bool is_current = env->sender_conn && env->sender_node == app->node_id &&
                      env->sender_conn == c->id;
    if (is_current && (env->flags & CHANC_EXCLUDE_CURRENT))
        return;
    envelope_t *p = priv(env);
    int v;
    if (env->flags & CHANC_ENV_NO_FLAGS) {
        v = 3;
    } else {
        bool is_mine = is_current || (env->sender_user && c->user_id &&
                                      p->sender_user_hash == c->user_hash &&
                                      strcmp(env->sender_user, c->user_id) == 0);
        v = is_current ? 2 : is_mine ? 1 : 0;
    }
    if (!p->variant[v]) {
        p->variant[v] = v == 3 ? chanc_buf_ref(env->frame) : build_variant(env->frame, v);
        app->stats.variants += v != 3;
        if (!p->variant[v]) { /* c would silently miss it: it goes */
            chanc_log(CHANC_LOG_ERROR, "conn %llu: out of memory delivering a group message, "
                      "closing", (unsigned long long)c->id);
            chanc_conn_close(c, CHANC_CLOSE_INTERNAL, "delivery failed");
            return;
        }
    }
    app->stats.group_deliveries++;
    if (c->consumer->send_completion)
        chanc__conn_write_pair(c, p->variant[v], app->group_complete_buf);
    else
        chanc__conn_write(c, p->variant[v]);
}

/* The event a receive_event hook is handling, for chanc_conn_pass_event:
 * the bytes every recipient shares, the parsed frame, and the outgoing
 * types it was checked against (once per delivery, not per recipient). */
typedef struct chanc__event_delivery {
    chanc_buf_t *buf;
    const json_t *frame;
    const chanc_message_type_t *type; /* the event's */
    chanc_conn_t *conn;               /* whose hook is running */
    const chanc_message_type_t *ok, *bad;
} chanc__event_delivery_t;

/* One member's consumer gets the event. */
static void conn_event(chanc_conn_t *c, chanc__event_delivery_t *ev) {
    const chanc_consumer_t *k = c->consumer;
    if (c->closing || !c->admitted || !k->receive_event)
        return;
    const chanc_message_type_t *type = NULL;
    json_t *errors = NULL;
    if (!k->events || chanc_message_validate(k->events, ev->frame, &type, &errors) < 0) {
        chanc_log(CHANC_LOG_DEBUG, "conn %llu: consumer %s ignores the event %.64s",
                  (unsigned long long)c->id, k->name ? k->name : "?",
                  json_string_value(json_object_get(ev->frame, "action")));
        json_decref(errors);
        return;
    }
    json_t *payload = json_object_get(ev->frame, "payload");
    json_t *null_payload = NULL;
    if (!payload)
        payload = null_payload = json_null();
    chanc_app_t *app = c->app;
    chanc__event_delivery_t *outer = app->event; /* a hook may send an event itself */
    ev->type = type;
    ev->conn = c;
    app->event = ev;
    int rc = k->receive_event(c, type, payload);
    app->event = outer;
    json_decref(null_payload);
    if (rc < 0)
        chanc_log(CHANC_LOG_ERROR, "conn %llu: event %s failed: %s", (unsigned long long)c->id,
                  type->action, chanc_strerror(rc));
}

int chanc_conn_pass_event(chanc_conn_t *c, const chanc_message_type_t *as) {
    chanc__event_delivery_t *ev = c ? c->app->event : NULL;
    if (!ev || ev->conn != c || !as || !as->action || strcmp(as->action, ev->type->action) != 0)
        return CHANC_EINVAL;
    bool declared = false;
    for (const chanc_message_type_t *const *o = c->consumer->outgoing; o && *o && !declared; o++)
        declared = *o == as;
    if (!declared)
        return CHANC_EINVAL;
    if (c->closing)
        return CHANC_ECLOSED;
    if (ev->bad == as)
        return CHANC_EVALIDATION;
    if (ev->ok != as) {
        const chanc_message_type_t *one[2] = {as, NULL}, *matched = NULL;
        json_t *errors = NULL;
        if (chanc_message_validate(one, ev->frame, &matched, &errors) < 0) {
            const char *why = json_string_value(json_object_get(json_array_get(errors, 0), "msg"));
            chanc_log(CHANC_LOG_ERROR, "event %s not passed on as %s: %s", as->action,
                      as->name ? as->name : as->action, why ? why : "does not match");
            json_decref(errors);
            ev->bad = as;
            return CHANC_EVALIDATION;
        }
        ev->ok = as;
    }
    c->app->stats.group_deliveries++;
    return chanc__conn_write(c, ev->buf);
}

/* The event's frame, parsed once for all its recipients; false (logged)
 * when it is not JSON. */
static bool event_open(chanc__event_delivery_t *ev, const chanc_envelope_t *env,
                       const char *where) {
    json_t *frame = json_loadb((const char *)env->frame->data, env->frame->len, 0, NULL);
    *ev = (chanc__event_delivery_t){.buf = env->frame, .frame = frame};
    if (!frame)
        chanc_log(CHANC_LOG_ERROR, "%s: an event could not be delivered (not JSON)", where);
    return frame != NULL;
}

static void deliver_channel_event(chanc_app_t *app, const char *channel,
                                  const chanc_envelope_t *env) {
    chanc_conn_t *c = chanc__map_get(&app->channels, channel);
    chanc__event_delivery_t ev;
    if (!c || !event_open(&ev, env, channel))
        return;
    conn_event(c, &ev);
    json_decref((json_t *)ev.frame);
}

static void deliver_event(chanc_app_t *app, const char *group, const chanc_envelope_t *env) {
    chanc__group_t *g = chanc__map_get(&app->groups, group);
    chanc__event_delivery_t ev;
    if (!g || !g->n || !event_open(&ev, env, group))
        return;
    /* A hook may close, join or leave (the group may go), even end another
     * member's deferred work: walk a copy of the members' channel names
     * and find each again (a connection that is gone is not found). */
    size_t n = g->n;
    char (*names)[sizeof g->members[0]->channel] = chanc__malloc(n * sizeof *names);
    if (!names) {
        chanc_log(CHANC_LOG_ERROR, "group %s: an event could not be delivered (out of memory)",
                  group);
        json_decref((json_t *)ev.frame);
        return;
    }
    for (size_t i = 0; i < n; i++)
        memcpy(names[i], g->members[i]->channel, sizeof names[i]);
    for (size_t i = 0; i < n; i++) {
        chanc_conn_t *c = chanc__map_get(&app->channels, names[i]);
        if (c)
            conn_event(c, &ev);
    }
    free(names);
    json_decref((json_t *)ev.frame);
}
