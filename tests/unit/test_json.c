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
    VALID("{\"a\":\"\",\"b\":[\"\"]}"); /* empty strings are fine as values (keys: see empty_key) */
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

/* ---- key names: DuckDB needs them non-empty and unique ignoring case ---- */

TEST(empty_key)
{
    ERR_BOTH("{\"\":1}", TARN_EINVAL, 1, "object key is empty");
    ERR_BOTH("{\"\":\"\"}", TARN_EINVAL, 1, "object key is empty");
    ERR_BOTH("{ \"\" : 1}", TARN_EINVAL, 2, "object key is empty");
    /* The same with room after it, so the key is read a block at a time. */
    ERR_BOTH("{\"\":1}                                ", TARN_EINVAL, 1, "object key is empty");
    /* offsets:  0 1234567 8 9 */
    ERR_BOTH("{\"a\":1,\"\":2}", TARN_EINVAL, 7, "object key is empty");
    ERR_BOTH("{\"a\":{\"b\":{\"\":1}}}", TARN_EINVAL, 11, "object key is empty");
    ERR_BOTH("{\"a\":[1,{\"\":2}]}", TARN_EINVAL, 9, "object key is empty");
    /* Before a later syntax error: the key is the first thing wrong. */
    ERR_BOTH("{\"\":x}", TARN_EINVAL, 1, "object key is empty");
    ERR_JSON("[{\"a\":1},{\"\":2}]", TARN_EINVAL, 1, 10, "object key is empty");
    ERR_NDJSON("{\"a\":1}\n{\"b\":{\"\":1}}\n", TARN_EINVAL, 1, 14, "object key is empty");
    /* A key of one escaped character is not empty. */
    VALID("{\"\\n\":1,\"\\u0020\":2}");
}

TEST(duplicate_keys)
{
    /* offsets:  0 123 45678 9 */
    ERR_BOTH("{\"a\":1,\"a\":2}", TARN_EINVAL, 7, "duplicate key \"a\"");
    ERR_BOTH("{\"name\":1,\"Name\":2}", TARN_EINVAL, 10, "duplicate key \"Name\" (keys differ only in case from \"name\")");
    ERR_BOTH("{\"NAME\":1,\"nAmE\":2}", TARN_EINVAL, 10, "duplicate key \"nAmE\" (keys differ only in case from \"NAME\")");
    ERR_BOTH("{\"a\":1,\"b\":2,\"A\":3}", TARN_EINVAL, 13, "duplicate key \"A\" (keys differ only in case from \"a\")");
    ERR_BOTH("{\"a\":{\"b\":1},\"a\":2}", TARN_EINVAL, 13, "duplicate key \"a\"");
    /* Before a later syntax error. */
    ERR_BOTH("{\"a\":1,\"a\":x}", TARN_EINVAL, 7, "duplicate key \"a\"");
    /* Nested, in arrays, and after a nested object closed. */
    ERR_BOTH("{\"x\":{\"k\":1,\"K\":2}}", TARN_EINVAL, 12, "duplicate key \"K\" (keys differ only in case from \"k\")");
    ERR_BOTH("{\"x\":[{\"a\":1},{\"b\":1,\"b\":2}]}", TARN_EINVAL, 21, "duplicate key \"b\"");
    ERR_BOTH("{\"a\":{\"c\":1},\"b\":2,\"A\":3}", TARN_EINVAL, 19,
             "duplicate key \"A\" (keys differ only in case from \"a\")");
    ERR_BOTH("{\"a\":[[{\"b\":{\"c\":[{\"d\":1,\"e\":2,\"D\":3}]}}]]}", TARN_EINVAL, 31,
             "duplicate key \"D\" (keys differ only in case from \"d\")");
    /* The record's index, the body's offset. */
    ERR_JSON("[{\"a\":1},{\"b\":1,\"B\":2}]", TARN_EINVAL, 1, 16,
             "duplicate key \"B\" (keys differ only in case from \"b\")");
    ERR_NDJSON("{\"a\":1}\n{\"a\":1,\"A\":2}\n", TARN_EINVAL, 1, 15,
               "duplicate key \"A\" (keys differ only in case from \"a\")");
    /* A reserved key is reported as such, first. */
    ERR_BOTH("{\"_seq\":1,\"_SEQ\":2}", TARN_EINVAL, 1, "key \"_seq\" is reserved");
    ERR_BOTH("{\"a\":1,\"A\":2,\"_seq\":3}", TARN_EINVAL, 7, "duplicate key \"A\" (keys differ only in case from \"a\")");

    /* Each object has its own names: parent and child, siblings, records. */
    VALID("{\"a\":{\"a\":{\"a\":1}},\"b\":[{\"a\":1},{\"a\":2},{\"A\":3}],\"c\":{\"A\":1,\"C\":2},\"d\":{\"D\":1}}");
    VALID("{\"id\":1,\"child\":{\"id\":2,\"Child\":3},\"ID_\":4}");
    CHECK_EQ_INT(COUNT_JSON("[{\"a\":1},{\"a\":2},{\"A\":3}]"), 3);
    CHECK_EQ_INT(COUNT_NDJSON("{\"a\":1}\n{\"a\":2}\n{\"A\":3}\n"), 3);
    /* Only ASCII letters fold: not '@' and '`', '[' and '{', '_' and DEL... */
    VALID("{\"a@\":1,\"a`\":2,\"[\":3,\"{\":4,\"]\":5,\"}\":6,\"^\":7,\"~\":8,\"_\":9,\"\x7f\":10,\"\\\\\":11,\"|\":12}");
    /* ...nor anything beyond ASCII: e-acute and E-acute are two names. */
    VALID("{\"\xc3\xa9\":1,\"\xc3\x89\":2,\"\\u00e9t\\u00e9\":3,\"\\u00c9t\\u00c9\":4}");
    /* Prefixes and lengths. */
    VALID("{\"a\":1,\"aa\":2,\"aaa\":3,\"A_\":4,\"a \":5,\" a\":6}");
}

