#include "lb.h"

#include <check.h>

#include <ftw.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static bool port_open(unsigned port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;

    close(fd);
    return ok;
}

static void write_conf(const co_test_lb *lb, const char *path, unsigned port)
{
    const char *d = lb->dir;
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    fprintf(f, "daemon off;\nmaster_process off;\nerror_log %s/error.log warn;\n"
               "pid %s/nginx.pid;\nevents { worker_connections 4096; }\n"
               "http {\n"
               "    log_format up '$upstream_addr $status $request_method $uri';\n"
               "    access_log %s/access.log up;\n"
               "    client_body_temp_path %s/body;\n    proxy_temp_path %s/proxy;\n"
               "    fastcgi_temp_path %s/fcgi;\n    uwsgi_temp_path %s/uwsgi;\n"
               "    scgi_temp_path %s/scgi;\n    upstream checkoutd {\n",
            d, d, d, d, d, d, d, d);
    for (int i = 0; i < lb->n; i++)
        fprintf(f, "        server %s max_fails=0;\n", lb->upstream[i]);
    fprintf(f, "        keepalive 64;\n    }\n"
               "    server {\n        listen 127.0.0.1:%u;\n"
               "        location / {\n            proxy_pass http://checkoutd;\n"
               "            proxy_http_version 1.1;\n"
               "            proxy_set_header Connection \"\";\n"
               "            proxy_next_upstream error timeout;\n"
               "            proxy_read_timeout 60s;\n        }\n    }\n}\n",
            port);
    fclose(f);
}

void co_test_lb_start(co_test_lb *lb, unsigned port, const char *const urls[], int n)
{
    char path[128];

    ck_assert_int_le(n, CO_TEST_LB_MAX);
    memset(lb, 0, sizeof *lb);
    snprintf(lb->dir, sizeof lb->dir, "/tmp/co_nginx_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(lb->dir));
    lb->n = n;
    for (int i = 0; i < n; i++)
        snprintf(lb->upstream[i], sizeof lb->upstream[i], "%s",
                 strncmp(urls[i], "http://", 7) == 0 ? urls[i] + 7 : urls[i]);
    snprintf(lb->url, sizeof lb->url, "http://127.0.0.1:%u", port);
    snprintf(path, sizeof path, "%s/nginx.conf", lb->dir);
    write_conf(lb, path, port);
    lb->pid = fork();
    ck_assert_int_ge(lb->pid, 0);
    if (lb->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execl("/usr/sbin/nginx", "nginx", "-p", lb->dir, "-c", path, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 100 && !port_open(port); i++)
        usleep(50 * 1000);
    ck_assert_msg(port_open(port), "nginx did not start (see %s/error.log)", lb->dir);
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void co_test_lb_stop(co_test_lb *lb)
{
    if (lb->pid > 0) {
        kill(lb->pid, SIGTERM);
        waitpid(lb->pid, NULL, 0);
    }
    lb->pid = 0;
    if (lb->dir[0] != '\0')
        nftw(lb->dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
    lb->dir[0] = '\0';
}

int co_test_lb_served(const co_test_lb *lb, const char *prefix)
{
    char path[128], line[512];
    bool seen[CO_TEST_LB_MAX] = {false};
    int n = 0;
    FILE *f;

    snprintf(path, sizeof path, "%s/access.log", lb->dir);
    f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    while (fgets(line, sizeof line, f) != NULL) {
        char *uri = strrchr(line, ' ');

        if (uri == NULL || strncmp(uri + 1, prefix, strlen(prefix)) != 0)
            continue;
        for (int i = 0; i < lb->n; i++) {
            size_t len = strlen(lb->upstream[i]);

            if (strncmp(line, lb->upstream[i], len) == 0 && line[len] == ' ')
                seen[i] = true;
        }
    }
    fclose(f);
    for (int i = 0; i < lb->n; i++)
        n += seen[i];
    return n;
}
