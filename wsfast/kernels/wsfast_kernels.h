/*
 * C helpers for wsfast/kernels/_cy.pyx: XOR masking and UTF-8 validation.
 *
 * Portable C with optional AVX2 paths on x86-64, chosen once at run time from
 * the CPU's features (compiled with a per-function target attribute, so the
 * extension itself never requires AVX2 and wheels stay portable).
 */
#ifndef WSFAST_KERNELS_H
#define WSFAST_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__)
#define WSF_X86_DISPATCH 1
#include <immintrin.h>
#else
#define WSF_X86_DISPATCH 0
#endif

/* ------------------------------------------------------------------------ */
/* Masking (RFC 6455 §5.3)                                                   */
/* ------------------------------------------------------------------------ */

/* `key4` is the 4-byte key already rotated to the starting phase, read as a
 * native-endian uint32; XOR with it byte-for-byte equals XOR with the key. */
static inline void wsf_mask_scalar(const uint8_t *src, uint8_t *dst, size_t n, uint32_t key4)
{
    uint64_t key8 = ((uint64_t)key4 << 32) | key4;
    size_t i = 0;
    /* memcpy loads and stores: unaligned-safe and compiled to plain moves;
     * at -O3 GCC turns this loop into 16-byte SSE2 XORs. */
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, src + i, 8);
        w ^= key8;
        memcpy(dst + i, &w, 8);
    }
    if (i + 4 <= n) {
        uint32_t w;
        memcpy(&w, src + i, 4);
        w ^= key4;
        memcpy(dst + i, &w, 4);
        i += 4;
    }
    {
        uint8_t k[4];
        memcpy(k, &key4, 4);
        for (size_t j = 0; i < n; i++, j++)
            dst[i] = src[i] ^ k[j];
    }
}

#if WSF_X86_DISPATCH
/* From this size on, the vector loop bypasses the caches for its stores:
 * input and output together then outgrow most caches, and caching the
 * output only evicts the input. On a Zen 4 with 32 MiB of L3, streaming
 * stores took twice the time at 1 MiB, the same at 8 MiB and 0.7x at 16. */
#define WSF_MASK_STREAM_MIN ((size_t)8 << 20)

/* From this size on, the vector loop's stores are aligned to 32 bytes. */
#define WSF_MASK_ALIGN_MIN ((size_t)512)

/* The key for masking from `skip` bytes further on (x86 is little-endian:
 * the byte at the lowest address is the least significant). */
static inline uint32_t wsf_key_advance(uint32_t key4, size_t skip)
{
    unsigned bits = (unsigned)(skip & 3) * 8;
    return bits ? (key4 >> bits) | (key4 << (32 - bits)) : key4;
}

