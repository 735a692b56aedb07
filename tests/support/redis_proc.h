/* A throwaway redis-server for tests: a free loopback port, a temporary
 * directory, no persistence; killed with the test process (PDEATHSIG), so
 * nothing is left running even when a test aborts. */
#ifndef REDIS_PROC_H
#define REDIS_PROC_H

#include <sys/types.h>

typedef struct redis_proc {
    pid_t pid;     /* 0 when not running */
    int port;      /* kept across stop/start, so clients can reconnect */
    char dir[256]; /* temporary directory (its working directory) */
    char url[64];  /* "redis://127.0.0.1:<port>/0" */
} redis_proc_t;

/* A TCP port free on 127.0.0.1 right now (-1 if none). */
int redis_proc_free_port(void);
/* Start redis-server (on a free port the first time, on the same port
 * afterwards) and wait until it accepts connections. 0 or -1 (printed). */
int redis_proc_start(redis_proc_t *r);
/* Stop it with sig (SIGTERM: clean shutdown; SIGKILL: crash) and reap. */
void redis_proc_stop(redis_proc_t *r, int sig);
/* Stop what still runs and remove the directory. */
void redis_proc_dispose(redis_proc_t *r);

#endif
