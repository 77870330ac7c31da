/* Unit tests for staging a batch (src/delivery/stage.c): one file per UTC
 * ingest date, both passes covering the same records, processed lines with
 * _ingested_at and _seq, raw lines as received, budgets respected; the
 * schema sample holding the first record of every (path, kind) pair of the
 * batch, and its limits; several threads staging the same lines and a
 * sample that covers as much; the writer turning staged _ingested_at back
 * into a TIMESTAMP. */
#include "delivery/stage.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>

#include "common/buf.h"
#include "common/duck.h"
#include "common/util.h"
#include "delivery/schema.h"
#include "delivery/writer.h"
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
    REQUIRE(tarn_stage_batch(s, TARN_STAGE_PROCESSED, 0, 4, 1 << 20, 1, dir, &p, &eb) == 0);
    REQUIRE(tarn_stage_batch(s, TARN_STAGE_RAW, 0, 4, 1 << 20, 1, dir, &r, &eb) == 0);
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

    char *day1 = slurp(p.parts[0].paths[0]);
    CHECK_EQ_STR(day1, "{\"id\":1,\"v\":\"a\",\"_ingested_at\":1764115199500000,\"_seq\":1}\n"
                       "{   \"id\": 2,    \"v\": \"b\" ,\"_ingested_at\":1764115199500000,\"_seq\":2}\n");
    char *day2 = slurp(p.parts[1].paths[0]);
    CHECK_EQ_STR(day2, "{\"_ingested_at\":1764115200250000,\"_seq\":3}\n"
                       "{\"id\":4 ,\"_ingested_at\":1764115200250000,\"_seq\":4}\n");
    char *raw1 = slurp_gz(r.parts[0].paths[0]);
    CHECK_EQ_STR(raw1, "{\"id\":1,\"v\":\"a\"}\n{   \"id\": 2,    \"v\": \"b\" }\n");
    char *raw2 = slurp_gz(r.parts[1].paths[0]);
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
    REQUIRE(tarn_stage_batch(s, TARN_STAGE_PROCESSED, 5, 50, 400, 1, dir, &p, &eb) == 0);
    REQUIRE(tarn_stage_batch(s, TARN_STAGE_RAW, 5, 50, 400, 1, dir, &r, &eb) == 0);
    CHECK_EQ_INT(p.last_seq, 13);
    CHECK_EQ_INT(r.last_seq, 13);
    CHECK_EQ_INT(p.parts[0].first_seq, 6);
    CHECK_EQ_INT(p.parts[0].rows, 8);
    tarn_stage_result_free(&p);
    tarn_stage_result_free(&r);
    /* upto_seq stops it first. */
    REQUIRE(tarn_stage_batch(s, TARN_STAGE_PROCESSED, 0, 3, 1 << 20, 1, dir, &p, &eb) == 0);
    CHECK_EQ_INT(p.last_seq, 3);
    CHECK_EQ_INT(p.parts[0].rows, 3);
    tarn_stage_result_free(&p);
    /* Nothing after the end: no parts, last_seq stays. */
    REQUIRE(tarn_stage_batch(s, TARN_STAGE_RAW, 50, 80, 1 << 20, 1, dir, &r, &eb) == 0);
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
    REQUIRE(tarn_stage_batch(s, TARN_STAGE_RAW, 0, 3000, 64 << 20, 1, dir, &r, &eb) == 0);
    char *all = slurp_gz(r.parts[0].paths[0]);
    REQUIRE(all != NULL);
    CHECK_EQ_INT(strlen(all), 3000 * (strlen(rec) + 1));
    /* Count gzip member headers (1f 8b 08) in the file: more than one. */
    char *gz = NULL;
    size_t n = 0;
    tarn_read_file(r.parts[0].paths[0], 1 << 26, &gz, &n, &eb);
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

/* Appends n records (NUL-terminated texts) stamped ts, in appends of up to
 * 1,000. */
