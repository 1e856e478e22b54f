/*
 * cmd_plot.c — byolctl plot: one metric of several runs against steps or
 * epochs, drawn as an SVG line chart (client/svg.h) from the daemon's per-step
 * metrics (MetricsRequest) and evaluations.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "svg.h"

#define DEFAULT_MAX_POINTS 2000

typedef enum { M_LOSS, M_LR, M_TAU, M_COLLAPSE, M_IMG_PER_S, M_KNN, M_PROBE } metric_id;

static const struct {
	const char *name, *title;
} metrics[] = {
	[M_LOSS] = {"loss", "loss"},
	[M_LR] = {"lr", "learning rate"},
	[M_TAU] = {"tau", "EMA tau"},
	[M_COLLAPSE] = {"collapse", "collapse (std of normalised projection x sqrt(dim))"},
	[M_IMG_PER_S] = {"img_per_s", "images per second"},
	[M_KNN] = {"knn_acc", "kNN accuracy"},
	[M_PROBE] = {"probe_acc", "linear probe accuracy"},
};
#define N_METRICS ((int)(sizeof(metrics) / sizeof(metrics[0])))

typedef struct {
	uint64_t id;
	char label[160];
	double *x, *y;          /* (n) */
	size_t n;
} run_series;

static double point_value(const Byol__MetricPoint *p, metric_id m)
{
	switch (m) {
	case M_LOSS: return p->loss;
	case M_LR: return p->lr;
	case M_TAU: return p->tau;
	case M_COLLAPSE: return p->collapse;
	case M_IMG_PER_S: return p->img_per_s;
	default: return NAN;
	}
}

/* x of a step: the step itself, or the epoch (fractional) when by_epoch. */
static double x_of(uint64_t step, uint64_t spe, int by_epoch)
{
	return by_epoch ? (double)step / (double)spe : (double)step;
}

/* Fetches run s->id's name and series of metric m. */
static int fetch(rpc *r, run_series *s, metric_id m, int by_epoch, uint32_t max_points)
{
	Byol__Envelope *rep;
	const Byol__RunStatus *st = NULL;
	int ex = cli_get_status(r, s->id, &rep, &st, NULL);
	if (ex != EX_OK)
		return ex;
	snprintf(s->label, sizeof(s->label), "run %llu %.120s", (unsigned long long)s->id,
		 st->name ? st->name : "");
	Byol__MetricsRequest q = BYOL__METRICS_REQUEST__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT;
	q.run_id = s->id;
	q.max_points = m == M_KNN || m == M_PROBE ? 1 : max_points;
	e.msg_case = BYOL__ENVELOPE__MSG_METRICS_REQUEST;
	e.metrics_request = &q;
	if ((ex = cli_call(r, &e, &rep, BYOL__ENVELOPE__MSG_METRICS_REPLY, NULL)) != EX_OK)
		return ex;
	const Byol__MetricsReply *mr = rep->metrics_reply;
	if (by_epoch && mr->steps_per_epoch == 0) {
		fprintf(stderr, "byolctl plot: run %llu: byold does not know its steps per epoch; "
			"use --x step\n", (unsigned long long)s->id);
		return EX_NO;
	}
	size_t n = m == M_KNN || m == M_PROBE ? mr->n_evals : mr->n_points;
	s->x = calloc(n ? n : 1, sizeof(double));
	s->y = calloc(n ? n : 1, sizeof(double));
	if (!s->x || !s->y) {
		fprintf(stderr, "byolctl plot: out of memory\n");
		return EX_NO;
	}
	const char *kind = m == M_KNN ? "knn" : "probe";
	for (size_t i = 0; i < n; i++) {
		if (m == M_KNN || m == M_PROBE) {
			const Byol__EvalInfo *ev = mr->evals[i];
			if (!ev->kind || strcmp(ev->kind, kind) != 0)
				continue;
			s->x[s->n] = x_of(ev->step, mr->steps_per_epoch, by_epoch);
			s->y[s->n++] = ev->value;
		} else {
			const Byol__MetricPoint *p = mr->points[i];
			s->x[s->n] = x_of(p->step, mr->steps_per_epoch, by_epoch);
			s->y[s->n++] = point_value(p, m);
		}
	}
	return EX_OK;
}

static void print_result(int json, const char *out, const char *metric, const run_series *rs,
			 int n)
{
	if (!json) {
		printf("%s: %s of %d run%s (", out, metric, n, n == 1 ? "" : "s");
		for (int i = 0; i < n; i++)
			printf("%srun %llu: %zu points", i ? ", " : "", (unsigned long long)rs[i].id,
			       rs[i].n);
		printf(")\n");
		return;
	}
	cJSON *o = cJSON_CreateObject(), *arr = o ? cJSON_AddArrayToObject(o, "runs") : NULL;
	if (!arr) {
		cJSON_Delete(o);
		return;
	}
	cJSON_AddStringToObject(o, "path", out);
	cJSON_AddStringToObject(o, "metric", metric);
	for (int i = 0; i < n; i++) {
		cJSON *r = cJSON_CreateObject();
		if (!r)
			break;
		cJSON_AddNumberToObject(r, "run_id", (double)rs[i].id);
		cJSON_AddStringToObject(r, "label", rs[i].label);
		cJSON_AddNumberToObject(r, "points", (double)rs[i].n);
		cJSON_AddItemToArray(arr, r);
	}
	char *txt = cJSON_PrintUnformatted(o);
	if (txt)
		printf("%s\n", txt);
	free(txt);
	cJSON_Delete(o);
}

