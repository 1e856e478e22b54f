/*
 * rpc.h — byolctl's connection to byold: blocking request/answer calls over one
 * authenticated conn (include/byol/conn.h) on a private libuv loop.
 *
 * rpc_open connects (TCP "host:port" or a Unix socket path) and finishes the
 * handshake; rpc_call sends one request Envelope and waits for the next message
 * that is not a Heartbeat, which it returns (an Error included: the caller
 * decides). A request answered by several messages (export's chunks, watch's
 * pushes) is sent with rpc_send and its answers taken one by one with rpc_recv.
 * Messages are queued in arrival order as they come (reading from the daemon
 * pauses while RPC_QUEUE_MAX bytes wait, so a slow consumer slows the daemon
 * down instead of filling memory). A message returned is the caller's to keep
 * until the next rpc_call, rpc_recv or rpc_close. Every wait is bounded by the
 * timeout given to rpc_open (rpc_recv may give its own); a timeout closes the
 * connection.
 *
 * Codes: -ECONNREFUSED, -ENOENT, -ETIMEDOUT ... (the daemon cannot be reached or
 * went away: the message names the address), -EACCES (authentication refused),
 * -EPROTO (the daemon broke the protocol), -ENOMEM.
 */
#ifndef BYOL_CLIENT_RPC_H
#define BYOL_CLIENT_RPC_H

#include "byol/error.h"
#include "proto/byol.pb-c.h"

typedef struct rpc rpc;

/* Connects to the daemon at tcp ("host:port") or, when sock is not NULL, at the
 * Unix socket sock, as a client named `name` with token (NULL: none). Returns 0
 * and *out, or a negative code with err naming the address (*out NULL). */
int rpc_open(rpc **out, const char *tcp, const char *sock, const char *token,
	     const char *name, unsigned timeout_ms, char *err);

/* Sends req and waits for the answer into *reply (owned by r, valid until the
 * next call). Messages still queued from an earlier request are dropped first.
 * Returns 0, or a negative code with err; after a failure the connection is
 * closed and every later call fails with the same code. */
int rpc_call(rpc *r, const Byol__Envelope *req, Byol__Envelope **reply, char *err);

#define RPC_QUEUE_MAX ((size_t)16 << 20)   /* bytes of messages queued before pausing */

/* Sends req without waiting for anything (queued messages are kept). Returns 0
 * or a negative code with err. */
int rpc_send(rpc *r, const Byol__Envelope *req, char *err);

/* The next message from the daemon that is not a Heartbeat, into *msg (owned
 * by r, valid until the next rpc_call, rpc_recv or rpc_close), waiting at most
 * timeout_ms (0: the timeout given to rpc_open). Messages that arrived before
 * the daemon closed the connection are still returned, in order. Returns 0, or
 * a negative code with err (-ETIMEDOUT: nothing came in time; the connection
 * is then closed, as after any failure). */
int rpc_recv(rpc *r, Byol__Envelope **msg, unsigned timeout_ms, char *err);

/* The address, for messages ("127.0.0.1:7070" or the socket path). */
const char *rpc_address(const rpc *r);

/* Closes the connection (orderly) and frees r. NULL is harmless. */
void rpc_close(rpc *r);

#endif
