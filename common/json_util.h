/*
 * json_util.h - Jansson helpers with edgefleet's input rules.
 *
 * Everything that arrives from outside is loaded through ef_json_load():
 * bounded in size, duplicate keys rejected, one top-level value only.
 */
#ifndef EF_JSON_UTIL_H
#define EF_JSON_UTIL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Parses len bytes (not necessarily NUL-terminated). Fails with EF_ETOOBIG
 * when len > max_len and EF_EPARSE for malformed JSON or duplicate keys;
 * msg (may be NULL) receives Jansson's explanation. On success *out is a new
 * reference. */
int ef_json_load(const char *buf, size_t len, size_t max_len, json_t **out, char *msg,
                 size_t msg_size);

/* Serializes compactly with sorted keys, so equal documents give equal bytes.
 * Returns a malloc'd NUL-terminated string the caller frees, or NULL. */
char *ef_json_dump(const json_t *value);

/* Borrowed string member or NULL when absent or not a string. */
const char *ef_json_str(const json_t *obj, const char *key);

/* Integer member into *out; EF_ENOENT when absent, EF_EINVAL when not an integer. */
int ef_json_int(const json_t *obj, const char *key, int64_t *out);

/* True when obj has only keys from the NULL-terminated list allowed. The
 * first unknown key, if any, is stored in *unknown (borrowed). */
bool ef_json_keys_allowed(const json_t *obj, const char *const *allowed, const char **unknown);

/* New JSON array of n doubles, or NULL. */
json_t *ef_json_doubles(const double *values, size_t n);

/* Reads an array of numbers of exactly n entries (n == 0: any length up to
 * max) into a malloc'd array; *count receives the length. */
int ef_json_read_doubles(const json_t *array, size_t n, size_t max, double **out, size_t *count);

#endif
