/*
 * data.h — image datasets in idx format (plain or gzip-compressed).
 *
 * An idx file is a 4-byte magic (0, 0, type, ndim) then ndim big-endian uint32
 * dimensions then the data; byold reads type 0x08 (unsigned byte). Images are
 * idx3 (n, h, w; c = 1) or idx4 (n, h, w, c); labels are idx1 (n). A dataset
 * directory holds train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz],
 * t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz] (the MNIST and
 * Fashion-MNIST names). Every failure names the file and what was wrong with it:
 * a missing file, a bad magic, an unsupported type or number of dimensions, a
 * truncated file (expected vs got bytes), trailing bytes, corrupt gzip data,
 * counts that disagree between images and labels, images of different sizes in
 * train and test. (A label, one byte, cannot be out of range on its own; the
 * class count of a train/test pair covers the labels of both, see below.)
 *
 * Codes: -EINVAL for content that is not a well-formed idx file of the expected
 * shape, -ENOENT (or open's errno) when a file cannot be opened, -EIO for a
 * read error, -ENOMEM.
 */
#ifndef BYOL_DATA_H
#define BYOL_DATA_H

#include <stddef.h>
#include <stdint.h>

#define DATA_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"

typedef struct {
	int n, h, w, c;         /* images: (n, h, w, c), row-major, HWC per image */
	uint8_t *pixels;        /* (n, h, w, c); owned */
	uint8_t *labels;        /* (n); owned; NULL when loaded without labels */
	int n_classes;          /* 1 + the largest label; 0 without labels */
	float mean, std;        /* of pixels / 255 over the whole set */
} dataset;

/* Reads an idx file of unsigned bytes (gzip or not, detected from the content:
 * the gzip magic 1f 8b). The whole file is read into memory, then parsed by
 * idx_parse. On success *data (malloc'd, caller frees; at least one byte even
 * when a dimension is 0), dims[0..*ndim-1] are set; 1 to 4 dims, each at most
 * INT_MAX. The data must be exactly the product of the dims: fewer bytes is
 * "truncated: expected N, got M", more is "K trailing bytes". (Anything after
 * the end of a complete gzip stream is ignored, as zlib's gzread does.) The
 * buffer grows with the data read, so a corrupt header promising terabytes
 * reads as truncated. Returns 0 or -errno with a message in err naming path;
 * *data is NULL then. */
int idx_read(const char *path, uint8_t **data, int *ndim, int dims[4], char *err);
/* Same from the len bytes of a file's contents in memory (plain or gzip; one
 * gzip member after another, anything after a complete member ignored as zlib
 * does); `name` stands for the file in messages. Reads nothing but bytes[0,
 * len); the caller keeps them. */
int idx_parse(const void *bytes, size_t len, const char *name, uint8_t **data, int *ndim,
	      int dims[4], char *err);

/* Loads images and (when labels_path is not NULL) labels. Images must have 3 or
 * 4 dims and none 0; labels 1 dim, as many as the images (checked before limit).
 * limit > 0 keeps only the first `limit` images (and labels). mean and std are
 * exact over the kept pixels / 255 (population std; 0 for a constant set).
 * n_classes = 1 + the largest kept label. Returns 0 or -errno; on failure d is
 * zeroed. Free with dataset_free. */
int dataset_load(dataset *d, const char *images_path, const char *labels_path,
		 int limit, char *err);

/* Loads train and test sets from dir (names above; the .gz form is used when it
 * exists, else the plain one; neither is -ENOENT naming both). train_limit > 0
 * keeps the first train_limit train images. test may be NULL. Train and test
 * images must have the same h, w, c; both get n_classes = the larger of the two
 * sets' (so every label of either is below it). Fashion-MNIST (60000 + 10000
 * images) loads in about half a second. On failure both are zeroed. */
int dataset_load_dir(dataset *train, dataset *test, const char *dir, int train_limit,
		     char *err);

/* Frees what d owns and zeroes it; safe on a zeroed or already freed d, or NULL. */
void dataset_free(dataset *d);

#endif
