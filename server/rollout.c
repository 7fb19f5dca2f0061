/*
 * rollout.c - the rollout engine thread and the operator's actions on
 * rollouts: starting rings, assigning late joiners, applying the policy,
 * breach, rollback and abort.
 */
#include "server/rollout.h"
#include "server/assign.h"
#include "server/db.h"
#include "server/db_fleet.h"
#include "server/db_registry.h"
#include "server/db_rollouts.h"
#include "server/db_telemetry.h"
#include "server/mqtt.h"
#include "server/rollout_policy.h"
#include "server/server.h"
#include "server/ticker.h"
#include "common/clock.h"
#include "common/ef_error.h"
#include "common/json_util.h"
#include "common/log.h"
#include "common/manifest.h"
#include "common/topic.h"

#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TICK_MS_DEFAULT 1000
#define NEWS_MAX        (DB_ROLLOUT_MAX_RINGS + 2)     /* state changes of one transaction */
#define STEP_MOVES_MAX  (3 * DB_ROLLOUT_MAX_RINGS + 3) /* ring changes one tick may make */

struct rollout_engine {
    struct server *srv;    /* borrowed */
    pthread_mutex_t lock;  /* serializes steps and actions: one rollout change at a time */
    struct ticker *ticker; /* the thread, kicked by start and resume; NULL when ticked by hand */
};

/* A state change stored but not yet told: logged and published after the
 * transaction that stored it commits. */
struct news {
    int ring; /* index into rings, or -1 for the rollout itself */
    char from[DB_ROLLOUT_STATE_SIZE];
    char to[DB_ROLLOUT_STATE_SIZE];
    char reason[DB_ROLLOUT_REASON_SIZE];
};

/* One rollout loaded for a step or an action, with the engine's lock held. */
struct step {
    struct rollout_engine *e;
    struct server *srv;
    struct db_rollout r; /* as stored, kept current by the *_store functions */
    struct rollout_policy policy;
    struct db_version v;                 /* the rollout's version */
    char class[DB_CLASS_SIZE];           /* its manifest's device class, "" for any */
    char rollout_id[DB_ROLLOUT_ID_SIZE]; /* the id as assignments carry it */
    int64_t now;                         /* Unix ms, this step's time */
    bool broken;                         /* the version or the policy cannot be used */
    size_t news_count;
    struct news news[NEWS_MAX];
};

static const char *const action_names[] = {
    [ROLLOUT_START] = "start", [ROLLOUT_PAUSE] = "pause",       [ROLLOUT_RESUME] = "resume",
    [ROLLOUT_ABORT] = "abort", [ROLLOUT_ROLLBACK] = "rollback",
};

const char *rollout_action_name(enum rollout_action action)
{
    return action_names[action];
}

/* The device class v's manifest is for ("" for any) into class. EF_EINVAL
 * when the stored manifest does not parse. */
static int version_class(const struct db_version *v, char class[DB_CLASS_SIZE])
{
    struct ef_manifest *m = NULL;
    char msg[128] = "";
    int rc = v->manifest ? ef_manifest_parse(v->manifest, v->manifest_len, &m, msg, sizeof(msg))
                         : EF_EINVAL;
    if (rc == 0)
        snprintf(class, DB_CLASS_SIZE, "%s", m->device_class ? m->device_class : "");
    else
        ef_error("rollout_manifest", "model=%s version=%lld message=\"%s\"", v->model,
                 (long long)v->version, msg);
    ef_manifest_free(m);
    return rc == 0 ? 0 : EF_EINVAL;
}

/* Loads rollout id into *s. A version or policy that cannot be used only
 * sets s->broken: an action such as abort must still work. EF_ENOENT,
 * EF_ENOMEM, EF_EDB. */
static int step_load(struct rollout_engine *e, int64_t id, struct step *s)
{
    json_t *policy = NULL;
    char msg[160] = "";
    int rc;
    memset(s, 0, sizeof(*s));
    s->e = e;
    s->srv = e->srv;
    s->now = ef_now_ms();
    snprintf(s->rollout_id, sizeof(s->rollout_id), "%lld", (long long)id);
    if ((rc = db_rollout_get(s->srv->db, id, &s->r)) != 0 ||
        (rc = db_version_get_by_id(s->srv->db, s->r.version_id, &s->v)) != 0)
        goto out;
    policy = json_loads(s->r.policy, JSON_REJECT_DUPLICATES, NULL);
    if (!policy || rollout_policy_parse(policy, &s->policy, msg, sizeof(msg)) != 0) {
        ef_error("rollout_policy", "rollout=%lld message=\"%s\"", (long long)id, msg);
        s->broken = true;
    }
    if (version_class(&s->v, s->class) != 0)
        s->broken = true;
out:
    json_decref(policy);
    return rc;
}

