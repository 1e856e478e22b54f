/*
 * test_config.c — the experiment file: defaults, the DESIGN.md example, syntax,
 * every error message with its line, --set, canonical JSON, hash, validation,
 * sweeps, named variants, run names, the files of experiments/ and --help.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "byol/config.h"
#include "byol/data.h"
#include "byol/error.h"

/* The example experiment file of DESIGN.md ("Configuration"), verbatim. */
static const char design_example[] =
	"[experiment]\n"
	"name = byol-fmnist\n"
	"method = byol              ; byol | simsiam | simclr\n"
	"seed = 1\n"
	"\n"
	"[data]\n"
	"dir = /usr/share/datasets/fashion-mnist\n"
	"train_limit = 0            ; 0 = the whole train set\n"
	"batch_size = 256           ; global batch B\n"
	"shard_size = 64            ; images per shard = the BN batch\n"
	"\n"
	"[augment]\n"
	"crop_scale = 0.3, 1.0\n"
	"flip = 0.5\n"
	"jitter = 0.4\n"
	"blur = 0.0\n"
	"solarize = 0.0\n"
	"\n"
	"[model]\n"
	"encoder = mlp              ; mlp | cnn\n"
	"encoder_widths = 1024, 1024, 512\n"
	"proj_hidden = 1024\n"
	"proj_dim = 128\n"
	"pred_hidden = 1024\n"
	"encoder_norm = bn          ; bn | gn | gn_ws | ln | none\n"
	"projector_norm = bn\n"
	"predictor_norm = bn\n"
	"init = default             ; default | modified\n"
	"\n"
	"[optim]\n"
	"name = lars                ; lars | sgd | adamw\n"
	"lr = 0.2                   ; for batch 256; scaled by B/256\n"
	"weight_decay = 1.5e-6\n"
	"epochs = 10\n"
	"warmup_epochs = 1\n"
	"\n"
	"[ema]\n"
	"tau_base = 0.99\n"
	"\n"
	"[eval]\n"
	"knn_every_epochs = 1\n"
	"probe = true\n"
	"\n"
	"[checkpoint]\n"
	"every_steps = 200\n"
	"keep = 3\n"
	"\n"
	"[sweep]                    ; one run per combination\n"
	"model.predictor_norm = bn, none\n"
	;

/* The canonical JSON of the defaults. Changing it changes every config hash. */
static const char default_json[] =
	"{\"experiment\":{\"name\":\"byol\",\"method\":\"byol\",\"seed\":1,\"variant\":\"\"},"
	"\"data\":{\"dir\":\"/usr/share/datasets/fashion-mnist\",\"train_limit\":0,"
	"\"batch_size\":256,\"shard_size\":64},"
	"\"augment\":{\"crop_scale\":[0.3,1],\"crop_ratio\":[0.75,1.3333334],\"flip\":0.5,"
	"\"jitter\":0.4,\"blur\":0,\"solarize\":0},"
	"\"model\":{\"encoder\":\"mlp\",\"encoder_widths\":[1024,1024,512],"
	"\"cnn_strides\":[1,2,2],\"proj_hidden\":1024,\"proj_dim\":128,\"pred_hidden\":1024,"
	"\"encoder_norm\":\"bn\",\"projector_norm\":\"bn\",\"predictor_norm\":\"bn\","
	"\"gn_groups\":32,\"init\":\"default\"},"
	"\"optim\":{\"name\":\"lars\",\"lr\":1,\"weight_decay\":1.5e-06,\"momentum\":0.9,"
	"\"lars_eta\":0.001,\"epochs\":10,\"warmup_epochs\":1},"
	"\"ema\":{\"tau_base\":0.99},\"loss\":{\"temperature\":0.5},"
	"\"eval\":{\"knn_every_epochs\":1,\"knn_k\":20,\"probe\":true,\"probe_epochs\":30},"
	"\"checkpoint\":{\"every_steps\":200,\"keep\":3}}";

static experiment_config *new_config(void)
{
	experiment_config *c = malloc(sizeof(*c));
	assert_non_null(c);
	return c;
}

/* Parses text (as "t.ini") expecting failure with exactly `want`. */
static void expect_parse_error(const char *text, const char *want)
{
	experiment_config *c = new_config();
	char err[BYOL_ERR_LEN] = "";
	int rc = config_parse_string(c, text, "t.ini", err);
	if (rc != -EINVAL || strcmp(err, want) != 0)
		fail_msg("parse of:\n%s\nreturned %d '%s', want -EINVAL '%s'", text, rc, err, want);
	free(c);
}

static void expect_parse_ok(experiment_config *c, const char *text)
{
	char err[BYOL_ERR_LEN] = "";
	int rc = config_parse_string(c, text, "t.ini", err);
	if (rc != 0)
		fail_msg("parse of:\n%s\nfailed: %s", text, err);
}

static void expect_validate_error(const experiment_config *c, const char *want)
{
	char err[BYOL_ERR_LEN] = "";
	int rc = config_validate(c, err);
	if (rc != -EINVAL || strcmp(err, want) != 0)
		fail_msg("validate returned %d '%s', want -EINVAL '%s'", rc, err, want);
}

static void set_ok(experiment_config *c, const char *assignment)
{
	char err[BYOL_ERR_LEN] = "";
	int rc = config_set(c, assignment, err);
	if (rc != 0)
		fail_msg("--set %s failed: %s", assignment, err);
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return h;
}

/* Every default is the one written next to its field in config.h. */
static void test_defaults(void **state)
{
	experiment_config *c = new_config();
	memset(c, 0x5a, sizeof(*c));
	config_defaults(c);
	assert_string_equal(c->name, "byol");
	assert_int_equal(c->method, METHOD_BYOL);
	assert_int_equal(c->seed, 1);
	assert_string_equal(c->variant, "");
	assert_string_equal(c->data_dir, DATA_DEFAULT_DIR);
	assert_int_equal(c->train_limit, 0);
	assert_int_equal(c->batch_size, 256);
	assert_int_equal(c->shard_size, 64);
	assert_true(c->crop_scale[0] == 0.3f && c->crop_scale[1] == 1.0f);
	assert_true(c->crop_ratio[0] == 0.75f && c->crop_ratio[1] == (float)(4.0 / 3.0));
	assert_true(c->flip == 0.5f && c->jitter == 0.4f && c->blur == 0 && c->solarize == 0);
	assert_int_equal(c->encoder, ENCODER_MLP);
	assert_int_equal(c->n_encoder_widths, 3);
	assert_int_equal(c->encoder_widths[0], 1024);
	assert_int_equal(c->encoder_widths[1], 1024);
	assert_int_equal(c->encoder_widths[2], 512);
	assert_int_equal(c->n_cnn_strides, 3);
	assert_int_equal(c->cnn_strides[0], 1);
	assert_int_equal(c->cnn_strides[1], 2);
	assert_int_equal(c->cnn_strides[2], 2);
	assert_int_equal(c->proj_hidden, 1024);
	assert_int_equal(c->proj_dim, 128);
	assert_int_equal(c->pred_hidden, 1024);
	assert_int_equal(c->encoder_norm, NORM_BN);
	assert_int_equal(c->projector_norm, NORM_BN);
	assert_int_equal(c->predictor_norm, NORM_BN);
	assert_int_equal(c->gn_groups, 32);
	assert_int_equal(c->init, INIT_DEFAULT);
	assert_int_equal(c->optim, OPT_LARS);
	assert_true(c->lr == 1.0f && c->weight_decay == 1.5e-6f && c->momentum == 0.9f);
	assert_true(c->lars_eta == 1e-3f);
	assert_int_equal(c->epochs, 10);
	assert_true(c->warmup_epochs == 1.0f);
	assert_true(c->tau_base == 0.99f);
	assert_true(c->temperature == 0.5f);
	assert_true(c->knn_every_epochs == 1.0f);
	assert_int_equal(c->knn_k, 20);
	assert_int_equal(c->probe, 1);
	assert_int_equal(c->probe_epochs, 30);
	assert_int_equal(c->every_steps, 200);
	assert_int_equal(c->keep, 3);
	assert_int_equal(c->n_sweep, 0);
	assert_int_equal(c->n_variants, 0);
	char err[BYOL_ERR_LEN];
	assert_int_equal(config_validate(c, err), 0);
	free(c);
}

