/*
 * idx.c — reading idx files (plain or gzip) and image datasets made of them.
 *
 * idx_read maps (or reads) the whole file and hands its bytes to idx_parse,
 * which does every check; so a fuzzer driving idx_parse exercises the code that
 * loads real datasets. A file that starts with the gzip magic is inflated with zlib (one
 * gzip member after another, anything else after a complete member ignored, as
 * zlib's gzread does); any other file is taken as it is.
 */
#include "byol/data.h"
#include "byol/error.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define IDX_TYPE_UBYTE 0x08
#define IDX_CHUNK (1u << 26)    /* largest first allocation for the data */
#define IDX_READ_MIN (1u << 16) /* first read buffer for a file of unknown size */

/* The bytes of an idx file, in memory: as they are, or inflated from gzip. */
typedef struct {
	const char *name;       /* the file, in messages */
	const uint8_t *in;      /* (len) the file's bytes */
	size_t len;
	size_t at;              /* bytes of `in` consumed (plain) or given to zlib */
	int gz;                 /* a gzip file */
	int ended;              /* gzip: the last member ended; nothing more comes */
	z_stream z;
} idx_source;

static int is_gzip(const uint8_t *p, size_t len)
{
	return len >= 2 && p[0] == 0x1f && p[1] == 0x8b;
}

static int source_open(idx_source *s, const void *buf, size_t len, const char *name,
		       char *err)
{
	memset(s, 0, sizeof(*s));
	s->name = name;
	s->in = buf;
	s->len = len;
	s->gz = is_gzip(s->in, len);
	if (!s->gz)
		return 0;
	int zr = inflateInit2(&s->z, 16 + MAX_WBITS);       /* gzip wrapper only */
	if (zr != Z_OK) {
		s->gz = 0;
		return byol_err(err, zr == Z_MEM_ERROR ? -ENOMEM : -EINVAL,
				"%s: cannot start inflating: %s", name, zError(zr));
	}
	return 0;
}

static void source_close(idx_source *s)
{
	if (s->gz)
		inflateEnd(&s->z);
	s->gz = 0;
}

/* A guess at how many more bytes the source holds: exact for a plain file, 0
 * once a gzip stream has ended, else four times the compressed bytes left. */
static size_t source_hint(const idx_source *s)
{
	if (!s->gz)
		return s->len - s->at;
	if (s->ended)
		return 0;
	size_t left = s->len - s->at + s->z.avail_in;
	return left > SIZE_MAX / 8 ? SIZE_MAX / 2 : 4 * left + IDX_READ_MIN;
}

/* Reads up to len bytes into buf; *got is how many arrived (fewer only at the
 * end of the data). Returns 0, or -EINVAL for gzip data that is corrupt or ends
 * inside a member; base and want place the read inside `what` for messages. */
