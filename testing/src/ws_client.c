/* The blocking test client of chanc/ws_client.h: sockets, poll(), RFC 6455
 * framing, and a SHA-1 to check the server's Sec-WebSocket-Accept. */
#include <chanc/ws_client.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct chanc_ws_client {
    int fd;
    unsigned char *buf; /* bytes read, not yet consumed: [off, len) */
    size_t off, len, cap;
    bool closed;     /* the server's close frame came */
    bool sent_close; /* ours went out: never echo theirs */
    bool eof;        /* the server closed the TCP connection (or it broke) */
    int close_code;
    char close_reason[128];
    uint32_t mask_seed;
    bool ignore_pings;
    size_t pings;
};

/* --- time and raw I/O ------------------------------------------------------- */

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int connect_loopback(int port, int rcvbuf) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const void *data, size_t len, int timeout_ms) {
    const unsigned char *p = data;
    int64_t deadline = now_ms() + timeout_ms;
    while (len) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int left = (int)(deadline - now_ms());
            struct pollfd pfd = {fd, POLLOUT, 0};
            if (left <= 0 || poll(&pfd, 1, left) <= 0)
                return -1;
            continue;
        }
        return -1;
    }
    return 0;
}

/* Read more bytes into the buffer; 0, -1 on timeout, -2 on EOF or error. */
static int fill(int fd, unsigned char **buf, size_t *off, size_t *len, size_t *cap,
                int64_t deadline) {
    if (*off && *off == *len)
        *off = *len = 0;
    if (*len == *cap) {
        if (*off) {
            memmove(*buf, *buf + *off, *len - *off);
            *len -= *off;
            *off = 0;
        } else {
            size_t ncap = *cap ? *cap * 2 : 16384;
            unsigned char *nb = realloc(*buf, ncap + 1);
            if (!nb)
                return -1;
            *buf = nb;
            *cap = ncap;
        }
    }
    for (;;) {
        int left = (int)(deadline - now_ms());
        struct pollfd pfd = {fd, POLLIN, 0};
        if (left <= 0)
            return -1;
        int pr = poll(&pfd, 1, left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr == 0)
            return -1;
        if (pr < 0)
            return -2;
        ssize_t n = recv(fd, *buf + *len, *cap - *len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -2;
        *len += (size_t)n;
        return 0;
    }
}

static int need(chanc_ws_client_t *c, size_t n, int64_t deadline) {
    while (c->len - c->off < n) {
        int rc = fill(c->fd, &c->buf, &c->off, &c->len, &c->cap, deadline);
        if (rc == -2)
            c->eof = true;
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* --- SHA-1 and base64 (for Sec-WebSocket-Accept) ---------------------------------- */

static uint32_t rol(uint32_t v, int n) { return (v << n) | (v >> (32 - n)); }

static void sha1(const unsigned char *msg, size_t len, unsigned char out[20]) {
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    size_t total = ((len + 8) / 64 + 1) * 64;
    unsigned char *m = calloc(1, total);
    if (!m) {
        memset(out, 0, 20);
        return;
    }
    memcpy(m, msg, len);
    m[len] = 0x80;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++)
        m[total - 1 - i] = (unsigned char)(bits >> (8 * i));
    for (size_t blk = 0; blk < total; blk += 64) {
        uint32_t w[80];
        for (int i = 0; i < 16; i++)
            w[i] = (uint32_t)m[blk + 4 * i] << 24 | (uint32_t)m[blk + 4 * i + 1] << 16 |
                   (uint32_t)m[blk + 4 * i + 2] << 8 | m[blk + 4 * i + 3];
        for (int i = 16; i < 80; i++)
            w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
        uint32_t a = h[0], b = h[1], cc = h[2], d = h[3], e = h[4];
        for (int i = 0; i < 80; i++) {
            uint32_t f, k;
            if (i < 20) { f = (b & cc) | (~b & d); k = 0x5A827999; }
            else if (i < 40) { f = b ^ cc ^ d; k = 0x6ED9EBA1; }
            else if (i < 60) { f = (b & cc) | (b & d) | (cc & d); k = 0x8F1BBCDC; }
            else { f = b ^ cc ^ d; k = 0xCA62C1D6; }
            uint32_t tmp = rol(a, 5) + f + e + k + w[i];
            e = d;
            d = cc;
            cc = rol(b, 30);
            b = a;
            a = tmp;
        }
        h[0] += a; h[1] += b; h[2] += cc; h[3] += d; h[4] += e;
    }
    free(m);
    for (int i = 0; i < 5; i++)
        for (int k = 0; k < 4; k++)
            out[4 * i + k] = (unsigned char)(h[i] >> (24 - 8 * k));
}

static void base64(const unsigned char *in, size_t len, char *out) {
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0) |
                     (i + 2 < len ? in[i + 2] : 0);
        out[o++] = tbl[(v >> 18) & 63];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = i + 1 < len ? tbl[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? tbl[v & 63] : '=';
    }
    out[o] = '\0';
}

/* --- HTTP response parsing ---------------------------------------------------------- */

static const char *find_header(const char *head, const char *name, size_t *vlen,
                               const char **after) {
    size_t nl = strlen(name);
    const char *line = strstr(head, "\r\n");
    while (line && line[2] != '\r' && line[2] != '\0') {
        line += 2;
        const char *eol = strstr(line, "\r\n");
        if (!eol)
            break;
        if ((size_t)(eol - line) > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            *vlen = (size_t)(eol - v);
            if (after)
                *after = eol;
            return v;
        }
        line = eol;
    }
    return NULL;
}

const char *chanc_http_client_header(const chanc_http_client_response_t *r, const char *name,
                                     char *out, size_t outlen) {
    size_t vlen;
    const char *v = r->head ? find_header(r->head, name, &vlen, NULL) : NULL;
    if (!v || !outlen)
        return NULL;
    snprintf(out, outlen, "%.*s", (int)vlen, v);
    return out;
}

int chanc_http_client_header_count(const chanc_http_client_response_t *r, const char *name) {
    int n = 0;
    size_t vlen;
    const char *after = NULL;
    const char *from = r->head;
    while (from && find_header(from, name, &vlen, &after)) {
        n++;
        from = after; /* points at the "\r\n" ending the match */
    }
    return n;
}

void chanc_http_client_response_dispose(chanc_http_client_response_t *r) {
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* Read status line + headers (+ body unless head_only) from the buffer. */
static int read_response(int fd, unsigned char **buf, size_t *off, size_t *len, size_t *cap,
                         bool head_only, bool read_body, chanc_http_client_response_t *out,
                         int64_t deadline) {
    memset(out, 0, sizeof *out);
    char *end;
    for (;;) {
        if (*len > *off) {
            (*buf)[*len] = '\0';
            end = strstr((char *)*buf + *off, "\r\n\r\n");
            if (end)
                break;
        }
        if (fill(fd, buf, off, len, cap, deadline) < 0)
            return -1;
    }
    size_t hlen = (size_t)(end - (char *)*buf - (ptrdiff_t)*off) + 4;
    out->head = malloc(hlen + 1);
    if (!out->head)
        return -1;
    memcpy(out->head, *buf + *off, hlen);
    out->head[hlen] = '\0';
    *off += hlen;
    if (sscanf(out->head, "HTTP/1.%*d %d", &out->status) != 1)
        return -1;
    if (!read_body)
        return 0;
    char cl[32];
    long long clen = -1;
    if (chanc_http_client_header(out, "content-length", cl, sizeof cl))
        clen = atoll(cl);
    if (head_only || out->status == 101 || out->status == 204 || out->status == 304)
        clen = 0;
    if (clen >= 0) {
        while ((long long)(*len - *off) < clen)
            if (fill(fd, buf, off, len, cap, deadline) < 0)
                return -1;
        out->body_len = (size_t)clen;
    } else {
        while (fill(fd, buf, off, len, cap, deadline) == 0)
            ;
        out->body_len = *len - *off;
        out->closed = true;
    }
    out->body = malloc(out->body_len + 1);
    if (!out->body)
        return -1;
    memcpy(out->body, *buf + *off, out->body_len);
    out->body[out->body_len] = '\0';
    *off += out->body_len;
    return 0;
}

/* Empty responses (safe to dispose whatever happens) and a connection;
 * the socket or -1. */
static int exchange_start(int port, chanc_http_client_response_t *out, size_t n) {
    for (size_t i = 0; i < n; i++)
        memset(&out[i], 0, sizeof out[i]);
    return connect_loopback(port, 0);
}

static int exchange(int port, const void *request, size_t len, bool head_only,
                    chanc_http_client_response_t *out, size_t nresp, int timeout_ms) {
    int fd = exchange_start(port, out, nresp);
    if (fd < 0)
        return -1;
    int64_t deadline = now_ms() + (timeout_ms ? timeout_ms : 5000);
    /* A refused body may make send fail (the server answered early and
     * closed): read the answer anyway. */
    send_all(fd, request, len, timeout_ms ? timeout_ms : 5000);
    unsigned char *buf = NULL;
    size_t off = 0, blen = 0, cap = 0;
    int rc = 0;
    for (size_t i = 0; i < nresp && rc == 0; i++)
        rc = read_response(fd, &buf, &off, &blen, &cap, head_only, true, &out[i], deadline);
    chanc_http_client_response_t *last = &out[nresp - 1];
    char conn[32];
    if (rc == 0 && !last->closed &&
        chanc_http_client_header(last, "connection", conn, sizeof conn) &&
        strcasecmp(conn, "close") == 0) {
        /* The server said it closes: wait for that (bounded). */
        struct pollfd pfd = {fd, POLLIN, 0};
        int left = (int)(deadline - now_ms());
        if (left > 0 && poll(&pfd, 1, left) > 0) {
            char tmp[64];
            ssize_t n = recv(fd, tmp, sizeof tmp, 0);
            last->closed = n == 0 || (n < 0 && errno == ECONNRESET);
        }
    } else if (rc == 0 && !last->closed) {
        /* Otherwise only look, never wait. */
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, 0) > 0) {
            char tmp[64];
            ssize_t n = recv(fd, tmp, sizeof tmp, MSG_DONTWAIT);
            last->closed = n == 0 || (n < 0 && errno == ECONNRESET);
        }
    }
    free(buf);
    close(fd);
    return rc;
}

