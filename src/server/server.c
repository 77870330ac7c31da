/* server.c - `tarn serve`: start-up, the signal loop and an orderly stop.
 *
 * Start: configuration; the data directory and its lock (one server per
 * directory); the admin token; the catalog; the query engine; the delivery
 * (which recovers every stream and cleans the lake); then the HTTP server.
 * Stop on SIGTERM / SIGINT: stop accepting, let running requests finish,
 * deliver everything acknowledged, close, exit 0. If a durable log fails to
 * fsync the server stops acknowledging and exits 1 at once.
 */
#include "server/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "server/server_int.h"

#define LOG "server"
#define TOKEN_MAX 512

static void server_usage(FILE *f)
{
    fprintf(f, "usage: tarn serve [--data DIR] [--listen ADDR:PORT] [--config FILE]\n"
               "  --data DIR          data directory (default ./tarn-data)\n"
               "  --listen ADDR:PORT  address to listen on (default 127.0.0.1:8470)\n"
               "  --config FILE       YAML configuration (see README)\n");
}

/* Reads DATA/admin.token, creating it (mode 0600) on the first start, and
 * keeps only its SHA-256 in memory. */
static int server_token(tarn_server *s, tarn_errbuf *eb)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/admin.token", s->data_dir);
    char *tok = NULL;
    size_t len = 0;
    int rc = tarn_read_file(path, TOKEN_MAX, &tok, &len, eb);
    if (rc == TARN_ENOTFOUND) {
        unsigned char raw[32];
        char hex[65], text[80];
        if ((rc = tarn_random_bytes(raw, sizeof raw))) return tarn_errbuf_set(eb, rc, "no random source for the token");
        tarn_hex(raw, sizeof raw, hex);
        int n = snprintf(text, sizeof text, "tarn_%s\n", hex);
        if ((rc = tarn_write_file_atomic(path, text, (size_t)n, 0600, eb))) return rc;
        tarn_log_info(LOG, "created the admin token in %s", path);
        rc = tarn_read_file(path, TOKEN_MAX, &tok, &len, eb);
    }
    if (rc) return rc;
    while (len > 0 && (tok[len - 1] == '\n' || tok[len - 1] == '\r' || tok[len - 1] == ' ')) tok[--len] = '\0';
    if (len == 0) {
        free(tok);
        return tarn_errbuf_set(eb, TARN_EINVAL, "%s is empty: delete it to get a new token", path);
    }
    s->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    unsigned hlen = 0;
    int ok = s->sha256 && EVP_Digest(tok, len, s->token_hash, &hlen, s->sha256, NULL) && hlen == sizeof s->token_hash;
    memset(tok, 0, len);
    free(tok);
    return ok ? TARN_OK : tarn_errbuf_set(eb, TARN_EIO, "OpenSSL has no SHA-256 to check tokens with");
}

static int server_lock(const char *data_dir, tarn_errbuf *eb)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/tarn.lock", data_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return tarn_errbuf_set(eb, TARN_EIO, "cannot open %s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0)
        return tarn_errbuf_set(eb, TARN_ECONFLICT, "%s is in use by another tarn server", data_dir);
    return TARN_OK; /* the descriptor stays open: the lock lives as long as the process */
}

static void server_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n') msg[--n] = '\0';
    tarn_log_warn("http", "%s", msg);
}

static int server_start_http(tarn_server *s, tarn_errbuf *eb)
{
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    char port[16];
    snprintf(port, sizeof port, "%d", s->cfg.listen_port);
    int g = getaddrinfo(s->cfg.listen_host, port, &hints, &ai);
    if (g != 0) return tarn_errbuf_set(eb, TARN_EINVAL, "cannot resolve %s: %s", s->cfg.listen_host, gai_strerror(g));
    /* A few threads, each serving its connections from one epoll loop;
     * requests that wait are suspended and run elsewhere (pool.c, and the
     * log's syncer for ingest). */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned threads = s->cfg.http_threads > 0 ? (unsigned)s->cfg.http_threads : ncpu > 0 ? (unsigned)ncpu : 1;
    if (threads > 16 && s->cfg.http_threads <= 0) threads = 16;
    if (threads > s->cfg.max_connections) threads = s->cfg.max_connections;
    s->mhd = MHD_start_daemon(flags, (uint16_t)s->cfg.listen_port, NULL, NULL, tarn_http_handler, s,
                              MHD_OPTION_EXTERNAL_LOGGER, server_mhd_log, s,
                              MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                              MHD_OPTION_THREAD_POOL_SIZE, threads > 1 ? threads : 0u,
                              MHD_OPTION_CONNECTION_LIMIT, s->cfg.max_connections,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
                              MHD_OPTION_NOTIFY_COMPLETED, tarn_http_completed, s,
                              MHD_OPTION_UNESCAPE_CALLBACK, tarn_http_unescape, s,
                              MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->mhd)
        return tarn_errbuf_set(eb, TARN_EIO, "cannot listen on %s:%d (address in use?)", s->cfg.listen_host,
                               s->cfg.listen_port);
    return TARN_OK;
}

