/* test_agent_collect.c - data collection against a real libmicrohttpd server
 * on 127.0.0.1 playing the two device routes of docs/monitoring.md: the
 * policy is fetched with the device token, the reservoir keeps `batch`
 * inputs labelled by feedback, uploads carry them, `full` stops collecting,
 * 403 fetches the policy again, a policy of another model or a disabled one
 * collects nothing, and sample_rate selects its share. */
#include "agent/collect.h"
#include "agent/http_client.h"
#include "common/ef_error.h"
#include "common/json_util.h"

#include <arpa/inet.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define DEVICE "dev-1"
#define TOKEN  "tok-123"
#define POLICY_ON                                                                                  \
    "{\"model\":\"thyroid\",\"version\":2,\"enabled\":true,\"sample_rate\":1.0,"                   \
    "\"max_samples\":100,\"dataset_id\":4,\"batch\":5}"

/* ---- the server ---------------------------------------------------------- */

struct server {
    struct MHD_Daemon *daemon;
    int port;
    pthread_mutex_t lock;
    char policy[1024];       /* the answer to GET .../collection */
    int policy_hits;         /* GETs of the policy */
    bool bad_auth;           /* a request came without the device token */
    int uploads;             /* POSTs of samples */
    char *last_upload;       /* the last POST's body, malloc'd */
    unsigned upload_status;  /* the answer's status ... */
    char upload_answer[256]; /* ... and body */
};

struct upload {
    char *buf;
    size_t len;
};

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *body)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    enum MHD_Result ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct server *srv = cls;
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    bool authed = auth && strcmp(auth, "Bearer " TOKEN) == 0;
    char answer[1024];
    (void)version;
    if (strcmp(method, "GET") == 0 && strcmp(url, "/api/v1/devices/" DEVICE "/collection") == 0) {
        pthread_mutex_lock(&srv->lock);
        srv->policy_hits++;
        srv->bad_auth |= !authed;
        snprintf(answer, sizeof(answer), "%s", srv->policy);
        pthread_mutex_unlock(&srv->lock);
        return reply(conn, 200, answer);
    }
    if (strcmp(method, "POST") == 0 && strcmp(url, "/api/v1/devices/" DEVICE "/samples") == 0) {
        struct upload *up = *con_cls;
        if (!up) {
            *con_cls = calloc(1, sizeof(struct upload));
            return *con_cls ? MHD_YES : MHD_NO;
        }
        if (*upload_data_size > 0) {
            char *grown = realloc(up->buf, up->len + *upload_data_size + 1);
            if (!grown)
                return MHD_NO;
            up->buf = grown;
            memcpy(up->buf + up->len, upload_data, *upload_data_size);
            up->len += *upload_data_size;
            up->buf[up->len] = '\0';
            *upload_data_size = 0;
            return MHD_YES;
        }
        pthread_mutex_lock(&srv->lock);
        srv->uploads++;
        srv->bad_auth |= !authed;
        free(srv->last_upload);
        srv->last_upload = up->buf;
        up->buf = NULL;
        unsigned status = srv->upload_status;
        snprintf(answer, sizeof(answer), "%s", srv->upload_answer);
        pthread_mutex_unlock(&srv->lock);
        return reply(conn, status, answer);
    }
    return reply(conn, 404, "{}");
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct upload *up = *con_cls;
    (void)cls;
    (void)conn;
    (void)toe;
    if (up)
        free(up->buf);
    free(up);
    *con_cls = NULL;
}

static int server_start(struct server *srv)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    pthread_mutex_init(&srv->lock, NULL);
    srv->daemon =
        MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL,
                         NULL, on_request, srv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                         MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_END);
    const union MHD_DaemonInfo *info =
        srv->daemon ? MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT) : NULL;
    if (!info || info->port == 0)
        return -1;
    srv->port = info->port;
    return 0;
}

/* ---- the agent side ------------------------------------------------------ */