static void test_design_example(void **state)
{
	experiment_config *c = new_config();
	expect_parse_ok(c, design_example);
	assert_string_equal(c->name, "byol-fmnist");
	assert_int_equal(c->method, METHOD_BYOL);
	assert_string_equal(c->data_dir, "/usr/share/datasets/fashion-mnist");
	assert_int_equal(c->batch_size, 256);
	assert_int_equal(c->shard_size, 64);
	assert_true(c->crop_scale[0] == 0.3f && c->crop_scale[1] == 1.0f);
	assert_int_equal(c->n_encoder_widths, 3);
	assert_int_equal(c->encoder_widths[2], 512);
	assert_true(c->lr == 0.2f);
	assert_true(c->weight_decay == 1.5e-6f);
	assert_int_equal(c->epochs, 10);
	assert_int_equal(c->probe, 1);
	assert_int_equal(c->n_sweep, 1);
	assert_string_equal(c->sweep[0].key, "model.predictor_norm");
	assert_int_equal(c->sweep[0].n, 2);
	assert_string_equal(c->sweep[0].values[0], "bn");
	assert_string_equal(c->sweep[0].values[1], "none");
	assert_int_equal(config_sweep_count(c), 2);
	char err[BYOL_ERR_LEN];
	assert_int_equal(config_validate(c, err), 0);
	experiment_config *run = new_config();
	assert_int_equal(config_sweep_get(c, 1, run, err), 0);
	assert_int_equal(run->predictor_norm, NORM_NONE);
	assert_int_equal(run->n_sweep, 0);
	assert_string_equal(run->name, "byol-fmnist");

	/* The same from a file. */
	char path[] = "/tmp/test_config_XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, design_example, strlen(design_example)),
			 (ssize_t)strlen(design_example));
	close(fd);
	experiment_config *f = new_config();
	assert_int_equal(config_parse_file(f, path, err), 0);
	unlink(path);
	char *a = config_to_json(c), *b = config_to_json(f);
	assert_string_equal(a, b);
	free(a);
	free(b);
	free(f);
	free(run);
	free(c);
}

static void test_syntax(void **state)
{
	experiment_config *c = new_config();
	/* Comments of both kinds, indentation, tabs, CRLF, a key set to a list with
	 * blanks only, booleans in their spellings. */
	expect_parse_ok(c,
			"; a comment\n"
			"# another\n"
			"[experiment]   # section comment\n"
			"  name = run#1    # '#' inside a word is kept\n"
			"\tseed\t=\t42\t; tabs\r\n"
			"[model]\r\n"
			"encoder_widths = 256 128   # blanks separate too\n"
			"cnn_strides=1,2\n"
			"[eval]\n"
			"probe = NO\n"
			"[augment]\n"
			"crop_scale = 0.08,1\n");
	assert_string_equal(c->name, "run#1");
	assert_int_equal(c->seed, 42);
	assert_int_equal(c->n_encoder_widths, 2);
	assert_int_equal(c->encoder_widths[0], 256);
	assert_int_equal(c->encoder_widths[1], 128);
	assert_int_equal(c->encoder_widths[2], 0);
	assert_int_equal(c->n_cnn_strides, 2);
	assert_int_equal(c->probe, 0);
	assert_true(c->crop_scale[0] == 0.08f && c->crop_scale[1] == 1.0f);

	static const struct {
		const char *text;
		int value;
	} bools[] = {
		{ "true", 1 }, { "false", 0 }, { "yes", 1 }, { "no", 0 }, { "1", 1 }, { "0", 0 },
		{ "on", 1 }, { "off", 0 }, { "True", 1 },
	};
	for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
		char text[64];
		snprintf(text, sizeof(text), "[eval]\nprobe = %s\n", bools[i].text);
		expect_parse_ok(c, text);
		assert_int_equal(c->probe, bools[i].value);
	}
	/* A byte order mark does not hide an unknown section. */
	expect_parse_ok(c, "\xEF\xBB\xBF[data]\nbatch_size = 128\n");
	assert_int_equal(c->batch_size, 128);
	expect_parse_error("\xEF\xBB\xBF[nothing]\n", "t.ini:1: unknown section [nothing]");
	/* Parsing starts from the defaults: an empty file gives them. */
	expect_parse_ok(c, "");
	char *json = config_to_json(c);
	assert_string_equal(json, default_json);
	free(json);
	free(c);
}

static void test_errors_name_the_line(void **state)
{
	expect_parse_error("[experiment]\nname = x\n\n[optimizer]\nlr = 1\n",
			   "t.ini:4: unknown section [optimizer]");
	/* An unknown section is caught even when it holds no key. */
	expect_parse_error("[nothing]\n[data]\nbatch_size = 128\n", "t.ini:1: unknown section [nothing]");
	expect_parse_error("[model]\nencoder = mlp\nencoder_with = 3\n",
			   "t.ini:3: [model] encoder_with: unknown key");
	expect_parse_error("[data]\nbatch_size = 12x\n", "t.ini:2: [data] batch_size: '12x' is not an integer");
	expect_parse_error("[data]\nbatch_size = 1.5\n", "t.ini:2: [data] batch_size: '1.5' is not an integer");
	expect_parse_error("[data]\nbatch_size = 99999999999999999999\n",
			   "t.ini:2: [data] batch_size: '99999999999999999999' is not an integer");
	expect_parse_error("[data]\nbatch_size = 1\n",
			   "t.ini:2: [data] batch_size: 1 is out of range [2, 1048576]");
	expect_parse_error("[augment]\nflip = 1.5\n", "t.ini:2: [augment] flip: 1.5 is out of range [0, 1]");
	expect_parse_error("[augment]\nflip = nan\n", "t.ini:2: [augment] flip: 'nan' is not a number");
	expect_parse_error("[augment]\nflip = inf\n", "t.ini:2: [augment] flip: 'inf' is not a number");
	expect_parse_error("[augment]\nflip =\n", "t.ini:2: [augment] flip: '' is not a number");
	expect_parse_error("\n[model]\n\nencoder_norm = bm\n",
			   "t.ini:4: [model] encoder_norm: 'bm' is not one of bn, gn, gn_ws, ln, none");
	expect_parse_error("[experiment]\nmethod = BYOL\n",
			   "t.ini:2: [experiment] method: 'BYOL' is not one of byol, simsiam, simclr");
	expect_parse_error("[data]\nbatch_size = 128\nshard_size = 32\nbatch_size = 64\n",
			   "t.ini:4: [data] batch_size: duplicate key (first on line 2)");
	/* The same section opened twice is fine; a key set in both is not. */
	expect_parse_error("[data]\nbatch_size = 128\n[model]\ninit = modified\n[data]\nbatch_size = 64\n",
			   "t.ini:6: [data] batch_size: duplicate key (first on line 2)");
	expect_parse_error("[eval]\nprobe = maybe\n",
			   "t.ini:2: [eval] probe: 'maybe' is not a boolean (true/false, yes/no, on/off, 1/0)");
	expect_parse_error("seed = 3\n[experiment]\n", "t.ini:1: seed: key outside any [section]");
	expect_parse_error("[experiment]\nseed = -1\n",
			   "t.ini:2: [experiment] seed: '-1' is not a non-negative integer");
	expect_parse_error("[experiment]\nseed = 9007199254740992\n",
			   "t.ini:2: [experiment] seed: 9007199254740992 is out of range [0, 9007199254740991]");
	/* Lines inih cannot take: no '=', no ']', indented continuation. */
	expect_parse_error("[data]\nbatch_size = 128\njust words\n",
			   "t.ini:3: expected '[section]' or 'key = value'");
	expect_parse_error("[data\nbatch_size = 128\n", "t.ini:1: expected '[section]' or 'key = value'");
	expect_parse_error("[data]\nbatch_size = 128\n    continued\n",
			   "t.ini:3: expected '[section]' or 'key = value'");
	/* Only the first error is reported. */
	expect_parse_error("[data]\nbatch = 1\n[bad]\n", "t.ini:2: [data] batch: unknown key");
	expect_parse_error("[data]\nnonsense\nbatch = 1\n", "t.ini:2: expected '[section]' or 'key = value'");

	/* A line longer than inih's buffer is refused, not split. */
	char text[600];
	snprintf(text, sizeof(text), "[experiment]\nname = %0300d\nseed = 2\n", 0);
	expect_parse_error(text, "t.ini:2: line longer than 198 characters");

	/* Lists. */
	expect_parse_error("[model]\nencoder_widths = 1,,2\n",
			   "t.ini:2: [model] encoder_widths: '1,,2': empty list element");
	expect_parse_error("[model]\nencoder_widths = ,1\n",
			   "t.ini:2: [model] encoder_widths: ',1': empty list element");
	expect_parse_error("[model]\nencoder_widths = 1,\n",
			   "t.ini:2: [model] encoder_widths: '1,': empty list element");
	expect_parse_error("[model]\nencoder_widths =\n", "t.ini:2: [model] encoder_widths: empty list");
	expect_parse_error("[model]\nencoder_widths = 1 2 3 4 5 6 7 8 9\n",
			   "t.ini:2: [model] encoder_widths: '1 2 3 4 5 6 7 8 9': more than 8 values");
	expect_parse_error("[model]\nencoder_widths = 64, 0\n",
			   "t.ini:2: [model] encoder_widths: 0 is out of range [1, 65536]");
	expect_parse_error("[model]\nencoder_widths = 64, x\n",
			   "t.ini:2: [model] encoder_widths: 'x' is not an integer");
	expect_parse_error("[augment]\ncrop_scale = 0.5\n",
			   "t.ini:2: [augment] crop_scale: '0.5': expected two values (min, max)");
	expect_parse_error("[augment]\ncrop_scale = 0.1, 0.5, 1\n",
			   "t.ini:2: [augment] crop_scale: '0.1, 0.5, 1': more than 2 values");

	/* Files: a missing one is -ENOENT naming it. */
	experiment_config *c = new_config();
	char err[BYOL_ERR_LEN];
	assert_int_equal(config_parse_file(c, "/nonexistent/exp.ini", err), -ENOENT);
	assert_string_equal(err, "/nonexistent/exp.ini: No such file or directory");
	free(c);
}

