/* partition.h - Hive-style partition path segments.
 *
 * A value taken from a record must never let that record write outside its
 * table, so every byte outside [A-Za-z0-9_.~-] is percent-encoded (%XX, upper
 * case), a whole "." or ".." is encoded too, and an empty value becomes
 * "__EMPTY__" (what Hive writes as __HIVE_DEFAULT_PARTITION__ for NULL is
 * "__NULL__" here). Encoded values longer than TARN_PARTITION_MAX are cut and
 * end with "~" and 16 hex digits of the value's SHA-256, so distinct values
 * stay distinct.
 */
#ifndef TARN_PARTITION_H
#define TARN_PARTITION_H

#include <stddef.h>

#include "common/buf.h"

#define TARN_PARTITION_MAX 200

/* Appends the encoded form of value (n bytes; NULL value = "__NULL__"). */
int tarn_partition_encode(tarn_buf *out, const char *value, size_t n);
/* Appends "key=encoded(value)" (key must be a valid name). */
int tarn_partition_segment(tarn_buf *out, const char *key, const char *value, size_t n);
/* Decodes %XX escapes of an encoded value; returns -1 on a bad escape. */
int tarn_partition_decode(tarn_buf *out, const char *enc, size_t n);

#endif
