/* mock-stripe's PaymentIntents: create (and create-and-confirm), retrieve, list and
 * update. What moves one on (confirm, capture, cancel) is in pi_transitions.c. */
#include "stripe.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The PaymentIntent id, locked (pi->mu; the caller unlocks it), or NULL with a 404
 * resource_missing answered. */
ms_pi *ms_pi_lock(const char *id, ms_resp *r)
{
    ms_pi *pi = ms_pi_find(id);

    if (pi == NULL) {
        ms_fail_no_pi(r, id, "intent", 404);
        return NULL;
    }
    pthread_mutex_lock(&pi->mu);
    return pi;
}

static const ms_param pi_create_params[] = {
    {"amount", P_SCALAR}, {"currency", P_SCALAR}, {"payment_method", P_SCALAR},
    {"confirm", P_SCALAR}, {"capture_method", P_SCALAR}, {"metadata", P_HASH},
    {"payment_method_types", P_ARRAY}, {"description", P_SCALAR},
    {"receipt_email", P_SCALAR}, {"expand", P_ARRAY}, {"customer", P_SCALAR},
    {"automatic_payment_methods", P_ANY}, {"return_url", P_SCALAR},
    {"off_session", P_SCALAR}, {"error_on_requires_action", P_SCALAR},
    {"confirmation_method", P_SCALAR}, {"statement_descriptor", P_SCALAR},
    {"statement_descriptor_suffix", P_SCALAR}, {"setup_future_usage", P_SCALAR},
    {"shipping", P_ANY}, {"payment_method_options", P_ANY}, {"payment_method_data", P_ANY},
    {"mandate_data", P_ANY}, {"transfer_group", P_SCALAR}, {"use_stripe_sdk", P_SCALAR},
    {"radar_options", P_ANY}, {"payment_method_configuration", P_SCALAR},
    {NULL, P_ANY},
};

/* payment_method_types[...] values, in order; none given -> ["card"]. */
static bool parse_pm_types(const ms_form *f, char ***out, size_t *n, ms_resp *r)
{
    char **v = NULL;
    size_t k = 0;

    for (size_t i = 0; i < f->n; i++) {
        if (strncmp(f->kv[i].k, "payment_method_types", 20) != 0 || f->kv[i].k[20] != '[')
            continue;
        if (f->kv[i].v[0] == '\0' || strlen(f->kv[i].v) > 64) {
            for (size_t j = 0; j < k; j++)
                free(v[j]);
            free(v);
            ms_fail_param(r, NULL, f->kv[i].k, "Invalid payment_method_types: %.64s",
                          f->kv[i].v);
            return false;
        }
        v = mh_xrealloc(v, (k + 1) * sizeof *v);
        v[k++] = ms_xstrdup(f->kv[i].v);
    }
    if (k == 0) {
        v = mh_xmalloc(sizeof *v);
        v[k++] = ms_xstrdup("card");
    }
    *out = v;
    *n = k;
    return true;
}

static bool parse_currency(const ms_form *f, bool required, char out[4], ms_resp *r)
{
    const char *v = ms_form_get(f, "currency");

    if (v == NULL) {
        if (required) {
            ms_fail_param(r, "parameter_missing", "currency", "Missing required param: currency.");
            return false;
        }
        return true;
    }
    if (strlen(v) != 3 || strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
        != 3) {
        ms_fail_param(r, "parameter_invalid_string", "currency", "Invalid currency: %.20s", v);
        return false;
    }
    for (int i = 0; i < 3; i++)
        out[i] = (char)(v[i] >= 'A' && v[i] <= 'Z' ? v[i] - 'A' + 'a' : v[i]);
    out[3] = '\0';
    return true;
}

static void pi_publish(ms_pi *pi)
{
    pthread_mutex_lock(&g_pis.mu);
    if (g_pis.n == g_pis.cap) {
        g_pis.cap = g_pis.cap > 0 ? 2 * g_pis.cap : 1024;
        g_pis.v = mh_xrealloc(g_pis.v, g_pis.cap * sizeof *g_pis.v);
    }
    pi->idx = g_pis.n;
    g_pis.v[g_pis.n++] = pi;
    pthread_mutex_unlock(&g_pis.mu);
    ms_map_put(&g_objs, pi->id, pi);
    atomic_fetch_add(&st_pis, 1);
}

