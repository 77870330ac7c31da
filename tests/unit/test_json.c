/* test_json.c - the ingest body splitter: grammar, formats, limits, error
 * positions, and a throughput figure (printed, not asserted). */
#include <stdint.h>
#include <time.h>

#include "json/json.h"
#include "test.h"

/* ---- helpers ---- */

/* Splits body (NUL-terminated, or len bytes if len != SIZE_MAX). Returns the
 * code; spans are checked for the invariants every success must meet. */
static int split_n(const char *body, size_t len, enum tarn_body_format fmt, const tarn_json_limits *lim,
                   tarn_json_span **sp, size_t *n, tarn_json_error *e)
{
    if (len == SIZE_MAX) len = strlen(body);
    int rc = tarn_json_split(body, len, fmt, lim, sp, n, e);
    if (rc == 0) {
        CHECK(*sp != NULL);
        CHECK(*n >= 1);
        for (size_t i = 0; i < *n; i++) {
            tarn_json_span s = (*sp)[i];
            CHECK(s.len >= 2 && s.offset + s.len <= len);
            CHECK(body[s.offset] == '{' && body[s.offset + s.len - 1] == '}');
            if (i) CHECK(s.offset >= (*sp)[i - 1].offset + (*sp)[i - 1].len);
        }
    } else {
        CHECK(*sp == NULL);
        CHECK(e->offset <= len);
    }
    return rc;
}

/* Number of records in a valid body, or -1 (with the error printed). */
static long count_fmt(int line, enum tarn_body_format fmt, const char *body, size_t len)
{
    tarn_json_span *sp;
    size_t n;
    tarn_json_error e;
    int rc = split_n(body, len, fmt, NULL, &sp, &n, &e);
    if (rc) {
        printf("  FAIL %s: line %d: %s body rejected: rc %d index %zu offset %zu: %s\n", test__cur, line,
               fmt == TARN_BODY_JSON ? "JSON" : "NDJSON", rc, e.index, e.offset, e.msg);
        test__cur_failed = 1;
        return -1;
    }
    free(sp);
    return (long)n;
}

#define COUNT_JSON(body) count_fmt(__LINE__, TARN_BODY_JSON, (body), SIZE_MAX)
#define COUNT_NDJSON(body) count_fmt(__LINE__, TARN_BODY_NDJSON, (body), SIZE_MAX)
/* A single record, valid in both formats. */
#define VALID(body)                              \
    do {                                         \
        CHECK_EQ_INT(COUNT_JSON(body), 1);       \
        CHECK_EQ_INT(COUNT_NDJSON(body), 1);     \
    } while (0)

/* Checks that body fails with exactly this code, index, offset and message
 * (msg NULL: any message). */
static void expect_err_l(int line, enum tarn_body_format fmt, const char *body, size_t len,
                         const tarn_json_limits *lim, int rc, size_t index, size_t offset, const char *msg)
{
    tarn_json_span *sp = (tarn_json_span *)1;
    size_t n = 99;
    tarn_json_error e;
    if (len == SIZE_MAX) len = strlen(body);
    int got = split_n(body, len, fmt, lim, &sp, &n, &e);
    if (got == 0) free(sp);
    if (got != rc || (got && (e.index != index || e.offset != offset || (msg && strcmp(e.msg, msg) != 0)))) {
        printf("  FAIL %s: line %d: %s body \"%.60s\"\n"
               "       want rc %d index %zu offset %zu \"%s\"\n"
               "       got  rc %d index %zu offset %zu \"%s\"\n",
               test__cur, line, fmt == TARN_BODY_JSON ? "JSON" : "NDJSON", body, rc, index, offset,
               msg ? msg : "*", got, got ? e.index : 0, got ? e.offset : 0, got ? e.msg : "");
        test__cur_failed = 1;
    }
    if (got) CHECK(n == 0);
}

#define ERR_JSON(body, rc, index, offset, msg) \
    expect_err_l(__LINE__, TARN_BODY_JSON, body, SIZE_MAX, NULL, rc, index, offset, msg)
#define ERR_NDJSON(body, rc, index, offset, msg) \
    expect_err_l(__LINE__, TARN_BODY_NDJSON, body, SIZE_MAX, NULL, rc, index, offset, msg)
/* A single-record error, identical in both formats. */
#define ERR_BOTH(body, rc, offset, msg)         \
    do {                                        \
        ERR_JSON(body, rc, 0, offset, msg);     \
        ERR_NDJSON(body, rc, 0, offset, msg);   \
    } while (0)
#define EJSON_AT(body, offset, msg) ERR_BOTH(body, TARN_EJSON, offset, msg)

/* ---- formats ---- */

TEST(single_object)
{
    const char *b = "  \n\t{\"a\": 1, \"b\": \"x\"}\r\n ";
    tarn_json_span *sp;
    size_t n;
    tarn_json_error e;
    REQUIRE(split_n(b, SIZE_MAX, TARN_BODY_JSON, NULL, &sp, &n, &e) == 0);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(sp[0].offset, 4);
    CHECK_EQ_INT(sp[0].len, 18);
    free(sp);
    VALID("{}");
    VALID("{\"a\":1}");
}

