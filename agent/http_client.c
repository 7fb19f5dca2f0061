/*
 * http_client.c - libcurl's multi interface driven by the agent's libuv loop.
 *
 * libcurl says which sockets to watch (CURLMOPT_SOCKETFUNCTION: one uv_poll
 * per socket) and when it next needs the time (CURLMOPT_TIMERFUNCTION: one
 * uv_timer); both call curl_multi_socket_action, after which finished
 * transfers are read from curl_multi_info_read. Bodies go to memory or, with
 * pwrite, to the target file; the final fsync runs in libuv's thread pool.
 * Callbacks may free the client: `depth` counts our frames on the stack and
 * the teardown waits until the outermost one returns.
 */
#include "agent/http_client.h"
#include "common/ef_error.h"
#include "common/log.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_MAX_BYTES  (1024 * 1024)
#define CONNECT_TIMEOUT_MS 30000L

/*
 * One socket libcurl asked us to watch: its uv_poll_t lives until the close
 * callback, so it is allocated on its own and listed in the client (which
 * closes whatever is left when it is freed).
 */
struct http_sock {
    uv_poll_t poll;             /* watches fd; data points back here */
    curl_socket_t fd;           /* libcurl's socket */
    struct http_client *client; /* owner */
    struct http_sock *prev, *next;
};

enum req_phase {
    REQ_TRANSFER, /* in the multi handle */
    REQ_SYNCING,  /* transfer over, fsync of the file in libuv's thread pool */
};

/*
 * One request from http_client_request to its callback. Owns its easy
 * handle, header list, body buffer and file descriptor.
 */
struct http_req {
    struct http_client *client;
    struct http_req *prev, *next;
    enum req_phase phase;
    CURL *easy;
    struct curl_slist *headers;
    http_done_cb cb; /* NULL once called */
    void *ctx;
    char *body;             /* response body in memory, always NUL-terminated */
    size_t body_len;        /* bytes in body */
    size_t body_cap;        /* bytes allocated for body */
    size_t max_bytes;       /* limit of body_len */
    int fd;                 /* file_path opened for writing, or -1 */
    int64_t expected_size;  /* bytes of the complete file */
    int64_t resume_from;    /* bytes already in the file when this transfer began */
    int64_t written;        /* bytes this transfer wrote after resume_from */
    int64_t content_length; /* of the current response, -1 when not announced */
    bool restarted;         /* the server ignored our Range once: restarted from 0 */
    int abort_rc;           /* why a callback of ours aborted the transfer, or 0 */
    int rc;                 /* outcome handed to cb */
    long status;            /* HTTP status of the last response */
    char etag[96];          /* ETag of the last response, "" when absent */
    uv_fs_t fs;             /* the fsync request */
    char errbuf[CURL_ERROR_SIZE];
};

struct http_client {
    uv_loop_t *loop;         /* borrowed */
    CURLM *multi;            /* owned; NULL once torn down */
    uv_timer_t timer;        /* libcurl's one timeout */
    struct http_req *reqs;   /* requests not yet freed */
    struct http_sock *socks; /* socket watchers not yet closed */
    unsigned open_handles;   /* uv handles whose close callback is still due */
    unsigned syncing;        /* fsync requests still in the thread pool */
    unsigned depth;          /* nesting of our entry points that may run callbacks */
    bool closing;            /* http_client_free was called */
    bool torn_down;          /* transfers cancelled, multi handle gone */
};

static void teardown(struct http_client *c);

/* Frees the client once nothing of libuv refers to it any more. */
static void maybe_release(struct http_client *c)
{
    if (!c->torn_down || c->open_handles > 0 || c->syncing > 0)
        return;
    free(c);
    curl_global_cleanup();
}

static void enter(struct http_client *c)
{
    c->depth++;
}

/* Leaves an entry point; a free requested from a callback happens here, when
 * no frame of ours is left on the stack. */
static void leave(struct http_client *c)
{
    c->depth--;
    if (c->depth == 0 && c->closing && !c->torn_down)
        teardown(c);
}

