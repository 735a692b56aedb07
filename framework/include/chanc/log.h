/* Logging: one replaceable emitter; the level is checked before the
 * arguments are evaluated. */
#ifndef CHANC_LOG_H
#define CHANC_LOG_H

#include <stddef.h>

#include "chanc/error.h"
#include "chanc/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    CHANC_LOG_ERROR = 0,
    CHANC_LOG_WARN = 1,
    CHANC_LOG_NOTICE = 2,
    CHANC_LOG_INFO = 3,
    CHANC_LOG_DEBUG = 4
} chanc_log_level_t;

/* Receives one formatted line (no trailing newline), already made safe:
 * secrets redacted (see chanc_redact) and then every control character
 * escaped, so a line is one line of printable text whatever a client put
 * into it: bytes 0x00-0x1F and 0x7F, C1 controls (U+0080-U+009F) and bytes
 * that are not UTF-8 become \xHH (each byte), a backslash becomes \\.
 * Valid UTF-8 text is kept as it is. */
typedef void (*chanc_log_emit_fn)(chanc_log_level_t level, const char *line,
                                  void *ud);

/* Current threshold: messages with level <= chanc_log_level are emitted.
 * Default CHANC_LOG_NOTICE. Loop thread only. */
CHANC_API extern int chanc_log_level;

/* Replace the emitter (NULL restores the default, which writes to stderr). */
CHANC_API void chanc_log_set_emitter(chanc_log_emit_fn fn, void *ud);
CHANC_API void chanc_log_set_level(chanc_log_level_t level);
/* Parse "error", "warn", "notice", "info", "debug"; -1 if unknown. */
CHANC_API int chanc_log_level_parse(const char *name);
CHANC_API const char *chanc_log_level_name(chanc_log_level_t level);

/* Secrets. chanc_redact copies `in` into out (outlen bytes, always
 * NUL-terminated; a cut never splits a UTF-8 sequence) with
 *  - the password of a URL ("scheme://user:PASSWORD@host": everything
 *    between the first ':' after "://" and the last '@' before a space or
 *    a quote),
 *  - the value of "password=VALUE" (libpq conninfo, URL query parameters;
 *    a quoted conninfo value included), and
 *  - every registered secret, wherever it appears,
 * replaced by "***". Returns the length written. Every log line goes
 * through it; use it for text printed otherwise (stderr). */
CHANC_API size_t chanc_redact(const char *in, char *out, size_t outlen);
/* Register a secret (copied; 4 bytes or more, shorter ones are ignored and
 * 0 returned) to be redacted from every log line and chanc_redact's
 * output. At most 16. Process-wide: call at start-up, before threads that
 * log. 0, CHANC_EINVAL or CHANC_ENOMEM. */
CHANC_API int chanc_log_add_secret(const char *secret);
/* Register the passwords a URL or a libpq conninfo string holds: the
 * userinfo password as written and percent-decoded, and each password=
 * value. 0 or a negative code. */
CHANC_API int chanc_log_add_url_secrets(const char *url);
/* Forget every registered secret (tests). */
CHANC_API void chanc_log_clear_secrets(void);

/* Emit one line unconditionally; call it through chanc_log, which checks
 * the level first. */
CHANC_API void chanc_log_emit(chanc_log_level_t level, const char *fmt, ...)
    CHANC_PRINTF_FORMAT(2, 3);

#define chanc_log(level, ...)                                                \
    do {                                                                     \
        if ((int)(level) <= chanc_log_level)                                 \
            chanc_log_emit((level), __VA_ARGS__);                           \
    } while (0)

#ifdef __cplusplus
}
#endif
#endif
