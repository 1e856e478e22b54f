/*
 * cmd_report.c — byolctl report EXPERIMENT -o DIR: an experiment's results from
 * byold's store alone, as DIR/report.md (a Markdown table per group of runs,
 * then one row per run) and two SVG figures, DIR/probe.svg (each run's linear
 * probe accuracy per group, with the group's mean and spread) and
 * DIR/collapse.svg (the collapse figure over steps, one line per group: the
 * mean over the group's runs at each step).
 *
 * The runs come from one HistoryRequest (`experiment = 'NAME'`), the curves
 * from one MetricsRequest per completed run. Runs are grouped by
 * experiment.variant when any run has one, else by the config keys that
 * differ between runs other than experiment.seed; groups keep the order of
 * their first run (the sweep's order). Figures of a group are over its
 * completed runs: mean ± sample standard deviation (n - 1), min–max.
 */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "svg.h"

#define METRIC_POINTS 1000      /* per run, evenly thinned by byold */
#define LABEL_MAX 200

typedef struct {
	uint64_t id, seed;
	char *name, *status;
	cJSON *config;                  /* flat: {"section.key": value} */
	int done;                       /* completed */
	double probe, knn, collapse, steps, wall_s;     /* NAN when not known */
	int group;
} rrun;

typedef struct {
	double mean, sd, min, max;      /* NAN when there are no values */
	int n;
} stats;

typedef struct {
	char label[LABEL_MAX];
	int n_runs, n_done;
	stats probe, knn, collapse, steps, wall;
	double *probe_v;                /* the completed runs' probe accuracies (probe.n) */
	double *cx, *cy;                /* the mean collapse curve (nc points) */
	size_t nc;
} rgroup;

typedef struct {
	const char *experiment;
	rrun *runs;
	int n;
	rgroup *groups;
	int n_groups;
	char group_by[LABEL_MAX];       /* "experiment.variant", "model.init, optim.lr", "" */
	int by_epoch;
} report;

static void report_free(report *r)
{
	for (int i = 0; i < r->n; i++) {
		free(r->runs[i].name);
		free(r->runs[i].status);
		cJSON_Delete(r->runs[i].config);
	}
	for (int g = 0; g < r->n_groups; g++) {
		free(r->groups[g].probe_v);
		free(r->groups[g].cx);
		free(r->groups[g].cy);
	}
	free(r->runs);
	free(r->groups);
}

/* ---- the runs ---- */

/* {"a": {"b": 1}} -> {"a.b": 1} into out. */
static int flatten(const cJSON *in, cJSON *out)
{
	const cJSON *sec, *it;
	cJSON_ArrayForEach(sec, in) {
		if (!cJSON_IsObject(sec))
			continue;
		cJSON_ArrayForEach(it, sec) {
			char key[160];
			snprintf(key, sizeof(key), "%s.%s", sec->string, it->string);
			cJSON *dup = cJSON_Duplicate(it, 1);
			if (!dup || !cJSON_AddItemToObject(out, key, dup)) {
				cJSON_Delete(dup);
				return -1;
			}
		}
	}
	return 0;
}

static double final_num(const cJSON *fin, const char *key)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(fin, key);
	return cJSON_IsNumber(x) && isfinite(x->valuedouble) ? x->valuedouble : NAN;
}

static int add_run(report *r, const Byol__RunStatus *rs)
{
	rrun *u = &r->runs[r->n++];         /* freed with the report even when incomplete */
	memset(u, 0, sizeof(*u));
	u->id = rs->run_id;
	u->seed = rs->seed;
	u->name = strdup(rs->name ? rs->name : "");
	u->status = strdup(rs->status ? rs->status : "");
	u->config = cJSON_CreateObject();
	cJSON *cfg = rs->config_json ? cJSON_Parse(rs->config_json) : NULL;
	cJSON *fin = rs->final_json && rs->final_json[0] ? cJSON_Parse(rs->final_json) : NULL;
	int bad = !u->name || !u->status || !u->config || (cfg && flatten(cfg, u->config) < 0);
	u->done = u->status && strcmp(u->status, "completed") == 0;
	u->probe = final_num(fin, "probe_acc");
	u->knn = final_num(fin, "knn_acc");
	u->collapse = final_num(fin, "collapse");
	u->steps = final_num(fin, "steps");
	u->wall_s = rs->started_unix_ms > 0 && rs->finished_unix_ms >= rs->started_unix_ms
			    ? (double)(rs->finished_unix_ms - rs->started_unix_ms) / 1000.0 : NAN;
	cJSON_Delete(cfg);
	cJSON_Delete(fin);
	return bad ? -1 : 0;
}

