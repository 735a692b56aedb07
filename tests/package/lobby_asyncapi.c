/* lobby's AsyncAPI document, from the installed library: a user's app gets
 * one for free (chanc_asyncapi_document over its routes). Writes it to
 * argv[1] (tests/package/check validates it with @asyncapi/parser) after a
 * few checks of its own. lobby declares no outgoing list: the document
 * still lists what the framework sends. */
#include <stdio.h>
#include <string.h>

#include "lobby.h"

#define CHECK(cond)                                                     \
    do {                                                                \
        if (!(cond)) {                                                  \
            fprintf(stderr, "lobby_asyncapi: %s failed\n", #cond);      \
            return 1;                                                   \
        }                                                               \
    } while (0)

static int check(const json_t *doc) {
    const json_t *ch = json_object_get(json_object_get(doc, "channels"), "lobby");
    const json_t *ops = json_object_get(doc, "operations");
    CHECK(strcmp(json_string_value(json_object_get(doc, "asyncapi")), "3.0.0") == 0);
    CHECK(strcmp(json_string_value(json_object_get(ch, "address")), "/ws/lobby/") == 0);
    CHECK(json_array_size(json_object_get(json_object_get(ops, "lobby_receive"), "messages")) == 3);
    CHECK(json_object_get(json_object_get(ops, "lobby_send"), "security") != NULL);
    CHECK(json_object_get(json_object_get(json_object_get(doc, "components"), "messages"),
                          "authentication") != NULL);
    return 0;
}

int main(int argc, char **argv) {
    uv_loop_t loop;
    chanc_error_t err;
    const chanc_asyncapi_security_t session = {"session", "sessionid", "cookie",
                                               "lobby's session cookie"};
    const chanc_asyncapi_info_t info = {.title = "lobby", .version = "1.0.0",
                                        .host = "localhost:8000", .security = &session};
    chanc_app_config_t cfg;
    chanc_app_t *app;
    json_t *doc;
    int rc = 1;
    if (argc != 2) {
        fprintf(stderr, "usage: %s OUT.json\n", argv[0]);
        return 2;
    }
    memset(&cfg, 0, sizeof cfg);
    cfg.loop = &loop;
    if (uv_loop_init(&loop) != 0 || !(app = chanc_app_create(&cfg, &err)))
        return 1;
    doc = lobby_register(app) == 0 ? chanc_asyncapi_document(app, &info, &err) : NULL;
    if (doc && check(doc) == 0 && json_dump_file(doc, argv[1], JSON_INDENT(2)) == 0)
        rc = 0;
    else if (!doc)
        fprintf(stderr, "lobby_asyncapi: %s\n", err.text);
    json_decref(doc);
    chanc_app_destroy(app);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return rc;
}
