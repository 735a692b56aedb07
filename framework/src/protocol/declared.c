/* What a consumer declares it receives and sends (chanc_consumer_declared):
 * one list for the AsyncAPI generator, the test fixture's frame check and
 * the protocol coverage. */
#include "chanc/asyncapi.h"
#include "chanc/consumer.h"

/* The whole list is gathered here first, so that each type is counted
 * once even when the caller's array is smaller; past LIST_MAX (more types
 * than any protocol has) duplicates are no longer recognised. */
#define LIST_MAX 256

typedef struct {
    const chanc_message_type_t *t[LIST_MAX];
    size_t n;
} list_t;

static void add(list_t *l, const chanc_message_type_t *t) {
    if (!t)
        return;
    size_t kept = l->n < LIST_MAX ? l->n : LIST_MAX;
    for (size_t i = 0; i < kept; i++)
        if (l->t[i] == t)
            return;
    if (l->n < LIST_MAX)
        l->t[l->n] = t;
    l->n++;
}

static void add_all(list_t *l, const chanc_message_type_t *const *types) {
    for (size_t i = 0; types && types[i]; i++)
        add(l, types[i]);
}

size_t chanc_consumer_declared(const chanc_consumer_t *k, chanc_declared_t which,
                               const chanc_message_type_t **out, size_t cap) {
    list_t l;
    l.n = 0;
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
        add_all(&l, k->outgoing);
        for (const chanc_action_t *a = k->actions; a && a->type; a++)
            add_all(&l, a->replies);
    }
    size_t n = l.n < cap - 1 ? l.n : cap - 1;
    n = n < LIST_MAX ? n : LIST_MAX;
    for (size_t i = 0; i < n; i++)
        out[i] = l.t[i];
    out[n] = NULL;
    return l.n;
}
