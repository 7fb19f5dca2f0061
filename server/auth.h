/*
 * auth.h - who is calling: bearer tokens to principals.
 *
 * Tokens are random 256-bit strings with a prefix naming their kind:
 * "efa_" API tokens (with a role), "efd_" device tokens, "efe_" enrollment
 * tokens. Only their BLAKE2b hashes are stored, and a token is found by its
 * hash: timing can only tell about the hash of a 256-bit random secret,
 * which says nothing useful about the secret.
 */
#ifndef EF_AUTH_H
#define EF_AUTH_H

#include "common/topic.h"

#include <stdbool.h>
#include <stdint.h>

struct db;
struct checkin;

#define AUTH_PREFIX_API    "efa"
#define AUTH_PREFIX_DEVICE "efd"
#define AUTH_PREFIX_ENROLL "efe"

enum role { ROLE_NONE = 0, ROLE_VIEWER = 1, ROLE_OPERATOR = 2, ROLE_ADMIN = 3 };

enum principal_kind {
    PRINCIPAL_ANONYMOUS, /* no or unknown credentials */
    PRINCIPAL_API,       /* an API token; role says what it may do */
    PRINCIPAL_DEVICE,    /* a device token; device_id says which */
    PRINCIPAL_ENROLL,    /* an enrollment token; token_id says which */
};

struct principal {
    enum principal_kind kind;
    enum role role;                       /* API tokens only */
    int64_t token_id;                     /* API or enrollment token row */
    char device_id[EF_DEVICE_ID_MAX + 1]; /* device tokens only */
    char name[64];                        /* API token name, for the audit log */
};

/* Role name to enum and back ("admin", "operator", "viewer"). */
int auth_role_parse(const char *s, enum role *out);
const char *auth_role_name(enum role role);

/* Resolves an Authorization header value ("Bearer TOKEN", may be NULL) into
 * *who. Device tokens are looked up in the check-in cache first (cache may be
 * NULL), then in db. 0 with PRINCIPAL_ANONYMOUS when there is no header;
 * EF_EAUTH when the header is malformed or the token unknown, revoked or
 * expired; EF_EDB. */
int auth_authenticate(struct db *db, struct checkin *cache, const char *header,
                      struct principal *who);

/* Writes "token:ID (NAME)", "device:ID", "enroll-token:ID" or "anonymous". */
void auth_describe(const struct principal *who, char *buf, size_t size);

#endif
