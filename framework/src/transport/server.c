/* The server: create (the lws context and vhost on the app's libuv loop,
 * a foreign loop; the listening socket), lws's log, graceful shutdown and
 * destroy. The WebSocket side is in server_ws.c, the HTTP side in
 * server_http.c. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chanc/log.h"
#include "server_internal.h"

#define DEFAULT_MAX_BODY (64u * 1024u)
#define DEFAULT_MAX_CONNECTIONS 10000u
#define TX_PACKET_SIZE (64 * 1024)
/* Shutdown waits at most this long for the closing handshakes and the
 * app to settle, then as long again for lws to let go of the loop. */
#define SHUTDOWN_WAIT_MS 5000
#define SHUTDOWN_POLL_MS 2
/* Request headers: a request whose headers add up to more than max_headers
 * (default 8 KiB) is answered 431 and closed. lws 4.1.6 itself cannot
 * answer: a request that overflows its header space (max_http_header_data)
 * is dropped from inside its parser, the socket shut down before any
 * callback. So lws gets twice our limit: everything between is answered. */
#define DEFAULT_MAX_HEADERS (8u * 1024u)
#define MAX_MAX_HEADERS (256u * 1024u)

/* --- logging -------------------------------------------------------------------------------- */

/* The server on this thread (one per loop: lws calls lws_emit from inside
 * its service calls, on the loop thread, with no context). */
static _Thread_local chanc_server_t *thread_server;

static void lws_emit(int level, const char *line) {
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    /* A request lws 4.1.6 drops from inside its parser (its header space
     * overflowed, or too many header fragments): the client's fault, not
     * an error of ours; lws logs it at LLL_ERR / LLL_WARN, per request.
     * Counted and logged at info, rate-limited, instead. */
    if (thread_server && (strstr(line, "Ran out of header data space") ||
                          strstr(line, "More hdr frags than we can deal with"))) {
        thread_server->stats.headers_dropped++;
        char what[200];
        snprintf(what, sizeof what, "a request with more than %zu bytes of headers dropped "
                 "unanswered (libwebsockets 4.1.6 cannot answer it): lws: %.*s",
                 2 * thread_server->max_headers, (int)(n > 80 ? 80 : n), line);
        chanc__client_fault(thread_server, &thread_server->log_dropped, what);
        return;
    }
    chanc_log_level_t l = (level & LLL_ERR)      ? CHANC_LOG_ERROR
                          : (level & LLL_WARN)   ? CHANC_LOG_WARN
                          : (level & LLL_NOTICE) ? CHANC_LOG_NOTICE
                          : (level & LLL_INFO)   ? CHANC_LOG_INFO
                                                 : CHANC_LOG_DEBUG;
    chanc_log(l, "lws: %.*s", (int)n, line);
}

/* --- create / shutdown / destroy ---------------------------------------------------------- */

static void free_config(chanc_server_t *s) {
    for (size_t i = 0; i < s->norigins; i++)
        free(s->origins[i]);
    free(s->origins);
    free(s->host);
}

static void start_teardown(chanc_server_t *s, void (*done)(void *ud), void *ud);

/* getaddrinfo for a listening socket on host:port (flags: extra AI_*);
 * 0 with *res set, or a getaddrinfo error (EAI_NONAME when no address). */
static int resolve_listen(const char *host, int port, int flags, struct addrinfo **res) {
    char service[8];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = flags | AI_NUMERICSERV | AI_PASSIVE;
    int gai = getaddrinfo(host, service, &hints, res);
    if (gai == 0 && !*res)
        gai = EAI_NONAME;
    return gai;
}

/* Can host:port be bound? Checked before lws is involved: tearing down a
 * context whose vhost failed to bind crashed libuv (a closed handle's
 * memory reused) when another server was running on the same loop. A
 * host that is not a numeric address is left to lws. 0 or CHANC_EIO. */
static int probe_listen(const char *host, int port, chanc_error_t *err) {
    if (port == 0)
        return 0;
    struct addrinfo *res = NULL;
    if (resolve_listen(host, port, AI_NUMERICHOST, &res) != 0)
        return 0;
    int rc = 0;
    int fd = socket(res->ai_family, SOCK_STREAM, 0);
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one); /* as lws does */
        if (bind(fd, res->ai_addr, res->ai_addrlen) != 0)
            rc = chanc_error_set(err, CHANC_EIO, "cannot listen on %s:%d: %s", host, port,
                                 strerror(errno));
        close(fd);
    }
    freeaddrinfo(res);
    return rc;
}