static void test_set(void **state)
{
	experiment_config *c = new_config();
	char err[BYOL_ERR_LEN];
	config_defaults(c);
	set_ok(c, "model.encoder_norm=gn_ws");
	assert_int_equal(c->encoder_norm, NORM_GN_WS);
	set_ok(c, " data.batch_size = 512 ");
	assert_int_equal(c->batch_size, 512);
	set_ok(c, "model.encoder_widths=512,256");
	assert_int_equal(c->n_encoder_widths, 2);
	assert_int_equal(c->encoder_widths[1], 256);
	set_ok(c, "experiment.name=a b");
	assert_string_equal(c->name, "a b");

	experiment_config *before = new_config();
	*before = *c;
	assert_int_equal(config_set(c, "model.encoder_norm=bm", err), -EINVAL);
	assert_string_equal(err, "--set: [model] encoder_norm: 'bm' is not one of bn, gn, gn_ws, ln, none");
	assert_int_equal(config_set(c, "model.encoder_widths=1,2,x", err), -EINVAL);
	assert_string_equal(err, "--set: [model] encoder_widths: 'x' is not an integer");
	assert_int_equal(config_set(c, "model.foo=1", err), -EINVAL);
	assert_string_equal(err, "--set: [model] foo: unknown key");
	assert_int_equal(config_set(c, "modle.init=default", err), -EINVAL);
	assert_string_equal(err, "--set: [modle] init: unknown section");
	assert_int_equal(config_set(c, "model.init", err), -EINVAL);
	assert_string_equal(err, "--set model.init: expected section.key=value");
	assert_int_equal(config_set(c, "seed=3", err), -EINVAL);
	assert_string_equal(err, "--set seed=3: expected section.key=value");
	/* A failed --set leaves the config as it was. */
	assert_memory_equal(c, before, sizeof(*c));

	/* --set on a swept key fixes it and drops the axis; sweep.* adds one. */
	set_ok(c, "sweep.model.predictor_norm=bn, none");
	set_ok(c, "sweep.experiment.seed=1,2,3");
	assert_int_equal(config_sweep_count(c), 6);
	set_ok(c, "sweep.experiment.seed=1,2");    /* replaces */
	assert_int_equal(c->n_sweep, 2);
	assert_int_equal(config_sweep_count(c), 4);
	set_ok(c, "model.predictor_norm=gn");
	assert_int_equal(c->n_sweep, 1);
	assert_string_equal(c->sweep[0].key, "experiment.seed");
	assert_int_equal(c->predictor_norm, NORM_GN);
	assert_int_equal(config_set(c, "sweep.model.predictor_norm=bn, bm", err), -EINVAL);
	assert_string_equal(err, "--set: [sweep] model.predictor_norm: model.predictor_norm: 'bm' is not one of bn, gn, gn_ws, ln, none");
	assert_int_equal(c->n_sweep, 1);
	free(before);
	free(c);
}

static void test_json_canonical(void **state)
{
	experiment_config *c = new_config(), *d = new_config();
	char err[BYOL_ERR_LEN];
	config_defaults(c);
	char *json = config_to_json(c);
	assert_string_equal(json, default_json);
	/* parse -> print -> parse -> print is byte-stable and gives the same struct. */
	assert_int_equal(config_from_json(d, json, err), 0);
	assert_memory_equal(c, d, sizeof(*c));
	char *again = config_to_json(d);
	assert_string_equal(json, again);
	free(again);
	free(json);

	/* The same for a config far from the defaults (the sweep is not in the JSON). */
	expect_parse_ok(c, design_example);
	set_ok(c, "experiment.seed=9007199254740991");
	set_ok(c, "optim.lr=0.1234567");
	set_ok(c, "optim.weight_decay=3e-38");
	set_ok(c, "augment.crop_ratio=0.1, 99.999");
	set_ok(c, "model.encoder=cnn");
	set_ok(c, "model.encoder_widths=1,2,3,4,5,6,7,65536");
	set_ok(c, "experiment.name=q\"uote\\ é");
	json = config_to_json(c);
	assert_non_null(strstr(json, "\"seed\":9007199254740991"));
	assert_non_null(strstr(json, "\"lr\":0.1234567"));
	assert_non_null(strstr(json, "\"name\":\"q\\\"uote\\\\ é\""));
	assert_int_equal(config_from_json(d, json, err), 0);
	again = config_to_json(d);
	assert_string_equal(json, again);
	c->n_sweep = 0;
	memset(c->sweep, 0, sizeof(c->sweep));
	assert_memory_equal(c, d, sizeof(*c));
	free(again);
	free(json);

	/* Every float survives exactly, through the shortest text. */
	config_defaults(c);
	uint32_t x = 12345;
	for (int i = 0; i < 8000; i++) {
		x = x * 1664525u + 1013904223u;
		float f = (float)(x >> 8) / 16777216.0f;        /* [0, 1) */
		if (i % 3 == 1)
			f = f * f * f * f;                      /* small ones too */
		c->tau_base = f;
		json = config_to_json(c);
		assert_int_equal(config_from_json(d, json, err), 0);
		if (memcmp(&d->tau_base, &f, sizeof(f)) != 0)
			fail_msg("%.9g came back as %.9g via %s", (double)f, (double)d->tau_base, json);
		free(json);
	}
	free(c);
	free(d);
}

