/* The edge: what stands between the network and libmicrohttpd (co_http.c).
 *
 * libmicrohttpd 0.9.75 reads and judges a request head itself and gives the
 * application no say until the head is whole: its timeout is an idle timeout
 * (every byte restarts it), its answers to bad heads are HTML (414, 431; a
 * malformed Content-Length even gets its status line and headers twice), a
 * header value is cut at a NUL, and it closes right after an early answer
 * without reading what the client is still sending (the client gets a reset,
 * not the answer). So the edge owns the listening socket: its thread accepts,
 * counts connections per client address and in all, peeks at the first
 * request head (MSG_PEEK: the bytes stay for MHD) until it is whole, within a
 * deadline from accept, checks it (RFC 9112 framing, sizes, control bytes),
 * answers a bad one itself in our JSON shape, and hands a good one to MHD
 * (MHD_add_connection). For connections MHD holds it keeps the deadlines the
 * access handler sets (the next head of a keep-alive connection, a body) and
 * enforces them by shutting the socket down, which MHD sees as a close. After
 * an answer sent before the request was read in full, it keeps the socket
 * (a dup taken before MHD closes its own) and drains what the client still
 * sends, bounded in bytes and time, so the answer is read, not reset.
 *
 * Threads: one edge thread; the co_edge_* hooks below are called from MHD's
 * thread. One mutex guards every record. */
#ifndef CO_EDGE_H
#define CO_EDGE_H

#include "co_errors.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* A request head (request line and header lines) larger than this is 431; a
 * request target longer than CO_EDGE_URI_MAX is 414; more header lines than
 * CO_EDGE_HEADERS_MAX is 431. All stay well inside MHD's 32 KiB connection
 * pool, so MHD never reaches its own (HTML) 414/431 on a first request. */
#define CO_EDGE_HEAD_MAX (16 * 1024)
#define CO_EDGE_URI_MAX (8 * 1024)
#define CO_EDGE_HEADERS_MAX 64
/* After an early answer: drain at most this much, for at most this long. */
#define CO_EDGE_LINGER_BYTES (4 * 1024 * 1024)
#define CO_EDGE_LINGER_MS 5000

typedef struct co_edge co_edge;
typedef struct co_edge_conn co_edge_conn;

typedef struct {
    const char *host;           /* IPv4 address to listen on */
    unsigned port;              /* 0: pick a free one */
    unsigned max_connections;   /* every address, every phase */
    unsigned per_ip;            /* one client address */
    unsigned header_timeout_ms; /* a whole head: from accept, or from the last answer */
    unsigned body_timeout_ms;   /* a whole body: from the end of its head */
    size_t body_max;            /* a declared Content-Length above it is 413 before reading */
    /* Gives a connection whose first head passed to the server
     * (MHD_add_connection); true when taken. The fd is the server's from
     * then on, taken or not (MHD closes it on failure). Edge thread. */
    bool (*hand_over)(void *cls, int fd, const struct sockaddr *addr, socklen_t len);
    void *cls;
} co_edge_config;

/* Binds and listens, raises the open-file limit if it is below what
 * max_connections needs, starts the edge thread. NULL on failure (logged). */
co_edge *co_edge_start(const co_edge_config *cfg);
unsigned co_edge_port(const co_edge *e);
/* Stops accepting; open connections carry on. */
void co_edge_quiesce(co_edge *e);
/* Stops the edge thread and closes the connections it holds itself (heads
 * not yet handed over, lingering closes). Connections the server holds keep
 * their records until co_edge_release; no lingering from now on. */
void co_edge_halt(co_edge *e);
/* Frees everything; after the server closed every connection (MHD_stop_daemon). */
void co_edge_free(co_edge *e);

/* -------------------------------------------- hooks for the server (MHD's thread) */

typedef enum {
    CO_EDGE_HEADER, /* waiting for a (next) head: the header deadline runs */
    CO_EDGE_BODY,   /* reading a body: the body deadline runs */
    CO_EDGE_BUSY,   /* handling or answering: no deadline (MHD's idle timeout) */
    CO_EDGE_EARLY   /* answered before the request was read: linger at close */
} co_edge_phase;

/* MHD_CONNECTION_NOTIFY_STARTED: the record of the connection on fd (NULL
 * when it is not one of ours). */
co_edge_conn *co_edge_adopt(co_edge *e, int fd);
/* MHD_CONNECTION_NOTIFY_CLOSED, before MHD closes fd: frees the record, or
 * keeps the socket to drain it (CO_EDGE_EARLY, or closed mid-body). c may be
 * NULL (then found by fd). */
void co_edge_release(co_edge *e, co_edge_conn *c, int fd);
/* The access handler's view of where the request is (c may be NULL). */
void co_edge_set_phase(co_edge *e, co_edge_conn *c, co_edge_phase p);
/* A request ended (MHD_OPTION_NOTIFY_COMPLETED): a connection that answered
 * normally waits for its next head, under the header deadline. */
void co_edge_request_done(co_edge *e, co_edge_conn *c);
/* Answers err on the connection's socket directly (an answer MHD cannot
 * queue: mid-body) and marks it CO_EDGE_EARLY. The caller then returns MHD_NO
 * from the access handler, so MHD writes nothing more and closes. */
void co_edge_answer_now(co_edge *e, co_edge_conn *c, co_err err, const char *message);

/* -------------------------------------------- request heads (RFC 9112) */

/* What the framing rules need to know about a head's header fields, gathered
 * one field at a time: from raw bytes by the edge, from MHD's parsed list by
 * the access handler (for the requests after the first on a connection). */
typedef struct {
    unsigned content_length_n, transfer_encoding_n, host_n, fields;
    bool content_length_bad;         /* not 1*DIGIT, or unlike the first */
    unsigned long long content_length; /* the first one's value; saturates */
    char content_length_first[24];
    bool transfer_encoding_bad;      /* anything but "chunked" */
    bool name_bad;                   /* a name that is not a token (e.g. "Host ") */
    bool control;                    /* a control byte (NUL, CR, ...) in a value */
    char control_in[40];             /* ...of this field */
} co_head_facts;

/* Adds one field; value as MHD keeps it (leading whitespace skipped). */
void co_head_fact(co_head_facts *f, const char *name, size_t name_len, const char *value,
                  size_t value_len);
/* CO_OK, or invalid_request with a message (msg, n bytes) and the field it is
 * about (*field, static; may be NULL). http_minor: 0 or 1. */
co_err co_head_verdict(const co_head_facts *f, int http_minor, char *msg, size_t n,
                       const char **field);

#endif
