/*
 * api.h - the handlers of the REST API, one file per resource:
 * api_ops.c (health, metrics, OpenAPI, keys), api_models.c (registry),
 * api_enroll.c, api_devices.c, api_rings.c, api_assign.c, api_rollouts.c, api_tokens.c,
 * api_audit.c, api_monitor.c, api_telemetry.c, api_collection.c. routes.c maps methods and
 * paths to them; each answers through http_reply_* and returns its result.
 */
#ifndef EF_API_H
#define EF_API_H

#include "server/http.h"

/* api_ops.c */
enum MHD_Result api_healthz(struct request *req);
enum MHD_Result api_metrics(struct request *req);
enum MHD_Result api_openapi(struct request *req);
enum MHD_Result api_keys(struct request *req);

/* api_models.c: {name} is param 0, {version} param 1 */
enum MHD_Result api_models_list(struct request *req);
enum MHD_Result api_models_create(struct request *req);
enum MHD_Result api_model_show(struct request *req);
enum MHD_Result api_version_create(struct request *req);
enum MHD_Result api_version_show(struct request *req);
enum MHD_Result api_version_manifest(struct request *req);
enum MHD_Result api_version_signature(struct request *req);
enum MHD_Result api_version_artifact(struct request *req);

/* api_enroll.c */
enum MHD_Result api_enroll_tokens_create(struct request *req);
enum MHD_Result api_enroll(struct request *req);

/* api_devices.c: {id} is param 0 */
enum MHD_Result api_devices_list(struct request *req);
enum MHD_Result api_device_show(struct request *req);
enum MHD_Result api_device_update(struct request *req);
enum MHD_Result api_device_remove(struct request *req);
enum MHD_Result api_device_desired(struct request *req);

/* api_rings.c: {name} is param 0 */
enum MHD_Result api_rings_list(struct request *req);
enum MHD_Result api_rings_create(struct request *req);
enum MHD_Result api_ring_update(struct request *req);

/* api_assign.c */
enum MHD_Result api_assignments_create(struct request *req);

/* api_rollouts.c: {id} is param 0 */
enum MHD_Result api_rollouts_list(struct request *req);
enum MHD_Result api_rollouts_create(struct request *req);
enum MHD_Result api_rollout_show(struct request *req);
enum MHD_Result api_rollout_start(struct request *req);
enum MHD_Result api_rollout_pause(struct request *req);
enum MHD_Result api_rollout_resume(struct request *req);
enum MHD_Result api_rollout_abort(struct request *req);
enum MHD_Result api_rollout_rollback(struct request *req);
enum MHD_Result api_rollout_promote(struct request *req);

/* api_tokens.c: {id} is param 0 */
enum MHD_Result api_tokens_list(struct request *req);
enum MHD_Result api_tokens_create(struct request *req);
enum MHD_Result api_token_revoke(struct request *req);

/* api_audit.c */
enum MHD_Result api_audit_list(struct request *req);

/* api_monitor.c: {id} is param 0 */
enum MHD_Result api_triggers_list(struct request *req);
enum MHD_Result api_triggers_create(struct request *req);
enum MHD_Result api_trigger_delete(struct request *req);
enum MHD_Result api_alerts_list(struct request *req);

/* api_telemetry.c */
enum MHD_Result api_telemetry_list(struct request *req);
enum MHD_Result api_telemetry_rollups(struct request *req);

/* api_collection.c: {name} (a model) or {id} (a device or dataset) is param 0 */
enum MHD_Result api_collection_set(struct request *req);
enum MHD_Result api_collection_list(struct request *req);
enum MHD_Result api_device_collection(struct request *req);
enum MHD_Result api_device_samples(struct request *req);
enum MHD_Result api_datasets_list(struct request *req);
enum MHD_Result api_dataset_export(struct request *req);

#endif
