/* Payload schemas, discriminated-union validation and frame building.
 * Error types and wording follow pydantic (what Chanx clients already
 * parse), with JSON vocabulary ("object", "array", "null"). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chanc/message.h"
#include "chanc/json.h"
#include "chanc/utf8.h"

/* The path inside the value being validated; loc arrays are only built
 * when an error is reported, so valid input costs no allocation here. */
typedef struct path {
    const struct path *up;
    const char *key; /* NULL: index */
    size_t index;
} path_t;

typedef struct ctx {
    const json_t *prefix;
    json_t *errors;
    size_t count;
} ctx_t;

/* Longest text of client origin echoed back in an error (keys, tags). */
#define ECHO_MAX 64

/* Copy at most ECHO_MAX bytes of s without splitting a UTF-8 sequence. */
static json_t *echo_string(const char *s) {
    size_t n = strlen(s);
    if (n <= ECHO_MAX)
        return json_string(s);
    size_t cut = ECHO_MAX;
    while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
        cut--;
    char tmp[ECHO_MAX + 8];
    memcpy(tmp, s, cut);
    memcpy(tmp + cut, "\xE2\x80\xA6", 4); /* "…" */
    return json_string(tmp);
}

static json_t *build_loc(const ctx_t *cx, const path_t *p) {
    json_t *loc = cx->prefix ? json_copy((json_t *)cx->prefix) : json_array();
    size_t base = json_array_size(loc);
    for (; p; p = p->up)
        json_array_insert_new(loc, base, p->key ? echo_string(p->key)
                                                : json_integer((json_int_t)p->index));
    return loc;
}

/* Drop a UTF-8 sequence split by truncating s to n bytes (jansson refuses
 * invalid UTF-8, which would lose the whole "msg"). */
static void trim_split_utf8(char *s, size_t n) {
    size_t i = n;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
        i--;
    if (i == 0)
        return;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t want = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (n - (i - 1) < want)
        s[i - 1] = '\0';
}

/* Replace each byte that does not start a valid UTF-8 sequence with '?':
 * a message may quote the client's bytes (jansson's error text cuts its
 * token inside a sequence), and jansson refuses invalid UTF-8, which would
 * lose the whole "msg" (found by fuzz.frames through the conformance
 * check: an item without its msg). */
static void scrub_utf8(char *s) {
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        size_t k = chanc_utf8_decode((const unsigned char *)s + i, n - i, NULL);
        if (k == 0) {
            s[i] = '?';
            k = 1;
        }
        i += k;
    }
}

static int vappend(json_t *errors, const char *type, json_t *loc, const char *fmt,
                   va_list ap) {
    char msg[256];
    int w = vsnprintf(msg, sizeof msg, fmt, ap);
    if (w >= (int)sizeof msg)
        trim_split_utf8(msg, sizeof msg - 1);
    scrub_utf8(msg);
    json_t *e = json_object();
    json_object_set_new(e, "type", json_string(type));
    json_object_set_new(e, "loc", loc ? loc : json_array());
    json_object_set_new(e, "msg", json_string(msg));
    return json_array_append_new(errors, e) == 0 ? 0 : CHANC_ENOMEM;
}

int chanc_errors_append(json_t *errors, const char *type, json_t *loc,
                        const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = vappend(errors, type, loc, fmt, ap);
    va_end(ap);
    return rc;
}

__attribute__((format(printf, 4, 5))) static void report(ctx_t *cx, const path_t *p,
                                                          const char *type,
                                                          const char *fmt, ...) {
    if (cx->count++ >= CHANC_MAX_VALIDATION_ERRORS)
        return;
    va_list ap;
    va_start(ap, fmt);
    vappend(cx->errors, type, build_loc(cx, p), fmt, ap);
    va_end(ap);
}

