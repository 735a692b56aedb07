/* The chat's HTTP views (room list, login/logout, room page, static
 * assets) for chanc_server's HTTP handler. */
#ifndef CHANC_CHAT_VIEWS_H
#define CHANC_CHAT_VIEWS_H

#include "chanc/chat.h"
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
    /* Storage for header values of the response being built (the server
     * copies them before the next request). */
    char cookie[160];
    char location[600];
} chat_views_t;

/* A chanc_http_handler_fn; ud is a chat_views_t. */
int chat_views_handle(void *ud, const chanc_http_request_t *req, chanc_http_response_t *resp);

#ifdef __cplusplus
}
#endif
#endif
