/* One connection's lifecycle: routing, the authentication pipeline, frame
 * checks → validation → an action handler (its reply) or receive_message →
 * complete, sends, groups, close. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "app_internal.h"
#include "chanc/json.h"
#include "chanc/log.h"
#include "chanc/utf8.h"
#include "ledger_internal.h"

/* --- open ---------------------------------------------------------------- */

/* The request's path, query and headers and the route's parameters, kept
 * for the connection's life, in one allocation (the header and parameter
 * tables first, then the strings; the parameters' names are the route's):
 * a connection is held for hours, and a dozen small mallocs cost their
 * overhead each. */
static int copy_request(chanc_conn_t *c, const chanc_request_t *req,
                        const chanc__params_t *params) {
    const char *q = strchr(req->path, '?');
    size_t plen = q ? (size_t)(q - req->path) : strlen(req->path);
    size_t qlen = q ? strlen(q + 1) + 1 : 0;
    size_t size = (req->nheaders + params->n) * sizeof *c->headers + plen + 1 + qlen;
    for (size_t i = 0; i < req->nheaders; i++)
        size += strlen(req->headers[i].name) + strlen(req->headers[i].value) + 2;
    for (size_t i = 0; i < params->n; i++)
        size += strlen(params->values[i]) + 1;
    char *block = chanc__malloc(size);
    if (!block)
        return CHANC_ENOMEM;
    c->headers = (chanc_header_t *)(void *)block;
    c->params = c->headers + req->nheaders;
    char *p = block + (req->nheaders + params->n) * sizeof *c->headers;
    c->path = p;
    memcpy(p, req->path, plen);
    p[plen] = '\0';
    p += plen + 1;
    if (q) {
        c->query = p;
        memcpy(p, q + 1, qlen);
        p += qlen;
    }
    for (size_t i = 0; i < req->nheaders; i++) {
        size_t n = strlen(req->headers[i].name) + 1, v = strlen(req->headers[i].value) + 1;
        c->headers[i].name = memcpy(p, req->headers[i].name, n);
        c->headers[i].value = memcpy(p + n, req->headers[i].value, v);
        p += n + v;
    }
    c->nheaders = req->nheaders;
    for (size_t i = 0; i < params->n; i++) {
        size_t v = strlen(params->values[i]) + 1;
        c->params[i].name = params->names[i];
        c->params[i].value = memcpy(p, params->values[i], v);
        p += v;
    }
    c->nparams = params->n;
    return 0;
}

struct chanc__rx {
    struct chanc__rx *next;
    size_t len;
    uint8_t kind; /* RX_TEXT, RX_BINARY, RX_REFUSED */
    char data[];
};
enum { RX_TEXT, RX_BINARY, RX_REFUSED };

static void rxq_clear(chanc_conn_t *c) {
    while (c->rxq) {
        struct chanc__rx *r = c->rxq;
        c->rxq = r->next;
        free(r);
    }
    c->rxq_tail = &c->rxq;
    c->rxq_len = 0;
}

static void conn_free(chanc_conn_t *c) {
    rxq_clear(c);
    if (c->consumer && c->consumer->dispose_state && c->state)
        c->consumer->dispose_state(c, c->state);
    free(c->state);
    if (c->object && c->consumer && c->consumer->free_object)
        c->consumer->free_object(c->object);
    if (c->free_user_data && c->user_data)
        c->free_user_data(c->user_data);
    free(c->user_id);
    free(c->username);
    free(c->headers); /* path, query, the parameters and the strings with it */
    free(c->groups);
    free(c);
    CHANC__COUNT(conns_freed);
}

