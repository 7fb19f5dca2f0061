/*
 * test_agent_deploy.c - the deployment state machine without network or
 * models: assignment verification and refusals, replay protection, what is
 * persisted and reported, restart recovery from each kind of state file,
 * inbox package refusals, and the trial judge's edge cases.
 *
 * The download -> self-test -> swap -> commit path, rollbacks and kills in
 * each state need a server, a broker and a backend: the integration tests
 * cover them. Here the agent has no HTTP client (downloads wait and retry)
 * and no backends (every manifest is refused for its backend).
 */
#define _XOPEN_SOURCE 700 /* nftw() in tmpdir_fixture.h */
#include "agent/agent.h"
#include "agent/deploy.h"
#include "agent/state.h"
#include "agent/trial.h"
#include "common/assignment.h"
#include "common/crypto.h"
#include "common/ef_error.h"
#include "common/fsutil.h"
#include "common/json_util.h"

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

#define SHA_A       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define SHA_B       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define MAX_REPORTS 32

struct report_seen {
    char slot[16];
    char model[65];
    int64_t version;
    char state[16];
    char reason[256];
};

/* Per-test state: an agent of our own making around a temporary data
 * directory, the keys it pins, and the reports it made. */
struct fixture {
    struct agent a;
    struct ef_keypair server;  /* signs assignments */
    struct ef_keypair release; /* signs manifests */
    struct ef_keypair other;   /* signs what must be refused */
    char dir[TMPDIR_SIZE];
    struct deploy *d;
    struct report_seen reports[MAX_REPORTS];
    int n_reports;
};

/* The agent's reporter, standing in for agent/uplink.c's (which publishes on
 * MQTT): it records each report in the fixture that holds the agent. */
void agent_report(struct agent *a, const char *slot, const char *model, int64_t version,
                  const char *state, const char *reason)
{
    struct fixture *f = (struct fixture *)((char *)a - offsetof(struct fixture, a));
    assert_true(f->n_reports < MAX_REPORTS);
    struct report_seen *r = &f->reports[f->n_reports++];
    assert_true(version >= 1);
    snprintf(r->slot, sizeof(r->slot), "%s", slot);
    snprintf(r->model, sizeof(r->model), "%s", model);
    r->version = version;
    snprintf(r->state, sizeof(r->state), "%s", state);
    snprintf(r->reason, sizeof(r->reason), "%s", reason ? reason : "");
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f || ef_crypto_init() != 0 || uv_loop_init(&f->a.loop) != 0) {
        free(f);
        return -1;
    }
    if (tmpdir_make(f->dir, "agent_deploy") != 0) {
        free(f);
        return -1;
    }
    ef_keypair_generate(&f->server);
    ef_keypair_generate(&f->release);
    ef_keypair_generate(&f->other);
    struct agent_config *cfg = &f->a.cfg;
    snprintf(cfg->server_url, sizeof(cfg->server_url), "http://127.0.0.1:9/");
    snprintf(cfg->data_dir, sizeof(cfg->data_dir), "%s", f->dir);
    snprintf(cfg->device_id, sizeof(cfg->device_id), "dev-01");
    snprintf(cfg->device_class, sizeof(cfg->device_class), "pi4");
    cfg->trial_s = 30;
    cfg->trial_min_requests = 20;
    cfg->trial_max_error_rate = 0.05;
    cfg->trial_max_p99_ms = 250;
    cfg->trial_max_p99_ratio = 10;
    memcpy(f->a.id.server_pk, f->server.pk, EF_PK_BYTES);
    memcpy(f->a.id.release_pk, f->release.pk, EF_PK_BYTES);
    *state = f;
    return 0;
}

/* Closes the deploy and runs the loop until everything it had is freed. */
static void close_deploy(struct fixture *f)
{
    deploy_close(f->d);
    f->d = NULL;
    assert_int_equal(uv_run(&f->a.loop, UV_RUN_DEFAULT), 0);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    close_deploy(f);
    int rc = uv_loop_close(&f->a.loop);
    if (tmpdir_remove(f->dir) != 0)
        rc = -1;
    free(f);
    return rc;
}

