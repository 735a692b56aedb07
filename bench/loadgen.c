/* chanc-bench: a WebSocket load generator for the chat protocol (issue 7).
 *
 * One libuv loop, RFC 6455 client framing (masked), HTTP/1.1 upgrade with the
 * 101 checked, session cookies from POST /login (one login per user, shared by
 * every connection of that user). Sends are scheduled on CLOCK_MONOTONIC by a
 * timerfd (ns precision, not libuv's ms timers); latency is measured from the
 * *scheduled* time, so a stalled server cannot hide its stall (open loop).
 * Received frames are never JSON-parsed: the tool looks for the "action" value
 * and for its own marker "b<run>-<id>-<seq>-" in the chat text.
 *
 * Modes:
 *   echo    N connections (spread over --rooms rooms), aggregate rate R; latency
 *           to the sender's own chat frame, and to its `complete`.
 *           --inflight K: closed loop, K messages in flight in total.
 *           --kind ping: ping -> pong through the consumer instead of chat.
 *   fanout  N subscribers + P publishers in one room, open-loop publish rate R;
 *           every subscriber must receive every message: missing, duplicated,
 *           deliveries/s, latency from the scheduled publish time.
 *   idle    hold N connections; server RSS growth per connection (--server-pid).
 *   connect open N connections (handshake + session auth, until `history`);
 *           with --room R --rooms 1 every one joins one room: room formation
 *           (time until all are ready; frames and bytes received per join,
 *           counted until the server is idle plus --linger seconds).
 *   storm   open N connections, then wait for the server to go away
 *           (--ready-file tells the driver when to restart it): every
 *           connection reconnects with jittered exponential back-off
 *           (attempt n waits base*(0.5 + rand/2), base = min(--backoff-max,
 *           --backoff-first * 2^n), as the room page does); reports the time
 *           from the first close until all N are ready again.
 *
 * A server that does not speak the protocol makes the tool fail, never hang:
 * the login has a socket timeout, and when no connection becomes ready
 * (101 upgrade, then a `history` frame) for --timeout seconds it exits 2
 * saying which step each connection is stuck at and the last frame it got.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

/* ---- clock, histogram ------------------------------------------------------ */

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Log-bucketed: exact below 64 ns, then 64 sub-buckets per power of two
 * (bucket width <= 1/64 of its lower bound; reported at the midpoint, so the
 * relative error is <= 0.8 %). */
#define HSUB 64
#define HBUCKETS (HSUB + 58 * HSUB)
typedef struct {
    uint64_t count, max, min;
    long double sum;
    uint64_t b[HBUCKETS];
} hist_t;

static unsigned hist_index(uint64_t v) {
    if (v < HSUB)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= 6 */
    unsigned sub = (unsigned)((v >> (e - 6)) & (HSUB - 1));
    return HSUB + (e - 6) * HSUB + sub;
}

static uint64_t hist_value(unsigned i) {
    if (i < HSUB)
        return i;
    unsigned e = (i - HSUB) / HSUB + 6, sub = (i - HSUB) % HSUB;
    uint64_t lo = (uint64_t)(HSUB + sub) << (e - 6), w = (uint64_t)1 << (e - 6);
    return lo + w / 2;
}

static void hist_add(hist_t *h, uint64_t v) {
    unsigned i = hist_index(v);
    if (i >= HBUCKETS)
        i = HBUCKETS - 1;
    h->b[i]++;
    if (h->count == 0 || v < h->min)
        h->min = v;
    h->count++;
    h->sum += v;
    if (v > h->max)
        h->max = v;
}

