/*
 * bench_apply — the coordinator's half of a step (step_apply_nodes: the tree
 * sum of the workers' node results, LARS, the EMA target update) on the default
 * MLP, against the machine's memory bandwidth.
 *
 * The apply is memory-bound: per parameter it must at least read the node
 * results, the online weights, the momentum and the target, and write the
 * weights, the momentum and the target back. The floor printed is those bytes
 * moved at memcpy's speed (read + write bytes per second of a memcpy of the
 * same size, measured in the same run); the ratio is the apply's time over that
 * floor (1.0 = as fast as memory allows).
 *
 * usage: bench_apply [--iters N] [--nodes W]    (defaults 40, 2)
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "byol/config.h"
#include "byol/error.h"
#include "byol/model.h"
#include "byol/pool.h"
#include "byol/step.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(double), by_value);
	return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* memcpy of n floats: read + write bytes per second, median of iters. */
static double memcpy_rate(size_t n, int iters)
{
	float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
	double *t = malloc((size_t)iters * sizeof(double));
	if (!a || !b || !t) {
		fprintf(stderr, "bench_apply: out of memory\n");
		exit(1);
	}
	for (size_t i = 0; i < n; i++)
		a[i] = b[i] = (float)i;
	for (int it = 0; it < iters; it++) {
		double t0 = now();
		memcpy(it % 2 ? a : b, it % 2 ? b : a, n * sizeof(float));
		t[it] = now() - t0;
	}
	double rate = 2.0 * (double)n * sizeof(float) / median(t, iters);
	free(a);
	free(b);
	free(t);
	return rate;
}

static float frand(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return (float)((*s >> 40) & 0xffffff) / 16777216.0f - 0.5f;
}

int main(int argc, char **argv)
{
	int iters = 40, nodes = 2, c;
	static const struct option opts[] = {
		{"iters", required_argument, 0, 'i'},
		{"nodes", required_argument, 0, 'w'},
		{"help", no_argument, 0, 'h'},
		{0, 0, 0, 0},
	};
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'i': iters = atoi(optarg); break;
		case 'w': nodes = atoi(optarg); break;
		case 'h': printf("usage: bench_apply [--iters N] [--nodes W]\n"); return 0;
		default: return 2;
		}
	}
	if (iters < 3 || nodes < 1 || nodes > 32) {
		fprintf(stderr, "bench_apply: --iters >= 3, --nodes 1..32\n");
		return 2;
	}

	static experiment_config cfg;
	char err[BYOL_ERR_LEN];
	static model m;
	step_plan plan;
	config_defaults(&cfg);
	cfg.batch_size = 64 * 32;   /* 32 shards: any W up to 32 holds whole subtrees */
	if (model_build(&m, &cfg, 28, 28, 1, err) < 0 || step_plan_make(&plan, &cfg, 60000, err) < 0) {
		fprintf(stderr, "bench_apply: %s\n", err);
		return 1;
	}
	size_t P = m.L.total;
	int S = plan.shards;
	shard_result *slots = calloc((size_t)S, sizeof(*slots));
	int *node_hi = calloc((size_t)S, sizeof(int));
	double *t = malloc((size_t)iters * sizeof(double));
	if (!slots || !node_hi || !t) {
		fprintf(stderr, "bench_apply: out of memory\n");
		return 1;
	}
	/* W nodes of the reduction tree, as W workers holding whole subtrees send */
	int lo[33], hi[33], n = 1;
	lo[0] = 0;
	hi[0] = S;
	while (n < nodes) {
		int widest = 0;
		for (int i = 1; i < n; i++)
			if (hi[i] - lo[i] > hi[widest] - lo[widest])
				widest = i;
		if (hi[widest] - lo[widest] < 2)
			break;
		int mid = step_tree_mid(lo[widest], hi[widest]);
		lo[n] = mid;
		hi[n] = hi[widest];
		hi[widest] = mid;
		n++;
	}
	uint64_t seed = 1;
	for (int i = 0; i < n; i++) {
		node_hi[lo[i]] = hi[i];
		if (shard_result_alloc(&slots[lo[i]], &m) < 0) {
			fprintf(stderr, "bench_apply: out of memory\n");
			return 1;
		}
		for (size_t k = 0; k < P; k++)
			slots[lo[i]].grad[k] = 1e-3f * frand(&seed);
		for (size_t k = 0; k < m.bn_layout.total; k++)
			slots[lo[i]].bn_stats[k] = 0.5f + frand(&seed);
		slots[lo[i]].n = 64 * (hi[i] - lo[i]);
	}
	printf("bench_apply: default MLP, %zu parameters (%.1f MB), %d shards in %d nodes, "
	       "LARS + EMA, %d iterations\n", P, P * 4.0 / 1e6, S, n, iters);
	double rate = memcpy_rate(P, iters);
	/* the floor: read n nodes + online + m + target, write online + m + target */
	double floor_bytes = (double)P * sizeof(float) * (n + 6);
	double floor_s = floor_bytes / rate;
	printf("memcpy of %.1f MB: %.2f GB/s (read + write); the apply's floor: %.1f MB "
	       "moved = %.2f ms\n", P * 4.0 / 1e6, rate / 1e9, floor_bytes / 1e6, 1e3 * floor_s);
	printf("%-8s %10s %10s %8s\n", "threads", "median ms", "GB/s", "floor x");
	for (int threads = 1; threads <= 2; threads++) {
		train_state st;
		if (train_state_alloc(&st, &m, err) < 0) {
			fprintf(stderr, "bench_apply: %s\n", err);
			return 1;
		}
		model_init_default(&m, st.online, 1);
		if (st.target)
			memcpy(st.target, st.online, m.n_target * sizeof(float));
		st.pool = pool_new(threads);
		st.step = plan.warmup_steps + 1;
		for (int it = -2; it < iters; it++) {
			/* the tree sum adds into the slots: put the nodes back first */
			for (int i = 0; i < n; i++)
				slots[lo[i]].n = 64 * (hi[i] - lo[i]);
			double t0 = now();
			if (step_apply_nodes(&m, &plan, &st, slots, node_hi, NULL, err) < 0) {
				fprintf(stderr, "bench_apply: %s\n", err);
				return 1;
			}
			if (it >= 0)
				t[it] = now() - t0;
		}
		double med = median(t, iters);
		printf("%-8d %10.2f %10.2f %8.2f\n", threads, 1e3 * med, floor_bytes / med / 1e9,
		       med / floor_s);
		pool_free(st.pool);
		st.pool = NULL;
		train_state_free(&st);
	}
	for (int i = 0; i < n; i++)
		shard_result_free(&slots[lo[i]]);
	free(slots);
	free(node_hi);
	free(t);
	model_free(&m);
	return 0;
}
