/* stage.c - see stage.h. */
#include "delivery/stage.h"

#include <errno.h>
#include <fcntl.h>
#include <libdeflate.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "common/buf.h"
#include "common/util.h"

#define STAGE_GZIP_MEMBER (1u << 20)
#define STAGE_FILE_BUFFER (1u << 20)

typedef struct stage_file {
    int fd;
    tarn_buf out;     /* bytes waiting for write(2): stdio would lock per call */
    tarn_buf pending; /* raw: bytes waiting to become the next gzip member */
} stage_file;

/* ------------------------------------------------------------ shapes
 *
 * The (path, kind) pairs of a batch (stage.h) live in a tree of paths:
 * node 0 is the record object; an object's keys are its children, found by
 * hashing (parent, key bytes) and comparing the bytes; an array's elements
 * are one child without a key. Each node holds the kinds seen at its path.
 * Each node also remembers which key followed it last time (and an object
 * node which key came first), so that a walk compares the record's bytes
 * with that guess's key, closing quote and colon before it hashes.
 *
 * Walking a record through the tree costs about 1 ns a byte here, mostly
 * finding one token after the other. But most records of a batch are built
 * like one of the few before them: the same keys in the same order, other
 * values. So a walk also leaves a template of its record: a copy of it, and
 * for each scalar value its node, its kind and the piece before it (keys,
 * punctuation, brackets, whitespace). A record made of a recent template's
 * pieces, byte for byte, with scalar values between them of kinds their
 * nodes have seen, holds no new pair: its keys sit at the same paths and its
 * kinds are noted. That check costs one compare per piece and one scan per
 * value, about a third of a walk. Anything else (a piece differs, a kind is
 * new to its node) is walked; when records keep missing the templates
 * (optional keys, arrays of many lengths), a while goes without them. Both
 * paths compare bytes: a hash or a guess only chooses where to look, so no
 * collision can hide a pair.
 *
 * Memory: the tree at most TARN_STAGE_SHAPE_MAX_PATHS nodes of 40 bytes and
 * a hash table of twice as many slots, TARN_STAGE_SHAPE_MAX_KEY_BYTES of
 * keys, SHAPE_TEMPLATES + 1 templates of at most 64 KiB and 4,096 values,
 * and a stack of TARN_STAGE_SHAPE_MAX_DEPTH frames: about 12 MiB at most.
 */

/* Kinds of values, as bits of shape_node.kinds. */
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
 * for longer), in shape_node.text_lengths; a kind value SHAPE_TEXT | length
 * stands for it. */
#define SHAPE_TEXT (1u << 31)

#define SHAPE_TEMPLATES 4
#define SHAPE_WINDOW 64 /* if fewer than a quarter of this many records match a template, */
#define SHAPE_PAUSE 256 /* this many go without them */
#define SHAPE_TEMPLATE_MAX_BYTES (64u << 10) /* larger records are always walked */
#define SHAPE_TEMPLATE_MAX_VALUES 4096
/* Bytes readable after any key or piece we keep, so that they can be
 * compared 32 bytes at a time. */
#define SHAPE_PAD 32

typedef struct shape_node {
    uint64_t text_lengths; /* SHAPE_TEXT lengths seen, as bits */
    uint32_t kinds;        /* other SHAPE_* seen */
    uint32_t hash;
    uint32_t parent;
    uint32_t key_off, key_len; /* in stage_shape.keys */
    uint32_t first;            /* guess: the first key of the last object here (0: none) */
    uint32_t next;             /* guess: the key that followed this one last time (0: none) */
    uint32_t element;          /* the node of this path's array elements (0: none yet) */
    uint32_t key_mask;         /* the key and '":' in up to 32 bytes: one bit per byte; else 0 */
} shape_node;

typedef struct shape_frame {
    uint32_t node;  /* the object's or array's own node */
    uint32_t last;  /* object: the node of the previous key (0: none yet); array: the element node */
    uint32_t guess; /* object: the key expected next (0: none) */
    int array;
} shape_frame;

typedef struct shape_value {
    uint32_t node;
    uint32_t kind;       /* one SHAPE_* bit, or SHAPE_TEXT | length */
    uint32_t piece_off;  /* the bytes before the value, in the template's text */
    uint32_t piece_len;
    uint32_t piece_mask; /* a piece of up to 32 bytes: one bit per byte; else 0 */
} shape_value;

typedef struct shape_template {
    char *text; /* a copy of the record it was made from, and SHAPE_PAD more bytes */
    size_t text_len;
    shape_value *values;
    size_t nvalues, values_cap;
    uint32_t tail_off, tail_len; /* the piece after the last value */
    int clean;                   /* no raw CR or LF outside the values */
} shape_template;

typedef struct stage_shape {
    shape_node *nodes;
    uint32_t nnodes, cap;
    uint32_t *slots; /* open addressing on hash; 0 = empty (node 0 is never a key) */
    uint32_t nslots; /* a power of two, at least twice nnodes */
    char *keys;
    size_t keys_len, keys_cap;
    int full;    /* a limit was reached: unknown keys are no longer added */
    int ubigint; /* SHAPE_UBIGINT was seen */
    /* Templates: order[0 .. ntemplates) by last use, order[SHAPE_TEMPLATES]
     * the one the next walk fills. */
    shape_template templates[SHAPE_TEMPLATES + 1];
    int order[SHAPE_TEMPLATES + 1];
    int ntemplates;
    int window, hits; /* records of the current window, and those of them that matched a template */
    int pause;        /* records still to walk without trying or making templates */
    shape_frame stack[TARN_STAGE_SHAPE_MAX_DEPTH];
} stage_shape;

