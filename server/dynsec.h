/*
 * dynsec.h - the devices' broker identities, kept in mosquitto's
 * dynamic-security plugin.
 *
 * Every enrolled device gets a broker client whose username is its device id
 * and whose password is random, returned once by enrollment and kept by no
 * one but the device (the plugin stores a salted hash). The client has one
 * role, DYNSEC_ROLE_PREFIX + id, that lets it subscribe to and receive its own
 * `desired` and `cmd` topics and publish its own `reported`, `telemetry` and
 * `status`; the plugin's default ACL access denies everything else.
 *
 * Commands travel as the plugin's JSON on DYNSEC_TOPIC through the server's
 * broker client (mqtt.h), and the plugin answers on DYNSEC_RESPONSE_TOPIC; a
 * call and its answers are matched by the commands' correlationData.
 *
 * After every connect a prober thread sends a harmless getDefaultACLAccess and waits
 * DYNSEC_PROBE_TIMEOUT_MS for the answer. An answer means the server manages
 * device credentials (DYNSEC_MANAGED); silence, or a refusal, means the broker
 * has no plugin or the server's client has no rights on it
 * (DYNSEC_UNAVAILABLE, logged once as dynsec_unavailable): devices then
 * enroll without broker credentials. The network thread never waits.
 */
#ifndef EF_DYNSEC_H
#define EF_DYNSEC_H

#include "common/crypto.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct mqtt;
struct dynsec;

#define DYNSEC_TOPIC            "$CONTROL/dynamic-security/v1"
#define DYNSEC_RESPONSE_TOPIC   DYNSEC_TOPIC "/response"
#define DYNSEC_ROLE_PREFIX      "edgefleet-device-"
#define DYNSEC_PASSWORD_PREFIX  "efm" /* a broker password: "efm_" + 256 random bits */
#define DYNSEC_PASSWORD_SIZE    EF_TOKEN_SIZE
#define DYNSEC_PROBE_TIMEOUT_MS 3000         /* how long the probe waits for the plugin */
#define DYNSEC_CALL_TIMEOUT_MS  3000         /* how long a command waits for its answer */
#define DYNSEC_MESSAGE_MAX      (256u << 10) /* largest answer read, bytes */

/* What the latest probe found. */
enum dynsec_state {
    DYNSEC_UNKNOWN,     /* no probe has finished since the start */
    DYNSEC_MANAGED,     /* the plugin answered: device credentials are managed */
    DYNSEC_UNAVAILABLE, /* no plugin, or no rights on it: devices get no credentials */
};

/* Creates the session of broker client m (borrowed; it must outlive the
 * session) and starts its prober thread. *out is owned by the caller
 * (dynsec_free). EF_ENOMEM, EF_EIO (no thread). */
int dynsec_new(struct mqtt *m, struct dynsec **out);

/* Stops the prober and frees; accepts NULL. The broker client's network
 * thread must be stopped first, so that no hook below runs any more. */
void dynsec_free(struct dynsec *ds);

/* Hooks of the broker client's network thread; none of them blocks, and
 * all accept NULL. dynsec_connected: a CONNACK accepted the client (the
 * session probes again). dynsec_disconnected: the connection is gone (calls
 * waiting for answers fail with EF_ENET). dynsec_response: a message arrived
 * on DYNSEC_RESPONSE_TOPIC (answers are handed to the calls they belong to;
 * others are dropped). */
void dynsec_connected(struct dynsec *ds);
void dynsec_disconnected(struct dynsec *ds);
void dynsec_response(struct dynsec *ds, const void *payload, size_t len);

/* Returns the latest probe's finding. ds NULL (no broker configured) is
 * DYNSEC_UNAVAILABLE. */
enum dynsec_state dynsec_state_get(struct dynsec *ds);

/* As dynsec_state_get, but while there is no finding yet, waits up to
 * DYNSEC_PROBE_TIMEOUT_MS and a second for one. */
enum dynsec_state dynsec_state_wait(struct dynsec *ds);

/* Serialises the changes of device identities: enrollment and decommission
 * hold it across their database change and their broker change, so that the
 * two stores never disagree about a device because of an interleaving. Both
 * accept NULL. */
void dynsec_identity_lock(struct dynsec *ds);
void dynsec_identity_unlock(struct dynsec *ds);

/* Gives device_id a new broker identity: deletes any client and role left
 * under its name (the caller holds the identity lock and has checked that no
 * active device owns them), creates its role and its client with a new
 * random password, written to password (the caller wipes it). Waits up to
 * DYNSEC_CALL_TIMEOUT_MS on the calling thread. EF_ENET (not connected),
 * EF_ETIMEDOUT (no answer), EF_EPERM (the plugin refused; logged),
 * EF_EINVAL (bad id), EF_ENOMEM. On failure password is empty. */
int dynsec_device_create(struct dynsec *ds, const char *device_id,
                         char password[DYNSEC_PASSWORD_SIZE]);

/* Deletes device_id's client (which disconnects it) and role; one that does
 * not exist counts as deleted. Errors as dynsec_device_create. */
int dynsec_device_delete(struct dynsec *ds, const char *device_id);

/* ---- The plugin's JSON, exposed for the unit tests ---- */

/* Appends to commands (an array) the plugin commands that create device_id's
 * role and its client with password. EF_EINVAL (bad id), EF_ENOMEM. */
int dynsec_commands_device_create(json_t *commands, const char *device_id, const char *password);

/* Appends to commands the plugin commands that delete device_id's client and
 * role. EF_EINVAL, EF_ENOMEM. */
int dynsec_commands_device_delete(json_t *commands, const char *device_id);

/* The request {"commands": commands} with correlationData id added to every
 * command, as compact JSON: a malloc'd string (NULL on ENOMEM) that the
 * caller wipes (it may hold a password) and frees. commands is borrowed and
 * left unchanged. */
char *dynsec_request_text(const json_t *commands, const char *id);

/* Parses one answer message {"responses": [{"command", "error"?,
 * "correlationData"?, "data"?}, ...]}; *out receives the responses array
 * (new reference). EF_ETOOBIG, EF_EPARSE. */
int dynsec_response_parse(const void *payload, size_t len, json_t **out);

/* Checks the answers to commands, one by one in order: 0 when every command
 * succeeded, where a delete whose target does not exist counts as success.
 * EF_EPERM when one failed, with "command: error" in msg; EF_EPARSE when the
 * answers do not match the commands. */
int dynsec_answers_check(const json_t *commands, const json_t *answers, char *msg, size_t msg_size);

#endif
