/*
 * config_sweep.c — the runs of an experiment: the [sweep] axes, the named
 * variants ([variant NAME] sections), the expansion of both into one config
 * per run (config_sweep_get) and the runs' names (config_sweep_names). The INI
 * side of both sections is config.c's; their JSON config_json.c's.
 */
#include "byol/config.h"
#include "byol/error.h"

#include <ctype.h>
#include <stddef.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_internal.h"

/* ---- sweep -------------------------------------------------------------- */

int config_sweep_find(const experiment_config *c, const char *key)
{
	for (int a = 0; a < c->n_sweep; a++)
		if (strcmp(c->sweep[a].key, key) == 0)
			return a;
	return -1;
}

void config_sweep_remove(experiment_config *c, int a)
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

int config_sweep_add(experiment_config *c, const char *key, const char *values, int replace,
		     char *w)
{
	config_sweep_axis ax;
	int rc = sweep_parse(&ax, key, values, w);
	if (rc)
		return rc;
	int a = config_sweep_find(c, ax.key), added = 0;
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

/* ---- variants ----------------------------------------------------------- */

int config_variant_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n >= CONFIG_VARIANT_NAME_LEN)
		return 0;
	for (size_t k = 0; k < n; k++)
		if (!isalnum((unsigned char)s[k]) && !strchr("_-.+", s[k]))
			return 0;
	return 1;
}

int config_variant_axis(const experiment_config *c)
{
	return config_sweep_find(c, "experiment.variant");
}

const config_variant *config_variant_find(const experiment_config *c, const char *name)
{
	for (int v = 0; v < c->n_variants && v < CONFIG_MAX_VARIANTS; v++)
		if (strcmp(c->variants[v].name, name) == 0)
			return &c->variants[v];
	return NULL;
}

int config_variant_add(experiment_config *c, const char *name, char *w)
{
	if (!config_variant_name_ok(name))
		return config_why(w, "'%.80s' is not a variant name (1 to %d letters, digits, '_', "
				  "'-', '.' or '+')", name, CONFIG_VARIANT_NAME_LEN - 1);
	if (config_variant_find(c, name))
		return config_why(w, "variant '%s' given twice", name);
	if (c->n_variants >= CONFIG_MAX_VARIANTS)
		return config_why(w, "more than %d variants", CONFIG_MAX_VARIANTS);
	config_variant *v = &c->variants[c->n_variants];
	memset(v, 0, sizeof(*v));
	snprintf(v->name, sizeof(v->name), "%s", name);
	return c->n_variants++;
}

int config_assignment_check(const char *key, const char *value, char *w)
{
	int i = config_find_dotted(key);
	if (i < 0) {
		const char *dot = strchr(key, '.');
		int known = 0;
		if (dot && dot - key < 32) {
			char sec[32];
			memcpy(sec, key, (size_t)(dot - key));
			sec[dot - key] = '\0';
			known = config_find_section(sec) >= 0;
		}
		return config_why(w, "%.64s: %s (a variant line is section.key = value)", key,
				  !dot ? "not section.key" : known ? "unknown key" : "unknown section");
	}
	const centry *e = &config_entries[i];
	if (strcmp(e->section, "experiment") == 0 &&
	    (strcmp(e->key, "variant") == 0 || strcmp(e->key, "name") == 0))
		return config_why(w, "experiment.%s: a variant may not set it (%s)", e->key,
				  e->key[0] == 'v' ? "the run's variant is the section's name"
						   : "every run of an experiment has its name");
	cvalue v;
	char w2[WHY_LEN];
	if (config_parse_value(e, value, &v, w2) != 0)
		return config_why(w, "%s.%s: %s", e->section, e->key, w2);
	return i;
}

int config_variant_assign(config_variant *v, const char *key, const char *value, char *w)
{
	int i = config_assignment_check(key, value, w);
	if (i < 0)
		return i;
	char dotted[64];
	snprintf(dotted, sizeof(dotted), "%s.%s", config_entries[i].section, config_entries[i].key);
	for (int k = 0; k < v->n; k++)
		if (strcmp(v->set[k].key, dotted) == 0)
			return config_why(w, "%s: set twice", dotted);
	if (v->n >= CONFIG_MAX_VARIANT_KEYS)
		return config_why(w, "%s: more than %d keys in one variant", dotted,
				  CONFIG_MAX_VARIANT_KEYS);
	if (strlen(value) >= CONFIG_STR_LEN)
		return config_why(w, "%s: value longer than %d characters", dotted, CONFIG_STR_LEN - 1);
	config_assignment *a = &v->set[v->n++];
	memset(a, 0, sizeof(*a));
	memcpy(a->key, dotted, strlen(dotted));
	memcpy(a->value, value, strlen(value));
	return 0;
}