TEST(duplicate_keys_escaped)
{
    /* Names compare after unescaping. */
    ERR_BOTH("{\"name\":1,\"n\\u0061me\":2}", TARN_EINVAL, 10, "duplicate key \"name\"");
    ERR_BOTH("{\"n\\u0041me\":1,\"name\":2}", TARN_EINVAL, 15, "duplicate key \"name\" (keys differ only in case from \"nAme\")");
    ERR_BOTH("{\"abc\":1,\"\\u0041BC\":2}", TARN_EINVAL, 9, "duplicate key \"ABC\" (keys differ only in case from \"abc\")");
    ERR_BOTH("{\"a/b\":1,\"a\\/b\":2}", TARN_EINVAL, 9, "duplicate key \"a/b\"");
    ERR_BOTH("{\"\\u00e9t\\u00e9\":1,\"\xc3\xa9t\xc3\xa9\":2}", TARN_EINVAL, 19, "duplicate key \"\xc3\xa9t\xc3\xa9\"");
    ERR_BOTH("{\"\\ud83d\\ude00\":1,\"\xf0\x9f\x98\x80\":2}", TARN_EINVAL, 18, "duplicate key \"\xf0\x9f\x98\x80\"");
    /* Shown as JSON would write them: quote, backslash and controls escaped. */
    ERR_BOTH("{\"a\\nb\":1,\"a\\u000Ab\":2}", TARN_EINVAL, 10, "duplicate key \"a\\u000ab\"");
    ERR_BOTH("{\"q\\\"\":1,\"Q\\u0022\":2}", TARN_EINVAL, 9, "duplicate key \"Q\\\"\" (keys differ only in case from \"q\\\"\")");
    ERR_BOTH("{\"\\\\\":1,\"\\u005C\":2}", TARN_EINVAL, 8, "duplicate key \"\\\\\"");
    ERR_BOTH("{\"\\u0000\":1,\"\\u0000\":2}", TARN_EINVAL, 12, "duplicate key \"\\u0000\"");
    /* Longer than one block, escaped at the end. */
    ERR_BOTH("{\"abcdefghijklmnopqrstuvwxyz\":1,\"ABCDEFGHIJKLMNOPQRSTUVWXY\\u005A\":2}", TARN_EINVAL, 32,
             "duplicate key \"ABCDEFGHIJKLMNOPQRSTUVWXYZ\" (keys differ only in case from \"abcdefghijklmnopqrstuvwxyz\")");
    VALID("{\"a\\u0000\":1,\"a\":2,\"\\n\":3,\"\\r\":4,\"\\t\":5,\"\\b\":6,\"\\f\":7,\"\\/\":8,\"\\\\\":9,\"\\\"\":10,"
          "\"\\u00e9\":11,\"\\u00c9\":12,\"\\ud83d\\ude00\":13,\"\\ud83d\\ude01\":14}");
}

