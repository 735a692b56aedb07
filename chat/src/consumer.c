/* The chat consumer: route ws/chat/{pk:int}/.
 *
 * session cookie → is_authenticated → room by pk (404) → member of the
 * room (403) → groups chat_room_<id> and the session's (chat_session_group)
 * → user_joined to the group (joiner included) and the last 50 messages to
 * the joiner as `history`.
 *
 * A session ends everywhere at once: a logout sends the internal event
 * session_ended to the session's group (chat_session_end), and each of its
 * sockets, in every process, gets a 401 authentication frame and is closed
 * with 4401; an expiring session closes its sockets from a timer on the
 * app's clock when it expires.
 *
 * Frames go to the action table (chat_actions): `chat` and `ping`, whose
 * reply is `pong`.
 *
 * An announcement (POST /api/rooms/{id}/announcements, views_announce.c)
 * is the typed event `announcement` to the room's group (chat_announce):
 * each member's consumer, in every process, passes it on to its page as
 * the declared outgoing frame `announcement`, the event's own bytes.
 *
 * No store call runs on the loop thread: prepare hands the session, room,
 * membership and history lookups to the database thread (worker.c) as one
 * job and defers; the authenticator, get_object and the permission then
 * read its results. An incoming chat message is a job too: the frame is
 * deferred until the worker has committed it (with whatever other
 * messages were waiting: one commit), then it goes to the group once,
 * encoded once, with is_mine/is_current per recipient, and only then does
 * the framework send `complete`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chanc/chat.h"
#include "worker.h"

/* ---- message types ------------------------------------------------------ */

const chanc_message_type_t chat_msg_chat = {
    .action = "chat",
    .payload = CHANC_STRING(.min_length = 1, .max_length = CHAT_MESSAGE_MAX),
    .description = "A message to the room: 1-4000 characters. Committed, then relayed to the "
                   "room (chat_relayed), then `complete`.",
};
const chanc_message_type_t chat_msg_ping = {
    .action = "ping", .description = "Answered with `pong` (then `complete`)."};
const chanc_message_type_t chat_msg_pong = {.action = "pong",
                                            .description = "The answer to `ping`."};
const chanc_message_type_t chat_msg_user_joined = {
    .action = "user_joined",
    .payload = CHANC_OBJECT(CHANC_FIELD("username", CHANC_STRING()),
                            CHANC_FIELD("room_name", CHANC_STRING()),
                            CHANC_FIELD("timestamp", CHANC_STRING())),
    .description = "Someone joined the room (to the whole room, the joiner included; "
                   "timestamp ISO 8601 UTC with milliseconds).",
    .frame_fields = (const chanc_field_t[]){CHANC_GROUP_FRAME_FIELDS, {0}},
};
const chanc_message_type_t chat_msg_user_left = {
    .action = "user_left",
    .payload = CHANC_OBJECT(CHANC_FIELD("username", CHANC_STRING()),
                            CHANC_FIELD("room_name", CHANC_STRING()),
                            CHANC_FIELD("timestamp", CHANC_STRING())),
    .description = "A member's connection closed (to the others).",
    .frame_fields = (const chanc_field_t[]){CHANC_GROUP_FRAME_FIELDS, {0}},
};
const chanc_message_type_t chat_msg_history = {
    .action = "history",
    .payload = CHANC_ARRAY(CHANC_OBJECT(CHANC_FIELD("username", CHANC_STRING()),
                                        CHANC_FIELD("message", CHANC_STRING()),
                                        CHANC_FIELD("timestamp", CHANC_STRING())),
                           .max_length = CHAT_HISTORY_LIMIT),
    .description = "To the joiner only, after user_joined: the room's last 50 messages, oldest "
                   "first.",
};
/* What a room's members get for a chat frame: the text as the sender sent
 * it, who and when beside it (not inside the payload). Built by frame_done
 * with chanc_conn_group_send; declared for the document and the fixture. */
const chanc_message_type_t chat_msg_chat_relayed = {
    .action = "chat",
    .name = "chat_relayed",
    .payload = CHANC_STRING(.min_length = 1, .max_length = CHAT_MESSAGE_MAX),
    .description = "A committed chat message, to the whole room (the sender included, once); "
                   "timestamp ISO 8601 UTC with milliseconds.",
    .frame_fields = (const chanc_field_t[]){CHANC_FIELD("username", CHANC_STRING()),
                                            CHANC_FIELD("timestamp", CHANC_STRING()),
                                            CHANC_GROUP_FRAME_FIELDS, {0}},
};

