/*
 * assignment.h - a device's desired state, signed with the server key.
 *
 * On the wire it is an envelope {"payload": base64(assignment JSON),
 * "signature": base64(Ed25519 over the payload bytes)}: the receiver verifies
 * the signature over the decoded bytes before it parses the assignment.
 * Assignment: {"device_id", "seq", "issued_at", "slots": {"production": slot,
 * "shadow"?: slot}} with slot {"model", "version", "manifest_url",
 * "signature_url", "artifact_url", "sha256", "size", "rollout_id"}.
 */
#ifndef EF_ASSIGNMENT_H
#define EF_ASSIGNMENT_H

#include "common/crypto.h"
#include "common/topic.h"

#include <stddef.h>
#include <stdint.h>

#define EF_ASSIGNMENT_MAX_BYTES (64u << 10)

enum ef_slot_kind { EF_SLOT_PRODUCTION, EF_SLOT_SHADOW, EF_SLOT_COUNT };

/* One model slot; strings are owned by the slot. */
struct ef_slot {
    char *model;         /* model name */
    int64_t version;     /* model version */
    char *manifest_url;  /* server-relative or absolute URL of manifest.json */
    char *signature_url; /* URL of the detached manifest signature */
    char *artifact_url;  /* URL of the artifact bytes */
    char sha256[EF_HEX256_SIZE]; /* of the artifact */
    int64_t size;        /* of the artifact, bytes */
    char *rollout_id;    /* rollout that caused it, or NULL */
};

struct ef_assignment {
    char device_id[EF_DEVICE_ID_MAX + 1];
    int64_t seq;                          /* never decreases for a device */
    int64_t issued_at_ms;                 /* Unix time, ms */
    struct ef_slot *slots[EF_SLOT_COUNT]; /* NULL where the slot is empty */
};

/* Name of a slot kind ("production", "shadow"), and back (EF_EINVAL). */
const char *ef_slot_name(enum ef_slot_kind kind);
int ef_slot_kind_parse(const char *name, enum ef_slot_kind *out);

/* New slot with copies of the strings; rollout_id may be NULL. */
struct ef_slot *ef_slot_new(const char *model, int64_t version, const char *manifest_url,
                            const char *signature_url, const char *artifact_url,
                            const char *sha256, int64_t size, const char *rollout_id);
void ef_slot_free(struct ef_slot *slot);

/* Serializes a to its canonical JSON (a new malloc'd string). */
char *ef_assignment_serialize(const struct ef_assignment *a);

/* Serializes and signs a; returns the envelope as a new malloc'd string. */
char *ef_assignment_sign(const struct ef_assignment *a, const unsigned char sk[EF_SK_BYTES]);

/* Verifies the envelope with server_pk and then parses the payload.
 * EF_EPARSE (envelope malformed), EF_EBADSIG, EF_EINVAL (payload fields),
 * EF_ETOOBIG. On success *out is new and owned by the caller. */
int ef_assignment_verify_parse(const char *envelope, size_t len,
                               const unsigned char server_pk[EF_PK_BYTES],
                               struct ef_assignment **out, char *msg, size_t msg_size);

void ef_assignment_free(struct ef_assignment *a);

#endif
