/* test_catalog.c - unit tests for src/catalog (SQLite catalog). */
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>

#include "catalog/catalog.h"
#include "common/util.h"
#include "test.h"

/* Runs call once and requires its result: REQUIRE alone may evaluate its
 * condition twice in some versions of test.h. */
#define REQUIRE_CALL(call, want)    \
    do {                            \
        int call_rc_ = (call);      \
        REQUIRE(call_rc_ == (want)); \
    } while (0)

/* A fresh catalog in its own temp dir; *dir is freed by close_tmp. */
static tarn_catalog *open_tmp(char **dir, char *path, size_t pathsz)
{
    tarn_errbuf eb = {{0}};
    tarn_catalog *c = NULL;
    *dir = test_tmpdir("catalog");
    if (!*dir) return NULL;
    snprintf(path, pathsz, "%s/catalog.db", *dir);
    if (tarn_catalog_open(path, &c, &eb) != TARN_OK) {
        printf("  open %s: %s\n", path, eb.msg);
        return NULL;
    }
    return c;
}

static void close_tmp(tarn_catalog *c, char *dir)
{
    tarn_catalog_close(c);
    if (dir) tarn_rm_rf(dir);
    free(dir);
}

static tarn_file mkfile(const char *path, const char *zone, const char *partition, int64_t first, int64_t last,
                        int64_t rows, int64_t bytes)
{
    tarn_file f;
    memset(&f, 0, sizeof f);
    f.path = (char *)path;
    f.zone = (char *)zone;
    f.partition = (char *)partition;
    f.first_seq = first;
    f.last_seq = last;
    f.rows = rows;
    f.bytes = bytes;
    return f;
}

static const tarn_column cols_v1[] = {{"id", "BIGINT"}, {"name", "VARCHAR"}};
static const tarn_column cols_v2[] = {{"id", "DOUBLE"}, {"name", "VARCHAR"}, {"tags", "VARCHAR[]"}};

static size_t live_count(tarn_catalog *c, int64_t table_id, const char *zone)
{
    tarn_errbuf eb = {{0}};
    tarn_file *f = NULL;
    size_t n = 0;
    if (tarn_catalog_live_files(c, table_id, zone, &f, &n, &eb) != TARN_OK) {
        printf("  live_files: %s\n", eb.msg);
        return (size_t)-1;
    }
    tarn_files_free(f, n);
    return n;
}

/* Parses the JSON in b; NULL (and a message) if it is not valid. */
static json_t *parse(const tarn_buf *b)
{
    json_error_t err;
    json_t *j = json_loadb(b->data ? b->data : "", b->len, 0, &err);
    if (!j) printf("  bad JSON (%s): %s\n", err.text, b->data ? b->data : "");
    return j;
}

static const char *jstr(json_t *o, const char *key) { return json_string_value(json_object_get(o, key)); }
static long long jint(json_t *o, const char *key) { return (long long)json_integer_value(json_object_get(o, key)); }

TEST(ensure_table_creates_and_is_idempotent)
{
    char *dir, path[512];
    tarn_errbuf eb = {{0}};
    tarn_table_info t, t2;
    tarn_catalog *c = open_tmp(&dir, path, sizeof path);
    REQUIRE(c);

    int64_t before = tarn_now_ms();
    CHECK_EQ_INT(tarn_catalog_ensure_table(c, "iot", "readings", &t, &eb), TARN_OK);
    CHECK(t.id > 0);
    CHECK_EQ_STR(t.db, "iot");
    CHECK_EQ_STR(t.name, "readings");
    CHECK_EQ_INT(t.delivered_seq, 0);
    CHECK_EQ_INT(t.schema_version, 0);
    CHECK_EQ_INT(t.ncolumns, 0);
    CHECK(t.created_ms >= before && t.created_ms <= tarn_now_ms());
    CHECK_EQ_INT(t.updated_ms, t.created_ms);

    CHECK_EQ_INT(tarn_catalog_ensure_table(c, "iot", "readings", &t2, &eb), TARN_OK);
    CHECK_EQ_INT(t2.id, t.id);
    CHECK_EQ_INT(t2.created_ms, t.created_ms);
    tarn_table_info_free(&t2);

    CHECK_EQ_INT(tarn_catalog_get_table(c, "iot", "readings", &t2, &eb), TARN_OK);
    CHECK_EQ_INT(t2.id, t.id);
    tarn_table_info_free(&t2);

    tarn_table_info *all = NULL;
    size_t n = 0;
    CHECK_EQ_INT(tarn_catalog_list_tables(c, &all, &n, &eb), TARN_OK);
    CHECK_EQ_INT(n, 1);
    tarn_table_infos_free(all, n);

    CHECK_EQ_INT(tarn_catalog_ensure_table(c, "iot", "bad-name", &t2, &eb), TARN_EINVAL);
    CHECK_EQ_INT(tarn_catalog_ensure_table(c, "", "x", &t2, &eb), TARN_EINVAL);

    tarn_table_info_free(&t);
    close_tmp(c, dir);
}

TEST(get_table_not_found)
{
    char *dir, path[512];
    tarn_errbuf eb = {{0}};
    tarn_table_info t;
    tarn_catalog *c = open_tmp(&dir, path, sizeof path);
    REQUIRE(c);

    CHECK_EQ_INT(tarn_catalog_get_table(c, "iot", "readings", &t, &eb), TARN_ENOTFOUND);
    CHECK_EQ_STR(eb.msg, "table iot.readings not found");
    CHECK(t.db == NULL && t.columns == NULL);

    CHECK_EQ_INT(tarn_catalog_ensure_table(c, "iot", "other", &t, &eb), TARN_OK);
    tarn_table_info_free(&t);
    CHECK_EQ_INT(tarn_catalog_get_table(c, "iot", "readings", &t, &eb), TARN_ENOTFOUND);
    CHECK_EQ_INT(tarn_catalog_get_table(c, "nodb", "other", &t, &eb), TARN_ENOTFOUND);

    /* Unknown ids for the id-based calls. */
    CHECK_EQ_INT(tarn_catalog_publish(c, 999, NULL, 0, NULL, 0, 1, &eb), TARN_ENOTFOUND);
    tarn_file *f = NULL;
    size_t n = 0;
    CHECK_EQ_INT(tarn_catalog_live_files(c, 999, NULL, &f, &n, &eb), TARN_ENOTFOUND);
    CHECK(f == NULL && n == 0);
    close_tmp(c, dir);
}

