import Foundation
import XCTest

/// A paused qemu-system-x86_64 (-S, no guest) with raw disks on virtio devices vda, vdb, …: one QMP socket for
/// diskvault, another for the test (guest-like writes through HMP qemu-io, and what qemu holds).
final class TestVM {
    static let tool = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("qmp_tool.py").path
    let qmp: String
    let testQMP: String
    let disks: [String]
    private(set) var process: Process?

    init(_ s: Scratch, disks: [String], name: String = "vm") throws {
        qmp = s.file("\(name).qmp")
        testQMP = s.file("\(name).test.qmp")
        self.disks = disks
        try start()
    }

    func start() throws {
        var args = ["-S", "-nodefaults", "-display", "none", "-machine", "pc,accel=tcg"]
        for (i, d) in disks.enumerated() {
            args += ["-blockdev", "driver=file,filename=\(d),node-name=f\(i)", "-blockdev", "driver=raw,file=f\(i),node-name=d\(i)",
                     "-device", "virtio-blk-pci,drive=d\(i),id=vd\(Character(UnicodeScalar(UInt8(97 + i))))"]
        }
        args += ["-qmp", "unix:\(qmp),server=on,wait=off", "-qmp", "unix:\(testQMP),server=on,wait=off"]
        unlink(qmp)
        unlink(testQMP)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try Tool.which("qemu-system-x86_64"))
        p.arguments = args
        p.standardInput = FileHandle(forReadingAtPath: "/dev/null")
        p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        p.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try p.run()
        process = p
        for _ in 0..<400 where !(FileManager.default.fileExists(atPath: qmp) && FileManager.default.fileExists(atPath: testQMP)) {
            usleep(25_000)
        }
        // The monitor answers once the machine is built.
        _ = try state()
    }

    func stop() {
        guard let p = process else { return }
        p.terminate()
        p.waitUntilExit()
        process = nil
    }

    var pid: Int32 { process?.processIdentifier ?? 0 }

    /// The shell line that writes `length` bytes of `pattern` at `offset` into device vdX as the guest would.
    func writeCommand(device: String = "vda", _ pattern: String, _ offset: String, _ length: String) -> String {
        "python3 \(Self.tool) \(testQMP) write /machine/peripheral/\(device)/virtio-backend \(pattern) \(offset) \(length)"
    }

    func write(device: String = "vda", _ pattern: String, _ offset: String, _ length: String) throws {
        try Tool.sh(writeCommand(device: device, pattern, offset, length))
    }

    /// Jobs, exports, named nodes and bitmaps qemu holds.
    func state() throws -> [String: [String]] {
        let out = try Tool.sh("python3 \(Self.tool) \(testQMP) state")
        return (try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: [String]]) ?? [:]
    }

    /// What a finished run must leave: no job, export or fleece node, and one recording bitmap per disk named.
    func assertClean(bitmapsFor names: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let st = try state()
        XCTAssertEqual(st["jobs"], [], "\(st)", file: file, line: line)
        XCTAssertEqual(st["exports"], [], "\(st)", file: file, line: line)
        XCTAssertEqual(st["nodes"], (0..<disks.count).flatMap { ["d\($0)", "f\($0)"] }.sorted(), "\(st)", file: file, line: line)
        let ours = (st["bitmaps"] ?? []).filter { $0.contains(":diskvault-") }
        XCTAssertEqual(ours.count, names.count, "\(st)", file: file, line: line)
        for n in names {
            XCTAssertTrue(ours.contains { $0.contains(":diskvault-\(n).") && $0.hasSuffix(":on") }, "\(st)", file: file, line: line)
        }
    }

    /// A copy of disk `i` as it is now, read beside the running qemu (-U: without its locks).
    func snapshot(_ i: Int = 0, to path: String) throws {
        try Tool.sh("qemu-img convert -U -f raw -O raw \(disks[i]) \(path)")
    }

    deinit { stop() }
}

