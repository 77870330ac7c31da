/* duckdb_copy.c - DuckDB's own JSON to Parquet, the peer of the delivery
 * benchmark.
 *
 *   duckdb_copy [--no-insertion-order] [--threads N] INPUT.ndjson OUTPUT.parquet
 *
 * Runs, in a fresh in-memory DuckDB,
 *   COPY (SELECT * FROM read_json('INPUT')) TO 'OUTPUT' (FORMAT parquet, COMPRESSION snappy)
 * and prints one JSON line: seconds, rows, output bytes, peak RSS. With
 * --no-insertion-order it first sets preserve_insertion_order=false (what
 * Tarn's writer does). OUTPUT is left for the caller to inspect or delete.
 */
#define _GNU_SOURCE
#include <duckdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Peak RSS in MB from /proc/self/status (VmHWM). Not getrusage: its
 * ru_maxrss keeps the parent's peak across fork + exec. */
static double peak_rss_mb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kb = atof(line + 6);
    if (f) fclose(f);
    return kb / 1024.0;
}

static void run(duckdb_connection c, const char *sql, duckdb_result *res)
{
    if (duckdb_query(c, sql, res) != DuckDBSuccess) {
        fprintf(stderr, "duckdb_copy: %s: %s\n", sql, duckdb_result_error(res));
        exit(1);
    }
}

/* Appends s as a single-quoted SQL string literal. */
static void sql_string(char *out, size_t cap, const char *s)
{
    size_t n = strlen(out);
    if (n + 1 < cap) out[n++] = '\'';
    for (; *s && n + 3 < cap; s++) {
        if (*s == '\'') out[n++] = '\'';
        out[n++] = *s;
    }
    out[n++] = '\'';
    out[n] = '\0';
}

int main(int argc, char **argv)
{
    int no_order = 0, threads = 0, i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--no-insertion-order")) no_order = 1;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else break;
    }
    if (argc - i != 2) {
        fprintf(stderr, "usage: duckdb_copy [--no-insertion-order] [--threads N] INPUT.ndjson OUTPUT.parquet\n");
        return 2;
    }
    duckdb_database db;
    duckdb_connection c;
    duckdb_result res;
    if (duckdb_open(NULL, &db) != DuckDBSuccess || duckdb_connect(db, &c) != DuckDBSuccess) {
        fprintf(stderr, "duckdb_copy: cannot open DuckDB\n");
        return 1;
    }
    char sql[8192];
    if (no_order) {
        run(c, "SET preserve_insertion_order=false", &res);
        duckdb_destroy_result(&res);
    }
    if (threads > 0) {
        snprintf(sql, sizeof sql, "SET threads=%d", threads);
        run(c, sql, &res);
        duckdb_destroy_result(&res);
    }
    snprintf(sql, sizeof sql, "COPY (SELECT * FROM read_json(");
    sql_string(sql, sizeof sql, argv[i]);
    strncat(sql, ")) TO ", sizeof sql - strlen(sql) - 1);
    sql_string(sql, sizeof sql, argv[i + 1]);
    strncat(sql, " (FORMAT parquet, COMPRESSION snappy)", sizeof sql - strlen(sql) - 1);

    double t0 = now_s();
    run(c, sql, &res);
    double dt = now_s() - t0;
    long long rows = (long long)duckdb_rows_changed(&res);
    duckdb_destroy_result(&res);
    duckdb_disconnect(&c);
    duckdb_close(&db);

    struct stat st;
    long long out_bytes = stat(argv[i + 1], &st) == 0 ? (long long)st.st_size : -1;
    printf("{\"seconds\":%.3f,\"rows\":%lld,\"parquet_bytes\":%lld,\"peak_rss_mb\":%.0f,\"preserve_insertion_order\":%s}\n",
           dt, rows, out_bytes, peak_rss_mb(), no_order ? "false" : "true");
    return 0;
}
