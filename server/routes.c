/*
 * routes.c - the route table: every method and path the server answers.
 * schema/openapi.yaml describes exactly these (tests/integration/test_openapi_routes.py).
 */
#include "server/api.h"

#define ANY_API       (ACCESS_VIEWER)
#define READ_ARTIFACT (ACCESS_VIEWER | ACCESS_DEVICE)

const struct route routes[] = {
    {"GET", "/healthz", ACCESS_PUBLIC, BODY_NONE, api_healthz},
    {"GET", "/metrics", ACCESS_PUBLIC, BODY_NONE, api_metrics},
    {"GET", "/api/v1/openapi.yaml", ACCESS_PUBLIC, BODY_NONE, api_openapi},
    {"GET", "/api/v1/keys", ACCESS_PUBLIC, BODY_NONE, api_keys},

    {"GET", "/api/v1/models", ANY_API, BODY_NONE, api_models_list},
    {"POST", "/api/v1/models", ACCESS_OPERATOR, BODY_JSON, api_models_create},
    {"GET", "/api/v1/models/{name}", ANY_API, BODY_NONE, api_model_show},
    {"POST", "/api/v1/models/{name}/versions", ACCESS_OPERATOR, BODY_MULTIPART, api_version_create},
    {"GET", "/api/v1/models/{name}/versions/{version}", ANY_API, BODY_NONE, api_version_show},
    {"GET", "/api/v1/models/{name}/versions/{version}/manifest", READ_ARTIFACT, BODY_NONE,
     api_version_manifest},
    {"GET", "/api/v1/models/{name}/versions/{version}/manifest.sig", READ_ARTIFACT, BODY_NONE,
     api_version_signature},
    {"GET", "/api/v1/models/{name}/versions/{version}/artifact", READ_ARTIFACT, BODY_NONE,
     api_version_artifact},

    {"POST", "/api/v1/enroll-tokens", ACCESS_OPERATOR, BODY_JSON, api_enroll_tokens_create},
    {"POST", "/api/v1/enroll", ACCESS_ENROLL, BODY_JSON, api_enroll},

    {"GET", "/api/v1/devices", ANY_API, BODY_NONE, api_devices_list},
    {"GET", "/api/v1/devices/{id}", ANY_API, BODY_NONE, api_device_show},
    {"PATCH", "/api/v1/devices/{id}", ACCESS_OPERATOR, BODY_JSON, api_device_update},
    {"DELETE", "/api/v1/devices/{id}", ACCESS_OPERATOR, BODY_NONE, api_device_remove},
    {"GET", "/api/v1/devices/{id}/desired", ANY_API | ACCESS_DEVICE, BODY_NONE, api_device_desired},

    {"GET", "/api/v1/rings", ANY_API, BODY_NONE, api_rings_list},
    {"POST", "/api/v1/rings", ACCESS_OPERATOR, BODY_JSON, api_rings_create},
    {"PATCH", "/api/v1/rings/{name}", ACCESS_OPERATOR, BODY_JSON, api_ring_update},

    {"POST", "/api/v1/assignments", ACCESS_OPERATOR, BODY_JSON, api_assignments_create},

    {"GET", "/api/v1/rollouts", ANY_API, BODY_NONE, api_rollouts_list},
    {"POST", "/api/v1/rollouts", ACCESS_OPERATOR, BODY_JSON, api_rollouts_create},
    {"GET", "/api/v1/rollouts/{id}", ANY_API, BODY_NONE, api_rollout_show},
    {"POST", "/api/v1/rollouts/{id}/start", ACCESS_OPERATOR, BODY_NONE, api_rollout_start},
    {"POST", "/api/v1/rollouts/{id}/pause", ACCESS_OPERATOR, BODY_NONE, api_rollout_pause},
    {"POST", "/api/v1/rollouts/{id}/resume", ACCESS_OPERATOR, BODY_NONE, api_rollout_resume},
    {"POST", "/api/v1/rollouts/{id}/abort", ACCESS_OPERATOR, BODY_NONE, api_rollout_abort},
    {"POST", "/api/v1/rollouts/{id}/rollback", ACCESS_OPERATOR, BODY_NONE, api_rollout_rollback},
    {"POST", "/api/v1/rollouts/{id}/promote", ACCESS_OPERATOR, BODY_NONE, api_rollout_promote},

    {"GET", "/api/v1/tokens", ACCESS_ADMIN, BODY_NONE, api_tokens_list},
    {"POST", "/api/v1/tokens", ACCESS_ADMIN, BODY_JSON, api_tokens_create},
    {"DELETE", "/api/v1/tokens/{id}", ACCESS_ADMIN, BODY_NONE, api_token_revoke},

    {"GET", "/api/v1/audit", ACCESS_ADMIN, BODY_NONE, api_audit_list},

    {"GET", "/api/v1/triggers", ANY_API, BODY_NONE, api_triggers_list},
    {"POST", "/api/v1/triggers", ACCESS_OPERATOR, BODY_JSON, api_triggers_create},
    {"DELETE", "/api/v1/triggers/{id}", ACCESS_OPERATOR, BODY_NONE, api_trigger_delete},
    {"GET", "/api/v1/alerts", ANY_API, BODY_NONE, api_alerts_list},

    {"GET", "/api/v1/telemetry", ANY_API, BODY_NONE, api_telemetry_list},
    {"GET", "/api/v1/telemetry/rollups", ANY_API, BODY_NONE, api_telemetry_rollups},

    {"PUT", "/api/v1/models/{name}/collection", ACCESS_OPERATOR, BODY_JSON, api_collection_set},
    {"GET", "/api/v1/models/{name}/collection", ANY_API, BODY_NONE, api_collection_list},
    {"GET", "/api/v1/devices/{id}/collection", ANY_API | ACCESS_DEVICE, BODY_NONE,
     api_device_collection},
    {"POST", "/api/v1/devices/{id}/samples", ACCESS_DEVICE, BODY_JSON_BULK, api_device_samples},
    {"GET", "/api/v1/datasets", ANY_API, BODY_NONE, api_datasets_list},
    {"GET", "/api/v1/datasets/{id}/export", ANY_API, BODY_NONE, api_dataset_export},
    {NULL, NULL, 0, BODY_NONE, NULL},
};
