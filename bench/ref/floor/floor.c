/* floor: the least work one core can do for the benchmark's chat protocol (issue 7).
 *
 * One thread, one epoll loop, no libraries: a self-contained SHA-1 and base64
 * for the handshake, RFC 6455 server framing, frames built with plain string
 * formatting, every connection's output appended to its buffer and written
 * once per loop iteration (coalesced). It speaks chat-server's wire protocol
 * for the bench scenarios only (docs/protocol.md, docs/chat.md):
 *   POST /login         any username (password ignored) -> 302,
 *                       Set-Cookie: sessionid=<hex of the username>
 *   GET /ws/chat/<n>/   101; authentication 200 (403 + close 4403 without a
 *                       sessionid cookie), user_joined to the room, history []
 *   {"action":"chat","payload":"<text>"}  -> to every member the frame plus
 *                       username/timestamp/is_mine/is_current (at most four
 *                       variants, each built once) + group_complete; complete
 *   {"action":"ping","payload":null}      -> pong, complete
 *   anything else       -> an error frame (json_invalid), complete
 * Only these exact spellings are understood (the text is copied as the
 * client escaped it, not decoded); fragmented frames close with 1003,
 * messages over 64 KiB with 1009, a client with 4 MiB unsent is closed.
 *
 *   floor [--host 127.0.0.1] [--port 8000]     (port 0: any free port)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_MSG 65536
#define MAX_OUT (4u << 20)
#define MAX_HTTP 8192

/* ---- SHA-1 (FIPS 180-4) and base64: only for Sec-WebSocket-Accept ---------- */

static uint32_t rol(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1(const unsigned char *msg, size_t len, unsigned char out[20]) {
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    size_t total = ((len + 8) / 64 + 1) * 64;
    unsigned char buf[256];
    if (total > sizeof buf)
        abort(); /* callers hash a 24-byte key + GUID */
    memset(buf, 0, total);
    memcpy(buf, msg, len);
    buf[len] = 0x80;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++)
        buf[total - 1 - i] = (unsigned char)(bits >> (8 * i));
    for (size_t off = 0; off < total; off += 64) {
        uint32_t w[80];
        for (int i = 0; i < 16; i++)
            w[i] = (uint32_t)buf[off + 4 * i] << 24 | (uint32_t)buf[off + 4 * i + 1] << 16 |
                   (uint32_t)buf[off + 4 * i + 2] << 8 | buf[off + 4 * i + 3];
        for (int i = 16; i < 80; i++)
            w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
        for (int i = 0; i < 80; i++) {
            uint32_t f, k;
            if (i < 20)
                f = (b & c) | (~b & d), k = 0x5A827999;
            else if (i < 40)
                f = b ^ c ^ d, k = 0x6ED9EBA1;
            else if (i < 60)
                f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
            else
                f = b ^ c ^ d, k = 0xCA62C1D6;
            uint32_t t = rol(a, 5) + f + e + k + w[i];
            e = d, d = c, c = rol(b, 30), b = a, a = t;
        }
        h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
    }
    for (int i = 0; i < 20; i++)
        out[i] = (unsigned char)(h[i / 4] >> (24 - 8 * (i % 4)));
}

static void base64(const unsigned char *in, size_t len, char *out) {
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0) |
                     (i + 2 < len ? in[i + 2] : 0);
        out[o++] = t[v >> 18 & 63];
        out[o++] = t[v >> 12 & 63];
        out[o++] = i + 1 < len ? t[v >> 6 & 63] : '=';
        out[o++] = i + 2 < len ? t[v & 63] : '=';
    }
    out[o] = 0;
}

/* ---- connections and rooms --------------------------------------------------- */

typedef struct {
    char *p;
    size_t len, cap, off; /* off: already written (output) or consumed (input) */
} buf_t;

typedef struct room room_t;

typedef struct conn {
    struct conn *prev, *next; /* every open connection, for the exit */
    int fd;
    bool ws, closing, dirty, close_after_flush, want_out;
    char user[72];
    room_t *room;
    size_t room_idx;
    buf_t in, out;
} conn_t;

