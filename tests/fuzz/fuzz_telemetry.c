/* fuzz_telemetry.c - libFuzzer target for the device telemetry window
 * parser; whatever it accepts must satisfy the invariants the database and
 * the rollout gates and rollups rely on. */
#include "server/telemetry_parse.h"
#include "common/topic.h"

#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The detail text of an accepted window is JSON holding exactly the arrays
 * of the document (the parser copies their text rather than formatting
 * them again), and the drift's n. */
static bool detail_matches(const uint8_t *data, size_t size, const struct telemetry_window *w)
{
    json_t *doc = json_loadb((const char *)data, size, 0, NULL);
    json_t *detail = w->detail ? json_loads(w->detail, 0, NULL) : NULL;
    json_t *drift = json_object_get(doc, "drift"), *psi = json_object_get(detail, "psi");
    json_t *confusion = json_object_get(doc, "confusion");
    bool ok = (w->detail != NULL) == (w->has_drift || json_is_array(confusion));
    if (ok && w->detail)
        ok = json_is_object(detail) &&
             json_object_size(detail) == (size_t)w->has_drift + json_is_array(confusion) &&
             json_equal(json_object_get(detail, "confusion"),
                        json_is_array(confusion) ? confusion : NULL) == json_is_array(confusion) &&
             (!w->has_drift ||
              (json_object_size(psi) == 3 &&
               json_equal(json_object_get(psi, "features"), json_object_get(drift, "features")) &&
               json_equal(json_object_get(psi, "output"), json_object_get(drift, "output")) &&
               json_integer_value(json_object_get(psi, "n")) == w->drift_n));
    json_decref(doc);
    json_decref(detail);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct telemetry_window w;
    char msg[160];
    if (telemetry_parse((const char *)data, size, &w, msg, sizeof(msg)) != 0)
        return 0;
    if ((w.model[0] && (!ef_name_valid(w.model) || w.version < 1)) ||
        (!w.model[0] && w.version != 0) || w.inferences < 0 || w.errors < 0 ||
        w.errors > w.inferences || w.feedback < 0 || w.rss_bytes < -1 || !isfinite(w.window_s) ||
        w.window_s < 0 || !isfinite(w.cpu_s) || w.cpu_s < 0 ||
        (w.has_latency && (w.inferences == 0 || !isfinite(w.p99) || w.p99 < 0)) ||
        (w.has_accuracy && (w.feedback == 0 || !(w.accuracy >= 0 && w.accuracy <= 1))) ||
        (w.has_correct && (w.correct < 0 || w.correct > w.feedback)) ||
        (w.has_drift && (w.drift_n < TELEMETRY_DRIFT_MIN_N || w.drift_n > w.inferences ||
                         !(w.drift >= 0 && w.drift <= TELEMETRY_MAX_PSI_VALUE))) ||
        (w.has_drift_output &&
         (!w.has_drift || !(w.drift_output >= 0 && w.drift_output <= TELEMETRY_MAX_PSI_VALUE))) ||
        (w.has_confidence && (w.inferences == 0 || !(w.confidence >= 0 && w.confidence <= 1))) ||
        (w.has_shadow &&
         (!ef_name_valid(w.shadow_model) || w.shadow_version < 1 ||
          w.shadow_inferences > w.inferences || w.shadow_errors > w.shadow_inferences ||
          w.shadow_feedback > w.feedback ||
          (w.has_shadow_agreement &&
           (w.shadow_inferences == 0 || !(w.shadow_agreement >= 0 && w.shadow_agreement <= 1))) ||
          (w.has_shadow_accuracy &&
           (w.shadow_feedback == 0 || !(w.shadow_accuracy >= 0 && w.shadow_accuracy <= 1))))) ||
        (w.detail && w.detail_len != strlen(w.detail)) || !detail_matches(data, size, &w))
        abort();
    telemetry_window_clear(&w);
    return 0;
}
