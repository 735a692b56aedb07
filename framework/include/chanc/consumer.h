/* Consumers: a struct of hooks and settings, and the per-connection API the
 * hooks use (send, group send, user, params, state). Everything here runs on
 * the loop thread. */
#ifndef CHANC_CONSUMER_H
#define CHANC_CONSUMER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chanc/auth.h"
#include "chanc/export.h"
#include "chanc/message.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct chanc_app chanc_app_t;

/* Close codes chanc uses (RFC 6455 codes and the private 4000–4999 range).
 * Authentication failures close with 4000 + the status code. */
enum {
    CHANC_CLOSE_NORMAL = 1000,
    CHANC_CLOSE_GOING_AWAY = 1001,     /* server shutting down */
    CHANC_CLOSE_INVALID_UTF8 = 1007,   /* text frame not valid UTF-8 */
    CHANC_CLOSE_TOO_BIG = 1009,        /* frame over the size limit */
    CHANC_CLOSE_INTERNAL = 1011,       /* server could not go on */
    CHANC_CLOSE_UNAUTHORIZED = 4401,   /* authentication frame said 401 */
    CHANC_CLOSE_FORBIDDEN = 4403,      /* authentication frame said 403 */
    CHANC_CLOSE_NOT_FOUND = 4404,      /* 404: object or route not found */
    CHANC_CLOSE_KEEPALIVE = 4408       /* no answer to the keepalive ping */
};

/* Flags for group sends. */
#define CHANC_EXCLUDE_CURRENT 0x1u /* skip the sending connection */

/* An action handler's answer to its frame: set type (one of the entry's
 * `replies`) and payload (stolen by the framework whatever the handler
 * returns; NULL: null). Left as it is ({NULL, NULL}): no reply. */
typedef struct chanc_reply {
    const chanc_message_type_t *type;
    json_t *payload;
} chanc_reply_t;

/* One entry of a consumer's action table: frames of `type` go to
 * `handle`, after validation. payload is the validated payload (borrowed
 * for the call; null when absent). Return 0, and the reply (if set) is
 * validated against its type and sent before `complete`; or negative →
 * the handler error frame {"action":"error","payload":{"detail":"Failed
 * to process message"}} and no reply. A reply whose type is not in
 * `replies`, or whose payload does not validate, is a server bug: logged
 * (error), the handler error frame is sent instead, the connection stays
 * open. A handler may defer as receive_message can (chanc_conn_defer) and
 * answer later with chanc_conn_reply (a reply it set before returning is
 * sent at once, still before `complete`). handle NULL: the frame goes to
 * receive_message, as a type without an entry. */
typedef struct chanc_action {
    const chanc_message_type_t *type; /* NULL ends the table */
    int (*handle)(chanc_conn_t *c, const json_t *payload, chanc_reply_t *reply);
    /* The reply types it may send (NULL-terminated; NULL: none). They are
     * declared outgoing messages: the AsyncAPI document lists them. */
    const chanc_message_type_t *const *replies;
} chanc_action_t;

