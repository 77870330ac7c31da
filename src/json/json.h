/* json.h - validating splitter for ingest bodies.
 *
 * Why by hand: ingest must validate every byte at disk speed, report the
 * record index and byte offset of the first error, enforce a nesting limit and
 * split a body into records without building a tree. No library in Debian
 * does that (jansson and json-c build trees and report no record boundaries).
 * Request bodies that are not records (query requests, configuration) are
 * parsed with jansson.
 */
#ifndef TARN_JSON_H
#define TARN_JSON_H

#include <stddef.h>

#include "common/err.h"

enum tarn_body_format {
    TARN_BODY_JSON,   /* one object, or an array of objects */
    TARN_BODY_NDJSON, /* one object per line; blank lines are skipped */
};

typedef struct tarn_json_limits {
    size_t max_record;  /* bytes of one record; 0 = 1 MiB */
    size_t max_depth;   /* nesting depth, the record object itself is 1; 0 = 64 */
    size_t max_records; /* records in one body; 0 = 10,000 */
} tarn_json_limits;

/* One record: body[offset .. offset+len), the exact bytes of the object. */
typedef struct tarn_json_span {
    size_t offset;
    size_t len;
} tarn_json_span;

typedef struct tarn_json_error {
    size_t index;     /* record index (0-based) where the error is */
    size_t offset;    /* byte offset in the body where the error is */
    char msg[200];    /* what is wrong, e.g. "expected ':' after object key" */
} tarn_json_error;

/* Validates body (len bytes, need not be NUL-terminated) against RFC 8259
 * (strings with valid escapes and UTF-8 and no raw control characters,
 * numbers, literals, nesting) and splits it into records. Every record must
 * be an object. Keys become column and STRUCT field names in DuckDB, which
 * must not be empty and are matched ignoring case, so in every object of a
 * record, at any depth:
 *   - no key may be empty: "object key is empty";
 *   - no two keys may be equal after unescaping ("n\u0061me" is "name") and
 *     ignoring the case of ASCII letters (bytes >= 0x80 compare exactly):
 *     "duplicate key \"name\"", or "duplicate key \"Name\" (keys differ
 *     only in case from \"name\")" (names shown unescaped, with '"', '\'
 *     and control characters escaped, cut after 48 bytes with "...");
 * and the record's top-level keys must not be reserved (tarn_json_reserved).
 * The offset of a key error is the key's opening quote (the second key's,
 * for a duplicate). Keys more than max_record bytes into a record may go
 * unchecked: that record fails anyway, as too large if for nothing else.
 * On success returns 0, *spans (malloc'd, owned by the caller) and *n >= 1.
 * On failure returns TARN_EJSON, TARN_EDEPTH, TARN_ETOOBIG (record too large
 * or too many records), TARN_EINVAL (empty body, not an object, empty,
 * duplicate or reserved key) or TARN_ENOMEM, fills *err, and sets
 * *spans = NULL. */
int tarn_json_split(const char *body, size_t len, enum tarn_body_format fmt, const tarn_json_limits *limits,
                    tarn_json_span **spans, size_t *n, tarn_json_error *err);

/* Non-zero if name (n bytes, as it appears between the quotes, unescaped) is
 * a column name Tarn adds itself: "_seq", "_ingested_at", "ingestion_date". */
int tarn_json_reserved(const char *name, size_t n);

#endif
