/* test_stream.c - the durable log: framing, numbering, segments, recovery of
 * torn and corrupt tails, group commit, trim, and injected disk faults. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "stream/crc32c.h"
#include "stream/stream.h"
#include "stream/stream_test.h"
#include "test.h"

#define SEG_HDR 24
#define FRAME_HDR 24

/* The payload of record number i in these tests: varied lengths, and
 * content that names its number so misplaced records are caught. */
static size_t payload_for(int64_t i, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "record-%lld:", (long long)i);
    size_t len = (size_t)n + (size_t)(i * 7 % 53);
    if (len > cap) len = cap;
    for (size_t k = (size_t)n; k < len; k++) buf[k] = (char)('a' + (i + (int64_t)k) % 26);
    return len;
}

/* Appends records first..last (as numbered by payload_for) one batch. */
static int append_range(tarn_stream *s, int64_t from, int64_t to, int64_t *first, int64_t *last)
{
    size_t n = (size_t)(to - from + 1);
    tarn_record *recs = calloc(n, sizeof *recs);
    char *bufs = malloc(n * 128);
    for (size_t i = 0; i < n; i++) {
        recs[i].data = bufs + i * 128;
        recs[i].len = payload_for(from + (int64_t)i, bufs + i * 128, 128);
    }
    tarn_errbuf eb = {{0}};
    int rc = tarn_stream_append(s, recs, n, 1000 + from, first, last, &eb);
    if (rc) printf("  append: %s\n", eb.msg);
    free(recs);
    free(bufs);
    return rc;
}

/* Reads every record after after_seq and checks they are exactly
 * after_seq + 1 .. expect_last with the payloads of payload_for. Returns the
 * count read. */
static int64_t read_check(tarn_stream *s, int64_t after_seq, int64_t expect_last)
{
    tarn_stream_reader *r = NULL;
    tarn_errbuf eb = {{0}};
    int64_t count = 0, want = after_seq + 1;
    if (tarn_stream_reader_open(s, after_seq, &r, &eb) != 0) return -1;
    for (;;) {
        int64_t seq, ts;
        const char *data;
        size_t len;
        int rc = tarn_stream_reader_next(r, &seq, &ts, &data, &len, &eb);
        if (rc < 0) printf("  reader: %s\n", eb.msg);
        CHECK(rc >= 0);
        if (rc <= 0) break;
        char buf[128];
        size_t elen = payload_for(seq, buf, sizeof buf);
        CHECK_EQ_INT(seq, want);
        CHECK_EQ_INT(len, elen);
        CHECK(len == elen && memcmp(data, buf, len) == 0);
        want = seq + 1;
        count++;
    }
    tarn_stream_reader_close(r);
    CHECK_EQ_INT(want - 1, expect_last > after_seq ? expect_last : after_seq);
    return count;
}

/* Counts every readable record, checking that the numbers are consecutive. */
static int64_t count_records(tarn_stream *s)
{
    tarn_stream_reader *r = NULL;
    tarn_errbuf eb = {{0}};
    int64_t n = 0, seq, prev = 0;
    int rc;
    if (tarn_stream_reader_open(s, 0, &r, &eb) != 0) return -1;
    while ((rc = tarn_stream_reader_next(r, &seq, NULL, NULL, NULL, &eb)) == 1) {
        if (n > 0) CHECK_EQ_INT(seq, prev + 1);
        prev = seq;
        n++;
    }
    CHECK_EQ_INT(rc, 0);
    tarn_stream_reader_close(r);
    return n;
}

static tarn_stream *open_stream(const char *dir, size_t segment_bytes, int64_t min_next)
{
    tarn_stream_opts o = {.segment_bytes = segment_bytes, .max_record = 4096, .min_next_seq = min_next};
    tarn_stream *s = NULL;
    tarn_errbuf eb = {{0}};
    if (tarn_stream_open(dir, &o, &s, &eb) != 0) printf("  open: %s\n", eb.msg);
    return s;
}

/* Segment names in dir, sorted, as an array of bases; returns the count. */
static int list_segments(const char *dir, int64_t *bases, int max)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l != 24 || strcmp(e->d_name + 20, ".log") != 0 || n >= max) continue;
        bases[n++] = strtoll(e->d_name, NULL, 10);
    }
    if (d) closedir(d);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && bases[j - 1] > bases[j]; j--) {
            int64_t t = bases[j];
            bases[j] = bases[j - 1];
            bases[j - 1] = t;
        }
    return n;
}

static void seg_path(char *out, size_t cap, const char *dir, int64_t base)
{
    snprintf(out, cap, "%s/%020lld.log", dir, (long long)base);
}

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

TEST(crc32c_check_values)
{
    CHECK_EQ_INT(tarn_crc32c(0, "123456789", 9), 0xE3069283u);
    CHECK_EQ_INT(tarn_crc32c_portable(0, "123456789", 9), 0xE3069283u);
    CHECK_EQ_INT(tarn_crc32c(0, "", 0), 0);
    /* RFC 3720 B.4: 32 bytes of zeros, and 32 bytes of 0xFF. */
    unsigned char z[32] = {0}, f[32];
    memset(f, 0xff, sizeof f);
    CHECK_EQ_INT(tarn_crc32c(0, z, 32), 0x8A9136AAu);
    CHECK_EQ_INT(tarn_crc32c(0, f, 32), 0x62A8AB43u);
    /* Hardware and table agree at every length and alignment, and
     * extending equals checksumming the concatenation. The hardware way
     * changes method at 3 x 128 and 3 x 1024 bytes (three blocks side by
     * side): lengths around and far past both, from every alignment. */
    static unsigned char buf[7000];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)(i * 31 + 7 + (i >> 8) * 13);
    static const size_t edges[] = {383, 384, 385, 391, 392, 767, 768, 776, 3071, 3072, 3073, 3080, 3455, 3456, 6143,
                                   6144, 6150, 6990};
    for (size_t off = 0; off < 9; off++)
        for (size_t e = 0; e < sizeof edges / sizeof edges[0]; e++) {
            size_t n = edges[e];
            uint32_t a = tarn_crc32c(0, buf + off, n), b = tarn_crc32c_portable(0, buf + off, n);
            CHECK_EQ_INT(a, b);
            CHECK_EQ_INT(tarn_crc32c(tarn_crc32c(0, buf + off, n / 3), buf + off + n / 3, n - n / 3), a);
        }
    for (size_t off = 0; off < 9; off++)
        for (size_t n = 0; n + off <= sizeof buf; n += 13) {
            uint32_t a = tarn_crc32c(0, buf + off, n), b = tarn_crc32c_portable(0, buf + off, n);
            CHECK_EQ_INT(a, b);
            CHECK_EQ_INT(tarn_crc32c(tarn_crc32c(0, buf + off, n / 3), buf + off + n / 3, n - n / 3), a);
        }
    printf("  crc32c hardware: %s\n", tarn_crc32c_hardware() ? "yes" : "no");
}

