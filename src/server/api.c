/* api.c - the JSON endpoints other than ingest: catalog listings, flush,
 * query and status. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"
#include "server/server_int.h"

#define API_FLUSH_TIMEOUT_MS (10 * 60 * 1000)

static void api_reply_buf(http_request *req, int rc, tarn_buf *b, const tarn_errbuf *eb)
{
    if (rc) http_reply_error(req, rc, eb->msg);
    else http_reply(req, MHD_HTTP_OK, "application/json", b);
    tarn_buf_free(b);
}

void api_databases(tarn_server *s, http_request *req)
{
    tarn_buf b;
    tarn_buf_init(&b, 64 << 20);
    tarn_errbuf eb = {{0}};
    int rc = tarn_catalog_databases_json(s->cat, &b, &eb);
    api_reply_buf(req, rc, &b, &eb);
}

void api_tables(tarn_server *s, http_request *req)
{
    tarn_buf b;
    tarn_buf_init(&b, 64 << 20);
    tarn_errbuf eb = {{0}};
    int rc = tarn_catalog_tables_json(s->cat, req->has_db_arg ? req->db_arg : NULL, &b, &eb);
    api_reply_buf(req, rc, &b, &eb);
}

void api_table(tarn_server *s, http_request *req)
{
    tarn_buf b;
    tarn_buf_init(&b, 64 << 20);
    tarn_errbuf eb = {{0}};
    int rc = tarn_catalog_table_json(s->cat, req->db, req->table, &b, &eb);
    api_reply_buf(req, rc, &b, &eb);
}

void api_flush(tarn_server *s, http_request *req)
{
    const char *db = req->db, *table = req->table;
    tarn_errbuf eb = {{0}};
    tarn_table *t = NULL;
    int64_t delivered = 0, raw = 0;
    int rc = tarn_delivery_table(s->delivery, db, table, 0, &t, &eb);
    if (!rc) rc = tarn_delivery_flush(s->delivery, t, API_FLUSH_TIMEOUT_MS, req->flush_zones, &delivered, &raw, &eb);
    tarn_buf b;
    tarn_buf_init(&b, 1024);
    if (!rc) {
        tarn_buf_append_str(&b, "{\"database\":");
        tarn_buf_append_json_str(&b, db, strlen(db));
        tarn_buf_append_str(&b, ",\"table\":");
        tarn_buf_append_json_str(&b, table, strlen(table));
        tarn_buf_printf(&b, ",\"delivered_seq\":%lld,\"raw_seq\":%lld}", (long long)delivered, (long long)raw);
    }
    api_reply_buf(req, rc, &b, &eb);
}

/* The result, with its figures also as headers: CSV has nowhere else to
 * say that it was truncated. */
static void api_reply_query(http_request *req, int csv, tarn_buf *body, const tarn_query_stats *st)
{
    char rows[24], bytes[24], ms[24];
    snprintf(rows, sizeof rows, "%lld", (long long)st->row_count);
    snprintf(bytes, sizeof bytes, "%lld", (long long)st->bytes_scanned);
    snprintf(ms, sizeof ms, "%lld", (long long)st->elapsed_ms);
    const http_header figures[] = {{"X-Tarn-Row-Count", rows},
                                   {"X-Tarn-Truncated", st->truncated ? "true" : "false"},
                                   {"X-Tarn-Bytes-Scanned", bytes},
                                   {"X-Tarn-Elapsed-Ms", ms}};
    http_reply_headers(req, MHD_HTTP_OK, csv ? "text/csv; charset=utf-8" : "application/json", body, figures,
                       sizeof figures / sizeof figures[0]);
}

void api_query(tarn_server *s, http_request *req)
{
    tarn_errbuf eb = {{0}};
    json_error_t jerr;
    json_t *root = json_loadb(req->body.data ? req->body.data : "", req->body.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        http_reply_error(req, TARN_EJSON, "request body is not JSON: expected {\"sql\": \"SELECT ...\"}");
        return;
    }
    json_t *sql = json_object_get(root, "sql");
    json_t *db = json_object_get(root, "database");
    const char *dbname = NULL;
    if (!json_is_object(root) || !json_is_string(sql)) {
        http_reply_error(req, TARN_EINVAL, "expected {\"sql\": \"SELECT ...\", \"database\": \"optional\"}");
        goto done;
    }
    if (db && !json_is_null(db)) {
        if (!json_is_string(db) || !tarn_name_valid(json_string_value(db))) {
            http_reply_error(req, TARN_EINVAL, "\"database\" must be a database name");
            goto done;
        }
        dbname = json_string_value(db);
    }
    int csv = req->csv;
    tarn_buf out;
    tarn_buf_init(&out, 0); /* the engine enforces its own result limit */
    tarn_query_stats st;
    int rc = tarn_query_run(s->qe, json_string_value(sql), dbname, csv ? TARN_QUERY_CSV : TARN_QUERY_JSON, &out, &st,
                            &eb);
    /* An unknown table is a fault of the query, not a missing endpoint. */
    if (rc == TARN_ENOTFOUND) http_reply_error_status(req, MHD_HTTP_BAD_REQUEST, rc, eb.msg);
    else if (rc) http_reply_error(req, rc, eb.msg);
    else api_reply_query(req, csv, &out, &st);
    tarn_buf_free(&out);
done:
    json_decref(root);
}

void api_status(tarn_server *s, http_request *req)
{
    tarn_buf b;
    tarn_buf_init(&b, 64 << 20);
    tarn_buf_append_str(&b, "{\"version\":\"" TARN_VERSION "\",\"data_dir\":");
    tarn_buf_append_json_str(&b, s->data_dir, strlen(s->data_dir));
    tarn_buf_printf(&b, ",\"listen\":\"%s:%d\",\"uptime_s\":%lld,\"queries_running\":%d,\"tables\":",
                    s->cfg.listen_host, s->cfg.listen_port, (long long)((tarn_now_ms() - s->started_ms) / 1000),
                    tarn_query_engine_running(s->qe));
    int rc = tarn_delivery_status_json(s->delivery, &b);
    if (!rc) rc = tarn_buf_append_char(&b, '}');
    tarn_errbuf eb = {{0}};
    api_reply_buf(req, rc, &b, &eb);
}
