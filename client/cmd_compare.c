/*
 * cmd_compare.c — byolctl compare: runs side by side. Rows come from the
 * daemon's history (HistoryRequest `id = N` for a run, `experiment = 'NAME'`
 * for every run of an experiment); the table shows only the config keys whose
 * values differ between the runs, then the final metrics.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"

#define CELL_MAX 40             /* wider values are cut, with "..." */

static const char *const final_keys[] = {
	"probe_acc", "knn_acc", "collapse", "final_loss", "steps",
};
#define N_FINAL ((int)(sizeof(final_keys) / sizeof(final_keys[0])))

typedef struct {
	uint64_t id;
	char *name, *experiment, *status;
	cJSON *config;          /* flattened: {"section.key": value} */
	cJSON *final;           /* the final metrics object ({} when none) */
	double wall_s;          /* started -> finished; -1 unknown */
} run_row;

typedef struct {
	run_row *rows;
	int n, cap;
} run_set;

static void set_free(run_set *s)
{
	for (int i = 0; i < s->n; i++) {
		free(s->rows[i].name);
		free(s->rows[i].experiment);
		free(s->rows[i].status);
		cJSON_Delete(s->rows[i].config);
		cJSON_Delete(s->rows[i].final);
	}
	free(s->rows);
}

/* {"a": {"b": 1}} -> {"a.b": 1} into out (values copied). */
static int flatten(const cJSON *o, const char *prefix, cJSON *out)
{
	for (const cJSON *it = o ? o->child : NULL; it; it = it->next) {
		char key[256];
		snprintf(key, sizeof(key), "%s%s%s", prefix, prefix[0] ? "." : "", it->string);
		if (cJSON_IsObject(it)) {
			if (flatten(it, key, out) < 0)
				return -1;
		} else {
			cJSON *dup = cJSON_Duplicate(it, 1);
			if (!dup || !cJSON_AddItemToObject(out, key, dup)) {
				cJSON_Delete(dup);
				return -1;
			}
		}
	}
	return 0;
}

static int seen(const run_set *s, uint64_t id)
{
	for (int i = 0; i < s->n; i++)
		if (s->rows[i].id == id)
			return 1;
	return 0;
}

static int add_row(run_set *s, const Byol__RunStatus *rs)
{
	if (seen(s, rs->run_id))
		return 0;
	if (s->n == s->cap) {
		int cap = s->cap ? 2 * s->cap : 8;
		run_row *p = realloc(s->rows, (size_t)cap * sizeof(*p));
		if (!p)
			return -1;
		s->rows = p;
		s->cap = cap;
	}
	run_row *r = &s->rows[s->n];
	memset(r, 0, sizeof(*r));
	r->id = rs->run_id;
	r->name = strdup(rs->name ? rs->name : "");
	r->experiment = strdup(rs->experiment ? rs->experiment : "");
	r->status = strdup(rs->status ? rs->status : "");
	r->config = cJSON_CreateObject();
	cJSON *cfg = rs->config_json ? cJSON_Parse(rs->config_json) : NULL;
	r->final = rs->final_json && rs->final_json[0] ? cJSON_Parse(rs->final_json) : NULL;
	if (!r->final)
		r->final = cJSON_CreateObject();
	int bad = !r->name || !r->experiment || !r->status || !r->config || !r->final ||
		  flatten(cfg, "", r->config) < 0;
	cJSON_Delete(cfg);
	r->wall_s = rs->started_unix_ms > 0 && rs->finished_unix_ms >= rs->started_unix_ms
			    ? (double)(rs->finished_unix_ms - rs->started_unix_ms) / 1000.0 : -1;
	s->n++;                 /* freed with the set even when incomplete */
	return bad ? -1 : 0;
}

/* The runs matching `where` (HistoryRequest), oldest first, into s. Returns the
 * number found, or -1 with the exit status in *ex. */
static int query(rpc *r, const char *where, run_set *s, int *ex)
{
	Byol__HistoryRequest q = BYOL__HISTORY_REQUEST__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT, *rep;
	char *w = (char *)where;
	q.where = &w;
	q.n_where = 1;
	q.order = "id";
	q.limit = 10000;
	e.msg_case = BYOL__ENVELOPE__MSG_HISTORY_REQUEST;
	e.history_request = &q;
	if ((*ex = cli_call(r, &e, &rep, BYOL__ENVELOPE__MSG_LIST_REPLY, NULL)) != EX_OK)
		return -1;
	for (size_t i = 0; i < rep->list_reply->n_runs; i++)
		if (add_row(s, rep->list_reply->runs[i]) < 0) {
			fprintf(stderr, "byolctl compare: out of memory\n");
			*ex = EX_NO;
			return -1;
		}
	return (int)rep->list_reply->n_runs;
}

static int all_digits(const char *a)
{
	if (!*a)
		return 0;
	for (; *a; a++)
		if (!isdigit((unsigned char)*a))
			return 0;
	return 1;
}

