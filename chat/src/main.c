/* chat-server: the chat application served over HTTP and WebSocket
 * (libwebsockets on one libuv loop), on SQLite (or PostgreSQL) and the
 * in-memory layer or Redis (--layer redis://…, to share rooms between
 * several processes).
 *
 *   chat-server [--host H] [--port P] [--db FILE|URL] [--seed FILE|--demo|--no-seed]
 *               [--layer URL] [--workers N] [--log-level L]
 *               [--max-frame BYTES] [--allowed-origin O]…
 *               [--login-limit-addr N/B] [--login-limit-user N/B]
 *               [--login-checks N/P] [--login-hashers N]
 *
 * Each flag has an environment equivalent (CHAT_HOST, CHAT_PORT, CHAT_DB,
 * CHAT_SEED, CHAT_DEMO=1, CHAT_LAYER, CHAT_WORKERS, CHAT_LOG_LEVEL, CHAT_MAX_FRAME,
 * CHAT_LOGIN_*, CHAT_ALLOWED_ORIGINS as a comma-separated list); flags win.
 * Every option is declared once, in option_table (flag, variable, parser,
 * field, --help text), walked for the environment, then for argv. With
 * --workers N, this process seeds the database, forks N workers that share
 * the port (SO_REUSEPORT) and rooms (the Redis layer), passes SIGINT/SIGTERM
 * on to them and exits when they all have. A new database (no users) is seeded
 * from --seed FILE, or from the built-in demo fixtures with --demo (their
 * passwords are published: never by default), else left empty. SIGINT/SIGTERM:
 * stop accepting, close clients with 1001, exit 0. */
#define _GNU_SOURCE /* sched_setaffinity, CPU_* */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sched.h>
#include <sys/prctl.h>
#endif

#include <sodium.h>

#include "assets.h"
#include "chanc/chat_docs.h"
#include "chanc/chat_views.h"

#define MAX_ORIGINS 16
#define MAX_WORKERS 64
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

typedef struct options {
    const char *host, *db, *seed, *log_level, *pwhash, *layer;
    size_t port;
    size_t max_frame, max_connections, workers;
    uint32_t rate_limit, rate_burst; /* 0: the framework's defaults */
    size_t keepalive_s; /* 0: off */
    size_t presence_threshold, presence_interval_ms; /* 0: the chat's defaults */
    bool no_seed, demo; /* --seed, --demo, --no-seed: the last one wins */
    bool metrics, secure_cookies;
    bool asyncapi; /* --asyncapi: print the document and exit */
    const char *metrics_allow, *metrics_token_file;
    const char *origins[MAX_ORIGINS + 1];
    size_t norigins;
    chat_login_limits_t login; /* --login-*: POST /login's throttle */
    char *origins_env; /* strdup'd CHAT_ALLOWED_ORIGINS, split in place */
} options_t;

/* --- Options: one table, walked for the environment, then for argv ------- */

typedef enum option_kind {
    OPT_TEXT,    /* a string, kept as given (checked after parsing, if at all) */
    OPT_SIZE,    /* a decimal number from lo to hi */
    OPT_SWITCH,  /* a flag without value; its variable: on unless "0" */
    OPT_RATE,    /* "N", "N/B" or "off": rate_limit and rate_burst */
    OPT_LOGIN,   /* the login throttle's: chat_login_limits_option (throttle.c) */
    OPT_ORIGIN,  /* one per flag (repeatable); the variable: comma-separated */
    OPT_SEED,    /* --seed FILE       \  of the three flags the last one wins; */
    OPT_DEMO,    /* --demo (switch)    > CHAT_SEED wins over CHAT_DEMO */
    OPT_NO_SEED, /* --no-seed (switch)/ */
} option_kind_t;

typedef struct option {
    const char *flag, *arg; /* arg: the value's name in --help; NULL: a switch */
    const char *env;        /* NULL: no variable */
    option_kind_t kind;
    size_t at;              /* where it goes: the field's offset in options_t */
    size_t lo, hi;          /* OPT_SIZE's limits */
    const char *bad;        /* a bad value: "chat-server: NAME: BAD: VALUE" */
    bool url_secret;        /* a URL whose password never reaches a log line */
    const char *help;       /* --help's lines (the variable, the default) */
} option_t;

/* The field's offset, its type checked (a mismatch is a warning). */
#define AT(field, type) \
    (offsetof(options_t, field) + 0 * sizeof(&((options_t *)0)->field == (type *)0))