static void step_clear(struct step *s)
{
    db_rollout_clear(&s->r);
    db_version_clear(&s->v);
}

static bool state_is(const char *state, const char *name)
{
    return strcmp(state, name) == 0;
}

/* Remembers a change for step_announce. */
static void news_add(struct step *s, int ring, const char *from, const char *to, const char *reason)
{
    struct news *n;
    /* Every transaction is followed by step_announce or step_forget. */
    assert(s->news_count < NEWS_MAX);
    n = &s->news[s->news_count++];
    n->ring = ring;
    snprintf(n->from, sizeof(n->from), "%s", from);
    snprintf(n->to, sizeof(n->to), "%s", to);
    snprintf(n->reason, sizeof(n->reason), "%s", reason ? reason : "");
}

/* Publishes one change on the rollout event topic (QoS 1, not retained);
 * a failed publish is logged: the state is stored either way. */
static void publish(struct step *s, const struct news *n)
{
    char topic[EF_TOPIC_SIZE], ts[EF_TIME_STR_SIZE];
    char *text = NULL;
    json_t *doc;
    int rc = EF_ENOMEM;
    ef_time_format(s->now, ts, sizeof(ts));
    doc = json_pack("{s:I, s:s, s:I, s:s, s:s}", "rollout", (json_int_t)s->r.id, "model",
                    s->r.model, "version", (json_int_t)s->r.version, "state", s->r.state, "ts", ts);
    if (doc && n->ring >= 0 &&
        (json_object_set_new(doc, "ring", json_string(s->r.rings[n->ring].name)) != 0 ||
         json_object_set_new(doc, "ring_state", json_string(n->to)) != 0))
        goto out;
    if (doc && n->reason[0] && json_object_set_new(doc, "reason", json_string(n->reason)) != 0)
        goto out;
    if (!doc || !(text = ef_json_dump(doc)))
        goto out;
    if ((rc = ef_topic_event(topic, sizeof(topic), "rollout")) == 0)
        rc = mqtt_publish(s->srv->mqtt, topic, text, strlen(text), 1, false);
out:
    if (rc != 0)
        ef_warn("rollout_event_failed", "rollout=%lld error=%s", (long long)s->r.id,
                ef_errname(rc));
    free(text);
    json_decref(doc);
}

/* Logs and publishes the changes the last transaction committed. */
static void step_announce(struct step *s)
{
    char reason[DB_ROLLOUT_REASON_SIZE + 8];
    for (size_t i = 0; i < s->news_count; i++) {
        const struct news *n = &s->news[i];
        ef_log_quote(n->reason[0] ? n->reason : "-", reason, sizeof(reason));
        if (n->ring < 0)
            ef_info("rollout_state", "rollout=%lld model=%s version=%lld from=%s to=%s reason=%s",
                    (long long)s->r.id, s->r.model, (long long)s->r.version, n->from, n->to,
                    reason);
        else
            ef_info("ring_state",
                    "rollout=%lld model=%s version=%lld ring=%s position=%lld from=%s to=%s "
                    "reason=%s",
                    (long long)s->r.id, s->r.model, (long long)s->r.version,
                    s->r.rings[n->ring].name, (long long)s->r.rings[n->ring].position, n->from,
                    n->to, reason);
        publish(s, n);
    }
    s->news_count = 0;
}

/* Stores the rollout's move to state `to` (reason may be NULL) and keeps
 * s->r current. As db_rollout_set_state. */
static int rollout_store(struct step *s, const char *to, const char *reason)
{
    char from[DB_ROLLOUT_STATE_SIZE];
    int rc = db_rollout_set_state(s->srv->db, s->r.id, s->r.state, to, reason, s->now);
    if (rc != 0)
        return rc;
    snprintf(from, sizeof(from), "%s", s->r.state);
    snprintf(s->r.state, sizeof(s->r.state), "%s", to);
    snprintf(s->r.reason, sizeof(s->r.reason), "%s", reason ? reason : "");
    news_add(s, -1, from, to, reason);
    return 0;
}

/* Stores ring g's move to state with reason (may be NULL) and keeps g
 * current. As db_rollout_ring_set_state. */
