/*
 * config.h - the agent's options: command-line flags and an optional config
 * file of `key = value` lines whose keys are the long flag names (without the
 * dashes). Flags given on the command line win over the file.
 */
#ifndef EF_AGENT_CONFIG_H
#define EF_AGENT_CONFIG_H

#include "agent/agent.h"

#include <stdio.h>

/* Fills cfg with the defaults. */
void config_defaults(struct agent_config *cfg);

/* Parses argv (after the program name) into cfg, reading --config FILE first
 * if present. Returns 0, 1 when --help was asked (usage printed), or
 * EF_EINVAL with the problem printed to err. */
int config_parse(int argc, char **argv, struct agent_config *cfg, FILE *err);

/* Checks that the required options are present and consistent; prints the
 * problem to err. EF_EINVAL. */
int config_check(const struct agent_config *cfg, FILE *err);

/* The usage text of edgefleet-agent. */
extern const char config_usage[];

#endif