static void test_json_partial_and_errors(void **state)
{
	experiment_config *c = new_config();
	char err[BYOL_ERR_LEN];
	assert_int_equal(config_from_json(c, "{\"model\":{\"encoder_norm\":\"ln\"},\"data\":{}}", err), 0);
	assert_int_equal(c->encoder_norm, NORM_LN);
	assert_int_equal(c->batch_size, 256);
	assert_int_equal(c->n_encoder_widths, 3);

	static const struct {
		const char *json, *want;
	} bad[] = {
		{ "{", "config JSON: does not parse" },
		{ "[1]", "config JSON: not an object" },
		{ "{\"modle\":{}}", "config JSON: unknown section [modle]" },
		{ "{\"sweep\":3}", "config JSON: [sweep]: not an object" },
		{ "{\"sweeps\":{}}", "config JSON: unknown section [sweeps]" },
		{ "{\"model\":3}", "config JSON: [model]: not an object" },
		{ "{\"model\":{\"foo\":1}}", "config JSON: [model] foo: unknown key" },
		{ "{\"model\":{\"init\":\"default\",\"init\":\"modified\"}}",
		  "config JSON: [model] init: duplicate key" },
		{ "{\"model\":{},\"model\":{}}", "config JSON: [model]: duplicate section" },
		{ "{\"data\":{\"batch_size\":\"256\"}}", "config JSON: [data] batch_size: expected a number" },
		{ "{\"data\":{\"batch_size\":256.5}}",
		  "config JSON: [data] batch_size: '256.5' is not an integer" },
		{ "{\"data\":{\"batch_size\":1e30}}",
		  "config JSON: [data] batch_size: '1e+30' is not an integer" },
		{ "{\"experiment\":{\"seed\":-1}}",
		  "config JSON: [experiment] seed: '-1' is not a non-negative integer" },
		{ "{\"model\":{\"encoder_norm\":1}}", "config JSON: [model] encoder_norm: expected a string" },
		{ "{\"model\":{\"encoder_norm\":\"BN\"}}",
		  "config JSON: [model] encoder_norm: 'BN' is not one of bn, gn, gn_ws, ln, none" },
		{ "{\"eval\":{\"probe\":1}}", "config JSON: [eval] probe: expected true or false" },
		{ "{\"model\":{\"encoder_widths\":[1,\"2\"]}}",
		  "config JSON: [model] encoder_widths: expected an array of numbers" },
		{ "{\"model\":{\"encoder_widths\":[]}}", "config JSON: [model] encoder_widths: empty list" },
		{ "{\"augment\":{\"crop_scale\":[0.5]}}",
		  "config JSON: [augment] crop_scale: '0.5': expected two values (min, max)" },
		{ "{\"augment\":{\"flip\":2}}", "config JSON: [augment] flip: 2 is out of range [0, 1]" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		int rc = config_from_json(c, bad[i].json, err);
		if (rc != -EINVAL || strcmp(err, bad[i].want) != 0)
			fail_msg("%s: returned %d '%s', want '%s'", bad[i].json, rc, err, bad[i].want);
	}
	free(c);
}

static void test_hash(void **state)
{
	assert_true(fnv1a("a") == 0xaf63dc4c8601ec8cULL);       /* the published vector */
	experiment_config *c = new_config();
	config_defaults(c);
	char h[17], want[17];
	config_hash(c, h);
	snprintf(want, sizeof(want), "%016llx", (unsigned long long)fnv1a(default_json));
	assert_string_equal(h, want);
	assert_string_equal(h, "a627be58962dd499");
	/* Any change moves it; the sweep does not. */
	set_ok(c, "sweep.experiment.seed=1,2");
	config_hash(c, want);
	assert_string_equal(h, want);
	set_ok(c, "augment.flip=0.25");
	config_hash(c, want);
	assert_string_not_equal(h, want);
	free(c);
}

static void test_validate(void **state)
{
	experiment_config *c = new_config();
	static const struct {
		const char *set, *want;
	} bad[] = {
		{ "data.batch_size=250", "[data] batch_size: 250 is not a multiple of shard_size 64" },
		{ "data.batch_size=32", "[data] batch_size: 32 is not a multiple of shard_size 64" },
		{ "data.train_limit=100", "[data] train_limit: 100 is smaller than one batch (256)" },
		{ "augment.crop_scale=0.5,0.4",
		  "[augment] crop_scale: (0.5, 0.4) must satisfy 0 < min <= max <= 1" },
		{ "augment.crop_scale=0,1", "[augment] crop_scale: (0, 1) must satisfy 0 < min <= max <= 1" },
		{ "augment.crop_ratio=2,1", "[augment] crop_ratio: (2, 1) must satisfy 0 < min <= max" },
		{ "augment.crop_ratio=0,1", "[augment] crop_ratio: (0, 1) must satisfy 0 < min <= max" },
		{ "model.encoder=cnn", "[model] cnn_strides: 3 strides for 3 encoder_widths (one per layer)" },
		{ "optim.momentum=1", "[optim] momentum: must be < 1" },
		{ "optim.lars_eta=0", "[optim] lars_eta: must be > 0 with lars" },
		{ "optim.warmup_epochs=10", "[optim] warmup_epochs: 10 is not below epochs 10" },
		{ "experiment.name=", "[experiment] name: empty" },
		{ "experiment.name=a/b", "[experiment] name: 'a/b' may not contain '/' or be '.' or '..'" },
		{ "experiment.name=..", "[experiment] name: '..' may not contain '/' or be '.' or '..'" },
		{ "data.dir=", "[data] dir: empty" },
	};
	char err[BYOL_ERR_LEN];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		config_defaults(c);
		set_ok(c, bad[i].set);
		if (strcmp(bad[i].set, "model.encoder=cnn") == 0) {
			/* Matching counts pass; a mismatch names both. */
			assert_int_equal(config_validate(c, err), 0);
			set_ok(c, "model.cnn_strides=1,2");
			expect_validate_error(c, "[model] cnn_strides: 2 strides for 3 encoder_widths (one per layer)");
			continue;
		}
		expect_validate_error(c, bad[i].want);
	}
	/* The same cross-key rules hold for values that are fine alone. */
	config_defaults(c);
	set_ok(c, "optim.name=sgd");
	set_ok(c, "optim.lars_eta=0");
	assert_int_equal(config_validate(c, err), 0);
	/* Ranges are checked for structs filled by hand, too. */
	config_defaults(c);
	c->shard_size = 1;
	c->batch_size = 2;
	expect_validate_error(c, "[data] shard_size: 1 is out of range [2, 65536]");
	config_defaults(c);
	c->flip = -0.5f;
	expect_validate_error(c, "[augment] flip: -0.5 is out of range [0, 1]");
	config_defaults(c);
	c->n_encoder_widths = 0;
	expect_validate_error(c, "[model] encoder_widths: empty list");
	config_defaults(c);
	c->encoder_widths[1] = -4;
	expect_validate_error(c, "[model] encoder_widths: -4 is out of range [1, 65536]");
	config_defaults(c);
	c->predictor_norm = (norm_kind)7;
	expect_validate_error(c, "[model] predictor_norm: '?' is not one of bn, gn, gn_ws, ln, none");
	config_defaults(c);
	c->seed = UINT64_MAX;
	expect_validate_error(c, "[experiment] seed: 18446744073709551615 is out of range [0, 9007199254740991]");
	config_defaults(c);
	memset(c->name, 'x', sizeof(c->name));
	expect_validate_error(c, "[experiment] name: expected a string");
	config_defaults(c);
	c->n_sweep = 1;
	c->sweep[0].n = 0;
	assert_int_equal(config_sweep_count(c), 0);
	expect_validate_error(c, "[sweep] axis 0 '': 0 values");
	config_defaults(c);
	c->lr = 0.0f / 0.0f;
	expect_validate_error(c, "[optim] lr: expected a number");
	free(c);
}

