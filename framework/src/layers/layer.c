/* The layer interface's own functions (chanc/layer.h); the layers
 * themselves: layer_memory.c, layer_redis.c. */
#include <string.h>

#include "chanc/layer.h"

void chanc_layer_destroy(chanc_layer_t *l) {
    if (l)
        l->ops->destroy(l);
}

int chanc_layer_stats(const chanc_layer_t *l, chanc_layer_stats_t *out) {
    if (!l || !out)
        return CHANC_EINVAL;
    memset(out, 0, sizeof *out);
    out->connected = true;
    if (l->ops->stats)
        l->ops->stats(l, out);
    return 0;
}
