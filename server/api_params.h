/*
 * api_params.h - query arguments that several REST resources read the same
 * way: integers in a range (`limit`, `before`) and times (`since`,
 * `until`; docs/monitoring.md).
 */
#ifndef EF_API_PARAMS_H
#define EF_API_PARAMS_H

#include <stdbool.h>
#include <stdint.h>

struct request;

#define API_TIME_AGO_MAX_S   (100LL * 366 * 24 * 3600) /* "seconds ago" at most a century */
#define API_TIME_UNIX_DIGITS 13 /* a number this long is Unix ms, shorter seconds ago */

/* Reads query argument key of req as a decimal integer in min..max into
 * *out, leaving *out alone when the argument is absent. False when it is
 * present but not such a number (a sign, other characters, out of range). */
bool api_query_int(const struct request *req, const char *key, long long min, long long max,
                   long long *out);

/* Reads a time: Unix ms (13 to 15 digits, not starting with 0), a whole
 * number of seconds before now (at most 12 digits, at most
 * API_TIME_AGO_MAX_S), or an RFC 3339 UTC time, into *out (Unix ms). False
 * when s is none of them. */
bool api_time_value(const char *s, int64_t now, int64_t *out);

#endif
