/* berth: XXH64 (see xxh64.h), after the xxHash specification
 * (doc/xxhash_spec.md in the xxHash sources): seed 0, little-endian reads. */
#include "executor/base/xxh64.h"

#include <string.h>

static const uint64_t P1 = 0x9E3779B185EBCA87ULL;
static const uint64_t P2 = 0xC2B2AE3D27D4EB4FULL;
static const uint64_t P3 = 0x165667B19E3779F9ULL;
static const uint64_t P4 = 0x85EBCA77C2B2AE63ULL;
static const uint64_t P5 = 0x27D4EB2F165667C5ULL;

static uint64_t rotl(uint64_t x, unsigned r)
{
	return (x << r) | (x >> (64 - r));
}

/* Little-endian loads, whatever the alignment (memcpy compiles to a mov). */
static uint64_t read64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return v;
}

static uint32_t read32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap32(v);
#endif
	return v;
}

static uint64_t round64(uint64_t acc, uint64_t lane)
{
	acc += lane * P2;
	return rotl(acc, 31) * P1;
}

static uint64_t merge(uint64_t acc, uint64_t v)
{
	acc ^= round64(0, v);
	return acc * P1 + P4;
}

/* The four accumulators over whole 32-byte stripes. */
static void stripes(uint64_t v[4], const unsigned char *p, size_t n_stripes)
{
	for (size_t i = 0; i < n_stripes; i++, p += 32) {
		v[0] = round64(v[0], read64(p));
		v[1] = round64(v[1], read64(p + 8));
		v[2] = round64(v[2], read64(p + 16));
		v[3] = round64(v[3], read64(p + 24));
	}
}

void berth_xxh64_init(struct berth_xxh64 *s)
{
	memset(s, 0, sizeof(*s));
	s->v[0] = P1 + P2;
	s->v[1] = P2;
	s->v[2] = 0;
	s->v[3] = -P1;
}

void berth_xxh64_update(struct berth_xxh64 *s, const void *data, size_t len)
{
	const unsigned char *p = data;

	s->total += len;
	if (s->buffered) {
		size_t take = 32 - s->buffered < len ? 32 - s->buffered : len;
		memcpy(s->buf + s->buffered, p, take);
		s->buffered += take;
		p += take;
		len -= take;
		if (s->buffered < 32)
			return;
		stripes(s->v, s->buf, 1);
		s->buffered = 0;
	}
	stripes(s->v, p, len / 32);
	p += len - len % 32;
	memcpy(s->buf, p, len % 32);
	s->buffered = len % 32;
}

uint64_t berth_xxh64_digest(const struct berth_xxh64 *s)
{
	const unsigned char *p = s->buf, *end = s->buf + s->buffered;
	uint64_t h;

	if (s->total >= 32) {
		h = rotl(s->v[0], 1) + rotl(s->v[1], 7) + rotl(s->v[2], 12) + rotl(s->v[3], 18);
		for (int i = 0; i < 4; i++)
			h = merge(h, s->v[i]);
	} else {
		h = P5; /* seed 0 */
	}
	h += s->total;
	for (; p + 8 <= end; p += 8)
		h = rotl(h ^ round64(0, read64(p)), 27) * P1 + P4;
	if (p + 4 <= end) {
		h = rotl(h ^ ((uint64_t)read32(p) * P1), 23) * P2 + P3;
		p += 4;
	}
	for (; p < end; p++)
		h = rotl(h ^ (*p * P5), 11) * P1;
	h ^= h >> 33;
	h *= P2;
	h ^= h >> 29;
	h *= P3;
	h ^= h >> 32;
	return h;
}

uint64_t berth_xxh64(const void *data, size_t len)
{
	struct berth_xxh64 s;

	berth_xxh64_init(&s);
	berth_xxh64_update(&s, data, len);
	return berth_xxh64_digest(&s);
}
