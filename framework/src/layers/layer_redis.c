/* The Redis channel layer: groups shared between processes through Redis
 * pub/sub, with hiredis's asynchronous API on the app's libuv loop. The
 * only file that includes hiredis; its own library (chanc_redis), written
 * against the public headers like any layer a user would write. */
#include <ctype.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "../core/map_internal.h" /* a container: map.c is compiled in here too */
#include "chanc/app.h"
#include "chanc/layer.h"
#include "chanc/log.h"

/* Wire format of a published message (binary-safe, parsed without JSON):
 *   "C1 <kind> <flags> <node:16 hex> <n> <user length|-> <target length>\n"
 *   <user bytes><target bytes><frame bytes>
 * kind g: group message (target empty); c: channel message (target: the
 * channel name); s: settle marker to the sender's own channel, n = how many
 * holds it releases. For g and c, n is the sending connection (0: none). */
#define HEADER_MAX 96

typedef struct redis_layer redis_layer_t;

typedef struct rconn {
    redis_layer_t *L;
    const char *role;        /* "subscriber" / "publisher", for the log */
    redisAsyncContext *ac;   /* NULL while down */
    bool up;                 /* connected (sub: own channel subscribed) */
    bool was_up;             /* the next success is a reconnect */
    bool failing;            /* an attempt failed since the last success */
    bool initial_hold;       /* holding the app until the first attempt ends */
    bool resolving;
    uint32_t backoff_ms;
    uv_timer_t timer;
    uv_getaddrinfo_t gai;
} rconn_t;

/* A group this process wants (or is leaving). hiredis forgets a channel's
 * callback when an UNSUBSCRIBE reply comes, even if a SUBSCRIBE for the
 * same channel was sent meanwhile, so a re-subscribe waits for that
 * reply. */
typedef struct rgroup {
    bool wanted;          /* local members exist */
    bool on_server;       /* SUBSCRIBE sent on this connection, no UNSUBSCRIBE since */
    bool unsub_in_flight; /* UNSUBSCRIBE sent, reply not yet seen */
} rgroup_t;

struct redis_layer {
    chanc_layer_t base;
    uv_loop_t *loop;
    char *host, *user, *password;
    int port, db;
    char *prefix;       /* "chanc:0:" */
    char *node_channel; /* prefix "n:" <node hex> */
    char node_hex[17];
    uint32_t backoff_min, backoff_max, connect_timeout;
    bool track;
    rconn_t sub, pub;
    chanc__map_t groups; /* group name → rgroup_t */
    chanc_layer_stats_t stats;
    uint64_t dropped_logged; /* stats.dropped when the outage was last logged */
    /* Settle tracking: publishes not yet covered by a marker, holds whose
     * marker is on its way, SUBSCRIBEs awaiting their reply. */
    uint64_t unsynced, inflight, sub_pending;
    bool sync_scheduled;
    bool attached, destroying;
    int open_handles; /* timers and pending resolves; freed at 0 */
};

static const chanc_layer_ops_t redis_ops;

/* --- hiredis on libuv ------------------------------------------------------ */

/* hiredis 0.14's own libuv adapter drops the poll callback's error status:
 * a refused connect (POLLERR, which libuv reports as an error and stops
 * the poll) then never reaches hiredis and the context stays "connecting"
 * forever. This adapter hands errors to hiredis as readiness, as later
 * hiredis releases do, so it sees the socket error. */
typedef struct uv_events {
    redisAsyncContext *ac;
    uv_poll_t handle;
    int events;
} uv_events_t;

static void ev_poll(uv_poll_t *h, int status, int events) {
    uv_events_t *p = h->data;
    int ev = status < 0 ? p->events : events;
    if (p->ac && (ev & UV_READABLE))
        redisAsyncHandleRead(p->ac);
    if (p->ac && (ev & UV_WRITABLE))
        redisAsyncHandleWrite(p->ac);
}

static void ev_update(uv_events_t *p, int events) {
    p->events = events;
    if (events)
        uv_poll_start(&p->handle, events, ev_poll);
    else
        uv_poll_stop(&p->handle);
}

static void ev_add_read(void *d) { ev_update(d, ((uv_events_t *)d)->events | UV_READABLE); }
static void ev_del_read(void *d) { ev_update(d, ((uv_events_t *)d)->events & ~UV_READABLE); }
static void ev_add_write(void *d) { ev_update(d, ((uv_events_t *)d)->events | UV_WRITABLE); }
static void ev_del_write(void *d) { ev_update(d, ((uv_events_t *)d)->events & ~UV_WRITABLE); }
static void ev_closed(uv_handle_t *h) { free(h->data); }

