/* json.c - validating splitter for ingest bodies (see json.h).
 *
 * Why by hand: every ingested byte passes through here, and ingest needs what
 * tree-building libraries do not give: the record index and byte offset of
 * the first error, a nesting limit that holds on hostile input, the exact
 * byte range of each record so the log can store records as they were sent,
 * and key names DuckDB can load: not empty, and unique in their object
 * ignoring ASCII case (see "duplicate keys" below for how that stays fast).
 * Nothing is allocated per value; the only allocations are the span array,
 * the container stack for records nested more than 255 levels deep (when the
 * limit allows it), and for key checks: the key arrays once more than 128 keys
 * of a record's open objects are held at once, the object stack past 64 open
 * objects, hash tables for objects with more than 64 keys, and room to
 * unescape keys with escapes. All of it is bounded by the record size limit
 * (keys further into a record than that are not tracked once they would need
 * more memory) and freed before returning.
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
 * '{' or '[' that opens one level too many, the '"' of an empty or reserved
 * key or of the second of two equal keys, the '{' of a record that is too
 * large or one too many, and len (or the '\n' that ends an NDJSON line) for a
 * truncated body. index is the record the error is in; errors between
 * records (a missing ',', data after the last record) belong to the record
 * just before them, errors where a record should start to the record that
 * would start there.
 *
 * The parser is an explicit state machine over one loop, never recursion: the
 * only per-level state is one bit (object or array), plus for each open object
 * where its keys start, so depth costs a little memory, not a C stack frame,
 * and a body of ten million '[' stops at the first level over the limit.
 */
#include "json.h"

#include <assert.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define JSON_DEFAULT_MAX_RECORD ((size_t)1 << 20)
#define JSON_DEFAULT_MAX_DEPTH 64
#define JSON_DEFAULT_MAX_RECORDS 10000
/* Container levels tracked without allocating: one bit each. */
#define JSON_STACK_WORDS 4
/* Keys an object may hold before lookups in it go through a hash table
 * instead of a Bloom mask and, when that hits, a scan of its keys. */
#define JSON_KEYS_LINEAR 64
/* Keys of open objects, and open objects, tracked without allocating. */
#define JSON_KEYS_LOCAL 128
#define JSON_OBJS_LOCAL 64
/* Slots of an object's first hash table (> 2 * JSON_KEYS_LINEAR); it stays
 * at most half full. */
#define JSON_TAB_MIN 256
/* Words of the Bloom mask. */
#define JSON_BLOOM_WORDS 4
/* Bytes of a key shown in an error message (more are elided with "..."). */
#define JSON_KEY_SHOW 48

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

/* An enclosing object's key state, saved while a nested object is open. */
typedef struct json_objstate {
    size_t kstart, ktab;
    uint64_t kbloom[JSON_BLOOM_WORDS];
} json_objstate;