static uint64_t hist_pct(const hist_t *h, double p) {
    if (!h->count)
        return 0;
    uint64_t want = (uint64_t)ceil(p * (double)h->count), seen = 0;
    if (want < 1)
        want = 1;
    for (unsigned i = 0; i < HBUCKETS; i++) {
        seen += h->b[i];
        if (seen >= want) {
            uint64_t v = hist_value(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

static void mark_start_cpu(void);

/* ---- options --------------------------------------------------------------- */

enum { M_ECHO, M_FANOUT, M_IDLE, M_CONNECT, M_STORM };
enum { K_CHAT, K_PING };
enum { R_ECHO, R_SUB, R_PUB };
enum { S_CONNECTING, S_UPGRADING, S_JOINING, S_READY, S_CLOSED };

#define MAXUSERS 16
static struct {
    int mode, kind;
    const char *host;
    int port;
    int conns, pubs;
    double rate, duration, drain, timeout;
    int inflight;
    int room, rooms;
    int size;
    int concurrency;
    double linger;              /* connect: keep counting frames this long after settling */
    const char *ready_file;     /* storm: created once all are ready */
    double backoff_first_ms, backoff_max_ms, storm_timeout;
    int server_pid;             /* the first of pids */
    int pids[8], npids;         /* servers: CPU and RSS summed */
    int aux_pid;                /* another process's CPU, reported apart (Redis) */
    int ports[8], nports;       /* connection i goes to ports[i % nports] */
    const char *json, *label, *origin, *table, *on_measure;
    int nusers;
    char *user[MAXUSERS], *pass[MAXUSERS];
    char cookie[MAXUSERS][128];
} opt = {.mode = M_ECHO, .kind = K_CHAT, .host = "127.0.0.1", .port = 8000, .conns = 100,
         .pubs = 1, .rate = 1000, .duration = 10, .drain = 3, .timeout = 10, .room = 1, .rooms = 1, .size = 64,
         .concurrency = 64, .backoff_first_ms = 500, .backoff_max_ms = 8000,
         .storm_timeout = 120};

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("chanc-bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void usage(void) {
    puts("usage: chanc-bench MODE [options]     MODE: echo | fanout | idle | connect | storm\n"
         "  --host H --port P        server (127.0.0.1:8000)\n"
         "  --ports P1,P2,...        several servers (one room through a channel layer):\n"
         "                           connection i goes to the (i mod n)-th\n"
         "  --conns N                echo/idle/connect: connections; fanout: subscribers (100)\n"
         "  --pubs P                 fanout: publishers (1)\n"
         "  --rate R                 open loop: aggregate messages/s (1000)\n"
         "  --inflight K             echo: closed loop with K messages in flight in total\n"
         "  --kind chat|ping         echo: chat message (default) or ping->pong\n"
         "  --duration S             sending time in seconds (10); --drain S wait after (3)\n"
         "  --timeout S              give up (exit 2, saying why) when no connection becomes\n"
         "                           ready for S seconds, or the login gets no answer (10)\n"
         "  --room ID --rooms M      connection i joins room ID + i % M (1, 1)\n"
         "  --size B                 chat text length in bytes (64, >= 32)\n"
         "  --user NAME:PASS         repeatable; connections use them round-robin\n"
         "                           (default: the demo users testuser, alice, bob, carol)\n"
         "  --origin O               send this Origin header (default: none)\n"
         "  --concurrency C          handshakes in flight while connecting (64)\n"
         "  --linger S               connect: count frames S s more after the server settled (0)\n"
         "  --ready-file F           storm: created when all are ready (restart the server then)\n"
         "  --backoff-first MS --backoff-max MS  storm: the reconnect back-off (500, 8000)\n"
         "  --storm-timeout S        storm: give up S s after the first close (120)\n"
         "  --server-pid PID         read the server's CPU time and RSS from /proc\n"
         "                           (repeatable: summed over several servers)\n"
         "  --aux-pid PID            another process's CPU (Redis), reported apart\n"
         "  --json FILE              append the result as one JSON object (one line)\n"
         "  --table FILE             append one row of the summary table (see bench/run)\n"
         "  --label L                scenario name for the table / JSON\n"
         "  --on-measure CMD         run `sh -c CMD` while the measured window lasts (SIGINT at\n"
         "                           its end), e.g. \"perf record -g -p PID -o FILE\"");
}

static void parse_args(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage();
        exit(argc < 2 ? 2 : 0);
    }
    if (!strcmp(argv[1], "echo"))
        opt.mode = M_ECHO;
    else if (!strcmp(argv[1], "fanout"))
        opt.mode = M_FANOUT;
    else if (!strcmp(argv[1], "idle"))
        opt.mode = M_IDLE;
    else if (!strcmp(argv[1], "connect"))
        opt.mode = M_CONNECT;
    else if (!strcmp(argv[1], "storm"))
        opt.mode = M_STORM;
    else
        die("unknown mode %s", argv[1]);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            die("%s needs a value", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--host"))
            opt.host = v;
        else if (!strcmp(a, "--port"))
            opt.port = atoi(v);
        else if (!strcmp(a, "--ports")) {
            char *copy = strdup(v), *save = NULL;
            opt.nports = 0;
            for (char *t = strtok_r(copy, ",", &save); t && opt.nports < 8; t = strtok_r(NULL, ",", &save))
                opt.ports[opt.nports++] = atoi(t);
            free(copy);
            if (!opt.nports)
                die("--ports: a comma-separated list of ports");
            opt.port = opt.ports[0];
        } else if (!strcmp(a, "--aux-pid"))
            opt.aux_pid = atoi(v);
        else if (!strcmp(a, "--conns"))
            opt.conns = atoi(v);
        else if (!strcmp(a, "--pubs"))
            opt.pubs = atoi(v);
        else if (!strcmp(a, "--rate"))
            opt.rate = atof(v);
        else if (!strcmp(a, "--inflight"))
            opt.inflight = atoi(v);
        else if (!strcmp(a, "--kind"))
            opt.kind = !strcmp(v, "ping") ? K_PING : K_CHAT;
        else if (!strcmp(a, "--duration"))
            opt.duration = atof(v);
        else if (!strcmp(a, "--drain"))
            opt.drain = atof(v);
        else if (!strcmp(a, "--timeout"))
            opt.timeout = atof(v);
        else if (!strcmp(a, "--room"))
            opt.room = atoi(v);
        else if (!strcmp(a, "--rooms"))
            opt.rooms = atoi(v);
        else if (!strcmp(a, "--size"))
            opt.size = atoi(v);
        else if (!strcmp(a, "--concurrency"))
            opt.concurrency = atoi(v);
        else if (!strcmp(a, "--linger"))
            opt.linger = atof(v);
        else if (!strcmp(a, "--ready-file"))
            opt.ready_file = v;
        else if (!strcmp(a, "--backoff-first"))
            opt.backoff_first_ms = atof(v);
        else if (!strcmp(a, "--backoff-max"))
            opt.backoff_max_ms = atof(v);
        else if (!strcmp(a, "--storm-timeout"))
            opt.storm_timeout = atof(v);
        else if (!strcmp(a, "--server-pid")) {
            if (opt.npids == 8)
                die("--server-pid: at most 8");
            opt.pids[opt.npids++] = atoi(v);
            opt.server_pid = opt.pids[0];
        }
        else if (!strcmp(a, "--json"))
            opt.json = v;
        else if (!strcmp(a, "--table"))
            opt.table = v;
        else if (!strcmp(a, "--label"))
            opt.label = v;
        else if (!strcmp(a, "--origin"))
            opt.origin = v;
        else if (!strcmp(a, "--on-measure"))
            opt.on_measure = v;
        else if (!strcmp(a, "--user")) {
            const char *c = strchr(v, ':');
            if (!c || opt.nusers == MAXUSERS)
                die("--user NAME:PASS");
            opt.user[opt.nusers] = strndup(v, (size_t)(c - v));
            opt.pass[opt.nusers++] = strdup(c + 1);
        } else
            die("unknown option %s", a);
    }
    if (!opt.nusers) {
        static const char *du[] = {"testuser", "alice", "bob", "carol"};
        static const char *dp[] = {"testpass123", "alice-pass-1", "bob-pass-1", "carol-pass-1"};
        for (int i = 0; i < 4; i++) {
            opt.user[i] = (char *)du[i];
            opt.pass[i] = (char *)dp[i];
        }
        opt.nusers = 4;
    }
    if (opt.conns < 1 || opt.pubs < 1 || opt.rooms < 1 || opt.concurrency < 1)
        die("bad counts");
    if (!(opt.timeout > 0))
        die("--timeout must be > 0");
    if (opt.size < 32)
        opt.size = 32;
    if (opt.size > 60000)
        die("--size too large");
    if (!opt.label)
        opt.label = argv[1];
}

/* ---- login (blocking, once per user, before the loop starts) ---------------- */

static int tcp_connect_blocking(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
    if (fd < 0 || inet_pton(AF_INET, opt.host, &sa.sin_addr) != 1)
        die("bad host %s", opt.host);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        die("connect %s:%d: %s", opt.host, opt.port, strerror(errno));
    return fd;
}

static void form_escape(char *out, size_t cap, const char *s) {
    size_t o = 0;
    for (; *s && o + 4 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.')
            out[o++] = (char)ch;
        else
            o += (size_t)snprintf(out + o, cap - o, "%%%02X", ch);
    }
    out[o] = 0;
}

static void login(int u) {
    char eu[256], ep[256], body[600], req[1200], resp[8192];
    form_escape(eu, sizeof eu, opt.user[u]);
    form_escape(ep, sizeof ep, opt.pass[u]);
    int bl = snprintf(body, sizeof body, "username=%s&password=%s", eu, ep);
    int rl = snprintf(req, sizeof req,
                      "POST /login HTTP/1.1\r\nHost: %s:%d\r\n"
                      "Content-Type: application/x-www-form-urlencoded\r\n"
                      "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                      opt.host, opt.port, bl, body);
    int fd = tcp_connect_blocking();
    struct timeval tv = {.tv_sec = (time_t)opt.timeout,
                         .tv_usec = (suseconds_t)((opt.timeout - (double)(time_t)opt.timeout) * 1e6)};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (write(fd, req, (size_t)rl) != rl)
        die("login write: %s", strerror(errno));
    size_t got = 0;
    ssize_t n;
    while (got < sizeof resp - 1 && (n = read(fd, resp + got, sizeof resp - 1 - got)) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("login as %s: %s after %.0f s (POST /login must answer 302 with "
                "Set-Cookie: sessionid=...)",
                opt.user[u], errno == EAGAIN || errno == EWOULDBLOCK ? "no answer" : strerror(errno),
                opt.timeout);
        }
        got += (size_t)n;
        resp[got] = 0;
        if (strstr(resp, "\r\n\r\n"))
            break;
    }
    close(fd);
    resp[got] = 0;
    const char *c = strcasestr(resp, "\nset-cookie: sessionid=");
    if (strncmp(resp, "HTTP/1.1 302", 12) != 0 || !c)
        die("login as %s failed: %.60s", opt.user[u], resp);
    c += strlen("\nset-cookie: sessionid=");
    size_t l = strcspn(c, ";\r\n");
    if (l >= sizeof opt.cookie[u])
        die("cookie too long");
    memcpy(opt.cookie[u], c, l);
    opt.cookie[u][l] = 0;
}

/* ---- connections ------------------------------------------------------------ */

#define RING 4096u /* per-connection messages in flight (open loop backlog) */

typedef struct conn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    int id, role, idx, state, room, user, port;
    char *rbuf;
    size_t rlen, rcap;
    char *frag;
    size_t fraglen, fragcap;
    uint64_t *ring;          /* scheduled send time by seq % RING */
    uint64_t head, tail;     /* seq sent / seq completed (complete or pong) */
    uint64_t own;            /* own chat frames received (echo) */
    bool auth_ok;            /* got `authentication` with status 200 */
    char last[24];           /* the last action received, for the --timeout diagnosis */
    uv_timer_t retry;        /* storm: the back-off before reconnecting */
    int attempts;            /* storm: reconnects since it was last ready */
} conn_t;

typedef struct {
    uv_write_t req;
    uv_buf_t buf;
    char data[];
} wreq_t;

static uv_loop_t *loop;
static conn_t *conns;
static int nconns, nready, nclosed_early, nconnecting, next_connect;
static unsigned run_id;
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static struct {
    uint64_t sent, recv_primary, recv_complete, errors, frames_in, bytes_in, chat_in, foreign,
        late_unknown, backlog_skips, write_errors, server_errors;
    hist_t lat, lat_complete;
    uint64_t t_conn0, t_ready, t0, t_send_end, t_end;
    bool sending, measuring;
    /* fanout */
    uint64_t nmsg;
    uint64_t *gsched;
    uint8_t *seen; /* subscriber x message receipt counts */
    uint64_t delivered, dups, pub_recv;
    uint64_t srv_cpu0, srv_cpu1, rss0, rss1;
    uint64_t aux_cpu0, aux_cpu1; /* --aux-pid */
    double cpu0, cpu1, cpu_ready;
    uint64_t srv_ready, srv_end;
    /* storm */
    bool storm_armed;
    uint64_t t_first_close, t_last_close, t_first_back, t_whole, attempts, refused;
} st;

static uint64_t xorshift(void) {
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static void on_write(uv_write_t *req, int status) {
    if (status < 0)
        st.write_errors++;
    free(req);
}

static void conn_write(conn_t *c, const char *p, size_t len) {
    if (c->state == S_CLOSED)
        return;
    if (c->tcp.write_queue_size == 0) {
        uv_buf_t b = uv_buf_init((char *)p, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (n == (int)len)
            return;
        if (n < 0 && n != UV_EAGAIN) {
            st.write_errors++;
            return;
        }
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        }
    }
    wreq_t *w = malloc(sizeof *w + len);
    if (!w)
        die("out of memory");
    memcpy(w->data, p, len);
    w->buf = uv_buf_init(w->data, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &w->buf, 1, on_write) < 0) {
        st.write_errors++;
        free(w);
    }
}

/* One masked client frame. */
static void ws_send(conn_t *c, int opcode, const char *payload, size_t len) {
    char buf[65600];
    size_t h = 0;
    buf[h++] = (char)(0x80 | opcode);
    if (len < 126) {
        buf[h++] = (char)(0x80 | len);
    } else {
        buf[h++] = (char)(0x80 | 126);
        buf[h++] = (char)(len >> 8);
        buf[h++] = (char)(len & 0xff);
    }
    uint32_t key = (uint32_t)xorshift();
    unsigned char m[4];
    memcpy(m, &key, 4);
    memcpy(buf + h, m, 4);
    h += 4;
    for (size_t i = 0; i < len; i++)
        buf[h + i] = (char)(payload[i] ^ m[i & 3]);
    conn_write(c, buf, h + len);
}

static const char pad64[] =
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789xy";

/* Send message seq of connection c, scheduled at t. */
static void send_msg(conn_t *c, uint64_t seq, uint64_t t) {
    char text[65536];
    size_t n;
    if (opt.kind == K_PING && opt.mode == M_ECHO) {
        static const char ping[] = "{\"action\":\"ping\",\"payload\":null}";
        n = sizeof ping - 1;
        memcpy(text, ping, n);
    } else {
        int m = snprintf(text, sizeof text, "{\"action\":\"chat\",\"payload\":\"b%u-%d-%" PRIu64 "-",
                         run_id, c->idx, seq);
        n = (size_t)m;
        size_t textlen = n - 28; /* chars of the chat text so far */
        while (textlen < (size_t)opt.size) {
            size_t k = (size_t)opt.size - textlen;
            if (k > 64)
                k = 64;
            memcpy(text + n, pad64, k);
            n += k;
            textlen += k;
        }
        memcpy(text + n, "\"}", 2);
        n += 2;
    }
    ws_send(c, 1, text, n);
    st.sent++;
    (void)t;
}

/* ---- receiving ---------------------------------------------------------------- */

static void finish(void);
static void start_connect(void);
static void begin_run(void);
static void storm_whole(void);

/* Parse "b<run>-<id>-<seq>-" at p; false if not ours. */
static bool parse_marker(const char *p, const char *end, int *id, uint64_t *seq) {
    if (p >= end || *p != 'b')
        return false;
    p++;
    uint64_t v[3] = {0, 0, 0};
    for (int k = 0; k < 3; k++) {
        if (p >= end || *p < '0' || *p > '9')
            return false;
        while (p < end && *p >= '0' && *p <= '9')
            v[k] = v[k] * 10 + (uint64_t)(*p++ - '0');
        if (p >= end || *p != '-')
            return false;
        p++;
    }
    if (v[0] != run_id)
        return false;
    *id = (int)v[1];
    *seq = v[2];
    return true;
}

/* The value of "action" (first key the server writes, but don't rely on it). */
static const char *action_of(const char *m, size_t len, size_t *alen) {
    const char *a = memmem(m, len < 64 ? len : 64, "\"action\"", 8);
    if (!a)
        return NULL;
    a += 8;
    const char *end = m + len;
    while (a < end && (*a == ' ' || *a == ':'))
        a++;
    if (a >= end || *a != '"')
        return NULL;
    a++;
    const char *q = memchr(a, '"', (size_t)(end - a));
    if (!q)
        return NULL;
    *alen = (size_t)(q - a);
    return a;
}

#define IS(s) (alen == sizeof(s) - 1 && memcmp(act, s, alen) == 0)

static void on_primary(conn_t *c, uint64_t sched, uint64_t now) {
    st.recv_primary++;
    if (st.measuring)
        hist_add(&st.lat, now - sched);
    if (opt.inflight && st.sending) { /* closed loop: the next one now */
        if (c->head - c->tail < RING) {
            c->ring[c->head % RING] = now;
            send_msg(c, c->head, now);
            c->head++;
        }
    }
}

static void on_message(conn_t *c, const char *m, size_t len) {
    uint64_t now = now_ns();
    size_t alen = 0;
    const char *act = action_of(m, len, &alen);
    st.frames_in++;
    st.bytes_in += len;
    if (!act) {
        if (c->state != S_READY)
            snprintf(c->last, sizeof c->last, "(no action)");
        return;
    }
    if (c->state != S_READY)
        snprintf(c->last, sizeof c->last, "%.*s", (int)(alen < 20 ? alen : 20), act);
    if (IS("chat")) {
        st.chat_in++;
        const char *p = memmem(m, len, "\"payload\":\"", 11);
        if (!p)
            p = memmem(m, len, "\"payload\": \"", 12), p = p ? p + 1 : p;
        if (!p)
            return;
        p += 11;
        int id;
        uint64_t seq;
        if (!parse_marker(p, m + len, &id, &seq))
            return; /* history, another run, another client */
        if (opt.mode == M_ECHO) {
            if (id != c->idx) {
                st.foreign++;
                return;
            }
            if (seq >= c->head || c->head - seq > RING) {
                st.late_unknown++;
                return;
            }
            c->own++;
            if (opt.kind == K_CHAT)
                on_primary(c, c->ring[seq % RING], now);
        } else if (opt.mode == M_FANOUT) {
            if (c->role != R_SUB) {
                st.pub_recv++;
                return;
            }
            if (seq >= st.nmsg) {
                st.late_unknown++;
                return;
            }
            uint8_t *s = &st.seen[(size_t)c->idx * st.nmsg + seq];
            if (*s) {
                st.dups++;
                if (*s < 255)
                    (*s)++;
                return;
            }
            *s = 1;
            st.delivered++;
            st.recv_primary++;
            hist_add(&st.lat, now - st.gsched[seq]);
        }
    } else if (opt.kind == K_PING ? IS("pong") : IS("complete")) {
        /* the consumer answers a ping with pong *and* complete: pop on one */
        if (opt.mode != M_ECHO || c->tail >= c->head)
            return;
        uint64_t sched = c->ring[c->tail % RING];
        c->tail++;
        if (IS("pong")) {
            on_primary(c, sched, now);
        } else {
            st.recv_complete++;
            if (st.measuring)
                hist_add(&st.lat_complete, now - sched);
        }
    } else if (IS("history")) {
        if (c->state == S_JOINING) {
            c->state = S_READY;
            nready++;
            nconnecting--;
            if (st.storm_armed) {
                c->attempts = 0;
                nconnecting++; /* not counted in the storm */
                if (!st.t_first_back)
                    st.t_first_back = now_ns();
                if (nready == nconns)
                    storm_whole();
            } else {
                start_connect();
                if (nready == nconns)
                    begin_run();
            }
        }
    } else if (IS("error")) {
        st.server_errors++;
    } else if (IS("authentication")) {
        c->auth_ok = memmem(m, len, "\"status_code\":200", 17) ||
                     memmem(m, len, "\"status_code\": 200", 18);
        if (!c->auth_ok) {
            fprintf(stderr, "chanc-bench: conn %d refused: %.*s\n", c->id, (int)len, m);
            st.errors++;
        }
    }
}

static void storm_closed(uv_handle_t *h);

static void conn_close(conn_t *c, const char *why) {
    if (c->state == S_CLOSED)
        return;
    if (st.storm_armed) { /* the server went (or refused): back off, come back */
        if (c->state == S_READY) {
            nready--;
            st.t_last_close = now_ns();
            if (!st.t_first_close)
                st.t_first_close = st.t_last_close;
        } else {
            st.refused++;
        }
        c->state = S_CLOSED;
        uv_read_stop((uv_stream_t *)&c->tcp);
        uv_close((uv_handle_t *)&c->tcp, storm_closed);
        return;
    }
    if (c->state != S_READY) {
        nclosed_early++;
        nconnecting--;
        fprintf(stderr, "chanc-bench: conn %d failed while connecting: %s\n", c->id, why);
    } else if (!st.t_end) {
        fprintf(stderr, "chanc-bench: conn %d closed during the run: %s\n", c->id, why);
    }
    st.errors++;
    c->state = S_CLOSED;
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (nclosed_early && nready + nclosed_early == nconns)
        die("%d connections failed", nclosed_early);
}

static void handle_frames(conn_t *c) {
    size_t off = 0;
    while (c->state != S_CLOSED) {
        const unsigned char *p = (const unsigned char *)c->rbuf + off;
        size_t avail = c->rlen - off;
        if (avail < 2)
            break;
        int fin = p[0] & 0x80, op = p[0] & 0x0f;
        uint64_t len = p[1] & 0x7f;
        size_t h = 2;
        if (p[1] & 0x80) {
            conn_close(c, "masked server frame");
            return;
        }
        if (len == 126) {
            if (avail < 4)
                break;
            len = ((uint64_t)p[2] << 8) | p[3];
            h = 4;
        } else if (len == 127) {
            if (avail < 10)
                break;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = (len << 8) | p[2 + i];
            h = 10;
        }
        if (avail < h + len)
            break;
        const char *pl = (const char *)p + h;
        off += h + (size_t)len;
        if (op == 0x8) {
            conn_close(c, "close frame");
            return;
        } else if (op == 0x9) {
            ws_send(c, 0xA, pl, (size_t)len);
        } else if (op == 0x1 || op == 0x2 || op == 0x0) {
            if (fin && op != 0 && !c->fraglen) {
                on_message(c, pl, (size_t)len);
            } else {
                if (c->fraglen + len > c->fragcap) {
                    c->fragcap = (c->fraglen + (size_t)len) * 2;
                    c->frag = realloc(c->frag, c->fragcap);
                    if (!c->frag)
                        die("out of memory");
                }
                memcpy(c->frag + c->fraglen, pl, (size_t)len);
                c->fraglen += (size_t)len;
                if (fin) {
                    on_message(c, c->frag, c->fraglen);
                    c->fraglen = 0;
                }
            }
        }
    }
    if (off) {
        memmove(c->rbuf, c->rbuf + off, c->rlen - off);
        c->rlen -= off;
    }
}

static void on_alloc(uv_handle_t *h, size_t sug, uv_buf_t *b) {
    conn_t *c = h->data;
    (void)sug;
    if (c->rcap - c->rlen < 65536) {
        c->rcap = c->rcap ? c->rcap * 2 : 131072;
        c->rbuf = realloc(c->rbuf, c->rcap);
        if (!c->rbuf)
            die("out of memory");
    }
    *b = uv_buf_init(c->rbuf + c->rlen, (unsigned)(c->rcap - c->rlen));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
    conn_t *c = s->data;
    (void)b;
    if (n < 0) {
        conn_close(c, n == UV_EOF ? "EOF" : uv_strerror((int)n));
        return;
    }
    c->rlen += (size_t)n;
    if (c->state == S_UPGRADING) {
        char *e = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
        if (!e)
            return;
        if (c->rlen < 12 || memcmp(c->rbuf, "HTTP/1.1 101", 12) != 0) {
            conn_close(c, "upgrade not answered with 101");
            return;
        }
        if (!memmem(c->rbuf, (size_t)(e - c->rbuf), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", 28)) {
            conn_close(c, "bad Sec-WebSocket-Accept");
            return;
        }
        size_t hl = (size_t)(e + 4 - c->rbuf);
        memmove(c->rbuf, c->rbuf + hl, c->rlen - hl);
        c->rlen -= hl;
        c->state = S_JOINING;
    }
    handle_frames(c);
}

/* Sec-WebSocket-Key "dGhlIHNhbXBsZSBub25jZQ==" is RFC 6455's example; its
 * accept value (checked above) is s3pPLMBiTxaQ9kYGzzhZRbK+xOo=. */
static void on_connect(uv_connect_t *req, int status) {
    conn_t *c = req->data;
    if (status < 0) {
        conn_close(c, uv_strerror(status));
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->state = S_UPGRADING;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    char req_s[1024], origin[300] = "";
    if (opt.origin)
        snprintf(origin, sizeof origin, "Origin: %s\r\n", opt.origin);
    int n = snprintf(req_s, sizeof req_s,
                     "GET /ws/chat/%d/ HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n%sCookie: sessionid=%s\r\n\r\n",
                     c->room, opt.host, c->port, origin, opt.cookie[c->user]);
    conn_write(c, req_s, (size_t)n);
}

/* While connecting: fail with a diagnosis, not a hang, when no connection
 * has become ready for --timeout seconds. */
static uv_timer_t connect_watch;
static int watch_ready = -1;
static uint64_t watch_since;

static void on_connect_watch(uv_timer_t *t) {
    uint64_t now = now_ns();
    if (nready == nconns) {
        uv_timer_stop(t);
        return;
    }
    if (nready != watch_ready) {
        watch_ready = nready;
        watch_since = now;
        return;
    }
    if ((double)(now - watch_since) < opt.timeout * 1e9)
        return;
    int n[S_CLOSED + 1] = {0}, noauth = 0;
    const char *last = NULL;
    for (int i = 0; i < next_connect; i++) {
        n[conns[i].state]++;
        if (conns[i].state == S_JOINING) {
            noauth += !conns[i].auth_ok;
            if (conns[i].last[0])
                last = conns[i].last;
        }
    }
    fprintf(stderr,
            "chanc-bench: no connection became ready for %.0f s (%d of %d ready): %d waiting for "
            "the TCP connect, %d for the HTTP 101 answer, %d upgraded but without a `history` "
            "frame (%d of them without `authentication` status 200; last action received: %s), "
            "%d closed.\n"
            "chanc-bench: a server under test must answer the upgrade of /ws/chat/<room>/ with "
            "101, then send {\"action\":\"authentication\",...\"status_code\":200...} and "
            "{\"action\":\"history\",...} (README, Wire protocol)\n",
            opt.timeout, nready, nconns, n[S_CONNECTING], n[S_UPGRADING], n[S_JOINING], noauth,
            last ? last : "none", n[S_CLOSED]);
    exit(2);
}

static void connect_one(conn_t *c) {
    struct sockaddr_in sa;
    uv_ip4_addr(opt.host, c->port, &sa);
    c->state = S_CONNECTING;
    c->rlen = c->fraglen = 0;
    c->auth_ok = false;
    c->last[0] = 0;
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    c->creq.data = c;
    int rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&sa, on_connect);
    if (rc < 0)
        die("connect: %s", uv_strerror(rc));
}

static void start_connect(void) {
    while (next_connect < nconns && nconnecting < opt.concurrency) {
        conn_t *c = &conns[next_connect];
        /* --ports: the connections are dealt out over the servers in turn */
        c->port = opt.nports ? opt.ports[next_connect % opt.nports] : opt.port;
        next_connect++;
        nconnecting++;
        connect_one(c);
    }
}

/* ---- storm: reconnecting with jittered exponential back-off ----------------------- */

static void on_retry(uv_timer_t *t) {
    conn_t *c = t->data;
    st.attempts++;
    connect_one(c);
}

/* The socket is closed: wait base * (0.5 + rand / 2), base doubling from
 * --backoff-first up to --backoff-max with each failed attempt. */
static void storm_closed(uv_handle_t *h) {
    conn_t *c = h->data;
    if (st.t_whole)
        return;
    double base = opt.backoff_first_ms * ldexp(1.0, c->attempts < 30 ? c->attempts : 30);
    if (base > opt.backoff_max_ms)
        base = opt.backoff_max_ms;
    c->attempts++;
    double r = (double)(xorshift() >> 11) / (double)(1ull << 53);
    if (!c->retry.loop)
        uv_timer_init(loop, &c->retry);
    c->retry.data = c;
    uv_timer_start(&c->retry, on_retry, (uint64_t)(base * (0.5 + r / 2)), 0);
}

static uv_timer_t storm_timer;

static void storm_report(bool whole) {
    double t = whole ? (double)(st.t_whole - st.t_first_close) / 1e9 : -1;
    printf("== %s (storm, %d conns, back-off %.0f-%.0f ms)\n", opt.label, nconns,
           opt.backoff_first_ms, opt.backoff_max_ms);
    printf("  connect            %d ready in %.2f s before the restart\n", nconns,
           (double)(st.t_ready - st.t_conn0) / 1e9);
    double last = st.t_last_close ? (double)(st.t_last_close - st.t_first_close) / 1e9 : -1;
    double back = st.t_first_back ? (double)(st.t_first_back - st.t_first_close) / 1e9 : -1;
    if (whole)
        printf("  restart            whole again %.2f s after the first close (%" PRIu64
               " reconnect attempts, %" PRIu64 " failed: server down or refusing); last close "
               "at %.2f s, first member back at %.2f s\n",
               t, st.attempts, st.refused, last, back);
    else
        printf("  restart            NOT whole after %.0f s: %d of %d ready (%" PRIu64
               " attempts, %" PRIu64 " failed)\n",
               opt.storm_timeout, nready, nconns, st.attempts, st.refused);
    fflush(stdout);
    if (opt.json) {
        FILE *f = fopen(opt.json, "a");
        if (!f)
            die("%s: %s", opt.json, strerror(errno));
        fprintf(f,
                "{\"label\":\"%s\",\"mode\":\"storm\",\"conns\":%d,\"connect_s\":%.3f,"
                "\"whole\":%s,\"whole_after_s\":%.3f,\"last_close_s\":%.3f,\"first_back_s\":%.3f,\"ready_at_end\":%d,\"attempts\":%" PRIu64
                ",\"failed_attempts\":%" PRIu64 ",\"backoff_first_ms\":%.0f,\"backoff_max_ms\":%.0f}\n",
                opt.label, nconns, (double)(st.t_ready - st.t_conn0) / 1e9, whole ? "true" : "false",
                t, last, back, nready, st.attempts, st.refused, opt.backoff_first_ms, opt.backoff_max_ms);
        fclose(f);
    }
    _exit(whole ? 0 : 1);
}

static void storm_whole(void) {
    st.t_whole = now_ns();
    storm_report(true);
}

static void on_storm_timeout(uv_timer_t *t) {
    (void)t;
    if (!st.t_first_close) { /* the server has not gone yet: wait on */
        uv_timer_start(&storm_timer, on_storm_timeout, 1000, 0);
        return;
    }
    if ((double)(now_ns() - st.t_first_close) >= opt.storm_timeout * 1e9)
        storm_report(false);
    uv_timer_start(&storm_timer, on_storm_timeout, 1000, 0);
}

/* All ready: tell the driver (--ready-file) and wait for the server to go. */
static void storm_arm(void) {
    st.storm_armed = true;
    fprintf(stderr, "chanc-bench: %d connections ready; restart the server now\n", nconns);
    if (opt.ready_file) {
        FILE *f = fopen(opt.ready_file, "w");
        if (!f)
            die("%s: %s", opt.ready_file, strerror(errno));
        fclose(f);
    }
    uv_timer_init(loop, &storm_timer);
    uv_timer_start(&storm_timer, on_storm_timeout, 1000, 0);
}

/* ---- the run ------------------------------------------------------------------- */

static double cpu_self(void);
static uint64_t server_cpu_ticks(void);
static void wait_server_idle(double max_s);
static uv_poll_t tick_poll;
static int tfd = -1;
static uv_timer_t end_timer;
static uint64_t next_k;

static void arm(uint64_t t) {
    struct itimerspec its = {.it_value = {.tv_sec = (time_t)(t / 1000000000u),
                                          .tv_nsec = (long)(t % 1000000000u)}};
    if (timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
        die("timerfd: %s", strerror(errno));
}

static uint64_t sched_of(uint64_t k) {
    return st.t0 + (uint64_t)((long double)k * 1e9L / (long double)opt.rate);
}

static void on_tick(uv_poll_t *h, int status, int events) {
    (void)h;
    (void)status;
    (void)events;
    uint64_t exp;
    if (read(tfd, &exp, sizeof exp) < 0 && errno != EAGAIN)
        die("timerfd read");
    if (!st.sending)
        return;
    if (opt.inflight) { /* closed loop: the end of the sending time */
        st.sending = false;
        uv_poll_stop(&tick_poll);
        return;
    }
    uint64_t now = now_ns();
    if (next_k == 0) { /* the measurement starts with the first scheduled send */
        mark_start_cpu();
    }
    for (;;) {
        uint64_t t = sched_of(next_k);
        if (t >= st.t_send_end) {
            st.sending = false;
            uv_poll_stop(&tick_poll);
            return;
        }
        if (t > now) {
            arm(t);
            return;
        }
        if (opt.mode == M_ECHO) {
            conn_t *c = &conns[next_k % (uint64_t)nconns];
            if (c->state != S_READY || c->head - c->tail >= RING) {
                st.backlog_skips++;
            } else {
                c->ring[c->head % RING] = t;
                send_msg(c, c->head, t);
                c->head++;
            }
        } else { /* fanout */
            if (next_k < st.nmsg) {
                conn_t *c = &conns[opt.conns + (int)(next_k % (uint64_t)opt.pubs)];
                st.gsched[next_k] = t;
                send_msg(c, next_k, t);
            }
        }
        next_k++;
    }
}

static double cpu_self(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static uint64_t pid_cpu_ticks(int pid) {
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p)
        return 0;
    unsigned long ut = 0, stt = 0;
    /* after ")": state(3) ... utime is field 14, stime 15 */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &stt) != 2)
        return 0;
    return (uint64_t)ut + stt;
}

/* Every server process's CPU time, summed. */
static uint64_t server_cpu_ticks(void) {
    uint64_t t = 0;
    for (int i = 0; i < opt.npids; i++)
        t += pid_cpu_ticks(opt.pids[i]);
    return t;
}

/* Until the server's CPU time stops growing (joins and leaves of earlier
 * connections broadcast user_joined / user_left to the whole room). */
static void wait_server_idle(double max_s) {
    if (!opt.server_pid)
        return;
    uint64_t t_end = now_ns() + (uint64_t)(max_s * 1e9), prev = server_cpu_ticks();
    while (now_ns() < t_end) {
        usleep(150000);
        uint64_t cur = server_cpu_ticks();
        if (cur - prev <= 1)
            return;
        prev = cur;
    }
    fprintf(stderr, "chanc-bench: server still busy after %.0f s\n", max_s);
}

/* The measured window starts: CPU counters of us, the servers, aux. */
static void mark_start_cpu(void) {
    st.srv_cpu0 = server_cpu_ticks();
    st.aux_cpu0 = opt.aux_pid ? pid_cpu_ticks(opt.aux_pid) : 0;
    st.cpu0 = cpu_self();
}

static uint64_t server_rss_kib(void) {
    uint64_t v = 0;
    for (int i = 0; i < opt.npids; i++) {
        char path[64], line[256];
        snprintf(path, sizeof path, "/proc/%d/status", opt.pids[i]);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "VmRSS:", 6))
                v += strtoull(line + 6, NULL, 10);
        fclose(f);
    }
    return v;
}

