/* test_query.c - the query engine over a real catalog and real Parquet.
 *
 * Parquet files are written by a separate, plain (not hardened) DuckDB and
 * published in a real catalog; the engine under test only ever sees them
 * through the catalog, as in the server.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog/catalog.h"
#include "common/util.h"
#include "query/query.h"
#include "query/sqlcheck.h" /* includes duckdb.h */
#include "test.h"

static char *tmp;           /* test directory */
static char lake[512];      /* tmp/lake */
static char spill[512];     /* tmp/spill: qe's DuckDB temp_directory */
static tarn_catalog *cat;
static tarn_query_engine *qe;      /* default limits */
static tarn_query_engine *qe_tight; /* max_rows 2, timeout 50 ms, small SQL and result caps */
/* The same caps without the tight timeout, for what is not about time: on a
 * busy host 50 ms can pass before a cap is reached. */
static tarn_query_engine *qe_caps;
static duckdb_database plain_db;   /* writes the Parquet files */
static duckdb_connection plain;
static int64_t users_bytes;

/* ---- fixture helpers ---------------------------------------------------------- */

static int plain_exec(const char *sql)
{
    duckdb_result r;
    int ok = duckdb_query(plain, sql, &r) == DuckDBSuccess;
    if (!ok) printf("  plain duckdb: %s\n  in: %.300s\n", duckdb_result_error(&r), sql);
    duckdb_destroy_result(&r);
    return ok;
}