typedef struct json_parser {
    const uchar *base;     /* body start: offsets are relative to it */
    const uchar *end;      /* end of what the current record may use (its line in NDJSON) */
    const uchar *body_end; /* end of the body, to tell end of input from end of line */
    size_t max_depth;
    size_t max_record;     /* keys are tracked up to this many bytes into a record */
    const uchar *rec;      /* the current record's '{' */
    size_t depth_fast;     /* min(max_depth, levels the stack holds): one compare per '{' or '[' */
    uint64_t *stack;       /* bit d set: level d is an object, clear: an array */
    size_t stack_words;
    uint64_t *stack_heap;  /* stack once it outgrew stack_local, else NULL */
    uint64_t stack_local[JSON_STACK_WORDS];
    size_t index;          /* record that errors are charged to */
    tarn_json_error *err;
    int rc;

    /* Keys of the open objects of the record, outermost object first: a
     * stack, since objects nest. kfp[i] is the fingerprint (low 32 bits of
     * the key hash) of the key whose bytes start at kref[i], after its '"'. */
    uint32_t *kfp;
    const uchar **kref;
    size_t kn, kcap;
    size_t kstart;         /* the innermost open object's keys are [kstart, kn) */
    size_t klimit;         /* min(kcap, kstart + JSON_KEYS_LINEAR): below it, no checks but the mask */
    uint64_t kbloom[JSON_BLOOM_WORDS]; /* a bit (hash >> 56) for each, while it has at most JSON_KEYS_LINEAR */
    size_t ktab;           /* arena offset of its table, once it has more */
    json_objstate *objs;   /* the enclosing open objects' key state */
    size_t nobjs, objcap;
    /* Hash tables of the open objects with more than JSON_KEYS_LINEAR keys,
     * innermost last, as objects nest: one slot before each holds its mask,
     * then a power of two of slots, at most half full, for open addressing
     * with linear probing: fingerprint << 32 | key index + 1, 0 = empty. */
    uint64_t *arena;
    size_t atop, acap;
    uchar *scratch;        /* unescaped keys */
    size_t scratch_cap;
    uint64_t seed[2];      /* of the key hash */
    uint32_t *kfp_local;   /* the first kfp, kref and objs, not allocated */
    const uchar **kref_local;
    json_objstate *objs_local;
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
        int h = tarn_hex_digit(p[i]);
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
            for (size_t j = 2; j < 6; j++) c = c << 4 | (unsigned)tarn_hex_digit(s[i + j]);
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

/* ---- duplicate keys ----
 *
 * DuckDB matches column and STRUCT field names ignoring case, so two keys of
 * one object that differ only in ASCII case (or not at all) would be one
 * column, which its JSON reader refuses. Each key is hashed as it is read,
 * case-folded and unescaped: most keys are short plain ASCII, which the
 * parser finds, folds and hashes from one 16-byte load (json_hash_vec), so
 * they cost about what scanning them as strings did; others are hashed from
 * the body, or unescaped first. The keys of the open objects of a record are
 * a stack (fingerprint and position). A new key is checked against its
 * object's earlier keys by a 256-bit Bloom mask, and when that hits, a scan
 * of their fingerprints, while the object has at most JSON_KEYS_LINEAR keys;
 * then through a hash table of its own, on a stack of tables (objects nest),
 * so a 100,000-key object costs O(n). Equal fingerprints are confirmed by
 * comparing the keys themselves. The hash is seeded once per process from a
 * random source, so a body cannot be crafted to make its keys collide. */

static uint64_t json_seed(void)
{
    static _Atomic uint64_t seed;
    uint64_t s = atomic_load_explicit(&seed, memory_order_relaxed);
    if (JSON_UNLIKELY(!s)) {
        /* Two threads may race here; each call uses the seed it loaded. */
        if (tarn_random_bytes(&s, sizeof s) != 0) s = (uint64_t)(uintptr_t)&seed ^ UINT64_C(0x9e3779b97f4a7c15);
        s |= 1;
        atomic_store_explicit(&seed, s, memory_order_relaxed);
    }
    return s;
}

#if defined(__SIZEOF_INT128__)
__extension__ typedef unsigned __int128 json_u128;

/* 64x64 -> 128-bit multiply, halves folded together. */
static inline uint64_t json_mum(uint64_t a, uint64_t b)
{
    json_u128 r = (json_u128)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}
#else
static inline uint64_t json_mum(uint64_t a, uint64_t b)
{
    uint64_t ha = a >> 32, hb = b >> 32, la = (uint32_t)a, lb = (uint32_t)b;
    uint64_t hh = ha * hb, hl = ha * lb, lh = la * hb, ll = la * lb;
    uint64_t mid = (ll >> 32) + (uint32_t)hl + (uint32_t)lh;
    uint64_t lo = (mid << 32) | (uint32_t)ll;
    uint64_t hi = hh + (hl >> 32) + (lh >> 32) + (mid >> 32);
    return lo ^ hi;
}
#endif

static inline uint64_t json_load8(const uchar *p)
{
    uint64_t x;
    memcpy(&x, p, 8);
    return x;
}

/* Mask keeping the first k (1..8) bytes of a word loaded by json_load8. */
static inline uint64_t json_first_bytes(size_t k)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return ~UINT64_C(0) << (64 - 8 * k);
#else
    return ~UINT64_C(0) >> (64 - 8 * k);
#endif
}

