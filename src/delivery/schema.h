/* schema.h - column types and how they widen.
 *
 * Types are DuckDB type text ("BIGINT", "STRUCT(\"x\" DOUBLE)", "VARCHAR[]").
 * What DuckDB's JSON reader infers is first normalized to the small set of
 * types Tarn stores, then merged with the catalog's current type by these
 * rules, so a column only ever widens and older files stay readable:
 *
 *   normalize: TINYINT..BIGINT, UTINYINT..UINTEGER  -> BIGINT
 *              UBIGINT, HUGEINT, UHUGEINT           -> HUGEINT (DuckDB infers it
 *              for integers beyond BIGINT, but also whenever large positive
 *              and negative values mix; the delivery first tries BIGINT)
 *              FLOAT, DECIMAL                       -> DOUBLE
 *              JSON for mixed kinds of values in one batch, MAP (objects
 *              with no usable keys, e.g. {}) and any other type -> VARCHAR
 *              JSON for a field seen only as null, or the elements of
 *              lists seen only empty (tarn_writer_infer tells the two
 *              JSONs apart)                         -> NULL: no type seen
 *   merge:     T u T = T
 *              NULL u T = T (a batch where a field is only null, or a
 *              list only empty, changes nothing); a column or field still
 *              NULL after the merge (new, and only null so far) -> VARCHAR
 *              BIGINT u HUGEINT = HUGEINT
 *              BIGINT u DOUBLE = HUGEINT u DOUBLE = DOUBLE
 *              DATE u TIMESTAMP = TIMESTAMP
 *              STRUCT u STRUCT = every field of both (the older ones first,
 *                                new ones appended), each field merged
 *              LIST(a) u LIST(b) = LIST(a u b)
 *              anything else (scalar u VARCHAR, BOOLEAN u number,
 *              STRUCT u LIST, nested u scalar) = VARCHAR
 *
 * A value of a narrower type converts to the wider one: numbers to their
 * text, nested values to their JSON text.
 *
 * Names match without regard to case, as DuckDB's column and field names do;
 * the first spelling seen is kept.
 */
#ifndef TARN_SCHEMA_H
#define TARN_SCHEMA_H

#include <stddef.h>

#include "catalog/catalog.h"
#include "common/buf.h"
#include "common/err.h"

enum tarn_type_kind {
    TARN_T_BOOLEAN,
    TARN_T_BIGINT,
    TARN_T_HUGEINT,
    TARN_T_DOUBLE,
    TARN_T_VARCHAR,
    TARN_T_DATE,
    TARN_T_TIME,
    TARN_T_TIMESTAMP,
    TARN_T_TIMESTAMPTZ,
    TARN_T_UUID,
    TARN_T_STRUCT,
    TARN_T_LIST,
    TARN_T_NULL, /* no value seen: only in a batch's inferred types, never in the catalog's */
};

typedef struct tarn_type {
    enum tarn_type_kind kind;
    size_t nchildren;           /* STRUCT: fields; LIST: 1 (the element) */
    char **names;               /* STRUCT field names (NULL otherwise) */
    struct tarn_type **children;
} tarn_type;

/* Non-zero for the kinds DuckDB's JSON reader makes of strings by their
 * text: DATE, TIME, TIMESTAMP, TIMESTAMPTZ, UUID. */
int tarn_type_kind_is_text(enum tarn_type_kind k);

/* Parses and normalizes DuckDB type text. *out is owned by the caller
 * (tarn_type_free). TARN_EINVAL with a message for text it cannot parse. */
int tarn_type_parse(const char *text, tarn_type **out, tarn_errbuf *eb);
/* The same, but DuckDB's JSON parses as TARN_T_NULL, for the caller to
 * resolve each such leaf to VARCHAR (values of mixed kinds) or to leave it
 * NULL (only nulls): see tarn_writer_infer. */
int tarn_type_parse_inferred(const char *text, tarn_type **out, tarn_errbuf *eb);
void tarn_type_free(tarn_type *t);
/* Appends the DuckDB type text of t (identifiers quoted). */
int tarn_type_format(const tarn_type *t, tarn_buf *out);
/* Every NULL in t (no value seen) becomes VARCHAR: the type of a column or
 * field seen only as null, and what DuckDB's JSON always was. */
void tarn_type_null_to_varchar(tarn_type *t);
/* The widened type of a and b (a new tree owned by the caller). */
tarn_type *tarn_type_merge(const tarn_type *a, const tarn_type *b);

/* Merges a column list inferred from a batch into the current one. Every
 * current column keeps its place (widened if needed); columns new in the
 * batch are appended in the batch's order; names match ignoring case. Columns in
 * `trailing` (e.g. _ingested_at, _seq) are kept at the end. *out (n_out
 * columns) is owned by the caller: free with tarn_columns_free. */
int tarn_columns_merge(const tarn_column *current, size_t ncurrent, const tarn_column *batch, size_t nbatch,
                       const char *const *trailing, size_t ntrailing, tarn_column **out, size_t *n_out,
                       tarn_errbuf *eb);
/* Non-zero if both lists are the same names and types in the same order. */
int tarn_columns_equal(const tarn_column *a, size_t na, const tarn_column *b, size_t nb);
void tarn_columns_free(tarn_column *c, size_t n);
/* Rewrites every HUGEINT inside the columns' types as BIGINT (the first
 * attempt of a write: most "HUGEINT" inferences fit in BIGINT). Returns the
 * number of columns changed, or a negative error. */
int tarn_columns_narrow_hugeint(tarn_column *cols, size_t n, tarn_errbuf *eb);
/* Rewrites every DATE, TIME, TIMESTAMP, TIMESTAMPTZ and UUID inside the
 * types of the columns, but the one named keep (NULL: none), as VARCHAR:
 * the delivery's last attempt at a batch whose strings DuckDB typed by a
 * guess that a later string does not fit (e.g. dates written 25-11-2025,
 * which DuckDB's inference takes for DATE and its reader then refuses).
 * Returns the number of columns changed, or a negative error. */
int tarn_columns_text_as_varchar(tarn_column *cols, size_t n, const char *keep, tarn_errbuf *eb);

#endif
