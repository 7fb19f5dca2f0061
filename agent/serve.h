/*
 * serve.h - the local inference endpoint: a Unix socket (default
 * DATA_DIR/infer.sock, mode 0660) speaking newline-delimited JSON, one object
 * per line each way, many concurrent clients, on the agent's loop.
 *
 * Requests, and their answers in the order the requests came:
 *   {"input": [x1, ..., xn], "id"?: "caller-chosen id"}
 *     -> {"id"?, "output": [...], "class": k, "label"?: "argmax label",
 *         "model": "NAME@VERSION", "latency_us": N}
 *   {"feedback": "id", "label": "true label" | class index}
 *     -> {"ok": true, "correct": true|false}
 *        (ground truth for an earlier prediction made with that id; the last
 *        SERVE_REMEMBERED predictions with an id are remembered, each takes
 *        one feedback)
 * Blank lines are ignored; a last line without its newline counts when the
 * client shuts down its side, and the answers are written before the
 * endpoint closes the connection.
 * Errors: {"id"?, "error": {"code": "...", "message": "..."}} in the same
 * position, and the connection stays open. Codes:
 *   bad_json       the line is not one JSON value (duplicate keys included)
 *   bad_request    not an object of the shapes above, or an unknown key
 *   bad_input      input is not an array of the model's input size, or
 *                  outside the backend's domain (fixed point: [-1, 1])
 *   no_model       no model is serving
 *   inference_failed  the backend failed or gave a non-finite output
 *   unknown_id     feedback for an id not (or no longer) remembered
 *   unknown_label  feedback with a label the model does not have
 *   line_too_long  a line above SERVE_MAX_LINE bytes; the connection is
 *                  then closed
 *   out_of_memory
 * Each inference runs the model serving at the moment the request is read,
 * so a swap between two requests drops none. Inference is synchronous on the
 * loop (microseconds for FANN). Each inference is reported to the source's
 * observe callback and to the metrics window (with its input and output, for
 * drift and confidence); "inference_failed" counts as a failed inference,
 * the client's own mistakes do not. A successful one is offered to the
 * source's sample callback (data collection), and feedback with a known
 * class goes to its label callback.
 *
 * Shadow: when the source has a shadow model, a share of the successful
 * inferences (serve_set_shadow_share, default 1.0) is queued for it and run
 * in the loop's check phase, after every answer of that loop iteration has
 * been written: its output never reaches a client and its latency delays no
 * answer already made. Its agreement with production (same argmax; for a
 * single output the same side of 0.5) goes to the metrics window, and a
 * feedback for the request also scores the shadow's prediction (argmax).
 * At most SERVE_SHADOW_QUEUE inputs wait; beyond that a request is not
 * shadowed.
 *
 * The process must ignore SIGPIPE (a client may go away while its answer is
 * written).
 */
#ifndef EF_AGENT_SERVE_H
#define EF_AGENT_SERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#define SERVE_MAX_LINE     (1u << 20) /* bytes, newline excluded */
#define SERVE_MAX_ID       128        /* bytes of a request id */
#define SERVE_REMEMBERED   4096       /* predictions remembered for feedback */
#define SERVE_MAX_CLIENTS  64         /* concurrent connections; more are closed at once */
#define SERVE_SHADOW_QUEUE 1024       /* inputs waiting for the shadow model at most */

struct model;
struct metrics;
struct serve;

/* Where served models come from, and where their outcomes go: the agent
 * wires its deployment state machine here (deploy_serving and
 * deploy_observe on the production slot), tests their own models. */
struct serve_source {
    /* The model serving now, or NULL; borrowed for the current callback. */
    struct model *(*serving)(void *ctx);
    /* One inference of that model: whether it succeeded and its latency in
     * ms (the endpoint feeds the metrics window itself). May be NULL. */
    void (*observe)(void *ctx, bool ok, double latency_ms);
    /* The shadow model now, or NULL when none runs; borrowed for the
     * current callback. May be NULL. */
    struct model *(*shadow)(void *ctx);
    /* One inference of the shadow model, as observe. May be NULL. */
    void (*shadow_observe)(void *ctx, bool ok, double latency_ms);
    /* A successful production inference: its input (n_in values, borrowed)
     * and its request id (NULL without one). May be NULL. */
    void (*sample)(void *ctx, const char *id, const double *in, size_t n_in);
    /* Feedback gave the true class of the prediction made with id. May be
     * NULL. */
    void (*label)(void *ctx, const char *id, size_t cls);
    void *ctx;
};

/* Listens on path on loop (an existing socket file is replaced; any other
 * file there is an error). source is copied; metrics (may be NULL) is
 * borrowed and must outlive the endpoint. *out is new, stopped with
 * serve_stop. EF_EINVAL (path too long for a socket), EF_EEXIST (not a
 * socket), EF_EIO (cannot listen), EF_ENOMEM; on failure nothing is left to
 * stop (what was allocated goes when the loop next runs). */
int serve_start(uv_loop_t *loop, const char *path, const struct serve_source *source,
                struct metrics *metrics, struct serve **out);

/* Runs the shadow model on this share of the inferences (clamped to
 * [0, 1]; 0: never). */
void serve_set_shadow_share(struct serve *s, double share);

/* Closes the listener and every client, removes the socket file; the memory
 * goes when the loop has run the close callbacks. Accepts NULL. */
void serve_stop(struct serve *s);

/* The `edgefleet-agent infer` client: sends one request line (input_json is
 * the JSON array given on the command line), prints the answer line to
 * stdout. Returns the process exit code: 0 an output was answered, 1 an
 * error was answered or the socket is unreachable or silent (10 s), 2 bad
 * input (not a JSON array of numbers), with a message on stderr. Blocking;
 * not for the loop. */
int serve_client_infer(const char *socket_path, const char *input_json);

#endif
