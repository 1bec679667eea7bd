/* See proc.h. */
#include "proc.h"

#include <dirent.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define READY_MARK "listening on "

static char stderr_dir[512];

void co_proc_stderr_dir(const char *dir)
{
    snprintf(stderr_dir, sizeof stderr_dir, "%s", dir != NULL ? dir : "");
}

/* The helper's stderr file (co_proc_stderr_dir), opened for appending; -1
 * when stderr is inherited or the file cannot be opened. */
static int open_stderr(const char *program)
{
    const char *base = strrchr(program, '/');
    char path[1024];

    if (stderr_dir[0] == '\0')
        return -1;
    snprintf(path, sizeof path, "%s/%s.log", stderr_dir, base != NULL ? base + 1 : program);
    return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        continue;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* The child's environment: the parent's, minus the names that extra redefines,
 * plus extra. The array is malloc'ed (the strings are borrowed): free() only it.
 * Built before fork() because malloc is not async-signal-safe in the child of a
 * threaded parent. */
static char **build_env(char *const extra[])
{
    size_t n_env = 0, n_extra = 0, k = 0;
    char **envp;

    while (environ != NULL && environ[n_env] != NULL)
        n_env++;
    while (extra != NULL && extra[n_extra] != NULL)
        n_extra++;
    envp = calloc(n_env + n_extra + 1, sizeof *envp);
    if (envp == NULL)
        return NULL;
    for (size_t i = 0; i < n_env; i++) {
        const char *eq = strchr(environ[i], '=');
        size_t nl = eq != NULL ? (size_t)(eq - environ[i]) : strlen(environ[i]);
        bool replaced = false;

        for (size_t j = 0; j < n_extra && !replaced; j++)
            replaced = strncmp(extra[j], environ[i], nl) == 0 && extra[j][nl] == '=';
        if (!replaced)
            envp[k++] = environ[i];
    }
    for (size_t j = 0; j < n_extra; j++)
        envp[k++] = extra[j];
    envp[k] = NULL;
    return envp;
}

/* After readiness: read and drop (or echo) the child's stdout until EOF or until
 * woken through wake_fd by co_proc_stop/co_proc_wait. */
static void *drain_main(void *arg)
{
    co_proc *p = arg;
    bool echo = getenv("CO_PROC_ECHO") != NULL && strcmp(getenv("CO_PROC_ECHO"), "1") == 0;
    char chunk[4096];

    for (;;) {
        struct pollfd pf[2] = {{.fd = p->out_fd, .events = POLLIN},
                               {.fd = p->wake_fd[0], .events = POLLIN}};
        ssize_t n;

        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pf[1].revents != 0)
            break;
        if (pf[0].revents == 0)
            continue;
        n = read(p->out_fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (echo && write(STDERR_FILENO, chunk, (size_t)n) < 0)
            echo = false;
    }
    return NULL;
}

/* Frees the pipe and the drain thread; the child must be reaped already. */
static void release(co_proc *p)
{
    if (p->draining) {
        ssize_t w;

        do
            w = write(p->wake_fd[1], "x", 1);
        while (w < 0 && errno == EINTR);
        pthread_join(p->drain, NULL);
        p->draining = false;
    }
    close_fd(&p->wake_fd[0]);
    close_fd(&p->wake_fd[1]);
    close_fd(&p->out_fd);
    p->pid = 0;
}

/* In the child, between fork and exec: async-signal-safe calls only. */
static void exec_child(int out_w, int err_w, pid_t parent, char *const argv[], char **envp)
{
    sigset_t none;
    static const char msg[] = "co_proc: exec failed\n";

    /* Die with the test, not linger on a port. The getppid check closes the race
     * where the parent died before prctl ran. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    if (dup2(out_w, STDOUT_FILENO) < 0)
        _exit(127);
    if (err_w >= 0 && dup2(err_w, STDERR_FILENO) < 0)
        _exit(127);
    /* Dispositions set to ignore and the blocked mask survive exec: undo them so
     * the helper sees a normal process (SIGTERM must stop it). */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    /* Sockets of the test (curl's, other helpers') must not leak into the child. */
    close_range(3, ~0U, 0);
    execve(argv[0], argv, envp);
    if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0)
        _exit(127);
    _exit(127);
}

/* Reads the child's stdout until a line with READY_MARK arrives (copies the URL),
 * EOF, or the deadline. */
