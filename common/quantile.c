/* quantile.c - the log-bucketed latency histogram of quantile.h. */
#include "common/quantile.h"
#include "common/ef_error.h"

#include <math.h>
#include <string.h>

/* Index of the bucket holding v (v finite and >= 0). */
static size_t bucket_of(double v)
{
    if (v < EF_QUANTILE_LOW)
        return 0;
    double i = floor(log(v / EF_QUANTILE_LOW) / log(EF_QUANTILE_GROWTH));
    if (i >= EF_QUANTILE_BINS)
        return EF_QUANTILE_BINS + 1;
    return (size_t)i + 1;
}

/* The value reported for bucket b: the harmonic midpoint of its bounds, the
 * point whose relative distance to either bound is the same (and the
 * smallest possible). The end buckets have no finite bounds and use the
 * observed extremes. */
static double bucket_value(const struct ef_quantile *q, size_t b)
{
    if (b == 0)
        return q->min;
    if (b == EF_QUANTILE_BINS + 1)
        return q->max;
    double lo = EF_QUANTILE_LOW * pow(EF_QUANTILE_GROWTH, (double)(b - 1));
    double hi = lo * EF_QUANTILE_GROWTH;
    return 2 * lo * hi / (lo + hi);
}

void ef_quantile_reset(struct ef_quantile *q)
{
    memset(q, 0, sizeof(*q));
}

int ef_quantile_record(struct ef_quantile *q, double value)
{
    if (!isfinite(value))
        return EF_EINVAL;
    if (value < 0)
        value = 0;
    if (q->count == 0 || value < q->min)
        q->min = value;
    if (q->count == 0 || value > q->max)
        q->max = value;
    q->count++;
    q->sum += value;
    q->buckets[bucket_of(value)]++;
    return 0;
}

double ef_quantile_value(const struct ef_quantile *q, double p)
{
    if (q->count == 0)
        return 0;
    if (!(p > 0))
        p = 0;
    if (p > 1)
        p = 1;
    uint64_t rank = (uint64_t)ceil(p * (double)q->count);
    if (rank < 1)
        rank = 1;
    /* The extremes are known exactly. */
    if (rank == 1)
        return q->min;
    if (rank >= q->count)
        return q->max;
    uint64_t seen = 0;
    size_t b = 0;
    for (; b < EF_QUANTILE_BINS + 2; b++) {
        seen += q->buckets[b];
        if (seen >= rank)
            break;
    }
    /* The counts sum to count, so the loop always stops on a bucket. */
    double v = bucket_value(q, b);
    if (v < q->min)
        v = q->min;
    if (v > q->max)
        v = q->max;
    return v;
}

void ef_quantile_merge(struct ef_quantile *into, const struct ef_quantile *from)
{
    if (from->count == 0)
        return;
    if (into->count == 0 || from->min < into->min)
        into->min = from->min;
    if (into->count == 0 || from->max > into->max)
        into->max = from->max;
    into->count += from->count;
    into->sum += from->sum;
    for (size_t b = 0; b < EF_QUANTILE_BINS + 2; b++)
        into->buckets[b] += from->buckets[b];
}
