/* Protocol coverage (chanc/derive.h): what each consumer declares, what the
 * tests of this process exercised, the file per program and the summary
 * over a run.
 *
 * Recorded from the transcripts when an in-process fixture is destroyed
 * (before its app goes, so the consumers are still valid): a frame the
 * client sent that validates against the consumer's union covers its
 * incoming action; a frame it received covers the declared outgoing type
 * it matches (action and payload schema), an error frame's items their
 * types; a close from the server its code. The process keeps the counts
 * in plain malloc'd memory (not jansson: the leak ledger would count it). */
#define _GNU_SOURCE /* program_invocation_short_name */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chanc/json.h"
#include "communicator_internal.h"

enum { K_INCOMING, K_OUTGOING, K_ERRORS, K_CLOSE, K_COUNT };
static const char *const kind_key[K_COUNT] = {"incoming", "outgoing", "errors", "close_codes"};
static const char *const kind_label[K_COUNT] = {"incoming", "outgoing", "error types",
                                                "close codes"};

typedef struct strset {
    char **items;
    size_t n, cap;
} strset_t;

typedef struct cov {
    char *name;
    strset_t declared[K_COUNT], covered[K_COUNT];
    struct cov *next;
} cov_t;

static cov_t *covs; /* this process's consumers, in order of appearance */

static bool set_has(const strset_t *s, const char *v) {
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->items[i], v) == 0)
            return true;
    return false;
}

static void set_add(strset_t *s, const char *v) {
    if (!v || set_has(s, v))
        return;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        char **items = realloc(s->items, cap * sizeof *items);
        if (!items)
            return;
        s->items = items;
        s->cap = cap;
    }
    if ((s->items[s->n] = strdup(v)))
        s->n++;
}

static void set_add_int(strset_t *s, long v) {
    char buf[24];
    snprintf(buf, sizeof buf, "%ld", v);
    set_add(s, buf);
}

/* --- what a consumer declares ---------------------------------------------------- */

/* The consumer's incoming union. (With action tables, issue 16: the
 * table's types when `incoming` is NULL.) */
static const char *message_name(const chanc_message_type_t *t) {
    return t->name ? t->name : t->action;
}

static void declare(cov_t *cv, const chanc_consumer_t *k, chanc_app_t *app) {
    const chanc_message_type_t *in[72];
    chanc_consumer_declared(k, CHANC_DECLARED_INCOMING, in, 72);
    for (size_t i = 0; in[i]; i++) {
        set_add(&cv->declared[K_INCOMING], in[i]->action);
        /* The error types its derived cases produce: the schema's kinds
         * and bounds, a missing or non-null payload, an extra key, and the
         * texts jansson refuses. */
        json_t *cases = chanc_schema_cases(in[i]);
        size_t j;
        json_t *c;
        json_array_foreach(cases, j, c) set_add(&cv->declared[K_ERRORS],
                                                chanc_json_str(c, "/errors/0/type"));
        json_decref(cases);
    }
    /* Frame-level errors every consumer can get. */
    static const char *const frame_errors[] = {"json_invalid",      "dict_type",
                                               "union_tag_not_found", "union_tag_invalid",
                                               "extra_forbidden",   "frame_type"};
    for (size_t i = 0; i < sizeof frame_errors / sizeof *frame_errors; i++)
        set_add(&cv->declared[K_ERRORS], frame_errors[i]);
    if (chanc_app_rate_limit(app) != CHANC_RATE_UNLIMITED)
        set_add(&cv->declared[K_ERRORS], "rate_limited");

    const chanc_message_type_t *out[72];
    chanc_consumer_declared(k, CHANC_DECLARED_OUTGOING, out, 72);
    for (size_t i = 0; out[i]; i++)
        set_add(&cv->declared[K_OUTGOING], message_name(out[i]));

    /* Close codes its hooks make possible in process (1001, server
     * shutdown, and 1002, framing errors, happen over a socket only). */
    strset_t *cc = &cv->declared[K_CLOSE];
    set_add_int(cc, CHANC_CLOSE_INVALID_UTF8);
    set_add_int(cc, 1008); /* slow client */
    set_add_int(cc, CHANC_CLOSE_TOO_BIG);
    set_add_int(cc, CHANC_CLOSE_INTERNAL); /* delivery failed, a hook failed */
    set_add_int(cc, CHANC_CLOSE_KEEPALIVE);
    if (k->authenticators)
        set_add_int(cc, CHANC_CLOSE_UNAUTHORIZED);
    if (k->permissions)
        set_add_int(cc, CHANC_CLOSE_FORBIDDEN);
    if (k->get_object)
        set_add_int(cc, CHANC_CLOSE_NOT_FOUND);
    if (k->prepare || k->get_object || k->authenticators || k->permissions)
        set_add_int(cc, 4500);
}

