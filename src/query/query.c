/* query.c - see query.h.
 *
 * Layout of the engine:
 *
 *   one in-memory DuckDB database, hardened at open (below), holding
 *     schema "<db>" per catalog database and view "<db>"."<table>" per table
 *   one internal connection (ddl) that creates the views, under ddl_lock
 *   a registry of the views (names, bytes of their files, the column types
 *     each schema version's files were written with), under reg_lock; the
 *     SQL checker resolves table names against it
 *   one watchdog thread that interrupts queries past their deadline, or
 *     every query once the server stops (tarn_query_engine_cancel)
 *   a pool of query connections, each used by one query at a time and
 *     holding the checker's prepared json_serialize_sql; connections carry
 *     no session state from one query to the next (query_conn_take)
 *
 * A view reads exactly the catalog's live processed files, never a glob:
 *
 *   SELECT "c1" AS "c1", CAST("c2" AS T2) AS "c2", ..., "ingestion_date"
 *     FROM read_parquet([<files of schema version 1>], hive_partitioning=true)
 *   UNION ALL
 *   SELECT ... FROM read_parquet([<files of schema version 2>], ...)
 *
 * Each branch holds the files of one schema version (and one set of
 * partition keys). One read_parquet over every file would be simpler, but
 * DuckDB's union_by_name cannot unify all of Tarn's widenings: a column that
 * was a STRUCT or a LIST in old files and VARCHAR in new ones fails at read
 * time ("failed to cast column from VARCHAR to STRUCT"). Per version, the
 * engine knows the files' own types (DESCRIBE of one file, cached) and
 * writes the right conversion: CAST for widenings DuckDB can cast (BIGINT to
 * DOUBLE, DATE to TIMESTAMP, struct fields added), to_json() for nested
 * values that became VARCHAR (the delivery's rule: nested values widen to
 * their JSON text), NULL for columns older files lack. The catalog's current
 * schema is therefore authoritative for every file. A column whose files
 * already have the catalog's type (compared as DuckDB prints both types) is
 * read bare: DuckDB pushes struct field projections and filters through a
 * column reference but not through a CAST.
 *
 * The files of one branch have the same columns with the same types: the
 * delivery writes every column of the schema version it publishes under,
 * and compaction merges files of one version. So a branch needs no
 * union_by_name, and must not have it: union_by_name reads the footer of
 * every file at each bind, so a filter on a partition column could not keep
 * DuckDB from opening the other partitions' files (measured with DuckDB
 * 1.5.6: a corrupt file in another partition fails such a query with
 * union_by_name and is never opened without it). Without it DuckDB prunes
 * the file list by the hive partition values in the paths before it opens
 * anything, and matches each file's columns by name; a file that lacked a
 * column would fail the query ("schema mismatch"), not read as NULLs.
 *
 * Running a query (tarn_query_run):
 *
 *   check      the whole text, before DuckDB prepares or runs anything
 *              (sqlcheck.h); the same json_serialize_sql call also parses
 *              the capped text, <text without a trailing ';'>"\nLIMIT
 *              <max_rows + 1>", and says how the result is bounded
 *   one bind   no top-level LIMIT: duckdb_query on the capped text, used
 *              only if its parse tree is the checked one plus that LIMIT;
 *              a constant LIMIT <= max_rows: duckdb_query on the text as is.
 *              max_rows + 1 rows back means "truncated". The LIMIT is
 *              appended, not wrapped around the statement: a subquery would
 *              rename duplicate column names (a, a_1)
 *   two binds  anything else (a LIMIT above the cap or an expression, an
 *              OFFSET alone, a capped text that parses differently):
 *              duckdb_prepare, then duckdb_execute_prepared_streaming, read
 *              until max_rows. A statement reading Parquet binds again when
 *              the prepared statement executes (MultiFileBindData does not
 *              support the statement cache), and binding a view over
 *              read_parquet is most of a small query's time
 *
 * Cost, measured (DuckDB 1.5.6, 2 shared cores, COUNT(*) over one 62 MB
 * file of 1M rows, mean of 1,500 runs): before, check 0.23 to 0.29 ms,
 * prepare 0.82 to 0.90 ms, streamed execution 0.93 to 0.99 ms, 2.0 to 2.2
 * ms in all; now, check (both parses) 0.23 to 0.31 ms, duckdb_query 0.89
 * to 1.10 ms, 1.15 to 1.4 ms in all. The connection pool, USE, the registry
 * lock, the watchdog and encoding one row take under 0.01 ms together. The
 * view's text costs nothing measurable at bind time: a column list with
 * aliases and hive_partitioning=true bind as fast as read_parquet's `*`.
 * The price of one bind is a materialized result: up to max_rows + 1 rows
 * are held before encoding starts (and before max_result_bytes can stop
 * anything), and DuckDB runs a large LIMIT over a parallel scan slower than
 * it streams. SELECT * over that file (100,000 rows kept): 40 ms streamed,
 * 110 ms capped inside DuckDB, 385 ms against 480 ms over HTTP; rows of
 * 30 KB each (over max_result_bytes): 2.4 s and 2.3 GB peak streamed, 7.7 s
 * and 3.3 GB capped. current_query() shows the appended LIMIT.
 *
 * Query connections share the Parquet footers DuckDB caches
 * (parquet_metadata_cache, set GLOBAL in common/duck.c): without it each
 * bind re-read the footer, 0.2 to 0.3 ms of a small query.
 *
 * Results are encoded from DuckDB's vectors by result.c (result.h).
 *
 * bytes_scanned is the total size of the live Parquet files of the catalog
 * tables the statement references (each counted once): an upper bound that
 * ignores partition pruning and column projection. DuckDB 1.5.6's profiler
 * was measured and cannot give the real figure: its TOTAL_BYTES_READ counts
 * the database's own block reads (256 or 512 bytes for a 1.3 MB Parquet
 * scan), and enable_profiling is a per-connection setting that cannot be set
 * globally (neither with SET GLOBAL nor at open) nor after
 * lock_configuration. DuckDB's FileSystem log (enable_logging before the
 * lock, then duckdb_logs per connection_id) does record every byte read, but
 * its in-memory log grows until truncate_duckdb_logs(), which clears the
 * entries of queries still running: not used for now.
 */
#include "query.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/duck.h"
#include "common/log.h"
#include "common/util.h"
#include "delivery/schema.h"
#include "query/result.h"
#include "query/sqlcheck.h"

#define LOG "query"

#define QUERY_DEFAULT_TIMEOUT_MS 60000
#define QUERY_DEFAULT_MAX_ROWS 100000
#define QUERY_DEFAULT_MAX_SQL (256 * 1024)
#define QUERY_DEFAULT_MAX_RESULT ((size_t)256 << 20)
/* After a deadline the watchdog interrupts again at this interval: an
 * interrupt that lands before DuckDB starts executing (while the query is
 * being prepared) is cleared when execution begins (measured), so one
 * interrupt is not enough. */
#define QUERY_REINTERRUPT_MS 50
#define QUERY_MAX_VIEW_SQL ((size_t)256 << 20)
/* Idle connections kept for the next queries; more are opened on demand. */
#define QUERY_POOL_MAX 16
/* Checked texts remembered (see query_verdict_find), and the longest one
 * kept: 64 x 8 KiB at most. */
#define QUERY_VERDICTS 64
#define QUERY_VERDICT_MAX_SQL 8192

/* ---- registry of views -------------------------------------------------- */

/* The column names and DuckDB types that the files of one schema version
 * were written with, as DESCRIBE reports them. */
typedef struct query_version {
    int64_t version;
    size_t ncols;
    char **names;
    char **types;
} query_version;

typedef struct query_table {
    char *db;
    char *name;
    int has_view;   /* 0 if the table has no columns (or its view failed) */
    int64_t bytes;  /* live processed files */
    query_version *versions;
    size_t nversions;
} query_table;

/* A connection for user queries, kept in the engine's pool between them. */
typedef struct query_conn {
    duckdb_connection conn;
    duckdb_prepared_statement serializer; /* the checker's json_serialize_sql on conn */
    char *db;                             /* schema of its last USE; NULL: none (memory.main) */
    struct query_conn *next;
} query_conn;

/* The checker's verdict on one text (see query_verdict_find): kept for
 * the next identical query while no view has changed since. */
typedef struct query_verdict {
    char *sql;
    char *db;       /* default database, NULL for none */
    uint64_t gen;   /* reg_gen when the check ran */
    int how;        /* enum tarn_sqlcheck_bound */
    char *capped;   /* the capped text, NULL unless how is TARN_SQLCHECK_CAPPED */
    char **tables;  /* "db.table" of each table referenced */
    size_t ntables;
} query_verdict;

static void query_verdict_free(query_verdict *v);

/* A query's registration with the watchdog. */
typedef struct query_watch {
    duckdb_connection conn;
    int64_t deadline_ms;
    atomic_int fired;
    struct query_watch *prev, *next;
} query_watch;

struct tarn_query_engine {
    tarn_catalog *cat;
    char *lake_dir; /* absolute, no trailing slash */
    int64_t timeout_ms;
    int64_t max_rows;
    size_t max_sql;
    size_t max_result_bytes;

