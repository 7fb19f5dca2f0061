/* json_util.c - bounded, strict Jansson loading and small accessors. */
#include "common/json_util.h"
#include "common/ef_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ef_json_load(const char *buf, size_t len, size_t max_len, json_t **out, char *msg,
                 size_t msg_size)
{
    json_error_t err;
    *out = NULL;
    if (len > max_len) {
        if (msg)
            snprintf(msg, msg_size, "document of %zu bytes exceeds the limit of %zu", len,
                     max_len);
        return EF_ETOOBIG;
    }
    json_t *doc = json_loadb(buf ? buf : "", len, JSON_REJECT_DUPLICATES, &err);
    if (!doc) {
        if (msg)
            snprintf(msg, msg_size, "%s at line %d column %d", err.text, err.line, err.column);
        return EF_EPARSE;
    }
    *out = doc;
    return 0;
}

char *ef_json_dump(const json_t *value)
{
    return json_dumps(value, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

const char *ef_json_str(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

int ef_json_int(const json_t *obj, const char *key, int64_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return EF_ENOENT;
    if (!json_is_integer(v))
        return EF_EINVAL;
    *out = (int64_t)json_integer_value(v);
    return 0;
}

bool ef_json_keys_allowed(const json_t *obj, const char *const *allowed, const char **unknown)
{
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)obj, key, value)
    {
        bool found = false;
        for (const char *const *a = allowed; *a; a++)
            if (strcmp(*a, key) == 0)
                found = true;
        if (!found) {
            if (unknown)
                *unknown = key;
            return false;
        }
    }
    return true;
}

json_t *ef_json_doubles(const double *values, size_t n)
{
    json_t *array = json_array();
    if (!array)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (json_array_append_new(array, json_real(values[i])) != 0) {
            json_decref(array);
            return NULL;
        }
    }
    return array;
}

int ef_json_read_doubles(const json_t *array, size_t n, size_t max, double **out, size_t *count)
{
    *out = NULL;
    if (!json_is_array(array))
        return EF_EINVAL;
    size_t len = json_array_size(array);
    if ((n && len != n) || (!n && (len == 0 || len > max)))
        return EF_EINVAL;
    double *values = malloc(len * sizeof(*values));
    if (!values)
        return EF_ENOMEM;
    for (size_t i = 0; i < len; i++) {
        json_t *v = json_array_get(array, i);
        if (!json_is_number(v)) {
            free(values);
            return EF_EINVAL;
        }
        values[i] = json_number_value(v);
    }
    *out = values;
    if (count)
        *count = len;
    return 0;
}
