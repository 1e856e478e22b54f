/*
 * net.h — byol-worker's network mode: serving a coordinator (docs/protocol.md).
 *
 * worker_net_run connects to byold over TCP or a Unix socket, authenticates as a
 * worker, registers, and then follows the coordinator: RunSetup builds the
 * model, loads the dataset and a shard_runner of `threads` threads; StepParams
 * moves the online and target replicas; ShardAssign computes tree nodes and
 * answers one NodeResult each; EvalJob runs kNN or the linear probe. All
 * computing (set-up included) runs off the loop thread (uv_queue_work), one job
 * at a time, so heartbeats go out and messages come in while a step computes.
 * When the coordinator goes away the worker reconnects with exponential
 * back-off (0.1 s doubling to 10 s, with jitter). SIGTERM or SIGINT ends the
 * worker cleanly (exit status 0); a second one closes the connection at once.
 * Every event is logged to stderr, one timestamped line each.
 */
#ifndef BYOL_WORKER_NET_H
#define BYOL_WORKER_NET_H

typedef struct {
	const char *coordinator;   /* "host:port", or NULL when socket_path is set */
	const char *socket_path;   /* Unix socket of the coordinator, or NULL */
	const char *token_file;    /* cluster token file, or NULL for none */
	const char *name;          /* worker name; NULL: "<host>-<pid>" */
	int threads;               /* shards computed at once (>= 1) */
	int no_shm;                /* never take tensors through shared memory */
	unsigned heartbeat_ms;     /* 0: WORKER_HEARTBEAT_MS_DEFAULT */
} worker_net_options;

#define WORKER_HEARTBEAT_MS_DEFAULT 1000
/* Once the coordinator has sent a heartbeat on a connection, the connection is
 * dropped when nothing arrives for this long. */
#define WORKER_SILENCE_MS 30000

/* Serves coordinators until SIGTERM/SIGINT. Returns the process exit status:
 * 0 after a signal, 1 when start-up failed (token file, bad address; the reason
 * is logged). */
int worker_net_run(const worker_net_options *opt);

#endif