int chanc_http_client_exchange(int port, const void *request, size_t len, bool head_only,
                               chanc_http_client_response_t *out, int timeout_ms) {
    return exchange(port, request, len, head_only, out, 1, timeout_ms);
}

int chanc_http_client_exchange_many(int port, const void *requests, size_t len,
                                    chanc_http_client_response_t *out, size_t n, int timeout_ms) {
    return exchange(port, requests, len, false, out, n, timeout_ms);
}

int chanc_http_client_exchange_seq(int port, const char *const *requests,
                                   chanc_http_client_response_t *out, size_t n, int timeout_ms) {
    int fd = exchange_start(port, out, n);
    if (fd < 0)
        return -1;
    int timeout = timeout_ms ? timeout_ms : 5000;
    int64_t deadline = now_ms() + timeout;
    unsigned char *buf = NULL;
    size_t off = 0, blen = 0, cap = 0;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (send_all(fd, requests[i], strlen(requests[i]), timeout) < 0)
            rc = -1;
        else
            rc = read_response(fd, &buf, &off, &blen, &cap, false, true, &out[i], deadline);
        if (rc == 0 && out[i].closed && i + 1 < n)
            rc = -1; /* read up to EOF: nothing more can come */
    }
    free(buf);
    close(fd);
    return rc;
}

