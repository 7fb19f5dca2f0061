/*
 * fuzz_agent_collect_policy.c - fuzz target for collect_policy_parse, the
 * agent's reader of GET /api/v1/devices/{id}/collection answers.
 *
 * An accepted policy must obey the documented rules: an enabled one names a
 * valid model, a sample_rate in (0, 1] and a batch >= 1; a refused one leaves
 * the output zeroed. Parsing the same bytes twice gives the same result.
 */
#include "agent/collect.h"
#include "common/ef_error.h"
#include "common/topic.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct collect_policy p, again;
    static const struct collect_policy zero;
    int rc = collect_policy_parse((const char *)data, size, &p);
    if (rc != 0) {
        if (rc != EF_EPARSE && rc != EF_EINVAL)
            abort();
        if (memcmp(&p, &zero, sizeof(p)) != 0)
            abort();
        return 0;
    }
    if (p.enabled &&
        (!ef_name_valid(p.model) || !(p.sample_rate > 0 && p.sample_rate <= 1) || p.batch < 1))
        abort();
    if (p.model[0] && !ef_name_valid(p.model))
        abort();
    if (collect_policy_parse((const char *)data, size, &again) != 0 || again.enabled != p.enabled ||
        strcmp(again.model, p.model) != 0 || again.dataset_id != p.dataset_id ||
        again.batch != p.batch)
        abort();
    return 0;
}
