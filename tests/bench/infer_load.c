/*
 * infer_load.c - a load generator for edgefleet-agent's local inference
 * endpoint (agent/serve.h): N connections to its Unix socket, each keeping W
 * requests in flight, the same input vector in every request.
 *
 * usage: ef-bench-infer-load --socket PATH (--data FILE | --input JSON)
 *            [--connections N] [--window W] [--duration S] [--warmup S]
 *            [--start-on-usr1] [--stop-on-usr1] [--expect A[,B]]
 *            [--timeline-ms MS] [--drain-ms MS]
 *
 * The request is {"input":[...]} with the first row of a FANN data file
 * (--data: a "rows n_in n_out" line, then the rows) or the JSON array given
 * (--input). Each answer's latency runs from the moment its request was
 * handed to write() to the moment its answer line was read; answers on one
 * connection come in request order (serve.h), so a FIFO of send times per
 * connection pairs them.
 *
 * Phases: connect; with --start-on-usr1 print "infer_load: ready" on stderr
 * and wait for SIGUSR1; send for --warmup seconds without recording
 * (answers to requests sent during the warm-up are never counted); measure
 * until --duration seconds have passed (0: no limit), SIGUSR1 with
 * --stop-on-usr1 (the next SIGUSR1 when the start waited for one), or
 * SIGINT/SIGTERM; then stop sending and wait up to --drain-ms for the
 * answers still in flight (they count for latency and failures, not for
 * requests/s; those never answered are "lost"). SIGUSR2 marks a moment (the
 * bench script sends it just before it reassigns the model): stats are then
 * also given for the answers before and after the mark.
 *
 * Failed answers: an answer with an "error" member (counted by code), a
 * line that is not a JSON object with "output" and "model", and an
 * unexpected model. The expected models are A then B (--expect, or else the
 * first model seen and the first other one): on each connection the answers
 * may come from A, then from B, with at most one switch A -> B; an answer
 * from any other model, or from A after that connection saw B (a rollback),
 * is unexpected. Every switch is listed with its time.
 *
 * Prints one JSON object on stdout: requests/s, latency percentiles
 * (log-linear histogram, within 1.6 %; max exact), failures, answers per
 * model, the switches, before/after-mark stats, the load generator's own CPU
 * time, and a timeline of --timeline-ms buckets (answers, failed, max
 * latency, answers per model) by the time each answer was read. Exit status
 * 0 when the run completed (whatever it measured), 1 when it could not run,
 * 2 for bad arguments. Part of the benchmarks, never installed.
 */
#include <jansson.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNECTIONS 1024
#define MAX_WINDOW      4096
#define MAX_MODELS      16         /* distinct model ids tracked; more count as "other" */
#define MAX_CODES       16         /* distinct error codes tracked */
#define MAX_SWITCHES    256        /* switches listed in the output (all are counted) */
#define MAX_ANSWER      (1u << 20) /* longest answer line accepted, bytes */
#define READ_CHUNK      65536      /* bytes asked of each read */
#define POLL_MS         5          /* longest sleep between clock checks */
#define NS_PER_S        1000000000ull

/* Log-linear histogram of latencies in ns: exact below 128 ns, then 64
 * sub-buckets per power of two, so a bucket is at most 1/64 wide. */
#define HIST_SUB     64
#define HIST_BUCKETS (2 * HIST_SUB + 57 * HIST_SUB)

struct histogram {
    uint64_t count;                /* samples */
    uint64_t max_ns;               /* exact */
    double sum_ns;                 /* for the mean */
    uint64_t bucket[HIST_BUCKETS]; /* samples per bucket */
};

/* One bucket of the timeline, by the time the answers were read. */
struct tick {
    uint64_t answers;
    uint64_t failed;
    uint64_t max_ns;                    /* longest latency answered in it */
    uint64_t per_model[MAX_MODELS + 1]; /* answers by model index; the last: other */
};

