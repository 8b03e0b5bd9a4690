import Foundation
import XCTest

/// Images a running qemu holds: qemu-io and a paused qemu-system-x86_64 as the writers, qemu's own lock
/// messages as the judge of diskvault's locks.
final class ImageInUseTests: XCTestCase {
    /// Starts `command` (a shell line) in the background; waits until the writer holds qemu's write lock (a lock
    /// on byte 101, seen by an F_OFD_GETLK probe written apart from diskvault's, in Python).
    private func startWriter(_ command: String, image: String) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = ["-c", "exec \(command)"]
        p.standardInput = FileHandle(forReadingAtPath: "/dev/null")
        p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        p.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try p.run()
        for _ in 0..<400 {
            let probe = try Tool.run("/usr/bin/env", ["python3", "-c", """
                import fcntl, os, struct, sys
                fd = os.open(sys.argv[1], os.O_RDONLY)
                got = fcntl.fcntl(fd, 36, struct.pack("hhqqi4x", fcntl.F_WRLCK, 0, 101, 1, 0))
                sys.exit(0 if struct.unpack("hhqqi4x", got)[0] != fcntl.F_UNLCK else 1)
                """, image])
            if probe.status == 0 { return p }
            usleep(25_000)
        }
        p.terminate()
        XCTFail("the writer never took the image's locks: \(command)")
        throw XCTSkip("no writer")
    }

    private func stop(_ p: Process) {
        p.terminate()
        p.waitUntilExit()
    }

    func testAnImageAVMWritesIsRefusedOrReadCrashConsistent() throws {
        try Tool.require("qemu-io", "qemu-img")
        let s = try Scratch(self)
        let vault = s.file("vault"), image = s.file("d.img")
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--kdf-work-factor", "10").status, 0)
        try Tool.sh("head -c 4194304 /dev/urandom > \(image)")

        let writer = try startWriter("qemu-io -f raw -c 'sleep 60000' \(image)", image: image)
        let refused = try Tool.dv("backup", image, "--vault", vault, "--disk", "d")
        XCTAssertEqual(refused.status, 1, refused.output)
        XCTAssertTrue(refused.stderr.contains(image) && refused.stderr.contains("open for writing by a running VM")
                      && refused.stderr.contains("--allow-live"), refused.stderr)
        let none = try Tool.dv("points", "--vault", vault, "--disk", "d", "--json")
        XCTAssertEqual((try? none.json()["points"] as? [Any])?.count ?? 0, 0)

        let live = try Tool.dv("backup", image, "--vault", vault, "--disk", "d", "--allow-live", "--json")
        XCTAssertEqual(live.status, 0, live.output)
        XCTAssertEqual(try live.json()["consistency"] as? String, "crash-consistent")
        XCTAssertTrue(live.stderr.contains("crash-consistent"), live.stderr)
        stop(writer)

        let cold = try Tool.dv("backup", image, "--vault", vault, "--disk", "d", "--json")
        XCTAssertEqual(cold.status, 0, cold.output)
        XCTAssertEqual(try cold.json()["consistency"] as? String, "cold")
        let table = try Tool.dv("points", "--vault", vault, "--disk", "d")
        XCTAssertTrue(table.stdout.contains("TAKEN") && table.stdout.contains("crash-consistent") && table.stdout.contains("cold"), table.stdout)
    }

    func testAPausedVMWithTheDiskAttachedIsSeenAndAQcow2InUseIsNeverRead() throws {
        try Tool.require("qemu-system-x86_64", "qemu-io", "qemu-img")
        let s = try Scratch(self)
        let vault = s.file("vault"), image = s.file("vm.img"), qcow2 = s.file("vm.qcow2")
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--kdf-work-factor", "10").status, 0)
        try Tool.sh("truncate -s 8M \(image) && qemu-img create -q -f qcow2 \(qcow2) 8M")

        let vm = try startWriter("qemu-system-x86_64 -S -display none -nodefaults -machine accel=tcg -drive file=\(image),format=raw,if=virtio", image: image)
        let refused = try Tool.dv("backup", image, "--vault", vault, "--disk", "vm")
        stop(vm)
        XCTAssertEqual(refused.status, 1, refused.output)
        XCTAssertTrue(refused.stderr.contains("open for writing by a running VM"), refused.stderr)

        let writer = try startWriter("qemu-io -f qcow2 -c 'sleep 60000' \(qcow2)", image: qcow2)
        defer { stop(writer) }
        for extra in [[], ["--allow-live"]] {
            let r = try Tool.dv(["backup", qcow2, "--vault", vault, "--disk", "q"] + extra)
            XCTAssertEqual(r.status, 1, r.output)
            XCTAssertTrue(r.stderr.contains("open for writing by a running VM") && r.stderr.contains("metadata"), r.stderr)
        }
        let none = try Tool.dv("points", "--vault", vault, "--json")
        XCTAssertEqual((try? none.json()["points"] as? [Any])?.count ?? 0, 0, none.output)
    }

    /// While diskvault reads an image (here: waiting for a rival's disk lock with the image already open), qemu
    /// cannot open it for write: its own "Failed to get "write" lock".
    func testNoQemuCanOpenTheImageForWriteWhileItIsRead() throws {
        try Tool.require("qemu-io")
        let s = try Scratch(self)
        let vault = s.file("vault"), image = s.file("d.img"), fifo = s.file("fifo")
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--kdf-work-factor", "10").status, 0)
        try Tool.sh("head -c 1048576 /dev/urandom > \(image) && mkfifo \(fifo)")
        let out = try Tool.sh("""
            exec 3<>\(fifo)
            \(Tool.diskvault) backup - --vault \(vault) --disk d < \(fifo) >/dev/null 2>&1 & rival=$!
            sleep 0.5
            \(Tool.diskvault) backup \(image) --vault \(vault) --disk d --lock-wait 60 > \(s.file("b.out")) 2>&1 & b=$!
            for i in $(seq 1 200); do
              qemu-io -f raw -c quit \(image) > \(s.file("q.out")) 2>&1 || break
              sleep 0.05
            done
            cat \(s.file("q.out"))
            kill -9 $rival; exec 3>&-
            wait $b; echo "backup exit $?"
            qemu-io -f raw -c quit \(image) && echo "writable again"
            """)
        XCTAssertTrue(out.contains("Failed to get \"write\" lock"), out)
        let backupOutput = (try? String(contentsOfFile: s.file("b.out"), encoding: .utf8)) ?? ""
        XCTAssertTrue(out.contains("backup exit 0"), out + backupOutput)
        XCTAssertTrue(out.contains("writable again"), out)
    }

    /// A block device another process holds exclusively (as the kernel's own users do: a mount, a device-mapper
    /// target) is refused; --allow-live reads it as crash-consistent.
    func testABlockDeviceHeldExclusivelyIsRefused() throws {
        try Tool.require("losetup", "python3")
        let s = try Scratch(self)
        let vault = s.file("vault"), backing = s.file("loop.img")
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--kdf-work-factor", "10").status, 0)
        try Tool.sh("head -c 4194304 /dev/urandom > \(backing)")
        let attach = try Tool.run("/bin/bash", ["-c", "losetup -f --show \(backing)"])
        guard attach.status == 0 else { throw XCTSkip("no loop device here: \(attach.output)") }
        let device = attach.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        defer { _ = try? Tool.run("/bin/bash", ["-c", "losetup -d \(device)"]) }

        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: try Tool.which("python3"))
        holder.arguments = ["-c", "import os, sys, time\nfd = os.open(sys.argv[1], os.O_RDONLY | os.O_EXCL)\nprint('held', flush=True)\ntime.sleep(60)", device]
        let pipe = Pipe()
        holder.standardOutput = pipe
        try holder.run()
        _ = pipe.fileHandleForReading.readData(ofLength: 5)
        let refused = try Tool.dv("backup", device, "--vault", vault, "--disk", "dev")
        let live = try Tool.dv("backup", device, "--vault", vault, "--disk", "dev", "--allow-live", "--json")
        holder.terminate()
        holder.waitUntilExit()
        XCTAssertEqual(refused.status, 1, refused.output)
        XCTAssertTrue(refused.stderr.contains(device) && refused.stderr.contains("is in use") && refused.stderr.contains("--allow-live"), refused.stderr)
        XCTAssertEqual(live.status, 0, live.output)
        XCTAssertEqual(try live.json()["consistency"] as? String, "crash-consistent")
        let cold = try Tool.dv("backup", device, "--vault", vault, "--disk", "dev", "--json")
        XCTAssertEqual(cold.status, 0, cold.output)
        XCTAssertEqual(try cold.json()["consistency"] as? String, "cold")
    }
}
