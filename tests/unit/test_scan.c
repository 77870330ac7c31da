/* Differential tests for converting the log straight to Parquet
 * (tarn_writer_log_to_parquet, src/delivery/scan.c), with the staged path as
 * the oracle.
 *
 * The delivery has always staged a batch as NDJSON and let DuckDB's JSON
 * reader convert it (tarn_stage_batch, then tarn_writer_ndjson_to_parquet).
 * The new path reads the log and builds the values itself. It must write the
 * same file: a lake whose Parquet depends on which path a batch took would
 * answer the same query differently for the same records. So each corpus is
 * written both ways with the same columns (inferred as the delivery infers
 * them, or given), per UTC date and for the whole range, and the two files
 * must have the same row count, columns and Snappy compression, and the same
 * row for every _seq (compared as text cast from the row, which keeps -0.0,
 * NaN and nested values visible, and as JSON, which tells a string "NULL"
 * from NULL). Where the old path fails (a value that does not fit its
 * column), the new one must fail too. Where the new path declines a record
 * (TARN_EUNSUPPORTED, for values it leaves to DuckDB's JSON reader), it must
 * have written nothing; corpora holding only values scan.h says it converts
 * (randomuser.me-shaped users, the seed's IoT readings, numbers and strings
 * mixed in one field, every scalar type in its own column) must never be
 * declined. Values it may decline (a fraction or an object in a VARCHAR
 * column, -0 in a DOUBLE one, a value of another type in a given column)
 * each get a corpus of their own, so a decline hides nothing else. Declines
 * are listed at the end of the run.
 *
 * The corpora come from a fixed-seed xorshift (the same on every run of a
 * build), and every record is one the ingest accepts (tarn_json_split), so
 * the log holds nothing it could not hold in production. The writer has two
 * threads and the largest corpus spans several DuckDB vectors and log
 * segments on two interleaved dates, so the parallel scan is exercised.
 *
 * The quick scan (scan.h, "Quick schema"; the tests named quick_scan_*)
 * converts a batch with columns inferred from its head alone, stops at a
 * value of a kind (kinds.h) that the head did not have at its place, and
 * ends the batch before a record of another UTC date or where the byte
 * budget ends it. Its
 * oracle is the full way: the whole batch staged and written by DuckDB's
 * reader with the columns of the whole batch's sample. Corpora that must
 * never be declined, their heads completed with the later records that
 * bring a (place, kind) pair of their own (worked out here from the text),
 * must give the same file and report the batch's last record and bytes;
 * each kind a head lacks (at a column, a STRUCT's field and a list's
 * elements) must stop the scan where the normal scan takes the value, and
 * leave no file; the batch must end where the staging ends it; a head that
 * does not convert must fail the scan before it writes.
 *
 * `test_scan NAME` runs the tests whose names contain NAME;
 * TEST_SCAN_VERBOSE=1 prints each corpus's columns and each new file's
 * schema.
 */
#include "delivery/writer.h"

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/duck.h"
#include "common/util.h"
#include "delivery/kinds.h"
#include "delivery/schema.h"
#include "delivery/stage.h"
#include "json/json.h"
#include "test.h"

/* 2025-11-25 23:59:59.5 UTC and 2025-11-26 00:00:00.25 UTC, in microseconds. */
#define LATE 1764115199500000LL
#define EARLY 1764115200250000LL
/* 2025-11-25 10:00:00 UTC: the day most corpora are ingested on. */
#define DAY 1764064800000000LL

/* ------------------------------------------------------------ randomness */

/* xorshift64*. Draws made in one call's arguments come in the compiler's
 * order of evaluation: the corpora are the same on every run of a build. */
static uint64_t rng_state;

static void rng_seed(uint64_t seed)
{
    rng_state = seed ? seed : 1;
}

static uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}

static size_t rng_below(size_t n)
{
    return (size_t)(rng_next() % n);
}

#define PICK(pool) ((pool)[rng_below(sizeof(pool) / sizeof((pool)[0]))])

/* ------------------------------------------------------------ corpora */

/* The largest record: what the ingest may be configured to take, within
 * DuckDB's maximum_object_size of 16 MiB for the staged line. */
#define CORPUS_MAX_RECORD ((size_t)8 << 20)

/* Records with the time each is ingested at, in log order. */
typedef struct corpus {
    const char *name;
    char **texts;
    int64_t *ts;
    size_t n, cap;
} corpus;

/* Adds a copy of text, ingested at ts. A record the ingest would refuse is
 * a mistake in the test: it fails the test. */
static void corpus_add(corpus *c, int64_t ts, const char *text)
{
    tarn_json_limits lim = {CORPUS_MAX_RECORD, TARN_STAGE_SHAPE_MAX_DEPTH, 1};
    tarn_json_span *spans = NULL;
    size_t n = 0;
    tarn_json_error err;
    int rc = tarn_json_split(text, strlen(text), TARN_BODY_JSON, &lim, &spans, &n, &err);
    if (rc || n != 1 || spans[0].offset != 0 || spans[0].len != strlen(text)) {
        printf("  corpus %s: the ingest refuses record %zu (%s): %.200s\n", c->name, c->n + 1,
               rc ? err.msg : "not exactly one object", text);
        test__cur_failed = 1;
    }
    free(spans);
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 64;
        c->texts = realloc(c->texts, c->cap * sizeof *c->texts);
        c->ts = realloc(c->ts, c->cap * sizeof *c->ts);
    }
    c->texts[c->n] = strdup(text);
    c->ts[c->n++] = ts;
}

static void corpus_addf(corpus *c, int64_t ts, const char *fmt, ...) TARN_PRINTF(3, 4);
static void corpus_addf(corpus *c, int64_t ts, const char *fmt, ...)
{
    tarn_buf b;
    tarn_buf_init(&b, 0);
    va_list ap;
    va_start(ap, fmt);
    tarn_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    corpus_add(c, ts, b.data ? b.data : "");
    tarn_buf_free(&b);
}

static void corpus_free(corpus *c)
{
    for (size_t i = 0; i < c->n; i++) free(c->texts[i]);
    free(c->texts);
    free(c->ts);
    memset(c, 0, sizeof *c);
}

/* A fresh stream in dir/log holding the corpus: records of one time go in
 * appends of up to 500, and segments are 1 MiB, so a big corpus spans several
 * segments. NULL on failure (reported). */
static tarn_stream *stream_of(const corpus *c, const char *dir)
{
    char *sdir = text_printf("%s/log", dir);
    tarn_errbuf eb = {{0}};
    tarn_stream_opts o = {1 << 20, CORPUS_MAX_RECORD, 1};
    tarn_stream *s = NULL;
    if (tarn_mkdir_p(sdir, &eb) || tarn_stream_open(sdir, &o, &s, &eb)) {
        printf("  stream: %s\n", eb.msg);
        free(sdir);
        return NULL;
    }
    free(sdir);
    tarn_record *r = calloc(500, sizeof *r);
    for (size_t i = 0; i < c->n;) {
        size_t k = 0;
        while (i + k < c->n && k < 500 && c->ts[i + k] == c->ts[i]) {
            r[k] = (tarn_record){c->texts[i + k], strlen(c->texts[i + k])};
            k++;
        }
        int64_t first, last;
        if (tarn_stream_append(s, r, k, c->ts[i], &first, &last, &eb)) {
            printf("  append: %s\n", eb.msg);
            tarn_stream_close(s);
            free(r);
            return NULL;
        }
        i += k;
    }
    free(r);
    return s;
}

/* Closes s (NULL allowed), removes dir (env_subdir) and frees it and c. */
static void stream_end(tarn_stream *s, char *dir, corpus *c)
{
    if (s) tarn_stream_close(s);
    tarn_rm_rf(dir);
    free(dir);
    corpus_free(c);
}

/* ------------------------------------------------------------ the environment */

/* One writer and one plain DuckDB for the whole run; each corpus gets its
 * own directory under dir (the writer may only touch files in there). */
static struct {
    char *dir;
    tarn_writer *w;         /* two threads */
    duckdb_database db;     /* reads both files back; not the writer's */
    duckdb_connection conn;
    int ndirs;
    int nconversions;       /* calls of the new path */
    int nunsupported;       /* ... that declined */
    tarn_buf declined;      /* the corpora with a decline */
    char last_declined[160];
} env;

static int env_open(void)
{
    tarn_errbuf eb = {{0}};
    env.dir = test_tmpdir("scan");
    tarn_buf_init(&env.declined, 0);
    if (!env.dir || tarn_writer_open(env.dir, env.dir, 2, NULL, &env.w, &eb)) {
        printf("writer: %s\n", eb.msg);
        return -1;
    }
    if (duckdb_open(NULL, &env.db) != DuckDBSuccess || duckdb_connect(env.db, &env.conn) != DuckDBSuccess) {
        printf("duckdb: cannot open\n");
        return -1;
    }
    return 0;
}

static void env_close(void)
{
    if (env.conn) duckdb_disconnect(&env.conn);
    if (env.db) duckdb_close(&env.db);
    tarn_writer_close(env.w);
    if (env.dir) tarn_rm_rf(env.dir);
    free(env.dir);
    tarn_buf_free(&env.declined);
}

/* A new, empty directory for one corpus (malloc'd). */
static char *env_subdir(void)
{
    char *d = text_printf("%s/c%d", env.dir, env.ndirs++);
    tarn_errbuf eb = {{0}};
    tarn_mkdir_p(d, &eb);
    return d;
}

/* ------------------------------------------------------------ reading Parquet back */

/* The first value of a query's result (malloc'd; NULL for SQL NULL or an
 * error, which is printed). */
static char *duck_value(const char *sql)
{
    duckdb_result res;
    char *out = NULL;
    if (duckdb_query(env.conn, sql, &res) == DuckDBSuccess) {
        if (duckdb_row_count(&res) > 0) {
            char *v = duckdb_value_varchar(&res, 0, 0);
            out = v ? strdup(v) : NULL;
            duckdb_free(v);
        }
    } else {
        printf("  duckdb: %s\n", duckdb_result_error(&res));
    }
    duckdb_destroy_result(&res);
    return out;
}

/* read_parquet('<path>') (malloc'd). */
static char *parquet_from(const char *path)
{
    tarn_buf b;
    tarn_buf_init(&b, 0);
    tarn_buf_append_str(&b, "read_parquet(");
    tarn_sql_string(&b, path);
    tarn_buf_append_char(&b, ')');
    return tarn_buf_steal(&b);
}

/* What a file holds besides its values, as text (malloc'd; NULL if it
 * cannot be read, which is printed): "rows <n>", "compression <the distinct
 * compressions of its column chunks>", then a "<name> <type>" line per
 * column, in order. */
static char *parquet_facts(const char *path)
{
    tarn_buf p;
    tarn_buf_init(&p, 0);
    tarn_sql_string(&p, path);
    char *sql = text_printf(
        "SELECT 'rows ' || (SELECT count(*) FROM read_parquet(%s)) || chr(10) || 'compression ' || "
        "(SELECT string_agg(DISTINCT compression, ',' ORDER BY compression) FROM parquet_metadata(%s)) || chr(10) || "
        "(SELECT string_agg(column_name || ' ' || column_type, chr(10)) FROM (DESCRIBE SELECT * FROM read_parquet(%s)))",
        p.data, p.data, p.data);
    char *v = duck_value(sql);
    free(sql);
    tarn_buf_free(&p);
    return v;
}

/* Prints a value, cut to a readable length. */
static void print_cut(const char *label, const char *text)
{
    size_t n = text ? strlen(text) : 0;
    printf("      %s: %.*s%s\n", label, (int)(n > 700 ? 700 : n), text ? text : "(none)", n > 700 ? "..." : "");
}

/* Compares the rows of two files, matched by _seq, as text two ways: the
 * row cast to VARCHAR (shows -0.0 and NaN, but prints a string 'NULL' as
 * NULL) and the row as JSON (quotes strings). Comparing the rows as STRUCT
 * values instead takes time exponential in the nesting depth in DuckDB
 * 1.5 (a record 20 objects deep took 15 s). Prints the first differing
 * rows with the records they came from; returns how many differ. */
