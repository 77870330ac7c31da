/* server_int.h - what the server's files share. */
#ifndef TARN_SERVER_INT_H
#define TARN_SERVER_INT_H

#include <microhttpd.h>
#include <stdatomic.h>
#include <stdint.h>

#include "catalog/catalog.h"
#include "common/buf.h"
#include "config/config.h"
#include "delivery/delivery.h"
#include "query/query.h"

#define TARN_VERSION "0.1.0"

typedef struct tarn_server {
    tarn_config cfg;
    char data_dir[4096];
    unsigned char token_hash[32]; /* SHA-256 of the admin token */
    tarn_catalog *cat;
    tarn_query_engine *qe;
    tarn_delivery *delivery;
    struct MHD_Daemon *mhd;
    int64_t started_ms;
    atomic_size_t inflight; /* bytes of request bodies held now (limit: cfg.max_inflight) */
} tarn_server;

/* Per-request state, from the first call of the access handler to the
 * completion callback. The body buffer has a hard maximum. */
typedef struct http_request {
    tarn_buf body;
    size_t reserved;     /* bytes counted in tarn_server.inflight for this body */
    int reject_code;     /* a tarn error code decided before the body ended */
    char reject_msg[256];
} http_request;

/* The libmicrohttpd access handler and completion callback (http.c). */
enum MHD_Result tarn_http_handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls);
void tarn_http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe);

/* libmicrohttpd's unescape callback (http.c): leaves the URL as sent. */
size_t tarn_http_unescape(void *cls, struct MHD_Connection *conn, char *uri);

/* Replies (http.c). The error body is {"error":{"code","message"[,"index","offset"]}}. */
typedef struct http_header {
    const char *name, *value;
} http_header;
/* body with Content-Type, Cache-Control: no-store and nextra more headers.
 * The reply takes body's data (no copy of a large result); body is left
 * empty, and freeing it stays the caller's. */
enum MHD_Result http_reply_headers(struct MHD_Connection *conn, unsigned status, const char *content_type,
                                   tarn_buf *body, const http_header *extra, size_t nextra);
enum MHD_Result http_reply(struct MHD_Connection *conn, unsigned status, const char *content_type, tarn_buf *body);
/* The JSON error body for code (status from the code; TARN_EUNAVAILABLE, a
 * 503, also carries Retry-After: 1). */
enum MHD_Result http_reply_error(struct MHD_Connection *conn, int code, const char *msg);
/* The same with an explicit status instead of the code's own. */
enum MHD_Result http_reply_error_status(struct MHD_Connection *conn, unsigned status, int code, const char *msg);
enum MHD_Result http_reply_record_error(struct MHD_Connection *conn, int code, const char *msg, size_t index,
                                        size_t offset);

/* Counts n more bytes of this request against cfg.max_inflight (released
 * when the request completes); 0 when that is over the budget. */
int http_reserve(tarn_server *s, http_request *req, size_t n);

/* Handlers (ingest.c, api.c). The body is complete and the token checked. */
enum MHD_Result api_records(tarn_server *s, struct MHD_Connection *conn, http_request *req, const char *db,
                            const char *table);
enum MHD_Result api_flush(tarn_server *s, struct MHD_Connection *conn, const char *db, const char *table);
enum MHD_Result api_query(tarn_server *s, struct MHD_Connection *conn, http_request *req);
enum MHD_Result api_databases(tarn_server *s, struct MHD_Connection *conn);
enum MHD_Result api_tables(tarn_server *s, struct MHD_Connection *conn);
enum MHD_Result api_table(tarn_server *s, struct MHD_Connection *conn, const char *db, const char *table);
enum MHD_Result api_status(tarn_server *s, struct MHD_Connection *conn);

#endif
