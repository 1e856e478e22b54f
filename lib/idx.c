/*
 * idx.c — reading idx files (plain or gzip) and image datasets made of them.
 *
 * zlib's gzread reads gzip streams and, transparently, files that are not gzip
 * at all, so one code path serves both forms.
 */
#include "byol/data.h"
#include "byol/error.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define IDX_TYPE_UBYTE 0x08
#define IDX_CHUNK (1u << 26)    /* largest single gzread, and the first allocation */

/* Fills err for a failed gzread: corrupt or cut-short gzip data, or an I/O error.
 * got and want count from the start of what is being read (`what`). */
static int gz_fail(gzFile f, const char *path, const char *what, size_t got, size_t want,
		   char *err)
{
	int zerr;
	const char *msg = gzerror(f, &zerr);
	size_t plen = strlen(path);     /* zlib's message starts "path: " */
	if (strncmp(msg, path, plen) == 0 && strncmp(msg + plen, ": ", 2) == 0)
		msg += plen + 2;
	if (zerr == Z_ERRNO)
		return byol_err(err, -EIO, "%s: read error in %s: %s", path, what,
				strerror(errno));
	if (zerr == Z_BUF_ERROR)        /* the gzip stream ends early */
		return byol_err(err, -EINVAL,
				"%s: truncated gzip stream: expected %zu bytes of %s, got %zu",
				path, want, what, got);
	return byol_err(err, -EINVAL, "%s: corrupt gzip data in %s after %zu bytes: %s", path,
			what, got, msg);
}

/* Reads up to len bytes into buf; *got is how many arrived (less at a clean end of
 * file). Returns 0, or a gz_fail code when the stream is corrupt or unreadable;
 * base and want place the read inside `what` for that message. */
static int gz_read_all(gzFile f, uint8_t *buf, size_t len, size_t *got, const char *path,
		       const char *what, size_t base, size_t want, char *err)
{
	*got = 0;
	while (*got < len) {
		size_t ask = len - *got;
		if (ask > IDX_CHUNK)
			ask = IDX_CHUNK;
		int r = gzread(f, buf + *got, (unsigned)ask);
		if (r < 0)
			return gz_fail(f, path, what, base + *got, want, err);
		if (r == 0) {
			int zerr;
			gzerror(f, &zerr);
			if (zerr != Z_OK)
				return gz_fail(f, path, what, base + *got, want, err);
			break;
		}
		*got += (size_t)r;
	}
	return 0;
}

static void format_dims(char *s, size_t len, int ndim, const int dims[4])
{
	size_t at = 0;
	s[0] = 0;
	for (int i = 0; i < ndim && at < len; i++)
		at += (size_t)snprintf(s + at, len - at, i ? "x%d" : "%d", dims[i]);
}