#define TEXT(field) .kind = OPT_TEXT, .at = AT(field, const char *)
#define SIZE(field, min, max, what) \
    .kind = OPT_SIZE, .at = AT(field, size_t), .lo = (min), .hi = (max), .bad = (what)
#define SWITCH(field) .kind = OPT_SWITCH, .at = AT(field, bool)

/* Flags win over the environment: the variables are read first, in this
 * order, then argv from left to right. --help lists them in this order. */
static const option_t option_table[] = {
    {"--host", "HOST", "CHAT_HOST", TEXT(host), .help = "bind address (CHAT_HOST; default 127.0.0.1)"},
    {"--port", "PORT", "CHAT_PORT", SIZE(port, 0, 65535, "not a port"),
     .help = "TCP port (CHAT_PORT; default 8000; 0: any free port)"},
    {"--db", "FILE|URL", "CHAT_DB", TEXT(db), .url_secret = true,
     .help = "SQLite file, sqlite:FILE, or a PostgreSQL URL\n"
             "postgresql://USER:PASSWORD@HOST:PORT/DBNAME\n"
             "(CHAT_DB; default chanc-chat.db)"},
    {"--seed", "FILE", "CHAT_SEED", .kind = OPT_SEED,
     .help = "fixtures for a new database (CHAT_SEED); without\n"
             "--seed or --demo a new database stays empty"},
    {"--demo", NULL, "CHAT_DEMO", .kind = OPT_DEMO,
     .help = "seed a new database with the demo users and rooms\n"
             "(CHAT_DEMO=1): testuser/testpass123,\n"
             "alice/alice-pass-1, bob/bob-pass-1, …: published\n"
             "passwords, for trying chanc out, never in production"},
    {"--no-seed", NULL, NULL, .kind = OPT_NO_SEED,
     .help = "leave a new database empty (the default)\n"
             "(of --seed, --demo and --no-seed the last one wins)"},
    {"--layer", "URL", "CHAT_LAYER", TEXT(layer), .url_secret = true,
     .help = "channel layer (CHAT_LAYER): memory (default; one\n"
             "process) or redis://[:password@]host[:port][/db] to\n"
             "share rooms with other chat-server processes"},
    {"--workers", "N", "CHAT_WORKERS", SIZE(workers, 1, MAX_WORKERS, "1 to " STRINGIFY(MAX_WORKERS)),
     .help = "N processes sharing --port (SO_REUSEPORT), one core\n"
             "each (CHAT_WORKERS; default 1; needs --layer redis://…)"},
    {"--log-level", "LEVEL", "CHAT_LOG_LEVEL", TEXT(log_level),
     .help = "error, warn, info, debug (CHAT_LOG_LEVEL; default info)"},
    {"--max-frame", "BYTES", "CHAT_MAX_FRAME", SIZE(max_frame, 64, 64u << 20, "64 to 67108864 bytes"),
     .help = "largest WebSocket message accepted (CHAT_MAX_FRAME;\n"
             "default 65536; larger ones are closed with 1009)"},
    {"--max-connections", "N", "CHAT_MAX_CONNECTIONS",
     SIZE(max_connections, 1, 1000000, "1 to 1000000"),
     .help = "open WebSockets at most; more get HTTP 503\n"
             "(CHAT_MAX_CONNECTIONS; default 10000)"},
    {"--rate-limit", "N[/B]", "CHAT_RATE_LIMIT", .kind = OPT_RATE, .bad = "N, N/BURST or off",
     .help = "frames per second per connection, bursts of B\n"
             "(CHAT_RATE_LIMIT; default 200/400; off: no limit);\n"
             "a frame over it gets a rate_limited error frame"},
    {"--metrics-allow", "CIDRS", "CHAT_METRICS_ALLOW", TEXT(metrics_allow),
     .help = "serve Prometheus metrics on GET /metrics to these\n"
             "addresses only, e.g. 10.0.0.0/8,192.0.2.7,::1/128\n"
             "(CHAT_METRICS_ALLOW); behind a reverse proxy on\n"
             "this host every request comes from loopback: use\n"
             "--metrics-token-file"},
    {"--metrics-token-file", "F", "CHAT_METRICS_TOKEN_FILE", TEXT(metrics_token_file),
     .help = "serve /metrics to requests with \"Authorization:\n"
             "Bearer TOKEN\", TOKEN the file's first line (16-128\n"
             "characters; CHAT_METRICS_TOKEN_FILE); with both\n"
             "flags a scrape must pass both checks"},
    {"--metrics", NULL, "CHAT_METRICS", SWITCH(metrics),
     .help = "(CHAT_METRICS=1) only with one of the two above:\n"
             "/metrics is off (404) unless one is given"},
    {"--secure-cookies", NULL, "CHAT_SECURE_COOKIES", SWITCH(secure_cookies),
     .help = "the session cookie becomes __Host-sessionid with\n"
             "Secure (CHAT_SECURE_COOKIES=1): behind a proxy that\n"
             "terminates TLS (browsers then send it over HTTPS\n"
             "only)"},
    {"--asyncapi", NULL, NULL, SWITCH(asyncapi),
     .help = "print the AsyncAPI 3.0 document of the WebSocket\n"
             "protocol (JSON; also GET /asyncapi.json) and exit"},
    {"--keepalive", "SECONDS", "CHAT_KEEPALIVE", SIZE(keepalive_s, 0, 86400, "0 to 86400 seconds"),
     .help = "ping a WebSocket idle that long; no answer within\n"
             "10 s closes it with 4408 (CHAT_KEEPALIVE; default\n"
             "30; 0: off)"},
    {"--presence-threshold", "N", "CHAT_PRESENCE_THRESHOLD",
     SIZE(presence_threshold, 1, 1000000, "1 to 1000000 members"),
     .help = "rooms with more members than this (in this process)\n"
             "get joins and leaves as one presence frame per\n"
             "interval instead of one frame each\n"
             "(CHAT_PRESENCE_THRESHOLD; default " STRINGIFY(CHAT_PRESENCE_THRESHOLD) ")"},
    {"--presence-interval", "MS", "CHAT_PRESENCE_INTERVAL",
     SIZE(presence_interval_ms, 10, 60000, "10 to 60000 ms"),
     .help = "a big room's presence frame at most this often\n"
             "(CHAT_PRESENCE_INTERVAL; default " STRINGIFY(CHAT_PRESENCE_INTERVAL_MS) ")"},
    {"--pwhash", "COST", "CHAT_PWHASH", TEXT(pwhash),
     .help = "password hashing cost for new passwords: interactive\n"
             "(default; argon2id, 64 MiB), moderate, or min (tests\n"
             "only: insecure) (CHAT_PWHASH)"},
    {"--login-limit-addr", "N[/B]", "CHAT_LOGIN_LIMIT_ADDR", .kind = OPT_LOGIN,
     .help = "failed logins a minute per client address, bursts\n"
             "of B (CHAT_LOGIN_LIMIT_ADDR; default 10/20; off)"},
    {"--login-limit-user", "N[/B]", "CHAT_LOGIN_LIMIT_USER", .kind = OPT_LOGIN,
     .help = "failed logins a minute per username, bursts of B\n"
             "(CHAT_LOGIN_LIMIT_USER; default 5/10; off); a login\n"
             "over either limit gets 429 with Retry-After"},
    {"--login-checks", "N[/P]", "CHAT_LOGIN_CHECKS", .kind = OPT_LOGIN,
     .help = "password checks in flight at most, P of them per\n"
             "client address (CHAT_LOGIN_CHECKS; default 16/2);\n"
             "past it: 429 at once"},
    {"--login-hashers", "N", "CHAT_LOGIN_HASHERS", .kind = OPT_LOGIN,
     .help = "password hashes at once, each with its memory cost\n"
             "(64 MiB for interactive) (CHAT_LOGIN_HASHERS; default 2)"},
    {"--allowed-origin", "ORIG", "CHAT_ALLOWED_ORIGINS", .kind = OPT_ORIGIN,
     .help = "allow WebSocket handshakes from ORIG besides this\n"
             "server's own host (repeatable; CHAT_ALLOWED_ORIGINS,\n"
             "comma-separated), e.g. http://chat.example:8000"},
};
#define NOPTIONS (sizeof option_table / sizeof *option_table)

