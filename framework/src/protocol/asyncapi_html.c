/* The AsyncAPI document's reference page (chanc_asyncapi_html): one
 * self-contained HTML page, every value escaped, nothing fetched. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chanc/asyncapi.h"

typedef struct out {
    char *p;
    size_t len, cap;
    bool oom;
} out_t;

static void put(out_t *o, const char *s, size_t n) {
    if (o->oom)
        return;
    if (o->len + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 4096;
        while (cap < o->len + n + 1)
            cap *= 2;
        char *p = realloc(o->p, cap);
        if (!p) {
            o->oom = true;
            return;
        }
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static void puts_(out_t *o, const char *s) { put(o, s, strlen(s)); }

/* n bytes of s, HTML-escaped. */
static void esc_n(out_t *o, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        switch (s[i]) {
        case '&': puts_(o, "&amp;"); break;
        case '<': puts_(o, "&lt;"); break;
        case '>': puts_(o, "&gt;"); break;
        case '"': puts_(o, "&quot;"); break;
        case '\'': puts_(o, "&#39;"); break;
        default: put(o, s + i, 1);
        }
    }
}

static void esc(out_t *o, const char *s) { esc_n(o, s, s ? strlen(s) : 0); }

/* Prose (descriptions): escaped, `code` spans as <code>. */
static void prose(out_t *o, const char *s) {
    bool code = false;
    for (const char *tick; s && (tick = strchr(s, '`')) != NULL; s = tick + 1) {
        esc_n(o, s, (size_t)(tick - s));
        puts_(o, code ? "</code>" : "<code>");
        code = !code;
    }
    esc(o, s);
    if (code)
        puts_(o, "</code>");
}

/* Pieces: a NULL-terminated list where an odd position is escaped text and
 * an even one raw HTML: raw, text, raw, text, …, NULL. */
static void html(out_t *o, ...) {
    va_list ap;
    va_start(ap, o);
    bool text = false;
    for (const char *s; (s = va_arg(ap, const char *)) != NULL; text = !text)
        text ? esc(o, s) : puts_(o, s);
    va_end(ap);
}

