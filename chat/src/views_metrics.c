/* GET /metrics (Prometheus text, for the addresses and the bearer token
 * configured) and GET /healthz (views_internal.h). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <sodium.h>

#include "chanc/chat_throttle.h"
#include "views_internal.h"


static void metric(chat_sbuf_t *b, const char *name, const char *type, const char *help,
                   uint64_t v) {
    chat_sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name,
                   (unsigned long long)v);
}

/* An address (IPv4 as IPv4-mapped IPv6); false when it is none. */
static bool parse_addr(const char *s, unsigned char out[16]) {
    struct in_addr a4;
    if (inet_pton(AF_INET, s, &a4) == 1) {
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &a4, 4);
        return true;
    }
    return inet_pton(AF_INET6, s, out) == 1;
}

int chat_views_allow_metrics(chat_views_t *v, const char *list, chanc_error_t *err) {
    chat_cidr_t allow[CHAT_METRICS_ALLOW_MAX];
    size_t n = 0;
    for (const char *p = list ? list : ""; *p;) {
        size_t len = strcspn(p, ",");
        char item[64];
        const char *b = p, *e = p + len;
        while (b < e && isspace((unsigned char)*b))
            b++;
        while (e > b && isspace((unsigned char)e[-1]))
            e--;
        p += len + (p[len] == ',');
        if (b == e)
            continue;
        if ((size_t)(e - b) >= sizeof item)
            return chanc_error_set(err, CHANC_EINVAL, "--metrics-allow: not an address: %.*s",
                                   (int)(e - b > 60 ? 60 : e - b), b);
        memcpy(item, b, (size_t)(e - b));
        item[e - b] = '\0';
        if (n == CHAT_METRICS_ALLOW_MAX)
            return chanc_error_set(err, CHANC_EINVAL, "--metrics-allow: at most %d entries",
                                   CHAT_METRICS_ALLOW_MAX);
        char *slash = strchr(item, '/');
        long bits = -1;
        if (slash) {
            char *end;
            *slash = '\0';
            bits = isdigit((unsigned char)slash[1]) ? strtol(slash + 1, &end, 10) : -1;
            if (bits < 0 || *end)
                bits = 999;
        }
        bool v4 = strchr(item, ':') == NULL;
        if (!parse_addr(item, allow[n].addr) || bits > (v4 ? 32 : 128)) {
            if (slash)
                *slash = '/';
            return chanc_error_set(err, CHANC_EINVAL,
                                   "--metrics-allow: not an address or CIDR block: %s", item);
        }
        allow[n].bits = bits < 0 ? 128u : (unsigned)bits + (v4 ? 96u : 0u);
        n++;
    }
    if (n == 0)
        return chanc_error_set(err, CHANC_EINVAL, "--metrics-allow: no address given");
    memcpy(v->metrics_allow, allow, n * sizeof *allow);
    v->metrics_nallow = n;
    return 0;
}

int chat_views_metrics_token(chat_views_t *v, const char *token, chanc_error_t *err) {
    size_t n = token ? strlen(token) : 0;
    if (n < CHAT_METRICS_TOKEN_MIN || n > CHAT_METRICS_TOKEN_MAX)
        return chanc_error_set(err, CHANC_EINVAL, "the metrics token must be %d to %d characters",
                               CHAT_METRICS_TOKEN_MIN, CHAT_METRICS_TOKEN_MAX);
    for (size_t i = 0; i < n; i++)
        if (token[i] <= 0x20 || token[i] >= 0x7f)
            return chanc_error_set(err, CHANC_EINVAL,
                                   "the metrics token must be printable ASCII without spaces");
    memcpy(v->metrics_token, token, n + 1);
    return 0;
}

static bool in_block(const unsigned char a[16], const chat_cidr_t *c) {
    unsigned full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(a, c->addr, full) != 0)
        return false;
    if (!rest)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[full] & mask) == (c->addr[full] & mask);
}

/* A refusal built (1), or building it failed (< 0). */
static int refusal(int rc) { return rc < 0 ? rc : 1; }

