/* checkoutd audit: says in one table whether money, stock and notifications
 * agree (SPEC section 8), from Postgres, the provider's list API and the
 * notification sink. It changes nothing anywhere: one read-only snapshot of
 * the database, GETs only elsewhere. README, "Auditing".
 *
 *   checkoutd audit [--since RFC3339] [--sink URL] [--settled-after SECONDS] [--json]
 *
 * The provider reader is its own, minimal one (not co_stripe.c's client): a
 * list read is safe to send again, so it retries on a lost connection, 5xx
 * and 429, nothing else. */
#include "audit.h"
#include "co_config.h"
#include "co_stripe.h"

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define AUDIT_TRIES 4           /* attempts of one GET */
#define AUDIT_TIMEOUT_MS 30000  /* one attempt */
#define AUDIT_PAGES_MAX 100000  /* 10 million intents: a loop that never ends is a bug */

typedef struct {
    int settle_seconds;         /* -1: from the server's configuration */
    const char *since;
    const char *sink;
    bool json;
} audit_args;

/* ---------------------------------------------------------------- HTTP reads */

typedef struct {
    char *p;
    size_t len;
} audit_buf;

static size_t collect(char *data, size_t size, size_t n, void *arg)
{
    audit_buf *b = arg;
    size_t add = size * n;
    char *p = realloc(b->p, b->len + add + 1);

    if (p == NULL)
        return 0;
    memcpy(p + b->len, data, add);
    b->len += add;
    p[b->len] = '\0';
    b->p = p;
    return add;
}

/* GET url (with a bearer when key is not NULL) and parse the answer as JSON.
 * Retried, with backoff, on a lost connection, 5xx and 429. Returns the JSON
 * (caller decrefs) of a 200, or NULL with err filled. */
static json_t *get_json(CURL *curl, const char *url, const char *key, char *err, size_t n)
{
    char auth[512];
    struct curl_slist *hdrs = NULL;
    json_t *j = NULL;

    if (key != NULL) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        hdrs = curl_slist_append(hdrs, auth);
        hdrs = curl_slist_append(hdrs, "Stripe-Version: " CO_STRIPE_API_VERSION);
    }
    for (int attempt = 0; attempt < AUDIT_TRIES; attempt++) {
        audit_buf b = {0};
        long status = 0;
        CURLcode rc;

        if (attempt > 0)
            usleep((useconds_t)(500000u << (attempt - 1)));
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &b);
        rc = curl_easy_perform(curl);
        if (rc == CURLE_OK)
            curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        if (rc == CURLE_OK && status == 200) {
            j = json_loadb(b.p != NULL ? b.p : "", b.len, 0, NULL);
            if (j == NULL)
                snprintf(err, n, "GET %.300s: the answer is not JSON", url);
            free(b.p);
            break;
        }
        free(b.p);
        if (rc != CURLE_OK)
            snprintf(err, n, "GET %.300s: %s", url, curl_easy_strerror(rc));
        else
            snprintf(err, n, "GET %.300s: HTTP %ld", url, status);
        if (rc == CURLE_OK && status != 429 && status < 500)
            break; /* refused for good (a wrong key, a wrong URL): no retry fixes it */
    }
    curl_slist_free_all(hdrs);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, NULL);
    return j;
}

/* ---------------------------------------------------------------- the provider */

static long long jint(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);

    return json_is_integer(v) ? (long long)json_integer_value(v) : 0;
}

/* Money the intent keeps, net of refunds: its amount_received less what its
 * latest charge gave back (amount_refunded counts the part a partial capture
 * released, hence the comparison with amount). */
static bool kept_of(CURL *curl, const char *base, const char *key, json_t *pi, long long *kept,
                    char *err, size_t n)
{
    long long received = jint(pi, "amount_received");
    json_t *ch = json_object_get(pi, "latest_charge");
    json_t *fetched = NULL;
    const char *status = json_string_value(json_object_get(pi, "status"));
    long long net;

    *kept = 0;
    if (status == NULL || strcmp(status, "succeeded") != 0)
        return true;
    if (json_is_string(ch)) {
        char url[1024];

        snprintf(url, sizeof url, "%s/v1/charges/%s", base, json_string_value(ch));
        fetched = get_json(curl, url, key, err, n);
        if (fetched == NULL)
            return false;
        ch = fetched;
    }
    net = json_is_object(ch) ? jint(ch, "amount") - jint(ch, "amount_refunded") : received;
    *kept = net < received ? net : received;
    if (*kept < 0)
        *kept = 0;
    json_decref(fetched);
    return true;
}

/* Every PaymentIntent (created since since_epoch when >= 0), as the JSON array
 * the checks read (audit.h). NULL with err filled when the list cannot be read. */