typedef struct chanc_consumer {
    const char *name; /* for logs */

    /* Incoming union (NULL-terminated). NULL: the types of `actions`, or
     * when there is no table every frame is an "unknown action". With
     * both, `incoming` is the union and every action's type must be in it
     * (chanc_app_route refuses the route otherwise). */
    const chanc_message_type_t *const *incoming;
    /* Action handlers (ended by an entry whose type is NULL; NULL: none).
     * A validated frame goes to its type's entry; a type without one (or
     * whose handle is NULL) goes to receive_message; with neither, only
     * `complete` answers it. */
    const chanc_action_t *actions;
    /* Message types this consumer may send to its client (documented in
     * the AsyncAPI document; checked by the test fixture). NULL-terminated;
     * NULL: undeclared. Several types may share an action (the error
     * frame's two shapes): a frame conforms when it matches one of them. */
    const chanc_message_type_t *const *outgoing;

    /* NULL-terminated lists; NULL authenticators: everyone anonymous;
     * NULL permissions: allow any. */
    const chanc_authenticator_t *const *authenticators;
    const chanc_permission_t *const *permissions;

    /* Runs first when the connection opens, before the authenticators
     * (may be NULL). It may start asynchronous work — database lookups on
     * another thread — and call chanc_conn_defer(c): the pipeline then
     * waits for chanc_conn_resume(c, rc), and the authenticators,
     * get_object and permissions read what it loaded from the
     * connection's state. Frames the client sends meanwhile wait, in
     * order. Negative (here or in resume) → the authentication frame says
     * 500 and the connection closes with 4500. */
    int (*prepare)(chanc_conn_t *c);

    /* Object lookup (e.g. the room by the "pk" URL param): return 0 and
     * set *obj, or CHANC_ENOTFOUND (→ 404 "Not found."), or another
     * negative code (→ 500). free_object (may be NULL) releases it when
     * the connection ends. NULL get_object: no object. */
    int (*get_object)(chanc_conn_t *c, void **obj);
    void (*free_object)(void *obj);

    /* After permissions allow: join groups with chanc_conn_group_add.
     * Return 0, or a negative code to close with 1011. */
    int (*build_groups)(chanc_conn_t *c);
    /* After the 200 authentication frame and the groups. */
    int (*post_authentication)(chanc_conn_t *c);
    /* A validated frame whose type has no action handler (every frame
     * when there is no table). payload and frame are borrowed for the call.
     * Return 0, or negative → {"action":"error","payload":{"detail":
     * "Failed to process message"}}. Or call chanc_conn_defer(c), hand the
     * work to another thread, return 0, and finish with
     * chanc_conn_resume(c, rc) on the loop thread. */
    int (*receive_message)(chanc_conn_t *c, const chanc_message_type_t *type,
                           const json_t *payload, const json_t *frame);
    /* The connection closed (only for connections that authenticated).
     * Groups are left after this returns, so a group send here reaches the
     * others but not this connection. */
    void (*disconnect)(chanc_conn_t *c, int close_code);

    /* Typed server events (chanc_app_group_event, chanc_app_channel_event,
     * chanc_app_post_event): messages from the server's other parts —
     * "this session ended", "an announcement" — that reach the consumer of
     * every member of a group, or of one connection, in every process, and
     * the client only if the hook passes them on (below). `events` lists
     * the ones this consumer accepts
     * (NULL-terminated; NULL: none); an event that is not in it, or whose
     * payload does not validate, is ignored (logged at debug). receive_event
     * gets the validated payload (borrowed) on the loop thread, for an
     * authenticated connection that is not closing; it may send, close the
     * connection or change its groups. Return 0, or negative (logged). */
    const chanc_message_type_t *const *events;
    int (*receive_event)(chanc_conn_t *c, const chanc_message_type_t *type,
                         const json_t *payload);
    /* To tell its client, the hook passes the event on with
     * chanc_conn_pass_event (the event's bytes, shared by every
     * recipient), or sends a frame of its own (chanc_conn_send), or says
     * nothing: the decision is per connection. */

    /* Per-connection state: state_size zeroed bytes from
     * chanc_conn_state(); dispose_state (may be NULL) runs when the
     * connection is freed, whatever happened before. */
    size_t state_size;
    void (*dispose_state)(chanc_conn_t *c, void *state);

    /* Send {"action":"complete","payload":null} after each received frame
     * and {"action":"group_complete","payload":null} after each relayed
     * group message. */
    bool send_completion;
} chanc_consumer_t;

/* --- identity and request ------------------------------------------- */

/* Set the authenticated user. id identifies the user across processes
 * (is_mine compares it); username is for display. Both are copied.
 * data (may be NULL) is owned by the connection and released with
 * free_data (may be NULL). Returns 0 or CHANC_ENOMEM. */
CHANC_API int chanc_conn_set_user(chanc_conn_t *c, const char *id, const char *username,
                                  void *data, void (*free_data)(void *));
/* Borrowed; NULL while anonymous. */
CHANC_API const char *chanc_conn_user_id(const chanc_conn_t *c);
CHANC_API const char *chanc_conn_username(const chanc_conn_t *c);
CHANC_API void *chanc_conn_user_data(const chanc_conn_t *c);
CHANC_API bool chanc_conn_is_authenticated(const chanc_conn_t *c);

