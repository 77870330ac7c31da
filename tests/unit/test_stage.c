/* Unit tests for staging a batch (src/delivery/stage.c): one file per UTC
 * ingest date, both passes covering the same records, processed lines with
 * _ingested_at and _seq, raw lines as received, budgets respected; the
 * schema sample holding the first record of every (path, kind) pair of the
 * batch, and its limits. */
#include "delivery/stage.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>

#include "common/buf.h"
#include "common/util.h"
#include "test.h"

/* 2025-11-25 23:59:59.5 UTC and 2025-11-26 00:00:00.25 UTC, in microseconds. */
#define LATE 1764115199500000LL
#define EARLY 1764115200250000LL

static tarn_stream *open_stream(char **dir)
{
    *dir = test_tmpdir("stage");
    char sdir[512];
    snprintf(sdir, sizeof sdir, "%s/log", *dir);
    tarn_errbuf eb = {{0}};
    tarn_mkdir_p(sdir, &eb);
    tarn_stream_opts o = {0, 0, 1};
    tarn_stream *s = NULL;
    if (tarn_stream_open(sdir, &o, &s, &eb)) printf("  open: %s\n", eb.msg);
    return s;
}

static void append(tarn_stream *s, int64_t ts, const char *a, const char *b)
{
    tarn_record r[2] = {{a, strlen(a)}, {b, b ? strlen(b) : 0}};
    int64_t f, l;
    tarn_errbuf eb = {{0}};
    if (tarn_stream_append(s, r, b ? 2 : 1, ts, &f, &l, &eb)) printf("  append: %s\n", eb.msg);
}

static char *slurp_gz(const char *path)
{
    gzFile g = gzopen(path, "rb");
    if (!g) return NULL;
    tarn_buf b;
    tarn_buf_init(&b, 0);
    char chunk[4096];
    int n;
    while ((n = gzread(g, chunk, sizeof chunk)) > 0) tarn_buf_append(&b, chunk, (size_t)n);
    gzclose(g);
    return tarn_buf_steal(&b);
}

static char *slurp(const char *path)
{
    char *p = NULL;
    tarn_errbuf eb = {{0}};
    tarn_read_file(path, 1 << 26, &p, NULL, &eb);
    return p;
}

TEST(batch_splits_by_utc_date_and_both_passes_agree)
{
    char *dir = NULL;
    tarn_stream *s = open_stream(&dir);
    REQUIRE(s != NULL);
    append(s, LATE, "{\"id\":1,\"v\":\"a\"}", "{\n  \"id\": 2,\r\n  \"v\": \"b\"\n}");
    append(s, EARLY, "{}", "{\"id\":4 }");
    tarn_stage_result p, r;
    tarn_errbuf eb = {{0}};
    REQUIRE(tarn_stage_batch(s, TARN_STAGE_PROCESSED, 0, 4, 1 << 20, dir, &p, &eb) == 0);
    REQUIRE(tarn_stage_batch(s, TARN_STAGE_RAW, 0, 4, 1 << 20, dir, &r, &eb) == 0);
    REQUIRE(p.nparts == 2 && r.nparts == 2);
    CHECK_EQ_STR(p.parts[0].date, "2025-11-25");
    CHECK_EQ_STR(p.parts[1].date, "2025-11-26");
    CHECK_EQ_INT(p.parts[0].first_seq, 1);
    CHECK_EQ_INT(p.parts[0].last_seq, 2);
    CHECK_EQ_INT(p.parts[1].first_seq, 3);
    CHECK_EQ_INT(p.parts[1].rows, 2);
    CHECK_EQ_INT(p.last_seq, 4);
    CHECK_EQ_INT(r.last_seq, 4);
    CHECK_EQ_INT(r.parts[1].rows, 2);

    char *day1 = slurp(p.parts[0].path);
    CHECK_EQ_STR(day1, "{\"id\":1,\"v\":\"a\",\"_ingested_at\":\"2025-11-25 23:59:59.500000\",\"_seq\":1}\n"
                       "{   \"id\": 2,    \"v\": \"b\" ,\"_ingested_at\":\"2025-11-25 23:59:59.500000\",\"_seq\":2}\n");
    char *day2 = slurp(p.parts[1].path);
    CHECK_EQ_STR(day2, "{\"_ingested_at\":\"2025-11-26 00:00:00.250000\",\"_seq\":3}\n"
                       "{\"id\":4 ,\"_ingested_at\":\"2025-11-26 00:00:00.250000\",\"_seq\":4}\n");
    char *raw1 = slurp_gz(r.parts[0].path);
    CHECK_EQ_STR(raw1, "{\"id\":1,\"v\":\"a\"}\n{   \"id\": 2,    \"v\": \"b\" }\n");
    char *raw2 = slurp_gz(r.parts[1].path);
    CHECK_EQ_STR(raw2, "{}\n{\"id\":4 }\n");
    free(day1);
    free(day2);
    free(raw1);
    free(raw2);
    tarn_stage_result_free(&p);
    tarn_stage_result_free(&r);
    tarn_stream_close(s);
    tarn_rm_rf(dir);
    free(dir);
}