/* Generated from the table: "  FLAG ARG" padded to column 25 (two spaces
 * after a longer one), then the help's lines, each further one indented. */
static void usage(FILE *out) {
    fputs("usage: chat-server [options]\n", out);
    for (const option_t *opt = option_table; opt < option_table + NOPTIONS; opt++) {
        char left[64];
        snprintf(left, sizeof left, "%s%s%s", opt->flag, opt->arg ? " " : "",
                 opt->arg ? opt->arg : "");
        size_t len = strlen(left);
        fprintf(out, "  %-*s", (int)(len < 23 ? 23 : len + 2), left);
        for (const char *line = opt->help;;) {
            size_t n = strcspn(line, "\n");
            fprintf(out, "%.*s\n", (int)n, line);
            if (!line[n])
                break;
            line += n + 1;
            fprintf(out, "%25s", "");
        }
    }
    fputs("  --help, --version\n", out);
}

/* "chat-server: …" on stderr, secrets redacted (chanc_redact: URL
 * passwords, password= values, the --db and --layer passwords): error
 * texts may quote what the user gave, libpq's and SQLite's included. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
    char line[1024], safe[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    chanc_redact(line, safe, sizeof safe);
    fprintf(stderr, "chat-server: %s\n", safe);
}

static bool parse_size(const char *s, size_t max, size_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v > max || s[0] == '-')
        return false;
    *out = (size_t)v;
    return true;
}

/* "N", "N/B" (1 to 1,000,000 each) or "off". */
static bool parse_rate(const char *s, uint32_t *rate, uint32_t *burst) {
    if (!strcmp(s, "off")) {
        *rate = CHANC_RATE_UNLIMITED;
        *burst = 0;
        return true;
    }
    char *end;
    errno = 0;
    unsigned long long r = strtoull(s, &end, 10), b = 0;
    if (errno || end == s || s[0] == '-' || r == 0 || r > 1000000)
        return false;
    if (*end == '/') {
        const char *bs = end + 1;
        b = strtoull(bs, &end, 10);
        if (errno || end == bs || bs[0] == '-' || b == 0 || b > 1000000)
            return false;
    }
    if (*end)
        return false;
    *rate = (uint32_t)r;
    *burst = (uint32_t)b;
    return true;
}

