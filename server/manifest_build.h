/*
 * manifest_build.h - the manifest the server writes for an uploaded artifact.
 *
 * The server learns the backend and the input and output sizes from the
 * artifact itself (a FANN network file) and everything it cannot learn from
 * the client's `meta` object; it fills in format, name, version, artifact,
 * lineage.parent_version and created_at. The result is validated like any
 * manifest a device receives (ef_manifest_from_json) before anyone signs it.
 *
 * FANN's text format starts with a magic line, "FANN_FLO_2.1" for float
 * networks (backend "fann") or "FANN_FIX_2.0" for fixed-point ones
 * ("fann-fixed"), and holds a line "layer_sizes=A B ... Z " in which every
 * layer counts one bias neuron: the network has A-1 inputs and Z-1 outputs.
 */
#ifndef EF_MANIFEST_BUILD_H
#define EF_MANIFEST_BUILD_H

#include "common/manifest.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define MANIFEST_FANN_HEADER_MAX (64u << 10) /* bytes of a FANN file read for its header */

/* What an artifact file says about itself. */
struct manifest_artifact_info {
    const char *backend; /* static "fann" or "fann-fixed" */
    size_t inputs;       /* input values */
    size_t outputs;      /* output values */
};

/* What the server knows about a version it is about to describe. */
struct manifest_source {
    const char *name;          /* model name, already validated */
    int64_t version;           /* the version being registered, >= 1 */
    int64_t parent_version;    /* the model's latest version before this one, 0 for none */
    const char *artifact_path; /* the artifact file */
    const char *sha256;        /* of the artifact, 64 lowercase hex digits */
    int64_t size;              /* of the artifact, bytes */
    const json_t *meta;        /* the client's meta object (borrowed), or NULL */
    int64_t now_ms;            /* created_at, Unix ms */
};

/* The keys a meta object may hold, NULL-terminated. "description" (of a
 * model created by the upload) and "version" are for the caller, which checks
 * them; manifest_build accepts and ignores them. The others become manifest
 * fields. */
extern const char *const manifest_meta_keys[];

/* Reads the FANN header of the file at path into *info and, when backend is
 * not NULL, checks that the file is of that backend. For "fann" the network
 * is also loaded with the float FANN library and its input and output counts
 * compared with the header's. EF_EINVAL with a reason in msg (unreadable or
 * foreign header, backend mismatch, network that does not load), EF_ENOENT,
 * EF_EIO, EF_ENOMEM. */
int manifest_inspect_artifact(const char *path, const char *backend,
                              struct manifest_artifact_info *info, char *msg, size_t msg_size);

/* Builds and validates the manifest of src. *out is new and owned by the
 * caller (ef_manifest_free); serialize it with ef_manifest_serialize to sign
 * it. EF_EINVAL with a reason in msg for an unknown or ill-typed meta key, an
 * artifact that does not match the backend, or a document that
 * ef_manifest_from_json refuses; EF_ENOENT, EF_EIO, EF_ENOMEM. */
int manifest_build(const struct manifest_source *src, struct ef_manifest **out, char *msg,
                   size_t msg_size);

#endif
