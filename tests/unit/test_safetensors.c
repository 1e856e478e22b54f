/*
 * test_safetensors.c — the checkpoint format: a file laid out as the reference
 * (Python) implementation writes it, round trips with metadata, every malformed
 * header rejected with its own message, random corruption, and the atomic write
 * (a missing directory, a full disk on a small tmpfs).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "byol/error.h"
#include "byol/safetensors.h"

/* Bytes of a file: 8-byte little-endian header length, header padded with
 * spaces to `pad_to` (0: no padding), then `data`. */
static unsigned char *make_file(const char *header, size_t pad_to, const void *data,
				size_t data_len, size_t *len)
{
	size_t h = strlen(header), n = pad_to ? (h + pad_to - 1) / pad_to * pad_to : h;
	unsigned char *b = malloc(8 + n + data_len + 1);
	assert_non_null(b);
	uint64_t n64 = n;
	for (int i = 0; i < 8; i++)
		b[i] = (unsigned char)(n64 >> (8 * i));
	memcpy(b + 8, header, h);
	memset(b + 8 + h, ' ', n - h);
	if (data_len)
		memcpy(b + 8 + n, data, data_len);
	*len = 8 + n + data_len;
	return b;
}

static unsigned char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	unsigned char *b = malloc((size_t)n + 1);
	assert_non_null(b);
	assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return b;
}

static void write_bytes(const char *path, const void *b, size_t n)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(b, 1, n, f), n);
	fclose(f);
}

