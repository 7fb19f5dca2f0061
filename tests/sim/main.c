/*
 * main.c - edgefleet-sim: the command line, the machine's limits, the run.
 *
 * Before anything starts, the file-descriptor limit is raised to the hard
 * limit (or past it, for a process allowed to) and the fleet is checked against it and against the
 * local port range (every device holds one loopback connection to the broker): a machine that
 * cannot hold N devices is said so, with exit status 2, instead of failing devices one by one
 * later.
 */
#include "tests/sim/sim.h"
#include "common/crypto.h"
#include "common/ef_error.h"
#include "common/log.h"

#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* Raises RLIMIT_NOFILE to its hard limit (beyond it, when the process may);
 * EF_ETOOBIG when that is below what cfg needs. */
static int raise_fd_limit(const struct sim_config *cfg)
{
    struct rlimit rl;
    unsigned long need = sim_fd_budget(cfg);
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        perror("edgefleet-sim: getrlimit");
        return EF_EIO;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            perror("edgefleet-sim: setrlimit");
            return EF_EIO;
        }
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        /* A privileged process (CAP_SYS_RESOURCE) may raise the hard limit
         * itself, up to fs.nr_open. */
        struct rlimit more = {need, need};
        if (setrlimit(RLIMIT_NOFILE, &more) == 0)
            return 0;
        fprintf(stderr,
                "edgefleet-sim: this machine cannot hold %u devices: they need about %lu file "
                "descriptors and the hard limit is %lu (raise it: ulimit -Hn, or LimitNOFILE= / "
                "limits.conf), or run fewer devices per process\n",
                cfg->devices, need, (unsigned long)rl.rlim_cur);
        return EF_ETOOBIG;
    }
    return 0;
}

/* Every device and every HTTP connection takes a local port towards the
 * same server address; EF_ETOOBIG when the range is too small. */
static int check_ports(const struct sim_config *cfg)
{
    unsigned long lo = 0, hi = 0;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (!f)
        return 0; /* not Linux, or hidden: nothing to check */
    int n = fscanf(f, "%lu %lu", &lo, &hi);
    fclose(f);
    if (n != 2 || hi < lo)
        return 0;
    unsigned long need =
        (unsigned long)cfg->devices + (unsigned long)sim_http_clients(cfg) * cfg->http_conns;
    if (hi - lo + 1 < need) {
        fprintf(stderr,
                "edgefleet-sim: this machine cannot hold %u devices: they need %lu local ports "
                "and net.ipv4.ip_local_port_range offers %lu\n",
                cfg->devices, need, hi - lo + 1);
        return EF_ETOOBIG;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct sim_config cfg;
    enum ef_log_level level = EF_LOG_WARN;
    const char *env = getenv("EF_LOG_LEVEL");
    sim_config_defaults(&cfg);
    int rc = sim_config_parse(argc - 1, argv + 1, &cfg, stdout, stderr);
    if (rc == 1)
        return 0;
    if (rc != 0)
        return 2;
    /* Thousands of devices at info level drown the interesting lines. */
    if (env && ef_log_level_parse(env, &level) != 0) {
        fprintf(stderr, "edgefleet-sim: bad EF_LOG_LEVEL %s\n", env);
        return 2;
    }
    ef_log_set_level(level);
    if (raise_fd_limit(&cfg) != 0 || check_ports(&cfg) != 0)
        return 2;
    if (ef_crypto_init() != 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "edgefleet-sim: libsodium or libcurl failed to initialise\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    rc = sim_run(&cfg, stdout);
    curl_global_cleanup();
    return rc == 0 ? 0 : 1;
}
