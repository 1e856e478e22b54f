/*
 * test_checkpoint.c — a run's state survives a round trip through a safetensors
 * file byte for byte; files from another config, truncated or corrupt files are
 * refused and leave the state untouched.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "byol/checkpoint.h"
#include "byol/safetensors.h"
#include "testutil.h"

static char dir[] = "/tmp/byol-ckpt-XXXXXX";

typedef struct {
	model m;
	step_plan plan;
	train_state st;
} state;

static void state_make(state *s, const experiment_config *c, const dataset *d)
{
	char err[BYOL_ERR_LEN];
	assert_int_equal(model_build(&s->m, c, d->h, d->w, d->c, err), 0);
	assert_int_equal(step_plan_make(&s->plan, c, d->n, err), 0);
	assert_int_equal(train_state_init(&s->st, &s->m, &s->plan, d, err), 0);
}

static void state_free(state *s)
{
	train_state_free(&s->st);
	model_free(&s->m);
}

/* a few real steps so every buffer holds something */
static void advance(state *s, const dataset *d, int steps)
{
	char err[BYOL_ERR_LEN];
	step_workspace *ws = step_workspace_new(&s->m, &s->plan);
	shard_result *r = calloc((size_t)s->plan.shards, sizeof(*r));
	for (int j = 0; j < s->plan.shards; j++)
		shard_result_alloc(&r[j], &s->m);
	for (int k = 0; k < steps; k++) {
		for (int j = 0; j < s->plan.shards; j++)
			step_shard_gradient(&s->m, ws, &s->plan, d, s->st.online, s->st.target,
					    s->st.step, j, &r[j]);
		assert_int_equal(step_apply(&s->m, &s->plan, &s->st, r, s->plan.shards, NULL, err), 0);
	}
	for (int j = 0; j < s->plan.shards; j++)
		shard_result_free(&r[j]);
	free(r);
	step_workspace_free(ws);
}

static void check_round_trip(experiment_config *c)
{
	char path[256], err[BYOL_ERR_LEN], sha[65];
	snprintf(path, sizeof(path), "%s/rt.safetensors", dir);
	dataset d;
	testutil_dataset(&d, 64, 6, 6, 1, 1);
	state a, b;
	state_make(&a, c, &d);
	advance(&a, &d, 3);
	assert_int_equal(checkpoint_save(path, &a.m, &a.st, sha, err), 0);
	assert_int_equal(strlen(sha), 64);
	state_make(&b, c, &d);
	assert_int_equal(checkpoint_load(path, &b.m, &b.st, err), 0);
	assert_int_equal(b.st.step, 3);
	assert_memory_equal(a.st.online, b.st.online, a.m.L.total * sizeof(float));
	assert_memory_equal(a.st.m, b.st.m, a.m.L.total * sizeof(float));
	if (a.st.v)
		assert_memory_equal(a.st.v, b.st.v, a.m.L.total * sizeof(float));
	if (a.st.target)
		assert_memory_equal(a.st.target, b.st.target, a.m.n_target * sizeof(float));
	assert_memory_equal(a.st.bn_running, b.st.bn_running, a.m.bn_layout.total * sizeof(float));
	/* continuing both gives the same bytes */
	advance(&a, &d, 2);
	advance(&b, &d, 2);
	assert_memory_equal(a.st.online, b.st.online, a.m.L.total * sizeof(float));
	state_free(&a);
	state_free(&b);
	dataset_free(&d);
}

static void test_round_trip_byol_lars(void **s)
{
	(void)s;
	experiment_config c;
	testutil_config(&c);
	check_round_trip(&c);
}

static void test_round_trip_simclr_adamw(void **s)
{
	(void)s;
	experiment_config c;
	testutil_config(&c);
	c.method = METHOD_SIMCLR;
	c.optim = OPT_ADAMW;
	check_round_trip(&c);
}

static void test_other_config_refused(void **s)
{
	(void)s;
	char path[256], err[BYOL_ERR_LEN] = "";
	snprintf(path, sizeof(path), "%s/other.safetensors", dir);
	experiment_config c;
	testutil_config(&c);
	dataset d;
	testutil_dataset(&d, 64, 6, 6, 1, 1);
	state a, b;
	state_make(&a, &c, &d);
	assert_int_equal(checkpoint_save(path, &a.m, &a.st, NULL, err), 0);
	c.seed = 99;
	state_make(&b, &c, &d);
	float first = b.st.online[0];
	assert_true(checkpoint_load(path, &b.m, &b.st, err) < 0);
	assert_non_null(strstr(err, "config hash"));
	assert_true(b.st.online[0] == first && b.st.step == 0);
	state_free(&a);
	state_free(&b);
	dataset_free(&d);
}

static void test_truncated_refused(void **s)
{
	(void)s;
	char path[256], err[BYOL_ERR_LEN] = "";
	snprintf(path, sizeof(path), "%s/trunc.safetensors", dir);
	experiment_config c;
	testutil_config(&c);
	dataset d;
	testutil_dataset(&d, 64, 6, 6, 1, 1);
	state a;
	state_make(&a, &c, &d);
	assert_int_equal(checkpoint_save(path, &a.m, &a.st, NULL, err), 0);
	FILE *f = fopen(path, "rb");
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	fclose(f);
	assert_int_equal(truncate(path, len - 100), 0);
	float first = a.st.online[0];
	a.st.online[0] = 42;
	assert_true(checkpoint_load(path, &a.m, &a.st, err) < 0);
	assert_non_null(strstr(err, path));
	assert_true(a.st.online[0] == 42);
	(void)first;
	state_free(&a);
	dataset_free(&d);
}

static void test_export_encoder(void **s)
{
	(void)s;
	char path[256], err[BYOL_ERR_LEN];
	snprintf(path, sizeof(path), "%s/enc.safetensors", dir);
	experiment_config c;
	testutil_config(&c);
	dataset d;
	testutil_dataset(&d, 64, 6, 6, 1, 1);
	state a;
	state_make(&a, &c, &d);
	assert_int_equal(checkpoint_export_encoder(path, &a.m, &a.st, err), 0);
	st_file f;
	assert_int_equal(safetensors_read(&f, path, err), 0);
	const st_entry *w = safetensors_find(&f, "encoder.0.weight");
	assert_non_null(w);
	assert_int_equal(w->shape[0], 16);
	assert_int_equal(w->shape[1], 36);
	assert_memory_equal(w->data, a.st.online, w->count * sizeof(float));
	assert_non_null(safetensors_find(&f, "encoder.1.running_mean"));
	assert_null(safetensors_find(&f, "projector.6.weight"));
	for (int i = 0; i < f.nt; i++)
		assert_true(strncmp(f.t[i].name, "encoder.", 8) == 0);
	safetensors_free(&f);
	state_free(&a);
	dataset_free(&d);
}

static int setup(void **s)
{
	(void)s;
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **s)
{
	(void)s;
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_byol_lars),
		cmocka_unit_test(test_round_trip_simclr_adamw),
		cmocka_unit_test(test_other_config_refused),
		cmocka_unit_test(test_truncated_refused),
		cmocka_unit_test(test_export_encoder),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