static int add_origin(options_t *o, const char *origin) {
    if (!*origin)
        return 0;
    if (o->norigins >= MAX_ORIGINS) {
        fprintf(stderr, "chat-server: at most %d allowed origins\n", MAX_ORIGINS);
        return -1;
    }
    o->origins[o->norigins++] = origin;
    return 0;
}

/* CHAT_ALLOWED_ORIGINS: comma-separated (a flag gives one). */
static int add_origins(options_t *o, const char *list) {
    if (!(o->origins_env = strdup(list)))
        return fprintf(stderr, "chat-server: out of memory\n"), -1;
    for (char *save = NULL, *t = strtok_r(o->origins_env, ",", &save); t;
         t = strtok_r(NULL, ",", &save))
        if (add_origin(o, t) < 0)
            return -1;
    return 0;
}

/* One option given as NAME (its flag, or its variable when from_env) with
 * the value V (NULL: a switch given as a flag): 0, or -1 when the value is
 * wrong (said on stderr, the same words for both sources). */
static int apply_option(options_t *o, const option_t *opt, const char *name, const char *v,
                        bool from_env) {
    void *at = (char *)o + opt->at;
    bool on = !from_env || strcmp(v, "0") != 0;
    size_t n;
    switch (opt->kind) {
    case OPT_TEXT:
        *(const char **)at = v;
        return 0;
    case OPT_SIZE:
        if (parse_size(v, opt->hi, &n) && n >= opt->lo) {
            *(size_t *)at = n;
            return 0;
        }
        break;
    case OPT_SWITCH:
        *(bool *)at = on;
        return 0;
    case OPT_RATE:
        if (parse_rate(v, &o->rate_limit, &o->rate_burst))
            return 0;
        break;
    case OPT_LOGIN: /* says what is wrong itself */
        return chat_login_limits_option(&o->login, name, v) == 0 ? 0 : -1;
    case OPT_ORIGIN:
        return from_env ? add_origins(o, v) : add_origin(o, v);
    case OPT_SEED:
        o->seed = v;
        o->demo = o->no_seed = false;
        return 0;
    case OPT_DEMO:
        if (from_env && o->seed) /* CHAT_SEED wins */
            return 0;
        o->demo = on;
        if (on) {
            o->seed = NULL;
            o->no_seed = false;
        }
        return 0;
    case OPT_NO_SEED:
        o->seed = NULL;
        o->demo = false;
        o->no_seed = true;
        return 0;
    }
    fprintf(stderr, "chat-server: %s: %s: %s\n", name, opt->bad, v);
    return -1;
}