TEST(framing_round_trip)
{
    char *dir = test_tmpdir("stream");
    tarn_stream *s = open_stream(dir, 0, 0);
    REQUIRE(s);
    int64_t seq0 = -1, bytes0 = -1;
    tarn_stream_stats(s, &seq0, &bytes0);
    CHECK_EQ_INT(seq0, 0);
    CHECK_EQ_INT(bytes0, 0);

    /* Binary payloads, an empty one, and the largest allowed. */
    static char big[4096];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (char)(i * 13);
    tarn_record recs[] = {{"\0\1\2\xff", 4}, {"", 0}, {big, sizeof big}, {"hello", 5}};
    int64_t first = 0, last = 0;
    tarn_errbuf eb = {{0}};
    CHECK_EQ_INT(tarn_stream_append(s, recs, 4, -5, &first, &last, &eb), 0);
    CHECK_EQ_INT(first, 1);
    CHECK_EQ_INT(last, 4);
    CHECK_EQ_INT(tarn_stream_append(s, recs + 3, 1, 1700000000123456LL, &first, &last, &eb), 0);
    CHECK_EQ_INT(first, 5);
    CHECK_EQ_INT(last, 5);
    tarn_stream_stats(s, &seq0, &bytes0);
    CHECK_EQ_INT(seq0, 5);
    CHECK_EQ_INT(bytes0, 4 + 0 + 4096 + 5 + 5);

    /* An empty batch changes nothing. */
    CHECK_EQ_INT(tarn_stream_append(s, recs, 0, 0, &first, &last, &eb), 0);
    CHECK_EQ_INT(first, 6);
    CHECK_EQ_INT(last, 5);

    tarn_stream_reader *r = NULL;
    REQUIRE(tarn_stream_reader_open(s, 0, &r, &eb) == 0);
    for (int i = 0; i < 5; i++) {
        int64_t seq, ts;
        const char *data;
        size_t len;
        CHECK_EQ_INT(tarn_stream_reader_next(r, &seq, &ts, &data, &len, &eb), 1);
        const tarn_record *want = i < 4 ? &recs[i] : &recs[3];
        CHECK_EQ_INT(seq, i + 1);
        CHECK_EQ_INT(ts, i < 4 ? -5 : 1700000000123456LL);
        CHECK_EQ_INT(len, want->len);
        CHECK(len == want->len && memcmp(data, want->data, len) == 0);
    }
    int64_t seq;
    CHECK_EQ_INT(tarn_stream_reader_next(r, &seq, NULL, NULL, NULL, &eb), 0);
    tarn_stream_reader_close(r);

    /* A reader that starts in the middle. */
    REQUIRE(tarn_stream_reader_open(s, 3, &r, &eb) == 0);
    CHECK_EQ_INT(tarn_stream_reader_next(r, &seq, NULL, NULL, NULL, &eb), 1);
    CHECK_EQ_INT(seq, 4);
    tarn_stream_reader_close(r);

    /* The bytes on disk follow the documented format. */
    tarn_stream_close(s);
    char path[512], *file;
    size_t flen;
    seg_path(path, sizeof path, dir, 1);
    REQUIRE(tarn_read_file(path, 1 << 20, &file, &flen, &eb) == 0);
    CHECK_EQ_INT(flen, SEG_HDR + 5 * FRAME_HDR + 4 + 0 + 4096 + 5 + 5);
    CHECK(memcmp(file, "TARNLOG\0", 8) == 0);
    const unsigned char *u = (const unsigned char *)file;
    CHECK_EQ_INT(u[8], 1);
    CHECK_EQ_INT(u[16], 1); /* base 1, little-endian */
    const unsigned char *fr = u + SEG_HDR;
    CHECK_EQ_INT(fr[0], 4); /* length */
    CHECK_EQ_INT(fr[8], 1); /* sequence */
    CHECK_EQ_INT(fr[16], 0xfb); /* -5 */
    CHECK_EQ_INT(fr[23], 0xff);
    uint32_t crc = tarn_crc32c(0, fr + FRAME_HDR, 4);
    crc = tarn_crc32c(crc, fr, 4);
    crc = tarn_crc32c(crc, fr + 8, 16);
    CHECK_EQ_INT(fr[4] | fr[5] << 8 | fr[6] << 16 | (uint32_t)fr[7] << 24, crc);
    free(file);
    tarn_rm_rf(dir);
    free(dir);
}

TEST(oversize_record_refused)
{
    char *dir = test_tmpdir("stream");
    tarn_stream *s = open_stream(dir, 0, 0);
    REQUIRE(s);
    static char big[4097];
    tarn_record recs[] = {{"ok", 2}, {big, sizeof big}};
    int64_t first = 0, last = 0;
    tarn_errbuf eb = {{0}};
    CHECK_EQ_INT(tarn_stream_append(s, recs, 2, 0, &first, &last, &eb), TARN_ETOOBIG);
    CHECK(strstr(eb.msg, "4097") != NULL);
    /* Nothing of the batch is kept, numbering unaffected. */
    CHECK_EQ_INT(append_range(s, 1, 1, &first, &last), 0);
    CHECK_EQ_INT(first, 1);
    CHECK_EQ_INT(read_check(s, 0, 1), 1);
    tarn_stream_close(s);

    tarn_stream_opts o = {.max_record = (size_t)1 << 30};
    CHECK_EQ_INT(tarn_stream_open(dir, &o, &s, &eb), TARN_EINVAL);
    tarn_rm_rf(dir);
    free(dir);
}

TEST(sequence_continues_across_reopen)
{
    char *dir = test_tmpdir("stream");
    tarn_stream *s = open_stream(dir, 0, 0);
    REQUIRE(s);
    int64_t first, last;
    CHECK_EQ_INT(append_range(s, 1, 10, &first, &last), 0);
    CHECK_EQ_INT(last, 10);
    tarn_stream_close(s);

    /* A second opener of the same directory is refused while it is open. */
    s = open_stream(dir, 0, 0);
    REQUIRE(s);
    tarn_stream *s2 = NULL;
    tarn_errbuf eb = {{0}};
    CHECK_EQ_INT(tarn_stream_open(dir, NULL, &s2, &eb), TARN_ECONFLICT);

    int64_t dseq, dbytes;
    tarn_stream_stats(s, &dseq, &dbytes);
    CHECK_EQ_INT(dseq, 10);
    CHECK(dbytes > 0);
    CHECK_EQ_INT(append_range(s, 11, 15, &first, &last), 0);
    CHECK_EQ_INT(first, 11);
    CHECK_EQ_INT(last, 15);
    CHECK_EQ_INT(read_check(s, 0, 15), 15);
    tarn_stream_close(s);

    /* Empty stream dir reopened: still starts at 1. */
    char *dir2 = test_tmpdir("stream");
    s = open_stream(dir2, 0, 0);
    REQUIRE(s);
    tarn_stream_close(s);
    s = open_stream(dir2, 0, 0);
    REQUIRE(s);
    CHECK_EQ_INT(append_range(s, 1, 1, &first, &last), 0);
    CHECK_EQ_INT(first, 1);
    tarn_stream_close(s);
    tarn_rm_rf(dir2);
    free(dir2);
    tarn_rm_rf(dir);
    free(dir);
}

