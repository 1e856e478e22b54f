/*
 * fuzz.h — what the libFuzzer targets in fuzz/ share: the entry point's
 * prototype, a check that aborts with a message (libFuzzer then saves the
 * input as a crash), and a small deterministic generator for choices a target
 * derives from its input (chunk sizes, which entries to visit).
 */
#ifndef BYOL_FUZZ_H
#define BYOL_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property of the code under test that failed: report it and crash. */
#define FUZZ_CHECK(cond, ...)                                                       \
	do {                                                                        \
		if (!(cond)) {                                                      \
			fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__,      \
				__LINE__, #cond);                                   \
			fprintf(stderr, __VA_ARGS__);                               \
			fputc('\n', stderr);                                        \
			abort();                                                    \
		}                                                                   \
	} while (0)

/* xorshift32; a zero seed is replaced, since it would stay zero. */
static inline uint32_t fuzz_rand(uint32_t *s)
{
	uint32_t x = *s ? *s : 0x9e3779b9u;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	*s = x;
	return x;
}

#endif
