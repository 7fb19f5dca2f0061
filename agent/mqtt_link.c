/*
 * mqtt_link.c - libmosquitto on the agent's libuv loop, without its thread.
 *
 * The broker's socket is watched by a uv_poll (readable: mosquitto_loop_read;
 * writable, only while libmosquitto has something queued: mosquitto_loop_write)
 * and a one-second uv_timer runs mosquitto_loop_misc (keepalive pings, and
 * giving up on a connection that got no CONNACK within the keepalive). After
 * every call into libmosquitto, sync_link() compares its socket with ours: a
 * socket gone means the connection is lost, and a new attempt is scheduled
 * with exponential backoff and jitter. The host is looked up with
 * uv_getaddrinfo (in libuv's thread pool) and its addresses are tried in
 * turn, the next one at once when an attempt fails, a new lookup after the
 * backoff when all have; mosquitto_connect_async to a numeric address never
 * blocks the loop. The socket is a new one every attempt, and so is its
 * uv_poll (the old one is closed first).
 */
#include "agent/mqtt_link.h"
#include "common/ef_error.h"
#include "common/log.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <mosquitto.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_KEEPALIVE_S 30
#define MISC_INTERVAL_MS    1000
#define BACKOFF_FIRST_MS    1000
#define BACKOFF_MAX_MS      30000
#define LINGER_MS           1000 /* after DISCONNECT, wait this long for the broker to close */
#define MAX_ADDRS           4    /* addresses of the host tried in turn */

enum link_state {
    LINK_IDLE,       /* waiting for retry_timer */
    LINK_RESOLVING,  /* uv_getaddrinfo under way */
    LINK_CONNECTING, /* socket open, CONNECT sent or queued, no CONNACK yet */
    LINK_CONNECTED,  /* CONNACK accepted */
    LINK_CLOSING,    /* DISCONNECT sent by mqtt_link_stop, waiting for the close */
};

/* A remembered subscription, made again after every reconnect. */
struct link_sub {
    char *topic;
    int qos;
    struct link_sub *next;
};

/* The uv_poll of one socket: its own allocation, since a closing poll lives
 * on until its close callback while the next connection gets a new one. */
struct link_watch {
    uv_poll_t poll;
    struct mqtt_link *link;
};

struct mqtt_link {
    uv_loop_t *loop;            /* borrowed */
    struct mosquitto *mosq;     /* owned; NULL once shut down */
    char *host;                 /* broker host name or address */
    int port;                   /* broker port */
    int keepalive_s;            /* MQTT keepalive, seconds */
    mqtt_message_cb on_message; /* may be NULL */
    mqtt_state_cb on_state;     /* may be NULL */
    void *ctx;                  /* passed to both */
    enum link_state state;
    bool reported;             /* the last state given to on_state */
    struct link_watch *watch;  /* poll of the current socket, or NULL */
    int watch_fd;              /* the socket watch polls */
    int watch_events;          /* UV_READABLE | UV_WRITABLE it polls for */
    uv_timer_t misc_timer;     /* mosquitto_loop_misc, every MISC_INTERVAL_MS */
    uv_timer_t retry_timer;    /* next attempt; while closing, the linger timeout */
    uv_getaddrinfo_t gai;      /* the host lookup */
    bool resolving;            /* gai is in the thread pool */
    char addrs[MAX_ADDRS][64]; /* the last lookup's answers, numeric */
    int naddrs;                /* entries in addrs */
    int next_addr;             /* addrs entry of the current or next attempt */
    uint64_t backoff_ms;       /* delay before the next attempt, before jitter */
    struct link_sub *subs;     /* owned list */
    unsigned open_handles;     /* uv handles whose close callback is still due */
    unsigned depth;            /* nesting of our entry points that may run callbacks */
    bool stopping;             /* mqtt_link_stop was called */
    bool shut;                 /* mosq destroyed, handles closing */
};

static void begin_shutdown(struct mqtt_link *l);
static void schedule_retry(struct mqtt_link *l);
static void attempt_failed(struct mqtt_link *l);
static void on_watch(uv_poll_t *h, int status, int events);

