/*
 * test_agent_serve.c - the local inference endpoint on a real loop with a
 * real FANN model: answers equal model_run, concurrent and pipelined
 * clients, errors that keep the connection, overlong lines, feedback, the
 * `edgefleet-agent infer` client.
 *
 * The endpoint's loop runs on a thread of its own; the test's clients are
 * plain blocking sockets. The model the endpoint serves is touched by the
 * loop thread only while it runs; a second instance of the same network
 * computes the expected outputs on the test's thread.
 */
#define _XOPEN_SOURCE 700 /* nftw(), to clean up the temporary directory */
#include "agent/metrics.h"
#include "agent/model.h"
#include "agent/serve.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>

#include <cmocka.h>

#include "fann_fixture.h"

#define CLIENTS   8     /* concurrent connections in the concurrency test */
#define PIPELINED 40    /* requests each of them sends before reading */
#define FLOOD     20000 /* requests of the client that does not read */

/* What the endpoint serves and what it reported, seen by the loop thread
 * while it runs and by the test's thread after it stopped. */
struct source_ctx {
    struct model *model;    /* serving, or NULL */
    unsigned ok;            /* inferences observed as successful */
    unsigned failed;        /* and as failed */
    struct model *shadow;   /* the shadow model, or NULL */
    unsigned shadow_ok;     /* shadow inferences observed as successful */
    unsigned shadow_failed; /* and as failed */
    int first_shadow_at;    /* production inferences observed when the first shadow ran, -1 */
    unsigned samples;       /* inferences offered to the sample hook */
    unsigned samples_id;    /* of which with an id */
    unsigned labels;        /* feedback given to the label hook */
    size_t last_label;      /* the class of the last */
    char last_label_id[32]; /* and its id */
};

struct fx {
    struct fann_fixture *net;
    struct backends *b;
    struct model *served;    /* the endpoint's model */
    struct model *reference; /* the same network, for expected outputs */
    struct model *broken;    /* a network whose outputs are NaN */
    double expected[FIXTURE_VECTORS][FIXTURE_OUTPUTS];
    /* The running endpoint of the current test. */
    uv_loop_t loop;
    uv_async_t stop;
    uv_thread_t thread;
    struct serve *serve;
    struct metrics *metrics;
    struct source_ctx src;
    char path[160];
};

static struct model *serving(void *ctx)
{
    return ((struct source_ctx *)ctx)->model;
}

static void observe(void *ctx, bool ok, double latency_ms)
{
    struct source_ctx *src = ctx;
    (void)latency_ms;
    if (ok)
        src->ok++;
    else
        src->failed++;
}

static struct model *shadow_model(void *ctx)
{
    return ((struct source_ctx *)ctx)->shadow;
}

static void shadow_observe(void *ctx, bool ok, double latency_ms)
{
    struct source_ctx *src = ctx;
    (void)latency_ms;
    if (src->first_shadow_at < 0)
        src->first_shadow_at = (int)src->ok;
    if (ok)
        src->shadow_ok++;
    else
        src->shadow_failed++;
}

static void sample(void *ctx, const char *id, const double *in, size_t n_in)
{
    struct source_ctx *src = ctx;
    assert_int_equal(n_in, FIXTURE_INPUTS);
    assert_true(isfinite(in[0]));
    src->samples++;
    if (id)
        src->samples_id++;
}

static void label(void *ctx, const char *id, size_t cls)
{
    struct source_ctx *src = ctx;
    src->labels++;
    src->last_label = cls;
    snprintf(src->last_label_id, sizeof(src->last_label_id), "%s", id);
}

static struct model *load(struct fx *f, const char *path)
{
    struct ef_manifest *mf =
        fixture_manifest(f->net, f->net->float_net, "fann", FIXTURE_INPUTS, 0, 1e-6);
    struct model *m = NULL;
    char err[256] = "";
    if (!mf || model_load(f->b, mf, path, &m, err, sizeof(err)) != 0)
        fprintf(stderr, "load %s: %s\n", path, err);
    ef_manifest_free(mf);
    return m;
}

/* Writes a copy of the float network whose first weight is NaN (FANN reads
 * weights with scanf, which takes "nan"). */
static int write_broken_net(const struct fann_fixture *net, char *out, size_t size)
{
    char *text = NULL;
    size_t len = 0;
    int rc = ef_read_file(net->float_net, 1u << 20, &text, &len);
    const char *marker = "connections (connected_to_neuron, weight)=(0, ";
    char *at = rc == 0 ? strstr(text, marker) : NULL;
    if (at) {
        at += strlen(marker);
        char *end = strchr(at, ')');
        snprintf(out, size, "%s/broken.net", net->dir);
        FILE *fp = fopen(out, "w");
        rc = fp && fprintf(fp, "%.*snan%s", (int)(at - text), text, end) > 0 ? 0 : -1;
        if (fp)
            fclose(fp);
    } else {
        rc = -1;
    }
    free(text);
    return rc;
}

