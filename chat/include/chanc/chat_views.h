/* The chat's HTTP views (room list, login/logout, room page, static
 * assets) for chanc_server's HTTP handler. */
#ifndef CHANC_CHAT_VIEWS_H
#define CHANC_CHAT_VIEWS_H

#include "chanc/chat.h"
#include "chanc/chat_throttle.h"
#include "chanc/server.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct chat_views {
    chat_store_t *store; /* borrowed */
    chanc_app_t *app;    /* borrowed: its loop runs password checks on
                          * libuv's threadpool (NULL: checked inline) */
    /* GET /metrics: Prometheus text (the app's, the server's and the
     * commit-latency figures) to loopback clients; off: 404. */
    bool metrics;
    chanc_server_t *server; /* borrowed; NULL: no server figures */
    /* The views' database thread (chat_views_start); NULL: the views call
     * the store inline, on the caller's thread (tests, fuzzing). */
    struct chat_worker *worker;
    /* POST /login's limits (chanc/chat_throttle.h; borrowed, outlives the
     * app): an attempt over them is answered 429 with Retry-After at once,
     * without a password check; its figures are on /metrics. NULL: none. */
    chat_throttle_t *throttle;
    /* The views' own: password checks waiting for a hashing slot (FIFO;
     * at most the throttle's `hashers` hash at once), and how many hash. */
    struct login_job *hash_wait, *hash_wait_tail;
    unsigned hashing;
    /* Storage for header values of the response being built (the server
     * copies them before the next request). */
    char cookie[160];
    char location[600];
    char retry_after[16];
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
