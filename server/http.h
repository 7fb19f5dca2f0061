/*
 * http.h - the HTTP front: libmicrohttpd daemon, route matching, request
 * bodies, authentication hook, replies and the request log.
 *
 * A request is matched against the static route table (routes.c) on its first
 * callback; authentication, the content type and the declared length are
 * checked before any byte of the body is read. Bodies are collected (JSON into
 * memory up to the route's limit, multipart uploads streamed to temporary
 * files) and the route's handler runs once, when the body is complete. Every
 * handler answers through one of the http_reply_* functions, which return the
 * value the handler returns. Errors are {"error":{"code","message"}}.
 */
#ifndef EF_HTTP_H
#define EF_HTTP_H

#include "server/auth.h"
#include "common/crypto.h"

#include <jansson.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct server;
struct request;
struct http;

enum body_kind {
    BODY_NONE,      /* no body expected; any body is refused with 400 */
    BODY_JSON,      /* application/json, at most cfg.max_json bytes */
    BODY_MULTIPART, /* multipart/form-data, at most cfg.max_upload bytes */
    BODY_JSON_BULK, /* application/json, at most HTTP_MAX_BULK_JSON bytes; the handler parses it */
};

/* The body limit of BODY_JSON_BULK routes (device sample uploads). */
#define HTTP_MAX_BULK_JSON (1u << 20)

/* Who may call a route: a bitmask. API roles are ordered, so ACCESS_VIEWER
 * admits operators and admins too. */
enum access {
    ACCESS_PUBLIC = 1 << 0,   /* no credentials needed */
    ACCESS_VIEWER = 1 << 1,   /* API token of any role */
    ACCESS_OPERATOR = 1 << 2, /* API token, operator or admin */
    ACCESS_ADMIN = 1 << 3,    /* API token, admin */
    ACCESS_DEVICE = 1 << 4,   /* a device token; the handler checks which device */
    ACCESS_ENROLL = 1 << 5,   /* an enrollment token */
};

typedef enum MHD_Result (*route_handler)(struct request *req);

struct route {
    const char *method;   /* "GET", "POST", "PUT", "PATCH", "DELETE" */
    const char *pattern;  /* "/api/v1/models/{name}"; a {x} segment captures one segment */
    unsigned access;      /* enum access bits */
    enum body_kind body;  /* what body the route takes */
    route_handler handle; /* runs once the body is complete */
};

/* The static route table, terminated by an entry with method NULL. */
extern const struct route routes[];

#define HTTP_MAX_PARAMS 4
#define HTTP_PARAM_SIZE 128

/* One part of a multipart body. A part with a filename is streamed to a
 * temporary file (path, size, sha256); any other part is held in memory. */
struct upload_part {
    char name[32];               /* form field name */
    char *data;                  /* in-memory value (NUL-terminated), or NULL */
    size_t size;                 /* bytes received */
    char *path;                  /* temporary file, or NULL; removed when the request ends */
    int fd;                      /* open while the file part is being received, else -1 */
    struct ef_sha256 hash;       /* running hash of a file part */
    char sha256[EF_HEX256_SIZE]; /* of a file part, once complete */
};
/* In-memory parts (meta, manifest, signature) are bounded separately from files. */
#define HTTP_MAX_MEMORY_PART (4u << 20)
#define HTTP_MAX_PARTS       4

/* Per-request state, MHD's con_cls: created on the first callback, freed in
 * the completion callback. */
struct request {
    struct server *srv;          /* borrowed */
    struct MHD_Connection *conn; /* borrowed */
    const struct route *route;   /* matched route */
    const char *method;          /* borrowed from MHD */
    const char *path;            /* borrowed from MHD */
    char allow[64];              /* methods of this path, when the method did not match */
    char params[HTTP_MAX_PARAMS][HTTP_PARAM_SIZE]; /* captured {x} segments, in order */
    struct principal who;                          /* the authenticated caller */
    char *body;                                    /* JSON body, NUL-terminated, owned */
    size_t body_len;                               /* bytes of body */
    bool body_too_large;                           /* the body went over the route's limit */
    struct MHD_PostProcessor *post;                /* multipart parser, owned */
    struct upload_part parts[HTTP_MAX_PARTS];
    size_t part_count;
    int upload_error;        /* first EF_E* error while receiving parts */
    unsigned status;         /* status answered, for the log and audit */
    enum MHD_Result replied; /* what queueing the answer returned */
    char audit_detail[256];  /* what the handler wants in the audit row */
    int64_t started_us;      /* monotonic, for the request log */
};

/* Starts the daemon on cfg.listen_host:listen_port (epoll, thread pool);
 * port 0 picks a free port, written back to srv->cfg.listen_port.
 * EF_EINVAL for a host that is not an IPv4 address, EF_EIO when it cannot bind. */
int http_start(struct server *srv, struct http **out);

/* Stops the daemon and waits for in-flight requests; accepts NULL. */
void http_stop(struct http *h);

/* Finds the route of method and path in the route table, capturing its {x}
 * segments into params. When no route matches but the path is known with
 * other methods, allow receives them ("GET, POST") for 405's Allow header,
 * else the empty string. Returns NULL when nothing matches. */
const struct route *http_route_find(const char *method, const char *path,
                                    char params[HTTP_MAX_PARAMS][HTTP_PARAM_SIZE], char *allow,
                                    size_t allow_size);

/* Returns the captured path segment i (borrowed). */
const char *http_param(const struct request *req, size_t i);

/* Returns a query-string argument (borrowed) or NULL. */
const char *http_query(const struct request *req, const char *key);

/* Returns a request header (borrowed) or NULL. */
const char *http_header(const struct request *req, const char *name);

/* Returns the multipart part called name, or NULL. */
const struct upload_part *http_part(const struct request *req, const char *name);

/* Parses the JSON body into *out (new reference) or answers 400
 * malformed_json (or 400 bad_request when it is not an object) itself and returns false;
 * the handler then returns http_replied(req). */
bool http_json_body_or_reply(struct request *req, json_t **out);

/* The result of the reply queued by an *_or_reply helper. */
enum MHD_Result http_replied(struct request *req);

/* Replies with a JSON document (stolen, may be NULL for an empty object).
 * A GET answered 200 carries an ETag of the document's bytes, and is
 * answered 304 without a body when If-None-Match already names it: the
 * dashboard's polls of what did not change cost no transfer. */
enum MHD_Result http_reply_json(struct request *req, unsigned status, json_t *doc);

/* Whether an If-None-Match header value lists etag (or is "*"); the weak
 * comparison RFC 9110 asks for GET. */
bool http_etag_listed(const char *header, const char *etag);

/* Replies {"error":{"code":code,"message":...}} with status. */
enum MHD_Result http_reply_error(struct request *req, unsigned status, const char *code,
                                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Maps an EF_E* code to a status and code name and replies with message. */
enum MHD_Result http_reply_ef_error(struct request *req, int ef_code, const char *message);

/* Replies with a copy of len bytes and a content type; etag may be NULL. */
enum MHD_Result http_reply_bytes(struct request *req, unsigned status, const char *content_type,
                                 const void *data, size_t len, const char *etag);

/* Replies with a file's contents (streamed from its descriptor), or with the
 * part a single-range Range header asks for (206 with Content-Range; 416 when
 * it starts beyond the end). */
enum MHD_Result http_reply_file(struct request *req, const char *path, const char *content_type,
                                const char *etag);

/* Replies with no body (204, 304). etag may be NULL. */
enum MHD_Result http_reply_empty(struct request *req, unsigned status, const char *etag);

#endif
