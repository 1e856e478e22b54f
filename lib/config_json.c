/*
 * config_json.c — the experiment as data: the canonical JSON (out and in), the
 * experiment's JSON (with its sweep and variants), the hash, validation and
 * --help. All of it walks the
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
	case T_NAME:
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

/* Adds "sweep" and "variants" to the object of the canonical JSON. */
static int add_sweep_and_variants(cJSON *o, const experiment_config *c)
{
	int ns = c->n_sweep < 0 || c->n_sweep > CONFIG_MAX_SWEEP ? 0 : c->n_sweep;
	int nv = c->n_variants < 0 || c->n_variants > CONFIG_MAX_VARIANTS ? 0 : c->n_variants;
	cJSON *sw = ns ? cJSON_AddObjectToObject(o, "sweep") : NULL;
	if (ns && !sw)
		return -1;
	for (int a = 0; a < ns; a++) {
		const config_sweep_axis *ax = &c->sweep[a];
		cJSON *arr = cJSON_AddArrayToObject(sw, ax->key);
		for (int k = 0; arr && k < ax->n && k < CONFIG_MAX_SWEEP_VALUES; k++)
			if (!cJSON_AddItemToArray(arr, cJSON_CreateString(ax->values[k])))
				return -1;
		if (!arr)
			return -1;
	}
	cJSON *vs = nv ? cJSON_AddObjectToObject(o, "variants") : NULL;
	if (nv && !vs)
		return -1;
	for (int v = 0; v < nv; v++) {
		const config_variant *var = &c->variants[v];
		cJSON *obj = cJSON_AddObjectToObject(vs, var->name);
		if (!obj)
			return -1;
		for (int k = 0; k < var->n && k < CONFIG_MAX_VARIANT_KEYS; k++)
			if (!cJSON_AddStringToObject(obj, var->set[k].key, var->set[k].value))
				return -1;
	}
	return 0;
}

