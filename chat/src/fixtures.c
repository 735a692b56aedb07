/* The JSON fixture loader: users, rooms (with members) and messages, in
 * one transaction. The format is documented in chanc/chat.h. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "chanc/chat.h"
#include "store_internal.h"

static bool is_leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

/* Parse exactly n decimal digits. */
static bool digits(const char *p, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return true;
}

/* Strict ISO 8601 UTC: YYYY-MM-DDTHH:MM:SS[.mmm]Z. */
static bool parse_timestamp(const char *str, int64_t *ms_out) {
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int year, mon, day, hour, min, sec, ms = 0;
    size_t n = strlen(str);
    if (n != 20 && n != 24)
        return false;
    if (!digits(str, 4, &year) || str[4] != '-' || !digits(str + 5, 2, &mon) || str[7] != '-' ||
        !digits(str + 8, 2, &day) || str[10] != 'T' || !digits(str + 11, 2, &hour) ||
        str[13] != ':' || !digits(str + 14, 2, &min) || str[16] != ':' ||
        !digits(str + 17, 2, &sec))
        return false;
    if (n == 24) {
        if (str[19] != '.' || !digits(str + 20, 3, &ms) || str[23] != 'Z')
            return false;
    } else if (str[19] != 'Z') {
        return false;
    }
    if (year < 1970 || mon < 1 || mon > 12 || day < 1 ||
        day > mdays[mon - 1] + (mon == 2 && is_leap(year)) || hour > 23 || min > 59 || sec > 59)
        return false;
    struct tm tm = {.tm_year = year - 1900,
                    .tm_mon = mon - 1,
                    .tm_mday = day,
                    .tm_hour = hour,
                    .tm_min = min,
                    .tm_sec = sec};
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return false;
    *ms_out = (int64_t)t * 1000 + ms;
    return true;
}

/* The members of an optional array; err names "what" on a wrong type. */
static int get_array(const json_t *fx, const char *key, const json_t **out, chanc_error_t *err) {
    const json_t *v = json_object_get(fx, key);
    if (v && !json_is_array(v))
        return chanc_error_set(err, CHANC_EINVAL, "%s: must be an array", key);
    *out = v;
    return 0;
}

static int load_users(chat_store_t *s, const json_t *users, chanc_error_t *err) {
    size_t i;
    const json_t *u;
    json_array_foreach(users, i, u) {
        const char *username = NULL, *password = NULL;
        int is_staff = 0;
        json_error_t je;
        if (json_unpack_ex((json_t *)u, &je, JSON_STRICT, "{s:s, s?s, s?b}", "username",
                           &username, "password", &password, "is_staff", &is_staff) != 0)
            return chanc_error_set(err, CHANC_EINVAL, "users[%zu]: %s", i, je.text);
        if (!chat_valid_username(username))
            return chanc_error_set(err, CHANC_EINVAL, "users[%zu]: invalid username '%.40s'", i,
                                   username);
        if (password && !*password)
            return chanc_error_set(err, CHANC_EINVAL, "users[%zu]: empty password for '%s'", i,
                                   username);
        int64_t id;
        int rc = chat_store__create_user_opt(s, username, password, &id);
        if (rc == 0 && is_staff)
            rc = chat_store_set_user_staff(s, id, true);
        if (rc == CHANC_EEXIST)
            return chanc_error_set(err, rc, "users[%zu]: user '%s' already exists", i, username);
        if (rc < 0)
            return chanc_error_set(err, rc, "users[%zu]: '%s': %s", i, username,
                                   rc == CHANC_EIO ? chat_store__errmsg(s) : chanc_strerror(rc));
    }
    return 0;
}

static int load_rooms(chat_store_t *s, const json_t *rooms, chanc_error_t *err) {
    size_t i;
    const json_t *r;
    json_array_foreach(rooms, i, r) {
        const char *name = NULL, *slug = NULL;
        json_t *members = NULL;
        int is_private = 0;
        json_error_t je;
        if (json_unpack_ex((json_t *)r, &je, JSON_STRICT, "{s:s, s:s, s?b, s?o}", "name", &name,
                           "slug", &slug, "private", &is_private, "members", &members) != 0)
            return chanc_error_set(err, CHANC_EINVAL, "rooms[%zu]: %s", i, je.text);
        if (members && !json_is_array(members))
            return chanc_error_set(err, CHANC_EINVAL, "rooms[%zu]: members must be an array", i);
        int64_t room_id;
        int rc = chat_store_create_room(s, name, slug, &room_id);
        if (rc == CHANC_EEXIST)
            return chanc_error_set(err, rc, "rooms[%zu]: slug '%s' already exists", i, slug);
        if (rc == CHANC_EINVAL)
            return chanc_error_set(err, rc, "rooms[%zu]: invalid name or slug '%.40s'", i, slug);
        if (rc == 0 && is_private)
            rc = chat_store_set_room_private(s, room_id, true);
        if (rc < 0)
            return chanc_error_set(err, rc, "rooms[%zu]: %s", i,
                                   rc == CHANC_EIO ? chat_store__errmsg(s) : chanc_strerror(rc));
        size_t k;
        const json_t *m;
        json_array_foreach(members, k, m) {
            const char *username = json_string_value(m);
            if (!username)
                return chanc_error_set(err, CHANC_EINVAL, "rooms[%zu].members[%zu]: not a string",
                                       i, k);
            chat_user_t user;
            rc = chat_store_get_user(s, username, &user);
            if (rc == CHANC_ENOTFOUND)
                return chanc_error_set(err, rc, "rooms[%zu].members[%zu]: unknown user '%.40s'",
                                       i, k, username);
            if (rc == 0)
                rc = chat_store_add_member(s, room_id, user.id);
            if (rc < 0)
                return chanc_error_set(err, rc, "rooms[%zu].members[%zu]: %s", i, k,
                                       chanc_strerror(rc));
        }
    }
    return 0;
}