TEST(publish_schema_versions)
{
    char *dir, path[512];
    tarn_errbuf eb = {{0}};
    tarn_table_info t;
    tarn_catalog *c = open_tmp(&dir, path, sizeof path);
    REQUIRE(c);
    REQUIRE_CALL(tarn_catalog_ensure_table(c, "iot", "readings", &t, &eb), TARN_OK);
    int64_t id = t.id;
    tarn_table_info_free(&t);

    /* First publish with columns: version 1, files live with version 1. */
    tarn_file f1[] = {mkfile("processed/iot/readings/ingestion_date=2025-11-25/1-10.parquet", "processed",
                             "ingestion_date=2025-11-25", 1, 10, 10, 1000),
                      mkfile("raw/iot/readings/ingestion_date=2025-11-25/1-10.json.gz", "raw",
                             "ingestion_date=2025-11-25", 1, 10, 10, 300)};
    CHECK_EQ_INT(tarn_catalog_publish(c, id, cols_v1, 2, f1, 2, 10, &eb), TARN_OK);
    REQUIRE_CALL(tarn_catalog_get_table(c, "iot", "readings", &t, &eb), TARN_OK);
    CHECK_EQ_INT(t.schema_version, 1);
    CHECK_EQ_INT(t.delivered_seq, 10);
    REQUIRE(t.ncolumns == 2);
    CHECK_EQ_STR(t.columns[0].name, "id");
    CHECK_EQ_STR(t.columns[0].type, "BIGINT");
    CHECK_EQ_STR(t.columns[1].name, "name");
    CHECK_EQ_STR(t.columns[1].type, "VARCHAR");
    CHECK(t.updated_ms >= t.created_ms);
    tarn_table_info_free(&t);

    tarn_file *files = NULL;
    size_t n = 0;
    REQUIRE_CALL(tarn_catalog_live_files(c, id, "processed", &files, &n, &eb), TARN_OK);
    REQUIRE(n == 1);
    CHECK_EQ_INT(files[0].schema_version, 1);
    CHECK_EQ_INT(files[0].rows, 10);
    CHECK_EQ_INT(files[0].first_seq, 1);
    CHECK_EQ_INT(files[0].last_seq, 10);
    CHECK(files[0].created_ms > 0);
    tarn_files_free(files, n);

    /* Same columns: same version. */
    tarn_file f2 = mkfile("processed/iot/readings/ingestion_date=2025-11-25/11-20.parquet", "processed",
                          "ingestion_date=2025-11-25", 11, 20, 10, 1000);
    CHECK_EQ_INT(tarn_catalog_publish(c, id, cols_v1, 2, &f2, 1, 20, &eb), TARN_OK);
    REQUIRE_CALL(tarn_catalog_get_table(c, "iot", "readings", &t, &eb), TARN_OK);
    CHECK_EQ_INT(t.schema_version, 1);
    CHECK_EQ_INT(t.delivered_seq, 20);
    tarn_table_info_free(&t);

    /* No columns: keeps the current version. */
    tarn_file f3 = mkfile("raw/iot/readings/ingestion_date=2025-11-25/11-20.json.gz", "raw",
                          "ingestion_date=2025-11-25", 11, 20, 10, 300);
    CHECK_EQ_INT(tarn_catalog_publish(c, id, NULL, 0, &f3, 1, 21, &eb), TARN_OK);

    /* Same names, one type widened and a column added: version 2. */
    tarn_file f4 = mkfile("processed/iot/readings/ingestion_date=2025-11-26/22-30.parquet", "processed",
                          "ingestion_date=2025-11-26", 22, 30, 9, 900);
    CHECK_EQ_INT(tarn_catalog_publish(c, id, cols_v2, 3, &f4, 1, 30, &eb), TARN_OK);
    REQUIRE_CALL(tarn_catalog_get_table(c, "iot", "readings", &t, &eb), TARN_OK);
    CHECK_EQ_INT(t.schema_version, 2);
    REQUIRE(t.ncolumns == 3);
    CHECK_EQ_STR(t.columns[0].type, "DOUBLE");
    CHECK_EQ_STR(t.columns[2].name, "tags");
    CHECK_EQ_STR(t.columns[2].type, "VARCHAR[]");
    tarn_table_info_free(&t);

    /* Reordered columns are a new version too. */
    const tarn_column reordered[] = {{"name", "VARCHAR"}, {"id", "DOUBLE"}, {"tags", "VARCHAR[]"}};
    CHECK_EQ_INT(tarn_catalog_publish(c, id, reordered, 3, NULL, 0, 31, &eb), TARN_OK);
    REQUIRE_CALL(tarn_catalog_get_table(c, "iot", "readings", &t, &eb), TARN_OK);
    CHECK_EQ_INT(t.schema_version, 3);
    tarn_table_info_free(&t);

    /* Old files keep the version they were written with. */
    REQUIRE_CALL(tarn_catalog_live_files(c, id, "processed", &files, &n, &eb), TARN_OK);
    REQUIRE(n == 3);
    CHECK_EQ_INT(files[0].schema_version, 1);
    CHECK_EQ_INT(files[1].schema_version, 1);
    CHECK_EQ_INT(files[2].schema_version, 2);
    tarn_files_free(files, n);

    /* History is kept: the JSON lists three versions with their columns. */
    tarn_buf b;
    tarn_buf_init(&b, 0);
    REQUIRE_CALL(tarn_catalog_table_json(c, "iot", "readings", &b, &eb), TARN_OK);
    json_t *j = parse(&b);
    REQUIRE(j);
    json_t *vs = json_object_get(j, "schema_versions");
    CHECK_EQ_INT(json_array_size(vs), 3);
    json_t *v1 = json_array_get(vs, 0), *v2 = json_array_get(vs, 1);
    CHECK_EQ_INT(jint(v1, "version"), 1);
    CHECK_EQ_INT(json_array_size(json_object_get(v1, "columns")), 2);
    CHECK_EQ_STR(jstr(json_array_get(json_object_get(v1, "columns"), 0), "type"), "BIGINT");
    CHECK_EQ_INT(jint(v2, "version"), 2);
    CHECK_EQ_INT(json_array_size(json_object_get(v2, "columns")), 3);
    CHECK_EQ_STR(jstr(json_array_get(json_object_get(v2, "columns"), 0), "type"), "DOUBLE");
    json_decref(j);
    tarn_buf_free(&b);
    close_tmp(c, dir);
}

TEST(publish_stale_seq_conflicts_and_changes_nothing)
{
    char *dir, path[512];
    tarn_errbuf eb = {{0}};
    tarn_table_info t;
    tarn_catalog *c = open_tmp(&dir, path, sizeof path);
    REQUIRE(c);
    REQUIRE_CALL(tarn_catalog_ensure_table(c, "iot", "readings", &t, &eb), TARN_OK);
    int64_t id = t.id;
    tarn_table_info_free(&t);

    tarn_file f1 = mkfile("processed/iot/readings/d=1/1-5.parquet", "processed", "d=1", 1, 5, 5, 50);
    REQUIRE_CALL(tarn_catalog_publish(c, id, cols_v1, 2, &f1, 1, 5, &eb), TARN_OK);
    REQUIRE_CALL(tarn_catalog_get_table(c, "iot", "readings", &t, &eb), TARN_OK);
    int64_t updated = t.updated_ms;
    tarn_table_info_free(&t);

    /* A replay of the same publish, and an older one, with new columns and files. */
    tarn_file f2 = mkfile("processed/iot/readings/d=2/1-5.parquet", "processed", "d=2", 1, 5, 5, 50);
    CHECK_EQ_INT(tarn_catalog_publish(c, id, cols_v2, 3, &f2, 1, 5, &eb), TARN_ECONFLICT);
    CHECK(strstr(eb.msg, "delivered_seq 5") != NULL);
    CHECK_EQ_INT(tarn_catalog_publish(c, id, cols_v2, 3, &f2, 1, 4, &eb), TARN_ECONFLICT);
    CHECK_EQ_INT(live_count(c, id, NULL), 1);
    REQUIRE_CALL(tarn_catalog_get_table(c, "iot", "readings", &t, &eb), TARN_OK);
    CHECK_EQ_INT(t.delivered_seq, 5);
    CHECK_EQ_INT(t.schema_version, 1);
    CHECK_EQ_INT(t.ncolumns, 2);
    CHECK_EQ_INT(t.updated_ms, updated);
    tarn_table_info_free(&t);

    /* A failure halfway (bad partition on the second file) rolls back the first. */
    tarn_file bad[] = {mkfile("processed/iot/readings/d=3/6-9.parquet", "processed", "d=3", 6, 9, 4, 40),
                       mkfile("processed/iot/readings/x/6-9.parquet", "processed", "novalue", 6, 9, 4, 40)};
    CHECK_EQ_INT(tarn_catalog_publish(c, id, cols_v2, 3, bad, 2, 9, &eb), TARN_EINVAL);
    CHECK(strstr(eb.msg, "novalue") != NULL);
    CHECK_EQ_INT(live_count(c, id, NULL), 1);
    REQUIRE_CALL(tarn_catalog_get_table(c, "iot", "readings", &t, &eb), TARN_OK);
    CHECK_EQ_INT(t.delivered_seq, 5);
    CHECK_EQ_INT(t.schema_version, 1);
    tarn_table_info_free(&t);

    /* Bad files are refused up front. */
    tarn_file abs = mkfile("/etc/passwd", "processed", "", 6, 9, 4, 40);
    tarn_file dots = mkfile("processed/../../x.parquet", "processed", "", 6, 9, 4, 40);
    tarn_file zone = mkfile("processed/a.parquet", "elsewhere", "", 6, 9, 4, 40);
    CHECK_EQ_INT(tarn_catalog_publish(c, id, NULL, 0, &abs, 1, 9, &eb), TARN_EINVAL);
    CHECK_EQ_INT(tarn_catalog_publish(c, id, NULL, 0, &dots, 1, 9, &eb), TARN_EINVAL);
    CHECK_EQ_INT(tarn_catalog_publish(c, id, NULL, 0, &zone, 1, 9, &eb), TARN_EINVAL);

    /* No transaction was left open: the next publish goes through. */
    CHECK_EQ_INT(tarn_catalog_publish(c, id, NULL, 0, &f2, 1, 6, &eb), TARN_OK);
    CHECK_EQ_INT(live_count(c, id, NULL), 2);
    close_tmp(c, dir);
}

