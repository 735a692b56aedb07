/* Files embedded in chat-server at build time (cmake/embed.cmake): the
 * page templates and static assets of chat/web/ and the demo fixtures. */
#ifndef CHAT_ASSETS_H
#define CHAT_ASSETS_H

#include <stddef.h>

typedef struct chat_asset {
    const char *name; /* file name, e.g. "room.js" */
    const char *data; /* NUL-terminated */
    size_t len;
} chat_asset_t;

/* Ends with a {NULL} entry. */
extern const chat_asset_t chat_assets[];

/* The asset called name, or NULL. */
const chat_asset_t *chat_asset_find(const char *name);

#endif