static const option_t *find_flag(const char *flag) {
    for (const option_t *opt = option_table; opt < option_table + NOPTIONS; opt++)
        if (!strcmp(flag, opt->flag))
            return opt;
    return NULL;
}

/* What no single option can check: after both sources, so a flag may
 * correct its variable. */
static int check_options(options_t *o) {
    if (o->pwhash && strcmp(o->pwhash, "interactive") && strcmp(o->pwhash, "moderate") &&
        strcmp(o->pwhash, "min"))
        return fprintf(stderr, "chat-server: --pwhash: interactive, moderate or min\n"), -1;
    if (chanc_log_level_parse(o->log_level) < 0)
        return fprintf(stderr, "chat-server: unknown log level %s\n", o->log_level), -1;
    if (o->metrics && !o->metrics_allow && !o->metrics_token_file)
        return fprintf(stderr, "chat-server: --metrics: say who may read /metrics: "
                               "--metrics-allow CIDR,… and/or --metrics-token-file FILE "
                               "(\"loopback\" alone is everyone behind a reverse proxy on "
                               "this host)\n"), -1;
    o->metrics = o->metrics_allow || o->metrics_token_file;
    return 0;
}

/* 0: serve; 1: done (--help, --version); -1: a usage error (said). */
static int parse_options(int argc, char **argv, options_t *o) {
    *o = (options_t){.host = "127.0.0.1", .port = 8000, .db = "chanc-chat.db",
                     .log_level = "info", .max_frame = CHANC_DEFAULT_MAX_FRAME,
                     .keepalive_s = 30, .workers = 1, .login = CHAT_LOGIN_LIMITS_DEFAULT};
    for (const option_t *opt = option_table; opt < option_table + NOPTIONS; opt++) {
        const char *e = opt->env ? getenv(opt->env) : NULL;
        if (e && *e && apply_option(o, opt, opt->env, e, true) < 0)
            return -1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 1;
        }
        if (!strcmp(a, "--version")) {
            printf("chat-server (chanc) %s\n", CHANC_VERSION); /* the CMake project's */
            return 1;
        }
        const option_t *opt = find_flag(a);
        if (opt && !opt->arg) {
            apply_option(o, opt, a, NULL, false); /* a switch: never wrong */
            continue;
        }
        if (!v || strncmp(a, "--", 2) != 0) {
            say("%s: %s", a, v ? "unknown argument" : "missing value or unknown flag");
            usage(stderr);
            return -1;
        }
        i++;
        if (!opt) {
            say("unknown flag %s", a);
            usage(stderr);
            return -1;
        }
        if (apply_option(o, opt, a, v, false) < 0)
            return -1;
    }
    return check_options(o);
}

/* The --db and --layer passwords never reach a log line or an error. */
static void add_secrets(const options_t *o) {
    for (const option_t *opt = option_table; opt < option_table + NOPTIONS; opt++) {
        const char *url = opt->url_secret ? *(const char *const *)((const char *)o + opt->at) : NULL;
        if (url)
            chanc_log_add_url_secrets(url);
    }
}

/* The views' settings from the options: the /metrics allow-list and token
 * (its file's first line, registered as a secret), secure cookies. 0, or
 * -1 when an option is wrong (said on stderr). */
static int configure_views(const options_t *o, chat_views_t *v) {
    chanc_error_t err = {0};
    v->metrics = o->metrics;
    v->secure_cookies = o->secure_cookies;
    if (o->metrics_allow && chat_views_allow_metrics(v, o->metrics_allow, &err) < 0) {
        say("%s", err.text);
        return -1;
    }
    if (o->metrics_token_file) {
        FILE *f = fopen(o->metrics_token_file, "r");
        char token[CHAT_METRICS_TOKEN_MAX + 8] = "";
        if (!f) {
            say("--metrics-token-file %s: %s", o->metrics_token_file, strerror(errno));
            return -1;
        }
        if (!fgets(token, sizeof token, f))
            token[0] = '\0';
        fclose(f);
        token[strcspn(token, "\r\n")] = '\0';
        int rc = chat_views_metrics_token(v, token, &err);
        if (rc == 0)
            rc = chanc_log_add_secret(token);
        sodium_memzero(token, sizeof token);
        if (rc < 0) {
            say("--metrics-token-file %s: %s", o->metrics_token_file,
                err.code ? err.text : chanc_strerror(rc));
            return -1;
        }
    }
    return 0;
}

