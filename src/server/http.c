/* http.c - request plumbing: body collection with limits, token check,
 * routing and replies. Handlers live in ingest.c and api.c.
 *
 * libmicrohttpd calls the access handler several times per request: first
 * with the headers, then once per piece of body, then with no data. A request
 * rejected early (bad token, unknown route, too large, bad Content-Type) still
 * has its body read and dropped, so the client always gets the reply instead
 * of a reset connection, but nothing of it is kept.
 *
 * The handler runs on one of a few HTTP threads, each serving many
 * connections from an epoll loop, so it never waits. With the body complete
 * it answers a rejected request and GET /health at once; any other request
 * is suspended (REQ_RUNNING) and run elsewhere: a small ingest to a table
 * already open right here up to its append (ingest.c), whose reply waits
 * for the log's syncer thread to call back once the records are durable;
 * everything else on a worker (pool.c). Whoever finishes makes the reply
 * and resumes the connection (http_resume, REQ_DONE); libmicrohttpd then
 * calls the handler once more, on the HTTP thread, which queues the reply.
 * Whatever a handler needs of the headers and the query string is read into
 * the request with the headers (http_request_args), so no other thread ever
 * looks into a suspended connection, and a bad Content-Type, encoding or
 * parameter is refused before the body is kept.
 * A request is never freed while suspended: the completion callback comes
 * only after the resumption, and the server resumes everything before it
 * stops libmicrohttpd (server.c).
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "common/util.h"
#include "server/server_int.h"

#define LOG "http"

void http_reply_headers(http_request *req, unsigned status, const char *content_type, tarn_buf *body,
                        const http_header *extra, size_t nextra)
{
    if (req->resp) MHD_destroy_response(req->resp);
    req->resp = NULL;
    size_t len = body->len;
    char *data = tarn_buf_steal(body); /* malloc'd: libmicrohttpd free()s it */
    if (!data) return;                 /* no reply: the connection is closed */
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(data);
        return;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    for (size_t i = 0; i < nextra; i++) MHD_add_response_header(resp, extra[i].name, extra[i].value);
    req->resp = resp;
    req->status = status;
}

void http_reply(http_request *req, unsigned status, const char *content_type, tarn_buf *body)
{
    http_reply_headers(req, status, content_type, body, NULL, 0);
}

static void http_error_body(http_request *req, unsigned status, int code, const char *msg, int with_pos,
                            size_t index, size_t offset)
{
    tarn_buf b;
    tarn_buf_init(&b, 1 << 16);
    if (!msg || !msg[0]) msg = tarn_err_message(code);
    tarn_buf_append_str(&b, "{\"error\":{\"code\":");
    const char *name = tarn_err_name(code);
    tarn_buf_append_json_str(&b, name, strlen(name));
    tarn_buf_append_str(&b, ",\"message\":");
    tarn_buf_append_json_str(&b, msg, strlen(msg));
    if (with_pos) tarn_buf_printf(&b, ",\"index\":%zu,\"offset\":%zu", index, offset);
    tarn_buf_append_str(&b, "}}");
    if (!status) status = (unsigned)tarn_err_http_status(code);
    if (status >= 500) tarn_log_error(LOG, "%u %s: %s", status, name, msg);
    /* Unavailable (the server is full, a table is behind, or the server is
     * stopping): the request was fine; say when to come back. */
    static const http_header retry = {MHD_HTTP_HEADER_RETRY_AFTER, "1"};
    int unavailable = code == TARN_EUNAVAILABLE;
    http_reply_headers(req, status, "application/json", &b, unavailable ? &retry : NULL, unavailable ? 1 : 0);
    tarn_buf_free(&b);
}

void http_reply_error(http_request *req, int code, const char *msg) { http_error_body(req, 0, code, msg, 0, 0, 0); }

void http_reply_error_status(http_request *req, unsigned status, int code, const char *msg)
{
    http_error_body(req, status, code, msg, 0, 0, 0);
}

void http_reply_record_error(http_request *req, int code, const char *msg, size_t index, size_t offset)
{
    http_error_body(req, 0, code, msg, 1, index, offset);
}

static int http_token_ok(tarn_server *s, struct MHD_Connection *conn)
{
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!auth || strncasecmp(auth, "Bearer ", 7) != 0) return 0;
    const char *tok = auth + 7;
    while (*tok == ' ') tok++;
    unsigned char h[EVP_MAX_MD_SIZE];
    unsigned hlen = 0;
    if (!EVP_Digest(tok, strlen(tok), h, &hlen, s->sha256, NULL) || hlen != sizeof s->token_hash) return 0;
    return tarn_ct_equal(h, s->token_hash, sizeof s->token_hash);
}