static uint64_t expected_primary(void) {
    if (opt.mode == M_FANOUT)
        return st.sent * (uint64_t)opt.conns;
    return st.sent;
}

static uv_timer_t drain_check;
static void on_drain_check(uv_timer_t *t) {
    (void)t;
    uint64_t now = now_ns();
    bool done = !st.sending && st.recv_primary >= expected_primary() &&
                (opt.mode != M_ECHO || opt.kind != K_CHAT || st.recv_complete >= st.sent);
    if (opt.mode == M_IDLE || opt.mode == M_CONNECT)
        done = now >= st.t_send_end;
    if (done || (!st.sending && now >= st.t_send_end + (uint64_t)(opt.drain * 1e9)))
        finish();
}

static void start_measure(void);
static uv_timer_t settle_timer;
static uint64_t settle_prev, settle_deadline;

/* Wait (on the loop, reading) until the server's CPU stops growing: joins
 * broadcast user_joined to the whole room, O(N^2) frames for N joiners. */
static void on_settle(uv_timer_t *t) {
    uint64_t cur = server_cpu_ticks();
    if (!opt.server_pid || cur - settle_prev <= 1 || now_ns() > settle_deadline) {
        uv_timer_stop(t);
        start_measure();
    }
    settle_prev = cur;
}