TEST(min_next_seq_honoured)
{
    char *dir = test_tmpdir("stream");
    int64_t first, last, dseq;
    /* A fresh stream starts at min_next_seq. */
    tarn_stream *s = open_stream(dir, 0, 100);
    REQUIRE(s);
    tarn_stream_stats(s, &dseq, NULL);
    CHECK_EQ_INT(dseq, 99);
    CHECK_EQ_INT(append_range(s, 100, 104, &first, &last), 0);
    CHECK_EQ_INT(first, 100);
    CHECK_EQ_INT(last, 104);
    tarn_stream_close(s);

    /* A lower min_next_seq does not move numbers back. */
    s = open_stream(dir, 0, 50);
    REQUIRE(s);
    CHECK_EQ_INT(append_range(s, 105, 105, &first, &last), 0);
    CHECK_EQ_INT(first, 105);
    tarn_stream_close(s);

    /* A higher one jumps ahead: a new segment starts there, the old
     * records stay readable and the gap is skipped. */
    s = open_stream(dir, 0, 1000);
    REQUIRE(s);
    CHECK_EQ_INT(append_range(s, 1000, 1002, &first, &last), 0);
    CHECK_EQ_INT(first, 1000);
    CHECK_EQ_INT(last, 1002);
    tarn_stream_close(s);
    s = open_stream(dir, 0, 0);
    REQUIRE(s);
    CHECK_EQ_INT(append_range(s, 1003, 1003, &first, &last), 0);
    CHECK_EQ_INT(first, 1003);
    tarn_stream_reader *r = NULL;
    tarn_errbuf eb = {{0}};
    REQUIRE(tarn_stream_reader_open(s, 103, &r, &eb) == 0);
    int64_t want[] = {104, 105, 1000, 1001, 1002, 1003}, seq;
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        CHECK_EQ_INT(tarn_stream_reader_next(r, &seq, NULL, NULL, NULL, &eb), 1);
        CHECK_EQ_INT(seq, want[i]);
    }
    CHECK_EQ_INT(tarn_stream_reader_next(r, &seq, NULL, NULL, NULL, &eb), 0);
    tarn_stream_reader_close(r);
    tarn_stream_close(s);

    /* Every segment deleted: min_next_seq alone keeps numbers from repeating. */
    tarn_rm_rf(dir);
    s = open_stream(dir, 0, 1004);
    REQUIRE(s);
    CHECK_EQ_INT(append_range(s, 1004, 1004, &first, &last), 0);
    CHECK_EQ_INT(first, 1004);
    tarn_stream_close(s);
    tarn_rm_rf(dir);
    free(dir);
}

TEST(segment_roll_and_read_across)
{
    char *dir = test_tmpdir("stream");
    tarn_stream *s = open_stream(dir, 512, 0);
    REQUIRE(s);
    int64_t first, last;
    for (int64_t i = 1; i <= 100; i += 4) CHECK_EQ_INT(append_range(s, i, i + 3, &first, &last), 0);
    CHECK_EQ_INT(last, 100);
    int64_t bases[256];
    int n = list_segments(dir, bases, 256);
    CHECK(n > 5);
    /* Every segment but one holding a single oversize batch stays within
     * segment_bytes, and each name is the first record it holds. */
    for (int i = 0; i < n; i++) {
        char path[512];
        seg_path(path, sizeof path, dir, bases[i]);
        CHECK(file_size(path) <= 512);
    }
    CHECK_EQ_INT(bases[0], 1);
    CHECK_EQ_INT(read_check(s, 0, 100), 100);
    CHECK_EQ_INT(read_check(s, 57, 100), 43);
    tarn_stream_close(s);

    s = open_stream(dir, 512, 0);
    REQUIRE(s);
    CHECK_EQ_INT(read_check(s, 0, 100), 100);
    CHECK_EQ_INT(append_range(s, 101, 101, &first, &last), 0);
    CHECK_EQ_INT(first, 101);
    tarn_stream_close(s);

    /* A batch larger than segment_bytes still goes into one segment. */
    s = open_stream(dir, 512, 0);
    REQUIRE(s);
    CHECK_EQ_INT(append_range(s, 102, 151, &first, &last), 0);
    CHECK_EQ_INT(read_check(s, 90, 151), 61);
    tarn_stream_close(s);
    tarn_rm_rf(dir);
    free(dir);
}

/* Offset of the end of each frame in a segment that holds records
 * base..base+count-1 as written by append_range. */
static long long frame_end(int64_t base, int64_t k)
{
    long long off = SEG_HDR;
    char buf[128];
    for (int64_t i = base; i < base + k; i++) off += FRAME_HDR + (long long)payload_for(i, buf, sizeof buf);
    return off;
}

TEST(torn_tail_truncated_at_last_valid_frame)
{
    char *dir = test_tmpdir("stream");
    char path[512];
    seg_path(path, sizeof path, dir, 1);
    /* Cut points relative to the start of frame 20 (of 20): inside the
     * header, at the header/payload boundary, inside the payload, one byte
     * short; and frame boundaries (end of 19, 18, and the segment header). */
    long long start20 = frame_end(1, 19), end20 = frame_end(1, 20);
    struct { long long cut; int64_t keep; } cases[] = {
        {start20 + 1, 19}, {start20 + 10, 19}, {start20 + FRAME_HDR, 19}, {start20 + FRAME_HDR + 3, 19},
        {end20 - 1, 19},   {start20, 19},      {frame_end(1, 18), 18},     {frame_end(1, 18) + 5, 18},
        {SEG_HDR, 0},      {SEG_HDR + 7, 0},   {end20, 20},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        tarn_rm_rf(dir);
        tarn_stream *s = open_stream(dir, 0, 0);
        REQUIRE(s);
        int64_t first, last;
        for (int64_t i = 1; i <= 20; i += 5) CHECK_EQ_INT(append_range(s, i, i + 4, &first, &last), 0);
        tarn_stream_close(s);
        CHECK_EQ_INT(file_size(path), end20);
        REQUIRE(truncate(path, cases[c].cut) == 0);

        s = open_stream(dir, 0, 0);
        REQUIRE(s);
        CHECK_EQ_INT(file_size(path), frame_end(1, cases[c].keep));
        int64_t dseq;
        tarn_stream_stats(s, &dseq, NULL);
        CHECK_EQ_INT(dseq, cases[c].keep);
        CHECK_EQ_INT(read_check(s, 0, cases[c].keep), cases[c].keep);
        CHECK_EQ_INT(append_range(s, cases[c].keep + 1, cases[c].keep + 3, &first, &last), 0);
        CHECK_EQ_INT(first, cases[c].keep + 1);
        CHECK_EQ_INT(read_check(s, 0, cases[c].keep + 3), cases[c].keep + 3);
        tarn_stream_close(s);
        /* And the repaired log recovers cleanly again. */
        s = open_stream(dir, 0, 0);
        REQUIRE(s);
        CHECK_EQ_INT(read_check(s, 0, cases[c].keep + 3), cases[c].keep + 3);
        tarn_stream_close(s);
    }

    /* A torn segment header (crash while creating it) is rewritten from the
     * file name, which still gives the next number. */
    tarn_rm_rf(dir);
    tarn_stream *s = open_stream(dir, 0, 0);
    REQUIRE(s);
    tarn_stream_close(s);
    REQUIRE(truncate(path, 10) == 0);
    s = open_stream(dir, 0, 0);
    REQUIRE(s);
    CHECK_EQ_INT(file_size(path), SEG_HDR);
    int64_t first, last;
    CHECK_EQ_INT(append_range(s, 1, 1, &first, &last), 0);
    CHECK_EQ_INT(first, 1);
    tarn_stream_close(s);

    /* Zeros after the last frame of the newest segment are its clean end
     * (the zero-ahead tail): kept, and the next append overwrites them. */
    REQUIRE(truncate(path, frame_end(1, 1) + 100) == 0);
    s = open_stream(dir, 0, 0);
    REQUIRE(s);
    CHECK_EQ_INT(file_size(path), frame_end(1, 1) + 100);
    CHECK_EQ_INT(read_check(s, 0, 1), 1);
    CHECK_EQ_INT(append_range(s, 2, 2, &first, &last), 0);
    CHECK_EQ_INT(first, 2);
    tarn_stream_close(s);
    CHECK_EQ_INT(file_size(path), frame_end(1, 2)); /* close cuts the zeros */
    s = open_stream(dir, 0, 0);
    REQUIRE(s);
    CHECK_EQ_INT(read_check(s, 0, 2), 2);
    tarn_stream_close(s);
    tarn_rm_rf(dir);
    free(dir);
}