struct conn {
    int fd;            /* -1 once closed */
    uint64_t *sent_ns; /* FIFO of send times of the requests in flight, window long */
    size_t head;       /* oldest in flight */
    size_t inflight;   /* requests written (or queued to be) and not answered */
    char *out;         /* bytes of requests not yet written */
    size_t out_len;    /* bytes pending in out */
    size_t out_off;    /* bytes of out already written */
    char *in;          /* answer bytes read, not yet a whole line */
    size_t in_len;     /* bytes in in */
    size_t in_cap;     /* size of in */
    int model;         /* index of the model of its last answer, -1 before any */
    bool saw_b;        /* it has been answered by model B */
};

struct options {
    const char *socket_path;
    const char *data_path;
    const char *input_json;
    unsigned connections; /* default 1 */
    unsigned window;      /* requests in flight per connection, default 1 */
    double duration_s;    /* of the measurement; 0 = until a signal */
    double warmup_s;      /* not recorded, before the measurement */
    bool start_on_usr1;
    bool stop_on_usr1;
    const char *expect;   /* "A" or "A,B", or NULL */
    unsigned timeline_ms; /* width of a timeline bucket, default 100 */
    unsigned drain_ms;    /* wait for answers in flight after the stop, default 2000 */
};

struct load {
    struct options opt;
    char *request;             /* one request line, newline included */
    size_t request_len;        /* its bytes */
    size_t input_size;         /* numbers in the input vector */
    struct conn *conns;        /* opt.connections of them */
    struct pollfd *pfds;       /* one per connection */
    bool recording;            /* the measurement has started */
    bool sending;              /* new requests are sent */
    uint64_t t0_ns;            /* start of the measurement (monotonic) */
    uint64_t stop_ns;          /* end of the measurement, 0 while it runs */
    uint64_t mark_ns;          /* SIGUSR2, 0 when none */
    uint64_t sent;             /* requests sent during the measurement */
    uint64_t answered_in_time; /* answers read before stop_ns */
    uint64_t answered;         /* answers to measured requests, drain included */
    uint64_t failed;           /* of which failed (error, bad answer or unexpected model) */
    uint64_t bad_answers;      /* not a JSON object with output and model */
    uint64_t unexpected;       /* answers from an unexpected model */
    uint64_t lost;             /* measured requests never answered */
    uint64_t switch_count;
    char *models[MAX_MODELS]; /* model ids seen, by index */
    size_t model_count;
    uint64_t model_answers[MAX_MODELS + 1]; /* the last: other */
    int model_a, model_b;                   /* expected model indexes, -1 unknown */
    char *codes[MAX_CODES];                 /* error codes seen */
    uint64_t code_count[MAX_CODES + 1];     /* the last: other */
    size_t codes_used;
    json_t *switches; /* array of the first MAX_SWITCHES switches */
    struct histogram all, before_mark, after_mark;
    struct tick *ticks;     /* the timeline */
    size_t tick_count;      /* buckets in use */
    size_t tick_cap;        /* buckets allocated */
    struct rusage ru0, ru1; /* the generator's CPU at start and stop */
};

/* The signal flags: the only state outside struct load. */
static volatile sig_atomic_t usr1_count, usr2_seen, term_seen;

static void on_signal(int sig)
{
    if (sig == SIGUSR1)
        usr1_count++;
    else if (sig == SIGUSR2)
        usr2_seen = 1;
    else
        term_seen = 1;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

/* ---- histogram ---------------------------------------------------------- */

static size_t hist_index(uint64_t v)
{
    if (v < 2 * HIST_SUB)
        return (size_t)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - 6; /* v >> shift is in [64, 127] */
    return 2 * HIST_SUB + (size_t)(shift - 1) * HIST_SUB + (size_t)((v >> shift) - HIST_SUB);
}

/* The middle of bucket i, in ns. */
static double hist_value(size_t i)
{
    if (i < 2 * HIST_SUB)
        return (double)i;
    size_t shift = (i - 2 * HIST_SUB) / HIST_SUB + 1;
    uint64_t low = ((uint64_t)((i - 2 * HIST_SUB) % HIST_SUB) + HIST_SUB) << shift;
    return (double)low + (double)(1ull << shift) / 2.0;
}

static void hist_add(struct histogram *h, uint64_t v)
{
    h->count++;
    h->sum_ns += (double)v;
    if (v > h->max_ns)
        h->max_ns = v;
    h->bucket[hist_index(v)]++;
}

/* The q-quantile in ns (nearest rank), the exact max for q = 1, 0 when empty. */
static double hist_quantile(const struct histogram *h, double q)
{
    if (h->count == 0)
        return 0;
    if (q >= 1)
        return (double)h->max_ns;
    uint64_t rank = (uint64_t)ceil(q * (double)h->count), seen = 0;
    if (rank == 0)
        rank = 1;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen >= rank) {
            double v = hist_value(i);
            return v > (double)h->max_ns ? (double)h->max_ns : v;
        }
    }
    return (double)h->max_ns;
}