TEST(array_of_objects)
{
    const char *b = "[ {\"a\":1} ,\n  {\"b\":[1,{\"c\":2}]},{}\n\n]\n";
    tarn_json_span *sp;
    size_t n;
    tarn_json_error e;
    REQUIRE(split_n(b, SIZE_MAX, TARN_BODY_JSON, NULL, &sp, &n, &e) == 0);
    REQUIRE(n == 3);
    CHECK(sp[0].offset == 2 && sp[0].len == 7);
    CHECK(memcmp(b + sp[1].offset, "{\"b\":[1,{\"c\":2}]}", sp[1].len) == 0 && sp[1].len == 17);
    CHECK(memcmp(b + sp[2].offset, "{}", 2) == 0 && sp[2].len == 2);
    free(sp);
    CHECK_EQ_INT(COUNT_JSON("[{}]"), 1);
    CHECK_EQ_INT(COUNT_JSON("\r\n[\t{}\t,\r\n{}\t]\t"), 2);
}

TEST(ndjson_blank_lines_crlf)
{
    const char *b = "{\"a\":1}\r\n\r\n  \n\t\r\n{\"b\":2}  \r\n{\"c\":3}";
    tarn_json_span *sp;
    size_t n;
    tarn_json_error e;
    REQUIRE(split_n(b, SIZE_MAX, TARN_BODY_NDJSON, NULL, &sp, &n, &e) == 0);
    REQUIRE(n == 3);
    CHECK(sp[0].offset == 0 && sp[0].len == 7);
    CHECK(sp[1].offset == 17 && sp[1].len == 7);
    CHECK(sp[2].offset == 28 && sp[2].len == 7);
    free(sp);
    CHECK_EQ_INT(COUNT_NDJSON("\n\n{}\n\n"), 1);
    CHECK_EQ_INT(COUNT_NDJSON("{}\n{}\n{}\n"), 3);
    /* An array line is one value, not records. */
    ERR_NDJSON("{}\n[{}]\n", TARN_EINVAL, 1, 3, "record is not an object");
}

TEST(nested_values)
{
    VALID("{\"a\":{\"b\":{\"c\":[1,2,{\"d\":[[],{}]}]}},\"e\":[],\"f\":{},\"g\":[true,false,null,\"s\",-1.5e3]}");
    VALID("{ \"a\" : [ 1 , [ 2 , [ 3 ] ] , { } ] , \"b\" : { \"c\" : null } }");
    VALID("{\"\":\"\"}");
    VALID("{\"a\":1,\"a\":2}"); /* duplicate keys are legal JSON; the loader decides */
    VALID("{\"k\":\"\x7f\"}");  /* DEL is not a control character in JSON */
}

/* ---- strings ---- */

TEST(escapes)
{
    VALID("{\"s\":\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u0041 \\u00e9 \\u20AC "
          "\\uD83D\\uDE00 \\udbff\\udfff \\u0000\"}");
    VALID("{\"\\u0041\\n\":1}");
    /* offsets:                 0123456789 */
    EJSON_AT("{\"s\":\"a\\qb\"}", 7, "invalid escape '\\q'");
    EJSON_AT("{\"s\":\"\\x41\"}", 6, "invalid escape '\\x'");
    EJSON_AT("{\"s\":\"\\U0041\"}", 6, "invalid escape '\\U'");
    EJSON_AT("{\"s\":\"\\\x01\"}", 6, "invalid escape: byte 0x01 after '\\'");
    EJSON_AT("{\"s\":\"\\u12G4\"}", 10, "invalid hex digit in \\u escape");
    EJSON_AT("{\"s\":\"\\u12\"}", 10, "invalid hex digit in \\u escape");
    EJSON_AT("{\"\\q\":1}", 2, "invalid escape '\\q'");
    /* Surrogates: lone high, lone low, high followed by a non-surrogate. */
    EJSON_AT("{\"s\":\"\\uD800\"}", 6, "lone surrogate '\\uD800'");
    EJSON_AT("{\"s\":\"\\uD800x\"}", 6, "lone surrogate '\\uD800'");
    EJSON_AT("{\"s\":\"\\uD800\\n\"}", 6, "lone surrogate '\\uD800'");
    EJSON_AT("{\"s\":\"\\udc00\"}", 6, "lone surrogate '\\udc00'");
    EJSON_AT("{\"s\":\"\\uDE00\\uD83D\"}", 6, "lone surrogate '\\uDE00'");
    EJSON_AT("{\"s\":\"\\uD800\\u0041\"}", 12, "'\\u0041' after '\\uD800' is not a low surrogate");
    EJSON_AT("{\"s\":\"\\uD800\\uD800\"}", 12, "'\\uD800' after '\\uD800' is not a low surrogate");
    EJSON_AT("{\"s\":\"\\uD800\\uDC0Z\"}", 17, "invalid hex digit in \\u escape");
    /* Truncated escapes. */
    ERR_JSON("{\"s\":\"\\", TARN_EJSON, 0, 7, "unexpected end of input");
    ERR_JSON("{\"s\":\"\\u00", TARN_EJSON, 0, 10, "unexpected end of input");
    ERR_JSON("{\"s\":\"\\uD800", TARN_EJSON, 0, 12, "unexpected end of input");
    ERR_JSON("{\"s\":\"\\uD800\\", TARN_EJSON, 0, 13, "unexpected end of input");
    ERR_JSON("{\"s\":\"\\uD800\\uDC", TARN_EJSON, 0, 16, "unexpected end of input");
}

TEST(control_characters)
{
    EJSON_AT("{\"s\":\"a\tb\"}", 7, "control character in string");
    EJSON_AT("{\"s\":\"\x1f\"}", 6, "control character in string");
    EJSON_AT("{\"a\x01\":1}", 3, "control character in string");
    /* A raw NUL cannot sit in a C string literal the helpers strlen. */
    expect_err_l(__LINE__, TARN_BODY_JSON, "{\"s\":\"\0\"}", 9, NULL, TARN_EJSON, 0, 6, "control character in string");
    /* NDJSON: a raw newline ends the line, and the record with it. */
    ERR_NDJSON("{\"s\":\"a\nb\"}", TARN_EJSON, 0, 7, "unexpected end of line");
    ERR_JSON("{\"s\":\"a\nb\"}", TARN_EJSON, 0, 7, "control character in string");
}