/* A big room's joins and leaves of one interval, in one frame (see
 * "presence" below). */
#define PRESENCE_NAMES CHANC_ARRAY(CHANC_STRING(), .max_length = CHAT_PRESENCE_LIST_MAX)
const chanc_message_type_t chat_msg_presence = {
    .action = "presence",
    .payload = CHANC_OBJECT(CHANC_FIELD("joined", PRESENCE_NAMES),
                            CHANC_FIELD("left", PRESENCE_NAMES),
                            CHANC_FIELD("joined_count", CHANC_INTEGER(.has_minimum = true)),
                            CHANC_FIELD("left_count", CHANC_INTEGER(.has_minimum = true)),
                            CHANC_FIELD("online", CHANC_INTEGER(.has_minimum = true))),
    .description = "In a room past the presence threshold (default 100 members), instead of "
                   "user_joined/user_left: the joins and leaves of one interval (default 1 s), "
                   "to the whole room. joined/left: usernames in order, at most 50 each; "
                   "joined_count/left_count: all of them; online: the room's members connected "
                   "to the sending process. A connection that joined and left within the "
                   "interval is in neither.",
    .frame_fields = (const chanc_field_t[]){CHANC_GROUP_FRAME_FIELDS, {0}},
};

/* Everything the consumer (and the framework for it) may send. */
static const chanc_message_type_t *const chat_outgoing[] = {
    &chanc_msg_authentication, &chat_msg_history,     &chat_msg_user_joined,
    &chat_msg_user_left,       &chat_msg_presence,    &chat_msg_chat_relayed, &chat_msg_pong,
    &chat_msg_announcement,    &chanc_msg_validation_error, &chanc_msg_handler_error,
    &chanc_msg_complete,       &chanc_msg_group_complete, NULL};

const chanc_message_type_t chat_event_session_ended = {
    .action = "session_ended",
    .description = "The session was logged out (POST /logout, in any process): every socket "
                   "opened with it gets authentication 401 \"Logged out.\" and closes with 4401."};
/* An announcement: the event to the room's group, and the frame each
 * member's page gets (the same action and payload: passed on as is). */
#define CHAT_ANNOUNCEMENT_PAYLOAD                                                         \
    CHANC_OBJECT(CHANC_FIELD("message", CHANC_STRING(.min_length = 1,                     \
                                                     .max_length = CHAT_ANNOUNCEMENT_MAX)), \
                 CHANC_FIELD("username", CHANC_STRING()), CHANC_FIELD("timestamp", CHANC_STRING()))
const chanc_message_type_t chat_event_announcement = {
    .action = "announcement",
    .payload = CHAT_ANNOUNCEMENT_PAYLOAD,
    .description = "A staff user posted an announcement to the room (POST "
                   "/api/rooms/{id}/announcements, in any process): every member's socket passes "
                   "it on as the frame `announcement`."};
const chanc_message_type_t chat_msg_announcement = {
    .action = "announcement",
    .payload = CHAT_ANNOUNCEMENT_PAYLOAD,
    .description = "An announcement by a staff user (POST /api/rooms/{id}/announcements), to "
                   "every member of the room; not stored in the history. timestamp ISO 8601 UTC "
                   "with milliseconds."};
static const chanc_message_type_t *const chat_events[] = {&chat_event_session_ended,
                                                          &chat_event_announcement, NULL};

/* ---- per-connection state -------------------------------------------------- */

typedef struct chat_conn {
    int64_t user_id;
    char group[40]; /* chat_room_<id> */
    char token[CHAT_SESSION_TOKEN_LEN + 1]; /* the session it authenticated with */
    char session_group[CHAT_SESSION_GROUP_MAX]; /* chat_session_group(token) */
    int64_t session_expires_ms;             /* when it expires (app wall time) */
    int64_t session_checked_ms;             /* the last look in the store */
    chanc_timer_t *expiry;                  /* ends the session at session_expires_ms */
    unsigned long ends_seen;                /* ended_seq when prepare ran */
    bool announced;                         /* the join went to the room (or its batch) */
    struct presence_room *room;             /* its room's presence, once announced */
    uint64_t joined_batch;                  /* the room's batch its join is in, + 1; 0: none */
    int joined_slot;                        /* its name's place in that batch's list; -1 */
    chat_connect_job_t *pre; /* prepare's lookups, until post_authentication */
} chat_conn_t;

/* Sessions ended in this process lately (chat_session_end), newest last,
 * for the handshakes in flight meanwhile: one whose lookups ran before the
 * logout deleted its session, but which joins the session's group only
 * after the event went out, finds it here when it joins. Loop thread. */