static int group_setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    char broken[200];
    /* A client going away while its answer is written must not kill us. */
    signal(SIGPIPE, SIG_IGN);
    if (!f || !(f->net = fixture_train(23)) ||
        backends_open(getenv("EF_BACKEND_DIR"), &f->b) != 0 ||
        !(f->served = load(f, f->net->float_net)) || !(f->reference = load(f, f->net->float_net)) ||
        write_broken_net(f->net, broken, sizeof(broken)) != 0 || !(f->broken = load(f, broken)))
        return -1;
    for (size_t i = 0; i < FIXTURE_VECTORS; i++) {
        double in[FIXTURE_INPUTS];
        fixture_row(f->net, i, in, NULL);
        if (model_run(f->reference, in, FIXTURE_INPUTS, f->expected[i], FIXTURE_OUTPUTS) != 0)
            return -1;
    }
    *state = f;
    return 0;
}

static int group_teardown(void **state)
{
    struct fx *f = *state;
    model_unref(f->served);
    model_unref(f->reference);
    model_unref(f->broken);
    backends_close(f->b);
    fixture_free(f->net);
    free(f);
    return 0;
}

static void on_stop(uv_async_t *async)
{
    struct fx *f = async->data;
    serve_stop(f->serve);
    uv_close((uv_handle_t *)&f->stop, NULL);
}

static void run_loop(void *arg)
{
    struct fx *f = arg;
    uv_run(&f->loop, UV_RUN_DEFAULT);
}

/* Starts an endpoint serving model (may be NULL), with shadow (may be NULL)
 * run on share of the inferences, on its own loop thread. */
static int start_shadowed(struct fx *f, struct model *model, struct model *shadow, double share)
{
    f->src = (struct source_ctx){.model = model, .shadow = shadow, .first_shadow_at = -1};
    snprintf(f->path, sizeof(f->path), "%s/infer.sock", f->net->dir);
    struct serve_source source = {.serving = serving,
                                  .observe = observe,
                                  .shadow = shadow_model,
                                  .shadow_observe = shadow_observe,
                                  .sample = sample,
                                  .label = label,
                                  .ctx = &f->src};
    if (uv_loop_init(&f->loop) != 0 || metrics_new(&f->metrics) != 0 ||
        serve_start(&f->loop, f->path, &source, f->metrics, &f->serve) != 0 ||
        uv_async_init(&f->loop, &f->stop, on_stop) != 0)
        return -1;
    serve_set_shadow_share(f->serve, share);
    f->stop.data = f;
    return uv_thread_create(&f->thread, run_loop, f);
}

static int start(struct fx *f, struct model *model)
{
    return start_shadowed(f, model, NULL, 1.0);
}

static int setup_model(void **state)
{
    struct fx *f = *state;
    return start(f, f->served);
}

static int setup_no_model(void **state)
{
    struct fx *f = *state;
    return start(f, NULL);
}

static int setup_broken_model(void **state)
{
    struct fx *f = *state;
    return start(f, f->broken);
}

/* Production f->served, shadow the same network (always agrees). */
static int setup_shadow(void **state)
{
    struct fx *f = *state;
    return start_shadowed(f, f->served, f->reference, 1.0);
}

/* Production f->served, shadow the broken network (always fails). */
static int setup_broken_shadow(void **state)
{
    struct fx *f = *state;
    return start_shadowed(f, f->served, f->broken, 1.0);
}

static int setup_shadow_share_zero(void **state)
{
    struct fx *f = *state;
    return start_shadowed(f, f->served, f->reference, 0.0);
}

/* Stops the endpoint; afterwards its loop holds no handle and the socket
 * file is gone. The metrics window stays for the test to read. */
static void stop(struct fx *f)
{
    if (!f->serve)
        return;
    uv_async_send(&f->stop);
    uv_thread_join(&f->thread);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    f->serve = NULL;
    struct stat st;
    assert_int_equal(lstat(f->path, &st), -1);
}

static int teardown(void **state)
{
    struct fx *f = *state;
    stop(f);
    metrics_free(f->metrics);
    f->metrics = NULL;
    return 0;
}

/* --- blocking clients --- */

static int client_connect(const char *path)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    struct timeval timeout = {.tv_sec = 20};
    snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)) != 0 ||
        connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static int client_send(int fd, const char *data, size_t len)
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

/* A connection: the socket for sending, a buffered stream of a duplicate
 * of it for reading answer lines. */
