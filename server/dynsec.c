/*
 * dynsec.c - the devices' broker identities in mosquitto's dynamic-security
 * plugin: the plugin's JSON commands and answers, calls matched to their
 * answers by correlationData, and the prober that finds out after each
 * connect whether the plugin is there for us.
 */
#include "server/dynsec.h"
#include "server/mqtt.h"
#include "common/clock.h"
#include "common/ef_error.h"
#include "common/json_util.h"
#include "common/log.h"
#include "common/topic.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DYNSEC_ID_SIZE   64 /* "edgefleet-", a 64-bit counter, "-" and 64 random bits in hex */
#define DYNSEC_ROLE_SIZE (sizeof(DYNSEC_ROLE_PREFIX) + EF_DEVICE_ID_MAX)

/* One request in flight: its commands share one correlationData, and their
 * answers arrive together in one message of the plugin. Lives on the stack
 * of the thread that waits for it, linked into dynsec.calls meanwhile. */
struct dynsec_call {
    char id[DYNSEC_ID_SIZE];  /* correlationData of every command */
    size_t expected;          /* commands sent, hence answers awaited */
    json_t *answers;          /* answers received so far (owned), or NULL */
    unsigned generation;      /* the connection the request went out on */
    struct dynsec_call *next; /* the next call in flight */
};

struct dynsec {
    struct mqtt *mqtt;          /* borrowed: carries the commands */
    pthread_mutex_t lock;       /* guards the members below */
    pthread_cond_t changed;     /* broadcast on answers, connects, verdicts and stop */
    pthread_mutex_t identities; /* dynsec_identity_lock; never taken under lock */
    pthread_t prober;           /* runs prober_main */
    char nonce[17];             /* random hex in every correlation id of this session */
    bool connected;             /* between the connect and disconnect hooks */
    unsigned generation;        /* connects so far */
    unsigned probed;            /* the generation the latest probe ran on */
    enum dynsec_state state;    /* the latest probe's verdict */
    bool stopping;              /* dynsec_free has begun */
    uint64_t calls_made;        /* for correlation ids */
    struct dynsec_call *calls;  /* calls in flight */
};

/* ---- The plugin's JSON ---- */

/* What a device's role allows, on its own topics only. */
/* clang-format off */
static const struct {
    const char *acltype; /* the plugin's ACL type */
    const char *leaf;    /* topic leaf under edgefleet/v1/devices/{id}/ */
} device_acls[] = {
    {"subscribeLiteral",     "desired"},
    {"subscribeLiteral",     "cmd"},
    {"publishClientReceive", "desired"},
    {"publishClientReceive", "cmd"},
    {"publishClientSend",    "reported"},
    {"publishClientSend",    "telemetry"},
    {"publishClientSend",    "status"},
};
/* clang-format on */

static int role_name(const char *device_id, char role[DYNSEC_ROLE_SIZE])
{
    if (!ef_device_id_valid(device_id))
        return EF_EINVAL;
    snprintf(role, DYNSEC_ROLE_SIZE, "%s%s", DYNSEC_ROLE_PREFIX, device_id);
    return 0;
}

/* Appends a new command (stolen) to commands; EF_ENOMEM if it is NULL. */
static int append(json_t *commands, json_t *command)
{
    return command && json_array_append_new(commands, command) == 0 ? 0 : EF_ENOMEM;
}

int dynsec_commands_device_create(json_t *commands, const char *device_id, const char *password)
{
    char role[DYNSEC_ROLE_SIZE], topic[EF_TOPIC_SIZE];
    json_t *acls = NULL;
    int rc = role_name(device_id, role);
    if (rc != 0)
        return rc;
    if (!(acls = json_array())) {
        rc = EF_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < sizeof(device_acls) / sizeof(device_acls[0]) && rc == 0; i++) {
        if ((rc = ef_topic_device(topic, sizeof(topic), device_id, device_acls[i].leaf)) == 0)
            rc = append(acls, json_pack("{s:s, s:s, s:b}", "acltype", device_acls[i].acltype,
                                        "topic", topic, "allow", 1));
    }
    if (rc == 0)
        rc = append(commands, json_pack("{s:s, s:s, s:s, s:O}", "command", "createRole", "rolename",
                                        role, "textname", "edgefleet device", "acls", acls));
    if (rc == 0)
        rc = append(commands, json_pack("{s:s, s:s, s:s, s:s, s:[{s:s}]}", "command",
                                        "createClient", "username", device_id, "password", password,
                                        "textname", "edgefleet device", "roles", "rolename", role));
out:
    json_decref(acls);
    return rc;
}

