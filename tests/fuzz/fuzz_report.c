/* fuzz_report.c - libFuzzer target for the device `reported` parser. */
#include "server/report.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct report r;
    char msg[128];
    (void)report_parse((const char *)data, size, &r, msg, sizeof(msg));
    return 0;
}
