/* writer.c - see writer.h. */
#include "writer.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/duck.h"
#include "common/log.h"
#include "delivery/scan.h"
#include "delivery/schema.h"

/* Staged as epoch microseconds (stage.h), a TIMESTAMP in the lake. */
#define WRITER_INGESTED_AT "_ingested_at"

struct tarn_writer {
    duckdb_database db;
    duckdb_connection conn;
    tarn_scan *scan; /* tarn_log_scan() on conn */
};

/* Runs SQL; on failure copies DuckDB's message into eb. If res is given the
 * caller owns the result (duckdb_destroy_result), even on failure. */
static int writer_exec(tarn_writer *w, const char *sql, duckdb_result *res, tarn_errbuf *eb)
{
    if (!res) return tarn_duck_exec(w->conn, sql, TARN_EIO, eb);
    if (duckdb_query(w->conn, sql, res) != DuckDBSuccess) {
        const char *m = duckdb_result_error(res);
        return tarn_errbuf_set(eb, TARN_EIO, "duckdb: %s", m ? m : "unknown error");
    }
    return TARN_OK;
}

int tarn_writer_open(const char *staging_dir, const char *lake_dir, int threads, const char *memory_limit,
                     tarn_writer **out, tarn_errbuf *eb)
{
    tarn_writer *w = calloc(1, sizeof *w);
    if (!w) return TARN_ENOMEM;
    const char *dirs[] = {staging_dir, lake_dir};
    /* DuckDB spills inside staging, which every start empties. */
    char spill[PATH_MAX];
    if (snprintf(spill, sizeof spill, "%s/duckdb-spill", staging_dir) >= (int)sizeof spill) {
        free(w);
        return tarn_errbuf_set(eb, TARN_EINVAL, "staging directory path too long");
    }
    /* Insertion order is irrelevant for a batch (rows carry _seq); without it
     * DuckDB writes faster and with about half the peak memory. */
    tarn_duck_opts o = {dirs, 2, threads, memory_limit, 0, spill, 0};
    int rc = tarn_duck_open(&o, &w->db, &w->conn, eb);
    if (rc) {
        free(w);
        return rc;
    }
    /* The scan runs on as many threads as DuckDB has (its default: one per
     * core). */
    if (threads <= 0) {
        duckdb_result res;
        if (writer_exec(w, "SELECT CAST(current_setting('threads') AS INTEGER)", &res, eb) == TARN_OK)
            threads = duckdb_value_int32(&res, 0, 0);
        duckdb_destroy_result(&res);
    }
    if ((rc = tarn_scan_register(w->conn, threads, &w->scan, eb))) {
        tarn_writer_close(w);
        return rc;
    }
    *out = w;
    return TARN_OK;
}

void tarn_writer_close(tarn_writer *w)
{
    if (!w) return;
    if (w->conn) duckdb_disconnect(&w->conn);
    if (w->db) duckdb_close(&w->db);
    tarn_scan_free(w->scan);
    free(w);
}

/* read_json(<files>, ...) with the options every call shares: one object per
 * line; STRUCTs rather than MAPs for sparse objects. */
static int writer_read_json(tarn_buf *sql, const char *const *files, size_t n)
{
    int rc = tarn_buf_append_str(sql, "read_json([");
    for (size_t i = 0; i < n && !rc; i++) {
        if (i) rc = tarn_buf_append_char(sql, ',');
        if (!rc) rc = tarn_sql_string(sql, files[i]);
    }
    if (!rc)
        rc = tarn_buf_append_str(sql, "], format='newline_delimited', field_appearance_threshold=0, "
                                      "maximum_object_size=16777216");
    return rc;
}

/* ---- JSON leaves of an inferred type -------------------------------------------
 *
 * DuckDB's reader infers JSON both for a field whose values have mixed
 * kinds (a number here, an object there) and for a field seen only as null
 * (and for the elements of lists seen only empty). The first widens the
 * column to VARCHAR; the second says nothing about the type and must not
 * (schema.h: NULL u T = T), or one batch in which an optional field happens
 * to be null would turn a BIGINT column into VARCHAR for good. So each JSON
 * leaf is counted: one query over the sample sums, per leaf, the non-null
 * values at its place; a leaf with none stays TARN_T_NULL, the others
 * become VARCHAR. */

#define WRITER_MAX_LEAVES 256 /* JSON leaves resolved per batch; the rest are VARCHAR, as before */

