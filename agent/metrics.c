/* metrics.c - the telemetry window: counts, latency quantiles, drift, confidence,
 * accuracy, confusion, shadow agreement, RSS and CPU. */
#include "agent/metrics.h"
#include "common/clock.h"
#include "common/ef_error.h"
#include "common/json_util.h"
#include "common/log.h"
#include "common/manifest.h"
#include "common/psi.h"
#include "common/quantile.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

struct metrics {
    int64_t start_ms;           /* wall clock when the window opened, ms since the epoch */
    int64_t start_mono_ms;      /* monotonic clock then, ms */
    double start_cpu_s;         /* process CPU (user + system) then, seconds */
    uint64_t inferences;        /* served in the window, failed ones included */
    uint64_t errors;            /* failed ones */
    uint64_t feedback;          /* labelled feedback received */
    uint64_t correct;           /* of which the prediction was right */
    struct ef_quantile latency; /* of the inferences, ms */
    uint64_t observed;          /* outputs observed (metrics_observe_io) */
    double confidence_sum;      /* sum of their winning outputs, each in [0, 1] */

    /* The production model drift and confusion refer to. */
    char model_id[96];            /* "NAME@VERSION", "" when none */
    size_t n_in, n_out;           /* its input and output sizes */
    struct ef_psi_hist *features; /* n_in baseline histograms, NULL without a baseline */
    struct ef_psi_hist *outputs;  /* n_out baseline histograms, NULL without a baseline */
    uint64_t drift_n;             /* inputs counted into features in the window */
    uint64_t *confusion;          /* n_out x n_out, row = true class; NULL when n_out < 2 */
    uint64_t confused;            /* feedback counted into confusion in the window */

    struct {
        char model[96];      /* "NAME@VERSION" of the shadow, "" when none ran */
        uint64_t inferences; /* shadow inferences in the window, failed included */
        uint64_t errors;     /* of which failed */
        uint64_t agreed;     /* successful ones with the same winning class as production */
        uint64_t feedback;   /* labelled feedback scored against the shadow */
        uint64_t correct;    /* of which the shadow was right */
    } shadow;
};