struct room {
    long long id;
    conn_t **m;
    size_t n, cap;
};

static int ep;
static conn_t *all;
static room_t *rooms;
static size_t nrooms, caprooms;
static conn_t **dirty, **grave;
static size_t ndirty, capdirty, ngrave, capgrave;

static void *xrealloc(void *p, size_t n) {
    p = realloc(p, n);
    if (!p) {
        fputs("floor: out of memory\n", stderr);
        exit(1);
    }
    return p;
}

static void push(conn_t ***arr, size_t *n, size_t *cap, conn_t *c) {
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 256;
        *arr = xrealloc(*arr, *cap * sizeof **arr);
    }
    (*arr)[(*n)++] = c;
}

static void buf_append(buf_t *b, const void *p, size_t len) {
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 512;
        while (cap < b->len + len)
            cap *= 2;
        b->p = xrealloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, len);
    b->len += len;
}

static void buf_free(buf_t *b) {
    free(b->p);
    *b = (buf_t){0};
}

/* Queue bytes for c; written once at the end of this loop iteration. */
static void out(conn_t *c, const void *p, size_t len) {
    if (c->closing)
        return;
    buf_append(&c->out, p, len);
    if (!c->dirty) {
        c->dirty = true;
        push(&dirty, &ndirty, &capdirty, c);
    }
}

/* The header of an unmasked server frame into dst (at most 10 bytes); its length. */
static size_t ws_header(char *dst, int opcode, size_t len) {
    size_t h = 0;
    dst[h++] = (char)(0x80 | opcode);
    if (len < 126) {
        dst[h++] = (char)len;
    } else if (len < 65536) {
        dst[h++] = 126;
        dst[h++] = (char)(len >> 8);
        dst[h++] = (char)(len & 0xff);
    } else {
        dst[h++] = 127;
        for (int i = 7; i >= 0; i--)
            dst[h++] = (char)((uint64_t)len >> (8 * i));
    }
    return h;
}

/* A whole server frame: header + payload into dst; returns its length. */
static size_t ws_frame(char *dst, int opcode, const char *p, size_t len) {
    size_t h = ws_header(dst, opcode, len);
    memcpy(dst + h, p, len);
    return h + len;
}

static void out_text(conn_t *c, const char *s) {
    char f[512];
    out(c, f, ws_frame(f, 1, s, strlen(s)));
}

static room_t *room_get(long long id) {
    for (size_t i = 0; i < nrooms; i++)
        if (rooms[i].id == id)
            return &rooms[i];
    if (nrooms == caprooms) { /* members point at rooms: grow by moving them */
        size_t cap = caprooms ? caprooms * 2 : 64;
        rooms = xrealloc(rooms, cap * sizeof *rooms);
        for (size_t i = 0; i < nrooms; i++)
            for (size_t j = 0; j < rooms[i].n; j++)
                rooms[i].m[j]->room = &rooms[i];
        caprooms = cap;
    }
    rooms[nrooms] = (room_t){.id = id};
    return &rooms[nrooms++];
}

static void iso_now(char ts[32]) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    struct tm tm;
    gmtime_r(&t.tv_sec, &tm);
    size_t n = strftime(ts, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, 32 - n, ".%03ldZ", t.tv_nsec / 1000000);
}

/* Send `head` + the flags + "}" to every member (but `skip`), at most four
 * variants of the frame, each built once, each followed by group_complete. */