static void flip_byte(const char *path, long long off)
{
    int fd = open(path, O_RDWR);
    unsigned char c = 0;
    if (pread(fd, &c, 1, off) != 1) printf("  pread failed\n");
    c ^= 0x20;
    if (pwrite(fd, &c, 1, off) != 1) printf("  pwrite failed\n");
    close(fd);
}

TEST(corrupt_tail_payload_truncated)
{
    char *dir = test_tmpdir("stream");
    char path[512];
    seg_path(path, sizeof path, dir, 1);
    tarn_stream *s = open_stream(dir, 0, 0);
    REQUIRE(s);
    int64_t first, last;
    CHECK_EQ_INT(append_range(s, 1, 10, &first, &last), 0);
    tarn_stream_close(s);
    /* One flipped bit in the payload of record 10. */
    flip_byte(path, frame_end(1, 9) + FRAME_HDR + 2);
    s = open_stream(dir, 0, 0);
    REQUIRE(s);
    CHECK_EQ_INT(file_size(path), frame_end(1, 9));
    CHECK_EQ_INT(read_check(s, 0, 9), 9);
    CHECK_EQ_INT(append_range(s, 10, 10, &first, &last), 0);
    CHECK_EQ_INT(first, 10);
    tarn_stream_close(s);

    /* A bad byte in the sequence number field of record 5: records 5..10
     * are after the corruption and go; 1..4 stay. */
    flip_byte(path, frame_end(1, 4) + 8);
    s = open_stream(dir, 0, 0);
    REQUIRE(s);
    CHECK_EQ_INT(file_size(path), frame_end(1, 4));
    CHECK_EQ_INT(read_check(s, 0, 4), 4);
    tarn_stream_close(s);
    tarn_rm_rf(dir);
    free(dir);
}

/* The rule: the log is a prefix. Corruption in a segment that is not the
 * newest truncates that segment there and deletes every later segment, even
 * though their frames are intact; numbering resumes after the last valid
 * record. */
TEST(corruption_in_earlier_segment_drops_later_segments)
{
    char *dir = test_tmpdir("stream");
    tarn_stream *s = open_stream(dir, 400, 0);
    REQUIRE(s);
    int64_t first, last;
    for (int64_t i = 1; i <= 60; i += 3) CHECK_EQ_INT(append_range(s, i, i + 2, &first, &last), 0);
    tarn_stream_close(s);
    int64_t bases[64];
    int n = list_segments(dir, bases, 64);
    REQUIRE(n >= 4);
    /* Corrupt the second record of the second segment. */
    char path[512];
    seg_path(path, sizeof path, dir, bases[1]);
    flip_byte(path, frame_end(bases[1], 1) + FRAME_HDR + 1);
    s = open_stream(dir, 400, 0);
    REQUIRE(s);
    int64_t after[64];
    int m = list_segments(dir, after, 64);
    CHECK_EQ_INT(m, 2);
    CHECK_EQ_INT(file_size(path), frame_end(bases[1], 1));
    CHECK_EQ_INT(read_check(s, 0, bases[1]), bases[1]);
    CHECK_EQ_INT(append_range(s, bases[1] + 1, bases[1] + 1, &first, &last), 0);
    CHECK_EQ_INT(first, bases[1] + 1);
    tarn_stream_close(s);

    /* A corrupt header in the first segment: it is emptied and later
     * segments go; the name still says where numbering resumes. */
    seg_path(path, sizeof path, dir, 1);
    flip_byte(path, 3);
    s = open_stream(dir, 400, 0);
    REQUIRE(s);
    m = list_segments(dir, after, 64);
    CHECK_EQ_INT(m, 1);
    CHECK_EQ_INT(file_size(path), SEG_HDR);
    CHECK_EQ_INT(append_range(s, 1, 1, &first, &last), 0);
    CHECK_EQ_INT(first, 1);
    tarn_stream_close(s);
    tarn_rm_rf(dir);
    free(dir);
}

struct writer_arg {
    tarn_stream *s;
    int id;
    int count;
    int64_t *seqs; /* seqs[i] is the number given to this writer's record i */
    int errors;
};

static void *writer_main(void *p)
{
    struct writer_arg *a = p;
    for (int i = 0; i < a->count; i++) {
        char buf[64];
        int len = snprintf(buf, sizeof buf, "w%d-%d", a->id, i);
        tarn_record rec = {buf, (size_t)len};
        int64_t first, last;
        tarn_errbuf eb = {{0}};
        if (tarn_stream_append(a->s, &rec, 1, i, &first, &last, &eb) != 0 || first != last) {
            a->errors++;
            continue;
        }
        a->seqs[i] = first;
    }
    return NULL;
}

TEST(concurrent_appends_share_fsyncs)
{
    enum { THREADS = 8, PER = 500, TOTAL = THREADS * PER };
    char *dir = test_tmpdir("stream");
    /* Small segments so that rolls happen while appends race. */
    tarn_stream *s = open_stream(dir, 32 << 10, 0);
    REQUIRE(s);
    pthread_t th[THREADS];
    struct writer_arg args[THREADS];
    int64_t *seqs = calloc(TOTAL, sizeof *seqs);
    /* Reader running concurrently with the writers. */
    tarn_stream_reader *r = NULL;
    tarn_errbuf eb = {{0}};
    REQUIRE(tarn_stream_reader_open(s, 0, &r, &eb) == 0);
    for (int t = 0; t < THREADS; t++) {
        args[t] = (struct writer_arg){s, t, PER, seqs + t * PER, 0};
        pthread_create(&th[t], NULL, writer_main, &args[t]);
    }
    int64_t seen = 0, seq;
    const char *data;
    size_t len;
    int rc;
    int64_t deadline = tarn_mono_ms() + 30000;
    while (seen < TOTAL && tarn_mono_ms() < deadline) {
        rc = tarn_stream_reader_next(r, &seq, NULL, &data, &len, &eb);
        if (rc < 0) printf("  reader: %s\n", eb.msg);
        REQUIRE(rc >= 0);
        if (rc == 0) {
            usleep(100);
            continue;
        }
        CHECK_EQ_INT(seq, seen + 1);
        seen = seq;
    }
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        CHECK_EQ_INT(args[t].errors, 0);
    }
    CHECK_EQ_INT(tarn_stream_reader_next(r, &seq, NULL, NULL, NULL, &eb), 0);
    tarn_stream_reader_close(r);

    /* Unique, consecutive 1..TOTAL, and each thread's own in order. */
    char *hit = calloc(TOTAL + 1, 1);
    for (int i = 0; i < TOTAL; i++) {
        CHECK(seqs[i] >= 1 && seqs[i] <= TOTAL);
        if (seqs[i] >= 1 && seqs[i] <= TOTAL) {
            CHECK(!hit[seqs[i]]);
            hit[seqs[i]] = 1;
        }
        if (i % PER) CHECK(seqs[i] > seqs[i - 1]);
    }
    free(hit);
    /* Every record readable with the payload its writer gave it. */
    REQUIRE(tarn_stream_reader_open(s, 0, &r, &eb) == 0);
    int64_t n = 0;
    while ((rc = tarn_stream_reader_next(r, &seq, NULL, &data, &len, &eb)) == 1) {
        int id = -1, i = -1;
        char buf[64];
        snprintf(buf, sizeof buf, "%.*s", (int)len, data);
        CHECK(sscanf(buf, "w%d-%d", &id, &i) == 2);
        if (id >= 0 && id < THREADS && i >= 0 && i < PER) CHECK_EQ_INT(seqs[id * PER + i], seq);
        n++;
    }
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(n, TOTAL);
    tarn_stream_reader_close(r);

    uint64_t fsyncs = tarn_stream_test_fsync_count(s);
    printf("  %d appends, %llu group-commit fsyncs\n", TOTAL, (unsigned long long)fsyncs);
    CHECK(fsyncs < TOTAL);
    int64_t dseq;
    tarn_stream_stats(s, &dseq, NULL);
    CHECK_EQ_INT(dseq, TOTAL);
    tarn_stream_close(s);

    /* With a slow disk (simulated) nearly every fsync is shared. */
    s = open_stream(dir, 0, 0);
    REQUIRE(s);
    tarn_stream_test_fsync_delay(s, 2000);
    for (int t = 0; t < THREADS; t++) {
        args[t] = (struct writer_arg){s, t, 50, seqs + t * PER, 0};
        pthread_create(&th[t], NULL, writer_main, &args[t]);
    }
    for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
    fsyncs = tarn_stream_test_fsync_count(s);
    printf("  %d appends with slow fsync, %llu fsyncs\n", THREADS * 50, (unsigned long long)fsyncs);
    CHECK(fsyncs <= THREADS * 50 / 3);
    CHECK_EQ_INT(count_records(s), TOTAL + THREADS * 50);
    tarn_stream_close(s);
    free(seqs);
    tarn_rm_rf(dir);
    free(dir);
}

