/* stage.c - see stage.h. */
#include "delivery/stage.h"

#include <errno.h>
#include <fcntl.h>
#include <libdeflate.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "common/buf.h"
#include "common/util.h"
#include "delivery/kinds.h"

#define STAGE_GZIP_MEMBER (1u << 20)
#define STAGE_FILE_BUFFER (1u << 20)
/* With several threads, records go to a worker in chunks of this many bytes
 * (or one larger record), this many at a time per worker (stage.h). Four
 * of 2 MiB let the reader run ahead of a worker the scheduler set aside:
 * 0.30 s for 400 MB on two cores, where two of 4 MiB took 0.33 s. */
#define STAGE_CHUNK_BYTES (2u << 20)
#define STAGE_CHUNKS_PER_WORKER 4

typedef struct stage_file {
    int fd;
    char path[PATH_MAX]; /* "" until the file is created */
    tarn_buf out;        /* bytes waiting for write(2): stdio would lock per call */
    tarn_buf pending;    /* raw: bytes waiting to become the next gzip member */
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
    return shape_kind_in(n->kinds, n->text_lengths, kind);
}

/* Notes a kind at a node; non-zero if it is new there. */
SHAPE_INLINE int shape_note(stage_shape *sh, shape_node *n, uint32_t kind)
{
    if (shape_seen(n, kind)) return 0;
    shape_kind_add(&n->kinds, &n->text_lengths, kind);
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

/* What the reading thread says of a record's place in the sample. */
enum stage_due {
    STAGE_DUE_IF_NEW,  /* sampled if it shows a pair new to its tracker */
    STAGE_DUE_HEAD,    /* one of the first TARN_STAGE_SAMPLE_HEAD: sampled */
    STAGE_DUE_SPREAD,  /* one of the spread: sampled */
    STAGE_DUE_SAMPLED, /* in the head, which the reader sampled itself: its pairs are only noted */
};

/* A record in a chunk, followed by its bytes; each starts at a multiple of 8. */
typedef struct stage_item {
    int64_t seq, ts;
    size_t len;
    uint32_t part;
    int due;
} stage_item;

typedef struct stage_chunk {
    char *data;
    size_t len, cap;
} stage_chunk;

/* ------------------------------------------------------------ spellings
 *
 * Keys that differ only in ASCII case name one column or field: DuckDB's
 * names ignore case, so a table cannot have both "id" and "ID". But DuckDB's
 * JSON inference takes them for two keys: at the top level it invents a
 * column "ID_1", inside an object it fails the whole batch ("Duplicate name
 * in struct"). So the sample is written with one spelling per key: the
 * first the sample met at that place (the path of spellings before it),
 * kept in a table shared by the pass's threads. Each sampled record is
 * copied with its keys replaced; values are copied byte for byte. The scan
 * (scan.h) then finds a key's column without regard to case. Sampled
 * records are few (the head, the spread and records with a new pair), so
 * this costs about a microsecond each; the table grows with the sample's
 * distinct keys, up to STAGE_KEYS_MAX.
 */

typedef struct stage_key {
    uint32_t parent;  /* the place's own entry: 0 for the record, else its id */
    uint32_t hash;
    uint32_t off, len; /* the spelling, in stage_keys.text */
} stage_key;

typedef struct stage_keys {
    pthread_mutex_t mu;
    stage_key *keys;  /* entry id - 1: ids stay as the table grows */
    size_t nkeys, keys_cap;
    uint32_t *slots;  /* open addressing over the entries: 0 free, else an id */
    size_t nslots;    /* a power of two, at least 4/3 of nkeys; 0 until the first key */
    tarn_buf text;
    /* stage_keys_respell's, under mu: */
    tarn_buf out;  /* a record with its keys replaced */
    uint32_t place[TARN_STAGE_SHAPE_MAX_DEPTH + 1]; /* per open object or array: its entry */
    char is_object[TARN_STAGE_SHAPE_MAX_DEPTH + 1];
} stage_keys;

/* Distinct places and spellings at most (about 1 MiB of table). A sample
 * with more keeps the keys of its records past that point as written. */
#define STAGE_KEYS_MAX 49152

/* The step of an array's elements: a byte no raw JSON key holds. */
static const char stage_key_element[] = "\x01";

static uint32_t stage_key_hash(uint32_t parent, const char *k, size_t n)
{
    uint32_t h = 2166136261u ^ parent;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)k[i];
        if (ch >= 'A' && ch <= 'Z') ch = (unsigned char)(ch + 32);
        h = (h ^ ch) * 16777619u;
    }
    return h;
}

/* Room for one more entry: the entries' array and, past three quarters
 * full, slots twice as many (every entry rehashed from its stored hash). */
