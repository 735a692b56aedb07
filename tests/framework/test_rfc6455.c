/* framework.rfc6455 and framework.rfc6455.live: RFC 6455 at the transport,
 * from raw bytes on a loopback socket. One table run twice: against a
 * chanc_server in this process (a server thread, the echo demo consumer;
 * labels unit and memcheck) and against a chat-server process (argument
 * "live", a member of the General room; label integration).
 *
 * Each row sends a handshake or frames that break the protocol and checks
 * the answer: the HTTP status (426 carries Sec-WebSocket-Version: 13), or
 * the close frame's code (1002 or 1007) and then that the server closes
 * the TCP connection, promptly, once the client has answered the close (as
 * a client does). Frame rows run two ways: sent after the handshake's
 * answer, and sent in the same write as the handshake (libwebsockets then
 * parses them from its own buffer, a different path). Around every row a
 * bystander on the same server must stay connected, see nothing it should
 * not, and get its next answer.
 *
 * `test_framework_rfc6455 --table` prints the table as Markdown (docs/protocol.md). */
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <uv.h>

#include "chanc/server.h"
#include "chanc/ws_client.h"
#include "server_proc.h"
#include "test_common.h"

#define T_MS 10000 /* generous: valgrind is slow; only bounds a hang */
/* After the close frames have crossed, the server closes the TCP
 * connection at once; libwebsockets' own fallback is to give up waiting
 * after 5 s, which must not be what ends a row. */
#define EOF_MS 4000

/* ---- the server: in this process or chat-server ------------------------------------ */

typedef struct driver {
    bool live;
    int port;
    const char *path;       /* the WebSocket route */
    char cookie[200];       /* live: the rows' user (testuser) */
    const char *valid_text; /* a frame the consumer answers */
    const char *answer;     /* the action of that answer */
    /* in process: the server thread */
    uv_thread_t thread;
    uv_sem_t ready;
    uv_loop_t loop;
    uv_async_t async;
    chanc_app_t *app;
    chanc_server_t *server;
    bool failed;
    /* live */
    server_proc_t proc;
} driver_t;

static driver_t drv;

static void on_shutdown_done(void *ud) {
    driver_t *d = ud;
    uv_close((uv_handle_t *)&d->async, NULL);
    chanc_app_destroy(d->app);
    d->app = NULL;
}

static void on_async(uv_async_t *a) {
    driver_t *d = a->data;
    chanc_server_shutdown(d->server, on_shutdown_done, d);
}

static void server_thread(void *arg) {
    driver_t *d = arg;
    uv_loop_init(&d->loop);
    chanc_error_t err;
    d->app = chanc_app_create(&(chanc_app_config_t){.loop = &d->loop}, &err);
    chanc_test_t fake = {.app = d->app};
    if (!d->app || demo_setup(&fake, NULL) != 0 ||
        !(d->server = chanc_server_create(&(chanc_server_config_t){.app = d->app, .port = 0}, &err))) {
        fprintf(stderr, "server thread: %s\n", err.text);
        d->failed = true;
        chanc_app_destroy(d->app);
        uv_run(&d->loop, UV_RUN_DEFAULT);
        uv_loop_close(&d->loop);
        uv_sem_post(&d->ready);
        return;
    }
    d->port = chanc_server_port(d->server);
    uv_async_init(&d->loop, &d->async, on_async);
    d->async.data = d;
    uv_sem_post(&d->ready);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    chanc_server_destroy(d->server);
    if (uv_loop_close(&d->loop) != 0) {
        fprintf(stderr, "server thread: libuv handles left open\n");
        d->failed = true;
    }
}