/* POST /v1/payment_intents */
void ms_h_pi_create(ms_req *rq, const char *id, ms_resp *r)
{
    const ms_form *f = &rq->form;
    long long amount;
    bool present, confirm = false, off_session = false, error_on_action = false;
    int capture = CAP_AUTOMATIC;
    char currency[4];
    const char *pm = ms_form_get(f, "payment_method"), *desc, *email;
    ms_meta meta = {0};
    char **types = NULL;
    size_t n_types = 0;
    ms_pi *pi;

    (void)id;
    if (!ms_check_params(f, pi_create_params, r) ||
        !ms_parse_amount(f, "amount", true, &present, &amount, r) ||
        !parse_currency(f, true, currency, r) ||
        !ms_get_enum(f, "capture_method", ms_capture_names, &capture, r) ||
        !ms_get_bool(f, "confirm", &confirm, r) ||
        !ms_get_bool(f, "off_session", &off_session, r) ||
        !ms_get_bool(f, "error_on_requires_action", &error_on_action, r) ||
        !ms_get_string(f, "description", 1000, &desc, r) ||
        !ms_get_string(f, "receipt_email", 800, &email, r) || !ms_check_pm(pm, r))
        return;
    if (confirm && pm == NULL) {
        ms_fail_param(r, "parameter_missing", "payment_method",
                      "You cannot confirm this PaymentIntent because it's missing a payment "
                      "method. Pass payment_method, or confirm later with one.");
        return;
    }
    if (!ms_apply_metadata(f, &meta, r))
        return;
    if (!parse_pm_types(f, &types, &n_types, r)) {
        ms_meta_free(&meta);
        return;
    }
    pi = ms_xcalloc(1, sizeof *pi);
    pthread_mutex_init(&pi->mu, NULL);
    ms_new_id(pi->id, sizeof pi->id, "pi_", 24);
    snprintf(pi->secret, sizeof pi->secret, "%s_secret_", pi->id);
    ms_new_id(pi->secret + strlen(pi->secret), sizeof pi->secret - strlen(pi->secret), "", 25);
    pi->created = time(NULL);
    pi->amount = amount;
    memcpy(pi->currency, currency, sizeof currency);
    pi->capture = capture;
    pi->pm = ms_xstrdup_opt(pm);
    pi->description = ms_xstrdup_opt(desc);
    pi->receipt_email = ms_xstrdup_opt(email);
    pi->meta = meta;
    pi->pm_types = types;
    pi->n_pm_types = n_types;
    pi->status = pm != NULL ? ST_REQUIRES_CONFIRMATION : ST_REQUIRES_PAYMENT_METHOD;
    /* Locked before it is visible, so nobody sees it between creation and confirmation:
     * create-and-confirm is one step for clients, as it is at Stripe. */
    pthread_mutex_lock(&pi->mu);
    pi_publish(pi);
    if (confirm)
        ms_pi_confirm_locked(pi, rq, off_session || error_on_action, r);
    else
        ms_reply_pi(r, pi);
    ms_journal_pi(pi);
    pthread_mutex_unlock(&pi->mu);
}

/* GET /v1/payment_intents/:id */
void ms_h_pi_retrieve(ms_req *rq, const char *id, ms_resp *r)
{
    static const ms_param params[] = {
        {"client_secret", P_SCALAR}, {"expand", P_ARRAY}, {NULL, P_ANY},
    };
    ms_pi *pi;

    if (!ms_check_params(&rq->form, params, r))
        return;
    pi = ms_pi_lock(id, r);
    if (pi == NULL)
        return;
    ms_reply_pi(r, pi);
    pthread_mutex_unlock(&pi->mu);
}

