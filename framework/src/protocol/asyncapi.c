/* The AsyncAPI 3.0.0 document of an app's routes (chanc/asyncapi.h). Reads
 * the router's routes (app_internal.h); its HTML page: asyncapi_html.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/app_internal.h"
#include "chanc/asyncapi.h"

/* ---- the framework's own frames ------------------------------------------------ */

const chanc_message_type_t chanc_msg_authentication = {
    .action = "authentication",
    .payload = CHANC_OBJECT(
        CHANC_FIELD("status_code", CHANC_INTEGER(.has_minimum = true, .minimum = 100,
                                                 .has_maximum = true, .maximum = 599)),
        CHANC_FIELD("status_text", CHANC_STRING()),
        CHANC_FIELD("data", CHANC_OBJECT(CHANC_FIELD("detail", CHANC_STRING())))),
    .description = "The outcome of the handshake's authentication, first frame of every "
                   "connection: 200 (then the consumer's frames), else 401, 403, 404 or 500 "
                   "and the connection closes with 4000 + status_code. Also 401 when a "
                   "consumer ends an authenticated connection (a session that ended).",
};

/* Any object: a rate_limited error's ctx. */
static const chanc_schema_t any_object = {.kind = CHANC_SCHEMA_OBJECT, .extra = CHANC_EXTRA_IGNORE};

const chanc_message_type_t chanc_msg_validation_error = {
    .action = "error",
    .payload = CHANC_ARRAY(CHANC_OBJECT(CHANC_FIELD("type", CHANC_STRING()),
                                        CHANC_FIELD("loc", CHANC_ARRAY(NULL)),
                                        CHANC_FIELD("msg", CHANC_STRING()),
                                        CHANC_OPTIONAL("ctx", &any_object)),
                           .min_length = 1, .max_length = CHANC_MAX_VALIDATION_ERRORS),
    .description = "A received frame failed validation (or was refused: frame_type, "
                   "rate_limited): one item per problem, pydantic's types and wording; loc "
                   "is the path in the frame (strings and array indexes). The connection "
                   "stays open.",
};

const chanc_message_type_t chanc_msg_handler_error = {
    .action = "error",
    .name = "handler_error",
    .payload = CHANC_OBJECT(CHANC_FIELD("detail", CHANC_STRING())),
    .description = "The consumer failed to process a valid frame (detail: \"Failed to process "
                   "message\"). The connection stays open.",
};

const chanc_message_type_t chanc_msg_complete = {
    .action = "complete",
    .description = "Sent after every received frame, answered or refused (send_completion).",
};

const chanc_message_type_t chanc_msg_group_complete = {
    .action = "group_complete",
    .description = "Sent after every relayed group message (send_completion).",
};

/* CHANC_CLOSE_* (chanc/consumer.h) and the codes the transports use. */
static const struct {
    int code;
    const char *meaning;
} close_codes[] = {
    {CHANC_CLOSE_NORMAL, "normal close"},
    {CHANC_CLOSE_GOING_AWAY, "server shutting down"},
    {1002, "protocol error: a frame that breaks RFC 6455"},
    {CHANC_CLOSE_INVALID_UTF8, "text frame (or close reason) not valid UTF-8"},
    {1008, "slow client: its outgoing queue is full"},
    {CHANC_CLOSE_TOO_BIG, "frame larger than the server's limit"},
    {CHANC_CLOSE_INTERNAL, "the server could not go on (a hook or a write failed)"},
    {CHANC_CLOSE_UNAUTHORIZED, "authentication frame 401 (also: the session ended while connected)"},
    {CHANC_CLOSE_FORBIDDEN, "authentication frame 403 (not authenticated, or permission denied)"},
    {CHANC_CLOSE_NOT_FOUND, "authentication frame 404 (object not found); on a handshake: no route"},
    {CHANC_CLOSE_KEEPALIVE, "no answer to the server's keepalive ping"},
    {4500, "authentication frame 500: a lookup before authentication failed"},
};

/* ---- building ------------------------------------------------------------------------ */

typedef struct gen {
    json_t *doc, *messages, *schemas;
    /* message type → its key in components/messages */
    struct seen {
        const chanc_message_type_t *type;
        char *key;
    } *seen;
    size_t nseen, capseen;
    bool oom;
} gen_t;

/* A JSON number for a bound: an integer when it is one. */
static json_t *number(double v) {
    if (v > -9007199254740992.0 && v < 9007199254740992.0 && (double)(json_int_t)v == v)
        return json_integer((json_int_t)v);
    return json_real(v);
}

