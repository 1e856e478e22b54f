/*
 * test_eval.c — the linear probe and the kNN classifier on synthetic clusters,
 * on random labels, against a brute-force kNN, and (when the dataset is
 * installed) the probe on Fashion-MNIST's raw pixels.
 *
 * Dimension legend: NTR, NTE train / test samples, D features, K classes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "byol/error.h"
#include "byol/eval.h"
#include "byol/rng.h"

#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"

/* Under the sanitizers the loops run several times slower: the Fashion-MNIST
 * tests then train on a third of the train set, against a lower bar. */
#if defined(__SANITIZE_ADDRESS__)
#define FMNIST_TRAIN 20000
#define FMNIST_PROBE_BAR 0.81
#else
#define FMNIST_TRAIN 60000
#define FMNIST_PROBE_BAR 0.835
#endif

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* n samples of K gaussian clusters in D dimensions: centres (K, D) ~ N(0, sep^2),
 * each sample its centre plus N(0, 1) noise; label i % K (or uniform random labels
 * when random_labels). x (n, D), y (n). */
static void make_clusters(float *x, uint8_t *y, int n, int D, int K, float sep,
			  int random_labels, uint64_t seed)
{
	rng_stream s;
	rng_stream_init(&s, 1234, 0, 0, 0); /* the same centres for train and test */
	float *centre = malloc((size_t)K * D * sizeof(float));
	assert_non_null(centre);
	for (int i = 0; i < K * D; i++)
		centre[i] = sep * rng_normal(&s);
	rng_stream_init(&s, seed, 1, 0, 0);
	for (int i = 0; i < n; i++) {
		int c = i % K;
		for (int d = 0; d < D; d++)
			x[(size_t)i * D + d] = centre[c * D + d] + rng_normal(&s);
		y[i] = (uint8_t)(random_labels ? rng_below(&s, (uint32_t)K) : (uint32_t)c);
	}
	free(centre);
}

typedef struct {
	float *xtr, *xte;
	uint8_t *ytr, *yte;
	int ntr, nte, D, K;
} dataset;

static void make_dataset(dataset *ds, int ntr, int nte, int D, int K, float sep,
			 int random_labels)
{
	ds->ntr = ntr;
	ds->nte = nte;
	ds->D = D;
	ds->K = K;
	ds->xtr = malloc((size_t)ntr * D * sizeof(float));
	ds->xte = malloc((size_t)nte * D * sizeof(float));
	ds->ytr = malloc((size_t)ntr);
	ds->yte = malloc((size_t)nte);
	assert_true(ds->xtr && ds->xte && ds->ytr && ds->yte);
	make_clusters(ds->xtr, ds->ytr, ntr, D, K, sep, random_labels, 1);
	make_clusters(ds->xte, ds->yte, nte, D, K, sep, random_labels, 2);
}

static void free_dataset(dataset *ds)
{
	free(ds->xtr);
	free(ds->xte);
	free(ds->ytr);
	free(ds->yte);
}

/* ------------------------------------------------------------------ probe */

static void test_probe_clusters(void **state)
{
	(void)state;
	dataset ds = { 0 };
	/* Offset the clusters far from the origin and scale one dimension up, so
	 * that the standardisation has work to do. */
	make_dataset(&ds, 3000, 1000, 32, 5, 3.0f, 0);
	for (int i = 0; i < ds.ntr; i++) {
		ds.xtr[(size_t)i * ds.D] = 1000.0f * ds.xtr[(size_t)i * ds.D] + 50.0f;
		ds.xtr[(size_t)i * ds.D + 1] += 300.0f;
	}
	for (int i = 0; i < ds.nte; i++) {
		ds.xte[(size_t)i * ds.D] = 1000.0f * ds.xte[(size_t)i * ds.D] + 50.0f;
		ds.xte[(size_t)i * ds.D + 1] += 300.0f;
	}
	probe_config c = probe_defaults();
	c.seed = 7;
	double acc = -1;
	char err[BYOL_ERR_LEN] = "";
	assert_int_equal(eval_probe(&acc, ds.xtr, ds.ytr, ds.ntr, ds.xte, ds.yte, ds.nte,
				    ds.D, ds.K, &c, err), 0);
	print_message("probe on separated clusters: %.4f\n", acc);
	assert_true(acc > 0.995);

	/* Deterministic: the same figure again, bit for bit. */
	double again = -1;
	assert_int_equal(eval_probe(&again, ds.xtr, ds.ytr, ds.ntr, ds.xte, ds.yte, ds.nte,
				    ds.D, ds.K, &c, err), 0);
	assert_true(acc == again);
	free_dataset(&ds);
}