TEST(budget_and_upto_bound_the_batch_identically)
{
    char *dir = NULL;
    tarn_stream *s = open_stream(&dir);
    REQUIRE(s != NULL);
    for (int i = 0; i < 50; i++) append(s, LATE, "{\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}", NULL);
    tarn_stage_result p, r;
    tarn_errbuf eb = {{0}};
    /* 50-byte records, a 400-byte budget: the record crossing it is the last. */
    REQUIRE(tarn_stage_batch(s, TARN_STAGE_PROCESSED, 5, 50, 400, dir, &p, &eb) == 0);
    REQUIRE(tarn_stage_batch(s, TARN_STAGE_RAW, 5, 50, 400, dir, &r, &eb) == 0);
    CHECK_EQ_INT(p.last_seq, 13);
    CHECK_EQ_INT(r.last_seq, 13);
    CHECK_EQ_INT(p.parts[0].first_seq, 6);
    CHECK_EQ_INT(p.parts[0].rows, 8);
    tarn_stage_result_free(&p);
    tarn_stage_result_free(&r);
    /* upto_seq stops it first. */
    REQUIRE(tarn_stage_batch(s, TARN_STAGE_PROCESSED, 0, 3, 1 << 20, dir, &p, &eb) == 0);
    CHECK_EQ_INT(p.last_seq, 3);
    CHECK_EQ_INT(p.parts[0].rows, 3);
    tarn_stage_result_free(&p);
    /* Nothing after the end: no parts, last_seq stays. */
    REQUIRE(tarn_stage_batch(s, TARN_STAGE_RAW, 50, 80, 1 << 20, dir, &r, &eb) == 0);
    CHECK_EQ_INT(r.nparts, 0);
    CHECK_EQ_INT(r.last_seq, 50);
    tarn_stage_result_free(&r);
    tarn_stream_close(s);
    tarn_rm_rf(dir);
    free(dir);
}

TEST(raw_zone_is_several_gzip_members_for_big_batches)
{
    char *dir = NULL;
    tarn_stream *s = open_stream(&dir);
    REQUIRE(s != NULL);
    /* About 3 MiB of records: more than one 1 MiB member. */
    char rec[1100];
    memset(rec, 'q', sizeof rec);
    memcpy(rec, "{\"p\":\"", 6);
    memcpy(rec + sizeof rec - 3, "\"}", 3);
    for (int i = 0; i < 3000; i++) append(s, EARLY, rec, NULL);
    tarn_stage_result r;
    tarn_errbuf eb = {{0}};
    REQUIRE(tarn_stage_batch(s, TARN_STAGE_RAW, 0, 3000, 64 << 20, dir, &r, &eb) == 0);
    char *all = slurp_gz(r.parts[0].path);
    REQUIRE(all != NULL);
    CHECK_EQ_INT(strlen(all), 3000 * (strlen(rec) + 1));
    /* Count gzip member headers (1f 8b 08) in the file: more than one. */
    char *gz = NULL;
    size_t n = 0;
    tarn_read_file(r.parts[0].path, 1 << 26, &gz, &n, &eb);
    int members = 0;
    for (size_t i = 0; i + 2 < n; i++)
        if ((unsigned char)gz[i] == 0x1f && (unsigned char)gz[i + 1] == 0x8b && gz[i + 2] == 8) members++;
    CHECK(members >= 3);
    free(gz);
    free(all);
    tarn_stage_result_free(&r);
    tarn_stream_close(s);
    tarn_rm_rf(dir);
    free(dir);
}