static cov_t *cov_for(const chanc_consumer_t *k, chanc_app_t *app) {
    const char *name = k->name ? k->name : "(unnamed)";
    cov_t **l = &covs;
    for (; *l; l = &(*l)->next)
        if (strcmp((*l)->name, name) == 0)
            return *l;
    cov_t *cv = calloc(1, sizeof *cv);
    if (!cv || !(cv->name = strdup(name))) {
        free(cv);
        return NULL;
    }
    declare(cv, k, app);
    *l = cv;
    return cv;
}

/* --- what a transcript exercised -------------------------------------------------- */

static bool payload_matches(const chanc_message_type_t *t, const json_t *frame) {
    json_t *payload = json_object_get(frame, "payload");
    if (!t->payload || t->payload->kind == CHANC_SCHEMA_NULL)
        return !payload || json_is_null(payload);
    if (!payload)
        return false;
    json_t *errors = json_array();
    size_t n = chanc_schema_validate(t->payload, payload, NULL, errors);
    json_decref(errors);
    return n == 0;
}

static void sent(cov_t *cv, const chanc_consumer_t *k, const json_t *frame) {
    const chanc_message_type_t *type = NULL;
    const chanc_message_type_t *in[72];
    chanc_consumer_declared(k, CHANC_DECLARED_INCOMING, in, 72);
    if (chanc_message_validate(in, frame, &type, NULL) == 0 && type)
        set_add(&cv->covered[K_INCOMING], type->action);
}

static void received(cov_t *cv, const chanc_consumer_t *k, const json_t *frame) {
    const char *action = chanc_json_str(frame, "/action");
    if (!action)
        return;
    const chanc_message_type_t *out[72];
    chanc_consumer_declared(k, CHANC_DECLARED_OUTGOING, out, 72);
    const char *name = NULL;
    for (size_t i = 0; out[i] && !name; i++)
        if (strcmp(out[i]->action, action) == 0 && payload_matches(out[i], frame))
            name = message_name(out[i]);
    set_add(&cv->covered[K_OUTGOING], name ? name : action); /* else: undeclared */
    json_t *items = json_object_get(frame, "payload");
    if (strcmp(action, "error") == 0 && json_is_array(items)) {
        size_t i;
        json_t *item;
        json_array_foreach(items, i, item) set_add(&cv->covered[K_ERRORS],
                                                   chanc_json_str(item, "/type"));
    }
}

static void record_comm(chanc_communicator_t *c, chanc_app_t *app) {
    const chanc_consumer_t *k = c->consumer;
    cov_t *cv = k ? cov_for(k, app) : NULL;
    if (!cv)
        return;
    size_t i;
    json_t *e;
    json_array_foreach(c->transcript, i, e) {
        const char *dir = chanc_json_str(e, "/dir");
        const char *text = chanc_json_str(e, "/frame");
        if (!strcmp(dir, "close")) {
            set_add_int(&cv->covered[K_CLOSE], (long)json_integer_value(json_object_get(e, "code")));
            continue;
        }
        if (!text || (strcmp(dir, "send") != 0 && strcmp(dir, "recv") != 0))
            continue;
        json_t *frame = json_loads(text, JSON_DECODE_ANY, NULL);
        if (json_is_object(frame)) {
            if (!strcmp(dir, "send"))
                sent(cv, k, frame);
            else
                received(cv, k, frame);
        }
        json_decref(frame);
    }
}