#define ENDED_RING 256
static char ended[ENDED_RING][CHAT_SESSION_GROUP_MAX];
static unsigned long ended_seq; /* sessions ended so far */

/* The route's data: the database thread the consumer's store calls run
 * on, and the session cookie's name. */
typedef struct chat_route {
    chat_worker_t *worker;
    const char *cookie;
    struct presence *presence;
} chat_route_t;

static chat_worker_t *worker_of(const chanc_conn_t *c) {
    return ((const chat_route_t *)chanc_conn_route_data(c))->worker;
}

/* The connection's room: what the consumer needs of chat_room_t (whose
 * fixed-size name and slug buffers are ~0.5 KiB), sized to fit: this is
 * held for as long as the connection is open. */
typedef struct conn_room {
    int64_t id;
    char name[];
} conn_room_t;

static json_t *presence(const chanc_conn_t *c, const conn_room_t *room) {
    char ts[32];
    chanc_format_timestamp(chanc_app_wall_ms(chanc_conn_app(c)), ts);
    return json_pack("{s:s,s:s,s:s}", "username", chanc_conn_username(c), "room_name", room->name,
                     "timestamp", ts);
}

/* ---- presence: per join, or coalesced in big rooms ------------------------------ */

/* A room's presence in this process: its members connected here (online),
 * and, past the threshold, the batch of joins and leaves the interval's
 * timer sends as one `presence` frame. Up to `threshold` members each join
 * and leave is its own user_joined / user_left (the seed's frames); the
 * join that takes the room past it starts coalescing, and the leave that
 * brings it down to threshold / 2 flushes the batch at once and goes back
 * (the hysteresis keeps a room hovering at the threshold from switching
 * on every join). The timer runs only while a batch is open: the first
 * join or leave after a quiet spell starts it, it sends and stops. Each
 * process counts and coalesces its own connections (with the Redis layer,
 * every process sends its own frames; `online` counts the sender's). */
typedef struct presence_room {
    struct presence_room *next; /* in its bucket */
    struct presence *owner;
    int64_t id;
    char group[40];
    size_t online;
    bool coalesced;
    chanc_timer_t *timer; /* while a batch is open */
    uint64_t batch;       /* batches sent so far */
    size_t joined_count, left_count, njoined, nleft;
    char *joined[CHAT_PRESENCE_LIST_MAX]; /* NULL: came and went */
    char *left[CHAT_PRESENCE_LIST_MAX];
} presence_room_t;

#define PRESENCE_BUCKETS 256
typedef struct presence {
    chanc_app_t *app;
    size_t threshold;
    uint32_t interval_ms;
    bool stopped; /* the app is going: no timers, no frames */
    size_t nrooms;
    presence_room_t *bucket[PRESENCE_BUCKETS];
} presence_t;

static presence_room_t *presence_room(presence_t *p, int64_t id) {
    presence_room_t **b = &p->bucket[(uint64_t)id % PRESENCE_BUCKETS];
    for (presence_room_t *r = *b; r; r = r->next)
        if (r->id == id)
            return r;
    presence_room_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->owner = p;
    r->id = id;
    snprintf(r->group, sizeof r->group, "chat_room_%lld", (long long)id);
    r->next = *b;
    *b = r;
    p->nrooms++;
    return r;
}

static void batch_clear(presence_room_t *r) {
    for (size_t i = 0; i < r->njoined; i++)
        free(r->joined[i]);
    for (size_t i = 0; i < r->nleft; i++)
        free(r->left[i]);
    r->joined_count = r->left_count = r->njoined = r->nleft = 0;
    r->batch++;
}

/* A room nobody is in and nothing is owed to goes; the table goes with
 * its last room once the app has stopped it. */
static void presence_room_release(presence_room_t *r) {
    presence_t *p = r->owner;
    if (r->online || r->timer || r->joined_count || r->left_count)
        return;
    presence_room_t **b = &p->bucket[(uint64_t)r->id % PRESENCE_BUCKETS];
    while (*b != r)
        b = &(*b)->next;
    *b = r->next;
    batch_clear(r);
    free(r);
    if (--p->nrooms == 0 && p->stopped)
        free(p);
}

static json_t *names(char *const *list, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (list[i])
            json_array_append_new(a, json_string(list[i]));
    return a;
}

/* The batch as one frame to the room's group: encoded once, every member
 * gets the same bytes. Nothing when the batch cancelled out. */