/* Sets bit 0x20 in the bytes 'A'..'Z' of x, and changes no other byte. */
static inline uint64_t json_fold8(uint64_t x)
{
    const uint64_t ones = UINT64_C(0x0101010101010101), high = UINT64_C(0x8080808080808080);
    uint64_t low7 = x & ~high; /* no carries between bytes below */
    uint64_t ge_a = low7 + ones * (0x80 - 'A'), gt_z = low7 + ones * (0x80 - 'Z' - 1);
    return x | ((ge_a & ~gt_z & ~x & high) >> 2);
}

/* Non-zero if a byte of x is '\'. */
static inline uint64_t json_has_backslash8(uint64_t x)
{
    const uint64_t ones = UINT64_C(0x0101010101010101), high = UINT64_C(0x8080808080808080);
    uint64_t y = x ^ (ones * '\\');
    return (y - ones) & ~y & high;
}

/* The hash of a key of n <= 16 bytes: a holds its first 8 bytes, b the
 * next 8, both case-folded and padded with zeros. */
static inline uint64_t json_hash_words(const json_parser *ps, uint64_t a, uint64_t b, size_t n)
{
    return json_mum(a ^ ps->seed[0], b ^ ps->seed[1] ^ n);
}

/* Hash of the case-folded n bytes at s (1 <= n <= 16, and 16 bytes
 * readable at s); *bs is non-zero if one of them is '\'. */
static inline uint64_t json_hash16(const json_parser *ps, const uchar *s, size_t n, uint64_t *bs)
{
    uint64_t a = json_load8(s) & json_first_bytes(n < 8 ? n : 8);
    uint64_t b = json_load8(s + 8) & (n > 8 ? json_first_bytes(n - 8) : 0);
    *bs = json_has_backslash8(a) | json_has_backslash8(b);
    return json_hash_words(ps, json_fold8(a), json_fold8(b), n);
}

#if defined(__SSE2__)
/* The same for the n < 16 bytes at the start of x, all of them ASCII other
 * than '"', '\' and controls. */
static inline uint64_t json_hash_vec(const json_parser *ps, __m128i x, size_t n)
{
    /* 16 bytes from 16 - n: n of 0xff, then zeros. */
    static const uint8_t window[32] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                       0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    x = _mm_and_si128(x, _mm_loadu_si128((const __m128i *)(const void *)(window + 16 - n)));
    __m128i upper = _mm_and_si128(_mm_cmpgt_epi8(x, _mm_set1_epi8('A' - 1)), _mm_cmplt_epi8(x, _mm_set1_epi8('Z' + 1)));
    x = _mm_or_si128(x, _mm_and_si128(upper, _mm_set1_epi8(0x20)));
    uint64_t w[2];
    _mm_storeu_si128((__m128i *)(void *)w, x);
    return json_hash_words(ps, w[0], w[1], n);
}
#endif

/* The same for any n >= 1 and only n bytes readable at s. */
static uint64_t json_hash_any(const json_parser *ps, const uchar *s, size_t n, uint64_t *bs)
{
    if (n <= 16) {
        uchar t[16] = {0};
        memcpy(t, s, n);
        return json_hash16(ps, t, n, bs);
    }
    uint64_t h = ps->seed[0] ^ n, acc = 0;
    for (size_t i = 0; n - i > 16; i += 16) {
        uint64_t a = json_load8(s + i), b = json_load8(s + i + 8);
        acc |= json_has_backslash8(a) | json_has_backslash8(b);
        h = json_mum(json_fold8(a) ^ ps->seed[1], json_fold8(b) ^ h);
    }
    uint64_t a = json_load8(s + n - 16), b = json_load8(s + n - 8);
    *bs = acc | json_has_backslash8(a) | json_has_backslash8(b);
    return json_mum(json_fold8(a) ^ ps->seed[1], json_fold8(b) ^ h);
}

/* The four hex digits at p, already validated. */
static unsigned json_hex4_valid(const uchar *p)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) v = v << 4 | (unsigned)tarn_hex_digit(p[i]);
    return v;
}