static void test_sweep(void **state)
{
	experiment_config *c = new_config(), *run = new_config();
	char err[BYOL_ERR_LEN];
	expect_parse_ok(c,
			"[sweep]\n"
			"model.predictor_norm = bn, none   # the question\n"
			"augment.crop_scale = 0.08 1.0, 0.3 1\n"
			"experiment.seed = 1, 2, 3\n");
	assert_int_equal(c->n_sweep, 3);
	assert_int_equal(config_sweep_count(c), 12);
	assert_string_equal(c->sweep[1].values[0], "0.08 1.0");
	assert_int_equal(config_validate(c, err), 0);
	/* The last axis varies fastest. */
	for (int i = 0; i < 12; i++) {
		assert_int_equal(config_sweep_get(c, i, run, err), 0);
		assert_int_equal(run->n_sweep, 0);
		assert_int_equal(run->predictor_norm, i / 6 == 0 ? NORM_BN : NORM_NONE);
		assert_true(run->crop_scale[0] == ((i / 3) % 2 == 0 ? 0.08f : 0.3f));
		assert_true(run->crop_scale[1] == 1.0f);
		assert_int_equal(run->seed, 1 + i % 3);
	}
	assert_int_equal(config_sweep_get(c, 12, run, err), -EINVAL);
	assert_int_equal(config_sweep_get(c, -1, run, err), -EINVAL);
	/* out may be the base itself. */
	assert_int_equal(config_sweep_get(c, 11, c, err), 0);
	assert_int_equal(c->n_sweep, 0);
	assert_int_equal(c->seed, 3);
	assert_int_equal(c->predictor_norm, NORM_NONE);
	assert_int_equal(config_sweep_count(c), 1);

	expect_parse_error("[sweep]\nmodel.predictor_norm = bn, bm\n",
			   "t.ini:2: [sweep] model.predictor_norm: model.predictor_norm: 'bm' is not one of bn, gn, gn_ws, ln, none");
	expect_parse_error("[sweep]\nmodel.predictor = bn\n",
			   "t.ini:2: [sweep] model.predictor: unknown key 'model.predictor' (a sweep line is section.key = v1, v2, ...)");
	expect_parse_error("[sweep]\nseed = 1, 2\n",
			   "t.ini:2: [sweep] seed: unknown key 'seed' (a sweep line is section.key = v1, v2, ...)");
	expect_parse_error("[sweep]\nexperiment.seed = 1, , 2\n",
			   "t.ini:2: [sweep] experiment.seed: '1, , 2': empty value");
	expect_parse_error("[sweep]\nexperiment.seed = 1, 1\n",
			   "t.ini:2: [sweep] experiment.seed: experiment.seed: value '1' given twice");
	expect_parse_error("[sweep]\nexperiment.seed = 1, 2\n\nexperiment.seed = 3\n",
			   "t.ini:4: [sweep] experiment.seed: duplicate key (first on line 2)");
	expect_parse_error("[sweep]\nexperiment.seed = 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17\n",
			   "t.ini:2: [sweep] experiment.seed: more than 16 values");
	expect_parse_error("[sweep]\n"
			   "experiment.seed = 1,2,3,4,5,6,7,8,9\n"
			   "data.batch_size = 64,128,192,256,320,384,448,512\n"
			   "optim.epochs = 1,2,3,4,5,6,7,8\n"
			   "optim.lr = 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8\n",
			   "t.ini:5: [sweep] optim.lr: the sweep expands to more than 4096 runs");
	/* A refused axis is not kept. */
	config_defaults(c);
	set_ok(c, "sweep.experiment.seed=1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16");
	set_ok(c, "sweep.optim.epochs=1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16");
	set_ok(c, "sweep.optim.lr=0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1,1.1,1.2,1.3,1.4,1.5,1.6");
	assert_int_equal(config_sweep_count(c), 4096);
	assert_int_equal(config_set(c, "sweep.augment.flip=0, 1", err), -EINVAL);
	assert_string_equal(err, "--set: [sweep] augment.flip: the sweep expands to more than 4096 runs");
	assert_int_equal(c->n_sweep, 3);
	assert_int_equal(config_set(c, "sweep.optim.lr=0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1,1.1,1.2,1.3,1.4,1.5,1.6,1.7", err), -EINVAL);
	assert_string_equal(err, "--set: [sweep] optim.lr: more than 16 values");
	assert_int_equal(c->sweep[2].n, 16);
	assert_int_equal(config_sweep_count(c), 4096);
	/* Each combination is validated: a shard size that does not divide the batch. */
	expect_parse_ok(c, "[data]\nbatch_size = 192\n[sweep]\ndata.shard_size = 32, 64, 128\n");
	expect_validate_error(c, "sweep run 2 (data.shard_size=128): [data] batch_size: 192 is not a multiple of shard_size 128");
	/* ...while an invalid base that every run overrides is fine. */
	expect_parse_ok(c, "[data]\nshard_size = 100\n[sweep]\ndata.shard_size = 32, 64\n");
	assert_int_equal(config_validate(c, err), 0);
	free(run);
	free(c);
}

/* The example of the variants' documentation: line numbers matter below. */
static const char variant_example[] =
	"[experiment]\n"                                        /* 1 */
	"name = bn-ablation\n"                                  /* 2 */
	"[sweep]\n"                                             /* 3 */
	"experiment.variant = bn_both, projector_only, none\n"  /* 4 */
	"experiment.seed = 1, 2, 3\n"                           /* 5 */
	"\n"                                                    /* 6 */
	"[variant projector_only]\n"                            /* 7 */
	"model.predictor_norm = none\n"                         /* 8 */
	"\n"                                                    /* 9 */
	"  [variant none]   ; all of them\n"                    /* 10 */
	"model.encoder_norm = none\n"                           /* 11 */
	"model.projector_norm = none\n"                         /* 12 */
	"model.predictor_norm = none\n";                        /* 13 */

/* The run names of c, as config_sweep_names writes them (n of them). */
static char *run_names(const experiment_config *c, int *n)
{
	char err[BYOL_ERR_LEN];
	*n = config_sweep_count(c);
	char *names = calloc((size_t)*n, 128);
	assert_non_null(names);
	if (config_sweep_names(c, names, 128, err) != 0)
		fail_msg("config_sweep_names: %s", err);
	return names;
}

static void test_variants(void **state)
{
	experiment_config *c = new_config(), *run = new_config();
	char err[BYOL_ERR_LEN];
	expect_parse_ok(c, variant_example);
	assert_int_equal(c->n_variants, 2);
	assert_string_equal(c->variants[0].name, "projector_only");
	assert_int_equal(c->variants[0].n, 1);
	assert_string_equal(c->variants[0].set[0].key, "model.predictor_norm");
	assert_string_equal(c->variants[0].set[0].value, "none");
	assert_string_equal(c->variants[1].name, "none");
	assert_int_equal(c->variants[1].n, 3);
	assert_string_equal(c->variants[1].set[2].key, "model.predictor_norm");
	assert_int_equal(config_sweep_count(c), 9);
	assert_int_equal(config_validate(c, err), 0);
	/* The base is untouched by the variants. */
	assert_int_equal(c->encoder_norm, NORM_BN);
	assert_int_equal(c->predictor_norm, NORM_BN);
	assert_string_equal(c->variant, "");

	/* The variant axis first, its keys applied; the seed still varies. */
	static const norm_kind want[3][3] = {
		{ NORM_BN, NORM_BN, NORM_BN },          /* bn_both: the base */
		{ NORM_BN, NORM_BN, NORM_NONE },        /* projector_only */
		{ NORM_NONE, NORM_NONE, NORM_NONE },    /* none */
	};
	static const char *const variant[3] = { "bn_both", "projector_only", "none" };
	int n;
	char *names = run_names(c, &n);
	assert_int_equal(n, 9);
	for (int i = 0; i < 9; i++) {
		assert_int_equal(config_sweep_get(c, i, run, err), 0);
		assert_int_equal(run->n_sweep, 0);
		assert_int_equal(run->n_variants, 0);
		assert_string_equal(run->variant, variant[i / 3]);
		assert_int_equal(run->seed, 1 + i % 3);
		assert_int_equal(run->encoder_norm, want[i / 3][0]);
		assert_int_equal(run->projector_norm, want[i / 3][1]);
		assert_int_equal(run->predictor_norm, want[i / 3][2]);
		/* the run's JSON records its variant */
		char *json = config_to_json(run), key[64], name[128];
		snprintf(key, sizeof(key), "\"variant\":\"%s\"", variant[i / 3]);
		assert_non_null(strstr(json, key));
		free(json);
		snprintf(name, sizeof(name), "bn-ablation/variant=%s,seed=%d", variant[i / 3],
			 1 + i % 3);
		assert_string_equal(names + i * 128, name);
	}
	free(names);

	/* --set changes the base: the variant's own keys win over it... */
	set_ok(c, "model.predictor_norm=ln");
	set_ok(c, "optim.epochs=2");
	assert_int_equal(config_sweep_get(c, 8, run, err), 0);
	assert_int_equal(run->predictor_norm, NORM_NONE);
	assert_int_equal(run->epochs, 2);
	assert_int_equal(config_sweep_get(c, 0, run, err), 0);
	assert_int_equal(run->predictor_norm, NORM_LN);
	/* ...and fixing experiment.variant drops the axis and still applies it. */
	set_ok(c, "experiment.variant=projector_only");
	assert_int_equal(c->n_sweep, 1);
	assert_int_equal(config_sweep_count(c), 3);
	assert_int_equal(config_validate(c, err), 0);
	assert_int_equal(config_sweep_get(c, 2, run, err), 0);
	assert_string_equal(run->variant, "projector_only");
	assert_int_equal(run->predictor_norm, NORM_NONE);
	assert_int_equal(run->seed, 3);
	names = run_names(c, &n);
	assert_string_equal(names + 2 * 128, "bn-ablation/seed=3");
	free(names);
	/* A subset of the variants from the command line. */
	set_ok(c, "sweep.experiment.variant=none, bn_both");
	assert_int_equal(config_sweep_count(c), 6);
	assert_int_equal(config_validate(c, err), 0);
	assert_int_equal(config_sweep_get(c, 5, run, err), 0);
	assert_string_equal(run->variant, "bn_both");
	assert_int_equal(run->encoder_norm, NORM_BN);

	/* A fixed variant in [experiment], no sweep: the one run has it applied. */
	expect_parse_ok(c, "[experiment]\nvariant = none\n[variant none]\nmodel.init = modified\n"
			   "model.encoder_norm = none\n");
	assert_int_equal(config_sweep_count(c), 1);
	assert_int_equal(c->init, INIT_DEFAULT);
	assert_int_equal(config_validate(c, err), 0);
	assert_int_equal(config_sweep_get(c, 0, c, err), 0);
	assert_int_equal(c->init, INIT_MODIFIED);
	assert_int_equal(c->encoder_norm, NORM_NONE);
	assert_int_equal(c->n_variants, 0);
	/* An empty section is a variant equal to the base; names keep file order. */
	expect_parse_ok(c, "[sweep]\nexperiment.variant = a, b\n[variant b]\n\f[variant a]\n"
			   "eval.probe = false\n");
	assert_int_equal(c->n_variants, 2);
	assert_string_equal(c->variants[0].name, "b");
	assert_int_equal(c->variants[0].n, 0);
	assert_int_equal(config_sweep_get(c, 0, run, err), 0);
	assert_int_equal(run->probe, 0);
	assert_int_equal(config_sweep_get(c, 1, run, err), 0);
	assert_int_equal(run->probe, 1);
	free(run);
	free(c);
}

