/* Hostile and boundary frames derived from a message type's schema
 * (chanc/derive.h), and the assertion that runs them through a
 * communicator.
 *
 * A case is the type's minimal valid payload with one node replaced (or
 * removed), so it has exactly one expected outcome: accepted, or one
 * validation error at that node's loc. Frames jansson cannot build (an
 * escaped lone surrogate, 1e400) are written as text: the node holds a
 * placeholder string that is replaced in the dumped frame. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chanc/json.h"
#include "testing_internal.h"

#define PLACEHOLDER "@@chanc-derive-raw@@"
#define EXTRA_KEY "zz_extra"
#define MAX_DEPTH 8
/* U+1F600, four bytes in UTF-8. */
#define WIDE "\xF0\x9F\x98\x80"

typedef struct gen {
    const chanc_message_type_t *type;
    json_t *cases;
    json_t *base; /* the minimal valid payload (NULL: absent) */
} gen_t;

/* --- valid values ------------------------------------------------------------ */

static json_t *repeat(const char *unit, size_t n) {
    size_t u = strlen(unit);
    char *s = malloc(u * n + 1);
    if (!s)
        return NULL;
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * u, unit, u);
    s[u * n] = '\0';
    json_t *v = json_stringn(s, u * n);
    free(s);
    return v;
}

/* The number a minimal valid integer/number node holds: 0 moved into the
 * bounds. */
static double valid_number(const chanc_schema_t *s) {
    double v = 0;
    if (s->has_minimum && v < s->minimum)
        v = s->kind == CHANC_SCHEMA_INTEGER ? ceil(s->minimum) : s->minimum;
    if (s->has_maximum && v > s->maximum)
        v = s->kind == CHANC_SCHEMA_INTEGER ? floor(s->maximum) : s->maximum;
    return v;
}

static json_t *number_value(double v) {
    if (v == floor(v) && fabs(v) < 9e15)
        return json_integer((json_int_t)v);
    return json_real(v);
}

static size_t valid_length(const chanc_schema_t *s) {
    size_t n = s->min_length ? s->min_length : 1;
    return s->max_length && n > s->max_length ? s->max_length : n;
}

static json_t *valid_value(const chanc_schema_t *s, int depth) {
    if (!s || depth > MAX_DEPTH)
        return json_null();
    switch (s->kind) {
    case CHANC_SCHEMA_ANY:
    case CHANC_SCHEMA_NULL:
        return json_null();
    case CHANC_SCHEMA_STRING:
        return repeat("x", valid_length(s));
    case CHANC_SCHEMA_INTEGER:
    case CHANC_SCHEMA_NUMBER:
        return number_value(valid_number(s));
    case CHANC_SCHEMA_BOOLEAN:
        return json_true();
    case CHANC_SCHEMA_OBJECT: {
        json_t *o = json_object();
        for (const chanc_field_t *f = s->fields; f && f->name; f++)
            if (!f->optional)
                json_object_set_new(o, f->name, valid_value(f->schema, depth + 1));
        return o;
    }
    case CHANC_SCHEMA_ARRAY: {
        json_t *a = json_array();
        for (size_t i = 0; i < s->min_length; i++)
            json_array_append_new(a, valid_value(s->items, depth + 1));
        return a;
    }
    }
    return json_null();
}

/* --- building a case ------------------------------------------------------------ */

/* Put value (stolen; NULL: remove) at loc[from..] inside *root. */
static void put_at(json_t **root, const json_t *loc, size_t from, json_t *value) {
    if (from == json_array_size(loc)) {
        json_decref(*root);
        *root = value;
        return;
    }
    json_t *seg = json_array_get(loc, from);
    json_t *child = NULL;
    if (json_is_string(seg))
        child = json_incref(json_object_get(*root, json_string_value(seg)));
    else
        child = json_incref(json_array_get(*root, (size_t)json_integer_value(seg)));
    put_at(&child, loc, from + 1, value);
    if (json_is_string(seg)) {
        if (child)
            json_object_set_new(*root, json_string_value(seg), child);
        else
            json_object_del(*root, json_string_value(seg));
    } else if (child) {
        json_array_set_new(*root, (size_t)json_integer_value(seg), child);
    }
}

