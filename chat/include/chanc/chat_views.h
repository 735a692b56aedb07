/* The chat's HTTP views (the room list, a room's page, joining and
 * inviting, login and logout, /metrics, /healthz and the static assets)
 * for chanc_server's HTTP handler. */
#ifndef CHANC_CHAT_VIEWS_H
#define CHANC_CHAT_VIEWS_H

#include "chanc/chat.h"
#include "chanc/chat_throttle.h"
#include "chanc/server.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An address block of the /metrics allow-list: IPv4 as IPv4-mapped IPv6. */
typedef struct chat_cidr {
    unsigned char addr[16];
    unsigned bits; /* prefix length, 0-128 */
} chat_cidr_t;

#define CHAT_METRICS_ALLOW_MAX 16
#define CHAT_METRICS_TOKEN_MIN 16
#define CHAT_METRICS_TOKEN_MAX 128

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
     * commit-latency figures); off: 404. On, it answers only a client that
     * passes every check configured below: its address in metrics_allow
     * (else 403), "Authorization: Bearer <metrics_token>" (else 401). With
     * neither configured, nobody (403): never "loopback" by itself, which
     * behind a reverse proxy on the same host is everyone. */
    bool metrics;
    chat_cidr_t metrics_allow[CHAT_METRICS_ALLOW_MAX]; /* chat_views_allow_metrics */
    size_t metrics_nallow;
    char metrics_token[CHAT_METRICS_TOKEN_MAX + 1];    /* chat_views_metrics_token; "": none */
    /* The session cookie is "__Host-sessionid" with Secure (browsers send
     * it over HTTPS only, to this host only): behind a proxy terminating
     * TLS. The chat consumer must read the same name (chat_register_with).
     * Off: "sessionid", without Secure (plain http://). */
    bool secure_cookies;
    chanc_server_t *server; /* borrowed; NULL: no server figures */
    /* POST /login's limits (chanc/chat_throttle.h; borrowed, outlives the
     * app): an attempt over them is answered 429 with Retry-After at once,
     * without a password check; its figures are on /metrics. NULL: none. */
    chat_throttle_t *throttle;
    /* GET /asyncapi.json and /docs (chanc/chat_docs.h: chat_docs_build,
     * once at start-up; public); NULL: 404. */
    struct chat_docs *docs;
    /* Private, the views' own (zero, like every field left out): their
     * database thread (chat_views_start; NULL: the views call the store
     * inline, on the caller's thread: tests, fuzzing); the password checks
     * waiting for a hashing slot (FIFO; at most the throttle's `hashers`
     * hash at once), and how many hash. */
    struct chat_worker *worker_;
    struct chat_login_job *hash_wait_, *hash_wait_tail_;
    unsigned hashing_;
} chat_views_t;

/* The /metrics allow-list from "CIDR,CIDR,…" (IPv4 or IPv6, "/bits"
 * optional: one address), e.g. "10.0.0.0/8,192.0.2.7,::1/128"; replaces
 * v's. 0, or CHANC_EINVAL with err naming the bad entry. */
int chat_views_allow_metrics(chat_views_t *v, const char *list, chanc_error_t *err);
/* The /metrics bearer token: 16 to 128 printable ASCII characters, no
 * spaces. 0, or CHANC_EINVAL with err saying why. */
int chat_views_metrics_token(chat_views_t *v, const char *token, chanc_error_t *err);

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
