/*
 * history_keys.c — the keys a history term may name and how their values
 * read (daemon/history.c compiles the terms). A key is one of the run's own
 * columns (a fixed SQL fragment), a key of the experiment config (checked
 * against the config table, through the canonical JSON of the defaults), or a
 * final metric (the names run.c writes into runs.final_json, or final.<name>
 * for any other). An unknown key is answered with the nearest known one.
 */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "byold.h"
#include "history_internal.h"

/* The run's own columns: each key is a fixed SQL fragment. */
static const struct {
	const char *name, *sql;
	key_type type;
	int nullable;
} columns[] = {
	{ "id", "r.id", K_INT, 0 },
	{ "experiment", "e.name", K_TEXT, 0 },
	{ "experiment_id", "r.experiment_id", K_INT, 0 },
	{ "name", "r.name", K_TEXT, 0 },
	{ "status", "r.status", K_STATUS, 0 },
	{ "seed", "r.seed", K_INT, 0 },
	{ "step", "r.step", K_INT, 0 },
	{ "total_steps", "r.total_steps", K_INT, 0 },
	{ "created", "r.created_ms", K_TIME, 0 },
	{ "started", "r.started_ms", K_TIME, 1 },
	{ "finished", "r.finished_ms", K_TIME, 1 },
};
#define N_COLUMNS ((int)(sizeof(columns) / sizeof(columns[0])))

/* The final metrics the daemon writes into runs.final_json (run.c: complete). */
static const struct {
	const char *name;
	key_type type;
} metrics[] = {
	{ "probe_acc", K_NUM }, { "knn_acc", K_NUM }, { "final_loss", K_NUM },
	{ "collapse", K_NUM }, { "img_per_s", K_NUM }, { "train_seconds", K_NUM },
	{ "steps", K_NUM }, { "checkpoint", K_TEXT },
};
#define N_METRICS ((int)(sizeof(metrics) / sizeof(metrics[0])))

/* ---- the experiment config's keys, from the canonical JSON of the defaults ---- */

typedef struct {
	char name[KEY_LEN];             /* "model.predictor_norm" */
	key_type type;
} config_key;

static config_key *cfg_keys;
static int n_cfg_keys;
static pthread_once_t cfg_once = PTHREAD_ONCE_INIT;

static void load_config_keys(void)
{
	experiment_config *c = malloc(sizeof(*c));
	if (!c)
		return;
	config_defaults(c);
	char *j = config_to_json(c);
	free(c);
	cJSON *o = j ? cJSON_Parse(j) : NULL;
	free(j);
	int n = 0;
	const cJSON *sec, *k;
	cJSON_ArrayForEach(sec, o)
		n += cJSON_GetArraySize(sec);
	cfg_keys = calloc((size_t)(n ? n : 1), sizeof(*cfg_keys));
	cJSON_ArrayForEach(sec, o) {
		cJSON_ArrayForEach(k, sec) {
			if (!cfg_keys || n_cfg_keys == n)
				break;
			config_key *ck = &cfg_keys[n_cfg_keys];
			if (snprintf(ck->name, sizeof(ck->name), "%s.%s", sec->string, k->string) >=
			    (int)sizeof(ck->name))
				continue;
			ck->type = cJSON_IsNumber(k) ? K_NUM : cJSON_IsBool(k) ? K_BOOL
				   : cJSON_IsArray(k) ? K_LIST : K_TEXT;
			n_cfg_keys++;
		}
	}
	cJSON_Delete(o);
}

static const config_key *find_config_key(const char *name)
{
	pthread_once(&cfg_once, load_config_keys);
	for (int i = 0; i < n_cfg_keys; i++)
		if (strcmp(cfg_keys[i].name, name) == 0)
			return &cfg_keys[i];
	return NULL;
}

/* ---- keys ---- */

static int is_ident(const char *s)
{
	if (!isalpha((unsigned char)*s) && *s != '_')
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_')
			return 0;
	return 1;
}

