/* The HTTP side of the server: reading a request's headers (also for a
 * WebSocket handshake), the header-size limit, writing responses, and one
 * request at a time to the app's handler, answered now or deferred. */
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "chanc/log.h"
#include "server_internal.h"

#define HTTP_CHUNK 4096
#define MAX_QUERY_ARGS 64
/* A client's fault is logged at info, at most once a minute per kind (the
 * next line says how many were not logged). */
#define CLIENT_FAULT_LOG_MS 60000

/* --- reading the request ------------------------------------------------------ */

static char *dup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* Every Cookie header of the request joined with "; " (RFC 6265 §5.4: one
 * header; HTTP/1.1 proxies may send several). lws 4.1.6 keeps each as a
 * fragment of WSI_TOKEN_HTTP_COOKIE and lws_hdr_copy glues them together
 * with no separator at all ("a=1  sessionid=x": the session lost). NULL
 * when there is none. */
static char *cookie_dup(struct lws *wsi) {
    int total = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_COOKIE);
    if (total <= 0)
        return NULL;
    size_t cap = (size_t)total + 1;
    char *frag = malloc(cap), *out = malloc(cap * 2 + 1);
    size_t o = 0;
    if (!frag || !out)
        goto fail;
    for (int i = 0;; i++) {
        int n = lws_hdr_copy_fragment(wsi, frag, (int)cap, WSI_TOKEN_HTTP_COOKIE, i);
        if (n < 0)
            break;
        const char *v = frag;
        while (*v == ' ' || *v == '\t')
            v++, n--;
        while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == ';'))
            n--;
        if (n <= 0)
            continue;
        if (o) {
            memcpy(out + o, "; ", 2);
            o += 2;
        }
        memcpy(out + o, v, (size_t)n);
        o += (size_t)n;
    }
    if (!o)
        goto fail;
    out[o] = '\0';
    free(frag);
    return out;
fail:
    free(frag);
    free(out);
    return NULL;
}

/* A header lws parsed, as a new string; NULL when absent. */
char *chanc__hdr_dup(struct lws *wsi, enum lws_token_indexes tok) {
    if (tok == WSI_TOKEN_HTTP_COOKIE)
        return cookie_dup(wsi);
    int n = lws_hdr_total_length(wsi, tok);
    if (n <= 0)
        return NULL;
    char *v = malloc((size_t)n + 1);
    if (v && lws_hdr_copy(wsi, v, n + 1, tok) < 0) {
        free(v);
        return NULL;
    }
    return v;
}

/* lws splits the query into its '&'-separated arguments and percent-decodes
 * each one; put them back together, re-encoding what would be ambiguous
 * ('&', '#', '%', '+', a second '=', controls, spaces, non-ASCII). */
char *chanc__query_dup(struct lws *wsi) {
    size_t cap = (size_t)lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS);
    if (cap == 0)
        return NULL;
    char *frag = malloc(cap + 1);
    char *out = malloc(cap * 3 + MAX_QUERY_ARGS + 1);
    size_t o = 0;
    if (!frag || !out)
        goto fail;
    int nfrags = 0;
    while (nfrags < MAX_QUERY_ARGS &&
           lws_hdr_copy_fragment(wsi, frag, (int)cap + 1, WSI_TOKEN_HTTP_URI_ARGS, nfrags) >= 0)
        nfrags++;
    /* lws 4.1 turns an empty last argument ("/p?", "/p?a&") into "/". */
    if (nfrags && lws_hdr_copy_fragment(wsi, frag, (int)cap + 1, WSI_TOKEN_HTTP_URI_ARGS,
                                        nfrags - 1) == 1 && frag[0] == '/')
        nfrags--;
    if (nfrags == 0)
        goto fail;
    for (int i = 0; i < nfrags; i++) {
        int n = lws_hdr_copy_fragment(wsi, frag, (int)cap + 1, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n < 0)
            break;
        if (i)
            out[o++] = '&';
        bool seen_eq = false;
        for (int k = 0; k < n; k++) {
            unsigned char ch = (unsigned char)frag[k];
            if (ch == '=' && !seen_eq) {
                seen_eq = true;
                out[o++] = '=';
            } else if (isalnum(ch) || strchr("-._~!$'()*,;:@/?", ch)) {
                out[o++] = (char)ch;
            } else {
                static const char hex[] = "0123456789ABCDEF";
                out[o++] = '%';
                out[o++] = hex[ch >> 4];
                out[o++] = hex[ch & 15];
            }
        }
    }
    out[o] = '\0';
    free(frag);
    return out;
