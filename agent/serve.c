/*
 * serve.c - the local inference endpoint (protocol in serve.h): a Unix
 * socket listener on the agent's loop, one struct client per connection
 * that splits what it reads into lines and answers each in order, the
 * queue of inputs the shadow model runs on after the answers, and the
 * blocking `edgefleet-agent infer` client.
 */
#include "agent/serve.h"
#include "agent/metrics.h"
#include "agent/model.h"
#include "common/ef_error.h"
#include "common/json_util.h"
#include "common/log.h"
#include "common/reservoir.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define READ_CHUNK        65536      /* bytes asked of each read */
#define WRITE_PAUSE       (1u << 20) /* stop reading a client with this many answer bytes queued */
#define WRITE_RESUME      (1u << 18) /* and read again once its queue is below this */
#define LISTEN_BACKLOG    64
#define CLIENT_TIMEOUT_S  10          /* serve_client_infer: connect, send and answer */
#define CLIENT_MAX_ANSWER (16u << 20) /* serve_client_infer: largest answer line read */

/* A prediction made with an id, remembered for feedback. */
struct prediction {
    char *id;          /* malloc'd "ID\0LABEL\0" (LABEL empty without labels); NULL: free slot */
    size_t cls;        /* predicted class (argmax) */
    size_t n_out;      /* outputs of the model that predicted it */
    bool labelled;     /* the model had labels: the LABEL part is the predicted label */
    uint64_t gen;      /* bumped each time the slot is reused: a shadow job finds its own */
    char *shadow;      /* malloc'd "NAME@VERSION" of the shadow that scored it, or NULL */
    size_t shadow_cls; /* the shadow's predicted class (argmax), with shadow */
};

/* An input waiting for the shadow model; freed once run. */
struct shadow_job {
    struct shadow_job *next;
    struct prediction *p; /* its remembered prediction, or NULL without an id */
    uint64_t gen;         /* p->gen when queued */
    size_t decision;      /* production's winning class (single output: o >= 0.5) */
    size_t n_in;          /* values in in */
    double in[];
};

struct client;

struct serve {
    uv_loop_t *loop; /* borrowed */
    uv_pipe_t listener;
    struct serve_source source;               /* copied at start */
    struct metrics *metrics;                  /* borrowed; may be NULL */
    char *path;                               /* socket file, removed at stop */
    struct client *clients;                   /* open connections, a doubly linked list */
    size_t client_count;                      /* length of that list */
    size_t open_handles;                      /* listener + clients not yet closed; freed at 0 */
    bool stopping;                            /* serve_stop was called */
    size_t ring_next;                         /* next slot of ring to overwrite */
    struct prediction ring[SERVE_REMEMBERED]; /* the last predictions made with an id */
    uv_check_t shadow_check;                  /* runs the queued shadow jobs */
    struct shadow_job *jobs, **jobs_tail;     /* queued for the shadow, oldest first */
    size_t job_count;                         /* length of that queue */
    double shadow_share;                      /* share of inferences shadowed, [0, 1] */
    struct ef_rng rng;                        /* draws which inferences are shadowed */
};

struct client {
    uv_pipe_t pipe;         /* pipe.data is the client */
    uv_shutdown_t shutdown; /* used once, when the client is finished */
    struct serve *s;
    struct client *prev, *next;
    char *buf;      /* bytes read and not yet consumed as lines */
    size_t len;     /* bytes in buf */
    size_t cap;     /* size of buf */
    size_t scanned; /* prefix of buf known to hold no newline */
    bool paused;    /* reading stopped while its answers drain */
    bool finished;  /* reading stopped for good; closes once answers are written */
};

/* One answer line on its way out; freed in the write callback. */
struct answer {
    uv_write_t req;
    struct client *c;
    size_t len;
    char data[]; /* len bytes, the last a newline */
};

static void client_read_start(struct client *c);

static void serve_release(struct serve *s)
{
    while (s->jobs) {
        struct shadow_job *j = s->jobs;
        s->jobs = j->next;
        free(j);
    }
    for (size_t i = 0; i < SERVE_REMEMBERED; i++) {
        free(s->ring[i].id);
        free(s->ring[i].shadow);
    }
    free(s->path);
    free(s);
}