static uint32_t shape_hash(uint32_t parent, const char *k, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ ((uint64_t)parent << 32) ^ n;
    for (; n >= 8; k += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, k, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    if (n) {
        uint64_t w = 0;
        memcpy(&w, k, n);
        h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    }
    h ^= h >> 33;
    return (uint32_t)h;
}

static int shape_grow(void **p, uint32_t *cap, size_t size)
{
    void *n = realloc(*p, (size_t)*cap * 2 * size);
    if (!n) return TARN_ENOMEM;
    *p = n;
    *cap *= 2;
    return TARN_OK;
}

/* A new node under parent; keyed ones go into the hash table too. 0 if a
 * limit is reached (or memory is short): sh->full is then set. */
static uint32_t shape_add(stage_shape *sh, uint32_t parent, const char *key, size_t n, uint32_t hash)
{
    size_t room = key ? n + 2 : 0; /* a key is kept as written, then '":' */
    if (sh->full || sh->nnodes >= TARN_STAGE_SHAPE_MAX_PATHS || room > TARN_STAGE_SHAPE_MAX_KEY_BYTES - sh->keys_len)
        goto full;
    if (sh->nnodes == sh->cap && shape_grow((void **)&sh->nodes, &sh->cap, sizeof *sh->nodes)) goto full;
    if (room > sh->keys_cap - sh->keys_len) {
        size_t cap = sh->keys_cap * 2 > sh->keys_len + room ? sh->keys_cap * 2 : sh->keys_len + room;
        char *k = realloc(sh->keys, cap + SHAPE_PAD);
        if (!k) goto full;
        memset(k + cap, 0, SHAPE_PAD);
        sh->keys = k;
        sh->keys_cap = cap;
    }
    if (key && (sh->nnodes + 1) * 2 > sh->nslots) {
        uint32_t nslots = sh->nslots * 2;
        uint32_t *slots = calloc(nslots, sizeof *slots);
        if (!slots) goto full;
        for (uint32_t i = 0; i < sh->nslots; i++) {
            uint32_t id = sh->slots[i], j = sh->nodes[id].hash & (nslots - 1);
            if (!id) continue;
            while (slots[j]) j = (j + 1) & (nslots - 1);
            slots[j] = id;
        }
        free(sh->slots);
        sh->slots = slots;
        sh->nslots = nslots;
    }
    uint32_t id = sh->nnodes++;
    shape_node *nd = &sh->nodes[id];
    memset(nd, 0, sizeof *nd);
    nd->parent = parent;
    nd->hash = hash;
    nd->key_off = (uint32_t)sh->keys_len;
    nd->key_len = (uint32_t)n;
    nd->key_mask = room && room <= 32 ? 0xffffffffu >> (32 - room) : 0;
    if (key) {
        memcpy(sh->keys + sh->keys_len, key, n);
        memcpy(sh->keys + sh->keys_len + n, "\":", 2);
        sh->keys_len += room;
        uint32_t j = hash & (sh->nslots - 1);
        while (sh->slots[j]) j = (j + 1) & (sh->nslots - 1);
        sh->slots[j] = id;
    }
    return id;
full:
    sh->full = 1;
    return 0;
}

/* The node of key (n bytes as written) in the object at parent, added if
 * new; 0 if it is new but cannot be added. */
static uint32_t shape_child(stage_shape *sh, uint32_t parent, const char *key, size_t n)
{
    uint32_t h = shape_hash(parent, key, n), mask = sh->nslots - 1;
    for (uint32_t i = h & mask;; i = (i + 1) & mask) {
        uint32_t id = sh->slots[i];
        if (!id) return shape_add(sh, parent, key, n, h);
        const shape_node *nd = &sh->nodes[id];
        if (nd->hash == h && nd->parent == parent && nd->key_len == n && memcmp(sh->keys + nd->key_off, key, n) == 0)
            return id;
    }
}

static int shape_init(stage_shape *sh)
{
    memset(sh, 0, offsetof(stage_shape, stack));
    sh->cap = 256;
    sh->nslots = 512;
    sh->keys_cap = 4096;
    sh->nodes = malloc(sh->cap * sizeof *sh->nodes);
    sh->slots = calloc(sh->nslots, sizeof *sh->slots);
    sh->keys = calloc(1, sh->keys_cap + SHAPE_PAD);
    if (!sh->nodes || !sh->slots || !sh->keys) return TARN_ENOMEM;
    memset(&sh->nodes[0], 0, sizeof sh->nodes[0]); /* the record object */
    sh->nnodes = 1;
    for (int i = 0; i <= SHAPE_TEMPLATES; i++) sh->order[i] = i;
    return TARN_OK;
}

static void shape_free(stage_shape *sh)
{
    free(sh->nodes);
    free(sh->slots);
    free(sh->keys);
    for (int i = 0; i <= SHAPE_TEMPLATES; i++) {
        free(sh->templates[i].text);
        free(sh->templates[i].values);
    }
}

#if defined(__GNUC__)
#define SHAPE_INLINE static inline __attribute__((always_inline))
#else
#define SHAPE_INLINE static inline
#endif

/* The closing quote of the string whose text starts at p, or NULL. */
SHAPE_INLINE const char *shape_string_end(const char *p, const char *end)
{
#ifdef __SSE2__
    const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
    while (end - p >= 16) {
        __m128i a = _mm_loadu_si128((const __m128i *)(const void *)p);
        unsigned q = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(a, quote));
        unsigned e = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(a, backslash));
        if (!e) {
            if (q) return p + __builtin_ctz(q);
            p += 16;
        } else if (q && !(e & ((q & -q) - 1))) {
            return p + __builtin_ctz(q);
        } else {
            p += __builtin_ctz(e) + 2; /* an escape: the byte after the backslash is not special */
        }
    }