static int from_mosq(int rc)
{
    switch (rc) {
    case MOSQ_ERR_SUCCESS:
        return 0;
    case MOSQ_ERR_NOMEM:
        return EF_ENOMEM;
    case MOSQ_ERR_INVAL:
    case MOSQ_ERR_PAYLOAD_SIZE:
    case MOSQ_ERR_MALFORMED_UTF8:
    case MOSQ_ERR_OVERSIZE_PACKET:
    case MOSQ_ERR_QOS_NOT_SUPPORTED:
    case MOSQ_ERR_RETAIN_NOT_SUPPORTED:
        return EF_EINVAL;
    case MOSQ_ERR_AUTH:
    case MOSQ_ERR_ACL_DENIED:
        return EF_EPERM;
    default:
        return EF_ENET;
    }
}

static void free_subs(struct link_sub *s)
{
    while (s) {
        struct link_sub *next = s->next;
        free(s->topic);
        free(s);
        s = next;
    }
}

/* Frees the link once its handles are closed and the lookup is back. */
static void maybe_release(struct mqtt_link *l)
{
    if (!l->shut || l->open_handles > 0 || l->resolving)
        return;
    free_subs(l->subs);
    free(l->host);
    free(l);
    mosquitto_lib_cleanup();
}

static void enter(struct mqtt_link *l)
{
    l->depth++;
}

/* Leaves an entry point; a stop requested from a callback happens here,
 * when no frame of libmosquitto or ours is left on the stack. */
static void leave(struct mqtt_link *l)
{
    l->depth--;
    if (l->depth == 0 && l->stopping && !l->shut && l->state != LINK_CLOSING)
        begin_shutdown(l);
}

/* ---- the socket's watch ------------------------------------------------- */

static void on_handle_closed(uv_handle_t *h)
{
    struct mqtt_link *l = h->data;
    l->open_handles--;
    maybe_release(l);
}

static void on_watch_closed(uv_handle_t *h)
{
    struct link_watch *w = h->data;
    struct mqtt_link *l = w->link;
    free(w);
    l->open_handles--;
    maybe_release(l);
}

/* Stops polling at once (before libmosquitto's next socket may reuse the
 * number) and frees the watch later. */
static void watch_close(struct mqtt_link *l)
{
    if (!l->watch)
        return;
    uv_close((uv_handle_t *)&l->watch->poll, on_watch_closed);
    l->watch = NULL;
    l->watch_fd = -1;
    l->watch_events = 0;
}

static int watch_open(struct mqtt_link *l, int fd)
{
    struct link_watch *w = calloc(1, sizeof(*w));
    if (!w)
        return EF_ENOMEM;
    if (uv_poll_init_socket(l->loop, &w->poll, fd) != 0) {
        free(w);
        return EF_EIO;
    }
    w->poll.data = w;
    w->link = l;
    l->watch = w;
    l->watch_fd = fd;
    l->watch_events = 0;
    l->open_handles++;
    return 0;
}

/* Polls for writable only while libmosquitto has bytes queued. */
static void watch_update(struct mqtt_link *l)
{
    int events;
    if (!l->watch)
        return;
    events = UV_READABLE | (mosquitto_want_write(l->mosq) ? UV_WRITABLE : 0);
    if (events == l->watch_events)
        return;
    if (uv_poll_start(&l->watch->poll, events, on_watch) == 0)
        l->watch_events = events;
}

/* Brings our watch and state in line with libmosquitto's socket after any
 * call into it. With notify, tells on_state about a change (user code: only
 * from our own entry points, never from inside libmosquitto). */