static void test_probe_random_labels(void **state)
{
	(void)state;
	dataset ds = { 0 };
	make_dataset(&ds, 2000, 4000, 16, 4, 0.0f, 1);
	probe_config c = probe_defaults();
	c.epochs = 5;
	double acc = -1;
	assert_int_equal(eval_probe(&acc, ds.xtr, ds.ytr, ds.ntr, ds.xte, ds.yte, ds.nte,
				    ds.D, ds.K, &c, NULL), 0);
	print_message("probe on random labels: %.4f (chance 0.25)\n", acc);
	assert_true(fabs(acc - 0.25) < 0.04);
	free_dataset(&ds);
}

static void test_probe_rejects(void **state)
{
	(void)state;
	dataset ds = { 0 };
	make_dataset(&ds, 100, 50, 8, 3, 3.0f, 0);
	probe_config c = probe_defaults();
	double acc = -1;
	char err[BYOL_ERR_LEN] = "";
	ds.ytr[17] = 3; /* a label out of [0, K) */
	assert_int_equal(eval_probe(&acc, ds.xtr, ds.ytr, ds.ntr, ds.xte, ds.yte, ds.nte,
				    ds.D, ds.K, &c, err), -EINVAL);
	assert_non_null(strstr(err, "label"));
	ds.ytr[17] = 0;
	ds.xte[33] = NAN;
	assert_int_equal(eval_probe(&acc, ds.xtr, ds.ytr, ds.ntr, ds.xte, ds.yte, ds.nte,
				    ds.D, ds.K, &c, err), -EINVAL);
	assert_non_null(strstr(err, "finite"));
	ds.xte[33] = 0;
	c.epochs = 0;
	assert_int_equal(eval_probe(&acc, ds.xtr, ds.ytr, ds.ntr, ds.xte, ds.yte, ds.nte,
				    ds.D, ds.K, &c, err), -EINVAL);
	assert_true(acc == -1);
	free_dataset(&ds);
}

/* The idx file at FMNIST_DIR/name: 16-byte header for images, 8 for labels.
 * Returns the bytes after the header (malloc'd), NULL when absent. */
static uint8_t *read_idx(const char *name, size_t header, size_t n)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", FMNIST_DIR, name);
	gzFile f = gzopen(path, "rb");
	if (!f)
		return NULL;
	uint8_t hdr[16];
	uint8_t *data = malloc(n);
	assert_non_null(data);
	assert_int_equal(gzread(f, hdr, (unsigned)header), (int)header);
	assert_int_equal(gzread(f, data, (unsigned)n), (int)n);
	gzclose(f);
	return data;
}

static int load_fmnist(dataset *ds)
{
	enum { NTR = 60000, NTE = 10000, D = 784 };
	uint8_t *itr = read_idx("train-images-idx3-ubyte.gz", 16, (size_t)NTR * D);
	if (!itr)
		return 0;
	uint8_t *ite = read_idx("t10k-images-idx3-ubyte.gz", 16, (size_t)NTE * D);
	ds->ytr = read_idx("train-labels-idx1-ubyte.gz", 8, NTR);
	ds->yte = read_idx("t10k-labels-idx1-ubyte.gz", 8, NTE);
	assert_true(ite && ds->ytr && ds->yte);
	ds->ntr = NTR;
	ds->nte = NTE;
	ds->D = D;
	ds->K = 10;
	ds->xtr = malloc((size_t)NTR * D * sizeof(float));
	ds->xte = malloc((size_t)NTE * D * sizeof(float));
	assert_true(ds->xtr && ds->xte);
	for (size_t i = 0; i < (size_t)NTR * D; i++)
		ds->xtr[i] = itr[i] / 255.0f;
	for (size_t i = 0; i < (size_t)NTE * D; i++)
		ds->xte[i] = ite[i] / 255.0f;
	free(itr);
	free(ite);
	return 1;
}