static void ev_cleanup(void *d) {
    uv_events_t *p = d;
    p->ac = NULL; /* the context is going */
    uv_close((uv_handle_t *)&p->handle, ev_closed);
}

static int ev_attach(redisAsyncContext *ac, uv_loop_t *loop) {
    uv_events_t *p = calloc(1, sizeof *p);
    if (!p)
        return REDIS_ERR;
    if (uv_poll_init(loop, &p->handle, ac->c.fd) != 0) {
        free(p);
        return REDIS_ERR;
    }
    p->ac = ac;
    p->handle.data = p;
    ac->ev.data = p;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    return REDIS_OK;
}

static void start_connect(rconn_t *rc);

/* --- small helpers ------------------------------------------------------ */

static void hold(redis_layer_t *L) {
    if (L->base.app)
        chanc_app_hold(L->base.app);
}

static void release_n(redis_layer_t *L, uint64_t n) {
    while (L->base.app && n--)
        chanc_app_release(L->base.app);
}

static void free_layer(redis_layer_t *L) {
    free(L->host);
    free(L->user);
    free(L->password);
    free(L->prefix);
    free(L->node_channel);
    free(L);
}

static void handle_gone(redis_layer_t *L) {
    if (--L->open_handles == 0)
        free_layer(L);
}

static void on_timer_closed(uv_handle_t *h) { handle_gone(((rconn_t *)h->data)->L); }

/* --- URL ---------------------------------------------------------------- */

static int parse_url(redis_layer_t *L, const char *url, chanc_error_t *err) {
    static const char scheme[] = "redis://";
    const char *usage = "expected redis://[[user]:password@]host[:port][/db]";
    if (!url || strncmp(url, scheme, sizeof scheme - 1) != 0) {
        /* Never the URL itself: error texts get printed, and whatever is
         * wrong with it, it may hold the password. Its scheme at most. */
        size_t n = url ? strspn(url, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
                       : 0;
        if (n && n <= 16 && strncmp(url + n, "://", 3) == 0)
            return chanc_error_set(err, CHANC_EINVAL, "bad Redis URL: scheme \"%.*s\", not "
                                   "redis; %s", (int)n, url, usage);
        return chanc_error_set(err, CHANC_EINVAL, "bad Redis URL: it does not start with "
                               "redis://; %s", usage);
    }
    const char *p = url + sizeof scheme - 1;
    const char *at = strrchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (!colon)
            return chanc_error_set(err, CHANC_EINVAL, "bad Redis URL: no ':' before the "
                                   "password; %s", usage);
        if (colon > p)
            L->user = strndup(p, (size_t)(colon - p));
        L->password = strndup(colon + 1, (size_t)(at - colon - 1));
        p = at + 1;
    }
    const char *host_end;
    if (*p == '[') {
        host_end = strchr(p, ']');
        if (!host_end)
            return chanc_error_set(err, CHANC_EINVAL, "bad Redis URL: unclosed '['; %s", usage);
        L->host = strndup(p + 1, (size_t)(host_end - p - 1));
        host_end++;
    } else {
        host_end = p + strcspn(p, ":/");
        L->host = strndup(p, (size_t)(host_end - p));
    }
    if (!L->host || !*L->host)
        return chanc_error_set(err, CHANC_EINVAL, "bad Redis URL: no host; %s", usage);
    p = host_end;
    L->port = 6379;
    if (*p == ':') {
        char *end;
        long v = isdigit((unsigned char)p[1]) ? strtol(p + 1, &end, 10) : -1;
        if (v < 1 || v > 65535 || (*end && *end != '/'))
            return chanc_error_set(err, CHANC_EINVAL, "bad Redis URL: port must be 1-65535; %s",
                                   usage);
        L->port = (int)v;
        p = end;
    }
    L->db = 0;
    if (*p == '/' && p[1]) {
        char *end;
        long v = isdigit((unsigned char)p[1]) ? strtol(p + 1, &end, 10) : -1;
        if (v < 0 || v > 1000000 || (*end && strcmp(end, "/") != 0))
            return chanc_error_set(err, CHANC_EINVAL,
                                   "bad Redis URL: the database must be a number; %s", usage);
        L->db = (int)v;
    } else if (*p && strcmp(p, "/") != 0) {
        return chanc_error_set(err, CHANC_EINVAL, "bad Redis URL: unexpected \"%.40s\"; %s", p,
                               usage);
    }
    return 0;
}

