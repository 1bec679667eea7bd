/* mock-stripe: a stateful Stripe look-alike for the tests, the local demo and the
 * benchmarks (SPEC section 7).
 *
 * A real HTTP server that the official Stripe SDKs talk to: PaymentIntents (create,
 * retrieve, list, update, confirm, capture, cancel), refunds, charges (retrieve), Stripe's
 * test payment methods, Stripe's error bodies and HTTP codes, idempotent replays, and
 * signed webhook events delivered and retried by background threads. Test-only endpoints
 * live under /_mock/ (fault injection, stats, webhook log, 3-D Secure completion, reset);
 * usage() in main.c lists the flags and the README describes the behaviour.
 *
 * This header is the state every file of mocks/stripe/ shares, after GNU Taler's
 * fakebank: one file per concern or API, what crosses files prefixed ms_ and declared
 * here (grouped by the file that defines it), everything else static. A new endpoint
 * is a new file plus one line in routing.c's route_api.
 *
 *   state.c            the shared globals, init/free, /_mock/reset, the stop-aware sleep
 *   util.c             allocation, clocks, ids, UTF-8, integers
 *   map.c              the sharded hash map
 *   form.c             the form codec, parameter checks, metadata
 *   render.c           JSON for objects, lists and Stripe's error bodies
 *   cards.c            the test payment methods and their declines
 *   idem.c             the idempotency store
 *   journal.c          --state-dir: the journal of every change, replayed at start
 *   webhooks.c         events, their queue and the sender threads
 *   faults.c           fault injection and the /_mock/ endpoints
 *   payment_intents.c  create, retrieve, list, update
 *   pi_transitions.c   confirm (and 3-D Secure), capture, cancel
 *   refunds.c          refunds, and charges (retrieve)
 *   auth.c             secret and publishable keys, client_secret checks, CORS
 *   routing.c          routing, the request pipeline, HTTP glue
 *   version.c          the Stripe-Version header: the one version the mock renders
 *   main.c             flags, environment, start-up and shutdown
 *
 * Threading: libmicrohttpd runs a thread per connection, so --latency-ms and the
 * "delay"/"hang" faults block only the connection they apply to. State is guarded by
 * fine-grained locks: a sharded hash table for lookups, one mutex per PaymentIntent for
 * its fields, short mutexes for the creation-order lists, and one rwlock that every
 * request takes for reading while it touches state and only /_mock/reset takes for
 * writing. No lock is held while sleeping or while a webhook is sent.
 *
 * Lock order: g_state (read) -> pi->mu -> { map shard, g_refunds.mu }. The list mutexes
 * (g_pis.mu, g_refunds.mu) are never held while a PaymentIntent is locked by the same
 * thread in the other order: lists copy pointers under their mutex, release it, and only
 * then lock each PaymentIntent. g_wh.mu, g_faults.mu and g_idem_fifo.mu are leaves. */
#ifndef MS_STRIPE_H
#define MS_STRIPE_H

#include "../common/mockhttp.h"

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* The one API version the mock renders (version.c); checkoutd pins the same one. */
#define MS_API_VERSION "2024-06-20"
#define MS_BODY_MAX (64 * 1024)     /* larger request bodies get 413 */
#define MS_ID_MAX 48                /* our ids: "prefix_" + 24 characters */
#define MS_KEY_MAX 255              /* API keys and idempotency keys (Stripe's cap) */
#define MS_META_KEYS 50             /* Stripe's metadata limits */
#define MS_META_KEY_LEN 40
#define MS_META_VAL_LEN 500
#define MS_AMOUNT_MAX 99999999LL    /* Stripe's cap for USD: $999,999.99 */
#define MS_SHARDS 64
#define MS_BUCKETS 4096             /* per shard; chains stay short up to ~1M objects */
#define MS_HANG_DEFAULT_MS 30000
#define MS_DELAY_DEFAULT_MS 1000
#define MS_REORDER_DEFAULT_MS 1000 /* how long a reordered event is held back */
#define MS_WH_BACKOFF_START_MS 200
#define MS_WH_BACKOFF_CAP_MS 5000
#define MS_EVENTS_PER_REQUEST 4

/* ================================================================ types */

