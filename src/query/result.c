/* result.c - see result.h. */
#include "result.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/duck.h"

int query_valid(duckdb_vector v, idx_t row)
{
    uint64_t *validity = duckdb_vector_get_validity(v);
    return !validity || duckdb_validity_row_is_valid(validity, row);
}

static int result_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void query_col_free(query_col *c)
{
    for (size_t i = 0; i < c->nchildren; i++) query_col_free(&c->children[i]);
    free(c->children);
    if (c->enum_names) {
        for (uint32_t i = 0; i < c->enum_size; i++) duckdb_free(c->enum_names[i]);
        free(c->enum_names);
    }
    if (c->name) duckdb_free(c->name);
    tarn_buf_free(&c->json_key);
    if (c->lt) duckdb_destroy_logical_type(&c->lt);
}

/* Takes ownership of lt. */
int query_col_init(query_col *c, duckdb_logical_type lt)
{
    memset(c, 0, sizeof *c);
    c->lt = lt;
    c->id = duckdb_get_type_id(lt);
    switch (c->id) {
    case DUCKDB_TYPE_DECIMAL:
        c->width = duckdb_decimal_width(lt);
        c->scale = duckdb_decimal_scale(lt);
        c->internal = duckdb_decimal_internal_type(lt);
        return TARN_OK;
    case DUCKDB_TYPE_ENUM:
        c->internal = duckdb_enum_internal_type(lt);
        c->enum_size = duckdb_enum_dictionary_size(lt);
        return TARN_OK;
    case DUCKDB_TYPE_LIST:
    case DUCKDB_TYPE_ARRAY:
        c->nchildren = 1;
        break;
    case DUCKDB_TYPE_MAP:
        c->nchildren = 2;
        break;
    case DUCKDB_TYPE_STRUCT:
        c->nchildren = (size_t)duckdb_struct_type_child_count(lt);
        break;
    case DUCKDB_TYPE_UNION:
        c->nchildren = (size_t)duckdb_union_type_member_count(lt);
        break;
    default:
        return TARN_OK;
    }
    if (c->nchildren == 0) return TARN_OK;
    c->children = calloc(c->nchildren, sizeof *c->children);
    if (!c->children) {
        c->nchildren = 0;
        return TARN_ENOMEM;
    }
    for (size_t i = 0; i < c->nchildren; i++) {
        duckdb_logical_type ct;
        char *name = NULL;
        switch (c->id) {
        case DUCKDB_TYPE_LIST: ct = duckdb_list_type_child_type(lt); break;
        case DUCKDB_TYPE_ARRAY:
            ct = duckdb_array_type_child_type(lt);
            c->array_size = duckdb_array_type_array_size(lt);
            break;
        case DUCKDB_TYPE_MAP: ct = i == 0 ? duckdb_map_type_key_type(lt) : duckdb_map_type_value_type(lt); break;
        case DUCKDB_TYPE_STRUCT:
            ct = duckdb_struct_type_child_type(lt, i);
            name = duckdb_struct_type_child_name(lt, i);
            break;
        default: /* UNION */
            ct = duckdb_union_type_member_type(lt, i);
            name = duckdb_union_type_member_name(lt, i);
            break;
        }
        int rc = query_col_init(&c->children[i], ct);
        c->children[i].name = name;
        if (!rc && c->id == DUCKDB_TYPE_STRUCT) {
            /* Every row repeats it: encoded once. */
            query_col *f = &c->children[i];
            const char *n = name ? name : "";
            tarn_buf_init(&f->json_key, 0);
            rc = tarn_buf_append_json_str(&f->json_key, n, strlen(n));
            if (!rc) rc = tarn_buf_append_char(&f->json_key, ':');
            if (rc) rc = TARN_ENOMEM;
        }
        if (rc) return rc;
    }
    return TARN_OK;
}

/* Whether DuckDB prints a field name without quotes in type text: a simple
 * identifier that is not a keyword. */
static int query_name_plain(char *const *keywords, size_t nkeywords, const char *s)
{
    char low[64];
    size_t n = 0;
    for (const char *p = s; *p; p++) {
        char ch = *p;
        int alpha = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_';
        if (!alpha && (p == s || ch < '0' || ch > '9')) return 0;
        if (n + 1 >= sizeof low) return 1; /* longer than any keyword */
        low[n++] = (char)(ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch);
    }
    if (n == 0) return 0;
    low[n] = '\0';
    const char *key = low;
    return bsearch(&key, keywords, nkeywords, sizeof *keywords, result_cmp_str) == NULL;
}