    duckdb_database db;
    duckdb_connection ddl;
    pthread_mutex_t ddl_lock;

    pthread_mutex_t reg_lock;
    query_table *tables;
    size_t ntables, cap_tables;
    char **dbs; /* schemas created */
    size_t ndbs, cap_dbs;
    atomic_ullong reg_gen; /* bumped whenever a view is built or dropped */

    /* Verdicts of recent checks, replaced round robin. */
    pthread_mutex_t verdict_lock;
    query_verdict verdicts[QUERY_VERDICTS];
    size_t verdict_next;

    /* DuckDB's keywords, sorted: a struct field named like one is quoted in
     * type text, as DuckDB prints it. */
    char **keywords;
    size_t nkeywords;

    /* Idle query connections (see query_conn_take). */
    pthread_mutex_t pool_lock;
    query_conn *pool;
    size_t npool;

    pthread_mutex_t wd_lock;
    pthread_cond_t wd_cond;
    query_watch *watches;
    int64_t wd_next; /* when the watchdog wakes next; INT64_MAX: only when signalled */
    atomic_int cancelled; /* tarn_query_engine_cancel: every watch is due */
    int wd_stop;
    int wd_started;
    pthread_t wd_thread;
};

/* ---- small helpers -------------------------------------------------------- */

/* Copies a VARCHAR cell of a flat vector into a malloc'd string. */
static char *query_vector_str(duckdb_vector v, idx_t row)
{
    duckdb_string_t *s = (duckdb_string_t *)duckdb_vector_get_data(v) + row;
    uint32_t n = duckdb_string_t_length(*s);
    char *p = malloc((size_t)n + 1);
    if (!p) return NULL;
    memcpy(p, duckdb_string_t_data(s), n);
    p[n] = '\0';
    return p;
}

/* ---- registry ------------------------------------------------------------ */

static void query_version_free(query_version *v)
{
    for (size_t i = 0; i < v->ncols; i++) {
        free(v->names[i]);
        free(v->types[i]);
    }
    free(v->names);
    free(v->types);
    memset(v, 0, sizeof *v);
}

static void query_table_free(query_table *t)
{
    free(t->db);
    free(t->name);
    for (size_t i = 0; i < t->nversions; i++) query_version_free(&t->versions[i]);
    free(t->versions);
    memset(t, 0, sizeof *t);
}

/* Caller holds reg_lock. */
static query_table *query_find_table(tarn_query_engine *e, const char *db, const char *name)
{
    for (size_t i = 0; i < e->ntables; i++)
        if (tarn_sqlcheck_ident_eq(e->tables[i].db, db) && tarn_sqlcheck_ident_eq(e->tables[i].name, name))
            return &e->tables[i];
    return NULL;
}

/* Caller holds reg_lock. */
static int query_has_db(tarn_query_engine *e, const char *db)
{
    for (size_t i = 0; i < e->ndbs; i++)
        if (tarn_sqlcheck_ident_eq(e->dbs[i], db)) return 1;
    return 0;
}

/* Caller holds reg_lock. Records that schema db exists. */
static int query_add_db(tarn_query_engine *e, const char *db)
{
    if (query_has_db(e, db)) return TARN_OK;
    if (e->ndbs == e->cap_dbs) {
        size_t cap = e->cap_dbs ? e->cap_dbs * 2 : 8;
        char **p = realloc(e->dbs, cap * sizeof *p);
        if (!p) return TARN_ENOMEM;
        e->dbs = p;
        e->cap_dbs = cap;
    }
    if (!(e->dbs[e->ndbs] = strdup(db))) return TARN_ENOMEM;
    e->ndbs++;
    return TARN_OK;
}

/* Caller holds reg_lock. Returns the entry for db.name, created if new. */
static query_table *query_table_entry(tarn_query_engine *e, const char *db, const char *name)
{
    query_table *t = query_find_table(e, db, name);
    if (t) return t;
    if (e->ntables == e->cap_tables) {
        size_t cap = e->cap_tables ? e->cap_tables * 2 : 16;
        query_table *p = realloc(e->tables, cap * sizeof *p);
        if (!p) return NULL;
        e->tables = p;
        e->cap_tables = cap;
    }
    t = &e->tables[e->ntables];
    memset(t, 0, sizeof *t);
    t->db = strdup(db);
    t->name = strdup(name);
    if (!t->db || !t->name) {
        query_table_free(t);
        return NULL;
    }
    e->ntables++;
    return t;
}

/* ---- building views -------------------------------------------------------- */

/* Runs describe (a DESCRIBE statement) on the ddl connection and appends
 * the column names and types it reports to out. */
static int query_describe(tarn_query_engine *e, const char *describe, const char *what, query_version *out,
                          tarn_errbuf *eb)
{
    int rc = TARN_OK;
    duckdb_result res;
    if (duckdb_query(e->ddl, describe, &res) != DuckDBSuccess) {
        const char *m = duckdb_result_error(&res);
        rc = tarn_errbuf_set(eb, TARN_EIO, "reading the schema of %s: %s", what, m ? m : "?");
        duckdb_destroy_result(&res);
        return rc;
    }
    duckdb_data_chunk chunk;
    while (!rc && (chunk = duckdb_fetch_chunk(res)) != NULL) {
        idx_t n = duckdb_data_chunk_get_size(chunk);
        duckdb_vector names = duckdb_data_chunk_get_vector(chunk, 0);
        duckdb_vector types = duckdb_data_chunk_get_vector(chunk, 1);
        char **nn = realloc(out->names, (out->ncols + n) * sizeof *nn);
        if (nn) out->names = nn;
        char **tt = realloc(out->types, (out->ncols + n) * sizeof *tt);
        if (tt) out->types = tt;
        if (!nn || !tt) rc = TARN_ENOMEM;
        for (idx_t i = 0; !rc && i < n; i++) {
            out->names[out->ncols] = query_vector_str(names, i);
            out->types[out->ncols] = query_vector_str(types, i);
            if (!out->names[out->ncols] || !out->types[out->ncols]) {
                free(out->names[out->ncols]);
                free(out->types[out->ncols]);
                rc = TARN_ENOMEM;
                break;
            }
            out->ncols++;
        }
        duckdb_destroy_data_chunk(&chunk);
    }
    duckdb_destroy_result(&res);
    if (rc) return tarn_errbuf_set(eb, rc, "out of memory");
    return TARN_OK;
}

/* Reads the column names and types of one Parquet file (what its schema
 * version was written with). Runs on the ddl connection. */
static int query_describe_file(tarn_query_engine *e, const char *abs_path, query_version *out, tarn_errbuf *eb)
{
    tarn_buf sql;
    tarn_buf_init(&sql, 1 << 20);
    int rc = tarn_buf_append_str(&sql, "DESCRIBE SELECT * FROM read_parquet(");
    if (!rc) rc = tarn_sql_string(&sql, abs_path);
    if (!rc) rc = tarn_buf_append_str(&sql, ", hive_partitioning=false)");
    if (rc) rc = tarn_errbuf_set(eb, rc, "path too long");
    if (!rc) rc = query_describe(e, sql.data, abs_path, out, eb);
    tarn_buf_free(&sql);
    return rc;
}

/* DuckDB's own text for each catalog column type of t (as DESCRIBE prints
 * the types of a file: `STRUCT(a BIGINT, "select" VARCHAR)` where the
 * catalog may say `STRUCT("a" BIGINT, "select" VARCHAR)`), into out->types.
 * The types have passed tarn_sqlcheck_types. Runs on the ddl connection. */
static int query_describe_types(tarn_query_engine *e, const tarn_table_info *t, query_version *out, tarn_errbuf *eb)
{
    tarn_buf sql;
    tarn_buf_init(&sql, QUERY_MAX_VIEW_SQL);
    int rc = tarn_buf_append_str(&sql, "DESCRIBE SELECT ");
    for (size_t i = 0; i < t->ncolumns && !rc; i++)
        rc = tarn_buf_printf(&sql, "%sCAST(NULL AS %s)", i ? ", " : "", t->columns[i].type);
    if (rc) rc = tarn_errbuf_set(eb, rc, "column types too long");
    if (!rc) rc = query_describe(e, sql.data, "the catalog types", out, eb);
    if (!rc && out->ncols != t->ncolumns)
        rc = tarn_errbuf_set(eb, TARN_EINTERNAL, "DESCRIBE of %zu types gave %zu", t->ncolumns, out->ncols);
    tarn_buf_free(&sql);
    return rc;
}

static int query_type_is_nested(const char *type)
{
    size_t n = strlen(type);
    return strncmp(type, "STRUCT(", 7) == 0 || strncmp(type, "MAP(", 4) == 0 || strncmp(type, "UNION(", 6) == 0 ||
           (n > 0 && type[n - 1] == ']');
}

/* The partition keys of a file ("k=v/k2=v2" -> "k/k2"), into out. */
static int query_partition_keys(const char *partition, tarn_buf *out)
{
    tarn_buf_reset(out);
    int rc = tarn_buf_append_str(out, "");
    const char *p = partition ? partition : "";
    while (!rc && *p) {
        const char *seg_end = strchr(p, '/');
        if (!seg_end) seg_end = p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(seg_end - p));
        if (eq && eq > p) {
            if (out->len) rc = tarn_buf_append_char(out, '/');
            if (!rc) rc = tarn_buf_append(out, p, (size_t)(eq - p));
        }
        p = *seg_end ? seg_end + 1 : seg_end;
    }
    return rc;
}