int chanc_conn_open(chanc_app_t *app, const chanc_request_t *req,
                    const chanc_transport_ops_t *ops, void *tctx, chanc_conn_t **out) {
    *out = NULL;
    chanc__params_t params;
    const chanc__route_t *r = app->routes;
    for (; r; r = r->next)
        if (chanc__route_match(r, req->path, &params))
            break;
    if (!r) {
        chanc_log(CHANC_LOG_INFO, "no route for %.200s", req->path);
        return CHANC_ENOROUTE;
    }
    chanc_conn_t *c = chanc__calloc(1, sizeof *c);
    if (!c) {
        chanc__params_dispose(&params);
        return CHANC_ENOMEM;
    }
    CHANC__COUNT(conns_opened);
    c->app = app;
    c->route = r;
    c->consumer = r->consumer;
    c->ops = ops;
    c->tctx = tctx;
    c->id = ++app->next_conn_id;
    c->rxq_tail = &c->rxq;
    app->stats.connections++;
    c->rate_tokens = (uint64_t)app->rate_burst * 1000u;
    c->rate_last_ms = chanc_app_mono_ms(app);
    snprintf(c->channel, sizeof c->channel, "%016llx!%llu", (unsigned long long)app->node_id,
             (unsigned long long)c->id);
    int crc = copy_request(c, req, &params);
    chanc__params_dispose(&params);
    if (crc < 0 ||
        (c->consumer->state_size && !(c->state = chanc__calloc(1, c->consumer->state_size))) ||
        chanc__map_set(&app->channels, c->channel, c) < 0) {
        conn_free(c);
        return CHANC_ENOMEM;
    }
    c->next = app->conns;
    if (app->conns)
        app->conns->prev = c;
    app->conns = c;
    app->nconns++;
    *out = c;
    return 0;
}

/* --- writing ---------------------------------------------------------------- */

/* What a write's result means for the connection. */
static int wrote(chanc_conn_t *c, int rc, size_t frames, size_t bytes) {
    if (rc == 0) {
        c->app->stats.frames_out += frames;
        c->app->stats.bytes_out += bytes;
    } else if (rc == CHANC_EBUSY) {
        c->app->stats.slow_clients++;
        chanc_log(CHANC_LOG_WARN, "conn %llu: outgoing queue full, closing slow client",
                  (unsigned long long)c->id);
        chanc_conn_close(c, 1008, "slow client: outgoing queue full");
    } else if (rc < 0 && rc != CHANC_ECLOSED) {
        /* The transport could not take the frame (a broken socket): the
         * client would silently miss it, so it goes; others carry on.
         * (CHANC_ECLOSED: the transport is closing it already.) */
        chanc_log(CHANC_LOG_WARN, "conn %llu: delivery failed (%s), closing",
                  (unsigned long long)c->id, chanc_strerror(rc));
        chanc_conn_close(c, CHANC_CLOSE_INTERNAL, "delivery failed");
    }
    return rc;
}

int chanc__conn_write(chanc_conn_t *c, chanc_buf_t *buf) {
    if (c->closing)
        return CHANC_ECLOSED;
    return wrote(c, c->ops->write(c->tctx, buf), 1, buf->len);
}

int chanc__conn_write_pair(chanc_conn_t *c, chanc_buf_t *buf, chanc_buf_t *then) {
    if (!c->ops->write_pair) {
        int rc = chanc__conn_write(c, buf);
        return rc < 0 ? rc : chanc__conn_write(c, then);
    }
    if (c->closing)
        return CHANC_ECLOSED;
    return wrote(c, c->ops->write_pair(c->tctx, buf, then), 2, buf->len + then->len);
}

/* A frame for c could not be made (out of memory): c would silently miss
 * it, so it goes, as when the transport cannot take one. */
static int lost_frame(chanc_conn_t *c) {
    chanc_log(CHANC_LOG_ERROR, "conn %llu: out of memory for a frame, closing",
              (unsigned long long)c->id);
    chanc_conn_close(c, CHANC_CLOSE_INTERNAL, "delivery failed");
    return CHANC_ENOMEM;
}

int chanc_conn_send_json(chanc_conn_t *c, json_t *frame) {
    if (c->closing) {
        json_decref(frame);
        return CHANC_ECLOSED;
    }
    if (!frame) /* a json_pack/json_object that ran out of memory */
        return lost_frame(c);
    chanc_buf_t *buf = chanc__encode(frame);
    json_decref(frame);
    c->app->stats.encodes++;
    if (!buf)
        return lost_frame(c);
    int rc = chanc__conn_write(c, buf);
    chanc_buf_unref(buf);
    return rc;
}

