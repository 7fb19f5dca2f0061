/* metrics.c - the telemetry window: counts, latency quantiles, accuracy, RSS and CPU. */
#include "agent/metrics.h"
#include "common/clock.h"
#include "common/ef_error.h"
#include "common/quantile.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
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
}

int metrics_new(struct metrics **out)
{
    struct metrics *m = malloc(sizeof(*m));
    *out = NULL;
    if (!m)
        return EF_ENOMEM;
    window_open(m);
    *out = m;
    return 0;
}

void metrics_free(struct metrics *m)
{
    free(m);
}

void metrics_observe(struct metrics *m, bool ok, double latency_ms)
{
    m->inferences++;
    if (!ok)
        m->errors++;
    /* Refused only when not finite, which the header allows for. */
    (void)ef_quantile_record(&m->latency, latency_ms);
}

void metrics_feedback(struct metrics *m, bool correct)
{
    m->feedback++;
    if (correct)
        m->correct++;
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
    json_t *w =
        json_pack("{s:s, s:f, s:s?, s:I, s:I, s:o?, s:I, s:o?, s:o?, s:f}", "window_start", start,
                  "window_s", (double)(ef_mono_ms() - m->start_mono_ms) / 1000.0, "model", model,
                  "inferences", (json_int_t)m->inferences, "errors", (json_int_t)m->errors,
                  "latency_ms", latency, "feedback", (json_int_t)m->feedback, "accuracy",
                  m->feedback ? json_real((double)m->correct / (double)m->feedback) : NULL,
                  "rss_bytes", rss >= 0 ? json_integer(rss) : NULL, "cpu_s", cpu > 0 ? cpu : 0.0);
    if (w)
        window_open(m);
    return w;
}