/* User + system CPU time of the process, seconds; 0 if unknown. */
static double process_cpu_s(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* Resident set size of the process in bytes, from /proc/self/statm (its
 * second field, in pages); -1 if unknown. */
static int64_t process_rss_bytes(void)
{
    long long size = 0, resident = -1;
    FILE *f = fopen("/proc/self/statm", "re");
    if (!f)
        return -1;
    if (fscanf(f, "%lld %lld", &size, &resident) != 2)
        resident = -1;
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return resident < 0 || page <= 0 ? -1 : (int64_t)resident * page;
}

static void window_open(struct metrics *m)
{
    m->start_ms = ef_now_ms();
    m->start_mono_ms = ef_mono_ms();
    m->start_cpu_s = process_cpu_s();
    m->inferences = m->errors = m->feedback = m->correct = 0;
    ef_quantile_reset(&m->latency);
    m->observed = 0;
    m->confidence_sum = 0;
    m->drift_n = 0;
    for (size_t i = 0; m->features && i < m->n_in; i++)
        ef_psi_hist_reset(&m->features[i]);
    for (size_t j = 0; m->outputs && j < m->n_out; j++)
        ef_psi_hist_reset(&m->outputs[j]);
    if (m->confusion)
        memset(m->confusion, 0, m->n_out * m->n_out * sizeof(*m->confusion));
    m->confused = 0;
    memset(&m->shadow, 0, sizeof(m->shadow));
}

static void release_hists(struct ef_psi_hist *h, size_t n)
{
    for (size_t i = 0; h && i < n; i++)
        ef_psi_hist_release(&h[i]);
    free(h);
}

/* Forgets the production model: no drift, no confusion. */
static void model_clear(struct metrics *m)
{
    release_hists(m->features, m->n_in);
    release_hists(m->outputs, m->n_out);
    free(m->confusion);
    m->features = m->outputs = NULL;
    m->confusion = NULL;
    m->n_in = m->n_out = 0;
    m->model_id[0] = '\0';
    m->drift_n = m->confused = 0;
}

/* n histograms read from array (borrowed); NULL with *rc set on failure. */
static struct ef_psi_hist *read_hists(const json_t *array, size_t n, int *rc)
{
    struct ef_psi_hist *h = NULL;
    *rc = EF_EINVAL;
    if (!json_is_array(array) || json_array_size(array) != n || n == 0)
        return NULL;
    if (!(h = calloc(n, sizeof(*h)))) {
        *rc = EF_ENOMEM;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if ((*rc = ef_psi_hist_init(&h[i], json_array_get(array, i))) != 0) {
            release_hists(h, n);
            return NULL;
        }
    }
    *rc = 0;
    return h;
}

int metrics_new(struct metrics **out)
{
    struct metrics *m = calloc(1, sizeof(*m));
    *out = NULL;
    if (!m)
        return EF_ENOMEM;
    window_open(m);
    *out = m;
    return 0;
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    model_clear(m);
    free(m);
}

const char *metrics_model(const struct metrics *m)
{
    return m->model_id;
}

int metrics_set_model(struct metrics *m, const struct ef_manifest *manifest, const char *model_id)
{
    int rc = 0;
    if (!manifest || !model_id) {
        model_clear(m);
        return 0;
    }
    if (strcmp(m->model_id, model_id) == 0)
        return 0;
    model_clear(m);
    snprintf(m->model_id, sizeof(m->model_id), "%s", model_id);
    m->n_in = manifest->input_size;
    m->n_out = manifest->output_size;
    if (m->n_out >= 2 && !(m->confusion = calloc(m->n_out * m->n_out, sizeof(*m->confusion)))) {
        rc = EF_ENOMEM;
        goto out;
    }
    const json_t *baseline = json_object_get(manifest->doc, "baseline");
    if (!json_is_object(baseline)) {
        ef_info("metrics_no_baseline", "model=%s", model_id);
        goto out;
    }
    int frc = 0, orc = 0;
    m->features = read_hists(json_object_get(baseline, "features"), m->n_in, &frc);
    m->outputs = read_hists(json_object_get(baseline, "output"), m->n_out, &orc);
    if (!m->features || !m->outputs) {
        release_hists(m->features, m->n_in);
        release_hists(m->outputs, m->n_out);
        m->features = m->outputs = NULL;
        rc = frc == EF_ENOMEM || orc == EF_ENOMEM ? EF_ENOMEM : 0;
        ef_warn("metrics_bad_baseline", "model=%s error=%s", model_id, ef_errname(frc ? frc : orc));
    }
out:
    return rc;
}

void metrics_observe(struct metrics *m, bool ok, double latency_ms)
{
    m->inferences++;
    if (!ok)
        m->errors++;
    /* Refused only when not finite, which the header allows for. */
    (void)ef_quantile_record(&m->latency, latency_ms);
}

void metrics_observe_io(struct metrics *m, const double *in, size_t n_in, const double *out,
                        size_t n_out)
{
    if (n_out == 0)
        return;
    double win = out[0];
    if (n_out == 1)
        win = out[0] > 1 - out[0] ? out[0] : 1 - out[0];
    for (size_t j = 1; j < n_out; j++)
        win = out[j] > win ? out[j] : win;
    m->confidence_sum += win < 0 ? 0 : win > 1 ? 1 : win;
    m->observed++;
    if (!m->features || n_in != m->n_in || n_out != m->n_out)
        return;
    for (size_t i = 0; i < n_in; i++)
        ef_psi_hist_add(&m->features[i], in[i]);
    for (size_t j = 0; j < n_out; j++)
        ef_psi_hist_add(&m->outputs[j], out[j]);
    m->drift_n++;
}

void metrics_feedback(struct metrics *m, bool correct)
{
    m->feedback++;
    if (correct)
        m->correct++;
}

void metrics_feedback_class(struct metrics *m, size_t truth, size_t predicted, size_t n_out)
{
    metrics_feedback(m, truth == predicted);
    if (m->confusion && n_out == m->n_out && truth < n_out && predicted < n_out) {
        m->confusion[truth * n_out + predicted]++;
        m->confused++;
    }
}

/* Points the window's shadow counts at shadow_id, starting them again when
 * another shadow ran before in the window. */
static void shadow_select(struct metrics *m, const char *shadow_id)
{
    if (strcmp(m->shadow.model, shadow_id) != 0) {
        memset(&m->shadow, 0, sizeof(m->shadow));
        snprintf(m->shadow.model, sizeof(m->shadow.model), "%s", shadow_id);
    }
}

void metrics_shadow_observe(struct metrics *m, const char *shadow_id, bool ok, bool agreed)
{
    shadow_select(m, shadow_id);
    m->shadow.inferences++;
    if (!ok)
        m->shadow.errors++;
    else if (agreed)
        m->shadow.agreed++;
}

void metrics_shadow_feedback(struct metrics *m, const char *shadow_id, bool correct)
{
    shadow_select(m, shadow_id);
    m->shadow.feedback++;
    if (correct)
        m->shadow.correct++;
}

static double ratio(uint64_t num, uint64_t den)
{
    return (double)num / (double)den;
}

/* PSI of n histograms as a new array, and their max. */
static json_t *psi_array(const struct ef_psi_hist *h, size_t n, double *max)
{
    json_t *a = json_array();
    *max = 0;
    for (size_t i = 0; a && i < n; i++) {
        double v = ef_psi_hist_value(&h[i]);
        v = isfinite(v) ? v : 0;
        *max = v > *max ? v : *max;
        if (json_array_append_new(a, json_real(v)) != 0) {
            json_decref(a);
            a = NULL;
        }
    }
    return a;
}

static json_t *drift_json(const struct metrics *m)
{
    double max = 0, output_max = 0;
    if (!m->features || m->drift_n < METRICS_DRIFT_MIN_N)
        return NULL;
    json_t *features = psi_array(m->features, m->n_in, &max);
    json_t *output = psi_array(m->outputs, m->n_out, &output_max);
    return json_pack("{s:I, s:o, s:o, s:f, s:f}", "n", (json_int_t)m->drift_n, "features", features,
                     "output", output, "max", max, "output_max", output_max);
}

static json_t *confusion_json(const struct metrics *m)
{
    if (!m->confusion || m->confused == 0)
        return NULL;
    json_t *rows = json_array();
    for (size_t t = 0; rows && t < m->n_out; t++) {
        json_t *row = json_array();
        /* The _new calls take the reference even when they fail. */
        if (json_array_append_new(rows, row) != 0)
            goto fail;
        for (size_t p = 0; p < m->n_out; p++)
            if (json_array_append_new(row,
                                      json_integer((json_int_t)m->confusion[t * m->n_out + p])))
                goto fail;
    }
    return rows;
fail:
    json_decref(rows);
    return NULL;
}

static json_t *shadow_json(const struct metrics *m)
{
    uint64_t ran = m->shadow.inferences - m->shadow.errors;
    if (!m->shadow.model[0])
        return NULL;
    return json_pack("{s:s, s:I, s:I, s:o, s:I, s:o}", "model", m->shadow.model, "inferences",
                     (json_int_t)m->shadow.inferences, "errors", (json_int_t)m->shadow.errors,
                     "agreement", ran ? json_real(ratio(m->shadow.agreed, ran)) : json_null(),
                     "feedback", (json_int_t)m->shadow.feedback, "accuracy",
                     m->shadow.feedback ? json_real(ratio(m->shadow.correct, m->shadow.feedback))
                                        : json_null());
}

/* Size of w serialized as it is published, or SIZE_MAX when it cannot be. */
static size_t dumped_size(const json_t *w)
{
    char *text = ef_json_dump(w);
    size_t n = text ? strlen(text) : SIZE_MAX;
    free(text);
    return n;
}

json_t *metrics_close_window(struct metrics *m, const char *model)
{
    char start[EF_TIME_STR_SIZE];
    json_t *latency = NULL;
    ef_time_format(m->start_ms, start, sizeof(start));
    if (m->latency.count > 0)
        latency = json_pack("{s:f, s:f, s:f, s:f}", "p50", ef_quantile_value(&m->latency, 0.50),
                            "p95", ef_quantile_value(&m->latency, 0.95), "p99",
                            ef_quantile_value(&m->latency, 0.99), "max", m->latency.max);
    double cpu = process_cpu_s() - m->start_cpu_s;
    int64_t rss = process_rss_bytes();
    json_t *w = json_pack(
        "{s:s, s:f, s:s?, s:I, s:I, s:o?, s:I, s:I, s:o?, s:o?, s:f}", "window_start", start,
        "window_s", (double)(ef_mono_ms() - m->start_mono_ms) / 1000.0, "model", model,
        "inferences", (json_int_t)m->inferences, "errors", (json_int_t)m->errors, "latency_ms",
        latency, "feedback", (json_int_t)m->feedback, "correct", (json_int_t)m->correct, "accuracy",
        m->feedback ? json_real(ratio(m->correct, m->feedback)) : NULL, "rss_bytes",
        rss >= 0 ? json_integer(rss) : NULL, "cpu_s", cpu > 0 ? cpu : 0.0);
    if (!w)
        return NULL;
    json_t *drift = drift_json(m), *confusion = confusion_json(m), *shadow = shadow_json(m);
    if (json_object_set_new(w, "drift", drift ? drift : json_null()) != 0 ||
        json_object_set_new(w, "confusion", confusion ? confusion : json_null()) != 0 ||
        json_object_set_new(w, "shadow", shadow ? shadow : json_null()) != 0 ||
        json_object_set_new(w, "confidence",
                            m->observed ? json_real(m->confidence_sum / (double)m->observed)
                                        : json_null()) != 0) {
        json_decref(w);
        return NULL;
    }
    /* Many outputs make a large confusion matrix, many inputs a long drift
     * array: the larger goes first, until the window fits. */
    while (dumped_size(w) >= METRICS_MAX_BYTES) {
        const char *drop = NULL;
        size_t largest = 0;
        static const char *const droppable[] = {"confusion", "drift"};
        for (size_t k = 0; k < 2; k++) {
            const json_t *v = json_object_get(w, droppable[k]);
            size_t n = json_is_null(v) ? 0 : dumped_size(v);
            if (n > largest) {
                largest = n;
                drop = droppable[k];
            }
        }
        if (!drop)
            break;
        ef_warn("metrics_window_trimmed", "dropped=%s inputs=%zu outputs=%zu", drop, m->n_in,
                m->n_out);
        json_object_set_new(w, drop, json_null());
    }
    window_open(m);
    return w;
}
