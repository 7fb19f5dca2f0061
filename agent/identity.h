/*
 * identity.h - who this device is to the server and the broker, and the keys
 * it trusts: DATA_DIR/identity.json (mode 0600), written once at enrollment.
 *
 * Keys are pinned: given at install (--release-key/--server-key) or learned
 * at enrollment, and never replaced afterwards. A start with keys on the
 * command line that differ from the pinned ones is refused.
 */
#ifndef EF_AGENT_IDENTITY_H
#define EF_AGENT_IDENTITY_H

#include "agent/agent.h"

#define IDENTITY_FILE "identity.json"

/* Loads DATA_DIR/identity.json into a->id. EF_ENOENT when the device is not
 * enrolled yet; EF_EPARSE (corrupt), EF_EPERM (readable by others),
 * EF_EMISMATCH (enrolled as another device id, or pinned keys differ from
 * those given on the command line). */
int identity_load(struct agent *a);

/* Enrolls with cfg.enroll_token through POST /api/v1/enroll on the loop,
 * retrying unreachable servers with backoff; on success writes the identity
 * file and calls done(a, 0); on a final refusal (401, 409, keys that differ
 * from the provisioned ones) calls done(a, EF_E*). */
typedef void (*identity_done_cb)(struct agent *a, int rc);
int identity_enroll(struct agent *a, identity_done_cb done);

/* Abandons an enrollment under way (at shutdown); done is not called. */
void identity_enroll_cancel(struct agent *a);

#endif