int idx_read(const char *path, uint8_t **data, int *ndim, int dims[4], char *err)
{
	*data = NULL;
	*ndim = 0;
	uint8_t *buf = NULL;
	int rc;

	errno = 0;
	gzFile f = gzopen(path, "rbe");     /* e: close on exec */
	if (!f) {
		int e = errno ? errno : ENOMEM;
		return byol_err(err, -e, "%s: cannot open: %s", path, strerror(e));
	}
	gzbuffer(f, 1u << 17);

	uint8_t head[4 + 4 * 4];
	size_t got;
	if ((rc = gz_read_all(f, head, 4, &got, path, "the header", 0, 4, err)) < 0)
		goto fail;
	if (got < 4) {
		rc = byol_err(err, -EINVAL,
			      "%s: truncated: expected a 4-byte idx header, got %zu bytes", path, got);
		goto fail;
	}
	uint32_t magic = (uint32_t)head[0] << 24 | (uint32_t)head[1] << 16 |
			 (uint32_t)head[2] << 8 | head[3];
	if (head[0] != 0 || head[1] != 0) {
		rc = byol_err(err, -EINVAL,
			      "%s: bad magic 0x%08x, expected 0x0000TTNN (an idx file)", path, magic);
		goto fail;
	}
	if (head[2] != IDX_TYPE_UBYTE) {
		rc = byol_err(err, -EINVAL,
			      "%s: unsupported idx data type 0x%02x (magic 0x%08x), "
			      "expected 0x08 (unsigned byte)", path, head[2], magic);
		goto fail;
	}
	int nd = head[3];
	if (nd < 1 || nd > 4) {
		rc = byol_err(err, -EINVAL, "%s: %d dimensions (magic 0x%08x), expected 1 to 4",
			      path, nd, magic);
		goto fail;
	}
	if ((rc = gz_read_all(f, head + 4, 4 * (size_t)nd, &got, path, "the header", 4,
				4 + 4 * (size_t)nd, err)) < 0)
		goto fail;
	if (got < 4 * (size_t)nd) {
		rc = byol_err(err, -EINVAL,
			      "%s: truncated: expected %d dimension sizes (%d bytes), got %zu bytes",
			      path, nd, 4 * nd, got);
		goto fail;
	}
	size_t total = 1;
	int overflow = 0;
	for (int i = 0; i < nd; i++) {
		const uint8_t *p = head + 4 + 4 * i;
		uint32_t d = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
			     (uint32_t)p[2] << 8 | p[3];
		if (d > INT_MAX) {
			rc = byol_err(err, -EINVAL, "%s: dimension %d is %u, too large", path, i, d);
			goto fail;
		}
		dims[i] = (int)d;
		if (d && total > SIZE_MAX / d)
			overflow = 1;
		total *= d;
	}
	char shape[64];
	format_dims(shape, sizeof(shape), nd, dims);
	if (overflow) {
		rc = byol_err(err, -EINVAL, "%s: dimensions %s overflow the address space", path,
			      shape);
		goto fail;
	}

	/* Grow the buffer as data arrives rather than trusting the header with one huge
	 * allocation: a corrupt header then reads as truncated, not out of memory. */
	size_t cap = total < IDX_CHUNK ? total : IDX_CHUNK;
	size_t have = 0;
	buf = malloc(cap ? cap : 1);
	if (!buf) {
		rc = byol_err(err, -ENOMEM, "%s: cannot allocate %zu bytes", path, cap);
		goto fail;
	}
	for (;;) {
		if ((rc = gz_read_all(f, buf + have, cap - have, &got, path, "the data", have,
				      total, err)) < 0)
			goto fail;
		have += got;
		if (have < cap || cap == total)
			break;
		size_t ncap = cap > total / 2 ? total : 2 * cap;
		uint8_t *nbuf = realloc(buf, ncap);
		if (!nbuf) {
			rc = byol_err(err, -ENOMEM, "%s: cannot allocate %zu bytes", path, ncap);
			goto fail;
		}
		buf = nbuf;
		cap = ncap;
	}
	if (have < total) {
		rc = byol_err(err, -EINVAL, "%s: truncated: expected %zu data bytes (%s), got %zu",
			      path, total, shape, have);
		goto fail;
	}

	/* Nothing may follow the data. */
	uint8_t extra[4096];
	size_t trailing = 0;
	for (;;) {
		if ((rc = gz_read_all(f, extra, sizeof(extra), &got, path, "trailing data", 0, 0,
				      err)) < 0)
			goto fail;
		trailing += got;
		if (got < sizeof(extra))
			break;
	}
	if (trailing) {
		rc = byol_err(err, -EINVAL, "%s: %zu trailing bytes after the %zu data bytes (%s)",
			      path, trailing, total, shape);
		goto fail;
	}

	gzclose(f);
	*data = buf;
	*ndim = nd;
	return 0;
fail:
	free(buf);
	gzclose(f);
	return rc;
}

/* mean and std of pixels / 255, from a histogram of the bytes (exact sums). */
static void pixel_stats(const uint8_t *px, size_t count, float *mean, float *std)
{
	uint64_t hist[256] = { 0 };
	for (size_t i = 0; i < count; i++)
		hist[px[i]]++;
	double s1 = 0, s2 = 0;
	for (int v = 0; v < 256; v++) {
		s1 += (double)hist[v] * v;
		s2 += (double)hist[v] * v * v;
	}
	double m = count ? s1 / (double)count : 0;
	double var = count ? s2 / (double)count - m * m : 0;
	*mean = (float)(m / 255.0);
	*std = (float)(sqrt(var > 0 ? var : 0) / 255.0);
}