int chanc_conn_send(chanc_conn_t *c, const chanc_message_type_t *type, json_t *payload) {
    chanc_error_t err;
    json_t *frame = chanc_message_build(type, payload, &err);
    if (!frame) {
        if (err.code == CHANC_ENOMEM && !c->closing)
            return lost_frame(c);
        chanc_log(CHANC_LOG_ERROR, "conn %llu: not sent: %s", (unsigned long long)c->id, err.text);
        return err.code;
    }
    return chanc_conn_send_json(c, frame);
}

static void send_error_payload(chanc_conn_t *c, json_t *payload) {
    /* Out of memory anywhere: frame NULL (the client is closed, 1011), the
     * payload freed (json_object_set_new frees it when it fails). */
    json_t *frame = payload ? json_object() : NULL;
    if (!frame || json_object_set_new(frame, "action", json_string("error"))) {
        json_decref(payload);
        json_decref(frame);
        frame = NULL;
    } else if (json_object_set_new(frame, "payload", payload)) {
        json_decref(frame);
        frame = NULL;
    }
    chanc_conn_send_json(c, frame);
}

static void send_one_error(chanc_conn_t *c, const char *type, const char *msg) {
    json_t *errors = json_array();
    chanc_errors_append(errors, type, NULL, "%s", msg);
    send_error_payload(c, errors);
}

void chanc_conn_close(chanc_conn_t *c, int code, const char *reason) {
    if (c->closing)
        return;
    c->closing = true;
    c->ops->close(c->tctx, code, reason ? reason : "");
}

/* --- authentication pipeline -------------------------------------------------- */

static void send_auth_status(chanc_conn_t *c, const chanc_status_t *st) {
    json_t *frame = json_pack("{s:s,s:{s:i,s:s,s:{s:s}}}", "action", "authentication",
                              "payload", "status_code", st->code, "status_text",
                              chanc_status_text(st->code), "data", "detail", st->detail);
    chanc_conn_send_json(c, frame);
}

/* A permission said no (rc != 0): its status, or one made up when it did
 * not call chanc_deny — never a pass (fail closed). */
static int refused(chanc_conn_t *c, const char *name, int rc, chanc_status_t *st) {
    if (st->code)
        return st->code;
    if (rc >= 400 && rc <= 599)
        return chanc_deny(st, rc, rc == 403 ? "You do not have permission to perform this action."
                                            : chanc_status_text(rc));
    chanc_log(CHANC_LOG_ERROR, "conn %llu: permission %s failed: %s", (unsigned long long)c->id,
              name ? name : "?", rc < 0 ? chanc_strerror(rc) : "an unknown result");
    return chanc_deny(st, 500, "Internal server error.");
}

static int authenticate(chanc_conn_t *c, chanc_status_t *st) {
    const chanc_consumer_t *k = c->consumer;
    for (const chanc_authenticator_t *const *a = k->authenticators; a && *a; a++) {
        int r = (*a)->authenticate(c, (*a)->ud, st);
        if (r == CHANC_AUTH_OK)
            break;
        if (r == CHANC_AUTH_FAILED)
            return st->code ? st->code : chanc_deny(st, 401, "Invalid credentials.");
        if (r != CHANC_AUTH_SKIP) {
            chanc_log(CHANC_LOG_ERROR, "conn %llu: authenticator error in %s: %s",
                      (unsigned long long)c->id, (*a)->name ? (*a)->name : "?",
                      r < 0 ? chanc_strerror(r) : "an unknown result");
            return chanc_deny(st, 500, "Internal server error.");
        }
    }
    int rc;
    for (const chanc_permission_t *const *p = k->permissions; p && *p; p++)
        if ((*p)->has_permission && (rc = (*p)->has_permission(c, st)) != 0)
            return refused(c, (*p)->name, rc, st);
    if (k->get_object) {
        rc = k->get_object(c, &c->object);
        if (rc == CHANC_ENOTFOUND)
            return chanc_deny(st, 404, CHANC_DETAIL_NOT_FOUND);
        if (rc < 0) {
            chanc_log(CHANC_LOG_ERROR, "conn %llu: object lookup failed: %s",
                      (unsigned long long)c->id, chanc_strerror(rc));
            return chanc_deny(st, 500, "Internal server error.");
        }
    }
    for (const chanc_permission_t *const *p = k->permissions; p && *p; p++)
        if ((*p)->has_object_permission &&
            (rc = (*p)->has_object_permission(c, c->object, st)) != 0)
            return refused(c, (*p)->name, rc, st);
    return 0;
}