static int from_curl(CURLcode cc)
{
    switch (cc) {
    case CURLE_OK:
        return 0;
    case CURLE_OPERATION_TIMEDOUT:
        return EF_ETIMEDOUT;
    case CURLE_OUT_OF_MEMORY:
        return EF_ENOMEM;
    case CURLE_FILESIZE_EXCEEDED:
        return EF_ETOOBIG;
    case CURLE_WRITE_ERROR:
        return EF_EIO;
    default:
        return EF_ENET;
    }
}

/* ---- sockets and the timer ---------------------------------------------- */

static void on_sock_closed(uv_handle_t *h)
{
    struct http_sock *s = h->data;
    struct http_client *c = s->client;
    if (s->prev)
        s->prev->next = s->next;
    else
        c->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    free(s);
    c->open_handles--;
    maybe_release(c);
}

static void sock_close(struct http_sock *s)
{
    if (!uv_is_closing((uv_handle_t *)&s->poll))
        uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

static void check_multi_info(struct http_client *c);

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct http_sock *s = h->data;
    struct http_client *c = s->client;
    int flags = 0, running = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    enter(c);
    if (!c->closing) {
        curl_multi_socket_action(c->multi, s->fd, flags, &running);
        check_multi_info(c);
    }
    leave(c);
}

/* CURLMOPT_SOCKETFUNCTION: start, change or stop watching one socket. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct http_client *c = userp;
    struct http_sock *s = socketp;
    int events = 0;
    (void)easy;

    if (what == CURL_POLL_REMOVE) {
        if (s) {
            if (!c->torn_down) /* curl_multi_cleanup is forgetting them all */
                curl_multi_assign(c->multi, fd, NULL);
            sock_close(s);
        }
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s)
            return -1;
        if (uv_poll_init_socket(c->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->fd = fd;
        s->client = c;
        s->poll.data = s;
        s->next = c->socks;
        if (c->socks)
            c->socks->prev = s;
        c->socks = s;
        c->open_handles++;
        curl_multi_assign(c->multi, fd, s);
    }
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    return uv_poll_start(&s->poll, events, on_poll) == 0 ? 0 : -1;
}

static void on_timer(uv_timer_t *t)
{
    struct http_client *c = t->data;
    int running = 0;
    enter(c);
    if (!c->closing) {
        curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        check_multi_info(c);
    }
    leave(c);
}

/* CURLMOPT_TIMERFUNCTION: -1 stops the timer; 0 means "as soon as possible",
 * which a zero uv timer does on the next loop iteration (libcurl must not be
 * re-entered from here). */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct http_client *c = userp;
    (void)multi;
    if (timeout_ms < 0)
        return uv_timer_stop(&c->timer) == 0 ? 0 : -1;
    return uv_timer_start(&c->timer, on_timer, (uint64_t)timeout_ms, 0) == 0 ? 0 : -1;
}

/* ---- response data ------------------------------------------------------ */

/* Bytes of the body land in the file only for a successful transfer; an
 * error answer's body is kept in memory for the caller to read. */
static bool writes_to_file(struct http_req *r)
{
    long status = 0;
    if (r->fd < 0)
        return false;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    return status == 200 || status == 206;
}

static int pwrite_all(int fd, const char *p, size_t len, int64_t off)
{
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return ef_from_errno(errno);
        }
        p += n;
        len -= (size_t)n;
        off += n;
    }
    return 0;
}

