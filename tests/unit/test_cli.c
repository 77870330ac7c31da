/* test_cli.c - the command-line client's pure parts: cutting ingest input
 * into records and batches, the text tables, option parsing, names, and
 * error replies. The HTTP parts are covered by the end-to-end tests. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli_internal.h"
#include "test.h"

/* ------------------------------------------------------------ helpers */

#define MAX_BATCHES 64

/* Records every batch a cli_batch sends. */
typedef struct recorder {
    int n;
    char *body[MAX_BATCHES];
    size_t count[MAX_BATCHES];
    int64_t first[MAX_BATCHES];
    int64_t line0[MAX_BATCHES]; /* line of each batch's first record */
    size_t max_len;
    int fail_at; /* batch number that fails, -1 for none */
} recorder;

static int recorder_send(void *ctx, const cli_batch *b, tarn_errbuf *eb)
{
    recorder *r = ctx;
    if (r->n == r->fail_at) return tarn_errbuf_set(eb, TARN_EIO, "send failed on purpose");
    if (r->n >= MAX_BATCHES) return tarn_errbuf_set(eb, TARN_EIO, "too many batches");
    r->body[r->n] = strndup(b->body.data, b->committed);
    r->count[r->n] = b->count;
    r->first[r->n] = b->first_record;
    r->line0[r->n] = b->lines[0];
    if (b->committed > r->max_len) r->max_len = b->committed;
    r->n++;
    return TARN_OK;
}

static void recorder_init(recorder *r)
{
    memset(r, 0, sizeof *r);
    r->fail_at = -1;
}

static void recorder_free(recorder *r)
{
    for (int i = 0; i < r->n; i++) free(r->body[i]);
}

/* All batches concatenated, in a static buffer. */
static const char *recorder_all(const recorder *r)
{
    static char all[8192];
    all[0] = '\0';
    for (int i = 0; i < r->n; i++) strncat(all, r->body[i], sizeof all - strlen(all) - 1);
    return all;
}

/* Feeds input to a splitter in chunks of `chunk` bytes (0: all at once)
 * and finishes. Returns the first error; eb and the format are filled. */
static int split(const char *input, size_t len, size_t chunk, size_t max_records, size_t max_bytes,
                 size_t max_record, recorder *r, tarn_errbuf *eb, enum cli_input_format *format)
{
    cli_batch b;
    cli_splitter s;
    int rc = cli_batch_init(&b, max_records, max_bytes, max_record, recorder_send, r);
    cli_splitter_init(&s);
    if (!chunk) chunk = len ? len : 1;
    for (size_t off = 0; !rc && off < len; off += chunk)
        rc = cli_splitter_feed(&s, &b, input + off, len - off < chunk ? len - off : chunk, eb);
    if (!rc) rc = cli_splitter_finish(&s, &b, eb);
    if (format) *format = s.format;
    cli_batch_free(&b);
    return rc;
}

static int split_str(const char *input, size_t chunk, recorder *r, tarn_errbuf *eb, enum cli_input_format *format)
{
    return split(input, strlen(input), chunk, 5000, (size_t)4 << 20, (size_t)1 << 20, r, eb, format);
}

static const size_t chunk_sizes[] = {1, 7, 0};

/* Renders a result given as JSON text into a static string. */
static const char *render(const char *json, size_t max_cell, const char *noun)
{
    static char out[4096];
    json_t *res = json_loads(json, 0, NULL);
    if (!res) return "(bad test JSON)";
    char *mem = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&mem, &len);
    tarn_errbuf eb;
    int rc = cli_print_table(f, res, max_cell, noun, &eb);
    fclose(f);
    json_decref(res);
    snprintf(out, sizeof out, "%s", rc ? eb.msg : mem);
    free(mem);
    return out;
}

static const char *value_text(const char *json)
{
    static char out[512];
    json_t *v = json_loads(json, JSON_DECODE_ANY, NULL);
    tarn_buf b;
    tarn_buf_init(&b, 0);
    cli_format_value(&b, v);
    snprintf(out, sizeof out, "%s", b.data ? b.data : "");
    tarn_buf_free(&b);
    json_decref(v);
    return out;
}

/* ------------------------------------------------------------ splitter */