static int ring_store(struct step *s, struct db_rollout_ring *g, const char *state,
                      const char *reason)
{
    char from[DB_ROLLOUT_STATE_SIZE];
    int rc = db_rollout_ring_set_state(s->srv->db, s->r.id, g->position, state, reason, s->now);
    if (rc != 0)
        return rc;
    snprintf(from, sizeof(from), "%s", g->state);
    snprintf(g->state, sizeof(g->state), "%s", state);
    snprintf(g->reason, sizeof(g->reason), "%s", reason ? reason : "");
    if (state_is(state, "running")) {
        g->started_at = s->now;
        g->soak_started_at = 0;
    }
    if (state_is(state, "soaking"))
        g->soak_started_at = s->now;
    g->finished_at = state_is(state, "succeeded") || state_is(state, "failed") ? s->now : 0;
    news_add(s, (int)(g - s->r.rings), from, state, reason);
    return 0;
}

/* Ends a transaction of *_store calls: announces them once committed. On
 * failure s no longer matches the database, and the caller ends its step. */
static int step_commit(struct step *s, int rc)
{
    if ((rc = db_tx_end(s->srv->db, rc)) == 0)
        step_announce(s);
    s->news_count = 0;
    return rc;
}

/* One store outside any other transaction. */
static int rollout_move(struct step *s, const char *to, const char *reason)
{
    int rc = db_tx_begin(s->srv->db);
    if (rc != 0)
        return rc;
    return step_commit(s, rollout_store(s, to, reason));
}

static int ring_move(struct step *s, struct db_rollout_ring *g, const char *state,
                     const char *reason)
{
    int rc = db_tx_begin(s->srv->db);
    if (rc != 0)
        return rc;
    return step_commit(s, ring_store(s, g, state, reason));
}

/* Inside a transaction: every ring still running or soaking fails with
 * reason (the rollout is ending). */
static int rings_close(struct step *s, const char *reason)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < s->r.ring_count; i++) {
        struct db_rollout_ring *g = &s->r.rings[i];
        if (state_is(g->state, "running") || state_is(g->state, "soaking"))
            rc = ring_store(s, g, "failed", reason);
    }
    return rc;
}

/* The rollout's current ring: the first not succeeded; NULL when all are. */
static struct db_rollout_ring *current_ring(struct step *s)
{
    for (size_t i = 0; i < s->r.ring_count; i++)
        if (!state_is(s->r.rings[i].state, "succeeded"))
            return &s->r.rings[i];
    return NULL;
}

/* Gives the rollout's version to every device of ring g that is tracked
 * but lacks this rollout's assignment (a ring just started, a late joiner,
 * a device someone assigned something else) and has no verdict yet.
 * EF_EINVAL when the version cannot be assigned at all; a device that went
 * away is skipped, one of another class marked failed. */
static int ring_assign_missing(struct step *s, const struct db_rollout_ring *g)
{
    struct db_rollout_device *d = NULL;
    size_t n = 0, issued = 0;
    int rc = db_rollout_devices(s->srv->db, s->r.id, g->ring_id, &d, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (d[i].assigned || d[i].final)
            continue;
        rc = assign_version(s->srv, d[i].device_id, s->r.slot, &s->v, s->rollout_id, NULL);
        if (rc == 0) {
            issued++;
        } else if (rc == EF_ENOENT) {
            rc = 0; /* decommissioned meanwhile: no longer counted */
        } else if (rc == EF_EMISMATCH) {
            ef_warn("rollout_device_class", "rollout=%lld device=%s", (long long)s->r.id,
                    d[i].device_id);
            rc = db_rollout_device_finish(s->srv->db, s->r.id, d[i].device_id, "failed",
                                          "device class does not match the version");
        } else if (rc == EF_ECONFLICT && s->r.slot == EF_SLOT_SHADOW) {
            ef_warn("rollout_shadow_alone", "rollout=%lld device=%s", (long long)s->r.id,
                    d[i].device_id);
            rc = db_rollout_device_finish(s->srv->db, s->r.id, d[i].device_id, "failed",
                                          "no production model to run a shadow beside");
        }
    }
    if (issued > 0)
        ef_info("rollout_assigned", "rollout=%lld ring=%s devices=%zu", (long long)s->r.id, g->name,
                issued);
    free(d);
    return rc;
}

/* Brings ring g's devices up to date: starts a pending ring (its devices
 * recorded and the stage running, in one transaction), records late
 * joiners, then assigns whoever lacks the version. */
