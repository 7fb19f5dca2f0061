/*
 * mqtt.c - the server's broker client: libmosquitto on its own network
 * thread, reconnecting with exponential backoff, handing what devices say on
 * their `reported` and `status` topics to the report writer (report_queue.h)
 * and `telemetry` windows to the telemetry writer (telemetry.h), publishing
 * assignments and events, and carrying the dynamic-security session
 * (dynsec.c).
 */
#include "server/mqtt.h"
#include "server/dynsec.h"
#include "server/report.h"
#include "server/report_queue.h"
#include "server/server.h"
#include "server/telemetry.h"
#include "common/clock.h"
#include "common/crypto.h"
#include "common/ef_error.h"
#include "common/log.h"
#include "common/topic.h"

#include <mosquitto.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Device messages are small: a state change or a status word. */
#define MQTT_MAX_DEVICE_PAYLOAD REPORT_MAX_BYTES
/* A dynamic-security command document: a few commands of one device. */
#define MQTT_MAX_CONTROL_PAYLOAD (64u << 10)

#define MQTT_KEEPALIVE_S     30
#define MQTT_RECONNECT_MIN_S 1
#define MQTT_RECONNECT_MAX_S 30

struct mqtt {
    struct mosquitto *mosq; /* owned */
    struct server *srv;     /* borrowed */
    char host[256];         /* broker host */
    int port;               /* broker port */
    atomic_bool connected;  /* set by the network thread */
    struct dynsec *dynsec;  /* owned; told of connects, disconnects and answers */
};

/* Parses mqtt://[USER:PASS@]HOST[:PORT]; user and pass go straight to
 * libmosquitto and are not kept. */
static int url_parse(const char *url, struct mqtt *m, char *user, char *pass, size_t cred_size)
{
    static const char scheme[] = "mqtt://";
    user[0] = pass[0] = '\0';
    if (strncmp(url, scheme, sizeof(scheme) - 1) != 0)
        return EF_EINVAL;
    const char *rest = url + sizeof(scheme) - 1;
    const char *at = strrchr(rest, '@');
    if (at) {
        /* USER@ alone is fine: the password then comes from a file. */
        const char *colon = memchr(rest, ':', (size_t)(at - rest));
        const char *user_end = colon ? colon : at;
        if (user_end == rest || (size_t)(user_end - rest) >= cred_size ||
            (colon && (size_t)(at - colon) > cred_size))
            return EF_EINVAL;
        memcpy(user, rest, (size_t)(user_end - rest));
        user[user_end - rest] = '\0';
        if (colon) {
            memcpy(pass, colon + 1, (size_t)(at - colon - 1));
            pass[at - colon - 1] = '\0';
        }
        rest = at + 1;
    }
    const char *colon = strrchr(rest, ':');
    size_t host_len = colon ? (size_t)(colon - rest) : strlen(rest);
    if (host_len == 0 || host_len >= sizeof(m->host))
        return EF_EINVAL;
    memcpy(m->host, rest, host_len);
    m->host[host_len] = '\0';
    m->port = 1883;
    if (colon) {
        char *end = NULL;
        long port = strtol(colon + 1, &end, 10);
        if (*end || port < 1 || port > 65535)
            return EF_EINVAL;
        m->port = (int)port;
    }
    return 0;
}