struct conn {
    int fd;
    FILE *in;
};

static bool conn_open(struct conn *c, const char *path)
{
    c->fd = client_connect(path);
    c->in = c->fd >= 0 ? fdopen(dup(c->fd), "r") : NULL;
    return c->in != NULL;
}

static void conn_close(struct conn *c)
{
    if (c->in)
        fclose(c->in);
    if (c->fd >= 0)
        close(c->fd);
    c->in = NULL;
    c->fd = -1;
}

/* Reads and parses one answer line; NULL at end of stream, on a timeout or
 * on bad JSON. */
static json_t *conn_recv(struct conn *c)
{
    char *line = NULL;
    size_t cap = 0;
    json_t *doc = NULL;
    ssize_t n = getline(&line, &cap, c->in);
    if (n > 0 && line[n - 1] == '\n' &&
        ef_json_load(line, (size_t)n - 1, (size_t)n, &doc, NULL, 0) != 0)
        doc = NULL;
    free(line);
    return doc;
}

static json_t *roundtrip(struct conn *c, const char *line)
{
    if (client_send(c->fd, line, strlen(line)) != 0 || client_send(c->fd, "\n", 1) != 0)
        return NULL;
    return conn_recv(c);
}

/* The request line {"input": row i, "id"?: id}; the caller frees it. */
static char *infer_request(const struct fann_fixture *net, size_t i, const char *id)
{
    json_t *req =
        json_pack("{s:O}", "input", json_object_get(json_array_get(net->vectors, i), "input"));
    if (id)
        json_object_set_new(req, "id", json_string(id));
    char *line = ef_json_dump(req);
    json_decref(req);
    return line;
}

/* True when answer is the output of row i, computed by the reference model. */
static bool answer_matches(const struct fx *f, const json_t *answer, size_t i, const char *id)
{
    json_t *out = json_object_get(answer, "output");
    if (json_array_size(out) != FIXTURE_OUTPUTS)
        return false;
    size_t best = 0;
    for (size_t k = 0; k < FIXTURE_OUTPUTS; k++) {
        /* Jansson prints doubles with 17 digits: equal to the bit. */
        if (json_real_value(json_array_get(out, k)) != f->expected[i][k])
            return false;
        if (f->expected[i][k] > f->expected[i][best])
            best = k;
    }
    const char *labels[] = {"hyperthyroid", "hypothyroid", "normal"};
    const char *got_id = json_string_value(json_object_get(answer, "id"));
    return json_integer_value(json_object_get(answer, "class")) == (json_int_t)best &&
           strcmp(json_string_value(json_object_get(answer, "label")), labels[best]) == 0 &&
           strcmp(json_string_value(json_object_get(answer, "model")), "thyroid@3") == 0 &&
           json_is_integer(json_object_get(answer, "latency_us")) &&
           (id ? got_id && strcmp(got_id, id) == 0 : got_id == NULL);
}

static void assert_error(json_t *answer, const char *code)
{
    const char *got = json_string_value(json_object_get(json_object_get(answer, "error"), "code"));
    if (!got || strcmp(got, code) != 0) {
        char *text = answer ? ef_json_dump(answer) : NULL;
        fail_msg("expected error %s, got %s", code, text ? text : "nothing");
    }
    json_decref(answer);
}

/* --- tests --- */

static void answers_equal_model_run(void **state)
{
    struct fx *f = *state;
    struct conn c;
    assert_true(conn_open(&c, f->path));
    for (size_t i = 0; i < FIXTURE_VECTORS; i++) {
        char id[16];
        snprintf(id, sizeof(id), "r%zu", i);
        char *line = infer_request(f->net, i, i % 2 ? id : NULL);
        json_t *answer = roundtrip(&c, line);
        assert_non_null(answer);
        assert_true(answer_matches(f, answer, i, i % 2 ? id : NULL));
        json_decref(answer);
        free(line);
    }
    conn_close(&c);
    stop(f);
    assert_int_equal(f->src.ok, FIXTURE_VECTORS);
    assert_int_equal(f->src.failed, 0);
    json_t *w = metrics_close_window(f->metrics, NULL);
    assert_int_equal(json_integer_value(json_object_get(w, "inferences")), FIXTURE_VECTORS);
    assert_int_equal(json_integer_value(json_object_get(w, "errors")), 0);
    json_decref(w);
}

struct pipelined_client {
    const struct fx *f;
    int index;    /* which client, for its ids */
    int failures; /* requests not answered as expected */
};

/* Sends PIPELINED requests in one write, then reads the answers: they must
 * come in order. cmocka's asserts are for the test's thread only. */