static int load_messages(chat_store_t *s, const json_t *messages, chanc_error_t *err) {
    size_t i;
    const json_t *m;
    json_array_foreach(messages, i, m) {
        const char *slug = NULL, *username = NULL, *text = NULL, *ts = NULL;
        size_t text_len = 0;
        json_error_t je;
        if (json_unpack_ex((json_t *)m, &je, JSON_STRICT, "{s:s, s:s, s:s%, s?s}", "room", &slug,
                           "username", &username, "message", &text, &text_len, "timestamp",
                           &ts) != 0)
            return chanc_error_set(err, CHANC_EINVAL, "messages[%zu]: %s", i, je.text);
        chat_room_t room;
        int rc = chat_store_room_by_slug(s, slug, &room);
        if (rc == CHANC_ENOTFOUND)
            return chanc_error_set(err, rc, "messages[%zu]: unknown room '%.40s'", i, slug);
        if (rc < 0)
            return chanc_error_set(err, rc, "messages[%zu]: %s", i, chanc_strerror(rc));
        chat_user_t user;
        rc = chat_store_get_user(s, username, &user);
        if (rc == CHANC_ENOTFOUND)
            return chanc_error_set(err, rc, "messages[%zu]: unknown user '%.40s'", i, username);
        if (rc < 0)
            return chanc_error_set(err, rc, "messages[%zu]: %s", i, chanc_strerror(rc));
        int64_t ts_ms;
        if (!ts)
            ts_ms = chat_store_now_ms(s);
        else if (!parse_timestamp(ts, &ts_ms))
            return chanc_error_set(err, CHANC_EINVAL,
                                   "messages[%zu]: bad timestamp '%.40s' "
                                   "(want YYYY-MM-DDTHH:MM:SS[.mmm]Z)",
                                   i, ts);
        rc = chat_store_add_message(s, room.id, user.id, text, text_len, ts_ms, NULL);
        if (rc == CHANC_EINVAL)
            return chanc_error_set(err, rc, "messages[%zu]: message must be 1-%d characters", i,
                                   CHAT_MESSAGE_MAX);
        if (rc < 0)
            return chanc_error_set(err, rc, "messages[%zu]: %s", i,
                                   rc == CHANC_EIO ? chat_store__errmsg(s) : chanc_strerror(rc));
    }
    return 0;
}

int chat_store_load_fixtures_json(chat_store_t *s, const json_t *fx, chanc_error_t *err) {
    if (!s || !json_is_object(fx))
        return chanc_error_set(err, CHANC_EINVAL, "fixtures: must be a JSON object");
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)fx, key, v) {
        if (strcmp(key, "users") != 0 && strcmp(key, "rooms") != 0 && strcmp(key, "messages") != 0)
            return chanc_error_set(err, CHANC_EINVAL, "fixtures: unknown key '%.40s'", key);
    }
    const json_t *users = NULL, *rooms = NULL, *messages = NULL;
    int rc;
    if ((rc = get_array(fx, "users", &users, err)) < 0 ||
        (rc = get_array(fx, "rooms", &rooms, err)) < 0 ||
        (rc = get_array(fx, "messages", &messages, err)) < 0)
        return rc;

    if ((rc = chat_store__tx_begin(s)) < 0)
        return chanc_error_set(err, rc, "fixtures: cannot begin a transaction: %s",
                               chat_store__errmsg(s));
    if ((rc = load_users(s, users, err)) == 0 && (rc = load_rooms(s, rooms, err)) == 0 &&
        (rc = load_messages(s, messages, err)) == 0) {
        rc = chat_store__tx_commit(s);
        if (rc < 0)
            chanc_error_set(err, rc, "fixtures: commit: %s", chat_store__errmsg(s));
    }
    if (rc < 0)
        chat_store__tx_rollback(s);
    return rc;
}

int chat_store_load_fixtures(chat_store_t *s, const char *path, chanc_error_t *err) {
    if (!s || !path)
        return chanc_error_set(err, CHANC_EINVAL, "fixtures: path required");
    json_error_t je;
    json_t *fx = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!fx) {
        if (json_error_code(&je) == json_error_cannot_open_file)
            return chanc_error_set(err, CHANC_EIO, "%s: %s", path, je.text);
        return chanc_error_set(err, CHANC_EINVAL, "%s:%d:%d: %s", path, je.line, je.column,
                               je.text);
    }
    chanc_error_t inner = {0};
    int rc = chat_store_load_fixtures_json(s, fx, &inner);
    json_decref(fx);
    if (rc < 0)
        chanc_error_set(err, rc, "%s: %s", path, inner.text);
    return rc;
}
