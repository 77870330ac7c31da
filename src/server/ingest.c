/* ingest.c - POST /v1/tables/{db}/{table}/records (API Gateway + Kinesis
 * PutRecords' job): check the media type, inflate gzip within the limit,
 * validate and split the body, append the records to the table's durable log
 * and answer only once they are on disk. Nothing is stored unless every
 * record is valid. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "common/log.h"
#include "json/json.h"
#include "server/server_int.h"

/* Media types: the part of Content-Type before any parameter. Encodings:
 * gzip, or none. Called with the headers, on the HTTP thread. */
int ingest_headers(struct MHD_Connection *conn, http_request *req, tarn_errbuf *eb)
{
    const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!ct) return tarn_errbuf_set(eb, TARN_EMEDIA, "missing Content-Type: use application/json or application/x-ndjson");
    size_t n = strcspn(ct, ";");
    while (n > 0 && ct[n - 1] == ' ') n--;
    static const struct {
        const char *type;
        enum tarn_body_format fmt;
    } types[] = {{"application/json", TARN_BODY_JSON},
                 {"application/x-ndjson", TARN_BODY_NDJSON},
                 {"application/ndjson", TARN_BODY_NDJSON},
                 {"application/jsonl", TARN_BODY_NDJSON},
                 {"application/x-jsonlines", TARN_BODY_NDJSON}};
    size_t i = 0;
    while (i < sizeof types / sizeof types[0] && !(strlen(types[i].type) == n && !strncasecmp(ct, types[i].type, n)))
        i++;
    if (i == sizeof types / sizeof types[0])
        return tarn_errbuf_set(eb, TARN_EMEDIA,
                               "unsupported Content-Type '%.100s': use application/json or application/x-ndjson", ct);
    req->body_fmt = types[i].fmt;
    const char *enc = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_ENCODING);
    req->gzip = enc && (!strcasecmp(enc, "gzip") || !strcasecmp(enc, "x-gzip"));
    if (enc && !req->gzip && strcasecmp(enc, "identity") != 0)
        return tarn_errbuf_set(eb, TARN_EMEDIA, "unsupported Content-Encoding '%.50s': use gzip or none", enc);
    return TARN_OK;
}

/* Inflates a gzip body (several members allowed) into out, whose maximum is
 * the request limit: a gzip bomb stops at the limit. */
static int ingest_gunzip(const char *in, size_t n, tarn_buf *out, size_t limit, tarn_errbuf *eb)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) return TARN_ENOMEM;
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)n;
    int rc = TARN_OK;
    for (;;) {
        if (tarn_buf_reserve(out, 65536) != TARN_OK) {
            /* Room for less than 64 KiB more: inflate into what is left. */
            if (out->len >= limit) {
                rc = tarn_errbuf_set(eb, TARN_ETOOBIG, "request body exceeds the %zu-byte limit after decompression", limit);
                break;
            }
            if (tarn_buf_reserve(out, limit - out->len)) {
                rc = TARN_ENOMEM;
                break;
            }
        }
        size_t room = out->cap - out->len - 1;
        if (out->len + room > limit) room = limit - out->len;
        if (room == 0) {
            rc = tarn_errbuf_set(eb, TARN_ETOOBIG, "request body exceeds the %zu-byte limit after decompression", limit);
            break;
        }
        zs.next_out = (Bytef *)out->data + out->len;
        zs.avail_out = (uInt)room;
        int z = inflate(&zs, Z_NO_FLUSH);
        out->len += room - zs.avail_out;
        out->data[out->len] = '\0';
        if (z == Z_STREAM_END) {
            if (zs.avail_in == 0) break;
            inflateReset(&zs); /* another gzip member follows */
            continue;
        }
        if (z == Z_OK) continue;
        if (z == Z_BUF_ERROR && zs.avail_in == 0) {
            rc = tarn_errbuf_set(eb, TARN_EINVAL, "corrupt gzip body: unexpected end of data");
            break;
        }
        if (z == Z_BUF_ERROR) continue;
        rc = tarn_errbuf_set(eb, TARN_EINVAL, "corrupt gzip body: %s", zs.msg ? zs.msg : "invalid data");
        break;
    }
    inflateEnd(&zs);
    return rc;
}

/* Bodies up to this size, not compressed, to a table already open, are
 * ingested on the HTTP thread: splitting 64 KiB takes well under a
 * millisecond, and the wait for the disk is the log's, not the thread's. */
#define INGEST_INLINE_MAX ((size_t)64 << 10)

int ingest_inline(tarn_server *s, http_request *req)
{
    if (req->body.len > INGEST_INLINE_MAX || req->gzip) return 0;
    tarn_errbuf eb = {{0}};
    return tarn_delivery_table(s->delivery, req->db, req->table, 0, &req->table_h, &eb) == TARN_OK;
}

