/* json.c - validating splitter for ingest bodies (see json.h).
 *
 * Why by hand: every ingested byte passes through here, and ingest needs what
 * tree-building libraries do not give: the record index and byte offset of
 * the first error, a nesting limit that holds on hostile input, and the exact
 * byte range of each record so the log can store records as they were sent.
 * Nothing is allocated per value; the only allocations are the span array and,
 * for records nested more than 255 levels deep (when the limit allows it), the
 * container stack.
 *
 * Grammar (RFC 8259, no extensions):
 *
 *   value   = object / array / string / number / "true" / "false" / "null"
 *   object  = '{' ws [ string ws ':' ws value ws *( ',' ws string ws ':' ws value ws ) ] '}'
 *   array   = '[' ws [ value ws *( ',' ws value ws ) ] ']'
 *   string  = '"' *( unescaped / '\' ( '"' / '\' / '/' / 'b' / 'f' / 'n' / 'r' / 't' / 'u' 4HEXDIG ) ) '"'
 *             unescaped is well-formed UTF-8 (RFC 3629: no overlongs, no
 *             surrogates, nothing above U+10FFFF) other than '"', '\' and
 *             U+0000..U+001F; \u escapes of surrogates must form a high+low pair
 *   number  = [ '-' ] ( '0' / [1-9] *DIGIT ) [ '.' 1*DIGIT ] [ ( 'e' / 'E' ) [ '+' / '-' ] 1*DIGIT ]
 *   ws      = *( ' ' / '\t' / '\n' / '\r' )
 *
 * Bodies:
 *   TARN_BODY_JSON    ws ( object / '[' ws object ws *( ',' ws object ws ) ']' ) ws
 *                     the outer array is not a record and does not count
 *                     towards the nesting depth
 *   TARN_BODY_NDJSON  lines split on '\n'; a line holding only ws is skipped,
 *                     any other line is ws object ws (so a trailing '\r' is
 *                     fine, and an object may not span lines)
 *
 * Error positions. offset is the byte that makes the body invalid: the first
 * byte that cannot continue the grammar, the lead byte of a bad UTF-8
 * sequence, the '\' of a bad escape (the bad digit for a bad hex digit), the
 * '{' or '[' that opens one level too many, the '"' of a reserved key, the
 * '{' of a record that is too large or one too many, and len (or the '\n' that
 * ends an NDJSON line) for a truncated body. index is the record the error is
 * in; errors between records (a missing ',', data after the last record)
 * belong to the record just before them, errors where a record should start
 * to the record that would start there.
 *
 * The parser is an explicit state machine over one loop, never recursion: the
 * only per-level state is one bit (object or array), so depth costs a bit
 * of stack memory, not a C stack frame, and a body of ten million '[' stops at
 * the first level over the limit.
 */
#include "json.h"

#include <assert.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define JSON_DEFAULT_MAX_RECORD ((size_t)1 << 20)
#define JSON_DEFAULT_MAX_DEPTH 64
#define JSON_DEFAULT_MAX_RECORDS 10000
/* Container levels tracked without allocating: one bit each. */
#define JSON_STACK_WORDS 4

#if defined(__GNUC__)
#define JSON_COLD __attribute__((cold, noinline))
#define JSON_LIKELY(x) __builtin_expect(!!(x), 1)
#define JSON_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define JSON_COLD
#define JSON_LIKELY(x) (x)
#define JSON_UNLIKELY(x) (x)
#endif

typedef unsigned char uchar;

typedef struct json_parser {
    const uchar *base;     /* body start: offsets are relative to it */
    const uchar *end;      /* end of what the current record may use (its line in NDJSON) */
    const uchar *body_end; /* end of the body, to tell end of input from end of line */
    size_t max_depth;
    size_t depth_fast;     /* min(max_depth, levels the stack holds): one compare per '{' or '[' */
    uint64_t *stack;       /* bit d set: level d is an object, clear: an array */
    size_t stack_words;
    uint64_t *stack_heap;  /* stack once it outgrew stack_local, else NULL */
    uint64_t stack_local[JSON_STACK_WORDS];
    size_t index;          /* record that errors are charged to */
    tarn_json_error *err;
    int rc;
} json_parser;

/* ---- errors: all cold, so the scanning loops stay small ---- */

static JSON_COLD int json_fail(json_parser *ps, int rc, const uchar *at, const char *fmt, ...) TARN_PRINTF(4, 5);