/* DuckDB's text for a type: "BIGINT", "VARCHAR[]", "STRUCT(x BIGINT, \"Y\" VARCHAR)". */
int query_type_text(char *const *keywords, size_t nkeywords, const query_col *c, tarn_buf *b)
{
    char *alias = duckdb_logical_type_get_alias(c->lt);
    if (alias) {
        int rc = tarn_buf_append_str(b, alias);
        duckdb_free(alias);
        return rc;
    }
    switch (c->id) {
    case DUCKDB_TYPE_BOOLEAN: return tarn_buf_append_str(b, "BOOLEAN");
    case DUCKDB_TYPE_TINYINT: return tarn_buf_append_str(b, "TINYINT");
    case DUCKDB_TYPE_SMALLINT: return tarn_buf_append_str(b, "SMALLINT");
    case DUCKDB_TYPE_INTEGER: return tarn_buf_append_str(b, "INTEGER");
    case DUCKDB_TYPE_BIGINT: return tarn_buf_append_str(b, "BIGINT");
    case DUCKDB_TYPE_UTINYINT: return tarn_buf_append_str(b, "UTINYINT");
    case DUCKDB_TYPE_USMALLINT: return tarn_buf_append_str(b, "USMALLINT");
    case DUCKDB_TYPE_UINTEGER: return tarn_buf_append_str(b, "UINTEGER");
    case DUCKDB_TYPE_UBIGINT: return tarn_buf_append_str(b, "UBIGINT");
    case DUCKDB_TYPE_HUGEINT: return tarn_buf_append_str(b, "HUGEINT");
    case DUCKDB_TYPE_UHUGEINT: return tarn_buf_append_str(b, "UHUGEINT");
    case DUCKDB_TYPE_FLOAT: return tarn_buf_append_str(b, "FLOAT");
    case DUCKDB_TYPE_DOUBLE: return tarn_buf_append_str(b, "DOUBLE");
    case DUCKDB_TYPE_DECIMAL:
        return tarn_buf_printf(b, "DECIMAL(%u,%u)", (unsigned)c->width, (unsigned)c->scale);
    case DUCKDB_TYPE_VARCHAR: return tarn_buf_append_str(b, "VARCHAR");
    case DUCKDB_TYPE_BLOB: return tarn_buf_append_str(b, "BLOB");
    case DUCKDB_TYPE_DATE: return tarn_buf_append_str(b, "DATE");
    case DUCKDB_TYPE_TIME: return tarn_buf_append_str(b, "TIME");
    case DUCKDB_TYPE_TIME_NS: return tarn_buf_append_str(b, "TIME_NS");
    case DUCKDB_TYPE_TIME_TZ: return tarn_buf_append_str(b, "TIME WITH TIME ZONE");
    case DUCKDB_TYPE_TIMESTAMP: return tarn_buf_append_str(b, "TIMESTAMP");
    case DUCKDB_TYPE_TIMESTAMP_S: return tarn_buf_append_str(b, "TIMESTAMP_S");
    case DUCKDB_TYPE_TIMESTAMP_MS: return tarn_buf_append_str(b, "TIMESTAMP_MS");
    case DUCKDB_TYPE_TIMESTAMP_NS: return tarn_buf_append_str(b, "TIMESTAMP_NS");
    case DUCKDB_TYPE_TIMESTAMP_TZ: return tarn_buf_append_str(b, "TIMESTAMP WITH TIME ZONE");
    case DUCKDB_TYPE_INTERVAL: return tarn_buf_append_str(b, "INTERVAL");
    case DUCKDB_TYPE_UUID: return tarn_buf_append_str(b, "UUID");
    case DUCKDB_TYPE_BIT: return tarn_buf_append_str(b, "BIT");
    case DUCKDB_TYPE_BIGNUM: return tarn_buf_append_str(b, "BIGNUM");
    case DUCKDB_TYPE_SQLNULL: return tarn_buf_append_str(b, "NULL");
    case DUCKDB_TYPE_ENUM: {
        int rc = tarn_buf_append_str(b, "ENUM(");
        for (uint32_t i = 0; i < c->enum_size && !rc; i++) {
            char *v = duckdb_enum_dictionary_value(c->lt, i);
            if (i) rc = tarn_buf_append_str(b, ", ");
            if (!rc) rc = tarn_sql_string(b, v ? v : "");
            duckdb_free(v);
        }
        return rc ? rc : tarn_buf_append_char(b, ')');
    }
    case DUCKDB_TYPE_LIST: {
        int rc = query_type_text(keywords, nkeywords, &c->children[0], b);
        return rc ? rc : tarn_buf_append_str(b, "[]");
    }
    case DUCKDB_TYPE_ARRAY: {
        int rc = query_type_text(keywords, nkeywords, &c->children[0], b);
        return rc ? rc : tarn_buf_printf(b, "[%llu]", (unsigned long long)c->array_size);
    }
    case DUCKDB_TYPE_MAP: {
        int rc = tarn_buf_append_str(b, "MAP(");
        if (!rc) rc = query_type_text(keywords, nkeywords, &c->children[0], b);
        if (!rc) rc = tarn_buf_append_str(b, ", ");
        if (!rc) rc = query_type_text(keywords, nkeywords, &c->children[1], b);
        return rc ? rc : tarn_buf_append_char(b, ')');
    }
    case DUCKDB_TYPE_STRUCT:
    case DUCKDB_TYPE_UNION: {
        int rc = tarn_buf_append_str(b, c->id == DUCKDB_TYPE_STRUCT ? "STRUCT(" : "UNION(");
        for (size_t i = 0; i < c->nchildren && !rc; i++) {
            const char *n = c->children[i].name ? c->children[i].name : "";
            if (i) rc = tarn_buf_append_str(b, ", ");
            if (!rc) rc = query_name_plain(keywords, nkeywords, n) ? tarn_buf_append_str(b, n) : tarn_sql_ident(b, n);
            if (!rc) rc = tarn_buf_append_char(b, ' ');
            if (!rc) rc = query_type_text(keywords, nkeywords, &c->children[i], b);
        }
        return rc ? rc : tarn_buf_append_char(b, ')');
    }
    default: return tarn_buf_printf(b, "UNKNOWN(%d)", (int)c->id);
    }
}

