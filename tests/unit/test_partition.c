/* Unit tests for partition path encoding (src/delivery/partition.c). */
#include "delivery/partition.h"

#include <stdlib.h>

#include "test.h"

static char *enc(const char *v, size_t n)
{
    tarn_buf b;
    tarn_buf_init(&b, 0);
    tarn_partition_encode(&b, v, n);
    return tarn_buf_steal(&b);
}

#define CHECK_ENC(v, want)                 \
    do {                                   \
        char *got__ = enc(v, strlen(v));   \
        CHECK_EQ_STR(got__, want);         \
        free(got__);                       \
    } while (0)

TEST(plain_values_pass_through)
{
    CHECK_ENC("2025-11-25", "2025-11-25");
    CHECK_ENC("iot_sensors", "iot_sensors");
    CHECK_ENC("a.b~c", "a.b~c");
}

TEST(unsafe_bytes_are_escaped)
{
    CHECK_ENC("a/b", "a%2Fb");
    CHECK_ENC("../../etc", "..%2F..%2Fetc");
    CHECK_ENC("x=y", "x%3Dy");
    CHECK_ENC("sp ace", "sp%20ace");
    CHECK_ENC("100%", "100%25");
    CHECK_ENC("\xc3\xa9", "%C3%A9");
    char *z = enc("a\0b", 3);
    CHECK_EQ_STR(z, "a%00b");
    free(z);
}

TEST(dot_segments_and_empty)
{
    CHECK_ENC(".", "%2E");
    CHECK_ENC("..", "%2E%2E");
    CHECK_ENC("...", "...");
    CHECK_ENC("", "__EMPTY__");
    char *n = enc(NULL, 0);
    CHECK_EQ_STR(n, "__NULL__");
    free(n);
}

TEST(long_values_are_capped_and_distinct)
{
    char a[1000], b[1000];
    memset(a, 'x', sizeof a);
    memset(b, 'x', sizeof b);
    b[999] = 'y';
    char *ea = enc(a, sizeof a), *eb = enc(b, sizeof b);
    CHECK(strlen(ea) <= TARN_PARTITION_MAX);
    CHECK(strlen(eb) <= TARN_PARTITION_MAX);
    CHECK(strcmp(ea, eb) != 0);
    CHECK(strchr(ea, '~') != NULL);
    free(ea);
    free(eb);
    /* Escapes are never split by the cut. */
    char s[600];
    memset(s, '/', sizeof s);
    char *es = enc(s, sizeof s);
    char *tilde = strrchr(es, '~');
    REQUIRE(tilde != NULL);
    CHECK((tilde - es) % 3 == 0);
    free(es);
}

TEST(decode_round_trip)
{
    const char *vals[] = {"a/b", "../x", "sp ace", "\xc3\xa9t\xc3\xa9", "100%", "k=v"};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        char *e = enc(vals[i], strlen(vals[i]));
        tarn_buf d;
        tarn_buf_init(&d, 0);
        CHECK_EQ_INT(tarn_partition_decode(&d, e, strlen(e)), 0);
        CHECK_EQ_STR(d.data, vals[i]);
        tarn_buf_free(&d);
        free(e);
    }
    tarn_buf d;
    tarn_buf_init(&d, 0);
    CHECK_EQ_INT(tarn_partition_decode(&d, "bad%2", 5), -1);
    CHECK_EQ_INT(tarn_partition_decode(&d, "bad%zz", 6), -1);
    tarn_buf_free(&d);
}

TEST(segment_has_key)
{
    tarn_buf b;
    tarn_buf_init(&b, 0);
    tarn_partition_segment(&b, "ingestion_date", "2025-11-25", 10);
    CHECK_EQ_STR(b.data, "ingestion_date=2025-11-25");
    tarn_buf_free(&b);
}

int main(void)
{
    RUN(plain_values_pass_through);
    RUN(unsafe_bytes_are_escaped);
    RUN(dot_segments_and_empty);
    RUN(long_values_are_capped_and_distinct);
    RUN(decode_round_trip);
    RUN(segment_has_key);
    return test_main_end();
}
