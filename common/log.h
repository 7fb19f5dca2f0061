/*
 * log.h - structured logging to stderr.
 *
 * One line per event, key=value pairs: `ts=... level=info event=http_request
 * method=GET status=200`. The caller supplies the event name and a printf
 * format for the remaining pairs; values that may hold spaces go through
 * ef_log_quote(). Secrets are never passed here.
 */
#ifndef EF_LOG_H
#define EF_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum ef_log_level { EF_LOG_DEBUG, EF_LOG_INFO, EF_LOG_WARN, EF_LOG_ERROR };

/* Sets the lowest level written. Called once from main before threads start;
 * the default comes from the EF_LOG_LEVEL environment variable, else info. */
void ef_log_set_level(enum ef_log_level level);

/* Parses "debug", "info", "warn" or "error"; returns 0 or EF_EINVAL. */
int ef_log_level_parse(const char *s, enum ef_log_level *out);

/* True when lines of level are written: lets hot paths skip formatting. */
bool ef_log_enabled(enum ef_log_level level);

/* Writes one line if level is enabled. kv_fmt may be NULL. Thread-safe: the
 * line is formatted first and written with one call. */
void ef_log(enum ef_log_level level, const char *event, const char *kv_fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Copies s into buf as a log value: quoted and escaped if it holds spaces,
 * quotes, '=' or control characters; truncated to fit. Returns buf. */
const char *ef_log_quote(const char *s, char *buf, size_t size);

#define ef_debug(event, ...) ef_log(EF_LOG_DEBUG, event, __VA_ARGS__)
#define ef_info(event, ...)  ef_log(EF_LOG_INFO, event, __VA_ARGS__)
#define ef_warn(event, ...)  ef_log(EF_LOG_WARN, event, __VA_ARGS__)
#define ef_error(event, ...) ef_log(EF_LOG_ERROR, event, __VA_ARGS__)

#endif
