/* crc32c.c - CRC-32C, see crc32c.h.
 *
 * Two implementations with one result:
 *  - x86-64 with SSE4.2: the crc32 instruction, 8 bytes at a time. It is
 *    compiled with a target attribute (not -msse4.2 for the whole file) and
 *    chosen at run time, so the binary still runs on a CPU without it.
 *  - everywhere else: "slicing by 8", eight 256-entry tables that consume 8
 *    bytes per step (about 1-2 GB/s, far above what the log's disk needs).
 * The tables are built once on first use; the choice is made at the same
 * time. Both read the input byte by byte or with memcpy, so unaligned input
 * is fine.
 */
#include "crc32c.h"

#include <pthread.h>
#include <string.h>

#define CRC32C_POLY 0x82F63B78u /* Castagnoli, bit-reversed */

static uint32_t crc32c_table[8][256];
static int crc32c_use_hw;
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__) && defined(__GNUC__)
#define CRC32C_HAVE_X86 1

/* ~crc in, ~crc out are done by the caller. */
__attribute__((target("sse4.2"))) static uint32_t crc32c_x86(uint32_t crc, const unsigned char *p, size_t n)
{
    while (n > 0 && ((uintptr_t)p & 7) != 0) {
        crc = __builtin_ia32_crc32qi(crc, *p++);
        n--;
    }
    unsigned long long c = crc;
    while (n >= 8) {
        unsigned long long v;
        memcpy(&v, p, 8); /* x86 is little-endian, as the instruction expects */
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        n -= 8;
    }
    crc = (uint32_t)c;
    while (n > 0) {
        crc = __builtin_ia32_crc32qi(crc, *p++);
        n--;
    }
    return crc;
}
#endif

static void crc32c_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        crc32c_table[0][i] = c;
    }
    for (int t = 1; t < 8; t++)
        for (int i = 0; i < 256; i++) {
            uint32_t prev = crc32c_table[t - 1][i];
            crc32c_table[t][i] = (prev >> 8) ^ crc32c_table[0][prev & 0xff];
        }
#ifdef CRC32C_HAVE_X86
    __builtin_cpu_init();
    crc32c_use_hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
#endif
}

/* ~crc in, ~crc out are done by the caller. */
static uint32_t crc32c_slice8(uint32_t crc, const unsigned char *p, size_t n)
{
    while (n >= 8) {
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        crc = crc32c_table[7][lo & 0xff] ^ crc32c_table[6][(lo >> 8) & 0xff] ^ crc32c_table[5][(lo >> 16) & 0xff] ^
              crc32c_table[4][lo >> 24] ^ crc32c_table[3][p[4]] ^ crc32c_table[2][p[5]] ^ crc32c_table[1][p[6]] ^
              crc32c_table[0][p[7]];
        p += 8;
        n -= 8;
    }
    while (n > 0) {
        crc = (crc >> 8) ^ crc32c_table[0][(crc ^ *p++) & 0xff];
        n--;
    }
    return crc;
}

uint32_t tarn_crc32c_portable(uint32_t crc, const void *data, size_t n)
{
    pthread_once(&crc32c_once, crc32c_init);
    return ~crc32c_slice8(~crc, data, n);
}

uint32_t tarn_crc32c(uint32_t crc, const void *data, size_t n)
{
    pthread_once(&crc32c_once, crc32c_init);
#ifdef CRC32C_HAVE_X86
    if (crc32c_use_hw) return ~crc32c_x86(~crc, data, n);
#endif
    return ~crc32c_slice8(~crc, data, n);
}

int tarn_crc32c_hardware(void)
{
    pthread_once(&crc32c_once, crc32c_init);
    return crc32c_use_hw;
}