static json_t *read_intents(const char *base, const char *key, long long since_epoch, char *err,
                            size_t n)
{
    CURL *curl = curl_easy_init();
    json_t *out = json_array();
    char after[256] = "";

    if (curl == NULL || out == NULL) {
        snprintf(err, n, "out of memory");
        goto fail;
    }
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)AUDIT_TIMEOUT_MS);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    for (int page = 0; page < AUDIT_PAGES_MAX; page++) {
        char url[2048], gte[48] = "", sa[300] = "";
        json_t *list, *data, *pi;
        size_t i;
        bool more;

        if (since_epoch >= 0)
            snprintf(gte, sizeof gte, "&created%%5Bgte%%5D=%lld", since_epoch);
        if (after[0] != '\0')
            snprintf(sa, sizeof sa, "&starting_after=%s", after);
        snprintf(url, sizeof url, "%s/v1/payment_intents?limit=100%s%s", base, gte, sa);
        list = get_json(curl, url, key, err, n);
        if (list == NULL)
            goto fail;
        data = json_object_get(list, "data");
        if (!json_is_array(data)) {
            snprintf(err, n, "GET %.300s: not a list object", url);
            json_decref(list);
            goto fail;
        }
        json_array_foreach(data, i, pi) {
            const char *id = json_string_value(json_object_get(pi, "id"));
            const char *order = json_string_value(
                json_object_get(json_object_get(pi, "metadata"), "order_id"));
            long long kept;

            if (id == NULL || !kept_of(curl, base, key, pi, &kept, err, n)) {
                if (id == NULL)
                    snprintf(err, n, "GET %.300s: an intent without an id", url);
                json_decref(list);
                goto fail;
            }
            json_array_append_new(
                out, json_pack("{s:s, s:s?, s:I, s:I, s:I, s:s?, s:I}", "id", id, "status",
                               json_string_value(json_object_get(pi, "status")), "amount",
                               (json_int_t)jint(pi, "amount"), "received",
                               (json_int_t)jint(pi, "amount_received"), "kept",
                               (json_int_t)kept, "order_id", order, "created",
                               (json_int_t)jint(pi, "created")));
            snprintf(after, sizeof after, "%s", id);
        }
        more = json_is_true(json_object_get(list, "has_more")) && json_array_size(data) > 0;
        json_decref(list);
        if (!more) {
            curl_easy_cleanup(curl);
            return out;
        }
    }
    snprintf(err, n, "the provider's list did not end after %d pages", AUDIT_PAGES_MAX);
fail:
    if (curl != NULL)
        curl_easy_cleanup(curl);
    json_decref(out);
    return NULL;
}

/* ---------------------------------------------------------------- the sink */

/* mock-notify's deliveries ("data" of GET /_mock/deliveries). url is the
 * sink's base URL or that endpoint itself. */
static json_t *read_deliveries(const char *url, char *err, size_t n)
{
    static const char path[] = "/_mock/deliveries";
    CURL *curl = curl_easy_init();
    char full[2048];
    size_t len = strlen(url);
    json_t *j, *data;

    if (curl == NULL) {
        snprintf(err, n, "out of memory");
        return NULL;
    }
    while (len > 0 && url[len - 1] == '/')
        len--;
    if (len >= sizeof path - 1 &&
        strncmp(url + len - (sizeof path - 1), path, sizeof path - 1) == 0)
        snprintf(full, sizeof full, "%.*s", (int)len, url);
    else
        snprintf(full, sizeof full, "%.*s%s", (int)len, url, path);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)AUDIT_TIMEOUT_MS);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    j = get_json(curl, full, NULL, err, n);
    curl_easy_cleanup(curl);
    data = json_incref(json_object_get(j, "data"));
    json_decref(j);
    if (j != NULL && !json_is_array(data)) {
        snprintf(err, n, "GET %.300s: no \"data\" array", full);
        json_decref(data);
        return NULL;
    }
    return data;
}

/* ---------------------------------------------------------------- output */

static bool terminal(const char *st)
{
    static const char *const names[] = {"confirmed", "failed", "expired", "cancelled",
                                        "refunded"};

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(st, names[i]) == 0)
            return true;
    return false;
}

/* {"total":N,"by_status":{status:N},"by_flow":{flow:{"total":N,status:N}}} */
static json_t *checkouts_json(const co_audit_outcome *o, int n)
{
    json_t *by_status = json_object(), *by_flow = json_object();
    long long total = 0;

    for (int i = 0; i < n; i++) {
        json_t *f = json_object_get(by_flow, o[i].flow);

        if (f == NULL) {
            f = json_pack("{s:I}", "total", (json_int_t)0);
            json_object_set_new(by_flow, o[i].flow, f);
        }
        json_object_set_new(f, "total",
                            json_integer(json_integer_value(json_object_get(f, "total")) +
                                         o[i].n));
        json_object_set_new(f, o[i].status, json_integer(o[i].n));
        json_object_set_new(by_status, o[i].status,
                            json_integer(json_integer_value(json_object_get(by_status,
                                                                            o[i].status)) +
                                         o[i].n));
        total += o[i].n;
    }
    return json_pack("{s:I, s:o, s:o}", "total", (json_int_t)total, "by_status", by_status,
                     "by_flow", by_flow);
}