static int json_fail(json_parser *ps, int rc, const uchar *at, const char *fmt, ...)
{
    va_list ap;
    ps->err->index = ps->index;
    ps->err->offset = (size_t)(at - ps->base);
    va_start(ap, fmt);
    vsnprintf(ps->err->msg, sizeof ps->err->msg, fmt, ap);
    va_end(ap);
    ps->rc = rc;
    return rc;
}

static JSON_COLD int json_fail_eof(json_parser *ps, const uchar *at)
{
    return json_fail(ps, TARN_EJSON, at, at == ps->body_end ? "unexpected end of input" : "unexpected end of line");
}

/* ---- character classes ---- */

static inline int json_is_ws(unsigned c) { return c <= ' ' && ((UINT64_C(0x100002600) >> c) & 1); }

static inline int json_is_digit(unsigned c) { return c - '0' < 10; }

/* Bytes that may stand for themselves inside a string without a closer look. */
static inline int json_is_plain(unsigned c) { return c >= 0x20 && c < 0x80 && c != '"' && c != '\\'; }

/* First bytes of a value other than an object, to tell "not an object" from
 * "not JSON" where a record should start. */
static inline int json_starts_value(unsigned c)
{
    return c == '[' || c == '"' || c == '-' || json_is_digit(c) || c == 't' || c == 'f' || c == 'n';
}

static inline const uchar *json_skip_ws(const uchar *p, const uchar *end)
{
    while (p < end && json_is_ws(*p)) p++;
    return p;
}

static inline int json_hex(unsigned c)
{
    if (json_is_digit(c)) return (int)(c - '0');
    c |= 0x20;
    if (c >= 'a' && c <= 'f') return (int)(c - 'a' + 10);
    return -1;
}

/* ---- strings ---- */

/* Length of the well-formed UTF-8 sequence at p (lead byte >= 0x80), or 0. */
static inline size_t json_utf8_len(const uchar *p, const uchar *end)
{
    unsigned c = p[0], lo = 0x80, hi = 0xBF;
    size_t n;
    if (c < 0xC2) return 0; /* continuation byte, or lead of an overlong 2-byte form */
    if (c < 0xE0) {
        n = 2;
    } else if (c < 0xF0) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;      /* overlong */
        else if (c == 0xED) hi = 0x9F; /* U+D800..U+DFFF */
    } else if (c < 0xF5) {
        n = 4;
        if (c == 0xF0) lo = 0x90;      /* overlong */
        else if (c == 0xF4) hi = 0x8F; /* above U+10FFFF */
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if ((p[i] & 0xC0) != 0x80) return 0;
    return n;
}

/* The four hex digits at p as a code unit, or -1 after recording the error. */
static int json_hex4(json_parser *ps, const uchar *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        if (p + i == ps->end) return json_fail_eof(ps, p + i), -1;
        int h = json_hex(p[i]);
        if (h < 0) return json_fail(ps, TARN_EJSON, p + i, "invalid hex digit in \\u escape"), -1;
        v = v << 4 | h;
    }
    return v;
}

static JSON_COLD const uchar *json_lone_surrogate(json_parser *ps, const uchar *esc)
{
    json_fail(ps, TARN_EJSON, esc, "lone surrogate '%.6s'", (const char *)esc);
    return NULL;
}

/* The escape at p ('\'); returns what follows it, or NULL after recording the
 * error. Out of line: escapes are rare next to plain bytes. */
static JSON_COLD const uchar *json_escape(json_parser *ps, const uchar *p)
{
    const uchar *end = ps->end;
    if (end - p < 2) return json_fail_eof(ps, end), NULL;
    switch (p[1]) {
    case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
        return p + 2;
    case 'u':
        break;
    default:
        if (p[1] > 0x20 && p[1] < 0x7f) json_fail(ps, TARN_EJSON, p, "invalid escape '\\%c'", p[1]);
        else json_fail(ps, TARN_EJSON, p, "invalid escape: byte 0x%02x after '\\'", p[1]);
        return NULL;
    }
    int cu = json_hex4(ps, p + 2);
    if (cu < 0) return NULL;
    if (cu >= 0xDC00 && cu <= 0xDFFF) return json_lone_surrogate(ps, p);
    if (cu < 0xD800 || cu > 0xDBFF) return p + 6;
    /* A high surrogate means nothing without the low one right after it. */
    const uchar *q = p + 6;
    if (q == end || (q[0] == '\\' && q + 1 == end)) return json_fail_eof(ps, end), NULL;
    if (q[0] != '\\' || q[1] != 'u') return json_lone_surrogate(ps, p);
    int lo = json_hex4(ps, q + 2);
    if (lo < 0) return NULL;
    if (lo >= 0xDC00 && lo <= 0xDFFF) return q + 6;
    json_fail(ps, TARN_EJSON, q, "'%.6s' after '%.6s' is not a low surrogate", (const char *)q, (const char *)p);
    return NULL;
}

