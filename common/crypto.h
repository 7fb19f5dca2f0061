/*
 * crypto.h - signing, hashing and secrets on libsodium.
 *
 * Ed25519 detached signatures (base64 on the wire), SHA-256 for artifacts
 * (hex), BLAKE2b-256 for stored token hashes (hex), random bearer tokens.
 * Secret keys live in files of mode 0600 holding the base64 secret key.
 */
#ifndef EF_CRYPTO_H
#define EF_CRYPTO_H

#include <sodium.h>
#include <stdbool.h>
#include <stddef.h>

#define EF_PK_BYTES crypto_sign_PUBLICKEYBYTES /* 32 */
#define EF_SK_BYTES crypto_sign_SECRETKEYBYTES /* 64: seed + public key */
#define EF_SIG_BYTES crypto_sign_BYTES          /* 64 */
#define EF_B64_SIZE(n) (((n) + 2) / 3 * 4 + 1)
#define EF_PK_B64_SIZE EF_B64_SIZE(EF_PK_BYTES)
#define EF_SIG_B64_SIZE EF_B64_SIZE(EF_SIG_BYTES)
#define EF_HEX256_SIZE 65 /* 64 hex digits and a NUL */
#define EF_TOKEN_SIZE 64  /* buffer for a bearer token with its prefix */

struct ef_keypair {
    unsigned char pk[EF_PK_BYTES];
    unsigned char sk[EF_SK_BYTES];
};

/* Initialises libsodium; call once from main. Returns 0 or EF_EIO. */
int ef_crypto_init(void);

/* Fills kp with a new random key pair. */
void ef_keypair_generate(struct ef_keypair *kp);

/* Writes the secret key to path (mode 0600, atomically); EF_EEXIST if the
 * file exists, EF_EIO otherwise. */
int ef_keypair_save(const struct ef_keypair *kp, const char *path);

/* Reads a key pair written by ef_keypair_save. EF_ENOENT, EF_EPARSE, EF_EPERM
 * (file readable by group or others). */
int ef_keypair_load(struct ef_keypair *kp, const char *path);

/* Wipes the secret half. */
void ef_keypair_wipe(struct ef_keypair *kp);

/* Signs len bytes of msg; writes the base64 detached signature. */
void ef_sign_b64(const unsigned char sk[EF_SK_BYTES], const void *msg, size_t len,
                 char sig_b64[EF_SIG_B64_SIZE]);

/* Verifies a base64 detached signature over msg. 0, EF_EBADSIG (does not
 * verify) or EF_EPARSE (not base64 of the right length). */
int ef_verify_b64(const unsigned char pk[EF_PK_BYTES], const void *msg, size_t len,
                  const char *sig_b64);

/* Public key to and from base64. from: 0 or EF_EPARSE. */
void ef_pk_to_b64(const unsigned char pk[EF_PK_BYTES], char out[EF_PK_B64_SIZE]);
int ef_pk_from_b64(const char *b64, unsigned char pk[EF_PK_BYTES]);

/* Standard base64 of len bytes into a malloc'd string (NULL on ENOMEM), and
 * back: decode into a malloc'd buffer of *out_len bytes (EF_EPARSE, EF_ENOMEM). */
char *ef_b64_encode(const void *data, size_t len);
int ef_b64_decode(const char *b64, unsigned char **out, size_t *out_len);

/* Incremental SHA-256 for streamed content. */
struct ef_sha256 {
    crypto_hash_sha256_state state;
};
void ef_sha256_init(struct ef_sha256 *h);
void ef_sha256_update(struct ef_sha256 *h, const void *data, size_t len);
void ef_sha256_final_hex(struct ef_sha256 *h, char hex[EF_HEX256_SIZE]);

/* SHA-256 of a buffer, as lowercase hex. */
void ef_sha256_hex(const void *data, size_t len, char hex[EF_HEX256_SIZE]);

/* SHA-256 of a file's contents: 0, EF_ENOENT or EF_EIO. */
int ef_sha256_file_hex(const char *path, char hex[EF_HEX256_SIZE]);

/* True when s is exactly 64 lowercase hex digits. */
bool ef_is_sha256_hex(const char *s);

/* New random bearer token "PREFIX_" + 43 base64url characters (256 bits). */
void ef_token_generate(const char *prefix, char out[EF_TOKEN_SIZE]);

/* BLAKE2b-256 of a token, hex: what is stored instead of the token. */
void ef_token_hash(const char *token, char hex[EF_HEX256_SIZE]);

/* Constant-time equality of two NUL-terminated strings of the same length. */
bool ef_secret_equal(const char *a, const char *b);

#endif
