/* inbox.c - watching DATA_DIR/inbox/ for complete model packages. */
#include "agent/inbox.h"
#include "agent/agent.h"
#include "agent/deploy.h"
#include "common/ef_error.h"
#include "common/fsutil.h"
#include "common/log.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A watcher on one incomplete package directory, waiting for its READY. */
struct watch {
    struct inbox *in;
    uv_fs_event_t ev;
    bool seen; /* found by the current scan */
    char name[256];
};

struct inbox {
    struct agent *a;                          /* borrowed */
    char *dir;                                /* DATA_DIR/inbox */
    uv_fs_event_t ev;                         /* on dir itself */
    uv_timer_t settle;                        /* scan after a burst of events */
    uv_timer_t rescan;                        /* the slow fallback */
    struct watch *watches[INBOX_MAX_WATCHED]; /* owned; NULL where free */
    unsigned handles_open;                    /* handles not yet closed, watches included */
    bool stopping;
};

static void inbox_maybe_free(struct inbox *in)
{
    if (!in->stopping || in->handles_open > 0)
        return;
    free(in->dir);
    free(in);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct inbox *in = h->data;
    in->handles_open--;
    inbox_maybe_free(in);
}

static void on_watch_closed(uv_handle_t *h)
{
    struct watch *w = h->data;
    struct inbox *in = w->in;
    free(w);
    in->handles_open--;
    inbox_maybe_free(in);
}

static void watch_drop(struct inbox *in, size_t i)
{
    struct watch *w = in->watches[i];
    in->watches[i] = NULL;
    uv_close((uv_handle_t *)&w->ev, on_watch_closed);
}

/* Any change in the inbox or a package: scan once the burst settles. */
static void on_scan_timer(uv_timer_t *t);

static void inbox_changed(struct inbox *in, int status)
{
    if (status < 0)
        ef_warn("inbox_watch", "dir=%s error=%s", in->dir, uv_strerror(status));
    if (!in->stopping)
        uv_timer_start(&in->settle, on_scan_timer, INBOX_SETTLE_MS, 0);
}

static void on_inbox_event(uv_fs_event_t *ev, const char *filename, int events, int status)
{
    inbox_changed(ev->data, status);
}

static void on_package_event(uv_fs_event_t *ev, const char *filename, int events, int status)
{
    struct watch *w = ev->data;
    inbox_changed(w->in, status);
}

/* Watches package directory name until its READY appears (best effort: a
 * rescan finds it anyway). */
static void watch_add(struct inbox *in, const char *name, const char *path)
{
    size_t free_at = INBOX_MAX_WATCHED;
    for (size_t i = 0; i < INBOX_MAX_WATCHED; i++) {
        if (in->watches[i] && strcmp(in->watches[i]->name, name) == 0) {
            in->watches[i]->seen = true;
            return;
        }
        if (!in->watches[i] && free_at == INBOX_MAX_WATCHED)
            free_at = i;
    }
    if (free_at == INBOX_MAX_WATCHED || strlen(name) >= sizeof(in->watches[0]->name))
        return;
    struct watch *w = calloc(1, sizeof(*w));
    if (!w)
        return;
    w->in = in;
    w->seen = true;
    snprintf(w->name, sizeof(w->name), "%s", name);
    uv_fs_event_init(agent_loop(in->a), &w->ev);
    w->ev.data = w;
    in->handles_open++;
    int rc = uv_fs_event_start(&w->ev, on_package_event, path, 0);
    if (rc != 0) {
        ef_warn("inbox_watch", "dir=%s error=%s", path, uv_strerror(rc));
        uv_close((uv_handle_t *)&w->ev, on_watch_closed);
        return;
    }
    in->watches[free_at] = w;
}

/* True when path/READY is a regular file. */
static bool package_ready(const char *path)
{
    struct stat st;
    char *ready = ef_path_join(path, "READY");
    bool ok = ready && stat(ready, &st) == 0 && S_ISREG(st.st_mode);
    free(ready);
    return ok;
}

/* Hands every complete package over and watches the incomplete ones. */
static void inbox_scan(struct inbox *in)
{
    DIR *dh = opendir(in->dir);
    struct dirent *e;
    if (!dh) {
        ef_warn("inbox_scan", "dir=%s error=%s", in->dir, ef_errname(ef_from_errno(errno)));
        return;
    }
    for (size_t i = 0; i < INBOX_MAX_WATCHED; i++)
        if (in->watches[i])
            in->watches[i]->seen = false;
    while ((e = readdir(dh)) != NULL) {
        struct stat st;
        if (e->d_name[0] == '.')
            continue;
        char *path = ef_path_join(in->dir, e->d_name);
        if (!path)
            break;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            if (!package_ready(path)) {
                watch_add(in, e->d_name, path);
            } else if (in->a->deploy) {
                ef_info("inbox_package", "dir=%s", path);
                int rc = deploy_on_package(in->a->deploy, path);
                if (rc != 0)
                    ef_warn("inbox_package_refused", "dir=%s error=%s", path, ef_errname(rc));
            }
        }
        free(path);
    }
    closedir(dh);
    /* Watches on packages that became complete or went away. */
    for (size_t i = 0; i < INBOX_MAX_WATCHED; i++)
        if (in->watches[i] && !in->watches[i]->seen)
            watch_drop(in, i);
}

static void on_scan_timer(uv_timer_t *t)
{
    struct inbox *in = t->data;
    if (!in->stopping)
        inbox_scan(in);
}

int inbox_start(struct agent *a, struct inbox **out)
{
    struct inbox *in = calloc(1, sizeof(*in));
    int rc = EF_ENOMEM;
    *out = NULL;
    if (!in || !(in->dir = ef_path_join(a->cfg.data_dir, "inbox")))
        goto out;
    in->a = a;
    if ((rc = ef_mkdir_p(in->dir, 0700)) != 0) {
        ef_error("inbox_start", "dir=%s error=%s", in->dir, ef_errname(rc));
        rc = EF_EIO;
        goto out;
    }
    uv_fs_event_init(agent_loop(a), &in->ev);
    uv_timer_init(agent_loop(a), &in->settle);
    uv_timer_init(agent_loop(a), &in->rescan);
    in->ev.data = in->settle.data = in->rescan.data = in;
    in->handles_open = 3;
    int uvrc = uv_fs_event_start(&in->ev, on_inbox_event, in->dir, 0);
    if (uvrc != 0) /* the rescan still finds packages, only later */
        ef_warn("inbox_watch", "dir=%s error=%s fallback_rescan_ms=%d", in->dir, uv_strerror(uvrc),
                INBOX_RESCAN_MS);
    uv_timer_start(&in->settle, on_scan_timer, 0, 0);
    uv_timer_start(&in->rescan, on_scan_timer, INBOX_RESCAN_MS, INBOX_RESCAN_MS);
    ef_info("inbox_start", "dir=%s", in->dir);
    *out = in;
    in = NULL;
    rc = 0;
out:
    if (in) {
        free(in->dir);
        free(in);
    }
    return rc;
}

void inbox_stop(struct inbox *in)
{
    if (!in || in->stopping)
        return;
    in->stopping = true;
    for (size_t i = 0; i < INBOX_MAX_WATCHED; i++)
        if (in->watches[i])
            watch_drop(in, i);
    uv_close((uv_handle_t *)&in->ev, on_handle_closed);
    uv_close((uv_handle_t *)&in->settle, on_handle_closed);
    uv_close((uv_handle_t *)&in->rescan, on_handle_closed);
}