/* Mask with the high bit set in (at least) the lowest byte of x that needs a
 * closer look: '"', '\', < 0x20 or >= 0x80. Bits above the lowest may be
 * false positives from borrows, so only the lowest one is used. */
static inline uint64_t json_special8(uint64_t x)
{
    const uint64_t ones = UINT64_C(0x0101010101010101), high = UINT64_C(0x8080808080808080);
    uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
    return ((((x - ones * 0x20) | (q - ones) | (b - ones)) & ~x) | x) & high;
}

/* Scans the string whose opening quote is just before p. Returns the byte
 * after the closing quote, or NULL after recording the error. */
static inline const uchar *json_string(json_parser *ps, const uchar *p)
{
    const uchar *end = ps->end;
    for (;;) {
        /* Skip runs of plain bytes a block at a time: strings are most of
         * most records. */
#if defined(__SSE2__)
        while (end - p >= 16) {
            __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
            /* Signed compare: bytes >= 0x80 are negative, so "< 0x20" also
             * catches them. */
            __m128i s = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')),
                                                  _mm_cmpeq_epi8(x, _mm_set1_epi8('\\'))),
                                     _mm_cmplt_epi8(x, _mm_set1_epi8(0x20)));
            unsigned m = (unsigned)_mm_movemask_epi8(s);
            if (m) {
                p += __builtin_ctz(m);
                goto special;
            }
            p += 16;
        }
#endif
        while (end - p >= 8) {
            uint64_t x;
            memcpy(&x, p, 8);
            uint64_t m = json_special8(x);
            if (m) {
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
                p += __builtin_ctzll(m) >> 3;
#else
                while (json_is_plain(*p)) p++; /* stops within these 8 bytes */
#endif
                goto special;
            }
            p += 8;
        }
        while (p < end && json_is_plain(*p)) p++;
        if (JSON_UNLIKELY(p == end)) return json_fail_eof(ps, p), NULL;
    special:
        if (*p == '"') return p + 1;
        if (*p == '\\') {
            p = json_escape(ps, p);
            if (!p) return NULL;
        } else if (*p < 0x20) {
            return json_fail(ps, TARN_EJSON, p, "control character in string"), NULL;
        } else {
            size_t n = json_utf8_len(p, end);
            if (!n) return json_fail(ps, TARN_EJSON, p, "invalid UTF-8"), NULL;
            p += n;
        }
    }
}

/* ---- numbers and literals ---- */

/* The number starting at p ('-' or a digit). */
static inline const uchar *json_number(json_parser *ps, const uchar *p)
{
    const uchar *end = ps->end;
    if (*p == '-') {
        p++;
        if (p == end) return json_fail_eof(ps, p), NULL;
        if (!json_is_digit(*p)) return json_fail(ps, TARN_EJSON, p, "expected digit after '-'"), NULL;
    }
    if (*p == '0') {
        p++;
        if (p < end && json_is_digit(*p)) return json_fail(ps, TARN_EJSON, p, "leading zero in number"), NULL;
    } else {
        while (p < end && json_is_digit(*p)) p++;
    }
    if (p < end && *p == '.') {
        p++;
        if (p == end) return json_fail_eof(ps, p), NULL;
        if (!json_is_digit(*p)) return json_fail(ps, TARN_EJSON, p, "expected digit after '.'"), NULL;
        while (p < end && json_is_digit(*p)) p++;
    }
    if (p < end && (*p | 0x20) == 'e') {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p == end) return json_fail_eof(ps, p), NULL;
        if (!json_is_digit(*p)) return json_fail(ps, TARN_EJSON, p, "expected digit in exponent"), NULL;
        while (p < end && json_is_digit(*p)) p++;
    }
    return p;
}

/* The literal lit (n bytes) at p, whose first byte already matched. */
static inline const uchar *json_literal(json_parser *ps, const uchar *p, const char *lit, size_t n)
{
    if (JSON_LIKELY((size_t)(ps->end - p) >= n && memcmp(p, lit, n) == 0)) return p + n;
    for (size_t i = 1; i < n; i++) {
        if (p + i == ps->end) return json_fail_eof(ps, p + i), NULL;
        if (p[i] != (uchar)lit[i]) return json_fail(ps, TARN_EJSON, p + i, "invalid literal, expected '%s'", lit), NULL;
    }
    return p + n; /* not reached: the fast path matched */
}