/* May this request read /metrics? 0 when it may; else the refusal in r. */
static int metrics_refused(chat_views_t *v, const chanc_http_request_t *req,
                           chanc_http_response_t *r) {
    if (!v->metrics_nallow && !v->metrics_token[0])
        return refusal(chat_http_respond_text(r, 403,
                                              "Forbidden: /metrics needs an allow-list or a token "
                                              "(--metrics-allow, --metrics-token-file)"));
    if (v->metrics_nallow) {
        unsigned char a[16];
        bool ok = req->peer && parse_addr(req->peer, a);
        for (size_t i = 0; ok && i < v->metrics_nallow; i++)
            if (in_block(a, &v->metrics_allow[i]))
                goto address_ok;
        return refusal(
            chat_http_respond_text(r, 403, "Forbidden: /metrics is not served to this address"));
    }
address_ok:
    if (v->metrics_token[0]) {
        const char *auth = chat_http_header(req, "authorization");
        size_t n = strlen(v->metrics_token);
        bool ok = auth && strncasecmp(auth, "Bearer ", 7) == 0;
        if (ok) {
            const char *given = auth + 7;
            while (*given == ' ')
                given++;
            ok = strlen(given) == n && sodium_memcmp(given, v->metrics_token, n) == 0;
        }
        if (!ok) {
            chat_http_add_header(r, "WWW-Authenticate", "Bearer realm=\"metrics\"");
            return refusal(
                chat_http_respond_text(r, 401, "Unauthorized: /metrics needs its bearer token"));
        }
    }
    return 0;
}

/* POST /login: checked attempts by result, refusals (429) by reason. */
static void login_metrics(chat_sbuf_t *b, const chat_throttle_t *th) {
    chat_login_stats_t ls;
    chat_throttle_stats(th, &ls);
    chat_sb_printf(b,
                   "# HELP chat_logins_total Login attempts whose password was checked, by "
                   "result.\n# TYPE chat_logins_total counter\n"
                   "chat_logins_total{result=\"ok\"} %llu\n"
                   "chat_logins_total{result=\"failed\"} %llu\n",
                   (unsigned long long)ls.succeeded, (unsigned long long)ls.failed);
    chat_sb_printf(b,
                   "# HELP chat_login_throttled_total Login attempts refused with 429 before any "
                   "password check, by reason.\n# TYPE chat_login_throttled_total counter\n");
    chat_sb_printf(b, "chat_login_throttled_total{reason=\"address\"} %llu\n"
                      "chat_login_throttled_total{reason=\"username\"} %llu\n"
                      "chat_login_throttled_total{reason=\"busy\"} %llu\n",
                   (unsigned long long)ls.limited_addr, (unsigned long long)ls.limited_user,
                   (unsigned long long)ls.busy);
    metric(b, "chat_login_checks_in_flight", "gauge",
           "Login attempts admitted and not yet answered.", ls.in_flight);
}

