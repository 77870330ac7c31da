/* Unit tests for staging a batch (src/delivery/stage.c): one file per UTC
 * ingest date, both passes covering the same records, processed lines with
 * _ingested_at and _seq, raw lines as received, budgets respected. */
#include "delivery/stage.h"

#include <stdio.h>
#include <stdlib.h>
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

int main(void)
{
    RUN(batch_splits_by_utc_date_and_both_passes_agree);
    RUN(budget_and_upto_bound_the_batch_identically);
    RUN(raw_zone_is_several_gzip_members_for_big_batches);
    return test_main_end();
}
