/*
 * cmd_history.c — byolctl history and list: one HistoryRequest (the daemon
 * compiles its terms into parameterised SQL, daemon/history.c), answered by a
 * ListReply printed as a compact table, or with --json as a JSON array whose
 * objects carry each run's config and final metrics as JSON objects.
 *
 * `list` is history with --status / --experiment made into terms. A where
 * term the daemon refuses is reported with its message ("where 2: 'probe_acc
 * >> 0.8': unknown operator '>>', ... (column 11)") and a caret under the
 * token; the exit status is then 1 (the daemon refused an input).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "cli.h"

#define TIME_LEN 24

typedef struct {
	char **where;                   /* terms, borrowed from argv or owned (owned[]) */
	char **owned;
	size_t n, cap;
	const char *order;
	uint32_t limit;
	int json;
} query;

static void query_free(query *q)
{
	for (size_t i = 0; i < q->n; i++)
		free(q->owned[i]);
	free(q->owned);
	free(q->where);
}

/* Appends a term: borrowed when own is NULL, else own (malloc'd) is kept. */
static int query_add(query *q, char *term, char *own)
{
	if (q->n == q->cap) {
		size_t cap = q->cap * 2 + 4;
		char **w = realloc(q->where, cap * sizeof(*w));
		if (!w)
			return -1;
		q->where = w;
		char **o = realloc(q->owned, cap * sizeof(*o));
		if (!o)
			return -1;
		q->owned = o;
		q->cap = cap;
	}
	q->where[q->n] = own ? own : term;
	q->owned[q->n++] = own;
	return 0;
}

/* `key = "value"`, the value quoted with \ before " and \. */
static int query_add_equal(query *q, const char *key, const char *value)
{
	size_t n = strlen(key) + 2 * strlen(value) + 8;
	char *t = malloc(n), *p = t;
	if (!t)
		return -1;
	p += sprintf(p, "%s = \"", key);
	for (const char *v = value; *v; v++) {
		if (*v == '"' || *v == '\\')
			*p++ = '\\';
		*p++ = *v;
	}
	strcpy(p, "\"");
	if (query_add(q, NULL, t) < 0) {
		free(t);
		return -1;
	}
	return 0;
}

static int parse_limit(const char *s, uint32_t *out)
{
	char *end;
	if (!s || !*s || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (*end || errno || v == 0 || v > UINT32_MAX)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

/* The value of option `name` at argv[*i] ("--name V" or "--name=V"), or NULL
 * when argv[*i] is not that option; *missing is set when it is, without a
 * value (and left alone otherwise). */
static const char *option(char **argv, int argc, int *i, const char *name, int *missing)
{
	size_t len = strlen(name);
	if (strncmp(argv[*i], name, len) != 0)
		return NULL;
	if (argv[*i][len] == '=')
		return argv[*i] + len + 1;
	if (argv[*i][len] != '\0')
		return NULL;
	if (*i + 1 >= argc) {
		*missing = 1;
		return NULL;
	}
	return argv[++*i];
}

/* ---- output ------------------------------------------------------------------- */

/* "2026-11-27T10:00Z" (UTC, the form --where takes), or "-" for 0. */
static const char *utc_minute(int64_t ms, char *buf)
{
	if (ms <= 0)
		return "-";
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	if (!gmtime_r(&t, &tm) || !strftime(buf, TIME_LEN, "%Y-%m-%dT%H:%MZ", &tm))
		return "?";
	return buf;
}

static const char *utc_iso(int64_t ms, char *buf)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	if (!gmtime_r(&t, &tm) || !strftime(buf, TIME_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm))
		return "?";
	return buf;
}

static double final_number(const cJSON *fin, const char *key, int *has)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(fin, key);
	*has = cJSON_IsNumber(x) && isfinite(x->valuedouble);
	return *has ? x->valuedouble : 0;
}

enum { C_ID, C_EXPERIMENT, C_NAME, C_STATUS, C_STEP, C_PROBE, C_KNN, C_COLLAPSE, C_FINISHED,
       N_COLS };
static const char *const headers[N_COLS] = {
	"ID", "EXPERIMENT", "NAME", "STATUS", "STEP", "PROBE", "KNN", "COLLAPSE", "FINISHED",
};
#define CELL_LEN 160