#endif
    while (p < end) {
        if (*p == '"') return p;
        p += *p == '\\' ? 2 : 1;
    }
    return NULL;
}

/* Non-zero if the n bytes at p equal those at t; p .. end is readable, and
 * so are SHAPE_PAD bytes past t + n. */
SHAPE_INLINE int shape_bytes_equal(const char *p, const char *end, const char *t, size_t n)
{
    if ((size_t)(end - p) < n) return 0;
#ifdef __SSE2__
    if (end - p >= 32) {
        /* Most pieces and keys are up to 32 bytes: one masked compare. */
        do {
            __m128i a0 = _mm_loadu_si128((const __m128i *)(const void *)p);
            __m128i a1 = _mm_loadu_si128((const __m128i *)(const void *)(p + 16));
            __m128i b0 = _mm_loadu_si128((const __m128i *)(const void *)t);
            __m128i b1 = _mm_loadu_si128((const __m128i *)(const void *)(t + 16));
            uint32_t eq = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(a0, b0)) |
                          (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(a1, b1)) << 16;
            if (n <= 32) return (eq | (uint32_t)(0xffffffffull << n)) == 0xffffffffu;
            if (eq != 0xffffffffu) return 0;
            p += 32;
            t += 32;
            n -= 32;
        } while (end - p >= 32);
    }
    if (n <= 16 && end - p >= 16) {
        unsigned eq = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(const void *)p),
                                                                 _mm_loadu_si128((const __m128i *)(const void *)t)));
        return ((eq | (0xffffu << n)) & 0xffffu) == 0xffffu;
    }
#endif
    return memcmp(p, t, n) == 0;
}

#ifdef __SSE2__
/* Non-zero if the bytes of p and x agree wherever mask (bit i: byte i, up
 * to 32 bytes) is set. 32 bytes of each must be readable. */
SHAPE_INLINE int shape_masked_equal32(const char *p, const char *x, uint32_t mask)
{
    uint32_t eq = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(const void *)p),
                                                             _mm_loadu_si128((const __m128i *)(const void *)x)));
    if (mask > 0xffffu)
        eq |= (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(const void *)(p + 16)),
                                                         _mm_loadu_si128((const __m128i *)(const void *)(x + 16))))
              << 16;
    return (eq & mask) == mask;
}
#endif

/* Non-zero if the key of node g, its closing quote and a colon are at p
 * (p .. end readable). */
SHAPE_INLINE int shape_key_equal(const stage_shape *sh, const shape_node *g, const char *p, const char *end)
{
    const char *k = sh->keys + g->key_off;
#ifdef __SSE2__
    if (g->key_mask && end - p >= 32) return shape_masked_equal32(p, k, g->key_mask);
#endif
    return shape_bytes_equal(p, end, k, g->key_len + 2);
}

/* Non-zero if DuckDB might read the string text s (n bytes as written) as
 * a DATE, TIME, TIMESTAMP or UUID. It casts leniently: leading spaces,
 * "infinity", "epoch", UUIDs in braces or without dashes all pass. Saying
 * yes wrongly only loses the chance to sample the string as plain text. */
static int shape_typed_text_slow(const char *s, size_t n)
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
SHAPE_INLINE uint32_t shape_string_kind(const char *s, size_t n)
{
    unsigned cls = shape_first_byte[(unsigned char)s[0]];
    if (cls == 0) return SHAPE_STRING;
    if (cls == 2 || (cls == 1 && n >= 32) || (cls == 4 && shape_typed_text_slow(s, n)))
        return SHAPE_TEXT | (uint32_t)(n < 63 ? n : 63);
    return SHAPE_STRING;
}

/* The kind of the integer with n digits at d (no leading zeros). */
SHAPE_INLINE uint32_t shape_integer(int negative, const char *d, size_t n)
{
    if (negative) {
        if (n == 1 && d[0] == '0') return SHAPE_NEGZERO;
        return n < 19 || (n == 19 && memcmp(d, "9223372036854775808", 19) <= 0) ? SHAPE_NEGINT : SHAPE_BIGNUM;
    }
    if (n < 19 || (n == 19 && memcmp(d, "9223372036854775807", 19) <= 0)) return SHAPE_UINT;
    return n == 19 || (n == 20 && memcmp(d, "18446744073709551615", 20) <= 0) ? SHAPE_UBIGINT : SHAPE_BIGNUM;
}

/* The end of the run of digits at p. */
SHAPE_INLINE const char *shape_digits(const char *p, const char *end)
{
#ifdef __SSE2__
    while (end - p >= 16) {
        /* byte - '0' <= 9, 16 bytes at once */
        __m128i v = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)(const void *)p), _mm_set1_epi8('0'));
        unsigned digits = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_subs_epu8(v, _mm_set1_epi8(9)),
                                                                     _mm_setzero_si128()));
        if (digits != 0xffffu) return p + __builtin_ctz(~digits);
        p += 16;
    }
#endif
    while (p < end && (unsigned char)(*p - '0') < 10) p++;
    return p;
}