static int stage_keys_room(stage_keys *t)
{
    if (t->nkeys == t->keys_cap) {
        size_t cap = t->keys_cap ? t->keys_cap * 2 : 64;
        stage_key *k = realloc(t->keys, cap * sizeof *k);
        if (!k) return TARN_ENOMEM;
        t->keys = k;
        t->keys_cap = cap;
    }
    if ((t->nkeys + 1) * 4 <= t->nslots * 3) return TARN_OK;
    size_t nslots = t->nslots ? t->nslots * 2 : 128;
    uint32_t *slots = calloc(nslots, sizeof *slots);
    if (!slots) return TARN_ENOMEM;
    for (size_t id = 1; id <= t->nkeys; id++) {
        size_t i = t->keys[id - 1].hash & (nslots - 1);
        while (slots[i]) i = (i + 1) & (nslots - 1);
        slots[i] = (uint32_t)id;
    }
    free(t->slots);
    t->slots = slots;
    t->nslots = nslots;
    return TARN_OK;
}

/* The entry of key k (raw bytes) at place parent, added with spelling k if
 * none matches it without regard to case: its id and spelling. 0 past
 * STAGE_KEYS_MAX entries or out of memory: the caller keeps the key as
 * written. */
static uint32_t stage_keys_find(stage_keys *t, uint32_t parent, const char *k, size_t n, const char **spelling,
                                size_t *spelling_len)
{
    if (n >= UINT32_MAX) return 0;
    uint32_t h = stage_key_hash(parent, k, n);
    size_t i = t->nslots ? h & (t->nslots - 1) : 0;
    for (; t->nslots && t->slots[i]; i = (i + 1) & (t->nslots - 1)) {
        const stage_key *e = &t->keys[t->slots[i] - 1];
        if (e->hash == h && e->parent == parent && e->len == n && strncasecmp(t->text.data + e->off, k, n) == 0) {
            *spelling = t->text.data + e->off;
            *spelling_len = e->len;
            return t->slots[i];
        }
    }
    if (t->nkeys >= STAGE_KEYS_MAX || stage_keys_room(t) || tarn_buf_append(&t->text, k, n)) return 0;
    i = h & (t->nslots - 1); /* the slots may have grown */
    while (t->slots[i]) i = (i + 1) & (t->nslots - 1);
    stage_key *e = &t->keys[t->nkeys++];
    e->parent = parent;
    e->hash = h;
    e->off = (uint32_t)(t->text.len - n);
    e->len = (uint32_t)n;
    t->slots[i] = (uint32_t)t->nkeys;
    *spelling = t->text.data + e->off;
    *spelling_len = e->len;
    return (uint32_t)t->nkeys;
}

static void stage_keys_init(stage_keys *t)
{
    memset(t, 0, sizeof *t);
    pthread_mutex_init(&t->mu, NULL);
    tarn_buf_init(&t->text, (size_t)64 << 20);
    tarn_buf_init(&t->out, TARN_BUF_DEFAULT_MAX);
}

static void stage_keys_free(stage_keys *t)
{
    free(t->keys);
    free(t->slots);
    tarn_buf_free(&t->text);
    tarn_buf_free(&t->out);
    pthread_mutex_destroy(&t->mu);
    memset(t, 0, sizeof *t);
}

/* Copies the JSON text p[0..n) (a record, perhaps without its closing
 * brace) into t->out with each key in its sample spelling. Text it cannot
 * follow is copied as it is from there on. Under t->mu. */
static int stage_keys_respell(stage_keys *t, const char *p, size_t n)
{
    enum { MAX_DEPTH = TARN_STAGE_SHAPE_MAX_DEPTH };
    uint32_t *place = t->place;
    char *is_object = t->is_object;
    int depth = -1, want_key = 0;
    uint32_t value_place = 0; /* the place of the value that comes next */
    tarn_buf_reset(&t->out);
    const char *end = p + n, *copied = p;
    int rc = TARN_OK;
    while (p < end && rc == TARN_OK) {
        char ch = *p;
        if (ch == '"') {
            const char *q = p + 1;
            while (q < end && *q != '"') q += *q == '\\' ? 2 : 1;
            if (q >= end) break;
            if (depth >= 0 && is_object[depth] && want_key) {
                const char *sp = p + 1;
                size_t sp_len = (size_t)(q - p - 1);
                uint32_t id = stage_keys_find(t, place[depth], p + 1, sp_len, &sp, &sp_len);
                value_place = id;
                if (id && (sp_len != (size_t)(q - p - 1) || memcmp(sp, p + 1, sp_len) != 0)) {
                    if ((rc = tarn_buf_append(&t->out, copied, (size_t)(p + 1 - copied))) ||
                        (rc = tarn_buf_append(&t->out, sp, sp_len)))
                        break;
                    copied = q;
                }
                want_key = 0;
                if (!id) break; /* the table is full: the rest as it is */
            }
            p = q + 1;
            continue;
        }
        if (ch == '{' || ch == '[') {
            if (depth + 1 > MAX_DEPTH) break;
            uint32_t here = depth < 0 ? 0 : is_object[depth] ? value_place : place[depth];
            depth++;
            is_object[depth] = ch == '{';
            if (ch == '{') {
                place[depth] = here;
                want_key = 1;
            } else {
                const char *sp;
                size_t sp_len;
                place[depth] = stage_keys_find(t, here, stage_key_element, 1, &sp, &sp_len);
                if (!place[depth]) break;
            }
        } else if (ch == '}' || ch == ']') {
            if (depth < 0) break;
            depth--;
        } else if (ch == ',') {
            want_key = depth >= 0 && is_object[depth];
        }
        p++;
    }
    if (rc == TARN_OK) rc = tarn_buf_append(&t->out, copied, (size_t)(end - copied));
    return rc;
}