static int group_setup(void **state) {
    (void)state;
    if (drv.live) {
        if (server_proc_init(&drv.proc, "rfc6455") < 0 ||
            server_proc_start(&drv.proc, "min", NULL) < 0)
            return -1;
        drv.port = drv.proc.port;
        drv.path = "/ws/chat/1/"; /* General: testuser and alice are members */
        server_proc_login(&drv.proc, "testuser", "testpass123", drv.cookie, sizeof drv.cookie,
                          T_MS);
        drv.valid_text = "{\"action\":\"ping\"}";
        drv.answer = "pong";
        return 0;
    }
    drv.path = "/ws/echo/";
    drv.valid_text = "{\"action\":\"echo\",\"payload\":\"x\"}";
    drv.answer = "echo";
    uv_sem_init(&drv.ready, 0);
    uv_thread_create(&drv.thread, server_thread, &drv);
    uv_sem_wait(&drv.ready);
    return drv.failed ? -1 : 0;
}

static int group_teardown(void **state) {
    (void)state;
    if (drv.live) {
        int status = server_proc_stop(&drv.proc, SIGTERM);
        server_proc_dispose(&drv.proc);
        return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
    }
    if (!drv.failed)
        uv_async_send(&drv.async);
    uv_thread_join(&drv.thread);
    uv_sem_destroy(&drv.ready);
    return drv.failed ? -1 : 0;
}

/* ---- building frames --------------------------------------------------------------- */

typedef struct bytes {
    unsigned char b[1024];
    size_t n;
} bytes_t;

static const unsigned char KEY[4] = {0x37, 0xFA, 0x21, 0x3D}; /* RFC 6455 §5.7's */

/* One frame: first byte b0 (FIN, RSV, opcode), the payload masked with
 * KEY unless unmasked; the length in the shortest form, or in 16 bits
 * when len16. */
static void frame(bytes_t *o, unsigned char b0, const void *payload, size_t len, bool unmasked,
                  bool len16) {
    unsigned char m = unmasked ? 0 : 0x80;
    o->b[o->n++] = b0;
    if (len < 126 && !len16) {
        o->b[o->n++] = (unsigned char)(m | len);
    } else {
        o->b[o->n++] = m | 126;
        o->b[o->n++] = (unsigned char)(len >> 8);
        o->b[o->n++] = (unsigned char)len;
    }
    if (!unmasked) {
        memcpy(o->b + o->n, KEY, 4);
        o->n += 4;
    }
    const unsigned char *p = payload;
    for (size_t i = 0; i < len; i++)
        o->b[o->n++] = unmasked ? p[i] : p[i] ^ KEY[i & 3];
}

static void text_frame(bytes_t *o, unsigned char b0, const char *s) {
    frame(o, b0, s, strlen(s), false, false);
}

static void close_frame(bytes_t *o, int code, const void *reason, size_t rlen) {
    unsigned char p[125] = {(unsigned char)(code >> 8), (unsigned char)code};
    memcpy(p + 2, reason, rlen);
    frame(o, 0x88, p, 2 + rlen, false, false);
}

