/*
 * test_idx.c — idx files, plain and gzip, well-formed and not; datasets and
 * dataset directories; Fashion-MNIST itself when it is installed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "byol/data.h"
#include "byol/error.h"

static char tmpdir[256];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/byol_test_idx.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* tmpdir/name, in a static rotating buffer (a few live at once). */
static const char *tpath(const char *name)
{
	static char buf[8][512];
	static int at;
	char *p = buf[at++ % 8];
	snprintf(p, 512, "%s/%s", tmpdir, name);
	return p;
}

/* Writes len bytes to path, gzip-compressed when gz. */
static void write_bytes(const char *path, const void *bytes, size_t len, int gz)
{
	if (gz) {
		gzFile f = gzopen(path, "wb");
		assert_non_null(f);
		if (len)
			assert_int_equal(gzwrite(f, bytes, (unsigned)len), (int)len);
		assert_int_equal(gzclose(f), Z_OK);
	} else {
		FILE *f = fopen(path, "wb");
		assert_non_null(f);
		if (len)
			assert_int_equal(fwrite(bytes, 1, len, f), len);
		assert_int_equal(fclose(f), 0);
	}
}

/* An idx file with header (0, 0, type, ndim), dims, then `len` bytes of data
 * (which need not agree with dims), then `extra` bytes of trailing zeros. */
static void write_idx(const char *path, int gz, int type, int ndim, const uint32_t *dims,
		      const uint8_t *data, size_t len, size_t extra)
{
	size_t n = 4 + 4 * (size_t)ndim + len + extra;
	uint8_t *b = calloc(n, 1);
	assert_non_null(b);
	b[2] = (uint8_t)type;
	b[3] = (uint8_t)ndim;
	for (int i = 0; i < ndim; i++) {
		b[4 + 4 * i] = (uint8_t)(dims[i] >> 24);
		b[5 + 4 * i] = (uint8_t)(dims[i] >> 16);
		b[6 + 4 * i] = (uint8_t)(dims[i] >> 8);
		b[7 + 4 * i] = (uint8_t)dims[i];
	}
	if (len)
		memcpy(b + 4 + 4 * ndim, data, len);
	write_bytes(path, b, n, gz);
	free(b);
}

static uint8_t pattern(size_t i)
{
	return (uint8_t)(i * 37 + (i >> 3));
}

static uint8_t *make_data(size_t n)
{
	uint8_t *d = malloc(n ? n : 1);
	assert_non_null(d);
	for (size_t i = 0; i < n; i++)
		d[i] = pattern(i);
	return d;
}

static void read_back(const char *path, int ndim_want, const uint32_t *dims_want, size_t n)
{
	uint8_t *data = NULL;
	int ndim = -1, dims[4];
	char err[BYOL_ERR_LEN] = "";
	int rc = idx_read(path, &data, &ndim, dims, err);
	if (rc)
		fail_msg("%s", err);
	assert_int_equal(ndim, ndim_want);
	for (int i = 0; i < ndim; i++)
		assert_int_equal(dims[i], dims_want[i]);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(data[i], pattern(i));
	free(data);
}

static void test_read_plain_and_gz(void **state)
{
	const uint32_t d3[3] = { 3, 4, 5 }, d1[1] = { 7 }, d4[4] = { 2, 3, 4, 3 };
	uint8_t *data = make_data(72);
	for (int gz = 0; gz < 2; gz++) {
		const char *p3 = tpath(gz ? "rt3.gz" : "rt3"), *p1 = tpath(gz ? "rt1.gz" : "rt1");
		const char *p4 = tpath(gz ? "rt4.gz" : "rt4");
		write_idx(p3, gz, 0x08, 3, d3, data, 60, 0);
		write_idx(p1, gz, 0x08, 1, d1, data, 7, 0);
		write_idx(p4, gz, 0x08, 4, d4, data, 72, 0);
		read_back(p3, 3, d3, 60);
		read_back(p1, 1, d1, 7);
		read_back(p4, 4, d4, 72);
	}
	free(data);
}

/* Runs idx_read on a malformed file: asserts rc, that nothing is returned, and
 * that err names the file and contains each of the given words. */
