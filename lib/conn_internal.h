/*
 * conn_internal.h — what the files of a connection share: lib/conn.c (its life:
 * teardown, writing, reading), lib/conn_handshake.c, lib/conn_shm.c (tensors
 * through shared memory) and lib/conn_net.c (configs, creation, servers,
 * clients, addresses): the structs and the steps of closing. Private to the
 * library: only those files include it; the contract is include/byol/conn.h.
 */
#ifndef BYOL_CONN_INTERNAL_H
#define BYOL_CONN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "byol/auth.h"
#include "byol/conn.h"
#include "byol/error.h"
#include "byol/frame.h"

enum {
	ST_CONNECTING,      /* client: resolving or connecting */
	ST_AWAIT_HELLO,     /* client: connected, waiting for ServerHello */
	ST_AWAIT_RESULT,    /* client: ClientAuth sent */
	ST_AWAIT_AUTH,      /* server: ServerHello sent, waiting for ClientAuth */
	ST_OPEN,
};

/* A write request and its buffer (conn.c). */
typedef struct wreq wreq;

/* This side's shared-memory ring (conn_shm.c): a mapping of the header page
 * and `size` ring bytes, counted (rooms reserved in it hold it too). */
typedef struct {
	struct shm_map *ref;     /* the counted mapping (address, ring bytes); NULL: none */
	uint32_t id;             /* ShmRegion.id */
	uint64_t head;           /* sender: ring position after the last tensor put */
	int acked;               /* the peer has mapped it */
	uint8_t *room;           /* the last room reserved (conn_shm_reserve), until sent */
	size_t room_len;
	uint64_t room_end;       /* its ring position after it */
	uint32_t room_ring;      /* the ring's id then */
} shm_ring;

/* A config with its strings copied; a server's conns share the server's. */
typedef struct {
	conn_config c;
	char *token, *name, *version;
	size_t toklen;
} config_copy;

typedef union {
	uv_tcp_t tcp;
	uv_pipe_t pipe;
	uv_stream_t stream;
	uv_handle_t handle;
} stream_u;

struct conn_server {
	stream_u h;
	int is_pipe, closing, listener_closed;
	int adopted;             /* the listening fd was handed over (conn_listen_fd) */
	config_copy cfg;
	conn *conns;             /* accepted and not yet freed */
	char addr[160];
};

/* A pending name lookup; outlives its conn if the conn closes first. */
typedef struct resolve {
	conn *c;                 /* NULL once the conn is gone */
	uv_getaddrinfo_t req;
	char host[128];
} resolve;

struct conn {
	stream_u h;
	uv_timer_t timer;        /* handshake and orderly-close deadline */
	int handles;             /* handles not yet closed */
	uint64_t id;
	int is_server;           /* accepted (1) or connected (0) */
	int state;
	int closing;             /* 1 orderly, 2 immediate */
	int opened;              /* on_open ran / the connect callback said 0 */
	int eof, shut, reading;
	conn_server *srv;
	conn *prev, *next;       /* in srv->conns */
	const config_copy *cfg;
	config_copy own;         /* client conns: their config */
	conn_connect_cb connect_cb;
	resolve *res;
	uv_connect_t connect_req;
	uv_shutdown_t shutdown_req;
	frame_reader rd;
	frame_arena arena;
	int peer_attachments;    /* the peer takes attachment frames */
	Byol__Envelope *announced; /* decoded; waits for its attachment frame */
	size_t announced_len;
	int shm_offered;         /* server: said shm in its ServerHello */
	int shm_agreed;          /* both sides said shm in the handshake */
	int shm;                 /* ... and it has not failed since */
	shm_ring shm_out;
	struct shm_map *shm_in;  /* the peer's ring, mapped; NULL: none */
	uint32_t shm_in_id;      /* the last ShmRegion.id answered */
	const void *shm_lent;    /* the tensor being delivered, until conn_take */
	uint64_t shm_received;   /* attachments read from shm_in */
	uint8_t nonce[AUTH_NONCE_LEN]; /* server: the one sent; client: its own */
	int role;
	char name[CONN_NAME_MAX + 1];
	char peer[160];
	void *data;
	int code;
	char reason[BYOL_ERR_LEN];
	size_t queued;
	int above;               /* over high water */
	wreq *pool;
	size_t pooled;           /* bytes in the pool */
	char discard[4096];      /* reads while closing */
};

/* conn_net.c */

/* Frees k's strings (the token wiped first) and zeroes k. */
void conn_cfg_free(config_copy *k);
/* The frame limit before the handshake has finished: the smaller of
 * CONN_HANDSHAKE_MAX_FRAME and the config's max_frame. */
