#!/usr/bin/env python3
"""A second QMP client for the live-backup tests: guest-like writes through HMP qemu-io, and queries.

  qmp_tool.py SOCKET write DEVICE PATTERN OFFSET LENGTH    (qemu-io "write -P PATTERN OFFSET LENGTH")
  qmp_tool.py SOCKET state                                 (jobs, exports, nodes and bitmaps, as JSON)
  qmp_tool.py SOCKET run COMMAND [JSON-ARGUMENTS]           (any command; prints its return as JSON)
  qmp_tool.py SOCKET drop-exports                          (every block export deleted, hard)
"""
import json, socket, sys


def connect(path):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(60)
    s.connect(path)
    f = s.makefile("rw")

    def read():
        while True:
            line = f.readline()
            if not line:
                raise SystemExit("qmp_tool: qemu closed the connection")
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    read()

    def cmd(name, args=None):
        req = {"execute": name}
        if args is not None:
            req["arguments"] = args
        f.write(json.dumps(req) + "\n")
        f.flush()
        reply = read()
        if "error" in reply:
            raise SystemExit("qmp_tool: %s: %s" % (name, reply["error"]["desc"]))
        return reply["return"]

    cmd("qmp_capabilities")
    return cmd


def main():
    path, verb = sys.argv[1], sys.argv[2]
    cmd = connect(path)
    if verb == "write":
        device, pattern, offset, length = sys.argv[3:7]
        cmd("human-monitor-command", {"command-line": 'qemu-io -d %s "write -P %s %s %s"' % (device, pattern, offset, length)})
    elif verb == "state":
        nodes = cmd("query-named-block-nodes", {"flat": True})
        print(json.dumps({
            "jobs": [j["device"] for j in cmd("query-block-jobs")],
            "exports": [e["id"] for e in cmd("query-block-exports")],
            "nodes": sorted(n["node-name"] for n in nodes if not n["node-name"].startswith("#")),
            "bitmaps": sorted("%s:%s:%s" % (n["node-name"], b["name"], "on" if b["recording"] else "off")
                              for n in nodes for b in n.get("dirty-bitmaps", []) if "name" in b),
        }, sort_keys=True))
    elif verb == "drop-exports":
        for e in cmd("query-block-exports"):
            cmd("block-export-del", {"id": e["id"], "mode": "hard"})
    elif verb == "run":
        args = json.loads(sys.argv[4]) if len(sys.argv) > 4 else None
        print(json.dumps(cmd(sys.argv[3], args)))
    else:
        raise SystemExit("qmp_tool: unknown verb " + verb)


main()