typedef struct json_leaf {
    tarn_type *node;
    const char *column;
    const char *names[64]; /* from the column down: the field taken at each STRUCT step, NULL at a LIST */
    int depth;
} json_leaf;

static void writer_find_leaves(tarn_type *t, json_leaf *cur, json_leaf *out, size_t *n)
{
    if (t->kind == TARN_T_NULL) {
        if (*n < WRITER_MAX_LEAVES) {
            out[*n] = *cur;
            out[*n].node = t;
            (*n)++;
        } else {
            t->kind = TARN_T_VARCHAR;
        }
        return;
    }
    if (cur->depth >= 64) {
        tarn_type_null_to_varchar(t);
        return;
    }
    for (size_t i = 0; i < t->nchildren; i++) {
        cur->names[cur->depth] = t->kind == TARN_T_STRUCT ? t->names[i] : NULL;
        cur->depth++;
        writer_find_leaves(t->children[i], cur, out, n);
        cur->depth--;
    }
}

/* The number of non-null values of leaf in one row, from step k down,
 * where expr reads the value at step k. */
static int writer_count_expr(tarn_buf *sql, const json_leaf *leaf, int k, const char *expr)
{
    if (k == leaf->depth) return tarn_buf_printf(sql, "CASE WHEN (%s) IS NULL THEN 0 ELSE 1 END", expr);
    tarn_buf inner;
    tarn_buf_init(&inner, 1 << 20);
    int rc;
    if (leaf->names[k]) {
        rc = tarn_buf_printf(&inner, "struct_extract(%s, ", expr);
        if (!rc) rc = tarn_sql_string(&inner, leaf->names[k]);
        if (!rc) rc = tarn_buf_append_char(&inner, ')');
        if (!rc) rc = writer_count_expr(sql, leaf, k + 1, inner.data);
    } else {
        char var[32];
        snprintf(var, sizeof var, "tarn_e%d", k);
        rc = tarn_buf_printf(sql, "COALESCE(list_sum(list_transform(%s, lambda %s: ", expr, var);
        if (!rc) rc = writer_count_expr(sql, leaf, k + 1, var);
        if (!rc) rc = tarn_buf_append_str(sql, ")), 0)");
    }
    tarn_buf_free(&inner);
    return rc;
}

/* Resolves the JSON leaves of the inferred columns c[0..n) (see above) and
 * rewrites their type text. On any failure every leaf is VARCHAR, as
 * DuckDB's JSON always was before. */
static void writer_resolve_json(tarn_writer *w, const char *read_json, tarn_column *c, size_t n)
{
    tarn_type **types = calloc(n ? n : 1, sizeof *types);
    json_leaf *leaves = calloc(WRITER_MAX_LEAVES, sizeof *leaves);
    size_t nleaves = 0;
    tarn_buf sql, id;
    tarn_buf_init(&sql, 64 << 20);
    tarn_buf_init(&id, 4096);
    int rc = types && leaves ? TARN_OK : TARN_ENOMEM;
    for (size_t i = 0; i < n && !rc; i++) {
        if (!strstr(c[i].type, "JSON")) continue;
        if (tarn_type_parse_inferred(c[i].type, &types[i], NULL) != TARN_OK) continue; /* left as it was */
        json_leaf cur = {.column = c[i].name};
        writer_find_leaves(types[i], &cur, leaves, &nleaves);
    }
    if (!rc && nleaves) {
        rc = tarn_buf_append_str(&sql, "SELECT ");
        for (size_t k = 0; k < nleaves && !rc; k++) {
            tarn_buf_reset(&id);
            rc = tarn_sql_ident(&id, leaves[k].column);
            if (!rc) rc = tarn_buf_append_str(&sql, k ? ", CAST(sum(" : "CAST(sum(");
            if (!rc) rc = writer_count_expr(&sql, &leaves[k], 0, id.data);
            if (!rc) rc = tarn_buf_append_str(&sql, ") AS BIGINT)");
        }
        if (!rc) rc = tarn_buf_printf(&sql, " FROM %s", read_json);
        duckdb_result res;
        if (!rc && duckdb_query(w->conn, sql.data, &res) == DuckDBSuccess) {
            for (size_t k = 0; k < nleaves; k++)
                leaves[k].node->kind = duckdb_value_int64(&res, k, 0) > 0 ? TARN_T_VARCHAR : TARN_T_NULL;
        } else {
            if (!rc) tarn_log_warn("delivery", "telling null-only fields from mixed ones: %s", duckdb_result_error(&res));
            for (size_t k = 0; k < nleaves; k++) leaves[k].node->kind = TARN_T_VARCHAR;
        }
        if (!rc) duckdb_destroy_result(&res);
    }
    for (size_t i = 0; i < n; i++) {
        if (!types || !types[i]) continue;
        tarn_buf out;
        tarn_buf_init(&out, 1 << 20);
        if (tarn_type_format(types[i], &out) == TARN_OK) {
            char *text = tarn_buf_steal(&out);
            if (text) {
                free(c[i].type);
                c[i].type = text;
            }
        }
        tarn_buf_free(&out);
        tarn_type_free(types[i]);
    }
    free(types);
    free(leaves);
    tarn_buf_free(&sql);
    tarn_buf_free(&id);
}

