/* duck.h - what every user of DuckDB in Tarn shares: SQL quoting, running a
 * statement, and opening an in-memory database in the hardened state that
 * DESIGN.md requires (no extension loading, files only in the allowed
 * directories, configuration locked). */
#ifndef TARN_DUCK_H
#define TARN_DUCK_H

#include <stddef.h>

/* duckdb.h declares a few functions as `f()`; keep -Wstrict-prototypes
 * meaningful for our own code. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <duckdb.h>
#pragma GCC diagnostic pop

#include "common/buf.h"
#include "common/err.h"

/* Appends "name" as a double-quoted identifier / 'text' as a string literal,
 * doubling embedded quotes. */
int tarn_sql_ident(tarn_buf *out, const char *name);
int tarn_sql_string(tarn_buf *out, const char *text);

/* Runs sql on conn and discards the result. On failure returns fail_code
 * with DuckDB's message in eb. */
int tarn_duck_exec(duckdb_connection conn, const char *sql, int fail_code, tarn_errbuf *eb);

typedef struct tarn_duck_opts {
    const char *const *allowed_dirs; /* absolute, resolved paths */
    size_t nallowed;
    int threads;                      /* 0 = DuckDB's default (all cores) */
    const char *memory_limit;         /* NULL or "" = DuckDB's default */
    int preserve_insertion_order;     /* 0 lets writers go faster with less memory */
    const char *temp_dir;             /* where DuckDB spills what exceeds its memory (created when
                                         needed); NULL = DuckDB's default, .tmp in the working directory */
    size_t max_spill;                 /* bytes it may spill there; 0 = DuckDB's default (90% of the
                                         free space, which ingest needs too) */
} tarn_duck_opts;

/* Opens an in-memory database and one connection, hardened: extension
 * autoinstall / autoload / community extensions off, the spill directory
 * set, allowed_directories set (DuckDB adds the spill directory), external
 * access off, time zone UTC, Parquet footers cached, threads
 * and memory limit applied, then the configuration locked. On success the
 * caller owns *db and *conn (duckdb_disconnect, duckdb_close). */
int tarn_duck_open(const tarn_duck_opts *opts, duckdb_database *db, duckdb_connection *conn, tarn_errbuf *eb);

#endif