static void pipelined_client(void *arg)
{
    struct pipelined_client *pc = arg;
    char *batch = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&batch, &len);
    struct conn c = {.fd = -1};
    if (!mem || !conn_open(&c, pc->f->path)) {
        pc->failures = PIPELINED;
        goto out;
    }
    for (int r = 0; r < PIPELINED; r++) {
        char id[32];
        snprintf(id, sizeof(id), "c%d-%d", pc->index, r);
        char *line = infer_request(pc->f->net, (size_t)(r + pc->index) % FIXTURE_VECTORS, id);
        fprintf(mem, "%s\n", line);
        free(line);
    }
    fclose(mem);
    mem = NULL;
    if (client_send(c.fd, batch, len) != 0) {
        pc->failures = PIPELINED;
        goto out;
    }
    for (int r = 0; r < PIPELINED; r++) {
        char id[32];
        snprintf(id, sizeof(id), "c%d-%d", pc->index, r);
        json_t *answer = conn_recv(&c);
        if (!answer ||
            !answer_matches(pc->f, answer, (size_t)(r + pc->index) % FIXTURE_VECTORS, id))
            pc->failures++;
        json_decref(answer);
    }
out:
    if (mem)
        fclose(mem);
    free(batch);
    conn_close(&c);
}

static void concurrent_pipelined_clients(void **state)
{
    struct fx *f = *state;
    struct pipelined_client clients[CLIENTS];
    uv_thread_t threads[CLIENTS];
    for (int c = 0; c < CLIENTS; c++) {
        clients[c] = (struct pipelined_client){.f = f, .index = c};
        assert_int_equal(uv_thread_create(&threads[c], pipelined_client, &clients[c]), 0);
    }
    for (int c = 0; c < CLIENTS; c++) {
        uv_thread_join(&threads[c]);
        assert_int_equal(clients[c].failures, 0);
    }
    stop(f);
    assert_int_equal(f->src.ok, CLIENTS * PIPELINED);
}

struct flood {
    const struct fx *f;
    struct conn c;
    int sent; /* requests fully written */
};

static void flood_sender(void *arg)
{
    struct flood *fl = arg;
    for (int r = 0; r < FLOOD; r++) {
        char *line = infer_request(fl->f->net, (size_t)r % FIXTURE_VECTORS, NULL);
        int rc = client_send(fl->c.fd, line, strlen(line));
        free(line);
        if (rc != 0 || client_send(fl->c.fd, "\n", 1) != 0)
            return;
        fl->sent++;
    }
}

/* A client that sends without reading is paused once its answers pile up;
 * another client is served meanwhile, and the first gets every answer once
 * it reads. */
static void a_client_that_does_not_read_does_not_stall_others(void **state)
{
    struct fx *f = *state;
    struct flood fl = {.f = f};
    uv_thread_t sender;
    assert_true(conn_open(&fl.c, f->path));
    assert_int_equal(uv_thread_create(&sender, flood_sender, &fl), 0);
    /* Give the flood time to fill the socket and the endpoint's queue. */
    usleep(300 * 1000);

    struct conn other;
    assert_true(conn_open(&other, f->path));
    char *line = infer_request(f->net, 3, "other");
    json_t *answer = roundtrip(&other, line);
    assert_true(answer && answer_matches(f, answer, 3, "other"));
    json_decref(answer);
    free(line);
    conn_close(&other);

    for (int r = 0; r < FLOOD; r++) {
        answer = conn_recv(&fl.c);
        if (!answer || !answer_matches(f, answer, (size_t)r % FIXTURE_VECTORS, NULL))
            fail_msg("flood answer %d of %d is wrong or missing", r, FLOOD);
        json_decref(answer);
    }
    uv_thread_join(&sender);
    assert_int_equal(fl.sent, FLOOD);
    conn_close(&fl.c);
}