/* ------------------------------------------------------------ schema sample */

/* Appends n records (NUL-terminated texts) in appends of up to 1,000. */
static void append_many(tarn_stream *s, char **texts, size_t n)
{
    tarn_record *r = calloc(1000, sizeof *r);
    for (size_t i = 0; i < n; i += 1000) {
        size_t k = n - i < 1000 ? n - i : 1000;
        for (size_t j = 0; j < k; j++) r[j] = (tarn_record){texts[i + j], strlen(texts[i + j])};
        int64_t f, l;
        tarn_errbuf eb = {{0}};
        if (tarn_stream_append(s, r, k, EARLY, &f, &l, &eb)) printf("  append: %s\n", eb.msg);
    }
    free(r);
}

static void free_texts(char **texts, size_t n)
{
    for (size_t i = 0; i < n; i++) free(texts[i]);
    free(texts);
}

/* The _seq of every line of an NDJSON file, in order (malloc'd); *n
 * receives the count. */
static int64_t *file_seqs(const char *path, size_t *n)
{
    char *text = slurp(path);
    *n = 0;
    if (!text) return NULL;
    size_t cap = 1024;
    int64_t *seqs = malloc(cap * sizeof *seqs);
    for (char *line = text; *line;) {
        char *nl = strchr(line, '\n');
        if (!nl) break;
        *nl = '\0';
        char *q = strstr(line, ",\"_seq\":");
        if (*n == cap) seqs = realloc(seqs, (cap *= 2) * sizeof *seqs);
        seqs[(*n)++] = q ? strtoll(q + 8, NULL, 10) : -1;
        line = nl + 1;
    }
    free(text);
    return seqs;
}

/* Stages the whole stream (no spread: the batch's size is unknown, so the
 * spread's stride is larger than any test batch). */
static int stage_all(tarn_stream *s, const char *dir, tarn_stage_result *p)
{
    tarn_errbuf eb = {{0}};
    int rc = tarn_stage_batch(s, TARN_STAGE_PROCESSED, 0, INT64_MAX, SIZE_MAX, dir, p, &eb);
    if (rc) printf("  stage: %s\n", eb.msg);
    return rc;
}

static char *text_printf(const char *fmt, ...) TARN_PRINTF(1, 2);
static char *text_printf(const char *fmt, ...)
{
    tarn_buf b;
    tarn_buf_init(&b, 0);
    va_list ap;
    va_start(ap, fmt);
    tarn_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    return tarn_buf_steal(&b);
}

