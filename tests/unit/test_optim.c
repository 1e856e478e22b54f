/*
 * test_optim.c — the three optimizers against values worked out by hand, the
 * refusal of non-finite input, and the learning-rate and EMA schedules.
 *
 * The layout used throughout: "w" (2, 2) decayed, then "b" (2) no_decay, so
 * P = 6 floats. Dimension legend: P = layout.total.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <string.h>

#include "byol/optim.h"
#include "byol/params.h"

enum { P = 6, STEPS = 3 };

static const float W0[P] = { 0.5f, -1.0f, 2.0f, 0.25f, 0.1f, -0.2f };
static const float GRADS[STEPS][P] = {
	{ 0.1f, 0.2f, -0.3f, 0.4f, 0.5f, -0.5f },
	{ -0.2f, 0.1f, 0.05f, 0.3f, 0.25f, 0.1f },
	{ 0.3f, -0.1f, 0.2f, -0.2f, -0.4f, 0.3f },
};
static const float LRS[STEPS] = { 0.1f, 0.2f, 0.05f };

static void make_layout(param_layout *L)
{
	memset(L, 0, sizeof(*L));
	assert_int_equal(param_layout_add(L, "w", 2, (int[]){ 2, 2 }, 0), 0);
	assert_int_equal(param_layout_add(L, "b", 1, (int[]){ 2 }, 1), 1);
	assert_int_equal((int)L->total, P);
}

/* Runs STEPS updates from W0 and compares the parameters after each with want. */
static void run_and_compare(const optim_config *c, const float want[STEPS][P])
{
	param_layout L;
	make_layout(&L);
	float w[P], m[P] = { 0 }, v[P] = { 0 };
	memcpy(w, W0, sizeof(w));
	for (int s = 0; s < STEPS; s++) {
		assert_int_equal(optim_step(c, &L, w, GRADS[s], m, v, LRS[s], s), 0);
		for (int i = 0; i < P; i++) {
			if (fabsf(w[i] - want[s][i]) > 1e-6f * (1.0f + fabsf(want[s][i])))
				fail_msg("step %d param %d: %.9g, want %.9g", s, i, (double)w[i],
					 (double)want[s][i]);
		}
	}
	param_layout_free(&L);
}

/*
 * LARS, wd 0.01, momentum 0.9, eta 0.1. Step 0, tensor w: g' = g + 0.01 w =
 * (0.105, 0.19, -0.28, 0.4025); |w| = sqrt(5.3125) = 2.304886, |g'| = 0.536218;
 * trust = 0.1 * 2.304886 / 0.536218 = 0.429841; m = 0.429841 g';
 * w0 = 0.5 - 0.1 * 0.045133 = 0.495487. Tensor b: plain momentum, no decay:
 * b0 = 0.1 - 0.1 * 0.5 = 0.05. Later steps the same way, m carried over.
 */
static void test_lars(void **state)
{
	(void)state;
	optim_config c = { .kind = OPTIM_LARS, .weight_decay = 0.01f, .momentum = 0.9f,
			   .lars_eta = 0.1f };
	static const float want[STEPS][P] = {
		{ 0.495486679f, -1.00816696f, 2.01203552f, 0.232698935f, 0.05f, -0.15f },
		{ 0.511301242f, -1.03390347f, 2.02509336f, 0.164451416f, -0.09f, -0.08f },
		{ 0.506749039f, -1.03676117f, 2.02217669f, 0.154368388f, -0.1015f, -0.07925f },
	};
	run_and_compare(&c, want);
}

/*
 * SGD, wd 0.01, momentum 0.9. Step 0: w0 = 0.5 - 0.1 * (0.1 + 0.005) = 0.4895;
 * step 1: m = 0.9 * 0.105 + (-0.2 + 0.01 * 0.4895) = -0.100605,
 * w0 = 0.4895 + 0.2 * 0.100605 = 0.509621. b gets no decay: 0.05, then -0.09.
 */
static void test_sgd(void **state)
{
	(void)state;
	optim_config c = { .kind = OPTIM_SGD, .weight_decay = 0.01f, .momentum = 0.9f };
	static const float want[STEPS][P] = {
		{ 0.4895f, -1.019f, 2.028f, 0.20975f, 0.05f, -0.15f },
		{ 0.509621f, -1.071162f, 2.064344f, 0.0768805f, -0.09f, -0.08f },
		{ 0.498893414f, -1.07736287f, 2.06148923f, 0.0569464222f, -0.1015f,
		  -0.07925f },
	};
	run_and_compare(&c, want);
}

/*
 * AdamW, wd 0.1, betas 0.9 / 0.999, eps 1e-8. Step 0: mhat = g, vhat = g^2, so the
 * Adam direction is sign(g): w0 = 0.5 - 0.1 * (1 + 0.1 * 0.5) = 0.395, while b0 =
 * 0.1 - 0.1 * 1 = 0 (up to eps: 2e-9). Steps 1, 2 with bias corrections
 * 1 - 0.9^2, 1 - 0.999^2 and 1 - 0.9^3, 1 - 0.999^3.
 */
static void test_adamw(void **state)
{
	(void)state;
	optim_config c = { .kind = OPTIM_ADAMW, .weight_decay = 0.1f, .beta1 = 0.9f,
			   .beta2 = 0.999f, .eps = 1e-8f };
	static const float want[STEPS][P] = {
		{ 0.39500001f, -1.09f, 2.08f, 0.147500002f, 1.99999997e-09f, -0.100000002f },
		{ 0.460320711f, -1.25463591f, 2.1461075f, -0.0519650083f, -0.186435921f,
		  0.0022052106f },
		{ 0.440857054f, -1.26819799f, 2.13520135f, -0.0750907804f, -0.197129661f,
		  0.00301564501f },
	};
	run_and_compare(&c, want);
}

