/* chanc error codes: one X-macro list gives the enum, chanc_strerror() and
 * chanc_err_name(). Functions return 0 on success, a negative CHANC_E… code
 * on failure; constructors return NULL. */
#ifndef CHANC_ERROR_H
#define CHANC_ERROR_H

#include <stdarg.h>

#include "chanc/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* printf-style checking of a function's format argument where the compiler
 * has it (GCC, clang); nothing elsewhere, so the headers stay ISO C. */
#if defined(__GNUC__)
#define CHANC_PRINTF_FORMAT(fmt, first) __attribute__((format(printf, fmt, first)))
#else
#define CHANC_PRINTF_FORMAT(fmt, first)
#endif

#define CHANC_ERRNO_MAP(X)                                                   \
    X(NOMEM, "out of memory")                                                \
    X(INVAL, "invalid argument")                                             \
    X(NOTFOUND, "not found")                                                 \
    X(NOROUTE, "no route matches the path")                                  \
    X(CLOSED, "connection is closed")                                        \
    X(TIMEDOUT, "timed out")                                                 \
    X(TOOBIG, "too large")                                                   \
    X(PROTO, "protocol error")                                               \
    X(EXIST, "already exists")                                               \
    X(IO, "input/output error")                                              \
    X(BUSY, "resource busy")                                                 \
    X(DENIED, "permission denied")                                           \
    X(VALIDATION, "validation failed")                                       \
    X(HANDLER, "handler failed")

typedef enum {
    CHANC_OK = 0,
    CHANC__ERR_BASE = -1000, /* keep clear of errno values */
#define CHANC__ERR_ENUM(name, text) CHANC_E##name,
    CHANC_ERRNO_MAP(CHANC__ERR_ENUM)
#undef CHANC__ERR_ENUM
    CHANC__ERR_END
} chanc_errno_t;

/* Human-readable text for a code; never NULL ("unknown error" for others). */
CHANC_API const char *chanc_strerror(int code);
/* Symbolic name ("CHANC_ENOMEM"); never NULL. */
CHANC_API const char *chanc_err_name(int code);

/* An optional out-parameter where a person needs the reason, like
 * jansson's json_error_t. */
typedef struct chanc_error {
    int code;
    char text[200];
} chanc_error_t;

/* Fill err (if non-NULL) with code and printf-style text; returns code. */
CHANC_API int chanc_error_set(chanc_error_t *err, int code, const char *fmt, ...)
    CHANC_PRINTF_FORMAT(3, 4);

/* printf into a new malloc'd string (free it); NULL on OOM. */
CHANC_API char *chanc_strdupf(const char *fmt, ...) CHANC_PRINTF_FORMAT(1, 2);
CHANC_API char *chanc_vstrdupf(const char *fmt, va_list ap) CHANC_PRINTF_FORMAT(1, 0);

#ifdef __cplusplus
}
#endif
#endif
