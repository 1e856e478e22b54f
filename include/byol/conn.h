/*
 * conn.h — authenticated connections carrying Envelopes over libuv streams (TCP
 * or Unix sockets); what byold, byol-worker and byolctl all talk through.
 *
 * A conn embeds its uv_tcp_t / uv_pipe_t (handle->data points back at it) and a
 * timer, and is freed only in their close callbacks, never while a callback that
 * received it is still running. A conn and its server belong to one loop and are
 * used on that loop's thread only (loops in several threads are fine).
 *
 * Handshake (proto/byol.proto has the messages): a server-side conn sends
 * ServerHello with a fresh random nonce at once, accepts one ClientAuth, checks
 * its HMAC in constant time when the server has a token, answers AuthResult with
 * its own proof, and only then is it open: cfg.on_open is called and later
 * messages go to cfg.on_message. A client-side conn answers the hello with the
 * token it was given and checks the server's proof (a client that holds a token
 * refuses a server that has none: such a server cannot prove anything); its
 * connect callback is called once, when the conn is open or has failed. The
 * connect and handshake together must finish within cfg.handshake_ms.
 *
 * Closing: a conn closes on conn_close, on the peer's EOF or a socket error, and
 * on anything malformed from the peer — a frame length over cfg.max_frame or
 * zero, bytes that do not unpack as an Envelope, a stream that ends inside a
 * frame, a handshake message out of turn, a wrong token, a handshake timeout.
 * Each such close is logged through cfg.log with the peer and the reason
 * ("conn 7 127.0.0.1:50312: frame length 1195725856 exceeds the limit 268435456"),
 * an Error (or a refusing AuthResult) is sent to the peer if the socket takes it
 * at once, and nothing else is affected. cfg.on_close is called once for every
 * conn that was open (for client conns: whose connect callback reported 0), last
 * thing before the conn is freed; the conn pointer is dangling after it returns.
 *
 * Reading: each conn owns a frame_reader and a frame_arena (frame.h), so a large
 * frame is read straight into its buffer in 64 KiB pieces and unpacked without a
 * malloc once the first frame of that size has been seen.
 *
 * Writing: conn_send packs an Envelope into a buffer owned by the write request
 * and queues it; the buffer goes back to a per-conn pool in the write callback
 * (frames of 64 KiB and more, at most 2 * high_water bytes kept), so a steady
 * stream of large frames allocates nothing and touches no fresh pages. The bytes
 * queued and not yet written are conn_write_queue_size; going over
 * cfg.high_water calls cfg.on_high_water, falling back to half of it calls
 * cfg.on_drain. The watermark is advisory: conn_send never refuses for it; a
 * sender is expected to pause between the two callbacks.
 *
 * Signals: the first listen or connect sets SIGPIPE to SIG_IGN unless the program
 * has installed a handler of its own: a peer that vanishes must not end the
 * process.
 *
 * Codes (negative errno, libuv's codes being the same on Linux): -EACCES failed
 * authentication, -EPROTO a protocol violation, -EMSGSIZE a frame over the limit,
 * -EBADMSG a malformed frame, -ETIMEDOUT a handshake timeout, -ECONNRESET a peer
 * gone during the handshake, -ECANCELED a connect cancelled or a server shutting
 * down, -EPIPE a send on a closing conn, -ENOTCONN a send before the handshake
 * finished, any socket error.
 */
#ifndef BYOL_CONN_H
#define BYOL_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "byol/error.h"
#include "proto/byol.pb-c.h"

#define CONN_PROTOCOL 1                          /* ServerHello/ClientAuth.protocol */
#define CONN_HIGH_WATER_DEFAULT ((size_t)32 << 20) /* 32 MiB */
#define CONN_HANDSHAKE_MS_DEFAULT 10000
/* Frames read before the handshake has finished are at most this long (the
 * handshake's own messages are a few hundred bytes): an unauthenticated peer
 * cannot make a conn reserve max_frame bytes with a 4-byte length. */
