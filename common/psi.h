/*
 * psi.h - the population stability index (PSI) of a field distribution
 * against a reference histogram, for drift detection (docs/monitoring.md).
 *
 * With expected fractions e (the reference) and actual fractions a (counts
 * over their total), both floored at EF_PSI_EPSILON so that an empty bin does
 * not divide by zero:  PSI = sum over bins of (a_b - e_b) * ln(a_b / e_b).
 * Rule of thumb: < 0.1 stable, 0.1 to 0.25 moderate, > 0.25 significant.
 *
 * struct ef_psi_hist counts values into the bins of one baseline histogram
 * ({"edges", "fractions"}, common/histogram.h); values outside the edges
 * count in the end bins (ef_histogram_bin).
 */
#ifndef EF_PSI_H
#define EF_PSI_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define EF_PSI_EPSILON 1e-4

/* PSI of actual_counts against expected_fractions, both of bins entries.
 * NAN when bins is 0 or no value was counted. */
double ef_psi(const double *expected_fractions, const uint64_t *actual_counts, size_t bins);

/* One reference histogram and the field values counted into its bins. */
struct ef_psi_hist {
    size_t bins;       /* number of bins */
    double *edges;     /* bins + 1 ascending edges; owned */
    double *fractions; /* bins expected fractions; owned */
    uint64_t *counts;  /* bins counts of the values added since the last reset; owned */
    uint64_t n;        /* values added since the last reset */
};

/* Reads histogram ({"edges": [bins+1 ascending numbers], "fractions": [bins
 * numbers in [0, 1]]}, borrowed) into h with zero counts. EF_EINVAL when it is
 * not of that shape, EF_ENOMEM; on failure h holds nothing to free. */
int ef_psi_hist_init(struct ef_psi_hist *h, const json_t *histogram);

/* Counts x into its bin (a NaN is ignored). */
void ef_psi_hist_add(struct ef_psi_hist *h, double x);

/* PSI of the values counted since the last reset; NAN when none. */
double ef_psi_hist_value(const struct ef_psi_hist *h);

/* Zeroes the counts. */
void ef_psi_hist_reset(struct ef_psi_hist *h);

/* Releases what init allocated; accepts a zeroed or already released h. */
void ef_psi_hist_release(struct ef_psi_hist *h);

#endif