TEST(utf8_valid)
{
    VALID("{\"s\":\"\xc3\xa9\"}");                       /* U+00E9, 2 bytes */
    VALID("{\"s\":\"\xe2\x82\xac\"}");                   /* U+20AC, 3 bytes */
    VALID("{\"s\":\"\xf0\x9f\x98\x80\"}");               /* U+1F600, 4 bytes */
    VALID("{\"s\":\"\xc2\x80 \xdf\xbf\"}");              /* U+0080, U+07FF */
    VALID("{\"s\":\"\xe0\xa0\x80 \xef\xbf\xbf\"}");      /* U+0800, U+FFFF */
    VALID("{\"s\":\"\xed\x9f\xbf \xee\x80\x80\"}");      /* U+D7FF, U+E000: around the surrogates */
    VALID("{\"s\":\"\xf0\x90\x80\x80 \xf4\x8f\xbf\xbf\"}"); /* U+10000, U+10FFFF */
    VALID("{\"\xc3\xa9t\xc3\xa9\":\"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\"}");
}

TEST(utf8_invalid)
{
    const char *bad[] = {
        "\xc0\x80",         /* overlong NUL */
        "\xc1\xbf",         /* overlong 2-byte */
        "\xe0\x9f\xbf",     /* overlong 3-byte */
        "\xf0\x8f\xbf\xbf", /* overlong 4-byte */
        "\xed\xa0\x80",     /* U+D800 */
        "\xed\xbf\xbf",     /* U+DFFF */
        "\xf4\x90\x80\x80", /* U+110000 */
        "\xf5\x80\x80\x80", /* lead byte past U+10FFFF */
        "\xff",             /* never valid */
        "\x80",             /* stray continuation */
        "\xc3",             /* truncated 2-byte: the closing quote follows */
        "\xe2\x82",         /* truncated 3-byte */
        "\xf0\x9f\x98",     /* truncated 4-byte */
        "\xe2\x28\xa1",     /* bad second byte */
        "\xf0\x9f\x28\x80", /* bad third byte */
        "\xf0\x9f\x98\x28", /* bad fourth byte */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char b[64];
        snprintf(b, sizeof b, "{\"s\":\"ok %s\"}", bad[i]);
        EJSON_AT(b, 9, "invalid UTF-8");
    }
    /* Truncated at the very end of the body. */
    ERR_JSON("{\"s\":\"\xe2\x82", TARN_EJSON, 0, 6, "invalid UTF-8");
    /* Outside strings a high byte is just an unexpected byte. */
    EJSON_AT("{\"s\":\xc3\xa9}", 5, "expected a value");
    ERR_JSON("\xef\xbb\xbf{}", TARN_EJSON, 0, 0, "expected '{' to start a record"); /* BOM */
}

/* Special bytes at every position around the 8- and 16-byte blocks the string
 * scanner skips. */
TEST(string_block_boundaries)
{
    char b[128];
    for (size_t slen = 0; slen < 48; slen++) {
        for (size_t pos = 0; pos <= slen; pos++) {
            /* {"s":"<slen bytes>"} with the byte at pos replaced */
            memcpy(b, "{\"s\":\"", 6);
            memset(b + 6, 'x', slen);
            memcpy(b + 6 + slen, "\"}", 3);
            CHECK_EQ_INT(COUNT_JSON(b), 1);
            if (pos == slen) continue;
            b[6 + pos] = '\x1f';
            EJSON_AT(b, 6 + pos, "control character in string");
            b[6 + pos] = '\xff';
            EJSON_AT(b, 6 + pos, "invalid UTF-8");
            b[6 + pos] = '"';
            if (pos + 1 < slen) EJSON_AT(b, 7 + pos, "expected ',' or '}' after object value");
            b[6 + pos] = '\\';
            if (pos + 1 < slen) EJSON_AT(b, 6 + pos, "invalid escape '\\x'");
            if (pos + 1 < slen) {
                b[6 + pos] = '\xc3';
                b[7 + pos] = '\xa9';
                CHECK_EQ_INT(COUNT_JSON(b), 1);
            }
            if (pos + 3 < slen) {
                memcpy(b + 6 + pos, "\xf0\x9f\x98\x80", 4);
                CHECK_EQ_INT(COUNT_JSON(b), 1);
                b[9 + pos] = 'x';
                EJSON_AT(b, 6 + pos, "invalid UTF-8");
            }
        }
    }
    /* Body ends inside a long string: the block loop must stop at len. */
    const char *s = "{\"s\":\"0123456789abcdef0123456789abcdef0";
    ERR_JSON(s, TARN_EJSON, 0, strlen(s), "unexpected end of input");
}

/* ---- numbers and literals ---- */

