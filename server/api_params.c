/*
 * api_params.c - query arguments several REST resources share
 * (api_params.h).
 */
#include "server/api_params.h"
#include "server/http.h"
#include "common/clock.h"

#include <stdlib.h>
#include <string.h>

bool api_query_int(const struct request *req, const char *key, long long min, long long max,
                   long long *out)
{
    const char *s = http_query(req, key);
    char *end = NULL;
    if (!s)
        return true;
    if (*s < '0' || *s > '9')
        return false;
    long long v = strtoll(s, &end, 10);
    if (*end || v < min || v > max)
        return false;
    *out = v;
    return true;
}

bool api_time_value(const char *s, int64_t now, int64_t *out)
{
    char *end = NULL;
    size_t n = strlen(s);
    if (s[0] >= '0' && s[0] <= '9' && n < API_TIME_UNIX_DIGITS) {
        long long secs = strtoll(s, &end, 10);
        if (*end == '\0' && secs <= API_TIME_AGO_MAX_S) {
            *out = now - secs * 1000;
            return true;
        }
    } else if (s[0] >= '1' && s[0] <= '9' && n <= 15) {
        long long ms = strtoll(s, &end, 10);
        if (*end == '\0') {
            *out = ms;
            return true;
        }
    }
    return ef_time_parse(s, out) == 0;
}
