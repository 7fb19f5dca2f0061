/* fsutil.c - atomic writes, bounded reads, directories. */
#include "common/fsutil.h"
#include "common/ef_error.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *ef_path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

int ef_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return ef_from_errno(errno);
    int rc = fsync(fd) == 0 ? 0 : ef_from_errno(errno);
    close(fd);
    return rc;
}

static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return ef_from_errno(errno);
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int ef_atomic_write(const char *path, const void *data, size_t len, mode_t mode)
{
    int rc = 0, fd = -1;
    char *tmp = NULL, *dir_copy = NULL;
    size_t n = strlen(path) + 16;
    tmp = malloc(n);
    dir_copy = strdup(path);
    if (!tmp || !dir_copy) {
        rc = EF_ENOMEM;
        goto out;
    }
    snprintf(tmp, n, "%s.tmpXXXXXX", path);
    fd = mkstemp(tmp);
    if (fd < 0) {
        rc = ef_from_errno(errno);
        goto out;
    }
    if (fchmod(fd, mode) != 0 || (rc = write_all(fd, data, len)) != 0 || fsync(fd) != 0) {
        rc = rc ? rc : ef_from_errno(errno);
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = ef_from_errno(errno);
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        rc = ef_from_errno(errno);
        goto out;
    }
    rc = ef_fsync_dir(dirname(dir_copy));
out:
    if (fd >= 0)
        close(fd);
    if (rc != 0 && tmp)
        unlink(tmp);
    free(tmp);
    free(dir_copy);
    return rc;
}

int ef_read_file(const char *path, size_t max, char **out, size_t *len)
{
    int rc = 0;
    char *buf = NULL;
    FILE *f = fopen(path, "rb");
    struct stat st;
    *out = NULL;
    if (!f)
        return ef_from_errno(errno);
    if (fstat(fileno(f), &st) != 0) {
        rc = ef_from_errno(errno);
        goto out;
    }
    if ((size_t)st.st_size > max) {
        rc = EF_ETOOBIG;
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        rc = EF_ENOMEM;
        goto out;
    }
    size_t got = fread(buf, 1, (size_t)st.st_size, f);
    if (got != (size_t)st.st_size || ferror(f)) {
        rc = EF_EIO;
        goto out;
    }
    buf[got] = '\0';
    *out = buf;
    buf = NULL;
    if (len)
        *len = got;
out:
    free(buf);
    fclose(f);
    return rc;
}

int ef_mkdir_p(const char *path, mode_t mode)
{
    if (!path || !*path)
        return EF_EINVAL;
    char *copy = strdup(path);
    int rc = 0;
    if (!copy)
        return EF_ENOMEM;
    for (char *p = copy + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            struct stat st;
            *p = '\0';
            /* EEXIST is fine only when what exists is a directory. */
            if (mkdir(copy, mode) != 0) {
                int err = errno;
                if (err != EEXIST || stat(copy, &st) != 0 || !S_ISDIR(st.st_mode)) {
                    rc = ef_from_errno(err);
                    break;
                }
            }
            *p = saved;
            if (saved == '\0')
                break;
        }
    }
    free(copy);
    return rc;
}
