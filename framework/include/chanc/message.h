/* Typed messages: payload schemas declared in C, incoming unions
 * discriminated on "action", validation into the documented error list
 * [{"type","loc","msg"}], and one-call construction of outgoing frames.
 *
 * Declare schemas and message types at file scope (the macros build
 * compound literals, which then have static storage):
 *
 *   static const chanc_message_type_t chat_msg = {
 *       .action = "chat",
 *       .payload = CHANC_STRING(.min_length = 1, .max_length = 4000),
 *   };
 *   static const chanc_message_type_t *const incoming[] = {&chat_msg, NULL};
 */
#ifndef CHANC_MESSAGE_H
#define CHANC_MESSAGE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "chanc/error.h"
#include "chanc/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    CHANC_SCHEMA_ANY = 0, /* any JSON value, null included */
    CHANC_SCHEMA_NULL,
    CHANC_SCHEMA_STRING,
    CHANC_SCHEMA_INTEGER,
    CHANC_SCHEMA_NUMBER, /* integer or real */
    CHANC_SCHEMA_BOOLEAN,
    CHANC_SCHEMA_OBJECT,
    CHANC_SCHEMA_ARRAY
} chanc_schema_kind_t;

/* What an object does with keys it does not declare. */
typedef enum {
    CHANC_EXTRA_FORBID = 0, /* default: one "extra_forbidden" error per key */
    CHANC_EXTRA_IGNORE      /* accepted and left in the payload */
} chanc_extra_t;

typedef struct chanc_schema chanc_schema_t;

typedef struct chanc_field {
    const char *name; /* NULL ends a field list */
    const chanc_schema_t *schema;
    bool optional; /* absent is fine; present must validate */
} chanc_field_t;

struct chanc_schema {
    chanc_schema_kind_t kind;
    bool nullable; /* also accept null */
    /* STRING: length in characters (code points); ARRAY: item count.
     * max 0 means unlimited. */
    size_t min_length, max_length;
    /* INTEGER / NUMBER bounds, used when has_minimum / has_maximum. */
    bool has_minimum, has_maximum;
    double minimum, maximum;
    /* OBJECT: fields, ended by a field with name NULL. */
    const chanc_field_t *fields;
    chanc_extra_t extra;
    /* ARRAY: schema of every item (NULL: any). */
    const chanc_schema_t *items;
};

#define CHANC_ANY(...) (&(const chanc_schema_t){.kind = CHANC_SCHEMA_ANY, __VA_ARGS__})
#define CHANC_NULL(...) (&(const chanc_schema_t){.kind = CHANC_SCHEMA_NULL, __VA_ARGS__})
#define CHANC_STRING(...) (&(const chanc_schema_t){.kind = CHANC_SCHEMA_STRING, __VA_ARGS__})
#define CHANC_INTEGER(...) (&(const chanc_schema_t){.kind = CHANC_SCHEMA_INTEGER, __VA_ARGS__})
#define CHANC_NUMBER(...) (&(const chanc_schema_t){.kind = CHANC_SCHEMA_NUMBER, __VA_ARGS__})
#define CHANC_BOOLEAN(...) (&(const chanc_schema_t){.kind = CHANC_SCHEMA_BOOLEAN, __VA_ARGS__})
/* CHANC_ARRAY(item_schema, options…); the options may be left out (one
 * variadic parameter: ISO C wants an argument for every "...") */
#define CHANC_ARRAY(...) \
    (&(const chanc_schema_t){.kind = CHANC_SCHEMA_ARRAY, .items = __VA_ARGS__})
/* CHANC_OBJECT(CHANC_FIELD("name", schema), CHANC_OPTIONAL("n", schema), …) */
#define CHANC_OBJECT(...)                                                    \
    (&(const chanc_schema_t){.kind = CHANC_SCHEMA_OBJECT,                    \
                             .fields = (const chanc_field_t[]){__VA_ARGS__, {0}}})
/* Same, keeping undeclared keys instead of rejecting them. */
#define CHANC_OBJECT_OPEN(...)                                               \
    (&(const chanc_schema_t){.kind = CHANC_SCHEMA_OBJECT,                    \
                             .extra = CHANC_EXTRA_IGNORE,                    \
                             .fields = (const chanc_field_t[]){__VA_ARGS__, {0}}})
#define CHANC_FIELD(n, s) {.name = (n), .schema = (s), .optional = false}
#define CHANC_OPTIONAL(n, s) {.name = (n), .schema = (s), .optional = true}

/* One message type: the action name and the payload's schema.
 * payload NULL or a NULL-kind schema: payload must be null or absent. */
typedef struct chanc_message_type {
    const char *action;
    const chanc_schema_t *payload;
    /* For the AsyncAPI document (chanc/asyncapi.h); validation ignores them.
     * name: the message's key in the document when two types share an
     * action (NULL: the action); description: a sentence or two (NULL:
     * none); frame_fields (outgoing frames; ended by a field with name
     * NULL, like an object's): the keys a frame carries beside action and
     * payload — a group message's CHANC_GROUP_FRAME_FIELDS, the chat's
     * username and timestamp (NULL: none). */
    const char *name;
    const char *description;
    const chanc_field_t *frame_fields;
} chanc_message_type_t;

/* The keys every recipient of a group message finds beside action and
 * payload (chanc_conn_group_send), for an outgoing type's frame_fields:
 *   .frame_fields = (const chanc_field_t[]){CHANC_GROUP_FRAME_FIELDS, {0}} */
#define CHANC_GROUP_FRAME_FIELDS                                            \
    CHANC_FIELD("is_mine", CHANC_BOOLEAN()), CHANC_FIELD("is_current", CHANC_BOOLEAN())

/* An incoming union is a NULL-terminated array of message types;
 * validation picks the member whose action equals the frame's "action". */
typedef const chanc_message_type_t *const chanc_message_union_t[];

/* Validate value against schema, appending one error object per problem to
 * errors (an array; borrowed) with loc = loc_prefix (borrowed array, may be
 * NULL) + the path inside value. Returns the number of errors appended. */
CHANC_API size_t chanc_schema_validate(const chanc_schema_t *schema, const json_t *value,
                                       const json_t *loc_prefix, json_t *errors);

/* Validate a whole frame ({"action","payload"}) against a union.
 * On success returns 0 and sets *type (when type is non-NULL).
 * On failure returns CHANC_EVALIDATION and, if errors is non-NULL, sets
 * *errors to a new array of error objects (the payload of the "error"
 * frame). At most CHANC_MAX_VALIDATION_ERRORS items are reported. */
CHANC_API int chanc_message_validate(const chanc_message_type_t *const *incoming,
                                     const json_t *frame,
                                     const chanc_message_type_t **type, json_t **errors);

#define CHANC_MAX_VALIDATION_ERRORS 64

/* Build the frame {"action": type->action, "payload": payload}.
 * payload is stolen (even on failure); NULL means JSON null. The payload is
 * validated against the type's schema: on mismatch returns NULL and fills
 * err with the first problem. Returns a new reference. */
CHANC_API json_t *chanc_message_build(const chanc_message_type_t *type, json_t *payload,
                                      chanc_error_t *err);

/* Append one validation error {"type","loc","msg"} to errors (borrowed).
 * loc is stolen (NULL: empty array). For handlers that check more than a
 * schema can say and want to answer in the same format. */
CHANC_API int chanc_errors_append(json_t *errors, const char *type, json_t *loc,
                                  const char *fmt, ...)
    CHANC_PRINTF_FORMAT(4, 5);

#ifdef __cplusplus
}
#endif
#endif
