/* GET /healthz (the process answers), GET /readyz (it can serve: Postgres
 * answers within a short deadline and every migration compiled in is
 * applied) and GET /metrics (Prometheus text: the process's own families,
 * co_metrics.h, plus gauges read from the database, cached for a second). */
#include "co_app.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* How long a probe's statement may take, waiting for a connection included. */
#define PROBE_TIMEOUT_MS 1000
/* How long the database's gauges are reused: scrapes from several
 * Prometheus servers cost one statement a second. */
#define GAUGES_TTL_US 1000000LL

void co_api_healthz(co_worker *w, const co_req *req, co_resp *resp)
{
    (void)w;
    (void)req;
    co_resp_raw(resp, 200, "{\"status\":\"ok\"}", 15);
}

void co_api_readyz(co_worker *w, const co_req *req, co_resp *resp)
{
    int pending = 0;
    co_store_rc rc = co_store_migrations_pending(w->db, PROBE_TIMEOUT_MS, &pending);
    bool reached = rc == CO_STORE_OK;
    bool ready = reached && pending == 0;
    (void)req;

    co_resp_json(resp, ready ? 200 : 503,
                 json_pack("{s:s, s:{s:s, s:s}}", "status", ready ? "ready" : "not_ready",
                           "checks", "database", reached ? "ok" : "unreachable", "migrations",
                           !reached ? "unknown" : pending ? "pending" : "ok"));
}

/* The database's gauges, read at most once per GAUGES_TTL_US; false when the
 * last read failed. */
static bool gauges(co_db *db, co_store_gauges *out)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static long long read_at;
    static bool ok;
    static co_store_gauges last;
    long long now = co_metric_now_us();
    bool fresh;

    pthread_mutex_lock(&lock);
    if (read_at == 0 || now - read_at >= GAUGES_TTL_US) {
        ok = co_store_read_gauges(db, PROBE_TIMEOUT_MS, &last) == CO_STORE_OK;
        read_at = co_metric_now_us();
    }
    fresh = ok;
    *out = last;
    pthread_mutex_unlock(&lock);
    return fresh;
}

static void write_gauges(co_metrics_text *t, co_db *db)
{
    co_store_gauges g;
    bool ok = gauges(db, &g);

    co_metrics_family(t, "checkoutd_db_gauges_up", "gauge",
                      "1 when the gauges below could be read from the database (they are "
                      "left out when not).");
    co_metrics_sample(t, "checkoutd_db_gauges_up", NULL, NULL, ok);
    co_metrics_family(t, "checkoutd_orders", "gauge",
                      "Orders in flight (not ended), by state.");
    for (int i = 0; ok && i < CO_STORE_LIVE_STATES; i++)
        co_metrics_sample(t, "checkoutd_orders", "state", co_store_live_states[i],
                          (double)g.orders[i]);
    co_metrics_family(t, "checkoutd_orders_lease_lapsed", "gauge",
                      "Orders being driven whose lease lapsed: recovery's to take over.");
    if (ok)
        co_metrics_sample(t, "checkoutd_orders_lease_lapsed", NULL, NULL,
                          (double)g.lease_lapsed);
    co_metrics_family(t, "checkoutd_reserved_units", "gauge",
                      "Units held by reservations of orders in flight (not yet sold).");
    if (ok)
        co_metrics_sample(t, "checkoutd_reserved_units", NULL, NULL, (double)g.units_held);
    co_metrics_family(t, "checkoutd_outbox_pending", "gauge",
                      "Back-in-stock notifications waiting for delivery.");
    if (ok)
        co_metrics_sample(t, "checkoutd_outbox_pending", NULL, NULL, (double)g.outbox_pending);
    co_metrics_family(t, "checkoutd_outbox_oldest_age_seconds", "gauge",
                      "Age of the oldest notification waiting for delivery (0 when none).");
    if (ok)
        co_metrics_sample(t, "checkoutd_outbox_oldest_age_seconds", NULL, NULL,
                          g.outbox_oldest_seconds);
}

void co_api_metrics(co_worker *w, const co_req *req, co_resp *resp)
{
    co_metrics_text *t = co_metrics_text_new();
    char *text;
    (void)req;

    co_metrics_write(t);
    write_gauges(t, w->db);
    text = co_metrics_text_take(t);
    if (text == NULL) {
        co_resp_error(resp, CO_ERR_internal_error, NULL, NULL);
        return;
    }
    co_resp_raw(resp, 200, text, strlen(text));
    free(text);
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
}
