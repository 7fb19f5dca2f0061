/*
 * topic.h - the MQTT topic names of DESIGN.md, in one place.
 *
 *   edgefleet/v1/devices/{id}/{desired|cmd|reported|telemetry|status}
 *   edgefleet/v1/events/{kind}
 */
#ifndef EF_TOPIC_H
#define EF_TOPIC_H

#include <stdbool.h>
#include <stddef.h>

#define EF_TOPIC_ROOT "edgefleet/v1"
#define EF_TOPIC_SIZE 160
#define EF_DEVICE_ID_MAX 64

/* True when id is 1..64 characters of [A-Za-z0-9._-], not starting with '.'
 * or '-': safe in topics, paths, URLs and broker usernames. */
bool ef_device_id_valid(const char *id);

/* True when name is 1..64 characters of [a-z0-9._-] starting with a letter or
 * digit: the rule for model, ring and event kind names. */
bool ef_name_valid(const char *name);

/* Writes edgefleet/v1/devices/{id}/{leaf}. EF_EINVAL for a bad id or leaf. */
int ef_topic_device(char *buf, size_t size, const char *device_id, const char *leaf);

/* Writes edgefleet/v1/events/{kind}. */
int ef_topic_event(char *buf, size_t size, const char *kind);

/* Splits a device topic into its id (copied into id, EF_DEVICE_ID_MAX + 1
 * bytes) and its leaf (borrowed pointer into topic). EF_EINVAL otherwise. */
int ef_topic_parse_device(const char *topic, char *id, const char **leaf);

#endif
