/* The tools around the server: bin/checkoutd's command line (--help, --version, a
 * usage error), its start-up refusal naming every bad setting at once, and `make run`
 * (scripts/run.sh, run for real with its files in a temporary folder: RUN_VAR_DIR),
 * which refuses a second run before it touches anything and prints its banner only
 * once the server answers. */
#include "co_stripe.h"
#include "co_version.h"
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- helpers */

/* What one command printed and how it ended. */
typedef struct {
    int status; /* exit status; -1 when it did not exit (killed after the timeout) */
    char out[16384], err[16384];
} ran;

static void read_all(const char *path, char *out, size_t n)
{
    FILE *f = fopen(path, "r");
    size_t len = 0;

    out[0] = '\0';
    if (f == NULL)
        return;
    len = fread(out, 1, n - 1, f);
    fclose(f);
    out[len] = '\0';
}

/* Runs argv[0] with argv, its stdout and stderr captured, and waits up to timeout_s.
 * clean: the child's environment is PATH (and the sanitizers' options) plus env only;
 * else the test's plus env
 * ("K=V", NULL-terminated, may be NULL; "K=" sets K empty). */
static void run_cmd(char *const argv[], const char *const env[], bool clean, int timeout_s,
                    ran *r)
{
    char fout[] = "/tmp/co_tools_out_XXXXXX", ferr[] = "/tmp/co_tools_err_XXXXXX";
    int fo = mkstemp(fout), fe = mkstemp(ferr), st = 0;
    const char *path = getenv("PATH");
    char keep_path[4096];
    pid_t pid, done = 0;
    time_t end = time(NULL) + timeout_s;

    ck_assert(fo >= 0 && fe >= 0);
    snprintf(keep_path, sizeof keep_path, "%s", path != NULL ? path : "/usr/bin:/bin");
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fo, 1);
        dup2(fe, 2);
        if (clean) {
            static const char *const keep[] = {"ASAN_OPTIONS", "UBSAN_OPTIONS",
                                               "LSAN_OPTIONS", NULL};
            char *kept[3] = {NULL, NULL, NULL};

            for (int i = 0; keep[i] != NULL; i++)
                kept[i] = getenv(keep[i]) != NULL ? strdup(getenv(keep[i])) : NULL;
            clearenv();
            setenv("PATH", keep_path, 1);
            for (int i = 0; keep[i] != NULL; i++)
                if (kept[i] != NULL)
                    setenv(keep[i], kept[i], 1);
        }
        for (size_t i = 0; env != NULL && env[i] != NULL; i++)
            putenv((char *)env[i]);
        execv(argv[0], argv);
        _exit(127);
    }
    while (done == 0 && time(NULL) <= end) {
        done = waitpid(pid, &st, WNOHANG);
        if (done == 0)
            usleep(20 * 1000);
    }
    if (done == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        r->status = -1;
    } else {
        r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    }
    close(fo);
    close(fe);
    read_all(fout, r->out, sizeof r->out);
    read_all(ferr, r->err, sizeof r->err);
    unlink(fout);
    unlink(ferr);
}

static void bin_path(char *out, size_t n, const char *name)
{
    const char *bins = getenv("CO_BIN_DIR");

    snprintf(out, n, "%s/%s", bins != NULL ? bins : "build/san/bin", name);
}

static void checkoutd(const char *arg, const char *const env[], ran *r)
{
    char path[600];
    char *argv[] = {path, (char *)arg, NULL};

    bin_path(path, sizeof path, "checkoutd");
    run_cmd(argv, env, true, 30, r);
}

/* A whole file as bytes (binary safe up to n); its length, -1 when unreadable. */
static long file_bytes(const char *path, char *out, size_t n)
{
    FILE *f = fopen(path, "rb");
    size_t len;

    if (f == NULL)
        return -1;
    len = fread(out, 1, n, f);
    fclose(f);
    return (long)len;
}

static bool exists(const char *dir, const char *name)
{
    char path[400];
    struct stat st;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0;
}

/* The value of KEY=... in a shell assignments file; "" when absent. */
static void env_value(const char *file, const char *key, char *out, size_t n)
{
    FILE *f = fopen(file, "r");
    char line[1024];
    size_t kl = strlen(key);

    out[0] = '\0';
    if (f == NULL)
        return;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, key, kl) == 0 && line[kl] == '=') {
            snprintf(out, n, "%s", line + kl + 1);
            out[strcspn(out, "\n")] = '\0';
            break;
        }
    }
    fclose(f);
}

