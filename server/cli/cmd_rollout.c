/*
 * cmd_rollout.c - `edgefleet rollout create|start|pause|resume|abort|rollback|
 * show|list`: one model version moved ring by ring under a policy
 * (docs/rollouts.md), and a view of its progress that can follow it live.
 */
#include "server/cli/cmd_rollout.h"
#include "common/clock.h"
#include "common/ef_error.h"
#include "common/json_util.h"
#include "common/topic.h"
#include "server/cli/commands.h"
#include "server/cli/output.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PATH_SIZE      128        /* "/api/v1/rollouts/" ID "/rollback" */
#define NUMBER_MAX     32         /* characters in a share, a gate maximum or an interval */
#define GATE_PART_MAX  32         /* characters in one part of a gate expression */
#define COUNTS_SIZE    256        /* bytes of a ring's counts text */
#define NEEDS_SIZE     160        /* bytes of a ring's thresholds text */
#define INTERVAL_MIN_S 0.1        /* seconds; --interval bounds */
#define INTERVAL_MAX_S 3600.0     /* seconds */
#define COUNT_MAX      1000000000 /* devices; larger counts from the server are capped */
#define SECONDS_MAX    1e12       /* seconds; longer spans from the server are capped */

/* The defaults of docs/rollouts.md, shown when the server leaves a policy
 * member out. */
#define DEFAULT_SUCCESS    1.0
#define DEFAULT_ERROR      0.0
#define DEFAULT_DEADLINE_S 600.0

/* Rollout states, for --state. */
static const char *const rollout_states[] = {"draft",  "running", "paused",     "succeeded",
                                             "failed", "aborted", "rolled_back"};
#define ROLLOUT_STATE_COUNT (sizeof(rollout_states) / sizeof(rollout_states[0]))

/* The metrics a gate may watch; a share may also be written as a percentage. */
static const struct gate_metric {
    const char *name;
    bool share; /* the maximum is a share 0..1, else a non-negative number */
} gate_metrics[] = {{"error_rate", true}, {"latency_p99_ms", false}};
#define GATE_METRIC_COUNT (sizeof(gate_metrics) / sizeof(gate_metrics[0]))

/* --- parsing the command line ------------------------------------------ */

/*
 * Parses an unsigned decimal ("12", "0.5", ".5") and, when percent is not
 * NULL, an optional trailing '%' reported there. strtod alone would take
 * signs, blanks, exponents, hex, "inf" and "nan".
 */
static int decimal_parse(const char *s, double *out, bool *percent)
{
    char buf[NUMBER_MAX + 1];
    size_t len = strlen(s), digits = 0, dots = 0;
    if (percent) {
        *percent = len > 0 && s[len - 1] == '%';
        len -= *percent ? 1 : 0;
    }
    if (len == 0 || len > NUMBER_MAX)
        return EF_EINVAL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] >= '0' && s[i] <= '9')
            digits++;
        else if (s[i] == '.')
            dots++;
        else
            return EF_EINVAL;
    }
    if (digits == 0 || dots > 1)
        return EF_EINVAL;
    memcpy(buf, s, len);
    buf[len] = '\0';
    *out = strtod(buf, NULL);
    return 0;
}

int rollout_share_parse(const char *s, double *out, char *msg, size_t msg_size)
{
    bool percent = false;
    double v = 0;
    if (decimal_parse(s, &v, &percent) != 0 || v > (percent ? 100.0 : 1.0)) {
        snprintf(msg, msg_size, "'%s' is not a share: give 0..1 or a percentage such as 90%%", s);
        return EF_EINVAL;
    }
    *out = percent ? v / 100.0 : v;
    return 0;
}

/* Copies s[0..n) without surrounding blanks into buf; false when too long. */
static bool copy_trimmed(const char *s, size_t n, char buf[GATE_PART_MAX + 1])
{
    while (n > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n > GATE_PART_MAX)
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return true;
}

int rollout_gate_parse(const char *s, json_t **out, char *msg, size_t msg_size)
{
    char metric[GATE_PART_MAX + 1], max_text[GATE_PART_MAX + 1], min_text[GATE_PART_MAX + 1];
    const struct gate_metric *m = NULL;
    double max = 0;
    int64_t min_inferences = 0;
    bool percent = false;
    json_t *gate = NULL;
    int rc = EF_EINVAL;
    *out = NULL;
    const char *lt = strchr(s, '<');
    const char *value = lt ? lt + 1 + (lt[1] == '=') : NULL;
    const char *at = value ? strchr(value, '@') : NULL;
    if (!lt || !copy_trimmed(s, (size_t)(lt - s), metric) ||
        !copy_trimmed(value, at ? (size_t)(at - value) : strlen(value), max_text) ||
        (at && !copy_trimmed(at + 1, strlen(at + 1), min_text))) {
        snprintf(msg, msg_size, "'%s' is not METRIC<=MAX[@MIN_INFERENCES]", s);
        goto out;
    }
    for (size_t i = 0; i < GATE_METRIC_COUNT && !m; i++)
        if (strcmp(gate_metrics[i].name, metric) == 0)
            m = &gate_metrics[i];
    if (!m) {
        snprintf(msg, msg_size, "unknown metric '%s' in '%s' (error_rate or latency_p99_ms)",
                 metric, s);
        goto out;
    }
    if (decimal_parse(max_text, &max, m->share ? &percent : NULL) != 0 ||
        (m->share && max > (percent ? 100.0 : 1.0))) {
        snprintf(msg, msg_size, "'%s': the maximum of %s is %s", s, m->name,
                 m->share ? "a share 0..1 or a percentage such as 5%"
                          : "a number of milliseconds >= 0");
        goto out;
    }
    if (at && (args_int(min_text, 1, INT64_MAX, &min_inferences, msg, msg_size) != 0)) {
        snprintf(msg, msg_size,
                 "'%s': @N, the inferences a gate needs to decide, is an integer "
                 ">= 1",
                 s);
        goto out;
    }
    rc = EF_ENOMEM;
    gate = json_pack("{s:s, s:f}", "metric", m->name, "max", percent ? max / 100.0 : max);
    if (!gate ||
        (at && json_object_set_new(gate, "min_inferences", json_integer(min_inferences)) != 0))
        goto out;
    *out = gate;
    gate = NULL;
    rc = 0;
out:
    json_decref(gate);
    return rc;
}

