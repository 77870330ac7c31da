/* fuzz_json.c - fuzz target for the ingest body splitter (src/json/json.c).
 *
 * Every input is split as JSON and as NDJSON, with the default limits and
 * with tiny ones (so the size, count and depth checks fire on small inputs),
 * and as JSON with a depth limit the parser's inline stack cannot hold (so
 * the stack grows).
 * Beyond "no crash, no sanitizer report" it checks the contract of json.h and
 * aborts when it breaks: spans lie inside the body in increasing,
 * non-overlapping order, each is a whole object that splits again on its own
 * to exactly itself, and no object in it has an empty key or two keys equal
 * ignoring ASCII case (checked by a slow, separate walk: every pair of
 * unescaped keys); failures leave no spans, an offset within the body, a
 * code from the documented set and a message, and a key error points at
 * the key's opening quote.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- reference key check, for records the splitter accepted ---- */

typedef struct ref_key {
    char *s;
    size_t n;
} ref_key;

static const char *ref_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

static unsigned ref_hex4(const char *p)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v = v << 4 | (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return v;
}

/* The valid string at p (its '"'); unescaped into *k (malloc'd) if k. */
static const char *ref_string(const char *p, ref_key *k)
{
    const char *q = p + 1;
    while (*q != '"') q += *q == '\\' ? 2 : 1;
    char *out = k ? malloc((size_t)(q - p)) : NULL; /* no escape is shorter than what it stands for */
    size_t n = 0;
    for (p++; *p != '"'; p++) {
        unsigned c = (unsigned char)*p;
        int esc = c == '\\';
        if (esc) {
            c = (unsigned char)*++p;
            if (c == 'u') {
                c = ref_hex4(p + 1);
                p += 4;
                if (c >= 0xD800 && c < 0xDC00) { /* then "\uDC00".."\uDFFF" */
                    c = 0x10000 + ((c - 0xD800) << 10) + (ref_hex4(p + 3) - 0xDC00);
                    p += 6;
                }
            } else {
                c = c == 'b' ? 8 : c == 'f' ? 12 : c == 'n' ? 10 : c == 'r' ? 13 : c == 't' ? 9 : c;
            }
        }
        if (!out) continue;
        if (!esc || c < 0x80) { /* raw bytes, UTF-8 or not, stand for themselves */
            out[n++] = (char)c;
        } else if (c < 0x800) {
            out[n++] = (char)(0xC0 | c >> 6);
            out[n++] = (char)(0x80 | (c & 0x3F));
        } else if (c < 0x10000) {
            out[n++] = (char)(0xE0 | c >> 12);
            out[n++] = (char)(0x80 | (c >> 6 & 0x3F));
            out[n++] = (char)(0x80 | (c & 0x3F));
        } else {
            out[n++] = (char)(0xF0 | c >> 18);
            out[n++] = (char)(0x80 | (c >> 12 & 0x3F));
            out[n++] = (char)(0x80 | (c >> 6 & 0x3F));
            out[n++] = (char)(0x80 | (c & 0x3F));
        }
    }
    if (k) {
        k->s = out;
        k->n = n;
    }
    return p + 1;
}

static int ref_ieq(const ref_key *a, const ref_key *b)
{
    if (a->n != b->n) return 0;
    for (size_t i = 0; i < a->n; i++) {
        unsigned x = (unsigned char)a->s[i], y = (unsigned char)b->s[i];
        if (x >= 'A' && x <= 'Z') x += 32;
        if (y >= 'A' && y <= 'Z') y += 32;
        if (x != y) return 0;
    }
    return 1;
}

/* The valid value at p; aborts if an object in it has an empty key or a
 * repeated one. depth bounds the recursion (the limits used here do). */
static const char *ref_value(const char *p, const char *end, int depth)
{
    if (depth > 100) abort();
    p = ref_ws(p, end);
    if (*p == '"') return ref_string(p, NULL);
    if (*p == '[') {
        p = ref_ws(p + 1, end);
        if (*p == ']') return p + 1;
        for (;;) {
            p = ref_ws(ref_value(p, end, depth + 1), end);
            if (*p++ == ']') return p;
        }
    }
    if (*p != '{') {
        while (p < end && !strchr(",]} \t\r\n", *p)) p++;
        return p;
    }
    ref_key *keys = NULL;
    size_t nk = 0;
    p = ref_ws(p + 1, end);
    if (*p != '}') {
        for (;;) {
            ref_key *k2 = realloc(keys, (nk + 1) * sizeof *keys);
            if (!k2) abort();
            keys = k2;
            p = ref_string(ref_ws(p, end), &keys[nk]);
            if (keys[nk].n == 0) abort();
            for (size_t i = 0; i < nk; i++)
                if (ref_ieq(&keys[i], &keys[nk])) abort();
            nk++;
            p = ref_ws(p, end) + 1; /* ':' */
            p = ref_ws(ref_value(p, end, depth + 1), end);
            if (*p++ == '}') break;
        }
    } else {
        p++;
    }
    for (size_t i = 0; i < nk; i++) free(keys[i].s);
    free(keys);
    return p;
}

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
        if (rc != TARN_EJSON && rc != TARN_EDEPTH && rc != TARN_ETOOBIG && rc != TARN_EINVAL && rc != TARN_ENOMEM)
            abort();
        if (err.offset > size) abort();
        if (err.index > max_records) abort();
        if (memchr(err.msg, '\0', sizeof err.msg) == NULL || err.msg[0] == '\0') abort();
        if (!strncmp(err.msg, "duplicate key", 13) || !strcmp(err.msg, "object key is empty")) {
            if (rc != TARN_EINVAL || err.offset >= size || body[err.offset] != '"') abort();
            if (err.msg[0] == 'o' && (err.offset + 1 >= size || body[err.offset + 1] != '"')) abort();
        }
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

        /* Its keys, the slow way. */
        if ((!lim || lim->max_depth <= 64) && ref_value(body + off, body + off + len, 0) != body + off + len) abort();
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
