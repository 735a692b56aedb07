/* chanc-login-flood: a wrong-password flood on POST /login from one client
 * address while an honest user logs in from another (issue 15).
 *
 * One libuv loop. The flood is open loop: request i is scheduled at
 * t0 + i / rate on CLOCK_MONOTONIC and sent on its own connection (bound
 * to --flood-from: any 127.0.0.0/8 address is this host's loopback on
 * Linux) whatever the server has answered so far; latency is measured from
 * the scheduled time. The honest login (--user, bound to --user-from) is
 * sent at t0 + --user-at-ms, once. With --server-pid the server's RSS is
 * read from /proc before the flood, every 10 ms during it, its peak
 * (VmHWM) at the end, and again --settle seconds after the last answer.
 *
 *   chanc-login-flood --port 8000 --server-pid PID
 *       [--count 1000] [--rate 1000] [--flood-from 127.0.0.2]
 *       [--flood-user alice] [--user bob:bob-pass-1] [--user-from 127.0.0.3]
 *       [--user-at-ms 500] [--timeout 180] [--settle 2] [--json FILE]
 *
 * Exit status: 0 when every request was answered (whatever the status),
 * 2 on a usage error or when --timeout passed first. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <uv.h>

static struct {
    const char *host;
    int port, count, server_pid;
    double rate, timeout, settle;
    const char *flood_from, *flood_user, *flood_password;
    const char *user, *password, *user_from;
    double user_at_ms;
    const char *json;
} opt = {.host = "127.0.0.1", .port = 8000, .count = 1000, .rate = 1000, .timeout = 180,
         .settle = 2, .flood_from = "127.0.0.2", .flood_user = "alice",
         .flood_password = "not-her-password", .user = "bob", .password = "bob-pass-1",
         .user_from = "127.0.0.3", .user_at_ms = 500};

static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("chanc-login-flood: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- one request on its own connection -------------------------------------- */

typedef struct req {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    char out[800];
    size_t outlen;
    char in[16384];
    size_t inlen;
    uint64_t sched_ns, done_ns;
    int status;          /* HTTP status; 0: none (error) */
    bool retry_after;    /* a Retry-After header */
    bool cookie;         /* a Set-Cookie: sessionid= */
    bool done, honest;
} req_t;

static uv_loop_t *loop;
static req_t *reqs; /* count flood requests, then the honest one */
static int launched, answered;
static uint64_t t0;
static bool honest_sent;
static uint64_t rss_before, rss_peak_sampled, rss_after, hwm;
static uv_timer_t tick, sampler, settle_timer;

static void form_escape(char *out, size_t cap, const char *s) {
    size_t o = 0;
    for (; *s && o + 4 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.')
            out[o++] = (char)ch;
        else
            o += (size_t)snprintf(out + o, cap - o, "%%%02X", ch);
    }
    out[o] = 0;
}

static void on_close(uv_handle_t *h) { (void)h; }

static void finish(req_t *r, int status) {
    if (r->done)
        return;
    r->done = true;
    r->status = status;
    r->done_ns = now_ns();
    answered++;
    if (!uv_is_closing((uv_handle_t *)&r->tcp))
        uv_close((uv_handle_t *)&r->tcp, on_close);
}