/* A file path from the catalog, relative to the lake: must stay inside it. */
static int query_rel_path_ok(const char *rel)
{
    if (!*rel || rel[0] == '/') return 0;
    for (const char *p = rel; *p;) {
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.')) return 0;
        p += n;
        if (*p == '/') p++;
    }
    return 1;
}

/* One branch of a table: the files of one schema version and partition key
 * set. */
typedef struct query_branch {
    int64_t version;
    char *keys; /* "k/k2" */
    size_t *files; /* indexes into the file array */
    size_t nfiles;
} query_branch;

static void query_branches_free(query_branch *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(b[i].keys);
        free(b[i].files);
    }
    free(b);
}

/* Groups files into branches, in order of first appearance. */
static int query_group_files(const tarn_file *files, size_t nfiles, query_branch **out, size_t *nout)
{
    query_branch *br = NULL;
    size_t nbr = 0;
    tarn_buf keys;
    tarn_buf_init(&keys, 1 << 16);
    int rc = TARN_OK;
    for (size_t i = 0; i < nfiles && !rc; i++) {
        if ((rc = query_partition_keys(files[i].partition, &keys))) break;
        size_t j;
        for (j = 0; j < nbr; j++)
            if (br[j].version == files[i].schema_version && strcmp(br[j].keys, keys.data) == 0) break;
        if (j == nbr) {
            query_branch *p = realloc(br, (nbr + 1) * sizeof *p);
            if (!p) {
                rc = TARN_ENOMEM;
                break;
            }
            br = p;
            memset(&br[nbr], 0, sizeof br[nbr]);
            br[nbr].version = files[i].schema_version;
            br[nbr].keys = strdup(keys.data);
            br[nbr].files = malloc(nfiles * sizeof(size_t));
            nbr++;
            if (!br[j].keys || !br[j].files) {
                rc = TARN_ENOMEM;
                break;
            }
        }
        br[j].files[br[j].nfiles++] = i;
    }
    tarn_buf_free(&keys);
    if (rc) {
        query_branches_free(br, nbr);
        return rc;
    }
    *out = br;
    *nout = nbr;
    return TARN_OK;
}

/* Whether key (a partition key) is in the "k/k2" list. */
static int query_keys_have(const char *keys, const char *key)
{
    size_t n = strlen(key);
    for (const char *p = keys; *p;) {
        const char *end = strchr(p, '/');
        size_t m = end ? (size_t)(end - p) : strlen(p);
        if (m == n && strncmp(p, key, n) == 0) return 1;
        p += m;
        if (*p == '/') p++;
    }
    return 0;
}

/* Whether key is in the "k/k2" list, compared as DuckDB compares names. */
static int query_keys_have_ci(const char *keys, const char *key)
{
    for (const char *p = keys; *p;) {
        const char *end = strchr(p, '/');
        size_t m = end ? (size_t)(end - p) : strlen(p);
        size_t i = 0;
        for (; i < m && key[i]; i++) {
            unsigned char x = (unsigned char)p[i], y = (unsigned char)key[i];
            if (x >= 'A' && x <= 'Z') x = (unsigned char)(x - 'A' + 'a');
            if (y >= 'A' && y <= 'Z') y = (unsigned char)(y - 'A' + 'a');
            if (x != y) break;
        }
        if (i == m && !key[i]) return 1;
        p += m;
        if (*p == '/') p++;
    }
    return 0;
}

/* Adds the keys of "k/k2" not yet in *all (NULL-terminated array). */
static int query_keys_collect(const char *keys, const tarn_table_info *t, char ***all, size_t *n)
{
    for (const char *p = keys; *p;) {
        const char *end = strchr(p, '/');
        size_t m = end ? (size_t)(end - p) : strlen(p);
        char *k = malloc(m + 1);
        if (!k) return TARN_ENOMEM;
        memcpy(k, p, m);
        k[m] = '\0';
        int dup = 0;
        for (size_t i = 0; i < *n && !dup; i++) dup = strcmp((*all)[i], k) == 0;
        /* A catalog column of the same name wins over the path's value. */
        for (size_t i = 0; i < t->ncolumns && !dup; i++) dup = tarn_sqlcheck_ident_eq(t->columns[i].name, k);
        if (dup) {
            free(k);
        } else {
            char **a = realloc(*all, (*n + 1) * sizeof *a);
            if (!a) {
                free(k);
                return TARN_ENOMEM;
            }
            *all = a;
            (*all)[(*n)++] = k;
        }
        p += m;
        if (*p == '/') p++;
    }
    return TARN_OK;
}

/* Whether reading a value of file type f as type t turns a nested value
 * inside it (a struct field, a list element) into VARCHAR: DuckDB's CAST
 * would write such a value as {'k': 1}, the delivery's rule is its JSON text
 * ({"k":1}, as schema.h says and as a batch that holds both kinds writes
 * it). The top level is handled by the caller. */
static int query_needs_json(const tarn_type *f, const tarn_type *t)
{
    if (t->kind == TARN_T_VARCHAR) return f->kind == TARN_T_STRUCT || f->kind == TARN_T_LIST;
    if (t->kind == TARN_T_LIST && f->kind == TARN_T_LIST) return query_needs_json(f->children[0], t->children[0]);
    if (t->kind != TARN_T_STRUCT || f->kind != TARN_T_STRUCT) return 0;
    for (size_t i = 0; i < t->nchildren; i++)
        for (size_t j = 0; j < f->nchildren; j++)
            if (tarn_sqlcheck_ident_eq(f->names[j], t->names[i]) && query_needs_json(f->children[j], t->children[i]))
                return 1;
    return 0;
}

static int query_format_type(const tarn_type *t, tarn_buf *out)
{
    tarn_buf_reset(out);
    return tarn_type_format(t, out);
}

/* Appends an expression that reads expr, of file type f, as type t by the
 * widening rules: nested values that became VARCHAR as their JSON text,
 * struct fields by name (NULL for fields the file lacks), list elements
 * one by one, anything else with CAST. depth names the lambda variables of
 * nested lists apart. */
static int query_convert(tarn_buf *sql, const char *expr, const tarn_type *f, const tarn_type *t, int depth)
{
    tarn_buf ft, tt, sub;
    tarn_buf_init(&ft, 1 << 20);
    tarn_buf_init(&tt, 1 << 20);
    tarn_buf_init(&sub, QUERY_MAX_VIEW_SQL);
    int rc = query_format_type(f, &ft);
    if (!rc) rc = query_format_type(t, &tt);
    if (rc) goto done;
    if (strcmp(ft.data, tt.data) == 0) {
        rc = tarn_buf_append_str(sql, expr);
    } else if (t->kind == TARN_T_VARCHAR && (f->kind == TARN_T_STRUCT || f->kind == TARN_T_LIST)) {
        rc = tarn_buf_printf(sql, "CAST(to_json(%s) AS VARCHAR)", expr);
    } else if (t->kind == TARN_T_LIST && f->kind == TARN_T_LIST) {
        char var[32];
        snprintf(var, sizeof var, "tarn_e%d", depth);
        rc = tarn_buf_printf(sql, "list_transform(%s, lambda %s: ", expr, var);
        if (!rc) rc = query_convert(sql, var, f->children[0], t->children[0], depth + 1);
        if (!rc) rc = tarn_buf_append_char(sql, ')');
    } else if (t->kind == TARN_T_STRUCT && f->kind == TARN_T_STRUCT) {
        /* struct_pack of a NULL struct's fields would be a struct of NULLs. */
        rc = tarn_buf_printf(sql, "CASE WHEN (%s) IS NULL THEN NULL ELSE struct_pack(", expr);
        for (size_t i = 0; i < t->nchildren && !rc; i++) {
            if (i) rc = tarn_buf_append_str(sql, ", ");
            if (!rc) rc = tarn_sql_ident(sql, t->names[i]);
            if (!rc) rc = tarn_buf_append_str(sql, " := ");
            size_t j = 0;
            while (j < f->nchildren && !tarn_sqlcheck_ident_eq(f->names[j], t->names[i])) j++;
            if (rc) break;
            if (j == f->nchildren) {
                rc = query_format_type(t->children[i], &tt);
                if (!rc) rc = tarn_buf_printf(sql, "CAST(NULL AS %s)", tt.data);
                continue;
            }
            tarn_buf_reset(&sub);
            rc = tarn_buf_printf(&sub, "struct_extract(%s, ", expr);
            if (!rc) rc = tarn_sql_string(&sub, f->names[j]);
            if (!rc) rc = tarn_buf_append_char(&sub, ')');
            if (!rc) rc = query_convert(sql, sub.data, f->children[j], t->children[i], depth);
        }
        if (!rc) rc = tarn_buf_append_str(sql, ") END");
    } else {
        rc = tarn_buf_printf(sql, "CAST(%s AS %s)", expr, tt.data);
    }
done:
    tarn_buf_free(&ft);
    tarn_buf_free(&tt);
    tarn_buf_free(&sub);
    return rc;
}

