/*
 * backend_fann.c - the FANN inference backends, one source built twice:
 * edgefleet-backend-fann.so against the float library (<floatfann.h>) and
 * edgefleet-backend-fann-fixed.so against the fixed-point one (-DEF_FANN_FIXED,
 * <fixedfann.h>). Each is a dlopen'd module (see backend.h) and depends on
 * libfann, libc and libm only, never on ef_common's symbols, so that it stays
 * self-contained; EF_E* codes come from the header's enum.
 *
 * Values cross the interface as doubles. The fixed-point build multiplies
 * inputs by 2^decimal_point (the network's, from its file) and divides
 * outputs by it. Inference is fann_run, as FANN itself runs a network:
 * scaling parameters a file may carry (fann_scale_input) are not applied,
 * so a trainer that scales its data must ship networks that take raw inputs.
 */
#ifdef EF_FANN_FIXED
#include <fixedfann.h>
#define BACKEND_NAME "fann-fixed"
#define BACKEND_KIND "fixed-point"
#define OTHER_KIND   "float"
#define FILE_MAGIC   "FANN_FIX_"
#define OTHER_MAGIC  "FANN_FLO_"
#else
#include <floatfann.h>
#define BACKEND_NAME "fann"
#define BACKEND_KIND "float"
#define OTHER_KIND   "fixed-point"
#define FILE_MAGIC   "FANN_FLO_"
#define OTHER_MAGIC  "FANN_FIX_"
#endif

#include "agent/backend.h"
#include "common/ef_error.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Largest decimal point accepted: 2^30 still fits FANN's int arithmetic. */
#define MAX_DECIMAL_POINT 30

struct backend_model {
    struct fann *ann; /* owned */
    size_t n_in;      /* input neurons */
    size_t n_out;     /* output neurons */
    fann_type *in;    /* n_in inputs in FANN's type, reused by every run */
    double scale;     /* fixed point: 2^decimal_point; float: 1 */
};