int dynsec_commands_device_delete(json_t *commands, const char *device_id)
{
    char role[DYNSEC_ROLE_SIZE];
    int rc = role_name(device_id, role);
    if (rc == 0)
        rc = append(commands,
                    json_pack("{s:s, s:s}", "command", "deleteClient", "username", device_id));
    if (rc == 0)
        rc = append(commands, json_pack("{s:s, s:s}", "command", "deleteRole", "rolename", role));
    return rc;
}

char *dynsec_request_text(const json_t *commands, const char *id)
{
    json_t *copy = json_array(), *doc = NULL, *command;
    char *text = NULL;
    size_t i;
    if (!copy)
        return NULL;
    /* Shallow copies share the members' values, the password among them, so
     * no further copy of a secret is made here. */
    json_array_foreach((json_t *)commands, i, command)
    {
        json_t *c = json_copy(command);
        if (!c || json_object_set_new(c, "correlationData", json_string(id)) != 0 ||
            json_array_append_new(copy, c) != 0) {
            json_decref(c);
            goto out;
        }
    }
    if ((doc = json_pack("{s:O}", "commands", copy)))
        text = json_dumps(doc, JSON_COMPACT);
out:
    json_decref(doc);
    json_decref(copy);
    return text;
}

int dynsec_response_parse(const void *payload, size_t len, json_t **out)
{
    json_t *doc = NULL, *responses, *r;
    size_t i;
    int rc = ef_json_load(payload, len, DYNSEC_MESSAGE_MAX, &doc, NULL, 0);
    *out = NULL;
    if (rc != 0)
        goto out;
    responses = json_object_get(doc, "responses");
    rc = json_is_array(responses) ? 0 : EF_EPARSE;
    json_array_foreach(responses, i, r)
    {
        json_t *error = json_object_get(r, "error"), *id = json_object_get(r, "correlationData");
        if (!json_is_object(r) || !json_is_string(json_object_get(r, "command")) ||
            (error && !json_is_string(error)) || (id && !json_is_string(id)))
            rc = EF_EPARSE;
    }
    if (rc == 0)
        *out = json_incref(responses);
out:
    json_decref(doc);
    return rc;
}

/* True for the plugin's "Client not found" and "Role not found". */
static bool is_not_found(const char *error)
{
    static const char suffix[] = " not found";
    size_t len = strlen(error);
    return len >= sizeof(suffix) - 1 && strcmp(error + len - (sizeof(suffix) - 1), suffix) == 0;
}

int dynsec_answers_check(const json_t *commands, const json_t *answers, char *msg, size_t msg_size)
{
    size_t n = json_array_size(commands);
    msg[0] = '\0';
    if (!json_is_array(answers) || json_array_size(answers) != n) {
        snprintf(msg, msg_size, "%zu answers to %zu commands", json_array_size(answers), n);
        return EF_EPARSE;
    }
    for (size_t i = 0; i < n; i++) {
        const char *command = ef_json_str(json_array_get(commands, i), "command");
        const json_t *answer = json_array_get(answers, i);
        const char *error = ef_json_str(answer, "error");
        if (!command || !ef_json_str(answer, "command") ||
            strcmp(command, ef_json_str(answer, "command")) != 0) {
            snprintf(msg, msg_size, "answer %zu is not about %s", i, command ? command : "?");
            return EF_EPARSE;
        }
        if (!error)
            continue;
        if (strncmp(command, "delete", 6) == 0 && is_not_found(error))
            continue;
        snprintf(msg, msg_size, "%s: %s", command, error);
        return EF_EPERM;
    }
    return 0;
}

/* Overwrites the password of every command in commands. Jansson keeps a
 * string's bytes in one buffer of its own, which json_string_value exposes. */
static void wipe_passwords(json_t *commands)
{
    json_t *command;
    size_t i;
    json_array_foreach(commands, i, command)
    {
        json_t *password = json_object_get(command, "password");
        if (json_is_string(password))
            sodium_memzero((char *)json_string_value(password), json_string_length(password));
    }
}