typedef struct stage_ctx stage_ctx;

/* What formats processed lines: with one thread, the calling thread's for
 * every record; with several, each worker's for its chunks, and the calling
 * thread's (without a tracker) for the head of the sample. */
typedef struct stage_worker {
    stage_ctx *c;
    int index;         /* among the workers; -1 for the calling thread's */
    char suffix[16];   /* of its file names: "" or ".<index>" */
    stage_file *files; /* by part; path "" while it has no record of that part */
    size_t nfiles;
    stage_shape *shape; /* NULL without a tracker or once the sample is given up */
    stage_file sample;  /* path "" until its first sampled line */
    int64_t sample_rows;
    tarn_buf line;
    int64_t ts_cached; /* the last _ingested_at formatted, as ts_text */
    char ts_text[24];
    size_t ts_len;     /* 0: none yet */
    tarn_errbuf *eb;
    /* Workers only. The queue is guarded by stage_ctx.mu: chunks[next_take]
     * is the oldest of the queued ones (the one being formatted, if any),
     * chunks[next_fill] the one the reader fills next. */
    pthread_t thread;
    pthread_cond_t work;
    stage_chunk chunks[STAGE_CHUNKS_PER_WORKER];
    int queued, next_fill, next_take;
    int rc;
    tarn_errbuf own_eb;
} stage_worker;

struct stage_ctx {
    enum tarn_stage_kind kind;
    const char *dir;
    tarn_stage_result *res;
    tarn_errbuf *eb;
    int64_t day_cached;
    char date_text[11];
    /* Raw. */
    stage_file *raw; /* parallel to res->parts */
    struct libdeflate_compressor *gz;
    char *gzout;
    size_t gzout_cap;
    /* Processed: which records the sample must hold (stage.h), decided here
     * in log order whatever the threads. */
    int64_t records; /* staged so far */
    int64_t spread_every, spread_left;
    int64_t expected; /* records this batch may hold: upto_seq - from_seq */
    size_t max_bytes;
    atomic_size_t sample_bytes; /* in all of the sample's files */
    atomic_int sample_dropped;  /* past TARN_STAGE_SAMPLE_MAX_BYTES: no sample */
    stage_keys keys;            /* the sample's spellings of keys */
    stage_worker self;
    /* Several threads. */
    stage_worker *workers;
    int nworkers, nstarted;
    pthread_mutex_t mu;
    pthread_cond_t room;   /* the reader waits here for a chunk to come back */
    int done;              /* no more chunks are coming */
    int failed;            /* a thread failed: all stop */
    int failed_worker;     /* the first worker that failed (its message is the one reported); -1 none */
    stage_chunk *filling;  /* the chunk the reader fills, NULL if none yet */
    int64_t nchunks;       /* handed to workers so far */
};

/* stage_dispatch's answer when a worker failed: stop reading. */
#define STAGE_STOP 1

static void stage_file_init(stage_file *f, size_t pending_max)
{
    f->fd = -1;
    f->path[0] = '\0';
    tarn_buf_init(&f->out, STAGE_FILE_BUFFER);
    tarn_buf_init(&f->pending, pending_max);
}

