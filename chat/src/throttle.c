/* Login throttling: see chanc/chat_throttle.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <sodium.h>

#include "chanc/chat_throttle.h"
#include "chanc/log.h"

/* Tokens are counted in units of 1/60,000 of a token, so that a bucket
 * refilling at N tokens a minute gains exactly N units a millisecond: no
 * rounding, whatever the clock's steps. */
#define ONE 60000

#define DEFAULT_MAX_KEYS 65536u
#define SWEEP_STEP 2          /* slots looked at per admission */
#define FULL_SWEEP_EVERY_MS 1000

typedef struct entry {
    uint8_t key[16];
    int64_t units;    /* tokens × ONE, at at_ms */
    uint64_t at_ms;
    uint32_t inflight; /* address buckets: checks in flight */
    uint32_t next;     /* hash chain or free list: index + 1; 0: none */
    bool used;
    bool limited;      /* refused since its last admission (logged once) */
} entry_t;

typedef struct table {
    entry_t *e;
    uint32_t n, cap, max; /* slots made, allocated, at most */
    uint32_t *heads, mask;
    uint32_t free_head;   /* index + 1 */
    uint32_t count;       /* used slots */
    uint32_t cursor;      /* the incremental sweep's next slot */
    uint64_t last_full_sweep_ms;
    int64_t per_ms;       /* units gained a millisecond (= tokens a minute);
                           * 0: no bucket (always full) */
    int64_t cap_units;    /* the burst, in units */
} table_t;

struct chat_throttle {
    chat_login_limits_t limits;
    const chanc_clock_t *clock;
    uint8_t key[crypto_generichash_KEYBYTES];
    table_t addrs, users;
    uint32_t in_flight;
    chat_login_stats_t stats;
};

/* ---- time ----------------------------------------------------------------- */