/* The created filter of a list: created=N, or any of created[gt|gte|lt|lte]=N
 * (Unix seconds), as Stripe takes it; bounds inclusive. */
typedef struct {
    long long lo, hi;
} created_range;

static bool parse_created(const ms_form *f, created_range *cr, ms_resp *r)
{
    static const char *const ops[] = {"gt", "gte", "lt", "lte"};

    cr->lo = LLONG_MIN;
    cr->hi = LLONG_MAX;
    for (size_t i = 0; i < f->n; i++) {
        const char *k = f->kv[i].k, *op;
        long long v;
        size_t which;

        if (strncmp(k, "created", 7) != 0 || (k[7] != '\0' && k[7] != '['))
            continue;
        op = k[7] == '[' ? k + 8 : NULL;
        for (which = 0; op != NULL && which < 4; which++) {
            size_t n = strlen(ops[which]);

            if (strncmp(op, ops[which], n) == 0 && strcmp(op + n, "]") == 0)
                break;
        }
        if (op != NULL && which == 4) {
            ms_fail_param(r, "parameter_unknown", k, "Received unknown parameter: %.200s", k);
            return false;
        }
        if (!ms_parse_ll(f->kv[i].v, &v)) {
            ms_fail_param(r, "parameter_invalid_integer", k, "Invalid integer: %.100s",
                          f->kv[i].v);
            return false;
        }
        if (op == NULL) {
            cr->lo = cr->lo > v ? cr->lo : v;
            cr->hi = cr->hi < v ? cr->hi : v;
        } else if (which == 0 || which == 1) {
            v = which == 0 && v < LLONG_MAX ? v + 1 : v;
            cr->lo = cr->lo > v ? cr->lo : v;
        } else {
            v = which == 2 && v > LLONG_MIN ? v - 1 : v;
            cr->hi = cr->hi < v ? cr->hi : v;
        }
    }
    return true;
}

static bool in_range(const ms_pi *pi, const created_range *cr)
{
    return (long long)pi->created >= cr->lo && (long long)pi->created <= cr->hi;
}

/* GET /v1/payment_intents: newest first, limit per page, starting_after (older
 * than it) or ending_before (newer), filtered by created. */
void ms_h_pi_list(ms_req *rq, const char *id, ms_resp *r)
{
    static const ms_param params[] = {
        {"limit", P_SCALAR}, {"starting_after", P_SCALAR}, {"ending_before", P_SCALAR},
        {"expand", P_ARRAY}, {"created", P_ANY}, {"customer", P_SCALAR}, {NULL, P_ANY},
    };
    long long limit;
    const char *sa, *eb;
    ms_pi *anchor = NULL, **page;
    size_t n = 0;
    bool more = false;
    created_range cr;
    json_t *data;

    (void)id;
    if (!ms_check_params(&rq->form, params, r) ||
        !ms_list_args(&rq->form, &limit, &sa, &eb, r) || !parse_created(&rq->form, &cr, r))
        return;
    if (sa != NULL || eb != NULL) {
        anchor = ms_pi_find(sa != NULL ? sa : eb);
        if (anchor == NULL) {
            ms_fail_no_pi(r, sa != NULL ? sa : eb, sa != NULL ? "starting_after" : "ending_before",
                          400);
            return;
        }
    }
    page = ms_xcalloc((size_t)limit, sizeof *page);
    /* created is immutable once published: read under the list's mutex alone. */
    pthread_mutex_lock(&g_pis.mu);
    if (eb != NULL) {
        /* The limit matching ones just newer than the anchor, emitted newest first. */
        for (size_t i = anchor->idx + 1; i < g_pis.n; i++) {
            if (!in_range(g_pis.v[i], &cr))
                continue;
            if (n == (size_t)limit) {
                more = true;
                break;
            }
            page[n++] = g_pis.v[i];
        }
        for (size_t i = 0; i < n / 2; i++) {
            ms_pi *t = page[i];

            page[i] = page[n - 1 - i];
            page[n - 1 - i] = t;
        }
    } else {
        for (size_t i = anchor != NULL ? anchor->idx : g_pis.n; i > 0; i--) {
            if (!in_range(g_pis.v[i - 1], &cr))
                continue;
            if (n == (size_t)limit) {
                more = true;
                break;
            }
            page[n++] = g_pis.v[i - 1];
        }
    }
    pthread_mutex_unlock(&g_pis.mu);
    data = json_array();
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&page[i]->mu);
        json_array_append_new(data, ms_pi_json(page[i]));
        pthread_mutex_unlock(&page[i]->mu);
    }
    free(page);
    ms_resp_json(r, 200, ms_list_json(data, more, "/v1/payment_intents"));
}

