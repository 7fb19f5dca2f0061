/* test_agent_http_client.c - the agent's HTTP client against a real
 * libmicrohttpd server on 127.0.0.1: ETags and 304, resumed and restarted
 * downloads, size limits, the low-speed floor, refused connections and
 * freeing the client with requests in flight. */
#define _XOPEN_SOURCE 700 /* nftw(), to clean up the temporary directory */
#include "agent/http_client.h"
#include "common/ef_error.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#define FILE_SIZE  (64 * 1024)
#define DROP_AFTER (32 * 1024)
#define ETAG       "\"v1\""
#define JSON_BODY  "{\"hello\":\"world\"}"

/* ---- the server --------------------------------------------------------- */

/* The test server's state, shared by its connection threads (lock). */
struct server {
    struct MHD_Daemon *daemon;
    int port;
    unsigned char file[FILE_SIZE]; /* what /file, /flaky, /norange and /chunked serve */
    pthread_mutex_t lock;
    char last_range[64]; /* Range header of the last download request, "" for none */
    int flaky_hits;      /* requests to /flaky so far */
    bool stopping;       /* /slow ends its answers */
};

/* A streamed answer: /flaky's first one (cut short), /chunked, /slow. */
struct stream {
    struct server *srv;
    size_t stop_at; /* serve up to here, then: */
    bool fail;      /* ... drop the connection (true) or end normally */
    bool slow;      /* one byte per 100 ms, forever */
};

/* Per-request state of /echo: the uploaded body. */
struct upload {
    char buf[1024];
    size_t len;
};

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream *s = cls;
    if (s->slow) {
        pthread_mutex_lock(&s->srv->lock);
        bool stopping = s->srv->stopping;
        pthread_mutex_unlock(&s->srv->lock);
        if (stopping)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        usleep(100 * 1000);
        buf[0] = 'x';
        return 1;
    }
    if (pos >= s->stop_at)
        return s->fail ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
    size_t n = s->stop_at - (size_t)pos;
    if (n > max)
        n = max;
    memcpy(buf, s->srv->file + pos, n);
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    free(cls);
}