/* --- connection lifecycle ------------------------------------------------- */

/* The first attempt of rc ended (either way): stop holding the app. */
static void end_initial_hold(rconn_t *rc) {
    if (rc->initial_hold) {
        rc->initial_hold = false;
        release_n(rc->L, 1);
    }
}

static void on_retry(uv_timer_t *t) { start_connect(t->data); }

static void schedule_retry(rconn_t *rc, const char *why) {
    redis_layer_t *L = rc->L;
    end_initial_hold(rc);
    if (L->destroying)
        return;
    chanc_log(rc->failing ? CHANC_LOG_INFO : CHANC_LOG_WARN,
              "layer redis: %s %s:%d: %s; retrying in %" PRIu32 " ms", rc->role, L->host,
              L->port, why, rc->backoff_ms);
    rc->failing = true;
    uv_timer_start(&rc->timer, on_retry, rc->backoff_ms, 0);
    rc->backoff_ms = rc->backoff_ms > L->backoff_max / 2 ? L->backoff_max : rc->backoff_ms * 2;
}

static void send_subscribe(redis_layer_t *L, const char *group, rgroup_t *g);

static void resubscribe_one(const char *key, void *value, void *ud) {
    rgroup_t *g = value;
    if (g->wanted && !g->on_server && !g->unsub_in_flight)
        send_subscribe(ud, key, g);
}

/* Both connections work again: say so, with what the outage cost. */
static void log_recovered(redis_layer_t *L) {
    if (!L->sub.up || !L->pub.up)
        return;
    if (L->stats.dropped > L->dropped_logged)
        chanc_log(CHANC_LOG_NOTICE, "layer redis: %" PRIu64 " publish(es) dropped while Redis "
                  "was unreachable (at-most-once)", L->stats.dropped - L->dropped_logged);
    L->dropped_logged = L->stats.dropped;
}

static void became_up(rconn_t *rc) {
    redis_layer_t *L = rc->L;
    rc->up = true;
    rc->backoff_ms = L->backoff_min;
    if (rc->was_up) {
        L->stats.reconnects++;
        chanc_log(CHANC_LOG_NOTICE, "layer redis: %s reconnected to %s:%d", rc->role, L->host,
                  L->port);
    } else if (rc->failing) {
        chanc_log(CHANC_LOG_NOTICE, "layer redis: %s connected to %s:%d", rc->role, L->host,
                  L->port);
    }
    rc->was_up = true;
    rc->failing = false;
    end_initial_hold(rc);
    log_recovered(L);
}

static void on_auth_reply(redisAsyncContext *ac, void *reply, void *priv) {
    redisReply *r = reply;
    rconn_t *rc = priv;
    (void)ac;
    if (r && r->type == REDIS_REPLY_ERROR)
        chanc_log(CHANC_LOG_ERROR, "layer redis: %s: AUTH failed: %s", rc->role, r->str);
}

static void on_sub_reply(redisAsyncContext *ac, void *reply, void *priv);
static void on_down(rconn_t *rc);

static void on_connect(const redisAsyncContext *ac, int status) {
    rconn_t *rc = ac->data;
    redis_layer_t *L = rc->L;
    uv_timer_stop(&rc->timer);
    if (status != REDIS_OK) {
        rc->ac = NULL; /* hiredis frees it after this callback */
        on_down(rc);   /* commands queued meanwhile are gone with it */
        schedule_retry(rc, ac->errstr);
        return;
    }
    /* Notice a peer that vanished without closing (TCP keepalive). */
    redisEnableKeepAlive(&rc->ac->c);
    if (rc == &L->pub) {
        became_up(rc);
        return;
    }
    /* The subscriber is up once its own channel is subscribed (the reply
     * comes in on_sub_reply); groups follow in the same pipeline. */
    const char *argv[2] = {"SUBSCRIBE", L->node_channel};
    redisAsyncCommandArgv(rc->ac, on_sub_reply, L, 2, argv, NULL);
    chanc__map_each(&L->groups, resubscribe_one, L);
}

