/* test_crypto.c - signatures, key files, hashes, tokens and secret comparison. */
#define _XOPEN_SOURCE 700 /* nftw() in tmpdir_fixture.h */
#include "common/crypto.h"
#include "common/ef_error.h"
#include "common/fsutil.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tmpdir_fixture.h"

/* Per-test state: a fresh temporary directory and a key pair. */
struct fixture {
    char dir[TMPDIR_SIZE];
    struct ef_keypair kp;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    if (tmpdir_make(f->dir, "crypto") != 0) {
        free(f);
        return -1;
    }
    ef_keypair_generate(&f->kp);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    int rc = tmpdir_remove(f->dir);
    free(f);
    return rc;
}

static void hex_to_bin(const char *hex, unsigned char *out, size_t n)
{
    size_t got = 0;
    assert_int_equal(sodium_hex2bin(out, n, hex, strlen(hex), NULL, &got, NULL), 0);
    assert_int_equal(got, n);
}

/* Decodes a base64 signature, flips one bit of byte i, re-encodes it. */
static char *flip_sig_byte(const char *sig_b64, size_t i)
{
    unsigned char *raw = NULL;
    size_t len = 0;
    assert_int_equal(ef_b64_decode(sig_b64, &raw, &len), 0);
    assert_int_equal(len, EF_SIG_BYTES);
    raw[i] ^= 0x01;
    char *out = ef_b64_encode(raw, len);
    assert_non_null(out);
    free(raw);
    return out;
}

static void sign_then_verify_round_trips(void **state)
{
    struct fixture *f = *state;
    const char msg[] = "{\"seq\":7}";
    char sig[EF_SIG_B64_SIZE];
    ef_sign_b64(f->kp.sk, msg, strlen(msg), sig);
    assert_int_equal(strlen(sig), 88);
    assert_int_equal(ef_verify_b64(f->kp.pk, msg, strlen(msg), sig), 0);
}

/* RFC 8032 section 7.1, tests 1 and 2: our base64 wrapping of libsodium
 * produces the standard Ed25519 signature. */