static void test_variant_errors(void **state)
{
	static const char head[] =
		"[sweep]\n"                                     /* 1 */
		"experiment.variant = base, v\n"                /* 2 */
		"[variant v]\n";                                /* 3 */
	static const struct {
		const char *tail, *want;
	} bad[] = {
		{ "model.foo = 1\n",
		  "t.ini:4: [variant v] model.foo: unknown key (a variant line is section.key = value)" },
		{ "modle.init = modified\n",
		  "t.ini:4: [variant v] modle.init: unknown section (a variant line is section.key = value)" },
		{ "init = modified\n",
		  "t.ini:4: [variant v] init: not section.key (a variant line is section.key = value)" },
		{ "model.encoder_norm = bm\n",
		  "t.ini:4: [variant v] model.encoder_norm: 'bm' is not one of bn, gn, gn_ws, ln, none" },
		{ "model.init = modified\n\nmodel.init = default\n",
		  "t.ini:6: [variant v] model.init: duplicate key (first on line 4)" },
		{ "experiment.variant = w\n",
		  "t.ini:4: [variant v] experiment.variant: a variant may not set it (the run's variant is the section's name)" },
		{ "experiment.name = other\n",
		  "t.ini:4: [variant v] experiment.name: a variant may not set it (every run of an experiment has its name)" },
		{ "model.init = modified\n[variant v]\neval.probe = false\n",
		  "t.ini:5: [variant v]: a second section of this name (the first is on line 3)" },
		{ "model.init = modified\n[variant a/b]\n",
		  "t.ini:5: [variant a/b]: 'a/b' is not a variant name (1 to 63 letters, digits, '_', '-', '.' or '+')" },
		{ "[variant]\nmodel.init = modified\n",
		  "t.ini:4: [variant]: a variant section needs a name: [variant NAME]" },
		{ "[variant w]\nmodel.init = modified\n",
		  "t.ini:4: [variant w]: not among the values of [sweep] experiment.variant on line 2" },
		{ "[sweep]\nexperiment.seed = 1, 2\n[variant w]\nexperiment.seed = 3\n",
		  "t.ini:7: [variant w] experiment.seed: also swept by [sweep] on line 5 (a variant may not set a key the sweep varies)" },
		{ "model.a = 1\nmodel.b = 2\n", "t.ini:4: [variant v] model.a: unknown key (a variant line is section.key = value)" },
		{ "model.init = modified\nmodel.encoder_norm = ln\nmodel.projector_norm = ln\n"
		  "model.predictor_norm = ln\nmodel.proj_dim = 64\nmodel.proj_hidden = 64\n"
		  "model.pred_hidden = 64\nmodel.gn_groups = 8\nmodel.encoder = mlp\n"
		  "eval.probe = false\neval.knn_k = 5\neval.probe_epochs = 2\noptim.lr = 0.5\n",
		  "t.ini:16: [variant v] optim.lr: more than 12 keys in one variant" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[1024];
		snprintf(text, sizeof(text), "%s%s", head, bad[i].tail);
		expect_parse_error(text, bad[i].want);
	}
	/* A typo on the axis: two values without a section. */
	expect_parse_error("[sweep]\nexperiment.seed = 1, 2\nexperiment.variant = base, projetor_only\n"
			   "[variant projector_only]\nmodel.predictor_norm = none\n",
			   "t.ini:3: [sweep] experiment.variant: neither 'base' nor 'projetor_only' has a [variant] section (one value may stand for the base config; the others need [variant NAME] sections)");
	/* ...or only one, and the section it meant is then unused. */
	expect_parse_error("[sweep]\nexperiment.variant = projetor_only, none\n"
			   "[variant projector_only]\nmodel.predictor_norm = none\n[variant none]\n",
			   "t.ini:3: [variant projector_only]: not among the values of [sweep] experiment.variant on line 2");
	expect_parse_error("[variant lonely]\nmodel.init = modified\n",
			   "t.ini:1: [variant lonely]: nothing names it (sweep experiment.variant, or set it in [experiment])");
	expect_parse_error("[sweep]\nexperiment.variant = a, b/c\n",
			   "t.ini:2: [sweep] experiment.variant: experiment.variant: 'b/c' is not a name (1 to 63 letters, digits, '_', '-', '.' or '+')");
	expect_parse_error("[experiment]\nvariant = a b\n",
			   "t.ini:2: [experiment] variant: 'a b' is not a name (1 to 63 letters, digits, '_', '-', '.' or '+')");
	/* More values than an axis holds, more sections than a struct holds. */
	char text[4096] = "[sweep]\nexperiment.variant = base";
	for (int v = 0; v <= 16; v++)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), ", v%d", v);
	strcat(text, "\n");
	for (int v = 0; v <= 16; v++)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), "[variant v%d]\n", v);
	expect_parse_error(text, "t.ini:2: [sweep] experiment.variant: more than 16 values");
	snprintf(text, sizeof(text), "[sweep]\nexperiment.variant = base");
	for (int v = 0; v < 15; v++)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), ", v%d", v);
	strcat(text, "\n");
	for (int v = 0; v <= 16; v++)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), "[variant v%d]\n", v);
	expect_parse_error(text, "t.ini:19: [variant v16]: more than 16 variants");

	/* Cross checks after --set: a sweep over a key a variant sets. */
	experiment_config *c = new_config();
	char err[BYOL_ERR_LEN];
	expect_parse_ok(c, variant_example);
	set_ok(c, "sweep.model.encoder_norm=bn, ln");
	expect_validate_error(c, "[variant none] model.encoder_norm: also swept by [sweep] (a variant may not set a key the sweep varies)");
	expect_parse_ok(c, variant_example);
	set_ok(c, "sweep.experiment.variant=bn_both, projector_onyl");
	expect_validate_error(c, "[sweep] experiment.variant: neither 'bn_both' nor 'projector_onyl' has a [variant] section (one value may stand for the base config; the others need [variant NAME] sections)");
	/* A variant that makes an invalid combination: validation names the run. */
	expect_parse_ok(c, "[data]\nbatch_size = 256\n[sweep]\nexperiment.variant = base, odd\n"
			   "experiment.seed = 1, 2\n[variant odd]\ndata.shard_size = 96\n");
	expect_validate_error(c, "sweep run 2 (experiment.variant=odd, experiment.seed=1): [data] batch_size: 256 is not a multiple of shard_size 96");
	expect_parse_ok(c, "[experiment]\nvariant = odd\n[variant odd]\ndata.shard_size = 96\n");
	expect_validate_error(c, "variant odd: [data] batch_size: 256 is not a multiple of shard_size 96");
	/* Structs filled by hand. */
	expect_parse_ok(c, variant_example);
	snprintf(c->variants[1].name, sizeof(c->variants[1].name), "projector_only");
	expect_validate_error(c, "[variant projector_only]: given twice");
	expect_parse_ok(c, variant_example);
	snprintf(c->variants[0].set[0].value, sizeof(c->variants[0].set[0].value), "bm");
	expect_validate_error(c, "[variant projector_only] model.predictor_norm: 'bm' is not one of bn, gn, gn_ws, ln, none");
	expect_parse_ok(c, variant_example);
	c->n_variants = 17;
	expect_validate_error(c, "[variant]: 17 variants");
	assert_int_equal(config_sweep_get(c, 0, c, err), -EINVAL);
	free(c);
}

