/* The chat consumer: route ws/chat/{pk:int}/.
 *
 * session cookie → is_authenticated → room by pk (404) → member of the
 * room (403) → group chat_room_<id> → user_joined to the group (joiner
 * included) and the last 50 messages to the joiner as `history`.
 * Incoming chat is committed to the store before receive_message returns,
 * so the framework's `complete` always follows the commit; then it goes to
 * the group once, encoded once, with is_mine/is_current per recipient. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chanc/chat.h"

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
} chat_conn_t;

static chat_store_t *store_of(const chanc_conn_t *c) { return chanc_conn_route_data(c); }

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

/* ---- authentication and permissions ---------------------------------------- */

static int session_auth(chanc_conn_t *c, void *ud, chanc_status_t *st) {
    (void)ud;
    (void)st;
    char token[CHAT_SESSION_TOKEN_LEN + 1];
    if (chanc_conn_cookie(c, "sessionid", token, sizeof token) < 0)
        return CHANC_AUTH_SKIP; /* absent or too long to be ours */
    chat_user_t u;
    int64_t expires = 0;
    int rc = chat_store_session_user_until(store_of(c), token, &u, &expires);
    if (rc == CHANC_ENOTFOUND)
        return CHANC_AUTH_SKIP; /* unknown or expired: anonymous, as Django does */
    if (rc < 0) {
        chanc_log(CHANC_LOG_ERROR, "chat: session lookup failed: %s", chanc_strerror(rc));
        return CHANC_AUTH_SKIP;
    }
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)u.id);
    if (chanc_conn_set_user(c, id, u.username, NULL, NULL) < 0)
        return CHANC_AUTH_SKIP;
    chat_conn_t *cs = chanc_conn_state(c);
    cs->user_id = u.id;
    memcpy(cs->token, token, sizeof cs->token);
    cs->session_expires_ms = expires;
    cs->session_checked_ms = chanc_app_wall_ms(chanc_conn_app(c)); /* just checked */
    return CHANC_AUTH_OK;
}

static const chanc_authenticator_t chat_session_auth = {.name = "session",
                                                        .authenticate = session_auth};

static int room_lookup(chanc_conn_t *c, void **obj) {
    int64_t pk;
    if (chanc_conn_param_int(c, "pk", &pk) < 0)
        return CHANC_ENOTFOUND; /* out of range: no such room */
    chat_room_t found;
    int rc = chat_store_get_room(store_of(c), pk, &found);
    if (rc < 0)
        return rc;
    size_t n = strlen(found.name);
    conn_room_t *room = malloc(sizeof *room + n + 1);
    if (!room)
        return CHANC_ENOMEM;
    room->id = found.id;
    memcpy(room->name, found.name, n + 1);
    *obj = room;
    return 0;
}

static int is_member(chanc_conn_t *c, void *obj, chanc_status_t *st) {
    const conn_room_t *room = obj;
    bool member = false;
    int rc = chat_store_is_member(store_of(c), room->id,
                                  ((chat_conn_t *)chanc_conn_state(c))->user_id, &member);
    if (rc < 0)
        return chanc_deny(st, 500, "Could not check room membership.");
    return member ? 0 : chanc_deny(st, 403, "You are not a member of this room.");
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
    json_t *history = NULL;
    rc = chat_store_history(store_of(c), room->id, CHAT_HISTORY_LIMIT, &history);
    if (rc < 0)
        return rc;
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
 * logout?) at most once a second per connection, since a lookup per frame
 * would double a chat message's database work. */
#define SESSION_RECHECK_MS 1000
static bool session_ended(chanc_conn_t *c) {
    chat_conn_t *cs = chanc_conn_state(c);
    int64_t now = chanc_app_wall_ms(chanc_conn_app(c));
    if (now < cs->session_expires_ms && now - cs->session_checked_ms < SESSION_RECHECK_MS)
        return false;
    cs->session_checked_ms = now;
    chat_user_t u;
    if (now < cs->session_expires_ms &&
        chat_store_session_user(store_of(c), cs->token, &u) != CHANC_ENOTFOUND)
        return false;
    chanc_log(CHANC_LOG_INFO, "chat: session of %s ended while connected", chanc_conn_username(c));
    chanc_conn_send_json(c, json_pack("{s:s,s:{s:i,s:s,s:{s:s}}}", "action", "authentication",
                                      "payload", "status_code", 401, "status_text", "Unauthorized",
                                      "data", "detail", "Session expired."));
    chanc_conn_close(c, CHANC_CLOSE_UNAUTHORIZED, "Session expired");
    return true;
}

static int chat_receive(chanc_conn_t *c, const chanc_message_type_t *type, const json_t *payload,
                        const json_t *frame) {
    (void)frame;
    if (session_ended(c))
        return 0;
    if (type == &chat_msg_ping)
        return chanc_conn_send(c, &chat_msg_pong, NULL);

    chat_conn_t *cs = chanc_conn_state(c);
    const conn_room_t *room = chanc_conn_object(c);
    int64_t now = chanc_app_wall_ms(chanc_conn_app(c));
    uint64_t t0 = uv_hrtime();
    int rc = chat_store_add_message(store_of(c), room->id, cs->user_id, json_string_value(payload),
                                    json_string_length(payload), now, NULL);
    commit_observe(uv_hrtime() - t0, rc >= 0);
    if (rc < 0) {
        chanc_log(CHANC_LOG_ERROR, "chat: storing a message in room %lld failed: %s",
                  (long long)room->id, chanc_strerror(rc));
        return rc; /* the sender gets the handler-error frame; nothing broadcast */
    }
    char ts[32];
    chanc_format_timestamp(now, ts);
    json_t *out = json_pack("{s:s,s:O,s:s,s:s}", "action", "chat", "payload", payload, "username",
                            chanc_conn_username(c), "timestamp", ts);
    return chanc_conn_group_send(c, cs->group, out, 0);
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
    .get_object = room_lookup,
    .free_object = free,
    .build_groups = chat_build_groups,
    .post_authentication = chat_post_authentication,
    .receive_message = chat_receive,
    .disconnect = chat_disconnect,
    .state_size = sizeof(chat_conn_t),
    .send_completion = true,
};

int chat_register(chanc_app_t *app, chat_store_t *s) {
    if (!app || !s)
        return CHANC_EINVAL;
    return chanc_app_route(app, "ws/chat/{pk:int}/", &chat_consumer, s);
}
