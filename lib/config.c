/*
 * config.c — the experiment file: the table, defaults, values, the INI file
 * (with its [sweep] and [variant NAME] sections) and --set. config_json.c holds
 * the canonical JSON, the hash, validation and --help; config_sweep.c the sweep
 * axes, the variants, their expansion into runs and the runs' names;
 * config_internal.h what the three share.
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
 *
 * [variant NAME] sections are found by a scan of the text before the parse
 * (the same line rules as inifile's reader), so that each has its header's
 * line — inifile does not report a section's line, and an empty section holds
 * no key to report it — and so that variants keep their file order. Checks
 * that need the whole file (a variant setting a swept key, a section nothing
 * names) run after the parse and name the lines involved.
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

/* inifile's limit on a file's size. */
#define CONFIG_FILE_MAX (1 << 20)

/* Seeds travel as JSON numbers (doubles): keep them exact. */
#define SEED_MAX 9007199254740991.0     /* 2^53 - 1 */

#define F(field) offsetof(experiment_config, field)
#define NUM(s, k, t, lo, hi, d, field, h) { s, k, t, lo, hi, d, F(field), 0, NULL, h }
#define STR(s, k, d, field, h) { s, k, T_STRING, 0, 0, d, F(field), 0, NULL, h }
#define NAME(s, k, d, field, h) { s, k, T_NAME, 0, 0, d, F(field), 0, NULL, h }
#define ENUM(s, k, n, d, field, h) { s, k, T_ENUM, 0, 0, d, F(field), 0, n, h }
#define LIST(s, k, lo, hi, d, field, cnt, h) { s, k, T_INT_LIST, lo, hi, d, F(field), F(cnt), NULL, h }

