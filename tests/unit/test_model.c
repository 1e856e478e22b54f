/*
 * test_model.c — the whole objective against finite differences, for every
 * method, every norm and both encoders: for each parameter tensor, the
 * directional derivative of the shard loss along a random direction within that
 * tensor must match the analytic gradient.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>

#include "byol/model.h"
#include "byol/rng.h"
#include "byol/step.h"
#include "testutil.h"

typedef struct {
	model m;
	step_plan plan;
	train_state st;
	step_workspace *ws;
	shard_result r;
	dataset d;
} fixture;

static void fixture_make(fixture *f, experiment_config *c, int cnn)
{
	char err[BYOL_ERR_LEN];
	testutil_dataset(&f->d, 32, cnn ? 8 : 6, cnn ? 8 : 6, 1, 3);
	assert_int_equal(model_build(&f->m, c, f->d.h, f->d.w, f->d.c, err), 0);
	assert_int_equal(step_plan_make(&f->plan, c, f->d.n, err), 0);
	assert_int_equal(train_state_init(&f->st, &f->m, &f->plan, &f->d, err), 0);
	assert_non_null(f->ws = step_workspace_new(&f->m, &f->plan));
	assert_int_equal(shard_result_alloc(&f->r, &f->m), 0);
	/* a target different from the online network, as after some EMA steps */
	if (f->st.target)
		for (size_t i = 0; i < f->m.n_target; i++)
			f->st.target[i] *= 0.9f;
}

static void fixture_free(fixture *f)
{
	shard_result_free(&f->r);
	step_workspace_free(f->ws);
	train_state_free(&f->st);
	model_free(&f->m);
	dataset_free(&f->d);
}

static double loss_at(fixture *f, float *online)
{
	step_shard_gradient(&f->m, f->ws, &f->plan, &f->d, online, f->st.target, 1, 1, &f->r);
	return f->r.loss;
}

/* (L(w + h v) - L(w - h v)) / 2h, v a direction within tensor pt; w is a
 * scratch copy of the parameters, restored on return. */
static double central_difference(fixture *f, float *w, const param_tensor *pt,
				 const double *v, double h)
{
	const float *w0 = f->st.online + pt->offset;
	for (size_t i = 0; i < pt->count; i++)
		w[pt->offset + i] = (float)(w0[i] + h * v[i]);
	double lp = loss_at(f, w);
	for (size_t i = 0; i < pt->count; i++)
		w[pt->offset + i] = (float)(w0[i] - h * v[i]);
	double lm = loss_at(f, w);
	memcpy(w + pt->offset, w0, pt->count * sizeof(float));
	return (lp - lm) / (2 * h);
}

/* Returns the number of tensors whose directional derivative disagrees with
 * grad * scale. */
static int check_tensors(fixture *f, double scale, int verbose)
{
	model *m = &f->m;
	size_t P = m->L.total;
	float *g = malloc(P * sizeof(float));
	float *w = malloc(P * sizeof(float));
	memcpy(w, f->st.online, P * sizeof(float));
	loss_at(f, f->st.online);
	memcpy(g, f->r.grad, P * sizeof(float));
	int bad = 0;
	for (int t = 0; t < m->L.n; t++) {
		const param_tensor *pt = &m->L.t[t];
		rng_stream s;
		rng_stream_init(&s, 99, 0, (uint32_t)t, 0);
		double *v = malloc(pt->count * sizeof(double)), vn = 0;
		for (size_t i = 0; i < pt->count; i++) {
			v[i] = rng_normal(&s);
			vn += v[i] * v[i];
		}
		vn = sqrt(vn);
		double gv = 0, gn = 0;
		for (size_t i = 0; i < pt->count; i++) {
			v[i] /= vn;
			gv += scale * g[pt->offset + i] * v[i];
			gn += (double)g[pt->offset + i] * g[pt->offset + i];
		}
		/* central differences at h and h/2, Richardson-extrapolated. The loss of a
		 * batch of 8 under BN is curved (and kinked by ReLUs), and float32 limits
		 * how small h can be, so a tensor passes when the estimate agrees at any
		 * of three step sizes; a wrong gradient disagrees at all of them. */
		int ok = 0;
		double fd = 0;
		for (double h = 1e-3; h > 2e-4 && !ok; h /= 2) {
			fd = (4 * central_difference(f, w, pt, v, h / 2) -
			      central_difference(f, w, pt, v, h)) / 3;
			ok = fabs(fd - gv) <= 2e-2 * fmax(fabs(fd), fabs(gv)) + 5e-3;
		}
		if (!ok) {
			bad++;
			if (verbose)
				fprintf(stderr, "  %-28s fd %+.6f analytic %+.6f |g| %.4f\n", pt->name,
					fd, gv, sqrt(gn));
		}
		free(v);
	}
	free(g);
	free(w);
	return bad;
}

