/*
 * ticker.h - a thread that calls a tick function every period, at once
 * when kicked, and stops on demand: the clock of the rollout engine
 * (rollout.c) and of the monitor (monitor.c).
 *
 * The thread ticks first, then waits one period (on the monotonic clock)
 * or until kicked or stopped, and so on. A tick runs to its end: stopping
 * waits for it.
 */
#ifndef EF_TICKER_H
#define EF_TICKER_H

struct ticker;

/* Starts a thread that calls tick(arg) every period_ms (> 0) until
 * ticker_stop; tick's return value is not looked at (it logs its own
 * errors). arg is borrowed and must outlive the ticker. *out is the new
 * ticker, NULL on error. 0, EF_ENOMEM, or EF_EIO when the thread could not
 * be created. */
int ticker_start(unsigned period_ms, int (*tick)(void *arg), void *arg, struct ticker **out);

/* Has the thread tick now rather than at the end of its period (after the
 * tick under way, if any). Accepts NULL (no thread: nothing to wake). */
void ticker_kick(struct ticker *t);

/* Stops the thread, waiting for a tick under way, and frees t. Accepts
 * NULL. */
void ticker_stop(struct ticker *t);

#endif