TEST(trim_keeps_newest_and_readers_continue)
{
    char *dir = test_tmpdir("stream");
    tarn_stream *s = open_stream(dir, 400, 0);
    REQUIRE(s);
    int64_t first, last;
    for (int64_t i = 1; i <= 60; i += 3) CHECK_EQ_INT(append_range(s, i, i + 2, &first, &last), 0);
    int64_t bases[64];
    int n = list_segments(dir, bases, 64);
    REQUIRE(n >= 4);

    /* A reader positioned in the first segment, mid-way. */
    tarn_stream_reader *r = NULL;
    tarn_errbuf eb = {{0}};
    REQUIRE(tarn_stream_reader_open(s, 0, &r, &eb) == 0);
    int64_t seq;
    CHECK_EQ_INT(tarn_stream_reader_next(r, &seq, NULL, NULL, NULL, &eb), 1);
    CHECK_EQ_INT(seq, 1);

    /* Trimming below the end of segment 2 deletes segment 1 only. */
    CHECK_EQ_INT(tarn_stream_trim(s, bases[2] - 2, &eb), 0);
    int64_t after[64];
    int m = list_segments(dir, after, 64);
    CHECK_EQ_INT(m, n - 1);
    CHECK_EQ_INT(after[0], bases[1]);

    /* The reader finishes its (deleted, still open) segment, then goes on. */
    int64_t want = 2;
    while (tarn_stream_reader_next(r, &seq, NULL, NULL, NULL, &eb) == 1) {
        CHECK_EQ_INT(seq, want);
        want = seq + 1;
        if (seq == bases[1] + 1) break;
    }
    CHECK_EQ_INT(want, bases[1] + 2);

    /* Trimming everything keeps the newest segment; the reader, now behind
     * the trim point, continues at the oldest record kept. */
    CHECK_EQ_INT(tarn_stream_trim(s, 1000000, &eb), 0);
    m = list_segments(dir, after, 64);
    CHECK_EQ_INT(m, 1);
    CHECK_EQ_INT(after[0], bases[n - 1]);
    /* The reader may still finish its open segment, then jumps ahead. */
    int64_t prev = want - 1;
    int rc;
    while ((rc = tarn_stream_reader_next(r, &seq, NULL, NULL, NULL, &eb)) == 1) {
        CHECK(seq > prev);
        CHECK(seq == prev + 1 || seq == bases[n - 1]);
        prev = seq;
    }
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(prev, 60);
    /* Appends go on; the reader follows them. */
    CHECK_EQ_INT(append_range(s, 61, 70, &first, &last), 0);
    CHECK_EQ_INT(first, 61);
    CHECK_EQ_INT(tarn_stream_reader_next(r, &seq, NULL, NULL, NULL, &eb), 1);
    CHECK_EQ_INT(seq, 61);
    tarn_stream_reader_close(r);
    CHECK_EQ_INT(read_check(s, bases[n - 1] - 1, 70), 70 - bases[n - 1] + 1);
    tarn_stream_close(s);

    /* After reopen, numbering continues from what is left. */
    s = open_stream(dir, 400, 0);
    REQUIRE(s);
    CHECK_EQ_INT(append_range(s, 71, 71, &first, &last), 0);
    CHECK_EQ_INT(first, 71);
    tarn_stream_close(s);
    tarn_rm_rf(dir);
    free(dir);
}

/* Batches larger than one pwritev (512 records) and than the on-stack
 * checksum array, including one refused half-way for lack of space. */
TEST(large_batches)
{
    char *dir = test_tmpdir("stream");
    char path[512];
    seg_path(path, sizeof path, dir, 1);
    tarn_stream *s = open_stream(dir, 0, 0);
    REQUIRE(s);
    int64_t first = 0, last = 0;
    CHECK_EQ_INT(append_range(s, 1, 2000, &first, &last), 0);
    CHECK_EQ_INT(first, 1);
    CHECK_EQ_INT(last, 2000);
    CHECK_EQ_INT(file_size(path), frame_end(1, 2000));
    long long size = file_size(path);
    tarn_stream_test_fail_write(s, ENOSPC);
    CHECK_EQ_INT(append_range(s, 2001, 3500, &first, &last), TARN_ENOSPC);
    CHECK_EQ_INT(file_size(path), size);
    CHECK_EQ_INT(append_range(s, 2001, 3025, &first, &last), 0);
    CHECK_EQ_INT(first, 2001);
    CHECK_EQ_INT(last, 3025);
    CHECK_EQ_INT(read_check(s, 0, 3025), 3025);
    tarn_stream_close(s);
    s = open_stream(dir, 0, 0);
    REQUIRE(s);
    CHECK_EQ_INT(read_check(s, 1000, 3025), 2025);
    int64_t dseq, dbytes;
    tarn_stream_stats(s, &dseq, &dbytes);
    CHECK_EQ_INT(dseq, 3025);
    CHECK_EQ_INT(dbytes, frame_end(1, 3025) - SEG_HDR - 3025 * FRAME_HDR);
    tarn_stream_close(s);
    tarn_rm_rf(dir);
    free(dir);
}

struct acker_arg {
    tarn_stream *s;
    int fd; /* pipe to the parent: one int64 per acknowledged batch */
};

static void *acker_main(void *p)
{
    struct acker_arg *a = p;
    for (int64_t i = 0;; i++) {
        char buf[128];
        tarn_record recs[3];
        for (int k = 0; k < 3; k++) {
            recs[k].data = buf;
            recs[k].len = (size_t)(i * 3 + k) % 120;
        }
        memset(buf, 'k', sizeof buf);
        int64_t first, last;
        if (tarn_stream_append(a->s, recs, 3, i, &first, &last, NULL) != 0) return NULL;
        if (write(a->fd, &last, sizeof last) != (ssize_t)sizeof last) return NULL;
    }
}

/* A process appending from four threads dies by SIGKILL at an arbitrary
 * moment (mid-write, mid-fsync, mid-roll): after reopening, every record it
 * acknowledged is there and the numbers are consecutive. */