static int ring_sync(struct step *s, struct db_rollout_ring *g)
{
    const char *class = s->class[0] ? s->class : NULL;
    int rc;
    if (state_is(g->state, "pending")) {
        if ((rc = db_tx_begin(s->srv->db)) != 0)
            return rc;
        rc = db_rollout_track(s->srv->db, s->r.id, g->ring_id, class, s->now);
        if (rc == 0)
            rc = ring_store(s, g, "running", NULL);
        rc = step_commit(s, rc);
    } else {
        rc = db_rollout_track(s->srv->db, s->r.id, g->ring_id, class, s->now);
    }
    return rc == 0 ? ring_assign_missing(s, g) : rc;
}

/* True for the actions after which a device has finished its deployment. */
static bool action_finished(enum db_action a)
{
    return a == DB_ACTION_COMMITTED || a == DB_ACTION_FAILED || a == DB_ACTION_ROLLED_BACK;
}

/* Counts ring g, reads its telemetry since it started and decides; the
 * devices still unfinished at the deadline are marked failed (timeout). */
static int ring_evaluate(struct step *s, const struct db_rollout_ring *g,
                         struct rollout_decision *out)
{
    struct db_rollout_device *d = NULL;
    struct ring_telemetry t = {0};
    struct rollout_ring_view view = {0};
    int64_t counts[DB_ACTION_COUNT];
    size_t n = 0, timed_out = 0;
    int rc;
    if ((rc = db_rollout_devices(s->srv->db, s->r.id, g->ring_id, &d, &n)) != 0 ||
        (rc = db_telemetry_ring_stats(s->srv->db, g->ring_id, s->r.model, s->r.version,
                                      g->started_at, &t)) != 0)
        goto out;
    view.devices = db_rollout_count(d, n, g->ring_id, counts);
    view.committed = counts[DB_ACTION_COMMITTED];
    view.failed = counts[DB_ACTION_FAILED] + counts[DB_ACTION_ROLLED_BACK];
    view.soaking = state_is(g->state, "soaking");
    view.running_ms = s->now > g->started_at ? s->now - g->started_at : 0;
    view.soaking_ms = s->now > g->soak_started_at ? s->now - g->soak_started_at : 0;
    view.telemetry = &t;
    rollout_policy_evaluate(&s->policy, &view, out);
    for (size_t i = 0; rc == 0 && out->timed_out && i < n; i++) {
        if (action_finished(d[i].action))
            continue;
        rc = db_rollout_device_timeout(s->srv->db, s->r.id, d[i].device_id, s->now);
        timed_out++;
    }
    if (timed_out > 0)
        ef_info("ring_timeout", "rollout=%lld ring=%s devices=%zu", (long long)s->r.id, g->name,
                timed_out);
out:
    free(d);
    return rc;
}

/* What give_back does with the devices. */
enum give_back_mode {
    GIVE_BACK_ROLLBACK, /* every device: rolled_back */
    GIVE_BACK_ABORT,    /* devices that did not commit the version: cancelled */
};

/* Gives the rollout's devices their previous committed version back (a new
 * assignment when their slot wants something else) and records the verdict.
 * A device with no previous version is left as it is, with a note; one
 * that went away is skipped. Repeating it after a failure is harmless.
 * EF_EDB, EF_ENOMEM, EF_EINVAL (a previous version that cannot be issued). */