/* Splits "/v1/tables/db/t/records" into at most max segments (in place in
 * buf). Empty segments are kept, so "//" never matches a route. Returns the
 * number of segments, or -1 if there are more. */
static int http_split_path(const char *url, char *buf, size_t bufsz, char **seg, int max)
{
    size_t n = strlen(url);
    if (n >= bufsz || url[0] != '/') return -1;
    memcpy(buf, url + 1, n);
    int count = 0;
    char *p = buf;
    for (;;) {
        if (count == max) return -1;
        seg[count++] = p;
        char *slash = strchr(p, '/');
        if (!slash) break;
        *slash = '\0';
        p = slash + 1;
    }
    if (count == 1 && seg[0][0] == '\0') return 0;
    return count;
}

/* libmicrohttpd would decode %XX in the path before routing, turning
 * "/v1/tables/a%2Fb/records" into another table's path. Tarn's names need no
 * escaping, so the path is left as sent: a name with '%' is simply invalid. */
size_t tarn_http_unescape(void *cls, struct MHD_Connection *conn, char *uri)
{
    return strlen(uri);
}

enum route_id {
    ROUTE_NONE,
    ROUTE_HEALTH,
    ROUTE_DATABASES,
    ROUTE_TABLES,
    ROUTE_TABLE,
    ROUTE_RECORDS,
    ROUTE_FLUSH,
    ROUTE_QUERY,
    ROUTE_STATUS,
};

typedef struct route {
    enum route_id id;
    const char *method; /* the method it accepts */
    char db[256];
    char table[256];
} route;

/* Maps method + path to a route. Returns 0, or TARN_ENOTFOUND / TARN_EMETHOD
 * / TARN_EINVAL (bad database or table name) with a message in eb. */
static int http_route(const char *url, const char *method, route *r, tarn_errbuf *eb)
{
    char buf[1024];
    char *seg[8];
    int n = http_split_path(url, buf, sizeof buf, seg, 8);
    memset(r, 0, sizeof *r);
    if (n == 1 && !strcmp(seg[0], "health")) r->id = ROUTE_HEALTH, r->method = "GET";
    else if (n == 2 && !strcmp(seg[0], "v1") && !strcmp(seg[1], "databases")) r->id = ROUTE_DATABASES, r->method = "GET";
    else if (n == 2 && !strcmp(seg[0], "v1") && !strcmp(seg[1], "tables")) r->id = ROUTE_TABLES, r->method = "GET";
    else if (n == 2 && !strcmp(seg[0], "v1") && !strcmp(seg[1], "query")) r->id = ROUTE_QUERY, r->method = "POST";
    else if (n == 2 && !strcmp(seg[0], "v1") && !strcmp(seg[1], "status")) r->id = ROUTE_STATUS, r->method = "GET";
    else if (n >= 4 && n <= 5 && !strcmp(seg[0], "v1") && !strcmp(seg[1], "tables")) {
        if (n == 4) r->id = ROUTE_TABLE, r->method = "GET";
        else if (!strcmp(seg[4], "records")) r->id = ROUTE_RECORDS, r->method = "POST";
        else if (!strcmp(seg[4], "flush")) r->id = ROUTE_FLUSH, r->method = "POST";
        if (r->id != ROUTE_NONE) {
            if (!tarn_name_valid(seg[2]))
                return tarn_errbuf_set(eb, TARN_EINVAL,
                                       "invalid database name '%.128s': use 1 to 128 letters, digits or underscores",
                                       seg[2]);
            if (r->id == ROUTE_RECORDS && tarn_db_name_reserved(seg[2]))
                return tarn_errbuf_set(eb, TARN_EINVAL, "database name '%s' is reserved", seg[2]);
            if (!tarn_name_valid(seg[3]))
                return tarn_errbuf_set(eb, TARN_EINVAL,
                                       "invalid table name '%.128s': use 1 to 128 letters, digits or underscores",
                                       seg[3]);
            snprintf(r->db, sizeof r->db, "%s", seg[2]);
            snprintf(r->table, sizeof r->table, "%s", seg[3]);
        }
    }
    if (r->id == ROUTE_NONE) return tarn_errbuf_set(eb, TARN_ENOTFOUND, "no such endpoint: %.200s", url);
    if (strcmp(method, r->method) != 0)
        return tarn_errbuf_set(eb, TARN_EMETHOD, "%s %s: use %s", method, url, r->method);
    return TARN_OK;
}

