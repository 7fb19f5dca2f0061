/* ef_error.c - names and messages of the EF_E* codes, from the one table. */
#include "common/ef_error.h"

#include <errno.h>
#include <stddef.h>

struct error_entry {
    int code;
    const char *name;
    const char *message;
};

static const struct error_entry error_table[] = {
#define EF_X_ENTRY(name, value, str, msg) {value, str, msg},
    EF_ERRORS(EF_X_ENTRY)
#undef EF_X_ENTRY
};

static const struct error_entry *error_find(int code)
{
    for (size_t i = 0; i < sizeof(error_table) / sizeof(error_table[0]); i++)
        if (error_table[i].code == code)
            return &error_table[i];
    return NULL;
}

const char *ef_strerror(int code)
{
    const struct error_entry *e = error_find(code);
    return e ? e->message : "unknown error";
}

const char *ef_errname(int code)
{
    const struct error_entry *e = error_find(code);
    return e ? e->name : "unknown";
}

int ef_from_errno(int errnum)
{
    switch (errnum) {
    case 0:
        return EF_OK;
    case ENOMEM:
        return EF_ENOMEM;
    case ENOENT:
        return EF_ENOENT;
    case EEXIST:
        return EF_EEXIST;
    case EACCES:
    case EPERM:
        return EF_EPERM;
    case EINVAL:
        return EF_EINVAL;
    case EFBIG:
    case ENOSPC:
        return EF_ETOOBIG;
    case ETIMEDOUT:
        return EF_ETIMEDOUT;
    case EBUSY:
    case EAGAIN:
        return EF_EBUSY;
    default:
        return EF_EIO;
    }
}
