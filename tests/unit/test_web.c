/* test_web.c - the dashboard's static files (server/web.c): the path check,
 * resolution under a root with symbolic links in and out of it, content
 * types, opening the roots, and which URLs are the dashboard's. */
#define _XOPEN_SOURCE 700 /* nftw(), in tmpdir_fixture.h */
#include "server/http.h"
#include "server/web.h"
#include "common/ef_error.h"
#include "common/fsutil.h"

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tmpdir_fixture.h"

/* ---- web_path_check ------------------------------------------------------ */

static void test_plain_paths_pass(void **state)
{
    const char *good[] = {"index.html", "assets/app.js", "uPlot.esm.js", "a/b/c-d_e.f.css",
                          "x",          "v1.2.3",        "a..b"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_int_equal(web_path_check(good[i]), 0);
}

static void test_traversal_and_odd_names_are_refused(void **state)
{
    /* clang-format off */
    const char *bad[] = {
        "",                  /* empty */
        "..",                /* parent */
        ".",                 /* self */
        "../etc/passwd",     /* parent, first */
        "assets/../../x",    /* parent, later */
        "assets/..",         /* parent, last */
        "assets/./app.js",   /* self, inside */
        ".htaccess",         /* hidden file */
        "assets/.git",       /* hidden, inside */
        "/etc/passwd",       /* absolute */
        "//etc/passwd",      /* absolute, doubled */
        "assets//app.js",    /* empty segment */
        "assets/",           /* trailing slash */
        "%2e%2e/x",          /* still encoded */
        "%2e%2e",            /* still encoded, alone */
        "assets%2f..%2fx",   /* encoded slash */
        "..\\x",             /* backslash */
        "a\\b",              /* backslash */
        "a b",               /* space */
        "a\tb",              /* control */
        "a\nb",              /* newline */
        "caf\xc3\xa9.js",    /* non-ASCII */
        "a:b",               /* colon */
        "~root",             /* tilde */
    };
    /* clang-format on */
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (web_path_check(bad[i]) != EF_EINVAL)
            fail_msg("web_path_check accepted \"%s\"", bad[i]);
    }
    assert_int_equal(web_path_check(NULL), EF_EINVAL);
}