/* A whole response yet? (Content-Length framed; else up to EOF.) */
static bool parse(req_t *r, bool eof) {
    r->in[r->inlen] = 0;
    char *end = strstr(r->in, "\r\n\r\n");
    if (!end)
        return false;
    int status = 0;
    if (sscanf(r->in, "HTTP/1.%*d %d", &status) != 1)
        status = -1;
    size_t head = (size_t)(end - r->in) + 4;
    const char *cl = strcasestr(r->in, "\r\ncontent-length:");
    bool whole = eof || (cl && cl < end && r->inlen >= head + strtoul(cl + 17, NULL, 10));
    if (!whole && r->inlen < sizeof r->in - 1)
        return false;
    const char *ra = strcasestr(r->in, "\r\nretry-after:");
    r->retry_after = ra && ra < end;
    const char *sc = strcasestr(r->in, "\r\nset-cookie: sessionid=");
    r->cookie = sc && sc < end && sc[24] != ';';
    finish(r, status);
    return true;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    (void)hint;
    req_t *r = h->data;
    *buf = uv_buf_init(r->in + r->inlen, (unsigned)(sizeof r->in - 1 - r->inlen));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    (void)buf;
    req_t *r = s->data;
    if (r->done)
        return;
    if (n > 0) {
        r->inlen += (size_t)n;
        parse(r, false);
    } else if (n < 0) {
        if (!parse(r, true))
            finish(r, 0);
    }
}

static void on_written(uv_write_t *w, int status) {
    req_t *r = w->data;
    if (status < 0)
        finish(r, 0);
}

static void on_connect(uv_connect_t *c, int status) {
    req_t *r = c->data;
    if (status < 0) {
        finish(r, 0);
        return;
    }
    uv_read_start((uv_stream_t *)&r->tcp, on_alloc, on_read);
    uv_buf_t b = uv_buf_init(r->out, (unsigned)r->outlen);
    r->wreq.data = r;
    if (uv_write(&r->wreq, (uv_stream_t *)&r->tcp, &b, 1, on_written) < 0)
        finish(r, 0);
}