/* Writes SELECT sel as Snappy Parquet at lake/rel and returns its size. */
static int64_t write_parquet(const char *sel, const char *rel)
{
    char path[1024], dir[1024], sql[8192];
    snprintf(path, sizeof path, "%s/%s", lake, rel);
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = '\0';
    if (tarn_mkdir_p(dir, NULL)) return -1;
    snprintf(sql, sizeof sql, "COPY (%s) TO '%s' (FORMAT parquet, COMPRESSION snappy)", sel, path);
    if (!plain_exec(sql)) return -1;
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

/* Publishes one file (already written) with the given columns. */
static int publish(const char *db, const char *table, const tarn_column *cols, size_t ncols, const char *rel,
                   const char *partition, int64_t bytes, int64_t rows, int64_t seq)
{
    tarn_table_info t;
    tarn_errbuf eb = {{0}};
    int rc = tarn_catalog_ensure_table(cat, db, table, &t, &eb);
    if (rc) {
        printf("  ensure_table: %s\n", eb.msg);
        return rc;
    }
    tarn_file f = {(char *)rel, "processed", (char *)partition, seq, seq, rows, bytes, 0, 0};
    rc = tarn_catalog_publish(cat, t.id, cols, ncols, rel ? &f : NULL, rel ? 1 : 0, seq, &eb);
    if (rc) printf("  publish: %s\n", eb.msg);
    tarn_table_info_free(&t);
    return rc;
}

static tarn_column users_cols[] = {
    {"id", "BIGINT"},
    {"score", "DOUBLE"},
    {"name", "VARCHAR"},
    {"active", "BOOLEAN"},
    {"ts", "TIMESTAMP"},
    {"location", "STRUCT(country VARCHAR, city VARCHAR)"},
    {"tags", "VARCHAR[]"},
};

static int setup(void)
{
    tmp = test_tmpdir("query");
    if (!tmp) return 0;
    snprintf(lake, sizeof lake, "%s/lake", tmp);
    snprintf(spill, sizeof spill, "%s/spill", tmp);
    char path[1024];
    snprintf(path, sizeof path, "%s/catalog.db", tmp);
    tarn_errbuf eb = {{0}};
    if (tarn_catalog_open(path, &cat, &eb)) {
        printf("catalog: %s\n", eb.msg);
        return 0;
    }
    if (duckdb_open(NULL, &plain_db) != DuckDBSuccess || duckdb_connect(plain_db, &plain) != DuckDBSuccess) return 0;

    /* db.users: every common type, NULLs, quotes, two partitions. */
    const char *u1 =
        "SELECT * FROM (VALUES "
        "(1::BIGINT, 1.5::DOUBLE, 'Ann \"the\" Admin', true, TIMESTAMP '2025-11-25 10:00:00', "
        "  {'country': 'Norway', 'city': 'Oslo'}, ['a', 'b']), "
        "(2, NULL, '', false, TIMESTAMP '2025-11-25 10:00:00.5', {'country': 'Brazil', 'city': NULL}, []::VARCHAR[]), "
        "(4, 1e20, 'x,y' || chr(10) || 'z', true, TIMESTAMP '2025-11-25 23:59:59.123456', "
        "  {'country': 'Norway', 'city': 'Bergen'}, ['c', NULL])"
        ") v(id, score, name, active, ts, location, tags)";
    const char *u2 =
        "SELECT 3::BIGINT AS id, -0.25::DOUBLE AS score, NULL::VARCHAR AS name, NULL::BOOLEAN AS active, "
        "NULL::TIMESTAMP AS ts, NULL::STRUCT(country VARCHAR, city VARCHAR) AS location, NULL::VARCHAR[] AS tags";
    int64_t b1 = write_parquet(u1, "processed/db/users/ingestion_date=2025-11-25/1-3.parquet");
    int64_t b2 = write_parquet(u2, "processed/db/users/ingestion_date=2025-11-26/4-4.parquet");
    if (b1 < 0 || b2 < 0) return 0;
    users_bytes = b1 + b2;
    size_t nu = sizeof users_cols / sizeof users_cols[0];
    if (publish("db", "users", users_cols, nu, "processed/db/users/ingestion_date=2025-11-25/1-3.parquet",
                "ingestion_date=2025-11-25", b1, 3, 3))
        return 0;
    if (publish("db", "users", NULL, 0, "processed/db/users/ingestion_date=2025-11-26/4-4.parquet",
                "ingestion_date=2025-11-26", b2, 1, 4))
        return 0;

    /* db.wide: the schema widened between two files. v: BIGINT -> DOUBLE;
     * s: a struct field added; n: a struct that became VARCHAR (DuckDB's
     * union_by_name alone cannot read that); extra: a column only in the
     * newer file. */
    tarn_column w1[] = {{"v", "BIGINT"}, {"s", "STRUCT(a BIGINT)"}, {"n", "STRUCT(k BIGINT)"}};
    tarn_column w2[] = {{"v", "DOUBLE"}, {"s", "STRUCT(a BIGINT, b VARCHAR)"}, {"n", "VARCHAR"}, {"extra", "VARCHAR"}};
    int64_t wb1 = write_parquet("SELECT 7::BIGINT AS v, {'a': 1::BIGINT} AS s, {'k': 5::BIGINT} AS n",
                                "processed/db/wide/ingestion_date=2025-11-25/1-1.parquet");
    int64_t wb2 = write_parquet("SELECT 2.5::DOUBLE AS v, {'a': 2::BIGINT, 'b': 'x'} AS s, 'text' AS n, 'e' AS extra",
                                "processed/db/wide/ingestion_date=2025-11-25/2-2.parquet");
    if (wb1 < 0 || wb2 < 0) return 0;
    if (publish("db", "wide", w1, 3, "processed/db/wide/ingestion_date=2025-11-25/1-1.parquet",
                "ingestion_date=2025-11-25", wb1, 1, 1))
        return 0;
    if (publish("db", "wide", w2, 4, "processed/db/wide/ingestion_date=2025-11-25/2-2.parquet",
                "ingestion_date=2025-11-25", wb2, 1, 2))
        return 0;

    /* db.empty: columns, no files. */
    tarn_column e1[] = {{"a", "BIGINT"}, {"b", "VARCHAR"}};
    if (publish("db", "empty", e1, 2, NULL, NULL, 0, 0, 1)) return 0;

    /* other.big: enough rows that a self-join takes seconds. */
    tarn_column bc[] = {{"x", "BIGINT"}};
    int64_t bb = write_parquet("SELECT range::BIGINT AS x FROM range(200000)",
                               "processed/other/big/ingestion_date=2025-11-25/1-200000.parquet");
    if (bb < 0) return 0;
    if (publish("other", "big", bc, 1, "processed/other/big/ingestion_date=2025-11-25/1-200000.parquet",
                "ingestion_date=2025-11-25", bb, 200000, 200000))
        return 0;

    tarn_query_opts o = {lake, 2, "1GB", 0, 0, 0, 0, spill, (size_t)3 << 30};
    if (tarn_query_engine_open(&o, cat, &qe, &eb)) {
        printf("engine: %s\n", eb.msg);
        return 0;
    }
    tarn_query_opts t = {lake, 2, NULL, 50, 2, 4096, 3000, NULL, 0};
    if (tarn_query_engine_open(&t, cat, &qe_tight, &eb)) {
        printf("engine: %s\n", eb.msg);
        return 0;
    }
    t.timeout_ms = 60000;
    if (tarn_query_engine_open(&t, cat, &qe_caps, &eb)) {
        printf("engine: %s\n", eb.msg);
        return 0;
    }
    return 1;
}

static void teardown(void)
{
    tarn_query_engine_close(qe);
    tarn_query_engine_close(qe_tight);
    tarn_query_engine_close(qe_caps);
    tarn_catalog_close(cat);
    duckdb_disconnect(&plain);
    duckdb_close(&plain_db);
    tarn_rm_rf(tmp);
    free(tmp);
}

/* Runs sql; returns the code; *out gets the reply (caller frees). */
static int run(tarn_query_engine *e, const char *sql, const char *db, enum tarn_query_format fmt, char **out,
               tarn_errbuf *eb)
{
    tarn_buf b;
    tarn_buf_init(&b, 0);
    int rc = tarn_query_run(e, sql, db, fmt, &b, NULL, eb);
    if (rc) CHECK_EQ_INT(b.len, 0); /* nothing appended on failure */
    *out = tarn_buf_steal(&b);
    return rc;
}

/* The reply's "rows" as compact JSON text, or NULL. Frees nothing. */
static char *rows_of(const char *reply, json_t **root_out)
{
    json_error_t je;
    json_t *root = json_loads(reply, 0, &je);
    if (!root) {
        printf("  bad JSON reply (%s): %.300s\n", je.text, reply);
        return NULL;
    }
    *root_out = root;
    return json_dumps(json_object_get(root, "rows"), JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER);
}

/* Checks that sql succeeds and its rows are exactly want (compact JSON). */
static void expect_rows(tarn_query_engine *e, const char *sql, const char *db, const char *want, int line)
{
    char *out = NULL;
    tarn_errbuf eb = {{0}};
    int rc = run(e, sql, db, TARN_QUERY_JSON, &out, &eb);
    if (rc) {
        printf("  line %d: %s -> %s: %s\n", line, sql, tarn_err_name(rc), eb.msg);
        test__cur_failed = 1;
        free(out);
        return;
    }
    json_t *root = NULL;
    char *rows = rows_of(out, &root);
    if (!rows || strcmp(rows, want) != 0) {
        printf("  line %d: %s\n    got  %s\n    want %s\n", line, sql, rows ? rows : "(null)", want);
        test__cur_failed = 1;
    }
    free(rows);
    json_decref(root);
    free(out);
}
#define EXPECT_ROWS(sql, db, want) expect_rows(qe, sql, db, want, __LINE__)

static void expect_code(tarn_query_engine *e, const char *sql, const char *db, int code, const char *msg_part,
                        int line)
{
    char *out = NULL;
    tarn_errbuf eb = {{0}};
    int rc = run(e, sql, db, TARN_QUERY_JSON, &out, &eb);
    if (rc != code || (msg_part && !strstr(eb.msg, msg_part))) {
        printf("  line %d: %.200s\n    got %s (%s), want %s containing \"%s\"\n", line, sql, tarn_err_name(rc), eb.msg,
               tarn_err_name(code), msg_part ? msg_part : "");
        test__cur_failed = 1;
    }
    free(out);
}
#define EXPECT_CODE(sql, db, code, msg) expect_code(qe, sql, db, code, msg, __LINE__)

/* ---- tests -------------------------------------------------------------------- */

TEST(values_every_common_type)
{
    char *out = NULL;
    tarn_errbuf eb = {{0}};
    int rc = run(qe, "SELECT * FROM db.users ORDER BY id", NULL, TARN_QUERY_JSON, &out, &eb);
    if (rc) printf("  %s\n", eb.msg);
    REQUIRE(rc == 0);
    json_t *root = NULL;
    char *rows = rows_of(out, &root);
    REQUIRE(rows != NULL);
    CHECK_EQ_STR(rows,
                 "[[1,1.5,\"Ann \\\"the\\\" Admin\",true,\"2025-11-25 10:00:00\",{\"country\":\"Norway\",\"city\":\"Oslo\"},"
                 "[\"a\",\"b\"],\"2025-11-25\"],"
                 "[2,null,\"\",false,\"2025-11-25 10:00:00.5\",{\"country\":\"Brazil\",\"city\":null},[],\"2025-11-25\"],"
                 "[3,-0.25,null,null,null,null,null,\"2025-11-26\"],"
                 "[4,1e20,\"x,y\\nz\",true,\"2025-11-25 23:59:59.123456\",{\"country\":\"Norway\",\"city\":\"Bergen\"},"
                 "[\"c\",null],\"2025-11-25\"]]");
    char *cols = json_dumps(json_object_get(root, "columns"), JSON_COMPACT | JSON_PRESERVE_ORDER);
    CHECK_EQ_STR(cols, "[{\"name\":\"id\",\"type\":\"BIGINT\"},{\"name\":\"score\",\"type\":\"DOUBLE\"},"
                       "{\"name\":\"name\",\"type\":\"VARCHAR\"},{\"name\":\"active\",\"type\":\"BOOLEAN\"},"
                       "{\"name\":\"ts\",\"type\":\"TIMESTAMP\"},"
                       "{\"name\":\"location\",\"type\":\"STRUCT(country VARCHAR, city VARCHAR)\"},"
                       "{\"name\":\"tags\",\"type\":\"VARCHAR[]\"},{\"name\":\"ingestion_date\",\"type\":\"DATE\"}]");
    CHECK_EQ_INT(json_integer_value(json_object_get(root, "row_count")), 4);
    CHECK(json_is_false(json_object_get(root, "truncated")));
    CHECK_EQ_INT(json_integer_value(json_object_get(root, "bytes_scanned")), users_bytes);
    CHECK(json_is_integer(json_object_get(root, "elapsed_ms")));
    /* Key order is the documented one. */
    CHECK(strncmp(out, "{\"columns\":[", 12) == 0);
    CHECK(strstr(out, "],\"row_count\":4,\"truncated\":false,\"bytes_scanned\":") != NULL);
    CHECK(strstr(out, "[4,1e+20,") != NULL); /* as DuckDB prints it */
    free(cols);
    free(rows);
    json_decref(root);
    free(out);
}

TEST(struct_field_group_by)
{
    EXPECT_ROWS("SELECT location.country, COUNT(*) FROM db.users GROUP BY 1 ORDER BY 2 DESC, 1 NULLS LAST", NULL,
                "[[\"Norway\",2],[\"Brazil\",1],[null,1]]");
    EXPECT_ROWS("SELECT id, tags[1], len(tags) FROM db.users WHERE tags IS NOT NULL ORDER BY id", NULL,
                "[[1,\"a\",2],[2,null,0],[4,\"c\",2]]");
    EXPECT_ROWS("SELECT id FROM db.users WHERE list_contains(tags, 'b')", NULL, "[[1]]");
}

TEST(default_database)
{
    EXPECT_ROWS("SELECT count(*) FROM users", "db", "[[4]]");
    EXPECT_ROWS("SELECT count(*) FROM db.users", "other", "[[4]]");
    EXPECT_ROWS("SELECT count(*) FROM USERS", "DB", "[[4]]");
    EXPECT_CODE("SELECT count(*) FROM users", NULL, TARN_ENOTFOUND, "table 'users' not found");
    EXPECT_CODE("SELECT count(*) FROM users", "other", TARN_ENOTFOUND, "table 'users' not found");
    EXPECT_CODE("SELECT 1", "nope", TARN_ENOTFOUND, "database 'nope' not found");
}

/* Session settings the engine relies on hold on every query connection,
 * not only on the one that set them (main() runs with TZ=Asia/Tokyo). */
TEST(every_connection_has_the_engine_settings)
{
    for (int i = 0; i < 3; i++) {
        EXPECT_ROWS("SELECT current_setting('TimeZone')", NULL, "[[\"UTC\"]]");
        EXPECT_ROWS("SELECT current_setting('parquet_metadata_cache')", NULL, "[[true]]");
        EXPECT_ROWS("SELECT strftime(TIMESTAMPTZ '2025-11-25 10:00:00+00', '%H')", NULL, "[[\"10\"]]");
    }
}

/* The hardening DESIGN.md asks of DuckDB, on every query connection, and
 * where and how much it may spill (query.max_spill: 3 GiB here). The
 * SQL checker refuses file access before DuckDB sees it, so these settings
 * are the second line; they are read back here rather than trusted. */
TEST(every_connection_is_hardened)
{
    char want[2400];
    /* The spill directory is allowed too: DuckDB adds it. */
    snprintf(want, sizeof want, "[[false,true,false,false,false,[\"%s/\",\"%s/\"],\"%s\",\"3.0 GiB\"]]", lake, spill,
             spill);
    for (int i = 0; i < 3; i++)
        EXPECT_ROWS("SELECT current_setting('enable_external_access'), current_setting('lock_configuration'), "
                    "current_setting('autoload_known_extensions'), current_setting('autoinstall_known_extensions'), "
                    "current_setting('allow_community_extensions'), list_sort(current_setting('allowed_directories')), "
                    "current_setting('temp_directory'), current_setting('max_temp_directory_size')",
                    NULL, want);
}

/* A query larger than the memory limit spills into the engine's temp_dir
 * and completes. */
TEST(large_query_spills_into_temp_dir)
{
    char dir[600];
    snprintf(dir, sizeof dir, "%s/spill-small", tmp);
    tarn_query_opts o = {lake, 2, "64MB", 0, 0, 0, 0, dir, 0};
    tarn_query_engine *small = NULL;
    tarn_errbuf eb = {{0}};
    REQUIRE(tarn_query_engine_open(&o, cat, &small, &eb) == TARN_OK);
    /* 8 million distinct values: a hash table of several times 64 MB. */
    static const char *sql = "SELECT count(*) FROM (SELECT DISTINCT a.x * 100 + b.x AS v FROM other.big a, "
                             "other.big b WHERE b.x < 40)";
    expect_rows(small, sql, NULL, "[[8000000]]", __LINE__);
    struct stat st;
    CHECK(stat(dir, &st) == 0 && S_ISDIR(st.st_mode));
    tarn_query_engine_close(small);
}

/* What tarn_duck_open's hardening does on its own, below the SQL checker:
 * no file outside the allowed directories, no settings changed, no
 * extension installed or loaded, no database attached. */
TEST(duck_open_refuses_outside_access)
{
    const char *dirs[] = {lake};
    tarn_duck_opts o = {dirs, 1, 1, NULL, 0, NULL, 0};
    duckdb_database db = NULL;
    duckdb_connection conn = NULL;
    tarn_errbuf eb = {{0}};
    REQUIRE(tarn_duck_open(&o, &db, &conn, &eb) == TARN_OK);
    static const char *refused[] = {
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM '/etc/passwd'",
        "COPY (SELECT 1) TO '/tmp/tarn-duck-escape.csv'",
        "SET enable_external_access = true",
        "SET allowed_directories = ['/']",
        "SET lock_configuration = false",
        "INSTALL httpfs",
        "LOAD httpfs",
        "ATTACH '/tmp/tarn-duck-escape.duckdb' AS x",
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        int rc = tarn_duck_exec(conn, refused[i], TARN_ESQL, &eb);
        if (rc == TARN_OK) printf("  not refused: %s\n", refused[i]);
        CHECK_EQ_INT(rc, TARN_ESQL);
    }
    struct stat st;
    CHECK(stat("/tmp/tarn-duck-escape.csv", &st) != 0);
    CHECK(stat("/tmp/tarn-duck-escape.duckdb", &st) != 0);
    /* The lake itself stays readable. */
    char sql[1200];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM read_parquet('%s/processed/other/big/ingestion_date=2025-11-25/1-200000.parquet')",
             lake);
    CHECK_EQ_INT(tarn_duck_exec(conn, sql, TARN_ESQL, &eb), TARN_OK);
    duckdb_disconnect(&conn);
    duckdb_close(&db);
}

/* Connections are reused between queries: the default database of one must
 * not leak into the next. */
TEST(reused_connections_keep_no_default_database)
{
    for (int i = 0; i < 3; i++) {
        EXPECT_ROWS("SELECT current_schema()", "db", "[[\"db\"]]");
        EXPECT_ROWS("SELECT current_schema()", NULL, "[[\"main\"]]");
        EXPECT_ROWS("SELECT current_schema()", "other", "[[\"other\"]]");
        EXPECT_CODE("SELECT count(*) FROM users", NULL, TARN_ENOTFOUND, "table 'users' not found");
        EXPECT_ROWS("SELECT count(*) FROM users", "db", "[[4]]");
        EXPECT_CODE("SELECT count(*) FROM users", "other", TARN_ENOTFOUND, "table 'users' not found");
    }
}

