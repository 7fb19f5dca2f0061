/*
 * fann_inproc.c - the baseline of the agent's inference benchmark: the same
 * FANN network run in-process, fann_run in a loop on one thread, with no
 * socket, JSON or agent in between: the ceiling of requests/s that the
 * agent's local endpoint can approach.
 *
 * usage: ef-bench-fann-inproc NET (--data FILE | --input JSON) [--duration S] [--warmup S]
 *
 * NET is a float FANN network file (as edgefleet-backend-fann.so loads it,
 * with fann_create_from_file). The input is the first row of a FANN data
 * file (--data) or a JSON array of numbers (--input); infer_load sends the
 * same vector. After --warmup seconds (default 0.5, not counted) it calls
 * fann_run for --duration seconds (default 5), reading the clock every 1024
 * calls, and prints one JSON object: runs, seconds, runs_per_s, ns_per_run,
 * the CPU time the process used, and the output of the last run (to compare
 * with the agent's answer). Links libfann only, never the agent.
 */
#include <floatfann.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define CLOCK_EVERY 1024 /* fann_run calls between two reads of the clock */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_now_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* Fills in[0..n) from the first row of FANN data file path. 0 or -1. */
static int input_from_data(const char *path, fann_type *in, unsigned n)
{
    FILE *f = fopen(path, "r");
    unsigned rows = 0, n_in = 0, n_out = 0;
    int rc = -1;
    if (!f) {
        fprintf(stderr, "fann_inproc: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (fscanf(f, "%u %u %u", &rows, &n_in, &n_out) != 3 || rows == 0 || n_in != n) {
        fprintf(stderr, "fann_inproc: %s is not a FANN data file of %u inputs\n", path, n);
        goto out;
    }
    for (unsigned i = 0; i < n; i++) {
        double v;
        if (fscanf(f, "%lf", &v) != 1 || !isfinite(v)) {
            fprintf(stderr, "fann_inproc: %s: cannot read input %u of the first row\n", path, i);
            goto out;
        }
        in[i] = (fann_type)v;
    }
    rc = 0;
out:
    fclose(f);
    return rc;
}

/* Fills in[0..n) from a JSON array of exactly n numbers. 0 or -1. */
static int input_from_json(const char *text, fann_type *in, unsigned n)
{
    const char *p = text;
    unsigned i = 0;
    while (*p == ' ')
        p++;
    if (*p++ != '[')
        goto bad;
    for (;;) {
        char *end = NULL;
        double v = strtod(p, &end);
        if (end == p || !isfinite(v) || i == n)
            goto bad;
        in[i++] = (fann_type)v;
        p = end;
        while (*p == ' ')
            p++;
        if (*p == ']')
            break;
        if (*p++ != ',')
            goto bad;
    }
    if (i == n)
        return 0;
bad:
    fprintf(stderr, "fann_inproc: --input must be a JSON array of %u numbers\n", n);
    return -1;
}

static int parse_seconds(const char *s, double *out)
{
    char *end = NULL;
    double v = strtod(s, &end);
    if (!s[0] || *end || !(v >= 0 && v <= 86400))
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    const char *net = NULL, *data = NULL, *input = NULL;
    double duration = 5, warmup = 0.5;
    struct fann *ann = NULL;
    fann_type *in = NULL;
    fann_type *out = NULL;
    int code = 2;
    for (int i = 1; i < argc; i++) {
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--data") == 0 && val)
            data = argv[++i];
        else if (strcmp(argv[i], "--input") == 0 && val)
            input = argv[++i];
        else if (strcmp(argv[i], "--duration") == 0 && val && parse_seconds(val, &duration) == 0)
            i++;
        else if (strcmp(argv[i], "--warmup") == 0 && val && parse_seconds(val, &warmup) == 0)
            i++;
        else if (!net && argv[i][0] != '-')
            net = argv[i];
        else
            goto usage;
    }
    if (!net || !data == !input || duration <= 0)
        goto usage;
    code = 1;
    if (!(ann = fann_create_from_file(net))) {
        fprintf(stderr, "fann_inproc: cannot load %s\n", net);
        goto out;
    }
    unsigned n_in = fann_get_num_input(ann), n_out = fann_get_num_output(ann);
    if (!(in = calloc(n_in, sizeof(*in))))
        goto out;
    if ((data ? input_from_data(data, in, n_in) : input_from_json(input, in, n_in)) != 0)
        goto out;

    unsigned long long runs = 0;
    double t = now_s(), warm_end = t + warmup;
    while (now_s() < warm_end)
        for (int k = 0; k < CLOCK_EVERY; k++)
            out = fann_run(ann, in);
    double cpu0 = cpu_now_s(), t0 = now_s(), end = t0 + duration;
    do {
        for (int k = 0; k < CLOCK_EVERY; k++)
            out = fann_run(ann, in);
        runs += CLOCK_EVERY;
        t = now_s();
    } while (t < end);
    double secs = t - t0, cpu = cpu_now_s() - cpu0;

    printf("{\"net\": \"%s\", \"inputs\": %u, \"outputs\": %u, \"warmup_s\": %g, \"runs\": %llu, "
           "\"seconds\": %.6f, \"runs_per_s\": %.1f, \"ns_per_run\": %.1f, \"cpu_s\": %.3f, "
           "\"output\": [",
           net, n_in, n_out, warmup, runs, secs, (double)runs / secs, secs * 1e9 / (double)runs,
           cpu);
    for (unsigned i = 0; out && i < n_out; i++)
        printf("%s%.9g", i ? ", " : "", (double)out[i]);
    printf("]}\n");
    code = 0;
    goto out;
usage:
    fprintf(stderr, "usage: %s NET (--data FILE | --input JSON) [--duration S] [--warmup S]\n",
            argc > 0 ? argv[0] : "ef-bench-fann-inproc");
out:
    free(in);
    if (ann)
        fann_destroy(ann);
    return code;
}