static void errors_are_answered_and_the_connection_stays(void **state)
{
    struct fx *f = *state;
    struct conn c;
    assert_true(conn_open(&c, f->path));
    char *good = infer_request(f->net, 0, NULL);
    char line[4096];

    assert_error(roundtrip(&c, "this is not json"), "bad_json");
    assert_error(roundtrip(&c, "{\"input\": [1], \"\xc3\": 1}"), "bad_json");
    /* An unknown key long enough that the message is cut inside a
     * character: still answered with its code. */
    char *p = line + snprintf(line, sizeof(line), "{\"input\": [1], \"a");
    for (int i = 0; i < 400; i++)
        p += snprintf(p, 3, "\xc3\xa9");
    snprintf(p, 8, "\": 1}");
    assert_error(roundtrip(&c, line), "bad_request");
    assert_error(roundtrip(&c, "{\"input\": [1, 2, 3]}"), "bad_input");
    assert_error(roundtrip(&c, "{\"input\": \"abc\"}"), "bad_input");
    assert_error(roundtrip(&c, "[1, 2]"), "bad_request");
    assert_error(roundtrip(&c, "{}"), "bad_request");
    assert_error(roundtrip(&c, "{\"input\": [1], \"id\": 7}"), "bad_request");
    /* Duplicate keys are refused by the parser. */
    snprintf(line, sizeof(line), "{\"input\": [1], %s", good + 1);
    assert_error(roundtrip(&c, line), "bad_json");
    snprintf(line, sizeof(line), "{\"colour\": 1, %s", good + 1);
    json_t *answer = roundtrip(&c, line);
    assert_non_null(strstr(
        json_string_value(json_object_get(json_object_get(answer, "error"), "message")), "colour"));
    assert_error(answer, "bad_request");
    /* The id comes back with the error when it was valid. */
    snprintf(line, sizeof(line), "{\"id\": \"e1\", \"input\": [0.5]}");
    answer = roundtrip(&c, line);
    assert_string_equal(json_string_value(json_object_get(answer, "id")), "e1");
    assert_error(answer, "bad_input");

    /* Blank lines get no answer; CRLF is a line end; still serving. */
    snprintf(line, sizeof(line), "\n\r\n%s\r", good);
    answer = roundtrip(&c, line);
    assert_true(answer && answer_matches(f, answer, 0, NULL));
    json_decref(answer);
    free(good);
    conn_close(&c);
    stop(f);
    /* The client's mistakes are not failed inferences. */
    assert_int_equal(f->src.failed, 0);
    assert_int_equal(f->src.ok, 1);
}

/* `printf '{...}' | nc -U`: the last request has no newline, the client
 * shuts its side down, and still gets its answers before the close. */
static void a_last_line_without_newline_is_answered(void **state)
{
    struct fx *f = *state;
    struct conn c;
    assert_true(conn_open(&c, f->path));
    char *first = infer_request(f->net, 6, "first"), *last = infer_request(f->net, 7, "last");
    assert_int_equal(client_send(c.fd, first, strlen(first)), 0);
    assert_int_equal(client_send(c.fd, "\n", 1), 0);
    assert_int_equal(client_send(c.fd, last, strlen(last)), 0);
    assert_int_equal(shutdown(c.fd, SHUT_WR), 0);
    json_t *answer = conn_recv(&c);
    assert_true(answer && answer_matches(f, answer, 6, "first"));
    json_decref(answer);
    answer = conn_recv(&c);
    assert_true(answer && answer_matches(f, answer, 7, "last"));
    json_decref(answer);
    assert_int_equal(fgetc(c.in), EOF);
    free(first);
    free(last);
    conn_close(&c);
}

/* A line above SERVE_MAX_LINE is answered with an error and the connection
 * is closed; other connections are not affected. */
static void an_overlong_line_closes_its_connection(void **state)
{
    struct fx *f = *state;
    struct conn c, other;
    assert_true(conn_open(&c, f->path) && conn_open(&other, f->path));
    size_t len = SERVE_MAX_LINE + 1;
    char *big = malloc(len);
    assert_non_null(big);
    memset(big, ' ', len);
    big[0] = '[';
    assert_int_equal(client_send(c.fd, big, len), 0);
    free(big);
    assert_error(conn_recv(&c), "line_too_long");
    assert_int_equal(fgetc(c.in), EOF); /* closed by the endpoint */
    conn_close(&c);

    char *good = infer_request(f->net, 2, "after");
    json_t *answer = roundtrip(&other, good);
    assert_true(answer && answer_matches(f, answer, 2, "after"));
    json_decref(answer);
    free(good);
    conn_close(&other);
}

/* A line of exactly SERVE_MAX_LINE bytes is still a line. */
static void a_line_of_the_maximum_length_is_served(void **state)
{
    struct fx *f = *state;
    struct conn c;
    assert_true(conn_open(&c, f->path));
    char *good = infer_request(f->net, 1, NULL);
    size_t good_len = strlen(good);
    char *line = malloc(SERVE_MAX_LINE + 1);
    assert_non_null(line);
    memset(line, ' ', SERVE_MAX_LINE);
    memcpy(line + SERVE_MAX_LINE - good_len, good, good_len);
    line[SERVE_MAX_LINE] = '\n';
    assert_int_equal(client_send(c.fd, line, SERVE_MAX_LINE + 1), 0);
    json_t *answer = conn_recv(&c);
    assert_true(answer && answer_matches(f, answer, 1, NULL));
    json_decref(answer);
    free(line);
    free(good);
    conn_close(&c);
}

