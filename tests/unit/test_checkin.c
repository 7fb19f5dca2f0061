/* test_checkin.c - unit tests of server/checkin.c, the device check-in cache. */
#define _XOPEN_SOURCE 700 /* nftw() in tmpdir_fixture.h */
#include "server/checkin.h"
#include "server/db.h"
#include "server/db_fleet.h"
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

static const char hash_a[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
static const char hash_b[] = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

static void test_open_loads_active_devices(void **state)
{
    struct db_fixture *f = *state;
    struct checkin *c = NULL;
    char id[EF_DEVICE_ID_MAX + 1];
    int64_t seq = -1;
    assert_int_equal(db_device_create(f->db, "cam-1", hash_a, "default", NULL, 1), 0);
    assert_int_equal(db_device_create(f->db, "cam-2", hash_b, "default", NULL, 1), 0);
    assert_int_equal(db_device_decommission(f->db, "cam-2", 2), 0);
    assert_int_equal(checkin_open(f->db, &c), 0);
    assert_int_equal(checkin_device(c, hash_a, id), 0);
    assert_string_equal(id, "cam-1");
    assert_int_equal(checkin_seq(c, "cam-1", &seq), 0);
    assert_int_equal(seq, 0); /* enrolled, nothing assigned */
    assert_int_equal(checkin_device(c, hash_b, id), EF_ENOENT);
    checkin_close(c);
}

static void test_seq_only_moves_forward(void **state)
{
    struct db_fixture *f = *state;
    struct checkin *c = NULL;
    int64_t seq = 0;
    assert_int_equal(checkin_open(f->db, &c), 0);
    assert_int_equal(checkin_put(c, hash_a, "cam-1", 0), 0);
    checkin_set_seq(c, "cam-1", 5);
    checkin_set_seq(c, "cam-1", 3); /* a late writer must not move it back */
    assert_int_equal(checkin_seq(c, "cam-1", &seq), 0);
    assert_int_equal(seq, 5);
    checkin_set_seq(c, "unknown", 9); /* ignored */
    assert_int_equal(checkin_seq(c, "unknown", &seq), EF_ENOENT);
    checkin_close(c);
}

static void test_remove_stops_the_token_at_once(void **state)
{
    struct db_fixture *f = *state;
    struct checkin *c = NULL;
    char id[EF_DEVICE_ID_MAX + 1];
    assert_int_equal(checkin_open(f->db, &c), 0);
    assert_int_equal(checkin_put(c, hash_a, "cam-1", 2), 0);
    checkin_remove(c, "cam-1");
    assert_int_equal(checkin_device(c, hash_a, id), EF_ENOENT);
    checkin_close(c);
}

static void test_reenrolment_replaces_the_old_token(void **state)
{
    struct db_fixture *f = *state;
    struct checkin *c = NULL;
    char id[EF_DEVICE_ID_MAX + 1];
    int64_t seq = -1;
    assert_int_equal(checkin_open(f->db, &c), 0);
    assert_int_equal(checkin_put(c, hash_a, "cam-1", 7), 0);
    assert_int_equal(checkin_put(c, hash_b, "cam-1", 0), 0);
    assert_int_equal(checkin_device(c, hash_a, id), EF_ENOENT);
    assert_int_equal(checkin_device(c, hash_b, id), 0);
    assert_string_equal(id, "cam-1");
    assert_int_equal(checkin_seq(c, "cam-1", &seq), 0);
    assert_int_equal(seq, 0);
    checkin_close(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        DB_TEST(test_open_loads_active_devices),
        DB_TEST(test_seq_only_moves_forward),
        DB_TEST(test_remove_stops_the_token_at_once),
        DB_TEST(test_reenrolment_replaces_the_old_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
