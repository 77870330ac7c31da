/* log.h - one-line logs to stderr, prefixed with time, level and component.
 * Never pass secrets or tokens to these functions. */
#ifndef TARN_LOG_H
#define TARN_LOG_H

#include "err.h"

enum tarn_log_level { TARN_LOG_DEBUG, TARN_LOG_INFO, TARN_LOG_WARN, TARN_LOG_ERROR };

void tarn_log_set_level(enum tarn_log_level lvl);
void tarn_log(enum tarn_log_level lvl, const char *component, const char *fmt, ...) TARN_PRINTF(3, 4);

#define tarn_log_info(comp, ...) tarn_log(TARN_LOG_INFO, comp, __VA_ARGS__)
#define tarn_log_warn(comp, ...) tarn_log(TARN_LOG_WARN, comp, __VA_ARGS__)
#define tarn_log_error(comp, ...) tarn_log(TARN_LOG_ERROR, comp, __VA_ARGS__)
#define tarn_log_debug(comp, ...) tarn_log(TARN_LOG_DEBUG, comp, __VA_ARGS__)

#endif
