import DiskVault
import Foundation
import XCTest

/// A key vault of format 1 (testdata/keyvault-v1, made by the last build that wrote that format): refused
/// until the administrator upgrades it, then whole, with new credentials, and the keys of a point backed up
/// before the upgrade still restore.
final class KeyVaultUpgradeTests: XCTestCase {
    static let fixture = "\(TestData.directory)/keyvault-v1"
    static let point = "20261202T043942Z-65fe4d"
    static let diskPassphrase = "legacy disk passphrase"

    struct Copy {
        let s: Scratch
        var kv: String { s.file("kv") }
        var vault: String { s.file("vault") }
        var pw: String { s.file("kv.pass") }

        init(_ test: XCTestCase) throws {
            s = try Scratch(test)
            try Tool.sh("cp -r \(fixture)/kv \(fixture)/vault \(fixture)/kv.pass \(fixture)/backup.cred \(fixture)/restore.cred \(s.path)/ && chmod -R go-rwx \(s.path)/kv")
        }

        @discardableResult
        func admin(_ args: String..., expect: Int32 = 0, file: StaticString = #filePath, line: UInt = #line) throws -> RunResult {
            let r = try Tool.run(Tool.diskvault, ["keyvault"] + args + ["--passphrase-file", pw])
            XCTAssertEqual(r.status, expect, "\(args.joined(separator: " ")): \(r.output)", file: file, line: line)
            return r
        }
    }