/* --- keepalive ------------------------------------------------------------------ */

static void keepalive_check(void *arg);

static void keepalive_schedule(chanc_conn_t *c, uint64_t delay_ms) {
    c->keepalive = chanc_app_timer_start(c->app, delay_ms, keepalive_check, c);
}

/* One timer per connection, re-armed only when it fires: activity just
 * moves last_rx, so a busy connection costs nothing per frame. */
static void keepalive_check(void *arg) {
    chanc_conn_t *c = arg;
    chanc_app_t *app = c->app;
    c->keepalive = NULL;
    if (c->closing)
        return;
    uint64_t idle = chanc_app_mono_ms(app) - c->last_rx;
    if (c->ping_out) {
        chanc_log(CHANC_LOG_INFO, "conn %llu: no answer to the keepalive ping in %llu ms, closing",
                  (unsigned long long)c->id, (unsigned long long)app->keepalive_timeout_ms);
        chanc_conn_close(c, CHANC_CLOSE_KEEPALIVE, "keepalive timeout");
        return;
    }
    if (idle < app->keepalive_ms) {
        keepalive_schedule(c, app->keepalive_ms - idle);
        return;
    }
    c->ping_out = true;
    c->ops->ping(c->tctx);
    keepalive_schedule(c, app->keepalive_timeout_ms);
}

static void keepalive_alive(chanc_conn_t *c) {
    c->last_rx = chanc_app_mono_ms(c->app);
    if (c->ping_out && c->keepalive) {
        /* Answered: back to the idle check. */
        c->ping_out = false;
        chanc_timer_cancel(c->keepalive);
        keepalive_schedule(c, c->app->keepalive_ms);
    }
}

void chanc_conn_pong(chanc_conn_t *c) { keepalive_alive(c); }

static void auth_failed(chanc_conn_t *c, int code, const chanc_status_t *st) {
    /* Failure: the frame, then close; no groups, no hooks. */
    chanc_log(CHANC_LOG_INFO, "conn %llu %s: authentication %d: %s", (unsigned long long)c->id,
              c->path, code, st->detail);
    send_auth_status(c, st);
    chanc_conn_close(c, code >= 400 && code < 600 ? 4000 + code : CHANC_CLOSE_INTERNAL,
                     chanc_status_text(code));
}

/* The pipeline after prepare: authenticate, the 200 frame, groups,
 * post_authentication. */
static void connect_rest(chanc_conn_t *c) {
    /* Closed by the server while prepare ran (a bad frame, shutdown): the
     * close is on its way over the transport; no frame, no hooks. */
    if (c->closing)
        return;
    chanc_status_t st = {0, ""};
    int code = authenticate(c, &st);
    if (code) {
        auth_failed(c, code, &st);
        return;
    }
    chanc__conn_write(c, c->app->auth_ok_buf);
    c->admitted = true;
    if (c->app->keepalive_ms && c->ops->ping) {
        c->last_rx = chanc_app_mono_ms(c->app);
        keepalive_schedule(c, c->app->keepalive_ms);
    }
    const chanc_consumer_t *k = c->consumer;
    if (k->build_groups && k->build_groups(c) < 0) {
        chanc_log(CHANC_LOG_ERROR, "conn %llu: build_groups failed", (unsigned long long)c->id);
        chanc_conn_close(c, CHANC_CLOSE_INTERNAL, "Internal server error");
        return;
    }
    if (k->post_authentication && !c->closing && k->post_authentication(c) < 0) {
        chanc_log(CHANC_LOG_ERROR, "conn %llu: post_authentication failed",
                  (unsigned long long)c->id);
        chanc_conn_close(c, CHANC_CLOSE_INTERNAL, "Internal server error");
    }
}

