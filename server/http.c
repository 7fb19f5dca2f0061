/*
 * http.c - the HTTP front on libmicrohttpd: the daemon, route matching,
 * authentication and body checks before any body is read, body collection,
 * replies, the request log and the audit trail of every change and refusal.
 */
#include "server/http.h"
#include "server/db.h"
#include "server/server.h"
#include "server/web.h"
#include "common/clock.h"
#include "common/crypto.h"
#include "common/ef_error.h"
#include "common/fsutil.h"
#include "common/json_util.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

struct http {
    struct MHD_Daemon *daemon; /* owned */
    struct server *srv;        /* borrowed */
};

/* The post processor's buffer: how much of a multipart body it handles per
 * callback. Large enough that artifact chunks arrive in few calls. */
#define POST_BUFFER_SIZE (64u * 1024u)

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- replies ----------------------------------------------------------- */

/* Hex digits of the SHA-256 of a JSON answer that make its ETag. */
#define HTTP_JSON_ETAG_HEX 32

static enum MHD_Result queue(struct request *req, unsigned status, struct MHD_Response *resp,
                             const char *content_type, const char *etag)
{
    if (!resp) {
        req->status = 500;
        req->replied = MHD_NO;
        return MHD_NO;
    }
    if (content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (etag)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, req->allow);
    if (status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    req->status = status;
    req->replied = MHD_queue_response(req->conn, status, resp);
    MHD_destroy_response(resp);
    return req->replied;
}

enum MHD_Result http_reply_bytes(struct request *req, unsigned status, const char *content_type,
                                 const void *data, size_t len, const char *etag)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    return queue(req, status, resp, content_type, etag);
}

bool http_etag_listed(const char *header, const char *etag)
{
    size_t etag_len = strlen(etag);
    const char *p = header;
    while (p && *p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '*')
            return true;
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len == etag_len && memcmp(p, etag, len) == 0)
            return true;
        p = end;
    }
    return false;
}

enum MHD_Result http_reply_json(struct request *req, unsigned status, json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : strdup("{}");
    json_decref(doc);
    if (!text)
        return http_reply_bytes(req, 500, "application/json",
                                "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}",
                                58, NULL);
    size_t len = strlen(text);
    char etag[2 + HTTP_JSON_ETAG_HEX + 1] = "";
    if (status == MHD_HTTP_OK && req->method && strcmp(req->method, "GET") == 0) {
        char hex[EF_HEX256_SIZE];
        ef_sha256_hex(text, len, hex);
        snprintf(etag, sizeof(etag), "\"%.*s\"", HTTP_JSON_ETAG_HEX, hex);
        const char *inm = http_header(req, "If-None-Match");
        if (inm && http_etag_listed(inm, etag)) {
            free(text);
            return http_reply_empty(req, MHD_HTTP_NOT_MODIFIED, etag);
        }
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!resp)
        free(text);
    return queue(req, status, resp, "application/json", etag[0] ? etag : NULL);
}

