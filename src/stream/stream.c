/* stream.c - the durable log: segment files of checksummed frames, group
 * commit, recovery, readers and trimming. The contract is in stream.h.
 *
 * ON-DISK FORMAT
 *
 * A stream is one directory of segment files. A segment is named after the
 * sequence number of the first record it holds (or will hold), in 20 decimal
 * digits: 00000000000000000001.log, 00000000000000052113.log, ... Only the
 * newest segment (the largest name) is ever written. A segment is created,
 * and the directory fsync'd, before any record goes into it, so the newest
 * name is a lower bound for the next sequence number even when that segment
 * is still empty. Other files in the directory are ignored.
 *
 * Every integer is little-endian and is written byte by byte (never by
 * copying a struct), so the format does not depend on the compiler or CPU.
 *
 * A segment starts with a 24-byte segment header:
 *
 *     0   8  magic: the bytes "TARNLOG" and a NUL
 *     8   4  format version, 1
 *    12   4  CRC-32C of bytes 0..11 followed by bytes 16..23
 *    16   8  base sequence number: the number in the file name
 *
 * Frames follow back to back, one per record. The newest segment may end in
 * zero bytes after its last frame (see ZERO-AHEAD); every other segment ends
 * with its last frame:
 *
 *     0   4  payload length L, at most 64 MiB (STREAM_RECORD_LIMIT)
 *     4   4  CRC-32C of the L payload bytes, followed by bytes 0..3 and
 *            8..23 of this header (length, sequence number, timestamp)
 *     8   8  sequence number (signed 64-bit, >= 1)
 *    16   8  timestamp: microseconds since 1970-01-01 UTC (signed 64-bit)
 *    24   L  payload
 *
 * The checksum runs over the payload first so that an appender can checksum
 * its payloads before it takes the lock and learns their sequence numbers;
 * only the 16 header bytes are folded in under the lock.
 *
 * A frame is valid when it lies entirely within the file, its length is at
 * most 64 MiB, its checksum matches, and its sequence number is one more
 * than that of the frame before it in the segment (the first frame of a
 * segment carries the segment's base number). Across segments, base numbers
 * strictly increase and each base is greater than the last sequence number
 * in the segment before. It is exactly one greater, except after the stream
 * was opened with a min_next_seq beyond its last record: the stream then
 * starts a new segment at min_next_seq, leaving a gap that readers skip.
 *
 * WRITING (group commit)
 *
 * tarn_stream_append_async checksums its payloads, takes the stream mutex,
 * assigns the next sequence numbers, writes the whole batch with pwritev at
 * the end of the newest segment (one call per 512 records, payloads are not
 * copied), advances written_seq, queues the caller's waiter and returns.
 * Each stream has one syncer thread: while anything written is not yet
 * durable it notes written_seq, drops the mutex, calls fdatasync, retakes
 * the mutex and publishes durable_seq; then it calls back every waiter that
 * fsync covered (without the mutex) and starts over. While it syncs, other
 * appenders keep writing; the next round covers them all with one
 * fdatasync. So one fdatasync serves every append that was written when it
 * started, and no appender's thread ever waits for the disk: the server's
 * HTTP threads go on with other connections, and the callback resumes the
 * request. tarn_stream_append is the same with a wait for the callback.
 *
 * A round that starts at once often covers too little: when the appends
 * of the last fsync were released together (16 clients, one record each),
 * the first of them to come back would be synced alone, and the other
 * fifteen would wait a whole fsync for the next round. So the syncer first
 * gathers: if the last fsync covered N appends, it waits (releasing the
 * mutex) until N appends are written and not yet covered, but no longer
 * than the last fsync took and never more than STREAM_GATHER_MAX_US. Under
 * a steady load a round then costs one fsync; when the load drops, an
 * append waits at most one extra fsync time, once, and the next round
 * expects fewer. A single appender (N = 1) never waits. Measured with wrk,
 * 16 connections and one record per request, against the same build
 * without the gather: about the same on a fast disk (0.2 ms fdatasync),
 * and ahead when fsync is slow (with 1 ms added to each: 5,800-6,600 against
 * 5,400-5,700 records/s), where the rounds without it split the clients
 * into two alternating groups of half the size.
 *
 * ZERO-AHEAD
 *
 * fdatasync after an append must also write the inode, since the file grew;
 * after an overwrite within the file it need not. On this project's ext4
 * (no journal, virtio disk) an append + fdatasync of 200 bytes took 0.19 ms
 * and an overwrite + fdatasync 0.13 ms. So when the appends of a group are
 * small (under STREAM_ZERO_SMALL bytes on average), the syncer, still
 * holding the mutex, extends the newest segment with STREAM_ZERO_CHUNK zero
 * bytes once fewer than STREAM_ZERO_LOW remain past the last frame; that
 * group's fdatasync makes them durable with it, and the following appends
 * overwrite zeros. Batched appends (1 MiB requests) never zero ahead: they
 * would write everything twice for nothing. A failed zero write is undone
 * with ftruncate and otherwise ignored (appends then grow the file as
 * before). Recovery takes an all-zero remainder of the newest segment as its
 * clean end; zeros in any other place are corruption like any other. When
 * the stream rolls, the old segment is cut back to its last frame first.
 *
 * When a batch would take the newest segment past segment_bytes (and that
 * segment already holds a frame) the stream rolls first, still under the
 * mutex: it cuts off its zero tail, fdatasyncs the old segment (so everything outside the newest
 * segment is always durable, and a syncer only ever syncs one file),
 * creates the new one with its header, fdatasyncs it and fsyncs the
 * directory. This stalls appenders for a few fsyncs once per segment.
 *
 * A write that fails with ENOSPC or EDQUOT is undone with ftruncate to the
 * segment's size before the batch; the batch's sequence numbers were never
 * published and are reused by the next batch, and the stream stays usable.
 * Any other write error, or any failed fsync, fails the stream for good:
 * after a failed fsync the kernel may have dropped the dirty pages, so what
 * is on disk is unknown until recovery reads it back at the next open.
 *
 * RECOVERY (tarn_stream_open)
 *
 * Every frame of every segment is checked; the segments are read side by
 * side, one per core (at most STREAM_RECOVERY_THREADS), then judged in name
 * order. The first problem found is "the corruption":
 *  - a torn or corrupt frame (short header, length over the limit or beyond
 *    the end of the file, wrong sequence number, checksum mismatch): the
 *    segment is truncated at the end of the last valid frame before it,
 *    unless the segment is the newest and everything from there to its end
 *    is zero bytes: that is the zero-ahead tail, the clean end of the log;
 *  - a missing, short or corrupt segment header: the segment is emptied and
 *    its header rewritten from its name (the name is authoritative);
 *  - a segment whose name is not above the last record of the previous
 *    segment: that segment is deleted.
 * Every segment after the corruption is deleted, even if its frames look
 * valid: the log is a prefix, and a record after a hole would break the
 * numbering consumers rely on. A warning states the file, the offset, the
 * reason and how many bytes were dropped. No valid frame before the
 * corruption is ever dropped. Every remaining record counts as durable (the
 * newest segment is fdatasync'd before open returns). The next sequence
 * number is the largest of: the last valid record + 1, min_next_seq, and the
 * newest segment's name.
 *
 * READING
 *
 * A reader opens segment files by name and reads them with pread through a
 * buffer of 256 KiB (more for a larger record, at most the record limit). It
 * never reads past durable_seq as it was when the record was requested, so it
 * can follow the newest segment while appends continue. Segments deleted by
 * tarn_stream_trim stay readable through an already open descriptor; records
 * that were trimmed before the reader got to them are skipped (the reader
 * continues at the oldest record still kept), as are gaps in the numbering.
 *
 * MEMORY
 *
 * Per stream: fixed arrays for one pwritev (512 frame headers and 1024
 * iovecs, about 28 KiB) and a table with 16 bytes per segment. Per append:
 * 4 bytes of checksum per record (on the stack for up to 64 records). Per
 * reader and during recovery: one read buffer, at most 64 MiB + 24 bytes.
 */
#include "stream.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "crc32c.h"
#include "stream_test.h"

#define STREAM_SEG_HDR 24
#define STREAM_FRAME_HDR 24
#define STREAM_VERSION 1
/* The format's largest payload, whatever max_record says, so that a stream
 * written with a larger max_record still recovers after it is lowered. */
#define STREAM_RECORD_LIMIT ((size_t)64 << 20)
#define STREAM_DEFAULT_SEGMENT ((size_t)64 << 20)
#define STREAM_DEFAULT_RECORD ((size_t)1 << 20)
#define STREAM_IOV_RECORDS 512 /* two iovecs per record: IOV_MAX is 1024 */
#define STREAM_READ_CHUNK ((size_t)256 << 10)
/* The longest a syncer gathers appends before its fdatasync (see WRITING). */
#define STREAM_GATHER_MAX_US 1000
/* Zero-ahead (see ZERO-AHEAD): extend by CHUNK when fewer than LOW bytes of
 * zeros remain, for groups whose appends average under SMALL bytes. */