static int drawable_points(const run_series *s, int log_y)
{
	int k = 0;
	for (size_t i = 0; i < s->n; i++)
		k += isfinite(s->x[i]) && isfinite(s->y[i]) && (!log_y || s->y[i] > 0);
	return k;
}

static int plot_main(const target *t, int argc, char **argv)
{
	const char *out = NULL, *metric = "loss", *xname = "step", *title = NULL;
	int json = t->json, log_y = 0, n = 0;
	uint32_t max_points = DEFAULT_MAX_POINTS;
	run_series *rs = calloc((size_t)argc + 1, sizeof(*rs));
	if (!rs)
		return EX_NO;
	int ex = EX_USAGE;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		int more = i + 1 < argc;
		uint64_t v;
		if ((strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) && more)
			out = argv[++i];
		else if (strcmp(a, "--metric") == 0 && more)
			metric = argv[++i];
		else if (strcmp(a, "--x") == 0 && more)
			xname = argv[++i];
		else if (strcmp(a, "--title") == 0 && more)
			title = argv[++i];
		else if (strcmp(a, "--log") == 0)
			log_y = 1;
		else if (strcmp(a, "--json") == 0)
			json = 1;
		else if (strcmp(a, "--max-points") == 0 && more) {
			if (cli_parse_id(argv[++i], &v) < 0 || v < 2 || v > 1000000) {
				fprintf(stderr, "byolctl plot: --max-points '%s': expected 2 .. 1000000\n",
					argv[i]);
				goto out;
			}
			max_points = (uint32_t)v;
		} else if (a[0] != '-' && cli_parse_id(a, &v) == 0)
			rs[n++].id = v;
		else {
			if (a[0] != '-')
				fprintf(stderr, "byolctl plot: '%s' is not a run id\n", a);
			ex = cli_bad_usage(&cmd_plot, a);
			goto out;
		}
	}
	metric_id m = N_METRICS;
	for (int i = 0; i < N_METRICS; i++)
		if (strcmp(metric, metrics[i].name) == 0)
			m = (metric_id)i;
	if (m == N_METRICS) {
		fprintf(stderr, "byolctl plot: unknown metric '%s' (loss, lr, tau, collapse, "
			"img_per_s, knn_acc, probe_acc)\n", metric);
		goto out;
	}
	if (strcmp(xname, "step") != 0 && strcmp(xname, "epoch") != 0) {
		fprintf(stderr, "byolctl plot: --x '%s': expected step or epoch\n", xname);
		goto out;
	}
	if (!n || !out || !out[0]) {
		fprintf(stderr, "byolctl plot: %s\n", !n ? "expected at least one run id"
						      : "-o FILE.svg is required");
		ex = cli_bad_usage(&cmd_plot, NULL);
		goto out;
	}
	rpc *r;
	if ((ex = cli_connect(t, &r)) != EX_OK)
		goto out;
	int by_epoch = strcmp(xname, "epoch") == 0, drawn = 0;
	for (int i = 0; i < n && ex == EX_OK; i++) {
		ex = fetch(r, &rs[i], m, by_epoch, max_points);
		if (ex == EX_OK && drawable_points(&rs[i], log_y) == 0)
			fprintf(stderr, "byolctl plot: run %llu has no %s%s to draw\n",
				(unsigned long long)rs[i].id, metric, log_y ? " above 0" : "");
		drawn += ex == EX_OK && drawable_points(&rs[i], log_y) > 0;
	}
	rpc_close(r);
	if (ex != EX_OK)
		goto out;
	if (!drawn) {
		fprintf(stderr, "byolctl plot: nothing to draw; %s not written\n", out);
		ex = EX_NO;
		goto out;
	}
	svg_series *ss = calloc((size_t)n, sizeof(*ss));
	if (!ss) {
		ex = EX_NO;
		goto out;
	}
	for (int i = 0; i < n; i++)
		ss[i] = (svg_series){rs[i].label, rs[i].x, rs[i].y, rs[i].n};
	char auto_title[128], err[BYOL_ERR_LEN];
	snprintf(auto_title, sizeof(auto_title), "%s by %s", metric, xname);
	svg_chart c = {
		.title = title ? title : auto_title,
		.x_title = by_epoch ? "epoch" : "step",
		.y_title = metrics[m].title,
		.log_y = log_y,
	};
	if (svg_write_file(out, &c, ss, n, err) < 0) {
		fprintf(stderr, "byolctl plot: %s\n", err);
		ex = EX_NO;
	} else {
		print_result(json, out, metric, rs, n);
	}
	free(ss);
out:
	for (int i = 0; i < n; i++) {
		free(rs[i].x);
		free(rs[i].y);
	}
	free(rs);
	return ex;
}

const cli_command cmd_plot = {
	"plot", plot_main,
	"plot RUN... [--metric M] [--x step|epoch] [--log] -o FILE.svg",
	"Draw one metric of runs as an SVG line chart, one line per run.",
	"  --metric M       loss (default), lr, tau, collapse, img_per_s (per step),\n"
	"                   knn_acc, probe_acc (per evaluation)\n"
	"  --x step|epoch   the x axis (default step; epoch = step / steps per epoch)\n"
	"  --log            log10 scale for y (values <= 0 are left out)\n"
	"  --max-points N   at most N points per run, evenly thinned (default 2000)\n"
	"  --title TEXT     the chart's title (default \"METRIC by X\")\n"
	"  -o FILE.svg      where to write the chart\n"
	"  --json           print what was drawn as one JSON object\n"
	"Exit status 1 for an unknown run or when no run has anything to draw.\n",
};