TEST(numbers)
{
    const char *good[] = {"0",    "-0",     "1",      "-1",   "10",    "1234567890", "0.5",     "-0.5",
                          "1.25", "1e5",    "1E5",    "1e+5", "1e-5",  "0e0",        "-0.0E-0", "1.5e300",
                          "1e999", "123456789012345678901234567890.123456789e-123456789"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char b[128];
        snprintf(b, sizeof b, "{\"n\":%s}", good[i]);
        VALID(b);
        snprintf(b, sizeof b, "{\"n\":[%s,%s ]}", good[i], good[i]);
        VALID(b);
    }
    /* offsets: {"n": is 5 bytes */
    EJSON_AT("{\"n\":01}", 6, "leading zero in number");
    EJSON_AT("{\"n\":-01}", 7, "leading zero in number");
    EJSON_AT("{\"n\":00}", 6, "leading zero in number");
    EJSON_AT("{\"n\":1.}", 7, "expected digit after '.'");
    EJSON_AT("{\"n\":1.e5}", 7, "expected digit after '.'");
    EJSON_AT("{\"n\":.5}", 5, "expected a value");
    EJSON_AT("{\"n\":-}", 6, "expected digit after '-'");
    EJSON_AT("{\"n\":-a}", 6, "expected digit after '-'");
    EJSON_AT("{\"n\":1e}", 7, "expected digit in exponent");
    EJSON_AT("{\"n\":1e+}", 8, "expected digit in exponent");
    EJSON_AT("{\"n\":1E-x}", 8, "expected digit in exponent");
    EJSON_AT("{\"n\":+1}", 5, "expected a value");
    EJSON_AT("{\"n\":1x}", 6, "expected ',' or '}' after object value");
    EJSON_AT("{\"n\":0x10}", 6, "expected ',' or '}' after object value");
    EJSON_AT("{\"n\":1.5.5}", 8, "expected ',' or '}' after object value");
    EJSON_AT("{\"n\":NaN}", 5, "expected a value");
    EJSON_AT("{\"n\":[-Infinity]}", 7, "expected digit after '-'");
    ERR_JSON("{\"n\":1", TARN_EJSON, 0, 6, "unexpected end of input");
    ERR_JSON("{\"n\":1.", TARN_EJSON, 0, 7, "unexpected end of input");
    ERR_JSON("{\"n\":1e-", TARN_EJSON, 0, 8, "unexpected end of input");
    ERR_JSON("{\"n\":-", TARN_EJSON, 0, 6, "unexpected end of input");
}

TEST(literals)
{
    VALID("{\"a\":true,\"b\":false,\"c\":null,\"d\":[true,false,null]}");
    EJSON_AT("{\"a\":tru}", 8, "invalid literal, expected 'true'");
    EJSON_AT("{\"a\":nul}", 8, "invalid literal, expected 'null'");
    EJSON_AT("{\"a\":fals}", 9, "invalid literal, expected 'false'");
    EJSON_AT("{\"a\":trUe}", 7, "invalid literal, expected 'true'");
    EJSON_AT("{\"a\":nill}", 6, "invalid literal, expected 'null'");
    EJSON_AT("{\"a\":truex}", 9, "expected ',' or '}' after object value");
    EJSON_AT("{\"a\":True}", 5, "expected a value");
    EJSON_AT("{\"a\":undefined}", 5, "expected a value");
    ERR_JSON("{\"a\":tr", TARN_EJSON, 0, 7, "unexpected end of input");
    ERR_JSON("{\"a\":[fals", TARN_EJSON, 0, 10, "unexpected end of input");
}

/* ---- grammar and error positions ---- */

TEST(grammar_errors)
{
    EJSON_AT("{\"a\" 1}", 5, "expected ':' after object key");
    EJSON_AT("{\"a\"}", 4, "expected ':' after object key");
    EJSON_AT("{\"a\":}", 5, "expected a value");
    EJSON_AT("{\"a\":1,}", 7, "expected object key after ','");
    EJSON_AT("{\"a\":1,,}", 7, "expected object key after ','");
    EJSON_AT("{,}", 1, "expected object key or '}'");
    EJSON_AT("{a:1}", 1, "expected object key or '}'");
    EJSON_AT("{'a':1}", 1, "expected object key or '}'");
    EJSON_AT("{1:2}", 1, "expected object key or '}'");
    EJSON_AT("{\"a\":1 \"b\":2}", 7, "expected ',' or '}' after object value");
    EJSON_AT("{\"a\":1]", 6, "expected ',' or '}' after object value");
    EJSON_AT("{\"a\":[1 2]}", 8, "expected ',' or ']' after array value");
    EJSON_AT("{\"a\":[1,]}", 8, "expected a value");
    EJSON_AT("{\"a\":[,1]}", 6, "expected a value");
    EJSON_AT("{\"a\":[1}", 7, "expected ',' or ']' after array value");
    EJSON_AT("{\"a\":{\"b\":1]}", 11, "expected ',' or '}' after object value");
    /* Only space, tab, LF and CR are whitespace. */
    EJSON_AT("{\"a\":\f1}", 5, "expected a value");
    EJSON_AT("{\"a\":\v1}", 5, "expected a value");
    EJSON_AT("{\"a\":\xc2\xa0" "1}", 5, "expected a value");
    EJSON_AT("{\"a\":1/*c*/}", 6, "expected ',' or '}' after object value");
    /* Truncation at every kind of point. */
    ERR_JSON("{", TARN_EJSON, 0, 1, "unexpected end of input");
    ERR_JSON("{\"a", TARN_EJSON, 0, 3, "unexpected end of input");
    ERR_JSON("{\"a\"", TARN_EJSON, 0, 4, "unexpected end of input");
    ERR_JSON("{\"a\":", TARN_EJSON, 0, 5, "unexpected end of input");
    ERR_JSON("{\"a\":\"b", TARN_EJSON, 0, 7, "unexpected end of input");
    ERR_JSON("{\"a\":1,", TARN_EJSON, 0, 7, "unexpected end of input");
    ERR_JSON("{\"a\":[", TARN_EJSON, 0, 6, "unexpected end of input");
    ERR_JSON("{\"a\":[1", TARN_EJSON, 0, 7, "unexpected end of input");
    ERR_JSON("{\"a\":{}", TARN_EJSON, 0, 7, "unexpected end of input");
    ERR_NDJSON("{\"a\":\n1}", TARN_EJSON, 0, 5, "unexpected end of line");
    ERR_NDJSON("{\"a\":1\n}", TARN_EJSON, 0, 6, "unexpected end of line");
    ERR_NDJSON("{\"a\":1", TARN_EJSON, 0, 6, "unexpected end of input");
}