static void handle_closed(struct serve *s)
{
    if (--s->open_handles == 0)
        serve_release(s);
}

static void on_client_closed(uv_handle_t *h)
{
    struct client *c = h->data;
    struct serve *s = c->s;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->client_count--;
    free(c->buf);
    free(c);
    handle_closed(s);
}

static void client_close(struct client *c)
{
    uv_handle_t *h = (uv_handle_t *)&c->pipe;
    if (!uv_is_closing(h))
        uv_close(h, on_client_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    client_close(req->data);
}

/* Stops reading from c for good and closes it once the answers already
 * queued are written. */
static void client_finish(struct client *c)
{
    if (c->finished)
        return;
    c->finished = true;
    uv_read_stop((uv_stream_t *)&c->pipe);
    c->shutdown.data = c;
    if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->pipe, on_shutdown) != 0)
        client_close(c);
}

static void on_written(uv_write_t *req, int status)
{
    struct answer *a = req->data;
    struct client *c = a->c;
    free(a);
    if (status != 0) {
        if (status != UV_ECANCELED)
            client_close(c);
        return;
    }
    if (c->paused && !c->finished &&
        uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe) < WRITE_RESUME) {
        c->paused = false;
        client_read_start(c);
    }
}

/* Queues one answer line; takes (decrefs) answer. */
static void send_answer(struct client *c, json_t *answer)
{
    char *text = answer ? ef_json_dump(answer) : NULL;
    struct answer *a = NULL;
    json_decref(answer);
    if (uv_is_closing((uv_handle_t *)&c->pipe))
        goto out;
    if (!text) {
        text = strdup("{\"error\":{\"code\":\"out_of_memory\",\"message\":\"out of memory\"}}");
        if (!text) {
            client_close(c);
            goto out;
        }
    }
    size_t len = strlen(text);
    if (!(a = malloc(sizeof(*a) + len + 1))) {
        client_close(c);
        goto out;
    }
    a->c = c;
    a->len = len + 1;
    memcpy(a->data, text, len);
    a->data[len] = '\n';
    a->req.data = a;
    uv_buf_t buf = uv_buf_init(a->data, (unsigned)a->len);
    if (uv_write(&a->req, (uv_stream_t *)&c->pipe, &buf, 1, on_written) != 0) {
        /* The callback will not run: the answer is ours to free. */
        free(a);
        client_close(c);
    }
out:
    free(text);
}

static void reply_error(struct client *c, const char *id, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void reply_error(struct client *c, const char *id, const char *code, const char *fmt, ...)
{
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    json_t *answer =
        json_pack("{s:{s:s, s:s}, s:s*}", "error", "code", code, "message", message, "id", id);
    /* The message may quote the request (Jansson's parse errors do) or be
     * cut inside a character: when it is not valid UTF-8, the code alone
     * has to do. */
    if (!answer)
        answer = json_pack("{s:{s:s, s:s}, s:s*}", "error", "code", code, "message",
                           "(the details are not valid UTF-8)", "id", id);
    send_answer(c, answer);
}

/* Remembers a prediction made with an id for later feedback, overwriting
 * the oldest; returns it (borrowed), or NULL when out of memory (it is then
 * simply not remembered). */
static struct prediction *remember(struct serve *s, const char *id, size_t cls, size_t n_out,
                                   const char *label)
{
    struct prediction *p = &s->ring[s->ring_next];
    size_t id_len = strlen(id), label_len = label ? strlen(label) : 0;
    s->ring_next = (s->ring_next + 1) % SERVE_REMEMBERED;
    free(p->id);
    free(p->shadow);
    p->shadow = NULL;
    p->gen++;
    p->id = malloc(id_len + 1 + label_len + 1);
    if (!p->id)
        return NULL;
    memcpy(p->id, id, id_len + 1);
    memcpy(p->id + id_len + 1, label ? label : "", label_len + 1);
    p->cls = cls;
    p->n_out = n_out;
    p->labelled = label != NULL;
    return p;
}

/* The newest remembered prediction with this id, or NULL. */
static struct prediction *recall(struct serve *s, const char *id)
{
    for (size_t k = 1; k <= SERVE_REMEMBERED; k++) {
        struct prediction *p = &s->ring[(s->ring_next + SERVE_REMEMBERED - k) % SERVE_REMEMBERED];
        if (p->id && strcmp(p->id, id) == 0)
            return p;
    }
    return NULL;
}

/* The request's id: absent (NULL, 0) or a string of 1..SERVE_MAX_ID bytes. */
static int request_id(const json_t *req, const char *key, const char **id)
{
    const json_t *v = json_object_get(req, key);
    *id = NULL;
    if (!v)
        return 0;
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > SERVE_MAX_ID ||
        strlen(json_string_value(v)) != json_string_length(v))
        return EF_EINVAL;
    *id = json_string_value(v);
    return 0;
}

