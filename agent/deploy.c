/*
 * deploy.c - the deployment state machine: signed assignments and inbox
 * packages in, verified and trial-tested models serving out, one machine per
 * model slot (deploy.h has the phases).
 *
 * Everything here runs on the agent's loop. The blocking steps (hashing an
 * artifact, loading and self-testing a model) run on libuv's thread pool on
 * data of their own and come back to the loop; HTTP transfers run in the
 * http_client on the same loop. Each such operation is a struct op that
 * remembers the generation of its slot's deployment: when the slot moved on
 * meanwhile (a newer assignment, an unloaded shadow), the result is dropped.
 * A slot starts its next step only when none of its operations is out, so
 * two transfers never write the same file.
 *
 * Files: DATA_DIR/state.json (state.c), DATA_DIR/models/<sha256>.model,
 * .manifest.json and .manifest.sig (verified, kept for restarts),
 * DATA_DIR/downloads/<sha256>.part (a download under way, resumed by Range)
 * and DATA_DIR/downloads/pkg-* (inbox packages being examined). Whatever no
 * slot refers to any more is removed (deploy_gc).
 */
#include "agent/deploy.h"
#include "agent/agent.h"
#include "agent/backend.h"
#include "agent/http_client.h"
#include "agent/model.h"
#include "agent/state.h"
#include "agent/trial.h"
#include "common/crypto.h"
#include "common/ef_error.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "common/manifest.h"
#include "common/quantile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SIG_MAX_BYTES     1024   /* a detached base64 signature and some slack */
#define RETRY_FIRST_MS    1000   /* first retry of a transient failure */
#define RETRY_MAX_MS      300000 /* backoff ceiling: 5 minutes */
#define META_TIMEOUT_MS   60000  /* whole-transfer limit for manifest and signature */
#define TRIAL_TICK_MS     1000   /* the trial is judged this often */
#define REMOVE_TREE_DEPTH 4      /* how deep a package directory is cleaned */
#define OP_ERR_SIZE       256    /* a thread-pool job's error message */

enum op_kind { OP_MANIFEST, OP_SIGNATURE, OP_ARTIFACT, OP_VERIFY, OP_SELF_TEST, OP_PACKAGE };

struct deploy;

/* One model slot's machine; its persisted half is *st. */
struct slot {
    struct deploy *d;
    enum ef_slot_kind kind;
    struct state_slot *st;        /* &d->state.slots[kind] */
    struct model *serving;        /* owned reference: what deploy_serving returns */
    struct model *last_good;      /* owned reference during a trial: the previous model */
    struct ef_manifest *manifest; /* verified manifest of st->target, once known */
    char *manifest_bytes;         /* between GET manifest and GET signature */
    size_t manifest_len;          /* bytes of manifest_bytes */
    unsigned gen;                 /* bumped whenever the deployment is replaced */
    unsigned inflight;            /* operations of this slot not yet come back */
    bool run_pending;             /* run the current phase once inflight drops to 0 */
    unsigned attempt;             /* transient failures in a row (backoff exponent) */
    uv_timer_t retry_timer;       /* backoff before the next try */
    uv_timer_t trial_timer;       /* judges the trial every TRIAL_TICK_MS */
    bool trial_on;                /* a candidate is serving on trial */
    uint64_t trial_start_ms;      /* uv_now() at the swap */
    uint64_t trial_requests;      /* inferences of the candidate */
    uint64_t trial_errors;        /* of which failed */
    double prev_p99_ms;           /* previous model's p99 in its own service, -1 unknown */
    struct ef_quantile trial;     /* candidate latencies, ms */
    struct ef_quantile service;   /* serving model's latencies outside trials, ms */
};

struct deploy {
    struct agent *a;          /* borrowed: the agent that owns us */
    struct agent_state state; /* persisted in state_path */
    struct slot slots[EF_SLOT_COUNT];
    char *state_path;      /* DATA_DIR/state.json */
    char *models_dir;      /* DATA_DIR/models */
    char *downloads_dir;   /* DATA_DIR/downloads */
    struct op *ops;        /* operations out, linked by op->next */
    unsigned handles_open; /* timers not yet closed */
    bool closing;          /* deploy_close was called */
};

/* An asynchronous operation: an HTTP request or a thread-pool job. The
 * thread-pool half only reads its inputs and writes its outputs here. */
struct op {
    struct deploy *d;
    struct slot *s;         /* the slot it works for */
    struct op *next, *prev; /* in d->ops */
    unsigned gen;           /* s->gen when it started */
    enum op_kind kind;
    uv_work_t work;
    char *url;                       /* HTTP: the absolute URL */
    char *path;                      /* file hashed, downloaded or loaded */
    bool rename_part;                /* verify: path is the .part, move it when good */
    const struct backends *backends; /* self-test: borrowed */
    struct ef_manifest *manifest;    /* self-test: private copy; package: the verified one */
    char *pkg_dir;                   /* package: its directory under downloads/ */
    char *pkg_manifest;              /* package: manifest.json bytes */
    size_t pkg_manifest_len;         /* bytes of pkg_manifest */
    char *pkg_sig;                   /* package: manifest.sig text */
    char hex[EF_HEX256_SIZE];        /* out: sha256 of path */
    struct model *model;             /* out: self-tested model, owned */
    int rc;                          /* out: 0 or EF_E* */
    char err[OP_ERR_SIZE];           /* out: why rc */
};

/* What an accepted assignment or package does to one slot. */
enum slot_action { ACT_NONE, ACT_CONFIRM, ACT_START, ACT_BACK_TO_COMMITTED, ACT_UNLOAD };

static void slot_run(struct slot *s);
static void step_download(struct slot *s);
static void step_artifact(struct slot *s);
static void step_verify(struct slot *s);
static void step_self_test(struct slot *s);
static void deploy_gc(struct deploy *d);

/* ---- small helpers ---------------------------------------------------- */

/* Tells the agent that what slot s serves was set or swapped (metrics and
 * data collection follow the production model). */
static void serving_changed(struct slot *s)
{
    struct agent *a = s->d->a;
    if (a->serving_changed)
        a->serving_changed(a, s->kind, s->serving);
}

static const char *slot_name(const struct slot *s)
{
    return ef_slot_name(s->kind);
}

/* New "DIR/SHA256SUFFIX" path, or NULL. */
static char *sha_path(const char *dir, const char *sha256, const char *suffix)
{
    size_t n = strlen(dir) + strlen(sha256) + strlen(suffix) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s%s", dir, sha256, suffix);
    return p;
}