TEST(ndjson_split_in_any_chunks)
{
    const char *in = "{\"a\":1}\n\n   \n{\"b\":\"x}\\\"\"}\r\n\t{\"c\":[1,{\"d\":2}]}";
    for (size_t k = 0; k < sizeof chunk_sizes / sizeof chunk_sizes[0]; k++) {
        recorder r;
        tarn_errbuf eb;
        enum cli_input_format fmt;
        recorder_init(&r);
        REQUIRE(split_str(in, chunk_sizes[k], &r, &eb, &fmt) == 0);
        CHECK_EQ_INT(fmt, CLI_INPUT_NDJSON);
        CHECK_EQ_INT(r.n, 1);
        CHECK_EQ_INT(r.count[0], 3);
        CHECK_EQ_STR(recorder_all(&r), "{\"a\":1}\n{\"b\":\"x}\\\"\"} \n{\"c\":[1,{\"d\":2}]}\n");
        recorder_free(&r);
    }
}

TEST(ndjson_line_numbers_skip_blank_lines)
{
    const char *in = "\n{\"a\":1}\n\n{\"a\":2}\n{\"a\":3}\n";
    recorder r;
    tarn_errbuf eb;
    recorder_init(&r);
    /* One record per batch, so each batch's first line is that record's. */
    REQUIRE(split(in, strlen(in), 1, 1, 1 << 20, 1 << 20, &r, &eb, NULL) == 0);
    REQUIRE(r.n == 3);
    CHECK_EQ_INT(r.line0[0], 2);
    CHECK_EQ_INT(r.line0[1], 4);
    CHECK_EQ_INT(r.line0[2], 5);
    CHECK_EQ_INT(r.first[2], 2);
    recorder_free(&r);
}

TEST(ndjson_truncated_line_stays_one_record)
{
    /* A broken line must not swallow the lines after it. */
    const char *in = "{\"a\":1}\n{\"b\":\n{\"c\":3}\n{\"d\":\"unterminated\n{\"e\":5}\n";
    recorder r;
    tarn_errbuf eb;
    enum cli_input_format fmt;
    recorder_init(&r);
    REQUIRE(split_str(in, 1, &r, &eb, &fmt) == 0);
    CHECK_EQ_INT(fmt, CLI_INPUT_NDJSON);
    CHECK_EQ_STR(recorder_all(&r), "{\"a\":1}\n{\"b\":\n{\"c\":3}\n{\"d\":\"unterminated\n{\"e\":5}\n");
    CHECK_EQ_INT(r.count[0], 5);
    recorder_free(&r);
}

TEST(multiline_objects_like_jq_output)
{
    const char *in = "{\n  \"a\": \"}{\",\n  \"b\": {\"c\": [2]}\n}\n{\n \"d\": 3\n}{\"e\":4}\n";
    for (size_t k = 0; k < sizeof chunk_sizes / sizeof chunk_sizes[0]; k++) {
        recorder r;
        tarn_errbuf eb;
        enum cli_input_format fmt;
        recorder_init(&r);
        REQUIRE(split(in, strlen(in), chunk_sizes[k], 1, 1 << 20, 1 << 20, &r, &eb, &fmt) == 0);
        CHECK_EQ_INT(fmt, CLI_INPUT_MULTILINE);
        CHECK_EQ_STR(recorder_all(&r), "{   \"a\": \"}{\",   \"b\": {\"c\": [2]} }\n{  \"d\": 3 }\n{\"e\":4}\n");
        REQUIRE(r.n == 3);
        CHECK_EQ_INT(r.line0[0], 1);
        CHECK_EQ_INT(r.line0[1], 5);
        CHECK_EQ_INT(r.line0[2], 7);
        recorder_free(&r);
    }
}