static json_t *us(double ns)
{
    return json_real(round(ns / 100.0) / 10.0);
}

/* {"answers", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "mean_us"}: new. */
static json_t *hist_json(const struct histogram *h)
{
    return json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:o}", "answers", (json_int_t)h->count,
                     "p50_us", us(hist_quantile(h, 0.50)), "p90_us", us(hist_quantile(h, 0.90)),
                     "p99_us", us(hist_quantile(h, 0.99)), "p999_us", us(hist_quantile(h, 0.999)),
                     "max_us", us((double)h->max_ns), "mean_us",
                     us(h->count ? h->sum_ns / (double)h->count : 0));
}

/* ---- the request --------------------------------------------------------- */

/* Reads the first row's inputs of a FANN data file into a JSON array text. */
static int input_from_data(const char *path, json_t **out)
{
    FILE *f = fopen(path, "r");
    unsigned rows = 0, n_in = 0, n_out = 0;
    json_t *arr = NULL;
    int rc = -1;
    *out = NULL;
    if (!f) {
        fprintf(stderr, "infer_load: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (fscanf(f, "%u %u %u", &rows, &n_in, &n_out) != 3 || rows == 0 || n_in == 0 ||
        n_in > 1000000) {
        fprintf(stderr, "infer_load: %s is not a FANN data file\n", path);
        goto out;
    }
    if (!(arr = json_array()))
        goto out;
    for (unsigned i = 0; i < n_in; i++) {
        double v;
        if (fscanf(f, "%lf", &v) != 1 || !isfinite(v) || json_array_append_new(arr, json_real(v))) {
            fprintf(stderr, "infer_load: %s: cannot read input %u of the first row\n", path, i);
            goto out;
        }
    }
    *out = arr;
    arr = NULL;
    rc = 0;
out:
    json_decref(arr);
    fclose(f);
    return rc;
}

/* Builds l->request from --data or --input. */
static int build_request(struct load *l)
{
    json_t *input = NULL, *req = NULL;
    char *text = NULL;
    int rc = -1;
    if (l->opt.data_path) {
        if (input_from_data(l->opt.data_path, &input) != 0)
            goto out;
    } else {
        json_error_t err;
        input = json_loads(l->opt.input_json, 0, &err);
        bool numbers = json_is_array(input) && json_array_size(input) > 0;
        for (size_t i = 0; numbers && i < json_array_size(input); i++)
            numbers = json_is_number(json_array_get(input, i));
        if (!numbers) {
            fprintf(stderr, "infer_load: --input must be a JSON array of numbers\n");
            goto out;
        }
    }
    l->input_size = json_array_size(input);
    if (!(req = json_pack("{s:O}", "input", input)) ||
        !(text = json_dumps(req, JSON_COMPACT | JSON_REAL_PRECISION(9))))
        goto out;
    l->request_len = strlen(text) + 1;
    if (!(l->request = malloc(l->request_len + 1)))
        goto out;
    memcpy(l->request, text, l->request_len - 1);
    l->request[l->request_len - 1] = '\n';
    l->request[l->request_len] = '\0';
    rc = 0;
out:
    free(text);
    json_decref(req);
    json_decref(input);
    return rc;
}

/* ---- connections --------------------------------------------------------- */

static int conn_open(struct load *l, struct conn *c)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    size_t n = strlen(l->opt.socket_path);
    c->fd = -1;
    c->model = -1;
    if (n >= sizeof(addr.sun_path)) {
        fprintf(stderr, "infer_load: socket path too long\n");
        return -1;
    }
    memcpy(addr.sun_path, l->opt.socket_path, n + 1);
    c->sent_ns = calloc(l->opt.window, sizeof(*c->sent_ns));
    c->out = malloc(l->request_len * l->opt.window);
    c->in_cap = READ_CHUNK;
    c->in = malloc(c->in_cap);
    if (!c->sent_ns || !c->out || !c->in)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
        fprintf(stderr, "infer_load: cannot connect to %s: %s\n", l->opt.socket_path,
                strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    c->fd = fd;
    return 0;
}

/* Closes c; why (NULL at the normal end) is reported on stderr. */
static void conn_close(struct load *l, struct conn *c, const char *why)
{
    if (c->fd < 0)
        return;
    if (why || c->inflight)
        fprintf(stderr, "infer_load: connection %zu closed: %s (%zu requests in flight)\n",
                (size_t)(c - l->conns), why ? why : "end of the run", c->inflight);
    /* Requests of the measurement that will never be answered. */
    for (size_t k = 0; k < c->inflight; k++)
        if (l->recording && c->sent_ns[(c->head + k) % l->opt.window] >= l->t0_ns)
            l->lost++;
    c->inflight = 0;
    close(c->fd);
    c->fd = -1;
}

/* Writes what is pending; 0, or -1 when the connection broke. */
static int conn_flush(struct load *l, struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n <= 0) {
            conn_close(l, c, strerror(errno));
            return -1;
        }
        c->out_off += (size_t)n;
    }
    c->out_off = c->out_len = 0;
    return 0;
}

