/*
 * config_json.c — the experiment as data: the canonical JSON (out and in) and
 * its hash, the runs of a sweep, validation and --help. All of it walks the
 * table of config.c (config_internal.h); values go through the same
 * config_parse_value() / config_set_entry() as the INI file's.
 */
#include "byol/config.h"
#include "byol/error.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

#define N_ENTRIES config_n_entries

/* ---- JSON --------------------------------------------------------------- */

/* The shortest text that reads back as f, both as strtof reads it and as a
 * double rounded to float (the way the JSON reader gets it). */
static void format_float(char *buf, size_t len, float f)
{
	for (int p = 1; p <= 9; p++) {
		snprintf(buf, len, "%.*g", p, (double)f);
		if (strtof(buf, NULL) == f && (float)strtod(buf, NULL) == f)
			return;
	}
	snprintf(buf, len, "%.9g", (double)f);
}

static cJSON *float_json(float f)
{
	char buf[32];
	if (!isfinite(f))
		return cJSON_CreateNull();      /* only in a struct filled by hand */
	format_float(buf, sizeof(buf), f);
	return cJSON_CreateNumber(strtod(buf, NULL));
}

static cJSON *entry_json(const experiment_config *c, const centry *e)
{
	const char *field = (const char *)c + e->off;
	int x;
	switch (e->type) {
	case T_INT:
		memcpy(&x, field, sizeof(x));
		return cJSON_CreateNumber(x);
	case T_U64: {
		/* cJSON prints big numbers with 15 digits: write the digits. */
		uint64_t u;
		char buf[24];
		memcpy(&u, field, sizeof(u));
		snprintf(buf, sizeof(buf), "%" PRIu64, u);
		return cJSON_CreateRaw(buf);
	}
	case T_FLOAT: {
		float f;
		memcpy(&f, field, sizeof(f));
		return float_json(f);
	}
	case T_BOOL:
		memcpy(&x, field, sizeof(x));
		return cJSON_CreateBool(x != 0);
	case T_STRING:
		if (!memchr(field, '\0', CONFIG_STR_LEN))
			return cJSON_CreateNull();      /* unterminated, filled by hand */
		return cJSON_CreateString(field);
	case T_ENUM: {
		int count = 0;
		memcpy(&x, field, sizeof(x));
		while (e->names[count])
			count++;
		return cJSON_CreateString(x >= 0 && x < count ? e->names[x] : "?");
	}
	case T_INT_LIST:
	case T_FLOAT_PAIR: {
		int n = 2;
		if (e->type == T_INT_LIST)
			memcpy(&n, (const char *)c + e->count_off, sizeof(n));
		if (n < 0 || n > CONFIG_MAX_LIST)
			n = 0;
		cJSON *arr = cJSON_CreateArray();
		for (int k = 0; arr && k < n; k++) {
			cJSON *item;
			if (e->type == T_INT_LIST) {
				memcpy(&x, field + k * sizeof(int), sizeof(x));
				item = cJSON_CreateNumber(x);
			} else {
				float f;
				memcpy(&f, field + k * sizeof(float), sizeof(f));
				item = float_json(f);
			}
			if (!item || !cJSON_AddItemToArray(arr, item)) {
				cJSON_Delete(item);
				cJSON_Delete(arr);
				return NULL;
			}
		}
		return arr;
	}
	}
	return NULL;
}

char *config_to_json(const experiment_config *c)
{
	cJSON *root = cJSON_CreateObject(), *sec = NULL;
	if (!root)
		return NULL;
	for (int i = 0; i < N_ENTRIES; i++) {
		const centry *e = &config_entries[i];
		if (i == 0 || strcmp(e->section, config_entries[i - 1].section) != 0) {
			sec = cJSON_AddObjectToObject(root, e->section);
			if (!sec)
				goto fail;
		}
		cJSON *item = entry_json(c, e);
		if (!item || !cJSON_AddItemToObject(sec, e->key, item)) {
			cJSON_Delete(item);
			goto fail;
		}
	}
	char *s = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	return s;
fail:
	cJSON_Delete(root);
	return NULL;
}

/* A JSON number as the text the INI parser reads (exact for doubles). */
static int number_text(const cJSON *item, char *buf, size_t len)
{
	if (cJSON_IsRaw(item))          /* ours: the seed's digits */
		snprintf(buf, len, "%s", item->valuestring);
	else if (cJSON_IsNumber(item))
		snprintf(buf, len, "%.17g", item->valuedouble);
	else
		return -1;
	return 0;
}

