/* client.c - one libcurl easy handle per REST call, errors as one line. */
#include "server/cli/client.h"
#include "common/ef_error.h"
#include "common/json_util.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USER_AGENT     "edgefleet-cli/0.1"
#define PROGRESS_WIDTH 30 /* characters of the bar itself */

/* The response body as it arrives. */
struct body_buf {
    char *data;   /* owned, NUL-terminated once anything arrived */
    size_t len;   /* bytes received */
    size_t cap;   /* bytes allocated */
    bool too_big; /* the server sent more than CLIENT_MAX_RESPONSE */
};

/* Upload progress drawn on stderr. */
struct progress {
    int last_pct; /* last percentage drawn, -1 before the first */
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct body_buf *b = userdata;
    size_t n = size * nmemb;
    if (n > CLIENT_MAX_RESPONSE - b->len) {
        b->too_big = true;
        return 0; /* aborts the transfer */
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown)
            return 0;
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static int on_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    struct progress *p = userdata;
    if (ultotal <= 0)
        return 0;
    int pct = (int)(ulnow * 100 / ultotal);
    if (pct == p->last_pct)
        return 0;
    p->last_pct = pct;
    int filled = pct * PROGRESS_WIDTH / 100;
    char bar[PROGRESS_WIDTH + 1];
    for (int i = 0; i < PROGRESS_WIDTH; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[PROGRESS_WIDTH] = '\0';
    fprintf(stderr, "\rupload [%s] %3d%% %.1f/%.1f MiB", bar, pct, (double)ulnow / 1048576.0,
            (double)ultotal / 1048576.0);
    fflush(stderr);
    return 0;
}

/* A short reason phrase for statuses that come without an error body. */
static const char *reason_phrase(long status)
{
    switch (status) {
    case 400:
        return "bad request";
    case 401:
        return "unauthenticated";
    case 403:
        return "forbidden";
    case 404:
        return "not found";
    case 405:
        return "method not allowed";
    case 409:
        return "conflict";
    case 413:
        return "payload too large";
    case 415:
        return "unsupported media type";
    case 422:
        return "unprocessable";
    case 500:
        return "internal server error";
    case 502:
        return "bad gateway";
    case 503:
        return "service unavailable";
    case 504:
        return "gateway timeout";
    default:
        return "unexpected response";
    }
}

/* Copies s into out, replacing control characters so that one line stays
 * one line on the terminal. */
static void copy_printable(char *out, size_t size, const char *s)
{
    size_t i = 0;
    for (; s && s[i] && i + 1 < size; i++)
        out[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? ' ' : s[i];
    if (size > 0)
        out[i] = '\0';
}

void client_error_line(long status, const char *body, size_t len, char *buf, size_t size)
{
    json_t *doc = NULL;
    char code[64], message[512];
    const json_t *err = NULL;
    if (body && len > 0 && ef_json_load(body, len, CLIENT_MAX_RESPONSE, &doc, NULL, 0) == 0)
        err = json_object_get(doc, "error");
    const char *c = ef_json_str(err, "code");
    const char *m = ef_json_str(err, "message");
    copy_printable(code, sizeof(code), c ? c : "http_error");
    copy_printable(message, sizeof(message), m ? m : reason_phrase(status));
    snprintf(buf, size, "%s: %s (HTTP %ld)", code, message, status);
    json_decref(doc);
}

static int status_to_error(long status)
{
    switch (status) {
    case 401:
        return EF_EAUTH;
    case 403:
        return EF_EPERM;
    case 404:
        return EF_ENOENT;
    case 409:
        return EF_ECONFLICT;
    case 413:
        return EF_ETOOBIG;
    default:
        return status >= 400 && status < 500 ? EF_EINVAL : EF_EIO;
    }
}

/* True when the token can travel in a header: printable ASCII, no spaces. */
static bool token_ok(const char *token)
{
    for (const char *p = token; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return false;
    return token[0] != '\0';
}

/* Joins the base URL and path into a malloc'd URL. */
static char *make_url(const char *base, const char *path)
{
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    size_t plen = strlen(path);
    char *url = malloc(blen + plen + 1);
    if (!url)
        return NULL;
    memcpy(url, base, blen);
    memcpy(url + blen, path, plen + 1);
    return url;
}

/*
 * Runs one request. Exactly one of json_body and mime may be set. This is
 * where every failure is printed, so the two public entry points share it.
 */
static int perform(const struct client *c, const char *method, const char *path,
                   const char *json_body, curl_mime *mime, CURL *curl, struct client_response *resp)
{
    struct body_buf body = {0};
    struct progress prog = {.last_pct = -1};
    struct curl_slist *headers = NULL, *grown = NULL;
    char *url = NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    long status = 0;
    int rc = 0;
    bool reported = false; /* a failure line has been printed */
    memset(resp, 0, sizeof(*resp));

    if (c->token && !token_ok(c->token)) {
        fprintf(stderr, "edgefleet: invalid_token: the API token holds spaces or control "
                        "characters\n");
        rc = EF_EINVAL;
        goto out;
    }
    url = make_url(c->base_url, path);
    if (!url) {
        rc = EF_ENOMEM;
        goto out;
    }
    const char *header_lines[] = {"Accept: application/json",
                                  json_body ? "Content-Type: application/json" : NULL};
    for (size_t i = 0; i < sizeof(header_lines) / sizeof(header_lines[0]); i++) {
        if (!header_lines[i])
            continue;
        grown = curl_slist_append(headers, header_lines[i]);
        if (!grown) {
            rc = EF_ENOMEM;
            goto out;
        }
        headers = grown;
    }

    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(curl, CURLOPT_USERAGENT, USER_AGENT);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    if (c->token) {
        /* libcurl writes "Authorization: Bearer <token>" itself. */
        curl_easy_setopt(curl, CURLOPT_HTTPAUTH, CURLAUTH_BEARER);
        curl_easy_setopt(curl, CURLOPT_XOAUTH2_BEARER, c->token);
    }
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, CLIENT_CONNECT_TIMEOUT_S);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, CLIENT_STALL_TIMEOUT_S);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    if (mime) {
        curl_easy_setopt(curl, CURLOPT_MIMEPOST, mime);
        if (c->progress) {
            curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
            curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &prog);
            curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
        }
    } else if (json_body) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, json_body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(json_body));
    }
    if (strcmp(method, "GET") != 0 && !(strcmp(method, "POST") == 0 && (mime || json_body)))
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);

    CURLcode res = curl_easy_perform(curl);
    if (prog.last_pct >= 0)
        fputc('\n', stderr);
    if (res != CURLE_OK) {
        if (body.too_big) {
            fprintf(stderr, "edgefleet: response_too_large: the server sent more than %u MiB\n",
                    CLIENT_MAX_RESPONSE >> 20);
            rc = EF_ETOOBIG;
        } else {
            char line[CURL_ERROR_SIZE];
            copy_printable(line, sizeof(line), errbuf[0] ? errbuf : curl_easy_strerror(res));
            fprintf(stderr, "edgefleet: network_error: %s (%s)\n", line, c->base_url);
            rc = res == CURLE_OUT_OF_MEMORY ? EF_ENOMEM : EF_ENET;
        }
        reported = true;
        goto out;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status >= 300) {
        char line[700];
        client_error_line(status, body.data, body.len, line, sizeof(line));
        fprintf(stderr, "edgefleet: %s\n", line);
        rc = status_to_error(status);
        goto out;
    }
    resp->status = status;
    if (body.len > 0) {
        char msg[160] = "";
        if (!c->raw && ef_json_load(body.data, body.len, CLIENT_MAX_RESPONSE, &resp->doc, msg,
                                    sizeof(msg)) != 0) {
            fprintf(stderr,
                    "edgefleet: bad_response: the server's answer is not JSON: %s (HTTP "
                    "%ld)\n",
                    msg, status);
            rc = EF_EPARSE;
            goto out;
        }
        resp->body = body.data;
        resp->len = body.len;
        body.data = NULL;
    }
