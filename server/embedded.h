/*
 * embedded.h - files compiled into the server binary (cmake/embed.cmake):
 * the SQL migrations schema/NNN_*.sql and schema/openapi.yaml.
 */
#ifndef EF_EMBEDDED_H
#define EF_EMBEDDED_H

#include <stddef.h>

struct ef_embedded_file {
    const char *name; /* file name without directory, e.g. "001_init.sql" */
    const char *data; /* its bytes, NUL-terminated */
    size_t size;      /* bytes, without the NUL */
};

/* Sorted by name; ends with an entry whose name is NULL. */
extern const struct ef_embedded_file ef_embedded[];

#endif