/* The cells of one run's row. */
static void row_cells(const Byol__RunStatus *s, char cell[N_COLS][CELL_LEN])
{
	char t[TIME_LEN];
	int has;
	snprintf(cell[C_ID], CELL_LEN, "%llu", (unsigned long long)s->run_id);
	snprintf(cell[C_EXPERIMENT], CELL_LEN, "%s",
		 s->experiment && s->experiment[0] ? s->experiment : "-");
	snprintf(cell[C_NAME], CELL_LEN, "%s", s->name);
	snprintf(cell[C_STATUS], CELL_LEN, "%s", s->status);
	snprintf(cell[C_STEP], CELL_LEN, "%llu/%llu", (unsigned long long)s->step,
		 (unsigned long long)s->total_steps);
	snprintf(cell[C_PROBE], CELL_LEN, "-");
	snprintf(cell[C_KNN], CELL_LEN, "-");
	snprintf(cell[C_COLLAPSE], CELL_LEN, "-");
	if (isfinite(s->probe_accuracy) && s->probe_accuracy > 0)
		snprintf(cell[C_PROBE], CELL_LEN, "%.4f", s->probe_accuracy);
	if (isfinite(s->knn_accuracy) && s->knn_accuracy > 0)
		snprintf(cell[C_KNN], CELL_LEN, "%.4f", s->knn_accuracy);
	cJSON *fin = s->final_json ? cJSON_Parse(s->final_json) : NULL;
	double collapse = final_number(fin, "collapse", &has);
	cJSON_Delete(fin);
	if (!has && s->step > 0 && isfinite(s->collapse)) {
		collapse = s->collapse;
		has = 1;
	}
	if (has)
		snprintf(cell[C_COLLAPSE], CELL_LEN, "%.3f", collapse);
	snprintf(cell[C_FINISHED], CELL_LEN, "%s", utc_minute(s->finished_unix_ms, t));
}

static int print_table(Byol__RunStatus **runs, size_t n)
{
	char (*cells)[N_COLS][CELL_LEN] = calloc(n ? n : 1, sizeof(*cells));
	int width[N_COLS];
	if (!cells) {
		fprintf(stderr, "byolctl: out of memory for %zu runs\n", n);
		return EX_NO;
	}
	for (int c = 0; c < N_COLS; c++)
		width[c] = (int)strlen(headers[c]);
	for (size_t i = 0; i < n; i++) {
		row_cells(runs[i], cells[i]);
		for (int c = 0; c < N_COLS; c++)
			if ((int)strlen(cells[i][c]) > width[c])
				width[c] = (int)strlen(cells[i][c]);
	}
	for (int c = 0; c < N_COLS; c++)
		printf("%-*s%s", c == N_COLS - 1 ? 0 : width[c], headers[c],
		       c == N_COLS - 1 ? "\n" : "  ");
	for (size_t i = 0; i < n; i++)
		for (int c = 0; c < N_COLS; c++)
			printf("%-*s%s", c == N_COLS - 1 ? 0 : width[c], cells[i][c],
			       c == N_COLS - 1 ? "\n" : "  ");
	free(cells);
	return EX_OK;
}

/* key: the time in ISO form (UTC), or null. */
static void add_time(cJSON *o, const char *key, int64_t ms)
{
	char t[TIME_LEN];
	if (ms > 0)
		cJSON_AddStringToObject(o, key, utc_iso(ms, t));
	else
		cJSON_AddNullToObject(o, key);
}

/* A JSON text from the daemon as a JSON value: {} when empty, null when it
 * does not parse. */
static cJSON *json_object_or_empty(const char *text)
{
	if (!text || !text[0])
		return cJSON_CreateObject();
	cJSON *o = cJSON_Parse(text);
	return o ? o : cJSON_CreateNull();
}

/* The run as `byolctl status --json` shows it, with its times in ISO form,
 * its config and its final metrics. */
static cJSON *run_json(const Byol__RunStatus *s)
{
	cJSON *o = cli_status_json(s);
	if (!o)
		return NULL;
	add_time(o, "created", s->created_unix_ms);
	add_time(o, "started", s->started_unix_ms);
	add_time(o, "finished", s->finished_unix_ms);
	cJSON_AddItemToObject(o, "config", json_object_or_empty(s->config_json));
	cJSON_AddItemToObject(o, "final", json_object_or_empty(s->final_json));
	return o;
}

