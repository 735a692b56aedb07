/* fuzz_http: libFuzzer over the HTTP handling chanc's chat wrote itself:
 * the views (routing of paths, the login form's url-encoded body, the
 * `next` redirect target, the Origin check, the session cookie) and the
 * cookie parser. libwebsockets parses the request line and headers; this
 * target starts where our code does, from a chanc_http_request_t.
 *
 * An input is text:
 *   METHOD\n PATH[?QUERY]\n (NAME: VALUE\n)* \n BODY
 * "@SESSION@" anywhere in a header value is replaced by a valid session
 * token of testuser, so the logged-in paths are reached too.
 *
 * Besides crashes and sanitizer reports, a finding is an answer that breaks
 * what the views promise: a status outside the documented set, a negative
 * return (500) for any input, a Location that a browser would resolve to
 * another site (WHATWG: tabs and newlines removed, then "//" or "/\"), a
 * control character in a header value, a Set-Cookie on anything but a
 * redirect, a body length without a body, an answer without the
 * Content-Security-Policy and X-Frame-Options headers, a 429 without
 * Retry-After.
 *
 * POST /login goes through a throttle with small limits on a clock that
 * moves 500 ms per input, so some logins are refused (429) and some not.
 *
 *   build-san/tests/fuzz/fuzz_http -max_total_time=60 <corpus> fixtures/fuzz/http */
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chanc/chat_views.h"
#include "chat_test.h"

#define MAX_HEADERS 16

static chat_test_t *fixture;
static chat_views_t views;
static chat_throttle_t *throttle;
static uint64_t fuzz_ms; /* the throttle's clock */

static uint64_t fuzz_mono(void *ud) {
    (void)ud;
    return fuzz_ms;
}
static int64_t fuzz_wall(void *ud) {
    (void)ud;
    return (int64_t)fuzz_ms;
}
static const chanc_clock_t fuzz_clock = {fuzz_mono, fuzz_wall, NULL};
static char token[CHAT_SESSION_TOKEN_LEN + 1];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The views defer only when they have an app (password checks on the
 * threadpool); here they have none, so the server is never needed. */
chanc_http_deferred_t *chanc_http_defer(const chanc_http_request_t *req) {
    (void)req;
    abort();
}
void chanc_http_complete(chanc_http_deferred_t *d, chanc_http_response_t *resp) {
    (void)d;
    (void)resp;
    abort();
}
/* /metrics reads the server's figures only when it has a server. */
void chanc_server_stats(const chanc_server_t *s, chanc_server_stats_t *out) {
    (void)s;
    (void)out;
    abort();
}

static void at_exit(void) {
    chat_test_destroy(fixture);
    chat_throttle_destroy(throttle);
}

static void setup(void) {
    fixture = chat_test_create(NULL);
    if (!fixture || chat_store_create_session(fixture->store, fixture->user_id, token) < 0) {
        fprintf(stderr, "fuzz_http: cannot create the chat fixture\n");
        abort();
    }
    views.store = fixture->store;
    views.app = NULL; /* password checks inline: no loop round trip */
    views.metrics = true;
    throttle = chat_throttle_create(
        &(chat_login_limits_t){.addr_per_min = 60, .addr_burst = 3, .user_per_min = 60,
                               .user_burst = 2, .max_checks = 4, .max_checks_addr = 2,
                               .hashers = 1},
        &fuzz_clock);
    if (!throttle)
        abort();
    views.throttle = throttle;
    atexit(at_exit);
}

/* Next line of [*p, end) as a NUL-terminated copy into *out (malloc'd). */
static bool next_line(const char **p, const char *end, char **out) {
    if (*p >= end)
        return false;
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    size_t n = nl ? (size_t)(nl - *p) : (size_t)(end - *p);
    *out = strndup(*p, n);
    *p = nl ? nl + 1 : end;
    return true;
}

/* value with every "@SESSION@" replaced by the token (malloc'd). */
static char *with_session(const char *value) {
    size_t n = 0;
    for (const char *q = value; (q = strstr(q, "@SESSION@")); q += 9)
        n++;
    char *out = malloc(strlen(value) + n * CHAT_SESSION_TOKEN_LEN + 1), *o = out;
    for (const char *q = value;;) {
        const char *hit = strstr(q, "@SESSION@");
        size_t len = hit ? (size_t)(hit - q) : strlen(q);
        memcpy(o, q, len);
        o += len;
        if (!hit)
            break;
        memcpy(o, token, CHAT_SESSION_TOKEN_LEN);
        o += CHAT_SESSION_TOKEN_LEN;
        q = hit + 9;
    }
    *o = 0;
    return out;
}