static void check_config(experiment_config *c, int cnn)
{
	fixture f;
	fixture_make(&f, c, cnn);
	assert_int_equal(check_tensors(&f, 1.0, 1), 0);
	/* the check has teeth: a gradient 30% off fails on most tensors */
	assert_true(check_tensors(&f, 1.3, 0) > f.m.L.n / 2);
	fixture_free(&f);
}

static void cfg_with_norm(experiment_config *c, norm_kind n)
{
	testutil_config(c);
	c->encoder_norm = c->projector_norm = c->predictor_norm = n;
}

static void test_byol_bn(void **s) { (void)s; experiment_config c; cfg_with_norm(&c, NORM_BN); check_config(&c, 0); }
static void test_byol_gn(void **s) { (void)s; experiment_config c; cfg_with_norm(&c, NORM_GN); check_config(&c, 0); }
static void test_byol_gn_ws(void **s) { (void)s; experiment_config c; cfg_with_norm(&c, NORM_GN_WS); check_config(&c, 0); }
static void test_byol_ln(void **s) { (void)s; experiment_config c; cfg_with_norm(&c, NORM_LN); check_config(&c, 0); }
static void test_byol_none(void **s) { (void)s; experiment_config c; cfg_with_norm(&c, NORM_NONE); check_config(&c, 0); }

static void test_byol_mixed_norms(void **s)
{
	(void)s;
	experiment_config c;
	testutil_config(&c);
	c.encoder_norm = NORM_GN_WS;
	c.projector_norm = NORM_BN;
	c.predictor_norm = NORM_NONE;
	check_config(&c, 0);
}

static void cnn_config(experiment_config *c, norm_kind n)
{
	testutil_config(c);
	c->encoder = ENCODER_CNN;
	c->n_encoder_widths = c->n_cnn_strides = 2;
	c->encoder_widths[0] = 4;
	c->encoder_widths[1] = 8;
	c->cnn_strides[0] = 1;
	c->cnn_strides[1] = 2;
	c->encoder_norm = n;
}

static void test_cnn_bn(void **s) { (void)s; experiment_config c; cnn_config(&c, NORM_BN); check_config(&c, 1); }
static void test_cnn_gn_ws(void **s) { (void)s; experiment_config c; cnn_config(&c, NORM_GN_WS); check_config(&c, 1); }

static void test_simclr(void **s)
{
	(void)s;
	experiment_config c;
	testutil_config(&c);
	c.method = METHOD_SIMCLR;
	c.temperature = 0.5f;
	check_config(&c, 0);
}

/* SimSiam's stop-gradient: its gradient is BYOL's with the target equal to the
 * online network (same losses, target constant). */
static void test_simsiam_is_byol_with_online_target(void **s)
{
	(void)s;
	experiment_config c;
	testutil_config(&c);
	fixture fb, fs;
	fixture_make(&fb, &c, 0);
	c.method = METHOD_SIMSIAM;
	fixture_make(&fs, &c, 0);
	memcpy(fb.st.target, fb.st.online, fb.m.n_target * sizeof(float));
	assert_int_equal(fb.m.L.total, fs.m.L.total);
	assert_memory_equal(fb.st.online, fs.st.online, fb.m.L.total * sizeof(float));
	double lb = loss_at(&fb, fb.st.online), ls = loss_at(&fs, fs.st.online);
	assert_true(lb == ls);
	assert_memory_equal(fb.r.grad, fs.r.grad, fb.m.L.total * sizeof(float));
	fixture_free(&fb);
	fixture_free(&fs);
}

