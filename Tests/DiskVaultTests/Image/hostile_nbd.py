#!/usr/bin/env python3
"""A hostile NBD server on a unix socket, for one client: it serves FILE (fixed newstyle handshake, simple
replies, no structured replies) and misbehaves as MODE says.

  hostile_nbd.py SOCKET FILE MODE [N]

MODE:
  good        serves FILE honestly (the control case)
  disconnect  closes the connection at read request N
  eio         answers read requests from N on with EIO
  cookie      answers read request N with a cookie (handle) it never sent
  short       sends read request N's reply header, then half its data, then closes
  size        advertises N bytes (more than FILE holds); reads past FILE's end get EIO
  garbage     sends garbage instead of the handshake
  optreply    answers NBD_OPT_GO with an option reply of 2^31 bytes, then closes
"""
import os
import socket
import struct
import sys

NBDMAGIC = b"NBDMAGIC"
IHAVEOPT = 0x49484156454F5054
REPLY_MAGIC = 0x3E889045565A9
REQUEST_MAGIC = 0x25609513
SIMPLE_REPLY_MAGIC = 0x67446698
OPT_ABORT, OPT_GO, OPT_INFO = 2, 7, 6
REP_ACK, REP_INFO, REP_ERR_UNSUP = 1, 3, (1 << 31) + 1
CMD_READ, CMD_WRITE, CMD_DISC, CMD_FLUSH = 0, 1, 2, 3
EIO, EPERM, EINVAL = 5, 1, 22


def recv_exact(conn, n):
    data = b""
    while len(data) < n:
        piece = conn.recv(n - len(data))
        if not piece:
            raise EOFError
        data += piece
    return data


def option_reply(conn, option, kind, data=b""):
    conn.sendall(struct.pack(">QIII", REPLY_MAGIC, option, kind, len(data)) + data)


def serve(conn, image, mode, n):
    if mode == "garbage":
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n" + os.urandom(64))
        return
    size = len(image) if mode != "size" else n
    conn.sendall(NBDMAGIC + struct.pack(">QH", IHAVEOPT, 1 | 2))
    recv_exact(conn, 4)  # client flags
    while True:
        magic, option, length = struct.unpack(">QII", recv_exact(conn, 16))
        if magic != IHAVEOPT:
            return
        recv_exact(conn, length)
        if option == OPT_ABORT:
            option_reply(conn, option, REP_ACK)
            return
        if option in (OPT_GO, OPT_INFO):
            if mode == "optreply":
                conn.sendall(struct.pack(">QIII", REPLY_MAGIC, option, REP_INFO, 1 << 31))
                return
            # NBD_INFO_EXPORT: size, flags HAS_FLAGS | READ_ONLY | SEND_FLUSH.
            option_reply(conn, option, REP_INFO, struct.pack(">HQH", 0, size, 1 | 2 | 4))
            option_reply(conn, option, REP_ACK)
            if option == OPT_GO:
                break
            continue
        option_reply(conn, option, REP_ERR_UNSUP)
    reads = 0
    while True:
        magic, _flags, kind, cookie, offset, length = struct.unpack(">IHHQQI", recv_exact(conn, 28))
        if magic != REQUEST_MAGIC:
            return
        if kind == CMD_DISC:
            return
        if kind == CMD_WRITE:
            recv_exact(conn, length)
            conn.sendall(struct.pack(">IIQ", SIMPLE_REPLY_MAGIC, EPERM, cookie))
            continue
        if kind != CMD_READ:
            conn.sendall(struct.pack(">IIQ", SIMPLE_REPLY_MAGIC, 0 if kind == CMD_FLUSH else EINVAL, cookie))
            continue
        reads += 1
        if mode == "disconnect" and reads >= n:
            return
        if (mode == "eio" and reads >= n) or offset + length > len(image):
            conn.sendall(struct.pack(">IIQ", SIMPLE_REPLY_MAGIC, EIO, cookie))
            continue
        if mode == "cookie" and reads == n:
            cookie ^= 0x5A5A5A5A5A5A5A5A
        data = image[offset:offset + length]
        if mode == "short" and reads == n:
            conn.sendall(struct.pack(">IIQ", SIMPLE_REPLY_MAGIC, 0, cookie) + data[: length // 2])
            return
        conn.sendall(struct.pack(">IIQ", SIMPLE_REPLY_MAGIC, 0, cookie) + data)


def main():
    path, image_path, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    with open(image_path, "rb") as f:
        image = f.read()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path + ".tmp")
    listener.listen(1)
    os.rename(path + ".tmp", path)  # the socket appears only once it listens
    conn, _ = listener.accept()
    try:
        serve(conn, image, mode, n)
    except (EOFError, BrokenPipeError, ConnectionResetError):
        pass
    finally:
        conn.close()
        listener.close()


if __name__ == "__main__":
    main()