__attribute__((target("avx2")))
static void wsf_mask_avx2(const uint8_t *src, uint8_t *dst, size_t n, uint32_t key4)
{
    /* Stores aligned to 32 bytes: an unaligned one that straddles a cache
     * line costs two, and a bytes object's data is only 16-byte aligned.
     * The caller guarantees n >= WSF_MASK_VECTOR_MIN > 31. */
    size_t head = (size_t)(-(uintptr_t)dst & 31);
    if (n < WSF_MASK_ALIGN_MIN) {
        /* A few stores: the scalar head and tail would cost more than the
         * lines they straddle. */
        size_t j = 0;
        __m256i key = _mm256_set1_epi32((int)key4);
        for (; j + 32 <= n; j += 32) {
            __m256i a = _mm256_loadu_si256((const __m256i *)(src + j));
            _mm256_storeu_si256((__m256i *)(dst + j), _mm256_xor_si256(a, key));
        }
        wsf_mask_scalar(src + j, dst + j, n - j, key4);
        return;
    }
    if (head) {
        wsf_mask_scalar(src, dst, head, key4);
        src += head;
        dst += head;
        n -= head;
        key4 = wsf_key_advance(key4, head);
    }
    __m256i k = _mm256_set1_epi32((int)key4);
    size_t i = 0;
    if (n >= WSF_MASK_STREAM_MIN) {
        /* Far larger than the caches: non-temporal stores write the output
         * straight to memory, without first reading each line into cache. */
        for (; i + 128 <= n; i += 128) {
            __m256i a = _mm256_loadu_si256((const __m256i *)(src + i));
            __m256i b = _mm256_loadu_si256((const __m256i *)(src + i + 32));
            __m256i c = _mm256_loadu_si256((const __m256i *)(src + i + 64));
            __m256i d = _mm256_loadu_si256((const __m256i *)(src + i + 96));
            _mm256_stream_si256((__m256i *)(dst + i), _mm256_xor_si256(a, k));
            _mm256_stream_si256((__m256i *)(dst + i + 32), _mm256_xor_si256(b, k));
            _mm256_stream_si256((__m256i *)(dst + i + 64), _mm256_xor_si256(c, k));
            _mm256_stream_si256((__m256i *)(dst + i + 96), _mm256_xor_si256(d, k));
        }
        _mm_sfence(); /* order them before the stores that follow */
    }
    for (; i + 128 <= n; i += 128) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(src + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(src + i + 32));
        __m256i c = _mm256_loadu_si256((const __m256i *)(src + i + 64));
        __m256i d = _mm256_loadu_si256((const __m256i *)(src + i + 96));
        _mm256_store_si256((__m256i *)(dst + i), _mm256_xor_si256(a, k));
        _mm256_store_si256((__m256i *)(dst + i + 32), _mm256_xor_si256(b, k));
        _mm256_store_si256((__m256i *)(dst + i + 64), _mm256_xor_si256(c, k));
        _mm256_store_si256((__m256i *)(dst + i + 96), _mm256_xor_si256(d, k));
    }
    for (; i + 32 <= n; i += 32) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(src + i));
        _mm256_store_si256((__m256i *)(dst + i), _mm256_xor_si256(a, k));
    }
    /* i is a multiple of 4, so the key phase is unchanged for the tail. */
    wsf_mask_scalar(src + i, dst + i, n - i, key4);
}
#endif

static void (*wsf_mask_bulk)(const uint8_t *, uint8_t *, size_t, uint32_t) = wsf_mask_scalar;

/* Below this size the scalar loop wins: no dispatch, no vector setup. */
#define WSF_MASK_VECTOR_MIN 64

/* Mask n bytes from src to dst (which may be the same buffer), starting at
 * key phase `phase` (0-3). */
static inline void wsf_mask(const uint8_t *src, uint8_t *dst, size_t n, const uint8_t *key, unsigned phase)
{
    uint8_t rotated[4];
    uint32_t key4;
    rotated[0] = key[phase & 3];
    rotated[1] = key[(phase + 1) & 3];
    rotated[2] = key[(phase + 2) & 3];
    rotated[3] = key[(phase + 3) & 3];
    memcpy(&key4, rotated, 4);
    if (n < WSF_MASK_VECTOR_MIN)
        wsf_mask_scalar(src, dst, n, key4);
    else
        wsf_mask_bulk(src, dst, n, key4);
}

/* ------------------------------------------------------------------------ */
/* UTF-8 validation                                                          */
/* ------------------------------------------------------------------------ */

/* A DFA over byte classes, states premultiplied by the class count.
 * States: ACCEPT, REJECT, then "needs N more continuation bytes" and the
 * four leads whose second byte has a narrower range (E0, ED, F0, F4). */
enum {
    WSF_NCLASS = 13,
    WSF_ACCEPT = 0 * WSF_NCLASS,
    WSF_REJECT = 1 * WSF_NCLASS,
    WSF_CONT1 = 2 * WSF_NCLASS,
    WSF_CONT2 = 3 * WSF_NCLASS,
    WSF_CONT3 = 4 * WSF_NCLASS,
    WSF_AFTER_E0 = 5 * WSF_NCLASS,
    WSF_AFTER_ED = 6 * WSF_NCLASS,
    WSF_AFTER_F0 = 7 * WSF_NCLASS,
    WSF_AFTER_F4 = 8 * WSF_NCLASS,
};