/* `experiment = 'NAME'` with ' and \ escaped. */
static char *experiment_term(const char *name)
{
	char *t = malloc(2 * strlen(name) + 32), *p;
	if (!t)
		return NULL;
	p = t + sprintf(t, "experiment = '");
	for (; *name; name++) {
		if (*name == '\'' || *name == '\\')
			*p++ = '\\';
		*p++ = *name;
	}
	strcpy(p, "'");
	return t;
}

/* Every run of the experiment, oldest first. EX_OK or an exit status. */
static int fetch_runs(rpc *c, report *r)
{
	Byol__HistoryRequest q = BYOL__HISTORY_REQUEST__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT, *rep;
	char *term = experiment_term(r->experiment);
	if (!term)
		return EX_NO;
	q.where = &term;
	q.n_where = 1;
	q.order = "id";
	q.limit = 10000;
	e.msg_case = BYOL__ENVELOPE__MSG_HISTORY_REQUEST;
	e.history_request = &q;
	int ex = cli_call(c, &e, &rep, BYOL__ENVELOPE__MSG_LIST_REPLY, NULL);
	free(term);
	if (ex != EX_OK)
		return ex;
	const Byol__ListReply *lr = rep->list_reply;
	if (lr->n_runs == 0) {
		fprintf(stderr, "byolctl report: byold has no experiment named '%s'\n", r->experiment);
		return EX_NO;
	}
	if (!(r->runs = calloc(lr->n_runs, sizeof(*r->runs))))
		return EX_NO;
	for (size_t i = 0; i < lr->n_runs; i++)
		if (add_run(r, lr->runs[i]) < 0) {
			fprintf(stderr, "byolctl report: out of memory\n");
			return EX_NO;
		}
	return EX_OK;
}

/* ---- groups ---- */

/* A config value as text ("bn", "0.5", "[512,256]"). */
static void value_text(const cJSON *v, char *buf, size_t n)
{
	if (!v) {
		snprintf(buf, n, "-");
	} else if (cJSON_IsString(v)) {
		snprintf(buf, n, "%s", v->valuestring);
	} else {
		char *t = cJSON_PrintUnformatted(v);
		snprintf(buf, n, "%s", t ? t : "?");
		free(t);
	}
}

/* The keys (other than experiment.seed) whose values are not the same in all runs. */
static int differing_keys(const report *r, const char **keys, int max)
{
	int n = 0;
	for (const cJSON *it = r->runs[0].config->child; it && n < max; it = it->next) {
		if (strcmp(it->string, "experiment.seed") == 0)
			continue;
		for (int i = 1; i < r->n; i++) {
			const cJSON *o = cJSON_GetObjectItemCaseSensitive(r->runs[i].config, it->string);
			if (!o || !cJSON_Compare(o, it, 1)) {
				keys[n++] = it->string;
				break;
			}
		}
	}
	return n;
}