static void launch(req_t *r, const char *from, const char *user, const char *password,
                   uint64_t sched) {
    char eu[256], ep[256], body[600];
    form_escape(eu, sizeof eu, user);
    form_escape(ep, sizeof ep, password);
    int bl = snprintf(body, sizeof body, "username=%s&password=%s", eu, ep);
    r->outlen = (size_t)snprintf(r->out, sizeof r->out,
                                 "POST /login HTTP/1.1\r\nHost: %s:%d\r\n"
                                 "Content-Type: application/x-www-form-urlencoded\r\n"
                                 "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                                 opt.host, opt.port, bl, body);
    r->sched_ns = sched;
    struct sockaddr_in src, dst;
    if (uv_ip4_addr(from, 0, &src) || uv_ip4_addr(opt.host, opt.port, &dst))
        die("bad address %s or %s", from, opt.host);
    uv_tcp_init(loop, &r->tcp);
    r->tcp.data = r;
    r->creq.data = r;
    int rc = uv_tcp_bind(&r->tcp, (const struct sockaddr *)&src, 0);
    if (rc == 0)
        rc = uv_tcp_connect(&r->creq, &r->tcp, (const struct sockaddr *)&dst, on_connect);
    if (rc < 0) {
        fprintf(stderr, "chanc-login-flood: connect from %s: %s\n", from, uv_strerror(rc));
        finish(r, 0);
    }
}

/* ---- the server's memory --------------------------------------------------- */

static uint64_t proc_kib(const char *field) {
    if (!opt.server_pid)
        return 0;
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", opt.server_pid);
    FILE *f = fopen(path, "r");
    uint64_t v = 0;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, field, n))
            v = strtoull(line + n, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

static void on_sample(uv_timer_t *t) {
    (void)t;
    uint64_t v = proc_kib("VmRSS:");
    if (v > rss_peak_sampled)
        rss_peak_sampled = v;
}

/* ---- the schedule ---------------------------------------------------------- */

static void on_settled(uv_timer_t *t) {
    (void)t;
    rss_after = proc_kib("VmRSS:");
    uv_stop(loop);
}

static void on_tick(uv_timer_t *t) {
    (void)t;
    uint64_t now = now_ns();
    while (launched < opt.count) {
        uint64_t sched = t0 + (uint64_t)((double)launched * 1e9 / opt.rate);
        if (sched > now)
            break;
        launch(&reqs[launched], opt.flood_from, opt.flood_user, opt.flood_password, sched);
        launched++;
    }
    uint64_t hsched = t0 + (uint64_t)(opt.user_at_ms * 1e6);
    if (!honest_sent && now >= hsched) {
        honest_sent = true;
        reqs[opt.count].honest = true;
        launch(&reqs[opt.count], opt.user_from, opt.user, opt.password, hsched);
    }
    if (honest_sent && launched == opt.count && answered == opt.count + 1) {
        uv_timer_stop(&tick);
        uv_timer_stop(&sampler);
        on_sample(NULL);
        hwm = proc_kib("VmHWM:");
        uv_timer_start(&settle_timer, on_settled, (uint64_t)(opt.settle * 1000), 0);
    } else if (now - t0 > (uint64_t)(opt.timeout * 1e9)) {
        fprintf(stderr, "chanc-login-flood: %d of %d answered after --timeout %.0f s\n", answered,
                opt.count + 1, opt.timeout);
        uv_stop(loop);
    }
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void usage(void) {
    puts("usage: chanc-login-flood [options]\n"
         "  --host H --port P         server (127.0.0.1:8000)\n"
         "  --count N --rate R        wrong-password POST /login requests, R a second (1000, 1000)\n"
         "  --flood-from A            the flood's source address (127.0.0.2)\n"
         "  --flood-user U            the username it tries (alice); --flood-password P\n"
         "  --user NAME:PASS          the honest login (bob:bob-pass-1)\n"
         "  --user-from A             its source address (127.0.0.3)\n"
         "  --user-at-ms T            when it is sent, after the flood's first request (500)\n"
         "  --server-pid PID          read the server's RSS (VmRSS, VmHWM) from /proc\n"
         "  --timeout S               give up (exit 2) after S seconds (180)\n"
         "  --settle S                read the RSS again S seconds after the last answer (2)\n"
         "  --json FILE               append the figures as one JSON object (one line)");
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage();
            return 0;
        }
        if (i + 1 >= argc)
            die("%s needs a value", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--host"))
            opt.host = v;
        else if (!strcmp(a, "--port"))
            opt.port = atoi(v);
        else if (!strcmp(a, "--count"))
            opt.count = atoi(v);
        else if (!strcmp(a, "--rate"))
            opt.rate = atof(v);
        else if (!strcmp(a, "--flood-from"))
            opt.flood_from = v;
        else if (!strcmp(a, "--flood-user"))
            opt.flood_user = v;
        else if (!strcmp(a, "--flood-password"))
            opt.flood_password = v;
        else if (!strcmp(a, "--user")) {
            const char *c = strchr(v, ':');
            if (!c)
                die("--user NAME:PASS");
            opt.user = strndup(v, (size_t)(c - v));
            opt.password = c + 1;
        } else if (!strcmp(a, "--user-from"))
            opt.user_from = v;
        else if (!strcmp(a, "--user-at-ms"))
            opt.user_at_ms = atof(v);
        else if (!strcmp(a, "--server-pid"))
            opt.server_pid = atoi(v);
        else if (!strcmp(a, "--timeout"))
            opt.timeout = atof(v);
        else if (!strcmp(a, "--settle"))
            opt.settle = atof(v);
        else if (!strcmp(a, "--json"))
            opt.json = v;
        else
            die("unknown option %s (--help)", a);
    }
    if (opt.count < 1 || !(opt.rate > 0) || !(opt.timeout > 0) || opt.settle < 0)
        die("bad counts");
    /* Every flood connection may be open at once. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    reqs = calloc((size_t)opt.count + 1, sizeof *reqs);
    if (!reqs)
        die("out of memory");
    loop = uv_default_loop();
    rss_before = proc_kib("VmRSS:");
    uv_timer_init(loop, &tick);
    uv_timer_init(loop, &sampler);
    uv_timer_init(loop, &settle_timer);
    t0 = now_ns();
    uv_timer_start(&tick, on_tick, 0, 1);
    if (opt.server_pid)
        uv_timer_start(&sampler, on_sample, 0, 10);
    uv_run(loop, UV_RUN_DEFAULT);
    bool complete = answered == opt.count + 1;

    int n401 = 0, n429 = 0, n429_ra = 0, nother = 0, nerr = 0;
    uint64_t *lat = calloc((size_t)opt.count, sizeof *lat), last_ns = 0;
    int nlat = 0;
    for (int i = 0; i < opt.count; i++) {
        req_t *r = &reqs[i];
        if (!r->done)
            continue;
        if (r->status == 401)
            n401++;
        else if (r->status == 429)
            n429++, n429_ra += r->retry_after;
        else if (r->status <= 0)
            nerr++;
        else
            nother++;
        if (r->status > 0) {
            lat[nlat++] = r->done_ns - r->sched_ns;
            if (r->done_ns > last_ns)
                last_ns = r->done_ns;
        }
    }
    qsort(lat, (size_t)nlat, sizeof *lat, cmp_u64);
#define PCT(p) (nlat ? lat[(size_t)fmin((double)nlat - 1, ceil((p) * nlat) - 1)] / 1e6 : 0.0)
    req_t *h = &reqs[opt.count];
    double honest_ms = h->done ? (double)(h->done_ns - h->sched_ns) / 1e6 : -1;
    printf("login flood: %d POST /login as %s (wrong password) from %s at %.0f/s; %s logs in from "
           "%s at +%.0f ms\n",
           opt.count, opt.flood_user, opt.flood_from, opt.rate, opt.user, opt.user_from,
           opt.user_at_ms);
    printf("  flood answers    401: %d   429: %d (with Retry-After: %d)   other: %d   no answer: "
           "%d\n",
           n401, n429, n429_ra, nother, nerr + (opt.count - answered + (h->done ? 1 : 0)));
    printf("  flood latency    p50 %.1f ms  p99 %.1f ms  max %.1f ms; last answer %.2f s after "
           "the first request\n",
           PCT(0.5), PCT(0.99), nlat ? lat[nlat - 1] / 1e6 : 0.0,
           last_ns ? (double)(last_ns - t0) / 1e9 : 0.0);
    printf("  honest login     %d%s in %.1f ms\n", h->done ? h->status : 0,
           h->cookie ? " (session cookie)" : "", honest_ms);
    if (opt.server_pid)
        printf("  server RSS       before %.1f MiB, peak %.1f MiB (VmHWM; sampled every 10 ms: "
               "%.1f), %.0f s after the last answer %.1f MiB\n",
               rss_before / 1024.0, hwm / 1024.0, rss_peak_sampled / 1024.0, opt.settle,
               rss_after / 1024.0);
    if (opt.json) {
        FILE *f = fopen(opt.json, "a");
        if (!f)
            die("%s: %s", opt.json, strerror(errno));
        fprintf(f,
                "{\"count\":%d,\"rate\":%.0f,\"answered\":%d,\"status_401\":%d,\"status_429\":%d,"
                "\"status_429_retry_after\":%d,\"status_other\":%d,\"errors\":%d,"
                "\"flood_p50_ms\":%.3f,\"flood_p99_ms\":%.3f,\"flood_last_s\":%.3f,"
                "\"honest_status\":%d,\"honest_ms\":%.3f,\"rss_before_kib\":%" PRIu64
                ",\"rss_peak_kib\":%" PRIu64 ",\"rss_after_kib\":%" PRIu64 "}\n",
                opt.count, opt.rate, answered, n401, n429, n429_ra, nother, nerr, PCT(0.5),
                PCT(0.99), last_ns ? (double)(last_ns - t0) / 1e9 : 0.0, h->done ? h->status : 0,
                honest_ms, rss_before, hwm, rss_after);
        fclose(f);
    }
    free(lat);
    return complete ? 0 : 2;
}