static void presence_flush(presence_room_t *r) {
    chanc_timer_cancel(r->timer);
    r->timer = NULL;
    if (!r->joined_count && !r->left_count) {
        r->batch++;
        return;
    }
    json_t *frame = json_pack("{s:s,s:{s:o,s:o,s:I,s:I,s:I}}", "action", "presence", "payload",
                              "joined", names(r->joined, r->njoined), "left",
                              names(r->left, r->nleft), "joined_count",
                              (json_int_t)r->joined_count, "left_count",
                              (json_int_t)r->left_count, "online", (json_int_t)r->online);
    batch_clear(r);
    int rc = frame ? chanc_app_group_send(r->owner->app, r->group, frame) : CHANC_ENOMEM;
    if (rc < 0)
        chanc_log(CHANC_LOG_ERROR, "chat: presence of room %lld not sent: %s", (long long)r->id,
                  chanc_strerror(rc));
}

static void presence_due(void *arg) {
    presence_room_t *r = arg;
    r->timer = NULL;
    presence_flush(r);
    presence_room_release(r);
}

/* A join or leave into the open batch (starting it). */
static int batch_add(presence_room_t *r, bool join, const char *username, int *slot) {
    char **list = join ? r->joined : r->left;
    size_t *n = join ? &r->njoined : &r->nleft;
    *slot = -1;
    if (!r->timer &&
        !(r->timer = chanc_app_timer_start(r->owner->app, r->owner->interval_ms, presence_due, r)))
        return CHANC_ENOMEM;
    if (*n < CHAT_PRESENCE_LIST_MAX) { /* past it: counted, not named */
        if (!(list[*n] = strdup(username)))
            return CHANC_ENOMEM;
        *slot = (int)(*n)++;
    }
    if (join)
        r->joined_count++;
    else
        r->left_count++;
    return 0;
}

/* c has joined its room (in its groups): announce it. */
static int presence_join(chanc_conn_t *c, const conn_room_t *room) {
    chat_conn_t *cs = chanc_conn_state(c);
    presence_t *p = ((const chat_route_t *)chanc_conn_route_data(c))->presence;
    presence_room_t *r = presence_room(p, room->id);
    if (!r)
        return CHANC_ENOMEM;
    if (!r->coalesced && r->online + 1 > p->threshold)
        r->coalesced = true;
    int rc;
    if (r->coalesced) {
        uint64_t batch = r->batch;
        rc = batch_add(r, true, chanc_conn_username(c), &cs->joined_slot);
        if (rc == 0)
            cs->joined_batch = batch + 1;
    } else {
        rc = chanc_conn_group_send_message(c, cs->group, &chat_msg_user_joined,
                                           presence(c, room), 0);
    }
    if (rc < 0) {
        presence_room_release(r);
        return rc;
    }
    r->online++;
    cs->room = r;
    cs->announced = true;
    return 0;
}

/* c, announced, has closed: tell the others. */
static void presence_leave(chanc_conn_t *c, const conn_room_t *room) {
    chat_conn_t *cs = chanc_conn_state(c);
    presence_room_t *r = cs->room;
    presence_t *p = r->owner;
    r->online--;
    if (p->stopped) {
        /* the app is going: nobody to tell */
    } else if (!r->coalesced) {
        json_t *who = presence(c, room);
        if (who)
            chanc_conn_group_send_message(c, cs->group, &chat_msg_user_left, who,
                                          CHANC_EXCLUDE_CURRENT);
        else /* out of memory: the framework closes the members (1011), who would miss it */
            chanc_conn_group_send(c, cs->group, NULL, CHANC_EXCLUDE_CURRENT);
    } else {
        if (cs->joined_batch == r->batch + 1) { /* came and went within the interval */
            r->joined_count--;
            if (cs->joined_slot >= 0) {
                free(r->joined[cs->joined_slot]);
                r->joined[cs->joined_slot] = NULL;
            }
        } else {
            int slot;
            if (batch_add(r, false, chanc_conn_username(c), &slot) < 0)
                chanc_log(CHANC_LOG_ERROR, "chat: out of memory: a leave from room %lld unsaid",
                          (long long)r->id);
        }
        if (r->online <= p->threshold / 2) { /* small again: the seed's frames from now on */
            presence_flush(r);
            r->coalesced = false;
        }
    }
    presence_room_release(r);
}

static presence_t *presence_create(chanc_app_t *app, const chat_options_t *opt) {
    presence_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->app = app;
    p->threshold = opt && opt->presence_threshold ? opt->presence_threshold
                                                  : CHAT_PRESENCE_THRESHOLD;
    p->interval_ms = opt && opt->presence_interval_ms ? opt->presence_interval_ms
                                                      : CHAT_PRESENCE_INTERVAL_MS;
    return p;
}