/* Where a browser goes for this Location: it must stay on this site. */
static bool local_location(const char *loc) {
    char clean[700];
    size_t n = 0;
    for (const char *p = loc; *p && n + 1 < sizeof clean; p++)
        if (*p != '\t' && *p != '\n' && *p != '\r')
            clean[n++] = *p;
    clean[n] = 0;
    return clean[0] == '/' && clean[1] != '/' && clean[1] != '\\';
}

static void check_response(const chanc_http_request_t *req, int rc,
                           const chanc_http_response_t *r) {
    static const int allowed[] = {0, 200, 302, 400, 401, 403, 404, 405, 413, 415, 429};
    bool ok = false;
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
        ok = ok || r->status == allowed[i];
    if (rc != 0 || !ok) {
        fprintf(stderr, "fuzz_http: %s %s → rc %d, status %d\n", req->method, req->path, rc,
                r->status);
        abort();
    }
    if (r->body_len && !r->body) {
        fprintf(stderr, "fuzz_http: a body length without a body\n");
        abort();
    }
    bool csp = false, xfo = false;
    for (size_t i = 0; i < r->nheaders; i++) {
        csp = csp || strcasecmp(r->headers[i].name, "Content-Security-Policy") == 0;
        xfo = xfo || strcasecmp(r->headers[i].name, "X-Frame-Options") == 0;
    }
    if (!csp || !xfo) {
        fprintf(stderr, "fuzz_http: %s %s → %d without CSP or X-Frame-Options\n", req->method,
                req->path, r->status);
        abort();
    }
    bool retry_after = false;
    for (size_t i = 0; i < r->nheaders; i++) {
        const char *name = r->headers[i].name, *value = r->headers[i].value;
        if (strcasecmp(name, "Retry-After") == 0)
            retry_after = value[0] >= '1' && value[0] <= '9' && strspn(value, "0123456789") == strlen(value);
        for (const char *p = value; *p; p++)
            if ((unsigned char)*p < 0x20 && *p != '\t') {
                fprintf(stderr, "fuzz_http: control character in %s: %s\n", name, value);
                abort();
            }
        if (strcasecmp(name, "Location") == 0 && !local_location(value)) {
            fprintf(stderr, "fuzz_http: redirect off the site: Location: %s\n", value);
            abort();
        }
        if (strcasecmp(name, "Set-Cookie") == 0 && r->status != 302) {
            fprintf(stderr, "fuzz_http: Set-Cookie on a %d\n", r->status);
            abort();
        }
    }
    if ((r->status == 429) != retry_after) {
        fprintf(stderr, "fuzz_http: %d with%s Retry-After (delay-seconds)\n", r->status,
                retry_after ? "" : "out");
        abort();
    }
}

/* The cookie parser on its own, with tight output buffers. */
static void fuzz_cookie(const char *cookies) {
    static const char *const names[] = {"sessionid", "csrftoken", "a", ""};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        for (size_t len = 1; len <= 80; len += 13) {
            char *out = malloc(len); /* exact size: ASan sees any overrun */
            int rc = chanc_cookie_get(cookies, names[i], out, len);
            if (rc >= 0 && strlen(out) >= len)
                abort();
            free(out);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!fixture)
        setup();
    fuzz_ms += 500;
    const char *p = (const char *)data, *end = p + size;
    char *method = NULL, *target = NULL;
    if (!next_line(&p, end, &method) || !next_line(&p, end, &target)) {
        free(method);
        return 0;
    }
    chanc_header_t headers[MAX_HEADERS];
    char *owned[MAX_HEADERS * 2];
    size_t nheaders = 0, nowned = 0;
    char *line;
    while (nheaders < MAX_HEADERS && next_line(&p, end, &line)) {
        char *colon = strchr(line, ':');
        if (!*line || !colon) {
            free(line);
            break; /* the blank line: the body follows */
        }
        *colon = 0;
        const char *v = colon + 1;
        while (*v == ' ')
            v++;
        for (char *c = line; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        char *value = with_session(v);
        headers[nheaders++] = (chanc_header_t){line, value};
        owned[nowned++] = line;
        owned[nowned++] = value;
        if (strcmp(line, "cookie") == 0)
            fuzz_cookie(value);
    }
    char *body = p < end ? strndup(p, (size_t)(end - p)) : NULL;
    char *query = strchr(target, '?');
    if (query)
        *query++ = 0;
    chanc_http_request_t req = {
        .peer = "127.0.0.1",
        .method = method, .path = target, .query = query, .headers = headers,
        .nheaders = nheaders, .body = body, .body_len = body ? strlen(body) : 0};
    chanc_http_response_t resp = {0};
    int rc = chat_views_handle(&views, &req, &resp);
    check_response(&req, rc, &resp);
    free(resp.body);
    free(body);
    for (size_t i = 0; i < nowned; i++)
        free(owned[i]);
    free(method);
    free(target);
    return 0;
}
