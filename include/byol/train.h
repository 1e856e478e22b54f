/*
 * train.h — a whole run in one process, and the evaluation of an encoder.
 *
 * train_local drives both halves of every step (step.h) in this process: the
 * reference the distributed system must match byte for byte, and the
 * `byol-worker --local` mode. It prints progress to `progress` (a FILE *, may be
 * NULL) and returns its figures in a train_report.
 */
#ifndef BYOL_TRAIN_H
#define BYOL_TRAIN_H

#include "byol/config.h"
#include "byol/data.h"
#include "byol/model.h"
#include "byol/step.h"

/* The representation (online encoder output, BN in evaluation mode) of every
 * image of d, in batches: out (d->n, m->rep_dim). Returns 0 or -ENOMEM. */
int train_features(const model *m, const float *online, const float *bn_running,
		   const dataset *d, float *out);

typedef struct {
	double knn_acc, probe_acc;      /* -1 when not computed */
} eval_report;

/* kNN (when do_knn) and linear probe (when do_probe) of the encoder in st, with
 * train set `train` and test set `test`. */
int train_evaluate(const model *m, const train_state *st, const dataset *train,
		   const dataset *test, int do_knn, int do_probe, eval_report *out, char *err);

typedef struct {
	long steps;
	double final_loss;              /* mean loss over the last epoch's steps */
	double collapse;                /* mean collapse figure over the last epoch */
	double knn_acc, probe_acc;      /* final; -1 when not computed */
	double img_per_s;               /* training images (x2 views) per second */
	double train_seconds, eval_seconds;
	double first_epoch_collapse;    /* mean collapse figure over the first epoch */
} train_report;

typedef struct {
	int threads;                    /* shards computed at once (default 1) */
	const char *checkpoint_path;    /* final checkpoint, or NULL */
	double progress_seconds;        /* seconds between progress lines (default 5) */
} train_options;

int train_local(const experiment_config *cfg, const train_options *opt, void *progress,
		train_report *out, char *err);

/* Evaluates the checkpoint at path as train_local's final evaluation would: the
 * model and training settings come from the config stored in the checkpoint;
 * data.dir and the [eval] settings (knn_k, probe, probe_epochs) from cfg. kNN
 * and, when probe is set, the linear probe, with `threads` OpenBLAS threads.
 * out->steps is the checkpoint's step. */
int train_eval_checkpoint(const experiment_config *cfg, const char *path, int threads,
			  train_report *out, char *err);

#endif
