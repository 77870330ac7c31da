/* buf.c - see buf.h. */
#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tarn_buf_init(tarn_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max ? max : TARN_BUF_DEFAULT_MAX;
}

void tarn_buf_free(tarn_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void tarn_buf_reset(tarn_buf *b)
{
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

int tarn_buf_reserve(tarn_buf *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra) return TARN_ETOOBIG;
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return TARN_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > b->max + 1) cap = b->max + 1;
    char *p = realloc(b->data, cap);
    if (!p) return TARN_ENOMEM;
    b->data = p;
    b->cap = cap;
    return TARN_OK;
}

int tarn_buf_append_str(tarn_buf *b, const char *s) { return tarn_buf_append(b, s, strlen(s)); }

int tarn_buf_vprintf(tarn_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) return TARN_EINVAL;
    int rc = tarn_buf_reserve(b, (size_t)n);
    if (rc) return rc;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return TARN_OK;
}

int tarn_buf_printf(tarn_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = tarn_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

/* 1 for the bytes a JSON string must escape: control characters, '"' and
 * '\\'. */
static const unsigned char json_escaped[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    ['"'] = 1, ['\\'] = 1,
};

int tarn_buf_append_json_str(tarn_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    /* Room for the text unescaped and its quotes: the common case needs no
     * more, and each escape reserves what it adds. */
    size_t start = b->len;
    int rc = tarn_buf_reserve(b, n + 2);
    if (rc) return rc;
    char *out = b->data + b->len;
    *out++ = '"';
    size_t run = 0; /* start of the pending run of bytes needing no escape */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!json_escaped[c]) continue;
        if (i > run) memcpy(out, s + run, i - run);
        out += i - run;
        char esc[6] = {'\\', 0};
        size_t elen = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            esc[1] = 'u'; esc[2] = '0'; esc[3] = '0';
            esc[4] = hex[c >> 4]; esc[5] = hex[c & 15];
            elen = 6;
        }
        /* Room for the escape, the rest of the text and the closing quote. */
        b->len = (size_t)(out - b->data);
        if ((rc = tarn_buf_reserve(b, elen + (n - i - 1) + 1))) {
            b->len = start; /* as it was */
            b->data[start] = '\0';
            return rc;
        }
        out = b->data + b->len;
        memcpy(out, esc, elen);
        out += elen;
        run = i + 1;
    }
    if (n > run) memcpy(out, s + run, n - run);
    out += n - run;
    *out++ = '"';
    *out = '\0';
    b->len = (size_t)(out - b->data);
    return TARN_OK;
}

char *tarn_buf_steal(tarn_buf *b)
{
    char *p = b->data;
    if (!p) p = calloc(1, 1);
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