static void begin_run(void) {
    st.t_ready = now_ns();
    st.cpu_ready = cpu_self();
    st.srv_ready = server_cpu_ticks();
    st.rss1 = server_rss_kib();
    fprintf(stderr, "chanc-bench: %d connections ready in %.2f s\n", nconns,
            (double)(st.t_ready - st.t_conn0) / 1e9);
    settle_prev = server_cpu_ticks();
    settle_deadline = now_ns() + 20000000000ull;
    uv_timer_start(&settle_timer, on_settle, 150, 150);
}

/* --on-measure: a helper (a profiler) that sees only the measured window. */
static pid_t helper_pid;

static void helper_start(void) {
    if (!opt.on_measure || opt.mode == M_IDLE || opt.mode == M_CONNECT)
        return;
    fflush(NULL);
    helper_pid = fork();
    if (helper_pid < 0)
        die("fork: %s", strerror(errno));
    if (helper_pid == 0) {
        setpgid(0, 0); /* its own group: the SIGINT reaches the command, not only sh */
        execl("/bin/sh", "sh", "-c", opt.on_measure, (char *)NULL);
        _exit(127);
    }
}

static void helper_stop(void) {
    if (helper_pid <= 0)
        return;
    kill(-helper_pid, SIGINT);
    kill(helper_pid, SIGINT);
    int status;
    for (int i = 0; waitpid(helper_pid, &status, WNOHANG) == 0; i++) {
        if (i == 300) { /* 30 s: a profiler writing its data takes far less */
            fprintf(stderr, "chanc-bench: --on-measure command ignored SIGINT; killed\n");
            kill(-helper_pid, SIGKILL);
            kill(helper_pid, SIGKILL);
            waitpid(helper_pid, &status, 0);
            break;
        }
        usleep(100000);
    }
    helper_pid = 0;
}