/* If reading column name (of file_type) as col_type turns nested values
 * inside it into VARCHAR, appends the conversion (query_convert, then a
 * CAST that pins the column's type), sets *rc and returns 1; else returns 0
 * and appends nothing, and a plain CAST does. */
static int query_nested_json_expr(tarn_buf *sql, const char *name, const char *file_type, const char *col_type,
                                  int *rc)
{
    tarn_type *f = NULL, *t = NULL;
    int used = 0;
    if (tarn_type_parse(file_type, &f, NULL) == TARN_OK && tarn_type_parse(col_type, &t, NULL) == TARN_OK &&
        query_needs_json(f, t)) {
        tarn_buf id;
        tarn_buf_init(&id, 4096);
        used = 1;
        *rc = tarn_sql_ident(&id, name);
        if (!*rc) *rc = tarn_buf_append_str(sql, "CAST(");
        if (!*rc) *rc = query_convert(sql, id.data, f, t, 0);
        if (!*rc) *rc = tarn_buf_printf(sql, " AS %s)", col_type);
        tarn_buf_free(&id);
    }
    tarn_type_free(f);
    tarn_type_free(t);
    return used;
}

/* The expression that reads catalog column col from files of version v.
 * duck_type is DuckDB's text for the column's catalog type; keys the
 * partition keys of the branch. A column the files hold with exactly the
 * catalog type is read bare, without a CAST: DuckDB pushes projections and
 * filters through a column reference (reading only location.country of a
 * STRUCT, using the row group statistics of a column) but not through a
 * CAST, even one to the same type. */
static int query_column_expr(tarn_buf *sql, const tarn_column *col, const char *duck_type, const query_version *v,
                             const char *keys)
{
    const char *file_type = NULL;
    const char *file_name = NULL;
    for (size_t i = 0; i < v->ncols && !file_name; i++)
        if (strcmp(v->names[i], col->name) == 0) file_name = v->names[i], file_type = v->types[i];
    for (size_t i = 0; i < v->ncols && !file_name; i++)
        if (tarn_sqlcheck_ident_eq(v->names[i], col->name)) file_name = v->names[i], file_type = v->types[i];
    int rc;
    if (!file_name) {
        rc = tarn_buf_printf(sql, "CAST(NULL AS %s)", col->type);
    } else if (duck_type && strcmp(file_type, duck_type) == 0 && !query_keys_have_ci(keys, file_name)) {
        /* A partition key of the same name may stand for the file's column
         * (hive_partitioning), with a type of its own: never bare. */
        rc = tarn_sql_ident(sql, file_name);
    } else if (tarn_sqlcheck_ident_eq(col->type, "VARCHAR") && query_type_is_nested(file_type)) {
        rc = tarn_buf_append_str(sql, "CAST(to_json(");
        if (!rc) rc = tarn_sql_ident(sql, file_name);
        if (!rc) rc = tarn_buf_append_str(sql, ") AS VARCHAR)");
    } else if (query_type_is_nested(file_type) && query_nested_json_expr(sql, file_name, file_type, col->type, &rc)) {
        /* rc set: a nested value inside became VARCHAR (query_needs_json). */
    } else {
        rc = tarn_buf_append_str(sql, "CAST(");
        if (!rc) rc = tarn_sql_ident(sql, file_name);
        if (!rc) rc = tarn_buf_printf(sql, " AS %s)", col->type);
    }
    if (!rc) rc = tarn_buf_append_str(sql, " AS ");
    if (!rc) rc = tarn_sql_ident(sql, col->name);
    return rc;
}

/* Caller holds ddl_lock. Finds (or reads and caches) the file types of a
 * schema version. The registry entry is looked up under reg_lock each time
 * because another thread may grow the table array. */
static int query_version_types(tarn_query_engine *e, const tarn_table_info *t, int64_t version,
                               const char *abs_path, query_version *copy_out, tarn_errbuf *eb)
{
    pthread_mutex_lock(&e->reg_lock);
    query_table *qt = query_find_table(e, t->db, t->name);
    for (size_t i = 0; qt && i < qt->nversions; i++) {
        if (qt->versions[i].version != version) continue;
        /* Shallow copy: only the ddl thread (us) ever frees versions. */
        *copy_out = qt->versions[i];
        pthread_mutex_unlock(&e->reg_lock);
        return TARN_OK;
    }
    pthread_mutex_unlock(&e->reg_lock);

    query_version v = {version, 0, NULL, NULL};
    int rc = query_describe_file(e, abs_path, &v, eb);
    if (rc) {
        query_version_free(&v);
        return rc;
    }
    pthread_mutex_lock(&e->reg_lock);
    qt = query_table_entry(e, t->db, t->name);
    query_version *nv = qt ? realloc(qt->versions, (qt->nversions + 1) * sizeof *nv) : NULL;
    if (!nv) {
        pthread_mutex_unlock(&e->reg_lock);
        query_version_free(&v);
        return tarn_errbuf_set(eb, TARN_ENOMEM, "out of memory");
    }
    qt->versions = nv;
    qt->versions[qt->nversions++] = v;
    *copy_out = v;
    pthread_mutex_unlock(&e->reg_lock);
    return TARN_OK;
}

/* Builds the SELECT of a table's view into sql. *bytes gets the size of the
 * files it reads, *versions (malloc'd, owned by the caller) the schema
 * versions of its branches. Caller holds ddl_lock. */
static int query_view_sql(tarn_query_engine *e, const tarn_table_info *t, char *const *duck_types, tarn_buf *sql,
                          int64_t *bytes, int64_t **versions, size_t *nversions, tarn_errbuf *eb)
{
    tarn_file *files = NULL;
    size_t nfiles = 0, nbr = 0, nkeys = 0;
    query_branch *br = NULL;
    char **keys = NULL;
    tarn_buf path;
    tarn_buf_init(&path, PATH_MAX * 4);
    *bytes = 0;
    int rc = tarn_catalog_live_files(e->cat, t->id, "processed", &files, &nfiles, eb);
    if (rc) goto done;

    if (nfiles == 0) {
        /* No data yet: the typed columns, no rows, so queries bind. */
        rc = tarn_buf_append_str(sql, "SELECT ");
        for (size_t i = 0; i < t->ncolumns && !rc; i++) {
            rc = tarn_buf_printf(sql, "%sCAST(NULL AS %s) AS ", i ? ", " : "", t->columns[i].type);
            if (!rc) rc = tarn_sql_ident(sql, t->columns[i].name);
        }
        if (!rc) rc = tarn_buf_append_str(sql, " WHERE false");
        goto done;
    }

    for (size_t i = 0; i < nfiles; i++) {
        if (!query_rel_path_ok(files[i].path)) {
            rc = tarn_errbuf_set(eb, TARN_ECORRUPT, "catalog file path escapes the lake: %s", files[i].path);
            goto done;
        }
        *bytes += files[i].bytes;
    }
    if ((rc = query_group_files(files, nfiles, &br, &nbr))) goto done;
    for (size_t b = 0; b < nbr && !rc; b++) rc = query_keys_collect(br[b].keys, t, &keys, &nkeys);
    if (!rc && !(*versions = malloc(nbr * sizeof **versions))) rc = TARN_ENOMEM;
    for (size_t b = 0; b < nbr && !rc; b++) (*versions)[(*nversions)++] = br[b].version;

    for (size_t b = 0; b < nbr && !rc; b++) {
        const tarn_file *first = &files[br[b].files[0]];
        tarn_buf_reset(&path);
        rc = tarn_buf_printf(&path, "%s/%s", e->lake_dir, first->path);
        query_version v = {0, 0, NULL, NULL};
        if (!rc) rc = query_version_types(e, t, br[b].version, path.data, &v, eb);
        if (rc) goto done;
        rc = tarn_buf_append_str(sql, b ? " UNION ALL SELECT " : "SELECT ");
        for (size_t i = 0; i < t->ncolumns && !rc; i++) {
            if (i) rc = tarn_buf_append_str(sql, ", ");
            if (!rc) rc = query_column_expr(sql, &t->columns[i], duck_types[i], &v, br[b].keys);
        }
        for (size_t k = 0; k < nkeys && !rc; k++) {
            rc = tarn_buf_append_str(sql, query_keys_have(br[b].keys, keys[k]) ? ", " : ", NULL AS ");
            if (!rc) rc = tarn_sql_ident(sql, keys[k]);
        }
        if (!rc) rc = tarn_buf_append_str(sql, " FROM read_parquet([");
        for (size_t f = 0; f < br[b].nfiles && !rc; f++) {
            tarn_buf_reset(&path);
            rc = tarn_buf_printf(&path, "%s/%s", e->lake_dir, files[br[b].files[f]].path);
            if (!rc && f) rc = tarn_buf_append_char(sql, ',');
            if (!rc) rc = tarn_sql_string(sql, path.data);
        }
        /* No union_by_name: see the top of this file. */
        if (!rc) rc = tarn_buf_append_str(sql, "], hive_partitioning=true)");
    }
    if (rc == TARN_ETOOBIG) rc = tarn_errbuf_set(eb, rc, "view definition too large");
    if (rc == TARN_ENOMEM) rc = tarn_errbuf_set(eb, rc, "out of memory");

done:
    for (size_t k = 0; k < nkeys; k++) free(keys[k]);
    free(keys);
    query_branches_free(br, nbr);
    tarn_files_free(files, nfiles);
    tarn_buf_free(&path);
    return rc;
}

