/*
 * args.h - command-line argument parsing for the edgefleet CLI.
 *
 * args_parse() splits a verb's arguments into options (--name VALUE,
 * --name=VALUE, --flag) and positionals, against a table the verb declares.
 * The helpers below parse the small value syntaxes the commands share:
 * NAME[@VERSION], key=value pairs, bounded integers and booleans. None of
 * them print anything: they return EF_EINVAL with a reason in msg, and the
 * caller turns that into a usage error.
 */
#ifndef EF_CLI_ARGS_H
#define EF_CLI_ARGS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARGS_NAME_SIZE 65 /* a model or ring name (64 characters) and a NUL */
#define ARGS_KEY_MAX   64 /* longest key of a key=value pair */

/* One option a verb accepts. The caller fills name, metavar and repeat;
 * args_parse fills count and values. */
struct args_opt {
    const char *name;    /* "ring" for --ring */
    const char *metavar; /* "R" when the option takes a value; NULL for a flag */
    bool repeat;         /* may be given more than once */
    size_t count;        /* times given */
    const char **values; /* count values borrowed from argv, in order; the
                            array itself is owned (args_opts_release) */
};

/* args_parse flags. */
#define ARGS_STOP_AT_POSITIONAL 1 /* stop at the first positional (global flags) */

/*
 * Parses argc arguments of argv against nopts options. Positionals are stored
 * (borrowed) in pos, at most max_pos of them; *npos receives their count, and
 * with ARGS_STOP_AT_POSITIONAL *npos is the index of the first unparsed
 * argument instead. "--" ends the options. -h or --help sets *help and stops
 * parsing at once. Returns 0, EF_EINVAL (unknown option, missing value,
 * option repeated, too many positionals; reason in msg) or EF_ENOMEM.
 */
int args_parse(int argc, char **argv, struct args_opt *opts, size_t nopts, const char **pos,
               size_t max_pos, size_t *npos, bool *help, int flags, char *msg, size_t msg_size);

/* Frees the values arrays that args_parse allocated and resets the counts. */
void args_opts_release(struct args_opt *opts, size_t nopts);

/* The last value of an option, or NULL when it was not given (borrowed). */
const char *args_value(const struct args_opt *opt);

/*
 * Parses "NAME" or "NAME@VERSION": NAME must satisfy ef_name_valid and
 * VERSION be an integer >= 1. name receives a copy; *version receives the
 * version, or 0 when absent and version_required is false. EF_EINVAL.
 */
int args_name_version(const char *s, bool version_required, char name[ARGS_NAME_SIZE],
                      int64_t *version, char *msg, size_t msg_size);

/*
 * Splits "key=value" at the first '='. The key (1..ARGS_KEY_MAX characters,
 * no control characters) is copied into key; *value borrows the rest of s,
 * which may be empty. EF_EINVAL.
 */
int args_kv_split(const char *s, char key[ARGS_KEY_MAX + 1], const char **value, char *msg,
                  size_t msg_size);

/* Adds "key=value" to obj as a string member. EF_EINVAL for a malformed pair
 * or a key already present, EF_ENOMEM. */
int args_kv_add(json_t *obj, const char *s, char *msg, size_t msg_size);

/* Parses a decimal integer in [min, max], nothing else around it. EF_EINVAL. */
int args_int(const char *s, int64_t min, int64_t max, int64_t *out, char *msg, size_t msg_size);

/* Parses "true" or "false". EF_EINVAL. */
int args_bool(const char *s, bool *out, char *msg, size_t msg_size);

#endif