static void open_deploy(struct fixture *f)
{
    f->n_reports = 0;
    assert_int_equal(deploy_open(&f->a, &f->d), 0);
}

/* A signed envelope for device_id at seq, with a production slot naming
 * model@version (when model is not NULL) and a shadow one (when shadow is
 * not NULL). The caller frees. */
static char *envelope(const struct ef_keypair *signer, const char *device_id, int64_t seq,
                      const char *model, int64_t version, const char *shadow)
{
    struct ef_assignment as = {.seq = seq, .issued_at_ms = INT64_C(1795341600123)};
    char murl[128], surl[128], aurl[128];
    snprintf(as.device_id, sizeof(as.device_id), "%s", device_id);
    if (model) {
        snprintf(murl, sizeof(murl), "/api/v1/models/%s/versions/%lld/manifest", model,
                 (long long)version);
        snprintf(surl, sizeof(surl), "/api/v1/models/%s/versions/%lld/manifest.sig", model,
                 (long long)version);
        snprintf(aurl, sizeof(aurl), "/api/v1/models/%s/versions/%lld/artifact", model,
                 (long long)version);
        as.slots[EF_SLOT_PRODUCTION] =
            ef_slot_new(model, version, murl, surl, aurl, SHA_A, 1234, "r-1");
        assert_non_null(as.slots[EF_SLOT_PRODUCTION]);
    }
    if (shadow) {
        as.slots[EF_SLOT_SHADOW] =
            ef_slot_new(shadow, 1, "/m-shadow", "/s-shadow", "/a-shadow", SHA_B, 77, NULL);
        assert_non_null(as.slots[EF_SLOT_SHADOW]);
    }
    char *env = ef_assignment_sign(&as, signer->sk);
    assert_non_null(env);
    for (int k = 0; k < EF_SLOT_COUNT; k++)
        ef_slot_free(as.slots[k]);
    return env;
}

static int desired(struct fixture *f, const struct ef_keypair *signer, const char *device_id,
                   int64_t seq, const char *model, int64_t version, const char *shadow)
{
    char *env = envelope(signer, device_id, seq, model, version, shadow);
    int rc = deploy_on_desired(f->d, env, strlen(env));
    free(env);
    return rc;
}

/* The index of the first report after from with this slot and state, or -1. */
static int find_report(const struct fixture *f, int from, const char *slot, const char *state)
{
    for (int i = from; i < f->n_reports; i++)
        if (strcmp(f->reports[i].slot, slot) == 0 && strcmp(f->reports[i].state, state) == 0)
            return i;
    return -1;
}

/* A new JSON object: the slot's part of deploy_describe. */
static json_t *describe_slot(struct fixture *f, const char *slot)
{
    json_t *all = deploy_describe(f->d);
    assert_non_null(all);
    json_t *s = json_incref(json_object_get(json_object_get(all, "slots"), slot));
    assert_non_null(s);
    json_decref(all);
    return s;
}

static void assert_slot_state(struct fixture *f, const char *slot, const char *state)
{
    json_t *s = describe_slot(f, slot);
    assert_string_equal(ef_json_str(s, "state"), state);
    json_decref(s);
}

/* The persisted state, as state_load reads it. */
static void load_state(const struct fixture *f, struct agent_state *st)
{
    char *path = ef_path_join(f->dir, "state.json");
    state_init(st);
    assert_int_equal(state_load(path, st), 0);
    free(path);
}

static void save_state(const struct fixture *f, const struct agent_state *st)
{
    char *path = ef_path_join(f->dir, "state.json");
    assert_int_equal(state_save(path, st), 0);
    free(path);
}

static bool exists(const struct fixture *f, const char *name)
{
    struct stat sb;
    char *path = ef_path_join(f->dir, name);
    bool ok = stat(path, &sb) == 0;
    free(path);
    return ok;
}

