/* crc32c.h - CRC-32C (Castagnoli), the checksum of the log's frames.
 *
 * Written by hand because zlib only has the CRC-32 of gzip and Ethernet, and
 * CRC-32C is the one x86 (SSE4.2) computes in hardware and that other logs
 * (ext4, iSCSI, Kafka's record batches, LevelDB) use. Parameters: reflected
 * polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF, so
 * tarn_crc32c(0, "123456789", 9) == 0xE3069283.
 */
#ifndef TARN_CRC32C_H
#define TARN_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends crc (the result of an earlier call, or 0 to start) with n bytes:
 * tarn_crc32c(tarn_crc32c(0, a, na), b, nb) == crc32c of a followed by b.
 * Uses the SSE4.2 instruction when the CPU has it. Thread-safe. */
uint32_t tarn_crc32c(uint32_t crc, const void *data, size_t n);

/* The table-driven version, whatever the CPU; for tests and benchmarks. */
uint32_t tarn_crc32c_portable(uint32_t crc, const void *data, size_t n);
/* Non-zero if tarn_crc32c uses a hardware instruction. */
int tarn_crc32c_hardware(void);

#endif
