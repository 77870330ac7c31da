/* pool.c - the worker threads behind the HTTP threads.
 *
 * libmicrohttpd runs a few HTTP threads (one per core), each serving many
 * connections from one epoll loop, so nothing that waits may run on them:
 * a query can take a minute, a flush waits for delivery, a catalog read may
 * wait for SQLite's lock, a 10 MiB gzip body takes tens of milliseconds.
 * The HTTP thread suspends such a request and queues it here; a worker runs
 * it (http_run), which makes the reply and resumes the connection, or, for
 * an ingest, leaves the resumption to the log once the records are durable.
 * No worker ever waits for an fsync.
 *
 * Threads start when a job finds no idle one, up to max_threads (the
 * connection limit: each connection has at most one request running), and
 * one that has been idle for POOL_IDLE_MS ends, except the last. The queue
 * needs no limit of its own: it never holds more jobs than connections.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/util.h"
#include "server/server_int.h"

#define LOG "http"
#define POOL_IDLE_MS 30000
#define POOL_STACK ((size_t)8 << 20) /* DuckDB's and SQLite's calls run here */

static void *pool_main(void *arg)
{
    server_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (p->head) {
            http_request *req = p->head;
            p->head = req->next;
            if (!p->head) p->tail = NULL;
            p->nqueued--;
            req->next = NULL;
            pthread_mutex_unlock(&p->mu);
            http_run(p->s, req);
            pthread_mutex_lock(&p->mu);
            continue;
        }
        if (p->stopping) break;
        int64_t until = tarn_mono_us() + (int64_t)POOL_IDLE_MS * 1000;
        struct timespec dl = {(time_t)(until / 1000000), (long)(until % 1000000) * 1000};
        p->nidle++;
        int rc = pthread_cond_timedwait(&p->work_cv, &p->mu, &dl);
        p->nidle--;
        if (rc == ETIMEDOUT && !p->head && p->nthreads > 1) break;
    }
    p->nthreads--;
    pthread_cond_broadcast(&p->gone_cv);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Starts one more worker. mu held. */
static int pool_spawn(server_pool *p)
{
    pthread_attr_t ta;
    pthread_t t;
    pthread_attr_init(&ta);
    pthread_attr_setstacksize(&ta, POOL_STACK);
    pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
    int e = pthread_create(&t, &ta, pool_main, p);
    pthread_attr_destroy(&ta);
    if (e != 0) return e;
    p->nthreads++;
    return 0;
}

int pool_start(server_pool *p, tarn_server *s, int max_threads, tarn_errbuf *eb)
{
    memset(p, 0, sizeof *p);
    p->s = s;
    p->max_threads = max_threads > 0 ? max_threads : 1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->work_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&p->gone_cv, NULL);
    pthread_mutex_lock(&p->mu);
    int e = pool_spawn(p);
    pthread_mutex_unlock(&p->mu);
    if (e) return tarn_errbuf_set(eb, TARN_ENOMEM, "cannot start a worker thread: %s", strerror(e));
    return TARN_OK;
}

int pool_submit(server_pool *p, http_request *req)
{
    pthread_mutex_lock(&p->mu);
    /* Every queued job needs an idle thread of its own: two queries queued
     * at once must not run one after the other. */
    if (p->nqueued + 1 > p->nidle && p->nthreads < p->max_threads) {
        int e = pool_spawn(p);
        if (e && p->nthreads == 0) {
            pthread_mutex_unlock(&p->mu);
            tarn_log_error(LOG, "cannot start a worker thread: %s", strerror(e));
            return TARN_EUNAVAILABLE;
        }
        /* Otherwise the job waits for a busy worker. */
    }
    req->next = NULL;
    if (p->tail) p->tail->next = req;
    else p->head = req;
    p->tail = req;
    p->nqueued++;
    pthread_cond_signal(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    return TARN_OK;
}

void pool_stop(server_pool *p)
{
    if (!p->s) return; /* never started */
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->work_cv);
    while (p->nthreads > 0) pthread_cond_wait(&p->gone_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    pthread_cond_destroy(&p->work_cv);
    pthread_cond_destroy(&p->gone_cv);
    pthread_mutex_destroy(&p->mu);
    p->s = NULL;
}