#define CONN_HANDSHAKE_MAX_FRAME ((size_t)64 << 10)
#define CONN_NAME_MAX 63                         /* ClientAuth.name */

typedef struct conn conn;
typedef struct conn_server conn_server;

/* What an owner gives a listener or an outgoing connection. Copied (strings
 * included) by conn_listen_* and conn_connect_*; zero fields take defaults. */
typedef struct {
	/* token: NULL or "" for none. A server without one sends auth_required =
	 * false and accepts any ClientAuth; it may then listen on loopback and
	 * Unix sockets only. */
	const char *token;
	int role;               /* client side: AUTH_ROLE_WORKER or AUTH_ROLE_CLIENT */
	const char *name;       /* client side: sent in ClientAuth (<= CONN_NAME_MAX) */
	const char *version;    /* sent in the handshake; default "byold" */
	size_t max_frame;       /* largest frame accepted; 0 = FRAME_MAX_DEFAULT. Also
				 * the largest conn_send accepts. */
	size_t high_water;      /* 0 = CONN_HIGH_WATER_DEFAULT */
	unsigned handshake_ms;  /* 0 = CONN_HANDSHAKE_MS_DEFAULT */
	void *data;             /* the owner; conn_owner() returns it */
	/* Shared-memory attachments (conn_send_borrowed): on a conn over a Unix
	 * socket whose peer runs as this user and allows them too, tensors are
	 * copied through a shared ring instead of the socket. 0 = never. */
	int shm;

	/* Server side: a peer has authenticated. conn_role/conn_name are set; the
	 * owner may attach its state with conn_set_data. */
	void (*on_open)(conn *c);
	/* A message from the open conn. msg and everything it points to (bytes
	 * fields included, 16-byte aligned) live only until the callback returns:
	 * copy what you keep. Handshake messages never arrive here. The callback
	 * may send, close this or any conn, or close the server. A message the
	 * owner does not accept from this peer is answered like a malformed frame:
	 * conn_close(c, -EPROTO, "unexpected %s", frame_msg_name(msg->msg_case)). */
	void (*on_message)(conn *c, Byol__Envelope *msg);
	/* The open conn is gone: code 0 for an orderly close by either side, else
	 * why (see the top); reason is one line. Called once, from the close
	 * callback; no other callback for c follows. */
	void (*on_close)(conn *c, int code, const char *reason);
	/* The write queue went over high_water; called from inside conn_send. */
	void (*on_high_water)(conn *c);
	/* The write queue fell to high_water / 2 after being over high_water. */
	void (*on_drain)(conn *c);
	/* One line per abnormal event (a conn closed for an error, an accept that
	 * failed); may be NULL. */
	void (*log)(void *data, const char *line);
} conn_config;

/* Called exactly once per conn_connect_* that returned 0: status 0 when the conn
 * is open (send on it; on_close will follow some day), or a negative code and a
 * reason when it failed (refused, timed out, authentication failed, closed by
 * conn_close: -ECANCELED) — then c is freed when the callback returns and
 * on_close is never called. */
typedef void (*conn_connect_cb)(conn *c, int status, const char *reason);

/* ---- servers ------------------------------------------------------------- */

/* Listens on "host:port" ("127.0.0.1:7070", "[::1]:7070", "localhost:7070",
 * "0.0.0.0:7070"; port 0 = chosen by the kernel, see conn_server_port). Without
 * a token only a loopback address is allowed (-EPERM otherwise). Returns 0 and
 * *out, or -EINVAL (a bad address), -EADDRINUSE, any bind/listen error, with a
 * message naming the address; on failure *out is NULL and nothing is left on
 * the loop but handles already closing. */
int conn_listen_tcp(uv_loop_t *loop, const char *hostport, const conn_config *cfg,
		    conn_server **out, char *err);

/* Listens on a Unix socket at path, mode 0600. A stale socket file there (one
 * nobody accepts on) is replaced; a live one gives -EADDRINUSE. */
int conn_listen_pipe(uv_loop_t *loop, const char *path, const conn_config *cfg,
		     conn_server **out, char *err);

