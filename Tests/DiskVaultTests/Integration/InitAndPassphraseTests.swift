import Foundation
import XCTest

/// `vault init` and `keyvault init` killed part-way, passphrases from a stream, the scrypt work-factor range.
final class InitAndPassphraseTests: XCTestCase {
    /// Runs diskvault under strace, killed (SIGKILL) at the `when`-th call of `syscall`.
    func killed(at syscall: String, when: Int, _ arguments: String) throws -> RunResult {
        try Tool.require("strace")
        return try Tool.run("/bin/bash", ["-c", "strace -f -o /dev/null -e inject=\(syscall):signal=SIGKILL:when=\(when) \(Tool.diskvault) \(arguments)"])
    }

    /// A vault init killed at a mkdir, an fsync or the rename of vault.json, into a new path or an existing empty
    /// directory, clear or encrypted, leaves a directory that a second init takes over (an encrypted one under
    /// another passphrase); the vault then backs up and verifies, and opens with the second passphrase only.
    func testKilledVaultInitCanBeInitialisedAgain() throws {
        let s = try Scratch(self)
        try Tool.sh("head -c 1M /dev/urandom > \(s.file("disk.img"))")
        try Tool.sh("printf 'the second passphrase' > \(s.file("pw2"))")
        var n = 0
        for encrypted in [false, true] {
            let mode = encrypted ? ["--kdf-work-factor", "10"] : ["--encryption", "none"]
            // The second init of an encrypted vault, and every command after it, uses the second passphrase.
            let second = encrypted ? ["--passphrase-file", s.file("pw2")] : []
            for existing in [false, true] {
                for (syscall, when) in [("mkdir", 2), ("mkdir", 4), ("fsync", 1), ("renameat2", 1)] {
                    n += 1
                    let vault = s.file("vault\(n)")
                    let at = "\(syscall) #\(when) (encrypted \(encrypted), existing \(existing))"
                    if existing { try FileManager.default.createDirectory(atPath: vault, withIntermediateDirectories: false) }
                    let k = try killed(at: syscall, when: when, "vault init \(vault) --chunk-size 64KiB \(mode.joined(separator: " "))")
                    XCTAssertNotEqual(k.status, 0, "\(at): the init was killed: \(k.output)")
                    XCTAssertFalse(FileManager.default.fileExists(atPath: "\(vault)/vault.json"), at)
                    let again = try Tool.dv(["vault", "init", vault, "--chunk-size", "64KiB"] + mode + second)
                    XCTAssertEqual(again.status, 0, "after a kill at \(at): \(again.output)")
                    let backup = try Tool.dv(["backup", s.file("disk.img"), "--vault", vault, "--disk", "d"] + second)
                    XCTAssertEqual(backup.status, 0, "\(at): \(backup.output)")
                    XCTAssertEqual(try Tool.dv(["verify", "--vault", vault] + second).status, 0, at)
                    if encrypted {
                        let first = try Tool.dv("verify", "--vault", vault)
                        XCTAssertEqual(first.status, 1, "\(at): the killed init's passphrase opens nothing: \(first.output)")
                    }
                }
            }
        }
        // A directory holding anything else is still refused, and a vault is never initialised twice.
        try Tool.sh("mkdir \(s.file("busy")) && echo data > \(s.file("busy"))/file")
        XCTAssertEqual(try Tool.dv("vault", "init", s.file("busy"), "--encryption", "none").status, 1)
        XCTAssertEqual(try Tool.dv("vault", "init", s.file("vault1"), "--encryption", "none").status, 1)
    }

    /// A key vault init killed at a mkdir, at the rename of its access policy or of keyvault.json leaves a
    /// directory that a second init takes over; the key vault then opens with the new passphrase.
    func testKilledKeyVaultInitCanBeInitialisedAgain() throws {
        let s = try Scratch(self)
        let pw = s.file("pw")
        try Tool.sh("printf 'key vault passphrase' > \(pw)")
        var n = 0
        for existing in [false, true] {
            for (syscall, when) in [("mkdir", 2), ("rename", 1), ("renameat2", 1)] {
                n += 1
                let kv = s.file("kv\(n)")
                if existing { try FileManager.default.createDirectory(atPath: kv, withIntermediateDirectories: false) }
                let k = try killed(at: syscall, when: when, "keyvault init \(kv) --passphrase-file \(pw) --kdf-work-factor 10")
                XCTAssertNotEqual(k.status, 0, "\(syscall) #\(when): the init was killed: \(k.output)")
                let again = try Tool.dv("keyvault", "init", kv, "--passphrase-file", pw, "--kdf-work-factor", "10")
                XCTAssertEqual(again.status, 0, "after a kill at \(syscall) #\(when) (existing \(existing)): \(again.output)")
                let list = try Tool.dv("keyvault", "list", kv, "--passphrase-file", pw)
                XCTAssertEqual(list.status, 0, list.output)
            }
        }
        XCTAssertEqual(try Tool.dv("keyvault", "init", s.file("kv1"), "--passphrase-file", pw, "--kdf-work-factor", "10").status, 1,
                       "a key vault is never initialised twice")
    }

    /// `--passphrase-file /dev/stdin` fed from a file and from a pipe reads the passphrase, and the key vault
    /// then opens with the same passphrase from a file.
    func testPassphraseFileMayBeStandardInputOrAPipe() throws {
        let s = try Scratch(self)
        let pw = s.file("pw")
        try Tool.sh("printf 'a passphrase from a stream\\n' > \(pw)")
        let fromFile = try Tool.dv("keyvault", "init", s.file("kv1"), "--passphrase-file", "/dev/stdin", "--kdf-work-factor", "10", stdinPath: pw)
        XCTAssertEqual(fromFile.status, 0, fromFile.output)
        let piped = try Tool.run("/bin/bash", ["-c", "cat \(pw) | \(Tool.diskvault) keyvault init \(s.file("kv2")) --passphrase-file /dev/stdin --kdf-work-factor 10"])
        XCTAssertEqual(piped.status, 0, piped.output)
        for kv in ["kv1", "kv2"] {
            let list = try Tool.dv("keyvault", "list", s.file(kv), "--passphrase-file", pw)
            XCTAssertEqual(list.status, 0, "\(kv): \(list.output)")
            let wrong = try Tool.run("/bin/bash", ["-c", "echo other | \(Tool.diskvault) keyvault list \(s.file(kv)) --passphrase-file /dev/stdin"])
            XCTAssertEqual(wrong.status, 1, "a different passphrase through a pipe is read, and is wrong: \(wrong.output)")
        }
    }

    /// The top of the documented range (2^20: 1 GiB of scrypt memory) creates a key vault that opens.
    func testKDFWorkFactor20CreatesAKeyVaultThatOpens() throws {
        let s = try Scratch(self)
        let pw = s.file("pw")
        try Tool.sh("printf 'a passphrase' > \(pw)")
        let created = try Tool.dv("keyvault", "init", s.file("kv"), "--passphrase-file", pw, "--kdf-work-factor", "20")
        XCTAssertEqual(created.status, 0, created.output)
        let list = try Tool.dv("keyvault", "list", s.file("kv"), "--passphrase-file", pw)
        XCTAssertEqual(list.status, 0, list.output)
        XCTAssertEqual(try Tool.dv("keyvault", "init", s.file("kv21"), "--passphrase-file", pw, "--kdf-work-factor", "21").status, 2)
    }
}
