/*
 * fuzz_manifest.c - fuzz target for manifest parsing and verification.
 *
 * Each input is parsed as manifest.json bytes. Then the same bytes go through
 * ef_manifest_verify_parse twice: signed with a fixed release key (the result
 * must equal plain parsing) and with a signature by another key (it must be
 * refused as a bad signature, whatever the bytes). An accepted manifest must
 * serialize to canonical bytes that parse again to the same bytes, and every
 * golden vector it counts must be readable.
 */
#include "common/crypto.h"
#include "common/ef_error.h"
#include "common/manifest.h"
#include "tests/fuzz/fuzz_keys.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* signer is the release key; set on each input. */
static const struct fuzz_keys *keys;

/* Checks an accepted manifest against its own invariants. */
static void check_accepted(const struct ef_manifest *m)
{
    if (!m || !m->doc || !m->name || m->version < 1 || !m->backend ||
        !ef_is_sha256_hex(m->sha256) || m->size < 1 || m->input_size < 1 ||
        m->input_size > EF_MANIFEST_MAX_IO || m->output_size < 1 ||
        m->output_size > EF_MANIFEST_MAX_IO)
        abort();
    double *in = malloc(m->input_size * sizeof(*in));
    double *out = malloc(m->output_size * sizeof(*out));
    double tolerance = -1;
    if (!in || !out)
        abort();
    for (size_t i = 0; i < m->test_vector_count; i++)
        if (ef_manifest_test_vector(m, i, in, out, &tolerance) != 0 || !(tolerance >= 0))
            abort();
    if (ef_manifest_test_vector(m, m->test_vector_count, in, out, &tolerance) != EF_ENOENT)
        abort();
    free(in);
    free(out);

    char *bytes = ef_manifest_serialize(m), *bytes_again = NULL;
    struct ef_manifest *again = NULL;
    if (!bytes)
        abort();
    /* Canonical bytes may outgrow the limit (reals print with 17 digits). */
    if (strlen(bytes) <= EF_MANIFEST_MAX_BYTES) {
        if (ef_manifest_parse(bytes, strlen(bytes), &again, NULL, 0) != 0)
            abort();
        bytes_again = ef_manifest_serialize(again);
        if (!bytes_again || strcmp(bytes, bytes_again) != 0)
            abort();
    }
    free(bytes_again);
    ef_manifest_free(again);
    free(bytes);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *bytes = (const char *)data;
    struct ef_manifest *m = NULL, *verified = NULL, *forged = NULL;
    char msg[256], sig[EF_SIG_B64_SIZE];
    keys = fuzz_keys('R');

    int rc = ef_manifest_parse(bytes, size, &m, msg, sizeof(msg));
    if ((rc == 0) != (m != NULL))
        abort();
    if (rc == 0)
        check_accepted(m);

    ef_sign_b64(keys->signer.sk, bytes, size, sig);
    if (ef_manifest_verify_parse(bytes, size, sig, keys->signer.pk, &verified, msg, sizeof(msg)) !=
        rc)
        abort();

    ef_sign_b64(keys->other.sk, bytes, size, sig);
    if (ef_manifest_verify_parse(bytes, size, sig, keys->signer.pk, &forged, msg, sizeof(msg)) !=
            EF_EBADSIG ||
        forged)
        abort();

    ef_manifest_free(m);
    ef_manifest_free(verified);
    return 0;
}
