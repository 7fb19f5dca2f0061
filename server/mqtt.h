/*
 * mqtt.h - the server's broker client (libmosquitto, its own network thread).
 *
 * Connects to cfg.mqtt_url with reconnect and exponential backoff, subscribes
 * to every device's `reported` and `status` topics and records what devices
 * say (online state, last seen, reported model versions) through db_fleet.h.
 * Publishes retained assignments and events. The server's client is the only
 * one allowed to write `desired` topics.
 */
#ifndef EF_MQTT_H
#define EF_MQTT_H

#include <stdbool.h>
#include <stddef.h>

struct server;
struct mqtt;

/* Parses mqtt://HOST:PORT and starts the client thread; connection happens
 * in the background. EF_EINVAL for a bad URL, EF_ENOMEM, EF_ENET. */
int mqtt_start(struct server *srv, const char *url, struct mqtt **out);

/* Disconnects, stops the thread, frees; accepts NULL. */
void mqtt_stop(struct mqtt *m);

/* Queues a publish (libmosquitto keeps QoS 1 messages until acknowledged,
 * and sends them after a reconnect). 0, EF_ENET when not queued. m may be
 * NULL (no broker configured): then nothing is sent and 0 is returned. */
int mqtt_publish(struct mqtt *m, const char *topic, const void *payload, size_t len, int qos,
                 bool retain);

/* True while connected to the broker. */
bool mqtt_connected(const struct mqtt *m);

#endif
