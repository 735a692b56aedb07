/* Transcripts as JSON Lines: written for every test when
 * CHANC_TRANSCRIPT_DIR is set, and compared with golden files by
 * chanc_assert_transcript_matches (CHANC_UPDATE_TRANSCRIPTS=1 re-records). */
#define _GNU_SOURCE /* program_invocation_short_name */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "chanc/json.h"
#include "testing_internal.h"

/* Replace the value(s) at pointer ptr (relative to v, "*" any segment). */
static void mask_at(json_t *v, const char *ptr) {
    if (!v || !ptr || *ptr != '/')
        return;
    const char *seg = ptr + 1;
    size_t n = strcspn(seg, "/");
    const char *rest = seg + n; /* "" or "/..." */
    char key[256];
    if (n >= sizeof key)
        return;
    /* Unescape ~1 and ~0 (RFC 6901). */
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (seg[i] == '~' && i + 1 < n && (seg[i + 1] == '0' || seg[i + 1] == '1')) {
            key[k++] = seg[i + 1] == '1' ? '/' : '~';
            i++;
        } else {
            key[k++] = seg[i];
        }
    }
    key[k] = '\0';
    bool any = strcmp(key, "*") == 0;
    if (json_is_object(v)) {
        const char *name;
        json_t *child;
        void *tmp;
        json_object_foreach_safe(v, tmp, name, child) {
            if (!any && strcmp(name, key) != 0)
                continue;
            if (*rest)
                mask_at(child, rest);
            else
                json_object_set_new(v, name, json_string("<masked>"));
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++) {
            char idx[24];
            snprintf(idx, sizeof idx, "%zu", i);
            if (!any && strcmp(idx, key) != 0)
                continue;
            if (*rest)
                mask_at(json_array_get(v, i), rest);
            else
                json_array_set_new(v, i, json_string("<masked>"));
        }
    }
}

/* One transcript entry as written to a file: the frame parsed when it is
 * JSON, then masked. New reference. */
static json_t *entry_for_file(const json_t *e, const char *const *masks) {
    json_t *out = json_deep_copy(e);
    json_t *frame = json_object_get(out, "frame");
    const char *dir = json_string_value(json_object_get(out, "dir"));
    if (frame && dir && (!strcmp(dir, "send") || !strcmp(dir, "recv"))) {
        /* Recorded text is parsed; a golden file's entry is JSON already. */
        json_t *parsed = json_is_string(frame)
                             ? json_loads(json_string_value(frame), JSON_DECODE_ANY, NULL)
                             : json_incref(frame);
        if (parsed) {
            for (const char *const *m = masks; m && *m; m++) {
                if (strcmp(*m, "") == 0) {
                    json_decref(parsed);
                    parsed = json_string("<masked>");
                    break;
                }
                mask_at(parsed, *m);
            }
            json_object_set_new(out, "frame", parsed);
        }
    }
    return out;
}

static int write_line(FILE *out, const json_t *v) {
    char *s = chanc_json_dump(v);
    int rc = s && fprintf(out, "%s\n", s) > 0 ? 0 : CHANC_EIO;
    free(s);
    return rc;
}

