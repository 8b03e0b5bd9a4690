import Foundation
import XCTest

final class CommandLineTests: XCTestCase {
    func testHelpListsTheCommandsAndExitsZero() throws {
        let r = try Tool.dv("--help")
        XCTAssertEqual(r.status, 0)
        for command in ["vault", "backup", "points", "restore", "verify"] {
            XCTAssertTrue(r.stdout.contains(command), "help names \(command): \(r.stdout)")
        }
        let backup = try Tool.dv("backup", "--help")
        XCTAssertEqual(backup.status, 0)
        XCTAssertTrue(backup.stdout.contains("--retain-until"))
    }

    /// On a terminal, long work shows bytes, percent, rate and ETA on standard error; off a terminal it is quiet.
    func testProgressOnATerminalOnly() throws {
        try Tool.require("script")
        let s = try Scratch(self)
        let vault = s.file("vault"), image = s.file("disk.img")
        try Tool.sh("yes 'lines of a text file in a disk image' | head -c 24M > \(image)")
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--chunk-size", "1MiB", "--kdf-work-factor", "10").status, 0)
        let quiet = try Tool.dv("backup", image, "--vault", vault, "--disk", "q")
        XCTAssertEqual(quiet.status, 0)
        XCTAssertEqual(quiet.stderr, "", "no progress when standard error is not a terminal")

        // script(1) gives the command a pseudo-terminal; its transcript holds what a user would see.
        let r = try Tool.run("/usr/bin/script", ["-qec", "\(Tool.diskvault) backup \(image) --vault \(vault) --disk t --threads 1", "/dev/null"])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.stdout.contains("\r"), "redraws one line: \(r.stdout.debugDescription)")
        XCTAssertTrue(r.stdout.contains("/ 24.0 MiB"), r.stdout.debugDescription)
        XCTAssertTrue(r.stdout.contains("%"), r.stdout.debugDescription)
        XCTAssertTrue(r.stdout.contains("/s"), r.stdout.debugDescription)
        XCTAssertTrue(r.stdout.contains("recovery point"), r.stdout.debugDescription)
    }
}
