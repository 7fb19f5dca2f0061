/*
 * web.c - the static dashboard: path checks, resolution under a root,
 * content types, caching headers, and the answers to /, /assets/... and
 * /vendor/uplot/..., which http.c hands over outside the API's route table.
 */
#include "server/web.h"
#include "server/server.h"
#include "common/ef_error.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

struct web {
    char *root;  /* the web directory, absolute, no symbolic links; owned */
    char *uplot; /* node_modules/uplot/dist resolved likewise, or NULL; owned */
};

/* The dashboard document: it may talk to its own origin only, and nothing
 * may frame it (the API token lives in its session storage). */
#define WEB_CSP                                                                                    \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "                   \
    "frame-ancestors 'none'"

/* Resolves dir/sub (sub may be NULL) to a new absolute path of a directory,
 * or NULL. */
static char *resolve_dir(const char *dir, const char *sub)
{
    char joined[PATH_MAX], *real = NULL;
    struct stat st;
    int n = sub ? snprintf(joined, sizeof(joined), "%s/%s", dir, sub)
                : snprintf(joined, sizeof(joined), "%s", dir);
    if (n < 0 || (size_t)n >= sizeof(joined))
        return NULL;
    real = realpath(joined, NULL);
    if (real && (stat(real, &st) != 0 || !S_ISDIR(st.st_mode))) {
        free(real);
        real = NULL;
    }
    return real;
}

int web_open(const char *web_dir, const char *node_modules, struct web **out)
{
    char index[PATH_MAX], q1[PATH_MAX + 8], q2[PATH_MAX + 8];
    int rc = 0;
    struct web *w = calloc(1, sizeof(*w));
    *out = NULL;
    if (!w)
        return EF_ENOMEM;
    w->root = resolve_dir(web_dir, NULL);
    if (!w->root || web_resolve(w->root, "index.html", index, sizeof(index)) != 0) {
        ef_warn("web_unavailable", "dir=%s reason=\"not a directory with index.html\"",
                ef_log_quote(web_dir, q1, sizeof(q1)));
        rc = EF_ENOENT;
        goto out;
    }
    w->uplot = node_modules ? resolve_dir(node_modules, WEB_UPLOT_SUBDIR) : NULL;
    if (!w->uplot)
        ef_warn("web_vendor_missing", "dir=%s reason=\"no %s in it: run npm ci\"",
                ef_log_quote(node_modules ? node_modules : "none", q1, sizeof(q1)),
                WEB_UPLOT_SUBDIR);
    ef_info("web_ready", "dir=%s uplot=%s", ef_log_quote(w->root, q1, sizeof(q1)),
            ef_log_quote(w->uplot ? w->uplot : "none", q2, sizeof(q2)));
    *out = w;
    w = NULL;
out:
    web_close(w);
    return rc;
}

void web_close(struct web *w)
{
    if (!w)
        return;
    free(w->root);
    free(w->uplot);
    free(w);
}

const char *web_root(const struct web *w)
{
    return w->root;
}

static bool segment_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

int web_path_check(const char *rel)
{
    size_t len = rel ? strlen(rel) : 0;
    if (len == 0 || len > WEB_MAX_REL)
        return EF_EINVAL;
    bool segment_start = true;
    for (size_t i = 0; i < len; i++) {
        char c = rel[i];
        if (c == '/') {
            /* a leading '/', "//" and a trailing '/' all leave a segment empty */
            if (segment_start)
                return EF_EINVAL;
            segment_start = true;
            continue;
        }
        /* '.' first refuses ".", ".." and hidden files; every other byte
         * outside the set ('%', '\\', controls, non-ASCII) is refused too. */
        if (!segment_char(c) || (segment_start && c == '.'))
            return EF_EINVAL;
        segment_start = false;
    }
    return segment_start ? EF_EINVAL : 0;
}

int web_resolve(const char *root, const char *rel, char *out, size_t out_size)
{
    char joined[PATH_MAX], real[PATH_MAX];
    struct stat st;
    size_t root_len = strlen(root);
    if (web_path_check(rel) != 0)
        return EF_EINVAL;
    int n = snprintf(joined, sizeof(joined), "%s/%s", root, rel);
    if (n < 0 || (size_t)n >= sizeof(joined))
        return EF_EINVAL;
    /* realpath follows every link, so what it gives is where a read would
     * land; that, not the name asked for, must be inside root. */
    if (!realpath(joined, real))
        return errno == ENOMEM ? EF_ENOMEM : EF_ENOENT;
    if (strncmp(real, root, root_len) != 0 || real[root_len] != '/')
        return EF_EPERM;
    if (stat(real, &st) != 0 || !S_ISREG(st.st_mode))
        return EF_ENOENT;
    if (strlen(real) >= out_size)
        return EF_ETOOBIG;
    memcpy(out, real, strlen(real) + 1);
    return 0;
}