int chanc_communicator_write_transcript(const chanc_communicator_t *c, FILE *out,
                                        const char *const *masks) {
    size_t i;
    json_t *e;
    json_array_foreach(chanc_communicator_transcript(c), i, e) {
        json_t *line = entry_for_file(e, masks);
        int rc = write_line(out, line);
        json_decref(line);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int chanc__mkdirs(const char *path) {
    char buf[1024];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return -1;
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(buf, 0777) < 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    return mkdir(buf, 0777) < 0 && errno != EEXIST ? -1 : 0;
}

void chanc__test_write_transcripts(chanc_test_t *t) {
    const char *dir = getenv("CHANC_TRANSCRIPT_DIR");
    struct chanc_test_private *p = t->priv;
    if (!dir || !*dir || !p->comms)
        return;
    if (chanc__mkdirs(dir) < 0) {
        fprintf(stderr, "CHANC_TRANSCRIPT_DIR %s: %s\n", dir, strerror(errno));
        return;
    }
    char path[1200];
    snprintf(path, sizeof path, "%s/%s.%s.jsonl", dir, program_invocation_short_name, p->name);
    FILE *out = fopen(path, "w");
    if (!out) {
        fprintf(stderr, "transcript %s: %s\n", path, strerror(errno));
        return;
    }
    /* One file per test: every communicator's entries, each tagged with
     * the communicator's number and path. */
    size_t n = 0;
    for (chanc_communicator_t *c = p->comms; c; c = chanc__communicator_next(c), n++) {
        size_t i;
        json_t *e;
        json_array_foreach(chanc_communicator_transcript(c), i, e) {
            json_t *line = entry_for_file(e, NULL);
            json_object_set_new(line, "client", json_integer((json_int_t)n));
            json_object_set_new(line, "path", json_string(chanc_communicator_path(c)));
            write_line(out, line);
            json_decref(line);
        }
    }
    fclose(out);
}

/* --- golden transcripts ------------------------------------------------------- */

static json_t *load_lines(const char *path, char *why, size_t whylen) {
    FILE *in = fopen(path, "r");
    if (!in) {
        snprintf(why, whylen, "cannot open %s: %s (record it with CHANC_UPDATE_TRANSCRIPTS=1)",
                 path, strerror(errno));
        return NULL;
    }
    json_t *all = json_array();
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    size_t lineno = 0;
    while ((len = getline(&line, &cap, in)) >= 0) {
        lineno++;
        if (len <= 1)
            continue;
        json_error_t err;
        json_t *v = json_loadb(line, (size_t)len, 0, &err);
        if (!v) {
            snprintf(why, whylen, "%s:%zu: not JSON: %s", path, lineno, err.text);
            json_decref(all);
            all = NULL;
            break;
        }
        json_array_append_new(all, v);
    }
    free(line);
    fclose(in);
    return all;
}

bool chanc_assert_transcript_matches_at(const char *file, int line, const char *base_dir,
                                        chanc_communicator_t *c, const char *path, ...) {
    const char *masks[33];
    size_t nm = 0;
    va_list ap;
    va_start(ap, path);
    for (const char *m; (m = va_arg(ap, const char *)) != NULL && nm < 32;)
        masks[nm++] = m;
    va_end(ap);
    masks[nm] = NULL;

    char full[1200];
    if (path[0] != '/' && base_dir)
        snprintf(full, sizeof full, "%s/%s", base_dir, path);
    else
        snprintf(full, sizeof full, "%s", path);
    chanc__settle(c, CHANC__HANG_MS);

    const char *update = getenv("CHANC_UPDATE_TRANSCRIPTS");
    if (update && *update && strcmp(update, "0") != 0) {
        char *slash = strrchr(full, '/');
        if (slash) {
            *slash = '\0';
            chanc__mkdirs(full);
            *slash = '/';
        }
        FILE *out = fopen(full, "w");
        if (!out || chanc_communicator_write_transcript(c, out, masks) < 0) {
            if (out)
                fclose(out);
            return chanc__report_failure(c, file, line, "cannot write %s: %s", full, strerror(errno));
        }
        fclose(out);
        fprintf(stderr, "recorded %s\n", full);
        return true;
    }

    char why[1400];
    json_t *golden = load_lines(full, why, sizeof why);
    if (!golden)
        return chanc__report_failure(c, file, line, "golden transcript: %s", why);
    const json_t *actual = chanc_communicator_transcript(c);
    size_t n = json_array_size(actual), ng = json_array_size(golden);
    for (size_t i = 0; i < (n > ng ? n : ng); i++) {
        json_t *want = json_array_get(golden, i);
        json_t *got = i < n ? entry_for_file(json_array_get(actual, i), masks) : NULL;
        /* Mask the golden side too, so masks added later still apply. */
        json_t *want_m = want ? entry_for_file(want, masks) : NULL;
        if (want_m && got && json_equal(want_m, got)) {
            json_decref(got);
            json_decref(want_m);
            continue;
        }
        /* Static: reporting may longjmp, so everything else is freed first. */
        static char headline[16384];
        char *gs = chanc_json_dump(got), *ws = chanc_json_dump(want_m);
        char *diff = want_m && got ? chanc_json_mismatch(got, want_m) : NULL;
        if (want_m && got && !diff)
            diff = chanc_json_mismatch(want_m, got); /* an extra key on our side */
        snprintf(headline, sizeof headline,
                 "transcript differs from %s at entry %zu (of %zu recorded, %zu now)\n"
                 "  expected: %s\n  received: %s\n  %s\n"
                 "  (re-record with CHANC_UPDATE_TRANSCRIPTS=1 if the change is intended)",
                 full, i + 1, ng, n, ws, gs,
                 diff ? diff : (got ? "an entry more than recorded" : "an entry missing"));
        free(diff);
        free(gs);
        free(ws);
        json_decref(got);
        json_decref(want_m);
        json_decref(golden);
        return chanc__report_failure(c, file, line, "%s", headline);
    }
    json_decref(golden);
    return true;
}
