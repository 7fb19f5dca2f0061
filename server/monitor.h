/*
 * monitor.h - the monitor: one thread that evaluates the enabled trigger
 * rules every cfg.monitor_tick_ms into alerts and actions (docs/monitoring.md,
 * "Trigger rules, alerts and actions").
 *
 * Per rule and per version of its model that sent windows in the rule's
 * window, trigger_eval.h decides whether the rule holds. A rule that holds
 * fires once: an alert is stored (db_monitor.h), its action taken, and the
 * alert is logged, audited (actor "monitor") and published on
 * edgefleet/v1/events/alert at QoS 1. While it is firing the rule does not
 * fire again for that version; when the rule no longer holds (or the version
 * sent no windows in the window) the alert is resolved, audited and published
 * again with state "resolved"; a rule fires again for a version only
 * cooldown_s after its last alert for it fired.
 *
 * Actions: retrain publishes edgefleet/v1/events/retrain and, with
 * cfg.retrain_command, starts `/bin/sh -c CMD` detached (posix_spawn; its
 * output goes to the server's stderr; the EF_* variables of the doc in its
 * environment); children are reaped, and their exit logged, on later ticks.
 * pause_rollout and rollback act on the model's running or paused production
 * rollout through rollout_act (rollout.h).
 */
#ifndef EF_MONITOR_H
#define EF_MONITOR_H

#include <stdint.h>

struct server;
struct monitor;

#define MONITOR_TICK_MS_DEFAULT 5000 /* period when cfg.monitor_tick_ms is 0 */

/* Starts the monitor thread, which ticks every srv->cfg.monitor_tick_ms.
 * srv is borrowed and must outlive the monitor; srv->rollouts is used for
 * the rollout actions when it is set. *out is owned by the caller
 * (monitor_stop). EF_ENOMEM, EF_EIO (no thread). */
int monitor_start(struct server *srv, struct monitor **out);

/* A monitor without a thread, for tests that tick it themselves. */
int monitor_open(struct server *srv, struct monitor **out);

/* Stops the thread after its current tick and frees; accepts NULL.
 * Retrain commands still running are left to run. */
void monitor_stop(struct monitor *m);

/* Runs one tick now, in the caller's thread, at the server's clock (the
 * thread calls this). Errors are logged and the rule is evaluated again next
 * tick; returns the first error for tests. */
int monitor_tick(struct monitor *m);

/* One tick as if the time were now_ms (Unix ms): the rule windows and
 * cooldowns are measured from it. For tests. */
int monitor_tick_at(struct monitor *m, int64_t now_ms);

#endif