/* ---- assignments ------------------------------------------------------ */

static void test_fresh_device(void **state)
{
    struct fixture *f = *state;
    open_deploy(f);
    assert_int_equal(deploy_last_seq(f->d), 0);
    assert_null(deploy_serving(f->d, EF_SLOT_PRODUCTION));
    assert_null(deploy_serving(f->d, EF_SLOT_SHADOW));
    assert_slot_state(f, "production", "none");
    assert_int_equal(f->n_reports, 0);
    assert_true(exists(f, "models"));
    assert_true(exists(f, "downloads"));
}

static void test_bad_signature_is_refused_silently(void **state)
{
    struct fixture *f = *state;
    open_deploy(f);
    assert_int_equal(desired(f, &f->other, "dev-01", 5, "classifier", 3, NULL), EF_EBADSIG);
    assert_int_equal(deploy_last_seq(f->d), 0);
    assert_int_equal(f->n_reports, 0);
    assert_false(exists(f, "state.json"));
    assert_int_equal(deploy_on_desired(f->d, "{\"payload\":1}", 13), EF_EPARSE);
    assert_int_equal(deploy_on_desired(f->d, "", 0), EF_EPARSE);
    assert_int_equal(f->n_reports, 0);
}

static void test_other_device_is_refused(void **state)
{
    struct fixture *f = *state;
    open_deploy(f);
    assert_int_equal(desired(f, &f->server, "dev-02", 5, "classifier", 3, NULL), EF_EMISMATCH);
    assert_int_equal(deploy_last_seq(f->d), 0);
    assert_slot_state(f, "production", "none");
    assert_int_equal(f->n_reports, 0); /* nothing wanted yet: nothing to name */
}

/* Accepting persists the seq and the new deployment together, then reports. */
static void test_accepted_assignment_starts_a_deployment(void **state)
{
    struct fixture *f = *state;
    struct agent_state st;
    open_deploy(f);
    assert_int_equal(desired(f, &f->server, "dev-01", 5, "classifier", 3, NULL), 0);
    assert_int_equal(deploy_last_seq(f->d), 5);
    int notified = find_report(f, 0, "production", "notified");
    assert_true(notified >= 0);
    assert_string_equal(f->reports[notified].model, "classifier");
    assert_int_equal(f->reports[notified].version, 3);
    assert_true(find_report(f, notified, "production", "downloading") > notified);
    assert_slot_state(f, "production", "downloading");
    load_state(f, &st);
    assert_int_equal(st.last_seq, 5);
    assert_int_equal(st.slots[EF_SLOT_PRODUCTION].phase, STATE_DOWNLOADING);
    assert_int_equal(st.slots[EF_SLOT_PRODUCTION].seq, 5);
    assert_string_equal(st.slots[EF_SLOT_PRODUCTION].target->model, "classifier");
    assert_string_equal(st.slots[EF_SLOT_PRODUCTION].target->artifact_url,
                        "/api/v1/models/classifier/versions/3/artifact");
    assert_null(st.slots[EF_SLOT_PRODUCTION].committed);
    assert_int_equal(st.slots[EF_SLOT_SHADOW].phase, STATE_NONE);
    state_clear(&st);
    /* Nothing serves until a version has been verified, self-tested and tried. */
    assert_null(deploy_serving(f->d, EF_SLOT_PRODUCTION));
}

static void test_same_seq_is_already_current(void **state)
{
    struct fixture *f = *state;
    open_deploy(f);
    assert_int_equal(desired(f, &f->server, "dev-01", 5, "classifier", 3, NULL), 0);
    int before = f->n_reports;
    /* The retained message again, or the same document by GET /desired. */
    assert_int_equal(desired(f, &f->server, "dev-01", 5, "classifier", 3, NULL), 0);
    assert_int_equal(f->n_reports, before);
    assert_int_equal(deploy_last_seq(f->d), 5);
}