/* A non-blocking SO_REUSEPORT socket listening on host:port; -1 with err. */
static int listen_shared(const char *host, int port, chanc_error_t *err) {
    struct addrinfo *res = NULL;
    int gai = resolve_listen(host, port, 0, &res);
    if (gai != 0) {
        chanc_error_set(err, CHANC_EIO, "cannot listen on %s:%d: %s", host, port,
                        gai ? gai_strerror(gai) : "no address");
        return -1;
    }
    int one = 1;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
        chanc_error_set(err, CHANC_EIO, "cannot listen on %s:%d (SO_REUSEPORT): %s", host, port,
                        strerror(errno));
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static void on_accept(uv_poll_t *h, int status, int events) {
    chanc_server_t *s = h->data;
    (void)events;
    if (status < 0 || s->shutting_down)
        return;
    for (;;) {
        int fd = accept(s->listen_fd, NULL, NULL);
        if (fd >= 0 && (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0 ||
                        fcntl(fd, F_SETFD, FD_CLOEXEC) != 0)) {
            close(fd);
            continue;
        }
        if (fd < 0) {
            /* EAGAIN: another process took it, or nothing left */
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                errno != ECONNABORTED)
                chanc_log(CHANC_LOG_WARN, "accept: %s", strerror(errno));
            if (errno != EINTR && errno != ECONNABORTED)
                return;
            continue;
        }
        /* lws closes fd itself if it cannot adopt it. */
        if (!lws_adopt_socket_vhost(s->vhost, fd))
            chanc_log(CHANC_LOG_WARN, "libwebsockets could not adopt a connection");
    }
}

static void on_listen_closed(uv_handle_t *h) {
    chanc_server_t *s = h->data;
    close(s->listen_fd);
    s->listen_fd = -1;
    s->listen_live = false;
}

/* Stop accepting (shutdown, destroy): the handle goes on the next loop turn. */
static void close_listener(chanc_server_t *s) {
    if (s->listen_live && !uv_is_closing((uv_handle_t *)&s->listen_poll))
        uv_close((uv_handle_t *)&s->listen_poll, on_listen_closed);
    else if (!s->listen_live && s->listen_fd >= 0) {
        close(s->listen_fd);
        s->listen_fd = -1;
    }
}

/* A server that never started (also start_teardown's `done` after a
 * failed start). */
static void free_server(void *ud) {
    chanc_server_t *s = ud;
    free_config(s);
    free(s);
}

/* The configuration into s: defaults filled in, host and origins copied.
 * 0 or CHANC_ENOMEM (free_config releases what was copied). */
static int copy_config(chanc_server_t *s, const chanc_server_config_t *cfg) {
    s->app = cfg->app;
    s->listen_fd = -1;
    s->host = strdup(cfg->host ? cfg->host : "127.0.0.1");
    s->max_queue = cfg->max_queue ? cfg->max_queue : CHANC_DEFAULT_MAX_QUEUE;
    s->max_body = cfg->max_body ? cfg->max_body : DEFAULT_MAX_BODY;
    s->max_connections = cfg->max_connections ? cfg->max_connections : DEFAULT_MAX_CONNECTIONS;
    s->max_headers = cfg->max_headers ? cfg->max_headers : DEFAULT_MAX_HEADERS;
    if (s->max_headers > MAX_MAX_HEADERS)
        s->max_headers = MAX_MAX_HEADERS;
    s->http = cfg->http;
    s->http_ud = cfg->http_ud;
    bool oom = !s->host;
    for (const char *const *o = cfg->allowed_origins; o && *o && !oom; o++) {
        char **grown = realloc(s->origins, (s->norigins + 1) * sizeof *grown);
        if (!grown || !(grown[s->norigins] = strdup(*o)))
            oom = true;
        if (grown) {
            s->origins = grown;
            if (!oom)
                s->norigins++;
        }
    }
    return oom ? CHANC_ENOMEM : 0;
}

/* Check that host:port can be listened on (lws's own listener), or open
 * the shared SO_REUSEPORT socket (reuse_port). 0 or a negative code, with
 * err saying why. */
static int open_listener(chanc_server_t *s, const chanc_server_config_t *cfg, chanc_error_t *err) {
    if (cfg->reuse_port && cfg->port == 0)
        return chanc_error_set(err, CHANC_EINVAL, "reuse_port needs a fixed port, not 0");
    if (cfg->reuse_port ? (s->listen_fd = listen_shared(s->host, cfg->port, err)) < 0
                        : probe_listen(s->host, cfg->port, err) < 0) {
        chanc_log(CHANC_LOG_ERROR, "%s", err ? err->text : "cannot listen");
        return CHANC_EIO;
    }
    return 0;
}

/* What lws is given: the protocol, the canned headers every response
 * carries, the foreign loop, and the context/vhost options. */