static uint64_t now_ms(const chat_throttle_t *th) {
    if (th->clock)
        return th->clock->mono_ms(th->clock->ud);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- one table of buckets ------------------------------------------------- */

static int table_init(table_t *t, uint32_t per_min, uint32_t burst, uint32_t max) {
    memset(t, 0, sizeof *t);
    t->per_ms = per_min;
    t->cap_units = (int64_t)burst * ONE;
    t->max = max;
    uint32_t nheads = 64;
    while (nheads < max / 4 && nheads < (1u << 20))
        nheads *= 2;
    t->heads = calloc(nheads, sizeof *t->heads);
    t->mask = nheads - 1;
    return t->heads ? 0 : -1;
}

static void table_free(table_t *t) {
    free(t->e);
    free(t->heads);
}

static uint32_t slot_of(const table_t *t, const uint8_t key[16]) {
    uint32_t h;
    memcpy(&h, key, sizeof h); /* a keyed digest: already uniform */
    return h & t->mask;
}

static entry_t *table_find(table_t *t, const uint8_t key[16]) {
    for (uint32_t i = t->heads[slot_of(t, key)]; i; i = t->e[i - 1].next)
        if (memcmp(t->e[i - 1].key, key, 16) == 0)
            return &t->e[i - 1];
    return NULL;
}

static void refill(const table_t *t, entry_t *e, uint64_t now) {
    if (now <= e->at_ms)
        return;
    uint64_t dt = now - e->at_ms;
    e->at_ms = now;
    int64_t room = t->cap_units - e->units;
    if (!t->per_ms || room <= 0)
        return;
    if (dt > (uint64_t)(room / t->per_ms)) /* full (and no overflow) */
        e->units = t->cap_units;
    else
        e->units += (int64_t)dt * t->per_ms;
}

/* Nothing to remember: full (or no bucket) and nothing in flight. */
static bool idle(const table_t *t, entry_t *e, uint64_t now) {
    refill(t, e, now);
    return e->inflight == 0 && (!t->per_ms || e->units >= t->cap_units);
}

static void table_remove(table_t *t, entry_t *e) {
    uint32_t idx = (uint32_t)(e - t->e) + 1;
    uint32_t *link = &t->heads[slot_of(t, e->key)];
    while (*link && *link != idx)
        link = &t->e[*link - 1].next;
    if (*link)
        *link = e->next;
    memset(e, 0, sizeof *e);
    e->next = t->free_head;
    t->free_head = idx;
    t->count--;
}

static void sweep(table_t *t, uint64_t now, uint32_t steps) {
    for (uint32_t k = 0; k < steps && t->n; k++) {
        if (t->cursor >= t->n)
            t->cursor = 0;
        entry_t *e = &t->e[t->cursor++];
        if (e->used && idle(t, e, now))
            table_remove(t, e);
    }
}

/* A new bucket, full; NULL when the table is full (after a sweep of it at
 * most once a second) or on OOM. Moves the entries: pointers into the
 * table taken before are stale. */
static entry_t *table_add(table_t *t, const uint8_t key[16], uint64_t now) {
    if (t->count >= t->max && now - t->last_full_sweep_ms >= FULL_SWEEP_EVERY_MS) {
        t->last_full_sweep_ms = now;
        sweep(t, now, t->n);
    }
    if (t->count >= t->max)
        return NULL;
    uint32_t idx = t->free_head;
    if (idx) {
        t->free_head = t->e[idx - 1].next;
    } else {
        if (t->n == t->cap) {
            uint32_t cap = t->cap ? t->cap * 2 : 64;
            if (cap > t->max)
                cap = t->max;
            entry_t *e = realloc(t->e, (size_t)cap * sizeof *e);
            if (!e)
                return NULL;
            t->e = e;
            t->cap = cap;
        }
        idx = ++t->n;
    }
    entry_t *e = &t->e[idx - 1];
    memset(e, 0, sizeof *e);
    memcpy(e->key, key, 16);
    e->units = t->cap_units;
    e->at_ms = now;
    e->used = true;
    uint32_t *head = &t->heads[slot_of(t, key)];
    e->next = *head;
    *head = idx;
    t->count++;
    return e;
}

/* Seconds until e has a whole token again (at least 1). */
static uint32_t retry_after(const table_t *t, const entry_t *e) {
    int64_t need = ONE - e->units;
    if (need <= 0 || !t->per_ms)
        return 1;
    int64_t ms = (need + t->per_ms - 1) / t->per_ms;
    int64_t s = (ms + 999) / 1000;
    return s < 1 ? 1 : s > 86400 ? 86400 : (uint32_t)s;
}

/* ---- keys ----------------------------------------------------------------- */

static void digest(const chat_throttle_t *th, const uint8_t *data, size_t len, uint8_t out[16]) {
    crypto_generichash(out, 16, data, len, th->key, sizeof th->key);
}

/* IPv4 as itself; IPv6 by its /64; IPv4-mapped IPv6 as IPv4; anything
 * else (unknown: "") as the text. */
static void addr_key(const chat_throttle_t *th, const char *peer, uint8_t out[16]) {
    uint8_t buf[1 + 64];
    size_t n;
    struct in_addr a4;
    struct in6_addr a6;
    if (!peer)
        peer = "";
    if (inet_pton(AF_INET, peer, &a4) == 1) {
        buf[0] = 4;
        memcpy(buf + 1, &a4, 4);
        n = 5;
    } else if (inet_pton(AF_INET6, peer, &a6) == 1 && IN6_IS_ADDR_V4MAPPED(&a6)) {
        buf[0] = 4;
        memcpy(buf + 1, a6.s6_addr + 12, 4);
        n = 5;
    } else if (inet_pton(AF_INET6, peer, &a6) == 1) {
        buf[0] = 6;
        memcpy(buf + 1, a6.s6_addr, 8);
        n = 9;
    } else {
        buf[0] = 0;
        n = strnlen(peer, sizeof buf - 1);
        memcpy(buf + 1, peer, n);
        n++;
    }
    digest(th, buf, n, out);
}

static void user_key(const chat_throttle_t *th, const char *username, uint8_t out[16]) {
    digest(th, (const uint8_t *)(username ? username : ""), username ? strlen(username) : 0, out);
}

/* ---- the throttle --------------------------------------------------------- */

chat_throttle_t *chat_throttle_create(const chat_login_limits_t *limits,
                                      const chanc_clock_t *clock) {
    if (sodium_init() < 0)
        return NULL;
    chat_throttle_t *th = calloc(1, sizeof *th);
    if (!th)
        return NULL;
    th->limits = limits ? *limits : CHAT_LOGIN_LIMITS_DEFAULT;
    chat_login_limits_t *l = &th->limits;
    if (l->addr_per_min && !l->addr_burst)
        l->addr_burst = 2 * l->addr_per_min;
    if (l->user_per_min && !l->user_burst)
        l->user_burst = 2 * l->user_per_min;
    if (!l->max_keys)
        l->max_keys = DEFAULT_MAX_KEYS;
    th->clock = clock;
    randombytes_buf(th->key, sizeof th->key);
    if (table_init(&th->addrs, l->addr_per_min, l->addr_burst, l->max_keys) < 0 ||
        table_init(&th->users, l->user_per_min, l->user_burst, l->max_keys) < 0) {
        chat_throttle_destroy(th);
        return NULL;
    }
    return th;
}

void chat_throttle_destroy(chat_throttle_t *th) {
    if (!th)
        return;
    table_free(&th->addrs);
    table_free(&th->users);
    sodium_memzero(th->key, sizeof th->key);
    free(th);
}

const chat_login_limits_t *chat_throttle_limits(const chat_throttle_t *th) {
    return &th->limits;
}

/* A username for the log: printable ASCII kept, the rest '?', cut. */
static void log_name(const char *username, char out[40]) {
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)(username ? username : "");
         *p && o < 36; p++)
        out[o++] = *p >= 0x20 && *p < 0x7f ? (char)*p : '?';
    if (username && strlen(username) > 36)
        out[o++] = '.', out[o++] = '.';
    out[o] = '\0';
}

