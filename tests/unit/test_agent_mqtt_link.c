/* test_agent_mqtt_link.c - the agent's MQTT link against a real mosquitto
 * broker on 127.0.0.1: publish to itself, reconnect and re-subscribe after
 * the broker is killed and restarted, the last will on an abrupt drop (and
 * none on a clean stop), and the URL parser. */
#define _XOPEN_SOURCE 700 /* nftw(), to clean up the temporary directory */
#include "agent/mqtt_link.h"
#include "common/ef_error.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define MAX_LINKS 4

/* A mosquitto process on 127.0.0.1, its config and log in dir. */
struct broker {
    char dir[64];
    char exe[256];
    int port;
    pid_t pid;
};

/* What one link's callbacks saw. */
struct probe {
    bool states[16]; /* on_state arguments, in order */
    int nstates;
    int messages;
    char topic[128];   /* of the last message */
    char payload[256]; /* of the last message, NUL-terminated */
    bool stop_on_message;
    struct mqtt_link *link; /* for stop_on_message */
};

struct fixture {
    struct broker broker;
    uv_loop_t loop;
    struct mqtt_link *links[MAX_LINKS]; /* stopped by teardown */
    struct probe probes[MAX_LINKS];
};

/* ---- the broker --------------------------------------------------------- */

static int free_port(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    int port = -1, fd = socket(AF_INET, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static bool find_mosquitto(char *out, size_t size)
{
    const char *env = getenv("EF_MOSQUITTO");
    const char *dirs[] = {"/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"};
    if (env && access(env, X_OK) == 0) {
        snprintf(out, size, "%s", env);
        return true;
    }
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        snprintf(out, size, "%s/mosquitto", dirs[i]);
        if (access(out, X_OK) == 0)
            return true;
    }
    return false;
}

static bool port_open(int port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    bool ok;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)port);
    ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* Starts mosquitto on b->port and waits until it accepts connections. */
