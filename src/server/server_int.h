/* server_int.h - what the server's files share. */
#ifndef TARN_SERVER_INT_H
#define TARN_SERVER_INT_H

#include <microhttpd.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "catalog/catalog.h"
#include "common/buf.h"
#include "config/config.h"
#include "delivery/delivery.h"
#include "query/query.h"

#define TARN_VERSION "0.1.0"

typedef struct http_request http_request;

/* The workers that run every request the HTTP threads must not (pool.c):
 * queries, flushes, catalog reads, large or compressed bodies, a table's
 * first write. Threads start on demand, up to max_threads, and an idle one
 * ends after a while (the first stays). */
typedef struct server_pool {
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* a job was queued, or stopping */
    pthread_cond_t gone_cv; /* a thread ended */
    http_request *head, *tail;
    int nthreads, nidle, nqueued, max_threads, stopping;
    struct tarn_server *s;
} server_pool;

typedef struct tarn_server {
    tarn_config cfg;
    char data_dir[4096];
    unsigned char token_hash[32]; /* SHA-256 of the admin token */
    EVP_MD *sha256;               /* fetched once: a fetch per request costs more than the hash */
    tarn_catalog *cat;
    tarn_query_engine *qe;
    tarn_delivery *delivery;
    struct MHD_Daemon *mhd;
    int64_t started_ms;
    atomic_size_t inflight; /* bytes of request bodies held now (limit: cfg.max_inflight) */
    server_pool pool;
    /* Requests between their suspension and resumption (pool or log), and
     * requests from their suspension until their reply is sent (or the
     * client is gone); a stop waits for both (server.c). */
    atomic_int suspended, running;
    atomic_int stopping; /* new requests get 503 */
} tarn_server;

enum http_state {
    REQ_HEADERS, /* reading the body */
    REQ_RUNNING, /* suspended: a worker or the log has it */
    REQ_DONE,    /* resumed: the reply (or the ingest outcome) is ready */
    REQ_SENT,    /* the reply is queued */
};

/* Per-request state, from the first call of the access handler to the
 * completion callback. The body buffer has a hard maximum. */
struct http_request {
    tarn_buf body;
    size_t reserved;     /* bytes counted in tarn_server.inflight for this body */
    int reject_code;     /* a tarn error code decided before the body ended */
    char reject_msg[256];
    enum http_state state;
    int counted;         /* in tarn_server.running */
    int route;           /* enum route_id (http.c) */
    char db[256], table[256];
    /* What the handlers need of the headers and query string, read on the
     * HTTP thread with the headers: a suspended connection is not touched
     * from other threads (http_precheck). */
    int body_fmt;        /* enum tarn_body_format (ingest) */
    int gzip;            /* Content-Encoding: gzip (ingest) */
    int csv;             /* Accept asks for text/csv (query) */
    int flush_zones;     /* ?wait= as TARN_FLUSH_* (flush) */
    int has_db_arg;      /* ?database= was given (GET /v1/tables) */
    char db_arg[256];
    struct MHD_Connection *conn;
    tarn_server *s;
    /* The reply, made by whichever thread ran the request and queued by
     * the HTTP thread when the connection resumes. */
    struct MHD_Response *resp;
    unsigned status;
    /* An ingest waiting for its records to be durable (ingest.c). */
    int logged; /* appended: the log's callback resumes it */
    tarn_stream_waiter waiter;
    tarn_table *table_h;
    size_t nrecords;
    int64_t first_seq, last_seq;
    int ingest_rc;
    char ingest_msg[256];
    http_request *next;  /* the pool's queue */
};

/* The libmicrohttpd access handler and completion callback (http.c). */
enum MHD_Result tarn_http_handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls);
void tarn_http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe);

/* libmicrohttpd's unescape callback (http.c): leaves the URL as sent. */
size_t tarn_http_unescape(void *cls, struct MHD_Connection *conn, char *uri);

/* Replies (http.c): each makes the request's reply (req->resp, replacing
 * any earlier one), which the HTTP thread queues. The error body is
 * {"error":{"code","message"[,"index","offset"]}}. */
typedef struct http_header {
    const char *name, *value;
} http_header;
/* body with Content-Type, Cache-Control: no-store and nextra more headers.
 * The reply takes body's data (no copy of a large result); body is left
 * empty, and freeing it stays the caller's. */
void http_reply_headers(http_request *req, unsigned status, const char *content_type, tarn_buf *body,
                        const http_header *extra, size_t nextra);
void http_reply(http_request *req, unsigned status, const char *content_type, tarn_buf *body);
/* The JSON error body for code (status from the code; TARN_EUNAVAILABLE, a
 * 503, also carries Retry-After: 1). */
void http_reply_error(http_request *req, int code, const char *msg);
/* The same with an explicit status instead of the code's own. */
void http_reply_error_status(http_request *req, unsigned status, int code, const char *msg);
void http_reply_record_error(http_request *req, int code, const char *msg, size_t index, size_t offset);

/* Runs a request that was suspended (on a worker, or on the HTTP thread for
 * a small ingest): makes its reply, or leaves it to the log's callback. */
void http_run(tarn_server *s, http_request *req);
/* Hands a suspended request back to its HTTP thread, reply made. Any
 * thread. */
void http_resume(http_request *req);

/* The worker pool (pool.c). */
int pool_start(server_pool *p, tarn_server *s, int max_threads, tarn_errbuf *eb);
/* Queues a suspended request; TARN_EUNAVAILABLE if no thread can run it. */
int pool_submit(server_pool *p, http_request *req);
/* Runs every queued job, then ends every thread. */
void pool_stop(server_pool *p);

/* Counts n more bytes of this request against cfg.max_inflight (released
 * when the request completes); 0 when that is over the budget. */
int http_reserve(tarn_server *s, http_request *req, size_t n);

/* Handlers (ingest.c, api.c). The body is complete and the token checked;
 * each makes req's reply. They run on a worker, except api_records for a
 * small body to a table already open, which runs on the HTTP thread
 * (ingest_inline says which). The connection is suspended: handlers only
 * read its headers and arguments. */
int ingest_inline(tarn_server *s, http_request *req);
/* The request's Content-Type and Content-Encoding, for an ingest: sets
 * req->body_fmt and req->gzip, or returns TARN_EMEDIA with a message. */
int ingest_headers(struct MHD_Connection *conn, http_request *req, tarn_errbuf *eb);
/* Makes the reply at once (an error), or appends and returns with the reply
 * left to the log's callback, which resumes the request. */
void api_records(tarn_server *s, http_request *req);
/* The reply to an ingest whose records are durable, or whose log failed. */
void api_records_reply(tarn_server *s, http_request *req);
void api_flush(tarn_server *s, http_request *req);
void api_query(tarn_server *s, http_request *req);
void api_databases(tarn_server *s, http_request *req);
void api_tables(tarn_server *s, http_request *req);
void api_table(tarn_server *s, http_request *req);
void api_status(tarn_server *s, http_request *req);

#endif
