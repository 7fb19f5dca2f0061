/* test_ticker.c - the ticker thread: it ticks at once when started, ticks
 * again every period, ticks at once when kicked though its period is an
 * hour, and stopping ends a ticker that waits out its period. The test
 * waits for ticks on a condition variable, never on the clock: a ticker
 * that ignored kicks or stops would hang it until ctest's timeout. */
#include "server/ticker.h"
#include "common/ef_error.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define HOUR_MS 3600000u

/* What the tick function counts, shared with the test's thread. */
struct counter {
    pthread_mutex_t lock;
    pthread_cond_t ticked; /* signalled after each tick */
    unsigned ticks;        /* ticks so far */
};

static int count_tick(void *arg)
{
    struct counter *c = arg;
    pthread_mutex_lock(&c->lock);
    c->ticks++;
    pthread_cond_broadcast(&c->ticked);
    pthread_mutex_unlock(&c->lock);
    return 0;
}

/* Waits until the counter has reached n ticks. */
static void wait_ticks(struct counter *c, unsigned n)
{
    pthread_mutex_lock(&c->lock);
    while (c->ticks < n)
        pthread_cond_wait(&c->ticked, &c->lock);
    pthread_mutex_unlock(&c->lock);
}

static void counter_init(struct counter *c)
{
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->ticked, NULL);
    c->ticks = 0;
}

static void counter_destroy(struct counter *c)
{
    pthread_cond_destroy(&c->ticked);
    pthread_mutex_destroy(&c->lock);
}

static void ticks_at_once_and_every_period(void **state)
{
    (void)state;
    struct counter c;
    struct ticker *t = NULL;
    counter_init(&c);
    assert_int_equal(ticker_start(1, count_tick, &c, &t), 0);
    assert_non_null(t);
    wait_ticks(&c, 3);
    ticker_stop(t);
    assert_true(c.ticks >= 3);
    counter_destroy(&c);
}

static void a_kick_ticks_before_the_period_ends(void **state)
{
    (void)state;
    struct counter c;
    struct ticker *t = NULL;
    counter_init(&c);
    assert_int_equal(ticker_start(HOUR_MS, count_tick, &c, &t), 0);
    wait_ticks(&c, 1); /* the first tick comes at once */
    ticker_kick(t);
    wait_ticks(&c, 2); /* and the second only because of the kick */
    ticker_kick(t);
    wait_ticks(&c, 3);
    ticker_stop(t);
    counter_destroy(&c);
}

static void stop_ends_a_ticker_waiting_its_period(void **state)
{
    (void)state;
    struct counter c;
    struct ticker *t = NULL;
    counter_init(&c);
    assert_int_equal(ticker_start(HOUR_MS, count_tick, &c, &t), 0);
    wait_ticks(&c, 1);
    ticker_stop(t); /* returns though the next tick is an hour away */
    counter_destroy(&c);
}

static void null_is_accepted(void **state)
{
    (void)state;
    ticker_kick(NULL);
    ticker_stop(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ticks_at_once_and_every_period),
        cmocka_unit_test(a_kick_ticks_before_the_period_ends),
        cmocka_unit_test(stop_ends_a_ticker_waiting_its_period),
        cmocka_unit_test(null_is_accepted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
