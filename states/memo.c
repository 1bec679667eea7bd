/* The confirmed-orders memo: see memo.h. */
#include "memo.h"

#include <stdio.h>
#include <string.h>

/* FNV-1a over the intent id. */
static unsigned slot_of(const char *intent)
{
    unsigned h = 2166136261u;

    for (const unsigned char *p = (const unsigned char *)intent; *p != '\0'; p++)
        h = (h ^ *p) * 16777619u;
    return h % CO_MEMO_SLOTS;
}

void co_memo_confirmed(co_memo *m, const char *intent, const char *order_id,
                       const char *event_id)
{
    unsigned k;

    if (m == NULL || intent == NULL || intent[0] == '\0' ||
        strlen(intent) >= sizeof m->slot[0].intent ||
        (event_id != NULL && strlen(event_id) >= CO_MEMO_EVENT))
        return; /* not kept: the store answers */
    k = slot_of(intent);
    pthread_mutex_lock(&m->mu);
    snprintf(m->slot[k].intent, sizeof m->slot[k].intent, "%s", intent);
    snprintf(m->slot[k].order_id, sizeof m->slot[k].order_id, "%s", order_id);
    snprintf(m->slot[k].event_id, sizeof m->slot[k].event_id, "%s",
             event_id != NULL ? event_id : "");
    pthread_mutex_unlock(&m->mu);
}

bool co_memo_is_confirmed(co_memo *m, const char *intent, char order_id[37],
                          char event_id[CO_MEMO_EVENT])
{
    unsigned k;
    bool hit;

    if (m == NULL || intent == NULL || intent[0] == '\0')
        return false;
    k = slot_of(intent);
    pthread_mutex_lock(&m->mu);
    hit = strcmp(m->slot[k].intent, intent) == 0;
    if (hit) {
        snprintf(order_id, 37, "%s", m->slot[k].order_id);
        snprintf(event_id, CO_MEMO_EVENT, "%s", m->slot[k].event_id);
    }
    pthread_mutex_unlock(&m->mu);
    return hit;
}

void co_memo_forget(co_memo *m, const char *intent)
{
    unsigned k;

    if (m == NULL || intent == NULL || intent[0] == '\0')
        return;
    k = slot_of(intent);
    pthread_mutex_lock(&m->mu);
    if (strcmp(m->slot[k].intent, intent) == 0)
        m->slot[k].intent[0] = '\0';
    pthread_mutex_unlock(&m->mu);
}