static void prepare_done(chanc_conn_t *c, int rc) {
    if (rc < 0) {
        chanc_log(CHANC_LOG_ERROR, "conn %llu: prepare failed: %s", (unsigned long long)c->id,
                  chanc_strerror(rc));
        chanc_status_t st = {0, ""};
        auth_failed(c, chanc_deny(&st, 500, "Internal server error."), &st);
        return;
    }
    connect_rest(c);
}

static void rxq_drain(chanc_conn_t *c);

void chanc_transport_opened(chanc_conn_t *c) {
    if (c->started)
        return;
    c->started = true;
    if (c->consumer->prepare) {
        c->in_hook = true;
        c->preparing = true;
        int rc = c->consumer->prepare(c);
        c->in_hook = false;
        if (c->deferred)
            return; /* chanc_conn_resume goes on */
        c->preparing = false;
        if (c->resumed_early) {
            c->resumed_early = false;
            rc = c->early_rc;
        }
        prepare_done(c, rc);
        rxq_drain(c);
        return;
    }
    connect_rest(c);
}

/* --- receiving ------------------------------------------------------------------ */

/* The handler error frame, once per frame. */
static void send_handler_error(chanc_conn_t *c) {
    if (c->frame_failed)
        return;
    c->frame_failed = true;
    c->app->stats.handler_errors++;
    send_error_payload(c, json_pack("{s:s}", "detail", "Failed to process message"));
}

static void handler_failed(chanc_conn_t *c, const char *action, int rc) {
    chanc_log(CHANC_LOG_ERROR, "conn %llu: %s handler failed: %s", (unsigned long long)c->id,
              action, chanc_strerror(rc));
    send_handler_error(c);
}

static const char *type_name(const chanc_message_type_t *t) {
    return !t ? "(no type)" : t->name ? t->name : t->action;
}

/* An action handler's reply: declared by its entry and valid, or a server
 * bug (logged; the handler error frame instead). payload stolen. */
static int send_reply(chanc_conn_t *c, const chanc_message_type_t *type, json_t *payload) {
    const chanc_action_t *a = c->action;
    bool declared = false;
    for (size_t i = 0; type && a->replies && a->replies[i]; i++)
        declared |= a->replies[i] == type;
    chanc_error_t err;
    json_t *frame = NULL;
    if (!declared) {
        json_decref(payload);
        chanc_log(CHANC_LOG_ERROR, "conn %llu: %s handler replied with %s, not one of its "
                                   "declared replies",
                  (unsigned long long)c->id, a->type->action, type_name(type));
    } else if (!(frame = chanc_message_build(type, payload, &err))) {
        chanc_log(CHANC_LOG_ERROR, "conn %llu: %s handler's reply %s is invalid: %s",
                  (unsigned long long)c->id, a->type->action, type_name(type), err.text);
    }
    if (!frame) {
        send_handler_error(c);
        return CHANC_EVALIDATION;
    }
    return chanc_conn_send_json(c, frame);
}

int chanc_conn_reply(chanc_conn_t *c, const chanc_message_type_t *type, json_t *payload) {
    if (!c || !c->action) {
        json_decref(payload);
        if (c)
            chanc_log(CHANC_LOG_ERROR, "conn %llu: chanc_conn_reply outside an action handler's "
                                       "frame",
                      (unsigned long long)c->id);
        return CHANC_EINVAL;
    }
    return send_reply(c, type, payload);
}

/* The table's entry for a validated type; NULL: receive_message's. */
static const chanc_action_t *action_of(const chanc_consumer_t *k,
                                       const chanc_message_type_t *type) {
    for (const chanc_action_t *a = k->actions; a && a->type; a++)
        if (a->type == type)
            return a->handle ? a : NULL;
    return NULL;
}

/* Run a validated frame's handler (its action's, or receive_message);
 * true: it deferred (the frame's end, error and complete, comes with
 * chanc_conn_resume). */
