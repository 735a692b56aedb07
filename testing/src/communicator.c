/* The communicator's core: one simulated client, whichever transport
 * carries its frames (communicator_internal.h). It keeps the connection's
 * state, the inbox of frames received (read once the transport has
 * settled), the transcript, and the switches of fault injection. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "communicator_internal.h"

chanc_communicator_t *chanc__communicator_next(const chanc_communicator_t *c) { return c->next; }
chanc_communicator_t **chanc__communicator_link(chanc_communicator_t *c) { return &c->next; }
chanc_test_t *chanc__communicator_test(const chanc_communicator_t *c) { return c->t; }
const char *chanc_communicator_path(const chanc_communicator_t *c) { return c->path; }
const json_t *chanc_communicator_transcript(const chanc_communicator_t *c) { return c->transcript; }
bool chanc_communicator_closed(chanc_communicator_t *c) {
    return c->state == COMM_CLOSED || c->state == COMM_REFUSED;
}
int chanc_communicator_close_code(const chanc_communicator_t *c) { return c->close_code; }
const char *chanc_communicator_close_reason(const chanc_communicator_t *c) {
    return c->close_reason;
}

chanc_communicator_t *chanc__communicator_new(chanc_test_t *t, char *path) {
    /* A live server's fixture speaks over sockets, any other in process. */
    const comm_transport_t *transport =
        t->priv->remote_port ? &chanc__comm_socket : &chanc__comm_inproc;
    chanc_communicator_t *c = calloc(1, transport->size);
    if (!c) {
        free(path);
        return NULL;
    }
    c->t = t;
    c->transport = transport;
    c->path = path;
    c->transcript = json_array();
    return c;
}

void chanc__communicator_free(chanc_communicator_t *c) {
    if (c->transport->dispose)
        c->transport->dispose(c);
    for (size_t i = c->inbox_head; i < c->inbox_len; i++)
        chanc_buf_unref(c->inbox[i]);
    free(c->inbox);
    chanc__headers_dispose(&c->headers);
    json_decref(c->transcript);
    free(c->path);
    free(c);
}

int chanc_communicator_set_header(chanc_communicator_t *c, const char *name, const char *value) {
    return chanc__headers_set(&c->headers, name, value);
}

/* --- the transcript and the inbox (what the transports report) ------------- */

void chanc__communicator_record(chanc_communicator_t *c, const char *dir, const char *text,
                                size_t len, int code) {
    struct chanc_test_private *p = c->t->priv;
    chanc__oom_harness_enter();
    json_t *e = json_object();
    uint64_t ms = p->remote_port ? chanc__real_ms() - p->start_real : p->mono_ms - p->start_mono;
    json_object_set_new(e, "t", json_integer((json_int_t)ms));
    json_object_set_new(e, "dir", json_string(dir));
    if (text)
        json_object_set_new(e, "frame", json_stringn(text, len));
    if (!json_object_get(e, "frame") && text) /* not UTF-8: keep a note of it */
        json_object_set_new(e, "frame", json_sprintf("<%zu bytes, not UTF-8>", len));
    if (code)
        json_object_set_new(e, "code", json_integer(code));
    /* Out of memory (an allocation-failure sweep): no half entry. */
    if (json_object_size(e) == 2u + !!text + !!code)
        json_array_append(c->transcript, e);
    json_decref(e);
    chanc__oom_harness_leave();
}

/* End of the frames the client has read: all of them unless it stopped. */
static size_t readable_end(const chanc_communicator_t *c) {
    return c->stopped ? c->inbox_readable : c->inbox_len;
}

int chanc__communicator_push(chanc_communicator_t *c, chanc_buf_t *frame) {
    if (c->inbox_len == c->inbox_cap) {
        /* Compact consumed slots before growing. */
        if (c->inbox_head) {
            memmove(c->inbox, c->inbox + c->inbox_head,
                    (c->inbox_len - c->inbox_head) * sizeof *c->inbox);
            c->inbox_len -= c->inbox_head;
            if (c->stopped)
                c->inbox_readable -= c->inbox_head;
            c->inbox_head = 0;
        }
        if (c->inbox_len == c->inbox_cap) {
            size_t cap = c->inbox_cap ? c->inbox_cap * 2 : 16;
            chanc_buf_t **in = realloc(c->inbox, cap * sizeof *in);
            if (!in)
                return CHANC_ENOMEM;
            c->inbox = in;
            c->inbox_cap = cap;
        }
    }
    c->inbox[c->inbox_len++] = chanc_buf_ref(frame);
    chanc__communicator_record(c, "recv", (const char *)frame->data, frame->len, 0);
    return 0;
}