chat_login_verdict_t chat_throttle_admit(chat_throttle_t *th, const char *peer,
                                         const char *username, chat_login_ticket_t *ticket,
                                         uint32_t *retry_after_s) {
    const chat_login_limits_t *l = &th->limits;
    memset(ticket, 0, sizeof *ticket);
    *retry_after_s = 1;
    uint64_t now = now_ms(th);
    sweep(&th->addrs, now, SWEEP_STEP);
    sweep(&th->users, now, SWEEP_STEP);
    bool track_addr = l->addr_per_min || l->max_checks_addr;
    bool track_user = l->user_per_min != 0;
    addr_key(th, peer, ticket->addr);
    user_key(th, username, ticket->user);
    /* The buckets first: an empty one says when to come back (seconds);
     * checks in flight free up within a second. */
    entry_t *a = track_addr ? table_find(&th->addrs, ticket->addr) : NULL;
    if (a)
        refill(&th->addrs, a, now);
    if (a && l->addr_per_min && a->units < ONE) {
        *retry_after_s = retry_after(&th->addrs, a);
        if (!a->limited)
            chanc_log(CHANC_LOG_INFO,
                      "login: throttling client %s: over %u failed logins a minute "
                      "(bursts of %u); retry after %u s",
                      peer && *peer ? peer : "(unknown)", l->addr_per_min, l->addr_burst,
                      *retry_after_s);
        a->limited = true;
        th->stats.limited_addr++;
        return CHAT_LOGIN_LIMIT_ADDR;
    }
    entry_t *u = track_user ? table_find(&th->users, ticket->user) : NULL;
    if (u)
        refill(&th->users, u, now);
    if (u && u->units < ONE) {
        *retry_after_s = retry_after(&th->users, u);
        if (!u->limited) {
            char name[40];
            log_name(username, name);
            chanc_log(CHANC_LOG_INFO,
                      "login: throttling username \"%s\": over %u failed logins a minute "
                      "(bursts of %u); retry after %u s",
                      name, l->user_per_min, l->user_burst, *retry_after_s);
        }
        u->limited = true;
        th->stats.limited_user++;
        return CHAT_LOGIN_LIMIT_USER;
    }
    if ((l->max_checks && th->in_flight >= l->max_checks) ||
        (a && l->max_checks_addr && a->inflight >= l->max_checks_addr)) {
        th->stats.busy++;
        return CHAT_LOGIN_BUSY;
    }
    /* Admitted: make the buckets it needs (each add may move its table's
     * entries, so the pointers are taken again after it). */
    if (track_addr && !a && !(a = table_add(&th->addrs, ticket->addr, now))) {
        th->stats.busy++;
        return CHAT_LOGIN_BUSY;
    }
    if (track_user && !u && !(u = table_add(&th->users, ticket->user, now))) {
        th->stats.busy++; /* a, new and full, is swept later */
        return CHAT_LOGIN_BUSY;
    }
    if (a) {
        if (l->addr_per_min)
            a->units -= ONE;
        a->inflight++;
        a->limited = false;
    }
    if (u) {
        u->units -= ONE;
        u->limited = false;
    }
    th->in_flight++;
    if (th->in_flight > th->stats.in_flight_peak)
        th->stats.in_flight_peak = th->in_flight;
    th->stats.admitted++;
    ticket->admitted = true;
    return CHAT_LOGIN_ADMITTED;
}