/* Forgets cached file types of versions no live file has any more. */
static void query_prune_versions(query_table *qt, const int64_t *live, size_t nlive)
{
    size_t w = 0;
    for (size_t i = 0; i < qt->nversions; i++) {
        int keep = 0;
        for (size_t j = 0; j < nlive && !keep; j++) keep = live[j] == qt->versions[i].version;
        if (keep) qt->versions[w++] = qt->versions[i];
        else query_version_free(&qt->versions[i]);
    }
    qt->nversions = w;
}

/* Creates or replaces the view of one table. Caller holds ddl_lock. */
static int query_build_view(tarn_query_engine *e, const tarn_table_info *t, tarn_errbuf *eb)
{
    if (tarn_sqlcheck_reserved_db(t->db))
        return tarn_errbuf_set(eb, TARN_EINVAL, "database name '%s' is reserved by the query engine", t->db);
    tarn_buf sql;
    tarn_buf_init(&sql, QUERY_MAX_VIEW_SQL);
    int64_t bytes = 0, *versions = NULL;
    size_t nversions = 0;
    query_version duck = {0, 0, NULL, NULL}; /* DuckDB's text of the catalog types */
    int rc = tarn_buf_append_str(&sql, "CREATE SCHEMA IF NOT EXISTS ");
    if (!rc) rc = tarn_sql_ident(&sql, t->db);
    if (rc) goto done;
    if ((rc = tarn_duck_exec(e->ddl, sql.data, TARN_ESQL, eb))) goto done;
    pthread_mutex_lock(&e->reg_lock);
    rc = query_add_db(e, t->db);
    pthread_mutex_unlock(&e->reg_lock);
    if (rc) goto done;

    tarn_buf_reset(&sql);
    if (t->ncolumns == 0) {
        /* Nothing published yet: no view (the table is "not found"). */
        rc = tarn_buf_append_str(&sql, "DROP VIEW IF EXISTS ");
        if (!rc) rc = tarn_sql_ident(&sql, t->db);
        if (!rc) rc = tarn_buf_append_char(&sql, '.');
        if (!rc) rc = tarn_sql_ident(&sql, t->name);
        if (!rc) rc = tarn_duck_exec(e->ddl, sql.data, TARN_ESQL, eb);
        pthread_mutex_lock(&e->reg_lock);
        query_table *qt = query_table_entry(e, t->db, t->name);
        if (qt) qt->has_view = 0;
        pthread_mutex_unlock(&e->reg_lock);
        goto done;
    }

    const char **types = malloc(t->ncolumns * sizeof *types);
    if (!types) {
        rc = TARN_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < t->ncolumns; i++) types[i] = t->columns[i].type;
    rc = tarn_sqlcheck_types(e->ddl, types, t->ncolumns, eb);
    free(types);
    if (rc) goto done;
    if ((rc = query_describe_types(e, t, &duck, eb))) goto done;

    rc = tarn_buf_append_str(&sql, "CREATE OR REPLACE VIEW ");
    if (!rc) rc = tarn_sql_ident(&sql, t->db);
    if (!rc) rc = tarn_buf_append_char(&sql, '.');
    if (!rc) rc = tarn_sql_ident(&sql, t->name);
    if (!rc) rc = tarn_buf_append_str(&sql, " AS ");
    if (rc) goto done;
    if ((rc = query_view_sql(e, t, duck.types, &sql, &bytes, &versions, &nversions, eb))) goto done;
    if ((rc = tarn_duck_exec(e->ddl, sql.data, TARN_ESQL, eb))) goto done;

    pthread_mutex_lock(&e->reg_lock);
    query_table *qt = query_table_entry(e, t->db, t->name);
    if (qt) {
        qt->has_view = 1;
        qt->bytes = bytes;
        query_prune_versions(qt, versions, nversions);
    } else {
        rc = TARN_ENOMEM;
    }
    pthread_mutex_unlock(&e->reg_lock);

done:
    /* Whatever happened, verdicts checked against the registry before may
     * no longer hold (see query_verdict_find). */
    atomic_fetch_add(&e->reg_gen, 1);
    if (rc == TARN_ENOMEM) tarn_errbuf_set(eb, rc, "out of memory");
    free(versions);
    query_version_free(&duck);
    tarn_buf_free(&sql);
    return rc;
}

int tarn_query_refresh_table(tarn_query_engine *e, const char *db, const char *table, tarn_errbuf *eb)
{
    tarn_table_info t;
    memset(&t, 0, sizeof t);
    int rc = tarn_catalog_get_table(e->cat, db, table, &t, eb);
    if (rc) return rc;
    pthread_mutex_lock(&e->ddl_lock);
    rc = query_build_view(e, &t, eb);
    pthread_mutex_unlock(&e->ddl_lock);
    tarn_table_info_free(&t);
    return rc;
}

/* ---- watchdog ---------------------------------------------------------------- */

static void *query_watchdog_main(void *arg)
{
    tarn_query_engine *e = arg;
    pthread_mutex_lock(&e->wd_lock);
    while (!e->wd_stop) {
        int64_t now = tarn_mono_ms(), next = INT64_MAX;
        int cancelled = atomic_load(&e->cancelled);
        for (query_watch *w = e->watches; w; w = w->next) {
            if (cancelled || w->deadline_ms <= now) {
                /* Under wd_lock: the query cannot unregister and
                 * disconnect while we touch its connection. */
                /* The first cause stays: the deadline (1) or the stop (2). */
                int none = 0;
                atomic_compare_exchange_strong(&w->fired, &none, w->deadline_ms <= now ? 1 : 2);
                duckdb_interrupt(w->conn);
                if (now + QUERY_REINTERRUPT_MS < next) next = now + QUERY_REINTERRUPT_MS;
            } else if (w->deadline_ms < next) {
                next = w->deadline_ms;
            }
        }
        e->wd_next = next;
        if (next == INT64_MAX) {
            pthread_cond_wait(&e->wd_cond, &e->wd_lock);
        } else {
            struct timespec ts = {(time_t)(next / 1000), (long)(next % 1000) * 1000000L};
            pthread_cond_timedwait(&e->wd_cond, &e->wd_lock, &ts);
        }
    }
    pthread_mutex_unlock(&e->wd_lock);
    return NULL;
}

static void query_watch_add(tarn_query_engine *e, query_watch *w)
{
    pthread_mutex_lock(&e->wd_lock);
    w->prev = NULL;
    w->next = e->watches;
    if (e->watches) e->watches->prev = w;
    e->watches = w;
    /* The watchdog looks at every watch when it wakes: wake it early only if
     * this deadline comes before its next wake-up (not once per query). */
    if (atomic_load(&e->cancelled)) {
        e->wd_next = 0;
        pthread_cond_signal(&e->wd_cond);
    } else if (w->deadline_ms < e->wd_next) {
        e->wd_next = w->deadline_ms;
        pthread_cond_signal(&e->wd_cond);
    }
    pthread_mutex_unlock(&e->wd_lock);
}

/* The flag is set under wd_lock, and a query checks it after adding its
 * watch under the same lock: a query either sees the cancellation before it
 * runs, or is among the watches the watchdog then interrupts (again every
 * QUERY_REINTERRUPT_MS, as for a timeout, until it ends). */
void tarn_query_engine_cancel(tarn_query_engine *e)
{
    if (!e) return;
    pthread_mutex_lock(&e->wd_lock);
    atomic_store(&e->cancelled, 1);
    e->wd_next = 0;
    pthread_cond_signal(&e->wd_cond);
    pthread_mutex_unlock(&e->wd_lock);
}

int tarn_query_engine_running(tarn_query_engine *e)
{
    int n = 0;
    pthread_mutex_lock(&e->wd_lock);
    for (query_watch *w = e->watches; w; w = w->next) n++;
    pthread_mutex_unlock(&e->wd_lock);
    return n;
}

static void query_watch_remove(tarn_query_engine *e, query_watch *w)
{
    pthread_mutex_lock(&e->wd_lock);
    if (w->prev) w->prev->next = w->next;
    else e->watches = w->next;
    if (w->next) w->next->prev = w->prev;
    pthread_mutex_unlock(&e->wd_lock);
}

/* ---- query connections ------------------------------------------------------ */

static void query_conn_free(query_conn *c)
{
    if (!c) return;
    duckdb_destroy_prepare(&c->serializer);
    if (c->conn) duckdb_disconnect(&c->conn);
    free(c->db);
    free(c);
}

/* A connection for one query: an idle one from the pool (one whose last USE
 * was db if there is one), else a new one. Opening a connection and
 * preparing the checker's statement on it cost about as much as the rest of
 * the check, and USE as much again, so connections are reused. They carry no
 * state a query could leave behind for the next: only checked SELECTs run
 * on them (no SET, PRAGMA, ATTACH, temporary objects or transactions), the
 * search path is set before every query (query_use), and a connection the
 * watchdog interrupted is closed rather than reused. */