char *config_experiment_json(const experiment_config *c)
{
	char *j = config_to_json(c);
	if (!j || (c->n_sweep == 0 && c->n_variants == 0))
		return j;
	cJSON *o = cJSON_Parse(j);
	free(j);
	j = o && add_sweep_and_variants(o, c) == 0 ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	return j;
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
	case T_NAME:
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

/* "sweep": {"section.key": ["v1", "v2", ...], ...}, as the INI's [sweep]. */
static int sweep_from_json(experiment_config *c, const cJSON *sec, char *err)
{
	char w[WHY_LEN];
	char *buf = malloc(CONFIG_MAX_SWEEP_VALUES * (CONFIG_STR_LEN + 2));
	if (!buf)
		return byol_err(err, -ENOMEM, "out of memory");
	int rc = 0;
	const cJSON *axis, *v;
	cJSON_ArrayForEach(axis, sec) {
		size_t n = 0;
		int k = 0;
		if (!cJSON_IsArray(axis))
			rc = config_why(w, "expected an array of strings");
		else if (cJSON_GetArraySize(axis) > CONFIG_MAX_SWEEP_VALUES)
			rc = config_why(w, "more than %d values", CONFIG_MAX_SWEEP_VALUES);
		buf[0] = '\0';
		cJSON_ArrayForEach(v, axis) {
			if (rc)
				break;
			if (!cJSON_IsString(v))
				rc = config_why(w, "expected an array of strings");
			else if (strchr(v->valuestring, ','))
				rc = config_why(w, "value '%.80s' holds a comma", v->valuestring);
			else if (strlen(v->valuestring) >= CONFIG_STR_LEN)
				rc = config_why(w, "value longer than %d characters", CONFIG_STR_LEN - 1);
			else
				n += (size_t)sprintf(buf + n, "%s%s", k++ ? ", " : "", v->valuestring);
		}
		if (rc == 0)
			rc = config_sweep_add(c, axis->string, buf, 0, w);
		if (rc) {
			rc = byol_err(err, -EINVAL, "config JSON: [sweep] %.64s: %s", axis->string, w);
			break;
		}
	}
	free(buf);
	return rc;
}

/* "variants": {"NAME": {"section.key": "value", ...}, ...}. */
static int variants_from_json(experiment_config *c, const cJSON *sec, char *err)
{
	char w[WHY_LEN];
	const cJSON *var, *kv;
	cJSON_ArrayForEach(var, sec) {
		if (!cJSON_IsObject(var))
			return byol_err(err, -EINVAL, "config JSON: [variant %.80s]: not an object",
					var->string);
		int v = config_variant_add(c, var->string, w);
		if (v < 0)
			return byol_err(err, -EINVAL, "config JSON: [variant %.80s]: %s", var->string, w);
		cJSON_ArrayForEach(kv, var) {
			if (!cJSON_IsString(kv))
				return byol_err(err, -EINVAL, "config JSON: [variant %s] %.64s: expected "
						"a string", var->string, kv->string);
			if (config_variant_assign(&c->variants[v], kv->string, kv->valuestring, w))
				return byol_err(err, -EINVAL, "config JSON: [variant %s] %s", var->string,
						w);
		}
	}
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
		int sweep = strcmp(sec->string, "sweep") == 0;
		int variants = strcmp(sec->string, "variants") == 0;
		if (!sweep && !variants && config_find_section(sec->string) < 0) {
			rc = byol_err(err, -EINVAL, "config JSON: unknown section [%s]", sec->string);
			goto out;
		}
		if (!cJSON_IsObject(sec)) {
			rc = byol_err(err, -EINVAL, "config JSON: [%s]: not an object", sec->string);
			goto out;
		}
		if (sweep || variants) {
			if ((rc = sweep ? sweep_from_json(c, sec, err) : variants_from_json(c, sec, err)))
				goto out;
			continue;
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

/* The variants' own rules, for structs filled by hand or from JSON (the INI
 * parser checks them as it reads, with line numbers). */
static int validate_variants(const experiment_config *c, char *err)
{
	char w[WHY_LEN];
	if (c->n_variants < 0 || c->n_variants > CONFIG_MAX_VARIANTS)
		return byol_err(err, -EINVAL, "[variant]: %d variants", c->n_variants);
	for (int v = 0; v < c->n_variants; v++) {
		const config_variant *var = &c->variants[v];
		if (!memchr(var->name, '\0', sizeof(var->name)) || !config_variant_name_ok(var->name))
			return byol_err(err, -EINVAL, "[variant %d]: not a variant name", v);
		if (config_variant_find(c, var->name) != var)
			return byol_err(err, -EINVAL, "[variant %s]: given twice", var->name);
		if (var->n < 0 || var->n > CONFIG_MAX_VARIANT_KEYS)
			return byol_err(err, -EINVAL, "[variant %s]: %d keys", var->name, var->n);
		for (int k = 0; k < var->n; k++) {
			const config_assignment *as = &var->set[k];
			if (!memchr(as->key, '\0', sizeof(as->key)) ||
			    !memchr(as->value, '\0', sizeof(as->value)))
				return byol_err(err, -EINVAL, "[variant %s]: key %d is not a string",
						var->name, k);
			if (config_assignment_check(as->key, as->value, w) < 0)
				return byol_err(err, -EINVAL, "[variant %s] %s", var->name, w);
			for (int j = 0; j < k; j++)
				if (config_find_dotted(var->set[j].key) == config_find_dotted(as->key))
					return byol_err(err, -EINVAL, "[variant %s] %s: set twice",
							var->name, as->key);
		}
	}
	int v, k, a, b;
	if (config_variant_sets_swept(c, &v, &k, &a))
		return byol_err(err, -EINVAL, "[variant %s] %s: also swept by [sweep] (a variant may "
				"not set a key the sweep varies)", c->variants[v].name,
				c->variants[v].set[k].key);
	if (config_variant_two_bases(c, &a, &k, &b))
		return byol_err(err, -EINVAL, "[sweep] experiment.variant: neither '%s' nor '%s' has "
				"a [variant] section (one value may stand for the base config; the "
				"others need [variant NAME] sections)", c->sweep[a].values[k],
				c->sweep[a].values[b]);
	return 0;
}

/* The swept values of run i, "key=value, ..." in axis order. */
static void run_combo(const experiment_config *c, int i, char *combo, size_t size)
{
	int pick[CONFIG_MAX_SWEEP];
	size_t len = 0;
	combo[0] = '\0';
	config_sweep_pick(c, i, pick);
	for (int a = 0; a < c->n_sweep && len < size; a++)
		len += (size_t)snprintf(combo + len, size - len, "%s%s=%s", a ? ", " : "",
					c->sweep[a].key, c->sweep[a].values[pick[a]]);
}

int config_validate(const experiment_config *c, char *err)
{
	char w[WHY_LEN];
	if (c->n_sweep == 0 && c->n_variants == 0) {
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
	int rc = validate_variants(c, err);
	if (rc)
		return rc;
	experiment_config *run = malloc(sizeof(*run));
	if (!run)
		return byol_err(err, -ENOMEM, "out of memory");
	int runs = config_sweep_count(c);
	for (int i = 0; i < runs && rc == 0; i++) {
		rc = config_sweep_get(c, i, run, err);
		if (rc == 0 && validate_one(run, w)) {
			char combo[200];
			if (c->n_sweep == 0) {
				rc = byol_err(err, -EINVAL, "variant %s: %s", run->variant, w);
			} else {
				run_combo(c, i, combo, sizeof(combo));
				rc = byol_err(err, -EINVAL, "sweep run %d (%s): %s", i, combo, w);
			}
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
		case T_NAME:
			snprintf(type, sizeof(type), "name");
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
		   "a list key's values write their elements separated by blanks: 0.08 1.0, 0.3 1.0).\n"
		   "[variant NAME] sections hold `section.key = value` lines that together make one\n"
		   "variant; `experiment.variant = a, b, ...` in [sweep] runs each (the variant's keys\n"
		   "applied to the base, then the other axes). One value of experiment.variant\n"
		   "may name no section: it stands for the base config unchanged.\n");
}