TEST(sample_has_every_late_field_and_kind_once)
{
    char *dir = NULL;
    tarn_stream *s = open_stream(&dir);
    REQUIRE(s != NULL);
    enum { N = 20000 };
    char **t = calloc(N, sizeof *t);
    static const char *const tags[] = {"[\"a\"]", "[\"a\",\"b\"]", "[\"a\",\"b\",\"c\"]"};
    for (int i = 0; i < N; i++)
        t[i] = text_printf("{\"id\":%d,\"name\":\"n%d\",\"d\":\"2025-01-%02d\",\"o\":{\"x\":%d},\"tags\":%s,"
                           "\"items\":[{\"k\":%d}],\"q\":\"say \\\"hi\\\"\"}",
                           i, i, 1 + i % 28, i, tags[i % 3], i);
    /* Records replaced at these 0-based indexes: each of the first NNEW
     * shows a pair no earlier record has; the others show nothing new. NULL
     * renames "name" to "nbme" in the usual record: only a key differs. */
    static const struct {
        int at;
        const char *text;
    } late[] = {
        {9000, NULL},                                                   /* a key renamed */
        {10000, "{\"id\":1,\"late\":\"yes\"}"},                         /* top-level field */
        {10100, "{\"id\":1,\"o\":{\"x\":1,\"y\":true}}"},                /* nested field */
        {10200, "{\"id\":2.5}"},                                        /* float after integers */
        {10300, "{\"id\":\"seven\"}"},                                  /* string after numbers */
        {10400, "{\"name\":{\"first\":\"a\"}}"},                        /* object after strings */
        {10500, "{\"items\":[{\"k\":1},{\"k\":2,\"m\":false}]}"},         /* field inside an array of objects */
        {10600, "{\"tags\":[\"a\",1]}"},                                /* number among strings in an array */
        {10700, "{\"id\":9223372036854775808}"},                        /* beyond BIGINT */
        {10800, "{\"id\":-5}"},                                         /* negative after non-negative */
        {10900, "{\"o\":{\"x\":null}}"},                                /* null */
        {11000, "{\"d\":\"2025-01-02T10:00:00Z\"}"},                     /* typed text of another length */
        {11100, "{\"d\":\"not a date\"}"},                              /* plain text where dates were */
        {11200, "{\"o\":[]}"},                                          /* array after objects */
        {11250, "{\"idx\":1}"},                                         /* a key that starts like one known */
        {11300, "{\"id\":1,\"late\":\"again\"}"},                       /* nothing new: not sampled */
        {11400, "{ \"id\" : 7 ,\n \"o\" : { \"x\" : 1 } }"},           /* nothing new, other spacing */
        {11401, "{ \"id\" : 8 ,\n \"o\" : { \"x\" : 2 } }"},           /* the same spacing */
        {11500, "{\"o\":{\"x\":3},\"id\":9}"},                          /* nothing new, other order */
        {11600, "{\"d\":\"2025-02-03\",\"tags\":[\"x\",\"y\",\"z\",\"w\"]}"}, /* nothing new: a longer array */
        {11700, "{\"o\":{\"y\":false,\"x\":2}}"},                        /* nothing new */
    };
    enum { NLATE = sizeof late / sizeof late[0], NNEW = 15 };
    for (int i = 0; i < NLATE; i++) {
        char *x = t[late[i].at];
        if (late[i].text) {
            t[late[i].at] = strdup(late[i].text);
            free(x);
        } else {
            memcpy(strstr(x, "\"name\""), "\"nbme\"", 6);
        }
    }
    append_many(s, t, N);
    free_texts(t, N);

    tarn_stage_result p;
    REQUIRE(stage_all(s, dir, &p) == 0);
    REQUIRE(p.sample_path[0] != '\0');
    CHECK_EQ_INT(p.ubigint_values, 1);
    size_t n = 0;
    int64_t *seqs = file_seqs(p.sample_path, &n);
    REQUIRE(seqs != NULL);
    CHECK_EQ_INT(n, p.sample_rows);
    CHECK_EQ_INT(n, TARN_STAGE_SAMPLE_HEAD + NNEW);
    for (size_t i = 0; i < n && i < TARN_STAGE_SAMPLE_HEAD; i++) CHECK_EQ_INT(seqs[i], (int64_t)i + 1);
    for (int i = 0; i < NNEW && TARN_STAGE_SAMPLE_HEAD + (size_t)i < n; i++)
        CHECK_EQ_INT(seqs[TARN_STAGE_SAMPLE_HEAD + i], late[i].at + 1);

    /* Sampled lines are the processed lines, byte for byte; the raw line
     * breaks inside two records became spaces. */
    char *processed = slurp(p.parts[0].path), *sample = slurp(p.sample_path);
    REQUIRE(processed && sample);
    size_t lines = 0;
    for (const char *x = processed; (x = strchr(x, '\n')); x++) lines++;
    CHECK_EQ_INT(lines, N);
    CHECK(strstr(processed, "{ \"id\" : 7 ,  \"o\" : { \"x\" : 1 } ,\"_ingested_at\"") != NULL);
    CHECK(strstr(processed, "{ \"id\" : 8 ,  \"o\" : { \"x\" : 2 } ,\"_ingested_at\"") != NULL);
    size_t head_bytes = 0;
    for (int i = 0; i < TARN_STAGE_SAMPLE_HEAD && strchr(sample + head_bytes, '\n'); i++)
        head_bytes = (size_t)(strchr(sample + head_bytes, '\n') - sample) + 1;
    CHECK(head_bytes > 0 && strncmp(processed, sample, head_bytes) == 0);
    const char *want = strstr(processed, "{\"id\":1,\"late\":\"yes\"");
    const char *got = strstr(sample, "{\"id\":1,\"late\":\"yes\"");
    CHECK(want && got && strncmp(want, got, (size_t)(strchr(want, '\n') - want + 1)) == 0);
    free(processed);
    free(sample);
    free(seqs);
    tarn_stage_result_free(&p);
    tarn_stream_close(s);
    tarn_rm_rf(dir);
    free(dir);
}

