/*
 * store.c - the content-addressed artifact store: object paths, presence,
 * and adopting completed uploads durably.
 */
#include "server/store.h"
#include "common/crypto.h"
#include "common/ef_error.h"
#include "common/fsutil.h"
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STORE_DIR_MODE    0750
#define STORE_OBJECT_MODE 0440 /* objects never change once adopted */

struct store {
    char *dir; /* root directory, owned */
};

int store_open(const char *dir, struct store **out)
{
    int rc = 0;
    struct store *s = calloc(1, sizeof(*s));
    *out = NULL;
    if (!s || !(s->dir = strdup(dir))) {
        rc = EF_ENOMEM;
        goto out;
    }
    if ((rc = ef_mkdir_p(dir, STORE_DIR_MODE)) != 0) {
        ef_error("store_open", "dir=%s error=%s", dir, ef_errname(rc));
        goto out;
    }
    *out = s;
    s = NULL;
out:
    store_close(s);
    return rc;
}

void store_close(struct store *s)
{
    if (!s)
        return;
    free(s->dir);
    free(s);
}

int store_path(const struct store *s, const char *sha256, char *buf, size_t size)
{
    if (!ef_is_sha256_hex(sha256))
        return EF_EINVAL;
    int n = snprintf(buf, size, "%s/%.2s/%s", s->dir, sha256, sha256);
    return n < 0 || (size_t)n >= size ? EF_ETOOBIG : 0;
}

/* Writes the fan-out directory of an object (store/ab) into buf. */
static int fanout_dir(const struct store *s, const char *sha256, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s/%.2s", s->dir, sha256);
    return n < 0 || (size_t)n >= size ? EF_ETOOBIG : 0;
}

bool store_has(const struct store *s, const char *sha256)
{
    char path[4096];
    struct stat st;
    if (store_path(s, sha256, path, sizeof(path)) != 0)
        return false;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Creates the fan-out directory if needed; a new directory entry in the
 * root is made durable before any object is linked below it. */
static int ensure_fanout(const struct store *s, const char *sub)
{
    if (mkdir(sub, STORE_DIR_MODE) == 0)
        return ef_fsync_dir(s->dir);
    return errno == EEXIST ? 0 : ef_from_errno(errno);
}

/* Puts tmp_path in place as path without ever replacing an existing object.
 * link() is atomic and refuses an existing name; file systems without hard
 * links fall back to rename(), which is safe here because an existing object
 * has the same bytes. */
static int place(const char *tmp_path, const char *path)
{
    if (link(tmp_path, path) == 0 || errno == EEXIST)
        return 0;
    if (errno == EPERM || errno == ENOTSUP || errno == ENOSYS) {
        if (rename(tmp_path, path) == 0)
            return 0;
    }
    return ef_from_errno(errno);
}

int store_adopt(struct store *s, const char *tmp_path, const char *sha256)
{
    int rc = 0, fd = -1;
    char path[4096], sub[4096];
    if ((rc = store_path(s, sha256, path, sizeof(path))) != 0 ||
        (rc = fanout_dir(s, sha256, sub, sizeof(sub))) != 0)
        goto out;
    if (store_has(s, sha256))
        goto drop_tmp;
    fd = open(tmp_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = ef_from_errno(errno);
        goto out;
    }
    /* The bytes must be on disk before a name in the store points at them:
     * after a crash an object is complete or absent. */
    if (fsync(fd) != 0 || fchmod(fd, STORE_OBJECT_MODE) != 0) {
        rc = ef_from_errno(errno);
        goto out;
    }
    if ((rc = ensure_fanout(s, sub)) != 0 || (rc = place(tmp_path, path)) != 0 ||
        (rc = ef_fsync_dir(sub)) != 0)
        goto out;
drop_tmp:
    if (unlink(tmp_path) != 0 && errno != ENOENT)
        ef_warn("store_tmp_unlink", "path=%s errno=%d", tmp_path, errno);
out:
    if (fd >= 0)
        close(fd);
    if (rc != 0)
        ef_error("store_adopt", "sha256=%.64s error=%s", sha256 ? sha256 : "", ef_errname(rc));
    return rc;
}