#define STREAM_ZERO_CHUNK ((uint64_t)1 << 20)
#define STREAM_ZERO_LOW ((uint64_t)256 << 10)
#define STREAM_ZERO_SMALL ((int64_t)16 << 10)

static const unsigned char stream_zeros[64 << 10];
#define STREAM_STACK_CRCS 64
#define STREAM_NAME_MAX 32 /* 20 digits, ".log", NUL */
#define STREAM_RECOVERY_THREADS 4 /* reading segments at open, at most */
#define STREAM_COMPONENT "stream"
#define STREAM_SYNCER_STACK ((size_t)256 << 10)

static const unsigned char stream_magic[8] = {'T', 'A', 'R', 'N', 'L', 'O', 'G', '\0'};

/* An open segment file. Shared by the stream (while it is the newest) and a
 * syncer (while it fsyncs it); refs is guarded by the stream's mutex and the
 * last unref closes the descriptor. */
typedef struct stream_seg {
    int fd;
    int refs;
    int64_t base;
} stream_seg;

/* What the stream knows of each segment on disk, oldest first. last is the
 * last sequence number written to it (base - 1 while it is empty). */
typedef struct stream_seginfo {
    int64_t base;
    int64_t last;
} stream_seginfo;

/* A read buffer over one file: data[0..len) holds the bytes at file offset
 * off. Grows up to max. Owned by whoever embeds it. */
typedef struct stream_rbuf {
    unsigned char *data;
    size_t cap;
    size_t max;
    uint64_t off;
    size_t len;
    unsigned long fills; /* counts refills, so a reader knows when it read */
} stream_rbuf;

struct tarn_stream {
    char *dir;
    int dirfd; /* holds the flock that keeps a second opener out */
    size_t segment_bytes;
    size_t max_record;

    pthread_mutex_t mu;
    /* durable_seq and durable_bytes as last published, for lock-free stats. */
    _Atomic int64_t durable_pub, durable_bytes_pub;
    /* Wakes the syncer thread, idle or gathering (CLOCK_MONOTONIC). */
    pthread_cond_t sync_cv;
    pthread_t syncer;
    int syncer_started;

    /* Everything below is guarded by mu. */
    stream_seg *active; /* the newest segment, the only one written */
    uint64_t active_size; /* end of its last frame: where the next append goes */
    uint64_t file_size;   /* its size, zero-ahead tail included */
    stream_seginfo *segs;
    size_t nsegs, segs_cap;
    int64_t next_seq;
    int64_t written_seq, written_bytes; /* in the file, maybe not yet durable */
    int64_t durable_seq, durable_bytes; /* fdatasync'd (or recovered) */
    tarn_stream_waiter *waiters, *waiters_tail; /* appends not yet durable, in order */
    int syncer_idle;                    /* the syncer thread waits for anything to do */
    int gathering;                      /* the syncer waits for gather_want appends */
    int64_t uncovered;                  /* appends written since the last fsync started */
    int64_t gather_want;                /* appends the last fsync covered */
    int64_t last_sync_us;               /* how long the last fdatasync took */
    int failed;
    int closing;
    char fail_msg[256];
    unsigned char hdrs[STREAM_IOV_RECORDS][STREAM_FRAME_HDR];
    struct iovec iov[2 * STREAM_IOV_RECORDS];

    /* Test hooks (stream_test.h), also guarded by mu. */
    int inject_fsync_errno;
    int inject_write_errno;
    int fsync_delay_us;
    uint64_t fsync_count;
};

struct tarn_stream_reader {
    tarn_stream *s;
    int64_t pos;      /* last sequence number returned or skipped */
    int64_t readable; /* pos + 1 .. readable are durable and in the open segment */
    int fd;           /* the open segment, or -1 */
    int64_t seg_base;
    uint64_t off;        /* file offset of the next frame */
    int64_t off_seq;     /* sequence number the frame at off must carry */
    stream_rbuf rb;
    int64_t rb_limit; /* frames numbered up to this were complete when rb was filled */
};

/* ---- byte encoding ---- */

static void stream_put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void stream_put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t stream_get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static uint64_t stream_get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static void stream_seg_header_encode(unsigned char *h, int64_t base)
{
    memcpy(h, stream_magic, 8);
    stream_put_u32(h + 8, STREAM_VERSION);
    stream_put_u64(h + 16, (uint64_t)base);
    uint32_t crc = tarn_crc32c(0, h, 12);
    stream_put_u32(h + 12, tarn_crc32c(crc, h + 16, 8));
}

/* Returns NULL if h is a valid header for segment base, else the reason
 * (a static string). */
static const char *stream_seg_header_check(const unsigned char *h, int64_t base)
{
    if (memcmp(h, stream_magic, 8) != 0) return "bad magic";
    uint32_t crc = tarn_crc32c(tarn_crc32c(0, h, 12), h + 16, 8);
    if (crc != stream_get_u32(h + 12)) return "header checksum mismatch";
    if (stream_get_u32(h + 8) != STREAM_VERSION) return "unknown format version";
    if ((int64_t)stream_get_u64(h + 16) != base) return "base sequence number differs from the file name";
    return NULL;
}

/* Fills the frame header h; payload_crc is tarn_crc32c(0, payload, len). */
static void stream_frame_encode(unsigned char *h, uint32_t len, uint32_t payload_crc, int64_t seq, int64_t ts_us)
{
    stream_put_u32(h, len);
    stream_put_u64(h + 8, (uint64_t)seq);
    stream_put_u64(h + 16, (uint64_t)ts_us);
    uint32_t crc = tarn_crc32c(payload_crc, h, 4);
    stream_put_u32(h + 4, tarn_crc32c(crc, h + 8, 16));
}

/* The checksum a complete frame f (header then payload) should carry. */
static uint32_t stream_frame_crc(const unsigned char *f)
{
    uint32_t len = stream_get_u32(f);
    uint32_t crc = tarn_crc32c(0, f + STREAM_FRAME_HDR, len);
    crc = tarn_crc32c(crc, f, 4);
    return tarn_crc32c(crc, f + 8, 16);
}

static void stream_seg_name(char *out, int64_t base)
{
    snprintf(out, STREAM_NAME_MAX, "%020lld.log", (long long)base);
}

/* Parses a segment file name; returns its base or 0 if it is not one. */
static int64_t stream_seg_parse_name(const char *name)
{
    if (strlen(name) != 24 || strcmp(name + 20, ".log") != 0) return 0;
    uint64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9') return 0;
        if (v > (uint64_t)INT64_MAX / 10) return 0;
        v = v * 10 + (uint64_t)(name[i] - '0');
    }
    return v > (uint64_t)INT64_MAX ? 0 : (int64_t)v;
}


/* ---- read buffer ---- */

static void stream_rbuf_init(stream_rbuf *rb, size_t max)
{
    memset(rb, 0, sizeof *rb);
    rb->max = max;
}

static void stream_rbuf_free(stream_rbuf *rb)
{
    free(rb->data);
    rb->data = NULL;
    rb->cap = rb->len = 0;
}

/* Makes the n bytes at file offset off of fd available and points *out at
 * them (inside rb, valid until the next call). Returns 1, 0 if the file ends
 * before off + n, TARN_ENOMEM, or -1 with errno set by pread. */
static int stream_rbuf_get(stream_rbuf *rb, int fd, uint64_t off, size_t n, const unsigned char **out)
{
    if (off >= rb->off && off - rb->off <= rb->len && n <= rb->len - (off - rb->off)) {
        *out = rb->data + (off - rb->off);
        return 1;
    }
    if (n > rb->max) {
        errno = EFBIG;
        return -1;
    }
    size_t want = n > STREAM_READ_CHUNK ? n : STREAM_READ_CHUNK;
    if (want > rb->max) want = rb->max;
    if (rb->cap < want) {
        /* The old contents are about to be replaced, so no realloc copy. */
        free(rb->data);
        rb->cap = rb->len = 0;
        rb->data = malloc(want);
        if (!rb->data) return TARN_ENOMEM;
        rb->cap = want;
    }
    rb->off = off;
    rb->len = 0;
    rb->fills++;
    while (rb->len < rb->cap) {
        ssize_t r = pread(fd, rb->data + rb->len, rb->cap - rb->len, (off_t)(off + rb->len));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            rb->len = 0;
            return -1;
        }
        if (r == 0) break;
        rb->len += (size_t)r;
    }
    if (rb->len < n) return 0;
    *out = rb->data;
    return 1;
}

/* ---- segments ---- */

/* Drops one reference; the last one closes the file. mu held (or s not yet
 * shared). */