/* --- the report ----------------------------------------------------------------------- */

static json_t *set_json(const strset_t *s, bool numbers) {
    json_t *a = json_array();
    for (size_t i = 0; i < s->n; i++)
        json_array_append_new(a, numbers ? json_integer(strtol(s->items[i], NULL, 10))
                                         : json_string(s->items[i]));
    return a;
}

json_t *chanc_coverage_report(void) {
    json_t *consumers = json_object();
    for (const cov_t *cv = covs; cv; cv = cv->next) {
        json_t *o = json_object(), *undeclared = json_object();
        for (int kd = 0; kd < K_COUNT; kd++) {
            strset_t extra = {0};
            for (size_t i = 0; i < cv->covered[kd].n; i++)
                if (!set_has(&cv->declared[kd], cv->covered[kd].items[i]))
                    set_add(&extra, cv->covered[kd].items[i]);
            json_object_set_new(o, kind_key[kd],
                                json_pack("{s:o,s:o}", "declared",
                                          set_json(&cv->declared[kd], kd == K_CLOSE), "covered",
                                          set_json(&cv->covered[kd], kd == K_CLOSE)));
            if (extra.n)
                json_object_set_new(undeclared, kind_key[kd], set_json(&extra, kd == K_CLOSE));
            for (size_t i = 0; i < extra.n; i++)
                free(extra.items[i]);
            free(extra.items);
        }
        json_object_set_new(o, "undeclared", undeclared);
        json_object_set_new(consumers, cv->name, o);
    }
    return json_pack("{s:s,s:o}", "program", program_invocation_short_name, "consumers",
                     consumers);
}

static void write_report(const char *dir) {
    if (chanc__mkdirs(dir) < 0) {
        fprintf(stderr, "CHANC_COVERAGE_DIR %s: %s\n", dir, strerror(errno));
        return;
    }
    char *path = chanc_strdupf("%s/%s.coverage.json", dir, program_invocation_short_name);
    char *tmp = chanc_strdupf("%s.%ld.tmp", path ? path : "", (long)getpid());
    json_t *report = chanc_coverage_report();
    char *text = chanc_json_dump(report);
    json_decref(report);
    FILE *out = path && tmp && text ? fopen(tmp, "w") : NULL;
    /* Written aside, then renamed: a program run twice at once (a variant,
     * the memcheck twin) never leaves half a file. */
    if (!out || fprintf(out, "%s\n", text) < 0 || fclose(out) != 0 || rename(tmp, path) != 0)
        fprintf(stderr, "CHANC_COVERAGE_DIR: cannot write %s: %s\n", path ? path : dir,
                strerror(errno));
    free(text);
    free(tmp);
    free(path);
}

void chanc__coverage_record(chanc_test_t *t) {
    if (!t->app)
        return; /* a live server's fixture: its consumers are not known here */
    for (chanc_communicator_t *c = t->priv->comms; c; c = c->next)
        record_comm(c, t->app);
    const char *dir = getenv("CHANC_COVERAGE_DIR");
    if (dir && *dir && covs)
        write_report(dir);
}

/* --- the summary over a run ------------------------------------------------------------ */

static void print_item(FILE *out, const json_t *v) {
    if (json_is_integer(v))
        fprintf(out, " %lld", (long long)json_integer_value(v));
    else
        fprintf(out, " %s", json_string_value(v));
}

static bool list_has(const json_t *list, const json_t *v) {
    size_t i;
    json_t *w;
    json_array_foreach(list, i, w) if (json_equal(v, w)) return true;
    return false;
}

/* Merge report (one program's) into all: union of every list. */
static void merge_list(json_t *into, const json_t *from) {
    size_t i;
    json_t *v;
    json_array_foreach(from, i, v) if (!list_has(into, v)) json_array_append(into, v);
}