void chanc__communicator_opened(chanc_communicator_t *c) {
    c->state = COMM_OPEN;
    chanc__communicator_record(c, "open", c->path, strlen(c->path), 0);
}

void chanc__communicator_refused(chanc_communicator_t *c, int code, const char *reason) {
    c->state = COMM_REFUSED;
    c->close_code = code;
    snprintf(c->close_reason, sizeof c->close_reason, "%s", reason);
    chanc__communicator_record(c, "refused", c->close_reason, strlen(c->close_reason), code);
}

bool chanc__communicator_server_closed(chanc_communicator_t *c, int code, const char *reason) {
    if (c->state != COMM_OPEN)
        return false;
    c->state = COMM_CLOSED;
    c->close_code = code;
    snprintf(c->close_reason, sizeof c->close_reason, "%s", reason);
    chanc__communicator_record(c, "close", reason, strlen(reason), code);
    return true;
}

/* --- fault injection ------------------------------------------------------- */

void chanc_communicator_fail_next_delivery(chanc_communicator_t *c) { c->fail_next_delivery = true; }

void chanc_communicator_stop_reading(chanc_communicator_t *c) {
    if (c->stopped)
        return;
    c->stopped = true;
    c->inbox_readable = c->inbox_len;
    c->queued_bytes = 0;
}

void chanc_communicator_resume_reading(chanc_communicator_t *c) {
    c->stopped = false;
    c->queued_bytes = 0;
}

void chanc_communicator_answer_pings(chanc_communicator_t *c, bool answer) {
    c->ignore_pings = !answer;
}

/* --- the client side ------------------------------------------------------- */

bool chanc__settle(chanc_communicator_t *c, uint64_t timeout_ms) {
    return c->transport->settle(c, timeout_ms);
}

bool chanc_communicator_connect(chanc_communicator_t *c, uint64_t timeout_ms) {
    if (c->state != COMM_NEW)
        return c->state == COMM_OPEN;
    return c->transport->connect(c, timeout_ms);
}

int chanc_communicator_send_raw(chanc_communicator_t *c, const void *data, size_t len,
                                bool binary) {
    if (c->state != COMM_OPEN)
        return CHANC_ECLOSED;
    if (binary)
        chanc__communicator_record(c, "send", "<binary frame>", 14, 0);
    else
        chanc__communicator_record(c, "send", data, len, 0);
    return c->transport->send(c, data, len, binary);
}

int chanc_communicator_send_text(chanc_communicator_t *c, const char *text) {
    return chanc_communicator_send_raw(c, text, strlen(text), false);
}

int chanc_communicator_send_json(chanc_communicator_t *c, json_t *frame) {
    if (!frame)
        return CHANC_EINVAL;
    char *text = chanc_json_dump(frame);
    json_decref(frame);
    if (!text)
        return CHANC_ENOMEM;
    int rc = chanc_communicator_send_raw(c, text, strlen(text), false);
    free(text);
    return rc;
}

int chanc_communicator_send_message(chanc_communicator_t *c, const chanc_message_type_t *type,
                                    json_t *payload) {
    json_t *frame = json_object();
    json_object_set_new(frame, "action", json_string(type->action));
    json_object_set_new(frame, "payload", payload ? payload : json_null());
    return chanc_communicator_send_json(c, frame);
}

void chanc_communicator_disconnect_code(chanc_communicator_t *c, int code) {
    if (c->state == COMM_NEW) {
        c->state = COMM_CLOSED;
        c->close_code = code;
        return;
    }
    if (c->state != COMM_OPEN)
        return;
    c->state = COMM_CLOSED;
    c->close_code = code;
    chanc__communicator_record(c, "disconnect", NULL, 0, code);
    c->transport->disconnect(c, code);
}

void chanc_communicator_disconnect(chanc_communicator_t *c) {
    chanc_communicator_disconnect_code(c, CHANC_CLOSE_NORMAL);
}

/* --- receiving --------------------------------------------------------------------- */

const chanc_buf_t *chanc__communicator_peek(const chanc_communicator_t *c) {
    return chanc__communicator_peek_at(c, 0);
}