static int group_runs(report *r)
{
	const char *keys[16];
	int nk = 0, by_variant = 0;
	for (int i = 0; i < r->n; i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->runs[i].config,
								  "experiment.variant");
		by_variant |= cJSON_IsString(v) && v->valuestring[0];
	}
	if (by_variant) {
		keys[nk++] = "experiment.variant";
	} else {
		nk = differing_keys(r, keys, 16);
	}
	size_t len = 0;
	r->group_by[0] = '\0';
	for (int k = 0; k < nk && len < sizeof(r->group_by); k++)
		len += (size_t)snprintf(r->group_by + len, sizeof(r->group_by) - len, "%s%s",
					k ? ", " : "", keys[k]);
	if (!(r->groups = calloc((size_t)r->n, sizeof(*r->groups))))
		return -1;
	for (int i = 0; i < r->n; i++) {
		char label[LABEL_MAX] = "", val[LABEL_MAX];
		len = 0;
		for (int k = 0; k < nk && len < sizeof(label); k++) {
			value_text(cJSON_GetObjectItemCaseSensitive(r->runs[i].config, keys[k]), val,
				   sizeof(val));
			const char *dot = strrchr(keys[k], '.');
			if (by_variant)
				len += (size_t)snprintf(label + len, sizeof(label) - len, "%s", val[0] &&
							strcmp(val, "-") ? val : "(none)");
			else
				len += (size_t)snprintf(label + len, sizeof(label) - len, "%s%s=%s",
							k ? "," : "", dot ? dot + 1 : keys[k], val);
		}
		if (!nk)
			snprintf(label, sizeof(label), "%s", r->experiment);
		int g = 0;
		while (g < r->n_groups && strcmp(r->groups[g].label, label) != 0)
			g++;
		if (g == r->n_groups)
			snprintf(r->groups[r->n_groups++].label, LABEL_MAX, "%s", label);
		r->runs[i].group = g;
		r->groups[g].n_runs++;
		r->groups[g].n_done += r->runs[i].done;
	}
	return 0;
}

/* ---- figures ---- */

static stats stats_of(const double *v, int n)
{
	stats s = { NAN, NAN, NAN, NAN, n };
	if (n < 1)
		return s;
	double sum = 0;
	s.min = s.max = v[0];
	for (int i = 0; i < n; i++) {
		sum += v[i];
		s.min = fmin(s.min, v[i]);
		s.max = fmax(s.max, v[i]);
	}
	s.mean = sum / n;
	if (n > 1) {
		double ss = 0;
		for (int i = 0; i < n; i++)
			ss += (v[i] - s.mean) * (v[i] - s.mean);
		s.sd = sqrt(ss / (n - 1));
	}
	return s;
}

/* The group's completed runs' values of one figure (the known ones) into v. */
static int group_values(const report *r, int g, size_t off, double *v)
{
	int n = 0;
	for (int i = 0; i < r->n; i++) {
		const rrun *u = &r->runs[i];
		double x;
		memcpy(&x, (const char *)u + off, sizeof(x));
		if (u->group == g && u->done && isfinite(x))
			v[n++] = x;
	}
	return n;
}

static int group_stats(report *r)
{
	for (int g = 0; g < r->n_groups; g++) {
		rgroup *G = &r->groups[g];
		double *v = calloc((size_t)r->n, sizeof(double));
		if (!v)
			return -1;
		G->knn = stats_of(v, group_values(r, g, offsetof(rrun, knn), v));
		G->collapse = stats_of(v, group_values(r, g, offsetof(rrun, collapse), v));
		G->steps = stats_of(v, group_values(r, g, offsetof(rrun, steps), v));
		G->wall = stats_of(v, group_values(r, g, offsetof(rrun, wall_s), v));
		G->probe = stats_of(v, group_values(r, g, offsetof(rrun, probe), v));
		G->probe_v = v;         /* the probe values stay, for the figure */
	}
	return 0;
}

typedef struct {
	double x, y;
} xy;

static int cmp_x(const void *a, const void *b)
{
	double p = ((const xy *)a)->x, q = ((const xy *)b)->x;
	return (p > q) - (p < q);
}

/* The mean collapse curve of group g over its completed runs' per-step
 * metrics: the points of all runs sorted by x, equal x averaged. */