/* Creates f->path. */
static int stage_open(stage_file *f, tarn_errbuf *eb)
{
    f->fd = open(f->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (f->fd >= 0) return TARN_OK;
    int e = errno;
    return tarn_errbuf_set(eb, tarn_err_from_write_errno(e), "creating %s: %s", f->path, strerror(e));
}

/* write(2) all of p, or an error naming the staged file. */
static int stage_write_all(stage_file *f, const char *p, size_t n, tarn_errbuf *eb)
{
    while (n) {
        ssize_t w = write(f->fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            int e = errno;
            return tarn_errbuf_set(eb, tarn_err_from_write_errno(e), "writing %s: %s", f->path, strerror(e));
        }
        p += w;
        n -= (size_t)w;
    }
    return TARN_OK;
}

static int stage_drain(stage_file *f, tarn_errbuf *eb)
{
    int rc = stage_write_all(f, f->out.data, f->out.len, eb);
    tarn_buf_reset(&f->out);
    return rc;
}

static int stage_write(stage_file *f, const void *p, size_t n, tarn_errbuf *eb)
{
    if (f->out.len + n > STAGE_FILE_BUFFER) {
        int rc = stage_drain(f, eb);
        if (rc) return rc;
    }
    /* A record larger than the buffer goes straight through. */
    if (n > STAGE_FILE_BUFFER) return stage_write_all(f, p, n, eb);
    return tarn_buf_append(&f->out, p, n);
}

static void stage_file_close(stage_file *f)
{
    if (f->fd >= 0) close(f->fd);
    f->fd = -1;
    tarn_buf_free(&f->out);
    tarn_buf_free(&f->pending);
}

/* Compresses the pending bytes of a raw file into one gzip member. */
static int stage_gzip_flush(stage_ctx *c, size_t part)
{
    tarn_buf *b = &c->raw[part].pending;
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
    return stage_write(&c->raw[part], c->gzout, z, c->eb);
}

/* A new part for c->date_text; in the raw pass with its file. */
static int stage_part_add(stage_ctx *c, size_t *out)
{
    tarn_stage_result *r = c->res;
    tarn_stage_part *np = realloc(r->parts, (r->nparts + 1) * sizeof *np);
    if (!np) return TARN_ENOMEM;
    r->parts = np;
    tarn_stage_part *p = &r->parts[r->nparts];
    memset(p, 0, sizeof *p);
    memcpy(p->date, c->date_text, 11);
    if (c->kind != TARN_STAGE_RAW) { /* the workers create the files: stage_collect names them here */
        *out = r->nparts++;
        return TARN_OK;
    }
    stage_file *nf = realloc(c->raw, (r->nparts + 1) * sizeof *nf);
    if (!nf) return TARN_ENOMEM;
    c->raw = nf;
    stage_file *f = &c->raw[r->nparts];
    stage_file_init(f, STAGE_GZIP_MEMBER * 2 + (64u << 20));
    snprintf(f->path, sizeof f->path, "%s/%s.json.gz", c->dir, c->date_text);
    memcpy(p->paths[0], f->path, sizeof f->path);
    p->npaths = 1;
    *out = r->nparts++; /* counted now, so that a failure below is cleaned up */
    return stage_open(f, c->eb);
}

/* Counts a record in the part of its UTC date, created on its first record. */
static int stage_part(stage_ctx *c, int64_t seq, int64_t ts, size_t *out)
{
    int64_t day = tarn_utc_day(ts);
    if (day != c->day_cached || !c->date_text[0]) {
        tarn_format_date(ts, c->date_text);
        c->day_cached = day;
    }
    tarn_stage_result *r = c->res;
    size_t i = r->nparts;
    while (i > 0 && memcmp(r->parts[i - 1].date, c->date_text, 11) != 0) i--;
    if (i > 0) {
        i--;
    } else {
        int rc = stage_part_add(c, &i);
        if (rc) return rc;
    }
    tarn_stage_part *p = &r->parts[i];
    if (!p->rows) p->first_seq = seq;
    p->last_seq = seq;
    p->rows++;
    *out = i;
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

static int stage_raw_record(stage_ctx *c, size_t part, const char *data, size_t len)
{
    tarn_buf *b = &c->raw[part].pending;
    int rc;
    if ((rc = stage_one_line(b, data, len)) || (rc = tarn_buf_append_char(b, '\n'))) return rc;
    return b->len >= STAGE_GZIP_MEMBER ? stage_gzip_flush(c, part) : TARN_OK;
}

/* Where the record the reader is at (the next in log order) stands in the
 * sample: the head, the spread, or only if it shows a new pair. */
static int stage_due(stage_ctx *c)
{
    int64_t k = c->records++;
    if (k < TARN_STAGE_SAMPLE_HEAD) return STAGE_DUE_HEAD;
    if (k == TARN_STAGE_SAMPLE_HEAD) {
        /* The rest of the batch, as far as upto_seq and the byte budget let
         * one guess from the head's record size. */
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
        return STAGE_DUE_SPREAD;
    }
    return STAGE_DUE_IF_NEW;
}

/* The decimal digits of v at out (room for 21 bytes); their count. */
static size_t stage_format_int(int64_t v, char *out)
{
    char digits[24];
    size_t nd = 0, n = 0;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do digits[nd++] = (char)('0' + u % 10); while ((u /= 10) != 0);
    if (v < 0) out[n++] = '-';
    while (nd) out[n++] = digits[--nd];
    return n;
}

/* The longest tail stage_line makes: two keys, two int64s, "}\n". */
#define STAGE_TAIL_MAX 96

/* A record's processed line, in two pieces: *body, the object up to its
 * closing brace (the record itself, or a copy in w->line with raw line
 * breaks as spaces; clean says the record has none), and tail, the two
 * columns and the closing brace (the ingest API guarantees one valid
 * object whose top-level keys are not these names). */
static int stage_line(stage_worker *w, int64_t seq, int64_t ts, const char *data, size_t len, int clean,
                      const char **body, size_t *body_len, char *tail, size_t *tail_len)
{
    size_t end = len;
    while (end > 0 && data[end - 1] != '}') end--;
    if (end == 0) return tarn_errbuf_set(w->eb, TARN_ECORRUPT, "record %lld is not an object", (long long)seq);
    size_t inner = end - 1, k = inner;
    while (k > 0 && (data[k - 1] == ' ' || data[k - 1] == '\t' || data[k - 1] == '\n' || data[k - 1] == '\r')) k--;
    int empty = k > 0 && data[k - 1] == '{';
    if (ts != w->ts_cached || !w->ts_len) { /* a batch's records come in appends sharing one time */
        w->ts_len = stage_format_int(ts, w->ts_text);
        w->ts_cached = ts;
    }
    /* Hand-built rather than printf'd: this runs once per record. */
    static const char k1[] = ",\"_ingested_at\":", k2[] = ",\"_seq\":";
    size_t n = sizeof k1 - 1 - (size_t)empty;
    memcpy(tail, k1 + empty, n);
    memcpy(tail + n, w->ts_text, w->ts_len);
    n += w->ts_len;
    memcpy(tail + n, k2, sizeof k2 - 1);
    n += sizeof k2 - 1;
    n += stage_format_int(seq, tail + n);
    tail[n++] = '}';
    tail[n++] = '\n';
    *tail_len = n;
    *body = data; /* the usual case: no copy */
    *body_len = inner;
    if (!clean && (memchr(data, '\n', inner) || memchr(data, '\r', inner))) {
        tarn_buf_reset(&w->line);
        int rc = stage_one_line(&w->line, data, inner);
        if (rc) return rc;
        *body = w->line.data;
        *body_len = w->line.len;
    }
    return TARN_OK;
}

/* Gives w's share of the sample up (the sample is past its size limit):
 * the delivery will infer from every record instead. */
static void stage_sample_drop(stage_worker *w)
{
    stage_file *f = &w->sample;
    if (f->fd >= 0) close(f->fd);
    f->fd = -1;
    if (f->path[0]) unlink(f->path);
    f->path[0] = '\0';
    w->sample_rows = 0;
    tarn_buf_free(&f->out);
    if (w->shape) {
        shape_free(w->shape);
        free(w->shape);
        w->shape = NULL;
    }
}

/* Copies a processed line (body, then tail) into w's sample file, unless
 * the sample, all its files together, is past its limit. */
static int stage_sample_write(stage_worker *w, const char *body, size_t body_len, const char *tail, size_t tail_len)
{
    stage_ctx *c = w->c;
    size_t n = body_len + tail_len;
    if (atomic_load(&c->sample_dropped) || atomic_fetch_add(&c->sample_bytes, n) + n > TARN_STAGE_SAMPLE_MAX_BYTES) {
        atomic_store(&c->sample_dropped, 1);
        stage_sample_drop(w);
        return TARN_OK;
    }
    stage_file *f = &w->sample;
    if (!f->path[0]) {
        snprintf(f->path, sizeof f->path, "%s/sample%s.ndjson", c->dir, w->suffix);
        int rc = stage_open(f, w->eb);
        if (rc) return rc;
    }
    w->sample_rows++;
    stage_keys *t = &c->keys;
    pthread_mutex_lock(&t->mu);
    int rc = stage_keys_respell(t, body, body_len);
    if (rc == TARN_OK) rc = stage_write(f, t->out.data, t->out.len, w->eb);
    pthread_mutex_unlock(&t->mu);
    return rc ? rc : stage_write(f, tail, tail_len, w->eb);
}

/* w's file of a part, created on its first record there. */
static int stage_worker_file(stage_worker *w, size_t part, int64_t ts, stage_file **out)
{
    if (part >= w->nfiles) {
        stage_file *nf = realloc(w->files, (part + 1) * sizeof *nf);
        if (!nf) return TARN_ENOMEM;
        w->files = nf;
        for (; w->nfiles <= part; w->nfiles++) stage_file_init(&w->files[w->nfiles], 0);
    }
    stage_file *f = *out = &w->files[part];
    if (f->path[0]) return TARN_OK;
    char date[11];
    tarn_format_date(ts, date);
    snprintf(f->path, sizeof f->path, "%s/%s%s.ndjson", w->c->dir, date, w->suffix);
    return stage_open(f, w->eb);
}

/* Formats a record of a part into w's file of it, notes its pairs and
 * samples it if it is due (stage_due) or shows a pair new to w's tracker. */
static int stage_processed_record(stage_worker *w, size_t part, int64_t seq, int64_t ts, const char *data, size_t len,
                                  int due)
{
    int files = w->c->kind == TARN_STAGE_PROCESSED, rc;
    stage_file *f = NULL;
    if (files && (rc = stage_worker_file(w, part, ts, &f))) return rc;
    /* A record the shapes say is clean needs no search for line breaks. */
    int shape = w->shape ? shape_record(w->shape, data, len) : 0;
    int take = w->shape && (due == STAGE_DUE_HEAD || due == STAGE_DUE_SPREAD ||
                            (due == STAGE_DUE_IF_NEW && (shape & SHAPE_RECORD_NEW)));
    if (!files && !take) return TARN_OK;
    const char *body;
    size_t body_len, tail_len;
    char tail[STAGE_TAIL_MAX];
    if ((rc = stage_line(w, seq, ts, data, len, shape & SHAPE_RECORD_CLEAN, &body, &body_len, tail, &tail_len)))
        return rc;
    if (files && ((rc = stage_write(f, body, body_len, w->eb)) || (rc = stage_write(f, tail, tail_len, w->eb))))
        return rc;
    return take ? stage_sample_write(w, body, body_len, tail, tail_len) : TARN_OK;
}

static int stage_worker_init(stage_worker *w, stage_ctx *c, int index, int track, tarn_errbuf *eb)
{
    memset(w, 0, sizeof *w);
    w->c = c;
    w->index = index;
    if (index >= 0) snprintf(w->suffix, sizeof w->suffix, ".%d", index);
    w->eb = eb ? eb : &w->own_eb;
    stage_file_init(&w->sample, 0);
    tarn_buf_init(&w->line, 64u << 20);
    if (!track) return TARN_OK;
    if (!(w->shape = malloc(sizeof *w->shape))) return TARN_ENOMEM;
    if (shape_init(w->shape)) {
        shape_free(w->shape);
        free(w->shape);
        w->shape = NULL;
        return TARN_ENOMEM;
    }
    return TARN_OK;
}

/* Writes out what w's files still buffer. */
static int stage_worker_flush(stage_worker *w)
{
    int rc = TARN_OK;
    for (size_t i = 0; i < w->nfiles && !rc; i++)
        if (w->files[i].fd >= 0) rc = stage_drain(&w->files[i], w->eb);
    if (!rc && w->sample.fd >= 0) rc = stage_drain(&w->sample, w->eb);
    return rc;
}

/* Closes w's files (they stay on disk) and frees the rest. */
static void stage_worker_free(stage_worker *w)
{
    for (size_t i = 0; i < w->nfiles; i++) stage_file_close(&w->files[i]);
    free(w->files);
    stage_file_close(&w->sample);
    if (w->shape) {
        shape_free(w->shape);
        free(w->shape);
    }
    tarn_buf_free(&w->line);
    for (int i = 0; i < STAGE_CHUNKS_PER_WORKER; i++) free(w->chunks[i].data);
}

/* ------------------------------------------------------------ several threads */

/* Stops every thread of the pass; the first worker to fail is the one
 * reported (index -1: the reader, which reports its own error). */
static void stage_fail(stage_ctx *c, int index)
{
    pthread_mutex_lock(&c->mu);
    if (!c->failed) c->failed_worker = index;
    c->failed = 1;
    pthread_cond_signal(&c->room);
    for (int i = 0; i < c->nworkers; i++) pthread_cond_signal(&c->workers[i].work);
    pthread_mutex_unlock(&c->mu);
}

static int stage_chunk_run(stage_worker *w, const stage_chunk *ch)
{
    /* Another worker gave the sample up: stop noting pairs. */
    if (w->shape && atomic_load(&w->c->sample_dropped)) stage_sample_drop(w);
    for (size_t off = 0; off < ch->len;) {
        stage_item it;
        memcpy(&it, ch->data + off, sizeof it);
        int rc = stage_processed_record(w, it.part, it.seq, it.ts, ch->data + off + sizeof it, it.len, it.due);
        if (rc) return rc;
        off += (sizeof it + it.len + 7) & ~(size_t)7;
    }
    return TARN_OK;
}

static void *stage_worker_main(void *arg)
{
    stage_worker *w = arg;
    stage_ctx *c = w->c;
    int rc = TARN_OK;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!w->queued && !c->done && !c->failed) pthread_cond_wait(&w->work, &c->mu);
        if (c->failed || !w->queued) break;
        const stage_chunk *ch = &w->chunks[w->next_take];
        pthread_mutex_unlock(&c->mu);
        rc = stage_chunk_run(w, ch);
        pthread_mutex_lock(&c->mu);
        w->next_take = (w->next_take + 1) % STAGE_CHUNKS_PER_WORKER;
        w->queued--;
        pthread_cond_signal(&c->room);
        if (rc) break;
    }
    int failed = c->failed;
    pthread_mutex_unlock(&c->mu);
    if (!rc && !failed) rc = stage_worker_flush(w);
    if (rc == TARN_ENOMEM) rc = tarn_errbuf_set(w->eb, rc, "out of memory staging");
    w->rc = rc;
    if (rc) stage_fail(c, w->index);
    return NULL;
}