static void stream_seg_unref(stream_seg *seg)
{
    if (!seg || --seg->refs > 0) return;
    close(seg->fd);
    free(seg);
}

static int stream_segs_reserve(tarn_stream *s)
{
    if (s->nsegs < s->segs_cap) return TARN_OK;
    size_t cap = s->segs_cap ? s->segs_cap * 2 : 16;
    stream_seginfo *p = realloc(s->segs, cap * sizeof *p);
    if (!p) return TARN_ENOMEM;
    s->segs = p;
    s->segs_cap = cap;
    return TARN_OK;
}

/* Index of the first segment holding a record numbered >= seq, or nsegs.
 * Valid because last never decreases along the table. mu held. */
static size_t stream_segs_find(const tarn_stream *s, int64_t seq)
{
    size_t lo = 0, hi = s->nsegs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->segs[mid].last >= seq) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

/* fdatasync (fsync for a directory) unless a test asked this one to fail.
 * mu held, or s not yet shared. */
static int stream_sync_locked(tarn_stream *s, int fd, int is_dir)
{
    if (s->inject_fsync_errno) {
        errno = s->inject_fsync_errno;
        s->inject_fsync_errno = 0;
        return -1;
    }
    return is_dir ? fsync(fd) : fdatasync(fd);
}

/* Marks the stream failed (for good) with a reason every later append
 * reports, and wakes the waiters so they see it. mu held. */
/* Publishes durable_seq (or a failure): the stats see it at once, and the
 * syncer thread completes the waiters it covers. mu held. */
static void stream_durable_moved(tarn_stream *s)
{
    atomic_store(&s->durable_bytes_pub, s->durable_bytes);
    atomic_store(&s->durable_pub, s->durable_seq);
    if (s->syncer_idle) pthread_cond_signal(&s->sync_cv);
}

static void stream_fail(tarn_stream *s, const char *fmt, ...) TARN_PRINTF(2, 3);
static void stream_fail(tarn_stream *s, const char *fmt, ...)
{
    if (!s->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->fail_msg, sizeof s->fail_msg, fmt, ap);
        va_end(ap);
        s->failed = 1;
        tarn_log_error(STREAM_COMPONENT, "%s: %s; the stream refuses every further append", s->dir, s->fail_msg);
    }
    stream_durable_moved(s);
    pthread_cond_signal(&s->sync_cv); /* a gathering syncer stops */
}

/* Creates segment base with its header and makes file and directory entry
 * durable. On success *out holds one reference owned by the caller. On
 * failure the file is removed if possible; TARN_ENOSPC means nothing changed
 * for good, anything else leaves the stream in doubt. mu held (or s not yet
 * shared). */
static int stream_seg_create(tarn_stream *s, int64_t base, stream_seg **out, tarn_errbuf *eb)
{
    char name[STREAM_NAME_MAX];
    unsigned char h[STREAM_SEG_HDR];
    int rc = TARN_OK, e;
    stream_seg_name(name, base);
    stream_seg_header_encode(h, base);
    /* O_TRUNC, not O_EXCL: a file with this name can only be a leftover of
     * a creation that failed, since nothing was ever numbered this high. */
    int fd = openat(s->dirfd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        e = errno;
        return tarn_errbuf_set(eb, tarn_err_from_write_errno(e), "create %s/%s: %s", s->dir, name, strerror(e));
    }
    size_t done = 0;
    while (done < sizeof h) {
        ssize_t w = pwrite(fd, h + done, sizeof h - done, (off_t)done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            e = w < 0 ? errno : EIO;
            rc = tarn_errbuf_set(eb, tarn_err_from_write_errno(e), "write header of %s/%s: %s", s->dir, name, strerror(e));
            goto remove_file;
        }
        done += (size_t)w;
    }
    if (stream_sync_locked(s, fd, 0) != 0) {
        e = errno;
        rc = tarn_errbuf_set(eb, TARN_EIO, "fdatasync %s/%s: %s", s->dir, name, strerror(e));
        goto remove_file;
    }
    if (stream_sync_locked(s, s->dirfd, 1) != 0) {
        e = errno;
        rc = tarn_errbuf_set(eb, TARN_EIO, "fsync directory %s: %s", s->dir, strerror(e));
        goto remove_file;
    }
    stream_seg *seg = malloc(sizeof *seg);
    if (!seg) {
        rc = tarn_errbuf_set(eb, TARN_ENOMEM, "out of memory creating segment %s", name);
        goto remove_file;
    }
    seg->fd = fd;
    seg->refs = 1;
    seg->base = base;
    *out = seg;
    return TARN_OK;

remove_file:
    close(fd);
    unlinkat(s->dirfd, name, 0);
    return rc;
}

/* Starts a new newest segment at next_seq (see WRITING). On TARN_ENOSPC or
 * TARN_ENOMEM the stream is unchanged and usable; on TARN_EIO it is failed.
 * mu held. */
static int stream_roll(tarn_stream *s, tarn_errbuf *eb)
{
    char name[STREAM_NAME_MAX];
    int rc = stream_segs_reserve(s);
    if (rc) return tarn_errbuf_set(eb, rc, "out of memory rolling segment in %s", s->dir);
    int cut_tail = s->file_size > s->active_size;
    if (cut_tail && ftruncate(s->active->fd, (off_t)s->active_size) != 0) {
        int e = errno;
        stream_seg_name(name, s->active->base);
        stream_fail(s, "cutting the zero tail of %s/%s: %s", s->dir, name, strerror(e));
        return tarn_errbuf_set(eb, TARN_EIO, "%s", s->fail_msg);
    }
    s->file_size = s->active_size;
    if (s->written_seq > s->durable_seq || cut_tail) {
        if (stream_sync_locked(s, s->active->fd, 0) != 0) {
            int e = errno;
            stream_seg_name(name, s->active->base);
            stream_fail(s, "fdatasync %s/%s: %s", s->dir, name, strerror(e));
            return tarn_errbuf_set(eb, TARN_EIO, "%s", s->fail_msg);
        }
        s->durable_seq = s->written_seq;
        s->durable_bytes = s->written_bytes;
        stream_durable_moved(s);
    }
    tarn_errbuf local;
    stream_seg *seg = NULL;
    rc = stream_seg_create(s, s->next_seq, &seg, &local);
    if (rc == TARN_ENOSPC || rc == TARN_ENOMEM) return tarn_errbuf_set(eb, rc, "%s", local.msg);
    if (rc) {
        stream_fail(s, "%s", local.msg);
        return tarn_errbuf_set(eb, TARN_EIO, "%s", s->fail_msg);
    }
    s->segs[s->nsegs].base = s->next_seq;
    s->segs[s->nsegs].last = s->next_seq - 1;
    s->nsegs++;
    stream_seg_unref(s->active);
    s->active = seg;
    s->active_size = s->file_size = STREAM_SEG_HDR;
    return TARN_OK;
}

/* ---- recovery ---- */

typedef struct stream_scan {
    uint64_t valid_end; /* offset just past the last valid frame */
    int64_t last;       /* its sequence number, base - 1 if none */
    int64_t bytes;      /* payload bytes of the valid frames */
    char why[160];      /* empty if the whole file is valid */
} stream_scan;

