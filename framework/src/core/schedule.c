/* Explored schedules (chanc/schedule.h): with a test's scheduler installed,
 * the app's deferred work runs one item a turn, the scheduler choosing
 * among the first item of each lane; group members and timers due at the
 * same instant are ordered by it too. Nothing here runs without one: the
 * call sites in app.c and delivery.c test app->exploring first. */
#include "app_internal.h"

/* How far into the queue the choice looks: lanes whose first item is
 * further back wait their turn (a flood of 10,000 frames stays linear). */
#define WINDOW 32

void chanc_app_set_scheduler(chanc_app_t *app, const chanc_scheduler_t *scheduler) {
    app->exploring = scheduler && scheduler->choose;
    app->scheduler = app->exploring ? *scheduler : (chanc_scheduler_t){0};
}

bool chanc_app_exploring(const chanc_app_t *app) { return app->exploring; }

static size_t choose(chanc_app_t *app, size_t n) {
    if (n < 2)
        return 0;
    size_t k = app->scheduler.choose(app->scheduler.ud, n);
    return k < n ? k : n - 1;
}

static chanc__deferred_t *at(chanc_app_t *app, size_t i) {
    return &app->dq[(app->dq_head + i) % app->dq_cap];
}

bool chanc__schedule_take(chanc_app_t *app, chanc__deferred_t *out) {
    if (!app->dq_len)
        return false;
    size_t window = app->dq_len < WINDOW ? app->dq_len : WINDOW;
    size_t heads[WINDOW], n = 0;
    for (size_t i = 0; i < window; i++) {
        bool first = true; /* of its lane: no earlier head has its lane */
        for (size_t j = 0; j < n && first; j++)
            first = at(app, heads[j])->order != at(app, i)->order;
        if (first)
            heads[n++] = i;
    }
    size_t k = heads[choose(app, n)];
    *out = *at(app, k);
    for (size_t i = k; i > 0; i--) /* close the gap: the items before move up */
        *at(app, i) = *at(app, i - 1);
    app->dq_head = (app->dq_head + 1) % app->dq_cap;
    app->dq_len--;
    return true;
}

uint64_t chanc__schedule_timer_seq(chanc_app_t *app) {
    /* Timers due at the same instant run by seq: a drawn one. */
    uint64_t hi = choose(app, (size_t)1 << 30), lo = choose(app, (size_t)1 << 30);
    return hi << 30 | lo;
}

void chanc__schedule_shuffle(chanc_app_t *app, size_t *idx, size_t n) {
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    for (size_t i = n; i > 1; i--) { /* Fisher-Yates */
        size_t j = choose(app, i), tmp = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = tmp;
    }
}