static void room_send(room_t *r, conn_t *sender, conn_t *skip, const char *head, size_t hlen) {
    static const char gc[] = "{\"action\":\"group_complete\",\"payload\":null}";
    static char *var[4];
    static size_t cap;
    size_t vlen[4] = {0};

    if (cap < hlen + 128) {
        cap = hlen + 128;
        for (int k = 0; k < 4; k++)
            var[k] = xrealloc(var[k], cap + 10);
    }
    char gcf[64], tmp[96];
    size_t gclen = ws_frame(gcf, 1, gc, sizeof gc - 1);
    for (size_t i = 0; i < r->n; i++) {
        conn_t *m = r->m[i];
        if (m == skip)
            continue;
        int k = (strcmp(m->user, sender->user) == 0 ? 2 : 0) + (m == sender);
        if (!vlen[k]) {
            size_t tl = (size_t)snprintf(tmp, sizeof tmp, ",\"is_mine\":%s,\"is_current\":%s}",
                                         k & 2 ? "true" : "false", k & 1 ? "true" : "false");
            size_t len = hlen + tl;
            char *v = var[k];
            size_t h = ws_header(v, 1, len);
            memcpy(v + h, head, hlen);
            memcpy(v + h + hlen, tmp, tl);
            vlen[k] = h + len;
        }
        out(m, var[k], vlen[k]);
        out(m, gcf, gclen);
    }
}

static void presence(conn_t *c, const char *action, conn_t *skip) {
    char ts[32], head[256];
    iso_now(ts);
    int n = snprintf(head, sizeof head,
                     "{\"action\":\"%s\",\"payload\":{\"username\":\"%s\",\"room_name\":\"room "
                     "%lld\",\"timestamp\":\"%s\"}",
                     action, c->user, c->room->id, ts);
    room_send(c->room, c, skip, head, (size_t)n);
}

static void conn_close(conn_t *c) {
    if (c->closing)
        return;
    c->closing = true;
    room_t *r = c->room;
    if (r) {
        r->m[c->room_idx] = r->m[--r->n];
        r->m[c->room_idx]->room_idx = c->room_idx;
        presence(c, "user_left", c); /* c->room still names the room */
        c->room = NULL;
    }
    close(c->fd); /* also leaves the epoll set */
    if (c->prev)
        c->prev->next = c->next;
    else
        all = c->next;
    if (c->next)
        c->next->prev = c->prev;
    push(&grave, &ngrave, &capgrave, c);
}

static void ws_close(conn_t *c, int code) {
    char f[8], p[2] = {(char)(code >> 8), (char)(code & 0xff)};
    out(c, f, ws_frame(f, 8, p, 2));
    c->close_after_flush = true;
}

/* ---- HTTP: POST /login and the WebSocket upgrade ------------------------------ */

static const char *header(const char *req, const char *name, size_t *len) {
    size_t nl = strlen(name);
    for (const char *p = strstr(req, "\r\n"); p && p[2] != '\r'; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, nl) == 0 && p[2 + nl] == ':') {
            const char *v = p + 3 + nl;
            while (*v == ' ')
                v++;
            *len = strcspn(v, "\r\n");
            return v;
        }
    }
    return NULL;
}

static void http_reply(conn_t *c, const char *status, const char *extra) {
    char r[512];
    int n = snprintf(r, sizeof r, "HTTP/1.1 %s\r\n%sContent-Length: 0\r\nConnection: close\r\n\r\n",
                     status, extra);
    out(c, r, (size_t)n);
    c->close_after_flush = true;
}

static void login(conn_t *c, const char *body, size_t blen) {
    char user[65] = "", hex[131], extra[200];
    for (const char *p = body; p < body + blen;) {
        size_t l = strcspn(p, "&");
        if (l > 9 && strncmp(p, "username=", 9) == 0) { /* form-decode */
            size_t o = 0;
            for (size_t i = 9; i < l && p + i < body + blen && o < 64; i++) {
                unsigned v;
                if (p[i] == '%' && i + 2 < l && sscanf(p + i + 1, "%2x", &v) == 1)
                    user[o++] = (char)v, i += 2;
                else
                    user[o++] = p[i] == '+' ? ' ' : p[i];
            }
            user[o] = 0;
        }
        p += l + 1;
    }
    bool bad = !user[0];
    for (size_t i = 0; user[i]; i++)
        bad |= user[i] == '"' || user[i] == '\\' || (unsigned char)user[i] < 32;
    if (bad) {
        http_reply(c, "401 Unauthorized", "");
        return;
    }
    for (size_t i = 0; user[i]; i++)
        sprintf(hex + 2 * i, "%02x", (unsigned char)user[i]);
    snprintf(extra, sizeof extra,
             "Location: /\r\nSet-Cookie: sessionid=%s; HttpOnly; SameSite=Lax; Path=/\r\n", hex);
    http_reply(c, "302 Found", extra);
}