/* ---- Calls ---- */

/* The absolute CLOCK_MONOTONIC time ms from now, for timed waits. */
static struct timespec deadline_in(int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

static void calls_unlink(struct dynsec *ds, struct dynsec_call *c)
{
    for (struct dynsec_call **p = &ds->calls; *p; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            return;
        }
    }
}

/* Sends commands (borrowed) as one request and waits up to timeout_ms for
 * their answers: *answers receives them (new reference), in the order of the
 * commands. EF_ENET (not connected, or the connection dropped meanwhile),
 * EF_ETIMEDOUT, EF_ENOMEM. Blocks the calling thread; never called from the
 * network thread. */
static int call(struct dynsec *ds, const json_t *commands, int64_t timeout_ms, json_t **answers)
{
    struct dynsec_call c = {.expected = json_array_size(commands)};
    struct timespec deadline = deadline_in(timeout_ms);
    char *text = NULL;
    int rc = 0;
    *answers = NULL;
    pthread_mutex_lock(&ds->lock);
    if (ds->connected && !ds->stopping) {
        snprintf(c.id, sizeof(c.id), "edgefleet-%" PRIu64 "-%s", ++ds->calls_made, ds->nonce);
        c.generation = ds->generation;
        c.next = ds->calls;
        ds->calls = &c;
    } else {
        rc = EF_ENET;
    }
    pthread_mutex_unlock(&ds->lock);

    if (rc == 0) {
        text = dynsec_request_text(commands, c.id);
        rc = text ? mqtt_dynsec_send(ds->mqtt, text, strlen(text)) : EF_ENOMEM;
    }

    pthread_mutex_lock(&ds->lock);
    for (;;) {
        if (c.answers && json_array_size(c.answers) >= c.expected) {
            rc = 0;
            break;
        }
        if (rc != 0)
            break;
        if (ds->stopping || !ds->connected || ds->generation != c.generation)
            rc = EF_ENET;
        else if (pthread_cond_timedwait(&ds->changed, &ds->lock, &deadline) == ETIMEDOUT)
            rc = EF_ETIMEDOUT; /* the loop looks once more for answers */
    }
    calls_unlink(ds, &c);
    pthread_mutex_unlock(&ds->lock);
    if (rc == 0) {
        *answers = c.answers;
        c.answers = NULL;
    }
    json_decref(c.answers);
    if (text) {
        sodium_memzero(text, strlen(text));
        free(text);
    }
    return rc;
}

void dynsec_response(struct dynsec *ds, const void *payload, size_t len)
{
    json_t *responses = NULL, *r;
    size_t i, unmatched = 0;
    if (!ds)
        return;
    int rc = dynsec_response_parse(payload, len, &responses);
    if (rc != 0) {
        ef_warn("dynsec_bad_response", "bytes=%zu error=%s", len, ef_errname(rc));
        return;
    }
    pthread_mutex_lock(&ds->lock);
    json_array_foreach(responses, i, r)
    {
        const char *id = ef_json_str(r, "correlationData");
        struct dynsec_call *c = ds->calls;
        while (c && !(id && strcmp(c->id, id) == 0))
            c = c->next;
        if (!c) {
            unmatched++;
            continue;
        }
        if (!c->answers)
            c->answers = json_array();
        if (c->answers)
            json_array_append(c->answers, r);
    }
    pthread_cond_broadcast(&ds->changed);
    pthread_mutex_unlock(&ds->lock);
    if (unmatched)
        ef_debug("dynsec_late_answers", "answers=%zu", unmatched);
    json_decref(responses);
}

void dynsec_connected(struct dynsec *ds)
{
    if (!ds)
        return;
    pthread_mutex_lock(&ds->lock);
    ds->connected = true;
    ds->generation++;
    pthread_cond_broadcast(&ds->changed);
    pthread_mutex_unlock(&ds->lock);
}

void dynsec_disconnected(struct dynsec *ds)
{
    if (!ds)
        return;
    pthread_mutex_lock(&ds->lock);
    ds->connected = false;
    pthread_cond_broadcast(&ds->changed);
    pthread_mutex_unlock(&ds->lock);
}

