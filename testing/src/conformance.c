/* The conformance check: every frame the app writes to an in-process
 * communicator against what its consumer declares it may send
 * (chanc_consumer_declared). What does not conform is kept on the
 * fixture and reported where the test next lets the app run, never from
 * inside the app's own call (the transport's write). */
#include <stdlib.h>
#include <string.h>

#include "chanc/json.h"
#include "testing_internal.h"

/* Append one error item {"type","loc":[first(, key)],"msg"} to errors
 * (may be NULL). */
static void add_error(json_t *errors, const char *type, const char *first, const char *key,
                      const char *msg) {
    if (!errors)
        return;
    json_t *loc = json_pack("[s]", first);
    if (key)
        json_array_append_new(loc, json_string(key));
    chanc_errors_append(errors, type, loc, "%s", msg);
}

bool chanc_test_frame_conforms(const chanc_message_type_t *type, const json_t *frame,
                               json_t *errors) {
    if (!json_is_object(frame)) {
        add_error(errors, "object_type", "frame", NULL, "The frame should be a JSON object");
        return false;
    }
    bool ok = true;
    const char *action = json_string_value(json_object_get(frame, "action"));
    if (!action || strcmp(action, type->action) != 0) {
        add_error(errors, "literal_error", "action", NULL, "The action differs from the type's");
        ok = false;
    }
    const json_t *payload = json_object_get(frame, "payload");
    json_t *prefix = json_pack("[s]", "payload");
    if (!type->payload || type->payload->kind == CHANC_SCHEMA_NULL) {
        if (payload && !json_is_null(payload)) {
            add_error(errors, "null_type", "payload", NULL, "The payload should be null");
            ok = false;
        }
    } else if (!payload) {
        add_error(errors, "missing", "payload", NULL, "Field required");
        ok = false;
    } else {
        json_t *mine = errors ? NULL : json_array();
        ok = chanc_schema_validate(type->payload, payload, prefix, errors ? errors : mine) == 0 &&
             ok;
        json_decref(mine);
    }
    json_decref(prefix);
    /* The keys beside action and payload: the type's frame_fields. */
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)frame, key, v) {
        if (!strcmp(key, "action") || !strcmp(key, "payload"))
            continue;
        const chanc_field_t *f = type->frame_fields;
        while (f && f->name && strcmp(f->name, key) != 0)
            f++;
        if (!f || !f->name) {
            add_error(errors, "extra_forbidden", key, NULL,
                      "Not a key of the type's frame (frame_fields)");
            ok = false;
            continue;
        }
        json_t *loc = json_pack("[s]", key), *mine = errors ? NULL : json_array();
        ok = chanc_schema_validate(f->schema, v, loc, errors ? errors : mine) == 0 && ok;
        json_decref(loc);
        json_decref(mine);
    }
    for (const chanc_field_t *f = type->frame_fields; f && f->name; f++)
        if (!f->optional && !json_object_get(frame, f->name)) {
            add_error(errors, "missing", f->name, NULL, "Field required beside the payload");
            ok = false;
        }
    return ok;
}

/* --- checking what the app writes ------------------------------------------ */

typedef struct check {
    const json_t *frame;
    const char *action;
    bool conforms;
    size_t same_action; /* declared types with the frame's action */
    json_t *why;        /* each such type's name and its errors */
} check_t;

static int check_one(const chanc_message_type_t *type, void *ud) {
    check_t *k = ud;
    if (!k->action || strcmp(type->action, k->action) != 0)
        return 0;
    k->same_action++;
    json_t *errors = json_array();
    if (chanc_test_frame_conforms(type, k->frame, errors)) {
        k->conforms = true;
        json_decref(errors);
        return 1; /* stop: it conforms */
    }
    json_array_append_new(k->why, json_pack("{s:s,s:o}", "type",
                                            type->name ? type->name : type->action, "errors",
                                            errors));
    return 0;
}

/* This process's counts, printed at exit with CHANC_CONFORMANCE=stats. */
static struct {
    size_t checked, unchecked, nonconforming;
} counts;

static void print_counts(void) {
    fprintf(stderr, "chanc conformance: %zu frame(s) checked, %zu nonconforming, %zu not checked "
            "(undeclared consumer)\n", counts.checked, counts.nonconforming, counts.unchecked);
}