static void upgrade(conn_t *c, const char *req, long long room) {
    size_t kl, cl = 0;
    const char *key = header(req, "Sec-WebSocket-Key", &kl);
    const char *ck = header(req, "Cookie", &cl);
    if (!key || kl > 64) {
        http_reply(c, "400 Bad Request", "");
        return;
    }
    char kbuf[128], acc[40];
    unsigned char dig[20];
    memcpy(kbuf, key, kl);
    memcpy(kbuf + kl, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
    sha1((unsigned char *)kbuf, kl + 36, dig);
    base64(dig, 20, acc);
    char r[256];
    int n = snprintf(r, sizeof r,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     acc);
    out(c, r, (size_t)n);
    c->ws = true;
    const char *s = ck ? memmem(ck, cl, "sessionid=", 10) : NULL;
    size_t ul = 0;
    if (s) {
        s += 10;
        for (; ul < 64 && s + 2 * ul + 1 < ck + cl; ul++) {
            unsigned v;
            if (sscanf(s + 2 * ul, "%2x", &v) != 1 || v == '"' || v == '\\' || v < 32)
                break;
            c->user[ul] = (char)v;
        }
        c->user[ul] = 0;
    }
    if (!ul) {
        out_text(c, "{\"action\":\"authentication\",\"payload\":{\"status_code\":403,"
                    "\"status_text\":\"Forbidden\",\"data\":{\"detail\":\"Authentication "
                    "credentials were not provided.\"}}}");
        ws_close(c, 4403);
        return;
    }
    out_text(c, "{\"action\":\"authentication\",\"payload\":{\"status_code\":200,"
                "\"status_text\":\"OK\",\"data\":{\"detail\":\"OK\"}}}");
    room_t *rm = room_get(room);
    if (rm->n == rm->cap) {
        rm->cap = rm->cap ? rm->cap * 2 : 16;
        rm->m = xrealloc(rm->m, rm->cap * sizeof *rm->m);
    }
    c->room = rm;
    c->room_idx = rm->n;
    rm->m[rm->n++] = c;
    presence(c, "user_joined", NULL);
    out_text(c, "{\"action\":\"history\",\"payload\":[]}");
}

/* One complete request in c->in (NUL-terminated); false if more is needed. */
static bool http_request(conn_t *c) {
    char *req = c->in.p;
    char *end = strstr(req, "\r\n\r\n");
    if (!end)
        return false;
    size_t hl = (size_t)(end + 4 - req), cl = 0;
    const char *v = header(req, "Content-Length", &cl);
    size_t body = v ? strtoul(v, NULL, 10) : 0;
    if (hl + body > MAX_HTTP) {
        http_reply(c, "413 Payload Too Large", "");
        return true;
    }
    if (c->in.len < hl + body)
        return false;
    long long room;
    int pos = 0;
    if (strncmp(req, "POST /login ", 12) == 0 || strncmp(req, "POST /login?", 12) == 0)
        login(c, end + 4, body);
    else if (sscanf(req, "GET /ws/chat/%18lld/ HTTP/1.1%n", &room, &pos) == 1 && pos > 0)
        upgrade(c, req, room);
    else
        http_reply(c, "404 Not Found", "");
    c->in.off = hl + body;
    return true;
}

/* ---- WebSocket messages -------------------------------------------------------- */

static void message(conn_t *c, const char *m, size_t len) {
    static const char chat[] = "{\"action\":\"chat\",\"payload\":\"";
    static const char ping[] = "{\"action\":\"ping\",\"payload\":null}";
    if (len == sizeof ping - 1 && memcmp(m, ping, len) == 0) {
        out_text(c, "{\"action\":\"pong\",\"payload\":null}");
    } else if (len > sizeof chat + 1 && memcmp(m, chat, sizeof chat - 1) == 0 &&
               memcmp(m + len - 2, "\"}", 2) == 0) {
        /* the text as the client escaped it: no bare '"', '\' escapes whole */
        const char *t = m + sizeof chat - 1, *te = m + len - 2;
        bool ok = true;
        for (const char *p = t; p < te && ok; p++) {
            if (*p == '\\')
                p++, ok = p < te;
            else if (*p == '"' || (unsigned char)*p < 32)
                ok = false;
        }
        if (ok) {
            static char *head;
            static size_t cap;
            char ts[32];
            iso_now(ts);
            size_t need = len + 200;
            if (cap < need)
                head = xrealloc(head, cap = need);
            int n = snprintf(head, cap, "{\"action\":\"chat\",\"payload\":\"%.*s\",\"username\":\"%s\","
                             "\"timestamp\":\"%s\"", (int)(te - t), t, c->user, ts);
            room_send(c->room, c, NULL, head, (size_t)n);
        } else {
            out_text(c, "{\"action\":\"error\",\"payload\":[{\"type\":\"json_invalid\",\"loc\":[],"
                        "\"msg\":\"floor understands only its benchmark frames\"}]}");
        }
    } else {
        out_text(c, "{\"action\":\"error\",\"payload\":[{\"type\":\"json_invalid\",\"loc\":[],"
                    "\"msg\":\"floor understands only its benchmark frames\"}]}");
    }
    out_text(c, "{\"action\":\"complete\",\"payload\":null}");
}

/* Handle every whole frame in c->in; false when the connection must close. */
static bool ws_frames(conn_t *c) {
    for (;;) {
        unsigned char *p = (unsigned char *)c->in.p + c->in.off;
        size_t avail = c->in.len - c->in.off;
        if (avail < 2)
            return true;
        int fin = p[0] & 0x80, op = p[0] & 0x0f;
        uint64_t len = p[1] & 0x7f;
        size_t h = 2;
        if (!(p[1] & 0x80)) {
            ws_close(c, 1002); /* clients must mask */
            return true;
        }
        if (len == 126) {
            if (avail < 4)
                return true;
            len = (uint64_t)p[2] << 8 | p[3];
            h = 4;
        } else if (len == 127) {
            ws_close(c, 1009);
            return true;
        }
        if (len > MAX_MSG) {
            ws_close(c, 1009);
            return true;
        }
        if (avail < h + 4 + len)
            return true;
        unsigned char *mask = p + h, *pl = p + h + 4;
        for (uint64_t i = 0; i < len; i++)
            pl[i] ^= mask[i & 3];
        c->in.off += h + 4 + (size_t)len;
        if (!fin || op == 0) {
            ws_close(c, 1003);
            return true;
        }
        if (op == 1)
            message(c, (const char *)pl, (size_t)len);
        else if (op == 2) {
            out_text(c, "{\"action\":\"error\",\"payload\":[{\"type\":\"frame_type\",\"loc\":[],"
                        "\"msg\":\"JSON text frames only\"}]}");
            out_text(c, "{\"action\":\"complete\",\"payload\":null}");
        } else if (op == 8) {
            ws_close(c, 1000);
            return true;
        } else if (op == 9) {
            char f[200];
            out(c, f, ws_frame(f, 10, (const char *)pl, len < 126 ? (size_t)len : 125));
        }
        if (c->close_after_flush)
            return true;
    }
}

static void on_readable(conn_t *c) {
    for (;;) {
        if (c->in.cap - c->in.len < 4096) {
            c->in.cap = c->in.cap ? c->in.cap * 2 : 8192;
            c->in.p = xrealloc(c->in.p, c->in.cap + 1);
        }
        ssize_t n = read(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            conn_close(c);
            return;
        }
        if (n < 0)
            break;
        size_t asked = c->in.cap - c->in.len;
        c->in.len += (size_t)n;
        if ((size_t)n < asked)
            break; /* short read: the socket is drained */
    }
    if (c->close_after_flush)
        return;
    c->in.p[c->in.len] = 0;
    if (!c->ws && !http_request(c)) {
        if (c->in.len > MAX_HTTP)
            http_reply(c, "431 Request Header Fields Too Large", "");
        return;
    }
    if (c->ws)
        ws_frames(c);
    /* keep the unparsed tail; free idle buffers (idle memory is the point) */
    size_t rest = c->in.len - c->in.off;
    if (rest == 0) {
        buf_free(&c->in);
    } else if (c->in.off) {
        memmove(c->in.p, c->in.p + c->in.off, rest);
        c->in.len = rest;
        c->in.off = 0;
    }
}

/* Write what c has queued; EPOLLOUT only while something is left. */
static void flush(conn_t *c) {
    c->dirty = false;
    if (c->closing)
        return;
    while (c->out.off < c->out.len) {
        ssize_t n = write(c->fd, c->out.p + c->out.off, c->out.len - c->out.off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN) {
                conn_close(c);
                return;
            }
            break;
        }
        c->out.off += (size_t)n;
    }
    bool left = c->out.off < c->out.len;
    if (!left) {
        buf_free(&c->out);
        if (c->close_after_flush) {
            conn_close(c);
            return;
        }
    } else if (c->out.len - c->out.off > MAX_OUT) {
        conn_close(c); /* slow client */
        return;
    }
    if (left != c->want_out) {
        struct epoll_event ev = {.events = EPOLLIN | (left ? EPOLLOUT : 0), .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        c->want_out = left;
    }
}

static volatile sig_atomic_t stop;
static void on_signal(int s) {
    (void)s;
    stop = 1;
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    int port = 8000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--host") && i + 1 < argc)
            host = argv[++i];
        else if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: floor [--host H] [--port P]\n");
            return 2;
        }
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    /* SIGINT/SIGTERM are blocked except inside epoll_pwait: one that came
     * between the `stop` check and a plain epoll_wait would be lost and the
     * floor would sleep forever (seen under valgrind, where the window is
     * wide: bench.smoke's SIGTERM right after SIGCONT). */
    sigset_t stop_signals, waiting_mask;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    sigprocmask(SIG_BLOCK, &stop_signals, &waiting_mask);
    sigdelset(&waiting_mask, SIGINT);
    sigdelset(&waiting_mask, SIGTERM);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1 || bind(lfd, (void *)&sa, sizeof sa) < 0 ||
        listen(lfd, 4096) < 0) {
        fprintf(stderr, "floor: cannot listen on %s:%d: %s\n", host, port, strerror(errno));
        return 1;
    }
    socklen_t sl = sizeof sa;
    getsockname(lfd, (void *)&sa, &sl);
    printf("listening on http://%s:%d/\n", host, ntohs(sa.sin_port));
    fflush(stdout);
    ep = epoll_create1(0);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
    struct epoll_event evs[256];
    while (!stop) {
        int n = epoll_pwait(ep, evs, 256, -1, &waiting_mask);
        if (n < 0 && errno != EINTR)
            break;
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (!c) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conn_t *nc = calloc(1, sizeof *nc);
                    if (!nc) {
                        close(fd);
                        continue;
                    }
                    nc->fd = fd;
                    nc->next = all;
                    if (all)
                        all->prev = nc;
                    all = nc;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = nc};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
                }
                continue;
            }
            if (c->closing)
                continue;
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                on_readable(c);
            if (!c->closing && (evs[i].events & EPOLLOUT) && !c->dirty) {
                c->dirty = true;
                push(&dirty, &ndirty, &capdirty, c);
            }
        }
        /* one write per connection per iteration; closes may queue user_left */
        for (size_t i = 0; i < ndirty; i++)
            flush(dirty[i]);
        ndirty = 0;
        for (size_t i = 0; i < ngrave; i++) {
            buf_free(&grave[i]->in);
            buf_free(&grave[i]->out);
            free(grave[i]);
        }
        ngrave = 0;
    }
    while (all) {
        conn_t *c = all;
        all = c->next;
        close(c->fd);
        buf_free(&c->in);
        buf_free(&c->out);
        free(c);
    }
    for (size_t r = 0; r < nrooms; r++)
        free(rooms[r].m);
    free(rooms);
    free(dirty);
    free(grave);
    close(lfd);
    close(ep);
    return 0;
}
