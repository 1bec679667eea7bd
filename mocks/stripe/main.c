/* mock-stripe's start-up: flags and environment variables into g_cfg, then the state,
 * the webhook senders and the HTTP daemon; SIGINT or SIGTERM stops them in order. */
#include "stripe.h"

#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

/* The line libmicrohttpd logs each time a handler returns MHD_NO, which drop_response
 * and hang do on purpose: mh_log drops it. */
static const char mhd_noise[] = "Application reported internal error";

static void usage(FILE *out)
{
    fputs("usage: mock-stripe [--listen HOST:PORT] [--webhook-url URL]\n"
          "                   [--webhook-secret whsec_...] [--latency-ms N]\n"
          "                   [--api-key sk_test_...] [--publishable-key pk_test_...]\n"
          "                   [--webhook-max-attempts N] [--webhook-threads N]\n"
          "                   [--webhook-history N] [--max-idempotency-keys N]\n"
          "                   [--state-dir DIR [--state-fsync]] [--verbose]\n"
          "\n"
          "A Stripe-compatible payment API for tests (PaymentIntents, refunds, charges,\n"
          "idempotency, signed webhooks). Flags override the environment variables\n"
          "MOCK_STRIPE_LISTEN (default 127.0.0.1:12111; port 0 picks a free port),\n"
          "MOCK_STRIPE_WEBHOOK_URL, MOCK_STRIPE_WEBHOOK_SECRET, MOCK_STRIPE_LATENCY_MS,\n"
          "MOCK_STRIPE_API_KEY (default: any sk_test_ key),\n"
          "MOCK_STRIPE_PUBLISHABLE_KEY (default: any pk_test_ key; it may only retrieve\n"
          "and confirm a PaymentIntent with its client_secret, as Stripe.js does),\n"
          "MOCK_STRIPE_WEBHOOK_MAX_ATTEMPTS (8),\n"
          "MOCK_STRIPE_STATE_DIR (default: state in memory only; with a directory every\n"
          "change is journaled there before it is answered, and a restart keeps it),\n"
          "MOCK_STRIPE_STATE_FSYNC=1 (fdatasync the journal after each change),\n"
          "MOCK_STRIPE_VERBOSE=1.\n"
          "Test endpoints: GET /_mock/stats, GET|POST|DELETE /_mock/faults, GET|DELETE\n"
          "/_mock/webhooks, POST /_mock/reset, POST /_mock/payment_intents/:id/authenticate.\n"
          "Pass the webhook secret as MOCK_STRIPE_WEBHOOK_SECRET: --webhook-secret is\n"
          "readable by every local user (ps).\n",
          out);
}

static bool parse_long(const char *what, const char *s, long min, long max, long *out)
{
    long long v;

    if (s == NULL)
        return true;
    if (!ms_parse_ll(s, &v) || v < min || v > max) {
        fprintf(stderr, "mock-stripe: %s must be an integer from %ld to %ld\n", what, min, max);
        return false;
    }
    *out = (long)v;
    return true;
}

