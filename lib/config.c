/*
 * config.c — the experiment file: the table, defaults, values, the INI file and
 * --set. config_json.c holds the canonical JSON, the hash, validation, sweep
 * expansion and --help; config_internal.h what the two share.
 *
 * Everything is driven by one table, `config_entries`: defaults are its default
 * texts run through the same parser as a file's values; the INI parser (libinih),
 * the --set overrides, the JSON reader and the [sweep] axes all go through
 * config_parse_value() + store_value(); the canonical JSON and --help walk it in
 * order.
 *
 * libinih 55 as Debian builds it does not pass line numbers to the handler
 * (INI_HANDLER_LINENO is 0), so we feed it through ini_parse_stream() with our
 * own line reader, which counts physical lines: inih calls the handler right
 * after reading the line it reports, so the reader's count is that line. The
 * reader also strips leading blanks (inih would otherwise take an indented line
 * as the continuation of the previous value), refuses lines longer than inih's
 * buffer (it would silently split them), and checks section names (inih only
 * tells the handler about sections that hold keys). inih strips inline comments
 * that start with " ;"; the handler strips " #" ones.
 */
#include "byol/config.h"
#include "byol/inifile.h"
#include "byol/data.h"
#include "byol/error.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

static const char *const method_names[] = { "byol", "simsiam", "simclr", NULL };
static const char *const encoder_names[] = { "mlp", "cnn", NULL };
static const char *const norm_names[] = { "bn", "gn", "gn_ws", "ln", "none", NULL };
static const char *const init_names[] = { "default", "modified", NULL };
static const char *const optim_names[] = { "lars", "sgd", "adamw", NULL };

_Static_assert(sizeof(method_kind) == sizeof(int) && sizeof(encoder_kind) == sizeof(int) &&
	       sizeof(norm_kind) == sizeof(int) && sizeof(init_kind) == sizeof(int) &&
	       sizeof(opt_name) == sizeof(int), "enum fields are stored through int");

/* Seeds travel as JSON numbers (doubles): keep them exact. */
#define SEED_MAX 9007199254740991.0     /* 2^53 - 1 */

#define F(field) offsetof(experiment_config, field)
#define NUM(s, k, t, lo, hi, d, field, h) { s, k, t, lo, hi, d, F(field), 0, NULL, h }
#define STR(s, k, d, field, h) { s, k, T_STRING, 0, 0, d, F(field), 0, NULL, h }
#define ENUM(s, k, n, d, field, h) { s, k, T_ENUM, 0, 0, d, F(field), 0, n, h }
#define LIST(s, k, lo, hi, d, field, cnt, h) { s, k, T_INT_LIST, lo, hi, d, F(field), F(cnt), NULL, h }

