/*
 * mqtt_link.h - an MQTT 3.1.1 client on the agent's libuv loop: libmosquitto
 * without its own thread, its socket watched by uv_poll and its housekeeping
 * (keepalive) run by a uv_timer. The host is looked up in libuv's thread pool
 * before every attempt, so nothing blocks the loop. Reconnects with
 * exponential backoff (1 s doubling to 30 s, +-20% jitter); subscriptions are
 * remembered and made again after every reconnect. A last will (QoS 1,
 * retained) is set at connect time. Clean session: the broker keeps nothing
 * for us between connections.
 *
 * Callbacks run on the loop thread; they may publish, subscribe and stop the
 * link (the stop then happens when the callback returns).
 */
#ifndef EF_AGENT_MQTT_LINK_H
#define EF_AGENT_MQTT_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

struct mqtt_link;

struct mqtt_link_opts {
    const char *host;         /* broker host */
    int port;                 /* broker port */
    const char *client_id;    /* MQTT client id */
    const char *username;     /* or NULL */
    const char *password;     /* or NULL */
    const char *will_topic;   /* last will topic, or NULL */
    const char *will_payload; /* last will payload (retained, QoS 1), NULL for empty */
    int keepalive_s;          /* seconds: 0 for 30, else 5..65535 */
};

/* A message arrived on a subscribed topic. topic and payload are borrowed. */
typedef void (*mqtt_message_cb)(void *ctx, const char *topic, const void *payload, size_t len);

/* The broker accepted the link (true, after every CONNACK, subscriptions
 * already sent) or an accepted connection was lost (false). Failed attempts
 * in between are not reported. */
typedef void (*mqtt_state_cb)(void *ctx, bool connected);

/* Parses mqtt://[USER:PASS@]HOST[:PORT][/] (HOST may be [IPv6]) into host
 * (size host_size) and *port (1883 when absent). Credentials in the URL are
 * skipped: they come from the identity. EF_EINVAL (also when host does not
 * fit). */
int mqtt_link_parse_url(const char *url, char *host, size_t host_size, int *port);

/* Starts connecting (in the background, retried with backoff until
 * mqtt_link_stop). Strings in opts are copied; *out is the new link.
 * EF_EINVAL (no host or client_id, port outside 1..65535, keepalive_s not 0
 * or 5..65535, bad will topic), EF_ENOMEM, EF_ENET. */
int mqtt_link_start(uv_loop_t *loop, const struct mqtt_link_opts *opts, mqtt_message_cb on_message,
                    mqtt_state_cb on_state, void *ctx, struct mqtt_link **out);

/* Remembers the subscription (a new qos replaces the old one) and makes it
 * now if connected, and after every reconnect. EF_EINVAL (bad filter or
 * qos), EF_ENOMEM, EF_EBUSY (stopping). */
int mqtt_link_subscribe(struct mqtt_link *l, const char *topic, int qos);

/* Publishes; EF_ENET when not connected (nothing is queued while
 * disconnected, whatever the QoS: callers that need delivery re-publish on
 * reconnect). EF_EINVAL (bad topic, qos or size), EF_ENOMEM. */
int mqtt_link_publish(struct mqtt_link *l, const char *topic, const void *payload, size_t len,
                      int qos, bool retain);

/* True from an accepted CONNACK to the loss of that connection. Accepts NULL. */
bool mqtt_link_connected(const struct mqtt_link *l);

/* Disconnects cleanly (the broker does not send the will), waits up to 1 s
 * for the broker to close the connection, and frees the link once its
 * handles are closed: run the loop again before uv_loop_close. No callback
 * runs after this. Publish anything final before. Accepts NULL. */
void mqtt_link_stop(struct mqtt_link *l);

#endif