static bool dispatch(chanc_conn_t *c, const chanc_action_t *act, const chanc_message_type_t *type,
                     const json_t *frame) {
    json_t *payload = json_object_get(frame, "payload");
    json_t *null_payload = NULL;
    if (!payload)
        payload = null_payload = json_null();
    chanc_reply_t reply = {NULL, NULL};
    c->in_hook = true;
    c->action = act;
    c->frame_failed = false;
    int rc = act ? act->handle(c, payload, &reply)
                 : c->consumer->receive_message(c, type, payload, frame);
    c->in_hook = false;
    json_decref(null_payload);
    if (c->resumed_early) { /* deferred and resumed inside the hook */
        c->resumed_early = false;
        rc = c->early_rc;
    }
    if (rc < 0)
        json_decref(reply.payload); /* failed: the error frame, not the reply */
    else if (reply.type || reply.payload)
        send_reply(c, reply.type, reply.payload);
    if (c->deferred) {
        if (rc < 0)
            chanc_log(CHANC_LOG_WARN,
                      "conn %llu: %s handler deferred and failed (%s): the result is "
                      "what chanc_conn_resume says",
                      (unsigned long long)c->id, type->action, chanc_strerror(rc));
        return true;
    }
    if (rc < 0)
        handler_failed(c, type->action, rc);
    c->action = NULL;
    return false;
}

/* Checks, validation, the handler. true: the handler deferred (the
 * frame's end, error and complete, comes with chanc_conn_resume). */
static bool handle_frame(chanc_conn_t *c, const void *data, size_t len, bool binary) {
    chanc_app_stats_t *stats = &c->app->stats;
    if (binary) {
        stats->validation_errors++;
        send_one_error(c, "frame_type", "Binary frames are not accepted: send JSON text frames");
        return false;
    }
    json_error_t jerr;
    json_t *frame = json_loadb(data, len, JSON_DECODE_ANY, &jerr);
    if (!frame) {
        stats->validation_errors++;
        char msg[256];
        snprintf(msg, sizeof msg, "Invalid JSON: %s at line %d column %d", jerr.text, jerr.line,
                 jerr.column);
        send_one_error(c, "json_invalid", msg);
        return false;
    }
    bool deferred = false;
    const chanc_message_type_t *type = NULL;
    json_t *errors = NULL;
    if (chanc_message_validate(c->route->incoming, frame, &type, &errors) < 0) {
        stats->validation_errors++;
        send_error_payload(c, errors);
    } else {
        const chanc_action_t *act = action_of(c->consumer, type);
        if (act || c->consumer->receive_message)
            deferred = dispatch(c, act, type, frame);
    }
    json_decref(frame);
    return deferred;
}

/* Take one frame from the connection's token bucket; false: over the
 * limit. Tokens are thousandths of a frame, refilled from the app clock
 * (so a test's virtual clock moves them). */
static bool rate_take(chanc_conn_t *c) {
    const chanc_app_t *app = c->app;
    if (app->rate_limit == CHANC_RATE_UNLIMITED)
        return true;
    uint64_t now = chanc_app_mono_ms(app), cap = (uint64_t)app->rate_burst * 1000u;
    if (now > c->rate_last_ms) {
        uint64_t dt = now - c->rate_last_ms;
        /* rate frames/s = rate thousandths of a frame per ms */
        c->rate_tokens = dt >= cap ? cap : c->rate_tokens + dt * app->rate_limit;
        if (c->rate_tokens > cap)
            c->rate_tokens = cap;
        c->rate_last_ms = now;
    }
    if (c->rate_tokens < 1000u)
        return false;
    c->rate_tokens -= 1000u;
    return true;
}

/* One frame that passed the transport-level checks: run it, then its
 * complete (unless its handler deferred). */
static void run_frame(chanc_conn_t *c, int kind, const void *data, size_t len) {
    if (kind == RX_REFUSED)
        chanc__conn_write(c, c->app->rate_limited_buf);
    else if (handle_frame(c, data, len, kind == RX_BINARY))
        return;
    if (c->consumer->send_completion)
        chanc__conn_write(c, c->app->complete_buf);
}

static void set_paused(chanc_conn_t *c, bool paused) {
    if (c->paused == paused || !c->ops->pause || (paused && c->closing))
        return;
    c->paused = paused;
    chanc_log(CHANC_LOG_DEBUG, "conn %llu: %s reading (%zu frames waiting)",
              (unsigned long long)c->id, paused ? "paused" : "resumed", c->rxq_len);
    c->ops->pause(c->tctx, paused);
}