/* Prometheus text format, version 0.0.4. */
int chat_views__metrics(chat_views_t *v, const chanc_http_request_t *req,
                        chanc_http_response_t *r) {
    if (!chat_http_method_is(req, "GET"))
        return chat_http_not_allowed(r, "GET, HEAD");
    int refused = metrics_refused(v, req, r);
    if (refused)
        return refused < 0 ? refused : 0;
    chat_sbuf_t b = {0};
    if (v->app) {
        chanc_app_stats_t a;
        chanc_app_stats(v->app, &a);
        metric(&b, "chanc_connections_open", "gauge", "Open WebSocket connections.",
               chanc_app_connections(v->app));
        metric(&b, "chanc_connections_total", "counter", "WebSocket connections opened.",
               a.connections);
        metric(&b, "chanc_frames_received_total", "counter", "Frames received from clients.",
               a.frames_in);
        metric(&b, "chanc_frames_sent_total", "counter", "Frames sent, completions included.",
               a.frames_out);
        metric(&b, "chanc_bytes_sent_total", "counter", "Payload bytes of the frames sent.",
               a.bytes_out);
        metric(&b, "chanc_encodes_total", "counter", "JSON documents serialised.", a.encodes);
        metric(&b, "chanc_group_messages_total", "counter", "Group and channel messages published.",
               a.group_messages);
        metric(&b, "chanc_group_deliveries_total", "counter",
               "Group messages delivered to a local connection.", a.group_deliveries);
        metric(&b, "chanc_validation_errors_total", "counter",
               "Frames answered with a validation error.", a.validation_errors);
        metric(&b, "chanc_handler_errors_total", "counter", "Frames whose handler failed.",
               a.handler_errors);
        metric(&b, "chanc_rate_limited_total", "counter", "Frames refused by the rate limit.",
               a.rate_limited);
        metric(&b, "chanc_slow_client_closes_total", "counter",
               "Connections closed with 1008: outgoing queue full.", a.slow_clients);
    }
    if (v->server) {
        chanc_server_stats_t st;
        chanc_server_stats(v->server, &st);
        metric(&b, "chanc_queued_bytes", "gauge", "Bytes waiting in the outgoing queues.",
               st.queued_bytes);
        metric(&b, "chanc_handshakes_refused_total", "counter",
               "Handshakes refused with 503: max_connections.", st.refused_full);
    }
    chat_commit_stats_t c;
    chat_commit_stats(&c);
    metric(&b, "chat_commit_failures_total", "counter", "Chat message commits that failed.",
           c.failed);
    metric(&b, "chat_commit_transactions_total", "counter",
           "Transactions that committed chat messages (several at once when they wait).",
           c.transactions);
    chat_sb_str(&b, "# HELP chat_commit_seconds Time of the commit each chat message was part of.\n"
                    "# TYPE chat_commit_seconds histogram\n");
    uint64_t cum = 0;
    for (size_t i = 0; i < CHAT_COMMIT_BUCKETS; i++) {
        cum += c.bucket[i];
        chat_sb_printf(&b, "chat_commit_seconds_bucket{le=\"%g\"} %llu\n",
                       chat_commit_bucket_us[i] / 1e6, (unsigned long long)cum);
    }
    chat_sb_printf(&b, "chat_commit_seconds_bucket{le=\"+Inf\"} %llu\n",
                   (unsigned long long)c.count);
    chat_sb_printf(&b, "chat_commit_seconds_sum %.9f\nchat_commit_seconds_count %llu\n",
                   c.sum_ns / 1e9, (unsigned long long)c.count);
    if (v->throttle)
        login_metrics(&b, v->throttle);
    return chat_http_respond(r, 200, "text/plain; version=0.0.4; charset=utf-8", &b);
}

/* GET /healthz, for load balancers and orchestrators: 200 when the
 * database answers, 503 when it does not; the body says what the process
 * holds (JSON). A channel layer that is reconnecting does not make it
 * unhealthy: connections stay up and messages stay durable. */
static void health_run(chat_store_t *s, chat_call_job_t *c) {
    chat_view_job_t *j = (chat_view_job_t *)c;
    j->rc = chat_store_user_count(s, &j->users);
}

static int health_answer(chat_view_job_t *j, chanc_http_response_t *r) {
    chat_views_t *v = j->v;
    bool db_ok = j->rc >= 0;
    json_t *body = json_pack("{s:s,s:s,s:b}", "status", db_ok ? "ok" : "unavailable", "database",
                             chat_store_backend_name(v->store), "database_ok", db_ok);
    if (v->app) {
        chanc_layer_t *layer = chanc_app_layer(v->app);
        chanc_layer_stats_t ls;
        chanc_layer_stats(layer, &ls);
        json_object_set_new(body, "connections",
                            json_integer((json_int_t)chanc_app_connections(v->app)));
        json_object_set_new(body, "layer", json_string(layer->ops->name));
        json_object_set_new(body, "layer_connected", json_boolean(ls.connected));
    }
    char *text = chanc_json_dump(body); /* malloc'd, compact */
    json_decref(body);
    chat_sbuf_t b = {0};
    if (text)
        chat_sb_str(&b, text);
    free(text);
    chat_http_add_header(r, "Cache-Control", "no-store");
    return chat_http_respond(r, db_ok ? 200 : 503, "application/json", &b);
}

int chat_views__health(chat_views_t *v, const chanc_http_request_t *req, chanc_http_response_t *r) {
    if (!chat_http_method_is(req, "GET"))
        return chat_http_not_allowed(r, "GET, HEAD");
    chat_view_job_t *j = chat_view_job_new(health_run, health_answer, "GET /healthz");
    if (!j)
        return CHANC_ENOMEM;
    return chat_view_job_run(v, req, j, true, r);
}