/* Each make builds the row's variant v (false: no such variant). */
static bool mk_unmasked(bytes_t *o, int v) {
    if (v > 0)
        return false;
    frame(o, 0x81, drv.valid_text, strlen(drv.valid_text), true, false);
    return true;
}
static bool mk_opcode_data(bytes_t *o, int v) {
    static const unsigned char op[] = {0x3, 0x7};
    if (v >= 2)
        return false;
    frame(o, 0x80 | op[v], "x", 1, false, false);
    return true;
}
static bool mk_opcode_control(bytes_t *o, int v) {
    static const unsigned char op[] = {0xB, 0xF};
    if (v >= 2)
        return false;
    frame(o, 0x80 | op[v], "x", 1, false, false);
    return true;
}
static bool mk_rsv(bytes_t *o, int v) {
    static const unsigned char rsv[] = {0x40, 0x20, 0x10};
    if (v >= 3)
        return false;
    text_frame(o, 0x81 | rsv[v], drv.valid_text);
    return true;
}
static bool mk_fragmented_ping(bytes_t *o, int v) {
    if (v > 0)
        return false;
    frame(o, 0x09, "x", 1, false, false);
    frame(o, 0x80, "y", 1, false, false);
    return true;
}
static bool mk_big_control(bytes_t *o, int v) {
    unsigned char p[126];
    memset(p, 'x', sizeof p);
    p[0] = 0x03, p[1] = 0xE8; /* the close: 1000 */
    switch (v) {
    case 0: frame(o, 0x89, p, 126, false, false); return true; /* ping, 126 bytes */
    case 1: frame(o, 0x88, p, 126, false, false); return true; /* close, 126 bytes */
    case 2: frame(o, 0x8A, p, 3, false, true); return true;    /* pong, 16-bit length 3 */
    default: return false;
    }
}
static bool mk_lone_continuation(bytes_t *o, int v) {
    if (v > 0)
        return false;
    text_frame(o, 0x80, drv.valid_text);
    return true;
}
static bool mk_nested_message(bytes_t *o, int v) {
    if (v > 0)
        return false;
    text_frame(o, 0x01, "{\"action\":");
    text_frame(o, 0x81, drv.valid_text);
    return true;
}
static bool mk_close_1_byte(bytes_t *o, int v) {
    if (v > 0)
        return false;
    frame(o, 0x88, "\x03", 1, false, false);
    return true;
}
static bool mk_close_reserved(bytes_t *o, int v) {
    static const int codes[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 2999};
    if (v >= (int)(sizeof codes / sizeof codes[0]))
        return false;
    close_frame(o, codes[v], "", 0);
    return true;
}
static bool mk_close_undefined(bytes_t *o, int v) {
    static const int codes[] = {5000, 65535};
    if (v >= 2)
        return false;
    close_frame(o, codes[v], "", 0);
    return true;
}
static bool mk_close_bad_reason(bytes_t *o, int v) {
    static const char *reasons[] = {"\xC3\x28", "\xED\xA0\x80" /* a surrogate */};
    if (v >= 2)
        return false;
    close_frame(o, 1000, reasons[v], strlen(reasons[v]));
    return true;
}
static bool mk_bad_utf8_text(bytes_t *o, int v) {
    if (v > 0)
        return false;
    text_frame(o, 0x81, "{\"action\":\"echo\",\"payload\":\"\xC3\x28\"}");
    return true;
}
static bool mk_close_ok(bytes_t *o, int v) {
    static const int codes[] = {1000, 4999};
    if (v >= 2)
        return false;
    close_frame(o, codes[v], "bye", 3);
    return true;
}
static bool mk_ping_between_fragments(bytes_t *o, int v) {
    if (v > 0)
        return false;
    size_t half = strlen(drv.valid_text) / 2;
    frame(o, 0x01, drv.valid_text, half, false, false);
    frame(o, 0x89, "p", 1, false, false);
    frame(o, 0x80, drv.valid_text + half, strlen(drv.valid_text) - half, false, false);
    return true;
}

/* ---- the table --------------------------------------------------------------------- */

typedef enum { HANDSHAKE, FRAMES, BYSTANDER } kind_t;
typedef enum { CLOSES, ANSWERED, PONG_THEN_ANSWERED } outcome_t;

typedef struct row {
    const char *input;  /* for the table */
    const char *bytes;  /* for the table: what goes on the wire */
    const char *answer; /* for the table: the documented answer */
    const char *before; /* for the table: libwebsockets 4.1.6 on its own */
    kind_t kind;
    /* HANDSHAKE */
    const char *version; /* Sec-WebSocket-Version; NULL: none */
    int status;
    /* FRAMES */
    bool (*make)(bytes_t *o, int variant);
    outcome_t outcome;
    int close; /* CLOSES: the code of the server's close frame */
} row_t;

#define WITH_HS "in the handshake's packet: the TCP connection dropped without a close frame"