/* --- WebSocket ----------------------------------------------------------------------- */

chanc_ws_client_t *chanc_ws_client_connect(int port, const char *path,
                                           const chanc_ws_client_options_t *opts, int *status) {
    chanc_ws_client_options_t none = {0};
    if (!opts)
        opts = &none;
    int timeout = opts->timeout_ms ? opts->timeout_ms : 5000;
    *status = -1;
    chanc_ws_client_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->mask_seed = (uint32_t)now_ms() * 2654435761u + 1;
    c->fd = connect_loopback(port, opts->rcvbuf);
    if (c->fd < 0) {
        free(c);
        return NULL;
    }
    unsigned char nonce[16];
    for (int i = 0; i < 16; i++)
        nonce[i] = (unsigned char)(rand() & 0xFF);
    char key[32];
    base64(nonce, 16, key);
    /* Grown as needed: a test may send headers of any size (64 KiB
     * cookies in the bad-input matrix). */
    char *req = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&req, &n);
    if (!f) {
        chanc_ws_client_free(c);
        return NULL;
    }
    fprintf(f,
            "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
            "Sec-WebSocket-Version: 13\r\n",
            path, port, key);
    for (const char *const *h = opts->headers; h && *h; h++)
        fprintf(f, "%s\r\n", *h);
    fputs("\r\n", f);
    if (opts->early_len)
        fwrite(opts->early, 1, opts->early_len, f);
    int werr = ferror(f);
    fclose(f);
    if (werr || send_all(c->fd, req, n, timeout) < 0) {
        free(req);
        chanc_ws_client_free(c);
        return NULL;
    }
    free(req);
    chanc_http_client_response_t resp;
    int64_t deadline = now_ms() + timeout;
    /* Only the head for a 101 (frames may follow at once in the buffer);
     * the whole answer otherwise. */
    if (read_response(c->fd, &c->buf, &c->off, &c->len, &c->cap, false, false, &resp, deadline) <
        0) {
        chanc_http_client_response_dispose(&resp);
        chanc_ws_client_free(c);
        return NULL;
    }
    *status = resp.status;
    if (resp.status != 101) {
        chanc_http_client_response_dispose(&resp);
        chanc_ws_client_free(c);
        return NULL;
    }
    char accept[64], expect[64], concat[128];
    unsigned char digest[20];
    snprintf(concat, sizeof concat, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    sha1((const unsigned char *)concat, strlen(concat), digest);
    base64(digest, 20, expect);
    if (!chanc_http_client_header(&resp, "sec-websocket-accept", accept, sizeof accept) ||
        strcmp(accept, expect) != 0) {
        fprintf(stderr, "chanc_ws_client_connect: bad Sec-WebSocket-Accept\n");
        *status = -1;
        chanc_http_client_response_dispose(&resp);
        chanc_ws_client_free(c);
        return NULL;
    }
    chanc_http_client_response_dispose(&resp);
    return c;
}

