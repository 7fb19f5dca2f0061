/* args.c - option tables, NAME@VERSION, key=value, integers and booleans. */
#include "server/cli/args.h"
#include "common/ef_error.h"
#include "common/topic.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Finds the option called name (len bytes, not NUL-terminated). */
static struct args_opt *find_opt(struct args_opt *opts, size_t nopts, const char *name, size_t len)
{
    for (size_t i = 0; i < nopts; i++)
        if (strlen(opts[i].name) == len && memcmp(opts[i].name, name, len) == 0)
            return &opts[i];
    return NULL;
}

/* Records one value of opt; the values array is sized for every argument so
 * it never needs to grow. */
static int add_value(struct args_opt *opt, const char *value, int argc)
{
    if (!opt->values) {
        opt->values = calloc((size_t)argc, sizeof(*opt->values));
        if (!opt->values)
            return EF_ENOMEM;
    }
    opt->values[opt->count++] = value;
    return 0;
}

int args_parse(int argc, char **argv, struct args_opt *opts, size_t nopts, const char **pos,
               size_t max_pos, size_t *npos, bool *help, int flags, char *msg, size_t msg_size)
{
    int rc = 0, i = 0;
    bool options_done = false;
    *npos = 0;
    *help = false;
    for (i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (options_done || arg[0] != '-' || arg[1] == '\0') {
            if (flags & ARGS_STOP_AT_POSITIONAL)
                break;
            if (*npos >= max_pos) {
                snprintf(msg, msg_size, "unexpected argument '%s'", arg);
                rc = EF_EINVAL;
                goto out;
            }
            pos[(*npos)++] = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            options_done = true;
            continue;
        }
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            *help = true;
            goto out;
        }
        if (arg[1] != '-') {
            snprintf(msg, msg_size, "unknown option '%s'", arg);
            rc = EF_EINVAL;
            goto out;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
        struct args_opt *opt = find_opt(opts, nopts, name, name_len);
        if (!opt) {
            snprintf(msg, msg_size, "unknown option '--%.*s'", (int)name_len, name);
            rc = EF_EINVAL;
            goto out;
        }
        if (opt->count > 0 && !opt->repeat) {
            snprintf(msg, msg_size, "option '--%s' given more than once", opt->name);
            rc = EF_EINVAL;
            goto out;
        }
        const char *value = NULL;
        if (!opt->metavar) {
            if (eq) {
                snprintf(msg, msg_size, "option '--%s' takes no value", opt->name);
                rc = EF_EINVAL;
                goto out;
            }
            value = "";
        } else if (eq) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            snprintf(msg, msg_size, "option '--%s' needs a value (%s)", opt->name, opt->metavar);
            rc = EF_EINVAL;
            goto out;
        }
        if ((rc = add_value(opt, value, argc)) != 0)
            goto out;
    }
out:
    if (flags & ARGS_STOP_AT_POSITIONAL)
        *npos = (size_t)i;
    return rc;
}

void args_opts_release(struct args_opt *opts, size_t nopts)
{
    for (size_t i = 0; i < nopts; i++) {
        free(opts[i].values);
        opts[i].values = NULL;
        opts[i].count = 0;
    }
}

const char *args_value(const struct args_opt *opt)
{
    return opt->count > 0 ? opt->values[opt->count - 1] : NULL;
}

int args_name_version(const char *s, bool version_required, char name[ARGS_NAME_SIZE],
                      int64_t *version, char *msg, size_t msg_size)
{
    const char *at = strchr(s, '@');
    size_t len = at ? (size_t)(at - s) : strlen(s);
    *version = 0;
    name[0] = '\0';
    if (len == 0 || len >= ARGS_NAME_SIZE) {
        snprintf(msg, msg_size, "'%s' is not NAME%s", s,
                 version_required ? "@VERSION" : "[@VERSION]");
        return EF_EINVAL;
    }
    memcpy(name, s, len);
    name[len] = '\0';
    if (!ef_name_valid(name)) {
        snprintf(msg, msg_size,
                 "'%s' is not a valid name (1-64 of a-z 0-9 . _ -, starting with a letter or "
                 "digit)",
                 name);
        return EF_EINVAL;
    }
    if (!at) {
        if (version_required) {
            snprintf(msg, msg_size, "'%s' needs a version: NAME@VERSION", s);
            return EF_EINVAL;
        }
        return 0;
    }
    return args_int(at + 1, 1, INT64_MAX, version, msg, msg_size);
}

int args_kv_split(const char *s, char key[ARGS_KEY_MAX + 1], const char **value, char *msg,
                  size_t msg_size)
{
    const char *eq = strchr(s, '=');
    size_t len = eq ? (size_t)(eq - s) : 0;
    key[0] = '\0';
    *value = NULL;
    if (!eq || len == 0) {
        snprintf(msg, msg_size, "'%s' is not key=value", s);
        return EF_EINVAL;
    }
    if (len > ARGS_KEY_MAX) {
        snprintf(msg, msg_size, "key of '%s' is longer than %d characters", s, ARGS_KEY_MAX);
        return EF_EINVAL;
    }
    for (const char *p = s; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            snprintf(msg, msg_size, "'key=value' holds a control character");
            return EF_EINVAL;
        }
    }
    memcpy(key, s, len);
    key[len] = '\0';
    *value = eq + 1;
    return 0;
}

int args_kv_add(json_t *obj, const char *s, char *msg, size_t msg_size)
{
    char key[ARGS_KEY_MAX + 1];
    const char *value = NULL;
    int rc = args_kv_split(s, key, &value, msg, msg_size);
    if (rc != 0)
        return rc;
    /* json_string refuses text that is not UTF-8; keys must be UTF-8 too. */
    json_t *key_check = json_string(key);
    if (!key_check) {
        snprintf(msg, msg_size, "key of '%s' is not valid UTF-8", s);
        return EF_EINVAL;
    }
    json_decref(key_check);
    if (json_object_get(obj, key)) {
        snprintf(msg, msg_size, "key '%s' given more than once", key);
        return EF_EINVAL;
    }
    json_t *str = json_string(value);
    if (!str) {
        snprintf(msg, msg_size, "value of '%s' is not valid UTF-8", key);
        return EF_EINVAL;
    }
    return json_object_set_new(obj, key, str) == 0 ? 0 : EF_ENOMEM;
}

int args_int(const char *s, int64_t min, int64_t max, int64_t *out, char *msg, size_t msg_size)
{
    char *end = NULL;
    errno = 0;
    /* strtoll alone would accept leading blanks and a '+'. */
    bool digits = isdigit((unsigned char)s[0]) || (s[0] == '-' && isdigit((unsigned char)s[1]));
    long long v = digits ? strtoll(s, &end, 10) : 0;
    if (!end || *end != '\0' || errno != 0 || v < min || v > max) {
        if (max == INT64_MAX)
            snprintf(msg, msg_size, "'%s' is not an integer >= %" PRId64, s, min);
        else
            snprintf(msg, msg_size, "'%s' is not an integer from %" PRId64 " to %" PRId64, s, min,
                     max);
        return EF_EINVAL;
    }
    *out = (int64_t)v;
    return 0;
}

int args_bool(const char *s, bool *out, char *msg, size_t msg_size)
{
    if (strcmp(s, "true") == 0) {
        *out = true;
        return 0;
    }
    if (strcmp(s, "false") == 0) {
        *out = false;
        return 0;
    }
    snprintf(msg, msg_size, "'%s' is neither true nor false", s);
    return EF_EINVAL;
}