static int http_has_body(enum route_id id) { return id == ROUTE_RECORDS || id == ROUTE_QUERY; }

/* Reads what the handlers need of the query string and the headers into
 * req, and refuses what they would refuse from these alone. */
static int http_request_args(struct MHD_Connection *conn, http_request *req, tarn_errbuf *eb)
{
    switch ((enum route_id)req->route) {
    case ROUTE_RECORDS: return ingest_headers(conn, req, eb);
    case ROUTE_QUERY: {
        const char *accept = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
        req->csv = accept && strcasestr(accept, "text/csv") != NULL;
        return TARN_OK;
    }
    case ROUTE_FLUSH: {
        /* ?wait=processed returns once the records are queryable; the
         * default (wait=all) once the raw zone has them too. */
        const char *wait = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "wait");
        req->flush_zones = wait && !strcmp(wait, "processed") ? TARN_FLUSH_PROCESSED : TARN_FLUSH_ALL;
        if (wait && strcmp(wait, "processed") != 0 && strcmp(wait, "all") != 0)
            return tarn_errbuf_set(eb, TARN_EINVAL, "query parameter wait: expected \"all\" or \"processed\"");
        return TARN_OK;
    }
    case ROUTE_TABLES: {
        const char *db = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "database");
        if (!db) return TARN_OK;
        if (!tarn_name_valid(db)) return tarn_errbuf_set(eb, TARN_EINVAL, "invalid database name");
        req->has_db_arg = 1;
        snprintf(req->db_arg, sizeof req->db_arg, "%s", db);
        return TARN_OK;
    }
    default: return TARN_OK;
    }
}

/* Decides, from the headers alone, whether the request is refused. */
static int http_precheck(tarn_server *s, struct MHD_Connection *conn, const char *url, const char *method, route *r,
                         http_request *req, tarn_errbuf *eb)
{
    int rc = http_route(url, method, r, eb);
    if (r->id != ROUTE_HEALTH && !http_token_ok(s, conn))
        return tarn_errbuf_set(eb, TARN_EAUTH, "missing or invalid token: send 'Authorization: Bearer <token>'");
    if (rc) return rc;
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl && http_has_body(r->id)) {
        unsigned long long len = strtoull(cl, NULL, 10);
        if (len > s->cfg.max_request)
            return tarn_errbuf_set(eb, TARN_ETOOBIG, "request body of %llu bytes exceeds the %zu-byte limit", len,
                                   s->cfg.max_request);
    }
    req->route = r->id;
    return http_request_args(conn, req, eb);
}

static void http_release(tarn_server *s, http_request *req)
{
    atomic_fetch_sub(&s->inflight, req->reserved);
    req->reserved = 0;
}

void http_run(tarn_server *s, http_request *req)
{
    switch ((enum route_id)req->route) {
    case ROUTE_RECORDS:
        api_records(s, req);
        return; /* api_records resumes, or the log does */
    case ROUTE_DATABASES: api_databases(s, req); break;
    case ROUTE_TABLES: api_tables(s, req); break;
    case ROUTE_TABLE: api_table(s, req); break;
    case ROUTE_FLUSH: api_flush(s, req); break;
    case ROUTE_QUERY: api_query(s, req); break;
    case ROUTE_STATUS: api_status(s, req); break;
    case ROUTE_HEALTH:
    case ROUTE_NONE: http_reply_error(req, TARN_ENOTFOUND, "no such endpoint"); break;
    }
    http_resume(req);
}

void http_resume(http_request *req)
{
    tarn_server *s = req->s;
    struct MHD_Connection *conn = req->conn;
    /* The body is done with: give its memory back now, not once the reply
     * has gone out. */
    http_release(s, req);
    tarn_buf_free(&req->body);
    req->state = REQ_DONE;
    /* From here the HTTP thread may send the reply and free req. */
    MHD_resume_connection(conn);
    atomic_fetch_sub(&s->suspended, 1);
}

/* Queues the reply made for req; without one (out of memory) the
 * connection is closed. */