static void print_json(const co_audit_outcome *o, int n, const co_audit_result *res,
                       const co_audit_inputs *in, bool sink)
{
    json_t *anomalies = json_object();
    json_t *root;
    char *s;

    for (int c = 0; c < CO_AUDIT_N; c++) {
        json_t *ex = json_array();

        for (int k = 0; k < res[c].n_examples; k++)
            json_array_append_new(ex, json_string(res[c].examples[k]));
        json_object_set_new(anomalies, co_audit_check_name(c),
                            json_pack("{s:I, s:o}", "count", (json_int_t)res[c].count,
                                      "examples", ex));
    }
    root = json_pack("{s:o, s:o, s:{s:b, s:b}, s:i, s:s?}", "checkouts", checkouts_json(o, n),
                     "anomalies", anomalies, "checked", "provider", 1, "sink", sink,
                     "settled_after", in->settle_seconds, "since", in->since);
    s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    printf("%s\n", s != NULL ? s : "{}");
    free(s);
    json_decref(root);
}

static void print_table(const co_audit_outcome *o, int n, const co_audit_result *res,
                        const co_audit_inputs *in, bool sink)
{
    json_t *ck = checkouts_json(o, n);
    json_t *by_status = json_object_get(ck, "by_status");
    json_t *server = json_object_get(json_object_get(ck, "by_flow"), "server");
    json_t *mobile = json_object_get(json_object_get(ck, "by_flow"), "mobile");
    const char *st;
    json_t *v;
    int failing = 0;

    printf("Checkouts by outcome: %lld orders%s%s\n",
           (long long)json_integer_value(json_object_get(ck, "total")),
           in->since ? " created since " : "", in->since ? in->since : "");
    printf("  %-40s %8s %8s %8s\n", "status", "all", "server", "mobile");
    json_object_foreach(by_status, st, v) {
        printf("  %-40s %8lld %8lld %8lld%s\n", st, (long long)json_integer_value(v),
               (long long)json_integer_value(json_object_get(server, st)),
               (long long)json_integer_value(json_object_get(mobile, st)),
               terminal(st) ? "" : "  (not ended)");
    }
    printf("Anomalies (orders and intents younger than %d s are in flight; notifications %s)\n",
           in->settle_seconds,
           sink ? "checked against the sink's deliveries" : "from the outbox alone, no --sink");
    printf("  %-40s %8s  %s\n", "anomaly", "count", "examples");
    for (int c = 0; c < CO_AUDIT_N; c++) {
        printf("  %-40s %8lld", co_audit_check_name(c), res[c].count);
        for (int k = 0; k < res[c].n_examples; k++)
            printf("%s%s", k == 0 ? "  " : " ", res[c].examples[k]);
        printf("\n");
        failing += res[c].count != 0;
    }
    if (failing == 0)
        printf("OK: every anomaly is 0\n");
    else
        printf("FAILED: %d of %d anomalies are not 0\n", failing, (int)CO_AUDIT_N);
    json_decref(ck);
}

/* ---------------------------------------------------------------- the command */

static void usage(FILE *to)
{
    fputs("usage: checkoutd audit [--since RFC3339] [--sink URL] [--settled-after SECONDS]"
          " [--json]\n"
          "Reads DATABASE_URL, STRIPE_API_BASE and STRIPE_SECRET_KEY; changes nothing.\n"
          "Exit status: 0 every anomaly is 0, 1 one is not, 2 something could not be read.\n",
          to);
}