const centry config_entries[] = {
	STR("experiment", "name", "byol", name, "name of the experiment"),
	ENUM("experiment", "method", method_names, "byol", method, "training method"),
	NUM("experiment", "seed", T_U64, 0, SEED_MAX, "1", seed,
	    "seed of every random draw (data order, augmentation, init)"),

	STR("data", "dir", DATA_DEFAULT_DIR, data_dir, "directory of idx files"),
	NUM("data", "train_limit", T_INT, 0, 2147483647, "0", train_limit,
	    "use the first N training images; 0 = the whole train set"),
	NUM("data", "batch_size", T_INT, 2, 1048576, "256", batch_size,
	    "global batch B; a multiple of shard_size"),
	NUM("data", "shard_size", T_INT, 2, 65536, "64", shard_size,
	    "images per shard = the BN batch"),

	NUM("augment", "crop_scale", T_FLOAT_PAIR, 0, 1, "0.3, 1.0", crop_scale,
	    "random resized crop: area fraction (min, max), in (0, 1]"),
	NUM("augment", "crop_ratio", T_FLOAT_PAIR, 0, 100, "0.75, 1.3333334", crop_ratio,
	    "random resized crop: aspect ratio (min, max)"),
	NUM("augment", "flip", T_FLOAT, 0, 1, "0.5", flip, "probability of a horizontal flip"),
	NUM("augment", "jitter", T_FLOAT, 0, 1, "0.4", jitter, "colour jitter strength"),
	NUM("augment", "blur", T_FLOAT, 0, 1, "0", blur, "probability of a Gaussian blur"),
	NUM("augment", "solarize", T_FLOAT, 0, 1, "0", solarize, "probability of solarization"),

	ENUM("model", "encoder", encoder_names, "mlp", encoder, "encoder architecture"),
	LIST("model", "encoder_widths", 1, 65536, "1024, 1024, 512", encoder_widths,
	     n_encoder_widths, "mlp: hidden widths; cnn: channels per conv layer"),
	LIST("model", "cnn_strides", 1, 8, "1, 2, 2", cnn_strides, n_cnn_strides,
	     "cnn only: one stride per conv layer"),
	NUM("model", "proj_hidden", T_INT, 1, 65536, "1024", proj_hidden, "projector hidden width"),
	NUM("model", "proj_dim", T_INT, 1, 65536, "128", proj_dim, "projection dimension"),
	NUM("model", "pred_hidden", T_INT, 1, 65536, "1024", pred_hidden, "predictor hidden width"),
	ENUM("model", "encoder_norm", norm_names, "bn", encoder_norm, "normalisation in the encoder"),
	ENUM("model", "projector_norm", norm_names, "bn", projector_norm,
	     "normalisation in the projector"),
	ENUM("model", "predictor_norm", norm_names, "bn", predictor_norm,
	     "normalisation in the predictor"),
	NUM("model", "gn_groups", T_INT, 1, 4096, "32", gn_groups,
	    "group norm groups (clamped to divide each width)"),
	ENUM("model", "init", init_names, "default", init, "weight initialisation"),

	ENUM("optim", "name", optim_names, "lars", optim, "optimizer"),
	NUM("optim", "lr", T_FLOAT, 0, 1000, "1.0", lr, "base learning rate for batch 256; scaled by B/256"),
	NUM("optim", "weight_decay", T_FLOAT, 0, 10, "1.5e-6", weight_decay, "weight decay"),
	NUM("optim", "momentum", T_FLOAT, 0, 1, "0.9", momentum, "momentum (adamw: beta1), below 1"),
	NUM("optim", "lars_eta", T_FLOAT, 0, 1, "1e-3", lars_eta, "LARS trust coefficient"),
	NUM("optim", "epochs", T_INT, 1, 1000000, "10", epochs, "training epochs"),
	NUM("optim", "warmup_epochs", T_FLOAT, 0, 1000000, "1", warmup_epochs,
	    "linear warmup, in epochs; fewer than epochs"),

	NUM("ema", "tau_base", T_FLOAT, 0, 1, "0.99", tau_base,
	    "target EMA rate at step 0 (cosine schedule to 1)"),

	NUM("loss", "temperature", T_FLOAT, 0.001, 100, "0.5", temperature, "simclr: softmax temperature"),

	NUM("eval", "knn_every_epochs", T_FLOAT, 0, 1000000, "1", knn_every_epochs,
	    "kNN accuracy every N epochs; 0 = never"),
	NUM("eval", "knn_k", T_INT, 1, 100000, "20", knn_k, "neighbours in kNN"),
	NUM("eval", "probe", T_BOOL, 0, 1, "true", probe, "linear probe at the end of the run"),
	NUM("eval", "probe_epochs", T_INT, 1, 100000, "30", probe_epochs, "linear probe epochs"),

	NUM("checkpoint", "every_steps", T_INT, 1, 2147483647, "200", every_steps,
	    "checkpoint every N steps"),
	NUM("checkpoint", "keep", T_INT, 1, 1000, "3", keep, "checkpoints kept per run"),
};

#define N_ENTRIES ((int)(sizeof(config_entries) / sizeof(config_entries[0])))

const int config_n_entries = N_ENTRIES;

/* ---- values ------------------------------------------------------------- */

