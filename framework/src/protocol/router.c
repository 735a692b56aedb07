/* Route patterns ("ws/chat/{pk:int}/") compiled to segments and matched
 * with backtracking only where a {x:path} param needs it. */
#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "chanc/log.h"
#include "router_internal.h"
#include "../core/ledger_internal.h"

/* A param name is an identifier ([A-Za-z_][A-Za-z0-9_]*), unique in its
 * pattern, as Django requires. */
static bool valid_name(const chanc__route_t *r, const char *s, size_t n) {
    if (n == 0 || isdigit((unsigned char)s[0]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_')
            return false;
    for (size_t i = 0; i < r->nsegs; i++)
        if (r->segs[i].kind != SEG_LITERAL && strlen(r->segs[i].text) == n &&
            memcmp(r->segs[i].text, s, n) == 0)
            return false;
    return true;
}

static int add_seg(chanc__route_t *r, chanc__seg_kind_t kind, const char *s, size_t n) {
    chanc__seg_t *segs = chanc__realloc(r->segs, (r->nsegs + 1) * sizeof *segs);
    if (!segs)
        return -1;
    r->segs = segs;
    segs[r->nsegs].kind = kind;
    segs[r->nsegs].text = chanc__strndup(s, n);
    if (!segs[r->nsegs].text)
        return -1;
    r->nsegs++;
    return 0;
}

void chanc__route_free(chanc__route_t *r) {
    if (!r)
        return;
    for (size_t i = 0; i < r->nsegs; i++)
        free(r->segs[i].text);
    free(r->segs);
    free(r->pattern);
    free(r->derived);
    free(r);
}

chanc__route_t *chanc__route_new(const char *pattern) {
    chanc__route_t *r = chanc__calloc(1, sizeof *r);
    if (!r)
        return NULL;
    if (*pattern == '/')
        pattern++;
    r->pattern = chanc__strdup(pattern);
    size_t nparams = 0;
    const char *p = pattern;
    while (r->pattern && *p) {
        if (*p == '{') {
            const char *close = strchr(p, '}');
            const char *colon = memchr(p, ':', close ? (size_t)(close - p) : 0);
            if (!close || close == p + 1 || colon == p + 1 || ++nparams > CHANC__MAX_PARAMS)
                goto bad;
            const char *name_end = colon ? colon : close;
            chanc__seg_kind_t kind = SEG_STR;
            if (colon) {
                size_t tl = (size_t)(close - colon - 1);
                const char *t = colon + 1;
                if (tl == 3 && !memcmp(t, "int", 3)) kind = SEG_INT;
                else if (tl == 3 && !memcmp(t, "str", 3)) kind = SEG_STR;
                else if (tl == 4 && !memcmp(t, "slug", 4)) kind = SEG_SLUG;
                else if (tl == 4 && !memcmp(t, "path", 4)) kind = SEG_PATH;
                else goto bad;
            }
            if (!valid_name(r, p + 1, (size_t)(name_end - p - 1)) ||
                add_seg(r, kind, p + 1, (size_t)(name_end - p - 1)) < 0)
                goto bad;
            p = close + 1;
        } else {
            const char *q = p;
            while (*q && *q != '{' && *q != '}')
                q++;
            if (*q == '}')
                goto bad;
            if (add_seg(r, SEG_LITERAL, p, (size_t)(q - p)) < 0)
                goto bad;
            p = q;
        }
    }
    if (r->pattern)
        return r;
bad:
    chanc_log(CHANC_LOG_ERROR, "route: bad pattern \"%s\"", pattern);
    chanc__route_free(r);
    return NULL;
}

static size_t span(chanc__seg_kind_t kind, const char *s, size_t len) {
    size_t n = 0;
    switch (kind) {
    case SEG_INT:
        while (n < len && isdigit((unsigned char)s[n]))
            n++;
        break;
    case SEG_SLUG:
        while (n < len && (isalnum((unsigned char)s[n]) || s[n] == '-' || s[n] == '_'))
            n++;
        break;
    case SEG_STR:
        while (n < len && s[n] != '/')
            n++;
        break;
    case SEG_PATH:
    case SEG_LITERAL:
        n = len;
        break;
    }
    return n;
}

static int match_from(const chanc__route_t *r, size_t si, const char *s, size_t len,
                      chanc__params_t *pr) {
    if (si == r->nsegs)
        return len == 0;
    const chanc__seg_t *seg = &r->segs[si];
    if (seg->kind == SEG_LITERAL) {
        size_t n = strlen(seg->text);
        return n <= len && memcmp(s, seg->text, n) == 0 &&
               match_from(r, si + 1, s + n, len - n, pr);
    }
    /* Params: try the longest span first, shorter ones for backtracking
     * (only a path param or an int followed by digits can need it). */
    for (size_t n = span(seg->kind, s, len); n >= 1; n--) {
        size_t slot = pr->n;
        pr->names[slot] = seg->text;
        pr->values[slot] = chanc__strndup(s, n);
        pr->n++;
        if (pr->values[slot] && match_from(r, si + 1, s + n, len - n, pr))
            return 1;
        pr->n--;
        free(pr->values[slot]);
        pr->values[slot] = NULL;
    }
    return 0;
}

int chanc__route_match(const chanc__route_t *r, const char *path, chanc__params_t *params) {
    memset(params, 0, sizeof *params);
    if (*path == '/')
        path++;
    size_t len = strcspn(path, "?");
    return match_from(r, 0, path, len, params);
}

void chanc__params_dispose(chanc__params_t *p) {
    for (size_t i = 0; i < p->n; i++)
        free(p->values[i]);
    memset(p, 0, sizeof *p);
}