static int64_t parquet_row_diffs(const corpus *c, const char *a, const char *b)
{
    char *fa = parquet_from(a), *fb = parquet_from(b);
    /* The row alias is the whole row as a STRUCT; named so that no corpus
     * column can shadow it. */
    char *sql = text_printf(
        "WITH a AS (SELECT \"_seq\" AS k, CAST(scan_row__ AS VARCHAR) AS v, CAST(to_json(scan_row__) AS VARCHAR) AS j "
        "FROM %s scan_row__), "
        "b AS (SELECT \"_seq\" AS k, CAST(scan_row__ AS VARCHAR) AS v, CAST(to_json(scan_row__) AS VARCHAR) AS j "
        "FROM %s scan_row__) "
        "SELECT coalesce(a.k, b.k), CASE WHEN a.v IS DISTINCT FROM b.v THEN a.v ELSE a.j END, "
        "CASE WHEN a.v IS DISTINCT FROM b.v THEN b.v ELSE b.j END FROM a FULL OUTER JOIN b ON a.k = b.k "
        "WHERE a.k IS NULL OR b.k IS NULL OR a.v IS DISTINCT FROM b.v OR a.j IS DISTINCT FROM b.j ORDER BY 1",
        fa, fb);
    duckdb_result res;
    int64_t n = 0;
    if (duckdb_query(env.conn, sql, &res) == DuckDBSuccess) {
        n = (int64_t)duckdb_row_count(&res);
        for (idx_t i = 0; i < (idx_t)n && i < 3; i++) {
            char *seq = duckdb_value_varchar(&res, 0, i), *va = duckdb_value_varchar(&res, 1, i),
                 *vb = duckdb_value_varchar(&res, 2, i);
            int64_t k = seq ? strtoll(seq, NULL, 10) : 0;
            printf("    row _seq %s differs:\n", seq ? seq : "?");
            print_cut("record", k >= 1 && (size_t)k <= c->n ? c->texts[k - 1] : NULL);
            print_cut("old", va);
            print_cut("new", vb);
            duckdb_free(seq);
            duckdb_free(va);
            duckdb_free(vb);
        }
    } else {
        printf("    comparing rows failed: %s\n", duckdb_result_error(&res));
        n = -1;
    }
    duckdb_destroy_result(&res);
    free(sql);
    free(fa);
    free(fb);
    return n;
}

/* ------------------------------------------------------------ the two paths */

/* What to hold the new path to for a corpus. */
enum expect {
    EXPECT_ANY,       /* it may decline (TARN_EUNSUPPORTED) */
    EXPECT_SUPPORTED, /* it must not decline (and the old path must write the file) */
    EXPECT_FAILURE,   /* a value does not fit its column: the old path fails, and so must the new */
};

typedef struct scan_case {
    const corpus *c;
    enum expect expect;
    const tarn_column *cols; /* given columns; NULL: inferred as the delivery does */
    size_t ncols;
    int64_t from, upto;      /* the range (from, upto]; upto 0: every record */
    /* The old path's records when they differ: the same records with each
     * key spelled as its column (scan.h: the new path finds a key's column
     * without regard to case, DuckDB's reader drops the value). */
    const corpus *oracle;
} scan_case;

/* One file written, or the failure to write it. */
typedef struct outcome {
    int rc;
    int64_t rows;
    char path[PATH_MAX];
    tarn_errbuf eb;
} outcome;

/* The delivery's columns for staged files, as batch_columns (delivery.c)
 * makes them: inferred from every record of the files, HUGEINT narrowed to
 * BIGINT unless some integer is beyond BIGINT, merged into an empty schema
 * with _ingested_at and _seq last. */
static int columns_of(const char *const *files, size_t nfiles, int ubigint_values, tarn_column **cols, size_t *ncols,
                      tarn_errbuf *eb)
{
    static const char *const trailing[] = {"_ingested_at", "_seq"};
    tarn_column *inferred = NULL;
    size_t ninferred = 0;
    int rc = tarn_writer_infer(env.w, files, nfiles, 1, &inferred, &ninferred, eb);
    if (rc == TARN_OK && !ubigint_values && (rc = tarn_columns_narrow_hugeint(inferred, ninferred, eb)) > 0)
        rc = TARN_OK;
    if (rc == TARN_OK) rc = tarn_columns_merge(NULL, 0, inferred, ninferred, trailing, 2, cols, ncols, eb);
    tarn_columns_free(inferred, ninferred);
    return rc;
}

/* The same from every staged record, as batch_write_parquet makes them. */
static int old_columns(const tarn_stage_result *st, tarn_column **cols, size_t *ncols, tarn_errbuf *eb)
{
    const char *files[64];
    size_t nfiles = 0;
    for (size_t i = 0; i < st->nparts; i++)
        for (size_t k = 0; k < st->parts[i].npaths && nfiles < 64; k++) files[nfiles++] = st->parts[i].paths[k];
    return columns_of(files, nfiles, st->ubigint_values, cols, ncols, eb);
}

/* The same from a pass's schema sample alone, as batch_scan_parquet makes
 * them: what the delivery converts a batch straight from the log with. */
static int sample_columns(const tarn_stage_result *st, tarn_column **cols, size_t *ncols, tarn_errbuf *eb)
{
    const char *files[TARN_STAGE_MAX_SAMPLES];
    for (size_t i = 0; i < st->nsamples; i++) files[i] = st->sample_paths[i];
    if (st->nsamples == 0) return tarn_errbuf_set(eb, TARN_EUNSUPPORTED, "the pass has no schema sample");
    return columns_of(files, st->nsamples, st->ubigint_values, cols, ncols, eb);
}

/* The old path for the staged files of parts [first, last] into dir/name. */
static void old_write(const tarn_stage_result *st, size_t first, size_t last, const tarn_column *cols, size_t ncols,
                      const char *dir, const char *name, outcome *o)
{
    const char *files[64];
    size_t nfiles = 0;
    for (size_t i = first; i <= last; i++)
        for (size_t k = 0; k < st->parts[i].npaths && nfiles < 64; k++) files[nfiles++] = st->parts[i].paths[k];
    memset(o, 0, sizeof *o);
    snprintf(o->path, sizeof o->path, "%s/%s", dir, name);
    o->rc = tarn_writer_ndjson_to_parquet(env.w, files, nfiles, cols, ncols, o->path, &o->rows, &o->eb);
}

/* The new path for the records of the range on date (NULL: every date) into
 * dir/name. */
static void new_write(tarn_stream *s, const scan_case *k, int64_t upto, const char *date, const tarn_column *cols,
                      size_t ncols, const char *dir, const char *name, outcome *o)
{
    memset(o, 0, sizeof *o);
    snprintf(o->path, sizeof o->path, "%s/%s", dir, name);
    o->rows = -1;
    o->rc = tarn_writer_log_to_parquet(env.w, s, k->from, upto, date, cols, ncols, NULL, o->path, &o->rows, &o->eb);
    env.nconversions++;
}

/* Holds the new path's outcome to the old one's for one file. */
static void judge(const scan_case *k, const char *what, const outcome *old, const outcome *neu)
{
    const char *name = k->c->name;
    if (neu->rc == TARN_EUNSUPPORTED) {
        /* Listed once per corpus. */
        if (env.nunsupported++ == 0 || strcmp(env.last_declined, name) != 0)
            tarn_buf_printf(&env.declined, "%s%s", env.declined.len ? "; " : "", name);
        snprintf(env.last_declined, sizeof env.last_declined, "%s", name);
        printf("  note %s (%s): the new path declined: %s\n", name, what, neu->eb.msg);
        if (k->expect == EXPECT_SUPPORTED) {
            printf("  FAIL %s (%s): declined records it must convert\n", name, what);
            test__cur_failed = 1;
        }
        if (access(neu->path, F_OK) == 0) {
            printf("  FAIL %s (%s): declined, yet wrote %s\n", name, what, neu->path);
            test__cur_failed = 1;
        }
    }
    if (k->expect == EXPECT_FAILURE && old->rc == TARN_OK) {
        printf("  FAIL %s (%s): the old path was expected to fail and wrote %lld rows\n", name, what,
               (long long)old->rows);
        test__cur_failed = 1;
    }
    if (k->expect == EXPECT_SUPPORTED && old->rc != TARN_OK) {
        printf("  FAIL %s (%s): the old path fails, so nothing is compared\n", name, what);
        test__cur_failed = 1;
    }
    if (old->rc != TARN_OK) {
        if (k->expect != EXPECT_FAILURE)
            printf("  note %s (%s): the old path fails (%s: %s); the new path gives %s\n", name, what,
                   tarn_err_name(old->rc), old->eb.msg, tarn_err_name(neu->rc));
        if (neu->rc == TARN_OK) {
            printf("  FAIL %s (%s): the old path fails (%s: %s), the new one wrote %lld rows\n", name, what,
                   tarn_err_name(old->rc), old->eb.msg, (long long)neu->rows);
            test__cur_failed = 1;
        }
        return;
    }
    if (neu->rc == TARN_EUNSUPPORTED) return;
    if (neu->rc != TARN_OK) {
        printf("  FAIL %s (%s): the new path fails (%s: %s) where the old one wrote %lld rows\n", name, what,
               tarn_err_name(neu->rc), neu->eb.msg, (long long)old->rows);
        test__cur_failed = 1;
        return;
    }

    /* Both wrote a file: the same rows, columns, values and compression. */
    if (neu->rows != old->rows) {
        printf("  FAIL %s (%s): the new path reports %lld rows, the old %lld\n", name, what, (long long)neu->rows,
               (long long)old->rows);
        test__cur_failed = 1;
    }
    char *fa = parquet_facts(old->path), *fb = parquet_facts(neu->path);
    char want[64];
    snprintf(want, sizeof want, "rows %lld\ncompression SNAPPY\n", (long long)old->rows);
    if (!fa || !fb || strcmp(fa, fb) != 0 || strncmp(fb, want, strlen(want)) != 0) {
        printf("  FAIL %s (%s): the files differ in rows, compression or columns\n", name, what);
        print_cut("old", fa);
        print_cut("new", fb);
        test__cur_failed = 1;
    }
    if (getenv("TEST_SCAN_VERBOSE")) print_cut("new file", fb);
    int64_t diffs = parquet_row_diffs(k->c, old->path, neu->path);
    if (diffs != 0) {
        printf("  FAIL %s (%s): %lld rows differ\n", name, what, (long long)diffs);
        test__cur_failed = 1;
    }
    free(fa);
    free(fb);
}

/* Writes the case's records both ways, per UTC date and for the whole range,
 * and judges each pair. */
static void differential(const scan_case *k)
{
    char *dir = env_subdir(), *odir = k->oracle ? env_subdir() : NULL;
    tarn_stream *s = stream_of(k->c, dir), *os = k->oracle ? stream_of(k->oracle, odir) : s;
    tarn_stage_result st;
    memset(&st, 0, sizeof st);
    tarn_column *inferred = NULL;
    size_t ninferred = 0;
    int64_t upto = k->upto ? k->upto : (int64_t)k->c->n;
    tarn_errbuf eb = {{0}};
    char *stage = text_printf("%s/stage", dir);
    if (!s || !os || tarn_mkdir_p(stage, &eb) ||
        tarn_stage_batch(os, TARN_STAGE_PROCESSED, k->from, upto, SIZE_MAX, 1, stage, &st, &eb)) {
        printf("  FAIL %s: staging: %s\n", k->c->name, eb.msg);
        test__cur_failed = 1;
        goto out;
    }
    if (st.nparts == 0 || st.last_seq != upto) {
        printf("  FAIL %s: staged %zu parts through seq %lld\n", k->c->name, st.nparts, (long long)st.last_seq);
        test__cur_failed = 1;
        goto out;
    }
    const tarn_column *cols = k->cols;
    size_t ncols = k->ncols;
    if (!cols) {
        if (old_columns(&st, &inferred, &ninferred, &eb)) {
            printf("  FAIL %s: inferring the columns: %s\n", k->c->name, eb.msg);
            test__cur_failed = 1;
            goto out;
        }
        cols = inferred;
        ncols = ninferred;
    }
    if (getenv("TEST_SCAN_VERBOSE"))
        for (size_t i = 0; i < ncols; i++) printf("    %s: column %s %s\n", k->c->name, cols[i].name, cols[i].type);

    outcome old, neu, old0;
    for (size_t i = 0; i < st.nparts; i++) {
        char name[64], what[64];
        snprintf(what, sizeof what, "date %s", st.parts[i].date);
        snprintf(name, sizeof name, "a%zu.parquet", i);
        old_write(&st, i, i, cols, ncols, dir, name, &old);
        snprintf(name, sizeof name, "b%zu.parquet", i);
        new_write(s, k, upto, st.parts[i].date, cols, ncols, dir, name, &neu);
        if (old.rc == TARN_OK && old.rows != st.parts[i].rows) {
            printf("  FAIL %s (%s): the old path wrote %lld of %lld rows\n", k->c->name, what, (long long)old.rows,
                   (long long)st.parts[i].rows);
            test__cur_failed = 1;
        }
        judge(k, what, &old, &neu);
        if (i == 0) old0 = old;
    }
    /* Every date at once: the old path given every part's files (with one
     * date, that is the file just written). */
    if (st.nparts == 1) old = old0;
    else old_write(&st, 0, st.nparts - 1, cols, ncols, dir, "a.parquet", &old);
    new_write(s, k, upto, NULL, cols, ncols, dir, "b.parquet", &neu);
    if (old.rc == TARN_OK && old.rows != upto - k->from) {
        printf("  FAIL %s (every date): the old path wrote %lld rows\n", k->c->name, (long long)old.rows);
        test__cur_failed = 1;
    }
    judge(k, "every date", &old, &neu);

out:
    tarn_columns_free(inferred, ninferred);
    tarn_stage_result_free(&st);
    if (s) tarn_stream_close(s);
    if (os && os != s) tarn_stream_close(os);
    tarn_rm_rf(dir);
    if (odir) tarn_rm_rf(odir);
    free(stage);
    free(dir);
    free(odir);
}