fail:
    free(frag);
    free(out);
    return NULL;
}

static void later_dispose(chanc_http_response_t *r) {
    free((char *)r->content_type);
    for (size_t i = 0; i < r->nheaders; i++) {
        free((char *)r->headers[i].name);
        free((char *)r->headers[i].value);
    }
    free(r->body);
    memset(r, 0, sizeof *r);
}

void chanc__http_txn_free(http_txn_t *h) {
    if (!h)
        return;
    if (h->deferred)
        h->deferred->t = NULL; /* chanc_http_complete will just drop it */
    if (h->has_later)
        later_dispose(&h->later);
    free(h->path);
    free(h->query);
    for (size_t i = 0; i < h->nheaders; i++)
        free((char *)h->headers[i].value);
    free(h->body);
    free(h->out);
    free(h);
}

/* --- oversized headers ---------------------------------------------------------- */

/* A client's fault (oversized headers): counted, and logged at info at
 * most once per CLIENT_FAULT_LOG_MS, so a flood of them cannot flood the
 * log (the next line says how many went unlogged). */
void chanc__client_fault(chanc_server_t *s, struct fault_log *fl, const char *what) {
    uint64_t now = uv_now(s->loop) + 1; /* never 0 */
    if (fl->last_ms && now - fl->last_ms < CLIENT_FAULT_LOG_MS) {
        fl->unlogged++;
        return;
    }
    if (fl->unlogged)
        chanc_log(CHANC_LOG_INFO, "%s (and %zu more since the last such line; at most one "
                  "line a minute)", what, fl->unlogged);
    else
        chanc_log(CHANC_LOG_INFO, "%s", what);
    fl->last_ms = now;
    fl->unlogged = 0;
}

/* The bytes of the request's headers lws kept for us (the request line
 * and every header it knows; libwebsockets 4.1.6 cannot list the others). */
static size_t header_bytes(struct lws *wsi) {
    size_t n = 0;
    for (int tok = 0; tok < (int)WSI_TOKEN_COUNT; tok++) {
        int len = lws_hdr_total_length(wsi, (enum lws_token_indexes)tok);
        if (len > 0)
            n += (size_t)len;
    }
    return n;
}

/* Are the request's headers over max_headers? Then it is counted and
 * logged (the caller answers 431 and closes). */
bool chanc__headers_too_large(chanc_server_t *s, struct lws *wsi, const char *kind) {
    size_t n = header_bytes(wsi);
    if (n <= s->max_headers)
        return false;
    s->stats.headers_too_large++;
    char what[160];
    snprintf(what, sizeof what, "%s with %zu bytes of headers (more than %zu) answered 431",
             kind, n, s->max_headers);
    chanc__client_fault(s, &s->log_431, what);
    return true;
}

/* --- the HTTP side ------------------------------------------------------------------ */

static bool header_name_ok(const char *n) {
    if (!*n)
        return false;
    for (; *n; n++)
        if (!isalnum((unsigned char)*n) && !strchr("!#$%&'*+-.^_`|~", *n))
            return false;
    return true;
}

static bool header_value_ok(const char *v) {
    for (; *v; v++)
        if ((unsigned char)*v < 0x20 && *v != '\t')
            return false;
    return true;
}