/* The scalar value at p (p < end): its kind in *kind and the byte after it,
 * or NULL if p holds no scalar (an object, an array, or a surprise). */
SHAPE_INLINE const char *shape_scalar(const char *p, const char *end, uint32_t *kind)
{
    if (*p == '"') {
        const char *s = p + 1, *e = shape_string_end(s, end);
        if (!e) return NULL;
        *kind = shape_string_kind(s, (size_t)(e - s));
        return e + 1;
    }
    switch (*p) {
    case 't':
    case 'n':
        *kind = *p == 'n' ? SHAPE_NULL : SHAPE_BOOLEAN;
        return end - p >= 4 ? p + 4 : NULL;
    case 'f':
        *kind = SHAPE_BOOLEAN;
        return end - p >= 5 ? p + 5 : NULL;
    default: {
        int negative = *p == '-';
        const char *d = p + negative;
        if ((p = shape_digits(d, end)) == d) return NULL;
        if (p < end && (*p == '.' || *p == 'e' || *p == 'E')) {
            if (*p == '.') p = shape_digits(p + 1, end);
            if (p < end && (*p == 'e' || *p == 'E')) {
                p++;
                if (p < end && (*p == '+' || *p == '-')) p++;
                p = shape_digits(p, end);
            }
            *kind = SHAPE_REAL;
        } else {
            *kind = shape_integer(negative, d, (size_t)(p - d));
        }
        return p;
    }
    }
}

SHAPE_INLINE int shape_seen(const shape_node *n, uint32_t kind)
{
    return kind & SHAPE_TEXT ? (int)(n->text_lengths >> (kind & 63) & 1) : (n->kinds & kind) != 0;
}

/* Notes a kind at a node; non-zero if it is new there. */
SHAPE_INLINE int shape_note(stage_shape *sh, shape_node *n, uint32_t kind)
{
    if (shape_seen(n, kind)) return 0;
    if (kind & SHAPE_TEXT) n->text_lengths |= 1ull << (kind & 63);
    else n->kinds |= kind;
    if (kind == SHAPE_UBIGINT) sh->ubigint = 1;
    return 1;
}

/* Starts a template of the record rec (len bytes) in t, keeping a copy of
 * it: the pieces are the bytes of that copy between the values. Non-zero if
 * the record is too large for one (or memory is short). */
static int shape_template_start(shape_template *t, const char *rec, size_t len)
{
    t->nvalues = 0;
    t->text_len = 0;
    if (len > SHAPE_TEMPLATE_MAX_BYTES) return 1;
    if (!t->text && !(t->text = calloc(1, SHAPE_TEMPLATE_MAX_BYTES + SHAPE_PAD))) return 1;
    memcpy(t->text, rec, len);
    t->text_len = len;
    return 0;
}

/* Adds a value to a template being built: its node and kind, and the piece
 * before it, bytes from .. to of the record (offsets into t's copy). Non-zero
 * past the template limit. */
static int shape_template_add(shape_template *t, size_t from, size_t to, uint32_t node, uint32_t kind)
{
    if (t->nvalues >= SHAPE_TEMPLATE_MAX_VALUES) return 1;
    if (t->nvalues == t->values_cap) {
        size_t cap = t->values_cap ? t->values_cap * 2 : 64;
        shape_value *v = realloc(t->values, cap * sizeof *v);
        if (!v) return 1;
        t->values = v;
        t->values_cap = cap;
    }
    uint32_t n = (uint32_t)(to - from), mask = n == 0 || n > 32 ? 0 : 0xffffffffu >> (32 - n);
    t->values[t->nvalues++] = (shape_value){node, kind, (uint32_t)from, n, mask};
    return 0;
}

/* Non-zero if the piece before value v is at p (p .. end readable). */
SHAPE_INLINE int shape_piece_equal(const char *p, const char *end, const shape_template *t, const shape_value *v)
{
    const char *x = t->text + v->piece_off;
#ifdef __SSE2__
    /* The usual piece: up to 32 bytes, well before the record's end. */
    if (v->piece_mask && end - p >= 32) return shape_masked_equal32(p, x, v->piece_mask);
#endif
    if (v->piece_len <= 4 && end - p >= 4) { /* the record's end: a brace or two */
        for (uint32_t i = 0; i < v->piece_len; i++)
            if (p[i] != x[i]) return 0;
        return 1;
    }
    return shape_bytes_equal(p, end, x, v->piece_len);
}

/* Non-zero if the record is made of t's pieces with values of kinds their
 * nodes have seen: it holds no new pair. */
static int shape_match(const stage_shape *sh, const shape_template *t, const char *rec, size_t len)
{
    const char *p = rec, *end = rec + len;
    for (size_t i = 0; i < t->nvalues; i++) {
        const shape_value *v = &t->values[i];
        if (!shape_piece_equal(p, end, t, v)) return 0;
        p += v->piece_len;
        uint32_t kind;
        if (p >= end || !(p = shape_scalar(p, end, &kind))) return 0;
        if (kind != v->kind && !shape_seen(&sh->nodes[v->node], kind)) return 0;
    }
    return (size_t)(end - p) == t->tail_len && shape_bytes_equal(p, end, t->text + t->tail_off, t->tail_len);
}

/* Skips whitespace, noting in crlf whether it held a raw CR or LF. */
#define SHAPE_WS(p, end, crlf)                                 \
    while ((p) < (end) && (unsigned char)*(p) <= ' ') {        \
        (crlf) |= *(p) == '\n' || *(p) == '\r';                \
        (p)++;                                                 \
    }