static int source_read(idx_source *s, uint8_t *buf, size_t len, size_t *got,
		       const char *what, size_t base, size_t want, char *err)
{
	*got = 0;
	if (!s->gz) {
		size_t n = s->len - s->at < len ? s->len - s->at : len;
		memcpy(buf, s->in + s->at, n);
		s->at += n;
		*got = n;
		return 0;
	}
	while (*got < len && !s->ended) {
		if (s->z.avail_in == 0 && s->at < s->len) {
			size_t n = s->len - s->at;
			s->z.next_in = (Bytef *)(s->in + s->at);
			s->z.avail_in = n > UINT_MAX ? UINT_MAX : (uInt)n;
			s->at += s->z.avail_in;
		}
		size_t ask = len - *got > UINT_MAX ? UINT_MAX : len - *got;
		s->z.next_out = buf + *got;
		s->z.avail_out = (uInt)ask;
		int zr = inflate(&s->z, Z_NO_FLUSH);
		*got += ask - s->z.avail_out;
		if (zr == Z_OK)
			continue;
		if (zr == Z_STREAM_END) {
			/* another member may follow; anything else is ignored */
			if (is_gzip(s->z.next_in, s->z.avail_in) ||
			    (s->z.avail_in == 0 && is_gzip(s->in + s->at, s->len - s->at)))
				inflateReset(&s->z);
			else
				s->ended = 1;
			continue;
		}
		if (zr == Z_BUF_ERROR && s->z.avail_in == 0 && s->at == s->len)
			return byol_err(err, -EINVAL,
					"%s: truncated gzip stream: expected %zu bytes of %s, got %zu",
					s->name, want, what, base + *got);
		if (zr == Z_MEM_ERROR)
			return byol_err(err, -ENOMEM, "%s: out of memory inflating %s", s->name,
					what);
		return byol_err(err, -EINVAL, "%s: corrupt gzip data in %s after %zu bytes: %s",
				s->name, what, base + *got, s->z.msg ? s->z.msg : zError(zr));
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

/* The header: magic, type, dimensions; sets *total to their product. */
static int parse_header(idx_source *s, int *ndim, int dims[4], size_t *total, char *err)
{
	const char *name = s->name;
	uint8_t head[4 + 4 * 4];
	size_t got;
	int rc;
	if ((rc = source_read(s, head, 4, &got, "the header", 0, 4, err)) < 0)
		return rc;
	if (got < 4)
		return byol_err(err, -EINVAL,
				"%s: truncated: expected a 4-byte idx header, got %zu bytes", name, got);
	uint32_t magic = (uint32_t)head[0] << 24 | (uint32_t)head[1] << 16 |
			 (uint32_t)head[2] << 8 | head[3];
	if (head[0] != 0 || head[1] != 0)
		return byol_err(err, -EINVAL,
				"%s: bad magic 0x%08x, expected 0x0000TTNN (an idx file)", name, magic);
	if (head[2] != IDX_TYPE_UBYTE)
		return byol_err(err, -EINVAL,
				"%s: unsupported idx data type 0x%02x (magic 0x%08x), "
				"expected 0x08 (unsigned byte)", name, head[2], magic);
	int nd = head[3];
	if (nd < 1 || nd > 4)
		return byol_err(err, -EINVAL, "%s: %d dimensions (magic 0x%08x), expected 1 to 4",
				name, nd, magic);
	if ((rc = source_read(s, head + 4, 4 * (size_t)nd, &got, "the header", 4,
			      4 + 4 * (size_t)nd, err)) < 0)
		return rc;
	if (got < 4 * (size_t)nd)
		return byol_err(err, -EINVAL,
				"%s: truncated: expected %d dimension sizes (%d bytes), got %zu bytes",
				name, nd, 4 * nd, got);
	size_t n = 1;
	int overflow = 0;
	for (int i = 0; i < nd; i++) {
		const uint8_t *p = head + 4 + 4 * i;
		uint32_t d = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
			     (uint32_t)p[2] << 8 | p[3];
		if (d > INT_MAX)
			return byol_err(err, -EINVAL, "%s: dimension %d is %u, too large", name, i, d);
		dims[i] = (int)d;
		if (d && n > SIZE_MAX / d)
			overflow = 1;
		n *= d;
	}
	if (overflow) {
		char shape[64];
		format_dims(shape, sizeof(shape), nd, dims);
		return byol_err(err, -EINVAL, "%s: dimensions %s overflow the address space", name,
				shape);
	}
	*ndim = nd;
	*total = n;
	return 0;
}

int idx_parse(const void *bytes, size_t len, const char *name, uint8_t **data, int *ndim,
	      int dims[4], char *err)
{
	*data = NULL;
	*ndim = 0;
	uint8_t *buf = NULL;
	idx_source s;
	int nd = 0, rc;
	size_t total = 0;

	if ((rc = source_open(&s, bytes, len, name, err)) < 0)
		return rc;
	if ((rc = parse_header(&s, &nd, dims, &total, err)) < 0)
		goto fail;
	char shape[64];
	format_dims(shape, sizeof(shape), nd, dims);

	/* Grow the buffer as data arrives rather than trusting the header with one huge
	 * allocation: a corrupt header then reads as truncated, not out of memory. */
	size_t cap = total < IDX_CHUNK ? total : IDX_CHUNK, have = 0, got;
	if (cap > source_hint(&s))
		cap = source_hint(&s);
	buf = malloc(cap ? cap : 1);
	if (!buf) {
		rc = byol_err(err, -ENOMEM, "%s: cannot allocate %zu bytes", name, cap);
		goto fail;
	}
	for (;;) {
		if ((rc = source_read(&s, buf + have, cap - have, &got, "the data", have, total,
				      err)) < 0)
			goto fail;
		have += got;
		if (have < cap || have == total || source_hint(&s) == 0)
			break;
		size_t ncap = cap > total / 2 ? total : 2 * cap;
		uint8_t *nbuf = realloc(buf, ncap);
		if (!nbuf) {
			rc = byol_err(err, -ENOMEM, "%s: cannot allocate %zu bytes", name, ncap);
			goto fail;
		}
		buf = nbuf;
		cap = ncap;
	}
	if (have < total) {
		rc = byol_err(err, -EINVAL, "%s: truncated: expected %zu data bytes (%s), got %zu",
			      name, total, shape, have);
		goto fail;
	}

	/* Nothing may follow the data. */
	uint8_t extra[4096];
	size_t trailing = 0;
	for (;;) {
		if ((rc = source_read(&s, extra, sizeof(extra), &got, "trailing data", 0, 0,
				      err)) < 0)
			goto fail;
		trailing += got;
		if (got < sizeof(extra))
			break;
	}
	if (trailing) {
		rc = byol_err(err, -EINVAL, "%s: %zu trailing bytes after the %zu data bytes (%s)",
			      name, trailing, total, shape);
		goto fail;
	}

	source_close(&s);
	*data = buf;
	*ndim = nd;
	return 0;
fail:
	free(buf);
	source_close(&s);
	return rc;
}

/* The whole of a file that is not a regular one (a pipe, a device) into *out
 * (malloc'd, *len bytes). */
static int read_stream(int fd, const char *path, uint8_t **out, size_t *len, char *err)
{
	size_t cap = IDX_READ_MIN, n = 0;
	uint8_t *buf = malloc(cap);
	if (!buf)
		return byol_err(err, -ENOMEM, "%s: cannot allocate %zu bytes", path, cap);
	for (;;) {
		if (n == cap) {
			uint8_t *nbuf = cap <= SIZE_MAX / 2 ? realloc(buf, 2 * cap) : NULL;
			if (!nbuf) {
				free(buf);
				return byol_err(err, -ENOMEM, "%s: cannot allocate %zu bytes", path,
						cap);
			}
			buf = nbuf;
			cap *= 2;
		}
		ssize_t r = read(fd, buf + n, cap - n > (1u << 30) ? (1u << 30) : cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			free(buf);
			return byol_err(err, -EIO, "%s: read error: %s", path, strerror(e));
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	*out = buf;
	*len = n;
	return 0;
}

/* The file is read into memory, not mapped: a mapped file truncated while it
 * loads would kill the process (SIGBUS), and byold loads datasets too. */
int idx_read(const char *path, uint8_t **data, int *ndim, int dims[4], char *err)
{
	*data = NULL;
	*ndim = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		return byol_err(err, -e, "%s: cannot open: %s", path, strerror(e));
	}
	uint8_t *bytes = NULL;
	size_t len = 0;
	int rc = read_stream(fd, path, &bytes, &len, err);
	close(fd);
	if (rc < 0)
		return rc;
	rc = idx_parse(bytes, len, path, data, ndim, dims, err);
	free(bytes);
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
