/* The app: configuration, routes, the deferred-work queue and settling,
 * the clock and timers. Connections: conn.c; groups: groups.c; group and
 * channel messages: delivery.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "app_internal.h"
#include "chanc/log.h"
#include "ledger_internal.h"

/* --- clock ------------------------------------------------------------ */

static uint64_t system_mono_ms(void *ud) {
    (void)ud;
    return uv_hrtime() / 1000000u;
}

static int64_t system_wall_ms(void *ud) {
    (void)ud;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const chanc_clock_t *chanc_clock_system(void) {
    static const chanc_clock_t system_clock = {system_mono_ms, system_wall_ms, NULL};
    return &system_clock;
}

uint64_t chanc_app_mono_ms(const chanc_app_t *app) { return app->clock.mono_ms(app->clock.ud); }
int64_t chanc_app_wall_ms(const chanc_app_t *app) { return app->clock.wall_ms(app->clock.ud); }
const chanc_clock_t *chanc_app_clock(const chanc_app_t *app) { return &app->clock; }

void chanc_format_timestamp(int64_t wall_ms, char out[32]) {
    time_t secs = (time_t)(wall_ms / 1000);
    int ms = (int)(wall_ms % 1000);
    if (ms < 0) {
        ms += 1000;
        secs--;
    }
    struct tm tm;
    gmtime_r(&secs, &tm);
    char tmp[96]; /* room for any int fields, to keep -Wformat-truncation quiet */
    snprintf(tmp, sizeof tmp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
    memcpy(out, tmp, 31);
    out[31] = '\0';
}

/* --- the frames every connection may get, encoded once ------------------- */

static chanc_buf_t *encode_literal(const char *text, uint32_t flags) {
    chanc_buf_t *b = chanc_buf_new(text, strlen(text));
    if (b)
        b->flags |= flags;
    return b;
}

/* The error frame sent in place of a frame over the rate limit: the same
 * bytes for every refusal, so a flood costs no allocation. */
static chanc_buf_t *encode_rate_limited(uint32_t rate, uint32_t burst) {
    if (rate == CHANC_RATE_UNLIMITED)
        return encode_literal("null", 0); /* never sent */
    json_t *errors = json_array();
    chanc_errors_append(errors, "rate_limited", NULL,
                        "Too many messages: at most %u per second (bursts of %u); "
                        "this one was not processed",
                        rate, burst);
    json_object_set_new(json_array_get(errors, 0), "ctx",
                        json_pack("{s:I,s:I}", "limit_per_second", (json_int_t)rate, "burst",
                                  (json_int_t)burst));
    json_t *frame = json_pack("{s:s,s:o}", "action", "error", "payload", errors);
    chanc_buf_t *b = frame ? chanc__encode(frame) : NULL;
    json_decref(frame);
    return b;
}

/* --- deferred work ------------------------------------------------------ */

/* Run what was queued when this turn began; work queued meanwhile waits for
 * the next turn so sockets are not starved. */
static void on_idle(uv_idle_t *h) {
    chanc_app_t *app = h->data;
    chanc__deferred_t picked;
    if (app->exploring && chanc__schedule_take(app, &picked)) {
        picked.fn(picked.arg); /* one item a turn: later work may overtake */
        if (app->dq_len == 0)
            uv_idle_stop(&app->idle);
        return;
    }
    size_t n = app->dq_len;
    while (n-- && app->dq_len) {
        chanc__deferred_t d = app->dq[app->dq_head];
        app->dq_head = (app->dq_head + 1) % app->dq_cap;
        app->dq_len--;
        d.fn(d.arg);
    }
    if (app->dq_len == 0)
        uv_idle_stop(&app->idle);
}

/* The queue grows once half full, so a growth that fails (out of memory)
 * still leaves room: a close or a frame queued then is not lost (the
 * allocation-failure sweep found connections that never finished closing
 * when this failed). */
int chanc_app_call_soon(chanc_app_t *app, void (*fn)(void *arg), void *arg) {
    return chanc_app_call_soon_ordered(app, NULL, fn, arg);
}

int chanc_app_call_soon_ordered(chanc_app_t *app, const void *order, void (*fn)(void *arg),
                                void *arg) {
    if (app->dq_len >= app->dq_cap / 2) {
        size_t cap = app->dq_cap ? app->dq_cap * 2 : 64;
        chanc__deferred_t *q = chanc__malloc(cap * sizeof *q);
        if (!q && app->dq_len == app->dq_cap)
            return CHANC_ENOMEM;
        if (!q)
            goto queue;
        for (size_t i = 0; i < app->dq_len; i++)
            q[i] = app->dq[(app->dq_head + i) % app->dq_cap];
        free(app->dq);
        app->dq = q;
        app->dq_cap = cap;
        app->dq_head = 0;
    }
queue:
    app->dq[(app->dq_head + app->dq_len) % app->dq_cap] = (chanc__deferred_t){fn, arg, order};
    if (app->dq_len++ == 0)
        uv_idle_start(&app->idle, on_idle);
    return 0;
}

void chanc_app_hold(chanc_app_t *app) { app->holds++; }

void chanc_app_release(chanc_app_t *app) {
    if (app->holds)
        app->holds--;
}

bool chanc_app_settled(const chanc_app_t *app) {
    return app->dq_len == 0 && app->holds == 0 &&
           atomic_load_explicit(&app->posts_pending, memory_order_acquire) == 0;
}

static void on_settle_timer(uv_timer_t *t) { (void)t; }

int chanc_app_run_until_settled(chanc_app_t *app, uint64_t timeout_ms) {
    uint64_t deadline = uv_hrtime() + timeout_ms * 1000000u;
    /* A referenced timer wakes UV_RUN_ONCE even when only a hold (work on
     * another thread) is outstanding. */
    uv_timer_start(&app->settle_timer, on_settle_timer, timeout_ms ? timeout_ms : 1, 0);
    int rc = 0;
    while (!chanc_app_settled(app)) {
        if (uv_hrtime() >= deadline) {
            rc = CHANC_ETIMEDOUT;
            break;
        }
        uv_run(app->loop, app->dq_len ? UV_RUN_NOWAIT : UV_RUN_ONCE);
    }
    uv_timer_stop(&app->settle_timer);
    return rc;
}

/* --- timers ------------------------------------------------------------- */

static void on_timer_handle(uv_timer_t *h);

static bool timer_before(const chanc_timer_t *a, const chanc_timer_t *b) {
    return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void heap_place(chanc_app_t *app, chanc_timer_t *tm, size_t i) {
    app->timers[i] = tm;
    tm->index = i;
}

static void heap_up(chanc_app_t *app, size_t i) {
    chanc_timer_t *tm = app->timers[i];
    while (i > 0 && timer_before(tm, app->timers[(i - 1) / 2])) {
        heap_place(app, app->timers[(i - 1) / 2], i);
        i = (i - 1) / 2;
    }
    heap_place(app, tm, i);
}

static void heap_down(chanc_app_t *app, size_t i) {
    chanc_timer_t *tm = app->timers[i];
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        const chanc_timer_t *best = tm;
        if (l < app->ntimers && timer_before(app->timers[l], best))
            best = app->timers[m = l];
        if (l + 1 < app->ntimers && timer_before(app->timers[l + 1], best))
            best = app->timers[m = l + 1];
        if (m == i)
            break;
        heap_place(app, app->timers[m], i);
        i = m;
    }
    heap_place(app, tm, i);
}

static void heap_remove(chanc_app_t *app, chanc_timer_t *tm) {
    size_t i = tm->index;
    chanc_timer_t *last = app->timers[--app->ntimers];
    if (last == tm)
        return;
    heap_place(app, last, i);
    heap_up(app, i);
    heap_down(app, last->index);
}

/* Wake the loop for the first timer. In real time that is its delay; a
 * virtual clock does not move by itself, so the wake-up then finds
 * nothing due and re-arms (harmless, and unreferenced: it never keeps a
 * loop alive). */
static void arm_timer_handle(chanc_app_t *app) {
    if (!app->ntimers) {
        uv_timer_stop(&app->timer_handle);
        return;
    }
    uint64_t now = chanc_app_mono_ms(app);
    uint64_t due = app->timers[0]->due;
    uv_timer_start(&app->timer_handle, on_timer_handle, due > now ? due - now : 0, 0);
}

static void on_timer_handle(uv_timer_t *h) {
    chanc_app_t *app = h->data;
    chanc_app_run_due_timers(app);
    arm_timer_handle(app);
}

chanc_timer_t *chanc_app_timer_start(chanc_app_t *app, uint64_t delay_ms, void (*fn)(void *arg),
                                     void *arg) {
    if (app->ntimers == app->captimers) {
        size_t cap = app->captimers ? app->captimers * 2 : 64;
        chanc_timer_t **h = chanc__realloc(app->timers, cap * sizeof *h);
        if (!h)
            return NULL;
        app->timers = h;
        app->captimers = cap;
    }
    chanc_timer_t *tm = chanc__malloc(sizeof *tm);
    if (!tm)
        return NULL;
    uint64_t seq = app->exploring ? chanc__schedule_timer_seq(app) : app->timer_seq++;
    *tm = (chanc_timer_t){app, chanc_app_mono_ms(app) + delay_ms, seq, 0, fn, arg};
    app->timers[app->ntimers] = tm;
    heap_up(app, app->ntimers++);
    if (app->timers[0] == tm)
        arm_timer_handle(app);
    return tm;
}

void chanc_timer_cancel(chanc_timer_t *tm) {
    if (!tm)
        return;
    heap_remove(tm->app, tm);
    free(tm);
}

bool chanc_app_next_timer(const chanc_app_t *app, uint64_t *due_ms) {
    if (!app->ntimers)
        return false;
    *due_ms = app->timers[0]->due;
    return true;
}

size_t chanc_app_run_due_timers(chanc_app_t *app) {
    size_t n = 0;
    uint64_t now = chanc_app_mono_ms(app);
    while (app->ntimers && app->timers[0]->due <= now) {
        chanc_timer_t *tm = app->timers[0];
        heap_remove(app, tm);
        void (*fn)(void *) = tm->fn;
        void *arg = tm->arg;
        free(tm); /* before fn: it may start or cancel others */
        fn(arg);
        n++;
    }
    return n;
}

/* --- create / destroy ----------------------------------------------------- */

chanc_app_t *chanc_app_create(const chanc_app_config_t *cfg, chanc_error_t *err) {
    if (!cfg || !cfg->loop) {
        chanc_error_set(err, CHANC_EINVAL, "chanc_app_create: a loop is required");
        if (cfg && cfg->layer)
            cfg->layer->ops->destroy(cfg->layer);
        return NULL;
    }
    chanc_app_t *app = chanc__calloc(1, sizeof *app);
    if (!app) {
        if (cfg->layer)
            cfg->layer->ops->destroy(cfg->layer);
        chanc_error_set(err, CHANC_ENOMEM, "out of memory");
        return NULL;
    }
    app->dq_cap = 64; /* the call-soon queue, from the start: see chanc_app_call_soon */
    if (!(app->dq = chanc__malloc(app->dq_cap * sizeof *app->dq))) {
        if (cfg->layer)
            cfg->layer->ops->destroy(cfg->layer);
        free(app);
        chanc_error_set(err, CHANC_ENOMEM, "out of memory");
        return NULL;
    }
    app->loop = cfg->loop;
    app->clock = cfg->clock ? *cfg->clock : *chanc_clock_system();
    app->max_frame = cfg->max_frame ? cfg->max_frame : CHANC_DEFAULT_MAX_FRAME;
    app->rate_limit = cfg->rate_limit ? cfg->rate_limit : CHANC_DEFAULT_RATE_LIMIT;
    app->rate_burst = app->rate_limit == CHANC_RATE_UNLIMITED ? CHANC_RATE_UNLIMITED
                      : cfg->rate_burst                       ? cfg->rate_burst
                      : app->rate_limit > UINT32_MAX / 2      ? UINT32_MAX - 1
                                                              : 2 * app->rate_limit;
    app->keepalive_ms = cfg->keepalive_ms;
    app->keepalive_timeout_ms = cfg->keepalive_timeout_ms ? cfg->keepalive_timeout_ms : 10000;
    app->routes_tail = &app->routes;
    if (uv_random(NULL, NULL, &app->node_id, sizeof app->node_id, 0, NULL) != 0)
        app->node_id = uv_hrtime() ^ (uint64_t)(uintptr_t)app;
    chanc__map_init(&app->groups);
    chanc__map_init(&app->channels);
    uv_idle_init(app->loop, &app->idle);
    app->idle.data = app;
    uv_timer_init(app->loop, &app->settle_timer);
    app->settle_timer.data = app;
    uv_timer_init(app->loop, &app->timer_handle);
    uv_unref((uv_handle_t *)&app->timer_handle);
    app->timer_handle.data = app;
    /* Unreferenced like the timer: pending posts keep the app unsettled,
     * not the loop alive. */
    uv_mutex_init(&app->post_lock);
    app->posts_tail = &app->posts;
    uv_async_init(app->loop, &app->post_async, chanc__posts_run);
    uv_unref((uv_handle_t *)&app->post_async);
    app->post_async.data = app;

    app->complete_buf =
        encode_literal("{\"action\":\"complete\",\"payload\":null}", CHANC_BUF_COMPLETION);
    app->group_complete_buf = encode_literal(
        "{\"action\":\"group_complete\",\"payload\":null}", CHANC_BUF_COMPLETION);
    app->auth_ok_buf = encode_literal(
        "{\"action\":\"authentication\",\"payload\":{\"status_code\":200,"
        "\"status_text\":\"OK\",\"data\":{\"detail\":\"OK\"}}}",
        0);
    app->rate_limited_buf = encode_rate_limited(app->rate_limit, app->rate_burst);
    app->layer = cfg->layer ? cfg->layer : chanc_layer_memory_create();
    if (!app->complete_buf || !app->group_complete_buf || !app->auth_ok_buf ||
        !app->rate_limited_buf || !app->layer) {
        chanc_error_set(err, CHANC_ENOMEM, "out of memory");
        chanc_app_destroy(app);
        return NULL;
    }
    app->layer->app = app;
    if (app->layer->ops->attach)
        app->layer->ops->attach(app->layer);
    return app;
}

static void on_handle_closed(uv_handle_t *h) {
    chanc_app_t *app = h->data;
    if (--app->closing_handles == 0) {
        uv_mutex_destroy(&app->post_lock);
        free(app->timers);
        free(app->dq);
        free(app);
    }
}

static void free_group(const char *key, void *value, void *ud) {
    (void)key;
    (void)ud;
    chanc__group_t *g = value;
    free(g->members);
    free(g->name);
    free(g);
}

int chanc_app_on_destroy(chanc_app_t *app, void (*fn)(void *arg), void *arg) {
    chanc__deferred_t *h = chanc__realloc(app->on_destroy, (app->n_on_destroy + 1) * sizeof *h);
    if (!h)
        return CHANC_ENOMEM;
    app->on_destroy = h;
    h[app->n_on_destroy++] = (chanc__deferred_t){fn, arg, NULL};
    return 0;
}

void chanc_app_destroy(chanc_app_t *app) {
    if (!app)
        return;
    chanc__posts_discard(app);
    while (app->n_on_destroy) {
        chanc__deferred_t h = app->on_destroy[--app->n_on_destroy];
        h.fn(h.arg);
    }
    free(app->on_destroy);
    app->on_destroy = NULL;
    /* What the hooks queued (a resume on a later turn) runs before the
     * connections still waiting for one are let go. */
    while (app->dq_len)
        on_idle(&app->idle);
    chanc__conn_abandon_deferred(app);
    if (app->nconns)
        chanc_log(CHANC_LOG_ERROR,
                  "chanc_app_destroy: %zu connection(s) still open; close them and "
                  "let the transports report it first",
                  app->nconns);
    /* Finish queued work (layer deliveries hold envelope references). */
    while (app->dq_len)
        on_idle(&app->idle);
    if (app->layer)
        app->layer->ops->destroy(app->layer);
    app->layer = NULL;
    chanc__map_each(&app->groups, free_group, NULL);
    chanc__map_dispose(&app->groups);
    chanc__map_dispose(&app->channels);
    while (app->routes) {
        chanc__route_t *r = app->routes;
        app->routes = r->next;
        chanc__route_free(r);
    }
    chanc_buf_unref(app->complete_buf);
    chanc_buf_unref(app->group_complete_buf);
    chanc_buf_unref(app->auth_ok_buf);
    chanc_buf_unref(app->rate_limited_buf);
    for (size_t i = 0; i < app->ntimers; i++)
        free(app->timers[i]);
    app->ntimers = 0;
    app->closing_handles = 4;
    uv_close((uv_handle_t *)&app->post_async, on_handle_closed);
    uv_close((uv_handle_t *)&app->timer_handle, on_handle_closed);
    uv_close((uv_handle_t *)&app->idle, on_handle_closed);
    uv_close((uv_handle_t *)&app->settle_timer, on_handle_closed);
}

static bool in_list(const chanc_message_type_t *const *list, const chanc_message_type_t *t) {
    for (size_t i = 0; list && list[i]; i++)
        if (list[i] == t)
            return true;
    return false;
}

/* The union a route validates against, checking the consumer's action
 * table: each type once, in `incoming` when that is given; derived from
 * the table otherwise (two types may not share an action name there). */
static int route_union(chanc__route_t *r, const chanc_consumer_t *k) {
    const char *name = k->name ? k->name : "?";
    r->incoming = k->incoming;
    size_t n = 0;
    for (const chanc_action_t *a = k->actions; a && a->type; a++, n++) {
        for (const chanc_action_t *b = k->actions; b != a; b++)
            if (b->type == a->type ||
                (!k->incoming && strcmp(b->type->action, a->type->action) == 0)) {
                chanc_log(CHANC_LOG_ERROR, "consumer %s: action \"%s\" is in its table twice",
                          name, a->type->action);
                return CHANC_EINVAL;
            }
        if (k->incoming && !in_list(k->incoming, a->type)) {
            chanc_log(CHANC_LOG_ERROR,
                      "consumer %s: action \"%s\" has a handler but is not in its incoming union",
                      name, a->type->action);
            return CHANC_EINVAL;
        }
    }
    if (k->incoming || !k->actions)
        return 0;
    if (!(r->derived = chanc__calloc(n + 1, sizeof *r->derived)))
        return CHANC_ENOMEM;
    for (size_t i = 0; i < n; i++)
        r->derived[i] = k->actions[i].type;
    r->incoming = r->derived;
    return 0;
}

int chanc_app_route(chanc_app_t *app, const char *pattern, const chanc_consumer_t *consumer,
                    void *data) {
    if (!app || !pattern || !consumer)
        return CHANC_EINVAL;
    chanc__route_t *r = chanc__route_new(pattern);
    if (!r)
        return CHANC_EINVAL;
    r->consumer = consumer;
    r->data = data;
    int rc = route_union(r, consumer);
    if (rc < 0) {
        chanc__route_free(r);
        return rc;
    }
    *app->routes_tail = r;
    app->routes_tail = &r->next;
    return 0;
}

uv_loop_t *chanc_app_loop(const chanc_app_t *app) { return app->loop; }
chanc_layer_t *chanc_app_layer(const chanc_app_t *app) { return app->layer; }
size_t chanc_app_max_frame(const chanc_app_t *app) { return app->max_frame; }
void chanc_app_stats(const chanc_app_t *app, chanc_app_stats_t *out) { *out = app->stats; }
uint32_t chanc_app_rate_limit(const chanc_app_t *app) { return app->rate_limit; }
uint32_t chanc_app_rate_burst(const chanc_app_t *app) { return app->rate_burst; }
size_t chanc_app_connections(const chanc_app_t *app) { return app->nconns; }
uint64_t chanc_app_node_id(const chanc_app_t *app) { return app->node_id; }
