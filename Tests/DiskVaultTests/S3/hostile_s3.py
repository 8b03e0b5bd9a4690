#!/usr/bin/env python3
"""A hostile S3 endpoint on loopback: it serves the local vault folder VAULT as bucket "bkt", prefix "v"
(GET, HEAD, PUT and DELETE of objects, ListObjectsV2), and lies in its listings as MODE says.

  hostile_s3.py VAULT PORTFILE MODE

It listens on a free loopback port and writes that port to PORTFILE once it answers; the key of every PUT
and DELETE it is sent goes, a line each, to PORTFILE.writes.

MODE:
  good      honest listings (the control case)
  loop      every listing says it is truncated and gives the same continuation token again
  endless   every listing says it is truncated, lists nothing, and gives a new token each time
  notoken   every listing says it is truncated and gives no token
  huge      every listing is a 2 GiB body of <Contents> elements (sent until the client hangs up)
  garbage   every listing is 200 OK with random bytes
  escape    every listing also names keys outside the vault and with ../ in them
"""
import http.server
import os
import sys
import urllib.parse
from xml.sax.saxutils import escape

VAULT, PORTFILE, MODE = sys.argv[1], sys.argv[2], sys.argv[3]
BUCKET, PREFIX = "bkt", "v/"


def local_path(key):
    if not key.startswith(PREFIX):
        return None
    rel = key[len(PREFIX):]
    path = os.path.normpath(os.path.join(VAULT, rel))
    return path if path.startswith(os.path.abspath(VAULT) + os.sep) else None


def all_keys():
    for root, _, files in os.walk(VAULT):
        for f in files:
            rel = os.path.relpath(os.path.join(root, f), VAULT)
            yield PREFIX + rel


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def split(self):
        url = urllib.parse.urlsplit(self.path)
        parts = url.path.lstrip("/").split("/", 1)
        key = urllib.parse.unquote(parts[1]) if len(parts) > 1 else ""
        return parts[0], key, urllib.parse.parse_qs(url.query)

    def answer(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        bucket, key, query = self.split()
        if bucket != BUCKET:
            return self.answer(404, b"<Error><Code>NoSuchBucket</Code></Error>")
        if key == "" and "list-type" in query:
            return self.listing(query)
        path = local_path(key)
        if path is None or not os.path.isfile(path):
            return self.answer(404, b"<Error><Code>NoSuchKey</Code></Error>")
        with open(path, "rb") as f:
            data = f.read()
        headers = [("Last-Modified", self.date_time_string())]
        ranged = self.headers.get("Range", "")
        if ranged.startswith("bytes="):
            first, _, last = ranged[6:].partition("-")
            first, last = int(first), min(int(last) if last else len(data) - 1, len(data) - 1)
            if first >= len(data):
                return self.answer(416, b"<Error><Code>InvalidRange</Code></Error>")
            headers.append(("Content-Range", "bytes %d-%d/%d" % (first, last, len(data))))
            return self.answer(206, data[first:last + 1], headers)
        self.answer(200, data, headers)

    def note_write(self, key):
        with open(PORTFILE + ".writes", "a") as f:
            f.write("%s %s\n" % (self.command, key))

    def do_PUT(self):
        _, key, _ = self.split()
        self.note_write(key)
        length = int(self.headers.get("Content-Length", "0"))
        data = self.rfile.read(length) if length else b""
        path = local_path(key)
        if path is None:
            return self.answer(403, b"<Error><Code>AccessDenied</Code></Error>")
        if self.headers.get("If-None-Match") == "*" and os.path.exists(path):
            return self.answer(412, b"<Error><Code>PreconditionFailed</Code></Error>")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        self.answer(200)

    def do_DELETE(self):
        _, key, _ = self.split()
        self.note_write(key)
        path = local_path(key)
        if path is not None and os.path.isfile(path):
            os.unlink(path)
        self.answer(204)

    def listing(self, query):
        prefix = query.get("prefix", [""])[0]
        delimiter = query.get("delimiter", [None])[0]
        token = query.get("continuation-token", [None])[0]
        if MODE == "garbage":
            return self.answer(200, os.urandom(4096))
        if MODE == "huge":
            self.send_response(200)
            self.send_header("Content-Length", str(2 << 30))
            self.end_headers()
            piece = b"<Contents><Key>v/disks/" + b"x" * 200 + b"</Key><Size>1</Size></Contents>" * 100
            try:
                while True:
                    self.wfile.write(piece)
            except (BrokenPipeError, ConnectionResetError):
                return
        keys, prefixes = [], set()
        if not (MODE == "endless" and token):
            for k in sorted(all_keys()):
                if not k.startswith(prefix):
                    continue
                rest = k[len(prefix):]
                if delimiter and delimiter in rest:
                    prefixes.add(prefix + rest.split(delimiter)[0] + delimiter)
                else:
                    keys.append(k)
        if MODE == "escape":
            keys += [prefix + "../../../etc/passwd", prefix + "a/../../b", "elsewhere/" + prefix + "x", prefix + "..", prefix + "/abs"]
            prefixes |= {prefix + "../", prefix + "../../outside/", "other/" + prefix + "d/", prefix + "/"}
        body = ['<?xml version="1.0" encoding="UTF-8"?><ListBucketResult>']
        body.append("<Name>%s</Name><Prefix>%s</Prefix>" % (BUCKET, escape(prefix)))
        for k in keys:
            body.append("<Contents><Key>%s</Key><Size>0</Size><LastModified>2026-12-03T10:00:00.000Z</LastModified></Contents>" % escape(k))
        for p in sorted(prefixes):
            body.append("<CommonPrefixes><Prefix>%s</Prefix></CommonPrefixes>" % escape(p))
        if MODE in ("loop", "endless", "notoken"):
            body.append("<IsTruncated>true</IsTruncated>")
            if MODE == "loop":
                body.append("<NextContinuationToken>again</NextContinuationToken>")
            elif MODE == "endless":
                body.append("<NextContinuationToken>t%d</NextContinuationToken>" % (int((token or "t0")[1:]) + 1))
        else:
            body.append("<IsTruncated>false</IsTruncated>")
        body.append("</ListBucketResult>")
        self.answer(200, "".join(body).encode(), [("Content-Type", "application/xml")])


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(PORTFILE + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(PORTFILE + ".tmp", PORTFILE)
server.serve_forever()