int tarn_writer_infer(tarn_writer *w, const char *const *files, size_t nfiles, int full_sample, tarn_column **cols,
                      size_t *ncols, tarn_errbuf *eb)
{
    tarn_buf sql, src;
    tarn_buf_init(&sql, 1 << 20);
    tarn_buf_init(&src, 1 << 20);
    duckdb_result res;
    int rc;
    if ((rc = writer_read_json(&src, files, nfiles))) goto done;
    /* Unless told, DuckDB infers from the first 32 files only, and a batch
     * is staged as a file per date and per staging thread. */
    if ((rc = tarn_buf_printf(&src, ", maximum_sample_files=%zu%s)", nfiles ? nfiles : 1,
                              full_sample ? ", sample_size=-1" : "")))
        goto done;
    if ((rc = tarn_buf_printf(&sql, "DESCRIBE SELECT * FROM %s", src.data))) goto done;
    rc = writer_exec(w, sql.data, &res, eb);
    if (rc == TARN_OK) {
        idx_t n = duckdb_row_count(&res);
        tarn_column *c = calloc(n ? n : 1, sizeof *c);
        if (!c) rc = TARN_ENOMEM;
        for (idx_t i = 0; c && i < n; i++) {
            c[i].name = duckdb_value_varchar(&res, 0, i);
            c[i].type = duckdb_value_varchar(&res, 1, i);
            if (!c[i].name || !c[i].type) {
                tarn_columns_free(c, i + 1);
                c = NULL;
                rc = TARN_ENOMEM;
            }
        }
        if (c) {
            /* duckdb_value_varchar memory is duckdb_malloc'd: copy to ours. */
            int copied = 1;
            for (idx_t i = 0; i < n; i++) {
                const char *type = strcmp(c[i].name, WRITER_INGESTED_AT) == 0 ? "TIMESTAMP" : c[i].type;
                char *nm = strdup(c[i].name), *ty = strdup(type);
                duckdb_free(c[i].name);
                duckdb_free(c[i].type);
                c[i].name = nm;
                c[i].type = ty;
                copied = copied && nm && ty;
            }
            if (copied) {
                writer_resolve_json(w, src.data, c, n);
                *cols = c;
                *ncols = n;
            } else {
                tarn_columns_free(c, n);
                rc = TARN_ENOMEM;
            }
        }
    }
    duckdb_destroy_result(&res);
done:
    tarn_buf_free(&sql);
    tarn_buf_free(&src);
    return rc;
}

/* The read_json columns of staged files: cols, with _ingested_at as it is
 * staged. */
static int writer_columns_struct(tarn_buf *sql, const tarn_column *cols, size_t ncols)
{
    int rc = tarn_buf_append_str(sql, "columns={");
    for (size_t i = 0; i < ncols && !rc; i++) {
        if (i) rc = tarn_buf_append_char(sql, ',');
        if (!rc) rc = tarn_sql_string(sql, cols[i].name);
        if (!rc) rc = tarn_buf_append_char(sql, ':');
        if (!rc) rc = tarn_sql_string(sql, strcmp(cols[i].name, WRITER_INGESTED_AT) == 0 ? "BIGINT" : cols[i].type);
    }
    return rc ? rc : tarn_buf_append_char(sql, '}');
}

static int writer_copy_rows(tarn_writer *w, const char *sql, int64_t *rows, tarn_errbuf *eb)
{
    duckdb_result res;
    int rc = writer_exec(w, sql, &res, eb);
    if (rc == TARN_OK && rows) *rows = (int64_t)duckdb_rows_changed(&res);
    duckdb_destroy_result(&res);
    return rc;
}