static void test_replayed_seq_is_refused_and_reported(void **state)
{
    struct fixture *f = *state;
    struct agent_state st;
    open_deploy(f);
    assert_int_equal(desired(f, &f->server, "dev-01", 5, "classifier", 3, NULL), 0);
    int before = f->n_reports;
    assert_int_equal(desired(f, &f->server, "dev-01", 4, "classifier", 2, NULL), EF_ESTALE);
    assert_int_equal(deploy_last_seq(f->d), 5);
    assert_int_equal(f->n_reports, before + 1);
    const struct report_seen *r = &f->reports[before];
    assert_string_equal(r->slot, "production");
    assert_string_equal(r->model, "classifier");
    assert_int_equal(r->version, 2);
    assert_string_equal(r->state, "failed");
    assert_string_equal(r->reason, "replayed assignment seq 4 <= 5");
    /* The deployment of seq 5 goes on untouched. */
    assert_slot_state(f, "production", "downloading");
    load_state(f, &st);
    assert_int_equal(st.last_seq, 5);
    assert_int_equal(st.slots[EF_SLOT_PRODUCTION].target->version, 3);
    state_clear(&st);
}

/* A newer assignment for another version replaces the one under way, which
 * is reported cancelled. */
static void test_newer_assignment_supersedes(void **state)
{
    struct fixture *f = *state;
    open_deploy(f);
    assert_int_equal(desired(f, &f->server, "dev-01", 5, "classifier", 3, NULL), 0);
    int before = f->n_reports;
    assert_int_equal(desired(f, &f->server, "dev-01", 6, "classifier", 4, NULL), 0);
    int cancelled = find_report(f, before, "production", "cancelled");
    assert_true(cancelled >= 0);
    assert_int_equal(f->reports[cancelled].version, 3);
    assert_string_equal(f->reports[cancelled].reason, "superseded by assignment seq 6");
    int notified = find_report(f, before, "production", "notified");
    assert_true(notified > cancelled);
    assert_int_equal(f->reports[notified].version, 4);
    json_t *s = describe_slot(f, "production");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(s, "target"), "version")),
                     4);
    json_decref(s);
    /* The same version under a newer seq (a shadow change) is confirmed, not restarted. */
    before = f->n_reports;
    assert_int_equal(desired(f, &f->server, "dev-01", 7, "classifier", 4, NULL), 0);
    assert_int_equal(find_report(f, before, "production", "notified"), -1);
    assert_int_equal(find_report(f, before, "production", "cancelled"), -1);
    assert_true(find_report(f, before, "production", "downloading") >= 0);
}

/* Production absent: kept. Shadow absent: unloaded. */
static void test_missing_slots(void **state)
{
    struct fixture *f = *state;
    struct agent_state st;
    open_deploy(f);
    assert_int_equal(desired(f, &f->server, "dev-01", 5, "classifier", 3, "candidate"), 0);
    assert_slot_state(f, "shadow", "downloading");
    int before = f->n_reports;
    assert_int_equal(desired(f, &f->server, "dev-01", 6, NULL, 0, "candidate"), 0);
    assert_slot_state(f, "production", "downloading"); /* kept as it is */
    assert_int_equal(find_report(f, before, "production", "cancelled"), -1);
    before = f->n_reports;
    assert_int_equal(desired(f, &f->server, "dev-01", 7, "classifier", 3, NULL), 0);
    assert_slot_state(f, "shadow", "none");
    int cancelled = find_report(f, before, "shadow", "cancelled");
    assert_true(cancelled >= 0);
    assert_string_equal(f->reports[cancelled].model, "candidate");
    assert_null(deploy_serving(f->d, EF_SLOT_SHADOW));
    load_state(f, &st);
    assert_int_equal(st.last_seq, 7);
    assert_int_equal(st.slots[EF_SLOT_SHADOW].phase, STATE_NONE);
    assert_null(st.slots[EF_SLOT_SHADOW].target);
    state_clear(&st);
}

/* ---- restarts --------------------------------------------------------- */

