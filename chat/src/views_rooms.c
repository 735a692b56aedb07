/* The rooms: GET / (the list), GET /chat/{id}/ (a room's page), POST
 * /chat/{id}/join and /chat/{id}/members (views_internal.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "views_internal.h"

static void rooms_run(chat_store_t *s, chat_call_job_t *c) {
    chat_view_job_t *j = (chat_view_job_t *)c;
    chat_view_job_session(s, j);
    if (j->logged_in) /* the public rooms and the user's private ones */
        j->rc = chat_store_list_rooms_for(s, j->user.id, &j->rooms);
}

static int rooms_answer(chat_view_job_t *j, chanc_http_response_t *r) {
    if (!j->logged_in)
        return chat_views__redirect(r, "/login?next=/");
    if (j->rc < 0)
        return j->rc;
    chat_sbuf_t items = {0};
    size_t i;
    json_t *room;
    json_array_foreach(j->rooms, i, room) {
        char href[64];
        snprintf(href, sizeof href, "/chat/%lld/",
                 (long long)json_integer_value(json_object_get(room, "id")));
        bool priv = json_is_true(json_object_get(room, "private"));
        bool member = json_is_true(json_object_get(room, "member"));
        chat_sb_str(&items, priv ? "<li class=\"room private\"" : "<li class=\"room\"");
        chat_sb_str(&items, member ? " data-member=\"true\"><a href=\""
                                   : " data-member=\"false\"><a href=\"");
        chat_sb_str(&items, href);
        chat_sb_str(&items, "\">");
        chat_sb_html(&items, json_string_value(json_object_get(room, "name")));
        chat_sb_str(&items, "</a>");
        if (priv)
            chat_sb_str(&items, " <span class=\"room-tag\">private</span>");
        else if (!member)
            chat_sb_str(&items, " <span class=\"room-tag\">not joined</span>");
        chat_sb_str(&items, "</li>\n");
    }
    if (items.oom) {
        free(items.p);
        return CHANC_ENOMEM;
    }
    const char *vars[] = {"username", j->user.username, "!rooms", items.p ? items.p : "", NULL};
    int rc = chat_http_render(r, 200, "rooms.html", vars);
    free(items.p);
    return rc;
}

int chat_views__rooms(chat_views_t *v, const chanc_http_request_t *req, chanc_http_response_t *r) {
    chat_view_job_t *j = chat_view_job_new(rooms_run, rooms_answer, "GET /");
    if (!j)
        return CHANC_ENOMEM;
    j->has_token = chat_views__cookie_token(v, req, j->token);
    return chat_view_job_run(v, req, j, j->has_token, r);
}

/* The logged-in user, the room and whether the user may see it (a private
 * room exists only for its members). Store calls; false when anonymous
 * (and nothing else was asked). */
bool chat_view_job_room(chat_store_t *s, chat_view_job_t *j) {
    chat_view_job_session(s, j);
    if (!j->logged_in)
        return false;
    j->rc = chat_store_get_room(s, j->room_id, &j->room);
    if (j->rc == 0)
        j->member_rc = chat_store_is_member(s, j->room.id, j->user.id, &j->member);
    if (j->rc == 0 && j->member_rc == 0 && j->room.is_private && !j->member)
        j->rc = CHANC_ENOTFOUND; /* not revealed */
    return true;
}

/* A private room's page lists its members (at most this many). */
#define PAGE_MEMBERS_MAX 100

static void job_members(chat_store_t *s, chat_view_job_t *j) {
    if (j->rc == 0 && j->member_rc == 0 && j->member && j->room.is_private)
        j->member_rc = chat_store_room_members(s, j->room.id, PAGE_MEMBERS_MAX, &j->members);
}

static void room_run(chat_store_t *s, chat_call_job_t *c) {
    chat_view_job_t *j = (chat_view_job_t *)c;
    if (chat_view_job_room(s, j))
        job_members(s, j);
}

static int to_login(const chat_view_job_t *j, chanc_http_response_t *r) {
    char login[96];
    snprintf(login, sizeof login, "/login?next=/chat/%lld/", (long long)j->room_id);
    return chat_views__redirect(r, login);
}

static int to_room(const chat_view_job_t *j, chanc_http_response_t *r) {
    char page[64];
    snprintf(page, sizeof page, "/chat/%lld/", (long long)j->room.id);
    return chat_views__redirect(r, page);
}

/* The answer when nobody is logged in (to the login page), the user may
 * not see the room, or a store call failed; 0 when the page may be built. */
static int room_refused(chat_view_job_t *j, chanc_http_response_t *r, bool *done) {
    *done = true;
    if (!j->logged_in)
        return to_login(j, r);
    if (j->rc == CHANC_ENOTFOUND) /* missing, or private and not ours: the same answer */
        return chat_http_respond_text(r, 404, "Not Found: no such room");
    if (j->rc < 0)
        return j->rc;
    if (j->member_rc < 0)
        return j->member_rc;
    *done = false;
    return 0;
}

/* The room page for a member, with a private room's members and its
 * "Invite" form (invite_error: shown under the form). */