TEST(publish_same_path_replaces)
{
    char *dir, path[512];
    tarn_errbuf eb = {{0}};
    tarn_table_info t, other;
    tarn_catalog *c = open_tmp(&dir, path, sizeof path);
    REQUIRE(c);
    REQUIRE_CALL(tarn_catalog_ensure_table(c, "iot", "readings", &t, &eb), TARN_OK);
    REQUIRE_CALL(tarn_catalog_ensure_table(c, "iot", "other", &other, &eb), TARN_OK);

    tarn_file f = mkfile("processed/iot/readings/1-10.parquet", "processed", NULL, 1, 10, 5, 100);
    REQUIRE_CALL(tarn_catalog_publish(c, t.id, cols_v1, 2, &f, 1, 10, &eb), TARN_OK);
    f.rows = 10;
    f.bytes = 200;
    REQUIRE_CALL(tarn_catalog_publish(c, t.id, cols_v1, 2, &f, 1, 11, &eb), TARN_OK);

    tarn_file *files = NULL;
    size_t n = 0;
    REQUIRE_CALL(tarn_catalog_live_files(c, t.id, NULL, &files, &n, &eb), TARN_OK);
    REQUIRE(n == 1);
    CHECK_EQ_INT(files[0].rows, 10);
    CHECK_EQ_INT(files[0].bytes, 200);
    CHECK_EQ_STR(files[0].partition, "");
    tarn_files_free(files, n);

    /* The same path in another table is refused. */
    CHECK_EQ_INT(tarn_catalog_publish(c, other.id, NULL, 0, &f, 1, 1, &eb), TARN_ECONFLICT);
    CHECK_EQ_INT(live_count(c, other.id, NULL), 0);

    tarn_table_info_free(&t);
    tarn_table_info_free(&other);
    close_tmp(c, dir);
}

TEST(partitions_counted_and_decoded)
{
    char *dir, path[512];
    tarn_errbuf eb = {{0}};
    tarn_table_info t;
    tarn_catalog *c = open_tmp(&dir, path, sizeof path);
    REQUIRE(c);
    REQUIRE_CALL(tarn_catalog_ensure_table(c, "geo", "cities", &t, &eb), TARN_OK);

    const char *pa = "country=S%C3%A3o%20Paulo/day=2025-11-25";
    const char *pb = "country=a%2Fb%25c%22d/day=2025-11-26";
    tarn_file files[] = {
        mkfile("processed/geo/cities/country=S%C3%A3o%20Paulo/day=2025-11-25/1-4.parquet", "processed", pa, 1, 4,
               4, 400),
        mkfile("processed/geo/cities/country=S%C3%A3o%20Paulo/day=2025-11-25/5-6.parquet", "processed", pa, 5, 6,
               2, 200),
        mkfile("raw/geo/cities/ingestion_date=2025-11-25/1-6.json.gz", "raw", "ingestion_date=2025-11-25", 1, 6,
               6, 60),
        mkfile("processed/geo/cities/country=a%2Fb%25c%22d/day=2025-11-26/1-6.parquet", "processed", pb, 1, 6, 1,
               10),
    };
    REQUIRE_CALL(tarn_catalog_publish(c, t.id, cols_v1, 2, files, 4, 6, &eb), TARN_OK);

    tarn_buf b;
    tarn_buf_init(&b, 0);
    REQUIRE_CALL(tarn_catalog_table_json(c, "geo", "cities", &b, &eb), TARN_OK);
    json_t *j = parse(&b);
    REQUIRE(j);
    json_t *parts = json_object_get(j, "partitions");
    REQUIRE(json_array_size(parts) == 3);
    /* Ordered by name: country=S..., country=a..., ingestion_date=... */
    json_t *p0 = json_array_get(parts, 0), *p1 = json_array_get(parts, 1), *p2 = json_array_get(parts, 2);
    CHECK_EQ_STR(jstr(p0, "name"), pa);
    CHECK_EQ_STR(jstr(json_object_get(p0, "values"), "country"), "S\xc3\xa3o Paulo");
    CHECK_EQ_STR(jstr(json_object_get(p0, "values"), "day"), "2025-11-25");
    CHECK_EQ_INT(json_object_size(json_object_get(p0, "values")), 2);
    CHECK_EQ_INT(jint(p0, "files"), 2);
    CHECK_EQ_INT(jint(p0, "rows"), 6);
    CHECK_EQ_INT(jint(p0, "bytes"), 600);
    CHECK_EQ_STR(jstr(p1, "name"), pb);
    CHECK_EQ_STR(jstr(json_object_get(p1, "values"), "country"), "a/b%c\"d");
    CHECK_EQ_INT(jint(p1, "files"), 1);
    /* A raw-only partition lists no processed files. */
    CHECK_EQ_STR(jstr(p2, "name"), "ingestion_date=2025-11-25");
    CHECK_EQ_INT(jint(p2, "files"), 0);
    CHECK_EQ_INT(jint(p2, "rows"), 0);
    CHECK_EQ_INT(jint(p2, "bytes"), 0);
    /* Table totals count the processed zone only. */
    CHECK_EQ_INT(jint(j, "files"), 3);
    CHECK_EQ_INT(jint(j, "rows"), 7);
    CHECK_EQ_INT(jint(j, "bytes"), 610);
    json_decref(j);
    tarn_buf_free(&b);

    /* The partition of a file comes back as given. */
    tarn_file *got = NULL;
    size_t n = 0;
    REQUIRE_CALL(tarn_catalog_live_files(c, t.id, "raw", &got, &n, &eb), TARN_OK);
    REQUIRE(n == 1);
    CHECK_EQ_STR(got[0].partition, "ingestion_date=2025-11-25");
    tarn_files_free(got, n);

    /* A malformed escape is kept as it is. */
    tarn_file odd = mkfile("processed/geo/cities/k=100%/7-7.parquet", "processed", "k=100%/j=%zz", 7, 7, 1, 1);
    REQUIRE_CALL(tarn_catalog_publish(c, t.id, NULL, 0, &odd, 1, 7, &eb), TARN_OK);
    tarn_buf_init(&b, 0);
    REQUIRE_CALL(tarn_catalog_table_json(c, "geo", "cities", &b, &eb), TARN_OK);
    j = parse(&b);
    REQUIRE(j);
    parts = json_object_get(j, "partitions");
    REQUIRE(json_array_size(parts) == 4);
    json_t *p3 = json_array_get(parts, 3);
    CHECK_EQ_STR(jstr(json_object_get(p3, "values"), "k"), "100%");
    CHECK_EQ_STR(jstr(json_object_get(p3, "values"), "j"), "%zz");
    json_decref(j);
    tarn_buf_free(&b);

    tarn_table_info_free(&t);
    close_tmp(c, dir);
}

