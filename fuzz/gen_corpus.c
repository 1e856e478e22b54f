/*
 * gen_corpus.c — writes the seed corpora of the fuzz targets (fuzz/corpus/)
 * with byold's own writers, so that every seed is an input the real code makes
 * or reads: frames packed by frame_encode (gen_frames.c), the experiment files
 * of deploy/examples and experiments/ and others from the config table, idx
 * files as Fashion-MNIST's are laid out (the first images of the installed set
 * when it is there), checkpoints written by safetensors_write; then edge cases
 * beside them. The output is the same bytes on every run.
 *
 *   gen_corpus DIR       (make fuzz-corpus: DIR = fuzz/corpus)
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cjson/cJSON.h>

#include "byol/config.h"
#include "byol/data.h"
#include "byol/error.h"
#include "byol/safetensors.h"

#include "gen_corpus.h"

const char *outdir;

void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "gen_corpus: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		die("out of memory");
	return p;
}

void put(buf *b, const void *data, size_t len)
{
	if (b->len + len > b->cap) {
		b->cap = 2 * (b->len + len) + 64;
		b->p = realloc(b->p, b->cap);
		if (!b->p)
			die("out of memory");
	}
	if (len)
		memcpy(b->p + b->len, data, len);
	b->len += len;
}

void put_u32be(buf *b, uint32_t v)
{
	const uint8_t x[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8),
			       (uint8_t)v };
	put(b, x, 4);
}

void write_file(const char *target, const char *name, const void *data, size_t len)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s", outdir, target);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%s/%s", outdir, target, name);
	FILE *f = fopen(path, "wb");
	if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0)
		die("%s: %s", path, strerror(errno));
}

uint8_t *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	buf b = { 0 };
	uint8_t chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		put(&b, chunk, n);
	fclose(f);
	*len = b.len;
	return b.p ? b.p : xcalloc(1, 1);
}

/* gzip of data, in memory (no file name or time in the header). */
buf gzip(const void *data, size_t len)
{
	z_stream z = { 0 };
	buf out = { 0 };
	if (deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		die("deflateInit2");
	out.cap = deflateBound(&z, len);
	out.p = xcalloc(out.cap, 1);
	z.next_in = (Bytef *)data;
	z.avail_in = (uInt)len;
	z.next_out = out.p;
	z.avail_out = (uInt)out.cap;
	if (deflate(&z, Z_FINISH) != Z_STREAM_END)
		die("deflate");
	out.len = out.cap - z.avail_out;
	deflateEnd(&z);
	return out;
}

/* ---- experiment files ------------------------------------------------------ */

/* A JSON number as the INI file writes it: integers whole (a seed has up to 16
 * digits), others with the 9 digits that keep a float. */
static void put_number(buf *b, double v)
{
	char t[40];
	int n = v == (double)(int64_t)v ? snprintf(t, sizeof(t), "%.0f", v)
					: snprintf(t, sizeof(t), "%.9g", v);
	put(b, t, (size_t)n);
}

/* The canonical JSON of c written back as an INI file: every key. */
static char *ini_of(const experiment_config *c)
{
	char *json = config_to_json(c);
	cJSON *root = json ? cJSON_Parse(json) : NULL;
	if (!root)
		die("config JSON");
	buf b = { 0 };
	const cJSON *sec, *item, *el;
	cJSON_ArrayForEach(sec, root) {
		char line[512];
		int n = snprintf(line, sizeof(line), "%s[%s]\n", b.len ? "\n" : "", sec->string);
		put(&b, line, (size_t)n);
		cJSON_ArrayForEach(item, sec) {
			n = snprintf(line, sizeof(line), "%s = ", item->string);
			put(&b, line, (size_t)n);
			if (cJSON_IsArray(item)) {
				int k = 0;
				cJSON_ArrayForEach(el, item) {
					if (k++)
						put(&b, ", ", 2);
					put_number(&b, el->valuedouble);
				}
			} else if (cJSON_IsString(item)) {
				put(&b, item->valuestring, strlen(item->valuestring));
			} else if (cJSON_IsNumber(item)) {
				put_number(&b, item->valuedouble);
			} else {
				char *t = cJSON_PrintUnformatted(item);
				put(&b, t, strlen(t));
				free(t);
			}
			put(&b, "\n", 1);
		}
	}
	put(&b, "", 1);
	cJSON_Delete(root);
	free(json);
	return (char *)b.p;
}

static void write_text(const char *target, const char *name, const char *text)
{
	write_file(target, name, text, strlen(text));
}

static void set_or_die(experiment_config *c, const char *assignment)
{
	char err[BYOL_ERR_LEN];
	if (config_set(c, assignment, err) < 0)
		die("%s", err);
}

/* Every experiment file (*.ini) of dir, as it is, named "PREFIX_FILE". */
static void copy_experiments(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	char **names = NULL;
	size_t n = 0;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l > 4 && strcmp(de->d_name + l - 4, ".ini") == 0) {
			names = realloc(names, (n + 1) * sizeof(*names));
			if (!names || !(names[n++] = strdup(de->d_name)))
				die("out of memory");
		}
	}
	closedir(d);
	for (size_t i = 0; i < n; i++) {
		char path[1024], name[300];
		size_t len;
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		uint8_t *text = read_file(path, &len);
		if (!text)
			die("%s: %s", path, strerror(errno));
		snprintf(name, sizeof(name), "%s_%s", prefix, names[i]);
		write_file("config", name, text, len);
		free(text);
		free(names[i]);
	}
	free(names);
}