/* Turns a JSON value into the text form of entry e, checking its JSON type. */
static int json_text(const centry *e, const cJSON *item, char *buf, size_t len, char *w)
{
	switch (e->type) {
	case T_INT:
	case T_U64:
	case T_FLOAT:
		if (number_text(item, buf, len))
			return config_why(w, "expected a number");
		return 0;
	case T_BOOL:
		if (!cJSON_IsBool(item))
			return config_why(w, "expected true or false");
		snprintf(buf, len, "%s", cJSON_IsTrue(item) ? "true" : "false");
		return 0;
	case T_STRING:
	case T_ENUM:
		if (!cJSON_IsString(item))
			return config_why(w, "expected a string");
		if (strlen(item->valuestring) >= len)
			return config_why(w, "value longer than %d characters", CONFIG_STR_LEN - 1);
		snprintf(buf, len, "%s", item->valuestring);
		return 0;
	case T_INT_LIST:
	case T_FLOAT_PAIR: {
		if (!cJSON_IsArray(item))
			return config_why(w, "expected an array of numbers");
		size_t n = 0;
		buf[0] = '\0';
		const cJSON *el;
		cJSON_ArrayForEach(el, item) {
			char num[40];
			if (number_text(el, num, sizeof(num)))
				return config_why(w, "expected an array of numbers");
			if (n + strlen(num) + 3 >= len)
				return config_why(w, "too many values");
			n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? ", " : "", num);
		}
		return 0;
	}
	}
	return config_why(w, "bad table entry");
}

static int duplicate_key(const cJSON *obj, const cJSON *item)
{
	for (const cJSON *o = obj->child; o && o != item; o = o->next)
		if (strcmp(o->string, item->string) == 0)
			return 1;
	return 0;
}

int config_from_json(experiment_config *c, const char *json, char *err)
{
	config_defaults(c);
	cJSON *root = cJSON_Parse(json);
	if (!root)
		return byol_err(err, -EINVAL, "config JSON: does not parse");
	int rc = 0;
	char w[WHY_LEN], text[CONFIG_STR_LEN * 2];
	if (!cJSON_IsObject(root)) {
		rc = byol_err(err, -EINVAL, "config JSON: not an object");
		goto out;
	}
	const cJSON *sec, *item;
	cJSON_ArrayForEach(sec, root) {
		if (duplicate_key(root, sec)) {
			rc = byol_err(err, -EINVAL, "config JSON: [%s]: duplicate section", sec->string);
			goto out;
		}
		if (config_find_section(sec->string) < 0) {
			rc = byol_err(err, -EINVAL, "config JSON: unknown section [%s]", sec->string);
			goto out;
		}
		if (!cJSON_IsObject(sec)) {
			rc = byol_err(err, -EINVAL, "config JSON: [%s]: not an object", sec->string);
			goto out;
		}
		cJSON_ArrayForEach(item, sec) {
			int i = config_find_entry(sec->string, item->string);
			if (i < 0) {
				rc = byol_err(err, -EINVAL, "config JSON: [%s] %s: unknown key",
					      sec->string, item->string);
				goto out;
			}
			if (duplicate_key(sec, item)) {
				rc = byol_err(err, -EINVAL, "config JSON: [%s] %s: duplicate key",
					      sec->string, item->string);
				goto out;
			}
			if (json_text(&config_entries[i], item, text, sizeof(text), w) ||
			    config_set_entry(c, &config_entries[i], text, w)) {
				rc = byol_err(err, -EINVAL, "config JSON: [%s] %s: %s", sec->string,
					      item->string, w);
				goto out;
			}
		}
	}
out:
	cJSON_Delete(root);
	return rc;
}

void config_hash(const experiment_config *c, char out[17])
{
	uint64_t h = 0xcbf29ce484222325ULL;
	char *json = config_to_json(c);
	for (const char *p = json ? json : ""; *p; p++) {
		h ^= (unsigned char)*p;
		h *= 0x100000001b3ULL;
	}
	free(json);
	snprintf(out, 17, "%016" PRIx64, h);
}

/* ---- sweep runs --------------------------------------------------------- */

