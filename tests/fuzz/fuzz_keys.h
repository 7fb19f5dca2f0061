/*
 * fuzz_keys.h - the fixed Ed25519 key pairs of the fuzz targets that sign
 * what they feed a verifier: derived from fixed seeds, so that a run is
 * reproducible. Static inline functions only.
 */
#ifndef EF_TESTS_FUZZ_KEYS_H
#define EF_TESTS_FUZZ_KEYS_H

#include "common/crypto.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* A target's keys. */
struct fuzz_keys {
    struct ef_keypair signer; /* signs what the target expects to be accepted */
    struct ef_keypair other;  /* signs what must be refused as a bad signature */
};

/* The target's keys (borrowed, alive for the process): signer derived from a
 * seed of bytes signer_fill, other from one of 'O' bytes. The first call
 * makes them and starts libsodium, aborting when it cannot. */
static inline const struct fuzz_keys *fuzz_keys(unsigned char signer_fill)
{
    static struct fuzz_keys keys;
    static bool ready;
    const unsigned char fills[2] = {signer_fill, 'O'};
    struct ef_keypair *pairs[2] = {&keys.signer, &keys.other};
    unsigned char seed[crypto_sign_SEEDBYTES];
    if (ready)
        return &keys;
    if (ef_crypto_init() != 0)
        abort();
    for (int i = 0; i < 2; i++) {
        memset(seed, fills[i], sizeof(seed));
        crypto_sign_seed_keypair(pairs[i]->pk, pairs[i]->sk, seed);
    }
    ready = true;
    return &keys;
}

#endif
