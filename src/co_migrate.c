#include "co_migrate.h"

#include "co_log.h"

#include <string.h>

#define MIGRATE_LOCK_KEY "7272817"

static bool run(PGconn *c, const char *sql, const char *what)
{
    PGresult *res = PQexec(c, sql);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;

    if (!ok)
        CO_ERROR("migrate", "%s: %s", what, PQresultErrorMessage(res));
    PQclear(res);
    return ok;
}

static bool applied(PGconn *c, const char *name, bool *out)
{
    const char *params[1] = {name};
    PGresult *res = PQexecParams(c, "SELECT 1 FROM schema_migrations WHERE name = $1", 1, NULL,
                                 params, NULL, NULL, 0);
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;

    if (ok)
        *out = PQntuples(res) > 0;
    else
        CO_ERROR("migrate", "%s", PQresultErrorMessage(res));
    PQclear(res);
    return ok;
}

static bool record(PGconn *c, const char *name)
{
    const char *params[1] = {name};
    PGresult *res = PQexecParams(c, "INSERT INTO schema_migrations (name) VALUES ($1)", 1, NULL,
                                 params, NULL, NULL, 0);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;

    if (!ok)
        CO_ERROR("migrate", "%s", PQresultErrorMessage(res));
    PQclear(res);
    return ok;
}

/* One transaction for the whole run, serialised by a transaction-level
 * advisory lock: it works alike on a direct connection and through
 * pgbouncer's transaction pooling (where a session lock could be taken on one
 * server connection and released on another). Every pending migration is
 * applied, or none. */
int co_migrate(co_db *db)
{
    PGconn *c = co_db_conn(db);
    const char *names[CO_MIGRATIONS_MAX];
    int count = 0;

    if (c == NULL || !run(c, "BEGIN", "begin"))
        return -1;
    if (!run(c, "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK_KEY ")", "lock") ||
        !run(c, "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
             "schema_migrations"))
        goto fail;
    for (const co_migration *m = co_migrations; m->name != NULL; m++) {
        bool done = false;

        if (!applied(c, m->name, &done))
            goto fail;
        if (done)
            continue;
        if (count == CO_MIGRATIONS_MAX || !run(c, m->sql, m->name) || !record(c, m->name))
            goto fail;
        names[count++] = m->name;
    }
    if (!run(c, "COMMIT", "commit"))
        return -1;
    for (int i = 0; i < count; i++)
        CO_INFO("migrate", "applied %s", names[i]);
    return count;

fail:
    run(c, "ROLLBACK", "rollback");
    return -1;
}