static int body_append(struct http_req *r, const char *data, size_t len)
{
    if (len > r->max_bytes - r->body_len)
        return EF_ETOOBIG;
    if (r->body_len + len + 1 > r->body_cap) {
        size_t cap = r->body_cap * 2;
        while (cap < r->body_len + len + 1)
            cap *= 2;
        char *p = realloc(r->body, cap);
        if (!p)
            return EF_ENOMEM;
        r->body = p;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return 0;
}

/* CURLOPT_WRITEFUNCTION. Returning less than len aborts the transfer with
 * CURLE_WRITE_ERROR; abort_rc says why. */
static size_t on_write(char *data, size_t size, size_t nmemb, void *userp)
{
    struct http_req *r = userp;
    size_t len = size * nmemb;
    int rc = 0;

    if (writes_to_file(r)) {
        int64_t start = r->resume_from;
        /* Refuse before writing a byte when the announced size cannot fit,
         * and in any case before the file would grow past expected_size. */
        if ((r->written == 0 && r->content_length >= 0 &&
             r->content_length > r->expected_size - start) ||
            (int64_t)len > r->expected_size - start - r->written) {
            rc = EF_ETOOBIG;
            goto out;
        }
        rc = pwrite_all(r->fd, data, len, start + r->written);
        if (rc == 0)
            r->written += (int64_t)len;
    } else {
        if (r->body_len == 0 && r->content_length >= 0 &&
            (uint64_t)r->content_length > r->max_bytes) {
            rc = EF_ETOOBIG;
            goto out;
        }
        rc = body_append(r, data, len);
    }
out:
    if (rc != 0) {
        r->abort_rc = rc;
        return 0;
    }
    return len;
}

/* If the header line buf (len bytes, CRLF included) is "name: value",
 * points *val at the trimmed value and returns its length, else -1. */
static long header_value(const char *buf, size_t len, const char *name, const char **val)
{
    size_t n = strlen(name);
    if (len <= n || strncasecmp(buf, name, n) != 0 || buf[n] != ':')
        return -1;
    const char *p = buf + n + 1, *end = buf + len;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *val = p;
    return (long)(end - p);
}

/* CURLOPT_HEADERFUNCTION: keeps the ETag and Content-Length of the last
 * response (a status line starts a new one: 100 Continue, redirects). */
static size_t on_header(char *buf, size_t size, size_t nmemb, void *userp)
{
    struct http_req *r = userp;
    size_t len = size * nmemb;
    const char *v = NULL;
    long n;

    if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
        r->etag[0] = '\0';
        r->content_length = -1;
    } else if ((n = header_value(buf, len, "etag", &v)) >= 0) {
        /* A truncated ETag would never match again: keep none instead. */
        if ((size_t)n < sizeof(r->etag)) {
            memcpy(r->etag, v, (size_t)n);
            r->etag[n] = '\0';
        } else {
            r->etag[0] = '\0';
        }
    } else if ((n = header_value(buf, len, "content-length", &v)) > 0 && n <= 18) {
        int64_t cl = 0;
        for (long i = 0; i < n && cl >= 0; i++)
            cl = (v[i] >= '0' && v[i] <= '9') ? cl * 10 + (v[i] - '0') : -1;
        r->content_length = cl;
    }
    return len;
}

/* ---- ending a request --------------------------------------------------- */

static void req_unlink(struct http_req *r)
{
    struct http_client *c = r->client;
    if (r->prev)
        r->prev->next = r->next;
    else
        c->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
}

/* Frees a request that is out of the multi handle and the thread pool. */
static void req_free(struct http_req *r)
{
    if (!r)
        return;
    if (r->fd >= 0)
        close(r->fd);
    if (r->easy)
        curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    free(r->body);
    free(r);
}

/* Calls the request's callback once with its outcome. */
static void req_deliver(struct http_req *r)
{
    struct http_result res;
    struct stat st;
    http_done_cb cb = r->cb;

    if (!cb)
        return;
    r->cb = NULL;
    memset(&res, 0, sizeof(res));
    res.rc = r->rc;
    res.status = r->status;
    res.body = r->body;
    res.body_len = r->body_len;
    memcpy(res.etag, r->etag, sizeof(res.etag));
    if (r->fd >= 0 && fstat(r->fd, &st) == 0)
        res.file_size = (int64_t)st.st_size;
    if (r->rc != 0)
        ef_debug("http_request_failed", "status=%ld rc=%s curl=\"%s\"", r->status,
                 ef_errname(r->rc), r->errbuf);
    cb(r->ctx, &res);
}

static void on_synced(uv_fs_t *fs)
{
    struct http_req *r = fs->data;
    struct http_client *c = r->client;

    if (fs->result < 0 && r->rc == 0)
        r->rc = EF_EIO;
    uv_fs_req_cleanup(fs);
    c->syncing--;
    req_unlink(r);
    enter(c);
    req_deliver(r); /* no-op when the client was freed meanwhile */
    req_free(r);
    if (c->torn_down) {
        c->depth--;
        maybe_release(c);
    } else {
        leave(c);
    }
}