typedef struct {
    const char *listen;         /* HOST:PORT; port 0 picks a free one */
    const char *webhook_url;    /* NULL: no events are sent */
    const char *webhook_secret;
    const char *api_key;        /* NULL: any sk_test_ key is accepted */
    const char *publishable_key;    /* NULL: any pk_test_ key is accepted */
    long latency_ms;
    long wh_max_attempts;
    long wh_threads;
    long wh_history;            /* finished events kept for GET /_mock/webhooks */
    long idem_max;              /* idempotency keys remembered (Stripe: 24 h) */
    const char *state_dir;      /* NULL: state in memory only (journal.c) */
    bool state_fsync;           /* fdatasync the journal after each record */
    bool verbose;
} ms_config;

/* String-keyed map split into shards, each with its own mutex, so lookups from
 * hundreds of connection threads rarely contend. Values are owned by the caller. */
typedef struct ms_node {
    struct ms_node *next;
    char *key;
    void *val;
} ms_node;

typedef struct {
    pthread_mutex_t mu;
    ms_node **b;
} ms_shard;

typedef struct {
    ms_shard s[MS_SHARDS];
} ms_map;

typedef struct {
    char **k, **v;
    size_t n;
} ms_meta;

typedef struct {
    int status;
    char *body;         /* malloc'd JSON; sent with MHD_RESPMEM_MUST_FREE */
    size_t len;
    bool no_store;      /* Stripe saves no idempotent result when validation failed */
    int retry;          /* Stripe-Should-Retry: -1 default by status, 0 false, 1 true */
    int retry_after_s;  /* Retry-After in seconds; 0: none */
} ms_resp;

typedef struct {
    char *k, *v;
} ms_kv;

typedef struct {
    ms_kv *kv;
    size_t n, cap;
} ms_form;

typedef enum { P_SCALAR, P_HASH, P_ARRAY, P_ANY } ms_pkind;

typedef struct {
    const char *name;
    ms_pkind kind;
} ms_param;

typedef enum {
    ST_REQUIRES_PAYMENT_METHOD,
    ST_REQUIRES_CONFIRMATION,
    ST_REQUIRES_ACTION,         /* 3-D Secure pending: next_action is set */
    ST_PROCESSING,              /* never entered: card payments settle synchronously */
    ST_REQUIRES_CAPTURE,        /* authorized, amount_capturable > 0 */
    ST_CANCELED,
    ST_SUCCEEDED,               /* captured; amount_received > 0 */
} ms_status;

enum { CAP_AUTOMATIC, CAP_AUTOMATIC_ASYNC, CAP_MANUAL };

typedef struct ms_refund {
    /* Immutable once published, so it is read without a lock. */
    char id[MS_ID_MAX], pi_id[MS_ID_MAX], ch_id[MS_ID_MAX];
    long long amount;
    char currency[4];
    const char *reason;         /* from refund_reasons, or NULL */
    ms_meta meta;
    time_t created;
    size_t idx;                 /* position in g_refunds.v */
    struct ms_refund *next_for_pi;  /* the PI's refunds, newest first (guarded by pi->mu) */
} ms_refund;

typedef struct {
    bool set;
    const char *type, *code, *decline, *msg;    /* static strings */
    char *pm;
    bool has_charge;            /* the failed charge is the PI's latest_charge */
} ms_payerr;

typedef struct ms_pi {
    pthread_mutex_t mu;
    /* immutable once published */
    size_t idx;                 /* position in g_pis.v */
    char id[MS_ID_MAX];
    char secret[MS_ID_MAX + 32];
    time_t created;
    /* guarded by mu */
    ms_status status;
    int capture;                /* CAP_* */
    long long amount, capturable, received, refunded;
    char currency[4];
    char *pm, *description, *receipt_email;
    const char *cancel_reason;
    time_t canceled_at;
    ms_meta meta;
    char **pm_types;
    size_t n_pm_types;
    char ch_id[MS_ID_MAX];      /* latest charge, "" when none */
    bool ch_ok;                 /* it authorized (else it is a failed charge) */
    time_t ch_created;
    char *ch_pm;
    ms_payerr err;              /* last_payment_error */
    ms_refund *refunds;
} ms_pi;

typedef enum { PM_UNKNOWN, PM_SUCCEEDS, PM_DECLINES, PM_NEEDS_3DS } ms_pm_kind;

