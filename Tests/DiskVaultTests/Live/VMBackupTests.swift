import Foundation
import XCTest

/// A VM's disks as one point: every drive of a running qemu in one transaction, a stopped VM's image files,
/// restored and pruned as a unit; a protected running disk backed up by run-due.
final class VMBackupTests: XCTestCase {
    private func twoDisks(_ s: Scratch) throws -> (vault: String, disks: [String]) {
        try Tool.require("qemu-system-x86_64", "qemu-img", "python3")
        let vault = s.file("vault"), a = s.file("os.raw"), b = s.file("data.raw")
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--encryption", "none").status, 0)
        try Tool.sh("""
            head -c 8388608 /dev/urandom > \(a) && truncate -s 32M \(a)
            head -c 4194304 /dev/urandom > \(b) && truncate -s 16M \(b)
            mkdir -p \(s.file("scratch"))
            """)
        return (vault, [a, b])
    }

    func testARunningVMsDisksAreTakenAtOneInstantAndRestoredTogether() throws {
        let s = try Scratch(self)
        let (vault, disks) = try twoDisks(s)
        let vm = try TestVM(s, disks: disks)
        defer { vm.stop() }
        let first = try Tool.dv("vm", "backup", "web", "--qmp", vm.qmp, "--vault", vault, "--scratch", s.file("scratch"), "--json")
        XCTAssertEqual(first.status, 0, first.output)
        try vm.snapshot(0, to: s.file("os.before"))
        try vm.snapshot(1, to: s.file("data.before"))

        // Writes to both disks right after the instant: neither is in the point.
        let writes = [vm.writeCommand(device: "vda", "0x5a", "1M", "1M"), vm.writeCommand(device: "vdb", "0x6b", "2M", "64k")]
        let second = try Tool.dv("vm", "backup", "web", "--qmp", vm.qmp, "--vault", vault, "--scratch", s.file("scratch"),
                                 "--thaw", writes.joined(separator: " && "), "--json")
        XCTAssertEqual(second.status, 0, second.output)
        let point = try second.json()["point"] as? [String: Any] ?? [:]
        let members = point["disks"] as? [[String: Any]] ?? []
        XCTAssertEqual(members.map { $0["name"] as? String ?? "" }, ["vda", "vdb"])
        XCTAssertEqual(members.map { $0["disk"] as? String ?? "" }, ["web.vda", "web.vdb"])
        XCTAssertEqual(point["consistency"] as? String, "live-consistent")
        try vm.assertClean(bitmapsFor: ["web.vda", "web.vdb"])

        let listed = try Tool.dv("vm", "points", "web", "--vault", vault, "--json").json()["points"] as? [[String: Any]] ?? []
        XCTAssertEqual(listed.count, 2)
        XCTAssertEqual(listed.last?["id"] as? String, point["id"] as? String, "latest is not the newest VM point")

        let out = s.file("restored")
        let restored = try Tool.dv("vm", "restore", "web", "--vault", vault, "--target-dir", out)
        XCTAssertEqual(restored.status, 0, restored.output)
        XCTAssertTrue(try fileBytesEqual("\(out)/vda.raw", s.file("os.before")), "disk vda is not as of the instant")
        XCTAssertTrue(try fileBytesEqual("\(out)/vdb.raw", s.file("data.before")), "disk vdb is not as of the instant")
        let xml = try String(contentsOfFile: "\(out)/web.libvirt.xml", encoding: .utf8)
        XCTAssertTrue(xml.contains("<name>web</name>") && xml.contains("\(out)/vda.raw") && xml.contains("\(out)/vdb.raw")
                      && xml.contains("dev='vda'") && xml.contains("dev='vdb'"), xml)
        if let virtXML = try? Tool.which("virt-xml-validate") {
            let check = try Tool.run(virtXML, ["\(out)/web.libvirt.xml", "domain"])
            XCTAssertEqual(check.status, 0, check.output)
        }
        let args = try String(contentsOfFile: "\(out)/web.qemu-args", encoding: .utf8)
        XCTAssertTrue(args.contains("\(out)/vda.raw") && args.contains("\(out)/vdb.raw"), args)

        let verified = try Tool.dv("vm", "verify", "web", "--vault", vault)
        XCTAssertEqual(verified.status, 0, verified.output)
    }

