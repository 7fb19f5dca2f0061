/* test_batch_queue.c - the batch queue under the telemetry and report
 * ingests: items are written in batches when a batch is full, when the
 * oldest item's deadline passes, on flush and on stop (which drains), in
 * queue order; a queue full in items or bytes refuses with EF_EBUSY; the
 * idle callback runs and the depth gauge follows the queue. No timings are
 * asserted: tests wait on conditions. */
#include "server/batch_queue.h"
#include "common/ef_error.h"
#include "common/topic.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define HOUR_MS  (3600 * 1000)
#define SEEN_MAX 256

/* What the write_batch callback saw, and a gate that can hold it. */
struct sink {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int seen[SEEN_MAX]; /* payloads (decimal numbers) in the order written */
    char device[SEEN_MAX][EF_DEVICE_ID_MAX + 1];
    int tags[SEEN_MAX];
    size_t nseen;
    size_t batches[SEEN_MAX]; /* sizes of the batches written */
    size_t nbatches;
    bool hold;    /* write_batch waits while this is set */
    bool holding; /* write_batch is waiting on hold */
    int idles;    /* idle calls */
};

static void sink_init(struct sink *s)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->changed, NULL);
}

static void sink_destroy(struct sink *s)
{
    pthread_cond_destroy(&s->changed);
    pthread_mutex_destroy(&s->lock);
}

static void write_batch(void *ctx, struct batch_queue_item *items, size_t n)
{
    struct sink *s = ctx;
    pthread_mutex_lock(&s->lock);
    while (s->hold) {
        s->holding = true;
        pthread_cond_broadcast(&s->changed);
        pthread_cond_wait(&s->changed, &s->lock);
    }
    s->holding = false;
    for (size_t i = 0; i < n && s->nseen < SEEN_MAX; i++) {
        char buf[32] = {0};
        memcpy(buf, items[i].payload, items[i].len < 31 ? items[i].len : 31);
        snprintf(s->device[s->nseen], sizeof(s->device[0]), "%s", items[i].device_id);
        s->tags[s->nseen] = items[i].tag;
        s->seen[s->nseen++] = atoi(buf);
    }
    if (s->nbatches < SEEN_MAX)
        s->batches[s->nbatches++] = n;
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
}

static bool idle(void *ctx)
{
    struct sink *s = ctx;
    pthread_mutex_lock(&s->lock);
    s->idles++;
    pthread_cond_broadcast(&s->changed);
    pthread_mutex_unlock(&s->lock);
    return false;
}

/* Waits until the sink has seen n items. */
static void wait_seen(struct sink *s, size_t n)
{
    pthread_mutex_lock(&s->lock);
    while (s->nseen < n)
        pthread_cond_wait(&s->changed, &s->lock);
    pthread_mutex_unlock(&s->lock);
}

static struct batch_queue_config config(struct sink *s, size_t queue_max, size_t batch_max,
                                        int64_t batch_ms)
{
    return (struct batch_queue_config){.queue_max = queue_max,
                                       .batch_max = batch_max,
                                       .batch_ms = batch_ms,
                                       .queue_max_bytes = 1 << 20,
                                       .write_batch = write_batch,
                                       .ctx = s};
}

static int push(struct batch_queue *q, int v)
{
    char buf[16];
    int len = snprintf(buf, sizeof(buf), "%d", v);
    return batch_queue_push(q, "dev-1", v % 3, buf, (size_t)len, 1000 + v);
}

static void test_batch_by_size(void **state)
{
    (void)state;
    struct sink s;
    struct batch_queue *q = NULL;
    sink_init(&s);
    /* The deadline is an hour away: only a full batch gets written. */
    struct batch_queue_config cfg = config(&s, 16, 3, HOUR_MS);
    assert_int_equal(batch_queue_start(&cfg, &q), 0);
    for (int i = 0; i < 6; i++)
        assert_int_equal(push(q, i), 0);
    wait_seen(&s, 6);
    assert_int_equal(s.nbatches, 2);
    assert_int_equal(s.batches[0], 3);
    assert_int_equal(s.batches[1], 3);
    assert_string_equal(s.device[0], "dev-1");
    assert_int_equal(s.tags[2], 2);
    assert_int_equal(batch_queue_stop(q), 0);
    sink_destroy(&s);
}

