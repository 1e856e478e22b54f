/*
 * test_step.c — determinism of the two step halves: same config and seed, same
 * bytes; shards in any order, any process, any thread count, same bytes after
 * step_apply; the loss falls.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>

#include "byol/model.h"
#include "byol/pool.h"
#include "byol/runner.h"
#include "byol/step.h"
#include "testutil.h"

typedef struct {
	model m;
	step_plan plan;
	train_state st;
	step_workspace *ws;
	shard_result *res;
} run;

static void run_make(run *r, const experiment_config *c, const dataset *d)
{
	char err[BYOL_ERR_LEN];
	assert_int_equal(model_build(&r->m, c, d->h, d->w, d->c, err), 0);
	assert_int_equal(step_plan_make(&r->plan, c, d->n, err), 0);
	assert_int_equal(train_state_init(&r->st, &r->m, &r->plan, d, err), 0);
	assert_non_null(r->ws = step_workspace_new(&r->m, &r->plan));
	r->res = calloc((size_t)r->plan.shards, sizeof(shard_result));
	for (int j = 0; j < r->plan.shards; j++)
		assert_int_equal(shard_result_alloc(&r->res[j], &r->m), 0);
}

static void run_free(run *r)
{
	for (int j = 0; j < r->plan.shards; j++)
		shard_result_free(&r->res[j]);
	free(r->res);
	step_workspace_free(r->ws);
	train_state_free(&r->st);
	model_free(&r->m);
}

/* One step; shards computed in the order given by `order` (NULL: 0..S-1), each
 * by workspace ws[j % nws]. */
static double run_step(run *r, const dataset *d, const int *order, step_workspace **ws, int nws)
{
	char err[BYOL_ERR_LEN];
	for (int i = 0; i < r->plan.shards; i++) {
		int j = order ? order[i] : i;
		step_shard_gradient(&r->m, ws ? ws[j % nws] : r->ws, &r->plan, d, r->st.online,
				    r->st.target, r->st.step, j, &r->res[j]);
	}
	step_metrics sm;
	assert_int_equal(step_apply(&r->m, &r->plan, &r->st, r->res, r->plan.shards, &sm, err), 0);
	return sm.loss;
}

/* Every shard of the run's current step, in order, into r->res. */
static void compute_shards(run *r, const dataset *d)
{
	for (int j = 0; j < r->plan.shards; j++)
		step_shard_gradient(&r->m, r->ws, &r->plan, d, r->st.online, r->st.target,
				    r->st.step, j, &r->res[j]);
}

static void assert_same_state(const run *a, const run *b)
{
	assert_int_equal(a->st.step, b->st.step);
	assert_memory_equal(a->st.online, b->st.online, a->m.L.total * sizeof(float));
	assert_memory_equal(a->st.m, b->st.m, a->m.L.total * sizeof(float));
	if (a->st.target)
		assert_memory_equal(a->st.target, b->st.target, a->m.n_target * sizeof(float));
	assert_memory_equal(a->st.bn_running, b->st.bn_running,
			    a->m.bn_layout.total * sizeof(float));
}

static void small_config(experiment_config *c)
{
	testutil_config(c);
	c->batch_size = 32;
	c->shard_size = 8;
}

static void test_same_seed_same_bytes(void **s)
{
	(void)s;
	experiment_config c;
	small_config(&c);
	dataset d;
	testutil_dataset(&d, 96, 6, 6, 1, 1);
	run a = {0}, b = {0};
	run_make(&a, &c, &d);
	run_make(&b, &c, &d);
	for (int k = 0; k < 7; k++) { /* crosses two epoch boundaries */
		run_step(&a, &d, NULL, NULL, 0);
		run_step(&b, &d, NULL, NULL, 0);
	}
	assert_same_state(&a, &b);
	/* and a different seed differs */
	c.seed = 8;
	run e = {0};
	run_make(&e, &c, &d);
	for (int k = 0; k < 7; k++)
		run_step(&e, &d, NULL, NULL, 0);
	assert_memory_not_equal(a.st.online, e.st.online, a.m.L.total * sizeof(float));
	run_free(&a);
	run_free(&b);
	run_free(&e);
	dataset_free(&d);
}

/* Shards computed in reverse order by three separate workspaces (three
 * "workers") give the same bytes as in order by one. */
static void check_any_order(experiment_config *c)
{
	dataset d;
	testutil_dataset(&d, 96, 6, 6, 1, 2);
	run a = {0}, b = {0};
	run_make(&a, c, &d);
	run_make(&b, c, &d);
	step_workspace *ws[3];
	for (int i = 0; i < 3; i++)
		assert_non_null(ws[i] = step_workspace_new(&b.m, &b.plan));
	pool *p = pool_new(2); /* and b applies its steps on two threads */
	assert_non_null(p);
	b.st.pool = p;
	int order[4] = {3, 1, 2, 0};
	for (int k = 0; k < 5; k++) {
		run_step(&a, &d, NULL, NULL, 0);
		run_step(&b, &d, order, ws, 3);
	}
	assert_same_state(&a, &b);
	for (int i = 0; i < 3; i++)
		step_workspace_free(ws[i]);
	pool_free(p);
	run_free(&a);
	run_free(&b);
	dataset_free(&d);
}

