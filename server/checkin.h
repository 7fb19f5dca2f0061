/*
 * checkin.h - the device check-in cache: device token hash -> device id and
 * the seq of its current assignment, in memory.
 *
 * Device polls of GET /desired are the bulk of the server's traffic and are
 * almost always answered 304. With this cache, authenticating the device and
 * comparing its If-None-Match with its seq touch neither SQLite nor its lock,
 * so HTTP threads answer them in parallel. The database stays the truth: the
 * cache is filled from it at start and updated after every COMMIT that
 * changes a device's token or seq (enrollment, assignment, decommission); a
 * lookup that misses falls back to the database.
 */
#ifndef EF_CHECKIN_H
#define EF_CHECKIN_H

#include "common/crypto.h"
#include "common/topic.h"

#include <stdint.h>

struct db;
struct checkin;

/* New cache filled with every active device of db. EF_ENOMEM, EF_EDB. */
int checkin_open(struct db *db, struct checkin **out);

/* Frees the cache; accepts NULL. */
void checkin_close(struct checkin *c);

/* Adds or replaces a device (after enrollment); seq 0 means no assignment. */
int checkin_put(struct checkin *c, const char *token_hash, const char *device_id, int64_t seq);

/* Records a device's new assignment seq (after the assignment's COMMIT). */
void checkin_set_seq(struct checkin *c, const char *device_id, int64_t seq);

/* Forgets a device (after decommission). */
void checkin_remove(struct checkin *c, const char *device_id);

/* Finds the device of a token hash. 0 or EF_ENOENT (not cached). */
int checkin_device(struct checkin *c, const char *token_hash, char device_id[EF_DEVICE_ID_MAX + 1]);

/* The seq of a device's current assignment: 0 when it has none. EF_ENOENT
 * when the device is not cached. */
int checkin_seq(struct checkin *c, const char *device_id, int64_t *seq);

#endif
