/*
 * inbox.h - the watched directory DATA_DIR/inbox/, the third way a model gets
 * onto a device (after the server's push and the agent's pull).
 *
 * A local tool drops a package as a directory inbox/NAME/ holding
 * manifest.json, manifest.sig (the release key's detached signature) and
 * model (the artifact), and creates the file READY in it last. A package is
 * complete only once READY exists, so a half-copied one is never read; it is
 * then handed to deploy_on_package, which moves it out of the inbox and
 * verifies it like any other manifest. Names starting with '.' are ignored
 * (a tool may copy into inbox/.NAME and rename).
 *
 * Watching: uv_fs_event on the inbox and on each incomplete package directory
 * (inotify does not see into subdirectories), a scan shortly after each burst
 * of events, a scan at start, and a slow rescan as a fallback for file
 * systems without notifications.
 */
#ifndef EF_AGENT_INBOX_H
#define EF_AGENT_INBOX_H

struct agent;
struct inbox;

#define INBOX_RESCAN_MS   30000 /* the fallback rescan */
#define INBOX_SETTLE_MS   200   /* scan this long after the last event of a burst */
#define INBOX_MAX_WATCHED 32    /* incomplete packages watched at once; more wait for rescans */

/* Creates DATA_DIR/inbox if needed and starts watching it on a->loop; the
 * first scan runs as soon as the loop does. Packages go to a->deploy (which
 * must be open by then). EF_EIO (directory), EF_ENOMEM. */
int inbox_start(struct agent *a, struct inbox **out);

/* Stops watching; freed once its handles are closed (run the loop).
 * Accepts NULL. */
void inbox_stop(struct inbox *in);

#endif
