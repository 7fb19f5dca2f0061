/*
 * manifest.h - the model manifest: what a model version is, signed with the
 * release key.
 *
 * The signature covers the exact bytes of manifest.json, so a manifest is
 * verified before it is parsed (ef_manifest_verify_parse) and never
 * re-serialized once signed. Fields (schema/json/manifest.schema.json):
 * format, name, version, backend, device_class, artifact{sha256,size},
 * input{size,features}, output{size,labels}, baseline{features,output},
 * test_vectors[{input,output,tolerance}], metrics, lineage, created_at.
 */
#ifndef EF_MANIFEST_H
#define EF_MANIFEST_H

#include "common/crypto.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define EF_MANIFEST_FORMAT 1
#define EF_MANIFEST_MAX_BYTES (4u << 20) /* 4 MiB: baselines and vectors included */
#define EF_MANIFEST_MAX_IO 65536         /* inputs or outputs of one model */

/* A validated manifest. All pointers borrow from doc, which it owns. */
struct ef_manifest {
    json_t *doc;              /* the whole document */
    const char *name;         /* model name */
    int64_t version;          /* >= 1, strictly increasing per model */
    const char *backend;      /* "fann" or "fann-fixed" */
    const char *device_class; /* NULL when any class may run it */
    const char *sha256;       /* of the artifact, 64 hex digits */
    int64_t size;             /* of the artifact, bytes */
    size_t input_size;        /* number of input features */
    size_t output_size;       /* number of outputs */
    size_t test_vector_count; /* golden vectors in doc["test_vectors"] */
};

/* Validates doc and wraps it; takes a new reference to doc. EF_EINVAL with a
 * reason in msg (may be NULL) when a field is missing or wrong. */
int ef_manifest_from_json(json_t *doc, struct ef_manifest **out, char *msg, size_t msg_size);

/* Parses and validates bytes that were already verified or that are about to
 * be signed. EF_EPARSE, EF_ETOOBIG, EF_EINVAL. */
int ef_manifest_parse(const char *bytes, size_t len, struct ef_manifest **out, char *msg,
                      size_t msg_size);

/* Verifies sig_b64 over bytes with release_pk, and only then parses.
 * EF_EBADSIG/EF_EPARSE before any parsing, then as ef_manifest_parse. */
int ef_manifest_verify_parse(const char *bytes, size_t len, const char *sig_b64,
                             const unsigned char release_pk[EF_PK_BYTES],
                             struct ef_manifest **out, char *msg, size_t msg_size);

/* Canonical bytes of a manifest document (compact, sorted keys); the caller
 * frees. This is what gets signed. */
char *ef_manifest_serialize(const struct ef_manifest *m);

/* Reads golden vector i: borrowed arrays of input_size and output_size doubles
 * copied into in/out (caller-sized), and its tolerance. */
int ef_manifest_test_vector(const struct ef_manifest *m, size_t i, double *in, double *out,
                            double *tolerance);

void ef_manifest_free(struct ef_manifest *m);

#endif
