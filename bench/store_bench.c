/* chanc-store-bench: what one chat message's commit costs on the loop
 * thread. Inserts N messages (one autocommit INSERT each, as the chat
 * consumer does) into a fresh SQLite file (or the database --db names)
 * and prints the latency distribution of chat_store_add_message, then of
 * chat_store_history(50) (what each join costs).
 *
 *   chanc-store-bench [--n 20000] [--dir /tmp] [--full] [--db FILE|URL]
 *
 * --full uses synchronous=FULL (an fsync per commit, power-loss durable)
 * instead of the default NORMAL (durable across a process crash).
 * --db: a PostgreSQL URL (or an SQLite path) instead of a fresh file; the
 * run adds its own user and room (named after its pid) and leaves them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chanc/chat.h"

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, double *v, size_t n) {
    qsort(v, n, sizeof *v, cmp_double);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    printf("%-22s n=%-6zu mean=%7.1f us  p50=%7.1f  p90=%7.1f  p99=%7.1f  p99.9=%7.1f  max=%8.1f\n",
           what, n, sum / n, v[n / 2], v[n * 9 / 10], v[n * 99 / 100], v[n * 999 / 1000], v[n - 1]);
}

int main(int argc, char **argv) {
    size_t n = 20000;
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    bool full = false;
    const char *db = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--n") && i + 1 < argc)
            n = strtoul(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--full"))
            full = true;
        else if (!strcmp(argv[i], "--db") && i + 1 < argc)
            db = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--n N] [--dir DIR] [--full] [--db FILE|URL]\n", argv[0]);
            return 2;
        }
    }
    if (n < 10)
        n = 10;
    char tmpl[512], path[600];
    snprintf(tmpl, sizeof tmpl, "%s/chanc-store-bench-XXXXXX", dir);
    if (!mkdtemp(tmpl)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(path, sizeof path, "%s/bench.db", tmpl);

    chat_store_t *s = NULL;
    chanc_error_t err;
    chat_store_options_t o = {.path = db ? db : path, .pwhash_opslimit = 1, .pwhash_memlimit = 8192,
                              .sync_full = full};
    if (chat_store_open(&o, &s, &err) < 0) {
        fprintf(stderr, "%s\n", err.text);
        return 1;
    }
    int64_t uid, rid;
    char name[64];
    snprintf(name, sizeof name, "bench-%ld", (long)getpid());
    if (chat_store_create_user(s, name, "bench-password", &uid) < 0 ||
        chat_store_create_room(s, "Bench", name, &rid) < 0 ||
        chat_store_add_member(s, rid, uid) < 0) {
        fprintf(stderr, "setup failed\n");
        return 1;
    }
    double *lat = malloc(n * sizeof *lat);
    const char *text = "The quick brown fox jumps over the lazy dog, a typical chat line.";
    size_t len = strlen(text);
    int64_t ts = 1767225600000;
    double t0 = now_us();
    for (size_t i = 0; i < n; i++) {
        double a = now_us();
        if (chat_store_add_message(s, rid, uid, text, len, ts + (int64_t)i, NULL) < 0) {
            fprintf(stderr, "insert %zu failed\n", i);
            return 1;
        }
        lat[i] = now_us() - a;
    }
    double total = now_us() - t0;
    if (db && chat_store_is_postgresql_url(db))
        printf("PostgreSQL, one autocommit INSERT per message\n");
    else
        printf("synchronous=%s, WAL, file %s\n", full ? "FULL" : "NORMAL", db ? db : path);
    report("add_message (commit)", lat, n);
    printf("%-22s %.0f commits/s\n", "throughput", n / (total / 1e6));

    size_t h = n < 2000 ? n : 2000;
    for (size_t i = 0; i < h; i++) {
        json_t *hist = NULL;
        double a = now_us();
        chat_store_history(s, rid, CHAT_HISTORY_LIMIT, &hist);
        lat[i] = now_us() - a;
        json_decref(hist);
    }
    report("history(50) on join", lat, h);
    free(lat);
    chat_store_close(s);
    char f[700];
    static const char *const sfx[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(f, sizeof f, "%s%s", path, sfx[i]);
        unlink(f);
    }
    rmdir(tmpl);
    return 0;
}