static void observe(struct serve *s, bool ok, double latency_ms)
{
    if (s->source.observe)
        s->source.observe(s->source.ctx, ok, latency_ms);
    if (s->metrics)
        metrics_observe(s->metrics, ok, latency_ms);
}

/* The winning class of an output for agreement: argmax, or for a single
 * output which side of 0.5 it is on. */
static size_t decision(const struct model *m, const double *out)
{
    if (m->manifest->output_size == 1)
        return out[0] >= 0.5;
    return model_argmax(m, out, NULL);
}

/* Runs the shadow model on one queued input and scores it. */
static void shadow_run(struct serve *s, const struct shadow_job *j)
{
    struct model *serving = s->source.shadow(s->source.ctx), *m = NULL;
    double *out = NULL;
    bool ok = false;
    if (!serving)
        return;
    m = model_ref(serving);
    size_t n_out = m->manifest->output_size;
    uint64_t t0 = uv_hrtime();
    if ((out = malloc(n_out * sizeof(*out))) && m->manifest->input_size == j->n_in &&
        model_run(m, j->in, j->n_in, out, n_out) == 0) {
        ok = true;
        for (size_t k = 0; ok && k < n_out; k++)
            ok = isfinite(out[k]);
    }
    double latency_ms = (double)(uv_hrtime() - t0) / 1e6;
    if (s->source.shadow_observe)
        s->source.shadow_observe(s->source.ctx, ok, latency_ms);
    if (s->metrics)
        metrics_shadow_observe(s->metrics, m->id, ok, ok && decision(m, out) == j->decision);
    /* Remembered with the prediction, unless its slot went to a newer one. */
    struct prediction *p = j->p;
    if (ok && p && p->gen == j->gen && p->id) {
        free(p->shadow);
        if ((p->shadow = strdup(m->id)))
            p->shadow_cls = model_argmax(m, out, NULL);
    }
    free(out);
    model_unref(m);
}

static void on_shadow_check(uv_check_t *h)
{
    struct serve *s = h->data;
    while (s->jobs) {
        struct shadow_job *j = s->jobs;
        s->jobs = j->next;
        s->job_count--;
        if (!s->stopping)
            shadow_run(s, j);
        free(j);
    }
    s->jobs_tail = &s->jobs;
    uv_check_stop(h);
}

/* Queues in for the shadow model when one runs and this inference is in
 * its share. p: the remembered prediction, or NULL. */
static void shadow_enqueue(struct serve *s, const double *in, size_t n_in, size_t decision_cls,
                           struct prediction *p)
{
    struct shadow_job *j = NULL;
    if (!s->source.shadow || s->shadow_share <= 0 || s->job_count >= SERVE_SHADOW_QUEUE ||
        (s->shadow_share < 1 && ef_rng_unit(&s->rng) >= s->shadow_share) ||
        !s->source.shadow(s->source.ctx))
        return;
    if (!(j = malloc(sizeof(*j) + n_in * sizeof(double))))
        return;
    j->next = NULL;
    j->p = p;
    j->gen = p ? p->gen : 0;
    j->decision = decision_cls;
    j->n_in = n_in;
    memcpy(j->in, in, n_in * sizeof(double));
    *s->jobs_tail = j;
    s->jobs_tail = &j->next;
    if (s->job_count++ == 0)
        uv_check_start(&s->shadow_check, on_shadow_check);
}