/* A request header (name case-insensitive); borrowed, NULL if absent. */
CHANC_API const char *chanc_conn_header(const chanc_conn_t *c, const char *name);
/* A cookie from the Cookie header, copied into out (see chanc_cookie_get). */
CHANC_API int chanc_conn_cookie(const chanc_conn_t *c, const char *name, char *out,
                                size_t outlen);
/* The request path without the query string, and the query (NULL if none). */
CHANC_API const char *chanc_conn_path(const chanc_conn_t *c);
CHANC_API const char *chanc_conn_query(const chanc_conn_t *c);
/* A URL param bound by the route; borrowed, NULL if absent. */
CHANC_API const char *chanc_conn_param(const chanc_conn_t *c, const char *name);
/* An {x:int} param; 0, CHANC_ENOTFOUND or CHANC_EINVAL. */
CHANC_API int chanc_conn_param_int(const chanc_conn_t *c, const char *name, int64_t *out);

/* The looked-up object (NULL if none), the consumer's state, the route's
 * data pointer, the app, a process-unique id. */
CHANC_API void *chanc_conn_object(const chanc_conn_t *c);
CHANC_API void *chanc_conn_state(const chanc_conn_t *c);
CHANC_API void *chanc_conn_route_data(const chanc_conn_t *c);
CHANC_API chanc_app_t *chanc_conn_app(const chanc_conn_t *c);
/* The consumer the connection's route gave it. */
CHANC_API const chanc_consumer_t *chanc_conn_consumer(const chanc_conn_t *c);
CHANC_API uint64_t chanc_conn_id(const chanc_conn_t *c);
/* This connection's channel name for chanc_app_channel_send; borrowed. */
CHANC_API const char *chanc_conn_channel(const chanc_conn_t *c);

/* --- sending ---------------------------------------------------------- */

/* Send a typed frame: payload stolen (NULL = null), validated against the
 * type. 0, CHANC_EVALIDATION (nothing sent, logged), CHANC_ECLOSED, or
 * CHANC_ENOMEM as below. */
CHANC_API int chanc_conn_send(chanc_conn_t *c, const chanc_message_type_t *type,
                              json_t *payload);
/* Send any JSON frame (stolen). 0 or CHANC_ECLOSED / CHANC_ENOMEM. Out
 * of memory — frame NULL (a json_pack that failed) or not encodable —
 * the client would silently miss the frame, so the connection is closed
 * with 1011 "delivery failed" (CHANC_ENOMEM). */
CHANC_API int chanc_conn_send_json(chanc_conn_t *c, json_t *frame);
/* Inside receive_event only: send the event being handled to this
 * connection's client as the outgoing type `as`, which must be listed in
 * the consumer's `outgoing` and have the event's action. The client gets
 * {"action": …, "payload": …} exactly as the event was sent: the bytes
 * encoded once when it was sent, shared by reference by every recipient
 * (the frame is checked against as's schema once per delivery, not per
 * recipient). 0; CHANC_EINVAL (outside receive_event, `as` not declared
 * or of another action); CHANC_EVALIDATION (the event does not match as:
 * nothing sent, logged); CHANC_ECLOSED. */
CHANC_API int chanc_conn_pass_event(chanc_conn_t *c, const chanc_message_type_t *as);
/* Close the connection (code and reason sent to the client). The
 * disconnect hook runs once the transport reports the close. */
CHANC_API void chanc_conn_close(chanc_conn_t *c, int code, const char *reason);

/* --- finishing later ------------------------------------------------------ */

/* From receive_message, an action handler or prepare only: the outcome is not known yet (the
 * work went to another thread). The frame's error frame and `complete`
 * wait for chanc_conn_resume; the connection's next frames wait behind it
 * in arrival order (frames refused by the rate limit too, so every
 * `complete` still answers its own frame); the connection stays valid
 * until resume, even if the client goes meanwhile — its disconnect hook
 * then runs after resume. Asynchronous work should hold the app
 * (chanc_app_hold) so that tests and shutdown wait for it. Returns 0, or
 * CHANC_EINVAL outside those hooks or when already deferred. */