static void append_many_at(tarn_stream *s, char **texts, size_t n, int64_t ts)
{
    tarn_record *r = calloc(1000, sizeof *r);
    for (size_t i = 0; i < n; i += 1000) {
        size_t k = n - i < 1000 ? n - i : 1000;
        for (size_t j = 0; j < k; j++) r[j] = (tarn_record){texts[i + j], strlen(texts[i + j])};
        int64_t f, l;
        tarn_errbuf eb = {{0}};
        if (tarn_stream_append(s, r, k, ts, &f, &l, &eb)) printf("  append: %s\n", eb.msg);
    }
    free(r);
}

static void append_many(tarn_stream *s, char **texts, size_t n)
{
    append_many_at(s, texts, n, EARLY);
}

static void free_texts(char **texts, size_t n)
{
    for (size_t i = 0; i < n; i++) free(texts[i]);
    free(texts);
}

/* The _seq of every line of NDJSON text, in order (malloc'd); *n receives
 * the count. text is cut into lines. */
static int64_t *text_seqs(char *text, size_t *n)
{
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
    return seqs;
}

static int64_t *file_seqs(const char *path, size_t *n)
{
    char *text = slurp(path);
    int64_t *seqs = text_seqs(text, n);
    free(text);
    return seqs;
}

/* Stages the whole stream (no spread: the batch's size is unknown, so the
 * spread's stride is larger than any test batch). */
static int stage_all(tarn_stream *s, const char *dir, tarn_stage_result *p)
{
    tarn_errbuf eb = {{0}};
    int rc = tarn_stage_batch(s, TARN_STAGE_PROCESSED, 0, INT64_MAX, SIZE_MAX, 1, dir, p, &eb);
    if (rc) printf("  stage: %s\n", eb.msg);
    return rc;
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
    REQUIRE(p.nsamples == 1);
    CHECK_EQ_INT(p.ubigint_values, 1);
    size_t n = 0;
    int64_t *seqs = file_seqs(p.sample_paths[0], &n);
    REQUIRE(seqs != NULL);
    CHECK_EQ_INT(n, p.sample_rows);
    CHECK_EQ_INT(n, TARN_STAGE_SAMPLE_HEAD + NNEW);
    for (size_t i = 0; i < n && i < TARN_STAGE_SAMPLE_HEAD; i++) CHECK_EQ_INT(seqs[i], (int64_t)i + 1);
    for (int i = 0; i < NNEW && TARN_STAGE_SAMPLE_HEAD + (size_t)i < n; i++)
        CHECK_EQ_INT(seqs[TARN_STAGE_SAMPLE_HEAD + i], late[i].at + 1);

    /* Sampled lines are the processed lines, byte for byte; the raw line
     * breaks inside two records became spaces. */
    char *processed = slurp(p.parts[0].paths[0]), *sample = slurp(p.sample_paths[0]);
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
    REQUIRE(tarn_stage_batch(s, TARN_STAGE_PROCESSED, 0, 100, 1 << 20, 1, dir, &p, &eb) == 0);
    CHECK_EQ_INT(p.sample_rows, 100);
    CHECK_EQ_INT(p.ubigint_values, 0);
    char *a = slurp(p.parts[0].paths[0]), *b = slurp(p.sample_paths[0]);
    CHECK(a && b && strcmp(a, b) == 0);
    free(a);
    free(b);
    tarn_stage_result_free(&p);
    /* The raw pass has no sample; nor has an empty batch. */
    REQUIRE(tarn_stage_batch(s, TARN_STAGE_RAW, 0, 100, 1 << 20, 1, dir, &p, &eb) == 0);
    CHECK_EQ_INT(p.nsamples, 0);
    tarn_stage_result_free(&p);
    REQUIRE(tarn_stage_batch(s, TARN_STAGE_PROCESSED, 100, 200, 1 << 20, 1, dir, &p, &eb) == 0);
    CHECK_EQ_INT(p.nsamples, 0);
    CHECK_EQ_INT(p.sample_rows, 0);
    tarn_stage_result_free(&p);
    tarn_stream_close(s);
    tarn_rm_rf(dir);
    free(dir);
}

