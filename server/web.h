/*
 * web.h - the static dashboard: the files of web/ at / and /assets/..., and
 * uPlot's distribution files at /vendor/uplot/..., read from disk on every
 * request (no build step, no cache in the server). These URLs are not API
 * routes: http.c hands a request to web_serve when no route of the table
 * matches and web_claims takes its URL, so `edgefleet-server routes` and
 * schema/openapi.yaml list the API alone.
 *
 * A request names a file by a relative path that web_path_check accepts
 * (plain segments, none starting with '.'); web_resolve joins it to a root,
 * resolves every symbolic link with realpath(3) and refuses anything that
 * does not end up as a regular file inside that root. Only files of a known
 * type (web_content_type) are served, with an ETag, a Cache-Control header
 * (index.html is revalidated every time, other files may be kept a minute)
 * and 304 for a matching If-None-Match. GET and HEAD only.
 */
#ifndef EF_WEB_H
#define EF_WEB_H

#include "server/http.h"

#include <stdbool.h>
#include <stddef.h>

/* The defaults of `serve --web-dir` and `--node-modules`: CMake sets them to
 * the checkout's web/ and node_modules/, so a build tree serves its source. */
#ifndef EF_WEB_DIR
#define EF_WEB_DIR "web"
#endif
#ifndef EF_NODE_MODULES
#define EF_NODE_MODULES "node_modules"
#endif

/* Where uPlot's files are inside the node_modules directory. */
#define WEB_UPLOT_SUBDIR "uplot/dist"

/* Longest relative path a request may name, in bytes. */
#define WEB_MAX_REL 255

/* Seconds a browser may keep a file other than index.html before it asks
 * again (with If-None-Match). */
#define WEB_ASSET_MAX_AGE_S 60

struct web;

/* Opens the dashboard's roots: web_dir (index.html, assets/) and
 * node_modules (uPlot from node_modules/uplot/dist), both resolved to
 * absolute paths now. A node_modules without uPlot is logged and
 * /vendor/uplot/ answers 404; the dashboard still loads. *out is a new
 * struct web, freed with web_close. EF_ENOENT when web_dir is not a
 * directory holding index.html (*out NULL), EF_ENOMEM. */
int web_open(const char *web_dir, const char *node_modules, struct web **out);

/* Frees w; accepts NULL. */
void web_close(struct web *w);

/* Returns the resolved web directory (borrowed from w). */
const char *web_root(const struct web *w);

/* Checks a relative path taken from a request: 1..WEB_MAX_REL bytes of
 * segments joined by single '/', each made of [A-Za-z0-9._-] and not
 * starting with '.' (so no "..", no ".", no hidden file), no leading '/',
 * no '%' (nothing left encoded), no '\\'. 0 or EF_EINVAL. */
int web_path_check(const char *rel);

/* Resolves rel (checked by web_path_check) under root, an absolute path
 * without symbolic links (as realpath gives), into out (out_size bytes, at
 * least PATH_MAX). 0 when the result is a regular file inside root;
 * EF_EINVAL for a path web_path_check refuses; EF_ENOENT when nothing (or
 * something other than a regular file) is there; EF_EPERM when a symbolic
 * link leads out of root; EF_ETOOBIG when out is too small. */
int web_resolve(const char *root, const char *rel, char *out, size_t out_size);

/* Returns the Content-Type served for a file name by its extension (static
 * string), or NULL for a type the dashboard does not serve. */
const char *web_content_type(const char *name);

/* The dashboard's URL space: "/" (index.html), "/assets/PATH"
 * (web_dir/assets/PATH) and "/vendor/uplot/PATH"
 * (node_modules/uplot/dist/PATH). Whether url (decoded, without its query)
 * lies in it; http.c asks only about a url no API route has. */
bool web_claims(const char *url);

/* Answers a request whose url web_claims took: the file with 200 (or 304),
 * 404 not_found for anything that is not a servable file, every refused
 * path included, 405 for a method other than GET and HEAD. Public and
 * bodiless: no credentials are looked at. Returns what queueing the answer
 * returned. */
enum MHD_Result web_serve(struct request *req);

#endif
