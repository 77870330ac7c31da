/* test_buf.c - the growable buffer: appends within and at its limit, and
 * JSON string escaping against a byte-by-byte reference. */
#include "common/buf.h"
#include "test.h"

/* The escaping JSON (RFC 8259) requires, one byte at a time: the oracle. */
static void ref_json_str(const unsigned char *s, size_t n, char *out, size_t *len)
{
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c == '\n' || c == '\r' || c == '\t' || c == '\b' || c == '\f') {
            out[o++] = '\\';
            out[o++] = c == '\n' ? 'n' : c == '\r' ? 'r' : c == '\t' ? 't' : c == '\b' ? 'b' : 'f';
        } else if (c < 0x20) {
            o += (size_t)sprintf(out + o, "\\u%04x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o++] = '"';
    out[o] = '\0';
    *len = o;
}

static int same_as_ref(tarn_buf *b, size_t before, const unsigned char *s, size_t n)
{
    static char want[6 * 4096 + 3];
    size_t wlen;
    ref_json_str(s, n, want, &wlen);
    return b->len == before + wlen && memcmp(b->data + before, want, wlen) == 0 && b->data[b->len] == '\0';
}

TEST(json_str_every_byte)
{
    tarn_buf b;
    tarn_buf_init(&b, 0);
    for (int c = 0; c < 256; c++) {
        unsigned char s[3] = {'a', (unsigned char)c, 'z'};
        size_t before = b.len;
        REQUIRE(tarn_buf_append_json_str(&b, (const char *)s, 3) == TARN_OK);
        CHECK(same_as_ref(&b, before, s, 3));
        before = b.len;
        REQUIRE(tarn_buf_append_json_str(&b, (const char *)s + 1, 1) == TARN_OK);
        CHECK(same_as_ref(&b, before, s + 1, 1));
    }
    tarn_buf_free(&b);
}

TEST(json_str_random_texts)
{
    /* Texts dense in escapes, with escapes at both ends and in runs, each
     * appended after what is already there (any length, any capacity). */
    static unsigned char s[4096];
    static const unsigned char alphabet[] = {'a', 'b', ' ', '"', '\\', '\n', 0, 1, 0x1f, 0x7f, 0xc3, 0xa9, '/'};
    unsigned seed = 12345;
    tarn_buf b;
    tarn_buf_init(&b, 0);
    for (int round = 0; round < 2000; round++) {
        seed = seed * 1103515245u + 12345u;
        size_t n = (seed >> 8) % (round < 1000 ? 64 : sizeof s);
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            s[i] = alphabet[(seed >> 16) % sizeof alphabet];
        }
        if (round % 50 == 0) tarn_buf_reset(&b);
        size_t before = b.len;
        REQUIRE(tarn_buf_append_json_str(&b, (const char *)s, n) == TARN_OK);
        CHECK(same_as_ref(&b, before, s, n));
    }
    tarn_buf_free(&b);
}

TEST(json_str_at_the_limit_fails_whole)
{
    /* a""b"" is 12 bytes as a JSON string: it fits a limit of 12 exactly.
     * After 2 bytes, limits of 8 to 11 refuse it and leave the buffer as
     * it was: at 10 and 11 the text fits unescaped, and only an escape goes
     * over. */
    const char *text = "a\"\"b\"\"";
    tarn_buf b;
    tarn_buf_init(&b, 12);
    REQUIRE(tarn_buf_append_json_str(&b, text, strlen(text)) == TARN_OK);
    CHECK_EQ_STR(b.data, "\"a\\\"\\\"b\\\"\\\"\"");
    tarn_buf_free(&b);

    for (size_t max = 8; max <= 11; max++) {
        tarn_buf_init(&b, max);
        REQUIRE(tarn_buf_append(&b, "xy", 2) == TARN_OK);
        CHECK_EQ_INT(tarn_buf_append_json_str(&b, text, 2), TARN_OK); /* "a\"" is 5 bytes */
        CHECK_EQ_STR(b.data, "xy\"a\\\"\"");
        tarn_buf_reset(&b);
        REQUIRE(tarn_buf_append(&b, "xy", 2) == TARN_OK);
        CHECK_EQ_INT(tarn_buf_append_json_str(&b, text, strlen(text)), TARN_ETOOBIG);
        CHECK_EQ_INT(b.len, 2);
        CHECK_EQ_STR(b.data, "xy");
        tarn_buf_free(&b);
    }
}

TEST(append_stops_at_max)
{
    /* Byte by byte up to the limit, then one more is refused with the
     * contents unchanged; the same for a block that would cross it. */
    tarn_buf b;
    tarn_buf_init(&b, 1000);
    for (int i = 0; i < 1000; i++) REQUIRE(tarn_buf_append_char(&b, (char)('a' + i % 26)) == TARN_OK);
    CHECK_EQ_INT(b.len, 1000);
    CHECK(b.cap <= 1001);
    CHECK_EQ_INT(tarn_buf_append_char(&b, 'z'), TARN_ETOOBIG);
    CHECK_EQ_INT(tarn_buf_append(&b, "", 0), TARN_OK);
    CHECK_EQ_INT(b.len, 1000);
    CHECK_EQ_INT(b.data[1000], '\0');
    CHECK_EQ_INT(b.data[999], 'a' + 999 % 26);
    tarn_buf_reset(&b);
    REQUIRE(tarn_buf_append(&b, "0123456789", 10) == TARN_OK);
    char big[991];
    memset(big, 'q', sizeof big);
    CHECK_EQ_INT(tarn_buf_append(&b, big, sizeof big), TARN_ETOOBIG);
    CHECK_EQ_INT(b.len, 10);
    CHECK_EQ_STR(b.data, "0123456789");
    CHECK_EQ_INT(tarn_buf_append(&b, big, sizeof big - 1), TARN_OK);
    CHECK_EQ_INT(b.len, 1000);
    tarn_buf_free(&b);
}

TEST(steal_leaves_empty)
{
    tarn_buf b;
    tarn_buf_init(&b, 0);
    char *empty = tarn_buf_steal(&b);
    REQUIRE(empty != NULL);
    CHECK_EQ_STR(empty, "");
    free(empty);
    REQUIRE(tarn_buf_append_str(&b, "body") == TARN_OK);
    char *p = tarn_buf_steal(&b);
    CHECK_EQ_STR(p, "body");
    CHECK(b.data == NULL);
    CHECK_EQ_INT(b.len, 0);
    CHECK_EQ_INT(tarn_buf_append_str(&b, "again"), TARN_OK);
    CHECK_EQ_STR(b.data, "again");
    free(p);
    tarn_buf_free(&b);
}

int main(void)
{
    RUN(json_str_every_byte);
    RUN(json_str_random_texts);
    RUN(json_str_at_the_limit_fails_whole);
    RUN(append_stops_at_max);
    RUN(steal_leaves_empty);
    return test_main_end();
}