TEST(sample_spells_each_key_one_way)
{
    char *dir = NULL;
    tarn_stream *s = open_stream(&dir);
    REQUIRE(s != NULL);
    append(s, EARLY, "{\"id\":1,\"name\":{\"first\":\"a\"}}",
           "{\"ID\":2, \"Name\" : {\"FIRST\":\"b\",\"x\":[{\"K\":1},{\"k\":{\"Id\":[]}}]}}");
    append(s, EARLY, "{\"iD\":3,\"s\":\"\\\"ID\\\": a value\",\"x\":{\"K\":2},\"e\\u0041\":{}}", "{}");
    tarn_stage_result p;
    tarn_errbuf eb = {{0}};
    REQUIRE(tarn_stage_batch(s, TARN_STAGE_PROCESSED, 0, 4, 1 << 20, 1, dir, &p, &eb) == 0);
    CHECK_EQ_INT(p.sample_rows, 4);
    char *lines = slurp(p.parts[0].paths[0]), *sample = slurp(p.sample_paths[0]);
    /* The staged lines keep every spelling; the sample has the first one
     * met at each place: a key of an array's objects is one place, a key
     * inside a string is no key, and escapes are bytes like any other. */
    CHECK(lines && strstr(lines, "\"Name\" : {\"FIRST\"") != NULL);
    CHECK_EQ_STR(sample,
                 "{\"id\":1,\"name\":{\"first\":\"a\"},\"_ingested_at\":1764115200250000,\"_seq\":1}\n"
                 "{\"id\":2, \"name\" : {\"first\":\"b\",\"x\":[{\"K\":1},{\"K\":{\"Id\":[]}}]},"
                 "\"_ingested_at\":1764115200250000,\"_seq\":2}\n"
                 "{\"id\":3,\"s\":\"\\\"ID\\\": a value\",\"x\":{\"K\":2},\"e\\u0041\":{},"
                 "\"_ingested_at\":1764115200250000,\"_seq\":3}\n"
                 "{\"_ingested_at\":1764115200250000,\"_seq\":4}\n");
    free(lines);
    free(sample);
    tarn_stage_result_free(&p);
    tarn_stream_close(s);
    tarn_rm_rf(dir);
    free(dir);
}

TEST(sample_spells_many_keys_as_written)
{
    /* 300 keys at two places: the spelling table grows several times and
     * every key keeps its spelling; a late "K0" takes the first one, "k0". */
    char *dir = NULL;
    tarn_stream *s = open_stream(&dir);
    REQUIRE(s != NULL);
    tarn_buf rec;
    tarn_buf_init(&rec, 0);
    tarn_buf_append_str(&rec, "{");
    for (int i = 0; i < 150; i++) tarn_buf_printf(&rec, "\"k%d\":%d,", i, i);
    tarn_buf_append_str(&rec, "\"o\":{");
    for (int i = 0; i < 150; i++) tarn_buf_printf(&rec, "%s\"k%d\":%d", i ? "," : "", i, i);
    tarn_buf_append_str(&rec, "}}");
    append(s, EARLY, rec.data, "{\"K0\":1,\"o\":{\"K149\":2}}");
    tarn_stage_result p;
    tarn_errbuf eb = {{0}};
    REQUIRE(tarn_stage_batch(s, TARN_STAGE_SCHEMA, 0, 2, 1 << 20, 1, dir, &p, &eb) == 0);
    char *sample = slurp(p.sample_paths[0]);
    char *first = text_printf("%.*s,\"_ingested_at\":%lld,\"_seq\":1}\n{\"k0\":1,\"o\":{\"k149\":2},"
                              "\"_ingested_at\":%lld,\"_seq\":2}\n",
                              (int)rec.len - 1, rec.data, EARLY, EARLY);
    CHECK_EQ_STR(sample, first);
    free(first);
    free(sample);
    tarn_buf_free(&rec);
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
    REQUIRE(tarn_stage_batch(s, TARN_STAGE_PROCESSED, 0, N, SIZE_MAX, 1, dir, &p, &eb) == 0);
    size_t n = 0;
    int64_t *seqs = file_seqs(p.sample_paths[0], &n);
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
    REQUIRE(tarn_stage_batch(s, TARN_STAGE_PROCESSED, 0, INT64_MAX, TARN_STAGE_SAMPLE_HEAD * 1010 + SMALL * 9, 1, dir,
                             &p, &eb) == 0);
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
    int64_t *seqs = file_seqs(p.sample_paths[0], &ns);
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
    int64_t *seqs = file_seqs(p.sample_paths[0], &ns);
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
    /* With several threads, the limit is over all the sample's files. */
    for (int threads = 1; threads <= 2; threads++) {
        tarn_stage_result p;
        tarn_errbuf eb = {{0}};
        REQUIRE(tarn_stage_batch(s, TARN_STAGE_PROCESSED, 0, INT64_MAX, SIZE_MAX, threads, dir, &p, &eb) == 0);
        CHECK_EQ_INT(p.nsamples, 0);
        CHECK_EQ_INT(p.sample_rows, 0);
        CHECK_EQ_INT(p.ubigint_values, 0);
        REQUIRE(p.nparts == 1);
        CHECK_EQ_INT(p.parts[0].npaths, threads);
        CHECK_EQ_INT(p.parts[0].rows, (int64_t)n);
        DIR *d = opendir(dir);
        REQUIRE(d != NULL);
        for (struct dirent *e; (e = readdir(d));) CHECK(strncmp(e->d_name, "sample", 6) != 0);
        closedir(d);
        tarn_stage_result_free(&p);
    }
    tarn_stream_close(s);
    tarn_rm_rf(dir);
    free(dir);
}