enum MHD_Result http_reply_error(struct request *req, unsigned status, const char *code,
                                 const char *fmt, ...)
{
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    if (!req->audit_detail[0])
        snprintf(req->audit_detail, sizeof(req->audit_detail), "%.40s: %.200s", code, message);
    return http_reply_json(req, status,
                           json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", message));
}

enum MHD_Result http_reply_ef_error(struct request *req, int ef_code, const char *message)
{
    unsigned status = 500;
    const char *code = "internal";
    switch (ef_code) {
    case EF_ENOENT:
        status = 404, code = "not_found";
        break;
    case EF_EEXIST:
    case EF_ECONFLICT:
        status = 409, code = "conflict";
        break;
    case EF_ESTALE:
        status = 409, code = "version_not_increasing";
        break;
    case EF_EINVAL:
    case EF_EMISMATCH:
    case EF_EUNSUPPORTED:
        status = 422, code = "unprocessable";
        break;
    case EF_EPARSE:
        status = 400, code = "malformed_json";
        break;
    case EF_ETOOBIG:
        status = 413, code = "payload_too_large";
        break;
    case EF_EAUTH:
        status = 401, code = "unauthenticated";
        break;
    case EF_EPERM:
        status = 403, code = "forbidden";
        break;
    case EF_EBADSIG:
        status = 422, code = "bad_signature";
        break;
    case EF_EHASH:
        status = 422, code = "hash_mismatch";
        break;
    case EF_EBUSY:
        status = 503, code = "busy";
        break;
    default:
        break;
    }
    return http_reply_error(req, status, code, "%s", message ? message : ef_strerror(ef_code));
}

/* Parses a single-range "bytes=START-" or "bytes=START-END" header against a
 * file of size bytes. Returns 1 with [*first, *last] for a satisfiable range,
 * 0 when the header is absent or not of that form (serve the whole file: RFC
 * 9110 lets a server ignore Range), -1 when it starts beyond the end (416). */
static int range_parse(const char *h, uint64_t size, uint64_t *first, uint64_t *last)
{
    char *end = NULL;
    if (!h || strncmp(h, "bytes=", 6) != 0 || h[6] < '0' || h[6] > '9')
        return 0;
    unsigned long long a = strtoull(h + 6, &end, 10), b = 0;
    if (*end != '-')
        return 0;
    if (end[1] == '\0') {
        b = size ? size - 1 : 0;
    } else {
        char *stop = NULL;
        b = strtoull(end + 1, &stop, 10);
        if (*stop || b < a)
            return 0;
        if (b >= size)
            b = size ? size - 1 : 0;
    }
    if (a >= size)
        return -1;
    *first = a;
    *last = b;
    return 1;
}

enum MHD_Result http_reply_file(struct request *req, const char *path, const char *content_type,
                                const char *etag)
{
    struct stat st;
    char content_range[96];
    uint64_t first = 0, last = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0)
            close(fd);
        ef_error("http_file_missing", "path=%s errno=%d", path, errno);
        return http_reply_error(req, 500, "internal", "stored file is missing");
    }
    /* Devices resume interrupted downloads with a Range from what they hold. */
    int range =
        range_parse(http_header(req, MHD_HTTP_HEADER_RANGE), (uint64_t)st.st_size, &first, &last);
    if (range < 0) {
        close(fd);
        snprintf(content_range, sizeof(content_range), "bytes */%lld", (long long)st.st_size);
        struct MHD_Response *resp =
            MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        if (resp)
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, content_range);
        return queue(req, 416, resp, NULL, etag);
    }
    /* MHD owns fd from here and closes it with the response. */
    struct MHD_Response *resp =
        range > 0 ? MHD_create_response_from_fd_at_offset64(last - first + 1, fd, first)
                  : MHD_create_response_from_fd((uint64_t)st.st_size, fd);
    if (!resp) {
        close(fd);
    } else {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
        if (range > 0) {
            snprintf(content_range, sizeof(content_range), "bytes %llu-%llu/%lld",
                     (unsigned long long)first, (unsigned long long)last, (long long)st.st_size);
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, content_range);
        }
    }
    return queue(req, range > 0 ? 206 : 200, resp, content_type, etag);
}

enum MHD_Result http_reply_empty(struct request *req, unsigned status, const char *etag)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    return queue(req, status, resp, NULL, etag);
}

enum MHD_Result http_replied(struct request *req)
{
    return req->replied;
}

/* ---- request accessors -------------------------------------------------- */

const char *http_param(const struct request *req, size_t i)
{
    return i < HTTP_MAX_PARAMS ? req->params[i] : "";
}