/* Whether the encoder can print every value of this type. */
int query_col_supported(const query_col *c, const query_col **bad)
{
    switch (c->id) {
    case DUCKDB_TYPE_BIGNUM:
    case DUCKDB_TYPE_INVALID:
    case DUCKDB_TYPE_ANY:
    case DUCKDB_TYPE_STRING_LITERAL:
    case DUCKDB_TYPE_INTEGER_LITERAL:
        *bad = c;
        return 0;
    case DUCKDB_TYPE_DECIMAL:
        if (c->internal != DUCKDB_TYPE_SMALLINT && c->internal != DUCKDB_TYPE_INTEGER &&
            c->internal != DUCKDB_TYPE_BIGINT && c->internal != DUCKDB_TYPE_HUGEINT) {
            *bad = c;
            return 0;
        }
        return 1;
    default:
        break;
    }
    for (size_t i = 0; i < c->nchildren; i++)
        if (!query_col_supported(&c->children[i], bad)) return 0;
    return 1;
}

static int query_put_u64(tarn_buf *b, uint64_t u, int neg)
{
    char tmp[24];
    char *p = tmp + sizeof tmp;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (neg) *--p = '-';
    return tarn_buf_append(b, p, (size_t)(tmp + sizeof tmp - p));
}

static int query_put_i64(tarn_buf *b, int64_t v)
{
    return v < 0 ? query_put_u64(b, (uint64_t)0 - (uint64_t)v, 1) : query_put_u64(b, (uint64_t)v, 0);
}

__extension__ typedef __int128 query_i128;
__extension__ typedef unsigned __int128 query_u128;

/* Decimal digits of a 128-bit magnitude with scale digits after the point.
 * DuckDB writes "0.50" for DECIMAL(5,2) but ".50" when width == scale (no
 * integer digit fits): lead_zero says which. */
