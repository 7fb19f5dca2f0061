/* crypto.c - Ed25519, SHA-256, BLAKE2b and tokens on libsodium. */
#include "common/crypto.h"
#include "common/ef_error.h"
#include "common/fsutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int ef_crypto_init(void)
{
    return sodium_init() < 0 ? EF_EIO : 0;
}

void ef_keypair_generate(struct ef_keypair *kp)
{
    crypto_sign_keypair(kp->pk, kp->sk);
}

void ef_keypair_wipe(struct ef_keypair *kp)
{
    sodium_memzero(kp->sk, sizeof(kp->sk));
}

int ef_keypair_save(const struct ef_keypair *kp, const char *path)
{
    char b64[EF_B64_SIZE(EF_SK_BYTES) + 1];
    struct stat st;
    if (stat(path, &st) == 0)
        return EF_EEXIST;
    sodium_bin2base64(b64, sizeof(b64) - 1, kp->sk, sizeof(kp->sk), sodium_base64_VARIANT_ORIGINAL);
    size_t n = strlen(b64);
    b64[n] = '\n';
    int rc = ef_atomic_write(path, b64, n + 1, 0600);
    sodium_memzero(b64, sizeof(b64));
    return rc;
}

int ef_keypair_load(struct ef_keypair *kp, const char *path)
{
    char *text = NULL;
    size_t len = 0, bin_len = 0;
    struct stat st;
    int rc = 0;
    if (stat(path, &st) != 0)
        return ef_from_errno(errno);
    if (st.st_mode & 077)
        return EF_EPERM;
    if ((rc = ef_read_file(path, 1024, &text, &len)) != 0)
        return rc;
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        text[--len] = '\0';
    if (sodium_base642bin(kp->sk, sizeof(kp->sk), text, len, NULL, &bin_len, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        bin_len != sizeof(kp->sk)) {
        rc = EF_EPARSE;
        goto out;
    }
    /* The file holds seed and public key; derive the key pair from the seed
     * so that a corrupted public half is caught here, not as bad signatures. */
    unsigned char seed[crypto_sign_SEEDBYTES], sk[EF_SK_BYTES];
    crypto_sign_ed25519_sk_to_seed(seed, kp->sk);
    crypto_sign_seed_keypair(kp->pk, sk, seed);
    if (sodium_memcmp(sk, kp->sk, sizeof(sk)) != 0)
        rc = EF_EPARSE;
    sodium_memzero(seed, sizeof(seed));
    sodium_memzero(sk, sizeof(sk));
out:
    sodium_memzero(text, len);
    free(text);
    return rc;
}

void ef_sign_b64(const unsigned char sk[EF_SK_BYTES], const void *msg, size_t len,
                 char sig_b64[EF_SIG_B64_SIZE])
{
    unsigned char sig[EF_SIG_BYTES];
    crypto_sign_detached(sig, NULL, msg, len, sk);
    sodium_bin2base64(sig_b64, EF_SIG_B64_SIZE, sig, sizeof(sig), sodium_base64_VARIANT_ORIGINAL);
}

static int b64_fixed(const char *b64, unsigned char *out, size_t want)
{
    size_t got = 0;
    const char *end = NULL;
    if (!b64)
        return EF_EPARSE;
    size_t len = strlen(b64);
    /* Tolerate one trailing newline, as signature files usually have. */
    if (len > 0 && b64[len - 1] == '\n')
        len--;
    if (sodium_base642bin(out, want, b64, len, NULL, &got, &end, sodium_base64_VARIANT_ORIGINAL) !=
            0 ||
        got != want || end != b64 + len)
        return EF_EPARSE;
    return 0;
}

int ef_verify_b64(const unsigned char pk[EF_PK_BYTES], const void *msg, size_t len,
                  const char *sig_b64)
{
    unsigned char sig[EF_SIG_BYTES];
    if (b64_fixed(sig_b64, sig, sizeof(sig)) != 0)
        return EF_EPARSE;
    return crypto_sign_verify_detached(sig, msg, len, pk) == 0 ? 0 : EF_EBADSIG;
}

void ef_pk_to_b64(const unsigned char pk[EF_PK_BYTES], char out[EF_PK_B64_SIZE])
{
    sodium_bin2base64(out, EF_PK_B64_SIZE, pk, EF_PK_BYTES, sodium_base64_VARIANT_ORIGINAL);
}

int ef_pk_from_b64(const char *b64, unsigned char pk[EF_PK_BYTES])
{
    return b64_fixed(b64, pk, EF_PK_BYTES);
}

char *ef_b64_encode(const void *data, size_t len)
{
    size_t n = sodium_base64_encoded_len(len, sodium_base64_VARIANT_ORIGINAL);
    char *out = malloc(n);
    if (out)
        sodium_bin2base64(out, n, data, len, sodium_base64_VARIANT_ORIGINAL);
    return out;
}

int ef_b64_decode(const char *b64, unsigned char **out, size_t *out_len)
{
    size_t len = strlen(b64), got = 0;
    const char *end = NULL;
    unsigned char *buf = malloc(len / 4 * 3 + 3);
    *out = NULL;
    if (!buf)
        return EF_ENOMEM;
    if (sodium_base642bin(buf, len / 4 * 3 + 3, b64, len, NULL, &got, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        end != b64 + len) {
        free(buf);
        return EF_EPARSE;
    }
    *out = buf;
    *out_len = got;
    return 0;
}

void ef_sha256_init(struct ef_sha256 *h)
{
    crypto_hash_sha256_init(&h->state);
}

void ef_sha256_update(struct ef_sha256 *h, const void *data, size_t len)
{
    crypto_hash_sha256_update(&h->state, data, len);
}

void ef_sha256_final_hex(struct ef_sha256 *h, char hex[EF_HEX256_SIZE])
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&h->state, digest);
    sodium_bin2hex(hex, EF_HEX256_SIZE, digest, sizeof(digest));
}

