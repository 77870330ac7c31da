/* stage.c - see stage.h. */
#include "delivery/stage.h"

#include <errno.h>
#include <fcntl.h>
#include <libdeflate.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/util.h"

#define STAGE_GZIP_MEMBER (1u << 20)
#define STAGE_FILE_BUFFER (1u << 20)

typedef struct stage_file {
    int fd;
    tarn_buf out;     /* bytes waiting for write(2): stdio would lock per call */
    tarn_buf pending; /* raw: bytes waiting to become the next gzip member */
} stage_file;

typedef struct stage_ctx {
    enum tarn_stage_kind kind;
    const char *dir;
    tarn_stage_result *res;
    stage_file *files; /* parallel to res->parts */
    struct libdeflate_compressor *gz;
    char *gzout;
    size_t gzout_cap;
    tarn_buf line;
    /* Formatting caches: a batch's records come in appends sharing one time. */
    int64_t ts_cached;
    char ts_text[32];
    int64_t day_cached;
    char date_text[11];
    tarn_errbuf *eb;
} stage_ctx;

/* write(2) all of p, or an error naming the staged file. */
static int stage_write_all(stage_ctx *c, size_t part, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(c->files[part].fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) {
            int e = errno;
            return tarn_errbuf_set(c->eb, tarn_err_from_write_errno(e), "writing %s: %s", c->res->parts[part].path, strerror(e));
        }
        p += w;
        n -= (size_t)w;
    }
    return TARN_OK;
}

static int stage_drain(stage_ctx *c, size_t part)
{
    stage_file *f = &c->files[part];
    int rc = stage_write_all(c, part, f->out.data, f->out.len);
    tarn_buf_reset(&f->out);
    return rc;
}

static int stage_write(stage_ctx *c, size_t part, const void *p, size_t n)
{
    stage_file *f = &c->files[part];
    if (f->out.len + n > STAGE_FILE_BUFFER) {
        int rc = stage_drain(c, part);
        if (rc) return rc;
    }
    /* A record larger than the buffer goes straight through. */
    if (n > STAGE_FILE_BUFFER) return stage_write_all(c, part, p, n);
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
    return stage_write(c, part, c->gzout, z);
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
    if (!memchr(data, '\n', inner) && !memchr(data, '\r', inner)) {
        rc = stage_write(c, part, data, inner); /* the usual case: no copy */
    } else {
        tarn_buf_reset(&c->line);
        rc = stage_one_line(&c->line, data, inner);
        if (!rc) rc = stage_write(c, part, c->line.data, c->line.len);
    }
    if (!rc) rc = stage_write(c, part, tail, n);
    return rc;
}

static int stage_close_files(stage_ctx *c, int ok)
{
    int rc = TARN_OK;
    for (size_t i = 0; i < c->res->nparts; i++) {
        stage_file *f = &c->files[i];
        if (ok && !rc && c->kind == TARN_STAGE_RAW) rc = stage_gzip_flush(c, i);
        if (ok && !rc && f->fd >= 0) rc = stage_drain(c, i);
        if (ok && !rc && f->fd >= 0 && fsync(f->fd) != 0) {
            int e = errno;
            rc = tarn_errbuf_set(c->eb, tarn_err_from_write_errno(e), "fsync %s: %s", c->res->parts[i].path, strerror(e));
        }
        if (f->fd >= 0) close(f->fd);
        tarn_buf_free(&f->out);
        tarn_buf_free(&f->pending);
    }
    free(c->files);
    c->files = NULL;
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
    tarn_buf_init(&c.line, 64u << 20);
    if (kind == TARN_STAGE_RAW && !(c.gz = libdeflate_alloc_compressor(1))) return TARN_ENOMEM;

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