static int query_put_u128_scaled(tarn_buf *b, query_u128 u, int neg, unsigned scale, int lead_zero)
{
    char tmp[48];
    char *p = tmp + sizeof tmp;
    unsigned n = 0;
    do {
        *--p = (char)('0' + (int)(u % 10));
        u /= 10;
        n++;
    } while (u || n < scale || (lead_zero && n <= scale));
    int rc = TARN_OK;
    if (neg) rc = tarn_buf_append_char(b, '-');
    size_t len = (size_t)(tmp + sizeof tmp - p);
    if (!rc) rc = tarn_buf_append(b, p, len - scale);
    if (!rc && scale) rc = tarn_buf_append_char(b, '.');
    if (!rc && scale) rc = tarn_buf_append(b, p + len - scale, scale);
    return rc;
}

static int query_put_i128_scaled(tarn_buf *b, query_i128 v, unsigned scale, int lead_zero)
{
    if (v < 0) return query_put_u128_scaled(b, (query_u128)0 - (query_u128)v, 1, scale, lead_zero);
    return query_put_u128_scaled(b, (query_u128)v, 0, scale, lead_zero);
}

/* Shortest text that reads back as the same double (or float), laid out the
 * way DuckDB prints it: fixed notation for exponents -4..15 with at least
 * one decimal ("100.0"), otherwise "1e+16" / "1.5e-07". A decimal of at most
 * DBL_DIG (FLT_DIG) digits survives the round trip, so when that precision
 * reads back, stripping its trailing zeros gives the shortest form; only
 * otherwise are 16 and 17 (7..9) digits tried. Subnormals have fewer
 * significant bits, so for them every precision is tried from 1. */
static int query_put_float(tarn_buf *b, double d, int is_float)
{
    char e[40];
    int subnormal = d != 0 && fabs(d) < (is_float ? (double)FLT_MIN : DBL_MIN);
    int lo = subnormal ? 1 : is_float ? 6 : 15, hi = is_float ? 9 : 17;
    for (int p = lo; p <= hi; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, d);
        if (is_float ? strtof(e, NULL) == (float)d : strtod(e, NULL) == d) break;
    }
    /* e is "[-]D.DDDDe[+-]XX": collect the digits and the exponent. */
    const char *s = e;
    int neg = *s == '-';
    if (neg) s++;
    char digits[24];
    size_t nd = 0;
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9' && nd < sizeof digits - 1) digits[nd++] = *s;
    int exp10 = *s == 'e' ? atoi(s + 1) : 0;
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = '\0';

    char out[64];
    size_t o = 0;
    if (neg) out[o++] = '-';
    if (exp10 >= -4 && exp10 < 16) {
        if (exp10 >= 0) {
            for (int i = 0; i <= exp10; i++) out[o++] = (size_t)i < nd ? digits[i] : '0';
            out[o++] = '.';
            if ((size_t)exp10 + 1 < nd) {
                for (size_t i = (size_t)exp10 + 1; i < nd; i++) out[o++] = digits[i];
            } else {
                out[o++] = '0';
            }
        } else {
            out[o++] = '0';
            out[o++] = '.';
            for (int i = -1; i > exp10; i--) out[o++] = '0';
            for (size_t i = 0; i < nd; i++) out[o++] = digits[i];
        }
    } else {
        out[o++] = digits[0];
        if (nd > 1) {
            out[o++] = '.';
            for (size_t i = 1; i < nd; i++) out[o++] = digits[i];
        }
        o += (size_t)snprintf(out + o, sizeof out - o, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
    }
    return tarn_buf_append(b, out, o);
}

static void query_put2(char *p, int v)
{
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
}

/* "HH:MM:SS" plus ".ffffff" without trailing zeros, DuckDB's TIME text. */
static size_t query_fmt_time(char *p, int h, int m, int s, int32_t micros)
{
    query_put2(p, h);
    p[2] = ':';
    query_put2(p + 3, m);
    p[5] = ':';
    query_put2(p + 6, s);
    size_t n = 8;
    if (micros) {
        p[n++] = '.';
        int div = 100000;
        while (micros && div) {
            p[n++] = (char)('0' + micros / div);
            micros %= div;
            div /= 10;
        }
    }
    return n;
}

static size_t query_fmt_date(char *p, int32_t y, int mo, int d)
{
    p[0] = (char)('0' + y / 1000);
    p[1] = (char)('0' + y / 100 % 10);
    p[2] = (char)('0' + y / 10 % 10);
    p[3] = (char)('0' + y % 10);
    p[4] = '-';
    query_put2(p + 5, mo);
    p[7] = '-';
    query_put2(p + 8, d);
    return 10;
}