const centry config_entries[] = {
	STR("experiment", "name", "byol", name, "name of the experiment"),
	ENUM("experiment", "method", method_names, "byol", method, "training method"),
	NUM("experiment", "seed", T_U64, 0, SEED_MAX, "1", seed,
	    "seed of every random draw (data order, augmentation, init)"),
	NAME("experiment", "variant", "", variant,
	     "the run's named variant: its [variant NAME] section is applied to the base"),

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
	case T_NAME:
		if (text[0] && !config_variant_name_ok(text))
			return config_why(w, "'%s' is not a name (1 to %d letters, digits, '_', '-', "
					  "'.' or '+')", text, CONFIG_VARIANT_NAME_LEN - 1);
		/* fall through */
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
	case T_NAME:
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

/* ---- INI ---------------------------------------------------------------- */

/* Where a [variant] problem was found before the parse (reported after it). */
#define HEADER_WHY_LEN 320

typedef struct {
	experiment_config *c;
	const char *path;
	int set_line[N_ENTRIES];        /* where each key was set; 0 = not yet */
	int sweep_line[N_ENTRIES];      /* where each key was swept */
	int variant_line[CONFIG_MAX_VARIANTS];  /* each variant's section */
	int key_line[CONFIG_MAX_VARIANTS][CONFIG_MAX_VARIANT_KEYS];
	int header_err_line;            /* the first bad [variant] header */
	char header_why[HEADER_WHY_LEN];
} ini_ctx;

/* "variant NAME" -> NAME (blanks around it dropped) into buf; NULL when the
 * section is not a variant section. */
static const char *variant_section_name(const char *section, char *buf, size_t len)
{
	if (strncmp(section, "variant", 7) != 0 || (section[7] && !isblank((unsigned char)section[7])))
		return NULL;
	const char *p = skip_ws(section + 7);
	size_t n = strlen(p);
	while (n && isblank((unsigned char)p[n - 1]))
		n--;
	snprintf(buf, len, "%.*s", (int)n, p);
	return buf;
}

static int known_section(void *user, const char *s)
{
	char name[96];
	return *s && (strcmp(s, "sweep") == 0 || config_find_section(s) >= 0 ||
		      variant_section_name(s, name, sizeof(name)));
}

static int variant_index(const experiment_config *c, const char *name)
{
	const config_variant *v = config_variant_find(c, name);
	return v ? (int)(v - c->variants) : -1;
}

/* One [variant NAME] header on `line`: registers the variant (in file order,
 * before the parse, so that empty sections count too) or notes the first bad
 * header. */
static void variant_header(ini_ctx *x, const char *section, int line)
{
	char name[96], w[WHY_LEN];
	if (!variant_section_name(section, name, sizeof(name)))
		return;
	int v = variant_index(x->c, name);
	if (v >= 0 && !x->header_err_line) {
		x->header_err_line = line;
		snprintf(x->header_why, sizeof(x->header_why),
			 "[variant %s]: a second section of this name (the first is on line %d)",
			 name, x->variant_line[v]);
	}
	if (v >= 0)
		return;
	if (!name[0])
		v = config_why(w, "a variant section needs a name: [variant NAME]");
	else
		v = config_variant_add(x->c, name, w);
	if (v < 0 && !x->header_err_line) {
		x->header_err_line = line;
		snprintf(x->header_why, sizeof(x->header_why), "[%.80s]: %.200s", section, w);
	}
	if (v >= 0)
		x->variant_line[v] = line;
}

/* Finds the [variant ...] headers the way inifile and inih read lines: one
 * physical line each, a byte order mark and leading white space dropped; the
 * section name is everything up to the first ']'. */
static void scan_variant_headers(ini_ctx *x, const char *text, size_t len)
{
	const char *p = text, *end = text + len;
	char section[256];
	for (int line = 1; p < end; line++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end, *s = p;
		p = nl ? nl + 1 : end;
		if (line == 1 && eol - s >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
			s += 3;
		while (s < eol && isspace((unsigned char)*s))   /* inifile's, then inih's */
			s++;
		if (s == eol || *s != '[')
			continue;
		const char *close = memchr(s, ']', (size_t)(eol - s));
		if (!close || (size_t)(close - s - 1) >= sizeof(section))
			continue;
		memcpy(section, s + 1, (size_t)(close - s - 1));
		section[close - s - 1] = '\0';
		variant_header(x, section, line);
	}
}

static int on_variant_value(inifile *f, ini_ctx *x, const char *section, const char *name,
			    const char *key, const char *val)
{
	char w[WHY_LEN];
	int v = variant_index(x->c, name);
	if (v < 0) {
		/* a header the scan did not see (it should not happen) is taken here */
		variant_header(x, section, inifile_line(f));
		if ((v = variant_index(x->c, name)) < 0)
			return 1;       /* a bad header, reported after the parse */
	}
	config_variant *vr = &x->c->variants[v];
	int i = config_find_dotted(key);
	for (int k = 0; i >= 0 && k < vr->n; k++)
		if (config_find_dotted(vr->set[k].key) == i)
			return inifile_fail(f, -EINVAL, "[variant %s] %s: duplicate key (first on "
					    "line %d)", name, key, x->key_line[v][k]);
	if (config_variant_assign(vr, key, val, w) != 0)
		return inifile_fail(f, -EINVAL, "[variant %s] %s", name, w);
	x->key_line[v][vr->n - 1] = inifile_line(f);
	return 1;
}

static int on_ini_value(inifile *f, void *user, const char *section, const char *key,
			char *val)
{
	ini_ctx *x = user;
	char w[WHY_LEN], name[96];
	int line = inifile_line(f);
	if (strcmp(section, "sweep") == 0) {
		int a = config_find_dotted(key);
		if (a >= 0 && x->sweep_line[a])
			return inifile_fail(f, -EINVAL, "[sweep] %s: duplicate key (first on line %d)",
					    key, x->sweep_line[a]);
		if (config_sweep_add(x->c, key, val, 0, w) != 0)
			return inifile_fail(f, -EINVAL, "[sweep] %s: %s", key, w);
		x->sweep_line[a] = line;
		return 1;
	}
	if (variant_section_name(section, name, sizeof(name)))
		return on_variant_value(f, x, section, name, key, val);
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

/* The checks that need the whole file: headers, variants against the sweep,
 * and sections nothing names. */
static int check_variants(const ini_ctx *x, char *err)
{
	const experiment_config *c = x->c;
	const char *path = x->path;
	if (x->header_err_line)
		return byol_err(err, -EINVAL, "%s:%d: %s", path, x->header_err_line, x->header_why);
	int v, k, a, b;
	if (config_variant_sets_swept(c, &v, &k, &a)) {
		const config_assignment *s = &c->variants[v].set[k];
		return byol_err(err, -EINVAL, "%s:%d: [variant %s] %s: also swept by [sweep] on "
				"line %d (a variant may not set a key the sweep varies)", path,
				x->key_line[v][k], c->variants[v].name, s->key,
				x->sweep_line[config_find_dotted(s->key)]);
	}
	int axis = config_variant_axis(c);
	int axis_line = axis >= 0 ? x->sweep_line[config_find_dotted("experiment.variant")] : 0;
	if (config_variant_two_bases(c, &a, &k, &b))
		return byol_err(err, -EINVAL, "%s:%d: [sweep] experiment.variant: neither '%s' nor "
				"'%s' has a [variant] section (one value may stand for the base "
				"config; the others need [variant NAME] sections)", path, axis_line,
				c->sweep[a].values[k], c->sweep[a].values[b]);
	for (v = 0; v < c->n_variants; v++) {
		const char *name = c->variants[v].name;
		int used = strcmp(c->variant, name) == 0;
		for (k = 0; axis >= 0 && k < c->sweep[axis].n && !used; k++)
			used = strcmp(c->sweep[axis].values[k], name) == 0;
		if (!used && axis >= 0)
			return byol_err(err, -EINVAL, "%s:%d: [variant %s]: not among the values of "
					"[sweep] experiment.variant on line %d", path,
					x->variant_line[v], name, axis_line);
		if (!used)
			return byol_err(err, -EINVAL, "%s:%d: [variant %s]: nothing names it (sweep "
					"experiment.variant, or set it in [experiment])", path,
					x->variant_line[v], name);
	}
	return 0;
}

/* The file's text, as inifile_parse_file would read it (the same limit and
 * messages). */
static char *read_text(const char *path, size_t *len, int *rc, char *err)
{
	FILE *fp = fopen(path, "rb");
	if (!fp) {
		int e = errno;
		*rc = byol_err(err, -e, "%s: %s", path, strerror(e));
		return NULL;
	}
	char *buf = malloc(CONFIG_FILE_MAX + 1);
	if (!buf) {
		fclose(fp);
		*rc = byol_err(err, -ENOMEM, "%s: out of memory", path);
		return NULL;
	}
	errno = 0;
	size_t n = fread(buf, 1, CONFIG_FILE_MAX + 1, fp);
	*rc = 0;
	if (ferror(fp)) {
		int e = errno ? errno : EIO;
		*rc = byol_err(err, -e, "%s: %s", path, strerror(e));
	} else if (n > CONFIG_FILE_MAX) {
		*rc = byol_err(err, -EFBIG, "%s: larger than %d bytes", path, CONFIG_FILE_MAX);
	}
	fclose(fp);
	if (*rc) {
		free(buf);
		return NULL;
	}
	buf[n] = '\0';
	*len = n;
	return buf;
}

static int parse_text(experiment_config *c, const char *text, const char *path, char *err)
{
	config_defaults(c);
	int rc;
	size_t len = text ? strlen(text) : 0;
	char *owned = text ? NULL : read_text(path, &len, &rc, err);
	if (!text && !owned)
		return rc;
	ini_ctx *x = calloc(1, sizeof(*x));
	if (!x) {
		free(owned);
		return byol_err(err, -ENOMEM, "%s: out of memory", path ? path : "config");
	}
	x->c = c;
	x->path = path;
	scan_variant_headers(x, text ? text : owned, len);
	rc = inifile_parse_string(text ? text : owned, len, path, known_section, on_ini_value, x,
				  err);
	if (rc == 0)
		rc = check_variants(x, err);
	free(x);
	free(owned);
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
		if (config_sweep_add(c, key + 6, val, 1, w) != 0)
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
	int a = config_sweep_find(c, dotted);
	if (a >= 0)
		config_sweep_remove(c, a);
	return 0;
}