static void gen_configs(const char *examples)
{
	char path[1024], err[BYOL_ERR_LEN];
	size_t len;
	snprintf(path, sizeof(path), "%s/byol-fmnist.ini", examples);
	uint8_t *example = read_file(path, &len);
	if (!example)
		die("%s: %s", path, strerror(errno));
	write_file("config", "example_byol_fmnist.ini", example, len);
	copy_experiments("experiments", "experiments");

	/* the example with --set overrides after it (NUL-separated: fuzz_config.c) */
	buf b = { 0 };
	put(&b, example, len);
	const char *sets[] = { "model.predictor_norm=none", "sweep.optim.lr=0.1, 0.2, 0.4",
			       "data.shard_size = 32", "experiment.name=bad/name" };
	for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
		put(&b, "", 1);
		put(&b, sets[i], strlen(sets[i]));
	}
	write_file("config", "example_with_sets", b.p, b.len);
	free(b.p);

	experiment_config c;
	config_defaults(&c);
	char *ini = ini_of(&c);
	write_text("config", "defaults_every_key.ini", ini);
	free(ini);

	config_defaults(&c);
	set_or_die(&c, "experiment.method=simclr");
	set_or_die(&c, "model.encoder=cnn");
	set_or_die(&c, "model.encoder_widths=32 64 64");
	set_or_die(&c, "model.cnn_strides=1 2 2");
	set_or_die(&c, "model.encoder_norm=gn_ws");
	set_or_die(&c, "model.projector_norm=ln");
	set_or_die(&c, "model.predictor_norm=none");
	set_or_die(&c, "model.init=modified");
	set_or_die(&c, "optim.name=adamw");
	set_or_die(&c, "augment.crop_scale=0.08, 1");
	set_or_die(&c, "eval.probe=no");
	set_or_die(&c, "experiment.seed=9007199254740991");
	ini = ini_of(&c);
	write_text("config", "cnn_simclr_every_key.ini", ini);
	char *json = config_to_json(&c);
	write_text("config", "canonical.json", json);
	free(json);
	free(ini);

	write_text("config", "sweep.ini",
		   "[experiment]\nname = sweep\n\n[data]\nbatch_size = 128\nshard_size = 32\n"
		   "\n[sweep]\nmodel.predictor_norm = bn, gn, none\n"
		   "augment.crop_scale = 0.08 1.0, 0.3 1.0\ndata.shard_size = 16, 32, 64\n");
	write_text("config", "syntax.ini",
		   "\xEF\xBB\xBF; a comment\r\n# another\r\n  [model]   \r\n"
		   "\tencoder_widths = 512,1024 , 64   # widths\r\n"
		   "proj_dim=64 ;a comment\r\n[optim]\r\nlr = 2e-1 ; inline\r\n"
		   "warmup_epochs = 0.5\n[ema]\ntau_base=0.996");
	write_text("config", "variants.ini",
		   "[experiment]\nname = ablation\n\n[sweep]\n"
		   "experiment.variant = base, proj_ln, pred_none\nexperiment.seed = 1, 2\n\n"
		   "[variant proj_ln]\nmodel.projector_norm = ln\noptim.lr = 0.5\n\n"
		   "[variant pred_none]\nmodel.predictor_norm = none\nmodel.init = modified\n");
	write_text("config", "bad_unknown_key.ini", "[model]\nencoder = mlp\nwidth = 3\n");
	write_text("config", "bad_duplicate.ini", "[optim]\nlr = 1\n[optim]\nlr = 2\n");
	write_text("config", "bad_invalid_combo.ini",
		   "[data]\nbatch_size = 100\nshard_size = 64\ntrain_limit = 10\n");
	/* canonical JSON of a config that parses but does not validate */
	if (config_parse_string(&c, "[data]\nbatch_size = 100\n", NULL, err) < 0)
		die("%s", err);
	json = config_to_json(&c);
	write_text("config", "invalid.json", json);
	free(json);
	free(example);
}

