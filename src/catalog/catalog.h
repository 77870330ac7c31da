/* catalog.h - the catalog (Glue Data Catalog's job), in SQLite.
 *
 * The catalog is the single source of truth for what is visible: databases,
 * tables, their columns by schema version, partitions, and the files of each
 * zone. A file exists for readers only once tarn_catalog_publish (or
 * _publish_raw) has committed it, in the same transaction that advances the
 * table's checkpoint of that zone, so a crash leaves either both or neither.
 *
 * Paths of files are relative to the lake directory (DATA/lake), e.g.
 * "processed/iot/readings/ingestion_date=2025-11-25/1-42.parquet".
 *
 * Thread safety: one tarn_catalog may be used from any thread; calls are
 * serialized inside. Strings returned in structs are malloc'd and owned by the
 * caller, freed with the matching _free function.
 */
#ifndef TARN_CATALOG_H
#define TARN_CATALOG_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

typedef struct tarn_catalog tarn_catalog;

typedef struct tarn_column {
    char *name;
    char *type; /* DuckDB type text, e.g. "BIGINT", "STRUCT(x DOUBLE, y VARCHAR)", "VARCHAR[]" */
} tarn_column;

typedef struct tarn_table_info {
    int64_t id;
    char *db;
    char *name;
    int64_t delivered_seq;  /* every record with seq <= this is published in the processed zone */
    int64_t raw_seq;        /* ... and in the raw zone (raw_seq <= delivered_seq) */
    int64_t schema_version; /* 0 until the first publish */
    tarn_column *columns;   /* the current schema, in order */
    size_t ncolumns;
    int64_t created_ms;
    int64_t updated_ms;
} tarn_table_info;

typedef struct tarn_file {
    char *path;      /* relative to the lake directory */
    char *zone;      /* "raw" or "processed" */
    char *partition; /* "ingestion_date=2025-11-25" ("k=v/k2=v2" for more keys) */
    int64_t first_seq, last_seq;
    int64_t rows;
    int64_t bytes;
    int64_t schema_version;
    int64_t created_ms;
} tarn_file;

/* Opens or creates the catalog database (WAL mode) and its schema. */
int tarn_catalog_open(const char *path, tarn_catalog **out, tarn_errbuf *eb);
void tarn_catalog_close(tarn_catalog *c);

/* Creates the database and table if missing (names already validated by the
 * caller with tarn_name_valid) and fills *out. */
int tarn_catalog_ensure_table(tarn_catalog *c, const char *db, const char *table, tarn_table_info *out,
                              tarn_errbuf *eb);
/* Undoes tarn_catalog_ensure_table for a table that was just created and
 * never held anything (no schema, no files, nothing delivered): deletes it,
 * and its database if no table is left in it. A table that holds anything
 * is kept. For a first write that fails after the catalog entry was made. */
int tarn_catalog_drop_new_table(tarn_catalog *c, int64_t table_id, const char *db, tarn_errbuf *eb);
/* TARN_ENOTFOUND if the table does not exist. */
int tarn_catalog_get_table(tarn_catalog *c, const char *db, const char *table, tarn_table_info *out,
                           tarn_errbuf *eb);
/* Every table, ordered by database then name. *out is an array of n infos;
 * free with tarn_table_infos_free. */
int tarn_catalog_list_tables(tarn_catalog *c, tarn_table_info **out, size_t *n, tarn_errbuf *eb);
void tarn_table_info_free(tarn_table_info *t);
void tarn_table_infos_free(tarn_table_info *t, size_t n);

/* In one transaction: if columns differ from the current schema, records
 * them as a new schema version (ncolumns == 0 keeps the current one); adds
 * the files (and their partitions) with that schema version; sets the
 * table's delivered_seq to delivered_seq. delivered_seq must be greater than
 * the current one (TARN_ECONFLICT otherwise, nothing changed), which makes a
 * replayed publish harmless. A file whose path is already live is replaced
 * (same name = same records). */
int tarn_catalog_publish(tarn_catalog *c, int64_t table_id, const tarn_column *columns, size_t ncolumns,
                         const tarn_file *files, size_t nfiles, int64_t delivered_seq, tarn_errbuf *eb);
/* The same for the raw zone, which follows the processed one: adds the files
 * (zone "raw") and sets raw_seq, which must be past the current raw_seq and
 * not past delivered_seq (TARN_ECONFLICT otherwise, nothing changed); a
 * file of another zone is TARN_EINVAL. */
int tarn_catalog_publish_raw(tarn_catalog *c, int64_t table_id, const tarn_file *files, size_t nfiles, int64_t raw_seq,
                             tarn_errbuf *eb);

/* The live files of a table in a zone (NULL = every zone), ordered by path. */
int tarn_catalog_live_files(tarn_catalog *c, int64_t table_id, const char *zone, tarn_file **out, size_t *n,
                            tarn_errbuf *eb);
void tarn_files_free(tarn_file *f, size_t n);

/* Compaction: in one transaction, retires the live files old_paths (stamped
 * with the current time) and adds new_file as live. TARN_ECONFLICT, nothing
 * changed, if any of old_paths is not live. */
int tarn_catalog_replace_files(tarn_catalog *c, int64_t table_id, const char *const *old_paths, size_t nold,
                               const tarn_file *new_file, tarn_errbuf *eb);
/* Retired files whose retirement is older than before_ms (to delete from
 * disk once the grace period has passed), then forget them. */
int tarn_catalog_retired_before(tarn_catalog *c, int64_t before_ms, tarn_file **out, size_t *n, tarn_errbuf *eb);
int tarn_catalog_forget_file(tarn_catalog *c, const char *path, tarn_errbuf *eb);

/* JSON for the HTTP API, appended to out:
 *   databases: {"databases":[{"name","tables","created"}]}
 *   tables:    {"tables":[{"database","name","columns","files","rows","bytes","delivered_seq","raw_seq"}]}
 *              (db == NULL lists every database)
 *   table:     {"database","name","schema_version","delivered_seq","raw_seq","files","rows","bytes",
 *               "columns":[{"name","type"}],"partitions":[{"name","values":{k:v},"files","rows","bytes"}],
 *               "schema_versions":[{"version","created","columns":[...]}], "created", "updated"}
 * Times are ISO-8601 strings. TARN_ENOTFOUND for an unknown db or table. */
int tarn_catalog_databases_json(tarn_catalog *c, tarn_buf *out, tarn_errbuf *eb);
int tarn_catalog_tables_json(tarn_catalog *c, const char *db, tarn_buf *out, tarn_errbuf *eb);
int tarn_catalog_table_json(tarn_catalog *c, const char *db, const char *table, tarn_buf *out, tarn_errbuf *eb);

#endif