/* "payload.tags[0]" for a loc. */
static void loc_text(const json_t *loc, char *out, size_t n) {
    size_t used = 0, i;
    json_t *seg;
    out[0] = '\0';
    json_array_foreach(loc, i, seg) {
        int w = json_is_string(seg)
                    ? snprintf(out + used, n - used, "%s%s", i ? "." : "", json_string_value(seg))
                    : snprintf(out + used, n - used, "[%lld]", (long long)json_integer_value(seg));
        if (w < 0 || (size_t)w >= n - used)
            return;
        used += (size_t)w;
    }
}

/* Replace the placeholder string in text (malloc'd) with raw. */
static char *splice_raw(char *text, const char *raw) {
    const char *quoted = "\"" PLACEHOLDER "\"";
    char *at = text ? strstr(text, quoted) : NULL;
    if (!at)
        return text;
    size_t head = (size_t)(at - text), ql = strlen(quoted), rl = strlen(raw);
    size_t tail = strlen(at + ql);
    char *out = malloc(head + rl + tail + 1);
    if (out) {
        memcpy(out, text, head);
        memcpy(out + head, raw, rl);
        memcpy(out + head + rl, at + ql, tail + 1);
    }
    free(text);
    return out;
}

/* One case: the base payload with value (stolen; NULL: removed) at at
 * (a loc from the frame: ["payload", …]; NULL: the base as it is), raw
 * text in place of a PLACEHOLDER value, the expected error (type NULL:
 * valid) at err_loc (NULL: at). extra: an undeclared top-level key. */
typedef struct spec {
    const json_t *at;
    json_t *value;
    bool remove;
    const char *raw;
    const char *err;
    const json_t *err_loc;
    bool extra;
} spec_t;

