/*
 * output.h - how the CLI prints what the server answered.
 *
 * With --json a command prints the server's JSON document as it was sent,
 * only re-indented (output_json_text), so numbers keep their exact text.
 * Without it, lists become aligned tables (output_table) and single objects
 * "key: value" lines (output_fields). Text from the server is printed with
 * control characters replaced, so a hostile string cannot drive the terminal.
 */
#ifndef EF_CLI_OUTPUT_H
#define EF_CLI_OUTPUT_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

/* One column of a table. */
struct output_col {
    const char *header; /* column title, upper case by convention */
    const char *path;   /* dotted member path in each row ("slots.production.state") */
    char *(*format)(const json_t *row); /* used instead of path when not NULL: returns a
                                           malloc'd cell, or NULL for "-" */
};

/*
 * Writes len bytes of JSON text (already validated) to f indented by two
 * spaces, one member per line, keeping every token's text as it is, and a
 * final newline. Returns 0 or EF_EIO.
 */
int output_json_text(FILE *f, const char *text, size_t len);

/* Writes a JSON value built by the CLI itself, indented, with a newline. */
int output_json_value(FILE *f, const json_t *value);

/* Writes rows (an array of objects) as a table with a header line; columns
 * are as wide as their widest cell, the last one is not padded. 0, EF_ENOMEM,
 * EF_EINVAL (rows not an array). */
int output_table(FILE *f, const json_t *rows, const struct output_col *cols, size_t ncols);

/* Writes every member of obj as "key: value", nested objects flattened to
 * dotted keys, keys aligned. Arrays of scalars are joined with ", "; arrays
 * holding objects show their length. 0 or EF_ENOMEM. */
int output_fields(FILE *f, const json_t *obj);

/* The member at a dotted path, or NULL (borrowed). */
const json_t *output_lookup(const json_t *obj, const char *path);

/* The display text of a value: strings without control characters, numbers,
 * true/false, "-" for null or absent, k=v lists for flat objects. Returns a
 * malloc'd string, or NULL when out of memory. */
char *output_scalar(const json_t *value);

/* The cell "name@version" of a model version (version as output_scalar
 * shows it). Returns a malloc'd string, or NULL when name is NULL or out of
 * memory (a "-" cell). */
char *output_name_version(const char *name, const json_t *version);

#endif
