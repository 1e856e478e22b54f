/*
 * bench_history — how fast byold answers `byolctl history` on a large store.
 *
 * Fills a store in a temporary directory through the store's own API: 10,000
 * runs over 50 experiments (sweeps over predictor norm, learning rate, shard
 * size, optimizer, epochs and seed), each finished completed, failed or
 * cancelled with final metrics (probe_acc, knn_acc, collapse, ...), and
 * 1,000,000 metric rows (100 steps per run). Then it times the typical queries
 * (the median of --repeat runs, after one warm-up run each):
 *
 *   engine  history_select in this process — parsing, the one SQL statement,
 *           reading the rows: the code byold's HistoryRequest handler calls;
 *   byold   a HistoryRequest answered by a real byold started on that store
 *           (its Unix socket; the ListReply with every RunStatus filled, packed,
 *           sent and unpacked), when the daemon binary is found.
 *
 * Wall times are medians; cpu is the median CPU time of the engine's thread,
 * and the daemon's mean CPU time per request (/proc/PID/schedstat): on a
 * machine shared with other work the wall time also counts the waits for a
 * core, the CPU time does not.
 *
 * usage: bench_history [--runs N] [--steps-per-run N] [--repeat N]
 *                      [--byold PATH | --no-daemon] [--keep]
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../client/rpc.h"
#include "../daemon/byold.h"

#define N_EXPERIMENTS 50

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU time of this thread, in seconds. */
static double cpu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU time process pid has run, in seconds (/proc/PID/schedstat), or -1. */
static double proc_cpu(pid_t pid)
{
	char path[64];
	unsigned long long ns;
	snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	int ok = fscanf(f, "%llu", &ns) == 1;
	fclose(f);
	return ok ? ns * 1e-9 : -1;
}

static void die(const char *what, const char *err)
{
	fprintf(stderr, "bench_history: %s: %s\n", what, err);
	exit(1);
}

/* A small deterministic generator (xorshift), so every fill is the same. */
static uint32_t rng_state = 12345;
static uint32_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}
static double unif(void)
{
	return (rnd() >> 8) / 16777216.0;
}

static const char *const norms[] = { "bn", "gn", "gn_ws", "ln", "none" };
static const char *const lrs[] = { "0.2", "0.5", "1.0", "2.0" };
static const char *const shards[] = { "16", "32", "64", "128" };
static const char *const optims[] = { "lars", "sgd", "adamw" };

static void set(experiment_config *c, const char *kv)
{
	char err[BYOL_ERR_LEN];
	if (config_set(c, kv, err) < 0)
		die(kv, err);
}