TEST(live_files_by_zone)
{
    char *dir, path[512];
    tarn_errbuf eb = {{0}};
    tarn_table_info t;
    tarn_catalog *c = open_tmp(&dir, path, sizeof path);
    REQUIRE(c);
    REQUIRE_CALL(tarn_catalog_ensure_table(c, "iot", "readings", &t, &eb), TARN_OK);
    tarn_file files[] = {
        mkfile("raw/iot/readings/d=1/1-2.json.gz", "raw", "d=1", 1, 2, 2, 20),
        mkfile("processed/iot/readings/d=1/3-4.parquet", "processed", "d=1", 3, 4, 2, 20),
        mkfile("processed/iot/readings/d=1/1-2.parquet", "processed", "d=1", 1, 2, 2, 20),
        mkfile("curated/iot/readings/all.parquet", "curated", NULL, 1, 4, 4, 40),
    };
    REQUIRE_CALL(tarn_catalog_publish(c, t.id, cols_v1, 2, files, 4, 4, &eb), TARN_OK);

    tarn_file *got = NULL;
    size_t n = 0;
    REQUIRE_CALL(tarn_catalog_live_files(c, t.id, "processed", &got, &n, &eb), TARN_OK);
    REQUIRE(n == 2);
    CHECK_EQ_STR(got[0].path, "processed/iot/readings/d=1/1-2.parquet");
    CHECK_EQ_STR(got[1].path, "processed/iot/readings/d=1/3-4.parquet");
    CHECK_EQ_STR(got[0].zone, "processed");
    CHECK_EQ_STR(got[0].partition, "d=1");
    tarn_files_free(got, n);

    REQUIRE_CALL(tarn_catalog_live_files(c, t.id, "raw", &got, &n, &eb), TARN_OK);
    REQUIRE(n == 1);
    CHECK_EQ_STR(got[0].path, "raw/iot/readings/d=1/1-2.json.gz");
    tarn_files_free(got, n);

    REQUIRE_CALL(tarn_catalog_live_files(c, t.id, NULL, &got, &n, &eb), TARN_OK);
    REQUIRE(n == 4);
    CHECK_EQ_STR(got[0].path, "curated/iot/readings/all.parquet");
    CHECK_EQ_STR(got[3].path, "raw/iot/readings/d=1/1-2.json.gz");
    tarn_files_free(got, n);

    CHECK_EQ_INT(live_count(c, t.id, "curated"), 1);
    CHECK_EQ_INT(live_count(c, t.id, "nosuchzone"), 0);
    tarn_table_info_free(&t);
    close_tmp(c, dir);
}

TEST(replace_files_retire_and_forget)
{
    char *dir, path[512];
    tarn_errbuf eb = {{0}};
    tarn_table_info t;
    tarn_catalog *c = open_tmp(&dir, path, sizeof path);
    REQUIRE(c);
    REQUIRE_CALL(tarn_catalog_ensure_table(c, "iot", "readings", &t, &eb), TARN_OK);
    tarn_file files[] = {
        mkfile("processed/iot/readings/d=1/1-2.parquet", "processed", "d=1", 1, 2, 2, 20),
        mkfile("processed/iot/readings/d=1/3-4.parquet", "processed", "d=1", 3, 4, 2, 20),
        mkfile("processed/iot/readings/d=1/5-6.parquet", "processed", "d=1", 5, 6, 2, 20),
    };
    REQUIRE_CALL(tarn_catalog_publish(c, t.id, cols_v1, 2, files, 3, 6, &eb), TARN_OK);
    REQUIRE_CALL(tarn_catalog_publish(c, t.id, cols_v2, 3, NULL, 0, 7, &eb), TARN_OK); /* now at version 2 */

    int64_t before = tarn_now_ms();
    const char *old[] = {files[0].path, files[1].path};
    tarn_file merged = mkfile("processed/iot/readings/d=1/1-4.parquet", "processed", "d=1", 1, 4, 4, 35);
    CHECK_EQ_INT(tarn_catalog_replace_files(c, t.id, old, 2, &merged, &eb), TARN_OK);

    tarn_file *got = NULL;
    size_t n = 0;
    REQUIRE_CALL(tarn_catalog_live_files(c, t.id, "processed", &got, &n, &eb), TARN_OK);
    REQUIRE(n == 2);
    CHECK_EQ_STR(got[0].path, "processed/iot/readings/d=1/1-4.parquet");
    CHECK_EQ_INT(got[0].rows, 4);
    CHECK_EQ_INT(got[0].schema_version, 2); /* 0 in the struct: the table's current version */
    CHECK_EQ_STR(got[1].path, "processed/iot/readings/d=1/5-6.parquet");
    tarn_files_free(got, n);

    /* Conflict: one old path is already retired. Nothing changes, not even
     * the live one listed beside it. */
    const char *stale[] = {files[2].path, files[0].path};
    tarn_file merged2 = mkfile("processed/iot/readings/d=1/1-6.parquet", "processed", "d=1", 1, 6, 6, 50);
    merged2.schema_version = 1;
    CHECK_EQ_INT(tarn_catalog_replace_files(c, t.id, stale, 2, &merged2, &eb), TARN_ECONFLICT);
    CHECK(strstr(eb.msg, files[0].path) != NULL);
    REQUIRE_CALL(tarn_catalog_live_files(c, t.id, "processed", &got, &n, &eb), TARN_OK);
    REQUIRE(n == 2);
    CHECK_EQ_STR(got[1].path, files[2].path);
    tarn_files_free(got, n);
    /* An unknown path conflicts too. */
    const char *unknown[] = {"processed/iot/readings/d=1/nope.parquet"};
    CHECK_EQ_INT(tarn_catalog_replace_files(c, t.id, unknown, 1, &merged2, &eb), TARN_ECONFLICT);
    CHECK_EQ_INT(live_count(c, t.id, NULL), 2);

    /* A given schema version is kept. */
    const char *last[] = {"processed/iot/readings/d=1/1-4.parquet", files[2].path};
    CHECK_EQ_INT(tarn_catalog_replace_files(c, t.id, last, 2, &merged2, &eb), TARN_OK);
    REQUIRE_CALL(tarn_catalog_live_files(c, t.id, NULL, &got, &n, &eb), TARN_OK);
    REQUIRE(n == 1);
    CHECK_EQ_INT(got[0].schema_version, 1);
    tarn_files_free(got, n);

    /* Retired files: none retired before the replace, four after. */
    REQUIRE_CALL(tarn_catalog_retired_before(c, before - 1, &got, &n, &eb), TARN_OK);
    CHECK_EQ_INT(n, 0);
    tarn_files_free(got, n);
    REQUIRE_CALL(tarn_catalog_retired_before(c, tarn_now_ms() + 1, &got, &n, &eb), TARN_OK);
    REQUIRE(n == 4);
    for (size_t i = 0; i < n; i++) {
        CHECK_EQ_STR(got[i].zone, "processed");
        CHECK_EQ_INT(tarn_catalog_forget_file(c, got[i].path, &eb), TARN_OK);
    }
    CHECK_EQ_INT(tarn_catalog_forget_file(c, got[0].path, &eb), TARN_ENOTFOUND);
    tarn_files_free(got, n);
    REQUIRE_CALL(tarn_catalog_retired_before(c, tarn_now_ms() + 1, &got, &n, &eb), TARN_OK);
    CHECK_EQ_INT(n, 0);
    tarn_files_free(got, n);

    /* A live file cannot be forgotten. */
    CHECK_EQ_INT(tarn_catalog_forget_file(c, merged2.path, &eb), TARN_ECONFLICT);
    CHECK_EQ_INT(live_count(c, t.id, NULL), 1);

    tarn_table_info_free(&t);
    close_tmp(c, dir);
}

