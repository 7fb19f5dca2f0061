/*
 * store.h - the content-addressed artifact store under DATA_DIR/store/.
 *
 * An artifact lives at store/ab/abcdef... where the file name is the full
 * lowercase hex SHA-256 of its bytes and "ab" its first two digits. Objects
 * are written once (by adopting a completed upload from DATA_DIR/tmp/, which
 * is on the same file system) and never change, so any number of readers may
 * open them while others are adopted. Versions refer to objects by sha256;
 * two versions with the same bytes share one object.
 */
#ifndef EF_STORE_H
#define EF_STORE_H

#include <stdbool.h>
#include <stddef.h>

struct store;

/* Opens the store rooted at dir, creating the directory (mode 0750) if
 * needed. *out is owned by the caller (store_close). EF_ENOMEM, or the error
 * of creating the directory (EF_EIO, EF_EPERM). */
int store_open(const char *dir, struct store **out);

/* Frees the handle; the objects stay on disk. Accepts NULL. */
void store_close(struct store *s);

/* Writes the path of the object sha256 into buf (whether or not it exists).
 * EF_EINVAL when sha256 is not 64 lowercase hex digits, EF_ETOOBIG when buf
 * is too small. */
int store_path(const struct store *s, const char *sha256, char *buf, size_t size);

/* True when the object sha256 is present (false too for a malformed hash). */
bool store_has(const struct store *s, const char *sha256);

/* Moves the completed file tmp_path into the store as object sha256: the
 * file is fsync'd, made read-only, linked in place, the directory fsync'd,
 * and tmp_path removed. When the object exists already, tmp_path is just
 * removed. The caller vouches that the content hashes to sha256 (the HTTP
 * layer computes it while receiving). tmp_path must be on the store's file
 * system. EF_EINVAL (malformed hash), EF_ENOENT (no tmp_path), EF_EIO,
 * EF_EPERM, EF_ENOMEM. On failure the store holds no partial object. */
int store_adopt(struct store *s, const char *tmp_path, const char *sha256);

#endif