static int broker_start(struct broker *b)
{
    char conf[128], log[128];
    FILE *f;
    snprintf(conf, sizeof(conf), "%s/mosquitto.conf", b->dir);
    snprintf(log, sizeof(log), "%s/mosquitto.log", b->dir);
    f = fopen(conf, "w");
    if (!f)
        return -1;
    fprintf(f, "listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n", b->port);
    fclose(f);
    b->pid = fork();
    if (b->pid < 0)
        return -1;
    if (b->pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(b->exe, "mosquitto", "-c", conf, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 300; i++) {
        if (port_open(b->port))
            return 0;
        if (waitpid(b->pid, NULL, WNOHANG) == b->pid) {
            b->pid = 0;
            return -1;
        }
        usleep(10 * 1000);
    }
    return -1;
}

static void broker_kill(struct broker *b, int sig)
{
    if (b->pid <= 0)
        return;
    kill(b->pid, sig);
    waitpid(b->pid, NULL, 0);
    b->pid = 0;
}

/* ---- the loop ----------------------------------------------------------- */

static void on_watchdog(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

typedef bool (*cond_fn)(const struct fixture *f, const void *arg);

/* Runs the loop until cond holds or timeout_ms passed; returns cond. */
static bool run_until(struct fixture *f, cond_fn cond, const void *arg, unsigned timeout_ms)
{
    uv_timer_t t;
    bool expired = false;
    uv_timer_init(&f->loop, &t);
    t.data = &expired;
    uv_timer_start(&t, on_watchdog, timeout_ms, 0);
    while (!cond(f, arg) && !expired)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    return cond(f, arg);
}

static bool never(const struct fixture *f, const void *arg)
{
    (void)f;
    (void)arg;
    return false;
}

static void run_for(struct fixture *f, unsigned ms)
{
    run_until(f, never, NULL, ms);
}

/* arg: a struct probe; true once it has seen at least want states. */
struct states_wanted {
    const struct probe *p;
    int n;
};

static bool has_states(const struct fixture *f, const void *arg)
{
    const struct states_wanted *w = arg;
    (void)f;
    return w->p->nstates >= w->n;
}

struct messages_wanted {
    const struct probe *p;
    int n;
};

static bool has_messages(const struct fixture *f, const void *arg)
{
    const struct messages_wanted *w = arg;
    (void)f;
    return w->p->messages >= w->n;
}

/* arg: a payload; true once probe 0's last message carried it. */
static bool has_payload(const struct fixture *f, const void *arg)
{
    return strcmp(f->probes[0].payload, arg) == 0;
}

static void wait_states(struct fixture *f, const struct probe *p, int n)
{
    struct states_wanted w = {p, n};
    assert_true(run_until(f, has_states, &w, 8000));
}

static void wait_messages(struct fixture *f, const struct probe *p, int n)
{
    struct messages_wanted w = {p, n};
    assert_true(run_until(f, has_messages, &w, 5000));
}

/* ---- links -------------------------------------------------------------- */

static void on_message(void *ctx, const char *topic, const void *payload, size_t len)
{
    struct probe *p = ctx;
    p->messages++;
    snprintf(p->topic, sizeof(p->topic), "%s", topic);
    if (len >= sizeof(p->payload))
        len = sizeof(p->payload) - 1;
    memcpy(p->payload, payload, len);
    p->payload[len] = '\0';
    if (p->stop_on_message) {
        mqtt_link_stop(p->link);
        p->link = NULL;
    }
}

static void on_state(void *ctx, bool connected)
{
    struct probe *p = ctx;
    if (p->nstates < (int)(sizeof(p->states) / sizeof(p->states[0])))
        p->states[p->nstates++] = connected;
}

/* Starts link i as client_id, with a will when will_topic is not NULL. */
static struct mqtt_link *start_link(struct fixture *f, int i, const char *client_id,
                                    const char *will_topic, const char *will_payload)
{
    /* A name, not an address: the lookup, and the address rotation where
     * localhost is ::1 first (the broker listens on 127.0.0.1 only). */
    struct mqtt_link_opts o = {.host = "localhost",
                               .port = f->broker.port,
                               .client_id = client_id,
                               .will_topic = will_topic,
                               .will_payload = will_payload,
                               .keepalive_s = 10};
    assert_int_equal(
        mqtt_link_start(&f->loop, &o, on_message, on_state, &f->probes[i], &f->links[i]), 0);
    f->probes[i].link = f->links[i];
    return f->links[i];
}

static void stop_link(struct fixture *f, int i)
{
    mqtt_link_stop(f->links[i]);
    f->links[i] = NULL;
}

/* ---- fixture ------------------------------------------------------------ */

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    *state = f;
    if (uv_loop_init(&f->loop) != 0)
        return -1;
    if (!find_mosquitto(f->broker.exe, sizeof(f->broker.exe)))
        return 0; /* the tests that need it skip */
    snprintf(f->broker.dir, sizeof(f->broker.dir), "/tmp/ef_test_mqtt_XXXXXX");
    if (!mkdtemp(f->broker.dir))
        return -1;
    f->broker.port = free_port();
    return f->broker.port > 0 && broker_start(&f->broker) == 0 ? 0 : -1;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    int rc;
    for (int i = 0; i < MAX_LINKS; i++)
        mqtt_link_stop(f->links[i]);
    while (uv_loop_alive(&f->loop)) /* the links close and free themselves */
        uv_run(&f->loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(&f->loop); /* UV_EBUSY if a handle was left open */
    broker_kill(&f->broker, SIGTERM);
    if (f->broker.dir[0])
        nftw(f->broker.dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
    free(f);
    return rc == 0 ? 0 : -1;
}

static void need_broker(const struct fixture *f)
{
    if (f->broker.pid <= 0)
        skip();
}

/* ---- tests -------------------------------------------------------------- */

static void test_parse_url(void **state)
{
    char host[64];
    int port = 0;
    (void)state;

    assert_int_equal(mqtt_link_parse_url("mqtt://broker.local", host, sizeof(host), &port), 0);
    assert_string_equal(host, "broker.local");
    assert_int_equal(port, 1883);
    assert_int_equal(mqtt_link_parse_url("mqtt://127.0.0.1:18830/", host, sizeof(host), &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 18830);
    assert_int_equal(
        mqtt_link_parse_url("mqtt://dev:s3cret@broker:1884", host, sizeof(host), &port), 0);
    assert_string_equal(host, "broker");
    assert_int_equal(port, 1884);
    assert_int_equal(mqtt_link_parse_url("mqtt://[::1]:1885", host, sizeof(host), &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 1885);

    const char *bad[] = {"http://broker",     "mqtt://",         "mqtt://:1883",
                         "mqtt://broker:",    "mqtt://broker:0", "mqtt://broker:65536",
                         "mqtt://broker:12a", "mqtt://bro ker",  "mqtt://broker/topic",
                         "mqtt://[::1",       "mqtt://[::1]x",   NULL};
    for (int i = 0; bad[i]; i++)
        assert_int_equal(mqtt_link_parse_url(bad[i], host, sizeof(host), &port), EF_EINVAL);
    assert_int_equal(mqtt_link_parse_url("mqtt://a-very-long-host-name", host, 8, &port),
                     EF_EINVAL);
}

static void test_publish_to_self(void **state)
{
    struct fixture *f = *state;
    need_broker(f);
    struct mqtt_link *l = start_link(f, 0, "ef-test-self", NULL, NULL);
    struct probe *p = &f->probes[0];

    assert_int_equal(mqtt_link_publish(l, "ef/test/a", "x", 1, 1, false), EF_ENET);
    assert_int_equal(mqtt_link_subscribe(l, "ef/test/+", 1), 0); /* remembered */
    wait_states(f, p, 1);
    assert_true(p->states[0]);
    assert_true(mqtt_link_connected(l));
    assert_int_equal(mqtt_link_publish(l, "ef/test/a", "hello", 5, 1, false), 0);
    wait_messages(f, p, 1);
    assert_string_equal(p->topic, "ef/test/a");
    assert_string_equal(p->payload, "hello");

    assert_int_equal(mqtt_link_subscribe(l, "ef/#/bad", 1), EF_EINVAL);
    assert_int_equal(mqtt_link_publish(l, "ef/+/bad", "x", 1, 0, false), EF_EINVAL);
}

static void test_reconnects_and_resubscribes(void **state)
{
    struct fixture *f = *state;
    need_broker(f);
    struct mqtt_link *l = start_link(f, 0, "ef-test-reconnect", NULL, NULL);
    struct probe *p = &f->probes[0];
    uint64_t t0;

    wait_states(f, p, 1);
    assert_int_equal(mqtt_link_subscribe(l, "ef/test/r", 1), 0);
    assert_int_equal(mqtt_link_publish(l, "ef/test/r", "one", 3, 1, false), 0);
    wait_messages(f, p, 1);

    broker_kill(&f->broker, SIGKILL);
    wait_states(f, p, 2);
    assert_false(p->states[1]);
    assert_false(mqtt_link_connected(l));
    assert_int_equal(mqtt_link_publish(l, "ef/test/r", "lost", 4, 1, false), EF_ENET);

    /* The new broker knows nothing of the old subscription. */
    assert_int_equal(broker_start(&f->broker), 0);
    t0 = uv_hrtime();
    wait_states(f, p, 3);
    assert_true(p->states[2]);
    assert_true(uv_hrtime() - t0 < 5000000000ull); /* first retry after ~1 s */
    /* QoS 1 is at least once: "one" may come again first, when the killed
     * broker's reset discarded its PUBACK and the link re-sent it. */
    assert_int_equal(mqtt_link_publish(l, "ef/test/r", "two", 3, 1, false), 0);
    assert_true(run_until(f, has_payload, "two", 5000));
}

/* The sockets of this process connected to port. */
static int sockets_to(int port, int *fds, int max)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL && n < max) {
        struct sockaddr_in sa;
        socklen_t len = sizeof(sa);
        struct stat st;
        int fd = atoi(e->d_name);
        if (e->d_name[0] == '.' || fd == dirfd(d) || fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode))
            continue;
        if (getpeername(fd, (struct sockaddr *)&sa, &len) == 0 && sa.sin_family == AF_INET &&
            ntohs(sa.sin_port) == port)
            fds[n++] = fd;
    }
    closedir(d);
    return n;
}

static void test_will_on_abrupt_drop_only(void **state)
{
    struct fixture *f = *state;
    need_broker(f);
    struct mqtt_link *watcher = start_link(f, 0, "ef-test-watcher", NULL, NULL);
    struct probe *pw = &f->probes[0];
    int before[8], after[8], nbefore, nafter, dropped = -1;

    assert_int_equal(mqtt_link_subscribe(watcher, "ef/will/#", 1), 0);
    wait_states(f, pw, 1);
    nbefore = sockets_to(f->broker.port, before, 8);

    /* A clean stop: the broker drops the will. */
    start_link(f, 1, "ef-test-clean", "ef/will/clean", "offline");
    wait_states(f, &f->probes[1], 1);
    stop_link(f, 1);
    run_for(f, 500);
    assert_int_equal(pw->messages, 0);

    /* An abrupt drop: the broker publishes the will (retained). */
    start_link(f, 2, "ef-test-dropped", "ef/will/dropped", "offline");
    wait_states(f, &f->probes[2], 1);
    nafter = sockets_to(f->broker.port, after, 8);
    for (int i = 0; i < nafter; i++) {
        bool old = false;
        for (int j = 0; j < nbefore; j++)
            old = old || after[i] == before[j];
        if (!old)
            dropped = after[i];
    }
    assert_true(dropped >= 0);
    assert_int_equal(shutdown(dropped, SHUT_RDWR), 0);
    wait_messages(f, pw, 1);
    assert_string_equal(pw->topic, "ef/will/dropped");
    assert_string_equal(pw->payload, "offline");
    wait_states(f, &f->probes[2], 2); /* the dropped link noticed */
    assert_false(f->probes[2].states[1]);

    /* Retained: a later subscriber gets it too. */
    struct mqtt_link *late = start_link(f, 3, "ef-test-late", NULL, NULL);
    assert_int_equal(mqtt_link_subscribe(late, "ef/will/dropped", 1), 0);
    wait_messages(f, &f->probes[3], 1);
    assert_string_equal(f->probes[3].payload, "offline");
}

static void test_stop_from_message_callback(void **state)
{
    struct fixture *f = *state;
    need_broker(f);
    struct mqtt_link *l = start_link(f, 0, "ef-test-stop", NULL, NULL);
    struct probe *p = &f->probes[0];

    assert_int_equal(mqtt_link_subscribe(l, "ef/test/s", 0), 0);
    wait_states(f, p, 1);
    p->stop_on_message = true;
    f->links[0] = NULL; /* the callback stops it */
    assert_int_equal(mqtt_link_publish(l, "ef/test/s", "bye", 3, 0, false), 0);
    wait_messages(f, p, 1);
    assert_null(p->link);
    /* teardown checks every handle closed */
}

static void test_no_broker_retries_quietly(void **state)
{
    struct fixture *f = *state;
    struct mqtt_link_opts o = {.host = "127.0.0.1", .client_id = "ef-test-none"};
    o.port = free_port();
    assert_int_equal(
        mqtt_link_start(&f->loop, &o, on_message, on_state, &f->probes[0], &f->links[0]), 0);
    run_for(f, 1500); /* the first attempt and one retry */
    assert_false(mqtt_link_connected(f->links[0]));
    assert_int_equal(f->probes[0].nstates, 0);
    assert_int_equal(mqtt_link_publish(f->links[0], "ef/x", "x", 1, 1, false), EF_ENET);

    /* Stopped while its first host lookup is under way. */
    o.client_id = "ef-test-brief";
    assert_int_equal(
        mqtt_link_start(&f->loop, &o, on_message, on_state, &f->probes[1], &f->links[1]), 0);
    stop_link(f, 1);

    o.client_id = "";
    struct mqtt_link *bad = NULL;
    assert_int_equal(mqtt_link_start(&f->loop, &o, on_message, on_state, NULL, &bad), EF_EINVAL);
    assert_null(bad);
    o.client_id = "x";
    o.keepalive_s = 2;
    assert_int_equal(mqtt_link_start(&f->loop, &o, on_message, on_state, NULL, &bad), EF_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_url),
        cmocka_unit_test_setup_teardown(test_publish_to_self, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnects_and_resubscribes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_will_on_abrupt_drop_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_from_message_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_broker_retries_quietly, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