static void start_measure(void) {
    if (opt.mode == M_STORM) {
        storm_arm();
        return;
    }
    helper_start();
    if (opt.mode == M_IDLE)
        st.rss1 = server_rss_kib();
    st.measuring = true;
    if (opt.mode == M_IDLE || opt.mode == M_CONNECT) {
        /* measured from the first connect to the last `history` */
        st.t0 = st.t_conn0;
        st.t_send_end = st.t_ready;
        uv_timer_start(&drain_check, on_drain_check,
                       opt.mode == M_CONNECT ? (uint64_t)(opt.linger * 1000) : 0, 0);
        return;
    }
    st.t0 = now_ns() + 50000000u;
    mark_start_cpu();
    st.t_send_end = st.t0 + (uint64_t)(opt.duration * 1e9);
    if (opt.inflight) {
        st.sending = true;
        st.t0 = now_ns();
        st.t_send_end = st.t0 + (uint64_t)(opt.duration * 1e9);
        for (int k = 0; k < opt.inflight; k++) {
            conn_t *c = &conns[k % nconns];
            c->ring[c->head % RING] = st.t0;
            send_msg(c, c->head, st.t0);
            c->head++;
        }
        uv_poll_start(&tick_poll, UV_READABLE, on_tick);
        arm(st.t_send_end); /* stops the closed loop */
    } else {
        st.sending = true;
        if (opt.mode == M_FANOUT) {
            st.nmsg = (uint64_t)ceil(opt.rate * opt.duration);
            st.gsched = calloc(st.nmsg, sizeof *st.gsched);
            st.seen = calloc((size_t)opt.conns * st.nmsg, 1);
            if (!st.gsched || !st.seen)
                die("out of memory");
        }
        uv_poll_start(&tick_poll, UV_READABLE, on_tick);
        arm(st.t0);
    }
    uv_timer_start(&drain_check, on_drain_check, 20, 20);
}

