/* query_client.c - times Tarn's POST /v1/query from a client as light as
 * the peer's harness (bench/peers/duckdb_query.c), so that the query
 * benchmark compares Tarn's overhead over DuckDB and not the cost of a
 * Python HTTP client.
 *
 *   query_client [--reps N] PORT TOKEN_FILE SQL [SQL ...]
 *
 * One keep-alive connection to 127.0.0.1:PORT (TCP_NODELAY). Each SQL is
 * sent once to warm up, then N times (default 20); the time of one run is
 * from writing the request to having read the whole response (status line,
 * headers and a body of Content-Length bytes). Every reply must be 200; its
 * "row_count" must be the same each time. Prints one JSON line like
 * duckdb_query's: per query the median, min and max in milliseconds, the row
 * count and the server's median "elapsed_ms".
 *
 * Limits: 64 KiB of SQL, 64 KiB of headers, 256 MiB of body, 120 s without
 * progress on the socket.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_SQL (64 << 10)
#define MAX_HEAD (64 << 10)
#define MAX_BODY ((size_t)256 << 20)
#define IO_TIMEOUT_S 120

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void die(const char *what)
{
    fprintf(stderr, "query_client: %s\n", what);
    exit(1);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *t, int n)
{
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

static int connect_to(int port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    if (s < 0) die("socket failed");
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {IO_TIMEOUT_S, 0};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) die("cannot connect to 127.0.0.1");
    return s;
}

/* The request for one SQL text: {"sql": "..."} with the text escaped. */
static char *make_request(const char *sql, const char *token, size_t *len)
{
    size_t n = strlen(sql);
    if (n > MAX_SQL) die("SQL text over 64 KiB");
    char *body = malloc(n * 6 + 16), *p = body;
    if (!body) die("out of memory");
    p += sprintf(p, "{\"sql\":\"");
    for (const unsigned char *c = (const unsigned char *)sql; *c; c++) {
        if (*c == '"' || *c == '\\') p += sprintf(p, "\\%c", *c);
        else if (*c < 0x20) p += sprintf(p, "\\u%04x", *c);
        else *p++ = (char)*c;
    }
    p += sprintf(p, "\"}");
    size_t blen = (size_t)(p - body), cap = blen + strlen(token) + 256;
    char *req = malloc(cap);
    if (!req) die("out of memory");
    int h = snprintf(req, cap,
                     "POST /v1/query HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                     token, blen);
    memcpy(req + h, body, blen);
    free(body);
    *len = (size_t)h + blen;
    return req;
}

typedef struct conn {
    int fd, port;
    char *buf; /* the reply being read */
    size_t len, cap;
} conn;

static void conn_read_more(conn *c)
{
    if (c->len == c->cap) {
        size_t cap = c->cap * 2;
        if (cap > MAX_HEAD + MAX_BODY) die("response over 256 MiB");
        if (!(c->buf = realloc(c->buf, cap))) die("out of memory");
        c->cap = cap;
    }
    ssize_t n = read(c->fd, c->buf + c->len, c->cap - c->len);
    if (n == 0) die("the server closed the connection");
    if (n < 0) die(errno == EAGAIN || errno == EWOULDBLOCK ? "no reply within 120 s" : "read failed");
    c->len += (size_t)n;
}

/* Sends one request and reads its whole reply; *body points into c->buf. */
static void round_trip(conn *c, const char *req, size_t len, const char **body, size_t *blen)
{
    for (size_t off = 0; off < len;) {
        ssize_t n = write(c->fd, req + off, len - off);
        if (n <= 0) die("write failed");
        off += (size_t)n;
    }
    c->len = 0;
    char *end = NULL;
    while (!(end = memmem(c->buf, c->len, "\r\n\r\n", 4))) {
        if (c->len > MAX_HEAD) die("reply headers over 64 KiB");
        conn_read_more(c);
    }
    size_t head = (size_t)(end + 4 - c->buf);
    if (c->len < 12 || memcmp(c->buf, "HTTP/1.1 200", 12) != 0) {
        fprintf(stderr, "query_client: reply: %.*s\n", (int)(c->len < 400 ? c->len : 400), c->buf);
        exit(1);
    }
    long long want = -1;
    int closing = 0;
    for (char *line = memchr(c->buf, '\n', head); line && line < end; line = memchr(line, '\n', (size_t)(end - line))) {
        line++;
        if (!strncasecmp(line, "Content-Length:", 15)) want = strtoll(line + 15, NULL, 10);
        if (!strncasecmp(line, "Connection: close", 17)) closing = 1;
    }
    if (want < 0 || (size_t)want > MAX_BODY) die("reply without a usable Content-Length");
    while (c->len < head + (size_t)want) conn_read_more(c);
    *body = c->buf + head;
    *blen = (size_t)want;
    if (closing) {
        close(c->fd);
        c->fd = connect_to(c->port);
    }
}

/* The number after "key": in a JSON body, or -1. */
static double json_number(const char *body, size_t len, const char *key)
{
    char pat[64];
    int n = snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = memmem(body, len, pat, (size_t)n);
    return p ? strtod(p + n, NULL) : -1;
}

int main(int argc, char **argv)
{
    int reps = 20, i = 1;
    if (argc > 2 && !strcmp(argv[1], "--reps")) reps = atoi(argv[2]), i = 3;
    if (argc - i < 3 || reps < 1 || reps > 10000) {
        fprintf(stderr, "usage: query_client [--reps N] PORT TOKEN_FILE SQL [SQL ...]\n");
        return 2;
    }
    int port = atoi(argv[i]);
    if (port <= 0 || port > 65535) die("bad port");
    char token[512];
    FILE *f = fopen(argv[i + 1], "r");
    if (!f || !fgets(token, sizeof token, f)) die("cannot read the token file");
    fclose(f);
    token[strcspn(token, "\r\n \t")] = '\0';

    conn c = {connect_to(port), port, malloc(1 << 16), 0, 1 << 16};
    if (!c.buf) die("out of memory");
    double *t = calloc((size_t)reps, sizeof *t), *srv = calloc((size_t)reps, sizeof *srv);
    if (!t || !srv) die("out of memory");
    printf("{\"queries\":[");
    for (int q = i + 2; q < argc; q++) {
        size_t len, blen;
        const char *body;
        char *req = make_request(argv[q], token, &len);
        round_trip(&c, req, len, &body, &blen); /* warm-up */
        double rows = json_number(body, blen, "row_count");
        for (int r = 0; r < reps; r++) {
            double t0 = now_ms();
            round_trip(&c, req, len, &body, &blen);
            t[r] = now_ms() - t0;
            srv[r] = json_number(body, blen, "elapsed_ms");
            if (json_number(body, blen, "row_count") != rows) die("the row count changed between runs");
        }
        free(req);
        double med = median(t, reps);
        printf("%s{\"median_ms\":%.3f,\"min_ms\":%.3f,\"max_ms\":%.3f,\"rows\":%.0f,\"server_median_ms\":%.3f}",
               q > i + 2 ? "," : "", med, t[0], t[reps - 1], rows, median(srv, reps));
    }
    printf("]}\n");
    close(c.fd);
    free(c.buf);
    free(t);
    free(srv);
    return 0;
}