static void test_layout(void **s)
{
	(void)s;
	experiment_config c;
	char err[BYOL_ERR_LEN];
	model m;
	config_defaults(&c);
	assert_int_equal(model_build(&m, &c, 28, 28, 1, err), 0);
	/* encoder 784-1024-1024-512 with BN (no biases), projector 512-1024-128,
	 * predictor 128-1024-128 */
	size_t enc = 784 * 1024 + 1024 * 1024 + 1024 * 512 + 2 * (1024 + 1024 + 512);
	size_t proj = 512 * 1024 + 2 * 1024 + 1024 * 128 + 128;
	size_t pred = 128 * 1024 + 2 * 1024 + 1024 * 128 + 128;
	assert_int_equal(m.n_target, enc + proj);
	assert_int_equal(m.L.total, enc + proj + pred);
	assert_int_equal(m.rep_dim, 512);
	assert_int_equal(m.bn_layout.total, 2 * (1024 + 1024 + 512 + 1024 + 1024));
	assert_true(param_layout_find(&m.L, "encoder.0.weight") == 0);
	model_free(&m);
}

/* The data-dependent init gives each layer's pre-activations zero mean and
 * unit variance on the init batch. */
static void test_modified_init(void **s)
{
	(void)s;
	experiment_config c;
	testutil_config(&c);
	c.encoder_norm = c.projector_norm = c.predictor_norm = NORM_NONE;
	char err[BYOL_ERR_LEN];
	dataset d;
	testutil_dataset(&d, 64, 6, 6, 1, 5);
	model m;
	assert_int_equal(model_build(&m, &c, 6, 6, 1, err), 0);
	float *w = malloc(m.L.total * sizeof(float));
	model_init_default(&m, w, 1);
	int B = 64;
	float *x = malloc((size_t)B * m.in_dim * sizeof(float));
	for (int i = 0; i < B * m.in_dim; i++)
		x[i] = (d.pixels[i] / 255.0f - d.mean) / d.std;
	assert_int_equal(model_init_modified(&m, w, x, B, err), 0);
	model_pass *p = model_pass_new(&m, B, 0);
	model_forward(&m, p, w, NULL, x, B, m.pred_end, 1);
	for (int i = 0; i < m.pred_end; i++) {
		if (m.ops[i].kind != OP_LINEAR)
			continue;
		const float *o = model_output(p, i);
		int C = m.ops[i].out_c;
		for (int ch = 0; ch < C; ch++) {
			double s1 = 0, s2 = 0;
			for (int r = 0; r < B; r++) {
				s1 += o[r * C + ch];
				s2 += (double)o[r * C + ch] * o[r * C + ch];
			}
			double mean = s1 / B, var = s2 / B - mean * mean;
			assert_true(fabs(mean) < 1e-3);
			assert_true(fabs(var - 1) < 1e-2 || var < 1e-6); /* dead units stay dead */
		}
	}
	model_pass_free(p);
	free(w);
	free(x);
	model_free(&m);
	dataset_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_byol_bn),
		cmocka_unit_test(test_byol_gn),
		cmocka_unit_test(test_byol_gn_ws),
		cmocka_unit_test(test_byol_ln),
		cmocka_unit_test(test_byol_none),
		cmocka_unit_test(test_byol_mixed_norms),
		cmocka_unit_test(test_cnn_bn),
		cmocka_unit_test(test_cnn_gn_ws),
		cmocka_unit_test(test_simclr),
		cmocka_unit_test(test_simsiam_is_byol_with_online_target),
		cmocka_unit_test(test_modified_init),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
