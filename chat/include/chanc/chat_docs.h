/* The chat's protocol documents: the AsyncAPI 3.0 document of its
 * WebSocket routes (chanc_asyncapi_document) and the HTML page rendered
 * from it, served by the views at GET /asyncapi.json and GET /docs and
 * printed by `chat-server --asyncapi`.
 *
 * Both are public, like the page's script that speaks the protocol: they
 * describe the frames, not anybody's data, and need no login. */
#ifndef CHANC_CHAT_DOCS_H
#define CHANC_CHAT_DOCS_H

#include <stdbool.h>
#include <stdio.h>

#include "chanc/chat_views.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The document for app's routes (the chat's registered), a new reference;
 * host: "HOST:PORT" of the server (NULL: no servers section);
 * secure_cookies: the session cookie's name is "__Host-sessionid" and the
 * protocol wss (TLS at a proxy). NULL on failure (err). */
json_t *chat_asyncapi_document(const chanc_app_t *app, const char *host, bool secure_cookies,
                               chanc_error_t *err);

/* Build both once (v->app with the chat registered; v->secure_cookies
 * read) and keep them in v->docs until the app is destroyed. 0 or an
 * error code (err). */
int chat_docs_build(chat_views_t *v, const char *host, chanc_error_t *err);

/* GET|HEAD /asyncapi.json (application/json) and /docs (text/html): the
 * view, from what chat_docs_build kept (404 without it). */
int chat_docs_view(chat_views_t *v, const chanc_http_request_t *req, chanc_http_response_t *r);

/* `chat-server --asyncapi`: the document (pretty JSON) of a chat app set
 * up in memory, on out. 0, or an error code (said on stderr). */
int chat_asyncapi_print(FILE *out, const char *host, bool secure_cookies);

#ifdef __cplusplus
}
#endif
#endif