/* The log's callback (its syncer thread): the records are durable, or the
 * log failed. */
static void ingest_durable(tarn_stream_waiter *w, int rc, const char *msg)
{
    http_request *req = w->arg;
    req->ingest_rc = rc;
    if (rc) {
        snprintf(req->ingest_msg, sizeof req->ingest_msg, "%s", msg ? msg : "the durable log failed");
        tarn_table_log_failed(req->s->delivery, req->table_h, req->ingest_msg);
    }
    http_resume(req);
}

void api_records_reply(tarn_server *s, http_request *req)
{
    req->logged = 0;
    if (req->ingest_rc) {
        http_reply_error(req, req->ingest_rc, req->ingest_msg);
        return;
    }
    tarn_buf out;
    tarn_buf_init(&out, 256);
    tarn_buf_printf(&out, "{\"records\":%zu,\"first_seq\":%lld,\"last_seq\":%lld}", req->nrecords,
                    (long long)req->first_seq, (long long)req->last_seq);
    http_reply(req, MHD_HTTP_OK, "application/json", &out);
    tarn_buf_free(&out);
}

void api_records(tarn_server *s, http_request *req)
{
    tarn_errbuf eb = {{0}};
    int rc = TARN_OK;
    const char *body = req->body.data ? req->body.data : "";
    size_t len = req->body.len;
    tarn_buf inflated;
    tarn_buf_init(&inflated, s->cfg.max_request + 1);
    tarn_json_span *spans = NULL;
    tarn_record *recs = NULL;
    if (req->gzip) {
        /* The inflated body may reach the request limit: count it. */
        if (!http_reserve(s, req, s->cfg.max_request)) {
            rc = tarn_errbuf_set(&eb, TARN_EUNAVAILABLE,
                                 "the server holds too many request bodies already; retry shortly");
            goto fail;
        }
        if ((rc = ingest_gunzip(body, len, &inflated, s->cfg.max_request, &eb))) goto fail;
        body = inflated.data ? inflated.data : "";
        len = inflated.len;
    } else if (len > s->cfg.max_request) {
        rc = tarn_errbuf_set(&eb, TARN_ETOOBIG, "request body of %zu bytes exceeds the %zu-byte limit", len,
                             s->cfg.max_request);
        goto fail;
    }

    tarn_json_limits lim = {s->cfg.max_record, s->cfg.max_depth, s->cfg.max_records};
    size_t n = 0;
    tarn_json_error jerr;
    memset(&jerr, 0, sizeof jerr);
    rc = tarn_json_split(body, len, (enum tarn_body_format)req->body_fmt, &lim, &spans, &n, &jerr);
    if (rc) {
        char msg[300];
        snprintf(msg, sizeof msg, "record %zu at byte %zu: %s", jerr.index, jerr.offset, jerr.msg);
        http_reply_record_error(req, rc, msg, jerr.index, jerr.offset);
        goto done;
    }

    recs = malloc((n ? n : 1) * sizeof *recs);
    if (!recs) {
        rc = tarn_errbuf_set(&eb, TARN_ENOMEM, "out of memory for %zu records", n);
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        recs[i].data = body + spans[i].offset;
        recs[i].len = spans[i].len;
    }
    if (!req->table_h && (rc = tarn_delivery_table(s->delivery, req->db, req->table, 1, &req->table_h, &eb)))
        goto fail;
    req->nrecords = n;
    req->ingest_rc = TARN_OK;
    req->waiter.done = ingest_durable;
    req->waiter.arg = req;
    req->logged = n > 0;
    /* The body goes with this call, not with req: once the records are
     * written it is no longer needed, and req may be gone by then. */
    tarn_buf held = req->body;
    size_t held_bytes = req->reserved;
    tarn_buf_init(&req->body, 0);
    req->reserved = 0;
    rc = tarn_table_append_async(s->delivery, req->table_h, recs, n, &req->first_seq, &req->last_seq, &req->waiter,
                                 &eb);
    free(recs);
    recs = NULL;
    tarn_buf_free(&held);
    atomic_fetch_sub(&s->inflight, held_bytes);
    if (rc == TARN_OK && n > 0) {
        /* Written: the log's callback resumes the request, which may then
         * be answered and freed at any moment. Do not touch req again. */
        free(spans);
        tarn_buf_free(&inflated);
        return;
    }
    req->logged = 0;
    if (rc) goto fail;
    api_records_reply(s, req); /* an empty batch */
    goto done;
fail:
    http_reply_error(req, rc, eb.msg);
done:
    free(recs);
    free(spans);
    tarn_buf_free(&inflated);
    http_resume(req);
}
