/*
 * commands.h - the nouns of the edgefleet CLI, one per cmd_<noun>.c.
 *
 * main.c dispatches on these tables; each file holds the verbs of its noun.
 */
#ifndef EF_CLI_COMMANDS_H
#define EF_CLI_COMMANDS_H

#include "server/cli/cli.h"

extern const struct cli_noun cmd_model_noun;        /* model push|list|show|sign */
extern const struct cli_noun cmd_device_noun;       /* device list|show|set|remove */
extern const struct cli_noun cmd_ring_noun;         /* ring create|list|set */
extern const struct cli_noun cmd_token_noun;        /* token create|list|revoke */
extern const struct cli_noun cmd_enroll_token_noun; /* enroll-token create */
extern const struct cli_noun cmd_assign_noun;       /* assign (no verb) */
extern const struct cli_noun cmd_audit_noun;        /* audit list */
extern const struct cli_noun cmd_telemetry_noun;    /* telemetry query, rollups */
extern const struct cli_noun cmd_rollout_noun;      /* rollout create|start|...|show|list */

extern const struct cli_noun cmd_collection_noun; /* collection set|list */
extern const struct cli_noun cmd_dataset_noun;    /* dataset list|export */
extern const struct cli_noun cmd_trigger_noun;    /* trigger create|list|delete */
extern const struct cli_noun cmd_alert_noun;      /* alert list */

#endif