/* The common case: every record, columns inferred. */
static void differential_all(const corpus *c, enum expect expect)
{
    scan_case k = {c, expect, NULL, 0, 0, 0, NULL};
    differential(&k);
}

/* ------------------------------------------------------------ randomuser.me */

static const char *const first_names[] = {"Jennie", "Åse",   "Mia",    "Léa",   "Sofia",  "Jørgen", "Ömer",
                                          "Arjun",  "Chloé", "Lucía",  "Noah",  "Mateo",  "Priya",  "İbrahim"};
static const char *const last_names[] = {"Nichols", "Nilsen", "Müller", "Silva",     "García", "Jovanović",
                                         "O'Brien", "Kaya",   "Kumar",  "Hernández", "Bakker", "Moreau"};
static const char *const countries[][3] = {
    /* nat, country, city */
    {"US", "United States", "Billings"}, {"GB", "United Kingdom", "Leeds"}, {"DE", "Germany", "Köln"},
    {"NO", "Norway", "Tromsø"},          {"BR", "Brazil", "Curitiba"},      {"CA", "Canada", "Regina"},
    {"TR", "Turkey", "İzmir"},           {"IN", "India", "Pune"},
};

static void add_user(corpus *c, int64_t ts)
{
    const char *const *country = countries[rng_below(sizeof countries / sizeof countries[0])];
    const char *first = PICK(first_names), *last = PICK(last_names);
    int female = (int)rng_below(2);
    int age = 18 + (int)rng_below(62), pc = 10000 + (int)rng_below(89999);
    /* As on randomuser.me, the postcode is a number in some countries and a
     * string in others: a VARCHAR column holding both. */
    char postcode[32];
    if (country[0][0] == 'G' || country[0][0] == 'C' || country[0][0] == 'N')
        snprintf(postcode, sizeof postcode, "\"%s %d%c\"", country[0], pc % 1000, "ABCDEFGH"[pc % 8]);
    else snprintf(postcode, sizeof postcode, "%d", pc);
    uint64_t u1 = rng_next(), u2 = rng_next();
    char id_value[40];
    if (rng_below(5) == 0) snprintf(id_value, sizeof id_value, "null");
    else snprintf(id_value, sizeof id_value, "\"%03d-%02d-%04d\"", pc % 1000, age, pc);
    corpus_addf(
        c, ts,
        "{\"gender\":\"%s\",\"name\":{\"title\":\"%s\",\"first\":\"%s\",\"last\":\"%s\"},"
        "\"location\":{\"street\":{\"number\":%d,\"name\":\"%s Street\"},\"city\":\"%s\",\"country\":\"%s\","
        "\"postcode\":%s,\"coordinates\":{\"latitude\":\"%.4f\",\"longitude\":\"%.4f\"},"
        "\"timezone\":{\"offset\":\"%+d:%s\",\"description\":\"Somewhere\"}},"
        "\"email\":\"%s.%d@example.com\",\"login\":{\"uuid\":\"%08x-%04x-4%03x-%04x-%012llx\","
        "\"username\":\"user%d\",\"sha256\":\"%016llx%016llx\"},"
        "\"dob\":{\"date\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\",\"age\":%d},"
        "\"registered\":{\"date\":\"20%02d-%02d-%02dT%02d:%02d:%02d.%03dZ\",\"age\":%d},"
        "\"phone\":\"(%03d) %03d-%04d\",\"id\":{\"name\":\"SSN\",\"value\":%s},"
        "\"picture\":{\"large\":\"https:\\/\\/randomuser.me\\/api\\/portraits\\/%s\\/%d.jpg\"},\"nat\":\"%s\"}",
        female ? "female" : "male", female ? "Ms" : "Mr", first, last, 1 + (int)rng_below(9999), last, country[2],
        country[1], postcode, (double)(int64_t)(rng_next() % 1800000) / 10000.0 - 90.0,
        (double)(int64_t)(rng_next() % 3600000) / 10000.0 - 180.0, (int)rng_below(12) - 11,
        rng_below(2) ? "00" : "30", last, pc, (unsigned)(u1 >> 32), (unsigned)(u1 >> 16) & 0xffff,
        (unsigned)u1 & 0xfff, 0x8000 | ((unsigned)(u2 >> 48) & 0x3fff), (unsigned long long)(u2 & 0xffffffffffffULL),
        pc, (unsigned long long)u1, (unsigned long long)u2, 2025 - age, 1 + (int)rng_below(12),
        1 + (int)rng_below(28), (int)rng_below(24), (int)rng_below(60), (int)rng_below(60), (int)rng_below(1000),
        age, (int)rng_below(25), 1 + (int)rng_below(12), 1 + (int)rng_below(28), (int)rng_below(24),
        (int)rng_below(60), (int)rng_below(60), (int)rng_below(1000), (int)rng_below(20), 100 + (int)rng_below(900),
        100 + (int)rng_below(900), (int)rng_below(10000), id_value, female ? "women" : "men", (int)rng_below(100),
        country[0]);
}

TEST(randomuser_records_match_and_are_never_declined)
{
    /* More than three DuckDB vectors of 2,048, in several appends and log
     * segments, on two days taking turns every 700 records: each date's
     * records are spread over the log and over the scan's threads. */
    corpus c = {.name = "randomuser"};
    rng_seed(42);
    for (int i = 0; i < 7000; i++) add_user(&c, DAY + (i / 700 % 2) * 86400000000LL + i / 2000);
    differential_all(&c, EXPECT_SUPPORTED);
    corpus_free(&c);
}

/* ------------------------------------------------------------ IoT readings */

static void add_reading(corpus *c, int64_t ts)
{
    static const char *const sources[] = {"iot_sensors", "pos", "hvac"};
    static const char *const places[] = {"warehouse_a", "warehouse_b", "dock", "Büro 3"};
    /* humidity 65 or 65.5: BIGINT and DOUBLE, a DOUBLE column; temperature
     * sometimes a whole number, sometimes not exact in binary. */
    int whole = rng_below(4) == 0;
    double temp = (double)((int)rng_below(600) - 100) / (whole ? 1.0 : 10.0);
    const char *humidity = PICK(((const char *const[]){"65", "65.5", "40", "99.25", "0"}));
    char metadata[128];
    if (rng_below(10) == 0) snprintf(metadata, sizeof metadata, "%s", "");
    else
        snprintf(metadata, sizeof metadata, ",\"metadata\":{\"location\":\"%s\",\"firmware_version\":\"2.%d.0\"}",
                 PICK(places), (int)rng_below(3));
    corpus_addf(c, ts,
                "{\"source\":\"%s\",\"data\":{\"device_id\":\"sensor_%03d\",\"temperature\":%g,"
                "\"humidity\":%s,\"timestamp\":\"2025-11-25T10:%02d:%02dZ\"}%s}",
                PICK(sources), (int)rng_below(1000), temp, humidity, (int)rng_below(60), (int)rng_below(60), metadata);
}

TEST(iot_readings_match_and_are_never_declined)
{
    corpus c = {.name = "iot"};
    rng_seed(7);
    for (int i = 0; i < 3000; i++) add_reading(&c, DAY + i / 1000);
    /* The seed's record itself, last. */
    corpus_add(&c, DAY + 5,
               "{\"source\":\"iot_sensors\",\"data\":{\"device_id\":\"sensor_001\",\"temperature\":22.5,\"humidity\":65,"
               "\"timestamp\":\"2025-11-25T10:00:00Z\"},\"metadata\":{\"location\":\"warehouse_a\","
               "\"firmware_version\":\"2.1.0\"}}");
    differential_all(&c, EXPECT_SUPPORTED);
    corpus_free(&c);
}

/* ------------------------------------------------------------ scalars */

static void add_scalars(corpus *c, int64_t ts)
{
    static const char *const bools[] = {"true", "false", "null"};
    static const char *const ints[] = {"0", "1", "-1", "42", "-4096", "2147483648", "-2147483649",
                                       "9223372036854775807", "-9223372036854775808", "null"};
    static const char *const doubles[] = {"0.1",       "1.5",          "-2.5E-3",   "1e300",      "6.02e23",
                                          "0.5",       "0.0",          "1E+2",      "1e-300",     "1.7976931348623157e308",
                                          "2.2250738585072014e-308",   "0.30000000000000004",   "3",
                                          "-7",        "1e-7",         "123456.789", "null"};
    static const char *const dates[] = {"2025-01-02", "1970-01-01", "0001-01-01", "9999-12-31", "2024-02-29"};
    static const char *const times[] = {"10:11:12", "00:00:00", "23:59:59", "12:00:00.5", "23:59:59.999999"};
    static const char *const stamps[] = {"2025-11-25T10:00:00Z", "1999-12-31T23:59:59Z", "2025-11-25T00:00:00Z",
                                         "1969-07-20T20:17:40Z"};
    static const char *const stamps2[] = {"2025-11-25 10:00:00.123456", "2025-11-25 10:00:00",
                                          "1970-01-01 00:00:00.000001", "2000-02-29 23:59:59.5"};
    static const char *const uuids[] = {"550e8400-e29b-41d4-a716-446655440000", "550E8400-E29B-41D4-A716-446655440001",
                                        "00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff",
                                        "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"};
    static const char *const texts[] = {"plain", "x", "Hello, World", "two words", "3 apples", "null"};
    /* A double from random bits (finite), printed with 17 digits: both paths
     * must parse it to the same double. */
    uint64_t bits = rng_next() & ~(0x7ffULL << 52);
    bits |= (uint64_t)(1 + rng_below(2045)) << 52;
    double d;
    memcpy(&d, &bits, sizeof d);
    corpus_addf(c, ts,
                "{\"b\":%s,\"nul\":null,\"i\":%s,\"hugeish\":%s%lld,\"d\":%s,\"d17\":%.17g,\"date\":\"%s\","
                "\"time\":\"%s\",\"ts\":\"%s\",\"ts2\":\"%s\",\"u\":\"%s\",\"s\":\"%s\","
                "\"date_or_ts\":\"%s\",\"ts_micros\":\"20%02d-%02d-%02d %02d:%02d:%02d.%06d\"}",
                PICK(bools), PICK(ints), rng_below(2) ? "-" : "", (long long)(rng_next() >> 2), PICK(doubles), d,
                PICK(dates), PICK(times), PICK(stamps), PICK(stamps2), PICK(uuids), PICK(texts),
                rng_below(2) ? PICK(dates) : PICK(stamps2), (int)rng_below(100), 1 + (int)rng_below(12),
                1 + (int)rng_below(28), (int)rng_below(24), (int)rng_below(60), (int)rng_below(60),
                (int)rng_below(1000000));
}

TEST(scalars_of_every_kind_match)
{
    corpus c = {.name = "scalars"};
    rng_seed(11);
    for (int i = 0; i < 2500; i++) add_scalars(&c, DAY);
    /* Nothing but nulls, and nothing at all. */
    corpus_add(&c, DAY,
               "{\"b\":null,\"nul\":null,\"i\":null,\"hugeish\":null,\"d\":null,\"d17\":null,\"date\":null,"
               "\"time\":null,\"ts\":null,\"ts2\":null,\"u\":null,\"s\":null,\"date_or_ts\":null,\"ts_micros\":null}");
    corpus_add(&c, DAY, "{}");
    differential_all(&c, EXPECT_SUPPORTED);
    corpus_free(&c);
}

/* One value at an edge of its type, among typical ones: a corpus each, so
 * that a value the new path declines hides nothing else. */
static void edge_values(const char *family, const char *typical, const char *const *values, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char name[160];
        snprintf(name, sizeof name, "%s %s", family, values[i]);
        corpus c = {.name = name};
        corpus_addf(&c, DAY, "{\"v\":%s,\"o\":{\"v\":%s},\"l\":[%s]}", typical, values[i], typical);
        corpus_addf(&c, DAY, "{\"v\":%s,\"o\":{\"v\":%s},\"l\":[%s,%s]}", values[i], typical, values[i], typical);
        differential_all(&c, EXPECT_ANY);
        corpus_free(&c);
    }
}

TEST(doubles_at_the_edges_match)
{
    static const char *const values[] = {"-0", "-0.0", "0e0", "-0e-5", "5e-324", "4.9e-324", "1e-310",
                                         "2.2250738585072014e-308", "1.7976931348623157e308", "1e-400", "1e400",
                                         "-1e400", "9007199254740993", "18446744073709551616",
                                         "123456789012345678901234567890", "0.1e1", "1E+308", "-2.5E-3"};
    edge_values("double", "1.5", values, sizeof values / sizeof values[0]);
}

TEST(numbers_and_booleans_as_varchar_match)
{
    /* A string elsewhere in the field makes it VARCHAR: numbers and
     * booleans are stored as their text. */
    static const char *const values[] = {"0", "-0", "7", "-9223372036854775808", "9223372036854775807",
                                         "9223372036854775808", "18446744073709551615", "-9223372036854775809",
                                         "123456789012345678901234567890", "true", "false", "null"};
    edge_values("varchar", "\"text\"", values, sizeof values / sizeof values[0]);
}