void ef_sha256_hex(const void *data, size_t len, char hex[EF_HEX256_SIZE])
{
    struct ef_sha256 h;
    ef_sha256_init(&h);
    ef_sha256_update(&h, data, len);
    ef_sha256_final_hex(&h, hex);
}

int ef_sha256_file_hex(const char *path, char hex[EF_HEX256_SIZE])
{
    unsigned char buf[65536];
    struct ef_sha256 h;
    size_t n;
    int rc = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return ef_from_errno(errno);
    ef_sha256_init(&h);
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        ef_sha256_update(&h, buf, n);
    if (ferror(f))
        rc = EF_EIO;
    else
        ef_sha256_final_hex(&h, hex);
    fclose(f);
    return rc;
}

bool ef_is_sha256_hex(const char *s)
{
    if (!s || strlen(s) != 64)
        return false;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

void ef_token_generate(const char *prefix, char out[EF_TOKEN_SIZE])
{
    unsigned char raw[32];
    char b64[EF_B64_SIZE(32)];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2base64(b64, sizeof(b64), raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    snprintf(out, EF_TOKEN_SIZE, "%s_%s", prefix, b64);
    sodium_memzero(raw, sizeof(raw));
    sodium_memzero(b64, sizeof(b64));
}

void ef_token_hash(const char *token, char hex[EF_HEX256_SIZE])
{
    unsigned char digest[32];
    crypto_generichash(digest, sizeof(digest), (const unsigned char *)token, strlen(token), NULL,
                       0);
    sodium_bin2hex(hex, EF_HEX256_SIZE, digest, sizeof(digest));
}

bool ef_secret_equal(const char *a, const char *b)
{
    size_t n = strlen(a);
    if (n != strlen(b))
        return false;
    return sodium_memcmp(a, b, n) == 0;
}
