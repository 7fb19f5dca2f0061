/*
 * report.h - what devices say on their `reported` topic, parsed and checked.
 *
 * Payload: {"slot": "production"|"shadow", "model": NAME, "version": N,
 * "state": STATE, "reason"?: TEXT|null, "seq"?: N}, at most REPORT_MAX_BYTES
 * (schema/json/reported.schema.json). STATE is a device action state of
 * DESIGN.md other than pending, or a step of the agent's deployment state
 * machine (staged, self-test).
 */
#ifndef EF_REPORT_H
#define EF_REPORT_H

#include "common/assignment.h"

#include <stddef.h>
#include <stdint.h>

#define REPORT_MAX_BYTES   (16u * 1024u)
#define REPORT_REASON_SIZE 513 /* reasons are at most 512 bytes */

struct report {
    enum ef_slot_kind slot;
    char model[65];                  /* model name */
    int64_t version;                 /* model version, >= 1 */
    char state[16];                  /* one of the known states */
    char reason[REPORT_REASON_SIZE]; /* why it failed or rolled back; "" if none */
};

/* Parses len bytes into *out. EF_ETOOBIG, EF_EPARSE (not JSON, duplicate
 * keys), EF_EINVAL (missing, unknown or out-of-range fields); msg (may be
 * NULL) says which. */
int report_parse(const char *payload, size_t len, struct report *out, char *msg, size_t msg_size);

#endif
