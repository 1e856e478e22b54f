/*
 * bench_pixels — byold's two evaluations (kNN and the linear probe, exactly as
 * a run's final encoder gets them) on the raw pixels: the identity encoder.
 * It is the floor every learned or random encoder in docs/results is read
 * against: an encoder whose kNN is not above the pixels' has learned nothing
 * kNN can use.
 *
 * usage: bench_pixels [DATA_DIR] [--train-limit N] [--k K] [--probe-epochs E]
 *        (defaults /usr/share/datasets/fashion-mnist, all, 20, 30)
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "byol/augment.h"
#include "byol/data.h"
#include "byol/error.h"
#include "byol/eval.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The encoder's input for every image (augment_plain: scaled, normalised). */
static float *pixels(const dataset *d)
{
	size_t D = (size_t)d->h * d->w * d->c;
	float *x = malloc((size_t)d->n * D * sizeof(float));
	if (!x)
		return NULL;
	for (int i = 0; i < d->n; i++)
		augment_plain(x + (size_t)i * D, d->pixels + (size_t)i * D, d->h, d->w, d->c,
			      d->mean, d->std);
	return x;
}

int main(int argc, char **argv)
{
	const char *dir = "/usr/share/datasets/fashion-mnist";
	int limit = 0, k = 20, epochs = 30, c;
	static const struct option opts[] = {
		{"train-limit", required_argument, 0, 'n'},
		{"k", required_argument, 0, 'k'},
		{"probe-epochs", required_argument, 0, 'e'},
		{"help", no_argument, 0, 'h'},
		{0, 0, 0, 0},
	};
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'n': limit = atoi(optarg); break;
		case 'k': k = atoi(optarg); break;
		case 'e': epochs = atoi(optarg); break;
		case 'h':
			printf("usage: bench_pixels [DATA_DIR] [--train-limit N] [--k K] "
			       "[--probe-epochs E]\n");
			return 0;
		default: return 2;
		}
	}
	if (optind < argc)
		dir = argv[optind];
	dataset train = {0}, test = {0};
	char err[BYOL_ERR_LEN];
	if (dataset_load_dir(&train, &test, dir, limit, err) < 0) {
		fprintf(stderr, "bench_pixels: %s\n", err);
		return 1;
	}
	float *xtr = pixels(&train), *xte = pixels(&test);
	if (!xtr || !xte) {
		fprintf(stderr, "bench_pixels: out of memory\n");
		return 1;
	}
	int D = train.h * train.w * train.c;
	int K = train.n_classes > test.n_classes ? train.n_classes : test.n_classes;
	double knn, probe, t0 = now();
	probe_config pc = probe_defaults();
	pc.epochs = epochs;
	pc.seed = 1;
	if (eval_knn(&knn, xtr, train.labels, train.n, xte, test.labels, test.n, D, K, k, 0.1f,
		     err) < 0) {
		fprintf(stderr, "bench_pixels: %s\n", err);
		return 1;
	}
	double t1 = now();
	if (eval_probe(&probe, xtr, train.labels, train.n, xte, test.labels, test.n, D, K, &pc,
		       err) < 0) {
		fprintf(stderr, "bench_pixels: %s\n", err);
		return 1;
	}
	printf("raw pixels (%d dims), %d train / %d test images of %s:\n", D, train.n, test.n, dir);
	printf("  kNN (k = %d, cosine, temperature 0.1): %.2f%%  (%.1f s)\n", k, 100 * knn, t1 - t0);
	printf("  linear probe (%d epochs): %.2f%%  (%.1f s)\n", epochs, 100 * probe, now() - t1);
	free(xtr);
	free(xte);
	dataset_free(&train);
	dataset_free(&test);
	return 0;
}