/* Byte classes:  0 ASCII, 1 80-8F, 2 90-9F, 3 A0-BF, 4 C0-C1, 5 C2-DF, 6 E0,
 * 7 E1-EC EE-EF, 8 ED, 9 F0, 10 F1-F3, 11 F4, 12 F5-FF. */
static uint8_t wsf_utf8_class[256];

#define R WSF_REJECT
static const uint8_t wsf_utf8_next[9 * WSF_NCLASS] = {
    /*            ASC  80-8F      90-9F      A0-BF      C0 C2-DF      E0            E1-EF      ED            F0            F1-F3      F4            F5 */
    /* ACCEPT */ WSF_ACCEPT, R, R, R, R, WSF_CONT1, WSF_AFTER_E0, WSF_CONT2, WSF_AFTER_ED, WSF_AFTER_F0, WSF_CONT3, WSF_AFTER_F4, R,
    /* REJECT */ R, R, R, R, R, R, R, R, R, R, R, R, R,
    /* CONT1  */ R, WSF_ACCEPT, WSF_ACCEPT, WSF_ACCEPT, R, R, R, R, R, R, R, R, R,
    /* CONT2  */ R, WSF_CONT1, WSF_CONT1, WSF_CONT1, R, R, R, R, R, R, R, R, R,
    /* CONT3  */ R, WSF_CONT2, WSF_CONT2, WSF_CONT2, R, R, R, R, R, R, R, R, R,
    /* E0     */ R, R, R, WSF_CONT1, R, R, R, R, R, R, R, R, R,
    /* ED     */ R, WSF_CONT1, WSF_CONT1, R, R, R, R, R, R, R, R, R, R,
    /* F0     */ R, R, WSF_CONT2, WSF_CONT2, R, R, R, R, R, R, R, R, R,
    /* F4     */ R, WSF_CONT2, R, R, R, R, R, R, R, R, R, R, R,
};
#undef R

static void wsf_utf8_init_classes(void)
{
    for (int b = 0; b < 256; b++) {
        uint8_t c;
        if (b < 0x80) c = 0;
        else if (b < 0x90) c = 1;
        else if (b < 0xA0) c = 2;
        else if (b < 0xC0) c = 3;
        else if (b < 0xC2) c = 4;
        else if (b < 0xE0) c = 5;
        else if (b == 0xE0) c = 6;
        else if (b == 0xED) c = 8;
        else if (b < 0xF0) c = 7;
        else if (b == 0xF0) c = 9;
        else if (b < 0xF4) c = 10;
        else if (b == 0xF4) c = 11;
        else c = 12;
        wsf_utf8_class[b] = c;
    }
}

/* Run the DFA from `state` over p[0:n]. Returns the final state; on REJECT,
 * *stop is the index of the offending byte, else n. */
static inline unsigned wsf_utf8_dfa(unsigned state, const uint8_t *p, size_t n, size_t *stop)
{
    size_t i = 0;
    while (i < n) {
        if (state == WSF_ACCEPT) {
            /* ASCII fast path, a machine word at a time. */
            while (i + 8 <= n) {
                uint64_t w;
                memcpy(&w, p + i, 8);
                if (w & 0x8080808080808080ULL)
                    break;
                i += 8;
            }
            if (i == n)
                break;
        }
        state = wsf_utf8_next[state + wsf_utf8_class[p[i]]];
        if (state == WSF_REJECT) {
            *stop = i;
            return state;
        }
        i++;
    }
    *stop = n;
    return state;
}

static int wsf_utf8_complete_scalar(const uint8_t *p, size_t n)
{
    size_t stop;
    return wsf_utf8_dfa(WSF_ACCEPT, p, n, &stop) == WSF_ACCEPT;
}