static void sha256_hex_of(const void *b, size_t n, char hex[65])
{
	unsigned char d[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(d, b, n);
	sodium_bin2hex(hex, 65, d, sizeof(d));
}

/* A file as safetensors' Python binding writes it for
 * save_file({"weight": (2, 3), "bias": (3,)}, metadata={"format": "pt"}):
 * compact JSON, "__metadata__" first, tensors sorted by name, header padded with
 * spaces so the data starts at a multiple of 8. */
static const char python_header[] =
	"{\"__metadata__\":{\"format\":\"pt\"},"
	"\"bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
	"\"weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[12,36]}}";
static const float python_data[9] = { 0.5f, -1.0f, 2.0f, 1, 2, 3, 4, 5, 6 };

static void test_python_layout(void **state)
{
	assert_int_equal(strlen(python_header), 151);
	size_t len;
	unsigned char *b = make_file(python_header, 8, python_data, sizeof(python_data), &len);
	assert_int_equal(len, 8 + 152 + 36);
	st_file f;
	char err[BYOL_ERR_LEN];
	assert_int_equal(safetensors_parse(&f, b, len, "py.safetensors", err), 0);
	assert_int_equal(f.nt, 2);
	assert_string_equal(f.t[0].name, "bias");
	assert_string_equal(f.t[1].name, "weight");
	const st_entry *w = safetensors_find(&f, "weight");
	assert_non_null(w);
	assert_int_equal(w->ndim, 2);
	assert_int_equal(w->shape[0], 2);
	assert_int_equal(w->shape[1], 3);
	assert_int_equal(w->count, 6);
	for (int i = 0; i < 6; i++)
		assert_true(w->data[i] == (float)(i + 1));
	const st_entry *bias = safetensors_find(&f, "bias");
	assert_int_equal(bias->count, 3);
	assert_true(bias->data[0] == 0.5f && bias->data[1] == -1.0f && bias->data[2] == 2.0f);
	assert_int_equal((uintptr_t)bias->data % 8, 0);
	assert_null(safetensors_find(&f, "Weight"));
	assert_string_equal(safetensors_meta(&f, "format"), "pt");
	assert_null(safetensors_meta(&f, "step"));
	safetensors_free(&f);
	assert_null(f.t);

	/* Writing the same tensors in the same order gives the same bytes. */
	char dir[] = "/tmp/test_st_XXXXXX", path[64], hex[65], want[65];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/py.safetensors", dir);
	st_tensor t[2] = {
		{ .name = "bias", .data = python_data, .ndim = 1, .shape = { 3 } },
		{ .name = "weight", .data = python_data + 3, .ndim = 2, .shape = { 2, 3 } },
	};
	st_meta meta = { "format", "pt" };
	assert_int_equal(safetensors_write(path, t, 2, &meta, 1, hex, err), 0);
	size_t wlen;
	unsigned char *written = read_all(path, &wlen);
	assert_int_equal(wlen, len);
	assert_memory_equal(written, b, len);
	/* The hash is the file's, and pinned (sha256sum of the bytes above). */
	sha256_hex_of(b, len, want);
	assert_string_equal(hex, want);
	assert_string_equal(hex, "673d730d9fcda96654ffb8fce7796da9d239d72499874334aa5cc280f11a432e");
	free(written);
	unlink(path);
	rmdir(dir);
	free(b);

	/* A scalar (shape []) and an empty tensor, unpadded header, no metadata. */
	static const char h2[] = "{\"empty\":{\"dtype\":\"F32\",\"shape\":[0,4],\"data_offsets\":[0,0]},"
				 "\"scalar\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}";
	const float pi = 3.25f;
	b = make_file(h2, 0, &pi, 4, &len);
	assert_int_equal(safetensors_parse(&f, b, len, "s", err), 0);
	assert_int_equal(f.nt, 2);
	assert_int_equal(f.nmeta, 0);
	const st_entry *s = safetensors_find(&f, "scalar");
	assert_int_equal(s->ndim, 0);
	assert_int_equal(s->count, 1);
	assert_true(s->data[0] == 3.25f);
	assert_int_equal(safetensors_find(&f, "empty")->count, 0);
	assert_int_equal(safetensors_find(&f, "empty")->shape[1], 4);
	safetensors_free(&f);
	free(b);
}

static void test_roundtrip(void **state)
{
	enum { A = 3 * 5, B = 2 * 3 * 4 * 5, C = 7 };
	float a[A], bb[B], c[C];
	for (int i = 0; i < A; i++)
		a[i] = (float)i * 0.25f - 1;
	for (int i = 0; i < B; i++)
		bb[i] = (float)((i * 7919) % 1000) * 1e-3f;
	for (int i = 0; i < C; i++)
		c[i] = -(float)i;
	c[3] = 1e-40f;                  /* a denormal */
	st_tensor t[] = {
		{ .name = "online.enc.0.w", .data = a, .ndim = 2, .shape = { 3, 5 } },
		{ .name = "online/4d \"quoted\"", .data = bb, .ndim = 4, .shape = { 2, 3, 4, 5 } },
		{ .name = "target.bias", .data = c, .ndim = 1, .shape = { C } },
		{ .name = "empty", .data = NULL, .ndim = 2, .shape = { 0, 9 } },
	};
	st_meta meta[] = {
		{ "step", "1200" },
		{ "config_hash", "8c07ca785a4287f5" },
		{ "note", "line\nbreak, \"quotes\", tab\t, unicode é" },
		{ "empty", "" },
	};
	char dir[] = "/tmp/test_st_XXXXXX", path[64], tmp[80], hex[65], err[BYOL_ERR_LEN];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/ckpt.safetensors", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	/* Overwrites an existing file. */
	write_bytes(path, "old", 3);
	assert_int_equal(safetensors_write(path, t, 4, meta, 4, hex, err), 0);
	assert_int_equal(access(tmp, F_OK), -1);

	size_t len;
	unsigned char *bytes = read_all(path, &len);
	uint64_t n;
	memcpy(&n, bytes, 8);
	assert_int_equal((8 + n) % 8, 0);
	assert_int_equal(len, 8 + n + 4 * (A + B + C));
	char want[65];
	sha256_hex_of(bytes, len, want);
	assert_string_equal(hex, want);

	st_file f;
	assert_int_equal(safetensors_read(&f, path, err), 0);
	assert_int_equal(f.nt, 4);
	for (int i = 0; i < 4; i++) {
		const st_entry *e = safetensors_find(&f, t[i].name);
		assert_non_null(e);
		assert_ptr_equal(e, &f.t[i]);   /* header order kept */
		assert_int_equal(e->ndim, t[i].ndim);
		size_t count = 1;
		for (int d = 0; d < t[i].ndim; d++) {
			assert_int_equal(e->shape[d], t[i].shape[d]);
			count *= (size_t)t[i].shape[d];
		}
		assert_int_equal(e->count, count);
		assert_int_equal((uintptr_t)e->data % 4, 0);
		if (count)
			assert_memory_equal(e->data, t[i].data, count * 4);
	}
	assert_int_equal(f.nmeta, 4);
	for (int i = 0; i < 4; i++)
		assert_string_equal(safetensors_meta(&f, meta[i].key), meta[i].value);
	safetensors_free(&f);

	/* The same from memory; and writing twice gives the same bytes. */
	assert_int_equal(safetensors_parse(&f, bytes, len, "mem", err), 0);
	assert_true(f.t[2].data[3] == 1e-40f);
	safetensors_free(&f);
	char hex2[65];
	assert_int_equal(safetensors_write(path, t, 4, meta, 4, hex2, err), 0);
	assert_string_equal(hex, hex2);
	/* No tensors at all is a valid file too. */
	assert_int_equal(safetensors_write(path, NULL, 0, NULL, 0, NULL, err), 0);
	assert_int_equal(safetensors_read(&f, path, err), 0);
	assert_int_equal(f.nt, 0);
	safetensors_free(&f);

	free(bytes);
	unlink(path);
	rmdir(dir);
}

static void test_write_refuses_bad_input(void **state)
{
	float x[4] = { 0 };
	char err[BYOL_ERR_LEN];
	st_tensor dup[2] = { { .name = "a", .data = x, .ndim = 1, .shape = { 4 } },
			     { .name = "a", .data = x, .ndim = 1, .shape = { 4 } } };
	assert_int_equal(safetensors_write("/tmp/never.st", dup, 2, NULL, 0, NULL, err), -EINVAL);
	assert_string_equal(err, "/tmp/never.st: tensor name 'a' given twice");
	st_tensor neg = { .name = "a", .data = x, .ndim = 1, .shape = { -4 } };
	assert_int_equal(safetensors_write("/tmp/never.st", &neg, 1, NULL, 0, NULL, err), -EINVAL);
	assert_string_equal(err, "/tmp/never.st: tensor 'a': bad shape");
	st_tensor big = { .name = "a", .data = x, .ndim = 3, .shape = { 1 << 30, 1 << 30, 1 << 30 } };
	assert_int_equal(safetensors_write("/tmp/never.st", &big, 1, NULL, 0, NULL, err), -EINVAL);
	assert_string_equal(err, "/tmp/never.st: tensor 'a': bad shape");
	st_tensor five = { .name = "a", .data = x, .ndim = 5 };
	assert_int_equal(safetensors_write("/tmp/never.st", &five, 1, NULL, 0, NULL, err), -EINVAL);
	st_tensor reserved = { .name = "__metadata__", .data = x, .ndim = 1, .shape = { 1 } };
	assert_int_equal(safetensors_write("/tmp/never.st", &reserved, 1, NULL, 0, NULL, err), -EINVAL);
	assert_string_equal(err, "/tmp/never.st: tensor 0: bad name");
	st_tensor nodata = { .name = "a", .data = NULL, .ndim = 1, .shape = { 1 } };
	assert_int_equal(safetensors_write("/tmp/never.st", &nodata, 1, NULL, 0, NULL, err), -EINVAL);
	assert_string_equal(err, "/tmp/never.st: tensor 'a': no data");
	st_meta m[2] = { { "k", "1" }, { "k", "2" } };
	assert_int_equal(safetensors_write("/tmp/never.st", NULL, 0, m, 2, NULL, err), -EINVAL);
	assert_string_equal(err, "/tmp/never.st: metadata key 'k' given twice");
	assert_int_equal(access("/tmp/never.st", F_OK), -1);
	assert_int_equal(access("/tmp/never.st.tmp", F_OK), -1);
}

/* Each malformed variant is rejected with its own message. */
static void test_malformed(void **state)
{
	static const float d[4] = { 1, 2, 3, 4 };
#define T(name, shape, offs) "\"" name "\":{\"dtype\":\"F32\",\"shape\":" shape ",\"data_offsets\":" offs "}"
	static const struct {
		const char *header;
		size_t data_len;
		const char *want;
	} bad[] = {
		{ "[1]", 0, "m.st: the header does not start with '{'" },
		{ "", 0, "m.st: the header does not start with '{'" },
		{ "{\"a\":", 0, "m.st: the header is not JSON (error at byte 7)" },
		{ "{} x", 0, "m.st: bytes after the header JSON (at byte 3)" },
		{ "{}{}", 0, "m.st: bytes after the header JSON (at byte 2)" },
		{ "{\"a\":1}", 0, "m.st: tensor 'a': not an object" },
		{ "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "m.st: tensor 'a': missing 'data_offsets'" },
		{ "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "m.st: tensor 'a': missing 'dtype'" },
		{ "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4,
		  "m.st: tensor 'a': unknown field 'x'" },
		{ "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
		  "m.st: tensor 'a': field 'dtype' given twice" },
		{ "{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4,
		  "m.st: tensor 'a': dtype 'F16' is not F32" },
		{ "{\"a\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
		  "m.st: tensor 'a': dtype is not a string" },
		{ "{" T("a", "4", "[0,4]") "}", 4, "m.st: tensor 'a': shape is not an array" },
		{ "{" T("a", "[1,1,1,1,1]", "[0,4]") "}", 4, "m.st: tensor 'a': 5 dimensions (at most 4)" },
		{ "{" T("a", "[-1]", "[0,4]") "}", 4, "m.st: tensor 'a': shape[0] is not a non-negative integer" },
		{ "{" T("a", "[1,1.5]", "[0,4]") "}", 4, "m.st: tensor 'a': shape[1] is not a non-negative integer" },
		{ "{" T("a", "[\"1\"]", "[0,4]") "}", 4, "m.st: tensor 'a': shape[0] is not a non-negative integer" },
		{ "{" T("a", "[1e300]", "[0,4]") "}", 4, "m.st: tensor 'a': shape[0] is not a non-negative integer" },
		{ "{" T("a", "[4294967296,4294967296]", "[0,4]") "}", 4, "m.st: tensor 'a': shape too large" },
		{ "{" T("a", "[1,4294967296,4294967296,0]", "[0,0]") "}", 0, "m.st: tensor 'a': shape too large" },
		{ "{" T("a", "[1]", "[0]") "}", 4, "m.st: tensor 'a': data_offsets is not [begin, end]" },
		{ "{" T("a", "[1]", "[0,4,8]") "}", 4, "m.st: tensor 'a': data_offsets is not [begin, end]" },
		{ "{" T("a", "[1]", "{}") "}", 4, "m.st: tensor 'a': data_offsets is not [begin, end]" },
		{ "{" T("a", "[1]", "[-4,0]") "}", 4, "m.st: tensor 'a': data_offsets are not non-negative integers" },
		{ "{" T("a", "[1]", "[0,4.5]") "}", 4, "m.st: tensor 'a': data_offsets are not non-negative integers" },
		{ "{" T("a", "[1]", "[0,18446744073709551616]") "}", 4,
		  "m.st: tensor 'a': data_offsets are not non-negative integers" },
		{ "{" T("a", "[1]", "[4,0]") "}", 4,
		  "m.st: tensor 'a': data_offsets [4, 0] out of range (4 bytes of data)" },
		{ "{" T("a", "[1]", "[0,8]") "}", 4,
		  "m.st: tensor 'a': data_offsets [0, 8] out of range (4 bytes of data)" },
		{ "{" T("a", "[2]", "[0,4]") "}", 4, "m.st: tensor 'a': 4 bytes for 2 elements of the shape" },
		{ "{" T("a", "[2]", "[0,8]") "," T("b", "[2]", "[4,12]") "}", 12,
		  "m.st: tensors 'a' and 'b' overlap" },
		{ "{" T("a", "[1]", "[0,4]") "," T("b", "[1]", "[8,12]") "}", 12,
		  "m.st: data bytes [4, 8) belong to no tensor" },
		{ "{" T("a", "[1]", "[4,8]") "}", 8, "m.st: data bytes [0, 4) belong to no tensor" },
		{ "{" T("a", "[1]", "[0,4]") "}", 8, "m.st: data bytes [4, 8) belong to no tensor" },
		{ "{}", 4, "m.st: data bytes [0, 4) belong to no tensor" },
		{ "{" T("a", "[1]", "[0,4]") "," T("a", "[1]", "[4,8]") "}", 8,
		  "m.st: tensor name 'a' given twice" },
		{ "{" T("a\\u0000x", "[1]", "[0,4]") "," T("a\\u0000y", "[1]", "[4,8]") "}", 8,
		  "m.st: tensor name 'a' given twice" },
		{ "{" T("", "[1]", "[0,4]") "}", 4, "m.st: a tensor with an empty name" },
		{ "{\"__metadata__\":{\"step\":12}}", 0, "m.st: __metadata__ 'step': value is not a string" },
		{ "{\"__metadata__\":[]}", 0, "m.st: __metadata__ is not an object" },
		{ "{\"__metadata__\":{},\"__metadata__\":{}}", 0, "m.st: __metadata__ given twice" },
		{ "{\"__metadata__\":{\"k\":\"1\",\"j\":\"2\",\"k\":\"3\"}}", 0,
		  "m.st: __metadata__ 'k' given twice" },
	};
#undef T
	char err[BYOL_ERR_LEN];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t len;
		unsigned char *b = make_file(bad[i].header, 8, d, bad[i].data_len, &len);
		st_file f;
		err[0] = '\0';
		int rc = safetensors_parse(&f, b, len, "m.st", err);
		if (rc != -EINVAL || strcmp(err, bad[i].want) != 0)
			fail_msg("%s: returned %d '%s', want '%s'", bad[i].header, rc, err, bad[i].want);
		assert_null(f.t);
		assert_null(f.priv);
		free(b);
	}

	/* The length prefix. */
	st_file f;
	unsigned char b[64] = { 0 };
	assert_int_equal(safetensors_parse(&f, b, 5, "m.st", err), -EINVAL);
	assert_string_equal(err, "m.st: short file (5 bytes)");
	memset(b, 0xff, 8);
	assert_int_equal(safetensors_parse(&f, b, 64, "m.st", err), -EINVAL);
	assert_string_equal(err, "m.st: header length 18446744073709551615 beyond the file (64 bytes)");
	b[0] = 57;
	memset(b + 1, 0, 7);
	assert_int_equal(safetensors_parse(&f, b, 64, "m.st", err), -EINVAL);
	assert_string_equal(err, "m.st: header length 57 beyond the file (64 bytes)");
	b[0] = 0;
	assert_int_equal(safetensors_parse(&f, b, 64, "m.st", err), -EINVAL);
	assert_string_equal(err, "m.st: the header does not start with '{'");
	b[0] = 4;
	memcpy(b + 8, "{}\0 ", 4);
	assert_int_equal(safetensors_parse(&f, b, 12, "m.st", err), -EINVAL);
	assert_string_equal(err, "m.st: NUL byte in the header");
	/* Trailing whitespace of any JSON kind pads the header. */
	memcpy(b + 8, "{}\n\t", 4);
	assert_int_equal(safetensors_parse(&f, b, 12, "m.st", err), 0);
	safetensors_free(&f);
	/* Over 100 MB of header is refused before reading it. */
	size_t huge = (100u << 20) + 16;
	unsigned char *h = calloc(1, huge);
	assert_non_null(h);
	uint64_t hl = huge - 8;
	memcpy(h, &hl, 8);
	assert_int_equal(safetensors_parse(&f, h, huge, "m.st", err), -EINVAL);
	assert_string_equal(err, "m.st: header length 104857608 over 104857600");
	free(h);
}

static void test_read_errors(void **state)
{
	st_file f;
	char err[BYOL_ERR_LEN];
	assert_int_equal(safetensors_read(&f, "/nonexistent/x.safetensors", err), -ENOENT);
	assert_string_equal(err, "/nonexistent/x.safetensors: No such file or directory");
	assert_int_equal(safetensors_read(&f, "/tmp", err), -EINVAL);
	assert_string_equal(err, "/tmp: not a regular file");

	char dir[] = "/tmp/test_st_XXXXXX", path[64];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/short", dir);
	write_bytes(path, "\x10\0\0", 3);
	assert_int_equal(safetensors_read(&f, path, err), -EINVAL);
	char want[BYOL_ERR_LEN];
	snprintf(want, sizeof(want), "%s: short file (3 bytes)", path);
	assert_string_equal(err, want);
	/* A file cut inside its data. */
	size_t len;
	unsigned char *b = make_file(python_header, 8, python_data, sizeof(python_data), &len);
	write_bytes(path, b, len - 1);
	assert_int_equal(safetensors_read(&f, path, err), -EINVAL);
	snprintf(want, sizeof(want), "%s: tensor 'weight': data_offsets [12, 36] out of range (35 bytes of data)", path);
	assert_string_equal(err, want);
	assert_null(f.t);
	write_bytes(path, b, len);
	assert_int_equal(safetensors_read(&f, path, err), 0);
	assert_true(safetensors_find(&f, "weight")->data[5] == 6.0f);
	safetensors_free(&f);
	free(b);
	unlink(path);
	rmdir(dir);
}

/* Random corruption of a valid file never crashes (run under ASan) and what
 * parses is consistent. */
static void test_corruption(void **state)
{
	size_t len;
	unsigned char *good = make_file(python_header, 8, python_data, sizeof(python_data), &len);
	unsigned char *b = malloc(len);
	assert_non_null(b);
	uint32_t x = 2463534242u;
	int accepted = 0;
	for (int it = 0; it < 20000; it++) {
		memcpy(b, good, len);
		int flips = 1 + it % 4;
		for (int k = 0; k < flips; k++) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			size_t pos = x % len;
			unsigned char v = (unsigned char)(x >> 8);
			/* Mostly JSON-ish characters, to get past the parser. */
			static const char js[] = "{}[]\",:0123456789-.eE ";
			b[pos] = (x >> 16) & 1 ? v : (unsigned char)js[v % (sizeof(js) - 1)];
		}
		size_t n = (x >> 20) % 8 == 0 ? (x >> 4) % len : len;
		st_file f;
		char err[BYOL_ERR_LEN];
		if (safetensors_parse(&f, b, n, "fuzz", err) == 0) {
			accepted++;
			/* The tensors tile the data, inside the file's buffer. */
			uint64_t hl;
			memcpy(&hl, b, 8);
			const char *base = f.priv, *end = base + (n - 8 - hl);
			size_t total = 0;
			for (int i = 0; i < f.nt; i++) {
				const char *p = (const char *)f.t[i].data;
				total += f.t[i].count * 4;
				assert_true(p >= base && p + f.t[i].count * 4 <= end);
				assert_int_equal(memcmp(p, b + 8 + hl + (p - base), f.t[i].count * 4), 0);
			}
			assert_int_equal(total, n - 8 - hl);
			safetensors_free(&f);
		} else {
			assert_true(strncmp(err, "fuzz: ", 6) == 0);
		}
	}
	/* Flipping data bytes or padding spaces keeps the file valid. */
	assert_true(accepted > 0);
	free(b);
	free(good);
}

static void test_write_missing_dir(void **state)
{
	float x[2] = { 1, 2 };
	st_tensor t = { .name = "a", .data = x, .ndim = 1, .shape = { 2 } };
	char err[BYOL_ERR_LEN];
	assert_int_equal(safetensors_write("/nonexistent/dir/c.safetensors", &t, 1, NULL, 0, NULL, err),
			 -ENOENT);
	assert_string_equal(err, "/nonexistent/dir/c.safetensors.tmp: open: No such file or directory");
}

/* A 64 KiB tmpfs: a checkpoint that does not fit fails with -ENOSPC, leaves no
 * temporary file, and the previous checkpoint is intact. */
static char tmpfs_dir[64];
static int mount_errno;

static int mount_tmpfs(void **state)
{
	snprintf(tmpfs_dir, sizeof(tmpfs_dir), "/tmp/test_st_full_XXXXXX");
	if (!mkdtemp(tmpfs_dir))
		return -1;
	if (mount("tmpfs", tmpfs_dir, "tmpfs", 0, "size=64k") != 0) {
		mount_errno = errno;
		rmdir(tmpfs_dir);
		tmpfs_dir[0] = '\0';
	}
	return 0;
}

static int unmount_tmpfs(void **state)
{
	if (tmpfs_dir[0]) {
		umount2(tmpfs_dir, MNT_DETACH);
		rmdir(tmpfs_dir);
	}
	return 0;
}

static void test_enospc_keeps_old_file(void **state)
{
	if (!tmpfs_dir[0]) {
		print_message("cannot mount a tmpfs here (%s): skipping the full-disk test\n",
			      strerror(mount_errno));
		skip();
	}
	char path[128], tmp[140], err[BYOL_ERR_LEN], hex[65];
	snprintf(path, sizeof(path), "%s/ckpt.safetensors", tmpfs_dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	float small[256];
	for (int i = 0; i < 256; i++)
		small[i] = (float)i;
	st_tensor t = { .name = "w", .data = small, .ndim = 1, .shape = { 256 } };
	st_meta m = { "step", "1" };
	assert_int_equal(safetensors_write(path, &t, 1, &m, 1, hex, err), 0);

	enum { BIG = 64 * 1024 };       /* 256 KiB: four times the disk */
	float *big = calloc(BIG, sizeof(float));
	assert_non_null(big);
	st_tensor tb = { .name = "w", .data = big, .ndim = 1, .shape = { BIG } };
	st_meta m2 = { "step", "2" };
	assert_int_equal(safetensors_write(path, &tb, 1, &m2, 1, NULL, err), -ENOSPC);
	char want[200];
	snprintf(want, sizeof(want), "%s: write: No space left on device", tmp);
	assert_string_equal(err, want);
	assert_int_equal(access(tmp, F_OK), -1);
	free(big);

	st_file f;
	assert_int_equal(safetensors_read(&f, path, err), 0);
	assert_string_equal(safetensors_meta(&f, "step"), "1");
	assert_int_equal(f.t[0].count, 256);
	assert_memory_equal(f.t[0].data, small, sizeof(small));
	safetensors_free(&f);
	/* The space came back: the next checkpoint fits. */
	small[0] = 42;
	assert_int_equal(safetensors_write(path, &t, 1, &m2, 1, hex, err), 0);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_python_layout),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_write_refuses_bad_input),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_read_errors),
		cmocka_unit_test(test_corruption),
		cmocka_unit_test(test_write_missing_dir),
		cmocka_unit_test_setup_teardown(test_enospc_keeps_old_file, mount_tmpfs, unmount_tmpfs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