/* The database for log lines: a PostgreSQL URL may hold a password. */
static const char *db_label(const options_t *o) {
    return chat_store_is_postgresql_url(o->db) ? "PostgreSQL" : o->db;
}

/* Seed a database that has no users yet: from --seed FILE, or the demo
 * fixtures when asked (--demo); else it stays empty, said once. */
static int seed(chat_store_t *store, const options_t *o) {
    int64_t users = 0;
    int rc = chat_store_user_count(store, &users);
    if (rc < 0 || users > 0)
        return rc;
    if (!o->seed && !o->demo) {
        if (!o->no_seed)
            chanc_log(CHANC_LOG_WARN,
                      "%s has no users: nobody can log in; seed a new database with --seed FILE "
                      "(the format: fixtures/chat.json), or with --demo for the demo users",
                      db_label(o));
        return 0;
    }
    chanc_error_t err = {0};
    if (o->seed) {
        rc = chat_store_load_fixtures(store, o->seed, &err);
    } else {
        const chat_asset_t *demo = chat_asset_find("chat.json");
        json_error_t jerr;
        json_t *fx = demo ? json_loadb(demo->data, demo->len, 0, &jerr) : NULL;
        rc = fx ? chat_store_load_fixtures_json(store, fx, &err)
                : chanc_error_set(&err, CHANC_EINVAL, "built-in fixtures unreadable");
        json_decref(fx);
    }
    if (rc < 0)
        say("seeding %s: %s", db_label(o), err.text);
    else if (o->seed)
        chanc_log(CHANC_LOG_INFO, "seeded %s from %s", db_label(o), o->seed);
    else
        chanc_log(CHANC_LOG_WARN, "--demo: seeded %s with the demo users and their published "
                  "passwords (for trying chanc out, never in production)", db_label(o));
    return rc;
}

static chat_store_options_t store_options(const options_t *o) {
    chat_store_options_t so = {.path = o->db};
    if (o->pwhash && !strcmp(o->pwhash, "moderate")) {
        so.pwhash_opslimit = crypto_pwhash_OPSLIMIT_MODERATE;
        so.pwhash_memlimit = crypto_pwhash_MEMLIMIT_MODERATE;
    } else if (o->pwhash && !strcmp(o->pwhash, "min")) {
        so.pwhash_opslimit = crypto_pwhash_OPSLIMIT_MIN;
        so.pwhash_memlimit = crypto_pwhash_MEMLIMIT_MIN;
        chanc_log(CHANC_LOG_WARN, "--pwhash min: password hashes are cheap to crack (tests only)");
    }
    return so;
}

/* --- --workers: a supervisor and N worker processes --------------------- */

static pid_t workers[MAX_WORKERS];
/* The HTTP views (configured from the options before anything starts). */
static chat_views_t views;
static size_t nworkers;

static void forward_signal(int sig) {
    int saved = errno;
    for (size_t i = 0; i < nworkers; i++)
        if (workers[i] > 0)
            kill(workers[i], sig);
    errno = saved;
}

/* One core each: worker i runs on the i-th CPU the supervisor may use
 * (its database thread shares it: it mostly waits). With more workers than
 * CPUs nothing is pinned and the kernel shares them out. */
static void pin_worker(size_t i, size_t n) {
#ifdef __linux__
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0 || (size_t)CPU_COUNT(&allowed) < n)
        return;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (!CPU_ISSET(cpu, &allowed) || i-- > 0)
            continue;
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(cpu, &one);
        if (sched_setaffinity(0, sizeof one, &one) == 0)
            chanc_log(CHANC_LOG_INFO, "worker %d on CPU %d", (int)getpid(), cpu);
        return;
    }
#else
    (void)i;
    (void)n;
#endif
}

/* Seed the database once (workers would race), then fork. Returns 0 in a
 * worker (go on serving), or the supervisor's exit status once every
 * worker has exited. */