TEST(sample_of_a_small_batch_is_all_of_it)
{
    char *dir = NULL;
    tarn_stream *s = open_stream(&dir);
    REQUIRE(s != NULL);
    for (int i = 0; i < 100; i++) append(s, EARLY, "{\"a\":1}", NULL);
    tarn_stage_result p;
    tarn_errbuf eb = {{0}};
    REQUIRE(tarn_stage_batch(s, TARN_STAGE_PROCESSED, 0, 100, 1 << 20, dir, &p, &eb) == 0);
    CHECK_EQ_INT(p.sample_rows, 100);
    CHECK_EQ_INT(p.ubigint_values, 0);
    char *a = slurp(p.parts[0].path), *b = slurp(p.sample_path);
    CHECK(a && b && strcmp(a, b) == 0);
    free(a);
    free(b);
    tarn_stage_result_free(&p);
    /* The raw pass has no sample; nor has an empty batch. */
    REQUIRE(tarn_stage_batch(s, TARN_STAGE_RAW, 0, 100, 1 << 20, dir, &p, &eb) == 0);
    CHECK_EQ_STR(p.sample_path, "");
    tarn_stage_result_free(&p);
    REQUIRE(tarn_stage_batch(s, TARN_STAGE_PROCESSED, 100, 200, 1 << 20, dir, &p, &eb) == 0);
    CHECK_EQ_STR(p.sample_path, "");
    CHECK_EQ_INT(p.sample_rows, 0);
    tarn_stage_result_free(&p);
    tarn_stream_close(s);
    tarn_rm_rf(dir);
    free(dir);
}

TEST(sample_spread_is_bounded_and_reaches_the_end)
{
    char *dir = NULL;
    tarn_stream *s = open_stream(&dir);
    REQUIRE(s != NULL);
    enum { N = 40000 };
    char **t = calloc(N, sizeof *t);
    for (int i = 0; i < N; i++) t[i] = text_printf("{\"id\":%d,\"v\":\"x%d\"}", i, i);
    append_many(s, t, N);
    free_texts(t, N);
    tarn_stage_result p;
    tarn_errbuf eb = {{0}};
    REQUIRE(tarn_stage_batch(s, TARN_STAGE_PROCESSED, 0, N, SIZE_MAX, dir, &p, &eb) == 0);
    size_t n = 0;
    int64_t *seqs = file_seqs(p.sample_path, &n);
    REQUIRE(seqs != NULL);
    CHECK_EQ_INT(n, p.sample_rows);
    /* The head, then about SPREAD evenly spaced records, none beyond. */
    CHECK(n <= TARN_STAGE_SAMPLE_HEAD + TARN_STAGE_SAMPLE_SPREAD);
    CHECK(n >= TARN_STAGE_SAMPLE_HEAD + TARN_STAGE_SAMPLE_SPREAD * 9 / 10);
    CHECK(seqs[n - 1] > N - 100);
    for (size_t i = TARN_STAGE_SAMPLE_HEAD + 1; i < n; i++) CHECK(seqs[i] - seqs[i - 1] == seqs[n - 1] - seqs[n - 2]);
    free(seqs);
    tarn_stage_result_free(&p);
    tarn_stream_close(s);
    tarn_rm_rf(dir);
    free(dir);
}

