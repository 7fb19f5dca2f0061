/* test_agent_state.c - DATA_DIR/state.json: round trip, atomic save, strict parse, corrupt file. */
#define _XOPEN_SOURCE 700 /* nftw() in tmpdir_fixture.h */
#include "agent/state.h"
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

#define SHA_A "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define SHA_B "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* Per-test state: a fresh temporary directory and the state file's path in it. */
struct fixture {
    char dir[TMPDIR_SIZE];
    char path[TMPDIR_SIZE + 16]; /* dir/state.json */
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    int rc = f ? tmpdir_make(f->dir, "agent_state") : -1;
    if (rc == 0) {
        snprintf(f->path, sizeof(f->path), "%s/state.json", f->dir);
    } else {
        free(f);
        f = NULL;
    }
    *state = f;
    return rc;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    int rc = tmpdir_remove(f->dir);
    free(f);
    return rc;
}

/* Names of the entries in dir other than . and .., joined by spaces, sorted
 * by readdir order (one or two entries in these tests). */
static int entries_in(const char *dir, char *names, size_t size)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    assert_non_null(d);
    names[0] = '\0';
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        size_t used = strlen(names);
        snprintf(names + used, size - used, "%s%s", n ? " " : "", e->d_name);
        n++;
    }
    closedir(d);
    return n;
}

static void write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, strlen(text), fp), strlen(text));
    assert_int_equal(fclose(fp), 0);
}

/* A state with every kind of field filled in. */
static void sample(struct agent_state *st)
{
    state_init(st);
    st->last_seq = 9;
    struct state_slot *p = &st->slots[EF_SLOT_PRODUCTION];
    p->phase = STATE_DOWNLOADING;
    p->seq = 9;
    state_set_reason(p, "resumed after a restart");
    p->target = ef_slot_new("classifier", 4, "/api/v1/models/classifier/versions/4/manifest",
                            "/api/v1/models/classifier/versions/4/manifest.sig",
                            "/api/v1/models/classifier/versions/4/artifact", SHA_A, 1234, "r-42");
    p->committed = ef_slot_new("classifier", 3, "/m3", "/s3", "/a3", SHA_B, 99, NULL);
    assert_non_null(p->target);
    assert_non_null(p->committed);
}

static void assert_slot_equal(const struct ef_slot *a, const struct ef_slot *b)
{
    if (!a || !b) {
        assert_ptr_equal(a, b);
        return;
    }
    assert_string_equal(a->model, b->model);
    assert_int_equal(a->version, b->version);
    assert_string_equal(a->manifest_url, b->manifest_url);
    assert_string_equal(a->signature_url, b->signature_url);
    assert_string_equal(a->artifact_url, b->artifact_url);
    assert_string_equal(a->sha256, b->sha256);
    assert_int_equal(a->size, b->size);
    if (!a->rollout_id || !b->rollout_id)
        assert_ptr_equal(a->rollout_id, b->rollout_id);
    else
        assert_string_equal(a->rollout_id, b->rollout_id);
}