static void expect_fail(const char *path, int want_rc, const char *w1, const char *w2)
{
	uint8_t *data = (uint8_t *)&data;       /* must be reset to NULL */
	int ndim = 9, dims[4];
	char err[BYOL_ERR_LEN] = "";
	int rc = idx_read(path, &data, &ndim, dims, err);
	if (rc != want_rc || !strstr(err, path) || (w1 && !strstr(err, w1)) ||
	    (w2 && !strstr(err, w2)))
		fail_msg("%s: rc %d (want %d), err \"%s\" (want \"%s\", \"%s\")", path, rc,
			 want_rc, err, w1 ? w1 : "", w2 ? w2 : "");
	assert_null(data);
}

static void test_bad_header(void **state)
{
	const uint32_t d3[3] = { 3, 4, 5 }, d5[5] = { 1, 1, 1, 1, 1 };
	uint8_t *data = make_data(60);
	for (int gz = 0; gz < 2; gz++) {
		char name[64];
		/* bad magic: the first two bytes must be zero */
		snprintf(name, sizeof(name), "magic%d", gz);
		uint8_t b[16] = { 0x1f, 0x02, 0x08, 0x01, 0, 0, 0, 1, 9 };
		write_bytes(tpath(name), b, 9, gz);
		expect_fail(tpath(name), -EINVAL, "magic", "0x1f020801");
		/* float data (type 0x0D) is not read */
		snprintf(name, sizeof(name), "type%d", gz);
		write_idx(tpath(name), gz, 0x0D, 3, d3, data, 60, 0);
		expect_fail(tpath(name), -EINVAL, "type 0x0d", NULL);
		/* 0 and 5 dimensions */
		snprintf(name, sizeof(name), "ndim0_%d", gz);
		write_idx(tpath(name), gz, 0x08, 0, d3, data, 60, 0);
		expect_fail(tpath(name), -EINVAL, "0 dimensions", NULL);
		snprintf(name, sizeof(name), "ndim5_%d", gz);
		write_idx(tpath(name), gz, 0x08, 5, d5, data, 1, 0);
		expect_fail(tpath(name), -EINVAL, "5 dimensions", NULL);
		/* header cut short: 2 bytes, then a header without all its dims */
		snprintf(name, sizeof(name), "short%d", gz);
		write_bytes(tpath(name), b + 4, 2, gz);
		expect_fail(tpath(name), -EINVAL, "truncated", "got 2");
		snprintf(name, sizeof(name), "dimshort%d", gz);
		const uint8_t hd[10] = { 0, 0, 8, 3, 0, 0, 0, 3, 0, 0 };
		write_bytes(tpath(name), hd, sizeof(hd), gz);
		expect_fail(tpath(name), -EINVAL, "truncated", "dimension");
		/* empty file */
		snprintf(name, sizeof(name), "empty%d", gz);
		write_bytes(tpath(name), b, 0, gz);
		expect_fail(tpath(name), -EINVAL, "truncated", "got 0");
	}
	free(data);
}

static void test_bad_length(void **state)
{
	const uint32_t d3[3] = { 3, 4, 5 };
	uint8_t *data = make_data(64);
	for (int gz = 0; gz < 2; gz++) {
		const char *t = tpath(gz ? "trunc.gz" : "trunc");
		write_idx(t, gz, 0x08, 3, d3, data, 50, 0);
		expect_fail(t, -EINVAL, "expected 60", "got 50");
		const char *x = tpath(gz ? "trail.gz" : "trail");
		write_idx(x, gz, 0x08, 3, d3, data, 60, 3);
		expect_fail(x, -EINVAL, "3 trailing bytes", NULL);
	}
	/* A header promising 2^60 bytes over a tiny file reads as truncated (the
	 * buffer grows with the data rather than trusting the header). */
	const uint32_t huge[2] = { 1u << 30, 1u << 30 };
	write_idx(tpath("huge"), 0, 0x08, 2, huge, data, 10, 0);
	expect_fail(tpath("huge"), -EINVAL, "expected 1152921504606846976", "got 10");
	free(data);
}

/* A file larger than the first allocation makes the buffer grow. */
static void test_large_file(void **state)
{
	const size_t n = 130u << 20;    /* buffer 64 MiB, then 128, then 130 */
	uint8_t *data = make_data(n);
	const uint32_t d2[2] = { (uint32_t)(n / 1024), 1024 };
	write_idx(tpath("large"), 0, 0x08, 2, d2, data, n, 0);
	free(data);
	read_back(tpath("large"), 2, d2, n);
	unlink(tpath("large"));
}

