/*
 * ingest_load.c - the telemetry ingest benchmark's load and its baseline
 * (tests/bench/bench_ingest.sh runs it): publishes a stream of valid metrics
 * windows for enrolled devices through a real broker, and measures in the
 * same run how fast the server persists them (its
 * edgefleet_telemetry_windows_stored_total at /metrics) and how fast a plain
 * libmosquitto subscriber of the same topics, which only counts, drains them.
 *
 * usage: ef-bench-ingest-load MQTT_PORT HTTP_PORT DEVICE_PREFIX DEVICES WINDOWS QOS [RATE]
 *   devices are DEVICE_PREFIX000 .. (DEVICES of them, enrolled beforehand);
 *   QOS 0 or 1 for the publisher; RATE windows/s (0 or absent: as fast as the
 *   publisher can). Prints a report and, last, one JSON line of figures.
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IDLE_MS    3000 /* nothing new for this long: the stream is over */
#define POLL_MS    10   /* how often the counters are read */
#define INFLIGHT   200  /* QoS 1 windows in flight from the publisher */
#define PAYLOAD_SZ 2048

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void die(const char *what)
{
    fprintf(stderr, "ef-bench-ingest-load: %s\n", what);
    exit(1);
}

/* The value of one sample at the server's /metrics (plain HTTP/1.0 on
 * loopback), or -1 when it cannot be read. */
static int64_t server_metric(int port, const char *name)
{
    static char buf[1 << 16];
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    const char req[] = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    size_t len = 0, nlen = strlen(name);
    ssize_t n;
    int64_t value = -1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
        write(fd, req, sizeof(req) - 1) != (ssize_t)(sizeof(req) - 1))
        goto out;
    while (len < sizeof(buf) - 1 && (n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
    for (char *line = strstr(buf, "\r\n\r\n"); line; line = strchr(line + 1, '\n')) {
        char *p = line + 1;
        if (strncmp(p, name, nlen) == 0 && p[nlen] == ' ') {
            value = strtoll(p + nlen + 1, NULL, 10);
            break;
        }
    }
out:
    close(fd);
    return value;
}

/* The plain subscriber: counts what the broker delivers. */
static atomic_int_fast64_t sub_count, sub_last_ms;
static atomic_bool sub_ready;
/* The publisher: windows the library has sent (QoS 0) or had acknowledged (1). */
static atomic_int_fast64_t pub_done;

static void on_sub_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg)
{
    (void)m, (void)obj, (void)msg;
    atomic_fetch_add(&sub_count, 1);
    atomic_store(&sub_last_ms, now_ms());
}

static void on_subscribe(struct mosquitto *m, void *obj, int mid, int n, const int *granted)
{
    (void)m, (void)obj, (void)mid, (void)n, (void)granted;
    atomic_store(&sub_ready, true);
}

static void on_publish(struct mosquitto *m, void *obj, int mid)
{
    (void)m, (void)obj, (void)mid;
    atomic_fetch_add(&pub_done, 1);
}

static struct mosquitto *client(const char *id, int port)
{
    struct mosquitto *m = mosquitto_new(id, true, NULL);
    if (!m)
        die("mosquitto_new");
    if (mosquitto_connect(m, "127.0.0.1", port, 30) != MOSQ_ERR_SUCCESS)
        die("cannot connect to the broker");
    return m;
}

/* A valid window with every monitoring key (docs/monitoring.md): 21 input
 * features and 3 outputs, as a thyroid model has; i makes it unique. */
static int window(char *buf, size_t size, int64_t i)
{
    return snprintf(
        buf, size,
        "{\"window_start\":\"2026-11-22T10:00:00.000Z\",\"window_s\":60,\"model\":\"thyroid@1\","
        "\"inferences\":%lld,\"errors\":1,\"latency_ms\":{\"p50\":0.05,\"p95\":0.09,"
        "\"p99\":0.12,\"max\":0.4},\"feedback\":10,\"accuracy\":0.9,\"correct\":9,"
        "\"confusion\":[[3,0,0],[1,3,0],[0,0,3]],\"drift\":{\"n\":100,\"features\":["
        "0.01,0.02,0.03,0.04,0.05,0.06,0.07,0.08,0.09,0.1,0.11,0.12,0.13,0.14,0.15,0.16,"
        "0.17,0.18,0.19,0.2,0.21],\"output\":[0.01,0.02,0.03],\"max\":0.21,"
        "\"output_max\":0.03},\"confidence\":0.93,\"shadow\":{\"model\":\"thyroid@2\","
        "\"inferences\":100,\"errors\":0,\"agreement\":0.97,\"feedback\":10,\"accuracy\":0.8},"
        "\"rss_bytes\":10485760,\"cpu_s\":0.25}",
        (long long)(i + 100));
}