/* Experiment e's runs [0, n): one config each, varied like a sweep. */
static void fill_experiment(store *s, int e, int n, int steps, int64_t *first_ms)
{
	char err[BYOL_ERR_LEN], kv[128], ename[64];
	experiment_config *c = malloc(sizeof(*c));
	store_run_spec *spec = calloc((size_t)n, sizeof(*spec));
	char (*names)[STORE_NAME_LEN] = calloc((size_t)n, STORE_NAME_LEN);
	char (*hashes)[17] = calloc((size_t)n, 17);
	char **jsons = calloc((size_t)n, sizeof(char *));
	int64_t *ids = calloc((size_t)n, sizeof(int64_t));
	if (!c || !spec || !names || !hashes || !jsons || !ids)
		die("fill", "out of memory");
	snprintf(ename, sizeof(ename), "exp-%02d", e);
	for (int i = 0; i < n; i++) {
		config_defaults(c);
		snprintf(kv, sizeof(kv), "experiment.name=%s", ename);
		set(c, kv);
		snprintf(kv, sizeof(kv), "model.predictor_norm=%s", norms[(e + i) % 5]);
		set(c, kv);
		snprintf(kv, sizeof(kv), "model.encoder_norm=%s", norms[(e / 5 + i / 5) % 5]);
		set(c, kv);
		snprintf(kv, sizeof(kv), "optim.lr=%s", lrs[(i / 3) % 4]);
		set(c, kv);
		snprintf(kv, sizeof(kv), "data.shard_size=%s", shards[(e + i / 7) % 4]);
		set(c, kv);
		snprintf(kv, sizeof(kv), "optim.name=%s", optims[e % 3]);
		set(c, kv);
		snprintf(kv, sizeof(kv), "optim.epochs=%d", 5 + (i % 4) * 5);
		set(c, kv);
		snprintf(kv, sizeof(kv), "experiment.seed=%d", 1 + i % 10);
		set(c, kv);
		if (!(jsons[i] = config_to_json(c)))
			die("fill", "out of memory");
		config_hash(c, hashes[i]);
		snprintf(names[i], STORE_NAME_LEN, "%s/%d", ename, i);
		spec[i] = (store_run_spec){ .name = names[i], .config_json = jsons[i],
					    .config_hash = hashes[i], .seed = c->seed,
					    .total_steps = steps };
	}
	int64_t eid;
	if (store_experiment_add(s, ename, jsons[0], NULL, spec, n, &eid, ids, err) < 0)
		die("store_experiment_add", err);
	store_metric *m = calloc((size_t)(steps ? steps : 1), sizeof(*m));
	if (!m)
		die("fill", "out of memory");
	for (int i = 0; i < n; i++) {
		int64_t id = ids[i];
		if (store_run_set_status(s, id, STORE_RUNNING, NULL, err) < 0)
			die("store_run_set_status", err);
		for (int k = 0; k < steps; k++)
			m[k] = (store_metric){ .step = k, .epoch = k / 10, .loss = 4 - 2.0 * k / steps,
					       .lr = 0.1, .tau = 0.99, .collapse = 0.9,
					       .img_per_s = 1500, .unix_ms = *first_ms + k };
		if (steps && store_metrics_add_batch(s, id, m, steps, err) < 0)
			die("store_metrics_add_batch", err);
		if (store_run_set_step(s, id, steps, err) < 0)
			die("store_run_set_step", err);
		uint32_t r = rnd() % 100;
		if (r < 80) {
			char fin[256];
			snprintf(fin, sizeof(fin), "{\"probe_acc\":%.4f,\"knn_acc\":%.4f,"
				 "\"final_loss\":%.4f,\"collapse\":%.4f,\"img_per_s\":%.1f,"
				 "\"train_seconds\":%.1f,\"steps\":%d}",
				 0.80 + 0.07 * unif(), 0.79 + 0.07 * unif(), 1 + unif(),
				 0.1 + 0.9 * unif(), 1000 + 900 * unif(), 300 + 300 * unif(), steps);
			if (store_run_finish(s, id, STORE_COMPLETED, fin, "completed", err) < 0)
				die("store_run_finish", err);
		} else if (r < 92) {
			if (store_run_finish(s, id, STORE_FAILED, NULL, "loss is NaN", err) < 0)
				die("store_run_finish", err);
		} else if (store_run_finish(s, id, STORE_CANCELLED, NULL, "cancelled", err) < 0) {
			die("store_run_finish", err);
		}
		*first_ms += steps;
	}
	for (int i = 0; i < n; i++)
		free(jsons[i]);
	free(m);
	free(c);
	free(spec);
	free(names);
	free(hashes);
	free(jsons);
	free(ids);
}

typedef struct {
	const char *label;
	const char *where[3];
	const char *order;
	unsigned limit;
} bench_query;

static bench_query queries[] = {
	{ "newest 20", { NULL }, NULL, 20 },
	{ "config key =, limit 20", { "model.predictor_norm = none" }, NULL, 20 },
	{ "config key =, limit 1000", { "model.predictor_norm = none" }, NULL, 1000 },
	{ "two config keys, limit 1000", { "optim.lr = 0.5", "data.shard_size <= 32" }, NULL, 1000 },
	{ "metric threshold, limit 20", { "probe_acc > 0.86" }, NULL, 20 },
	{ "metric threshold, limit 1000", { "probe_acc > 0.86" }, NULL, 1000 },
	{ "status + experiment", { "status = failed", "experiment = exp-17" }, NULL, 1000 },
	{ "order by metric, limit 20", { NULL }, "-probe_acc", 20 },
	{ "order by metric, limit 1000", { NULL }, "-probe_acc", 1000 },
	{ "config + metric + order", { "model.predictor_norm = bn and probe_acc > 0.85" },
	  "-knn_acc", 20 },
	{ "finished time range", { NULL /* set after the fill */ }, "finished", 1000 },
	{ "name glob", { "name ~ 'exp-4*/1?'" }, NULL, 1000 },
};
#define N_QUERIES ((int)(sizeof(queries) / sizeof(queries[0])))

