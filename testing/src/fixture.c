/* The test-case fixture: a loop, an app on a virtual clock, captured logs,
 * and the communicators a test makes. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "chanc/server.h" /* CHANC_DEFAULT_MAX_QUEUE: a slow client is judged alike in
                            * process and over a socket */
#include "testing_internal.h"

/* 2026-01-01T00:00:00Z: a fixed, recognisable virtual start. */
#define DEFAULT_WALL_START 1767225600000LL


int chanc__headers_set(header_list_t *h, const char *name, const char *value) {
    for (size_t i = 0; i < h->n; i++)
        if (strcasecmp(h->items[i].name, name) == 0) {
            char *v = strdup(value);
            if (!v)
                return CHANC_ENOMEM;
            free((char *)h->items[i].value);
            h->items[i].value = v;
            return 0;
        }
    chanc_header_t *items = realloc(h->items, (h->n + 1) * sizeof *items);
    if (!items)
        return CHANC_ENOMEM;
    h->items = items;
    items[h->n].name = strdup(name);
    items[h->n].value = strdup(value);
    h->n++;
    return items[h->n - 1].name && items[h->n - 1].value ? 0 : CHANC_ENOMEM;
}

void chanc__headers_dispose(header_list_t *h) {
    for (size_t i = 0; i < h->n; i++) {
        free((char *)h->items[i].name);
        free((char *)h->items[i].value);
    }
    free(h->items);
    h->items = NULL;
    h->n = 0;
}

static uint64_t virtual_mono(void *ud) { return ((chanc_test_t *)ud)->priv->mono_ms; }
static int64_t virtual_wall(void *ud) { return ((chanc_test_t *)ud)->priv->wall_ms; }

static void capture_log(chanc_log_level_t level, const char *line, void *ud) {
    struct chanc_test_private *p = ((chanc_test_t *)ud)->priv;
    size_t slot = p->log_count++ % LOG_KEEP;
    free(p->log[slot]);
    p->log[slot] = strdup(line);
    p->log_level[slot] = (int)level;
}

void chanc__test_print_log(const chanc_test_t *t, FILE *out) {
    const struct chanc_test_private *p = t->priv;
    if (!p->log_count)
        return;
    size_t first = p->log_count > LOG_KEEP ? p->log_count - LOG_KEEP : 0;
    fprintf(out, "  log (%zu line%s):\n", p->log_count - first,
            p->log_count - first == 1 ? "" : "s");
    for (size_t i = first; i < p->log_count; i++) {
        size_t slot = i % LOG_KEEP;
        fprintf(out, "    %-6s %s\n", chanc_log_level_name(p->log_level[slot]),
                p->log[slot] ? p->log[slot] : "");
    }
}

bool chanc_test_log_contains(const chanc_test_t *t, chanc_log_level_t max_level,
                             const char *needle) {
    const struct chanc_test_private *p = t->priv;
    size_t first = p->log_count > LOG_KEEP ? p->log_count - LOG_KEEP : 0;
    for (size_t i = first; i < p->log_count; i++) {
        size_t slot = i % LOG_KEEP;
        if (p->log_level[slot] <= (int)max_level && p->log[slot] && strstr(p->log[slot], needle))
            return true;
    }
    return false;
}

static unsigned live_fixtures;          /* loop thread (tests are single-threaded) */
static chanc_test_t *live_head;         /* ... and the list of them */
static chanc_test_ledger_t group_base;
static uint64_t group_json_seq;

void chanc__test_print_all(FILE *out) {
    for (chanc_test_t *t = live_head; t; t = t->priv->live_next) {
        if (live_fixtures > 1)
            fprintf(out, "  fixture %s:\n", t->priv->name);
        for (chanc_communicator_t *c = t->priv->comms; c; c = chanc__communicator_next(c))
            chanc_communicator_print_transcript(c, out);
        chanc__test_print_log(t, out);
    }
}