static void test_variant_json(void **state)
{
	experiment_config *c = new_config(), *d = new_config();
	experiment_config *r1 = new_config(), *r2 = new_config();
	char err[BYOL_ERR_LEN];
	expect_parse_ok(c, variant_example);
	char *j = config_experiment_json(c);
	assert_non_null(j);
	assert_non_null(strstr(j, ",\"sweep\":{\"experiment.variant\":[\"bn_both\",\"projector_only\","
			       "\"none\"],\"experiment.seed\":[\"1\",\"2\",\"3\"]},"
			       "\"variants\":{\"projector_only\":{\"model.predictor_norm\":\"none\"},"
			       "\"none\":{\"model.encoder_norm\":\"none\",\"model.projector_norm\":\"none\","
			       "\"model.predictor_norm\":\"none\"}}}"));
	/* Read back: the same sweep, variants and runs; printed again, the same bytes. */
	assert_int_equal(config_from_json(d, j, err), 0);
	assert_memory_equal(c, d, sizeof(*c));
	char *j2 = config_experiment_json(d);
	assert_string_equal(j, j2);
	assert_int_equal(config_validate(d, err), 0);
	for (int i = 0; i < config_sweep_count(c); i++) {
		assert_int_equal(config_sweep_get(c, i, r1, err), 0);
		assert_int_equal(config_sweep_get(d, i, r2, err), 0);
		char *a = config_to_json(r1), *b = config_to_json(r2);
		assert_string_equal(a, b);
		free(a);
		free(b);
	}
	free(j);
	free(j2);
	/* Without sweep or variants it is the canonical JSON. */
	config_defaults(c);
	j = config_experiment_json(c);
	assert_string_equal(j, default_json);
	free(j);

	static const struct {
		const char *json, *want;
	} bad[] = {
		{ "{\"sweep\":{\"experiment.seed\":\"1, 2\"}}",
		  "config JSON: [sweep] experiment.seed: expected an array of strings" },
		{ "{\"sweep\":{\"experiment.seed\":[1,2]}}",
		  "config JSON: [sweep] experiment.seed: expected an array of strings" },
		{ "{\"sweep\":{\"experiment.seed\":[\"1,2\"]}}",
		  "config JSON: [sweep] experiment.seed: value '1,2' holds a comma" },
		{ "{\"sweep\":{\"experiment.seed\":[]}}",
		  "config JSON: [sweep] experiment.seed: '': empty value" },
		{ "{\"sweep\":{\"model.foo\":[\"1\"]}}",
		  "config JSON: [sweep] model.foo: unknown key 'model.foo' (a sweep line is section.key = v1, v2, ...)" },
		{ "{\"variants\":[]}", "config JSON: [variants]: not an object" },
		{ "{\"variants\":{\"a\":1}}", "config JSON: [variant a]: not an object" },
		{ "{\"variants\":{\"a b\":{}}}",
		  "config JSON: [variant a b]: 'a b' is not a variant name (1 to 63 letters, digits, '_', '-', '.' or '+')" },
		{ "{\"variants\":{\"a\":{},\"a\":{}}}", "config JSON: [variant a]: variant 'a' given twice" },
		{ "{\"variants\":{\"a\":{\"model.init\":1}}}",
		  "config JSON: [variant a] model.init: expected a string" },
		{ "{\"variants\":{\"a\":{\"model.init\":\"x\"}}}",
		  "config JSON: [variant a] model.init: 'x' is not one of default, modified" },
		{ "{\"variants\":{\"a\":{\"model.init\":\"default\",\"model.init\":\"modified\"}}}",
		  "config JSON: [variant a] model.init: set twice" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		int rc = config_from_json(c, bad[i].json, err);
		if (rc != -EINVAL || strcmp(err, bad[i].want) != 0)
			fail_msg("%s: returned %d '%s', want '%s'", bad[i].json, rc, err, bad[i].want);
	}
	free(r1);
	free(r2);
	free(c);
	free(d);
}

static void test_run_names(void **state)
{
	experiment_config *c = new_config();
	char err[BYOL_ERR_LEN];
	int n;
	/* No sweep, or a sweep of one run: the experiment's name. */
	expect_parse_ok(c, "[experiment]\nname = solo\n");
	char *names = run_names(c, &n);
	assert_int_equal(n, 1);
	assert_string_equal(names, "solo");
	free(names);
	expect_parse_ok(c, "[experiment]\nname = solo\n[sweep]\nexperiment.seed = 4\n");
	names = run_names(c, &n);
	assert_string_equal(names, "solo");
	free(names);
	/* Axes of one value are left out; blanks in values become '_'. */
	expect_parse_ok(c, "[experiment]\nname = e\n[sweep]\nmodel.init = modified\n"
			   "augment.crop_scale = 0.08 1.0, 0.3  1\noptim.lr = 0.5, 1\n");
	names = run_names(c, &n);
	assert_int_equal(n, 4);
	assert_string_equal(names + 0 * 128, "e/crop_scale=0.08_1.0,lr=0.5");
	assert_string_equal(names + 3 * 128, "e/crop_scale=0.3_1,lr=1");
	free(names);
	/* Two axes with the same short key keep their sections. */
	expect_parse_ok(c, "[experiment]\nname = e\n[sweep]\noptim.name = lars, sgd\n"
			   "experiment.seed = 1, 2\n");
	names = run_names(c, &n);
	assert_string_equal(names + 1 * 128, "e/name=lars,seed=2");
	free(names);
	/* Values equal once blanks are folded: the index instead, for those. */
	expect_parse_ok(c, "[experiment]\nname = e\n[sweep]\naugment.crop_scale = 0.3 1, 0.3  1, 0.5 1\n");
	names = run_names(c, &n);
	assert_string_equal(names + 0 * 128, "e/0");
	assert_string_equal(names + 1 * 128, "e/1");
	assert_string_equal(names + 2 * 128, "e/crop_scale=0.5_1");
	free(names);
	/* Long names are cut at 127 bytes on a character boundary; cut names that
	 * collide fall back to the index, the others stay unique. */
	char text[512];
	char longname[200] = "";
	for (int k = 0; k < 40; k++)
		strcat(longname, "é");                  /* 2 bytes each: 80 bytes */
	strcat(longname, "-0123456789-0123456789-0123");     /* 107 bytes */
	snprintf(text, sizeof(text), "[experiment]\nname = %s\n[sweep]\n"
		 "data.dir = /data/aaaaaaaaaa1, /data/aaaaaaaaaa2, /d\nexperiment.seed = 1, 2\n", longname);
	expect_parse_ok(c, text);
	names = run_names(c, &n);
	assert_int_equal(n, 6);
	for (int i = 0; i < n; i++) {
		const char *nm = names + i * 128;
		assert_true(strlen(nm) <= 127);
		for (int j = 0; j < i; j++)
			assert_string_not_equal(nm, names + j * 128);
		/* a whole UTF-8 sequence at the end: no lone lead byte */
		size_t len = strlen(nm);
		assert_false(((unsigned char)nm[len - 1] & 0xC0) == 0xC0);
	}
	char want[160];
	snprintf(want, sizeof(want), "%s/0", longname);
	assert_string_equal(names + 0 * 128, want);
	snprintf(want, sizeof(want), "%s/dir=/d,seed=2", longname);
	assert_string_equal(names + 5 * 128, want);
	free(names);
	/* A name that is all multi-byte characters, cut between two of them. */
	char wide[300] = "";
	for (int k = 0; k < 70; k++)
		strcat(wide, "é");
	snprintf(text, sizeof(text), "[experiment]\nname = %s\n", wide);
	expect_parse_ok(c, text);
	names = run_names(c, &n);
	assert_int_equal(strlen(names), 126);
	free(names);
	/* Bytes that are not UTF-8 (a run of continuation bytes) are cut where
	 * they must be, never back to an empty name. */
	char junk[256] = "v";
	memset(junk + 1, 0x8e, 150);
	snprintf(text, sizeof(text), "[experiment]\nname = %s\n", junk);
	expect_parse_ok(c, text);
	names = run_names(c, &n);
	assert_true(strlen(names) >= 124 && strlen(names) <= 127);
	free(names);
	assert_int_equal(config_sweep_names(c, (char[16]){0}, 16, err), -EINVAL);
	free(c);
}

/* The experiment files of experiments/: each parses, validates and expands
 * into the runs it promises (run with the source tree as the working
 * directory, as `make test` does). */
static experiment_config *load_experiment(const char *path)
{
	experiment_config *c = new_config();
	char err[BYOL_ERR_LEN];
	if (config_parse_file(c, path, err) != 0)
		fail_msg("%s (the test runs from the source tree): %s", path, err);
	if (config_validate(c, err) != 0)
		fail_msg("%s: %s", path, err);
	return c;
}

static void test_experiment_files(void **state)
{
	static const char *const bn_variants[] = {
		"bn_both", "projector_only", "predictor_only", "encoder_only", "none", "layernorm",
		"gn_ws", "none_modified_init", "simclr_none", "random_init",
	};
	/* encoder, projector, predictor norms; init; method */
	static const int bn_want[10][5] = {
		{ NORM_BN, NORM_BN, NORM_BN, INIT_DEFAULT, METHOD_BYOL },
		{ NORM_BN, NORM_BN, NORM_NONE, INIT_DEFAULT, METHOD_BYOL },
		{ NORM_BN, NORM_NONE, NORM_BN, INIT_DEFAULT, METHOD_BYOL },
		{ NORM_BN, NORM_NONE, NORM_NONE, INIT_DEFAULT, METHOD_BYOL },
		{ NORM_NONE, NORM_NONE, NORM_NONE, INIT_DEFAULT, METHOD_BYOL },
		{ NORM_LN, NORM_LN, NORM_LN, INIT_DEFAULT, METHOD_BYOL },
		{ NORM_GN_WS, NORM_GN_WS, NORM_GN_WS, INIT_DEFAULT, METHOD_BYOL },
		{ NORM_NONE, NORM_NONE, NORM_NONE, INIT_MODIFIED, METHOD_BYOL },
		{ NORM_NONE, NORM_NONE, NORM_NONE, INIT_DEFAULT, METHOD_SIMCLR },
		{ NORM_BN, NORM_BN, NORM_BN, INIT_DEFAULT, METHOD_BYOL },
	};
	experiment_config *c = load_experiment("experiments/bn-ablation.ini"), *run = new_config();
	char err[BYOL_ERR_LEN], want[128];
	int n;
	char *names = run_names(c, &n);
	assert_int_equal(n, 30);
	for (int i = 0; i < n; i++) {
		int v = i / 3;
		assert_int_equal(config_sweep_get(c, i, run, err), 0);
		snprintf(want, sizeof(want), "bn-ablation/variant=%s,seed=%d", bn_variants[v], i % 3 + 1);
		assert_string_equal(names + i * 128, want);
		assert_string_equal(run->variant, bn_variants[v]);
		assert_int_equal(run->seed, i % 3 + 1);
		if ((int)run->encoder_norm != bn_want[v][0] || (int)run->projector_norm != bn_want[v][1] ||
		    (int)run->predictor_norm != bn_want[v][2] || (int)run->init != bn_want[v][3] ||
		    (int)run->method != bn_want[v][4])
			fail_msg("%s: norms %d %d %d, init %d, method %d", want, run->encoder_norm,
				 run->projector_norm, run->predictor_norm, run->init, run->method);
		/* one budget for all; the random encoder never moves */
		assert_true(strcmp(run->variant, "random_init") == 0 ? run->lr == 0 : run->lr == c->lr);
		assert_int_equal(run->train_limit, c->train_limit);
		assert_int_equal(run->epochs, c->epochs);
		assert_int_equal(run->batch_size, 256);
		assert_int_equal(run->shard_size, 64);
	}
	free(names);
	free(c);

	static const struct {
		const char *name;
		int batch, shard;
	} bs[] = {
		{ "b64", 64, 64 }, { "b128", 128, 64 }, { "b256_s64", 256, 64 }, { "b512", 512, 64 },
		{ "b1024", 1024, 64 }, { "s16", 256, 16 }, { "s32", 256, 32 }, { "s128", 256, 128 },
		{ "s256", 256, 256 },
	};
	c = load_experiment("experiments/batch-size.ini");
	names = run_names(c, &n);
	assert_int_equal(n, 27);
	for (int i = 0; i < n; i++) {
		int v = i / 3;
		assert_int_equal(config_sweep_get(c, i, run, err), 0);
		snprintf(want, sizeof(want), "batch-size/variant=%s,seed=%d", bs[v].name, i % 3 + 1);
		assert_string_equal(names + i * 128, want);
		assert_int_equal(run->batch_size, bs[v].batch);
		assert_int_equal(run->shard_size, bs[v].shard);
		/* one of the two is always held at its base value */
		assert_true(run->batch_size == 256 || run->shard_size == 64);
		assert_int_equal(run->encoder_norm, NORM_BN);
		assert_int_equal(run->epochs, c->epochs);
	}
	free(names);
	free(run);
	free(c);
}

static void test_help(void **state)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	config_print_help(f);
	fclose(f);
	/* Every key of the canonical JSON is documented. */
	static const char *const keys[] = {
		"experiment.name ", "experiment.method ", "experiment.seed ", "experiment.variant ",
		"data.dir ",
		"data.train_limit ", "data.batch_size ", "data.shard_size ", "augment.crop_scale ",
		"augment.crop_ratio ", "augment.flip ", "augment.jitter ", "augment.blur ",
		"augment.solarize ", "model.encoder ", "model.encoder_widths ", "model.cnn_strides ",
		"model.proj_hidden ", "model.proj_dim ", "model.pred_hidden ", "model.encoder_norm ",
		"model.projector_norm ", "model.predictor_norm ", "model.gn_groups ", "model.init ",
		"optim.name ", "optim.lr ", "optim.weight_decay ", "optim.momentum ", "optim.lars_eta ",
		"optim.epochs ", "optim.warmup_epochs ", "ema.tau_base ", "loss.temperature ",
		"eval.knn_every_epochs ", "eval.knn_k ", "eval.probe ", "eval.probe_epochs ",
		"checkpoint.every_steps ", "checkpoint.keep ",
	};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (!strstr(buf, keys[i]))
			fail_msg("--help lacks %s", keys[i]);
	assert_non_null(strstr(buf, "model.encoder_norm           bn|gn|gn_ws|ln|none          bn "));
	assert_non_null(strstr(buf, "data.batch_size              int [2, 1048576]             256 "));
	free(buf);
	assert_string_equal(config_norm_name(NORM_GN_WS), "gn_ws");
	assert_string_equal(config_norm_name(NORM_NONE), "none");
	assert_string_equal(config_method_name(METHOD_SIMCLR), "simclr");
	assert_string_equal(config_norm_name((norm_kind)9), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_design_example),
		cmocka_unit_test(test_syntax),
		cmocka_unit_test(test_errors_name_the_line),
		cmocka_unit_test(test_set),
		cmocka_unit_test(test_json_canonical),
		cmocka_unit_test(test_json_partial_and_errors),
		cmocka_unit_test(test_hash),
		cmocka_unit_test(test_validate),
		cmocka_unit_test(test_sweep),
		cmocka_unit_test(test_variants),
		cmocka_unit_test(test_variant_errors),
		cmocka_unit_test(test_variant_json),
		cmocka_unit_test(test_run_names),
		cmocka_unit_test(test_experiment_files),
		cmocka_unit_test(test_help),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
