/*
 * mqtt.h - the server's broker client (libmosquitto, its own network thread).
 *
 * Connects to cfg.mqtt_url with reconnect and exponential backoff, subscribes
 * to every device's `reported` and `status` topics and records what devices
 * say (online state, last seen, reported model versions) through db_fleet.h.
 * It also subscribes to their `telemetry` topics (at QoS 0) and hands each
 * window to telemetry_submit (telemetry.h), which queues it without blocking.
 * Publishes retained assignments and events. The server's client is the only
 * one allowed to write `desired` topics.
 *
 * The client also carries the server's session with the broker's
 * dynamic-security plugin (dynsec.h), which it owns: it subscribes to the
 * plugin's response topic on every connect, hands the answers and its
 * connection changes to the session, and sends the session's commands.
 */
#ifndef EF_MQTT_H
#define EF_MQTT_H

#include <stdbool.h>
#include <stddef.h>

struct server;
struct mqtt;
struct dynsec;

/* Parses mqtt://[USER[:PASS]@]HOST[:PORT] and starts the client thread;
 * connection happens in the background. password (may be NULL) overrides any
 * in the URL, so that it need not appear on a command line. EF_EINVAL for a
 * bad URL, EF_ENOMEM, EF_ENET. */
int mqtt_start(struct server *srv, const char *url, const char *password, struct mqtt **out);

/* Disconnects, stops the thread, frees; accepts NULL. */
void mqtt_stop(struct mqtt *m);

/* Queues a publish (libmosquitto keeps QoS 1 messages until acknowledged,
 * and sends them after a reconnect). 0, EF_ENET when not queued. m may be
 * NULL (no broker configured): then nothing is sent and 0 is returned. */
int mqtt_publish(struct mqtt *m, const char *topic, const void *payload, size_t len, int qos,
                 bool retain);

/* True while connected to the broker. */
bool mqtt_connected(const struct mqtt *m);

/* The dynamic-security session (dynsec.h), borrowed; NULL when m is NULL. */
struct dynsec *mqtt_dynsec(const struct mqtt *m);

/* Sends one command document to the dynamic-security plugin (DYNSEC_TOPIC),
 * at QoS 0: the plugin's answer is the acknowledgement, and a command that
 * was not answered must not be replayed after a reconnect. 0, EF_ENET when
 * not connected or not queued, EF_ETOOBIG. */
int mqtt_dynsec_send(struct mqtt *m, const char *json, size_t len);

#endif