/* Tops c up to the window: the new requests go out in one write. */
static void conn_fill(struct load *l, struct conn *c, uint64_t t)
{
    size_t room = l->opt.window - c->inflight;
    if (c->fd < 0 || !l->sending || room == 0 || c->out_len > 0)
        return;
    for (size_t k = 0; k < room; k++) {
        memcpy(c->out + c->out_len, l->request, l->request_len);
        c->out_len += l->request_len;
        c->sent_ns[(c->head + c->inflight) % l->opt.window] = t;
        c->inflight++;
        if (l->recording && t >= l->t0_ns)
            l->sent++;
    }
    conn_flush(l, c);
}

/* ---- answers ------------------------------------------------------------- */

static int model_index(struct load *l, const char *id)
{
    for (size_t i = 0; i < l->model_count; i++)
        if (strcmp(l->models[i], id) == 0)
            return (int)i;
    if (l->model_count == MAX_MODELS || !(l->models[l->model_count] = strdup(id)))
        return MAX_MODELS; /* "other" */
    return (int)l->model_count++;
}

static void count_code(struct load *l, const char *code)
{
    size_t i;
    for (i = 0; i < l->codes_used; i++)
        if (strcmp(l->codes[i], code) == 0)
            break;
    if (i == l->codes_used && i < MAX_CODES && (l->codes[i] = strdup(code)))
        l->codes_used++;
    l->code_count[i < l->codes_used ? i : MAX_CODES]++;
}

static struct tick *tick_at(struct load *l, uint64_t t)
{
    size_t i = (size_t)((t - l->t0_ns) / ((uint64_t)l->opt.timeline_ms * 1000000ull));
    if (i >= l->tick_cap) {
        size_t cap = l->tick_cap ? l->tick_cap : 64;
        while (cap <= i)
            cap *= 2;
        struct tick *grown = realloc(l->ticks, cap * sizeof(*grown));
        if (!grown)
            return NULL;
        memset(grown + l->tick_cap, 0, (cap - l->tick_cap) * sizeof(*grown));
        l->ticks = grown;
        l->tick_cap = cap;
    }
    if (i >= l->tick_count)
        l->tick_count = i + 1;
    return &l->ticks[i];
}

/* Whether an answer from model m on c is what a swap A -> B allows; records
 * a switch. */
