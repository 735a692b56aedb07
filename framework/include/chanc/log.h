/* Logging: one replaceable emitter; the level is checked before the
 * arguments are evaluated. */
#ifndef CHANC_LOG_H
#define CHANC_LOG_H

#include "chanc/error.h"

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

/* Receives one formatted line (no trailing newline). */
typedef void (*chanc_log_emit_fn)(chanc_log_level_t level, const char *line,
                                  void *ud);

/* Current threshold: messages with level <= chanc_log_level are emitted.
 * Default CHANC_LOG_NOTICE. Loop thread only. */
extern int chanc_log_level;

/* Replace the emitter (NULL restores the default, which writes to stderr). */
void chanc_log_set_emitter(chanc_log_emit_fn fn, void *ud);
void chanc_log_set_level(chanc_log_level_t level);
/* Parse "error", "warn", "notice", "info", "debug"; -1 if unknown. */
int chanc_log_level_parse(const char *name);
const char *chanc_log_level_name(chanc_log_level_t level);

void chanc__log_emit(chanc_log_level_t level, const char *fmt, ...)
    CHANC_PRINTF_FORMAT(2, 3);

#define chanc_log(level, ...)                                                \
    do {                                                                     \
        if ((int)(level) <= chanc_log_level)                                 \
            chanc__log_emit((level), __VA_ARGS__);                           \
    } while (0)

#ifdef __cplusplus
}
#endif
#endif