static bool await_ready(co_proc *p, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    char line[1024];
    size_t len = 0;

    for (;;) {
        long long left = deadline - now_ms();
        struct pollfd pf = {.fd = p->out_fd, .events = POLLIN};
        ssize_t n;
        char *nl;
        int pr;

        if (left <= 0) {
            fprintf(stderr, "co_proc: no \"%s\" line within %d ms\n", READY_MARK, timeout_ms);
            return false;
        }
        pr = poll(&pf, 1, (int)left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            continue; /* the deadline check above ends the wait */
        n = read(p->out_fd, line + len, sizeof line - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            fprintf(stderr, "co_proc: child exited before it was ready\n");
            return false;
        }
        len += (size_t)n;
        line[len] = '\0';
        /* Handle every complete line; keep a partial last line for the next read. */
        nl = strchr(line, '\n');
        while (nl != NULL) {
            char *mark;

            *nl = '\0';
            mark = strstr(line, READY_MARK);
            if (mark != NULL) {
                const char *u = mark + strlen(READY_MARK);
                size_t ul = strcspn(u, " \t\r\n");

                if (ul >= sizeof p->url)
                    ul = sizeof p->url - 1;
                memcpy(p->url, u, ul);
                p->url[ul] = '\0';
                return ul > 0;
            }
            len -= (size_t)(nl + 1 - line);
            memmove(line, nl + 1, len);
            line[len] = '\0';
            nl = strchr(line, '\n');
        }
        if (len == sizeof line - 1)
            len = 0; /* an absurdly long line without the mark: drop it */
    }
}

bool co_proc_start(co_proc *p, char *const argv[], char *const env[], int timeout_ms)
{
    int out[2] = {-1, -1};
    int err_w = -1;
    char **envp = NULL;
    pid_t parent = getpid();
    pid_t pid;
    int status;

    memset(p, 0, sizeof *p);
    p->out_fd = p->wake_fd[0] = p->wake_fd[1] = -1;
    /* O_CLOEXEC: no other helper started later inherits these ends. */
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(p->wake_fd, O_CLOEXEC) != 0)
        goto fail;
    envp = build_env(env);
    if (envp == NULL)
        goto fail;
    err_w = open_stderr(argv[0]);
    fflush(NULL); /* or buffered output would be written twice, by both processes */
    pid = fork();
    if (pid < 0)
        goto fail;
    if (pid == 0)
        exec_child(out[1], err_w, parent, argv, envp);
    p->pid = pid;
    close_fd(&err_w);
    close_fd(&out[1]);
    p->out_fd = out[0];
    out[0] = -1;
    free(envp);
    envp = NULL;
    if (!await_ready(p, timeout_ms))
        goto fail;
    if (pthread_create(&p->drain, NULL, drain_main, p) != 0)
        goto fail;
    p->draining = true;
    return true;

fail:
    fprintf(stderr, "co_proc: could not start %s\n", argv[0]);
    if (p->pid > 0) {
        kill(p->pid, SIGKILL);
        while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR)
            continue;
    }
    free(envp);
    close_fd(&err_w);
    close_fd(&out[0]);
    close_fd(&out[1]);
    release(p);
    return false;
}

int co_proc_stop(co_proc *p, int sig)
{
    long long deadline = now_ms() + 15000;
    int status = -1;
    pid_t r;

    /* Not running (never started, failed to start, or already stopped): nothing
     * to release, and a zeroed struct's fds (0) are not ours to close. */
    if (p->pid <= 0)
        return -1;
    kill(p->pid, sig);
    for (;;) {
        r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid || (r < 0 && errno != EINTR))
            break;
        if (r == 0 && now_ms() > deadline) {
            fprintf(stderr, "co_proc: pid %d ignored signal %d for 15 s; killing\n",
                    (int)p->pid, sig);
            kill(p->pid, SIGKILL);
            while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR)
                continue;
            break;
        }
        sleep_ms(2);
    }
    release(p);
    return status;
}

bool co_proc_wait(co_proc *p, int timeout_ms, int *status)
{
    long long deadline = now_ms() + timeout_ms;
    int st = 0;

    if (p->pid <= 0)
        return false;
    for (;;) {
        pid_t r = waitpid(p->pid, &st, WNOHANG);

        if (r == p->pid)
            break;
        if (r < 0 && errno != EINTR)
            return false;
        if (now_ms() >= deadline)
            return false;
        sleep_ms(2);
    }
    if (status != NULL)
        *status = st;
    release(p);
    return true;
}