/* Appends DuckDB's text for a value (its CAST to VARCHAR) and frees it. */
static int query_put_value(tarn_buf *b, duckdb_value v)
{
    if (!v) return TARN_ENOMEM;
    char *s = duckdb_get_varchar(v);
    int rc = s ? tarn_buf_append_str(b, s) : TARN_EINTERNAL;
    duckdb_free(s);
    duckdb_destroy_value(&v);
    return rc;
}

static int query_put_timestamp(tarn_buf *b, int64_t micros, int tz)
{
    if (micros != INT64_MAX && micros != -INT64_MAX) {
        duckdb_timestamp_struct ts = duckdb_from_timestamp((duckdb_timestamp){micros});
        if (ts.date.year >= 1 && ts.date.year <= 9999) {
            char tmp[40];
            size_t n = query_fmt_date(tmp, ts.date.year, ts.date.month, ts.date.day);
            tmp[n++] = ' ';
            n += query_fmt_time(tmp + n, ts.time.hour, ts.time.min, ts.time.sec, ts.time.micros);
            if (tz) {
                memcpy(tmp + n, "+00", 3);
                n += 3;
            }
            return tarn_buf_append(b, tmp, n);
        }
    }
    duckdb_timestamp t = {micros};
    return query_put_value(b, tz ? duckdb_create_timestamp_tz(t) : duckdb_create_timestamp(t));
}

static int query_put_uuid(tarn_buf *b, duckdb_hugeint h)
{
    /* DuckDB stores a UUID as a HUGEINT with the top bit flipped, so that
     * signed order is byte order. */
    uint64_t hi = (uint64_t)h.upper ^ ((uint64_t)1 << 63), lo = h.lower;
    static const char hex[] = "0123456789abcdef";
    char out[36];
    size_t o = 0;
    for (int i = 0; i < 32; i++) {
        if (i == 8 || i == 12 || i == 16 || i == 20) out[o++] = '-';
        uint64_t word = i < 16 ? hi : lo;
        int shift = (15 - (i % 16)) * 4;
        out[o++] = hex[(word >> shift) & 15];
    }
    return tarn_buf_append(b, out, o);
}

/* BIT: a padding-count byte, then the bits, the first `padding` of which
 * are not part of the value. */
static int query_put_bit(tarn_buf *b, const uint8_t *data, uint32_t len)
{
    if (len < 1) return TARN_OK;
    unsigned padding = data[0];
    int rc = TARN_OK;
    for (uint32_t i = 1; i < len && !rc; i++) {
        for (int bit = 7; bit >= 0 && !rc; bit--) {
            size_t pos = (size_t)(i - 1) * 8 + (size_t)(7 - bit);
            if (pos < padding) continue;
            rc = tarn_buf_append_char(b, (data[i] >> bit) & 1 ? '1' : '0');
        }
    }
    return rc;
}

/* Scratch space of one result encoding. Each buffer has one user, so a
 * nested value never overwrites text its parent is still building. */


static const char *query_enum_name(query_col *c, uint64_t idx)
{
    if (idx >= c->enum_size) return "";
    if (!c->enum_names) {
        c->enum_names = calloc(c->enum_size, sizeof *c->enum_names);
        if (!c->enum_names) return NULL;
    }
    if (!c->enum_names[idx]) c->enum_names[idx] = duckdb_enum_dictionary_value(c->lt, idx);
    return c->enum_names[idx];
}

/* The text of a non-NULL scalar value (DuckDB's CAST to VARCHAR text) into
 * b. *is_string tells the JSON writer whether it is a JSON string; numbers
 * and booleans are written as JSON literals. Nested types are not scalars. */