TEST(strings_of_detected_types_match)
{
    /* DuckDB detects DATE, TIME, TIMESTAMP and UUID from strings, in more
     * formats than ISO 8601: the old path parses with the format it
     * detected, the new one casts the text. */
    static const char *const families[][4] = {
        {"iso_dates", "\"2025-11-25\"", "\"1999-01-31\"", "\"2024-02-29\""},
        {"us_dates", "\"11/25/2025\"", "\"01/31/1999\"", "\"02/29/2024\""},
        {"dmy_dates", "\"25-11-2025\"", "\"31-01-1999\"", "\"29-02-2024\""},
        {"iso_timestamps_t", "\"2025-11-25T10:00:00\"", "\"1999-01-31T23:59:59.999\"", "\"2024-02-29T00:00:00.5\""},
        {"timestamps_z_millis", "\"2025-11-25T10:00:00.000Z\"", "\"1999-01-31T23:59:59.123Z\"",
         "\"2024-02-29T00:00:00.999Z\""},
        {"timestamps_offset", "\"2025-11-25T10:00:00+02:00\"", "\"1999-01-31T23:59:59-05:30\"",
         "\"2024-02-29T00:00:00+00:00\""},
        {"timestamps_us", "\"11/25/2025 10:00:00\"", "\"01/31/1999 23:59:59\"", "\"02/29/2024 00:00:00\""},
        {"timestamps_nanos", "\"2025-11-25 10:00:00.123456789\"", "\"1999-01-31 23:59:59.000000001\"",
         "\"2024-02-29 00:00:00\""},
        {"times", "\"10:11:12\"", "\"23:59:59.999999\"", "\"00:00:00\""},
        {"uuids_mixed_case", "\"550e8400-e29b-41d4-a716-446655440000\"", "\"550E8400-E29B-41D4-A716-446655440000\"",
         "\"{550e8400-e29b-41d4-a716-446655440000}\""},
        {"dates_and_timestamps", "\"2025-11-25\"", "\"2025-11-25 10:00:00\"", "\"2025-11-26\""},
    };
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
        corpus c = {.name = families[f][0]};
        for (int i = 0; i < 30; i++)
            corpus_addf(&c, DAY, "{\"v\":%s,\"o\":{\"w\":%s},\"l\":[%s]}", families[f][1 + i % 3],
                        families[f][1 + (i + 1) % 3], families[f][1 + (i + 2) % 3]);
        differential_all(&c, EXPECT_ANY);
        corpus_free(&c);
    }
}

/* Record i of the corpus of integers beyond BIGINT. */
static void add_ubigint(corpus *c, int64_t ts, int i)
{
    static const char *const big[] = {"18446744073709551615", "9223372036854775808", "1", "-5", "0",
                                      "9223372036854775807", "-9223372036854775808", "12345678901234567890"};
    corpus_addf(c, ts, "{\"big\":%s,\"o\":{\"h\":%s},\"l\":[%s,%s],\"small\":%d}", big[i % 8], big[(i + 3) % 8],
                big[(i + 5) % 8], big[(i + 1) % 8], i);
}

TEST(integers_beyond_bigint_match_as_hugeint)
{
    corpus c = {.name = "ubigint"};
    for (int i = 0; i < 64; i++) add_ubigint(&c, DAY, i);
    differential_all(&c, EXPECT_SUPPORTED);
    corpus_free(&c);
}

/* ------------------------------------------------------------ strings */

TEST(strings_with_escapes_and_unicode_match)
{
    corpus c = {.name = "strings"};
    rng_seed(3);
    static const char *const values[] = {
        "say \\\"hi\\\"", "back\\\\slash", "a\\/b", "\\b\\f\\n\\r\\t", "caf\\u00e9", "\\u4e2d\\u6587",
        "\\ud83d\\ude00 grin", "raw ümlaut 中文 😀", "", "twelve bytes", "thirteen byte", "\\u001f\\u007f\\u2028",
        "NULL", "null", "  padded  ", "123", "true", "'single'", "{\\\"not\\\":\\\"json\\\"}", "2025-01-02",
        "\\u00E9\\u00e9", "tab\\there", "\\\\u0041 not an escape"};
    char *big4k = malloc(5001), *big70k = malloc(70001);
    for (int i = 0; i < 5000; i++) big4k[i] = "abcdefghij"[i % 10];
    big4k[5000] = '\0';
    for (int i = 0; i < 70000; i++) big70k[i] = i % 100 == 99 ? ' ' : 'z';
    big70k[70000] = '\0';
    /* Escapes straddling the 4 KiB mark. */
    memcpy(big4k + 4094, "\\u00e9\\n", 8);
    for (int i = 0; i < 1500; i++) {
        const char *v = PICK(values);
        corpus_addf(&c, DAY, "{\"s\":\"%s\",\"e\":\"%s\",\"k\":%d,\"pair\":[\"%s\",\"%s\"],\"o\":{\"t\":\"%s\"}}", v,
                    rng_below(3) ? "" : PICK(values), i, PICK(values), PICK(values), PICK(values));
    }
    corpus_addf(&c, DAY, "{\"s\":\"%s\",\"e\":\"\",\"k\":1}", big4k);
    corpus_addf(&c, DAY, "{\"s\":\"%s\",\"e\":\"%s\",\"k\":2,\"o\":{\"t\":\"%s\"}}", big70k, big4k, big70k);
    free(big4k);
    free(big70k);
    differential_all(&c, EXPECT_SUPPORTED);
    corpus_free(&c);

    /* U+0000, escaped as the ingest requires, in a corpus of its own: DuckDB
     * may refuse it, and then both must. */
    corpus z = {.name = "nul_char"};
    corpus_add(&z, DAY, "{\"s\":\"a\\u0000b\",\"k\":1}");
    corpus_add(&z, DAY, "{\"s\":\"plain\",\"k\":2}");
    differential_all(&z, EXPECT_ANY);
    corpus_free(&z);
}

/* The scan copies records into a buffer of about 4 MiB per thread (one
 * record if it is larger): records of 1.5 MiB cross its end, and one of
 * 5 MiB does not fit at all. */
TEST(records_larger_than_a_scan_buffer_match)
{
    corpus c = {.name = "big_records"};
    size_t sizes[] = {1536 << 10, 1536 << 10, 100, 5 << 20, 1536 << 10};
    char *pad = malloc((5 << 20) + 1);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        for (size_t j = 0; j < sizes[i]; j++) pad[j] = "0123456789abcdefghijklmnopqrstuvwxyz "[j % 37];
        pad[sizes[i]] = '\0';
        corpus_addf(&c, DAY, "{\"id\":%zu,\"pad\":\"%s\",\"o\":{\"tail\":\"%zu\"}}", i, pad, sizes[i]);
        for (int k = 0; k < 50; k++) corpus_addf(&c, DAY, "{\"id\":%d,\"o\":{\"tail\":\"small\"}}", k);
    }
    free(pad);
    differential_all(&c, EXPECT_SUPPORTED);
    corpus_free(&c);
}

/* ------------------------------------------------------------ keys */

TEST(keys_missing_late_empty_and_escaped_match)
{
    corpus c = {.name = "keys"};
    for (int i = 0; i < 3500; i++) {
        switch (i) {
        case 1: corpus_add(&c, DAY, "{\"id\":1}"); break; /* name missing */
        case 3: corpus_add(&c, DAY, "{\"id\":3,\"a\\u0062\":1,\"o\":{}}"); break;
        case 4: corpus_add(&c, DAY, "{\"id\":4,\"ab\":2,\"nested\":{\"in\":{}}}"); break;
        case 5:
            corpus_add(&c, DAY,
                       "{\"id\":5,\"ключ\":\"v\",\"中文\":1,\"😀\":true,\"key with space\":1,\"a.b\":2,"
                       "\"quote\\\"d\":3,\"back\\\\slash\":4,\"tab\\tkey\":5,\"\\u00e9t\\u00e9\":6}");
            break;
        case 6: corpus_add(&c, DAY, "{\"id\":6,\"o\":{\"_seq\":99,\"_ingested_at\":\"x\"}}"); break;
        case 8: corpus_add(&c, DAY, "{\"\\u0069d\":8,\"o\":{\"\\u0078\":8}}"); break; /* "id", "x" */
        case 7: corpus_add(&c, DAY, "{}"); break;
        case 2100: corpus_add(&c, DAY, "{\"id\":2100,\"late\":\"yes\",\"o\":{\"x\":1,\"late\":true}}"); break;
        case 3000: corpus_add(&c, DAY, "{\"id\":3000,\"later\":{\"deep\":{\"er\":[1]}},\"nested\":{\"in\":{\"z\":1}}}"); break;
        case 3499: corpus_add(&c, DAY, "{\"last\":1.5}"); break;
        default: corpus_addf(&c, DAY, "{\"id\":%d,\"name\":\"n%d\",\"o\":{\"x\":%d}}", i, i, i); break;
        }
    }
    differential_all(&c, EXPECT_SUPPORTED);
    corpus_free(&c);

    /* Objects that are only ever empty have no fields: DuckDB makes them a
     * MAP, the delivery a VARCHAR holding "{}". */
    corpus e = {.name = "empty_objects"};
    corpus_add(&e, DAY, "{\"id\":1,\"empty\":{},\"o\":{\"x\":1,\"e\":{}}}");
    corpus_add(&e, DAY, "{\"id\":2,\"empty\":{ },\"o\":{\"e\":{}}}");
    corpus_add(&e, DAY, "{\"id\":3,\"o\":{\"x\":3}}");
    differential_all(&e, EXPECT_ANY);
    corpus_free(&e);
}

/* The ingest refuses two spellings of a key in one object, but records may
 * spell a key differently from each other. DuckDB infers a column per
 * spelling at the top level ("name", "Name_1"), and refuses to infer at all
 * when the spellings are fields of one STRUCT ("Duplicate name in struct"):
 * those corpora are written with the columns a catalog would hold (the
 * first spelling). */
