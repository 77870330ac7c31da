/* kinds.h - the kinds of JSON values that the schema sample tells apart.
 *
 * Two records whose values have the same kinds at the same paths give
 * DuckDB's JSON inference nothing new to decide from, except through the
 * text of strings that might be a DATE, TIME, TIMESTAMP or UUID (stage.h,
 * "Why a schema sample"). The staging pass notes the (path, kind) pairs of a
 * batch with these (stage.c); the log scan checks a batch's values against
 * the kinds of its first records with them (scan.h, "Quick schema").
 */
#ifndef TARN_KINDS_H
#define TARN_KINDS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Kinds of values, as bits. */
#define SHAPE_OBJECT (1u << 0)
#define SHAPE_ARRAY (1u << 1)
#define SHAPE_BOOLEAN (1u << 2)
#define SHAPE_NULL (1u << 3)
#define SHAPE_UINT (1u << 4)    /* 0 .. 2^63-1 (DuckDB reads these as unsigned) */
#define SHAPE_UBIGINT (1u << 5) /* 2^63 .. 2^64-1 */
#define SHAPE_NEGINT (1u << 6)  /* -2^63 .. -1 */
#define SHAPE_NEGZERO (1u << 7) /* -0 */
#define SHAPE_BIGNUM (1u << 8)  /* any other integer (DuckDB: DOUBLE) */
#define SHAPE_REAL (1u << 9)    /* a fraction or an exponent */
#define SHAPE_STRING (1u << 10) /* text that cannot be a DATE, TIME, TIMESTAMP or UUID */
/* Text that might be one is kept apart by its length instead (0 .. 62, 63
 * for longer), in a second set of bits (text_lengths); a kind value
 * SHAPE_TEXT | length stands for it. */
#define SHAPE_TEXT (1u << 31)

/* Non-zero if DuckDB might read the string text s (n bytes as written) as
 * a DATE, TIME, TIMESTAMP or UUID. It casts leniently: leading spaces,
 * "infinity", "epoch", UUIDs in braces or without dashes all pass. Saying
 * yes wrongly only loses the chance to sample the string as plain text. */
static inline int shape_typed_text_slow(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && s[i] == ' ') i++;
    if (i == n) return 0;
    unsigned char c = (unsigned char)s[i];
    if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '{' || c == '\\') return 1;
    c |= 0x20;
    if (c >= 'a' && c <= 'f' && n - i >= 32) return 1; /* a UUID's hex digits */
    if (c == 'e') return n - i >= 5 && (s[i + 1] | 0x20) == 'p' && (s[i + 2] | 0x20) == 'o' &&
                         (s[i + 3] | 0x20) == 'c' && (s[i + 4] | 0x20) == 'h';
    if (c == 'i') return n - i >= 3 && (s[i + 1] | 0x20) == 'n' && (s[i + 2] | 0x20) == 'f';
    return 0;
}

/* shape_typed_text_slow's answer by the first byte: 0 no, 1 yes if the
 * text has 32 bytes or more (a UUID's hex digits), 2 yes, 4 ask it. */
static const unsigned char shape_first_byte[256] = {
    [' '] = 4, ['+'] = 2, ['-'] = 2, ['{'] = 2, ['\\'] = 2,
    ['0'] = 2, ['1'] = 2, ['2'] = 2, ['3'] = 2, ['4'] = 2, ['5'] = 2, ['6'] = 2, ['7'] = 2, ['8'] = 2, ['9'] = 2,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 4, ['F'] = 1, ['I'] = 4,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 4, ['f'] = 1, ['i'] = 4,
};

/* The kind of the string text s (n bytes as written; s[0] is readable even
 * when n is 0: the closing quote). */
static inline uint32_t shape_string_kind(const char *s, size_t n)
{
    unsigned cls = shape_first_byte[(unsigned char)s[0]];
    if (cls == 0) return SHAPE_STRING;
    if (cls == 2 || (cls == 1 && n >= 32) || (cls == 4 && shape_typed_text_slow(s, n)))
        return SHAPE_TEXT | (uint32_t)(n < 63 ? n : 63);
    return SHAPE_STRING;
}

/* The kind of the integer with n digits at d (no leading zeros). */
static inline uint32_t shape_integer(int negative, const char *d, size_t n)
{
    if (negative) {
        if (n == 1 && d[0] == '0') return SHAPE_NEGZERO;
        return n < 19 || (n == 19 && memcmp(d, "9223372036854775808", 19) <= 0) ? SHAPE_NEGINT : SHAPE_BIGNUM;
    }
    if (n < 19 || (n == 19 && memcmp(d, "9223372036854775807", 19) <= 0)) return SHAPE_UINT;
    return n == 19 || (n == 20 && memcmp(d, "18446744073709551615", 20) <= 0) ? SHAPE_UBIGINT : SHAPE_BIGNUM;
}

/* Whether kind is among kinds / text_lengths. */
static inline int shape_kind_in(uint32_t kinds, uint64_t text_lengths, uint32_t kind)
{
    return kind & SHAPE_TEXT ? (int)(text_lengths >> (kind & 63) & 1) : (kinds & kind) != 0;
}

/* Adds kind to kinds / text_lengths. */
static inline void shape_kind_add(uint32_t *kinds, uint64_t *text_lengths, uint32_t kind)
{
    if (kind & SHAPE_TEXT) *text_lengths |= 1ull << (kind & 63);
    else *kinds |= kind;
}

/* A few words for kind, for messages. */
static inline void shape_kind_name(uint32_t kind, char *out, size_t n)
{
    static const char *const names[] = {"an object", "an array", "a boolean", "null", "an integer",
                                        "an integer of 2^63 or more", "a negative integer", "-0",
                                        "an integer beyond 64 bits", "a number with a fraction or an exponent",
                                        "a string"};
    if (kind & SHAPE_TEXT) {
        unsigned len = kind & 63;
        snprintf(out, n, "a string that may be a date, a time or a UUID, %s%u bytes", len == 63 ? "63 or more " : "",
                 len);
        return;
    }
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
        if (kind == 1u << i) {
            snprintf(out, n, "%s", names[i]);
            return;
        }
    snprintf(out, n, "kind %#x", kind);
}

#endif