CHANC_API int chanc_conn_defer(chanc_conn_t *c);
/* Loop thread: finish what chanc_conn_defer postponed. rc as the hook's
 * would have been (negative: the error frame, or for prepare the 500
 * authentication frame). Then the waiting frames run. If the client has
 * gone, nothing is sent and the connection is released here. */
CHANC_API void chanc_conn_resume(chanc_conn_t *c, int rc);
/* An action handler's reply, sent now: from the handler itself or, once
 * it deferred, from the loop thread until chanc_conn_resume. payload
 * stolen (NULL = null). The same checks as a reply the handler sets: a
 * type not in the entry's `replies` or a payload that does not validate
 * is logged (error) and the handler error frame goes instead (a negative
 * resume then adds no second one). 0, CHANC_EVALIDATION (that bug),
 * CHANC_ECLOSED (the client has gone), or CHANC_EINVAL when no action
 * handler's frame is in progress (logged; nothing sent). */
CHANC_API int chanc_conn_reply(chanc_conn_t *c, const chanc_message_type_t *type,
                               json_t *payload);
/* Whether the client has gone or is being closed (nothing more will reach
 * it); for a resume that wants to skip work for a closed connection. */
CHANC_API bool chanc_conn_is_closing(const chanc_conn_t *c);

/* --- groups ------------------------------------------------------------ */

/* Join / leave a group (names up to 100 bytes: letters, digits, - _ .).
 * Idempotent. 0, CHANC_EINVAL or CHANC_ENOMEM. */
CHANC_API int chanc_conn_group_add(chanc_conn_t *c, const char *group);
CHANC_API int chanc_conn_group_discard(chanc_conn_t *c, const char *group);
CHANC_API bool chanc_conn_in_group(const chanc_conn_t *c, const char *group);
/* Whether group is a valid group name (as above; NULL: false). */
CHANC_API bool chanc_group_name_valid(const char *group);

/* Send frame (stolen; must be an object) to every member of `group`, or of
 * each of this connection's groups when group is NULL. Each recipient gets
 * the frame plus "is_mine" (same user id) and "is_current" (this
 * connection). The frame is encoded once; recipients share the bytes.
 * Delivery is asynchronous (through the channel layer) and in order.
 * flags: CHANC_EXCLUDE_CURRENT. Out of memory before the message reaches
 * the layer (frame NULL, as from a json_pack that failed, or no memory to
 * encode or publish it): every member of the group in this process would
 * silently miss it, so each is closed with 1011 "delivery failed", and
 * CHANC_ENOMEM is returned. */
CHANC_API int chanc_conn_group_send(chanc_conn_t *c, const char *group, json_t *frame,
                                    unsigned flags);
/* Typed variant: payload stolen and validated against type. */
CHANC_API int chanc_conn_group_send_message(chanc_conn_t *c, const char *group,
                                            const chanc_message_type_t *type,
                                            json_t *payload, unsigned flags);

/* --- what a consumer declares ---------------------------------------------- */

typedef enum chanc_declared {
    CHANC_DECLARED_INCOMING = 1, /* frames the client may send: `incoming`, or
                                  * the action table's types when it is NULL */
    CHANC_DECLARED_OUTGOING = 2  /* frames the server may send: the
                                  * framework's own (chanc_msg_* in
                                  * chanc/asyncapi.h: authentication, the
                                  * validation error, the handler error with
                                  * receive_message or actions, complete and
                                  * group_complete with send_completion),
                                  * `outgoing` and the action table's replies */
} chanc_declared_t;

/* The message types k declares in one direction, each once, in that order:
 * the one list the AsyncAPI document, the test fixture's frame check and
 * the protocol coverage read. Writes at most cap - 1 of them to out,
 * NULL-terminated (cap >= 1), and returns how many there are (more than
 * cap - 1: out was too small). */
CHANC_API size_t chanc_consumer_declared(const chanc_consumer_t *k, chanc_declared_t which,
                                         const chanc_message_type_t **out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