    func testFormat1IsRefusedUntilUpgradedThenWholeWithNewCredentials() throws {
        let c = try Copy(self)
        // Why: in format 1 the backup principal's credential (get,list) unseals the master key, and with it
        // every secret, whatever its grant says.
        let v1 = try Tool.run("/usr/bin/python3", [KeyVaultAttackTests.script, "loot-v1", c.kv, c.s.file("backup.cred")])
        XCTAssertEqual(v1.status, 0, v1.output)
        XCTAssertEqual(try v1.json()["plain-disk"] as? String, Data(Self.diskPassphrase.utf8).base64EncodedString())
        // Refused, with the instruction, for the administrator and for a principal.
        let listed = try c.admin("list", c.kv, expect: 1)
        XCTAssertTrue(listed.stderr.contains("diskvault keyvault upgrade \(c.kv)"), listed.stderr)
        XCTAssertThrowsError(try KeyVault.open(c.kv, principal: "backup", credentialFile: c.s.file("backup.cred"))) {
            XCTAssertTrue("\($0)".contains("keyvault upgrade"), "\($0)")
        }
        let noDir = try c.admin("upgrade", c.kv, expect: 2)
        XCTAssertTrue(noDir.stderr.contains("--credentials-out"), noDir.stderr)

        let up = try c.admin("upgrade", c.kv, "--credentials-out", c.s.file("creds"), "--json")
        let result = try up.json()
        XCTAssertEqual(result["id"] as? String, "abade284ee507fec74fdd36355d72990", "the id is kept: points name it")
        XCTAssertEqual(result["keys"] as? Int, 2)
        XCTAssertEqual(result["secrets"] as? Int, 3)
        XCTAssertEqual(Set((result["credentials"] as? [String: String] ?? [:]).keys), ["backup", "restorer"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(c.kv)/data"), "the format-1 files are gone")
        let again = try c.admin("upgrade", c.kv, "--credentials-out", c.s.file("creds2"), expect: 2)
        XCTAssertTrue(again.stderr.contains("nothing to upgrade"), again.stderr)

        // Everything is there, with its grants; the secrets unwrap to the disk's passphrase.
        let list = try c.admin("list", c.kv, "--json").json()
        XCTAssertEqual((list["keys"] as? [[String: Any]])?.compactMap { $0["name"] as? String }.sorted(), ["aes-kek", "rsa-kek"])
        let secrets = list["secrets"] as? [[String: Any]] ?? []
        XCTAssertEqual(secrets.compactMap { $0["name"] as? String }.sorted(), ["aes-wrapped", "plain-disk", "wrapped-disk"])
        XCTAssertEqual(secrets.first { $0["name"] as? String == "plain-disk" }?["volume"] as? String, "90aa081c-de0e-4bba-ba52-fb20828a2eb6")
        XCTAssertEqual(((list["access"] as? [String: Any])?["restorer"] as? [String: Any])?["keys"] as? [String], ["get", "list", "unwrap", "restore"])
        for name in ["plain-disk", "wrapped-disk", "aes-wrapped"] {
            try c.admin("secret", "get", c.kv, "--name", name, "--out", c.s.file("\(name).out"))
            XCTAssertEqual(try String(contentsOfFile: c.s.file("\(name).out"), encoding: .utf8), Self.diskPassphrase, name)
        }
        let grep = try Tool.run("/bin/grep", ["-rlF", Self.diskPassphrase, c.kv])
        XCTAssertEqual(grep.status, 1, "in clear: \(grep.stdout)")

        // The old credentials are refused; the new ones hold their grants.
        XCTAssertThrowsError(try KeyVault.open(c.kv, principal: "restorer", credentialFile: c.s.file("restore.cred"))) {
            XCTAssertTrue("\($0)".contains("format 1"), "\($0)")
        }
        let backup = try KeyVault.open(c.kv, principal: "backup", credentialFile: c.s.file("creds/backup.cred"))
        XCTAssertEqual(try backup.secret(forVolume: "90aa081c-de0e-4bba-ba52-fb20828a2eb6")?.name, "plain-disk")
        XCTAssertThrowsError(try backup.unwrappedValue(of: try backup.secret(name: "wrapped-disk")))
        XCTAssertEqual(try String(contentsOfFile: c.s.file("creds/restorer.cred"), encoding: .utf8).isEmpty, false)
        XCTAssertEqual(try Tool.sh("stat -c %a \(c.s.file("creds/restorer.cred"))"), "600\n")

        // A point backed up before the upgrade: its key backup (format 1) restores into the upgraded key vault.
        try c.admin("secret", "delete", c.kv, "--name", "plain-disk")
        let access = ["--keyvault", c.kv, "--principal", "restorer", "--credential", c.s.file("creds/restorer.cred")]
        let restored = try Tool.run(Tool.diskvault, ["keys", "restore", "--vault", c.vault, "--disk", "legacy", "--point", Self.point] + access)
        XCTAssertEqual(restored.status, 0, restored.output)
        XCTAssertTrue(restored.stdout.contains("restored secret plain-disk version 1"), restored.stdout)
        try c.admin("secret", "get", c.kv, "--name", "plain-disk", "--out", c.s.file("back.out"))
        XCTAssertEqual(try String(contentsOfFile: c.s.file("back.out"), encoding: .utf8), Self.diskPassphrase)
        // The backup principal, without restore, cannot open a format-1 key backup at all.
        let weak = try Tool.run(Tool.diskvault, ["keys", "restore", "--vault", c.vault, "--disk", "legacy", "--point", Self.point,
                                                  "--keyvault", c.kv, "--principal", "backup", "--credential", c.s.file("creds/backup.cred")])
        XCTAssertEqual(weak.status, 1, weak.output)
        XCTAssertTrue(weak.stderr.contains("format 1"), weak.stderr)
    }

    /// An upgrade killed at renames and removals it makes (before its commit, at it, and after it, while it
    /// removes the format-1 files) leaves a key vault the next upgrade finishes, whole, with working credentials.
    func testUpgradeKilledAtAnyRenameIsFinishedByTheNext() throws {
        try Tool.require("strace")
        let probe = try Copy(self)
        let traced = try Tool.run("/bin/bash", ["-c", "strace -f -c -o \(probe.s.file("count")) -e trace=rename,renameat,renameat2,unlink,unlinkat,rmdir \(Tool.diskvault) keyvault upgrade \(probe.kv) --credentials-out \(probe.s.file("creds")) --passphrase-file \(probe.pw) >/dev/null"])
        XCTAssertEqual(traced.status, 0, traced.output)
        let counts = try String(contentsOfFile: probe.s.file("count"), encoding: .utf8)
        // syscall → how many calls the upgrade made.
        var calls: [String: Int] = [:]
        for line in counts.split(separator: "\n") {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            if f.count >= 5, let name = f.last, ["rename", "renameat", "renameat2", "unlink", "unlinkat", "rmdir"].contains(String(name)), let n = Int(f[3]) { calls[String(name)] = n }
        }
        XCTAssertGreaterThan(calls.values.reduce(0, +), 5, counts)
        for (syscall, total) in calls.sorted(by: { $0.key < $1.key }) {
            for n in Set([1, 2, total / 2, total - 1, total]).filter({ $0 >= 1 }).sorted() {
                let c = try Copy(self)
                let killed = try Tool.run("/bin/bash", ["-c", "strace -f -o /dev/null -e inject=\(syscall):signal=SIGKILL:when=\(n) \(Tool.diskvault) keyvault upgrade \(c.kv) --credentials-out \(c.s.file("creds")) --passphrase-file \(c.pw)"])
                XCTAssertNotEqual(killed.status, 0, "\(syscall) \(n) of \(total): \(killed.output)")
                let config = try String(contentsOfFile: "\(c.kv)/keyvault.json", encoding: .utf8)
                // The next upgrade: from the start (format 1 still), or only the leftovers (already committed).
                try c.admin("upgrade", c.kv, "--credentials-out", c.s.file("creds"))
                XCTAssertFalse(FileManager.default.fileExists(atPath: "\(c.kv)/data"), "\(syscall) \(n)")
                _ = config
                let restorer = try KeyVault.open(c.kv, principal: "restorer", credentialFile: c.s.file("creds/restorer.cred"))
                XCTAssertEqual(try restorer.unwrappedValue(of: try restorer.secret(name: "wrapped-disk")), Array(Self.diskPassphrase.utf8), "\(syscall) \(n)")
                for name in ["plain-disk", "wrapped-disk", "aes-wrapped"] {
                    try c.admin("secret", "get", c.kv, "--name", name, "--out", c.s.file("\(name).\(syscall).\(n)"))
                    XCTAssertEqual(try String(contentsOfFile: c.s.file("\(name).\(syscall).\(n)"), encoding: .utf8), Self.diskPassphrase, "\(syscall) \(n): \(name)")
                }
            }
        }
    }
}