/* Run the frames that waited, until one defers again. */
static void rxq_drain(chanc_conn_t *c) {
    while (c->rxq && !c->deferred && !c->closing) {
        struct chanc__rx *r = c->rxq;
        if (!(c->rxq = r->next))
            c->rxq_tail = &c->rxq;
        c->rxq_len--;
        run_frame(c, r->kind, r->data, r->len);
        free(r);
    }
    if (c->closing)
        rxq_clear(c);
    if (c->rxq_len < CHANC_RX_QUEUE_MAX / 2)
        set_paused(c, false);
}

static void rxq_push(chanc_conn_t *c, int kind, const void *data, size_t len) {
    if (kind == RX_REFUSED)
        len = 0;
    struct chanc__rx *r = chanc__malloc(sizeof *r + len);
    if (!r) {
        chanc_log(CHANC_LOG_ERROR, "conn %llu: out of memory queuing a frame, closing",
                  (unsigned long long)c->id);
        chanc_conn_close(c, CHANC_CLOSE_INTERNAL, "Internal server error");
        return;
    }
    r->next = NULL;
    r->len = len;
    r->kind = (uint8_t)kind;
    if (len)
        memcpy(r->data, data, len);
    *c->rxq_tail = r;
    c->rxq_tail = &r->next;
    if (++c->rxq_len >= CHANC_RX_QUEUE_MAX)
        set_paused(c, true);
}

void chanc_transport_received(chanc_conn_t *c, const void *data, size_t len, bool binary) {
    if (c->closing || (!c->admitted && !c->preparing))
        return; /* frames racing a close, or before/after a failed auth */
    c->app->stats.frames_in++;
    keepalive_alive(c);
    if (len > c->app->max_frame) {
        chanc_conn_close(c, CHANC_CLOSE_TOO_BIG, "frame too large");
        return;
    }
    int kind = binary ? RX_BINARY : RX_TEXT;
    if (!rate_take(c)) {
        if (!c->rate_limited)
            chanc_log(CHANC_LOG_INFO, "conn %llu: over the rate limit (%u/s), refusing frames",
                      (unsigned long long)c->id, c->app->rate_limit);
        c->rate_limited = true;
        c->app->stats.rate_limited++;
        kind = RX_REFUSED;
    } else if (!binary && chanc_utf8_length(data, len) < 0) {
        chanc_conn_close(c, CHANC_CLOSE_INVALID_UTF8, "invalid UTF-8");
        return;
    } else {
        c->rate_limited = false;
    }
    if (c->deferred || c->rxq || c->preparing)
        rxq_push(c, kind, data, len);
    else
        run_frame(c, kind, data, len);
}

/* --- finishing later ------------------------------------------------------------ */

int chanc_conn_defer(chanc_conn_t *c) {
    if (!c || !c->in_hook || c->deferred)
        return CHANC_EINVAL;
    c->deferred = true;
    return 0;
}

bool chanc_conn_is_closing(const chanc_conn_t *c) { return c->closing; }

static void finish_closed(chanc_conn_t *c, int code);

void chanc_conn_resume(chanc_conn_t *c, int rc) {
    if (!c->deferred) {
        chanc_log(CHANC_LOG_ERROR, "conn %llu: chanc_conn_resume without chanc_conn_defer",
                  (unsigned long long)c->id);
        return;
    }
    c->deferred = false;
    if (c->in_hook) { /* the hook that deferred is still running: it finishes */
        c->resumed_early = true;
        c->early_rc = rc;
        return;
    }
    if (c->close_pending) {
        finish_closed(c, c->close_code);
        return;
    }
    if (c->preparing) {
        c->preparing = false;
        prepare_done(c, rc);
    } else {
        if (rc < 0)
            handler_failed(c, "deferred", rc);
        c->action = NULL;
        if (c->consumer->send_completion)
            chanc__conn_write(c, c->app->complete_buf);
    }
    rxq_drain(c);
}

/* --- close ---------------------------------------------------------------------- */

static void finish_closed(chanc_conn_t *c, int code) {
    chanc_app_t *app = c->app;
    if (c->admitted && c->consumer->disconnect)
        c->consumer->disconnect(c, code);
    chanc__conn_leave_all(c);
    chanc__map_remove(&app->channels, c->channel);
    if (c->prev)
        c->prev->next = c->next;
    else
        app->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    app->nconns--;
    conn_free(c);
}

