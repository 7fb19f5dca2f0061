/*
 * fsutil.h - durable file operations.
 *
 * ef_atomic_write is how every file that must survive a crash is written:
 * a temporary file in the same directory, fsync, rename over the target,
 * fsync of the directory. Readers see the old or the new file, never a mix.
 */
#ifndef EF_FSUTIL_H
#define EF_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

/* Replaces path with len bytes of data, created with mode. 0 or EF_EIO/EF_EPERM. */
int ef_atomic_write(const char *path, const void *data, size_t len, mode_t mode);

/* Reads a whole file into a malloc'd NUL-terminated buffer (*len excludes the
 * NUL). EF_ENOENT, EF_ETOOBIG (larger than max), EF_EIO, EF_ENOMEM. */
int ef_read_file(const char *path, size_t max, char **out, size_t *len);

/* Creates a directory and its parents with mode; existing ones are fine. */
int ef_mkdir_p(const char *path, mode_t mode);

/* fsyncs the directory holding path (or path itself if it is a directory). */
int ef_fsync_dir(const char *dir);

/* Joins dir and name into a malloc'd path, or NULL. */
char *ef_path_join(const char *dir, const char *name);

#endif