int dataset_load(dataset *d, const char *images_path, const char *labels_path, int limit,
		 char *err)
{
	memset(d, 0, sizeof(*d));
	uint8_t *px = NULL, *lab = NULL;
	int nd, dims[4], rc;

	if ((rc = idx_read(images_path, &px, &nd, dims, err)) < 0)
		return rc;
	if (nd != 3 && nd != 4) {
		rc = byol_err(err, -EINVAL,
			      "%s: images have %d dimensions, expected 3 (n, h, w) or 4 (n, h, w, c)",
			      images_path, nd);
		goto fail;
	}
	int n = dims[0], h = dims[1], w = dims[2], c = nd == 4 ? dims[3] : 1;
	if (n == 0 || h == 0 || w == 0 || c == 0) {
		rc = byol_err(err, -EINVAL, "%s: empty image set (%d images of %dx%dx%d)",
			      images_path, n, h, w, c);
		goto fail;
	}
	if ((size_t)h * w * c > INT_MAX) {
		rc = byol_err(err, -EINVAL, "%s: images of %dx%dx%d are too large", images_path,
			      h, w, c);
		goto fail;
	}

	if (labels_path) {
		int lnd, ldims[4];
		if ((rc = idx_read(labels_path, &lab, &lnd, ldims, err)) < 0)
			goto fail;
		if (lnd != 1) {
			rc = byol_err(err, -EINVAL, "%s: labels have %d dimensions, expected 1",
				      labels_path, lnd);
			goto fail;
		}
		if (ldims[0] != n) {
			rc = byol_err(err, -EINVAL, "%s: %d labels but %s has %d images",
				      labels_path, ldims[0], images_path, n);
			goto fail;
		}
	}

	if (limit > 0 && limit < n) {
		size_t isz = (size_t)h * w * c;
		uint8_t *p = realloc(px, (size_t)limit * isz);
		if (p)          /* shrinking; keep the old block if realloc declines */
			px = p;
		n = limit;
	}

	d->n = n;
	d->h = h;
	d->w = w;
	d->c = c;
	d->pixels = px;
	d->labels = lab;
	if (lab) {
		int mx = 0;
		for (int i = 0; i < n; i++)
			mx = lab[i] > mx ? lab[i] : mx;
		d->n_classes = mx + 1;
	}
	pixel_stats(px, (size_t)n * h * w * c, &d->mean, &d->std);
	return 0;
fail:
	free(px);
	free(lab);
	memset(d, 0, sizeof(*d));
	return rc;
}

/* dir/name.gz when it exists, else dir/name when it exists; else -ENOENT. */
static int find_file(char *out, size_t len, const char *dir, const char *name, char *err)
{
	struct stat st;
	int k = snprintf(out, len, "%s/%s.gz", dir, name);
	if (k < 0 || (size_t)k >= len)
		return byol_err(err, -ENAMETOOLONG, "%s/%s.gz: path too long", dir, name);
	if (stat(out, &st) == 0)
		return 0;
	snprintf(out, len, "%s/%s", dir, name);
	if (stat(out, &st) == 0)
		return 0;
	return byol_err(err, -ENOENT, "%s/%s.gz: no such file (nor %s/%s)", dir, name, dir,
			name);
}

static int load_split(dataset *d, const char *dir, const char *images, const char *labels,
		      int limit, char *err)
{
	char ip[4096], lp[4096];
	int rc;
	memset(d, 0, sizeof(*d));
	if ((rc = find_file(ip, sizeof(ip), dir, images, err)) < 0)
		return rc;
	if ((rc = find_file(lp, sizeof(lp), dir, labels, err)) < 0)
		return rc;
	return dataset_load(d, ip, lp, limit, err);
}

int dataset_load_dir(dataset *train, dataset *test, const char *dir, int train_limit,
		     char *err)
{
	int rc = load_split(train, dir, "train-images-idx3-ubyte", "train-labels-idx1-ubyte",
			    train_limit, err);
	if (rc < 0) {
		if (test)
			memset(test, 0, sizeof(*test));
		return rc;
	}
	if (!test)
		return 0;
	rc = load_split(test, dir, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 0, err);
	if (rc < 0) {
		dataset_free(train);
		return rc;
	}
	if (test->h != train->h || test->w != train->w || test->c != train->c) {
		rc = byol_err(err, -EINVAL,
			      "%s: test images are %dx%dx%d but train images are %dx%dx%d", dir,
			      test->h, test->w, test->c, train->h, train->w, train->c);
		dataset_free(train);
		dataset_free(test);
		return rc;
	}
	/* One class count for both splits, so that a label seen only in the test set
	 * (or only in a limited train set's tail) is still in range for either. */
	int k = train->n_classes > test->n_classes ? train->n_classes : test->n_classes;
	train->n_classes = test->n_classes = k;
	return 0;
}

void dataset_free(dataset *d)
{
	if (!d)
		return;
	free(d->pixels);
	free(d->labels);
	memset(d, 0, sizeof(*d));
}