/* Sets up n workers and starts their threads. */
static int stage_workers_start(stage_ctx *c, int n)
{
    if (!(c->workers = calloc((size_t)n, sizeof *c->workers)))
        return tarn_errbuf_set(c->eb, TARN_ENOMEM, "out of memory staging");
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->room, NULL);
    for (; c->nworkers < n; c->nworkers++) {
        stage_worker *w = &c->workers[c->nworkers];
        int rc = stage_worker_init(w, c, c->nworkers, 1, NULL);
        pthread_cond_init(&w->work, NULL);
        if (rc) {
            c->nworkers++; /* to be freed */
            return tarn_errbuf_set(c->eb, rc, "out of memory staging");
        }
    }
    for (; c->nstarted < n; c->nstarted++) {
        int e = pthread_create(&c->workers[c->nstarted].thread, NULL, stage_worker_main, &c->workers[c->nstarted]);
        if (e) return tarn_errbuf_set(c->eb, TARN_ENOMEM, "starting a staging thread: %s", strerror(e));
    }
    return TARN_OK;
}

/* Makes the next chunk the one being filled: chunk i goes to worker
 * i mod nworkers, once that worker has one free. STAGE_STOP if a worker
 * failed meanwhile. */
static int stage_chunk_next(stage_ctx *c)
{
    stage_worker *w = &c->workers[c->nchunks % c->nworkers];
    pthread_mutex_lock(&c->mu);
    while (w->queued == STAGE_CHUNKS_PER_WORKER && !c->failed) pthread_cond_wait(&c->room, &c->mu);
    int failed = c->failed;
    pthread_mutex_unlock(&c->mu);
    if (failed) return STAGE_STOP;
    c->filling = &w->chunks[w->next_fill];
    c->filling->len = 0;
    return TARN_OK;
}

