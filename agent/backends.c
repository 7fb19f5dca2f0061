/*
 * backends.c - finds and loads the inference backend modules
 * (edgefleet-backend-<name>.so), each with dlopen(RTLD_NOW | RTLD_LOCAL) so
 * that the FANN builds they link never share a symbol (see backend.h).
 */
#include "agent/backend.h"
#include "common/ef_error.h"
#include "common/log.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The backends this agent knows, by the name manifests give them. */
static const char *const known[] = {"fann", "fann-fixed"};
#define KNOWN_COUNT (sizeof(known) / sizeof(known[0]))

struct backend_module {
    void *handle;                  /* from dlopen; NULL when not loaded */
    const struct backend_api *api; /* the module's table, borrowed from it */
};

struct backends {
    struct backend_module mods[KNOWN_COUNT]; /* same order as known[] */
};

/* Loads dir/edgefleet-backend-<name>.so and checks that it is the backend it
 * claims to be. A module that cannot be used is logged and left unloaded. */
static void module_open(const char *dir, const char *name, struct backend_module *mod)
{
    char path[PATH_MAX], quoted[PATH_MAX + 8];
    backend_entry_fn entry = NULL;
    const struct backend_api *api = NULL;
    void *handle = NULL;
    int n = snprintf(path, sizeof(path), "%s/edgefleet-backend-%s.so", dir, name);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        ef_warn("backend_skipped", "backend=%s reason=path_too_long", name);
        goto out;
    }
    ef_log_quote(path, quoted, sizeof(quoted));
    /* RTLD_NODELETE: a module stays mapped after dlclose, so that what it
     * allocated stays attributable (sanitizer reports, core files) and no
     * libfann destructor runs while the process ends. */
    if (!(handle = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE))) {
        char why[512];
        ef_warn("backend_skipped", "backend=%s path=%s reason=%s", name, quoted,
                ef_log_quote(dlerror(), why, sizeof(why)));
        goto out;
    }
    /* POSIX guarantees that a function pointer survives the round trip
     * through dlsym's void *; copying the bytes keeps ISO C quiet. */
    void *sym = dlsym(handle, EF_BACKEND_ENTRY);
    memcpy(&entry, &sym, sizeof(entry));
    if (!entry || !(api = entry())) {
        ef_warn("backend_skipped", "backend=%s path=%s reason=no_entry_point", name, quoted);
        goto out;
    }
    if (api->abi != EF_BACKEND_ABI || !api->name || strcmp(api->name, name) != 0 || !api->load ||
        !api->run || !api->free_model || !api->describe) {
        ef_warn("backend_skipped", "backend=%s path=%s reason=abi_or_name_mismatch abi=%d", name,
                quoted, api->abi);
        goto out;
    }
    mod->handle = handle;
    mod->api = api;
    handle = NULL;
    ef_info("backend_loaded", "backend=%s path=%s", name, quoted);
out:
    if (handle)
        dlclose(handle);
}

int backends_open(const char *dir, struct backends **out)
{
    int rc = 0;
    size_t loaded = 0;
    struct backends *b = calloc(1, sizeof(*b));
    *out = NULL;
    if (!b) {
        rc = EF_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < KNOWN_COUNT; i++) {
        module_open(dir, known[i], &b->mods[i]);
        loaded += b->mods[i].api != NULL;
    }
    if (loaded == 0) {
        rc = EF_ENOENT;
        goto out;
    }
    *out = b;
    b = NULL;
out:
    backends_close(b);
    return rc;
}

void backends_close(struct backends *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < KNOWN_COUNT; i++)
        if (b->mods[i].handle)
            dlclose(b->mods[i].handle);
    free(b);
}

const struct backend_api *backends_get(const struct backends *b, const char *name)
{
    if (!b || !name)
        return NULL;
    for (size_t i = 0; i < KNOWN_COUNT; i++)
        if (b->mods[i].api && strcmp(known[i], name) == 0)
            return b->mods[i].api;
    return NULL;
}

int backends_default_dir(char *buf, size_t size)
{
    const char *env = getenv("EF_BACKEND_DIR");
    char exe[PATH_MAX];
    int n;
    if (env && *env) {
        n = snprintf(buf, size, "%s", env);
    } else {
        ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (len < 0)
            return ef_from_errno(errno);
        if ((size_t)len >= sizeof(exe) - 1)
            return EF_ETOOBIG;
        exe[len] = '\0';
        char *slash = strrchr(exe, '/');
        if (!slash)
            return EF_EIO;
        *slash = '\0';
        n = snprintf(buf, size, "%s/../lib/edgefleet", exe);
    }
    if (n < 0 || (size_t)n >= size)
        return EF_ETOOBIG;
    return 0;
}