/* ---- reserved keys ---- */

static int json_ascii_ieq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned x = (uchar)a[i], y = (uchar)b[i];
        if (x - 'A' < 26) x |= 0x20;
        if (y - 'A' < 26) y |= 0x20;
        if (x != y) return 0;
    }
    return 1;
}

int tarn_json_reserved(const char *name, size_t n)
{
    /* DuckDB folds column names case-insensitively, so "_SEQ" would collide too. */
    switch (n) {
    case 4: return json_ascii_ieq(name, "_seq", 4);
    case 12: return json_ascii_ieq(name, "_ingested_at", 12);
    case 14: return json_ascii_ieq(name, "ingestion_date", 14);
    default: return 0;
    }
}

/* Longest reserved name, and room to unescape a key into before giving up. */
#define JSON_RESERVED_MAX 14

/* Non-zero if the already validated key s (n raw bytes between the quotes) is
 * reserved; its unescaped name goes to out (JSON_RESERVED_MAX + 1 bytes). */
static int json_key_reserved(const uchar *s, size_t n, char *out, size_t *out_n)
{
    if (n < 4) return 0;
    if (!memchr(s, '\\', n)) {
        if (!tarn_json_reserved((const char *)s, n)) return 0;
        memcpy(out, s, n);
        *out_n = n;
        return 1;
    }
    /* Reserved names are ASCII, so any escape of a code point >= 0x80 means
     * the key cannot be one; no need to produce UTF-8. */
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        if (k == JSON_RESERVED_MAX + 1) return 0;
        unsigned c = s[i];
        if (c >= 0x80) return 0;
        if (c != '\\') {
            out[k++] = (char)c;
            i++;
            continue;
        }
        c = s[i + 1];
        switch (c) {
        case 'b': c = '\b'; break;
        case 'f': c = '\f'; break;
        case 'n': c = '\n'; break;
        case 'r': c = '\r'; break;
        case 't': c = '\t'; break;
        case 'u':
            c = 0;
            for (size_t j = 2; j < 6; j++) c = c << 4 | (unsigned)json_hex(s[i + j]);
            if (c >= 0x80) return 0;
            i += 4;
            break;
        default: break; /* '"', '\\', '/' stand for themselves */
        }
        out[k++] = (char)c;
        i += 2;
    }
    if (!tarn_json_reserved(out, k)) return 0;
    *out_n = k;
    return 1;
}

/* Rejects a reserved top-level key: quote is its opening '"', after the byte
 * after its closing one. */
static int json_check_key(json_parser *ps, const uchar *quote, const uchar *after)
{
    char name[JSON_RESERVED_MAX + 1];
    size_t n;
    if (!json_key_reserved(quote + 1, (size_t)(after - quote - 2), name, &n)) return 0;
    return json_fail(ps, TARN_EINVAL, quote, "key \"%.*s\" is reserved", (int)n, name);
}

/* ---- the record parser ---- */

/* Called when depth passes depth_fast: either the limit is hit or the bit
 * stack must grow. Returns 0 or the error. */
static JSON_COLD int json_deeper(json_parser *ps, const uchar *at, size_t depth)
{
    if (depth > ps->max_depth)
        return json_fail(ps, TARN_EDEPTH, at, "nesting deeper than %zu", ps->max_depth);
    size_t words = ps->stack_words * 2;
    uint64_t *s = realloc(ps->stack_heap, words * sizeof *s);
    if (!s) return json_fail(ps, TARN_ENOMEM, at, "out of memory");
    if (!ps->stack_heap) memcpy(s, ps->stack_local, sizeof ps->stack_local);
    ps->stack = ps->stack_heap = s;
    ps->stack_words = words;
    ps->depth_fast = words * 64 - 1 < ps->max_depth ? words * 64 - 1 : ps->max_depth;
    return 0;
}

#define JSON_SET_OBJECT(st, d) ((st)[(d) >> 6] |= UINT64_C(1) << ((d) & 63))
#define JSON_SET_ARRAY(st, d) ((st)[(d) >> 6] &= ~(UINT64_C(1) << ((d) & 63)))
#define JSON_IS_OBJECT(st, d) (((st)[(d) >> 6] >> ((d) & 63)) & 1)

