/* JSON subset matching for assertions, and the text that explains a
 * mismatch ("at /payload/username: expected "bob", got "alice""). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chanc/json.h"
#include "testing_internal.h"

static bool numbers_equal(const json_t *a, const json_t *b) {
    if (json_is_integer(a) && json_is_integer(b))
        return json_integer_value(a) == json_integer_value(b);
    return json_number_value(a) == json_number_value(b);
}

/* The text of a mismatch, never NULL: out of memory must not read as "it
 * matches" (an assertion passing), nor crash the path building below. */
static char *text(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *text(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = chanc_vstrdupf(fmt, ap);
    va_end(ap);
    if (!s && !(s = strdup("(out of memory describing a mismatch)")))
        abort();
    return s;
}

static char *differ(const json_t *value, const json_t *pattern, const char *path) {
    char *ps = chanc_json_dump(pattern), *vs = chanc_json_dump(value);
    char *out = text("at %s: expected %s, got %s", *path ? path : "/", ps, vs);
    free(ps);
    free(vs);
    return out;
}

/* NULL on match, else a malloc'd description; path = pointer of value. */
static char *mismatch(const json_t *value, const json_t *pattern, const char *path) {
    if (json_is_object(pattern)) {
        if (!json_is_object(value))
            return differ(value, pattern, path);
        const char *key;
        json_t *pv;
        json_object_foreach((json_t *)pattern, key, pv) {
            char *sub = text("%s/%s", path, key);
            json_t *vv = json_object_get(value, key);
            char *out;
            if (!vv) {
                char *ps = chanc_json_dump(pv);
                out = text("at %s: expected %s, but the key is missing", sub, ps);
                free(ps);
            } else {
                out = mismatch(vv, pv, sub);
            }
            free(sub);
            if (out)
                return out;
        }
        return NULL;
    }
    if (json_is_array(pattern)) {
        if (!json_is_array(value))
            return differ(value, pattern, path);
        if (json_array_size(value) != json_array_size(pattern))
            return text("at %s: expected an array of %zu item(s), got %zu",
                                       *path ? path : "/", json_array_size(pattern),
                                       json_array_size(value));
        for (size_t i = 0; i < json_array_size(pattern); i++) {
            char *sub = text("%s/%zu", path, i);
            char *out = mismatch(json_array_get(value, i), json_array_get(pattern, i), sub);
            free(sub);
            if (out)
                return out;
        }
        return NULL;
    }
    if (json_is_number(pattern) && json_is_number(value) && numbers_equal(value, pattern))
        return NULL;
    if (value && json_equal((json_t *)value, (json_t *)pattern))
        return NULL;
    return differ(value, pattern, path);
}

char *chanc_json_mismatch(const json_t *value, const json_t *pattern) {
    return mismatch(value, pattern, "");
}

bool chanc_json_match(const json_t *value, const json_t *pattern) {
    char *m = mismatch(value, pattern, "");
    free(m);
    return m == NULL;
}

json_t *chanc_json_find(const json_t *array, const char *pattern) {
    json_error_t err;
    json_t *p = json_loads(pattern, JSON_DECODE_ANY, &err);
    if (!p) {
        fprintf(stderr, "chanc_json_find: bad pattern %s: %s\n", pattern, err.text);
        return NULL;
    }
    json_t *found = NULL;
    size_t i;
    json_t *v;
    json_array_foreach((json_t *)array, i, v) {
        if (chanc_json_match(v, p)) {
            found = v;
            break;
        }
    }
    json_decref(p);
    return found;
}