TEST(republished_retired_path_is_live_again)
{
    char *dir, path[512];
    tarn_errbuf eb = {{0}};
    tarn_table_info t;
    tarn_catalog *c = open_tmp(&dir, path, sizeof path);
    REQUIRE(c);
    REQUIRE_CALL(tarn_catalog_ensure_table(c, "iot", "readings", &t, &eb), TARN_OK);
    tarn_file f = mkfile("processed/iot/readings/1-2.parquet", "processed", NULL, 1, 2, 2, 20);
    REQUIRE_CALL(tarn_catalog_publish(c, t.id, cols_v1, 2, &f, 1, 2, &eb), TARN_OK);
    const char *old[] = {f.path};
    REQUIRE_CALL(tarn_catalog_replace_files(c, t.id, old, 1, NULL, &eb), TARN_OK);
    CHECK_EQ_INT(live_count(c, t.id, NULL), 0);

    /* The file on disk is the new one: its row must not be garbage-collected. */
    REQUIRE_CALL(tarn_catalog_publish(c, t.id, NULL, 0, &f, 1, 3, &eb), TARN_OK);
    CHECK_EQ_INT(live_count(c, t.id, NULL), 1);
    tarn_file *got = NULL;
    size_t n = 0;
    REQUIRE_CALL(tarn_catalog_retired_before(c, tarn_now_ms() + 1000, &got, &n, &eb), TARN_OK);
    CHECK_EQ_INT(n, 0);
    tarn_files_free(got, n);
    tarn_table_info_free(&t);
    close_tmp(c, dir);
}

TEST(list_tables_order)
{
    char *dir, path[512];
    tarn_errbuf eb = {{0}};
    tarn_table_info t;
    tarn_catalog *c = open_tmp(&dir, path, sizeof path);
    REQUIRE(c);
    const char *names[][2] = {{"b", "z"}, {"a", "y"}, {"b", "a"}, {"a", "x"}};
    for (size_t i = 0; i < 4; i++) {
        REQUIRE_CALL(tarn_catalog_ensure_table(c, names[i][0], names[i][1], &t, &eb), TARN_OK);
        if (i == 1) REQUIRE_CALL(tarn_catalog_publish(c, t.id, cols_v2, 3, NULL, 0, 1, &eb), TARN_OK);
        tarn_table_info_free(&t);
    }
    tarn_table_info *all = NULL;
    size_t n = 0;
    REQUIRE_CALL(tarn_catalog_list_tables(c, &all, &n, &eb), TARN_OK);
    REQUIRE(n == 4);
    CHECK_EQ_STR(all[0].db, "a");
    CHECK_EQ_STR(all[0].name, "x");
    CHECK_EQ_STR(all[1].db, "a");
    CHECK_EQ_STR(all[1].name, "y");
    CHECK_EQ_INT(all[1].ncolumns, 3);
    CHECK_EQ_STR(all[1].columns[2].name, "tags");
    CHECK_EQ_STR(all[2].db, "b");
    CHECK_EQ_STR(all[2].name, "a");
    CHECK_EQ_STR(all[3].db, "b");
    CHECK_EQ_STR(all[3].name, "z");
    CHECK_EQ_INT(all[3].ncolumns, 0);
    tarn_table_infos_free(all, n);
    close_tmp(c, dir);
}

