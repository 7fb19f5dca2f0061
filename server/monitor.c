/*
 * monitor.c - the monitor thread: trigger rules into alerts, and the
 * actions alerts take (retrain event and command, pause, rollback).
 */
#include "server/monitor.h"
#include "server/db.h"
#include "server/db_collection.h"
#include "server/db_monitor.h"
#include "server/db_rollouts.h"
#include "server/db_telemetry.h"
#include "server/mqtt.h"
#include "server/rollout.h"
#include "server/server.h"
#include "server/ticker.h"
#include "server/trigger_eval.h"
#include "common/clock.h"
#include "common/ef_error.h"
#include "common/json_util.h"
#include "common/log.h"
#include "common/topic.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define CHILDREN_MAX 32  /* retrain commands running at once */
#define REASON_SIZE  192 /* "drift mean 0.41 above 0.25 over 4 devices" */
#define ENV_VARS     7   /* the EF_* variables a retrain command gets */

struct monitor {
    struct server *srv;           /* borrowed */
    pthread_mutex_t lock;         /* serializes ticks */
    struct ticker *ticker;        /* the thread; NULL when ticked by hand */
    pid_t children[CHILDREN_MAX]; /* retrain commands not yet reaped */
    size_t child_count;
};

/* What one firing needs to say and do; strings are the rule's. */
struct firing {
    const struct db_trigger *t;
    int64_t version;
    int64_t alert_id;
    struct trigger_result res;
    char reason[REASON_SIZE];
    int64_t now;
};

/* Reaps the retrain commands that have ended and logs how. */
static void children_reap(struct monitor *m)
{
    for (size_t i = 0; i < m->child_count;) {
        int status = 0;
        pid_t pid = waitpid(m->children[i], &status, WNOHANG);
        if (pid == 0) {
            i++;
            continue;
        }
        if (pid < 0)
            ef_warn("retrain_command_lost", "pid=%d error=%s", (int)m->children[i],
                    strerror(errno));
        else if (WIFEXITED(status))
            (WEXITSTATUS(status) == 0
                 ? ef_log(EF_LOG_INFO, "retrain_command_exited", "pid=%d status=0", (int)pid)
                 : ef_log(EF_LOG_WARN, "retrain_command_exited", "pid=%d status=%d", (int)pid,
                          WEXITSTATUS(status)));
        else
            ef_warn("retrain_command_killed", "pid=%d signal=%d", (int)pid,
                    WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        m->children[i] = m->children[--m->child_count];
    }
}

/* Publishes doc (borrowed) on edgefleet/v1/events/{kind} at QoS 1. */
static int publish(struct monitor *m, const char *kind, const json_t *doc)
{
    char topic[EF_TOPIC_SIZE];
    char *text = ef_json_dump(doc);
    int rc = text ? ef_topic_event(topic, sizeof(topic), kind) : EF_ENOMEM;
    if (rc == 0)
        rc = mqtt_publish(m->srv->mqtt, topic, text, strlen(text), 1, false);
    if (rc == 0 && m->srv->mqtt)
        atomic_fetch_add(&m->srv->stats.mqtt_publishes, 1);
    free(text);
    return rc;
}

/* Publishes the alert object of id on the alert topic; failures logged. */
static void publish_alert(struct monitor *m, int64_t id)
{
    json_t *doc = NULL;
    int rc = db_alert_json(m->srv->db, id, &doc);
    if (rc == 0)
        rc = publish(m, "alert", doc);
    if (rc != 0)
        ef_warn("alert_event_failed", "alert=%lld error=%s", (long long)id, ef_errname(rc));
    json_decref(doc);
}

/* "NAME=value" in a new string, or NULL. */
static char *env_entry(const char *name, const char *value)
{
    size_t n = strlen(name) + strlen(value) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s=%s", name, value);
    return s;
}

/* True when entry ("NAME=...") sets one of the n variables of ours. */
static bool env_ours(const char *entry, char *const *ours, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t len = (size_t)(strchr(ours[i], '=') - ours[i]) + 1;
        if (strncmp(entry, ours[i], len) == 0)
            return true;
    }
    return false;
}