void serve_set_shadow_share(struct serve *s, double share)
{
    s->shadow_share = share > 1 ? 1 : share > 0 ? share : 0;
}

static void handle_infer(struct client *c, const json_t *req)
{
    static const char *const allowed[] = {"input", "id", NULL};
    struct serve *s = c->s;
    struct model *m = NULL;
    double *in = NULL, *out = NULL;
    const char *id = NULL, *unknown = NULL, *label = NULL;
    if (request_id(req, "id", &id) != 0) {
        reply_error(c, NULL, "bad_request", "id must be a string of 1 to %d bytes", SERVE_MAX_ID);
        goto out;
    }
    if (!ef_json_keys_allowed(req, allowed, &unknown)) {
        reply_error(c, id, "bad_request", "unknown key \"%s\"", unknown);
        goto out;
    }
    /* A reference for the whole request: observe() may swap the model out. */
    struct model *serving = s->source.serving(s->source.ctx);
    if (!serving) {
        reply_error(c, id, "no_model", "no model is serving on this device");
        goto out;
    }
    m = model_ref(serving);
    size_t n_in = m->manifest->input_size, n_out = m->manifest->output_size;
    if (ef_json_read_doubles(json_object_get(req, "input"), n_in, 0, &in, NULL) != 0) {
        reply_error(c, id, "bad_input", "input must be an array of %zu numbers", n_in);
        goto out;
    }
    if (!(out = malloc(n_out * sizeof(*out)))) {
        reply_error(c, id, "out_of_memory", "out of memory");
        goto out;
    }
    uint64_t t0 = uv_hrtime();
    int rc = model_run(m, in, n_in, out, n_out);
    uint64_t elapsed_ns = uv_hrtime() - t0;
    double latency_ms = (double)elapsed_ns / 1e6;
    if (rc == EF_EINVAL) {
        reply_error(c, id, "bad_input", "the %s backend refuses this input (out of its range)",
                    m->backend->name);
        goto out;
    }
    bool finite = rc == 0;
    for (size_t k = 0; finite && k < n_out; k++)
        finite = isfinite(out[k]);
    observe(s, finite, latency_ms);
    if (!finite) {
        reply_error(c, id, "inference_failed", "model %s %s", m->id,
                    rc ? "failed to run" : "gave a non-finite output");
        goto out;
    }
    size_t cls = model_argmax(m, out, &label);
    struct prediction *p = id ? remember(s, id, cls, n_out, label) : NULL;
    send_answer(c,
                json_pack("{s:o, s:I, s:s*, s:s, s:I, s:s*}", "output", ef_json_doubles(out, n_out),
                          "class", (json_int_t)cls, "label", label, "model", m->id, "latency_us",
                          (json_int_t)(elapsed_ns / 1000), "id", id));
    /* The answer is queued (libuv has most likely written it already):
     * what follows is the device's business, not the caller's. */
    if (s->metrics)
        metrics_observe_io(s->metrics, in, n_in, out, n_out);
    if (s->source.sample)
        s->source.sample(s->source.ctx, id, in, n_in);
    shadow_enqueue(s, in, n_in, decision(m, out), p);
out:
    model_unref(m);
    free(in);
    free(out);
}