static long http_status(const char *url)
{
    co_http_resp resp;
    long st;

    if (!co_http("GET", url, NULL, NULL, 0, &resp)) {
        co_http_resp_free(&resp);
        return 0;
    }
    st = resp.status;
    co_http_resp_free(&resp);
    return st;
}

/* Removes what run.sh leaves in dir, then dir. */
static void remove_run_dir(const char *dir)
{
    char path[400];

    for (const char *f = "run.env\0secrets.env\0mock-stripe.log\0mock-notify.log\0run.lock\0"
                         "run.pid\0";
         *f; f += strlen(f) + 1) {
        snprintf(path, sizeof path, "%s/%s", dir, f);
        unlink(path);
    }
    rmdir(dir);
}

/* ---------------------------------------------------------------- checkoutd */

START_TEST(help_version_and_usage_errors)
{
    ran r;

    checkoutd("--help", NULL, &r);
    ck_assert_int_eq(r.status, 0);
    ck_assert_msg(strncmp(r.out, "usage: checkoutd", 16) == 0, "%s", r.out);
    ck_assert_msg(strstr(r.out, "checkoutd migrate") && strstr(r.out, "checkoutd token") &&
                      strstr(r.out, "--version"),
                  "%s", r.out);
    ck_assert_msg(strstr(r.out, "Stripe API version " CO_STRIPE_API_VERSION) != NULL, "%s",
                  r.out);
    ck_assert_str_eq(r.err, "");

    checkoutd("--version", NULL, &r);
    ck_assert_int_eq(r.status, 0);
    ck_assert_str_eq(r.out, "checkoutd " CO_VERSION " (Stripe API " CO_STRIPE_API_VERSION ")\n");
    ck_assert_str_eq(r.err, "");

    for (const char *a = "--bogus\0-x\0serve\0"; *a; a += strlen(a) + 1) {
        checkoutd(a, NULL, &r);
        ck_assert_msg(r.status == 2, "checkoutd %s: exit %d", a, r.status);
        ck_assert_str_eq(r.out, "");
        ck_assert_msg(strstr(r.err, a) != NULL && strstr(r.err, "usage: checkoutd") != NULL,
                      "checkoutd %s: %s", a, r.err);
    }
}
END_TEST

/* Every missing or bad setting is named in the one message, and no value is. */
START_TEST(start_names_every_bad_setting)
{
    static const char *const env[] = {"STRIPE_WEBHOOK_SECRET=not-a-whsec-SECRETVALUE",
                                      "WORKERS=0", "LISTEN_ADDR=nohost", "DB_POOL_SIZE=x",
                                      NULL};
    static const char *const named[] = {
        "RESTOCK_WEBHOOK_SECRET is required", "AUTH_JWT_SECRET is required",
        "ADMIN_API_KEY is required", "DATABASE_URL is required",
        "STRIPE_WEBHOOK_SECRET must start with whsec_", "LISTEN_ADDR must be host:port",
        "WORKERS must be an integer from 1 to 1024", "DB_POOL_SIZE must be an integer"};
    ran r;

    checkoutd(NULL, env, &r);
    ck_assert_int_eq(r.status, 2);
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
        ck_assert_msg(strstr(r.err, named[i]) != NULL, "no '%s' in: %s", named[i], r.err);
    ck_assert_msg(strstr(r.err, "SECRETVALUE") == NULL, "a value was printed: %s", r.err);
    /* One message: one line. */
    ck_assert_msg(strchr(r.err, '\n') == r.err + strlen(r.err) - 1, "%s", r.err);

    /* Nothing set at all: the five required ones, in one go. */
    checkoutd(NULL, NULL, &r);
    ck_assert_int_eq(r.status, 2);
    ck_assert_msg(strstr(r.err, "STRIPE_WEBHOOK_SECRET is required") &&
                      strstr(r.err, "RESTOCK_WEBHOOK_SECRET is required") &&
                      strstr(r.err, "AUTH_JWT_SECRET is required") &&
                      strstr(r.err, "ADMIN_API_KEY is required") &&
                      strstr(r.err, "DATABASE_URL is required"),
                  "%s", r.err);
}
END_TEST

/* ---------------------------------------------------------------- make run */

