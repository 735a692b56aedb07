/* JSON helpers shared by apps and tests. */
#ifndef CHANC_JSON_H
#define CHANC_JSON_H

#include <jansson.h>
#include <stdint.h>

#include "chanc/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* RFC 6901 JSON pointer lookup ("/payload/items/0/name", "" = root).
 * Returns a borrowed reference or NULL. */
CHANC_API json_t *chanc_json_ptr(const json_t *root, const char *pointer);
/* String at pointer (borrowed) or NULL when absent or not a string. */
CHANC_API const char *chanc_json_str(const json_t *root, const char *pointer);
/* Integer at pointer, or dflt when absent or not an integer. */
CHANC_API int64_t chanc_json_int(const json_t *root, const char *pointer, int64_t dflt);

/* Compact encoding as a malloc'd string ("<null>" for NULL input);
 * caller frees. */
CHANC_API char *chanc_json_dump(const json_t *value);

#ifdef __cplusplus
}
#endif
#endif
