/*
 * safetensors.c — the checkpoint file format.
 *
 * Writing lays the file out as the reference implementation does: the header is
 * compact JSON with "__metadata__" first, padded with spaces so that the data
 * starts at a multiple of 8, then the tensors' bytes in the caller's order. The
 * same tensors and metadata in the same order always give the same bytes.
 *
 * Reading trusts nothing: every length, count and offset is checked before it
 * is used, products are computed with overflow checks, and offsets must tile the
 * data exactly. The data is copied into one 64-byte-aligned buffer (priv) that
 * also holds the names and metadata strings.
 */
#include "byol/safetensors.h"
#include "byol/error.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c writes float32 in host order: little-endian hosts only"
#endif

#define ST_MAX_HEADER (100u << 20)      /* the reference implementation's limit */
#define ST_MAX_INT 9007199254740992.0   /* 2^53: JSON numbers beyond are inexact */
#define ST_ALIGN 64

/* ---- writing ------------------------------------------------------------ */

static int tensor_count(const st_tensor *t, uint64_t *count)
{
	uint64_t n = 1;
	if (t->ndim < 0 || t->ndim > ST_MAX_DIMS)
		return -1;
	for (int d = 0; d < t->ndim; d++)
		if (t->shape[d] < 0 || __builtin_mul_overflow(n, (uint64_t)t->shape[d], &n))
			return -1;
	if (n > (uint64_t)(ST_MAX_INT / 4))
		return -1;
	*count = n;
	return 0;
}

static cJSON *raw_u64(uint64_t v)
{
	char buf[24];
	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	return cJSON_CreateRaw(buf);
}

/* The header JSON, padded with spaces to a multiple of 8 bytes (malloc'd). */
static char *build_header(const st_tensor *t, int nt, const st_meta *meta, int nmeta,
			  size_t *len, const char *path, int *rc, char *err)
{
	*rc = -EINVAL;
	if (nt < 0 || nmeta < 0 || (nt && !t) || (nmeta && !meta)) {
		byol_err(err, -EINVAL, "%s: bad tensor or metadata count", path);
		return NULL;
	}
	for (int i = 0; i < nmeta; i++) {
		if (!meta[i].key || !meta[i].value) {
			byol_err(err, -EINVAL, "%s: metadata %d has a NULL key or value", path, i);
			return NULL;
		}
		for (int j = 0; j < i; j++)
			if (strcmp(meta[i].key, meta[j].key) == 0) {
				byol_err(err, -EINVAL, "%s: metadata key '%s' given twice", path,
					 meta[i].key);
				return NULL;
			}
	}
	for (int i = 0; i < nt; i++) {
		uint64_t count;
		if (!t[i].name || !t[i].name[0] || strcmp(t[i].name, "__metadata__") == 0) {
			byol_err(err, -EINVAL, "%s: tensor %d: bad name", path, i);
			return NULL;
		}
		if (tensor_count(&t[i], &count)) {
			byol_err(err, -EINVAL, "%s: tensor '%s': bad shape", path, t[i].name);
			return NULL;
		}
		if (count && !t[i].data) {
			byol_err(err, -EINVAL, "%s: tensor '%s': no data", path, t[i].name);
			return NULL;
		}
		for (int j = 0; j < i; j++)
			if (strcmp(t[i].name, t[j].name) == 0) {
				byol_err(err, -EINVAL, "%s: tensor name '%s' given twice", path,
					 t[i].name);
				return NULL;
			}
	}

	*rc = -ENOMEM;
	char *text = NULL, *out = NULL;
	cJSON *root = cJSON_CreateObject();
	if (!root)
		goto fail;
	if (nmeta) {
		cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
		if (!m)
			goto fail;
		for (int i = 0; i < nmeta; i++)
			if (!cJSON_AddStringToObject(m, meta[i].key, meta[i].value))
				goto fail;
	}
	uint64_t offset = 0;
	for (int i = 0; i < nt; i++) {
		uint64_t count = 0;
		tensor_count(&t[i], &count);
		cJSON *e = cJSON_AddObjectToObject(root, t[i].name), *shape, *offs;
		if (!e || !cJSON_AddStringToObject(e, "dtype", "F32") ||
		    !(shape = cJSON_AddArrayToObject(e, "shape")) ||
		    !(offs = cJSON_AddArrayToObject(e, "data_offsets")))
			goto fail;
		for (int d = 0; d < t[i].ndim; d++) {
			cJSON *v = raw_u64((uint64_t)t[i].shape[d]);
			if (!v || !cJSON_AddItemToArray(shape, v)) {
				cJSON_Delete(v);
				goto fail;
			}
		}
		if (offset + 4 * count > (uint64_t)ST_MAX_INT) {
			*rc = -EFBIG;
			byol_err(err, -EFBIG, "%s: more than 2^53 bytes of data", path);
			goto fail_quiet;
		}
		uint64_t be[2] = { offset, offset + 4 * count };
		for (int k = 0; k < 2; k++) {
			cJSON *v = raw_u64(be[k]);
			if (!v || !cJSON_AddItemToArray(offs, v)) {
				cJSON_Delete(v);
				goto fail;
			}
		}
		offset = be[1];
	}
	text = cJSON_PrintUnformatted(root);
	if (!text)
		goto fail;
	size_t n = strlen(text), padded = (n + 7) / 8 * 8;
	out = malloc(8 + padded);
	if (!out)
		goto fail;
	uint64_t hl = padded;
	memcpy(out, &hl, 8);
	memcpy(out + 8, text, n);
	memset(out + 8 + n, ' ', padded - n);
	*len = 8 + padded;
	free(text);
	cJSON_Delete(root);
	*rc = 0;
	return out;
fail:
	byol_err(err, -ENOMEM, "%s: out of memory", path);
fail_quiet:
	free(text);
	cJSON_Delete(root);
	return NULL;
}

