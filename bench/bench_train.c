/*
 * bench_train — training throughput of the worker half + coordinator half of a
 * step, against OpenBLAS sgemm on the very same matrix shapes, in the same run.
 *
 * For each encoder (mlp, cnn) and thread count (1, 2) a child process builds the
 * default model of that encoder at B = 256 (shards of 64), runs warm-up steps,
 * then times `steps` steps on Fashion-MNIST (synthetic images when the dataset is
 * absent) and, right after, the sequence of sgemm calls those steps make. It
 * prints img/s, the achieved GFLOP/s of the model's matmuls, sgemm's GFLOP/s on
 * the same shapes, their ratio, and the child's peak RSS.
 *
 * usage: bench_train [--steps N] [--encoder mlp|cnn] [--threads N]
 */
#include <cblas.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "byol/config.h"
#include "byol/data.h"
#include "byol/error.h"
#include "byol/model.h"
#include "byol/runner.h"
#include "byol/step.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
	int M, N, K;
	int ta, tb;
} gemm_shape;

/* The sgemm calls of one step, in the order the model makes them. */
static int step_gemms(const model *m, int shard, int shards, gemm_shape *g, double *flops)
{
	int n = 0;
	*flops = 0;
	for (int view = 0; view < 2 * shards; view++) {
		int passes = m->cfg.method == METHOD_BYOL ? 2 : 1; /* online (+ target) */
		for (int pass = 0; pass < passes; pass++) {
			int upto = pass == 0 ? m->pred_end : m->proj_end;
			for (int i = 0; i < upto; i++) {
				const model_op *o = &m->ops[i];
				if (o->kind != OP_LINEAR && o->kind != OP_CONV)
					continue;
				int R = shard * o->ho * o->wo;
				int IN = o->in_c * (o->kind == OP_CONV ? 9 : 1), OUT = o->out_c;
				g[n++] = (gemm_shape){R, OUT, IN, 0, 1};
				*flops += 2.0 * R * IN * OUT;
				if (pass == 0) {
					if (i > 0) {
						g[n++] = (gemm_shape){R, IN, OUT, 0, 0};
						*flops += 2.0 * R * IN * OUT;
					}
					g[n++] = (gemm_shape){OUT, IN, R, 1, 0};
					*flops += 2.0 * R * IN * OUT;
				}
			}
		}
	}
	return n;
}

static double time_gemms(const gemm_shape *g, int n, int reps)
{
	size_t maxa = 0, maxb = 0, maxc = 0;
	for (int i = 0; i < n; i++) {
		size_t a = (size_t)g[i].M * g[i].K, b = (size_t)g[i].K * g[i].N,
		       c = (size_t)g[i].M * g[i].N;
		maxa = a > maxa ? a : maxa;
		maxb = b > maxb ? b : maxb;
		maxc = c > maxc ? c : maxc;
	}
	float *A = calloc(maxa, 4), *B = calloc(maxb, 4), *C = calloc(maxc, 4);
	for (size_t i = 0; i < maxa; i++) A[i] = (float)(i % 7) * 0.1f;
	for (size_t i = 0; i < maxb; i++) B[i] = (float)(i % 5) * 0.1f;
	double t0 = now();
	for (int r = 0; r < reps; r++)
		for (int i = 0; i < n; i++) {
			const gemm_shape *s = &g[i];
			cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans,
				    s->tb ? CblasTrans : CblasNoTrans, s->M, s->N, s->K, 1.0f, A,
				    s->ta ? s->M : s->K, B, s->tb ? s->K : s->N, 0.0f, C, s->N);
		}
	double t = now() - t0;
	free(A);
	free(B);
	free(C);
	return t / reps;
}

typedef struct {
	double img_s, gflops, sgemm_gflops, step_ms, sgemm_ms, apply_ms;
	long params;
} result;