static bool model_expected(struct load *l, struct conn *c, int m, uint64_t t)
{
    bool ok;
    if (l->model_a < 0)
        l->model_a = m;
    else if (m != l->model_a && l->model_b < 0 && !l->opt.expect)
        l->model_b = m;
    if (m == MAX_MODELS)
        ok = false;
    else if (m == l->model_a)
        ok = !c->saw_b;
    else
        ok = m == l->model_b;
    if (c->model >= 0 && m != c->model) {
        l->switch_count++;
        if (json_array_size(l->switches) < MAX_SWITCHES)
            json_array_append_new(l->switches,
                                  json_pack("{s:I, s:f, s:s, s:s}", "connection",
                                            (json_int_t)(c - l->conns), "t_ms",
                                            (double)(int64_t)(t - l->t0_ns) / 1e6, "from",
                                            c->model < MAX_MODELS ? l->models[c->model] : "other",
                                            "to", m < MAX_MODELS ? l->models[m] : "other"));
    }
    if (m == l->model_b)
        c->saw_b = true;
    c->model = m;
    return ok;
}

/* One answer line of c, the answer to its oldest request in flight. */
static void handle_answer(struct load *l, struct conn *c, const char *line, size_t len, uint64_t t)
{
    json_t *ans = NULL;
    if (c->inflight == 0) {
        fprintf(stderr, "infer_load: an answer nobody asked for\n");
        l->bad_answers++;
        l->failed++;
        return;
    }
    uint64_t sent = c->sent_ns[c->head];
    c->head = (c->head + 1) % l->opt.window;
    c->inflight--;
    if (!l->recording || sent < l->t0_ns)
        return; /* a warm-up request */
    uint64_t lat = t - sent;
    bool failed = false;
    int m = -1;
    ans = json_loadb(line, len, 0, NULL);
    json_t *err = json_object_get(ans, "error");
    const char *model = json_string_value(json_object_get(ans, "model"));
    if (err) {
        const char *code = json_string_value(json_object_get(err, "code"));
        count_code(l, code ? code : "(no code)");
        failed = true;
    } else if (!json_is_object(ans) || !model || !json_is_array(json_object_get(ans, "output"))) {
        l->bad_answers++;
        failed = true;
    } else {
        m = model_index(l, model);
        l->model_answers[m]++;
        if (!model_expected(l, c, m, t)) {
            l->unexpected++;
            failed = true;
        }
    }
    l->answered++;
    if (!l->stop_ns || t <= l->stop_ns)
        l->answered_in_time++;
    if (failed)
        l->failed++;
    hist_add(&l->all, lat);
    /* Until the mark everything is "before"; after it, by send time. */
    hist_add(l->mark_ns && sent >= l->mark_ns ? &l->after_mark : &l->before_mark, lat);
    struct tick *k = tick_at(l, t);
    if (k) {
        k->answers++;
        k->failed += failed;
        if (lat > k->max_ns)
            k->max_ns = lat;
        if (m >= 0)
            k->per_model[m]++;
    }
    json_decref(ans);
}

/* Reads what c has and answers every whole line. */
static void conn_read(struct load *l, struct conn *c)
{
    for (;;) {
        if (c->in_cap - c->in_len < READ_CHUNK / 4) {
            if (c->in_cap >= MAX_ANSWER) {
                conn_close(l, c, "answer line too long");
                return;
            }
            char *grown = realloc(c->in, c->in_cap * 2);
            if (!grown) {
                conn_close(l, c, "out of memory");
                return;
            }
            c->in = grown;
            c->in_cap *= 2;
        }
        size_t asked = c->in_cap - c->in_len;
        ssize_t n = read(c->fd, c->in + c->in_len, asked);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            conn_close(l, c, n == 0 ? "closed by the agent" : strerror(errno));
            return;
        }
        uint64_t t = now_ns();
        size_t start = 0;
        c->in_len += (size_t)n;
        for (;;) {
            char *nl = memchr(c->in + start, '\n', c->in_len - start);
            if (!nl)
                break;
            handle_answer(l, c, c->in + start, (size_t)(nl - (c->in + start)), t);
            start = (size_t)(nl - c->in) + 1;
        }
        memmove(c->in, c->in + start, c->in_len - start);
        c->in_len -= start;
        if ((size_t)n < asked)
            return; /* the socket is drained */
    }
}

/* ---- the run -------------------------------------------------------------- */