static int n_where(const bench_query *bq)
{
	int n = 0;
	while (n < 3 && bq->where[n])
		n++;
	return n;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Median wall milliseconds of the engine on q; *cpu: its median CPU
 * milliseconds; *rows: runs answered. */
static double time_engine(store *s, const bench_query *bq, int repeat, int *rows, double *cpu)
{
	char err[BYOL_ERR_LEN];
	double t[256], c[256];
	history_spec spec = { .where = bq->where, .n_where = n_where(bq), .order = bq->order,
			      .limit = bq->limit, .label = "where", .number_where = 1 };
	for (int i = -1; i < repeat; i++) {
		history_row *out;
		int n;
		double t0 = now(), c0 = cpu_now();
		if (history_select(s, &spec, &out, &n, err) < 0)
			die(bq->label, err);
		if (i >= 0) {
			t[i] = (now() - t0) * 1e3;
			c[i] = (cpu_now() - c0) * 1e3;
		}
		*rows = n;
		history_rows_free(out, n);
	}
	*cpu = median(c, repeat);
	return median(t, repeat);
}

/* Median wall milliseconds of a HistoryRequest to byold (pid); *cpu: the
 * daemon's mean CPU milliseconds per request; *bytes: the reply's size. */
static double time_daemon(rpc *r, pid_t pid, const bench_query *bq, int repeat, int *rows,
			  size_t *bytes, double *cpu)
{
	double cpu0 = 0;
	char err[BYOL_ERR_LEN];
	double t[256];
	Byol__HistoryRequest hr = BYOL__HISTORY_REQUEST__INIT;
	Byol__Envelope e = BYOL__ENVELOPE__INIT, *rep;
	hr.where = (char **)bq->where;
	hr.n_where = (size_t)n_where(bq);
	hr.order = (char *)(bq->order ? bq->order : "");
	hr.limit = bq->limit;
	e.msg_case = BYOL__ENVELOPE__MSG_HISTORY_REQUEST;
	e.history_request = &hr;
	for (int i = -1; i < repeat; i++) {
		if (i == 0)
			cpu0 = proc_cpu(pid);
		double t0 = now();
		if (rpc_call(r, &e, &rep, err) < 0)
			die(bq->label, err);
		if (i >= 0)
			t[i] = (now() - t0) * 1e3;
		if (rep->msg_case != BYOL__ENVELOPE__MSG_LIST_REPLY)
			die(bq->label, rep->msg_case == BYOL__ENVELOPE__MSG_ERROR
					       ? rep->error->message : "not a ListReply");
		*rows = (int)rep->list_reply->n_runs;
		*bytes = protobuf_c_message_get_packed_size(&rep->base);
	}
	*cpu = cpu0 >= 0 ? (proc_cpu(pid) - cpu0) * 1e3 / repeat : -1;
	return median(t, repeat);
}

static pid_t start_byold(const char *path, const char *dir, const char *sock, rpc **r)
{
	char log[512], err[BYOL_ERR_LEN];
	snprintf(log, sizeof(log), "%s/byold.log", dir);
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		die("fork", "failed");
	if (pid == 0) {
		if (!freopen(log, "w", stderr) || !freopen("/dev/null", "w", stdout))
			_exit(127);
		execl(path, path, "--state-dir", dir, "--listen", "none", "--socket", sock,
		      (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 300; i++) {
		if (rpc_open(r, NULL, sock, NULL, "bench", 60000, err) == 0)
			return pid;
		if (waitpid(pid, NULL, WNOHANG) == pid)
			die(path, "exited at start-up (see its log in the kept directory)");
		usleep(50000);
	}
	die(path, err);
	return -1;
}

static void remove_dir(const char *dir)
{
	static const char *const files[] = { "byold.db", "byold.db-wal", "byold.db-shm",
					     "byold.sock", "byold.log" };
	char p[512];
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
		unlink(p);
	}
	snprintf(p, sizeof(p), "%s/runs", dir);
	rmdir(p);
	rmdir(dir);
}

int main(int argc, char **argv)
{
	int runs = 10000, steps = 100, repeat = 15, keep = 0, daemon = 1;
	char byold_path[512];
	snprintf(byold_path, sizeof(byold_path), "%s", argv[0]);
	char *slash = strrchr(byold_path, '/');
	snprintf(slash ? slash + 1 : byold_path,
		 sizeof(byold_path) - (size_t)(slash ? slash + 1 - byold_path : 0), "byold");
	static const struct option opts[] = {
		{ "runs", required_argument, 0, 'r' },
		{ "steps-per-run", required_argument, 0, 's' },
		{ "repeat", required_argument, 0, 'n' },
		{ "byold", required_argument, 0, 'b' },
		{ "no-daemon", no_argument, 0, 'D' },
		{ "keep", no_argument, 0, 'k' },
		{ 0, 0, 0, 0 },
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'r': runs = atoi(optarg); break;
		case 's': steps = atoi(optarg); break;
		case 'n': repeat = atoi(optarg); break;
		case 'b': snprintf(byold_path, sizeof(byold_path), "%s", optarg); break;
		case 'D': daemon = 0; break;
		case 'k': keep = 1; break;
		default:
			fprintf(stderr, "usage: bench_history [--runs N] [--steps-per-run N] "
				"[--repeat N] [--byold PATH | --no-daemon] [--keep]\n");
			return 2;
		}
	}
	if (runs < N_EXPERIMENTS || steps < 0 || repeat < 1 || repeat > 256) {
		fprintf(stderr, "bench_history: --runs >= %d, --steps-per-run >= 0, --repeat in "
			"1..256\n", N_EXPERIMENTS);
		return 2;
	}
	char dir[] = "/tmp/bench-history-XXXXXX", db[512], sock[512], err[BYOL_ERR_LEN];
	if (!mkdtemp(dir))
		die("mkdtemp", "failed");
	snprintf(db, sizeof(db), "%s/byold.db", dir);
	snprintf(sock, sizeof(sock), "%s/byold.sock", dir);

	store *s;
	if (store_open(&s, db, err) < 0)
		die("store_open", err);
	double t0 = now();
	int64_t ms = 1000;      /* metric times: any increasing numbers */
	for (int e = 0; e < N_EXPERIMENTS; e++) {
		int n = runs / N_EXPERIMENTS + (e < runs % N_EXPERIMENTS);
		fill_experiment(s, e, n, steps, &ms);
	}
	double fill_s = now() - t0;
	/* the runs that finished in the first half of the fill */
	static char finished_term[64];
	snprintf(finished_term, sizeof(finished_term), "finished < %.0f",
		 (double)time(NULL) - fill_s / 2);
	for (int i = 0; i < N_QUERIES; i++)
		if (strcmp(queries[i].label, "finished time range") == 0)
			queries[i].where[0] = finished_term;
	struct stat sb;
	stat(db, &sb);
	printf("store: %d runs, %d experiments, %lld metric rows, schema %d; filled in %.1f s "
	       "(%.0f MiB + WAL)\n", runs, N_EXPERIMENTS, (long long)runs * steps,
	       store_schema_version(s), fill_s, sb.st_size / 1048576.0);
	printf("median of %d after one warm-up, milliseconds\n\n", repeat);

	rpc *r = NULL;
	pid_t pid = 0;
	if (daemon && access(byold_path, X_OK) == 0)
		pid = start_byold(byold_path, dir, sock, &r);
	else if (daemon)
		printf("(no %s: engine only; build it with make, or give --byold)\n\n",
		       byold_path);
	printf("%-30s %6s %18s %18s %8s\n", "", "", "engine", "byold", "");
	printf("%-30s %6s %9s %8s %9s %8s %8s\n", "query", "runs", "wall", "cpu", "wall", "cpu",
	       "reply");
	double worst = 0, worst_cpu = 0;
	for (int i = 0; i < N_QUERIES; i++) {
		int n = 0, nd = 0;
		size_t bytes = 0;
		double ce, cd;
		double te = time_engine(s, &queries[i], repeat, &n, &ce);
		printf("%-30s %6d %9.2f %8.2f", queries[i].label, n, te, ce);
		if (r) {
			double td = time_daemon(r, pid, &queries[i], repeat, &nd, &bytes, &cd);
			if (nd != n)
				die(queries[i].label, "byold answered another number of runs");
			printf(" %9.2f %8.2f %6.0fKB", td, cd, bytes / 1024.0);
			if (td > worst)
				worst = td;
			if (cd > worst_cpu)
				worst_cpu = cd;
		}
		if (te > worst)
			worst = te;
		if (ce > worst_cpu)
			worst_cpu = ce;
		printf("\n");
	}
	printf("\nslowest: %.1f ms wall (median), %.1f ms of CPU (target: under 100 ms)\n",
	       worst, worst_cpu);
	rpc_close(r);
	if (pid > 0) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
	}
	store_close(s);
	if (keep)
		printf("kept %s\n", dir);
	else
		remove_dir(dir);
	return 0;
}