/* "    <label> <what>: a b c\n" for the items of list that are not in
 * other; nothing when there is none. */
static void print_diff(FILE *out, const char *label, const char *what, const json_t *list,
                       const json_t *other) {
    bool first = true;
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
        if (list_has(other, v))
            continue;
        if (first)
            fprintf(out, "    %s %s:", label, what);
        first = false;
        print_item(out, v);
    }
    if (!first)
        fputc('\n', out);
}

static void merge(json_t *all, const json_t *report) {
    const char *name;
    json_t *cons;
    json_object_foreach(json_object_get(report, "consumers"), name, cons) {
        json_t *mine = json_object_get(all, name);
        if (!mine) {
            json_object_set_new(all, name, json_deep_copy(cons));
            continue;
        }
        for (int kd = 0; kd < K_COUNT; kd++)
            for (int w = 0; w < 2; w++) {
                const char *which = w ? "covered" : "declared";
                json_t *into = json_object_get(json_object_get(mine, kind_key[kd]), which);
                merge_list(into, json_object_get(json_object_get(cons, kind_key[kd]), which));
            }
    }
}

long chanc_coverage_summarise(const char *dir, FILE *out) {
    DIR *d = dir ? opendir(dir) : NULL;
    if (!d) {
        fprintf(out, "protocol coverage: %s: %s\n", dir ? dir : "(no directory)", strerror(errno));
        return -1;
    }
    json_t *all = json_object();
    size_t files = 0;
    struct dirent *ent;
    while ((ent = readdir(d))) {
        size_t n = strlen(ent->d_name), sl = strlen(".coverage.json");
        if (n <= sl || strcmp(ent->d_name + n - sl, ".coverage.json") != 0)
            continue;
        char *path = chanc_strdupf("%s/%s", dir, ent->d_name);
        json_t *report = path ? json_load_file(path, 0, NULL) : NULL;
        if (report) {
            merge(all, report);
            files++;
        } else {
            fprintf(out, "protocol coverage: %s: not a coverage file\n", path ? path : "?");
        }
        json_decref(report);
        free(path);
    }
    closedir(d);
    long missing = 0, total = 0;
    const char *name;
    json_t *cons;
    if (files)
        fprintf(out, "protocol coverage (%zu program%s, %s):\n", files, files == 1 ? "" : "s",
                dir);
    json_object_foreach(all, name, cons) {
        fprintf(out, "  %s:", name);
        for (int kd = 0; kd < K_COUNT; kd++) {
            json_t *o = json_object_get(cons, kind_key[kd]);
            json_t *declared = json_object_get(o, "declared"), *covered = json_object_get(o, "covered");
            size_t hit = 0, i;
            json_t *v;
            json_array_foreach(declared, i, v) hit += list_has(covered, v);
            fprintf(out, "%s %s %zu/%zu", kd ? "," : "", kind_label[kd], hit,
                    json_array_size(declared));
            missing += (long)(json_array_size(declared) - hit);
            total += (long)json_array_size(declared);
        }
        fputc('\n', out);
        for (int kd = 0; kd < K_COUNT; kd++) {
            json_t *o = json_object_get(cons, kind_key[kd]);
            print_diff(out, kind_label[kd], "no test exercised", json_object_get(o, "declared"),
                       json_object_get(o, "covered"));
        }
        /* What the tests saw that the consumer does not declare. */
        for (int kd = 0; kd < K_COUNT; kd++) {
            json_t *o = json_object_get(cons, kind_key[kd]);
            print_diff(out, kind_label[kd], "seen but not declared", json_object_get(o, "covered"),
                       json_object_get(o, "declared"));
        }
    }
    json_decref(all);
    if (!files) {
        fprintf(out, "protocol coverage: no *.coverage.json in %s\n", dir);
        return -1;
    }
    fprintf(out, "protocol coverage: %ld of %ld declared items exercised; %ld not exercised\n",
            total - missing, total, missing);
    return missing;
}