#if WSF_X86_DISPATCH
/*
 * Vector validation after Keiser and Lemire, "Validating UTF-8 In Less Than
 * One Instruction Per Byte" (2021): three 16-entry nibble lookups classify
 * each (previous byte, byte) pair into error bits; a second check requires
 * continuation bytes exactly where 3- and 4-byte leads demand them.
 */
#define WSF_TOO_SHORT (1 << 0)      /* lead followed by a non-continuation  */
#define WSF_TOO_LONG (1 << 1)       /* ASCII followed by a continuation     */
#define WSF_OVERLONG_3 (1 << 2)     /* E0 80..9F                            */
#define WSF_TOO_LARGE (1 << 3)      /* F4 90..BF, F5.. 90..BF               */
#define WSF_SURROGATE (1 << 4)      /* ED A0..BF                            */
#define WSF_OVERLONG_2 (1 << 5)     /* C0/C1 80..BF                         */
#define WSF_TOO_LARGE_1000 (1 << 6) /* F5.. 80..8F                          */
#define WSF_OVERLONG_4 (1 << 6)     /* F0 80..8F                            */
#define WSF_TWO_CONTS (1 << 7)      /* continuation after continuation      */
#define WSF_CARRY (WSF_TOO_SHORT | WSF_TOO_LONG | WSF_TWO_CONTS)

#define WSF_DUP16(a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p) \
    _mm256_setr_epi8(a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p, a, b, c, d, e, f, g, h, i, j, k, l, m, n, o, p)

__attribute__((target("avx2")))
static inline __m256i wsf_prev(__m256i input, __m256i prev_input, int n)
{
    /* Bytes shifted in from the previous block: [prev.hi, input.lo] lane pair. */
    __m256i straddle = _mm256_permute2x128_si256(prev_input, input, 0x21);
    switch (n) {
    case 1: return _mm256_alignr_epi8(input, straddle, 15);
    case 2: return _mm256_alignr_epi8(input, straddle, 14);
    default: return _mm256_alignr_epi8(input, straddle, 13);
    }
}