typedef struct {
    const char *suffix;         /* after "pm_card_" or "pm_card_visa_" */
    const char *code, *decline, *msg, *last4;
} ms_decline;

typedef struct {
    char *body;                 /* the whole event, JSON */
    char id[MS_ID_MAX];
    char type[48];
    char obj[MS_ID_MAX];
} ms_newev;

/* Events produced while a request runs; queued for delivery once its locks are gone. */
typedef struct {
    ms_newev e[MS_EVENTS_PER_REQUEST];
    size_t n;
} ms_evlist;

typedef struct {
    struct MHD_Connection *conn;
    const char *method, *path;
    const char *body;
    size_t body_len;
    ms_form form;               /* body parameters (POST) or query parameters */
    char req_id[MS_ID_MAX];
    char api_key[MS_KEY_MAX + 1];
    bool publishable;           /* api_key is a pk_test_ key (auth.c says what it may do) */
    bool key_in_form;           /* the key came as the parameter "key" (Stripe.js) */
    const char *idem;           /* Idempotency-Key header or NULL */
    ms_evlist ev;
} ms_req;

typedef enum { IDEM_NEW, IDEM_REPLAY, IDEM_IN_FLIGHT, IDEM_OTHER_ENDPOINT, IDEM_OTHER_PARAMS }
    ms_idem_res;

/* The first four and status_429 act on a request (an HTTP match); delay, drop,
 * duplicate and reorder on a webhook delivery (a "WEBHOOK <event type or *>" match). */
typedef enum {
    F_STATUS_500, F_DELAY, F_DROP_RESPONSE, F_HANG, F_DROP, F_DUPLICATE, F_REORDER, F_STATUS_429
} ms_fault_action;

typedef struct ms_fault {
    struct ms_fault *next;
    long id;
    char method[16];            /* "*" matches any method; "WEBHOOK": a delivery */
    char *path;                 /* '*' segments match one path segment; for WEBHOOK an
                                 * event type, or "*" for any */
    ms_fault_action action;
    long remaining;             /* -1: until deleted */
    long delay_ms;
    long hits;
} ms_fault;

/* ================================================================ state.c */

extern ms_config g_cfg;

/* Counters for GET /_mock/stats. Only operations that took effect count: an idempotent
 * replay executes nothing, so tests can assert "exactly one capture". */
extern atomic_llong st_pis, st_captured, st_canceled, st_refunds, st_requests;
extern atomic_llong st_declines, st_replays;

/* Every object by id: pi_ -> ms_pi, ch_ -> the ms_pi that owns the charge, re_ ->
 * ms_refund. Objects are freed only by reset and shutdown. */
extern ms_map g_objs;

/* Every PaymentIntent and every refund, oldest first (for the lists). */
extern struct ms_pis {
    pthread_mutex_t mu;
    ms_pi **v;
    size_t n, cap;
} g_pis;

extern struct ms_refunds {
    pthread_mutex_t mu;
    ms_refund **v;
    size_t n, cap;
} g_refunds;

/* Read by every request that touches state, written only by /_mock/reset. */
extern pthread_rwlock_t g_state;

/* Sleeps ms milliseconds, or less when shutdown begins. */
void ms_sleep_ms(long long ms);
void ms_wake_sleepers_for_stop(void);

ms_pi *ms_pi_find(const char *id);
ms_pi *ms_charge_find(const char *id);
void ms_pi_free(ms_pi *pi);

void ms_reset_state(void);
void ms_state_init(void);
void ms_state_free(void);

/* ================================================================ util.c */

/* Never NULL (mh_oom instead). */
void *ms_xcalloc(size_t n, size_t size);
char *ms_xstrndup(const char *s, size_t n);
char *ms_xstrdup(const char *s);
char *ms_xstrdup_opt(const char *s);

long long ms_mono_ms(void);
void ms_deadline_after(struct timespec *ts, long long ms);
void ms_cond_init_mono(pthread_cond_t *cv);

void ms_new_id(char *out, size_t cap, const char *prefix, size_t nrand);
bool ms_utf8_ok(const char *str, size_t n);
bool ms_parse_ll(const char *s, long long *out);

/* ================================================================ map.c */

