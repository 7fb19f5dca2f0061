/*
 * ef_error.h - the one error convention of edgefleet.
 *
 * Every function that can fail returns int: 0 on success, a negative EF_E*
 * code on failure. Codes from errno, SQLite, libmicrohttpd, libmosquitto and
 * libcurl are translated at the boundary where they appear. The table below is
 * the only list of codes; ef_strerror() and ef_errname() read it.
 */
#ifndef EF_ERROR_H
#define EF_ERROR_H

/* X(NAME, value, snake_case_name, message) */
#define EF_ERRORS(X)                                                                   \
    X(EF_OK, 0, "ok", "success")                                                       \
    X(EF_ENOMEM, -1, "out_of_memory", "out of memory")                                 \
    X(EF_EINVAL, -2, "invalid", "invalid argument or input")                           \
    X(EF_EIO, -3, "io_error", "input/output error")                                    \
    X(EF_ENOENT, -4, "not_found", "not found")                                         \
    X(EF_EEXIST, -5, "exists", "already exists")                                       \
    X(EF_EAUTH, -6, "unauthenticated", "missing or unknown credentials")              \
    X(EF_EPERM, -7, "forbidden", "not allowed")                                        \
    X(EF_ETOOBIG, -8, "too_large", "larger than allowed")                              \
    X(EF_EPARSE, -9, "malformed", "malformed input")                                   \
    X(EF_EBADSIG, -10, "bad_signature", "signature does not verify")                   \
    X(EF_EHASH, -11, "hash_mismatch", "content does not match its declared hash")      \
    X(EF_ESTALE, -12, "stale", "not newer than what is already held")                  \
    X(EF_EMISMATCH, -13, "mismatch", "meant for another model, device or class")       \
    X(EF_EDB, -14, "database_error", "database error")                                 \
    X(EF_ENET, -15, "network_error", "network error")                                  \
    X(EF_ETIMEDOUT, -16, "timed_out", "timed out")                                     \
    X(EF_EUNSUPPORTED, -17, "unsupported", "not supported")                            \
    X(EF_ECONFLICT, -18, "conflict", "conflicts with the current state")               \
    X(EF_EBUSY, -19, "busy", "resource busy")

enum ef_error {
#define EF_X_ENUM(name, value, str, msg) name = value,
    EF_ERRORS(EF_X_ENUM)
#undef EF_X_ENUM
};

/* Returns a static human-readable message for a code; never NULL. */
const char *ef_strerror(int code);

/* Returns the static snake_case name of a code ("not_found"); never NULL. */
const char *ef_errname(int code);

/* Translates a positive errno value into an EF_E* code. */
int ef_from_errno(int errnum);

#endif