static int add_header(struct lws *wsi, const char *name, const char *value, unsigned char **p,
                      unsigned char *end) {
    char lname[128];
    size_t n = strlen(name);
    if (n + 2 > sizeof lname)
        return -1;
    for (size_t i = 0; i < n; i++)
        lname[i] = (char)tolower((unsigned char)name[i]);
    lname[n] = ':';
    lname[n + 1] = '\0';
    return lws_add_http_header_by_name(wsi, (const unsigned char *)lname,
                                       (const unsigned char *)value, (int)strlen(value), p, end)
               ? -1
               : 0;
}

/* Status line and headers, written at once. 0 or -1. */
int chanc__write_head(struct lws *wsi, int status, const char *ctype, size_t body_len,
                      const chanc_header_t *extra, size_t nextra, bool close) {
    unsigned char buf[LWS_PRE + 4096];
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof buf - 1;
    /* X-Content-Type-Options and Referrer-Policy come from the vhost's
     * canned headers (lws adds them to every status line it writes, its
     * own error answers included). */
    if (lws_add_http_common_headers(wsi, (unsigned)status, ctype, (lws_filepos_t)body_len, &p, end))
        return -1;
    for (size_t i = 0; i < nextra; i++) {
        if (!extra[i].name || !extra[i].value || !header_name_ok(extra[i].name) ||
            !header_value_ok(extra[i].value) || strcasecmp(extra[i].name, "content-length") == 0 ||
            strcasecmp(extra[i].name, "content-type") == 0) {
            chanc_log(CHANC_LOG_ERROR, "HTTP response header %.100s dropped: not allowed",
                      extra[i].name ? extra[i].name : "(null)");
            continue;
        }
        if (add_header(wsi, extra[i].name, extra[i].value, &p, end) < 0) {
            chanc_log(CHANC_LOG_ERROR, "HTTP response headers too large");
            return -1;
        }
    }
    if (close && add_header(wsi, "Connection", "close", &p, end) < 0)
        return -1;
    return lws_finalize_write_http_header(wsi, start, &p, end) ? -1 : 0;
}

/* A short text/plain answer written in one go (errors, refused upgrades).
 * 0 or -1. */
int chanc__write_simple_response(struct lws *wsi, int status, const char *text) {
    char body[160];
    int n = snprintf(body, sizeof body, "%d %s\n", status, text);
    if (chanc__write_head(wsi, status, "text/plain; charset=utf-8", (size_t)n, NULL, 0, false) < 0)
        return -1;
    unsigned char out[LWS_PRE + sizeof body];
    memcpy(out + LWS_PRE, body, (size_t)n);
    return lws_write(wsi, out + LWS_PRE, (size_t)n, LWS_WRITE_HTTP_FINAL) < 0 ? -1 : 0;
}

/* The transaction is answered: keep the connection for the next request or
 * close it. Returns what the lws callback should return. */
static int http_finish(tconn_t *t) {
    bool close = t->http && t->http->close_after;
    chanc__http_txn_free(t->http);
    t->http = NULL;
    if (close)
        return -1;
    return lws_http_transaction_completed(t->wsi) ? -1 : 0;
}

static int http_error(tconn_t *t, int status, const char *text);

/* Send status, headers and (via HTTP_WRITEABLE) body for the current
 * transaction; out (malloc'd, may be NULL) is taken over. */
static int http_respond(tconn_t *t, int status, const char *ctype, char *out, size_t out_len,
                        const chanc_header_t *extra, size_t nextra) {
    http_txn_t *h = t->http;
    h->responded = true;
    h->out = out;
    h->out_len = out_len;
    h->out_off = 0;
    if (chanc__write_head(t->wsi, status, ctype ? ctype : "text/html; charset=utf-8", out_len,
                          extra, nextra, h->close_after) < 0) {
        if (nextra && status != 500) {
            /* The handler's headers did not fit: nothing was sent yet. */
            free(h->out);
            h->out = NULL;
            return http_error(t, 500, "Internal Server Error");
        }
        chanc__http_txn_free(h);
        t->http = NULL;
        return -1;
    }
    if (h->method == LWSHUMETH_HEAD || out_len == 0)
        return http_finish(t);
    lws_callback_on_writable(t->wsi);
    return 0;
}