static void test_restart_resumes_download_and_keeps_seq(void **state)
{
    struct fixture *f = *state;
    open_deploy(f);
    assert_int_equal(desired(f, &f->server, "dev-01", 5, "classifier", 3, NULL), 0);
    close_deploy(f);
    open_deploy(f);
    assert_int_equal(deploy_last_seq(f->d), 5);
    assert_slot_state(f, "production", "downloading");
    assert_int_equal(desired(f, &f->server, "dev-01", 4, "classifier", 2, NULL), EF_ESTALE);
}

/* Killed during the trial: the candidate was never committed. It never
 * serves after the restart; the deployment starts again from verifying (and
 * here, with no manifest kept on disk, from downloading). */
static void test_restart_during_trial_never_serves_the_candidate(void **state)
{
    struct fixture *f = *state;
    struct agent_state st;
    state_init(&st);
    st.last_seq = 8;
    st.slots[EF_SLOT_PRODUCTION].phase = STATE_ACTIVE;
    st.slots[EF_SLOT_PRODUCTION].seq = 8;
    st.slots[EF_SLOT_PRODUCTION].target =
        ef_slot_new("classifier", 5, "/m5", "/s5", "/a5", SHA_A, 1234, NULL);
    save_state(f, &st);
    state_clear(&st);
    open_deploy(f);
    assert_null(deploy_serving(f->d, EF_SLOT_PRODUCTION));
    int verifying = find_report(f, 0, "production", "verifying");
    assert_true(verifying >= 0);
    assert_string_equal(f->reports[verifying].reason, "restarted during the trial");
    assert_true(find_report(f, verifying, "production", "downloading") > verifying);
    assert_int_equal(find_report(f, 0, "production", "active"), -1);
    assert_slot_state(f, "production", "downloading");
}

/* A committed model whose files are gone is logged, not served, no longer
 * counted as committed, and fetched again from the URLs it came from. */
static void test_restart_with_committed_model_missing(void **state)
{
    struct fixture *f = *state;
    struct agent_state st;
    state_init(&st);
    st.last_seq = 3;
    st.slots[EF_SLOT_PRODUCTION].phase = STATE_COMMITTED;
    st.slots[EF_SLOT_PRODUCTION].target =
        ef_slot_new("classifier", 2, "/m2", "/s2", "/a2", SHA_A, 1234, NULL);
    st.slots[EF_SLOT_PRODUCTION].committed =
        ef_slot_new("classifier", 2, "/m2", "/s2", "/a2", SHA_A, 1234, NULL);
    /* An inbox model has no URL to come back from: it fails instead. */
    st.slots[EF_SLOT_SHADOW].phase = STATE_COMMITTED;
    st.slots[EF_SLOT_SHADOW].target = ef_slot_new("local", 1, "", "", "", SHA_B, 10, NULL);
    st.slots[EF_SLOT_SHADOW].committed = ef_slot_new("local", 1, "", "", "", SHA_B, 10, NULL);
    save_state(f, &st);
    state_clear(&st);
    open_deploy(f);
    assert_null(deploy_serving(f->d, EF_SLOT_PRODUCTION));
    assert_null(deploy_serving(f->d, EF_SLOT_SHADOW));
    int r = find_report(f, 0, "production", "downloading");
    assert_true(r >= 0);
    assert_non_null(strstr(f->reports[r].reason, "committed model unusable"));
    assert_slot_state(f, "production", "downloading");
    assert_slot_state(f, "shadow", "failed");
    load_state(f, &st);
    assert_null(st.slots[EF_SLOT_PRODUCTION].committed);
    assert_null(st.slots[EF_SLOT_SHADOW].committed);
    assert_int_equal(st.last_seq, 3);
    state_clear(&st);
    /* The shadow's version is wanted again under a newer seq: it is
     * deployed again rather than taken as already there. */
    assert_int_equal(desired(f, &f->server, "dev-01", 4, "classifier", 2, "local"), 0);
    assert_slot_state(f, "shadow", "downloading");
    assert_slot_state(f, "production", "downloading");
}