static json_t *type_name(chanc_schema_kind_t kind) {
    switch (kind) {
    case CHANC_SCHEMA_NULL: return json_string("null");
    case CHANC_SCHEMA_STRING: return json_string("string");
    case CHANC_SCHEMA_INTEGER: return json_string("integer");
    case CHANC_SCHEMA_NUMBER: return json_string("number");
    case CHANC_SCHEMA_BOOLEAN: return json_string("boolean");
    case CHANC_SCHEMA_OBJECT: return json_string("object");
    case CHANC_SCHEMA_ARRAY: return json_string("array");
    case CHANC_SCHEMA_ANY: break;
    }
    return NULL;
}

#define MAX_DEPTH 64 /* a schema that refers to itself ends as {} */

static json_t *schema_json(const chanc_schema_t *s, int depth) {
    json_t *o = json_object();
    if (!o || !s || depth > MAX_DEPTH)
        return o;
    json_t *type = type_name(s->kind);
    if (type && s->nullable && s->kind != CHANC_SCHEMA_NULL)
        type = json_pack("[o,s]", type, "null");
    if (type)
        json_object_set_new(o, "type", type);
    switch (s->kind) {
    case CHANC_SCHEMA_STRING:
        if (s->min_length)
            json_object_set_new(o, "minLength", json_integer((json_int_t)s->min_length));
        if (s->max_length)
            json_object_set_new(o, "maxLength", json_integer((json_int_t)s->max_length));
        if (s->min_length || s->max_length)
            json_object_set_new(o, "description",
                                json_string("Length in characters (Unicode code points), "
                                            "not bytes."));
        break;
    case CHANC_SCHEMA_INTEGER:
    case CHANC_SCHEMA_NUMBER:
        if (s->has_minimum)
            json_object_set_new(o, "minimum", number(s->minimum));
        if (s->has_maximum)
            json_object_set_new(o, "maximum", number(s->maximum));
        break;
    case CHANC_SCHEMA_ARRAY:
        if (s->items)
            json_object_set_new(o, "items", schema_json(s->items, depth + 1));
        if (s->min_length)
            json_object_set_new(o, "minItems", json_integer((json_int_t)s->min_length));
        if (s->max_length)
            json_object_set_new(o, "maxItems", json_integer((json_int_t)s->max_length));
        break;
    case CHANC_SCHEMA_OBJECT: {
        json_t *props = json_object(), *req = json_array();
        for (const chanc_field_t *f = s->fields; f && f->name; f++) {
            json_object_set_new(props, f->name, schema_json(f->schema, depth + 1));
            if (!f->optional)
                json_array_append_new(req, json_string(f->name));
        }
        json_object_set_new(o, "properties", props);
        if (json_array_size(req))
            json_object_set_new(o, "required", req);
        else
            json_decref(req);
        if (s->extra == CHANC_EXTRA_FORBID)
            json_object_set_new(o, "additionalProperties", json_false());
        break;
    }
    default:
        break;
    }
    return o;
}

static bool null_payload(const chanc_message_type_t *t) {
    return !t->payload || t->payload->kind == CHANC_SCHEMA_NULL;
}

/* The whole frame: {"action": const, "payload": schema, ...frame_fields}. */
static json_t *frame_schema(const chanc_message_type_t *t) {
    json_t *props = json_object(), *req = json_array();
    json_object_set_new(props, "action", json_pack("{s:s,s:s}", "type", "string", "const", t->action));
    json_array_append_new(req, json_string("action"));
    if (null_payload(t)) {
        json_object_set_new(props, "payload", json_pack("{s:s}", "type", "null"));
    } else {
        json_object_set_new(props, "payload", schema_json(t->payload, 1));
        json_array_append_new(req, json_string("payload"));
    }
    for (const chanc_field_t *f = t->frame_fields; f && f->name; f++) {
        json_object_set_new(props, f->name, schema_json(f->schema, 1));
        if (!f->optional)
            json_array_append_new(req, json_string(f->name));
    }
    return json_pack("{s:s,s:o,s:o,s:b}", "type", "object", "properties", props, "required", req,
                     "additionalProperties", 0);
}