static inline size_t conn_handshake_max(const conn_config *cfg)
{
	return cfg->max_frame && cfg->max_frame < CONN_HANDSHAKE_MAX_FRAME ? cfg->max_frame
									   : CONN_HANDSHAKE_MAX_FRAME;
}
/* Frees s once its listener has closed and its last conn has gone. */
void conn_server_maybe_free(conn_server *s);

/* conn.c */

/* Logs a line through cfg->log, if set. */
void conn_logf(const conn_config *cfg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same about c: "conn 7 unix:/run/byold.sock (pid 12) w1: ..." */
void conn_log_peer(conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Closes both handles of c now; the last close callback reports and frees. */
void conn_close_handles(conn *c);
/* Closes c now, first (unless already closing) recording the reason, logging it
 * when `log`, and telling the peer an Error when `tell`. Returns code. */
int conn_close_now(conn *c, int code, const char *reason, int log, int tell);
/* conn_close_now, logged and told. */
int conn_close_error(conn *c, int code, const char *reason);
/* Orderly: stop delivering, flush the queue, shut down, read until the peer's
 * EOF (or the deadline), close. */
void conn_close_orderly(conn *c, const char *reason);
/* The handshake deadline (and the orderly close's): uv_timer_start's callback. */
void conn_timer_cb(uv_timer_t *t);
/* Starts reading c; 0 or a negative errno with the message in err. */
int conn_start_reading(conn *c, char *err);
/* A peer's text made safe for a log line: non-printable bytes become '?'. */
const char *conn_clean(char *dst, size_t n, const char *src);
/* Best effort: put one small frame on the socket now, if it takes it whole. */
void conn_try_send_now(conn *c, const Byol__Envelope *e);
/* Queues e whatever the state (the handshake and conn_shm.c use it). */
int conn_send_frame(conn *c, const Byol__Envelope *e, char *err);
/* The same with fd_handle's descriptor passed along (SCM_RIGHTS; c a pipe in
 * IPC mode), done(done_data, status) called once it is written or dropped;
 * on failure (< 0) done is never called. */
int conn_send_frame_fd(conn *c, const Byol__Envelope *e, uv_stream_t *fd_handle,
		       conn_write_done done, void *done_data, char *err);
/* The field of a message that an attachment fills: the one tensor of the
 * messages that carry one (StepParams.online, NodeResult.grad), else NULL. */
ProtobufCBinaryData *conn_attachment_field(const Byol__Envelope *e);

/* conn_handshake.c */

/* Server: sends ServerHello with a fresh nonce (closing c if that fails). */
void conn_send_hello(conn *c);
/* The handshake's messages, each in its turn (on_frame checks the turn):
 * the server's ClientAuth, the client's ServerHello and AuthResult. They
 * close c for anything wrong; the return value is of no use but to stop. */
int conn_on_client_auth(conn *c, const Byol__ClientAuth *a);
int conn_on_server_hello(conn *c, const Byol__ServerHello *h);
int conn_on_auth_result(conn *c, const Byol__AuthResult *res);

/* conn_shm.c */

/* 1 when c may use shared memory: the owner allows it (cfg.shm), c is a Unix
 * socket, and its peer runs as this process's user. */
int conn_shm_possible(conn *c);
/* Copies len bytes into c's ring and returns the ring position after them
 * (the Envelope's shm_end); 0 when they must travel as an attachment frame (no
 * ring acknowledged yet, or no room in it), having started a new ring when
 * there is none that fits. When data is the room conn_shm_reserve handed out
 * (still good: conn_shm_room_ok), nothing is copied: its position is returned. */
uint64_t conn_shm_put(conn *c, const void *data, size_t len);
/* ShmRegion and ShmAck from the peer. Return < 0 when c is closing. */
int conn_shm_on_region(conn *c, const Byol__ShmRegion *m);
int conn_shm_on_ack(conn *c, const Byol__ShmAck *m);
/* An Envelope with attachment and shm_end, its tensor field checked (conn.c):
 * the tensor delivered where it lies
 * in the peer's ring (conn_take keeps it there), or copied out when too many
 * are held. Returns < 0 when c is closing. */
int conn_shm_on_attachment(conn *c, Byol__Envelope *e);
/* After a read: descriptors the peer sent that no ShmRegion took are closed
 * (logged), or, more than one inside a frame, close c (< 0). */
int conn_shm_check_fds(conn *c);
/* Unmaps both rings (the peer's once nothing taken from it is held). */
void conn_shm_free(conn *c);

#endif