const char *http_query(const struct request *req, const char *key)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *http_header(const struct request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const struct upload_part *http_part(const struct request *req, const char *name)
{
    for (size_t i = 0; i < req->part_count; i++)
        if (strcmp(req->parts[i].name, name) == 0)
            return &req->parts[i];
    return NULL;
}

bool http_json_body_or_reply(struct request *req, json_t **out)
{
    char msg[200];
    *out = NULL;
    if (!req->body || req->body_len == 0) {
        http_reply_error(req, 400, "malformed_json", "a JSON object body is required");
        return false;
    }
    int rc = ef_json_load(req->body, req->body_len, req->srv->cfg.max_json, out, msg, sizeof(msg));
    if (rc == EF_ETOOBIG) {
        http_reply_error(req, 413, "payload_too_large", "%s", msg);
        return false;
    }
    if (rc != 0) {
        /* Jansson refuses bare values ("x", 42) by default: valid JSON, wrong
         * shape, so they get the same answer as an array would. */
        json_t *any =
            json_loadb(req->body, req->body_len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
        if (any) {
            json_decref(any);
            http_reply_error(req, 400, "bad_request", "the body must be a JSON object");
        } else {
            http_reply_error(req, 400, "malformed_json", "%s", msg);
        }
        return false;
    }
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        http_reply_error(req, 400, "bad_request", "the body must be a JSON object");
        return false;
    }
    return true;
}

/* ---- routing ------------------------------------------------------------ */

/* Matches path against a pattern, capturing {x} segments into params.
 * Captured segments are 1..HTTP_PARAM_SIZE-1 bytes and never empty. */
static bool pattern_match(const char *pattern, const char *path,
                          char params[HTTP_MAX_PARAMS][HTTP_PARAM_SIZE])
{
    size_t n_params = 0;
    const char *p = pattern, *u = path;
    while (*p && *u) {
        if (*p == '{') {
            const char *close = strchr(p, '}');
            const char *seg_end = strchr(u, '/');
            size_t len = seg_end ? (size_t)(seg_end - u) : strlen(u);
            if (!close || len == 0 || len >= HTTP_PARAM_SIZE || n_params >= HTTP_MAX_PARAMS)
                return false;
            memcpy(params[n_params], u, len);
            params[n_params][len] = '\0';
            n_params++;
            p = close + 1;
            u += len;
        } else if (*p == *u) {
            p++, u++;
        } else {
            return false;
        }
    }
    return *p == '\0' && *u == '\0';
}

const struct route *http_route_find(const char *method, const char *path,
                                    char params[HTTP_MAX_PARAMS][HTTP_PARAM_SIZE], char *allow,
                                    size_t allow_size)
{
    char scratch[HTTP_MAX_PARAMS][HTTP_PARAM_SIZE];
    allow[0] = '\0';
    for (const struct route *r = routes; r->method; r++) {
        if (!pattern_match(r->pattern, path, scratch))
            continue;
        if (strcmp(r->method, method) == 0) {
            memcpy(params, scratch, sizeof(scratch));
            return r;
        }
        size_t used = strlen(allow);
        snprintf(allow + used, allow_size - used, "%s%s", used ? ", " : "", r->method);
    }
    return NULL;
}

static bool access_allows(unsigned access, const struct principal *who)
{
    switch (who->kind) {
    case PRINCIPAL_API:
        return ((access & ACCESS_VIEWER) && who->role >= ROLE_VIEWER) ||
               ((access & ACCESS_OPERATOR) && who->role >= ROLE_OPERATOR) ||
               ((access & ACCESS_ADMIN) && who->role >= ROLE_ADMIN);
    case PRINCIPAL_DEVICE:
        return access & ACCESS_DEVICE;
    case PRINCIPAL_ENROLL:
        return access & ACCESS_ENROLL;
    default:
        return false;
    }
}

static bool content_type_is(const char *header, const char *want)
{
    size_t n = strlen(want);
    return header && strncasecmp(header, want, n) == 0 && (header[n] == '\0' || header[n] == ';');
}

/* Whether the request announces a body: a non-zero Content-Length or chunked. */
static bool has_body(struct request *req, uint64_t *declared)
{
    const char *cl = http_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *te = http_header(req, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    *declared = 0;
    if (cl) {
        char *end = NULL;
        unsigned long long v = strtoull(cl, &end, 10);
        *declared = (end && *end == '\0') ? (uint64_t)v : UINT64_MAX;
        return *declared > 0;
    }
    return te != NULL;
}

/* ---- multipart ---------------------------------------------------------- */

static struct upload_part *part_for(struct request *req, const char *name, bool is_file)
{
    for (size_t i = 0; i < req->part_count; i++)
        if (strcmp(req->parts[i].name, name) == 0)
            return &req->parts[i];
    if (req->part_count == HTTP_MAX_PARTS || strlen(name) >= sizeof(req->parts[0].name))
        return NULL;
    struct upload_part *part = &req->parts[req->part_count++];
    snprintf(part->name, sizeof(part->name), "%s", name);
    part->fd = -1;
    if (is_file) {
        char *dir = ef_path_join(req->srv->cfg.data_dir, SERVER_TMP_DIR);
        part->path = dir ? ef_path_join(dir, "upload.XXXXXX") : NULL;
        free(dir);
        if (!part->path || (part->fd = mkstemp(part->path)) < 0) {
            free(part->path);
            part->path = NULL;
            return NULL;
        }
        ef_sha256_init(&part->hash);
    }
    return part;
}

static int part_append(struct request *req, struct upload_part *part, const char *data, size_t size)
{
    if (part->path) {
        if (part->fd < 0)
            return EF_EINVAL; /* a second file with the same field name */
        ef_sha256_update(&part->hash, data, size);
        while (size > 0) {
            ssize_t n = write(part->fd, data, size);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return ef_from_errno(errno);
            data += n;
            size -= (size_t)n;
            part->size += (size_t)n;
        }
        return 0;
    }
    if (part->size + size > HTTP_MAX_MEMORY_PART)
        return EF_ETOOBIG;
    char *grown = realloc(part->data, part->size + size + 1);
    if (!grown)
        return EF_ENOMEM;
    memcpy(grown + part->size, data, size);
    part->size += size;
    grown[part->size] = '\0';
    part->data = grown;
    return 0;
}

static enum MHD_Result post_iterator(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *filename, const char *content_type,
                                     const char *transfer_encoding, const char *data, uint64_t off,
                                     size_t size)
{
    struct request *req = cls;
    if (req->upload_error)
        return MHD_YES; /* keep draining; the error is answered at the end */
    struct upload_part *part = part_for(req, key, filename != NULL);
    if (!part) {
        req->upload_error = EF_EINVAL;
        return MHD_YES;
    }
    /* The file part is created on its first chunk, even when that chunk is
     * empty, so that a zero-byte artifact is still seen as present. */
    if (size > 0)
        req->upload_error = part_append(req, part, data, size);
    return MHD_YES;
}

static void parts_finish(struct request *req)
{
    for (size_t i = 0; i < req->part_count; i++) {
        struct upload_part *part = &req->parts[i];
        if (part->path && part->fd >= 0) {
            if (fsync(part->fd) != 0 && !req->upload_error)
                req->upload_error = EF_EIO;
            close(part->fd);
            part->fd = -1;
            ef_sha256_final_hex(&part->hash, part->sha256);
        }
        if (!part->path && !part->data) {
            part->data = calloc(1, 1);
            if (!part->data)
                req->upload_error = EF_ENOMEM;
        }
    }
}

/* ---- the request lifecycle ---------------------------------------------- */

static void request_free(struct request *req)
{
    if (!req)
        return;
    if (req->post)
        MHD_destroy_post_processor(req->post);
    for (size_t i = 0; i < req->part_count; i++) {
        struct upload_part *part = &req->parts[i];
        if (part->fd >= 0)
            close(part->fd);
        /* A temporary upload is always removed here: the store links what
         * it keeps, so nothing half-received can linger or be adopted. */
        if (part->path)
            unlink(part->path);
        free(part->path);
        free(part->data);
    }
    free(req->body);
    free(req);
}

static const char *outcome_of(unsigned status)
{
    if (status == 0)
        return "aborted";
    if (status < 400)
        return "ok";
    if (status == 401 || status == 403)
        return "refused";
    if (status < 500)
        return "rejected";
    return "failed";
}

static void request_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
                              enum MHD_RequestTerminationCode toe)
{
    struct server *srv = cls;
    struct request *req = *con_cls;
    if (!req)
        return;
    *con_cls = NULL;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && req->status < 400)
        req->status = 0; /* never finished: the client went away or timed out */
    char actor[96], actor_q[112], path[160];
    atomic_fetch_add(&srv->stats.http_requests, 1);
    if (req->status >= 400 || req->status == 0)
        atomic_fetch_add(&srv->stats.http_errors, 1);
    /* Device check-ins are the bulk of the traffic: log them at debug only,
     * and format nothing unless the line will be written. */
    enum ef_log_level level = req->status == 304 ? EF_LOG_DEBUG : EF_LOG_INFO;
    bool mutating = strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0;
    bool audited = mutating || req->status == 401 || req->status == 403;
    if (audited || ef_log_enabled(level))
        auth_describe(&req->who, actor, sizeof(actor));
    if (ef_log_enabled(level))
        ef_log(level, "http_request", "method=%s path=%s status=%u actor=%s us=%lld", req->method,
               ef_log_quote(req->path, path, sizeof(path)), req->status,
               ef_log_quote(actor, actor_q, sizeof(actor_q)),
               (long long)(mono_us() - req->started_us));
    if (audited) {
        char action[160];
        snprintf(action, sizeof(action), "%s %s", req->method,
                 req->route ? req->route->pattern : req->path);
        int rc = db_audit_append(srv->db, ef_now_ms(), actor, action, req->path,
                                 outcome_of(req->status), req->status, req->audit_detail);
        if (rc != 0)
            ef_error("audit_failed", "action=\"%s\" error=%s", action, ef_errname(rc));
    }
    request_free(req);
}