static bool parse_args(int argc, char **argv, audit_args *a)
{
    static const struct option opts[] = {
        {"since", required_argument, NULL, 's'},
        {"sink", required_argument, NULL, 'k'},
        {"settled-after", required_argument, NULL, 'a'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };

    *a = (audit_args){.settle_seconds = -1};
    optind = 1;
    for (;;) {
        int c = getopt_long(argc, argv, "h", opts, NULL);
        char *end = NULL;
        long v;

        if (c == -1)
            break;
        switch (c) {
        case 's': a->since = optarg; break;
        case 'k': a->sink = optarg; break;
        case 'j': a->json = true; break;
        case 'a':
            errno = 0;
            v = strtol(optarg, &end, 10);
            if (errno != 0 || end == optarg || *end != '\0' || v < 0 || v > 100000000) {
                fprintf(stderr, "checkoutd audit: --settled-after must be seconds, 0 or more\n");
                return false;
            }
            a->settle_seconds = (int)v;
            break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return false;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "checkoutd audit: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return false;
    }
    return true;
}

/* The settle time the server implies: a saga's lease plus the reservation
 * TTL, from the same configuration (so the same environment) as the server. */
static bool default_settle(int *out)
{
    co_config cfg;
    char err[2048];
    bool ok = co_config_load(&cfg, err, sizeof err);

    if (ok)
        *out = cfg.lease_seconds + cfg.reservation_ttl_seconds;
    else
        fprintf(stderr,
                "checkoutd audit: the default --settled-after (saga lease + reservation TTL)"
                " comes from the server's configuration, which is incomplete: %s."
                " Run with the server's environment, or pass --settled-after SECONDS\n",
                err);
    co_config_free(&cfg);
    return ok;
}

/* --since as Unix seconds (for the provider's created[gte]), read by Postgres. */
static bool since_epoch(co_db *db, const char *since, long long *out, char *err, size_t n)
{
    const char *params[1] = {since};
    co_dbr r;

    *out = -1;
    if (since == NULL)
        return true;
    if (co_db_exec(db, &r, "SELECT floor(extract(epoch FROM $1::timestamptz))::bigint AS t", 1,
                   params) != CO_DB_ROWS) {
        snprintf(err, n, "--since '%s' is not a time (%s)", since, r.message);
        co_dbr_clear(&r);
        return false;
    }
    *out = co_dbr_int(&r, 0, "t");
    co_dbr_clear(&r);
    return true;
}

int co_audit_main(int argc, char **argv)
{
    audit_args a;
    const char *url = getenv("DATABASE_URL");
    const char *base = getenv("STRIPE_API_BASE");
    const char *key = getenv("STRIPE_SECRET_KEY");
    co_audit_inputs in = {0};
    co_audit_result res[CO_AUDIT_N];
    co_audit_outcome *outcomes = NULL;
    int n_outcomes = 0, rc = 2;
    long long epoch;
    char err[1024] = "";
    json_t *intents = NULL, *deliveries = NULL;
    char *intents_s = NULL, *deliveries_s = NULL;
    co_db *db = NULL;

    if (!parse_args(argc, argv, &a))
        return 2;
    if (url == NULL || url[0] == '\0' || base == NULL || base[0] == '\0') {
        fprintf(stderr, "checkoutd audit: DATABASE_URL and STRIPE_API_BASE are required\n");
        return 2;
    }
    if (key == NULL || key[0] == '\0')
        key = "sk_test_checkout_local"; /* the server's default (README, Configuration) */
    if (a.settle_seconds < 0 && !default_settle(&a.settle_seconds))
        return 2;
    memset(res, 0, sizeof res);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    db = co_db_open(url);
    if (db == NULL || !co_audit_snapshot(db, err, sizeof err) ||
        !since_epoch(db, a.since, &epoch, err, sizeof err))
        goto out;
    intents = read_intents(base, key, epoch, err, sizeof err);
    if (intents == NULL)
        goto out;
    if (a.sink != NULL) {
        deliveries = read_deliveries(a.sink, err, sizeof err);
        if (deliveries == NULL)
            goto out;
        deliveries_s = json_dumps(deliveries, JSON_COMPACT);
    }
    intents_s = json_dumps(intents, JSON_COMPACT);
    in = (co_audit_inputs){.settle_seconds = a.settle_seconds, .since = a.since,
                           .intents = intents_s, .deliveries = deliveries_s};
    if (intents_s == NULL || (a.sink != NULL && deliveries_s == NULL)) {
        snprintf(err, sizeof err, "out of memory");
        goto out;
    }
    if (!co_audit_outcomes(db, &in, &outcomes, &n_outcomes, err, sizeof err) ||
        !co_audit_checks(db, &in, res, err, sizeof err))
        goto out;
    if (a.json)
        print_json(outcomes, n_outcomes, res, &in, a.sink != NULL);
    else
        print_table(outcomes, n_outcomes, res, &in, a.sink != NULL);
    rc = 0;
    for (int c = 0; c < CO_AUDIT_N; c++)
        if (res[c].count != 0)
            rc = 1;
out:
    if (rc == 2)
        fprintf(stderr, "checkoutd audit: %s\n", err[0] ? err : "cannot read the database");
    if (db != NULL) {
        co_audit_snapshot_end(db);
        co_db_close(db);
    }
    free(outcomes);
    free(intents_s);
    free(deliveries_s);
    json_decref(intents);
    json_decref(deliveries);
    curl_global_cleanup();
    return rc;
}