static int run_workers(const options_t *o, int *status) {
    chat_store_options_t so = store_options(o);
    chat_store_t *store = NULL;
    chanc_error_t err = {0};
    if (chat_store_open(&so, &store, &err) < 0) {
        say("%s", err.text);
        *status = 1;
        return 1;
    }
    int rc = seed(store, o);
    chat_store_close(store); /* before fork: no SQLite handle crosses it */
    if (rc < 0) {
        *status = 1;
        return 1;
    }
    struct sigaction sa = {.sa_handler = forward_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    fflush(stdout);
    for (size_t i = 0; i < o->workers; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            signal(SIGINT, SIG_DFL);
            signal(SIGTERM, SIG_DFL);
#ifdef __linux__
            prctl(PR_SET_PDEATHSIG, SIGTERM); /* the supervisor died: stop */
#endif
            nworkers = 0;
            pin_worker(i, o->workers);
            return 0;
        }
        if (pid < 0) {
            fprintf(stderr, "chat-server: fork: %s\n", strerror(errno));
            forward_signal(SIGTERM);
            break;
        }
        workers[nworkers++] = pid;
    }
    chanc_log(CHANC_LOG_INFO, "supervisor %d: %zu worker(s) on port %zu", (int)getpid(), nworkers,
              o->port);
    int worst = nworkers == o->workers ? 0 : 1;
    for (size_t left = nworkers; left;) {
        int st;
        pid_t pid = waitpid(-1, &st, 0);
        if (pid < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (size_t i = 0; i < nworkers; i++)
            if (workers[i] == pid) {
                workers[i] = 0;
                left--;
                bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
                if (!ok) {
                    worst = 1;
                    chanc_log(CHANC_LOG_ERROR, "worker %d ended (%s %d); %zu left", (int)pid,
                              WIFSIGNALED(st) ? "signal" : "status",
                              WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), left);
                }
            }
    }
    *status = worst;
    return 1;
}

typedef struct server_ctx {
    uv_loop_t loop;
    uv_signal_t sigint, sigterm;
    chanc_app_t *app;
    chanc_server_t *server;
    bool stopping;
} server_ctx_t;

static void shutdown_done(void *ud) {
    server_ctx_t *s = ud;
    chanc_app_destroy(s->app); /* frees once the loop runs its close callbacks */
    s->app = NULL;
}

static void on_signal(uv_signal_t *h, int signum) {
    server_ctx_t *s = h->data;
    if (s->stopping)
        return;
    s->stopping = true;
    chanc_log(CHANC_LOG_INFO, "%s: shutting down (closing %zu connection(s) with 1001)",
              signum == SIGINT ? "SIGINT" : "SIGTERM", chanc_app_connections(s->app));
    uv_close((uv_handle_t *)&s->sigint, NULL);
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    chanc_server_shutdown(s->server, shutdown_done, s);
}

/* Serve until SIGINT/SIGTERM (in a worker, or the only process): the
 * exit status. Takes the layer (NULL: in memory). */