/* 1 if bytes off..size of fd are all zero, 0 if not, -1 on a read error. */
static int stream_zero_from(int fd, uint64_t off, uint64_t size)
{
    unsigned char buf[64 << 10];
    while (off < size) {
        size_t want = size - off < sizeof buf ? (size_t)(size - off) : sizeof buf;
        ssize_t n = pread(fd, buf, want, (off_t)off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        if (memcmp(buf, stream_zeros, (size_t)n) != 0) return 0;
        off += (uint64_t)n;
    }
    return 1;
}

/* Checks every frame of one segment (see RECOVERY). If newest, an all-zero
 * remainder after the last valid frame is the segment's clean end. Returns 0
 * with the outcome in *out, or an error if the file cannot be read. */
static int stream_scan_segment(tarn_stream *s, int fd, const char *name, int64_t base, uint64_t size, int newest,
                               stream_rbuf *rb, stream_scan *out, tarn_errbuf *eb)
{
    uint64_t off = STREAM_SEG_HDR;
    int64_t expect = base;
    const unsigned char *f;
    int r;
    out->last = base - 1;
    out->bytes = 0;
    out->why[0] = '\0';
    rb->len = 0;
    while (off < size) {
        if (size - off < STREAM_FRAME_HDR) {
            snprintf(out->why, sizeof out->why, "torn frame header (%llu bytes)", (unsigned long long)(size - off));
            break;
        }
        r = stream_rbuf_get(rb, fd, off, STREAM_FRAME_HDR, &f);
        if (r <= 0) goto read_error;
        uint32_t len = stream_get_u32(f);
        int64_t seq = (int64_t)stream_get_u64(f + 8);
        if (len > STREAM_RECORD_LIMIT) {
            snprintf(out->why, sizeof out->why, "length %u over the format's limit", len);
            break;
        }
        if (len > size - off - STREAM_FRAME_HDR) {
            snprintf(out->why, sizeof out->why, "torn frame (%u payload bytes, %llu present)", len,
                     (unsigned long long)(size - off - STREAM_FRAME_HDR));
            break;
        }
        if (seq != expect) {
            snprintf(out->why, sizeof out->why, "sequence number %lld where %lld was expected", (long long)seq,
                     (long long)expect);
            break;
        }
        r = stream_rbuf_get(rb, fd, off, STREAM_FRAME_HDR + (size_t)len, &f);
        if (r <= 0) goto read_error;
        if (stream_frame_crc(f) != stream_get_u32(f + 4)) {
            snprintf(out->why, sizeof out->why, "checksum mismatch in record %lld", (long long)seq);
            break;
        }
        off += STREAM_FRAME_HDR + (uint64_t)len;
        out->last = seq;
        out->bytes += len;
        expect++;
    }
    out->valid_end = off;
    if (out->why[0] && newest) {
        r = stream_zero_from(fd, off, size);
        if (r < 0) goto read_error;
        if (r == 1) out->why[0] = '\0';
    }
    return TARN_OK;

read_error:
    if (r == TARN_ENOMEM) return tarn_errbuf_set(eb, TARN_ENOMEM, "out of memory reading %s/%s", s->dir, name);
    return tarn_errbuf_set(eb, TARN_EIO, "read %s/%s at offset %llu: %s", s->dir, name, (unsigned long long)off,
                           r == 0 ? "file shrank while being read" : strerror(errno));
}

static int stream_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Lists the segment bases in the stream directory, sorted. *out is malloc'd
 * and owned by the caller (NULL when there are none). */
static int stream_list_segments(tarn_stream *s, int64_t **out, size_t *n, tarn_errbuf *eb)
{
    int64_t *v = NULL;
    size_t len = 0, cap = 0;
    int rc = TARN_OK;
    *out = NULL;
    *n = 0;
    DIR *d = opendir(s->dir);
    if (!d) return tarn_errbuf_set(eb, TARN_EIO, "open directory %s: %s", s->dir, strerror(errno));
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        int64_t base = stream_seg_parse_name(de->d_name);
        if (base <= 0) continue;
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            int64_t *p = realloc(v, ncap * sizeof *p);
            if (!p) {
                rc = tarn_errbuf_set(eb, TARN_ENOMEM, "out of memory listing %s", s->dir);
                goto close_dir;
            }
            v = p;
            cap = ncap;
        }
        v[len++] = base;
    }
    if (len) qsort(v, len, sizeof *v, stream_cmp_i64);
    *out = v;
    *n = len;
    v = NULL;

close_dir:
    closedir(d);
    free(v);
    return rc;
}

/* Applies the cut found by recovery: segment i is truncated at off (0:
 * emptied and re-headed; UINT64_MAX: deleted) and every later segment is
 * deleted. bases[0..n) are the segments found. */
static int stream_cut(tarn_stream *s, const int64_t *bases, size_t n, size_t i, uint64_t off, const char *why,
                      tarn_errbuf *eb)
{
    char name[STREAM_NAME_MAX];
    struct stat st;
    uint64_t dropped = 0;
    int fd = -1, rc = TARN_OK, e;
    for (size_t j = i; j < n; j++) {
        stream_seg_name(name, bases[j]);
        if (fstatat(s->dirfd, name, &st, 0) == 0) dropped += (uint64_t)st.st_size;
    }
    stream_seg_name(name, bases[i]);
    if (off != UINT64_MAX) dropped -= off;
    tarn_log_warn(STREAM_COMPONENT, "%s/%s: %s at offset %llu; dropping %llu bytes from there on (%zu later segments)",
                  s->dir, name, why, (unsigned long long)(off == UINT64_MAX ? 0 : off),
                  (unsigned long long)dropped, n - i - 1);
    if (off == UINT64_MAX) {
        if (unlinkat(s->dirfd, name, 0) != 0 && errno != ENOENT) goto io_error;
    } else {
        fd = openat(s->dirfd, name, O_RDWR | O_CLOEXEC);
        if (fd < 0) goto io_error;
        if (off == 0) {
            unsigned char h[STREAM_SEG_HDR];
            stream_seg_header_encode(h, bases[i]);
            errno = 0; /* a short pwrite sets none */
            if (ftruncate(fd, 0) != 0 || pwrite(fd, h, sizeof h, 0) != (ssize_t)sizeof h) goto io_error;
        } else if (ftruncate(fd, (off_t)off) != 0) {
            goto io_error;
        }
        if (fdatasync(fd) != 0) goto io_error;
    }
    for (size_t j = i + 1; j < n; j++) {
        stream_seg_name(name, bases[j]);
        if (unlinkat(s->dirfd, name, 0) != 0 && errno != ENOENT) goto io_error;
    }
    if (fsync(s->dirfd) != 0) {
        e = errno;
        snprintf(name, sizeof name, "(directory)");
        errno = e;
        goto io_error;
    }
    goto close_fd;

io_error:
    e = errno ? errno : EIO;
    rc = tarn_errbuf_set(eb, tarn_err_from_write_errno(e), "recovering %s/%s: %s", s->dir, name, strerror(e));
close_fd:
    if (fd >= 0) close(fd);
    return rc;
}

/* What recovery reads of one segment, read ahead of the decisions (which
 * stay in segment order in stream_recover): its header, then every frame. */
typedef struct stream_seg_read {
    int64_t base;
    int newest;
    int rc;             /* TARN_OK, or the file could not be read (eb) */
    tarn_errbuf eb;
    const char *bad;    /* the header's problem, or NULL */
    stream_scan sc;     /* the frames, if the header is good */
} stream_seg_read;

static void stream_read_segment(tarn_stream *s, stream_rbuf *rb, stream_seg_read *r)
{
    char name[STREAM_NAME_MAX];
    const unsigned char *h;
    struct stat st;
    stream_seg_name(name, r->base);
    int fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        r->rc = tarn_errbuf_set(&r->eb, TARN_EIO, "open %s/%s: %s", s->dir, name, strerror(errno));
        if (fd >= 0) close(fd);
        return;
    }
    uint64_t size = (uint64_t)st.st_size;
    rb->len = 0; /* what it holds came from another file */
    int got = size < STREAM_SEG_HDR ? 0 : stream_rbuf_get(rb, fd, 0, STREAM_SEG_HDR, &h);
    if (got < 0) {
        r->rc = tarn_errbuf_set(&r->eb, got == TARN_ENOMEM ? TARN_ENOMEM : TARN_EIO, "read %s/%s: %s", s->dir, name,
                                strerror(errno));
    } else {
        r->bad = got == 0 ? "torn segment header" : stream_seg_header_check(h, r->base);
        if (!r->bad) r->rc = stream_scan_segment(s, fd, name, r->base, size, r->newest, rb, &r->sc, &r->eb);
    }
    close(fd);
}

/* Segments read ahead by a recovery, shared by its threads. */
typedef struct stream_reads {
    tarn_stream *s;
    stream_seg_read *segs;
    size_t n;
    atomic_size_t next;
} stream_reads;

static void *stream_reads_main(void *arg)
{
    stream_reads *w = arg;
    stream_rbuf rb;
    stream_rbuf_init(&rb, STREAM_RECORD_LIMIT + STREAM_FRAME_HDR);
    for (size_t i; (i = atomic_fetch_add(&w->next, 1)) < w->n;) stream_read_segment(w->s, &rb, &w->segs[i]);
    stream_rbuf_free(&rb);
    return NULL;
}

/* Reads every segment: on up to STREAM_RECOVERY_THREADS threads (one per
 * core) taking the next segment in turn, the caller among them. Reading
 * and checking a 64 MiB segment takes about 20 ms on one core, so a log
 * of several segments (a backlog at restart) recovers that many times
 * faster. Segments after a corruption are read for nothing: recovery
 * deletes them (see RECOVERY). */
static void stream_read_segments(tarn_stream *s, stream_seg_read *segs, size_t n)
{
    stream_reads w = {s, segs, n, 0};
    pthread_t th[STREAM_RECOVERY_THREADS - 1];
    size_t nth = 0;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    size_t want = cores > 1 ? (size_t)cores : 1;
    if (want > STREAM_RECOVERY_THREADS) want = STREAM_RECOVERY_THREADS;
    if (want > n) want = n;
    while (nth + 1 < want && pthread_create(&th[nth], NULL, stream_reads_main, &w) == 0) nth++;
    stream_reads_main(&w);
    for (size_t i = 0; i < nth; i++) pthread_join(th[i], NULL);
}