/* {"<a>":1,"<b>":2} followed by pad spaces, in buf. */
static const char *two_keys(char *buf, const char *a, const char *b, size_t pad)
{
    int k = sprintf(buf, "{\"%s\":1,\"%s\":2}", a, b);
    memset(buf + k, ' ', pad);
    buf[k + (int)pad] = '\0';
    return buf;
}

TEST(duplicate_keys_every_length)
{
    /* Keys of 1 to 40 bytes (around the 8- and 16-byte steps of the hash),
     * at the end of the body and with room after them: a duplicate that
     * differs in the case of one letter is caught wherever the letter is,
     * and a key that differs in one letter is not a duplicate. */
    char a[64], b[64], body[256], msg[200];
    for (size_t len = 1; len <= 40; len++) {
        for (size_t i = 0; i < len; i++) a[i] = (char)('a' + (i * 7) % 26);
        a[len] = '\0';
        for (size_t pos = 0; pos < len; pos++) {
            for (size_t pad = 0; pad <= 32; pad += 32) {
                memcpy(b, a, len + 1);
                b[pos] = (char)(b[pos] - 32);
                snprintf(msg, sizeof msg, "duplicate key \"%s\" (keys differ only in case from \"%s\")", b, a);
                ERR_BOTH(two_keys(body, a, b, pad), TARN_EINVAL, len + 6, msg);
                b[pos] = b[pos] == 'Z' ? 'a' : (char)(b[pos] + 32 + 1);
                VALID(two_keys(body, a, b, pad));
            }
        }
        snprintf(msg, sizeof msg, "duplicate key \"%s\"", a);
        ERR_BOTH(two_keys(body, a, a, 0), TARN_EINVAL, len + 6, msg);
    }
}

TEST(duplicate_key_message_limits)
{
    /* At most 48 bytes of a name, cut between characters, then "...". */
    char a[256], b[256], body[600], msg[200];
    memset(a, 'x', 60);
    a[60] = '\0';
    ERR_BOTH(two_keys(body, a, a, 0), TARN_EINVAL, 66,
             "duplicate key \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...\"");
    memset(b, 'X', 60);
    b[60] = '\0';
    ERR_BOTH(two_keys(body, a, b, 0), TARN_EINVAL, 66,
             "duplicate key \"XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX...\" (keys differ only in case from "
             "\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...\")");
    /* "a" then 30 e-acutes: 1 + 23 * 2 bytes fit, the 24th does not. */
    strcpy(a, "a");
    for (int i = 0; i < 30; i++) strcat(a, "\xc3\xa9");
    strcpy(msg, "duplicate key \"a");
    for (int i = 0; i < 23; i++) strcat(msg, "\xc3\xa9");
    strcat(msg, "...\"");
    ERR_BOTH(two_keys(body, a, a, 0), TARN_EINVAL, strlen(a) + 6, msg);
    /* Escaped controls count as shown: 8 of "\u000a" fit in 48 bytes. */
    strcpy(a, "");
    for (int i = 0; i < 20; i++) strcat(a, "\\n");
    ERR_BOTH(two_keys(body, a, a, 0), TARN_EINVAL, strlen(a) + 6,
             "duplicate key \"\\u000a\\u000a\\u000a\\u000a\\u000a\\u000a\\u000a\\u000a...\"");
}

/* A record with n keys "k0".."k<n-1>" after pre (other members and a ','),
 * then tail: malloc'd. */
static char *many_keys(const char *pre, size_t n, const char *tail)
{
    char *b = malloc(strlen(pre) + n * 16 + strlen(tail) + 8), *p = b;
    p += sprintf(p, "{%s", pre);
    for (size_t i = 0; i < n; i++) p += sprintf(p, "%s\"k%zu\":%zu", i ? "," : "", i, i);
    strcpy(p, tail);
    return b;
}