static int fail(char *err, size_t err_size, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t err_size, int code, const char *fmt, ...)
{
    if (err && err_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_size, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* ef_from_errno's mapping for the few errors open and read give, repeated
 * here because the module must not link ef_common. */
static int code_of_errno(int errnum)
{
    switch (errnum) {
    case ENOENT:
    case ENOTDIR:
        return EF_ENOENT;
    case EACCES:
    case EPERM:
        return EF_EPERM;
    case ENOMEM:
        return EF_ENOMEM;
    default:
        return EF_EIO;
    }
}

/* FANN writes its errors to stderr unless told otherwise; the agent reports
 * load failures itself, in its own log format. The default log is a global
 * of this module's copy of libfann, so it is set once. */
static pthread_once_t quiet_once = PTHREAD_ONCE_INIT;

static void quiet_fann(void)
{
    fann_set_error_log(NULL, NULL);
}

/* Checks that the file's first line names this build's format before FANN
 * parses it, so that a network of the other kind is refused with a clear
 * reason instead of being misread. */
static int check_magic(int fd, const char *path, char *err, size_t err_size)
{
    char head[16];
    ssize_t n = pread(fd, head, sizeof(head), 0);
    if (n < 0)
        return fail(err, err_size, code_of_errno(errno), "cannot read %s: %s", path,
                    strerror(errno));
    size_t len = (size_t)n, magic = strlen(FILE_MAGIC);
    if (len >= magic && memcmp(head, FILE_MAGIC, magic) == 0)
        return 0;
    if (len >= magic && memcmp(head, OTHER_MAGIC, magic) == 0)
        return fail(err, err_size, EF_EMISMATCH,
                    "%s is a " OTHER_KIND " FANN network; the " BACKEND_NAME
                    " backend runs " BACKEND_KIND " networks",
                    path);
    return fail(err, err_size, EF_EINVAL, "%s is not a FANN network (no " FILE_MAGIC " header)",
                path);
}

static void model_free(struct backend_model *m)
{
    if (!m)
        return;
    if (m->ann)
        fann_destroy(m->ann);
    free(m->in);
    free(m);
}

/* Debian's libfann 2.2.0 formats its error messages, which quote the file
 * name, into a heap buffer of 128 bytes: a file that fails to load under a
 * long path overflows it. The file is therefore opened here and handed to
 * FANN as /dev/fd/N, which keeps every message inside that buffer. (That
 * buffer is also never freed when a file fails to parse: 128 bytes lost per
 * refused file, which only a corrupt yet correctly hashed artifact causes.) */
static int model_load(const char *path, struct backend_model **out, char *err, size_t err_size)
{
    int rc = 0;
    char short_path[24];
    struct backend_model *m = NULL;
    *out = NULL;
    pthread_once(&quiet_once, quiet_fann);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = fail(err, err_size, code_of_errno(errno), "cannot open %s: %s", path, strerror(errno));
        goto out;
    }
    if ((rc = check_magic(fd, path, err, err_size)) != 0)
        goto out;
    if (!(m = calloc(1, sizeof(*m)))) {
        rc = fail(err, err_size, EF_ENOMEM, "out of memory");
        goto out;
    }
    snprintf(short_path, sizeof(short_path), "/dev/fd/%d", fd);
    if (!(m->ann = fann_create_from_file(short_path))) {
        rc = fail(err, err_size, EF_EINVAL, "%s does not load as a " BACKEND_KIND " FANN network",
                  path);
        goto out;
    }
    m->n_in = fann_get_num_input(m->ann);
    m->n_out = fann_get_num_output(m->ann);
    m->scale = 1;
#ifdef EF_FANN_FIXED
    unsigned dp = fann_get_decimal_point(m->ann);
    if (dp > MAX_DECIMAL_POINT) {
        rc = fail(err, err_size, EF_EINVAL, "%s has a decimal point of %u, above %d", path, dp,
                  MAX_DECIMAL_POINT);
        goto out;
    }
    m->scale = (double)(1u << dp);
#endif
    if (m->n_in == 0 || m->n_out == 0) {
        rc = fail(err, err_size, EF_EINVAL, "%s has no inputs or no outputs", path);
        goto out;
    }
    if (!(m->in = calloc(m->n_in, sizeof(*m->in)))) {
        rc = fail(err, err_size, EF_ENOMEM, "out of memory");
        goto out;
    }
    *out = m;
    m = NULL;
out:
    model_free(m);
    if (fd >= 0)
        close(fd);
    return rc;
}

static int model_run(struct backend_model *m, const double *in, size_t n_in, double *out,
                     size_t n_out)
{
    if (n_in != m->n_in || n_out != m->n_out)
        return EF_EINVAL;
    for (size_t i = 0; i < n_in; i++) {
#ifdef EF_FANN_FIXED
        if (!(fabs(in[i]) <= 1.0))
            return EF_EINVAL;
        m->in[i] = (fann_type)lround(in[i] * m->scale);
#else
        if (!(fabs(in[i]) <= FLT_MAX))
            return EF_EINVAL;
        m->in[i] = (fann_type)in[i];
#endif
    }
    const fann_type *res = fann_run(m->ann, m->in);
    for (size_t i = 0; i < n_out; i++)
        out[i] = (double)res[i] / m->scale;
    return 0;
}

static void model_describe(const struct backend_model *m, size_t *n_in, size_t *n_out)
{
    *n_in = m->n_in;
    *n_out = m->n_out;
}

static const struct backend_api api = {
    .abi = EF_BACKEND_ABI,
    .name = BACKEND_NAME,
    .load = model_load,
    .run = model_run,
    .free_model = model_free,
    .describe = model_describe,
};

/* The module's one export (see backend.h). */
__attribute__((visibility("default"))) const struct backend_api *ef_backend_entry(void);

const struct backend_api *ef_backend_entry(void)
{
    return &api;
}