static void describe_lws(chanc_server_t *s, const chanc_server_config_t *cfg,
                         struct lws_context_creation_info *info) {
    s->protocols[0] = (struct lws_protocols){
        .name = "chanc",
        .callback = chanc__server_callback,
        /* Not used; but lws 4.1.6 reports the first step of closing a
         * connection (WS_SERVER_DROP_PROTOCOL) only to one that has
         * per-session data (see ws_lws_closing, server_ws.c). */
        .per_session_data_size = 1,
        .rx_buffer_size = RX_BUFFER_SIZE,
        /* With 0, lws caps each send() at rx_buffer_size, so every frame
         * over 4 KiB went out as a partial write and pushed the frames
         * after it off the direct-write path; this is a cap, not a
         * buffer. */
        .tx_packet_size = TX_PACKET_SIZE,
    };
    s->loop = chanc_app_loop(s->app);
    s->foreign_loops[0] = s->loop;

    s->canned[0] = (struct lws_protocol_vhost_options){
        .next = &s->canned[1], .name = "x-content-type-options:", .value = "nosniff"};
    s->canned[1] = (struct lws_protocol_vhost_options){
        .next = NULL, .name = "referrer-policy:", .value = "same-origin"};

    lws_set_log_level(LLL_ERR | LLL_WARN, lws_emit);

    memset(info, 0, sizeof *info);
    info->options = LWS_SERVER_OPTION_LIBUV;
    if (!strchr(s->host, ':'))
        info->options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    info->foreign_loops = s->foreign_loops;
    info->pcontext = &s->ctx;
    info->iface = s->host;
    info->port = cfg->reuse_port ? CONTEXT_PORT_NO_LISTEN_SERVER : cfg->port;
    info->protocols = s->protocols;
    info->headers = &s->canned[0];
    info->user = s;
    info->server_string = "chanc";
    /* lws's header space: twice max_headers (see DEFAULT_MAX_HEADERS) */
    info->max_http_header_data2 = (unsigned int)(2 * s->max_headers);
    info->vhost_name = "default";
    info->gid = -1;
    info->uid = -1;
    /* The vhost (the listening socket) separately: lws 4.1.6 corrupts
     * memory when lws_create_context itself fails on a foreign loop (e.g.
     * the port is taken); a failed lws_create_vhost leaves a context we can
     * tear down properly. */
    info->options |= LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
}

/* Create the lws context and vhost (the listening socket) and watch the
 * shared socket. 0; or -1 with err set and s gone (freed, or torn down by
 * the loop). */
static int start_lws(chanc_server_t *s, const chanc_server_config_t *cfg,
                     const struct lws_context_creation_info *info, chanc_error_t *err) {
    s->ctx = lws_create_context(info);
    struct lws_vhost *vh = s->ctx ? lws_create_vhost(s->ctx, info) : NULL;
    s->vhost = vh;
    s->port = !vh ? -1 : cfg->reuse_port ? cfg->port : lws_get_vhost_listen_port(vh);
    if (vh && s->listen_fd >= 0) {
        uv_poll_init_socket(s->loop, &s->listen_poll, s->listen_fd);
        s->listen_poll.data = s;
        s->listen_live = true;
        uv_poll_start(&s->listen_poll, UV_READABLE, on_accept);
    }
    if (!s->ctx || s->port <= 0) {
        chanc_error_set(err, CHANC_EIO, "libwebsockets could not listen on %s:%d", s->host,
                        cfg->port);
        if (!s->ctx) {
            close_listener(s);
            free_server(s);
            return -1;
        }
        /* The context has handles on the loop: the loop takes them down
         * (the same steps as a shutdown, without the app) and frees s. */
        s->failed = true;
        start_teardown(s, free_server, s);
        return -1;
    }
    return 0;
}

chanc_server_t *chanc_server_create(const chanc_server_config_t *cfg, chanc_error_t *err) {
    if (!cfg || !cfg->app || cfg->port < 0 || cfg->port > 65535) {
        chanc_error_set(err, CHANC_EINVAL, "chanc_server_create: an app and a port 0-65535 are required");
        return NULL;
    }
    chanc_server_t *s = calloc(1, sizeof *s);
    if (!s) {
        chanc_error_set(err, CHANC_ENOMEM, "out of memory");
        return NULL;
    }
    if (copy_config(s, cfg) < 0) {
        free_server(s);
        chanc_error_set(err, CHANC_ENOMEM, "out of memory");
        return NULL;
    }
    if (open_listener(s, cfg, err) < 0) {
        free_server(s);
        return NULL;
    }
    struct lws_context_creation_info info;
    describe_lws(s, cfg, &info);
    if (start_lws(s, cfg, &info, err) < 0)
        return NULL;
    chanc_log(CHANC_LOG_INFO, "listening on http://%s:%d/", s->host, s->port);
    thread_server = s;
    return s;
}