/* The transfer is over: fsync the file in the thread pool (the partial file
 * is what a later request resumes from), then deliver. */
static void req_complete(struct http_req *r)
{
    struct http_client *c = r->client;
    curl_multi_remove_handle(c->multi, r->easy);
    if (r->fd >= 0) {
        r->fs.data = r;
        if (uv_fs_fsync(c->loop, &r->fs, r->fd, on_synced) == 0) {
            r->phase = REQ_SYNCING;
            c->syncing++;
            return;
        }
        if (r->rc == 0)
            r->rc = EF_EIO;
    }
    req_unlink(r);
    req_deliver(r);
    req_free(r);
}

/* The server ignored or refused our Range: start over from byte 0 on the
 * same easy handle. */
static int req_restart(struct http_req *r)
{
    struct http_client *c = r->client;
    curl_multi_remove_handle(c->multi, r->easy);
    if (ftruncate(r->fd, 0) != 0)
        return ef_from_errno(errno);
    ef_info("http_resume_refused", "status=%ld offset=%lld", r->status, (long long)r->resume_from);
    r->restarted = true;
    r->resume_from = 0;
    r->written = 0;
    r->abort_rc = 0;
    r->body_len = 0;
    r->body[0] = '\0';
    r->etag[0] = '\0';
    r->content_length = -1;
    r->status = 0;
    r->errbuf[0] = '\0';
    curl_easy_setopt(r->easy, CURLOPT_RESUME_FROM_LARGE, (curl_off_t)0);
    return curl_multi_add_handle(c->multi, r->easy) == CURLM_OK ? 0 : EF_ENOMEM;
}

static void req_finish(struct http_req *r, CURLcode cc)
{
    curl_off_t connected_us = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->status);
    r->rc = r->abort_rc ? r->abort_rc : from_curl(cc);
    /* Timing out before the connection was made is an unreachable server,
     * not a slow transfer. */
    if (r->rc == EF_ETIMEDOUT &&
        curl_easy_getinfo(r->easy, CURLINFO_CONNECT_TIME_T, &connected_us) == CURLE_OK &&
        connected_us == 0)
        r->rc = EF_ENET;
    /* libcurl answers CURLE_RANGE_ERROR when a 200 (or a 206 for another
     * range) comes back to a resumed GET; a 416 for a partial file means the
     * server's file is not the one we hold part of. */
    if (r->fd >= 0 && r->resume_from > 0 && !r->restarted &&
        (cc == CURLE_RANGE_ERROR ||
         (cc == CURLE_OK && r->status == 416 && r->resume_from != r->expected_size))) {
        int rc = req_restart(r);
        if (rc == 0)
            return;
        r->rc = rc;
    }
    req_complete(r);
}