/* Scans and repairs the segments, fills the segment table, opens or creates
 * the newest segment and sets the counters (see RECOVERY). Runs before s is
 * shared. */
static int stream_recover(tarn_stream *s, int64_t min_next_seq, tarn_errbuf *eb)
{
    char name[STREAM_NAME_MAX];
    int64_t *bases = NULL;
    stream_seg_read *reads = NULL;
    size_t n = 0, kept;
    int rc, fd = -1;
    int64_t recovered_bytes = 0, recovered_records = 0;
    size_t cut = SIZE_MAX;
    uint64_t cut_off = 0, newest_end = 0;
    char why[200] = "";

    rc = stream_list_segments(s, &bases, &n, eb);
    if (rc) goto done;
    s->segs = calloc(n + 1, sizeof *s->segs);
    if (!s->segs) {
        rc = tarn_errbuf_set(eb, TARN_ENOMEM, "out of memory opening %s", s->dir);
        goto done;
    }
    s->segs_cap = n + 1;

    if (n > 0) {
        if (!(reads = calloc(n, sizeof *reads))) {
            rc = tarn_errbuf_set(eb, TARN_ENOMEM, "out of memory opening %s", s->dir);
            goto done;
        }
        for (size_t i = 0; i < n; i++) {
            reads[i].base = bases[i];
            reads[i].newest = i == n - 1;
        }
        stream_read_segments(s, reads, n);
    }

    for (size_t i = 0; i < n; i++) {
        if (i > 0 && bases[i] <= s->segs[i - 1].last) {
            cut = i;
            cut_off = UINT64_MAX;
            snprintf(why, sizeof why, "segment starts at or below record %lld of the segment before",
                     (long long)s->segs[i - 1].last);
            break;
        }
        if (reads[i].rc) {
            rc = tarn_errbuf_set(eb, reads[i].rc, "%s", reads[i].eb.msg);
            goto done;
        }
        if (reads[i].bad) {
            cut = i;
            cut_off = 0;
            snprintf(why, sizeof why, "%s", reads[i].bad);
            break;
        }
        const stream_scan *sc = &reads[i].sc;
        s->segs[i].base = bases[i];
        s->segs[i].last = sc->last;
        s->nsegs = i + 1;
        recovered_bytes += sc->bytes;
        recovered_records += sc->last - bases[i] + 1;
        newest_end = sc->valid_end;
        if (sc->why[0]) {
            cut = i;
            cut_off = sc->valid_end;
            snprintf(why, sizeof why, "%s", sc->why);
            break;
        }
    }
    kept = s->nsegs;
    if (cut != SIZE_MAX) {
        rc = stream_cut(s, bases, n, cut, cut_off, why, eb);
        if (rc) goto done;
        if (cut_off == 0) { /* re-headed: kept, now empty */
            s->segs[cut].base = bases[cut];
            s->segs[cut].last = bases[cut] - 1;
            kept = s->nsegs = cut + 1;
        }
    }

    int64_t next = 1;
    if (min_next_seq > next) next = min_next_seq;
    if (kept > 0) {
        if (s->segs[kept - 1].base > next) next = s->segs[kept - 1].base;
        if (s->segs[kept - 1].last + 1 > next) next = s->segs[kept - 1].last + 1;
    }
    s->next_seq = next;
    s->written_seq = s->durable_seq = next - 1;
    atomic_store(&s->durable_pub, s->durable_seq);
    atomic_store(&s->durable_bytes_pub, recovered_bytes);
    s->written_bytes = s->durable_bytes = recovered_bytes;

    if (kept > 0 && s->segs[kept - 1].last + 1 == next) {
        /* Continue in the newest segment; what it holds now counts as
         * durable, so make it so (a crash may have left it unsynced). */
        stream_seg_name(name, s->segs[kept - 1].base);
        struct stat st;
        fd = openat(s->dirfd, name, O_RDWR | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) != 0 || fdatasync(fd) != 0) {
            rc = tarn_errbuf_set(eb, TARN_EIO, "open %s/%s: %s", s->dir, name, strerror(errno));
            goto done;
        }
        s->active = malloc(sizeof *s->active);
        if (!s->active) {
            rc = tarn_errbuf_set(eb, TARN_ENOMEM, "out of memory opening %s", s->dir);
            goto done;
        }
        s->active->fd = fd;
        s->active->refs = 1;
        s->active->base = s->segs[kept - 1].base;
        /* A cut segment now ends at its last frame; an uncut newest one may
         * go on in zeros (see ZERO-AHEAD). */
        s->active_size = cut != SIZE_MAX ? (uint64_t)st.st_size : newest_end;
        s->file_size = (uint64_t)st.st_size;
        fd = -1;
    } else {
        /* No segment, or min_next_seq jumps past the newest: start a segment
         * at next. An empty newest segment it replaces is removed after the
         * new one is durable (a crash in between leaves a harmless empty
         * segment). */
        int drop_empty = kept > 0 && s->segs[kept - 1].last < s->segs[kept - 1].base;
        if (kept > 0 && !drop_empty) {
            /* It stops being the newest: no zero tail may stay (see
             * RECOVERY). */
            stream_seg_name(name, s->segs[kept - 1].base);
            fd = openat(s->dirfd, name, O_RDWR | O_CLOEXEC);
            struct stat st;
            if (fd >= 0 && cut == SIZE_MAX && fstat(fd, &st) == 0 && (uint64_t)st.st_size > newest_end &&
                ftruncate(fd, (off_t)newest_end) != 0) {
                rc = tarn_errbuf_set(eb, TARN_EIO, "cutting the zero tail of %s/%s: %s", s->dir, name,
                                     strerror(errno));
                goto done;
            }
            if (fd < 0 || fdatasync(fd) != 0) {
                rc = tarn_errbuf_set(eb, TARN_EIO, "fdatasync %s/%s: %s", s->dir, name, strerror(errno));
                goto done;
            }
            close(fd);
            fd = -1;
        }
        rc = stream_seg_create(s, next, &s->active, eb);
        if (rc) goto done;
        s->active_size = s->file_size = STREAM_SEG_HDR;
        if (drop_empty) {
            stream_seg_name(name, s->segs[kept - 1].base);
            if (unlinkat(s->dirfd, name, 0) == 0) fsync(s->dirfd);
            kept--;
        }
        s->segs[kept].base = next;
        s->segs[kept].last = next - 1;
        kept++;
        s->nsegs = kept;
    }
    if (recovered_records > 0 || cut != SIZE_MAX)
        tarn_log_info(STREAM_COMPONENT, "%s: recovered %lld records (%lld bytes) in %zu segments; next sequence %lld",
                      s->dir, (long long)recovered_records, (long long)recovered_bytes, s->nsegs, (long long)next);

done:
    if (fd >= 0) close(fd);
    free(reads);
    free(bases);
    return rc;
}

/* ---- open / close ---- */

static void *stream_syncer_main(void *arg);

int tarn_stream_open(const char *dir, const tarn_stream_opts *opts, tarn_stream **out, tarn_errbuf *eb)
{
    tarn_stream_opts o = {0};
    int rc;
    *out = NULL;
    if (opts) o = *opts;
    if (o.segment_bytes == 0) o.segment_bytes = STREAM_DEFAULT_SEGMENT;
    if (o.max_record == 0) o.max_record = STREAM_DEFAULT_RECORD;
    if (o.max_record > STREAM_RECORD_LIMIT)
        return tarn_errbuf_set(eb, TARN_EINVAL, "max_record %zu is over the limit of %zu bytes", o.max_record,
                               STREAM_RECORD_LIMIT);
    if (o.min_next_seq < 0) return tarn_errbuf_set(eb, TARN_EINVAL, "min_next_seq must not be negative");

    tarn_stream *s = calloc(1, sizeof *s);
    if (!s) return tarn_errbuf_set(eb, TARN_ENOMEM, "out of memory opening stream %s", dir);
    s->dirfd = -1;
    s->segment_bytes = o.segment_bytes;
    s->max_record = o.max_record;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->sync_cv, &ca);
    pthread_condattr_destroy(&ca);
    s->dir = strdup(dir);
    if (!s->dir) {
        rc = tarn_errbuf_set(eb, TARN_ENOMEM, "out of memory opening stream %s", dir);
        goto fail;
    }
    rc = tarn_mkdir_p(dir, eb);
    if (rc) goto fail;
    /* A newly made directory must itself survive a crash. */
    rc = tarn_fsync_parent(dir, eb);
    if (rc) goto fail;
    s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dirfd < 0) {
        rc = tarn_errbuf_set(eb, TARN_EIO, "open directory %s: %s", dir, strerror(errno));
        goto fail;
    }
    /* Two writers on one log would interleave frames: refuse the second. */
    if (flock(s->dirfd, LOCK_EX | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK
                 ? tarn_errbuf_set(eb, TARN_ECONFLICT, "stream %s is already open", dir)
                 : tarn_errbuf_set(eb, TARN_EIO, "lock %s: %s", dir, strerror(errno));
        goto fail;
    }
    rc = stream_recover(s, o.min_next_seq, eb);
    if (rc) goto fail;
    pthread_attr_t ta;
    pthread_attr_init(&ta);
    pthread_attr_setstacksize(&ta, STREAM_SYNCER_STACK);
    int e = pthread_create(&s->syncer, &ta, stream_syncer_main, s);
    pthread_attr_destroy(&ta);
    if (e != 0) {
        rc = tarn_errbuf_set(eb, TARN_ENOMEM, "cannot start the syncer thread of %s: %s", dir, strerror(e));
        goto fail;
    }
    s->syncer_started = 1;
    *out = s;
    return TARN_OK;

fail:
    tarn_stream_close(s);
    return rc;
}