static void test_not_idx(void **state)
{
	/* text is read as a plain file, whose magic is wrong */
	const char *text = "hello, this is not an idx file\n";
	write_bytes(tpath("text"), text, strlen(text), 0);
	expect_fail(tpath("text"), -EINVAL, "magic", "0x68656c6c");

	/* a gzip header followed by garbage */
	uint8_t g[64] = { 0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 3 };
	for (int i = 10; i < 64; i++)
		g[i] = (uint8_t)(0xff - 3 * i);
	write_bytes(tpath("garbage.gz"), g, sizeof(g), 0);
	expect_fail(tpath("garbage.gz"), -EINVAL, "gzip", NULL);

	/* a valid gzip file cut in the middle of its deflate stream */
	const uint32_t d3[3] = { 30, 20, 20 };
	uint8_t *data = make_data(12000);
	write_idx(tpath("cut.gz"), 1, 0x08, 3, d3, data, 12000, 0);
	free(data);
	struct stat st;
	assert_int_equal(stat(tpath("cut.gz"), &st), 0);
	assert_true(st.st_size > 100);
	assert_int_equal(truncate(tpath("cut.gz"), st.st_size / 2), 0);
	expect_fail(tpath("cut.gz"), -EINVAL, "truncated", "expected 12000");

	/* missing, and a directory */
	expect_fail(tpath("no-such-file"), -ENOENT, "No such file", NULL);
	expect_fail(tmpdir, -EIO, NULL, NULL);
}

/* The gzip form of len bytes, in memory (*out malloc'd). */
static size_t gzip_bytes(const uint8_t *in, size_t len, uint8_t **out)
{
	z_stream z = { 0 };
	assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY),
			 Z_OK);
	size_t cap = deflateBound(&z, len);
	*out = malloc(cap);
	assert_non_null(*out);
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)len;
	z.next_out = *out;
	z.avail_out = (uInt)cap;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	deflateEnd(&z);
	return cap - z.avail_out;
}

/* idx_parse reads from memory what idx_read reads from a file, plain or gzip,
 * and names the given name in messages. */
static void test_parse_memory(void **state)
{
	const uint32_t d3[3] = { 3, 4, 5 };
	uint8_t *data = make_data(60), *gz, *out;
	write_idx(tpath("mem"), 0, 0x08, 3, d3, data, 60, 0);
	FILE *f = fopen(tpath("mem"), "rb");
	assert_non_null(f);
	uint8_t file[128];
	size_t len = fread(file, 1, sizeof(file), f);
	fclose(f);
	assert_int_equal(len, 4 + 12 + 60);
	size_t gzlen = gzip_bytes(file, len, &gz);
	int ndim, dims[4];
	char err[BYOL_ERR_LEN] = "";
	for (int form = 0; form < 2; form++) {
		int rc = idx_parse(form ? gz : file, form ? gzlen : len, "memory", &out, &ndim,
				   dims, err);
		if (rc)
			fail_msg("%s", err);
		assert_int_equal(ndim, 3);
		assert_int_equal(dims[2], 5);
		assert_memory_equal(out, data, 60);
		free(out);
	}
	/* a byte short: truncated, naming the buffer */
	assert_int_equal(idx_parse(file, len - 1, "memory", &out, &ndim, dims, err), -EINVAL);
	assert_null(out);
	assert_non_null(strstr(err, "memory: truncated"));
	assert_int_equal(idx_parse(gz, gzlen - 1, "memory.gz", &out, &ndim, dims, err), -EINVAL);
	assert_non_null(strstr(err, "memory.gz: "));
	/* nothing at all */
	assert_int_equal(idx_parse(file, 0, "nothing", &out, &ndim, dims, err), -EINVAL);
	assert_non_null(strstr(err, "got 0 bytes"));
	free(gz);
	free(data);
}

/* Gzip members one after another make one stream; bytes after a complete member
 * that do not start another are ignored, as zlib's gzread does; a member cut
 * in its header is truncated. */
