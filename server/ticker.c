/*
 * ticker.c - a thread that calls a tick function every period until
 * stopped (ticker.h).
 */
#include "server/ticker.h"
#include "common/ef_error.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

struct ticker {
    unsigned period_ms;        /* between the end of a tick and the next */
    int (*tick)(void *arg);    /* called on the thread */
    void *arg;                 /* borrowed */
    pthread_mutex_t wake_lock; /* guards stopping and kicked */
    pthread_cond_t wake;       /* signalled by ticker_kick and ticker_stop (monotonic clock) */
    bool stopping;             /* the thread is to end */
    bool kicked;               /* tick now, not at the end of the period */
    pthread_t thread;
};

/* The monotonic time period_ms from now. */
static struct timespec deadline(unsigned period_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += period_ms / 1000;
    until.tv_nsec += (long)(period_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    return until;
}

/* The thread: a tick, then a wait of one period or until kicked or stopped. */
static void *ticker_main(void *arg)
{
    struct ticker *t = arg;
    pthread_mutex_lock(&t->wake_lock);
    while (!t->stopping) {
        pthread_mutex_unlock(&t->wake_lock);
        t->tick(t->arg);
        pthread_mutex_lock(&t->wake_lock);
        if (!t->stopping && !t->kicked) {
            struct timespec until = deadline(t->period_ms);
            pthread_cond_timedwait(&t->wake, &t->wake_lock, &until);
        }
        t->kicked = false;
    }
    pthread_mutex_unlock(&t->wake_lock);
    return NULL;
}

/* Frees what ticker_start initialised, the thread not running. */
static void ticker_free(struct ticker *t)
{
    pthread_cond_destroy(&t->wake);
    pthread_mutex_destroy(&t->wake_lock);
    free(t);
}

int ticker_start(unsigned period_ms, int (*tick)(void *arg), void *arg, struct ticker **out)
{
    pthread_condattr_t attr;
    struct ticker *t = calloc(1, sizeof(*t));
    *out = NULL;
    if (!t)
        return EF_ENOMEM;
    t->period_ms = period_ms;
    t->tick = tick;
    t->arg = arg;
    pthread_mutex_init(&t->wake_lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&t->wake, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&t->thread, NULL, ticker_main, t) != 0) {
        ticker_free(t);
        return EF_EIO;
    }
    *out = t;
    return 0;
}

void ticker_kick(struct ticker *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->wake_lock);
    t->kicked = true;
    pthread_cond_signal(&t->wake);
    pthread_mutex_unlock(&t->wake_lock);
}

void ticker_stop(struct ticker *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->wake_lock);
    t->stopping = true;
    pthread_cond_signal(&t->wake);
    pthread_mutex_unlock(&t->wake_lock);
    pthread_join(t->thread, NULL);
    ticker_free(t);
}
