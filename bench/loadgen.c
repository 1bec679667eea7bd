/* bench/loadgen: the HTTP side of `make bench`.
 *
 *   AUTH_JWT_SECRET=... loadgen --url http://HOST:PORT --item UUID
 *                               [--clients 32] [--seconds 10] [--warmup 1] [--users 8]
 *
 * Each client thread keeps one CURL easy handle (so one keep-alive connection)
 * and loops the server-confirmed card checkout of one unit of the hot item:
 *
 *   POST /v1/checkout
 *   Authorization: Bearer <shopper JWT>      (one of --users shoppers, co_jwt_sign)
 *   Idempotency-Key: lg-<run>-<client>-<n>   (new for every request)
 *   {"items":[{"item_id":"<item>","quantity":1}],"payment_method":"pm_card_visa"}
 *
 * A success is 201 with "status":"confirmed" in the body: the server reserved,
 * authorized, captured and stored its answer before replying. Anything else
 * (another status, a transport error, a timeout) is an error: it is counted,
 * the first few are printed on stderr with their body, and the script fails
 * the run. Prints the result line of bench.h on stdout. */
#include "bench.h"

#include "co_jwt.h"

#include <curl/curl.h>
#include <uuid/uuid.h>

#define LG_MAX_USERS 64
#define LG_BODY_KEEP 400         /* bytes of an answer kept for the error report */
#define LG_TIMEOUT_MS 30000L     /* far above any sane checkout: a timeout is an error */

typedef struct {
    char url[512];
    char body[256];
    char *auth[LG_MAX_USERS];    /* "Authorization: Bearer ..." (owned) */
    int users;
    unsigned run_id;
} lg_bench;

typedef struct {
    CURL *curl;
    unsigned long long seq;
    char answer[LG_BODY_KEEP + 1];
    size_t answer_len;
} lg_client;

static lg_bench g_lg;

/* Keeps the start of the answer (for "status":"confirmed" and error reports). */
static size_t lg_write(char *data, size_t size, size_t n, void *cls)
{
    lg_client *c = cls;
    size_t len = size * n;
    size_t room = LG_BODY_KEEP - c->answer_len;
    size_t take = len < room ? len : room;

    memcpy(c->answer + c->answer_len, data, take);
    c->answer_len += take;
    c->answer[c->answer_len] = '\0';
    return len;
}

static bool lg_setup(bench_thread *t)
{
    lg_client *c = calloc(1, sizeof *c);

    if (c == NULL)
        return false;
    t->ctx = c;
    c->curl = curl_easy_init();
    if (c->curl == NULL)
        return false;
    curl_easy_setopt(c->curl, CURLOPT_URL, g_lg.url);
    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, g_lg.body);
    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(g_lg.body));
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, lg_write);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->curl, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c->curl, CURLOPT_TIMEOUT_MS, LG_TIMEOUT_MS);
    return true;
}

static void lg_teardown(bench_thread *t)
{
    lg_client *c = t->ctx;

    if (c == NULL)
        return;
    if (c->curl != NULL)
        curl_easy_cleanup(c->curl);
    free(c);
    t->ctx = NULL;
}

static bench_op_result lg_checkout(bench_thread *t, char *err, size_t errlen)
{
    lg_client *c = t->ctx;
    char idem[96];
    struct curl_slist *headers = NULL, *h;
    CURLcode cc;
    long status = 0;
    bench_op_result r = BENCH_OP_ERROR;

    snprintf(idem, sizeof idem, "Idempotency-Key: lg-%u-%d-%llu", g_lg.run_id, t->index,
             c->seq++);
    c->answer_len = 0;
    c->answer[0] = '\0';
    h = curl_slist_append(headers, "Content-Type: application/json");
    if (h != NULL) {
        headers = h;
        h = curl_slist_append(headers, g_lg.auth[(size_t)t->index % (size_t)g_lg.users]);
    }
    if (h != NULL) {
        headers = h;
        h = curl_slist_append(headers, idem);
    }
    if (h == NULL) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    headers = h;
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, headers);
    cc = curl_easy_perform(c->curl);
    if (cc != CURLE_OK) {
        snprintf(err, errlen, "POST /v1/checkout: %s", curl_easy_strerror(cc));
        goto done;
    }
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status == 201 && strstr(c->answer, "\"status\":\"confirmed\"") != NULL) {
        r = BENCH_OP_OK;
        goto done;
    }
    snprintf(err, errlen, "POST /v1/checkout: %ld %s", status, c->answer);