TEST(error_index_and_offset)
{
    /* Third NDJSON line: lines are 8 bytes each, the '3' is at 16 + 5. */
    ERR_NDJSON("{\"a\":1}\n{\"b\":2}\n{\"c\" 3}\n", TARN_EJSON, 2, 21, "expected ':' after object key");
    ERR_NDJSON("{\"a\":1}\r\n\r\n{\"b\":2}\r\n{\"c\":\"\\q\"}\r\n", TARN_EJSON, 2, 26, "invalid escape '\\q'");
    ERR_NDJSON("{}\n\n\n{\"a\":[1,}\n{}", TARN_EJSON, 1, 13, "expected a value");
    ERR_NDJSON("{}\n{}\n{\"a\":1", TARN_EJSON, 2, 12, "unexpected end of input");
    /* JSON array: the element index, the absolute offset. */
    ERR_JSON("[{\"a\":1},{\"b\":2},{\"c\":x}]", TARN_EJSON, 2, 22, "expected a value");
    ERR_JSON("[{}, {}, {\"a\":\"\xc0\xaf\"}]", TARN_EJSON, 2, 15, "invalid UTF-8");
    /* Between records: charged to the record before. */
    ERR_JSON("[{},{} {}]", TARN_EJSON, 1, 7, "expected ',' or ']' after record");
    ERR_JSON("[{},{}", TARN_EJSON, 1, 6, "unexpected end of input");
    /* After a ',': charged to the record that should follow. */
    ERR_JSON("[{},{},", TARN_EJSON, 2, 7, "unexpected end of input");
    ERR_JSON("[{},{},]", TARN_EJSON, 2, 7, "expected '{' to start a record");
    ERR_JSON("[", TARN_EJSON, 0, 1, "unexpected end of input");
    ERR_NDJSON("{}\n{} x\n{}", TARN_EJSON, 1, 6, "unexpected data after the record");
    ERR_NDJSON("{}\n}\n", TARN_EJSON, 1, 3, "expected '{' to start a record");
}

/* ---- records ---- */

TEST(array_non_object_element)
{
    ERR_JSON("[{}, 5, {}]", TARN_EINVAL, 1, 5, "record is not an object");
    ERR_JSON("[{}, \"x\"]", TARN_EINVAL, 1, 5, "record is not an object");
    ERR_JSON("[{},[]]", TARN_EINVAL, 1, 4, "record is not an object");
    ERR_JSON("[{},null]", TARN_EINVAL, 1, 4, "record is not an object");
    ERR_JSON("[[{}]]", TARN_EINVAL, 0, 1, "record is not an object");
    ERR_JSON("[{},x]", TARN_EJSON, 1, 4, "expected '{' to start a record");
    /* A top-level value that is not an object or an array of them. */
    ERR_JSON(" 5", TARN_EINVAL, 0, 1, "record is not an object");
    ERR_JSON("\"x\"", TARN_EINVAL, 0, 0, "record is not an object");
    ERR_JSON("true", TARN_EINVAL, 0, 0, "record is not an object");
    ERR_JSON("x", TARN_EJSON, 0, 0, "expected '{' to start a record");
    ERR_JSON("}", TARN_EJSON, 0, 0, "expected '{' to start a record");
    ERR_NDJSON("5\n", TARN_EINVAL, 0, 0, "record is not an object");
    ERR_NDJSON("{}\n\"s\"\n", TARN_EINVAL, 1, 3, "record is not an object");
}

TEST(trailing_garbage)
{
    ERR_JSON("{} x", TARN_EJSON, 0, 3, "unexpected data after the record");
    ERR_JSON("{}}", TARN_EJSON, 0, 2, "unexpected data after the record");
    ERR_JSON("{}\n{}", TARN_EJSON, 0, 3, "unexpected data after the record"); /* NDJSON sent as JSON */
    ERR_JSON("{},{}", TARN_EJSON, 0, 2, "unexpected data after the record");
    ERR_JSON("[{}] x", TARN_EJSON, 0, 5, "unexpected data after the array");
    ERR_JSON("[{},{}]]", TARN_EJSON, 1, 7, "unexpected data after the array");
    ERR_JSON("[{}][{}]", TARN_EJSON, 0, 4, "unexpected data after the array");
    ERR_NDJSON("{}{}", TARN_EJSON, 0, 2, "unexpected data after the record");
    ERR_NDJSON("{\"a\":1} ,\n", TARN_EJSON, 0, 8, "unexpected data after the record");
    CHECK_EQ_INT(COUNT_JSON("{} \r\n\t "), 1);
    CHECK_EQ_INT(COUNT_JSON("[{}]\n"), 1);
    CHECK_EQ_INT(COUNT_NDJSON("{} \t\r\n"), 1);
}

