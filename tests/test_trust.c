/* Trust and secrets (SPEC invariant 6: secrets never appear in logs, argv or
 * world-readable files): what `make run` writes (scripts/run.sh), how the
 * test harness and run.sh hand the mocks their secrets, and the private
 * cluster's authentication (scripts/pg.sh). */
#include "server.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- helpers */

/* A whole small file, NUL-terminated, with every NUL inside turned into a
 * space (so /proc/PID/cmdline reads as one line); "" when it cannot be read. */
static void slurp(const char *path, char *out, size_t n)
{
    FILE *f = fopen(path, "r");
    size_t len = 0;

    out[0] = '\0';
    if (f == NULL)
        return;
    len = fread(out, 1, n - 1, f);
    fclose(f);
    out[len] = '\0';
    for (size_t i = 0; i < len; i++)
        if (out[i] == '\0')
            out[i] = ' ';
}

static void cmdline_of(pid_t pid, char *out, size_t n)
{
    char path[64];

    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    slurp(path, out, n);
}

/* The value of KEY=... in a shell assignments file (run.sh's %q quoting adds
 * none for the hex secrets it makes); "" when absent. */
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

static int mode_of(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? (int)(st.st_mode & 0777) : -1;
}

/* The processes whose parent is ppid (up to max), from /proc. */
static int children_of(pid_t ppid, pid_t *out, int max)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0;

    if (d == NULL)
        return 0;
    for (e = readdir(d); e != NULL && n < max; e = readdir(d)) {
        char path[300], stat_line[512];
        const char *close_paren;
        int parent = 0;
        char state;

        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        slurp(path, stat_line, sizeof stat_line);
        /* pid (comm) state ppid ...: comm may hold spaces, so parse after the last ')'. */
        close_paren = strrchr(stat_line, ')');
        if (close_paren != NULL && sscanf(close_paren + 1, " %c %d", &state, &parent) == 2 &&
            parent == (int)ppid)
            out[n++] = (pid_t)atoi(e->d_name);
    }
    closedir(d);
    return n;
}

static bool gone(pid_t pid)
{
    for (int i = 0; i < 250; i++) {
        char path[64];
        struct stat st;

        snprintf(path, sizeof path, "/proc/%d", (int)pid);
        if (stat(path, &st) != 0)
            return true;
        usleep(20 * 1000);
    }
    return false;
}

/* ---------------------------------------------------------------- make run */

/* What one run of scripts/run.sh showed, collected while it ran and checked
 * after it stopped (a failed assertion must not leave its children behind). */
typedef struct {
    bool started;
    int nchild;
    pid_t child[16];
    char cmd[16][1024];
    int run_env_mode, secrets_mode;
    char whsec[128], notify_secret[128], restock_secret[128], jwt_secret[128], admin_key[128];
    int stop_status;
    bool children_gone;
} run_seen;