__attribute__((target("avx2")))
static inline __m256i wsf_block_errors(__m256i input, __m256i prev_input)
{
    const __m256i low_nibble = _mm256_set1_epi8(0x0F);
    const __m256i byte_1_high_table = WSF_DUP16(
        WSF_TOO_LONG, WSF_TOO_LONG, WSF_TOO_LONG, WSF_TOO_LONG,
        WSF_TOO_LONG, WSF_TOO_LONG, WSF_TOO_LONG, WSF_TOO_LONG,
        WSF_TWO_CONTS, WSF_TWO_CONTS, WSF_TWO_CONTS, WSF_TWO_CONTS,
        WSF_TOO_SHORT | WSF_OVERLONG_2,
        WSF_TOO_SHORT,
        WSF_TOO_SHORT | WSF_OVERLONG_3 | WSF_SURROGATE,
        WSF_TOO_SHORT | WSF_TOO_LARGE | WSF_TOO_LARGE_1000 | WSF_OVERLONG_4);
    const __m256i byte_1_low_table = WSF_DUP16(
        WSF_CARRY | WSF_OVERLONG_3 | WSF_OVERLONG_2 | WSF_OVERLONG_4,
        WSF_CARRY | WSF_OVERLONG_2,
        WSF_CARRY,
        WSF_CARRY,
        WSF_CARRY | WSF_TOO_LARGE,
        WSF_CARRY | WSF_TOO_LARGE | WSF_TOO_LARGE_1000,
        WSF_CARRY | WSF_TOO_LARGE | WSF_TOO_LARGE_1000,
        WSF_CARRY | WSF_TOO_LARGE | WSF_TOO_LARGE_1000,
        WSF_CARRY | WSF_TOO_LARGE | WSF_TOO_LARGE_1000,
        WSF_CARRY | WSF_TOO_LARGE | WSF_TOO_LARGE_1000,
        WSF_CARRY | WSF_TOO_LARGE | WSF_TOO_LARGE_1000,
        WSF_CARRY | WSF_TOO_LARGE | WSF_TOO_LARGE_1000,
        WSF_CARRY | WSF_TOO_LARGE | WSF_TOO_LARGE_1000,
        WSF_CARRY | WSF_TOO_LARGE | WSF_TOO_LARGE_1000 | WSF_SURROGATE,
        WSF_CARRY | WSF_TOO_LARGE | WSF_TOO_LARGE_1000,
        WSF_CARRY | WSF_TOO_LARGE | WSF_TOO_LARGE_1000);
    const __m256i byte_2_high_table = WSF_DUP16(
        WSF_TOO_SHORT, WSF_TOO_SHORT, WSF_TOO_SHORT, WSF_TOO_SHORT,
        WSF_TOO_SHORT, WSF_TOO_SHORT, WSF_TOO_SHORT, WSF_TOO_SHORT,
        WSF_TOO_LONG | WSF_OVERLONG_2 | WSF_TWO_CONTS | WSF_OVERLONG_3 | WSF_TOO_LARGE_1000 | WSF_OVERLONG_4,
        WSF_TOO_LONG | WSF_OVERLONG_2 | WSF_TWO_CONTS | WSF_OVERLONG_3 | WSF_TOO_LARGE,
        WSF_TOO_LONG | WSF_OVERLONG_2 | WSF_TWO_CONTS | WSF_SURROGATE | WSF_TOO_LARGE,
        WSF_TOO_LONG | WSF_OVERLONG_2 | WSF_TWO_CONTS | WSF_SURROGATE | WSF_TOO_LARGE,
        WSF_TOO_SHORT, WSF_TOO_SHORT, WSF_TOO_SHORT, WSF_TOO_SHORT);

    __m256i prev1 = wsf_prev(input, prev_input, 1);
    __m256i byte_1_high = _mm256_shuffle_epi8(byte_1_high_table,
                                              _mm256_and_si256(_mm256_srli_epi16(prev1, 4), low_nibble));
    __m256i byte_1_low = _mm256_shuffle_epi8(byte_1_low_table, _mm256_and_si256(prev1, low_nibble));
    __m256i byte_2_high = _mm256_shuffle_epi8(byte_2_high_table,
                                              _mm256_and_si256(_mm256_srli_epi16(input, 4), low_nibble));
    __m256i special = _mm256_and_si256(_mm256_and_si256(byte_1_high, byte_1_low), byte_2_high);

    /* A byte must be a continuation if the byte 2 back is >= E0 or 3 back
     * >= F0; saturating subtraction leaves bit 7 set exactly then. */
    __m256i prev2 = wsf_prev(input, prev_input, 2);
    __m256i prev3 = wsf_prev(input, prev_input, 3);
    __m256i third = _mm256_subs_epu8(prev2, _mm256_set1_epi8((char)(0xE0 - 0x80)));
    __m256i fourth = _mm256_subs_epu8(prev3, _mm256_set1_epi8((char)(0xF0 - 0x80)));
    __m256i must_be_cont = _mm256_and_si256(_mm256_or_si256(third, fourth), _mm256_set1_epi8((char)0x80));
    return _mm256_xor_si256(must_be_cont, special);
}

__attribute__((target("avx2")))
static inline __m256i wsf_incomplete(__m256i input)
{
    /* Nonzero where the last 3 bytes start a sequence longer than the block. */
    const __m256i max_value = _mm256_setr_epi8(
        -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
        -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
        (char)(0xF0 - 1), (char)(0xE0 - 1), (char)(0xC0 - 1));
    return _mm256_subs_epu8(input, max_value);
}

