/*
 * filter.c — the filters of ListRequest: terms joined by `and`, each
 * `key op value`.
 *
 *   status = completed and config.model.predictor_norm = 'none'
 *   config.data.shard_size <= 32 and final.probe_acc > 0.7
 *
 * Keys: id, experiment, name, status, config.<section>.<key> (the run's
 * canonical config) and final.<key> (its final metrics). Operators: = (or ==),
 * !=, <, <=, >, >=. Values: a number, a bare word, or text in '' or "". A number
 * in the run compares as a number; text as text; a list as its elements joined
 * by ", ". A run without the key never matches.
 */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "byold.h"

#define MAX_TERMS 16
#define TEXT_LEN 256

typedef enum { OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE } fop_kind;
typedef enum { K_ID, K_EXPERIMENT, K_NAME, K_STATUS, K_CONFIG, K_FINAL } key_kind;

typedef struct {
	key_kind kind;
	char path[2][64];               /* config: section, key; final: key */
	fop_kind op;
	char value[TEXT_LEN];
	int is_num;
	double num;
} term;

struct run_filter {
	term t[MAX_TERMS];
	int n;
};

static const char *skip(const char *p)
{
	while (isspace((unsigned char)*p))
		p++;
	return p;
}

/* 1 when section.key is a key of the experiment config. */
static int config_has(const char *section, const char *key)
{
	experiment_config *c = malloc(sizeof(*c));
	if (!c)
		return 1;
	config_defaults(c);
	char *j = config_to_json(c);
	free(c);
	cJSON *o = j ? cJSON_Parse(j) : NULL;
	free(j);
	int has = !o || cJSON_GetObjectItemCaseSensitive(
				cJSON_GetObjectItemCaseSensitive(o, section), key) != NULL;
	cJSON_Delete(o);
	return has;
}

static int parse_key(term *t, const char *key, char *err)
{
	if (!strcmp(key, "id"))
		t->kind = K_ID;
	else if (!strcmp(key, "experiment"))
		t->kind = K_EXPERIMENT;
	else if (!strcmp(key, "name"))
		t->kind = K_NAME;
	else if (!strcmp(key, "status"))
		t->kind = K_STATUS;
	else if (!strncmp(key, "config.", 7)) {
		const char *dot = strchr(key + 7, '.');
		if (!dot || dot == key + 7 || !dot[1] || strchr(dot + 1, '.') ||
		    dot - (key + 7) >= 64 || strlen(dot + 1) >= 64)
			return byol_err(err, -EINVAL, "filter: '%s': expected config.<section>.<key>",
					key);
		t->kind = K_CONFIG;
		snprintf(t->path[0], 64, "%.*s", (int)(dot - (key + 7)), key + 7);
		snprintf(t->path[1], 64, "%s", dot + 1);
		if (!config_has(t->path[0], t->path[1]))
			return byol_err(err, -EINVAL, "filter: '%s': no such experiment key", key);
	} else if (!strncmp(key, "final.", 6) && key[6] && strlen(key + 6) < 64) {
		t->kind = K_FINAL;
		snprintf(t->path[0], 64, "%s", key + 6);
	} else {
		return byol_err(err, -EINVAL, "filter: unknown key '%s' (id, experiment, name, "
				"status, config.<section>.<key>, final.<key>)", key);
	}
	return 0;
}

