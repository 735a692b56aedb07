/* Authenticators and permissions, DRF style: authenticators identify the
 * user (or leave the connection anonymous), permissions then allow or deny
 * with an HTTP-like status and a detail text that reaches the client in the
 * "authentication" frame. */
#ifndef CHANC_AUTH_H
#define CHANC_AUTH_H

#include <stdbool.h>

#include "chanc/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct chanc_conn chanc_conn_t;

/* The outcome sent in the authentication frame. */
typedef struct chanc_status {
    int code;          /* 200, 401, 403, 404 (500 for internal failures) */
    char detail[160];  /* data.detail */
} chanc_status_t;

/* Set st to code + detail and return code, so a hook can
 * `return chanc_deny(st, 403, "You are not a member of this room.");` */
CHANC_API int chanc_deny(chanc_status_t *st, int code, const char *detail);
/* "OK", "Unauthorized", "Forbidden", "Not Found", … */
CHANC_API const char *chanc_status_text(int code);

#define CHANC_DETAIL_NOT_AUTHENTICATED "Authentication credentials were not provided."
#define CHANC_DETAIL_NOT_FOUND "Not found."

/* Authenticator result codes. */
enum {
    CHANC_AUTH_SKIP = 0,   /* no credentials of this kind: try the next one */
    CHANC_AUTH_OK = 1,     /* user identified (chanc_conn_set_user called) */
    CHANC_AUTH_FAILED = 2  /* credentials given but invalid: status filled */
};

/* An authenticator runs during the handshake phase, loop thread. It looks
 * at the request (chanc_conn_header, chanc_conn_cookie) and either calls
 * chanc_conn_set_user and returns CHANC_AUTH_OK, returns CHANC_AUTH_SKIP,
 * or fills st (e.g. 401) and returns CHANC_AUTH_FAILED. Any other result
 * (a negative error code) is logged and answered 500 (close 4500). */
typedef struct chanc_authenticator {
    const char *name;
    int (*authenticate)(chanc_conn_t *c, void *ud, chanc_status_t *st);
    void *ud;
} chanc_authenticator_t;

/* A permission returns 0 to allow or a status code (via chanc_deny) to
 * deny. Anything else denies too (fail closed): a status 400..599 returned
 * without chanc_deny is sent with a default detail, a negative error is
 * logged and answered 500 (close 4500). has_permission runs before the
 * object lookup,
 * has_object_permission after it (obj is the looked-up object). Either may
 * be NULL. */
typedef struct chanc_permission {
    const char *name;
    int (*has_permission)(chanc_conn_t *c, chanc_status_t *st);
    int (*has_object_permission)(chanc_conn_t *c, void *obj, chanc_status_t *st);
} chanc_permission_t;

/* Denies anonymous connections: 403, CHANC_DETAIL_NOT_AUTHENTICATED. */
CHANC_API extern const chanc_permission_t chanc_is_authenticated;
/* Allows everyone (the default when a consumer lists no permissions). */
CHANC_API extern const chanc_permission_t chanc_allow_any;

/* Session-cookie authenticator: reads cookie `cookie_name` from the Cookie
 * header and calls lookup(c, value, ud), which returns CHANC_AUTH_OK after
 * chanc_conn_set_user, or CHANC_AUTH_SKIP when the session is unknown or
 * expired (the connection stays anonymous, as Django's session auth does).
 * The struct must outlive the routes that use it. */
typedef struct chanc_cookie_auth {
    chanc_authenticator_t base; /* first: pass &x.base in authenticator lists */
    const char *cookie_name;
    int (*lookup)(chanc_conn_t *c, const char *value, void *ud);
    void *lookup_ud;
} chanc_cookie_auth_t;

/* Initialise a cookie authenticator. */
CHANC_API void chanc_cookie_auth_init(chanc_cookie_auth_t *a, const char *cookie_name,
                                      int (*lookup)(chanc_conn_t *, const char *, void *),
                                      void *ud);

/* Find cookie `name` in a Cookie header value; copies it (NUL-terminated)
 * into out. Returns the value's length, CHANC_ENOTFOUND if absent, or
 * CHANC_ETOOBIG if it does not fit. Quoted values are unquoted. */
CHANC_API int chanc_cookie_get(const char *header, const char *name, char *out,
                               size_t outlen);

#ifdef __cplusplus
}
#endif
#endif