static void check_multi_info(struct http_client *c)
{
    CURLMsg *m;
    int left = 0;
    while (!c->closing && (m = curl_multi_info_read(c->multi, &left)) != NULL) {
        char *priv = NULL;
        CURLcode cc = m->data.result;
        if (m->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
        req_finish((struct http_req *)(void *)priv, cc);
    }
}

/* ---- teardown ----------------------------------------------------------- */

static void on_timer_closed(uv_handle_t *h)
{
    struct http_client *c = h->data;
    c->open_handles--;
    maybe_release(c);
}

/* Cancels every request, then closes the multi handle and the uv handles.
 * Callbacks run here (with EF_EBUSY); the memory goes when libuv has closed
 * the handles and the thread pool has returned the fsync requests. */
static void teardown(struct http_client *c)
{
    struct http_req *r, *next;
    c->torn_down = true;
    c->depth++;
    for (r = c->reqs; r; r = next) {
        next = r->next;
        r->rc = EF_EBUSY;
        if (r->phase == REQ_SYNCING) {
            req_deliver(r); /* freed by on_synced */
            continue;
        }
        curl_multi_remove_handle(c->multi, r->easy);
        req_unlink(r);
        req_deliver(r);
        req_free(r);
    }
    curl_multi_cleanup(c->multi); /* may still report sockets as removed */
    c->multi = NULL;
    for (struct http_sock *s = c->socks; s; s = s->next)
        sock_close(s);
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
    c->depth--;
}

/* ---- API ---------------------------------------------------------------- */

int http_client_new(uv_loop_t *loop, struct http_client **out)
{
    int rc = 0;
    bool global = false;
    struct http_client *c = NULL;

    if (!loop || !out)
        return EF_EINVAL;
    *out = NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        rc = EF_ENET;
        goto out;
    }
    global = true;
    c = calloc(1, sizeof(*c));
    if (!c) {
        rc = EF_ENOMEM;
        goto out;
    }
    c->loop = loop;
    c->multi = curl_multi_init();
    if (!c->multi) {
        rc = EF_ENET;
        goto out;
    }
    if (curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket) != CURLM_OK ||
        curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c) != CURLM_OK ||
        curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer) != CURLM_OK ||
        curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c) != CURLM_OK) {
        rc = EF_ENET;
        goto out;
    }
    if (uv_timer_init(loop, &c->timer) != 0) {
        rc = EF_ENOMEM;
        goto out;
    }
    c->timer.data = c;
    c->open_handles = 1;
    *out = c;
    c = NULL;
    global = false;
out:
    if (c) {
        if (c->multi)
            curl_multi_cleanup(c->multi);
        free(c);
    }
    if (global)
        curl_global_cleanup();
    return rc;
}

int http_client_set_max_connections(struct http_client *c, long n)
{
    if (!c || n < 0 || c->closing ||
        curl_multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, n) != CURLM_OK)
        return EF_EINVAL;
    return 0;
}

/* Header values come from us, but one with a line break would smuggle
 * headers in. */
static bool header_safe(const char *v)
{
    return strpbrk(v, "\r\n") == NULL;
}

static int add_header(struct curl_slist **list, const char *name, const char *value)
{
    size_t n = strlen(name) + strlen(value) + 3;
    char *line = malloc(n);
    struct curl_slist *l;
    if (!line)
        return EF_ENOMEM;
    snprintf(line, n, "%s: %s", name, value);
    l = curl_slist_append(*list, line);
    sodium_memzero(line, n); /* it may hold the bearer token */
    free(line);
    if (!l)
        return EF_ENOMEM;
    *list = l;
    return 0;
}