static int http_error(tconn_t *t, int status, const char *text) {
    char *body = malloc(160);
    int n = body ? snprintf(body, 160, "%d %s\n", status, text) : 0;
    return http_respond(t, status, "text/plain; charset=utf-8", body, (size_t)n, NULL, 0);
}

/* Check the handler's answer and send it. */
static int http_answer(tconn_t *t, chanc_http_response_t *resp) {
    http_txn_t *h = t->http;
    int status = resp->status ? resp->status : 200;
    if (status < 100 || status > 599 || (resp->content_type && !header_value_ok(resp->content_type))) {
        chanc_log(CHANC_LOG_ERROR, "HTTP %s %.200s: handler answered status %d / a bad content type",
                  h->method_name, h->path, resp->status);
        free(resp->body);
        resp->body = NULL;
        return http_error(t, 500, "Internal Server Error");
    }
    if (resp->nheaders > CHANC_HTTP_MAX_HEADERS)
        resp->nheaders = CHANC_HTTP_MAX_HEADERS;
    /* chanc__write_head copies names, values and the content type into the
     * header block before we return to the handler's world. */
    char *body = resp->body;
    resp->body = NULL; /* taken by http_respond */
    return http_respond(t, status, resp->content_type, body, body ? resp->body_len : 0,
                        resp->headers, resp->nheaders);
}

int chanc__http_dispatch(tconn_t *t) {
    chanc_server_t *s = t->s;
    http_txn_t *h = t->http;
    if (!s->http)
        return http_error(t, 404, "Not Found");
    char peer[64] = "";
    if (t->wsi)
        lws_get_peer_simple(t->wsi, peer, sizeof peer);
    chanc_http_request_t req = {
        .peer = peer,
        .method = h->method_name,
        .path = h->path,
        .query = h->query,
        .headers = h->headers,
        .nheaders = h->nheaders,
        .body = h->body,
        .body_len = h->body_len,
        .priv_ = t,
    };
    chanc_http_response_t resp;
    memset(&resp, 0, sizeof resp);
    int rc = s->http(s->http_ud, &req, &resp);
    if (rc == CHANC_HTTP_DEFERRED && h->deferred) {
        free(resp.body);
        return 0; /* chanc_http_complete answers */
    }
    if (rc < 0 || rc == CHANC_HTTP_DEFERRED) {
        chanc_log(CHANC_LOG_ERROR, "HTTP %s %.200s: handler failed: %s", h->method_name, h->path,
                  rc < 0 ? chanc_strerror(rc) : "deferred without chanc_http_defer");
        free(resp.body);
        return http_error(t, 500, "Internal Server Error");
    }
    return http_answer(t, &resp);
}

chanc_http_deferred_t *chanc_http_defer(const chanc_http_request_t *req) {
    tconn_t *t = req ? req->priv_ : NULL;
    if (!t || !t->http || t->http->deferred || t->http->responded) {
        /* Said here: the handler's error (often "out of memory") would not. */
        chanc_log(CHANC_LOG_ERROR, "chanc_http_defer: %s", !t || !t->http ? "no request"
                                   : t->http->responded ? "the request is answered already"
                                                        : "the request is deferred already");
        return NULL;
    }
    chanc_http_deferred_t *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->t = t;
    t->http->deferred = d;
    return d;
}

static char *dup_or_null(const char *v, bool *oom) {
    char *c = v ? strdup(v) : NULL;
    if (v && !c)
        *oom = true;
    return c;
}

