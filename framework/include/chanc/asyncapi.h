/* An AsyncAPI 3.0.0 document generated from an app's routes, and a
 * readable HTML page rendered from it.
 *
 * One channel per WebSocket route (its address from the pattern, {x}
 * params as channel parameters); a `receive` operation for what the
 * consumer accepts (its `incoming` union, or its action table's types)
 * and a `send` operation for what it may send (its `outgoing` list, its
 * action handlers' replies, plus the framework's own frames below, each
 * once); an action handler that declares replies gets a receive operation
 * of its own, "<channel>_<message>", whose `reply` lists them;
 * each message's payload is the whole frame {"action": const, "payload":
 * schema, ...frame_fields}, its schema generated from chanc_schema_t
 * (types, nullable, lengths in characters, bounds, required fields,
 * additionalProperties false for CHANC_EXTRA_FORBID, items). Internal
 * events (`events`) are listed under the channel's `x-chanc-events` (they
 * never reach a client), the close codes under the info's
 * `x-chanc-close-codes`, and an API-key security scheme (a session cookie)
 * on the operations of consumers that have authenticators.
 *
 * The document describes the protocol, not a secret: an app may serve it
 * to anyone (the chat serves /asyncapi.json and /docs without login). */
#ifndef CHANC_ASYNCAPI_H
#define CHANC_ASYNCAPI_H

#include <jansson.h>

#include "chanc/app.h"
#include "chanc/error.h"
#include "chanc/message.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The frames the framework itself sends on every route, for a consumer's
 * `outgoing` list (the generator adds them anyway):
 *   authentication  {"status_code","status_text","data":{"detail"}}
 *   error           the validation error list [{"type","loc","msg"(,"ctx")}]
 *   handler_error   action "error", {"detail":"Failed to process message"}
 *   complete, group_complete   payload null (send_completion) */
CHANC_API extern const chanc_message_type_t chanc_msg_authentication;
CHANC_API extern const chanc_message_type_t chanc_msg_validation_error;
CHANC_API extern const chanc_message_type_t chanc_msg_handler_error;
CHANC_API extern const chanc_message_type_t chanc_msg_complete;
CHANC_API extern const chanc_message_type_t chanc_msg_group_complete;

/* An API key a consumer's authenticators read: AsyncAPI's httpApiKey. */
typedef struct chanc_asyncapi_security {
    const char *id;          /* key in components/securitySchemes; NULL: "apiKey" */
    const char *name;        /* the cookie's (header's, query param's) name */
    const char *in;          /* "cookie" (NULL), "header" or "query" */
    const char *description; /* NULL: none */
} chanc_asyncapi_security_t;

typedef struct chanc_asyncapi_info {
    const char *title;       /* required */
    const char *version;     /* the application's version; required */
    const char *description; /* CommonMark; NULL: none */
    /* The server: host[:port] (NULL: no servers section), "ws" or "wss"
     * (NULL: "ws"), an optional path prefix, a description. */
    const char *host;
    const char *protocol;
    const char *pathname;
    const char *server_description;
    /* NULL: no security scheme. Applied to the operations of every route
     * whose consumer has authenticators. */
    const chanc_asyncapi_security_t *security;
} chanc_asyncapi_info_t;

/* The document for every route of app, as a new JSON object; NULL on
 * failure (err says why: CHANC_EINVAL without a title or version,
 * CHANC_ENOMEM). Loop thread (or before the loop runs). */
CHANC_API json_t *chanc_asyncapi_document(const chanc_app_t *app, const chanc_asyncapi_info_t *info,
                                chanc_error_t *err);

/* A self-contained HTML reference page for a document made by
 * chanc_asyncapi_document: no script, no inline style, nothing fetched
 * from elsewhere (it satisfies a "default-src 'self'" Content Security
 * Policy). stylesheet (may be NULL) is put in a <link rel=stylesheet
 * href=…>; every value from the document is HTML-escaped. Returns a
 * malloc'd NUL-terminated string (free()), NULL on OOM. */
CHANC_API char *chanc_asyncapi_html(const json_t *doc, const char *stylesheet);

#ifdef __cplusplus
}
#endif
#endif