/* Unescapes the validated string bytes s (n) into out, which needs n bytes:
 * no escape is shorter than what it stands for. Returns the length. */
static size_t json_unescape(const uchar *s, size_t n, uchar *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] != '\\') {
            out[k++] = s[i++];
            continue;
        }
        unsigned c = s[i + 1];
        i += 2;
        switch (c) {
        case 'b': out[k++] = '\b'; continue;
        case 'f': out[k++] = '\f'; continue;
        case 'n': out[k++] = '\n'; continue;
        case 'r': out[k++] = '\r'; continue;
        case 't': out[k++] = '\t'; continue;
        case 'u': break;
        default: out[k++] = (uchar)c; continue; /* '"', '\', '/' */
        }
        unsigned cp = json_hex4_valid(s + i);
        i += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF) { /* validated: a low surrogate follows */
            cp = 0x10000 + ((cp - 0xD800) << 10) + (json_hex4_valid(s + i + 2) - 0xDC00);
            i += 6;
        }
        if (cp < 0x80) {
            out[k++] = (uchar)cp;
        } else if (cp < 0x800) {
            out[k++] = (uchar)(0xC0 | cp >> 6);
            out[k++] = (uchar)(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out[k++] = (uchar)(0xE0 | cp >> 12);
            out[k++] = (uchar)(0x80 | (cp >> 6 & 0x3F));
            out[k++] = (uchar)(0x80 | (cp & 0x3F));
        } else {
            out[k++] = (uchar)(0xF0 | cp >> 18);
            out[k++] = (uchar)(0x80 | (cp >> 12 & 0x3F));
            out[k++] = (uchar)(0x80 | (cp >> 6 & 0x3F));
            out[k++] = (uchar)(0x80 | (cp & 0x3F));
        }
    }
    return k;
}

/* Room for n bytes of unescaped keys (plus slack for json_hash16's loads),
 * or NULL after recording the error at the key s. Keys are tracked only
 * within the first max_record bytes of a record, so this is bounded. */
static JSON_COLD uchar *json_scratch(json_parser *ps, size_t n, const uchar *s)
{
    if (n + 16 > ps->scratch_cap) {
        size_t cap = ps->scratch_cap ? ps->scratch_cap : 256;
        while (cap < n + 16) cap *= 2;
        uchar *b = malloc(cap);
        if (!b) return json_fail(ps, TARN_ENOMEM, s - 1, "out of memory"), NULL;
        free(ps->scratch);
        ps->scratch = b;
        ps->scratch_cap = cap;
    }
    return ps->scratch;
}

/* Hash of the key s (n raw bytes, with escapes) unescaped, into *h; returns
 * 0 or the error. */
static JSON_COLD int json_hash_escaped(json_parser *ps, const uchar *s, size_t n, uint64_t *h)
{
    uchar *u = json_scratch(ps, n, s);
    if (!u) return ps->rc;
    uint64_t bs;
    size_t un = json_unescape(s, n, u);
    *h = un <= 16 ? json_hash16(ps, u, un, &bs) : json_hash_any(ps, u, un, &bs);
    return 0;
}

/* Hash of the key s (n >= 1 raw bytes) into *h; returns 0 or the error. */
static inline int json_key_hash(json_parser *ps, const uchar *s, size_t n, uint64_t *h)
{
    uint64_t bs;
    /* Bytes past the end of an NDJSON line are still in the body. */
    if (n <= 16 && ps->body_end - s >= 16) *h = json_hash16(ps, s, n, &bs);
    else *h = json_hash_any(ps, s, n, &bs);
    if (JSON_UNLIKELY(bs)) return json_hash_escaped(ps, s, n, h);
    return 0;
}

/* Length of the validated key whose bytes start at s, up to its closing '"'. */
static size_t json_key_len(const uchar *s)
{
    const uchar *p = s;
    while (*p != '"') p += *p == '\\' ? 2 : 1;
    return (size_t)(p - s);
}

/* 1 if earlier key a equals key s (n raw bytes) ignoring ASCII case, after
 * unescaping; 0 if not; the error (negative) if out of memory. */