/* A connection went down: what was waiting on it will not come. */
static void on_down(rconn_t *rc) {
    redis_layer_t *L = rc->L;
    rc->up = false;
    release_n(L, L->inflight);
    L->inflight = 0;
    if (rc == &L->sub) {
        release_n(L, L->sub_pending);
        L->sub_pending = 0;
        /* Forget server-side state; drop groups nobody wants any more. */
        char **gone = NULL;
        size_t ngone = 0;
        for (size_t i = 0; i < L->groups.nbuckets; i++)
            for (chanc__map_entry_t *e = L->groups.buckets[i]; e; e = e->next) {
                rgroup_t *g = e->value;
                g->on_server = g->unsub_in_flight = false;
                if (!g->wanted) {
                    char **more = realloc(gone, (ngone + 1) * sizeof *gone);
                    if (more) {
                        gone = more;
                        gone[ngone++] = e->key;
                    }
                }
            }
        for (size_t i = 0; i < ngone; i++)
            free(chanc__map_remove(&L->groups, gone[i]));
        free(gone);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
    rconn_t *rc = ac->data;
    rc->ac = NULL; /* hiredis frees it after this callback */
    on_down(rc);
    if (rc->L->destroying)
        return;
    schedule_retry(rc, status == REDIS_OK ? "disconnected" : ac->errstr);
}

/* A connect that neither succeeds nor fails (a host that drops packets). */
static void on_connect_timeout(uv_timer_t *t) {
    rconn_t *rc = t->data;
    redisAsyncContext *ac = rc->ac;
    if (!ac || rc->up)
        return;
    /* Timers run before I/O in a loop turn: after a long blocking stretch
     * (a busy or slowed process) the connect may have finished without
     * hiredis being told yet. Give it this turn's I/O phase. */
    struct pollfd pfd = {.fd = ac->c.fd, .events = POLLOUT};
    if (poll(&pfd, 1, 0) == 1 && !(pfd.revents & (POLLERR | POLLHUP))) {
        uv_timer_start(&rc->timer, on_connect_timeout, rc->L->connect_timeout, 0);
        return;
    }
    rc->ac = NULL;
    redisAsyncFree(ac); /* not connected: no callback runs */
    schedule_retry(rc, "connect timed out");
}

static void connect_ip(rconn_t *rc, const char *ip) {
    redis_layer_t *L = rc->L;
    redisAsyncContext *ac = redisAsyncConnect(ip, L->port);
    if (!ac) {
        schedule_retry(rc, "out of memory");
        return;
    }
    if (ac->err) {
        char why[128];
        snprintf(why, sizeof why, "%s", ac->errstr);
        redisAsyncFree(ac);
        schedule_retry(rc, why);
        return;
    }
    if (ev_attach(ac, L->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        schedule_retry(rc, "cannot attach to the loop");
        return;
    }
    ac->data = rc;
    rc->ac = ac;
    uv_timer_start(&rc->timer, on_connect_timeout, L->connect_timeout, 0);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (L->password) {
        const char *argv[3] = {"AUTH", L->user ? L->user : L->password, L->password};
        redisAsyncCommandArgv(ac, on_auth_reply, rc, L->user ? 3 : 2, argv, NULL);
    }
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
    rconn_t *rc = req->data;
    redis_layer_t *L = rc->L;
    rc->resolving = false;
    char ip[64] = "";
    if (status == 0 && res) {
        if (res->ai_family == AF_INET6)
            uv_ip6_name((const struct sockaddr_in6 *)res->ai_addr, ip, sizeof ip);
        else
            uv_ip4_name((const struct sockaddr_in *)res->ai_addr, ip, sizeof ip);
    }
    uv_freeaddrinfo(res);
    if (L->destroying) {
        handle_gone(L);
        return;
    }
    L->open_handles--;
    if (status < 0 || !*ip) {
        char why[128];
        snprintf(why, sizeof why, "cannot resolve the host: %s",
                 status < 0 ? uv_strerror(status) : "no address");
        schedule_retry(rc, why);
        return;
    }
    connect_ip(rc, ip);
}

static void start_connect(rconn_t *rc) {
    redis_layer_t *L = rc->L;
    if (L->destroying || rc->ac || rc->resolving)
        return;
    /* Only numeric addresses go to hiredis: its connect resolves names with
     * a blocking getaddrinfo. */
    unsigned char addr[16];
    if (uv_inet_pton(AF_INET, L->host, addr) == 0 || uv_inet_pton(AF_INET6, L->host, addr) == 0) {
        connect_ip(rc, L->host);
        return;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    rc->gai.data = rc;
    int r = uv_getaddrinfo(L->loop, &rc->gai, on_resolved, L->host, NULL, &hints);
    if (r < 0) {
        schedule_retry(rc, uv_strerror(r));
        return;
    }
    rc->resolving = true;
    L->open_handles++;
}

/* --- subscriptions ---------------------------------------------------------- */

static char *group_channel(const redis_layer_t *L, const char *group) {
    return chanc_strdupf("%sg:%s", L->prefix, group);
}

static void send_subscribe(redis_layer_t *L, const char *group, rgroup_t *g) {
    if (!L->sub.ac)
        return;
    char *ch = group_channel(L, group);
    if (!ch)
        return;
    const char *argv[2] = {"SUBSCRIBE", ch};
    if (redisAsyncCommandArgv(L->sub.ac, on_sub_reply, L, 2, argv, NULL) == REDIS_OK) {
        g->on_server = true;
        if (L->track) {
            hold(L);
            L->sub_pending++;
        }
    }
    free(ch);
}

static int redis_subscribe(chanc_layer_t *l, const char *group) {
    redis_layer_t *L = (redis_layer_t *)l;
    rgroup_t *g = chanc__map_get(&L->groups, group);
    if (!g) {
        g = calloc(1, sizeof *g);
        if (!g || chanc__map_set(&L->groups, group, g) < 0) {
            free(g);
            return CHANC_ENOMEM;
        }
    }
    g->wanted = true;
    /* While connecting, hiredis queues the command; with no connection at
     * all, the next one subscribes it (on_connect). */
    if (L->sub.ac && !g->on_server && !g->unsub_in_flight)
        send_subscribe(L, group, g);
    return 0;
}

static int redis_unsubscribe(chanc_layer_t *l, const char *group) {
    redis_layer_t *L = (redis_layer_t *)l;
    rgroup_t *g = chanc__map_get(&L->groups, group);
    if (!g)
        return 0;
    g->wanted = false;
    if (g->on_server && L->sub.ac) {
        char *ch = group_channel(L, group);
        const char *argv[2] = {"UNSUBSCRIBE", ch};
        if (ch && redisAsyncCommandArgv(L->sub.ac, on_sub_reply, L, 2, argv, NULL) == REDIS_OK) {
            g->on_server = false;
            g->unsub_in_flight = true;
            if (L->track) {
                hold(L);
                L->sub_pending++;
            }
        }
        free(ch);
    }
    if (!g->on_server && !g->unsub_in_flight)
        free(chanc__map_remove(&L->groups, group));
    return 0;
}

/* --- receiving ------------------------------------------------------------------ */

/* Parse one unsigned field ending in `stop`; advances *p. */
static bool field_u64(const char **p, const char *end, int base, char stop, uint64_t *out) {
    const char *s = *p;
    uint64_t v = 0;
    if (s >= end || *s == stop)
        return false;
    for (; s < end && *s != stop; s++) {
        int d = isdigit((unsigned char)*s)                      ? *s - '0'
                : base == 16 && *s >= 'a' && *s <= 'f' ? *s - 'a' + 10
                                                        : -1;
        if (d < 0 || v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base)
            return false;
        v = v * (uint64_t)base + (uint64_t)d;
    }
    if (s >= end)
        return false;
    *p = s + 1;
    *out = v;
    return true;
}

static void malformed(redis_layer_t *L, const char *why) {
    L->stats.malformed++;
    chanc_log(CHANC_LOG_WARN, "layer redis: ignoring a message that is not chanc's: %s", why);
}

static void on_message(redis_layer_t *L, const char *ch, size_t chlen, const char *data,
                       size_t len) {
    chanc_app_t *app = L->base.app;
    const char *end = data + len;
    const char *nl = memchr(data, '\n', len < HEADER_MAX ? len : HEADER_MAX);
    if (!app)
        return;
    if (!nl || len < 5 || memcmp(data, "C1 ", 3) != 0 || data[4] != ' ')
        return malformed(L, "no C1 header");
    char kind = data[3];
    const char *p = data + 5;
    uint64_t flags, node, n, ulen = 0, tlen;
    bool anon = false;
    if (!field_u64(&p, nl, 10, ' ', &flags) || !field_u64(&p, nl, 16, ' ', &node) ||
        !field_u64(&p, nl, 10, ' ', &n))
        return malformed(L, "bad header");
    if (p + 1 < nl && p[0] == '-' && p[1] == ' ') {
        anon = true;
        p += 2;
    } else if (!field_u64(&p, nl, 10, ' ', &ulen)) {
        return malformed(L, "bad user length");
    }
    if (!field_u64(&p, nl + 1, 10, '\n', &tlen) || p != nl + 1)
        return malformed(L, "bad target length");
    if (ulen > (uint64_t)(end - p) || tlen > (uint64_t)(end - p) - ulen)
        return malformed(L, "lengths past the end");
    if (flags & ~(uint64_t)(CHANC_EXCLUDE_CURRENT | CHANC_ENV_NO_FLAGS | CHANC_ENV_EVENT))
        return malformed(L, "unknown flags");
    const char *user = p, *target = p + ulen, *frame = target + tlen;
    size_t flen = (size_t)(end - frame);

    if (kind == 's') {
        if (node == chanc_app_node_id(app)) {
            uint64_t k = n < L->inflight ? n : L->inflight;
            L->inflight -= k;
            release_n(L, k);
        }
        return;
    }
    if ((kind != 'g' && kind != 'c') || flen < 2 || frame[0] != '{' || frame[flen - 1] != '}')
        return malformed(L, "not a group or channel frame");
    size_t plen = strlen(L->prefix);
    char name[256];
    if (kind == 'g') {
        if (chlen < plen + 2 || chlen - plen - 2 >= sizeof name ||
            memcmp(ch + plen, "g:", 2) != 0)
            return malformed(L, "group message on a non-group channel");
        memcpy(name, ch + plen + 2, chlen - plen - 2);
        name[chlen - plen - 2] = '\0';
    } else {
        if (tlen == 0 || tlen >= sizeof name)
            return malformed(L, "bad channel name");
        memcpy(name, target, tlen);
        name[tlen] = '\0';
    }
    char *u = NULL;
    if (!anon && !(u = strndup(user, ulen)))
        return;
    chanc_buf_t *buf = chanc_buf_new(frame, flen);
    chanc_envelope_t *env =
        buf ? chanc_envelope_new(buf, u, node, n, (uint32_t)flags) : NULL;
    chanc_buf_unref(buf);
    free(u);
    if (!env) {
        chanc_log(CHANC_LOG_ERROR, "layer redis: out of memory receiving a message");
        return;
    }
    L->stats.received++;
    if (kind == 'g')
        chanc_layer_deliver_group(app, name, env);
    else
        chanc_layer_deliver_channel(app, name, env);
    chanc_envelope_unref(env);
}

static bool reply_is(const redisReply *r, const char *s) {
    return r->type == REDIS_REPLY_STRING && strcmp(r->str, s) == 0;
}

static void on_unsubscribed(redis_layer_t *L, const redisReply *ch) {
    size_t plen = strlen(L->prefix);
    if (ch->len <= plen + 2 || memcmp(ch->str + plen, "g:", 2) != 0)
        return;
    const char *group = ch->str + plen + 2;
    rgroup_t *g = chanc__map_get(&L->groups, group);
    if (!g)
        return;
    g->unsub_in_flight = false;
    if (g->wanted)
        send_subscribe(L, group, g); /* a member came back meanwhile */
    else
        free(chanc__map_remove(&L->groups, group));
}

static void on_sub_reply(redisAsyncContext *ac, void *reply, void *priv) {
    redisReply *r = reply;
    redis_layer_t *L = priv;
    (void)ac;
    if (!r || L->destroying)
        return; /* disconnecting: on_disconnect handles it */
    if (r->type == REDIS_REPLY_ERROR) {
        chanc_log(CHANC_LOG_ERROR, "layer redis: subscriber: %s", r->str);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 || r->element[1]->type != REDIS_REPLY_STRING)
        return;
    const redisReply *ch = r->element[1];
    if (reply_is(r->element[0], "message") && r->element[2]->type == REDIS_REPLY_STRING) {
        on_message(L, ch->str, ch->len, r->element[2]->str, r->element[2]->len);
    } else if (reply_is(r->element[0], "subscribe")) {
        if (strcmp(ch->str, L->node_channel) == 0) {
            became_up(&L->sub);
        } else if (L->sub_pending) {
            L->sub_pending--;
            release_n(L, 1);
        }
    } else if (reply_is(r->element[0], "unsubscribe")) {
        if (L->sub_pending) {
            L->sub_pending--;
            release_n(L, 1);
        }
        on_unsubscribed(L, ch);
    }
}

/* --- publishing ------------------------------------------------------------------- */

static void send_sync(void *arg) {
    redis_layer_t *L = arg;
    L->sync_scheduled = false;
    uint64_t n = L->unsynced;
    L->unsynced = 0;
    if (n == 0)
        return;
    char payload[HEADER_MAX];
    int len = snprintf(payload, sizeof payload, "C1 s 0 %s %" PRIu64 " - 0\n", L->node_hex, n);
    const char *argv[3] = {"PUBLISH", L->node_channel, payload};
    size_t lens[3] = {7, strlen(L->node_channel), (size_t)len};
    if (L->pub.up && L->sub.up &&
        redisAsyncCommandArgv(L->pub.ac, NULL, NULL, 3, argv, lens) == REDIS_OK)
        L->inflight += n;
    else
        release_n(L, n);
}

static void track_publish(redis_layer_t *L) {
    hold(L);
    L->unsynced++;
    if (!L->sync_scheduled && chanc_app_call_soon(L->base.app, send_sync, L) == 0)
        L->sync_scheduled = true;
    else if (!L->sync_scheduled)
        send_sync(L);
}

static void on_pub_reply(redisAsyncContext *ac, void *reply, void *priv) {
    redisReply *r = reply;
    (void)ac;
    (void)priv;
    if (r && r->type == REDIS_REPLY_ERROR)
        chanc_log(CHANC_LOG_ERROR, "layer redis: publisher: %s", r->str);
}

static int publish(redis_layer_t *L, const char *channel, char kind, const char *target,
                   const chanc_envelope_t *env) {
    if (!L->pub.up) {
        if (L->stats.dropped++ == L->dropped_logged)
            chanc_log(CHANC_LOG_WARN, "layer redis: Redis unreachable: group messages are "
                      "dropped until it is back (at-most-once)");
        return 0;
    }
    size_t ulen = env->sender_user ? strlen(env->sender_user) : 0;
    size_t tlen = target ? strlen(target) : 0;
    char header[HEADER_MAX];
    char ulen_text[24] = "-";
    if (env->sender_user)
        snprintf(ulen_text, sizeof ulen_text, "%zu", ulen);
    int hlen = snprintf(header, sizeof header, "C1 %c %" PRIu32 " %016" PRIx64 " %" PRIu64
                        " %s %zu\n", kind, env->flags, env->sender_node, env->sender_conn,
                        ulen_text, tlen);
    size_t total = (size_t)hlen + ulen + tlen + env->frame->len;
    char *payload = malloc(total);
    if (!payload)
        return CHANC_ENOMEM;
    char *w = payload;
    memcpy(w, header, (size_t)hlen);
    w += hlen;
    if (ulen)
        memcpy(w, env->sender_user, ulen);
    w += ulen;
    if (tlen)
        memcpy(w, target, tlen);
    w += tlen;
    memcpy(w, env->frame->data, env->frame->len);
    const char *argv[3] = {"PUBLISH", channel, payload};
    size_t lens[3] = {7, strlen(channel), total};
    int rc = redisAsyncCommandArgv(L->pub.ac, on_pub_reply, L, 3, argv, lens);
    free(payload);
    if (rc != REDIS_OK) {
        L->stats.dropped++;
        return 0;
    }
    L->stats.published++;
    if (L->track)
        track_publish(L);
    return 0;
}

static int redis_publish_group(chanc_layer_t *l, const char *group, chanc_envelope_t *env) {
    redis_layer_t *L = (redis_layer_t *)l;
    char *ch = group_channel(L, group);
    if (!ch)
        return CHANC_ENOMEM;
    int rc = publish(L, ch, 'g', NULL, env);
    free(ch);
    return rc;
}

/* Channel names are "<node:16 hex>!<conn>" (conn.c): the message goes to
 * that node's own Redis channel. */
static int redis_publish_channel(chanc_layer_t *l, const char *channel, chanc_envelope_t *env) {
    redis_layer_t *L = (redis_layer_t *)l;
    if (strlen(channel) < 18 || channel[16] != '!' || strspn(channel, "0123456789abcdef") != 16)
        return 0; /* no such connection anywhere: dropped, like an unknown channel */
    char *ch = chanc_strdupf("%sn:%.16s", L->prefix, channel);
    if (!ch)
        return CHANC_ENOMEM;
    int rc = publish(L, ch, 'c', channel, env);
    free(ch);
    return rc;
}

/* --- create / destroy ------------------------------------------------------------- */

static void init_conn(redis_layer_t *L, rconn_t *rc, const char *role) {
    rc->L = L;
    rc->role = role;
    rc->backoff_ms = L->backoff_min;
    uv_timer_init(L->loop, &rc->timer);
    rc->timer.data = rc;
    L->open_handles++;
}

static void redis_attach(chanc_layer_t *l) {
    redis_layer_t *L = (redis_layer_t *)l;
    L->loop = chanc_app_loop(l->app);
    L->attached = true;
    init_conn(L, &L->sub, "subscriber");
    init_conn(L, &L->pub, "publisher");
    snprintf(L->node_hex, sizeof L->node_hex, "%016" PRIx64, chanc_app_node_id(l->app));
    L->node_channel = chanc_strdupf("%sn:%s", L->prefix, L->node_hex);
    if (!L->node_channel) {
        chanc_log(CHANC_LOG_ERROR, "layer redis: out of memory");
        return;
    }
    rconn_t *conns[2] = {&L->sub, &L->pub};
    for (int i = 0; i < 2; i++) {
        if (L->track) {
            conns[i]->initial_hold = true;
            hold(L);
        }
        /* From the loop's first turn, so that the connect timeout counts
         * loop time, not the program's start-up. */
        uv_timer_start(&conns[i]->timer, on_retry, 0, 0);
    }
}

static void close_conn(rconn_t *rc) {
    if (rc->ac) {
        /* Calls on_disconnect (connected) and pending callbacks with NULL. */
        redisAsyncContext *ac = rc->ac;
        rc->ac = NULL;
        redisAsyncFree(ac);
    }
    if (rc->resolving)
        uv_cancel((uv_req_t *)&rc->gai);
    uv_close((uv_handle_t *)&rc->timer, on_timer_closed);
}

static void redis_destroy(chanc_layer_t *l) {
    redis_layer_t *L = (redis_layer_t *)l;
    L->destroying = true;
    if (!L->attached) {
        free_layer(L);
        return;
    }
    chanc_log(CHANC_LOG_INFO, "layer redis: closing (published %" PRIu64 ", received %" PRIu64
              ", dropped %" PRIu64 ", reconnects %" PRIu64 ")", L->stats.published,
              L->stats.received, L->stats.dropped, L->stats.reconnects);
    close_conn(&L->sub);
    close_conn(&L->pub);
    for (size_t i = 0; i < L->groups.nbuckets; i++)
        for (chanc__map_entry_t *e = L->groups.buckets[i]; e; e = e->next)
            free(e->value);
    chanc__map_dispose(&L->groups);
}

static void redis_stats(const chanc_layer_t *l, chanc_layer_stats_t *out) {
    const redis_layer_t *L = (const redis_layer_t *)l;
    *out = L->stats;
    out->connected = L->sub.up && L->pub.up;
}

static const chanc_layer_ops_t redis_ops = {
    .name = "redis",
    .subscribe = redis_subscribe,
    .unsubscribe = redis_unsubscribe,
    .publish_group = redis_publish_group,
    .publish_channel = redis_publish_channel,
    .destroy = redis_destroy,
    .stats = redis_stats,
    .attach = redis_attach,
};

chanc_layer_t *chanc_layer_redis_create(const char *url, const chanc_layer_redis_options_t *opts,
                                        chanc_error_t *err) {
    chanc_layer_redis_options_t none = {0};
    if (!opts)
        opts = &none;
    redis_layer_t *L = calloc(1, sizeof *L);
    if (!L) {
        chanc_error_set(err, CHANC_ENOMEM, "out of memory");
        return NULL;
    }
    if (parse_url(L, url, err) < 0) {
        free_layer(L);
        return NULL;
    }
    L->base.ops = &redis_ops;
    L->track = opts->track_settled;
    L->backoff_min = opts->backoff_min_ms ? opts->backoff_min_ms : 100;
    L->backoff_max = opts->backoff_max_ms ? opts->backoff_max_ms : 5000;
    L->connect_timeout = 5000;
    if (L->backoff_max < L->backoff_min)
        L->backoff_max = L->backoff_min;
    L->prefix = opts->prefix ? strdup(opts->prefix) : chanc_strdupf("chanc:%d:", L->db);
    if (!L->prefix || (L->password && !L->password[0] && !L->user)) {
        if (L->prefix)
            chanc_error_set(err, CHANC_EINVAL, "bad Redis URL: empty password");
        else
            chanc_error_set(err, CHANC_ENOMEM, "out of memory");
        free_layer(L);
        return NULL;
    }
    chanc__map_init(&L->groups);
    return &L->base;
}

bool chanc_layer_is_redis(const chanc_layer_t *l) { return l && l->ops == &redis_ops; }

int chanc_layer_redis_sync(chanc_layer_t *l) {
    if (!chanc_layer_is_redis(l) || !l->app)
        return CHANC_EINVAL;
    track_publish((redis_layer_t *)l);
    return 0;
}
