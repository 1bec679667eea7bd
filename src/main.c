/* bin/checkoutd: the checkout saga server.
 *
 *   checkoutd            apply migrations, then serve (SPEC section 5)
 *   checkoutd migrate    apply migrations and exit
 */
#include "co_db.h"
#include "co_log.h"
#include "co_migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmd_migrate(void)
{
    const char *url = getenv("DATABASE_URL");
    co_db *db;
    int n;

    if (url == NULL || url[0] == '\0') {
        fprintf(stderr, "checkoutd: DATABASE_URL is required\n");
        return 2;
    }
    db = co_db_open(url);
    if (db == NULL)
        return 1;
    n = co_migrate(db);
    co_db_close(db);
    if (n < 0)
        return 1;
    CO_INFO("migrate", "%d migration(s) applied", n);
    return 0;
}

int main(int argc, char **argv)
{
    co_log_init();
    if (argc > 1 && strcmp(argv[1], "migrate") == 0)
        return cmd_migrate();
    fprintf(stderr, "usage: checkoutd [migrate]\n");
    return 2;
}