static chanc_test_t *fixture_new(const chanc_test_options_t *options) {
    chanc_test_t *t = calloc(1, sizeof *t);
    struct chanc_test_private *p = calloc(1, sizeof *p);
    if (!t || !p) {
        free(t);
        free(p);
        return NULL;
    }
    t->priv = p;
    /* Before anything this fixture allocates itself. Fixtures alive at the
     * same time (two apps playing two processes) share the baseline of
     * the first: the ledger cannot tell their objects apart, so it is
     * checked when the last of them goes. */
    if (live_fixtures++ == 0) {
        chanc__ledger_snapshot(&group_base);
        group_json_seq = chanc__ledger_json_seq();
    }
    p->ledger_base = group_base;
    p->ledger_json_seq = group_json_seq;
    p->live_next = live_head;
    live_head = t;
    if (options)
        p->opts = *options;
    static unsigned fixtures_made;
    fixtures_made++;
    p->name = p->opts.name ? strdup(p->opts.name) : chanc_strdupf("test%02u", fixtures_made);
    p->opts.name = NULL;
    p->max_queue = p->opts.max_queue ? p->opts.max_queue : CHANC_DEFAULT_MAX_QUEUE;
    p->conformance = !p->opts.conformance_off;
    p->comms_tail = &p->comms;
    p->mono_ms = 1000000;
    p->start_mono = p->mono_ms;
    p->wall_ms = p->opts.wall_start_ms ? p->opts.wall_start_ms : DEFAULT_WALL_START;
    p->saved_log_level = chanc_log_level;
    chanc_log_set_emitter(capture_log, t);
    chanc_log_set_level(CHANC_LOG_DEBUG);
    if (uv_loop_init(&p->loop) != 0) {
        fprintf(stderr, "chanc_test_create: uv_loop_init failed\n");
        chanc_log_set_emitter(NULL, NULL);
        free(p->name);
        free(p);
        free(t);
        return NULL;
    }
    return t;
}

chanc_test_t *chanc_test_create(const chanc_test_options_t *options) {
    chanc_test_t *t = fixture_new(options);
    if (!t)
        return NULL;
    struct chanc_test_private *p = t->priv;
    chanc_clock_t clock = {virtual_mono, virtual_wall, t};
    chanc_error_t err;
    chanc_app_config_t cfg = p->opts.app; /* the test's settings, the fixture's loop and clock */
    cfg.loop = &p->loop;
    cfg.clock = &clock;
    cfg.layer = chanc__fault_layer_wrap(p, p->opts.app.layer);
    p->opts.app.layer = NULL; /* the app owns it now */
    t->app = chanc_app_create(&cfg, &err);
    if (!t->app) {
        fprintf(stderr, "chanc_test_create: %s\n", err.text);
        chanc_test_destroy(t);
        return NULL;
    }
    chanc__schedule_fixture(t, live_fixtures);
    if (p->opts.setup && p->opts.setup(t, p->opts.ud) != 0) {
        fprintf(stderr, "chanc_test_create: setup callback failed\n");
        chanc__test_print_log(t, stderr);
        chanc_test_destroy(t);
        return NULL;
    }
    return t;
}

chanc_test_t *chanc_test_create_remote(const chanc_test_remote_options_t *options) {
    if (!options || options->port <= 0 || options->port > 65535)
        return NULL;
    chanc_test_t *t = fixture_new(NULL);
    if (!t)
        return NULL;
    t->priv->remote_port = options->port;
    t->priv->remote_quiet_ms = options->quiet_ms ? options->quiet_ms : 100;
    t->priv->start_real = chanc__real_ms();
    return t;
}

static void report_open_handle(uv_handle_t *h, void *arg) {
    (void)arg;
    fprintf(stderr, "chanc_test_destroy: libuv handle left open: %s%s\n",
            uv_handle_type_name(uv_handle_get_type(h)), uv_is_closing(h) ? " (closing)" : "");
}

/* What the fixture's communicators saw and its log, for a failure the
 * test's own assertion could not show: after cmocka's summary (stderr
 * outside chanc_run_group_tests). The sentence saying where they went. */