static size_t utf8_chars(const char *s, size_t bytes) {
    size_t n = 0;
    for (size_t i = 0; i < bytes; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

static const char *plural(size_t n) { return n == 1 ? "" : "s"; }

/* A bound as written: "123456789", "0.5" (%g would say "1.23457e+08"). */
static const char *format_bound(double x, char out[32]) {
    snprintf(out, 32, "%.15g", x);
    if (strtod(out, NULL) != x)
        snprintf(out, 32, "%.17g", x);
    return out;
}

static void validate(ctx_t *cx, const chanc_schema_t *s, const json_t *v, const path_t *p);

static void validate_object(ctx_t *cx, const chanc_schema_t *s, const json_t *v,
                            const path_t *p) {
    size_t declared = 0;
    for (const chanc_field_t *f = s->fields; f && f->name; f++) {
        path_t fp = {p, f->name, 0};
        json_t *fv = json_object_get(v, f->name);
        if (fv) {
            declared++;
            validate(cx, f->schema, fv, &fp);
        } else if (!f->optional) {
            report(cx, &fp, "missing", "Field required");
        }
    }
    if (s->extra == CHANC_EXTRA_FORBID && declared < json_object_size(v)) {
        const char *key;
        json_t *fv;
        json_object_foreach((json_t *)v, key, fv) {
            const chanc_field_t *f = s->fields;
            while (f && f->name && strcmp(f->name, key) != 0)
                f++;
            if (!f || !f->name) {
                path_t fp = {p, key, 0};
                report(cx, &fp, "extra_forbidden", "Extra inputs are not permitted");
            }
        }
    }
}

static void validate(ctx_t *cx, const chanc_schema_t *s, const json_t *v, const path_t *p) {
    if (!s || s->kind == CHANC_SCHEMA_ANY)
        return;
    if (json_is_null(v) && (s->nullable || s->kind == CHANC_SCHEMA_NULL))
        return;
    switch (s->kind) {
    case CHANC_SCHEMA_ANY:
        return;
    case CHANC_SCHEMA_NULL:
        report(cx, p, "none_required", "Input should be null");
        return;
    case CHANC_SCHEMA_STRING: {
        if (!json_is_string(v)) {
            report(cx, p, "string_type", "Input should be a valid string");
            return;
        }
        size_t n = utf8_chars(json_string_value(v), json_string_length(v));
        if (n < s->min_length)
            report(cx, p, "string_too_short", "String should have at least %zu character%s",
                   s->min_length, plural(s->min_length));
        else if (s->max_length && n > s->max_length)
            report(cx, p, "string_too_long", "String should have at most %zu character%s",
                   s->max_length, plural(s->max_length));
        return;
    }
    case CHANC_SCHEMA_INTEGER:
    case CHANC_SCHEMA_NUMBER: {
        if (s->kind == CHANC_SCHEMA_INTEGER ? !json_is_integer(v) : !json_is_number(v)) {
            if (s->kind == CHANC_SCHEMA_INTEGER)
                report(cx, p, "int_type", "Input should be a valid integer");
            else
                report(cx, p, "float_type", "Input should be a valid number");
            return;
        }
        double d = json_number_value(v);
        char bound[32];
        if (s->has_minimum && d < s->minimum)
            report(cx, p, "greater_than_equal", "Input should be greater than or equal to %s",
                   format_bound(s->minimum, bound));
        if (s->has_maximum && d > s->maximum)
            report(cx, p, "less_than_equal", "Input should be less than or equal to %s",
                   format_bound(s->maximum, bound));
        return;
    }
    case CHANC_SCHEMA_BOOLEAN:
        if (!json_is_boolean(v))
            report(cx, p, "bool_type", "Input should be a valid boolean");
        return;
    case CHANC_SCHEMA_OBJECT:
        if (!json_is_object(v))
            report(cx, p, "dict_type", "Input should be a valid object");
        else
            validate_object(cx, s, v, p);
        return;
    case CHANC_SCHEMA_ARRAY: {
        if (!json_is_array(v)) {
            report(cx, p, "list_type", "Input should be a valid array");
            return;
        }
        size_t n = json_array_size(v);
        if (n < s->min_length)
            report(cx, p, "too_short", "Array should have at least %zu item%s, not %zu",
                   s->min_length, plural(s->min_length), n);
        else if (s->max_length && n > s->max_length)
            report(cx, p, "too_long", "Array should have at most %zu item%s, not %zu",
                   s->max_length, plural(s->max_length), n);
        for (size_t i = 0; i < n && s->items && cx->count < CHANC_MAX_VALIDATION_ERRORS; i++) {
            path_t ip = {p, NULL, i};
            validate(cx, s->items, json_array_get(v, i), &ip);
        }
        return;
    }
    }
}

size_t chanc_schema_validate(const chanc_schema_t *schema, const json_t *value,
                             const json_t *loc_prefix, json_t *errors) {
    ctx_t cx = {loc_prefix, errors, 0};
    validate(&cx, schema, value, NULL);
    return cx.count < CHANC_MAX_VALIDATION_ERRORS ? cx.count : CHANC_MAX_VALIDATION_ERRORS;
}

static bool payload_is_null_kind(const chanc_message_type_t *t) {
    return !t->payload || t->payload->kind == CHANC_SCHEMA_NULL;
}

/* "'chat', 'ping'" for the union_tag_invalid message. */
static void expected_tags(const chanc_message_type_t *const *incoming, char *out, size_t n) {
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; incoming && incoming[i] && used + 1 < n; i++) {
        int w = snprintf(out + used, n - used, "%s'%s'", i ? ", " : "", incoming[i]->action);
        if (w < 0 || (size_t)w >= n - used)
            break;
        used += (size_t)w;
    }
}

int chanc_message_validate(const chanc_message_type_t *const *incoming,
                           const json_t *frame, const chanc_message_type_t **type,
                           json_t **errors_out) {
    json_t *errors = json_array();
    ctx_t cx = {NULL, errors, 0};
    const chanc_message_type_t *found = NULL;

    if (!json_is_object(frame)) {
        report(&cx, NULL, "dict_type", "Input should be a valid object");
        goto done;
    }
    json_t *action = json_object_get(frame, "action");
    path_t action_path = {NULL, "action", 0};
    if (!json_is_string(action)) {
        report(&cx, &action_path, "union_tag_not_found",
               "Unable to extract tag using discriminator 'action'");
        goto done;
    }
    for (size_t i = 0; incoming && incoming[i]; i++)
        if (strcmp(incoming[i]->action, json_string_value(action)) == 0) {
            found = incoming[i];
            break;
        }
    if (!found) {
        char tags[512];
        json_t *tag = echo_string(json_string_value(action));
        expected_tags(incoming, tags, sizeof tags);
        report(&cx, &action_path, "union_tag_invalid",
               "Input tag '%s' found using 'action' does not match any of the expected "
               "tags: %s",
               json_string_value(tag), tags);
        json_decref(tag);
        goto done;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)frame, key, v) {
        if (strcmp(key, "action") != 0 && strcmp(key, "payload") != 0) {
            path_t kp = {NULL, key, 0};
            report(&cx, &kp, "extra_forbidden", "Extra inputs are not permitted");
        }
    }
    json_t *payload = json_object_get(frame, "payload");
    path_t pp = {NULL, "payload", 0};
    if (payload_is_null_kind(found)) {
        if (payload && !json_is_null(payload))
            report(&cx, &pp, "none_required", "Input should be null");
    } else if (!payload) {
        report(&cx, &pp, "missing", "Field required");
    } else {
        validate(&cx, found->payload, payload, &pp);
    }

done:
    if (cx.count == 0) {
        json_decref(errors);
        if (type)
            *type = found;
        if (errors_out)
            *errors_out = NULL;
        return 0;
    }
    if (errors_out)
        *errors_out = errors;
    else
        json_decref(errors);
    return CHANC_EVALIDATION;
}