static const row_t rows[] = {
    {.input = "a handshake for version 99", .bytes = "`Sec-WebSocket-Version: 99`",
     .answer = "HTTP 426 with `Sec-WebSocket-Version: 13`, then the TCP close (§4.2.2)",
     .before = "101 Switching Protocols", .kind = HANDSHAKE, .version = "99", .status = 426},
    {.input = "a handshake for version 8 (a draft)", .bytes = "`Sec-WebSocket-Version: 8`",
     .answer = "HTTP 426 with `Sec-WebSocket-Version: 13`", .before = "101 Switching Protocols",
     .kind = HANDSHAKE, .version = "8", .status = 426},
    {.input = "a handshake without `Sec-WebSocket-Version`", .bytes = "(no such header)",
     .answer = "HTTP 400 (§4.2.1: the header is required)", .before = "101 Switching Protocols",
     .kind = HANDSHAKE, .version = NULL, .status = 400},
    {.input = "an unmasked client frame (a valid text frame)",
     .bytes = "`81` + length + the JSON, no mask bit, no key",
     .answer = "**not conformant: processed like a masked one**, the connection stays open "
               "(§5.1 wants 1002; libwebsockets 4.1.6 does not check the mask bit and offers "
               "no hook: see below)",
     .before = "the same", .kind = FRAMES, .make = mk_unmasked, .outcome = ANSWERED},
    {.input = "a reserved data opcode (0x3, 0x7)", .bytes = "`83 81` / `87 81` + mask + `x`",
     .answer = "close 1002, then the TCP close (§5.2)",
     .before = "1002 on its own; " WITH_HS, .kind = FRAMES, .make = mk_opcode_data, .outcome = CLOSES, .close = 1002},
    {.input = "a reserved control opcode (0xB, 0xF)", .bytes = "`8B 81` / `8F 81` + mask + `x`",
     .answer = "close 1002", .before = "the same as above", .kind = FRAMES,
     .make = mk_opcode_control, .outcome = CLOSES, .close = 1002},
    {.input = "RSV1, RSV2 or RSV3 set (no extension negotiated)",
     .bytes = "`C1` / `A1` / `91` + a text frame", .answer = "close 1002 (§5.2)",
     .before = "1002, then the TCP connection open 5 s more (lws reads the client's answering "
               "close as part of the bad frame); in the handshake's packet: the same, or dropped "
               "without a close frame",
     .kind = FRAMES, .make = mk_rsv, .outcome = CLOSES,
     .close = 1002},
    {.input = "a fragmented ping", .bytes = "`09 81` + mask + `x`, then `80 81` + mask + `y`",
     .answer = "close 1002 (§5.4: control frames are not fragmented)",
     .before = "the same as above", .kind = FRAMES, .make = mk_fragmented_ping, .outcome = CLOSES,
     .close = 1002},
    {.input = "an oversized control frame: a ping or a close of 126 bytes, a pong whose length "
              "takes the 16-bit form",
     .bytes = "`89 FE 00 7E` / `88 FE 00 7E` + mask + 126 bytes; `8A FE 00 03` + mask + 3 bytes",
     .answer = "close 1002 (§5.5: at most 125 bytes, 7-bit length)",
     .before = "the TCP connection dropped without a close frame, either way", .kind = FRAMES,
     .make = mk_big_control, .outcome = CLOSES, .close = 1002},
    {.input = "a continuation frame without a start", .bytes = "`80` + length + mask + the JSON",
     .answer = "close 1002 (§5.4)", .before = "1002 on its own; " WITH_HS,
     .kind = FRAMES, .make = mk_lone_continuation, .outcome = CLOSES, .close = 1002},
    {.input = "a new text frame while a fragmented message is open",
     .bytes = "`01` + `{\"action\":`, then `81` + a whole message",
     .answer = "close 1002 (§5.4)", .before = "the same as above", .kind = FRAMES,
     .make = mk_nested_message, .outcome = CLOSES, .close = 1002},
    {.input = "a close frame with a 1-byte payload", .bytes = "`88 81` + mask + `03`",
     .answer = "close 1002, then the TCP close (§5.5.1)",
     .before = "the byte echoed back (`88 01 03`, itself an invalid close frame)",
     .kind = FRAMES, .make = mk_close_1_byte, .outcome = CLOSES, .close = 1002},
    {.input = "a close code no endpoint may send: 0, 999, 1004, 1005, 1006, 1015, 1016, 2999",
     .bytes = "`88 82` + mask + the code", .answer = "close 1002 (§7.4)",
     .before = "the same (libwebsockets rewrites these codes to 1002)", .kind = FRAMES,
     .make = mk_close_reserved, .outcome = CLOSES, .close = 1002},
    {.input = "an undefined close code: 5000, 65535", .bytes = "`88 82` + mask + the code",
     .answer = "close 1002 (§7.4.2)", .before = "the code echoed back", .kind = FRAMES,
     .make = mk_close_undefined, .outcome = CLOSES, .close = 1002},
    {.input = "a close reason that is not UTF-8 (`C3 28`; a surrogate `ED A0 80`)",
     .bytes = "`88 84` / `88 85` + mask + `03 E8` + the reason", .answer = "close 1007 (§5.5.1)",
     .before = "echoed back as 1000 with the same reason", .kind = FRAMES,
     .make = mk_close_bad_reason, .outcome = CLOSES, .close = 1007},
    {.input = "invalid UTF-8 in a text message", .bytes = "`81` + a JSON text with `C3 28`",
     .answer = "close 1007 `invalid UTF-8` (§8.1; checked by chanc)", .before = "the same",
     .kind = FRAMES, .make = mk_bad_utf8_text, .outcome = CLOSES, .close = 1007},
    {.input = "a valid close (1000, 4999 with a reason)", .bytes = "`88 85` + mask + code + `bye`",
     .answer = "the close echoed, then the TCP close", .before = "the same", .kind = FRAMES,
     .make = mk_close_ok, .outcome = CLOSES, .close = -1 /* its own code */},
    {.input = "a ping between the fragments of a text message",
     .bytes = "`01` + half, `89 81` + mask + `p`, `80` + the rest",
     .answer = "pong, then the message is answered; stays open (§5.4)", .before = "the same",
     .kind = FRAMES, .make = mk_ping_between_fragments, .outcome = PONG_THEN_ANSWERED},
    {.input = "another client on the same server, through every row above",
     .bytes = "valid frames", .answer = "answered after every row; never closed, sees nothing "
                                        "of the others",
     .before = "the same", .kind = BYSTANDER},
};
#define NROWS (sizeof rows / sizeof rows[0])