/* Splits "A,B,C" into a new array of ring names, each valid and listed once. */
static int rings_parse(const char *s, json_t **out, char *msg, size_t msg_size)
{
    char name[ARGS_NAME_SIZE];
    json_t *rings = json_array();
    int rc = 0;
    *out = NULL;
    if (!rings) {
        rc = EF_ENOMEM;
        goto out;
    }
    for (const char *p = s;; p++) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0 || len >= sizeof(name)) {
            snprintf(msg, msg_size, "'%s' is not a comma-separated list of ring names", s);
            rc = EF_EINVAL;
            goto out;
        }
        memcpy(name, p, len);
        name[len] = '\0';
        if (!ef_name_valid(name)) {
            snprintf(msg, msg_size, "'%s' is not a valid ring name (1-64 of a-z 0-9 . _ -)", name);
            rc = EF_EINVAL;
            goto out;
        }
        for (size_t i = 0; i < json_array_size(rings); i++) {
            if (strcmp(json_string_value(json_array_get(rings, i)), name) == 0) {
                snprintf(msg, msg_size, "ring '%s' is listed twice", name);
                rc = EF_EINVAL;
                goto out;
            }
        }
        if (json_array_append_new(rings, json_string(name)) != 0) {
            rc = EF_ENOMEM;
            goto out;
        }
        if (!comma)
            break;
        p = comma;
    }
    *out = rings;
    rings = NULL;
out:
    json_decref(rings);
    return rc;
}

/* Writes "FLAG: inner" into msg; returns EF_EINVAL. */
static int flag_error(char *msg, size_t msg_size, const char *flag, const char *inner)
{
    snprintf(msg, msg_size, "%s: %s", flag, inner);
    return EF_EINVAL;
}

/* Adds an integer flag in [min, max] to policy as key. */
static int policy_int(json_t *policy, const char *key, const char *flag, const char *text,
                      int64_t min, char *msg, size_t msg_size)
{
    char inner[200];
    int64_t v = 0;
    if (args_int(text, min, INT32_MAX, &v, inner, sizeof(inner)) != 0)
        return flag_error(msg, msg_size, flag, inner);
    return json_object_set_new(policy, key, json_integer(v)) == 0 ? 0 : EF_ENOMEM;
}

/* Adds a share flag to policy as key. */
static int policy_share(json_t *policy, const char *key, const char *flag, const char *text,
                        char *msg, size_t msg_size)
{
    char inner[200];
    double v = 0;
    if (rollout_share_parse(text, &v, inner, sizeof(inner)) != 0)
        return flag_error(msg, msg_size, flag, inner);
    return json_object_set_new(policy, key, json_real(v)) == 0 ? 0 : EF_ENOMEM;
}

/* Builds the policy object from the flags that were given (new reference). */
static int policy_build(const struct rollout_create_args *a, json_t **out, char *msg,
                        size_t msg_size)
{
    char inner[200];
    json_t *policy = json_object(), *gates = NULL, *gate = NULL;
    int rc = 0;
    *out = NULL;
    if (!policy) {
        rc = EF_ENOMEM;
        goto out;
    }
    if ((a->success &&
         (rc = policy_share(policy, "success", "--success", a->success, msg, msg_size)) != 0) ||
        (a->error && (rc = policy_share(policy, "error", "--error", a->error, msg, msg_size)) != 0))
        goto out;
    if ((a->min_devices && (rc = policy_int(policy, "min_devices", "--min-devices", a->min_devices,
                                            1, msg, msg_size)) != 0) ||
        (a->soak &&
         (rc = policy_int(policy, "soak_s", "--soak", a->soak, 0, msg, msg_size)) != 0) ||
        (a->deadline &&
         (rc = policy_int(policy, "deadline_s", "--deadline", a->deadline, 1, msg, msg_size)) != 0))
        goto out;
    if (a->on_breach) {
        if (strcmp(a->on_breach, "pause") != 0 && strcmp(a->on_breach, "rollback") != 0) {
            rc = flag_error(msg, msg_size, "--on-breach", "give pause or rollback");
            goto out;
        }
        if (json_object_set_new(policy, "on_breach", json_string(a->on_breach)) != 0) {
            rc = EF_ENOMEM;
            goto out;
        }
    }
    if (a->ngates > 0) {
        if (!(gates = json_array())) {
            rc = EF_ENOMEM;
            goto out;
        }
        for (size_t i = 0; i < a->ngates; i++) {
            if ((rc = rollout_gate_parse(a->gates[i], &gate, inner, sizeof(inner))) != 0) {
                if (rc == EF_EINVAL)
                    flag_error(msg, msg_size, "--gate", inner);
                goto out;
            }
            if (json_array_append_new(gates, gate) != 0) {
                gate = NULL;
                rc = EF_ENOMEM;
                goto out;
            }
            gate = NULL;
        }
        if (json_object_set(policy, "gates", gates) != 0) {
            rc = EF_ENOMEM;
            goto out;
        }
    }
    *out = policy;
    policy = NULL;
out:
    json_decref(policy);
    json_decref(gates);
    return rc;
}