static int query_scalar_text(query_col *c, duckdb_vector v, idx_t row, tarn_buf *b, int *is_string)
{
    void *data = duckdb_vector_get_data(v);
    *is_string = 1;
    switch (c->id) {
    case DUCKDB_TYPE_BOOLEAN:
        *is_string = 0;
        return tarn_buf_append_str(b, ((bool *)data)[row] ? "true" : "false");
    case DUCKDB_TYPE_TINYINT: *is_string = 0; return query_put_i64(b, ((int8_t *)data)[row]);
    case DUCKDB_TYPE_SMALLINT: *is_string = 0; return query_put_i64(b, ((int16_t *)data)[row]);
    case DUCKDB_TYPE_INTEGER: *is_string = 0; return query_put_i64(b, ((int32_t *)data)[row]);
    case DUCKDB_TYPE_BIGINT: *is_string = 0; return query_put_i64(b, ((int64_t *)data)[row]);
    case DUCKDB_TYPE_UTINYINT: *is_string = 0; return query_put_u64(b, ((uint8_t *)data)[row], 0);
    case DUCKDB_TYPE_USMALLINT: *is_string = 0; return query_put_u64(b, ((uint16_t *)data)[row], 0);
    case DUCKDB_TYPE_UINTEGER: *is_string = 0; return query_put_u64(b, ((uint32_t *)data)[row], 0);
    case DUCKDB_TYPE_UBIGINT: *is_string = 0; return query_put_u64(b, ((uint64_t *)data)[row], 0);
    case DUCKDB_TYPE_FLOAT:
    case DUCKDB_TYPE_DOUBLE: {
        double d = c->id == DUCKDB_TYPE_FLOAT ? (double)((float *)data)[row] : ((double *)data)[row];
        if (isnan(d)) return tarn_buf_append_str(b, "NaN");
        if (isinf(d)) return tarn_buf_append_str(b, d > 0 ? "Infinity" : "-Infinity");
        *is_string = 0;
        return query_put_float(b, d, c->id == DUCKDB_TYPE_FLOAT);
    }
    case DUCKDB_TYPE_VARCHAR: {
        duckdb_string_t *s = (duckdb_string_t *)data + row;
        return tarn_buf_append(b, duckdb_string_t_data(s), duckdb_string_t_length(*s));
    }
    case DUCKDB_TYPE_BLOB: {
        duckdb_string_t *s = (duckdb_string_t *)data + row;
        return query_put_value(b, duckdb_create_blob((const uint8_t *)duckdb_string_t_data(s),
                                                     duckdb_string_t_length(*s)));
    }
    case DUCKDB_TYPE_BIT: {
        duckdb_string_t *s = (duckdb_string_t *)data + row;
        return query_put_bit(b, (const uint8_t *)duckdb_string_t_data(s), duckdb_string_t_length(*s));
    }
    case DUCKDB_TYPE_DECIMAL: {
        int lead = c->width > c->scale;
        switch (c->internal) {
        case DUCKDB_TYPE_SMALLINT: return query_put_i128_scaled(b, ((int16_t *)data)[row], c->scale, lead);
        case DUCKDB_TYPE_INTEGER: return query_put_i128_scaled(b, ((int32_t *)data)[row], c->scale, lead);
        case DUCKDB_TYPE_BIGINT: return query_put_i128_scaled(b, ((int64_t *)data)[row], c->scale, lead);
        default: {
            duckdb_hugeint h = ((duckdb_hugeint *)data)[row];
            query_i128 x = (query_i128)(((query_u128)(uint64_t)h.upper << 64) | h.lower);
            return query_put_i128_scaled(b, x, c->scale, lead);
        }
        }
    }
    case DUCKDB_TYPE_HUGEINT: {
        duckdb_hugeint h = ((duckdb_hugeint *)data)[row];
        return query_put_i128_scaled(b, (query_i128)(((query_u128)(uint64_t)h.upper << 64) | h.lower), 0, 1);
    }
    case DUCKDB_TYPE_UHUGEINT: {
        duckdb_uhugeint h = ((duckdb_uhugeint *)data)[row];
        return query_put_u128_scaled(b, ((query_u128)h.upper << 64) | h.lower, 0, 0, 1);
    }
    case DUCKDB_TYPE_DATE: {
        int32_t days = ((duckdb_date *)data)[row].days;
        if (days != INT32_MAX && days != -INT32_MAX) {
            duckdb_date_struct ds = duckdb_from_date((duckdb_date){days});
            if (ds.year >= 1 && ds.year <= 9999) {
                char tmp[16];
                return tarn_buf_append(b, tmp, query_fmt_date(tmp, ds.year, ds.month, ds.day));
            }
        }
        return query_put_value(b, duckdb_create_date((duckdb_date){days}));
    }
    case DUCKDB_TYPE_TIME: {
        duckdb_time_struct ts = duckdb_from_time(((duckdb_time *)data)[row]);
        char tmp[24];
        return tarn_buf_append(b, tmp, query_fmt_time(tmp, ts.hour, ts.min, ts.sec, ts.micros));
    }
    case DUCKDB_TYPE_TIME_NS: return query_put_value(b, duckdb_create_time_ns(((duckdb_time_ns *)data)[row]));
    case DUCKDB_TYPE_TIME_TZ: return query_put_value(b, duckdb_create_time_tz_value(((duckdb_time_tz *)data)[row]));
    case DUCKDB_TYPE_TIMESTAMP: return query_put_timestamp(b, ((int64_t *)data)[row], 0);
    case DUCKDB_TYPE_TIMESTAMP_TZ: return query_put_timestamp(b, ((int64_t *)data)[row], 1);
    case DUCKDB_TYPE_TIMESTAMP_S:
        return query_put_value(b, duckdb_create_timestamp_s(((duckdb_timestamp_s *)data)[row]));
    case DUCKDB_TYPE_TIMESTAMP_MS:
        return query_put_value(b, duckdb_create_timestamp_ms(((duckdb_timestamp_ms *)data)[row]));
    case DUCKDB_TYPE_TIMESTAMP_NS:
        return query_put_value(b, duckdb_create_timestamp_ns(((duckdb_timestamp_ns *)data)[row]));
    case DUCKDB_TYPE_INTERVAL: return query_put_value(b, duckdb_create_interval(((duckdb_interval *)data)[row]));
    case DUCKDB_TYPE_UUID: return query_put_uuid(b, ((duckdb_hugeint *)data)[row]);
    case DUCKDB_TYPE_ENUM: {
        uint64_t idx = c->internal == DUCKDB_TYPE_UTINYINT    ? ((uint8_t *)data)[row]
                       : c->internal == DUCKDB_TYPE_USMALLINT ? ((uint16_t *)data)[row]
                                                              : ((uint32_t *)data)[row];
        const char *name = query_enum_name(c, idx);
        return name ? tarn_buf_append_str(b, name) : TARN_ENOMEM;
    }
    default:
        return TARN_EINTERNAL;
    }
}