static int give_back(struct step *s, enum give_back_mode mode)
{
    const char *verdict = mode == GIVE_BACK_ROLLBACK ? "rolled_back" : "cancelled";
    enum db_action done = mode == GIVE_BACK_ROLLBACK ? DB_ACTION_ROLLED_BACK : DB_ACTION_CANCELLED;
    struct db_rollout_device *d = NULL;
    struct db_version prev = {0};
    size_t n = 0, reassigned = 0, kept = 0;
    int rc = db_rollout_devices(s->srv->db, s->r.id, 0, &d, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if ((mode == GIVE_BACK_ABORT && d[i].action == DB_ACTION_COMMITTED) ||
            (d[i].final && d[i].action == done))
            continue;
        if (d[i].previous_version_id == 0 && s->r.slot == EF_SLOT_SHADOW) {
            /* A shadow slot that was empty before the rollout is emptied. */
            if ((rc = assign_shadow_clear(s->srv, d[i].device_id, NULL)) == EF_ENOENT) {
                rc = 0;
                continue;
            }
            if (rc == 0)
                rc = db_rollout_device_finish(s->srv->db, s->r.id, d[i].device_id, verdict, NULL);
            reassigned++;
            continue;
        }
        if (d[i].previous_version_id == 0) {
            ef_warn("rollout_no_previous_version", "rollout=%lld device=%s action=%s",
                    (long long)s->r.id, d[i].device_id, db_action_name(d[i].action));
            rc = db_rollout_device_finish(s->srv->db, s->r.id, d[i].device_id,
                                          d[i].final ? db_action_name(d[i].action) : NULL,
                                          "no previous version: left as it is");
            kept++;
            continue;
        }
        if (d[i].slot_version_id != d[i].previous_version_id) {
            if (prev.id != d[i].previous_version_id) {
                db_version_clear(&prev);
                if ((rc = db_version_get_by_id(s->srv->db, d[i].previous_version_id, &prev)) != 0)
                    break;
            }
            rc = assign_version(s->srv, d[i].device_id, s->r.slot, &prev, s->rollout_id, NULL);
            if (rc == EF_ENOENT) {
                rc = 0;
                continue;
            }
            if (rc == EF_EMISMATCH) {
                ef_warn("rollout_previous_class", "rollout=%lld device=%s", (long long)s->r.id,
                        d[i].device_id);
                rc = db_rollout_device_finish(s->srv->db, s->r.id, d[i].device_id,
                                              d[i].final ? db_action_name(d[i].action) : NULL,
                                              "previous version is for another device class");
                kept++;
                continue;
            }
            if (rc != 0)
                break;
            reassigned++;
        }
        rc = db_rollout_device_finish(s->srv->db, s->r.id, d[i].device_id, verdict, NULL);
    }
    ef_info(mode == GIVE_BACK_ROLLBACK ? "rollout_rollback" : "rollout_cancel",
            "rollout=%lld devices=%zu reassigned=%zu kept=%zu error=%s", (long long)s->r.id, n,
            reassigned, kept, ef_errname(rc));
    db_version_clear(&prev);
    free(d);
    return rc;
}

/* Ends the rollout after its devices got their previous versions back, in
 * one transaction: the breached ring (may be NULL) fails with
 * breach_reason, the other open rings fail, the rollout moves to state. */
static int step_end(struct step *s, struct db_rollout_ring *breached, const char *breach_reason,
                    const char *state, const char *reason)
{
    int rc = db_tx_begin(s->srv->db);
    if (rc != 0)
        return rc;
    if (breached)
        rc = ring_store(s, breached, "failed", breach_reason);
    if (rc == 0)
        rc = rings_close(s, state_is(state, "aborted") ? "aborted" : "rolled back");
    if (rc == 0)
        rc = rollout_store(s, state, reason);
    return step_commit(s, rc);
}

/* A breach of ring g: the ring fails and, as the policy says, the rollout
 * pauses or rolls back the rings it reached. */
static int breach(struct step *s, struct db_rollout_ring *g, const char *why)
{
    char reason[DB_ROLLOUT_REASON_SIZE], ring_reason[DB_ROLLOUT_REASON_SIZE];
    int rc;
    snprintf(ring_reason, sizeof(ring_reason), "%s", why);
    snprintf(reason, sizeof(reason), "ring %.64s: %.119s", g->name, ring_reason);
    if (s->policy.on_breach == ROLLOUT_ON_BREACH_PAUSE) {
        if ((rc = db_tx_begin(s->srv->db)) != 0)
            return rc;
        rc = ring_store(s, g, "failed", ring_reason);
        if (rc == 0)
            rc = rollout_store(s, "paused", reason);
        return step_commit(s, rc);
    }
    if ((rc = give_back(s, GIVE_BACK_ROLLBACK)) != 0)
        return rc;
    return step_end(s, g, ring_reason, "rolled_back", reason);
}

/* One step of a running rollout: rings advance as far as they can in this
 * tick. Every branch stores before it assigns, and repeats harmlessly. */