int rollout_create_body(const struct rollout_create_args *a, json_t **out, char *msg,
                        size_t msg_size)
{
    char name[ARGS_NAME_SIZE], inner[200];
    int64_t version = 0;
    json_t *body = NULL, *rings = NULL, *policy = NULL;
    int rc = 0;
    *out = NULL;
    if (!a->target) {
        snprintf(msg, msg_size, "which model? give NAME@VERSION");
        rc = EF_EINVAL;
        goto out;
    }
    if ((rc = args_name_version(a->target, true, name, &version, msg, msg_size)) != 0)
        goto out;
    if (!a->rings) {
        snprintf(msg, msg_size, "--rings A,B,C is required");
        rc = EF_EINVAL;
        goto out;
    }
    if ((rc = rings_parse(a->rings, &rings, inner, sizeof(inner))) != 0) {
        if (rc == EF_EINVAL)
            flag_error(msg, msg_size, "--rings", inner);
        goto out;
    }
    if ((rc = policy_build(a, &policy, msg, msg_size)) != 0)
        goto out;
    if (a->slot && strcmp(a->slot, "production") != 0 && strcmp(a->slot, "shadow") != 0) {
        flag_error(msg, msg_size, "--slot", "must be production or shadow");
        rc = EF_EINVAL;
        goto out;
    }
    rc = EF_ENOMEM;
    body =
        json_pack("{s:s, s:I, s:O}", "model", name, "version", (json_int_t)version, "rings", rings);
    if (!body || (json_object_size(policy) > 0 && json_object_set(body, "policy", policy) != 0) ||
        (a->supersede && json_object_set_new(body, "supersede", json_true()) != 0) ||
        (a->slot && json_object_set_new(body, "slot", json_string(a->slot)) != 0))
        goto out;
    *out = body;
    body = NULL;
    rc = 0;
out:
    json_decref(body);
    json_decref(rings);
    json_decref(policy);
    return rc;
}

bool rollout_state_final(const char *state)
{
    static const char *const finals[] = {"succeeded", "failed", "aborted", "rolled_back"};
    for (size_t i = 0; state && i < sizeof(finals) / sizeof(finals[0]); i++)
        if (strcmp(state, finals[i]) == 0)
            return true;
    return false;
}

/* --- the readable view --------------------------------------------------- */

/* Where a device action stands in a ring's progress bar. */
enum bucket { B_COMMITTED, B_FAILED, B_ACTIVE, B_PENDING, B_COUNT };
static const char bucket_cell[B_COUNT] = {'#', 'x', '>', '.'};

/* The device actions of docs/rollouts.md, in the order the counts list them.
 * An action not listed here counts as in progress ("other"). */
static const struct {
    const char *action;
    enum bucket bucket;
} actions[] = {
    {"committed", B_COMMITTED}, {"failed", B_FAILED},   {"rolled_back", B_FAILED},
    {"cancelled", B_FAILED},    {"notified", B_ACTIVE}, {"downloading", B_ACTIVE},
    {"verifying", B_ACTIVE},    {"active", B_ACTIVE},   {"pending", B_PENDING},
};
#define ACTION_COUNT (sizeof(actions) / sizeof(actions[0]))

/* One ring's line, built before printing so the columns can be aligned. */
struct ring_view {
    char *name;                      /* printable, owned */
    char *state;                     /* printable, owned */
    char *reason;                    /* printable, owned; NULL when there is none */
    char bar[ROLLOUT_BAR_WIDTH + 3]; /* "[##x>....]" */
    char counts[COUNTS_SIZE];        /* "6/10 committed, 1 failed, 3 pending" */
    char needs[NEEDS_SIZE];          /* "need 9, breach at 1 failed, deadline in 4m10s" */
};

/* A device count from the server, capped at COUNT_MAX so the arithmetic
 * below cannot overflow; -1 when v is not a count. */
static int64_t count_of(const json_t *v)
{
    json_int_t n = json_is_integer(v) ? json_integer_value(v) : -1;
    return n < 0 ? -1 : n > COUNT_MAX ? COUNT_MAX : (int64_t)n;
}

/* The devices of a ring: the API gives a count, an array of ids would do as
 * well; -1 when neither is there. */
static int64_t ring_devices(const json_t *ring)
{
    const json_t *devices = json_object_get(ring, "devices");
    size_t ids = json_array_size(devices);
    if (json_is_array(devices))
        return ids > COUNT_MAX ? COUNT_MAX : (int64_t)ids;
    return count_of(devices);
}

/* A number member, or fallback when it is absent or not a number. */
static double number_or(const json_t *obj, const char *key, double fallback)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_number(v) ? json_number_value(v) : fallback;
}

/* Printable text of a string member, or NULL (also for "" and null). *rc
 * becomes EF_ENOMEM when the copy fails. */
static char *text_or_null(const json_t *obj, const char *key, int *rc)
{
    const json_t *v = json_object_get(obj, key);
    char *s = NULL;
    if (!json_is_string(v) || json_string_length(v) == 0)
        return NULL;
    if (!(s = output_scalar(v)))
        *rc = EF_ENOMEM;
    return s;
}