static query_conn *query_conn_take(tarn_query_engine *e, const char *db)
{
    pthread_mutex_lock(&e->pool_lock);
    query_conn **pick = NULL;
    for (query_conn **p = &e->pool; *p && !pick; p = &(*p)->next)
        if (db ? (*p)->db && strcmp((*p)->db, db) == 0 : !(*p)->db) pick = p;
    if (!pick && e->pool) pick = &e->pool;
    query_conn *c = NULL;
    if (pick) {
        c = *pick;
        *pick = c->next;
        c->next = NULL;
        e->npool--;
    }
    pthread_mutex_unlock(&e->pool_lock);
    if (c) return c;
    if (!(c = calloc(1, sizeof *c))) return NULL;
    if (duckdb_connect(e->db, &c->conn) != DuckDBSuccess) {
        free(c);
        return NULL;
    }
    return c;
}

/* Returns c to the pool, or closes it if it may not be reused. */
static void query_conn_give(tarn_query_engine *e, query_conn *c, int reusable)
{
    if (!c) return;
    if (reusable) {
        pthread_mutex_lock(&e->pool_lock);
        if (e->npool < QUERY_POOL_MAX) {
            c->next = e->pool;
            e->pool = c;
            e->npool++;
            c = NULL;
        }
        pthread_mutex_unlock(&e->pool_lock);
    }
    query_conn_free(c);
}

/* Makes db (NULL: none, DuckDB's memory.main) the connection's default
 * schema, with USE unless it already is. */
static int query_use(query_conn *c, const char *db, tarn_errbuf *eb)
{
    if (db ? c->db && strcmp(c->db, db) == 0 : !c->db) return TARN_OK;
    tarn_buf use;
    tarn_buf_init(&use, 1024);
    int rc = tarn_buf_append_str(&use, "USE ");
    if (!rc) rc = db ? tarn_sql_ident(&use, db) : tarn_buf_append_str(&use, "memory.main");
    free(c->db);
    c->db = NULL;
    /* Until USE succeeds the search path is unknown: the caller closes c. */
    if (!rc) rc = tarn_duck_exec(c->conn, use.data, TARN_ESQL, eb);
    tarn_buf_free(&use);
    if (!rc && db && !(c->db = strdup(db))) rc = tarn_errbuf_set(eb, TARN_ENOMEM, "out of memory");
    return rc;
}

/* ---- open / close ----------------------------------------------------------- */

static int query_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int query_load_keywords(tarn_query_engine *e, tarn_errbuf *eb)
{
    duckdb_result res;
    if (duckdb_query(e->ddl, "SELECT lower(keyword_name) FROM duckdb_keywords()", &res) != DuckDBSuccess) {
        int rc = tarn_errbuf_set(eb, TARN_EINTERNAL, "duckdb_keywords: %s", duckdb_result_error(&res));
        duckdb_destroy_result(&res);
        return rc;
    }
    int rc = TARN_OK;
    duckdb_data_chunk chunk;
    while (!rc && (chunk = duckdb_fetch_chunk(res)) != NULL) {
        idx_t n = duckdb_data_chunk_get_size(chunk);
        duckdb_vector v = duckdb_data_chunk_get_vector(chunk, 0);
        char **p = realloc(e->keywords, (e->nkeywords + n) * sizeof *p);
        if (!p) rc = TARN_ENOMEM;
        else e->keywords = p;
        for (idx_t i = 0; !rc && i < n; i++) {
            if (!query_valid(v, i)) continue;
            char *k = query_vector_str(v, i);
            if (!k) rc = TARN_ENOMEM;
            else e->keywords[e->nkeywords++] = k;
        }
        duckdb_destroy_data_chunk(&chunk);
    }
    duckdb_destroy_result(&res);
    if (rc) return tarn_errbuf_set(eb, rc, "out of memory");
    qsort(e->keywords, e->nkeywords, sizeof *e->keywords, query_cmp_str);
    return TARN_OK;
}

int tarn_query_engine_open(const tarn_query_opts *opts, tarn_catalog *cat, tarn_query_engine **out, tarn_errbuf *eb)
{
    *out = NULL;
    if (!opts || !opts->lake_dir || opts->lake_dir[0] != '/' || !cat)
        return tarn_errbuf_set(eb, TARN_EINVAL, "query engine needs an absolute lake directory and a catalog");
    tarn_query_engine *e = calloc(1, sizeof *e);
    if (!e) return tarn_errbuf_set(eb, TARN_ENOMEM, "out of memory");
    e->cat = cat;
    e->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : QUERY_DEFAULT_TIMEOUT_MS;
    e->max_rows = opts->max_rows > 0 ? opts->max_rows : QUERY_DEFAULT_MAX_ROWS;
    e->max_sql = opts->max_sql ? opts->max_sql : QUERY_DEFAULT_MAX_SQL;
    e->max_result_bytes = opts->max_result_bytes ? opts->max_result_bytes : QUERY_DEFAULT_MAX_RESULT;
    pthread_mutex_init(&e->ddl_lock, NULL);
    pthread_mutex_init(&e->reg_lock, NULL);
    pthread_mutex_init(&e->verdict_lock, NULL);
    atomic_init(&e->reg_gen, 1);
    atomic_init(&e->cancelled, 0);
    pthread_mutex_init(&e->wd_lock, NULL);
    pthread_mutex_init(&e->pool_lock, NULL);
    e->wd_next = INT64_MAX;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&e->wd_cond, &ca);
    pthread_condattr_destroy(&ca);

    int rc = tarn_mkdir_p(opts->lake_dir, eb);
    if (rc) goto fail;
    /* DuckDB checks allowed_directories against resolved paths: use the
     * real path of the lake for both the allowance and the view paths. */
    char real[PATH_MAX];
    e->lake_dir = strdup(realpath(opts->lake_dir, real) ? real : opts->lake_dir);
    if (!e->lake_dir) {
        rc = tarn_errbuf_set(eb, TARN_ENOMEM, "out of memory");
        goto fail;
    }
    size_t ll = strlen(e->lake_dir);
    while (ll > 1 && e->lake_dir[ll - 1] == '/') e->lake_dir[--ll] = '\0';

    const char *dirs[] = {e->lake_dir};
    tarn_duck_opts dopts = {dirs, 1, opts->threads, opts->memory_limit, 1, opts->temp_dir, opts->max_spill};
    if ((rc = tarn_duck_open(&dopts, &e->db, &e->ddl, eb))) {
        tarn_log_error(LOG, "opening hardened DuckDB failed: %s", eb ? eb->msg : "?");
        goto fail;
    }

    if ((rc = query_load_keywords(e, eb))) goto fail;

    if (pthread_create(&e->wd_thread, NULL, query_watchdog_main, e) != 0) {
        rc = tarn_errbuf_set(eb, TARN_EINTERNAL, "cannot start the query watchdog");
        goto fail;
    }
    e->wd_started = 1;

    tarn_table_info *tables = NULL;
    size_t ntables = 0;
    if ((rc = tarn_catalog_list_tables(cat, &tables, &ntables, eb))) goto fail;
    pthread_mutex_lock(&e->ddl_lock);
    for (size_t i = 0; i < ntables; i++) {
        tarn_errbuf teb = {{0}};
        if (query_build_view(e, &tables[i], &teb) != TARN_OK)
            tarn_log_error(LOG, "%s.%s: no view: %s", tables[i].db, tables[i].name, teb.msg);
    }
    pthread_mutex_unlock(&e->ddl_lock);
    tarn_table_infos_free(tables, ntables);
    *out = e;
    return TARN_OK;

fail:
    tarn_query_engine_close(e);
    return rc;
}

void tarn_query_engine_close(tarn_query_engine *e)
{
    if (!e) return;
    if (e->wd_started) {
        pthread_mutex_lock(&e->wd_lock);
        e->wd_stop = 1;
        pthread_cond_signal(&e->wd_cond);
        pthread_mutex_unlock(&e->wd_lock);
        pthread_join(e->wd_thread, NULL);
    }
    while (e->pool) {
        query_conn *c = e->pool;
        e->pool = c->next;
        query_conn_free(c);
    }
    if (e->ddl) duckdb_disconnect(&e->ddl);
    if (e->db) duckdb_close(&e->db);
    for (size_t i = 0; i < e->ntables; i++) query_table_free(&e->tables[i]);
    free(e->tables);
    for (size_t i = 0; i < e->ndbs; i++) free(e->dbs[i]);
    free(e->dbs);
    for (size_t i = 0; i < e->nkeywords; i++) free(e->keywords[i]);
    free(e->keywords);
    free(e->lake_dir);
    for (size_t i = 0; i < QUERY_VERDICTS; i++) query_verdict_free(&e->verdicts[i]);
    pthread_mutex_destroy(&e->verdict_lock);
    pthread_mutex_destroy(&e->ddl_lock);
    pthread_mutex_destroy(&e->reg_lock);
    pthread_mutex_destroy(&e->wd_lock);
    pthread_mutex_destroy(&e->pool_lock);
    pthread_cond_destroy(&e->wd_cond);
    free(e);
}

/* ---- running a query ------------------------------------------------------------ */

/* What the checker resolved: distinct tables and the bytes of their files. */
typedef struct query_refs {
    tarn_query_engine *e;
    char **names; /* "db\0table" pairs flattened as "db.table" */
    size_t n;
    int64_t bytes;
    int oom;
} query_refs;

