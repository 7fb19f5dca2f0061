/*
 * histogram.h - baseline histograms for drift detection.
 *
 * A histogram is {"edges": [bins+1 numbers], "fractions": [bins numbers]}:
 * equal-width bins between the smallest and largest reference value, each
 * holding the share of reference values that fell in it (values on the upper
 * edge count in the last bin). Field values outside the edges count in the end
 * bins when compared later (PSI), so the edges need not cover the future.
 */
#ifndef EF_HISTOGRAM_H
#define EF_HISTOGRAM_H

#include <jansson.h>
#include <stddef.h>

#define EF_HISTOGRAM_DEFAULT_BINS 10

/* Index of the bin of value x given bins+1 ascending edges; clamps outside. */
size_t ef_histogram_bin(const double *edges, size_t bins, double x);

/* Builds the histogram of n values (stride: distance in doubles between
 * consecutive values, so a column of a row-major matrix can be passed).
 * Returns a new JSON object, or NULL when n == 0 or out of memory. */
json_t *ef_histogram_build(const double *values, size_t n, size_t stride, size_t bins);

#endif