/* Validates the object whose '{' is at p and returns the byte after its '}',
 * or NULL after recording the error. One loop with gotos between states:
 * each label is a point in the grammar, the bit stack says where to return
 * after a value. */
static const uchar *json_record(json_parser *ps, const uchar *p)
{
    const uchar *end = ps->end;
    uint64_t *stack = ps->stack;
    size_t depth = 1;
    JSON_SET_OBJECT(stack, depth);
    p++;

object_open: /* after '{' */
    p = json_skip_ws(p, end);
    if (p == end) goto eof;
    if (*p == '}') {
        p++;
        goto close;
    }
    if (*p != '"') return json_fail(ps, TARN_EJSON, p, "expected object key or '}'"), NULL;
    goto key;

object_next: /* after ',' in an object */
    p = json_skip_ws(p, end);
    if (p == end) goto eof;
    if (*p != '"') return json_fail(ps, TARN_EJSON, p, "expected object key after ','"), NULL;

key: { /* at the key's '"' */
    const uchar *quote = p;
    p = json_string(ps, p + 1);
    if (!p) return NULL;
    /* Every reserved name starts with '_' or 'i'; the rest of the check is
     * out of line. */
    if (depth == 1 && (quote[1] == '_' || (quote[1] | 0x20) == 'i' || quote[1] == '\\') && json_check_key(ps, quote, p))
        return NULL;
    p = json_skip_ws(p, end);
    if (p == end) goto eof;
    if (*p != ':') return json_fail(ps, TARN_EJSON, p, "expected ':' after object key"), NULL;
    p++;
}

value:
    p = json_skip_ws(p, end);
    if (p == end) goto eof;
    switch (*p) {
    case '"':
        p = json_string(ps, p + 1);
        break;
    case '{':
        if (JSON_UNLIKELY(++depth > ps->depth_fast)) {
            if (json_deeper(ps, p, depth)) return NULL;
            stack = ps->stack;
        }
        JSON_SET_OBJECT(stack, depth);
        p++;
        goto object_open;
    case '[':
        if (JSON_UNLIKELY(++depth > ps->depth_fast)) {
            if (json_deeper(ps, p, depth)) return NULL;
            stack = ps->stack;
        }
        JSON_SET_ARRAY(stack, depth);
        p = json_skip_ws(p + 1, end);
        if (p == end) goto eof;
        if (*p == ']') {
            p++;
            goto close;
        }
        goto value;
    case '-': case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7': case '8': case '9':
        p = json_number(ps, p);
        break;
    case 't':
        p = json_literal(ps, p, "true", 4);
        break;
    case 'f':
        p = json_literal(ps, p, "false", 5);
        break;
    case 'n':
        p = json_literal(ps, p, "null", 4);
        break;
    default:
        return json_fail(ps, TARN_EJSON, p, "expected a value"), NULL;
    }
    if (!p) return NULL;
    goto after_value;

close: /* after a '}' or ']' */
    if (--depth == 0) return p;

after_value:
    p = json_skip_ws(p, end);
    if (p == end) goto eof;
    if (JSON_IS_OBJECT(stack, depth)) {
        if (*p == ',') {
            p++;
            goto object_next;
        }
        if (*p == '}') {
            p++;
            goto close;
        }
        return json_fail(ps, TARN_EJSON, p, "expected ',' or '}' after object value"), NULL;
    }
    if (*p == ',') {
        p++;
        goto value;
    }
    if (*p == ']') {
        p++;
        goto close;
    }
    return json_fail(ps, TARN_EJSON, p, "expected ',' or ']' after array value"), NULL;

eof:
    return json_fail_eof(ps, p), NULL;
}

/* ---- bodies ---- */

typedef struct json_out {
    tarn_json_span *v;
    size_t n, cap;
    size_t max_record, max_records;
} json_out;

/* Checks that a record may start at p (index out->n) and parses it.
 * Returns the byte after it, or NULL after recording the error. */
