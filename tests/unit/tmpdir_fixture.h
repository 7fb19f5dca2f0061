/*
 * tmpdir_fixture.h - a fresh temporary directory for a unit test, removed
 * with everything in it afterwards. Static inline functions only.
 *
 * nftw() needs _XOPEN_SOURCE, which the test defines before its first
 * include; the file is included after <cmocka.h> (tmpdir_path asserts).
 */
#ifndef EF_TESTS_TMPDIR_FIXTURE_H
#define EF_TESTS_TMPDIR_FIXTURE_H

#if !defined(_XOPEN_SOURCE) || _XOPEN_SOURCE < 500
#error "tmpdir_fixture.h uses nftw(): define _XOPEN_SOURCE 700 before the first include"
#endif

#include "common/fsutil.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#define TMPDIR_SIZE 64 /* bytes of a directory name from tmpdir_make */

/* Makes a new directory /tmp/ef_test_<name>_XXXXXX, name saying whose it
 * is, and writes its path into dir. 0, or -1 (errno set) with dir empty. */
static inline int tmpdir_make(char dir[TMPDIR_SIZE], const char *name)
{
    snprintf(dir, TMPDIR_SIZE, "/tmp/ef_test_%s_XXXXXX", name);
    if (mkdtemp(dir))
        return 0;
    dir[0] = '\0';
    return -1;
}

/* The nftw() callback of tmpdir_remove. */
static inline int tmpdir_remove_entry(const char *path, const struct stat *st, int flag,
                                      struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Removes dir and everything below it, without following links. 0 or -1. */
static inline int tmpdir_remove(const char *dir)
{
    return nftw(dir, tmpdir_remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* A test's state when all it needs is a directory. */
struct tmpdir {
    char dir[TMPDIR_SIZE]; /* made by tmpdir_setup, removed by tmpdir_teardown */
};

/* cmocka setup: *state becomes a new struct tmpdir. 0 or -1. */
static inline int tmpdir_setup(void **state)
{
    struct tmpdir *t = calloc(1, sizeof(*t));
    if (t && tmpdir_make(t->dir, "unit") != 0) {
        free(t);
        t = NULL;
    }
    *state = t;
    return t ? 0 : -1;
}

/* cmocka teardown of tmpdir_setup: removes the directory with its content. */
static inline int tmpdir_teardown(void **state)
{
    struct tmpdir *t = *state;
    int rc = tmpdir_remove(t->dir);
    free(t);
    return rc;
}

/* dir/name as a new string (the caller frees it); fails the test when out
 * of memory. */
static inline char *tmpdir_path(const char *dir, const char *name)
{
    char *p = ef_path_join(dir, name);
    assert_non_null(p);
    return p;
}

#endif