static void sync_link(struct mqtt_link *l, bool notify)
{
    int fd = mosquitto_socket(l->mosq);
    bool live = l->state == LINK_CONNECTING || l->state == LINK_CONNECTED;

    if (l->watch && fd != l->watch_fd)
        watch_close(l);
    if (live && fd < 0 && l->state == LINK_CONNECTED) {
        /* After the backoff, the same address first. */
        ef_info("mqtt_connection_lost", "addr=%s", l->addrs[l->next_addr]);
        l->state = LINK_IDLE;
        schedule_retry(l);
    } else if (live && fd < 0) {
        ef_info("mqtt_connect_failed", "addr=%s port=%d", l->addrs[l->next_addr], l->port);
        attempt_failed(l);
    } else if (live && !l->watch && watch_open(l, fd) != 0) {
        /* Cannot watch it: the next attempt closes this socket. */
        ef_warn("mqtt_watch_failed", "fd=%d", fd);
        attempt_failed(l);
    }
    watch_update(l);
    if (notify && !l->stopping && l->reported != (l->state == LINK_CONNECTED)) {
        l->reported = l->state == LINK_CONNECTED;
        if (l->on_state)
            l->on_state(l->ctx, l->reported);
    }
}

/* ---- shutting down ------------------------------------------------------ */

static void finish_shutdown(struct mqtt_link *l)
{
    l->shut = true;
    watch_close(l);
    uv_close((uv_handle_t *)&l->misc_timer, on_handle_closed);
    uv_close((uv_handle_t *)&l->retry_timer, on_handle_closed);
    if (l->resolving)
        uv_cancel((uv_req_t *)&l->gai); /* if too late, on_resolved sees shut */
    mosquitto_destroy(l->mosq);         /* closes the socket, no longer polled */
    l->mosq = NULL;
    maybe_release(l);
}

static void on_linger_timeout(uv_timer_t *t)
{
    finish_shutdown(t->data);
}

/* A clean DISCONNECT (so the broker drops the will), then wait for the
 * broker to close the connection, at most LINGER_MS: closing with unread
 * bytes would send a reset that could overtake the DISCONNECT. */
static void begin_shutdown(struct mqtt_link *l)
{
    uv_timer_stop(&l->retry_timer);
    uv_timer_stop(&l->misc_timer);
    if (l->state == LINK_CONNECTED && mosquitto_disconnect(l->mosq) == MOSQ_ERR_SUCCESS &&
        mosquitto_socket(l->mosq) >= 0 && l->watch) {
        if (mosquitto_want_write(l->mosq))
            mosquitto_loop_write(l->mosq, 1);
        l->state = LINK_CLOSING;
        if (mosquitto_socket(l->mosq) >= 0) {
            watch_update(l);
            uv_timer_start(&l->retry_timer, on_linger_timeout, LINGER_MS, 0);
            return;
        }
    }
    finish_shutdown(l);
}

/* ---- connecting --------------------------------------------------------- */

/* Connects to addrs[next_addr] (a fresh socket every time: libmosquitto
 * closes the old one). */
static void connect_attempt(struct mqtt_link *l)
{
    const char *addr = l->addrs[l->next_addr];
    int rc = mosquitto_connect_async(l->mosq, addr, l->port, l->keepalive_s);
    if (rc != MOSQ_ERR_SUCCESS) {
        ef_info("mqtt_connect_failed", "addr=%s port=%d error=\"%s\"", addr, l->port,
                rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
        attempt_failed(l);
        return;
    }
    l->state = LINK_CONNECTING;
    sync_link(l, false);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    struct mqtt_link *l = req->data;

    l->resolving = false;
    l->naddrs = 0;
    l->next_addr = 0;
    for (struct addrinfo *a = status == 0 ? res : NULL; a && l->naddrs < MAX_ADDRS; a = a->ai_next)
        if (uv_ip_name(a->ai_addr, l->addrs[l->naddrs], sizeof(l->addrs[0])) == 0)
            l->naddrs++;
    uv_freeaddrinfo(res);
    if (l->shut) {
        maybe_release(l);
        return;
    }
    enter(l);
    if (l->stopping) {
        l->state = LINK_IDLE;
    } else if (l->naddrs == 0) {
        ef_info("mqtt_resolve_failed", "host=%s error=\"%s\"", l->host,
                status ? uv_strerror(status) : "no address");
        l->state = LINK_IDLE;
        schedule_retry(l);
    } else {
        connect_attempt(l);
    }
    leave(l);
}

static void begin_connect(struct mqtt_link *l)
{
    struct addrinfo hints;
    char port[8];
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof(port), "%d", l->port);
    l->state = LINK_RESOLVING;
    l->gai.data = l;
    rc = uv_getaddrinfo(l->loop, &l->gai, on_resolved, l->host, port, &hints);
    if (rc != 0) {
        ef_warn("mqtt_resolve_failed", "host=%s error=\"%s\"", l->host, uv_strerror(rc));
        l->state = LINK_IDLE;
        schedule_retry(l);
        return;
    }
    l->resolving = true;
}