TEST(sample_spread_never_passes_its_bound)
{
    char *dir = NULL;
    tarn_stream *s = open_stream(&dir);
    REQUIRE(s != NULL);
    /* Big records first, then small ones: guessed from the head, the batch
     * looks short and the stride is 1, yet the spread stops at its bound. */
    enum { SMALL = 30000 };
    size_t n = TARN_STAGE_SAMPLE_HEAD + SMALL, k = 0;
    char **t = calloc(n, sizeof *t);
    char pad[1001];
    memset(pad, 'p', 1000);
    pad[1000] = '\0';
    for (int i = 0; i < TARN_STAGE_SAMPLE_HEAD; i++) t[k++] = text_printf("{\"v\":\"%s\"}", pad);
    for (int i = 0; i < SMALL; i++) t[k++] = strdup("{\"v\":\"s\"}");
    append_many(s, t, n);
    free_texts(t, n);
    tarn_stage_result p;
    tarn_errbuf eb = {{0}};
    REQUIRE(tarn_stage_batch(s, TARN_STAGE_PROCESSED, 0, INT64_MAX, TARN_STAGE_SAMPLE_HEAD * 1010 + SMALL * 9, dir, &p,
                             &eb) == 0);
    CHECK_EQ_INT(p.last_seq, (int64_t)n);
    CHECK_EQ_INT(p.sample_rows, TARN_STAGE_SAMPLE_HEAD + TARN_STAGE_SAMPLE_SPREAD);
    tarn_stage_result_free(&p);
    tarn_stream_close(s);
    tarn_rm_rf(dir);
    free(dir);
}

TEST(sample_past_the_path_limit_takes_unknown_keys)
{
    char *dir = NULL;
    tarn_stream *s = open_stream(&dir);
    REQUIRE(s != NULL);
    /* More distinct paths than the tree keeps: every record has a new key. */
    enum { NKEYS = TARN_STAGE_SHAPE_MAX_PATHS + 5000, NMORE = 1000 };
    size_t n = NKEYS + 3 * NMORE;
    char **t = calloc(n, sizeof *t);
    size_t k = 0;
    for (int i = 0; i < NKEYS; i++) t[k++] = text_printf("{\"k%d\":1}", i);
    for (int i = 0; i < NMORE; i++) t[k++] = strdup("{\"k5\":2}");                  /* known: not sampled */
    for (int i = 0; i < NMORE; i++) t[k++] = text_printf("{\"k%d\":1}", NKEYS - 1); /* never kept: sampled */
    for (int i = 0; i < NMORE; i++) t[k++] = strdup("{\"k5\":3}");                  /* known: not sampled */
    REQUIRE(k == n);
    append_many(s, t, n);
    free_texts(t, n);
    tarn_stage_result p;
    REQUIRE(stage_all(s, dir, &p) == 0);
    CHECK_EQ_INT(p.parts[0].rows, (int64_t)n);
    CHECK_EQ_INT(p.sample_rows, NKEYS + NMORE);
    size_t ns = 0;
    int64_t *seqs = file_seqs(p.sample_path, &ns);
    CHECK_EQ_INT(ns, NKEYS + NMORE);
    CHECK(seqs && seqs[ns - 1] == NKEYS + 2 * NMORE);
    free(seqs);
    tarn_stage_result_free(&p);
    tarn_stream_close(s);
    tarn_rm_rf(dir);
    free(dir);
}