TEST(duplicate_keys_many)
{
    /* 50,000 names in one object pass; the same with one more that repeats
     * one of them fail, at that key. */
    char *b = many_keys("", 50000, "}");
    VALID(b);
    free(b);
    /* The offset of the last key: the ',' before it is the tail's first byte. */
#define LAST_KEY(b, tail) (strlen(b) - strlen(tail) + 1)
    b = many_keys("", 50000, ",\"K123\":1}");
    ERR_BOTH(b, TARN_EINVAL, LAST_KEY(b, ",\"K123\":1}"), "duplicate key \"K123\" (keys differ only in case from \"k123\")");
    free(b);
    b = many_keys("", 50000, ",\"k49999\":1}");
    ERR_BOTH(b, TARN_EINVAL, LAST_KEY(b, ",\"k49999\":1}"), "duplicate key \"k49999\"");
    free(b);
    b = many_keys("", 50000, ",\"k\\u0030\":1}");
    ERR_BOTH(b, TARN_EINVAL, LAST_KEY(b, ",\"k\\u0030\":1}"), "duplicate key \"k0\"");
    free(b);

    /* Around the switch from scanning to the hash table (64 keys), and the
     * table's growth: the repeat of the first, of the last, and none. */
    static const size_t sizes[] = {1, 2, 15, 16, 17, 63, 64, 65, 66, 127, 128, 129, 130, 131, 257, 1000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        char tail[64], msg[100];
        b = many_keys("", n, "}");
        VALID(b);
        free(b);
        b = many_keys("", n, ",\"K0\":0}");
        ERR_BOTH(b, TARN_EINVAL, LAST_KEY(b, ",\"K0\":0}"), "duplicate key \"K0\" (keys differ only in case from \"k0\")");
        free(b);
        snprintf(tail, sizeof tail, ",\"k%zu\":0}", n - 1);
        snprintf(msg, sizeof msg, "duplicate key \"k%zu\"", n - 1);
        b = many_keys("", n, tail);
        ERR_BOTH(b, TARN_EINVAL, LAST_KEY(b, tail), msg);
        free(b);
    }

    /* Big objects inside big objects: each has its own names, and the outer
     * one still knows its names after the inner one closes. */
    tarn_json_limits lim = {.max_record = 64 << 20};
    size_t n = 3000;
    char *inner = many_keys("", n, "}");
    char *pre = malloc(strlen(inner) * 3 + 64);
    sprintf(pre, "\"x\":%s,\"y\":[%s,%s],", inner, inner, inner);
    b = many_keys(pre, n, ",\"z\":1}");
    tarn_json_span *sp;
    size_t cnt;
    tarn_json_error e;
    CHECK_EQ_INT(split_n(b, SIZE_MAX, TARN_BODY_NDJSON, &lim, &sp, &cnt, &e), 0);
    if (cnt == 1) free(sp);
    free(b);
    b = many_keys(pre, n, ",\"Y\":1}");
    expect_err_l(__LINE__, TARN_BODY_JSON, b, SIZE_MAX, &lim, TARN_EINVAL, 0, LAST_KEY(b, ",\"Y\":1}"),
                 "duplicate key \"Y\" (keys differ only in case from \"y\")");
    free(b);
    /* The repeat inside the second inner object. */
    sprintf(pre, "\"x\":%s,\"y\":[%s,", inner, inner);
    size_t at2 = strlen(pre) + 1 + strlen(inner) - 1;
    strcpy(pre + strlen(pre), inner);
    strcpy(pre + strlen(pre) - 1, ",\"k2999\":1}],");
    b = many_keys(pre, 10, "}");
    expect_err_l(__LINE__, TARN_BODY_JSON, b, SIZE_MAX, &lim, TARN_EINVAL, 0, at2 + 1, "duplicate key \"k2999\"");
    free(b);
    free(pre);
    free(inner);

    /* 100,000 names (the most a 1 MiB record holds is about 200,000). */
    lim.max_record = 4 << 20;
    b = many_keys("", 100000, ",\"K99999\":1}");
    expect_err_l(__LINE__, TARN_BODY_NDJSON, b, SIZE_MAX, &lim, TARN_EINVAL, 0, LAST_KEY(b, ",\"K99999\":1}"),
                 "duplicate key \"K99999\" (keys differ only in case from \"k99999\")");
    free(b);
#undef LAST_KEY
}