/* A good logistic regression on Fashion-MNIST pixels reaches ~84-85%. */
static void test_probe_fashion_mnist(void **state)
{
	(void)state;
	dataset ds = { 0 };
	if (!load_fmnist(&ds))
		skip();
	probe_config c = probe_defaults();
	c.epochs = 10; /* raw pixels: converged by 10 epochs; keeps the test short */
	c.seed = 1;
	double acc = -1, t0 = now();
	char err[BYOL_ERR_LEN] = "";
	assert_int_equal(eval_probe(&acc, ds.xtr, ds.ytr, FMNIST_TRAIN, ds.xte, ds.yte,
				    ds.nte, ds.D, ds.K, &c, err), 0);
	print_message("probe on Fashion-MNIST pixels (%d train images): %.4f in %.2f s\n",
		      FMNIST_TRAIN, acc, now() - t0);
	assert_true(acc > FMNIST_PROBE_BAR);
	assert_true(acc < 0.90);
	free_dataset(&ds);
}

/* -------------------------------------------------------------------- kNN */

/* kNN on Fashion-MNIST pixels (the first 500 test images against the train
 * set): cosine kNN on raw pixels is known to land around 85%. */
static void test_knn_fashion_mnist(void **state)
{
	(void)state;
	dataset ds = { 0 };
	if (!load_fmnist(&ds))
		skip();
	double acc = -1, t0 = now();
	assert_int_equal(eval_knn(&acc, ds.xtr, ds.ytr, FMNIST_TRAIN, ds.xte, ds.yte, 500,
				  ds.D, ds.K, 20, 0.07f, NULL), 0);
	print_message("knn on Fashion-MNIST pixels (%d train, 500 test images): %.4f in "
		      "%.2f s\n", FMNIST_TRAIN, acc, now() - t0);
	assert_true(acc > 0.80);
	assert_true(acc < 0.90);
	free_dataset(&ds);
}

static void test_knn_clusters(void **state)
{
	(void)state;
	dataset ds = { 0 };
	make_dataset(&ds, 3000, 1000, 32, 5, 3.0f, 0);
	double acc = -1;
	assert_int_equal(eval_knn(&acc, ds.xtr, ds.ytr, ds.ntr, ds.xte, ds.yte, ds.nte,
				  ds.D, ds.K, 20, 0.07f, NULL), 0);
	print_message("knn on separated clusters: %.4f\n", acc);
	assert_true(acc > 0.995);
	free_dataset(&ds);
}

static void test_knn_random_labels(void **state)
{
	(void)state;
	dataset ds = { 0 };
	make_dataset(&ds, 2000, 4000, 16, 4, 0.0f, 1);
	double acc = -1;
	assert_int_equal(eval_knn(&acc, ds.xtr, ds.ytr, ds.ntr, ds.xte, ds.yte, ds.nte,
				  ds.D, ds.K, 20, 0.1f, NULL), 0);
	print_message("knn on random labels: %.4f (chance 0.25)\n", acc);
	assert_true(fabs(acc - 0.25) < 0.04);
	free_dataset(&ds);
}

/* The class eval_knn predicts for test row x (D): the label for which a
 * one-sample test set scores 1. */
static int knn_predict(const dataset *ds, const float *x, int k, float t)
{
	int pred = -1;
	for (int c = 0; c < ds->K; c++) {
		uint8_t y = (uint8_t)c;
		double acc = -1;
		assert_int_equal(eval_knn(&acc, ds->xtr, ds->ytr, ds->ntr, x, &y, 1, ds->D,
					  ds->K, k, t, NULL), 0);
		if (acc == 1.0) {
			assert_int_equal(pred, -1);
			pred = c;
		} else {
			assert_true(acc == 0.0);
		}
	}
	assert_int_not_equal(pred, -1);
	return pred;
}

/* Brute force: all similarities in double, a full sort by (similarity desc,
 * index asc), the first k vote with exp(sim / t), lowest class on a tie. */
static int knn_reference(const dataset *ds, const float *x, int k, double t)
{
	double *sim = malloc((size_t)ds->ntr * sizeof(double));
	int *order = malloc((size_t)ds->ntr * sizeof(int));
	assert_true(sim && order);
	double nx = 0;
	for (int d = 0; d < ds->D; d++)
		nx += (double)x[d] * x[d];
	for (int j = 0; j < ds->ntr; j++) {
		const float *r = ds->xtr + (size_t)j * ds->D;
		double dot = 0, nr = 0;
		for (int d = 0; d < ds->D; d++) {
			dot += (double)x[d] * r[d];
			nr += (double)r[d] * r[d];
		}
		sim[j] = dot / sqrt(nx * nr);
		order[j] = j;
	}
	for (int i = 1; i < ds->ntr; i++) /* insertion sort, stable */
		for (int j = i; j > 0 && sim[order[j]] > sim[order[j - 1]]; j--) {
			int tmp = order[j];
			order[j] = order[j - 1];
			order[j - 1] = tmp;
		}
	double votes[256] = { 0 };
	for (int i = 0; i < k && i < ds->ntr; i++)
		votes[ds->ytr[order[i]]] += exp(sim[order[i]] / t);
	int best = 0;
	for (int c = 1; c < ds->K; c++)
		if (votes[c] > votes[best])
			best = c;
	free(sim);
	free(order);
	return best;
}