/* The most bytes the matched route's body may have. */
static size_t body_limit(const struct request *req)
{
    switch (req->route->body) {
    case BODY_MULTIPART:
        return req->srv->cfg.max_upload;
    case BODY_JSON_BULK:
        return HTTP_MAX_BULK_JSON;
    default:
        return req->srv->cfg.max_json;
    }
}

/* First callback of a request: everything that can be decided from the
 * request line and headers is decided here, before any body is read. */
static enum MHD_Result request_begin(struct server *srv, struct MHD_Connection *conn,
                                     const char *url, const char *method, void **con_cls)
{
    uint64_t declared = 0;
    struct request *req = calloc(1, sizeof(*req));
    if (!req)
        return MHD_NO;
    req->srv = srv;
    req->conn = conn;
    req->method = method;
    req->path = url;
    req->started_us = mono_us();
    *con_cls = req;

    req->route = http_route_find(method, url, req->params, req->allow, sizeof(req->allow));
    /* The dashboard's static files are not API routes: public, no body,
     * answered by web.c whatever the Authorization header says. */
    if (!req->route && !req->allow[0] && web_claims(url))
        return web_serve(req);
    if (!req->route && req->allow[0])
        return http_reply_error(req, 405, "method_not_allowed", "%s takes only %s", url,
                                req->allow);
    if (!req->route)
        return http_reply_error(req, 404, "no_route", "no such route: %s %s", method, url);

    int rc = auth_authenticate(srv->db, srv->checkin,
                               http_header(req, MHD_HTTP_HEADER_AUTHORIZATION), &req->who);
    if (rc == EF_EAUTH)
        return http_reply_error(req, 401, "unauthenticated",
                                "the bearer token is malformed, unknown, expired or revoked");
    if (rc != 0)
        return http_reply_ef_error(req, rc, "could not check credentials");
    if (!(req->route->access & ACCESS_PUBLIC)) {
        if (req->who.kind == PRINCIPAL_ANONYMOUS)
            return http_reply_error(req, 401, "unauthenticated",
                                    "this route needs an Authorization: Bearer token");
        if (!access_allows(req->route->access, &req->who))
            return http_reply_error(req, 403, "forbidden", "this token may not call %s %s", method,
                                    req->route->pattern);
    }

    const char *ctype = http_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
    bool body = has_body(req, &declared);
    switch (req->route->body) {
    case BODY_NONE:
        if (body)
            return http_reply_error(req, 400, "bad_request", "this route takes no body");
        break;
    case BODY_JSON:
    case BODY_JSON_BULK:
        if (body && !content_type_is(ctype, "application/json"))
            return http_reply_error(req, 415, "unsupported_media_type",
                                    "the body must be application/json");
        if (declared != UINT64_MAX && declared > body_limit(req))
            return http_reply_error(req, 413, "payload_too_large",
                                    "the body may have at most %zu bytes", body_limit(req));
        break;
    case BODY_MULTIPART:
        if (!content_type_is(ctype, "multipart/form-data"))
            return http_reply_error(req, 415, "unsupported_media_type",
                                    "the body must be multipart/form-data");
        if (declared != UINT64_MAX && declared > srv->cfg.max_upload)
            return http_reply_error(req, 413, "payload_too_large",
                                    "uploads may have at most %zu bytes", srv->cfg.max_upload);
        req->post = MHD_create_post_processor(conn, POST_BUFFER_SIZE, post_iterator, req);
        if (!req->post)
            return http_reply_error(req, 400, "bad_request", "the multipart body has no boundary");
        break;
    }
    return MHD_YES;
}