struct fixture {
    struct server srv;
    uv_loop_t loop;
    struct http_client *http;
    struct collect *c;
    char url[64];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f || server_start(&f->srv) != 0 || uv_loop_init(&f->loop) != 0 ||
        http_client_new(&f->loop, &f->http) != 0)
        return -1;
    snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d", f->srv.port);
    snprintf(f->srv.policy, sizeof(f->srv.policy), "%s", POLICY_ON);
    f->srv.upload_status = 201;
    snprintf(f->srv.upload_answer, sizeof(f->srv.upload_answer), "{\"accepted\":1,\"full\":false}");
    if (collect_new(f->http, f->url, DEVICE, TOKEN, 42, &f->c) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    collect_free(f->c);
    http_client_free(f->http);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    MHD_stop_daemon(f->srv.daemon);
    pthread_mutex_destroy(&f->srv.lock);
    assert_false(f->srv.bad_auth);
    free(f->srv.last_upload);
    free(f);
    return 0;
}

static int counter(struct fixture *f, const int *field)
{
    pthread_mutex_lock(&f->srv.lock);
    int n = *field;
    pthread_mutex_unlock(&f->srv.lock);
    return n;
}

/* Runs the loop until *field reaches n and the answer has been handled (a
 * deadline of 10 s, not a timing assertion). */
