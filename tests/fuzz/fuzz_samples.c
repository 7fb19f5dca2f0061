/* fuzz_samples.c - libFuzzer target for the device sample upload parser;
 * whatever it accepts must satisfy what the database and the FANN export rely
 * on, and samples_check must hold to its word on it. */
#include "server/samples_parse.h"
#include "common/topic.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct samples_batch b;
    long index = -2;
    char msg[200];
    size_t first_len, used = 0;
    if (samples_parse((const char *)data, size, &b, &index, msg, sizeof(msg)) != 0) {
        if (b.items || b.values || b.count || index < -1 || index >= SAMPLES_MAX_COUNT)
            abort();
        return 0;
    }
    if (index != -1 || !ef_name_valid(b.model) || b.version < 1 || b.dataset_id < 1 ||
        b.count < 1 || b.count > SAMPLES_MAX_COUNT || b.labelled > b.count)
        abort();
    for (size_t i = 0; i < b.count; i++) {
        const struct samples_item *it = &b.items[i];
        if (it->len < 1 || it->len > SAMPLES_MAX_INPUT || it->offset != used || it->label < -1 ||
            it->label > SAMPLES_MAX_LABEL)
            abort();
        for (size_t k = 0; k < it->len; k++)
            if (!isfinite(b.values[it->offset + k]))
                abort();
        used += it->len;
    }
    /* A batch that passes the check for its first input's length and any
     * label really has that shape. */
    first_len = b.items[0].len;
    if (samples_check(&b, first_len, SAMPLES_MAX_LABEL + 1, msg, sizeof(msg)) == 0)
        for (size_t i = 0; i < b.count; i++)
            if (b.items[i].len != first_len)
                abort();
    samples_batch_clear(&b);
    return 0;
}