    /// copy takes a VM point's record along once its disk points are in the target: the copy's VM point
    /// restores both disks; a copy of one disk only leaves the record behind.
    func testACopiedVaultKeepsItsVMPoints() throws {
        let s = try Scratch(self)
        let (vault, disks) = try twoDisks(s)
        let backup = try Tool.dv("vm", "backup", "db", "--disk", "os=\(disks[0])", "--disk", "data=\(disks[1])", "--vault", vault, "--json")
        XCTAssertEqual(backup.status, 0, backup.output)
        let remote = s.file("remote"), partial = s.file("partial")
        for v in [remote, partial] { XCTAssertEqual(try Tool.dv("vault", "init", v, "--encryption", "none").status, 0) }
        let one = try Tool.dv("copy", "--from", vault, "--to", partial, "--disk", "db.os", "--json")
        XCTAssertEqual(one.status, 0, one.output)
        XCTAssertEqual((try one.json()["vmPointsCopied"] as? [String])?.count, 0, "db.data is not there: no VM point")
        let all = try Tool.dv("copy", "--from", vault, "--to", remote, "--json")
        XCTAssertEqual(all.status, 0, all.output)
        XCTAssertEqual((try all.json()["vmPointsCopied"] as? [String])?.count, 1, all.output)
        XCTAssertEqual((try Tool.dv("copy", "--from", vault, "--to", remote, "--json").json()["vmPointsCopied"] as? [String])?.count, 0, "copied once")
        let restored = s.file("restored")
        let r = try Tool.dv("vm", "restore", "db", "--vault", remote, "--target-dir", restored)
        XCTAssertEqual(r.status, 0, r.output)
        let files = try FileManager.default.contentsOfDirectory(atPath: restored)
        for (name, image) in [("os", disks[0]), ("data", disks[1])] {
            let file = try XCTUnwrap(files.first { $0.hasPrefix(name) && !$0.contains(".xml") && !$0.contains("args") && !$0.contains("json") }, "\(files)")
            XCTAssertTrue(try fileBytesEqual("\(restored)/\(file)", image), name)
        }
    }

    /// A stopped VM's images; a VM point pruned as a unit, and forgotten as one.
    func testAStoppedVMAndPruningAsAUnit() throws {
        let s = try Scratch(self)
        let (vault, disks) = try twoDisks(s)
        let backup = try Tool.dv("vm", "backup", "db", "--disk", "os=\(disks[0])", "--disk", "data=\(disks[1])", "--vault", vault, "--json")
        XCTAssertEqual(backup.status, 0, backup.output)
        XCTAssertEqual((try backup.json()["point"] as? [String: Any])?["consistency"] as? String, "cold")

        // A month on, every on-demand point is past its retain-until, and each disk would keep only its newest; one
        // point of db.data retained by hand keeps its VM point whole: db.os's point of it stays too.
        XCTAssertEqual(try Tool.dv("policy", "create", "--vault", vault, "--name", "one", "--schedule", "daily 02:00", "--keep-last", "1").status, 0)
        XCTAssertEqual(try Tool.dv("protect", "add", "--vault", vault, "--disk", "db.os", "--source", disks[0], "--policy", "one").status, 0)
        XCTAssertEqual(try Tool.dv("protect", "add", "--vault", vault, "--disk", "db.data", "--source", disks[1], "--policy", "one").status, 0)
        for _ in 0..<3 { XCTAssertEqual(try Tool.dv("vm", "backup", "db", "--disk", "os=\(disks[0])", "--disk", "data=\(disks[1])", "--vault", vault).status, 0) }
        let dataPoints = try Tool.dv("points", "--vault", vault, "--disk", "db.data", "--json").json()["points"] as? [[String: Any]] ?? []
        let retained = try XCTUnwrap(dataPoints.dropFirst().first?["id"] as? String)
        XCTAssertEqual(try Tool.dv("points", "retain", "--vault", vault, "--disk", "db.data", "--point", retained, "--until", "2099-01-01").status, 0)
        let later = ISO8601DateFormatter().string(from: Date().addingTimeInterval(40 * 86400))
        let pruned = try Tool.run(Tool.diskvault, ["prune", "--vault", vault], environment: ["DISKVAULT_NOW": later])
        XCTAssertEqual(pruned.status, 0, pruned.output)
        let points = try Tool.dv("vm", "points", "db", "--vault", vault, "--json").json()["points"] as? [[String: Any]] ?? []
        XCTAssertEqual(points.count, 2, pruned.output)
        for disk in ["db.os", "db.data"] {
            let left = try Tool.dv("points", "--vault", vault, "--disk", disk, "--json").json()["points"] as? [[String: Any]] ?? []
            XCTAssertEqual(left.count, 2, "\(disk): \(pruned.output)")
        }
        XCTAssertTrue(pruned.stdout.contains("kept with VM point"), pruned.stdout)

        let oldest = points.first?["id"] as? String ?? ""
        XCTAssertEqual(try Tool.dv("vm", "forget", "db", "--vault", vault, "--point", oldest).status, 0)
        let after = try Tool.dv("vm", "points", "db", "--vault", vault, "--json").json()["points"] as? [[String: Any]] ?? []
        XCTAssertEqual(after.count, 1)
        let osLeft = try Tool.dv("points", "--vault", vault, "--disk", "db.os", "--json").json()["points"] as? [[String: Any]] ?? []
        XCTAssertEqual(osLeft.count, 1)
    }