TEST(acknowledged_records_survive_kill)
{
    char *dir = test_tmpdir("stream");
    for (int round = 0; round < 4; round++) {
        int p[2];
        REQUIRE(pipe(p) == 0);
        fflush(stdout);
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            close(p[0]);
            tarn_stream *s = open_stream(dir, 8 << 10, 0);
            if (!s) _exit(2);
            pthread_t th[4];
            struct acker_arg a = {s, p[1]};
            for (int t = 0; t < 4; t++) pthread_create(&th[t], NULL, acker_main, &a);
            for (int t = 0; t < 4; t++) pthread_join(th[t], NULL);
            _exit(3);
        }
        close(p[1]);
        usleep(50000 + round * 40000);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        CHECK(WIFSIGNALED(status));
        int64_t acked = 0, v;
        while (read(p[0], &v, sizeof v) == (ssize_t)sizeof v)
            if (v > acked) acked = v;
        close(p[0]);

        tarn_stream *s = open_stream(dir, 8 << 10, 0);
        REQUIRE(s);
        int64_t dseq;
        tarn_stream_stats(s, &dseq, NULL);
        CHECK(acked > 0);
        CHECK(dseq >= acked);
        CHECK_EQ_INT(count_records(s), dseq);
        tarn_stream_close(s);
    }
    tarn_rm_rf(dir);
    free(dir);
}

TEST(fsync_failure_fails_stream)
{
    char *dir = test_tmpdir("stream");
    tarn_stream *s = open_stream(dir, 0, 0);
    REQUIRE(s);
    int64_t first = 0, last = 0;
    CHECK_EQ_INT(append_range(s, 1, 3, &first, &last), 0);
    tarn_stream_test_fail_fsync(s, EIO);
    tarn_errbuf eb = {{0}};
    tarn_record rec = {"x", 1};
    CHECK_EQ_INT(tarn_stream_append(s, &rec, 1, 0, &first, &last, &eb), TARN_EIO);
    CHECK(strstr(eb.msg, "fdatasync") != NULL);
    CHECK(tarn_stream_failed(s));
    CHECK_EQ_INT(tarn_stream_append(s, &rec, 1, 0, &first, &last, &eb), TARN_EIO);
    int64_t dseq;
    tarn_stream_stats(s, &dseq, NULL);
    CHECK_EQ_INT(dseq, 3);
    /* Durable records stay readable. */
    CHECK_EQ_INT(read_check(s, 0, 3), 3);
    tarn_stream_close(s);

    /* Recovery replays what reached the file. */
    s = open_stream(dir, 0, 0);
    REQUIRE(s);
    CHECK(!tarn_stream_failed(s));
    tarn_stream_stats(s, &dseq, NULL);
    CHECK(dseq == 3 || dseq == 4);
    tarn_stream_close(s);

    /* An fsync failing while a segment rolls fails the stream too. */
    tarn_rm_rf(dir);
    s = open_stream(dir, 200, 0);
    REQUIRE(s);
    CHECK_EQ_INT(append_range(s, 1, 3, &first, &last), 0);
    tarn_stream_test_fail_fsync(s, EIO);
    CHECK_EQ_INT(append_range(s, 4, 6, &first, &last), TARN_EIO);
    CHECK(tarn_stream_failed(s));
    tarn_stream_close(s);
    tarn_rm_rf(dir);
    free(dir);
}

TEST(disk_full_refuses_batch_and_recovers)
{
    char *dir = test_tmpdir("stream");
    char path[512];
    seg_path(path, sizeof path, dir, 1);
    tarn_stream *s = open_stream(dir, 0, 0);
    REQUIRE(s);
    int64_t first = 0, last = 0;
    CHECK_EQ_INT(append_range(s, 1, 5, &first, &last), 0);
    tarn_stream_test_fail_write(s, ENOSPC);
    CHECK_EQ_INT(append_range(s, 6, 25, &first, &last), TARN_ENOSPC);
    CHECK(!tarn_stream_failed(s));
    /* Cut back to the last frame (the zero-ahead tail goes with it). */
    CHECK_EQ_INT(file_size(path), frame_end(1, 5));
    CHECK_EQ_INT(read_check(s, 0, 5), 5);
    /* Space is back: the numbers of the refused batch are used again. */
    CHECK_EQ_INT(append_range(s, 6, 8, &first, &last), 0);
    CHECK_EQ_INT(first, 6);
    CHECK_EQ_INT(last, 8);
    CHECK_EQ_INT(read_check(s, 0, 8), 8);
    /* EDQUOT counts as full too. */
    tarn_stream_test_fail_write(s, EDQUOT);
    CHECK_EQ_INT(append_range(s, 9, 9, &first, &last), TARN_ENOSPC);
    CHECK_EQ_INT(append_range(s, 9, 9, &first, &last), 0);
    CHECK_EQ_INT(first, 9);
    tarn_stream_close(s);
    s = open_stream(dir, 0, 0);
    REQUIRE(s);
    CHECK_EQ_INT(read_check(s, 0, 9), 9);
    /* Any other write error fails the stream. */
    tarn_stream_test_fail_write(s, EIO);
    CHECK_EQ_INT(append_range(s, 10, 10, &first, &last), TARN_EIO);
    CHECK(tarn_stream_failed(s));
    CHECK_EQ_INT(append_range(s, 10, 10, &first, &last), TARN_EIO);
    tarn_stream_close(s);
    tarn_rm_rf(dir);
    free(dir);
}

/* Many appenders waiting on one fsync that fails: every one of them is
 * released with an error (none hangs), nothing acknowledged is lost, and
 * records acknowledged before the failure are exactly the durable ones. */
TEST(fsync_failure_releases_every_waiter)
{
    enum { THREADS = 8, PER = 400, TOTAL = THREADS * PER };
    char *dir = test_tmpdir("stream");
    tarn_stream *s = open_stream(dir, 0, 0);
    REQUIRE(s);
    /* Slow fsyncs, so that appenders pile up behind each one. */
    tarn_stream_test_fsync_delay(s, 2000);
    pthread_t th[THREADS];
    struct writer_arg args[THREADS];
    int64_t *seqs = calloc(TOTAL, sizeof *seqs);
    for (int t = 0; t < THREADS; t++) {
        args[t] = (struct writer_arg){s, t, PER, seqs + t * PER, 0};
        pthread_create(&th[t], NULL, writer_main, &args[t]);
    }
    usleep(50 * 1000);
    tarn_stream_test_fail_fsync(s, EIO);
    alarm(60); /* a waiter never released: SIGALRM ends the run, a failure */
    for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
    alarm(0);
    CHECK(tarn_stream_failed(s));
    int64_t dseq, acked = 0, max_acked = 0;
    tarn_stream_stats(s, &dseq, NULL);
    for (int i = 0; i < TOTAL; i++)
        if (seqs[i]) {
            acked++;
            if (seqs[i] > max_acked) max_acked = seqs[i];
        }
    int errors = 0;
    for (int t = 0; t < THREADS; t++) errors += args[t].errors;
    CHECK(acked > 0);
    CHECK(errors > 0);
    CHECK_EQ_INT(acked + errors, TOTAL);
    CHECK_EQ_INT(acked, dseq);     /* acknowledged = 1..durable, no gaps */
    CHECK_EQ_INT(max_acked, dseq);
    tarn_stream_close(s);
    s = open_stream(dir, 0, 0);
    REQUIRE(s);
    CHECK(count_records(s) >= dseq);
    tarn_stream_close(s);
    free(seqs);
    tarn_rm_rf(dir);
    free(dir);
}

