/* post_server.c - a trivial durable HTTP ingest server, the peer of the
 * single-record POST benchmark.
 *
 *   post_server --listen PORT --out FILE [--sync each|none]
 *
 * Same HTTP stack and threading as Tarn (libmicrohttpd, one thread per
 * connection, keep-alive). Every POST body is appended to FILE (O_APPEND)
 * and, with --sync each (the default), fdatasync'd before the reply: the
 * obvious way to acknowledge durably, with no group commit (concurrent
 * fdatasyncs coalesce only as far as the kernel's journal does). With
 * --sync none the body is only written: the ceiling of HTTP plus write().
 * No token check, no JSON validation, no framing. Replies
 * {"records":1,"first_seq":N,"last_seq":N}. Stops on SIGTERM / SIGINT and
 * deletes FILE.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BODY_MAX (10u << 20)

typedef struct request {
    char *data;
    size_t len, cap;
    int too_big;
} request;

static int out_fd;
static int sync_each = 1;
static atomic_llong seq;

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *body)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    enum MHD_Result res = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return res;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                               const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)cls, (void)url, (void)version;
    request *req = *con_cls;
    if (!req) {
        req = calloc(1, sizeof *req);
        if (!req) return MHD_NO;
        *con_cls = req;
        return MHD_YES;
    }
    if (*upload_size) {
        if (req->len + *upload_size > BODY_MAX) req->too_big = 1;
        if (!req->too_big) {
            if (req->len + *upload_size > req->cap) {
                size_t cap = req->cap ? req->cap : 4096;
                while (cap < req->len + *upload_size) cap *= 2;
                char *d = realloc(req->data, cap);
                if (!d) return MHD_NO;
                req->data = d;
                req->cap = cap;
            }
            memcpy(req->data + req->len, upload, *upload_size);
            req->len += *upload_size;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (strcmp(method, "POST") != 0) return reply(conn, 405, "{\"error\":\"use POST\"}");
    if (req->too_big) return reply(conn, 413, "{\"error\":\"too big\"}");
    if (req->len == 0) return reply(conn, 400, "{\"error\":\"empty\"}");
    /* One write per record: body plus newline. */
    if (req->len == req->cap) {
        char *d = realloc(req->data, req->cap + 1);
        if (!d) return MHD_NO;
        req->data = d;
        req->cap++;
    }
    req->data[req->len] = '\n';
    size_t off = 0, n = req->len + 1;
    while (off < n) {
        ssize_t w = write(out_fd, req->data + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return reply(conn, 500, "{\"error\":\"write failed\"}");
        off += (size_t)w;
    }
    if (sync_each && fdatasync(out_fd) != 0) return reply(conn, 500, "{\"error\":\"fdatasync failed\"}");
    long long s = atomic_fetch_add(&seq, 1) + 1;
    char body[96];
    snprintf(body, sizeof body, "{\"records\":1,\"first_seq\":%lld,\"last_seq\":%lld}", s, s);
    return reply(conn, 200, body);
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)conn, (void)toe;
    request *req = *con_cls;
    if (!req) return;
    free(req->data);
    free(req);
    *con_cls = NULL;
}

int main(int argc, char **argv)
{
    int port = 0;
    const char *out = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--listen")) port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--out")) out = argv[i + 1];
        else if (!strcmp(argv[i], "--sync")) sync_each = strcmp(argv[i + 1], "none") != 0;
    }
    if (port <= 0 || port > 65535 || !out) {
        fprintf(stderr, "usage: post_server --listen PORT --out FILE [--sync each|none]\n");
        return 2;
    }
    out_fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (out_fd < 0) {
        perror(out);
        return 1;
    }
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ERROR_LOG,
        (uint16_t)port, NULL, NULL, handler, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_CONNECTION_LIMIT, 256u, MHD_OPTION_CONNECTION_TIMEOUT, 120u, MHD_OPTION_NOTIFY_COMPLETED,
        completed, NULL, MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "post_server: cannot listen on 127.0.0.1:%d\n", port);
        return 1;
    }
    fprintf(stderr, "post_server: listening on 127.0.0.1:%d (sync %s)\n", port, sync_each ? "each" : "none");
    int sig;
    sigwait(&sigs, &sig);
    MHD_stop_daemon(d);
    close(out_fd);
    unlink(out);
    fprintf(stderr, "post_server: %lld requests\n", (long long)atomic_load(&seq));
    return 0;
}