/*
 * Starts cfg.retrain_command through /bin/sh -c, detached: its own process
 * group, default signal dispositions and an empty signal mask (the server's
 * threads block SIGINT and SIGTERM), stdin from /dev/null, stdout and
 * stderr to the server's stderr, and the server's environment plus the
 * EF_* variables of the doc. *pid receives its pid. EF_EBUSY (too many
 * running), EF_ENOMEM, EF_EIO (spawn failed).
 */
static int command_start(struct monitor *m, const struct firing *f, int64_t dataset_id, pid_t *pid)
{
    const struct server_config *cfg = &m->srv->cfg;
    char num[4][32], url[96];
    char *ours[ENV_VARS] = {0}, **envp = NULL;
    char *argv[] = {"sh", "-c", (char *)cfg->retrain_command, NULL};
    size_t n_env = 0, k = 0;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_t actions;
    sigset_t none, defaults;
    int rc = EF_ENOMEM, err;
    if (m->child_count == CHILDREN_MAX)
        return EF_EBUSY;
    snprintf(num[0], sizeof(num[0]), "%lld", (long long)f->version);
    if (dataset_id > 0)
        snprintf(num[1], sizeof(num[1]), "%lld", (long long)dataset_id);
    else
        num[1][0] = '\0';
    snprintf(num[2], sizeof(num[2]), "%lld", (long long)f->alert_id);
    snprintf(num[3], sizeof(num[3]), "%lld", (long long)f->t->id);
    snprintf(url, sizeof(url), "http://%s:%u", cfg->listen_host, (unsigned)cfg->listen_port);
    ours[0] = env_entry("EF_MODEL", f->t->model);
    ours[1] = env_entry("EF_VERSION", num[0]);
    ours[2] = env_entry("EF_DATASET_ID", num[1]);
    ours[3] = env_entry("EF_ALERT_ID", num[2]);
    ours[4] = env_entry("EF_TRIGGER_ID", num[3]);
    ours[5] = env_entry("EF_REASON", f->reason);
    ours[6] = env_entry("EF_SERVER_URL", url);
    for (size_t i = 0; i < ENV_VARS; i++)
        if (!ours[i])
            goto out;
    while (environ && environ[n_env])
        n_env++;
    if (!(envp = calloc(n_env + ENV_VARS + 1, sizeof(*envp))))
        goto out;
    for (size_t i = 0; i < n_env; i++)
        if (!env_ours(environ[i], ours, ENV_VARS))
            envp[k++] = environ[i];
    for (size_t i = 0; i < ENV_VARS; i++)
        envp[k++] = ours[i];
    sigemptyset(&none);
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGTERM);
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                        POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, STDERR_FILENO, STDOUT_FILENO);
    err = posix_spawn(pid, "/bin/sh", &actions, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (err != 0) {
        ef_error("retrain_command_failed", "alert=%lld error=\"%s\"", (long long)f->alert_id,
                 strerror(err));
        rc = EF_EIO;
        goto out;
    }
    m->children[m->child_count++] = *pid;
    rc = 0;
out:
    for (size_t i = 0; i < ENV_VARS; i++)
        free(ours[i]);
    free(envp);
    return rc;
}

/* The retrain action: the event, then the command. result receives what
 * happened. */
static void act_retrain(struct monitor *m, const struct firing *f, char *result, size_t size)
{
    char ts[EF_TIME_STR_SIZE];
    int64_t dataset_id = 0;
    json_t *doc = NULL;
    pid_t pid = 0;
    int rc = db_dataset_current(m->srv->db, f->t->model, &dataset_id);
    if (rc != 0) {
        ef_warn("retrain_dataset_unknown", "model=%s error=%s", f->t->model, ef_errname(rc));
        dataset_id = 0;
    }
    ef_time_format(f->now, ts, sizeof(ts));
    doc = json_pack("{s:s, s:I, s:o, s:I, s:I, s:s, s:s}", "model", f->t->model, "version",
                    (json_int_t)f->version, "dataset_id",
                    dataset_id > 0 ? json_integer(dataset_id) : json_null(), "alert_id",
                    (json_int_t)f->alert_id, "trigger_id", (json_int_t)f->t->id, "reason",
                    f->reason, "ts", ts);
    rc = doc ? publish(m, "retrain", doc) : EF_ENOMEM;
    json_decref(doc);
    if (rc == 0)
        snprintf(result, size, "event published");
    else
        snprintf(result, size, "event not published (%s)", ef_errname(rc));
    if (!m->srv->cfg.retrain_command)
        return;
    size_t used = strlen(result);
    rc = command_start(m, f, dataset_id, &pid);
    if (rc == 0) {
        ef_info("retrain_command_started", "alert=%lld pid=%d", (long long)f->alert_id, (int)pid);
        snprintf(result + used, size - used, "; command started (pid %d)", (int)pid);
    } else {
        snprintf(result + used, size - used, "; command not started (%s)", ef_errname(rc));
    }
}

