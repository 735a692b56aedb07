/* Login throttling for the chat's POST /login: token buckets per client
 * address and per username, and a bound on the password checks in flight.
 *
 * A password check (argon2id: ~100 ms of CPU and 64 MiB) is what a login
 * flood spends; each limit is checked *before* one starts, and a refused
 * attempt is answered at once (429 with Retry-After), without hashing.
 *
 * - Per client address: a bucket of `addr_burst` tokens refilled at
 *   `addr_per_min` a minute. IPv6 addresses count per /64 (what one host
 *   or one customer is given); IPv4-mapped IPv6 addresses as IPv4.
 * - Per username (as typed, known or not, so that the answers tell nothing
 *   about which users exist): `user_burst` tokens refilled at
 *   `user_per_min` a minute.
 * - An admitted attempt takes a token from both buckets; a successful login
 *   gives both back. So only failures count: a busy office behind one
 *   address logs in freely, and a flooded username stays locked only while
 *   its bucket is empty (at most 60 / user_per_min seconds after the flood
 *   stops, for the next attempt), never for good.
 * - In flight: at most `max_checks` attempts admitted and not yet answered
 *   (waiting for the database or for a hashing slot, or hashing), of which
 *   at most `max_checks_addr` from one address. A flood from one address
 *   thus holds at most max_checks_addr checks, and every other client's
 *   login waits behind at most those.
 *
 * Memory is bounded: a bucket is remembered only while it is not full (or
 * has checks in flight), at most `max_keys` addresses and as many usernames;
 * with the table full (and nothing refilled to free) an attempt is refused
 * as busy. Keys are stored as keyed BLAKE2b digests (no usernames kept; the
 * table's layout cannot be steered from outside).
 *
 * Time is the clock given (chanc_app_clock: a test's virtual clock moves
 * the buckets), mono_ms. Loop thread only (one throttle per process). */
#ifndef CHANC_CHAT_THROTTLE_H
#define CHANC_CHAT_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>

#include "chanc/app.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct chat_login_limits {
    uint32_t addr_per_min, addr_burst; /* failed logins per client address;
                                        * addr_per_min 0: no such bucket */
    uint32_t user_per_min, user_burst; /* failed logins per username; 0: none */
    uint32_t max_checks;      /* attempts in flight, all clients; 0: no bound */
    uint32_t max_checks_addr; /* ... from one address; 0: no bound */
    uint32_t hashers;         /* password hashes running at once (each takes
                               * the hash's memory cost: 64 MiB for
                               * "interactive"); the others wait their turn
                               * in a FIFO, counted in max_checks; 0: no bound
                               * (libuv's threadpool: 4) */
    uint32_t max_keys;        /* remembered addresses, and usernames; 0: 65536 */
} chat_login_limits_t;

/* chat-server's defaults: 10 failed logins a minute per address (bursts of
 * 20), 5 per username (bursts of 10), 16 checks in flight (2 per address),
 * 2 hashing at once. */
#define CHAT_LOGIN_LIMITS_DEFAULT                                                     \
    ((chat_login_limits_t){.addr_per_min = 10, .addr_burst = 20, .user_per_min = 5, \
                           .user_burst = 10, .max_checks = 16, .max_checks_addr = 2, \
                           .hashers = 2})

typedef struct chat_throttle chat_throttle_t;

/* limits copied (a burst of 0: twice the per-minute figure); clock borrowed (NULL: the system's monotonic clock). NULL on OOM. */
chat_throttle_t *chat_throttle_create(const chat_login_limits_t *limits,
                                      const chanc_clock_t *clock);
void chat_throttle_destroy(chat_throttle_t *th);
const chat_login_limits_t *chat_throttle_limits(const chat_throttle_t *th);

typedef enum chat_login_verdict {
    CHAT_LOGIN_ADMITTED = 0,
    CHAT_LOGIN_LIMIT_ADDR, /* the address's bucket is empty */
    CHAT_LOGIN_LIMIT_USER, /* the username's bucket is empty */
    CHAT_LOGIN_BUSY,       /* max_checks, or max_checks_addr, in flight (or
                            * the table of buckets is full) */
} chat_login_verdict_t;

/* What an admitted attempt holds until chat_throttle_finish. */
typedef struct chat_login_ticket {
    uint8_t addr[16], user[16]; /* the buckets' keys */
    bool admitted;
} chat_login_ticket_t;

/* May this attempt (peer: the client's address, as chanc_http_request_t
 * gives it; NULL or "" share one bucket) check a password now? Admitted:
 * a token taken from both buckets, one check in flight (*ticket filled;
 * pass it to chat_throttle_finish). Refused: *retry_after_s is when to try
 * again (>= 1: when a token will be back; 1 when busy). */
chat_login_verdict_t chat_throttle_admit(chat_throttle_t *th, const char *peer,
                                         const char *username, chat_login_ticket_t *ticket,
                                         uint32_t *retry_after_s);
typedef enum chat_login_outcome {
    CHAT_LOGIN_OK,    /* logged in */
    CHAT_LOGIN_WRONG, /* wrong username or password */
    CHAT_LOGIN_ERROR, /* the server failed (database, memory, shutdown) */
} chat_login_outcome_t;

/* The attempt is answered: its check leaves the flight; anything but
 * CHAT_LOGIN_WRONG gives its tokens back. A ticket not admitted (or
 * zeroed) is a no-op; the ticket is cleared, so finishing twice is one. */
void chat_throttle_finish(chat_throttle_t *th, chat_login_ticket_t *ticket,
                          chat_login_outcome_t outcome);

typedef struct chat_login_stats {
    uint64_t admitted;     /* attempts that went on to a password check */
    uint64_t succeeded;    /* ... and logged in */
    uint64_t failed;       /* ... wrong username or password */
    uint64_t errors;       /* ... the server failed */
    uint64_t limited_addr; /* refused: CHAT_LOGIN_LIMIT_ADDR */
    uint64_t limited_user; /* refused: CHAT_LOGIN_LIMIT_USER */
    uint64_t busy;         /* refused: CHAT_LOGIN_BUSY */
    uint32_t in_flight, in_flight_peak;
    uint32_t addrs, users; /* buckets remembered now */
} chat_login_stats_t;
void chat_throttle_stats(const chat_throttle_t *th, chat_login_stats_t *out);

/* chat-server's options: name a flag (--login-limit-addr,
 * --login-limit-user, --login-checks, --login-hashers) or its environment
 * variable (CHAT_LOGIN_LIMIT_ADDR, …) and its value ("N", "N/B", "off"
 * for the two limits; "N/P" for checks). 0: set; 1: not a login option;
 * -1: a bad value (said on stderr). */
int chat_login_limits_option(chat_login_limits_t *l, const char *name, const char *value);

#ifdef __cplusplus
}
#endif
#endif
