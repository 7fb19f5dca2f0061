/* clock.h - wall-clock and monotonic time in the units edgefleet stores. */
#ifndef EF_CLOCK_H
#define EF_CLOCK_H

#include <stddef.h>
#include <stdint.h>

#define EF_TIME_STR_SIZE 32

/* Milliseconds since the Unix epoch (wall clock). */
int64_t ef_now_ms(void);

/* Milliseconds from an arbitrary fixed point (monotonic clock). */
int64_t ef_mono_ms(void);

/* Formats a Unix time in ms as RFC 3339 UTC with milliseconds
 * ("2026-11-22T10:00:00.123Z") into buf of at least EF_TIME_STR_SIZE bytes. */
void ef_time_format(int64_t unix_ms, char *buf, size_t size);

/* Parses the format written by ef_time_format (the ".123" part optional).
 * Returns 0 or EF_EINVAL. */
int ef_time_parse(const char *s, int64_t *unix_ms);

#endif
