/* JSON pointer lookup and small jansson conveniences. */
#include <stdlib.h>
#include <string.h>

#include "chanc/json.h"
#include "ledger_internal.h"

json_t *chanc_json_ptr(const json_t *root, const char *pointer) {
    json_t *cur = (json_t *)root;
    if (!cur || !pointer)
        return NULL;
    if (*pointer == '\0')
        return cur;
    if (*pointer != '/')
        return NULL;
    char token[256];
    const char *p = pointer;
    while (cur && *p == '/') {
        p++;
        size_t n = 0;
        /* Unescape ~1 → '/', ~0 → '~' (RFC 6901). */
        while (*p && *p != '/') {
            char ch = *p++;
            if (ch == '~' && (*p == '0' || *p == '1'))
                ch = *p++ == '0' ? '~' : '/';
            if (n + 1 >= sizeof token)
                return NULL;
            token[n++] = ch;
        }
        token[n] = '\0';
        if (json_is_object(cur)) {
            cur = json_object_get(cur, token);
        } else if (json_is_array(cur)) {
            char *end;
            if (n == 0 || (n > 1 && token[0] == '0'))
                return NULL;
            unsigned long idx = strtoul(token, &end, 10);
            if (*end)
                return NULL;
            cur = json_array_get(cur, idx);
        } else {
            return NULL;
        }
    }
    return cur;
}

const char *chanc_json_str(const json_t *root, const char *pointer) {
    return json_string_value(chanc_json_ptr(root, pointer));
}

int64_t chanc_json_int(const json_t *root, const char *pointer, int64_t dflt) {
    json_t *v = chanc_json_ptr(root, pointer);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

typedef struct dump_text {
    char *s;
    size_t len, cap;
} dump_text_t;

static int dump_append(const char *buffer, size_t size, void *data) {
    dump_text_t *d = data;
    if (d->len + size + 1 > d->cap) {
        size_t cap = d->cap ? d->cap : 128;
        while (cap < d->len + size + 1)
            cap *= 2;
        char *s = chanc__realloc(d->s, cap);
        if (!s)
            return -1;
        d->s = s;
        d->cap = cap;
    }
    memcpy(d->s + d->len, buffer, size);
    d->len += size;
    d->s[d->len] = '\0';
    return 0;
}

/* Plain malloc, not jansson's allocator (json_dumps): the text is freed
 * with free(), and a test's leak ledger counts only jansson's own memory. */
char *chanc_json_dump(const json_t *value) {
    if (!value)
        return chanc__strdup("<null>");
    dump_text_t d = {NULL, 0, 0};
    if (json_dump_callback(value, dump_append, &d, JSON_COMPACT | JSON_ENCODE_ANY) != 0 || !d.s) {
        free(d.s);
        return chanc__strdup("<unencodable>");
    }
    return d.s;
}