TEST(keys_differing_only_in_case_match)
{
    /* The new path puts a key spelled with other capitals into its column
     * or field (scan.h); the oracle is the old path on the same records
     * with the keys spelled as the columns. Columns inferred from the
     * oracle are the ones the delivery infers from its sample, which spells
     * each key one way (stage.c). */
    static const struct {
        const char *name;
        const char *records[3], *spelled[3];
        const char *column, *type; /* NULL: inferred */
    } cases[] = {
        {"case_top_level",
         {"{\"name\":\"lower\",\"id\":1}", "{\"Name\":\"upper\",\"ID\":2}", "{\"NAME\":\"shout\",\"iD\":3}"},
         {"{\"name\":\"lower\",\"id\":1}", "{\"name\":\"upper\",\"id\":2}", "{\"name\":\"shout\",\"id\":3}"},
         NULL, NULL},
        {"case_non_ascii", {"{\"\u00e9\":1}", "{\"\u00c9\":2}", "{\"\u00e9\":3}"}, {NULL, NULL, NULL}, NULL, NULL},
        {"case_top_level_given", {"{\"v\":1}", "{\"V\":2}", "{\"v\":3}"}, {"{\"v\":1}", "{\"v\":2}", "{\"v\":3}"},
         "v", "BIGINT"},
        {"case_nested_given",
         {"{\"o\":{\"x\":1}}", "{\"o\":{\"X\":2}}", "{\"o\":{\"x\":3,\"Y\":true}}"},
         {"{\"o\":{\"x\":1}}", "{\"o\":{\"x\":2}}", "{\"o\":{\"x\":3,\"y\":true}}"},
         "o", "STRUCT(\"x\" BIGINT, \"y\" BOOLEAN)"},
        {"case_nested_inferred",
         {"{\"o\":{\"x\":1,\"l\":[{\"k\":1}]}}", "{\"O\":{\"X\":2,\"L\":[{\"K\":2},{\"k\":3}]}}", "{\"o\":{}}"},
         {"{\"o\":{\"x\":1,\"l\":[{\"k\":1}]}}", "{\"o\":{\"x\":2,\"l\":[{\"k\":2},{\"k\":3}]}}", "{\"o\":{}}"},
         NULL, NULL},
        {"case_in_lists_given", {"{\"l\":[{\"k\":1}]}", "{\"l\":[{\"K\":2},{\"k\":3}]}", "{\"l\":[]}"},
         {"{\"l\":[{\"k\":1}]}", "{\"l\":[{\"k\":2},{\"k\":3}]}", "{\"l\":[]}"}, "l", "STRUCT(\"k\" BIGINT)[]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        corpus c = {.name = cases[i].name}, o = {.name = cases[i].name};
        for (int r = 0; r < 3; r++) corpus_add(&c, DAY, cases[i].records[r]);
        for (int r = 0; r < 3 && cases[i].spelled[r]; r++) corpus_add(&o, DAY, cases[i].spelled[r]);
        tarn_column cols[] = {{(char *)cases[i].column, (char *)cases[i].type}, {"_ingested_at", "TIMESTAMP"},
                              {"_seq", "BIGINT"}};
        scan_case k = {&c, o.n ? EXPECT_SUPPORTED : EXPECT_ANY, cases[i].column ? cols : NULL, cases[i].column ? 3 : 0, 0, 0,
                       o.n ? &o : NULL};
        differential(&k);
        corpus_free(&c);
        corpus_free(&o);
    }
    /* Two spellings of one key in one object never reach the log: the
     * ingest refuses them. */
}

enum { DEEP = 40 };
/* Many columns and many fields: 300 keys per record in a shuffled order,
 * some left out, and a STRUCT of 100 fields. */
TEST(wide_records_match)
{
    corpus c = {.name = "wide"};
    rng_seed(17);
    int order[300];
    for (int i = 0; i < 300; i++) order[i] = i;
    for (int r = 0; r < 200; r++) {
        for (int i = 299; i > 0; i--) {
            int j = (int)rng_below((size_t)i + 1), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        tarn_buf b;
        tarn_buf_init(&b, 0);
        tarn_buf_append_str(&b, "{\"o\":{");
        for (int i = 0, n = 0; i < 300; i++)
            if (order[i] < 100) tarn_buf_printf(&b, "%s\"f%d\":%d", n++ ? "," : "", order[i], r);
        tarn_buf_append_char(&b, '}');
        for (int i = 0; i < 300; i++)
            if (order[i] % 7 != r % 7) tarn_buf_printf(&b, ",\"key_%d\":\"v%d\"", order[i], r);
        tarn_buf_append_char(&b, '}');
        corpus_add(&c, DAY, b.data);
        tarn_buf_free(&b);
    }
    differential_all(&c, EXPECT_SUPPORTED);
    corpus_free(&c);
}

TEST(deeply_nested_records_match)
{
    corpus c = {.name = "deep"};
    for (int r = 0; r < 4; r++) {
        /* Objects DEEP deep with a list at the bottom; the ingest allows 64. */
        tarn_buf b;
        tarn_buf_init(&b, 0);
        for (int i = 0; i < DEEP; i++) tarn_buf_printf(&b, "{\"%s\":", i ? "k" : "d");
        tarn_buf_printf(&b, "[{\"leaf\":\"%d\"},{\"n\":%d}]", r, r);
        for (int i = 0; i < DEEP; i++) tarn_buf_append_char(&b, '}');
        corpus_add(&c, DAY, b.data);
        tarn_buf_free(&b);
    }
    differential_all(&c, EXPECT_SUPPORTED);
    corpus_free(&c);
}

/* ------------------------------------------------------------ lists */

TEST(lists_match)
{
    corpus c = {.name = "lists"};
    rng_seed(5);
    static const char *const ints[] = {"[]", "[1,2,3]", "null", "[null,1]", "[9223372036854775807,-1]", "[0]"};
    static const char *const strs[] = {"[\"a\",\"b\"]", "[]", "[\"\",\"x\\ny\"]", "[null]", "null",
                                       "[\"long string of more than twelve bytes\"]"};
    static const char *const objs[] = {"[{\"k\":1},{\"k\":2,\"m\":\"x\"}]", "[{}]", "[{\"k\":null}]", "[]",
                                       "[{\"m\":\"only m\",\"n\":[1,2]}]", "null", "[null,{\"k\":3}]"};
    static const char *const nested[] = {"[[1,2],[3]]", "[[]]", "[]", "[[null]]", "[null,[4]]", "[[5,6,7],[],[8]]"};
    static const char *const dbls[] = {"[1,2.5]", "[0.5]", "[1e300,3]", "[]"};
    for (int i = 0; i < 2200; i++) {
        char maybe[128] = "";
        if (rng_below(3) == 0) snprintf(maybe, sizeof maybe, ",\"sometimes\":[\"s%d\"]", i);
        corpus_addf(&c, DAY, "{\"l\":%s,\"ls\":%s,\"lo\":%s,\"ll\":%s,\"ld\":%s,\"lol\":[[{\"a\":[%d]}]]%s}",
                    PICK(ints), PICK(strs), PICK(objs), PICK(nested), PICK(dbls), i, maybe);
    }
    corpus_add(&c, DAY, "{}");
    differential_all(&c, EXPECT_SUPPORTED);
    corpus_free(&c);
}

/* ------------------------------------------------------------ whitespace */

TEST(whitespace_between_tokens_matches)
{
    corpus c = {.name = "whitespace"};
    static const char *const ws[] = {"", " ", "\t", "\n", "\r\n", " \t\n  "};
    for (int i = 0; i < 600; i++) {
        const char *a = ws[i % 6], *b = ws[(i / 6) % 6];
        corpus_addf(&c, DAY,
                    "{%s\"a\"%s:%s%d%s,%s\"b\"%s:%s[%s1%s,%s\"two\"%s]%s,\"c\"%s:%s{%s\"d\"%s:%s\"x y\"%s}%s,"
                    "\"e\":%strue%s,\"f\":%snull%s,\"g\":%s-1.5e3%s}",
                    a, b, a, i, b, a, b, a, b, a, b, a, b, a, b, a, b, a, b, a, a, b, a, b, a, b);
    }
    differential_all(&c, EXPECT_SUPPORTED);
    corpus_free(&c);
}

/* ------------------------------------------------------------ mixed kinds */

/* Record i of the corpus of numbers and strings in one field. */
static void add_int_string(corpus *c, int64_t ts, int i)
{
    static const char *const v[] = {"1", "\"x\"", "-5", "\"007\"", "9223372036854775807", "\"\"", "0",
                                    "-9223372036854775808", "\"12\"", "null"};
    corpus_addf(c, ts, "{\"m\":%s,\"o\":{\"m\":%s},\"l\":[%s,%s]}", v[i % 10], v[(i + 3) % 10], v[(i + 1) % 10],
                v[(i + 7) % 10]);
}

TEST(int_and_string_in_one_field_match_and_are_never_declined)
{
    corpus c = {.name = "mix_int_string"};
    for (int i = 0; i < 400; i++) add_int_string(&c, DAY, i);
    differential_all(&c, EXPECT_SUPPORTED);
    corpus_free(&c);
}

/* Other mixes make VARCHAR columns holding numbers, booleans and JSON text:
 * the new path may decline some (a fraction, an object or an array in a
 * VARCHAR column), but what it writes must match. */
TEST(other_mixed_kinds_match_or_are_declined)
{
    static const struct {
        const char *name;
        const char *values[6];
    } mixes[] = {
        {"mix_bool_int", {"true", "0", "false", "17", "null", "-3"}},
        {"mix_bool_string", {"true", "\"yes\"", "false", "\"\"", "null", "\"true\""}},
        {"mix_float_string", {"1.5", "\"x\"", "-0.0", "1e300", "6.02e23", "0.1"}},
        {"mix_float_exponent_string", {"1E2", "\"y\"", "-2.5E-3", "1e-7", "5e-324", "1.7976931348623157e308"}},
        {"mix_object_string", {"{\"a\":1,\"b\":[1,2]}", "\"s\"", "{}", "{\"a\":\"\\u00e9\\\"\"}", "null", "\"{}\""}},
        {"mix_array_string", {"[1,\"a\",null]", "\"s\"", "[]", "[[1],{\"k\":2.5}]", "null", "[true]"}},
        {"mix_struct_list", {"{\"a\":1}", "[1]", "{\"a\":{\"b\":[]}}", "[{\"a\":1}]", "null", "{}"}},
        {"mix_nested_spacing", {"{ \"a\" : 1 ,\"b\":[ 1 , 2 ] }", "\"s\"", "[ ]", "{\n\"k\":\t1}", "1.50", "2"}},
    };
    for (size_t m = 0; m < sizeof mixes / sizeof mixes[0]; m++) {
        corpus c = {.name = mixes[m].name};
        for (int i = 0; i < 120; i++)
            corpus_addf(&c, DAY, "{\"m\":%s,\"o\":{\"m\":%s},\"k\":%d}", mixes[m].values[i % 6],
                        mixes[m].values[(i + 2) % 6], i);
        differential_all(&c, EXPECT_ANY);
        corpus_free(&c);
    }
}

/* ------------------------------------------------------------ given columns */

/* Columns as a schema the catalog already has: v of a type, then the two
 * Tarn adds. Values that do not fit make both paths fail; values DuckDB
 * converts (2.5 into BIGINT, a number into VARCHAR) must convert alike. */
TEST(values_converted_to_given_columns_match)
{
    static const struct {
        const char *type, *value;
        enum expect expect;
    } given[] = {
        {"BIGINT", "\"abc\"", EXPECT_FAILURE},
        {"BIGINT", "18446744073709551615", EXPECT_FAILURE},
        {"BIGINT", "9223372036854775808", EXPECT_FAILURE},
        {"BIGINT", "1e20", EXPECT_FAILURE},
        {"BIGINT", "{\"a\":1}", EXPECT_ANY},
        {"BIGINT", "[1]", EXPECT_ANY},
        {"BIGINT", "\"12\"", EXPECT_ANY},
        {"BIGINT", "2.5", EXPECT_ANY},
        {"BIGINT", "-2.5", EXPECT_ANY},
        {"BIGINT", "1e3", EXPECT_ANY},
        {"BIGINT", "true", EXPECT_ANY},
        {"BIGINT", "-0", EXPECT_ANY},
        {"DOUBLE", "\"abc\"", EXPECT_FAILURE},
        {"DOUBLE", "\"1.5\"", EXPECT_ANY},
        {"DOUBLE", "true", EXPECT_ANY},
        {"DOUBLE", "18446744073709551615", EXPECT_ANY},
        {"DOUBLE", "123456789012345678901234567890", EXPECT_ANY},
        {"DOUBLE", "-0", EXPECT_ANY},
        {"HUGEINT", "-9223372036854775808", EXPECT_ANY},
        {"HUGEINT", "1.5", EXPECT_ANY},
        {"BOOLEAN", "1", EXPECT_ANY},
        {"BOOLEAN", "\"true\"", EXPECT_ANY},
        {"BOOLEAN", "\"yes\"", EXPECT_ANY},
        {"DATE", "\"2025-13-01\"", EXPECT_FAILURE},
        {"DATE", "\"2025-01-02T10:00:00\"", EXPECT_ANY},
        {"DATE", "20250102", EXPECT_ANY},
        {"TIMESTAMP", "\"nope\"", EXPECT_FAILURE},
        {"TIMESTAMP", "\"2025-11-25\"", EXPECT_ANY},
        {"TIMESTAMP", "\"2025-11-25T10:00:00+02:00\"", EXPECT_ANY},
        {"TIME", "\"25:00:00\"", EXPECT_FAILURE},
        {"UUID", "\"not-a-uuid\"", EXPECT_FAILURE},
        /* The scan parses UUIDs itself (DuckDB's rule: braces, 32 hex
         * digits, '-' anywhere among them); the forms DuckDB takes must be
         * converted, not declined. */
        {"UUID", "\"550E8400-E29B-41D4-A716-446655440000\"", EXPECT_SUPPORTED},
        {"UUID", "\"{550e8400-e29b-41d4-a716-446655440000}\"", EXPECT_SUPPORTED},
        {"UUID", "\"550e8400e29b41d4a716446655440000\"", EXPECT_SUPPORTED},
        {"UUID", "\"-5-50e8400e29b41d4a716446655440000--\"", EXPECT_SUPPORTED},
        {"UUID", "\"550e8400\\u002De29b-41d4-a716-44665544000F\"", EXPECT_SUPPORTED},
        {"UUID", "\"ffffffff-ffff-ffff-ffff-ffffffffffff\"", EXPECT_SUPPORTED},
        {"UUID", "\"00000000-0000-0000-0000-000000000000\"", EXPECT_SUPPORTED},
        {"UUID", "\"7fffffff-ffff-ffff-8000-000000000000\"", EXPECT_SUPPORTED},
        {"UUID", "\"{550e8400-e29b-41d4-a716-446655440000\"", EXPECT_ANY},
        {"UUID", "\"550e8400-e29b-41d4-a716-44665544000\"", EXPECT_ANY},
        {"UUID", "\"550e8400-e29b-41d4-a716-4466554400000\"", EXPECT_ANY},
        {"UUID", "\" 550e8400-e29b-41d4-a716-446655440000\"", EXPECT_ANY},
        {"UUID", "\"550e8400-e29b-41d4-a716-44665544000g\"", EXPECT_ANY},
        {"UUID", "\"{}\"", EXPECT_ANY},
        {"UUID", "\"\"", EXPECT_ANY},
        {"UUID", "12", EXPECT_ANY},
        {"VARCHAR", "1.5", EXPECT_ANY},
        {"VARCHAR", "1E2", EXPECT_ANY},
        {"VARCHAR", "-0", EXPECT_ANY},
        {"VARCHAR", "true", EXPECT_ANY},
        {"VARCHAR", "{\"a\": [1, 2.50, \"x\"], \"b\" : {}}", EXPECT_ANY},
        {"VARCHAR", "[]", EXPECT_ANY},
        {"STRUCT(\"a\" BIGINT)", "\"x\"", EXPECT_ANY},
        {"STRUCT(\"a\" BIGINT)", "{\"b\":1}", EXPECT_ANY},
        {"STRUCT(\"a\" BIGINT)", "{\"a\":\"x\"}", EXPECT_FAILURE},
        {"BIGINT[]", "1", EXPECT_ANY},
        {"BIGINT[]", "[1,\"x\"]", EXPECT_FAILURE},
        {"VARCHAR[]", "[1, 2.5, true, {\"a\":1}, null]", EXPECT_ANY},
    };
    for (size_t i = 0; i < sizeof given / sizeof given[0]; i++) {
        char name[160];
        snprintf(name, sizeof name, "given %s <- %s", given[i].type, given[i].value);
        corpus c = {.name = name};
        corpus_add(&c, DAY, "{\"v\":null}");
        corpus_addf(&c, DAY, "{\"v\":%s}", given[i].value);
        tarn_column cols[] = {{"v", (char *)given[i].type}, {"_ingested_at", "TIMESTAMP"}, {"_seq", "BIGINT"}};
        scan_case k = {&c, given[i].expect, cols, 3, 0, 0, NULL};
        differential(&k);
        corpus_free(&c);
    }

    /* Keys that are not columns: DuckDB drops them. */
    corpus x = {.name = "given: keys not in the columns"};
    corpus_add(&x, DAY, "{\"v\":1,\"extra\":{\"not\":\"a column\"}}");
    corpus_add(&x, DAY, "{\"v\":2,\"o\":{\"a\":1,\"b\":2}}");
    tarn_column cols[] = {{"v", "BIGINT"}, {"o", "STRUCT(\"a\" BIGINT)"}, {"_ingested_at", "TIMESTAMP"},
                          {"_seq", "BIGINT"}};
    scan_case k = {&x, EXPECT_ANY, cols, 4, 0, 0, NULL};
    differential(&k);
    corpus_free(&x);
}

/* ------------------------------------------------------------ dates and ranges */

TEST(two_utc_dates_and_middle_ranges_match)
{
    corpus c = {.name = "two_dates"};
    /* 2025-11-25, then 2025-11-26, then 2025-11-25 again (a part whose
     * records are not contiguous in the log), then before 1970. */
    for (int i = 0; i < 3; i++) corpus_addf(&c, LATE, "{\"id\":%d,\"v\":\"late %d\",\"x\":%d.5}", i + 1, i, i);
    for (int i = 3; i < 7; i++) corpus_addf(&c, EARLY, "{\"id\":%d,\"v\":\"early %d\",\"x\":%d}", i + 1, i, i);
    for (int i = 7; i < 9; i++) corpus_addf(&c, LATE, "{\"id\":%d,\"o\":{\"k\":%d}}", i + 1, i);
    corpus_add(&c, -1, "{\"id\":10,\"v\":\"just before 1970\"}");
    corpus_add(&c, -86400000001LL, "{\"id\":11,\"v\":\"two days before\"}");
    corpus_add(&c, EARLY, "{\"id\":12}");
    differential_all(&c, EXPECT_SUPPORTED);
    /* Ranges inside the log: from > 0, upto < last. */
    static const int64_t ranges[][2] = {{2, 10}, {3, 7}, {4, 6}, {9, 11}, {11, 12}};
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
        scan_case k = {&c, EXPECT_SUPPORTED, NULL, 0, ranges[i][0], ranges[i][1], NULL};
        differential(&k);
    }

    /* A date with no record in the range: nothing to match, but if the new
     * path writes a file, it is empty. */
    char *dir = env_subdir();
    tarn_stream *s = stream_of(&c, dir);
    CHECK(s != NULL);
    if (s) {
        tarn_column cols[] = {{"id", "BIGINT"}, {"_ingested_at", "TIMESTAMP"}, {"_seq", "BIGINT"}};
        scan_case k = {&c, EXPECT_ANY, cols, 3, 4, 6, NULL};
        outcome o;
        new_write(s, &k, 6, "2025-11-25", cols, 3, dir, "none.parquet", &o);
        if (o.rc == TARN_OK) CHECK_EQ_INT(o.rows, 0);
        else printf("  note %s: no records of the date in the range: %s: %s\n", c.name, tarn_err_name(o.rc), o.eb.msg);
    }
    stream_end(s, dir, &c);
}

/* ------------------------------------------------------------ the quick scan */

/* The quick scan (scan.h, "Quick schema") converts a batch with columns
 * inferred from the sample of its head alone, and stops at any value of a
 * kind (kinds.h) the head did not have at its place. Its promise is the
 * full way's file: so the oracle here is the batch staged whole and written
 * by DuckDB's JSON reader, with columns inferred from the whole batch's
 * sample as the delivery infers them. */

/* The (place, kind) pairs of records, worked out here from their text with
 * the kinds of kinds.h, to build corpora whose head holds every pair of the
 * batch: the batches the quick scan must take. A place is the keys from the
 * record's root, ASCII letters in lower case (the scan finds a column or
 * field without regard to ASCII case), with "[]" for an array's elements.
 * Kept sorted, for bsearch. */
typedef struct pairs {
    char **v;
    size_t n, cap;
} pairs;

static int pair_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int pairs_has(const pairs *p, const char *s)
{
    return p->n && bsearch(&s, p->v, p->n, sizeof *p->v, pair_cmp) != NULL;
}

/* Adds s, which it takes (and frees if it is there already). */
static void pairs_add(pairs *p, char *s)
{
    size_t lo = 0, hi = p->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(p->v[mid], s);
        if (c == 0) {
            free(s);
            return;
        }
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 64;
        p->v = realloc(p->v, p->cap * sizeof *p->v);
    }
    memmove(p->v + lo + 1, p->v + lo, (p->n - lo) * sizeof *p->v);
    p->v[lo] = s;
    p->n++;
}

