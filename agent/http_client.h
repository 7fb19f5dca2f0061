/*
 * http_client.h - HTTP requests on the agent's libuv loop: libcurl's multi
 * interface driven by uv_poll (its sockets) and a uv_timer (its timeouts), so
 * downloads never block the loop that serves inferences.
 *
 * A request either collects a small body in memory (at most max_bytes) or
 * streams into a file: when the file exists, the transfer resumes with a
 * Range request from its current size; the transfer stops with EF_ETOOBIG as
 * soon as the file would exceed expected_size. A transfer slower than
 * low_speed_bytes per second for low_speed_seconds is aborted (EF_ETIMEDOUT).
 * Connecting takes at most 30 s (then EF_ENET). Retries are the caller's business (it knows
 * what is worth retrying); a partial file is kept, fsync'd, for the next try.
 *
 * Streaming into a file: only a 200 or 206 answer writes to it; a server that
 * answers a Range request with 200 gets the file truncated and the transfer
 * restarted from byte 0 (once); a 416 to a file that already holds
 * expected_size bytes is a complete download (rc 0, status 416). Any other
 * answer leaves the file alone and its body in memory. The caller checks
 * rc == 0 and file_size == expected_size (then the hash).
 */
#ifndef EF_AGENT_HTTP_CLIENT_H
#define EF_AGENT_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct http_client;

struct http_request_opts {
    const char *url;           /* absolute URL */
    const char *method;        /* "GET" (default when NULL) or "POST" */
    const char *bearer;        /* Authorization: Bearer token, or NULL */
    const char *if_none_match; /* ETag to send as If-None-Match, or NULL */
    const char *json_body;     /* body for POST (application/json), or NULL */
    size_t max_bytes;          /* in-memory body limit (default 1 MiB when 0) */
    const char *file_path;     /* stream the body here instead (GET only; created 0600,
                                  resumed by Range) */
    int64_t expected_size;     /* with file_path: the complete file's size, > 0 */
    long low_speed_bytes;      /* abort below this many bytes/s ... */
    long low_speed_seconds;    /* ... for this long (0: no floor) */
    long timeout_ms;           /* whole transfer (0: none) */
    long max_recv_bps;         /* receive at most this many bytes/s (0: no cap) */
};

struct http_result {
    int rc;            /* 0 (whatever the HTTP status), or EF_ENET, EF_ETIMEDOUT,
                          EF_ETOOBIG, EF_EIO, EF_ENOMEM, EF_EBUSY (client freed) */
    long status;       /* HTTP status, 0 when none was received */
    char *body;        /* in-memory body (an error answer's, in file mode), never
                          NULL, NUL-terminated; borrowed during the callback */
    size_t body_len;   /* bytes of body */
    char etag[96];     /* ETag response header, "" when absent */
    int64_t file_size; /* with file_path: the file's size after the transfer, else 0 */
};

/* Called once on the loop thread when a request ends, whatever the outcome
 * (with rc EF_EBUSY when the client is freed first). res is borrowed. */
typedef void (*http_done_cb)(void *ctx, const struct http_result *res);

/* New client on loop (borrowed; it must outlive the client). EF_EINVAL,
 * EF_ENOMEM, EF_ENET (curl failed to initialise). */
int http_client_new(uv_loop_t *loop, struct http_client **out);

/* Caps the connections the client holds open at once (0: no cap, the
 * default); requests beyond the cap wait for a free connection. One client
 * shared by many devices (edgefleet-sim) bounds its file descriptors so.
 * EF_EINVAL (negative, or libcurl refused). */
int http_client_set_max_connections(struct http_client *c, long n);

/* Starts a request; cb is called exactly once, later, on the loop. Strings in
 * opts are copied. When this returns an error, cb is never called.
 * EF_EINVAL (bad URL, method, header value or option mix), EF_ENOMEM,
 * EF_EIO and other errno codes (file_path cannot be opened), EF_EBUSY (the
 * client is being freed). */
int http_client_request(struct http_client *c, const struct http_request_opts *opts,
                        http_done_cb cb, void *ctx);

/* Cancels every request: their callbacks run with rc EF_EBUSY before this
 * returns. The memory goes once libuv has closed the handles, so run the loop
 * again before uv_loop_close. May be called from a request's callback.
 * Accepts NULL. */
void http_client_free(struct http_client *c);

#endif
