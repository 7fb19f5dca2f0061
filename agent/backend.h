/*
 * backend.h - the inference backend interface, and the loader of backend
 * modules.
 *
 * Debian's libfann ships float, double and fixed-point builds as separate
 * libraries exporting the same symbol names, so one process cannot link two
 * of them. Each backend is therefore its own shared module
 * (edgefleet-backend-fann.so linked with libfloatfann,
 * edgefleet-backend-fann-fixed.so linked with libfixedfann), loaded with
 * dlopen(RTLD_NOW | RTLD_LOCAL) so their FANN symbols never meet (and
 * RTLD_NODELETE: they stay mapped until the process ends). A module exports
 * one function, ef_backend_entry, returning its table, and links nothing of
 * edgefleet's own.
 *
 * Values cross the interface as doubles whatever the backend computes in;
 * the fixed-point backend converts with the network's decimal point.
 * A loaded model is used by one thread at a time (FANN keeps neuron values in
 * the network): the serving model on the loop thread, a candidate on a
 * thread-pool thread during self-test, never both.
 */
#ifndef EF_AGENT_BACKEND_H
#define EF_AGENT_BACKEND_H

#include <stddef.h>

#define EF_BACKEND_ABI   1
#define EF_BACKEND_ENTRY "ef_backend_entry"

struct backend_model; /* opaque, owned by the module */

struct backend_api {
    int abi;          /* EF_BACKEND_ABI */
    const char *name; /* "fann" or "fann-fixed", as manifests name backends */

    /* Loads a model file into a new model, freed with free_model. 0, or with
     * a message in err: EF_ENOENT, EF_EPERM, EF_EIO (the file cannot be
     * read), EF_EMISMATCH (a network of the other kind: float for the
     * fixed-point backend or the reverse), EF_EINVAL (not a network this
     * backend loads), EF_ENOMEM. Thread-safe. The file must be trusted (its
     * hash checked against a verified manifest): FANN's reader is not
     * hardened against hostile files. */
    int (*load)(const char *path, struct backend_model **out, char *err, size_t err_size);

    /* Runs one inference: n_in inputs, n_out outputs (both must equal the
     * model's). 0, or EF_EINVAL when the counts differ or an input is outside
     * the backend's domain: not finite, or for fixed-point networks outside
     * [-1, 1] (beyond it FANN's integer arithmetic may overflow). Outputs may
     * be non-finite when the network itself misbehaves; callers check. */
    int (*run)(struct backend_model *m, const double *in, size_t n_in, double *out, size_t n_out);

    /* Frees a model; accepts NULL. */
    void (*free_model)(struct backend_model *m);

    /* The model's input and output counts. */
    void (*describe)(const struct backend_model *m, size_t *n_in, size_t *n_out);
};

typedef const struct backend_api *(*backend_entry_fn)(void);

/* The set of loaded backend modules; owned by the agent. */
struct backends;

/* Loads every known module found in dir ("fann", "fann-fixed"), each from
 * dir/edgefleet-backend-<name>.so, and checks its ABI version and name. A
 * module that is missing or wrong is skipped with a warning; EF_ENOENT when
 * none loads, EF_ENOMEM. *out is new, closed with backends_close. Loop
 * thread (dlopen runs the modules' constructors). */
int backends_open(const char *dir, struct backends **out);

/* Closes the modules; models must have been freed. Accepts NULL. */
void backends_close(struct backends *b);

/* The backend called name, or NULL when it is not loaded (or b is NULL).
 * Borrowed for as long as b is open; safe from any thread. */
const struct backend_api *backends_get(const struct backends *b, const char *name);

/* The default module directory: $EF_BACKEND_DIR if set and not empty, else
 * <dir of the executable>/../lib/edgefleet. Writes into buf. 0, EF_ETOOBIG
 * (does not fit in size bytes), or the error of reading /proc/self/exe. */
int backends_default_dir(char *buf, size_t size);

#endif