static int group_curve(rpc *c, report *r, int g)
{
	rgroup *G = &r->groups[g];
	xy *pts = NULL;
	size_t n = 0;
	int ex = EX_OK;
	for (int i = 0; i < r->n && ex == EX_OK; i++) {
		const rrun *u = &r->runs[i];
		if (u->group != g || !u->done)
			continue;
		Byol__MetricsRequest q = BYOL__METRICS_REQUEST__INIT;
		Byol__Envelope e = BYOL__ENVELOPE__INIT, *rep;
		q.run_id = u->id;
		q.max_points = METRIC_POINTS;
		e.msg_case = BYOL__ENVELOPE__MSG_METRICS_REQUEST;
		e.metrics_request = &q;
		if ((ex = cli_call(c, &e, &rep, BYOL__ENVELOPE__MSG_METRICS_REPLY, NULL)) != EX_OK)
			break;
		const Byol__MetricsReply *mr = rep->metrics_reply;
		if (r->by_epoch && mr->steps_per_epoch == 0) {
			fprintf(stderr, "byolctl report: run %llu: byold does not know its steps per "
				"epoch; use --x step\n", (unsigned long long)u->id);
			ex = EX_NO;
			break;
		}
		xy *p = realloc(pts, (n + mr->n_points + 1) * sizeof(*p));
		if (!p) {
			ex = EX_NO;
			break;
		}
		pts = p;
		for (size_t k = 0; k < mr->n_points; k++) {
			const Byol__MetricPoint *m = mr->points[k];
			if (!isfinite(m->collapse))
				continue;
			pts[n].x = r->by_epoch ? (double)(m->step + 1) / (double)mr->steps_per_epoch
					       : (double)m->step;
			pts[n++].y = m->collapse;
		}
	}
	if (ex == EX_OK && n) {
		qsort(pts, n, sizeof(*pts), cmp_x);
		G->cx = malloc(n * sizeof(double));
		G->cy = malloc(n * sizeof(double));
		if (!G->cx || !G->cy)
			ex = EX_NO;
		for (size_t k = 0; ex == EX_OK && k < n;) {
			size_t j = k;
			double sum = 0;
			for (; j < n && pts[j].x == pts[k].x; j++)
				sum += pts[j].y;
			G->cx[G->nc] = pts[k].x;
			G->cy[G->nc++] = sum / (double)(j - k);
			k = j;
		}
	}
	free(pts);
	return ex;
}

/* ---- the files ---- */

/* mkdir -p */
static int make_dirs(const char *dir, char *err)
{
	char path[4096];
	if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path))
		return byol_err(err, -ENAMETOOLONG, "%s: path too long", dir);
	for (char *p = path + 1;; p++) {
		if (*p != '/' && *p)
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(path, 0777) < 0 && errno != EEXIST)
			return byol_err(err, -errno, "%s: %s", path, strerror(errno));
		*p = c;
		if (!c)
			break;
	}
	struct stat st;
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return byol_err(err, -ENOTDIR, "%s: not a directory", dir);
	return 0;
}

/* Markdown table cell text: '|' escaped, newlines as blanks. */
static void put_cell(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '|')
			fputs("\\|", f);
		else
			fputc(*s == '\n' || *s == '\r' ? ' ' : *s, f);
	}
}

/* "84.12 ± 0.35 (83.80–84.50)" in percent; "-" with no value. */
static void put_acc(FILE *f, const stats *s)
{
	if (s->n < 1) {
		fputs("-", f);
		return;
	}
	fprintf(f, "%.2f", 100 * s->mean);
	if (s->n > 1)
		fprintf(f, " ± %.2f (%.2f–%.2f)", 100 * s->sd, 100 * s->min, 100 * s->max);
}

static void put_num(FILE *f, double x, const char *fmt)
{
	if (isfinite(x))
		fprintf(f, fmt, x);
	else
		fputs("-", f);
}

/* Seconds: one decimal below 100 s. */
static void put_secs(FILE *f, double s)
{
	put_num(f, s, isfinite(s) && s < 99.95 ? "%.1f" : "%.0f");
}

