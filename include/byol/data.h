/*
 * data.h — image datasets in idx format (plain or gzip-compressed).
 *
 * An idx file is a 4-byte magic (0, 0, type, ndim) then ndim big-endian uint32
 * dimensions then the data; byold reads type 0x08 (unsigned byte). Images are
 * idx3 (n, h, w; c = 1) or idx4 (n, h, w, c); labels are idx1 (n). A dataset
 * directory holds train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz],
 * t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz] (the MNIST and
 * Fashion-MNIST names). Every failure names the file and what was wrong with it:
 * a missing file, a bad magic, a truncated file, trailing bytes, counts that
 * disagree between images and labels, a label out of range.
 */
#ifndef BYOL_DATA_H
#define BYOL_DATA_H

#include <stdint.h>

#define DATA_DEFAULT_DIR "/usr/share/datasets/fashion-mnist"

typedef struct {
	int n, h, w, c;         /* images: (n, h, w, c), row-major, HWC per image */
	uint8_t *pixels;        /* (n, h, w, c); owned */
	uint8_t *labels;        /* (n); owned; NULL when loaded without labels */
	int n_classes;          /* 1 + the largest label; 0 without labels */
	float mean, std;        /* of pixels / 255 over the whole set */
} dataset;

/* Reads an idx file of unsigned bytes (gzip or not, detected from the content).
 * On success *data (malloc'd, caller frees), dims[0..*ndim-1] are set; at most
 * 4 dims. Returns 0 or -errno with a message in err naming path. */
int idx_read(const char *path, uint8_t **data, int *ndim, int dims[4], char *err);

/* Loads images and (when labels_path is not NULL) labels. limit > 0 keeps only
 * the first `limit` images. Returns 0 or -errno; on failure d is zeroed. */
int dataset_load(dataset *d, const char *images_path, const char *labels_path,
		 int limit, char *err);

/* Loads train and test sets from dir (names above; the .gz form is tried first,
 * then the plain one). train_limit > 0 keeps the first train_limit train images.
 * test may be NULL. */
int dataset_load_dir(dataset *train, dataset *test, const char *dir, int train_limit,
		     char *err);

void dataset_free(dataset *d);

#endif
