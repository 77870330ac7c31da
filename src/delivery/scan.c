/* scan.c - see scan.h. */
#include "delivery/scan.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "common/duck.h"
#include "common/util.h"
#include "delivery/kinds.h"
#include "delivery/schema.h"

/* A call takes records until it has a vector of rows or this many bytes. */
#define SCAN_CHUNK_BYTES ((size_t)4 << 20)
#define SCAN_SEQ "_seq"
#define SCAN_INGESTED_AT "_ingested_at"

/* A column's type as the scan fills it: UUID as UUID, the other text kinds
 * (node_as_text) as VARCHAR. The vectors of a chunk form the same tree, so
 * a node is also "the vector at this place". */
typedef struct scan_node {
    enum tarn_type_kind kind;
    size_t nfields;             /* STRUCT */
    char **names;               /* STRUCT: field names */
    size_t *name_lens;
    struct scan_node **fields;  /* STRUCT */
    struct scan_node *elem;     /* LIST */
    size_t seen_off;            /* STRUCT: where its fields' flags start in scan_worker.seen */
    uint32_t kinds;             /* quick schema: the kinds (kinds.h) learned here */
    uint64_t text_lengths;
} scan_node;

/* Quick schema (scan.h): what the scan does with the kind of each value. */
enum { SCAN_KINDS_OFF, SCAN_KINDS_LEARN, SCAN_KINDS_CHECK };

struct tarn_scan {
    /* The job (tarn_scan_prepare .. tarn_scan_finish). */
    int ready;
    int64_t from_seq, upto_seq;
    int kinds;              /* SCAN_KINDS_* */
    int date_ends;          /* quick: a record of another date ends the batch */
    size_t max_bytes;       /* quick: the batch ends with the record that reaches this many payload bytes */
    int has_date;
    char date[11];
    size_t ncols;
    char **col_names;
    scan_node **col_nodes;  /* NULL for _seq and _ingested_at */
    int seq_col, ts_col;    /* their output columns, or -1 */
    scan_node record;       /* a STRUCT of the other columns */
    size_t *field_col;      /* record field -> output column */
    size_t nseen;
    /* Progress, under mu. */
    tarn_stream_reader *reader;
    int done, stop;
    int stop_code;
    char stop_msg[512];
    int64_t day_cached;
    int day_match;
    int64_t taken_last, taken_bytes, taken_rows; /* the last record taken; payload bytes and records taken */
    /* Kept from job to job (scan_clear stops here). */
    int threads;
    pthread_mutex_t mu;
};

typedef struct scan_row {
    size_t off, len;
    int64_t seq, ts;
} scan_row;

/* One per DuckDB thread. */
typedef struct scan_worker {
    tarn_buf recs;   /* the records of the current chunk */
    scan_row *rows;  /* duckdb_vector_size() of them */
    tarn_buf text;   /* an unescaped string */
    tarn_buf key;    /* an unescaped key */
    unsigned char *seen;
    duckdb_vector *top; /* the output vectors of the record's fields */
    tarn_errbuf eb;
} scan_worker;

typedef struct scan_cur {
    const char *p, *end;
    scan_worker *w;
    int kinds; /* SCAN_KINDS_* */
} scan_cur;

/* ------------------------------------------------------------ types */

static void node_free(scan_node *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->nfields; i++) {
        free(t->names[i]);
        node_free(t->fields[i]);
        free(t->fields[i]);
    }
    free(t->names);
    free(t->name_lens);
    free(t->fields);
    node_free(t->elem);
    free(t->elem);
    memset(t, 0, sizeof *t);
}

static int node_from_type(const tarn_type *ty, scan_node *t, size_t *nseen, tarn_errbuf *eb)
{
    memset(t, 0, sizeof *t);
    t->kind = ty->kind;
    if (ty->kind == TARN_T_LIST) {
        if (!(t->elem = calloc(1, sizeof *t->elem))) return TARN_ENOMEM;
        return node_from_type(ty->children[0], t->elem, nseen, eb);
    }
    if (ty->kind != TARN_T_STRUCT) return TARN_OK;
    if (ty->nchildren == 0) return tarn_errbuf_set(eb, TARN_EUNSUPPORTED, "a STRUCT without fields");
    t->nfields = ty->nchildren;
    t->seen_off = *nseen;
    *nseen += ty->nchildren;
    t->names = calloc(t->nfields, sizeof *t->names);
    t->name_lens = calloc(t->nfields, sizeof *t->name_lens);
    t->fields = calloc(t->nfields, sizeof *t->fields);
    if (!t->names || !t->name_lens || !t->fields) return TARN_ENOMEM;
    for (size_t i = 0; i < t->nfields; i++) {
        if (!(t->names[i] = strdup(ty->names[i])) || !(t->fields[i] = calloc(1, sizeof *t->fields[i])))
            return TARN_ENOMEM;
        t->name_lens[i] = strlen(t->names[i]);
        int rc = node_from_type(ty->children[i], t->fields[i], nseen, eb);
        if (rc) return rc;
    }
    return TARN_OK;
}

/* Whether the scan yields a value of kind k as its text, for the SELECT to
 * cast: the string-typed kinds but UUID, which it parses itself. */
static int node_as_text(enum tarn_type_kind k)
{
    return k != TARN_T_UUID && tarn_type_kind_is_text(k);
}

static int node_has_text(const scan_node *t)
{
    if (node_as_text(t->kind)) return 1;
    if (t->elem && node_has_text(t->elem)) return 1;
    for (size_t i = 0; i < t->nfields; i++)
        if (node_has_text(t->fields[i])) return 1;
    return 0;
}