int tarn_writer_ndjson_to_parquet(tarn_writer *w, const char *const *files, size_t nfiles, const tarn_column *cols,
                                  size_t ncols, const char *parquet, int64_t *rows, tarn_errbuf *eb)
{
    int ingested = 0;
    for (size_t i = 0; i < ncols; i++) ingested |= strcmp(cols[i].name, WRITER_INGESTED_AT) == 0;
    tarn_buf sql;
    tarn_buf_init(&sql, 16 << 20);
    /* make_timestamp: epoch microseconds to TIMESTAMP, exactly (negative
     * ones too), in the column's place. */
    int rc = tarn_buf_append_str(&sql, ingested ? "COPY (SELECT * REPLACE (make_timestamp(\"_ingested_at\") AS "
                                                  "\"_ingested_at\") FROM "
                                                : "COPY (SELECT * FROM ");
    if (!rc) rc = writer_read_json(&sql, files, nfiles);
    if (!rc) rc = tarn_buf_append_str(&sql, ", ");
    if (!rc) rc = writer_columns_struct(&sql, cols, ncols);
    if (!rc) rc = tarn_buf_append_str(&sql, ")) TO ");
    if (!rc) rc = tarn_sql_string(&sql, parquet);
    if (!rc) rc = tarn_buf_append_str(&sql, " (FORMAT parquet, COMPRESSION snappy)");
    if (!rc) rc = writer_copy_rows(w, sql.data, rows, eb);
    tarn_buf_free(&sql);
    return rc;
}

int tarn_writer_log_to_parquet(tarn_writer *w, tarn_stream *s, int64_t from_seq, int64_t upto_seq, const char *date,
                               const tarn_column *cols, size_t ncols, tarn_writer_quick *quick, const char *parquet,
                               int64_t *rows, tarn_errbuf *eb)
{
    tarn_buf sql;
    tarn_buf_init(&sql, 16 << 20);
    int rc = tarn_buf_append_str(&sql, "COPY (SELECT ");
    if (!rc) rc = tarn_scan_prepare(w->scan, s, from_seq, upto_seq, date, cols, ncols, &sql, eb);
    if (!rc && quick && (rc = tarn_scan_quick(w->scan, s, quick->learn_upto, quick->max_bytes, eb)))
        tarn_scan_finish(w->scan, rc, eb);
    if (rc) {
        tarn_buf_free(&sql);
        return rc;
    }
    rc = tarn_buf_append_str(&sql, " FROM tarn_log_scan()) TO ");
    if (!rc) rc = tarn_sql_string(&sql, parquet);
    if (!rc) rc = tarn_buf_append_str(&sql, " (FORMAT parquet, COMPRESSION snappy)");
    if (!rc) rc = writer_copy_rows(w, sql.data, rows, eb);
    int64_t taken = 0;
    if (quick) tarn_scan_taken(w->scan, &quick->last_seq, &quick->bytes, &taken);
    rc = tarn_scan_finish(w->scan, rc, eb);
    if (rc == TARN_OK && quick && rows && *rows != taken)
        rc = tarn_errbuf_set(eb, TARN_EINTERNAL, "the quick scan took %lld records and wrote %lld rows",
                             (long long)taken, (long long)*rows);
    if (rc) unlink(parquet); /* whatever DuckDB left of it */
    tarn_buf_free(&sql);
    return rc;
}

int tarn_writer_merge_parquet(tarn_writer *w, const char *const *files, size_t nfiles, const char *parquet,
                              int64_t *rows, tarn_errbuf *eb)
{
    tarn_buf sql;
    tarn_buf_init(&sql, 16 << 20);
    int rc = tarn_buf_append_str(&sql, "COPY (SELECT * FROM read_parquet([");
    for (size_t i = 0; i < nfiles && !rc; i++) {
        if (i) rc = tarn_buf_append_char(&sql, ',');
        if (!rc) rc = tarn_sql_string(&sql, files[i]);
    }
    if (!rc) rc = tarn_buf_append_str(&sql, "], hive_partitioning=false) ORDER BY \"_seq\") TO ");
    if (!rc) rc = tarn_sql_string(&sql, parquet);
    if (!rc) rc = tarn_buf_append_str(&sql, " (FORMAT parquet, COMPRESSION snappy)");
    if (!rc) rc = writer_copy_rows(w, sql.data, rows, eb);
    tarn_buf_free(&sql);
    return rc;
}