/* ---- idx files ------------------------------------------------------------- */

/* An idx file of the given shape with its data; with data NULL, the header
 * alone. */
static buf idx_file(int ndim, const uint32_t *dims, const uint8_t *data)
{
	buf b = { 0 };
	size_t n = 1;
	put(&b, (const uint8_t[]){ 0, 0, 0x08, (uint8_t)ndim }, 4);
	for (int i = 0; i < ndim; i++) {
		put_u32be(&b, dims[i]);
		n *= dims[i];
	}
	if (data)
		put(&b, data, n);
	return b;
}

static void write_idx(const char *name, int ndim, const uint32_t *dims, const uint8_t *data)
{
	buf b = idx_file(ndim, dims, data);
	write_file("idx", name, b.p, b.len);
	char gzname[128];
	snprintf(gzname, sizeof(gzname), "%s.gz", name);
	buf z = gzip(b.p, b.len);
	write_file("idx", gzname, z.p, z.len);
	free(z.p);
	free(b.p);
}

static void gen_idx(void)
{
	/* the first 3 test images and labels of Fashion-MNIST when installed,
	 * read by the loader itself; else a pattern of the same shape */
	uint8_t *images = NULL, *labels = NULL;
	int nd, dims[4];
	char err[BYOL_ERR_LEN];
	uint8_t pixels[3 * 28 * 28], classes[3] = { 9, 2, 1 };
	for (size_t i = 0; i < sizeof(pixels); i++)
		pixels[i] = (uint8_t)(i % 28 * 9);
	if (idx_read(DATA_DEFAULT_DIR "/t10k-images-idx3-ubyte.gz", &images, &nd, dims, err) == 0) {
		memcpy(pixels, images, sizeof(pixels));
		free(images);
	}
	if (idx_read(DATA_DEFAULT_DIR "/t10k-labels-idx1-ubyte.gz", &labels, &nd, dims, err) == 0) {
		memcpy(classes, labels, sizeof(classes));
		free(labels);
	}
	write_idx("fmnist_images_3", 3, (const uint32_t[]){ 3, 28, 28 }, pixels);
	write_idx("fmnist_labels_3", 1, (const uint32_t[]){ 3 }, classes);
	write_idx("color_2x3x4x3", 4, (const uint32_t[]){ 2, 3, 4, 3 }, pixels);
	write_idx("empty_0x28x28", 3, (const uint32_t[]){ 0, 28, 28 }, pixels);

	/* two gzip members, and a member followed by garbage (both read as zlib does) */
	buf b = idx_file(1, (const uint32_t[]){ 3 }, classes);
	buf z1 = gzip(b.p, 6), z2 = gzip(b.p + 6, b.len - 6), cat = { 0 };
	put(&cat, z1.p, z1.len);
	put(&cat, z2.p, z2.len);
	write_file("idx", "two_members.gz", cat.p, cat.len);
	cat.len = z1.len;
	put(&cat, "\x1f\x8b", 2);
	write_file("idx", "member_then_magic.gz", cat.p, cat.len);
	buf z = gzip(b.p, b.len);
	put(&z, "trailing", 8);
	write_file("idx", "member_then_garbage.gz", z.p, z.len);
	/* cut short, and with a corrupt deflate stream */
	write_file("idx", "cut.gz", z.p, z.len / 2);
	z.p[z.len / 2] ^= 0x55;
	write_file("idx", "corrupt.gz", z.p, z.len - 8);
	/* trailing bytes, a truncated body, a huge header */
	put(&b, "xyz", 3);
	write_file("idx", "trailing", b.p, b.len);
	write_file("idx", "truncated", b.p, b.len - 5);
	buf huge = idx_file(2, (const uint32_t[]){ 0x7fffffff, 0x7fffffff }, NULL);
	write_file("idx", "huge_header", huge.p, huge.len);
	buf zh = gzip(huge.p, huge.len);
	write_file("idx", "huge_header.gz", zh.p, zh.len);
	free(zh.p);
	free(huge.p);
	free(b.p);
	free(z.p);
	free(z1.p);
	free(z2.p);
	free(cat.p);
}

/* ---- safetensors ----------------------------------------------------------- */

