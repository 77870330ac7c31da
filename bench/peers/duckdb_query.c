/* duckdb_query.c - plain DuckDB on Tarn's Parquet files, the peer of the
 * query benchmark.
 *
 *   duckdb_query [--reps N] [--threads N] [--read-opts OPTS] [--footer-cache 1] FILES.txt VIEW SQL [SQL ...]
 *
 * FILES.txt lists Parquet files, one path a line (the files Tarn published
 * for the table). VIEW is a name like "bench.users": the program creates
 * the schema and
 *   CREATE VIEW bench.users AS SELECT * FROM read_parquet([files...] [, OPTS])
 * so the SQL runs unchanged. Each SQL runs once to warm up, then N times
 * (default 20); the time of one run is duckdb_query() returning the whole
 * materialized result. --footer-cache 1 sets parquet_metadata_cache, which
 * Tarn sets and plain DuckDB does not (its default is off). Prints one JSON line: per query the median, min and
 * max in milliseconds and the row count, then the peak RSS.
 */
#define _GNU_SOURCE
#include <duckdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
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
        fprintf(stderr, "duckdb_query: %.200s: %s\n", sql, duckdb_result_error(res));
        exit(1);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* A growable string. */
typedef struct str {
    char *p;
    size_t len, cap;
} str;

static void str_add(str *s, const char *t, size_t n)
{
    if (s->len + n + 1 > s->cap) {
        s->cap = (s->len + n + 1) * 2;
        s->p = realloc(s->p, s->cap);
        if (!s->p) exit(1);
    }
    memcpy(s->p + s->len, t, n);
    s->len += n;
    s->p[s->len] = '\0';
}

static void str_cat(str *s, const char *t) { str_add(s, t, strlen(t)); }

static void str_sql_string(str *s, const char *t)
{
    str_add(s, "'", 1);
    for (; *t; t++) {
        if (*t == '\'') str_add(s, "''", 2);
        else str_add(s, t, 1);
    }
    str_add(s, "'", 1);
}

int main(int argc, char **argv)
{
    int reps = 20, threads = 0, footer_cache = 0, i = 1;
    const char *read_opts = NULL;
    for (; i + 1 < argc && argv[i][0] == '-' && argv[i][1] == '-'; i += 2) {
        if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--read-opts")) read_opts = argv[i + 1];
        else if (!strcmp(argv[i], "--footer-cache")) footer_cache = atoi(argv[i + 1]);
        else break;
    }
    if (argc - i < 3 || reps < 1 || reps > 10000) {
        fprintf(stderr, "usage: duckdb_query [--reps N] [--threads N] [--read-opts OPTS] [--footer-cache 1] FILES.txt VIEW "
                        "SQL [SQL ...]\n");
        return 2;
    }
    const char *list = argv[i], *view = argv[i + 1];
    FILE *f = fopen(list, "r");
    if (!f) {
        perror(list);
        return 1;
    }
    str ddl = {0};
    const char *dot = strchr(view, '.');
    if (dot) {
        str_cat(&ddl, "CREATE SCHEMA IF NOT EXISTS ");
        str_add(&ddl, view, (size_t)(dot - view));
        str_cat(&ddl, "; ");
    }
    str_cat(&ddl, "CREATE VIEW ");
    str_cat(&ddl, view);
    str_cat(&ddl, " AS SELECT * FROM read_parquet([");
    char line[8192];
    int nfiles = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0]) continue;
        if (nfiles++) str_cat(&ddl, ",");
        str_sql_string(&ddl, line);
    }
    fclose(f);
    str_cat(&ddl, "]");
    if (read_opts && read_opts[0]) {
        str_cat(&ddl, ", ");
        str_cat(&ddl, read_opts);
    }
    str_cat(&ddl, ")");

    duckdb_database db;
    duckdb_connection c;
    duckdb_result res;
    if (duckdb_open(NULL, &db) != DuckDBSuccess || duckdb_connect(db, &c) != DuckDBSuccess) {
        fprintf(stderr, "duckdb_query: cannot open DuckDB\n");
        return 1;
    }
    if (threads > 0) {
        snprintf(line, sizeof line, "SET threads=%d", threads);
        run(c, line, &res);
        duckdb_destroy_result(&res);
    }
    if (footer_cache) {
        run(c, "SET GLOBAL parquet_metadata_cache=true", &res);
        duckdb_destroy_result(&res);
    }
    run(c, ddl.p, &res);
    duckdb_destroy_result(&res);

    double *t = calloc((size_t)reps, sizeof *t);
    printf("{\"files\":%d,\"queries\":[", nfiles);
    for (int q = i + 2; q < argc; q++) {
        run(c, argv[q], &res); /* warm-up */
        long long rows = (long long)duckdb_row_count(&res);
        duckdb_destroy_result(&res);
        for (int r = 0; r < reps; r++) {
            double t0 = now_ms();
            run(c, argv[q], &res);
            t[r] = now_ms() - t0;
            duckdb_destroy_result(&res);
        }
        qsort(t, (size_t)reps, sizeof *t, cmp_double);
        double median = reps % 2 ? t[reps / 2] : (t[reps / 2 - 1] + t[reps / 2]) / 2;
        printf("%s{\"median_ms\":%.3f,\"min_ms\":%.3f,\"max_ms\":%.3f,\"rows\":%lld}", q > i + 2 ? "," : "", median,
               t[0], t[reps - 1], rows);
    }
    printf("],\"peak_rss_mb\":%.0f}\n", peak_rss_mb());
    duckdb_disconnect(&c);
    duckdb_close(&db);
    free(t);
    free(ddl.p);
    return 0;
}
