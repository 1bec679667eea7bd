/* mockhttp: the plumbing every mock server (mocks/stripe/, mocks/notify/) shares,
 * so each mock is only its endpoints and its state: the program's name in
 * messages, allocation that aborts on failure, the --listen address, a request
 * body collected piece by piece under a cap, the access handler and the log
 * that libmicrohttpd calls, and the start-up signal handling.
 *
 * Generic on purpose: nothing here knows a mock's endpoints, and there is no
 * main(). The Makefile links every .c file in mocks/common/ into every mock binary
 * (MOCK_COMMON). */
#ifndef MH_MOCKHTTP_H
#define MH_MOCKHTTP_H

#include "co_buf.h"
#include "co_log.h"

#include <microhttpd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* ================================================================ process */

/* Names the program ("mock-stripe") that starts every message printed here.
 * Call it first in main(). */
void mh_init(const char *name);

/* Prints "NAME: out of memory" and aborts. */
_Noreturn void mh_oom(void);
/* malloc and realloc that never return NULL (mh_oom instead); 0 bytes asks for 1. */
void *mh_xmalloc(size_t n);
void *mh_xrealloc(void *old, size_t n);

/* An environment variable's value, or def when it is unset or empty. */
const char *mh_env_or(const char *name, const char *def);

/* Says on stderr that a secret came as the command-line flag flag, which
 * every local user can read (ps), and that the environment variable env is
 * the way to pass it. The flags stay for compatibility; nothing of ours uses them. */
void mh_warn_secret_flag(const char *flag, const char *env);

/* Blocks SIGINT and SIGTERM in the calling thread, and so in every thread it
 * starts later (call it before starting any), so that only mh_wait_signal sees
 * them; ignores SIGPIPE. */
void mh_block_signals(sigset_t *sigs);
/* Waits until one of sigs (as mh_block_signals filled it) arrives. */
void mh_wait_signal(const sigset_t *sigs);

/* ================================================================ listening */

typedef struct {
    struct sockaddr_storage addr;
    bool v6;                /* pass MHD_USE_IPv6 */
    char host[300];         /* as the banner prints it: "127.0.0.1" or "[::1]" */
} mh_listen;

/* HOST:PORT or [V6]:PORT (port 0 picks a free one) into out; false, after
 * saying why on stderr, when s is not one or the host does not resolve. */
bool mh_parse_listen(const char *s, mh_listen *out);

/* Prints "NAME listening on http://HOST:PORT" on stdout with the port d is
 * bound to, and flushes: the tests and scripts wait for that line. */
void mh_announce(struct MHD_Daemon *d, const mh_listen *l);

/* ================================================================ requests */

/* One request's state (*con_cls): its body as it arrives. */
typedef struct {
    co_buf in;              /* the body (in.too_big: more than the cap arrived) */
    bool answered;          /* the mock already queued its answer: the rest is dropped */
} mh_conn;

typedef enum {
    MH_FAILED,              /* out of memory: return MHD_NO */
    MH_STARTED,             /* the first call (headers only): return MHD_YES, or answer early */
    MH_CONTINUE,            /* took a piece of the body, or the request is answered: MHD_YES */
    MH_COMPLETE,            /* the whole body is here (*cx): answer now */
} mh_step;

/* Feeds one call of libmicrohttpd's access handler (its con_cls, upload_data
 * and upload_data_size) into the request's mh_conn, which the first call
 * allocates; sets *cx to it. Bodies are kept up to max bytes: past that
 * too_big is set and what came before stays (a mock that wants none of it
 * calls mh_drop_body). Free the state with mh_completed. */
mh_step mh_feed(void **con_cls, const char *upload_data, size_t *upload_data_size, size_t max,
                mh_conn **cx);

/* Frees the body kept so far; too_big and answered stay as they are. */
void mh_drop_body(mh_conn *cx);

/* For MHD_OPTION_NOTIFY_COMPLETED: frees what mh_feed allocated. */
void mh_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                  enum MHD_RequestTerminationCode toe);

/* ================================================================ the daemon's callbacks */

/* A mock's answers, passed to MHD_start_daemon as mh_on_request's argument. */
typedef struct {
    size_t body_max;        /* mh_feed's cap */
    bool drop_too_big;      /* past the cap, free what was kept (else the first bytes stay) */
    /* The first call, headers only. MHD_YES reads the body; a mock may answer now and
     * set cx->answered, and the body is then dropped. NULL: read the body. */
    enum MHD_Result (*headers)(struct MHD_Connection *c, const char *url,
                               const char *method, mh_conn *cx);
    /* The whole request is here (cx->too_big if its body passed the cap): answer it. */
    enum MHD_Result (*complete)(struct MHD_Connection *c, const char *url,
                                const char *method, const mh_conn *cx);
} mh_handler;

/* libmicrohttpd's access handler for every mock: cls is the mock's mh_handler. Feeds
 * each call into the request's mh_conn (mh_feed) and calls headers on the first call,
 * complete once the body is whole. Pair it with mh_completed. */
enum MHD_Result mh_on_request(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version,
                              const char *upload_data, size_t *upload_data_size,
                              void **con_cls);

/* For MHD_OPTION_EXTERNAL_LOGGER: prints libmicrohttpd's messages on stderr as
 * "NAME: libmicrohttpd: ...". cls is NULL, or a string: messages that contain it
 * (cut at 511 bytes to be searched) are dropped. */
__attribute__((format(printf, 2, 0)))
void mh_log(void *cls, const char *fmt, va_list ap);

#endif