static void signature_matches_rfc8032_vectors(void **state)
{
    (void)state;
    static const struct {
        const char *seed, *pk, *msg, *sig;
    } v[] = {
        {"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
         "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
         "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
         "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"},
        {"4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
         "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
         "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
         "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        unsigned char seed[32], pk[EF_PK_BYTES], msg[1], sig[EF_SIG_BYTES];
        struct ef_keypair kp;
        size_t msg_len = strlen(v[i].msg) / 2;
        char sig_b64[EF_SIG_B64_SIZE];
        hex_to_bin(v[i].seed, seed, sizeof(seed));
        hex_to_bin(v[i].pk, pk, sizeof(pk));
        if (msg_len)
            hex_to_bin(v[i].msg, msg, msg_len);
        hex_to_bin(v[i].sig, sig, sizeof(sig));
        crypto_sign_seed_keypair(kp.pk, kp.sk, seed);
        assert_memory_equal(kp.pk, pk, sizeof(pk));
        ef_sign_b64(kp.sk, msg, msg_len, sig_b64);
        char *want = ef_b64_encode(sig, sizeof(sig));
        assert_string_equal(sig_b64, want);
        assert_int_equal(ef_verify_b64(pk, msg, msg_len, want), 0);
        free(want);
    }
}

static void flipped_message_byte_is_a_bad_signature(void **state)
{
    struct fixture *f = *state;
    char msg[] = "model=classifier version=3";
    char sig[EF_SIG_B64_SIZE];
    ef_sign_b64(f->kp.sk, msg, strlen(msg), sig);
    for (size_t i = 0; i < strlen(msg); i++) {
        msg[i] ^= 0x20;
        assert_int_equal(ef_verify_b64(f->kp.pk, msg, strlen(msg), sig), EF_EBADSIG);
        msg[i] ^= 0x20;
    }
    assert_int_equal(ef_verify_b64(f->kp.pk, msg, strlen(msg) - 1, sig), EF_EBADSIG);
}

static void flipped_signature_byte_is_a_bad_signature(void **state)
{
    struct fixture *f = *state;
    const char msg[] = "payload";
    char sig[EF_SIG_B64_SIZE];
    ef_sign_b64(f->kp.sk, msg, strlen(msg), sig);
    const size_t positions[] = {0, 31, 32, 63};
    for (size_t k = 0; k < sizeof(positions) / sizeof(positions[0]); k++) {
        char *bad = flip_sig_byte(sig, positions[k]);
        assert_int_equal(ef_verify_b64(f->kp.pk, msg, strlen(msg), bad), EF_EBADSIG);
        free(bad);
    }
}

static void other_key_is_a_bad_signature(void **state)
{
    struct fixture *f = *state;
    struct ef_keypair other;
    const char msg[] = "payload";
    char sig[EF_SIG_B64_SIZE];
    ef_keypair_generate(&other);
    ef_sign_b64(other.sk, msg, strlen(msg), sig);
    assert_int_equal(ef_verify_b64(f->kp.pk, msg, strlen(msg), sig), EF_EBADSIG);
}

static void garbage_signature_is_a_parse_error(void **state)
{
    struct fixture *f = *state;
    const char msg[] = "payload";
    char sig[EF_SIG_B64_SIZE];
    ef_sign_b64(f->kp.sk, msg, strlen(msg), sig);
    unsigned char short_raw[EF_SIG_BYTES - 1] = {0};
    char *short_sig = ef_b64_encode(short_raw, sizeof(short_raw));
    char url_safe[EF_SIG_B64_SIZE + 1];
    snprintf(url_safe, sizeof(url_safe), "%s", sig);
    url_safe[0] = '-';
    char extra[EF_SIG_B64_SIZE + 8];
    snprintf(extra, sizeof(extra), "%sAAAA", sig);
    const char *bad[] = {"", "!!!!", "not base64 at all", short_sig, url_safe, extra};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (ef_verify_b64(f->kp.pk, msg, strlen(msg), bad[i]) != EF_EPARSE)
            fail_msg("signature \"%s\" was not a parse error", bad[i]);
    assert_int_equal(ef_verify_b64(f->kp.pk, msg, strlen(msg), NULL), EF_EPARSE);
    free(short_sig);
}

static void signature_with_one_trailing_newline_verifies(void **state)
{
    struct fixture *f = *state;
    const char msg[] = "payload";
    char sig[EF_SIG_B64_SIZE], line[EF_SIG_B64_SIZE + 1];
    ef_sign_b64(f->kp.sk, msg, strlen(msg), sig);
    snprintf(line, sizeof(line), "%s\n", sig);
    assert_int_equal(ef_verify_b64(f->kp.pk, msg, strlen(msg), line), 0);
}

static void public_key_base64_round_trips(void **state)
{
    struct fixture *f = *state;
    char b64[EF_PK_B64_SIZE];
    unsigned char pk[EF_PK_BYTES];
    ef_pk_to_b64(f->kp.pk, b64);
    assert_int_equal(strlen(b64), 44);
    assert_int_equal(ef_pk_from_b64(b64, pk), 0);
    assert_memory_equal(pk, f->kp.pk, EF_PK_BYTES);
}

static void public_key_of_wrong_length_is_a_parse_error(void **state)
{
    (void)state;
    unsigned char pk[EF_PK_BYTES];
    unsigned char raw[EF_PK_BYTES + 1] = {0};
    char *long_key = ef_b64_encode(raw, sizeof(raw));
    char *short_key = ef_b64_encode(raw, sizeof(raw) - 2);
    assert_int_equal(ef_pk_from_b64(long_key, pk), EF_EPARSE);
    assert_int_equal(ef_pk_from_b64(short_key, pk), EF_EPARSE);
    assert_int_equal(ef_pk_from_b64("%%%", pk), EF_EPARSE);
    free(long_key);
    free(short_key);
}

static void base64_round_trips_and_rejects_garbage(void **state)
{
    (void)state;
    char *b64 = ef_b64_encode("hello", 5);
    unsigned char *raw = NULL;
    size_t len = 0;
    assert_string_equal(b64, "aGVsbG8=");
    assert_int_equal(ef_b64_decode(b64, &raw, &len), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(raw, "hello", 5);
    free(raw);
    free(b64);
    assert_int_equal(ef_b64_decode("", &raw, &len), 0);
    assert_int_equal(len, 0);
    free(raw);
    static const char *const bad[] = {"aGVsbG8", "aGVs bG8=", "aGVsbG8=\n", "aGV-bG8=", "****"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        raw = (unsigned char *)1;
        if (ef_b64_decode(bad[i], &raw, &len) != EF_EPARSE)
            fail_msg("decoded \"%s\"", bad[i]);
        assert_null(raw);
    }
}

static void saved_key_has_mode_0600(void **state)
{
    struct fixture *f = *state;
    char *path = tmpdir_path(f->dir, "server.key");
    struct stat st;
    assert_int_equal(ef_keypair_save(&f->kp, path), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    free(path);
}

static void save_refuses_to_overwrite_a_key(void **state)
{
    struct fixture *f = *state;
    char *path = tmpdir_path(f->dir, "server.key");
    char *before = NULL, *after = NULL;
    size_t before_len = 0, after_len = 0;
    struct ef_keypair other;
    ef_keypair_generate(&other);
    assert_int_equal(ef_keypair_save(&f->kp, path), 0);
    assert_int_equal(ef_read_file(path, 4096, &before, &before_len), 0);
    assert_int_equal(ef_keypair_save(&other, path), EF_EEXIST);
    assert_int_equal(ef_read_file(path, 4096, &after, &after_len), 0);
    assert_int_equal(before_len, after_len);
    assert_memory_equal(before, after, before_len);
    free(before);
    free(after);
    free(path);
}

static void load_round_trips_a_saved_key(void **state)
{
    struct fixture *f = *state;
    char *path = tmpdir_path(f->dir, "release.key");
    struct ef_keypair loaded;
    memset(&loaded, 0, sizeof(loaded));
    assert_int_equal(ef_keypair_save(&f->kp, path), 0);
    assert_int_equal(ef_keypair_load(&loaded, path), 0);
    assert_memory_equal(loaded.sk, f->kp.sk, EF_SK_BYTES);
    assert_memory_equal(loaded.pk, f->kp.pk, EF_PK_BYTES);
    /* And the loaded key signs what the original public key accepts. */
    char sig[EF_SIG_B64_SIZE];
    ef_sign_b64(loaded.sk, "x", 1, sig);
    assert_int_equal(ef_verify_b64(f->kp.pk, "x", 1, sig), 0);
    free(path);
}

static void load_refuses_a_key_readable_by_others(void **state)
{
    struct fixture *f = *state;
    char *path = tmpdir_path(f->dir, "release.key");
    struct ef_keypair loaded;
    assert_int_equal(ef_keypair_save(&f->kp, path), 0);
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(ef_keypair_load(&loaded, path), EF_EPERM);
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(ef_keypair_load(&loaded, path), EF_EPERM);
    assert_int_equal(chmod(path, 0400), 0);
    assert_int_equal(ef_keypair_load(&loaded, path), 0);
    free(path);
}

static void load_of_missing_key_is_not_found(void **state)
{
    struct fixture *f = *state;
    char *path = tmpdir_path(f->dir, "absent.key");
    struct ef_keypair loaded;
    assert_int_equal(ef_keypair_load(&loaded, path), EF_ENOENT);
    free(path);
}

static void load_of_malformed_key_is_a_parse_error(void **state)
{
    struct fixture *f = *state;
    char *path = tmpdir_path(f->dir, "bad.key");
    struct ef_keypair loaded;
    /* Right mode, wrong content: not base64, then base64 of too few bytes. */
    assert_int_equal(ef_atomic_write(path, "not a key\n", 10, 0600), 0);
    assert_int_equal(ef_keypair_load(&loaded, path), EF_EPARSE);
    char *short_key = ef_b64_encode(f->kp.sk, 32);
    assert_int_equal(ef_atomic_write(path, short_key, strlen(short_key), 0600), 0);
    assert_int_equal(ef_keypair_load(&loaded, path), EF_EPARSE);
    assert_int_equal(ef_atomic_write(path, "", 0, 0600), 0);
    assert_int_equal(ef_keypair_load(&loaded, path), EF_EPARSE);
    free(short_key);
    free(path);
}

static void wipe_zeroes_the_secret_half(void **state)
{
    struct fixture *f = *state;
    unsigned char zero[EF_SK_BYTES] = {0};
    unsigned char pk[EF_PK_BYTES];
    memcpy(pk, f->kp.pk, sizeof(pk));
    ef_keypair_wipe(&f->kp);
    assert_memory_equal(f->kp.sk, zero, EF_SK_BYTES);
    assert_memory_equal(f->kp.pk, pk, EF_PK_BYTES);
}

static void sha256_matches_known_vectors(void **state)
{
    (void)state;
    char hex[EF_HEX256_SIZE];
    ef_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    ef_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void streaming_sha256_equals_one_shot(void **state)
{
    (void)state;
    size_t n = 200003;
    unsigned char *data = malloc(n);
    assert_non_null(data);
    for (size_t i = 0; i < n; i++)
        data[i] = (unsigned char)(i * 31 + 7);
    char whole[EF_HEX256_SIZE], streamed[EF_HEX256_SIZE];
    ef_sha256_hex(data, n, whole);
    struct ef_sha256 h;
    ef_sha256_init(&h);
    /* Irregular chunk sizes cross the 64-byte block boundary every way. */
    for (size_t off = 0, chunk = 1; off < n; off += chunk, chunk = chunk * 3 % 1000 + 1)
        ef_sha256_update(&h, data + off, off + chunk > n ? n - off : chunk);
    ef_sha256_final_hex(&h, streamed);
    assert_string_equal(streamed, whole);
    free(data);
}

static void file_sha256_equals_buffer_sha256(void **state)
{
    struct fixture *f = *state;
    char *path = tmpdir_path(f->dir, "artifact.bin");
    char hex[EF_HEX256_SIZE];
    assert_int_equal(ef_atomic_write(path, "abc", 3, 0644), 0);
    assert_int_equal(ef_sha256_file_hex(path, hex), 0);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    size_t n = 150000;
    char *big = malloc(n), want[EF_HEX256_SIZE];
    assert_non_null(big);
    memset(big, 'q', n);
    ef_sha256_hex(big, n, want);
    assert_int_equal(ef_atomic_write(path, big, n, 0644), 0);
    assert_int_equal(ef_sha256_file_hex(path, hex), 0);
    assert_string_equal(hex, want);
    free(big);
    free(path);
}

static void file_sha256_of_missing_file_is_not_found(void **state)
{
    struct fixture *f = *state;
    char *path = tmpdir_path(f->dir, "nothing.bin");
    char hex[EF_HEX256_SIZE];
    assert_int_equal(ef_sha256_file_hex(path, hex), EF_ENOENT);
    free(path);
}

static void sha256_hex_check_wants_64_lowercase_digits(void **state)
{
    (void)state;
    assert_true(
        ef_is_sha256_hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    assert_false(
        ef_is_sha256_hex("BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"));
    assert_false(
        ef_is_sha256_hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a"));
    assert_false(
        ef_is_sha256_hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad0"));
    assert_false(
        ef_is_sha256_hex("ga7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    assert_false(ef_is_sha256_hex(""));
    assert_false(ef_is_sha256_hex(NULL));
}

static void token_is_prefix_and_43_base64url_characters(void **state)
{
    (void)state;
    char tok[EF_TOKEN_SIZE];
    ef_token_generate("efa", tok);
    assert_int_equal(strlen(tok), 4 + 43);
    assert_true(strncmp(tok, "efa_", 4) == 0);
    for (const char *p = tok + 4; *p; p++)
        assert_non_null(
            strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *p));
}

static void tokens_differ(void **state)
{
    (void)state;
    char a[EF_TOKEN_SIZE], b[EF_TOKEN_SIZE];
    ef_token_generate("efd", a);
    ef_token_generate("efd", b);
    assert_string_not_equal(a, b);
}

static void token_hash_is_blake2b_256_hex(void **state)
{
    (void)state;
    char hex[EF_HEX256_SIZE];
    ef_token_hash("abc", hex);
    assert_string_equal(hex, "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
}

static void token_hashes_are_stable_and_distinct(void **state)
{
    (void)state;
    char a[EF_TOKEN_SIZE], b[EF_TOKEN_SIZE];
    char ha[EF_HEX256_SIZE], ha2[EF_HEX256_SIZE], hb[EF_HEX256_SIZE];
    ef_token_generate("efa", a);
    ef_token_generate("efa", b);
    ef_token_hash(a, ha);
    ef_token_hash(a, ha2);
    ef_token_hash(b, hb);
    assert_true(ef_is_sha256_hex(ha));
    assert_string_equal(ha, ha2);
    assert_string_not_equal(ha, hb);
    assert_null(strstr(ha, a + 4));
}

static void secret_equal_compares_whole_strings(void **state)
{
    (void)state;
    assert_true(ef_secret_equal("efa_abcdef", "efa_abcdef"));
    assert_true(ef_secret_equal("", ""));
    assert_false(ef_secret_equal("efa_abcdef", "efa_abcdeg"));
    assert_false(ef_secret_equal("efa_abcdef", "Efa_abcdef"));
    assert_false(ef_secret_equal("efa_abcdef", "efa_abcde"));
    assert_false(ef_secret_equal("efa_abcde", "efa_abcdef"));
    assert_false(ef_secret_equal("", "x"));
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    if (ef_crypto_init() != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        T(sign_then_verify_round_trips),
        T(signature_matches_rfc8032_vectors),
        T(flipped_message_byte_is_a_bad_signature),
        T(flipped_signature_byte_is_a_bad_signature),
        T(other_key_is_a_bad_signature),
        T(garbage_signature_is_a_parse_error),
        T(signature_with_one_trailing_newline_verifies),
        T(public_key_base64_round_trips),
        T(public_key_of_wrong_length_is_a_parse_error),
        T(base64_round_trips_and_rejects_garbage),
        T(saved_key_has_mode_0600),
        T(save_refuses_to_overwrite_a_key),
        T(load_round_trips_a_saved_key),
        T(load_refuses_a_key_readable_by_others),
        T(load_of_missing_key_is_not_found),
        T(load_of_malformed_key_is_a_parse_error),
        T(wipe_zeroes_the_secret_half),
        T(sha256_matches_known_vectors),
        T(streaming_sha256_equals_one_shot),
        T(file_sha256_equals_buffer_sha256),
        T(file_sha256_of_missing_file_is_not_found),
        T(sha256_hex_check_wants_64_lowercase_digits),
        T(token_is_prefix_and_43_base64url_characters),
        T(tokens_differ),
        T(token_hash_is_blake2b_256_hex),
        T(token_hashes_are_stable_and_distinct),
        T(secret_equal_compares_whole_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