static enum MHD_Result http_send(http_request *req)
{
    if (!req->resp) return MHD_NO;
    enum MHD_Result r = MHD_queue_response(req->conn, req->status, req->resp);
    MHD_destroy_response(req->resp);
    req->resp = NULL;
    req->state = REQ_SENT;
    return r;
}

static enum MHD_Result http_reply_now(http_request *req, int code, const char *msg)
{
    http_reply_error(req, code, msg);
    return http_send(req);
}

/* Counts n more body bytes against the server-wide budget, so that many
 * large requests at once cannot exhaust memory. Returns 0 when over it. */
int http_reserve(tarn_server *s, http_request *req, size_t n)
{
    size_t before = atomic_fetch_add(&s->inflight, n);
    req->reserved += n;
    return before + n <= s->cfg.max_inflight;
}


enum MHD_Result tarn_http_handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    tarn_server *s = cls;
    http_request *req = *con_cls;
    if (!req) {
        req = calloc(1, sizeof *req);
        if (!req) return MHD_NO;
        /* The compressed body may be a little larger than the limit that
         * applies after decompression; the decompressed size is checked too. */
        tarn_buf_init(&req->body, s->cfg.max_request + s->cfg.max_request / 8 + 4096);
        req->conn = conn;
        req->s = s;
        *con_cls = req;
        route r;
        tarn_errbuf eb = {{0}};
        req->reject_code = http_precheck(s, conn, url, method, &r, req, &eb);
        if (req->reject_code) snprintf(req->reject_msg, sizeof req->reject_msg, "%s", eb.msg);
        req->route = r.id;
        memcpy(req->db, r.db, sizeof req->db);
        memcpy(req->table, r.table, sizeof req->table);
        return MHD_YES;
    }
    if (req->state == REQ_DONE) {
        if (req->logged) api_records_reply(s, req);
        return http_send(req);
    }
    if (req->state != REQ_HEADERS) return MHD_YES; /* not expected: a suspended request is not called */
    if (*upload_data_size) {
        if (!req->reject_code && !http_reserve(s, req, *upload_data_size)) {
            req->reject_code = TARN_EUNAVAILABLE;
            snprintf(req->reject_msg, sizeof req->reject_msg,
                     "the server holds %zu bytes of request bodies already; retry shortly", s->cfg.max_inflight);
            http_release(s, req);
            tarn_buf_free(&req->body);
        }
        if (!req->reject_code && tarn_buf_append(&req->body, upload_data, *upload_data_size)) {
            req->reject_code = TARN_ETOOBIG;
            snprintf(req->reject_msg, sizeof req->reject_msg, "request body exceeds the %zu-byte limit",
                     s->cfg.max_request);
            http_release(s, req);
            tarn_buf_free(&req->body);
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (req->reject_code) return http_reply_now(req, req->reject_code, req->reject_msg);
    if (req->route == ROUTE_HEALTH) {
        tarn_buf b;
        tarn_buf_init(&b, 64);
        tarn_buf_append_str(&b, "{\"status\":\"ok\"}");
        http_reply(req, MHD_HTTP_OK, "application/json", &b);
        tarn_buf_free(&b);
        return http_send(req);
    }
    /* Counted before stopping is read, so that the stop either sees this
     * request or this request sees the stop (server.c). */
    atomic_fetch_add(&s->suspended, 1);
    if (atomic_load(&s->stopping)) {
        atomic_fetch_sub(&s->suspended, 1);
        return http_reply_now(req, TARN_ECLOSED, "the server is stopping: retry once it is back");
    }
    req->state = REQ_RUNNING;
    req->counted = 1;
    atomic_fetch_add(&s->running, 1);
    MHD_suspend_connection(conn);
    if (req->route == ROUTE_RECORDS && ingest_inline(s, req)) {
        api_records(s, req); /* small, to an open table: here, on the HTTP thread */
    } else if (pool_submit(&s->pool, req) != TARN_OK) {
        http_reply_error(req, TARN_EUNAVAILABLE, "no worker thread could be started; retry shortly");
        http_resume(req);
    }
    return MHD_YES;
}

void tarn_http_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    tarn_server *s = cls;
    http_request *req = *con_cls;
    if (!req) return;
    /* Never while suspended: the server resumes every request before it
     * stops libmicrohttpd. */
    if (req->resp) MHD_destroy_response(req->resp);
    if (req->counted) atomic_fetch_sub(&s->running, 1);
    http_release(s, req);
    tarn_buf_free(&req->body);
    free(req);
    *con_cls = NULL;
}
