/* What a consumer declares it receives and sends (chanc_consumer_declared):
 * one list for the AsyncAPI generator, the test fixture's frame check and
 * the protocol coverage. */
#include "chanc/asyncapi.h"
#include "chanc/consumer.h"

typedef struct {
    const chanc_message_type_t **out;
    size_t cap, n;
} list_t;

static void add(list_t *l, const chanc_message_type_t *t) {
    if (!t)
        return;
    size_t kept = l->n < l->cap - 1 ? l->n : l->cap - 1;
    for (size_t i = 0; i < kept; i++)
        if (l->out[i] == t)
            return;
    if (l->n < l->cap - 1)
        l->out[l->n] = t;
    l->n++;
}

static void add_all(list_t *l, const chanc_message_type_t *const *types) {
    for (size_t i = 0; types && types[i]; i++)
        add(l, types[i]);
}

size_t chanc_consumer_declared(const chanc_consumer_t *k, chanc_declared_t which,
                               const chanc_message_type_t **out, size_t cap) {
    list_t l = {out, cap, 0};
    if (which == CHANC_DECLARED_INCOMING) {
        if (k->incoming)
            add_all(&l, k->incoming);
        else
            for (const chanc_action_t *a = k->actions; a && a->type; a++)
                add(&l, a->type);
    } else if (which == CHANC_DECLARED_OUTGOING) {
        add(&l, &chanc_msg_authentication);
        add(&l, &chanc_msg_validation_error);
        if (k->receive_message || k->actions)
            add(&l, &chanc_msg_handler_error);
        if (k->send_completion) {
            add(&l, &chanc_msg_complete);
            add(&l, &chanc_msg_group_complete);
        }
        for (const chanc_action_t *a = k->actions; a && a->type; a++)
            add_all(&l, a->replies);
        add_all(&l, k->outgoing);
    }
    out[l.n < cap - 1 ? l.n : cap - 1] = NULL;
    return l.n;
}