static int print_json(Byol__RunStatus **runs, size_t n)
{
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; a && i < n; i++) {
		cJSON *o = run_json(runs[i]);
		if (!o) {
			cJSON_Delete(a);
			a = NULL;
			break;
		}
		cJSON_AddItemToArray(a, o);
	}
	char *txt = a ? cJSON_PrintUnformatted(a) : NULL;
	cJSON_Delete(a);
	if (!txt) {
		fprintf(stderr, "byolctl: out of memory for %zu runs\n", n);
		return EX_NO;
	}
	printf("%s\n", txt);
	free(txt);
	return EX_OK;
}

/* ---- the request ---------------------------------------------------------------- */

/* Under a refused "where N: '...': ... (column C)" (or "order: ..."), the
 * term again with a caret at column C. */
static void point_at(const query *q, const char *msg)
{
	const char *text = NULL, *col = strrchr(msg, '(');
	int idx = 0, column = 0;
	if (!col || sscanf(col, "(column %d)", &column) != 1 || column < 1)
		return;
	if (sscanf(msg, "where %d:", &idx) == 1 && idx >= 1 && (size_t)idx <= q->n)
		text = q->where[idx - 1];
	else if (strncmp(msg, "order:", 6) == 0)
		text = q->order;
	if (!text || (size_t)column > strlen(text) + 1)
		return;
	fputs("  ", stderr);
	for (const char *p = text; *p; p++)
		fputc((unsigned char)*p < 0x20 ? ' ' : *p, stderr);
	fprintf(stderr, "\n  %*s^\n", column - 1, "");
}

static int run_query(const target *t, query *q)
{
	Byol__HistoryRequest hr = BYOL__HISTORY_REQUEST__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT, *rep = NULL;
	hr.where = q->where;
	hr.n_where = q->n;
	hr.order = (char *)(q->order ? q->order : "");
	hr.limit = q->limit;
	e.msg_case = BYOL__ENVELOPE__MSG_HISTORY_REQUEST;
	e.history_request = &hr;
	rpc *r;
	int rc = 0, ex = cli_connect(t, &r);
	if (ex != EX_OK)
		return ex;
	ex = cli_call(r, &e, &rep, BYOL__ENVELOPE__MSG_LIST_REPLY, &rc);
	if (ex == EX_OK) {
		Byol__ListReply *lr = rep->list_reply;
		if (q->json)
			ex = print_json(lr->runs, lr->n_runs);
		else if (lr->n_runs)
			ex = print_table(lr->runs, lr->n_runs);
		else
			fprintf(stderr, "byolctl: no runs match\n");
	} else if (rc >= 0 && rep && rep->msg_case == BYOL__ENVELOPE__MSG_ERROR &&
		   rep->error->message) {
		point_at(q, rep->error->message);
	}
	rpc_close(r);
	return ex;
}

static int history_main(const target *t, int argc, char **argv)
{
	query q = { .json = t->json };
	int ex = EX_USAGE, missing;
	const char *v;
	for (int i = 0; i < argc; i++) {
		missing = 0;
		if (strcmp(argv[i], "--json") == 0) {
			q.json = 1;
		} else if ((v = option(argv, argc, &i, "--where", &missing))) {
			if (query_add(&q, (char *)v, NULL) < 0)
				goto oom;
		} else if ((v = option(argv, argc, &i, "--order", &missing))) {
			q.order = v;
		} else if ((v = option(argv, argc, &i, "--limit", &missing))) {
			if (parse_limit(v, &q.limit) < 0) {
				fprintf(stderr, "byolctl history: --limit '%s': expected a positive "
					"number\n", v);
				goto out;
			}
		} else {
			ex = cli_bad_usage(&cmd_history, missing ? NULL : argv[i]);
			if (missing)
				fprintf(stderr, "byolctl history: %s needs a value\n", argv[i]);
			goto out;
		}
	}
	ex = run_query(t, &q);
	goto out;
oom:
	fprintf(stderr, "byolctl: out of memory\n");
	ex = EX_NO;
out:
	query_free(&q);
	return ex;
}