static int query_resolve(void *ctx, const char *db, const char *table)
{
    query_refs *refs = ctx;
    tarn_query_engine *e = refs->e;
    pthread_mutex_lock(&e->reg_lock);
    query_table *t = query_find_table(e, db, table);
    int found = t && t->has_view;
    int64_t bytes = found ? t->bytes : 0;
    pthread_mutex_unlock(&e->reg_lock);
    if (!found) return 0;
    char key[300];
    snprintf(key, sizeof key, "%s.%s", db, table);
    for (size_t i = 0; i < refs->n; i++)
        if (tarn_sqlcheck_ident_eq(refs->names[i], key)) return 1;
    char **p = realloc(refs->names, (refs->n + 1) * sizeof *p);
    char *k = p ? strdup(key) : NULL;
    if (p) refs->names = p;
    if (!k) {
        refs->oom = 1;
        return 1;
    }
    refs->names[refs->n++] = k;
    refs->bytes += bytes;
    return 1;
}

static void query_refs_free(query_refs *refs)
{
    for (size_t i = 0; i < refs->n; i++) free(refs->names[i]);
    free(refs->names);
}

/* ---- verdict cache ----------------------------------------------------------
 *
 * The check of a text costs about 0.25 ms (two parses, jansson, the walk),
 * a quarter of a small query. Dashboards send the same text again and
 * again, so the verdict of a successful check is kept: the bound it found
 * (and the capped text) and the tables it referenced. A later query with
 * the very same bytes and default database reuses it while no view has been
 * built or dropped since (reg_gen); the tables are resolved again, which
 * also recomputes bytes_scanned. Anything refused is checked every time,
 * and the verdict only ever stands for the exact text that was checked. */

static void query_verdict_free(query_verdict *v)
{
    free(v->sql);
    free(v->db);
    free(v->capped);
    for (size_t i = 0; i < v->ntables; i++) free(v->tables[i]);
    free(v->tables);
    memset(v, 0, sizeof *v);
}

static int query_same_db(const char *a, const char *b) { return a == b || (a && b && strcmp(a, b) == 0); }

/* 1 if a current verdict for (sql, db) was found: *how, capped and refs are
 * filled as the check would have. 0 otherwise (nothing changed). */
static int query_verdict_find(tarn_query_engine *e, const char *sql, const char *db, enum tarn_sqlcheck_bound *how,
                              tarn_buf *capped, query_refs *refs)
{
    uint64_t gen = atomic_load(&e->reg_gen);
    int found = 0;
    pthread_mutex_lock(&e->verdict_lock);
    for (size_t i = 0; i < QUERY_VERDICTS && !found; i++) {
        query_verdict *v = &e->verdicts[i];
        if (!v->sql || v->gen != gen || !query_same_db(v->db, db) || strcmp(v->sql, sql) != 0) continue;
        found = 1;
        tarn_buf_reset(capped);
        if (v->capped && tarn_buf_append_str(capped, v->capped)) found = 0;
        for (size_t k = 0; found && k < v->ntables; k++) {
            char name[300];
            snprintf(name, sizeof name, "%s", v->tables[k]);
            char *dot = strchr(name, '.');
            if (!dot) {
                found = 0;
                break;
            }
            *dot = '\0';
            /* A table gone since means a changed registry; be safe anyway. */
            if (!query_resolve(refs, name, dot + 1) || refs->oom) found = 0;
        }
        if (found) *how = (enum tarn_sqlcheck_bound)v->how;
    }
    pthread_mutex_unlock(&e->verdict_lock);
    if (!found) {
        query_refs_free(refs);
        refs->names = NULL;
        refs->n = 0;
        refs->bytes = 0;
        refs->oom = 0;
    }
    return found;
}

/* Keeps the verdict of a successful check made at registry generation gen. */
static void query_verdict_keep(tarn_query_engine *e, const char *sql, const char *db, uint64_t gen,
                               enum tarn_sqlcheck_bound how, const tarn_buf *capped, const query_refs *refs)
{
    if (strlen(sql) > QUERY_VERDICT_MAX_SQL) return;
    query_verdict v = {0};
    int ok = (v.sql = strdup(sql)) != NULL;
    if (ok && db) ok = (v.db = strdup(db)) != NULL;
    if (ok && how == TARN_SQLCHECK_CAPPED) ok = capped->data && (v.capped = strdup(capped->data)) != NULL;
    if (ok && refs->n) ok = (v.tables = calloc(refs->n, sizeof *v.tables)) != NULL;
    for (size_t i = 0; ok && i < refs->n; i++, v.ntables++) ok = (v.tables[i] = strdup(refs->names[i])) != NULL;
    v.gen = gen;
    v.how = (int)how;
    if (!ok) {
        query_verdict_free(&v);
        return;
    }
    pthread_mutex_lock(&e->verdict_lock);
    query_verdict *slot = &e->verdicts[e->verdict_next];
    e->verdict_next = (e->verdict_next + 1) % QUERY_VERDICTS;
    query_verdict_free(slot);
    *slot = v;
    pthread_mutex_unlock(&e->verdict_lock);
}

/* A query the stop ended: "cancelled" while it ran, "not run" before. */
static int query_stopping_error(tarn_errbuf *eb, const char *what)
{
    return tarn_errbuf_set(eb, TARN_ECLOSED,
                           "the server is stopping: the query was %s; run it again once the server is back", what);
}

/* The error of a query the watchdog interrupted: the server's stop
 * (tarn_query_engine_cancel) if that came first, else its timeout. */
static int query_fired_error(tarn_query_engine *e, query_watch *w, tarn_errbuf *eb)
{
    if (atomic_load(&w->fired) == 2) return query_stopping_error(eb, "cancelled");
    if (e->timeout_ms % 1000 == 0)
        return tarn_errbuf_set(eb, TARN_ETIMEOUT, "query timed out after %lld s", (long long)(e->timeout_ms / 1000));
    return tarn_errbuf_set(eb, TARN_ETIMEOUT, "query timed out after %lld ms", (long long)e->timeout_ms);
}

/* The error of a statement DuckDB failed to prepare or run: the timeout if
 * the watchdog interrupted it (DuckDB then says "INTERRUPT Error:
 * Interrupted!"), or the stop, else DuckDB's message. */
static int query_duck_error(tarn_query_engine *e, query_watch *w, const char *msg, tarn_errbuf *eb)
{
    if (atomic_load(&w->fired)) return query_fired_error(e, w, eb);
    return tarn_errbuf_set(eb, TARN_ESQL, "%s", msg ? msg : "failed");
}