static void pairs_free(pairs *p)
{
    for (size_t i = 0; i < p->n; i++) free(p->v[i]);
    free(p->v);
    memset(p, 0, sizeof *p);
}

#define PLACE_MAX 256

static const char *json_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    return p;
}

/* The closing quote of the string whose text starts at s. */
static const char *json_string_end(const char *s)
{
    while (*s != '"') s += *s == '\\' ? 2 : 1;
    return s;
}

static void note_pair(pairs *out, const char *place, size_t n, uint32_t kind)
{
    pairs_add(out, text_printf("%.*s %#x", (int)n, place, (unsigned)kind));
}

/* Notes the pairs of the JSON value at p (valid: the ingest took the
 * record) at place, its first n bytes; returns the byte after the value. */
static const char *value_pairs(const char *p, char *place, size_t n, pairs *out)
{
    p = json_ws(p);
    if (*p == '{' || *p == '[') {
        int object = *p == '{';
        note_pair(out, place, n, object ? SHAPE_OBJECT : SHAPE_ARRAY);
        p = json_ws(p + 1);
        if (*p == (object ? '}' : ']')) return p + 1;
        for (;;) {
            size_t m = n;
            if (object) {
                const char *k = p + 1, *e = json_string_end(k);
                /* Places cut at PLACE_MAX only merge: the corpora here are
                 * shallow. */
                if (m < PLACE_MAX - 1) place[m++] = '.';
                for (; k < e && m < PLACE_MAX - 3; k++) place[m++] = (char)(*k >= 'A' && *k <= 'Z' ? *k | 0x20 : *k);
                p = json_ws(e + 1) + 1; /* past the ':' */
            } else if (m < PLACE_MAX - 3) {
                place[m++] = '[';
                place[m++] = ']';
            }
            p = json_ws(value_pairs(p, place, m, out));
            if (*p++ != ',') return p; /* past the '}' or ']' */
            p = json_ws(p);
        }
    }
    if (*p == '"') {
        const char *e = json_string_end(p + 1);
        note_pair(out, place, n, shape_string_kind(p + 1, (size_t)(e - p - 1)));
        return e + 1;
    }
    if (*p == 't' || *p == 'n') {
        note_pair(out, place, n, *p == 't' ? SHAPE_BOOLEAN : SHAPE_NULL);
        return p + 4;
    }
    if (*p == 'f') {
        note_pair(out, place, n, SHAPE_BOOLEAN);
        return p + 5;
    }
    int negative = *p == '-';
    const char *d = p + negative, *e = d;
    while (*e >= '0' && *e <= '9') e++;
    if (*e != '.' && *e != 'e' && *e != 'E') {
        note_pair(out, place, n, shape_integer(negative, d, (size_t)(e - d)));
        return e;
    }
    if (*e == '.')
        for (e++; *e >= '0' && *e <= '9'; e++) continue;
    if (*e == 'e' || *e == 'E') {
        e++;
        if (*e == '+' || *e == '-') e++;
        while (*e >= '0' && *e <= '9') e++;
    }
    note_pair(out, place, n, SHAPE_REAL);
    return e;
}

static void record_pairs(const char *text, pairs *out)
{
    char place[PLACE_MAX];
    value_pairs(text, place, 0, out);
}

/* Brings forward, to right after the head (the records [from, from + *head)
 * of c), each later record holding a pair that the head does not, so that
 * the head holds every pair of the records from `from` on; *head grows by
 * the records moved. Records keep their order and times otherwise: a corpus
 * of one date stays one. The moves are bounded by the corpus's size. */
static void corpus_complete_head(corpus *c, size_t from, size_t *head)
{
    pairs known = {0};
    for (size_t i = from; i < from + *head && i < c->n; i++) record_pairs(c->texts[i], &known);
    for (size_t i = from + *head; i < c->n; i++) {
        pairs mine = {0};
        record_pairs(c->texts[i], &mine);
        int news = 0;
        for (size_t k = 0; k < mine.n && !news; k++) news = !pairs_has(&known, mine.v[k]);
        if (news) {
            size_t at = from + *head;
            char *text = c->texts[i];
            int64_t ts = c->ts[i];
            memmove(c->texts + at + 1, c->texts + at, (i - at) * sizeof *c->texts);
            memmove(c->ts + at + 1, c->ts + at, (i - at) * sizeof *c->ts);
            c->texts[at] = text;
            c->ts[at] = ts;
            (*head)++;
            for (size_t k = 0; k < mine.n; k++) {
                pairs_add(&known, mine.v[k]);
                mine.v[k] = NULL;
            }
        }
        pairs_free(&mine);
    }
    pairs_free(&known);
}

/* The quick scan of the records (from, upto] of date into dir/name, learning
 * the kinds of (from, learn_upto] and ending the batch at max_bytes; q gets
 * what it took (-1 until the scan tells). Not counted among the conversions
 * of the summary line: those are the normal scan's. */
static void quick_write(tarn_stream *s, int64_t from, int64_t upto, const char *date, const tarn_column *cols,
                        size_t ncols, int64_t learn_upto, size_t max_bytes, tarn_writer_quick *q, const char *dir,
                        const char *name, outcome *o)
{
    memset(o, 0, sizeof *o);
    snprintf(o->path, sizeof o->path, "%s/%s", dir, name);
    o->rows = -1;
    *q = (tarn_writer_quick){learn_upto, max_bytes, -1, -1};
    o->rc = tarn_writer_log_to_parquet(env.w, s, from, upto, date, cols, ncols, q, o->path, &o->rows, &o->eb);
}

/* Whether msg names record seq ("record 50", not "record 500"). */
static int names_record(const char *msg, int64_t seq)
{
    char want[40];
    int n = snprintf(want, sizeof want, "record %lld", (long long)seq);
    for (const char *p = strstr(msg, want); p; p = strstr(p + 1, want))
        if (p[n] < '0' || p[n] > '9') return 1;
    return 0;
}

/* A quick scan that must stop: TARN_EUNSUPPORTED, no file, and the
 * message names the record it stopped at (0: any). */
static void expect_stop(const char *name, const char *what, const outcome *o, int64_t seq)
{
    if (o->rc != TARN_EUNSUPPORTED) {
        printf("  FAIL %s (%s): the quick scan gives %s (%s), not TARN_EUNSUPPORTED\n", name, what,
               tarn_err_name(o->rc), o->rc ? o->eb.msg : "a file");
        test__cur_failed = 1;
    } else if (seq && !names_record(o->eb.msg, seq)) {
        printf("  FAIL %s (%s): the quick scan stopped, but not at record %lld: %s\n", name, what, (long long)seq,
               o->eb.msg);
        test__cur_failed = 1;
    }
    if (access(o->path, F_OK) == 0) {
        printf("  FAIL %s (%s): the quick scan stopped, yet left %s\n", name, what, o->path);
        test__cur_failed = 1;
    }
    if (getenv("TEST_SCAN_VERBOSE")) printf("    %s (%s): %s\n", name, what, o->eb.msg);
}

/* A write that must succeed with rows rows. */
static void expect_rows(const char *name, const char *what, const outcome *o, int64_t rows)
{
    if (o->rc != TARN_OK) {
        printf("  FAIL %s (%s): %s: %s\n", name, what, tarn_err_name(o->rc), o->eb.msg);
        test__cur_failed = 1;
    } else if (o->rows != rows) {
        printf("  FAIL %s (%s): %lld rows, not %lld\n", name, what, (long long)o->rows, (long long)rows);
        test__cur_failed = 1;
    }
}

