/* util.h - file-system, time and naming helpers shared by every component. */
#ifndef TARN_UTIL_H
#define TARN_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Creates dir and its missing parents (mode 0755). Existing dirs are fine. */
int tarn_mkdir_p(const char *path, tarn_errbuf *eb);
/* fsyncs a directory, so a create, rename or unlink inside it is durable. */
int tarn_fsync_dir(const char *path, tarn_errbuf *eb);
/* fsyncs the parent directory of path. */
int tarn_fsync_parent(const char *path, tarn_errbuf *eb);
/* fsyncs a file by path. */
int tarn_fsync_path(const char *path, tarn_errbuf *eb);
/* Writes data to path through a temp file + fsync + rename + dir fsync. */
int tarn_write_file_atomic(const char *path, const void *data, size_t n, int mode, tarn_errbuf *eb);
/* Reads a whole file (at most max bytes) into a malloc'd, NUL-terminated
 * buffer owned by the caller. TARN_ENOTFOUND if it does not exist. */
int tarn_read_file(const char *path, size_t max, char **out, size_t *out_len, tarn_errbuf *eb);
/* Removes a directory tree (best effort; used for staging and tests). */
int tarn_rm_rf(const char *path);

/* Wall clock in microseconds / milliseconds since the epoch (UTC). */
int64_t tarn_now_us(void);
int64_t tarn_now_ms(void);
/* Monotonic clock in microseconds / milliseconds, for timeouts and intervals. */
int64_t tarn_mono_us(void);
int64_t tarn_mono_ms(void);
/* The value of a hex digit (either case), or -1. Inline: the JSON
 * validator and the log scan call it per character. */
static inline int tarn_hex_digit(int ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}
/* The UTC day of a time in epoch microseconds: days since 1970-01-01,
 * rounded down (negative before 1970). */
int64_t tarn_utc_day(int64_t us);
/* "YYYY-MM-DD" of a UTC epoch-microsecond time into out (>= 11 bytes). */
void tarn_format_date(int64_t us, char *out);
/* "YYYY-MM-DD HH:MM:SS.uuuuuu" (DuckDB TIMESTAMP text, UTC) into out (>= 32). */
void tarn_format_timestamp(int64_t us, char *out);
/* "YYYY-MM-DDTHH:MM:SSZ" into out (>= 21). */
void tarn_format_iso8601(int64_t us, char *out);

/* A database or table name: 1 to 128 of [A-Za-z0-9_]. */
int tarn_name_valid(const char *s);
/* Non-zero for database names DuckDB keeps for itself (memory, system, temp,
 * main, information_schema, pg_catalog): no table there could be queried. */
int tarn_db_name_reserved(const char *s);

/* Fills out with n cryptographically random bytes. */
int tarn_random_bytes(void *out, size_t n);
/* Lower-case hex of n bytes into out (2n+1 bytes). */
void tarn_hex(const void *in, size_t n, char *out);
/* Constant-time comparison of two equal-length byte strings. */
int tarn_ct_equal(const void *a, const void *b, size_t n);

#endif