static int json_key_eq(json_parser *ps, const uchar *a, const uchar *s, size_t n)
{
    size_t an = json_key_len(a);
    if (!memchr(a, '\\', an) && !memchr(s, '\\', n))
        return an == n && json_ascii_ieq((const char *)a, (const char *)s, n);
    uchar *u = json_scratch(ps, an + n, s);
    if (!u) return ps->rc;
    size_t un = json_unescape(a, an, u), vn = json_unescape(s, n, u + un);
    return un == vn && json_ascii_ieq((const char *)u, (const char *)u + un, un);
}

/* Writes the unescaped key u (n bytes, valid UTF-8) to out for a message:
 * '"', '\' and control characters escaped, cut at a character boundary after
 * JSON_KEY_SHOW bytes with "..." appended. out holds JSON_KEY_SHOW + 4. */
static void json_key_show(char *out, const uchar *u, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        unsigned c = u[i];
        char esc[8];
        size_t len, in = 1; /* bytes out, bytes in */
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c, len = 2;
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            len = 6;
        } else {
            in = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
            if (in > n - i) in = n - i; /* not reached: u is valid UTF-8 */
            memcpy(esc, u + i, in);
            len = in;
        }
        if (k + len > JSON_KEY_SHOW) {
            memcpy(out + k, "...", 3);
            k += 3;
            break;
        }
        memcpy(out + k, esc, len);
        k += len;
        i += in;
    }
    out[k] = '\0';
}

/* Records the duplicate: key s (n raw bytes) repeats earlier key a. */
static JSON_COLD int json_dup_fail(json_parser *ps, const uchar *a, const uchar *s, size_t n)
{
    size_t an = json_key_len(a);
    uchar *u = json_scratch(ps, an + n, s);
    if (!u) return ps->rc;
    size_t un = json_unescape(a, an, u), vn = json_unescape(s, n, u + un);
    char first[JSON_KEY_SHOW + 4], second[JSON_KEY_SHOW + 4];
    json_key_show(second, u + un, vn);
    if (un == vn && memcmp(u, u + un, un) == 0) return json_fail(ps, TARN_EINVAL, s - 1, "duplicate key \"%s\"", second);
    json_key_show(first, u, un);
    return json_fail(ps, TARN_EINVAL, s - 1, "duplicate key \"%s\" (keys differ only in case from \"%s\")", second,
                     first);
}

/* Key i has fingerprint fp: an error if it is key s (n raw bytes). */
static int json_key_check(json_parser *ps, size_t i, const uchar *s, size_t n)
{
    int eq = json_key_eq(ps, ps->kref[i], s, n);
    if (eq < 0) return eq;
    return eq ? json_dup_fail(ps, ps->kref[i], s, n) : 0;
}

/* Checks key s (n raw bytes, fingerprint fp) against the innermost object's
 * keys by fingerprint. Returns 0 or the error. */
static int json_key_scan(json_parser *ps, const uchar *s, size_t n, uint32_t fp)
{
    size_t i = ps->kstart, e = ps->kn;
#if defined(__SSE2__)
    __m128i f = _mm_set1_epi32((int)fp);
    for (; e - i >= 4; i += 4) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(ps->kfp + i));
        unsigned m = (unsigned)_mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(v, f)));
        for (; m; m &= m - 1)
            if (json_key_check(ps, i + (size_t)__builtin_ctz(m), s, n)) return ps->rc;
    }
#endif
    for (; i < e; i++)
        if (ps->kfp[i] == fp && json_key_check(ps, i, s, n)) return ps->rc;
    return 0;
}

/* The Bloom mask word and bit of hash h. */
#define JSON_BLOOM_WORD(ps, h) ((ps)->kbloom[(h) >> 62])
#define JSON_BLOOM_BIT(h) (UINT64_C(1) << ((h) >> 56 & 63))

static inline void json_klimit(json_parser *ps)
{
    size_t lim = ps->kstart + JSON_KEYS_LINEAR;
    ps->klimit = lim < ps->kcap ? lim : ps->kcap;
}