static int bench_one(const char *encoder, int threads, int steps, result *res)
{
	char err[BYOL_ERR_LEN];
	openblas_set_num_threads(threads);
	experiment_config c;
	config_defaults(&c);
	if (strcmp(encoder, "cnn") == 0) {
		c.encoder = ENCODER_CNN;
		c.n_encoder_widths = c.n_cnn_strides = 3;
		int w[3] = {32, 64, 128}, s[3] = {1, 2, 2};
		memcpy(c.encoder_widths, w, sizeof(w));
		memcpy(c.cnn_strides, s, sizeof(s));
	}
	dataset d = {0};
	if (dataset_load_dir(&d, NULL, c.data_dir, 0, err) < 0) {
		fprintf(stderr, "bench: %s; using synthetic images\n", err);
		d.n = 4096; d.h = d.w = 28; d.c = 1; d.mean = 0.5f; d.std = 0.3f;
		d.pixels = malloc((size_t)d.n * 784);
		for (size_t i = 0; i < (size_t)d.n * 784; i++)
			d.pixels[i] = (uint8_t)(i * 2654435761u >> 24);
	}
	model m;
	step_plan plan;
	train_state st;
	if (model_build(&m, &c, d.h, d.w, d.c, err) < 0 || step_plan_make(&plan, &c, d.n, err) < 0 ||
	    train_state_init(&st, &m, &plan, &d, err) < 0) {
		fprintf(stderr, "bench: %s\n", err);
		return -1;
	}
	shard_runner *runner = shard_runner_new(&m, &plan, threads);
	shard_result *r = calloc((size_t)plan.shards, sizeof(*r));
	int *ids = calloc((size_t)plan.shards, sizeof(int));
	st.pool = shard_runner_pool(runner);
	for (int j = 0; j < plan.shards; j++) {
		shard_result_alloc(&r[j], &m);
		ids[j] = j;
	}
	int warm = 2;
	double t0 = 0, t_apply = 0;
	for (int k = 0; k < warm + steps; k++) {
		if (k == warm)
			t0 = now();
		shard_runner_run(runner, &d, st.online, st.target, st.step, ids, plan.shards, r);
		double ta = now();
		int rc = step_apply(&m, &plan, &st, r, plan.shards, NULL, err);
		if (k >= warm)
			t_apply += now() - ta;
		if (rc < 0) {
			fprintf(stderr, "bench: %s\n", err);
			return -1;
		}
	}
	double t = (now() - t0) / steps;
	gemm_shape *g = malloc(4096 * sizeof(*g));
	double flops;
	int ng = step_gemms(&m, plan.shard, plan.shards, g, &flops);
	openblas_set_num_threads(threads); /* the reference: OpenBLAS's own threading */
	time_gemms(g, ng, 1);
	double tg = time_gemms(g, ng, steps);
	res->img_s = plan.batch / t;
	res->gflops = flops / t * 1e-9;
	res->sgemm_gflops = flops / tg * 1e-9;
	res->step_ms = t * 1e3;
	res->apply_ms = t_apply / steps * 1e3;
	res->sgemm_ms = tg * 1e3;
	res->params = (long)m.L.total;
	free(g);
	for (int j = 0; j < plan.shards; j++)
		shard_result_free(&r[j]);
	free(r);
	shard_runner_free(runner);
	free(ids);
	train_state_free(&st);
	model_free(&m);
	dataset_free(&d);
	return 0;
}

int main(int argc, char **argv)
{
	int steps = 20;
	const char *only_enc = NULL;
	int only_threads = 0;
	static const struct option opts[] = {{"steps", 1, 0, 's'}, {"encoder", 1, 0, 'e'},
					     {"threads", 1, 0, 't'}, {0, 0, 0, 0}};
	int ch;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 's') steps = atoi(optarg);
		else if (ch == 'e') only_enc = optarg;
		else if (ch == 't') only_threads = atoi(optarg);
		else return 2;
	}
	const char *ct = getenv("OPENBLAS_CORETYPE");
	printf("bench_train: B=256 (4 shards of 64), %d timed steps, OPENBLAS_CORETYPE=%s\n", steps,
	       ct ? ct : "(unset)");
	printf("%-4s %-3s %8s %9s %9s %9s %11s %7s %9s %8s\n", "enc", "thr", "img/s", "step ms",
	       "apply ms", "GFLOP/s", "sgemm GF/s", "ratio", "sgemm ms", "peak MB");
	const char *encs[] = {"mlp", "cnn"};
	for (int e = 0; e < 2; e++)
		for (int threads = 1; threads <= 2; threads++) {
			if ((only_enc && strcmp(only_enc, encs[e])) ||
			    (only_threads && only_threads != threads))
				continue;
			int fds[2];
			if (pipe(fds) < 0)
				return 1;
			pid_t pid = fork();
			if (pid == 0) {
				close(fds[0]);
				result r;
				int rc = bench_one(encs[e], threads, steps, &r);
				if (rc == 0 && write(fds[1], &r, sizeof(r)) != (ssize_t)sizeof(r))
					rc = -1;
				_exit(rc == 0 ? 0 : 1);
			}
			close(fds[1]);
			result r;
			ssize_t got = read(fds[0], &r, sizeof(r));
			close(fds[0]);
			int status;
			struct rusage ru;
			wait4(pid, &status, 0, &ru);
			if (got != (ssize_t)sizeof(r) || !WIFEXITED(status) || WEXITSTATUS(status)) {
				printf("%-4s %-3d failed\n", encs[e], threads);
				continue;
			}
			printf("%-4s %-3d %8.0f %9.1f %9.1f %9.1f %11.1f %6.0f%% %9.1f %8.0f\n", encs[e],
			       threads, r.img_s, r.step_ms, r.apply_ms, r.gflops, r.sgemm_gflops,
			       100.0 * r.gflops / r.sgemm_gflops, r.sgemm_ms, ru.ru_maxrss / 1024.0);
			fflush(stdout);
		}
	return 0;
}
