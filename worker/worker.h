/*
 * worker.h — what byol-worker's network mode shares between its two files:
 * net.c (jobs and the coordinator's messages) and link.c (the connection:
 * connecting, back-off, heartbeats, signals, worker_net_run).
 */
#ifndef BYOL_WORKER_WORKER_H
#define BYOL_WORKER_WORKER_H

#include <stdint.h>

#include <uv.h>

#include "byol/conn.h"
#include "byol/error.h"
#include "net.h"
#include "run.h"

#define WORKER_VERSION "byol-worker/1"

typedef enum { JOB_SETUP, JOB_NODES, JOB_EVAL } job_kind;

typedef struct worker worker;

typedef struct job {
	uv_work_t req;
	worker *w;
	struct job *next;
	job_kind kind;
	uint64_t gen;           /* the connection that asked */
	int rc;
	char err[BYOL_ERR_LEN];
	run_state *rs;          /* SETUP: the result; else the run it computes for */
	long step;
	double seconds;
	/* JOB_SETUP */
	run_setup_args setup;   /* its config_json is owned */
	/* JOB_NODES: node i is [lo[i], hi[i]), its leaves at leaves[off[i]...] */
	int n_nodes;
	int *lo, *hi, *off;
	/* JOB_EVAL */
	uint64_t job_id;
	char eval_kind[8];
	float *online;          /* (P) */
	float *bn;              /* (NB + 1) */
	double accuracy;
} job;

/* A message kept for later, packed. */
typedef struct inbox_msg {
	struct inbox_msg *next;
	size_t len;
	uint8_t data[];
} inbox_msg;

struct worker {
	uv_loop_t loop;
	worker_net_options opt;
	char name[CONN_NAME_MAX + 1];
	char host[256];
	char *token;
	const char *addr;       /* for messages */
	conn *c;                /* connecting or open; NULL in between */
	int open;
	uint64_t gen;           /* bumped on every open and close */
	uint64_t opened_ms, last_rx_ms, last_step_log_ms;
	int peer_beats;         /* the coordinator heartbeats on this connection */
	uint64_t hb_seq;
	double backoff;         /* seconds, the next retry's base delay */
	uint64_t rng;
	uv_timer_t hb_timer, retry_timer;
	uv_signal_t sig_term, sig_int;
	int stopping, finishing;
	run_state *run;
	job *busy;              /* in the threadpool */
	job *q_head, *q_tail;   /* waiting */
	int nodes_pending;      /* JOB_NODES busy or waiting */
	int borrowed;           /* NodeResults being written from the run's leaves */
	int shm_said;           /* logged that this connection's tensors come through
				 * shared memory */
	inbox_msg *in_head, *in_tail;
};

/* link.c */
uint64_t wn_now_ms(void);
int64_t wn_wall_ms(void);
/* Once stopping, nothing connected and no job running: ends the loop. */
void wn_maybe_finish(worker *w);

/* net.c */
/* A message from the coordinator (conn's on_message). */
void wn_on_message(conn *c, Byol__Envelope *e);
/* Drops the waiting jobs (not the one in the threadpool); why goes to the log. */
void wn_queue_drop(worker *w, const char *why);
/* Drops the messages kept for later. */
void wn_inbox_clear(worker *w);
/* Sends e on the open connection (a failure is logged). */
void wn_send_env(worker *w, Byol__Envelope *e);

#endif
