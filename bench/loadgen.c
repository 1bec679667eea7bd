/* bench/loadgen: the HTTP side of `make bench`.
 *
 *   AUTH_JWT_SECRET=... loadgen --url http://HOST:PORT (--item UUID | --items-file FILE)
 *                               [--clients 32] [--seconds 10] [--warmup 1] [--users 1024]
 *                               [--rate R]
 *
 * Each client thread keeps one CURL easy handle (so one keep-alive connection)
 * and loops the server-confirmed card checkout of one unit of one item: the
 * hot item (--item), or an item drawn at random for every request from the
 * ids in FILE, one a line (--items-file; the script writes it from the
 * database):
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
 * the run.
 *
 * --rate R switches from the closed loop (the next request as soon as the
 * answer came) to an open loop: R requests a second in all, each client
 * sending its share on a fixed schedule, latency counted from the scheduled
 * send time (bench.h). Prints the result line of bench.h on stdout. */
#include "bench.h"

#include "co_jwt.h"

#include <curl/curl.h>
#include <uuid/uuid.h>

#define LG_MAX_USERS 4096
#define LG_BODY_KEEP 400         /* bytes of an answer kept for the error report */
#define LG_TIMEOUT_MS 30000L     /* far above any sane checkout: a timeout is an error */
#define LG_ID_LEN 36             /* a uuid's text */
#define LG_MAX_ITEMS 1000000

typedef struct {
    char url[512];
    char *auth[LG_MAX_USERS];    /* "Authorization: Bearer ..." (owned) */
    int users;
    unsigned run_id;
    char (*items)[LG_ID_LEN + 1]; /* the items to buy (owned); one = the hot item */
    size_t nitems;
} lg_bench;

typedef struct {
    CURL *curl;
    unsigned long long seq;
    uint64_t rng;                /* xorshift64 state: which item the next request buys */
    char body[256];
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
    c->rng = 0x9e3779b97f4a7c15ULL ^ ((uint64_t)g_lg.run_id << 20) ^ (uint64_t)(t->index + 1);
    curl_easy_setopt(c->curl, CURLOPT_URL, g_lg.url);
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

/* The next item of this client: the hot one, or one of the list at random. */
static const char *lg_pick(lg_client *c)
{
    uint64_t x = c->rng;

    if (g_lg.nitems == 1)
        return g_lg.items[0];
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c->rng = x;
    return g_lg.items[x % g_lg.nitems];
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
    snprintf(c->body, sizeof c->body,
             "{\"items\":[{\"item_id\":\"%s\",\"quantity\":1}],"
             "\"payment_method\":\"pm_card_visa\"}",
             lg_pick(c));
    /* POSTFIELDS is not copied: the buffer lives as long as the client. */
    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, c->body);
    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(c->body));
    h = curl_slist_append(headers, "Content-Type: application/json");
    if (h != NULL) {
        headers = h;
        /* Shoppers in turn, each request the next (client i, request n: shopper
         * i + n * 7919): many shoppers buying a few times each, as in a flash
         * sale, not a few shoppers hammering (which the per-shopper limits
         * refuse, as they should). */
        size_t who = ((size_t)t->index + (size_t)(c->seq - 1) * 7919u) % (size_t)g_lg.users;

        h = curl_slist_append(headers, g_lg.auth[who]);
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
    fputs("usage: AUTH_JWT_SECRET=... loadgen --url http://HOST:PORT"
          " (--item UUID | --items-file FILE)\n"
          "                             [--clients N] [--seconds S] [--warmup S] [--users N]\n"
          "                             [--rate R]\n",
          stderr);
}

static bool lg_valid_id(const char *s)
{
    return strlen(s) == LG_ID_LEN && strspn(s, "0123456789abcdefABCDEF-") == LG_ID_LEN;
}

static bool lg_add_item(const char *id, size_t *cap)
{
    if (!lg_valid_id(id)) {
        fprintf(stderr, "loadgen: not an item id: %.60s\n", id);
        return false;
    }
    if (g_lg.nitems == *cap) {
        size_t ncap = *cap ? *cap * 2 : 1024;
        char(*p)[LG_ID_LEN + 1] = realloc(g_lg.items, ncap * sizeof *p);

        if (p == NULL)
            return false;
        g_lg.items = p;
        *cap = ncap;
    }
    memcpy(g_lg.items[g_lg.nitems], id, LG_ID_LEN + 1);
    g_lg.nitems++;
    return true;
}

/* Reads the item ids of --items-file, one a line (blank lines skipped). */
static bool lg_read_items(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[128];
    size_t cap = 0;
    bool ok = true;

    if (f == NULL) {
        fprintf(stderr, "loadgen: cannot open %s\n", path);
        return false;
    }
    while (ok && fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0')
            continue;
        ok = g_lg.nitems < LG_MAX_ITEMS && lg_add_item(line, &cap);
    }
    fclose(f);
    if (ok && g_lg.nitems == 0) {
        fprintf(stderr, "loadgen: %s holds no item id\n", path);
        ok = false;
    }
    return ok;
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
    double clients = 32, users = 1024, rate = 0;
    const char *base = NULL, *item = NULL, *items_file = NULL;
    size_t cap = 0;
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
        } else if (strcmp(argv[i], "--items-file") == 0 && v != NULL) {
            items_file = v;
        } else if (strcmp(argv[i], "--rate") == 0) {
            if (!bench_parse_num("--rate", v, 0.1, 1e6, &rate))
                return 2;
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
    if (base == NULL || (item == NULL) == (items_file == NULL) || secret == NULL ||
        secret[0] == '\0') {
        usage();
        return 2;
    }
    if (item != NULL ? !lg_add_item(item, &cap) : !lg_read_items(items_file))
        return 2;
    snprintf(g_lg.url, sizeof g_lg.url, "%s/v1/checkout", base);
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
    run.rate = rate;
    run.setup = lg_setup;
    run.op = lg_checkout;
    run.teardown = lg_teardown;
    rc = bench_run_all(&run);

out:
    for (int i = 0; i < g_lg.users; i++)
        free(g_lg.auth[i]);
    free(g_lg.items);
    curl_global_cleanup();
    return rc;
}