/* Listens on a socket already bound and listening, as systemd's socket
 * activation hands it over (sd_listen_fds): a Unix or a TCP stream socket.
 * The server owns fd from here on (closed with it); the socket file of a Unix
 * socket is left in place (its owner made it). The loopback rule of
 * conn_listen_tcp holds. -EINVAL for anything but a listening stream socket. */
int conn_listen_fd(uv_loop_t *loop, int fd, const conn_config *cfg, conn_server **out,
		   char *err);

/* The TCP port the server listens on (read back with uv_tcp_getsockname), or -1
 * for a Unix socket server. */
int conn_server_port(const conn_server *s);

/* What the server listens on: "host:port" as given (conn_listen_tcp), or the
 * socket's path. */
const char *conn_server_address(const conn_server *s);

/* Stops listening and closes every conn the server accepted (orderly: queued
 * writes are flushed first, for at most handshake_ms); each open one gets its
 * on_close. The server is freed once the listener and all its conns are closed;
 * s is dangling after this call. */
void conn_server_close(conn_server *s);

/* ---- clients ------------------------------------------------------------- */

/* Connects to "host:port" (host: a numeric address or a name, resolved
 * asynchronously) and authenticates as cfg->role / cfg->name with cfg->token.
 * Returns 0 and then calls cb exactly once, later; or a negative code with a
 * message (bad address, bad config) and never calls cb. *out (may be NULL)
 * receives the conn, usable with conn_close before cb. */
int conn_connect_tcp(uv_loop_t *loop, const char *hostport, const conn_config *cfg,
		     conn_connect_cb cb, conn **out, char *err);

/* Same over the Unix socket at path. */
int conn_connect_pipe(uv_loop_t *loop, const char *path, const conn_config *cfg,
		      conn_connect_cb cb, conn **out, char *err);

/* ---- using a conn --------------------------------------------------------- */

/* Packs e into a frame and queues it. Returns 0; -EPIPE when the conn is closing
 * or closed; -ENOTCONN before the handshake has finished; -EMSGSIZE over
 * cfg.max_frame; -EINVAL for an Envelope with no message or a handshake message
 * (those are conn's own); -ENOMEM; a write error (the conn then closes). e is not
 * kept: it and its bytes may be freed or reused as soon as this returns. */
int conn_send(conn *c, const Byol__Envelope *e, char *err);

/* Called when a conn_send_borrowed frame has been written (status 0) or dropped
 * (a libuv error, UV_ECANCELED when the conn closed): its tail is free again. */
typedef void (*conn_write_done)(void *data, int status);

/* Like conn_send, but the contents of tail, a bytes field (number tail_field)
 * of e's message, are written from where they lie instead of being copied
 * (frame_pack_head): they must stay unchanged until done(done_data, status) is
 * called, exactly once, later. On failure (returned code < 0) done is never
 * called. When the peer takes attachment frames (it said so in the handshake)
 * and tail is StepParams.online or NodeResult.grad, tail travels as the
 * attachment frame after e (frame_pack_attached), which the receiving conn
 * reads straight into the buffer its message handler can conn_adopt;
 * otherwise inside e's frame. When both ends allow shared memory (cfg.shm) and
 * the peer has mapped this side's ring, tail is copied into the ring instead
 * and only a small frame saying where it lies goes on the socket (conn_shm.c);
 * a ring without room for it falls back to the attachment frame. */
int conn_send_borrowed(conn *c, const Byol__Envelope *e, ProtobufCBinaryData *tail,
		       unsigned tail_field, conn_write_done done, void *done_data, char *err);

/* Within on_message: takes over a large bytes field of the message being
 * delivered (frame_arena_adopt): returns p, which the caller then owns and
 * frees with free(), or NULL (copy it). */
void *conn_adopt(conn *c, const void *p);