TEST(csv_format)
{
    char *out = NULL;
    tarn_errbuf eb = {{0}};
    int rc = run(qe, "SELECT id, name, score, active AS \"act\"\"ive\", tags, location FROM db.users ORDER BY id", NULL,
                 TARN_QUERY_CSV, &out, &eb);
    if (rc) printf("  %s\n", eb.msg);
    REQUIRE(rc == 0);
    CHECK_EQ_STR(out, "\"id\",\"name\",\"score\",\"act\"\"ive\",\"tags\",\"location\"\n"
                      "\"1\",\"Ann \"\"the\"\" Admin\",\"1.5\",\"true\",\"[\"\"a\"\",\"\"b\"\"]\","
                      "\"{\"\"country\"\":\"\"Norway\"\",\"\"city\"\":\"\"Oslo\"\"}\"\n"
                      "\"2\",\"\",,\"false\",\"[]\",\"{\"\"country\"\":\"\"Brazil\"\",\"\"city\"\":null}\"\n"
                      "\"3\",,\"-0.25\",,,\n"
                      "\"4\",\"x,y\nz\",\"1e+20\",\"true\",\"[\"\"c\"\",null]\","
                      "\"{\"\"country\"\":\"\"Norway\"\",\"\"city\"\":\"\"Bergen\"\"}\"\n");
    free(out);
    /* Nested values holding non-string scalars, in both formats. */
    rc = run(qe,
             "SELECT {'t': TIMESTAMP '2025-01-01 01:02:03', 'd': 1.25::DECIMAL(4,2), 'b': '\\xAA'::BLOB, "
             "'m': MAP {MAP {'k': DATE '2025-01-02'}: ['x']}} AS s",
             NULL, TARN_QUERY_CSV, &out, &eb);
    if (rc) printf("  %s\n", eb.msg);
    CHECK_EQ_STR(out, "\"s\"\n\"{\"\"t\"\":\"\"2025-01-01 01:02:03\"\",\"\"d\"\":\"\"1.25\"\",\"\"b\"\":\"\"\\\\xAA\"\","
                      "\"\"m\"\":{\"\"{\\\"\"k\\\"\":\\\"\"2025-01-02\\\"\"}\"\":[\"\"x\"\"]}}\"\n");
    free(out);
    /* An empty result is the header alone. */
    rc = run(qe, "SELECT a, b FROM db.empty", NULL, TARN_QUERY_CSV, &out, &eb);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_STR(out, "\"a\",\"b\"\n");
    free(out);
}

TEST(empty_table_has_typed_columns)
{
    char *out = NULL;
    tarn_errbuf eb = {{0}};
    int rc = run(qe, "SELECT * FROM db.empty", NULL, TARN_QUERY_JSON, &out, &eb);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_STR(out != NULL && strstr(out, "{\"columns\":[{\"name\":\"a\",\"type\":\"BIGINT\"},{\"name\":\"b\",\"type\":\"VARCHAR\"}],"
                                            "\"rows\":[],\"row_count\":0,\"truncated\":false,\"bytes_scanned\":0,")
                     ? "ok" : out,
                 "ok");
    free(out);
}

TEST(schema_widening_across_files)
{
    EXPECT_ROWS("SELECT v, s, n, extra, typeof(v), typeof(s), typeof(n) FROM db.wide ORDER BY v", NULL,
                "[[2.5,{\"a\":2,\"b\":\"x\"},\"text\",\"e\",\"DOUBLE\",\"STRUCT(a BIGINT, b VARCHAR)\",\"VARCHAR\"],"
                "[7.0,{\"a\":1,\"b\":null},\"{\\\"k\\\":5}\",null,\"DOUBLE\",\"STRUCT(a BIGINT, b VARCHAR)\",\"VARCHAR\"]]");
    EXPECT_ROWS("SELECT s.b, count(*) FROM db.wide GROUP BY ALL ORDER BY 1 NULLS FIRST", NULL, "[[null,1],[\"x\",1]]");
}

/* bytes_scanned: the live files of each table referenced, counted once. */
static int64_t bytes_of(const char *sql)
{
    char *out = NULL;
    tarn_errbuf eb = {{0}};
    int rc = run(qe, sql, NULL, TARN_QUERY_JSON, &out, &eb);
    json_t *root = rc ? NULL : json_loads(out, 0, NULL);
    int64_t b = root ? (int64_t)json_integer_value(json_object_get(root, "bytes_scanned")) : -1;
    json_decref(root);
    free(out);
    return b;
}

TEST(bytes_scanned_counts_referenced_tables)
{
    CHECK_EQ_INT(bytes_of("SELECT 1"), 0);
    CHECK_EQ_INT(bytes_of("SELECT count(*) FROM db.users a JOIN db.users b USING (id)"), users_bytes);
    CHECK_EQ_INT(bytes_of("WITH u AS (SELECT id FROM db.users) SELECT count(*) FROM u, u AS v"), users_bytes);
    int64_t wide = bytes_of("SELECT count(*) FROM db.wide");
    CHECK(wide > 0);
    CHECK_EQ_INT(bytes_of("SELECT (SELECT count(*) FROM db.users), (SELECT count(*) FROM db.wide)"), users_bytes + wide);
    CHECK_EQ_INT(bytes_of("SELECT count(*) FROM db.empty"), 0);
}

TEST(partition_column_in_where)
{
    EXPECT_ROWS("SELECT id FROM db.users WHERE ingestion_date = '2025-11-26'", NULL, "[[3]]");
    EXPECT_ROWS("SELECT ingestion_date, count(*) FROM db.users WHERE ingestion_date >= DATE '2025-11-25' "
                "GROUP BY 1 ORDER BY 1",
                NULL, "[[\"2025-11-25\",3],[\"2025-11-26\",1]]");
}

/* Replaces the file at lake/rel with bytes that are no Parquet file (or, with
 * sel, writes it again): a query that opens it fails. */
static int spoil(const char *rel, const char *sel)
{
    if (sel) return write_parquet(sel, rel) > 0;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", lake, rel);
    FILE *f = fopen(path, "w");
    if (!f) return 0;
    fputs("not a parquet file", f);
    return fclose(f) == 0;
}

/* A filter on the partition column keeps DuckDB from opening the other
 * partitions' files, in every schema version's branch of the view: the
 * files of 2025-11-27 and 2025-11-29 are spoiled after the view is built,
 * and only queries that must read them fail. */
TEST(partition_filter_prunes_files)
{
    static const char *rel[] = {"processed/prune/days/ingestion_date=2025-11-25/1-2.parquet",
                                "processed/prune/days/ingestion_date=2025-11-26/3-4.parquet",
                                "processed/prune/days/ingestion_date=2025-11-27/5-6.parquet",
                                "processed/prune/days/ingestion_date=2025-11-28/7-8.parquet",
                                "processed/prune/days/ingestion_date=2025-11-29/9-10.parquet"};
    /* Versions 1 (k BIGINT) and 2 (k DOUBLE, note added): two branches. */
    static const char *sel[] = {"SELECT range::BIGINT + 1 AS k FROM range(2)",
                                "SELECT range::BIGINT + 3 AS k FROM range(2)",
                                "SELECT range::BIGINT + 5 AS k FROM range(2)",
                                "SELECT range::DOUBLE + 7.5 AS k, 'n' AS note FROM range(2)",
                                "SELECT range::DOUBLE + 9.5 AS k, 'n' AS note FROM range(2)"};
    tarn_column v1[] = {{"k", "BIGINT"}}, v2[] = {{"k", "DOUBLE"}, {"note", "VARCHAR"}};
    for (int i = 0; i < 5; i++) {
        int64_t b = write_parquet(sel[i], rel[i]);
        REQUIRE(b > 0);
        char part[64];
        snprintf(part, sizeof part, "ingestion_date=2025-11-%d", 25 + i);
        REQUIRE(publish("prune", "days", i < 3 ? v1 : v2, i < 3 ? 1 : 2, rel[i], part, b, 2, 2 * i + 2) == 0);
    }
    tarn_errbuf eb = {{0}};
    REQUIRE(tarn_query_refresh_table(qe, "prune", "days", &eb) == 0);
    EXPECT_ROWS("SELECT count(*), sum(k) FROM prune.days", NULL, "[[10,57.0]]");
    REQUIRE(spoil(rel[2], NULL) && spoil(rel[4], NULL));

    /* Not pruned: every file is read, the spoiled ones too. */
    EXPECT_CODE("SELECT count(*) FROM prune.days", NULL, TARN_ESQL, "/prune/days/ingestion_date=2025-11-2");
    EXPECT_CODE("SELECT count(*) FROM prune.days WHERE k = 1", NULL, TARN_ESQL, NULL);
    /* Pruned: equality, a range, IN, a DATE literal; one branch or both. */
    EXPECT_ROWS("SELECT count(*), sum(k) FROM prune.days WHERE ingestion_date = '2025-11-25'", NULL, "[[2,3.0]]");
    EXPECT_ROWS("SELECT k FROM prune.days WHERE ingestion_date = DATE '2025-11-26' ORDER BY k", NULL,
                "[[3.0],[4.0]]");
    EXPECT_ROWS("SELECT count(*) FROM prune.days WHERE ingestion_date < '2025-11-27'", NULL, "[[4]]");
    EXPECT_ROWS("SELECT count(*), min(k), max(note) FROM prune.days WHERE ingestion_date IN ('2025-11-25', '2025-11-28')",
                NULL, "[[4,1.0,\"n\"]]");
    EXPECT_ROWS("SELECT ingestion_date, count(*) FROM prune.days WHERE ingestion_date <> '2025-11-27' "
                "AND ingestion_date <> '2025-11-29' GROUP BY 1 ORDER BY 1",
                NULL, "[[\"2025-11-25\",2],[\"2025-11-26\",2],[\"2025-11-28\",2]]");
    REQUIRE(spoil(rel[2], sel[2]) && spoil(rel[4], sel[4]));
    EXPECT_ROWS("SELECT count(*), sum(k) FROM prune.days", NULL, "[[10,57.0]]");
}