static int check_opts(const struct http_request_opts *o, bool *post)
{
    int rc = 0;
    CURLU *u = NULL;
    char *scheme = NULL;

    *post = false;
    if (!o->url || !o->url[0])
        return EF_EINVAL;
    if (o->method && strcmp(o->method, "POST") == 0)
        *post = true;
    else if (o->method && strcmp(o->method, "GET") != 0)
        return EF_EINVAL;
    if ((o->json_body && !*post) || (o->file_path && (*post || o->expected_size <= 0)))
        return EF_EINVAL;
    if ((o->bearer && !header_safe(o->bearer)) ||
        (o->if_none_match && !header_safe(o->if_none_match)))
        return EF_EINVAL;
    if (o->low_speed_bytes < 0 || o->low_speed_seconds < 0 || o->timeout_ms < 0 ||
        o->max_recv_bps < 0)
        return EF_EINVAL;
    u = curl_url();
    if (!u)
        return EF_ENOMEM;
    if (curl_url_set(u, CURLUPART_URL, o->url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        rc = EF_EINVAL;
        goto out;
    }
out:
    curl_free(scheme);
    curl_url_cleanup(u);
    return rc;
}

/* Opens the target file and decides where the transfer starts: at its
 * current size, or at 0 when what is there is longer than the whole file. */
static int open_target(struct http_req *r, const char *path)
{
    struct stat st;
    r->fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (r->fd < 0)
        return ef_from_errno(errno);
    if (fstat(r->fd, &st) != 0)
        return ef_from_errno(errno);
    r->resume_from = (int64_t)st.st_size;
    if (r->resume_from > r->expected_size) {
        if (ftruncate(r->fd, 0) != 0)
            return ef_from_errno(errno);
        r->resume_from = 0;
    }
    return 0;
}

int http_client_request(struct http_client *c, const struct http_request_opts *opts,
                        http_done_cb cb, void *ctx)
{
    int rc = 0;
    bool post = false;
    struct http_req *r = NULL;
    CURL *e;

    if (!c || !opts || !cb)
        return EF_EINVAL;
    if (c->closing)
        return EF_EBUSY;
    rc = check_opts(opts, &post);
    if (rc != 0)
        goto out;
    r = calloc(1, sizeof(*r));
    if (!r) {
        rc = EF_ENOMEM;
        goto out;
    }
    r->client = c;
    r->fd = -1;
    r->cb = cb;
    r->ctx = ctx;
    r->content_length = -1;
    r->max_bytes = opts->max_bytes ? opts->max_bytes : DEFAULT_MAX_BYTES;
    r->body_cap = 1024;
    r->body = malloc(r->body_cap);
    r->easy = e = curl_easy_init();
    if (!r->body || !e) {
        rc = EF_ENOMEM;
        goto out;
    }
    r->body[0] = '\0';
    if (opts->file_path) {
        r->expected_size = opts->expected_size;
        rc = open_target(r, opts->file_path);
        if (rc != 0)
            goto out;
    }

    if (opts->bearer) {
        size_t n = strlen(opts->bearer) + sizeof("Bearer ");
        char *v = malloc(n);
        if (!v) {
            rc = EF_ENOMEM;
            goto out;
        }
        snprintf(v, n, "Bearer %s", opts->bearer);
        rc = add_header(&r->headers, "Authorization", v);
        sodium_memzero(v, n);
        free(v);
        if (rc != 0)
            goto out;
    }
    if (opts->if_none_match &&
        (rc = add_header(&r->headers, "If-None-Match", opts->if_none_match)) != 0)
        goto out;
    if (post && ((rc = add_header(&r->headers, "Content-Type", "application/json")) != 0 ||
                 (rc = add_header(&r->headers, "Expect", "")) != 0))
        goto out;

    if (curl_easy_setopt(e, CURLOPT_URL, opts->url) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)r) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_WRITEDATA, r) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_HEADERDATA, r) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers) != CURLE_OK) {
        rc = EF_ENOMEM;
        goto out;
    }
    if (opts->low_speed_seconds > 0 &&
        (curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, opts->low_speed_bytes) != CURLE_OK ||
         curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, opts->low_speed_seconds) != CURLE_OK)) {
        rc = EF_EINVAL;
        goto out;
    }
    if (opts->timeout_ms > 0 &&
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, opts->timeout_ms) != CURLE_OK) {
        rc = EF_EINVAL;
        goto out;
    }
    if (opts->max_recv_bps > 0 && curl_easy_setopt(e, CURLOPT_MAX_RECV_SPEED_LARGE,
                                                   (curl_off_t)opts->max_recv_bps) != CURLE_OK) {
        rc = EF_EINVAL;
        goto out;
    }
    if (post) {
        const char *body = opts->json_body ? opts->json_body : "";
        if (curl_easy_setopt(e, CURLOPT_POST, 1L) != CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body)) !=
                CURLE_OK ||
            curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body) != CURLE_OK) {
            rc = EF_ENOMEM;
            goto out;
        }
    }
    if (r->fd >= 0 && r->resume_from > 0 &&
        curl_easy_setopt(e, CURLOPT_RESUME_FROM_LARGE, (curl_off_t)r->resume_from) != CURLE_OK) {
        rc = EF_EINVAL;
        goto out;
    }
    if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
        rc = EF_ENOMEM;
        goto out;
    }
    r->phase = REQ_TRANSFER;
    r->next = c->reqs;
    if (c->reqs)
        c->reqs->prev = r;
    c->reqs = r;
    r = NULL;
out:
    req_free(r);
    return rc;
}

void http_client_free(struct http_client *c)
{
    if (!c || c->closing)
        return;
    c->closing = true;
    if (c->depth == 0)
        teardown(c);
}