json_t *chanc_message_build(const chanc_message_type_t *type, json_t *payload,
                            chanc_error_t *err) {
    if (!type || !type->action) {
        json_decref(payload);
        chanc_error_set(err, CHANC_EINVAL, "no message type");
        return NULL;
    }
    if (!payload)
        payload = json_null();
    json_t *errors = json_array();
    path_t pp = {NULL, "payload", 0};
    ctx_t cx = {NULL, errors, 0};
    if (payload_is_null_kind(type)) {
        if (!json_is_null(payload))
            report(&cx, &pp, "none_required", "Input should be null");
    } else {
        validate(&cx, type->payload, payload, &pp);
    }
    if (cx.count) {
        json_t *first = json_array_get(errors, 0);
        char *loc = chanc_json_dump(json_object_get(first, "loc"));
        chanc_error_set(err, CHANC_EVALIDATION, "%s: %s at %s", type->action,
                        json_string_value(json_object_get(first, "msg")), loc ? loc : "?");
        free(loc);
        json_decref(errors);
        json_decref(payload);
        return NULL;
    }
    json_decref(errors);
    json_t *frame = json_object();
    if (!frame || json_object_set_new(frame, "action", json_string(type->action))) {
        json_decref(payload); /* stolen, whatever happens */
        payload = NULL;
    }
    if (!payload || json_object_set_new(frame, "payload", payload)) {
        json_decref(frame);
        chanc_error_set(err, CHANC_ENOMEM, "out of memory");
        return NULL;
    }
    return frame;
}
