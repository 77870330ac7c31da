/* sqlcheck.h - the gate between untrusted SQL and DuckDB.
 *
 * DuckDB opens the files a statement names while it *prepares* the
 * statement, so refusing a table function or a path after prepare is too
 * late. The checker therefore works on the parse tree only: DuckDB's
 * json_serialize_sql(sql) parses without binding and returns the AST as
 * JSON, which is walked here before anything is prepared.
 *
 * A statement passes when it is exactly one SELECT (WITH ... SELECT, VALUES,
 * FROM-first, DESCRIBE / SUMMARIZE of a query included) whose every table
 * reference is either a CTE visible at that point (DuckDB's scoping rules,
 * conservatively) or a table the resolver knows. Table functions, file
 * paths, other catalogs (system, temp), system views and every construct
 * this file does not know are refused.
 *
 * The same parse tells the engine how DuckDB itself can stop at the row cap
 * (a LIMIT of the statement's own, or one appended to its text) so that it
 * can run the statement in one call instead of preparing it first.
 */
#ifndef TARN_SQLCHECK_H
#define TARN_SQLCHECK_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/duck.h"
#include "common/err.h"

/* Asked for every table reference that is not a CTE: db is the schema the
 * user wrote or the default database, never NULL. Returns 1 if db.table is a
 * queryable catalog table (and may record it), 0 if not. Names compare
 * case-insensitively, as DuckDB's do. */
typedef int (*tarn_sqlcheck_resolve_fn)(void *ctx, const char *db, const char *table);

/* Checks sql on conn (only parser functions run on it). default_db may be
 * NULL. Returns 0, or TARN_EDENIED (not one SELECT, table function, file
 * path, unsupported construct), TARN_ENOTFOUND (unknown table), TARN_ESQL
 * (syntax error, DuckDB's message), TARN_ETOOBIG (nesting too deep) or
 * TARN_ENOMEM, with a message in eb. */
int tarn_sqlcheck_statement(duckdb_connection conn, const char *sql, const char *default_db,
                            tarn_sqlcheck_resolve_fn resolve, void *ctx, tarn_errbuf *eb);

/* How a statement that passed the check can run so that DuckDB itself
 * stops at the row cap (see tarn_sqlcheck_statement_bounded). */
enum tarn_sqlcheck_bound {
    TARN_SQLCHECK_UNBOUNDED, /* none found: run sql as it is and stop reading after max_rows */
    TARN_SQLCHECK_OWN_LIMIT, /* sql has a constant LIMIT of at most max_rows: run it as it is */
    TARN_SQLCHECK_CAPPED,    /* run the capped text: sql with "LIMIT <max_rows + 1>" appended */
};

/* The same check, reusing the statement that runs json_serialize_sql on
 * conn: *serializer is NULL the first time, is prepared on conn then and
 * kept for the next checks on that connection; the caller destroys it
 * (with duckdb_destroy_prepare) before disconnecting. Preparing it costs
 * about as much as the rest of a check. Like the connection, one thread at
 * a time.
 *
 * When the statement passes and max_rows > 0, *how says how to bound its
 * result; otherwise it is TARN_SQLCHECK_UNBOUNDED (capped and how may be
 * NULL when no bound is wanted). A top-level
 * LIMIT that is an integer constant of at most max_rows bounds it already.
 * A statement with no top-level LIMIT, OFFSET or percentage is capped: its
 * text, without a trailing ';' and white space, plus "\nLIMIT <max_rows + 1>"
 * (the newline ends a trailing -- comment), goes into capped. The capped
 * text is parsed in the same json_serialize_sql call as sql and is used
 * only if its tree is exactly the checked statement's plus that one LIMIT
 * at the top: one SELECT, nothing else changed. Appending keeps the
 * statement's own column names and ORDER BY, which wrapping it in a
 * subquery would not. Anything else (a LIMIT above max_rows or given as an
 * expression, an OFFSET alone, a text whose capped form parses differently)
 * is TARN_SQLCHECK_UNBOUNDED. */
int tarn_sqlcheck_statement_bounded(duckdb_connection conn, duckdb_prepared_statement *serializer, const char *sql,
                                    const char *default_db, tarn_sqlcheck_resolve_fn resolve, void *ctx,
                                    int64_t max_rows, tarn_buf *capped, enum tarn_sqlcheck_bound *how,
                                    tarn_errbuf *eb);

/* Checks that each of the n texts is a type and nothing else, so it can be
 * pasted into `CAST(x AS <type>)`: catalog types come from record field
 * names and must not be able to smuggle SQL into the engine's DDL.
 * TARN_EINVAL names the first bad type. */
int tarn_sqlcheck_types(duckdb_connection conn, const char *const *types, size_t n, tarn_errbuf *eb);

/* 1 if name (any case) is a DuckDB catalog or system schema that a catalog
 * database must not shadow: memory, system, temp, pg_catalog,
 * information_schema. */
int tarn_sqlcheck_reserved_db(const char *name);

/* ASCII case-insensitive equality, the way DuckDB compares identifiers
 * (independent of the process locale). */
int tarn_sqlcheck_ident_eq(const char *a, const char *b);

#endif
