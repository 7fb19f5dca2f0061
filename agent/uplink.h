/*
 * uplink.h - the agent's conversation with the fleet: the broker link
 * (status with its last will, desired and cmd in, reported and telemetry
 * out) and the HTTP pull of the desired state. agent_report() and
 * agent_poll_desired() of agent.h live here.
 */
#ifndef EF_AGENT_UPLINK_H
#define EF_AGENT_UPLINK_H

#include "agent/agent.h"

#include <jansson.h>

/* Connects to the broker (in the background, with backoff) with the device's
 * own credentials and a retained `offline` last will. On every connect it
 * publishes `online` (retained), subscribes to desired and cmd, and polls
 * GET /desired. EF_EINVAL (bad URL), EF_ENOMEM. */
int uplink_start(struct agent *a);

/* Publishes one telemetry window (QoS 0). */
void uplink_publish_telemetry(struct agent *a, const json_t *window);

/* Publishes `offline` (retained) and disconnects cleanly. */
void uplink_stop(struct agent *a);

#endif
