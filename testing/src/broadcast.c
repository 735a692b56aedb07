/* Broadcasts seen from the test: what the app published to a group (the
 * fault layer hands every publish to chanc__capture_published), whether a
 * communicator's connection is in a group, and messages or events
 * delivered into a group as if another process had published them. */
#include <stdlib.h>
#include <string.h>

#include "chanc/json.h"
#include "testing_internal.h"

struct group_capture {
    struct group_capture *next;
    json_t *sent; /* what was published since the last take, in order */
    char group[];
};

static struct group_capture *find_capture(const struct chanc_test_private *p, const char *group) {
    for (struct group_capture *g = p->captures; g; g = g->next)
        if (!strcmp(g->group, group))
            return g;
    return NULL;
}

void chanc__capture_published(struct chanc_test_private *p, const char *group,
                              const chanc_envelope_t *env) {
    struct group_capture *g = find_capture(p, group);
    if (!g)
        return;
    json_t *frame = json_loadb((const char *)env->frame->data, env->frame->len, 0, NULL);
    json_array_append_new(g->sent, frame ? frame
                                         : json_stringn((const char *)env->frame->data,
                                                        env->frame->len));
}

void chanc__captures_free(struct chanc_test_private *p) {
    while (p->captures) {
        struct group_capture *g = p->captures;
        p->captures = g->next;
        json_decref(g->sent);
        free(g);
    }
}

int chanc_test_capture_group(chanc_test_t *t, const char *group) {
    if (!t || !t->app || !chanc_group_name_valid(group))
        return CHANC_EINVAL;
    struct chanc_test_private *p = t->priv;
    if (find_capture(p, group))
        return 0;
    size_t n = strlen(group);
    struct group_capture *g = malloc(sizeof *g + n + 1);
    if (!g || !(g->sent = json_array())) {
        free(g);
        return CHANC_ENOMEM;
    }
    memcpy(g->group, group, n + 1);
    g->next = p->captures;
    p->captures = g;
    return 0;
}

json_t *chanc_test_group_sent(chanc_test_t *t, const char *group) {
    struct group_capture *g = t && t->app && group ? find_capture(t->priv, group) : NULL;
    if (!g)
        return NULL;
    chanc_test_settle(t, CHANC__HANG_MS);
    json_t *sent = json_array();
    if (!sent)
        return NULL;
    json_t *all = g->sent;
    g->sent = sent;
    return all;
}

/* What was captured for group, or a failure (NULL) naming the call. */
static json_t *take_or_fail(chanc_test_t *t, const char *group, const char *what,
                            const char *file, int line) {
    json_t *sent = chanc_test_group_sent(t, group);
    if (!sent)
        chanc__report_failure(NULL, file, line, "%s: group \"%s\" is not captured%s", what,
                              group ? group : "(null)",
                              t && t->app ? " (call chanc_test_capture_group first)"
                                          : " (in process only)");
    return sent;
}

/* What was captured for group against pattern (NULL: nothing); consumed. */
static bool check_sent(chanc_test_t *t, const char *group, const char *pattern, const char *file,
                       int line) {
    json_t *sent = take_or_fail(t, group,
                                pattern ? "chanc_assert_group_sent_match"
                                        : "chanc_assert_group_sent_nothing",
                                file, line);
    if (!sent)
        return false;
    json_error_t err;
    json_t *want = pattern ? json_loads(pattern, JSON_DECODE_ANY, &err) : json_array();
    char *why = want ? chanc_json_mismatch(sent, want)
                     : chanc_strdupf("bad pattern %s: %s", pattern, err.text);
    json_decref(want);
    if (!why) {
        json_decref(sent);
        return true;
    }
    char *got = chanc_json_dump(sent);
    if (pattern)
        chanc__failure_prepare(NULL, file, line,
                               "what was published to group \"%s\" does not match\n"
                               "  expected: %s\n  published: %s\n  %s",
                               group, pattern, got ? got : "?", why);
    else
        chanc__failure_prepare(NULL, file, line,
                               "expected nothing published to group \"%s\", but %zu message(s) "
                               "were: %s",
                               group, json_array_size(sent), got ? got : "?");
    free(got);
    free(why);
    json_decref(sent);
    return chanc__failure_raise(file, line);
}