int config_sweep_count(const experiment_config *c)
{
	if (c->n_sweep < 0 || c->n_sweep > CONFIG_MAX_SWEEP)
		return 0;
	long long runs = 1;
	for (int a = 0; a < c->n_sweep; a++) {
		if (c->sweep[a].n < 1 || c->sweep[a].n > CONFIG_MAX_SWEEP_VALUES)
			return 0;
		runs *= c->sweep[a].n;
	}
	return runs > SWEEP_MAX_RUNS ? 0 : (int)runs;
}

int config_sweep_get(const experiment_config *base, int i, experiment_config *out, char *err)
{
	int runs = config_sweep_count(base);
	if (i < 0 || i >= runs)
		return byol_err(err, -EINVAL, "sweep run %d out of range [0, %d)", i, runs);
	experiment_config *b = malloc(sizeof(*b));
	if (!b)
		return byol_err(err, -ENOMEM, "out of memory");
	*b = *base;                     /* out may be base */
	*out = *b;
	out->n_sweep = 0;
	memset(out->sweep, 0, sizeof(out->sweep));
	int rc = 0;
	for (int a = b->n_sweep - 1; a >= 0 && rc == 0; a--) {
		const config_sweep_axis *ax = &b->sweep[a];
		int k = i % ax->n;
		i /= ax->n;
		int idx = config_find_dotted(ax->key);
		char w[WHY_LEN];
		if (idx < 0)
			rc = byol_err(err, -EINVAL, "[sweep] %s: unknown key", ax->key);
		else if (config_set_entry(out, &config_entries[idx], ax->values[k], w) != 0)
			rc = byol_err(err, -EINVAL, "[sweep] %s: %s", ax->key, w);
	}
	free(b);
	return rc;
}

/* ---- validation --------------------------------------------------------- */

static int validate_one(const experiment_config *c, char *w)
{
	/* The table's ranges, for structs filled by hand: print each value as the
	 * JSON does and parse it back. */
	for (int i = 0; i < N_ENTRIES; i++) {
		const centry *e = &config_entries[i];
		char text[CONFIG_STR_LEN * 2], w2[WHY_LEN];
		cvalue v;
		cJSON *item = entry_json(c, e);
		int rc = !item ? config_why(w2, "out of memory")
			 : json_text(e, item, text, sizeof(text), w2) ? -EINVAL
			 : config_parse_value(e, text, &v, w2);
		cJSON_Delete(item);
		if (rc)
			return config_why(w, "[%s] %s: %s", e->section, e->key, w2);
	}
	if (!c->name[0])
		return config_why(w, "[experiment] name: empty");
	if (strchr(c->name, '/') || strcmp(c->name, ".") == 0 || strcmp(c->name, "..") == 0)
		return config_why(w, "[experiment] name: '%s' may not contain '/' or be '.' or '..'",
				  c->name);
	if (!c->data_dir[0])
		return config_why(w, "[data] dir: empty");
	if (c->batch_size < c->shard_size || c->batch_size % c->shard_size)
		return config_why(w, "[data] batch_size: %d is not a multiple of shard_size %d",
				  c->batch_size, c->shard_size);
	if (c->train_limit && c->train_limit < c->batch_size)
		return config_why(w, "[data] train_limit: %d is smaller than one batch (%d)",
				  c->train_limit, c->batch_size);
	if (!(c->crop_scale[0] > 0 && c->crop_scale[0] <= c->crop_scale[1] && c->crop_scale[1] <= 1))
		return config_why(w,
				  "[augment] crop_scale: (%g, %g) must satisfy 0 < min <= max <= 1",
				  (double)c->crop_scale[0], (double)c->crop_scale[1]);
	if (!(c->crop_ratio[0] > 0 && c->crop_ratio[0] <= c->crop_ratio[1]))
		return config_why(w, "[augment] crop_ratio: (%g, %g) must satisfy 0 < min <= max",
				  (double)c->crop_ratio[0], (double)c->crop_ratio[1]);
	if (c->encoder == ENCODER_CNN && c->n_cnn_strides != c->n_encoder_widths)
		return config_why(w,
				  "[model] cnn_strides: %d strides for %d encoder_widths (one per layer)",
				  c->n_cnn_strides, c->n_encoder_widths);
	if (!(c->lr >= 0))   /* 0 freezes the weights: a baseline for the init */
		return config_why(w, "[optim] lr: must be >= 0");
	if (!(c->momentum < 1))
		return config_why(w, "[optim] momentum: must be < 1");
	if (c->optim == OPT_LARS && !(c->lars_eta > 0))
		return config_why(w, "[optim] lars_eta: must be > 0 with lars");
	if (!(c->warmup_epochs < (float)c->epochs))
		return config_why(w, "[optim] warmup_epochs: %g is not below epochs %d",
				  (double)c->warmup_epochs, c->epochs);
	return 0;
}