/* The variable mock-stripe reads its webhook secret from. A secret on the command
 * line is readable by every local user (ps), so none is ever passed there. */
#define MOCK_SECRET_FLAG "--webhook-secret"
#define MOCK_SECRET_ENV "MOCK_STRIPE_WEBHOOK_SECRET"

bool co_proc_start_mock_stripe_env(co_proc *p, char *const extra_args[], char *const env[])
{
    const char *dir = getenv("CO_BIN_DIR");
    size_t n_extra = 0, n_env = 0, na = 3, ne = 0;
    char path[1024];
    char secret_kv[512] = "";
    char **argv = NULL, **envp = NULL;
    bool ok = false;

    memset(p, 0, sizeof *p);
    p->out_fd = p->wake_fd[0] = p->wake_fd[1] = -1;
    if (dir == NULL || dir[0] == '\0')
        dir = "build/san/bin";
    snprintf(path, sizeof path, "%s/mock-stripe", dir);
    while (extra_args != NULL && extra_args[n_extra] != NULL)
        n_extra++;
    while (env != NULL && env[n_env] != NULL)
        n_env++;
    argv = calloc(n_extra + 4, sizeof *argv);
    envp = calloc(n_env + 2, sizeof *envp);
    if (argv == NULL || envp == NULL)
        goto out;
    argv[0] = path;
    argv[1] = "--listen";
    argv[2] = "127.0.0.1:0";
    for (size_t i = 0; i < n_extra; i++) {
        const char *a = extra_args[i];
        size_t fl = strlen(MOCK_SECRET_FLAG);

        /* --webhook-secret V (or =V) among the arguments: into the environment. */
        if (strcmp(a, MOCK_SECRET_FLAG) == 0 && i + 1 < n_extra) {
            snprintf(secret_kv, sizeof secret_kv, "%s=%s", MOCK_SECRET_ENV, extra_args[++i]);
            continue;
        }
        if (strncmp(a, MOCK_SECRET_FLAG, fl) == 0 && a[fl] == '=') {
            snprintf(secret_kv, sizeof secret_kv, "%s=%s", MOCK_SECRET_ENV, a + fl + 1);
            continue;
        }
        argv[na++] = extra_args[i];
    }
    for (size_t i = 0; i < n_env; i++)
        envp[ne++] = env[i];
    if (secret_kv[0] != '\0')
        envp[ne++] = secret_kv; /* last: it wins over one in env */
    ok = co_proc_start(p, argv, envp, 10000);
out:
    free(argv);
    free(envp);
    return ok;
}

bool co_proc_start_mock_stripe(co_proc *p, char *const extra_args[])
{
    return co_proc_start_mock_stripe_env(p, extra_args, NULL);
}

int co_proc_tcp_conns(pid_t pid, unsigned port)
{
    char path[64], line[512], target[64];
    unsigned long inodes[1024];
    int ninodes = 0, n = 0;
    DIR *d;
    struct dirent *e;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    d = opendir(path);
    if (d == NULL)
        return -1;
    for (e = readdir(d); e != NULL && ninodes < 1024; e = readdir(d)) {
        char fd_path[320];
        ssize_t len;
        unsigned long ino;

        snprintf(fd_path, sizeof fd_path, "%s/%s", path, e->d_name);
        len = readlink(fd_path, target, sizeof target - 1);
        if (len <= 0)
            continue;
        target[len] = '\0';
        if (sscanf(target, "socket:[%lu]", &ino) == 1)
            inodes[ninodes++] = ino;
    }
    closedir(d);
    f = fopen("/proc/net/tcp", "r");
    if (f == NULL)
        return -1;
    /* "sl local_address rem_address st ... inode": addresses as hex ip:port,
     * 127.0.0.1 is 0100007F; state 01 is ESTABLISHED. */
    while (fgets(line, sizeof line, f) != NULL) {
        unsigned rem_ip, rem_port, st;
        unsigned long ino;

        if (sscanf(line, " %*d: %*x:%*x %x:%x %x %*x:%*x %*x:%*x %*x %*u %*d %lu", &rem_ip,
                   &rem_port, &st, &ino) != 4 ||
            rem_ip != 0x0100007FU || rem_port != port || st != 1)
            continue;
        for (int i = 0; i < ninodes; i++)
            if (inodes[i] == ino)
                n++;
    }
    fclose(f);
    return n;
}