/* Before libmicrohttpd stops: every new request (on a connection old or
 * new) gets 503, running queries are cancelled (503), and every other
 * request already running finishes (a suspended connection must be resumed
 * before MHD_stop_daemon, which would otherwise free what a worker or the
 * log still holds). Then up to SERVER_SEND_GRACE_MS for the replies to go
 * out. The listening socket stays open until MHD_stop_daemon: with epoll
 * and a thread per core, MHD_quiesce_daemon (libmicrohttpd 0.9.75) races
 * the HTTP threads removing the socket from their epoll sets and aborts the
 * process when it loses ("Failed to remove listen FD from epoll set": the
 * test suite hit it once, exit status -6 on SIGTERM). */
#define SERVER_SEND_GRACE_MS 5000
static void server_drain(tarn_server *s)
{
    atomic_store(&s->stopping, 1);
    /* A running query ends now with 503 rather than at its end or timeout
     * (a minute by default); ingests and flushes finish. */
    tarn_query_engine_cancel(s->qe);
    struct timespec tick = {0, 2 * 1000000L};
    while (atomic_load(&s->suspended) > 0) nanosleep(&tick, NULL);
    int64_t until = tarn_now_ms() + SERVER_SEND_GRACE_MS;
    while (atomic_load(&s->running) > 0 && tarn_now_ms() < until) nanosleep(&tick, NULL);
}

static int server_parse_args(tarn_server *s, int argc, char **argv, tarn_errbuf *eb)
{
    const char *data = NULL, *listen = NULL, *config = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **dst = !strcmp(a, "--data") ? &data : !strcmp(a, "--listen") ? &listen
                                                      : !strcmp(a, "--config") ? &config : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            server_usage(stdout);
            exit(0);
        }
        if (!dst) return tarn_errbuf_set(eb, TARN_EINVAL, "unknown option '%s'", a);
        if (i + 1 >= argc) return tarn_errbuf_set(eb, TARN_EINVAL, "%s needs a value", a);
        *dst = argv[++i];
    }
    tarn_config_defaults(&s->cfg);
    int rc;
    if (config && (rc = tarn_config_load_file(&s->cfg, config, eb))) return rc;
    if (data) {
        if (strlen(data) >= sizeof s->cfg.data_dir) return tarn_errbuf_set(eb, TARN_EINVAL, "--data path too long");
        snprintf(s->cfg.data_dir, sizeof s->cfg.data_dir, "%s", data);
    }
    if (listen && (rc = tarn_config_set_listen(&s->cfg, listen, eb))) return rc;
    return TARN_OK;
}

/* Every table keeps two descriptors open (its log's newest segment and a
 * reader) and every connection one: raises the soft open-file limit toward
 * what limits.max_tables and limits.max_connections may need, within the
 * hard limit, and says so at start if that is not enough. */
#define SERVER_FD_SPARE 512 /* SQLite, DuckDB, lake files being written and read, the log's directory */
static void server_raise_nofile(const tarn_config *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    rlim_t need = (rlim_t)cfg->max_tables * 2 + cfg->max_connections + SERVER_FD_SPARE;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        rlim_t want = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need ? rl.rlim_max : need;
        struct rlimit nl = {want, rl.rlim_max};
        if (want > rl.rlim_cur && setrlimit(RLIMIT_NOFILE, &nl) == 0) rl.rlim_cur = want;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
        tarn_log_warn(LOG,
                      "the open-file limit is %llu; limits.max_tables (%d) and limits.max_connections (%u) may "
                      "need %llu: raise it (ulimit -n) or lower them",
                      (unsigned long long)rl.rlim_cur, cfg->max_tables, cfg->max_connections,
                      (unsigned long long)need);
}