/* A string member, "" when absent (a NULL would end html()'s list). */
static const char *str(const json_t *o, const char *key) {
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static int pre_chunk(const char *buffer, size_t size, void *data) {
    esc_n(data, buffer, size);
    return ((out_t *)data)->oom ? -1 : 0;
}

/* Pretty JSON, escaped, written straight into the page (nothing
 * allocated by jansson: its allocator may be a test's ledger). */
static void pre_json(out_t *o, const json_t *v) {
    puts_(o, "<pre>");
    json_dump_callback(v, pre_chunk, o, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    puts_(o, "</pre>\n");
}

/* The message a "#/channels/x/messages/y" or "#/components/messages/y"
 * reference names, and its key. */
static const json_t *resolve(const json_t *doc, const char *ref, const char **key) {
    const char *slash = strrchr(ref, '/');
    *key = slash ? slash + 1 : "";
    return json_object_get(json_object_get(json_object_get(doc, "components"), "messages"), *key);
}

static void message_list(out_t *o, const json_t *doc, const json_t *refs) {
    size_t i;
    const json_t *ref;
    puts_(o, "<ul>\n");
    json_array_foreach(refs, i, ref) {
        const char *key;
        const json_t *m = resolve(doc, str(ref, "$ref"), &key);
        html(o, "<li><a href=\"#message-", key, "\"><code>", str(m, "name"), "</code></a>", NULL);
        if (strcmp(key, str(m, "name")) != 0)
            html(o, " (", key, ")", NULL);
        puts_(o, "</li>\n");
    }
    puts_(o, "</ul>\n");
}

/* A description as a paragraph (nothing when empty). */
static void para(out_t *o, const char *open, const char *s, const char *close) {
    if (!*s)
        return;
    puts_(o, open);
    prose(o, s);
    puts_(o, close);
}

static void page_head(out_t *o, const json_t *doc, const char *stylesheet) {
    const json_t *info = json_object_get(doc, "info");
    html(o, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>",
         str(info, "title"), " — protocol reference</title>\n", NULL);
    if (stylesheet)
        html(o, "<link rel=\"stylesheet\" href=\"", stylesheet, "\">\n", NULL);
    html(o, "</head>\n<body class=\"docs\">\n<main>\n<h1>", str(info, "title"), "</h1>\n<p>Version ",
         str(info, "version"), " · AsyncAPI ", str(doc, "asyncapi"),
         " · the machine-readable document: <a href=\"asyncapi.json\">asyncapi.json</a></p>\n",
         NULL);
    para(o, "<p class=\"description\">", str(info, "description"), "</p>\n");
}

/* Servers and the security schemes. */
static void page_servers(out_t *o, const json_t *doc) {
    const char *key;
    const json_t *v;
    const json_t *servers = json_object_get(doc, "servers");
    if (json_object_size(servers)) {
        puts_(o, "<h2>Servers</h2>\n<ul>\n");
        json_object_foreach((json_t *)servers, key, v) {
            html(o, "<li><code>", str(v, "protocol"), "://", str(v, "host"), NULL);
            html(o, "", str(v, "pathname"), "</code>", NULL);
            para(o, " — ", str(v, "description"), "");
            puts_(o, "</li>\n");
        }
        puts_(o, "</ul>\n");
    }
    const json_t *schemes =
        json_object_get(json_object_get(doc, "components"), "securitySchemes");
    if (json_object_size(schemes)) {
        puts_(o, "<h2>Authentication</h2>\n<ul>\n");
        json_object_foreach((json_t *)schemes, key, v) {
            html(o, "<li><strong>", key, "</strong>: ", str(v, "type"), " <code>", str(v, "name"),
                 "</code> in ", str(v, "in"), NULL);
            para(o, " — ", str(v, "description"), "");
            puts_(o, "</li>\n");
        }
        puts_(o, "</ul>\n");
    }
}

/* The operations of channel key: what each side sends, and the replies. */
static void page_operations(out_t *o, const json_t *doc, const char *key) {
    const char *opkey;
    const json_t *op;
    json_object_foreach(json_object_get(doc, "operations"), opkey, op) {
        const char *slash = strrchr(str(json_object_get(op, "channel"), "$ref"), '/');
        if (!slash || strcmp(slash + 1, key) != 0)
            continue;
        bool recv = strcmp(str(op, "action"), "receive") == 0;
        html(o, "<h4>", recv ? "Client → server (receive)" : "Server → client (send)", "</h4>\n",
             NULL);
        para(o, "<p>", str(op, "summary"), "</p>\n");
        if (json_array_size(json_object_get(op, "security")))
            puts_(o, "<p>Requires authentication (see above).</p>\n");
        message_list(o, doc, json_object_get(op, "messages"));
        const json_t *reply = json_object_get(op, "reply");
        if (reply) {
            puts_(o, "<p>Answered with:</p>\n");
            message_list(o, doc, json_object_get(reply, "messages"));
        }
    }
}

static void page_channel(out_t *o, const json_t *doc, const char *key, const json_t *v) {
    html(o, "<section id=\"channel-", key, "\">\n<h3><code>", str(v, "address"), "</code></h3>\n",
         NULL);
    para(o, "<p>", str(v, "description"), "</p>\n");
    const json_t *params = json_object_get(v, "parameters");
    if (json_object_size(params)) {
        puts_(o, "<p>Parameters:</p>\n<ul>\n");
        const char *pk;
        const json_t *pv;
        json_object_foreach((json_t *)params, pk, pv)
            html(o, "<li><code>", pk, "</code>: ", str(pv, "description"), "</li>\n", NULL);
        puts_(o, "</ul>\n");
    }
    page_operations(o, doc, key);
    const json_t *events = json_object_get(v, "x-chanc-events");
    if (json_array_size(events)) {
        puts_(o, "<h4>Server events (for the consumers; one may pass an event on to its "
                 "client as the outgoing message of its action)</h4>\n<ul>\n");
        size_t i;
        const json_t *e;
        json_array_foreach(events, i, e) {
            html(o, "<li><code>", str(e, "name"), "</code>", NULL);
            para(o, " — ", str(e, "description"), "");
            puts_(o, "</li>\n");
        }
        puts_(o, "</ul>\n");
    }
    puts_(o, "</section>\n");
}

static void page_messages(out_t *o, const json_t *doc) {
    const json_t *components = json_object_get(doc, "components");
    const char *key;
    const json_t *v;
    puts_(o, "<h2>Messages</h2>\n<p>Each is one JSON text frame; its schema is the whole "
             "frame. String lengths count characters (Unicode code points).</p>\n");
    json_object_foreach(json_object_get(components, "messages"), key, v) {
        html(o, "<section id=\"message-", key, "\">\n<h3><code>", str(v, "name"), "</code>", NULL);
        if (strcmp(key, str(v, "name")) != 0)
            html(o, " (", key, ")", NULL);
        puts_(o, "</h3>\n");
        para(o, "<p>", str(v, "description"), "</p>\n");
        const char *slash = strrchr(str(json_object_get(v, "payload"), "$ref"), '/');
        const json_t *schema =
            slash ? json_object_get(json_object_get(components, "schemas"), slash + 1) : NULL;
        if (schema)
            pre_json(o, schema);
        puts_(o, "</section>\n");
    }
}

static void page_close_codes(out_t *o, const json_t *doc) {
    const json_t *codes = json_object_get(json_object_get(doc, "info"), "x-chanc-close-codes");
    if (!json_array_size(codes))
        return;
    puts_(o, "<h2>Close codes</h2>\n<table>\n<tr><th>code</th><th>meaning</th></tr>\n");
    size_t i;
    const json_t *v;
    json_array_foreach(codes, i, v) {
        char num[24];
        snprintf(num, sizeof num, "%lld", (long long)json_integer_value(json_object_get(v, "code")));
        html(o, "<tr><td>", num, "</td><td>", str(v, "meaning"), "</td></tr>\n", NULL);
    }
    puts_(o, "</table>\n");
}

char *chanc_asyncapi_html(const json_t *doc, const char *stylesheet) {
    out_t o = {0};
    page_head(&o, doc, stylesheet);
    page_servers(&o, doc);
    puts_(&o, "<h2>Channels</h2>\n");
    const char *key;
    const json_t *v;
    json_object_foreach(json_object_get(doc, "channels"), key, v) page_channel(&o, doc, key, v);
    page_messages(&o, doc);
    page_close_codes(&o, doc);
    puts_(&o, "</main>\n</body>\n</html>\n");
    if (o.oom) {
        free(o.p);
        return NULL;
    }
    return o.p;
}