TEST(empty_and_whitespace_bodies)
{
    ERR_JSON("", TARN_EINVAL, 0, 0, "no records");
    ERR_NDJSON("", TARN_EINVAL, 0, 0, "no records");
    ERR_JSON(" \n\t\r ", TARN_EINVAL, 0, 5, "no records");
    ERR_NDJSON(" \n\t\r \n\n", TARN_EINVAL, 0, 7, "no records");
    ERR_JSON("[]", TARN_EINVAL, 0, 1, "no records");
    ERR_JSON(" [ \n ] ", TARN_EINVAL, 0, 5, "no records");
    /* NULL body of length 0, and no error struct: both accepted. */
    tarn_json_span *sp = (tarn_json_span *)1;
    size_t n = 7;
    CHECK_EQ_INT(tarn_json_split(NULL, 0, TARN_BODY_JSON, NULL, &sp, &n, NULL), TARN_EINVAL);
    CHECK(sp == NULL && n == 0);
    CHECK_EQ_INT(tarn_json_split("{x", 2, TARN_BODY_NDJSON, NULL, &sp, &n, NULL), TARN_EJSON);
    /* len is honoured: the bytes after it are not part of the body. */
    tarn_json_error e;
    CHECK_EQ_INT(tarn_json_split("{}garbage", 2, TARN_BODY_JSON, NULL, &sp, &n, &e), 0);
    CHECK_EQ_INT(n, 1);
    free(sp);
}

/* A record {"a":{"a":...{}...}} of depth d. */
static char *nested_objects(size_t d)
{
    char *b = malloc(d * 6 + 1), *p = b;
    for (size_t i = 1; i < d; i++) p += sprintf(p, "{\"a\":");
    *p++ = '{';
    for (size_t i = 0; i < d; i++) *p++ = '}';
    *p = '\0';
    return b;
}

/* {"a":[[...[]...]]}: the record plus d - 1 arrays. */
static char *nested_arrays(size_t d)
{
    char *b = malloc(2 * d + 8), *p = b;
    p += sprintf(p, "{\"a\":");
    for (size_t i = 1; i < d; i++) *p++ = '[';
    for (size_t i = 1; i < d; i++) *p++ = ']';
    *p++ = '}';
    *p = '\0';
    return b;
}

TEST(depth_limit)
{
    char *b = nested_objects(64);
    VALID(b);
    free(b);
    b = nested_objects(65);
    ERR_BOTH(b, TARN_EDEPTH, 64 * 5, "nesting deeper than 64"); /* the 65th '{' */
    free(b);
    b = nested_arrays(64);
    VALID(b);
    free(b);
    b = nested_arrays(65);
    ERR_BOTH(b, TARN_EDEPTH, 5 + 63, "nesting deeper than 64");
    free(b);
    /* The outer array of a JSON body does not count. */
    b = nested_objects(64);
    char *arr = malloc(2 * strlen(b) + 8);
    REQUIRE(arr);
    sprintf(arr, "[%s,%s]", b, b);
    CHECK_EQ_INT(COUNT_JSON(arr), 2);
    free(arr);
    free(b);
    /* Mixed objects and arrays, at the limit then over it in the second record. */
    tarn_json_limits lim = {.max_depth = 3};
    expect_err_l(__LINE__, TARN_BODY_NDJSON, "{\"a\":[{}]}\n{\"a\":[{\"b\":[1]}]}\n", SIZE_MAX, &lim, TARN_EDEPTH, 1,
                 22, "nesting deeper than 3");
    lim.max_depth = 1;
    expect_err_l(__LINE__, TARN_BODY_JSON, "[{\"a\":1},{\"a\":[]}]", SIZE_MAX, &lim, TARN_EDEPTH, 1, 14,
                 "nesting deeper than 1");
}

TEST(depth_limit_above_inline_stack)
{
    /* Limits above what the parser tracks without allocating. */
    tarn_json_limits lim = {.max_depth = 1000};
    tarn_json_span *sp;
    size_t n;
    tarn_json_error e;
    char *b = nested_arrays(1000);
    CHECK_EQ_INT(split_n(b, SIZE_MAX, TARN_BODY_JSON, &lim, &sp, &n, &e), 0);
    free(sp);
    free(b);
    b = nested_objects(1001);
    expect_err_l(__LINE__, TARN_BODY_JSON, b, SIZE_MAX, &lim, TARN_EDEPTH, 0, 1000 * 5, "nesting deeper than 1000");
    free(b);
    /* Objects and arrays alternating past several stack growths: the kind
     * bits must survive each one. */
    lim.max_depth = 100000;
    size_t d = 50000;
    b = malloc(d * 8 + 16);
    char *p = b;
    for (size_t i = 0; i < d; i++) p += sprintf(p, i % 2 ? "[" : "{\"k\":");
    p += sprintf(p, "1");
    for (size_t i = d; i-- > 0;) *p++ = i % 2 ? ']' : '}';
    *p = '\0';
    CHECK_EQ_INT(split_n(b, SIZE_MAX, TARN_BODY_NDJSON, &lim, &sp, &n, &e), 0);
    free(sp);
    free(b);
}