static void gen_safetensors(const char *tmpdir)
{
	char path[1024], err[BYOL_ERR_LEN];
	float w[24], b[6], scalar = 0.5f;
	for (int i = 0; i < 24; i++)
		w[i] = (float)i * 0.25f - 3;
	for (int i = 0; i < 6; i++)
		b[i] = (float)i;
	experiment_config c;
	config_defaults(&c);
	char hash[17], *json = config_to_json(&c);
	config_hash(&c, hash);
	/* laid out like a checkpoint (lib/checkpoint.c): sections of the same names */
	const st_tensor t[] = {
		{ "online.enc.0.w", w, 2, { 4, 6 } },
		{ "online.enc.0.b", b, 1, { 6 } },
		{ "target.enc.0.w", w, 2, { 4, 6 } },
		{ "optim.m.enc.0.w", w, 2, { 6, 4 } },
		{ "bn.enc.0.mean", b, 1, { 6 } },
		{ "scalar", &scalar, 0, { 0 } },
		{ "empty", NULL, 2, { 0, 3 } },
		{ "four_dims", w, 4, { 1, 2, 3, 4 } },
	};
	const st_meta meta[] = {
		{ "format", "byold-checkpoint-1" }, { "step", "200" },
		{ "config_hash", hash }, { "config", json }, { "method", "byol" },
	};
	const struct {
		const char *name;
		int nt, nmeta;
	} files[] = {
		{ "checkpoint.safetensors", 8, 5 },
		{ "no_metadata.safetensors", 3, 0 },
		{ "metadata_only.safetensors", 0, 2 },
		{ "empty.safetensors", 0, 0 },
	};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", tmpdir, files[i].name);
		if (safetensors_write(path, t, files[i].nt, meta, files[i].nmeta, NULL, err) < 0)
			die("%s", err);
		size_t len;
		uint8_t *bytes = read_file(path, &len);
		if (!bytes)
			die("%s: %s", path, strerror(errno));
		write_file("safetensors", files[i].name, bytes, len);
		unlink(path);
		free(bytes);
	}
	free(json);

	/* edge cases the writer never makes: any order, JSON whitespace, a
	 * repeated name, overlapping offsets, a hole, a wrong dtype, a header
	 * length beyond the file */
	static const char *const headers[][2] = {
		{ "reordered", "{\"b\":{\"data_offsets\":[8,12],\"shape\":[1],\"dtype\":\"F32\"},"
			       "\"a\":{\"shape\":[2],\"dtype\":\"F32\",\"data_offsets\":[0,8]}}" },
		{ "whitespace", "{\n \"a\" : { \"dtype\" : \"F32\" , \"shape\" : [ 3 ] , "
				"\"data_offsets\" : [ 0 , 12 ] } }\t\r\n " },
		{ "leading_blank", " {\"a\":{\"dtype\":\"F32\",\"shape\":[3],"
				   "\"data_offsets\":[0,12]}}" },
		{ "repeated_name", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
				   "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}" },
		{ "overlap", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
			     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}" },
		{ "hole", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
			  "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}" },
		{ "dtype_f16", "{\"a\":{\"dtype\":\"F16\",\"shape\":[6],\"data_offsets\":[0,12]}}" },
		{ "big_numbers", "{\"a\":{\"dtype\":\"F32\",\"shape\":[9007199254740992,0],"
				 "\"data_offsets\":[0,1e300]}}" },
		{ "metadata_types", "{\"__metadata__\":{\"k\":1,\"k\":\"v\"},"
				    "\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}" },
		{ "metadata_twice", "{\"__metadata__\":{\"k\":\"v\"},\"__metadata__\":{},"
				    "\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}" },
	};
	for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
		const char *h = headers[i][1];
		uint64_t hl = strlen(h);
		buf out = { 0 };
		put(&out, &hl, 8);
		put(&out, h, hl);
		put(&out, w, 12);
		char name[64];
		snprintf(name, sizeof(name), "%s.safetensors", headers[i][0]);
		write_file("safetensors", name, out.p, out.len);
		free(out.p);
	}
	uint64_t hl = 1000;
	buf out = { 0 };
	put(&out, &hl, 8);
	put(&out, "{}", 2);
	write_file("safetensors", "header_beyond_file.safetensors", out.p, out.len);
	free(out.p);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: gen_corpus DIR   (writes DIR/{frame,config,idx,safetensors})\n");
		return 2;
	}
	outdir = argv[1];
	mkdir(outdir, 0755);
	char tmpdir[] = "/tmp/byol-gen-corpus.XXXXXX";
	if (!mkdtemp(tmpdir))
		die("mkdtemp: %s", strerror(errno));
	gen_frames();
	gen_configs("deploy/examples");
	gen_idx();
	gen_safetensors(tmpdir);
	rmdir(tmpdir);
	return 0;
}