TEST(databases_json_values)
{
    char *dir, path[512];
    tarn_errbuf eb = {{0}};
    tarn_table_info t;
    tarn_catalog *c = open_tmp(&dir, path, sizeof path);
    REQUIRE(c);
    tarn_buf b;
    tarn_buf_init(&b, 0);

    REQUIRE_CALL(tarn_catalog_databases_json(c, &b, &eb), TARN_OK);
    CHECK_EQ_STR(b.data, "{\"databases\":[]}");
    tarn_buf_reset(&b);

    REQUIRE_CALL(tarn_catalog_ensure_table(c, "web", "a", &t, &eb), TARN_OK);
    tarn_table_info_free(&t);
    REQUIRE_CALL(tarn_catalog_ensure_table(c, "iot", "readings", &t, &eb), TARN_OK);
    tarn_table_info_free(&t);
    REQUIRE_CALL(tarn_catalog_ensure_table(c, "web", "b", &t, &eb), TARN_OK);
    int64_t created = 0;
    tarn_table_info_free(&t);

    tarn_buf_append_str(&b, "prefix");
    REQUIRE_CALL(tarn_catalog_databases_json(c, &b, &eb), TARN_OK);
    CHECK(strncmp(b.data, "prefix{", 7) == 0); /* appends */
    tarn_buf tail;
    tarn_buf_init(&tail, 0);
    tarn_buf_append_str(&tail, b.data + 6);
    json_t *j = parse(&tail);
    REQUIRE(j);
    json_t *dbs = json_object_get(j, "databases");
    REQUIRE(json_array_size(dbs) == 2);
    json_t *d0 = json_array_get(dbs, 0), *d1 = json_array_get(dbs, 1);
    CHECK_EQ_STR(jstr(d0, "name"), "iot");
    CHECK_EQ_INT(jint(d0, "tables"), 1);
    CHECK_EQ_STR(jstr(d1, "name"), "web");
    CHECK_EQ_INT(jint(d1, "tables"), 2);
    CHECK_EQ_INT(json_object_size(d0), 3);

    /* created is the database's creation time in ISO-8601 UTC. */
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    REQUIRE_CALL(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_prepare_v2(db, "SELECT created_ms FROM databases WHERE name = 'iot'", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        created = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    char iso[32];
    tarn_format_iso8601(created * 1000, iso);
    CHECK(created > 0);
    CHECK_EQ_STR(jstr(d0, "created"), iso);
    CHECK_EQ_INT(strlen(jstr(d0, "created")), 20);
    json_decref(j);
    tarn_buf_free(&tail);
    tarn_buf_free(&b);
    close_tmp(c, dir);
}

TEST(tables_json_values)
{
    char *dir, path[512];
    tarn_errbuf eb = {{0}};
    tarn_table_info t;
    tarn_catalog *c = open_tmp(&dir, path, sizeof path);
    REQUIRE(c);
    REQUIRE_CALL(tarn_catalog_ensure_table(c, "iot", "readings", &t, &eb), TARN_OK);
    tarn_file files[] = {
        mkfile("processed/iot/readings/d=1/1-30.parquet", "processed", "d=1", 1, 30, 30, 3000),
        mkfile("processed/iot/readings/d=2/31-42.parquet", "processed", "d=2", 31, 42, 12, 2120),
        mkfile("raw/iot/readings/d=1/1-42.json.gz", "raw", "d=1", 1, 42, 42, 999),
    };
    REQUIRE_CALL(tarn_catalog_publish(c, t.id, cols_v2, 3, files, 3, 42, &eb), TARN_OK);
    tarn_table_info_free(&t);
    REQUIRE_CALL(tarn_catalog_ensure_table(c, "web", "clicks", &t, &eb), TARN_OK);
    tarn_table_info_free(&t);

    tarn_buf b;
    tarn_buf_init(&b, 0);
    REQUIRE_CALL(tarn_catalog_tables_json(c, NULL, &b, &eb), TARN_OK);
    json_t *j = parse(&b);
    REQUIRE(j);
    json_t *ts = json_object_get(j, "tables");
    REQUIRE(json_array_size(ts) == 2);
    json_t *t0 = json_array_get(ts, 0), *t1 = json_array_get(ts, 1);
    CHECK_EQ_STR(jstr(t0, "database"), "iot");
    CHECK_EQ_STR(jstr(t0, "name"), "readings");
    CHECK_EQ_INT(jint(t0, "columns"), 3);
    CHECK_EQ_INT(jint(t0, "files"), 2);
    CHECK_EQ_INT(jint(t0, "rows"), 42);
    CHECK_EQ_INT(jint(t0, "bytes"), 5120);
    CHECK_EQ_INT(jint(t0, "delivered_seq"), 42);
    CHECK_EQ_INT(jint(t0, "raw_seq"), 0); /* published with tarn_catalog_publish only */
    CHECK_EQ_INT(json_object_size(t0), 8);
    CHECK_EQ_STR(jstr(t1, "database"), "web");
    CHECK_EQ_STR(jstr(t1, "name"), "clicks");
    CHECK_EQ_INT(jint(t1, "columns"), 0);
    CHECK_EQ_INT(jint(t1, "files"), 0);
    CHECK_EQ_INT(jint(t1, "rows"), 0);
    CHECK_EQ_INT(jint(t1, "bytes"), 0);
    CHECK_EQ_INT(jint(t1, "delivered_seq"), 0);
    json_decref(j);

    tarn_buf_reset(&b);
    REQUIRE_CALL(tarn_catalog_tables_json(c, "web", &b, &eb), TARN_OK);
    j = parse(&b);
    REQUIRE(j);
    ts = json_object_get(j, "tables");
    REQUIRE(json_array_size(ts) == 1);
    CHECK_EQ_STR(jstr(json_array_get(ts, 0), "name"), "clicks");
    json_decref(j);

    tarn_buf_reset(&b);
    tarn_buf_append_str(&b, "keep");
    CHECK_EQ_INT(tarn_catalog_tables_json(c, "nope", &b, &eb), TARN_ENOTFOUND);
    CHECK_EQ_STR(eb.msg, "database nope not found");
    CHECK_EQ_STR(b.data, "keep"); /* output untouched on error */
    tarn_buf_free(&b);
    close_tmp(c, dir);
}

TEST(table_json_values)
{
    char *dir, path[512];
    tarn_errbuf eb = {{0}};
    tarn_table_info t;
    tarn_catalog *c = open_tmp(&dir, path, sizeof path);
    REQUIRE(c);
    REQUIRE_CALL(tarn_catalog_ensure_table(c, "iot", "readings", &t, &eb), TARN_OK);
    const tarn_column cols[] = {{"source", "VARCHAR"},
                                {"data", "STRUCT(device_id VARCHAR, temperature DOUBLE)"},
                                {"we\"ird\\name\n", "VARCHAR"},
                                {"_ingested_at", "TIMESTAMP"},
                                {"_seq", "BIGINT"}};
    tarn_file files[] = {
        mkfile("processed/iot/readings/ingestion_date=2026-11-22/1-30.parquet", "processed",
               "ingestion_date=2026-11-22", 1, 30, 30, 3000),
        mkfile("processed/iot/readings/ingestion_date=2026-11-22/31-42.parquet", "processed",
               "ingestion_date=2026-11-22", 31, 42, 12, 2120),
    };
    REQUIRE_CALL(tarn_catalog_publish(c, t.id, cols, 5, files, 2, 42, &eb), TARN_OK);
    tarn_table_info_free(&t);
    REQUIRE_CALL(tarn_catalog_get_table(c, "iot", "readings", &t, &eb), TARN_OK);

    tarn_buf b;
    tarn_buf_init(&b, 0);
    REQUIRE_CALL(tarn_catalog_table_json(c, "iot", "readings", &b, &eb), TARN_OK);
    json_t *j = parse(&b);
    REQUIRE(j);
    CHECK_EQ_STR(jstr(j, "database"), "iot");
    CHECK_EQ_STR(jstr(j, "name"), "readings");
    CHECK_EQ_INT(jint(j, "schema_version"), 1);
    CHECK_EQ_INT(jint(j, "delivered_seq"), 42);
    CHECK_EQ_INT(jint(j, "files"), 2);
    CHECK_EQ_INT(jint(j, "rows"), 42);
    CHECK_EQ_INT(jint(j, "bytes"), 5120);
    CHECK_EQ_INT(jint(j, "raw_seq"), 0);
    CHECK_EQ_INT(json_object_size(j), 13);

    json_t *jc = json_object_get(j, "columns");
    REQUIRE(json_array_size(jc) == 5);
    for (size_t i = 0; i < 5; i++) {
        CHECK_EQ_STR(jstr(json_array_get(jc, i), "name"), cols[i].name);
        CHECK_EQ_STR(jstr(json_array_get(jc, i), "type"), cols[i].type);
    }

    json_t *parts = json_object_get(j, "partitions");
    REQUIRE(json_array_size(parts) == 1);
    json_t *p = json_array_get(parts, 0);
    CHECK_EQ_STR(jstr(p, "name"), "ingestion_date=2026-11-22");
    CHECK_EQ_STR(jstr(json_object_get(p, "values"), "ingestion_date"), "2026-11-22");
    CHECK_EQ_INT(jint(p, "files"), 2);
    CHECK_EQ_INT(jint(p, "rows"), 42);
    CHECK_EQ_INT(jint(p, "bytes"), 5120);

    json_t *vs = json_object_get(j, "schema_versions");
    REQUIRE(json_array_size(vs) == 1);
    json_t *v = json_array_get(vs, 0);
    CHECK_EQ_INT(jint(v, "version"), 1);
    CHECK_EQ_INT(json_array_size(json_object_get(v, "columns")), 5);
    CHECK_EQ_STR(jstr(json_array_get(json_object_get(v, "columns"), 2), "name"), cols[2].name);
    CHECK(jstr(v, "created") && strlen(jstr(v, "created")) == 20);

    char iso[32];
    tarn_format_iso8601(t.created_ms * 1000, iso);
    CHECK_EQ_STR(jstr(j, "created"), iso);
    tarn_format_iso8601(t.updated_ms * 1000, iso);
    CHECK_EQ_STR(jstr(j, "updated"), iso);
    CHECK(iso[4] == '-' && iso[10] == 'T' && iso[19] == 'Z');
    json_decref(j);

    /* A table with nothing published yet. */
    tarn_table_info e;
    REQUIRE_CALL(tarn_catalog_ensure_table(c, "iot", "empty", &e, &eb), TARN_OK);
    tarn_table_info_free(&e);
    tarn_buf_reset(&b);
    REQUIRE_CALL(tarn_catalog_table_json(c, "iot", "empty", &b, &eb), TARN_OK);
    j = parse(&b);
    REQUIRE(j);
    CHECK_EQ_INT(jint(j, "schema_version"), 0);
    CHECK_EQ_INT(json_array_size(json_object_get(j, "columns")), 0);
    CHECK_EQ_INT(json_array_size(json_object_get(j, "partitions")), 0);
    CHECK_EQ_INT(json_array_size(json_object_get(j, "schema_versions")), 0);
    json_decref(j);

    tarn_buf_reset(&b);
    CHECK_EQ_INT(tarn_catalog_table_json(c, "iot", "nope", &b, &eb), TARN_ENOTFOUND);
    CHECK_EQ_STR(eb.msg, "table iot.nope not found");
    CHECK_EQ_INT(b.len, 0);
    tarn_buf_free(&b);
    tarn_table_info_free(&t);
    close_tmp(c, dir);
}

TEST(persists_across_reopen)
{
    char *dir, path[512];
    tarn_errbuf eb = {{0}};
    tarn_table_info t;
    tarn_catalog *c = open_tmp(&dir, path, sizeof path);
    REQUIRE(c);
    REQUIRE_CALL(tarn_catalog_ensure_table(c, "iot", "readings", &t, &eb), TARN_OK);
    int64_t id = t.id;
    tarn_table_info_free(&t);
    tarn_file f = mkfile("processed/iot/readings/d=1/1-9.parquet", "processed", "d=1", 1, 9, 9, 90);
    REQUIRE_CALL(tarn_catalog_publish(c, id, cols_v1, 2, &f, 1, 9, &eb), TARN_OK);
    tarn_catalog_close(c);

    c = NULL;
    REQUIRE_CALL(tarn_catalog_open(path, &c, &eb), TARN_OK);
    REQUIRE_CALL(tarn_catalog_get_table(c, "iot", "readings", &t, &eb), TARN_OK);
    CHECK_EQ_INT(t.id, id);
    CHECK_EQ_INT(t.delivered_seq, 9);
    CHECK_EQ_INT(t.schema_version, 1);
    CHECK_EQ_INT(t.ncolumns, 2);
    tarn_table_info_free(&t);
    tarn_file *got = NULL;
    size_t n = 0;
    REQUIRE_CALL(tarn_catalog_live_files(c, id, "processed", &got, &n, &eb), TARN_OK);
    REQUIRE(n == 1);
    CHECK_EQ_STR(got[0].path, f.path);
    CHECK_EQ_STR(got[0].partition, "d=1");
    CHECK_EQ_INT(got[0].rows, 9);
    tarn_files_free(got, n);
    CHECK_EQ_INT(tarn_catalog_publish(c, id, NULL, 0, NULL, 0, 9, &eb), TARN_ECONFLICT);

    /* The catalog is in WAL mode with synchronous=FULL... as seen by another connection. */
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    REQUIRE_CALL(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        CHECK_EQ_STR((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    /* ...and refuses a format from the future. */
    CHECK_EQ_INT(sqlite3_exec(db, "UPDATE meta SET value = '99' WHERE key = 'format_version'", NULL, NULL, NULL),
                 SQLITE_OK);
    sqlite3_close(db);
    tarn_catalog_close(c);
    c = NULL;
    CHECK_EQ_INT(tarn_catalog_open(path, &c, &eb), TARN_EINVAL);
    CHECK(strstr(eb.msg, "format version 99") != NULL);
    CHECK(c == NULL);
    close_tmp(NULL, dir);
}

TEST(publish_raw_follows_processed)
{
    char *dir, path[512];
    tarn_errbuf eb = {{0}};
    tarn_table_info t;
    tarn_catalog *c = open_tmp(&dir, path, sizeof path);
    REQUIRE(c);
    REQUIRE_CALL(tarn_catalog_ensure_table(c, "iot", "readings", &t, &eb), TARN_OK);
    int64_t id = t.id;
    CHECK_EQ_INT(t.raw_seq, 0);
    tarn_table_info_free(&t);

    /* The raw zone cannot pass the processed one. */
    tarn_file r1 = mkfile("raw/iot/readings/d=1/1-5.json.gz", "raw", "d=1", 1, 5, 5, 50);
    CHECK_EQ_INT(tarn_catalog_publish_raw(c, id, &r1, 1, 5, &eb), TARN_ECONFLICT);
    CHECK(strstr(eb.msg, "would pass delivered_seq 0") != NULL);
    CHECK_EQ_INT(live_count(c, id, "raw"), 0);

    tarn_file p1 = mkfile("processed/iot/readings/d=1/1-9.parquet", "processed", "d=1", 1, 9, 9, 90);
    REQUIRE_CALL(tarn_catalog_publish(c, id, cols_v1, 2, &p1, 1, 9, &eb), TARN_OK);
    CHECK_EQ_INT(tarn_catalog_publish_raw(c, id, &r1, 1, 5, &eb), TARN_OK);
    REQUIRE_CALL(tarn_catalog_get_table(c, "iot", "readings", &t, &eb), TARN_OK);
    CHECK_EQ_INT(t.delivered_seq, 9);
    CHECK_EQ_INT(t.raw_seq, 5);
    CHECK_EQ_INT(t.schema_version, 1); /* a raw publish never touches the schema */
    tarn_table_info_free(&t);

    /* A replay, a non-raw file, and a step past the processed zone change nothing. */
    tarn_file r2 = mkfile("raw/iot/readings/d=1/6-10.json.gz", "raw", "d=1", 6, 10, 5, 50);
    tarn_file wrong = mkfile("processed/iot/readings/d=1/6-9.parquet", "processed", "d=1", 6, 9, 4, 40);
    CHECK_EQ_INT(tarn_catalog_publish_raw(c, id, &r1, 1, 5, &eb), TARN_ECONFLICT);
    CHECK(strstr(eb.msg, "raw_seq 5 is not past the published 5") != NULL);
    CHECK_EQ_INT(tarn_catalog_publish_raw(c, id, &wrong, 1, 9, &eb), TARN_EINVAL);
    CHECK_EQ_INT(tarn_catalog_publish_raw(c, id, &r2, 1, 10, &eb), TARN_ECONFLICT);
    CHECK_EQ_INT(live_count(c, id, "raw"), 1);
    CHECK_EQ_INT(live_count(c, id, "processed"), 1);

    /* Up to the processed checkpoint exactly; both show in the JSON. */
    tarn_file r3 = mkfile("raw/iot/readings/d=1/6-9.json.gz", "raw", "d=1", 6, 9, 4, 40);
    CHECK_EQ_INT(tarn_catalog_publish_raw(c, id, &r3, 1, 9, &eb), TARN_OK);
    CHECK_EQ_INT(live_count(c, id, "raw"), 2);
    tarn_buf b;
    tarn_buf_init(&b, 0);
    REQUIRE_CALL(tarn_catalog_table_json(c, "iot", "readings", &b, &eb), TARN_OK);
    json_t *j = parse(&b);
    REQUIRE(j);
    CHECK_EQ_INT(jint(j, "delivered_seq"), 9);
    CHECK_EQ_INT(jint(j, "raw_seq"), 9);
    CHECK_EQ_INT(jint(j, "files"), 1); /* totals count the processed zone */
    json_decref(j);
    tarn_buf_free(&b);
    tarn_buf_init(&b, 0);
    REQUIRE_CALL(tarn_catalog_tables_json(c, NULL, &b, &eb), TARN_OK);
    j = parse(&b);
    REQUIRE(j);
    CHECK_EQ_INT(jint(json_array_get(json_object_get(j, "tables"), 0), "raw_seq"), 9);
    json_decref(j);
    tarn_buf_free(&b);
    close_tmp(c, dir);
}

/* A catalog of format version 1 (both zones published together, one
 * checkpoint) opens as version 2 with raw_seq = delivered_seq. */
TEST(migrates_format_1)
{
    char *dir, path[512];
    tarn_errbuf eb = {{0}};
    tarn_table_info t;
    tarn_catalog *c = open_tmp(&dir, path, sizeof path);
    REQUIRE(c);
    REQUIRE_CALL(tarn_catalog_ensure_table(c, "iot", "readings", &t, &eb), TARN_OK);
    int64_t id = t.id;
    tarn_table_info_free(&t);
    tarn_file f = mkfile("processed/iot/readings/d=1/1-9.parquet", "processed", "d=1", 1, 9, 9, 90);
    REQUIRE_CALL(tarn_catalog_publish(c, id, cols_v1, 2, &f, 1, 9, &eb), TARN_OK);
    tarn_catalog_close(c);

    /* Turn it back into version 1: no raw_seq column. */
    sqlite3 *db = NULL;
    REQUIRE_CALL(sqlite3_open(path, &db), SQLITE_OK);
    CHECK_EQ_INT(sqlite3_exec(db,
                              "ALTER TABLE tables DROP COLUMN raw_seq;"
                              "UPDATE meta SET value = '1' WHERE key = 'format_version';",
                              NULL, NULL, NULL),
                 SQLITE_OK);
    sqlite3_close(db);

    c = NULL;
    REQUIRE_CALL(tarn_catalog_open(path, &c, &eb), TARN_OK);
    REQUIRE_CALL(tarn_catalog_get_table(c, "iot", "readings", &t, &eb), TARN_OK);
    CHECK_EQ_INT(t.delivered_seq, 9);
    CHECK_EQ_INT(t.raw_seq, 9);
    CHECK_EQ_INT(t.ncolumns, 2);
    tarn_table_info_free(&t);
    tarn_catalog_close(c);

    REQUIRE_CALL(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    const char *version = NULL;
    if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'format_version'", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        version = (const char *)sqlite3_column_text(st, 0);
    CHECK(version && strcmp(version, "2") == 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    close_tmp(NULL, dir);
}

TEST(open_errors)
{
    tarn_errbuf eb = {{0}};
    tarn_catalog *c = NULL;
    char *dir = test_tmpdir("catalog");
    REQUIRE(dir);
    char path[512];
    snprintf(path, sizeof path, "%s/missing/catalog.db", dir);
    CHECK(tarn_catalog_open(path, &c, &eb) != TARN_OK);
    CHECK(c == NULL);
    CHECK(strstr(eb.msg, "unable to open") != NULL);

    snprintf(path, sizeof path, "%s/notadb", dir);
    static const char junk[] = "this is not an SQLite database, but it is long enough to look like a header...";
    REQUIRE_CALL(tarn_write_file_atomic(path, junk, sizeof junk, 0644, &eb), TARN_OK);
    CHECK_EQ_INT(tarn_catalog_open(path, &c, &eb), TARN_ECORRUPT);
    CHECK(strstr(eb.msg, "not a database") != NULL);
    CHECK(c == NULL);
    tarn_rm_rf(dir);
    free(dir);
}

struct worker_arg {
    tarn_catalog *c;
    int index;
    int failures;
};

enum { WORKERS = 4, PUBLISHES = 25 };

static void *publish_worker(void *p)
{
    struct worker_arg *a = p;
    tarn_errbuf eb = {{0}};
    tarn_table_info t;
    char table[32], fpath[128];
    snprintf(table, sizeof table, "t%d", a->index);
    if (tarn_catalog_ensure_table(a->c, "conc", table, &t, &eb) != TARN_OK) {
        printf("  worker %d: %s\n", a->index, eb.msg);
        a->failures++;
        return NULL;
    }
    for (int i = 1; i <= PUBLISHES; i++) {
        snprintf(fpath, sizeof fpath, "processed/conc/%s/d=1/%d-%d.parquet", table, i, i);
        tarn_file f = mkfile(fpath, "processed", "d=1", i, i, 1, 10);
        int rc = tarn_catalog_publish(a->c, t.id, cols_v1, 2, &f, 1, i, &eb);
        if (rc != TARN_OK) {
            printf("  worker %d publish %d: %s: %s\n", a->index, i, tarn_err_name(rc), eb.msg);
            a->failures++;
        }
        tarn_buf b;
        tarn_buf_init(&b, 0);
        if (tarn_catalog_tables_json(a->c, NULL, &b, &eb) != TARN_OK) a->failures++;
        tarn_buf_free(&b);
    }
    tarn_table_info_free(&t);
    return NULL;
}

TEST(concurrent_publishes_all_land)
{
    char *dir, path[512];
    tarn_errbuf eb = {{0}};
    tarn_catalog *c = open_tmp(&dir, path, sizeof path);
    REQUIRE(c);
    pthread_t th[WORKERS];
    struct worker_arg args[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        args[i] = (struct worker_arg){c, i, 0};
        REQUIRE_CALL(pthread_create(&th[i], NULL, publish_worker, &args[i]), 0);
    }
    for (int i = 0; i < WORKERS; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ_INT(args[i].failures, 0);
    }
    tarn_table_info *all = NULL;
    size_t n = 0;
    REQUIRE_CALL(tarn_catalog_list_tables(c, &all, &n, &eb), TARN_OK);
    CHECK_EQ_INT(n, WORKERS);
    for (size_t i = 0; i < n; i++) {
        CHECK_EQ_INT(all[i].delivered_seq, PUBLISHES);
        CHECK_EQ_INT(all[i].schema_version, 1);
        CHECK_EQ_INT(live_count(c, all[i].id, "processed"), PUBLISHES);
    }
    tarn_table_infos_free(all, n);
    close_tmp(c, dir);
}

int main(void)
{
    RUN(ensure_table_creates_and_is_idempotent);
    RUN(get_table_not_found);
    RUN(publish_schema_versions);
    RUN(publish_stale_seq_conflicts_and_changes_nothing);
    RUN(publish_same_path_replaces);
    RUN(partitions_counted_and_decoded);
    RUN(live_files_by_zone);
    RUN(replace_files_retire_and_forget);
    RUN(republished_retired_path_is_live_again);
    RUN(list_tables_order);
    RUN(databases_json_values);
    RUN(tables_json_values);
    RUN(table_json_values);
    RUN(persists_across_reopen);
    RUN(publish_raw_follows_processed);
    RUN(migrates_format_1);
    RUN(open_errors);
    RUN(concurrent_publishes_all_land);
    return test_main_end();
}