void ms_map_init(ms_map *m);
ms_shard *ms_map_shard(ms_map *m, const char *key, ms_node ***bucket);
ms_node **ms_map_slot_locked(ms_node **bucket, const char *key);
void *ms_map_get(ms_map *m, const char *key);
void ms_map_insert_locked(ms_node **bucket, const char *key, void *val);
void ms_map_put(ms_map *m, const char *key, void *val);
void *ms_map_unlink_locked(ms_node **slot);
void ms_map_clear(ms_map *m, void (*free_val)(void *));
void ms_map_destroy(ms_map *m, void (*free_val)(void *));

/* ================================================================ form.c */

void ms_meta_free(ms_meta *m);

/* Takes k and v. */
void ms_form_add(ms_form *f, char *k, char *v);
void ms_form_free(ms_form *f);
bool ms_form_parse(ms_form *f, const char *body, size_t len);
const char *ms_form_get(const ms_form *f, const char *key);

/* Each of these answers a 400 in r and returns false when the parameter is bad. */
bool ms_check_params(const ms_form *f, const ms_param *allowed, ms_resp *r);
bool ms_get_bool(const ms_form *f, const char *name, bool *out, ms_resp *r);
bool ms_get_enum(const ms_form *f, const char *name, const char *const *choices,
                 int *out, ms_resp *r);
bool ms_get_string(const ms_form *f, const char *name, size_t max, const char **out,
                   ms_resp *r);
bool ms_apply_metadata(const ms_form *f, ms_meta *m, ms_resp *r);
bool ms_parse_amount(const ms_form *f, const char *name, bool required, bool *present,
                     long long *out, ms_resp *r);
bool ms_list_args(const ms_form *f, long long *limit, const char **sa, const char **eb,
                  ms_resp *r);

void ms_set_opt_str(char **field, const char *v);

/* ================================================================ render.c */

extern const char *const ms_status_names[];
extern const char *const ms_capture_names[];

void ms_jset(json_t *o, const char *k, json_t *v);
json_t *ms_jstr_opt(const char *s);
json_t *ms_meta_json(const ms_meta *m);
json_t *ms_pi_json(const ms_pi *pi);
json_t *ms_charge_json(const ms_pi *pi);
json_t *ms_refund_json(const ms_refund *rf);
void ms_page_bounds(size_t total, long anchor, bool ending_before, size_t limit,
                    size_t *lo, size_t *hi, bool *more);
json_t *ms_list_json(json_t *data, bool more, const char *url);

/* Takes root. */
void ms_resp_json(ms_resp *r, int status, json_t *root);
void ms_reply_pi(ms_resp *r, const ms_pi *pi);

json_t *ms_err_new(const char *type, const char *code, const char *param, const char *msg);
/* Takes err. */
void ms_reply_error(ms_resp *r, int status, json_t *err);
__attribute__((format(printf, 6, 7)))
void ms_fail(ms_resp *r, int status, const char *type, const char *code,
             const char *param, const char *fmt, ...);
__attribute__((format(printf, 4, 5)))
void ms_fail_param(ms_resp *r, const char *code, const char *param, const char *fmt, ...);
__attribute__((format(printf, 3, 4)))
void ms_fail_state(ms_resp *r, const ms_pi *pi, const char *fmt, ...);
void ms_fail_no_pi(ms_resp *r, const char *id, const char *param, int status);
__attribute__((format(printf, 2, 3)))
void ms_fail_mock(ms_resp *r, const char *fmt, ...);

/* ================================================================ cards.c */

extern const ms_decline ms_auth_required;

ms_pm_kind ms_pm_classify(const char *pm, const ms_decline **d);
json_t *ms_pm_json(const char *pm, time_t created);
bool ms_check_pm(const char *pm, ms_resp *r);

/* ================================================================ idem.c */

void ms_idem_init(void);
void ms_idem_reset(void);
void ms_idem_free(void);
ms_idem_res ms_idem_begin(const char *key, const ms_req *rq, ms_resp *r, char *orig);
void ms_idem_finish(const char *key, const ms_req *rq, const ms_resp *r, bool save);
/* The journal's side (at start-up, before other threads): one saved answer back from
 * its record (false: the record is incomplete), and every saved answer, oldest first,
 * into the journal. */
bool ms_idem_restore(const json_t *rec);
void ms_idem_dump(void);

/* ================================================================ journal.c */

/* Replays DIR/journal, compacts it and keeps appending to it; false (with a message)
 * when the directory cannot be used. Before any other thread starts. */