/* Hands the chunk being filled to its worker. */
static void stage_chunk_hand(stage_ctx *c)
{
    stage_worker *w = &c->workers[c->nchunks++ % c->nworkers];
    pthread_mutex_lock(&c->mu);
    w->next_fill = (w->next_fill + 1) % STAGE_CHUNKS_PER_WORKER;
    w->queued++;
    pthread_cond_signal(&w->work);
    pthread_mutex_unlock(&c->mu);
    c->filling = NULL;
}

/* The reader's share of a processed record with several threads: the head
 * of the sample written here, in log order; the record copied into a chunk
 * (data is valid only until the next record is read). */
static int stage_dispatch(stage_ctx *c, size_t part, int64_t seq, int64_t ts, const char *data, size_t len, int due)
{
    int rc;
    if (due == STAGE_DUE_HEAD) {
        const char *body;
        size_t body_len, tail_len;
        char tail[STAGE_TAIL_MAX];
        if ((rc = stage_line(&c->self, seq, ts, data, len, 0, &body, &body_len, tail, &tail_len)) ||
            (rc = stage_sample_write(&c->self, body, body_len, tail, tail_len)))
            return rc;
        due = STAGE_DUE_SAMPLED;
    }
    size_t need = (sizeof(stage_item) + len + 7) & ~(size_t)7;
    stage_chunk *ch = c->filling;
    if (ch && ch->len && need > ch->cap - ch->len) {
        stage_chunk_hand(c);
        ch = NULL;
    }
    if (!ch) {
        if ((rc = stage_chunk_next(c))) return rc;
        ch = c->filling;
    }
    if (need > ch->cap) {
        size_t cap = need > STAGE_CHUNK_BYTES ? need : STAGE_CHUNK_BYTES;
        char *d = realloc(ch->data, cap);
        if (!d) return TARN_ENOMEM;
        ch->data = d;
        ch->cap = cap;
    }
    stage_item it = {seq, ts, len, (uint32_t)part, due};
    memcpy(ch->data + ch->len, &it, sizeof it);
    memcpy(ch->data + ch->len + sizeof it, data, len);
    ch->len += need;
    return TARN_OK;
}