/* Within on_message: takes over a message's tensor field (StepParams.online,
 * NodeResult.grad; p and its len bytes) wherever it lies, for the caller to
 * keep until it gives it back with conn_tensor_free (from any thread; the conn
 * may be gone by then): p itself when it lies in the peer's shared-memory ring
 * (it stays there, unchanged), the decoded buffer when it can be adopted
 * (conn_adopt), else a malloc'd copy. NULL when len is 0 or out of memory. A
 * tensor in the ring that is not taken goes back to the peer when on_message
 * returns. */
void *conn_take(conn *c, const void *p, size_t len);

/* 1 when p is ring memory that conn_take returned (and not yet given back). */
int conn_tensor_lent(const void *p);

/* Gives back what conn_take returned: ring memory to its peer, anything else to
 * free(). NULL is harmless. */
void conn_tensor_free(void *p);

/* Bytes queued by conn_send and not yet written to the socket. */
size_t conn_write_queue_size(const conn *c);

/* Frames received on c so far (handshake and attachment frames included). */
uint64_t conn_frames_received(const conn *c);

/* Makes c's shared-memory ring ready for tensors of len bytes before the first
 * is sent, when c uses shared memory and has no ring that fits: making one
 * touches all its pages, which is better done before a run's first step than
 * in it. */
void conn_shm_prepare(conn *c, size_t len);

/* Room in c's shared-memory ring for a tensor of len bytes that the caller
 * fills itself, from any thread, instead of letting conn_send_borrowed copy it
 * there on the loop thread (several conns' copies can then run in parallel):
 * returns the room, or NULL (no ring the peer has mapped, or no room in it
 * now). It stays mapped until conn_shm_release(room), even if c closes. Once
 * it is filled, and while conn_shm_room_ok(c, room, len) says it is still good
 * (c has not started another ring nor reserved another room since), a
 * conn_send_borrowed whose tail is exactly the room sends only its position:
 * it is sent as soon as that call returns, and may be released then. */
void *conn_shm_reserve(conn *c, size_t len);
int conn_shm_room_ok(const conn *c, const void *room, size_t len);
void conn_shm_release(void *room);

/* Attachments received on c through shared memory so far. */
uint64_t conn_shm_received(const conn *c);

/* Closes c. code 0 (fmt may be NULL): orderly — stop delivering messages, flush
 * what is queued, shut down the write side, wait for the peer's EOF (at most
 * handshake_ms), then close. code < 0: at once, dropping what is queued, after
 * logging "reason" and telling the peer (best effort). A second call with
 * code < 0 turns an orderly close into an immediate one; any other repeat is
 * ignored. On a client conn still connecting, any close cancels it: the connect
 * callback hears code, or -ECANCELED for code 0. The owner hears of every close
 * through on_close (or the connect callback), never from inside conn_close. */
void conn_close(conn *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Stops (on = 0) or resumes (on = 1) reading from the peer: the owner's own
 * back-pressure. Takes effect from the next read: messages already read (at
 * most one 64 KiB piece) are still delivered. Returns 0, -EPIPE on a closing
 * conn, or a libuv error. */
int conn_set_reading(conn *c, int on);

/* 1 while c is open and not closing. */
int conn_is_open(const conn *c);

/* cfg.data of the listener or connect call that made c. */
void *conn_owner(const conn *c);

/* The owner's per-conn pointer (NULL until set). */
void conn_set_data(conn *c, void *data);
void *conn_data(const conn *c);

/* The peer's role (AUTH_ROLE_WORKER / AUTH_ROLE_CLIENT; on a client-side conn,
 * AUTH_ROLE_SERVER) and name (from ClientAuth; on a client conn, the server's
 * version string). "" before the handshake. */
int conn_role(const conn *c);
const char *conn_name(const conn *c);

/* "127.0.0.1:50312", "[::1]:7070" or "unix:/run/byold.sock (pid 1234)": the peer,
 * for messages. */
const char *conn_peer(const conn *c);

/* A number unique in this process, for log lines. */
uint64_t conn_id(const conn *c);

/* The underlying stream, for socket options and tests; never close it or read
 * from it directly. */
uv_stream_t *conn_stream(conn *c);

#endif