int config_validate(const experiment_config *c, char *err)
{
	char w[WHY_LEN];
	if (c->n_sweep == 0) {
		if (validate_one(c, w))
			return byol_err(err, -EINVAL, "%s", w);
		return 0;
	}
	if (c->n_sweep < 0 || c->n_sweep > CONFIG_MAX_SWEEP)
		return byol_err(err, -EINVAL, "[sweep]: %d axes", c->n_sweep);
	for (int a = 0; a < c->n_sweep; a++)
		if (c->sweep[a].n < 1 || c->sweep[a].n > CONFIG_MAX_SWEEP_VALUES)
			return byol_err(err, -EINVAL, "[sweep] axis %d '%.64s': %d values", a, c->sweep[a].key,
					c->sweep[a].n);
	if (config_sweep_runs_ok(c, w))
		return byol_err(err, -EINVAL, "[sweep]: %s", w);
	experiment_config *run = malloc(sizeof(*run));
	if (!run)
		return byol_err(err, -ENOMEM, "out of memory");
	int rc = 0, runs = config_sweep_count(c);
	for (int i = 0; i < runs && rc == 0; i++) {
		rc = config_sweep_get(c, i, run, err);
		if (rc == 0 && validate_one(run, w)) {
			/* The run's swept values, in axis order. */
			char combo[200] = "";
			size_t len = 0;
			int idx = i;
			int pick[CONFIG_MAX_SWEEP];
			for (int a = c->n_sweep - 1; a >= 0; a--) {
				pick[a] = idx % c->sweep[a].n;
				idx /= c->sweep[a].n;
			}
			for (int a = 0; a < c->n_sweep && len < sizeof(combo); a++)
				len += (size_t)snprintf(combo + len, sizeof(combo) - len, "%s%s=%s",
							a ? ", " : "", c->sweep[a].key,
							c->sweep[a].values[pick[a]]);
			rc = byol_err(err, -EINVAL, "sweep run %d (%s): %s", i, combo, w);
		}
	}
	free(run);
	return rc;
}

/* ---- help --------------------------------------------------------------- */

void config_print_help(void *file)
{
	FILE *f = file;
	fprintf(f, "%-28s %-28s %-18s %s\n", "section.key", "type", "default", "help");
	for (int i = 0; i < N_ENTRIES; i++) {
		const centry *e = &config_entries[i];
		char key[64], type[96];
		snprintf(key, sizeof(key), "%s.%s", e->section, e->key);
		switch (e->type) {
		case T_INT:
		case T_U64:
			snprintf(type, sizeof(type), "int [%.0f, %.0f]", e->min, e->max);
			break;
		case T_FLOAT:
			snprintf(type, sizeof(type), "float [%g, %g]", e->min, e->max);
			break;
		case T_BOOL:
			snprintf(type, sizeof(type), "bool");
			break;
		case T_STRING:
			snprintf(type, sizeof(type), "string");
			break;
		case T_ENUM: {
			size_t n = 0;
			type[0] = '\0';
			for (int k = 0; e->names[k] && n < sizeof(type); k++)
				n += (size_t)snprintf(type + n, sizeof(type) - n, "%s%s", k ? "|" : "",
						      e->names[k]);
			break;
		}
		case T_INT_LIST:
			snprintf(type, sizeof(type), "int list [%.0f, %.0f]", e->min, e->max);
			break;
		case T_FLOAT_PAIR:
			snprintf(type, sizeof(type), "float pair [%g, %g]", e->min, e->max);
			break;
		}
		fprintf(f, "%-28s %-28s %-18s %s\n", key, type, e->def, e->help);
	}
	fprintf(f, "\n[sweep] lines are `section.key = v1, v2, ...` (one run per combination;\n"
		   "a list key's values write their elements separated by blanks: 0.08 1.0, 0.3 1.0).\n");
}