/* ---- The prober ---- */

/* Warns when the plugin's defaults let a client publish or subscribe where
 * no role allows it: device roles would then restrict nothing. */
static void check_defaults(const json_t *answer)
{
    json_t *acls = json_object_get(json_object_get(answer, "data"), "acls"), *acl;
    size_t i;
    json_array_foreach(acls, i, acl)
    {
        const char *type = ef_json_str(acl, "acltype");
        if (type && json_is_true(json_object_get(acl, "allow")) &&
            (strcmp(type, "publishClientSend") == 0 || strcmp(type, "subscribe") == 0))
            ef_warn("dynsec_permissive_default",
                    "acltype=%s reason=\"the plugin's default ACL access allows it: devices are "
                    "not confined to their own topics\"",
                    type);
    }
}

/* Asks the plugin for its default ACL access, a command that changes
 * nothing, and records the verdict. */
static void probe(struct dynsec *ds)
{
    json_t *commands = json_pack("[{s:s}]", "command", "getDefaultACLAccess"), *answers = NULL;
    enum dynsec_state verdict = DYNSEC_UNAVAILABLE;
    char msg[160] = "", quoted[200];
    int rc = commands ? call(ds, commands, DYNSEC_PROBE_TIMEOUT_MS, &answers) : EF_ENOMEM;
    if (rc == EF_ENET || rc == EF_ENOMEM)
        goto out; /* no finding: the next connect probes again */
    if (rc == 0)
        rc = dynsec_answers_check(commands, answers, msg, sizeof(msg));
    if (rc == 0) {
        verdict = DYNSEC_MANAGED;
        check_defaults(json_array_get(answers, 0));
    } else if (rc == EF_ETIMEDOUT) {
        snprintf(msg, sizeof(msg), "no answer on %s within %d ms", DYNSEC_RESPONSE_TOPIC,
                 DYNSEC_PROBE_TIMEOUT_MS);
    }
    pthread_mutex_lock(&ds->lock);
    enum dynsec_state before = ds->state;
    ds->state = verdict;
    pthread_cond_broadcast(&ds->changed);
    pthread_mutex_unlock(&ds->lock);
    if (verdict == DYNSEC_MANAGED && before != DYNSEC_MANAGED)
        ef_info("dynsec_managed", "topic=%s", DYNSEC_TOPIC);
    else if (verdict == DYNSEC_UNAVAILABLE && before != DYNSEC_UNAVAILABLE)
        ef_warn("dynsec_unavailable",
                "error=%s reason=%s effect=\"running without managing device broker "
                "credentials: enrollment returns none\"",
                ef_errname(rc), ef_log_quote(msg, quoted, sizeof(quoted)));
out:
    json_decref(answers);
    json_decref(commands);
}

/* Probes once after every connect, until dynsec_free. */
static void *prober_main(void *arg)
{
    struct dynsec *ds = arg;
    pthread_mutex_lock(&ds->lock);
    while (!ds->stopping) {
        if (ds->connected && ds->probed != ds->generation) {
            ds->probed = ds->generation;
            pthread_mutex_unlock(&ds->lock);
            probe(ds);
            pthread_mutex_lock(&ds->lock);
            continue;
        }
        pthread_cond_wait(&ds->changed, &ds->lock);
    }
    pthread_mutex_unlock(&ds->lock);
    return NULL;
}

/* ---- The session ---- */

int dynsec_new(struct mqtt *m, struct dynsec **out)
{
    struct dynsec *ds = calloc(1, sizeof(*ds));
    pthread_condattr_t attr;
    int rc = 0;
    *out = NULL;
    if (!ds)
        return EF_ENOMEM;
    ds->mqtt = m;
    /* Where the broker lets other clients publish on the response topic (not
     * mosquitto's, which keeps $CONTROL to itself), a forged answer must at
     * least not be able to guess which call it would answer. */
    unsigned char nonce[8];
    randombytes_buf(nonce, sizeof(nonce));
    sodium_bin2hex(ds->nonce, sizeof(ds->nonce), nonce, sizeof(nonce));
    pthread_mutex_init(&ds->lock, NULL);
    pthread_mutex_init(&ds->identities, NULL);
    /* Timed waits on the monotonic clock: a wall-clock step must not cut
     * short or stretch a call's timeout. */
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&ds->changed, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&ds->prober, NULL, prober_main, ds) != 0) {
        pthread_cond_destroy(&ds->changed);
        pthread_mutex_destroy(&ds->identities);
        pthread_mutex_destroy(&ds->lock);
        free(ds);
        rc = EF_EIO;
        ds = NULL;
    }
    *out = ds;
    return rc;
}

