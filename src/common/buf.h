/* buf.h - growable byte buffer with a hard maximum.
 *
 * A tarn_buf owns its data. It grows geometrically up to `max` bytes (0 means
 * TARN_BUF_DEFAULT_MAX) and refuses to grow past it with TARN_ETOOBIG, leaving
 * its contents unchanged, so every buffer fed from the network has a limit.
 * data is always NUL-terminated (the terminator is not counted in len), so a
 * buffer holding text can be used as a C string.
 */
#ifndef TARN_BUF_H
#define TARN_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "err.h"

#define TARN_BUF_DEFAULT_MAX ((size_t)1 << 30)

typedef struct tarn_buf {
    char *data;  /* NULL until the first append */
    size_t len;
    size_t cap;
    size_t max;
} tarn_buf;

/* Sets up an empty buffer with the given hard maximum. Allocates nothing. */
void tarn_buf_init(tarn_buf *b, size_t max);
/* Frees the data; the buffer may be reused after tarn_buf_init. */
void tarn_buf_free(tarn_buf *b);
/* Empties without freeing. */
void tarn_buf_reset(tarn_buf *b);
/* Ensures room for `extra` more bytes (plus the terminator). */
int tarn_buf_reserve(tarn_buf *b, size_t extra);
/* Appends n bytes. Inline: result encoding calls it for every value, and
 * the room is almost always there already (cap never exceeds max + 1, so
 * fitting in cap is within the limit). */
static inline int tarn_buf_append(tarn_buf *b, const void *p, size_t n)
{
    if (n >= b->cap - b->len) { /* cap - len >= 1 once allocated; 0 before */
        int rc = tarn_buf_reserve(b, n);
        if (rc) return rc;
    }
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return TARN_OK;
}
static inline int tarn_buf_append_char(tarn_buf *b, char c) { return tarn_buf_append(b, &c, 1); }
int tarn_buf_append_str(tarn_buf *b, const char *s);
int tarn_buf_printf(tarn_buf *b, const char *fmt, ...) TARN_PRINTF(2, 3);
int tarn_buf_vprintf(tarn_buf *b, const char *fmt, va_list ap);
/* Appends s (n bytes, may hold NULs) as a quoted JSON string, escaping
 * quotes, backslashes and control characters. Bytes >= 0x80 are copied as
 * they are (callers pass UTF-8). On an error b is left as it was. */
int tarn_buf_append_json_str(tarn_buf *b, const char *s, size_t n);
/* Hands the data to the caller (who frees it with free()) and empties b.
 * Returns an empty, allocated string if nothing was appended. */
char *tarn_buf_steal(tarn_buf *b);

#endif