/* One round of poll over every connection. */
static void poll_once(struct load *l)
{
    unsigned n = l->opt.connections;
    uint64_t t = now_ns();
    for (unsigned i = 0; i < n; i++) {
        struct conn *c = &l->conns[i];
        conn_fill(l, c, t);
        l->pfds[i].fd = c->fd;
        l->pfds[i].events = (short)(POLLIN | (c->out_len > 0 ? POLLOUT : 0));
        l->pfds[i].revents = 0;
    }
    int ready = poll(l->pfds, n, POLL_MS);
    if (ready <= 0)
        return;
    for (unsigned i = 0; i < n; i++) {
        struct conn *c = &l->conns[i];
        if (c->fd < 0 || !l->pfds[i].revents)
            continue;
        if (l->pfds[i].revents & POLLOUT)
            conn_flush(l, c);
        if (c->fd >= 0 && (l->pfds[i].revents & (POLLIN | POLLHUP | POLLERR)))
            conn_read(l, c);
    }
}

static size_t inflight_total(const struct load *l)
{
    size_t sum = 0;
    for (unsigned i = 0; i < l->opt.connections; i++)
        sum += l->conns[i].fd >= 0 ? l->conns[i].inflight : 0;
    return sum;
}

static unsigned open_total(const struct load *l)
{
    unsigned sum = 0;
    for (unsigned i = 0; i < l->opt.connections; i++)
        sum += l->conns[i].fd >= 0;
    return sum;
}

static int run(struct load *l)
{
    unsigned usr1_for_stop = l->opt.start_on_usr1 ? 2 : 1;
    if (l->opt.start_on_usr1) {
        fprintf(stderr, "infer_load: ready\n");
        while (usr1_count < 1 && !term_seen)
            poll(NULL, 0, POLL_MS);
        if (term_seen)
            return -1;
    }
    l->sending = true;
    uint64_t warm_end = now_ns() + (uint64_t)(l->opt.warmup_s * 1e9);
    while (now_ns() < warm_end && !term_seen && open_total(l) > 0)
        poll_once(l);
    l->t0_ns = now_ns();
    getrusage(RUSAGE_SELF, &l->ru0);
    l->recording = true;
    uint64_t end = l->opt.duration_s > 0 ? l->t0_ns + (uint64_t)(l->opt.duration_s * 1e9) : 0;
    for (;;) {
        uint64_t t = now_ns();
        if (usr2_seen && !l->mark_ns)
            l->mark_ns = t;
        if ((end && t >= end) || term_seen ||
            (l->opt.stop_on_usr1 && (unsigned)usr1_count >= usr1_for_stop) || open_total(l) == 0)
            break;
        poll_once(l);
    }
    l->stop_ns = now_ns();
    getrusage(RUSAGE_SELF, &l->ru1);
    l->sending = false;
    uint64_t drain_end = l->stop_ns + (uint64_t)l->opt.drain_ms * 1000000ull;
    while (inflight_total(l) > 0 && now_ns() < drain_end)
        poll_once(l);
    for (unsigned i = 0; i < l->opt.connections; i++)
        conn_close(l, &l->conns[i], NULL);
    return 0;
}

static double cpu_s(const struct timeval *a, const struct timeval *b)
{
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_usec - a->tv_usec) / 1e6;
}