static int write_all(int fd, const void *buf, size_t n, crypto_hash_sha256_state *h)
{
	const unsigned char *p = buf;
	if (h)
		crypto_hash_sha256_update(h, p, n);
	while (n) {
		ssize_t w = write(fd, p, n > (1u << 30) ? (1u << 30) : n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0)
			return -EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int fsync_dir(const char *path, char *err)
{
	char *copy = strdup(path);
	if (!copy)
		return byol_err(err, -ENOMEM, "%s: out of memory", path);
	const char *dir = dirname(copy);
	int rc = 0, fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		rc = byol_err(err, -errno, "%s: fsync of directory %s: %s", path, dir, strerror(errno));
	if (fd >= 0)
		close(fd);
	free(copy);
	return rc;
}

int safetensors_write(const char *path, const st_tensor *t, int nt, const st_meta *meta,
		      int nmeta, char *sha256_hex, char *err)
{
	if (sodium_init() < 0)
		return byol_err(err, -EIO, "%s: libsodium failed to initialise", path);
	char tmp[PATH_MAX];
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return byol_err(err, -ENAMETOOLONG, "%s: path too long", path);
	size_t hlen;
	int rc;
	char *header = build_header(t, nt, meta, nmeta, &hlen, path, &rc, err);
	if (!header)
		return rc;

	const char *what = "open";
	crypto_hash_sha256_state state, *h = sha256_hex ? &state : NULL;
	if (h)
		crypto_hash_sha256_init(h);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = -errno;
		free(header);
		return byol_err(err, rc, "%s: %s: %s", tmp, what, strerror(-rc));
	}
	what = "write";
	rc = write_all(fd, header, hlen, h);
	for (int i = 0; i < nt && rc == 0; i++) {
		uint64_t count = 0;
		tensor_count(&t[i], &count);
		if (count)
			rc = write_all(fd, t[i].data, (size_t)count * sizeof(float), h);
	}
	if (rc == 0) {
		what = "fsync";
		if (fsync(fd) < 0)
			rc = -errno;
	}
	if (close(fd) < 0 && rc == 0) {
		what = "close";
		rc = -errno;
	}
	if (rc == 0) {
		what = "rename";
		if (rename(tmp, path) < 0)
			rc = -errno;
	}
	free(header);
	if (rc) {
		unlink(tmp);
		if (rc == -EINPROGRESS || rc == -EINTR)
			rc = -EIO;
		return byol_err(err, rc, "%s: %s: %s", strcmp(what, "rename") ? tmp : path, what,
				strerror(-rc));
	}
	/* The file is in place; a failure here means it may not survive a crash. */
	rc = fsync_dir(path, err);
	if (sha256_hex) {
		unsigned char digest[crypto_hash_sha256_BYTES];
		crypto_hash_sha256_final(h, digest);
		sodium_bin2hex(sha256_hex, 2 * crypto_hash_sha256_BYTES + 1, digest, sizeof(digest));
	}
	return rc;
}

/* ---- reading ------------------------------------------------------------ */

typedef struct {
	const char *name;
	uint64_t begin, end;
	int index;                      /* in header order */
} span;

static int by_name(const void *a, const void *b)
{
	return strcmp(((const span *)a)->name, ((const span *)b)->name);
}

static int by_offset(const void *a, const void *b)
{
	const span *x = a, *y = b;
	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return 0;
}

/* A JSON number that is an integer in [0, 2^53). */
static int json_u53(const cJSON *v, uint64_t *out)
{
	if (!cJSON_IsNumber(v))
		return -1;
	double d = v->valuedouble;
	if (!(d >= 0 && d < ST_MAX_INT) || floor(d) != d)
		return -1;
	*out = (uint64_t)d;
	return 0;
}

/* Reads one tensor entry into s and the st_entry fields. */
static int parse_entry(const cJSON *e, uint64_t data_len, st_entry *out, span *s,
		       const char *name, char *err)
{
	const char *tn = e->string;
	if (!tn[0])
		return byol_err(err, -EINVAL, "%s: a tensor with an empty name", name);
	if (!cJSON_IsObject(e))
		return byol_err(err, -EINVAL, "%s: tensor '%s': not an object", name, tn);
	const cJSON *dtype = NULL, *shape = NULL, *offs = NULL, *f;
	cJSON_ArrayForEach(f, e) {
		const cJSON **slot = strcmp(f->string, "dtype") == 0 ? &dtype
				     : strcmp(f->string, "shape") == 0 ? &shape
				     : strcmp(f->string, "data_offsets") == 0 ? &offs : NULL;
		if (!slot)
			return byol_err(err, -EINVAL, "%s: tensor '%s': unknown field '%s'", name, tn,
					f->string);
		if (*slot)
			return byol_err(err, -EINVAL, "%s: tensor '%s': field '%s' given twice", name,
					tn, f->string);
		*slot = f;
	}
	if (!dtype || !shape || !offs)
		return byol_err(err, -EINVAL, "%s: tensor '%s': missing '%s'", name, tn,
				!dtype ? "dtype" : !shape ? "shape" : "data_offsets");
	if (!cJSON_IsString(dtype))
		return byol_err(err, -EINVAL, "%s: tensor '%s': dtype is not a string", name, tn);
	if (strcmp(dtype->valuestring, "F32") != 0)
		return byol_err(err, -EINVAL, "%s: tensor '%s': dtype '%.32s' is not F32", name, tn,
				dtype->valuestring);
	if (!cJSON_IsArray(shape))
		return byol_err(err, -EINVAL, "%s: tensor '%s': shape is not an array", name, tn);
	int ndim = cJSON_GetArraySize(shape);
	if (ndim > ST_MAX_DIMS)
		return byol_err(err, -EINVAL, "%s: tensor '%s': %d dimensions (at most %d)", name, tn,
				ndim, ST_MAX_DIMS);
	uint64_t count = 1;
	int d = 0;
	cJSON_ArrayForEach(f, shape) {
		uint64_t dim;
		if (json_u53(f, &dim))
			return byol_err(err, -EINVAL,
					"%s: tensor '%s': shape[%d] is not a non-negative integer", name,
					tn, d);
		if (__builtin_mul_overflow(count, dim, &count) || count > (uint64_t)ST_MAX_INT)
			return byol_err(err, -EINVAL, "%s: tensor '%s': shape too large", name, tn);
		out->shape[d++] = (int64_t)dim;
	}
	if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
		return byol_err(err, -EINVAL, "%s: tensor '%s': data_offsets is not [begin, end]",
				name, tn);
	if (json_u53(offs->child, &s->begin) || json_u53(offs->child->next, &s->end))
		return byol_err(err, -EINVAL,
				"%s: tensor '%s': data_offsets are not non-negative integers", name, tn);
	if (s->end < s->begin || s->end > data_len)
		return byol_err(err, -EINVAL,
				"%s: tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64
				"] out of range (%" PRIu64 " bytes of data)", name, tn, s->begin,
				s->end, data_len);
	if (count > SIZE_MAX / 4 || s->end - s->begin != 4 * count)
		return byol_err(err, -EINVAL,
				"%s: tensor '%s': %" PRIu64 " bytes for %" PRIu64
				" elements of the shape", name, tn, s->end - s->begin, count);
	out->ndim = ndim;
	out->count = (size_t)count;
	s->name = tn;
	return 0;
}

/* Validates the header, fills f and allocates priv with room for the data at
 * its start (data_len bytes). The caller copies the data in. */
static int parse_header(st_file *f, const char *hdr, uint64_t hlen, uint64_t data_len,
			const char *name, char *err)
{
	if (hlen == 0 || hdr[0] != '{')
		return byol_err(err, -EINVAL, "%s: the header does not start with '{'", name);
	if (memchr(hdr, '\0', hlen))
		return byol_err(err, -EINVAL, "%s: NUL byte in the header", name);
	const char *end = NULL;
	cJSON *root = cJSON_ParseWithLengthOpts(hdr, hlen, &end, 0);
	if (!root)
		return byol_err(err, -EINVAL, "%s: the header is not JSON (error at byte %td)", name,
				end ? end - hdr : (ptrdiff_t)-1);
	int rc = 0;
	span *spans = NULL;
	for (const char *p = end; p < hdr + hlen; p++)
		if (!strchr(" \t\r\n", *p)) {
			rc = byol_err(err, -EINVAL, "%s: bytes after the header JSON (at byte %td)",
				      name, p - hdr);
			goto out;
		}
	if (!cJSON_IsObject(root)) {
		rc = byol_err(err, -EINVAL, "%s: the header is not a JSON object", name);
		goto out;
	}

	/* Count, and size the strings. */
	const cJSON *e, *metaobj = NULL, *m;
	size_t nt = 0, nmeta = 0, strings = 0;
	cJSON_ArrayForEach(e, root) {
		if (strcmp(e->string, "__metadata__") == 0) {
			if (metaobj) {
				rc = byol_err(err, -EINVAL, "%s: __metadata__ given twice", name);
				goto out;
			}
			if (!cJSON_IsObject(e)) {
				rc = byol_err(err, -EINVAL, "%s: __metadata__ is not an object", name);
				goto out;
			}
			metaobj = e;
			cJSON_ArrayForEach(m, e) {
				if (!cJSON_IsString(m)) {
					rc = byol_err(err, -EINVAL,
						      "%s: __metadata__ '%s': value is not a string", name,
						      m->string);
					goto out;
				}
				strings += strlen(m->string) + strlen(m->valuestring) + 2;
				nmeta++;
			}
		} else {
			strings += strlen(e->string) + 1;
			nt++;
		}
	}
	if (nt > INT_MAX / 2 || nmeta > INT_MAX / 2) {
		rc = byol_err(err, -EINVAL, "%s: too many entries", name);
		goto out;
	}

	/* Check every tensor entry; then names unique and offsets tiling the data. */
	f->t = calloc(nt ? nt : 1, sizeof(*f->t));
	f->meta = calloc(nmeta ? nmeta : 1, sizeof(*f->meta));
	spans = malloc((nt ? nt : 1) * sizeof(*spans));
	if (!f->t || !f->meta || !spans) {
		rc = byol_err(err, -ENOMEM, "%s: out of memory", name);
		goto out;
	}
	size_t k = 0;
	cJSON_ArrayForEach(e, root) {
		if (e == metaobj)
			continue;
		spans[k].index = (int)k;
		rc = parse_entry(e, data_len, &f->t[k], &spans[k], name, err);
		if (rc)
			goto out;
		k++;
	}
	if (metaobj) {
		/* Metadata keys unique: sort them. */
		span *keys = malloc((nmeta ? nmeta : 1) * sizeof(*keys));
		if (!keys) {
			rc = byol_err(err, -ENOMEM, "%s: out of memory", name);
			goto out;
		}
		k = 0;
		cJSON_ArrayForEach(m, metaobj)
			keys[k++].name = m->string;
		qsort(keys, nmeta, sizeof(*keys), by_name);
		for (k = 1; k < nmeta; k++)
			if (strcmp(keys[k - 1].name, keys[k].name) == 0) {
				rc = byol_err(err, -EINVAL, "%s: __metadata__ '%s' given twice", name,
					      keys[k].name);
				break;
			}
		free(keys);
		if (rc)
			goto out;
	}
	qsort(spans, nt, sizeof(*spans), by_name);
	for (k = 1; k < nt; k++)
		if (strcmp(spans[k - 1].name, spans[k].name) == 0) {
			rc = byol_err(err, -EINVAL, "%s: tensor name '%s' given twice", name,
				      spans[k].name);
			goto out;
		}
	qsort(spans, nt, sizeof(*spans), by_offset);
	uint64_t covered = 0;
	for (k = 0; k < nt; k++) {
		if (spans[k].begin > covered) {
			rc = byol_err(err, -EINVAL,
				      "%s: data bytes [%" PRIu64 ", %" PRIu64 ") belong to no tensor",
				      name, covered, spans[k].begin);
			goto out;
		}
		if (spans[k].begin < covered) {
			rc = byol_err(err, -EINVAL, "%s: tensors '%s' and '%s' overlap", name,
				      spans[k - 1].name, spans[k].name);
			goto out;
		}
		covered = spans[k].end;
	}
	if (covered != data_len) {
		rc = byol_err(err, -EINVAL,
			      "%s: data bytes [%" PRIu64 ", %" PRIu64 ") belong to no tensor", name,
			      covered, data_len);
		goto out;
	}

	/* One buffer: the data (aligned), then the strings. */
	size_t dbytes = ((size_t)data_len + ST_ALIGN - 1) / ST_ALIGN * ST_ALIGN;
	size_t total = (dbytes + strings + ST_ALIGN - 1) / ST_ALIGN * ST_ALIGN;
	char *buf = aligned_alloc(ST_ALIGN, total ? total : ST_ALIGN);
	if (!buf) {
		rc = byol_err(err, -ENOMEM, "%s: out of memory (%zu bytes)", name, total);
		goto out;
	}
	f->priv = buf;
	char *str = buf + dbytes;
	for (k = 0; k < nt; k++) {
		st_entry *t = &f->t[spans[k].index];
		size_t n = strlen(spans[k].name) + 1;
		t->name = memcpy(str, spans[k].name, n);
		str += n;
		t->data = (const float *)(buf + spans[k].begin);
	}
	f->nt = (int)nt;
	if (metaobj) {
		cJSON_ArrayForEach(m, metaobj) {
			st_meta *mm = &f->meta[f->nmeta++];
			size_t n = strlen(m->string) + 1;
			mm->key = memcpy(str, m->string, n);
			str += n;
			n = strlen(m->valuestring) + 1;
			mm->value = memcpy(str, m->valuestring, n);
			str += n;
		}
	}
out:
	free(spans);
	cJSON_Delete(root);
	return rc;
}

/* The layout of a file of `size` bytes whose first 8 bytes (zeros when it has
 * fewer) are at first8: sets *hlen, the header length, after checking it and
 * that the data fits in memory. The one check of both the path and the buffer
 * readers. */
static int check_layout(uint64_t size, const unsigned char first8[8], uint64_t *hlen,
			const char *name, char *err)
{
	if (size < 8)
		return byol_err(err, -EINVAL, "%s: short file (%" PRIu64 " bytes)", name, size);
	memcpy(hlen, first8, 8);
	if (*hlen > size - 8)
		return byol_err(err, -EINVAL, "%s: header length %" PRIu64 " beyond the file (%"
				PRIu64 " bytes)", name, *hlen, size);
	if (*hlen > ST_MAX_HEADER)
		return byol_err(err, -EINVAL, "%s: header length %" PRIu64 " over %u", name, *hlen,
				ST_MAX_HEADER);
	if (size - 8 - *hlen > SIZE_MAX / 2)
		return byol_err(err, -EFBIG, "%s: too large", name);
	return 0;
}

int safetensors_parse(st_file *f, const void *buf, size_t len, const char *name, char *err)
{
	memset(f, 0, sizeof(*f));
	const unsigned char *p = buf;
	unsigned char first[8] = { 0 };
	uint64_t hlen;
	if (len >= 8)
		memcpy(first, p, 8);
	int rc = check_layout(len, first, &hlen, name, err);
	if (rc)
		return rc;
	rc = parse_header(f, (const char *)p + 8, hlen, len - 8 - hlen, name, err);
	if (rc) {
		safetensors_free(f);
		return rc;
	}
	if (len - 8 - hlen)
		memcpy(f->priv, p + 8 + hlen, len - 8 - hlen);
	return 0;
}

static int read_full(int fd, void *buf, size_t n)
{
	char *p = buf;
	while (n) {
		ssize_t r = read(fd, p, n > (1u << 30) ? (1u << 30) : n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EIO;            /* the file shrank */
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

int safetensors_read(st_file *f, const char *path, char *err)
{
	memset(f, 0, sizeof(*f));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return byol_err(err, -errno, "%s: %s", path, strerror(errno));
	struct stat st;
	int rc = 0;
	char *hdr = NULL;
	if (fstat(fd, &st) < 0) {
		rc = byol_err(err, -errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = byol_err(err, -EINVAL, "%s: not a regular file", path);
		goto out;
	}
	uint64_t size = (uint64_t)st.st_size, hlen;
	unsigned char first[8] = { 0 };
	if (size >= 8 && (rc = read_full(fd, first, 8)))
		goto read_error;
	if ((rc = check_layout(size, first, &hlen, path, err)))
		goto out;
	hdr = malloc(hlen ? hlen : 1);
	if (!hdr) {
		rc = byol_err(err, -ENOMEM, "%s: out of memory", path);
		goto out;
	}
	if ((rc = read_full(fd, hdr, hlen)))
		goto read_error;
	if ((rc = parse_header(f, hdr, hlen, size - 8 - hlen, path, err)))
		goto out;
	if ((rc = read_full(fd, f->priv, size - 8 - hlen)))
		goto read_error;
	goto out;
read_error:
	byol_err(err, rc, "%s: read: %s", path, rc == -EIO ? "file shrank while reading" : strerror(-rc));
out:
	free(hdr);
	close(fd);
	if (rc)
		safetensors_free(f);
	return rc;
}

const st_entry *safetensors_find(const st_file *f, const char *name)
{
	for (int i = 0; i < f->nt; i++)
		if (strcmp(f->t[i].name, name) == 0)
			return &f->t[i];
	return NULL;
}

const char *safetensors_meta(const st_file *f, const char *key)
{
	for (int i = 0; i < f->nmeta; i++)
		if (strcmp(f->meta[i].key, key) == 0)
			return f->meta[i].value;
	return NULL;
}

void safetensors_free(st_file *f)
{
	free(f->t);
	free(f->meta);
	free(f->priv);
	memset(f, 0, sizeof(*f));
}