static void on_retry(uv_timer_t *t)
{
    struct mqtt_link *l = t->data;
    enter(l);
    if (!l->stopping && l->state == LINK_IDLE) {
        if (l->next_addr < l->naddrs)
            connect_attempt(l);
        else
            begin_connect(l);
    }
    leave(l);
}

/* The attempt on addrs[next_addr] failed: the next address at once, or,
 * when none is left, a new lookup after the backoff. */
static void attempt_failed(struct mqtt_link *l)
{
    l->state = LINK_IDLE;
    l->next_addr++;
    if (l->next_addr < l->naddrs)
        uv_timer_start(&l->retry_timer, on_retry, 0, 0);
    else
        schedule_retry(l);
}

/* Next attempt after backoff_ms +-20%; backoff_ms doubles up to the cap. */
static void schedule_retry(struct mqtt_link *l)
{
    uint32_t r = 0;
    uint64_t delay;
    if (uv_random(NULL, NULL, &r, sizeof(r), 0, NULL) != 0)
        r = UINT32_MAX / 2;
    delay = l->backoff_ms * 8 / 10 + (l->backoff_ms * 4 / 10) * r / UINT32_MAX;
    l->backoff_ms = l->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : l->backoff_ms * 2;
    ef_debug("mqtt_retry_scheduled", "delay_ms=%llu", (unsigned long long)delay);
    uv_timer_start(&l->retry_timer, on_retry, delay, 0);
}

/* ---- libuv and libmosquitto callbacks ----------------------------------- */

static void on_watch(uv_poll_t *h, int status, int events)
{
    struct link_watch *w = h->data;
    struct mqtt_link *l = w->link;
    int rc = MOSQ_ERR_SUCCESS;

    enter(l);
    /* An error on the socket is left to the read to discover and report. */
    if (status < 0 || (events & UV_READABLE))
        rc = mosquitto_loop_read(l->mosq, 1);
    if (rc == MOSQ_ERR_SUCCESS && (events & UV_WRITABLE) && mosquitto_socket(l->mosq) >= 0)
        rc = mosquitto_loop_write(l->mosq, 1);
    if (rc != MOSQ_ERR_SUCCESS)
        ef_debug("mqtt_io", "error=\"%s\"", mosquitto_strerror(rc));
    if (l->state == LINK_CLOSING) {
        if (mosquitto_socket(l->mosq) < 0)
            finish_shutdown(l);
        else
            watch_update(l);
    } else {
        sync_link(l, true);
    }
    leave(l);
}

static void on_misc(uv_timer_t *t)
{
    struct mqtt_link *l = t->data;
    enter(l);
    if (l->state == LINK_CONNECTING || l->state == LINK_CONNECTED)
        mosquitto_loop_misc(l->mosq);
    sync_link(l, true);
    leave(l);
}

/* Inside libmosquitto: record the outcome and queue the subscriptions; the
 * user hears of it from sync_link once libmosquitto has returned. */
