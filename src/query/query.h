/* query.h - SQL over the lake (Athena's job), with DuckDB.
 *
 * One in-memory DuckDB database holds a schema per catalog database and a
 * view per table over exactly the catalog's live processed files. User SQL
 * is untrusted: it must be a single SELECT (WITH ... SELECT included); table
 * functions, file paths and tables not in the catalog are refused before
 * DuckDB prepares anything (preparing already opens files). DuckDB runs with
 * external access off, allowed_directories = the lake, extension autoload and
 * autoinstall off, and its configuration locked.
 *
 * Thread safety: tarn_query_run and tarn_query_refresh_table may be called
 * concurrently from any thread; every query runs on its own connection.
 */
#ifndef TARN_QUERY_H
#define TARN_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "catalog/catalog.h"
#include "common/buf.h"
#include "common/err.h"

typedef struct tarn_query_engine tarn_query_engine;

typedef struct tarn_query_opts {
    const char *lake_dir;     /* absolute path of DATA/lake */
    int threads;              /* DuckDB threads; 0 = number of cores */
    const char *memory_limit; /* DuckDB memory_limit, e.g. "4GB"; NULL = DuckDB's default */
    int64_t timeout_ms;       /* per query; 0 = 60,000 */
    int64_t max_rows;         /* result cap; 0 = 100,000 (then "truncated": true) */
    size_t max_sql;           /* bytes of SQL text; 0 = 256 KiB */
    size_t max_result_bytes;  /* bytes of one encoded result; 0 = 256 MiB */
    const char *temp_dir;     /* DuckDB's spill directory (e.g. DATA/tmp/query); NULL = DuckDB's default */
    size_t max_spill;         /* bytes spilled there at most, all queries together; 0 = DuckDB's default */
} tarn_query_opts;

enum tarn_query_format {
    TARN_QUERY_JSON, /* {"columns":[{"name","type"}],"rows":[[...]],"row_count","truncated","bytes_scanned","elapsed_ms"} */
    TARN_QUERY_CSV,  /* as Athena writes it: header row, every value quoted, NULL an empty unquoted field */
};

/* Opens the hardened engine and creates a view for every catalog table. The
 * catalog must outlive the engine. */
int tarn_query_engine_open(const tarn_query_opts *opts, tarn_catalog *cat, tarn_query_engine **out,
                           tarn_errbuf *eb);
void tarn_query_engine_close(tarn_query_engine *e);

/* Rebuilds the view of one table from the catalog's live processed files
 * (after a publish or a compaction). A table with no files yet gets a view
 * with its catalog columns and no rows, or none if it has no columns. */
int tarn_query_refresh_table(tarn_query_engine *e, const char *db, const char *table, tarn_errbuf *eb);

/* Cancels every query running now and refuses later ones with
 * TARN_ECLOSED, for a server stop: a query need not run to its end (or its
 * timeout) before the server may exit. Cannot be undone. Any thread. */
void tarn_query_engine_cancel(tarn_query_engine *e);

/* The number of queries running now (registered with the watchdog). */
int tarn_query_engine_running(tarn_query_engine *e);

/* What a successful run measured (also in the JSON reply). */
typedef struct tarn_query_stats {
    int64_t row_count;
    int truncated;         /* the row cap cut the result */
    int64_t bytes_scanned; /* upper bound: the Parquet bytes of the tables referenced */
    int64_t elapsed_ms;
    int verdict_reused;    /* the SQL check's verdict on this same text was reused */
} tarn_query_stats;

/* Runs one SELECT. default_db (may be NULL) resolves unqualified table
 * names. Appends the encoded result to out. Errors: TARN_EDENIED (not a
 * single SELECT, a table function, a file path), TARN_ENOTFOUND (unknown
 * table), TARN_ESQL (DuckDB's parse / bind / run error, message in eb),
 * TARN_ETIMEOUT, TARN_ETOOBIG (SQL text or result too large), TARN_ECLOSED
 * (cancelled by tarn_query_engine_cancel). stats may be
 * NULL; it is filled on success. */
int tarn_query_run(tarn_query_engine *e, const char *sql, const char *default_db, enum tarn_query_format fmt,
                   tarn_buf *out, tarn_query_stats *stats, tarn_errbuf *eb);

#endif
