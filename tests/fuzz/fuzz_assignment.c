/*
 * fuzz_assignment.c - fuzz target for ef_assignment_verify_parse.
 *
 * Each input is used twice, with a fixed server key pair derived from a fixed
 * seed (crypto_sign_seed_keypair):
 *  1. as a whole envelope, the way a device receives it from the broker;
 *  2. as the payload of an envelope this target signs with the server key, so
 *     the fuzzer reaches the payload parser behind the signature check.
 * Any accepted assignment must obey the payload rules and survive
 * sign -> verify_parse unchanged, and the same envelope checked against
 * another public key must be refused as a bad signature.
 */
#include "common/assignment.h"
#include "common/crypto.h"
#include "common/ef_error.h"
#include "common/topic.h"
#include "tests/fuzz/fuzz_keys.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* signer is the server key; set on each input. */
static const struct fuzz_keys *keys;

static bool str_equal(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool slots_equal(const struct ef_slot *a, const struct ef_slot *b)
{
    if (!a || !b)
        return a == b;
    return str_equal(a->model, b->model) && a->version == b->version &&
           str_equal(a->manifest_url, b->manifest_url) &&
           str_equal(a->signature_url, b->signature_url) &&
           str_equal(a->artifact_url, b->artifact_url) && strcmp(a->sha256, b->sha256) == 0 &&
           a->size == b->size && str_equal(a->rollout_id, b->rollout_id);
}

/* Checks the rules an accepted assignment must obey, then signs it again
 * and checks that what comes back is the same assignment. */
static void check_accepted(const struct ef_assignment *a)
{
    if (!ef_device_id_valid(a->device_id) || a->seq < 1)
        abort();
    for (int i = 0; i < EF_SLOT_COUNT; i++) {
        const struct ef_slot *s = a->slots[i];
        if (s && (!ef_name_valid(s->model) || s->version < 1 || s->size < 1 ||
                  !ef_is_sha256_hex(s->sha256) || !s->manifest_url || !s->signature_url ||
                  !s->artifact_url))
            abort();
    }
    char *env = ef_assignment_sign(a, keys->signer.sk);
    struct ef_assignment *back = NULL;
    if (!env || ef_assignment_verify_parse(env, strlen(env), keys->signer.pk, &back, NULL, 0) != 0)
        abort();
    if (strcmp(a->device_id, back->device_id) != 0 || a->seq != back->seq ||
        a->issued_at_ms != back->issued_at_ms)
        abort();
    for (int i = 0; i < EF_SLOT_COUNT; i++)
        if (!slots_equal(a->slots[i], back->slots[i]))
            abort();
    ef_assignment_free(back);
    free(env);
}

/* Verifies env with the server key, checking what it accepts, and with the
 * other key, which must refuse whatever the server key accepted. */
static void verify_both_ways(const char *env, size_t len)
{
    struct ef_assignment *a = NULL, *forged = NULL;
    char msg[256];
    int rc = ef_assignment_verify_parse(env, len, keys->signer.pk, &a, msg, sizeof(msg));
    if ((rc == 0) != (a != NULL))
        abort();
    if (rc == 0)
        check_accepted(a);
    int other = ef_assignment_verify_parse(env, len, keys->other.pk, &forged, msg, sizeof(msg));
    if (rc == 0 && (other != EF_EBADSIG || forged))
        abort();
    ef_assignment_free(forged);
    ef_assignment_free(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char sig[EF_SIG_B64_SIZE];
    char *payload_b64 = NULL, *env = NULL;
    json_t *doc = NULL;
    keys = fuzz_keys('S');

    verify_both_ways((const char *)data, size);

    ef_sign_b64(keys->signer.sk, data, size, sig);
    payload_b64 = ef_b64_encode(data, size);
    if (!payload_b64)
        abort();
    doc = json_pack("{s:s, s:s}", "payload", payload_b64, "signature", sig);
    env = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    if (!env)
        abort();
    verify_both_ways(env, strlen(env));

    json_decref(doc);
    free(env);
    free(payload_b64);
    return 0;
}