/* Frees s. No other call on s may run or follow, and every reader must be
 * closed first. The syncer thread first makes everything written durable
 * and completes every waiter. */
void tarn_stream_close(tarn_stream *s)
{
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->closing = 1;
    if (s->syncer_started) {
        pthread_cond_signal(&s->sync_cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->syncer, NULL);
        pthread_mutex_lock(&s->mu);
    }
    /* Leave the newest segment ending at its last frame. Nothing needs
     * syncing: if the cut is lost, recovery reads the zeros as the end. */
    if (s->active && s->file_size > s->active_size && ftruncate(s->active->fd, (off_t)s->active_size) != 0)
        tarn_log_warn(STREAM_COMPONENT, "%s: cutting the zero tail: %s", s->dir, strerror(errno));
    stream_seg_unref(s->active);
    s->active = NULL;
    pthread_mutex_unlock(&s->mu);
    if (s->dirfd >= 0) close(s->dirfd);
    pthread_cond_destroy(&s->sync_cv);
    pthread_mutex_destroy(&s->mu);
    free(s->segs);
    free(s->dir);
    free(s);
}

/* ---- append ---- */

/* Writes iov[0..cnt) at off, going on after short writes; cnt may exceed
 * IOV_MAX. iov is consumed. When *budget (test hook) runs out first, fails
 * with errno inject. Returns 0 or -1 with errno set. */