static void test_gzip_members(void **state)
{
	const uint32_t d1[1] = { 40 };
	uint8_t *data = make_data(40), *z1, *z2, *out;
	uint8_t file[64];
	memcpy(file, (const uint8_t[]){ 0, 0, 8, 1, 0, 0, 0, 40 }, 8);
	memcpy(file + 8, data, 40);
	size_t n1 = gzip_bytes(file, 20, &z1), n2 = gzip_bytes(file + 20, 28, &z2);
	uint8_t *cat = malloc(n1 + n2 + 8);
	assert_non_null(cat);
	memcpy(cat, z1, n1);
	memcpy(cat + n1, z2, n2);
	int ndim, dims[4];
	char err[BYOL_ERR_LEN] = "";
	int rc = idx_parse(cat, n1 + n2, "two", &out, &ndim, dims, err);
	if (rc)
		fail_msg("%s", err);
	assert_int_equal(dims[0], 40);
	assert_memory_equal(out, data, 40);
	free(out);
	/* the same through a file */
	write_bytes(tpath("two.gz"), cat, n1 + n2, 0);
	read_back(tpath("two.gz"), 1, d1, 40);

	/* one complete member, then garbage */
	free(z1);
	n1 = gzip_bytes(file, 48, &z1);
	memcpy(cat, z1, n1);
	memcpy(cat + n1, "garbage", 7);
	rc = idx_parse(cat, n1 + 7, "garbage", &out, &ndim, dims, err);
	if (rc)
		fail_msg("%s", err);
	assert_memory_equal(out, data, 40);
	free(out);
	/* then the start of a member's header */
	memcpy(cat + n1, "\x1f\x8b\x08", 3);
	assert_int_equal(idx_parse(cat, n1 + 3, "cut", &out, &ndim, dims, err), -EINVAL);
	assert_non_null(strstr(err, "cut: truncated gzip stream"));
	free(cat);
	free(z1);
	free(z2);
	free(data);
}

/* Six 3x2 images, labels 0 3 1 3 2 0; image i pixel j = pattern(6 i + j). */
#define DS_N 6
#define DS_H 3
#define DS_W 2
static const uint8_t ds_labels[DS_N] = { 0, 3, 1, 3, 2, 0 };

static void write_small_set(const char *images, const char *labels, int gz, int n_labels)
{
	const uint32_t di[3] = { DS_N, DS_H, DS_W }, dl[1] = { (uint32_t)n_labels };
	uint8_t *data = make_data(DS_N * DS_H * DS_W);
	write_idx(images, gz, 0x08, 3, di, data, DS_N * DS_H * DS_W, 0);
	write_idx(labels, gz, 0x08, 1, dl, ds_labels, (size_t)n_labels, 0);
	free(data);
}

static void expected_stats(const uint8_t *px, size_t n, float *mean, float *std)
{
	double s = 0, s2 = 0;
	for (size_t i = 0; i < n; i++)
		s += px[i] / 255.0;
	double m = s / n;
	for (size_t i = 0; i < n; i++)
		s2 += (px[i] / 255.0 - m) * (px[i] / 255.0 - m);
	*mean = (float)m;
	*std = (float)sqrt(s2 / n);
}

static void test_dataset_load(void **state)
{
	const char *ip = tpath("ds-images.gz"), *lp = tpath("ds-labels");
	write_small_set(ip, lp, 1, DS_N);
	/* labels are plain: mixing the forms works too */
	write_idx(lp, 0, 0x08, 1, (const uint32_t[]){ DS_N }, ds_labels, DS_N, 0);
	dataset d;
	char err[BYOL_ERR_LEN] = "";
	int rc = dataset_load(&d, ip, lp, 0, err);
	if (rc)
		fail_msg("%s", err);
	assert_int_equal(d.n, DS_N);
	assert_int_equal(d.h, DS_H);
	assert_int_equal(d.w, DS_W);
	assert_int_equal(d.c, 1);
	assert_int_equal(d.n_classes, 4);
	assert_memory_equal(d.labels, ds_labels, DS_N);
	for (int i = 0; i < DS_N * DS_H * DS_W; i++)
		assert_int_equal(d.pixels[i], pattern((size_t)i));
	float m, s;
	expected_stats(d.pixels, DS_N * DS_H * DS_W, &m, &s);
	assert_true(fabsf(d.mean - m) < 1e-6f);
	assert_true(fabsf(d.std - s) < 1e-6f);
	assert_true(s > 0.1f);
	dataset_free(&d);
	assert_null(d.pixels);
	assert_int_equal(d.n, 0);
	dataset_free(&d);       /* twice is harmless */

	/* limit: the first 2 images, stats over them only; label 3 is the largest */
	rc = dataset_load(&d, ip, lp, 2, err);
	assert_int_equal(rc, 0);
	assert_int_equal(d.n, 2);
	assert_int_equal(d.n_classes, 4);
	expected_stats(d.pixels, 2 * DS_H * DS_W, &m, &s);
	assert_true(fabsf(d.mean - m) < 1e-6f);
	assert_true(fabsf(d.std - s) < 1e-6f);
	dataset_free(&d);
	/* a limit over n keeps everything */
	assert_int_equal(dataset_load(&d, ip, lp, 100, err), 0);
	assert_int_equal(d.n, DS_N);
	dataset_free(&d);

	/* without labels */
	assert_int_equal(dataset_load(&d, ip, NULL, 0, err), 0);
	assert_null(d.labels);
	assert_int_equal(d.n_classes, 0);
	assert_int_equal(d.n, DS_N);
	dataset_free(&d);
}