static bool conformance_wanted(void) {
    const char *env = getenv("CHANC_CONFORMANCE");
    static bool registered;
    if (env && !strcmp(env, "stats") && !registered) {
        registered = true;
        atexit(print_counts);
    }
    return !env || strcmp(env, "0") != 0;
}

/* Most frames a report lists (the rest are counted). */
#define REPORT_MAX 8

void chanc__conformance_check(chanc_communicator_t *c, const chanc_buf_t *frame) {
    chanc_test_t *t = chanc__communicator_test(c);
    struct chanc_test_private *p = t->priv;
    const chanc_consumer_t *k = chanc__communicator_consumer(c);
    if (!p->conformance || !k || !conformance_wanted())
        return;
    if (!k->outgoing) {
        counts.unchecked++;
        if (!p->undeclared_noted) {
            p->undeclared_noted = true;
            chanc_log(CHANC_LOG_INFO, "test: consumer %s declares no outgoing messages "
                      "(outgoing NULL): its frames are not checked for conformance",
                      k->name ? k->name : "?");
        }
        return;
    }
    json_t *v = json_loadb((const char *)frame->data, frame->len, 0, NULL);
    check_t chk = {v, json_string_value(json_object_get(v, "action")), false, 0, json_array()};
    const chanc_message_type_t *declared[72];
    chanc_consumer_declared(k, CHANC_DECLARED_OUTGOING, declared, 72);
    for (size_t i = 0; v && declared[i] && !check_one(declared[i], &chk); i++)
        ;
    counts.checked++;
    if (!chk.conforms) {
        counts.nonconforming++;
        p->nonconforming_n++;
        if (!p->nonconforming_comm)
            p->nonconforming_comm = c;
        else if (p->nonconforming_comm != c)
            p->nonconforming_comm = (chanc_communicator_t *)-1; /* several */
        if (p->nonconforming_n <= REPORT_MAX) {
            char *why = !v ? strdup("not a JSON object")
                        : !chk.action ? strdup("no \"action\" string")
                        : !chk.same_action
                            ? chanc_strdupf("action \"%s\" is not declared by consumer %s",
                                            chk.action, k->name ? k->name : "?")
                            : NULL;
            if (!why) {
                char *items = chanc_json_dump(chk.why);
                why = chanc_strdupf("it matches no declared type with action \"%s\": %s",
                                    chk.action, items ? items : "?");
                free(items);
            }
            const json_t *tr = chanc_communicator_transcript(c);
            char *line = chanc_strdupf(
                "%s  frame to %s (transcript entry %zu): %.2000s\n    why: %s\n",
                p->nonconforming ? p->nonconforming : "", chanc_communicator_path(c),
                json_array_size(tr) ? json_array_size(tr) - 1 : 0, (const char *)frame->data,
                why ? why : "?");
            free(why);
            if (line) {
                free(p->nonconforming);
                p->nonconforming = line;
            }
        }
    }
    json_decref(chk.why);
    json_decref(v);
}

char *chanc__conformance_take(chanc_test_t *t) {
    struct chanc_test_private *p = t->priv;
    if (!p->nonconforming_n)
        return NULL;
    char *text = chanc_strdupf(
        "%zu frame(s) the app sent do not conform to the consumer's declared outgoing "
        "messages (the conformance check; off with the fixture option conformance_off or "
        "CHANC_CONFORMANCE=0):\n%s%s",
        p->nonconforming_n, p->nonconforming ? p->nonconforming : "",
        p->nonconforming_n > REPORT_MAX ? "  ... (only the first ones are listed)\n" : "");
    free(p->nonconforming);
    p->nonconforming = NULL;
    p->nonconforming_n = 0;
    p->nonconforming_comm = NULL;
    return text;
}

void chanc__conformance_report(chanc_test_t *t) {
    struct chanc_test_private *p = t->priv;
    if (!p->nonconforming_n || p->destroying)
        return;
    chanc_communicator_t *c = p->nonconforming_comm == (chanc_communicator_t *)-1
                                  ? NULL : p->nonconforming_comm;
    char *text = chanc__conformance_take(t);
    const char *file = "conformance check";
    int line = 0;
    chanc__run_where(&file, &line);
    /* Ours is freed before the failure is raised (reporting may longjmp). */
    chanc__failure_prepare(c, file, line, "%s", text ? text : "frames do not conform");
    free(text);
    chanc__failure_raise(file, line);
}