/* At the app's destroy: timers cancelled, batches dropped; rooms with
 * connections still open go when those close. */
static void presence_stop(presence_t *p) {
    p->stopped = true;
    for (size_t i = 0; i < PRESENCE_BUCKETS; i++)
        for (presence_room_t *r = p->bucket[i], *next; r; r = next) {
            next = r->next;
            chanc_timer_cancel(r->timer);
            r->timer = NULL;
            batch_clear(r);
            presence_room_release(r);
        }
    if (p->nrooms == 0)
        free(p);
}

/* ---- before authentication: one job for every lookup --------------------------- */

static void resume_connect(void *arg) { chanc_conn_resume(arg, 0); }

static void connect_done(chat_job_t *j) {
    chanc_conn_t *c = j->conn;
    chat_conn_t *cs = chanc_conn_state(c);
    cs->pre = (chat_connect_job_t *)j; /* read by the hooks below, freed by dispose */
    /* Join after the group deliveries already queued: the messages
     * committed before the history was read are in it, and their
     * broadcasts (queued by the jobs done before this one) must not reach
     * the joiner a second time. The commits after it are broadcast after
     * the join. */
    if (chanc_app_call_soon(chanc_conn_app(c), resume_connect, c) < 0)
        chanc_conn_resume(c, CHANC_ENOMEM);
}

static int chat_prepare(chanc_conn_t *c) {
    chat_connect_job_t *j = calloc(1, sizeof *j);
    if (!j)
        return CHANC_ENOMEM;
    j->h.kind = CHAT_JOB_CONNECT;
    j->h.conn = c;
    j->h.now_ms = chanc_app_wall_ms(chanc_conn_app(c));
    j->h.done = connect_done;
    ((chat_conn_t *)chanc_conn_state(c))->ends_seen = ended_seq;
    /* absent or too long to be ours: anonymous */
    const chat_route_t *route = chanc_conn_route_data(c);
    j->has_token = chanc_conn_cookie(c, route->cookie, j->token, sizeof j->token) >= 0;
    /* out of range: no such room */
    j->has_room = chanc_conn_param_int(c, "pk", &j->room_pk) == 0;
    chanc_conn_defer(c);
    chat_worker_submit(worker_of(c), &j->h);
    return 0;
}

static void chat_dispose(chanc_conn_t *c, void *state) {
    (void)c;
    chat_conn_t *cs = state;
    chanc_timer_cancel(cs->expiry);
    if (cs->pre) {
        json_decref(cs->pre->history);
        free(cs->pre);
    }
}

/* ---- authentication and permissions ---------------------------------------- */

static int session_auth(chanc_conn_t *c, void *ud, chanc_status_t *st) {
    (void)ud;
    (void)st;
    chat_conn_t *cs = chanc_conn_state(c);
    const chat_connect_job_t *pre = cs->pre;
    if (pre->session_rc == CHANC_ENOTFOUND)
        return CHANC_AUTH_SKIP; /* no cookie, unknown or expired: anonymous, as Django does */
    if (pre->session_rc < 0) {
        chanc_log(CHANC_LOG_ERROR, "chat: session lookup failed: %s",
                  chanc_strerror(pre->session_rc));
        return CHANC_AUTH_SKIP;
    }
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)pre->user.id);
    if (chanc_conn_set_user(c, id, pre->user.username, NULL, NULL) < 0)
        return CHANC_AUTH_SKIP;
    cs->user_id = pre->user.id;
    memcpy(cs->token, pre->token, sizeof cs->token);
    chat_session_group(cs->token, cs->session_group);
    cs->session_expires_ms = pre->expires_ms;
    cs->session_checked_ms = pre->h.now_ms; /* just checked */
    return CHANC_AUTH_OK;
}

static const chanc_authenticator_t chat_session_auth = {.name = "session",
                                                        .authenticate = session_auth};

static int room_lookup(chanc_conn_t *c, void **obj) {
    const chat_connect_job_t *pre = ((chat_conn_t *)chanc_conn_state(c))->pre;
    if (pre->room_rc < 0)
        return pre->room_rc; /* ENOTFOUND: 404, anything else: 500 */
    size_t n = strlen(pre->room.name);
    conn_room_t *room = malloc(sizeof *room + n + 1);
    if (!room)
        return CHANC_ENOMEM;
    room->id = pre->room.id;
    memcpy(room->name, pre->room.name, n + 1);
    *obj = room;
    return 0;
}