static void run_once(const co_test_db *db, const char *dir, run_seen *seen)
{
    const char *root = getenv("CO_ROOT");
    const char *bins = getenv("CO_BIN_DIR");
    char script[600], e_db[700], e_listen[64], e_var[300], e_bin[600], f_run[400], f_sec[400];
    char *argv[] = {script, NULL};
    char *env[] = {e_db, e_listen, e_var, e_bin,
                   /* Unset (empty): run.sh starts both mocks and makes every secret. */
                   "STRIPE_API_BASE=", "NOTIFY_URL=", "STRIPE_WEBHOOK_SECRET=",
                   "RESTOCK_WEBHOOK_SECRET=", "AUTH_JWT_SECRET=", "ADMIN_API_KEY=",
                   "NOTIFY_SECRET=", "LOG_LEVEL=warn", NULL};
    co_proc p;

    memset(seen, 0, sizeof *seen);
    snprintf(script, sizeof script, "%s/scripts/run.sh", root ? root : ".");
    snprintf(e_db, sizeof e_db, "DATABASE_URL=%s", db->url);
    snprintf(e_listen, sizeof e_listen, "LISTEN_ADDR=127.0.0.1:%u", co_test_free_port());
    snprintf(e_var, sizeof e_var, "RUN_VAR_DIR=%s", dir);
    snprintf(e_bin, sizeof e_bin, "RUN_BIN_DIR=%s", bins ? bins : "build/san/bin");
    snprintf(f_run, sizeof f_run, "%s/run.env", dir);
    snprintf(f_sec, sizeof f_sec, "%s/secrets.env", dir);

    seen->started = co_proc_start(&p, argv, env, 60000);
    if (!seen->started)
        return;
    seen->nchild = children_of(p.pid, seen->child, 16);
    for (int i = 0; i < seen->nchild; i++)
        cmdline_of(seen->child[i], seen->cmd[i], sizeof seen->cmd[i]);
    seen->run_env_mode = mode_of(f_run);
    seen->secrets_mode = mode_of(f_sec);
    env_value(f_sec, "GEN_STRIPE_WEBHOOK_SECRET", seen->whsec, sizeof seen->whsec);
    env_value(f_sec, "GEN_NOTIFY_SECRET", seen->notify_secret, sizeof seen->notify_secret);
    env_value(f_sec, "GEN_RESTOCK_WEBHOOK_SECRET", seen->restock_secret,
              sizeof seen->restock_secret);
    env_value(f_sec, "GEN_AUTH_JWT_SECRET", seen->jwt_secret, sizeof seen->jwt_secret);
    env_value(f_sec, "GEN_ADMIN_API_KEY", seen->admin_key, sizeof seen->admin_key);
    seen->stop_status = co_proc_stop(&p, SIGTERM);
    seen->children_gone = true;
    for (int i = 0; i < seen->nchild; i++)
        seen->children_gone = seen->children_gone && gone(seen->child[i]);
}

static void check_run(const run_seen *seen)
{
    const char *secrets[] = {seen->whsec, seen->notify_secret, seen->restock_secret,
                             seen->jwt_secret, seen->admin_key};
    bool mock_stripe = false, mock_notify = false;

    ck_assert_msg(seen->started, "scripts/run.sh did not come up");
    ck_assert_msg(seen->whsec[0] != '\0' && seen->notify_secret[0] != '\0',
                  "no generated secrets in secrets.env");
    ck_assert_msg(seen->run_env_mode == 0600, "run.env has mode %o, not 600",
                  (unsigned)seen->run_env_mode);
    ck_assert_msg(seen->secrets_mode == 0600, "secrets.env has mode %o, not 600",
                  (unsigned)seen->secrets_mode);
    for (int i = 0; i < seen->nchild; i++) {
        mock_stripe = mock_stripe || strstr(seen->cmd[i], "mock-stripe") != NULL;
        mock_notify = mock_notify || strstr(seen->cmd[i], "mock-notify") != NULL;
        for (size_t k = 0; k < sizeof secrets / sizeof secrets[0]; k++)
            ck_assert_msg(strstr(seen->cmd[i], secrets[k]) == NULL,
                          "a secret is on the command line of pid %d: %s", (int)seen->child[i],
                          seen->cmd[i]);
    }
    /* The mocks ran (and mock-stripe with a webhook URL, which it refuses to
     * take without a secret): the check above looked at the right processes. */
    ck_assert_msg(mock_stripe && mock_notify, "run.sh started %d children, not both mocks",
                  seen->nchild);
    ck_assert_msg(seen->children_gone, "a process run.sh started outlived it");
}

/* make run on a clean clone writes var/secrets.env and var/run.env, then each
 * restart rewrites var/run.env: both hold secrets, so both are 0600, also when
 * an older version left them world-readable. And the mocks it starts carry no
 * secret on their command line, where every local user can read it (ps). */
