import Foundation
import XCTest

/// An S3 endpoint that lies in its listings (hostile_s3.py, serving a real vault folder): each lie is a clear
/// error naming the vault, exit 1, never a hang; keys it names outside the vault are never used. An honest run
/// of the same endpoint is the control.
final class HostileS3Tests: XCTestCase {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("hostile_s3.py").path

    private func serve(_ s: Scratch, _ folder: String, _ mode: String) throws -> (Process, String, String) {
        let portFile = s.file("port-\(mode)")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try Tool.which("python3"))
        p.arguments = [Self.script, folder, portFile, mode]
        p.standardInput = FileHandle(forReadingAtPath: "/dev/null")
        p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        try p.run()
        waitUntilExists(portFile, seconds: 10)
        let port = try String(contentsOfFile: portFile, encoding: .utf8)
        return (p, "s3:http://127.0.0.1:\(port)/bkt/v", portFile + ".writes")
    }

    func testListingsThatLieAreErrorsAndNeverHang() throws {
        try Tool.require("python3")
        let s = try Scratch(self)
        let folder = s.file("vault"), image = s.file("disk.img")
        XCTAssertEqual(try Tool.dv("vault", "init", folder, "--encryption", "none").status, 0)
        try Tool.sh("head -c 5M /dev/urandom > \(image)")
        XCTAssertEqual(try Tool.dv("backup", image, "--vault", folder, "--disk", "web").status, 0)

        for (mode, says) in [("loop", "would never end"), ("endless", "would never end"), ("notoken", "no continuation token"),
                             ("huge", "larger than"), ("garbage", "not a listing")] {
            let (server, vault, _) = try serve(s, folder, mode)
            defer { server.terminate(); server.waitUntilExit() }
            for args in [["points", "--vault", vault], ["gc", "--vault", vault]] {
                let r = try Tool.dv(args)
                XCTAssertEqual(r.status, 1, "\(mode) \(args[0]): \(r.output)")
                XCTAssertTrue(r.stderr.contains(says) && r.stderr.contains(vault), "\(mode) \(args[0]): \(r.stderr)")
            }
        }
        XCTAssertEqual(try Tool.dv("verify", "--vault", folder).status, 0, "the lies changed nothing")

        // Keys outside the vault, or with ../ in them, are left out: the honest point is listed, gc frees
        // nothing, restore is exact, and every write the endpoint was sent is a key of the vault.
        let (server, vault, writes) = try serve(s, folder, "escape")
        defer { server.terminate(); server.waitUntilExit() }
        let points = try Tool.dv("points", "--vault", vault, "--json")
        XCTAssertEqual(points.status, 0, points.output)
        XCTAssertEqual((try points.json()["points"] as? [[String: Any]])?.compactMap { $0["disk"] as? String }, ["web"])
        let gc = try Tool.dv("gc", "--vault", vault, "--json")
        XCTAssertEqual(gc.status, 0, gc.output)
        XCTAssertEqual(try gc.json()["blobsRemoved"] as? Int, 0, gc.stdout)
        let r = try Tool.dv("restore", "--vault", vault, "--disk", "web", "--target", s.file("r.img"))
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(try fileBytesEqual(s.file("r.img"), image))
        let sent = try String(contentsOfFile: writes, encoding: .utf8).split(separator: "\n")
        XCTAssertFalse(sent.isEmpty)
        for line in sent {
            let key = line.split(separator: " ", maxSplits: 1).last.map(String.init) ?? ""
            XCTAssertTrue(key.hasPrefix("v/locks/") || key.hasPrefix("v/jobs/"), "a write outside the vault's own places: \(line)")
            XCTAssertFalse(key.contains(".."), String(line))
        }
        XCTAssertEqual(try Tool.dv("verify", "--vault", folder).status, 0)
    }
}
