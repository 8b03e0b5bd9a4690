import Foundation
import XCTest

/// `serve`: a point as a read-only NBD export, judged by independent clients (nbdinfo, nbdcopy, qemu-img,
/// qemu-io from libnbd and qemu), attacked with damaged chunks, writes, hostile clients and a gc.
final class ServeTests: XCTestCase {
    /// A running `serve`: its process, where it listens, and its standard output and error (files).
    struct Server {
        let process: Process
        let uri: String
        let stdout: String, stderr: String

        /// SIGTERM, as a service manager stops it; returns the exit status.
        func stop() -> Int32 {
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
            return process.terminationStatus
        }
        var log: String { (try? String(contentsOfFile: stderr, encoding: .utf8)) ?? "" }
    }

    /// Starts serve with `arguments` (after `serve`), waits until it prints where it listens.
    func serve(_ s: Scratch, _ arguments: [String], name: String = "serve") throws -> Server {
        let out = s.file("\(name).out"), err = s.file("\(name).err")
        FileManager.default.createFile(atPath: out, contents: nil)
        FileManager.default.createFile(atPath: err, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Tool.diskvault)
        p.arguments = ["serve", "--json"] + arguments
        p.environment = Tool.childEnvironment()
        p.standardInput = FileHandle(forReadingAtPath: "/dev/null")
        p.standardOutput = FileHandle(forWritingAtPath: out)
        p.standardError = FileHandle(forWritingAtPath: err)
        try p.run()
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if let text = try? String(contentsOfFile: out, encoding: .utf8), let line = text.split(separator: "\n").first,
                let json = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], let uri = json["uri"] as? String
            {
                return Server(process: p, uri: uri, stdout: out, stderr: err)
            }
            if !p.isRunning { break }
            usleep(20_000)
        }
        if p.isRunning { p.terminate() }
        p.waitUntilExit()
        throw XCTSkip("serve did not start: \((try? String(contentsOfFile: err, encoding: .utf8)) ?? "")")
    }

    /// A 40 MiB disk of 1 MiB chunks: an ext4 file system of real files (24 MiB), then 16 MiB of zeros.
    func makeVault(_ s: Scratch, encryption: [String] = ["--encryption", "none"]) throws -> (vault: String, image: String) {
        let vault = s.file("vault"), image = s.file("disk.img")
        XCTAssertEqual(try Tool.dv(["vault", "init", vault, "--chunk-size", "1MiB"] + encryption).status, 0)
        try Images.ext4(image, megabytes: 24, scratch: s)
        try Tool.sh("truncate -s 40M \(image)")
        let b = try Tool.dv("backup", image, "--vault", vault, "--disk", "web")
        XCTAssertEqual(b.status, 0, b.output)
        return (vault, image)
    }

    func testAServedPointReadsAsItsDiskToIndependentClients() throws {
        try Tool.require("nbdinfo", "nbdcopy", "qemu-img", "qemu-io")
        let s = try Scratch(self)
        let (vault, image) = try makeVault(s)
        let socket = s.file("web.sock")
        let server = try serve(s, ["--vault", vault, "--disk", "web", "--socket", socket])
        XCTAssertEqual(server.uri, "nbd+unix:///web?socket=\(socket)")
        let mode = try FileManager.default.attributesOfItem(atPath: socket)[.posixPermissions] as? Int
        XCTAssertEqual(mode, 0o600, "the socket is the owner's only")

        // Its size and allocation, as libnbd sees them: the 16 MiB of zeros at the end are a hole.
        let info = try Tool.sh("nbdinfo --json '\(server.uri)'")
        XCTAssertTrue(info.contains("\"export-size\": 41943040"), info)
        XCTAssertTrue(info.contains("\"is_read_only\": true"), info)
        let map = try Tool.sh("nbdinfo --map '\(server.uri)'")
        // Lines of offset, length, type, description: the last run is a hole reaching from at most 24 MiB to the end.
        let runs = map.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true) }
        let last = try XCTUnwrap(runs.last, map)
        XCTAssertEqual(last.count, 4, map)
        XCTAssertTrue(last[3].contains("hole") && UInt64(last[0])! <= 25165824 && UInt64(last[0])! + UInt64(last[1])! == 41943040, map)
        XCTAssertTrue(runs.contains { $0.count == 4 && $0[3] == "data" }, map)

        // Whole copies by libnbd (several connections, parallel requests) and by qemu, equal to the disk.
        _ = try Tool.sh("nbdcopy '\(server.uri)' \(s.file("copy.img"))")
        XCTAssertTrue(try fileBytesEqual(s.file("copy.img"), image))
        _ = try Tool.sh("qemu-img compare -f raw -F raw \(image) '\(server.uri)'")
        _ = try Tool.sh("qemu-img convert -f raw -O raw '\(server.uri)' \(s.file("convert.img"))")
        XCTAssertTrue(try fileBytesEqual(s.file("convert.img"), image))
        // Three clients at once.
        _ = try Tool.sh("for i in 1 2 3; do nbdcopy '\(server.uri)' \(s.path)/par-$i.img & done; wait")
        for i in 1...3 { XCTAssertTrue(try fileBytesEqual(s.file("par-\(i).img"), image), "client \(i)") }

        // A write is refused and changes nothing.
        let write = try Tool.run("qemu-io", ["-f", "raw", "-c", "write -P 0x55 0 64k", server.uri])
        XCTAssertNotEqual(write.status, 0, write.output)
        XCTAssertTrue(write.output.contains("Permission denied"), "qemu sees a read-only export: \(write.output)")
        _ = try Tool.sh("qemu-img compare -f raw -F raw \(image) '\(server.uri)'")

        // A gc cannot take the vault while the export runs (a client may still read any chunk).
        let gc = try Tool.dv("gc", "--vault", vault, "--lock-wait", "0")
        XCTAssertEqual(gc.status, 1, gc.output)
        XCTAssertTrue(gc.stderr.contains("serve"), gc.stderr)

        // SIGTERM stops it cleanly: exit 0, the socket gone, the job recorded as completed.
        XCTAssertEqual(server.stop(), 0, server.log)
        XCTAssertFalse(FileManager.default.fileExists(atPath: socket))
        XCTAssertTrue(server.log.contains("stopped:"), server.log)
        let jobs = try Tool.dv("jobs", "--vault", vault, "--json")
        XCTAssertTrue(jobs.stdout.contains("\"serve\"") && jobs.stdout.contains("\"completed\""), jobs.stdout)
        XCTAssertEqual(try Tool.dv("verify", "--vault", vault).status, 0)
    }

    /// One chunk's blob damaged by hand: reads that touch it fail with EIO (qemu and libnbd both see an error),
    /// the server names the chunk, and every other range still reads exactly.
    func testADamagedChunkIsAnIOErrorNeverOtherBytes() throws {
        try Tool.require("nbdcopy", "qemu-io")
        let s = try Scratch(self)
        let (vault, image) = try makeVault(s)
        // The blob of the chunk at 3 MiB (a clear vault names a chunk by its SHA-256).
        let digest = try Tool.sh("dd if=\(image) bs=1M skip=3 count=1 status=none | sha256sum | cut -d' ' -f1").trimmingCharacters(in: .whitespacesAndNewlines)
        let blob = try XCTUnwrap(try Tool.sh("find \(vault)/chunks -name '\(digest)*'").split(separator: "\n").first.map(String.init))
        try Tool.sh("printf 'XXXX' | dd of=\(blob) bs=1 seek=100 conv=notrunc status=none")
        let server = try serve(s, ["--vault", vault, "--disk", "web", "--socket", s.file("s.sock")])
        defer { _ = server.stop() }

        let copy = try Tool.run("nbdcopy", [server.uri, s.file("copy.img")])
        XCTAssertNotEqual(copy.status, 0, "a copy through a damaged chunk fails: \(copy.output)")
        let bad = try Tool.run("qemu-io", ["-r", "-f", "raw", "-c", "read 3M 4k", server.uri])
        XCTAssertTrue(bad.output.contains("Input/output error"), bad.output)
        XCTAssertTrue(server.log.contains(digest) && server.log.contains("damaged"), server.log)
        // Every other MiB reads without an error.
        for mib in [0, 2, 4, 23, 30] {
            let r = try Tool.run("qemu-io", ["-r", "-f", "raw", "-c", "read \(mib)M 1M", server.uri])
            XCTAssertFalse(r.output.contains("error"), "MiB \(mib): \(r.output)")
        }
        // And the bytes themselves, through libnbd's python binding (python3-libnbd, for /usr/bin/python3 only).
        do {
            let check = try Tool.run("/usr/bin/python3", ["-c", """
                import nbd, sys
                h = nbd.NBD(); h.connect_uri(sys.argv[1])
                img = open(sys.argv[2], 'rb').read()
                for mib in (0, 2, 4, 23, 30):
                    assert h.pread(1 << 20, mib << 20) == img[mib << 20:(mib + 1) << 20], mib
                try:
                    h.pread(4096, 3 << 20); print('no error')
                except nbd.Error as e:
                    print('error', e.errno)
                """, server.uri, image])
            XCTAssertEqual(check.status, 0, check.output)
            XCTAssertTrue(check.stdout.contains("error EIO") || check.stdout.contains("error 5"), check.output)
        }
    }

    /// An encrypted disk's point is served only with what its restore needs: without a key vault it is refused,
    /// with a key vault that lost the disk's key it is refused naming `keys restore`, and with its keys it
    /// serves the ciphertext exactly.
    func testAnEncryptedDiskIsServedOnlyWithItsKeys() throws {
        try Tool.require("cryptsetup", "nbdcopy")
        let t = try EncryptedBackupTests.Setup(self)
        let image = t.s.file("luks2.img"), key = t.s.file("key")
        try Tool.sh("""
            head -c 32 /dev/urandom > \(key); truncate -s 20M \(image)
            cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file \(key) \(image)
            head -c 4M /dev/urandom | dd of=\(image) bs=1M seek=8 conv=notrunc status=none
            """)
        let uuid = try Tool.sh("cryptsetup luksUUID \(image)").trimmingCharacters(in: .whitespacesAndNewlines)
        try t.run("keyvault", "secret", "set", t.kv, "--name", "k", "--file", key, "--volume", uuid)
        _ = try t.backup(image, disk: "enc")
        let socket = t.s.file("enc.sock")
        let none = try Tool.dv("serve", "--vault", t.vault, "--disk", "enc", "--socket", socket)
        XCTAssertEqual(none.status, 2, none.output)
        XCTAssertTrue(none.stderr.contains("--keyvault"), none.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: socket))

        let server = try serve(t.s, ["--vault", t.vault, "--disk", "enc", "--socket", socket] + t.asRestorer)
        _ = try Tool.sh("nbdcopy '\(server.uri)' \(t.s.file("copy.img"))")
        XCTAssertTrue(try fileBytesEqual(t.s.file("copy.img"), image))
        XCTAssertEqual(server.stop(), 0, server.log)
        _ = try Tool.sh("cryptsetup open --test-passphrase --key-file \(key) \(t.s.file("copy.img"))")

        try t.run("keyvault", "secret", "delete", t.kv, "--name", "k")
        let lost = try Tool.run(Tool.diskvault, ["serve", "--vault", t.vault, "--disk", "enc", "--socket", socket] + t.asRestorer)
        XCTAssertEqual(lost.status, 1, lost.output)
        XCTAssertTrue(lost.stderr.contains("keys restore"), lost.stderr)
    }

    /// Clients that break the protocol lose their own connection, never the server: garbage, an option that
    /// claims 2 GiB, a read past the end, a write of 2 GiB; an honest client then still reads the disk. TCP on
    /// loopback works; any other address needs --allow-remote.
    func testHostileClientsLoseOnlyTheirConnection() throws {
        try Tool.require("nbdcopy", "python3")
        let s = try Scratch(self)
        let (vault, image) = try makeVault(s)
        let refused = try Tool.dv("serve", "--vault", vault, "--disk", "web", "--listen", "0.0.0.0:0")
        XCTAssertEqual(refused.status, 2, refused.output)
        XCTAssertTrue(refused.stderr.contains("--allow-remote"), refused.stderr)

        let server = try serve(s, ["--vault", vault, "--disk", "web", "--listen", "127.0.0.1:0"])
        defer { _ = server.stop() }
        XCTAssertTrue(server.uri.hasPrefix("nbd://127.0.0.1:") && server.uri.hasSuffix("/web"), server.uri)
        let port = try XCTUnwrap(server.uri.split(separator: ":").last?.split(separator: "/").first.map(String.init))
        let attack = try Tool.run("python3", ["-c", """
            import socket, struct, sys
            port = int(sys.argv[1])
            def connect():
                c = socket.create_connection(('127.0.0.1', port), timeout=10)
                hello = c.recv(18)
                assert hello[:8] == b'NBDMAGIC', hello
                c.sendall(struct.pack('>I', 3))
                return c
            def closed(c):
                try:
                    return c.recv(4096) == b''
                except ConnectionResetError:
                    return True
            # Garbage instead of an option.
            c = connect(); c.sendall(b'GET / HTTP/1.1\\r\\n\\r\\n' * 4); print('garbage', closed(c))
            # An option that says it carries 2 GiB.
            c = connect(); c.sendall(struct.pack('>QII', 0x49484156454F5054, 7, 1 << 31)); print('huge option', closed(c))
            # Into transmission with EXPORT_NAME, then a read past the end and a write that claims 2 GiB.
            c = connect(); c.sendall(struct.pack('>QII', 0x49484156454F5054, 1, 3) + b'web')
            head = c.recv(10, socket.MSG_WAITALL); size = struct.unpack('>Q', head[:8])[0]
            c.sendall(struct.pack('>IHHQQI', 0x25609513, 0, 0, 1, size - 4096, 8192))
            magic, err, cookie = struct.unpack('>IIQ', c.recv(16, socket.MSG_WAITALL)); print('past the end', err)
            c.sendall(struct.pack('>IHHQQI', 0x25609513, 0, 1, 2, 0, 4) + b'evil')
            magic, err, cookie = struct.unpack('>IIQ', c.recv(16, socket.MSG_WAITALL)); print('write', err)
            c.sendall(struct.pack('>IHHQQI', 0x25609513, 0, 1, 3, 0, 0x80000000)); print('huge write', closed(c))
            """, port])
        XCTAssertEqual(attack.status, 0, attack.output)
        for line in ["garbage True", "huge option True", "past the end 22", "write 1", "huge write True"] {
            XCTAssertTrue(attack.stdout.contains(line), "\(line): \(attack.output)")
        }
        XCTAssertTrue(server.process.isRunning, server.log)
        _ = try Tool.sh("nbdcopy '\(server.uri)' \(s.file("copy.img"))")
        XCTAssertTrue(try fileBytesEqual(s.file("copy.img"), image))
    }
}
