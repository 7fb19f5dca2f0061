/*
 * hello_mhd.c - the baseline of the check-in benchmark: a bare libmicrohttpd
 * server that answers every request with a tiny fixed response.
 *
 * usage: hello_mhd PORT THREADS
 *
 * The daemon is configured exactly as server/http.c's http_start configures
 * edgefleet-server's (internal epoll thread pool of THREADS threads, error
 * log, bound to 127.0.0.1:PORT, the same connection limit and idle timeout as
 * serve's defaults, a completion callback), so that a benchmark comparing the
 * two measures what edgefleet adds on top of libmicrohttpd and nothing else.
 * A request carrying If-None-Match is answered 304 with an ETag and no body,
 * as a device check-in whose desired state has not changed; any other
 * request gets 200 and a two-byte body. Like the server, it answers on the
 * second call of the access handler, after the headers are complete, and
 * builds one response per request.
 *
 * Runs until SIGINT or SIGTERM. Part of the benchmarks, never installed.
 */
#include <microhttpd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* serve's defaults for --max-connections and --timeout (server/main.c). */
#define HELLO_MAX_CONNECTIONS 1024u
#define HELLO_TIMEOUT_S       30u

/* An ETag of the shape of the desired state's: the quoted assignment seq. */
#define HELLO_ETAG "\"1\""

/* A marker stored in con_cls on the first call, so the second call answers. */
static const char request_seen = 1;

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
    struct MHD_Response *resp = NULL;
    enum MHD_Result ret;
    unsigned status;
    if (!*con_cls) {
        *con_cls = (void *)&request_seen;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        *upload_data_size = 0; /* the baseline has no use for a body */
        return MHD_YES;
    }
    if (MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH)) {
        status = MHD_HTTP_NOT_MODIFIED;
        resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    } else {
        status = MHD_HTTP_OK;
        resp = MHD_create_response_from_buffer(2, (void *)"ok", MHD_RESPMEM_PERSISTENT);
    }
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, HELLO_ETAG);
    ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    *con_cls = NULL;
}

/* Parses a decimal in [min, max]; returns 0 or -1. */
static int parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
    char *end = NULL;
    unsigned long v = strtoul(s, &end, 10);
    if (!s[0] || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    struct MHD_Daemon *daemon = NULL;
    struct sockaddr_in addr;
    unsigned long port = 0, threads = 0;
    sigset_t signals;
    int sig = 0;
    if (argc != 3 || parse_uint(argv[1], 1, 65535, &port) != 0 ||
        parse_uint(argv[2], 1, 256, &threads) != 0) {
        fprintf(stderr, "usage: %s PORT THREADS\n", argc > 0 ? argv[0] : "hello_mhd");
        return 2;
    }
    /* Block the stop signals in every thread MHD starts; main waits for them. */
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    daemon = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG, (uint16_t)port,
                              NULL, NULL, answer, NULL, MHD_OPTION_SOCK_ADDR,
                              (struct sockaddr *)&addr, MHD_OPTION_THREAD_POOL_SIZE,
                              (unsigned int)threads, MHD_OPTION_CONNECTION_LIMIT,
                              HELLO_MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT, HELLO_TIMEOUT_S,
                              MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_END);
    if (!daemon) {
        fprintf(stderr, "hello_mhd: cannot listen on 127.0.0.1:%lu\n", port);
        return 1;
    }
    printf("hello_mhd listening on http://127.0.0.1:%lu threads=%lu\n", port, threads);
    fflush(stdout);
    sigwait(&signals, &sig);
    MHD_stop_daemon(daemon);
    return 0;
}