static void report(struct load *l)
{
    double secs = (double)(l->stop_ns - l->t0_ns) / 1e9;
    json_t *models = json_object(), *codes = json_object(), *timeline = json_array();
    for (size_t i = 0; i < l->model_count; i++)
        json_object_set_new(models, l->models[i], json_integer((json_int_t)l->model_answers[i]));
    if (l->model_answers[MAX_MODELS])
        json_object_set_new(models, "other",
                            json_integer((json_int_t)l->model_answers[MAX_MODELS]));
    for (size_t i = 0; i < l->codes_used; i++)
        json_object_set_new(codes, l->codes[i], json_integer((json_int_t)l->code_count[i]));
    if (l->code_count[MAX_CODES])
        json_object_set_new(codes, "other", json_integer((json_int_t)l->code_count[MAX_CODES]));
    for (size_t i = 0; i < l->tick_count; i++) {
        const struct tick *k = &l->ticks[i];
        json_t *per = json_object();
        for (size_t m = 0; m < l->model_count; m++)
            if (k->per_model[m])
                json_object_set_new(per, l->models[m], json_integer((json_int_t)k->per_model[m]));
        json_array_append_new(timeline,
                              json_pack("[I, I, I, o, o]", (json_int_t)(i * l->opt.timeline_ms),
                                        (json_int_t)k->answers, (json_int_t)k->failed,
                                        us((double)k->max_ns), per));
    }
    double user = cpu_s(&l->ru0.ru_utime, &l->ru1.ru_utime);
    double sys = cpu_s(&l->ru0.ru_stime, &l->ru1.ru_stime);
    json_t *out = json_pack(
        "{s:s, s:I, s:I, s:I, s:f, s:f, s:I, s:I, s:I, s:f, s:o, s:I, s:{s:I, s:o, s:I, s:I},"
        " s:o, s:s?, s:s?, s:I, s:o, s:{s:f, s:f, s:f}, s:I, s:o}",
        "socket", l->opt.socket_path, "connections", (json_int_t)l->opt.connections, "window",
        (json_int_t)l->opt.window, "input_size", (json_int_t)l->input_size, "warmup_s",
        l->opt.warmup_s, "seconds", secs, "sent", (json_int_t)l->sent, "answered",
        (json_int_t)l->answered, "answered_in_time", (json_int_t)l->answered_in_time,
        "requests_per_s", secs > 0 ? (double)l->answered_in_time / secs : 0.0, "latency",
        hist_json(&l->all), "failed", (json_int_t)l->failed, "failures", "lost",
        (json_int_t)l->lost, "errors", codes, "bad_answers", (json_int_t)l->bad_answers,
        "unexpected_model", (json_int_t)l->unexpected, "models", models, "model_a",
        l->model_a >= 0 && l->model_a < MAX_MODELS ? l->models[l->model_a] : NULL, "model_b",
        l->model_b >= 0 && l->model_b < MAX_MODELS ? l->models[l->model_b] : NULL, "switch_count",
        (json_int_t)l->switch_count, "switches", json_incref(l->switches), "cpu", "user_s", user,
        "system_s", sys, "us_per_answer",
        l->answered_in_time ? (user + sys) * 1e6 / (double)l->answered_in_time : 0.0, "timeline_ms",
        (json_int_t)l->opt.timeline_ms, "timeline", timeline);
    if (out && l->mark_ns) {
        json_object_set_new(out, "mark_ms", json_real((double)(l->mark_ns - l->t0_ns) / 1e6));
        json_object_set_new(out, "before_mark", hist_json(&l->before_mark));
        json_object_set_new(out, "after_mark", hist_json(&l->after_mark));
    }
    if (out) {
        json_dumpf(out, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
        fputc('\n', stdout);
    } else {
        fprintf(stderr, "infer_load: cannot build the report\n");
    }
    json_decref(out);
}

/* ---- arguments ------------------------------------------------------------ */

static const char usage[] =
    "usage: ef-bench-infer-load --socket PATH (--data FILE | --input JSON)\n"
    "           [--connections N] [--window W] [--duration S] [--warmup S]\n"
    "           [--start-on-usr1] [--stop-on-usr1] [--expect A[,B]]\n"
    "           [--timeline-ms MS] [--drain-ms MS]\n"
    "Sends {\"input\": [...]} requests to edgefleet-agent's inference socket over N\n"
    "connections with W in flight on each; prints requests/s, latency, failures\n"
    "and a timeline of the answering model as JSON (see infer_load.c).\n";

static int parse_num(const char *s, double min, double max, double *out)
{
    char *end = NULL;
    double v = strtod(s, &end);
    if (!s[0] || *end || !(v >= min && v <= max))
        return -1;
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, struct options *o)
{
    double v;
    o->connections = 1;
    o->window = 1;
    o->timeline_ms = 100;
    o->drain_ms = 2000;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes = true;
        if (strcmp(a, "--start-on-usr1") == 0)
            o->start_on_usr1 = true, takes = false;
        else if (strcmp(a, "--stop-on-usr1") == 0)
            o->stop_on_usr1 = true, takes = false;
        else if (!val)
            return -1;
        else if (strcmp(a, "--socket") == 0)
            o->socket_path = val;
        else if (strcmp(a, "--data") == 0)
            o->data_path = val;
        else if (strcmp(a, "--input") == 0)
            o->input_json = val;
        else if (strcmp(a, "--expect") == 0)
            o->expect = val;
        else if (strcmp(a, "--connections") == 0 && parse_num(val, 1, MAX_CONNECTIONS, &v) == 0)
            o->connections = (unsigned)v;
        else if (strcmp(a, "--window") == 0 && parse_num(val, 1, MAX_WINDOW, &v) == 0)
            o->window = (unsigned)v;
        else if (strcmp(a, "--duration") == 0 && parse_num(val, 0, 86400, &v) == 0)
            o->duration_s = v;
        else if (strcmp(a, "--warmup") == 0 && parse_num(val, 0, 3600, &v) == 0)
            o->warmup_s = v;
        else if (strcmp(a, "--timeline-ms") == 0 && parse_num(val, 1, 60000, &v) == 0)
            o->timeline_ms = (unsigned)v;
        else if (strcmp(a, "--drain-ms") == 0 && parse_num(val, 0, 600000, &v) == 0)
            o->drain_ms = (unsigned)v;
        else
            return -1;
        if (takes)
            i++;
    }
    if (!o->socket_path || !o->data_path == !o->input_json)
        return -1;
    if (o->duration_s == 0 && !o->stop_on_usr1)
        fprintf(stderr, "infer_load: no --duration and no --stop-on-usr1: runs until SIGTERM\n");
    return 0;
}

