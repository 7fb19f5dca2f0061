/* clock.c - wall-clock and monotonic time helpers. */
#include "common/clock.h"
#include "common/ef_error.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t ef_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t ef_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ef_time_format(int64_t unix_ms, char *buf, size_t size)
{
    /* Floor division, so a time before the epoch borrows a whole second. */
    int64_t ms = unix_ms % 1000;
    time_t secs = (time_t)(unix_ms / 1000 - (ms < 0));
    ms += ms < 0 ? 1000 : 0;
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)ms);
}

/* True when s has exactly the shape ef_time_format writes, the ".ddd" part
 * optional: sscanf alone would accept signs, spaces and short fields. */
static bool shape_ok(const char *s)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    size_t i = 0;
    for (; shape[i]; i++)
        if (shape[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != shape[i])
            return false;
    if (s[i] == '.') {
        for (size_t k = 1; k <= 3; k++)
            if (!isdigit((unsigned char)s[i + k]))
                return false;
        i += 4;
    }
    return strcmp(s + i, "Z") == 0;
}

int ef_time_parse(const char *s, int64_t *unix_ms)
{
    struct tm tm, check;
    int ms = 0, consumed = 0;
    memset(&tm, 0, sizeof(tm));
    if (!s || !shape_ok(s))
        return EF_EINVAL;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &consumed) != 6)
        return EF_EINVAL;
    const char *rest = s + consumed;
    if (*rest == '.') {
        int n = 0;
        if (sscanf(rest, ".%3d%n", &ms, &n) != 1 || n != 4)
            return EF_EINVAL;
        rest += n;
    }
    if (strcmp(rest, "Z") != 0)
        return EF_EINVAL;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60)
        return EF_EINVAL;
    /* timegm() normalises Feb 31 into March; a date that moved did not exist. */
    struct tm norm = tm;
    time_t t = timegm(&norm);
    if (!gmtime_r(&t, &check) || check.tm_mday != tm.tm_mday || check.tm_mon != tm.tm_mon ||
        check.tm_year != tm.tm_year)
        return EF_EINVAL;
    *unix_ms = (int64_t)t * 1000 + ms;
    return 0;
}
