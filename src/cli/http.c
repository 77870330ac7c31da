/* http.c - the client's one libcurl handle.
 *
 * Every command makes its requests through one easy handle, so consecutive
 * requests (an ingest's batches) reuse one keep-alive connection. Replies
 * are read whole into a tarn_buf capped at CLI_REPLY_MAX. Connection
 * failures become one readable line naming the server URL; error replies are
 * described by cli_reply_error from the documented {"error": {...}} body.
 * The token only ever goes into the Authorization header: libcurl runs
 * without verbose output and no message here includes a header.
 */
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_internal.h"

#define CLI_CONNECT_TIMEOUT_S 5L

static size_t http_write(char *p, size_t size, size_t nmemb, void *ud)
{
    cli_http *h = ud;
    size_t n = size * nmemb;
    if (tarn_buf_append(&h->reply, p, n) != TARN_OK) {
        h->reply_too_big = 1;
        return 0; /* makes libcurl stop with CURLE_WRITE_ERROR */
    }
    return n;
}

int cli_http_init(cli_http *h, const cli_conn *conn, tarn_errbuf *eb)
{
    memset(h, 0, sizeof *h);
    tarn_buf_init(&h->reply, CLI_REPLY_MAX);
    h->url = conn->url;
    if (conn->token) {
        tarn_buf hdr;
        tarn_buf_init(&hdr, 0);
        if (tarn_buf_printf(&hdr, "Authorization: Bearer %s", conn->token)) {
            tarn_buf_free(&hdr);
            return tarn_errbuf_set(eb, TARN_ENOMEM, "out of memory");
        }
        h->auth_header = tarn_buf_steal(&hdr);
    }
    CURL *c = curl_easy_init();
    if (!c) return tarn_errbuf_set(eb, TARN_ENOMEM, "cannot set up libcurl");
    h->curl = c;
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, h);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->curl_error);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, CLI_CONNECT_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "tarn/" CLI_VERSION);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
    return TARN_OK;
}

void cli_http_free(cli_http *h)
{
    if (h->curl) curl_easy_cleanup(h->curl);
    h->curl = NULL;
    if (h->auth_header) {
        /* The token should not linger in freed memory. */
        volatile char *p = h->auth_header;
        while (*p) *p++ = 0;
        free(h->auth_header);
        h->auth_header = NULL;
    }
    tarn_buf_free(&h->reply);
}

/* One line for a failed transfer. */
static int transfer_error(cli_http *h, CURLcode res, long timeout_s, int *retryable, tarn_errbuf *eb)
{
    CURL *c = h->curl;
    long oserr = 0;
    curl_easy_getinfo(c, CURLINFO_OS_ERRNO, &oserr);
    const char *detail = h->curl_error[0] ? h->curl_error : curl_easy_strerror(res);
    switch (res) {
    case CURLE_COULDNT_CONNECT:
        if (retryable) *retryable = 1;
        return tarn_errbuf_set(eb, TARN_EUNAVAILABLE, "cannot connect to %s: %s (is 'tarn serve' running?)", h->url,
                               oserr ? strerror((int)oserr) : detail);
    case CURLE_COULDNT_RESOLVE_HOST:
        return tarn_errbuf_set(eb, TARN_EUNAVAILABLE, "cannot connect to %s: %s", h->url, detail);
    case CURLE_OPERATION_TIMEDOUT: {
        curl_off_t connected = 0;
        curl_easy_getinfo(c, CURLINFO_CONNECT_TIME_T, &connected);
        if (connected == 0)
            return tarn_errbuf_set(eb, TARN_ETIMEOUT,
                                   "cannot connect to %s: no answer within %ld s (is 'tarn serve' running?)", h->url,
                                   CLI_CONNECT_TIMEOUT_S);
        return tarn_errbuf_set(eb, TARN_ETIMEOUT, "no reply from %s within %ld s", h->url, timeout_s);
    }
    case CURLE_WRITE_ERROR:
        if (h->reply_too_big)
            return tarn_errbuf_set(eb, TARN_ETOOBIG, "the reply from %s is larger than %zu MiB", h->url,
                                   CLI_REPLY_MAX >> 20);
        break;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
        if (retryable) *retryable = 1;
        return tarn_errbuf_set(eb, TARN_EIO, "connection to %s lost: %s", h->url,
                               oserr ? strerror((int)oserr) : detail);
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return tarn_errbuf_set(eb, TARN_EINVAL, "bad server URL %s: %s", h->url, detail);
    default:
        break;
    }
    return tarn_errbuf_set(eb, TARN_EIO, "request to %s failed: %s", h->url, detail);
}

