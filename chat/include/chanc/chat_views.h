/* The chat's HTTP views (room list, login/logout, room page, static
 * assets) for chanc_server's HTTP handler. */
#ifndef CHANC_CHAT_VIEWS_H
#define CHANC_CHAT_VIEWS_H

#include "chanc/chat.h"
#include "chanc/server.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Every response of the views carries these (a strict CSP: scripts and
 * styles only from files of this site, nothing inline; no framing). */
#define CHAT_CSP                                                                  \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " \
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; " \
    "frame-ancestors 'none'"

typedef struct chat_views {
    chat_store_t *store; /* borrowed */
    chanc_app_t *app;    /* borrowed: its loop runs password checks on
                          * libuv's threadpool (NULL: checked inline) */
    /* GET /metrics: Prometheus text (the app's, the server's and the
     * commit-latency figures) to loopback clients; off: 404. */
    bool metrics;
    /* The session cookie is "__Host-sessionid" with Secure (browsers send
     * it over HTTPS only, to this host only): behind a proxy terminating
     * TLS. The chat consumer must read the same name (chat_register_with).
     * Off: "sessionid", without Secure (plain http://). */
    bool secure_cookies;
    chanc_server_t *server; /* borrowed; NULL: no server figures */
    /* The views' database thread (chat_views_start); NULL: the views call
     * the store inline, on the caller's thread (tests, fuzzing). */
    struct chat_worker *worker;
    /* Storage for header values of the response being built (the server
     * copies them before the next request). */
    char cookie[200];
    char location[600];
} chat_views_t;

/* Give the views a database thread of their own, on their own connection
 * to v->store's database (an in-memory SQLite database, which has one
 * connection, is used inline on the loop thread): every view that needs
 * the store then defers its answer (chanc_http_defer) until its store calls
 * have run there, so a slow or locked database never stalls the loop.
 * Needs v->store and v->app, loop thread. chanc_app_destroy stops it (v
 * must outlive the app), or chat_views_stop before. 0, or < 0 with err. */
int chat_views_start(chat_views_t *v, chanc_error_t *err);
/* Run what the thread still owes (the answers included) and stop it; a
 * no-op when not started. Loop thread. */
void chat_views_stop(chat_views_t *v);

/* A chanc_http_handler_fn; ud is a chat_views_t. */
int chat_views_handle(void *ud, const chanc_http_request_t *req, chanc_http_response_t *resp);

#ifdef __cplusplus
}
#endif
#endif