static void write_markdown(FILE *f, const report *r, const char *addr, int have_probe,
			   int have_curve)
{
	char when[32];
	time_t now = time(NULL);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", gmtime(&now));
	const char *gname = r->group_by[0] ? r->group_by : "experiment";
	int by_variant = strcmp(r->group_by, "experiment.variant") == 0;
	int done = 0;
	for (int i = 0; i < r->n; i++)
		done += r->runs[i].done;
	fprintf(f, "# ");
	put_cell(f, r->experiment);
	fprintf(f, "\n\nMade by `byolctl report` from byold's store (%s) on %s: %d run%s of the "
		   "experiment, %d completed, in %d group%s by `%s`.\n\n",
		addr, when, r->n, r->n == 1 ? "" : "s", done, r->n_groups,
		r->n_groups == 1 ? "" : "s", gname);
	fprintf(f, "Figures of a group are over its completed runs: mean ± sample standard "
		   "deviation (min–max). Accuracies in percent: the linear probe and kNN of the "
		   "final encoder. Collapse: the std of the l2-normalised projection × √dim "
		   "(about 1 healthy, 0 collapsed), averaged over each run's last epoch. Wall "
		   "time: from a run's start to its end, mean per run.\n\n");
	fprintf(f, "| %s | runs | probe acc (%%) | kNN acc (%%) | collapse | steps | wall time (s) |\n"
		   "| --- | ---: | --- | --- | ---: | ---: | ---: |\n",
		by_variant ? "variant" : gname);
	for (int g = 0; g < r->n_groups; g++) {
		const rgroup *G = &r->groups[g];
		fputs("| ", f);
		put_cell(f, G->label);
		fprintf(f, " | %d", G->n_done);
		if (G->n_done != G->n_runs)
			fprintf(f, " (of %d)", G->n_runs);
		fputs(" | ", f);
		put_acc(f, &G->probe);
		fputs(" | ", f);
		put_acc(f, &G->knn);
		fputs(" | ", f);
		put_num(f, G->collapse.mean, "%.3f");
		fputs(" | ", f);
		put_num(f, G->steps.mean, "%.0f");
		fputs(" | ", f);
		put_secs(f, G->wall.mean);
		fputs(" |\n", f);
	}
	fputs("\n", f);
	if (have_probe)
		fprintf(f, "![linear probe accuracy per group](probe.svg)\n\n");
	if (have_curve)
		fprintf(f, "![collapse over %s, mean per group](collapse.svg)\n\n",
			r->by_epoch ? "epochs" : "steps");
	fprintf(f, "## Runs\n\n| run | name | %s | seed | status | probe acc (%%) | kNN acc (%%) | "
		   "collapse | steps | wall time (s) |\n"
		   "| ---: | --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |\n",
		by_variant ? "variant" : "group");
	for (int i = 0; i < r->n; i++) {
		const rrun *u = &r->runs[i];
		fprintf(f, "| %llu | ", (unsigned long long)u->id);
		put_cell(f, u->name);
		fputs(" | ", f);
		put_cell(f, r->groups[u->group].label);
		fprintf(f, " | %llu | ", (unsigned long long)u->seed);
		put_cell(f, u->status);
		fputs(" | ", f);
		put_num(f, 100 * u->probe, "%.2f");
		fputs(" | ", f);
		put_num(f, 100 * u->knn, "%.2f");
		fputs(" | ", f);
		put_num(f, u->collapse, "%.3f");
		fputs(" | ", f);
		put_num(f, u->steps, "%.0f");
		fputs(" | ", f);
		put_secs(f, u->wall_s);
		fputs(" |\n", f);
	}
}

