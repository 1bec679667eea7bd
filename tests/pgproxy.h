/* A TCP proxy in front of PostgreSQL that can lose the answer to a committed
 * statement: the in-doubt commit of a connection that breaks between the
 * server's commit and the client reading it. It forwards both ways and reads
 * the server's messages (type byte + length), so it knows when an answer is
 * complete: ReadyForQuery comes after the commit of an autocommit statement.
 * The client must connect with sslmode=disable and gssencmode=disable (the
 * proxy reads the plain protocol). Runs on its own threads in the test. */
#ifndef CO_TEST_PGPROXY_H
#define CO_TEST_PGPROXY_H

typedef struct co_pgproxy co_pgproxy;

/* Listens on 127.0.0.1 (a free port) and forwards to host:port. Aborts the
 * test on failure. */
co_pgproxy *co_pgproxy_start(const char *host, const char *port);
unsigned co_pgproxy_port(const co_pgproxy *p);
/* After skip statements whose text contains needle have passed through, the
 * next one runs and commits on the server, and its whole answer is swallowed:
 * the proxy closes both sides once the server's ReadyForQuery arrives. Once. */
void co_pgproxy_lose_answer(co_pgproxy *p, const char *needle, int skip);
/* How many answers were lost so far. */
int co_pgproxy_lost(co_pgproxy *p);
/* A libpq keyword string for the database db through the proxy (user and
 * password those of the connection c to the real server). */
void co_pgproxy_conninfo(const co_pgproxy *p, const void *pgconn, const char *db, char *out,
                         unsigned n);
void co_pgproxy_stop(co_pgproxy *p);

#endif