static int list_main(const target *t, int argc, char **argv)
{
	query q = { .json = t->json };
	int ex = EX_USAGE, missing;
	const char *v;
	for (int i = 0; i < argc; i++) {
		missing = 0;
		if (strcmp(argv[i], "--json") == 0) {
			q.json = 1;
		} else if ((v = option(argv, argc, &i, "--status", &missing))) {
			if (query_add_equal(&q, "status", v) < 0)
				goto oom;
		} else if ((v = option(argv, argc, &i, "--experiment", &missing))) {
			if (query_add_equal(&q, "experiment", v) < 0)
				goto oom;
		} else if ((v = option(argv, argc, &i, "--filter", &missing))) {
			if (query_add(&q, (char *)v, NULL) < 0)
				goto oom;
		} else if ((v = option(argv, argc, &i, "--limit", &missing))) {
			if (parse_limit(v, &q.limit) < 0) {
				fprintf(stderr, "byolctl list: --limit '%s': expected a positive "
					"number\n", v);
				goto out;
			}
		} else {
			ex = cli_bad_usage(&cmd_list, missing ? NULL : argv[i]);
			if (missing)
				fprintf(stderr, "byolctl list: %s needs a value\n", argv[i]);
			goto out;
		}
	}
	ex = run_query(t, &q);
	goto out;
oom:
	fprintf(stderr, "byolctl: out of memory\n");
	ex = EX_NO;
out:
	query_free(&q);
	return ex;
}

#define OUTPUT_HELP                                                                     \
	"Output: one line per run (ID EXPERIMENT NAME STATUS STEP PROBE KNN COLLAPSE\n"    \
	"FINISHED, times in UTC), or with --json a JSON array of objects: a run as\n"    \
	"`status --json` shows it (run_id, experiment, name, status, step, loss,\n"      \
	"probe_accuracy, knn_accuracy, collapse, checkpoint, seed, *_unix_ms, ...),\n"   \
	"plus created, started and finished (ISO, UTC; null when not yet), config\n"    \
	"(the run's canonical config) and final (its final metrics; {} when none).\n"   \
	"Exit status: 0 (also when no run matches), 1 byold refused the query (the\n"    \
	"message points at the offending token), 2 usage, 3 byold cannot be reached.\n"

const cli_command cmd_history = {
	"history", history_main,
	"history [--where EXPR ...] [--order [-]KEY] [--limit N] [--json]",
	"Runs matching every --where term, from byold's store, newest first.",
	"  --where EXPR   `key op value` terms, several joined by 'and'; every --where\n"
	"                 must hold. Keys: id, experiment, name, status, seed, step,\n"
	"                 created, started, finished (unix seconds or an ISO date in\n"
	"                 UTC: 2026-11-27, 2026-11-27T10:00 — the whole day, minute),\n"
	"                 any config key section.key (model.predictor_norm), any final\n"
	"                 metric (probe_acc, knn_acc, final_loss, collapse, img_per_s,\n"
	"                 train_seconds, steps; final.NAME for others).\n"
	"                 Operators: = != < <= > >= and, for text, ~ !~ (a glob: * ?).\n"
	"                 Values: numbers, bare words, or 'quoted text'.\n"
	"  --order KEY    sort by KEY ascending, -KEY descending (runs without a value\n"
	"                 last); default: newest first\n"
	"  --limit N      at most N runs (default 100, at most 10000)\n"
	"  --json         a JSON array\n"
	"\n"
	"  byolctl history --where 'model.predictor_norm = none' --where 'probe_acc > 0.8'\n"
	"  byolctl history --where 'finished >= 2026-11-27 and status = completed' \\\n"
	"      --order -knn_acc --limit 5\n"
	"\n" OUTPUT_HELP,
};

const cli_command cmd_list = {
	"list", list_main,
	"list [--status S] [--experiment NAME] [--limit N] [--json]",
	"One line per run, newest first.",
	"  --status S         only runs in status S (queued, running, completed, failed,\n"
	"                     cancelled, interrupted)\n"
	"  --experiment NAME  only runs of experiments named NAME\n"
	"  --limit N          at most N runs (default 100)\n"
	"  --filter EXPR      a history --where term (kept for older scripts)\n"
	"  --json             a JSON array\n"
	"\n" OUTPUT_HELP,
};