static void on_mosq_connect(struct mosquitto *mosq, void *obj, int rc)
{
    struct mqtt_link *l = obj;
    if (rc != 0) {
        ef_warn("mqtt_refused", "host=%s reason=\"%s\"", l->host, mosquitto_connack_string(rc));
        return;
    }
    l->state = LINK_CONNECTED;
    l->backoff_ms = BACKOFF_FIRST_MS;
    ef_info("mqtt_connected", "host=%s port=%d", l->host, l->port);
    for (struct link_sub *s = l->subs; s; s = s->next) {
        int src = mosquitto_subscribe(mosq, NULL, s->topic, s->qos);
        if (src != MOSQ_ERR_SUCCESS)
            ef_warn("mqtt_subscribe_failed", "topic=%s error=\"%s\"", s->topic,
                    mosquitto_strerror(src));
    }
}

static void on_mosq_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *m)
{
    struct mqtt_link *l = obj;
    (void)mosq;
    if (l->stopping || !l->on_message || m->payloadlen < 0)
        return;
    l->on_message(l->ctx, m->topic, m->payload, (size_t)m->payloadlen);
}

/* ---- API ---------------------------------------------------------------- */

int mqtt_link_parse_url(const char *url, char *host, size_t host_size, int *port)
{
    static const char scheme[] = "mqtt://";
    const char *p, *end, *at, *h, *hend, *colon = NULL;
    long n = 1883;

    if (!url || !host || host_size == 0 || !port)
        return EF_EINVAL;
    if (strncasecmp(url, scheme, sizeof(scheme) - 1) != 0)
        return EF_EINVAL;
    p = url + sizeof(scheme) - 1;
    end = p + strlen(p);
    if (end > p && end[-1] == '/')
        end--;
    if (memchr(p, '/', (size_t)(end - p)))
        return EF_EINVAL;
    /* USER:PASS@ is for the caller's eyes only: credentials come from the
     * identity, and are never logged. */
    at = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == '@')
            at = q;
    h = at ? at + 1 : p;
    if (h < end && *h == '[') {
        hend = memchr(h, ']', (size_t)(end - h));
        if (!hend)
            return EF_EINVAL;
        h++;
        if (hend + 1 < end) {
            if (hend[1] != ':')
                return EF_EINVAL;
            colon = hend + 1;
        }
    } else {
        colon = memchr(h, ':', (size_t)(end - h));
        hend = colon ? colon : end;
    }
    if (hend == h || (size_t)(hend - h) >= host_size)
        return EF_EINVAL;
    for (const char *q = h; q < hend; q++)
        if (!isalnum((unsigned char)*q) && !strchr(".-_:%", *q))
            return EF_EINVAL;
    if (colon) {
        const char *d = colon + 1;
        if (d == end || end - d > 5)
            return EF_EINVAL;
        n = 0;
        for (; d < end; d++) {
            if (!isdigit((unsigned char)*d))
                return EF_EINVAL;
            n = n * 10 + (*d - '0');
        }
        if (n < 1 || n > 65535)
            return EF_EINVAL;
    }
    memcpy(host, h, (size_t)(hend - h));
    host[hend - h] = '\0';
    *port = (int)n;
    return 0;
}