void chanc_http_complete(chanc_http_deferred_t *d, chanc_http_response_t *resp) {
    if (!d)
        return;
    tconn_t *t = d->t;
    free(d);
    if (!t || !t->wsi || !t->http) { /* the client went away meanwhile */
        free(resp->body);
        resp->body = NULL;
        return;
    }
    http_txn_t *h = t->http;
    h->deferred = NULL;
    bool oom = false;
    chanc_http_response_t *l = &h->later;
    memset(l, 0, sizeof *l);
    l->status = resp->status;
    l->content_type = dup_or_null(resp->content_type, &oom);
    l->body = resp->body;
    l->body_len = resp->body_len;
    resp->body = NULL;
    size_t n = resp->nheaders > CHANC_HTTP_MAX_HEADERS ? CHANC_HTTP_MAX_HEADERS : resp->nheaders;
    for (size_t i = 0; i < n; i++) {
        l->headers[i].name = dup_or_null(resp->headers[i].name, &oom);
        l->headers[i].value = dup_or_null(resp->headers[i].value, &oom);
    }
    l->nheaders = n;
    if (oom) { /* answer 500 instead */
        later_dispose(l);
        l->status = 500;
    }
    h->has_later = true;
    lws_callback_on_writable(t->wsi);
}

static const struct {
    int method;
    const char *name;
} method_names[] = {
    {LWSHUMETH_GET, "GET"},         {LWSHUMETH_POST, "POST"},     {LWSHUMETH_OPTIONS, "OPTIONS"},
    {LWSHUMETH_PUT, "PUT"},         {LWSHUMETH_PATCH, "PATCH"},   {LWSHUMETH_DELETE, "DELETE"},
    {LWSHUMETH_CONNECT, "CONNECT"}, {LWSHUMETH_HEAD, "HEAD"},
};

/* The request headers a handler may read (chanc_http_request_t), copied. */
static void collect_headers(http_txn_t *h, struct lws *wsi) {
    static const struct {
        const char *name;
        enum lws_token_indexes tok;
    } wanted[] = {
        {"cookie", WSI_TOKEN_HTTP_COOKIE},
        {"content-type", WSI_TOKEN_HTTP_CONTENT_TYPE},
        {"content-length", WSI_TOKEN_HTTP_CONTENT_LENGTH},
        {"origin", WSI_TOKEN_ORIGIN},
        {"host", WSI_TOKEN_HOST},
        {"user-agent", WSI_TOKEN_HTTP_USER_AGENT},
        {"authorization", WSI_TOKEN_HTTP_AUTHORIZATION},
        {"accept", WSI_TOKEN_HTTP_ACCEPT},
        {"referer", WSI_TOKEN_HTTP_REFERER},
        {"x-forwarded-for", WSI_TOKEN_X_FORWARDED_FOR},
    };
    _Static_assert(sizeof wanted / sizeof wanted[0] <= sizeof h->headers / sizeof h->headers[0],
                   "room for every collected header");
    for (size_t i = 0; i < sizeof wanted / sizeof wanted[0]; i++) {
        char *v = chanc__hdr_dup(wsi, wanted[i].tok);
        if (v)
            h->headers[h->nheaders++] = (chanc_header_t){wanted[i].name, v};
    }
}