static bool parse_args(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"webhook-url", required_argument, NULL, 'w'},
        {"webhook-secret", required_argument, NULL, 's'},
        {"latency-ms", required_argument, NULL, 'L'},
        {"api-key", required_argument, NULL, 'k'},
        {"publishable-key", required_argument, NULL, 'p'},
        {"webhook-max-attempts", required_argument, NULL, 'A'},
        {"webhook-threads", required_argument, NULL, 'T'},
        {"webhook-history", required_argument, NULL, 'H'},
        {"max-idempotency-keys", required_argument, NULL, 'I'},
        {"state-dir", required_argument, NULL, 'D'},
        {"state-fsync", no_argument, NULL, 'F'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *verbose = getenv("MOCK_STRIPE_VERBOSE");
    const char *fsync_env = getenv("MOCK_STRIPE_STATE_FSYNC");

    g_cfg.listen = mh_env_or("MOCK_STRIPE_LISTEN", g_cfg.listen);
    g_cfg.webhook_url = mh_env_or("MOCK_STRIPE_WEBHOOK_URL", NULL);
    g_cfg.webhook_secret = mh_env_or("MOCK_STRIPE_WEBHOOK_SECRET", NULL);
    g_cfg.api_key = mh_env_or("MOCK_STRIPE_API_KEY", NULL);
    g_cfg.publishable_key = mh_env_or("MOCK_STRIPE_PUBLISHABLE_KEY", NULL);
    g_cfg.verbose = verbose != NULL && strcmp(verbose, "1") == 0;
    g_cfg.state_dir = mh_env_or("MOCK_STRIPE_STATE_DIR", NULL);
    g_cfg.state_fsync = fsync_env != NULL && strcmp(fsync_env, "1") == 0;
    if (!parse_long("MOCK_STRIPE_LATENCY_MS", getenv("MOCK_STRIPE_LATENCY_MS"), 0, 600000,
                    &g_cfg.latency_ms) ||
        !parse_long("MOCK_STRIPE_WEBHOOK_MAX_ATTEMPTS", getenv("MOCK_STRIPE_WEBHOOK_MAX_ATTEMPTS"),
                    1, 100, &g_cfg.wh_max_attempts))
        return false;
    for (;;) {
        int c = getopt_long(argc, argv, "h", opts, NULL);
        bool ok = true;

        if (c == -1)
            break;
        switch (c) {
        case 'l': g_cfg.listen = optarg; break;
        case 'w': g_cfg.webhook_url = *optarg != '\0' ? optarg : NULL; break;
        case 's':
            g_cfg.webhook_secret = optarg;
            mh_warn_secret_flag("--webhook-secret", "MOCK_STRIPE_WEBHOOK_SECRET");
            break;
        case 'k': g_cfg.api_key = optarg; break;
        case 'p': g_cfg.publishable_key = optarg; break;
        case 'v': g_cfg.verbose = true; break;
        case 'D': g_cfg.state_dir = *optarg != '\0' ? optarg : NULL; break;
        case 'F': g_cfg.state_fsync = true; break;
        case 'L': ok = parse_long("--latency-ms", optarg, 0, 600000, &g_cfg.latency_ms); break;
        case 'A':
            ok = parse_long("--webhook-max-attempts", optarg, 1, 100, &g_cfg.wh_max_attempts);
            break;
        case 'T': ok = parse_long("--webhook-threads", optarg, 1, 64, &g_cfg.wh_threads); break;
        case 'H':
            ok = parse_long("--webhook-history", optarg, 0, 10000000, &g_cfg.wh_history);
            break;
        case 'I':
            ok = parse_long("--max-idempotency-keys", optarg, 1, 100000000, &g_cfg.idem_max);
            break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return false;
        }
        if (!ok)
            return false;
    }
    if (optind < argc) {
        fprintf(stderr, "mock-stripe: unexpected argument '%s'\n", argv[optind]);
        return false;
    }
    if (g_cfg.webhook_url != NULL &&
        (g_cfg.webhook_secret == NULL || *g_cfg.webhook_secret == '\0')) {
        fputs("mock-stripe: --webhook-url needs MOCK_STRIPE_WEBHOOK_SECRET (whsec_...)\n", stderr);
        return false;
    }
    if (g_cfg.api_key != NULL && strncmp(g_cfg.api_key, "sk_test_", 8) != 0) {
        fputs("mock-stripe: --api-key must start with sk_test_\n", stderr);
        return false;
    }
    if (g_cfg.publishable_key != NULL && strncmp(g_cfg.publishable_key, "pk_test_", 8) != 0) {
        fputs("mock-stripe: --publishable-key must start with pk_test_\n", stderr);
        return false;
    }
    co_log_secret(g_cfg.webhook_secret);
    co_log_secret(g_cfg.api_key);
    return true;
}

/* Hundreds of connections plus webhook sockets need more than the usual 1024 fds. */
static void raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    mh_listen l;
    sigset_t sigs;
    struct MHD_Daemon *d = NULL;
    unsigned flags;
    int rc = 1;

    mh_init("mock-stripe");
    if (!parse_args(argc, argv))
        return 2;
    if (!mh_parse_listen(g_cfg.listen, &l))
        return 2;
    raise_nofile();
    /* Before any thread exists: libcurl's global init is not thread-safe. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fputs("mock-stripe: curl_global_init failed\n", stderr);
        return 1;
    }
    json_object_seed(0);
    mh_block_signals(&sigs);
    ms_state_init();
    /* Replayed before the senders and the daemon start: nothing else runs yet. */
    if (g_cfg.state_dir != NULL && !ms_journal_open(g_cfg.state_dir, g_cfg.state_fsync))
        goto out;
    if (!ms_wh_start())
        goto out;
    flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
            MHD_USE_ERROR_LOG | (l.v6 ? MHD_USE_IPv6 : 0);
    d = MHD_start_daemon(flags, 0, NULL, NULL, mh_on_request, (void *)&ms_http,
                         MHD_OPTION_EXTERNAL_LOGGER, mh_log, (void *)mhd_noise, /* first */
                         MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&l.addr,
                         MHD_OPTION_CONNECTION_LIMIT, (unsigned)1000,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
                         MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024,
                         MHD_OPTION_THREAD_STACK_SIZE, (size_t)(1024 * 1024),
                         MHD_OPTION_NOTIFY_COMPLETED, mh_completed, NULL,
                         MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "mock-stripe: cannot listen on %s\n", g_cfg.listen);
        goto out;
    }
    mh_announce(d, &l);
    if (g_cfg.verbose)
        CO_INFO("mock-stripe", "webhooks to %s, latency %ld ms",
                g_cfg.webhook_url != NULL ? g_cfg.webhook_url : "(none)", g_cfg.latency_ms);
    mh_wait_signal(&sigs);
    rc = 0;
out:
    ms_wake_sleepers_for_stop();
    if (d != NULL)
        MHD_stop_daemon(d);     /* joins every connection thread */
    ms_wh_stop();
    ms_journal_close();     /* after the last writer, the senders */
    ms_state_free();
    curl_global_cleanup();
    return rc;
}