/* A chunk of body: collected, bounded, never answered mid-way (MHD only
 * queues responses before or after the body), so errors wait for the end. */
static void request_body(struct request *req, const char *data, size_t size)
{
    size_t limit = body_limit(req);
    if (req->body_too_large || req->body_len + size > limit) {
        req->body_too_large = true;
        return;
    }
    req->body_len += size;
    if (req->route->body == BODY_MULTIPART) {
        if (MHD_post_process(req->post, data, size) != MHD_YES && !req->upload_error)
            req->upload_error = EF_EPARSE;
        return;
    }
    char *grown = realloc(req->body, req->body_len + 1);
    if (!grown) {
        req->upload_error = EF_ENOMEM;
        return;
    }
    memcpy(grown + req->body_len - size, data, size);
    grown[req->body_len] = '\0';
    req->body = grown;
}

static enum MHD_Result request_end(struct request *req)
{
    if (req->body_too_large)
        return http_reply_error(req, 413, "payload_too_large",
                                "the body may have at most %zu bytes", body_limit(req));
    if (req->route->body == BODY_MULTIPART)
        parts_finish(req);
    switch (req->upload_error) {
    case 0:
        break;
    case EF_ETOOBIG:
        return http_reply_error(req, 413, "payload_too_large",
                                "a form field may have at most %u bytes", HTTP_MAX_MEMORY_PART);
    case EF_EPARSE:
    case EF_EINVAL:
        return http_reply_error(
            req, 400, "bad_request",
            "the multipart body is malformed or has too many or repeated parts");
    default:
        return http_reply_ef_error(req, req->upload_error, "could not receive the upload");
    }
    return req->route->handle(req);
}

