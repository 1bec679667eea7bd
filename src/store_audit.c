/* The SQL of checkoutd audit (src/audit.c): one query per anomaly, all in one
 * read-only snapshot. What the provider and the sink said comes in as JSON
 * parameters, so each check is one join in Postgres. */
#include "audit.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- the checks */

/* Every check is a body yielding bad(x, w): the id of each bad thing, and how
 * much it counts (1, or the units of an oversold item). What they share:
 *   p      the parameters, typed once ($1 settle seconds, $2 since, $3 the
 *          provider's intents, $4 the sink's deliveries or NULL);
 *   ord    the orders in scope (created since --since), settled when their
 *          last move is older than the settle time;
 *   pi     the intents, settled when created before the settle time;
 *   over   the oversold items and by how many units;
 *   nb     the notifications of restocks in scope; got: the sink's accepted
 *          deliveries per (restock event, user). */
#define CO_AUDIT_EXAMPLES_S "5" /* CO_AUDIT_EXAMPLES, as SQL text */
#define AUDIT_PRE                                                                                \
    "WITH p AS (SELECT make_interval(secs => $1::integer) AS settle, $2::timestamptz AS since," \
    "                  $3::jsonb AS intents, $4::jsonb AS deliveries),"                          \
    " ord AS (SELECT o.*, o.updated_at <= now() - p.settle AS settled FROM orders o, p"          \
    "          WHERE p.since IS NULL OR o.created_at >= p.since),"                               \
    " pi AS (SELECT t.*, to_timestamp(t.created) <= now() - p.settle AS settled"                 \
    "          FROM p, jsonb_to_recordset(p.intents) AS t(id text, status text, amount bigint,"  \
    "               received bigint, kept bigint, order_id text, created bigint)"                \
    "         WHERE p.since IS NULL OR to_timestamp(t.created) >= date_trunc('second', p.since)),"\
    " over AS (SELECT h.item_id, h.held - coalesce(l.supplied, 0) AS units"                      \
    "            FROM (SELECT ol.item_id, sum(ol.quantity) AS held FROM order_lines ol"          \
    "                    JOIN orders o ON o.id = ol.order_id WHERE o.stock_held"                 \
    "                   GROUP BY ol.item_id) h"                                                  \
    "            LEFT JOIN (SELECT item_id, sum(delta) AS supplied FROM stock_ledger"            \
    "                        WHERE kind IN ('initial', 'restock') GROUP BY item_id) l"           \
    "                   ON l.item_id = h.item_id"                                                \
    "           WHERE h.held > coalesce(l.supplied, 0)),"                                        \
    " nb AS (SELECT n.id, n.status, n.created_at, n.restock_event_id, n.user_id"                 \
    "          FROM notification_outbox n JOIN restock_events e"                                 \
    "               ON e.event_id = n.restock_event_id, p"                                       \
    "         WHERE p.since IS NULL OR e.created_at >= p.since),"                                \
    " got AS (SELECT d->'body'->>'restock_event_id' AS ev, d->'body'->>'user_id' AS usr,"       \
    "                count(*) AS k"                                                              \
    "           FROM p, jsonb_array_elements(coalesce(p.deliveries, '[]')) d"                    \
    "          WHERE d->>'status' = '200' AND d->>'verified' = 'true'"                           \
    "            AND jsonb_typeof(d->'body') = 'object' GROUP BY 1, 2),"                         \
    " bad(x, w) AS ("
#define AUDIT_POST                                                                               \
    ") SELECT coalesce(sum(w), 0)::bigint AS n,"                                                 \
    "         coalesce(to_jsonb((array_agg(x ORDER BY x))[1:" CO_AUDIT_EXAMPLES_S "]),"          \
    "                  '[]'::jsonb)::text AS examples FROM bad"
#define CHECK(body) AUDIT_PRE body AUDIT_POST

#define TERMINAL "('confirmed', 'failed', 'expired', 'cancelled', 'refunded')"