static void give_back(table_t *t, entry_t *e, uint64_t now) {
    refill(t, e, now);
    e->units += ONE;
    if (e->units > t->cap_units)
        e->units = t->cap_units;
}

void chat_throttle_finish(chat_throttle_t *th, chat_login_ticket_t *ticket,
                          chat_login_outcome_t outcome) {
    if (!th || !ticket || !ticket->admitted)
        return;
    ticket->admitted = false;
    uint64_t now = now_ms(th);
    bool refund = outcome != CHAT_LOGIN_WRONG;
    if (th->in_flight)
        th->in_flight--;
    entry_t *a = table_find(&th->addrs, ticket->addr);
    if (a) {
        if (a->inflight)
            a->inflight--;
        if (refund && th->addrs.per_ms)
            give_back(&th->addrs, a, now);
    }
    entry_t *u = th->users.per_ms ? table_find(&th->users, ticket->user) : NULL;
    if (u && refund)
        give_back(&th->users, u, now); /* gone: refilled meanwhile */
    if (outcome == CHAT_LOGIN_OK)
        th->stats.succeeded++;
    else if (outcome == CHAT_LOGIN_WRONG)
        th->stats.failed++;
    else
        th->stats.errors++;
}

void chat_throttle_stats(const chat_throttle_t *th, chat_login_stats_t *out) {
    *out = th->stats;
    out->in_flight = th->in_flight;
    out->addrs = th->addrs.count;
    out->users = th->users.count;
}

/* ---- options --------------------------------------------------------------- */

static bool parse_u32(const char *s, const char **end, uint32_t lo, uint32_t hi, uint32_t *out) {
    char *e;
    errno = 0;
    if (*s < '0' || *s > '9')
        return false;
    unsigned long long v = strtoull(s, &e, 10);
    if (errno || e == s || v < lo || v > hi)
        return false;
    *out = (uint32_t)v;
    *end = e;
    return true;
}

/* "N" or "N/B" (1 to 100,000 each), "off": rate and burst set. */
static bool parse_pair(const char *s, bool may_be_off, uint32_t *a, uint32_t *b) {
    if (may_be_off && !strcmp(s, "off")) {
        *a = *b = 0;
        return true;
    }
    const char *end;
    uint32_t x, y = 0;
    if (!parse_u32(s, &end, 1, 100000, &x))
        return false;
    if (*end == '/' && !parse_u32(end + 1, &end, 1, 100000, &y))
        return false;
    if (*end)
        return false;
    *a = x;
    *b = y;
    return true;
}

static const struct {
    const char *flag, *env;
} login_options[] = {
    {"--login-limit-addr", "CHAT_LOGIN_LIMIT_ADDR"},
    {"--login-limit-user", "CHAT_LOGIN_LIMIT_USER"},
    {"--login-checks", "CHAT_LOGIN_CHECKS"},
    {"--login-hashers", "CHAT_LOGIN_HASHERS"},
};

int chat_login_limits_option(chat_login_limits_t *l, const char *name, const char *value) {
    int which = -1;
    for (int i = 0; i < (int)(sizeof login_options / sizeof *login_options); i++)
        if (!strcmp(name, login_options[i].flag) || !strcmp(name, login_options[i].env))
            which = i;
    if (which < 0)
        return 1;
    uint32_t x, y;
    const char *end;
    switch (which) {
    case 0:
    case 1:
        if (!parse_pair(value, true, &x, &y))
            break;
        if (which == 0) {
            l->addr_per_min = x;
            l->addr_burst = y ? y : 2 * x;
        } else {
            l->user_per_min = x;
            l->user_burst = y ? y : 2 * x;
        }
        return 0;
    case 2:
        if (!parse_pair(value, false, &x, &y) || y > x)
            break;
        l->max_checks = x;
        l->max_checks_addr = y ? y : l->max_checks_addr < x ? l->max_checks_addr : x;
        return 0;
    case 3:
        if (!parse_u32(value, &end, 1, 256, &x) || *end)
            break;
        l->hashers = x;
        return 0;
    }
    static const char *const what[] = {
        "N (failed logins a minute per client address), N/BURST or off",
        "N (failed logins a minute per username), N/BURST or off",
        "N (password checks in flight) or N/P (P of them per client address, P <= N)",
        "1 to 256 (password hashes at once)"};
    fprintf(stderr, "chat-server: %s: %s: %s\n", name, what[which], value);
    return -1;
}