int config_variant_sets_swept(const experiment_config *c, int *vi, int *ki, int *axis)
{
	for (int v = 0; v < c->n_variants; v++)
		for (int k = 0; k < c->variants[v].n; k++) {
			int a = config_sweep_find(c, c->variants[v].set[k].key);
			if (a >= 0) {
				*vi = v, *ki = k, *axis = a;
				return 1;
			}
		}
	return 0;
}

int config_variant_two_bases(const experiment_config *c, int *axis, int *first, int *second)
{
	int a = config_variant_axis(c), seen = -1;
	for (int k = 0; a >= 0 && k < c->sweep[a].n; k++) {
		if (config_variant_find(c, c->sweep[a].values[k]))
			continue;
		if (seen >= 0) {
			*axis = a, *first = seen, *second = k;
			return 1;
		}
		seen = k;
	}
	return 0;
}

/* ---- runs --------------------------------------------------------------- */

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

void config_sweep_pick(const experiment_config *c, int i, int pick[CONFIG_MAX_SWEEP])
{
	for (int a = c->n_sweep - 1; a >= 0; a--) {
		pick[a] = i % c->sweep[a].n;
		i /= c->sweep[a].n;
	}
}

static int set_axis(experiment_config *out, const config_sweep_axis *ax, int k, char *err)
{
	int idx = config_find_dotted(ax->key);
	char w[WHY_LEN];
	if (idx < 0)
		return byol_err(err, -EINVAL, "[sweep] %s: unknown key", ax->key);
	if (config_set_entry(out, &config_entries[idx], ax->values[k], w) != 0)
		return byol_err(err, -EINVAL, "[sweep] %s: %s", ax->key, w);
	return 0;
}

static int apply_variant(experiment_config *out, const config_variant *v, char *err)
{
	char w[WHY_LEN];
	if (v->n < 0 || v->n > CONFIG_MAX_VARIANT_KEYS)
		return byol_err(err, -EINVAL, "[variant %s]: %d keys", v->name, v->n);
	for (int k = 0; k < v->n; k++) {
		int idx = config_find_dotted(v->set[k].key);
		if (idx < 0)
			return byol_err(err, -EINVAL, "[variant %s] %s: unknown key", v->name,
					v->set[k].key);
		if (config_set_entry(out, &config_entries[idx], v->set[k].value, w) != 0)
			return byol_err(err, -EINVAL, "[variant %s] %s: %s", v->name, v->set[k].key, w);
	}
	return 0;
}

int config_sweep_get(const experiment_config *base, int i, experiment_config *out, char *err)
{
	int runs = config_sweep_count(base);
	if (i < 0 || i >= runs)
		return byol_err(err, -EINVAL, "sweep run %d out of range [0, %d)", i, runs);
	if (base->n_variants < 0 || base->n_variants > CONFIG_MAX_VARIANTS)
		return byol_err(err, -EINVAL, "%d variants", base->n_variants);
	experiment_config *b = malloc(sizeof(*b));
	if (!b)
		return byol_err(err, -ENOMEM, "out of memory");
	*b = *base;                     /* out may be base */
	*out = *b;
	out->n_sweep = 0;
	memset(out->sweep, 0, sizeof(out->sweep));
	out->n_variants = 0;
	memset(out->variants, 0, sizeof(out->variants));
	int pick[CONFIG_MAX_SWEEP];
	config_sweep_pick(b, i, pick);
	/* the variant first, then the other axes over it */
	int va = config_variant_axis(b), rc = 0;
	if (va >= 0)
		rc = set_axis(out, &b->sweep[va], pick[va], err);
	const config_variant *v = rc == 0 ? config_variant_find(b, out->variant) : NULL;
	if (v)
		rc = apply_variant(out, v, err);
	for (int a = 0; a < b->n_sweep && rc == 0; a++)
		if (a != va)
			rc = set_axis(out, &b->sweep[a], pick[a], err);
	free(b);
	return rc;
}

/* ---- run names ---------------------------------------------------------- */

/* Copies s into out (len bytes), cut at a UTF-8 character boundary. */
static void copy_cut(char *out, size_t len, const char *s)
{
	size_t n = strlen(s);
	if (n >= len) {
		/* back over at most 3 continuation bytes (a character is at most 4
		 * bytes): text that is not UTF-8 is cut where it must be, not to "" */
		n = len - 1;
		for (int k = 0; k < 3 && n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80; k++)
			n--;
	}
	memcpy(out, s, n);
	out[n] = '\0';
}

