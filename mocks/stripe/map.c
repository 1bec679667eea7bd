/* mock-stripe's sharded hash map (ms_map in stripe.h): string keys, values the caller
 * owns, one mutex per shard. The _locked functions expect the shard's mutex held. */
#include "stripe.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    for (; *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

void ms_map_init(ms_map *m)
{
    for (size_t i = 0; i < MS_SHARDS; i++) {
        pthread_mutex_init(&m->s[i].mu, NULL);
        m->s[i].b = ms_xcalloc(MS_BUCKETS, sizeof(ms_node *));
    }
}

ms_shard *ms_map_shard(ms_map *m, const char *key, ms_node ***bucket)
{
    uint64_t h = hash_str(key);
    ms_shard *s = &m->s[h % MS_SHARDS];

    *bucket = &s->b[(h / MS_SHARDS) % MS_BUCKETS];
    return s;
}

/* The link that points at key's node, or at the NULL that ends the chain. */
ms_node **ms_map_slot_locked(ms_node **bucket, const char *key)
{
    ms_node **p = bucket;

    while (*p != NULL && strcmp((*p)->key, key) != 0)
        p = &(*p)->next;
    return p;
}

void *ms_map_get(ms_map *m, const char *key)
{
    ms_node **bucket;
    ms_shard *s = ms_map_shard(m, key, &bucket);
    ms_node *n;

    pthread_mutex_lock(&s->mu);
    n = *ms_map_slot_locked(bucket, key);
    pthread_mutex_unlock(&s->mu);
    return n != NULL ? n->val : NULL;   /* values outlive their nodes (reset aside) */
}

void ms_map_insert_locked(ms_node **bucket, const char *key, void *val)
{
    ms_node *n = mh_xmalloc(sizeof *n);

    n->key = ms_xstrdup(key);
    n->val = val;
    n->next = *bucket;
    *bucket = n;
}

void ms_map_put(ms_map *m, const char *key, void *val)
{
    ms_node **bucket;
    ms_shard *s = ms_map_shard(m, key, &bucket);

    pthread_mutex_lock(&s->mu);
    ms_map_insert_locked(bucket, key, val);
    pthread_mutex_unlock(&s->mu);
}

/* Unlinks *slot and returns its value; the caller frees the value. */
void *ms_map_unlink_locked(ms_node **slot)
{
    ms_node *n = *slot;
    void *val = n->val;

    *slot = n->next;
    free(n->key);
    free(n);
    return val;
}

/* Not thread-safe: for reset (under the state write lock) and shutdown. */
void ms_map_clear(ms_map *m, void (*free_val)(void *))
{
    for (size_t i = 0; i < MS_SHARDS; i++) {
        for (size_t j = 0; j < MS_BUCKETS; j++) {
            while (m->s[i].b[j] != NULL) {
                void *val = ms_map_unlink_locked(&m->s[i].b[j]);

                if (free_val != NULL)
                    free_val(val);
            }
        }
    }
}

void ms_map_destroy(ms_map *m, void (*free_val)(void *))
{
    ms_map_clear(m, free_val);
    for (size_t i = 0; i < MS_SHARDS; i++) {
        free(m->s[i].b);
        pthread_mutex_destroy(&m->s[i].mu);
    }
}
