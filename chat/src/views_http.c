/* The views' HTTP helpers (views_internal.h): a growable string,
 * responses and templates, requests and forms, the session cookie and the
 * security headers every response carries. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "assets.h"
#include "views_internal.h"

/* Storage for the header values the views format (Location, Set-Cookie,
 * Retry-After): the server copies a response's headers once the handler
 * returns, or in chanc_http_complete, before this thread builds another
 * response. One per thread, as each loop runs on one thread. */
static _Thread_local struct {
    char cookie[200];
    char location[600];
    char retry_after[16];
} scratch;

/* ---- a growable string ----------------------------------------------------- */

void chat_sb_add(chat_sbuf_t *b, const char *s, size_t n) {
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void chat_sb_str(chat_sbuf_t *b, const char *s) { chat_sb_add(b, s, strlen(s)); }

void chat_sb_html(chat_sbuf_t *b, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '&': chat_sb_str(b, "&amp;"); break;
        case '<': chat_sb_str(b, "&lt;"); break;
        case '>': chat_sb_str(b, "&gt;"); break;
        case '"': chat_sb_str(b, "&quot;"); break;
        case '\'': chat_sb_str(b, "&#39;"); break;
        default: chat_sb_add(b, s, 1);
        }
    }
}

void chat_sb_printf(chat_sbuf_t *b, const char *fmt, ...) {
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > 0)
        chat_sb_add(b, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* ---- responses ----------------------------------------------------------------- */

int chat_http_add_header(chanc_http_response_t *r, const char *name, const char *value) {
    if (r->nheaders >= CHANC_HTTP_MAX_HEADERS)
        return CHANC_ENOMEM;
    r->headers[r->nheaders++] = (chanc_header_t){name, value};
    return 0;
}

int chat_http_respond(chanc_http_response_t *r, int status, const char *type, chat_sbuf_t *body) {
    if (body->oom) {
        free(body->p);
        return CHANC_ENOMEM;
    }
    r->status = status;
    r->content_type = type;
    r->body = body->p;
    r->body_len = body->len;
    return 0;
}

int chat_http_respond_text(chanc_http_response_t *r, int status, const char *text) {
    chat_sbuf_t b = {0};
    chat_sb_str(&b, text);
    chat_sb_str(&b, "\n");
    return chat_http_respond(r, status, "text/plain; charset=utf-8", &b);
}

/* A template with {{name}} placeholders: vars are name/value pairs
 * (NULL-terminated); a name starting with '!' is inserted raw (already
 * HTML), others are escaped. Unknown placeholders render empty. */
int chat_http_render(chanc_http_response_t *r, int status, const char *tpl_name,
                     const char *const *vars) {
    const chat_asset_t *tpl = chat_asset_find(tpl_name);
    if (!tpl)
        return CHANC_ENOTFOUND;
    chat_sbuf_t b = {0};
    const char *p = tpl->data;
    for (;;) {
        const char *open = strstr(p, "{{");
        const char *close = open ? strstr(open + 2, "}}") : NULL;
        if (!close) {
            chat_sb_str(&b, p);
            break;
        }
        chat_sb_add(&b, p, (size_t)(open - p));
        size_t n = (size_t)(close - open - 2);
        for (const char *const *v = vars; v && v[0]; v += 2) {
            bool raw = v[0][0] == '!';
            const char *name = v[0] + raw;
            if (strlen(name) == n && memcmp(name, open + 2, n) == 0) {
                if (raw)
                    chat_sb_str(&b, v[1]);
                else
                    chat_sb_html(&b, v[1]);
                break;
            }
        }
        p = close + 2;
    }
    return chat_http_respond(r, status, "text/html; charset=utf-8", &b);
}

int chat_views__redirect(chanc_http_response_t *r, const char *location) {
    snprintf(scratch.location, sizeof scratch.location, "%s", location);
    chat_http_add_header(r, "Location", scratch.location);
    return chat_http_respond_text(r, 302, "Found");
}

void chat_http_retry_after(chanc_http_response_t *r, uint32_t seconds) {
    snprintf(scratch.retry_after, sizeof scratch.retry_after, "%u", seconds);
    chat_http_add_header(r, "Retry-After", scratch.retry_after);
}

/* ---- requests ------------------------------------------------------------------- */

const char *chat_http_header(const chanc_http_request_t *req, const char *name) {
    for (size_t i = 0; i < req->nheaders; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

static int hexval(int c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                           : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Field `name` of an application/x-www-form-urlencoded string, decoded
 * into out. true when present and it fits (NUL bytes refused). */
bool chat_http_form_get(const char *form, const char *name, char *out, size_t outlen) {
    size_t nlen = strlen(name);
    for (const char *p = form; p && *p;) {
        const char *end = strchr(p, '&');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > nlen && p[nlen] == '=' && memcmp(p, name, nlen) == 0) {
            size_t o = 0;
            for (size_t i = nlen + 1; i < len; i++) {
                int ch = (unsigned char)p[i];
                if (ch == '+')
                    ch = ' ';
                else if (ch == '%' && i + 2 < len + 1 && hexval(p[i + 1]) >= 0 &&
                         hexval(p[i + 2]) >= 0) {
                    ch = hexval(p[i + 1]) * 16 + hexval(p[i + 2]);
                    i += 2;
                }
                if (ch == 0 || o + 1 >= outlen)
                    return false;
                out[o++] = (char)ch;
            }
            out[o] = '\0';
            return true;
        }
        p = end ? end + 1 : NULL;
    }
    return false;
}

/* A local redirect target: one leading '/', no scheme or host, and only
 * printable ASCII (no space, tab or control character: browsers drop tabs
 * and newlines, so "/\t/evil.example" would be "//evil.example"; a
 * control character has no place in a header). Anything else: "/". */
const char *chat_http_safe_next(const char *next) {
    if (!next || next[0] != '/' || next[1] == '/' || next[1] == '\\')
        return "/";
    for (const unsigned char *p = (const unsigned char *)next; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f)
            return "/";
    return next;
}

static const char *cookie_name(const chat_views_t *v) {
    return v->secure_cookies ? CHAT_SESSION_COOKIE_SECURE : CHAT_SESSION_COOKIE;
}

/* The session token of the cookie; false when there is none (anonymous
 * without asking the store). */
bool chat_views__cookie_token(const chat_views_t *v, const chanc_http_request_t *req,
                              char token[CHAT_SESSION_TOKEN_LEN + 1]) {
    const char *cookies = chat_http_header(req, "cookie");
    return cookies &&
           chanc_cookie_get(cookies, cookie_name(v), token, CHAT_SESSION_TOKEN_LEN + 1) >= 0;
}

/* The session cookie's Set-Cookie value (token "" and max_age 0: cleared). */
void chat_views__set_session_cookie(const chat_views_t *v, chanc_http_response_t *r,
                                    const char *token, int max_age) {
    snprintf(scratch.cookie, sizeof scratch.cookie,
             "%s=%s; HttpOnly; SameSite=Lax; Path=/; Max-Age=%d%s", cookie_name(v), token, max_age,
             v->secure_cookies ? "; Secure" : "");
    chat_http_add_header(r, "Set-Cookie", scratch.cookie);
}

/* On every response of the views: the page runs only this site's script
 * and style files, nothing inline, and no other site may frame it. */
void chat_http_page_headers(chanc_http_response_t *r) {
    chat_http_add_header(r, "Content-Security-Policy", CHAT_CSP);
    chat_http_add_header(r, "X-Frame-Options", "DENY");
}

/* POST from a page of another site? (Absent Origin: not a browser form
 * post from elsewhere, since browsers send Origin on cross-site POSTs.) */
bool chat_http_foreign_origin(const chanc_http_request_t *req) {
    const char *origin = chat_http_header(req, "origin"), *host = chat_http_header(req, "host");
    if (!origin || strcmp(origin, "null") == 0)
        return origin != NULL;
    const char *h = strstr(origin, "://");
    return !host || !h || strcasecmp(h + 3, host) != 0;
}

bool chat_http_method_is(const chanc_http_request_t *req, const char *m) {
    return strcmp(req->method, m) == 0 ||
           (strcmp(m, "GET") == 0 && strcmp(req->method, "HEAD") == 0);
}

int chat_http_not_allowed(chanc_http_response_t *r, const char *allow) {
    chat_http_add_header(r, "Allow", allow);
    return chat_http_respond_text(r, 405, "Method Not Allowed");
}

bool chat_http_content_type_is(const chanc_http_request_t *req, const char *want,
                               bool absent_ok) {
    const char *type = chat_http_header(req, "content-type");
    if (!type)
        return absent_ok;
    size_t n = strcspn(type, "; \t");
    return n == strlen(want) && strncasecmp(type, want, n) == 0;
}

/* A login's body: application/x-www-form-urlencoded, as the form posts it
 * (parameters such as charset allowed), or no Content-Type at all (curl,
 * scripts). */
bool chat_http_form_urlencoded(const chanc_http_request_t *req) {
    return chat_http_content_type_is(req, "application/x-www-form-urlencoded", true);
}

static int sb_dump(const char *buffer, size_t size, void *data) {
    chat_sb_add(data, buffer, size);
    return 0;
}

int chat_http_respond_json(chanc_http_response_t *r, int status, json_t *body) {
    chat_sbuf_t b = {0};
    int rc = body ? json_dump_callback(body, sb_dump, &b, JSON_COMPACT) : -1;
    json_decref(body);
    if (rc != 0) {
        free(b.p);
        return CHANC_ENOMEM;
    }
    return chat_http_respond(r, status, "application/json", &b);
}