TEST(pretty_array_with_tricky_strings)
{
    const char *in = "[\n"
                     "  {\n"
                     "    \"s\": \"a [tricky] {string}, with \\\"quotes\\\" and \\\\\",\n"
                     "    \"n\": [1, 2, {\"x\": \"],\"}]\n"
                     "  },\r\n"
                     "  {\"t\": \"line\\nbreak\"}  ,\n"
                     "  {}\n"
                     "]\n";
    const char *want = "{     \"s\": \"a [tricky] {string}, with \\\"quotes\\\" and \\\\\",     "
                       "\"n\": [1, 2, {\"x\": \"],\"}]   }\n"
                       "{\"t\": \"line\\nbreak\"}\n"
                       "{}\n";
    for (size_t k = 0; k < sizeof chunk_sizes / sizeof chunk_sizes[0]; k++) {
        recorder r;
        tarn_errbuf eb;
        enum cli_input_format fmt;
        recorder_init(&r);
        int rc = split_str(in, chunk_sizes[k], &r, &eb, &fmt);
        if (rc) printf("  error: %s\n", eb.msg);
        REQUIRE(rc == 0);
        CHECK_EQ_INT(fmt, CLI_INPUT_ARRAY);
        CHECK_EQ_STR(recorder_all(&r), want);
        CHECK_EQ_INT(r.count[0], 3);
        recorder_free(&r);
    }
}

TEST(array_of_scalars_and_line_numbers)
{
    const char *in = "[1, \"two\",\n\n null,{\"a\":[]}]";
    recorder r;
    tarn_errbuf eb;
    recorder_init(&r);
    REQUIRE(split(in, strlen(in), 7, 1, 1 << 20, 1 << 20, &r, &eb, NULL) == 0);
    CHECK_EQ_STR(recorder_all(&r), "1\n\"two\"\nnull\n{\"a\":[]}\n");
    REQUIRE(r.n == 4);
    CHECK_EQ_INT(r.line0[1], 1);
    CHECK_EQ_INT(r.line0[2], 3);
    CHECK_EQ_INT(r.first[3], 3);
    recorder_free(&r);
}

TEST(empty_inputs_send_nothing)
{
    const char *inputs[] = {"", "  \n\n", "[]", " [ \n ] \n", "\xEF\xBB\xBF"};
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        recorder r;
        tarn_errbuf eb;
        recorder_init(&r);
        CHECK_EQ_INT(split_str(inputs[i], 1, &r, &eb, NULL), 0);
        CHECK_EQ_INT(r.n, 0);
        recorder_free(&r);
    }
}

TEST(byte_order_mark_skipped)
{
    recorder r;
    tarn_errbuf eb;
    recorder_init(&r);
    REQUIRE(split_str("\xEF\xBB\xBF[{\"a\":\"\xC3\xA9\"}]", 1, &r, &eb, NULL) == 0);
    CHECK_EQ_STR(recorder_all(&r), "{\"a\":\"\xC3\xA9\"}\n");
    recorder_free(&r);
    recorder_init(&r);
    CHECK(split_str("\xEF{\"a\":1}\n", 1, &r, &eb, NULL) != 0);
    CHECK_EQ_INT(r.n, 0);
    recorder_free(&r);
}