static void test_round_trip(void **state)
{
    struct fixture *f = *state;
    struct agent_state st, back;
    sample(&st);
    state_init(&back);
    assert_int_equal(state_save(f->path, &st), 0);
    assert_int_equal(state_load(f->path, &back), 0);
    assert_int_equal(back.last_seq, 9);
    for (int k = 0; k < EF_SLOT_COUNT; k++) {
        assert_int_equal(back.slots[k].phase, st.slots[k].phase);
        assert_int_equal(back.slots[k].seq, st.slots[k].seq);
        assert_string_equal(back.slots[k].reason, st.slots[k].reason);
        assert_slot_equal(back.slots[k].target, st.slots[k].target);
        assert_slot_equal(back.slots[k].committed, st.slots[k].committed);
    }
    assert_int_equal(back.slots[EF_SLOT_SHADOW].phase, STATE_NONE);
    struct stat sb;
    assert_int_equal(stat(f->path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    state_clear(&st);
    state_clear(&back);
}

static void test_copy_is_deep(void **state)
{
    (void)state;
    struct agent_state st, copy;
    sample(&st);
    assert_int_equal(state_copy(&copy, &st), 0);
    assert_ptr_not_equal(copy.slots[0].target, st.slots[0].target);
    assert_slot_equal(copy.slots[0].target, st.slots[0].target);
    assert_true(state_slot_same(copy.slots[0].committed, st.slots[0].committed));
    assert_false(state_slot_same(copy.slots[0].committed, st.slots[0].target));
    assert_false(state_slot_same(NULL, st.slots[0].target));
    state_clear(&st);
    assert_string_equal(copy.slots[0].target->model, "classifier");
    state_clear(&copy);
}

/* The save goes through a temporary file renamed over the target: nothing
 * else is left in the directory, and a second save replaces the first. */
static void test_atomic_save_leaves_no_temp(void **state)
{
    struct fixture *f = *state;
    struct agent_state st, back;
    char names[256];
    sample(&st);
    state_init(&back);
    assert_int_equal(state_save(f->path, &st), 0);
    st.last_seq = 10;
    assert_int_equal(state_save(f->path, &st), 0);
    assert_int_equal(entries_in(f->dir, names, sizeof(names)), 1);
    assert_string_equal(names, "state.json");
    assert_int_equal(state_load(f->path, &back), 0);
    assert_int_equal(back.last_seq, 10);
    state_clear(&st);
    state_clear(&back);
}

static void test_missing_file_is_fresh(void **state)
{
    struct fixture *f = *state;
    struct agent_state st;
    state_init(&st);
    assert_int_equal(state_load(f->path, &st), 0);
    assert_int_equal(st.last_seq, 0);
    for (int k = 0; k < EF_SLOT_COUNT; k++) {
        assert_int_equal(st.slots[k].phase, STATE_NONE);
        assert_null(st.slots[k].target);
        assert_null(st.slots[k].committed);
    }
}

/* Loads text as the state file: expects it refused as corrupt, moved aside
 * with its bytes intact, and a fresh state. */
static void expect_corrupt(const struct fixture *f, const char *text)
{
    struct agent_state st;
    char names[256], *aside = NULL, *kept = NULL;
    size_t len = 0;
    state_init(&st);
    write_text(f->path, text);
    assert_int_equal(state_load(f->path, &st), EF_EPARSE);
    assert_int_equal(st.last_seq, 0);
    for (int k = 0; k < EF_SLOT_COUNT; k++) {
        assert_null(st.slots[k].target);
        assert_null(st.slots[k].committed);
    }
    assert_int_equal(entries_in(f->dir, names, sizeof(names)), 1);
    assert_string_equal(names, "state.json.corrupt");
    aside = ef_path_join(f->dir, "state.json.corrupt");
    assert_int_equal(ef_read_file(aside, 1 << 20, &kept, &len), 0);
    assert_string_equal(kept, text);
    assert_int_equal(unlink(aside), 0);
    free(aside);
    free(kept);
}

static void test_corrupt_files_are_set_aside(void **state)
{
    struct fixture *f = *state;
    static const char *const cases[] = {
        "",
        "not json",
        "{\"format\":1,\"last_seq\":3,\"slots\":{}", /* truncated */
        "[1,2]",
        "{\"format\":2,\"last_seq\":3,\"slots\":{}}",
        "{\"format\":1,\"last_seq\":-1,\"slots\":{}}",
        "{\"format\":1,\"last_seq\":3,\"slots\":{},\"extra\":true}",
        "{\"format\":1,\"last_seq\":3,\"last_seq\":4,\"slots\":{}}",
        "{\"format\":1,\"last_seq\":3,\"slots\":{\"canary\":{}}}",
        /* a phase with no target */
        "{\"format\":1,\"last_seq\":3,\"slots\":{\"production\":{\"phase\":\"downloading\","
        "\"reason\":null,\"seq\":3,\"target\":null,\"committed\":null}}}",
        /* an unknown phase */
        "{\"format\":1,\"last_seq\":3,\"slots\":{\"production\":{\"phase\":\"dancing\","
        "\"reason\":null,\"seq\":3,\"target\":null,\"committed\":null}}}",
        /* a target with a bad hash */
        "{\"format\":1,\"last_seq\":3,\"slots\":{\"production\":{\"phase\":\"notified\","
        "\"reason\":null,\"seq\":3,\"committed\":null,\"target\":{\"model\":\"m\",\"version\":1,"
        "\"manifest_url\":\"/m\",\"signature_url\":\"/s\",\"artifact_url\":\"/a\","
        "\"sha256\":\"XYZ\",\"size\":1,\"rollout_id\":null}}}}",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_corrupt(f, cases[i]);
}

/* A corrupt file replaces an older .corrupt rather than failing. */
static void test_second_corrupt_file_replaces_first(void **state)
{
    struct fixture *f = *state;
    char *aside = ef_path_join(f->dir, "state.json.corrupt");
    write_text(aside, "older");
    expect_corrupt(f, "newer garbage");
    free(aside);
}

static void test_phase_names(void **state)
{
    (void)state;
    enum state_phase p;
    for (int i = 0; i < STATE_PHASE_COUNT; i++) {
        assert_int_equal(state_phase_parse(state_phase_name((enum state_phase)i), &p), 0);
        assert_int_equal(p, i);
    }
    assert_string_equal(state_phase_name(STATE_SELF_TEST), "self-test");
    assert_string_equal(state_phase_name(STATE_ROLLED_BACK), "rolled_back");
    assert_int_equal(state_phase_parse("self_test", &p), EF_EINVAL);
    assert_true(state_phase_in_progress(STATE_NOTIFIED));
    assert_true(state_phase_in_progress(STATE_ACTIVE));
    assert_false(state_phase_in_progress(STATE_COMMITTED));
    assert_false(state_phase_in_progress(STATE_FAILED));
    assert_false(state_phase_in_progress(STATE_NONE));
}

/* Reasons quote the outside world: they are kept printable and bounded, so
 * the file always serializes. */
static void test_reason_is_sanitized(void **state)
{
    struct fixture *f = *state;
    struct agent_state st, back;
    char long_reason[600];
    sample(&st);
    state_init(&back);
    state_set_reason(&st.slots[0], "bad \xff\xfe byte\nand newline");
    assert_string_equal(st.slots[0].reason, "bad ?? byte?and newline");
    memset(long_reason, 'x', sizeof(long_reason) - 1);
    long_reason[sizeof(long_reason) - 1] = '\0';
    state_set_reason(&st.slots[0], long_reason);
    assert_int_equal(strlen(st.slots[0].reason), STATE_REASON_SIZE - 1);
    assert_int_equal(state_save(f->path, &st), 0);
    assert_int_equal(state_load(f->path, &back), 0);
    assert_string_equal(back.slots[0].reason, st.slots[0].reason);
    state_set_reason(&st.slots[0], NULL);
    assert_string_equal(st.slots[0].reason, "");
    state_clear(&st);
    state_clear(&back);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy_is_deep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_atomic_save_leaves_no_temp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file_is_fresh, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_files_are_set_aside, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_corrupt_file_replaces_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_phase_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reason_is_sanitized, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
