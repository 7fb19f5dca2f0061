/* log.c - structured key=value logging to stderr. */
#include "common/log.h"
#include "common/clock.h"
#include "common/ef_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The level is process configuration, set once by main before any thread
 * starts and only read afterwards; -1 means "not yet read from the env". */
static int log_level = -1;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int ef_log_level_parse(const char *s, enum ef_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (s && strcmp(s, level_names[i]) == 0) {
            *out = (enum ef_log_level)i;
            return 0;
        }
    }
    return EF_EINVAL;
}

void ef_log_set_level(enum ef_log_level level)
{
    log_level = (int)level;
}

static int current_level(void)
{
    if (log_level < 0) {
        enum ef_log_level l = EF_LOG_INFO;
        (void)ef_log_level_parse(getenv("EF_LOG_LEVEL"), &l);
        log_level = (int)l;
    }
    return log_level;
}

bool ef_log_enabled(enum ef_log_level level)
{
    return (int)level >= current_level();
}

void ef_log(enum ef_log_level level, const char *event, const char *kv_fmt, ...)
{
    if (!ef_log_enabled(level))
        return;
    char line[2048];
    char ts[EF_TIME_STR_SIZE];
    ef_time_format(ef_now_ms(), ts, sizeof(ts));
    int n = snprintf(line, sizeof(line), "ts=%s level=%s event=%s", ts, level_names[level], event);
    if (n < 0)
        return;
    if (kv_fmt && (size_t)n < sizeof(line) - 2) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, kv_fmt);
        int m = vsnprintf(line + n, sizeof(line) - (size_t)n, kv_fmt, ap);
        va_end(ap);
        if (m > 0)
            n += m;
    }
    if ((size_t)n >= sizeof(line) - 1)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    /* One write per line keeps lines whole when threads log at once. */
    ssize_t ignored = write(STDERR_FILENO, line, (size_t)n);
    (void)ignored;
}

const char *ef_log_quote(const char *s, char *buf, size_t size)
{
    if (size == 0)
        return buf;
    if (!s)
        s = "";
    int needs_quotes = *s == '\0';
    for (const char *p = s; *p; p++)
        if (*p == ' ' || *p == '"' || *p == '=' || (unsigned char)*p < 0x20)
            needs_quotes = 1;
    if (!needs_quotes) {
        snprintf(buf, size, "%s", s);
        return buf;
    }
    /* A quoted value needs room for both quotes and the NUL. */
    if (size < 3) {
        buf[0] = '\0';
        return buf;
    }
    size_t o = 0;
    buf[o++] = '"';
    for (const char *p = s; *p && o + 3 < size; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c < 0x20) {
            buf[o++] = ' ';
        } else {
            buf[o++] = (char)c;
        }
    }
    if (o + 1 < size)
        buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}
