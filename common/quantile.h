/*
 * quantile.h - a streaming quantile estimator for latencies: a histogram with
 * logarithmic buckets, fixed in size, mergeable, with a bounded error.
 *
 * Bucket i (1 <= i <= EF_QUANTILE_BINS) holds the values in
 * [LOW * GROWTH^(i-1), LOW * GROWTH^i); bucket 0 the values below LOW (zero
 * included) and bucket EF_QUANTILE_BINS + 1 those from LOW * GROWTH^BINS
 * up. With LOW = 0.001 and GROWTH = 1.02 the interior covers 0.001 to about
 * 101,570: in milliseconds, 1 µs to about 101 s.
 *
 * Quantile p of n values is the value of rank ceil(p·n) (at least 1), the
 * "nearest rank" definition. It is answered with the harmonic midpoint
 * 2·lo·hi / (lo + hi) of the bucket holding that value, clamped to the
 * observed min and max; the first and last ranks (min and max) are exact.
 * Error bound: for a value inside the interior range the estimate is within
 * a relative error of (GROWTH - 1) / (GROWTH + 1) = 0.0099 of it;
 * EF_QUANTILE_REL_ERROR (1 %) adds room for rounding at bucket edges. Below
 * LOW the estimate is the observed minimum (absolute error < LOW); above the
 * interior it is the observed maximum.
 *
 * The struct is plain data (about 7.5 KiB), embeddable and copyable; it is not
 * thread-safe.
 */
#ifndef EF_QUANTILE_H
#define EF_QUANTILE_H

#include <stddef.h>
#include <stdint.h>

#define EF_QUANTILE_LOW       0.001
#define EF_QUANTILE_GROWTH    1.02
#define EF_QUANTILE_BINS      931  /* ceil(ln(1e8) / ln(1.02)): LOW to >= 1e5 * LOW */
#define EF_QUANTILE_REL_ERROR 0.01 /* bound on the relative error, see above */

struct ef_quantile {
    uint64_t count;                         /* values recorded */
    double sum;                             /* of the values recorded */
    double min, max;                        /* exact, of the values recorded */
    uint64_t buckets[EF_QUANTILE_BINS + 2]; /* counts; see the layout above */
};

/* Empties q (also how it is initialised). */
void ef_quantile_reset(struct ef_quantile *q);

/* Records one value. Negative values count as 0. EF_EINVAL for NaN or an
 * infinity, which are not recorded. */
int ef_quantile_record(struct ef_quantile *q, double value);

/* The estimate of quantile p (0 <= p <= 1, clamped) with the error bound
 * above; 0 when q is empty. */
double ef_quantile_value(const struct ef_quantile *q, double p);

/* Adds everything recorded in from to into, as if recorded there. */
void ef_quantile_merge(struct ef_quantile *into, const struct ef_quantile *from);

#endif