static void test_corrupt_state_starts_fresh(void **state)
{
    struct fixture *f = *state;
    char *path = ef_path_join(f->dir, "state.json");
    assert_int_equal(ef_atomic_write(path, "{\"format\":1,", 12, 0600), 0);
    free(path);
    open_deploy(f);
    assert_int_equal(deploy_last_seq(f->d), 0);
    assert_true(exists(f, "state.json.corrupt"));
    assert_int_equal(desired(f, &f->server, "dev-01", 1, "classifier", 1, NULL), 0);
    assert_true(exists(f, "state.json"));
}

/* Leftovers no slot refers to are removed at start; what a slot needs stays. */
static void test_start_removes_unneeded_files(void **state)
{
    struct fixture *f = *state;
    static const char *const junk[] = {"models/" SHA_B ".model", "models/" SHA_B ".manifest.json",
                                       "downloads/" SHA_B ".part",
                                       "models/" SHA_A ".manifest.json.tmpAbc123"};
    char *path;
    open_deploy(f);
    assert_int_equal(desired(f, &f->server, "dev-01", 5, "classifier", 3, NULL), 0);
    close_deploy(f);
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        path = ef_path_join(f->dir, junk[i]);
        assert_int_equal(ef_atomic_write(path, "x", 1, 0600), 0);
        free(path);
    }
    path = ef_path_join(f->dir, "downloads/" SHA_A ".part");
    assert_int_equal(ef_atomic_write(path, "partial", 7, 0600), 0);
    free(path);
    path = ef_path_join(f->dir, "downloads/pkg-old-1234");
    assert_int_equal(ef_mkdir_p(path, 0700), 0);
    free(path);
    open_deploy(f);
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
        assert_false(exists(f, junk[i]));
    assert_false(exists(f, "downloads/pkg-old-1234"));
    assert_true(exists(f, "downloads/" SHA_A ".part")); /* the download under way */
}

/* ---- inbox packages --------------------------------------------------- */

/* Writes inbox/NAME/{manifest.json, manifest.sig, model, READY}, the
 * manifest signed by signer for device_class (NULL: any). Returns the
 * package directory (the caller frees). */
static char *make_package(struct fixture *f, const char *name, const struct ef_keypair *signer,
                          const char *device_class)
{
    char manifest[1024], sig[EF_SIG_B64_SIZE], *dir, *path;
    char class_json[80] = "null";
    if (device_class)
        snprintf(class_json, sizeof(class_json), "\"%s\"", device_class);
    snprintf(manifest, sizeof(manifest),
             "{\"format\": 1, \"name\": \"local\", \"version\": 7, \"backend\": \"fann\", "
             "\"device_class\": %s, \"artifact\": {\"sha256\": \"%s\", \"size\": 3}, "
             "\"input\": {\"size\": 1}, \"output\": {\"size\": 1}, "
             "\"created_at\": \"2026-01-01T00:00:00Z\"}",
             class_json, SHA_A);
    ef_sign_b64(signer->sk, manifest, strlen(manifest), sig);
    path = ef_path_join(f->dir, "inbox");
    dir = ef_path_join(path, name);
    free(path);
    assert_int_equal(ef_mkdir_p(dir, 0700), 0);
    static const char *const files[] = {"manifest.json", "manifest.sig", "model", "READY"};
    const char *contents[] = {manifest, sig, "abc", ""};
    for (int i = 0; i < 4; i++) {
        path = ef_path_join(dir, files[i]);
        assert_int_equal(ef_atomic_write(path, contents[i], strlen(contents[i]), 0600), 0);
        free(path);
    }
    return dir;
}

/* No package directory anywhere: consumed, not left in the inbox or in downloads/. */
static void assert_package_consumed(struct fixture *f, const char *dir)
{
    struct stat sb;
    char *downloads = ef_path_join(f->dir, "downloads");
    DIR *dh = opendir(downloads);
    struct dirent *e;
    assert_int_not_equal(stat(dir, &sb), 0);
    assert_non_null(dh);
    while ((e = readdir(dh)) != NULL)
        assert_int_not_equal(strncmp(e->d_name, "pkg-", 4), 0);
    closedir(dh);
    free(downloads);
}