/* Copies file src to dst (a crash image of a segment still open). */
static void copy_file(const char *src, const char *dst)
{
    char *data = NULL;
    size_t len = 0;
    tarn_errbuf eb = {{0}};
    REQUIRE(tarn_read_file(src, 64 << 20, &data, &len, &eb) == 0);
    FILE *f = fopen(dst, "wb");
    REQUIRE(f);
    REQUIRE(fwrite(data, 1, len, f) == len);
    fclose(f);
    free(data);
}

TEST(zero_ahead_tail_is_the_clean_end)
{
    char *dir = test_tmpdir("stream"), *crash = test_tmpdir("stream");
    char path[512], cpath[512];
    seg_path(path, sizeof path, dir, 1);
    seg_path(cpath, sizeof cpath, crash, 1);
    tarn_stream *s = open_stream(dir, 0, 0);
    REQUIRE(s);
    int64_t first, last;
    /* Small appends, one at a time: the segment is extended with zeros
     * ahead of the frames (the fdatasync then overwrites, not appends). */
    for (int64_t i = 1; i <= 100; i++) CHECK_EQ_INT(append_range(s, i, i, &first, &last), 0);
    long long open_size = file_size(path);
    CHECK(open_size >= frame_end(1, 100) + (256 << 10));
    CHECK(open_size <= frame_end(1, 100) + (2 << 20));

    /* A crash now leaves frames then zeros: every record is recovered, the
     * zeros stay, and appends go on right after record 100. */
    copy_file(path, cpath);
    tarn_stream *c = open_stream(crash, 0, 0);
    REQUIRE(c);
    int64_t dseq;
    tarn_stream_stats(c, &dseq, NULL);
    CHECK_EQ_INT(dseq, 100);
    CHECK_EQ_INT(file_size(cpath), open_size);
    CHECK_EQ_INT(read_check(c, 0, 100), 100);
    CHECK_EQ_INT(append_range(c, 101, 103, &first, &last), 0);
    CHECK_EQ_INT(first, 101);
    CHECK_EQ_INT(read_check(c, 0, 103), 103);
    tarn_stream_close(c);
    CHECK_EQ_INT(file_size(cpath), frame_end(1, 103));

    /* A torn record inside the zeros (crash mid-write): cut there, nothing
     * before it lost. */
    copy_file(path, cpath);
    int fd = open(cpath, O_WRONLY);
    REQUIRE(fd >= 0);
    REQUIRE(pwrite(fd, "\x20\0\0\0garbage", 11, (off_t)frame_end(1, 100)) == 11);
    close(fd);
    c = open_stream(crash, 0, 0);
    REQUIRE(c);
    CHECK_EQ_INT(file_size(cpath), frame_end(1, 100));
    CHECK_EQ_INT(read_check(c, 0, 100), 100);
    tarn_stream_close(c);

    /* Zeros in a segment that is not the newest are corruption: the later
     * segment goes (the log stays a prefix). */
    copy_file(path, cpath);
    char cpath2[512];
    seg_path(cpath2, sizeof cpath2, crash, 200);
    c = open_stream(crash, 0, 200);
    REQUIRE(c); /* starts segment 200 and cuts 1's zeros first */
    tarn_stream_close(c);
    CHECK_EQ_INT(file_size(cpath), frame_end(1, 100));
    CHECK(access(cpath2, F_OK) == 0);
    REQUIRE(truncate(cpath, frame_end(1, 100) + 4096) == 0);
    c = open_stream(crash, 0, 0);
    REQUIRE(c);
    CHECK_EQ_INT(file_size(cpath), frame_end(1, 100));
    CHECK(access(cpath2, F_OK) != 0);
    CHECK_EQ_INT(read_check(c, 0, 100), 100);
    tarn_stream_close(c);

    /* Large batches do not zero ahead (they would write everything twice). */
    tarn_stream_close(s);
    tarn_rm_rf(dir);
    s = open_stream(dir, 0, 0);
    REQUIRE(s);
    tarn_record recs[16];
    static char big[4000];
    memset(big, 'x', sizeof big);
    for (int i = 0; i < 16; i++) recs[i] = (tarn_record){big, sizeof big};
    tarn_errbuf eb = {{0}};
    for (int k = 0; k < 8; k++) CHECK_EQ_INT(tarn_stream_append(s, recs, 16, 1, &first, &last, &eb), 0);
    CHECK_EQ_INT(file_size(path), SEG_HDR + 8 * 16 * (FRAME_HDR + (long long)sizeof big));
    tarn_stream_close(s);
    tarn_rm_rf(dir);
    tarn_rm_rf(crash);
    free(dir);
    free(crash);
}

TEST(zero_ahead_stops_at_segment_end_and_rolls_clean)
{
    char *dir = test_tmpdir("stream");
    tarn_stream *s = open_stream(dir, 8192, 0);
    REQUIRE(s);
    int64_t first, last, bases[64];
    for (int64_t i = 1; i <= 300; i++) CHECK_EQ_INT(append_range(s, i, i, &first, &last), 0);
    int n = list_segments(dir, bases, 64);
    CHECK(n > 2);
    for (int k = 0; k < n; k++) {
        char p[512];
        seg_path(p, sizeof p, dir, bases[k]);
        CHECK(file_size(p) <= 8192 + 4096);
        if (k + 1 < n) { /* rolled segments end at their last frame */
            CHECK_EQ_INT(file_size(p), frame_end(bases[k], bases[k + 1] - bases[k]));
        }
    }
    CHECK_EQ_INT(read_check(s, 0, 300), 300);
    tarn_stream_close(s);
    s = open_stream(dir, 8192, 0);
    REQUIRE(s);
    CHECK_EQ_INT(read_check(s, 0, 300), 300);
    tarn_stream_close(s);
    tarn_rm_rf(dir);
    free(dir);
}

/* ---- tarn_stream_append_async ---- */

/* A waiter on the heap that records its callback: when, how often, with
 * what, and what was durable at that moment. done frees nothing: the test
 * owns the waiters. */
typedef struct async_w {
    tarn_stream_waiter w;
    tarn_stream *s;
    _Atomic int calls;
    int rc;
    char msg[256];
    int64_t durable_at_call; /* durable_seq seen inside the callback */
    _Atomic int order;       /* 1-based position among all callbacks */
} async_w;

static _Atomic int async_calls_total;

static void async_done(tarn_stream_waiter *w, int rc, const char *msg)
{
    async_w *a = (async_w *)w;
    a->rc = rc;
    if (msg) snprintf(a->msg, sizeof a->msg, "%s", msg);
    tarn_stream_stats(a->s, &a->durable_at_call, NULL);
    atomic_store(&a->order, atomic_fetch_add(&async_calls_total, 1) + 1);
    atomic_fetch_add(&a->calls, 1);
}

static int async_append_one(tarn_stream *s, async_w *a, int64_t i, int64_t *last)
{
    char buf[128];
    tarn_record rec = {buf, payload_for(i, buf, sizeof buf)};
    memset(a, 0, sizeof *a);
    a->s = s;
    a->w.done = async_done;
    int64_t first = 0;
    tarn_errbuf eb = {{0}};
    int rc = tarn_stream_append_async(s, &rec, 1, 1000 + i, &first, last, &a->w, &eb);
    if (rc) printf("  append_async: %s\n", eb.msg);
    return rc;
}

/* Opens a stream in dir whose fsyncs take delay_us longer (the next one
 * failing with fail_errno if non-zero) and appends records 1..n one by one
 * without waiting; the waiters go to *out (calloc'd, n + extra of them). */