static int step_run(struct step *s)
{
    struct db_rollout_ring *g;
    struct rollout_decision d;
    int rc = 0;
    if (s->broken) {
        rc = rollout_move(s, "failed", "the version's manifest or the policy cannot be used");
        goto out;
    }
    for (int moves = 0; moves < STEP_MOVES_MAX; moves++) {
        if (!(g = current_ring(s))) {
            rc = rollout_move(s, "succeeded", NULL);
            goto out;
        }
        /* Only a crash between a ring's failure and the rollout's pause
         * or rollback leaves a running rollout with a failed ring. */
        if (state_is(g->state, "failed")) {
            rc = breach(s, g, g->reason[0] ? g->reason : "ring failed");
            goto out;
        }
        if ((rc = ring_sync(s, g)) != 0 || (rc = ring_evaluate(s, g, &d)) != 0 ||
            d.verdict == ROLLOUT_CONTINUE)
            goto out;
        if (d.verdict == ROLLOUT_BREACH) {
            rc = breach(s, g, d.reason);
            goto out;
        }
        /* Success keeps why it was reached; an empty ring says so. */
        if (d.verdict == ROLLOUT_SUCCEED && state_is(g->state, "soaking"))
            snprintf(d.reason, sizeof(d.reason), "%.*s", (int)sizeof(d.reason) - 1, g->reason);
        rc = ring_move(s, g, d.verdict == ROLLOUT_SOAK ? "soaking" : "succeeded", d.reason);
        if (rc != 0)
            goto out;
    }
out:
    if (rc == EF_EINVAL)
        rc = rollout_move(s, "failed", "the version cannot be assigned");
    return rc;
}

/* Runs one step of rollout id under the engine's lock. */
static int step_rollout(struct rollout_engine *e, int64_t id)
{
    struct step *s = calloc(1, sizeof(*s));
    int rc = EF_ENOMEM;
    if (!s)
        return rc;
    pthread_mutex_lock(&e->lock);
    if ((rc = step_load(e, id, s)) == 0 && state_is(s->r.state, "running"))
        rc = step_run(s);
    pthread_mutex_unlock(&e->lock);
    step_clear(s);
    free(s);
    return rc;
}

int rollout_engine_tick(struct rollout_engine *e)
{
    int64_t *ids = NULL;
    size_t n = 0;
    int first = 0;
    int rc = db_rollout_ids(e->srv->db, NULL, "running", &ids, &n);
    if (rc != 0) {
        ef_warn("rollout_tick_failed", "error=%s", ef_errname(rc));
        return rc;
    }
    /* Oldest first: ids come newest first. */
    for (size_t i = n; i-- > 0;) {
        rc = step_rollout(e, ids[i]);
        if (rc != 0) {
            ef_warn("rollout_step_failed", "rollout=%lld error=%s", (long long)ids[i],
                    ef_errname(rc));
            if (first == 0)
                first = rc;
        }
    }
    free(ids);
    return first;
}

/* Wakes the thread for a tick now (a rollout started or resumed). */
static void engine_kick(struct rollout_engine *e)
{
    ticker_kick(e->ticker);
}

/* Resume: the current ring runs again with its clock restarted, after its
 * failed devices lost the timeout verdict and got the version again. */
static int resume(struct step *s)
{
    struct db_rollout_ring *g = current_ring(s);
    struct db_rollout_device *d = NULL;
    size_t n = 0;
    int rc = db_tx_begin(s->srv->db);
    if (rc != 0)
        return rc;
    if (g)
        rc = ring_store(s, g, "running", NULL);
    if (rc == 0)
        rc = rollout_store(s, "running", NULL);
    if ((rc = step_commit(s, rc)) != 0 || !g || s->broken)
        return rc;
    rc = db_rollout_devices(s->srv->db, s->r.id, g->ring_id, &d, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (d[i].action != DB_ACTION_FAILED && d[i].action != DB_ACTION_ROLLED_BACK)
            continue;
        if (d[i].final)
            rc = db_rollout_device_finish(s->srv->db, s->r.id, d[i].device_id, NULL, NULL);
        /* A slot that failed or rolled back is issued again: a retry. */
        if (rc == 0)
            rc = assign_version(s->srv, d[i].device_id, s->r.slot, &s->v, s->rollout_id, NULL);
        if (rc == EF_ENOENT || rc == EF_EMISMATCH || rc == EF_ECONFLICT)
            rc = 0;
    }
    free(d);
    return rc;
}

/* Whether action is allowed from state, per rollout.h. */
static bool action_allowed(enum rollout_action action, const char *state)
{
    switch (action) {
    case ROLLOUT_START:
        return state_is(state, "draft");
    case ROLLOUT_PAUSE:
        return state_is(state, "running");
    case ROLLOUT_RESUME:
        return state_is(state, "paused");
    case ROLLOUT_ABORT:
        return state_is(state, "draft") || state_is(state, "running") || state_is(state, "paused");
    case ROLLOUT_ROLLBACK:
        return state_is(state, "running") || state_is(state, "paused") ||
               state_is(state, "failed") || state_is(state, "succeeded");
    }
    return false;
}