/* Keys in components: [A-Za-z0-9._-]. */
static char *sanitize(const char *s) {
    char *k = strdup(s && *s ? s : "message");
    for (char *p = k; p && *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            *p = '_';
    return k;
}

static bool key_used(const gen_t *g, const char *key) {
    for (size_t i = 0; i < g->nseen; i++)
        if (strcmp(g->seen[i].key, key) == 0)
            return true;
    return false;
}

/* The message's key in components/messages, adding it there (and its
 * frame schema in components/schemas) the first time. NULL on OOM. */
static const char *message_key(gen_t *g, const chanc_message_type_t *t) {
    for (size_t i = 0; i < g->nseen; i++)
        if (g->seen[i].type == t)
            return g->seen[i].key;
    if (g->nseen == g->capseen) {
        size_t cap = g->capseen ? 2 * g->capseen : 16;
        struct seen *s = realloc(g->seen, cap * sizeof *s);
        if (!s)
            return NULL;
        g->seen = s;
        g->capseen = cap;
    }
    char *key = sanitize(t->name ? t->name : t->action);
    for (int n = 2; key && key_used(g, key); n++) {
        char *k2 = chanc_strdupf("%s_%d", key, n);
        if (k2 && !key_used(g, k2)) {
            free(key);
            key = k2;
            break;
        }
        free(k2);
        if (!k2) {
            free(key);
            key = NULL;
        }
    }
    if (!key)
        return NULL;
    g->seen[g->nseen].type = t;
    g->seen[g->nseen].key = key;
    g->nseen++;

    json_object_set_new(g->schemas, key, frame_schema(t));
    json_t *m = json_pack("{s:s,s:s,s:{s:s+}}", "name", t->action, "contentType",
                          "application/json", "payload", "$ref", "#/components/schemas/", key);
    if (m && t->description)
        json_object_set_new(m, "description", json_string(t->description));
    if (!m || json_object_set_new(g->messages, key, m) < 0)
        g->oom = true;
    return key;
}

static const char *param_kind(chanc__seg_kind_t kind) {
    switch (kind) {
    case SEG_INT: return "int: digits ([0-9]+)";
    case SEG_SLUG: return "slug: [-a-zA-Z0-9_]+";
    case SEG_PATH: return "path: any text, '/' included";
    default: return "str: any text without '/'";
    }
}

/* Channel key from the consumer's name, unique in the document. */
static char *channel_key(const json_t *channels, const chanc__route_t *r, size_t index) {
    char *base = r->consumer && r->consumer->name ? sanitize(r->consumer->name)
                                                  : chanc_strdupf("route%zu", index + 1);
    if (!base || !json_object_get(channels, base))
        return base;
    for (int n = 2;; n++) {
        char *k = chanc_strdupf("%s_%d", base, n);
        if (!k || !json_object_get(channels, k)) {
            free(base);
            return k;
        }
        free(k);
    }
}

/* A reference to type in the channel's messages, adding it there the
 * first time (*added). NULL on OOM. */
static json_t *message_ref(gen_t *g, json_t *ch_messages, const char *chkey,
                           const chanc_message_type_t *t, bool *added) {
    const char *key = message_key(g, t);
    if (!key) {
        g->oom = true;
        return NULL;
    }
    *added = !json_object_get(ch_messages, key);
    if (*added)
        json_object_set_new(ch_messages, key,
                            json_pack("{s:s+}", "$ref", "#/components/messages/", key));
    return json_pack("{s:s+++}", "$ref", "#/channels/", chkey, "/messages/", key);
}

/* Add each type of list (NULL-terminated; may be NULL) to the channel's
 * messages and to refs (an operation's list), once. */
static void add_messages(gen_t *g, json_t *ch_messages, json_t *refs, const char *chkey,
                         const chanc_message_type_t *const *list) {
    for (size_t i = 0; list && list[i]; i++) {
        bool added;
        json_t *ref = message_ref(g, ch_messages, chkey, list[i], &added);
        if (!ref)
            return;
        if (added)
            json_array_append_new(refs, ref);
        else
            json_decref(ref);
    }
}

/* The action handler of type that declares replies (NULL: none). */
static const chanc_action_t *replying_action(const chanc_consumer_t *k,
                                             const chanc_message_type_t *t) {
    for (const chanc_action_t *a = k->actions; a && a->type; a++)
        if (a->type == t)
            return a->handle && a->replies && a->replies[0] ? a : NULL;
    return NULL;
}

/* An operation key "<channel>_<suffix>" not taken yet; an action's
 * (action) may not take the channel's send operation's either. NULL on
 * OOM. */
static char *operation_key(const json_t *ops, const char *chkey, const char *suffix,
                           bool action) {
    char *k = chanc_strdupf("%s_%s", chkey, suffix);
    bool taken = action && strcmp(suffix, "send") == 0;
    for (int n = 2; k && (taken || json_object_get(ops, k)); n++) {
        free(k);
        k = chanc_strdupf("%s_%s_%d", chkey, suffix, n);
        taken = false;
    }
    return k;
}

static void add_operation(gen_t *g, const char *chkey, const char *suffix, bool action,
                          json_t *op, const char *security_ref) {
    json_t *ops = json_object_get(g->doc, "operations");
    if (op && security_ref)
        json_object_set_new(op, "security", json_pack("[{s:s}]", "$ref", security_ref));
    char *opkey = operation_key(ops, chkey, suffix, action);
    if (!op || !opkey || json_object_set_new(ops, opkey, op) < 0)
        g->oom = true;
    free(opkey);
}

/* One receive operation per action handler that declares replies: its
 * message, and the replies as the operation's `reply`. */
static void add_action_operations(gen_t *g, const chanc__route_t *r, json_t *ch_messages,
                                  const char *chkey, const char *security_ref) {
    for (size_t i = 0; r->incoming && r->incoming[i]; i++) {
        const chanc_action_t *a = replying_action(r->consumer, r->incoming[i]);
        if (!a)
            continue;
        bool added;
        json_t *msg = message_ref(g, ch_messages, chkey, a->type, &added);
        json_t *replies = json_array();
        for (size_t j = 0; a->replies[j]; j++)
            json_array_append_new(replies,
                                  message_ref(g, ch_messages, chkey, a->replies[j], &added));
        char *summary = chanc_strdupf("`%s`: its action handler answers with one of the reply "
                                      "messages (or the handler error frame), then `complete` "
                                      "when send_completion is on.",
                                      a->type->action);
        json_t *op = json_pack("{s:s,s:{s:s+},s:s?,s:[o?],s:{s:{s:s+},s:o}}", "action", "receive",
                               "channel", "$ref", "#/channels/", chkey, "summary", summary,
                               "messages", msg, "reply", "channel", "$ref", "#/channels/", chkey,
                               "messages", replies);
        free(summary);
        add_operation(g, chkey, message_key(g, a->type), true, op, security_ref);
    }
}

static json_t *events_json(const chanc_message_type_t *const *events) {
    json_t *a = json_array();
    for (size_t i = 0; events && events[i]; i++) {
        const chanc_message_type_t *e = events[i];
        json_t *o = json_pack("{s:s,s:o}", "name", e->action, "payload",
                              null_payload(e) ? json_pack("{s:s}", "type", "null")
                                              : schema_json(e->payload, 0));
        if (o && e->description)
            json_object_set_new(o, "description", json_string(e->description));
        json_array_append_new(a, o);
    }
    return a;
}

static void add_route(gen_t *g, const chanc__route_t *r, size_t index, const char *security_ref) {
    const chanc_consumer_t *cons = r->consumer;
    json_t *channels = json_object_get(g->doc, "channels");
    char *chkey = channel_key(channels, r, index);
    if (!chkey) {
        g->oom = true;
        return;
    }
    /* The address: the pattern with {name:kind} → {name}. */
    json_t *params = json_object();
    size_t cap = strlen(r->pattern) + 2;
    char *addr = malloc(cap), *p = addr;
    if (addr) {
        *p++ = '/';
        for (size_t i = 0; i < r->nsegs; i++) {
            const chanc__seg_t *s = &r->segs[i];
            if (s->kind == SEG_LITERAL) {
                p += sprintf(p, "%s", s->text);
            } else {
                p += sprintf(p, "{%s}", s->text);
                json_object_set_new(params, s->text,
                                    json_pack("{s:s}", "description", param_kind(s->kind)));
            }
        }
        *p = '\0';
    }
    char *desc = chanc_strdupf(
        "Route `%s`, consumer `%s`.%s", r->pattern, cons->name ? cons->name : "?",
        cons->outgoing ? ""
                       : " Its outgoing messages are not declared: besides the framework's "
                         "frames listed here, it may send others.");
    json_t *ch_messages = json_object();
    json_t *in_refs = json_array(), *out_refs = json_array();
    /* receive: the union, less the types whose handler declares replies
     * (each has its own operation, with its `reply`) */
    for (size_t i = 0; r->incoming && r->incoming[i]; i++) {
        bool added;
        json_t *ref = message_ref(g, ch_messages, chkey, r->incoming[i], &added);
        if (added && !replying_action(cons, r->incoming[i]))
            json_array_append_new(in_refs, ref);
        else
            json_decref(ref);
    }
    /* send: the framework's frames, `outgoing` and the action handlers'
     * replies (chanc_consumer_declared: the list the test fixture
     * checks every frame against) */
    const chanc_message_type_t *out[256];
    chanc_consumer_declared(cons, CHANC_DECLARED_OUTGOING, out, sizeof out / sizeof *out);
    add_messages(g, ch_messages, out_refs, chkey, out);

    json_t *ch = json_pack("{s:s?,s:s?,s:o}", "address", addr, "description", desc, "messages",
                           ch_messages);
    if (ch && json_object_size(params))
        json_object_set(ch, "parameters", params);
    if (ch && cons->events && cons->events[0])
        json_object_set_new(ch, "x-chanc-events", events_json(cons->events));
    json_decref(params);
    free(addr);
    free(desc);
    if (!ch || json_object_set_new(channels, chkey, ch) < 0) {
        g->oom = true;
        json_decref(in_refs);
        json_decref(out_refs);
        free(chkey);
        return;
    }
    bool secured = security_ref && cons->authenticators && cons->authenticators[0];
    const char *sec = secured ? security_ref : NULL;
    if (json_array_size(in_refs))
        add_operation(g, chkey, "receive", false,
                      json_pack("{s:s,s:{s:s+},s:s,s:o}", "action", "receive", "channel", "$ref",
                                "#/channels/", chkey, "summary",
                                "Frames the client sends (the consumer's incoming union); each "
                                "is answered, then followed by `complete` when send_completion "
                                "is on.",
                                "messages", in_refs),
                      sec);
    else
        json_decref(in_refs);
    add_action_operations(g, r, ch_messages, chkey, sec);
    if (json_array_size(out_refs))
        add_operation(g, chkey, "send", false,
                      json_pack("{s:s,s:{s:s+},s:s,s:o}", "action", "send", "channel", "$ref",
                                "#/channels/", chkey, "summary",
                                "Frames the server sends to the client.", "messages", out_refs),
                      sec);
    else
        json_decref(out_refs);
    free(chkey);
}

json_t *chanc_asyncapi_document(const chanc_app_t *app, const chanc_asyncapi_info_t *info,
                                chanc_error_t *err) {
    if (!app || !info || !info->title || !info->version) {
        chanc_error_set(err, CHANC_EINVAL, "chanc_asyncapi_document: needs an app, a title and "
                                           "a version");
        return NULL;
    }
    gen_t g = {0};
    g.doc = json_pack("{s:s,s:{s:s,s:s},s:s,s:{},s:{},s:{s:{},s:{}}}", "asyncapi", "3.0.0",
                      "info", "title", info->title, "version", info->version,
                      "defaultContentType", "application/json", "channels", "operations",
                      "components", "messages", "schemas");
    if (!g.doc)
        goto oom;
    json_t *jinfo = json_object_get(g.doc, "info");
    if (info->description)
        json_object_set_new(jinfo, "description", json_string(info->description));
    json_t *codes = json_array();
    for (size_t i = 0; i < sizeof close_codes / sizeof *close_codes; i++)
        json_array_append_new(codes, json_pack("{s:i,s:s}", "code", close_codes[i].code,
                                               "meaning", close_codes[i].meaning));
    json_object_set_new(jinfo, "x-chanc-close-codes", codes);
    json_t *components = json_object_get(g.doc, "components");
    g.messages = json_object_get(components, "messages");
    g.schemas = json_object_get(components, "schemas");

    if (info->host) {
        json_t *server = json_pack("{s:s,s:s}", "host", info->host, "protocol",
                                   info->protocol ? info->protocol : "ws");
        if (server && info->pathname)
            json_object_set_new(server, "pathname", json_string(info->pathname));
        if (server && info->server_description)
            json_object_set_new(server, "description", json_string(info->server_description));
        json_object_set_new(g.doc, "servers", json_pack("{s:o}", "default", server));
    }
    char *security_ref = NULL;
    if (info->security) {
        const chanc_asyncapi_security_t *sec = info->security;
        const char *id = sec->id ? sec->id : "apiKey";
        json_t *scheme = json_pack("{s:s,s:s,s:s,s:s?}", "type", "httpApiKey", "name",
                                   sec->name ? sec->name : "", "in", sec->in ? sec->in : "cookie",
                                   "description", sec->description);
        json_object_set_new(components, "securitySchemes", json_pack("{s:o}", id, scheme));
        security_ref = chanc_strdupf("#/components/securitySchemes/%s", id);
        if (!security_ref)
            goto oom;
    }
    size_t index = 0;
    for (const chanc__route_t *r = app->routes; r; r = r->next, index++)
        add_route(&g, r, index, security_ref);
    free(security_ref);
    for (size_t i = 0; i < g.nseen; i++)
        free(g.seen[i].key);
    free(g.seen);
    if (g.oom)
        goto oom;
    return g.doc;
oom:
    if (g.seen) {
        for (size_t i = 0; i < g.nseen; i++)
            free(g.seen[i].key);
        free(g.seen);
    }
    json_decref(g.doc);
    chanc_error_set(err, CHANC_ENOMEM, "out of memory");
    return NULL;
}