/* Size of a regular file, or -1 when there is none. */
static int64_t file_size(const char *path)
{
    struct stat st;
    if (!path || stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return -1;
    return (int64_t)st.st_size;
}

/* Removes a directory and what it holds (a package a local tool dropped). */
static void remove_tree(const char *dir, int depth)
{
    DIR *dh = depth > 0 ? opendir(dir) : NULL;
    struct dirent *e;
    while (dh && (e = readdir(dh)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char *p = ef_path_join(dir, e->d_name);
        struct stat st;
        if (p && lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            remove_tree(p, depth - 1);
        else if (p)
            unlink(p);
        free(p);
    }
    if (dh)
        closedir(dh);
    if (rmdir(dir) != 0 && errno != ENOENT)
        ef_warn("deploy_cleanup", "path=%s error=%s", dir, ef_errname(ef_from_errno(errno)));
}

/* Logs the transition the slot just made (the integration tests read these). */
static void log_state(const struct slot *s)
{
    char quoted[STATE_REASON_SIZE + 16];
    const struct ef_slot *t = s->st->target;
    ef_info("deploy_state", "slot=%s model=%s version=%lld state=%s reason=%s", slot_name(s),
            t ? t->model : "-", t ? (long long)t->version : 0LL, state_phase_name(s->st->phase),
            ef_log_quote(s->st->reason, quoted, sizeof(quoted)));
}

/* Reports state for version t of the slot; nothing without a version to name
 * (the server's schema has no version 0). */
static void report(struct slot *s, const struct ef_slot *t, const char *state, const char *reason)
{
    if (t && t->version >= 1)
        agent_report(s->d->a, slot_name(s), t->model, t->version, state,
                     reason && reason[0] ? reason : NULL);
}

/* The transition of every step: the state is persisted, then logged and
 * reported, and only then does the caller act on it.
 *
 * A failed save is logged and the machine goes on: the file then lags
 * behind memory, and every phase resumes safely from an earlier one (an
 * active model that was committed in memory but not on disk is re-verified
 * and tried again after a restart; an assignment is never accepted without
 * its save, see apply_change). Stopping instead would leave the device
 * serving nothing new with no way to say so. */
static void slot_enter(struct slot *s, enum state_phase phase, const char *reason)
{
    struct deploy *d = s->d;
    s->st->phase = phase;
    state_set_reason(s->st, reason);
    int rc = state_save(d->state_path, &d->state);
    if (rc != 0)
        ef_error("state_save_failed", "path=%s slot=%s state=%s error=%s", d->state_path,
                 slot_name(s), state_phase_name(phase), ef_errname(rc));
    log_state(s);
    report(s, s->st->target, state_phase_name(phase), s->st->reason);
}

static void slot_forget_manifest(struct slot *s)
{
    ef_manifest_free(s->manifest);
    s->manifest = NULL;
    free(s->manifest_bytes);
    s->manifest_bytes = NULL;
    s->manifest_len = 0;
}

/* failed(reason): the serving model is untouched. */
static void slot_fail(struct slot *s, const char *reason)
{
    uv_timer_stop(&s->retry_timer);
    s->attempt = 0;
    slot_enter(s, STATE_FAILED, reason);
    slot_forget_manifest(s);
    deploy_gc(s->d);
}

static void on_retry_timer(uv_timer_t *t)
{
    slot_run(t->data);
}

/* A transient failure: the phase stays as it is (also across restarts) and
 * the step runs again after 1 s doubling up to 5 min, +-20 % jitter so that a
 * fleet that lost its server does not come back in step. */
static void slot_retry(struct slot *s, const char *what, const char *why)
{
    char quoted[200];
    unsigned shift = s->attempt < 9 ? s->attempt : 9;
    uint64_t base = (uint64_t)RETRY_FIRST_MS << shift;
    if (base > RETRY_MAX_MS)
        base = RETRY_MAX_MS;
    uint64_t delay = base * (800 + randombytes_uniform(401)) / 1000;
    s->attempt++;
    ef_warn("deploy_retry",
            "slot=%s model=%s version=%lld step=%s attempt=%u delay_ms=%llu reason=%s",
            slot_name(s), s->st->target->model, (long long)s->st->target->version, what, s->attempt,
            (unsigned long long)delay, ef_log_quote(why, quoted, sizeof(quoted)));
    uv_timer_start(&s->retry_timer, on_retry_timer, delay, 0);
}

/* ---- operations ------------------------------------------------------- */

static struct op *op_new(struct slot *s, enum op_kind kind)
{
    struct op *op = calloc(1, sizeof(*op));
    if (!op)
        return NULL;
    op->d = s->d;
    op->s = s;
    op->gen = s->gen;
    op->kind = kind;
    op->work.data = op;
    return op;
}

/* The operation is about to go out. */
static void op_begin(struct op *op)
{
    struct deploy *d = op->d;
    op->next = d->ops;
    if (d->ops)
        d->ops->prev = op;
    d->ops = op;
    op->s->inflight++;
}

static void deploy_maybe_free(struct deploy *d);

/* The operation came back: true when its result still matters (the agent is
 * not closing and the slot has not moved on). */
static bool op_end(struct op *op)
{
    struct deploy *d = op->d;
    if (op->prev)
        op->prev->next = op->next;
    else
        d->ops = op->next;
    if (op->next)
        op->next->prev = op->prev;
    op->next = op->prev = NULL;
    op->s->inflight--;
    return !d->closing && op->gen == op->s->gen;
}

/* Frees an operation that is not (or no longer) out, then lets its slot run
 * a step that waited for it, or the deploy finish closing. */
static void op_free(struct op *op)
{
    if (!op)
        return;
    struct deploy *d = op->d;
    struct slot *s = op->s;
    free(op->url);
    free(op->path);
    ef_manifest_free(op->manifest);
    model_unref(op->model);
    free(op->pkg_dir);
    free(op->pkg_manifest);
    free(op->pkg_sig);
    free(op);
    if (d->closing)
        deploy_maybe_free(d);
    else if (s->inflight == 0 && s->run_pending)
        slot_run(s);
}

/* ---- manifests -------------------------------------------------------- */

/* Checks a verified manifest against what the slot was told (t may be NULL
 * for an inbox package, which names its own version), the device class and
 * the backends. 0, EF_EMISMATCH or EF_EUNSUPPORTED with why. */
static int check_manifest(const struct deploy *d, const struct ef_slot *t,
                          const struct ef_manifest *m, char *why, size_t why_size)
{
    const struct agent *a = d->a;
    if (t && (strcmp(m->name, t->model) != 0 || m->version != t->version)) {
        snprintf(why, why_size, "manifest is for %s@%lld, not %s@%lld", m->name,
                 (long long)m->version, t->model, (long long)t->version);
        return EF_EMISMATCH;
    }
    if (t && (strcmp(m->sha256, t->sha256) != 0 || m->size != t->size)) {
        snprintf(why, why_size,
                 "manifest artifact (sha256 %.16s..., %lld bytes) is not the assigned one",
                 m->sha256, (long long)m->size);
        return EF_EMISMATCH;
    }
    if (m->device_class && strcmp(m->device_class, a->cfg.device_class) != 0) {
        snprintf(why, why_size, "manifest is for device class %s", m->device_class);
        return EF_EMISMATCH;
    }
    if (!a->backends || !backends_get(a->backends, m->backend)) {
        snprintf(why, why_size, "backend %s is not available", m->backend);
        return EF_EUNSUPPORTED;
    }
    return 0;
}

/* Verifies manifest bytes with the release key and checks them; *out new. */
static int verify_manifest(const struct deploy *d, const struct ef_slot *t, const char *bytes,
                           size_t len, const char *sig, struct ef_manifest **out, char *why,
                           size_t why_size)
{
    char msg[200] = "";
    int rc = ef_manifest_verify_parse(bytes, len, sig, d->a->id.release_pk, out, msg, sizeof(msg));
    if (rc == EF_EBADSIG || (rc == EF_EPARSE && strncmp(msg, "manifest signature", 18) == 0))
        snprintf(why, why_size, "%s", msg);
    else if (rc != 0)
        snprintf(why, why_size, "manifest refused: %s", msg);
    else if ((rc = check_manifest(d, t, *out, why, why_size)) != 0) {
        ef_manifest_free(*out);
        *out = NULL;
    }
    return rc;
}

/* Loads and re-verifies the manifest saved for t under models/. */
static int load_saved_manifest(const struct deploy *d, const struct ef_slot *t,
                               struct ef_manifest **out, char *why, size_t why_size)
{
    char *mpath = sha_path(d->models_dir, t->sha256, ".manifest.json");
    char *spath = sha_path(d->models_dir, t->sha256, ".manifest.sig");
    char *bytes = NULL, *sig = NULL;
    size_t len = 0;
    int rc = EF_ENOMEM;
    *out = NULL;
    if (!mpath || !spath)
        goto out;
    if ((rc = ef_read_file(mpath, EF_MANIFEST_MAX_BYTES, &bytes, &len)) != 0 ||
        (rc = ef_read_file(spath, SIG_MAX_BYTES, &sig, NULL)) != 0) {
        snprintf(why, why_size, "saved manifest unreadable: %s", ef_strerror(rc));
        goto out;
    }
    rc = verify_manifest(d, t, bytes, len, sig, out, why, why_size);
out:
    free(mpath);
    free(spath);
    free(bytes);
    free(sig);
    return rc;
}

/* Writes a verified manifest and its signature under models/. */
static int save_manifest(const struct deploy *d, const char *sha256, const char *bytes, size_t len,
                         const char *sig)
{
    char *mpath = sha_path(d->models_dir, sha256, ".manifest.json");
    char *spath = sha_path(d->models_dir, sha256, ".manifest.sig");
    int rc = EF_ENOMEM;
    if (mpath && spath && (rc = ef_atomic_write(mpath, bytes, len, 0600)) == 0)
        rc = ef_atomic_write(spath, sig, strlen(sig), 0600);
    free(mpath);
    free(spath);
    return rc;
}

/* ---- downloading ------------------------------------------------------ */

/* The absolute URL of url (server-relative when it starts with '/'), and
 * whether the device token may go with it: only to our own server. */
static int resolve_url(const struct deploy *d, const char *url, char **out, bool *with_token)
{
    const char *server = d->a->cfg.server_url;
    size_t n = strlen(server);
    while (n > 0 && server[n - 1] == '/')
        n--;
    *out = NULL;
    *with_token = false;
    if (url[0] == '/') {
        size_t size = n + strlen(url) + 1;
        if (n == 0 || !(*out = malloc(size)))
            return n == 0 ? EF_EINVAL : EF_ENOMEM;
        snprintf(*out, size, "%.*s%s", (int)n, server, url);
        *with_token = true;
        return 0;
    }
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        return EF_EINVAL;
    *with_token = n > 0 && strncmp(url, server, n) == 0 && url[n] == '/';
    *out = strdup(url);
    return *out ? 0 : EF_ENOMEM;
}

/* 0: the transfer succeeded; 1: worth another try later; else EF_E* with why. */
static int http_outcome(const struct http_result *res, char *why, size_t why_size)
{
    switch (res->rc) {
    case 0:
        break;
    case EF_ENET:
    case EF_ETIMEDOUT:
    case EF_EBUSY:
    case EF_EIO:
        snprintf(why, why_size, "%s", ef_strerror(res->rc));
        return 1;
    default:
        snprintf(why, why_size, "%s", ef_strerror(res->rc));
        return res->rc;
    }
    if (res->status == 200 || res->status == 206)
        return 0;
    snprintf(why, why_size, "HTTP %ld", res->status);
    if (res->status == 0 || res->status >= 500 || res->status == 408 || res->status == 429)
        return 1;
    return EF_ENET;
}

static void on_http_done(void *ctx, const struct http_result *res);

/* Starts GET url for the slot's current deployment. */
static void http_start(struct slot *s, enum op_kind kind, const char *url)
{
    struct deploy *d = s->d;
    struct agent *a = d->a;
    struct op *op = NULL;
    bool with_token = false;
    char why[160];
    int rc;
    if (!(op = op_new(s, kind))) {
        slot_retry(s, "download", "out of memory");
        goto out;
    }
    if ((rc = resolve_url(d, url, &op->url, &with_token)) != 0) {
        snprintf(why, sizeof(why), "cannot fetch %.100s: %s", url,
                 rc == EF_EINVAL ? "not an http(s) URL" : ef_strerror(rc));
        if (rc == EF_ENOMEM)
            slot_retry(s, "download", why);
        else
            slot_fail(s, why);
        goto out;
    }
    if (!a->http) {
        slot_retry(s, "download", "no HTTP client");
        goto out;
    }
    struct http_request_opts o = {
        .url = op->url,
        .bearer = with_token ? a->id.device_token : NULL,
        .low_speed_bytes = (long)a->cfg.download_floor_bps,
        .low_speed_seconds = (long)a->cfg.download_floor_s,
    };
    if (kind == OP_ARTIFACT) {
        if (!(op->path = sha_path(d->downloads_dir, s->st->target->sha256, ".part"))) {
            slot_retry(s, "download", "out of memory");
            goto out;
        }
        o.file_path = op->path;
        o.expected_size = s->manifest->size;
        o.max_recv_bps = (long)a->cfg.download_max_bps;
    } else {
        o.max_bytes = kind == OP_MANIFEST ? EF_MANIFEST_MAX_BYTES : SIG_MAX_BYTES;
        o.timeout_ms = META_TIMEOUT_MS;
    }
    op_begin(op);
    if ((rc = http_client_request(a->http, &o, on_http_done, op)) != 0) {
        op_end(op);
        slot_retry(s, "download", ef_strerror(rc));
        goto out;
    }
    op = NULL;
out:
    op_free(op);
}

/* notified/downloading: the manifest and its signature first (small, in
 * memory), then the artifact. */
static void step_download(struct slot *s)
{
    const struct ef_slot *t = s->st->target;
    if (s->manifest)
        step_artifact(s);
    else if (!t->manifest_url[0])
        slot_fail(s, "artifact missing and no URL to fetch it from"); /* an inbox package */
    else
        http_start(s, OP_MANIFEST, t->manifest_url);
}

static void on_manifest(struct slot *s, const struct http_result *res)
{
    char why[160];
    int rc = http_outcome(res, why, sizeof(why));
    if (rc == 1) {
        slot_retry(s, "manifest", why);
    } else if (rc != 0) {
        char reason[200];
        snprintf(reason, sizeof(reason), "GET manifest: %s", why);
        slot_fail(s, reason);
    } else if (!(s->manifest_bytes = malloc(res->body_len + 1))) {
        slot_retry(s, "manifest", "out of memory");
    } else {
        memcpy(s->manifest_bytes, res->body, res->body_len);
        s->manifest_bytes[res->body_len] = '\0';
        s->manifest_len = res->body_len;
        http_start(s, OP_SIGNATURE, s->st->target->signature_url);
    }
}

static void on_signature(struct slot *s, const struct http_result *res)
{
    char why[200], reason[240];
    char *sig = NULL;
    struct ef_manifest *m = NULL;
    int rc = http_outcome(res, why, sizeof(why));
    if (rc == 1) {
        /* The manifest is fetched again with it: the two always match. */
        slot_forget_manifest(s);
        slot_retry(s, "signature", why);
        goto out;
    }
    if (rc != 0) {
        snprintf(reason, sizeof(reason), "GET manifest signature: %s", why);
        slot_fail(s, reason);
        goto out;
    }
    if (!(sig = strndup(res->body ? res->body : "", res->body_len))) {
        slot_forget_manifest(s);
        slot_retry(s, "signature", "out of memory");
        goto out;
    }
    for (size_t n = strlen(sig); n > 0 && strchr(" \t\r\n", sig[n - 1]); n--)
        sig[n - 1] = '\0';
    if ((rc = verify_manifest(s->d, s->st->target, s->manifest_bytes, s->manifest_len, sig, &m, why,
                              sizeof(why))) != 0) {
        slot_fail(s, why);
        goto out;
    }
    if ((rc = save_manifest(s->d, m->sha256, s->manifest_bytes, s->manifest_len, sig)) != 0) {
        snprintf(reason, sizeof(reason), "cannot save the manifest: %s", ef_strerror(rc));
        slot_fail(s, reason);
        goto out;
    }
    free(s->manifest_bytes);
    s->manifest_bytes = NULL;
    s->manifest = m;
    m = NULL;
    step_artifact(s);
out:
    ef_manifest_free(m);
    free(sig);
}

/* The artifact into downloads/<sha256>.part, unless a complete copy is
 * already there (a restart after the download, or the same artifact kept
 * under models/). */
static void step_artifact(struct slot *s)
{
    const struct ef_manifest *m = s->manifest;
    char *model = sha_path(s->d->models_dir, m->sha256, ".model");
    char *part = sha_path(s->d->downloads_dir, m->sha256, ".part");
    if (!model || !part) {
        slot_retry(s, "artifact", "out of memory");
        goto out;
    }
    if (file_size(model) == m->size || file_size(part) == m->size) {
        s->attempt = 0;
        slot_enter(s, STATE_VERIFYING, NULL);
        step_verify(s);
        goto out;
    }
    if (file_size(part) > m->size)
        unlink(part);
    http_start(s, OP_ARTIFACT, s->st->target->artifact_url);
out:
    free(model);
    free(part);
}

static void on_artifact(struct slot *s, struct op *op, const struct http_result *res)
{
    char why[160], reason[200];
    int rc = http_outcome(res, why, sizeof(why));
    if (res->rc == EF_ETOOBIG) {
        unlink(op->path);
        snprintf(reason, sizeof(reason), "artifact is larger than its declared %lld bytes",
                 (long long)s->manifest->size);
        slot_fail(s, reason);
    } else if (res->rc == 0 && res->status == 416 && file_size(op->path) == s->manifest->size) {
        /* Asked for the bytes after a file that was complete already. */
        s->attempt = 0;
        slot_enter(s, STATE_VERIFYING, NULL);
        step_verify(s);
    } else if (res->rc == 0 && res->status == 416) {
        /* The server refuses our Range: start the file again. */
        unlink(op->path);
        slot_retry(s, "artifact", "HTTP 416");
    } else if (rc == 1) {
        slot_retry(s, "artifact", why);
    } else if (rc != 0) {
        snprintf(reason, sizeof(reason), "GET artifact: %s", why);
        slot_fail(s, reason);
    } else if (file_size(op->path) != s->manifest->size) {
        /* Short (the connection ended early): resume from where it stopped. */
        slot_retry(s, "artifact", "transfer ended before the declared size");
    } else {
        s->attempt = 0;
        slot_enter(s, STATE_VERIFYING, NULL);
        step_verify(s);
    }
}

static void on_http_done(void *ctx, const struct http_result *res)
{
    struct op *op = ctx;
    if (!op_end(op))
        goto out;
    /* The client is being freed with the agent: the phase on disk resumes
     * the transfer at the next start. */
    if (res->rc == EF_EBUSY && op->d->a->stopping)
        goto out;
    if (op->kind == OP_MANIFEST)
        on_manifest(op->s, res);
    else if (op->kind == OP_SIGNATURE)
        on_signature(op->s, res);
    else
        on_artifact(op->s, op, res);
out:
    op_free(op);
}

/* ---- verifying -------------------------------------------------------- */

/* Thread pool: hashes op->path and makes its bytes durable before anything
 * renames it or trusts it after a power cut. */
static void work_hash(uv_work_t *w)
{
    struct op *op = w->data;
    op->rc = ef_sha256_file_hex(op->path, op->hex);
    if (op->rc == 0) {
        int fd = open(op->path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) != 0)
            op->rc = EF_EIO;
        if (fd >= 0)
            close(fd);
    }
    if (op->rc != 0)
        snprintf(op->err, sizeof(op->err), "cannot read the artifact: %s", ef_strerror(op->rc));
}

static void after_verify(uv_work_t *w, int status)
{
    struct op *op = w->data;
    struct slot *s = op->s;
    char *model = NULL, reason[200];
    if (!op_end(op) || status != 0)
        goto out;
    if (op->rc != 0) {
        slot_fail(s, op->err);
        goto out;
    }
    if (strcmp(op->hex, s->manifest->sha256) != 0) {
        unlink(op->path);
        if (!op->rename_part && s->st->target->artifact_url[0]) {
            /* The copy kept under models/ was damaged: fetch it once more;
             * a download that does not match fails for good. */
            slot_enter(s, STATE_DOWNLOADING, "kept artifact damaged, fetching it again");
            step_download(s);
        } else {
            slot_fail(s, "artifact hash mismatch");
        }
        goto out;
    }
    if (op->rename_part) {
        int rc = 0;
        if (!(model = sha_path(s->d->models_dir, op->hex, ".model")))
            rc = EF_ENOMEM;
        else if (rename(op->path, model) != 0)
            rc = ef_from_errno(errno);
        else
            rc = ef_fsync_dir(s->d->models_dir);
        if (rc != 0) {
            snprintf(reason, sizeof(reason), "cannot move the artifact into models/: %s",
                     ef_strerror(rc));
            slot_fail(s, reason);
            goto out;
        }
    }
    slot_enter(s, STATE_STAGED, NULL);
    step_self_test(s);
out:
    free(model);
    op_free(op);
}

/* Queues op on the thread pool. 0, or EF_EIO with op not out (the caller
 * still owns it). */
static int queue_work(struct op *op, uv_work_cb work, uv_after_work_cb after)
{
    op_begin(op);
    if (uv_queue_work(agent_loop(op->d->a), &op->work, work, after) == 0)
        return 0;
    op_end(op);
    return EF_EIO;
}

/* verifying: hashes the downloaded .part (or the model already under
 * models/, after a restart) against the verified manifest. */
static void step_verify(struct slot *s)
{
    const struct ef_slot *t = s->st->target;
    char why[200];
    struct op *op = NULL;
    char *part = NULL, *model = NULL;
    if (!s->manifest && load_saved_manifest(s->d, t, &s->manifest, why, sizeof(why)) != 0) {
        ef_warn("deploy_manifest_reload", "slot=%s model=%s version=%lld reason=\"%s\"",
                slot_name(s), t->model, (long long)t->version, why);
        slot_enter(s, STATE_DOWNLOADING, why);
        step_download(s);
        goto out;
    }
    part = sha_path(s->d->downloads_dir, t->sha256, ".part");
    model = sha_path(s->d->models_dir, t->sha256, ".model");
    if (!part || !model || !(op = op_new(s, OP_VERIFY))) {
        slot_fail(s, "out of memory");
        goto out;
    }
    if (file_size(part) >= 0) {
        op->path = part;
        op->rename_part = true;
        part = NULL;
    } else if (file_size(model) >= 0) {
        op->path = model;
        model = NULL;
    } else {
        /* Gone (removed by hand, or never downloaded): fetch it again. */
        slot_enter(s, STATE_DOWNLOADING, "artifact file missing");
        step_download(s);
        goto out;
    }
    if (queue_work(op, work_hash, after_verify) != 0) {
        slot_fail(s, "cannot queue work on the thread pool");
        goto out;
    }
    op = NULL;
out:
    op_free(op);
    free(part);
    free(model);
}

/* ---- self-test, trial, commit ----------------------------------------- */

/* Thread pool: loads the candidate off the serving path and replays the
 * manifest's golden vectors. Touches nothing but the op. */
static void work_self_test(uv_work_t *w)
{
    struct op *op = w->data;
    op->rc = model_load(op->backends, op->manifest, op->path, &op->model, op->err, sizeof(op->err));
    if (op->rc == 0)
        op->rc = model_self_test(op->model, op->err, sizeof(op->err));
    if (op->rc != 0 && !op->err[0])
        snprintf(op->err, sizeof(op->err), "%s", ef_strerror(op->rc));
}

static void on_trial_tick(uv_timer_t *t);

/* active (trial): the swap is a pointer exchange on the loop, between two
 * inferences; the previous model stays loaded as the last-known-good. */
static void slot_activate(struct slot *s, struct model *candidate)
{
    const struct agent_config *cfg = &s->d->a->cfg;
    uint64_t window = (uint64_t)cfg->trial_s * 1000;
    uint64_t tick = window < TRIAL_TICK_MS ? window : TRIAL_TICK_MS;
    uint64_t min = cfg->trial_min_requests ? cfg->trial_min_requests : 1;
    slot_enter(s, STATE_ACTIVE, NULL);
    s->last_good = s->serving;
    s->serving = candidate;
    s->prev_p99_ms =
        s->last_good && s->service.count >= min ? ef_quantile_value(&s->service, 0.99) : -1;
    /* s->service keeps the previous model's latencies: if it comes back
     * (rollback, cancel), they still describe it. */
    ef_quantile_reset(&s->trial);
    s->trial_requests = s->trial_errors = 0;
    s->trial_on = true;
    s->trial_start_ms = uv_now(agent_loop(s->d->a));
    ef_info("deploy_swap", "slot=%s serving=%s previous=%s previous_p99_ms=%.3f trial_s=%u",
            slot_name(s), candidate->id, s->last_good ? s->last_good->id : "-", s->prev_p99_ms,
            cfg->trial_s);
    serving_changed(s);
    uv_timer_start(&s->trial_timer, on_trial_tick, tick ? tick : 1, tick ? tick : 1);
}

static void after_self_test(uv_work_t *w, int status)
{
    struct op *op = w->data;
    struct slot *s = op->s;
    char reason[300];
    if (!op_end(op) || status != 0)
        goto out;
    if (op->rc != 0) {
        snprintf(reason, sizeof(reason), "self-test: %s", op->err);
        slot_fail(s, reason);
        goto out;
    }
    slot_activate(s, op->model);
    op->model = NULL;
out:
    op_free(op);
}

/* self-test: persisted first, so a restart repeats it rather than trusting it. */
static void step_self_test(struct slot *s)
{
    struct deploy *d = s->d;
    struct op *op = op_new(s, OP_SELF_TEST);
    json_t *copy = NULL;
    char why[160];
    int rc = EF_ENOMEM;
    slot_enter(s, STATE_SELF_TEST, NULL);
    /* The thread gets a manifest of its own: nothing it touches is shared
     * with the loop while it runs. */
    if (!op || !(op->path = sha_path(d->models_dir, s->manifest->sha256, ".model")) ||
        !(copy = json_deep_copy(s->manifest->doc)) ||
        (rc = ef_manifest_from_json(copy, &op->manifest, why, sizeof(why))) != 0) {
        op_free(op);
        slot_fail(s, rc == EF_ENOMEM ? "out of memory" : why);
        goto out;
    }
    op->backends = d->a->backends;
    if (queue_work(op, work_self_test, after_self_test) != 0) {
        op_free(op);
        slot_fail(s, "cannot queue work on the thread pool");
    }
out:
    json_decref(copy);
}

/* committed: the trial ended without a breach. */
static void slot_commit(struct slot *s)
{
    struct ef_slot *committed = state_slot_copy(s->st->target);
    uv_timer_stop(&s->trial_timer);
    s->trial_on = false;
    if (!committed) {
        /* Cannot record it: the candidate has not earned the slot. */
        struct model *candidate = s->serving;
        slot_enter(s, STATE_ROLLED_BACK, "out of memory while committing");
        s->serving = s->last_good;
        s->last_good = NULL;
        model_unref(candidate);
        serving_changed(s);
        goto out;
    }
    ef_slot_free(s->st->committed);
    s->st->committed = committed;
    slot_enter(s, STATE_COMMITTED, NULL);
    ef_info("deploy_commit", "slot=%s serving=%s released=%s requests=%llu errors=%llu",
            slot_name(s), s->serving->id, s->last_good ? s->last_good->id : "-",
            (unsigned long long)s->trial_requests, (unsigned long long)s->trial_errors);
    model_unref(s->last_good);
    s->last_good = NULL;
    /* From now on the service samples describe the new model. */
    ef_quantile_reset(&s->service);
    serving_changed(s);
out:
    slot_forget_manifest(s);
    deploy_gc(s->d);
}

/* rolled_back: swap back to the last-known-good at once. */
static void slot_rollback(struct slot *s, const char *reason)
{
    struct model *candidate = s->serving;
    uv_timer_stop(&s->trial_timer);
    s->trial_on = false;
    slot_enter(s, STATE_ROLLED_BACK, reason);
    s->serving = s->last_good;
    s->last_good = NULL;
    ef_info("deploy_swap", "slot=%s serving=%s previous=%s rollback=yes", slot_name(s),
            s->serving ? s->serving->id : "-", candidate ? candidate->id : "-");
    model_unref(candidate);
    serving_changed(s);
    slot_forget_manifest(s);
    deploy_gc(s->d);
}

static void on_trial_tick(uv_timer_t *t)
{
    struct slot *s = t->data;
    const struct agent_config *cfg = &s->d->a->cfg;
    char reason[TRIAL_REASON_SIZE];
    struct trial_counts c = {
        .requests = s->trial_requests,
        .errors = s->trial_errors,
        .p99_ms = ef_quantile_value(&s->trial, 0.99),
        .prev_p99_ms = s->prev_p99_ms,
    };
    if (trial_judge(&c, cfg, reason, sizeof(reason)))
        slot_rollback(s, reason);
    else if (uv_now(agent_loop(s->d->a)) - s->trial_start_ms >= (uint64_t)cfg->trial_s * 1000)
        slot_commit(s); /* fewer requests than the minimum is no evidence of harm */
}

/* Starts or resumes the step of the slot's current phase, once none of its
 * operations is out. */
static void slot_run(struct slot *s)
{
    if (s->d->closing)
        return;
    if (s->inflight > 0) {
        s->run_pending = true;
        return;
    }
    s->run_pending = false;
    switch (s->st->phase) {
    case STATE_NOTIFIED:
        slot_enter(s, STATE_DOWNLOADING, NULL);
        step_download(s);
        break;
    case STATE_DOWNLOADING:
        step_download(s);
        break;
    case STATE_VERIFYING:
        step_verify(s);
        break;
    case STATE_STAGED:
        step_self_test(s);
        break;
    default:
        break;
    }
}

/* ---- files no slot needs ---------------------------------------------- */

/* True when the hex prefix of name is a sha256 that some slot still needs:
 * a committed model, or the target of a deployment under way. */
static bool sha_needed(const struct deploy *d, const char *name)
{
    for (int i = 0; i < EF_SLOT_COUNT; i++) {
        const struct state_slot *st = &d->state.slots[i];
        if (st->committed && strncmp(name, st->committed->sha256, 64) == 0)
            return true;
        if (st->target && state_phase_in_progress(st->phase) &&
            strncmp(name, st->target->sha256, 64) == 0)
            return true;
    }
    return false;
}

/* Removes models, manifests and partial downloads no slot needs, and
 * atomic-write leftovers (every write here is synchronous on the loop, so
 * none is under way). Inbox packages being examined are left alone except at
 * start (with_packages). */
static void gc_dir(const struct deploy *d, const char *dir, bool with_packages)
{
    DIR *dh = opendir(dir);
    struct dirent *e;
    while (dh && (e = readdir(dh)) != NULL) {
        const char *name = e->d_name;
        bool pkg = strncmp(name, "pkg-", 4) == 0;
        if (name[0] == '.' || (pkg && !with_packages))
            continue;
        if (!pkg && strstr(name, ".tmp") == NULL && sha_needed(d, name))
            continue;
        char *p = ef_path_join(dir, name);
        if (!p)
            break;
        if (pkg)
            remove_tree(p, REMOVE_TREE_DEPTH);
        else if (unlink(p) == 0)
            ef_info("deploy_gc", "removed=%s", p);
        free(p);
    }
    if (dh)
        closedir(dh);
}

static void deploy_gc(struct deploy *d)
{
    gc_dir(d, d->models_dir, false);
    gc_dir(d, d->downloads_dir, false);
}

/* ---- assignments and packages ----------------------------------------- */

/* Decides what want does to next (the copy of the slot about to be saved)
 * and changes next accordingly; want is taken when it becomes the target.
 * first is the phase a new deployment starts in. EF_ENOMEM. */
static int plan_slot(struct state_slot *next, struct ef_slot **want, int64_t seq,
                     enum state_phase first, bool unload_when_absent, enum slot_action *act)
{
    *act = ACT_NONE;
    if (!*want) {
        if (!unload_when_absent || (next->phase == STATE_NONE && !next->committed))
            return 0;
        ef_slot_free(next->target);
        ef_slot_free(next->committed);
        next->target = next->committed = NULL;
        next->phase = STATE_NONE;
        next->seq = seq;
        state_set_reason(next, NULL);
        *act = ACT_UNLOAD;
        return 0;
    }
    if ((state_phase_in_progress(next->phase) || next->phase == STATE_COMMITTED) &&
        state_slot_same(next->target, *want)) {
        *act = ACT_CONFIRM;
        return 0;
    }
    if (state_slot_same(next->committed, *want)) {
        struct ef_slot *t = state_slot_copy(next->committed);
        if (!t)
            return EF_ENOMEM;
        ef_slot_free(next->target);
        next->target = t;
        next->phase = STATE_COMMITTED;
        next->seq = seq;
        state_set_reason(next, NULL);
        *act = ACT_BACK_TO_COMMITTED;
        return 0;
    }
    ef_slot_free(next->target);
    next->target = *want;
    *want = NULL;
    next->phase = first;
    next->seq = seq;
    state_set_reason(next, NULL);
    *act = ACT_START;
    return 0;
}

/* Leaves whatever the slot was doing for a new decision: its operations
 * become stale, a trial candidate is swapped back out, and a deployment that
 * was under way is reported cancelled. old is the slot as it was. */
static void slot_abandon(struct slot *s, const struct state_slot *old, const char *why)
{
    s->gen++;
    s->attempt = 0;
    uv_timer_stop(&s->retry_timer);
    slot_forget_manifest(s);
    if (s->trial_on) {
        struct model *candidate = s->serving;
        uv_timer_stop(&s->trial_timer);
        s->trial_on = false;
        s->serving = s->last_good;
        s->last_good = NULL;
        ef_info("deploy_swap", "slot=%s serving=%s previous=%s cancelled=yes", slot_name(s),
                s->serving ? s->serving->id : "-", candidate ? candidate->id : "-");
        model_unref(candidate);
        serving_changed(s);
    }
    if (state_phase_in_progress(old->phase) && old->target) {
        ef_info("deploy_cancelled", "slot=%s model=%s version=%lld state=%s reason=\"%s\"",
                slot_name(s), old->target->model, (long long)old->target->version,
                state_phase_name(old->phase), why);
        report(s, old->target, "cancelled", why);
    }
}

/* Carries out what plan_slot decided, now that it is persisted. manifest
 * (taken; may be NULL) is the verified manifest of a package's target. */
static void act_slot(struct slot *s, enum slot_action act, const struct state_slot *old,
                     struct ef_manifest *manifest, const char *why)
{
    switch (act) {
    case ACT_NONE:
        break;
    case ACT_CONFIRM:
        /* The server set this slot back to pending: say where it stands. */
        report(s, s->st->target, state_phase_name(s->st->phase), s->st->reason);
        break;
    case ACT_START:
        slot_abandon(s, old, why);
        log_state(s);
        report(s, s->st->target, state_phase_name(s->st->phase), NULL);
        s->manifest = manifest;
        manifest = NULL;
        slot_run(s);
        break;
    case ACT_BACK_TO_COMMITTED:
        slot_abandon(s, old, why);
        log_state(s);
        report(s, s->st->target, state_phase_name(s->st->phase), NULL);
        break;
    case ACT_UNLOAD:
        slot_abandon(s, old, why);
        ef_info("deploy_state", "slot=%s model=- version=0 state=none reason=\"unloaded: %s\"",
                slot_name(s), why);
        model_unref(s->serving);
        s->serving = NULL;
        ef_quantile_reset(&s->service);
        serving_changed(s);
        break;
    }
    ef_manifest_free(manifest);
}

/* Applies wanted slots (taken; NULL entries: absent) as one persisted
 * change: the whole new state, last_seq included, is saved before any slot
 * acts, so a crash leaves either the old decision or the new one. */
static int apply_change(struct deploy *d, struct ef_slot *wants[EF_SLOT_COUNT], int64_t seq,
                        int64_t last_seq, enum state_phase first, bool unload_absent_shadow,
                        struct ef_manifest *manifest, const char *why)
{
    struct agent_state next, old;
    enum slot_action acts[EF_SLOT_COUNT] = {ACT_NONE};
    int rc = state_copy(&next, &d->state);
    if (rc != 0)
        goto out;
    next.last_seq = last_seq;
    for (int k = 0; k < EF_SLOT_COUNT && rc == 0; k++)
        rc = plan_slot(&next.slots[k], &wants[k], seq, first,
                       k == EF_SLOT_SHADOW && unload_absent_shadow, &acts[k]);
    if (rc == 0 && (rc = state_save(d->state_path, &next)) != 0)
        ef_error("state_save_failed", "path=%s seq=%lld error=%s", d->state_path, (long long)seq,
                 ef_errname(rc));
    if (rc != 0) {
        state_clear(&next);
        goto out;
    }
    old = d->state;
    d->state = next;
    for (int k = 0; k < EF_SLOT_COUNT; k++) {
        act_slot(&d->slots[k], acts[k], &old.slots[k], k == EF_SLOT_PRODUCTION ? manifest : NULL,
                 why);
        if (k == EF_SLOT_PRODUCTION)
            manifest = NULL;
    }
    state_clear(&old);
    deploy_gc(d);
out:
    ef_manifest_free(manifest);
    for (int k = 0; k < EF_SLOT_COUNT; k++)
        ef_slot_free(wants[k]);
    return rc;
}

/* A refused assignment is logged; the server hears of it through the
 * production slot's current version when there is one to name (a bad
 * signature is only logged: anyone can send bytes). */
static void refuse_assignment(struct deploy *d, int rc, const char *msg)
{
    char quoted[200], reason[240];
    struct slot *s = &d->slots[EF_SLOT_PRODUCTION];
    ef_warn("assignment_refused", "error=%s reason=%s", ef_errname(rc),
            ef_log_quote(msg, quoted, sizeof(quoted)));
    if (rc == EF_EBADSIG || !s->st->target)
        return;
    snprintf(reason, sizeof(reason), "refused assignment: %s", msg);
    report(s, s->st->target, state_phase_name(s->st->phase), reason);
}

int deploy_on_desired(struct deploy *d, const char *envelope, size_t len)
{
    struct ef_assignment *as = NULL;
    char msg[200] = "", why[64];
    int rc = ef_assignment_verify_parse(envelope, len, d->a->id.server_pk, &as, msg, sizeof(msg));
    if (rc != 0) {
        refuse_assignment(d, rc, msg);
        goto out;
    }
    if (strcmp(as->device_id, d->a->cfg.device_id) != 0) {
        rc = EF_EMISMATCH;
        snprintf(msg, sizeof(msg), "assignment is for device %s", as->device_id);
        refuse_assignment(d, rc, msg);
        goto out;
    }
    if (as->seq == d->state.last_seq) {
        ef_debug("assignment_current", "seq=%lld", (long long)as->seq);
        goto out;
    }
    if (as->seq < d->state.last_seq) {
        const struct ef_slot *p = as->slots[EF_SLOT_PRODUCTION];
        rc = EF_ESTALE;
        snprintf(msg, sizeof(msg), "replayed assignment seq %lld <= %lld", (long long)as->seq,
                 (long long)d->state.last_seq);
        ef_warn("assignment_refused", "error=%s reason=\"%s\"", ef_errname(rc), msg);
        report(&d->slots[EF_SLOT_PRODUCTION], p, "failed", msg);
        goto out;
    }
    ef_info("assignment_accepted", "seq=%lld previous_seq=%lld production=%s shadow=%s",
            (long long)as->seq, (long long)d->state.last_seq,
            as->slots[EF_SLOT_PRODUCTION] ? as->slots[EF_SLOT_PRODUCTION]->model : "-",
            as->slots[EF_SLOT_SHADOW] ? as->slots[EF_SLOT_SHADOW]->model : "-");
    snprintf(why, sizeof(why), "superseded by assignment seq %lld", (long long)as->seq);
    rc = apply_change(d, as->slots, as->seq, as->seq, STATE_NOTIFIED, true, NULL, why);
    for (int k = 0; k < EF_SLOT_COUNT; k++)
        as->slots[k] = NULL; /* taken by apply_change */
out:
    ef_assignment_free(as);
    return rc;
}

/* Thread pool: hashes a package's model file (work_hash), no more. */
static void after_package(uv_work_t *w, int status)
{
    struct op *op = w->data;
    struct deploy *d = op->d;
    struct ef_manifest *m = op->manifest;
    struct ef_slot *wants[EF_SLOT_COUNT] = {NULL};
    char *model = NULL, reason[OP_ERR_SIZE] = "";
    int rc = 0;
    if (!op_end(op) || status != 0) {
        ef_info("package_dropped", "dir=%s reason=\"superseded or shutting down\"", op->pkg_dir);
        goto out;
    }
    if (op->rc != 0) {
        snprintf(reason, sizeof(reason), "%s", op->err);
    } else if (strcmp(op->hex, m->sha256) != 0) {
        snprintf(reason, sizeof(reason), "artifact hash mismatch");
    } else {
        rc = save_manifest(d, m->sha256, op->pkg_manifest, op->pkg_manifest_len, op->pkg_sig);
        if (rc == 0 && !(model = sha_path(d->models_dir, m->sha256, ".model")))
            rc = EF_ENOMEM;
        if (rc == 0 && rename(op->path, model) != 0)
            rc = ef_from_errno(errno);
        if (rc == 0)
            rc = ef_fsync_dir(d->models_dir);
        if (rc != 0)
            snprintf(reason, sizeof(reason), "cannot move the package into models/: %s",
                     ef_strerror(rc));
    }
    if (reason[0]) {
        ef_warn("package_refused", "dir=%s model=%s version=%lld reason=\"%s\"", op->pkg_dir,
                m->name, (long long)m->version, reason);
        agent_report(d->a, "production", m->name, m->version, "failed", reason);
        goto out;
    }
    ef_info("package_accepted", "dir=%s model=%s version=%lld", op->pkg_dir, m->name,
            (long long)m->version);
    if (!(wants[EF_SLOT_PRODUCTION] =
              ef_slot_new(m->name, m->version, "", "", "", m->sha256, m->size, NULL)))
        goto out;
    /* Already verified: it enters the machine as staged, under no seq. */
    op->manifest = NULL;
    apply_change(d, wants, 0, d->state.last_seq, STATE_STAGED, false, m,
                 "superseded by a local package");
out:
    if (op->pkg_dir)
        remove_tree(op->pkg_dir, REMOVE_TREE_DEPTH);
    free(model);
    op_free(op);
}

/* Moves an inbox package out of the inbox into downloads/pkg-NAME-RANDOM, so
 * that no rescan hands it over twice; *out is the new path. */
static int take_package(struct deploy *d, const char *dir, char **out)
{
    const char *base = strrchr(dir, '/');
    char rnd[9];
    size_t n;
    base = base ? base + 1 : dir;
    snprintf(rnd, sizeof(rnd), "%08x", (unsigned)randombytes_random());
    n = strlen(d->downloads_dir) + strlen(base) + sizeof("/pkg--") + sizeof(rnd);
    if (!(*out = malloc(n)))
        return EF_ENOMEM;
    snprintf(*out, n, "%s/pkg-%s-%s", d->downloads_dir, base, rnd);
    if (rename(dir, *out) != 0) {
        int rc = ef_from_errno(errno);
        free(*out);
        *out = NULL;
        return rc == EF_ENOMEM ? rc : EF_EIO;
    }
    return 0;
}

int deploy_on_package(struct deploy *d, const char *dir)
{
    struct slot *s = &d->slots[EF_SLOT_PRODUCTION];
    struct op *op = NULL;
    struct ef_manifest *m = NULL;
    char *taken = NULL, *mpath = NULL, *spath = NULL, why[200] = "", quoted[200];
    int rc = take_package(d, dir, &taken);
    if (rc != 0) {
        ef_warn("package_refused", "dir=%s reason=\"cannot move it out of the inbox: %s\"", dir,
                ef_strerror(rc));
        goto out;
    }
    if (!(op = op_new(s, OP_PACKAGE)) || !(mpath = ef_path_join(taken, "manifest.json")) ||
        !(spath = ef_path_join(taken, "manifest.sig")) ||
        !(op->path = ef_path_join(taken, "model"))) {
        rc = EF_ENOMEM;
        goto out;
    }
    if ((rc = ef_read_file(mpath, EF_MANIFEST_MAX_BYTES, &op->pkg_manifest,
                           &op->pkg_manifest_len)) != 0 ||
        (rc = ef_read_file(spath, SIG_MAX_BYTES, &op->pkg_sig, NULL)) != 0) {
        snprintf(why, sizeof(why), "manifest.json or manifest.sig unreadable: %s", ef_strerror(rc));
        goto out;
    }
    if ((rc = ef_manifest_verify_parse(op->pkg_manifest, op->pkg_manifest_len, op->pkg_sig,
                                       d->a->id.release_pk, &m, why, sizeof(why))) != 0)
        goto out;
    if ((rc = check_manifest(d, NULL, m, why, sizeof(why))) != 0) {
        /* Verified, so its name can be trusted and reported. */
        agent_report(d->a, "production", m->name, m->version, "failed", why);
        goto out;
    }
    const struct ef_slot *t = s->st->target;
    if (t && strcmp(t->model, m->name) == 0 && t->version == m->version &&
        strcmp(t->sha256, m->sha256) == 0 &&
        (state_phase_in_progress(s->st->phase) || s->st->phase == STATE_COMMITTED)) {
        ef_info("package_current", "dir=%s model=%s version=%lld state=%s", dir, m->name,
                (long long)m->version, state_phase_name(s->st->phase));
        goto out;
    }
    op->manifest = m;
    m = NULL;
    if ((rc = queue_work(op, work_hash, after_package)) != 0) {
        snprintf(why, sizeof(why), "cannot queue work on the thread pool");
        goto out;
    }
    /* after_package runs on this loop, so not before we return; the thread
     * never reads pkg_dir. */
    op->pkg_dir = taken;
    taken = NULL;
    op = NULL;
out:
    if (rc != 0 && why[0])
        ef_warn("package_refused", "dir=%s error=%s reason=%s", dir, ef_errname(rc),
                ef_log_quote(why, quoted, sizeof(quoted)));
    if (taken)
        remove_tree(taken, REMOVE_TREE_DEPTH);
    ef_manifest_free(m);
    op_free(op);
    free(taken);
    free(mpath);
    free(spath);
    return rc;
}

/* ---- opening: serve what was committed, resume what was under way ----- */

/* Loads the committed model of a slot synchronously: the loop is not serving
 * yet. Its manifest is verified again and its file hashed again, so a file
 * damaged or replaced while the agent was down never serves. */
static int load_committed(struct slot *s, char *why, size_t why_size)
{
    struct deploy *d = s->d;
    const struct ef_slot *c = s->st->committed;
    struct ef_manifest *m = NULL;
    char *path = NULL, hex[EF_HEX256_SIZE];
    int rc = load_saved_manifest(d, c, &m, why, why_size);
    if (rc != 0)
        goto out;
    if (!(path = sha_path(d->models_dir, c->sha256, ".model"))) {
        rc = EF_ENOMEM;
        snprintf(why, why_size, "out of memory");
        goto out;
    }
    if ((rc = ef_sha256_file_hex(path, hex)) != 0) {
        snprintf(why, why_size, "model file unreadable: %s", ef_strerror(rc));
        goto out;
    }
    if (strcmp(hex, c->sha256) != 0) {
        rc = EF_EHASH;
        snprintf(why, why_size, "artifact hash mismatch");
        goto out;
    }
    rc = model_load(d->a->backends, m, path, &s->serving, why, why_size);
out:
    if (rc == 0) {
        ef_info("deploy_serving", "slot=%s model=%s version=%lld", slot_name(s), c->model,
                (long long)c->version);
        serving_changed(s);
    }
    ef_manifest_free(m);
    free(path);
    return rc;
}

static void recover_slot(struct slot *s)
{
    struct state_slot *st = s->st;
    char why[200], reason[240];
    if (st->committed && load_committed(s, why, sizeof(why)) != 0) {
        ef_error("committed_model_unusable", "slot=%s model=%s version=%lld reason=\"%s\"",
                 slot_name(s), st->committed->model, (long long)st->committed->version, why);
        snprintf(reason, sizeof(reason), "committed model unusable: %s", why);
        /* Not served, and no longer committed, so that an assignment naming
         * it deploys it again; when nothing else is under way and we know
         * where it came from, fetch it again now. */
        bool refetch = st->phase == STATE_COMMITTED && st->committed->manifest_url[0];
        ef_slot_free(st->committed);
        st->committed = NULL;
        if (refetch)
            slot_enter(s, STATE_DOWNLOADING, reason);
        else if (st->phase == STATE_COMMITTED)
            slot_enter(s, STATE_FAILED, reason);
        else
            (void)state_save(s->d->state_path, &s->d->state);
    }
    switch (st->phase) {
    case STATE_NOTIFIED:
    case STATE_DOWNLOADING:
        slot_run(s);
        break;
    case STATE_VERIFYING:
    case STATE_STAGED:
    case STATE_SELF_TEST:
        slot_enter(s, STATE_VERIFYING, "resumed after a restart");
        slot_run(s);
        break;
    case STATE_ACTIVE:
        /* Killed during the trial: the candidate was never committed, and
         * the committed model (loaded above) serves again. Resume, never a
         * half model active: back before staged, so the artifact is hashed
         * again, self-tested again and given a whole new trial. */
        slot_enter(s, STATE_VERIFYING, "restarted during the trial");
        slot_run(s);
        break;
    default:
        break;
    }
}

static void on_timer_closed(uv_handle_t *h)
{
    struct slot *s = h->data;
    s->d->handles_open--;
    deploy_maybe_free(s->d);
}

static void deploy_maybe_free(struct deploy *d)
{
    if (!d->closing || d->handles_open > 0 || d->ops)
        return;
    state_clear(&d->state);
    free(d->state_path);
    free(d->models_dir);
    free(d->downloads_dir);
    free(d);
}

int deploy_open(struct agent *a, struct deploy **out)
{
    struct deploy *d = calloc(1, sizeof(*d));
    int rc = EF_ENOMEM;
    *out = NULL;
    if (!d)
        goto out;
    d->a = a;
    state_init(&d->state);
    if (!(d->state_path = ef_path_join(a->cfg.data_dir, "state.json")) ||
        !(d->models_dir = ef_path_join(a->cfg.data_dir, "models")) ||
        !(d->downloads_dir = ef_path_join(a->cfg.data_dir, "downloads")))
        goto out;
    if ((rc = ef_mkdir_p(d->models_dir, 0700)) != 0 ||
        (rc = ef_mkdir_p(d->downloads_dir, 0700)) != 0) {
        ef_error("deploy_open", "data_dir=%s error=%s", a->cfg.data_dir, ef_errname(rc));
        rc = EF_EIO;
        goto out;
    }
    rc = state_load(d->state_path, &d->state);
    if (rc == EF_EPARSE)
        rc = 0; /* set aside and logged by state_load: a fresh device */
    if (rc != 0)
        goto out;
    for (int k = 0; k < EF_SLOT_COUNT; k++) {
        struct slot *s = &d->slots[k];
        s->d = d;
        s->kind = (enum ef_slot_kind)k;
        s->st = &d->state.slots[k];
        s->prev_p99_ms = -1;
        ef_quantile_reset(&s->trial);
        ef_quantile_reset(&s->service);
        uv_timer_init(agent_loop(a), &s->retry_timer);
        uv_timer_init(agent_loop(a), &s->trial_timer);
        s->retry_timer.data = s->trial_timer.data = s;
        d->handles_open += 2;
    }
    ef_info("deploy_open", "state=%s last_seq=%lld", d->state_path, (long long)d->state.last_seq);
    gc_dir(d, d->models_dir, true);
    gc_dir(d, d->downloads_dir, true);
    for (int k = 0; k < EF_SLOT_COUNT; k++)
        recover_slot(&d->slots[k]);
    *out = d;
    d = NULL;
out:
    if (d) {
        /* Only reached before any timer exists: free at once. */
        d->closing = true;
        deploy_maybe_free(d);
    }
    return rc;
}

void deploy_close(struct deploy *d)
{
    if (!d || d->closing)
        return;
    d->closing = true;
    /* Thread-pool jobs not yet started are cancelled (their after callback
     * runs with UV_ECANCELED); HTTP requests come back when the client is
     * freed. Either way the op is freed then, and the deploy with the last. */
    for (struct op *op = d->ops; op; op = op->next)
        if (op->kind == OP_VERIFY || op->kind == OP_SELF_TEST || op->kind == OP_PACKAGE)
            uv_cancel((uv_req_t *)&op->work);
    for (int k = 0; k < EF_SLOT_COUNT; k++) {
        struct slot *s = &d->slots[k];
        model_unref(s->serving);
        model_unref(s->last_good);
        s->serving = s->last_good = NULL;
        slot_forget_manifest(s);
        uv_close((uv_handle_t *)&s->retry_timer, on_timer_closed);
        uv_close((uv_handle_t *)&s->trial_timer, on_timer_closed);
    }
    deploy_maybe_free(d);
}

/* ---- queries ---------------------------------------------------------- */

struct model *deploy_serving(struct deploy *d, enum ef_slot_kind slot)
{
    return d && slot < EF_SLOT_COUNT ? d->slots[slot].serving : NULL;
}

void deploy_observe(struct deploy *d, enum ef_slot_kind slot, bool ok, double latency_ms)
{
    if (!d || slot >= EF_SLOT_COUNT)
        return;
    struct slot *s = &d->slots[slot];
    if (s->trial_on) {
        s->trial_requests++;
        s->trial_errors += ok ? 0 : 1;
        (void)ef_quantile_record(&s->trial, latency_ms);
    } else if (s->serving) {
        (void)ef_quantile_record(&s->service, latency_ms);
    }
}

void deploy_report_current(struct deploy *d)
{
    for (int k = 0; k < EF_SLOT_COUNT; k++) {
        struct slot *s = &d->slots[k];
        report(s, s->st->target, state_phase_name(s->st->phase), s->st->reason);
    }
}

int64_t deploy_last_seq(const struct deploy *d)
{
    return d->state.last_seq;
}

static json_t *version_json(const struct ef_slot *t)
{
    return t ? json_pack("{s:s, s:I, s:s}", "model", t->model, "version", (json_int_t)t->version,
                         "sha256", t->sha256)
             : json_null();
}

json_t *deploy_describe(const struct deploy *d)
{
    json_t *slots = json_object();
    for (int k = 0; slots && k < EF_SLOT_COUNT; k++) {
        const struct slot *s = &d->slots[k];
        json_t *trial =
            s->trial_on
                ? json_pack("{s:I, s:I, s:f}", "requests", (json_int_t)s->trial_requests, "errors",
                            (json_int_t)s->trial_errors, "previous_p99_ms", s->prev_p99_ms)
                : json_null();
        json_t *slot = json_pack(
            "{s:s, s:s?, s:I, s:o, s:o, s:s?, s:o}", "state", state_phase_name(s->st->phase),
            "reason", s->st->reason[0] ? s->st->reason : NULL, "seq", (json_int_t)s->st->seq,
            "target", version_json(s->st->target), "committed", version_json(s->st->committed),
            "serving", s->serving ? s->serving->id : NULL, "trial", trial);
        if (json_object_set_new(slots, ef_slot_name((enum ef_slot_kind)k), slot) != 0) {
            json_decref(slots);
            slots = NULL;
        }
    }
    return slots
               ? json_pack("{s:I, s:o}", "last_seq", (json_int_t)d->state.last_seq, "slots", slots)
               : NULL;
}