void dynsec_free(struct dynsec *ds)
{
    if (!ds)
        return;
    pthread_mutex_lock(&ds->lock);
    ds->stopping = true;
    pthread_cond_broadcast(&ds->changed);
    pthread_mutex_unlock(&ds->lock);
    pthread_join(ds->prober, NULL);
    assert(!ds->calls); /* the threads that wait for answers have all returned */
    pthread_cond_destroy(&ds->changed);
    pthread_mutex_destroy(&ds->identities);
    pthread_mutex_destroy(&ds->lock);
    free(ds);
}

enum dynsec_state dynsec_state_get(struct dynsec *ds)
{
    enum dynsec_state state;
    if (!ds)
        return DYNSEC_UNAVAILABLE;
    pthread_mutex_lock(&ds->lock);
    state = ds->state;
    pthread_mutex_unlock(&ds->lock);
    return state;
}

enum dynsec_state dynsec_state_wait(struct dynsec *ds)
{
    enum dynsec_state state;
    if (!ds)
        return DYNSEC_UNAVAILABLE;
    struct timespec deadline = deadline_in(DYNSEC_PROBE_TIMEOUT_MS + 1000);
    pthread_mutex_lock(&ds->lock);
    while (ds->state == DYNSEC_UNKNOWN && !ds->stopping) {
        if (pthread_cond_timedwait(&ds->changed, &ds->lock, &deadline) == ETIMEDOUT)
            break;
    }
    state = ds->state;
    pthread_mutex_unlock(&ds->lock);
    return state;
}

void dynsec_identity_lock(struct dynsec *ds)
{
    if (ds)
        pthread_mutex_lock(&ds->identities);
}

void dynsec_identity_unlock(struct dynsec *ds)
{
    if (ds)
        pthread_mutex_unlock(&ds->identities);
}

/* Runs commands as one call and checks every answer; logs a refusal.
 * device_id and what name the change for the log. */
static int run(struct dynsec *ds, json_t *commands, const char *device_id, const char *what)
{
    json_t *answers = NULL;
    char msg[160] = "", quoted[200];
    int rc = call(ds, commands, DYNSEC_CALL_TIMEOUT_MS, &answers);
    if (rc == 0)
        rc = dynsec_answers_check(commands, answers, msg, sizeof(msg));
    if (rc == EF_EPERM || rc == EF_EPARSE)
        ef_warn("dynsec_refused", "device=%s change=%s error=%s reason=%s", device_id, what,
                ef_errname(rc), ef_log_quote(msg, quoted, sizeof(quoted)));
    if (rc == EF_EPARSE)
        rc = EF_EPERM;
    json_decref(answers);
    return rc;
}

int dynsec_device_create(struct dynsec *ds, const char *device_id,
                         char password[DYNSEC_PASSWORD_SIZE])
{
    json_t *commands = json_array();
    int rc = commands ? 0 : EF_ENOMEM;
    ef_token_generate(DYNSEC_PASSWORD_PREFIX, password);
    /* Whatever is left under this name (a decommission whose delete did not
     * reach the broker) goes first, in the same request. */
    if (rc == 0)
        rc = dynsec_commands_device_delete(commands, device_id);
    if (rc == 0)
        rc = dynsec_commands_device_create(commands, device_id, password);
    if (rc == 0)
        rc = run(ds, commands, device_id, "create");
    if (rc != 0)
        sodium_memzero(password, DYNSEC_PASSWORD_SIZE);
    if (commands)
        wipe_passwords(commands);
    json_decref(commands);
    return rc;
}

int dynsec_device_delete(struct dynsec *ds, const char *device_id)
{
    json_t *commands = json_array();
    int rc = commands ? dynsec_commands_device_delete(commands, device_id) : EF_ENOMEM;
    if (rc == 0)
        rc = run(ds, commands, device_id, "delete");
    json_decref(commands);
    return rc;
}