/* ---- running a row ------------------------------------------------------------------ */

static chanc_ws_client_t *open_client(const void *early, size_t early_len) {
    char cookie[220];
    snprintf(cookie, sizeof cookie, "Cookie: %s", drv.cookie);
    const char *headers[] = {drv.live ? cookie : NULL, NULL};
    chanc_ws_client_options_t o = {
        .headers = headers, .timeout_ms = T_MS, .early = early, .early_len = early_len};
    int status = 0;
    chanc_ws_client_t *c = chanc_ws_client_connect(drv.port, drv.path, &o, &status);
    if (!c)
        fail_msg("handshake answered %d, not 101", status);
    return c;
}

static void run_handshake(const row_t *r) {
    char req[512];
    char version[64] = "";
    if (r->version)
        snprintf(version, sizeof version, "Sec-WebSocket-Version: %s\r\n", r->version);
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "%sCookie: %s\r\n\r\n",
                     drv.path, drv.port, version, drv.cookie);
    chanc_http_client_response_t resp;
    assert_int_equal(chanc_http_client_exchange(drv.port, req, (size_t)n, false, &resp, T_MS), 0);
    assert_int_equal(resp.status, r->status);
    char v[16];
    if (r->status == 426) {
        assert_non_null(chanc_http_client_header(&resp, "Sec-WebSocket-Version", v, sizeof v));
        assert_string_equal(v, "13");
    }
    assert_null(chanc_http_client_header(&resp, "Sec-WebSocket-Accept", v, sizeof v));
    assert_true(resp.closed);
    chanc_http_client_response_dispose(&resp);
}

/* The server's close frame (data frames before it dropped), our answer
 * (unless the row's bytes were our close), then the TCP close. */
