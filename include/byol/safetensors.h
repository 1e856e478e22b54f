/*
 * safetensors.h — the checkpoint file format (https://huggingface.co/docs/safetensors).
 *
 * A file is an 8-byte little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {"key": "value", ...}}, then the data (offsets count from the
 * first data byte). byold writes and reads F32 tensors only, of at most
 * ST_MAX_DIMS dimensions. The writer lays files out as the reference
 * implementation does (compact JSON, "__metadata__" first, header padded with
 * spaces so the data starts at a multiple of 8), so the same tensors and
 * metadata in the same order give the same bytes; the reader accepts any
 * tensor order, padding with JSON whitespace, and shape [] (a scalar).
 *
 * The reader trusts nothing in the file (it is meant to survive fuzzing) and
 * rejects, with -EINVAL and a message naming the file and the problem: a short
 * file, a header length beyond the file or over 100 MB, a header that does not
 * start with '{', holds a NUL byte, is not JSON or has bytes after the JSON; an
 * entry that is not an object with exactly dtype/shape/data_offsets; an empty
 * or repeated tensor name; a dtype other than F32; more than 4 dimensions; a
 * dimension or offset that is not an integer in [0, 2^53); a shape whose element
 * count overflows; offsets out of range, overlapping or leaving holes (the
 * tensors must tile the data exactly); a size that disagrees with the shape;
 * __metadata__ that is not an object of string values or repeats a key.
 */
#ifndef BYOL_SAFETENSORS_H
#define BYOL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 4

typedef struct {
	const char *name;
	const float *data;
	int ndim;
	int64_t shape[ST_MAX_DIMS];
} st_tensor;

typedef struct {
	const char *key, *value;
} st_meta;

/* Writes the file atomically: to "path.tmp", fsync, rename over path, fsync the
 * directory. Tensors are written in the order given, straight from t[i].data
 * (count * 4 bytes; NULL only when the count is 0); names must be non-empty,
 * unique and not "__metadata__"; metadata keys unique; nmeta = 0 writes no
 * "__metadata__". Returns 0 or -errno with a message naming the file: -EINVAL
 * for bad arguments (nothing is written), -ENOSPC on a full disk, any other
 * write/fsync/close/rename error; on those failures "path.tmp" is removed and
 * any existing file at path is untouched. Only a failure to fsync the directory
 * comes after the rename (the new file is in place but may not survive a
 * crash). If sha256_hex is not NULL it receives the lower-case hex SHA-256 of
 * the whole file (65 bytes with NUL) — computed with libsodium while writing —
 * on success and on a directory fsync failure. */
int safetensors_write(const char *path, const st_tensor *t, int nt, const st_meta *meta,
		      int nmeta, char *sha256_hex, char *err);

typedef struct {
	char *name;
	int ndim;
	int64_t shape[ST_MAX_DIMS];
	size_t count;           /* elements */
	const float *data;      /* (count) into the file's data; 4-byte aligned, the
				 * data block itself 64-byte aligned */
} st_entry;

typedef struct {
	st_entry *t;            /* in header order */
	int nt;
	st_meta *meta;          /* strings owned by the file */
	int nmeta;
	void *priv;             /* the buffer behind data and strings */
} st_file;

/* Reads and validates the whole file into memory (the data is read straight
 * into its aligned buffer: one copy). Returns 0, or -EINVAL for a malformed file
 * (see above), -errno from open/read ("path: No such file or directory"),
 * -EINVAL for something that is not a regular file; on failure *f is zeroed
 * and safetensors_free(f) is harmless. */
int safetensors_read(st_file *f, const char *path, char *err);
/* Same from a buffer in memory (copied: buf need not be aligned and may be
 * freed afterwards); `name` stands for the file in messages. Both run the same
 * checks (the same code: only the reads differ), so fuzzing this one covers
 * the reader of checkpoint files. */
int safetensors_parse(st_file *f, const void *buf, size_t len, const char *name,
		      char *err);

/* The tensor named `name`, or NULL (a linear search). */
const st_entry *safetensors_find(const st_file *f, const char *name);
/* The metadata value for key, or NULL. */
const char *safetensors_meta(const st_file *f, const char *key);

/* Frees what a successful read or parse allocated and zeroes *f. */
void safetensors_free(st_file *f);

#endif