/* Walks the record through the tree of paths, noting its pairs; returns
 * non-zero if one is new to the batch. Builds the record's template in t
 * unless t is NULL; *complete says whether it is usable (not if a template
 * limit was passed).
 * A record that is not what the ingest guarantees (one valid JSON object),
 * or that passes a limit of the tree, counts as new: it is then in the
 * sample whatever it holds. */
static int shape_walk(stage_shape *sh, const char *rec, size_t len, shape_template *t, int *complete)
{
    shape_frame *st = sh->stack, *f = NULL; /* f: the innermost open object or array */
    const char *p = rec, *end = rec + len, *piece = rec;
    int depth = 0, novel = 0, crlf = 0;
    uint32_t cur = 0; /* the node of the value being read */
    int templ = t && !shape_template_start(t, rec, len);
    *complete = 0;

    SHAPE_WS(p, end, crlf);
    if (p >= end || *p != '{') return 1;
value:
    SHAPE_WS(p, end, crlf);
    if (p >= end) return 1;
    if (*p != '{' && *p != '[') {
        uint32_t kind;
        const char *start = p;
        if (!(p = shape_scalar(p, end, &kind))) return 1;
        novel |= shape_note(sh, &sh->nodes[cur], kind);
        if (templ && shape_template_add(t, (size_t)(piece - rec), (size_t)(start - rec), cur, kind)) templ = 0;
        piece = p;
        goto after;
    } else {
        int array = *p == '[';
        novel |= shape_note(sh, &sh->nodes[cur], array ? SHAPE_ARRAY : SHAPE_OBJECT);
        if (depth == TARN_STAGE_SHAPE_MAX_DEPTH) return 1;
        f = &st[depth++];
        f->node = cur;
        f->array = array;
        f->last = 0;
        f->guess = array ? 0 : sh->nodes[cur].first;
        p++;
        SHAPE_WS(p, end, crlf);
        if (p < end && *p == (array ? ']' : '}')) {
            p++;
            f = --depth ? &st[depth - 1] : NULL;
            goto after;
        }
        if (array) goto element;
        goto key;
    }
element:
    if (!f->last) {
        uint32_t e = sh->nodes[f->node].element;
        if (!e) {
            if (!(e = shape_add(sh, f->node, NULL, 0, 0))) return 1;
            sh->nodes[f->node].element = e;
        }
        f->last = e;
    }
    cur = f->last;
    goto value;
key: {
    if (p >= end || *p != '"') return 1;
    uint32_t guess = f->guess;
    const shape_node *g = &sh->nodes[guess];
    /* The guessed key, its closing quote and the colon, as kept: that quote
     * closes the key (a key as written never ends in an escaping backslash),
     * so the key is the guess. If an optional key is missing, the one after
     * the guess is. */
    if (guess && !shape_key_equal(sh, g, p + 1, end) && (guess = g->next)) g = &sh->nodes[guess];
    if (guess && shape_key_equal(sh, g, p + 1, end)) {
        cur = guess;
        p += g->key_len + 3;
    } else {
        const char *k = p + 1, *q = shape_string_end(k, end);
        if (!q) return 1;
        size_t n = (size_t)(q - k);
        p = q + 1;
        SHAPE_WS(p, end, crlf);
        if (p >= end || *p != ':') return 1;
        p++;
        if (!(cur = shape_child(sh, f->node, k, n))) return 1;
        if (f->last) sh->nodes[f->last].next = cur;
        else sh->nodes[f->node].first = cur;
    }
    f->last = cur;
    f->guess = sh->nodes[cur].next;
    goto value;
}
after:
    if (!depth) {
        SHAPE_WS(p, end, crlf); /* after the record: part of the last piece */
        if (templ) {
            t->tail_off = (uint32_t)(piece - rec);
            t->tail_len = (uint32_t)(end - piece);
            t->clean = !crlf && p == end;
            *complete = 1;
        }
        return novel;
    }
    if (p < end && *p == ',') { /* the usual case: no whitespace */
        p++;
        if (f->array) goto element;
        if (p < end && *p == '"') goto key;
        SHAPE_WS(p, end, crlf);
        goto key;
    }
    SHAPE_WS(p, end, crlf);
    if (p >= end) return 1;
    if (*p == ',') {
        p++;
        SHAPE_WS(p, end, crlf);
        if (f->array) goto element;
        goto key;
    }
    if (*p != (f->array ? ']' : '}')) return 1;
    p++;
    f = --depth ? &st[depth - 1] : NULL;
    goto after;
}

/* What shape_record says of a record, as bits. */
#define SHAPE_RECORD_NEW 1   /* it shows a pair new to the batch */
#define SHAPE_RECORD_CLEAN 2 /* it holds no raw CR or LF (so, being valid JSON, none in its strings either) */