/* pause_rollout and rollback: on the model's running or paused production
 * rollout. result receives what happened. */
static void act_rollout(struct monitor *m, const struct firing *f, char *result, size_t size)
{
    bool pause = f->t->action == TRIGGER_ACTION_PAUSE_ROLLOUT;
    struct db_rollout r = {0};
    char msg[160] = "";
    int64_t id = 0;
    int rc = db_rollout_active(m->srv->db, f->t->model, EF_SLOT_PRODUCTION, &id);
    if (rc == EF_ENOENT) {
        snprintf(result, size, "no running rollout");
        return;
    }
    if (rc == 0)
        rc = db_rollout_get(m->srv->db, id, &r);
    if (rc != 0) {
        snprintf(result, size, "rollout not read (%s)", ef_errname(rc));
        goto out;
    }
    if (pause && strcmp(r.state, "running") != 0) {
        snprintf(result, size, "no running rollout (rollout %lld is %s)", (long long)id, r.state);
        goto out;
    }
    if (!m->srv->rollouts) {
        snprintf(result, size, "rollout %lld not changed: no rollout engine", (long long)id);
        goto out;
    }
    rc = rollout_act(m->srv->rollouts, id, pause ? ROLLOUT_PAUSE : ROLLOUT_ROLLBACK, msg,
                     sizeof(msg));
    if (rc == 0)
        snprintf(result, size, "rollout %lld %s", (long long)id, pause ? "paused" : "rolled back");
    else
        snprintf(result, size, "rollout %lld not changed (%s%s%s)", (long long)id, ef_errname(rc),
                 msg[0] ? ": " : "", msg);
out:
    db_rollout_clear(&r);
}

/* Appends the monitor's audit row; a failure is logged. */
static void audit(struct monitor *m, int64_t now, const char *action, int64_t alert_id,
                  const char *detail)
{
    char target[32];
    snprintf(target, sizeof(target), "alert:%lld", (long long)alert_id);
    int rc = db_audit_append(m->srv->db, now, "monitor", action, target, "ok", 0, detail);
    if (rc != 0)
        ef_error("audit_failed", "action=\"%s\" error=%s", action, ef_errname(rc));
}

/* The rule holds for f->version: fires unless an alert is firing or the
 * cooldown since the last one has not passed. */