static void expect_close(chanc_ws_client_t *c, int code) {
    int got = chanc_ws_client_wait_close(c, T_MS, NULL);
    if (got != code)
        fail_msg("close code %d (reason \"%s\"), expected %d", got, chanc_ws_client_close_reason(c),
                 code);
    if (chanc_ws_client_wait_eof(c, EOF_MS) != 0)
        fail_msg("the TCP connection is still open %d ms after the close", EOF_MS);
}

static void run_frames(const row_t *r, int variant, bool with_handshake) {
    bytes_t b = {.n = 0};
    r->make(&b, variant);
    chanc_ws_client_t *c = open_client(with_handshake ? b.b : NULL, with_handshake ? b.n : 0);
    if (!with_handshake) {
        json_t *auth = chanc_ws_client_receive_action(c, "authentication", T_MS);
        assert_non_null(auth);
        json_decref(auth);
        assert_int_equal(chanc_ws_client_send_raw(c, b.b, b.n), 0);
    }
    switch (r->outcome) {
    case CLOSES: {
        int code = r->close;
        if (code < 0) /* a valid close (88 85 key code "bye"): echoed */
            code = (b.b[6] ^ KEY[0]) << 8 | (b.b[7] ^ KEY[1]);
        expect_close(c, code);
        break;
    }
    case ANSWERED:
    case PONG_THEN_ANSWERED: {
        /* The answer, and the pong when the row pinged (in either order:
         * lws sends the pong when it can write, the app answers at once). */
        bool answered = false, ponged = r->outcome != PONG_THEN_ANSWERED;
        while (!answered || !ponged) {
            chanc_ws_frame_t f;
            if (chanc_ws_client_receive_frame(c, &f, T_MS) < 0)
                fail_msg("no %s%s", answered ? "" : "answer", ponged ? "" : " / pong");
            if (f.opcode == CHANC_WS_OP_CLOSE)
                fail_msg("closed %d (%s)", f.close_code, f.close_reason);
            if (f.opcode == CHANC_WS_OP_PONG) {
                assert_int_equal(f.len, 1);
                assert_int_equal(f.data[0], 'p');
                ponged = true;
            } else if (f.opcode == CHANC_WS_OP_TEXT) {
                json_t *v = json_loadb((const char *)f.data, f.len, 0, NULL);
                const char *a = json_string_value(json_object_get(v, "action"));
                answered |= a && strcmp(a, drv.answer) == 0;
                json_decref(v);
            }
            chanc_ws_frame_dispose(&f);
        }
        assert_int_equal(chanc_ws_client_close(c, 1000, T_MS), 1000);
        assert_int_equal(chanc_ws_client_wait_eof(c, EOF_MS), 0);
        break;
    }
    }
    chanc_ws_client_free(c);
}

/* ---- the bystander ----------------------------------------------------------------- */

static chanc_ws_client_t *bystander;
static bool bystander_closed; /* seen closed by a check */

static chanc_ws_client_t *bystander_open(void) {
    char cookie[220] = "";
    if (drv.live) {
        char alice[200];
        server_proc_login(&drv.proc, "alice", "alice-pass-1", alice, sizeof alice, T_MS);
        snprintf(cookie, sizeof cookie, "Cookie: %s", alice);
    }
    const char *headers[] = {drv.live ? cookie : NULL, NULL};
    chanc_ws_client_options_t o = {.headers = headers, .timeout_ms = T_MS};
    int status = 0;
    chanc_ws_client_t *b = chanc_ws_client_connect(drv.port, drv.path, &o, &status);
    json_t *first =
        b ? chanc_ws_client_receive_action(b, drv.live ? "history" : "authentication", T_MS) : NULL;
    if (!first) {
        fprintf(stderr, "the bystander could not connect (%d)\n", status);
        chanc_ws_client_free(b);
        return NULL;
    }
    json_decref(first);
    return b;
}

/* Still open; its next frame answered; before the answer nothing but
 * what a room shows of others coming and going (live) or nothing at all
 * (the echo consumer). */