TEST(sample_takes_records_too_deep_or_malformed)
{
    char *dir = NULL;
    tarn_stream *s = open_stream(&dir);
    REQUIRE(s != NULL);
    enum { FILL = TARN_STAGE_SAMPLE_HEAD };
    size_t n = FILL + 8, k = 0;
    char **t = calloc(n, sizeof *t);
    for (int i = 0; i < FILL; i++) t[k++] = strdup("{\"k\":1}");
    /* Nested as deep as the walk goes, then deeper: the first once, the
     * second every time. */
    for (int r = 0; r < 4; r++) {
        int depth = r < 2 ? TARN_STAGE_SHAPE_MAX_DEPTH : TARN_STAGE_SHAPE_MAX_DEPTH + 1;
        tarn_buf b;
        tarn_buf_init(&b, 0);
        for (int i = 0; i < depth; i++) tarn_buf_append_str(&b, i ? "{\"k\":" : "{\"d\":");
        tarn_buf_append_char(&b, '1');
        for (int i = 0; i < depth; i++) tarn_buf_append_char(&b, '}');
        t[k++] = tarn_buf_steal(&b);
    }
    /* Not what the ingest lets through: sampled, and nothing breaks. */
    t[k++] = strdup("{\"k\":\"open}");
    t[k++] = strdup("{\"k\":tru}");
    t[k++] = strdup("{\"k\":1,}");
    t[k++] = strdup("{\"k\" 1}");
    REQUIRE(k == n);
    append_many(s, t, n);
    free_texts(t, n);
    tarn_stage_result p;
    REQUIRE(stage_all(s, dir, &p) == 0);
    size_t ns = 0;
    int64_t *seqs = file_seqs(p.sample_path, &ns);
    REQUIRE(seqs != NULL);
    CHECK_EQ_INT(ns, FILL + 7);
    static const int64_t want[] = {FILL + 1, FILL + 3, FILL + 4, FILL + 5, FILL + 6, FILL + 7, FILL + 8};
    for (size_t i = 0; i < 7 && FILL + i < ns; i++) CHECK_EQ_INT(seqs[FILL + i], want[i]);
    free(seqs);
    tarn_stage_result_free(&p);
    tarn_stream_close(s);
    tarn_rm_rf(dir);
    free(dir);
}

TEST(sample_past_its_size_limit_is_dropped)
{
    char *dir = NULL;
    tarn_stream *s = open_stream(&dir);
    REQUIRE(s != NULL);
    /* Every record new (its own key), about 1 KiB each: past the limit. */
    size_t n = TARN_STAGE_SAMPLE_MAX_BYTES / 1024 + 2000;
    char **t = calloc(n, sizeof *t);
    char pad[1001];
    memset(pad, 'p', 1000);
    pad[1000] = '\0';
    for (size_t i = 0; i < n; i++) t[i] = text_printf("{\"k%zu\":\"%s\"}", i, pad);
    append_many(s, t, n);
    free_texts(t, n);
    tarn_stage_result p;
    REQUIRE(stage_all(s, dir, &p) == 0);
    CHECK_EQ_STR(p.sample_path, "");
    CHECK_EQ_INT(p.sample_rows, 0);
    CHECK_EQ_INT(p.parts[0].rows, (int64_t)n);
    char path[600];
    snprintf(path, sizeof path, "%s/sample.ndjson", dir);
    CHECK(access(path, F_OK) != 0);
    tarn_stage_result_free(&p);
    tarn_stream_close(s);
    tarn_rm_rf(dir);
    free(dir);
}

int main(void)
{
    RUN(batch_splits_by_utc_date_and_both_passes_agree);
    RUN(budget_and_upto_bound_the_batch_identically);
    RUN(raw_zone_is_several_gzip_members_for_big_batches);
    RUN(sample_has_every_late_field_and_kind_once);
    RUN(sample_of_a_small_batch_is_all_of_it);
    RUN(sample_spread_is_bounded_and_reaches_the_end);
    RUN(sample_spread_never_passes_its_bound);
    RUN(sample_past_the_path_limit_takes_unknown_keys);
    RUN(sample_takes_records_too_deep_or_malformed);
    RUN(sample_past_its_size_limit_is_dropped);
    return test_main_end();
}