/* ------------------------------------------------------------ several threads */

/* A batch for several threads: TN records of about 600 bytes, so many
 * more 2 MiB chunks than workers (about 3,450 records each), on three UTC
 * dates (the third only in the last 10 records, so in one worker's files),
 * with raw line breaks in some records and a pair shown for the first time
 * at each of tlate_at (past the head; with two threads, 3000 is in the
 * first worker's first chunk, 5200 in the second worker's). */
enum { TN = 40000, TLATE = 6 };
static const int tlate_at[TLATE] = {3000, 5200, 12000, 19000, 30000, 36000};

static tarn_stream *open_threads_stream(char **dir)
{
    tarn_stream *s = open_stream(dir);
    if (!s) return NULL;
    char **t = calloc(TN, sizeof *t);
    for (int i = 0; i < TN; i++)
        t[i] = text_printf("{%s\"id\":%d,\"name\":\"user %d\",\"tags\":[\"a\",\"b\"],"
                           "\"o\":{\"x\":%d,\"pad\":\"%0500d\"}}",
                           i % 1000 == 7 ? "\r\n " : "", i, i, i, i);
    for (int k = 0; k < TLATE; k++) {
        free(t[tlate_at[k]]);
        t[tlate_at[k]] = k == TLATE - 1 ? strdup("{\"id\":18446744073709551615}") /* UBIGINT */
                                        : text_printf("{\"id\":%d,\"late%d\":true}", tlate_at[k], k);
    }
    append_many_at(s, t, TN / 2, LATE);
    append_many_at(s, t + TN / 2, TN / 2 - 10, EARLY);
    append_many_at(s, t + TN - 10, 10, EARLY + 86400000000LL);
    free_texts(t, TN);
    return s;
}

static char *slurp_all(const char (*paths)[PATH_MAX], size_t n)
{
    tarn_buf b;
    tarn_buf_init(&b, 0);
    for (size_t i = 0; i < n; i++) {
        char *t = slurp(paths[i]);
        if (t) tarn_buf_append_str(&b, t);
        free(t);
    }
    return tarn_buf_steal(&b);
}