/* (Re)builds the innermost object's table, at ktab, with cap slots, from its
 * keys. It is the last table in the arena. Returns 0 or the error. */
static JSON_COLD int json_tab_build(json_parser *ps, size_t cap, const uchar *at)
{
    size_t lim = SIZE_MAX / 2 / sizeof *ps->arena; /* so acap can double up to it */
    if (ps->ktab > lim || cap > lim - ps->ktab) return json_fail(ps, TARN_ENOMEM, at, "out of memory");
    if (ps->ktab + cap > ps->acap) {
        size_t acap = ps->acap ? ps->acap : 4 * JSON_TAB_MIN;
        while (acap < ps->ktab + cap) acap *= 2;
        uint64_t *a = realloc(ps->arena, acap * sizeof *a);
        if (!a) return json_fail(ps, TARN_ENOMEM, at, "out of memory");
        ps->arena = a;
        ps->acap = acap;
    }
    uint64_t *t = ps->arena + ps->ktab;
    memset(t, 0, cap * sizeof *t);
    t[-1] = cap - 1;
    ps->atop = ps->ktab + cap;
    for (size_t i = ps->kstart; i < ps->kn; i++) {
        size_t j = ps->kfp[i] & (cap - 1);
        while (t[j]) j = (j + 1) & (cap - 1);
        t[j] = (uint64_t)ps->kfp[i] << 32 | (i + 1);
    }
    return 0;
}

/* Checks key s (n raw bytes, fingerprint fp) of an object that already has
 * JSON_KEYS_LINEAR keys or more through its table, and enters it (as key
 * kn). Returns 0 or the error. */
static int json_key_hashed(json_parser *ps, const uchar *s, size_t n, uint32_t fp)
{
    size_t cnt = ps->kn - ps->kstart;
    if (cnt == JSON_KEYS_LINEAR) { /* outgrows the scan */
        ps->ktab = ps->atop + 1;
        if (json_tab_build(ps, JSON_TAB_MIN, s - 1)) return ps->rc;
    }
    uint64_t *t = ps->arena + ps->ktab;
    size_t mask = (size_t)t[-1];
    if (JSON_UNLIKELY((cnt + 1) * 2 > mask + 1)) {
        if (json_tab_build(ps, (mask + 1) * 2, s - 1)) return ps->rc;
        t = ps->arena + ps->ktab;
        mask = (size_t)t[-1];
    }
    size_t j = fp & mask;
    for (uint64_t v; (v = t[j]) != 0; j = (j + 1) & mask)
        if ((uint32_t)(v >> 32) == fp && json_key_check(ps, (uint32_t)v - 1, s, n)) return ps->rc;
    t[j] = (uint64_t)fp << 32 | (ps->kn + 1);
    return 0;
}

/* The key arrays are full and key s is next. Returns 0 when they have room
 * again, 1 if s is not to be tracked, or the error. Keys are tracked only
 * within the first max_record bytes of a record, which bounds the memory
 * for them: a record that goes on fails anyway, as too large if for nothing
 * else. */
static JSON_COLD int json_keys_grow(json_parser *ps, const uchar *s)
{
    const uchar *at = s - 1;
    if ((size_t)(s - ps->rec) > ps->max_record) return 1;
    size_t cap = ps->kcap * 2;
    /* Table slots hold index + 1 in 32 bits. */
    if (cap >= UINT32_MAX || cap > SIZE_MAX / sizeof *ps->kref) return json_fail(ps, TARN_ENOMEM, at, "out of memory");
    uint32_t *fp = malloc(cap * sizeof *fp);
    const uchar **ref = malloc(cap * sizeof *ref);
    if (!fp || !ref) {
        free(fp);
        free((void *)ref);
        return json_fail(ps, TARN_ENOMEM, at, "out of memory");
    }
    memcpy(fp, ps->kfp, ps->kn * sizeof *fp);
    memcpy((void *)ref, (const void *)ps->kref, ps->kn * sizeof *ref);
    if (ps->kfp != ps->kfp_local) {
        free(ps->kfp);
        free((void *)ps->kref);
    }
    ps->kfp = fp;
    ps->kref = ref;
    ps->kcap = cap;
    json_klimit(ps);
    return 0;
}