/* rollout_act with the lock held; reason (may be NULL) overrides the
 * reason an abort records. */
static int act_locked(struct rollout_engine *e, int64_t id, enum rollout_action action,
                      const char *reason, char *msg, size_t msg_size)
{
    struct step *s = calloc(1, sizeof(*s));
    int rc = EF_ENOMEM;
    if (!s)
        goto out;
    if ((rc = step_load(e, id, s)) != 0)
        goto out;
    if (!action_allowed(action, s->r.state)) {
        rc = EF_ECONFLICT;
        if (msg)
            snprintf(msg, msg_size, "rollout %lld is %s; %s is not allowed from there",
                     (long long)id, s->r.state, rollout_action_name(action));
        goto out;
    }
    switch (action) {
    case ROLLOUT_START:
        rc = rollout_move(s, "running", NULL);
        if (rc == EF_EEXIST && msg)
            snprintf(msg, msg_size, "another rollout of model %s is running or paused", s->r.model);
        break;
    case ROLLOUT_PAUSE:
        rc = rollout_move(s, "paused", "paused by an operator");
        break;
    case ROLLOUT_RESUME:
        rc = resume(s);
        break;
    case ROLLOUT_ABORT:
        if (!state_is(s->r.state, "draft") && (rc = give_back(s, GIVE_BACK_ABORT)) != 0)
            break;
        rc = step_end(s, NULL, NULL, "aborted", reason ? reason : "aborted by an operator");
        break;
    case ROLLOUT_ROLLBACK:
        if ((rc = give_back(s, GIVE_BACK_ROLLBACK)) == 0)
            rc = step_end(s, NULL, NULL, "rolled_back", "rolled back by an operator");
        break;
    }
    if (rc == 0 && (action == ROLLOUT_START || action == ROLLOUT_RESUME))
        engine_kick(e);
out:
    if (s)
        step_clear(s);
    free(s);
    return rc;
}

int rollout_act(struct rollout_engine *e, int64_t id, enum rollout_action action, char *msg,
                size_t msg_size)
{
    pthread_mutex_lock(&e->lock);
    int rc = act_locked(e, id, action, NULL, msg, msg_size);
    pthread_mutex_unlock(&e->lock);
    if (rc != 0 && rc != EF_ECONFLICT && rc != EF_ENOENT && rc != EF_EEXIST)
        ef_warn("rollout_action_failed", "rollout=%lld action=%s error=%s", (long long)id,
                rollout_action_name(action), ef_errname(rc));
    return rc;
}

int rollout_create(struct rollout_engine *e, const struct rollout_spec *spec, int64_t *id,
                   char *msg, size_t msg_size)
{
    int64_t active = 0;
    int rc;
    pthread_mutex_lock(&e->lock);
    rc = db_rollout_active(e->srv->db, spec->model, spec->slot, &active);
    if (rc == 0 && !spec->supersede) {
        rc = EF_EEXIST;
        if (msg)
            snprintf(msg, msg_size, "%s rollout %lld of model %s is running or paused",
                     ef_slot_name(spec->slot), (long long)active, spec->model);
        goto out;
    }
    if (rc == 0)
        rc = act_locked(e, active, ROLLOUT_ABORT, "superseded", msg, msg_size);
    else if (rc == EF_ENOENT)
        rc = 0;
    if (rc != 0)
        goto out;
    rc = db_rollout_create(e->srv->db, spec->version_id, spec->slot, spec->ring_ids,
                           spec->ring_count, spec->policy, ef_now_ms(), id);
    if (rc == 0)
        ef_info("rollout_created", "rollout=%lld model=%s version_id=%lld slot=%s rings=%zu%s",
                (long long)*id, spec->model, (long long)spec->version_id, ef_slot_name(spec->slot),
                spec->ring_count, spec->supersede && active ? " superseded" : "");
out:
    pthread_mutex_unlock(&e->lock);
    return rc;
}

/* rollout_promote with the lock held, s loaded: the new rollout and the
 * promotion are one transaction, its start the next. */
