import Foundation
import XCTest

/// NBD servers that misbehave (hostile_nbd.py): each is a clear error naming the export, exit 1, no point,
/// never a crash or a hang. An honest run of the same server is the control.
final class HostileNBDTests: XCTestCase {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("hostile_nbd.py").path

    private func serve(_ s: Scratch, _ image: String, _ mode: String, _ n: Int, socket: String) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try Tool.which("python3"))
        p.arguments = [Self.script, socket, image, mode, String(n)]
        p.standardInput = FileHandle(forReadingAtPath: "/dev/null")
        p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        try p.run()
        waitUntilExists(socket, seconds: 10)
        return p
    }

    func testHostileServersAreErrorsAndLeaveNoPoint() throws {
        try Tool.require("python3")
        let s = try Scratch(self)
        let vault = s.file("vault"), image = s.file("disk.img")
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--chunk-size", "1MiB", "--kdf-work-factor", "10").status, 0)
        try Tool.sh("head -c 6291456 /dev/urandom > \(image)")

        let cases: [(mode: String, n: Int, says: String)] = [
            ("disconnect", 3, "NBD export"),
            ("eio", 2, "Input/output error"),
            ("cookie", 2, "NBD export"),
            ("short", 4, "NBD export"),
            ("size", 64 << 20, "Input/output error"),
            ("garbage", 1, "NBD export"),
            ("optreply", 1, "NBD export"),
        ]
        for (i, c) in cases.enumerated() {
            let socket = s.file("s\(i).sock")
            let server = try serve(s, image, c.mode, c.n, socket: socket)
            defer { server.terminate(); server.waitUntilExit() }
            let r = try Tool.dv("backup", "--source", "nbd+unix:///?socket=\(socket)", "--vault", vault, "--disk", "d")
            XCTAssertEqual(r.status, 1, "\(c.mode): \(r.output)")
            XCTAssertTrue(r.stderr.contains(c.says) && r.stderr.contains("socket=\(socket)"), "\(c.mode): \(r.stderr)")
            XCTAssertFalse(r.stderr.contains("Fatal error"), r.stderr)
        }
        let none = try Tool.dv("points", "--vault", vault, "--disk", "d", "--json")
        XCTAssertEqual((try? none.json()["points"] as? [Any])?.count ?? 0, 0, none.output)
        XCTAssertEqual(try Tool.dv("verify", "--vault", vault).status, 0)

        // The control: the same server, honest, gives a point that restores to the image.
        let socket = s.file("good.sock")
        let server = try serve(s, image, "good", 1, socket: socket)
        defer { server.terminate(); server.waitUntilExit() }
        let good = try Tool.dv("backup", "--source", "nbd+unix:///?socket=\(socket)", "--vault", vault, "--disk", "d")
        XCTAssertEqual(good.status, 0, good.output)
        XCTAssertEqual(try Tool.dv("restore", "--vault", vault, "--disk", "d", "--target", s.file("r.img")).status, 0)
        XCTAssertTrue(try fileBytesEqual(s.file("r.img"), image))
    }
}