static void test_package_with_bad_signature_is_refused(void **state)
{
    struct fixture *f = *state;
    open_deploy(f);
    char *dir = make_package(f, "p1", &f->other, NULL);
    assert_int_equal(deploy_on_package(f->d, dir), EF_EBADSIG);
    assert_package_consumed(f, dir);
    assert_int_equal(f->n_reports, 0); /* an unverified name is not reported */
    assert_slot_state(f, "production", "none");
    free(dir);
}

static void test_package_for_another_class_is_refused(void **state)
{
    struct fixture *f = *state;
    open_deploy(f);
    char *dir = make_package(f, "p2", &f->release, "jetson");
    assert_int_equal(deploy_on_package(f->d, dir), EF_EMISMATCH);
    assert_package_consumed(f, dir);
    assert_int_equal(f->n_reports, 1);
    assert_string_equal(f->reports[0].slot, "production");
    assert_string_equal(f->reports[0].model, "local");
    assert_int_equal(f->reports[0].version, 7);
    assert_string_equal(f->reports[0].state, "failed");
    assert_string_equal(f->reports[0].reason, "manifest is for device class jetson");
    assert_slot_state(f, "production", "none");
    free(dir);
}

static void test_package_for_missing_backend_is_refused(void **state)
{
    struct fixture *f = *state;
    open_deploy(f);
    char *dir = make_package(f, "p3", &f->release, "pi4");
    assert_int_equal(deploy_on_package(f->d, dir), EF_EUNSUPPORTED);
    assert_package_consumed(f, dir);
    assert_int_equal(f->n_reports, 1);
    assert_string_equal(f->reports[0].reason, "backend fann is not available");
    free(dir);
}

static void test_package_incomplete_is_refused(void **state)
{
    struct fixture *f = *state;
    open_deploy(f);
    char *dir = make_package(f, "p4", &f->release, NULL);
    char *sig = ef_path_join(dir, "manifest.sig");
    assert_int_equal(unlink(sig), 0);
    assert_int_equal(deploy_on_package(f->d, dir), EF_ENOENT);
    assert_package_consumed(f, dir);
    free(sig);
    free(dir);
}

/* ---- the trial judge -------------------------------------------------- */

static void judge_cfg(struct agent_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->trial_min_requests = 20;
    cfg->trial_max_error_rate = 0.05;
    cfg->trial_max_p99_ms = 250;
    cfg->trial_max_p99_ratio = 10;
}

static bool judge(const struct agent_config *cfg, uint64_t requests, uint64_t errors, double p99,
                  double prev_p99, char *reason)
{
    struct trial_counts c = {requests, errors, p99, prev_p99};
    return trial_judge(&c, cfg, reason, TRIAL_REASON_SIZE);
}

static void test_judge_needs_min_requests(void **state)
{
    (void)state;
    struct agent_config cfg;
    char reason[TRIAL_REASON_SIZE];
    judge_cfg(&cfg);
    /* 19 requests, all failed and slow: not enough evidence yet. */
    assert_false(judge(&cfg, 19, 19, 10000, 1, reason));
    assert_string_equal(reason, "");
    assert_true(judge(&cfg, 20, 19, 10, -1, reason));
    /* No minimum: still nothing to judge without a request. */
    cfg.trial_min_requests = 0;
    assert_false(judge(&cfg, 0, 0, 0, -1, reason));
    assert_true(judge(&cfg, 1, 1, 1, -1, reason));
}