const char *web_content_type(const char *name)
{
    static const struct {
        const char *ext;
        const char *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".woff2", "font/woff2"},
        {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(name, '.');
    const char *slash = strrchr(name, '/');
    if (!dot || (slash && dot < slash))
        return NULL;
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (strcasecmp(dot, types[i].ext) == 0)
            return types[i].type;
    return NULL;
}

/* Queues resp with the headers every static answer carries. http.c's
 * replies set no Cache-Control, so this one records the status and result
 * in req itself, as they do. */
static enum MHD_Result queue_static(struct request *req, unsigned status, struct MHD_Response *resp,
                                    const char *content_type, const char *etag, bool document)
{
    if (!resp)
        return http_reply_error(req, 500, "internal", "out of memory");
    if (content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
    if (document) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        MHD_add_response_header(resp, "Content-Security-Policy", WEB_CSP);
        MHD_add_response_header(resp, "X-Frame-Options", "DENY");
        MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    } else {
        char cache[48];
        snprintf(cache, sizeof(cache), "max-age=%d", WEB_ASSET_MAX_AGE_S);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, cache);
    }
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    req->status = status;
    req->replied = MHD_queue_response(req->conn, status, resp);
    MHD_destroy_response(resp);
    return req->replied;
}

/* Answers the file rel under root (NULL: not installed). Every refusal is
 * a plain 404, so a probe learns nothing about what lies outside. */
static enum MHD_Result serve_file(struct request *req, const char *root, const char *rel,
                                  bool document)
{
    char path[PATH_MAX], etag[80], shown[300];
    const char *type = web_content_type(rel);
    struct stat st;
    int fd = -1, rc = root ? web_resolve(root, rel, path, sizeof(path)) : EF_ENOENT;
    if (rc == EF_EPERM)
        ef_warn("web_path_refused", "path=%s reason=\"leads out of the web root\"",
                ef_log_quote(req->path, shown, sizeof(shown)));
    if (rc == 0 && type)
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        return http_reply_error(req, 404, "not_found", "no such file: %s", req->path);
    }
    /* Inode, size and modification time change whenever the file does. */
    snprintf(etag, sizeof(etag), "\"%llx-%llx-%llx\"", (unsigned long long)st.st_ino,
             (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtim.tv_sec * 1000000000ull +
                 (unsigned long long)st.st_mtim.tv_nsec);
    const char *inm = http_header(req, MHD_HTTP_HEADER_IF_NONE_MATCH);
    if (inm && http_etag_listed(inm, etag)) {
        close(fd);
        return queue_static(req, 304,
                            MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT), NULL,
                            etag, document);
    }
    /* MHD owns fd from here and closes it with the response. */
    struct MHD_Response *resp = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
    if (!resp)
        close(fd);
    return queue_static(req, 200, resp, type, etag, document);
}

/* URL prefixes of the dashboard's files. */
#define WEB_ASSETS_PREFIX "/assets/"
#define WEB_UPLOT_PREFIX  "/vendor/uplot/"

static bool has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool web_claims(const char *url)
{
    return strcmp(url, "/") == 0 || has_prefix(url, WEB_ASSETS_PREFIX) ||
           has_prefix(url, WEB_UPLOT_PREFIX);
}

enum MHD_Result web_serve(struct request *req)
{
    const struct web *w = req->srv->web;
    const char *url = req->path;
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        snprintf(req->allow, sizeof(req->allow), "GET, HEAD");
        return http_reply_error(req, 405, "method_not_allowed", "%s takes only GET and HEAD", url);
    }
    if (strcmp(url, "/") == 0)
        return serve_file(req, w ? w->root : NULL, "index.html", true);
    if (has_prefix(url, WEB_ASSETS_PREFIX)) /* "assets/PATH" under the web root */
        return serve_file(req, w ? w->root : NULL, url + 1, false);
    if (has_prefix(url, WEB_UPLOT_PREFIX))
        return serve_file(req, w ? w->uplot : NULL, url + strlen(WEB_UPLOT_PREFIX), false);
    return http_reply_error(req, 404, "not_found", "no such file: %s", url);
}
