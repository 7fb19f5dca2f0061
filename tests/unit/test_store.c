/* test_store.c - the content-addressed artifact store: paths, adoption of
 * completed uploads, duplicates and refusals. */
#define _XOPEN_SOURCE 700 /* nftw(), to clean up the temporary directory */
#include "server/store.h"
#include "common/crypto.h"
#include "common/ef_error.h"
#include "common/fsutil.h"

#include <ftw.h>
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

struct fixture {
    char root[64];       /* mkdtemp directory */
    char store_dir[128]; /* root/data/store: created by store_open */
    struct store *store;
};

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->root, sizeof(f->root), "/tmp/ef_test_store.XXXXXX");
    assert_non_null(mkdtemp(f->root));
    snprintf(f->store_dir, sizeof(f->store_dir), "%s/data/store", f->root);
    assert_int_equal(store_open(f->store_dir, &f->store), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    store_close(f->store);
    nftw(f->root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* Writes content to root/name (an upload's temporary file) and its hash. */
static void make_tmp(const struct fixture *f, const char *name, const char *content, char *path,
                     size_t size, char sha256[EF_HEX256_SIZE])
{
    snprintf(path, size, "%s/%s", f->root, name);
    assert_int_equal(ef_atomic_write(path, content, strlen(content), 0600), 0);
    ef_sha256_hex(content, strlen(content), sha256);
}

static void open_creates_the_directory(void **state)
{
    struct fixture *f = *state;
    struct stat st;
    assert_int_equal(stat(f->store_dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
}

static void path_is_fanned_out_by_the_first_two_digits(void **state)
{
    struct fixture *f = *state;
    char sha[EF_HEX256_SIZE], buf[256], want[256];
    ef_sha256_hex("x", 1, sha);
    assert_int_equal(store_path(f->store, sha, buf, sizeof(buf)), 0);
    snprintf(want, sizeof(want), "%s/%.2s/%s", f->store_dir, sha, sha);
    assert_string_equal(buf, want);
}

static void path_refuses_malformed_hashes_and_small_buffers(void **state)
{
    struct fixture *f = *state;
    char sha[EF_HEX256_SIZE], buf[256];
    ef_sha256_hex("x", 1, sha);
    assert_int_equal(store_path(f->store, "../../etc/passwd", buf, sizeof(buf)), EF_EINVAL);
    assert_int_equal(store_path(f->store, NULL, buf, sizeof(buf)), EF_EINVAL);
    char upper[EF_HEX256_SIZE];
    memcpy(upper, sha, sizeof(upper));
    upper[0] = 'A';
    upper[1] = 'B';
    assert_int_equal(store_path(f->store, upper, buf, sizeof(buf)), EF_EINVAL);
    assert_int_equal(store_path(f->store, sha, buf, 10), EF_ETOOBIG);
    assert_false(store_has(f->store, "nothex"));
}

static void adopt_moves_the_upload_into_place(void **state)
{
    struct fixture *f = *state;
    char tmp[256], sha[EF_HEX256_SIZE], obj[256];
    char *content = NULL;
    size_t len = 0;
    struct stat st;
    make_tmp(f, "upload.1", "FANN_FLO_2.1\nweights\n", tmp, sizeof(tmp), sha);
    assert_false(store_has(f->store, sha));
    assert_int_equal(store_adopt(f->store, tmp, sha), 0);
    assert_true(store_has(f->store, sha));
    assert_int_not_equal(access(tmp, F_OK), 0); /* the temporary name is gone */
    assert_int_equal(store_path(f->store, sha, obj, sizeof(obj)), 0);
    assert_int_equal(ef_read_file(obj, 1024, &content, &len), 0);
    assert_string_equal(content, "FANN_FLO_2.1\nweights\n");
    assert_int_equal(stat(obj, &st), 0);
    assert_int_equal(st.st_mode & 0222, 0); /* objects are read-only */
    free(content);
}

static void adopting_an_existing_object_only_drops_the_upload(void **state)
{
    struct fixture *f = *state;
    char tmp1[256], tmp2[256], sha1[EF_HEX256_SIZE], sha2[EF_HEX256_SIZE], obj[256];
    struct stat before, after;
    make_tmp(f, "upload.1", "same bytes", tmp1, sizeof(tmp1), sha1);
    make_tmp(f, "upload.2", "same bytes", tmp2, sizeof(tmp2), sha2);
    assert_string_equal(sha1, sha2);
    assert_int_equal(store_adopt(f->store, tmp1, sha1), 0);
    assert_int_equal(store_path(f->store, sha1, obj, sizeof(obj)), 0);
    assert_int_equal(stat(obj, &before), 0);
    assert_int_equal(store_adopt(f->store, tmp2, sha2), 0);
    assert_int_not_equal(access(tmp2, F_OK), 0);
    assert_int_equal(stat(obj, &after), 0);
    assert_int_equal(before.st_ino, after.st_ino); /* the first object stays */
}

static void many_objects_fill_their_fanout_directories(void **state)
{
    struct fixture *f = *state;
    char tmp[256], sha[EF_HEX256_SIZE];
    /* Different contents land in their own files, whatever their prefixes. */
    for (int i = 0; i < 40; i++) {
        char name[32], content[32];
        snprintf(name, sizeof(name), "upload.%d", i);
        snprintf(content, sizeof(content), "content %d", i);
        make_tmp(f, name, content, tmp, sizeof(tmp), sha);
        assert_int_equal(store_adopt(f->store, tmp, sha), 0);
        assert_true(store_has(f->store, sha));
    }
}

static void adopt_of_a_missing_upload_fails_and_stores_nothing(void **state)
{
    struct fixture *f = *state;
    char tmp[256], sha[EF_HEX256_SIZE];
    snprintf(tmp, sizeof(tmp), "%s/never-written", f->root);
    ef_sha256_hex("ghost", 5, sha);
    assert_int_equal(store_adopt(f->store, tmp, sha), EF_ENOENT);
    assert_false(store_has(f->store, sha));
}

static void adopt_refuses_a_malformed_hash_and_keeps_the_upload(void **state)
{
    struct fixture *f = *state;
    char tmp[256], sha[EF_HEX256_SIZE];
    make_tmp(f, "upload.1", "bytes", tmp, sizeof(tmp), sha);
    assert_int_equal(store_adopt(f->store, tmp, "abc"), EF_EINVAL);
    assert_int_equal(access(tmp, F_OK), 0);
    assert_false(store_has(f->store, sha));
}

static void open_fails_where_a_directory_cannot_be(void **state)
{
    struct fixture *f = *state;
    char file[256], below[300];
    struct store *s = NULL;
    snprintf(file, sizeof(file), "%s/plain-file", f->root);
    assert_int_equal(ef_atomic_write(file, "x", 1, 0600), 0);
    snprintf(below, sizeof(below), "%s/store", file);
    assert_int_not_equal(store_open(below, &s), 0);
    assert_null(s);
    store_close(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(open_creates_the_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(path_is_fanned_out_by_the_first_two_digits, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(path_refuses_malformed_hashes_and_small_buffers, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(adopt_moves_the_upload_into_place, setup, teardown),
        cmocka_unit_test_setup_teardown(adopting_an_existing_object_only_drops_the_upload, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(many_objects_fill_their_fanout_directories, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(adopt_of_a_missing_upload_fails_and_stores_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(adopt_refuses_a_malformed_hash_and_keeps_the_upload, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(open_fails_where_a_directory_cannot_be, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