int filter_parse(const char *text, run_filter **out, char *err)
{
	*out = NULL;
	const char *p = skip(text);
	if (!*p)
		return 0;
	run_filter *f = calloc(1, sizeof(*f));
	if (!f)
		return byol_err(err, -ENOMEM, "out of memory");
	for (;;) {
		if (f->n == MAX_TERMS) {
			free(f);
			return byol_err(err, -EINVAL, "filter: more than %d terms", MAX_TERMS);
		}
		term *t = &f->t[f->n];
		char key[160];
		size_t k = 0;
		p = skip(p);
		while ((isalnum((unsigned char)*p) || *p == '_' || *p == '.') && k < sizeof(key) - 1)
			key[k++] = *p++;
		key[k] = '\0';
		if (!k) {
			free(f);
			return byol_err(err, -EINVAL, "filter: expected a key at '%.20s'", p);
		}
		if (parse_key(t, key, err) < 0) {
			free(f);
			return -EINVAL;
		}
		p = skip(p);
		if (!strncmp(p, "==", 2)) { t->op = OP_EQ; p += 2; }
		else if (!strncmp(p, "!=", 2)) { t->op = OP_NE; p += 2; }
		else if (!strncmp(p, "<=", 2)) { t->op = OP_LE; p += 2; }
		else if (!strncmp(p, ">=", 2)) { t->op = OP_GE; p += 2; }
		else if (*p == '=') { t->op = OP_EQ; p++; }
		else if (*p == '<') { t->op = OP_LT; p++; }
		else if (*p == '>') { t->op = OP_GT; p++; }
		else {
			free(f);
			return byol_err(err, -EINVAL, "filter: expected an operator after '%s'", key);
		}
		p = skip(p);
		size_t v = 0;
		if (*p == '\'' || *p == '"') {
			char q = *p++;
			while (*p && *p != q && v < TEXT_LEN - 1)
				t->value[v++] = *p++;
			if (*p != q) {
				free(f);
				return byol_err(err, -EINVAL, "filter: unterminated text after '%s'", key);
			}
			p++;
		} else {
			while (*p && !isspace((unsigned char)*p) && v < TEXT_LEN - 1)
				t->value[v++] = *p++;
			if (!v) {
				free(f);
				return byol_err(err, -EINVAL, "filter: expected a value after '%s'", key);
			}
		}
		t->value[v] = '\0';
		char *end;
		t->num = strtod(t->value, &end);
		t->is_num = v && !*end && isfinite(t->num);
		f->n++;
		p = skip(p);
		if (!*p)
			break;
		if (strncasecmp(p, "and", 3) != 0 || !isspace((unsigned char)p[3])) {
			free(f);
			return byol_err(err, -EINVAL, "filter: expected 'and' at '%.20s'", p);
		}
		p += 3;
	}
	*out = f;
	return 0;
}

static int cmp_result(int c, fop_kind op)
{
	switch (op) {
	case OP_EQ: return c == 0;
	case OP_NE: return c != 0;
	case OP_LT: return c < 0;
	case OP_LE: return c <= 0;
	case OP_GT: return c > 0;
	case OP_GE: return c >= 0;
	}
	return 0;
}

static int cmp_num(double a, const term *t)
{
	if (!t->is_num)
		return 0;
	return cmp_result(a < t->num ? -1 : a > t->num ? 1 : 0, t->op);
}

static int cmp_text(const char *a, const term *t)
{
	return cmp_result(strcmp(a, t->value), t->op);
}

static int cmp_json(const cJSON *x, const term *t)
{
	if (!x || cJSON_IsNull(x))
		return 0;
	if (cJSON_IsNumber(x))
		return cmp_num(x->valuedouble, t);
	if (cJSON_IsString(x))
		return cmp_text(x->valuestring, t);
	if (cJSON_IsBool(x))
		return cmp_text(cJSON_IsTrue(x) ? "true" : "false", t);
	if (cJSON_IsArray(x)) {
		char buf[TEXT_LEN * 2] = "";
		size_t len = 0;
		const cJSON *el;
		cJSON_ArrayForEach(el, x) {
			char one[64];
			if (cJSON_IsNumber(el))
				snprintf(one, sizeof(one), "%.9g", el->valuedouble);
			else
				snprintf(one, sizeof(one), "%s",
					 cJSON_IsString(el) ? el->valuestring : "?");
			len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s",
						len ? ", " : "", one);
			if (len >= sizeof(buf))
				return 0;
		}
		return cmp_text(buf, t);
	}
	return 0;
}

int filter_match(const run_filter *f, const store_run *r)
{
	cJSON *cfg = NULL, *fin = NULL;
	int ok = 1;
	for (int i = 0; ok && i < f->n; i++) {
		const term *t = &f->t[i];
		switch (t->kind) {
		case K_ID: ok = cmp_num((double)r->id, t); break;
		case K_EXPERIMENT: ok = cmp_num((double)r->experiment_id, t); break;
		case K_NAME: ok = cmp_text(r->name, t); break;
		case K_STATUS: ok = cmp_text(store_status_name(r->status), t); break;
		case K_CONFIG:
			if (!cfg && r->config_json)
				cfg = cJSON_Parse(r->config_json);
			ok = cmp_json(cJSON_GetObjectItemCaseSensitive(
					      cJSON_GetObjectItemCaseSensitive(cfg, t->path[0]),
					      t->path[1]), t);
			break;
		case K_FINAL:
			if (!fin && r->final_json)
				fin = cJSON_Parse(r->final_json);
			ok = cmp_json(cJSON_GetObjectItemCaseSensitive(fin, t->path[0]), t);
			break;
		}
	}
	cJSON_Delete(cfg);
	cJSON_Delete(fin);
	return ok;
}

void filter_free(run_filter *f)
{
	free(f);
}
