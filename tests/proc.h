/* Spawning and stopping helper processes for tests (checkoutd, mock-stripe,
 * mock-notify). A helper announces readiness by printing a stdout line
 * containing "listening on <url>"; it must flush that line (stdout is a pipe,
 * so it is fully buffered unless the helper flushes or sets line buffering).
 *
 * The child gets PR_SET_PDEATHSIG(SIGKILL): if the test process dies (a failed
 * ck_assert exits the forked test, a Check timeout kills it), its helpers die
 * with it instead of lingering on their ports. Note that the death signal fires
 * when the THREAD that called co_proc_start exits: call it from the test's
 * main thread (the checked fixture or the test function), not a short-lived
 * worker thread. */
#ifndef CO_TEST_PROC_H
#define CO_TEST_PROC_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

typedef struct {
    pid_t pid;     /* 0 when not running */
    char url[256]; /* what followed "listening on ", e.g. http://127.0.0.1:41234 */
    int out_fd;    /* read end of the child's stdout; -1 when closed */
    /* internals: the thread that drains stdout after readiness so the child never
     * blocks on a full pipe, and the pipe that wakes it for shutdown. */
    pthread_t drain;
    bool draining;
    int wake_fd[2];
} co_proc;

/* Starts argv[0] (a path) with the parent's environment plus env ("K=V" strings,
 * NULL-terminated; may be NULL; a K given here replaces the parent's K),
 * waits up to timeout_ms for a stdout line containing "listening on " and copies
 * the URL that follows into p->url. Stdout lines after that are drained in a
 * background thread and discarded (echoed to stderr when CO_PROC_ECHO=1); stderr
 * is inherited. Returns false (child killed and reaped, p->pid 0) on timeout or
 * early exit. The drain thread keeps a pointer to p: p must stay at the same address
 * (not be copied or go out of scope) until co_proc_stop or co_proc_wait. */
bool co_proc_start(co_proc *p, char *const argv[], char *const env[], int timeout_ms);
/* Where the stderr of the helpers started from now on (in this process) goes:
 * dir NULL (the default) leaves it inherited from the test; else each helper
 * appends to "<dir>/<program's base name>.log" (checkoutd.log, mock-stripe.log,
 * ...; a restarted helper appends to the same file). */
void co_proc_stderr_dir(const char *dir);
/* Sends sig (SIGTERM for a clean stop, SIGKILL for crash tests) and waits for the
 * child; returns its wait status (-1 if it was not running). A child that ignores
 * SIGTERM for 15 s is SIGKILLed so a test cannot hang here. Frees p's resources. */
int co_proc_stop(co_proc *p, int sig);
/* Waits up to timeout_ms for the process to exit by itself; returns true with
 * *status (may be NULL) when it did, and then frees p's resources. */
bool co_proc_wait(co_proc *p, int timeout_ms, int *status);
/* Starts $CO_BIN_DIR/mock-stripe (falling back to build/san/bin) on 127.0.0.1:0 with
 * the given extra args (NULL-terminated, may be NULL); waits up to 10 s. */
bool co_proc_start_mock_stripe(co_proc *p, char *const extra_args[]);
/* The same with env ("K=V", NULL-terminated, may be NULL) added to the mock's
 * environment, e.g. MOCK_STRIPE_WEBHOOK_SECRET=whsec_... No secret goes on the
 * mock's command line, where every local user can read it: a
 * "--webhook-secret V" (or "--webhook-secret=V") among extra_args is handed to
 * the mock as MOCK_STRIPE_WEBHOOK_SECRET instead, overriding env's. */
bool co_proc_start_mock_stripe_env(co_proc *p, char *const extra_args[], char *const env[]);

/* How many established TCP connections the process pid holds to 127.0.0.1:port
 * (its sockets in /proc/pid/fd, matched in /proc/net/tcp); -1 when unreadable.
 * The same count whether the port is Postgres' or a pgbouncer's. */
int co_proc_tcp_conns(pid_t pid, unsigned port);

#endif
