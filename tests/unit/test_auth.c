/* test_auth.c - unit tests of server/auth.c: bearer tokens to principals. */
#define _XOPEN_SOURCE 700 /* nftw() in tmpdir_fixture.h */
#include "server/auth.h"
#include "server/db.h"
#include "server/db_fleet.h"
#include "common/crypto.h"
#include "common/ef_error.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "db_fixture.h"

/* Starts libsodium, for the tokens the tests make. */
static int group_setup(void **state)
{
    (void)state;
    return ef_crypto_init() == 0 ? 0 : -1;
}

/* Makes a token of the given prefix and returns its "Bearer ..." header. */
static void make_token(const char *prefix, char token[EF_TOKEN_SIZE], char hash[EF_HEX256_SIZE],
                       char *header, size_t size)
{
    ef_token_generate(prefix, token);
    ef_token_hash(token, hash);
    snprintf(header, size, "Bearer %s", token);
}

static void test_no_header_is_anonymous(void **state)
{
    struct db_fixture *f = *state;
    struct principal who;
    assert_int_equal(auth_authenticate(f->db, NULL, NULL, &who), 0);
    assert_int_equal(who.kind, PRINCIPAL_ANONYMOUS);
}

static void test_api_token_gives_its_role(void **state)
{
    struct db_fixture *f = *state;
    char token[EF_TOKEN_SIZE], hash[EF_HEX256_SIZE], header[96];
    struct principal who;
    int64_t id = 0;
    make_token(AUTH_PREFIX_API, token, hash, header, sizeof(header));
    assert_int_equal(db_api_token_create(f->db, "ops", "operator", hash, 1, &id), 0);
    assert_int_equal(auth_authenticate(f->db, NULL, header, &who), 0);
    assert_int_equal(who.kind, PRINCIPAL_API);
    assert_int_equal(who.role, ROLE_OPERATOR);
    assert_int_equal(who.token_id, id);
    assert_string_equal(who.name, "ops");
}

static void test_revoked_token_is_refused(void **state)
{
    struct db_fixture *f = *state;
    char token[EF_TOKEN_SIZE], hash[EF_HEX256_SIZE], header[96];
    struct principal who;
    int64_t admin = 0, id = 0;
    char admin_token[EF_TOKEN_SIZE], admin_hash[EF_HEX256_SIZE], admin_header[96];
    /* An admin stays, so revoking the viewer is allowed. */
    make_token(AUTH_PREFIX_API, admin_token, admin_hash, admin_header, sizeof(admin_header));
    assert_int_equal(db_api_token_create(f->db, "root", "admin", admin_hash, 1, &admin), 0);
    make_token(AUTH_PREFIX_API, token, hash, header, sizeof(header));
    assert_int_equal(db_api_token_create(f->db, "v", "viewer", hash, 1, &id), 0);
    assert_int_equal(db_api_token_revoke(f->db, id, 2, NULL), 0);
    assert_int_equal(auth_authenticate(f->db, NULL, header, &who), EF_EAUTH);
}

static void test_unknown_and_malformed_tokens_are_refused(void **state)
{
    struct db_fixture *f = *state;
    struct principal who;
    assert_int_equal(auth_authenticate(f->db, NULL, "Bearer efa_doesnotexist000", &who), EF_EAUTH);
    assert_int_equal(auth_authenticate(f->db, NULL, "Basic dXNlcjpwYXNz", &who), EF_EAUTH);
    assert_int_equal(auth_authenticate(f->db, NULL, "Bearer ", &who), EF_EAUTH);
    assert_int_equal(auth_authenticate(f->db, NULL, "Bearer xyz_0123456789abcdef", &who), EF_EAUTH);
    assert_int_equal(who.kind, PRINCIPAL_ANONYMOUS);
}

static void test_api_hash_under_device_prefix_is_refused(void **state)
{
    struct db_fixture *f = *state;
    char token[EF_TOKEN_SIZE], hash[EF_HEX256_SIZE], header[96];
    struct principal who;
    make_token(AUTH_PREFIX_API, token, hash, header, sizeof(header));
    assert_int_equal(db_api_token_create(f->db, "a", "admin", hash, 1, NULL), 0);
    /* The prefix picks the table: an API token dressed as a device token is unknown. */
    memcpy(header + 7, AUTH_PREFIX_DEVICE, 3);
    assert_int_equal(auth_authenticate(f->db, NULL, header, &who), EF_EAUTH);
}

static void test_device_token_names_its_device(void **state)
{
    struct db_fixture *f = *state;
    char token[EF_TOKEN_SIZE], hash[EF_HEX256_SIZE], header[96];
    struct principal who;
    make_token(AUTH_PREFIX_DEVICE, token, hash, header, sizeof(header));
    assert_int_equal(db_device_create(f->db, "cam-7", hash, "default", NULL, 1), 0);
    assert_int_equal(auth_authenticate(f->db, NULL, header, &who), 0);
    assert_int_equal(who.kind, PRINCIPAL_DEVICE);
    assert_string_equal(who.device_id, "cam-7");
}

static void test_expired_enroll_token_is_refused(void **state)
{
    struct db_fixture *f = *state;
    char token[EF_TOKEN_SIZE], hash[EF_HEX256_SIZE], header[96];
    struct principal who;
    make_token(AUTH_PREFIX_ENROLL, token, hash, header, sizeof(header));
    /* Expired at 1 ms after the epoch. */
    assert_int_equal(db_enroll_token_create(f->db, hash, NULL, 1, 1, 0, NULL), 0);
    assert_int_equal(auth_authenticate(f->db, NULL, header, &who), EF_EAUTH);
}

static void test_describe_names_the_caller(void **state)
{
    struct principal who = {.kind = PRINCIPAL_DEVICE};
    char buf[96];
    snprintf(who.device_id, sizeof(who.device_id), "cam-1");
    auth_describe(&who, buf, sizeof(buf));
    assert_string_equal(buf, "device:cam-1");
    who.kind = PRINCIPAL_ANONYMOUS;
    auth_describe(&who, buf, sizeof(buf));
    assert_string_equal(buf, "anonymous");
}

static void test_role_names_round_trip(void **state)
{
    enum role r;
    assert_int_equal(auth_role_parse("operator", &r), 0);
    assert_int_equal(r, ROLE_OPERATOR);
    assert_string_equal(auth_role_name(ROLE_ADMIN), "admin");
    assert_int_equal(auth_role_parse("root", &r), EF_EINVAL);
    assert_int_equal(auth_role_parse("none", &r), EF_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        DB_TEST(test_no_header_is_anonymous),
        DB_TEST(test_api_token_gives_its_role),
        DB_TEST(test_revoked_token_is_refused),
        DB_TEST(test_unknown_and_malformed_tokens_are_refused),
        DB_TEST(test_api_hash_under_device_prefix_is_refused),
        DB_TEST(test_device_token_names_its_device),
        DB_TEST(test_expired_enroll_token_is_refused),
        cmocka_unit_test(test_describe_names_the_caller),
        cmocka_unit_test(test_role_names_round_trip),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