static int serve(const options_t *o, chanc_layer_t *layer) {
    int status = 1;
    server_ctx_t s = {0};
    chat_store_t *store = NULL;
    chanc_error_t err = {0};
    chat_throttle_t *throttle = NULL;
    if (uv_loop_init(&s.loop) != 0) {
        fprintf(stderr, "chat-server: cannot create the event loop\n");
        goto out;
    }
    chat_store_options_t so = store_options(o);
    if (chat_store_open(&so, &store, &err) < 0) {
        say("%s", err.text);
        goto out_loop;
    }
    if (seed(store, o) < 0)
        goto out_store;
    s.app = chanc_app_create(&(chanc_app_config_t){.loop = &s.loop,
                                                   .layer = layer,
                                                   .max_frame = o->max_frame,
                                                   .rate_limit = o->rate_limit,
                                                   .rate_burst = o->rate_burst,
                                                   .keepalive_ms = o->keepalive_s * 1000,
                                                   .keepalive_timeout_ms = 10000},
                             &err);
    layer = NULL; /* the app owns it now, even on failure */
    if (!s.app) {
        say("%s", err.text);
        goto out_store;
    }
    /* POST /login's limits, on the app's clock; outlives the app. */
    if (!(throttle = chat_throttle_create(&o->login, chanc_app_clock(s.app)))) {
        fprintf(stderr, "chat-server: out of memory\n");
        goto out_app;
    }
    views.store = store;
    views.app = s.app;
    views.throttle = throttle;
    if (chat_register_with(s.app, store,
                           &(chat_options_t){.secure_cookies = o->secure_cookies,
                                             .presence_threshold = o->presence_threshold,
                                             .presence_interval_ms =
                                                 (uint32_t)o->presence_interval_ms}) < 0)
        goto out_app;
    /* The views' store calls on a database thread of their own. */
    if (chat_views_start(&views, &err) < 0) {
        say("%s", err.text);
        goto out_app;
    }
    s.server = chanc_server_create(&(chanc_server_config_t){.app = s.app,
                                                            .host = o->host,
                                                            .port = (int)o->port,
                                                            .allowed_origins = o->origins,
                                                            .max_connections = o->max_connections,
                                                            .reuse_port = o->workers > 1,
                                                            .http = chat_views_handle,
                                                            .http_ud = &views},
                                   &err);
    if (!s.server) {
        say("%s", err.text);
        goto out_app;
    }
    views.server = s.server;
    char docs_host[300]; /* GET /asyncapi.json and /docs, built once */
    snprintf(docs_host, sizeof docs_host, "%s:%d", o->host, chanc_server_port(s.server));
    if (chat_docs_build(&views, docs_host, &err) < 0) {
        say("%s", err.text);
        chanc_server_destroy(s.server);
        goto out_app;
    }
    uv_signal_init(&s.loop, &s.sigint);
    uv_signal_init(&s.loop, &s.sigterm);
    s.sigint.data = s.sigterm.data = &s;
    uv_signal_start(&s.sigint, on_signal, SIGINT);
    uv_signal_start(&s.sigterm, on_signal, SIGTERM);
    chanc_log(CHANC_LOG_INFO, "chat-server listening on http://%s:%d/ (database %s, layer %s)",
              o->host, chanc_server_port(s.server), db_label(o), chanc_app_layer(s.app)->ops->name);
    /* The line tools and tests wait for (stdout, flushed). */
    printf("listening on http://%s:%d/\n", o->host, chanc_server_port(s.server));
    fflush(stdout);

    uv_run(&s.loop, UV_RUN_DEFAULT);
    status = 0;
    chanc_server_destroy(s.server);
    s.server = NULL;
out_app:
    if (s.app) {
        chanc_app_destroy(s.app);
        uv_run(&s.loop, UV_RUN_DEFAULT);
    }
out_store:
    chat_throttle_destroy(throttle);
    chat_store_close(store);
out_loop:
    if (uv_loop_close(&s.loop) != 0) {
        chanc_log(CHANC_LOG_WARN, "event loop closed with handles still open");
    }
out:
    chanc_layer_destroy(layer);
    if (status == 0)
        chanc_log(CHANC_LOG_INFO, "chat-server stopped");
    return status;
}

/* Usage errors (exit 2) are found before anything starts: the options, the
 * views' settings, the layer URL, what --workers needs. */
static int run(int argc, char **argv, options_t *o) {
    int rc = parse_options(argc, argv, o);
    if (rc != 0)
        return rc > 0 ? 0 : 2;
    add_secrets(o);
    if (configure_views(o, &views) < 0)
        return 2;
    if (o->asyncapi) {
        char host[300];
        snprintf(host, sizeof host, "%s:%zu", o->host, o->port);
        return chat_asyncapi_print(stdout, host, o->secure_cookies) < 0;
    }
    /* A bad layer URL is a usage error: refuse before touching anything. */
    chanc_layer_t *layer = NULL;
    if (o->layer && strcmp(o->layer, "memory") != 0) {
        chanc_error_t lerr = {0};
        layer = chanc_layer_redis_create(o->layer, NULL, &lerr);
        if (!layer) {
            say("--layer: %s (or \"memory\")", lerr.text);
            return 2;
        }
    }
    if (o->workers > 1 && (!layer || o->port == 0)) {
        fprintf(stderr, "chat-server: --workers %zu needs %s\n", o->workers,
                !layer ? "--layer redis://…: members on different workers meet only "
                         "through a shared channel layer"
                       : "a fixed --port (every worker listens on it)");
        chanc_layer_destroy(layer);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    chanc_log_set_level((chanc_log_level_t)chanc_log_level_parse(o->log_level));
    if (o->workers > 1) {
        int wstatus = 0;
        if (run_workers(o, &wstatus) != 0) {
            chanc_layer_destroy(layer); /* the supervisor's copy, never connected */
            return wstatus;
        }
    }
    return serve(o, layer);
}

int main(int argc, char **argv) {
    options_t o;
    int status = run(argc, argv, &o);
    free(o.origins_env);
    return status;
}