/* Notes the pairs of one record (len bytes). */
static int shape_record(stage_shape *sh, const char *rec, size_t len)
{
    int complete = 0;
    if (sh->pause) {
        sh->pause--;
        return shape_walk(sh, rec, len, NULL, &complete) ? SHAPE_RECORD_NEW : 0;
    }
    /* Records of many shapes (keys present or not in many ways, arrays of
     * many lengths) rarely match a template: trying and making templates
     * would only add to the cost of walking them, so when few match, a
     * while goes without. */
    if (++sh->window == SHAPE_WINDOW) {
        if (sh->hits < SHAPE_WINDOW / 4) sh->pause = SHAPE_PAUSE;
        sh->window = sh->hits = 0;
    }
    for (int i = 0; i < sh->ntemplates; i++) {
        int id = sh->order[i];
        if (shape_match(sh, &sh->templates[id], rec, len)) {
            for (; i > 0; i--) sh->order[i] = sh->order[i - 1];
            sh->order[0] = id;
            sh->hits++;
            return sh->templates[id].clean ? SHAPE_RECORD_CLEAN : 0;
        }
    }
    int id = sh->order[SHAPE_TEMPLATES];
    int novel = shape_walk(sh, rec, len, &sh->templates[id], &complete);
    if (!complete) return novel ? SHAPE_RECORD_NEW : 0;
    /* The new template goes first; the least recently used one (or an unused
     * one) is filled next time. */
    int i = sh->ntemplates < SHAPE_TEMPLATES ? sh->ntemplates++ : SHAPE_TEMPLATES - 1;
    sh->order[SHAPE_TEMPLATES] = sh->order[i];
    for (; i > 0; i--) sh->order[i] = sh->order[i - 1];
    sh->order[0] = id;
    return (novel ? SHAPE_RECORD_NEW : 0) | (sh->templates[id].clean ? SHAPE_RECORD_CLEAN : 0);
}

/* ------------------------------------------------------------ staging */

typedef struct stage_ctx {
    enum tarn_stage_kind kind;
    const char *dir;
    tarn_stage_result *res;
    stage_file *files; /* parallel to res->parts */
    struct libdeflate_compressor *gz;
    char *gzout;
    size_t gzout_cap;
    tarn_buf line;
    /* Processed: the schema sample (stage.h). */
    stage_shape *shape; /* NULL once the sample is given up */
    stage_file sample;
    size_t sample_bytes;
    int64_t records;    /* staged so far */
    int64_t spread_every, spread_left;
    int64_t expected;   /* records this batch may hold: upto_seq - from_seq */
    size_t max_bytes;
    /* Formatting caches: a batch's records come in appends sharing one time. */
    int64_t ts_cached;
    char ts_text[32];
    int64_t day_cached;
    char date_text[11];
    tarn_errbuf *eb;
} stage_ctx;

static const char *stage_path(stage_ctx *c, const stage_file *f)
{
    return f == &c->sample ? c->res->sample_path : c->res->parts[f - c->files].path;
}

/* write(2) all of p, or an error naming the staged file. */
static int stage_write_all(stage_ctx *c, stage_file *f, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(f->fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            int e = errno;
            return tarn_errbuf_set(c->eb, tarn_err_from_write_errno(e), "writing %s: %s", stage_path(c, f),
                                   strerror(e));
        }
        p += w;
        n -= (size_t)w;
    }
    return TARN_OK;
}

static int stage_drain(stage_ctx *c, stage_file *f)
{
    int rc = stage_write_all(c, f, f->out.data, f->out.len);
    tarn_buf_reset(&f->out);
    return rc;
}

static int stage_write(stage_ctx *c, stage_file *f, const void *p, size_t n)
{
    if (f->out.len + n > STAGE_FILE_BUFFER) {
        int rc = stage_drain(c, f);
        if (rc) return rc;
    }
    /* A record larger than the buffer goes straight through. */
    if (n > STAGE_FILE_BUFFER) return stage_write_all(c, f, p, n);
    return tarn_buf_append(&f->out, p, n);
}

/* Compresses the pending bytes of a raw file into one gzip member. */
static int stage_gzip_flush(stage_ctx *c, size_t part)
{
    tarn_buf *b = &c->files[part].pending;
    if (b->len == 0) return TARN_OK;
    size_t bound = libdeflate_gzip_compress_bound(c->gz, b->len);
    if (bound > c->gzout_cap) {
        char *n = realloc(c->gzout, bound);
        if (!n) return TARN_ENOMEM;
        c->gzout = n;
        c->gzout_cap = bound;
    }
    size_t z = libdeflate_gzip_compress(c->gz, b->data, b->len, c->gzout, c->gzout_cap);
    if (z == 0) return tarn_errbuf_set(c->eb, TARN_EINTERNAL, "gzip compression failed");
    tarn_buf_reset(b);
    return stage_write(c, &c->files[part], c->gzout, z);
}