static int query_is_nested(const query_col *c)
{
    return c->id == DUCKDB_TYPE_LIST || c->id == DUCKDB_TYPE_ARRAY || c->id == DUCKDB_TYPE_MAP ||
           c->id == DUCKDB_TYPE_STRUCT || c->id == DUCKDB_TYPE_UNION;
}

/* A MAP key as JSON object key text: strings as they are, anything else as
 * its text (numbers) or JSON (nested keys). */
static int query_key_text(query_run *r, query_col *c, duckdb_vector v, idx_t row, tarn_buf *b)
{
    if (!query_valid(v, row)) return tarn_buf_append_str(b, "null");
    if (query_is_nested(c)) return query_json(r, c, v, row, b);
    int is_string;
    return query_scalar_text(c, v, row, b, &is_string);
}

/* The JSON of one value (any type) appended to b. */
int query_json(query_run *r, query_col *c, duckdb_vector v, idx_t row, tarn_buf *b)
{
    if (!query_valid(v, row) || c->id == DUCKDB_TYPE_SQLNULL) return tarn_buf_append_str(b, "null");
    int rc;
    switch (c->id) {
    case DUCKDB_TYPE_VARCHAR: {
        duckdb_string_t *s = (duckdb_string_t *)duckdb_vector_get_data(v) + row;
        return tarn_buf_append_json_str(b, duckdb_string_t_data(s), duckdb_string_t_length(*s));
    }
    case DUCKDB_TYPE_STRUCT: {
        rc = tarn_buf_append_char(b, '{');
        for (size_t i = 0; i < c->nchildren && !rc; i++) {
            const tarn_buf *key = &c->children[i].json_key;
            if (i) rc = tarn_buf_append_char(b, ',');
            if (!rc) rc = tarn_buf_append(b, key->data, key->len);
            if (!rc) rc = query_json(r, &c->children[i], duckdb_struct_vector_get_child(v, i), row, b);
        }
        return rc ? rc : tarn_buf_append_char(b, '}');
    }
    case DUCKDB_TYPE_UNION: {
        /* Physically a struct: child 0 is the tag, member i is child i+1. */
        duckdb_vector tags = duckdb_struct_vector_get_child(v, 0);
        uint8_t tag = ((uint8_t *)duckdb_vector_get_data(tags))[row];
        if (tag >= c->nchildren) return tarn_buf_append_str(b, "null");
        return query_json(r, &c->children[tag], duckdb_struct_vector_get_child(v, (idx_t)tag + 1), row, b);
    }
    case DUCKDB_TYPE_LIST:
    case DUCKDB_TYPE_ARRAY: {
        duckdb_vector child;
        idx_t off, len;
        if (c->id == DUCKDB_TYPE_LIST) {
            duckdb_list_entry ent = ((duckdb_list_entry *)duckdb_vector_get_data(v))[row];
            child = duckdb_list_vector_get_child(v);
            off = ent.offset;
            len = ent.length;
        } else {
            child = duckdb_array_vector_get_child(v);
            off = row * c->array_size;
            len = c->array_size;
        }
        rc = tarn_buf_append_char(b, '[');
        for (idx_t i = 0; i < len && !rc; i++) {
            if (i) rc = tarn_buf_append_char(b, ',');
            if (!rc) rc = query_json(r, &c->children[0], child, off + i, b);
        }
        return rc ? rc : tarn_buf_append_char(b, ']');
    }
    case DUCKDB_TYPE_MAP: {
        duckdb_list_entry ent = ((duckdb_list_entry *)duckdb_vector_get_data(v))[row];
        duckdb_vector entries = duckdb_list_vector_get_child(v);
        duckdb_vector keys = duckdb_struct_vector_get_child(entries, 0);
        duckdb_vector vals = duckdb_struct_vector_get_child(entries, 1);
        tarn_buf key; /* its own buffer: a key may itself hold a MAP */
        tarn_buf_init(&key, 0);
        rc = tarn_buf_append_char(b, '{');
        for (idx_t i = 0; i < ent.length && !rc; i++) {
            if (i) rc = tarn_buf_append_char(b, ',');
            tarn_buf_reset(&key);
            if (!rc) rc = query_key_text(r, &c->children[0], keys, ent.offset + i, &key);
            if (!rc) rc = tarn_buf_append_json_str(b, key.data ? key.data : "", key.len);
            if (!rc) rc = tarn_buf_append_char(b, ':');
            if (!rc) rc = query_json(r, &c->children[1], vals, ent.offset + i, b);
        }
        tarn_buf_free(&key);
        return rc ? rc : tarn_buf_append_char(b, '}');
    }
    default: {
        int is_string;
        size_t mark = b->len;
        rc = query_scalar_text(c, v, row, b, &is_string);
        if (rc || !is_string) return rc;
        /* Re-emit the text as a JSON string (an ENUM label or a BLOB's
         * backslash escapes need JSON escaping). */
        tarn_buf_reset(&r->leaf);
        rc = tarn_buf_append(&r->leaf, b->data + mark, b->len - mark);
        b->len = mark;
        if (!rc) rc = tarn_buf_append_json_str(b, r->leaf.data, r->leaf.len);
        return rc;
    }
    }
}