/* Appends printf output to buf (size bytes, NUL-terminated), truncating. */
static void append(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void append(char *buf, size_t size, const char *fmt, ...)
{
    size_t len = strlen(buf);
    va_list ap;
    if (len + 1 >= size)
        return;
    va_start(ap, fmt);
    vsnprintf(buf + len, size - len, fmt, ap);
    va_end(ap);
}

/* "45s", "9m32s", "2h05m". */
static void format_duration(double seconds, char *buf, size_t size)
{
    long long s = seconds > 0 ? (long long)(seconds < SECONDS_MAX ? seconds : SECONDS_MAX) : 0;
    if (s < 60)
        snprintf(buf, size, "%llds", s);
    else if (s < 3600)
        snprintf(buf, size, "%lldm%02llds", s / 60, s % 60);
    else
        snprintf(buf, size, "%lldh%02lldm", s / 3600, s % 3600 / 60);
}

/* "90%", "99.5%". */
static void format_share(double share, char *buf, size_t size)
{
    snprintf(buf, size, "%.4g%%", share * 100.0);
}

/* Fills bar with cells for n[B_COUNT] devices out of total: each bucket gets
 * its share of the width (largest remainders take the cells left over) and
 * at least one cell when it holds a device, so a single failure among many
 * still shows. */
static void draw_bar(const int64_t n[B_COUNT], int64_t total, char *bar)
{
    int cells[B_COUNT] = {0}, used = 0;
    bool topped[B_COUNT] = {false};
    bar[0] = '[';
    memset(bar + 1, ' ', ROLLOUT_BAR_WIDTH);
    bar[ROLLOUT_BAR_WIDTH + 1] = ']';
    bar[ROLLOUT_BAR_WIDTH + 2] = '\0';
    if (total <= 0)
        return;
    for (int b = 0; b < B_COUNT; b++) {
        cells[b] = (int)(n[b] * ROLLOUT_BAR_WIDTH / total);
        if (n[b] > 0 && cells[b] == 0)
            cells[b] = 1;
        used += cells[b];
    }
    /* Each non-empty bucket loses less than one cell to rounding, so there
     * is always one not yet topped up while cells are left. */
    while (used < ROLLOUT_BAR_WIDTH) {
        int pick = -1;
        for (int b = 0; b < B_COUNT; b++)
            if (n[b] > 0 && !topped[b] &&
                (pick < 0 ||
                 n[b] * ROLLOUT_BAR_WIDTH % total > n[pick] * ROLLOUT_BAR_WIDTH % total))
                pick = b;
        assert(pick >= 0);
        topped[pick] = true;
        cells[pick]++;
        used++;
    }
    /* The one-cell minimum may overfill: the widest bucket gives way. */
    while (used > ROLLOUT_BAR_WIDTH) {
        int pick = 0;
        for (int b = 1; b < B_COUNT; b++)
            if (cells[b] > cells[pick])
                pick = b;
        cells[pick]--;
        used--;
    }
    for (int b = 0, at = 1; b < B_COUNT; b++)
        for (int i = 0; i < cells[b]; i++)
            bar[at++] = bucket_cell[b];
}

/* Builds the bar and the counts text of one ring. */
static void ring_counts(const json_t *ring, struct ring_view *v)
{
    const json_t *counts = json_object_get(ring, "counts");
    int64_t n[B_COUNT] = {0}, listed = 0, other = 0, devices = ring_devices(ring);
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)counts, key, value)
    {
        int64_t c = count_of(value);
        size_t i = 0;
        if (c <= 0)
            continue;
        while (i < ACTION_COUNT && strcmp(actions[i].action, key) != 0)
            i++;
        n[i < ACTION_COUNT ? actions[i].bucket : B_ACTIVE] += c;
        other += i < ACTION_COUNT ? 0 : c;
        listed += c;
    }
    /* Devices without an action yet are pending. */
    if (devices > listed)
        n[B_PENDING] += devices - listed;
    if (devices < 0)
        devices = listed;
    int64_t total = listed > devices ? listed : devices;
    draw_bar(n, total, v->bar);
    if (total == 0) {
        /* The API counts the devices the rollout assigned: none before the
         * ring starts. */
        const char *state = ef_json_str(ring, "state");
        snprintf(v->counts, sizeof(v->counts), "%s",
                 state && strcmp(state, "pending") == 0 ? "not started" : "no devices");
        return;
    }
    snprintf(v->counts, sizeof(v->counts), "%lld/%lld committed", (long long)n[B_COMMITTED],
             (long long)devices);
    for (size_t i = 0; i < ACTION_COUNT; i++) {
        if (actions[i].bucket == B_COMMITTED || actions[i].bucket == B_PENDING)
            continue;
        int64_t c = count_of(json_object_get(counts, actions[i].action));
        if (c > 0)
            append(v->counts, sizeof(v->counts), ", %lld %s", (long long)c, actions[i].action);
    }
    if (other > 0)
        append(v->counts, sizeof(v->counts), ", %lld other", (long long)other);
    if (n[B_PENDING] > 0)
        append(v->counts, sizeof(v->counts), ", %lld pending", (long long)n[B_PENDING]);
}

/* Builds what the ring needs under the policy: committed devices for
 * success, failed devices that breach, and a running ring's deadline. */
static void ring_needs(const json_t *ring, const json_t *policy, int64_t now_ms,
                       struct ring_view *v)
{
    int64_t devices = ring_devices(ring);
    const char *state = ef_json_str(ring, "state"), *started = ef_json_str(ring, "started_at");
    int64_t started_ms = 0;
    char span[32];
    v->needs[0] = '\0';
    if (devices > 0) {
        /* The server compares committed/devices >= success and failed/devices
         * > error; the epsilon keeps 0.7 * 10 at 7. */
        double success = fmin(fmax(number_or(policy, "success", DEFAULT_SUCCESS), 0.0), 1.0);
        double error = fmin(fmax(number_or(policy, "error", DEFAULT_ERROR), 0.0), 1.0);
        int64_t need = (int64_t)ceil(success * (double)devices - 1e-9);
        int64_t breach = (int64_t)floor(error * (double)devices + 1e-9) + 1;
        append(v->needs, sizeof(v->needs), "need %lld",
               (long long)(need < 0         ? 0
                           : need > devices ? devices
                                            : need));
        if (breach > devices)
            append(v->needs, sizeof(v->needs), ", no failure limit");
        else
            append(v->needs, sizeof(v->needs), ", breach at %lld failed", (long long)breach);
    }
    if (state && strcmp(state, "running") == 0 && started &&
        ef_time_parse(started, &started_ms) == 0) {
        double left_s =
            ((double)started_ms / 1000.0 + number_or(policy, "deadline_s", DEFAULT_DEADLINE_S)) -
            (double)now_ms / 1000.0;
        format_duration(left_s, span, sizeof(span));
        append(v->needs, sizeof(v->needs), "%sdeadline %s%s", v->needs[0] ? ", " : "",
               left_s > 0 ? "in " : "passed", left_s > 0 ? span : "");
    }
}