static int promote_locked(struct step *s, int64_t *promoted, char *msg, size_t msg_size)
{
    int64_t ring_ids[DB_ROLLOUT_MAX_RINGS], active = 0, id = 0;
    int rc;
    if (s->r.slot != EF_SLOT_SHADOW || !state_is(s->r.state, "succeeded") || s->r.promoted_to) {
        if (msg && s->r.slot != EF_SLOT_SHADOW)
            snprintf(msg, msg_size,
                     "rollout %lld fills the production slot; only a shadow "
                     "rollout is promoted",
                     (long long)s->r.id);
        else if (msg && s->r.promoted_to)
            snprintf(msg, msg_size, "rollout %lld was promoted already, to rollout %lld",
                     (long long)s->r.id, (long long)s->r.promoted_to);
        else if (msg)
            snprintf(msg, msg_size, "rollout %lld is %s; promote needs it succeeded",
                     (long long)s->r.id, s->r.state);
        return EF_ECONFLICT;
    }
    rc = db_rollout_active(s->srv->db, s->r.model, EF_SLOT_PRODUCTION, &active);
    if (rc == 0) {
        if (msg)
            snprintf(msg, msg_size, "production rollout %lld of model %s is running or paused",
                     (long long)active, s->r.model);
        return EF_EEXIST;
    }
    if (rc != EF_ENOENT)
        return rc;
    for (size_t i = 0; i < s->r.ring_count; i++)
        ring_ids[i] = s->r.rings[i].ring_id;
    if ((rc = db_tx_begin(s->srv->db)) != 0)
        return rc;
    rc = db_rollout_create(s->srv->db, s->r.version_id, EF_SLOT_PRODUCTION, ring_ids,
                           s->r.ring_count, s->r.policy, s->now, &id);
    if (rc == 0)
        rc = db_rollout_set_promoted(s->srv->db, s->r.id, id);
    if ((rc = db_tx_end(s->srv->db, rc)) != 0)
        return rc;
    ef_info("rollout_promoted", "rollout=%lld model=%s version=%lld production_rollout=%lld",
            (long long)s->r.id, s->r.model, (long long)s->r.version, (long long)id);
    *promoted = id;
    return act_locked(s->e, id, ROLLOUT_START, NULL, msg, msg_size);
}

int rollout_promote(struct rollout_engine *e, int64_t id, int64_t *promoted, char *msg,
                    size_t msg_size)
{
    struct step *s = calloc(1, sizeof(*s));
    int rc = EF_ENOMEM;
    if (!s)
        return rc;
    pthread_mutex_lock(&e->lock);
    if ((rc = step_load(e, id, s)) == 0)
        rc = promote_locked(s, promoted, msg, msg_size);
    pthread_mutex_unlock(&e->lock);
    if (rc != 0 && rc != EF_ECONFLICT && rc != EF_ENOENT && rc != EF_EEXIST)
        ef_warn("rollout_promote_failed", "rollout=%lld error=%s", (long long)id, ef_errname(rc));
    step_clear(s);
    free(s);
    return rc;
}

/* The ticker's tick. */
static int engine_tick(void *arg)
{
    return rollout_engine_tick(arg);
}

int rollout_engine_open(struct server *srv, struct rollout_engine **out)
{
    struct rollout_engine *e = calloc(1, sizeof(*e));
    *out = NULL;
    if (!e)
        return EF_ENOMEM;
    e->srv = srv;
    pthread_mutex_init(&e->lock, NULL);
    *out = e;
    return 0;
}

int rollout_engine_start(struct server *srv, struct rollout_engine **out)
{
    struct rollout_engine *e = NULL;
    int64_t *ids = NULL;
    size_t running = 0;
    int rc = rollout_engine_open(srv, &e);
    if (rc != 0)
        goto out;
    /* Under the lock, as engine_kick reads e->ticker under it. */
    pthread_mutex_lock(&e->lock);
    rc = ticker_start(srv->cfg.rollout_tick_ms ? srv->cfg.rollout_tick_ms : TICK_MS_DEFAULT,
                      engine_tick, e, &e->ticker);
    pthread_mutex_unlock(&e->lock);
    if (rc != 0)
        goto out;
    /* Only for the log: the rollouts a restart resumes. */
    if (db_rollout_ids(srv->db, NULL, "running", &ids, &running) == 0)
        ef_info("rollout_engine_started", "tick_ms=%u running=%zu",
                srv->cfg.rollout_tick_ms ? srv->cfg.rollout_tick_ms : TICK_MS_DEFAULT, running);
    *out = e;
    e = NULL;
out:
    free(ids);
    rollout_engine_stop(e);
    return rc;
}

void rollout_engine_stop(struct rollout_engine *e)
{
    if (!e)
        return;
    ticker_stop(e->ticker);
    pthread_mutex_destroy(&e->lock);
    free(e);
}