bool ms_journal_open(const char *dir, bool sync);
void ms_journal_close(void);
bool ms_journal_on(void);
/* Appends one record (a whole object) with one write(); takes rec (NULL is ignored).
 * Nothing without --state-dir. */
void ms_journal_put(json_t *rec);
/* The PaymentIntent (locked) as it is now, its latest charge included. */
void ms_journal_pi(const ms_pi *pi);
/* A new refund and its PaymentIntent (locked), in one write. */
void ms_journal_refund(const ms_pi *pi, const ms_refund *rf);
/* For /_mock/reset, under the state write lock. */
void ms_journal_reset(void);

/* ================================================================ webhooks.c */

/* Takes obj. */
void ms_ev_add(ms_req *rq, const char *type, const char *obj_id, json_t *obj);
void ms_wh_enqueue(ms_evlist *ev);
void ms_evlist_free(ms_evlist *ev);

void ms_wh_init(void);
bool ms_wh_start(void);
void ms_wh_stop(void);
void ms_wh_clear_done(void);
json_t *ms_wh_list_json(const char *type, const char *obj);
void ms_wh_counts(json_int_t *pending, json_int_t *delivered, json_int_t *failed);
/* The journal's side: an event still to deliver back from its record (a finished one
 * is skipped; false: the record is incomplete), before the senders start; and every
 * event still to deliver into the journal. */
bool ms_wh_restore(const json_t *rec);
void ms_wh_dump(void);

/* ================================================================ faults.c */

bool ms_fault_take(const char *method, const char *path, ms_fault *out);
long ms_faults_clear(void);
void ms_mock_route(ms_req *rq, ms_resp *r);

/* ================================================================ endpoints */

/* What routing.c's route_api dispatches to: id is the path's third segment or NULL. */

/* payment_intents.c */
ms_pi *ms_pi_lock(const char *id, ms_resp *r);
bool ms_pi_is_mutable(const ms_pi *pi);
void ms_h_pi_create(ms_req *rq, const char *id, ms_resp *r);
void ms_h_pi_retrieve(ms_req *rq, const char *id, ms_resp *r);
void ms_h_pi_list(ms_req *rq, const char *id, ms_resp *r);
void ms_h_pi_update(ms_req *rq, const char *id, ms_resp *r);

/* pi_transitions.c */
void ms_pi_confirm_locked(ms_pi *pi, ms_req *rq, bool off_session, ms_resp *r);
void ms_h_pi_confirm(ms_req *rq, const char *id, ms_resp *r);
void ms_h_pi_capture(ms_req *rq, const char *id, ms_resp *r);
void ms_h_pi_cancel(ms_req *rq, const char *id, ms_resp *r);
void ms_mock_authenticate(ms_req *rq, const char *id, ms_resp *r);

/* refunds.c */
void ms_h_refund_create(ms_req *rq, const char *id, ms_resp *r);
void ms_h_refund_retrieve(ms_req *rq, const char *id, ms_resp *r);
void ms_h_refund_list(ms_req *rq, const char *id, ms_resp *r);
void ms_h_charge_retrieve(ms_req *rq, const char *id, ms_resp *r);

/* ================================================================ auth.c */

/* Reads the API key (Authorization, or the parameter "key"); answers 401 in r and
 * returns false when there is none or it is not a key of this mock. */
bool ms_auth_check(ms_req *rq, ms_resp *r);
/* A publishable key may make only client_secret calls (retrieve, confirm). */
bool ms_auth_route(const ms_req *rq, bool client_secret_call, ms_resp *r);
/* After the form is parsed: a publishable key needs the intent's client_secret, and
 * a client_secret that is given must be the intent's. Takes g_state for reading. */
bool ms_auth_client_secret(ms_req *rq, const char *pi_id, ms_resp *r);
void ms_cors_headers(struct MHD_Response *resp);
enum MHD_Result ms_cors_preflight(struct MHD_Connection *conn);

/* ================================================================ version.c */

/* True when the request's Stripe-Version is absent or MS_API_VERSION; else fills r with
 * Stripe's 400 for an invalid version. */
bool ms_version_check(const ms_req *rq, ms_resp *r);

/* ================================================================ routing.c */

/* The answers mh_on_request gives (main.c passes it to MHD_start_daemon). */
extern const mh_handler ms_http;

#endif