static int is_member(chanc_conn_t *c, void *obj, chanc_status_t *st) {
    (void)obj;
    const chat_connect_job_t *pre = ((chat_conn_t *)chanc_conn_state(c))->pre;
    if (pre->member_rc < 0)
        return chanc_deny(st, 500, "Could not check room membership.");
    return pre->member ? 0 : chanc_deny(st, 403, "You are not a member of this room.");
}

static const chanc_permission_t chat_is_room_member = {.name = "is_chat_room_member",
                                                       .has_object_permission = is_member};

/* ---- lifecycle ---------------------------------------------------------------- */

static void end_session(chanc_conn_t *c, const char *detail, const char *reason);

/* Whether the session was ended in this process since prepare ran (its
 * lookups may have seen it still alive). Past ENDED_RING ends meanwhile it
 * cannot tell: the store is then asked again at the next frame. */
static bool ended_meanwhile(chat_conn_t *cs) {
    if (ended_seq - cs->ends_seen > ENDED_RING) {
        cs->session_checked_ms = 0; /* long ago */
        return false;
    }
    for (unsigned long i = cs->ends_seen; i != ended_seq; i++)
        if (strcmp(ended[i % ENDED_RING], cs->session_group) == 0)
            return true;
    return false;
}

static void session_expired(void *arg) {
    chanc_conn_t *c = arg;
    ((chat_conn_t *)chanc_conn_state(c))->expiry = NULL;
    if (!chanc_conn_is_closing(c))
        end_session(c, "Session expired.", "Session expired");
}

static int chat_build_groups(chanc_conn_t *c) {
    chat_conn_t *cs = chanc_conn_state(c);
    const conn_room_t *room = chanc_conn_object(c);
    snprintf(cs->group, sizeof cs->group, "chat_room_%lld", (long long)room->id);
    int rc = chanc_conn_group_add(c, cs->group);
    if (rc == 0)
        rc = chanc_conn_group_add(c, cs->session_group); /* for chat_session_end */
    if (rc < 0)
        return rc;
    if (ended_meanwhile(cs)) {
        end_session(c, "Logged out.", "Logged out"); /* post_authentication does not run */
        return 0;
    }
    /* The expiry, on the app's clock (a test's virtual clock moves it). */
    int64_t left = cs->session_expires_ms - chanc_app_wall_ms(chanc_conn_app(c));
    cs->expiry = chanc_app_timer_start(chanc_conn_app(c), left > 0 ? (uint64_t)left : 0,
                                       session_expired, c);
    return cs->expiry ? 0 : CHANC_ENOMEM;
}

static int chat_post_authentication(chanc_conn_t *c) {
    chat_conn_t *cs = chanc_conn_state(c);
    const conn_room_t *room = chanc_conn_object(c);
    int rc = presence_join(c, room);
    if (rc < 0)
        return rc;
    chat_connect_job_t *pre = cs->pre;
    cs->pre = NULL;
    rc = pre->history_rc;
    json_t *history = pre->history;
    free(pre);
    if (rc < 0) {
        chanc_log(CHANC_LOG_ERROR, "chat: reading the history of room %lld failed: %s",
                  (long long)room->id, chanc_strerror(rc));
        json_decref(history);
        return rc;
    }
    return chanc_conn_send(c, &chat_msg_history, history);
}

/* ---- commit latency ---------------------------------------------------------------- */

const uint32_t chat_commit_bucket_us[CHAT_COMMIT_BUCKETS] = {50,   100,  250,   500,   1000,
                                                              2500, 5000, 10000, 50000, 250000};
static chat_commit_stats_t commit_stats; /* loop thread only */

void chat_commit_stats(chat_commit_stats_t *out) { *out = commit_stats; }

static void commit_observe(uint64_t ns, bool ok) {
    size_t i = 0;
    while (i < CHAT_COMMIT_BUCKETS && ns > (uint64_t)chat_commit_bucket_us[i] * 1000u)
        i++;
    commit_stats.bucket[i]++;
    commit_stats.count++;
    commit_stats.sum_ns += ns;
    commit_stats.failed += !ok;
}

/* A session that ended while connected: a 401 authentication frame, then
 * close 4401. A logout ends it at once (chat_session_end: the
 * session_ended event); the expiry by the connection's timer, and it is
 * also checked exactly on every frame. As a fallback (a session deleted
 * by other means, an event lost while Redis was unreachable), the store is
 * asked again at most once a second per connection, by a frame's job,
 * since a lookup per frame would double a chat message's database work. */
#define SESSION_RECHECK_MS 1000

