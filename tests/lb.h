/* A load balancer for the multi-instance tests: Debian's nginx in front of
 * several checkoutd instances, round robin with no stickiness, as a shop runs
 * them. One foreground process (master_process off) that dies with the test
 * (PDEATHSIG); it logs which instance answered each request. A POST is passed
 * to the next instance only when it could not be sent (connection refused),
 * never after it was (nginx's default for non-idempotent requests). */
#ifndef CO_TEST_LB_H
#define CO_TEST_LB_H

#include <sys/types.h>

#define CO_TEST_LB_MAX 8

typedef struct {
    pid_t pid;
    char dir[64];                       /* its configuration, logs and temp files */
    char url[64];                       /* http://127.0.0.1:PORT */
    int n;
    char upstream[CO_TEST_LB_MAX][64];  /* "127.0.0.1:PORT" of each instance */
} co_test_lb;

/* Starts it on 127.0.0.1:port in front of the n instance URLs (http://HOST:PORT);
 * aborts the test when it does not come up. */
void co_test_lb_start(co_test_lb *lb, unsigned port, const char *const urls[], int n);
void co_test_lb_stop(co_test_lb *lb);
/* How many of its instances answered requests whose path starts with prefix. */
int co_test_lb_served(const co_test_lb *lb, const char *prefix);

#endif
