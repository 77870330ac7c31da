/* log.c - see log.h. One write(2) per line so lines from threads never mix. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "util.h"

static enum tarn_log_level log_min = TARN_LOG_INFO;

void tarn_log_set_level(enum tarn_log_level lvl) { log_min = lvl; }

void tarn_log(enum tarn_log_level lvl, const char *component, const char *fmt, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    if (lvl < log_min) return;
    char line[2048];
    char ts[32];
    tarn_format_iso8601(tarn_now_us(), ts);
    int n = snprintf(line, sizeof line, "%s %-5s [%s] ", ts, names[lvl], component);
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < sizeof line) n += vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof line - 1) n = (int)sizeof line - 2;
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}