static void feedback_counts_toward_accuracy(void **state)
{
    struct fx *f = *state;
    struct conn c;
    assert_true(conn_open(&c, f->path));
    char *line = infer_request(f->net, 0, "p1");
    json_t *answer = roundtrip(&c, line);
    free(line);
    assert_non_null(answer);
    char fb[256];
    json_int_t cls = json_integer_value(json_object_get(answer, "class"));
    /* The right label, by name. */
    snprintf(fb, sizeof(fb), "{\"feedback\": \"p1\", \"label\": \"%s\"}",
             json_string_value(json_object_get(answer, "label")));
    json_decref(answer);
    answer = roundtrip(&c, fb);
    assert_true(json_is_true(json_object_get(answer, "ok")));
    assert_true(json_is_true(json_object_get(answer, "correct")));
    json_decref(answer);
    /* One feedback per prediction. */
    assert_error(roundtrip(&c, fb), "unknown_id");

    /* A wrong class, by index. */
    line = infer_request(f->net, 1, "p2");
    json_decref(roundtrip(&c, line));
    free(line);
    snprintf(fb, sizeof(fb), "{\"feedback\": \"p2\", \"label\": %d}", (int)(cls + 1) % 3);
    answer = roundtrip(&c, fb);
    assert_true(json_is_true(json_object_get(answer, "ok")));
    assert_true(json_is_false(json_object_get(answer, "correct")));
    json_decref(answer);

    /* Refusals. */
    line = infer_request(f->net, 2, "p3");
    json_decref(roundtrip(&c, line));
    free(line);
    assert_error(roundtrip(&c, "{\"feedback\": \"p3\", \"label\": \"euthyroid\"}"),
                 "unknown_label");
    assert_error(roundtrip(&c, "{\"feedback\": \"p3\", \"label\": 3}"), "unknown_label");
    assert_error(roundtrip(&c, "{\"feedback\": \"p3\", \"label\": 1.5}"), "bad_request");
    assert_error(roundtrip(&c, "{\"feedback\": \"p3\"}"), "bad_request");
    assert_error(roundtrip(&c, "{\"feedback\": 3, \"label\": 1}"), "bad_request");
    assert_error(roundtrip(&c, "{\"feedback\": \"nope\", \"label\": 1}"), "unknown_id");
    conn_close(&c);
    stop(f);

    json_t *w = metrics_close_window(f->metrics, NULL);
    assert_int_equal(json_integer_value(json_object_get(w, "feedback")), 2);
    assert_true(json_real_value(json_object_get(w, "accuracy")) == 0.5);
    assert_int_equal(json_integer_value(json_object_get(w, "inferences")), 3);
    json_decref(w);
}

/* Sends n requests (rows 0..n-1, ids "s0".."s(n-1)") in one write and
 * checks each answer is production's. */
static void pipelined_answers(struct fx *f, struct conn *c, size_t n)
{
    char *all = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&all, &len);
    for (size_t i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof(id), "s%zu", i);
        char *line = infer_request(f->net, i, id);
        fprintf(mem, "%s\n", line);
        free(line);
    }
    fclose(mem);
    assert_int_equal(client_send(c->fd, all, len), 0);
    free(all);
    for (size_t i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof(id), "s%zu", i);
        json_t *answer = conn_recv(c);
        assert_non_null(answer);
        assert_true(answer_matches(f, answer, i, id));
        json_decref(answer);
    }
}

