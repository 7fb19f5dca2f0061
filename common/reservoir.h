/*
 * reservoir.h - a uniform sample of fixed size from a stream of unknown
 * length (Algorithm R, Vitter 1985), for the retraining data a device
 * collects (docs/monitoring.md), and the small seedable generator it draws
 * with.
 *
 * After n offers the reservoir holds min(n, capacity) of them, each offered
 * item being held with probability capacity / n. Each item is an input
 * vector of the reservoir's input size, an optional request id and an
 * optional label (class index) that a later feedback can attach by id.
 * Not thread-safe.
 */
#ifndef EF_RESERVOIR_H
#define EF_RESERVOIR_H

#include <stddef.h>
#include <stdint.h>

/* splitmix64: a 64-bit state, any seed (0 included) is good. Plain data. */
struct ef_rng {
    uint64_t state;
};

void ef_rng_seed(struct ef_rng *r, uint64_t seed);
uint64_t ef_rng_next(struct ef_rng *r);
/* Uniform in [0, n) without modulo bias; 0 when n is 0. */
uint64_t ef_rng_below(struct ef_rng *r, uint64_t n);
/* Uniform in [0, 1), 53 bits. */
double ef_rng_unit(struct ef_rng *r);

#define EF_RESERVOIR_NO_LABEL (-1)

struct ef_reservoir_item {
    double *input; /* input_size values; points into the reservoir's own block */
    char *id;      /* request id, owned; NULL when the input came without one */
    int64_t label; /* class index, or EF_RESERVOIR_NO_LABEL */
};

struct ef_reservoir {
    size_t capacity;                 /* items held at most */
    size_t input_size;               /* values per input */
    size_t count;                    /* items held now, <= capacity */
    uint64_t seen;                   /* items offered since the last clear */
    struct ef_reservoir_item *items; /* capacity slots, the first count in use */
    double *block;                   /* capacity * input_size values backing the inputs */
    struct ef_rng rng;               /* draws which item an offer replaces */
};

/* A new empty reservoir of capacity items (>= 1) of input_size values (>= 1),
 * drawing from a generator seeded with seed. EF_EINVAL, EF_ENOMEM. */
int ef_reservoir_new(size_t capacity, size_t input_size, uint64_t seed, struct ef_reservoir **out);

/* Accepts NULL. */
void ef_reservoir_free(struct ef_reservoir *r);

/* Offers one input (input_size values, copied) with its request id (copied;
 * may be NULL). Returns 1 when it is now held, 0 when it was passed over,
 * EF_ENOMEM (nothing changed but the offer count). */
int ef_reservoir_offer(struct ef_reservoir *r, const double *input, const char *id);

/* Labels every held item offered with this id. 0, or EF_ENOENT when none is
 * held (never offered, passed over, or replaced since). */
int ef_reservoir_label(struct ef_reservoir *r, const char *id, int64_t label);

/* Empties the reservoir (a new sample starts; the generator runs on). */
void ef_reservoir_clear(struct ef_reservoir *r);

#endif