static void test_judge_error_rate(void **state)
{
    (void)state;
    struct agent_config cfg;
    char reason[TRIAL_REASON_SIZE];
    judge_cfg(&cfg);
    assert_false(judge(&cfg, 20, 0, 10, -1, reason));
    assert_false(judge(&cfg, 20, 1, 10, -1, reason)); /* 0.05 exactly: not a breach */
    assert_false(judge(&cfg, 100, 5, 10, -1, reason));
    assert_true(judge(&cfg, 100, 6, 10, -1, reason));
    assert_string_equal(reason, "error rate 0.060 > 0.050 over 100 requests");
    assert_true(judge(&cfg, 20, 2, 10, -1, reason));
    assert_string_equal(reason, "error rate 0.100 > 0.050 over 20 requests");
    /* A limit of 0 allows no error at all; a negative one turns the rule off. */
    cfg.trial_max_error_rate = 0;
    assert_false(judge(&cfg, 20, 0, 10, -1, reason));
    assert_true(judge(&cfg, 20, 1, 10, -1, reason));
    cfg.trial_max_error_rate = -1;
    assert_false(judge(&cfg, 20, 20, 10, -1, reason));
}

static void test_judge_p99(void **state)
{
    (void)state;
    struct agent_config cfg;
    char reason[TRIAL_REASON_SIZE];
    judge_cfg(&cfg);
    assert_false(judge(&cfg, 20, 0, 250.0, -1, reason)); /* at the limit */
    assert_true(judge(&cfg, 20, 0, 250.5, -1, reason));
    assert_string_equal(reason, "p99 latency 250.500 ms > 250.000 ms over 20 requests");
    cfg.trial_max_p99_ms = 0; /* off */
    assert_false(judge(&cfg, 20, 0, 1e9, -1, reason));
}

static void test_judge_ratio(void **state)
{
    (void)state;
    struct agent_config cfg;
    char reason[TRIAL_REASON_SIZE];
    judge_cfg(&cfg);
    /* The previous model answered in 4 ms at p99: 10x is 40 ms. */
    assert_false(judge(&cfg, 20, 0, 40.0, 4.0, reason));
    assert_true(judge(&cfg, 20, 0, 40.5, 4.0, reason));
    assert_string_equal(reason, "p99 latency 40.500 ms > 10.00 x previous model's p99 4.000 ms "
                                "over 20 requests");
    /* Unknown previous p99 (no model before, or too few requests): rule off. */
    assert_false(judge(&cfg, 20, 0, 200.0, -1, reason));
    assert_false(judge(&cfg, 20, 0, 200.0, 0, reason));
    /* Ratio off. */
    cfg.trial_max_p99_ratio = 0;
    assert_false(judge(&cfg, 20, 0, 200.0, 1.0, reason));
    /* The absolute limit is named first when both are breached. */
    cfg.trial_max_p99_ratio = 10;
    assert_true(judge(&cfg, 20, 0, 300.0, 1.0, reason));
    assert_string_equal(reason, "p99 latency 300.000 ms > 250.000 ms over 20 requests");
    /* And the error rate before either. */
    assert_true(judge(&cfg, 20, 20, 300.0, 1.0, reason));
    assert_string_equal(reason, "error rate 1.000 > 0.050 over 20 requests");
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_fresh_device),
        T(test_bad_signature_is_refused_silently),
        T(test_other_device_is_refused),
        T(test_accepted_assignment_starts_a_deployment),
        T(test_same_seq_is_already_current),
        T(test_replayed_seq_is_refused_and_reported),
        T(test_newer_assignment_supersedes),
        T(test_missing_slots),
        T(test_restart_resumes_download_and_keeps_seq),
        T(test_restart_during_trial_never_serves_the_candidate),
        T(test_restart_with_committed_model_missing),
        T(test_corrupt_state_starts_fresh),
        T(test_start_removes_unneeded_files),
        T(test_package_with_bad_signature_is_refused),
        T(test_package_for_another_class_is_refused),
        T(test_package_for_missing_backend_is_refused),
        T(test_package_incomplete_is_refused),
        cmocka_unit_test(test_judge_needs_min_requests),
        cmocka_unit_test(test_judge_error_rate),
        cmocka_unit_test(test_judge_p99),
        cmocka_unit_test(test_judge_ratio),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