static void the_shadow_runs_after_the_answers_and_is_scored(void **state)
{
    struct fx *f = *state;
    struct conn c;
    enum { N = FIXTURE_VECTORS };
    assert_true(conn_open(&c, f->path));
    pipelined_answers(f, &c, N);
    /* Feedback for two of them: the true class is production's (and, the
     * network being the same, the shadow's) for s0, another for s1. */
    json_int_t cls0 = 0, cls1 = 0;
    for (size_t k = 1; k < FIXTURE_OUTPUTS; k++) {
        cls0 = f->expected[0][k] > f->expected[0][cls0] ? (json_int_t)k : cls0;
        cls1 = f->expected[1][k] > f->expected[1][cls1] ? (json_int_t)k : cls1;
    }
    char fb[128];
    snprintf(fb, sizeof(fb), "{\"feedback\": \"s0\", \"label\": %d}", (int)cls0);
    json_t *answer = roundtrip(&c, fb);
    assert_true(json_is_true(json_object_get(answer, "correct")));
    json_decref(answer);
    snprintf(fb, sizeof(fb), "{\"feedback\": \"s1\", \"label\": %d}", (int)(cls1 + 1) % 3);
    answer = roundtrip(&c, fb);
    assert_true(json_is_false(json_object_get(answer, "correct")));
    json_decref(answer);
    conn_close(&c);
    stop(f);

    /* The N requests came in one read: every production answer was made
     * before the first shadow inference ran. */
    assert_int_equal(f->src.first_shadow_at, N);
    assert_int_equal(f->src.ok, N);
    assert_int_equal(f->src.shadow_ok, N);
    assert_int_equal(f->src.shadow_failed, 0);
    /* Collection hooks: every inference offered, feedback labels by id. */
    assert_int_equal(f->src.samples, N);
    assert_int_equal(f->src.samples_id, N);
    assert_int_equal(f->src.labels, 2);
    assert_int_equal(f->src.last_label, (size_t)(cls1 + 1) % 3);
    assert_string_equal(f->src.last_label_id, "s1");

    json_t *w = metrics_close_window(f->metrics, "thyroid@3");
    json_t *sh = json_object_get(w, "shadow");
    assert_string_equal(json_string_value(json_object_get(sh, "model")), "thyroid@3");
    assert_int_equal(json_integer_value(json_object_get(sh, "inferences")), N);
    assert_int_equal(json_integer_value(json_object_get(sh, "errors")), 0);
    assert_true(json_real_value(json_object_get(sh, "agreement")) == 1.0);
    assert_int_equal(json_integer_value(json_object_get(sh, "feedback")), 2);
    assert_true(json_real_value(json_object_get(sh, "accuracy")) == 0.5);
    assert_int_equal(json_integer_value(json_object_get(w, "correct")), 1);
    /* metrics_set_model was not called: no matrix to count into. */
    assert_true(json_is_null(json_object_get(w, "confusion")));
    assert_true(json_is_number(json_object_get(w, "confidence")));
    json_decref(w);
}

static void a_failing_shadow_never_reaches_the_client(void **state)
{
    struct fx *f = *state;
    struct conn c;
    enum { N = 6 };
    assert_true(conn_open(&c, f->path));
    pipelined_answers(f, &c, N);
    conn_close(&c);
    stop(f);
    assert_int_equal(f->src.ok, N);
    assert_int_equal(f->src.failed, 0);
    assert_int_equal(f->src.shadow_failed, N);
    json_t *w = metrics_close_window(f->metrics, "thyroid@3");
    assert_int_equal(json_integer_value(json_object_get(w, "errors")), 0);
    json_t *sh = json_object_get(w, "shadow");
    assert_int_equal(json_integer_value(json_object_get(sh, "errors")), N);
    assert_true(json_is_null(json_object_get(sh, "agreement")));
    json_decref(w);
}

static void a_shadow_share_of_zero_runs_no_shadow(void **state)
{
    struct fx *f = *state;
    struct conn c;
    assert_true(conn_open(&c, f->path));
    pipelined_answers(f, &c, 5);
    conn_close(&c);
    stop(f);
    assert_int_equal(f->src.shadow_ok + f->src.shadow_failed, 0);
    json_t *w = metrics_close_window(f->metrics, "thyroid@3");
    assert_true(json_is_null(json_object_get(w, "shadow")));
    json_decref(w);
}

static void without_a_model_the_answer_is_no_model(void **state)
{
    struct fx *f = *state;
    struct conn c;
    assert_true(conn_open(&c, f->path));
    char *line = infer_request(f->net, 0, NULL);
    assert_error(roundtrip(&c, line), "no_model");
    free(line);
    conn_close(&c);
    stop(f);
    assert_int_equal(f->src.ok + f->src.failed, 0);
}

/* NaN outputs: answered as a failed inference, and counted as one. */
static void non_finite_outputs_are_a_failed_inference(void **state)
{
    struct fx *f = *state;
    struct conn c;
    assert_true(conn_open(&c, f->path));
    char *line = infer_request(f->net, 0, NULL);
    assert_error(roundtrip(&c, line), "inference_failed");
    assert_error(roundtrip(&c, line), "inference_failed");
    free(line);
    conn_close(&c);
    stop(f);
    assert_int_equal(f->src.failed, 2);
    assert_int_equal(f->src.ok, 0);
    json_t *w = metrics_close_window(f->metrics, NULL);
    assert_int_equal(json_integer_value(json_object_get(w, "inferences")), 2);
    assert_int_equal(json_integer_value(json_object_get(w, "errors")), 2);
    json_decref(w);
}