/* "NAME/i", the name cut to leave room for the index. */
static void index_name(char *out, size_t len, const char *name, int i)
{
	char tail[16];
	int t = snprintf(tail, sizeof(tail), "/%d", i);
	copy_cut(out, len - (size_t)t, name);
	strcat(out, tail);
}

/* The short key of axis a: after the dot, unless another shown axis has it. */
static const char *axis_label(const experiment_config *c, int a)
{
	const char *k = strchr(c->sweep[a].key, '.');
	k = k ? k + 1 : c->sweep[a].key;
	for (int b = 0; b < c->n_sweep; b++) {
		const char *o = strchr(c->sweep[b].key, '.');
		if (b != a && c->sweep[b].n > 1 && o && strcmp(o + 1, k) == 0)
			return c->sweep[a].key;
	}
	return k;
}

/* "NAME/key=value,..." over the axes of more than one value, into full. */
static void axes_name(const experiment_config *c, int i, char *full, size_t size)
{
	int pick[CONFIG_MAX_SWEEP];
	config_sweep_pick(c, i, pick);
	size_t n = (size_t)snprintf(full, size, "%s/", c->name);
	int first = 1;
	for (int a = 0; a < c->n_sweep && n < size; a++) {
		if (c->sweep[a].n < 2)
			continue;
		n += (size_t)snprintf(full + n, size - n, "%s%s=", first ? "" : ",", axis_label(c, a));
		first = 0;
		for (const char *v = c->sweep[a].values[pick[a]]; *v && n + 1 < size; v++) {
			if (isspace((unsigned char)*v)) {
				while (isspace((unsigned char)v[1]))
					v++;
				full[n++] = '_';
			} else {
				full[n++] = *v;
			}
		}
		full[n < size ? n : size - 1] = '\0';
	}
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Renames the runs whose names are equal to "NAME/i": 1 when any were, 0 when
 * all differ, -ENOMEM. */
static int rename_equal(const experiment_config *c, char *names, size_t len, int n, char **sorted)
{
	for (int i = 0; i < n; i++)
		sorted[i] = names + (size_t)i * len;
	qsort(sorted, (size_t)n, sizeof(*sorted), cmp_str);
	int dup = 0;
	for (int i = 0; i + 1 < n; i++)
		if (strcmp(sorted[i], sorted[i + 1]) == 0)
			dup = 1;
	if (!dup)
		return 0;
	/* mark each member of a group of equals, then rename them */
	char *mark = calloc((size_t)n, 1);
	if (!mark)
		return -ENOMEM;
	for (int i = 0; i + 1 < n; i++)
		if (strcmp(sorted[i], sorted[i + 1]) == 0)
			mark[(sorted[i] - names) / (ptrdiff_t)len] =
				mark[(sorted[i + 1] - names) / (ptrdiff_t)len] = 1;
	for (int i = 0; i < n; i++)
		if (mark[i])
			index_name(names + (size_t)i * len, len, c->name, i);
	free(mark);
	return 1;
}

int config_sweep_names(const experiment_config *c, char *names, size_t len, char *err)
{
	int n = config_sweep_count(c);
	if (n < 1)
		return byol_err(err, -EINVAL, "[sweep]: a malformed sweep");
	if (len < 32)
		return byol_err(err, -EINVAL, "run names: %zu bytes is too short", len);
	size_t size = CONFIG_STR_LEN + CONFIG_MAX_SWEEP * (64 + CONFIG_STR_LEN + 2) + 2;
	char *full = malloc(size);
	char **sorted = malloc((size_t)n * sizeof(*sorted));
	if (!full || !sorted) {
		free(full);
		free(sorted);
		return byol_err(err, -ENOMEM, "out of memory for %d run names", n);
	}
	for (int i = 0; i < n; i++) {
		if (n == 1)
			snprintf(full, size, "%s", c->name);
		else
			axes_name(c, i, full, size);
		copy_cut(names + (size_t)i * len, len, full);
	}
	int rc = rename_equal(c, names, len, n, sorted);
	if (rc > 0)             /* the "NAME/i" names cannot be equal: checked */
		rc = rename_equal(c, names, len, n, sorted);
	free(full);
	free(sorted);
	if (rc < 0)
		return byol_err(err, rc, "out of memory for %d run names", n);
	if (rc > 0)
		return byol_err(err, -EINVAL, "run names: two runs of '%s' have the same name",
				c->name);
	return 0;
}
