/* stream_test.h - fault injection and counters for the stream's tests.
 *
 * Only tests include this header. The hooks live in stream.c (as SQLite's
 * test hooks live in the library) so the code under test is the code that
 * ships; in production nothing sets them and they cost one branch.
 */
#ifndef TARN_STREAM_TEST_H
#define TARN_STREAM_TEST_H

#include <stdint.h>

#include "stream.h"

/* The next fsync or fdatasync the stream makes (group commit, segment roll)
 * fails with errno err instead of reaching the disk. 0 cancels. */
void tarn_stream_test_fail_fsync(tarn_stream *s, int err);
/* The next batch write writes about half of the batch's bytes, then fails
 * with errno err (ENOSPC to simulate a full disk, EIO for a dying one).
 * 0 cancels. */
void tarn_stream_test_fail_write(tarn_stream *s, int err);
/* Every group-commit fsync sleeps this long first (0 = not at all), so tests
 * can make many appenders meet at one fsync on any disk. */
void tarn_stream_test_fsync_delay(tarn_stream *s, int usec);
/* How many group-commit fdatasync calls the stream has made since open. */
uint64_t tarn_stream_test_fsync_count(tarn_stream *s);

#endif