static void test_dataset_color(void **state)
{
	const uint32_t di[4] = { 2, 3, 4, 3 };
	uint8_t *data = make_data(72);
	write_idx(tpath("rgb"), 1, 0x08, 4, di, data, 72, 0);
	free(data);
	dataset d;
	char err[BYOL_ERR_LEN];
	assert_int_equal(dataset_load(&d, tpath("rgb"), NULL, 0, err), 0);
	assert_int_equal(d.n, 2);
	assert_int_equal(d.h, 3);
	assert_int_equal(d.w, 4);
	assert_int_equal(d.c, 3);
	for (int i = 0; i < 72; i++)
		assert_int_equal(d.pixels[i], pattern((size_t)i));
	dataset_free(&d);
}

static void expect_load_fail(const char *ip, const char *lp, int want_rc, const char *name,
			     const char *word)
{
	dataset d;
	memset(&d, 0xab, sizeof(d));
	char err[BYOL_ERR_LEN] = "";
	int rc = dataset_load(&d, ip, lp, 0, err);
	if (rc != want_rc || !strstr(err, name) || !strstr(err, word))
		fail_msg("rc %d (want %d), err \"%s\" (want \"%s\", \"%s\")", rc, want_rc, err,
			 name, word);
	assert_null(d.pixels);
	assert_null(d.labels);
	assert_int_equal(d.n, 0);
}

static void test_dataset_mismatch(void **state)
{
	const char *ip = tpath("mm-images"), *lp = tpath("mm-labels");
	write_small_set(ip, lp, 0, DS_N - 1);
	expect_load_fail(ip, lp, -EINVAL, lp, "5 labels");
	/* labels that are not one-dimensional */
	write_idx(lp, 0, 0x08, 2, (const uint32_t[]){ DS_N, 1 }, ds_labels, DS_N, 0);
	expect_load_fail(ip, lp, -EINVAL, lp, "2 dimensions");
	/* images that are not 3- or 4-dimensional */
	write_idx(ip, 0, 0x08, 1, (const uint32_t[]){ DS_N }, ds_labels, DS_N, 0);
	expect_load_fail(ip, lp, -EINVAL, ip, "1 dimensions");
	/* no images at all */
	write_idx(ip, 0, 0x08, 3, (const uint32_t[]){ 0, 28, 28 }, NULL, 0, 0);
	expect_load_fail(ip, NULL, -EINVAL, ip, "empty");
	/* a missing labels file */
	write_small_set(ip, lp, 0, DS_N);
	expect_load_fail(ip, tpath("mm-nolabels"), -ENOENT, tpath("mm-nolabels"), "open");
	expect_load_fail(tpath("mm-noimages"), lp, -ENOENT, tpath("mm-noimages"), "open");
}