/* Whether p[0:n] is complete, valid UTF-8. */
__attribute__((target("avx2")))
static int wsf_utf8_complete_avx2(const uint8_t *p, size_t n)
{
    __m256i error = _mm256_setzero_si256();
    __m256i prev_input = _mm256_setzero_si256();
    __m256i prev_incomplete = _mm256_setzero_si256();
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(p + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(p + i + 32));
        if (!_mm256_movemask_epi8(_mm256_or_si256(a, b))) {
            /* 64 ASCII bytes: only a sequence left open before them can fail. */
            error = _mm256_or_si256(error, prev_incomplete);
            prev_incomplete = _mm256_setzero_si256();
            prev_input = b;
            continue;
        }
        error = _mm256_or_si256(error, wsf_block_errors(a, prev_input));
        error = _mm256_or_si256(error, wsf_block_errors(b, a));
        prev_incomplete = wsf_incomplete(b);
        prev_input = b;
    }
    if (!_mm256_testz_si256(error, error))
        return 0;
    if (i < n) {
        /* Zero padding is ASCII: a sequence cut by the end fails as it should. */
        uint8_t tail[64];
        memset(tail, 0, sizeof tail);
        memcpy(tail, p + i, n - i);
        __m256i a = _mm256_loadu_si256((const __m256i *)tail);
        __m256i b = _mm256_loadu_si256((const __m256i *)(tail + 32));
        error = _mm256_or_si256(error, wsf_block_errors(a, prev_input));
        error = _mm256_or_si256(error, wsf_block_errors(b, a));
        prev_incomplete = wsf_incomplete(b);
    }
    error = _mm256_or_si256(error, prev_incomplete);
    return _mm256_testz_si256(error, error);
}
#endif

static int (*wsf_utf8_complete_bulk)(const uint8_t *, size_t) = wsf_utf8_complete_scalar;

/* Below this size the DFA is faster than setting up vectors. */
#define WSF_UTF8_VECTOR_MIN 64

/* Whether p[0:n] is complete, valid UTF-8. */
static inline int wsf_utf8_complete(const uint8_t *p, size_t n)
{
    if (n < WSF_UTF8_VECTOR_MIN)
        return wsf_utf8_complete_scalar(p, n);
    return wsf_utf8_complete_bulk(p, n);
}

/* Continue validating from DFA `state` over p[0:n], exactly as the DFA would,
 * but with the bulk of the chunk checked by the fastest available path.
 * Returns the final state; on REJECT, *stop is the offending byte's index. */
static unsigned wsf_utf8_feed(unsigned state, const uint8_t *p, size_t n, size_t *stop)
{
    size_t i = 0;
    /* Finish a code point left open by the previous chunk. */
    while (i < n && state != WSF_ACCEPT && state != WSF_REJECT) {
        state = wsf_utf8_next[state + wsf_utf8_class[p[i]]];
        if (state == WSF_REJECT) {
            *stop = i;
            return state;
        }
        i++;
    }
    if (state != WSF_ACCEPT) {
        *stop = i;
        return state;
    }
    /* Split off the last code point if it may be incomplete: the bulk part
     * [i, cut) must then be complete on its own if the chunk is valid. */
    size_t cut = n;
    for (size_t back = 1; back <= 3 && back <= n - i; back++) {
        uint8_t b = p[n - back];
        if (b < 0x80) break;                     /* ASCII: complete */
        if (b >= 0xC0) { cut = n - back; break; } /* a lead: maybe open */
    }
    if (cut - i >= WSF_UTF8_VECTOR_MIN && wsf_utf8_complete_bulk(p + i, cut - i)) {
        i = cut;
    }
    /* Either the tail, or (on a bulk failure) the exact position by DFA. */
    state = wsf_utf8_dfa(WSF_ACCEPT, p + i, n - i, stop);
    *stop += i;
    return state;
}

static void wsf_kernels_init(void)
{
    wsf_utf8_init_classes();
#if WSF_X86_DISPATCH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2")) {
        wsf_mask_bulk = wsf_mask_avx2;
        wsf_utf8_complete_bulk = wsf_utf8_complete_avx2;
    }
#endif
}

static const char *wsf_simd_name(void)
{
    return wsf_mask_bulk == wsf_mask_scalar ? "scalar" : "avx2";
}

#endif /* WSFAST_KERNELS_H */
