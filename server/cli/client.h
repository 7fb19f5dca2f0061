/*
 * client.h - the CLI's HTTP client for the REST API (libcurl + Jansson).
 *
 * One libcurl easy handle per call. Requests carry the bearer token and a
 * JSON body or a multipart form; responses are kept raw (so --json can print
 * them as the server sent them) and parsed. Every failure is reported here,
 * as exactly one line on stderr, so callers only check the return code:
 *   edgefleet: <code>: <message> (HTTP <status>)   an error from the API
 *   edgefleet: network_error: <what curl said> (<server URL>)
 * The token is never printed.
 */
#ifndef EF_CLI_CLIENT_H
#define EF_CLI_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define CLIENT_MAX_RESPONSE      (64u << 20) /* bytes; the largest body read back */
#define CLIENT_CONNECT_TIMEOUT_S 10L         /* seconds to establish a connection */
#define CLIENT_STALL_TIMEOUT_S   60L         /* seconds without progress before giving up */

/* Where and as whom to call. Strings are borrowed. */
struct client {
    const char *base_url; /* "http://127.0.0.1:8080"; a trailing '/' is ignored */
    const char *token;    /* bearer token, or NULL to send none; never printed */
    bool progress;        /* draw an upload progress bar on stderr */
    bool raw;             /* keep a 2xx body as bytes (an artifact, a data set): no JSON parse */
};

/* A successful response. */
struct client_response {
    long status; /* HTTP status, 2xx */
    char *body;  /* raw body, NUL-terminated, owned; NULL when empty */
    size_t len;  /* bytes in body */
    json_t *doc; /* the parsed body (owned), NULL when empty */
};

/* One part of a multipart/form-data upload: a file streamed from disk or
 * bytes in memory. */
struct client_part {
    const char *name; /* form field name ("artifact") */
    const char *file; /* path to stream, or NULL to send data */
    const char *data; /* bytes when file is NULL (borrowed) */
    size_t len;       /* bytes in data */
    const char *type; /* content type, or NULL */
};

/*
 * Sends method path (path begins with '/', query included) with body as JSON
 * when not NULL. On a 2xx status fills resp (release with
 * client_response_release) and returns 0. Otherwise prints the one-line
 * error and returns EF_ENET (no answer), EF_EPARSE (a 2xx body that is not
 * JSON), EF_ETOOBIG (body above CLIENT_MAX_RESPONSE), EF_ENOMEM, or the
 * code matching the HTTP status (EF_EAUTH 401, EF_EPERM 403, EF_ENOENT 404,
 * EF_ECONFLICT 409, EF_ETOOBIG 413, EF_EINVAL other 4xx, EF_EIO 5xx).
 */
int client_call(const struct client *c, const char *method, const char *path, const json_t *body,
                struct client_response *resp);

/* POSTs a multipart/form-data body of n parts to path; otherwise as
 * client_call. A file part that cannot be read fails with EF_EIO. */
int client_upload(const struct client *c, const char *path, const struct client_part *parts,
                  size_t n, struct client_response *resp);

/* Frees what a response owns and clears it; accepts a cleared response. */
void client_response_release(struct client_response *resp);

/*
 * Builds "path?k1=v1&k2=v2" from npairs key/value pairs (pairs[2i] the key,
 * pairs[2i+1] the value); pairs whose value is NULL are left out and values
 * are percent-encoded. Returns a malloc'd string, or NULL when out of memory.
 */
char *client_query_path(const char *path, const char *const *pairs, size_t npairs);

/* Formats the error line for an API error body (may be NULL or not JSON)
 * into buf: "<code>: <message> (HTTP <status>)". Exposed for tests. */
void client_error_line(long status, const char *body, size_t len, char *buf, size_t size);

#endif