static void bystander_check(chanc_ws_client_t *b, int round) {
    char msg[64], frame_text[128];
    snprintf(msg, sizeof msg, "bystander still here %d", round);
    snprintf(frame_text, sizeof frame_text, "{\"action\":\"%s\",\"payload\":\"%s\"}",
             drv.live ? "chat" : "echo", msg);
    assert_int_equal(chanc_ws_client_send_text(b, frame_text), 0);
    for (;;) {
        json_t *v = chanc_ws_client_receive_json(b, true, T_MS);
        if (!v) {
            bystander_closed |= chanc_ws_client_closed(b) || chanc_ws_client_eof(b);
            fail_msg("bystander: no answer (closed: %d, code %d)", chanc_ws_client_closed(b),
                     chanc_ws_client_close_code(b));
        }
        const char *a = json_string_value(json_object_get(v, "action"));
        const char *p = json_string_value(json_object_get(v, "payload"));
        bool mine = a && p && strcmp(a, drv.live ? "chat" : "echo") == 0 && strcmp(p, msg) == 0;
        bool presence = drv.live && a &&
                        (strcmp(a, "user_joined") == 0 || strcmp(a, "user_left") == 0);
        if (!mine && !presence) {
            char *s = json_dumps(v, JSON_COMPACT);
            json_decref(v);
            fail_msg("bystander got %s", s);
        }
        json_decref(v);
        if (mine)
            return;
    }
}

/* ---- the tests: one per row -------------------------------------------------------- */

static void test_row(void **state) {
    const row_t *r = *state;
    int round = (int)(r - rows) + 1;
    if (r->kind == HANDSHAKE) {
        run_handshake(r);
    } else if (r->kind == FRAMES) {
        bytes_t probe;
        int n = 0;
        for (int v = 0; probe.n = 0, r->make(&probe, v); v++)
            for (int way = 0; way < 2; way++) {
                print_message("  variant %d, %s\n", v + 1,
                              way ? "in the handshake's packet" : "after the handshake's answer");
                run_frames(r, v, way == 1);
                bystander_check(bystander, round);
                n++;
            }
    } else { /* BYSTANDER: it has been checked after every row */
        assert_false(bystander_closed);
        assert_false(chanc_ws_client_closed(bystander));
        assert_int_equal(chanc_ws_client_close(bystander, 1000, T_MS), 1000);
        assert_int_equal(chanc_ws_client_wait_eof(bystander, EOF_MS), 0);
        return;
    }
    bystander_check(bystander, round);
}

static int with_bystander(void **state) {
    if (group_setup(state) < 0)
        return -1;
    bystander = bystander_open();
    return bystander ? 0 : -1;
}

static int without_bystander(void **state) {
    chanc_ws_client_free(bystander);
    bystander = NULL;
    return group_teardown(state);
}

static void print_table(void) {
    printf("| # | sent | bytes | answer | libwebsockets 4.1.6 alone |\n|---|---|---|---|---|\n");
    for (size_t i = 0; i < NROWS; i++)
        printf("| %zu | %s | %s | %s | %s |\n", i + 1, rows[i].input, rows[i].bytes, rows[i].answer,
               rows[i].before);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--table") == 0) {
        print_table();
        return 0;
    }
    drv.live = argc > 1 && strcmp(argv[1], "live") == 0;
    /* One test per row, named after its number (CHANC_TEST=row_05 runs one). */
    static char names[NROWS][16];
    struct CMUnitTest tests[NROWS];
    for (size_t i = 0; i < NROWS; i++) {
        snprintf(names[i], sizeof names[i], "row_%02zu", i + 1);
        tests[i] = (struct CMUnitTest){.name = names[i], .test_func = test_row,
                                       .initial_state = (void *)&rows[i]};
    }
    return chanc_run_group_tests_name(drv.live ? "framework.rfc6455.live" : "framework.rfc6455",
                                       tests, with_bystander, without_bystander);
}