/// Backups of a running VM through QMP: a point in time while the guest writes, incrementals from qemu's dirty
/// bitmaps, teardown however a run ends.
final class LiveBackupTests: XCTestCase {
    private func setUp(_ s: Scratch, megabytes: Int = 64) throws -> (vault: String, disk: String) {
        try Tool.require("qemu-system-x86_64", "qemu-img", "python3")
        let vault = s.file("vault"), disk = s.file("disk0.raw")
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--encryption", "none").status, 0)
        // Data in the first half, then holes: the second half is never read.
        try Tool.sh("head -c \(megabytes / 2 * 1048576) /dev/urandom > \(disk) && truncate -s \(megabytes)M \(disk) && mkdir -p \(s.file("scratch"))")
        return (vault, disk)
    }

    private func backup(_ vm: TestVM, _ vault: String, _ s: Scratch, disk: String = "web", drive: String = "vda", _ extra: [String] = []) throws -> RunResult {
        try Tool.dv(["backup", "--qmp", vm.qmp, "--drive", drive, "--vault", vault, "--disk", disk, "--scratch", s.file("scratch"), "--json"] + extra)
    }

    private func restore(_ vault: String, disk: String = "web", point: String, to target: String) throws {
        let r = try Tool.dv("restore", "--vault", vault, "--disk", disk, "--point", point, "--target", target)
        XCTAssertEqual(r.status, 0, r.output)
    }