static duckdb_logical_type node_logical(const scan_node *t)
{
    switch (t->kind) {
    case TARN_T_BOOLEAN: return duckdb_create_logical_type(DUCKDB_TYPE_BOOLEAN);
    case TARN_T_BIGINT: return duckdb_create_logical_type(DUCKDB_TYPE_BIGINT);
    case TARN_T_HUGEINT: return duckdb_create_logical_type(DUCKDB_TYPE_HUGEINT);
    case TARN_T_DOUBLE: return duckdb_create_logical_type(DUCKDB_TYPE_DOUBLE);
    case TARN_T_UUID: return duckdb_create_logical_type(DUCKDB_TYPE_UUID);
    case TARN_T_LIST: {
        duckdb_logical_type e = node_logical(t->elem);
        duckdb_logical_type l = duckdb_create_list_type(e);
        duckdb_destroy_logical_type(&e);
        return l;
    }
    case TARN_T_STRUCT: {
        duckdb_logical_type *m = calloc(t->nfields, sizeof *m);
        if (!m) return NULL;
        for (size_t i = 0; i < t->nfields; i++) m[i] = node_logical(t->fields[i]);
        duckdb_logical_type s = duckdb_create_struct_type(m, (const char **)t->names, t->nfields);
        for (size_t i = 0; i < t->nfields; i++) duckdb_destroy_logical_type(&m[i]);
        free(m);
        return s;
    }
    default: return duckdb_create_logical_type(DUCKDB_TYPE_VARCHAR); /* VARCHAR and node_as_text */
    }
}

/* ------------------------------------------------------------ parsing
 *
 * The records were validated by the ingest API; a record that is not JSON
 * after all stops the scan like any other surprise. */

static int cur_fail(scan_cur *c, const char *fmt, ...) TARN_PRINTF(2, 3);
static int cur_fail(scan_cur *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->w->eb.msg, sizeof c->w->eb.msg, fmt, ap);
    va_end(ap);
    return TARN_EUNSUPPORTED;
}

static inline void cur_ws(scan_cur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\n' || *c->p == '\t' || *c->p == '\r')) c->p++;
}

/* The first '"' or '\\' in [p, end), or end. */
static inline const char *find_quote(const char *p, const char *end)
{
#ifdef __SSE2__
    const __m128i q = _mm_set1_epi8('"'), b = _mm_set1_epi8('\\');
    while (end - p >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
        int m = _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(x, q), _mm_cmpeq_epi8(x, b)));
        if (m) return p + __builtin_ctz((unsigned)m);
        p += 16;
    }
#endif
    while (p < end && *p != '"' && *p != '\\') p++;
    return p;
}

/* At a '"': the string's raw bytes (between the quotes) and whether it
 * holds escapes; the cursor moves past the closing quote. */
static int cur_string(scan_cur *c, const char **s, size_t *n, int *escaped)
{
    const char *p = c->p + 1;
    *escaped = 0;
    for (;;) {
        p = find_quote(p, c->end);
        if (p >= c->end) return cur_fail(c, "unterminated string");
        if (*p == '"') break;
        *escaped = 1;
        p += 2; /* the backslash and the character it escapes */
    }
    *s = c->p + 1;
    *n = (size_t)(p - *s);
    c->p = p + 1;
    return TARN_OK;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int d = tarn_hex_digit(p[i]);
        if (d < 0) return -1;
        v = v << 4 | (unsigned)d;
    }
    *out = v;
    return 0;
}

