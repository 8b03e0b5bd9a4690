import Foundation
import XCTest

/// An encrypted vault, end to end: nothing of a disk in clear, names that say nothing, every object bound to
/// its place, a wrong passphrase that changes nothing.
final class VaultEncryptionTests: XCTestCase {
    static let marker = "diskvault-encryption-marker-8d1f2c"

    struct Setup {
        let s: Scratch
        let vault: String, pw: String, image: String

        init(_ test: XCTestCase) throws {
            s = try Scratch(test)
            vault = s.file("vault"); pw = s.file("vault.pass"); image = s.file("disk.img")
            try Tool.require("mkfs.ext4")
            // A file system holding a text file of the marker (compressible: deflated before it is sealed).
            try Tool.sh("""
                mkdir -p \(s.file("tree"))
                for i in $(seq 1 20000); do echo "\(marker) line $i"; done > \(s.file("tree"))/notes.txt
                head -c 1M /dev/urandom > \(s.file("tree"))/random.bin
                truncate -s 8M \(image) && mkfs.ext4 -q -F -d \(s.file("tree")) \(image)
                printf 'the vault passphrase' > \(pw)
                """)
            let r = try Tool.dv("vault", "init", vault, "--chunk-size", "64KiB", "--encrypt", "--passphrase-file", pw, "--kdf-work-factor", "10")
            XCTAssertEqual(r.status, 0, r.output)
            XCTAssertTrue(r.stdout.contains("created encrypted vault"), r.stdout)
        }

        func dv(_ args: String..., expect: Int32 = 0, file: StaticString = #filePath, line: UInt = #line) throws -> RunResult {
            let r = try Tool.run(Tool.diskvault, args + ["--vault", vault, "--passphrase-file", pw])
            XCTAssertEqual(r.status, expect, "\(args.joined(separator: " ")): \(r.output)", file: file, line: line)
            return r
        }

        /// path → SHA-256 of every file in the vault.
        func checksums() throws -> [String: String] {
            var out: [String: String] = [:]
            for line in try Tool.sh("cd \(vault) && find . -type f -print0 | sort -z | xargs -0 sha256sum").split(separator: "\n") {
                let f = line.split(separator: " ", maxSplits: 1)
                out[String(f[1]).trimmingCharacters(in: .whitespaces)] = String(f[0])
            }
            return out
        }
    }

    func testNothingOfTheDiskIsInClearAndRestoreIsExact() throws {
        let t = try Setup(self)
        let b = try t.dv("backup", t.image, "--disk", "d", "--json")
        XCTAssertGreaterThan(((try b.json()["stats"] as? [String: Any])?["compressedChunks"] as? Int) ?? 0, 0, "the text was deflated before sealing: \(b.stdout)")
        let grep = try Tool.run("/bin/grep", ["-rlF", Self.marker, t.vault])
        XCTAssertEqual(grep.status, 1, "the marker in clear: \(grep.stdout)")
        // No chunk is named by its SHA-256: names are HMACs under the vault's key.
        let digests = try Tool.sh("""
            /usr/bin/python3 -c '
            import hashlib, sys
            f = open(sys.argv[1], "rb")
            while True:
                c = f.read(65536)
                if not c: break
                if c.count(0) != len(c): print(hashlib.sha256(c).hexdigest())
            ' \(t.image)
            """).split(separator: "\n").map(String.init)
        let names = Set(try FileManager.default.contentsOfDirectory(atPath: "\(t.vault)/chunks"))
        XCTAssertGreaterThan(names.count, 10)
        XCTAssertTrue(names.isDisjoint(with: digests), "a chunk is named by its SHA-256")
        // Nothing but vault.json reads as JSON: manifests, indexes and records are sealed.
        let clear = try Tool.sh("cd \(t.vault) && for f in $(find . -type f ! -path './locks/*' ! -name vault.json); do jq -e . $f >/dev/null 2>&1 && echo $f; done; true")
        XCTAssertEqual(clear.trimmingCharacters(in: .whitespacesAndNewlines), "", "in clear: \(clear)")

        _ = try t.dv("restore", "--disk", "d", "--target", t.s.file("r.img"))
        XCTAssertTrue(try fileBytesEqual(t.image, t.s.file("r.img")))
        _ = try t.dv("verify")
        let second = try t.dv("backup", t.image, "--disk", "d", "--json")
        XCTAssertEqual(((try second.json()["stats"] as? [String: Any])?["newBytes"] as? Int), 0, "deduplication works on the HMAC names: \(second.stdout)")
    }