static void test_batch_by_deadline(void **state)
{
    (void)state;
    struct sink s;
    struct batch_queue *q = NULL;
    sink_init(&s);
    /* A batch of 100 never fills: the two items go when the oldest's
     * deadline passes, without flush or stop. */
    struct batch_queue_config cfg = config(&s, 200, 100, 5);
    assert_int_equal(batch_queue_start(&cfg, &q), 0);
    assert_int_equal(push(q, 1), 0);
    wait_seen(&s, 1);
    assert_int_equal(s.seen[0], 1);
    assert_int_equal(batch_queue_stop(q), 0);
    sink_destroy(&s);
}

static void test_flush_writes_all_queued(void **state)
{
    (void)state;
    struct sink s;
    struct batch_queue *q = NULL;
    atomic_uint_fast64_t depth = 0;
    sink_init(&s);
    struct batch_queue_config cfg = config(&s, 16, 10, HOUR_MS);
    cfg.depth = &depth;
    assert_int_equal(batch_queue_start(&cfg, &q), 0);
    assert_int_equal(push(q, 7), 0);
    assert_int_equal(push(q, 8), 0);
    /* Neither full nor due: only the flush writes them, before it returns. */
    batch_queue_flush(q);
    assert_int_equal(s.nseen, 2);
    assert_int_equal(s.nbatches, 1);
    assert_int_equal(s.batches[0], 2);
    assert_int_equal(atomic_load(&depth), 0);
    batch_queue_flush(q); /* nothing queued: returns at once */
    assert_int_equal(batch_queue_stop(q), 0);
    sink_destroy(&s);
}