/* Runs serve_client_infer with its stdout captured into out. */
static int infer_captured(const char *path, const char *input, char *out, size_t size)
{
    char tmp[] = "/tmp/ef-infer-out-XXXXXX";
    int fd = mkstemp(tmp);
    assert_true(fd >= 0);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    dup2(fd, STDOUT_FILENO);
    int code = serve_client_infer(path, input);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    ssize_t n = pread(fd, out, size - 1, 0);
    out[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(tmp);
    return code;
}

static void the_infer_client_prints_one_answer(void **state)
{
    struct fx *f = *state;
    char out[8192];
    char *input = ef_json_dump(json_object_get(json_array_get(f->net->vectors, 4), "input"));
    assert_int_equal(infer_captured(f->path, input, out, sizeof(out)), 0);
    free(input);
    /* One line, one JSON object. */
    assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1);
    json_t *answer = NULL;
    assert_int_equal(ef_json_load(out, strlen(out), sizeof(out), &answer, NULL, 0), 0);
    assert_true(answer_matches(f, answer, 4, NULL));
    json_decref(answer);

    /* An error answered: printed, exit code 1. */
    assert_int_equal(infer_captured(f->path, "[0.1, 0.2]", out, sizeof(out)), 1);
    assert_non_null(strstr(out, "\"bad_input\""));
    /* Not an array of numbers: exit code 2, nothing sent. */
    assert_int_equal(infer_captured(f->path, "[0.1, ", out, sizeof(out)), 2);
    assert_int_equal(infer_captured(f->path, "{\"input\": [1]}", out, sizeof(out)), 2);
    assert_int_equal(infer_captured(f->path, "[]", out, sizeof(out)), 2);
    assert_int_equal(infer_captured(f->path, "[\"a\"]", out, sizeof(out)), 2);
    assert_string_equal(out, "");
    /* Nobody listening: exit code 1. */
    char nowhere[200];
    snprintf(nowhere, sizeof(nowhere), "%s/nobody.sock", f->net->dir);
    assert_int_equal(infer_captured(nowhere, "[1]", out, sizeof(out)), 1);
}

/* The socket file: mode 0660, a stale one replaced, anything else refused. */
static void the_socket_file(void **state)
{
    struct fx *f = *state;
    struct stat st;
    assert_int_equal(stat(f->path, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0660);

    struct serve_source source = {.serving = serving, .ctx = &f->src};
    struct serve *s = (struct serve *)&s;
    uv_loop_t loop;
    char path[300];
    assert_int_equal(uv_loop_init(&loop), 0);

    /* A regular file where the socket should be. */
    snprintf(path, sizeof(path), "%s/regular", f->net->dir);
    assert_int_equal(ef_atomic_write(path, "x", 1, 0600), 0);
    assert_int_equal(serve_start(&loop, path, &source, NULL, &s), EF_EEXIST);
    assert_null(s);
    /* Longer than a socket address holds. */
    snprintf(path, sizeof(path), "%s/%0120d.sock", f->net->dir, 0);
    assert_int_equal(serve_start(&loop, path, &source, NULL, &s), EF_EINVAL);

    /* A stale socket left by a previous run is replaced. */
    snprintf(path, sizeof(path), "%s/stale.sock", f->net->dir);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    assert_true(strlen(path) < sizeof(addr.sun_path));
    memcpy(addr.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    close(fd);
    assert_int_equal(serve_start(&loop, path, &source, NULL, &s), 0);
    serve_stop(s);
    serve_stop(NULL);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(lstat(path, &st), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(answers_equal_model_run, setup_model, teardown),
        cmocka_unit_test_setup_teardown(concurrent_pipelined_clients, setup_model, teardown),
        cmocka_unit_test_setup_teardown(a_client_that_does_not_read_does_not_stall_others,
                                        setup_model, teardown),
        cmocka_unit_test_setup_teardown(errors_are_answered_and_the_connection_stays, setup_model,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_last_line_without_newline_is_answered, setup_model,
                                        teardown),
        cmocka_unit_test_setup_teardown(an_overlong_line_closes_its_connection, setup_model,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_line_of_the_maximum_length_is_served, setup_model,
                                        teardown),
        cmocka_unit_test_setup_teardown(feedback_counts_toward_accuracy, setup_model, teardown),
        cmocka_unit_test_setup_teardown(the_shadow_runs_after_the_answers_and_is_scored,
                                        setup_shadow, teardown),
        cmocka_unit_test_setup_teardown(a_failing_shadow_never_reaches_the_client,
                                        setup_broken_shadow, teardown),
        cmocka_unit_test_setup_teardown(a_shadow_share_of_zero_runs_no_shadow,
                                        setup_shadow_share_zero, teardown),
        cmocka_unit_test_setup_teardown(without_a_model_the_answer_is_no_model, setup_no_model,
                                        teardown),
        cmocka_unit_test_setup_teardown(non_finite_outputs_are_a_failed_inference,
                                        setup_broken_model, teardown),
        cmocka_unit_test_setup_teardown(the_infer_client_prints_one_answer, setup_model, teardown),
        cmocka_unit_test_setup_teardown(the_socket_file, setup_model, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