/* Writes the policy line and, when there are gates, the gates line. */
static void write_policy(FILE *f, const json_t *policy)
{
    const json_t *gates = json_object_get(policy, "gates"), *gate;
    const char *breach = ef_json_str(policy, "on_breach");
    char a[32], b[32];
    size_t i;
    if (!json_is_object(policy))
        return;
    format_share(number_or(policy, "success", DEFAULT_SUCCESS), a, sizeof(a));
    format_share(number_or(policy, "error", DEFAULT_ERROR), b, sizeof(b));
    fprintf(f, "policy: success >= %s, error > %s", a, b);
    if (number_or(policy, "min_devices", 1) > 1)
        fprintf(f, " once %.0f finished", number_or(policy, "min_devices", 1));
    format_duration(number_or(policy, "soak_s", 0), a, sizeof(a));
    format_duration(number_or(policy, "deadline_s", DEFAULT_DEADLINE_S), b, sizeof(b));
    fprintf(f, ", soak %s, deadline %s", a, b);
    /* on_breach is one of two words; anything else is not echoed raw. */
    if (breach && (strcmp(breach, "pause") == 0 || strcmp(breach, "rollback") == 0))
        fprintf(f, ", on breach %s", breach);
    fputc('\n', f);
    if (json_array_size(gates) == 0)
        return;
    fputs("gates:", f);
    json_array_foreach(gates, i, gate)
    {
        const char *metric = ef_json_str(gate, "metric");
        bool known = false;
        for (size_t m = 0; metric && m < GATE_METRIC_COUNT; m++)
            known = known || strcmp(metric, gate_metrics[m].name) == 0;
        fprintf(f, "%s %s <= %g", i > 0 ? "," : "", known ? metric : "?",
                number_or(gate, "max", 0));
        /* One inference is the default and says nothing. */
        int64_t min_inferences = count_of(json_object_get(gate, "min_inferences"));
        if (min_inferences > 1)
            fprintf(f, " (min %lld inferences)", (long long)min_inferences);
    }
    fputc('\n', f);
}

static size_t max_size(size_t a, size_t b)
{
    return a > b ? a : b;
}

int rollout_view_write(FILE *f, const json_t *rollout, int64_t now_ms)
{
    const json_t *rings = json_object_get(rollout, "rings");
    const json_t *policy = json_object_get(rollout, "policy");
    static const char *const times[] = {"created_at", "started_at", "finished_at"};
    size_t nrings = json_array_size(rings), wname = 0, wstate = 0, wcounts = 0;
    struct ring_view *views = NULL;
    char *id = output_scalar(json_object_get(rollout, "id"));
    char *model = output_scalar(json_object_get(rollout, "model"));
    char *version = output_scalar(json_object_get(rollout, "version"));
    char *state = output_scalar(json_object_get(rollout, "state"));
    char *reason = NULL;
    int rc = 0;
    if (!id || !model || !version || !state) {
        rc = EF_ENOMEM;
        goto out;
    }
    reason = text_or_null(rollout, "reason", &rc);
    if (rc != 0)
        goto out;
    fprintf(f, "rollout %s  %s@%s%s  %s", id, model, version,
            ef_json_str(rollout, "slot") && strcmp(ef_json_str(rollout, "slot"), "shadow") == 0
                ? " (shadow)"
                : "",
            state);
    if (reason)
        fprintf(f, "  reason: %s", reason);
    if (json_is_integer(json_object_get(rollout, "promoted_to")))
        fprintf(f, "  promoted to rollout %lld",
                (long long)json_integer_value(json_object_get(rollout, "promoted_to")));
    fputc('\n', f);
    /* "created T  started T  finished T", as far as they happened. */
    size_t shown = 0;
    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
        char *t = text_or_null(rollout, times[i], &rc);
        if (t)
            fprintf(f, "%s%.*s %s", shown++ ? "  " : "", (int)(strlen(times[i]) - 3), times[i], t);
        free(t);
        if (rc != 0)
            goto out;
    }
    if (shown > 0)
        fputc('\n', f);
    write_policy(f, policy);
    if (nrings > 0 && !(views = calloc(nrings, sizeof(*views)))) {
        rc = EF_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < nrings; i++) {
        const json_t *ring = json_array_get(rings, i);
        struct ring_view *v = &views[i];
        v->name = output_scalar(json_object_get(ring, "name"));
        v->state = output_scalar(json_object_get(ring, "state"));
        v->reason = text_or_null(ring, "reason", &rc);
        if (!v->name || !v->state || rc != 0) {
            rc = EF_ENOMEM;
            goto out;
        }
        ring_counts(ring, v);
        ring_needs(ring, policy, now_ms, v);
        wname = max_size(wname, strlen(v->name));
        wstate = max_size(wstate, strlen(v->state));
        wcounts = max_size(wcounts, strlen(v->counts));
    }
    for (size_t i = 0; i < nrings; i++) {
        const struct ring_view *v = &views[i];
        bool more = v->needs[0] || v->reason;
        fprintf(f, "  %-*s  %-*s  %s  %-*s", (int)wname, v->name, (int)wstate, v->state, v->bar,
                more ? (int)wcounts : 0, v->counts);
        if (v->needs[0])
            fprintf(f, "  %s", v->needs);
        if (v->reason)
            fprintf(f, "  reason: %s", v->reason);
        fputc('\n', f);
    }
    if (ferror(f))
        rc = EF_EIO;
out:
    for (size_t i = 0; views && i < nrings; i++) {
        free(views[i].name);
        free(views[i].state);
        free(views[i].reason);
    }
    free(views);
    free(id);
    free(model);
    free(version);
    free(state);
    free(reason);
    return rc;
}

/* --- the commands ---------------------------------------------------------- */

static int print_rollout(const json_t *doc)
{
    return rollout_view_write(stdout, doc, ef_now_ms());
}