static enum MHD_Result access_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **con_cls)
{
    struct server *srv = cls;
    struct request *req = *con_cls;
    if (!req)
        return request_begin(srv, conn, url, method, con_cls);
    if (req->status)
        return MHD_YES; /* already answered on the first call; discard the body */
    if (*upload_data_size > 0) {
        request_body(req, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    return request_end(req);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512], quoted[540];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n')
        msg[--n] = '\0';
    ef_warn("mhd", "message=%s", ef_log_quote(msg, quoted, sizeof(quoted)));
}

int http_start(struct server *srv, struct http **out)
{
    struct sockaddr_in addr;
    struct http *h = calloc(1, sizeof(*h));
    *out = NULL;
    if (!h)
        return EF_ENOMEM;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons(srv->cfg.listen_port);
    if (inet_pton(AF_INET, srv->cfg.listen_host, &addr.sin_addr) != 1) {
        ef_error("http_listen", "reason=\"not an IPv4 address\" host=%s", srv->cfg.listen_host);
        free(h);
        return EF_EINVAL;
    }
    h->srv = srv;
    h->daemon = MHD_start_daemon(
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG, srv->cfg.listen_port, NULL, NULL,
        access_handler, srv, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&addr, MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)srv->cfg.threads,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)srv->cfg.max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)srv->cfg.timeout_s,
        MHD_OPTION_NOTIFY_COMPLETED, request_completed, srv, MHD_OPTION_END);
    if (!h->daemon) {
        ef_error("http_listen", "reason=\"cannot bind\" host=%s port=%u", srv->cfg.listen_host,
                 srv->cfg.listen_port);
        free(h);
        return EF_EIO;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    if (info && info->port)
        srv->cfg.listen_port = info->port;
    *out = h;
    return 0;
}

void http_stop(struct http *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->daemon);
    free(h);
}