/* Ends the workers: once they have formatted every chunk if the reader
 * succeeded (rc 0), at once otherwise; joins them and returns the pass's
 * result: the reader's error, else the first failed worker's. */
static int stage_workers_stop(stage_ctx *c, int rc)
{
    if (!rc && c->filling && c->filling->len) stage_chunk_hand(c);
    if (rc) stage_fail(c, -1);
    pthread_mutex_lock(&c->mu);
    c->done = 1;
    for (int i = 0; i < c->nworkers; i++) pthread_cond_signal(&c->workers[i].work);
    pthread_mutex_unlock(&c->mu);
    for (int i = 0; i < c->nstarted; i++) pthread_join(c->workers[i].thread, NULL);
    c->nstarted = 0;
    if (!rc && c->failed_worker >= 0) {
        const stage_worker *w = &c->workers[c->failed_worker];
        rc = tarn_errbuf_set(c->eb, w->rc, "%s", w->own_eb.msg);
    }
    return rc;
}

/* ------------------------------------------------------------ the pass */

/* Fills in the result's files: each part's and the sample's in the order
 * of stage.h (the calling thread's first, then the workers'). */
static void stage_collect(stage_ctx *c)
{
    tarn_stage_result *r = c->res;
    int dropped = atomic_load(&c->sample_dropped);
    for (int i = -1; i < c->nworkers; i++) {
        stage_worker *w = i < 0 ? &c->self : &c->workers[i];
        if (dropped) stage_sample_drop(w);
        for (size_t p = 0; p < w->nfiles; p++) {
            if (!w->files[p].path[0]) continue;
            tarn_stage_part *part = &r->parts[p];
            memcpy(part->paths[part->npaths++], w->files[p].path, PATH_MAX);
        }
        if (w->sample.path[0]) {
            memcpy(r->sample_paths[r->nsamples++], w->sample.path, PATH_MAX);
            r->sample_rows += w->sample_rows;
        }
        if (w->shape) r->ubigint_values |= w->shape->ubigint;
    }
}