out:
    if (rc == EF_ENOMEM && !reported)
        fprintf(stderr, "edgefleet: out_of_memory: cannot build the request\n");
    if (rc != 0)
        client_response_release(resp);
    free(body.data);
    curl_slist_free_all(headers);
    free(url);
    return rc;
}

int client_call(const struct client *c, const char *method, const char *path, const json_t *body,
                struct client_response *resp)
{
    char *json_body = NULL;
    int rc = 0;
    CURL *curl = curl_easy_init();
    if (!curl) {
        memset(resp, 0, sizeof(*resp));
        fprintf(stderr, "edgefleet: out_of_memory: cannot start an HTTP request\n");
        return EF_ENOMEM;
    }
    if (body && !(json_body = ef_json_dump(body))) {
        memset(resp, 0, sizeof(*resp));
        fprintf(stderr, "edgefleet: out_of_memory: cannot encode the request\n");
        rc = EF_ENOMEM;
        goto out;
    }
    rc = perform(c, method, path, json_body, NULL, curl, resp);
out:
    free(json_body);
    curl_easy_cleanup(curl);
    return rc;
}

int client_upload(const struct client *c, const char *path, const struct client_part *parts,
                  size_t n, struct client_response *resp)
{
    curl_mime *mime = NULL;
    int rc = 0;
    memset(resp, 0, sizeof(*resp));
    CURL *curl = curl_easy_init();
    if (!curl || !(mime = curl_mime_init(curl))) {
        fprintf(stderr, "edgefleet: out_of_memory: cannot start an HTTP request\n");
        rc = EF_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const struct client_part *p = &parts[i];
        curl_mimepart *part = curl_mime_addpart(mime);
        CURLcode res = part ? curl_mime_name(part, p->name) : CURLE_OUT_OF_MEMORY;
        if (res == CURLE_OK && p->file) {
            /* libcurl only notices an unreadable file mid-transfer; say it plainly first. */
            FILE *f = fopen(p->file, "rb");
            if (!f) {
                fprintf(stderr, "edgefleet: io_error: cannot read %s: %s\n", p->file,
                        strerror(errno));
                rc = EF_EIO;
                goto out;
            }
            fclose(f);
            res = curl_mime_filedata(part, p->file);
        } else if (res == CURLE_OK) {
            res = curl_mime_data(part, p->data, p->len);
        }
        if (res == CURLE_OK && p->type)
            res = curl_mime_type(part, p->type);
        if (res != CURLE_OK) {
            fprintf(stderr, "edgefleet: out_of_memory: cannot build the upload\n");
            rc = EF_ENOMEM;
            goto out;
        }
    }
    rc = perform(c, "POST", path, NULL, mime, curl, resp);
out:
    curl_mime_free(mime);
    curl_easy_cleanup(curl);
    return rc;
}