/* "model@version" of a list row. */
static char *format_model(const json_t *row)
{
    char *name = output_scalar(json_object_get(row, "model"));
    char *version = output_scalar(json_object_get(row, "version"));
    char *cell = NULL;
    if (name && version) {
        size_t n = strlen(name) + strlen(version) + 2;
        if ((cell = malloc(n)))
            snprintf(cell, n, "%s@%s", name, version);
    }
    free(name);
    free(version);
    return cell;
}

/* "succeeded/all" rings of a list row. */
static char *format_rings(const json_t *row)
{
    const json_t *rings = json_object_get(row, "rings"), *ring;
    size_t i, done = 0;
    char *cell = malloc(48);
    json_array_foreach(rings, i, ring)
    {
        const char *state = ef_json_str(ring, "state");
        done += state && strcmp(state, "succeeded") == 0;
    }
    if (cell)
        snprintf(cell, 48, "%zu/%zu", done, json_array_size(rings));
    return cell;
}

/* "name (state)" of the first ring not succeeded, or NULL for "-". */
static char *format_current(const json_t *row)
{
    const json_t *rings = json_object_get(row, "rings"), *ring;
    size_t i;
    json_array_foreach(rings, i, ring)
    {
        const char *state = ef_json_str(ring, "state");
        if (state && strcmp(state, "succeeded") == 0)
            continue;
        char *name = output_scalar(json_object_get(ring, "name"));
        char *st = output_scalar(json_object_get(ring, "state"));
        char *cell = NULL;
        if (name && st) {
            size_t n = strlen(name) + strlen(st) + 4;
            if ((cell = malloc(n)))
                snprintf(cell, n, "%s (%s)", name, st);
        }
        free(name);
        free(st);
        return cell;
    }
    return NULL;
}

/* The line `create` prints: the new id and what to type next. */
static int print_created(const json_t *doc)
{
    const json_t *rings = json_object_get(doc, "rings"), *ring;
    char *id = output_scalar(json_object_get(doc, "id"));
    char *state = output_scalar(json_object_get(doc, "state"));
    char *model = format_model(doc);
    size_t i;
    int rc = 0;
    if (!id || !state || !model) {
        rc = EF_ENOMEM;
        goto out;
    }
    printf("created rollout %s (%s): %s over", id, state, model);
    json_array_foreach(rings, i, ring)
    {
        char *name = output_scalar(json_object_get(ring, "name"));
        if (!name) {
            rc = EF_ENOMEM;
            goto out;
        }
        printf("%s %s", i > 0 ? "," : "", name);
        free(name);
    }
    printf("; start it with '%s rollout start %s'\n", CLI_PROGRAM, id);
    if (ferror(stdout))
        rc = EF_EIO;
out:
    free(id);
    free(state);
    free(model);
    return rc;
}

static const struct output_col rollout_cols[] = {
    {"ID", "id", NULL},
    {"MODEL", NULL, format_model},
    {"STATE", "state", NULL},
    {"RINGS", NULL, format_rings},
    {"CURRENT", NULL, format_current},
    {"CREATED", "created_at", NULL},
    {"REASON", "reason", NULL},
};

static int print_rollouts(const json_t *doc)
{
    return output_table(stdout, json_object_get(doc, "rollouts"), rollout_cols,
                        sizeof(rollout_cols) / sizeof(rollout_cols[0]));
}

/*
 * Checks a rollout id and builds /api/v1/rollouts/ID[/verb]; prints the
 * usage error. The id must be a safe path segment (the rule of device ids),
 * which holds for numeric and textual ids alike.
 */
static bool rollout_path(struct cli *cli, const char *id, const char *verb, char path[PATH_SIZE],
                         int *status)
{
    if (!ef_device_id_valid(id)) {
        *status = cli_usage(cli, "'%s' is not a rollout id", id);
        return false;
    }
    snprintf(path, PATH_SIZE, "/api/v1/rollouts/%s%s%s", id, verb ? "/" : "", verb ? verb : "");
    return true;
}

enum {
    C_RINGS,
    C_SUCCESS,
    C_ERROR,
    C_MIN_DEVICES,
    C_SOAK,
    C_DEADLINE,
    C_GATE,
    C_ON_BREACH,
    C_SUPERSEDE,
    C_SLOT,
    C_N
};

static int rollout_create(struct cli *cli, int argc, char **argv)
{
    struct args_opt opts[C_N] = {
        [C_RINGS] = {.name = "rings", .metavar = "A,B,C"},
        [C_SUCCESS] = {.name = "success", .metavar = "P"},
        [C_ERROR] = {.name = "error", .metavar = "P"},
        [C_MIN_DEVICES] = {.name = "min-devices", .metavar = "N"},
        [C_SOAK] = {.name = "soak", .metavar = "S"},
        [C_DEADLINE] = {.name = "deadline", .metavar = "S"},
        [C_GATE] = {.name = "gate", .metavar = "EXPR", .repeat = true},
        [C_ON_BREACH] = {.name = "on-breach", .metavar = "pause|rollback"},
        [C_SUPERSEDE] = {.name = "supersede"},
        [C_SLOT] = {.name = "slot", .metavar = "production|shadow"},
    };
    const char *pos[1];
    char msg[300];
    json_t *body = NULL;
    size_t npos = 0;
    int status = CLI_EXIT_OK;
    if (!cli_parse(cli, argc, argv, opts, C_N, pos, 1, 1, &npos, &status))
        goto out;
    struct rollout_create_args a = {
        .target = pos[0],
        .rings = args_value(&opts[C_RINGS]),
        .success = args_value(&opts[C_SUCCESS]),
        .error = args_value(&opts[C_ERROR]),
        .min_devices = args_value(&opts[C_MIN_DEVICES]),
        .soak = args_value(&opts[C_SOAK]),
        .deadline = args_value(&opts[C_DEADLINE]),
        .on_breach = args_value(&opts[C_ON_BREACH]),
        .gates = opts[C_GATE].values,
        .ngates = opts[C_GATE].count,
        .supersede = opts[C_SUPERSEDE].count > 0,
        .slot = args_value(&opts[C_SLOT]),
    };
    int rc = rollout_create_body(&a, &body, msg, sizeof(msg));
    if (rc != 0) {
        status = rc == EF_ENOMEM ? cli_fail("out_of_memory", "cannot build the request")
                                 : cli_usage(cli, "%s", msg);
        goto out;
    }
    status = cli_request(cli, "POST", "/api/v1/rollouts", body, print_created);
out:
    json_decref(body);
    args_opts_release(opts, C_N);
    return status;
}