static void add_case(gen_t *g, const spec_t *sp, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void add_case(gen_t *g, const spec_t *sp, const char *fmt, ...) {
    json_t *frame = json_object();
    json_object_set_new(frame, "action", json_string(g->type->action));
    json_t *payload = g->base ? json_deep_copy(g->base) : NULL;
    json_t *value = sp->value;
    if (sp->raw && !value)
        value = json_string(PLACEHOLDER);
    if (sp->at)
        put_at(&payload, sp->at, 1, sp->remove ? NULL : value);
    else
        json_decref(value);
    if (payload)
        json_object_set_new(frame, "payload", payload);
    if (sp->extra)
        json_object_set_new(frame, EXTRA_KEY, json_integer(1));
    char *text = splice_raw(chanc_json_dump(frame), sp->raw);
    json_decref(frame);

    va_list ap;
    va_start(ap, fmt);
    char name[200];
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    json_t *errors = json_array();
    if (sp->err) {
        const json_t *loc = sp->err_loc ? sp->err_loc : sp->at;
        json_array_append_new(errors, json_pack("{s:s,s:O}", "type", sp->err, "loc",
                                                loc ? (json_t *)loc : json_array()));
    }
    if (text)
        json_array_append_new(g->cases, json_pack("{s:s,s:s,s:b,s:o}", "name", name, "frame",
                                                  text, "valid", !sp->err, "errors", errors));
    else
        json_decref(errors);
    free(text);
}

static json_t *loc_plus(const json_t *loc, json_t *seg /* stolen */) {
    json_t *l = json_copy((json_t *)loc);
    json_array_append_new(l, seg);
    return l;
}

/* --- what the validator answers -------------------------------------------------- */

static const char *type_error(const chanc_schema_t *s) {
    switch (s->kind) {
    case CHANC_SCHEMA_NULL: return "none_required";
    case CHANC_SCHEMA_STRING: return "string_type";
    case CHANC_SCHEMA_INTEGER: return "int_type";
    case CHANC_SCHEMA_NUMBER: return "float_type";
    case CHANC_SCHEMA_BOOLEAN: return "bool_type";
    case CHANC_SCHEMA_OBJECT: return "dict_type";
    case CHANC_SCHEMA_ARRAY: return "list_type";
    case CHANC_SCHEMA_ANY: break;
    }
    return NULL;
}

/* The error a number gets from s, or NULL. */
static const char *number_error(const chanc_schema_t *s, double v) {
    if (s->has_minimum && v < s->minimum)
        return "greater_than_equal";
    if (s->has_maximum && v > s->maximum)
        return "less_than_equal";
    return NULL;
}

/* One JSON value of each type, as probes for the wrong-type cases. */
typedef enum { P_NULL, P_BOOL, P_INT, P_REAL, P_STRING, P_ARRAY, P_OBJECT, P_COUNT } probe_t;
static const char *const probe_name[P_COUNT] = {"null",   "true",  "0",  "0.5",
                                                "\"x\"", "[]", "{}"};

static json_t *probe_value(probe_t p) {
    switch (p) {
    case P_NULL: return json_null();
    case P_BOOL: return json_true();
    case P_INT: return json_integer(0);
    case P_REAL: return json_real(0.5);
    case P_STRING: return json_string("x");
    case P_ARRAY: return json_array();
    case P_OBJECT: return json_object();
    case P_COUNT: break;
    }
    return NULL;
}

static bool kind_accepts(const chanc_schema_t *s, probe_t p) {
    switch (s->kind) {
    case CHANC_SCHEMA_ANY: return true;
    case CHANC_SCHEMA_NULL: return p == P_NULL;
    case CHANC_SCHEMA_STRING: return p == P_STRING;
    case CHANC_SCHEMA_INTEGER: return p == P_INT;
    case CHANC_SCHEMA_NUMBER: return p == P_INT || p == P_REAL;
    case CHANC_SCHEMA_BOOLEAN: return p == P_BOOL;
    case CHANC_SCHEMA_OBJECT: return p == P_OBJECT;
    case CHANC_SCHEMA_ARRAY: return p == P_ARRAY;
    }
    return false;
}

/* --- the cases of one node ---------------------------------------------------------- */

static void node_cases(gen_t *g, const chanc_schema_t *s, const json_t *at, int depth);

static void json_invalid_case(gen_t *g, const json_t *at, const char *raw, const char *why) {
    json_t *root = json_array();
    char where[120];
    loc_text(at, where, sizeof where);
    add_case(g, &(spec_t){.at = at, .raw = raw, .err = "json_invalid", .err_loc = root},
             "%s: %s (%s)", where, raw, why);
    json_decref(root);
}

static void huge_number_cases(gen_t *g, const json_t *at) {
    json_invalid_case(g, at, "1e400", "beyond a double: jansson refuses it");
    json_invalid_case(g, at, "9223372036854775808", "2^63: beyond int64");
    json_invalid_case(g, at, "-9223372036854775809", "-2^63-1: beyond int64");
}

static void wrong_type_cases(gen_t *g, const chanc_schema_t *s, const json_t *at,
                             const char *where) {
    for (probe_t p = 0; p < P_COUNT; p++) {
        if (p == P_NULL && s->nullable && s->kind != CHANC_SCHEMA_ANY) {
            add_case(g, &(spec_t){.at = at, .value = json_null()}, "%s: null (nullable)", where);
            continue;
        }
        if (kind_accepts(s, p))
            continue;
        add_case(g, &(spec_t){.at = at, .value = probe_value(p), .err = type_error(s)},
                 "%s: %s (wrong type)", where, probe_name[p]);
    }
}

static const char *length_error(const chanc_schema_t *s, size_t n, bool array) {
    if (n < s->min_length)
        return array ? "too_short" : "string_too_short";
    if (s->max_length && n > s->max_length)
        return array ? "too_long" : "string_too_long";
    return NULL;
}

/* min-1, min, max, max+1 (those that exist), ascending, without repeats. */
static size_t bound_lengths(const chanc_schema_t *s, size_t out[4]) {
    size_t n = 0, want[4];
    size_t k = 0;
    if (s->min_length) {
        want[k++] = s->min_length - 1;
        want[k++] = s->min_length;
    }
    if (s->max_length) {
        want[k++] = s->max_length;
        want[k++] = s->max_length + 1;
    }
    for (size_t i = 0; i < k; i++)
        if (n == 0 || want[i] > out[n - 1])
            out[n++] = want[i];
    return n;
}

static void string_cases(gen_t *g, const chanc_schema_t *s, const json_t *at, const char *where) {
    size_t lens[4], n = bound_lengths(s, lens);
    for (size_t i = 0; i < n; i++) {
        const char *err = length_error(s, lens[i], false);
        add_case(g, &(spec_t){.at = at, .value = repeat("x", lens[i]), .err = err},
                 "%s: %zu code points of ASCII", where, lens[i]);
        if (lens[i])
            add_case(g, &(spec_t){.at = at, .value = repeat(WIDE, lens[i]), .err = err},
                     "%s: %zu code points of U+1F600 (%zu bytes)", where, lens[i], 4 * lens[i]);
    }
    /* Unicode edges at a valid length. */
    size_t len = valid_length(s);
    add_case(g, &(spec_t){.at = at, .value = repeat("\xEF\xBF\xBF", len)},
             "%s: %zu code points of U+FFFF", where, len);
    size_t rl = len * 12 + 3;
    char *raw = malloc(rl);
    if (raw) {
        raw[0] = '"';
        for (size_t i = 0; i < len; i++)
            memcpy(raw + 1 + i * 12, "\\ud83d\\ude00", 12);
        memcpy(raw + 1 + len * 12, "\"", 2);
        add_case(g, &(spec_t){.at = at, .raw = raw},
                 "%s: %zu escaped surrogate pairs (\\ud83d\\ude00, one code point each)", where,
                 len);
        free(raw);
    }
    json_invalid_case(g, at, "\"\\ud800\"", "an escaped lone high surrogate: jansson refuses it");
    json_invalid_case(g, at, "\"\\udc00\"", "an escaped lone low surrogate: jansson refuses it");
    json_invalid_case(g, at, "\"a\\u0000b\"", "an escaped NUL: jansson refuses it");
}

static void number_case(gen_t *g, const chanc_schema_t *s, const json_t *at, const char *where,
                        double v, const char *what) {
    char raw[40];
    if (s->kind == CHANC_SCHEMA_INTEGER)
        snprintf(raw, sizeof raw, "%.0f", v);
    else
        snprintf(raw, sizeof raw, "%.17g", v);
    add_case(g, &(spec_t){.at = at, .raw = raw, .err = number_error(s, v)}, "%s: %s (%s)", where,
             raw, what);
}

static void number_cases(gen_t *g, const chanc_schema_t *s, const json_t *at, const char *where) {
    bool integer = s->kind == CHANC_SCHEMA_INTEGER;
    if (s->has_minimum) {
        double m = integer ? ceil(s->minimum) : s->minimum;
        number_case(g, s, at, where, integer ? m - 1 : nextafter(m, -INFINITY), "below the minimum");
        number_case(g, s, at, where, m, "the minimum");
    }
    if (s->has_maximum) {
        double m = integer ? floor(s->maximum) : s->maximum;
        number_case(g, s, at, where, m, "the maximum");
        number_case(g, s, at, where, integer ? m + 1 : nextafter(m, INFINITY), "above the maximum");
    }
    /* The int64 extremes jansson still holds. */
    const char *ext[] = {"9223372036854775807", "-9223372036854775808"};
    double extv[] = {9223372036854775807.0, -9223372036854775808.0};
    for (int i = 0; i < 2; i++)
        add_case(g, &(spec_t){.at = at, .raw = ext[i], .err = number_error(s, extv[i])},
                 "%s: %s (%s)", where, ext[i], i ? "INT64_MIN" : "INT64_MAX");
    if (integer)
        add_case(g, &(spec_t){.at = at, .raw = "1.0", .err = "int_type"},
                 "%s: 1.0 (a real, even when integral)", where);
    if (at && json_array_size(at) > 1)
        huge_number_cases(g, at); /* the payload's own are made once, by type_cases */
}

static void object_cases(gen_t *g, const chanc_schema_t *s, const json_t *at, int depth,
                         const char *where) {
    json_t *saved = g->base;
    for (const chanc_field_t *f = s->fields; f && f->name; f++) {
        json_t *fl = loc_plus(at, json_string(f->name));
        if (!f->optional) {
            add_case(g, &(spec_t){.at = fl, .remove = true, .err = "missing"},
                     "%s: required field \"%s\" missing", where, f->name);
            node_cases(g, f->schema, fl, depth + 1);
        } else {
            /* present for its own cases; absent in the base (valid) */
            g->base = json_deep_copy(saved);
            put_at(&g->base, fl, 1, valid_value(f->schema, depth + 1));
            node_cases(g, f->schema, fl, depth + 1);
            json_decref(g->base);
            g->base = saved;
        }
        json_decref(fl);
    }
    json_t *xl = loc_plus(at, json_string(EXTRA_KEY));
    bool forbid = s->extra == CHANC_EXTRA_FORBID;
    add_case(g, &(spec_t){.at = xl, .value = json_integer(1), .err = forbid ? "extra_forbidden" : NULL},
             "%s: undeclared key \"" EXTRA_KEY "\" (%s)", where, forbid ? "forbidden" : "kept");
    json_decref(xl);
}

static void array_cases(gen_t *g, const chanc_schema_t *s, const json_t *at, int depth,
                        const char *where) {
    size_t lens[4], n = bound_lengths(s, lens);
    for (size_t i = 0; i < n; i++) {
        json_t *a = json_array();
        for (size_t k = 0; k < lens[i]; k++)
            json_array_append_new(a, valid_value(s->items, depth + 1));
        add_case(g, &(spec_t){.at = at, .value = a, .err = length_error(s, lens[i], true)},
                 "%s: %zu item%s", where, lens[i], lens[i] == 1 ? "" : "s");
    }
    if (!s->items)
        return;
    /* The item's own cases, as item 0 of an array of valid length. */
    json_t *saved = g->base;
    json_t *a = json_array();
    for (size_t k = 0; k < valid_length(s); k++)
        json_array_append_new(a, valid_value(s->items, depth + 1));
    g->base = json_deep_copy(saved);
    put_at(&g->base, at, 1, a);
    json_t *il = loc_plus(at, json_integer(0));
    node_cases(g, s->items, il, depth + 1);
    json_decref(il);
    json_decref(g->base);
    g->base = saved;
}

static void node_cases(gen_t *g, const chanc_schema_t *s, const json_t *at, int depth) {
    if (!s || depth > MAX_DEPTH)
        return;
    char where[160];
    loc_text(at, where, sizeof where);
    wrong_type_cases(g, s, at, where);
    switch (s->kind) {
    case CHANC_SCHEMA_STRING: string_cases(g, s, at, where); break;
    case CHANC_SCHEMA_INTEGER:
    case CHANC_SCHEMA_NUMBER: number_cases(g, s, at, where); break;
    case CHANC_SCHEMA_OBJECT: object_cases(g, s, at, depth, where); break;
    case CHANC_SCHEMA_ARRAY: array_cases(g, s, at, depth, where); break;
    default: break;
    }
}

json_t *chanc_schema_cases(const chanc_message_type_t *type) {
    if (!type || !type->action)
        return NULL;
    bool null_payload = !type->payload || type->payload->kind == CHANC_SCHEMA_NULL;
    gen_t g = {.type = type, .cases = json_array()};
    g.base = null_payload ? NULL : valid_value(type->payload, 0);
    json_t *root = json_pack("[s]", "payload");
    add_case(&g, &(spec_t){0}, "the minimal valid frame");
    if (null_payload) {
        add_case(&g, &(spec_t){.at = root, .value = json_null()}, "payload: null");
        for (probe_t p = P_BOOL; p < P_COUNT; p++)
            add_case(&g, &(spec_t){.at = root, .value = probe_value(p), .err = "none_required"},
                     "payload: %s (must be null or absent)", probe_name[p]);
    } else {
        add_case(&g, &(spec_t){.at = root, .remove = true, .err = "missing"}, "payload: missing");
        node_cases(&g, type->payload, root, 0);
    }
    huge_number_cases(&g, root);
    json_t *xl = json_pack("[s]", EXTRA_KEY);
    add_case(&g, &(spec_t){.extra = true, .err = "extra_forbidden", .err_loc = xl},
             "an undeclared top-level key \"" EXTRA_KEY "\"");
    json_decref(xl);
    json_decref(root);
    json_decref(g.base);
    return g.cases;
}

/* --- running them ------------------------------------------------------------------- */

/* Whether got (the frames answering case k, completions dropped) is its
 * documented answer; if not, why in msg. */
static bool is_action(const json_t *frame, const char *action) {
    const char *a = chanc_json_str(frame, "/action");
    return a && strcmp(a, action) == 0;
}

static bool check_answer(const json_t *k, const json_t *got, char *msg, size_t n) {
    bool valid = json_is_true(json_object_get(k, "valid"));
    const json_t *want = json_object_get(k, "errors");
    if (valid) {
        size_t i;
        json_t *f;
        json_array_foreach(got, i, f) {
            if (is_action(f, "error") && json_is_array(json_object_get(f, "payload"))) {
                char *text = chanc_json_dump(f);
                snprintf(msg, n, "a valid frame was refused: %.600s", text ? text : "?");
                free(text);
                return false;
            }
        }
        return true;
    }
    json_t *f = json_array_get(got, 0);
    json_t *items = json_object_get(f, "payload");
    bool ok = json_array_size(got) == 1 && json_is_array(items) && is_action(f, "error") &&
              json_array_size(items) == json_array_size(want);
    for (size_t i = 0; ok && i < json_array_size(want); i++) {
        json_t *w = json_array_get(want, i), *item = json_array_get(items, i);
        ok = json_equal(json_object_get(w, "type"), json_object_get(item, "type")) &&
             json_equal(json_object_get(w, "loc"), json_object_get(item, "loc"));
    }
    if (ok)
        return true;
    char *wt = chanc_json_dump(want), *gt = chanc_json_dump(got);
    snprintf(msg, n, "expected one error frame with the items %.400s\n  received: %.800s",
             wt ? wt : "?", gt ? gt : "?");
    free(wt);
    free(gt);
    return false;
}

size_t chanc_assert_schema_cases_at(chanc_communicator_t *c, const chanc_message_type_t *type,
                                    const char *file, int line) {
    /* Static: the failure handler may jump out of this function. */
    static char msg[2048];
    json_t *cases = chanc_schema_cases(type);
    if (!cases) {
        chanc__report_failure(c, file, line, "chanc_assert_schema_cases: no message type");
        return 0;
    }
    chanc_test_t *t = chanc__communicator_test(c);
    size_t limit = t->app ? chanc_app_max_frame(t->app) : CHANC_DEFAULT_MAX_FRAME;
    size_t passed = 0, skipped = 0, valid = 0, n = json_array_size(cases);
    const char *again = NULL; /* the first valid case's frame */
    msg[0] = '\0';
    size_t i;
    json_t *k;
    json_array_foreach(cases, i, k) {
        const char *frame = chanc_json_str(k, "/frame");
        if (strlen(frame) > limit) {
            skipped++;
            continue;
        }
        if (!again && json_is_true(json_object_get(k, "valid")))
            again = frame;
        if (chanc_communicator_send_text(c, frame) != 0 || chanc_communicator_closed(c)) {
            snprintf(msg, sizeof msg, "derived case %zu of %zu (%s): the connection is closed "
                     "(code %d)", i + 1, n, chanc_json_str(k, "/name"),
                     chanc_communicator_close_code(c));
            break;
        }
        json_t *got = chanc_communicator_receive_all_json(c, CHANC__HANG_MS);
        char why[1600];
        bool ok = check_answer(k, got, why, sizeof why);
        json_decref(got);
        if (ok && chanc_communicator_closed(c)) {
            snprintf(why, sizeof why, "the connection was closed (code %d \"%s\")",
                     chanc_communicator_close_code(c), chanc_communicator_close_reason(c));
            ok = false;
        }
        if (!ok) {
            snprintf(msg, sizeof msg, "derived case %zu of %zu of \"%s\" (%s), frame %.200s%s:\n  %s",
                     i + 1, n, type->action, chanc_json_str(k, "/name"), frame,
                     strlen(frame) > 200 ? "…" : "", why);
            break;
        }
        valid += json_is_true(json_object_get(k, "valid"));
        passed++;
    }
    if (!msg[0] && again) {
        /* Still usable: the valid frame again, accepted. */
        chanc_communicator_send_text(c, again);
        json_t *got = chanc_communicator_receive_all_json(c, CHANC__HANG_MS);
        char why[1600];
        if (!check_answer(json_array_get(cases, 0), got, why, sizeof why) ||
            chanc_communicator_closed(c))
            snprintf(msg, sizeof msg, "after the derived cases of \"%s\" the connection is not "
                     "usable: %s", type->action,
                     chanc_communicator_closed(c) ? "it is closed" : why);
        json_decref(got);
    }
    json_decref(cases);
    if (msg[0]) {
        chanc__report_failure(c, file, line, "%s", msg);
        return passed;
    }
    print_message("[ DERIVED  ] %s: %zu cases (%zu valid, %zu invalid)", type->action, passed,
                  valid, passed - valid);
    if (skipped)
        print_message("; %zu skipped (frames over the %zu-byte limit)", skipped, limit);
    print_message("\n");
    return passed;
}
