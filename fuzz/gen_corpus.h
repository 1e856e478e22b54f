/*
 * gen_corpus.h — what the two files of the corpus generator share
 * (gen_corpus.c: main, experiment files, idx, safetensors; gen_frames.c: the
 * frame target's inputs): a byte buffer and the output helpers.
 */
#ifndef BYOL_GEN_CORPUS_H
#define BYOL_GEN_CORPUS_H

#include <stddef.h>
#include <stdint.h>

/* A growing byte buffer. */
typedef struct {
	uint8_t *p;
	size_t len, cap;
} buf;

/* The corpus directory (argv[1]). */
extern const char *outdir;

/* Prints "gen_corpus: ..." and exits 1. */
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* calloc that dies when out of memory (and gives a block for 0 too). */
void *xcalloc(size_t n, size_t size);
/* Appends len bytes; appends v as 4 big-endian bytes. */
void put(buf *b, const void *data, size_t len);
void put_u32be(buf *b, uint32_t v);
/* Writes outdir/target/name (creating outdir/target). */
void write_file(const char *target, const char *name, const void *data, size_t len);
/* A whole file, malloc'd, or NULL with errno. */
uint8_t *read_file(const char *path, size_t *len);
/* gzip of data, in memory (no file name or time in the header). */
buf gzip(const void *data, size_t len);

/* The frame target's inputs (gen_frames.c). */
void gen_frames(void);

#endif