int cli_http_request(cli_http *h, const char *method, const char *path, const char *content_type,
                     const char *accept, const char *body, size_t len, long timeout_s, int *retryable,
                     tarn_errbuf *eb)
{
    CURL *c = h->curl;
    struct curl_slist *headers = NULL, *tmp;
    tarn_buf url, line;
    int rc = TARN_OK;
    if (retryable) *retryable = 0;
    tarn_buf_reset(&h->reply);
    h->reply_too_big = 0;
    h->status = 0;
    h->curl_error[0] = '\0';
    tarn_buf_init(&url, 0);
    tarn_buf_init(&line, 0);

    if (tarn_buf_printf(&url, "%s%s", h->url, path)) {
        rc = tarn_errbuf_set(eb, TARN_ENOMEM, "out of memory");
        goto out;
    }
#define ADD_HEADER(s)                                                     \
    do {                                                                  \
        if (!(tmp = curl_slist_append(headers, (s)))) {                   \
            rc = tarn_errbuf_set(eb, TARN_ENOMEM, "out of memory");       \
            goto out;                                                     \
        }                                                                 \
        headers = tmp;                                                    \
    } while (0)
    if (h->auth_header) ADD_HEADER(h->auth_header);
    if (content_type) {
        tarn_buf_reset(&line);
        if (tarn_buf_printf(&line, "Content-Type: %s", content_type)) goto oom;
        ADD_HEADER(line.data);
    }
    tarn_buf_reset(&line);
    if (tarn_buf_printf(&line, "Accept: %s", accept ? accept : "application/json")) goto oom;
    ADD_HEADER(line.data);
    /* No "Expect: 100-continue" round trip before large batches. */
    ADD_HEADER("Expect:");
#undef ADD_HEADER

    curl_easy_setopt(c, CURLOPT_URL, url.data);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, NULL);
    } else {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? len : 0));
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, strcmp(method, "POST") == 0 ? NULL : method);
    }
    CURLcode res = curl_easy_perform(c);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    if (res != CURLE_OK) {
        rc = transfer_error(h, res, timeout_s, retryable, eb);
        goto out;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &h->status);
    goto out;

oom:
    rc = tarn_errbuf_set(eb, TARN_ENOMEM, "out of memory");
out:
    curl_slist_free_all(headers);
    tarn_buf_free(&url);
    tarn_buf_free(&line);
    return rc;
}

json_t *cli_parse_json(const char *body, size_t len, tarn_errbuf *eb)
{
    json_error_t err;
    json_t *v = json_loadb(body ? body : "", len, 0, &err);
    if (!v) v = json_loadb(body ? body : "", len, JSON_DECODE_INT_AS_REAL, &err);
    if (!v) tarn_errbuf_set(eb, TARN_EJSON, "unexpected reply from the server: %s", err.text);
    return v;
}

/* Copies s[0..n) into msg as one line: runs of white space and control
 * characters become one space, and the ends are trimmed. */
static void one_line(const char *s, size_t n, char *msg, size_t msgsz)
{
    size_t o = 0;
    int space = 0;
    for (size_t i = 0; i < n && o + 1 < msgsz; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == ' ' || c == 0x7f) {
            space = o > 0;
            continue;
        }
        if (space) {
            msg[o++] = ' ';
            space = 0;
            if (o + 1 >= msgsz) break;
        }
        msg[o++] = (char)c;
    }
    msg[o] = '\0';
}

static const char *status_phrase(long status)
{
    switch (status) {
    case 400: return "bad request";
    case 401: return "missing or invalid token";
    case 403: return "forbidden";
    case 404: return "not found";
    case 405: return "method not allowed";
    case 413: return "too large";
    case 415: return "unsupported media type";
    case 500: return "internal server error";
    case 502: return "bad gateway";
    case 503: return "service unavailable";
    case 504: return "timed out";
    case 507: return "no space left on the server";
    default: return "unexpected reply";
    }
}

void cli_reply_error(long status, const char *body, size_t len, char *msg, size_t msgsz, int64_t *index)
{
    *index = -1;
    msg[0] = '\0';
    json_t *root = body && len ? json_loadb(body, len, 0, NULL) : NULL;
    json_t *err = json_object_get(root, "error");
    const char *m = json_string_value(json_object_get(err, "message"));
    json_t *idx = json_object_get(err, "index");
    if (json_is_integer(idx) && json_integer_value(idx) >= 0) *index = (int64_t)json_integer_value(idx);
    if (m && *m) {
        one_line(m, strlen(m), msg, msgsz);
    } else if (!root && body && len) {
        const char *nl = memchr(body, '\n', len);
        one_line(body, nl ? (size_t)(nl - body) : len, msg, msgsz);
    }
    if (!msg[0]) snprintf(msg, msgsz, "%s", status_phrase(status));
    json_decref(root);
}

const char *cli_strip_record_prefix(const char *msg)
{
    const char *p = msg;
    if (strncmp(p, "record ", 7) != 0) return msg;
    p += 7;
    if (!isdigit((unsigned char)*p)) return msg;
    while (isdigit((unsigned char)*p)) p++;
    if (strncmp(p, " at byte ", 9) == 0) {
        p += 9;
        if (!isdigit((unsigned char)*p)) return msg;
        while (isdigit((unsigned char)*p)) p++;
    }
    if (strncmp(p, ": ", 2) != 0) return msg;
    return p + 2;
}
