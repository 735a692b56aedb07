/* The log emitter: formats once, redacts secrets, escapes control
 * characters, hands the line to the installed emitter. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "chanc/log.h"
#include "chanc/utf8.h"
#include "ledger_internal.h"

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

/* --- secrets ----------------------------------------------------------------- */

#define MAX_SECRETS 16
#define MIN_SECRET 4
static char *secrets[MAX_SECRETS];
static size_t nsecrets;

int chanc_log_add_secret(const char *secret) {
    if (!secret)
        return CHANC_EINVAL;
    if (strlen(secret) < MIN_SECRET)
        return 0;
    for (size_t i = 0; i < nsecrets; i++)
        if (strcmp(secrets[i], secret) == 0)
            return 0;
    if (nsecrets == MAX_SECRETS)
        return CHANC_ENOMEM;
    char *copy = chanc__strdup(secret);
    if (!copy)
        return CHANC_ENOMEM;
    secrets[nsecrets++] = copy;
    return 0;
}

void chanc_log_clear_secrets(void) {
    for (size_t i = 0; i < nsecrets; i++)
        free(secrets[i]);
    nsecrets = 0;
}

static int hexdigit(int c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                          : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Register s[0..n) and its percent-decoded form. */
static int add_secret_n(const char *s, size_t n, bool decode) {
    char *raw = chanc__strndup(s, n);
    if (!raw)
        return CHANC_ENOMEM;
    int rc = chanc_log_add_secret(raw);
    if (rc == 0 && decode) {
        size_t o = 0;
        for (size_t i = 0; i < n; i++) {
            int hi, lo;
            if (raw[i] == '%' && i + 2 < n && (hi = hexdigit(raw[i + 1])) >= 0 &&
                (lo = hexdigit(raw[i + 2])) >= 0) {
                raw[o++] = (char)(hi * 16 + lo);
                i += 2;
            } else {
                raw[o++] = raw[i];
            }
        }
        raw[o] = '\0';
        rc = chanc_log_add_secret(raw);
    }
    free(raw);
    return rc;
}

/* Where a URL's authority part could end: a space, a quote, the end. */
static bool url_stop(char c) {
    return c == '\0' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '"' ||
           c == '\'' || c == '<' || c == '>';
}

/* Within s (after "://"): the password's [start, end) of a
 * user:password@ part, or false. */
static bool url_password(const char *s, const char **start, const char **end) {
    const char *stop = s;
    while (!url_stop(*stop))
        stop++;
    const char *at = NULL;
    for (const char *p = s; p < stop; p++)
        if (*p == '@')
            at = p;
    if (!at)
        return false;
    const char *colon = memchr(s, ':', (size_t)(at - s));
    if (!colon)
        return false;
    *start = colon + 1;
    *end = at;
    return true;
}

/* At s, "password=" (any case) starting a key: its value's [start, end). */
static bool key_password(const char *line, const char *s, const char **start, const char **end) {
    static const char key[] = "password=";
    if (strncasecmp(s, key, sizeof key - 1) != 0)
        return false;
    if (s > line && !strchr(" \t?&;,\"'(", s[-1]))
        return false;
    const char *v = s + sizeof key - 1, *e = v;
    if (*v == '\'') { /* a conninfo value in quotes, \' and \\ escaped */
        for (e = v + 1; *e && *e != '\''; e++)
            if (*e == '\\' && e[1])
                e++;
        if (*e)
            e++;
    } else {
        while (*e && !strchr(" \t\r\n&;,\"'", *e))
            e++;
    }
    *start = v;
    *end = e;
    return e > v;
}

int chanc_log_add_url_secrets(const char *url) {
    if (!url)
        return CHANC_EINVAL;
    int rc = 0;
    const char *start, *end;
    const char *sep = strstr(url, "://");
    if (sep && url_password(sep + 3, &start, &end))
        rc = add_secret_n(start, (size_t)(end - start), true);
    for (const char *p = url; *p && rc == 0; p++)
        if (key_password(url, p, &start, &end)) {
            if (*start == '\'' && end - start >= 2)
                rc = add_secret_n(start + 1, (size_t)(end - start - 2), false);
            else
                rc = add_secret_n(start, (size_t)(end - start), true);
            p = end - 1;
        }
    return rc;
}

/* Append n bytes of s to out (room: cap, NUL kept); false once full. */
static bool put(char *out, size_t cap, size_t *o, const char *s, size_t n) {
    if (*o + n >= cap)
        return false;
    memcpy(out + *o, s, n);
    *o += n;
    return true;
}

/* The length of the UTF-8 sequence at s when it is valid and not a C1
 * control (U+0080-U+009F); 0 otherwise. */
static size_t utf8_ok(const unsigned char *s) {
    uint32_t cp;
    size_t n = chanc_utf8_decode(s, strnlen((const char *)s, 4), &cp);
    return n > 1 && cp <= 0x9F ? 0 : n; /* C1 controls are escaped too */
}

size_t chanc_redact(const char *in, char *out, size_t outlen) {
    if (!out || outlen == 0)
        return 0;
    size_t o = 0;
    const char *p = in ? in : "";
    const char *pw_start = NULL, *pw_end = NULL; /* a URL password ahead */
    while (*p) {
        const char *start, *end;
        if (p == pw_start) {
            if (!put(out, outlen, &o, "***", 3))
                break;
            p = pw_end;
            pw_start = NULL;
            continue;
        }
        bool hit = false;
        for (size_t i = 0; i < nsecrets && !hit; i++) {
            size_t n = strlen(secrets[i]);
            if (strncmp(p, secrets[i], n) == 0) {
                hit = true;
                if (!put(out, outlen, &o, "***", 3))
                    goto full;
                p += n;
            }
        }
        if (hit)
            continue;
        if (!pw_start && p[0] == ':' && p[1] == '/' && p[2] == '/' &&
            url_password(p + 3, &start, &end)) {
            pw_start = start;
            pw_end = end;
        } else if (key_password(in, p, &start, &end)) {
            if (!put(out, outlen, &o, p, (size_t)(start - p)) || !put(out, outlen, &o, "***", 3))
                break;
            p = end;
            continue;
        }
        size_t n = utf8_ok((const unsigned char *)p);
        if (n == 0)
            n = 1;
        for (size_t i = 1; i < n; i++)
            if (!p[i])
                n = i;
        if (!put(out, outlen, &o, p, n))
            break;
        p += n;
    }
full:
    out[o] = '\0';
    return o;
}

/* --- the line ---------------------------------------------------------------- */

/* One line of printable text: controls, C1 and bytes that are not UTF-8
 * as \xHH, a backslash doubled. Cut (at a character) when out is full. */
static void escape_line(const char *in, char *out, size_t outlen) {
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)in;
    while (*p) {
        size_t n = utf8_ok(p);
        if (n == 1 && *p >= 0x20 && *p != 0x7F && *p != '\\') {
            if (!put(out, outlen, &o, (const char *)p, 1))
                break;
        } else if (n == 1 && *p == '\\') {
            if (!put(out, outlen, &o, "\\\\", 2))
                break;
        } else if (n > 1) {
            if (!put(out, outlen, &o, (const char *)p, n))
                break;
        } else {
            /* a control, or a byte that does not start a valid (non-C1)
             * sequence: escape it alone and resync on the next byte */
            char e[4] = {'\\', 'x', hex[*p >> 4], hex[*p & 15]};
            if (!put(out, outlen, &o, e, 4))
                break;
            n = 1;
        }
        p += n;
    }
    out[o] = '\0';
}

void chanc_log_emit(chanc_log_level_t level, const char *fmt, ...) {
    char line[1024], redacted[1024], safe[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    chanc_redact(line, redacted, sizeof redacted);
    escape_line(redacted, safe, sizeof safe);
    emitter(level, safe, emitter_ud);
}