/* start, pause, resume, abort, rollback and promote: POST
 * /api/v1/rollouts/ID/VERB, the verb being the name this run function is
 * registered under. Promote answers the production rollout it started. */
static int rollout_transition(struct cli *cli, int argc, char **argv)
{
    const char *pos[1];
    char path[PATH_SIZE];
    size_t npos = 0;
    int status = CLI_EXIT_OK;
    if (cli_parse(cli, argc, argv, NULL, 0, pos, 1, 1, &npos, &status) &&
        rollout_path(cli, pos[0], cli->verb->name, path, &status))
        status = cli_request(cli, "POST", path, NULL, print_rollout);
    return status;
}

/* Sleeps ms milliseconds, resuming after signals that do not end the process. */
static void sleep_ms(int64_t ms)
{
    struct timespec left = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&left, &left) != 0 && errno == EINTR)
        ;
}

/*
 * Redraws the terminal with one answer: cursor home, clear, the view and a
 * status line. The frame is built in memory and written at once, so the
 * screen does not flicker line by line.
 */
static int draw_frame(const json_t *doc, int64_t interval_ms, bool final)
{
    char *frame = NULL, clock[16] = "";
    size_t len = 0;
    time_t now = time(NULL);
    struct tm tm;
    int rc = 0;
    FILE *f = open_memstream(&frame, &len);
    if (!f) {
        rc = EF_ENOMEM;
        goto out;
    }
    if (localtime_r(&now, &tm))
        strftime(clock, sizeof(clock), "%H:%M:%S", &tm);
    fputs("\033[H\033[J", f);
    rc = rollout_view_write(f, doc, ef_now_ms());
    if (final)
        fprintf(f, "\n%s: final state\n", clock);
    else
        fprintf(f, "\n%s: every %gs; Ctrl-C stops watching\n", clock, (double)interval_ms / 1000.0);
    if (fclose(f) != 0 && rc == 0)
        rc = EF_ENOMEM;
    if (rc == 0 && (fwrite(frame, 1, len, stdout) != len || fflush(stdout) != 0))
        rc = EF_EIO;
out:
    free(frame);
    return rc;
}

/*
 * Polls path every interval_ms until the rollout reaches a final state. On a
 * terminal each answer redraws the screen; otherwise, and always with
 * --json, an answer is printed only when it differs from the one before, so
 * a log holds successive snapshots. Ctrl-C keeps its default action: the
 * process ends at once, even in the middle of a request, and the shell sees
 * the interrupt. Returns CLI_EXIT_OK when the rollout succeeded,
 * CLI_EXIT_FAIL for any other final state or a failed request.
 */
static int rollout_watch(struct cli *cli, const char *path, int64_t interval_ms)
{
    struct client_response resp = {0};
    char *last = NULL;
    bool redraw = !cli->json && isatty(STDOUT_FILENO);
    int status = CLI_EXIT_OK, rc = 0;
    for (;;) {
        client_response_release(&resp);
        if (client_call(&cli->client, "GET", path, NULL, &resp) != 0) {
            status = CLI_EXIT_FAIL;
            goto out;
        }
        const char *state = ef_json_str(resp.doc, "state");
        if (!state) {
            status = cli_fail("malformed", "the server's answer holds no rollout state");
            goto out;
        }
        bool final = rollout_state_final(state);
        if (redraw) {
            rc = draw_frame(resp.doc, interval_ms, final);
        } else if (!last || strcmp(last, resp.body) != 0) {
            if (last && !cli->json)
                putchar('\n');
            rc = cli->json ? output_json_text(stdout, resp.body, resp.len)
                           : rollout_view_write(stdout, resp.doc, ef_now_ms());
            free(last);
            if (!(last = strdup(resp.body)) && rc == 0)
                rc = EF_ENOMEM;
            if (rc == 0 && fflush(stdout) != 0)
                rc = EF_EIO;
        }
        if (rc != 0) {
            status = cli_fail(ef_errname(rc), "cannot print the rollout: %s", ef_strerror(rc));
            goto out;
        }
        if (final) {
            if (strcmp(state, "succeeded") != 0) {
                int text_rc = 0;
                char *reason = text_or_null(resp.doc, "reason", &text_rc);
                status = cli_fail("rollout_ended", "the rollout ended %s%s%s", state,
                                  reason ? ": " : "", reason ? reason : "");
                free(reason);
            }
            goto out;
        }
        sleep_ms(interval_ms);
    }
out:
    free(last);
    client_response_release(&resp);
    return status;
}

enum { SHOW_WATCH, SHOW_INTERVAL, SHOW_N };

