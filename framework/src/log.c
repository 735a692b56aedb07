/* The log emitter: formats once, hands the line to the installed emitter. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "chanc/log.h"

int chanc_log_level = CHANC_LOG_NOTICE;

static const char *const level_names[] = {"error", "warn", "notice", "info", "debug"};

static void emit_stderr(chanc_log_level_t level, const char *line, void *ud) {
    (void)ud;
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-6s %s\n", tm.tm_year + 1900,
            tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
            ts.tv_nsec / 1000000, chanc_log_level_name(level), line);
}

static chanc_log_emit_fn emitter = emit_stderr;
static void *emitter_ud;

void chanc_log_set_emitter(chanc_log_emit_fn fn, void *ud) {
    emitter = fn ? fn : emit_stderr;
    emitter_ud = fn ? ud : NULL;
}

void chanc_log_set_level(chanc_log_level_t level) { chanc_log_level = (int)level; }

int chanc_log_level_parse(const char *name) {
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++)
        if (name && strcasecmp(name, level_names[i]) == 0)
            return (int)i;
    return -1;
}

const char *chanc_log_level_name(chanc_log_level_t level) {
    if ((unsigned)level < sizeof level_names / sizeof level_names[0])
        return level_names[level];
    return "?";
}

void chanc__log_emit(chanc_log_level_t level, const char *fmt, ...) {
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    emitter(level, line, emitter_ud);
}