    private func scratchLeftovers(_ s: Scratch) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: s.file("scratch"))) ?? ["(scratch folder gone)"]
    }

    func testWritesMadeWhileTheBackupRunsAreNotInThePointAndTheNextPointReadsOnlyThem() throws {
        let s = try Scratch(self)
        let (vault, disk) = try setUp(s)
        let vm = try TestVM(s, disks: [disk])
        defer { vm.stop() }

        let first = try backup(vm, vault, s)
        XCTAssertEqual(first.status, 0, first.output)
        let m1 = try first.json()
        XCTAssertEqual(m1["consistency"] as? String, "live-consistent")
        XCTAssertEqual((m1["live"] as? [String: Any])?["read"] as? String, "full")
        XCTAssertEqual((m1["source"] as? [String: Any])?["kind"] as? String, "running-vm")
        try vm.assertClean(bitmapsFor: ["web"])

        // The writes run right after the point in time (the thaw hook), before the disk is read.
        try vm.snapshot(to: s.file("before.raw"))
        let writes = [vm.writeCommand("0x5a", "10M", "1M"), vm.writeCommand("0x33", "40M", "2M"), vm.writeCommand("0x77", "60M", "64k")]
        let second = try backup(vm, vault, s, ["--thaw", writes.joined(separator: " && ")])
        XCTAssertEqual(second.status, 0, second.output)
        let m2 = try second.json()
        let live2 = m2["live"] as? [String: Any]
        XCTAssertEqual(live2?["read"] as? String, "incremental", second.output)
        XCTAssertEqual(live2?["thawStatus"] as? Int, 0)
        // Nothing changed between the two points: nothing was read.
        XCTAssertEqual((m2["stats"] as? [String: Any])?["readBytes"] as? Int, 0, second.output)
        try vm.snapshot(to: s.file("after.raw"))
        XCTAssertFalse(try fileBytesEqual(s.file("before.raw"), s.file("after.raw")), "the writes did not land")
        try restore(vault, point: m2["id"] as! String, to: s.file("r2.raw"))
        XCTAssertTrue(try fileBytesEqual(s.file("r2.raw"), s.file("before.raw")), "the point holds writes made after its instant")

        let third = try backup(vm, vault, s)
        XCTAssertEqual(third.status, 0, third.output)
        let m3 = try third.json()
        XCTAssertEqual((m3["live"] as? [String: Any])?["read"] as? String, "incremental")
        let stats = m3["stats"] as? [String: Any] ?? [:]
        let chunk = m3["chunkSize"] as! Int
        // Three chunks were written (at 10, 40 and 60 MiB): only they are read, and only their data.
        let read = stats["readBytes"] as? Int ?? -1, unchanged = stats["unchangedBytes"] as? Int ?? -1
        XCTAssertGreaterThan(read, 0)
        XCTAssertLessThanOrEqual(read, 3 * chunk, third.output)
        XCTAssertEqual(unchanged, 64 * 1048576 - 3 * chunk, third.output)
        try restore(vault, point: m3["id"] as! String, to: s.file("r3.raw"))
        XCTAssertTrue(try fileBytesEqual(s.file("r3.raw"), s.file("after.raw")), "the next point lacks the writes")
        try vm.assertClean(bitmapsFor: ["web"])
        XCTAssertEqual(scratchLeftovers(s), [])

        let text = try Tool.dv("points", "--vault", vault, "--disk", "web")
        XCTAssertTrue(text.stdout.contains("live-consistent"), text.stdout)
    }

    func testARestartedQemuFullReadAndTheFullReadSettings() throws {
        let s = try Scratch(self)
        let (vault, disk) = try setUp(s)
        let vm = try TestVM(s, disks: [disk])
        defer { vm.stop() }
        XCTAssertEqual(try backup(vm, vault, s).status, 0)
        vm.stop()
        try vm.start()
        try vm.write("0x11", "1M", "4k")
        let text = try Tool.dv("backup", "--qmp", vm.qmp, "--drive", "d0", "--vault", vault, "--disk", "web", "--scratch", s.file("scratch"))
        XCTAssertEqual(text.status, 0, text.output)
        XCTAssertTrue(text.stdout.contains("full read (qemu was restarted"), text.stdout)
        try vm.snapshot(to: s.file("now.raw"))
        let points = try Tool.dv("points", "--vault", vault, "--disk", "web", "--json").json()["points"] as? [[String: Any]] ?? []
        XCTAssertEqual(points.count, 2)
        try restore(vault, point: points.last?["id"] as? String ?? "", to: s.file("r.raw"))
        XCTAssertTrue(try fileBytesEqual(s.file("r.raw"), s.file("now.raw")))

        let asked = try backup(vm, vault, s, ["--full-read"])
        XCTAssertEqual((try asked.json()["live"] as? [String: Any])?["reason"] as? String, "--full-read", asked.output)
        let incremental = try backup(vm, vault, s, ["--full-read-every", "3"])
        XCTAssertEqual((try incremental.json()["live"] as? [String: Any])?["read"] as? String, "incremental", incremental.output)
        let due = try backup(vm, vault, s, ["--full-read-every", "2"])
        XCTAssertEqual((try due.json()["live"] as? [String: Any])?["reason"] as? String, "a full read every 2 points", due.output)
        try vm.assertClean(bitmapsFor: ["web"])
    }

    /// A run killed with -9 after the point in time (its hook kills it): qemu is left with the fleecing job,
    /// node and export and two bitmaps. The next run removes them, merges the bitmaps, and its point is exact.
    func testABackupKilledMidwayLosesNoChange() throws {
        let s = try Scratch(self)
        let (vault, disk) = try setUp(s)
        let vm = try TestVM(s, disks: [disk])
        defer { vm.stop() }
        XCTAssertEqual(try backup(vm, vault, s).status, 0)
        try vm.write("0x21", "2M", "64k")
        let killed = try backup(vm, vault, s, ["--thaw", vm.writeCommand("0x22", "20M", "64k") + " && kill -9 $PPID"])
        XCTAssertNotEqual(killed.status, 0, killed.output)
        let left = try vm.state()
        XCTAssertEqual(left["jobs"]?.count, 1, "\(left)")
        XCTAssertTrue(left["jobs"]?.first?.hasSuffix("-web") ?? false, "\(left)")
        XCTAssertEqual(left["exports"], left["jobs"], "\(left)")
        XCTAssertEqual((left["bitmaps"] ?? []).filter { $0.contains("diskvault-web.") }.count, 2, "\(left)")
        try vm.write("0x23", "50M", "64k")

        let next = try Tool.dv("backup", "--qmp", vm.qmp, "--drive", "vda", "--vault", vault, "--disk", "web", "--scratch", s.file("scratch"))
        XCTAssertEqual(next.status, 0, next.output)
        XCTAssertTrue(next.stdout.contains("removed what a killed run left in qemu") && next.stdout.contains("merged back"), next.stdout)
        XCTAssertTrue(next.stdout.contains("incremental"), next.stdout)
        try vm.snapshot(to: s.file("now.raw"))
        let points = try Tool.dv("points", "--vault", vault, "--disk", "web", "--json").json()["points"] as? [[String: Any]] ?? []
        XCTAssertEqual(points.count, 2, "the killed run committed a point")
        try restore(vault, point: points.last?["id"] as? String ?? "", to: s.file("r.raw"))
        XCTAssertTrue(try fileBytesEqual(s.file("r.raw"), s.file("now.raw")), "a change made before or during the killed run is missing")
        try vm.assertClean(bitmapsFor: ["web"])
        // The killed run's overlay file went with its node.
        XCTAssertEqual(scratchLeftovers(s), [])
    }

    /// The export dropped under the run, SIGTERM, and a qemu that goes away: each a clear error, no point,
    /// nothing left in qemu, and the next point exact.
    func testAFailedRunTearsDownAndKeepsTheChain() throws {
        let s = try Scratch(self)
        let (vault, disk) = try setUp(s)
        let vm = try TestVM(s, disks: [disk])
        defer { vm.stop() }
        XCTAssertEqual(try backup(vm, vault, s).status, 0)

        try vm.write("0x31", "3M", "64k")
        let dropped = try backup(vm, vault, s, ["--thaw", "python3 \(TestVM.tool) \(vm.testQMP) drop-exports"])
        XCTAssertEqual(dropped.status, 1, dropped.output)
        XCTAssertTrue(dropped.stderr.contains("NBD export"), dropped.stderr)
        try vm.assertClean(bitmapsFor: ["web"])

        try vm.write("0x32", "30M", "64k")
        let term = try backup(vm, vault, s, ["--thaw", "kill -TERM $PPID"])
        XCTAssertNotEqual(term.status, 0, term.output)
        try vm.assertClean(bitmapsFor: ["web"])
        XCTAssertEqual(scratchLeftovers(s), [])

        let points = try Tool.dv("points", "--vault", vault, "--disk", "web", "--json").json()["points"] as? [[String: Any]] ?? []
        XCTAssertEqual(points.count, 1, "a failed run committed a point")
        let next = try backup(vm, vault, s)
        XCTAssertEqual(next.status, 0, next.output)
        XCTAssertEqual((try next.json()["live"] as? [String: Any])?["read"] as? String, "incremental")
        try vm.snapshot(to: s.file("now.raw"))
        try restore(vault, point: try next.json()["id"] as! String, to: s.file("r.raw"))
        XCTAssertTrue(try fileBytesEqual(s.file("r.raw"), s.file("now.raw")), "a change made before a failed run is missing")

        let qemu = vm.pid
        let gone = try backup(vm, vault, s, ["--thaw", "kill -9 \(qemu)"])
        XCTAssertEqual(gone.status, 1, gone.output)
        XCTAssertTrue(gone.stderr.contains("qemu") || gone.stderr.contains("NBD export"), gone.stderr)
        XCTAssertEqual(scratchLeftovers(s), [])
        let after = try Tool.dv("points", "--vault", vault, "--disk", "web", "--json").json()["points"] as? [[String: Any]] ?? []
        XCTAssertEqual(after.count, 2)
    }

    /// Two vaults back up the same VM's disk under the same name: each keeps its own bitmap chain, neither
    /// removes the other's (found by the bench, where every second backup was a full read).
    func testTwoVaultsKeepTheirOwnBitmapChains() throws {
        let s = try Scratch(self)
        let (vault, disk) = try setUp(s, megabytes: 16)
        let other = s.file("other")
        XCTAssertEqual(try Tool.dv("vault", "init", other, "--encryption", "none").status, 0)
        let vm = try TestVM(s, disks: [disk])
        defer { vm.stop() }
        for v in [vault, other] { XCTAssertEqual(try backup(vm, v, s).status, 0) }
        try vm.write("0x44", "1M", "64k")
        try vm.snapshot(to: s.file("now.raw"))
        for (i, v) in [vault, other].enumerated() {
            let r = try backup(vm, v, s)
            XCTAssertEqual(r.status, 0, r.output)
            XCTAssertEqual((try r.json()["live"] as? [String: Any])?["read"] as? String, "incremental", r.output)
            try restore(v, point: try r.json()["id"] as! String, to: s.file("r\(i).raw"))
            XCTAssertTrue(try fileBytesEqual(s.file("r\(i).raw"), s.file("now.raw")))
        }
        let bitmaps = (try vm.state()["bitmaps"] ?? []).filter { $0.contains(":diskvault-web.") }
        XCTAssertEqual(bitmaps.count, 2, "\(bitmaps)")
    }

    func testFreezeAndThawHooks() throws {
        let s = try Scratch(self)
        let (vault, disk) = try setUp(s, megabytes: 16)
        let vm = try TestVM(s, disks: [disk])
        defer { vm.stop() }
        let frozen = try backup(vm, vault, s, ["--freeze", "echo froze > \(s.file("f"))", "--thaw", "cat \(s.file("f")) > \(s.file("t"))"])
        XCTAssertEqual(frozen.status, 0, frozen.output)
        XCTAssertEqual(try frozen.json()["consistency"] as? String, "application-consistent")
        XCTAssertEqual(try String(contentsOfFile: s.file("t"), encoding: .utf8), "froze\n")

        let failed = try backup(vm, vault, s, ["--freeze", "exit 3", "--thaw", "touch \(s.file("thawed"))"])
        XCTAssertEqual(failed.status, 0, failed.output)
        let m = try failed.json()
        XCTAssertEqual(m["consistency"] as? String, "live-consistent")
        XCTAssertEqual((m["live"] as? [String: Any])?["freezeStatus"] as? Int, 3)
        XCTAssertTrue(FileManager.default.fileExists(atPath: s.file("thawed")), "the thaw hook did not run after a failed freeze")
        XCTAssertTrue(failed.stderr.contains("freeze hook exited with status 3"), failed.stderr)
        try vm.assertClean(bitmapsFor: ["web"])
    }

    func testBadDrivesAndSockets() throws {
        let s = try Scratch(self)
        let (vault, disk) = try setUp(s, megabytes: 16)
        let noSocket = try Tool.dv("backup", "--qmp", s.file("none.qmp"), "--drive", "vda", "--vault", vault, "--disk", "web")
        XCTAssertEqual(noSocket.status, 1)
        XCTAssertTrue(noSocket.stderr.contains("none.qmp") && noSocket.stderr.contains("QMP socket"), noSocket.stderr)
        let noDrive = try Tool.dv("backup", "--qmp", s.file("none.qmp"), "--vault", vault, "--disk", "web")
        XCTAssertEqual(noDrive.status, 2, noDrive.output)

        let vm = try TestVM(s, disks: [disk])
        defer { vm.stop() }
        let wrong = try Tool.dv("backup", "--qmp", vm.qmp, "--drive", "vdz", "--vault", vault, "--disk", "web", "--scratch", s.file("scratch"))
        XCTAssertEqual(wrong.status, 1)
        XCTAssertTrue(wrong.stderr.contains("no drive vdz") && wrong.stderr.contains("d0 (/machine/peripheral/vda/virtio-backend)"), wrong.stderr)
        // Not a QMP socket at all: a plain file.
        let notQMP = try Tool.dv("backup", "--qmp", disk, "--drive", "vda", "--vault", vault, "--disk", "web")
        XCTAssertEqual(notQMP.status, 1, notQMP.output)
        let none = try Tool.dv("points", "--vault", vault, "--json").json()["points"] as? [Any] ?? []
        XCTAssertEqual(none.count, 0)
        try vm.assertClean(bitmapsFor: [])
    }
}