/* Reads the result (streamed or materialized) into out. */
static int query_encode(tarn_query_engine *e, duckdb_result *res, query_watch *w, enum tarn_query_format fmt,
                        int64_t bytes_scanned, int64_t t0, tarn_buf *out, size_t start, tarn_query_stats *stats,
                        tarn_errbuf *eb)
{
    idx_t ncols = duckdb_column_count(res);
    query_col *cols = calloc(ncols ? ncols : 1, sizeof *cols);
    duckdb_vector *vecs = calloc(ncols ? ncols : 1, sizeof *vecs);
    duckdb_data_chunk chunk = NULL;
    query_run r;
    tarn_buf_init(&r.field, 0);
    tarn_buf_init(&r.leaf, 0);
    int64_t rows = 0;
    int truncated = 0, rc = cols && vecs ? TARN_OK : TARN_ENOMEM;
    idx_t ninit = 0;
    for (; ninit < ncols && !rc; ninit++) rc = query_col_init(&cols[ninit], duckdb_column_logical_type(res, ninit));
    for (idx_t i = 0; i < ncols && !rc; i++) {
        const query_col *bad = NULL;
        if (!query_col_supported(&cols[i], &bad)) {
            tarn_buf tn;
            tarn_buf_init(&tn, 4096);
            query_type_text(e->keywords, e->nkeywords, bad, &tn);
            rc = tarn_errbuf_set(eb, TARN_ESQL, "column \"%s\": results of type %s are not supported; CAST it to VARCHAR",
                                 duckdb_column_name(res, i), tn.data ? tn.data : "?");
            tarn_buf_free(&tn);
        }
    }
    if (rc == TARN_ENOMEM) rc = tarn_errbuf_set(eb, TARN_ENOMEM, "out of memory reading the result types");
    if (rc) goto done;

    /* Header. */
    if (fmt == TARN_QUERY_JSON) {
        rc = tarn_buf_append_str(out, "{\"columns\":[");
        for (idx_t i = 0; i < ncols && !rc; i++) {
            const char *name = duckdb_column_name(res, i);
            rc = tarn_buf_append_str(out, i ? ",{\"name\":" : "{\"name\":");
            if (!rc) rc = tarn_buf_append_json_str(out, name, strlen(name));
            if (!rc) rc = tarn_buf_append_str(out, ",\"type\":");
            tarn_buf_reset(&r.field);
            if (!rc) rc = query_type_text(e->keywords, e->nkeywords, &cols[i], &r.field);
            if (!rc) rc = tarn_buf_append_json_str(out, r.field.data, r.field.len);
            if (!rc) rc = tarn_buf_append_char(out, '}');
        }
        if (!rc) rc = tarn_buf_append_str(out, "],\"rows\":[");
    } else {
        for (idx_t i = 0; i < ncols && !rc; i++) {
            const char *name = duckdb_column_name(res, i);
            if (i) rc = tarn_buf_append_char(out, ',');
            if (rc) break;
            /* A header cell is quoted like any value. */
            rc = tarn_buf_append_char(out, '"');
            for (const char *p = name; !rc && *p; p++)
                rc = *p == '"' ? tarn_buf_append(out, "\"\"", 2) : tarn_buf_append_char(out, *p);
            if (!rc) rc = tarn_buf_append_char(out, '"');
        }
        if (!rc) rc = tarn_buf_append_char(out, '\n');
    }

    while (!rc && !truncated) {
        if (atomic_load(&w->fired)) {
            rc = query_fired_error(e, w, eb);
            break;
        }
        chunk = duckdb_fetch_chunk(*res);
        if (!chunk) break;
        idx_t n = duckdb_data_chunk_get_size(chunk);
        if (n == 0) {
            duckdb_destroy_data_chunk(&chunk);
            break;
        }
        for (idx_t i = 0; i < ncols; i++) vecs[i] = duckdb_data_chunk_get_vector(chunk, i);
        for (idx_t row = 0; row < n && !rc; row++) {
            if (rows == e->max_rows) {
                truncated = 1;
                break;
            }
            if (fmt == TARN_QUERY_JSON) {
                rc = tarn_buf_append_str(out, rows ? ",[" : "[");
                for (idx_t i = 0; i < ncols && !rc; i++) {
                    if (i) rc = tarn_buf_append_char(out, ',');
                    if (!rc) rc = query_json(&r, &cols[i], vecs[i], row, out);
                }
                if (!rc) rc = tarn_buf_append_char(out, ']');
            } else {
                for (idx_t i = 0; i < ncols && !rc; i++) {
                    if (i) rc = tarn_buf_append_char(out, ',');
                    if (!rc) rc = query_csv_field(&r, &cols[i], vecs[i], row, out);
                }
                if (!rc) rc = tarn_buf_append_char(out, '\n');
            }
            rows++;
            if (!rc && out->len - start > e->max_result_bytes) rc = TARN_ETOOBIG;
        }
        duckdb_destroy_data_chunk(&chunk);
    }
    if (rc == TARN_ETOOBIG)
        rc = tarn_errbuf_set(eb, TARN_ETOOBIG, "result larger than %zu bytes; add a LIMIT or aggregate",
                             e->max_result_bytes);
    if (rc == TARN_ENOMEM) rc = tarn_errbuf_set(eb, TARN_ENOMEM, "out of memory encoding the result");
    if (!rc && !truncated) {
        /* The end of a stream and an error during it look alike. */
        const char *m = duckdb_result_error(res);
        if (m) rc = atomic_load(&w->fired) ? query_fired_error(e, w, eb) : tarn_errbuf_set(eb, TARN_ESQL, "%s", m);
    }
    int64_t elapsed = tarn_mono_ms() - t0;
    if (!rc && fmt == TARN_QUERY_JSON) {
        rc = tarn_buf_printf(out, "],\"row_count\":%lld,\"truncated\":%s,\"bytes_scanned\":%lld,\"elapsed_ms\":%lld}",
                             (long long)rows, truncated ? "true" : "false", (long long)bytes_scanned,
                             (long long)elapsed);
        if (rc) rc = tarn_errbuf_set(eb, rc, "result too large");
    }
    if (!rc && stats) {
        stats->row_count = rows;
        stats->truncated = truncated;
        stats->bytes_scanned = bytes_scanned;
        stats->elapsed_ms = elapsed;
    }

done:
    for (idx_t i = 0; i < ninit; i++) query_col_free(&cols[i]);
    free(cols);
    free(vecs);
    tarn_buf_free(&r.field);
    tarn_buf_free(&r.leaf);
    return rc;
}

int tarn_query_run(tarn_query_engine *e, const char *sql, const char *default_db, enum tarn_query_format fmt,
                   tarn_buf *out, tarn_query_stats *stats, tarn_errbuf *eb)
{
    int64_t t0 = tarn_mono_ms();
    size_t start = out->len;
    if (!sql) return tarn_errbuf_set(eb, TARN_EINVAL, "no SQL given");
    size_t len = strlen(sql);
    if (len > e->max_sql)
        return tarn_errbuf_set(eb, TARN_ETOOBIG, "SQL text is %zu bytes; the limit is %zu", len, e->max_sql);
    if (default_db && !*default_db) default_db = NULL;
    if (default_db) {
        pthread_mutex_lock(&e->reg_lock);
        int known = query_has_db(e, default_db);
        pthread_mutex_unlock(&e->reg_lock);
        if (!known) return tarn_errbuf_set(eb, TARN_ENOTFOUND, "database '%s' not found", default_db);
    }

    query_conn *qc = query_conn_take(e, default_db);
    if (!qc) return tarn_errbuf_set(eb, TARN_EINTERNAL, "duckdb connect failed");
    duckdb_connection conn = qc->conn;
    query_refs refs = {e, NULL, 0, 0, 0};
    query_watch w;
    memset(&w, 0, sizeof w);
    w.conn = conn;
    w.deadline_ms = t0 + e->timeout_ms;
    atomic_init(&w.fired, 0);
    int watching = 0, have_res = 0, reusable = 1;
    duckdb_prepared_statement ps = NULL;
    duckdb_result res;
    enum tarn_sqlcheck_bound how = TARN_SQLCHECK_UNBOUNDED;
    tarn_buf capped; /* the user's text with the row cap appended */
    tarn_buf_init(&capped, e->max_sql + 64);

    /* The whole check happens before DuckDB prepares or runs the user's
     * text: binding already opens the files a table function or a path
     * names. The same text checked before, with no view changed since,
     * has its verdict kept. */
    int rc = TARN_OK, reused = query_verdict_find(e, sql, default_db, &how, &capped, &refs);
    if (!reused) {
        uint64_t gen = atomic_load(&e->reg_gen);
        rc = tarn_sqlcheck_statement_bounded(conn, &qc->serializer, sql, default_db, query_resolve, &refs, e->max_rows,
                                             &capped, &how, eb);
        if (!rc && refs.oom) rc = tarn_errbuf_set(eb, TARN_ENOMEM, "out of memory");
        if (!rc) query_verdict_keep(e, sql, default_db, gen, how, &capped, &refs);
    }
    if (rc) goto done;

    query_watch_add(e, &w);
    watching = 1;
    if (atomic_load(&e->cancelled)) {
        rc = query_stopping_error(eb, "not run");
        goto done;
    }
    if ((rc = query_use(qc, default_db, eb))) {
        /* USE itself may be what the watchdog interrupted. */
        if (atomic_load(&w.fired)) rc = query_fired_error(e, &w, eb);
        reusable = 0;
        goto done;
    }
    if (how != TARN_SQLCHECK_UNBOUNDED) {
        /* At most max_rows + 1 rows come back: one call, one bind. */
        have_res = 1;
        if (duckdb_query(conn, how == TARN_SQLCHECK_CAPPED ? capped.data : sql, &res) != DuckDBSuccess) {
            rc = query_duck_error(e, &w, duckdb_result_error(&res), eb);
            goto done;
        }
        /* The check and the parse of the capped text let one SELECT
         * through and nothing else; here that can only be confirmed. */
        if (duckdb_result_statement_type(res) != DUCKDB_STATEMENT_TYPE_SELECT) {
            rc = tarn_errbuf_set(eb, TARN_EDENIED, "only SELECT statements are allowed");
            goto done;
        }
    } else {
        if (duckdb_prepare(conn, sql, &ps) != DuckDBSuccess) {
            const char *m = duckdb_prepare_error(ps);
            rc = query_duck_error(e, &w, m ? m : "cannot prepare the statement", eb);
            goto done;
        }
        /* Belt and braces: the checker only lets SELECTs through. */
        if (duckdb_prepared_statement_type(ps) != DUCKDB_STATEMENT_TYPE_SELECT) {
            rc = tarn_errbuf_set(eb, TARN_EDENIED, "only SELECT statements are allowed");
            goto done;
        }
        have_res = 1;
        if (duckdb_execute_prepared_streaming(ps, &res) != DuckDBSuccess) {
            rc = query_duck_error(e, &w, duckdb_result_error(&res), eb);
            goto done;
        }
    }
    rc = query_encode(e, &res, &w, fmt, refs.bytes, t0, out, start, stats, eb);
    if (!rc && stats) stats->verdict_reused = reused;

done:
    if (have_res) duckdb_destroy_result(&res);
    duckdb_destroy_prepare(&ps);
    tarn_buf_free(&capped);
    if (watching) query_watch_remove(e, &w);
    /* An interrupt may still be pending on a connection the watchdog fired
     * on: never hand it to another query. */
    if (atomic_load(&w.fired)) reusable = 0;
    query_conn_give(e, qc, reusable);
    query_refs_free(&refs);
    if (rc) {
        /* Leave out as it was: no half result. */
        out->len = start;
        if (out->data) out->data[start] = '\0';
    }
    return rc;
}