/* `experiment = 'NAME'` with ' and \ escaped. */
static char *experiment_term(const char *name)
{
	size_t n = strlen(name);
	char *t = malloc(2 * n + 32);
	if (!t)
		return NULL;
	char *p = t + sprintf(t, "experiment = '");
	for (; *name; name++) {
		if (*name == '\'' || *name == '\\')
			*p++ = '\\';
		*p++ = *name;
	}
	strcpy(p, "'");
	return t;
}

/* Keys in any run's config whose values are not the same in all (a key some
 * run lacks differs), in the order first seen. */
static cJSON *differing_keys(const run_set *s)
{
	cJSON *keys = cJSON_CreateArray();
	for (int i = 0; keys && i < s->n; i++)
		for (const cJSON *it = s->rows[i].config->child; it; it = it->next) {
			int known = 0;
			for (const cJSON *k = keys->child; k && !known; k = k->next)
				known = strcmp(k->valuestring, it->string) == 0;
			int differs = 0;
			for (int j = 0; j < s->n && !known && !differs; j++) {
				const cJSON *o = cJSON_GetObjectItemCaseSensitive(s->rows[j].config,
										  it->string);
				differs = !o || !cJSON_Compare(o, it, 1);
			}
			if (differs)
				cJSON_AddItemToArray(keys, cJSON_CreateString(it->string));
		}
	return keys;
}

/* The text of a JSON value for the table ("-" when missing or null). */
static void cell(const cJSON *v, char *buf, size_t n)
{
	if (!v || cJSON_IsNull(v)) {
		snprintf(buf, n, "-");
	} else if (cJSON_IsString(v)) {
		snprintf(buf, n, "%s", v->valuestring);
	} else if (cJSON_IsNumber(v)) {
		double x = v->valuedouble;
		if (x == floor(x) && fabs(x) < 1e15)
			snprintf(buf, n, "%.0f", x);
		else
			snprintf(buf, n, "%.4g", x);
	} else {
		char *t = cJSON_PrintUnformatted(v);
		snprintf(buf, n, "%s", t ? t : "?");
		free(t);
	}
	if (strlen(buf) > CELL_MAX)
		strcpy(buf + CELL_MAX - 3, "...");
}

static void wall_text(double s, char *buf, size_t n)
{
	if (s < 0)
		snprintf(buf, n, "-");
	else if (s < 120)
		snprintf(buf, n, "%.1f s", s);
	else if (s < 7200)
		snprintf(buf, n, "%dm %02ds", (int)(s / 60), (int)fmod(s, 60));
	else
		snprintf(buf, n, "%dh %02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
}

typedef struct {
	int key_w, col_w;
} widths;

static void print_line(const widths *w, const char *key, char cells[][CELL_MAX + 1], int n)
{
	printf("%-*s", w->key_w, key);
	for (int i = 0; i < n; i++)
		printf("  %-*s", i + 1 < n ? w->col_w : 0, cells[i]);
	printf("\n");
}

static int print_table(const run_set *s, const cJSON *keys)
{
	char (*cells)[CELL_MAX + 1] = calloc((size_t)s->n, sizeof(*cells));
	if (!cells)
		return -1;
	widths w = {9, 8};
	for (const cJSON *k = keys->child; k; k = k->next)
		if ((int)strlen(k->valuestring) > w.key_w)
			w.key_w = (int)strlen(k->valuestring);
	/* column width: the widest cell of any row */
	for (int i = 0; i < s->n; i++) {
		const run_row *r = &s->rows[i];
		char b[CELL_MAX + 1];
		int m = (int)strlen(r->name);
		for (const cJSON *k = keys->child; k; k = k->next) {
			cell(cJSON_GetObjectItemCaseSensitive(r->config, k->valuestring), b, sizeof(b));
			if ((int)strlen(b) > m)
				m = (int)strlen(b);
		}
		if ((int)strlen(r->experiment) > m)
			m = (int)strlen(r->experiment);
		if (m > w.col_w)
			w.col_w = m > CELL_MAX ? CELL_MAX : m;
	}
	for (int i = 0; i < s->n; i++)
		snprintf(cells[i], CELL_MAX + 1, "run %llu", (unsigned long long)s->rows[i].id);
	print_line(&w, "", cells, s->n);
	for (int i = 0; i < s->n; i++)
		snprintf(cells[i], CELL_MAX + 1, "%.*s", CELL_MAX, s->rows[i].name);
	print_line(&w, "name", cells, s->n);
	for (int i = 0; i < s->n; i++)
		snprintf(cells[i], CELL_MAX + 1, "%.*s", CELL_MAX, s->rows[i].experiment);
	print_line(&w, "experiment", cells, s->n);
	for (int i = 0; i < s->n; i++)
		snprintf(cells[i], CELL_MAX + 1, "%.*s", CELL_MAX, s->rows[i].status);
	print_line(&w, "status", cells, s->n);
	printf("-- config: %s\n", keys->child ? "keys that differ"
					      : s->n > 1 ? "no key differs" : "one run");
	for (const cJSON *k = keys->child; k; k = k->next) {
		for (int i = 0; i < s->n; i++)
			cell(cJSON_GetObjectItemCaseSensitive(s->rows[i].config, k->valuestring),
			     cells[i], CELL_MAX + 1);
		print_line(&w, k->valuestring, cells, s->n);
	}
	printf("-- final\n");
	for (int f = 0; f < N_FINAL; f++) {
		for (int i = 0; i < s->n; i++)
			cell(cJSON_GetObjectItemCaseSensitive(s->rows[i].final, final_keys[f]),
			     cells[i], CELL_MAX + 1);
		print_line(&w, final_keys[f], cells, s->n);
	}
	for (int i = 0; i < s->n; i++)
		wall_text(s->rows[i].wall_s, cells[i], CELL_MAX + 1);
	print_line(&w, "wall time", cells, s->n);
	free(cells);
	return 0;
}

static int print_json(const run_set *s, cJSON *keys)
{
	cJSON *o = cJSON_CreateObject(), *runs = cJSON_AddArrayToObject(o, "runs");
	if (!o || !runs) {
		cJSON_Delete(o);
		return -1;
	}
	for (int i = 0; i < s->n; i++) {
		const run_row *r = &s->rows[i];
		cJSON *j = cJSON_CreateObject(), *cfg = cJSON_CreateObject();
		if (!j || !cfg) {
			cJSON_Delete(j);
			cJSON_Delete(cfg);
			cJSON_Delete(o);
			return -1;
		}
		cJSON_AddNumberToObject(j, "run_id", (double)r->id);
		cJSON_AddStringToObject(j, "name", r->name);
		cJSON_AddStringToObject(j, "experiment", r->experiment);
		cJSON_AddStringToObject(j, "status", r->status);
		for (const cJSON *k = keys->child; k; k = k->next) {
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->config, k->valuestring);
			cJSON_AddItemToObject(cfg, k->valuestring,
					      v ? cJSON_Duplicate(v, 1) : cJSON_CreateNull());
		}
		cJSON_AddItemToObject(j, "config", cfg);
		cJSON_AddItemToObject(j, "final", cJSON_Duplicate(r->final, 1));
		if (r->wall_s >= 0)
			cJSON_AddNumberToObject(j, "wall_s", r->wall_s);
		else
			cJSON_AddNullToObject(j, "wall_s");
		cJSON_AddItemToArray(runs, j);
	}
	cJSON_AddItemToObject(o, "differing_keys", cJSON_Duplicate(keys, 1));
	char *txt = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!txt)
		return -1;
	printf("%s\n", txt);
	free(txt);
	return 0;
}

