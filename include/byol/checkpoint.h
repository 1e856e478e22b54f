/*
 * checkpoint.h — a run's state as a safetensors file.
 *
 * Tensors: "online.<param>", "target.<param>" (BYOL), "optim.m.<param>",
 * "optim.v.<param>" (AdamW), "bn.<name>" (running statistics), each with the
 * shape of its param_layout entry. __metadata__: format = "byold-checkpoint-1",
 * step (steps applied), config_hash, config (the canonical JSON), method.
 * The file is written atomically (temp file, fsync, rename, directory fsync).
 */
#ifndef BYOL_CHECKPOINT_H
#define BYOL_CHECKPOINT_H

#include "byol/model.h"
#include "byol/step.h"

/* Writes st to path; sha256_hex (65 bytes, may be NULL) receives the file hash.
 * Returns 0 or -errno with err (-ENOSPC on a full disk; path then untouched). */
int checkpoint_save(const char *path, const model *m, const train_state *st,
		    char *sha256_hex, char *err);

/* Reads path into an initialised st (train_state_init) of the same model: every
 * tensor must be present with its shape, and the config hash must match.
 * Returns 0 or -errno with err; st is unchanged on failure. */
int checkpoint_load(const char *path, const model *m, train_state *st, char *err);

/* Writes only the online encoder's parameters (and its BN running statistics)
 * as "encoder.*" tensors, for use outside byold. */
int checkpoint_export_encoder(const char *path, const model *m, const train_state *st,
			      char *err);

#endif