static int stage_raw_close(stage_ctx *c, int ok)
{
    int rc = TARN_OK;
    for (size_t i = 0; i < c->res->nparts; i++) {
        stage_file *f = &c->raw[i];
        if (ok && !rc) rc = stage_gzip_flush(c, i);
        if (ok && !rc && f->fd >= 0) rc = stage_drain(f, c->eb);
        stage_file_close(f);
    }
    free(c->raw);
    return rc;
}

int tarn_stage_batch(tarn_stream *s, enum tarn_stage_kind kind, int64_t from_seq, int64_t upto_seq, size_t max_bytes,
                     int threads, const char *dir, tarn_stage_result *out, tarn_errbuf *eb)
{
    memset(out, 0, sizeof *out);
    out->last_seq = from_seq;
    stage_ctx c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.dir = dir;
    c.res = out;
    c.eb = eb;
    c.day_cached = -1;
    c.expected = upto_seq > from_seq ? upto_seq - from_seq : 0;
    c.max_bytes = max_bytes;
    atomic_init(&c.sample_bytes, 0);
    atomic_init(&c.sample_dropped, 0);
    if (kind != TARN_STAGE_RAW) stage_keys_init(&c.keys);
    c.failed_worker = -1;
    if (threads > TARN_STAGE_MAX_THREADS) threads = TARN_STAGE_MAX_THREADS;
    int several = kind != TARN_STAGE_RAW && threads > 1;

    int rc = TARN_OK;
    if (kind == TARN_STAGE_RAW && !(c.gz = libdeflate_alloc_compressor(1))) return TARN_ENOMEM;
    /* With several threads the calling thread's formatter writes only the
     * head of the sample: the workers note its pairs. */
    if (kind != TARN_STAGE_RAW && (rc = stage_worker_init(&c.self, &c, -1, !several, eb)))
        rc = tarn_errbuf_set(eb, rc, "out of memory staging");
    tarn_stream_reader *r = NULL;
    if (!rc) rc = tarn_stream_reader_open(s, from_seq, &r, eb);
    if (!rc && several) rc = stage_workers_start(&c, threads);
    while (rc == TARN_OK) {
        int64_t seq, ts;
        const char *data;
        size_t len, part = 0;
        int more = tarn_stream_reader_next(r, &seq, &ts, &data, &len, eb);
        if (more < 0) rc = more;
        if (more <= 0 || seq > upto_seq) break;
        rc = stage_part(&c, seq, ts, &part);
        if (rc == TARN_OK && kind == TARN_STAGE_RAW) rc = stage_raw_record(&c, part, data, len);
        else if (rc == TARN_OK && !several)
            rc = stage_processed_record(&c.self, part, seq, ts, data, len, stage_due(&c));
        else if (rc == TARN_OK && (rc = stage_dispatch(&c, part, seq, ts, data, len, stage_due(&c))) == STAGE_STOP) {
            rc = TARN_OK; /* a worker failed: stage_workers_stop reports its error */
            break;
        }
        if (rc == TARN_ENOMEM) rc = tarn_errbuf_set(eb, rc, "out of memory staging");
        out->last_seq = seq;
        out->bytes += (int64_t)len;
        if ((size_t)out->bytes >= max_bytes) break;
    }
    if (r) tarn_stream_reader_close(r);
    if (c.workers) rc = stage_workers_stop(&c, rc);

    if (kind == TARN_STAGE_RAW) {
        int crc = stage_raw_close(&c, rc == TARN_OK);
        if (rc == TARN_OK) rc = crc;
        libdeflate_free_compressor(c.gz);
        free(c.gzout);
    } else {
        if (rc == TARN_OK && (rc = stage_worker_flush(&c.self)) == TARN_ENOMEM)
            rc = tarn_errbuf_set(eb, rc, "out of memory staging");
        if (rc == TARN_OK) stage_collect(&c);
        stage_worker_free(&c.self);
        for (int i = 0; i < c.nworkers; i++) {
            stage_worker_free(&c.workers[i]);
            pthread_cond_destroy(&c.workers[i].work);
        }
        if (c.workers) {
            pthread_cond_destroy(&c.room);
            pthread_mutex_destroy(&c.mu);
            free(c.workers);
        }
        stage_keys_free(&c.keys);
    }
    if (rc) tarn_stage_result_free(out);
    return rc;
}

void tarn_stage_result_free(tarn_stage_result *r)
{
    free(r->parts);
    memset(r, 0, sizeof *r);
}
