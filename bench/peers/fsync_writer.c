/* fsync_writer.c - the durable-write ceiling of this disk, the peer of the
 * batched-ingest benchmark.
 *
 *   fsync_writer [--threads N] [--seconds S] [--max-bytes B] [--batch BYTES] INPUT OUTPUT
 *
 * Cuts INPUT (NDJSON) into batches of whole lines of at most BATCH bytes
 * (default 1 MiB; the same cut as bench/tarnbench.py's ingest client) and
 * appends them to OUTPUT (O_APPEND) from N threads, each doing write() then
 * fdatasync() per batch: what a server must at least do to acknowledge a
 * batch durably, without any parsing, framing or HTTP. Batches are taken in
 * order, wrapping around at the end of INPUT, until S seconds have passed or
 * B bytes were written. OUTPUT is deleted at the end. Prints one JSON line.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct batch {
    const char *data;
    size_t len;
    size_t records;
} batch;

static batch *batches;
static size_t nbatches;
static int out_fd;
static double deadline;
static uint64_t max_bytes;
static atomic_uint_fast64_t next_batch, bytes_done, batches_done, records_done;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *writer_thread(void *arg)
{
    (void)arg;
    while (now_s() < deadline && atomic_load(&bytes_done) < max_bytes) {
        uint64_t k = atomic_fetch_add(&next_batch, 1) % nbatches;
        const batch *b = &batches[k];
        size_t off = 0;
        while (off < b->len) {
            ssize_t w = write(out_fd, b->data + off, b->len - off);
            if (w < 0) {
                if (errno == EINTR) continue;
                perror("write");
                exit(1);
            }
            off += (size_t)w;
        }
        if (fdatasync(out_fd) != 0) {
            perror("fdatasync");
            exit(1);
        }
        atomic_fetch_add(&bytes_done, b->len);
        atomic_fetch_add(&batches_done, 1);
        atomic_fetch_add(&records_done, b->records);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = 4;
    double seconds = 10;
    size_t batch_max = 1 << 20;
    max_bytes = UINT64_MAX;
    int i = 1;
    for (; i + 1 < argc && argv[i][0] == '-' && argv[i][1] == '-'; i += 2) {
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--max-bytes")) max_bytes = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--batch")) batch_max = strtoull(argv[i + 1], NULL, 10);
        else break;
    }
    if (argc - i != 2 || threads < 1 || threads > 256 || seconds <= 0 || batch_max < 1024) {
        fprintf(stderr, "usage: fsync_writer [--threads N] [--seconds S] [--max-bytes B] [--batch BYTES] INPUT OUTPUT\n");
        return 2;
    }
    const char *input = argv[i], *output = argv[i + 1];

    int in = open(input, O_RDONLY);
    struct stat st;
    if (in < 0 || fstat(in, &st) != 0 || st.st_size == 0) {
        fprintf(stderr, "fsync_writer: cannot read %s\n", input);
        return 1;
    }
    size_t size = (size_t)st.st_size;
    char *data = mmap(NULL, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, in, 0);
    if (data == MAP_FAILED) {
        perror("mmap");
        return 1;
    }

    /* Whole lines, at most batch_max bytes per batch (one longer line is a
     * batch of its own). */
    size_t cap = size / batch_max + 16;
    batches = calloc(cap, sizeof *batches);
    size_t start = 0, pos = 0, recs = 0;
    while (pos < size) {
        const char *nl = memchr(data + pos, '\n', size - pos);
        size_t end = nl ? (size_t)(nl - data) + 1 : size;
        if (end - start > batch_max && pos > start) {
            if (nbatches == cap) batches = realloc(batches, (cap *= 2) * sizeof *batches);
            batches[nbatches++] = (batch){data + start, pos - start, recs};
            start = pos;
            recs = 0;
        }
        recs++;
        pos = end;
    }
    if (pos > start) {
        if (nbatches == cap) batches = realloc(batches, (cap + 1) * sizeof *batches);
        batches[nbatches++] = (batch){data + start, pos - start, recs};
    }

    out_fd = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (out_fd < 0) {
        perror(output);
        return 1;
    }
    double t0 = now_s();
    deadline = t0 + seconds;
    pthread_t *tids = calloc((size_t)threads, sizeof *tids);
    for (int t = 0; t < threads; t++) pthread_create(&tids[t], NULL, writer_thread, NULL);
    for (int t = 0; t < threads; t++) pthread_join(tids[t], NULL);
    double elapsed = now_s() - t0;
    close(out_fd);
    unlink(output);

    uint64_t b = atomic_load(&bytes_done);
    printf("{\"threads\":%d,\"seconds\":%.3f,\"bytes\":%llu,\"batches\":%llu,\"records\":%llu,"
           "\"mb_s\":%.1f,\"records_s\":%.0f}\n",
           threads, elapsed, (unsigned long long)b, (unsigned long long)atomic_load(&batches_done),
           (unsigned long long)atomic_load(&records_done), (double)b / 1e6 / elapsed,
           (double)atomic_load(&records_done) / elapsed);
    return 0;
}
