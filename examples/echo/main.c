/* chanc-echo: the echo consumer (echo.c) served over WebSocket.
 *
 *   chanc-echo [--host ADDRESS] [--port N]
 *
 * Listens on 127.0.0.1:8000 by default (--port 0: a free port, printed),
 * until SIGINT or SIGTERM, then closes every connection with 1001 and
 * exits. Try it with any WebSocket client, e.g.
 *
 *   websocat ws://127.0.0.1:8000/ws/echo/
 *   {"action":"echo","payload":"hello"}
 *
 * The program is the part every chanc server has: a libuv loop, an app on
 * it with its routes, a chanc_server listening for the app, and a graceful
 * shutdown on a signal. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <chanc.h>
#include <chanc/server.h>

#include "echo.h"

typedef struct echo_server {
    uv_loop_t loop;
    uv_signal_t sigint, sigterm;
    chanc_app_t *app;
    chanc_server_t *server;
} echo_server_t;

/* The server has closed every connection and let go of the loop: release
 * the app; uv_run returns once nothing is left on the loop. */
static void shutdown_done(void *ud) {
    echo_server_t *s = ud;
    chanc_app_destroy(s->app);
    s->app = NULL;
}

static void on_signal(uv_signal_t *h, int signum) {
    echo_server_t *s = h->data;
    (void)signum;
    uv_close((uv_handle_t *)&s->sigint, NULL);
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    chanc_server_shutdown(s->server, shutdown_done, s);
}

/* Serve until a signal: the exit status. */
static int serve(const char *host, int port) {
    echo_server_t s = {0};
    chanc_error_t err = {0};
    if (uv_loop_init(&s.loop) != 0)
        return 1;
    s.app = chanc_app_create(&(chanc_app_config_t){.loop = &s.loop}, &err);
    if (s.app && echo_route(s.app) == 0)
        s.server = chanc_server_create(
            &(chanc_server_config_t){.app = s.app, .host = host, .port = port}, &err);
    if (!s.server) {
        fprintf(stderr, "chanc-echo: %s\n", err.text[0] ? err.text : "out of memory");
        chanc_app_destroy(s.app);
        uv_run(&s.loop, UV_RUN_DEFAULT); /* lets the app's handles close */
        uv_loop_close(&s.loop);
        return 1;
    }
    uv_signal_init(&s.loop, &s.sigint);
    uv_signal_init(&s.loop, &s.sigterm);
    s.sigint.data = s.sigterm.data = &s;
    uv_signal_start(&s.sigint, on_signal, SIGINT);
    uv_signal_start(&s.sigterm, on_signal, SIGTERM);
    printf("listening on ws://%s:%d/ws/echo/\n", host, chanc_server_port(s.server));
    fflush(stdout);

    uv_run(&s.loop, UV_RUN_DEFAULT); /* until the shutdown is done */
    chanc_server_destroy(s.server);
    uv_loop_close(&s.loop);
    return 0;
}

static void usage(FILE *f) { fprintf(f, "usage: chanc-echo [--host ADDRESS] [--port N]\n"); }

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    long port = 8000;
    for (int i = 1; i < argc; i += 2) { /* a flag and its value */
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (value && !strcmp(argv[i], "--host")) {
            host = value;
        } else if (value && !strcmp(argv[i], "--port")) {
            port = strtol(value, &end, 10);
            if (end == value || *end || port < 0 || port > 65535) {
                fprintf(stderr, "chanc-echo: --port: 0 to 65535, not %s\n", value);
                return 2;
            }
        } else {
            usage(stderr);
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN); /* a client gone mid-write: an error return, not a signal */
    return serve(host, (int)port);
}