static char *print_context(chanc_test_t *t) {
    struct chanc_test_private *p = t->priv;
    FILE *out = chanc__run_notes();
    if (!out)
        out = stderr;
    size_t n = 0;
    for (chanc_communicator_t *c = p->comms; c; c = chanc__communicator_next(c))
        n++;
    const char *test = chanc__run_test_name();
    fprintf(out, "\n[  NOTES   ] %s: what fixture %s saw before the failure\n",
            test ? test : p->name, p->name);
    for (chanc_communicator_t *c = p->comms; c; c = chanc__communicator_next(c))
        chanc_communicator_print_transcript(c, out);
    chanc__test_print_log(t, out);
    return chanc_strdupf("the transcripts of %zu communicator(s) and the log of fixture %s are "
                         "printed %s", n, p->name, out == stderr ? "above" : "after the summary");
}

/* After a plain cmocka assertion failed: the context, and a note. */
static void note_context(chanc_test_t *t) {
    char *where = print_context(t);
    char *note = chanc_strdupf("note: %s", where ? where : "");
    chanc__run_note(note ? note : "note: the context is printed after the summary");
    free(note);
    free(where);
}

static void unlink_live(chanc_test_t *t) {
    for (chanc_test_t **l = &live_head; *l; l = &(*l)->priv->live_next)
        if (*l == t) {
            *l = t->priv->live_next;
            break;
        }
}

void chanc_test_destroy(chanc_test_t *t) {
    if (!t)
        return;
    struct chanc_test_private *p = t->priv;
    bool failed = chanc__run_test_failed();
    if (failed && !chanc__run_context_shown())
        note_context(t);
    bool clean = true;
    p->destroying = true;
    char *nonconforming = NULL; /* frames found since the test's last settle */
    if (t->app) {
        chanc__oom_before_teardown(t);
        for (chanc_communicator_t *c = p->comms; c; c = chanc__communicator_next(c))
            if (!chanc_communicator_closed(c))
                chanc_communicator_disconnect(c);
        if (chanc_app_run_until_settled(t->app, 5000) != 0) {
            fprintf(stderr, "chanc_test_destroy: the app did not settle in 5 s\n");
            clean = false;
        }
        chanc__coverage_record(t);
        nonconforming = chanc__conformance_take(t);
        if (nonconforming && !failed) { /* a failure of its own: its context */
            char *where = print_context(t);
            char *both = where ? chanc_strdupf("%s  (%s)\n", nonconforming, where) : NULL;
            if (both) {
                free(nonconforming);
                nonconforming = both;
            }
            free(where);
        }
        if (p->opts.teardown)
            p->opts.teardown(t, p->opts.ud);
        chanc_app_destroy(t->app);
        t->app = NULL;
    }
    chanc__test_write_transcripts(t);
    chanc__captures_free(p);
    for (chanc_communicator_t *c = p->comms, *next; c; c = next) {
        next = chanc__communicator_next(c);
        chanc__communicator_free(c);
    }
    uv_run(&p->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&p->loop) != 0) {
        uv_walk(&p->loop, report_open_handle, NULL);
        clean = false;
    }
    chanc_log_set_emitter(NULL, NULL);
    chanc_log_set_level((chanc_log_level_t)p->saved_log_level);
    chanc__headers_dispose(&p->default_headers);
    unlink_live(t);
    /* The ledger once everything the fixture made is gone but the log. */
    chanc_test_ledger_t alive;
    chanc_test_ledger(t, &alive);
    bool last = --live_fixtures == 0;
    size_t kept = 0;
    if (last && failed && alive.json > 0) {
        /* Values the failed test held when cmocka jumped out of it: not a
         * second failure, and kept reachable so valgrind agrees. */
        size_t app_alive;
        kept = chanc__ledger_keep_since(p->ledger_json_seq, &app_alive);
        alive.json = (int64_t)app_alive;
    }
    if (last)
        chanc__oom_check_ledger(&alive, clean);
    char *leaks = last ? chanc__ledger_describe(&alive) : NULL;
    char *message = NULL; /* what to report, if anything */
    if (leaks || !clean || kept || nonconforming) {
        size_t len = 0;
        FILE *out = open_memstream(&message, &len);
        if (out) {
            if (nonconforming) /* a failure of its own: first, whole unless a note */
                fprintf(out, "%s%s", nonconforming, leaks || !clean || kept ? "; " : "");
            if (kept)
                fprintf(out, "%zu jansson allocation(s) the failed test still held (kept, not a "
                             "leak)%s", kept, leaks || !clean ? "; " : "");
            if (leaks)
                fprintf(out, "%s%s", leaks, clean ? "" : "; ");
            if (!clean)
                fprintf(out, "the fixture did not shut down cleanly");
            fputc('\n', out);
            if (!failed)
                chanc__test_print_log(t, out);
            fclose(out);
        }
    }
    free(leaks);
    free(nonconforming);
    for (size_t i = 0; i < LOG_KEEP; i++)
        free(p->log[i]);
    /* Reporting may longjmp (cmocka's _fail): nothing may be left on the
     * heap by then but what the reporter frees. */
    static char name[256];
    snprintf(name, sizeof name, "%s", p->name);
    free(p->name);
    free(p);
    free(t);
    if (message && failed)
        message[strcspn(message, "\n")] = '\0'; /* a note: one line */
    if (message)
        chanc__run_teardown_failure(name, message);
}

