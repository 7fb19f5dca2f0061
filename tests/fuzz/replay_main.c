/*
 * replay_main.c - runs a libFuzzer target over a saved corpus, without libFuzzer.
 *
 * Linked with each tests/fuzz/fuzz_<name>.c when EF_FUZZ is off, so ctest
 * replays every corpus under whatever compiler and sanitizers the build uses:
 *
 *   fuzz_manifest [-v] PATH...
 *
 * Each PATH is a file, or a directory whose regular files (not those starting
 * with '.') are replayed in name order. Each input is copied into a buffer of
 * exactly its size, so a read past the end is seen by ASan. Options starting
 * with '-' other than -v are ignored, as libFuzzer's would be. Exits 0 after
 * printing how many inputs ran; 1 when a path is missing or unreadable, when
 * a directory holds no inputs, or when nothing ran at all; 2 on usage errors.
 */
#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define REPLAY_MAX_INPUT (64u << 20) /* bytes; corpus files are small */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional in a target, as in libFuzzer. */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Reads path whole and feeds it to the target. 0, or -1 with a message. */
static int run_file(const char *path, int verbose)
{
    int rc = -1;
    unsigned char *data = NULL;
    struct stat st;
    FILE *f = fopen(path, "rb");
    if (!f || fstat(fileno(f), &st) != 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        goto out;
    }
    if (st.st_size < 0 || (uint64_t)st.st_size > REPLAY_MAX_INPUT) {
        fprintf(stderr, "replay: %s: larger than %u bytes\n", path, REPLAY_MAX_INPUT);
        goto out;
    }
    size_t size = (size_t)st.st_size;
    /* One spare byte keeps malloc(0) from returning NULL; it is never passed on. */
    data = malloc(size ? size : 1);
    if (!data || fread(data, 1, size, f) != size) {
        fprintf(stderr, "replay: %s: cannot read\n", path);
        goto out;
    }
    if (verbose)
        fprintf(stderr, "replay: %s (%zu bytes)\n", path, size);
    (void)LLVMFuzzerTestOneInput(data, size);
    rc = 0;
out:
    free(data);
    if (f)
        fclose(f);
    return rc;
}

static int skip_hidden(const struct dirent *e)
{
    return e->d_name[0] != '.';
}

/* Replays the regular files of dir; *count grows by how many ran. 0, or -1
 * when dir cannot be read, holds no inputs, or an input cannot be read. */
static int run_dir(const char *dir, int verbose, size_t *count)
{
    int rc = 0;
    size_t ran = 0;
    struct dirent **names = NULL;
    int n = scandir(dir, &names, skip_hidden, alphasort);
    if (n < 0) {
        fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
        rc = -1;
        goto out;
    }
    for (int i = 0; i < n; i++) {
        size_t len = strlen(dir) + strlen(names[i]->d_name) + 2;
        char *path = malloc(len);
        struct stat st;
        if (!path) {
            rc = -1;
        } else {
            snprintf(path, len, "%s/%s", dir, names[i]->d_name);
            if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                if (run_file(path, verbose) == 0)
                    ran++;
                else
                    rc = -1;
            }
        }
        free(path);
        free(names[i]);
    }
    if (ran == 0 && rc == 0) {
        fprintf(stderr, "replay: %s: no inputs\n", dir);
        rc = -1;
    }
out:
    free(names);
    *count += ran;
    return rc;
}

int main(int argc, char **argv)
{
    int verbose = 0, paths = 0, failed = 0;
    size_t count = 0;
    if (LLVMFuzzerInitialize)
        LLVMFuzzerInitialize(&argc, &argv);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        struct stat st;
        if (arg[0] == '-') {
            verbose |= strcmp(arg, "-v") == 0;
            continue;
        }
        paths++;
        if (stat(arg, &st) != 0) {
            fprintf(stderr, "replay: %s: %s\n", arg, strerror(errno));
            failed = 1;
        } else if (S_ISDIR(st.st_mode)) {
            failed |= run_dir(arg, verbose, &count) != 0;
        } else if (run_file(arg, verbose) == 0) {
            count++;
        } else {
            failed = 1;
        }
    }
    if (paths == 0) {
        fprintf(stderr, "usage: %s [-v] CORPUS_DIR_OR_FILE...\n", argv[0]);
        return 2;
    }
    printf("%s: ran %zu inputs\n", argv[0], count);
    return failed || count == 0 ? 1 : 0;
}