static const struct {
    const char *name;
    const char *sql;
} checks[CO_AUDIT_N] = {
    /* Units held by live or confirmed orders beyond the item's initial stock
     * plus its restocks. */
    [CO_AUDIT_OVERSOLD_UNITS] = {"oversold_units",
        CHECK("SELECT item_id::text, units FROM over")},
    /* stock_audit's rows (sql/0007): the stock, the ledger and the orders
     * disagree. An oversold item is always one of them: it counts above. */
    [CO_AUDIT_LEDGER_MISMATCHES] = {"ledger_mismatches",
        CHECK("SELECT a.id::text, 1 FROM stock_audit a"
              " WHERE a.id NOT IN (SELECT item_id FROM over)")},
    /* An order with money kept by more than one intent, or more than its
     * amount in all. */
    [CO_AUDIT_DOUBLE_CHARGES] = {"double_charges",
        CHECK("SELECT o.id::text, 1 FROM ord o JOIN pi ON pi.order_id = o.id::text"
              " WHERE o.settled AND pi.kept > 0 GROUP BY o.id, o.amount"
              " HAVING count(*) > 1 OR sum(pi.kept) > o.amount")},
    /* An intent keeping money (net of refunds) for an order that is not
     * confirmed, or for no order at all. */
    [CO_AUDIT_CAPTURED_WITHOUT_CONFIRMED] = {"captured_money_without_confirmed_order",
        CHECK("SELECT pi.id, 1 FROM p, pi LEFT JOIN orders o ON o.id::text = pi.order_id"
              " WHERE pi.kept > 0 AND ((o.id IS NULL AND pi.settled)"
              "   OR (o.status <> 'confirmed' AND o.updated_at <= now() - p.settle))")},
    /* A confirmed order whose intent is not succeeded, keeping its amount. */
    [CO_AUDIT_CONFIRMED_WITHOUT_CAPTURE] = {"confirmed_without_capture",
        CHECK("SELECT o.id::text, 1 FROM ord o LEFT JOIN pi ON pi.id = o.payment_intent"
              " WHERE o.status = 'confirmed' AND o.settled"
              "   AND (pi.id IS NULL OR pi.status <> 'succeeded' OR pi.kept <> o.amount)")},
    /* An authorization still open for an order that ended, or for none. */
    [CO_AUDIT_DANGLING_AUTHORIZATIONS] = {"dangling_authorizations",
        CHECK("SELECT pi.id, 1 FROM p, pi LEFT JOIN orders o ON o.id::text = pi.order_id"
              " WHERE pi.status = 'requires_capture' AND pi.settled"
              "   AND (o.id IS NULL OR (o.status IN " TERMINAL
              "        AND o.updated_at <= now() - p.settle))")},
    [CO_AUDIT_NON_TERMINAL_ORDERS] = {"non_terminal_orders",
        CHECK("SELECT o.id::text, 1 FROM ord o WHERE o.settled AND o.status NOT IN " TERMINAL)},
    /* A state the saga enters at most once entered twice (authorized, voiding
     * and expired may recur: a late authorization after expiry); a stock move
     * of one kind right after another of the same kind for one order and item
     * (reserve, release, reserve again is a late authorization; two reserves
     * in a row are not); a restock event's units in the ledger twice. */
    [CO_AUDIT_DUPLICATE_WEBHOOK_EFFECTS] = {"duplicate_webhook_effects",
        CHECK("SELECT h.order_id::text, 1 FROM order_history h JOIN ord o ON o.id = h.order_id"
              " WHERE h.to_status NOT IN ('authorized', 'voiding', 'expired')"
              " GROUP BY h.order_id HAVING count(*) > count(DISTINCT h.to_status)"
              " UNION"
              " SELECT m.order_id::text, 1 FROM"
              "  (SELECT l.order_id, l.kind,"
              "          lag(l.kind) OVER (PARTITION BY l.order_id, l.item_id ORDER BY l.id)"
              "            AS prev"
              "     FROM stock_ledger l JOIN ord o ON o.id = l.order_id) m"
              " WHERE m.kind = m.prev"
              " UNION"
              " SELECT l.event_id, 1 FROM stock_ledger l"
              "   JOIN restock_events e ON e.event_id = l.event_id, p"
              "  WHERE l.kind = 'restock' AND (p.since IS NULL OR e.created_at >= p.since)"
              "  GROUP BY l.event_id HAVING count(*) > 1")},
    /* A subscriber's notification of a restock that brought the item back
     * (the outbox rows are the subscribers at that moment) that never
     * arrived: with the sink, no accepted delivery of it (unless it is still
     * pending and young); without, the outbox gave up on it (dead) or it is
     * still pending after the settle time. */
    [CO_AUDIT_MISSED_NOTIFICATIONS] = {"missed_notifications",
        CHECK("SELECT nb.id::text, 1 FROM p, nb LEFT JOIN got g"
              "   ON g.ev = nb.restock_event_id AND g.usr = nb.user_id::text"
              " WHERE CASE WHEN p.deliveries IS NULL"
              "   THEN nb.status = 'dead'"
              "        OR (nb.status = 'pending' AND nb.created_at <= now() - p.settle)"
              "   ELSE g.k IS NULL"
              "        AND (nb.status <> 'pending' OR nb.created_at <= now() - p.settle) END")},
    /* One subscriber notified of one restock more than once: accepted twice
     * by the sink, or (without it, the outbox's own rows) queued twice. */
    [CO_AUDIT_DUPLICATED_NOTIFICATIONS] = {"duplicated_notifications",
        CHECK("SELECT nb.id::text, 1 FROM nb JOIN got g"
              "   ON g.ev = nb.restock_event_id AND g.usr = nb.user_id::text WHERE g.k > 1"
              " UNION"
              " SELECT min(nb.id)::text, 1 FROM nb GROUP BY nb.restock_event_id, nb.user_id"
              " HAVING count(*) > 1")},
};

