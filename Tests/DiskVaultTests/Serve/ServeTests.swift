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
        let uuid = try Images.luks2(image, key: key)
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

    /// 64 clients at once, each connected before any reads 1 MiB of the file system (as many as
    /// --max-connections allows are served, the rest refused at once, none given wrong bytes); requests of no length, over the limit, with
    /// a bad magic, and a client that hangs up 1000 bytes into a 32 MiB reply: the server stays up, its peak
    /// memory within 64 MiB, and an honest client then copies the disk exactly.
    func testManyClientsAndBrokenRequests() throws {
        try Tool.require("nbdcopy", "python3")
        let s = try Scratch(self)
        let (vault, image) = try makeVault(s)
        let socket = s.file("s.sock")
        let server = try serve(s, ["--vault", vault, "--disk", "web", "--socket", socket])
        defer { _ = server.stop() }
        let crowd = try Tool.run("python3", ["-c", """
            import random, socket, struct, sys, threading
            path, image = sys.argv[1], open(sys.argv[2], 'rb').read()
            def recvall(c, n):
                out = b''
                while len(out) < n:
                    got = c.recv(n - len(out))
                    if not got: break
                    out += got
                return out
            def connect():
                c = socket.socket(socket.AF_UNIX); c.settimeout(60); c.connect(path)
                hello = recvall(c, 18)
                if len(hello) < 18: return None
                c.sendall(struct.pack('>I', 3) + struct.pack('>QII', 0x49484156454F5054, 1, 3) + b'web')
                if len(recvall(c, 10)) < 10: return None
                return c
            def request(c, offset, length, magic=0x25609513):
                c.sendall(struct.pack('>IHHQQI', magic, 0, 0, 7, offset, length))
            def reply(c):
                head = recvall(c, 16)
                if len(head) < 16: return None
                magic, err, cookie = struct.unpack('>IIQ', head)
                assert magic == 0x67446698 and cookie == 7, head
                return err
            outcome = {}
            together = threading.Barrier(64)
            def client(n):
                try:
                    try:
                        c = connect()
                    finally:
                        together.wait()
                    if c is None: outcome[n] = 'refused'; return
                    offset = random.Random(n).randrange(0, 24) << 20
                    request(c, offset, 1 << 20)
                    err = reply(c)
                    if err is None: outcome[n] = 'refused'; return
                    data = recvall(c, 1 << 20) if err == 0 else b''
                    outcome[n] = 'ok' if err == 0 and data == image[offset:offset + (1 << 20)] else 'wrong %r' % err
                    c.close()
                except (ConnectionResetError, BrokenPipeError):
                    outcome[n] = 'refused'
            threads = [threading.Thread(target=client, args=(n,)) for n in range(64)]
            for t in threads: t.start()
            for t in threads: t.join()
            values = list(outcome.values())
            print('ok', values.count('ok'), 'refused', values.count('refused'), 'other', [v for v in values if v not in ('ok', 'refused')])
            # One connection, broken requests in turn.
            c = connect(); request(c, 0, 0); print('empty', reply(c))
            request(c, 0, 33 << 20); print('over the limit', reply(c))
            request(c, 0, 4096, magic=0x12345678); print('bad magic', reply(c))
            # A 32 MiB reply, left after 1000 bytes.
            c = connect(); request(c, 0, 32 << 20); recvall(c, 1000); c.close()
            c = connect(); request(c, 5 << 20, 4096); err = reply(c)
            print('after', err, recvall(c, 4096) == image[5 << 20:(5 << 20) + 4096])
            """, socket, image])
        XCTAssertEqual(crowd.status, 0, crowd.output)
        let words = crowd.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init)
        let ok = try XCTUnwrap(words.firstIndex(of: "ok").flatMap { Int(words[$0 + 1]) }, crowd.output)
        let refused = try XCTUnwrap(words.firstIndex(of: "refused").flatMap { Int(words[$0 + 1]) }, crowd.output)
        XCTAssertTrue(crowd.stdout.contains("other []"), "no client got wrong bytes: \(crowd.output)")
        XCTAssertEqual(ok + refused, 64, crowd.output)
        XCTAssertEqual(ok, 16, "--max-connections (16) are served: \(crowd.output)")
        for line in ["empty 0", "over the limit 22", "bad magic None", "after 0 True"] {
            XCTAssertTrue(crowd.stdout.contains(line), "\(line): \(crowd.output)")
        }
        XCTAssertTrue(server.process.isRunning, server.log)
        let status = try String(contentsOfFile: "/proc/\(server.process.processIdentifier)/status", encoding: .utf8)
        let peak = try XCTUnwrap(status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") }.flatMap { Int($0.split(separator: " ", omittingEmptySubsequences: true)[1]) })
        XCTAssertLessThanOrEqual(peak, 64 << 10, "serve's peak RSS: \(peak) KiB")
        _ = try Tool.sh("nbdcopy '\(server.uri)' \(s.file("copy.img"))")
        XCTAssertTrue(try fileBytesEqual(s.file("copy.img"), image))
    }

    /// Clients that ask for a read and then never take the reply: each holds its own connection, never a slot of
    /// the chunk cache, so with more of them than the cache has slots (30 clients on 30 chunks of a 48 MiB disk
    /// of 1 MiB chunks) an honest client still copies the disk. (A reply was once sent from inside its slot: the
    /// stalled clients held every slot and the honest copy waited for ever.)
    func testClientsThatStopReadingHoldNoCacheSlot() throws {
        try Tool.require("nbdcopy", "python3", "timeout")
        let s = try Scratch(self)
        let vault = s.file("vault"), image = s.file("random.img")
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--chunk-size", "1MiB", "--encryption", "none").status, 0)
        try Tool.sh("head -c 48M /dev/urandom > \(image)")
        XCTAssertEqual(try Tool.dv("backup", image, "--vault", vault, "--disk", "web").status, 0)
        let socket = s.file("s.sock")
        let server = try serve(s, ["--vault", vault, "--disk", "web", "--socket", socket, "--max-connections", "64"])
        defer { _ = server.stop() }
        let stall = Process()
        stall.executableURL = URL(fileURLWithPath: try Tool.which("python3"))
        stall.arguments = ["-c", """
            import socket, struct, sys, time
            held = []
            for n in range(30):
                c = socket.socket(socket.AF_UNIX); c.connect(sys.argv[1])
                c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                hello = b''
                while len(hello) < 18: hello += c.recv(18 - len(hello))
                c.sendall(struct.pack('>I', 3) + struct.pack('>QII', 0x49484156454F5054, 1, 3) + b'web')
                got = b''
                while len(got) < 10: got += c.recv(10 - len(got))
                # 1 MiB of chunk n, and the reply never read.
                c.sendall(struct.pack('>IHHQQI', 0x25609513, 0, 0, n, n << 20, 1 << 20))
                held.append(c)
            print('stalled', flush=True)
            time.sleep(120)
            """, socket]
        let out = Pipe()
        stall.standardOutput = out
        stall.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try stall.run()
        defer { if stall.isRunning { stall.terminate() }; stall.waitUntilExit() }
        let line = String(decoding: out.fileHandleForReading.availableData, as: UTF8.self)
        XCTAssertTrue(line.contains("stalled"), line)
        usleep(500_000)
        let copy = try Tool.run("timeout", ["60", "nbdcopy", server.uri, s.file("copy.img")])
        XCTAssertEqual(copy.status, 0, "the honest copy finished while 30 clients stalled: \(copy.output)")
        XCTAssertTrue(try fileBytesEqual(s.file("copy.img"), image))
    }

    /// `restore --instant`: a qcow2 overlay backed by the served point reads as the disk at once; writes land in
    /// the overlay only (the point restores as it was); `restore --finish` copies the rest in, leaves an overlay
    /// with no backing file, and stops the export. Without a VM (qemu-img rebase), and with one running the
    /// overlay (qemu's block-stream over QMP, a guest write meanwhile).
    func testInstantRestoreThenFinish() throws {
        try Tool.require("qemu-img", "qemu-io", "qemu-system-x86_64", "python3")
        let s = try Scratch(self)
        let (vault, image) = try makeVault(s)
        let expected = s.file("expected.img")
        try Tool.sh("cp \(image) \(expected) && qemu-io -f raw -c 'write -P 0x5a 1M 64k' \(expected) >/dev/null")

        for withVM in [false, true] {
            let target = s.file("instant-\(withVM).qcow2")
            let r = try Tool.dv("restore", "--vault", vault, "--disk", "web", "--target", target, "--instant", "--json")
            XCTAssertEqual(r.status, 0, r.output)
            let state = try XCTUnwrap(try r.json()["state"] as? [String: Any])
            let pid = try XCTUnwrap(state["pid"] as? Int)
            XCTAssertEqual(kill(Int32(pid), 0), 0, "the export runs")
            XCTAssertTrue(try Tool.sh("qemu-img info --output=json -U \(target)").contains("nbd+unix"))
            _ = try Tool.sh("qemu-img compare -U -f qcow2 -F raw \(target) \(image)")
            XCTAssertTrue(FileManager.default.fileExists(atPath: "\(target).libvirt.xml"))
            XCTAssertTrue(try String(contentsOfFile: "\(target).qemu-args", encoding: .utf8).contains("qcow2"))

            // A second instant restore onto the same target is refused, and starts no second export.
            let again = try Tool.dv("restore", "--vault", vault, "--disk", "web", "--target", target, "--instant")
            XCTAssertNotEqual(again.status, 0, again.output)

            var vm: Process? = nil
            let qmp = s.file("vm-\(withVM).qmp")
            if withVM {
                let p = Process()
                p.executableURL = URL(fileURLWithPath: try Tool.which("qemu-system-x86_64"))
                p.arguments = ["-S", "-nodefaults", "-display", "none", "-machine", "pc,accel=tcg",
                               "-blockdev", "driver=qcow2,node-name=d0,file.driver=file,file.filename=\(target)",
                               "-device", "virtio-blk-pci,drive=d0,id=vda", "-qmp", "unix:\(qmp),server=on,wait=off",
                               "-qmp", "unix:\(qmp).test,server=on,wait=off"]
                p.standardInput = FileHandle(forReadingAtPath: "/dev/null")
                p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
                p.standardError = FileHandle(forWritingAtPath: "/dev/null")
                try p.run()
                vm = p
                waitUntilExists("\(qmp).test", seconds: 20)
                // The guest writes while it runs from the overlay.
                _ = try Tool.sh("python3 \(TestVM.tool) \(qmp).test write /machine/peripheral/vda/virtio-backend 0x5a 1M 64k")
                let busy = try Tool.dv("restore", "--finish", target)
                XCTAssertEqual(busy.status, 1, busy.output)
                XCTAssertTrue(busy.stderr.contains("--qmp"), busy.stderr)
            } else {
                _ = try Tool.sh("qemu-io -f qcow2 -c 'write -P 0x5a 1M 64k' \(target) >/dev/null")
            }
            // The point is as it was.
            let back = s.file("back-\(withVM).img")
            XCTAssertEqual(try Tool.dv("restore", "--vault", vault, "--disk", "web", "--target", back).status, 0)
            XCTAssertTrue(try fileBytesEqual(back, image))

            let finish = withVM ? try Tool.dv("restore", "--finish", target, "--qmp", qmp, "--drive", "d0")
                                : try Tool.dv("restore", "--finish", target)
            XCTAssertEqual(finish.status, 0, finish.output)
            if let vm {
                vm.terminate()
                vm.waitUntilExit()
            }
            let info = try Tool.sh("qemu-img info --output=json \(target)")
            XCTAssertFalse(info.contains("backing-filename"), info)
            for _ in 0..<100 where kill(Int32(pid), 0) == 0 { usleep(50_000) }
            XCTAssertNotEqual(kill(Int32(pid), 0), 0, "the export has stopped")
            XCTAssertFalse(FileManager.default.fileExists(atPath: "\(target).nbd.sock"))
            XCTAssertFalse(FileManager.default.fileExists(atPath: "\(target).instant.json"))
            _ = try Tool.sh("qemu-img compare -f qcow2 -F raw \(target) \(expected)")
        }
        let none = try Tool.dv("restore", "--finish", s.file("nothing.qcow2"))
        XCTAssertEqual(none.status, 1, none.output)
        XCTAssertTrue(none.stderr.contains("no instant restore"), none.stderr)
    }
}