static int fire(struct monitor *m, struct firing *f)
{
    const struct db_trigger *t = f->t;
    char result[DB_ALERT_RESULT_SIZE] = "", reason_q[REASON_SIZE + 8];
    char detail[DB_ALERT_RESULT_SIZE + REASON_SIZE + 192];
    char result_q[DB_ALERT_RESULT_SIZE + 8];
    int64_t open = 0, last = 0;
    int rc = db_alert_open(m->srv->db, t->id, f->version, &open);
    if (rc == 0 || rc != EF_ENOENT)
        return rc; /* firing already, or an error */
    rc = db_alert_last_fired(m->srv->db, t->id, f->version, &last);
    if (rc == 0 && f->now - last < t->cooldown_s * 1000) {
        ef_debug("trigger_cooling_down", "trigger=%lld version=%lld last_fired=%lld",
                 (long long)t->id, (long long)f->version, (long long)last);
        return 0;
    }
    if (rc != 0 && rc != EF_ENOENT)
        return rc;
    struct db_alert_new a = {
        .trigger_id = t->id,
        .model = t->model,
        .version = f->version,
        .ring = t->ring[0] ? t->ring : NULL,
        .metric = metric_name(t->rule.metric),
        .value = f->res.value,
        .threshold = t->rule.threshold,
        .op = trigger_op_name(t->rule.op),
        .devices = f->res.devices,
        .action = trigger_action_name(t->action),
        .fired_at = f->now,
    };
    if ((rc = db_alert_create(m->srv->db, &a, &f->alert_id)) != 0)
        return rc == EF_ENOENT ? 0 : rc; /* the rule was deleted meanwhile */
    switch (t->action) {
    case TRIGGER_ACTION_RETRAIN:
        act_retrain(m, f, result, sizeof(result));
        break;
    case TRIGGER_ACTION_PAUSE_ROLLOUT:
    case TRIGGER_ACTION_ROLLBACK:
        act_rollout(m, f, result, sizeof(result));
        break;
    case TRIGGER_ACTION_NONE:
        snprintf(result, sizeof(result), "no action");
        break;
    }
    if ((rc = db_alert_set_result(m->srv->db, f->alert_id, result)) != 0)
        ef_error("alert_result_failed", "alert=%lld error=%s", (long long)f->alert_id,
                 ef_errname(rc));
    ef_warn("alert_firing",
            "alert=%lld trigger=%lld model=%s version=%lld reason=%s action=%s result=%s",
            (long long)f->alert_id, (long long)t->id, t->model, (long long)f->version,
            ef_log_quote(f->reason, reason_q, sizeof(reason_q)), trigger_action_name(t->action),
            ef_log_quote(result, result_q, sizeof(result_q)));
    snprintf(detail, sizeof(detail), "trigger:%lld %s@%lld %s; %s: %s", (long long)t->id, t->model,
             (long long)f->version, f->reason, trigger_action_name(t->action), result);
    audit(m, f->now, "alert fire", f->alert_id, detail);
    publish_alert(m, f->alert_id);
    return 0;
}

/* Resolves alert id of rule t (for version), which no longer holds. */
static int resolve(struct monitor *m, const struct db_trigger *t, int64_t id, int64_t version,
                   int64_t now)
{
    char detail[160];
    int rc = db_alert_resolve(m->srv->db, id, now);
    if (rc != 0)
        return rc == EF_ENOENT ? 0 : rc; /* resolved meanwhile (the rule was deleted) */
    ef_info("alert_resolved", "alert=%lld trigger=%lld model=%s version=%lld", (long long)id,
            (long long)t->id, t->model, (long long)version);
    snprintf(detail, sizeof(detail), "trigger:%lld %s@%lld no longer holds", (long long)t->id,
             t->model, (long long)version);
    audit(m, now, "alert resolve", id, detail);
    publish_alert(m, id);
    return 0;
}

static bool contains(const int64_t *v, size_t n, int64_t x)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == x)
            return true;
    return false;
}

/* Evaluates rule t for one version at f->now: fires when it holds.
 * *holds receives whether it does. */
static int evaluate_version(struct monitor *m, struct firing *f, bool *holds)
{
    const struct db_trigger *t = f->t;
    struct db_device_sums *sums = NULL;
    struct trigger_row *rows = NULL;
    size_t n = 0;
    /* A rule without a ring reads the windows of every ring (-1). */
    int rc =
        db_telemetry_device_sums(m->srv->db, t->model, f->version, t->ring_id ? t->ring_id : -1,
                                 f->now - t->window_s * 1000, &sums, &n);
    *holds = false;
    if (rc != 0)
        goto out;
    if (n > 0 && !(rows = calloc(n, sizeof(*rows)))) {
        rc = EF_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        snprintf(rows[i].device, sizeof(rows[i].device), "%s", sums[i].device_id);
        rows[i].sums = sums[i].sums;
    }
    if ((rc = trigger_evaluate(&t->rule, rows, n, &f->res)) != 0)
        goto out;
    ef_debug("trigger_evaluated", "trigger=%lld version=%lld value=%g devices=%lld holds=%d",
             (long long)t->id, (long long)f->version, f->res.value, (long long)f->res.devices,
             f->res.holds);
    if ((*holds = f->res.holds)) {
        snprintf(f->reason, sizeof(f->reason), "%s %s %.4g %s %.4g over %lld device%s",
                 metric_name(t->rule.metric), trigger_aggregation_name(t->rule.aggregation),
                 f->res.value, trigger_op_name(t->rule.op), t->rule.threshold,
                 (long long)f->res.devices, f->res.devices == 1 ? "" : "s");
        rc = fire(m, f);
    }
out:
    free(rows);
    free(sums);
    return rc;
}

