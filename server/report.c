/* report.c - parsing the device `reported` messages. */
#include "server/report.h"
#include "common/ef_error.h"
#include "common/json_util.h"
#include "common/topic.h"

#include <stdio.h>
#include <string.h>

/* schema/json/reported.schema.json: the device action states of DESIGN.md
 * less `pending` (only the server sets it), plus the agent's own steps. */
static const char *const known_states[] = {
    "notified",  "downloading", "verifying", "staged", "self-test", "active",
    "committed", "rolled_back", "cancelled", "failed", NULL,
};

int report_parse(const char *payload, size_t len, struct report *out, char *msg, size_t msg_size)
{
    static const char *const allowed[] = {"slot",   "model", "version", "state",
                                          "reason", "seq",   NULL};
    const char *slot, *model, *state, *reason = NULL, *unknown = NULL;
    json_int_t version;
    json_t *doc = NULL;
    int rc = ef_json_load(payload, len, REPORT_MAX_BYTES, &doc, msg, msg_size);
    memset(out, 0, sizeof(*out));
    if (rc != 0)
        goto out;
    rc = EF_EINVAL;
    if (!json_is_object(doc) ||
        json_unpack(doc, "{s:s, s:s, s:I, s:s, s?s*}", "slot", &slot, "model", &model, "version",
                    &version, "state", &state, "reason", &reason) != 0) {
        snprintf(msg, msg_size, "needs slot, model, version and state");
        goto out;
    }
    if (!ef_json_keys_allowed(doc, allowed, &unknown)) {
        snprintf(msg, msg_size, "unknown field %.40s", unknown);
        goto out;
    }
    if (ef_slot_kind_parse(slot, &out->slot) != 0 || !ef_name_valid(model) || version < 1) {
        snprintf(msg, msg_size, "bad slot, model name or version");
        goto out;
    }
    json_t *seq = json_object_get(doc, "seq");
    if (seq && (!json_is_integer(seq) || json_integer_value(seq) < 1)) {
        snprintf(msg, msg_size, "seq must be an integer >= 1");
        goto out;
    }
    if (reason && strlen(reason) >= sizeof(out->reason)) {
        snprintf(msg, msg_size, "reason longer than %zu bytes", sizeof(out->reason) - 1);
        goto out;
    }
    for (const char *const *s = known_states; *s && rc != 0; s++)
        if (strcmp(*s, state) == 0)
            rc = 0;
    if (rc != 0) {
        snprintf(msg, msg_size, "unknown state %.20s", state);
        goto out;
    }
    snprintf(out->model, sizeof(out->model), "%s", model);
    snprintf(out->state, sizeof(out->state), "%s", state);
    snprintf(out->reason, sizeof(out->reason), "%s", reason ? reason : "");
    out->version = version;
out:
    json_decref(doc);
    return rc;
}
