/* Migrations: sql/NNNN_*.sql, compiled into the binary (scripts/embed_sql.sh),
 * applied in name order, each once, recorded in schema_migrations; all that
 * are pending in one transaction. A transaction-level advisory lock lets
 * several servers start at once, also through pgbouncer. */
#ifndef CO_MIGRATE_H
#define CO_MIGRATE_H

#include "co_db.h"

typedef struct {
    const char *name; /* file name, e.g. 0001_schema.sql; NULL ends the list */
    const char *sql;
} co_migration;

extern const co_migration co_migrations[];

#define CO_MIGRATIONS_MAX 256

/* Applies what is missing; returns the number applied, or -1 on error (logged). */
int co_migrate(co_db *db);

#endif