/* A new directory with a stream of c in it, and the staging directories
 * dir/<name> that tests ask for. NULL on failure (reported). */
static tarn_stream *quick_stream(const corpus *c, char **dir)
{
    *dir = env_subdir();
    tarn_stream *s = stream_of(c, *dir);
    if (!s) {
        printf("  FAIL %s: no stream\n", c->name);
        test__cur_failed = 1;
    }
    return s;
}

/* Runs a pass of kind over (from, upto] into dir/sub (made here). */
static int stage_into(tarn_stream *s, enum tarn_stage_kind kind, int64_t from, int64_t upto, size_t max_bytes,
                      const char *dir, const char *sub, tarn_stage_result *st, tarn_errbuf *eb)
{
    char *d = text_printf("%s/%s", dir, sub);
    int rc = tarn_mkdir_p(d, eb);
    if (rc == TARN_OK) rc = tarn_stage_batch(s, kind, from, upto, max_bytes, 1, d, st, eb);
    free(d);
    return rc;
}

/* The columns the delivery gives a quick scan: from the schema pass over
 * the head (from, learn_upto] alone. */
static int head_columns(tarn_stream *s, int64_t from, int64_t learn_upto, const char *dir, tarn_column **cols,
                        size_t *ncols, tarn_errbuf *eb)
{
    tarn_stage_result st;
    int rc = stage_into(s, TARN_STAGE_SCHEMA, from, learn_upto, SIZE_MAX, dir, "head", &st, eb);
    if (rc == TARN_OK && st.nparts != 1) rc = tarn_errbuf_set(eb, TARN_EINTERNAL, "a head of %zu dates", st.nparts);
    if (rc == TARN_OK) rc = sample_columns(&st, cols, ncols, eb);
    tarn_stage_result_free(&st);
    if (rc == TARN_OK && getenv("TEST_SCAN_VERBOSE"))
        for (size_t i = 0; i < *ncols; i++) printf("    head column %s %s\n", (*cols)[i].name, (*cols)[i].type);
    return rc;
}

/* quick_stream, then the columns the delivery would infer from the head
 * (0, learn_upto] (head_columns): the stream, or NULL, a failure noted, if
 * either fails. */
static tarn_stream *quick_head_stream(const corpus *c, char **dir, int64_t learn_upto, tarn_column **cols,
                                      size_t *ncols)
{
    tarn_stream *s = quick_stream(c, dir);
    tarn_errbuf eb = {{0}};
    if (s && head_columns(s, 0, learn_upto, *dir, cols, ncols, &eb)) {
        printf("  FAIL %s: inferring the head's columns: %s\n", c->name, eb.msg);
        test__cur_failed = 1;
        tarn_stream_close(s);
        return NULL;
    }
    return s;
}

/* Holds the quick scan of c's records (from, n] (one UTC date), learning
 * from (from, learn_upto], to the full way: the same file, taken whole. */
static void quick_differential(const corpus *c, int64_t from, int64_t learn_upto)
{
    char *dir = NULL;
    tarn_stream *s = quick_stream(c, &dir);
    tarn_stage_result st;
    memset(&st, 0, sizeof st);
    tarn_column *ocols = NULL, *qcols = NULL;
    size_t nocols = 0, nqcols = 0;
    int64_t upto = (int64_t)c->n, bytes = 0;
    tarn_errbuf eb = {{0}};
    if (!s) goto out;
    if (stage_into(s, TARN_STAGE_PROCESSED, from, upto, SIZE_MAX, dir, "full", &st, &eb) ||
        sample_columns(&st, &ocols, &nocols, &eb) || head_columns(s, from, learn_upto, dir, &qcols, &nqcols, &eb)) {
        printf("  FAIL %s: staging or inferring: %s\n", c->name, eb.msg);
        test__cur_failed = 1;
        goto out;
    }
    if (st.nparts != 1 || st.last_seq != upto) {
        printf("  FAIL %s: staged %zu dates through seq %lld: a quick corpus is one date\n", c->name, st.nparts,
               (long long)st.last_seq);
        test__cur_failed = 1;
        goto out;
    }
    outcome old, neu;
    tarn_writer_quick q;
    old_write(&st, 0, 0, ocols, nocols, dir, "full.parquet", &old);
    quick_write(s, from, upto, st.parts[0].date, qcols, nqcols, learn_upto, SIZE_MAX, &q, dir, "quick.parquet", &neu);
    /* Same rows, columns, compression and values; never declined. */
    scan_case k = {c, EXPECT_SUPPORTED, NULL, 0, from, upto, NULL};
    judge(&k, "quick scan", &old, &neu);
    for (int64_t i = from; i < upto; i++) bytes += (int64_t)strlen(c->texts[i]);
    if (neu.rc == TARN_OK && (q.last_seq != upto || q.bytes != bytes || neu.rows != upto - from)) {
        printf("  FAIL %s: the quick scan took through %lld, %lld bytes, %lld rows; the range ends at %lld with %lld "
               "bytes\n",
               c->name, (long long)q.last_seq, (long long)q.bytes, (long long)neu.rows, (long long)upto,
               (long long)bytes);
        test__cur_failed = 1;
    }
out:
    tarn_columns_free(ocols, nocols);
    tarn_columns_free(qcols, nqcols);
    tarn_stage_result_free(&st);
    if (s) tarn_stream_close(s);
    tarn_rm_rf(dir);
    free(dir);
}

/* Completes the head of `head` records after `from` and holds the quick
 * scan to the full way. */
static void quick_all(corpus *c, size_t from, size_t head)
{
    corpus_complete_head(c, from, &head);
    if (getenv("TEST_SCAN_VERBOSE")) printf("    %s: a head of %zu records\n", c->name, head);
    quick_differential(c, (int64_t)from, (int64_t)(from + head));
}

/* The corpora that must never be declined, with a head of 40 records
 * (heads are 2,048 in the delivery; small ones keep the test fast, and the
 * rule is the same) completed with their later records that bring a pair of
 * their own. */
TEST(quick_scan_writes_what_the_full_way_writes)
{
    corpus u = {.name = "quick randomuser"};
    rng_seed(42);
    for (int i = 0; i < 400; i++) add_user(&u, DAY);
    quick_all(&u, 0, 40);
    corpus_free(&u);

    /* A range that starts after the log's first records. */
    corpus r = {.name = "quick iot"};
    rng_seed(7);
    for (int i = 0; i < 400; i++) add_reading(&r, DAY);
    quick_all(&r, 5, 40);
    corpus_free(&r);

    corpus m = {.name = "quick mix_int_string"};
    for (int i = 0; i < 300; i++) add_int_string(&m, DAY, i);
    quick_all(&m, 0, 40);
    corpus_free(&m);

    corpus v = {.name = "quick scalars"};
    rng_seed(11);
    for (int i = 0; i < 300; i++) add_scalars(&v, DAY);
    corpus_add(&v, DAY,
               "{\"b\":null,\"nul\":null,\"i\":null,\"hugeish\":null,\"d\":null,\"d17\":null,\"date\":null,"
               "\"time\":null,\"ts\":null,\"ts2\":null,\"u\":null,\"s\":null,\"date_or_ts\":null,\"ts_micros\":null}");
    corpus_add(&v, DAY, "{}");
    quick_all(&v, 0, 40);
    corpus_free(&v);

    corpus b = {.name = "quick ubigint"};
    for (int i = 0; i < 200; i++) add_ubigint(&b, DAY, i);
    quick_all(&b, 0, 40);
    corpus_free(&b);
}

/* Record 50 of 60 holds, at one place (a column, a STRUCT's field, a list's
 * elements), a value of a kind the head (records 1-40) never had there,
 * which the normal scan takes with the same columns: the quick scan must
 * stop, and take it once its head holds the record. */
enum { QUICK_HEAD = 40, QUICK_BAD = 50, QUICK_N = 60 };

TEST(quick_scan_stops_at_kinds_its_head_did_not_have)
{
    static const struct {
        const char *name;
        const char *head[2]; /* the values of every other record, in turn */
        const char *later;   /* record 50's */
        const char *type;    /* the type of column v */
        int given;           /* columns given (of that type) rather than inferred from the head */
    } cases[] = {
        /* The normal scan writes an integer's text into VARCHAR. */
        {"an integer among strings", {"\"alpha\"", "\"beta\""}, "7", "VARCHAR", 0},
        {"a boolean among strings", {"\"alpha\"", "\"beta\""}, "true", "VARCHAR", 0},
        /* The SELECT's CAST to DATE drops the time without a word; the full
         * way would have sampled the value and made the column a TIMESTAMP
         * or VARCHAR. The case that matters most. */
        {"a date with a time among dates", {"\"2025-01-02\"", "\"2025-11-25\""}, "\"2025-01-02T10:00:00\"", "DATE", 0},
        {"null where the head had none", {"1", "2"}, "null", "BIGINT", 0},
        {"a negative integer among positive ones", {"1", "2"}, "-3", "BIGINT", 0},
        {"a whole number among fractions", {"1.5", "2.25"}, "3", "DOUBLE", 0},
        /* A BIGINT column would refuse it anyway: HUGEINT, as a table
         * whose schema already has one. */
        {"an integer of 2^63 among smaller ones", {"1", "2"}, "9223372036854775808", "HUGEINT", 1},
    };
    static const char *const places[] = {"v", "o.w", "l[]"};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        for (size_t pi = 0; pi < 3; pi++) {
            char name[160];
            snprintf(name, sizeof name, "quick: %s at %s", cases[ci].name, places[pi]);
            corpus c = {.name = name};
            for (int r = 1; r <= QUICK_N; r++) {
                const char *h = cases[ci].head[r % 2], *x = r == QUICK_BAD ? cases[ci].later : h;
                corpus_addf(&c, DAY, "{\"k\":%d,\"v\":%s,\"o\":{\"w\":%s},\"l\":[%s]}", r, pi == 0 ? x : h,
                            pi == 1 ? x : h, pi == 2 ? x : h);
            }
            char *dir = NULL, *w = text_printf("STRUCT(\"w\" %s)", cases[ci].type),
                 *l = text_printf("%s[]", cases[ci].type);
            tarn_column given[] = {{"k", "BIGINT"}, {"v", (char *)cases[ci].type}, {"o", w}, {"l", l},
                                   {"_ingested_at", "TIMESTAMP"}, {"_seq", "BIGINT"}};
            tarn_column *inferred = NULL;
            size_t ninferred = 0;
            tarn_errbuf eb = {{0}};
            tarn_stream *s = quick_stream(&c, &dir);
            if (s && !cases[ci].given && head_columns(s, 0, QUICK_HEAD, dir, &inferred, &ninferred, &eb)) {
                printf("  FAIL %s: inferring the head's columns: %s\n", name, eb.msg);
                test__cur_failed = 1;
            } else if (s) {
                const tarn_column *cols = cases[ci].given ? given : inferred;
                size_t ncols = cases[ci].given ? sizeof given / sizeof given[0] : ninferred;
                /* The case is what it says: v has the type. */
                for (size_t i = 0; i < ncols; i++)
                    if (strcmp(cols[i].name, "v") == 0 && strcmp(cols[i].type, cases[ci].type) != 0) {
                        printf("  FAIL %s: column v is %s, not %s\n", name, cols[i].type, cases[ci].type);
                        test__cur_failed = 1;
                    }
                scan_case k = {&c, EXPECT_SUPPORTED, cols, ncols, 0, QUICK_N, NULL};
                outcome normal, quick, ctl;
                tarn_writer_quick q;
                /* The normal scan takes record 50: a stop below is the kind
                 * check's. */
                new_write(s, &k, QUICK_N, "2025-11-25", cols, ncols, dir, "normal.parquet", &normal);
                expect_rows(name, "normal scan", &normal, QUICK_N);
                quick_write(s, 0, QUICK_N, "2025-11-25", cols, ncols, QUICK_HEAD, SIZE_MAX, &q, dir, "quick.parquet",
                            &quick);
                expect_stop(name, "quick scan", &quick, QUICK_BAD);
                /* With record 50 in the head, the same scan takes it, and
                 * writes what the normal scan wrote. */
                quick_write(s, 0, QUICK_N, "2025-11-25", cols, ncols, QUICK_N, SIZE_MAX, &q, dir, "ctl.parquet", &ctl);
                judge(&k, "quick scan learning every record", &normal, &ctl);
            }
            tarn_columns_free(inferred, ninferred);
            free(w);
            free(l);
            stream_end(s, dir, &c);
        }
    }
}

/* The quick scan is of one UTC date, the head's: the batch ends before the
 * first record of another (the full way would make it a part of its own;
 * the next batch starts with it), where the normal scan of that date passes
 * it by. Records 1-49 at 23:59:59.5, record 50 half a second later, on the
 * next day, and 51-60 back at 23:59:59.5 (a clock set back). */
