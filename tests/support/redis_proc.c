/* See redis_proc.h. */
#include <errno.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "redis_proc.h"

int redis_proc_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* One attempt on r->port: spawn, then read its log until it is ready. */
static int spawn_once(redis_proc_t *r) {
    int out[2];
    if (pipe(out) < 0)
        return -1;
    char port[16];
    snprintf(port, sizeof port, "%d", r->port);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(out[0]);
        close(out[1]);
        return -1;
    }
    if (pid == 0) {
        /* Die with the test, whatever happens to it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        dup2(out[1], STDOUT_FILENO);
        dup2(out[1], STDERR_FILENO);
        close(out[0]);
        close(out[1]);
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", "--dir", r->dir, "--daemonize", "no",
               "--logfile", "", "--loglevel", "notice", (char *)NULL);
        fprintf(stderr, "redis_proc: cannot run redis-server: %s (run scripts/deps)\n",
                strerror(errno));
        _exit(127);
    }
    close(out[1]);
    r->pid = pid;
    FILE *f = fdopen(out[0], "r");
    char line[512], last[512] = "";
    int ready = 0;
    while (f && fgets(line, sizeof line, f)) {
        if (strstr(line, "Ready to accept connections")) {
            ready = 1;
            break;
        }
        snprintf(last, sizeof last, "%s", line);
    }
    if (!ready && last[0])
        fprintf(stderr, "redis_proc: %s", last);
    if (f)
        fclose(f); /* redis-server ignores SIGPIPE: later log lines just go nowhere */
    if (!ready) {
        redis_proc_stop(r, SIGKILL);
        return -1;
    }
    return 0;
}

int redis_proc_start(redis_proc_t *r) {
    if (!r->dir[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(r->dir, sizeof r->dir, "%s/chanc-redis-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(r->dir)) {
            r->dir[0] = '\0';
            perror("redis_proc: mkdtemp");
            return -1;
        }
    }
    /* The free port may be taken between the probe and redis's bind: try a
     * few (only the first start may move; a restart keeps its port). */
    bool first = r->port == 0;
    for (int attempt = 0; attempt < (first ? 5 : 1); attempt++) {
        if (first)
            r->port = redis_proc_free_port();
        if (r->port > 0 && spawn_once(r) == 0) {
            snprintf(r->url, sizeof r->url, "redis://127.0.0.1:%d/0", r->port);
            return 0;
        }
    }
    fprintf(stderr, "redis_proc: redis-server did not start on port %d\n", r->port);
    return -1;
}

void redis_proc_stop(redis_proc_t *r, int sig) {
    if (r->pid <= 0)
        return;
    kill(r->pid, sig);
    while (waitpid(r->pid, NULL, 0) < 0 && errno == EINTR)
        ;
    r->pid = 0;
}

void redis_proc_dispose(redis_proc_t *r) {
    redis_proc_stop(r, SIGKILL);
    if (r->dir[0]) {
        char path[300];
        snprintf(path, sizeof path, "%s/dump.rdb", r->dir);
        unlink(path);
        rmdir(r->dir);
        r->dir[0] = '\0';
    }
}
