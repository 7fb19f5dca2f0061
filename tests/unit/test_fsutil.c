/* test_fsutil.c - atomic writes, bounded reads and directory creation. */
#define _XOPEN_SOURCE 700 /* nftw() in tmpdir_fixture.h */
#include "common/ef_error.h"
#include "common/fsutil.h"

#include <dirent.h>
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

/* Number of entries in dir other than . and .. */
static int entries_in(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static void read_back(const char *path, const char *want)
{
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(ef_read_file(path, 1 << 20, &text, &len), 0);
    assert_int_equal(len, strlen(want));
    assert_string_equal(text, want);
    free(text);
}

static void atomic_write_creates_a_file_with_the_mode(void **state)
{
    struct tmpdir *f = *state;
    char *path = tmpdir_path(f->dir, "state.json");
    struct stat st;
    assert_int_equal(ef_atomic_write(path, "{\"a\":1}", 7, 0640), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    read_back(path, "{\"a\":1}");
    free(path);
}

static void atomic_write_replaces_content_and_mode(void **state)
{
    struct tmpdir *f = *state;
    char *path = tmpdir_path(f->dir, "state.json");
    struct stat st;
    assert_int_equal(ef_atomic_write(path, "a much longer first version", 27, 0644), 0);
    assert_int_equal(ef_atomic_write(path, "v2", 2, 0600), 0);
    read_back(path, "v2");
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    free(path);
}

static void atomic_write_leaves_no_temporary_file(void **state)
{
    struct tmpdir *f = *state;
    char *path = tmpdir_path(f->dir, "only");
    for (int i = 0; i < 3; i++)
        assert_int_equal(ef_atomic_write(path, "x", 1, 0600), 0);
    assert_int_equal(entries_in(f->dir), 1);
    free(path);
}

static void atomic_write_of_empty_content_makes_an_empty_file(void **state)
{
    struct tmpdir *f = *state;
    char *path = tmpdir_path(f->dir, "empty");
    struct stat st;
    assert_int_equal(ef_atomic_write(path, "", 0, 0600), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 0);
    free(path);
}

static void atomic_write_into_missing_directory_fails_cleanly(void **state)
{
    struct tmpdir *f = *state;
    char *path = tmpdir_path(f->dir, "no/such/dir/file");
    assert_int_equal(ef_atomic_write(path, "x", 1, 0600), EF_ENOENT);
    assert_int_equal(entries_in(f->dir), 0);
    free(path);
}

static void read_file_returns_bytes_length_and_a_nul(void **state)
{
    struct tmpdir *f = *state;
    char *path = tmpdir_path(f->dir, "bin");
    const char data[] = {'a', '\0', 'b', '\n'};
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(ef_atomic_write(path, data, sizeof(data), 0600), 0);
    assert_int_equal(ef_read_file(path, 100, &text, &len), 0);
    assert_int_equal(len, sizeof(data));
    assert_memory_equal(text, data, sizeof(data));
    assert_int_equal(text[len], '\0');
    free(text);
    free(path);
}

static void read_file_over_the_bound_is_too_big(void **state)
{
    struct tmpdir *f = *state;
    char *path = tmpdir_path(f->dir, "hundred");
    char data[100];
    char *text = (char *)1;
    size_t len = 0;
    memset(data, 'z', sizeof(data));
    assert_int_equal(ef_atomic_write(path, data, sizeof(data), 0600), 0);
    assert_int_equal(ef_read_file(path, 99, &text, &len), EF_ETOOBIG);
    assert_null(text);
    assert_int_equal(ef_read_file(path, 100, &text, &len), 0);
    assert_int_equal(len, 100);
    free(text);
    free(path);
}

static void read_file_of_missing_file_is_not_found(void **state)
{
    struct tmpdir *f = *state;
    char *path = tmpdir_path(f->dir, "absent");
    char *text = (char *)1;
    assert_int_equal(ef_read_file(path, 100, &text, NULL), EF_ENOENT);
    assert_null(text);
    free(path);
}

static void mkdir_p_creates_nested_directories_with_the_mode(void **state)
{
    struct tmpdir *f = *state;
    char *path = tmpdir_path(f->dir, "a/b/c");
    char *mid = tmpdir_path(f->dir, "a/b");
    struct stat st;
    assert_int_equal(ef_mkdir_p(path, 0750), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(stat(mid, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    /* mkdir() applies the umask, so only bits the umask cannot add are checked. */
    assert_int_equal(st.st_mode & 027, 0);
    free(mid);
    free(path);
}

static void mkdir_p_accepts_existing_directories_and_trailing_slashes(void **state)
{
    struct tmpdir *f = *state;
    char *path = tmpdir_path(f->dir, "x/y/");
    assert_int_equal(ef_mkdir_p(path, 0700), 0);
    assert_int_equal(ef_mkdir_p(path, 0700), 0);
    assert_int_equal(ef_mkdir_p(f->dir, 0700), 0);
    assert_int_equal(ef_mkdir_p("/", 0700), 0);
    free(path);
}

static void mkdir_p_fails_when_a_file_is_in_the_way(void **state)
{
    struct tmpdir *f = *state;
    char *file = tmpdir_path(f->dir, "plain");
    char *below = tmpdir_path(f->dir, "plain/sub");
    assert_int_equal(ef_atomic_write(file, "x", 1, 0600), 0);
    assert_int_not_equal(ef_mkdir_p(file, 0700), 0);
    assert_int_not_equal(ef_mkdir_p(below, 0700), 0);
    free(below);
    free(file);
}

static void mkdir_p_of_empty_path_is_invalid(void **state)
{
    (void)state;
    /* A heap copy of exactly one byte lets ASan see a read past its end. */
    char *empty = calloc(1, 1);
    assert_non_null(empty);
    assert_int_equal(ef_mkdir_p(empty, 0700), EF_EINVAL);
    free(empty);
}

static void fsync_dir_accepts_a_directory_and_reports_a_missing_one(void **state)
{
    struct tmpdir *f = *state;
    char *missing = tmpdir_path(f->dir, "missing");
    assert_int_equal(ef_fsync_dir(f->dir), 0);
    assert_int_equal(ef_fsync_dir(missing), EF_ENOENT);
    free(missing);
}

static void path_join_puts_one_slash_between(void **state)
{
    (void)state;
    char *p = ef_path_join("/var/lib/edgefleet", "models");
    assert_string_equal(p, "/var/lib/edgefleet/models");
    free(p);
}

#define T(name) cmocka_unit_test_setup_teardown(name, tmpdir_setup, tmpdir_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(atomic_write_creates_a_file_with_the_mode),
        T(atomic_write_replaces_content_and_mode),
        T(atomic_write_leaves_no_temporary_file),
        T(atomic_write_of_empty_content_makes_an_empty_file),
        T(atomic_write_into_missing_directory_fails_cleanly),
        T(read_file_returns_bytes_length_and_a_nul),
        T(read_file_over_the_bound_is_too_big),
        T(read_file_of_missing_file_is_not_found),
        T(mkdir_p_creates_nested_directories_with_the_mode),
        T(mkdir_p_accepts_existing_directories_and_trailing_slashes),
        T(mkdir_p_fails_when_a_file_is_in_the_way),
        T(mkdir_p_of_empty_path_is_invalid),
        T(fsync_dir_accepts_a_directory_and_reports_a_missing_one),
        T(path_join_puts_one_slash_between),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
