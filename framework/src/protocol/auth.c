/* Status helpers, built-in permissions, the session-cookie authenticator
 * and Cookie header parsing (RFC 6265 §5.4 style: "a=1; b=2"). */
#include <stdio.h>
#include <string.h>

#include "chanc/auth.h"
#include "chanc/consumer.h"
#include "chanc/error.h"

int chanc_deny(chanc_status_t *st, int code, const char *detail) {
    if (st) {
        st->code = code;
        snprintf(st->detail, sizeof st->detail, "%s", detail ? detail : "");
    }
    return code;
}

const char *chanc_status_text(int code) {
    switch (code) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

static int is_authenticated(chanc_conn_t *c, chanc_status_t *st) {
    if (chanc_conn_is_authenticated(c))
        return 0;
    return chanc_deny(st, 403, CHANC_DETAIL_NOT_AUTHENTICATED);
}

const chanc_permission_t chanc_is_authenticated = {
    .name = "is_authenticated", .has_permission = is_authenticated};
const chanc_permission_t chanc_allow_any = {.name = "allow_any"};

int chanc_cookie_get(const char *header, const char *name, char *out, size_t outlen) {
    if (!header || !name || !*name)
        return CHANC_ENOTFOUND;
    size_t nlen = strlen(name);
    const char *p = header;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ';')
            p++;
        const char *eq = p;
        while (*eq && *eq != '=' && *eq != ';')
            eq++;
        const char *kend = eq;
        while (kend > p && (kend[-1] == ' ' || kend[-1] == '\t'))
            kend--;
        const char *vstart = *eq == '=' ? eq + 1 : eq;
        const char *vend = vstart;
        while (*vend && *vend != ';')
            vend++;
        if (*eq == '=' && (size_t)(kend - p) == nlen && memcmp(p, name, nlen) == 0) {
            while (vstart < vend && (*vstart == ' ' || *vstart == '\t'))
                vstart++;
            const char *ve = vend;
            while (ve > vstart && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            if (ve - vstart >= 2 && *vstart == '"' && ve[-1] == '"') {
                vstart++;
                ve--;
            }
            size_t vlen = (size_t)(ve - vstart);
            if (vlen + 1 > outlen)
                return CHANC_ETOOBIG;
            memcpy(out, vstart, vlen);
            out[vlen] = '\0';
            return (int)vlen;
        }
        p = vend;
    }
    return CHANC_ENOTFOUND;
}

static int cookie_authenticate(chanc_conn_t *c, void *ud, chanc_status_t *st) {
    (void)st;
    const chanc_cookie_auth_t *a = ud;
    char value[512];
    /* A missing or oversized cookie is "no credentials", as in Django. */
    if (chanc_conn_cookie(c, a->cookie_name, value, sizeof value) <= 0)
        return CHANC_AUTH_SKIP;
    return a->lookup(c, value, a->lookup_ud);
}

void chanc_cookie_auth_init(chanc_cookie_auth_t *a, const char *cookie_name,
                            int (*lookup)(chanc_conn_t *, const char *, void *),
                            void *ud) {
    memset(a, 0, sizeof *a);
    a->base.name = "session_cookie";
    a->base.authenticate = cookie_authenticate;
    a->base.ud = a;
    a->cookie_name = cookie_name;
    a->lookup = lookup;
    a->lookup_ud = ud;
}
