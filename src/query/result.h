/* result.h - reading a DuckDB result and printing its values, for the query
 * engine (query.c): JSON rows, Athena-style CSV fields and DuckDB's text of
 * each column's type.
 *
 * Encoding reads DuckDB's vectors directly (nested values included;
 * duckdb_value_varchar cannot render STRUCT or LIST). Numbers, strings,
 * booleans, dates and timestamps are formatted here; rarer scalar types go
 * through duckdb_get_varchar on a duckdb_value, which is DuckDB's own CAST
 * to VARCHAR.
 */
#ifndef TARN_QUERY_RESULT_H
#define TARN_QUERY_RESULT_H

#include <duckdb.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* How to read and print one column (or one nested child) of a result. */
typedef struct query_col {
    duckdb_type id;
    duckdb_logical_type lt;
    char *name;               /* field / member name inside STRUCT or UNION */
    tarn_buf json_key;        /* STRUCT field: the name as a JSON key with its ':' */
    uint8_t width, scale;     /* DECIMAL */
    duckdb_type internal;     /* DECIMAL and ENUM storage type */
    uint32_t enum_size;
    char **enum_names;        /* ENUM dictionary, filled on demand */
    idx_t array_size;         /* ARRAY */
    size_t nchildren;         /* LIST/ARRAY 1, MAP 2 (key, value), STRUCT / UNION members */
    struct query_col *children;
} query_col;

typedef struct query_run {
    tarn_buf field; /* a whole CSV field or a column type, before quoting */
    tarn_buf leaf;  /* a scalar's text, before JSON quoting (never nested) */
} query_run;

/* 1 if row of vector v is not NULL. */
int query_valid(duckdb_vector v, idx_t row);

/* Reads lt (taking ownership) into c; TARN_ENOMEM. query_col_free frees
 * what init allocated (also after a failed init). */
int query_col_init(query_col *c, duckdb_logical_type lt);
void query_col_free(query_col *c);
/* 1 if every type in c can be printed; else 0 and *bad is the first one
 * that cannot. */
int query_col_supported(const query_col *c, const query_col **bad);
/* DuckDB's text for c's type ("BIGINT", "STRUCT(x BIGINT, \"Y\" VARCHAR)").
 * keywords: DuckDB's keywords, lower case and sorted (a field named like one
 * is quoted). */
int query_type_text(char *const *keywords, size_t nkeywords, const query_col *c, tarn_buf *b);
/* Appends row's value of vector v as JSON / as one CSV field (NULL empty and
 * unquoted, an empty string ""). r holds scratch buffers reused across
 * calls. */
int query_json(query_run *r, query_col *c, duckdb_vector v, idx_t row, tarn_buf *b);
int query_csv_field(query_run *r, query_col *c, duckdb_vector v, idx_t row, tarn_buf *b);

#endif
