/* partition.c - see partition.h. */
#include "partition.h"

#include <openssl/sha.h>
#include <string.h>

#include "common/util.h"

static int partition_plain(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
           c == '~' || c == '-';
}

int tarn_partition_encode(tarn_buf *out, const char *value, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    if (!value) return tarn_buf_append_str(out, "__NULL__");
    if (n == 0) return tarn_buf_append_str(out, "__EMPTY__");
    if ((n == 1 && value[0] == '.') || (n == 2 && value[0] == '.' && value[1] == '.'))
        return tarn_buf_append_str(out, n == 1 ? "%2E" : "%2E%2E");

    size_t start = out->len;
    int rc = TARN_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        unsigned char c = (unsigned char)value[i];
        if (partition_plain(c)) {
            rc = tarn_buf_append_char(out, (char)c);
        } else {
            char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
            rc = tarn_buf_append(out, esc, 3);
        }
    }
    if (rc || out->len - start <= TARN_PARTITION_MAX) return rc;

    /* Too long: keep a prefix that does not split an escape, then a digest. */
    size_t keep = TARN_PARTITION_MAX - 17;
    while (keep > 0 && (out->data[start + keep - 1] == '%' || (keep > 1 && out->data[start + keep - 2] == '%')))
        keep--;
    out->len = start + keep;
    out->data[out->len] = '\0';
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)value, n, digest);
    char hexd[17];
    tarn_hex(digest, 8, hexd);
    if ((rc = tarn_buf_append_char(out, '~'))) return rc;
    return tarn_buf_append(out, hexd, 16);
}

int tarn_partition_segment(tarn_buf *out, const char *key, const char *value, size_t n)
{
    int rc = tarn_buf_append_str(out, key);
    if (!rc) rc = tarn_buf_append_char(out, '=');
    if (!rc) rc = tarn_partition_encode(out, value, n);
    return rc;
}

int tarn_partition_decode(tarn_buf *out, const char *enc, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = enc[i];
        if (c == '%') {
            if (i + 2 >= n) return -1;
            int hi = tarn_hex_digit(enc[i + 1]), lo = tarn_hex_digit(enc[i + 2]);
            if (hi < 0 || lo < 0) return -1;
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        if (tarn_buf_append_char(out, c)) return -1;
    }
    return 0;
}