/* LWS_CALLBACK_HTTP: a new request (not an upgrade). */
int chanc__http_begin(chanc_server_t *s, struct lws *wsi) {
    tconn_t *t = chanc__tconn_get(s, wsi, true);
    if (!t)
        return -1;
    chanc__http_txn_free(t->http);
    http_txn_t *h = t->http = calloc(1, sizeof *h);
    if (!h)
        return -1;
    char *uri = NULL;
    int ulen = 0;
    h->method = lws_http_get_uri_and_method(wsi, &uri, &ulen);
    snprintf(h->method_name, sizeof h->method_name, "UNKNOWN");
    for (size_t i = 0; i < sizeof method_names / sizeof method_names[0]; i++)
        if (method_names[i].method == h->method)
            snprintf(h->method_name, sizeof h->method_name, "%s", method_names[i].name);
    h->path = uri ? dup_n(uri, (size_t)ulen) : strdup("/");
    if (chanc__headers_too_large(s, wsi, "an HTTP request")) {
        h->close_after = true;
        return http_error(t, 431, "Request Header Fields Too Large");
    }
    h->query = chanc__query_dup(wsi);
    collect_headers(h, wsi);
    if (!h->path)
        return -1;

    bool has_body_method = h->method == LWSHUMETH_POST || h->method == LWSHUMETH_PUT ||
                           h->method == LWSHUMETH_PATCH;
    char cl[32];
    long long length = -1;
    if (lws_hdr_copy(wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0) {
        char *end = NULL;
        length = strtoll(cl, &end, 10);
        if (end == cl || *end || length < 0) {
            h->close_after = true;
            return http_error(t, 400, "Bad Request");
        }
    }
    if (length < 0 && lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0) {
        /* lws 4.1 does not decode chunked request bodies. */
        h->close_after = true;
        return http_error(t, 411, "Length Required");
    }
    /* Each request reaches the handler exactly once: here when no body
     * follows, else at the body's end. libwebsockets 4.1.6 reads a body
     * whatever the method, and reports the end of an empty one too (a
     * POST with "Content-Length: 0", as browsers send an empty form):
     * HTTP_BODY_COMPLETION dispatches only a request still waiting for its
     * body, so neither dispatches one twice (a deferred handler's second
     * chanc_http_defer failed: 500). */
    if (length > 0) {
        if ((unsigned long long)length > s->max_body) {
            /* Answer now and close rather than read a body we refuse. */
            h->close_after = true;
            return http_error(t, 413, "Payload Too Large");
        }
        h->body = malloc((size_t)length + 1);
        if (!h->body)
            return -1;
        h->body_cap = (size_t)length;
        h->body[0] = '\0';
        h->reading_body = true;
        return 0; /* the body comes with HTTP_BODY, then HTTP_BODY_COMPLETION */
    }
    if (length < 0 && has_body_method) {
        /* No Content-Length: an empty body (RFC 9112), but libwebsockets
         * 4.1.6 takes whatever follows on the connection as this request's
         * body (up to 100 MiB). Answer, then close. */
        h->close_after = true;
    }
    if (has_body_method) {
        h->body = strdup("");
        if (!h->body)
            return -1;
    }
    return chanc__http_dispatch(t);
}

int chanc__http_body(tconn_t *t, const void *in, size_t len) {
    http_txn_t *h = t->http;
    if (!h || h->responded || !h->reading_body)
        return 0; /* no body expected (see chanc__http_begin): nothing to keep */
    if (len > h->body_cap - h->body_len) {
        h->close_after = true;
        return http_error(t, 413, "Payload Too Large");
    }
    memcpy(h->body + h->body_len, in, len);
    h->body_len += len;
    h->body[h->body_len] = '\0';
    return 0;
}

int chanc__http_writeable(tconn_t *t) {
    http_txn_t *h = t->http;
    if (h && h->has_later && !h->responded) {
        chanc_http_response_t *l = &h->later;
        if (l->status == 500 && !l->body) {
            h->has_later = false;
            return http_error(t, 500, "Internal Server Error");
        }
        int rc = http_answer(t, l);
        h = t->http; /* http_answer may have finished (and freed) it */
        if (h && h->has_later) {
            later_dispose(&h->later);
            h->has_later = false;
        }
        return rc;
    }
    if (!h || !h->responded || h->out_off >= h->out_len)
        return 0;
    unsigned char buf[LWS_PRE + HTTP_CHUNK];
    size_t n = h->out_len - h->out_off;
    if (n > HTTP_CHUNK)
        n = HTTP_CHUNK;
    memcpy(buf + LWS_PRE, h->out + h->out_off, n);
    h->out_off += n;
    bool last = h->out_off == h->out_len;
    if (lws_write(t->wsi, buf + LWS_PRE, n, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < 0)
        return -1;
    if (!last) {
        lws_callback_on_writable(t->wsi);
        return 0;
    }
    return http_finish(t);
}
