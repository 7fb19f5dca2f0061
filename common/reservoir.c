/* reservoir.c - Algorithm R over a fixed block of input vectors. */
#include "common/reservoir.h"
#include "common/ef_error.h"

#include <stdlib.h>
#include <string.h>

void ef_rng_seed(struct ef_rng *r, uint64_t seed)
{
    r->state = seed;
}

uint64_t ef_rng_next(struct ef_rng *r)
{
    uint64_t z = (r->state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t ef_rng_below(struct ef_rng *r, uint64_t n)
{
    if (n == 0)
        return 0;
    /* Reject the top partial copy of [0, n) so that every value is as likely. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do
        x = ef_rng_next(r);
    while (x >= limit);
    return x % n;
}

double ef_rng_unit(struct ef_rng *r)
{
    return (double)(ef_rng_next(r) >> 11) * 0x1.0p-53;
}

int ef_reservoir_new(size_t capacity, size_t input_size, uint64_t seed, struct ef_reservoir **out)
{
    struct ef_reservoir *r = NULL;
    *out = NULL;
    if (capacity == 0 || input_size == 0 || capacity > SIZE_MAX / sizeof(double) / input_size)
        return EF_EINVAL;
    if (!(r = calloc(1, sizeof(*r))) || !(r->items = calloc(capacity, sizeof(*r->items))) ||
        !(r->block = malloc(capacity * input_size * sizeof(*r->block)))) {
        ef_reservoir_free(r);
        return EF_ENOMEM;
    }
    r->capacity = capacity;
    r->input_size = input_size;
    for (size_t i = 0; i < capacity; i++) {
        r->items[i].input = r->block + i * input_size;
        r->items[i].label = EF_RESERVOIR_NO_LABEL;
    }
    ef_rng_seed(&r->rng, seed);
    *out = r;
    return 0;
}

void ef_reservoir_free(struct ef_reservoir *r)
{
    if (!r)
        return;
    if (r->items)
        ef_reservoir_clear(r);
    free(r->items);
    free(r->block);
    free(r);
}

int ef_reservoir_offer(struct ef_reservoir *r, const double *input, const char *id)
{
    size_t slot;
    char *copy = NULL;
    r->seen++;
    if (r->count < r->capacity) {
        slot = r->count;
    } else {
        /* Item number `seen` replaces a held one with probability capacity / seen. */
        uint64_t j = ef_rng_below(&r->rng, r->seen);
        if (j >= r->capacity)
            return 0;
        slot = (size_t)j;
    }
    if (id && !(copy = strdup(id)))
        return EF_ENOMEM;
    struct ef_reservoir_item *it = &r->items[slot];
    free(it->id);
    it->id = copy;
    it->label = EF_RESERVOIR_NO_LABEL;
    memcpy(it->input, input, r->input_size * sizeof(*input));
    if (slot == r->count)
        r->count++;
    return 1;
}

int ef_reservoir_label(struct ef_reservoir *r, const char *id, int64_t label)
{
    int rc = EF_ENOENT;
    for (size_t i = 0; i < r->count; i++) {
        if (r->items[i].id && strcmp(r->items[i].id, id) == 0) {
            r->items[i].label = label;
            rc = 0;
        }
    }
    return rc;
}

void ef_reservoir_clear(struct ef_reservoir *r)
{
    for (size_t i = 0; i < r->count; i++) {
        free(r->items[i].id);
        r->items[i].id = NULL;
        r->items[i].label = EF_RESERVOIR_NO_LABEL;
    }
    r->count = 0;
    r->seen = 0;
}