static int rollout_show(struct cli *cli, int argc, char **argv)
{
    struct args_opt opts[SHOW_N] = {
        [SHOW_WATCH] = {.name = "watch"},
        [SHOW_INTERVAL] = {.name = "interval", .metavar = "S"},
    };
    const char *pos[1];
    char path[PATH_SIZE];
    double interval_s = 1.0;
    size_t npos = 0;
    int status = CLI_EXIT_OK;
    if (!cli_parse(cli, argc, argv, opts, SHOW_N, pos, 1, 1, &npos, &status) ||
        !rollout_path(cli, pos[0], NULL, path, &status))
        goto out;
    const char *interval = args_value(&opts[SHOW_INTERVAL]);
    bool watch = opts[SHOW_WATCH].count > 0;
    if (interval && !watch) {
        status = cli_usage(cli, "--interval goes with --watch");
        goto out;
    }
    if (interval && (decimal_parse(interval, &interval_s, NULL) != 0 ||
                     interval_s < INTERVAL_MIN_S || interval_s > INTERVAL_MAX_S)) {
        status = cli_usage(cli, "--interval: '%s' is not a number of seconds from %g to %g",
                           interval, INTERVAL_MIN_S, INTERVAL_MAX_S);
        goto out;
    }
    if (watch)
        status = rollout_watch(cli, path, (int64_t)llround(interval_s * 1000.0));
    else
        status = cli_request(cli, "GET", path, NULL, print_rollout);
out:
    args_opts_release(opts, SHOW_N);
    return status;
}

enum { LIST_MODEL, LIST_STATE, LIST_N };

static int rollout_list(struct cli *cli, int argc, char **argv)
{
    struct args_opt opts[LIST_N] = {
        [LIST_MODEL] = {.name = "model", .metavar = "M"},
        [LIST_STATE] = {.name = "state", .metavar = "S"},
    };
    size_t npos = 0;
    int status = CLI_EXIT_OK;
    bool known = false;
    if (!cli_parse(cli, argc, argv, opts, LIST_N, NULL, 0, 0, &npos, &status))
        goto out;
    const char *model = args_value(&opts[LIST_MODEL]), *state = args_value(&opts[LIST_STATE]);
    if (model && !ef_name_valid(model)) {
        status = cli_usage(cli, "--model '%s' is not a valid model name", model);
        goto out;
    }
    for (size_t i = 0; state && i < ROLLOUT_STATE_COUNT; i++)
        known = known || strcmp(state, rollout_states[i]) == 0;
    if (state && !known) {
        status = cli_usage(cli, "--state must be draft, running, paused, succeeded, failed, "
                                "aborted or rolled_back");
        goto out;
    }
    const char *pairs[] = {"model", model, "state", state};
    status = cli_get_query(cli, "/api/v1/rollouts", pairs, 2, print_rollouts);
out:
    args_opts_release(opts, LIST_N);
    return status;
}

#define CREATE_HELP                                                                                \
    "  --rings A,B,C       the rings in the order the version goes through them\n"                 \
    "  --success P         a ring succeeds when this share of its devices committed\n"             \
    "                      (0..1 or a percentage such as 90%; server default 1)\n"                 \
    "  --error P           the rollout breaches when more than this share failed (default 0)\n"    \
    "  --min-devices N     --error counts only once N devices finished (default 1)\n"              \
    "  --soak S            seconds a ring waits after success, gates still checked (default 0)\n"  \
    "  --deadline S        seconds before a running ring's unfinished devices count as\n"          \
    "                      failed (default 600)\n"                                                 \
    "  --gate EXPR         a metric gate over the ring's telemetry (repeatable):\n"                \
    "                      error_rate<=0.05 or latency_p99_ms<=50 ('<' also accepted),\n"          \
    "                      '@N' after it for the inferences it needs to decide\n"                  \
    "                      (latency_p99_ms<=50@100); quote it, '<' redirects in a shell\n"         \
    "  --on-breach A       pause (default) or rollback the rings the rollout reached\n"            \
    "  --supersede         abort the model's running or paused rollout first\n"                    \
    "  --slot S            production (default) or shadow: a shadow rollout puts the\n"            \
    "                      version beside production, where it answers no one\n"                   \
    "\nThe rollout is created as a draft; 'rollout start ID' starts it.\n"

#define SHOW_HELP                                                                                  \
    "  --watch        follow the rollout until it succeeds, fails, is aborted or rolled\n"         \
    "                 back: a terminal is redrawn in place, otherwise (and with --json)\n"         \
    "                 each changed state is printed after the last. Exit status 0 when it\n"       \
    "                 succeeded, 1 otherwise; Ctrl-C stops watching.\n"                            \
    "  --interval S   seconds between polls with --watch (default 1, from 0.1)\n"                  \
    "\nBars: '#' committed, 'x' failed, rolled back or cancelled, '>' in progress, '.' pending.\n"

static const struct cli_verb rollout_verbs[] = {
    {"create",
     "NAME@VERSION --rings A,B,C [--success P] [--error P] [--min-devices N] [--soak S] "
     "[--deadline S] [--gate EXPR ...] [--on-breach pause|rollback] [--supersede] "
     "[--slot production|shadow]",
     "Create a rollout of a model version through rings (as a draft).", CREATE_HELP,
     rollout_create},
    {"start", "ID", "Start a draft rollout.", NULL, rollout_transition},
    {"pause", "ID", "Pause a running rollout.", NULL, rollout_transition},
    {"resume", "ID", "Resume a paused rollout (a breach must have cleared).", NULL,
     rollout_transition},
    {"abort", "ID", "Abort a rollout; devices that did not commit go back to their version.", NULL,
     rollout_transition},
    {"rollback", "ID", "Put every device the rollout reached back on its previous version.", NULL,
     rollout_transition},
    {"promote", "ID",
     "Start a production rollout of a succeeded shadow rollout's version, same rings and policy.",
     NULL, rollout_transition},
    {"show", "ID [--watch] [--interval S]", "Show a rollout and its rings, or follow it.",
     SHOW_HELP, rollout_show},
    {"list", "[--model M] [--state S]", "List rollouts, newest first.",
     "  --model M   only rollouts of model M\n"
     "  --state S   only rollouts in state S (draft, running, paused, succeeded, failed,\n"
     "              aborted, rolled_back)\n",
     rollout_list},
};

const struct cli_noun cmd_rollout_noun = {"rollout", "staged rollouts of a model version",
                                          rollout_verbs,
                                          sizeof(rollout_verbs) / sizeof(rollout_verbs[0])};
