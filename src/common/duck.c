/* duck.c - see duck.h. The order of the hardening steps matters and was
 * measured (shared/reference/duckdb-notes.md): allowed_directories cannot be
 * given at open, and everything must precede lock_configuration. */
#include "common/duck.h"

#include <stdio.h>
#include <string.h>

int tarn_sql_ident(tarn_buf *out, const char *name)
{
    int rc = tarn_buf_append_char(out, '"');
    for (const char *c = name; *c && !rc; c++) rc = *c == '"' ? tarn_buf_append(out, "\"\"", 2) : tarn_buf_append_char(out, *c);
    return rc ? rc : tarn_buf_append_char(out, '"');
}

int tarn_sql_string(tarn_buf *out, const char *text)
{
    int rc = tarn_buf_append_char(out, '\'');
    for (const char *c = text; *c && !rc; c++) rc = *c == '\'' ? tarn_buf_append(out, "''", 2) : tarn_buf_append_char(out, *c);
    return rc ? rc : tarn_buf_append_char(out, '\'');
}

int tarn_duck_exec(duckdb_connection conn, const char *sql, int fail_code, tarn_errbuf *eb)
{
    duckdb_result res;
    int rc = TARN_OK;
    if (duckdb_query(conn, sql, &res) != DuckDBSuccess) {
        const char *m = duckdb_result_error(&res);
        rc = tarn_errbuf_set(eb, fail_code, "%s", m ? m : "DuckDB error");
    }
    duckdb_destroy_result(&res);
    return rc;
}

int tarn_duck_open(const tarn_duck_opts *opts, duckdb_database *db, duckdb_connection *conn, tarn_errbuf *eb)
{
    duckdb_config cfg = NULL;
    char *err = NULL;
    tarn_buf sql;
    int rc = TARN_OK;
    *db = NULL;
    *conn = NULL;
    tarn_buf_init(&sql, 1 << 16);
    if (duckdb_create_config(&cfg) != DuckDBSuccess) {
        rc = tarn_errbuf_set(eb, TARN_EINTERNAL, "duckdb: cannot create a config");
        goto fail;
    }
    /* Nothing may be downloaded or loaded behind our back. */
    duckdb_set_config(cfg, "autoinstall_known_extensions", "false");
    duckdb_set_config(cfg, "autoload_known_extensions", "false");
    duckdb_set_config(cfg, "allow_community_extensions", "false");
    if (!opts->preserve_insertion_order) duckdb_set_config(cfg, "preserve_insertion_order", "false");
    /* A large sort or join spills here, inside the data directory, rather
     * than into wherever the server was started. */
    if (opts->temp_dir && duckdb_set_config(cfg, "temp_directory", opts->temp_dir) != DuckDBSuccess) {
        rc = tarn_errbuf_set(eb, TARN_EINTERNAL, "duckdb: cannot set temp_directory");
        goto fail;
    }
    if (opts->max_spill) {
        char spill[32];
        snprintf(spill, sizeof spill, "%zuB", opts->max_spill);
        if (duckdb_set_config(cfg, "max_temp_directory_size", spill) != DuckDBSuccess) {
            rc = tarn_errbuf_set(eb, TARN_EINTERNAL, "duckdb: cannot set max_temp_directory_size");
            goto fail;
        }
    }
    if (duckdb_open_ext(NULL, db, cfg, &err) != DuckDBSuccess) {
        rc = tarn_errbuf_set(eb, TARN_EINTERNAL, "duckdb open: %s", err ? err : "failed");
        duckdb_free(err);
        *db = NULL;
        goto fail;
    }
    if (duckdb_connect(*db, conn) != DuckDBSuccess) {
        rc = tarn_errbuf_set(eb, TARN_EINTERNAL, "duckdb connect failed");
        *conn = NULL;
        goto fail;
    }
    rc = tarn_buf_append_str(&sql, "SET allowed_directories=[");
    for (size_t i = 0; i < opts->nallowed && !rc; i++) {
        if (i) rc = tarn_buf_append_char(&sql, ',');
        if (!rc) rc = tarn_sql_string(&sql, opts->allowed_dirs[i]);
    }
    if (!rc) rc = tarn_buf_append_char(&sql, ']');
    if (!rc) rc = tarn_duck_exec(*conn, sql.data, TARN_EINTERNAL, eb);
    if (!rc) rc = tarn_duck_exec(*conn, "SET enable_external_access=false", TARN_EINTERNAL, eb);
    /* Both are session settings: GLOBAL, or only this first connection
     * would have them. Timestamps WITH TIME ZONE render and parse in UTC
     * whatever the host's zone. Lake files are immutable once published:
     * every connection shares their cached footers (0.2 to 0.3 ms of each
     * small query's bind otherwise). */
    if (!rc) rc = tarn_duck_exec(*conn, "SET GLOBAL TimeZone='UTC'", TARN_EINTERNAL, eb);
    if (!rc) rc = tarn_duck_exec(*conn, "SET GLOBAL parquet_metadata_cache=true", TARN_EINTERNAL, eb);
    if (!rc && opts->threads > 0) {
        tarn_buf_reset(&sql);
        rc = tarn_buf_printf(&sql, "SET threads=%d", opts->threads);
        if (!rc) rc = tarn_duck_exec(*conn, sql.data, TARN_EINTERNAL, eb);
    }
    if (!rc && opts->memory_limit && opts->memory_limit[0]) {
        tarn_buf_reset(&sql);
        rc = tarn_buf_append_str(&sql, "SET memory_limit=");
        if (!rc) rc = tarn_sql_string(&sql, opts->memory_limit);
        if (!rc) rc = tarn_duck_exec(*conn, sql.data, TARN_EINVAL, eb);
    }
    if (!rc) rc = tarn_duck_exec(*conn, "SET lock_configuration=true", TARN_EINTERNAL, eb);
    if (rc) goto fail;
    duckdb_destroy_config(&cfg);
    tarn_buf_free(&sql);
    return TARN_OK;
fail:
    if (cfg) duckdb_destroy_config(&cfg);
    tarn_buf_free(&sql);
    if (*conn) duckdb_disconnect(conn);
    if (*db) duckdb_close(db);
    *db = NULL;
    *conn = NULL;
    return rc;
}
