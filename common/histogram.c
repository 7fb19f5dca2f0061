/* histogram.c - equal-width reference histograms. */
#include "common/histogram.h"
#include "common/json_util.h"

#include <math.h>
#include <stdlib.h>

size_t ef_histogram_bin(const double *edges, size_t bins, double x)
{
    /* Binary search for the last edge <= x among edges[0..bins-1]. */
    size_t lo = 0, hi = bins;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (x >= edges[mid])
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

json_t *ef_histogram_build(const double *values, size_t n, size_t stride, size_t bins)
{
    json_t *out = NULL;
    double *edges = NULL, *fractions = NULL;
    if (n == 0 || bins == 0)
        return NULL;
    double lo = values[0], hi = values[0];
    for (size_t i = 0; i < n; i++) {
        double v = values[i * stride];
        /* A NaN would slip into bin 0 unseen and an infinity leaves no edges. */
        if (!isfinite(v))
            goto out;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    /* A constant feature still gets a bin of width one around its value. */
    if (hi <= lo) {
        lo -= 0.5;
        hi += 0.5;
    }
    edges = malloc((bins + 1) * sizeof(*edges));
    fractions = calloc(bins, sizeof(*fractions));
    if (!edges || !fractions)
        goto out;
    for (size_t b = 0; b <= bins; b++)
        edges[b] = lo + (hi - lo) * (double)b / (double)bins;
    edges[bins] = hi;
    for (size_t i = 0; i < n; i++)
        fractions[ef_histogram_bin(edges, bins, values[i * stride])] += 1.0;
    for (size_t b = 0; b < bins; b++)
        fractions[b] /= (double)n;
    out = json_pack("{s:o, s:o}", "edges", ef_json_doubles(edges, bins + 1), "fractions",
                    ef_json_doubles(fractions, bins));
out:
    free(edges);
    free(fractions);
    return out;
}