TEST(ctes_and_safe_forms)
{
    EXPECT_ROWS("WITH u AS (SELECT * FROM db.users WHERE active) SELECT count(*) FROM u", NULL, "[[2]]");
    EXPECT_ROWS("WITH a AS (SELECT id FROM users), b AS (SELECT * FROM a WHERE id > 1) SELECT count(*) FROM b", "db",
                "[[3]]");
    EXPECT_ROWS("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 4) SELECT sum(n) FROM r", NULL,
                "[[\"10\"]]"); /* SUM of integers is a HUGEINT: a string */
    EXPECT_ROWS("SELECT (SELECT max(id) FROM db.users), (SELECT count(*) FROM db.wide)", NULL, "[[4,2]]");
    EXPECT_ROWS("SELECT count(*) FROM db.users a JOIN db.users b USING (id)", NULL, "[[4]]");
    EXPECT_ROWS("FROM db.users SELECT id ORDER BY id DESC LIMIT 1", NULL, "[[4]]");
    EXPECT_ROWS("VALUES (1, 'a'), (2, 'b')", NULL, "[[1,\"a\"],[2,\"b\"]]");
    EXPECT_ROWS("SELECT id FROM db.users WHERE id = 1 UNION ALL SELECT 9 ORDER BY 1", NULL, "[[1],[9]]");
    EXPECT_ROWS("SELECT * FROM (SELECT 1 AS a, 2 AS b) PIVOT (sum(b) FOR a IN (1))", NULL, "[[\"2\"]]");
    EXPECT_ROWS("SELECT count(*) FROM memory.db.users", NULL, "[[4]]");
}

TEST(describe_summarize_show_are_not_selects)
{
    EXPECT_CODE("DESCRIBE db.wide", NULL, TARN_EDENIED, "only SELECT");
    EXPECT_CODE("SUMMARIZE db.wide", NULL, TARN_EDENIED, "only SELECT");
    EXPECT_CODE("SELECT column_name FROM (DESCRIBE SELECT id, name FROM db.users)", NULL, TARN_EDENIED, "only SELECT");
    EXPECT_CODE("SHOW TABLES", NULL, TARN_EDENIED, "");
}

TEST(refused_before_anything_runs)
{
    char copy[1024];
    snprintf(copy, sizeof copy, "COPY (SELECT 1) TO '%s/processed/leak.csv'", lake);
    EXPECT_CODE(copy, NULL, TARN_EDENIED, "only SELECT");
    char leak[1024];
    snprintf(leak, sizeof leak, "%s/processed/leak.csv", lake);
    CHECK(access(leak, F_OK) != 0);
    char attach[1024];
    snprintf(attach, sizeof attach, "ATTACH '%s/x.duckdb' AS x", lake);
    EXPECT_CODE(attach, NULL, TARN_EDENIED, "only SELECT");
    EXPECT_CODE("INSTALL httpfs", NULL, TARN_EDENIED, "only SELECT");
    EXPECT_CODE("LOAD httpfs", NULL, TARN_EDENIED, "only SELECT");
    EXPECT_CODE("SET threads = 1", NULL, TARN_EDENIED, "only SELECT");
    EXPECT_CODE("PRAGMA version", NULL, TARN_EDENIED, NULL);
    EXPECT_CODE("CREATE TABLE t AS SELECT 1", NULL, TARN_EDENIED, "only SELECT");
    EXPECT_CODE("CREATE VIEW db.v AS SELECT 1", NULL, TARN_EDENIED, "only SELECT");
    EXPECT_CODE("INSERT INTO db.users (id) VALUES (1)", NULL, TARN_EDENIED, "only SELECT");
    EXPECT_CODE("DELETE FROM db.users", NULL, TARN_EDENIED, "only SELECT");
    EXPECT_CODE("EXPLAIN SELECT 1", NULL, TARN_EDENIED, NULL);
    EXPECT_CODE("CALL duckdb_settings()", NULL, TARN_EDENIED, NULL);
    EXPECT_CODE("SHOW TABLES", NULL, TARN_EDENIED, "SHOW");
    EXPECT_CODE("SELECT 1; SELECT 2", NULL, TARN_EDENIED, "only one statement");
    EXPECT_CODE("SELECT 1; DROP VIEW db.users", NULL, TARN_EDENIED, "only one statement");
    /* Nothing at the end of a text turns the appended LIMIT into more. */
    EXPECT_CODE("SELECT 1; DROP VIEW db.users --", NULL, TARN_EDENIED, "only one statement");
    EXPECT_CODE("SELECT 1; DROP VIEW db.users;", NULL, TARN_EDENIED, "only one statement");
    EXPECT_CODE("SELECT 1 --\n; DROP VIEW db.users", NULL, TARN_EDENIED, "only one statement");
    EXPECT_CODE("SELECT 1 /*", NULL, TARN_ESQL, NULL);
    EXPECT_CODE("SELECT * FROM read_csv('/etc/passwd')", NULL, TARN_EDENIED, "table functions are not allowed: read_csv");
    EXPECT_CODE("SELECT * FROM '/etc/passwd'", NULL, TARN_EDENIED, "file paths are not allowed");
    EXPECT_CODE("SELECT * FROM \"data.parquet\"", NULL, TARN_EDENIED, "file paths are not allowed");
    char raw[1024];
    snprintf(raw, sizeof raw, "SELECT * FROM '%s/processed/db/users/ingestion_date=2025-11-26/4-4.parquet'", lake);
    EXPECT_CODE(raw, NULL, TARN_EDENIED, "file paths are not allowed");
    EXPECT_CODE("SELECT * FROM db.users WHERE id IN (SELECT 1 FROM read_csv('/etc/passwd'))", NULL, TARN_EDENIED,
                "read_csv");
    EXPECT_CODE("SELECT (SELECT count(*) FROM read_text('/etc/passwd'))", NULL, TARN_EDENIED, "read_text");
    EXPECT_CODE("WITH x AS (SELECT * FROM read_parquet('/tmp/x.parquet')) SELECT * FROM x", NULL, TARN_EDENIED,
                "read_parquet");
    EXPECT_CODE("SELECT * FROM db.users u JOIN glob('/*') g ON true", NULL, TARN_EDENIED, "glob");
    EXPECT_CODE("SELECT * FROM db.users, LATERAL (SELECT * FROM read_blob('/etc/passwd'))", NULL, TARN_EDENIED,
                "read_blob");
    EXPECT_CODE("SELECT * FROM db.users LIMIT (SELECT count(*) FROM range(3))", NULL, TARN_EDENIED, "range");
    EXPECT_CODE("SELECT * FROM duckdb_settings()", NULL, TARN_EDENIED, "duckdb_settings");
    EXPECT_CODE("SELECT * FROM query('SELECT 1')", NULL, TARN_EDENIED, "query");
    EXPECT_CODE("SELECT * FROM db.users, unnest([1])", NULL, TARN_EDENIED, "unnest");
    EXPECT_CODE("SELECT * FROM information_schema.tables", NULL, TARN_ENOTFOUND, "not found");
    EXPECT_CODE("SELECT * FROM pg_catalog.pg_tables", NULL, TARN_ENOTFOUND, "not found");
    EXPECT_CODE("SELECT * FROM duckdb_tables", NULL, TARN_ENOTFOUND, "not found");
    EXPECT_CODE("SELECT * FROM system.main.duckdb_tables", NULL, TARN_ENOTFOUND, "not found");
    EXPECT_CODE("SELECT * FROM temp.main.x", NULL, TARN_ENOTFOUND, "not found");
    EXPECT_CODE("SELECT * FROM db.nope", NULL, TARN_ENOTFOUND, "table 'db.nope' not found");
    EXPECT_CODE("SELECT * FROM nope.users", NULL, TARN_ENOTFOUND, "not found");
    EXPECT_CODE("SELEC 1", NULL, TARN_ESQL, "syntax error");
    EXPECT_CODE("", NULL, TARN_ESQL, NULL);
    EXPECT_CODE("SELECT no_such_column FROM db.users", NULL, TARN_ESQL, NULL);
    /* A table function called as a scalar is a bind error, nothing read. */
    EXPECT_CODE("SELECT read_text('/etc/passwd')", NULL, TARN_ESQL, NULL);
    /* Errors while rows stream are reported, not a partial result. */
    EXPECT_CODE("SELECT CAST('x' || id AS INTEGER) FROM db.users", NULL, TARN_ESQL, "Conversion");
    EXPECT_CODE("SELECT id, error('boom ' || id) FROM db.users", NULL, TARN_ESQL, "boom");
}

TEST(deep_nesting_is_refused_cleanly)
{
    /* Deep enough to exceed the parse-tree limits, not the stack. */
    size_t depth = 600, cap = depth * 32 + 64;
    char *sql = malloc(cap);
    REQUIRE(sql != NULL);
    size_t n = 0;
    for (size_t i = 0; i < depth; i++) n += (size_t)snprintf(sql + n, cap - n, "SELECT * FROM (");
    n += (size_t)snprintf(sql + n, cap - n, "SELECT 1");
    for (size_t i = 0; i < depth; i++) n += (size_t)snprintf(sql + n, cap - n, ")");
    char *out = NULL;
    tarn_errbuf eb = {{0}};
    int rc = run(qe, sql, NULL, TARN_QUERY_JSON, &out, &eb);
    CHECK(rc == TARN_ETOOBIG || rc == TARN_ESQL);
    free(out);
    /* A moderately nested one works. */
    n = 0;
    for (size_t i = 0; i < 20; i++) n += (size_t)snprintf(sql + n, cap - n, "SELECT * FROM (");
    n += (size_t)snprintf(sql + n, cap - n, "SELECT count(*) FROM db.users");
    for (size_t i = 0; i < 20; i++) n += (size_t)snprintf(sql + n, cap - n, ")");
    expect_rows(qe, sql, NULL, "[[4]]", __LINE__);
    free(sql);
}

TEST(cte_scoping_is_not_a_loophole)
{
    /* Each name below would reach DuckDB's search path (a system view) if
     * the checker took it for a CTE where DuckDB does not. */
    EXPECT_CODE("WITH duckdb_tables AS (SELECT * FROM duckdb_tables) SELECT * FROM duckdb_tables", NULL, TARN_ENOTFOUND,
                "duckdb_tables");
    EXPECT_CODE("WITH a AS (SELECT * FROM duckdb_views), duckdb_views AS (SELECT 1) SELECT * FROM a", NULL,
                TARN_ENOTFOUND, "duckdb_views");
    EXPECT_CODE("SELECT * FROM (WITH duckdb_tables AS (SELECT 1) SELECT * FROM duckdb_tables), duckdb_tables", NULL,
                TARN_ENOTFOUND, "duckdb_tables");
    EXPECT_CODE("WITH RECURSIVE duckdb_tables AS (SELECT * FROM duckdb_tables UNION ALL SELECT * FROM duckdb_tables) "
                "SELECT 1",
                NULL, TARN_ENOTFOUND, "duckdb_tables");
    EXPECT_CODE("WITH x AS (SELECT 1) SELECT * FROM \"x.csv\"", NULL, TARN_EDENIED, "file paths");
    EXPECT_CODE("WITH \"/etc/passwd\" AS (SELECT 1) SELECT * FROM \"/etc/passwd\"", NULL, TARN_EDENIED, "file paths");
    /* And the valid cases of the same shapes work. */
    EXPECT_ROWS("WITH x AS (SELECT 1 AS v) SELECT (SELECT v FROM x), * FROM (SELECT * FROM X)", NULL, "[[1,1]]");
}