int config_why(char *w, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(w, WHY_LEN, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static const char *skip_ws(const char *p)
{
	while (*p && isspace((unsigned char)*p))
		p++;
	return p;
}

static int parse_int(const centry *e, const char *t, long long *out, char *w)
{
	char *end;
	errno = 0;
	long long v = strtoll(t, &end, 10);
	if (end == t || *skip_ws(end) || errno == ERANGE)
		return config_why(w, "'%s' is not an integer", t);
	if ((double)v < e->min || (double)v > e->max)
		return config_why(w, "%lld is out of range [%.0f, %.0f]", v, e->min, e->max);
	*out = v;
	return 0;
}

static int parse_float(const centry *e, const char *t, float *out, char *w)
{
	char *end;
	double v = strtod(t, &end);
	if (end == t || *skip_ws(end) || !isfinite(v))
		return config_why(w, "'%s' is not a number", t);
	if (v < e->min || v > e->max)
		return config_why(w, "%s is out of range [%g, %g]", t, e->min, e->max);
	*out = (float)v;
	return 0;
}

/* Splits an int list / float pair: elements separated by commas or blanks. */
static int parse_list(const centry *e, const char *text, cvalue *v, char *w)
{
	int max = e->type == T_FLOAT_PAIR ? 2 : CONFIG_MAX_LIST;
	const char *p = skip_ws(text);
	v->n = 0;
	if (!*p)
		return config_why(w, "empty list");
	for (;;) {
		const char *q = p;
		while (*q && *q != ',' && !isspace((unsigned char)*q))
			q++;
		if (q == p)
			return config_why(w, "'%s': empty list element", text);
		if (v->n == max)
			return config_why(w, "'%s': more than %d values", text, max);
		char tok[64];
		if ((size_t)(q - p) >= sizeof(tok))
			return config_why(w, "'%.*s' is not a number", (int)(q - p), p);
		memcpy(tok, p, (size_t)(q - p));
		tok[q - p] = '\0';
		int rc;
		if (e->type == T_INT_LIST) {
			long long x;
			rc = parse_int(e, tok, &x, w);
			v->list[v->n] = (int)x;
		} else {
			rc = parse_float(e, tok, &v->f[v->n], w);
		}
		if (rc)
			return rc;
		v->n++;
		p = skip_ws(q);
		if (*p == ',') {
			p = skip_ws(p + 1);
			if (!*p || *p == ',')
				return config_why(w, "'%s': empty list element", text);
		}
		if (!*p)
			break;
	}
	if (e->type == T_FLOAT_PAIR && v->n != 2)
		return config_why(w, "'%s': expected two values (min, max)", text);
	return 0;
}

/* Parses `text` as a value of entry e. Returns 0 or -EINVAL with the reason in w. */
int config_parse_value(const centry *e, const char *text, cvalue *v, char *w)
{
	switch (e->type) {
	case T_INT:
		return parse_int(e, text, &v->i, w);
	case T_U64: {
		const char *p = skip_ws(text);
		char *end;
		if (!isdigit((unsigned char)*p))
			return config_why(w, "'%s' is not a non-negative integer", text);
		errno = 0;
		unsigned long long x = strtoull(p, &end, 10);
		if (*skip_ws(end) || errno == ERANGE)
			return config_why(w, "'%s' is not a non-negative integer", text);
		if ((double)x < e->min || (double)x > e->max)
			return config_why(w, "%llu is out of range [%.0f, %.0f]", x, e->min,
					  e->max);
		v->u = x;
		return 0;
	}
	case T_FLOAT:
		return parse_float(e, text, &v->f[0], w);
	case T_BOOL: {
		static const char *const yes[] = { "true", "yes", "on", "1" };
		static const char *const no[] = { "false", "no", "off", "0" };
		for (int k = 0; k < 4; k++) {
			if (strcasecmp(text, yes[k]) == 0)
				return v->i = 1, 0;
			if (strcasecmp(text, no[k]) == 0)
				return v->i = 0, 0;
		}
		return config_why(w, "'%s' is not a boolean (true/false, yes/no, on/off, 1/0)",
				  text);
	}
	case T_STRING: {
		size_t n = strlen(text);
		if (n >= CONFIG_STR_LEN)
			return config_why(w, "value longer than %d characters", CONFIG_STR_LEN - 1);
		for (size_t k = 0; k < n; k++)
			if ((unsigned char)text[k] < 0x20 || text[k] == 0x7f)
				return config_why(w, "value holds a control character");
		memcpy(v->s, text, n + 1);
		return 0;
	}
	case T_ENUM: {
		for (int k = 0; e->names[k]; k++)
			if (strcmp(text, e->names[k]) == 0)
				return v->i = k, 0;
		char list[160] = "";
		size_t len = 0;
		for (int k = 0; e->names[k]; k++)
			len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", k ? ", " : "",
						e->names[k]);
		return config_why(w, "'%s' is not one of %s", text, list);
	}
	case T_INT_LIST:
	case T_FLOAT_PAIR:
		return parse_list(e, text, v, w);
	}
	return config_why(w, "bad table entry");
}

static void store_value(experiment_config *c, const centry *e, const cvalue *v)
{
	char *field = (char *)c + e->off;
	switch (e->type) {
	case T_INT:
	case T_BOOL:
	case T_ENUM: {
		int x = (int)v->i;
		memcpy(field, &x, sizeof(x));
		break;
	}
	case T_U64:
		memcpy(field, &v->u, sizeof(v->u));
		break;
	case T_FLOAT:
		memcpy(field, &v->f[0], sizeof(float));
		break;
	case T_FLOAT_PAIR:
		memcpy(field, v->f, 2 * sizeof(float));
		break;
	case T_STRING:
		memset(field, 0, CONFIG_STR_LEN);
		memcpy(field, v->s, strlen(v->s));
		break;
	case T_INT_LIST:
		memset(field, 0, CONFIG_MAX_LIST * sizeof(int));
		memcpy(field, v->list, (size_t)v->n * sizeof(int));
		memcpy((char *)c + e->count_off, &v->n, sizeof(int));
		break;
	}
}

int config_set_entry(experiment_config *c, const centry *e, const char *text, char *w)
{
	cvalue v;
	int rc = config_parse_value(e, text, &v, w);
	if (rc == 0)
		store_value(c, e, &v);
	return rc;
}

int config_find_section(const char *section)
{
	for (int i = 0; i < N_ENTRIES; i++)
		if (strcmp(config_entries[i].section, section) == 0)
			return i;
	return -1;
}

int config_find_entry(const char *section, const char *key)
{
	for (int i = 0; i < N_ENTRIES; i++)
		if (strcmp(config_entries[i].section, section) == 0 &&
		    strcmp(config_entries[i].key, key) == 0)
			return i;
	return -1;
}

/* "section.key" -> entry index, or -1. */
int config_find_dotted(const char *dotted)
{
	const char *dot = strchr(dotted, '.');
	if (!dot || (size_t)(dot - dotted) >= 32)
		return -1;
	char section[32];
	memcpy(section, dotted, (size_t)(dot - dotted));
	section[dot - dotted] = '\0';
	return config_find_entry(section, dot + 1);
}

void config_defaults(experiment_config *c)
{
	memset(c, 0, sizeof(*c));
	char w[WHY_LEN];
	for (int i = 0; i < N_ENTRIES; i++) {
		int rc = config_set_entry(c, &config_entries[i], config_entries[i].def, w);
		(void)rc;       /* the table's defaults are tested to parse */
	}
}

/* ---- names -------------------------------------------------------------- */

const char *config_norm_name(norm_kind k)
{
	return (unsigned)k < 5 ? norm_names[k] : "?";
}

const char *config_method_name(method_kind k)
{
	return (unsigned)k < 3 ? method_names[k] : "?";
}

/* ---- sweep -------------------------------------------------------------- */

static int sweep_find(const experiment_config *c, const char *key)
{
	for (int a = 0; a < c->n_sweep; a++)
		if (strcmp(c->sweep[a].key, key) == 0)
			return a;
	return -1;
}

static void sweep_remove(experiment_config *c, int a)
{
	memmove(&c->sweep[a], &c->sweep[a + 1], (size_t)(c->n_sweep - a - 1) * sizeof(c->sweep[0]));
	c->n_sweep--;
	memset(&c->sweep[c->n_sweep], 0, sizeof(c->sweep[0]));
}

/* Parses "v1, v2, ..." for the key "section.key" into axis `ax`. */
static int sweep_parse(config_sweep_axis *ax, const char *key, const char *values, char *w)
{
	int idx = config_find_dotted(key);
	if (idx < 0)
		return config_why(w, "unknown key '%s' (a sweep line is section.key = v1, v2, ...)",
				  key);
	const centry *e = &config_entries[idx];
	memset(ax, 0, sizeof(*ax));
	snprintf(ax->key, sizeof(ax->key), "%s.%s", e->section, e->key);
	cvalue v;
	int rc = 0;
	const char *p = values;
	for (;;) {
		const char *q = strchr(p, ',');
		if (!q)
			q = p + strlen(p);
		while (p < q && isspace((unsigned char)*p))
			p++;
		const char *r = q;
		while (r > p && isspace((unsigned char)r[-1]))
			r--;
		if (r == p) {
			rc = config_why(w, "'%s': empty value", values);
			break;
		}
		if (ax->n == CONFIG_MAX_SWEEP_VALUES) {
			rc = config_why(w, "more than %d values", CONFIG_MAX_SWEEP_VALUES);
			break;
		}
		if (r - p >= CONFIG_STR_LEN) {
			rc = config_why(w, "value longer than %d characters", CONFIG_STR_LEN - 1);
			break;
		}
		char *dst = ax->values[ax->n];
		memcpy(dst, p, (size_t)(r - p));
		dst[r - p] = '\0';
		char w2[WHY_LEN];
		if (config_parse_value(e, dst, &v, w2) != 0) {
			rc = config_why(w, "%s: %s", ax->key, w2);
			break;
		}
		for (int k = 0; k < ax->n; k++)
			if (strcmp(ax->values[k], dst) == 0) {
				rc = config_why(w, "%s: value '%s' given twice", ax->key, dst);
				break;
			}
		if (rc)
			break;
		ax->n++;
		if (!*q)
			break;
		p = q + 1;
	}
	return rc;
}

int config_sweep_runs_ok(const experiment_config *c, char *w)
{
	long long runs = 1;
	for (int a = 0; a < c->n_sweep; a++) {
		runs *= c->sweep[a].n;
		if (runs > SWEEP_MAX_RUNS)
			return config_why(w, "the sweep expands to more than %d runs",
					  SWEEP_MAX_RUNS);
	}
	return 0;
}

/* Adds (or with `replace`, replaces) a sweep axis. */
static int sweep_add(experiment_config *c, const char *key, const char *values, int replace,
		     char *w)
{
	config_sweep_axis ax;
	int rc = sweep_parse(&ax, key, values, w);
	if (rc)
		return rc;
	int a = sweep_find(c, ax.key), added = 0;
	if (a >= 0 && !replace)
		return config_why(w, "%s is already swept", ax.key);
	if (a < 0) {
		if (c->n_sweep == CONFIG_MAX_SWEEP)
			return config_why(w, "more than %d sweep axes", CONFIG_MAX_SWEEP);
		a = c->n_sweep++;
		added = 1;
	}
	config_sweep_axis old = c->sweep[a];
	c->sweep[a] = ax;
	rc = config_sweep_runs_ok(c, w);
	if (rc) {
		c->sweep[a] = old;
		c->n_sweep -= added;
	}
	return rc;
}

/* ---- INI ---------------------------------------------------------------- */

typedef struct {
	experiment_config *c;
	int set_line[N_ENTRIES];        /* where each key was set; 0 = not yet */
	int sweep_line[N_ENTRIES];      /* where each key was swept */
} ini_ctx;

static int known_section(void *user, const char *s)
{
	return *s && (strcmp(s, "sweep") == 0 || config_find_section(s) >= 0);
}

static int on_ini_value(inifile *f, void *user, const char *section, const char *key,
			char *val)
{
	ini_ctx *x = user;
	char w[WHY_LEN];
	int line = inifile_line(f);
	if (strcmp(section, "sweep") == 0) {
		int a = config_find_dotted(key);
		if (a >= 0 && x->sweep_line[a])
			return inifile_fail(f, -EINVAL, "[sweep] %s: duplicate key (first on line %d)",
					    key, x->sweep_line[a]);
		if (sweep_add(x->c, key, val, 0, w) != 0)
			return inifile_fail(f, -EINVAL, "[sweep] %s: %s", key, w);
		x->sweep_line[a] = line;
		return 1;
	}
	int i = config_find_entry(section, key);
	if (i < 0)
		return inifile_fail(f, -EINVAL, "[%s] %s: unknown key", section, key);
	if (x->set_line[i] > 0)
		return inifile_fail(f, -EINVAL, "[%s] %s: duplicate key (first on line %d)", section,
				    key, x->set_line[i]);
	if (config_set_entry(x->c, &config_entries[i], val, w) != 0)
		return inifile_fail(f, -EINVAL, "[%s] %s: %s", section, key, w);
	x->set_line[i] = line;
	return 1;
}

static int parse_text(experiment_config *c, const char *text, const char *path, char *err)
{
	config_defaults(c);
	ini_ctx *x = calloc(1, sizeof(*x));
	if (!x)
		return byol_err(err, -ENOMEM, "%s: out of memory", path ? path : "config");
	x->c = c;
	int rc = text ? inifile_parse_string(text, strlen(text), path, known_section,
					     on_ini_value, x, err)
		      : inifile_parse_file(path, known_section, on_ini_value, x, err);
	free(x);
	if (rc < 0)
		config_defaults(c);
	return rc;
}

int config_parse_string(experiment_config *c, const char *text, const char *name, char *err)
{
	return parse_text(c, text, name ? name : "<string>", err);
}

int config_parse_file(experiment_config *c, const char *path, char *err)
{
	return parse_text(c, NULL, path, err);
}

/* ---- --set -------------------------------------------------------------- */

int config_set(experiment_config *c, const char *assignment, char *err)
{
	const char *eq = strchr(assignment, '=');
	if (!eq)
		return byol_err(err, -EINVAL, "--set %s: expected section.key=value", assignment);
	char key[128];
	const char *k0 = skip_ws(assignment);
	const char *k1 = eq;
	while (k1 > k0 && isspace((unsigned char)k1[-1]))
		k1--;
	if (k1 - k0 >= (ptrdiff_t)sizeof(key) || k1 == k0)
		return byol_err(err, -EINVAL, "--set %s: bad key", assignment);
	memcpy(key, k0, (size_t)(k1 - k0));
	key[k1 - k0] = '\0';
	char val[CONFIG_STR_LEN * 2];
	const char *v0 = skip_ws(eq + 1);
	size_t vn = strlen(v0);
	while (vn && isspace((unsigned char)v0[vn - 1]))
		vn--;
	if (vn >= sizeof(val))
		return byol_err(err, -EINVAL, "--set %s: value too long", key);
	memcpy(val, v0, vn);
	val[vn] = '\0';

	char w[WHY_LEN];
	if (strncmp(key, "sweep.", 6) == 0) {
		if (sweep_add(c, key + 6, val, 1, w) != 0)
			return byol_err(err, -EINVAL, "--set: [sweep] %s: %s", key + 6, w);
		return 0;
	}
	const char *dot = strchr(key, '.');
	if (!dot)
		return byol_err(err, -EINVAL, "--set %s: expected section.key=value", assignment);
	int i = config_find_dotted(key);
	if (i < 0) {
		int known = 0;
		if ((size_t)(dot - key) < 32) {
			char s[32];
			memcpy(s, key, (size_t)(dot - key));
			s[dot - key] = '\0';
			known = config_find_section(s) >= 0;
		}
		return byol_err(err, -EINVAL, "--set: [%.*s] %s: %s", (int)(dot - key), key, dot + 1,
				known ? "unknown key" : "unknown section");
	}
	if (config_set_entry(c, &config_entries[i], val, w) != 0)
		return byol_err(err, -EINVAL, "--set: [%s] %s: %s", config_entries[i].section,
				config_entries[i].key, w);
	/* An explicit value replaces a sweep over the same key. */
	char dotted[64];
	snprintf(dotted, sizeof(dotted), "%s.%s", config_entries[i].section, config_entries[i].key);
	int a = sweep_find(c, dotted);
	if (a >= 0)
		sweep_remove(c, a);
	return 0;
}