static enum MHD_Result queue(struct MHD_Connection *conn, unsigned status,
                             struct MHD_Response *resp)
{
    enum MHD_Result ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static struct MHD_Response *stream_response(struct server *srv, uint64_t size, size_t stop_at,
                                            bool fail, bool slow)
{
    struct stream *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->srv = srv;
    s->stop_at = stop_at;
    s->fail = fail;
    s->slow = slow;
    return MHD_create_response_from_callback(size, 4096, stream_read, s, stream_free);
}

/* Serves the file honouring "Range: bytes=N-" as a download server does. */
static enum MHD_Result serve_file(struct server *srv, struct MHD_Connection *conn,
                                  const char *range)
{
    struct MHD_Response *resp;
    char cr[80];
    long start = 0;
    if (range && sscanf(range, "bytes=%ld-", &start) == 1) {
        if (start >= FILE_SIZE) {
            resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
            snprintf(cr, sizeof(cr), "bytes */%d", FILE_SIZE);
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
            return queue(conn, MHD_HTTP_RANGE_NOT_SATISFIABLE, resp);
        }
        resp = MHD_create_response_from_buffer(FILE_SIZE - (size_t)start, srv->file + start,
                                               MHD_RESPMEM_PERSISTENT);
        snprintf(cr, sizeof(cr), "bytes %ld-%d/%d", start, FILE_SIZE - 1, FILE_SIZE);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
        return queue(conn, MHD_HTTP_PARTIAL_CONTENT, resp);
    }
    resp = MHD_create_response_from_buffer(FILE_SIZE, srv->file, MHD_RESPMEM_PERSISTENT);
    return queue(conn, MHD_HTTP_OK, resp);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct server *srv = cls;
    struct MHD_Response *resp;
    const char *range = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Range");
    (void)version;

    if (strcmp(method, "POST") == 0 && strcmp(url, "/echo") == 0) {
        struct upload *up = *con_cls;
        char out[2048];
        if (!up) {
            *con_cls = calloc(1, sizeof(struct upload));
            return *con_cls ? MHD_YES : MHD_NO;
        }
        if (*upload_data_size > 0) {
            size_t n = *upload_data_size;
            if (n > sizeof(up->buf) - 1 - up->len)
                n = sizeof(up->buf) - 1 - up->len;
            memcpy(up->buf + up->len, upload_data, n);
            up->len += n;
            *upload_data_size = 0;
            return MHD_YES;
        }
        const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
        const char *type = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
        snprintf(out, sizeof(out), "auth=%s;type=%s;body=%s", auth ? auth : "", type ? type : "",
                 up->buf);
        resp = MHD_create_response_from_buffer(strlen(out), out, MHD_RESPMEM_MUST_COPY);
        return queue(conn, MHD_HTTP_OK, resp);
    }
    if (strcmp(method, "GET") != 0)
        return MHD_NO;

    if (strcmp(url, "/flaky") == 0 || strcmp(url, "/file") == 0 || strcmp(url, "/norange") == 0) {
        pthread_mutex_lock(&srv->lock);
        snprintf(srv->last_range, sizeof(srv->last_range), "%s", range ? range : "");
        int hits = strcmp(url, "/flaky") == 0 ? ++srv->flaky_hits : 0;
        pthread_mutex_unlock(&srv->lock);
        if (hits == 1) {
            resp = stream_response(srv, FILE_SIZE, DROP_AFTER, true, false);
            return resp ? queue(conn, MHD_HTTP_OK, resp) : MHD_NO;
        }
        return serve_file(srv, conn, strcmp(url, "/norange") == 0 ? NULL : range);
    }
    if (strcmp(url, "/json") == 0) {
        const char *inm = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "If-None-Match");
        bool same = inm && strcmp(inm, ETAG) == 0;
        resp = same ? MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT)
                    : MHD_create_response_from_buffer(strlen(JSON_BODY), JSON_BODY,
                                                      MHD_RESPMEM_PERSISTENT);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, ETAG);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        return queue(conn, same ? MHD_HTTP_NOT_MODIFIED : MHD_HTTP_OK, resp);
    }
    if (strcmp(url, "/chunked") == 0 || strcmp(url, "/slow") == 0) {
        bool slow = strcmp(url, "/slow") == 0;
        resp = stream_response(srv, MHD_SIZE_UNKNOWN, FILE_SIZE, false, slow);
        return resp ? queue(conn, MHD_HTTP_OK, resp) : MHD_NO;
    }
    resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    return queue(conn, MHD_HTTP_NOT_FOUND, resp);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    free(*con_cls);
    *con_cls = NULL;
}

static int server_start(struct server *srv)
{
    struct sockaddr_in sa;
    const union MHD_DaemonInfo *info;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (size_t i = 0; i < FILE_SIZE; i++)
        srv->file[i] = (unsigned char)((i * 7919u) >> 3);
    pthread_mutex_init(&srv->lock, NULL);
    srv->daemon =
        MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL,
                         NULL, on_request, srv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                         MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_END);
    if (!srv->daemon)
        return -1;
    info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    if (!info || info->port == 0)
        return -1;
    srv->port = info->port;
    return 0;
}

static void server_stop(struct server *srv)
{
    pthread_mutex_lock(&srv->lock);
    srv->stopping = true;
    pthread_mutex_unlock(&srv->lock);
    if (srv->daemon)
        MHD_stop_daemon(srv->daemon);
    pthread_mutex_destroy(&srv->lock);
}

/* ---- the client side ---------------------------------------------------- */

/* One request's outcome, as seen by its callback. */
struct capture {
    uv_loop_t *loop;
    int calls;
    struct http_result res; /* body below is a copy */
    char *body;
    struct http_client *free_client; /* freed from the callback when set */
};

/* Per-test state: a loop, a client, a temporary directory; the server is
 * shared by the group. */
struct fixture {
    struct server *srv;
    uv_loop_t loop;
    struct http_client *client;
    char dir[64];
    char path[128];
    char urls[4][128]; /* see url() */
    unsigned nurls;
};

static void on_done(void *ctx, const struct http_result *res)
{
    struct capture *cap = ctx;
    cap->calls++;
    cap->res = *res;
    free(cap->body);
    cap->body = malloc(res->body_len + 1);
    assert_non_null(cap->body);
    memcpy(cap->body, res->body, res->body_len + 1);
    cap->res.body = cap->body;
    if (cap->free_client) {
        http_client_free(cap->free_client);
        cap->free_client = NULL;
    }
    uv_stop(cap->loop);
}