/* Evaluates rule t at now for every version of its model with windows in
 * its window, then resolves its alerts for versions where it no longer
 * holds (or that sent no windows). */
static int evaluate_rule(struct monitor *m, const struct db_trigger *t, int64_t now)
{
    struct db_open_alert *open = NULL;
    int64_t *versions = NULL, *holding = NULL;
    size_t n = 0, n_open = 0, n_holding = 0;
    int rc, first = 0;
    if ((rc = db_monitor_versions(m->srv->db, t->model, t->ring_id ? t->ring_id : -1,
                                  now - t->window_s * 1000, &versions, &n)) != 0)
        goto out;
    if (n > 0 && !(holding = malloc(n * sizeof(*holding)))) {
        rc = EF_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        struct firing f = {.t = t, .version = versions[i], .now = now};
        bool holds = false;
        rc = evaluate_version(m, &f, &holds);
        if (holds)
            holding[n_holding++] = f.version;
        if (rc != 0 && first == 0)
            first = rc;
    }
    if ((rc = db_alerts_open(m->srv->db, t->id, &open, &n_open)) != 0)
        goto out;
    for (size_t i = 0; i < n_open; i++) {
        if (contains(holding, n_holding, open[i].version))
            continue;
        rc = resolve(m, t, open[i].id, open[i].version, now);
        if (rc != 0 && first == 0)
            first = rc;
    }
    rc = first;
out:
    if (rc != 0)
        ef_error("trigger_failed", "trigger=%lld model=%s error=%s", (long long)t->id, t->model,
                 ef_errname(rc));
    free(open);
    free(holding);
    free(versions);
    return rc;
}

int monitor_tick_at(struct monitor *m, int64_t now_ms)
{
    struct db_trigger *rules = NULL;
    size_t n = 0;
    int rc, first = 0;
    pthread_mutex_lock(&m->lock);
    children_reap(m);
    if ((rc = db_triggers_enabled(m->srv->db, &rules, &n)) != 0) {
        ef_error("monitor_tick_failed", "error=%s", ef_errname(rc));
        first = rc;
    }
    for (size_t i = 0; i < n; i++) {
        rc = evaluate_rule(m, &rules[i], now_ms);
        if (rc != 0 && first == 0)
            first = rc;
    }
    pthread_mutex_unlock(&m->lock);
    free(rules);
    return first;
}

int monitor_tick(struct monitor *m)
{
    return monitor_tick_at(m, ef_now_ms());
}

/* The ticker's tick. */
static int monitor_tick_now(void *arg)
{
    return monitor_tick(arg);
}

int monitor_open(struct server *srv, struct monitor **out)
{
    struct monitor *m = calloc(1, sizeof(*m));
    *out = NULL;
    if (!m)
        return EF_ENOMEM;
    m->srv = srv;
    pthread_mutex_init(&m->lock, NULL);
    *out = m;
    return 0;
}

int monitor_start(struct server *srv, struct monitor **out)
{
    struct monitor *m = NULL;
    int rc = monitor_open(srv, &m);
    if (rc != 0)
        return rc;
    rc = ticker_start(srv->cfg.monitor_tick_ms ? srv->cfg.monitor_tick_ms : MONITOR_TICK_MS_DEFAULT,
                      monitor_tick_now, m, &m->ticker);
    if (rc != 0) {
        monitor_stop(m);
        return rc;
    }
    ef_info("monitor_started", "tick_ms=%u retrain_command=%s",
            srv->cfg.monitor_tick_ms ? srv->cfg.monitor_tick_ms : MONITOR_TICK_MS_DEFAULT,
            srv->cfg.retrain_command ? "yes" : "no");
    *out = m;
    return 0;
}

void monitor_stop(struct monitor *m)
{
    if (!m)
        return;
    ticker_stop(m->ticker);
    pthread_mutex_lock(&m->lock);
    children_reap(m);
    pthread_mutex_unlock(&m->lock);
    pthread_mutex_destroy(&m->lock);
    free(m);
}
