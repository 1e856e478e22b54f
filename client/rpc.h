/*
 * rpc.h — byolctl's connection to byold: blocking request/answer calls over one
 * authenticated conn (include/byol/conn.h) on a private libuv loop.
 *
 * rpc_open connects (TCP "host:port" or a Unix socket path) and finishes the
 * handshake; rpc_call sends one request Envelope and waits for the next message
 * that is not a Heartbeat, which it returns (an Error included: the caller
 * decides). The answer is the caller's to keep until the next rpc_call or
 * rpc_close. Every wait is bounded by the timeout given to rpc_open.
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
 * next call). Returns 0, or a negative code with err; after a failure the
 * connection is closed and every later call fails with the same code. */
int rpc_call(rpc *r, const Byol__Envelope *req, Byol__Envelope **reply, char *err);

/* The address, for messages ("127.0.0.1:7070" or the socket path). */
const char *rpc_address(const rpc *r);

/* Closes the connection (orderly) and frees r. NULL is harmless. */
void rpc_close(rpc *r);

#endif