static void handle_feedback(struct client *c, const json_t *req)
{
    static const char *const allowed[] = {"feedback", "label", NULL};
    struct serve *s = c->s;
    const char *id = NULL, *unknown = NULL;
    const json_t *label = json_object_get(req, "label");
    bool correct = false, have_truth = false;
    size_t truth = 0;
    if (request_id(req, "feedback", &id) != 0 || !id) {
        reply_error(c, NULL, "bad_request", "feedback must be the id of a prediction");
        return;
    }
    if (!ef_json_keys_allowed(req, allowed, &unknown)) {
        reply_error(c, id, "bad_request", "unknown key \"%s\"", unknown);
        return;
    }
    if (!json_is_string(label) && !json_is_integer(label)) {
        reply_error(c, id, "bad_request", "label must be a label or a class index");
        return;
    }
    struct prediction *p = recall(s, id);
    if (!p) {
        reply_error(c, id, "unknown_id",
                    "no prediction with this id is remembered (unknown, already labelled, or "
                    "older than the last %d)",
                    SERVE_REMEMBERED);
        return;
    }
    if (json_is_integer(label)) {
        json_int_t k = json_integer_value(label);
        if (k < 0 || (size_t)k >= p->n_out) {
            reply_error(c, id, "unknown_label", "class %lld is not in 0..%zu", (long long)k,
                        p->n_out - 1);
            return;
        }
        truth = (size_t)k;
        have_truth = true;
        correct = truth == p->cls;
    } else {
        /* Labels are checked against the model serving now when there is
         * one: versions of a model share their labels. */
        struct model *m = s->source.serving(s->source.ctx);
        size_t k = 0;
        const char *text = json_string_value(label);
        if (!p->labelled || (m && model_label_index(m, text, &k) != 0)) {
            reply_error(c, id, "unknown_label", "the model has no label \"%.128s\"", text);
            return;
        }
        correct = strcmp(text, p->id + strlen(p->id) + 1) == 0;
        if (m) {
            truth = k;
            have_truth = true;
        }
    }
    if (s->metrics && have_truth)
        metrics_feedback_class(s->metrics, truth, p->cls, p->n_out);
    else if (s->metrics)
        metrics_feedback(s->metrics, correct);
    if (s->metrics && have_truth && p->shadow)
        metrics_shadow_feedback(s->metrics, p->shadow, truth == p->shadow_cls);
    if (s->source.label && have_truth)
        s->source.label(s->source.ctx, id, truth);
    free(p->id);
    p->id = NULL;
    free(p->shadow);
    p->shadow = NULL;
    send_answer(c, json_pack("{s:b, s:b}", "ok", 1, "correct", correct));
}

static void handle_line(struct client *c, char *line, size_t len)
{
    json_t *req = NULL;
    char msg[256];
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (len == 0)
        return;
    if (ef_json_load(line, len, SERVE_MAX_LINE, &req, msg, sizeof(msg)) != 0) {
        reply_error(c, NULL, "bad_json", "%s", msg);
        goto out;
    }
    if (!json_is_object(req))
        reply_error(c, NULL, "bad_request", "a request is a JSON object");
    else if (json_object_get(req, "input"))
        handle_infer(c, req);
    else if (json_object_get(req, "feedback"))
        handle_feedback(c, req);
    else
        reply_error(c, NULL, "bad_request", "a request has \"input\" or \"feedback\"");
out:
    json_decref(req);
}

static void refuse_long_line(struct client *c)
{
    reply_error(c, NULL, "line_too_long", "a line is at most %u bytes", SERVE_MAX_LINE);
    client_finish(c);
}