static void test_any_order_byol(void **s)
{
	(void)s;
	experiment_config c;
	small_config(&c);
	check_any_order(&c);
}

static void test_any_order_simclr_adamw(void **s)
{
	(void)s;
	experiment_config c;
	small_config(&c);
	c.method = METHOD_SIMCLR;
	c.optim = OPT_ADAMW;
	c.lr = 1e-3f;
	check_any_order(&c);
}

/* A worker running 1 shard at a time and one running 2 at once compute the same
 * bytes, on shapes large enough for OpenBLAS's kernels to matter; and so does a
 * worker that is given only some of the shards. */
static void test_runner_thread_count_invariant(void **s)
{
	(void)s;
	experiment_config c;
	config_defaults(&c);
	c.batch_size = 128;
	c.shard_size = 32;
	dataset d;
	testutil_dataset(&d, 256, 28, 28, 1, 4);
	run a = {0};
	run_make(&a, &c, &d);
	int S = a.plan.shards;
	shard_result *r1 = calloc((size_t)S, sizeof(*r1)), *r2 = calloc((size_t)S, sizeof(*r2));
	for (int j = 0; j < S; j++) {
		assert_int_equal(shard_result_alloc(&r1[j], &a.m), 0);
		assert_int_equal(shard_result_alloc(&r2[j], &a.m), 0);
	}
	int all[4] = {0, 1, 2, 3}, some[2] = {3, 1};
	shard_runner *one = shard_runner_new(&a.m, &a.plan, 1);
	shard_runner *two = shard_runner_new(&a.m, &a.plan, 2);
	assert_non_null(one);
	assert_non_null(two);
	shard_runner_run(one, &d, a.st.online, a.st.target, 1, all, S, r1);
	shard_runner_run(two, &d, a.st.online, a.st.target, 1, all, S, r2);
	for (int j = 0; j < S; j++) {
		assert_memory_equal(r1[j].grad, r2[j].grad, a.m.L.total * sizeof(float));
		assert_memory_equal(r1[j].bn_stats, r2[j].bn_stats,
				    a.m.bn_layout.total * sizeof(float));
		assert_true(r1[j].loss == r2[j].loss && r1[j].collapse == r2[j].collapse);
	}
	shard_runner_run(two, &d, a.st.online, a.st.target, 1, some, 2, r2);
	assert_memory_equal(r1[3].grad, r2[0].grad, a.m.L.total * sizeof(float));
	assert_memory_equal(r1[1].grad, r2[1].grad, a.m.L.total * sizeof(float));
	shard_runner_free(one);
	shard_runner_free(two);
	for (int j = 0; j < S; j++) {
		shard_result_free(&r1[j]);
		shard_result_free(&r2[j]);
	}
	free(r1);
	free(r2);
	run_free(&a);
	dataset_free(&d);
}

static void test_shards_partition_epoch(void **s)
{
	(void)s;
	experiment_config c;
	small_config(&c);
	dataset d;
	testutil_dataset(&d, 100, 6, 6, 1, 1); /* 100 / 32: 3 steps, 4 images dropped */
	run a = {0};
	run_make(&a, &c, &d);
	assert_int_equal(a.plan.steps_per_epoch, 3);
	int seen[100] = {0};
	uint32_t idx[8];
	for (long k = 0; k < 3; k++)
		for (int j = 0; j < 4; j++) {
			step_shard_indices(a.ws, &a.plan, c.seed, k, j, idx);
			for (int i = 0; i < 8; i++) {
				assert_true(idx[i] < 100);
				seen[idx[i]]++;
			}
		}
	int once = 0;
	for (int i = 0; i < 100; i++) {
		assert_true(seen[i] <= 1);
		once += seen[i];
	}
	assert_int_equal(once, 96);
	/* the next epoch is another permutation */
	uint32_t e0[8], e1[8];
	step_shard_indices(a.ws, &a.plan, c.seed, 0, 0, e0);
	step_shard_indices(a.ws, &a.plan, c.seed, 3, 0, e1);
	assert_memory_not_equal(e0, e1, sizeof(e0));
	run_free(&a);
	dataset_free(&d);
}

static void test_loss_falls(void **s)
{
	(void)s;
	experiment_config c;
	small_config(&c);
	c.epochs = 20;
	c.optim = OPT_ADAMW;
	c.lr = 2e-2f;
	dataset d;
	testutil_dataset(&d, 96, 6, 6, 1, 9);
	run a = {0};
	run_make(&a, &c, &d);
	double first = 0, last = 0;
	long total = a.plan.total_steps;
	for (long k = 0; k < total; k++) {
		double l = run_step(&a, &d, NULL, NULL, 0);
		if (k < 6)
			first += l / 6;
		if (k >= total - 6)
			last += l / 6;
	}
	fprintf(stderr, "  loss %.4f -> %.4f over %ld steps\n", first, last, total);
	assert_true(last < 0.8 * first);
	run_free(&a);
	dataset_free(&d);
}