/* Presets model A (and B) from --expect A[,B]. */
static int expect_models(struct load *l)
{
    char *copy = strdup(l->opt.expect), *comma = copy ? strchr(copy, ',') : NULL;
    int rc = -1;
    if (!copy)
        return -1;
    if (comma)
        *comma = '\0';
    if (!copy[0] || (comma && (!comma[1] || strchr(comma + 1, ','))))
        goto out;
    l->model_a = model_index(l, copy);
    if (comma)
        l->model_b = model_index(l, comma + 1);
    rc = 0;
out:
    free(copy);
    return rc;
}

int main(int argc, char **argv)
{
    struct load *l = calloc(1, sizeof(*l));
    struct sigaction sa;
    int code = 1;
    if (!l)
        return 1;
    l->model_a = l->model_b = -1;
    if (parse_args(argc, argv, &l->opt) != 0) {
        fputs(usage, stderr);
        code = 2;
        goto out;
    }
    if (l->opt.expect && expect_models(l) != 0) {
        fprintf(stderr, "infer_load: --expect takes MODEL@V or MODEL@V,MODEL@W\n");
        code = 2;
        goto out;
    }
    if (build_request(l) != 0)
        goto out;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal; /* no SA_RESTART: poll returns at once */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGUSR2, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    l->switches = json_array();
    l->conns = calloc(l->opt.connections, sizeof(*l->conns));
    l->pfds = calloc(l->opt.connections, sizeof(*l->pfds));
    if (!l->switches || !l->conns || !l->pfds)
        goto out;
    for (unsigned i = 0; i < l->opt.connections; i++)
        l->conns[i].fd = -1;
    for (unsigned i = 0; i < l->opt.connections; i++)
        if (conn_open(l, &l->conns[i]) != 0)
            goto out;
    if (run(l) != 0)
        goto out;
    report(l);
    code = 0;
out:
    if (l->conns) {
        for (unsigned i = 0; i < l->opt.connections; i++) {
            if (l->conns[i].fd >= 0)
                close(l->conns[i].fd);
            free(l->conns[i].sent_ns);
            free(l->conns[i].out);
            free(l->conns[i].in);
        }
    }
    for (size_t i = 0; i < l->model_count; i++)
        free(l->models[i]);
    for (size_t i = 0; i < l->codes_used; i++)
        free(l->codes[i]);
    json_decref(l->switches);
    free(l->conns);
    free(l->pfds);
    free(l->ticks);
    free(l->request);
    free(l);
    return code;
}
