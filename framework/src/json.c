/* JSON pointer lookup and small jansson conveniences. */
#include <stdlib.h>
#include <string.h>

#include "chanc/json.h"

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

char *chanc_json_dump(const json_t *value) {
    if (!value)
        return strdup("<null>");
    char *s = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
    return s ? s : strdup("<unencodable>");
}