TEST(truncation_and_limits)
{
    char *out = NULL;
    tarn_errbuf eb = {{0}};
    int rc = run(qe_caps, "SELECT id FROM db.users ORDER BY id", NULL, TARN_QUERY_JSON, &out, &eb);
    CHECK_EQ_INT(rc, 0);
    json_t *root = NULL;
    char *rows = out ? rows_of(out, &root) : NULL;
    CHECK_EQ_STR(rows, "[[1],[2]]");
    CHECK(json_is_true(json_object_get(root, "truncated")));
    CHECK_EQ_INT(json_integer_value(json_object_get(root, "row_count")), 2);
    free(rows);
    json_decref(root);
    free(out);
    /* The stats say the same, for CSV too (the HTTP layer sends them as headers). */
    tarn_buf csv;
    tarn_buf_init(&csv, 0);
    tarn_query_stats st;
    memset(&st, 0, sizeof st);
    CHECK_EQ_INT(tarn_query_run(qe_caps, "SELECT id FROM db.users ORDER BY id", NULL, TARN_QUERY_CSV, &csv, &st, &eb), 0);
    CHECK_EQ_STR(csv.data, "\"id\"\n\"1\"\n\"2\"\n");
    CHECK_EQ_INT(st.row_count, 2);
    CHECK_EQ_INT(st.truncated, 1);
    CHECK(st.bytes_scanned > 0);
    tarn_buf_free(&csv);
    /* Exactly max_rows rows is not truncated. */
    rc = run(qe_caps, "SELECT id FROM db.users ORDER BY id LIMIT 2", NULL, TARN_QUERY_JSON, &out, &eb);
    CHECK(rc == 0 && strstr(out, "\"truncated\":false"));
    free(out);
    /* SQL text and result size caps. */
    char big[5000];
    memset(big, ' ', sizeof big);
    memcpy(big, "SELECT 1", 8);
    big[sizeof big - 1] = '\0';
    expect_code(qe_caps, big, NULL, TARN_ETOOBIG, "SQL text", __LINE__);
    expect_code(qe_caps, "SELECT repeat('x', 5000)", NULL, TARN_ETOOBIG, "result larger", __LINE__);
}

/* ---- the row cap: one bind with LIMIT max_rows + 1, or the fallback -------- */

static int accept_any_table(void *ctx, const char *db, const char *table)
{
    (void)ctx, (void)db, (void)table;
    return 1;
}

static duckdb_prepared_statement bound_serializer; /* reused, as a pooled connection does */

/* How the checker bounds sql with a cap of 2 rows; *text gets the capped text. */
static enum tarn_sqlcheck_bound bound_of(const char *sql, char **text)
{
    tarn_buf capped;
    tarn_buf_init(&capped, 1 << 16);
    enum tarn_sqlcheck_bound how = (enum tarn_sqlcheck_bound)-1;
    tarn_errbuf eb = {{0}};
    int rc = tarn_sqlcheck_statement_bounded(plain, &bound_serializer, sql, "db", accept_any_table, NULL, 2, &capped,
                                             &how, &eb);
    if (rc) printf("  %s: %s\n", sql, eb.msg);
    *text = how == TARN_SQLCHECK_CAPPED ? tarn_buf_steal(&capped) : NULL;
    tarn_buf_free(&capped);
    return rc ? (enum tarn_sqlcheck_bound)-1 : how;
}

static void expect_bound(const char *sql, enum tarn_sqlcheck_bound want, const char *want_text, int line)
{
    char *text = NULL;
    enum tarn_sqlcheck_bound how = bound_of(sql, &text);
    if (how != want || (want_text && (!text || strcmp(text, want_text) != 0))) {
        printf("  line %d: %s\n    got bound %d text %s, want %d %s\n", line, sql, (int)how, text ? text : "(none)",
               (int)want, want_text ? want_text : "");
        test__cur_failed = 1;
    }
    free(text);
}
#define EXPECT_BOUND(sql, want, text) expect_bound(sql, want, text, __LINE__)

TEST(row_cap_forms_of_the_statement)
{
    /* Capped: the text as written, plus the cap + 1 on a line of its own. */
    EXPECT_BOUND("SELECT id FROM users", TARN_SQLCHECK_CAPPED, "SELECT id FROM users\nLIMIT 3");
    EXPECT_BOUND("SELECT id FROM users ORDER BY id DESC", TARN_SQLCHECK_CAPPED,
                 "SELECT id FROM users ORDER BY id DESC\nLIMIT 3");
    EXPECT_BOUND("SELECT id FROM users;", TARN_SQLCHECK_CAPPED, "SELECT id FROM users\nLIMIT 3");
    EXPECT_BOUND("SELECT id FROM users ; \n\t;\n", TARN_SQLCHECK_CAPPED, "SELECT id FROM users\nLIMIT 3");
    EXPECT_BOUND("SELECT id FROM users -- the ids", TARN_SQLCHECK_CAPPED, "SELECT id FROM users -- the ids\nLIMIT 3");
    EXPECT_BOUND("SELECT id FROM users /* the ids */", TARN_SQLCHECK_CAPPED,
                 "SELECT id FROM users /* the ids */\nLIMIT 3");
    EXPECT_BOUND("SELECT 1 AS a, 2 AS a", TARN_SQLCHECK_CAPPED, "SELECT 1 AS a, 2 AS a\nLIMIT 3");
    EXPECT_BOUND("WITH u AS (SELECT id FROM users LIMIT 10) SELECT * FROM u", TARN_SQLCHECK_CAPPED, NULL);
    EXPECT_BOUND("SELECT id FROM users UNION ALL SELECT 9 ORDER BY 1", TARN_SQLCHECK_CAPPED, NULL);
    EXPECT_BOUND("SELECT * FROM (SELECT id FROM users LIMIT 1)", TARN_SQLCHECK_CAPPED, NULL);
    EXPECT_BOUND("SELECT DISTINCT id FROM users", TARN_SQLCHECK_CAPPED, NULL);
    EXPECT_BOUND("FROM users", TARN_SQLCHECK_CAPPED, NULL);
    EXPECT_BOUND("VALUES (1), (2), (3)", TARN_SQLCHECK_CAPPED, NULL);
    /* A constant LIMIT within the cap: run as written. */
    EXPECT_BOUND("SELECT id FROM users LIMIT 2", TARN_SQLCHECK_OWN_LIMIT, NULL);
    EXPECT_BOUND("SELECT id FROM users LIMIT 0", TARN_SQLCHECK_OWN_LIMIT, NULL);
    EXPECT_BOUND("SELECT id FROM users LIMIT 1 OFFSET 5", TARN_SQLCHECK_OWN_LIMIT, NULL);
    EXPECT_BOUND("SELECT id FROM users ORDER BY id FETCH FIRST 2 ROWS ONLY", TARN_SQLCHECK_OWN_LIMIT, NULL);
    EXPECT_BOUND("(SELECT id FROM users LIMIT 1) ORDER BY id", TARN_SQLCHECK_OWN_LIMIT, NULL);
    /* Everything else streams and stops reading at the cap. */
    EXPECT_BOUND("SELECT id FROM users LIMIT 3", TARN_SQLCHECK_UNBOUNDED, NULL);
    EXPECT_BOUND("SELECT id FROM users LIMIT 1 + 1", TARN_SQLCHECK_UNBOUNDED, NULL);
    EXPECT_BOUND("SELECT id FROM users LIMIT 2::BIGINT", TARN_SQLCHECK_UNBOUNDED, NULL);
    EXPECT_BOUND("SELECT id FROM users LIMIT 2.0", TARN_SQLCHECK_UNBOUNDED, NULL);
    EXPECT_BOUND("SELECT id FROM users LIMIT NULL", TARN_SQLCHECK_UNBOUNDED, NULL);
    EXPECT_BOUND("SELECT id FROM users LIMIT ALL", TARN_SQLCHECK_UNBOUNDED, NULL);
    EXPECT_BOUND("SELECT id FROM users LIMIT 50%", TARN_SQLCHECK_UNBOUNDED, NULL);
    EXPECT_BOUND("SELECT id FROM users OFFSET 1", TARN_SQLCHECK_UNBOUNDED, NULL);
    EXPECT_BOUND("SELECT id FROM users LIMIT (SELECT 1)", TARN_SQLCHECK_UNBOUNDED, NULL);
    /* The capped text would hold two statements: not used. */
    EXPECT_BOUND("SELECT id FROM users; -- the ids", TARN_SQLCHECK_UNBOUNDED, NULL);
    /* No cap: nothing to bound. */
    tarn_buf capped;
    tarn_buf_init(&capped, 1 << 16);
    enum tarn_sqlcheck_bound how = TARN_SQLCHECK_CAPPED;
    tarn_errbuf eb = {{0}};
    CHECK_EQ_INT(tarn_sqlcheck_statement_bounded(plain, NULL, "SELECT 1", NULL, accept_any_table, NULL, 0, &capped,
                                                 &how, &eb),
                 0);
    CHECK_EQ_INT(how, TARN_SQLCHECK_UNBOUNDED);
    /* A refused statement is refused whatever its bound. */
    CHECK_EQ_INT(tarn_sqlcheck_statement_bounded(plain, NULL, "SELECT * FROM read_csv('/etc/passwd')", NULL,
                                                 accept_any_table, NULL, 2, &capped, &how, &eb),
                 TARN_EDENIED);
    CHECK_EQ_INT(tarn_sqlcheck_statement_bounded(plain, NULL, "SELECT 1; SELECT 2", NULL, accept_any_table, NULL, 2,
                                                 &capped, &how, &eb),
                 TARN_EDENIED);
    tarn_buf_free(&capped);
    duckdb_destroy_prepare(&bound_serializer);
}