int chanc_server_port(const chanc_server_t *s) { return s->port; }

void chanc_server_stats(const chanc_server_t *s, chanc_server_stats_t *out) { *out = s->stats; }

static void on_timer_closed(uv_handle_t *h) {
    chanc_server_t *s = h->data;
    s->timer_live = false;
    if (s->done)
        s->done(s->done_ud);
}

static void count_closing(uv_handle_t *h, void *arg) {
    if (uv_is_closing(h))
        ++*(int *)arg;
}

static void on_shutdown_timer(uv_timer_t *timer) {
    chanc_server_t *s = timer->data;
    uint64_t now = uv_now(timer->loop);
    if (!s->ctx_destroy_called) {
        if ((s->open_conns || (!s->failed && !chanc_app_settled(s->app))) && now < s->deadline)
            return;
        if (s->open_conns)
            chanc_log(CHANC_LOG_WARN, "shutdown: %zu WebSocket(s) did not finish closing in time",
                      s->open_conns);
        /* While the loop runs (FACTS.md): lws closes what is left (each
         * reported to the app as 1006) and then its own handles. */
        s->ctx_destroy_called = true;
        s->deadline = now + SHUTDOWN_WAIT_MS;
        lws_context_destroy(s->ctx);
    }
    if (s->ctx) {
        /* lws 4.1 on a foreign loop finishes in steps: each further
         * lws_context_destroy call advances it once the handles it closed
         * are gone (FACTS.md: "call it again"), until it NULLs s->ctx. */
        int closing = 0;
        uv_walk(timer->loop, count_closing, &closing);
        if (!closing && s->destroy_calls < 4) {
            s->destroy_calls++;
            lws_context_destroy(s->ctx);
        }
    }
    if (s->ctx && now < s->deadline)
        return;
    if (s->ctx)
        chanc_log(CHANC_LOG_WARN, "shutdown: libwebsockets did not finish in time");
    uv_timer_stop(timer);
    uv_close((uv_handle_t *)timer, on_timer_closed);
}

void chanc_server_shutdown(chanc_server_t *s, void (*done)(void *ud), void *ud) {
    if (!s || s->shutting_down)
        return;
    for (tconn_t *t = s->conns; t; t = t->next)
        if (t->conn && t->established)
            chanc_conn_close(t->conn, CHANC_CLOSE_GOING_AWAY, "server shutting down");
    start_teardown(s, done, ud);
}

/* The shutdown steps run from a timer on the loop (on_shutdown_timer). */
static void start_teardown(chanc_server_t *s, void (*done)(void *ud), void *ud) {
    s->shutting_down = true;
    close_listener(s);
    s->done = done;
    s->done_ud = ud;
    uv_loop_t *loop = s->loop;
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    s->timer_live = true;
    s->deadline = uv_now(loop) + SHUTDOWN_WAIT_MS;
    uv_timer_start(&s->timer, on_shutdown_timer, 0, SHUTDOWN_POLL_MS);
}

void chanc_server_destroy(chanc_server_t *s) {
    if (!s)
        return;
    uv_loop_t *loop = s->loop;
    if (s->timer_live && !uv_is_closing((uv_handle_t *)&s->timer)) {
        /* Destroyed in the middle of a shutdown: finish it here. */
        uv_timer_stop(&s->timer);
        s->done = NULL;
        uv_close((uv_handle_t *)&s->timer, on_timer_closed);
    }
    if (s->ctx) {
        /* Off the loop (it has stopped): FACTS.md's recipe, destroy, let
         * the loop run out, and once more if lws asked for it. */
        s->shutting_down = true;
        lws_context_destroy(s->ctx);
        for (int i = 0; i < 2 && s->ctx; i++) {
            uv_run(loop, UV_RUN_DEFAULT);
            if (s->ctx)
                lws_context_destroy(s->ctx);
        }
    }
    close_listener(s);
    bool flushing = s->flush_live;
    chanc__flush_dispose(s);
    if (s->timer_live || s->listen_live || flushing)
        uv_run(loop, UV_RUN_NOWAIT);
    while (s->conns) {
        tconn_t *t = s->conns;
        chanc__report_closed(t, 1006);
        t->wsi = NULL;
        chanc__tconn_unlink(t);
        if (!t->late_close)
            chanc__tconn_release(t);
    }
    if (thread_server == s)
        thread_server = NULL;
    free_config(s);
    free(s);
}