static void json_hist(FILE *f, const char *name, const hist_t *h) {
    fprintf(f,
            ",\"%s\":{\"count\":%" PRIu64 ",\"mean_us\":%.1f,\"p50_us\":%.1f,\"p90_us\":%.1f,"
            "\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f}",
            name, h->count, h->count ? (double)(h->sum / h->count) / 1e3 : 0.0,
            hist_pct(h, .5) / 1e3, hist_pct(h, .9) / 1e3, hist_pct(h, .99) / 1e3,
            hist_pct(h, .999) / 1e3, h->max / 1e3);
}

static void print_hist(const char *name, const hist_t *h) {
    printf("  %-18s n=%-8" PRIu64 " p50 %8.3f  p90 %8.3f  p99 %8.3f  p99.9 %8.3f  max %8.3f ms\n",
           name, h->count, hist_pct(h, .5) / 1e6, hist_pct(h, .9) / 1e6, hist_pct(h, .99) / 1e6,
           hist_pct(h, .999) / 1e6, h->max / 1e6);
}

static void finish(void) {
    st.t_end = now_ns();
    st.cpu1 = cpu_self();
    st.srv_cpu1 = server_cpu_ticks();
    st.aux_cpu1 = opt.aux_pid ? pid_cpu_ticks(opt.aux_pid) : 0;
    helper_stop();
    st.srv_end = st.srv_cpu1;
    if (opt.mode == M_IDLE || opt.mode == M_CONNECT) {
        st.t_end = st.t_ready;
        st.cpu1 = st.cpu_ready;
        st.srv_cpu1 = st.srv_ready;
    }
    uv_timer_stop(&drain_check);
    if (opt.mode != M_IDLE)
        st.rss1 = st.rss1 ? st.rss1 : server_rss_kib();
    double dur = opt.inflight ? (double)(st.t_send_end - st.t0) / 1e9 : opt.duration;
    double wall = (double)(st.t_end - st.t0) / 1e9;
    double cli = st.cpu1 - st.cpu0;
    double hz = (double)sysconf(_SC_CLK_TCK);
    double srv = opt.server_pid ? (double)(st.srv_cpu1 - st.srv_cpu0) / hz : -1;
    uint64_t missing = 0;
    /* what the server delivered (the divisor of its CPU time): a saturated
     * server is charged for what it got done, not for what it was offered */
    uint64_t deliveries = 0;
    double rate_out = 0;
    if (opt.mode == M_FANOUT) {
        missing = st.sent * (uint64_t)opt.conns - st.delivered;
        deliveries = st.delivered + st.pub_recv; /* the publishers' own copies too */
        rate_out = (double)st.delivered / dur;
    } else if (opt.mode == M_ECHO) {
        missing = st.sent - st.recv_primary;
        deliveries = st.recv_primary;
        rate_out = (double)st.recv_primary / dur;
    }
    if ((opt.mode == M_ECHO || opt.mode == M_FANOUT) && st.sent && !st.recv_primary)
        fprintf(stderr,
                "chanc-bench: the server answered none of the %" PRIu64 " messages (expected %s)\n",
                st.sent,
                opt.mode == M_FANOUT       ? "each chat frame, with its marker, at every subscriber"
                : opt.kind == K_PING       ? "{\"action\":\"pong\",...} for each ping"
                                           : "the sender's own chat frame for each chat message");
    bool client_bound = wall > 0 && cli / wall > 0.90; /* the load core is saturated */
    double conn_rate = nconns / ((double)(st.t_ready - st.t_conn0) / 1e9);
    const char *mname[] = {"echo", "fanout", "idle", "connect", "storm"};
    printf("== %s (%s%s, %d conns", opt.label, mname[opt.mode],
           opt.mode == M_ECHO ? (opt.kind == K_PING ? "/ping" : "/chat") : "", nconns);
    if (opt.mode == M_FANOUT)
        printf(" = %d subs + %d pubs", opt.conns, opt.pubs);
    if (opt.mode == M_ECHO || opt.mode == M_FANOUT) {
        if (opt.inflight)
            printf(", closed loop %d in flight", opt.inflight);
        else
            printf(", open loop %.0f msg/s", opt.rate);
    }
    printf(")\n");
    printf("  connect            %d ready in %.2f s (%.0f handshakes+auth/s)\n", nconns,
           (double)(st.t_ready - st.t_conn0) / 1e9, conn_rate);
    if (opt.mode == M_CONNECT)
        printf("  received           %" PRIu64 " frames, %" PRIu64 " bytes = %.1f frames, %.0f bytes "
               "per join (until settled + %.1f s); server CPU %.2f s to then\n",
               st.frames_in, st.bytes_in, (double)st.frames_in / nconns,
               (double)st.bytes_in / nconns, opt.linger,
               opt.server_pid ? (double)(st.srv_end - st.srv_cpu0) / hz : -1.0);
    if (opt.mode == M_ECHO || opt.mode == M_FANOUT) {
        printf("  sent %" PRIu64 "  received %" PRIu64 "  missing %" PRIu64 "  dup %" PRIu64
               "  errors %" PRIu64 " (server error frames %" PRIu64 ", write %" PRIu64
               ", skipped %" PRIu64 ")\n",
               st.sent, st.recv_primary, missing, st.dups, st.errors, st.server_errors,
               st.write_errors, st.backlog_skips);
        printf("  duration %.2f s (+%.2f s drain)  %s %.0f/s\n", dur, wall - dur,
               opt.mode == M_FANOUT ? "deliveries" : "round trips", rate_out);
        print_hist(opt.kind == K_PING ? "ping->pong" : opt.mode == M_FANOUT ? "publish->deliver"
                                                                           : "send->own chat",
                   &st.lat);
        if (opt.mode == M_ECHO && opt.kind == K_CHAT)
            print_hist("send->complete", &st.lat_complete);
    }
    printf("  client CPU %.2f s = %.0f%% of one core%s", cli, wall > 0 ? 100 * cli / wall : 0,
           client_bound ? "  ** CLIENT-BOUND **" : "");
    if (srv >= 0)
        printf("  server CPU %.2f s = %.0f%%", srv, wall > 0 ? 100 * srv / wall : 0);
    if (srv >= 0 && deliveries)
        printf("  = %.1f us per %s", srv * 1e6 / (double)deliveries,
               opt.mode == M_FANOUT ? "delivery (subs+pubs)" : "message");
    double aux = opt.aux_pid ? (double)(st.aux_cpu1 - st.aux_cpu0) / hz : -1;
    if (aux >= 0 && st.sent)
        printf("\n  aux (pid %d) CPU %.2f s = %.1f us per message sent", opt.aux_pid, aux,
               aux * 1e6 / (double)st.sent);
    printf("\n");
    double rss_per = 0;
    if (opt.mode == M_IDLE && opt.server_pid) {
        rss_per = (double)(st.rss1 - st.rss0) / nconns;
        printf("  server RSS %" PRIu64 " -> %" PRIu64 " KiB = %.2f KiB per connection\n", st.rss0,
               st.rss1, rss_per);
    }
    fflush(stdout);
    if (opt.table) {
        FILE *f = fopen(opt.table, "a");
        if (!f)
            die("%s: %s", opt.table, strerror(errno));
        char offered[32] = "-", achieved[32] = "-", lat[64] = "-", note[96] = "";
        if (opt.mode == M_ECHO || opt.mode == M_FANOUT) {
            if (opt.inflight)
                snprintf(offered, sizeof offered, "K=%d", opt.inflight);
            else
                snprintf(offered, sizeof offered, "%.0f/s", opt.rate * (opt.mode == M_FANOUT ? opt.conns : 1));
            snprintf(achieved, sizeof achieved, "%.0f/s", rate_out);
            const hist_t *h = opt.mode == M_ECHO && opt.kind == K_CHAT ? &st.lat_complete : &st.lat;
            snprintf(lat, sizeof lat, "%.2f/%.2f/%.2f/%.1f", hist_pct(h, .5) / 1e6,
                     hist_pct(h, .99) / 1e6, hist_pct(h, .999) / 1e6, h->max / 1e6);
        } else {
            snprintf(achieved, sizeof achieved, "%.0f hs/s", conn_rate);
        }
        if (opt.mode == M_IDLE)
            snprintf(note, sizeof note, "RSS %.2f KiB/conn", rss_per);
        if (client_bound)
            snprintf(note + strlen(note), sizeof note - strlen(note), " CLIENT-BOUND");
        char srvs[24] = "-", srvp[16] = "-";
        if (srv >= 0 && deliveries)
            snprintf(srvs, sizeof srvs, "%.1f", srv * 1e6 / (double)deliveries);
        if (srv >= 0 && wall > 0)
            snprintf(srvp, sizeof srvp, "%.0f%%", 100 * srv / wall);
        fprintf(f, "%-22s %6d %9s %11s %-26s %9" PRIu64 "/%-3" PRIu64 " %5" PRIu64 " %8s %5s %5.0f%% %s\n",
                opt.label, nconns, offered, achieved, lat,
                opt.mode == M_FANOUT || opt.mode == M_ECHO ? missing : 0, st.dups, st.errors,
                srvs, srvp, wall > 0 ? 100 * cli / wall : 0, note);
        fclose(f);
    }
    if (opt.json) {
        FILE *f = fopen(opt.json, "a");
        if (!f)
            die("%s: %s", opt.json, strerror(errno));
        time_t tt = time(NULL);
        char date[32];
        strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&tt));
        fprintf(f,
                "{\"label\":\"%s\",\"date\":\"%s\",\"mode\":\"%s\",\"kind\":\"%s\",\"conns\":%d,"
                "\"pubs\":%d,\"rate\":%.1f,\"inflight\":%d,\"size\":%d,\"duration_s\":%.3f,"
                "\"wall_s\":%.3f,\"connect_s\":%.3f,\"handshakes_per_s\":%.1f,"
                "\"sent\":%" PRIu64 ",\"received\":%" PRIu64 ",\"missing\":%" PRIu64
                ",\"duplicated\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"server_error_frames\":%" PRIu64
                ",\"skipped\":%" PRIu64 ",\"rate_out_per_s\":%.1f,\"server_deliveries\":%" PRIu64
                ",\"client_cpu_s\":%.3f,\"client_cpu_share\":%.3f,\"client_bound\":%s,"
                "\"server_cpu_s\":%.3f,\"server_cpu_us_per_delivery\":%.2f,"
                "\"server_rss_kib_before\":%" PRIu64 ",\"server_rss_kib_after\":%" PRIu64
                ",\"server_rss_kib_per_conn\":%.3f,\"frames_in\":%" PRIu64 ",\"bytes_in\":%" PRIu64,
                opt.label, date, mname[opt.mode], opt.kind == K_PING ? "ping" : "chat", nconns,
                opt.mode == M_FANOUT ? opt.pubs : 0, opt.inflight ? 0 : opt.rate, opt.inflight,
                opt.size, dur, wall, (double)(st.t_ready - st.t_conn0) / 1e9, conn_rate, st.sent,
                st.recv_primary, missing, st.dups, st.errors, st.server_errors, st.backlog_skips,
                rate_out, deliveries, cli, wall > 0 ? cli / wall : 0,
                client_bound ? "true" : "false", srv,
                srv >= 0 && deliveries ? srv * 1e6 / (double)deliveries : -1.0, st.rss0, st.rss1,
                rss_per, st.frames_in, st.bytes_in);
        json_hist(f, "latency", &st.lat);
        if (opt.mode == M_ECHO && opt.kind == K_CHAT)
            json_hist(f, "latency_complete", &st.lat_complete);
        fprintf(f, "}\n");
        fclose(f);
    }
    /* No graceful close: exiting closes every socket at once. */
    _exit(st.errors || (opt.mode == M_FANOUT && (missing || st.dups)) ? 1 : 0);
}