bool ms_pi_is_mutable(const ms_pi *pi)
{
    return pi->status == ST_REQUIRES_PAYMENT_METHOD ||
           pi->status == ST_REQUIRES_CONFIRMATION || pi->status == ST_REQUIRES_ACTION;
}

/* POST /v1/payment_intents/:id */
void ms_h_pi_update(ms_req *rq, const char *id, ms_resp *r)
{
    static const ms_param params[] = {
        {"amount", P_SCALAR}, {"currency", P_SCALAR}, {"payment_method", P_SCALAR},
        {"capture_method", P_SCALAR}, {"metadata", P_HASH}, {"description", P_SCALAR},
        {"receipt_email", P_SCALAR}, {"payment_method_types", P_ARRAY}, {"expand", P_ARRAY},
        {"shipping", P_ANY}, {"statement_descriptor", P_SCALAR},
        {"statement_descriptor_suffix", P_SCALAR}, {"setup_future_usage", P_SCALAR},
        {"customer", P_SCALAR}, {"transfer_group", P_SCALAR}, {"payment_method_options", P_ANY},
        {"payment_method_data", P_ANY}, {NULL, P_ANY},
    };
    const ms_form *f = &rq->form;
    long long amount;
    bool has_amount;
    int capture = -1;
    char currency[4] = "";
    const char *pm = ms_form_get(f, "payment_method"), *desc, *email;
    const char *restricted = NULL;
    ms_pi *pi;

    if (!ms_check_params(f, params, r) ||
        !ms_parse_amount(f, "amount", false, &has_amount, &amount, r) ||
        !parse_currency(f, false, currency, r) ||
        !ms_get_enum(f, "capture_method", ms_capture_names, &capture, r) ||
        !ms_get_string(f, "description", 1000, &desc, r) ||
        !ms_get_string(f, "receipt_email", 800, &email, r) || !ms_check_pm(pm, r))
        return;
    if (has_amount)
        restricted = "amount";
    else if (currency[0] != '\0')
        restricted = "currency";
    else if (pm != NULL)
        restricted = "payment_method";
    else if (capture >= 0)
        restricted = "capture_method";
    pi = ms_pi_lock(id, r);
    if (pi == NULL)
        return;
    if (restricted != NULL && !ms_pi_is_mutable(pi)) {
        ms_fail_state(r, pi, "This PaymentIntent's %s could not be updated because it has a "
                      "status of %s. You may only update the %s of a PaymentIntent with one of "
                      "the following statuses: requires_payment_method, requires_confirmation, "
                      "requires_action.", restricted, ms_status_names[pi->status], restricted);
        goto out;
    }
    if (!ms_apply_metadata(f, &pi->meta, r))
        goto out;
    if (has_amount)
        pi->amount = amount;
    if (currency[0] != '\0')
        memcpy(pi->currency, currency, sizeof currency);
    if (capture >= 0)
        pi->capture = capture;
    if (desc != NULL)
        ms_set_opt_str(&pi->description, desc);
    if (email != NULL)
        ms_set_opt_str(&pi->receipt_email, email);
    if (pm != NULL) {
        free(pi->pm);
        pi->pm = ms_xstrdup(pm);
        pi->status = ST_REQUIRES_CONFIRMATION;
    }
    ms_journal_pi(pi);
    ms_reply_pi(r, pi);
out:
    pthread_mutex_unlock(&pi->mu);
}