static int write_report_md(const char *dir, const report *r, const char *addr, int have_probe,
			   int have_curve, char *err)
{
	char path[4200], tmp[4300];
	snprintf(path, sizeof(path), "%s/report.md", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return byol_err(err, -errno, "%s: %s", tmp, strerror(errno));
	write_markdown(f, r, addr, have_probe, have_curve);
	int bad = ferror(f);
	if (fclose(f) != 0 || bad) {
		unlink(tmp);
		return byol_err(err, -EIO, "%s: write error", tmp);
	}
	if (rename(tmp, path) < 0) {
		int e = errno;
		unlink(tmp);
		return byol_err(err, -e, "%s: %s", path, strerror(e));
	}
	return 0;
}

/* probe.svg: each group's runs as points, its mean with ± sample std. */
static int write_probe_svg(const char *dir, const report *r, char *err)
{
	char path[4200], title[LABEL_MAX + 64];
	svg_group *gs = calloc((size_t)r->n_groups, sizeof(*gs));
	if (!gs)
		return byol_err(err, -ENOMEM, "out of memory");
	int n = 0;
	for (int g = 0; g < r->n_groups; g++) {
		const rgroup *G = &r->groups[g];
		if (G->probe.n < 1)
			continue;
		gs[n++] = (svg_group){ G->label, G->probe_v, (size_t)G->probe.n, G->probe.mean,
				       G->probe.n > 1 ? G->probe.sd : NAN };
	}
	snprintf(path, sizeof(path), "%s/probe.svg", dir);
	snprintf(title, sizeof(title), "%s: linear probe accuracy (mean ± sample std)",
		 r->experiment);
	svg_chart c = { .title = title, .x_title = r->group_by[0] ? r->group_by : NULL,
			.y_title = "linear probe accuracy" };
	int rc = svg_write_groups_file(path, &c, gs, n, err);
	free(gs);
	return rc;
}

/* collapse.svg: one line per group. */
static int write_collapse_svg(const char *dir, const report *r, char *err)
{
	char path[4200], title[LABEL_MAX + 64];
	svg_series *ss = calloc((size_t)r->n_groups, sizeof(*ss));
	if (!ss)
		return byol_err(err, -ENOMEM, "out of memory");
	int n = 0;
	for (int g = 0; g < r->n_groups; g++)
		if (r->groups[g].nc)
			ss[n++] = (svg_series){ r->groups[g].label, r->groups[g].cx, r->groups[g].cy,
						r->groups[g].nc };
	snprintf(path, sizeof(path), "%s/collapse.svg", dir);
	snprintf(title, sizeof(title), "%s: collapse figure, mean over each group's runs",
		 r->experiment);
	svg_chart c = { .title = title, .x_title = r->by_epoch ? "epoch" : "step",
			.y_title = "collapse (std of normalised projection x sqrt(dim))" };
	int rc = svg_write_file(path, &c, ss, n, err);
	free(ss);
	return rc;
}

static void json_stats(cJSON *o, const char *key, const stats *s)
{
	cJSON *x = cJSON_AddObjectToObject(o, key);
	if (!x)
		return;
	const double v[4] = { s->mean, s->sd, s->min, s->max };
	static const char *const names[4] = { "mean", "sd", "min", "max" };
	for (int k = 0; k < 4; k++)
		if (isfinite(v[k]))
			cJSON_AddNumberToObject(x, names[k], v[k]);
		else
			cJSON_AddNullToObject(x, names[k]);
	cJSON_AddNumberToObject(x, "n", s->n);
}

static int print_summary(const report *r, const char *dir, int json, int have_probe,
			 int have_curve)
{
	if (!json) {
		printf("%s/report.md: %d runs of %s in %d groups by %s", dir, r->n, r->experiment,
		       r->n_groups, r->group_by[0] ? r->group_by : "experiment");
		printf("%s%s/probe.svg", have_probe ? "; " : "", have_probe ? dir : "");
		printf("%s%s/collapse.svg\n", have_curve ? "; " : "", have_curve ? dir : "");
		if (!have_probe)
			printf("(no probe accuracy measured: probe.svg not written)\n");
		if (!have_curve)
			printf("(no per-step metrics: collapse.svg not written)\n");
		return EX_OK;
	}
	cJSON *o = cJSON_CreateObject(), *gs = o ? cJSON_AddArrayToObject(o, "groups") : NULL;
	if (!gs) {
		cJSON_Delete(o);
		return EX_NO;
	}
	cJSON_AddStringToObject(o, "experiment", r->experiment);
	cJSON_AddStringToObject(o, "dir", dir);
	cJSON_AddStringToObject(o, "group_by", r->group_by);
	cJSON_AddBoolToObject(o, "probe_svg", have_probe);
	cJSON_AddBoolToObject(o, "collapse_svg", have_curve);
	for (int g = 0; g < r->n_groups; g++) {
		const rgroup *G = &r->groups[g];
		cJSON *x = cJSON_CreateObject();
		if (!x || !cJSON_AddItemToArray(gs, x)) {
			cJSON_Delete(x);
			break;
		}
		cJSON_AddStringToObject(x, "label", G->label);
		cJSON_AddNumberToObject(x, "runs", G->n_runs);
		cJSON_AddNumberToObject(x, "completed", G->n_done);
		json_stats(x, "probe_acc", &G->probe);
		json_stats(x, "knn_acc", &G->knn);
		json_stats(x, "collapse", &G->collapse);
		json_stats(x, "steps", &G->steps);
		json_stats(x, "wall_s", &G->wall);
	}
	return cli_print_json(o);
}

static int report_main(const target *t, int argc, char **argv)
{
	const char *dir = NULL, *xname = "step";
	report r = {0};
	int json = t->json;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if ((strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) && i + 1 < argc)
			dir = argv[++i];
		else if (strcmp(a, "--x") == 0 && i + 1 < argc)
			xname = argv[++i];
		else if (strcmp(a, "--json") == 0)
			json = 1;
		else if (a[0] != '-' && !r.experiment)
			r.experiment = a;
		else
			return cli_bad_usage(&cmd_report, a);
	}
	if (!r.experiment || !dir || !dir[0]) {
		fprintf(stderr, "byolctl report: %s\n", !r.experiment ? "expected an experiment name"
									: "-o DIR is required");
		return cli_bad_usage(&cmd_report, NULL);
	}
	if (strcmp(xname, "step") != 0 && strcmp(xname, "epoch") != 0) {
		fprintf(stderr, "byolctl report: --x '%s': expected step or epoch\n", xname);
		return EX_USAGE;
	}
	r.by_epoch = strcmp(xname, "epoch") == 0;
	rpc *c;
	int ex = cli_connect(t, &c);
	if (ex != EX_OK)
		return ex;
	char addr[256], err[BYOL_ERR_LEN];
	snprintf(addr, sizeof(addr), "%s", rpc_address(c));
	if ((ex = fetch_runs(c, &r)) == EX_OK && (group_runs(&r) < 0 || group_stats(&r) < 0)) {
		fprintf(stderr, "byolctl report: out of memory\n");
		ex = EX_NO;
	}
	int have_probe = 0, have_curve = 0, done = 0;
	for (int g = 0; ex == EX_OK && g < r.n_groups; g++) {
		ex = group_curve(c, &r, g);
		have_curve |= r.groups[g].nc > 0;
		have_probe |= r.groups[g].probe.n > 0;
		done += r.groups[g].n_done;
	}
	rpc_close(c);
	if (ex == EX_OK && !done) {
		fprintf(stderr, "byolctl report: experiment '%s' has no completed run yet (%d run%s); "
			"nothing to report\n", r.experiment, r.n, r.n == 1 ? "" : "s");
		ex = EX_NO;
	}
	if (ex == EX_OK && (make_dirs(dir, err) < 0 ||
			    (have_probe && write_probe_svg(dir, &r, err) < 0) ||
			    (have_curve && write_collapse_svg(dir, &r, err) < 0) ||
			    write_report_md(dir, &r, addr, have_probe, have_curve, err) < 0)) {
		fprintf(stderr, "byolctl report: %s\n", err);
		ex = EX_NO;
	}
	if (ex == EX_OK)
		ex = print_summary(&r, dir, json, have_probe, have_curve);
	report_free(&r);
	return ex;
}

const cli_command cmd_report = {
	"report", report_main, "report EXPERIMENT -o DIR [--x step|epoch] [--json]",
	"Write an experiment's results table and figures (Markdown + SVG) from the store.",
	"  EXPERIMENT       an experiment's name: every run of it (of each experiment\n"
	"                   submitted under that name)\n"
	"  -o DIR           where to write report.md, probe.svg and collapse.svg (made\n"
	"                   if missing; the files are replaced)\n"
	"  --x step|epoch   collapse.svg's x axis (default step; epoch = (step + 1) /\n"
	"                   steps per epoch: comparable across batch sizes)\n"
	"  --json           print the groups' figures as one JSON object\n"
	"Runs are grouped by experiment.variant, or when no run has one, by the config\n"
	"keys that differ other than experiment.seed. A group's figures are over its\n"
	"completed runs: mean ± sample standard deviation (min–max).\n"
	"Exit status 1 for an unknown experiment or one with no completed run.\n",
};