static void run_until(struct fixture *f, const int *field, int n)
{
    for (int i = 0; i < 10000 && counter(f, field) < n; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_true(counter(f, field) >= n);
    /* The answer itself comes back on a later turn of the loop. */
    for (int i = 0; i < 200; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
}

static void set_model(struct fixture *f, const char *id)
{
    int before = counter(f, &f->srv.policy_hits);
    collect_set_model(f->c, id, 3, 3);
    run_until(f, &f->srv.policy_hits, before + 1);
}

static void offer(struct fixture *f, int i, const char *id)
{
    double in[3] = {i, i + 0.5, -i};
    collect_offer(f->c, id, in, 3);
}

static json_t *last_upload(struct fixture *f)
{
    pthread_mutex_lock(&f->srv.lock);
    json_t *doc = json_loads(f->srv.last_upload ? f->srv.last_upload : "", 0, NULL);
    pthread_mutex_unlock(&f->srv.lock);
    assert_non_null(doc);
    return doc;
}

static void the_policy_allows_a_labelled_upload(void **state)
{
    struct fixture *f = *state;
    assert_false(collect_active(f->c));
    set_model(f, "thyroid@2");
    assert_true(collect_active(f->c));
    offer(f, 1, "a");
    offer(f, 2, "b");
    offer(f, 3, NULL);
    collect_label(f->c, "b", 2);
    collect_label(f->c, "zzz", 1); /* not held: ignored */
    collect_label(f->c, "a", 7);   /* not a class of the model: ignored */
    assert_int_equal(collect_held(f->c), 3);
    collect_flush(f->c);
    assert_int_equal(collect_held(f->c), 0); /* a new sample starts */
    run_until(f, &f->srv.uploads, 1);
    json_t *doc = last_upload(f);
    json_t *expect = json_loads("{\"model\":\"thyroid@2\",\"dataset_id\":4,\"samples\":["
                                "{\"input\":[1.0,1.5,-1.0],\"label\":null},"
                                "{\"input\":[2.0,2.5,-2.0],\"label\":2},"
                                "{\"input\":[3.0,3.5,-3.0],\"label\":null}]}",
                                0, NULL);
    assert_true(json_equal(doc, expect));
    json_decref(doc);
    json_decref(expect);
    /* An empty reservoir uploads nothing. */
    collect_flush(f->c);
    run_until(f, &f->srv.policy_hits, 0);
    assert_int_equal(counter(f, &f->srv.uploads), 1);
}

static void the_reservoir_keeps_batch_items(void **state)
{
    struct fixture *f = *state;
    set_model(f, "thyroid@2");
    for (int i = 0; i < 50; i++)
        offer(f, i, NULL);
    assert_int_equal(collect_held(f->c), 5);
    collect_flush(f->c);
    run_until(f, &f->srv.uploads, 1);
    json_t *doc = last_upload(f);
    assert_int_equal(json_array_size(json_object_get(doc, "samples")), 5);
    json_decref(doc);
}

static void full_stops_collecting_until_another_dataset(void **state)
{
    struct fixture *f = *state;
    snprintf(f->srv.upload_answer, sizeof(f->srv.upload_answer), "{\"accepted\":0,\"full\":true}");
    set_model(f, "thyroid@2");
    offer(f, 1, NULL);
    collect_flush(f->c);
    run_until(f, &f->srv.uploads, 1);
    assert_false(collect_active(f->c));
    offer(f, 2, NULL);
    assert_int_equal(collect_held(f->c), 0);
    /* The same policy again (a poll, a collect command): still full. */
    collect_refresh(f->c);
    run_until(f, &f->srv.policy_hits, 2);
    assert_false(collect_active(f->c));
    /* A policy naming a new dataset starts again. */
    pthread_mutex_lock(&f->srv.lock);
    snprintf(f->srv.policy, sizeof(f->srv.policy), "%s",
             "{\"model\":\"thyroid\",\"version\":2,\"enabled\":true,\"sample_rate\":1.0,"
             "\"max_samples\":100,\"dataset_id\":5,\"batch\":5}");
    pthread_mutex_unlock(&f->srv.lock);
    collect_refresh(f->c);
    run_until(f, &f->srv.policy_hits, 3);
    assert_true(collect_active(f->c));
}

static void a_refused_upload_fetches_the_policy_again(void **state)
{
    struct fixture *f = *state;
    f->srv.upload_status = 403;
    snprintf(f->srv.upload_answer, sizeof(f->srv.upload_answer),
             "{\"error\":{\"code\":\"collection_disabled\",\"message\":\"off\"}}");
    set_model(f, "thyroid@2");
    pthread_mutex_lock(&f->srv.lock);
    snprintf(f->srv.policy, sizeof(f->srv.policy), "%s",
             "{\"model\":\"thyroid\",\"version\":null,\"enabled\":false,\"sample_rate\":null,"
             "\"max_samples\":null,\"dataset_id\":null,\"batch\":200}");
    pthread_mutex_unlock(&f->srv.lock);
    offer(f, 1, NULL);
    collect_flush(f->c);
    run_until(f, &f->srv.uploads, 1);
    run_until(f, &f->srv.policy_hits, 2);
    assert_false(collect_active(f->c));
    offer(f, 1, NULL);
    collect_flush(f->c);
    run_until(f, &f->srv.policy_hits, 2);
    assert_int_equal(counter(f, &f->srv.uploads), 1);
}

static void disabled_or_other_model_policies_collect_nothing(void **state)
{
    struct fixture *f = *state;
    const char *policies[] = {
        "{\"model\":\"thyroid\",\"version\":2,\"enabled\":false,\"sample_rate\":null,"
        "\"max_samples\":null,\"dataset_id\":null,\"batch\":200}",
        "{\"model\":\"other\",\"version\":1,\"enabled\":true,\"sample_rate\":1.0,"
        "\"max_samples\":10,\"dataset_id\":3,\"batch\":5}",
        "{\"model\":\"thyroid\",\"version\":2,\"enabled\":true,\"sample_rate\":0,"
        "\"max_samples\":10,\"dataset_id\":3,\"batch\":5}",
        "{\"model\":\"thyroid\",\"version\":2,\"enabled\":true,\"sample_rate\":1,"
        "\"max_samples\":10,\"dataset_id\":3,\"batch\":0}",
        "not json",
    };
    for (size_t i = 0; i < sizeof(policies) / sizeof(policies[0]); i++) {
        pthread_mutex_lock(&f->srv.lock);
        snprintf(f->srv.policy, sizeof(f->srv.policy), "%s", policies[i]);
        pthread_mutex_unlock(&f->srv.lock);
        set_model(f, i % 2 ? "thyroid@2" : "thyroid@3");
        assert_false(collect_active(f->c));
        offer(f, 1, NULL);
        assert_int_equal(collect_held(f->c), 0);
        collect_flush(f->c);
    }
    run_until(f, &f->srv.uploads, 0);
    assert_int_equal(counter(f, &f->srv.uploads), 0);
    /* No production model: nothing is fetched at all. */
    int hits = counter(f, &f->srv.policy_hits);
    collect_set_model(f->c, NULL, 0, 0);
    collect_refresh(f->c);
    run_until(f, &f->srv.policy_hits, 0);
    assert_int_equal(counter(f, &f->srv.policy_hits), hits);
}

static void sample_rate_selects_its_share(void **state)
{
    struct fixture *f = *state;
    pthread_mutex_lock(&f->srv.lock);
    snprintf(f->srv.policy, sizeof(f->srv.policy), "%s",
             "{\"model\":\"thyroid\",\"version\":2,\"enabled\":true,\"sample_rate\":0.25,"
             "\"max_samples\":10000,\"dataset_id\":4,\"batch\":1000}");
    pthread_mutex_unlock(&f->srv.lock);
    set_model(f, "thyroid@2");
    for (int i = 0; i < 2000; i++)
        offer(f, i, NULL);
    /* 500 expected, standard deviation sqrt(2000 * 0.25 * 0.75) = 19.4. */
    size_t held = collect_held(f->c);
    assert_true(held > 500 - 120 && held < 500 + 120);
}

static void a_new_model_drops_the_sample(void **state)
{
    struct fixture *f = *state;
    set_model(f, "thyroid@2");
    offer(f, 1, NULL);
    assert_int_equal(collect_held(f->c), 1);
    set_model(f, "thyroid@3");
    assert_true(collect_active(f->c));
    assert_int_equal(collect_held(f->c), 0);
}

static void freeing_with_a_request_in_flight(void **state)
{
    struct fixture *f = *state;
    collect_set_model(f->c, "thyroid@2", 3, 3); /* a GET starts */
    collect_free(f->c);
    f->c = NULL;
    /* teardown frees the HTTP client, which ends the request: no use after free. */
}

static void policy_answers_are_parsed_strictly(void **state)
{
    (void)state;
    struct collect_policy p;
    const char *on = POLICY_ON;
    assert_int_equal(collect_policy_parse(on, strlen(on), &p), 0);
    assert_true(p.enabled);
    assert_string_equal(p.model, "thyroid");
    assert_true(p.sample_rate == 1.0);
    assert_int_equal(p.dataset_id, 4);
    assert_int_equal(p.batch, 5);
    const char *off = "{\"model\":null,\"version\":null,\"enabled\":false,\"sample_rate\":null,"
                      "\"max_samples\":null,\"dataset_id\":null,\"batch\":200,\"later\":1}";
    assert_int_equal(collect_policy_parse(off, strlen(off), &p), 0);
    assert_false(p.enabled);
    assert_string_equal(p.model, "");
    static const struct {
        const char *body;
        int rc;
    } bad[] = {
        {"", EF_EPARSE},
        {"{\"enabled\":true,\"enabled\":false}", EF_EPARSE},
        {"[]", EF_EINVAL},
        {"{\"model\":\"thyroid\"}", EF_EINVAL},
        {"{\"model\":\"thyroid\",\"enabled\":1}", EF_EINVAL},
        {"{\"model\":\"Bad name\",\"enabled\":false}", EF_EINVAL},
        {"{\"enabled\":true,\"sample_rate\":1,\"dataset_id\":1,\"batch\":1}", EF_EINVAL},
        {"{\"model\":\"m\",\"enabled\":true,\"sample_rate\":0,\"dataset_id\":1,\"batch\":1}",
         EF_EINVAL},
        {"{\"model\":\"m\",\"enabled\":true,\"sample_rate\":1.01,\"dataset_id\":1,\"batch\":1}",
         EF_EINVAL},
        {"{\"model\":\"m\",\"enabled\":true,\"sample_rate\":1,\"dataset_id\":null,\"batch\":1}",
         EF_EINVAL},
        {"{\"model\":\"m\",\"enabled\":true,\"sample_rate\":1,\"dataset_id\":1,\"batch\":0}",
         EF_EINVAL},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        p.enabled = true;
        assert_int_equal(collect_policy_parse(bad[i].body, strlen(bad[i].body), &p), bad[i].rc);
        assert_false(p.enabled);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(policy_answers_are_parsed_strictly),
        cmocka_unit_test_setup_teardown(the_policy_allows_a_labelled_upload, setup, teardown),
        cmocka_unit_test_setup_teardown(the_reservoir_keeps_batch_items, setup, teardown),
        cmocka_unit_test_setup_teardown(full_stops_collecting_until_another_dataset, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_refused_upload_fetches_the_policy_again, setup, teardown),
        cmocka_unit_test_setup_teardown(disabled_or_other_model_policies_collect_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(sample_rate_selects_its_share, setup, teardown),
        cmocka_unit_test_setup_teardown(a_new_model_drops_the_sample, setup, teardown),
        cmocka_unit_test_setup_teardown(freeing_with_a_request_in_flight, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
