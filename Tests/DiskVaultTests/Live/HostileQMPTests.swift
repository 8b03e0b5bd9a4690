import Foundation
import XCTest

/// QMP peers that misbehave, and drives that must not be read live: each a clear error naming the socket,
/// exit 1, no point, never a crash or a hang.
final class HostileQMPTests: XCTestCase {
    /// A one-connection server on `socket` that answers as `mode` says.
    private func serve(_ socket: String, _ mode: String) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try Tool.which("python3"))
        p.arguments = ["-c", """
            import json, os, socket, sys
            path, mode = sys.argv[1], sys.argv[2]
            s = socket.socket(socket.AF_UNIX); s.bind(path); s.listen(1)
            c, _ = s.accept()
            greeting = b'{"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}}, "capabilities": []}}\\r\\n'
            if mode == "not-qmp":
                c.sendall(b'{"hello": "world"}\\r\\n')
            elif mode == "garbage":
                c.sendall(b'\\x00\\xff not json at all\\r\\n')
            elif mode == "huge":
                c.sendall(greeting)
                c.recv(4096)
                chunk = b'x' * (1 << 20)
                try:
                    for _ in range(20): c.sendall(chunk)
                except OSError:
                    pass
            elif mode == "refuse":
                c.sendall(greeting)
                c.recv(4096)
                c.sendall(b'{"error": {"class": "GenericError", "desc": "no capabilities today"}}\\r\\n')
            elif mode == "close":
                c.sendall(greeting)
            c.recv(4096)
            c.close()
            """, socket, mode]
        try p.run()
        for _ in 0..<200 where !FileManager.default.fileExists(atPath: socket) { usleep(10_000) }
        return p
    }

    func testHostileQMPServers() throws {
        try Tool.require("python3")
        let s = try Scratch(self)
        let vault = s.file("vault")
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--encryption", "none").status, 0)
        let expected = ["not-qmp": "does not speak QMP", "garbage": "not a JSON object", "huge": "larger than 16 MiB",
                        "refuse": "no capabilities today", "close": "closed"]
        for (mode, message) in expected.sorted(by: { $0.key < $1.key }) {
            let socket = s.file("\(mode).qmp")
            let server = try serve(socket, mode)
            let r = try Tool.dv("backup", "--qmp", socket, "--drive", "vda", "--vault", vault, "--disk", "d")
            server.terminate()
            server.waitUntilExit()
            XCTAssertEqual(r.status, 1, "\(mode): \(r.output)")
            XCTAssertTrue(r.stderr.contains(socket) && r.stderr.contains(message), "\(mode): \(r.stderr)")
        }
        let none = try Tool.dv("points", "--vault", vault, "--json").json()["points"] as? [Any] ?? []
        XCTAssertEqual(none.count, 0)
    }

    /// A drive qemu decrypts (LUKS in a qcow2) would be read as plaintext: refused, nothing written.
    func testADriveQemuDecryptsIsNotReadLive() throws {
        try Tool.require("qemu-system-x86_64", "qemu-img")
        let s = try Scratch(self)
        let vault = s.file("vault"), image = s.file("enc.qcow2"), qmp = s.file("vm.qmp")
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--encryption", "none").status, 0)
        try Tool.sh("printf pass > \(s.file("pass"))")
        try Images.encryptedQcow2(image, secretFile: s.file("pass"))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try Tool.which("qemu-system-x86_64"))
        p.arguments = ["-S", "-nodefaults", "-display", "none", "-machine", "pc,accel=tcg", "-object", "secret,id=s0,data=pass",
                       "-blockdev", "driver=file,filename=\(image),node-name=f0",
                       "-blockdev", "driver=qcow2,file=f0,node-name=d0,encrypt.format=luks,encrypt.key-secret=s0",
                       "-device", "virtio-blk-pci,drive=d0,id=vda", "-qmp", "unix:\(qmp),server=on,wait=off"]
        p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        p.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try p.run()
        defer { p.terminate(); p.waitUntilExit() }
        for _ in 0..<400 where !FileManager.default.fileExists(atPath: qmp) { usleep(25_000) }
        let r = try Tool.dv("backup", "--qmp", qmp, "--drive", "vda", "--vault", vault, "--disk", "enc", "--scratch", s.path)
        XCTAssertEqual(r.status, 1, r.output)
        XCTAssertTrue(r.stderr.contains("qemu decrypts") && r.stderr.contains("plaintext"), r.stderr)
        let none = try Tool.dv("points", "--vault", vault, "--json").json()["points"] as? [Any] ?? []
        XCTAssertEqual(none.count, 0)
    }
}