static void on_watchdog(uv_timer_t *t)
{
    *(bool *)t->data = true;
    uv_stop(t->loop);
}

/* Runs the loop until cap's callback has run (or timeout_ms passed). */
static void run_until_done(struct fixture *f, struct capture *cap, unsigned timeout_ms)
{
    uv_timer_t t;
    bool expired = false;
    assert_int_equal(uv_timer_init(&f->loop, &t), 0);
    t.data = &expired;
    assert_int_equal(uv_timer_start(&t, on_watchdog, timeout_ms, 0), 0);
    while (cap->calls == 0 && !expired)
        uv_run(&f->loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_false(expired);
    assert_int_equal(cap->calls, 1);
}

static void run_for(struct fixture *f, unsigned ms)
{
    uv_timer_t t;
    bool expired = false;
    assert_int_equal(uv_timer_init(&f->loop, &t), 0);
    t.data = &expired;
    assert_int_equal(uv_timer_start(&t, on_watchdog, ms, 0), 0);
    while (!expired)
        uv_run(&f->loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void capture_init(struct fixture *f, struct capture *cap)
{
    memset(cap, 0, sizeof(*cap));
    cap->loop = &f->loop;
}

static void capture_clear(struct capture *cap)
{
    free(cap->body);
    cap->body = NULL;
}

/* The server's URL for path, in one of the fixture's few buffers. */
static const char *url(struct fixture *f, const char *path)
{
    char *buf = f->urls[f->nurls++ % 4];
    snprintf(buf, sizeof(f->urls[0]), "http://127.0.0.1:%d%s", f->srv->port, path);
    return buf;
}

static void last_range(const struct fixture *f, char *out, size_t size)
{
    pthread_mutex_lock(&f->srv->lock);
    snprintf(out, size, "%s", f->srv->last_range);
    pthread_mutex_unlock(&f->srv->lock);
}

/* Asserts that the file at path holds exactly the server's file. */
static void assert_file_is_served_file(const struct fixture *f, const char *path)
{
    static unsigned char buf[FILE_SIZE + 1];
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    ssize_t n = read(fd, buf, sizeof(buf));
    close(fd);
    assert_int_equal(n, FILE_SIZE);
    assert_memory_equal(buf, f->srv->file, FILE_SIZE);
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static int group_setup(void **state)
{
    struct server *srv = calloc(1, sizeof(*srv));
    if (!srv || server_start(srv) != 0) {
        free(srv);
        return -1;
    }
    *state = srv;
    return 0;
}

static int group_teardown(void **state)
{
    struct server *srv = *state;
    server_stop(srv);
    free(srv);
    return 0;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    f->srv = *state;
    snprintf(f->dir, sizeof(f->dir), "/tmp/ef_test_http_XXXXXX");
    if (!mkdtemp(f->dir) || uv_loop_init(&f->loop) != 0 ||
        http_client_new(&f->loop, &f->client) != 0) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof(f->path), "%s/model.bin", f->dir);
    pthread_mutex_lock(&f->srv->lock);
    f->srv->flaky_hits = 0;
    f->srv->last_range[0] = '\0';
    pthread_mutex_unlock(&f->srv->lock);
    *state = f;
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    struct server *srv = f->srv;
    http_client_free(f->client);
    while (uv_loop_alive(&f->loop)) /* close callbacks free the client */
        uv_run(&f->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&f->loop); /* UV_EBUSY if a handle was left open */
    nftw(f->dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    *state = srv;
    return rc == 0 ? 0 : -1;
}

/* ---- tests -------------------------------------------------------------- */

static void test_json_etag_then_304(void **state)
{
    struct fixture *f = *state;
    struct capture cap;
    struct http_request_opts o = {.url = url(f, "/json")};

    capture_init(f, &cap);
    assert_int_equal(http_client_request(f->client, &o, on_done, &cap), 0);
    run_until_done(f, &cap, 5000);
    assert_int_equal(cap.res.rc, 0);
    assert_int_equal(cap.res.status, 200);
    assert_string_equal(cap.res.body, JSON_BODY);
    assert_int_equal(cap.res.body_len, strlen(JSON_BODY));
    assert_string_equal(cap.res.etag, ETAG);

    char etag[96];
    snprintf(etag, sizeof(etag), "%s", cap.res.etag);
    capture_clear(&cap);
    capture_init(f, &cap);
    o.if_none_match = etag;
    assert_int_equal(http_client_request(f->client, &o, on_done, &cap), 0);
    run_until_done(f, &cap, 5000);
    assert_int_equal(cap.res.rc, 0);
    assert_int_equal(cap.res.status, 304);
    assert_int_equal(cap.res.body_len, 0);
    assert_string_equal(cap.res.body, "");
    capture_clear(&cap);
}

static void test_post_sends_json_and_bearer(void **state)
{
    struct fixture *f = *state;
    struct capture cap;
    struct http_request_opts o = {
        .url = url(f, "/echo"), .method = "POST", .bearer = "tok123", .json_body = "{\"a\":1}"};

    capture_init(f, &cap);
    assert_int_equal(http_client_request(f->client, &o, on_done, &cap), 0);
    run_until_done(f, &cap, 5000);
    assert_int_equal(cap.res.rc, 0);
    assert_int_equal(cap.res.status, 200);
    assert_string_equal(cap.res.body, "auth=Bearer tok123;type=application/json;body={\"a\":1}");
    capture_clear(&cap);
}

static void test_download_complete(void **state)
{
    struct fixture *f = *state;
    struct capture cap;
    char range[64];
    struct http_request_opts o = {
        .url = url(f, "/file"), .file_path = f->path, .expected_size = FILE_SIZE};

    capture_init(f, &cap);
    assert_int_equal(http_client_request(f->client, &o, on_done, &cap), 0);
    run_until_done(f, &cap, 5000);
    assert_int_equal(cap.res.rc, 0);
    assert_int_equal(cap.res.status, 200);
    assert_int_equal(cap.res.file_size, FILE_SIZE);
    assert_file_is_served_file(f, f->path);
    last_range(f, range, sizeof(range));
    assert_string_equal(range, "");
    capture_clear(&cap);

    /* Asking again for a complete file: 416, which counts as complete. */
    capture_init(f, &cap);
    assert_int_equal(http_client_request(f->client, &o, on_done, &cap), 0);
    run_until_done(f, &cap, 5000);
    assert_int_equal(cap.res.rc, 0);
    assert_int_equal(cap.res.status, 416);
    assert_int_equal(cap.res.file_size, FILE_SIZE);
    assert_file_is_served_file(f, f->path);
    last_range(f, range, sizeof(range));
    assert_string_equal(range, "bytes=65536-");
    capture_clear(&cap);
}

static void test_interrupted_download_resumes(void **state)
{
    struct fixture *f = *state;
    struct capture cap;
    char range[64], want[64];
    struct http_request_opts o = {
        .url = url(f, "/flaky"), .file_path = f->path, .expected_size = FILE_SIZE};

    capture_init(f, &cap);
    assert_int_equal(http_client_request(f->client, &o, on_done, &cap), 0);
    run_until_done(f, &cap, 5000);
    assert_int_equal(cap.res.rc, EF_ENET);
    assert_int_equal(cap.res.file_size, DROP_AFTER);
    assert_int_equal(file_size(f->path), DROP_AFTER);
    capture_clear(&cap);

    capture_init(f, &cap);
    assert_int_equal(http_client_request(f->client, &o, on_done, &cap), 0);
    run_until_done(f, &cap, 5000);
    assert_int_equal(cap.res.rc, 0);
    assert_int_equal(cap.res.status, 206);
    assert_int_equal(cap.res.file_size, FILE_SIZE);
    last_range(f, range, sizeof(range));
    snprintf(want, sizeof(want), "bytes=%d-", DROP_AFTER);
    assert_string_equal(range, want);
    assert_file_is_served_file(f, f->path);
    capture_clear(&cap);
}

static void test_range_ignored_restarts_from_zero(void **state)
{
    struct fixture *f = *state;
    struct capture cap;
    struct http_request_opts o = {
        .url = url(f, "/norange"), .file_path = f->path, .expected_size = FILE_SIZE};
    char junk[1000];
    int fd = open(f->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    memset(junk, 'j', sizeof(junk));
    assert_int_equal(write(fd, junk, sizeof(junk)), sizeof(junk));
    close(fd);

    capture_init(f, &cap);
    assert_int_equal(http_client_request(f->client, &o, on_done, &cap), 0);
    run_until_done(f, &cap, 5000);
    assert_int_equal(cap.res.rc, 0);
    assert_int_equal(cap.res.status, 200);
    assert_int_equal(cap.res.file_size, FILE_SIZE);
    assert_file_is_served_file(f, f->path);
    capture_clear(&cap);
}

static void test_file_larger_than_expected_stops(void **state)
{
    struct fixture *f = *state;
    struct capture cap;
    struct http_request_opts o = {
        .url = url(f, "/file"), .file_path = f->path, .expected_size = 1000};

    /* Announced by Content-Length: refused before a byte is written. */
    capture_init(f, &cap);
    assert_int_equal(http_client_request(f->client, &o, on_done, &cap), 0);
    run_until_done(f, &cap, 5000);
    assert_int_equal(cap.res.rc, EF_ETOOBIG);
    assert_true(cap.res.file_size <= 1000);
    assert_true(file_size(f->path) <= 1000);
    capture_clear(&cap);

    /* Chunked, size unknown: stopped when the next chunk would not fit. */
    o.url = url(f, "/chunked");
    o.expected_size = 10000;
    capture_init(f, &cap);
    assert_int_equal(http_client_request(f->client, &o, on_done, &cap), 0);
    run_until_done(f, &cap, 5000);
    assert_int_equal(cap.res.rc, EF_ETOOBIG);
    assert_true(cap.res.file_size <= 10000);
    assert_true(file_size(f->path) <= 10000);
    capture_clear(&cap);
}

static void test_memory_body_limit(void **state)
{
    struct fixture *f = *state;
    struct capture cap;
    struct http_request_opts o = {.url = url(f, "/chunked"), .max_bytes = 1000};

    capture_init(f, &cap);
    assert_int_equal(http_client_request(f->client, &o, on_done, &cap), 0);
    run_until_done(f, &cap, 5000);
    assert_int_equal(cap.res.rc, EF_ETOOBIG);
    assert_true(cap.res.body_len <= 1000);
    capture_clear(&cap);
}

static void test_low_speed_floor(void **state)
{
    struct fixture *f = *state;
    struct capture cap;
    struct http_request_opts o = {.url = url(f, "/slow"),
                                  .file_path = f->path,
                                  .expected_size = FILE_SIZE,
                                  .low_speed_bytes = 1000,
                                  .low_speed_seconds = 1};
    uint64_t t0 = uv_hrtime();

    capture_init(f, &cap);
    assert_int_equal(http_client_request(f->client, &o, on_done, &cap), 0);
    run_until_done(f, &cap, 8000);
    assert_int_equal(cap.res.rc, EF_ETIMEDOUT);
    assert_true(uv_hrtime() - t0 < 5000000000ull);
    capture_clear(&cap);
}

static void test_timeout(void **state)
{
    struct fixture *f = *state;
    struct capture cap;
    struct http_request_opts o = {.url = url(f, "/slow"), .timeout_ms = 300};

    capture_init(f, &cap);
    assert_int_equal(http_client_request(f->client, &o, on_done, &cap), 0);
    run_until_done(f, &cap, 5000);
    assert_int_equal(cap.res.rc, EF_ETIMEDOUT);
    capture_clear(&cap);
}

/* A port nothing listens on: bound, read back, closed. */
static int free_port(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static void test_connection_refused(void **state)
{
    struct fixture *f = *state;
    struct capture cap;
    char u[64];
    snprintf(u, sizeof(u), "http://127.0.0.1:%d/json", free_port());
    struct http_request_opts o = {.url = u};

    capture_init(f, &cap);
    assert_int_equal(http_client_request(f->client, &o, on_done, &cap), 0);
    run_until_done(f, &cap, 5000);
    assert_int_equal(cap.res.rc, EF_ENET);
    assert_int_equal(cap.res.status, 0);
    capture_clear(&cap);
}

static void test_free_with_request_in_flight(void **state)
{
    struct fixture *f = *state;
    struct capture cap;
    struct http_request_opts o = {
        .url = url(f, "/slow"), .file_path = f->path, .expected_size = FILE_SIZE};

    capture_init(f, &cap);
    assert_int_equal(http_client_request(f->client, &o, on_done, &cap), 0);
    run_for(f, 300);
    assert_int_equal(cap.calls, 0);
    http_client_free(f->client);
    f->client = NULL;
    assert_int_equal(cap.calls, 1);
    assert_int_equal(cap.res.rc, EF_EBUSY);
    assert_true(cap.res.file_size > 0); /* the partial file stays for a resume */
    capture_clear(&cap);
    /* teardown runs the loop and checks every handle is closed */
}

static void test_free_from_callback(void **state)
{
    struct fixture *f = *state;
    struct capture first, second;
    struct http_request_opts quick = {.url = url(f, "/json")};
    struct http_request_opts slow = {.url = url(f, "/slow")};

    capture_init(f, &first);
    capture_init(f, &second);
    first.free_client = f->client;
    assert_int_equal(http_client_request(f->client, &slow, on_done, &second), 0);
    assert_int_equal(http_client_request(f->client, &quick, on_done, &first), 0);
    run_until_done(f, &first, 5000);
    f->client = NULL;
    assert_int_equal(first.res.rc, 0);
    assert_int_equal(second.calls, 1);
    assert_int_equal(second.res.rc, EF_EBUSY);
    capture_clear(&first);
    capture_clear(&second);
}

/* A client capped at one connection still completes every request (the
 * second waits for the first), and a receive-rate cap is only a cap: the
 * rate-limited downloads arrive whole. */
static void test_capped_connections_and_rate(void **state)
{
    struct fixture *f = *state;
    struct capture a, b;
    char second[160];
    snprintf(second, sizeof(second), "%s.second", f->path);
    struct http_request_opts o1 = {.url = url(f, "/file"),
                                   .file_path = f->path,
                                   .expected_size = FILE_SIZE,
                                   .max_recv_bps = 1 << 20};
    struct http_request_opts o2 = o1;
    o2.file_path = second;

    assert_int_equal(http_client_set_max_connections(f->client, -1), EF_EINVAL);
    assert_int_equal(http_client_set_max_connections(f->client, 1), 0);
    capture_init(f, &a);
    capture_init(f, &b);
    assert_int_equal(http_client_request(f->client, &o1, on_done, &a), 0);
    assert_int_equal(http_client_request(f->client, &o2, on_done, &b), 0);
    for (int i = 0; i < 100 && (a.calls == 0 || b.calls == 0); i++)
        run_for(f, 50);
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 1);
    assert_int_equal(a.res.rc, 0);
    assert_int_equal(b.res.rc, 0);
    assert_int_equal(a.res.file_size, FILE_SIZE);
    assert_int_equal(b.res.file_size, FILE_SIZE);
    assert_file_is_served_file(f, f->path);
    assert_file_is_served_file(f, second);
    capture_clear(&a);
    capture_clear(&b);
    unlink(second);

    o1.max_recv_bps = -1;
    assert_int_equal(http_client_request(f->client, &o1, on_done, &a), EF_EINVAL);
}

static void test_invalid_requests(void **state)
{
    struct fixture *f = *state;
    struct capture cap;
    struct http_request_opts o = {.url = "not a url"};

    capture_init(f, &cap);
    assert_int_equal(http_client_request(f->client, &o, on_done, &cap), EF_EINVAL);
    o.url = "ftp://127.0.0.1/x";
    assert_int_equal(http_client_request(f->client, &o, on_done, &cap), EF_EINVAL);
    o.url = url(f, "/file");
    o.file_path = f->path; /* without expected_size */
    assert_int_equal(http_client_request(f->client, &o, on_done, &cap), EF_EINVAL);
    o.file_path = NULL;
    o.method = "DELETE";
    assert_int_equal(http_client_request(f->client, &o, on_done, &cap), EF_EINVAL);
    o.method = NULL;
    o.if_none_match = "\"x\"\r\nX-Evil: 1";
    assert_int_equal(http_client_request(f->client, &o, on_done, &cap), EF_EINVAL);
    run_for(f, 50);
    assert_int_equal(cap.calls, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_json_etag_then_304, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_sends_json_and_bearer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_download_complete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interrupted_download_resumes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_range_ignored_restarts_from_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_larger_than_expected_stops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_body_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_low_speed_floor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_with_request_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_from_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capped_connections_and_rate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_requests, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