bool chanc_assert_group_sent_match_at(chanc_test_t *t, const char *group, const char *pattern,
                                      const char *file, int line) {
    return check_sent(t, group, pattern ? pattern : "null", file, line);
}

bool chanc_assert_group_sent_nothing_at(chanc_test_t *t, const char *group, const char *file,
                                        int line) {
    return check_sent(t, group, NULL, file, line);
}

bool chanc_assert_in_group_at(chanc_communicator_t *c, const char *group, bool in,
                              const char *file, int line) {
    if (!chanc__communicator_test(c)->app)
        return chanc__report_failure(c, file, line, "chanc_assert_%sin_group: in process only",
                                     in ? "" : "not_");
    chanc__settle(c, CHANC__HANG_MS);
    const chanc_conn_t *conn = chanc_communicator_closed(c) ? NULL : chanc__communicator_conn(c);
    bool member = conn && group && chanc_conn_in_group(conn, group);
    if (member == in)
        return true;
    return chanc__report_failure(c, file, line,
                                 "expected %s %sto be in group \"%s\", but it is %s",
                                 chanc_communicator_path(c),
                                 in ? "" : "not ", group ? group : "(null)",
                                 member ? "a member"
                                 : conn ? "not a member"
                                        : "not connected (in no group)");
}

/* --- delivering as another process ------------------------------------------ */

typedef struct injection {
    chanc_app_t *app;
    chanc_envelope_t *env;
    char group[];
} injection_t;

static void deliver_injection(void *arg) {
    injection_t *in = arg;
    chanc_layer_deliver_group(in->app, in->group, in->env);
    chanc_envelope_unref(in->env);
    free(in);
}

/* frame (stolen) into group from another process; what names the call. */
static bool inject(chanc_test_t *t, const char *group, json_t *frame, const char *sender_user,
                   bool event, const char *what, const char *file, int line) {
    const char *bad = !t || !t->app                    ? "in process only"
                      : !chanc_group_name_valid(group) ? "not a valid group name"
                      : !json_is_object(frame)         ? "the frame is not a JSON object"
                                                       : NULL;
    if (bad) {
        json_decref(frame);
        return chanc__report_failure(NULL, file, line, "%s: %s", what, bad);
    }
    char *text = chanc_json_dump(frame);
    json_decref(frame);
    chanc_buf_t *buf = text ? chanc_buf_new(text, strlen(text)) : NULL;
    free(text);
    /* Another process: a node id that is not this app's, a connection of
     * its own (so no member here is is_current). */
    chanc_envelope_t *env =
        buf ? chanc_envelope_new(buf, sender_user, chanc_app_node_id(t->app) + 1, 1,
                                 event ? CHANC_ENV_EVENT : 0)
            : NULL;
    chanc_buf_unref(buf);
    size_t n = strlen(group);
    injection_t *in = env ? malloc(sizeof *in + n + 1) : NULL;
    if (!in) {
        chanc_envelope_unref(env);
        return chanc__report_failure(NULL, file, line, "%s: out of memory", what);
    }
    in->app = t->app;
    in->env = env;
    memcpy(in->group, group, n + 1);
    if (chanc_app_call_soon(t->app, deliver_injection, in) != 0)
        deliver_injection(in); /* no room in the queue: now */
    if (chanc_test_settle(t, CHANC__HANG_MS) != 0)
        return chanc__report_failure(NULL, file, line, "%s: the app did not settle", what);
    return true;
}

bool chanc_test_inject_event_at(chanc_test_t *t, const char *group,
                                const chanc_message_type_t *type, json_t *payload,
                                const char *file, int line) {
    const char *what = "chanc_test_inject_event";
    if (!type) {
        json_decref(payload);
        return chanc__report_failure(NULL, file, line, "%s: no message type", what);
    }
    chanc_error_t err;
    json_t *frame = chanc_message_build(type, payload, &err);
    if (!frame)
        return chanc__report_failure(NULL, file, line, "%s: the payload does not match %s: %s",
                                     what, type->name ? type->name : type->action, err.text);
    return inject(t, group, frame, NULL, true, what, file, line);
}

bool chanc_test_inject_group_frame_at(chanc_test_t *t, const char *group, json_t *frame,
                                      const char *sender_user, const char *file, int line) {
    return inject(t, group, frame, sender_user, false, "chanc_test_inject_group_frame", file,
                  line);
}