static void test_length_is_bounded(void **state)
{
    char long_name[WEB_MAX_REL + 2];
    memset(long_name, 'a', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    assert_int_equal(web_path_check(long_name), EF_EINVAL);
    long_name[WEB_MAX_REL] = '\0';
    assert_int_equal(web_path_check(long_name), 0);
}

/* ---- web_resolve ------------------------------------------------------------ */

/* A web root with index.html, assets/app.js and links in and out of it,
 * next to a secret file outside it:
 *   T/secret.txt
 *   T/web/index.html, T/web/assets/app.js
 *   T/web/assets/inside.js -> ../index.html       (stays inside)
 *   T/web/assets/outside.js -> ../../secret.txt   (leads out)
 *   T/web/assets/abs.js -> T/secret.txt           (absolute, out)
 *   T/web/escape -> T                              (a directory out)
 *   T/web/assets/dangling.js -> nowhere
 *   T/web/sub/ (a directory)
 *   T/webby/x.js (a sibling whose name starts with the root's) */
struct fixture {
    struct tmpdir *tmp;
    char root[PATH_MAX]; /* T/web, resolved */
};

static void write_text(const char *dir, const char *name, const char *text)
{
    char *path = tmpdir_path(dir, name);
    assert_int_equal(ef_atomic_write(path, text, strlen(text), 0644), 0);
    free(path);
}

static void make_dir(const char *dir, const char *name)
{
    char *path = tmpdir_path(dir, name);
    assert_int_equal(mkdir(path, 0755), 0);
    free(path);
}

static void make_link(const char *dir, const char *name, const char *target)
{
    char *path = tmpdir_path(dir, name);
    assert_int_equal(symlink(target, path), 0);
    free(path);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char abs_target[PATH_MAX];
    assert_non_null(f);
    assert_int_equal(tmpdir_setup((void **)&f->tmp), 0);
    const char *t = f->tmp->dir;
    write_text(t, "secret.txt", "secret");
    make_dir(t, "web");
    make_dir(t, "web/assets");
    make_dir(t, "web/sub");
    make_dir(t, "webby");
    write_text(t, "webby/x.js", "sibling");
    write_text(t, "web/index.html", "<!doctype html>");
    write_text(t, "web/assets/app.js", "export {};");
    make_link(t, "web/assets/inside.js", "../index.html");
    make_link(t, "web/assets/outside.js", "../../secret.txt");
    snprintf(abs_target, sizeof(abs_target), "%s/secret.txt", t);
    make_link(t, "web/assets/abs.js", abs_target);
    make_link(t, "web/escape", t);
    make_link(t, "web/assets/dangling.js", "nowhere.js");
    char *web = tmpdir_path(t, "web");
    assert_non_null(realpath(web, f->root));
    free(web);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    void *tmp = f->tmp;
    int rc = tmpdir_teardown(&tmp);
    free(f);
    return rc;
}

static void test_files_inside_resolve(void **state)
{
    struct fixture *f = *state;
    char out[PATH_MAX], want[PATH_MAX + 32];
    assert_int_equal(web_resolve(f->root, "index.html", out, sizeof(out)), 0);
    snprintf(want, sizeof(want), "%s/index.html", f->root);
    assert_string_equal(out, want);
    assert_int_equal(web_resolve(f->root, "assets/app.js", out, sizeof(out)), 0);
    /* a link that stays inside is followed to its target */
    assert_int_equal(web_resolve(f->root, "assets/inside.js", out, sizeof(out)), 0);
    assert_string_equal(out, want);
}

static void test_links_out_of_the_root_are_refused(void **state)
{
    struct fixture *f = *state;
    char out[PATH_MAX] = "";
    assert_int_equal(web_resolve(f->root, "assets/outside.js", out, sizeof(out)), EF_EPERM);
    assert_int_equal(web_resolve(f->root, "assets/abs.js", out, sizeof(out)), EF_EPERM);
    assert_int_equal(web_resolve(f->root, "escape/secret.txt", out, sizeof(out)), EF_EPERM);
    assert_int_equal(web_resolve(f->root, "escape/webby/x.js", out, sizeof(out)), EF_EPERM);
    assert_string_equal(out, "");
}

static void test_traversal_never_reaches_the_file_system(void **state)
{
    struct fixture *f = *state;
    char out[PATH_MAX] = "";
    /* These name real files (T/secret.txt, T/webby/x.js) by a path that a
     * plain join would reach. */
    assert_int_equal(web_resolve(f->root, "../secret.txt", out, sizeof(out)), EF_EINVAL);
    assert_int_equal(web_resolve(f->root, "assets/../../secret.txt", out, sizeof(out)), EF_EINVAL);
    assert_int_equal(web_resolve(f->root, "../webby/x.js", out, sizeof(out)), EF_EINVAL);
    assert_int_equal(web_resolve(f->root, "/etc/passwd", out, sizeof(out)), EF_EINVAL);
    assert_int_equal(web_resolve(f->root, "%2e%2e/secret.txt", out, sizeof(out)), EF_EINVAL);
    assert_string_equal(out, "");
}

static void test_missing_and_non_files_are_not_found(void **state)
{
    struct fixture *f = *state;
    char out[PATH_MAX];
    assert_int_equal(web_resolve(f->root, "nope.js", out, sizeof(out)), EF_ENOENT);
    assert_int_equal(web_resolve(f->root, "assets/dangling.js", out, sizeof(out)), EF_ENOENT);
    assert_int_equal(web_resolve(f->root, "sub", out, sizeof(out)), EF_ENOENT);
    assert_int_equal(web_resolve(f->root, "assets", out, sizeof(out)), EF_ENOENT);
    assert_int_equal(web_resolve(f->root, "index.html/x", out, sizeof(out)), EF_ENOENT);
}

static void test_small_output_buffer(void **state)
{
    struct fixture *f = *state;
    char out[8];
    assert_int_equal(web_resolve(f->root, "index.html", out, sizeof(out)), EF_ETOOBIG);
}

/* ---- web_open ---------------------------------------------------------------- */

static void test_open_needs_index_html(void **state)
{
    struct fixture *f = *state;
    struct web *w = NULL;
    char *assets = tmpdir_path(f->root, "assets");
    char *missing = tmpdir_path(f->tmp->dir, "missing");
    assert_int_equal(web_open(assets, NULL, &w), EF_ENOENT);
    assert_null(w);
    assert_int_equal(web_open(missing, NULL, &w), EF_ENOENT);
    assert_null(w);
    /* a root with index.html opens, kept resolved; no uPlot is not fatal */
    assert_int_equal(web_open(f->root, missing, &w), 0);
    assert_non_null(w);
    assert_string_equal(web_root(w), f->root);
    web_close(w);
    web_close(NULL);
    free(assets);
    free(missing);
}

/* ---- content types and routes ---------------------------------------------------- */

static void test_content_types(void **state)
{
    assert_string_equal(web_content_type("index.html"), "text/html; charset=utf-8");
    assert_string_equal(web_content_type("assets/app.js"), "text/javascript; charset=utf-8");
    assert_string_equal(web_content_type("uPlot.esm.js"), "text/javascript; charset=utf-8");
    assert_string_equal(web_content_type("uPlot.min.css"), "text/css; charset=utf-8");
    assert_string_equal(web_content_type("icon.svg"), "image/svg+xml");
    assert_string_equal(web_content_type("X.PNG"), "image/png");
    /* not served: no type, or a type the dashboard has no use for */
    assert_null(web_content_type("Makefile"));
    assert_null(web_content_type("uPlot.d.ts"));
    assert_null(web_content_type("dir.js/README"));
    assert_null(web_content_type("archive.tar.gz"));
}

static void test_dashboard_urls_are_claimed(void **state)
{
    const char *claimed[] = {"/", "/assets/app.js", "/assets/pages/fleet.js",
                             "/vendor/uplot/uPlot.esm.js",
                             /* claimed, then refused by the path check: 404 */
                             "/assets/../../etc/passwd", "/assets/", "/vendor/uplot/../x"};
    const char *not_claimed[] = {"/index.html",  "/assets",        "/vendor/uplot",
                                 "/vendor/x.js", "/api/v1/models", "/healthz",
                                 "//",           "/favicon.ico"};
    for (size_t i = 0; i < sizeof(claimed) / sizeof(claimed[0]); i++)
        if (!web_claims(claimed[i]))
            fail_msg("web_claims refused %s", claimed[i]);
    for (size_t i = 0; i < sizeof(not_claimed) / sizeof(not_claimed[0]); i++)
        if (web_claims(not_claimed[i]))
            fail_msg("web_claims took %s", not_claimed[i]);
}

static void test_api_routes_never_overlap_the_dashboard(void **state)
{
    /* http.c asks web_claims only when no route matched; no API route may
     * live in the dashboard's URL space, or its files would be unreachable. */
    for (const struct route *r = routes; r->method; r++)
        if (web_claims(r->pattern))
            fail_msg("route %s %s lies in the dashboard's URL space", r->method, r->pattern);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_paths_pass),
        cmocka_unit_test(test_traversal_and_odd_names_are_refused),
        cmocka_unit_test(test_length_is_bounded),
        cmocka_unit_test_setup_teardown(test_files_inside_resolve, setup, teardown),
        cmocka_unit_test_setup_teardown(test_links_out_of_the_root_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_traversal_never_reaches_the_file_system, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_missing_and_non_files_are_not_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_small_output_buffer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_needs_index_html, setup, teardown),
        cmocka_unit_test(test_content_types),
        cmocka_unit_test(test_dashboard_urls_are_claimed),
        cmocka_unit_test(test_api_routes_never_overlap_the_dashboard),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