/* Runs sql on qe_caps (max_rows 2) and checks rows, truncated and the
 * column names. */
static void expect_capped(const char *sql, const char *want_rows, int want_truncated, const char *want_names, int line)
{
    char *out = NULL;
    tarn_errbuf eb = {{0}};
    int rc = run(qe_caps, sql, NULL, TARN_QUERY_JSON, &out, &eb);
    json_t *root = NULL;
    char *rows = rc ? NULL : rows_of(out, &root);
    tarn_buf names;
    tarn_buf_init(&names, 0);
    size_t i;
    json_t *col;
    json_array_foreach(json_object_get(root, "columns"), i, col) {
        if (i) tarn_buf_append_char(&names, ',');
        tarn_buf_append_str(&names, json_string_value(json_object_get(col, "name")));
    }
    int truncated = json_is_true(json_object_get(root, "truncated"));
    int64_t count = json_integer_value(json_object_get(root, "row_count"));
    if (rc || !rows || strcmp(rows, want_rows) != 0 || truncated != want_truncated ||
        count != (int64_t)json_array_size(json_object_get(root, "rows")) ||
        (want_names && strcmp(names.data ? names.data : "", want_names) != 0)) {
        printf("  line %d: %s\n    got  %s %s truncated %d row_count %lld columns %s\n    want %s truncated %d "
               "columns %s\n",
               line, sql, rc ? tarn_err_name(rc) : "", rc ? eb.msg : rows, truncated, (long long)count,
               names.data ? names.data : "", want_rows, want_truncated, want_names ? want_names : "(any)");
        test__cur_failed = 1;
    }
    tarn_buf_free(&names);
    free(rows);
    json_decref(root);
    free(out);
}
#define EXPECT_CAPPED(sql, rows, truncated, names) expect_capped(sql, rows, truncated, names, __LINE__)

TEST(row_cap_results)
{
    /* Capped (LIMIT 3 appended): cap + 1 rows exist, then exactly cap. */
    EXPECT_CAPPED("SELECT id FROM db.users WHERE id <= 3 ORDER BY id", "[[1],[2]]", 1, "id");
    EXPECT_CAPPED("SELECT id FROM db.users WHERE id <= 2 ORDER BY id", "[[1],[2]]", 0, "id");
    EXPECT_CAPPED("SELECT id FROM db.users WHERE id > 9", "[]", 0, "id");
    /* ORDER BY decides which rows are kept, in its order. */
    EXPECT_CAPPED("SELECT id FROM db.users ORDER BY id DESC", "[[4],[3]]", 1, "id");
    EXPECT_CAPPED("SELECT name, id FROM db.users ORDER BY score DESC NULLS LAST, id",
                  "[[\"x,y\\nz\",4],[\"Ann \\\"the\\\" Admin\",1]]", 1, "name,id");
    EXPECT_CAPPED("SELECT id FROM db.users UNION ALL SELECT 10 ORDER BY 1 DESC", "[[10],[4]]", 1, "id");
    EXPECT_CAPPED("WITH u AS (SELECT id FROM db.users) SELECT id FROM u ORDER BY id DESC", "[[4],[3]]", 1, "id");
    EXPECT_CAPPED("SELECT id FROM db.users ORDER BY id DESC;", "[[4],[3]]", 1, "id");
    EXPECT_CAPPED("SELECT id FROM db.users ORDER BY id DESC -- newest first", "[[4],[3]]", 1, "id");
    EXPECT_CAPPED("SELECT id FROM db.users ORDER BY id DESC /* newest first */", "[[4],[3]]", 1, "id");
    EXPECT_CAPPED("SELECT id FROM db.users ORDER BY id DESC; -- newest first", "[[4],[3]]", 1, "id");
    /* The names the user's SELECT gives, duplicates included (a subquery
     * around it would rename the second one a_1). */
    EXPECT_CAPPED("SELECT 1 AS a, 2 AS a", "[[1,2]]", 0, "a,a");
    EXPECT_CAPPED("SELECT id AS a, id + 1 AS a FROM db.users ORDER BY id", "[[1,2],[2,3]]", 1, "a,a");
    EXPECT_CAPPED("SELECT 1 AS a, 2 AS a LIMIT 1 + 1", "[[1,2]]", 0, "a,a");
    /* Its own LIMIT within the cap: run as written. */
    EXPECT_CAPPED("SELECT id FROM db.users ORDER BY id LIMIT 1", "[[1]]", 0, "id");
    EXPECT_CAPPED("SELECT id FROM db.users ORDER BY id LIMIT 2", "[[1],[2]]", 0, "id");
    EXPECT_CAPPED("SELECT id FROM db.users ORDER BY id LIMIT 2 OFFSET 3", "[[4]]", 0, "id");
    /* A LIMIT above the cap or given as an expression: the streaming path,
     * which still cuts at the cap. */
    EXPECT_CAPPED("SELECT id FROM db.users ORDER BY id LIMIT 3", "[[1],[2]]", 1, "id");
    EXPECT_CAPPED("SELECT id FROM db.users ORDER BY id DESC LIMIT 1 + 2", "[[4],[3]]", 1, "id");
    EXPECT_CAPPED("SELECT id FROM db.users ORDER BY id LIMIT 1 + 1", "[[1],[2]]", 0, "id");
    EXPECT_CAPPED("SELECT id FROM db.users ORDER BY id OFFSET 1", "[[2],[3]]", 1, "id");
    EXPECT_CAPPED("SELECT id FROM db.users ORDER BY id LIMIT 50%", "[[1],[2]]", 0, "id");
    /* Which path ran shows in the text DuckDB was given. */
    EXPECT_CAPPED("SELECT current_query() AS q", "[[\"SELECT current_query() AS q\\nLIMIT 3\"]]", 0, "q");
    EXPECT_CAPPED("SELECT current_query() AS q LIMIT 1", "[[\"SELECT current_query() AS q LIMIT 1\"]]", 0, "q");
    EXPECT_CAPPED("SELECT current_query() AS q LIMIT 1 + 1", "[[\"SELECT current_query() AS q LIMIT 1 + 1\"]]", 0, "q");
    /* A large table: the first rows in the statement's order, then truncated. */
    EXPECT_CAPPED("SELECT x FROM other.big ORDER BY x DESC", "[[199999],[199998]]", 1, "x");
    EXPECT_CAPPED("SELECT count(*) FROM (SELECT x FROM other.big) GROUP BY x % 3 ORDER BY 1", "[[66666],[66667]]", 1,
                  NULL);
    /* Errors are reported the same way on every path. */
    expect_code(qe_caps, "SELECT no_such_column FROM db.users", NULL, TARN_ESQL, "no_such_column", __LINE__);
    expect_code(qe_caps, "SELECT no_such_column FROM db.users LIMIT 1", NULL, TARN_ESQL, "no_such_column", __LINE__);
    expect_code(qe_caps, "SELECT no_such_column FROM db.users LIMIT 1 + 1", NULL, TARN_ESQL, "no_such_column",
                __LINE__);
    expect_code(qe_caps, "SELECT CAST('x' || id AS INTEGER) FROM db.users", NULL, TARN_ESQL, "Conversion", __LINE__);
    expect_code(qe_caps, "SELECT repeat('x', 5000)", NULL, TARN_ETOOBIG, "result larger", __LINE__);
    expect_code(qe_caps, "SELECT repeat('x', 5000) LIMIT 1", NULL, TARN_ETOOBIG, "result larger", __LINE__);
    expect_code(qe_caps, "SELECT repeat('x', 5000) LIMIT 1 + 1", NULL, TARN_ETOOBIG, "result larger", __LINE__);
}

TEST(timeout_interrupts_the_query)
{
    int64_t t0 = tarn_mono_ms();
    char *out = NULL;
    tarn_errbuf eb = {{0}};
    int rc = run(qe_tight, "SELECT count(*) FROM other.big a, other.big b WHERE a.x * b.x = -1", NULL, TARN_QUERY_JSON,
                 &out, &eb);
    int64_t took = tarn_mono_ms() - t0;
    CHECK_EQ_INT(rc, TARN_ETIMEOUT);
    CHECK(strstr(eb.msg, "timed out after 50 ms") != NULL);
    CHECK(took < 3000);
    free(out);
    /* The same with its own LIMIT (run as written) and with a LIMIT
     * expression (prepared and streamed). */
    const char *forms[] = {"SELECT count(*) FROM other.big a, other.big b WHERE a.x * b.x = -1 LIMIT 1",
                           "SELECT count(*) FROM other.big a, other.big b WHERE a.x * b.x = -1 LIMIT 1 + 1",
                           "SELECT a.x FROM other.big a, other.big b WHERE a.x * b.x = -1"};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        t0 = tarn_mono_ms();
        rc = run(qe_tight, forms[i], NULL, TARN_QUERY_JSON, &out, &eb);
        took = tarn_mono_ms() - t0;
        if (rc != TARN_ETIMEOUT) printf("  %s: %s %s\n", forms[i], tarn_err_name(rc), eb.msg);
        CHECK_EQ_INT(rc, TARN_ETIMEOUT);
        CHECK(strstr(eb.msg, "timed out after 50 ms") != NULL);
        CHECK(took < 3000);
        free(out);
    }
    /* The engine is fine afterwards. */
    expect_rows(qe_tight, "SELECT count(*) FROM other.big", NULL, "[[200000]]", __LINE__);
    expect_rows(qe_tight, "SELECT count(*) FROM other.big LIMIT 1 + 1", NULL, "[[200000]]", __LINE__);
}

/* A query of about a minute on qe_cancel (timeout 60 s), run on a thread. */
typedef struct cancel_run {
    tarn_query_engine *e;
    const char *sql;
    int rc;
    tarn_errbuf eb;
} cancel_run;

static void *cancel_query(void *arg)
{
    cancel_run *r = arg;
    tarn_buf b;
    tarn_buf_init(&b, 0);
    r->rc = tarn_query_run(r->e, r->sql, NULL, TARN_QUERY_JSON, &b, NULL, &r->eb);
    tarn_buf_free(&b);
    return NULL;
}