/* One CSV field: NULL as nothing, anything else in double quotes with
 * quotes doubled; nested values as their JSON text. */
int query_csv_field(query_run *r, query_col *c, duckdb_vector v, idx_t row, tarn_buf *b)
{
    if (!query_valid(v, row) || c->id == DUCKDB_TYPE_SQLNULL) return TARN_OK;
    const char *s;
    size_t n;
    tarn_buf_reset(&r->field);
    int rc = TARN_OK;
    if (c->id == DUCKDB_TYPE_VARCHAR) {
        duckdb_string_t *st = (duckdb_string_t *)duckdb_vector_get_data(v) + row;
        s = duckdb_string_t_data(st);
        n = duckdb_string_t_length(*st);
    } else {
        if (query_is_nested(c)) {
            rc = query_json(r, c, v, row, &r->field);
        } else {
            int is_string;
            rc = query_scalar_text(c, v, row, &r->field, &is_string);
        }
        if (rc) return rc;
        s = r->field.data ? r->field.data : "";
        n = r->field.len;
    }
    if ((rc = tarn_buf_reserve(b, n + 2))) return rc;
    rc = tarn_buf_append_char(b, '"');
    size_t run = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        if (s[i] != '"') continue;
        rc = tarn_buf_append(b, s + run, i + 1 - run); /* up to and including the quote */
        if (!rc) rc = tarn_buf_append_char(b, '"');
        run = i + 1;
    }
    if (!rc) rc = tarn_buf_append(b, s + run, n - run);
    return rc ? rc : tarn_buf_append_char(b, '"');
}