TEST(array_syntax_errors)
{
    static const struct {
        const char *in;
        const char *msg;
    } cases[] = {
        {"[{\"a\":1} {\"b\":2}]", "line 1: expected ',' or ']' after record 1"},
        {"[{\"a\":1},\n{\"b\":2}", "line 2: input ends inside the JSON array (no closing ']')"},
        {"[{\"a\":1},", "input ends inside the JSON array"},
        {"[{\"a\":\"x\ny\"}]", "line 1: line break inside a string in record 1"},
        {"[1,]", "expected a record after ','"},
        {"[,1]", "expected a record, found ','"},
        {"[1,,2]", "expected a record, found ','"},
        {"[{}]\n{}", "line 2: unexpected data after the array's closing ']'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        recorder r;
        tarn_errbuf eb;
        eb.msg[0] = '\0';
        recorder_init(&r);
        CHECK(split_str(cases[i].in, 1, &r, &eb, NULL) != 0);
        if (!strstr(eb.msg, cases[i].msg)) printf("  case %zu: got '%s'\n", i, eb.msg);
        CHECK(strstr(eb.msg, cases[i].msg) != NULL);
        /* Nothing of an input that fails before its end is sent here: the
         * only batch is the last one. */
        CHECK_EQ_INT(r.n, 0);
        recorder_free(&r);
    }
}

TEST(unclosed_array_sends_earlier_batches_only)
{
    const char *in = "[{\"a\":1},{\"a\":2},{\"a\":3},{\"a\":4},{\"a\":5}";
    recorder r;
    tarn_errbuf eb;
    recorder_init(&r);
    CHECK(split(in, strlen(in), 3, 2, 1 << 20, 1 << 20, &r, &eb, NULL) != 0);
    CHECK_EQ_INT(r.n, 2); /* records 1-4; record 5 is complete but its batch never is */
    CHECK_EQ_STR(recorder_all(&r), "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n{\"a\":4}\n");
    recorder_free(&r);
}

/* ------------------------------------------------------------ batches */

TEST(batches_cut_by_count)
{
    char in[256] = "";
    for (int i = 0; i < 10; i++) snprintf(in + strlen(in), sizeof in - strlen(in), "{\"i\":%d}\n", i);
    recorder r;
    tarn_errbuf eb;
    recorder_init(&r);
    REQUIRE(split(in, strlen(in), 7, 3, 1 << 20, 1 << 20, &r, &eb, NULL) == 0);
    REQUIRE(r.n == 4);
    CHECK_EQ_INT(r.count[0], 3);
    CHECK_EQ_INT(r.count[3], 1);
    CHECK_EQ_INT(r.first[1], 3);
    CHECK_EQ_INT(r.first[3], 9);
    CHECK_EQ_INT(r.line0[3], 10);
    CHECK_EQ_STR(r.body[3], "{\"i\":9}\n");
    CHECK_EQ_STR(recorder_all(&r), in);
    recorder_free(&r);
}

TEST(batches_cut_by_bytes)
{
    /* 8 bytes per record with its newline; at most 20 bytes: 2 per batch. */
    const char *in = "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n{\"a\":4}\n{\"a\":5}\n";
    recorder r;
    tarn_errbuf eb;
    recorder_init(&r);
    REQUIRE(split(in, strlen(in), 1, 100, 20, 100, &r, &eb, NULL) == 0);
    REQUIRE(r.n == 3);
    CHECK_EQ_INT(r.count[0], 2);
    CHECK_EQ_INT(r.count[1], 2);
    CHECK_EQ_INT(r.count[2], 1);
    CHECK(r.max_len <= 20);
    CHECK_EQ_STR(recorder_all(&r), in);
    recorder_free(&r);
}

TEST(big_record_goes_alone_and_too_big_record_fails)
{
    /* A 31-byte record in a 20-byte batch limit goes in a batch of its own;
     * the record before it is sent first. */
    const char *in = "{\"a\":1}\n{\"b\":\"0123456789012345678901\"}\n{\"a\":2}\n";
    recorder r;
    tarn_errbuf eb;
    recorder_init(&r);
    REQUIRE(split(in, strlen(in), 7, 100, 20, 100, &r, &eb, NULL) == 0);
    REQUIRE(r.n == 3);
    CHECK_EQ_STR(r.body[0], "{\"a\":1}\n");
    CHECK_EQ_STR(r.body[1], "{\"b\":\"0123456789012345678901\"}\n");
    CHECK_EQ_STR(r.body[2], "{\"a\":2}\n");
    CHECK_EQ_INT(r.first[2], 2);
    recorder_free(&r);

    /* Over max_record_bytes: an error naming the record and its line. */
    recorder_init(&r);
    eb.msg[0] = '\0';
    CHECK(split(in, strlen(in), 7, 100, 20, 25, &r, &eb, NULL) == TARN_ETOOBIG);
    CHECK(strstr(eb.msg, "record 2 (line 2)") != NULL);
    CHECK_EQ_INT(r.n, 1);
    recorder_free(&r);
}

TEST(send_failure_stops_and_counts_what_was_sent)
{
    char in[256] = "";
    for (int i = 0; i < 7; i++) snprintf(in + strlen(in), sizeof in - strlen(in), "{\"i\":%d}\n", i);
    recorder r;
    cli_batch b;
    cli_splitter s;
    tarn_errbuf eb;
    recorder_init(&r);
    r.fail_at = 1;
    REQUIRE(cli_batch_init(&b, 3, 1 << 20, 1 << 20, recorder_send, &r) == 0);
    cli_splitter_init(&s);
    int rc = cli_splitter_feed(&s, &b, in, strlen(in), &eb);
    CHECK(rc != 0);
    CHECK_EQ_STR(eb.msg, "send failed on purpose");
    CHECK_EQ_INT(b.sent, 3);
    CHECK_EQ_INT(r.n, 1);
    cli_batch_free(&b);
    recorder_free(&r);
}

/* ------------------------------------------------------------ tables */

TEST(table_alignment_null_nested_utf8)
{
    const char *res = "{\"columns\":[{\"name\":\"country\",\"type\":\"VARCHAR\"},{\"name\":\"users\",\"type\":\"BIGINT\"},"
                      "{\"name\":\"info\",\"type\":\"STRUCT(a INTEGER)\"},{\"name\":\"score\",\"type\":\"DOUBLE\"}],"
                      "\"rows\":[[\"Norway\",12,{\"a\":1},0.1],[\"Brasil S\\u00e3o\",null,[1,\"x\"],1.0],"
                      "[null,1234,null,-2.5]],\"row_count\":3,\"truncated\":false}";
    CHECK_EQ_STR(render(res, 60, "row"),
                 " country    | users | info    | score\n"
                 "------------+-------+---------+-------\n"
                 " Norway     |    12 | {\"a\":1} |   0.1\n"
                 " Brasil S\xC3\xA3o |  NULL | [1,\"x\"] |   1.0\n"
                 " NULL       |  1234 | NULL    |  -2.5\n"
                 "(3 rows)\n");
}

TEST(table_truncates_long_cells_and_results)
{
    /* 15 x "é" (2 bytes each) cut to 9 code points and "…". */
    const char *res = "{\"columns\":[{\"name\":\"s\",\"type\":\"VARCHAR\"},{\"name\":\"d\",\"type\":\"DECIMAL(18,3)\"}],"
                      "\"rows\":[[\"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9"
                      "\\u00e9\\u00e9\\u00e9\\u00e9\",\"1.500\"],[\"a\\nb\",\"-22.000\"]],"
                      "\"row_count\":2,\"truncated\":true}";
    CHECK_EQ_STR(render(res, 10, "row"),
                 " s          |       d\n"
                 "------------+---------\n"
                 " \xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xE2\x80\xA6 |   1.500\n"
                 " a\\nb       | -22.000\n"
                 "(2 rows)\n"
                 "(truncated at 2 rows)\n");
}

TEST(table_without_types_aligns_by_value)
{
    const char *res = "{\"columns\":[{\"name\":\"n\"},{\"name\":\"mixed\"}],"
                      "\"rows\":[[1,\"a\"],[null,2],[300,true]]}";
    CHECK_EQ_STR(render(res, 60, "row"),
                 "    n | mixed\n"
                 "------+-------\n"
                 "    1 | a\n"
                 " NULL | 2\n"
                 "  300 | true\n"
                 "(3 rows)\n");
}

TEST(table_empty_and_singular_and_bad_shape)
{
    CHECK_EQ_STR(render("{\"columns\":[{\"name\":\"x\",\"type\":\"INTEGER\"}],\"rows\":[]}", 60, "row"),
                 " x\n---\n(0 rows)\n");
    CHECK_EQ_STR(render("{\"columns\":[{\"name\":\"table\",\"type\":\"VARCHAR\"}],\"rows\":[[\"t\"]]}", 60, "table"),
                 " table\n-------\n t\n(1 table)\n");
    CHECK_EQ_STR(render("{\"columns\":[],\"rows\":[]}", 60, NULL), "");
    CHECK(strstr(render("{\"rows\":[]}", 60, "row"), "unexpected reply") != NULL);
    CHECK(strstr(render("{\"columns\":[],\"rows\":[1]}", 60, "row"), "row 1 is not an array") != NULL);
}

TEST(values_format)
{
    CHECK_EQ_STR(value_text("null"), "NULL");
    CHECK_EQ_STR(value_text("0.1"), "0.1");
    CHECK_EQ_STR(value_text("1.0"), "1.0");
    CHECK_EQ_STR(value_text("-2.5e-7"), "-2.5e-07");
    CHECK_EQ_STR(value_text("1e300"), "1e+300");
    CHECK_EQ_STR(value_text("123456789012"), "123456789012");
    CHECK_EQ_STR(value_text("-9223372036854775808"), "-9223372036854775808");
    CHECK_EQ_STR(value_text("true"), "true");
    CHECK_EQ_STR(value_text("\"tab\\there\\u0001\""), "tab\\there\\u0001");
    CHECK_EQ_STR(value_text("{\"x\": 0.1, \"y\": [true, null, \"q\\\"\"], \"z\": {}}"),
                 "{\"x\":0.1,\"y\":[true,null,\"q\\\"\"],\"z\":{}}");
    char num[64];
    cli_format_double(3.14159, num, sizeof num);
    CHECK_EQ_STR(num, "3.14159");
    cli_format_double(0.1 + 0.2, num, sizeof num);
    CHECK_EQ_STR(num, "0.30000000000000004");
}

TEST(utf8_width_counts_code_points)
{
    CHECK_EQ_INT(cli_utf8_width("", 0), 0);
    CHECK_EQ_INT(cli_utf8_width("abc", 3), 3);
    CHECK_EQ_INT(cli_utf8_width("h\xC3\xA9llo", 6), 5);
    CHECK_EQ_INT(cli_utf8_width("\xE6\x97\xA5\xE6\x9C\xAC", 6), 2);
    CHECK_EQ_INT(cli_utf8_width("\xF0\x9F\x98\x80!", 5), 2);
}

TEST(bytes_and_durations)
{
    char s[32];
    cli_format_bytes(0, s, sizeof s);
    CHECK_EQ_STR(s, "0 B");
    cli_format_bytes(1023, s, sizeof s);
    CHECK_EQ_STR(s, "1023 B");
    cli_format_bytes(5120, s, sizeof s);
    CHECK_EQ_STR(s, "5.0 KiB");
    cli_format_bytes((int64_t)3 << 30, s, sizeof s);
    CHECK_EQ_STR(s, "3.0 GiB");
    cli_format_duration(12, s, sizeof s);
    CHECK_EQ_STR(s, "12s");
    cli_format_duration(3 * 3600 + 5, s, sizeof s);
    CHECK_EQ_STR(s, "3h 0m 5s");
    cli_format_duration(86400 + 61, s, sizeof s);
    CHECK_EQ_STR(s, "1d 0h 1m 1s");
}

/* ------------------------------------------------------------ options */

#define ARGV(...) (char *[]){"tarn", __VA_ARGS__, NULL}
#define ARGC(...) ((int)(sizeof((char *[]){"tarn", __VA_ARGS__}) / sizeof(char *)))
#define PARSE(o, eb, ...) cli_parse_args(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), (o), (eb))

TEST(options_anywhere)
{
    cli_opts o;
    tarn_errbuf eb;
    REQUIRE(PARSE(&o, &eb, "--url", "http://h:1", "query", "--format", "csv", "SELECT 1", "--database=iot",
                  "--token=t0k") == 0);
    CHECK_EQ_STR(o.command, "query");
    CHECK_EQ_INT(o.nargs, 1);
    CHECK_EQ_STR(o.args[0], "SELECT 1");
    CHECK_EQ_INT(o.format, CLI_FORMAT_CSV);
    CHECK_EQ_STR(o.database, "iot");
    CHECK_EQ_STR(o.url, "http://h:1");
    CHECK_EQ_STR(o.token, "t0k");
    CHECK_EQ_INT(o.seen, CLI_OPT_URL | CLI_OPT_TOKEN | CLI_OPT_FORMAT | CLI_OPT_DATABASE);

    REQUIRE(PARSE(&o, &eb, "ingest", "db.t", "-") == 0);
    CHECK_EQ_INT(o.nargs, 2);
    CHECK_EQ_STR(o.args[1], "-");
    CHECK_EQ_INT(o.format, CLI_FORMAT_TABLE);
    CHECK_EQ_INT(o.seen, 0);

    /* SQL that starts with a comment is not an option; "--" ends options. */
    REQUIRE(PARSE(&o, &eb, "query", "-- count\nSELECT 1") == 0);
    CHECK_EQ_STR(o.args[0], "-- count\nSELECT 1");
    REQUIRE(PARSE(&o, &eb, "query", "--", "--format") == 0);
    CHECK_EQ_STR(o.args[0], "--format");
    CHECK_EQ_INT(o.seen, 0);

    REQUIRE(PARSE(&o, &eb, "-h") == 0);
    CHECK(o.help);
    REQUIRE(PARSE(&o, &eb, "status", "--version") == 0);
    CHECK(o.version);
}

TEST(option_errors)
{
    cli_opts o;
    tarn_errbuf eb;
    CHECK_EQ_INT(PARSE(&o, &eb, "query", "--url"), TARN_EINVAL);
    CHECK_EQ_STR(eb.msg, "option '--url' needs a value");
    CHECK_EQ_INT(PARSE(&o, &eb, "--bogus", "status"), TARN_EINVAL);
    CHECK_EQ_STR(eb.msg, "unknown option '--bogus'");
    CHECK_EQ_INT(PARSE(&o, &eb, "query", "--format", "xml", "SELECT 1"), TARN_EINVAL);
    CHECK_EQ_INT(PARSE(&o, &eb, "tables", "--database", "bad-name"), TARN_EINVAL);
    CHECK_EQ_INT(PARSE(&o, &eb, "--help=yes"), TARN_EINVAL);
    CHECK_EQ_INT(PARSE(&o, &eb, "a", "b", "c", "d", "e", "f"), TARN_EINVAL);
}

TEST(connection_settings_and_fallbacks)
{
    cli_opts o;
    cli_conn c;
    tarn_errbuf eb;
    char *dir = test_tmpdir("cli");
    REQUIRE(dir != NULL);
    char tokfile[512], missing[512];
    snprintf(tokfile, sizeof tokfile, "%s/admin.token", dir);
    snprintf(missing, sizeof missing, "%s/none.token", dir);
    FILE *f = fopen(tokfile, "w");
    REQUIRE(f != NULL);
    fputs("  filetoken123\n", f);
    fclose(f);

    /* Defaults: built-in URL, token from the file, trimmed. */
    REQUIRE(PARSE(&o, &eb, "status") == 0);
    REQUIRE(cli_conn_resolve(&c, &o, NULL, NULL, tokfile, &eb) == 0);
    CHECK_EQ_STR(c.url, "http://127.0.0.1:8470");
    CHECK_EQ_STR(c.token, "filetoken123");
    cli_conn_free(&c);

    /* Environment beats the defaults; empty variables count as unset. */
    REQUIRE(cli_conn_resolve(&c, &o, "http://env:9/", "envtoken", tokfile, &eb) == 0);
    CHECK_EQ_STR(c.url, "http://env:9");
    CHECK_EQ_STR(c.token, "envtoken");
    cli_conn_free(&c);
    REQUIRE(cli_conn_resolve(&c, &o, "", "", tokfile, &eb) == 0);
    CHECK_EQ_STR(c.url, "http://127.0.0.1:8470");
    CHECK_EQ_STR(c.token, "filetoken123");
    cli_conn_free(&c);

    /* No token anywhere: none is sent. */
    REQUIRE(cli_conn_resolve(&c, &o, NULL, NULL, missing, &eb) == 0);
    CHECK(c.token == NULL);
    cli_conn_free(&c);

    /* Options beat the environment; host:port gets http://. */
    REQUIRE(PARSE(&o, &eb, "--url", "localhost:9000//", "--token", "opttoken", "status") == 0);
    REQUIRE(cli_conn_resolve(&c, &o, "http://env:9", "envtoken", tokfile, &eb) == 0);
    CHECK_EQ_STR(c.url, "http://localhost:9000");
    CHECK_EQ_STR(c.token, "opttoken");
    cli_conn_free(&c);

    REQUIRE(PARSE(&o, &eb, "--url", "ftp://x", "status") == 0);
    CHECK_EQ_INT(cli_conn_resolve(&c, &o, NULL, NULL, NULL, &eb), TARN_EINVAL);

    /* A token that cannot go in a header is refused without being shown. */
    REQUIRE(PARSE(&o, &eb, "--token", "sec ret", "status") == 0);
    CHECK_EQ_INT(cli_conn_resolve(&c, &o, NULL, NULL, NULL, &eb), TARN_EINVAL);
    CHECK(strstr(eb.msg, "sec") == NULL);
    CHECK(c.token == NULL && c.url == NULL);

    unlink(tokfile);
    rmdir(dir);
    free(dir);
}

TEST(table_names)
{
    char db[CLI_NAME_MAX + 1], table[CLI_NAME_MAX + 1], arg[300];
    tarn_errbuf eb;
    REQUIRE(cli_parse_table_name("randomuser.users_2", db, table, &eb) == 0);
    CHECK_EQ_STR(db, "randomuser");
    CHECK_EQ_STR(table, "users_2");
    const char *bad[] = {"users", ".t", "db.", "a.b.c", "d-b.t", "db.t t", "db.t\xC3\xA9", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_EQ_INT(cli_parse_table_name(bad[i], db, table, &eb), TARN_EINVAL);
    memset(arg, 'a', 128);
    memcpy(arg + 128, ".t", 3);
    CHECK_EQ_INT(cli_parse_table_name(arg, db, table, &eb), 0);
    memset(arg, 'a', 129);
    memcpy(arg + 129, ".t", 3);
    CHECK_EQ_INT(cli_parse_table_name(arg, db, table, &eb), TARN_EINVAL);
}

/* ------------------------------------------------------------ replies */

TEST(error_replies)
{
    char msg[256];
    int64_t index;
    const char *body = "{\"error\":{\"code\":\"TARN_EJSON\",\"message\":\"record 3 at byte 120: expected ':' "
                       "after object key\",\"index\":3,\"offset\":120}}";
    cli_reply_error(400, body, strlen(body), msg, sizeof msg, &index);
    CHECK_EQ_STR(msg, "record 3 at byte 120: expected ':' after object key");
    CHECK_EQ_INT(index, 3);
    CHECK_EQ_STR(cli_strip_record_prefix(msg), "expected ':' after object key");

    body = "{\"error\":{\"code\":\"TARN_ESQL\",\"message\":\"Parser Error: syntax error\\n\\nLINE 1: SELEC\\n  ^\"}}";
    cli_reply_error(400, body, strlen(body), msg, sizeof msg, &index);
    CHECK_EQ_STR(msg, "Parser Error: syntax error LINE 1: SELEC ^");
    CHECK_EQ_INT(index, -1);

    cli_reply_error(502, "<html>Bad gateway</html>\nmore", 30, msg, sizeof msg, &index);
    CHECK_EQ_STR(msg, "<html>Bad gateway</html>");
    cli_reply_error(503, "", 0, msg, sizeof msg, &index);
    CHECK_EQ_STR(msg, "service unavailable");
    cli_reply_error(401, "{}", 2, msg, sizeof msg, &index);
    CHECK_EQ_STR(msg, "missing or invalid token");

    CHECK_EQ_STR(cli_strip_record_prefix("record 0: reserved key \"_seq\""), "reserved key \"_seq\"");
    CHECK_EQ_STR(cli_strip_record_prefix("record too large"), "record too large");
    CHECK_EQ_STR(cli_strip_record_prefix("record 3 at byte x: y"), "record 3 at byte x: y");
}

TEST(reply_json_with_huge_integers)
{
    tarn_errbuf eb;
    const char *body = "{\"rows\":[[18446744073709551615]]}";
    json_t *v = cli_parse_json(body, strlen(body), &eb);
    REQUIRE(v != NULL);
    CHECK(json_is_real(json_array_get(json_array_get(json_object_get(v, "rows"), 0), 0)));
    json_decref(v);
    CHECK(cli_parse_json("{", 1, &eb) == NULL);
    CHECK(strstr(eb.msg, "unexpected reply") != NULL);
}

int main(void)
{
    RUN(ndjson_split_in_any_chunks);
    RUN(ndjson_line_numbers_skip_blank_lines);
    RUN(ndjson_truncated_line_stays_one_record);
    RUN(multiline_objects_like_jq_output);
    RUN(pretty_array_with_tricky_strings);
    RUN(array_of_scalars_and_line_numbers);
    RUN(empty_inputs_send_nothing);
    RUN(byte_order_mark_skipped);
    RUN(array_syntax_errors);
    RUN(unclosed_array_sends_earlier_batches_only);
    RUN(batches_cut_by_count);
    RUN(batches_cut_by_bytes);
    RUN(big_record_goes_alone_and_too_big_record_fails);
    RUN(send_failure_stops_and_counts_what_was_sent);
    RUN(table_alignment_null_nested_utf8);
    RUN(table_truncates_long_cells_and_results);
    RUN(table_without_types_aligns_by_value);
    RUN(table_empty_and_singular_and_bad_shape);
    RUN(values_format);
    RUN(utf8_width_counts_code_points);
    RUN(bytes_and_durations);
    RUN(options_anywhere);
    RUN(option_errors);
    RUN(connection_settings_and_fallbacks);
    RUN(table_names);
    RUN(error_replies);
    RUN(reply_json_with_huge_integers);
    return test_main_end();
}
