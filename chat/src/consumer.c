/* The chat consumer: route ws/chat/{pk:int}/.
 *
 * session cookie → is_authenticated → room by pk (404) → member of the
 * room (403) → group chat_room_<id> → user_joined to the group (joiner
 * included) and the last 50 messages to the joiner as `history`.
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
};
const chanc_message_type_t chat_msg_ping = {.action = "ping"};
const chanc_message_type_t chat_msg_pong = {.action = "pong"};
const chanc_message_type_t chat_msg_user_joined = {
    .action = "user_joined",
    .payload = CHANC_OBJECT(CHANC_FIELD("username", CHANC_STRING()),
                            CHANC_FIELD("room_name", CHANC_STRING()),
                            CHANC_FIELD("timestamp", CHANC_STRING())),
};
const chanc_message_type_t chat_msg_user_left = {
    .action = "user_left",
    .payload = CHANC_OBJECT(CHANC_FIELD("username", CHANC_STRING()),
                            CHANC_FIELD("room_name", CHANC_STRING()),
                            CHANC_FIELD("timestamp", CHANC_STRING())),
};
const chanc_message_type_t chat_msg_history = {
    .action = "history",
    .payload = CHANC_ARRAY(CHANC_OBJECT(CHANC_FIELD("username", CHANC_STRING()),
                                        CHANC_FIELD("message", CHANC_STRING()),
                                        CHANC_FIELD("timestamp", CHANC_STRING()))),
};

static const chanc_message_type_t *const chat_incoming[] = {&chat_msg_chat, &chat_msg_ping, NULL};

/* ---- per-connection state -------------------------------------------------- */

typedef struct chat_conn {
    int64_t user_id;
    char group[40]; /* chat_room_<id> */
    char token[CHAT_SESSION_TOKEN_LEN + 1]; /* the session it authenticated with */
    int64_t session_expires_ms;             /* when it expires (app wall time) */
    int64_t session_checked_ms;             /* the last look in the store */
    chat_connect_job_t *pre; /* prepare's lookups, until post_authentication */
} chat_conn_t;

/* The route's data: the database thread the consumer's store calls run
 * on, and the session cookie's name. */
typedef struct chat_route {
    chat_worker_t *worker;
    const char *cookie;
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
    if (chanc_app_defer(chanc_conn_app(c), resume_connect, c) < 0)
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

static int chat_build_groups(chanc_conn_t *c) {
    chat_conn_t *cs = chanc_conn_state(c);
    const conn_room_t *room = chanc_conn_object(c);
    snprintf(cs->group, sizeof cs->group, "chat_room_%lld", (long long)room->id);
    return chanc_conn_group_add(c, cs->group);
}

static int chat_post_authentication(chanc_conn_t *c) {
    chat_conn_t *cs = chanc_conn_state(c);
    const conn_room_t *room = chanc_conn_object(c);
    int rc = chanc_conn_group_send_message(c, cs->group, &chat_msg_user_joined,
                                           presence(c, room), 0);
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

/* A session that expired (or was logged out) while connected: the frame
 * is refused with a 401 authentication frame and the connection closed
 * with 4401. The expiry is known from authentication and checked exactly
 * on every frame; the store is asked again (has it been deleted: a
 * logout?) at most once a second per connection, by the frame's job, since
 * a lookup per frame would double a chat message's database work. */
#define SESSION_RECHECK_MS 1000

static void end_session(chanc_conn_t *c) {
    chanc_log(CHANC_LOG_INFO, "chat: session of %s ended while connected", chanc_conn_username(c));
    chanc_conn_send_json(c, json_pack("{s:s,s:{s:i,s:s,s:{s:s}}}", "action", "authentication",
                                      "payload", "status_code", 401, "status_text", "Unauthorized",
                                      "data", "detail", "Session expired."));
    chanc_conn_close(c, CHANC_CLOSE_UNAUTHORIZED, "Session expired");
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
        end_session(c);
    } else if (!f->has_message) {
        rc = chanc_conn_send(c, &chat_msg_pong, NULL);
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

static int chat_receive(chanc_conn_t *c, const chanc_message_type_t *type, const json_t *payload,
                        const json_t *frame) {
    (void)frame;
    chat_conn_t *cs = chanc_conn_state(c);
    int64_t now = chanc_app_wall_ms(chanc_conn_app(c));
    if (now >= cs->session_expires_ms) {
        end_session(c); /* expired: known without asking the store */
        return 0;
    }
    bool recheck = now - cs->session_checked_ms >= SESSION_RECHECK_MS;
    bool chat = type == &chat_msg_chat;
    if (!chat && !recheck)
        return chanc_conn_send(c, &chat_msg_pong, NULL);

    size_t len = chat ? json_string_length(payload) : 0;
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
    if (chat) {
        memcpy(f->text, json_string_value(payload), len + 1);
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

static void chat_disconnect(chanc_conn_t *c, int code) {
    (void)code;
    chat_conn_t *cs = chanc_conn_state(c);
    const conn_room_t *room = chanc_conn_object(c);
    chanc_conn_group_send_message(c, cs->group, &chat_msg_user_left, presence(c, room),
                                  CHANC_EXCLUDE_CURRENT);
}

static const chanc_authenticator_t *const chat_auth[] = {&chat_session_auth, NULL};
static const chanc_permission_t *const chat_perms[] = {&chanc_is_authenticated,
                                                       &chat_is_room_member, NULL};

static const chanc_consumer_t chat_consumer = {
    .name = "chat",
    .incoming = chat_incoming,
    .authenticators = chat_auth,
    .permissions = chat_perms,
    .prepare = chat_prepare,
    .get_object = room_lookup,
    .free_object = free,
    .build_groups = chat_build_groups,
    .post_authentication = chat_post_authentication,
    .receive_message = chat_receive,
    .disconnect = chat_disconnect,
    .state_size = sizeof(chat_conn_t),
    .dispose_state = chat_dispose,
    .send_completion = true,
};

static void stop_worker(void *arg) {
    chat_route_t *r = arg;
    chat_worker_destroy(r->worker);
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
    chanc_error_t err;
    r->worker = chat_worker_create(app, s, &err);
    if (!r->worker) {
        chanc_log(CHANC_LOG_ERROR, "chat: %s", err.text);
        free(r);
        return err.code;
    }
    int rc = chanc_app_on_destroy(app, stop_worker, r);
    if (rc < 0) {
        chat_worker_destroy(r->worker);
        free(r);
        return rc;
    }
    return chanc_app_route(app, "ws/chat/{pk:int}/", &chat_consumer, r);
}