int tarn_server_main(int argc, char **argv)
{
    tarn_server s;
    memset(&s, 0, sizeof s);
    tarn_errbuf eb = {{0}};
    int rc, exit_code = 1;

    /* Block the stop signals in every thread (DuckDB and libmicrohttpd start
     * theirs below) so that only the loop at the end receives them. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    if ((rc = server_parse_args(&s, argc, argv, &eb))) {
        fprintf(stderr, "tarn serve: %s\n", eb.msg);
        server_usage(stderr);
        return 2;
    }
    server_raise_nofile(&s.cfg);
    if ((rc = tarn_mkdir_p(s.cfg.data_dir, &eb))) goto fail;
    if (!realpath(s.cfg.data_dir, s.data_dir)) {
        rc = tarn_errbuf_set(&eb, TARN_EIO, "cannot resolve %s: %s", s.cfg.data_dir, strerror(errno));
        goto fail;
    }
    if (strlen(s.data_dir) > 2048) {
        rc = tarn_errbuf_set(&eb, TARN_EINVAL, "data directory path is longer than 2048 bytes");
        goto fail;
    }
    if ((rc = server_lock(s.data_dir, &eb))) goto fail;
    if ((rc = server_token(&s, &eb))) goto fail;

    char path[PATH_MAX], lake[PATH_MAX];
    snprintf(path, sizeof path, "%s/catalog.db", s.data_dir);
    snprintf(lake, sizeof lake, "%s/lake", s.data_dir);
    if ((rc = tarn_mkdir_p(lake, &eb))) goto fail;
    if ((rc = tarn_catalog_open(path, &s.cat, &eb))) goto fail;

    /* DuckDB's spill files of queries: in DATA/tmp, emptied at every start
     * (a crash leaves them behind). */
    char spill[PATH_MAX];
    snprintf(spill, sizeof spill, "%s/tmp", s.data_dir);
    tarn_rm_rf(spill);
    if ((rc = tarn_mkdir_p(spill, &eb))) goto fail;
    snprintf(spill, sizeof spill, "%s/tmp/query", s.data_dir);
    tarn_query_opts qo = {lake, s.cfg.query_threads, s.cfg.query_memory_limit[0] ? s.cfg.query_memory_limit : NULL,
                          s.cfg.query_timeout_ms, s.cfg.query_max_rows, 0, 0, spill, s.cfg.query_max_spill};
    if ((rc = tarn_query_engine_open(&qo, s.cat, &s.qe, &eb))) goto fail;

    tarn_delivery_opts dopts = {
        .data_dir = s.data_dir,
        .buffer_size = s.cfg.buffer_size,
        .buffer_interval_ms = s.cfg.buffer_interval_ms,
        .max_batch = s.cfg.max_batch,
        .segment_size = s.cfg.segment_size,
        .max_record = s.cfg.max_record,
        .max_backlog = s.cfg.max_backlog,
        .max_tables = s.cfg.max_tables,
        .compact_target = s.cfg.compact_target,
        .compact_min_files = s.cfg.compact_min_files,
        .compact_grace_ms = s.cfg.compact_grace_ms,
        .compact_interval_ms = s.cfg.compact_interval_ms,
        .duckdb_threads = s.cfg.query_threads,
        .memory_limit = s.cfg.query_memory_limit[0] ? s.cfg.query_memory_limit : NULL,
    };
    if ((rc = tarn_delivery_open(&dopts, s.cat, s.qe, &s.delivery, &eb))) goto fail;
    if ((rc = pool_start(&s.pool, &s, (int)s.cfg.max_connections, &eb))) goto fail;
    if ((rc = server_start_http(&s, &eb))) goto fail;
    s.started_ms = tarn_now_ms();
    tarn_log_info(LOG, "tarn %s listening on http://%s:%d, data in %s", TARN_VERSION, s.cfg.listen_host,
                  s.cfg.listen_port, s.data_dir);

    struct timespec tick = {0, 200 * 1000000L};
    for (;;) {
        int sig = sigtimedwait(&sigs, NULL, &tick);
        if (sig == SIGTERM || sig == SIGINT) {
            tarn_log_info(LOG, "received %s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
            break;
        }
        if (tarn_delivery_failed(s.delivery)) {
            /* Acknowledged records are safe in the log up to the failure;
             * nothing more may be acknowledged. Exit without delivering. */
            tarn_log_error(LOG, "a durable log failed to sync: exiting");
            _exit(1);
        }
    }
    server_drain(&s);
    MHD_stop_daemon(s.mhd);
    s.mhd = NULL;
    pool_stop(&s.pool);
    tarn_delivery_close(s.delivery); /* delivers what is buffered */
    s.delivery = NULL;
    tarn_log_info(LOG, "stopped");
    exit_code = 0;
    goto out;
fail:
    fprintf(stderr, "tarn serve: %s\n", eb.msg[0] ? eb.msg : tarn_err_message(rc));
out:
    if (s.mhd) {
        server_drain(&s);
        MHD_stop_daemon(s.mhd);
    }
    pool_stop(&s.pool);
    tarn_delivery_close(s.delivery);
    tarn_query_engine_close(s.qe);
    tarn_catalog_close(s.cat);
    EVP_MD_free(s.sha256);
    return exit_code;
}