void chanc_ws_client_free(chanc_ws_client_t *c) {
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    free(c->buf);
    free(c);
}

int chanc_ws_client_send_frame(chanc_ws_client_t *c, int opcode, bool fin, const void *data,
                               size_t len) {
    unsigned char *f = malloc(len + 14);
    if (!f)
        return -1;
    size_t h = 0;
    f[h++] = (unsigned char)((fin ? 0x80 : 0) | (opcode & 0x0F));
    if (len < 126) {
        f[h++] = (unsigned char)(0x80 | len);
    } else if (len <= 0xFFFF) {
        f[h++] = 0x80 | 126;
        f[h++] = (unsigned char)(len >> 8);
        f[h++] = (unsigned char)len;
    } else {
        f[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            f[h++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    c->mask_seed = c->mask_seed * 1103515245u + 12345u;
    unsigned char mask[4] = {(unsigned char)(c->mask_seed >> 24), (unsigned char)(c->mask_seed >> 16),
                             (unsigned char)(c->mask_seed >> 8), (unsigned char)c->mask_seed};
    memcpy(f + h, mask, 4);
    h += 4;
    const unsigned char *d = data;
    for (size_t i = 0; i < len; i++)
        f[h + i] = d[i] ^ mask[i & 3];
    int rc = send_all(c->fd, f, h + len, 5000);
    free(f);
    if (rc < 0)
        c->eof = true;
    return rc;
}

int chanc_ws_client_send_raw(chanc_ws_client_t *c, const void *data, size_t len) {
    const unsigned char *d = data;
    if (len && (d[0] & 0x0F) == CHANC_WS_OP_CLOSE)
        c->sent_close = true;
    int rc = send_all(c->fd, data, len, 5000);
    if (rc < 0)
        c->eof = true;
    return rc;
}

int chanc_ws_client_send_text(chanc_ws_client_t *c, const char *text) {
    return chanc_ws_client_send_frame(c, CHANC_WS_OP_TEXT, true, text, strlen(text));
}

int chanc_ws_client_send_close(chanc_ws_client_t *c, int code, const char *reason) {
    unsigned char p[125];
    c->sent_close = true;
    size_t n = 0;
    if (code) {
        p[0] = (unsigned char)(code >> 8);
        p[1] = (unsigned char)code;
        n = 2;
        size_t rl = reason ? strlen(reason) : 0;
        if (rl > 123)
            rl = 123;
        if (rl)
            memcpy(p + 2, reason, rl);
        n += rl;
    }
    return chanc_ws_client_send_frame(c, CHANC_WS_OP_CLOSE, true, p, n);
}

void chanc_ws_frame_dispose(chanc_ws_frame_t *f) {
    free(f->data);
    f->data = NULL;
    f->len = 0;
}

int chanc_ws_client_receive_frame(chanc_ws_client_t *c, chanc_ws_frame_t *f, int timeout_ms) {
    memset(f, 0, sizeof *f);
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        if (need(c, 2, deadline) < 0)
            return -1;
        const unsigned char *p = c->buf + c->off;
        bool fin = p[0] & 0x80;
        int op = p[0] & 0x0F;
        size_t hl = 2;
        uint64_t len = p[1] & 0x7F;
        if (p[1] & 0x80)
            return -1; /* servers never mask */
        if (len == 126) {
            if (need(c, 4, deadline) < 0)
                return -1;
            p = c->buf + c->off;
            len = (uint64_t)p[2] << 8 | p[3];
            hl = 4;
        } else if (len == 127) {
            if (need(c, 10, deadline) < 0)
                return -1;
            p = c->buf + c->off;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = len << 8 | p[2 + i];
            hl = 10;
        }
        if (len > (64u << 20) || need(c, hl + (size_t)len, deadline) < 0)
            return -1;
        p = c->buf + c->off;
        f->opcode = op;
        f->fin = fin;
        f->len = (size_t)len;
        f->data = malloc(f->len + 1);
        if (!f->data)
            return -1;
        memcpy(f->data, p + hl, f->len);
        f->data[f->len] = '\0';
        c->off += hl + (size_t)len;
        if (op == CHANC_WS_OP_PING) {
            c->pings++;
            if (!c->ignore_pings)
                chanc_ws_client_send_frame(c, CHANC_WS_OP_PONG, true, f->data, f->len);
            chanc_ws_frame_dispose(f);
            continue;
        }
        if (op == CHANC_WS_OP_CLOSE) {
            f->close_code = f->len >= 2 ? (f->data[0] << 8 | f->data[1]) : 1005;
            if (f->len > 2)
                snprintf(f->close_reason, sizeof f->close_reason, "%.*s", (int)(f->len - 2),
                         (const char *)f->data + 2);
            if (!c->closed) {
                c->closed = true;
                c->close_code = f->close_code;
                snprintf(c->close_reason, sizeof c->close_reason, "%s", f->close_reason);
                if (!c->sent_close)
                    chanc_ws_client_send_close(c, f->close_code == 1005 ? 0 : f->close_code, NULL);
            }
        }
        return 0;
    }
}

static bool is_completion(const json_t *v) {
    const char *a = json_string_value(json_object_get(v, "action"));
    return a && (strcmp(a, "complete") == 0 || strcmp(a, "group_complete") == 0);
}

json_t *chanc_ws_client_receive_json(chanc_ws_client_t *c, bool skip_completions, int timeout_ms) {
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        chanc_ws_frame_t f;
        int left = (int)(deadline - now_ms());
        if (left <= 0 || chanc_ws_client_receive_frame(c, &f, left) < 0)
            return NULL;
        if (f.opcode == CHANC_WS_OP_CLOSE) {
            chanc_ws_frame_dispose(&f);
            return NULL;
        }
        json_t *v = json_loadb((const char *)f.data, f.len, JSON_DECODE_ANY, NULL);
        chanc_ws_frame_dispose(&f);
        if (v && skip_completions && is_completion(v)) {
            json_decref(v);
            continue;
        }
        return v;
    }
}

json_t *chanc_ws_client_receive_action(chanc_ws_client_t *c, const char *action, int timeout_ms) {
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        int left = (int)(deadline - now_ms());
        json_t *v = left > 0 ? chanc_ws_client_receive_json(c, false, left) : NULL;
        if (!v)
            return NULL;
        const char *a = json_string_value(json_object_get(v, "action"));
        if (a && strcmp(a, action) == 0)
            return v;
        json_decref(v);
    }
}