int mqtt_link_start(uv_loop_t *loop, const struct mqtt_link_opts *opts, mqtt_message_cb on_message,
                    mqtt_state_cb on_state, void *ctx, struct mqtt_link **out)
{
    int rc = 0, mrc;
    struct mqtt_link *l = NULL;
    bool lib = false;

    if (out)
        *out = NULL;
    if (!loop || !opts || !out || !opts->host || !opts->host[0] || opts->port < 1 ||
        opts->port > 65535 || !opts->client_id || !opts->client_id[0] ||
        (opts->keepalive_s != 0 && (opts->keepalive_s < 5 || opts->keepalive_s > 65535)))
        return EF_EINVAL;
    l = calloc(1, sizeof(*l));
    if (!l || !(l->host = strdup(opts->host))) {
        rc = EF_ENOMEM;
        goto out;
    }
    l->loop = loop;
    l->port = opts->port;
    l->keepalive_s = opts->keepalive_s ? opts->keepalive_s : DEFAULT_KEEPALIVE_S;
    l->on_message = on_message;
    l->on_state = on_state;
    l->ctx = ctx;
    l->watch_fd = -1;
    l->backoff_ms = BACKOFF_FIRST_MS;

    if (mosquitto_lib_init() != MOSQ_ERR_SUCCESS) {
        rc = EF_ENET;
        goto out;
    }
    lib = true;
    l->mosq = mosquitto_new(opts->client_id, true, l);
    if (!l->mosq) {
        rc = EF_ENOMEM;
        goto out;
    }
    mrc = mosquitto_int_option(l->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    if (mrc == MOSQ_ERR_SUCCESS && opts->username)
        mrc = mosquitto_username_pw_set(l->mosq, opts->username, opts->password);
    if (mrc == MOSQ_ERR_SUCCESS && opts->will_topic) {
        const char *payload = opts->will_payload ? opts->will_payload : "";
        size_t len = strlen(payload);
        mrc = len > INT_MAX
                  ? MOSQ_ERR_PAYLOAD_SIZE
                  : mosquitto_will_set(l->mosq, opts->will_topic, (int)len, payload, 1, true);
    }
    if (mrc != MOSQ_ERR_SUCCESS) {
        rc = from_mosq(mrc);
        goto out;
    }
    mosquitto_connect_callback_set(l->mosq, on_mosq_connect);
    mosquitto_message_callback_set(l->mosq, on_mosq_message);

    /* Nothing fails from here on: uv_timer_init cannot. */
    uv_timer_init(loop, &l->misc_timer);
    uv_timer_init(loop, &l->retry_timer);
    l->misc_timer.data = l;
    l->retry_timer.data = l;
    l->open_handles = 2;
    uv_timer_start(&l->misc_timer, on_misc, MISC_INTERVAL_MS, MISC_INTERVAL_MS);
    begin_connect(l);
    *out = l;
    l = NULL;
out:
    if (l) {
        mosquitto_destroy(l->mosq);
        free(l->host);
        free(l);
    }
    if (rc != 0 && lib)
        mosquitto_lib_cleanup();
    return rc;
}

int mqtt_link_subscribe(struct mqtt_link *l, const char *topic, int qos)
{
    struct link_sub *s;
    int rc;

    if (!l || !topic || qos < 0 || qos > 2 || mosquitto_sub_topic_check(topic) != MOSQ_ERR_SUCCESS)
        return EF_EINVAL;
    if (l->stopping)
        return EF_EBUSY;
    for (s = l->subs; s; s = s->next)
        if (strcmp(s->topic, topic) == 0)
            break;
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s || !(s->topic = strdup(topic))) {
            free(s);
            return EF_ENOMEM;
        }
        s->next = l->subs;
        l->subs = s;
    }
    s->qos = qos;
    if (l->state == LINK_CONNECTED) {
        rc = mosquitto_subscribe(l->mosq, NULL, topic, qos);
        if (rc != MOSQ_ERR_SUCCESS) /* made again after the reconnect */
            ef_debug("mqtt_subscribe_deferred", "topic=%s error=\"%s\"", topic,
                     mosquitto_strerror(rc));
        sync_link(l, false);
    }
    return 0;
}

int mqtt_link_publish(struct mqtt_link *l, const char *topic, const void *payload, size_t len,
                      int qos, bool retain)
{
    int rc;
    if (!l || !topic || !topic[0] || (len > 0 && !payload) || len > INT_MAX || qos < 0 || qos > 2)
        return EF_EINVAL;
    if (l->stopping || l->state != LINK_CONNECTED)
        return EF_ENET;
    rc = mosquitto_publish(l->mosq, NULL, topic, (int)len, payload, qos, retain);
    sync_link(l, false);
    return from_mosq(rc);
}

bool mqtt_link_connected(const struct mqtt_link *l)
{
    return l && !l->stopping && l->state == LINK_CONNECTED;
}

void mqtt_link_stop(struct mqtt_link *l)
{
    if (!l || l->stopping)
        return;
    l->stopping = true;
    if (l->depth == 0)
        begin_shutdown(l);
}