/* LARS leaves a decayed tensor whose weights are all zero to plain momentum. */
static void test_lars_zero_weights(void **state)
{
	(void)state;
	param_layout L;
	make_layout(&L);
	optim_config c = { .kind = OPTIM_LARS, .weight_decay = 0.01f, .momentum = 0.9f,
			   .lars_eta = 0.1f };
	float w[P] = { 0, 0, 0, 0, 1, 1 }, m[P] = { 0 };
	assert_int_equal(optim_step(&c, &L, w, GRADS[0], m, NULL, 1.0f, 0), 0);
	for (int i = 0; i < 4; i++)
		assert_true(w[i] == -GRADS[0][i]);
	param_layout_free(&L);
}

static void test_rejects_non_finite(void **state)
{
	(void)state;
	param_layout L;
	make_layout(&L);
	const optim_kind kinds[] = { OPTIM_LARS, OPTIM_SGD, OPTIM_ADAMW };
	for (int k = 0; k < 3; k++) {
		optim_config c = { .kind = kinds[k], .weight_decay = 0.01f, .momentum = 0.9f,
				   .lars_eta = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f,
				   .eps = 1e-8f };
		for (int bad = 0; bad < 3; bad++) {
			float w[P], m[P], v[P], g[P];
			memcpy(w, W0, sizeof(w));
			memcpy(g, GRADS[0], sizeof(g));
			for (int i = 0; i < P; i++)
				m[i] = v[i] = 0.01f * (float)i;
			/* The bad value sits in the LAST tensor, after w could have
			 * been updated. */
			if (bad == 0)
				g[5] = NAN;
			else if (bad == 1)
				g[4] = INFINITY;
			else
				w[5] = -INFINITY;
			float w1[P], m1[P], v1[P];
			memcpy(w1, w, sizeof(w));
			memcpy(m1, m, sizeof(m));
			memcpy(v1, v, sizeof(v));
			assert_int_equal(optim_step(&c, &L, w, g, m, v, 0.1f, 0), -EINVAL);
			assert_memory_equal(w, w1, sizeof(w));
			assert_memory_equal(m, m1, sizeof(m));
			assert_memory_equal(v, v1, sizeof(v));
		}
	}
	param_layout_free(&L);
}

static void test_lr_schedule(void **state)
{
	(void)state;
	const float base = 0.4f;
	const long warm = 10, total = 110;
	/* Warmup: base * (s + 1) / warmup, reaching the peak on its last step. */
	assert_float_equal(optim_lr_at(base, 0, warm, total), 0.04f, 1e-7f);
	assert_float_equal(optim_lr_at(base, 4, warm, total), 0.2f, 1e-7f);
	assert_float_equal(optim_lr_at(base, 9, warm, total), base, 1e-7f);
	/* Cosine from the peak at step = warmup to 0 at total. */
	assert_float_equal(optim_lr_at(base, 10, warm, total), base, 1e-7f);
	assert_float_equal(optim_lr_at(base, 60, warm, total), 0.2f, 1e-7f);
	assert_float_equal(optim_lr_at(base, 35, warm, total),
			   0.4f * 0.5f * (1.0f + cosf((float)M_PI / 4)), 1e-6f);
	assert_true(optim_lr_at(base, 109, warm, total) > 0.0f);
	assert_true(optim_lr_at(base, 109, warm, total) < 1e-3f);
	assert_true(optim_lr_at(base, 110, warm, total) == 0.0f);
	assert_true(optim_lr_at(base, 200, warm, total) == 0.0f);
	/* No warmup: the peak at step 0. */
	assert_float_equal(optim_lr_at(base, 0, 0, 100), base, 1e-7f);
	/* Monotone after the peak. */
	for (long s = warm; s < total; s++)
		assert_true(optim_lr_at(base, s + 1, warm, total) <=
			    optim_lr_at(base, s, warm, total));
}

static void test_tau_schedule(void **state)
{
	(void)state;
	assert_float_equal(ema_tau_at(0.99f, 0, 1000), 0.99f, 1e-7f);
	assert_float_equal(ema_tau_at(0.99f, 500, 1000), 0.995f, 1e-7f);
	assert_true(ema_tau_at(0.99f, 1000, 1000) == 1.0f);
	assert_true(ema_tau_at(0.996f, 1000, 1000) == 1.0f);
	for (long s = 0; s < 1000; s += 37)
		assert_true(ema_tau_at(0.99f, s + 37, 1000) >= ema_tau_at(0.99f, s, 1000));
}

static void test_ema_update(void **state)
{
	(void)state;
	float target[4] = { 1.0f, -2.0f, 0.5f, 0.0f };
	const float online[4] = { 3.0f, 2.0f, 0.5f, -1.0f };
	ema_update(target, online, 4, 0.75f);
	assert_float_equal(target[0], 1.5f, 1e-7f);
	assert_float_equal(target[1], -1.0f, 1e-7f);
	assert_float_equal(target[2], 0.5f, 1e-7f);
	assert_float_equal(target[3], -0.25f, 1e-7f);
	ema_update(target, online, 4, 1.0f); /* tau = 1: the target stays */
	assert_float_equal(target[0], 1.5f, 0.0f);
	ema_update(target, online, 4, 0.0f); /* tau = 0: a copy */
	assert_memory_equal(target, online, sizeof(online));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lars),
		cmocka_unit_test(test_sgd),
		cmocka_unit_test(test_adamw),
		cmocka_unit_test(test_lars_zero_weights),
		cmocka_unit_test(test_rejects_non_finite),
		cmocka_unit_test(test_lr_schedule),
		cmocka_unit_test(test_tau_schedule),
		cmocka_unit_test(test_ema_update),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