/* Decodes the escapes of raw string bytes into out (reset first). */
static int unescape(scan_cur *c, const char *s, size_t n, tarn_buf *out)
{
    tarn_buf_reset(out);
    if (tarn_buf_reserve(out, n + 1)) return TARN_ENOMEM; /* decoding never grows the text */
    char *o = out->data;
    const char *end = s + n;
    while (s < end) {
        if (*s != '\\') {
            *o++ = *s++;
            continue;
        }
        if (end - s < 2) return cur_fail(c, "a string ends in a backslash");
        char e = s[1];
        s += 2;
        switch (e) {
        case '"': *o++ = '"'; continue;
        case '\\': *o++ = '\\'; continue;
        case '/': *o++ = '/'; continue;
        case 'b': *o++ = '\b'; continue;
        case 'f': *o++ = '\f'; continue;
        case 'n': *o++ = '\n'; continue;
        case 'r': *o++ = '\r'; continue;
        case 't': *o++ = '\t'; continue;
        case 'u': break;
        default: return cur_fail(c, "unknown escape \\%c", e);
        }
        unsigned u, lo;
        if (end - s < 4 || hex4(s, &u)) return cur_fail(c, "a bad \\u escape");
        s += 4;
        if (u == 0) return cur_fail(c, "a string holds \\u0000");
        if (u >= 0xDC00 && u <= 0xDFFF) return cur_fail(c, "a string holds half a surrogate pair");
        if (u >= 0xD800 && u <= 0xDBFF) {
            if (end - s < 6 || s[0] != '\\' || s[1] != 'u' || hex4(s + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                return cur_fail(c, "a string holds half a surrogate pair");
            s += 6;
            u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
        }
        /* UTF-8: never longer than the escape it replaces. */
        if (u < 0x80) {
            *o++ = (char)u;
        } else if (u < 0x800) {
            *o++ = (char)(0xC0 | (u >> 6));
            *o++ = (char)(0x80 | (u & 0x3F));
        } else if (u < 0x10000) {
            *o++ = (char)(0xE0 | (u >> 12));
            *o++ = (char)(0x80 | ((u >> 6) & 0x3F));
            *o++ = (char)(0x80 | (u & 0x3F));
        } else {
            *o++ = (char)(0xF0 | (u >> 18));
            *o++ = (char)(0x80 | ((u >> 12) & 0x3F));
            *o++ = (char)(0x80 | ((u >> 6) & 0x3F));
            *o++ = (char)(0x80 | (u & 0x3F));
        }
    }
    out->len = (size_t)(o - out->data);
    return TARN_OK;
}

/* At a number: its bytes, and whether it is an integer (no fraction, no
 * exponent). */
static int cur_number(scan_cur *c, const char **s, size_t *n, int *integer)
{
    const char *p = c->p;
    *integer = 1;
    if (p < c->end && *p == '-') p++;
    const char *digits = p;
    while (p < c->end && *p >= '0' && *p <= '9') p++;
    if (p == digits) return cur_fail(c, "a value that is not JSON");
    if (p < c->end && *p == '.') {
        *integer = 0;
        p++;
        while (p < c->end && *p >= '0' && *p <= '9') p++;
    }
    if (p < c->end && (*p == 'e' || *p == 'E')) {
        *integer = 0;
        p++;
        if (p < c->end && (*p == '+' || *p == '-')) p++;
        while (p < c->end && *p >= '0' && *p <= '9') p++;
    }
    *s = c->p;
    *n = (size_t)(p - c->p);
    c->p = p;
    return TARN_OK;
}

/* An integer's magnitude, if it fits in 128 bits. */
static int int_magnitude(const char *s, size_t n, int *neg, unsigned __int128 *out)
{
    *neg = n > 0 && s[0] == '-';
    unsigned __int128 v = 0;
    const unsigned __int128 limit = ~(unsigned __int128)0 / 10;
    for (size_t i = *neg; i < n; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (v > limit || (v == limit && d > (unsigned)(~(unsigned __int128)0 % 10))) return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static int cur_literal(scan_cur *c, const char *word, size_t n)
{
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0) return cur_fail(c, "a value that is not JSON");
    c->p += n;
    return TARN_OK;
}

/* After a member of an object or an element of an array: 1 past a ','
 * (and the space after it), 0 past the closing byte, else an error. */
static int cur_after(scan_cur *c, char close)
{
    cur_ws(c);
    if (c->p < c->end && (*c->p == ',' || *c->p == close)) {
        int more = *c->p++ == ',';
        if (more) cur_ws(c);
        return more;
    }
    return cur_fail(c, close == '}' ? "an object that is not JSON" : "an array that is not JSON");
}

/* ------------------------------------------------------------ filling */

static void set_invalid(duckdb_vector v, idx_t row)
{
    duckdb_vector_ensure_validity_writable(v);
    duckdb_validity_set_row_invalid(duckdb_vector_get_validity(v), row);
}

/* NULL at row of v (typed t), its fields too. */
static void set_null(const scan_node *t, duckdb_vector v, idx_t row)
{
    set_invalid(v, row);
    if (t->kind == TARN_T_STRUCT) {
        for (size_t i = 0; i < t->nfields; i++) set_null(t->fields[i], duckdb_struct_vector_get_child(v, i), row);
    } else if (t->kind == TARN_T_LIST) {
        duckdb_list_entry *e = duckdb_vector_get_data(v);
        e[row].offset = duckdb_list_vector_get_size(v);
        e[row].length = 0;
    }
}

/* s (n bytes, valid UTF-8) as the VARCHAR at row of v. A string of at most
 * 12 bytes is stored inside the vector's duckdb_string_t (zero-padded, as
 * DuckDB compares the whole 16 bytes) when it is ASCII; anything else goes
 * through DuckDB, which checks the UTF-8 and copies longer text into the
 * vector's heap. Short ASCII strings are about half of the strings of
 * typical records, and DuckDB's check and call cost 5% of a delivery. */
static void put_string(duckdb_vector v, idx_t row, const char *s, size_t n)
{
    if (n <= sizeof(((duckdb_string_t *)0)->value.inlined.inlined)) {
        duckdb_string_t str;
        memset(&str, 0, sizeof str);
        memcpy(str.value.inlined.inlined, s, n);
        uint64_t a, b;
        memcpy(&a, str.value.inlined.inlined, 8);
        memcpy(&b, str.value.inlined.inlined + 4, 8);
        if (((a | b) & 0x8080808080808080ULL) == 0) {
            str.value.inlined.length = (uint32_t)n;
            ((duckdb_string_t *)duckdb_vector_get_data(v))[row] = str;
            return;
        }
    }
    duckdb_vector_assign_string_element_len(v, row, s, n);
}

/* Text as DuckDB casts it to UUID (checked against DuckDB 1.5.6 in
 * test_scan.c): optionally in braces, 32 hex digits in either case with
 * any number of '-' anywhere among them. The value is stored as DuckDB
 * keeps a UUID: the 128-bit number with its top bit flipped (so that
 * signed order is the text's order). */
static int parse_uuid(const char *s, size_t n, duckdb_hugeint *out)
{
    if (n >= 1 && s[0] == '{') {
        if (n < 2 || s[n - 1] != '}') return -1;
        s++;
        n -= 2;
    }
    uint64_t hi = 0, lo = 0;
    int digits = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '-') continue;
        int d = tarn_hex_digit(s[i]);
        if (d < 0 || digits == 32) return -1;
        if (digits < 16) hi = hi << 4 | (uint64_t)d;
        else lo = lo << 4 | (uint64_t)d;
        digits++;
    }
    if (digits != 32) return -1;
    out->lower = lo;
    out->upper = (int64_t)(hi ^ ((uint64_t)1 << 63));
    return 0;
}

static int fill(scan_cur *c, const scan_node *t, duckdb_vector v, idx_t row);

/* Quick schema (scan.h): notes the kind of a value at t while learning
 * (on one thread, before the query: the nodes are not shared yet), or
 * stops the scan at a kind that t did not learn. */
static int cur_kind(scan_cur *c, const scan_node *t, uint32_t kind)
{
    if (c->kinds == SCAN_KINDS_LEARN) {
        scan_node *m = (scan_node *)t;
        shape_kind_add(&m->kinds, &m->text_lengths, kind);
        return TARN_OK;
    }
    if (shape_kind_in(t->kinds, t->text_lengths, kind)) return TARN_OK;
    char what[64];
    shape_kind_name(kind, what, sizeof what);
    return cur_fail(c, "a value of a kind the batch's first records did not have there (%s)", what);
}

/* Whether n bytes at a and b are equal. Keys are short: inline, this costs
 * a third of a memcmp call (2.5% of a delivery was that call). */
static inline int key_eq(const char *a, const char *b, size_t n)
{
    for (; n >= 8; a += 8, b += 8, n -= 8) {
        uint64_t x, y;
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        if (x != y) return 0;
    }
    for (; n > 0; a++, b++, n--)
        if (*a != *b) return 0;
    return 1;
}

/* The field of t named by a key's raw bytes: spelled alike, else alike
 * but for ASCII case (scan.h); guess is tried first. */
static long find_field(scan_cur *c, const scan_node *t, const char *k, size_t n, int escaped, size_t guess)
{
    if (escaped) {
        if (unescape(c, k, n, &c->w->key)) return -2;
        k = c->w->key.data;
        n = c->w->key.len;
    }
    if (guess < t->nfields && t->name_lens[guess] == n && key_eq(t->names[guess], k, n)) return (long)guess;
    for (size_t i = 0; i < t->nfields; i++)
        if (t->name_lens[i] == n && key_eq(t->names[i], k, n)) return (long)i;
    for (size_t i = 0; i < t->nfields; i++)
        if (t->name_lens[i] == n && strncasecmp(t->names[i], k, n) == 0) return (long)i;
    return -1;
}

/* At '{': an object into the fields of t: the children of struct vector v,
 * or (the record itself) the vectors top[]. */
static int fill_object(scan_cur *c, const scan_node *t, duckdb_vector v, duckdb_vector *top, idx_t row)
{
    unsigned char *seen = c->w->seen + t->seen_off;
    memset(seen, 0, t->nfields);
    c->p++;
    cur_ws(c);
    size_t next = 0;
    if (c->p < c->end && *c->p == '}') {
        c->p++;
    } else {
        for (;;) {
            if (c->p >= c->end || *c->p != '"') return cur_fail(c, "an object key that is not JSON");
            const char *k = NULL;
            size_t kn = 0;
            int escaped = 0, rc;
            if ((rc = cur_string(c, &k, &kn, &escaped))) return rc;
            long f = find_field(c, t, k, kn, escaped, next);
            if (f == -2) return TARN_EUNSUPPORTED;
            if (f < 0) return cur_fail(c, "the key \"%.*s\" is not a column or field", (int)(kn > 64 ? 64 : kn), k);
            if (seen[f]) return cur_fail(c, "the key \"%.*s\" is given twice", (int)(kn > 64 ? 64 : kn), k);
            seen[f] = 1;
            next = (size_t)f + 1;
            cur_ws(c);
            if (c->p >= c->end || *c->p != ':') return cur_fail(c, "an object that is not JSON");
            c->p++;
            duckdb_vector child = top ? top[f] : duckdb_struct_vector_get_child(v, (idx_t)f);
            if ((rc = fill(c, t->fields[f], child, row))) return rc;
            if ((rc = cur_after(c, '}')) <= 0) {
                if (rc) return rc;
                break;
            }
        }
    }
    for (size_t i = 0; i < t->nfields; i++)
        if (!seen[i]) set_null(t->fields[i], top ? top[i] : duckdb_struct_vector_get_child(v, i), row);
    return TARN_OK;
}

/* At '[': an array into list vector v. */
static int fill_array(scan_cur *c, const scan_node *t, duckdb_vector v, idx_t row)
{
    idx_t off = duckdb_list_vector_get_size(v), k = 0;
    c->p++;
    cur_ws(c);
    if (c->p < c->end && *c->p == ']') {
        c->p++;
    } else {
        for (;;) {
            if (duckdb_list_vector_reserve(v, off + k + 1) != DuckDBSuccess) return TARN_ENOMEM;
            int rc = fill(c, t->elem, duckdb_list_vector_get_child(v), off + k);
            if (rc) return rc;
            k++;
            if ((rc = cur_after(c, ']')) <= 0) {
                if (rc) return rc;
                break;
            }
        }
    }
    if (duckdb_list_vector_set_size(v, off + k) != DuckDBSuccess) return TARN_ENOMEM;
    duckdb_list_entry *e = duckdb_vector_get_data(v);
    e[row].offset = off;
    e[row].length = k;
    return TARN_OK;
}

static int fill_number(scan_cur *c, const scan_node *t, duckdb_vector v, idx_t row)
{
    const char *s = NULL;
    size_t n = 0;
    int integer = 0, neg = 0, rc;
    unsigned __int128 mag = 0;
    if ((rc = cur_number(c, &s, &n, &integer))) return rc;
    if (c->kinds) {
        int minus = s[0] == '-';
        if ((rc = cur_kind(c, t, integer ? shape_integer(minus, s + minus, n - (size_t)minus) : SHAPE_REAL)))
            return rc;
    }
    int big = !integer || int_magnitude(s, n, &neg, &mag);
    int negzero = integer && !big && neg && mag == 0;
    switch (t->kind) {
    case TARN_T_BIGINT:
        if (big || negzero || (neg ? mag > (unsigned __int128)INT64_MAX + 1 : mag > INT64_MAX)) break;
        ((int64_t *)duckdb_vector_get_data(v))[row] = neg ? (int64_t)(0 - (uint64_t)mag) : (int64_t)mag;
        return TARN_OK;
    case TARN_T_HUGEINT: {
        const unsigned __int128 top = (unsigned __int128)1 << 127;
        if (big || negzero || (neg ? mag > top : mag >= top)) break;
        unsigned __int128 u = neg ? 0 - mag : mag;
        duckdb_hugeint *h = (duckdb_hugeint *)duckdb_vector_get_data(v) + row;
        h->lower = (uint64_t)u;
        h->upper = (int64_t)(uint64_t)(u >> 64);
        return TARN_OK;
    }
    case TARN_T_DOUBLE: {
        if (negzero) break;
        /* strtod stops at the byte after the number, as JSON ends it. */
        errno = 0;
        double d = strtod(s, NULL);
        if (errno == ERANGE || isinf(d) || isnan(d)) break;
        ((double *)duckdb_vector_get_data(v))[row] = d;
        return TARN_OK;
    }
    case TARN_T_VARCHAR:
        if (!integer) break;
        if (negzero) put_string(v, row, "0", 1);
        else put_string(v, row, s, n);
        return TARN_OK;
    default: break;
    }
    return cur_fail(c, "the number %.*s in a column of another type", (int)(n > 40 ? 40 : n), s);
}

static int fill(scan_cur *c, const scan_node *t, duckdb_vector v, idx_t row)
{
    cur_ws(c);
    if (c->p >= c->end) return cur_fail(c, "a record that ends too soon");
    char ch = *c->p;
    int rc;
    switch (ch) {
    case 'n':
        if ((rc = cur_literal(c, "null", 4))) return rc;
        if (c->kinds && (rc = cur_kind(c, t, SHAPE_NULL))) return rc;
        set_null(t, v, row);
        return TARN_OK;
    case 't':
    case 'f': {
        int yes = ch == 't';
        if ((rc = cur_literal(c, yes ? "true" : "false", yes ? 4 : 5))) return rc;
        if (c->kinds && (rc = cur_kind(c, t, SHAPE_BOOLEAN))) return rc;
        if (t->kind == TARN_T_BOOLEAN) ((bool *)duckdb_vector_get_data(v))[row] = yes;
        else if (t->kind == TARN_T_VARCHAR) put_string(v, row, yes ? "true" : "false", yes ? 4 : 5);
        else return cur_fail(c, "a boolean in a column of another type");
        return TARN_OK;
    }
    case '"': {
        if (t->kind != TARN_T_VARCHAR && !tarn_type_kind_is_text(t->kind)) return cur_fail(c, "a string in a column of another type");
        const char *s = NULL;
        size_t n = 0;
        int escaped = 0;
        if ((rc = cur_string(c, &s, &n, &escaped))) return rc;
        if (c->kinds && (rc = cur_kind(c, t, shape_string_kind(s, n)))) return rc;
        if (escaped) {
            if ((rc = unescape(c, s, n, &c->w->text))) return rc;
            s = c->w->text.data;
            n = c->w->text.len;
        }
        if (t->kind != TARN_T_UUID) {
            put_string(v, row, s, n);
            return TARN_OK;
        }
        if (parse_uuid(s, n, (duckdb_hugeint *)duckdb_vector_get_data(v) + row))
            return cur_fail(c, "the string \"%.*s\" in a UUID column is not a UUID", (int)(n > 64 ? 64 : n), s);
        return TARN_OK;
    }
    case '{':
        if (t->kind != TARN_T_STRUCT) return cur_fail(c, "an object in a column of another type");
        if (c->kinds && (rc = cur_kind(c, t, SHAPE_OBJECT))) return rc;
        return fill_object(c, t, v, NULL, row);
    case '[':
        if (t->kind != TARN_T_LIST) return cur_fail(c, "an array in a column of another type");
        if (c->kinds && (rc = cur_kind(c, t, SHAPE_ARRAY))) return rc;
        return fill_array(c, t, v, row);
    default: return fill_number(c, t, v, row);
    }
}

/* ------------------------------------------------------------ the table function */

static void scan_stop(tarn_scan *sc, int code, const char *msg)
{
    pthread_mutex_lock(&sc->mu);
    if (!sc->stop) {
        sc->stop = 1;
        sc->stop_code = code;
        snprintf(sc->stop_msg, sizeof sc->stop_msg, "%s", msg);
    }
    pthread_mutex_unlock(&sc->mu);
}

/* Whether a record stamped ts belongs to the job's date. Under mu. */
static int scan_date_matches(tarn_scan *sc, int64_t ts)
{
    if (!sc->has_date) return 1;
    int64_t day = tarn_utc_day(ts);
    if (day != sc->day_cached) {
        char d[11];
        tarn_format_date(ts, d);
        sc->day_cached = day;
        sc->day_match = memcmp(d, sc->date, 11) == 0;
    }
    return sc->day_match;
}

/* Appends a record to w's chunk as its row n. */
static int scan_row_add(scan_worker *w, idx_t n, int64_t seq, int64_t ts, const char *data, size_t len)
{
    scan_row *r = &w->rows[n];
    r->off = w->recs.len;
    r->len = len;
    r->seq = seq;
    r->ts = ts;
    return tarn_buf_append(&w->recs, data, len);
}

/* Copies the next records of the job into w: *n rows. */
static int scan_take(tarn_scan *sc, scan_worker *w, idx_t cap, idx_t *n)
{
    int rc = TARN_OK;
    *n = 0;
    tarn_buf_reset(&w->recs);
    pthread_mutex_lock(&sc->mu);
    while (!sc->stop && !sc->done && *n < cap && w->recs.len < SCAN_CHUNK_BYTES) {
        int64_t seq, ts;
        const char *data;
        size_t len;
        int more = tarn_stream_reader_next(sc->reader, &seq, &ts, &data, &len, &w->eb);
        if (more < 0) {
            rc = more;
            break;
        }
        if (more == 0 || seq > sc->upto_seq) {
            sc->done = 1;
            break;
        }
        if (!scan_date_matches(sc, ts)) {
            if (!sc->date_ends) continue;
            sc->done = 1;
            break;
        }
        if ((rc = scan_row_add(w, *n, seq, ts, data, len))) {
            snprintf(w->eb.msg, sizeof w->eb.msg, "out of memory for the records of a scan");
            break;
        }
        (*n)++;
        sc->taken_last = seq;
        sc->taken_bytes += (int64_t)len;
        sc->taken_rows++;
        /* The staging's rule (stage.c): the record that reaches the budget
         * is the batch's last. */
        if (sc->max_bytes && (size_t)sc->taken_bytes >= sc->max_bytes) {
            sc->done = 1;
            break;
        }
    }
    pthread_mutex_unlock(&sc->mu);
    return rc;
}

static void scan_worker_free(void *p)
{
    scan_worker *w = p;
    if (!w) return;
    tarn_buf_free(&w->recs);
    tarn_buf_free(&w->text);
    tarn_buf_free(&w->key);
    free(w->rows);
    free(w->seen);
    free(w->top);
    free(w);
}

static void scan_bind(duckdb_bind_info info)
{
    tarn_scan *sc = duckdb_bind_get_extra_info(info);
    if (!sc->ready) {
        duckdb_bind_set_error(info, "tarn_log_scan: no scan is prepared");
        return;
    }
    for (size_t i = 0; i < sc->ncols; i++) {
        duckdb_logical_type t;
        if ((int)i == sc->seq_col) t = duckdb_create_logical_type(DUCKDB_TYPE_BIGINT);
        else if ((int)i == sc->ts_col) t = duckdb_create_logical_type(DUCKDB_TYPE_TIMESTAMP);
        else t = node_logical(sc->col_nodes[i]);
        if (!t) {
            duckdb_bind_set_error(info, "tarn_log_scan: out of memory");
            return;
        }
        duckdb_bind_add_result_column(info, sc->col_names[i], t);
        duckdb_destroy_logical_type(&t);
    }
}

static void scan_init(duckdb_init_info info)
{
    tarn_scan *sc = duckdb_init_get_extra_info(info);
    duckdb_init_set_max_threads(info, (idx_t)sc->threads);
}

/* A worker for the job: NULL when memory is short. */
static scan_worker *scan_worker_new(const tarn_scan *sc)
{
    scan_worker *w = calloc(1, sizeof *w);
    if (w) {
        tarn_buf_init(&w->recs, TARN_BUF_DEFAULT_MAX);
        tarn_buf_init(&w->text, TARN_BUF_DEFAULT_MAX);
        tarn_buf_init(&w->key, TARN_BUF_DEFAULT_MAX);
        w->rows = calloc(duckdb_vector_size(), sizeof *w->rows);
        w->seen = calloc(sc->nseen ? sc->nseen : 1, 1);
        w->top = calloc(sc->record.nfields ? sc->record.nfields : 1, sizeof *w->top);
    }
    if (!w || !w->rows || !w->seen || !w->top) {
        scan_worker_free(w);
        return NULL;
    }
    return w;
}

static void scan_local_init(duckdb_init_info info)
{
    scan_worker *w = scan_worker_new(duckdb_init_get_extra_info(info));
    if (!w) {
        duckdb_init_set_error(info, "tarn_log_scan: out of memory");
        return;
    }
    duckdb_init_set_init_data(info, w, scan_worker_free);
}

/* Parses row r of w's chunk into row i of the record's vectors (top); on
 * failure w->eb names the record. */
static int scan_record(tarn_scan *sc, scan_worker *w, const scan_row *r, duckdb_vector *top, idx_t i)
{
    scan_cur c = {w->recs.data + r->off, w->recs.data + r->off + r->len, w, sc->kinds};
    cur_ws(&c);
    int rc = c.p < c.end && *c.p == '{' ? fill_object(&c, &sc->record, NULL, top, i)
                                        : cur_fail(&c, "a record that is not an object");
    if (!rc) {
        cur_ws(&c);
        if (c.p != c.end) rc = cur_fail(&c, "bytes after the record");
    }
    if (rc) {
        char msg[sizeof w->eb.msg];
        snprintf(msg, sizeof msg, "record %lld: %s", (long long)r->seq,
                 rc == TARN_ENOMEM ? "out of memory" : w->eb.msg);
        snprintf(w->eb.msg, sizeof w->eb.msg, "%s", msg);
    }
    return rc;
}

static void scan_function(duckdb_function_info info, duckdb_data_chunk out)
{
    tarn_scan *sc = duckdb_function_get_extra_info(info);
    scan_worker *w = duckdb_function_get_local_init_data(info);
    idx_t n = 0;
    int rc = scan_take(sc, w, duckdb_vector_size(), &n);
    if (rc == TARN_OK && n > 0) {
        duckdb_vector *top = w->top;
        for (size_t f = 0; f < sc->record.nfields; f++) top[f] = duckdb_data_chunk_get_vector(out, sc->field_col[f]);
        int64_t *seqs = sc->seq_col >= 0 ? duckdb_vector_get_data(duckdb_data_chunk_get_vector(out, (idx_t)sc->seq_col))
                                         : NULL;
        int64_t *tss = sc->ts_col >= 0 ? duckdb_vector_get_data(duckdb_data_chunk_get_vector(out, (idx_t)sc->ts_col))
                                       : NULL;
        for (idx_t i = 0; i < n && rc == TARN_OK; i++) {
            const scan_row *r = &w->rows[i];
            rc = scan_record(sc, w, r, top, i);
            if (seqs) seqs[i] = r->seq;
            if (tss) tss[i] = r->ts;
        }
    }
    if (rc) {
        scan_stop(sc, rc, w->eb.msg);
        duckdb_function_set_error(info, w->eb.msg);
        n = 0;
    }
    duckdb_data_chunk_set_size(out, n);
}

int tarn_scan_register(duckdb_connection conn, int threads, tarn_scan **out, tarn_errbuf *eb)
{
    tarn_scan *sc = calloc(1, sizeof *sc);
    if (!sc) return TARN_ENOMEM;
    sc->threads = threads > 0 ? threads : 1;
    pthread_mutex_init(&sc->mu, NULL);
    duckdb_table_function f = duckdb_create_table_function();
    duckdb_table_function_set_name(f, "tarn_log_scan");
    duckdb_table_function_set_extra_info(f, sc, NULL);
    duckdb_table_function_set_bind(f, scan_bind);
    duckdb_table_function_set_init(f, scan_init);
    duckdb_table_function_set_local_init(f, scan_local_init);
    duckdb_table_function_set_function(f, scan_function);
    duckdb_state st = duckdb_register_table_function(conn, f);
    duckdb_destroy_table_function(&f);
    if (st != DuckDBSuccess) {
        tarn_scan_free(sc);
        return tarn_errbuf_set(eb, TARN_EINTERNAL, "registering tarn_log_scan failed");
    }
    *out = sc;
    return TARN_OK;
}

/* Forgets the job. */
static void scan_clear(tarn_scan *sc)
{
    if (sc->reader) tarn_stream_reader_close(sc->reader);
    for (size_t i = 0; i < sc->ncols; i++) {
        free(sc->col_names[i]);
        if (sc->col_nodes && sc->col_nodes[i]) {
            node_free(sc->col_nodes[i]);
            free(sc->col_nodes[i]);
        }
    }
    free(sc->col_names);
    free(sc->col_nodes);
    /* The record's fields are the column nodes: only its arrays are its own. */
    free(sc->record.names);
    free(sc->record.name_lens);
    free(sc->record.fields);
    free(sc->field_col);
    memset(sc, 0, offsetof(tarn_scan, threads));
}

void tarn_scan_free(tarn_scan *sc)
{
    if (!sc) return;
    scan_clear(sc);
    pthread_mutex_destroy(&sc->mu);
    free(sc);
}

int tarn_scan_prepare(tarn_scan *sc, tarn_stream *s, int64_t from_seq, int64_t upto_seq, const char *date,
                      const tarn_column *cols, size_t ncols, tarn_buf *select, tarn_errbuf *eb)
{
    scan_clear(sc);
    int rc = TARN_OK;
    sc->ncols = ncols;
    sc->seq_col = sc->ts_col = -1;
    sc->col_names = calloc(ncols ? ncols : 1, sizeof *sc->col_names);
    sc->col_nodes = calloc(ncols ? ncols : 1, sizeof *sc->col_nodes);
    sc->record.kind = TARN_T_STRUCT;
    sc->record.names = calloc(ncols ? ncols : 1, sizeof *sc->record.names);
    sc->record.name_lens = calloc(ncols ? ncols : 1, sizeof *sc->record.name_lens);
    sc->record.fields = calloc(ncols ? ncols : 1, sizeof *sc->record.fields);
    sc->field_col = calloc(ncols ? ncols : 1, sizeof *sc->field_col);
    if (!sc->col_names || !sc->col_nodes || !sc->record.names || !sc->record.name_lens || !sc->record.fields ||
        !sc->field_col)
        rc = TARN_ENOMEM;
    sc->nseen = 0;
    for (size_t i = 0; rc == TARN_OK && i < ncols; i++) {
        if (!(sc->col_names[i] = strdup(cols[i].name))) {
            rc = TARN_ENOMEM;
            break;
        }
        if (strcmp(cols[i].name, SCAN_SEQ) == 0) {
            sc->seq_col = (int)i;
            if (!rc) rc = tarn_buf_printf(select, "%s\"_seq\"", i ? ", " : "");
            continue;
        }
        if (strcmp(cols[i].name, SCAN_INGESTED_AT) == 0) {
            sc->ts_col = (int)i;
            if (!rc) rc = tarn_buf_printf(select, "%s\"_ingested_at\"", i ? ", " : "");
            continue;
        }
        tarn_type *ty = NULL;
        if ((rc = tarn_type_parse(cols[i].type, &ty, eb))) break;
        scan_node *t = calloc(1, sizeof *t);
        if (!t) rc = TARN_ENOMEM;
        else rc = node_from_type(ty, t, &sc->nseen, eb);
        if (t) sc->col_nodes[i] = t;
        /* The scan's own type text, to see whether the SELECT must cast. */
        tarn_buf own;
        tarn_buf_init(&own, 1 << 20);
        if (rc == TARN_OK) rc = tarn_type_format(ty, &own);
        int cast = rc == TARN_OK && (node_has_text(t) || strcmp(own.data, cols[i].type) != 0);
        tarn_buf_free(&own);
        tarn_type_free(ty);
        if (rc) break;
        size_t f = sc->record.nfields++;
        sc->record.names[f] = sc->col_names[i];
        sc->record.name_lens[f] = strlen(cols[i].name);
        sc->record.fields[f] = t;
        sc->field_col[f] = i;
        if (i) rc = tarn_buf_append_str(select, ", ");
        if (!rc && cast) rc = tarn_buf_append_str(select, "CAST(");
        if (!rc) rc = tarn_sql_ident(select, cols[i].name);
        if (!rc && cast) {
            rc = tarn_buf_printf(select, " AS %s) AS ", cols[i].type);
            if (!rc) rc = tarn_sql_ident(select, cols[i].name);
        }
    }
    sc->record.seen_off = sc->nseen;
    sc->nseen += sc->record.nfields;
    if (rc == TARN_OK && date) {
        sc->has_date = 1;
        snprintf(sc->date, sizeof sc->date, "%s", date);
        sc->day_cached = INT64_MIN;
    }
    sc->from_seq = sc->taken_last = from_seq;
    sc->upto_seq = upto_seq;
    if (rc == TARN_OK) rc = tarn_stream_reader_open(s, from_seq, &sc->reader, eb);
    if (rc == TARN_OK) sc->ready = 1;
    else {
        if (rc == TARN_ENOMEM) tarn_errbuf_set(eb, rc, "out of memory preparing a scan");
        scan_clear(sc);
    }
    return rc;
}

/* Parses the records (from_seq, learn_upto] into a chunk of the record's
 * types that nobody reads, noting the kinds of their values at the nodes. */
static int scan_learn(tarn_scan *sc, tarn_stream *s, int64_t learn_upto, tarn_errbuf *eb)
{
    size_t nf = sc->record.nfields;
    scan_worker *w = scan_worker_new(sc);
    duckdb_logical_type *types = calloc(nf ? nf : 1, sizeof *types);
    duckdb_data_chunk chunk = NULL;
    tarn_stream_reader *r = NULL;
    int rc = w && types ? TARN_OK : TARN_ENOMEM;
    for (size_t f = 0; rc == TARN_OK && f < nf; f++)
        if (!(types[f] = node_logical(sc->record.fields[f]))) rc = TARN_ENOMEM;
    if (rc == TARN_OK && !(chunk = duckdb_create_data_chunk(types, nf))) rc = TARN_ENOMEM;
    if (rc == TARN_OK) rc = tarn_stream_reader_open(s, sc->from_seq, &r, eb);
    sc->kinds = SCAN_KINDS_LEARN;
    idx_t cap = duckdb_vector_size(), n = 0;
    while (rc == TARN_OK) {
        int64_t seq, ts;
        const char *data;
        size_t len;
        int more = tarn_stream_reader_next(r, &seq, &ts, &data, &len, eb);
        if (more < 0) rc = more;
        if (more <= 0 || seq > learn_upto) break;
        pthread_mutex_lock(&sc->mu);
        int same_day = scan_date_matches(sc, ts);
        pthread_mutex_unlock(&sc->mu);
        if (!same_day) {
            rc = tarn_errbuf_set(eb, TARN_EUNSUPPORTED, "record %lld of the head is of another date than the scan's",
                                 (long long)seq);
            break;
        }
        if (n == cap) {
            duckdb_data_chunk_reset(chunk);
            n = 0;
        }
        if (n == 0) {
            tarn_buf_reset(&w->recs);
            for (size_t f = 0; f < nf; f++) w->top[f] = duckdb_data_chunk_get_vector(chunk, f);
        }
        if ((rc = scan_row_add(w, n, seq, ts, data, len))) break;
        if ((rc = scan_record(sc, w, &w->rows[n], w->top, n))) {
            tarn_errbuf_set(eb, rc, "%s", w->eb.msg);
            break;
        }
        n++;
    }
    sc->kinds = SCAN_KINDS_OFF;
    if (rc == TARN_ENOMEM) tarn_errbuf_set(eb, rc, "out of memory learning the kinds of a batch's first records");
    if (r) tarn_stream_reader_close(r);
    if (chunk) duckdb_destroy_data_chunk(&chunk);
    for (size_t f = 0; types && f < nf; f++)
        if (types[f]) duckdb_destroy_logical_type(&types[f]);
    free(types);
    scan_worker_free(w);
    return rc;
}

int tarn_scan_quick(tarn_scan *sc, tarn_stream *s, int64_t learn_upto, size_t max_bytes, tarn_errbuf *eb)
{
    if (!sc->ready || !sc->has_date)
        return tarn_errbuf_set(eb, TARN_EINTERNAL, "a quick scan needs a prepared scan of one date");
    int rc = scan_learn(sc, s, learn_upto, eb);
    if (rc) return rc;
    sc->kinds = SCAN_KINDS_CHECK;
    sc->date_ends = 1;
    sc->max_bytes = max_bytes;
    return TARN_OK;
}

void tarn_scan_taken(const tarn_scan *sc, int64_t *last_seq, int64_t *bytes, int64_t *rows)
{
    *last_seq = sc->taken_last;
    *bytes = sc->taken_bytes;
    *rows = sc->taken_rows;
}

int tarn_scan_finish(tarn_scan *sc, int query_rc, tarn_errbuf *eb)
{
    int rc = query_rc;
    if (sc->stop) rc = tarn_errbuf_set(eb, sc->stop_code, "%s", sc->stop_msg);
    scan_clear(sc);
    return rc;
}