const char *co_audit_check_name(co_audit_check c)
{
    return c >= 0 && c < CO_AUDIT_N ? checks[c].name : "unknown";
}

/* ---------------------------------------------------------------- the snapshot */

static bool fail(co_dbr *r, const char *what, char *err, size_t n)
{
    snprintf(err, n, "database: %s: %s", what, r->message[0] ? r->message : "failed");
    co_dbr_clear(r);
    return false;
}

bool co_audit_snapshot(co_db *db, char *err, size_t n)
{
    co_dbr r;

    if (co_db_exec(db, &r, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL) < 0)
        return fail(&r, "cannot begin a read-only transaction", err, n);
    co_dbr_clear(&r);
    /* A repeatable-read snapshot is taken by the first statement after BEGIN. */
    if (co_db_exec(db, &r, "SELECT 1 FROM orders LIMIT 1", 0, NULL) < 0)
        return fail(&r, "cannot read orders", err, n);
    co_dbr_clear(&r);
    return true;
}

void co_audit_snapshot_end(co_db *db)
{
    co_dbr r;

    co_db_exec(db, &r, "ROLLBACK", 0, NULL);
    co_dbr_clear(&r);
}

/* ---------------------------------------------------------------- the queries */

bool co_audit_outcomes(co_db *db, const co_audit_inputs *in, co_audit_outcome **out, int *n,
                       char *err, size_t errn)
{
    const char *params[1] = {in->since};
    co_dbr r;
    int rows;

    *out = NULL;
    *n = 0;
    if (co_db_exec(db, &r,
                   "SELECT flow, status, count(*) AS n FROM orders"
                   " WHERE $1::timestamptz IS NULL OR created_at >= $1::timestamptz"
                   " GROUP BY flow, status ORDER BY flow, status",
                   1, params) < 0)
        return fail(&r, "cannot count orders", err, errn);
    rows = co_dbr_rows(&r);
    *out = calloc(rows > 0 ? (size_t)rows : 1, sizeof **out);
    if (*out == NULL) {
        co_dbr_clear(&r);
        snprintf(err, errn, "out of memory");
        return false;
    }
    for (int i = 0; i < rows; i++) {
        co_audit_outcome *o = &(*out)[i];

        snprintf(o->flow, sizeof o->flow, "%s", co_dbr_str(&r, i, "flow"));
        snprintf(o->status, sizeof o->status, "%s", co_dbr_str(&r, i, "status"));
        o->n = co_dbr_int(&r, i, "n");
    }
    *n = rows;
    co_dbr_clear(&r);
    return true;
}

/* The examples column: a JSON array of up to CO_AUDIT_EXAMPLES strings. */
static void read_examples(const char *text, co_audit_result *res)
{
    json_t *a = json_loads(text != NULL ? text : "[]", 0, NULL);
    size_t i;
    json_t *v;

    res->n_examples = 0;
    json_array_foreach(a, i, v) {
        if (res->n_examples == CO_AUDIT_EXAMPLES || !json_is_string(v))
            break;
        snprintf(res->examples[res->n_examples++], sizeof res->examples[0], "%s",
                 json_string_value(v));
    }
    json_decref(a);
}

bool co_audit_checks(co_db *db, const co_audit_inputs *in, co_audit_result *res, char *err,
                     size_t n)
{
    char settle[16];
    const char *params[4] = {settle, in->since, in->intents, in->deliveries};

    snprintf(settle, sizeof settle, "%d", in->settle_seconds);
    for (int c = 0; c < CO_AUDIT_N; c++) {
        co_dbr r;

        if (co_db_exec(db, &r, checks[c].sql, 4, params) != CO_DB_ROWS)
            return fail(&r, checks[c].name, err, n);
        res[c].count = co_dbr_int(&r, 0, "n");
        read_examples(co_dbr_str(&r, 0, "examples"), &res[c]);
        co_dbr_clear(&r);
    }
    return true;
}