static int stream_pwritev_all(int fd, struct iovec *iov, int cnt, uint64_t off, uint64_t *budget, int inject)
{
    while (cnt > 0) {
        if (iov->iov_len == 0) {
            iov++;
            cnt--;
            continue;
        }
        if (*budget == 0) {
            errno = inject;
            return -1;
        }
        ssize_t w;
        if (*budget != UINT64_MAX)
            w = pwrite(fd, iov->iov_base, iov->iov_len < *budget ? iov->iov_len : (size_t)*budget, (off_t)off);
        else
            w = pwritev(fd, iov, cnt < IOV_MAX ? cnt : IOV_MAX, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        if (w == 0) {
            errno = EIO;
            return -1;
        }
        off += (uint64_t)w;
        if (*budget != UINT64_MAX) *budget -= (uint64_t)w;
        size_t left = (size_t)w;
        while (left > 0) {
            if (left >= iov->iov_len) {
                left -= iov->iov_len;
                iov++;
                cnt--;
            } else {
                iov->iov_base = (char *)iov->iov_base + left;
                iov->iov_len -= left;
                left = 0;
            }
        }
    }
    return 0;
}

/* Writes the frames of recs (numbered from first) at the end of the newest
 * segment. On ENOSPC / EDQUOT the segment is cut back to its size before the
 * batch and TARN_ENOSPC returned; any other error fails the stream. Does not
 * publish anything. mu held. */
static int stream_write_batch(tarn_stream *s, const tarn_record *recs, size_t n, const uint32_t *crcs,
                              int64_t ts_us, int64_t first, uint64_t total, tarn_errbuf *eb)
{
    char name[STREAM_NAME_MAX];
    uint64_t off = s->active_size;
    int inject = s->inject_write_errno;
    uint64_t budget = inject ? total / 2 : UINT64_MAX;
    s->inject_write_errno = 0;
    for (size_t i = 0; i < n;) {
        int cnt = 0;
        uint64_t chunk = 0;
        for (size_t j = 0; j < STREAM_IOV_RECORDS && i < n; j++, i++) {
            stream_frame_encode(s->hdrs[j], (uint32_t)recs[i].len, crcs[i], first + (int64_t)i, ts_us);
            s->iov[cnt].iov_base = s->hdrs[j];
            s->iov[cnt++].iov_len = STREAM_FRAME_HDR;
            if (recs[i].len) {
                s->iov[cnt].iov_base = (void *)recs[i].data;
                s->iov[cnt++].iov_len = recs[i].len;
            }
            chunk += STREAM_FRAME_HDR + recs[i].len;
        }
        if (stream_pwritev_all(s->active->fd, s->iov, cnt, off, &budget, inject) != 0) {
            int e = errno;
            stream_seg_name(name, s->active->base);
            if (e == ENOSPC || e == EDQUOT) {
                s->file_size = s->active_size;
                if (ftruncate(s->active->fd, (off_t)s->active_size) != 0) {
                    stream_fail(s, "write %s/%s at offset %llu: %s, then truncating back failed: %s", s->dir, name,
                                (unsigned long long)off, strerror(e), strerror(errno));
                    return tarn_errbuf_set(eb, TARN_EIO, "%s", s->fail_msg);
                }
                return tarn_errbuf_set(eb, TARN_ENOSPC,
                                       "write %s/%s at offset %llu: %s; the batch of %zu records from offset %llu "
                                       "was not stored",
                                       s->dir, name, (unsigned long long)off, strerror(e), n,
                                       (unsigned long long)s->active_size);
            }
            stream_fail(s, "write %s/%s at offset %llu: %s", s->dir, name, (unsigned long long)off, strerror(e));
            return tarn_errbuf_set(eb, TARN_EIO, "%s", s->fail_msg);
        }
        off += chunk;
    }
    return TARN_OK;
}

/* Extends the newest segment with zeros if few remain (see ZERO-AHEAD).
 * mu held. */
static void stream_zero_ahead(tarn_stream *s)
{
    uint64_t from = s->file_size;
    if (from >= s->segment_bytes || from - s->active_size >= STREAM_ZERO_LOW) return;
    uint64_t to = from + STREAM_ZERO_CHUNK;
    if (to > s->segment_bytes) to = s->segment_bytes;
    uint64_t off = from;
    while (off < to) {
        size_t n = to - off < sizeof stream_zeros ? (size_t)(to - off) : sizeof stream_zeros;
        ssize_t w = pwrite(s->active->fd, stream_zeros, n, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        off += (uint64_t)w;
    }
    if (off == to) s->file_size = to;
    else if (ftruncate(s->active->fd, (off_t)from) != 0) /* zeros past file_size are harmless */
        tarn_log_warn(STREAM_COMPONENT, "%s: cutting a failed zero-ahead: %s", s->dir, strerror(errno));
}

/* The syncer's wait for as many appends as the last fsync covered, at most
 * as long as that fsync took (see WRITING). mu held; released while waiting. */
static void stream_gather(tarn_stream *s)
{
    if (s->uncovered >= s->gather_want) return;
    int64_t wait_us = s->last_sync_us < STREAM_GATHER_MAX_US ? s->last_sync_us : STREAM_GATHER_MAX_US;
    int64_t until = tarn_mono_us() + wait_us;
    struct timespec dl = {(time_t)(until / 1000000), (long)(until % 1000000) * 1000};
    s->gathering = 1;
    while (s->uncovered < s->gather_want && !s->failed && !s->closing)
        if (pthread_cond_timedwait(&s->sync_cv, &s->mu, &dl) == ETIMEDOUT) break;
    s->gathering = 0;
}

/* Takes the waiters that are done off the queue: those covered by
 * durable_seq, or all of them once the stream has failed. mu held. */
static tarn_stream_waiter *stream_take_done(tarn_stream *s)
{
    tarn_stream_waiter *head = s->waiters, *w = head, *prev = NULL;
    while (w && (s->failed || w->last <= s->durable_seq)) {
        prev = w;
        w = w->next;
    }
    if (!prev) return NULL;
    prev->next = NULL;
    s->waiters = w;
    if (!w) s->waiters_tail = NULL;
    return head;
}

/* One group commit: gathers (see WRITING), zeroes ahead if the group is
 * small, fdatasyncs the newest segment without holding mu, then publishes
 * the new durable_seq or fails the stream. mu held on entry and exit. */
static void stream_sync_round(tarn_stream *s)
{
    stream_gather(s);
    if (s->failed) return;
    int64_t covered = s->uncovered;
    s->uncovered = 0;
    int64_t target = s->written_seq, target_bytes = s->written_bytes;
    if (covered > 0 && (target_bytes - s->durable_bytes) / covered < STREAM_ZERO_SMALL) stream_zero_ahead(s);
    stream_seg *seg = s->active;
    seg->refs++;
    int inject = s->inject_fsync_errno, delay = s->fsync_delay_us;
    s->inject_fsync_errno = 0;
    pthread_mutex_unlock(&s->mu);

    if (delay > 0) {
        struct timespec ts = {delay / 1000000, (long)(delay % 1000000) * 1000};
        nanosleep(&ts, NULL);
    }
    int64_t t0 = tarn_mono_us();
    int rc = inject ? -1 : fdatasync(seg->fd);
    int e = inject ? inject : errno;
    int64_t took = tarn_mono_us() - t0;

    pthread_mutex_lock(&s->mu);
    s->fsync_count++;
    /* Up at once, down one at a time: one short gather must not make the
     * next round expect too little (see WRITING). */
    s->gather_want = covered >= s->gather_want ? covered : s->gather_want - 1;
    s->last_sync_us = took;
    if (rc != 0) {
        char name[STREAM_NAME_MAX];
        stream_seg_name(name, seg->base);
        stream_fail(s, "fdatasync %s/%s: %s", s->dir, name, strerror(e));
    } else if (target > s->durable_seq) {
        s->durable_seq = target;
        s->durable_bytes = target_bytes;
        stream_durable_moved(s);
    }
    stream_seg_unref(seg);
}

/* The syncer thread (see WRITING): completes the waiters that are done,
 * syncs while anything written is not yet durable, and sleeps otherwise.
 * At close it finishes what was written, completes every waiter and ends. */
static void *stream_syncer_main(void *arg)
{
    tarn_stream *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        tarn_stream_waiter *done = stream_take_done(s);
        if (done) {
            int rc = s->failed ? TARN_EIO : TARN_OK;
            char msg[sizeof s->fail_msg];
            memcpy(msg, s->fail_msg, sizeof msg);
            pthread_mutex_unlock(&s->mu);
            while (done) {
                tarn_stream_waiter *next = done->next; /* done() may free it */
                done->done(done, rc, rc ? msg : NULL);
                done = next;
            }
            pthread_mutex_lock(&s->mu);
            continue;
        }
        if (!s->failed && s->written_seq > s->durable_seq) {
            stream_sync_round(s);
            continue;
        }
        if (s->closing) break;
        s->syncer_idle = 1;
        pthread_cond_wait(&s->sync_cv, &s->mu);
        s->syncer_idle = 0;
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* See stream.h. recs and their data stay owned by the caller and are not
 * kept: they are in the file when this returns. */
int tarn_stream_append_async(tarn_stream *s, const tarn_record *recs, size_t n, int64_t ts_us, int64_t *first_seq,
                             int64_t *last_seq, tarn_stream_waiter *w, tarn_errbuf *eb)
{
    uint32_t crc_stack[STREAM_STACK_CRCS];
    uint32_t *crcs = crc_stack;
    uint64_t total = 0, payload = 0;
    int64_t first = 0, last = 0;
    int rc = TARN_OK;

    for (size_t i = 0; i < n; i++) {
        if (recs[i].len > s->max_record)
            return tarn_errbuf_set(eb, TARN_ETOOBIG, "record %zu of the batch is %zu bytes, over the limit of %zu", i,
                                   recs[i].len, s->max_record);
        payload += recs[i].len;
    }
    total = payload + (uint64_t)n * STREAM_FRAME_HDR;
    if (n > STREAM_STACK_CRCS) {
        crcs = n > SIZE_MAX / sizeof *crcs ? NULL : malloc(n * sizeof *crcs);
        if (!crcs) return tarn_errbuf_set(eb, TARN_ENOMEM, "out of memory for a batch of %zu records", n);
    }
    /* The expensive part of the checksum, before taking the lock. */
    for (size_t i = 0; i < n; i++) crcs[i] = tarn_crc32c(0, recs[i].data, recs[i].len);

    pthread_mutex_lock(&s->mu);
    if (s->closing) {
        rc = tarn_errbuf_set(eb, TARN_ECLOSED, "stream %s is closing", s->dir);
        goto unlock;
    }
    if (s->failed) {
        rc = tarn_errbuf_set(eb, TARN_EIO, "%s", s->fail_msg);
        goto unlock;
    }
    if (n == 0) {
        first = s->next_seq;
        last = first - 1;
        goto unlock;
    }
    if (s->active_size > STREAM_SEG_HDR && s->active_size + total > s->segment_bytes) {
        rc = stream_roll(s, eb);
        if (rc) goto unlock;
    }
    first = s->next_seq;
    rc = stream_write_batch(s, recs, n, crcs, ts_us, first, total, eb);
    if (rc) goto unlock;
    last = first + (int64_t)n - 1;
    s->next_seq = last + 1;
    s->written_seq = last;
    s->written_bytes += (int64_t)payload;
    s->active_size += total;
    if (s->active_size > s->file_size) s->file_size = s->active_size;
    s->segs[s->nsegs - 1].last = last;
    /* The numbers go out before the waiter is queued: once it is, done may
     * run (and the caller's memory be gone) before this returns. */
    if (first_seq) *first_seq = first;
    if (last_seq) *last_seq = last;
    w->last = last;
    w->next = NULL;
    if (s->waiters_tail) s->waiters_tail->next = w;
    else s->waiters = w;
    s->waiters_tail = w;
    s->uncovered++;
    if (s->syncer_idle || (s->gathering && s->uncovered >= s->gather_want)) pthread_cond_signal(&s->sync_cv);

    pthread_mutex_unlock(&s->mu);
    if (crcs != crc_stack) free(crcs);
    return TARN_OK;

unlock:
    pthread_mutex_unlock(&s->mu);
    if (crcs != crc_stack) free(crcs);
    if (rc == TARN_OK) { /* n == 0 */
        if (first_seq) *first_seq = first;
        if (last_seq) *last_seq = last;
    }
    return rc;
}

/* A tarn_stream_append waiting on its own futex word. */
typedef struct stream_sync_waiter {
    tarn_stream_waiter w;
    _Atomic uint32_t state; /* 0 waiting, 1 done */
    int rc;
    char msg[256];
} stream_sync_waiter;

static void stream_sync_done(tarn_stream_waiter *w, int rc, const char *msg)
{
    stream_sync_waiter *sw = (stream_sync_waiter *)w;
    sw->rc = rc;
    if (msg) snprintf(sw->msg, sizeof sw->msg, "%s", msg);
    atomic_store(&sw->state, 1);
    /* The waiter may already have seen state and returned: a wake-up of a
     * word on a live thread's stack that nobody waits on is harmless. */
    syscall(SYS_futex, &sw->state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* See stream.h. */
int tarn_stream_append(tarn_stream *s, const tarn_record *recs, size_t n, int64_t ts_us, int64_t *first_seq,
                       int64_t *last_seq, tarn_errbuf *eb)
{
    stream_sync_waiter sw;
    memset(&sw, 0, sizeof sw);
    sw.w.done = stream_sync_done;
    int64_t first = 0, last = 0;
    int rc = tarn_stream_append_async(s, recs, n, ts_us, &first, &last, &sw.w, eb);
    if (rc || n == 0) {
        if (rc == TARN_OK) {
            if (first_seq) *first_seq = first;
            if (last_seq) *last_seq = last;
        }
        return rc;
    }
    while (atomic_load(&sw.state) == 0) syscall(SYS_futex, &sw.state, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
    if (sw.rc) return tarn_errbuf_set(eb, sw.rc, "%s", sw.msg);
    if (first_seq) *first_seq = first;
    if (last_seq) *last_seq = last;
    return TARN_OK;
}

/* Lock-free (every append checks its table's backlog with it); the two
 * figures are each exact but may come from successive fsyncs. */
void tarn_stream_stats(tarn_stream *s, int64_t *durable_seq, int64_t *durable_bytes)
{
    if (durable_seq) *durable_seq = atomic_load(&s->durable_pub);
    if (durable_bytes) *durable_bytes = atomic_load(&s->durable_bytes_pub);
}

int tarn_stream_failed(tarn_stream *s)
{
    pthread_mutex_lock(&s->mu);
    int failed = s->failed;
    pthread_mutex_unlock(&s->mu);
    return failed;
}

/* ---- trim ---- */

int tarn_stream_trim(tarn_stream *s, int64_t upto_seq, tarn_errbuf *eb)
{
    char name[STREAM_NAME_MAX];
    int64_t *bases = NULL;
    size_t k = 0;
    int rc = TARN_OK;

    /* Take the segments out of the table first, so no new reader goes to
     * them; readers that have one open keep reading it after the unlink. */
    pthread_mutex_lock(&s->mu);
    while (k + 1 < s->nsegs && s->segs[k].last <= upto_seq) k++;
    if (k > 0) {
        bases = malloc(k * sizeof *bases);
        if (!bases) {
            pthread_mutex_unlock(&s->mu);
            return tarn_errbuf_set(eb, TARN_ENOMEM, "out of memory trimming %s", s->dir);
        }
        for (size_t i = 0; i < k; i++) bases[i] = s->segs[i].base;
        memmove(s->segs, s->segs + k, (s->nsegs - k) * sizeof *s->segs);
        s->nsegs -= k;
    }
    pthread_mutex_unlock(&s->mu);

    for (size_t i = 0; i < k; i++) {
        stream_seg_name(name, bases[i]);
        if (unlinkat(s->dirfd, name, 0) != 0 && errno != ENOENT && rc == TARN_OK)
            rc = tarn_errbuf_set(eb, TARN_EIO, "delete %s/%s: %s", s->dir, name, strerror(errno));
    }
    if (k > 0 && fsync(s->dirfd) != 0 && rc == TARN_OK)
        rc = tarn_errbuf_set(eb, TARN_EIO, "fsync directory %s: %s", s->dir, strerror(errno));
    free(bases);
    return rc;
}

/* ---- readers ---- */

/* On success *out is owned by the caller (tarn_stream_reader_close), and
 * must be closed before s is. */
int tarn_stream_reader_open(tarn_stream *s, int64_t after_seq, tarn_stream_reader **out, tarn_errbuf *eb)
{
    *out = NULL;
    if (after_seq < 0) return tarn_errbuf_set(eb, TARN_EINVAL, "after_seq %lld is negative", (long long)after_seq);
    tarn_stream_reader *r = calloc(1, sizeof *r);
    if (!r) return tarn_errbuf_set(eb, TARN_ENOMEM, "out of memory opening a reader on %s", s->dir);
    r->s = s;
    r->pos = after_seq;
    r->readable = after_seq; /* nothing known yet: look it up on the first call */
    r->fd = -1;
    stream_rbuf_init(&r->rb, STREAM_RECORD_LIMIT + STREAM_FRAME_HDR);
    *out = r;
    return TARN_OK;
}

/* Finds the segment holding the next durable record after pos and opens it
 * if it is not the one already open. Returns 1 when pos + 1 .. readable can
 * be read from r->fd, 0 when there is no durable record after pos yet, or an
 * error. */
static int stream_reader_locate(tarn_stream_reader *r, tarn_errbuf *eb)
{
    tarn_stream *s = r->s;
    char name[STREAM_NAME_MAX];
    /* An open can lose the race with trim deleting the file; the table no
     * longer lists it then, so look again. */
    for (int attempt = 0; attempt < 8; attempt++) {
        pthread_mutex_lock(&s->mu);
        int64_t limit = s->durable_seq, want = r->pos + 1;
        size_t i = want <= limit ? stream_segs_find(s, want) : s->nsegs;
        if (i == s->nsegs) {
            pthread_mutex_unlock(&s->mu);
            return 0;
        }
        int64_t base = s->segs[i].base;
        int64_t readable = s->segs[i].last < limit ? s->segs[i].last : limit;
        pthread_mutex_unlock(&s->mu);
        int64_t target = want > base ? want : base;
        if (target > readable) return 0;
        if (target > want) r->pos = target - 1; /* trimmed away, or a gap in the numbering */
        r->readable = readable;
        if (r->fd >= 0 && r->seg_base == base) return 1;

        if (r->fd >= 0) close(r->fd);
        r->rb.len = 0;
        stream_seg_name(name, base);
        r->fd = openat(s->dirfd, name, O_RDONLY | O_CLOEXEC);
        if (r->fd < 0) {
            if (errno == ENOENT) continue;
            return tarn_errbuf_set(eb, TARN_EIO, "open %s/%s: %s", s->dir, name, strerror(errno));
        }
        r->seg_base = base;
        r->off = STREAM_SEG_HDR;
        r->off_seq = base;
        const unsigned char *h;
        int rc = stream_rbuf_get(&r->rb, r->fd, 0, STREAM_SEG_HDR, &h);
        r->rb_limit = readable;
        if (rc < 0 && rc != -1) return tarn_errbuf_set(eb, rc, "out of memory reading %s/%s", s->dir, name);
        if (rc < 0) return tarn_errbuf_set(eb, TARN_EIO, "read %s/%s: %s", s->dir, name, strerror(errno));
        const char *bad = rc == 0 ? "short segment header" : stream_seg_header_check(h, base);
        if (bad) return tarn_errbuf_set(eb, TARN_ECORRUPT, "%s/%s at offset 0: %s", s->dir, name, bad);
        return 1;
    }
    stream_seg_name(name, r->seg_base);
    return tarn_errbuf_set(eb, TARN_EIO, "%s: segments keep disappearing under the reader", s->dir);
}

/* See stream.h. *data points into r's buffer and is owned by r. */
int tarn_stream_reader_next(tarn_stream_reader *r, int64_t *seq, int64_t *ts_us, const char **data, size_t *len,
                            tarn_errbuf *eb)
{
    char name[STREAM_NAME_MAX];
    for (;;) {
        if (r->fd < 0 || r->pos + 1 > r->readable) {
            int rc = stream_reader_locate(r, eb);
            if (rc <= 0) return rc;
        }
        /* Bytes read before a record was durable may be stale (a batch cut
         * back after ENOSPC is overwritten by the next one), so a frame is
         * parsed only from a read made after it became durable. */
        if (r->off_seq > r->rb_limit) r->rb.len = 0;
        unsigned long fills = r->rb.fills;
        const unsigned char *f;
        const char *bad = NULL;
        uint32_t flen = 0;
        int rc = stream_rbuf_get(&r->rb, r->fd, r->off, STREAM_FRAME_HDR, &f);
        if (rc == 1) {
            flen = stream_get_u32(f);
            if (flen > STREAM_RECORD_LIMIT) bad = "length over the format's limit";
            else if ((int64_t)stream_get_u64(f + 8) != r->off_seq) bad = "unexpected sequence number";
            else rc = stream_rbuf_get(&r->rb, r->fd, r->off, STREAM_FRAME_HDR + (size_t)flen, &f);
        }
        if (r->rb.fills != fills) r->rb_limit = r->readable;
        if (!bad && rc == 0) bad = "durable frame is cut short";
        if (!bad && rc == 1 && stream_frame_crc(f) != stream_get_u32(f + 4)) bad = "checksum mismatch";
        if (bad || rc != 1) {
            stream_seg_name(name, r->seg_base);
            if (bad)
                return tarn_errbuf_set(eb, TARN_ECORRUPT, "%s/%s at offset %llu (record %lld): %s", r->s->dir, name,
                                       (unsigned long long)r->off, (long long)r->off_seq, bad);
            if (rc == TARN_ENOMEM) return tarn_errbuf_set(eb, rc, "out of memory reading %s/%s", r->s->dir, name);
            return tarn_errbuf_set(eb, TARN_EIO, "read %s/%s at offset %llu: %s", r->s->dir, name,
                                   (unsigned long long)r->off, strerror(errno));
        }
        int64_t fseq = r->off_seq;
        r->off += STREAM_FRAME_HDR + (uint64_t)flen;
        r->off_seq++;
        if (fseq <= r->pos) continue; /* before the reader's position in this segment */
        r->pos = fseq;
        if (seq) *seq = fseq;
        if (ts_us) *ts_us = (int64_t)stream_get_u64(f + 16);
        if (data) *data = (const char *)f + STREAM_FRAME_HDR;
        if (len) *len = flen;
        return 1;
    }
}

void tarn_stream_reader_close(tarn_stream_reader *r)
{
    if (!r) return;
    if (r->fd >= 0) close(r->fd);
    stream_rbuf_free(&r->rb);
    free(r);
}

/* ---- test hooks (stream_test.h) ---- */

void tarn_stream_test_fail_fsync(tarn_stream *s, int err)
{
    pthread_mutex_lock(&s->mu);
    s->inject_fsync_errno = err;
    pthread_mutex_unlock(&s->mu);
}

void tarn_stream_test_fail_write(tarn_stream *s, int err)
{
    pthread_mutex_lock(&s->mu);
    s->inject_write_errno = err;
    pthread_mutex_unlock(&s->mu);
}

void tarn_stream_test_fsync_delay(tarn_stream *s, int usec)
{
    pthread_mutex_lock(&s->mu);
    s->fsync_delay_us = usec;
    pthread_mutex_unlock(&s->mu);
}

uint64_t tarn_stream_test_fsync_count(tarn_stream *s)
{
    pthread_mutex_lock(&s->mu);
    uint64_t n = s->fsync_count;
    pthread_mutex_unlock(&s->mu);
    return n;
}