int main(int argc, char **argv) {
    parse_args(argc, argv);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    run_id = (unsigned)((now_ns() ^ (uint64_t)getpid() * 2654435761u) % 1000000u);
    rng_state ^= now_ns();
    int used = opt.nusers < (opt.mode == M_FANOUT ? opt.conns + opt.pubs : opt.conns)
                   ? opt.nusers
                   : (opt.mode == M_FANOUT ? opt.conns + opt.pubs : opt.conns);
    for (int u = 0; u < used; u++)
        login(u);
    st.rss0 = server_rss_kib();

    loop = uv_default_loop();
    nconns = opt.mode == M_FANOUT ? opt.conns + opt.pubs : opt.conns;
    conns = calloc((size_t)nconns, sizeof *conns);
    if (!conns)
        die("out of memory");
    for (int i = 0; i < nconns; i++) {
        conn_t *c = &conns[i];
        c->id = i;
        c->role = opt.mode == M_FANOUT ? (i < opt.conns ? R_SUB : R_PUB) : R_ECHO;
        c->idx = c->role == R_PUB ? i - opt.conns : i;
        c->room = opt.mode == M_FANOUT ? opt.room : opt.room + i % opt.rooms;
        c->user = i % used;
        if (opt.mode == M_ECHO) {
            c->ring = calloc(RING, sizeof *c->ring);
            if (!c->ring)
                die("out of memory");
        }
    }
    tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (tfd < 0)
        die("timerfd_create: %s", strerror(errno));
    uv_poll_init(loop, &tick_poll, tfd);
    uv_timer_init(loop, &end_timer);
    uv_timer_init(loop, &drain_check);
    uv_timer_init(loop, &settle_timer);
    uv_timer_init(loop, &connect_watch);
    wait_server_idle(30);
    st.rss0 = server_rss_kib();
    st.srv_cpu0 = server_cpu_ticks();
    st.cpu0 = cpu_self();
    st.t_conn0 = now_ns();
    start_connect();
    uv_timer_start(&connect_watch, on_connect_watch, 0, 250);
    uv_run(loop, UV_RUN_DEFAULT);
    return 1;
}