TEST(quick_scan_ends_the_batch_at_another_utc_date)
{
    const char *name = "quick: another date";
    corpus c = {.name = name};
    for (int r = 1; r <= QUICK_N; r++) corpus_addf(&c, r == QUICK_BAD ? EARLY : LATE, "{\"k\":%d,\"v\":\"x\"}", r);
    char *dir = NULL;
    tarn_column *cols = NULL;
    size_t ncols = 0;
    tarn_stream *s = quick_head_stream(&c, &dir, QUICK_HEAD, &cols, &ncols);
    if (s) {
        scan_case k = {&c, EXPECT_SUPPORTED, cols, ncols, 0, QUICK_N, NULL};
        outcome normal, quick, before;
        tarn_writer_quick q;
        new_write(s, &k, QUICK_N, "2025-11-25", cols, ncols, dir, "normal.parquet", &normal);
        expect_rows(name, "normal scan", &normal, QUICK_N - 1);
        quick_write(s, 0, QUICK_N, "2025-11-25", cols, ncols, QUICK_HEAD, SIZE_MAX, &q, dir, "quick.parquet", &quick);
        expect_rows(name, "quick scan", &quick, QUICK_BAD - 1);
        CHECK_EQ_INT(q.last_seq, QUICK_BAD - 1);
        /* The same as the normal scan of records 1-49. */
        scan_case k49 = {&c, EXPECT_SUPPORTED, cols, ncols, 0, QUICK_BAD - 1, NULL};
        new_write(s, &k49, QUICK_BAD - 1, "2025-11-25", cols, ncols, dir, "before.parquet", &before);
        judge(&k49, "quick scan ending before record 50", &before, &quick);
    }
    tarn_columns_free(cols, ncols);
    stream_end(s, dir, &c);
}

/* Keys spelled with other capitals than their column: the scan puts the
 * value in the column (scan.h) and learns and checks kinds per column, so
 * the spelling alone does not stop it; a kind the column did not learn
 * does, under any spelling. (The full way samples "ID" as a path of its own,
 * keys being compared byte for byte (stage.h), and DuckDB may infer a column
 * per spelling: scan.h accepts that the quick scan differs there. Asserted
 * here is what the scan does: what the normal scan writes, or a stop where
 * the normal scan takes the record.) */
TEST(quick_scan_takes_keys_in_other_capitals_as_their_column)
{
    static const struct {
        const char *name, *later;
        int stops;
    } cases[] = {
        {"quick: keys in capitals, kinds of the head", "{\"ID\":\"u50\",\"Name\":\"n 50\"}", 0},
        /* An integer into the VARCHAR column id: the normal scan takes it. */
        {"quick: a key in capitals, a kind of its own", "{\"ID\":50,\"name\":\"n 50\"}", 1},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const char *name = cases[ci].name;
        corpus c = {.name = name};
        for (int r = 1; r <= QUICK_N; r++) {
            if (r == QUICK_BAD) corpus_add(&c, DAY, cases[ci].later);
            else corpus_addf(&c, DAY, "{\"id\":\"u%d\",\"name\":\"n %d\"}", r, r);
        }
        char *dir = NULL;
        tarn_column *cols = NULL;
        size_t ncols = 0;
        tarn_stream *s = quick_head_stream(&c, &dir, QUICK_HEAD, &cols, &ncols);
        if (s) {
            scan_case k = {&c, EXPECT_SUPPORTED, cols, ncols, 0, QUICK_N, NULL};
            outcome normal, quick;
            tarn_writer_quick q;
            new_write(s, &k, QUICK_N, "2025-11-25", cols, ncols, dir, "normal.parquet", &normal);
            expect_rows(name, "normal scan", &normal, QUICK_N);
            quick_write(s, 0, QUICK_N, "2025-11-25", cols, ncols, QUICK_HEAD, SIZE_MAX, &q, dir, "quick.parquet",
                        &quick);
            if (cases[ci].stops) expect_stop(name, "quick scan", &quick, QUICK_BAD);
            else judge(&k, "quick scan against the normal one", &normal, &quick);
        }
        tarn_columns_free(cols, ncols);
        stream_end(s, dir, &c);
    }
}

/* The quick scan ends the batch where the staging would (the record whose
 * payload bytes make the total reach the budget is the last), so that the
 * checkpoint is the same whichever way a batch took. Users of about 1 KB:
 * 3,000 span two vectors, taken by both of the writer's threads. */
TEST(quick_scan_ends_batches_by_the_staging_byte_rule)
{
    corpus c = {.name = "quick budget"};
    rng_seed(43);
    for (int i = 0; i < 3000; i++) add_user(&c, DAY);
    size_t head = QUICK_HEAD;
    corpus_complete_head(&c, 0, &head);
    int64_t n = (int64_t)c.n, *upto_bytes = calloc(c.n + 1, sizeof *upto_bytes);
    for (size_t i = 0; i < c.n; i++) upto_bytes[i + 1] = upto_bytes[i] + (int64_t)strlen(c.texts[i]);
    const struct {
        const char *what;
        size_t budget;
        int64_t last; /* the record that ends the batch */
    } budgets[] = {
        {"a budget a byte short of record 1700's end", (size_t)upto_bytes[1700] - 1, 1700},
        {"a budget at record 2100's end", (size_t)upto_bytes[2100], 2100},
        {"a budget smaller than the first record", 1, 1},
        {"a budget larger than everything", (size_t)upto_bytes[n] + 1, n},
        {"no budget", SIZE_MAX, n},
    };
    char *dir = NULL;
    tarn_column *cols = NULL;
    size_t ncols = 0;
    tarn_errbuf eb = {{0}};
    tarn_stream *s = quick_head_stream(&c, &dir, (int64_t)head, &cols, &ncols);
    if (s) {
        for (size_t b = 0; b < sizeof budgets / sizeof budgets[0]; b++) {
            const char *what = budgets[b].what;
            char sub[32], file[32];
            tarn_stage_result schema, staged;
            memset(&schema, 0, sizeof schema);
            memset(&staged, 0, sizeof staged);
            snprintf(sub, sizeof sub, "schema%zu", b);
            int rc = stage_into(s, TARN_STAGE_SCHEMA, 0, n, budgets[b].budget, dir, sub, &schema, &eb);
            snprintf(sub, sizeof sub, "processed%zu", b);
            if (rc == TARN_OK) rc = stage_into(s, TARN_STAGE_PROCESSED, 0, n, budgets[b].budget, dir, sub, &staged, &eb);
            if (rc != TARN_OK || schema.nparts != 1 || staged.nparts != 1) {
                printf("  FAIL %s (%s): staging: %s\n", c.name, what, rc ? eb.msg : "not one part");
                test__cur_failed = 1;
            } else {
                /* The test's own sums agree with the staging ... */
                CHECK_EQ_INT(schema.last_seq, budgets[b].last);
                CHECK_EQ_INT(schema.bytes, upto_bytes[budgets[b].last]);
                /* ... and the quick scan with both. */
                outcome old, neu;
                tarn_writer_quick q;
                snprintf(file, sizeof file, "quick%zu.parquet", b);
                quick_write(s, 0, n, schema.parts[0].date, cols, ncols, (int64_t)head, budgets[b].budget, &q, dir,
                            file, &neu);
                expect_rows(c.name, what, &neu, schema.last_seq);
                if (neu.rc == TARN_OK && (q.last_seq != schema.last_seq || q.bytes != schema.bytes)) {
                    printf("  FAIL %s (%s): the quick scan took through %lld, %lld bytes; the staging through %lld, "
                           "%lld bytes\n",
                           c.name, what, (long long)q.last_seq, (long long)q.bytes, (long long)schema.last_seq,
                           (long long)schema.bytes);
                    test__cur_failed = 1;
                }
                /* The very rows the staged batch holds. */
                snprintf(file, sizeof file, "staged%zu.parquet", b);
                old_write(&staged, 0, 0, cols, ncols, dir, file, &old);
                scan_case k = {&c, EXPECT_SUPPORTED, cols, ncols, 0, staged.last_seq, NULL};
                judge(&k, what, &old, &neu);
            }
            tarn_stage_result_free(&schema);
            tarn_stage_result_free(&staged);
        }
    }
    tarn_columns_free(cols, ncols);
    free(upto_bytes);
    stream_end(s, dir, &c);
}

/* The scan learns the head by converting it: a head record that does not
 * convert (a fraction where the given columns make a VARCHAR, as a table's
 * schema may) fails the quick scan before it writes anything. Record 40,
 * the head's last, is that one. */
TEST(quick_scan_fails_on_a_head_it_cannot_convert)
{
    const char *name = "quick: a head that does not convert";
    corpus c = {.name = name};
    for (int r = 1; r <= QUICK_N; r++) {
        if (r == QUICK_HEAD) corpus_addf(&c, DAY, "{\"k\":%d,\"v\":1.5}", r);
        else corpus_addf(&c, DAY, "{\"k\":%d,\"v\":\"s %d\"}", r, r);
    }
    tarn_column cols[] = {{"k", "BIGINT"}, {"v", "VARCHAR"}, {"_ingested_at", "TIMESTAMP"}, {"_seq", "BIGINT"}};
    char *dir = NULL;
    tarn_stream *s = quick_stream(&c, &dir);
    if (s) {
        outcome o;
        tarn_writer_quick q;
        quick_write(s, 0, QUICK_N, "2025-11-25", cols, 4, QUICK_HEAD, SIZE_MAX, &q, dir, "whole.parquet", &o);
        expect_stop(name, "the whole range", &o, QUICK_HEAD);
        /* A budget that ends the batch at record 1, which converts: only the
         * learning reads record 40. */
        quick_write(s, 0, QUICK_N, "2025-11-25", cols, 4, QUICK_HEAD, 1, &q, dir, "one.parquet", &o);
        expect_stop(name, "a batch of record 1", &o, QUICK_HEAD);
        /* Without record 40, the same columns take the head. */
        quick_write(s, 0, QUICK_HEAD - 1, "2025-11-25", cols, 4, QUICK_HEAD - 1, SIZE_MAX, &q, dir, "ctl.parquet",
                    &o);
        expect_rows(name, "records 1-39", &o, QUICK_HEAD - 1);
        /* A quick scan is of one date (writer.h): without one it fails, and
         * writes nothing. */
        memset(&o, 0, sizeof o);
        snprintf(o.path, sizeof o.path, "%s/nodate.parquet", dir);
        q = (tarn_writer_quick){QUICK_HEAD - 1, SIZE_MAX, -1, -1};
        o.rc = tarn_writer_log_to_parquet(env.w, s, 0, QUICK_HEAD - 1, NULL, cols, 4, &q, o.path, &o.rows, &o.eb);
        CHECK(o.rc != TARN_OK);
        CHECK(access(o.path, F_OK) != 0);
    }
    stream_end(s, dir, &c);
}

/* Runs a test unless a name was given on the command line that it does not
 * contain: `test_scan lists` runs lists_match alone. */
static const char *only;
#define RUN_SELECTED(name)                          \
    do {                                            \
        if (!only || strstr(#name, only)) RUN(name); \
    } while (0)

int main(int argc, char **argv)
{
    only = argc > 1 ? argv[1] : NULL;
    if (env_open()) {
        env_close();
        printf("0 passed, 1 failed\n");
        return 1;
    }
    RUN_SELECTED(randomuser_records_match_and_are_never_declined);
    RUN_SELECTED(iot_readings_match_and_are_never_declined);
    RUN_SELECTED(scalars_of_every_kind_match);
    RUN_SELECTED(doubles_at_the_edges_match);
    RUN_SELECTED(numbers_and_booleans_as_varchar_match);
    RUN_SELECTED(strings_of_detected_types_match);
    RUN_SELECTED(integers_beyond_bigint_match_as_hugeint);
    RUN_SELECTED(strings_with_escapes_and_unicode_match);
    RUN_SELECTED(records_larger_than_a_scan_buffer_match);
    RUN_SELECTED(keys_missing_late_empty_and_escaped_match);
    RUN_SELECTED(keys_differing_only_in_case_match);
    RUN_SELECTED(wide_records_match);
    RUN_SELECTED(deeply_nested_records_match);
    RUN_SELECTED(lists_match);
    RUN_SELECTED(whitespace_between_tokens_matches);
    RUN_SELECTED(int_and_string_in_one_field_match_and_are_never_declined);
    RUN_SELECTED(other_mixed_kinds_match_or_are_declined);
    RUN_SELECTED(values_converted_to_given_columns_match);
    RUN_SELECTED(two_utc_dates_and_middle_ranges_match);
    RUN_SELECTED(quick_scan_writes_what_the_full_way_writes);
    RUN_SELECTED(quick_scan_stops_at_kinds_its_head_did_not_have);
    RUN_SELECTED(quick_scan_ends_the_batch_at_another_utc_date);
    RUN_SELECTED(quick_scan_takes_keys_in_other_capitals_as_their_column);
    RUN_SELECTED(quick_scan_ends_batches_by_the_staging_byte_rule);
    RUN_SELECTED(quick_scan_fails_on_a_head_it_cannot_convert);
    printf("the new path declined %d of %d conversions%s%s\n", env.nunsupported, env.nconversions,
           env.nunsupported ? ", in: " : "", env.declined.data ? env.declined.data : "");
    env_close();
    return test_main_end();
}