/* Answers every complete line in c's buffer and keeps the incomplete rest. */
static void process_lines(struct client *c)
{
    size_t start = 0;
    while (!c->finished) {
        char *nl = memchr(c->buf + c->scanned, '\n', c->len - c->scanned);
        if (!nl)
            break;
        size_t end = (size_t)(nl - c->buf);
        if (end - start > SERVE_MAX_LINE) {
            refuse_long_line(c);
            break;
        }
        handle_line(c, c->buf + start, end - start);
        start = c->scanned = end + 1;
    }
    if (c->finished)
        return;
    memmove(c->buf, c->buf + start, c->len - start);
    c->len -= start;
    c->scanned = c->len;
    if (c->len > SERVE_MAX_LINE)
        refuse_long_line(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct client *c = h->data;
    *buf = uv_buf_init(NULL, 0);
    if (c->cap - c->len < READ_CHUNK) {
        /* At most one line (SERVE_MAX_LINE) is kept between reads, so the
         * buffer stays below SERVE_MAX_LINE + 2 * READ_CHUNK. */
        size_t cap = c->cap ? c->cap * 2 : READ_CHUNK;
        if (cap < c->len + READ_CHUNK)
            cap = c->len + READ_CHUNK;
        char *grown = realloc(c->buf, cap);
        if (!grown)
            return; /* read_cb gets UV_ENOBUFS */
        c->buf = grown;
        c->cap = cap;
    }
    *buf = uv_buf_init(c->buf + c->len, (unsigned)(c->cap - c->len));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct client *c = stream->data;
    if (nread == UV_EOF) {
        /* The client closed its side: a last line without its newline is
         * still a request (process_lines kept it within SERVE_MAX_LINE). */
        if (!c->finished && c->len > 0)
            handle_line(c, c->buf, c->len);
        c->len = 0;
        client_finish(c);
        return;
    }
    if (nread < 0) {
        client_close(c);
        return;
    }
    c->len += (size_t)nread;
    process_lines(c);
    if (!c->finished && uv_stream_get_write_queue_size(stream) > WRITE_PAUSE) {
        /* The client sends faster than it reads its answers. */
        uv_read_stop(stream);
        c->paused = true;
        ef_debug("serve_client_paused", "queued_bytes=%zu", uv_stream_get_write_queue_size(stream));
    }
}

/* Starts (or resumes) reading c; a failure closes it. */
static void client_read_start(struct client *c)
{
    if (uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) != 0)
        client_close(c);
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct serve *s = listener->data;
    struct client *c = NULL;
    if (status < 0) {
        ef_warn("serve_accept_failed", "error=%s", uv_err_name(status));
        return;
    }
    if (s->stopping || !(c = calloc(1, sizeof(*c)))) {
        ef_warn("serve_accept_failed", "error=%s", s->stopping ? "stopping" : "out_of_memory");
        return;
    }
    uv_pipe_init(s->loop, &c->pipe, 0);
    c->pipe.data = c;
    c->s = s;
    c->next = s->clients;
    if (s->clients)
        s->clients->prev = c;
    s->clients = c;
    s->client_count++;
    s->open_handles++;
    if (uv_accept(listener, (uv_stream_t *)&c->pipe) != 0) {
        client_close(c);
        return;
    }
    if (s->client_count > SERVE_MAX_CLIENTS) {
        ef_warn("serve_client_refused", "reason=too_many_clients max=%d", SERVE_MAX_CLIENTS);
        client_close(c);
        return;
    }
    client_read_start(c);
}

static void on_listener_closed(uv_handle_t *h)
{
    handle_closed(h->data);
}

int serve_start(uv_loop_t *loop, const char *path, const struct serve_source *source,
                struct metrics *metrics, struct serve **out)
{
    int rc = 0;
    struct serve *s = NULL;
    struct stat st;
    char quoted[600];
    *out = NULL;
    if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
        return EF_EINVAL;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return EF_EEXIST;
        if (unlink(path) != 0)
            return ef_from_errno(errno);
    }
    if (!(s = calloc(1, sizeof(*s))) || !(s->path = strdup(path))) {
        rc = EF_ENOMEM;
        goto out;
    }
    s->loop = loop;
    s->source = *source;
    s->metrics = metrics;
    s->shadow_share = 1.0;
    s->jobs_tail = &s->jobs;
    ef_rng_seed(&s->rng, uv_hrtime() ^ ((uint64_t)getpid() << 32));
    uv_check_init(loop, &s->shadow_check);
    s->shadow_check.data = s;
    uv_pipe_init(loop, &s->listener, 0);
    s->listener.data = s;
    s->open_handles = 2;
    int uv_rc = uv_pipe_bind(&s->listener, path);
    /* The socket file is created with the umask; clients need the group's
     * read and write, nobody else anything. */
    if (uv_rc == 0 && chmod(path, 0660) != 0)
        uv_rc = uv_translate_sys_error(errno);
    if (uv_rc == 0)
        uv_rc = uv_listen((uv_stream_t *)&s->listener, LISTEN_BACKLOG, on_connection);
    if (uv_rc != 0) {
        ef_error("serve_listen_failed", "path=%s error=%s",
                 ef_log_quote(path, quoted, sizeof(quoted)), uv_err_name(uv_rc));
        rc = EF_EIO;
        unlink(path);
        /* A handle that was initialised is released by its close callback. */
        uv_close((uv_handle_t *)&s->shadow_check, on_listener_closed);
        uv_close((uv_handle_t *)&s->listener, on_listener_closed);
        s = NULL;
        goto out;
    }
    ef_info("serve_listening", "path=%s", ef_log_quote(path, quoted, sizeof(quoted)));
    *out = s;
    s = NULL;
out:
    if (s)
        serve_release(s);
    return rc;
}