static void test_stop_drains(void **state)
{
    (void)state;
    struct sink s;
    struct batch_queue *q = NULL;
    atomic_uint_fast64_t depth = 0;
    sink_init(&s);
    struct batch_queue_config cfg = config(&s, 64, 4, HOUR_MS);
    cfg.depth = &depth;
    s.hold = true; /* hold the first batch, so that the rest stays queued */
    assert_int_equal(batch_queue_start(&cfg, &q), 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(push(q, i), 0);
    pthread_mutex_lock(&s.lock);
    while (!s.holding)
        pthread_cond_wait(&s.changed, &s.lock);
    pthread_mutex_unlock(&s.lock);
    assert_int_equal(atomic_load(&depth), 6);
    /* Stop before the writer is released: it still writes every item. */
    pthread_mutex_lock(&s.lock);
    s.hold = false;
    pthread_cond_broadcast(&s.changed);
    pthread_mutex_unlock(&s.lock);
    size_t pending = batch_queue_stop(q);
    assert_true(pending <= 6);
    assert_int_equal(s.nseen, 10);
    for (int i = 0; i < 10; i++)
        assert_int_equal(s.seen[i], i);
    sink_destroy(&s);
}

static void test_full_queue_busy(void **state)
{
    (void)state;
    struct sink s;
    struct batch_queue *q = NULL;
    sink_init(&s);
    struct batch_queue_config cfg = config(&s, 2, 1, HOUR_MS);
    cfg.queue_max_bytes = 4;
    s.hold = true;
    assert_int_equal(batch_queue_start(&cfg, &q), 0);
    assert_int_equal(push(q, 1), 0);
    /* The writer took item 1 and is held: the queue is empty again. */
    pthread_mutex_lock(&s.lock);
    while (!s.holding)
        pthread_cond_wait(&s.changed, &s.lock);
    pthread_mutex_unlock(&s.lock);
    assert_int_equal(push(q, 22), 0);
    assert_int_equal(push(q, 333), EF_EBUSY); /* 2 + 3 bytes > 4 */
    assert_int_equal(push(q, 4), 0);
    assert_int_equal(push(q, 5), EF_EBUSY); /* 2 items */
    pthread_mutex_lock(&s.lock);
    s.hold = false;
    pthread_cond_broadcast(&s.changed);
    pthread_mutex_unlock(&s.lock);
    batch_queue_flush(q);
    assert_int_equal(s.nseen, 3);
    assert_int_equal(s.seen[0], 1);
    assert_int_equal(s.seen[1], 22);
    assert_int_equal(s.seen[2], 4);
    /* Room again once written. */
    assert_int_equal(push(q, 6), 0);
    assert_true(batch_queue_stop(q) <= 1); /* the writer may have taken it */
    assert_int_equal(s.nseen, 4);
    sink_destroy(&s);
}

static void test_order_kept(void **state)
{
    (void)state;
    struct sink s;
    struct batch_queue *q = NULL;
    sink_init(&s);
    struct batch_queue_config cfg = config(&s, 50, 7, 1);
    assert_int_equal(batch_queue_start(&cfg, &q), 0);
    for (int i = 0; i < 200; i++) {
        int rc;
        while ((rc = push(q, i)) == EF_EBUSY)
            batch_queue_flush(q);
        assert_int_equal(rc, 0);
    }
    batch_queue_flush(q);
    assert_int_equal(s.nseen, 200);
    for (int i = 0; i < 200; i++)
        assert_int_equal(s.seen[i], i);
    for (size_t i = 0; i < s.nbatches; i++)
        assert_true(s.batches[i] >= 1 && s.batches[i] <= 7);
    batch_queue_stop(q);
    sink_destroy(&s);
}

static void test_idle_runs_at_start(void **state)
{
    (void)state;
    struct sink s;
    struct batch_queue *q = NULL;
    sink_init(&s);
    struct batch_queue_config cfg = config(&s, 4, 2, HOUR_MS);
    cfg.idle = idle;
    cfg.idle_every_ms = HOUR_MS;
    assert_int_equal(batch_queue_start(&cfg, &q), 0);
    pthread_mutex_lock(&s.lock);
    while (s.idles < 1)
        pthread_cond_wait(&s.changed, &s.lock);
    pthread_mutex_unlock(&s.lock);
    assert_int_equal(push(q, 1), 0);
    batch_queue_flush(q);
    assert_int_equal(s.nseen, 1);
    batch_queue_stop(q);
    assert_int_equal(s.idles, 1); /* the next is an hour away */
    sink_destroy(&s);
}

static void test_bad_config(void **state)
{
    (void)state;
    struct sink s;
    struct batch_queue *q = NULL;
    sink_init(&s);
    struct batch_queue_config cfg = config(&s, 2, 3, 0); /* batch > queue */
    assert_int_equal(batch_queue_start(&cfg, &q), EF_EINVAL);
    cfg = config(&s, 0, 1, 0);
    assert_int_equal(batch_queue_start(&cfg, &q), EF_EINVAL);
    cfg = config(&s, 2, 1, -1);
    assert_int_equal(batch_queue_start(&cfg, &q), EF_EINVAL);
    cfg = config(&s, 2, 1, 0);
    cfg.write_batch = NULL;
    assert_int_equal(batch_queue_start(&cfg, &q), EF_EINVAL);
    cfg = config(&s, 2, 1, 0);
    cfg.idle = idle; /* without a period */
    assert_int_equal(batch_queue_start(&cfg, &q), EF_EINVAL);
    assert_null(q);
    assert_int_equal(batch_queue_stop(NULL), 0);
    sink_destroy(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_by_size),           cmocka_unit_test(test_batch_by_deadline),
        cmocka_unit_test(test_flush_writes_all_queued), cmocka_unit_test(test_stop_drains),
        cmocka_unit_test(test_full_queue_busy),         cmocka_unit_test(test_order_kept),
        cmocka_unit_test(test_idle_runs_at_start),      cmocka_unit_test(test_bad_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