int main(int argc, char **argv)
{
    if (argc < 7 || argc > 8)
        die("usage: ef-bench-ingest-load MQTT_PORT HTTP_PORT DEVICE_PREFIX DEVICES WINDOWS QOS "
            "[RATE]");
    int mqtt_port = atoi(argv[1]), http_port = atoi(argv[2]);
    const char *prefix = argv[3];
    int devices = atoi(argv[4]), qos = atoi(argv[6]);
    int64_t windows = atoll(argv[5]), rate = argc > 7 ? atoll(argv[7]) : 0;
    const char *stored_name = "edgefleet_telemetry_windows_stored_total";
    char topic[128], payload[PAYLOAD_SZ];
    if (devices < 1 || windows < 1 || (qos != 0 && qos != 1) || rate < 0)
        die("bad arguments");
    mosquitto_lib_init();

    int64_t stored0 = server_metric(http_port, stored_name);
    int64_t malformed0 = server_metric(http_port, "edgefleet_telemetry_windows_malformed_total");
    int64_t dropped0 = server_metric(http_port, "edgefleet_telemetry_windows_dropped_total");
    int64_t received0 = server_metric(http_port, "edgefleet_telemetry_windows_received_total");
    if (stored0 < 0)
        die("cannot read the server's /metrics");

    struct mosquitto *sub = client("ingest-bench-sub", mqtt_port);
    mosquitto_message_callback_set(sub, on_sub_message);
    mosquitto_subscribe_callback_set(sub, on_subscribe);
    /* QoS 0, as the server subscribes. */
    if (mosquitto_subscribe(sub, NULL, "edgefleet/v1/devices/+/telemetry", 0) != MOSQ_ERR_SUCCESS ||
        mosquitto_loop_start(sub) != MOSQ_ERR_SUCCESS)
        die("cannot subscribe");
    struct mosquitto *pub = client("ingest-bench-pub", mqtt_port);
    mosquitto_publish_callback_set(pub, on_publish);
    mosquitto_max_inflight_messages_set(pub, INFLIGHT);
    if (mosquitto_loop_start(pub) != MOSQ_ERR_SUCCESS)
        die("cannot start the publisher");
    for (int i = 0; i < 500 && !atomic_load(&sub_ready); i++)
        sleep_ms(10);
    if (!atomic_load(&sub_ready))
        die("the subscription was not acknowledged");

    int64_t t0 = now_ms();
    for (int64_t i = 0; i < windows; i++) {
        snprintf(topic, sizeof(topic), "edgefleet/v1/devices/%s%03d/telemetry", prefix,
                 (int)(i % devices));
        int n = window(payload, sizeof(payload), i);
        if (mosquitto_publish(pub, NULL, topic, n, payload, qos, false) != MOSQ_ERR_SUCCESS)
            die("mosquitto_publish failed");
        if (rate > 0) {
            int64_t due = t0 + (i + 1) * 1000 / rate;
            if (due > now_ms())
                sleep_ms(due - now_ms());
        } else if (qos == 0 && i - atomic_load(&pub_done) > 5000) {
            /* Keep the library's own queue bounded: it has no limit for QoS 0. */
            while (i - atomic_load(&pub_done) > 1000)
                sleep_ms(1);
        }
    }
    while (atomic_load(&pub_done) < windows && now_ms() - t0 < 600000)
        sleep_ms(1);
    int64_t t_published = now_ms();

    /* Until both have everything, or neither got anything new for IDLE_MS. */
    int64_t stored = 0, stored_last_ms = t0, last_change = now_ms();
    for (;;) {
        int64_t s = server_metric(http_port, stored_name) - stored0;
        int64_t now = now_ms();
        if (s != stored) {
            stored = s;
            stored_last_ms = now;
            last_change = now;
        }
        if (atomic_load(&sub_last_ms) > last_change)
            last_change = atomic_load(&sub_last_ms);
        if ((stored >= windows && atomic_load(&sub_count) >= windows) ||
            now - last_change > IDLE_MS)
            break;
        sleep_ms(POLL_MS);
    }
    int64_t received = atomic_load(&sub_count), sub_last = atomic_load(&sub_last_ms);
    int64_t malformed = server_metric(http_port, "edgefleet_telemetry_windows_malformed_total");
    int64_t dropped = server_metric(http_port, "edgefleet_telemetry_windows_dropped_total");
    int64_t server_received =
        server_metric(http_port, "edgefleet_telemetry_windows_received_total") - received0;
    mosquitto_disconnect(pub);
    mosquitto_disconnect(sub);
    mosquitto_loop_stop(pub, false);
    mosquitto_loop_stop(sub, false);
    mosquitto_destroy(pub);
    mosquitto_destroy(sub);
    mosquitto_lib_cleanup();

    double pub_s = (double)(t_published - t0) / 1000.0;
    double server_s = (double)(stored_last_ms - t0) / 1000.0;
    double sub_s = (double)((sub_last ? sub_last : t0) - t0) / 1000.0;
    double server_per_s = server_s > 0 ? (double)stored / server_s : 0;
    double sub_per_s = sub_s > 0 ? (double)received / sub_s : 0;
    double ratio = sub_per_s > 0 ? server_per_s / sub_per_s : 0;
    printf("published %lld windows (QoS %d, %d devices, %d bytes each) in %.3f s (%.0f/s)\n",
           (long long)windows, qos, devices, window(payload, sizeof(payload), 0), pub_s,
           pub_s > 0 ? (double)windows / pub_s : 0);
    printf("plain subscriber: %lld received (%lld lost), last after %.3f s: %.0f windows/s\n",
           (long long)received, (long long)(windows - received), sub_s, sub_per_s);
    /* Lost before the server's queue (the broker dropped them: the server's
     * MQTT thread fell behind), or by the server (queue full, malformed). */
    printf("server: %lld stored (%lld lost: %lld never received from the broker; queue drops "
           "%lld, malformed %lld), last after %.3f s: %.0f windows/s\n",
           (long long)stored, (long long)(windows - stored),
           (long long)(windows - server_received - (dropped - dropped0)),
           (long long)(dropped - dropped0), (long long)(malformed - malformed0), server_s,
           server_per_s);
    printf("ratio server/subscriber: %.3f\n", ratio);
    printf("{\"ingest_ratio\": %.4f, \"ingest_rows_lost\": %lld, \"ingest_server_per_s\": %.1f, "
           "\"ingest_subscriber_per_s\": %.1f, \"ingest_subscriber_lost\": %lld, \"qos\": %d}\n",
           ratio, (long long)(windows - stored), server_per_s, sub_per_s,
           (long long)(windows - received), qos);
    return 0;
}
