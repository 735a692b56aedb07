/* See server_proc.h. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chanc/ws_client.h>

#include "server_proc.h"

#ifndef CHAT_SERVER_PATH
#error "CHAT_SERVER_PATH must name the chat-server binary"
#endif

extern char **environ;

int server_proc_init(server_proc_t *p, const char *tag) {
    (void)tag;
    memset(p, 0, sizeof *p);
    return chat_test_db_create(&p->store);
}

int server_proc_start(server_proc_t *p, const char *pwhash, const char *wrapper) {
    int out[2];
    if (pipe(out) < 0)
        return -1;
    char *argv[64];
    size_t argc = 0;
    char *w = wrapper ? strdup(wrapper) : NULL;
    for (char *save = NULL, *tok = w ? strtok_r(w, " ", &save) : NULL; tok && argc < 24;
         tok = strtok_r(NULL, " ", &save))
        argv[argc++] = tok;
    char port[16] = "0", workers[16];
    if (p->workers > 1)
        snprintf(port, sizeof port, "%d", p->port);
    char *args[] = {CHAT_SERVER_PATH, "--port", port, "--db", p->store.url, "--log-level",
                    getenv("CHAT_LOG_LEVEL") ? getenv("CHAT_LOG_LEVEL") : "warn", "--pwhash",
                    (char *)pwhash, NULL};
    for (size_t i = 0; args[i]; i++)
        argv[argc++] = args[i];
    if (!p->no_seed) {
        argv[argc++] = "--seed";
        argv[argc++] = CHANC_FIXTURES_DIR "/chat.json";
    }
    if (p->layer) {
        argv[argc++] = "--layer";
        argv[argc++] = (char *)p->layer;
    }
    if (p->metrics) {
        argv[argc++] = "--metrics-allow";
        argv[argc++] = "127.0.0.1/32,::1/128";
    }
    if (p->workers > 1) {
        snprintf(workers, sizeof workers, "%d", p->workers);
        argv[argc++] = "--workers";
        argv[argc++] = workers;
    }
    for (size_t i = 0; p->args && p->args[i] && argc < sizeof argv / sizeof *argv - 1; i++)
        argv[argc++] = (char *)p->args[i];
    argv[argc] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    if (p->stderr_path)
        posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, p->stderr_path,
                                         O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    int rc = posix_spawnp(&p->pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    free(w);
    if (rc != 0) {
        close(out[0]);
        p->pid = 0;
        fprintf(stderr, "server_proc: cannot start %s: %s\n", CHAT_SERVER_PATH, strerror(rc));
        return -1;
    }
    /* "listening on http://127.0.0.1:PORT/" once it accepts (it seeds first). */
    p->port = 0;
    FILE *f = fdopen(out[0], "r");
    char line[256];
    int listening = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "listening on http://%*[^:]:%d/", &p->port) == 1 &&
            ++listening >= p->workers)
            break;
    if (f)
        fclose(f);
    if (p->port <= 0) {
        fprintf(stderr, "server_proc: chat-server did not report its port\n");
        server_proc_stop(p, SIGKILL);
        return -1;
    }
    return 0;
}

int server_proc_stop(server_proc_t *p, int sig) {
    int status = 0;
    if (p->pid <= 0)
        return 0;
    kill(p->pid, sig);
    while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR)
        ;
    p->pid = 0;
    return status;
}

void server_proc_dispose(server_proc_t *p) {
    server_proc_stop(p, SIGKILL);
    chat_test_db_drop(&p->store);
}

int server_proc_login_status(int port, const char *user, const char *password, char *set_cookie,
                             size_t n, int timeout_ms) {
    char req[512], form[200];
    int body = snprintf(form, sizeof form, "username=%s&password=%s", user, password);
    int len = snprintf(req, sizeof req,
                       "POST /login HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                       "Content-Type: application/x-www-form-urlencoded\r\n"
                       "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                       port, body, form);
    chanc_http_client_response_t r;
    assert_int_equal(chanc_http_client_exchange(port, req, (size_t)len, false, &r, timeout_ms), 0);
    if (!set_cookie || !chanc_http_client_header(&r, "Set-Cookie", set_cookie, n)) {
        if (set_cookie && n)
            set_cookie[0] = '\0';
    }
    int status = r.status;
    chanc_http_client_response_dispose(&r);
    return status;
}

void server_proc_login(const server_proc_t *p, const char *user, const char *password,
                       char *cookie, size_t len, int timeout_ms) {
    char set[200];
    assert_int_equal(server_proc_login_status(p->port, user, password, set, sizeof set, timeout_ms),
                     302);
    assert_true(set[0] != '\0');
    set[strcspn(set, ";")] = '\0'; /* "sessionid=…" */
    snprintf(cookie, len, "%s", set);
}