TEST(cancel_ends_running_queries_and_refuses_new_ones)
{
    tarn_errbuf eb = {{0}};
    tarn_query_engine *qe_cancel = NULL;
    tarn_query_opts o = {lake, 2, NULL, 60000, 0, 0, 0, NULL, 0};
    CHECK_EQ_INT(tarn_query_engine_open(&o, cat, &qe_cancel, &eb), TARN_OK);
    if (!qe_cancel) return;
    /* One bind (capped), its own LIMIT, and prepared + streamed: without
     * the cancellation each would run into the 60 s timeout. */
    cancel_run runs[] = {
        {qe_cancel, "SELECT count(*) FROM other.big a, other.big b WHERE a.x * b.x = -1", -1, {{0}}},
        {qe_cancel, "SELECT count(*) FROM other.big a, other.big b WHERE a.x * b.x = -1 LIMIT 1", -1, {{0}}},
        {qe_cancel, "SELECT a.x FROM other.big a, other.big b WHERE a.x * b.x = -1", -1, {{0}}},
    };
    enum { NRUNS = sizeof runs / sizeof runs[0] };
    pthread_t th[NRUNS];
    for (int i = 0; i < NRUNS; i++) pthread_create(&th[i], NULL, cancel_query, &runs[i]);
    /* All three running (past the engine's own cancellation check, which
     * comes microseconds after the registration), well before the timeout. */
    struct timespec tick = {0, 10 * 1000000L}, settle = {0, 200 * 1000000L};
    for (int i = 0; i < 3000 && tarn_query_engine_running(qe_cancel) < NRUNS; i++) nanosleep(&tick, NULL);
    CHECK_EQ_INT(tarn_query_engine_running(qe_cancel), NRUNS);
    nanosleep(&settle, NULL);
    tarn_query_engine_cancel(qe_cancel);
    for (int i = 0; i < NRUNS; i++) {
        pthread_join(th[i], NULL);
        if (runs[i].rc != TARN_ECLOSED) printf("  %s: %s %s\n", runs[i].sql, tarn_err_name(runs[i].rc), runs[i].eb.msg);
        CHECK_EQ_INT(runs[i].rc, TARN_ECLOSED);
        CHECK(strstr(runs[i].eb.msg, "the query was cancelled") != NULL);
    }
    CHECK_EQ_INT(tarn_query_engine_running(qe_cancel), 0);
    /* Later queries are refused before they run, even quick ones; cancelling
     * again changes nothing. */
    tarn_query_engine_cancel(qe_cancel);
    char *out = NULL;
    CHECK_EQ_INT(run(qe_cancel, "SELECT count(*) FROM other.big", NULL, TARN_QUERY_JSON, &out, &eb), TARN_ECLOSED);
    CHECK(strstr(eb.msg, "the server is stopping: the query was not run") != NULL);
    free(out);
    tarn_query_engine_close(qe_cancel);
    /* Other engines are untouched. */
    expect_rows(qe, "SELECT count(*) FROM other.big", NULL, "[[200000]]", __LINE__);
}

/* Each expression printed by us must read exactly like DuckDB's own
 * CAST(... AS VARCHAR). */
TEST(scalar_text_matches_duckdb)
{
    static const char *const exprs[] = {
        "0.1::DOUBLE", "100.0::DOUBLE", "1e20::DOUBLE", "1e-7::DOUBLE", "1e16::DOUBLE", "1e15::DOUBLE",
        "123456789.0::DOUBLE", "0.0001::DOUBLE", "0.00001::DOUBLE", "(-0.0)::DOUBLE", "1/3", "2/3::FLOAT",
        "1.5::FLOAT", "0.1::FLOAT", "3.4028235e38::FLOAT", "5e-324::DOUBLE", "1e-310::DOUBLE", "1e-40::FLOAT", "2.2250738585072014e-308::DOUBLE", "1.7976931348623157e308::DOUBLE",
        "12345678901234567890.0::DOUBLE", "-2.5e-300::DOUBLE", "16777216::FLOAT", "1e7::FLOAT",
        "TIMESTAMP '2025-11-25 10:00:00'", "TIMESTAMP '2025-11-25 10:00:00.000001'", "TIMESTAMP '0001-01-01 00:00:00'",
        "TIMESTAMP '1969-12-31 23:59:59.999'", "'infinity'::TIMESTAMP", "'-infinity'::TIMESTAMP",
        "TIMESTAMP '-0044-03-15 12:00:00'", "'294247-01-10 04:00:54.775806'::TIMESTAMP",
        "TIMESTAMPTZ '2025-11-25 10:00:00.25+00'", "TIMESTAMPTZ '2025-11-25 10:00:00+05:30'",
        "DATE '2025-01-02'", "DATE '-0001-01-01'", "'infinity'::DATE", "DATE '9999-12-31'",
        "TIME '00:00:00'", "TIME '23:59:59.5'", "TIMETZ '10:00:00+05'", "TIMESTAMP_S '2025-01-01 00:00:01'",
        "TIMESTAMP_MS '2025-01-01 00:00:01.123'", "TIMESTAMP_NS '2025-01-01 00:00:00.123456789'",
        "1.50::DECIMAL(5,2)", "(-0.5)::DECIMAL(5,2)", "(-123.456)::DECIMAL(18,3)", "0::DECIMAL(4,4)", "(-0.5)::DECIMAL(4,4)", "0::DECIMAL(2,1)",
        "12345678901234567890.1234567890::DECIMAL(38,10)", "(-1)::DECIMAL(38,37)", "7::DECIMAL(10,0)",
        "170141183460469231731687303715884105727::HUGEINT", "(-170141183460469231731687303715884105727)::HUGEINT",
        "340282366920938463463374607431768211455::UHUGEINT", "18446744073709551615::UBIGINT",
        "(-9223372036854775808)::BIGINT", "'123e4567-e89b-12d3-a456-426614174000'::UUID",
        "'ffffffff-ffff-ffff-ffff-ffffffffffff'::UUID", "'00000000-0000-0000-0000-000000000000'::UUID",
        "INTERVAL '1 year 2 months 3 days 04:05:06.5'", "INTERVAL '-3 hours'", "'\\xAA\\x00ab\\x5C'::BLOB", "'abc'::BLOB",
        "'0101'::BIT", "'1'::BIT", "'101010101'::BIT", "'b'::ENUM('a', 'b')", "true", "(-128)::TINYINT",
        "255::UTINYINT", "65535::USMALLINT", "4294967295::UINTEGER", "'Ünïcödé ✓'", "''",
    };
    size_t n = sizeof exprs / sizeof exprs[0];
    for (size_t i = 0; i < n; i++) {
        char sql[512];
        snprintf(sql, sizeof sql, "SELECT %s AS v, CAST(%s AS VARCHAR) AS t", exprs[i], exprs[i]);
        char *out = NULL;
        tarn_errbuf eb = {{0}};
        int rc = run(qe, sql, NULL, TARN_QUERY_CSV, &out, &eb);
        if (rc) {
            printf("  %s: %s\n", exprs[i], eb.msg);
            test__cur_failed = 1;
            free(out);
            continue;
        }
        /* "v","t"\n then "<ours>","<duckdb's>"\n: both quoted the same way. */
        char *line = strchr(out, '\n');
        char *ours = line ? line + 1 : NULL;
        char *mid = ours ? strstr(ours, "\",\"") : NULL;
        if (!mid) {
            printf("  %s: unexpected CSV %s\n", exprs[i], out);
            test__cur_failed = 1;
        } else {
            size_t la = (size_t)(mid + 1 - ours);
            const char *theirs = mid + 2;
            size_t lb = strlen(theirs) - 1; /* without the newline */
            if (la != lb || memcmp(ours, theirs, la) != 0) {
                printf("  %s: ours %.*s, DuckDB's %.*s\n", exprs[i], (int)la, ours, (int)lb, theirs);
                test__cur_failed = 1;
            }
        }
        free(out);
    }
    /* JSON: numbers as numbers, the rest as strings, specials as strings. */
    EXPECT_ROWS("SELECT 1::TINYINT, 2::UBIGINT, 0.5::FLOAT, 'nan'::DOUBLE, 'inf'::DOUBLE, '-inf'::FLOAT, 1.5::DECIMAL(3,1), "
                "12::HUGEINT, DATE '2025-01-02', NULL, [[1, 2], [3]], MAP {'k': 1, 'l': NULL}, MAP {1: 'a'}, "
                "[1, 2]::INTEGER[2], union_value(n := 5)",
                NULL,
                "[[1,2,0.5,\"NaN\",\"Infinity\",\"-Infinity\",\"1.5\",\"12\",\"2025-01-02\",null,[[1,2],[3]],"
                "{\"k\":1,\"l\":null},{\"1\":\"a\"},[1,2],5]]");
}

TEST(type_names)
{
    char *out = NULL;
    tarn_errbuf eb = {{0}};
    int rc = run(qe,
                 "SELECT {'a': 1, 'B c': [1.5::DECIMAL(4,2)], 'Country': 1, 'name': 2, 'date': 3} AS s, MAP {'k': 1} AS m, [1, 2]::INTEGER[2] AS a, "
                 "TIMESTAMPTZ '2025-01-01 00:00:00+00' AS tz, '\"x\"'::JSON AS j, NULL AS n",
                 NULL, TARN_QUERY_JSON, &out, &eb);
    if (rc) printf("  %s\n", eb.msg);
    CHECK_EQ_INT(rc, 0);
    json_t *root = json_loads(out ? out : "", 0, NULL);
    char *cols = json_dumps(json_object_get(root, "columns"), JSON_COMPACT | JSON_PRESERVE_ORDER);
    CHECK_EQ_STR(cols, "[{\"name\":\"s\",\"type\":\"STRUCT(a INTEGER, \\\"B c\\\" DECIMAL(4,2)[], Country INTEGER, \\\"name\\\" INTEGER, date INTEGER)\"},"
                       "{\"name\":\"m\",\"type\":\"MAP(VARCHAR, INTEGER)\"},{\"name\":\"a\",\"type\":\"INTEGER[2]\"},"
                       "{\"name\":\"tz\",\"type\":\"TIMESTAMP WITH TIME ZONE\"},{\"name\":\"j\",\"type\":\"JSON\"},"
                       "{\"name\":\"n\",\"type\":\"INTEGER\"}]"); /* a bare NULL is INTEGER */
    free(cols);
    json_decref(root);
    free(out);
}

TEST(refresh_sees_new_files)
{
    tarn_column c[] = {{"k", "BIGINT"}};
    int64_t b = write_parquet("SELECT 1::BIGINT AS k", "processed/db/grow/ingestion_date=2025-11-25/1-1.parquet");
    REQUIRE(b > 0);
    REQUIRE(publish("db", "grow", c, 1, "processed/db/grow/ingestion_date=2025-11-25/1-1.parquet",
                    "ingestion_date=2025-11-25", b, 1, 1) == 0);
    /* Not visible before the refresh: the view is the catalog's file list. */
    EXPECT_CODE("SELECT count(*) FROM db.grow", NULL, TARN_ENOTFOUND, "not found");
    tarn_errbuf eb = {{0}};
    CHECK_EQ_INT(tarn_query_refresh_table(qe, "db", "grow", &eb), 0);
    EXPECT_ROWS("SELECT count(*) FROM db.grow", NULL, "[[1]]");
    CHECK_EQ_INT(tarn_query_refresh_table(qe, "db", "missing", &eb), TARN_ENOTFOUND);
}