static void end_session(chanc_conn_t *c, const char *detail, const char *reason) {
    chat_conn_t *cs = chanc_conn_state(c);
    chanc_timer_cancel(cs->expiry);
    cs->expiry = NULL;
    chanc_log(CHANC_LOG_INFO, "chat: session of %s ended while connected (%s)",
              chanc_conn_username(c), reason);
    chanc_conn_send_json(c, json_pack("{s:s,s:{s:i,s:s,s:{s:s}}}", "action", "authentication",
                                      "payload", "status_code", 401, "status_text", "Unauthorized",
                                      "data", "detail", detail));
    chanc_conn_close(c, CHANC_CLOSE_UNAUTHORIZED, reason);
}

static int chat_receive_event(chanc_conn_t *c, const chanc_message_type_t *type,
                              const json_t *payload) {
    (void)payload;
    if (type == &chat_event_announcement) /* every member's page shows it */
        return chanc_conn_pass_event(c, &chat_msg_announcement);
    end_session(c, "Logged out.", "Logged out"); /* chat_event_session_ended */
    return 0;
}

int chat_announce(chanc_app_t *app, int64_t room_id, const char *message, const char *username,
                  int64_t ts_ms) {
    if (!app || !message || !username)
        return CHANC_EINVAL;
    char group[40], ts[32];
    snprintf(group, sizeof group, "chat_room_%lld", (long long)room_id);
    chanc_format_timestamp(ts_ms, ts);
    return chanc_app_group_event(app, group, &chat_event_announcement,
                                 json_pack("{s:s,s:s,s:s}", "message", message, "username",
                                           username, "timestamp", ts));
}

int chat_session_end(chanc_app_t *app, const char *token) {
    if (!app || !token)
        return CHANC_EINVAL;
    char *group = ended[ended_seq++ % ENDED_RING];
    chat_session_group(token, group);
    return chanc_app_group_event(app, group, &chat_event_session_ended, NULL);
}

/* The frame's job is back: the session verdict, the commit. */
static void frame_done(chat_job_t *j) {
    chat_frame_job_t *f = (chat_frame_job_t *)j;
    chanc_conn_t *c = j->conn;
    int rc = 0;
    if (f->has_message && f->session_ok) {
        commit_observe(f->commit_ns, f->msg.rc >= 0);
        commit_stats.transactions += f->first_in_commit;
    }
    if (!f->session_ok) {
        end_session(c, "Session expired.", "Session expired");
    } else if (!f->has_message) {
        rc = chanc_conn_reply(c, &chat_msg_pong, NULL); /* a ping that rechecked the session */
    } else if (f->msg.rc < 0) {
        rc = f->msg.rc; /* the sender gets the handler-error frame; nothing broadcast */
        chanc_log(CHANC_LOG_ERROR, "chat: storing a message in room %lld failed: %s",
                  (long long)f->msg.room_id, chanc_strerror(rc));
    } else {
        /* Committed: everyone in the room sees it, even if the sender has
         * gone meanwhile. */
        chat_conn_t *cs = chanc_conn_state(c);
        char ts[32];
        chanc_format_timestamp(f->msg.ts_ms, ts);
        json_t *out = json_pack("{s:s,s:s%,s:s,s:s}", "action", "chat", "payload", f->text,
                                f->msg.len, "username", chanc_conn_username(c), "timestamp", ts);
        rc = chanc_conn_group_send(c, cs->group, out, 0);
    }
    free(f);
    chanc_conn_resume(c, rc);
}

/* Where a frame stands before its work: 0 and *now, or 1 when the
 * session has expired (ended here: known without the store). */
static int session_live(chanc_conn_t *c, int64_t *now) {
    chat_conn_t *cs = chanc_conn_state(c);
    *now = chanc_app_wall_ms(chanc_conn_app(c));
    if (*now >= cs->session_expires_ms) {
        end_session(c, "Session expired.", "Session expired");
        return 1;
    }
    return 0;
}

/* A frame's job for the database thread: the message to commit (text,
 * or NULL for a ping) and the session recheck when one is due. The frame
 * is deferred until frame_done. */