    /// VM records edited by hand: not JSON, and one naming another VM's disk. Each is named and skipped; prune
    /// and the other points go on; vm forget removes the damaged record alone.
    func testDamagedVMRecordsAreSkippedAndNamed() throws {
        let s = try Scratch(self)
        let (vault, disks) = try twoDisks(s)
        XCTAssertEqual(try Tool.dv("vm", "backup", "db", "--disk", "os=\(disks[0])", "--vault", vault).status, 0)
        let good = try Tool.dv("vm", "points", "db", "--vault", vault, "--json").json()["points"] as? [[String: Any]] ?? []
        XCTAssertEqual(good.count, 1)
        let record = "\(vault)/vms/db/\(good[0]["id"] as! String).json"
        let text = try String(contentsOfFile: record, encoding: .utf8)
        try "{not json".write(toFile: "\(vault)/vms/db/20261201T000000Z-aaaaaa.json", atomically: true, encoding: .utf8)
        try text.replacingOccurrences(of: "\"db.os\"", with: "\"web.os\"").replacingOccurrences(of: good[0]["id"] as! String, with: "20261201T000001Z-bbbbbb")
            .write(toFile: "\(vault)/vms/db/20261201T000001Z-bbbbbb.json", atomically: true, encoding: .utf8)
        let listed = try Tool.dv("vm", "points", "db", "--vault", vault)
        XCTAssertEqual(listed.status, 0, listed.output)
        XCTAssertTrue(listed.stderr.contains("20261201T000000Z-aaaaaa is damaged") && listed.stderr.contains("20261201T000001Z-bbbbbb is damaged")
                      && listed.stderr.contains("not one of VM db's"), listed.stderr)
        XCTAssertTrue(listed.stdout.contains(good[0]["id"] as! String), listed.stdout)
        XCTAssertEqual(try Tool.dv("prune", "--vault", vault).status, 0)
        let forgot = try Tool.dv("vm", "forget", "db", "--vault", vault, "--point", "20261201T000000Z-aaaaaa")
        XCTAssertEqual(forgot.status, 0, forgot.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(vault)/vms/db/20261201T000000Z-aaaaaa.json"))
        let after = try Tool.dv("points", "--vault", vault, "--disk", "db.os", "--json").json()["points"] as? [Any] ?? []
        XCTAssertEqual(after.count, 1, "a damaged record's removal took a disk point with it")
    }

    func testAStoppedVMImageInUseIsRefusedAndNothingIsWritten() throws {
        let s = try Scratch(self)
        let (vault, disks) = try twoDisks(s)
        let vm = try TestVM(s, disks: [disks[1]])
        defer { vm.stop() }
        let r = try Tool.dv("vm", "backup", "db", "--disk", "os=\(disks[0])", "--disk", "data=\(disks[1])", "--vault", vault)
        XCTAssertEqual(r.status, 1, r.output)
        XCTAssertTrue(r.stderr.contains(disks[1]) && r.stderr.contains("running VM"), r.stderr)
        let none = try Tool.dv("points", "--vault", vault, "--json").json()["points"] as? [Any] ?? []
        XCTAssertEqual(none.count, 0)
    }

    func testAProtectedRunningDiskIsBackedUpByRunDue() throws {
        let s = try Scratch(self)
        let (vault, disks) = try twoDisks(s)
        let vm = try TestVM(s, disks: [disks[0]])
        defer { vm.stop() }
        XCTAssertEqual(try Tool.dv("policy", "create", "--vault", vault, "--name", "live", "--schedule", "daily 02:00",
                                   "--keep-last", "5", "--full-read-every", "2").status, 0)
        let added = try Tool.dv("protect", "add", "--vault", vault, "--disk", "web", "--qmp", vm.qmp, "--drive", "vda",
                                "--scratch", s.file("scratch"), "--policy", "live")
        XCTAssertEqual(added.status, 0, added.output)
        var reads: [String] = []
        for now in ["2026-11-20T02:05:00Z", "2026-11-21T02:05:00Z", "2026-11-22T02:05:00Z"] {
            let r = try Tool.run(Tool.diskvault, ["run-due", "--vault", vault], environment: ["DISKVAULT_NOW": now])
            XCTAssertTrue(r.stdout.contains("web: completed"), r.output)
        }
        let points = try Tool.dv("points", "--vault", vault, "--disk", "web", "--json").json()["points"] as? [[String: Any]] ?? []
        for p in points { reads.append((p["live"] as? [String: Any])?["read"] as? String ?? "-") }
        XCTAssertEqual(reads, ["full", "incremental", "full"], "the policy's full read every 2 points")
        XCTAssertEqual(points.map { $0["trigger"] as? String ?? "" }, ["scheduled", "scheduled", "scheduled"])
        try vm.assertClean(bitmapsFor: ["web"])
    }
}