/* Runs sql and returns its stats (rc in *rc). */
static tarn_query_stats stats_of(const char *sql, const char *db, int *rc)
{
    tarn_buf b;
    tarn_buf_init(&b, 0);
    tarn_errbuf eb = {{0}};
    tarn_query_stats st;
    memset(&st, 0, sizeof st);
    *rc = tarn_query_run(qe, sql, db, TARN_QUERY_JSON, &b, &st, &eb);
    tarn_buf_free(&b);
    return st;
}

/* The check's verdict is reused only for the very same text and default
 * database, while no view changed; refusals are never remembered. */
TEST(verdict_reuse)
{
    int rc;
    const char *q = "SELECT count(*) FROM users WHERE id > 0 -- verdict test";
    tarn_query_stats a = stats_of(q, "db", &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(a.verdict_reused, 0);
    tarn_query_stats b = stats_of(q, "db", &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(b.verdict_reused, 1);
    CHECK_EQ_INT(b.bytes_scanned, a.bytes_scanned);
    EXPECT_ROWS(q, "db", "[[4]]");
    /* Another default database: checked again, and refused there. */
    EXPECT_CODE(q, NULL, TARN_ENOTFOUND, "table 'users' not found");
    EXPECT_CODE(q, "other", TARN_ENOTFOUND, "table 'users' not found");
    /* One byte different: checked again. */
    tarn_query_stats c = stats_of("SELECT count(*) FROM users WHERE id > 0 -- verdict tesT", "db", &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(c.verdict_reused, 0);
    /* Refused texts stay refused, each time through the check. */
    for (int i = 0; i < 3; i++) EXPECT_CODE("SELECT * FROM read_csv('/etc/passwd')", NULL, TARN_EDENIED, NULL);
    /* Capped and fallback forms reuse theirs with the same results. */
    const char *capped = "SELECT x FROM other.big ORDER BY x", *fallback = "SELECT x FROM other.big ORDER BY x LIMIT 1+2";
    for (int i = 0; i < 2; i++) {
        tarn_query_stats s1 = stats_of(capped, NULL, &rc);
        CHECK_EQ_INT(rc, 0);
        CHECK_EQ_INT(s1.verdict_reused, i);
        CHECK_EQ_INT(s1.truncated, 1);
        CHECK_EQ_INT(s1.row_count, 100000);
        tarn_query_stats s2 = stats_of(fallback, NULL, &rc);
        CHECK_EQ_INT(rc, 0);
        CHECK_EQ_INT(s2.verdict_reused, i);
        CHECK_EQ_INT(s2.row_count, 3);
    }
    /* A view rebuilt: every verdict is checked again. */
    tarn_errbuf eb = {{0}};
    CHECK_EQ_INT(tarn_query_refresh_table(qe, "db", "users", &eb), 0);
    tarn_query_stats d = stats_of(q, "db", &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(d.verdict_reused, 0);
    CHECK_EQ_INT(stats_of(q, "db", &rc).verdict_reused, 1);
}

/* 4 threads query while another publishes files and refreshes the view. */
typedef struct conc_state {
    atomic_int stop;
    atomic_int failures;
    atomic_int queries;
} conc_state;

static void *conc_query(void *arg)
{
    conc_state *st = arg;
    long last = 0;
    while (!atomic_load(&st->stop)) {
        tarn_buf b;
        tarn_buf_init(&b, 0);
        tarn_errbuf eb = {{0}};
        int rc = tarn_query_run(qe, "SELECT count(*), sum(k) FROM db.grow", NULL, TARN_QUERY_JSON, &b, NULL, &eb);
        json_t *root = rc ? NULL : json_loads(b.data, 0, NULL);
        json_t *row = json_array_get(json_object_get(root, "rows"), 0);
        long n = (long)json_integer_value(json_array_get(row, 0));
        if (rc || !row || n < last) {
            printf("  concurrent query: rc %s (%s), count %ld after %ld\n", tarn_err_name(rc), eb.msg, n, last);
            atomic_fetch_add(&st->failures, 1);
        }
        last = n;
        json_decref(root);
        tarn_buf_free(&b);
        atomic_fetch_add(&st->queries, 1);
    }
    return NULL;
}

TEST(concurrent_queries_during_refresh)
{
    conc_state st;
    atomic_init(&st.stop, 0);
    atomic_init(&st.failures, 0);
    atomic_init(&st.queries, 0);
    pthread_t th[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, conc_query, &st);
    tarn_column c[] = {{"k", "BIGINT"}};
    int refreshes = 0;
    for (int i = 2; i <= 13; i++) {
        char rel[256], sel[128];
        snprintf(rel, sizeof rel, "processed/db/grow/ingestion_date=2025-11-26/%d-%d.parquet", i, i);
        snprintf(sel, sizeof sel, "SELECT %d::BIGINT AS k", i);
        int64_t b = write_parquet(sel, rel);
        CHECK(b > 0);
        CHECK_EQ_INT(publish("db", "grow", i == 7 ? c : NULL, i == 7 ? 1 : 0, rel, "ingestion_date=2025-11-26", b, 1, i),
                     0);
        for (int k = 0; k < 3; k++) {
            tarn_errbuf eb = {{0}};
            int rc = tarn_query_refresh_table(qe, "db", "grow", &eb);
            if (rc) printf("  refresh: %s\n", eb.msg);
            CHECK_EQ_INT(rc, 0);
            refreshes++;
        }
    }
    atomic_store(&st.stop, 1);
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    CHECK_EQ_INT(atomic_load(&st.failures), 0);
    CHECK(atomic_load(&st.queries) >= 8);
    EXPECT_ROWS("SELECT count(*), sum(k)::BIGINT FROM db.grow", NULL, "[[13,91]]");
    printf("  %d queries during %d refreshes\n", atomic_load(&st.queries), refreshes);
}

TEST(malicious_catalog_type_is_refused)
{
    /* A type that closes the CAST and reads a file must not reach DDL. */
    tarn_column c[] = {{"x", "BIGINT) AS x FROM read_csv('/etc/passwd') --"}};
    int64_t b = write_parquet("SELECT 1::BIGINT AS x", "processed/db/evil/ingestion_date=2025-11-25/1-1.parquet");
    REQUIRE(b > 0);
    REQUIRE(publish("db", "evil", c, 1, "processed/db/evil/ingestion_date=2025-11-25/1-1.parquet",
                    "ingestion_date=2025-11-25", b, 1, 1) == 0);
    tarn_errbuf eb = {{0}};
    CHECK_EQ_INT(tarn_query_refresh_table(qe, "db", "evil", &eb), TARN_EINVAL);
    CHECK(strstr(eb.msg, "not a column type") != NULL);
    EXPECT_CODE("SELECT * FROM db.evil", NULL, TARN_ENOTFOUND, "not found");
}

TEST(reserved_database_names_get_no_view)
{
    /* A catalog database named like a DuckDB catalog or system schema would
     * change what `system.x` or `information_schema.x` resolve to. */
    tarn_column c[] = {{"x", "BIGINT"}};
    REQUIRE(publish("information_schema", "t", c, 1, NULL, NULL, 0, 0, 1) == 0);
    tarn_errbuf eb = {{0}};
    CHECK_EQ_INT(tarn_query_refresh_table(qe, "information_schema", "t", &eb), TARN_EINVAL);
    CHECK(strstr(eb.msg, "reserved") != NULL);
    EXPECT_CODE("SELECT * FROM information_schema.t", NULL, TARN_ENOTFOUND, "not found");
}

TEST(reopen_builds_every_view_and_skips_broken_ones)
{
    /* By now the catalog holds a table with a malicious type and one in a
     * reserved database: open logs them and serves the rest. */
    tarn_query_engine *e2 = NULL;
    tarn_errbuf eb = {{0}};
    tarn_query_opts o = {lake, 1, NULL, 0, 0, 0, 0, NULL, 0};
    REQUIRE(tarn_query_engine_open(&o, cat, &e2, &eb) == 0);
    expect_rows(e2, "SELECT count(*), sum(k)::BIGINT FROM db.grow", NULL, "[[13,91]]", __LINE__);
    expect_rows(e2, "SELECT v FROM db.wide ORDER BY v", NULL, "[[2.5],[7.0]]", __LINE__);
    expect_code(e2, "SELECT * FROM db.evil", NULL, TARN_ENOTFOUND, "not found", __LINE__);
    tarn_query_engine_close(e2);
}

int main(void)
{
    /* A host zone other than UTC: results must not depend on it. */
    setenv("TZ", "Asia/Tokyo", 1);
    tzset();
    if (!setup()) {
        printf("setup failed\n0 passed, 1 failed\n");
        return 1;
    }
    RUN(values_every_common_type);
    RUN(struct_field_group_by);
    RUN(default_database);
    RUN(every_connection_has_the_engine_settings);
    RUN(every_connection_is_hardened);
    RUN(large_query_spills_into_temp_dir);
    RUN(duck_open_refuses_outside_access);
    RUN(reused_connections_keep_no_default_database);
    RUN(csv_format);
    RUN(empty_table_has_typed_columns);
    RUN(schema_widening_across_files);
    RUN(partition_column_in_where);
    RUN(partition_filter_prunes_files);
    RUN(bytes_scanned_counts_referenced_tables);
    RUN(ctes_and_safe_forms);
    RUN(describe_summarize_show_are_not_selects);
    RUN(refused_before_anything_runs);
    RUN(cte_scoping_is_not_a_loophole);
    RUN(deep_nesting_is_refused_cleanly);
    RUN(truncation_and_limits);
    RUN(row_cap_forms_of_the_statement);
    RUN(row_cap_results);
    RUN(timeout_interrupts_the_query);
    RUN(cancel_ends_running_queries_and_refuses_new_ones);
    RUN(scalar_text_matches_duckdb);
    RUN(type_names);
    RUN(refresh_sees_new_files);
    RUN(verdict_reuse);
    RUN(concurrent_queries_during_refresh);
    RUN(malicious_catalog_type_is_refused);
    RUN(reserved_database_names_get_no_view);
    RUN(reopen_builds_every_view_and_skips_broken_ones);
    teardown();
    return test_main_end();
}