TEST(deep_brackets_1mb)
{
    size_t len = 1 << 20;
    char *b = malloc(len + 8);
    REQUIRE(b);
    /* A 1 MB run of '[' after a key: stopped at the 65th level. */
    memcpy(b, "{\"a\":", 5);
    memset(b + 5, '[', len);
    b[len + 5] = '\0';
    ERR_BOTH(b, TARN_EDEPTH, 5 + 63, "nesting deeper than 64");
    /* With no depth limit to speak of, it is just truncated input. */
    tarn_json_limits lim = {.max_depth = SIZE_MAX};
    expect_err_l(__LINE__, TARN_BODY_JSON, b, SIZE_MAX, &lim, TARN_EJSON, 0, len + 5, "unexpected end of input");
    /* Bare brackets: the first element is not an object. */
    memset(b, '[', len);
    b[len] = '\0';
    ERR_JSON(b, TARN_EINVAL, 0, 1, "record is not an object");
    ERR_NDJSON(b, TARN_EINVAL, 0, 0, "record is not an object");
    /* Objects all the way down. */
    for (size_t i = 0; i + 5 <= len; i += 5) memcpy(b + i, "{\"a\":", 5);
    b[len - len % 5] = '\0';
    ERR_BOTH(b, TARN_EDEPTH, 64 * 5, "nesting deeper than 64");
    free(b);
}

/* A record {"a":"xxx"} of exactly len bytes (len >= 8). */
static char *record_of(size_t len)
{
    char *b = malloc(len + 1);
    memcpy(b, "{\"a\":\"", 6);
    memset(b + 6, 'x', len - 8);
    memcpy(b + len - 2, "\"}", 3);
    return b;
}

TEST(record_size_limit)
{
    char *b = record_of(1 << 20);
    VALID(b);
    free(b);
    b = record_of((1 << 20) + 1);
    ERR_BOTH(b, TARN_ETOOBIG, 0, "record of 1048577 bytes exceeds the 1048576-byte limit");
    free(b);

    tarn_json_limits lim = {.max_record = 100};
    char body[512];
    b = record_of(100);
    snprintf(body, sizeof body, "{}\n%s\n{}", b);
    tarn_json_span *sp;
    size_t n;
    tarn_json_error e;
    CHECK_EQ_INT(split_n(body, SIZE_MAX, TARN_BODY_NDJSON, &lim, &sp, &n, &e), 0);
    CHECK_EQ_INT(n, 3);
    CHECK(n == 3 && sp[1].offset == 3 && sp[1].len == 100);
    free(sp);
    free(b);
    b = record_of(101);
    snprintf(body, sizeof body, "{}\n%s\n{}", b);
    expect_err_l(__LINE__, TARN_BODY_NDJSON, body, SIZE_MAX, &lim, TARN_ETOOBIG, 1, 3,
                 "record of 101 bytes exceeds the 100-byte limit");
    snprintf(body, sizeof body, "[{}, %s]", b);
    expect_err_l(__LINE__, TARN_BODY_JSON, body, SIZE_MAX, &lim, TARN_ETOOBIG, 1, 5,
                 "record of 101 bytes exceeds the 100-byte limit");
    free(b);
}

TEST(max_records)
{
    tarn_json_limits lim = {.max_records = 3};
    tarn_json_span *sp;
    size_t n;
    tarn_json_error e;
    CHECK_EQ_INT(split_n("{}\n{}\n{}\n", SIZE_MAX, TARN_BODY_NDJSON, &lim, &sp, &n, &e), 0);
    CHECK_EQ_INT(n, 3);
    free(sp);
    CHECK_EQ_INT(split_n("[{},{},{}]", SIZE_MAX, TARN_BODY_JSON, &lim, &sp, &n, &e), 0);
    CHECK_EQ_INT(n, 3);
    free(sp);
    expect_err_l(__LINE__, TARN_BODY_NDJSON, "{}\n{}\n{}\n{}\n", SIZE_MAX, &lim, TARN_ETOOBIG, 3, 9,
                 "more than 3 records");
    expect_err_l(__LINE__, TARN_BODY_JSON, "[{},{},{},{}]", SIZE_MAX, &lim, TARN_ETOOBIG, 3, 10, "more than 3 records");

    /* The default: 10,000 records pass, 10,001 do not. Also exercises
     * growing the span array. */
    size_t cnt = 10001;
    char *b = malloc(cnt * 3 + 1);
    for (size_t i = 0; i < cnt; i++) memcpy(b + i * 3, "{}\n", 3);
    b[cnt * 3] = '\0';
    CHECK_EQ_INT(split_n(b, (cnt - 1) * 3, TARN_BODY_NDJSON, NULL, &sp, &n, &e), 0);
    CHECK_EQ_INT(n, 10000);
    if (n == 10000) CHECK(sp[9999].offset == 9999 * 3 && sp[9999].len == 2);
    free(sp);
    ERR_NDJSON(b, TARN_ETOOBIG, 10000, 30000, "more than 10000 records");
    free(b);
}

