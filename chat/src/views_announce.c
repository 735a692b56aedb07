/* POST /api/rooms/{id}/announcements: a staff user's announcement to a
 * room (docs/chat.md, "Announcements"). JSON in and out:
 *
 *   body     {"message": "1-500 characters"}, Content-Type application/json
 *   auth     the session cookie; only staff (users.is_staff) may announce
 *   201      {"room_id","message","username","timestamp"}: sent to every
 *            member of the room, in every process (chat_announce: the
 *            typed event `announcement`); not stored
 *   400      {"detail":[error items]}: not JSON, or not the body's schema
 *            (the items of the WebSocket `error` frame, loc in the body)
 *   401      no session cookie, or an unknown or expired session
 *   403      a foreign Origin; a user who is not staff
 *   404      no such room, or a private room the user is not a member of
 *   405      another method (Allow: POST)
 *   415      another Content-Type
 *   413      a body over the server's limit (chanc_server, before this)
 *
 * The checks that need no store run first, in that order (405, 403
 * Origin, 401 no cookie, 415, 400); then the session, staff and room
 * lookups run as one job on the views' database thread, and the answer
 * and the event are made back on the loop thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "views_internal.h"

static const chanc_schema_t *const body_schema = CHANC_OBJECT(CHANC_FIELD(
    "message", CHANC_STRING(.min_length = 1, .max_length = CHAT_ANNOUNCEMENT_MAX)));

static int detail(chanc_http_response_t *r, int status, const char *text) {
    return chat_http_respond_json(r, status, json_pack("{s:s}", "detail", text));
}

/* The body, validated; NULL with *errors (a new array) otherwise. */
static json_t *parse_body(const chanc_http_request_t *req, json_t **errors) {
    *errors = json_array();
    json_error_t je;
    json_t *body = req->body ? json_loadb(req->body, req->body_len, 0, &je) : NULL;
    if (!body) {
        chanc_errors_append(*errors, "json_invalid", NULL, "Invalid JSON: %s",
                            req->body ? je.text : "no body");
        return NULL;
    }
    if (chanc_schema_validate(body_schema, body, NULL, *errors) > 0) {
        json_decref(body);
        return NULL;
    }
    json_decref(*errors);
    *errors = NULL;
    return body;
}

static void announce_run(chat_store_t *s, chat_call_job_t *c) {
    chat_view_job_room(s, (chat_view_job_t *)c);
}

static int announce_answer(chat_view_job_t *j, chanc_http_response_t *r) {
    if (!j->logged_in)
        return detail(r, 401, "Not logged in, or the session has expired.");
    if (!j->user.is_staff)
        return detail(r, 403, "Only staff may post announcements.");
    if (j->rc == CHANC_ENOTFOUND) /* missing, or private and not theirs: the same answer */
        return detail(r, 404, "No such room.");
    if (j->rc < 0 || j->member_rc < 0)
        return j->rc < 0 ? j->rc : j->member_rc;
    const char *message = json_string_value(json_object_get(j->payload, "message"));
    int64_t now = chanc_app_wall_ms(j->v->app);
    int rc = chat_announce(j->v->app, j->room.id, message, j->user.username, now);
    if (rc < 0)
        return rc;
    char ts[32];
    chanc_format_timestamp(now, ts);
    return chat_http_respond_json(r, 201,
                                  json_pack("{s:I,s:s,s:s,s:s}", "room_id",
                                            (json_int_t)j->room.id, "message", message,
                                            "username", j->user.username, "timestamp", ts));
}

int chat_views__announce(chat_views_t *v, const chanc_http_request_t *req,
                         chanc_http_response_t *r, int64_t room_id) {
    if (!chat_http_method_is(req, "POST"))
        return chat_http_not_allowed(r, "POST");
    if (chat_http_foreign_origin(req))
        return detail(r, 403, "Forbidden: cross-origin request.");
    if (!v->app)
        return CHANC_EINVAL; /* views configured without an app cannot send: 500 */
    char token[CHAT_SESSION_TOKEN_LEN + 1];
    if (!chat_views__cookie_token(v, req, token))
        return detail(r, 401, "Not logged in.");
    if (!chat_http_content_type_is(req, "application/json", false))
        return detail(r, 415, "Unsupported Media Type: an announcement is posted as "
                              "application/json.");
    json_t *errors, *body = parse_body(req, &errors);
    if (!body)
        return chat_http_respond_json(r, 400, json_pack("{s:o}", "detail", errors));
    chat_view_job_t *j =
        chat_view_job_new(announce_run, announce_answer, "POST /api/rooms/{id}/announcements");
    if (!j) {
        json_decref(body);
        return CHANC_ENOMEM;
    }
    j->payload = body;
    j->room_id = room_id;
    j->has_token = true;
    memcpy(j->token, token, sizeof token);
    return chat_view_job_run(v, req, j, true, r);
}