/* The environment of a run: the test's database, LISTEN_ADDR, its folders; every
 * other setting unset, so run.sh starts both mocks and makes every secret. */
typedef struct {
    char db[700], listen[64], var[300], bin[600], extra[64];
    const char *env[20];
} run_env;

static void run_env_init(run_env *e, const co_test_db *db, unsigned port, const char *dir,
                         const char *extra)
{
    const char *bins = getenv("CO_BIN_DIR");
    const char *fixed[] = {"STRIPE_API_BASE=", "NOTIFY_URL=", "STRIPE_WEBHOOK_SECRET=",
                           "RESTOCK_WEBHOOK_SECRET=", "AUTH_JWT_SECRET=", "ADMIN_API_KEY=",
                           "NOTIFY_SECRET=", "LOG_LEVEL=warn", NULL};
    size_t n = 0;

    snprintf(e->db, sizeof e->db, "DATABASE_URL=%s", db->url);
    snprintf(e->listen, sizeof e->listen, "LISTEN_ADDR=127.0.0.1:%u", port);
    snprintf(e->var, sizeof e->var, "RUN_VAR_DIR=%s", dir);
    snprintf(e->bin, sizeof e->bin, "RUN_BIN_DIR=%s", bins ? bins : "build/san/bin");
    snprintf(e->extra, sizeof e->extra, "%s", extra != NULL ? extra : "LOG_LEVEL=warn");
    e->env[n++] = e->db;
    e->env[n++] = e->listen;
    e->env[n++] = e->var;
    e->env[n++] = e->bin;
    for (size_t i = 0; fixed[i] != NULL; i++)
        e->env[n++] = fixed[i];
    e->env[n++] = e->extra;
    e->env[n] = NULL;
}

static void run_sh_path(char *out, size_t n)
{
    const char *root = getenv("CO_ROOT");

    snprintf(out, n, "%s/scripts/run.sh", root != NULL ? root : ".");
}

/* What the second run and the first one showed, checked after both stopped. */
typedef struct {
    bool first_up;
    pid_t first_pid;
    long health_before, health_after, mock_after;
    char run_pid[32];
    char env_before[8192], env_after[8192];
    long env_before_len, env_after_len;
    ran same_dir, same_port;
    bool other_dir_untouched;
    int stop_status;
} second_seen;

/* A second `make run` while one is live is refused before it writes, starts or stops
 * anything: in the same folder (named by the live run's pid; run.env byte for byte
 * the same, the first run and its mock still serving) and, from another folder, on
 * the same port (named by the process holding it; nothing written there). */