static void on_connect(struct mosquitto *mosq, void *obj, int rc)
{
    struct mqtt *m = obj;
    if (rc != 0) {
        ef_warn("mqtt_refused", "host=%s port=%d reason=\"%s\"", m->host, m->port,
                mosquitto_connack_string(rc));
        return;
    }
    static const char *const subscriptions[] = {
        EF_TOPIC_ROOT "/devices/+/reported",
        EF_TOPIC_ROOT "/devices/+/status",
    };
    for (size_t i = 0; i < sizeof(subscriptions) / sizeof(subscriptions[0]); i++)
        mosquitto_subscribe(mosq, NULL, subscriptions[i], 1);
    /* Telemetry at QoS 0: the broker then streams windows without waiting
     * for acknowledgements (at QoS 1 its 20-message in-flight window throttles
     * a burst until its queue overflows and drops), and a lost window only
     * thins a statistic. */
    mosquitto_subscribe(mosq, NULL, EF_TOPIC_ROOT "/devices/+/telemetry", 0);
    /* Queued before any command the session sends, so the broker has the
     * subscription in place when the plugin answers. A broker without the
     * plugin or without rights for us refuses or ignores it: the probe's
     * silence then tells the session so. */
    mosquitto_subscribe(mosq, NULL, DYNSEC_RESPONSE_TOPIC, 1);
    atomic_store(&m->connected, true);
    ef_info("mqtt_connected", "host=%s port=%d", m->host, m->port);
    dynsec_connected(m->dynsec);
}

static void on_disconnect(struct mosquitto *mosq, void *obj, int rc)
{
    struct mqtt *m = obj;
    atomic_store(&m->connected, false);
    dynsec_disconnected(m->dynsec);
    if (rc != 0)
        ef_warn("mqtt_disconnected", "host=%s port=%d reason=\"%s\" retry=backoff", m->host,
                m->port, mosquitto_strerror(rc));
}

static void on_message(struct mosquitto *mosq, void *obj, const struct mosquitto_message *msg)
{
    struct mqtt *m = obj;
    char device_id[EF_DEVICE_ID_MAX + 1];
    const char *leaf;
    if (strcmp(msg->topic, DYNSEC_RESPONSE_TOPIC) == 0) {
        if (msg->payloadlen >= 0)
            dynsec_response(m->dynsec, msg->payload, (size_t)msg->payloadlen);
        return;
    }
    atomic_fetch_add(&m->srv->stats.mqtt_messages_in, 1);
    if (ef_topic_parse_device(msg->topic, device_id, &leaf) != 0)
        return;
    /* Telemetry windows have their own bound (TELEMETRY_MAX_BYTES, larger
     * than a report's), checked and counted as malformed by the parser. */
    if (strcmp(leaf, "telemetry") == 0 && msg->payloadlen >= 0) {
        (void)telemetry_submit(m->srv->telemetry, device_id, msg->payload, (size_t)msg->payloadlen,
                               ef_now_ms());
        return;
    }
    if (msg->payloadlen < 0 || (size_t)msg->payloadlen > MQTT_MAX_DEVICE_PAYLOAD) {
        ef_warn("mqtt_oversized", "device=%s bytes=%d", device_id, msg->payloadlen);
        return;
    }
    /* Both queued for the report writer (report_queue.h), which parses and
     * applies them in this order: this thread must drain the broker's burst. */
    if (strcmp(leaf, "status") == 0)
        (void)report_queue_submit(m->srv->reports, REPORT_TOPIC_STATUS, device_id, msg->payload,
                                  (size_t)msg->payloadlen, ef_now_ms());
    else if (strcmp(leaf, "reported") == 0)
        (void)report_queue_submit(m->srv->reports, REPORT_TOPIC_REPORTED, device_id, msg->payload,
                                  (size_t)msg->payloadlen, ef_now_ms());
}