static const uchar *json_take(json_parser *ps, json_out *out, const uchar *p)
{
    ps->index = out->n;
    if (out->n == out->max_records)
        return json_fail(ps, TARN_ETOOBIG, p, "more than %zu records", out->max_records), NULL;
    if (*p != '{') {
        if (json_starts_value(*p)) return json_fail(ps, TARN_EINVAL, p, "record is not an object"), NULL;
        return json_fail(ps, TARN_EJSON, p, "expected '{' to start a record"), NULL;
    }
    const uchar *q = json_record(ps, p);
    if (!q) return NULL;
    size_t len = (size_t)(q - p);
    if (len > out->max_record)
        return json_fail(ps, TARN_ETOOBIG, p, "record of %zu bytes exceeds the %zu-byte limit", len, out->max_record),
               NULL;
    if (out->n == out->cap) {
        size_t cap = out->cap ? out->cap * 2 : 64;
        if (cap > out->max_records) cap = out->max_records;
        tarn_json_span *v = realloc(out->v, cap * sizeof *v);
        if (!v) return json_fail(ps, TARN_ENOMEM, p, "out of memory"), NULL;
        out->v = v;
        out->cap = cap;
    }
    out->v[out->n].offset = (size_t)(p - ps->base);
    out->v[out->n].len = len;
    out->n++;
    return q;
}

static int json_split_json(json_parser *ps, json_out *out)
{
    const uchar *end = ps->body_end;
    const uchar *p = json_skip_ws(ps->base, end);
    if (p == end) return json_fail(ps, TARN_EINVAL, p, "no records");
    if (*p != '[') {
        p = json_take(ps, out, p);
        if (!p) return ps->rc;
        p = json_skip_ws(p, end);
        if (p != end) return json_fail(ps, TARN_EJSON, p, "unexpected data after the record");
        return 0;
    }
    p = json_skip_ws(p + 1, end);
    if (p == end) return json_fail_eof(ps, p);
    if (*p == ']') return json_fail(ps, TARN_EINVAL, p, "no records");
    for (;;) {
        p = json_take(ps, out, p);
        if (!p) return ps->rc;
        p = json_skip_ws(p, end);
        if (p == end) return json_fail_eof(ps, p);
        if (*p == ']') break;
        if (*p != ',') return json_fail(ps, TARN_EJSON, p, "expected ',' or ']' after record");
        ps->index = out->n;
        p = json_skip_ws(p + 1, end);
        if (p == end) return json_fail_eof(ps, p);
    }
    p = json_skip_ws(p + 1, end);
    if (p != end) return json_fail(ps, TARN_EJSON, p, "unexpected data after the array");
    return 0;
}

static int json_split_ndjson(json_parser *ps, json_out *out)
{
    const uchar *p = ps->base, *end = ps->body_end;
    while (p < end) {
        const uchar *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        /* A record must end on its line, so it gets the line as its input. */
        ps->end = eol;
        p = json_skip_ws(p, eol);
        if (p < eol) {
            p = json_take(ps, out, p);
            if (!p) return ps->rc;
            p = json_skip_ws(p, eol);
            if (p != eol) return json_fail(ps, TARN_EJSON, p, "unexpected data after the record");
        }
        if (eol == end) break;
        p = eol + 1;
    }
    if (!out->n) {
        ps->index = 0;
        return json_fail(ps, TARN_EINVAL, end, "no records");
    }
    return 0;
}

int tarn_json_split(const char *body, size_t len, enum tarn_body_format fmt, const tarn_json_limits *limits,
                    tarn_json_span **spans, size_t *n, tarn_json_error *err)
{
    assert(spans && n);
    tarn_json_error err_local;
    json_parser ps;
    json_out out = {0};

    *spans = NULL;
    *n = 0;
    if (!err) err = &err_local;
    err->index = err->offset = 0;
    err->msg[0] = '\0';

    static const char empty[1] = "";
    if (!body) {
        body = empty;
        len = 0;
    }
    out.max_record = limits && limits->max_record ? limits->max_record : JSON_DEFAULT_MAX_RECORD;
    out.max_records = limits && limits->max_records ? limits->max_records : JSON_DEFAULT_MAX_RECORDS;

    memset(&ps, 0, sizeof ps);
    ps.base = (const uchar *)body;
    ps.end = ps.body_end = ps.base + len;
    ps.max_depth = limits && limits->max_depth ? limits->max_depth : JSON_DEFAULT_MAX_DEPTH;
    ps.stack = ps.stack_local;
    ps.stack_words = JSON_STACK_WORDS;
    ps.depth_fast = JSON_STACK_WORDS * 64 - 1 < ps.max_depth ? JSON_STACK_WORDS * 64 - 1 : ps.max_depth;
    ps.err = err;

    int rc = fmt == TARN_BODY_NDJSON ? json_split_ndjson(&ps, &out) : json_split_json(&ps, &out);
    free(ps.stack_heap);
    if (rc) {
        free(out.v);
        return rc;
    }
    *spans = out.v;
    *n = out.n;
    return 0;
}
