/* chanc_strerror / chanc_err_name from the one CHANC_ERRNO_MAP list, and
 * the formatted-text helpers. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "chanc/error.h"
#include "ledger_internal.h"

const char *chanc_strerror(int code) {
    switch (code) {
    case CHANC_OK:
        return "success";
#define X(name, text) case CHANC_E##name: return text;
        CHANC_ERRNO_MAP(X)
#undef X
    default:
        return "unknown error";
    }
}

const char *chanc_err_name(int code) {
    switch (code) {
    case CHANC_OK:
        return "CHANC_OK";
#define X(name, text) case CHANC_E##name: return "CHANC_E" #name;
        CHANC_ERRNO_MAP(X)
#undef X
    default:
        return "CHANC_E?";
    }
}

int chanc_error_set(chanc_error_t *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->text, sizeof err->text, fmt, ap);
        va_end(ap);
    }
    return code;
}

char *chanc_vstrdupf(const char *fmt, va_list ap) {
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    char *s = n >= 0 ? chanc__malloc((size_t)n + 1) : NULL;
    if (s)
        vsnprintf(s, (size_t)n + 1, fmt, again);
    va_end(again);
    return s;
}

char *chanc_strdupf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = chanc_vstrdupf(fmt, ap);
    va_end(ap);
    return s;
}