const chanc_buf_t *chanc__communicator_peek_at(const chanc_communicator_t *c, size_t i) {
    return c->inbox_head + i < readable_end(c) ? c->inbox[c->inbox_head + i] : NULL;
}

const chanc_buf_t *chanc_communicator_peek_raw(chanc_communicator_t *c) {
    chanc__settle(c, 1000);
    return chanc__communicator_peek(c);
}

static json_t *parse_buf(const chanc_buf_t *b) {
    json_t *v = json_loadb((const char *)b->data, b->len, JSON_DECODE_ANY, NULL);
    return v ? v : json_stringn((const char *)b->data, b->len);
}

static json_t *pop(chanc_communicator_t *c) {
    chanc_buf_t *b = c->inbox[c->inbox_head++];
    json_t *v = parse_buf(b);
    chanc_buf_unref(b);
    return v;
}

size_t chanc_communicator_pending(chanc_communicator_t *c, uint64_t timeout_ms) {
    chanc__settle(c, timeout_ms);
    return readable_end(c) - c->inbox_head;
}

json_t *chanc_communicator_receive_json(chanc_communicator_t *c, uint64_t timeout_ms) {
    chanc__settle(c, timeout_ms);
    return c->inbox_head < readable_end(c) ? pop(c) : NULL;
}

json_t *chanc_communicator_receive_all_json(chanc_communicator_t *c, uint64_t timeout_ms) {
    chanc__settle(c, timeout_ms);
    json_t *all = json_array();
    while (c->inbox_head < readable_end(c)) {
        if (c->inbox[c->inbox_head]->flags & CHANC_BUF_COMPLETION) {
            chanc_buf_unref(c->inbox[c->inbox_head++]);
            continue;
        }
        json_array_append_new(all, pop(c));
    }
    return all;
}

json_t *chanc_communicator_receive_until_action(chanc_communicator_t *c, const char *action,
                                                uint64_t timeout_ms) {
    chanc__settle(c, timeout_ms);
    size_t end = c->inbox_head;
    for (; end < readable_end(c); end++) {
        json_t *v = parse_buf(c->inbox[end]);
        const char *a = json_string_value(json_object_get(v, "action")); /* NULL: none */
        bool hit = json_is_object(v) && strcmp(a ? a : "", action) == 0;
        json_decref(v);
        if (hit)
            break;
    }
    if (end == readable_end(c))
        return NULL;
    json_t *out = json_array();
    while (c->inbox_head <= end)
        json_array_append_new(out, pop(c));
    return out;
}

bool chanc_communicator_receive_nothing(chanc_communicator_t *c, uint64_t timeout_ms) {
    size_t all = chanc_communicator_pending(c, timeout_ms);
    for (size_t i = 0; i < all; i++)
        if (!(c->inbox[c->inbox_head + i]->flags & CHANC_BUF_COMPLETION))
            return false;
    while (c->inbox_head < readable_end(c)) /* only completions: drop them */
        chanc_buf_unref(c->inbox[c->inbox_head++]);
    return true;
}

void chanc_communicator_print_transcript(const chanc_communicator_t *c, FILE *out) {
    fprintf(out, "  transcript of %s:\n", c->path);
    size_t i;
    json_t *e;
    json_array_foreach(c->transcript, i, e) {
        const char *dir = json_string_value(json_object_get(e, "dir"));
        const char *frame = json_string_value(json_object_get(e, "frame"));
        json_int_t code = json_integer_value(json_object_get(e, "code"));
        const char *arrow = !strcmp(dir, "send") ? "→" : !strcmp(dir, "recv") ? "←" : "·";
        fprintf(out, "    %6lld ms %s %-10s", (long long)json_integer_value(json_object_get(e, "t")),
                arrow, dir);
        if (code)
            fprintf(out, " code %lld", (long long)code);
        if (frame)
            fprintf(out, " %.2000s%s", frame, strlen(frame) > 2000 ? "…" : "");
        fputc('\n', out);
    }
    size_t waiting = c->inbox_len - c->inbox_head;
    fprintf(out, "  not yet consumed (%zu):\n", waiting);
    for (size_t k = c->inbox_head; k < c->inbox_len; k++)
        fprintf(out, "    %s%.2000s\n", k >= readable_end(c) ? "(unread: client stopped reading) " : "",
                (const char *)c->inbox[k]->data);
}