static int room_page(chat_view_job_t *j, chanc_http_response_t *r, int status,
                     const char *invite_error) {
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)j->room.id);
    chat_sbuf_t extra = {0};
    if (j->room.is_private) {
        chat_sb_str(&extra, "<section id=\"members\" class=\"members\" aria-label=\"Members\">\n"
                            "  <h2>Members</h2>\n  <ul id=\"member-list\">");
        size_t i;
        json_t *m;
        json_array_foreach(j->members, i, m) {
            chat_sb_str(&extra, "<li>");
            chat_sb_html(&extra, json_string_value(m));
            chat_sb_str(&extra, "</li>");
        }
        chat_sb_str(&extra, "</ul>\n  <form id=\"invite-form\" method=\"post\" action=\"/chat/");
        chat_sb_str(&extra, id);
        chat_sb_str(&extra, "/members\" autocomplete=\"off\">\n"
                            "    <input name=\"username\" type=\"text\" maxlength=\"150\" required "
                            "placeholder=\"Username\" aria-label=\"Username to invite\" "
                            "autocapitalize=\"none\" spellcheck=\"false\">\n"
                            "    <button type=\"submit\">Invite</button>\n  </form>\n"
                            "  <p id=\"invite-error\" class=\"form-error\" role=\"alert\">");
        chat_sb_html(&extra, invite_error ? invite_error : "");
        chat_sb_str(&extra, "</p>\n</section>\n");
    }
    if (extra.oom) {
        free(extra.p);
        return CHANC_ENOMEM;
    }
    const char *vars[] = {"room_id", id, "room_name", j->room.name, "username", j->user.username,
                          "!members", extra.p ? extra.p : "", NULL};
    int rc = chat_http_render(r, status, "room.html", vars);
    free(extra.p);
    return rc;
}

static int room_answer(chat_view_job_t *j, chanc_http_response_t *r) {
    bool done;
    int rc = room_refused(j, r, &done);
    if (done)
        return rc;
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)j->room.id);
    if (!j->member) { /* a public room: joining is a POST from this page */
        const char *vars[] = {"room_id", id, "room_name", j->room.name, "username",
                              j->user.username, NULL};
        return chat_http_render(r, 200, "join.html", vars);
    }
    return room_page(j, r, 200, NULL);
}

int chat_views__room(chat_views_t *v, const chanc_http_request_t *req, chanc_http_response_t *r,
                     int64_t room_id) {
    chat_view_job_t *j = chat_view_job_new(room_run, room_answer, "GET /chat/{id}/");
    if (!j)
        return CHANC_ENOMEM;
    j->room_id = room_id;
    j->has_token = chat_views__cookie_token(v, req, j->token);
    return chat_view_job_run(v, req, j, j->has_token, r);
}

/* POST /chat/{id}/join: a public room adds the user (idempotent). */
static void join_run(chat_store_t *s, chat_call_job_t *c) {
    chat_view_job_t *j = (chat_view_job_t *)c;
    if (chat_view_job_room(s, j) && j->rc == 0 && j->member_rc == 0 && !j->member)
        j->member_rc = chat_store_add_member(s, j->room.id, j->user.id);
}

static int join_answer(chat_view_job_t *j, chanc_http_response_t *r) {
    bool done;
    int rc = room_refused(j, r, &done);
    return done ? rc : to_room(j, r);
}

/* POST /chat/{id}/members, username=…: a member of a private room adds
 * that user to it (idempotent). */
static void invite_run(chat_store_t *s, chat_call_job_t *c) {
    chat_view_job_t *j = (chat_view_job_t *)c;
    if (!chat_view_job_room(s, j) || j->rc < 0 || j->member_rc < 0 || !j->room.is_private)
        return;
    chat_user_t invitee;
    j->invite_rc = j->invitee[0] ? chat_store_get_user(s, j->invitee, &invitee) : CHANC_EINVAL;
    if (j->invite_rc == 0)
        j->invite_rc = chat_store_add_member(s, j->room.id, invitee.id);
    if (j->invite_rc < 0) /* the page again, with the error */
        job_members(s, j);
}

static int invite_answer(chat_view_job_t *j, chanc_http_response_t *r) {
    bool done;
    int rc = room_refused(j, r, &done);
    if (done)
        return rc;
    if (!j->room.is_private)
        return chat_http_respond_text(r, 400,
                                      "Bad Request: a public room is joined, not invited to");
    if (j->invite_rc == CHANC_EINVAL)
        return room_page(j, r, 400, "Type the username of the person to invite.");
    if (j->invite_rc == CHANC_ENOTFOUND) {
        char msg[CHAT_USERNAME_MAX * 4 + 32];
        snprintf(msg, sizeof msg, "There is no user called %s.", j->invitee);
        return room_page(j, r, 404, msg);
    }
    if (j->invite_rc < 0)
        return j->invite_rc;
    return to_room(j, r);
}

/* GET, or POST …/join and …/members (from the site's own pages). */
int chat_views__room_post(chat_views_t *v, const chanc_http_request_t *req,
                          chanc_http_response_t *r, int64_t room_id, bool invite) {
    if (!chat_http_method_is(req, "POST"))
        return chat_http_not_allowed(r, "POST");
    if (chat_http_foreign_origin(req))
        return chat_http_respond_text(r, 403, "Forbidden: cross-origin form post");
    if (invite && !chat_http_form_urlencoded(req))
        return chat_http_respond_text(r, 415, "Unsupported Media Type: an invitation is posted as "
                                              "application/x-www-form-urlencoded");
    chat_view_job_t *j =
        invite ? chat_view_job_new(invite_run, invite_answer, "POST /chat/{id}/members")
               : chat_view_job_new(join_run, join_answer, "POST /chat/{id}/join");
    if (!j)
        return CHANC_ENOMEM;
    j->room_id = room_id;
    j->has_token = chat_views__cookie_token(v, req, j->token);
    if (invite &&
        !chat_http_form_get(req->body ? req->body : "", "username", j->invitee, sizeof j->invitee))
        j->invitee[0] = '\0';
    return chat_view_job_run(v, req, j, j->has_token, r);
}