/* The part of a date, created on its first record. */
static int stage_part(stage_ctx *c, const char *date, size_t *out)
{
    tarn_stage_result *r = c->res;
    for (size_t i = r->nparts; i-- > 0;)
        if (memcmp(r->parts[i].date, date, 11) == 0) {
            *out = i;
            return TARN_OK;
        }
    tarn_stage_part *np = realloc(r->parts, (r->nparts + 1) * sizeof *np);
    if (!np) return TARN_ENOMEM;
    r->parts = np;
    stage_file *nf = realloc(c->files, (r->nparts + 1) * sizeof *nf);
    if (!nf) return TARN_ENOMEM;
    c->files = nf;
    tarn_stage_part *p = &r->parts[r->nparts];
    stage_file *f = &c->files[r->nparts];
    memset(p, 0, sizeof *p);
    memset(f, 0, sizeof *f);
    f->fd = -1;
    memcpy(p->date, date, 11);
    snprintf(p->path, sizeof p->path, "%s/%s.%s", c->dir, date, c->kind == TARN_STAGE_RAW ? "json.gz" : "ndjson");
    tarn_buf_init(&f->pending, STAGE_GZIP_MEMBER * 2 + (64u << 20));
    tarn_buf_init(&f->out, STAGE_FILE_BUFFER);
    *out = r->nparts++; /* counted now, so that a failure below is cleaned up */
    f->fd = open(p->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (f->fd < 0) {
        int e = errno;
        return tarn_errbuf_set(c->eb, tarn_err_from_write_errno(e), "creating %s: %s", p->path, strerror(e));
    }
    return TARN_OK;
}

/* Appends n bytes of a record to line with raw line breaks as spaces: in
 * valid JSON a raw CR or LF can only be whitespace. */
static int stage_one_line(tarn_buf *line, const char *data, size_t n)
{
    int rc = tarn_buf_reserve(line, n);
    if (rc) return rc;
    char *dst = line->data + line->len;
    memcpy(dst, data, n);
    for (char *p = memchr(dst, '\n', n); p; p = memchr(p, '\n', (size_t)(dst + n - p))) *p = ' ';
    for (char *p = memchr(dst, '\r', n); p; p = memchr(p, '\r', (size_t)(dst + n - p))) *p = ' ';
    line->len += n;
    line->data[line->len] = '\0';
    return TARN_OK;
}

/* Gives the sample up (past its size limit): the delivery will infer from
 * every record instead. */
static void stage_sample_drop(stage_ctx *c)
{
    stage_file *f = &c->sample;
    if (f->fd >= 0) close(f->fd);
    f->fd = -1;
    if (c->res->sample_path[0]) unlink(c->res->sample_path);
    c->res->sample_path[0] = '\0';
    c->res->sample_rows = 0;
    tarn_buf_free(&f->out);
    shape_free(c->shape);
    free(c->shape);
    c->shape = NULL;
}

/* Copies a record's processed line (body, then tail) into the sample if it
 * belongs there (stage.h): if it is new (shows a new pair), in the head, or
 * due for the spread. */
static int stage_sample(stage_ctx *c, int take, const char *body, size_t body_len, const char *tail, size_t tail_len)
{
    int64_t k = c->records++;
    if (k < TARN_STAGE_SAMPLE_HEAD) {
        take = 1;
    } else {
        if (k == TARN_STAGE_SAMPLE_HEAD) {
            /* The rest of the batch, as far as upto_seq and the byte budget
             * let one guess from the head's record size. */
            uint64_t avg = (uint64_t)c->res->bytes / TARN_STAGE_SAMPLE_HEAD + 1, by_bytes = c->max_bytes / avg + 1;
            int64_t rest = (uint64_t)c->expected > by_bytes ? (int64_t)by_bytes : c->expected;
            rest -= TARN_STAGE_SAMPLE_HEAD;
            c->spread_every = 1;
            if (rest > TARN_STAGE_SAMPLE_SPREAD)
                c->spread_every = (rest + TARN_STAGE_SAMPLE_SPREAD - 1) / TARN_STAGE_SAMPLE_SPREAD;
            c->spread_left = TARN_STAGE_SAMPLE_SPREAD;
        }
        if (c->spread_left > 0 && (k - TARN_STAGE_SAMPLE_HEAD + 1) % c->spread_every == 0) {
            c->spread_left--;
            take = 1;
        }
    }
    if (!take) return TARN_OK;
    stage_file *f = &c->sample;
    if (c->sample_bytes + body_len + tail_len > TARN_STAGE_SAMPLE_MAX_BYTES) {
        stage_sample_drop(c);
        return TARN_OK;
    }
    if (f->fd < 0) {
        snprintf(c->res->sample_path, sizeof c->res->sample_path, "%s/sample.ndjson", c->dir);
        f->fd = open(c->res->sample_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (f->fd < 0) {
            int e = errno;
            return tarn_errbuf_set(c->eb, tarn_err_from_write_errno(e), "creating %s: %s", c->res->sample_path,
                                   strerror(e));
        }
    }
    c->sample_bytes += body_len + tail_len;
    c->res->sample_rows++;
    int rc = stage_write(c, f, body, body_len);
    return rc ? rc : stage_write(c, f, tail, tail_len);
}

static int stage_record(stage_ctx *c, int64_t seq, int64_t ts, const char *data, size_t len)
{
    int64_t day = ts >= 0 ? ts / 86400000000LL : (ts - 86399999999LL) / 86400000000LL;
    if (day != c->day_cached || !c->date_text[0]) {
        tarn_format_date(ts, c->date_text);
        c->day_cached = day;
    }
    size_t part = 0;
    int rc = stage_part(c, c->date_text, &part);
    if (rc) return rc;
    tarn_stage_part *p = &c->res->parts[part];
    if (!p->rows) p->first_seq = seq;
    p->last_seq = seq;
    p->rows++;

    if (c->kind == TARN_STAGE_RAW) {
        tarn_buf *b = &c->files[part].pending;
        if ((rc = stage_one_line(b, data, len)) || (rc = tarn_buf_append_char(b, '\n'))) return rc;
        return b->len >= STAGE_GZIP_MEMBER ? stage_gzip_flush(c, part) : TARN_OK;
    }

    /* Processed: the object with the two columns added before its closing
     * brace (the ingest API guarantees one valid object whose top-level keys
     * are not these names). */
    size_t end = len;
    while (end > 0 && data[end - 1] != '}') end--;
    if (end == 0) return tarn_errbuf_set(c->eb, TARN_ECORRUPT, "record %lld is not an object", (long long)seq);
    size_t inner = end - 1, k = inner;
    while (k > 0 && (data[k - 1] == ' ' || data[k - 1] == '\t' || data[k - 1] == '\n' || data[k - 1] == '\r')) k--;
    int empty = k > 0 && data[k - 1] == '{';
    if (ts != c->ts_cached || !c->ts_text[0]) {
        tarn_format_timestamp(ts, c->ts_text);
        c->ts_cached = ts;
    }
    /* Hand-built rather than printf'd: this runs once per record. */
    char tail[96];
    size_t n = 0;
    static const char k1[] = ",\"_ingested_at\":\"", k2[] = "\",\"_seq\":";
    memcpy(tail, k1 + empty, sizeof k1 - 1 - (size_t)empty);
    n = sizeof k1 - 1 - (size_t)empty;
    size_t tl = strlen(c->ts_text);
    memcpy(tail + n, c->ts_text, tl);
    n += tl;
    memcpy(tail + n, k2, sizeof k2 - 1);
    n += sizeof k2 - 1;
    char digits[24];
    size_t nd = 0;
    uint64_t v = (uint64_t)seq;
    do digits[nd++] = (char)('0' + v % 10); while ((v /= 10) != 0);
    while (nd) tail[n++] = digits[--nd];
    tail[n++] = '}';
    tail[n++] = '\n';
    /* A record the shapes say is clean needs no search for line breaks. */
    int shape = c->shape ? shape_record(c->shape, data, len) : 0;
    const char *body = data; /* the usual case: no copy */
    size_t body_len = inner;
    if (!(shape & SHAPE_RECORD_CLEAN) && (memchr(data, '\n', inner) || memchr(data, '\r', inner))) {
        tarn_buf_reset(&c->line);
        if ((rc = stage_one_line(&c->line, data, inner))) return rc;
        body = c->line.data;
        body_len = c->line.len;
    }
    stage_file *f = &c->files[part];
    if ((rc = stage_write(c, f, body, body_len)) || (rc = stage_write(c, f, tail, n))) return rc;
    return c->shape ? stage_sample(c, shape & SHAPE_RECORD_NEW, body, body_len, tail, n) : TARN_OK;
}

static int stage_close_files(stage_ctx *c, int ok)
{
    int rc = TARN_OK;
    for (size_t i = 0; i < c->res->nparts; i++) {
        stage_file *f = &c->files[i];
        if (ok && !rc && c->kind == TARN_STAGE_RAW) rc = stage_gzip_flush(c, i);
        if (ok && !rc && f->fd >= 0) rc = stage_drain(c, f);
        if (f->fd >= 0) close(f->fd);
        tarn_buf_free(&f->out);
        tarn_buf_free(&f->pending);
    }
    free(c->files);
    c->files = NULL;
    if (ok && !rc && c->sample.fd >= 0) rc = stage_drain(c, &c->sample);
    if (c->sample.fd >= 0) close(c->sample.fd);
    c->sample.fd = -1;
    tarn_buf_free(&c->sample.out);
    return rc;
}

int tarn_stage_batch(tarn_stream *s, enum tarn_stage_kind kind, int64_t from_seq, int64_t upto_seq, size_t max_bytes,
                     const char *dir, tarn_stage_result *out, tarn_errbuf *eb)
{
    memset(out, 0, sizeof *out);
    out->last_seq = from_seq;
    stage_ctx c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.dir = dir;
    c.res = out;
    c.eb = eb;
    c.ts_cached = -1;
    c.day_cached = -1;
    c.sample.fd = -1;
    c.expected = upto_seq > from_seq ? upto_seq - from_seq : 0;
    c.max_bytes = max_bytes;
    tarn_buf_init(&c.line, 64u << 20);
    tarn_buf_init(&c.sample.out, STAGE_FILE_BUFFER);
    if (kind == TARN_STAGE_RAW && !(c.gz = libdeflate_alloc_compressor(1))) return TARN_ENOMEM;
    if (kind == TARN_STAGE_PROCESSED) {
        if (!(c.shape = malloc(sizeof *c.shape))) return TARN_ENOMEM;
        if (shape_init(c.shape)) {
            shape_free(c.shape);
            free(c.shape);
            return TARN_ENOMEM;
        }
    }

    tarn_stream_reader *r = NULL;
    int rc = tarn_stream_reader_open(s, from_seq, &r, eb);
    while (rc == TARN_OK) {
        int64_t seq, ts;
        const char *data;
        size_t len;
        int more = tarn_stream_reader_next(r, &seq, &ts, &data, &len, eb);
        if (more < 0) rc = more;
        if (more <= 0 || seq > upto_seq) break;
        if ((rc = stage_record(&c, seq, ts, data, len)) == TARN_ENOMEM) rc = tarn_errbuf_set(eb, rc, "out of memory staging");
        out->last_seq = seq;
        out->bytes += (int64_t)len;
        if ((size_t)out->bytes >= max_bytes) break;
    }
    if (r) tarn_stream_reader_close(r);
    int crc = stage_close_files(&c, rc == TARN_OK);
    if (rc == TARN_OK) rc = crc;
    if (c.shape) {
        out->ubigint_values = c.shape->ubigint;
        shape_free(c.shape);
        free(c.shape);
    }
    libdeflate_free_compressor(c.gz);
    free(c.gzout);
    tarn_buf_free(&c.line);
    if (rc) tarn_stage_result_free(out);
    return rc;
}

void tarn_stage_result_free(tarn_stage_result *r)
{
    free(r->parts);
    memset(r, 0, sizeof *r);
}