static tarn_stream *async_fill(const char *dir, int n, int extra, int delay_us, int fail_errno, async_w **out)
{
    tarn_stream *s = open_stream(dir, 0, 0);
    if (!s) return NULL;
    tarn_stream_test_fsync_delay(s, delay_us);
    if (fail_errno) tarn_stream_test_fail_fsync(s, fail_errno);
    async_w *ws = calloc((size_t)(n + extra), sizeof *ws);
    int64_t last = 0;
    for (int i = 0; i < n; i++)
        if (async_append_one(s, &ws[i], i + 1, &last) != 0) {
            tarn_stream_close(s);
            free(ws);
            return NULL;
        }
    *out = ws;
    return s;
}

static int wait_calls(async_w *ws, int n)
{
    for (int tries = 0; tries < 20000; tries++) { /* at most 20 s */
        int all = 1;
        for (int i = 0; i < n; i++) all &= atomic_load(&ws[i].calls) > 0;
        if (all) return 1;
        usleep(1000);
    }
    return 0;
}

/* The call returns with the records written but not yet durable; each
 * waiter is called back exactly once, in sequence order, only once its
 * records are durable; the records read back; an empty batch calls nothing. */
TEST(async_append_calls_back_once_durable)
{
    enum { N = 40 };
    char *dir = test_tmpdir("stream");
    atomic_store(&async_calls_total, 0);
    /* A slow disk: every fsync takes 200 ms more, so the first callbacks
     * cannot come before the appends have all returned. */
    async_w *ws = NULL;
    tarn_stream *s = async_fill(dir, N, 0, 200 * 1000, 0, &ws);
    REQUIRE(s);
    int64_t durable;
    tarn_stream_stats(s, &durable, NULL);
    CHECK_EQ_INT(durable, 0);
    for (int i = 0; i < N; i++) CHECK_EQ_INT(atomic_load(&ws[i].calls), 0);
    tarn_stream_test_fsync_delay(s, 0);
    REQUIRE(wait_calls(ws, N));
    usleep(20 * 1000); /* a second, wrong call would come now */
    for (int i = 0; i < N; i++) {
        CHECK_EQ_INT(ws[i].w.last, i + 1);
        CHECK_EQ_INT(atomic_load(&ws[i].calls), 1);
        CHECK_EQ_INT(ws[i].rc, 0);
        CHECK(ws[i].durable_at_call >= ws[i].w.last);
        CHECK_EQ_INT(atomic_load(&ws[i].order), i + 1);
    }
    /* Fewer fsyncs than appends: the waiting ones shared them. */
    CHECK(tarn_stream_test_fsync_count(s) < N);
    CHECK_EQ_INT(read_check(s, 0, N), N);

    async_w empty;
    memset(&empty, 0, sizeof empty);
    empty.s = s;
    empty.w.done = async_done;
    int64_t first = -1, last = -1;
    tarn_errbuf eb = {{0}};
    CHECK_EQ_INT(tarn_stream_append_async(s, NULL, 0, 0, &first, &last, &empty.w, &eb), 0);
    CHECK_EQ_INT(first, N + 1);
    CHECK_EQ_INT(last, N);
    tarn_stream_close(s);
    CHECK_EQ_INT(atomic_load(&empty.calls), 0);
    free(ws);
    tarn_rm_rf(dir);
    free(dir);
}

/* Closing with appends still waiting for their fsync: close makes them
 * durable and calls every waiter back (with success) before it returns. */
TEST(async_close_completes_every_waiter)
{
    enum { N = 25 };
    char *dir = test_tmpdir("stream");
    async_w *ws = NULL;
    tarn_stream *s = async_fill(dir, N, 0, 100 * 1000, 0, &ws);
    REQUIRE(s);
    tarn_stream_close(s);
    for (int i = 0; i < N; i++) {
        CHECK_EQ_INT(atomic_load(&ws[i].calls), 1);
        CHECK_EQ_INT(ws[i].rc, 0);
    }
    s = open_stream(dir, 0, 0);
    REQUIRE(s);
    CHECK_EQ_INT(read_check(s, 0, N), N);
    tarn_stream_close(s);
    free(ws);
    tarn_rm_rf(dir);
    free(dir);
}

/* An fsync that fails: every waiter it would have served is called back
 * with TARN_EIO and the reason, once; appends after it are refused at once
 * and call nothing. */
TEST(async_fsync_failure_calls_back_with_error)
{
    enum { N = 10 };
    char *dir = test_tmpdir("stream");
    async_w *ws = NULL;
    tarn_stream *s = async_fill(dir, N, 1, 100 * 1000, EIO, &ws);
    REQUIRE(s);
    REQUIRE(wait_calls(ws, N));
    for (int i = 0; i < N; i++) {
        CHECK_EQ_INT(atomic_load(&ws[i].calls), 1);
        CHECK_EQ_INT(ws[i].rc, TARN_EIO);
        CHECK(strstr(ws[i].msg, "fdatasync") != NULL);
    }
    CHECK(tarn_stream_failed(s));
    int64_t last = 0;
    CHECK_EQ_INT(async_append_one(s, &ws[N], N + 1, &last), TARN_EIO);
    tarn_stream_close(s);
    CHECK_EQ_INT(atomic_load(&ws[N].calls), 0);
    free(ws);
    tarn_rm_rf(dir);
    free(dir);
}

/* The callback may free its waiter (the server's requests are freed as soon
 * as their reply is out): the stream must not touch a waiter after calling
 * it. Under ASan a use after free is a failure. */
static _Atomic int freed_calls;
static void free_done(tarn_stream_waiter *w, int rc, const char *msg)
{
    (void)msg;
    if (rc == 0) atomic_fetch_add(&freed_calls, 1);
    memset(w, 0xAB, sizeof *w);
    free(w);
}

TEST(async_waiter_may_be_freed_in_its_callback)
{
    enum { N = 200 };
    char *dir = test_tmpdir("stream");
    tarn_stream *s = open_stream(dir, 0, 0);
    REQUIRE(s);
    atomic_store(&freed_calls, 0);
    for (int i = 0; i < N; i++) {
        char buf[128];
        tarn_record rec = {buf, payload_for(i + 1, buf, sizeof buf)};
        tarn_stream_waiter *w = calloc(1, sizeof *w);
        w->done = free_done;
        tarn_errbuf eb = {{0}};
        REQUIRE(tarn_stream_append_async(s, &rec, 1, 0, NULL, NULL, w, &eb) == 0);
    }
    tarn_stream_close(s);
    CHECK_EQ_INT(atomic_load(&freed_calls), N);
    tarn_rm_rf(dir);
    free(dir);
}

int main(void)
{
    RUN(crc32c_check_values);
    RUN(framing_round_trip);
    RUN(oversize_record_refused);
    RUN(sequence_continues_across_reopen);
    RUN(min_next_seq_honoured);
    RUN(segment_roll_and_read_across);
    RUN(torn_tail_truncated_at_last_valid_frame);
    RUN(corrupt_tail_payload_truncated);
    RUN(corruption_in_earlier_segment_drops_later_segments);
    RUN(concurrent_appends_share_fsyncs);
    RUN(trim_keeps_newest_and_readers_continue);
    RUN(large_batches);
    RUN(acknowledged_records_survive_kill);
    RUN(fsync_failure_fails_stream);
    RUN(disk_full_refuses_batch_and_recovers);
    RUN(fsync_failure_releases_every_waiter);
    RUN(zero_ahead_tail_is_the_clean_end);
    RUN(zero_ahead_stops_at_segment_end_and_rolls_clean);
    RUN(async_append_calls_back_once_durable);
    RUN(async_close_completes_every_waiter);
    RUN(async_fsync_failure_calls_back_with_error);
    RUN(async_waiter_may_be_freed_in_its_callback);
    return test_main_end();
}