int chanc_ws_client_wait_close(chanc_ws_client_t *c, int timeout_ms, size_t *data_frames) {
    int64_t deadline = now_ms() + timeout_ms;
    if (data_frames)
        *data_frames = 0;
    while (!c->closed) {
        chanc_ws_frame_t f;
        int left = (int)(deadline - now_ms());
        if (left <= 0 || chanc_ws_client_receive_frame(c, &f, left) < 0)
            return -1;
        if (f.opcode != CHANC_WS_OP_CLOSE && data_frames)
            (*data_frames)++;
        chanc_ws_frame_dispose(&f);
    }
    return c->close_code;
}

int chanc_ws_client_wait_eof(chanc_ws_client_t *c, int timeout_ms) {
    int64_t deadline = now_ms() + timeout_ms;
    while (!c->eof) {
        c->off = c->len = 0; /* dropped */
        if (fill(c->fd, &c->buf, &c->off, &c->len, &c->cap, deadline) == -2)
            c->eof = true;
        else if (now_ms() >= deadline)
            return -1;
    }
    return 0;
}

bool chanc_ws_client_closed(const chanc_ws_client_t *c) { return c->closed; }
bool chanc_ws_client_eof(const chanc_ws_client_t *c) { return c->eof; }
void chanc_ws_client_answer_pings(chanc_ws_client_t *c, bool answer) { c->ignore_pings = !answer; }
size_t chanc_ws_client_pings(const chanc_ws_client_t *c) { return c->pings; }
int chanc_ws_client_close_code(const chanc_ws_client_t *c) { return c->close_code; }
const char *chanc_ws_client_close_reason(const chanc_ws_client_t *c) { return c->close_reason; }

int chanc_ws_client_close(chanc_ws_client_t *c, int code, int timeout_ms) {
    if (c->closed)
        return c->close_code;
    if (chanc_ws_client_send_close(c, code, "bye") < 0)
        return -1;
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        chanc_ws_frame_t f;
        int left = (int)(deadline - now_ms());
        if (left <= 0 || chanc_ws_client_receive_frame(c, &f, left) < 0)
            return -1;
        int op = f.opcode, got = f.close_code;
        chanc_ws_frame_dispose(&f);
        if (op == CHANC_WS_OP_CLOSE)
            return got;
    }
}
