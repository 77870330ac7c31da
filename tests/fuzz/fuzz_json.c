/* fuzz_json.c - fuzz target for the ingest body splitter (src/json/json.c).
 *
 * Every input is split as JSON and as NDJSON, with the default limits and
 * with tiny ones (so the size, count and depth checks fire on small inputs),
 * and as JSON with a depth limit the parser's inline stack cannot hold (so
 * the stack grows).
 * Beyond "no crash, no sanitizer report" it checks the contract of json.h and
 * aborts when it breaks: spans lie inside the body in increasing,
 * non-overlapping order, each is a whole object that splits again on its own
 * to exactly itself; failures leave no spans, an offset within the body, a
 * code from the documented set and a message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_check(const char *body, size_t size, enum tarn_body_format fmt, const tarn_json_limits *lim)
{
    size_t max_record = lim && lim->max_record ? lim->max_record : (size_t)1 << 20;
    size_t max_records = lim && lim->max_records ? lim->max_records : 10000;
    tarn_json_span *sp = (tarn_json_span *)&sp; /* must be overwritten */
    size_t n = (size_t)-1;
    tarn_json_error err;
    memset(&err, 0x5a, sizeof err);

    int rc = tarn_json_split(body, size, fmt, lim, &sp, &n, &err);
    if (rc != 0) {
        if (sp != NULL || n != 0) abort();
        if (rc != TARN_EJSON && rc != TARN_EDEPTH && rc != TARN_ETOOBIG && rc != TARN_EINVAL) abort();
        if (err.offset > size) abort();
        if (err.index > max_records) abort();
        if (memchr(err.msg, '\0', sizeof err.msg) == NULL || err.msg[0] == '\0') abort();
        return;
    }
    if (sp == NULL || n == 0 || n > max_records) abort();
    size_t prev_end = 0;
    for (size_t i = 0; i < n; i++) {
        size_t off = sp[i].offset, len = sp[i].len;
        if (len < 2 || len > max_record || off > size || len > size - off) abort();
        if (off < prev_end) abort();
        if (body[off] != '{' || body[off + len - 1] != '}') abort();
        prev_end = off + len;

        /* A record is a valid body by itself, and splits to exactly itself. */
        tarn_json_span *one;
        size_t m;
        tarn_json_error e2;
        if (tarn_json_split(body + off, len, TARN_BODY_JSON, lim, &one, &m, &e2) != 0) abort();
        if (m != 1 || one[0].offset != 0 || one[0].len != len) abort();
        free(one);
    }
    free(sp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A private copy without a terminator, so reading past size is caught. */
    char *body = malloc(size ? size : 1);
    if (!body) return 0;
    memcpy(body, data, size);
    static const tarn_json_limits tiny = {.max_record = 48, .max_depth = 3, .max_records = 4};
    static const tarn_json_limits deep = {.max_depth = 100000};
    fuzz_check(body, size, TARN_BODY_JSON, NULL);
    fuzz_check(body, size, TARN_BODY_NDJSON, NULL);
    fuzz_check(body, size, TARN_BODY_JSON, &tiny);
    fuzz_check(body, size, TARN_BODY_NDJSON, &tiny);
    fuzz_check(body, size, TARN_BODY_JSON, &deep);
    free(body);
    return 0;
}