static int edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	int row[KEY_LEN + 1];
	if (la > KEY_LEN || lb > KEY_LEN)
		return 1000;
	for (size_t j = 0; j <= lb; j++)
		row[j] = (int)j;
	for (size_t i = 1; i <= la; i++) {
		int diag = row[0];
		row[0] = (int)i;
		for (size_t j = 1; j <= lb; j++) {
			int up = row[j];
			int best = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

static void consider(const char *typed, const char *cand, const char **best, int *best_d)
{
	int d = edit_distance(typed, cand);
	if (d < *best_d) {
		*best_d = d;
		*best = cand;
	}
}

/* The known key nearest to `typed` (a typo, or a config key without its
 * section), or NULL. */
static const char *suggest_key(const char *typed)
{
	const char *best = NULL;
	int best_d = 1000;
	pthread_once(&cfg_once, load_config_keys);
	for (int i = 0; i < n_cfg_keys; i++) {
		const char *dot = strchr(cfg_keys[i].name, '.');
		if (!strchr(typed, '.') && dot && strcmp(dot + 1, typed) == 0)
			return cfg_keys[i].name;
		consider(typed, cfg_keys[i].name, &best, &best_d);
	}
	for (int i = 0; i < N_COLUMNS; i++)
		consider(typed, columns[i].name, &best, &best_d);
	for (int i = 0; i < N_METRICS; i++)
		consider(typed, metrics[i].name, &best, &best_d);
	int len = (int)strlen(typed);
	return best_d <= (len < 8 ? 1 : len < 16 ? 2 : 3) ? best : NULL;
}

static int unknown_key(const char *key, char *why)
{
	const char *s = suggest_key(key);
	if (s)
		snprintf(why, WHY_LEN, "unknown key '%s', did you mean %s?", key, s);
	else
		snprintf(why, WHY_LEN, "unknown key '%s': keys are id, experiment, name, status, "
			 "seed, created, started, finished, config keys section.key, and final "
			 "metrics such as probe_acc", key);
	return -EINVAL;
}

int history_key_resolve(const char *key, key_info *k, char *why)
{
	memset(k, 0, sizeof(*k));
	snprintf(k->name, sizeof(k->name), "%s", key);
	for (int i = 0; i < N_COLUMNS; i++)
		if (strcmp(key, columns[i].name) == 0) {
			k->src = SRC_COLUMN;
			k->type = columns[i].type;
			k->sql = columns[i].sql;
			k->nullable = columns[i].nullable;
			return 0;
		}
	const char *metric = strncmp(key, "final.", 6) == 0 ? key + 6 : key;
	for (int i = 0; i < N_METRICS; i++)
		if (strcmp(metric, metrics[i].name) == 0) {
			k->src = SRC_FINAL;
			k->type = metrics[i].type;
			k->nullable = 1;
			snprintf(k->name, sizeof(k->name), "%s", metric);
			snprintf(k->path, sizeof(k->path), "$.%s", metric);
			return 0;
		}
	if (metric != key) {
		if (!is_ident(metric)) {
			snprintf(why, WHY_LEN, "'%s': a final metric is final.<name>, the name made "
				 "of letters, digits and _", key);
			return -EINVAL;
		}
		k->src = SRC_FINAL;
		k->type = K_ANY;
		k->nullable = 1;
		snprintf(k->path, sizeof(k->path), "$.%s", metric);
		return 0;
	}
	const char *ck = strncmp(key, "config.", 7) == 0 ? key + 7 : key;
	const config_key *c = find_config_key(ck);
	if (!c)
		return unknown_key(ck, why);
	k->src = SRC_CONFIG;
	k->type = c->type;
	k->nullable = 1;
	snprintf(k->name, sizeof(k->name), "%s", c->name);
	snprintf(k->path, sizeof(k->path), "$.%s", c->name);
	return 0;
}

/* An enum or text config value checked against the config table (a typo in
 * `model.predictor_norm = bnn` is an error, not an empty answer). */
int history_config_value_ok(const key_info *k, const char *value, char *why)
{
	experiment_config *c = malloc(sizeof(*c));
	char set[KEY_LEN + VALUE_LEN + 2], e[BYOL_ERR_LEN];
	if (!c)
		return 0;
	config_defaults(c);
	snprintf(set, sizeof(set), "%s=%s", k->name, value);
	int rc = config_set(c, set, e);
	free(c);
	if (rc == 0)
		return 0;
	/* "--set: [model] predictor_norm: 'bnn' is not one of ..." -> after "key: " */
	const char *dot = strchr(k->name, '.');
	char tail[KEY_LEN + 4];
	snprintf(tail, sizeof(tail), "] %s: ", dot ? dot + 1 : k->name);
	const char *t = strstr(e, tail);
	snprintf(why, WHY_LEN, "%s: %.200s", k->name, t ? t + strlen(tail) : e);
	return -EINVAL;
}

/* ---- values ---- */

int history_parse_number(const char *s, double *out, int *is_int, int64_t *i)
{
	const char *p = s;
	if (*p == '+' || *p == '-')
		p++;
	if (!isdigit((unsigned char)*p) && !(*p == '.' && isdigit((unsigned char)p[1])))
		return -1;
	if (strpbrk(s, "xXpP"))
		return -1;              /* no hexadecimal */
	char *end;
	double v = strtod(s, &end);
	if (*end || !isfinite(v))
		return -1;
	*out = v;
	*is_int = 0;
	if (!strpbrk(s, ".eE")) {
		errno = 0;
		long long ll = strtoll(s, &end, 10);
		if (!*end && errno == 0) {
			*is_int = 1;
			*i = ll;
		}
	}
	return 0;
}

static int digits(const char **p, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++, (*p)++) {
		if (!isdigit((unsigned char)**p))
			return -1;
		v = v * 10 + (**p - '0');
	}
	*out = v;
	return 0;
}

/* An ISO date (UTC unless it says otherwise) or unix seconds, as the period
 * [*lo, *hi) in unix milliseconds. */
int history_parse_time(const char *s, int64_t *lo, int64_t *hi)
{
	double secs;
	int is_int;
	int64_t ll;
	if (!strchr(s, '-') || s[0] == '-' || s[0] == '+') {
		if (history_parse_number(s, &secs, &is_int, &ll) < 0 || fabs(secs) > 1e14)
			return -1;
		*lo = is_int ? ll * 1000 : (int64_t)llround(secs * 1000);
		*hi = *lo + (is_int ? 1000 : 1);
		return 0;
	}
	const char *p = s;
	int y, mo, d, h = 0, mi = 0, sec = 0;
	int64_t period = 86400000;
	if (digits(&p, 4, &y) < 0 || *p++ != '-' || digits(&p, 2, &mo) < 0 || *p++ != '-' ||
	    digits(&p, 2, &d) < 0)
		return -1;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		p++;
		if (digits(&p, 2, &h) < 0)
			return -1;
		period = 3600000;
		if (*p == ':') {
			p++;
			if (digits(&p, 2, &mi) < 0)
				return -1;
			period = 60000;
			if (*p == ':') {
				p++;
				if (digits(&p, 2, &sec) < 0)
					return -1;
				period = 1000;
			}
		}
	}
	int64_t offset_s = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
		if (digits(&p, 2, &oh) < 0)
			return -1;
		if (*p == ':')
			p++;
		if (*p && digits(&p, 2, &om) < 0)
			return -1;
		if (oh > 23 || om > 59)
			return -1;
		offset_s = sign * (oh * 3600 + om * 60);
	}
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (*p || y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
	    (mo == 2 && d == 29 && !leap) || h > 23 || mi > 59 || sec > 59)
		return -1;
	struct tm tm = { .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
			 .tm_min = mi, .tm_sec = sec };
	*lo = ((int64_t)timegm(&tm) - offset_s) * 1000;
	*hi = *lo + period;
	return 0;
}

int history_parse_bool(const char *s, int *out)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };
	for (int i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0)
			return *out = 1, 0;
		if (strcasecmp(s, no[i]) == 0)
			return *out = 0, 0;
	}
	return -1;
}

/* "1024, 1024, 512", "1024,1024,512" or "[1024, 1024, 512]" into v[0..*n). */
int history_parse_list(const char *s, double *v, int *n, int max)
{
	char buf[VALUE_LEN];
	snprintf(buf, sizeof(buf), "%s", s);
	char *p = buf, *end = buf + strlen(buf);
	while (p < end && isspace((unsigned char)*p))
		p++;
	while (end > p && isspace((unsigned char)end[-1]))
		end--;
	if (p < end && *p == '[') {
		if (end[-1] != ']')
			return -1;
		p++;
		end--;
	}
	*end = '\0';
	*n = 0;
	for (char *save = NULL, *tok = strtok_r(p, ", \t", &save); tok;
	     tok = strtok_r(NULL, ", \t", &save)) {
		int is_int;
		int64_t ll;
		if (*n == max || history_parse_number(tok, &v[*n], &is_int, &ll) < 0)
			return -1;
		(*n)++;
	}
	return *n ? 0 : -1;
}