static void test_dataset_dir(void **state)
{
	char dir[512], p1[600], p2[600];
	snprintf(dir, sizeof(dir), "%s/dsdir", tmpdir);
	assert_int_equal(mkdir(dir, 0700), 0);
	dataset tr, te;
	char err[BYOL_ERR_LEN] = "";

	/* nothing there yet */
	assert_int_equal(dataset_load_dir(&tr, &te, dir, 0, err), -ENOENT);
	assert_non_null(strstr(err, "train-images-idx3-ubyte"));
	assert_null(tr.pixels);
	assert_null(te.pixels);

	/* plain files */
	snprintf(p1, sizeof(p1), "%s/train-images-idx3-ubyte", dir);
	snprintf(p2, sizeof(p2), "%s/train-labels-idx1-ubyte", dir);
	write_small_set(p1, p2, 0, DS_N);
	/* the test set is still missing: an error naming it, and train is freed */
	assert_int_equal(dataset_load_dir(&tr, &te, dir, 0, err), -ENOENT);
	assert_non_null(strstr(err, "t10k-images-idx3-ubyte"));
	assert_null(tr.pixels);
	/* without a test set it loads */
	assert_int_equal(dataset_load_dir(&tr, NULL, dir, 4, err), 0);
	assert_int_equal(tr.n, 4);
	dataset_free(&tr);

	/* the test set: 2 images, labels 0 and 5 (beyond the train set's largest, 3) */
	snprintf(p1, sizeof(p1), "%s/t10k-images-idx3-ubyte.gz", dir);
	snprintf(p2, sizeof(p2), "%s/t10k-labels-idx1-ubyte.gz", dir);
	uint8_t *data = make_data(2 * DS_H * DS_W);
	write_idx(p1, 1, 0x08, 3, (const uint32_t[]){ 2, DS_H, DS_W }, data, 2 * DS_H * DS_W, 0);
	write_idx(p2, 1, 0x08, 1, (const uint32_t[]){ 2 }, (const uint8_t[]){ 0, 5 }, 2, 0);
	int rc = dataset_load_dir(&tr, &te, dir, 0, err);
	if (rc)
		fail_msg("%s", err);
	assert_int_equal(tr.n, DS_N);
	assert_int_equal(te.n, 2);
	assert_int_equal(tr.n_classes, 6);
	assert_int_equal(te.n_classes, 6);
	dataset_free(&tr);
	dataset_free(&te);

	/* the .gz form wins over the plain one: a train-images.gz with 1 image */
	snprintf(p1, sizeof(p1), "%s/train-images-idx3-ubyte.gz", dir);
	write_idx(p1, 1, 0x08, 3, (const uint32_t[]){ 1, DS_H, DS_W }, data, DS_H * DS_W, 0);
	assert_int_equal(dataset_load_dir(&tr, NULL, dir, 0, err), -EINVAL);
	assert_non_null(strstr(err, p1));
	assert_non_null(strstr(err, "train-labels-idx1-ubyte"));

	/* train and test images of different sizes */
	write_idx(p1, 1, 0x08, 3, (const uint32_t[]){ DS_N, DS_W, DS_H }, data,
		  2 * DS_H * DS_W, 4 * DS_H * DS_W);
	assert_int_equal(dataset_load_dir(&tr, &te, dir, 0, err), -EINVAL);
	assert_non_null(strstr(err, dir));
	assert_non_null(strstr(err, "2x3x1"));
	assert_null(tr.pixels);
	assert_null(te.pixels);
	free(data);
}

static void test_fashion_mnist(void **state)
{
	char probe[512];
	snprintf(probe, sizeof(probe), "%s/train-images-idx3-ubyte.gz", DATA_DEFAULT_DIR);
	if (access(probe, R_OK) != 0)
		skip();
	dataset tr, te;
	char err[BYOL_ERR_LEN] = "";
	int rc = dataset_load_dir(&tr, &te, DATA_DEFAULT_DIR, 0, err);
	if (rc)
		fail_msg("%s", err);
	assert_int_equal(tr.n, 60000);
	assert_int_equal(tr.h, 28);
	assert_int_equal(tr.w, 28);
	assert_int_equal(tr.c, 1);
	assert_int_equal(tr.n_classes, 10);
	assert_int_equal(te.n, 10000);
	assert_int_equal(te.n_classes, 10);
	/* the published statistics of Fashion-MNIST's train set */
	assert_true(fabsf(tr.mean - 0.2860f) < 5e-4f);
	assert_true(fabsf(tr.std - 0.3530f) < 5e-4f);
	/* 6000 of each class in train, 1000 in test */
	int count[10] = { 0 };
	for (int i = 0; i < tr.n; i++)
		count[tr.labels[i]]++;
	for (int k = 0; k < 10; k++)
		assert_int_equal(count[k], 6000);
	memset(count, 0, sizeof(count));
	for (int i = 0; i < te.n; i++)
		count[te.labels[i]]++;
	for (int k = 0; k < 10; k++)
		assert_int_equal(count[k], 1000);
	dataset_free(&tr);
	dataset_free(&te);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_plain_and_gz),
		cmocka_unit_test(test_bad_header),
		cmocka_unit_test(test_bad_length),
		cmocka_unit_test(test_large_file),
		cmocka_unit_test(test_not_idx),
		cmocka_unit_test(test_parse_memory),
		cmocka_unit_test(test_gzip_members),
		cmocka_unit_test(test_dataset_load),
		cmocka_unit_test(test_dataset_color),
		cmocka_unit_test(test_dataset_mismatch),
		cmocka_unit_test(test_dataset_dir),
		cmocka_unit_test(test_fashion_mnist),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