static int compare_main(const target *t, int argc, char **argv)
{
	int json = t->json, n_args = 0;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (argv[i][0] == '-')
			return cli_bad_usage(&cmd_compare, argv[i]);
		else
			n_args++;
	}
	if (!n_args) {
		fprintf(stderr, "byolctl compare: expected run ids or an experiment name\n");
		return cli_bad_usage(&cmd_compare, NULL);
	}
	rpc *r;
	int ex = cli_connect(t, &r);
	if (ex != EX_OK)
		return ex;
	run_set s = {0};
	for (int i = 0; i < argc && ex == EX_OK; i++) {
		const char *a = argv[i];
		if (a[0] == '-')
			continue;
		uint64_t id;
		char term[64];
		char *where = NULL;
		if (all_digits(a)) {
			if (cli_parse_id(a, &id) < 0) {
				fprintf(stderr, "byolctl compare: '%s' is not a run id\n", a);
				ex = EX_NO;
				break;
			}
			snprintf(term, sizeof(term), "id = %llu", (unsigned long long)id);
		} else if (!(where = experiment_term(a))) {
			ex = EX_NO;
			break;
		}
		int found = query(r, where ? where : term, &s, &ex);
		free(where);
		if (found == 0) {
			if (all_digits(a))
				fprintf(stderr, "byolctl compare: byold has no run %s\n", a);
			else
				fprintf(stderr, "byolctl compare: byold has no experiment named '%s'\n",
					a);
			ex = EX_NO;
		}
	}
	rpc_close(r);
	if (ex == EX_OK) {
		cJSON *keys = differing_keys(&s);
		if (!keys || (json ? print_json(&s, keys) : print_table(&s, keys)) < 0) {
			fprintf(stderr, "byolctl compare: out of memory\n");
			ex = EX_NO;
		}
		cJSON_Delete(keys);
	}
	set_free(&s);
	return ex;
}

const cli_command cmd_compare = {
	"compare", compare_main, "compare RUN... | EXPERIMENT... [--json]",
	"Runs side by side: the config keys that differ, then the final metrics.",
	"  RUN          a run id (all digits)\n"
	"  EXPERIMENT   an experiment name: every run of it\n"
	"  --json       {\"runs\": [{run_id, name, experiment, status, config (the keys\n"
	"               that differ), final (the run's final metrics), wall_s}],\n"
	"               \"differing_keys\": [...]}\n",
};