static void test_knn_brute_force(void **state)
{
	(void)state;
	dataset ds = { 0 };
	/* Overlapping clusters, so that the votes are genuinely contested. */
	make_dataset(&ds, 300, 40, 6, 3, 0.7f, 0);
	const int ks[] = { 1, 7, 50, 1000 };
	const float ts[] = { 0.07f, 0.5f, 0.1f, 1.0f };
	int agree = 0, total = 0, contested = 0;
	for (int q = 0; q < 4; q++)
		for (int i = 0; i < ds.nte; i++) {
			const float *x = ds.xte + (size_t)i * ds.D;
			int got = knn_predict(&ds, x, ks[q], ts[q]);
			int want = knn_reference(&ds, x, ks[q], ts[q]);
			agree += got == want;
			contested += want != ds.yte[i];
			total++;
		}
	print_message("knn vs brute force: %d of %d agree (%d predictions wrong)\n", agree,
		      total, contested);
	assert_int_equal(agree, total);
	assert_true(contested > 0);
	free_dataset(&ds);
}

static void test_knn_ties(void **state)
{
	(void)state;
	/* Exact ties (small integers: every dot product exact). Train rows 0 and 1
	 * are the same direction with labels 1 and 2: with k = 1 the lower index
	 * wins; in the other order, the other label. */
	float xtr[4 * 2] = { 1, 0, 2, 0, 0, 1, 0, 3 };
	uint8_t ytr[4] = { 1, 2, 0, 0 };
	dataset ds = { xtr, NULL, ytr, NULL, 4, 0, 2, 3 };
	const float x[2] = { 5, 0 };
	assert_int_equal(knn_predict(&ds, x, 1, 0.1f), 1);
	ytr[0] = 2;
	ytr[1] = 1;
	assert_int_equal(knn_predict(&ds, x, 1, 0.1f), 2);
	/* k = 2: both vote with the same weight; the lower class wins. */
	assert_int_equal(knn_predict(&ds, x, 2, 0.1f), 1);
	/* k = 3 at a tiny temperature: the third vote (class 0, sim 0) is nil. */
	assert_int_equal(knn_predict(&ds, x, 3, 1e-4f), 1);
	/* k = 4 at a huge temperature: two class 0 votes against one each. */
	assert_int_equal(knn_predict(&ds, x, 4, 1e4f), 0);
}

static void test_knn_rejects(void **state)
{
	(void)state;
	dataset ds = { 0 };
	make_dataset(&ds, 100, 50, 8, 3, 3.0f, 0);
	double acc = -1;
	char err[BYOL_ERR_LEN] = "";
	assert_int_equal(eval_knn(&acc, ds.xtr, ds.ytr, ds.ntr, ds.xte, ds.yte, ds.nte, ds.D,
				  ds.K, 0, 0.1f, err), -EINVAL);
	assert_int_equal(eval_knn(&acc, ds.xtr, ds.ytr, ds.ntr, ds.xte, ds.yte, ds.nte, ds.D,
				  ds.K, 5, 0.0f, err), -EINVAL);
	ds.yte[3] = 9;
	assert_int_equal(eval_knn(&acc, ds.xtr, ds.ytr, ds.ntr, ds.xte, ds.yte, ds.nte, ds.D,
				  ds.K, 5, 0.1f, err), -EINVAL);
	assert_non_null(strstr(err, "label"));
	assert_true(acc == -1);
	free_dataset(&ds);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_probe_clusters),
		cmocka_unit_test(test_probe_random_labels),
		cmocka_unit_test(test_probe_rejects),
		cmocka_unit_test(test_probe_fashion_mnist),
		cmocka_unit_test(test_knn_clusters),
		cmocka_unit_test(test_knn_random_labels),
		cmocka_unit_test(test_knn_fashion_mnist),
		cmocka_unit_test(test_knn_brute_force),
		cmocka_unit_test(test_knn_ties),
		cmocka_unit_test(test_knn_rejects),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