START_TEST(run_sh_keeps_secrets_private)
{
    co_test_db db;
    char dir[] = "/tmp/co_trust_run_XXXXXX";
    char path[300];
    run_seen first, again;

    co_test_db_create(&db);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    run_once(&db, dir, &first);

    /* What an older run.sh left behind: both files 0644. */
    snprintf(path, sizeof path, "%s/run.env", dir);
    chmod(path, 0644);
    snprintf(path, sizeof path, "%s/secrets.env", dir);
    chmod(path, 0644);
    run_once(&db, dir, &again);

    /* Cleaned up before any check fails: the folder holds secrets. */
    for (const char *f = "run.env\0secrets.env\0mock-stripe.log\0mock-notify.log\0"; *f;
         f += strlen(f) + 1) {
        snprintf(path, sizeof path, "%s/%s", dir, f);
        unlink(path);
    }
    rmdir(dir);
    co_test_db_drop(&db);

    check_run(&first);
    check_run(&again);
    ck_assert_str_eq(again.whsec, first.whsec); /* the secrets are kept across restarts */
}
END_TEST

/* ---------------------------------------------------------------- the harness */

/* The mocks the suites start (tests/server.c, tests/proc.c) get their secrets
 * from the environment: none is on a command line, also when a suite still
 * passes --webhook-secret among the mock's arguments (tests/test_webhooks.c). */
START_TEST(harness_mocks_have_no_secret_on_argv)
{
    static const char *const margs[] = {"--webhook-url", "http://127.0.0.1:9/webhooks/stripe",
                                        "--webhook-secret", CO_TEST_WHSEC, NULL};
    const char *secrets[] = {CO_TEST_WHSEC, CO_TEST_NOTIFY_SECRET, CO_TEST_RESTOCK_SECRET,
                             CO_TEST_JWT_SECRET, CO_TEST_ADMIN_KEY};
    co_test_server s;
    char cmd[3][1024];

    co_test_server_start_notify(&s, NULL, margs);
    cmdline_of(s.mock.pid, cmd[0], sizeof cmd[0]);
    cmdline_of(s.notify.pid, cmd[1], sizeof cmd[1]);
    cmdline_of(s.server.pid, cmd[2], sizeof cmd[2]);
    co_test_server_stop(&s);
    ck_assert_msg(strstr(cmd[0], "mock-stripe") && strstr(cmd[0], "--webhook-url"), "%s",
                  cmd[0]);
    ck_assert_msg(strstr(cmd[1], "mock-notify") != NULL, "%s", cmd[1]);
    for (int i = 0; i < 3; i++)
        for (size_t k = 0; k < sizeof secrets / sizeof secrets[0]; k++)
            ck_assert_msg(strstr(cmd[i], secrets[k]) == NULL, "a secret on a command line: %s",
                          cmd[i]);
}
END_TEST

/* ---------------------------------------------------------------- the private cluster */

/* The passfile=... of a URI (percent-decoded) into out; "" when it has none. */
static void passfile_of(const char *url, char *out, size_t n)
{
    const char *v = strstr(url, "passfile=");
    size_t k = 0;

    out[0] = '\0';
    if (v == NULL)
        return;
    for (v += strlen("passfile="); *v != '\0' && *v != '&' && k + 1 < n; v++) {
        unsigned c;

        if (v[0] == '%' && v[1] != '\0' && v[2] != '\0' && sscanf(v + 1, "%2x", &c) == 1) {
            out[k++] = (char)c;
            v += 2;
        } else {
            out[k++] = *v;
        }
    }
    out[k] = '\0';
}

/* A connection to url with passfile and password overriding what url says
 * (NULL: keep it); NULL when it was refused, with why in err. */
static PGconn *connect_with(const char *url, const char *passfile, const char *password,
                            char *err, size_t n)
{
    const char *keys[] = {"dbname", "passfile", "password", NULL};
    const char *vals[] = {url, passfile, password, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);

    if (PQstatus(c) == CONNECTION_OK)
        return c;
    snprintf(err, n, "%s", PQerrorMessage(c));
    PQfinish(c);
    return NULL;
}