int chanc_test_set_default_header(chanc_test_t *t, const char *name, const char *value) {
    return chanc__headers_set(&t->priv->default_headers, name, value);
}

static void step_clock_to(struct chanc_test_private *p, uint64_t mono) {
    if (mono > p->mono_ms) {
        p->wall_ms += (int64_t)(mono - p->mono_ms);
        p->mono_ms = mono;
    }
}

void chanc_test_advance(chanc_test_t *t, uint64_t ms) {
    struct chanc_test_private *p = t->priv;
    uint64_t end = p->mono_ms + ms;
    if (!t->app) {
        step_clock_to(p, end);
        return;
    }
    chanc_app_run_until_settled(t->app, 5000);
    /* Step to each due time in order: a timer may start another that also
     * falls due before the end. */
    for (;;) {
        uint64_t due = UINT64_MAX, d;
        if (chanc__fault_layer_next_due(p, &d) && d < due)
            due = d;
        if (chanc_app_next_timer(t->app, &d) && d < due)
            due = d;
        if (due > end)
            break;
        step_clock_to(p, due);
        chanc__fault_layer_run_due(p, t->app);
        chanc_app_run_due_timers(t->app);
        chanc_app_run_until_settled(t->app, 5000);
    }
    step_clock_to(p, end);
    if (chanc_app_run_until_settled(t->app, 5000) == 0)
        chanc__conformance_report(t);
}

int chanc_test_settle(chanc_test_t *t, uint64_t timeout_ms) {
    int rc = t->app ? chanc_app_run_until_settled(t->app, timeout_ms) : 0;
    if (rc == 0)
        chanc__conformance_report(t);
    return rc;
}

chanc_communicator_t *chanc_test_communicator(chanc_test_t *t, const char *path_fmt, ...) {
    va_list ap;
    va_start(ap, path_fmt);
    char *path = chanc_vstrdupf(path_fmt, ap);
    va_end(ap);
    chanc_communicator_t *c = path ? chanc__communicator_new(t, path) : NULL;
    if (!c) { /* a test would go on with NULL: fail it here */
        chanc__fail("chanc_test_communicator", 0, "out of memory making a communicator");
        return NULL;
    }
    struct chanc_test_private *p = t->priv;
    for (size_t i = 0; i < p->default_headers.n; i++)
        chanc_communicator_set_header(c, p->default_headers.items[i].name,
                                      p->default_headers.items[i].value);
    *p->comms_tail = c;
    p->comms_tail = chanc__communicator_link(c);
    return c;
}