TEST(duplicate_keys_deep)
{
    /* Past the open objects tracked without allocating. */
    tarn_json_limits lim = {.max_depth = 1000};
    size_t d = 500;
    char *b = malloc(d * 8 + 64), *p = b;
    for (size_t i = 0; i < d; i++) p += sprintf(p, "{\"k\":");
    p += sprintf(p, "{\"a\":1,\"A\":2}");
    size_t at = (size_t)(p - b) - 6;
    for (size_t i = 0; i < d; i++) *p++ = '}';
    *p = '\0';
    expect_err_l(__LINE__, TARN_BODY_JSON, b, SIZE_MAX, &lim, TARN_EINVAL, 0, at,
                 "duplicate key \"A\" (keys differ only in case from \"a\")");
    /* Back out through all of them: the outer object's names are intact. */
    p = b;
    p += sprintf(p, "{\"x\":1,");
    for (size_t i = 0; i < d; i++) p += sprintf(p, "\"k\":{");
    for (size_t i = 0; i < d; i++) p += sprintf(p, "%s}", i ? "" : "\"x\":1");
    at = (size_t)(p - b) + 1;
    p += sprintf(p, ",\"X\":2}");
    expect_err_l(__LINE__, TARN_BODY_NDJSON, b, SIZE_MAX, &lim, TARN_EINVAL, 0, at,
                 "duplicate key \"X\" (keys differ only in case from \"x\")");
    free(b);
}

TEST(duplicate_keys_and_record_limit)
{
    /* A repeat within the limit is reported even if the record then turns
     * out too large; a record too large fails either way. */
    tarn_json_limits lim = {.max_record = 40};
    expect_err_l(__LINE__, TARN_BODY_JSON, "{\"a\":1,\"A\":2,\"b\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}", SIZE_MAX,
                 &lim, TARN_EINVAL, 0, 7, "duplicate key \"A\" (keys differ only in case from \"a\")");
    expect_err_l(__LINE__, TARN_BODY_JSON, "{\"a\":1,\"b\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}", SIZE_MAX, &lim,
                 TARN_ETOOBIG, 0, 0, "record of 54 bytes exceeds the 40-byte limit");
    tarn_json_span *sp;
    size_t n;
    tarn_json_error e;
    CHECK(split_n("{\"a\":1,\"b\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\",\"A\":1}", SIZE_MAX, TARN_BODY_JSON, &lim, &sp,
                  &n, &e) != 0);
    /* Many keys past the limit: not tracked, so the memory stays bounded,
     * and the record fails as too large. */
    lim.max_record = 1000;
    char *b = many_keys("", 20000, ",\"k1\":1}");
    int rc = split_n(b, SIZE_MAX, TARN_BODY_NDJSON, &lim, &sp, &n, &e);
    CHECK_EQ_INT(rc, TARN_ETOOBIG);
    CHECK_EQ_INT(e.offset, 0);
    free(b);
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
    char *b = malloc(target + 4096); /* room for the record that passes target */
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

    /* Wider records: 40 keys, a nested object of 12, an array of two
     * objects of 5 (key checks cost per key, so this is their worst
     * typical case). */
    static const char *const names[] = {"id", "userId", "session_id", "event", "ts", "country", "city", "lat",
                                        "lon", "os", "browser", "version"};
    len = recs = 0;
    while (len < target) {
        b[len++] = '{';
        for (int i = 0; i < 40; i++) {
            x = x * 1103515245u + 12345u;
            len += (size_t)sprintf(b + len, i % 3 == 0   ? "\"%s_%d\":\"v-%u\","
                                            : i % 3 == 1 ? "\"%s_%d\":%u.5,"
                                                         : "\"%s_%d\":%u,",
                                   names[i % 12], i, x % 100000);
        }
        len += (size_t)sprintf(b + len, "\"nested\":{");
        for (int i = 0; i < 12; i++) len += (size_t)sprintf(b + len, "%s\"%s\":%d", i ? "," : "", names[i], i);
        len += (size_t)sprintf(b + len, "},\"items\":[{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5},"
                                        "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5}]}\n");
        recs++;
    }
    best = 1e9;
    for (int run = 0; run < 3; run++) {
        double t1 = now_s();
        rc = tarn_json_split(b, len, TARN_BODY_NDJSON, &lim, &sp, &n, &e);
        double t2 = now_s() - t1;
        CHECK_EQ_INT(rc, 0);
        if (rc) {
            printf("  %s at %zu\n", e.msg, e.offset);
            break;
        }
        CHECK_EQ_INT(n, recs);
        free(sp);
        if (t2 < best) best = t2;
    }
    printf("  NDJSON, %zu-byte records of 62 keys: %.0f MB/s\n", len / recs, (double)len / 1e6 / best);
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
    RUN(empty_key);
    RUN(duplicate_keys);
    RUN(duplicate_keys_escaped);
    RUN(duplicate_keys_every_length);
    RUN(duplicate_key_message_limits);
    RUN(duplicate_keys_many);
    RUN(duplicate_keys_deep);
    RUN(duplicate_keys_and_record_limit);
    RUN(throughput);
    return test_main_end();
}