done:
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(headers);
    return r;
}

static void usage(void)
{
    fputs("usage: AUTH_JWT_SECRET=... loadgen --url http://HOST:PORT --item UUID\n"
          "                             [--clients N] [--seconds S] [--warmup S] [--users N]\n",
          stderr);
}

/* Makes the shoppers and their "Authorization: Bearer" headers. */
static bool lg_tokens(const char *secret)
{
    time_t now = time(NULL);

    for (int i = 0; i < g_lg.users; i++) {
        uuid_t u;
        char sub[37];
        char *tok;
        size_t n;

        uuid_generate_random(u);
        uuid_unparse_lower(u, sub);
        /* Valid for the whole run however long it is; iat a minute back for clock skew. */
        tok = co_jwt_sign(secret, sub, (long long)now + 86400, now - 60);
        if (tok == NULL)
            return false;
        n = strlen(tok) + sizeof "Authorization: Bearer ";
        g_lg.auth[i] = malloc(n);
        if (g_lg.auth[i] == NULL) {
            free(tok);
            return false;
        }
        snprintf(g_lg.auth[i], n, "Authorization: Bearer %s", tok);
        free(tok);
    }
    return true;
}

int main(int argc, char **argv)
{
    static bench_run run;
    double clients = 32, users = 8;
    const char *base = NULL, *item = NULL;
    const char *secret = getenv("AUTH_JWT_SECRET");
    int rc = 1;

    run.seconds = 10;
    run.warmup_s = 1;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(argv[i], "--url") == 0 && v != NULL) {
            base = v;
        } else if (strcmp(argv[i], "--item") == 0 && v != NULL) {
            item = v;
        } else if (strcmp(argv[i], "--clients") == 0) {
            if (!bench_parse_num("--clients", v, 1, BENCH_MAX_CLIENTS, &clients))
                return 2;
        } else if (strcmp(argv[i], "--seconds") == 0) {
            if (!bench_parse_num("--seconds", v, 0.1, 3600, &run.seconds))
                return 2;
        } else if (strcmp(argv[i], "--warmup") == 0) {
            if (!bench_parse_num("--warmup", v, 0, 600, &run.warmup_s))
                return 2;
        } else if (strcmp(argv[i], "--users") == 0) {
            if (!bench_parse_num("--users", v, 1, LG_MAX_USERS, &users))
                return 2;
        } else {
            usage();
            return 2;
        }
        i++;
    }
    if (base == NULL || item == NULL || secret == NULL || secret[0] == '\0') {
        usage();
        return 2;
    }
    snprintf(g_lg.url, sizeof g_lg.url, "%s/v1/checkout", base);
    snprintf(g_lg.body, sizeof g_lg.body,
             "{\"items\":[{\"item_id\":\"%s\",\"quantity\":1}],"
             "\"payment_method\":\"pm_card_visa\"}",
             item);
    g_lg.users = (int)users;
    g_lg.run_id = (unsigned)time(NULL);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "loadgen: curl_global_init failed\n");
        return 1;
    }
    if (!lg_tokens(secret)) {
        fprintf(stderr, "loadgen: cannot sign shopper tokens\n");
        goto out;
    }
    run.clients = (int)clients;
    run.setup = lg_setup;
    run.op = lg_checkout;
    run.teardown = lg_teardown;
    rc = bench_run_all(&run);

out:
    for (int i = 0; i < g_lg.users; i++)
        free(g_lg.auth[i]);
    curl_global_cleanup();
    return rc;
}