TEST(reserved_keys)
{
    ERR_BOTH("{\"_seq\":1}", TARN_EINVAL, 1, "key \"_seq\" is reserved");
    ERR_BOTH("{\"a\":1,\"_ingested_at\":2}", TARN_EINVAL, 7, "key \"_ingested_at\" is reserved");
    ERR_BOTH("{\"ingestion_date\":\"2024-01-01\"}", TARN_EINVAL, 1, "key \"ingestion_date\" is reserved");
    ERR_BOTH("{\"_SEQ\":1}", TARN_EINVAL, 1, "key \"_SEQ\" is reserved");
    ERR_BOTH("{\"Ingestion_Date\":1}", TARN_EINVAL, 1, "key \"Ingestion_Date\" is reserved");
    /* Escaped forms are the same column. */
    ERR_BOTH("{\"_s\\u0065q\":1}", TARN_EINVAL, 1, "key \"_seq\" is reserved");
    ERR_BOTH("{\"\\u005fseq\":1}", TARN_EINVAL, 1, "key \"_seq\" is reserved");
    ERR_BOTH("{\"_se\\u0051\":1}", TARN_EINVAL, 1, "key \"_seQ\" is reserved");
    ERR_BOTH("{\"\\u0069ngestion_date\":1}", TARN_EINVAL, 1, "key \"ingestion_date\" is reserved");
    ERR_BOTH("{\"_ingested\\u005fat\":1}", TARN_EINVAL, 1, "key \"_ingested_at\" is reserved");
    ERR_JSON("[{\"a\":1},{\"b\":{},\"_seq\":2}]", TARN_EINVAL, 1, 17, "key \"_seq\" is reserved");
    /* Not reserved: nested, as a value, near misses. */
    VALID("{\"a\":{\"_seq\":1},\"b\":[{\"ingestion_date\":1}],\"c\":\"_seq\"}");
    VALID("{\"_seqx\":1,\"_se\":2,\"seq\":3,\"_s\\u00e9q\":4,\"_seq \":5,\"\\n_seq\":6,"
          "\"ingestion_dat\":7}");
    VALID("{\"_s\\u0065q\\u0000\":1,\"_\\ud83d\\ude00\":2,\"iiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiii\":3}");
    /* Fifteen escaped underscores: longer than any reserved name. */
    VALID("{\"\\u005f\\u005f\\u005f\\u005f\\u005f\\u005f\\u005f\\u005f"
          "\\u005f\\u005f\\u005f\\u005f\\u005f\\u005f\\u005f\":1}");

    CHECK(tarn_json_reserved("_seq", 4));
    CHECK(tarn_json_reserved("_Seq", 4));
    CHECK(tarn_json_reserved("_ingested_at", 12));
    CHECK(tarn_json_reserved("INGESTION_DATE", 14));
    CHECK(!tarn_json_reserved("_seq", 3));
    CHECK(!tarn_json_reserved("_seqs", 5));
    CHECK(!tarn_json_reserved("_ingested_atx", 13));
    CHECK(!tarn_json_reserved("seq_", 4));
    CHECK(!tarn_json_reserved("", 0));
}

/* ---- throughput ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

TEST(throughput)
{
    /* Records shaped like typical telemetry: short keys, ids, timestamps,
     * numbers, a nested object and array, some escapes and non-ASCII. */
    size_t target = 50u << 20;
    tarn_json_limits lim = {.max_records = SIZE_MAX};
    char *b = malloc(target + 1024);
    REQUIRE(b);
    size_t len = 0, recs = 0;
    uint32_t x = 12345;
    while (len < target) {
        x = x * 1103515245u + 12345u;
        len += (size_t)sprintf(b + len,
                               "{\"device_id\":\"dev-%05u\",\"ts\":\"2026-11-22T06:%02u:%02u.%03uZ\","
                               "\"temperature\":%u.%02u,\"humidity\":%u,\"ok\":%s,"
                               "\"tags\":[\"north\",\"roof\",\"caf\xc3\xa9\"],"
                               "\"pos\":{\"lat\":52.%06u,\"lon\":-4.%06u},"
                               "\"note\":\"line \\\"%u\\\"\\n\",\"err\":null}\n",
                               x % 100000, x % 60, (x >> 8) % 60, x % 1000, x % 40, (x >> 4) % 100, x % 101,
                               x & 1 ? "true" : "false", x % 1000000, (x >> 3) % 1000000, x % 7);
        recs++;
    }
    tarn_json_span *sp;
    size_t n;
    tarn_json_error e;
    double best = 1e9;
    for (int run = 0; run < 3; run++) {
        double t0 = now_s();
        int rc = tarn_json_split(b, len, TARN_BODY_NDJSON, &lim, &sp, &n, &e);
        double t = now_s() - t0;
        CHECK_EQ_INT(rc, 0);
        if (rc) {
            printf("  %s at %zu\n", e.msg, e.offset);
            break;
        }
        CHECK_EQ_INT(n, recs);
        free(sp);
        if (t < best) best = t;
    }
    printf("  NDJSON: %zu records, %.1f MB in %.3f s: %.0f MB/s\n", recs, (double)len / 1e6, best,
           (double)len / 1e6 / best);

    /* The same records as one JSON array (newlines become commas). */
    memmove(b + 1, b, len);
    b[0] = '[';
    for (size_t i = 1; i < len; i++)
        if (b[i] == '\n') b[i] = ',';
    b[len] = ']';
    double t0 = now_s();
    int rc = tarn_json_split(b, len + 1, TARN_BODY_JSON, &lim, &sp, &n, &e);
    double t = now_s() - t0;
    CHECK_EQ_INT(rc, 0);
    if (!rc) {
        CHECK_EQ_INT(n, recs);
        free(sp);
        printf("  JSON array: %.0f MB/s\n", (double)len / 1e6 / t);
    }
    free(b);
}

int main(void)
{
    RUN(single_object);
    RUN(array_of_objects);
    RUN(ndjson_blank_lines_crlf);
    RUN(nested_values);
    RUN(escapes);
    RUN(control_characters);
    RUN(utf8_valid);
    RUN(utf8_invalid);
    RUN(string_block_boundaries);
    RUN(numbers);
    RUN(literals);
    RUN(grammar_errors);
    RUN(error_index_and_offset);
    RUN(array_non_object_element);
    RUN(trailing_garbage);
    RUN(empty_and_whitespace_bodies);
    RUN(depth_limit);
    RUN(depth_limit_above_inline_stack);
    RUN(deep_brackets_1mb);
    RUN(record_size_limit);
    RUN(max_records);
    RUN(reserved_keys);
    RUN(throughput);
    return test_main_end();
}
