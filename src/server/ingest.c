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

/* Media types: the part of Content-Type before any parameter. */
static int ingest_media_type(struct MHD_Connection *conn, enum tarn_body_format *fmt, tarn_errbuf *eb)
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
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        if (strlen(types[i].type) == n && strncasecmp(ct, types[i].type, n) == 0) {
            *fmt = types[i].fmt;
            return TARN_OK;
        }
    }
    return tarn_errbuf_set(eb, TARN_EMEDIA, "unsupported Content-Type '%.100s': use application/json or application/x-ndjson",
                           ct);
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

enum MHD_Result api_records(tarn_server *s, struct MHD_Connection *conn, http_request *req, const char *db,
                            const char *table)
{
    tarn_errbuf eb = {{0}};
    enum tarn_body_format fmt = TARN_BODY_JSON;
    int rc = ingest_media_type(conn, &fmt, &eb);
    if (rc) return http_reply_error(conn, rc, eb.msg);

    const char *body = req->body.data ? req->body.data : "";
    size_t len = req->body.len;
    tarn_buf inflated;
    tarn_buf_init(&inflated, s->cfg.max_request + 1);
    const char *enc = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_ENCODING);
    if (enc && (!strcasecmp(enc, "gzip") || !strcasecmp(enc, "x-gzip"))) {
        /* The inflated body may reach the request limit: count it. */
        if (!http_reserve(s, req, s->cfg.max_request)) {
            tarn_buf_free(&inflated);
            return http_reply_error(conn, TARN_EUNAVAILABLE,
                                    "the server holds too many request bodies already; retry shortly");
        }
        if ((rc = ingest_gunzip(body, len, &inflated, s->cfg.max_request, &eb))) goto fail;
        body = inflated.data ? inflated.data : "";
        len = inflated.len;
    } else if (enc && strcasecmp(enc, "identity") != 0) {
        rc = tarn_errbuf_set(&eb, TARN_EMEDIA, "unsupported Content-Encoding '%.50s': use gzip or none", enc);
        goto fail;
    } else if (len > s->cfg.max_request) {
        rc = tarn_errbuf_set(&eb, TARN_ETOOBIG, "request body of %zu bytes exceeds the %zu-byte limit", len,
                             s->cfg.max_request);
        goto fail;
    }

    tarn_json_limits lim = {s->cfg.max_record, s->cfg.max_depth, s->cfg.max_records};
    tarn_json_span *spans = NULL;
    size_t n = 0;
    tarn_json_error jerr;
    memset(&jerr, 0, sizeof jerr);
    rc = tarn_json_split(body, len, fmt, &lim, &spans, &n, &jerr);
    if (rc) {
        char msg[300];
        snprintf(msg, sizeof msg, "record %zu at byte %zu: %s", jerr.index, jerr.offset, jerr.msg);
        tarn_buf_free(&inflated);
        return http_reply_record_error(conn, rc, msg, jerr.index, jerr.offset);
    }

    tarn_record *recs = malloc(n * sizeof *recs);
    tarn_table *t = NULL;
    int64_t first = 0, last = 0;
    if (!recs) rc = TARN_ENOMEM;
    for (size_t i = 0; recs && i < n; i++) {
        recs[i].data = body + spans[i].offset;
        recs[i].len = spans[i].len;
    }
    if (!rc) rc = tarn_delivery_table(s->delivery, db, table, 1, &t, &eb);
    if (!rc) rc = tarn_table_append(s->delivery, t, recs, n, &first, &last, &eb);
    free(recs);
    free(spans);
    if (rc) goto fail;
    tarn_buf_free(&inflated);

    tarn_buf out;
    tarn_buf_init(&out, 256);
    tarn_buf_printf(&out, "{\"records\":%zu,\"first_seq\":%lld,\"last_seq\":%lld}", n, (long long)first, (long long)last);
    enum MHD_Result r = http_reply(conn, MHD_HTTP_OK, "application/json", &out);
    tarn_buf_free(&out);
    return r;
fail:
    tarn_buf_free(&inflated);
    return http_reply_error(conn, rc, eb.msg);
}