void serve_stop(struct serve *s)
{
    if (!s || s->stopping)
        return;
    s->stopping = true;
    unlink(s->path);
    for (struct client *c = s->clients; c; c = c->next)
        client_close(c);
    uv_close((uv_handle_t *)&s->shadow_check, on_listener_closed);
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
}

/* --- the blocking client of `edgefleet-agent infer` --- */

static int send_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads up to and excluding the first newline into a malloc'd string. */
static int read_line(int fd, char **out, size_t *out_len)
{
    int rc = 0;
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    *out = NULL;
    if (!buf)
        return EF_ENOMEM;
    for (;;) {
        if (len == cap) {
            char *grown = cap >= CLIENT_MAX_ANSWER ? NULL : realloc(buf, cap * 2);
            if (!grown) {
                rc = EF_ETOOBIG;
                goto out;
            }
            buf = grown;
            cap *= 2;
        }
        ssize_t n = recv(fd, buf + len, cap - len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = errno == EAGAIN || errno == EWOULDBLOCK ? EF_ETIMEDOUT : ef_from_errno(errno);
            goto out;
        }
        if (n == 0) {
            rc = EF_EIO;
            goto out;
        }
        char *nl = memchr(buf + len, '\n', (size_t)n);
        len += (size_t)n;
        if (nl) {
            *nl = '\0';
            *out_len = (size_t)(nl - buf);
            *out = buf;
            buf = NULL;
            goto out;
        }
    }
out:
    free(buf);
    return rc;
}

int serve_client_infer(const char *socket_path, const char *input_json)
{
    int code = 1, fd = -1;
    json_t *input = NULL, *req = NULL, *answer = NULL;
    char *line = NULL, *reply = NULL, msg[256];
    size_t reply_len = 0;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    struct timeval timeout = {.tv_sec = CLIENT_TIMEOUT_S};
    if (ef_json_load(input_json, strlen(input_json), SERVE_MAX_LINE, &input, msg, sizeof(msg)) !=
        0) {
        fprintf(stderr, "edgefleet-agent infer: the input is not JSON: %s\n", msg);
        code = 2;
        goto out;
    }
    bool numbers = json_is_array(input) && json_array_size(input) > 0;
    for (size_t i = 0; numbers && i < json_array_size(input); i++)
        numbers = json_is_number(json_array_get(input, i));
    if (!numbers) {
        fprintf(stderr, "edgefleet-agent infer: the input must be a JSON array of numbers\n");
        code = 2;
        goto out;
    }
    if (!(req = json_pack("{s:O}", "input", input)) || !(line = ef_json_dump(req))) {
        fprintf(stderr, "edgefleet-agent infer: out of memory\n");
        goto out;
    }
    if (strlen(socket_path) >= sizeof(addr.sun_path)) {
        fprintf(stderr, "edgefleet-agent infer: socket path too long: %s\n", socket_path);
        goto out;
    }
    memcpy(addr.sun_path, socket_path, strlen(socket_path) + 1);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout)) != 0 ||
        connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        fprintf(stderr, "edgefleet-agent infer: cannot connect to %s: %s\n", socket_path,
                strerror(errno));
        goto out;
    }
    if (send_all(fd, line, strlen(line)) != 0 || send_all(fd, "\n", 1) != 0) {
        fprintf(stderr, "edgefleet-agent infer: cannot send to %s: %s\n", socket_path,
                strerror(errno));
        goto out;
    }
    int rc = read_line(fd, &reply, &reply_len);
    if (rc != 0) {
        fprintf(stderr, "edgefleet-agent infer: no answer from %s: %s\n", socket_path,
                rc == EF_EIO ? "connection closed" : ef_strerror(rc));
        goto out;
    }
    printf("%s\n", reply);
    fflush(stdout);
    if (ef_json_load(reply, reply_len, CLIENT_MAX_ANSWER, &answer, NULL, 0) == 0 &&
        json_object_get(answer, "output") && !json_object_get(answer, "error"))
        code = 0;
out:
    if (fd >= 0)
        close(fd);
    json_decref(input);
    json_decref(req);
    json_decref(answer);
    free(line);
    free(reply);
    return code;
}