    /// A vault is encrypted unless asked otherwise: `vault init V` with a passphrase makes an encrypted vault
    /// (scrypt work factor 15 unless told), and `--encrypt` means the same. Without a passphrase and no terminal
    /// to ask on, init is a usage error naming where a passphrase comes from and how to make a clear vault, and
    /// creates nothing.
    func testVaultInitEncryptsByDefault() throws {
        let s = try Scratch(self)
        let pw = s.file("pw")
        try Tool.sh("printf 'a passphrase in a file' > \(pw)")
        for (name, flags, logN) in [("default", [], 15), ("encrypt", ["--encrypt", "--kdf-work-factor", "10"], 10)] {
            let vault = s.file(name)
            let r = try Tool.run(Tool.diskvault, ["vault", "init", vault, "--passphrase-file", pw] + flags, environment: ["DISKVAULT_PASSPHRASE": ""])
            XCTAssertEqual(r.status, 0, "\(name): \(r.output)")
            XCTAssertTrue(r.stdout.contains("created encrypted vault \(vault)"), "\(name): \(r.stdout)")
            XCTAssertFalse(r.stderr.contains("not encrypted"), "\(name): \(r.stderr)")
            let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(vault)/vault.json"))) as? [String: Any]
            let encryption = config?["encryption"] as? [String: Any]
            XCTAssertEqual(encryption?["scheme"] as? String, "aes-256-gcm", "\(name): \(config ?? [:])")
            XCTAssertEqual((encryption?["kdf"] as? [String: Any])?["logN"] as? Int, logN, "\(name): \(config ?? [:])")
            // It opens with that passphrase and no other.
            XCTAssertEqual(try Tool.dv("points", "--vault", vault, "--passphrase-file", pw).status, 0, name)
            let wrong = try Tool.dv("points", "--vault", vault, environment: ["DISKVAULT_PASSPHRASE": "not the passphrase"])
            XCTAssertEqual(wrong.status, 1, "\(name): \(wrong.output)")
            XCTAssertTrue(wrong.stderr.contains("wrong passphrase for vault \(vault)"), "\(name): \(wrong.stderr)")
        }

        let missing = s.file("missing"), empty = s.file("empty")
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: false)
        for vault in [missing, empty] {
            for flags in ["", "--encrypt", "--encryption aes-256-gcm"] {
                let r = try Tool.run("/bin/bash", ["-c", "\(Tool.diskvault) vault init \(vault) \(flags) < /dev/null"], environment: ["DISKVAULT_PASSPHRASE": ""])
                XCTAssertEqual(r.status, 2, "\(vault) \(flags): \(r.output)")
                for needle in ["--passphrase-file", "DISKVAULT_PASSPHRASE", "--encryption none"] {
                    XCTAssertTrue(r.stderr.contains(needle), "\(vault) \(flags): \(needle) not in \(r.stderr)")
                }
                XCTAssertEqual(r.stdout, "", "\(vault) \(flags)")
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: missing), "no vault folder made")
        XCTAssertEqual(treeListing(empty), [], "nothing written into the empty folder")
    }

    /// A clear vault asked for by name says what it leaves readable, and never asks for a passphrase.
    func testAClearVaultSaysWhatItLeavesReadable() throws {
        let s = try Scratch(self)
        let noPassphrase = ["DISKVAULT_PASSPHRASE": ""]
        let r = try Tool.run("/bin/bash", ["-c", "\(Tool.diskvault) vault init \(s.file("v")) --encryption none < /dev/null"], environment: noPassphrase)
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.stderr.contains("is not encrypted: whoever can read its folder reads every disk's data"), r.stderr)
        XCTAssertTrue(r.stdout.contains("created vault \(s.file("v"))"), r.stdout)
        try Tool.sh("head -c 1M /dev/urandom > \(s.file("d.img"))")
        let b = try Tool.run("/bin/bash", ["-c", "\(Tool.diskvault) backup \(s.file("d.img")) --vault \(s.file("v")) --disk d < /dev/null"], environment: noPassphrase)
        XCTAssertEqual(b.status, 0, b.output)
        let bad = try Tool.dv("vault", "init", s.file("w"), "--encrypt", "--encryption", "none")
        XCTAssertEqual(bad.status, 2, bad.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: s.file("w")))
    }

    func testAWrongOrMissingPassphraseChangesNothing() throws {
        let t = try Setup(self)
        _ = try t.dv("backup", t.image, "--disk", "d")
        let before = try t.checksums()
        try Tool.sh("printf 'not the passphrase' > \(t.s.file("wrong"))")
        for args in [["backup", t.image, "--disk", "d"], ["restore", "--disk", "d", "--target", t.s.file("r.img")], ["gc"], ["points"]] {
            let r = try Tool.run(Tool.diskvault, args + ["--vault", t.vault, "--passphrase-file", t.s.file("wrong")])
            XCTAssertEqual(r.status, 1, "\(args): \(r.output)")
            XCTAssertTrue(r.stderr.contains("wrong passphrase for vault \(t.vault)"), r.stderr)
            let none = try Tool.run("/bin/bash", ["-c", "\(Tool.diskvault) \(args.joined(separator: " ")) --vault \(t.vault) < /dev/null"], environment: ["DISKVAULT_PASSPHRASE": ""])
            XCTAssertEqual(none.status, 2, "\(args): \(none.output)")
            XCTAssertTrue(none.stderr.contains("--passphrase-file") && none.stderr.contains("DISKVAULT_PASSPHRASE"), none.stderr)
        }
        XCTAssertEqual(try t.checksums(), before, "nothing written")
        XCTAssertFalse(FileManager.default.fileExists(atPath: t.s.file("r.img")))
        // The environment works as well as a file.
        let env = try Tool.run(Tool.diskvault, ["points", "--vault", t.vault], environment: ["DISKVAULT_PASSPHRASE": "the vault passphrase"])
        XCTAssertEqual(env.status, 0, env.output)
    }

    func testABlobOrAPointEditedSwappedOrPlantedIsRefusedNamingIt() throws {
        let t = try Setup(self)
        _ = try t.dv("backup", t.image, "--disk", "d")
        try Tool.sh("head -c 300K /dev/urandom >> \(t.image)")
        let id2 = try XCTUnwrap(try t.dv("backup", t.image, "--disk", "d", "--json").json()["id"] as? String)
        let blobs = try FileManager.default.contentsOfDirectory(atPath: "\(t.vault)/chunks").sorted()

        // One bit of a blob flipped: verify names it.
        let a = "\(t.vault)/chunks/\(blobs[0])", b = "\(t.vault)/chunks/\(blobs[1])"
        let original = try Data(contentsOf: URL(fileURLWithPath: a))
        var flipped = original
        flipped[flipped.count / 2] ^= 0x10
        try flipped.write(to: URL(fileURLWithPath: a))
        let v1 = try t.dv("verify", expect: 1)
        XCTAssertTrue(v1.output.contains(blobs[0]), v1.output)
        try original.write(to: URL(fileURLWithPath: a))
        // Two blobs swapped: each is sealed for its own name, so both are named.
        try Tool.sh("mv \(a) \(a).x && mv \(b) \(a) && mv \(a).x \(b)")
        let v2 = try t.dv("verify", expect: 1)
        XCTAssertTrue(v2.output.contains(blobs[0]) && v2.output.contains(blobs[1]), v2.output)
        try Tool.sh("mv \(a) \(a).x && mv \(b) \(a) && mv \(a).x \(b)")
        _ = try t.dv("verify")

        // A manifest and an index swapped between the two points, and one point's folder planted under a new,
        // later id: none opens where it lies, each is named, and prune keeps the real points.
        let points = "\(t.vault)/disks/d/points"
        let id1 = try FileManager.default.contentsOfDirectory(atPath: points).sorted().first { $0 != id2 }!
        try Tool.sh("cp -a \(points)/\(id1) \(t.s.file("p1")) && cp -a \(points)/\(id2) \(t.s.file("p2"))")
        try Tool.sh("cp \(t.s.file("p2"))/manifest.json \(points)/\(id1)/manifest.json && cp \(t.s.file("p1"))/manifest.json \(points)/\(id2)/manifest.json")
        let listed = try t.dv("points", "--disk", "d", "--json")
        let damaged = (try listed.json()["damaged"] as? [[String: Any]]) ?? []
        XCTAssertEqual(damaged.count, 2, listed.stdout)
        XCTAssertTrue(listed.output.contains("\(points)/\(id1)/manifest.json"), listed.output)
        try Tool.sh("rm -rf \(points)/\(id1) \(points)/\(id2) && cp -a \(t.s.file("p1")) \(points)/\(id1) && cp -a \(t.s.file("p2")) \(points)/\(id2)")
        try Tool.sh("cp \(t.s.file("p1"))/index \(points)/\(id2)/index")
        let restore = try t.dv("restore", "--disk", "d", "--point", id2, "--target", t.s.file("r.img"), expect: 1)
        XCTAssertTrue(restore.stderr.contains("\(points)/\(id2)/index"), restore.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: t.s.file("r.img")))
        try Tool.sh("cp \(t.s.file("p2"))/index \(points)/\(id2)/index")

        _ = try t.dv("prune")
        let real = Set(try FileManager.default.contentsOfDirectory(atPath: points))
        XCTAssertTrue(real.contains(id2))
        let planted = "29991231T000000Z-abcdef"
        try Tool.sh("cp -a \(t.s.file("p2")) \(points)/\(planted)")
        let prune = try t.dv("prune")
        XCTAssertTrue(prune.stderr.contains(planted), "prune names the planted point: \(prune.output)")
        let after = Set(try FileManager.default.contentsOfDirectory(atPath: points))
        XCTAssertTrue(real.isSubset(of: after), "prune kept every real point: \(real) \(after)")
        let latest = try t.dv("restore", "--disk", "d", "--target", t.s.file("latest.img"), expect: 1)
        XCTAssertTrue(latest.stderr.contains(planted), "latest refuses while a newer damaged point is there: \(latest.stderr)")
    }

    /// `vault passwd`: the old passphrase stops working, the new one opens everything; killed at any moment,
    /// one of the two opens the vault.
    func testPasswdAndAPasswdKilledAtAnyMoment() throws {
        let t = try Setup(self)
        _ = try t.dv("backup", t.image, "--disk", "d")
        try Tool.sh("printf 'a new passphrase' > \(t.s.file("new"))")
        _ = try t.dv("vault", "passwd", "--new-passphrase-file", t.s.file("new"))
        let old = try Tool.run(Tool.diskvault, ["points", "--vault", t.vault, "--passphrase-file", t.pw])
        XCTAssertEqual(old.status, 1, old.output)
        XCTAssertTrue(old.stderr.contains("wrong passphrase"), old.stderr)
        let new = try Tool.run(Tool.diskvault, ["verify", "--vault", t.vault, "--passphrase-file", t.s.file("new")])
        XCTAssertEqual(new.status, 0, new.output)

        try Tool.require("strace")
        for call in ["openat", "write", "fsync", "rename"] {
            for n in [1, 2, 3] {
                try Tool.sh("cp \(t.vault)/vault.json \(t.s.file("vault.json.before"))")
                let killed = try Tool.run("/bin/bash", ["-c", "strace -f -o /dev/null -e inject=\(call):signal=SIGKILL:when=\(n) \(Tool.diskvault) vault passwd --vault \(t.vault) --passphrase-file \(t.s.file("new")) --new-passphrase-file \(t.pw) >/dev/null 2>&1"])
                let withNew = try Tool.run(Tool.diskvault, ["points", "--vault", t.vault, "--passphrase-file", t.s.file("new")]).status
                let withOld = try Tool.run(Tool.diskvault, ["points", "--vault", t.vault, "--passphrase-file", t.pw]).status
                XCTAssertTrue(withNew == 0 || withOld == 0, "\(call) \(n) (exit \(killed.status)): the vault opens with neither passphrase")
                // Back to the new passphrase for the next round.
                if withNew != 0 { try Tool.sh("cp \(t.s.file("vault.json.before")) \(t.vault)/vault.json") }
            }
        }
    }

    /// `vault key export` (JSON and paper) and `import`: a vault whose vault.json is gone opens again with the
    /// passphrase; a typo in the paper form is named by its line; a key of another vault is refused.
    func testKeyExportAndImport() throws {
        let t = try Setup(self)
        _ = try t.dv("backup", t.image, "--disk", "d")
        _ = try t.dv("vault", "key", "export", "--out", t.s.file("key.json"))
        _ = try t.dv("vault", "key", "export", "--out", t.s.file("key.txt"), "--paper")
        XCTAssertEqual(try Tool.sh("stat -c %a \(t.s.file("key.txt"))"), "600\n")
        let paper = try String(contentsOfFile: t.s.file("key.txt"), encoding: .utf8)
        XCTAssertTrue(paper.hasPrefix("diskvault vault key ") && paper.contains("\n01: "), paper)
        let saved = try Data(contentsOf: URL(fileURLWithPath: "\(t.vault)/vault.json"))
        for form in ["key.json", "key.txt"] {
            try FileManager.default.removeItem(atPath: "\(t.vault)/vault.json")
            XCTAssertEqual(try Tool.dv("points", "--vault", t.vault, "--passphrase-file", t.pw).status, 1)
            try Tool.sh("printf 'wrong' > \(t.s.file("wrong"))")
            let wrong = try Tool.run(Tool.diskvault, ["vault", "key", "import", "--vault", t.vault, "--file", t.s.file(form), "--passphrase-file", t.s.file("wrong")])
            XCTAssertEqual(wrong.status, 1, wrong.output)
            XCTAssertFalse(FileManager.default.fileExists(atPath: "\(t.vault)/vault.json"), "nothing written with a wrong passphrase")
            _ = try t.dv("vault", "key", "import", "--file", t.s.file(form))
            _ = try t.dv("verify")
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: "\(t.vault)/vault.json")), saved, form)
        }
        // One character of line 2 mistyped.
        var lines = paper.split(separator: "\n").map(String.init)
        var chars = Array(lines[2])
        chars[6] = chars[6] == "A" ? "B" : "A"
        lines[2] = String(chars)
        try (lines.joined(separator: "\n") + "\n").write(toFile: t.s.file("typo.txt"), atomically: true, encoding: .utf8)
        let typo = try t.dv("vault", "key", "import", "--file", t.s.file("typo.txt"), expect: 1)
        XCTAssertTrue(typo.stderr.contains("line 2 of the vault key does not match its checksum"), typo.stderr)
        // Another vault's key.
        let other = t.s.file("other")
        XCTAssertEqual(try Tool.dv("vault", "init", other, "--encrypt", "--passphrase-file", t.pw, "--kdf-work-factor", "10").status, 0)
        let foreign = try Tool.run(Tool.diskvault, ["vault", "key", "import", "--vault", other, "--file", t.s.file("key.json"), "--passphrase-file", t.pw])
        XCTAssertEqual(foreign.status, 2, foreign.output)
        XCTAssertTrue(foreign.stderr.contains("not of vault"), foreign.stderr)
    }
}