/* Is text on the command line of any process? */
static bool on_some_command_line(const char *text)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    bool found = false;

    if (d == NULL)
        return false;
    for (e = readdir(d); e != NULL && !found; e = readdir(d)) {
        char cmd[4096];

        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        cmdline_of((pid_t)atoi(e->d_name), cmd, sizeof cmd);
        found = strstr(cmd, text) != NULL;
    }
    closedir(d);
    return found;
}

/* The private cluster (scripts/pg.sh) trusts no one: every connection needs
 * the password (SCRAM), which lives in a 0600 passfile that the URLs the
 * scripts hand out name (no secret in the URL itself), and is on no command
 * line. Without the password, or with a wrong one, a local user is refused. */
START_TEST(private_cluster_wants_the_password)
{
    const char *admin = getenv("CO_TEST_ADMIN_URL");
    const char *priv = getenv("CO_TEST_PRIVATE_PG");
    char passfile[512], err[512] = "", line[512] = "", *pw;
    PGconn *c;
    FILE *f;

    if (priv == NULL || strcmp(priv, "1") != 0) {
        fprintf(stderr, "trust: DATABASE_URL names another server: private cluster not checked\n");
        return;
    }
    ck_assert_ptr_nonnull(admin);
    c = connect_with(admin, "/nonexistent/pgpass", NULL, err, sizeof err);
    if (c != NULL)
        PQfinish(c);
    ck_assert_msg(c == NULL, "connected to %s without the password", admin);
    ck_assert_msg(strstr(err, "password") != NULL, "refused, but not for the password: %s", err);
    c = connect_with(admin, "/nonexistent/pgpass", "not-the-password", err, sizeof err);
    if (c != NULL)
        PQfinish(c);
    ck_assert_msg(c == NULL, "connected with a wrong password");
    ck_assert_msg(strstr(err, "password authentication failed") != NULL, "%s", err);

    c = connect_with(admin, NULL, NULL, err, sizeof err);
    ck_assert_msg(c != NULL, "the admin URL does not connect: %s", err);
    ck_assert_int_eq(co_test_ll(c, "SELECT count(*) FROM pg_hba_file_rules"
                                   " WHERE auth_method NOT IN ('scram-sha-256', 'reject')"
                                   "    OR error IS NOT NULL"), 0);
    ck_assert_int_eq(co_test_ll(c, "SELECT count(*) FROM pg_authid WHERE rolname = current_user"
                                   " AND rolpassword LIKE 'SCRAM-SHA-256$%'"), 1);
    PQfinish(c);

    passfile_of(admin, passfile, sizeof passfile);
    ck_assert_msg(passfile[0] != '\0', "the admin URL names no passfile: %s", admin);
    ck_assert_int_eq(mode_of(passfile), 0600);
    f = fopen(passfile, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
    fclose(f);
    line[strcspn(line, "\n")] = '\0';
    pw = strrchr(line, ':'); /* host:port:db:user:password (ours has no escaped colon) */
    ck_assert_msg(pw != NULL && strlen(pw + 1) >= 16, "no password in %s", passfile);
    ck_assert_msg(!on_some_command_line(pw + 1), "the password is on a command line");
}
END_TEST

static Suite *trust_suite(void)
{
    Suite *s = suite_create("trust");
    TCase *run = co_test_tcase(s, "make_run", 120);
    TCase *harness = co_test_tcase(s, "harness", 60);
    TCase *pg = co_test_tcase(s, "postgres", 30);

    tcase_add_test(run, run_sh_keeps_secrets_private);
    tcase_add_test(harness, harness_mocks_have_no_secret_on_argv);
    tcase_add_test(pg, private_cluster_wants_the_password);
    return s;
}

int main(void)
{
    return co_test_run_http(trust_suite());
}
