/* checkin.c - the device check-in cache: two uthash indexes behind a rwlock. */
#include "server/checkin.h"
#include "server/db_fleet.h"
#include "common/ef_error.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <uthash.h>

struct entry {
    char token_hash[EF_HEX256_SIZE];      /* key of by_token */
    char device_id[EF_DEVICE_ID_MAX + 1]; /* key of by_device */
    int64_t seq;                          /* current assignment, 0 for none */
    UT_hash_handle hh_token;
    UT_hash_handle hh_device;
};

struct checkin {
    pthread_rwlock_t lock;   /* readers: HTTP threads; writers: after COMMITs */
    struct entry *by_token;  /* uthash head, owns the entries */
    struct entry *by_device; /* uthash head, same entries */
};

static void entry_remove(struct checkin *c, struct entry *e)
{
    HASH_DELETE(hh_token, c->by_token, e);
    HASH_DELETE(hh_device, c->by_device, e);
    free(e);
}

/* Adds or replaces; the write lock is held. */
static int put_locked(struct checkin *c, const char *token_hash, const char *device_id, int64_t seq)
{
    struct entry *e = NULL;
    if (strlen(token_hash) >= EF_HEX256_SIZE || strlen(device_id) > EF_DEVICE_ID_MAX)
        return EF_EINVAL;
    HASH_FIND(hh_device, c->by_device, device_id, strlen(device_id), e);
    if (e)
        entry_remove(c, e);
    HASH_FIND(hh_token, c->by_token, token_hash, strlen(token_hash), e);
    if (e)
        entry_remove(c, e);
    if (!(e = calloc(1, sizeof(*e))))
        return EF_ENOMEM;
    memcpy(e->token_hash, token_hash, strlen(token_hash) + 1);
    memcpy(e->device_id, device_id, strlen(device_id) + 1);
    e->seq = seq;
    HASH_ADD(hh_token, c->by_token, token_hash, strlen(e->token_hash), e);
    HASH_ADD(hh_device, c->by_device, device_id, strlen(e->device_id), e);
    return 0;
}

int checkin_open(struct db *db, struct checkin **out)
{
    json_t *rows = NULL, *row;
    size_t i;
    struct checkin *c = calloc(1, sizeof(*c));
    *out = NULL;
    if (!c)
        return EF_ENOMEM;
    pthread_rwlock_init(&c->lock, NULL);
    int rc = db_device_checkins(db, &rows);
    json_array_foreach(rows, i, row)
    {
        if (rc != 0)
            break;
        rc = put_locked(c, json_string_value(json_object_get(row, "token_hash")),
                        json_string_value(json_object_get(row, "id")),
                        json_integer_value(json_object_get(row, "seq")));
    }
    json_decref(rows);
    if (rc != 0) {
        checkin_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

void checkin_close(struct checkin *c)
{
    struct entry *e, *tmp;
    if (!c)
        return;
    HASH_ITER(hh_token, c->by_token, e, tmp)
    {
        entry_remove(c, e);
    }
    pthread_rwlock_destroy(&c->lock);
    free(c);
}

int checkin_put(struct checkin *c, const char *token_hash, const char *device_id, int64_t seq)
{
    pthread_rwlock_wrlock(&c->lock);
    int rc = put_locked(c, token_hash, device_id, seq);
    pthread_rwlock_unlock(&c->lock);
    return rc;
}

void checkin_set_seq(struct checkin *c, const char *device_id, int64_t seq)
{
    struct entry *e = NULL;
    pthread_rwlock_wrlock(&c->lock);
    HASH_FIND(hh_device, c->by_device, device_id, strlen(device_id), e);
    if (e && seq > e->seq)
        e->seq = seq;
    pthread_rwlock_unlock(&c->lock);
}

void checkin_remove(struct checkin *c, const char *device_id)
{
    struct entry *e = NULL;
    pthread_rwlock_wrlock(&c->lock);
    HASH_FIND(hh_device, c->by_device, device_id, strlen(device_id), e);
    if (e)
        entry_remove(c, e);
    pthread_rwlock_unlock(&c->lock);
}

int checkin_device(struct checkin *c, const char *token_hash, char device_id[EF_DEVICE_ID_MAX + 1])
{
    struct entry *e = NULL;
    pthread_rwlock_rdlock(&c->lock);
    HASH_FIND(hh_token, c->by_token, token_hash, strlen(token_hash), e);
    if (e)
        memcpy(device_id, e->device_id, strlen(e->device_id) + 1);
    pthread_rwlock_unlock(&c->lock);
    return e ? 0 : EF_ENOENT;
}

int checkin_seq(struct checkin *c, const char *device_id, int64_t *seq)
{
    struct entry *e = NULL;
    pthread_rwlock_rdlock(&c->lock);
    HASH_FIND(hh_device, c->by_device, device_id, strlen(device_id), e);
    if (e)
        *seq = e->seq;
    pthread_rwlock_unlock(&c->lock);
    return e ? 0 : EF_ENOENT;
}