int mqtt_start(struct server *srv, const char *url, const char *password, struct mqtt **out)
{
    char user[128], pass[256], client_id[64];
    int rc = 0;
    struct mqtt *m = calloc(1, sizeof(*m));
    *out = NULL;
    if (!m)
        return EF_ENOMEM;
    m->srv = srv;
    if (url_parse(url, m, user, pass, sizeof(user)) != 0 ||
        (password && strlen(password) >= sizeof(pass))) {
        rc = EF_EINVAL;
        goto out;
    }
    if (password)
        snprintf(pass, sizeof(pass), "%s", password);
    if ((rc = dynsec_new(m, &m->dynsec)) != 0)
        goto out;
    mosquitto_lib_init();
    /* A persistent session under an id stable for this data directory: the
     * broker keeps the QoS 1 reports devices send while this server restarts
     * or reconnects, and two servers on one broker never share an id. */
    char dir_hash[EF_HEX256_SIZE], *dir = realpath(srv->cfg.data_dir, NULL);
    const char *dir_name = dir ? dir : srv->cfg.data_dir;
    ef_sha256_hex(dir_name, strlen(dir_name), dir_hash);
    free(dir);
    snprintf(client_id, sizeof(client_id), "edgefleet-server-%.12s", dir_hash);
    if (!(m->mosq = mosquitto_new(client_id, false, m))) {
        rc = EF_ENOMEM;
        goto out;
    }
    mosquitto_int_option(m->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    mosquitto_connect_callback_set(m->mosq, on_connect);
    mosquitto_disconnect_callback_set(m->mosq, on_disconnect);
    mosquitto_message_callback_set(m->mosq, on_message);
    mosquitto_reconnect_delay_set(m->mosq, MQTT_RECONNECT_MIN_S, MQTT_RECONNECT_MAX_S, true);
    if (user[0] && mosquitto_username_pw_set(m->mosq, user, pass) != MOSQ_ERR_SUCCESS) {
        rc = EF_EINVAL;
        goto out;
    }
    /* connect_async + loop_start: the network thread keeps retrying with
     * backoff, so a broker that starts after us is picked up when it comes. */
    int mrc = mosquitto_connect_async(m->mosq, m->host, m->port, MQTT_KEEPALIVE_S);
    if (mrc != MOSQ_ERR_SUCCESS)
        ef_warn("mqtt_connect_failed", "host=%s port=%d reason=\"%s\" retry=backoff", m->host,
                m->port, mosquitto_strerror(mrc));
    if (mosquitto_loop_start(m->mosq) != MOSQ_ERR_SUCCESS) {
        rc = EF_ENET;
        goto out;
    }
    *out = m;
    m = NULL;
out:
    sodium_memzero(pass, sizeof(pass));
    if (m) {
        if (m->mosq)
            mosquitto_destroy(m->mosq);
        dynsec_free(m->dynsec);
        free(m);
    }
    return rc;
}

void mqtt_stop(struct mqtt *m)
{
    if (!m)
        return;
    mosquitto_disconnect(m->mosq);
    mosquitto_loop_stop(m->mosq, false);
    /* The network thread is gone, so no hook runs during this; the session's
     * own thread may still send, which fails cleanly while disconnected. */
    dynsec_free(m->dynsec);
    mosquitto_destroy(m->mosq);
    mosquitto_lib_cleanup();
    free(m);
}

int mqtt_publish(struct mqtt *m, const char *topic, const void *payload, size_t len, int qos,
                 bool retain)
{
    if (!m)
        return 0;
    if (len > INT32_MAX)
        return EF_ETOOBIG;
    int rc = mosquitto_publish(m->mosq, NULL, topic, (int)len, payload, qos, retain);
    if (rc != MOSQ_ERR_SUCCESS) {
        ef_warn("mqtt_publish_failed", "topic=%s reason=\"%s\"", topic, mosquitto_strerror(rc));
        return EF_ENET;
    }
    atomic_fetch_add(&m->srv->stats.mqtt_publishes, 1);
    return 0;
}

bool mqtt_connected(const struct mqtt *m)
{
    return m && atomic_load(&((struct mqtt *)m)->connected);
}

struct dynsec *mqtt_dynsec(const struct mqtt *m)
{
    return m ? m->dynsec : NULL;
}

int mqtt_dynsec_send(struct mqtt *m, const char *json, size_t len)
{
    if (!mqtt_connected(m))
        return EF_ENET;
    if (len > MQTT_MAX_CONTROL_PAYLOAD)
        return EF_ETOOBIG;
    int rc = mosquitto_publish(m->mosq, NULL, DYNSEC_TOPIC, (int)len, json, 0, false);
    if (rc != MOSQ_ERR_SUCCESS) {
        ef_warn("dynsec_send_failed", "reason=\"%s\"", mosquitto_strerror(rc));
        return EF_ENET;
    }
    return 0;
}