static int line_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The lines of text, sorted (malloc'd): the same for texts holding the same
 * lines in any order. text is cut into lines. */
static char *sorted_lines(char *text, size_t *n)
{
    size_t cap = 1024;
    char **lines = malloc(cap * sizeof *lines);
    *n = 0;
    for (char *line = text, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
        *nl = '\0';
        if (*n == cap) lines = realloc(lines, (cap *= 2) * sizeof *lines);
        lines[(*n)++] = line;
    }
    qsort(lines, *n, sizeof *lines, line_cmp);
    tarn_buf b;
    tarn_buf_init(&b, 0);
    for (size_t i = 0; i < *n; i++) {
        tarn_buf_append_str(&b, lines[i]);
        tarn_buf_append_char(&b, '\n');
    }
    free(lines);
    return tarn_buf_steal(&b);
}

/* A fresh directory dir/name (its path malloc'd). */
static char *subdir(const char *dir, const char *name)
{
    char *sub = text_printf("%s/%s", dir, name);
    tarn_errbuf eb = {{0}};
    tarn_rm_rf(sub);
    tarn_mkdir_p(sub, &eb);
    return sub;
}

/* Stages records after from (at most max_bytes) with one thread and with
 * threads, and checks that they agree: the same batch and parts as the raw
 * pass, the same lines in each part, and a sample holding the head first
 * and every line the one-thread sample holds. *many receives the result
 * with threads (staged in dir/many). */
static void stage_with_threads(tarn_stream *s, const char *dir, int64_t from, size_t max_bytes, int threads,
                               tarn_stage_result *many)
{
    char *d1 = subdir(dir, "one"), *dn = subdir(dir, "many");
    tarn_stage_result one, raw;
    tarn_errbuf eb = {{0}};
    memset(many, 0, sizeof *many);
    REQUIRE(tarn_stage_batch(s, TARN_STAGE_PROCESSED, from, INT64_MAX, max_bytes, 1, d1, &one, &eb) == 0);
    REQUIRE(tarn_stage_batch(s, TARN_STAGE_RAW, from, INT64_MAX, max_bytes, threads, d1, &raw, &eb) == 0);
    REQUIRE(tarn_stage_batch(s, TARN_STAGE_PROCESSED, from, INT64_MAX, max_bytes, threads, dn, many, &eb) == 0);
    CHECK_EQ_INT(many->last_seq, one.last_seq);
    CHECK_EQ_INT(raw.last_seq, one.last_seq);
    CHECK_EQ_INT(many->bytes, one.bytes);
    CHECK_EQ_INT(many->ubigint_values, one.ubigint_values);
    REQUIRE(many->nparts == one.nparts && raw.nparts == one.nparts);
    int64_t rows = 0;
    for (size_t i = 0; i < one.nparts; i++) {
        const tarn_stage_part *a = &one.parts[i], *b = &many->parts[i];
        CHECK_EQ_STR(b->date, a->date);
        CHECK_EQ_INT(b->first_seq, a->first_seq);
        CHECK_EQ_INT(b->last_seq, a->last_seq);
        CHECK_EQ_INT(b->rows, a->rows);
        CHECK_EQ_INT(raw.parts[i].rows, a->rows);
        CHECK(b->npaths >= 1 && b->npaths <= (size_t)threads && b->npaths <= TARN_STAGE_MAX_THREADS);
        char *ta = slurp_all(a->paths, a->npaths), *tb = slurp_all(b->paths, b->npaths);
        size_t na = 0, nb = 0;
        char *sa = sorted_lines(ta, &na), *sb = sorted_lines(tb, &nb);
        CHECK_EQ_INT(nb, b->rows);
        CHECK(strcmp(sa, sb) == 0);
        free(ta);
        free(tb);
        free(sa);
        free(sb);
        rows += b->rows;
    }
    CHECK_EQ_INT(rows, one.last_seq - from);

    /* The sample: the head first, in log order; then a superset of the
     * one-thread sample's lines (a record new to the batch is new to its
     * worker), byte for byte. */
    REQUIRE(many->nsamples >= 1);
    CHECK(strstr(many->sample_paths[0], "/sample.ndjson") != NULL);
    char *ta = slurp_all(one.sample_paths, one.nsamples), *tb = slurp_all(many->sample_paths, many->nsamples);
    size_t na = 0, nb = 0;
    char *copy = strdup(tb);
    int64_t *seqs = text_seqs(copy, &nb);
    free(copy);
    CHECK_EQ_INT(nb, many->sample_rows);
    int64_t head = one.last_seq - from < TARN_STAGE_SAMPLE_HEAD ? one.last_seq - from : TARN_STAGE_SAMPLE_HEAD;
    for (int64_t i = 0; i < head && (size_t)i < nb; i++) CHECK_EQ_INT(seqs[i], from + 1 + i);
    free(seqs);
    char *sa = sorted_lines(ta, &na), *sb = sorted_lines(tb, &nb);
    for (char *line = sa, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
        *nl = '\0';
        char *hit = strstr(sb, line);
        CHECK(hit && (hit == sb || hit[-1] == '\n') && hit[strlen(line)] == '\n');
    }
    free(ta);
    free(tb);
    free(sa);
    free(sb);

    /* The schema pass: the same parts and sample, and no lines. */
    char *ds = subdir(dir, "schema");
    tarn_stage_result sch;
    REQUIRE(tarn_stage_batch(s, TARN_STAGE_SCHEMA, from, INT64_MAX, max_bytes, threads, ds, &sch, &eb) == 0);
    CHECK_EQ_INT(sch.last_seq, one.last_seq);
    CHECK_EQ_INT(sch.bytes, one.bytes);
    CHECK_EQ_INT(sch.ubigint_values, one.ubigint_values);
    CHECK_EQ_INT(sch.sample_rows, many->sample_rows);
    REQUIRE(sch.nparts == one.nparts && sch.nsamples == many->nsamples);
    for (size_t i = 0; i < one.nparts; i++) {
        CHECK_EQ_STR(sch.parts[i].date, one.parts[i].date);
        CHECK_EQ_INT(sch.parts[i].first_seq, one.parts[i].first_seq);
        CHECK_EQ_INT(sch.parts[i].last_seq, one.parts[i].last_seq);
        CHECK_EQ_INT(sch.parts[i].rows, one.parts[i].rows);
        CHECK_EQ_INT(sch.parts[i].npaths, 0);
    }
    ta = slurp_all(many->sample_paths, many->nsamples);
    tb = slurp_all(sch.sample_paths, sch.nsamples);
    CHECK(strcmp(ta, tb) == 0);
    free(ta);
    free(tb);
    DIR *dd = opendir(ds);
    for (struct dirent *e; dd && (e = readdir(dd));) CHECK(e->d_name[0] == '.' || strncmp(e->d_name, "sample", 6) == 0);
    if (dd) closedir(dd);
    tarn_stage_result_free(&sch);
    free(ds);

    tarn_stage_result_free(&one);
    tarn_stage_result_free(&raw);
    free(d1);
    free(dn);
}

/* Non-zero if the NDJSON file at dir/name has a line of record seq. */
static int file_has_seq(const char *dir, const char *name, int64_t seq)
{
    char *path = text_printf("%s/%s", dir, name);
    size_t n = 0;
    int64_t *seqs = file_seqs(path, &n);
    int found = 0;
    for (size_t i = 0; i < n; i++) found |= seqs[i] == seq;
    free(seqs);
    free(path);
    return found;
}

TEST(threads_stage_the_same_lines_and_a_covering_sample)
{
    char *dir = NULL;
    tarn_stream *s = open_threads_stream(&dir);
    REQUIRE(s != NULL);
    static const int threads[] = {3, 64, 2};
    tarn_stage_result p;
    for (int i = 0; i < 3; i++) {
        stage_with_threads(s, dir, 0, SIZE_MAX, threads[i], &p);
        if (threads[i] == 2) break; /* checked below */
        CHECK(p.nsamples <= TARN_STAGE_MAX_SAMPLES);
        tarn_stage_result_free(&p);
    }
    REQUIRE(p.nparts == 3);
    CHECK_EQ_INT(p.parts[0].npaths, 2);
    CHECK_EQ_INT(p.parts[1].npaths, 2);
    CHECK_EQ_INT(p.parts[2].npaths, 1);
    CHECK_EQ_INT(p.parts[2].rows, 10);
    CHECK_EQ_INT(p.ubigint_values, 1);
    /* The head, then each worker's sample. */
    CHECK_EQ_INT(p.nsamples, 3);
    /* Every late pair is in the sample, sampled by the worker that met it:
     * the one at 5200 by the second, past the head and the first worker. */
    char *many = text_printf("%s/many", dir);
    CHECK(file_has_seq(many, "2025-11-25.1.ndjson", tlate_at[1] + 1));
    CHECK(file_has_seq(many, "2025-11-25.0.ndjson", tlate_at[0] + 1));
    char *all = slurp_all(p.sample_paths, p.nsamples);
    for (int k = 0; k < TLATE; k++) {
        char *want = text_printf(",\"_seq\":%d}\n", tlate_at[k] + 1);
        CHECK(strstr(all, want) != NULL);
        free(want);
    }
    CHECK(file_has_seq(many, "sample.1.ndjson", tlate_at[1] + 1));
    CHECK(!file_has_seq(many, "sample.0.ndjson", tlate_at[1] + 1));
    CHECK(!file_has_seq(many, "sample.ndjson", tlate_at[1] + 1));
    CHECK(file_has_seq(many, "sample.0.ndjson", tlate_at[0] + 1));
    free(all);
    free(many);
    tarn_stage_result_free(&p);
    tarn_stream_close(s);
    tarn_rm_rf(dir);
    free(dir);
}

TEST(threads_stop_at_the_same_record_as_one)
{
    char *dir = NULL;
    tarn_stream *s = open_threads_stream(&dir);
    REQUIRE(s != NULL);
    /* A budget ending mid-chunk, after a checkpoint: the reader stops where
     * one thread would. Then a batch smaller than one chunk: one worker
     * gets it all. */
    tarn_stage_result p;
    stage_with_threads(s, dir, 5000, 9u << 20, 2, &p);
    CHECK(p.last_seq > 5000 + 9 * 1024 * 1024 / 700 && p.last_seq < TN - 1000);
    tarn_stage_result_free(&p);
    stage_with_threads(s, dir, TN - 100, SIZE_MAX, 2, &p);
    REQUIRE(p.nparts == 2);
    CHECK_EQ_INT(p.parts[0].npaths, 1);
    CHECK_EQ_INT(p.last_seq, TN);
    tarn_stage_result_free(&p);
    tarn_stream_close(s);
    tarn_rm_rf(dir);
    free(dir);
}

TEST(threads_fail_the_pass_when_a_write_fails)
{
    char *dir = NULL;
    tarn_stream *s = open_threads_stream(&dir);
    REQUIRE(s != NULL);
    /* Files made /dev/full: a worker's part file (it fails mid-batch, the
     * reader maybe waiting for its chunks), the head of the sample (the
     * reader fails before handing out a chunk: the head passes the 1 MiB
     * buffer), a worker's sample (it fails writing its last bytes). */
    static const char *const full[] = {"2025-11-25.1.ndjson", "sample.ndjson", "sample.1.ndjson"};
    for (int i = 0; i < 3; i++) {
        char *sub = subdir(dir, "fail"), *link = text_printf("%s/%s", sub, full[i]);
        REQUIRE(symlink("/dev/full", link) == 0);
        tarn_stage_result p;
        tarn_errbuf eb = {{0}};
        CHECK_EQ_INT(tarn_stage_batch(s, TARN_STAGE_PROCESSED, 0, INT64_MAX, SIZE_MAX, 2, sub, &p, &eb), TARN_ENOSPC);
        CHECK(strstr(eb.msg, full[i]) != NULL);
        CHECK(p.parts == NULL && p.nparts == 0 && p.nsamples == 0);
        free(link);
        free(sub);
    }
    tarn_stream_close(s);
    tarn_rm_rf(dir);
    free(dir);
}

/* One value of the first column of a query's first row (malloc'd). */
static char *duck_value(duckdb_connection conn, const char *sql, idx_t col, idx_t row)
{
    duckdb_result res;
    char *out = NULL;
    if (duckdb_query(conn, sql, &res) == DuckDBSuccess) {
        char *v = duckdb_value_varchar(&res, col, row);
        out = v ? strdup(v) : NULL;
        duckdb_free(v);
    } else {
        printf("  duckdb: %s\n", duckdb_result_error(&res));
    }
    duckdb_destroy_result(&res);
    return out;
}

TEST(parquet_from_staged_files_has_ingested_at_as_a_timestamp)
{
    char *dir = NULL;
    tarn_stream *s = open_stream(&dir);
    REQUIRE(s != NULL);
    /* Microseconds, and times before 1970: exact. */
    append(s, LATE, "{\"id\":1}", "{\"id\":2}");
    append(s, -1, "{\"id\":3}", NULL);
    append(s, -86400000001LL, "{}", NULL);
    tarn_stage_result p;
    tarn_errbuf eb = {{0}};
    REQUIRE(tarn_stage_batch(s, TARN_STAGE_PROCESSED, 0, INT64_MAX, SIZE_MAX, 2, dir, &p, &eb) == 0);
    REQUIRE(p.nparts == 3 && p.nsamples == 1);
    char *line = slurp(p.parts[1].paths[0]);
    CHECK_EQ_STR(line, "{\"id\":3,\"_ingested_at\":-1,\"_seq\":3}\n");
    free(line);

    tarn_writer *w = NULL;
    REQUIRE(tarn_writer_open(dir, dir, 1, NULL, &w, &eb) == 0);
    const char *samples[] = {p.sample_paths[0]};
    tarn_column *cols = NULL;
    size_t ncols = 0;
    CHECK(tarn_writer_infer(w, samples, 1, 1, &cols, &ncols, &eb) == 0);
    REQUIRE(ncols == 3);
    CHECK_EQ_STR(cols[1].name, "_ingested_at");
    CHECK_EQ_STR(cols[1].type, "TIMESTAMP");
    CHECK_EQ_STR(cols[2].type, "BIGINT");
    /* Every part's files into one Parquet file. */
    const char *files[3] = {p.parts[0].paths[0], p.parts[1].paths[0], p.parts[2].paths[0]};
    char *parquet = text_printf("%s/out.parquet", dir);
    int64_t rows = 0;
    CHECK(tarn_writer_ndjson_to_parquet(w, files, 3, cols, ncols, parquet, &rows, &eb) == 0);
    CHECK_EQ_INT(rows, 4);
    tarn_writer_close(w);
    tarn_columns_free(cols, ncols);

    duckdb_database db;
    duckdb_connection conn;
    REQUIRE(duckdb_open(NULL, &db) == DuckDBSuccess);
    REQUIRE(duckdb_connect(db, &conn) == DuckDBSuccess);
    char *sql = text_printf("SELECT string_agg(_seq || ' ' || typeof(_ingested_at) || ' ' || _ingested_at, '; ' "
                            "ORDER BY _seq) FROM read_parquet('%s')",
                            parquet);
    char *got = duck_value(conn, sql, 0, 0);
    CHECK_EQ_STR(got, "1 TIMESTAMP 2025-11-25 23:59:59.5; 2 TIMESTAMP 2025-11-25 23:59:59.5; "
                      "3 TIMESTAMP 1969-12-31 23:59:59.999999; 4 TIMESTAMP 1969-12-30 23:59:59.999999");
    free(got);
    free(sql);
    duckdb_disconnect(&conn);
    duckdb_close(&db);
    free(parquet);
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
    RUN(sample_spells_each_key_one_way);
    RUN(sample_spells_many_keys_as_written);
    RUN(sample_spread_is_bounded_and_reaches_the_end);
    RUN(sample_spread_never_passes_its_bound);
    RUN(sample_past_the_path_limit_takes_unknown_keys);
    RUN(sample_takes_records_too_deep_or_malformed);
    RUN(sample_past_its_size_limit_is_dropped);
    RUN(threads_stage_the_same_lines_and_a_covering_sample);
    RUN(threads_stop_at_the_same_record_as_one);
    RUN(threads_fail_the_pass_when_a_write_fails);
    RUN(parquet_from_staged_files_has_ingested_at_as_a_timestamp);
    return test_main_end();
}