void chanc__conn_abandon_deferred(chanc_app_t *app) {
    chanc_conn_t *next;
    for (chanc_conn_t *c = app->conns; c; c = next) {
        next = c->next;
        if (c->deferred && c->close_pending) {
            chanc_log(CHANC_LOG_WARN,
                      "conn %llu: released at app destroy with its deferred work unfinished",
                      (unsigned long long)c->id);
            c->deferred = false;
            finish_closed(c, c->close_code);
        }
    }
}

void chanc_transport_closed(chanc_conn_t *c, int code) {
    c->closing = true; /* nothing more is written */
    chanc_timer_cancel(c->keepalive);
    c->keepalive = NULL;
    rxq_clear(c);
    if (c->deferred) {
        /* The work in flight still owns c: the rest waits for resume. */
        c->close_pending = true;
        c->close_code = code;
        return;
    }
    finish_closed(c, code);
}

/* --- accessors --------------------------------------------------------------------- */

int chanc_conn_set_user(chanc_conn_t *c, const char *id, const char *username, void *data,
                        void (*free_data)(void *)) {
    char *i = id ? chanc__strdup(id) : NULL, *u = username ? chanc__strdup(username) : NULL;
    if ((id && !i) || (username && !u)) {
        free(i);
        free(u);
        return CHANC_ENOMEM;
    }
    free(c->user_id);
    free(c->username);
    if (c->free_user_data && c->user_data)
        c->free_user_data(c->user_data);
    c->user_id = i;
    c->user_hash = chanc__user_hash(i);
    c->username = u;
    c->user_data = data;
    c->free_user_data = free_data;
    return 0;
}

const char *chanc_conn_user_id(const chanc_conn_t *c) { return c->user_id; }
const char *chanc_conn_username(const chanc_conn_t *c) { return c->username; }
void *chanc_conn_user_data(const chanc_conn_t *c) { return c->user_data; }
bool chanc_conn_is_authenticated(const chanc_conn_t *c) { return c->user_id != NULL; }

const char *chanc_conn_header(const chanc_conn_t *c, const char *name) {
    for (size_t i = 0; i < c->nheaders; i++)
        if (strcasecmp(c->headers[i].name, name) == 0)
            return c->headers[i].value;
    return NULL;
}

int chanc_conn_cookie(const chanc_conn_t *c, const char *name, char *out, size_t outlen) {
    return chanc_cookie_get(chanc_conn_header(c, "cookie"), name, out, outlen);
}

const char *chanc_conn_path(const chanc_conn_t *c) { return c->path; }
const char *chanc_conn_query(const chanc_conn_t *c) { return c->query; }

const char *chanc_conn_param(const chanc_conn_t *c, const char *name) {
    for (size_t i = 0; i < c->nparams; i++)
        if (strcmp(c->params[i].name, name) == 0)
            return c->params[i].value;
    return NULL;
}

int chanc_conn_param_int(const chanc_conn_t *c, const char *name, int64_t *out) {
    const char *v = chanc_conn_param(c, name);
    if (!v)
        return CHANC_ENOTFOUND;
    /* Digits only (the int converter); reject what does not fit. */
    int64_t n = 0;
    for (const char *p = v; *p; p++) {
        if (!isdigit((unsigned char)*p) || n > (INT64_MAX - (*p - '0')) / 10)
            return CHANC_EINVAL;
        n = n * 10 + (*p - '0');
    }
    *out = n;
    return 0;
}

void *chanc_conn_object(const chanc_conn_t *c) { return c->object; }
void *chanc_conn_state(const chanc_conn_t *c) { return c->state; }
void *chanc_conn_route_data(const chanc_conn_t *c) { return c->route->data; }
chanc_app_t *chanc_conn_app(const chanc_conn_t *c) { return c->app; }
const chanc_consumer_t *chanc_conn_consumer(const chanc_conn_t *c) { return c->consumer; }
uint64_t chanc_conn_id(const chanc_conn_t *c) { return c->id; }
const char *chanc_conn_channel(const chanc_conn_t *c) { return c->channel; }
