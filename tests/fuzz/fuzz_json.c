/*
 * fuzz_json.c - fuzz target for ef_json_load, the gate every outside JSON passes.
 *
 * Beyond "does not crash", it checks properties: the size bound is enforced
 * before parsing, and a loaded document dumps to canonical bytes that load
 * back to the same document and the same bytes.
 */
#include "common/ef_error.h"
#include "common/json_util.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_JSON_MAX (1u << 20)

static const char *const allowed_keys[] = {"payload", "signature", "name", "version", NULL};

/* Touches the accessors with whatever the fuzzer built. */
static void exercise_accessors(const json_t *doc)
{
    const char *unknown = NULL;
    int64_t i = 0;
    double *values = NULL;
    size_t n = 0;
    if (!ef_json_keys_allowed(doc, allowed_keys, &unknown) && !unknown)
        abort();
    (void)ef_json_str(doc, "name");
    (void)ef_json_int(doc, "version", &i);
    if (ef_json_read_doubles(doc, 0, 4096, &values, &n) == 0 && n == 0)
        abort();
    free(values);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    json_t *doc = NULL, *again = NULL;
    char *bytes = NULL, *bytes_again = NULL;
    char msg[256];
    if (size > 0 && ef_json_load(text, size, size - 1, &doc, msg, sizeof(msg)) != EF_ETOOBIG)
        abort();
    if (ef_json_load(text, size, FUZZ_JSON_MAX, &doc, msg, sizeof(msg)) != 0)
        goto out;
    exercise_accessors(doc);
    bytes = ef_json_dump(doc);
    if (!bytes)
        abort();
    /* Canonical bytes are a fixed point: load(dump(x)) == x, dump again equal. */
    if (ef_json_load(bytes, strlen(bytes), 8 * FUZZ_JSON_MAX, &again, msg, sizeof(msg)) != 0 ||
        !json_equal(doc, again))
        abort();
    bytes_again = ef_json_dump(again);
    if (!bytes_again || strcmp(bytes, bytes_again) != 0)
        abort();
out:
    free(bytes);
    free(bytes_again);
    json_decref(doc);
    json_decref(again);
    return 0;
}