START_TEST(second_run_refused_before_touching_anything)
{
    co_test_db db;
    char dir[] = "/tmp/co_tools_run_XXXXXX", dir2[] = "/tmp/co_tools_two_XXXXXX";
    char script[600], f_run[400], f_pid[400], health[128], mock[1024], url[1100];
    char *argv[] = {script, NULL};
    unsigned port = co_test_free_port();
    run_env e1, e2, e3;
    second_seen s;
    co_proc p;

    memset(&s, 0, sizeof s);
    co_test_db_create(&db);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    ck_assert_ptr_nonnull(mkdtemp(dir2));
    run_sh_path(script, sizeof script);
    run_env_init(&e1, &db, port, dir, NULL);
    run_env_init(&e2, &db, port, dir, NULL);
    run_env_init(&e3, &db, port, dir2, NULL);
    snprintf(f_run, sizeof f_run, "%s/run.env", dir);
    snprintf(f_pid, sizeof f_pid, "%s/run.pid", dir);
    snprintf(health, sizeof health, "http://127.0.0.1:%u/healthz", port);

    s.first_up = co_proc_start(&p, argv, (char *const *)e1.env, 60000);
    if (s.first_up) {
        s.first_pid = p.pid;
        for (int i = 0; i < 200 && s.health_before != 200; i++) {
            s.health_before = http_status(health);
            if (s.health_before != 200)
                usleep(50 * 1000);
        }
        usleep(300 * 1000); /* run.sh prints its banner; nothing else is written after */
        read_all(f_pid, s.run_pid, sizeof s.run_pid);
        s.env_before_len = file_bytes(f_run, s.env_before, sizeof s.env_before);

        run_cmd(argv, e2.env, false, 60, &s.same_dir);
        run_cmd(argv, e3.env, false, 60, &s.same_port);

        s.env_after_len = file_bytes(f_run, s.env_after, sizeof s.env_after);
        s.health_after = http_status(health);
        env_value(f_run, "STRIPE_API_BASE", mock, sizeof mock);
        snprintf(url, sizeof url, "%s/_mock/stats", mock);
        s.mock_after = http_status(url);
        s.other_dir_untouched = !exists(dir2, "secrets.env") && !exists(dir2, "run.env") &&
                                !exists(dir2, "run.pid") && !exists(dir2, "mock-stripe.log");
        s.stop_status = co_proc_stop(&p, SIGTERM);
    }
    remove_run_dir(dir);
    remove_run_dir(dir2);
    co_test_db_drop(&db);

    ck_assert_msg(s.first_up, "the first run did not come up");
    ck_assert_int_eq(s.health_before, 200);
    ck_assert_int_eq(atoi(s.run_pid), (int)s.first_pid);
    ck_assert_int_gt(s.env_before_len, 0);

    ck_assert_msg(s.same_dir.status == 1, "second run in the same folder: exit %d\n%s%s",
                  s.same_dir.status, s.same_dir.out, s.same_dir.err);
    {
        char want[96];

        snprintf(want, sizeof want, "another make run (pid %d) is live", (int)s.first_pid);
        ck_assert_msg(strstr(s.same_dir.err, want) != NULL, "%s", s.same_dir.err);
    }
    ck_assert_msg(strstr(s.same_dir.out, "checkout saga orchestrator on") == NULL,
                  "a refused run printed the banner: %s", s.same_dir.out);

    ck_assert_msg(s.same_port.status == 1, "second run on the same port: exit %d\n%s%s",
                  s.same_port.status, s.same_port.out, s.same_port.err);
    {
        char want[64];

        snprintf(want, sizeof want, "port %u is taken by pid", port);
        ck_assert_msg(strstr(s.same_port.err, want) != NULL &&
                          strstr(s.same_port.err, "checkoutd") != NULL,
                      "%s", s.same_port.err);
    }
    ck_assert_msg(strstr(s.same_port.out, "checkout saga orchestrator on") == NULL, "%s",
                  s.same_port.out);
    ck_assert_msg(s.other_dir_untouched, "the refused run wrote into its folder");

    ck_assert_int_eq(s.env_after_len, s.env_before_len);
    ck_assert_msg(memcmp(s.env_before, s.env_after, (size_t)s.env_before_len) == 0,
                  "run.env changed");
    ck_assert_int_eq(s.health_after, 200);
    ck_assert_int_eq(s.mock_after, 200);
    ck_assert_msg(WIFEXITED(s.stop_status), "run.sh did not exit on SIGTERM: %d",
                  s.stop_status);
}
END_TEST

/* The banner waits for /healthz: a server that cannot start (a bad setting) ends the
 * run with its reason and no banner, instead of a banner and then an error. */
START_TEST(banner_only_once_the_server_answers)
{
    co_test_db db;
    char dir[] = "/tmp/co_tools_bad_XXXXXX", script[600];
    char *argv[] = {script, NULL};
    run_env e;
    ran r;

    co_test_db_create(&db);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    run_sh_path(script, sizeof script);
    run_env_init(&e, &db, co_test_free_port(), dir, "WORKERS=0");
    run_cmd(argv, e.env, false, 90, &r);
    remove_run_dir(dir);
    co_test_db_drop(&db);

    ck_assert_msg(r.status != 0 && r.status != -1, "run.sh: exit %d", r.status);
    ck_assert_msg(strstr(r.err, "WORKERS must be an integer") != NULL, "%s", r.err);
    ck_assert_msg(strstr(r.err, "checkoutd exited (status 2) before it answered") != NULL,
                  "%s", r.err);
    ck_assert_msg(strstr(r.out, "checkout saga orchestrator on") == NULL,
                  "banner printed for a server that never answered: %s", r.out);
}
END_TEST

static Suite *tools_suite(void)
{
    Suite *s = suite_create("tools");
    TCase *cli = co_test_tcase(s, "checkoutd", 30);
    TCase *run = co_test_tcase(s, "make_run", 180);

    tcase_add_test(cli, help_version_and_usage_errors);
    tcase_add_test(cli, start_names_every_bad_setting);
    tcase_add_test(run, second_run_refused_before_touching_anything);
    tcase_add_test(run, banner_only_once_the_server_answers);
    return s;
}

int main(void)
{
    return co_test_run_http(tools_suite());
}