/* json_key_add when kn reaches klimit: the arrays are full, or the object
 * has JSON_KEYS_LINEAR keys or more. Returns 0 to enter the key, 1 not to,
 * or the error. */
static int json_key_more(json_parser *ps, const uchar *s, size_t n, uint64_t h)
{
    if (ps->kn == ps->kcap) {
        int r = json_keys_grow(ps, s);
        if (r) return r;
    }
    if (ps->kn - ps->kstart >= JSON_KEYS_LINEAR) return json_key_hashed(ps, s, n, (uint32_t)h);
    uint64_t *w = &JSON_BLOOM_WORD(ps, h), bit = JSON_BLOOM_BIT(h);
    if ((*w & bit) && json_key_scan(ps, s, n, (uint32_t)h)) return ps->rc;
    *w |= bit;
    return 0;
}

/* Enters key s (n raw bytes, n >= 1, hash h) into the innermost object, or
 * records the error if the object already has it. Returns 0 or the error. */
static inline int json_key_add(json_parser *ps, const uchar *s, size_t n, uint64_t h)
{
    if (JSON_LIKELY(ps->kn < ps->klimit)) {
        uint64_t *w = &JSON_BLOOM_WORD(ps, h), bit = JSON_BLOOM_BIT(h);
        if (JSON_UNLIKELY(*w & bit) && json_key_scan(ps, s, n, (uint32_t)h)) return ps->rc;
        *w |= bit;
    } else {
        int r = json_key_more(ps, s, n, h);
        if (r) return r < 0 ? r : 0;
    }
    ps->kfp[ps->kn] = (uint32_t)h;
    ps->kref[ps->kn] = s;
    ps->kn++;
    return 0;
}

static JSON_COLD int json_objs_grow(json_parser *ps, const uchar *at)
{
    size_t cap = ps->objcap * 2;
    json_objstate *o = cap <= SIZE_MAX / sizeof *o ? malloc(cap * sizeof *o) : NULL;
    if (!o) return json_fail(ps, TARN_ENOMEM, at, "out of memory");
    memcpy(o, ps->objs, ps->nobjs * sizeof *o);
    if (ps->objs != ps->objs_local) free(ps->objs);
    ps->objs = o;
    ps->objcap = cap;
    return 0;
}

/* A nested object opens at p. Returns 0 or the error. */
static inline int json_object_push(json_parser *ps, const uchar *p)
{
    if (JSON_UNLIKELY(ps->nobjs == ps->objcap) && json_objs_grow(ps, p)) return ps->rc;
    json_objstate *o = &ps->objs[ps->nobjs++];
    o->kstart = ps->kstart;
    o->ktab = ps->ktab;
    memcpy(o->kbloom, ps->kbloom, sizeof o->kbloom);
    ps->kstart = ps->kn;
    memset(ps->kbloom, 0, sizeof ps->kbloom);
    json_klimit(ps);
    return 0;
}

/* The innermost object closes: its keys and table go, its parent's state
 * comes back. */
