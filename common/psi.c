/* psi.c - population stability index against a reference histogram. */
#include "common/psi.h"
#include "common/ef_error.h"
#include "common/histogram.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double ef_psi(const double *expected_fractions, const uint64_t *actual_counts, size_t bins)
{
    uint64_t total = 0;
    double psi = 0;
    for (size_t b = 0; b < bins; b++)
        total += actual_counts[b];
    if (bins == 0 || total == 0)
        return NAN;
    for (size_t b = 0; b < bins; b++) {
        double e = expected_fractions[b], a = (double)actual_counts[b] / (double)total;
        e = e < EF_PSI_EPSILON ? EF_PSI_EPSILON : e;
        a = a < EF_PSI_EPSILON ? EF_PSI_EPSILON : a;
        psi += (a - e) * log(a / e);
    }
    return psi;
}

int ef_psi_hist_init(struct ef_psi_hist *h, const json_t *histogram)
{
    int rc = EF_EINVAL;
    const json_t *edges = json_object_get(histogram, "edges");
    const json_t *fractions = json_object_get(histogram, "fractions");
    memset(h, 0, sizeof(*h));
    if (!json_is_array(edges) || !json_is_array(fractions) || json_array_size(fractions) == 0 ||
        json_array_size(edges) != json_array_size(fractions) + 1)
        return EF_EINVAL;
    h->bins = json_array_size(fractions);
    h->edges = malloc((h->bins + 1) * sizeof(*h->edges));
    h->fractions = malloc(h->bins * sizeof(*h->fractions));
    h->counts = calloc(h->bins, sizeof(*h->counts));
    if (!h->edges || !h->fractions || !h->counts) {
        rc = EF_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i <= h->bins; i++) {
        const json_t *v = json_array_get(edges, i);
        if (!json_is_number(v) || !isfinite(json_number_value(v)))
            goto out;
        h->edges[i] = json_number_value(v);
        if (i > 0 && !(h->edges[i] > h->edges[i - 1]))
            goto out;
    }
    for (size_t i = 0; i < h->bins; i++) {
        const json_t *v = json_array_get(fractions, i);
        double f = json_is_number(v) ? json_number_value(v) : -1;
        if (!(f >= 0 && f <= 1))
            goto out;
        h->fractions[i] = f;
    }
    rc = 0;
out:
    if (rc != 0)
        ef_psi_hist_release(h);
    return rc;
}

void ef_psi_hist_add(struct ef_psi_hist *h, double x)
{
    if (isnan(x))
        return;
    h->counts[ef_histogram_bin(h->edges, h->bins, x)]++;
    h->n++;
}

double ef_psi_hist_value(const struct ef_psi_hist *h)
{
    return h->n ? ef_psi(h->fractions, h->counts, h->bins) : NAN;
}

void ef_psi_hist_reset(struct ef_psi_hist *h)
{
    if (h->counts)
        memset(h->counts, 0, h->bins * sizeof(*h->counts));
    h->n = 0;
}

void ef_psi_hist_release(struct ef_psi_hist *h)
{
    free(h->edges);
    free(h->fractions);
    free(h->counts);
    memset(h, 0, sizeof(*h));
}