void client_response_release(struct client_response *resp)
{
    if (!resp)
        return;
    free(resp->body);
    json_decref(resp->doc);
    memset(resp, 0, sizeof(*resp));
}

char *client_query_path(const char *path, const char *const *pairs, size_t npairs)
{
    char *out = NULL;
    char **escaped = calloc(npairs ? npairs : 1, sizeof(*escaped));
    size_t len = strlen(path) + 1;
    if (!escaped)
        return NULL;
    for (size_t i = 0; i < npairs; i++) {
        if (!pairs[2 * i + 1])
            continue;
        escaped[i] = curl_easy_escape(NULL, pairs[2 * i + 1], 0);
        if (!escaped[i])
            goto out;
        len += strlen(pairs[2 * i]) + strlen(escaped[i]) + 2;
    }
    out = malloc(len);
    if (!out)
        goto out;
    char *p = out;
    p += sprintf(p, "%s", path);
    char sep = '?';
    for (size_t i = 0; i < npairs; i++) {
        if (!escaped[i])
            continue;
        p += sprintf(p, "%c%s=%s", sep, pairs[2 * i], escaped[i]);
        sep = '&';
    }
out:
    for (size_t i = 0; i < npairs; i++)
        curl_free(escaped[i]);
    free(escaped);
    return out;
}