static int submit_frame(chanc_conn_t *c, int64_t now, const json_t *text, bool recheck) {
    chat_conn_t *cs = chanc_conn_state(c);
    size_t len = text ? json_string_length(text) : 0;
    chat_frame_job_t *f = malloc(sizeof *f + len + 1);
    if (!f)
        return CHANC_ENOMEM;
    memset(f, 0, sizeof *f);
    f->h.kind = CHAT_JOB_FRAME;
    f->h.conn = c;
    f->h.now_ms = now;
    f->h.done = frame_done;
    if (recheck) {
        cs->session_checked_ms = now;
        f->check_session = true;
        memcpy(f->token, cs->token, sizeof f->token);
    }
    if (text) {
        memcpy(f->text, json_string_value(text), len + 1);
        f->has_message = true;
        f->msg = (chat_store_msg_t){.room_id = ((const conn_room_t *)chanc_conn_object(c))->id,
                                    .user_id = cs->user_id,
                                    .ts_ms = now,
                                    .text = f->text,
                                    .len = len};
    }
    chanc_conn_defer(c);
    chat_worker_submit(worker_of(c), &f->h);
    return 0;
}

static bool recheck_due(chanc_conn_t *c, int64_t now) {
    return now - ((chat_conn_t *)chanc_conn_state(c))->session_checked_ms >= SESSION_RECHECK_MS;
}

/* chat: committed on the database thread; no reply (the room's copy of
 * the message, the sender's included, is the answer). */
static int on_chat(chanc_conn_t *c, const json_t *payload, chanc_reply_t *reply) {
    (void)reply;
    int64_t now;
    if (session_live(c, &now))
        return 0;
    return submit_frame(c, now, payload, recheck_due(c, now));
}

/* ping: pong at once, or after the session recheck when one is due. */
static int on_ping(chanc_conn_t *c, const json_t *payload, chanc_reply_t *reply) {
    (void)payload;
    int64_t now;
    if (session_live(c, &now))
        return 0;
    if (recheck_due(c, now))
        return submit_frame(c, now, NULL, true);
    reply->type = &chat_msg_pong;
    return 0;
}

static const chanc_message_type_t *const chat_pong_reply[] = {&chat_msg_pong, NULL};
/* The incoming union is the table's types: chat, ping. */
static const chanc_action_t chat_actions[] = {
    {.type = &chat_msg_chat, .handle = on_chat},
    {.type = &chat_msg_ping, .handle = on_ping, .replies = chat_pong_reply},
    {0},
};

static void chat_disconnect(chanc_conn_t *c, int code) {
    (void)code;
    chat_conn_t *cs = chanc_conn_state(c);
    const conn_room_t *room = chanc_conn_object(c);
    if (!cs->announced)
        return; /* closed before its join was announced: nobody heard it come */
    presence_leave(c, room);
}

static const chanc_authenticator_t *const chat_auth[] = {&chat_session_auth, NULL};
static const chanc_permission_t *const chat_perms[] = {&chanc_is_authenticated,
                                                       &chat_is_room_member, NULL};

static const chanc_consumer_t chat_consumer = {
    .name = "chat",
    .actions = chat_actions,
    .outgoing = chat_outgoing,
    .authenticators = chat_auth,
    .permissions = chat_perms,
    .prepare = chat_prepare,
    .get_object = room_lookup,
    .free_object = free,
    .build_groups = chat_build_groups,
    .post_authentication = chat_post_authentication,
    .disconnect = chat_disconnect,
    .events = chat_events,
    .receive_event = chat_receive_event,
    .state_size = sizeof(chat_conn_t),
    .dispose_state = chat_dispose,
    .send_completion = true,
};

static void stop_worker(void *arg) {
    chat_route_t *r = arg;
    chat_worker_destroy(r->worker);
    presence_stop(r->presence);
    free(r);
}

int chat_register(chanc_app_t *app, chat_store_t *s) { return chat_register_with(app, s, NULL); }

int chat_register_with(chanc_app_t *app, chat_store_t *s, const chat_options_t *opt) {
    if (!app || !s)
        return CHANC_EINVAL;
    chat_route_t *r = calloc(1, sizeof *r);
    if (!r)
        return CHANC_ENOMEM;
    r->cookie = opt && opt->secure_cookies ? CHAT_SESSION_COOKIE_SECURE : CHAT_SESSION_COOKIE;
    if (!(r->presence = presence_create(app, opt))) {
        free(r);
        return CHANC_ENOMEM;
    }
    chanc_error_t err;
    r->worker = chat_worker_create(app, s, &err);
    if (!r->worker) {
        chanc_log(CHANC_LOG_ERROR, "chat: %s", err.text);
        presence_stop(r->presence);
        free(r);
        return err.code;
    }
    int rc = chanc_app_on_destroy(app, stop_worker, r);
    if (rc < 0) {
        chat_worker_destroy(r->worker);
        presence_stop(r->presence);
        free(r);
        return rc;
    }
    return chanc_app_route(app, "ws/chat/{pk:int}/", &chat_consumer, r);
}
