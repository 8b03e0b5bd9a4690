import Foundation
import XCTest

/// Bad input: a clear message naming what is wrong, exit 1 (or 2 for bad usage), and nothing written.
final class BadInputTests: XCTestCase {
    func testEachBadInputIsRefusedClearlyAndWritesNothing() throws {
        let s = try Scratch(self)
        let vault = s.file("vault"), image = s.file("disk.img")
        try Tool.sh("head -c 3M /dev/urandom > \(image); mkdir \(s.file("adir")) \(s.file("notavault"))")
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--kdf-work-factor", "10").status, 0)
        let before = vaultContents(vault)

        let cases: [(String, [String], Int32, [String])] = [
            ("missing image", ["backup", s.file("nope.img"), "--vault", vault, "--disk", "d"], 1, ["image does not exist", s.file("nope.img")]),
            ("directory image", ["backup", s.file("adir"), "--vault", vault, "--disk", "d"], 1, ["is a directory", s.file("adir")]),
            ("missing vault", ["backup", image, "--vault", s.file("novault"), "--disk", "d"], 1, ["vault does not exist", s.file("novault")]),
            ("not a vault", ["backup", image, "--vault", s.file("notavault"), "--disk", "d"], 1, ["not a diskvault vault", s.file("notavault")]),
            ("disk with a slash", ["backup", image, "--vault", vault, "--disk", "a/b"], 2, ["invalid disk name \"a/b\""]),
            ("disk that climbs", ["backup", image, "--vault", vault, "--disk", ".."], 2, ["invalid disk name \"..\""]),
            ("no vault", ["backup", image, "--disk", "d"], 2, ["--vault"]),
            ("unknown option", ["backup", image, "--vault", vault, "--disk", "d", "--frobnicate"], 2, ["--frobnicate"]),
            ("bad retain-until", ["backup", image, "--vault", vault, "--disk", "d", "--retain-until", "soon"], 2, ["--retain-until"]),
            ("bad chunk size", ["vault", "init", s.file("v2"), "--chunk-size", "3MiB"], 2, ["power of two"]),
            ("restore of unknown point", ["restore", "--vault", vault, "--disk", "d", "--point", "x", "--target", s.file("t.img")], 1, ["no recovery point"]),
            ("restore into a missing directory", ["restore", "--vault", vault, "--disk", "d", "--target", s.file("no/dir/t.img")], 1, ["no recovery points"]),
            ("vault init over a vault", ["vault", "init", vault], 1, ["already exists", vault]),
        ]
        for (name, args, status, needles) in cases {
            let r = try Tool.run(Tool.diskvault, args)
            XCTAssertEqual(r.status, status, "\(name): \(r.output)")
            for needle in needles { XCTAssertTrue(r.stderr.contains(needle), "\(name): \(needle) not in \(r.stderr)") }
            XCTAssertFalse(r.stderr.contains("Fatal error"), name)
            XCTAssertEqual(vaultContents(vault), before, "\(name) wrote nothing")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: s.file("v2")))
        XCTAssertFalse(FileManager.default.fileExists(atPath: s.file("t.img")))
    }

    func testDamagedOrForeignVaultConfigurationIsRefused() throws {
        let s = try Scratch(self)
        let vault = s.file("vault"), image = s.file("disk.img")
        try Tool.sh("head -c 1M /dev/urandom > \(image)")
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--encryption", "none").status, 0)
        let config = "\(vault)/vault.json"
        let original = try String(contentsOfFile: config, encoding: .utf8)
        let variants: [(String, String, String)] = [
            ("not JSON", "{ this is not json", "not a diskvault vault configuration"),
            ("truncated", String(original.prefix(original.count / 2)), "not a diskvault vault configuration"),
            ("unknown version", original.replacingOccurrences(of: "\"version\" : 2", with: "\"version\" : 99"), "version 99 is not supported"),
            ("another format", original.replacingOccurrences(of: "\"format\" : \"diskvault\"", with: "\"format\" : \"borg\""), "not diskvault"),
            ("hostile chunk size", original.replacingOccurrences(of: "\"chunkSize\" : 4194304", with: "\"chunkSize\" : 9223372036854775807"), "chunk size"),
        ]
        for (name, text, needle) in variants {
            XCTAssertNotEqual(text, original, name)
            try text.write(toFile: config, atomically: true, encoding: .utf8)
            let r = try Tool.dv("backup", image, "--vault", vault, "--disk", "d")
            XCTAssertEqual(r.status, 1, "\(name): \(r.output)")
            XCTAssertTrue(r.stderr.contains(needle), "\(name): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains(config), "\(name) names the file: \(r.stderr)")
            XCTAssertEqual(treeListing("\(vault)/disks"), [], name)
        }
    }

    func testUnreadableImageAsAnUnprivilegedUser() throws {
        try Tool.require("setpriv")
        let s = try Scratch(self)
        let vault = s.file("vault"), image = s.file("secret.img")
        try Tool.sh("head -c 1M /dev/urandom > \(image); chmod 000 \(image)")
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--kdf-work-factor", "10").status, 0)
        // A vault is private to its owner (0700): the unprivileged user gets one of its own.
        try Tool.sh("chown -R 65534:65534 \(vault)")
        let r = try Tool.run("/usr/bin/setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", Tool.diskvault,
                                                  "backup", image, "--vault", vault, "--disk", "d"])
        if r.stderr.contains("setpriv:") { throw XCTSkip("cannot switch user here: \(r.stderr)") }
        XCTAssertEqual(r.status, 1, r.output)
        XCTAssertTrue(r.stderr.contains("not readable") && r.stderr.contains(image), r.stderr)
        XCTAssertEqual(treeListing("\(vault)/disks"), [])
    }
}