static void test_nonfinite_gradient_rejected(void **s)
{
	(void)s;
	experiment_config c;
	small_config(&c);
	dataset d;
	testutil_dataset(&d, 96, 6, 6, 1, 1);
	run a = {0};
	run_make(&a, &c, &d);
	compute_shards(&a, &d);
	a.res[2].grad[5] = NAN;
	size_t P = a.m.L.total;
	float *before = malloc(P * sizeof(float));
	memcpy(before, a.st.online, P * sizeof(float));
	char err[BYOL_ERR_LEN] = "";
	assert_true(step_apply(&a.m, &a.plan, &a.st, a.res, a.plan.shards, NULL, err) < 0);
	assert_non_null(strstr(err, "not finite"));
	assert_int_equal(a.st.step, 0);
	assert_memory_equal(before, a.st.online, P * sizeof(float));
	free(before);
	run_free(&a);
	dataset_free(&d);
}

static void test_tree_nodes(void **s)
{
	(void)s;
	assert_int_equal(step_tree_mid(0, 4), 2);
	assert_int_equal(step_tree_mid(0, 6), 4);
	assert_int_equal(step_tree_mid(0, 3), 2);
	assert_int_equal(step_tree_mid(4, 6), 5);
	assert_true(step_tree_is_node(4, 0, 4) && step_tree_is_node(4, 0, 2) &&
		    step_tree_is_node(4, 2, 4) && step_tree_is_node(4, 3, 4));
	assert_false(step_tree_is_node(4, 1, 3) || step_tree_is_node(4, 0, 3) ||
		     step_tree_is_node(4, 2, 5) || step_tree_is_node(4, 2, 2));
	assert_true(step_tree_is_node(6, 0, 4) && step_tree_is_node(6, 4, 6));
	assert_false(step_tree_is_node(6, 2, 6) || step_tree_is_node(6, 3, 6));
	assert_true(step_tree_is_node(3, 0, 2) && step_tree_is_node(3, 2, 3));
}

/* Leaves applied by the coordinator, or nodes pre-reduced by "workers": the
 * same bytes. */
static void check_partition(int batch, const int *groups, int ngroups)
{
	experiment_config c;
	small_config(&c);
	c.batch_size = batch;
	dataset d;
	testutil_dataset(&d, 2 * batch, 6, 6, 1, 5);
	run a = {0}, b = {0};
	run_make(&a, &c, &d);
	run_make(&b, &c, &d);
	int S = a.plan.shards, *node_hi = calloc((size_t)S, sizeof(int));
	char err[BYOL_ERR_LEN];
	for (int k = 0; k < 3; k++) {
		run_step(&a, &d, NULL, NULL, 0);
		compute_shards(&b, &d);
		for (int g = 0, lo = 0; g < ngroups; lo = groups[g++]) {
			step_reduce_node(&b.m, b.res, lo, groups[g]);
			node_hi[lo] = groups[g];
		}
		assert_int_equal(step_apply_nodes(&b.m, &b.plan, &b.st, b.res, node_hi, NULL, err), 0);
	}
	assert_same_state(&a, &b);
	free(node_hi);
	run_free(&a);
	run_free(&b);
	dataset_free(&d);
}

static void test_partition_invariant(void **s)
{
	(void)s;
	int two_two[] = {2, 4}, one_node[] = {4}, leaf_pair[] = {1, 2, 4};
	check_partition(32, two_two, 2);     /* 4 shards: [0,2) [2,4) */
	check_partition(32, one_node, 1);    /* one worker: [0,4) */
	check_partition(32, leaf_pair, 3);   /* [0,1) [1,2) [2,4) */
	int six[] = {4, 6}, six_b[] = {2, 4, 5, 6};
	check_partition(48, six, 2);         /* 6 shards: [0,4) [4,6) */
	check_partition(48, six_b, 4);
}

static void test_bad_partition_refused(void **s)
{
	(void)s;
	experiment_config c;
	small_config(&c);
	dataset d;
	testutil_dataset(&d, 96, 6, 6, 1, 1);
	run a = {0};
	run_make(&a, &c, &d);
	compute_shards(&a, &d);
	int bad[4] = {1, 3, 0, 4}; /* [0,1) [1,3) [3,4): [1,3) is not a node */
	char err[BYOL_ERR_LEN] = "";
	float w0 = a.st.online[0];
	assert_true(step_apply_nodes(&a.m, &a.plan, &a.st, a.res, bad, NULL, err) < 0);
	assert_non_null(strstr(err, "reduction tree"));
	assert_true(a.st.step == 0 && a.st.online[0] == w0);
	run_free(&a);
	dataset_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_seed_same_bytes),
		cmocka_unit_test(test_any_order_byol),
		cmocka_unit_test(test_any_order_simclr_adamw),
		cmocka_unit_test(test_runner_thread_count_invariant),
		cmocka_unit_test(test_shards_partition_epoch),
		cmocka_unit_test(test_loss_falls),
		cmocka_unit_test(test_nonfinite_gradient_rejected),
		cmocka_unit_test(test_tree_nodes),
		cmocka_unit_test(test_partition_invariant),
		cmocka_unit_test(test_bad_partition_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