static inline void json_object_pop(json_parser *ps)
{
    if (JSON_UNLIKELY(ps->kn - ps->kstart > JSON_KEYS_LINEAR)) ps->atop = ps->ktab - 1;
    ps->kn = ps->kstart;
    if (ps->nobjs) {
        const json_objstate *o = &ps->objs[--ps->nobjs];
        ps->kstart = o->kstart;
        ps->ktab = o->ktab;
        memcpy(ps->kbloom, o->kbloom, sizeof ps->kbloom);
        json_klimit(ps);
    }
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
    ps->kn = ps->kstart = ps->nobjs = ps->atop = 0;
    memset(ps->kbloom, 0, sizeof ps->kbloom);
    json_klimit(ps);
    ps->rec = p;
    p++;

object_open: /* after '{' */
    p = json_skip_ws(p, end);
    if (p == end) goto eof;
    if (*p == '}') {
        p++;
        goto close_object;
    }
    if (*p != '"') return json_fail(ps, TARN_EJSON, p, "expected object key or '}'"), NULL;
    goto key;

object_next: /* after ',' in an object */
    p = json_skip_ws(p, end);
    if (p == end) goto eof;
    if (*p != '"') return json_fail(ps, TARN_EJSON, p, "expected object key after ','"), NULL;

key: { /* at the key's '"' */
    const uchar *quote = p, *s = p + 1;
    size_t n;
    uint64_t h;
#if defined(__SSE2__)
    /* Most keys are short and plain ASCII: one load finds the closing quote
     * and gives the bytes to hash. It may read past the end of an NDJSON
     * line, but the '\n' there stops it. */
    if (JSON_LIKELY(ps->body_end - s >= 16)) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)s);
        unsigned q = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_set1_epi8('"')));
        unsigned sp = (unsigned)_mm_movemask_epi8(
            _mm_or_si128(_mm_cmpeq_epi8(x, _mm_set1_epi8('\\')), _mm_cmplt_epi8(x, _mm_set1_epi8(0x20))));
        if (JSON_LIKELY(q && !(sp & ((q & -q) - 1)))) { /* a '"' before anything special */
            n = (size_t)__builtin_ctz(q);
            p = s + n + 1;
            if (JSON_UNLIKELY(n == 0)) return json_fail(ps, TARN_EINVAL, quote, "object key is empty"), NULL;
            if (depth == 1 && (*s == '_' || (*s | 0x20) == 'i') && json_check_key(ps, quote, p)) return NULL;
            h = json_hash_vec(ps, x, n);
            if (json_key_add(ps, s, n, h)) return NULL;
            goto key_colon;
        }
    }
#endif
    p = json_string(ps, s);
    if (!p) return NULL;
    n = (size_t)(p - s) - 1;
    if (JSON_UNLIKELY(n == 0)) return json_fail(ps, TARN_EINVAL, quote, "object key is empty"), NULL;
    /* Every reserved name starts with '_' or 'i'; the rest of the check is
     * out of line. */
    if (depth == 1 && (*s == '_' || (*s | 0x20) == 'i' || *s == '\\') && json_check_key(ps, quote, p))
        return NULL;
    /* An escaped key is unescaped to be hashed: not past max_record, which
     * bounds the memory for that (see json_keys_grow). */
    if ((size_t)(p - ps->rec) <= ps->max_record && (json_key_hash(ps, s, n, &h) || json_key_add(ps, s, n, h)))
        return NULL;
#if defined(__SSE2__)
key_colon:
#endif
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
        if (json_object_push(ps, p)) return NULL;
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

close_object: /* after a '}' */
    json_object_pop(ps);
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
            goto close_object;
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
    /* Keys and open objects of typical records, outside ps so as not to be
     * cleared with it. */
    uint32_t kfp_local[JSON_KEYS_LOCAL];
    const uchar *kref_local[JSON_KEYS_LOCAL];
    json_objstate objs_local[JSON_OBJS_LOCAL];

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
    ps.max_record = out.max_record;
    ps.err = err;
    ps.kfp = ps.kfp_local = kfp_local;
    ps.kref = ps.kref_local = kref_local;
    ps.kcap = JSON_KEYS_LOCAL;
    ps.objs = ps.objs_local = objs_local;
    ps.objcap = JSON_OBJS_LOCAL;
    uint64_t seed = json_seed();
    ps.seed[0] = seed;
    ps.seed[1] = json_mum(seed ^ UINT64_C(0xa0761d6478bd642f), UINT64_C(0xe7037ed1a0b428db));

    int rc = fmt == TARN_BODY_NDJSON ? json_split_ndjson(&ps, &out) : json_split_json(&ps, &out);
    free(ps.stack_heap);
    if (ps.kfp != ps.kfp_local) {
        free(ps.kfp);
        free((void *)ps.kref);
    }
    if (ps.objs != ps.objs_local) free(ps.objs);
    free(ps.arena);
    free(ps.scratch);
    if (rc) {
        free(out.v);
        return rc;
    }
    *spans = out.v;
    *n = out.n;
    return 0;
}
