import Foundation
import XCTest

/// Key backups that outlive their key vault: a key vault escrowed to an encrypted vault, deleted; a new key
/// vault; `keys restore` into it from the vault's escrow; the disks restored and opened by real tools.
final class KeyEscrowTests: XCTestCase {
    struct Setup {
        let s: Scratch
        let kv: String, kvPass: String, vault: String, vaultPass: String, recoveryPass: String
        let backupCred: String

        init(_ test: XCTestCase, encrypted: Bool = true) throws {
            s = try Scratch(test)
            kv = s.file("kv"); kvPass = s.file("kv.pass"); vault = s.file("vault"); vaultPass = s.file("vault.pass")
            backupCred = s.file("backup.cred"); recoveryPass = s.file("recovery.pass")
            try Tool.sh("printf 'admin passphrase of the key vault' > \(kvPass) && printf 'the passphrase of the vault' > \(vaultPass) && printf 'the recovery passphrase' > \(recoveryPass)")
            try admin("keyvault", "init", kv, "--kdf-work-factor", "10")
            try admin("keyvault", "access", "grant", kv, "--principal", "backup", "--keys", "get,list", "--secrets", "get,list", "--credential-out", backupCred)
            let created = try Tool.run(Tool.diskvault, ["vault", "init", vault, "--chunk-size", "1MiB", "--kdf-work-factor", "10", "--passphrase-file", vaultPass]
                + (encrypted ? ["--encrypt"] : ["--encryption", "none"]))
            XCTAssertEqual(created.status, 0, created.output)
        }

        /// A key vault command as its administrator.
        @discardableResult
        func admin(_ args: String..., passphrase: String? = nil, expect: Int32 = 0, file: StaticString = #filePath, line: UInt = #line) throws -> RunResult {
            let r = try Tool.run(Tool.diskvault, args + ["--passphrase-file", passphrase ?? kvPass])
            XCTAssertEqual(r.status, expect, "\(args.joined(separator: " ")): \(r.output)", file: file, line: line)
            return r
        }

        /// A vault command, with the vault's passphrase.
        @discardableResult
        func dv(_ args: String..., expect: Int32 = 0, file: StaticString = #filePath, line: UInt = #line) throws -> RunResult {
            try dv(args, expect: expect, file: file, line: line)
        }

        @discardableResult
        func dv(_ args: [String], expect: Int32 = 0, file: StaticString = #filePath, line: UInt = #line) throws -> RunResult {
            let r = try Tool.run(Tool.diskvault, args + ["--vault", vault, "--passphrase-file", vaultPass])
            XCTAssertEqual(r.status, expect, "\(args.joined(separator: " ")): \(r.output)", file: file, line: line)
            return r
        }

        func backup(_ image: String, disk: String, file: StaticString = #filePath, line: UInt = #line) throws -> RunResult {
            try dv("backup", image, "--disk", disk, "--json", "--keyvault", kv, "--principal", "backup", "--credential", backupCred, file: file, line: line)
        }

        func escrowInit(file: StaticString = #filePath, line: UInt = #line) throws {
            try dv("vault", "escrow", "init", "--recovery-passphrase-file", recoveryPass, "--kdf-work-factor", "10", file: file, line: line)
        }

        func escrowAdd(file: StaticString = #filePath, line: UInt = #line) throws {
            let r = try admin("keyvault", "escrow", "add", kv, "--vault", vault, "--vault-passphrase-file", vaultPass, file: file, line: line)
            XCTAssertTrue(r.stderr.contains("can now read every key and secret of key vault"), r.stderr, file: file, line: line)
        }

        var recovery: [String] { ["--recovery-passphrase-file", recoveryPass] }

        /// A new key vault at `root` with a principal that may set and restore.
        func newKeyVault(_ root: String, principal: String = "restorer", keys: String = "get,list,set,unwrap,restore", secrets: String = "get,list,set,restore") throws -> [String] {
            if !FileManager.default.fileExists(atPath: "\(root)/keyvault.json") { try admin("keyvault", "init", root, "--kdf-work-factor", "10") }
            let cred = "\(root).\(principal).cred"
            try admin("keyvault", "access", "grant", root, "--principal", principal, "--keys", keys, "--secrets", secrets, "--credential-out", cred)
            return ["--keyvault", root, "--principal", principal, "--credential", cred]
        }

        func keyBackup(_ r: RunResult) throws -> [String: Any] { try XCTUnwrap(try r.json()["keyBackup"] as? [String: Any]) }
    }

    /// What `keyvault list --json` shows, without creation times' order mattering.
    func listing(_ t: Setup, _ root: String) throws -> [String: [[String: String]]] {
        let j = try t.admin("keyvault", "list", root, "--json").json()
        func rows(_ key: String) -> [[String: String]] {
            ((j[key] as? [[String: Any]]) ?? []).map { row in
                row.mapValues { v in (v as? [String: Any]).map { $0.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: ",") } ?? "\(v)" }
            }.sorted { $0["name"] ?? "" < $1["name"] ?? "" }
        }
        return ["secrets": rows("secrets"), "keys": rows("keys")]
    }

    func testKeysOutliveTheirKeyVaultThroughTheVaultsEscrow() throws {
        try Tool.require("qemu-img", "cryptsetup")
        let t = try Setup(self)
        let plain = t.s.file("plain.img"), luks = t.s.file("luks.img")
        try Images.ext4(plain, megabytes: 24, scratch: t.s)
        try Images.luks1(from: plain, to: luks)
        let uuid = try Tool.sh("cryptsetup luksUUID \(luks)").trimmingCharacters(in: .whitespacesAndNewlines)
        try Tool.sh("printf '%s' '\(Images.passphrase)' > \(t.s.file("luks.key"))")
        // The LUKS key wrapped by an RSA KEK and tagged; the BitLocker .BEK stored as it is.
        try t.admin("keyvault", "key", "create", t.kv, "--name", "rsa-kek", "--kind", "rsa-2048")
        try t.admin("keyvault", "secret", "set", t.kv, "--name", "web-disk", "--file", t.s.file("luks.key"), "--volume", uuid,
                    "--wrap-key", "rsa-kek", "--tag", "owner=web")
        let dir = try Fixtures.directory("bitlocker")
        let bitlocker = "\(dir)/bitlk-aes-xts-128-startup-key.img", bek = "\(dir)/4381F759-C4F8-4DE0-BB61-FC33A831BDA5.BEK"
        try t.admin("keyvault", "secret", "set", t.kv, "--name", "win-bek", "--file", bek)

        // Before escrow: the backup says its keys live only as long as the key vault, and how to change that.
        let early = try t.backup(luks, disk: "web")
        XCTAssertTrue(early.stderr.contains("can be restored only while key vault \(t.kv) exists") && early.stderr.contains("vault escrow init")
                      && early.stderr.contains("keyvault escrow add"), early.stderr)
        XCTAssertNil(try t.keyBackup(early)["escrow"])
        let earlyID = try XCTUnwrap(try early.json()["id"] as? String)
        let noKey = try t.admin("keyvault", "escrow", "add", t.kv, "--vault", t.vault, "--vault-passphrase-file", t.vaultPass, expect: 1)
        XCTAssertTrue(noKey.stderr.contains("has no escrow key") && noKey.stderr.contains("vault escrow init"), noKey.stderr)
        // The recovery passphrase is never the vault's (every backup host holds that one); the key is made once.
        let same = try t.dv("vault", "escrow", "init", "--recovery-passphrase-file", t.vaultPass, "--kdf-work-factor", "10", expect: 2)
        XCTAssertTrue(same.stderr.contains("must not be the vault's passphrase"), same.stderr)
        try t.escrowInit()
        let twice = try t.dv("vault", "escrow", "init", "--recovery-passphrase-file", t.recoveryPass, "--kdf-work-factor", "10", expect: 1)
        XCTAssertTrue(twice.stderr.contains("has an escrow key already"), twice.stderr)

        try t.escrowAdd()
        let web = try t.backup(luks, disk: "web"), win = try t.backup(bitlocker, disk: "win")
        for b in [web, win] {
            XCTAssertFalse(b.stderr.contains("can be restored only while"), b.stderr)
            XCTAssertNotNil(try t.keyBackup(b)["escrow"], b.stdout)
        }
        let before = try listing(t, t.kv)

        // A host that backs up into the vault holds its passphrase: every key its master key yields opens no
        // escrow wrap, of the key vault's items or of the key backups. With the recovery passphrase the same
        // attack opens them (so it is the key that stops it, not the attack that is wrong).
        let attack = try Tool.run("/usr/bin/python3", [KeyVaultAttackTests.script, "loot-escrow", t.kv, t.vault, t.vaultPass])
        XCTAssertEqual(attack.status, 0, attack.output)
        let loot = try attack.json()
        XCTAssertGreaterThan(loot["escrowWraps"] as? Int ?? 0, 10, attack.stdout)
        XCTAssertEqual((loot["opened"] as? [Any])?.count, 0, "the vault's passphrase opened escrowed items: \(attack.stdout)")
        let bekText = try Data(contentsOf: URL(fileURLWithPath: bek)).base64EncodedString()
        let withRecovery = try Tool.run("/usr/bin/python3", [KeyVaultAttackTests.script, "loot-escrow", t.kv, t.vault, t.vaultPass, t.recoveryPass])
        XCTAssertEqual(withRecovery.status, 0, withRecovery.output)
        let opened = ((try withRecovery.json()["opened"] as? [[String: Any]]) ?? []).compactMap { ($0["plaintext"] as? String).flatMap { Data(base64Encoded: $0) } }
        XCTAssertTrue(opened.contains { String(decoding: $0, as: UTF8.self).contains(bekText) }, "the recovery key opens the .BEK: \(withRecovery.stdout.prefix(300))")

        // The key vault is lost: restore says so, and names the command that puts the keys into a new one.
        try FileManager.default.removeItem(atPath: t.kv)
        let lost = try t.dv("restore", "--disk", "web", "--target", t.s.file("r.img"), "--keyvault", t.kv, "--principal", "backup", "--credential", t.backupCred, expect: 1)
        XCTAssertTrue(lost.stderr.contains("key vault \(t.kv) is missing") && lost.stderr.contains("escrowed") && lost.stderr.contains("diskvault keys restore --vault \(t.vault) --disk web")
                      && lost.stderr.contains("--keyvault NEW"), lost.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: t.s.file("r.img")))

        let kv2 = t.s.file("kv2")
        let asRestorer = try t.newKeyVault(kv2)
        // The point made before escrow goes back only into the key vault it came from.
        let notEscrowed = try t.dv(["keys", "restore", "--disk", "web", "--point", earlyID] + asRestorer, expect: 2)
        XCTAssertTrue(notEscrowed.stderr.contains("did not escrow them to vault"), notEscrowed.stderr)
        // A principal of the new key vault that may not restore is refused.
        let asGetter = try t.newKeyVault(kv2, principal: "getter", keys: "get,list", secrets: "get,list")
        let weak = try t.dv(["keys", "restore", "--disk", "web"] + asGetter, expect: 1)
        XCTAssertTrue(weak.stderr.contains("lacks restore permission"), weak.stderr)

        // From the escrow, the recovery passphrase is asked for: none, or a wrong one, is refused.
        let none = try t.dv(["keys", "restore", "--disk", "web"] + asRestorer, expect: 2)
        XCTAssertTrue(none.stderr.contains("--recovery-passphrase-file") && none.stderr.contains("DISKVAULT_RECOVERY_PASSPHRASE"), none.stderr)
        let wrong = try t.dv(["keys", "restore", "--disk", "web", "--recovery-passphrase-file", t.vaultPass] + asRestorer, expect: 1)
        XCTAssertTrue(wrong.stderr.contains("wrong recovery passphrase"), wrong.stderr)
        XCTAssertEqual(try listing(t, kv2)["secrets"]?.count, 0, "nothing written")
        for disk in ["web", "win"] {
            let put = try t.dv(["keys", "restore", "--disk", disk] + asRestorer + t.recovery)
            XCTAssertTrue(put.stdout.contains("(from the vault's escrow)"), put.stdout)
        }
        XCTAssertEqual(try listing(t, kv2), before, "names, versions, tags, KEK wrapping and times as they were")
        let again = try t.dv(["keys", "restore", "--disk", "web", "--json"] + asRestorer + t.recovery)
        XCTAssertEqual((try again.json()["restored"] as? [Any])?.count, 0, again.stdout)

        // The disks come back with the new key vault, and real tools open them with the exported keys.
        _ = try t.dv(["restore", "--disk", "web", "--target", t.s.file("r.img"), "--export-key", t.s.file("r.key")] + asRestorer)
        XCTAssertTrue(try fileBytesEqual(luks, t.s.file("r.img")))
        XCTAssertEqual(try Tool.run("/bin/bash", ["-c", "cryptsetup open --test-passphrase --key-file \(t.s.file("r.key")) \(t.s.file("r.img"))"]).status, 0)
        try Tool.sh("qemu-img convert --object secret,id=k,file=\(t.s.file("r.key")) --image-opts driver=luks,key-secret=k,file.filename=\(t.s.file("r.img")) -O raw \(t.s.file("r.raw"))")
        XCTAssertTrue(try fileBytesEqual(plain, t.s.file("r.raw")), "qemu decrypts the restored disk to the original plaintext")
        _ = try t.dv(["restore", "--disk", "win", "--target", t.s.file("w.img"), "--export-key", t.s.file("w.BEK")] + asRestorer)
        XCTAssertTrue(try fileBytesEqual(bitlocker, t.s.file("w.img")))
        XCTAssertTrue(try fileBytesEqual(bek, t.s.file("w.BEK")))
        XCTAssertEqual(try Tool.run("/bin/bash", ["-c", "cryptsetup open --type bitlk --test-passphrase --key-file \(t.s.file("w.BEK")) \(t.s.file("w.img"))"]).status, 0)

        // Nothing of any key or passphrase is in the vault, in any encoding a file of it could hold.
        let needles = [Array(Images.passphrase.utf8), Array(try Data(contentsOf: URL(fileURLWithPath: bek))),
                       Array("the passphrase of the vault".utf8), Array("admin passphrase of the key vault".utf8)]
        for file in treeListing(t.vault) {
            let path = "\(t.vault)/\(file)"
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue else { continue }
            let bytes = Data(try Data(contentsOf: URL(fileURLWithPath: path)))
            for n in needles {
                XCTAssertNil(bytes.range(of: Data(n)), "\(file) holds a key in clear")
                XCTAssertNil(bytes.range(of: Data(Data(n).base64EncodedString().utf8)), "\(file) holds a key in base64")
            }
        }

        // A key vault that already holds another secret of the same name and version is not overwritten,
        // nor taken for the backed-up one.
        let kv3 = t.s.file("kv3")
        let as3 = try t.newKeyVault(kv3)
        try Tool.sh("printf 'another key' > \(t.s.file("other.key"))")
        try t.admin("keyvault", "secret", "set", kv3, "--name", "win-bek", "--file", t.s.file("other.key"))
        let clash = try t.dv(["keys", "restore", "--disk", "win"] + as3 + t.recovery, expect: 1)
        XCTAssertTrue(clash.stderr.contains("secret win-bek version 1 that is not the one in the key backup"), clash.stderr)
        let wrongKV = try t.dv(["restore", "--disk", "win", "--target", t.s.file("w3.img")] + as3, expect: 1)
        XCTAssertTrue(wrongKV.stderr.contains("secret win-bek version 1") && wrongKV.stderr.contains("is not in key vault \(kv3) as point"), wrongKV.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: t.s.file("w3.img")))
    }

    /// A clear vault keeps no escrow: a backup of an encrypted disk says its keys live as long as their key
    /// vault, `keyvault escrow add` refuses the vault, and another key vault gets nothing.
    func testAClearVaultKeepsNoEscrowAndSaysSo() throws {
        try Tool.require("cryptsetup")
        let t = try Setup(self, encrypted: false)
        let dir = try Fixtures.directory("bitlocker")
        try t.admin("keyvault", "secret", "set", t.kv, "--name", "win-bek", "--file", "\(dir)/4381F759-C4F8-4DE0-BB61-FC33A831BDA5.BEK")
        let b = try t.backup("\(dir)/bitlk-aes-xts-128-startup-key.img", disk: "win")
        XCTAssertTrue(b.stderr.contains("can be restored only while key vault \(t.kv) exists") && b.stderr.contains("is not encrypted"), b.stderr)
        let add = try t.admin("keyvault", "escrow", "add", t.kv, "--vault", t.vault, "--vault-passphrase-file", t.vaultPass, expect: 2)
        XCTAssertTrue(add.stderr.contains("is not encrypted"), add.stderr)
        let other = try t.newKeyVault(t.s.file("kv2"))
        let r = try t.dv(["keys", "restore", "--disk", "win"] + other, expect: 2)
        XCTAssertTrue(r.stderr.contains("is not encrypted, so it keeps no escrow"), r.stderr)
    }

    /// `escrow add` killed at each write leaves the key vault working; running it again finishes, and from
    /// then on backups are escrowed. `escrow remove` ends escrow for new points only.
    func testAnEscrowChangeKilledMidwayIsFinishedByRunningItAgain() throws {
        try Tool.require("strace", "cryptsetup")
        let t = try Setup(self)
        let dir = try Fixtures.directory("bitlocker")
        let image = "\(dir)/bitlk-aes-xts-128-startup-key.img"
        try t.admin("keyvault", "key", "create", t.kv, "--name", "aes-kek", "--kind", "aes-256")
        try t.admin("keyvault", "secret", "set", t.kv, "--name", "win-bek", "--file", "\(dir)/4381F759-C4F8-4DE0-BB61-FC33A831BDA5.BEK")
        try t.admin("keyvault", "secret", "set", t.kv, "--name", "spare", "--file", "\(dir)/4381F759-C4F8-4DE0-BB61-FC33A831BDA5.BEK", "--wrap-key", "aes-kek")
        try t.escrowInit()
        for n in 1...4 {
            let killed = try Tool.run("/bin/bash", ["-c", "strace -f -o /dev/null -e inject=rename:signal=SIGKILL:when=\(n) \(Tool.diskvault) keyvault escrow add \(t.kv) --vault \(t.vault) --vault-passphrase-file \(t.vaultPass) --passphrase-file \(t.kvPass) >/dev/null 2>&1"])
            XCTAssertNotEqual(killed.status, 0, "rename \(n) was reached")
            // The key vault still opens, for its administrator and for the backup principal.
            try t.admin("keyvault", "list", t.kv)
            let b = try t.backup(image, disk: "win")
            let escrowed = try t.keyBackup(b)["escrow"] != nil
            XCTAssertTrue(escrowed || b.stderr.contains("can be restored only while"), "\(n): neither escrowed nor warned: \(b.output)")
        }
        try t.escrowAdd()
        let b = try t.backup(image, disk: "win")
        XCTAssertNotNil(try t.keyBackup(b)["escrow"], b.output)
        let list = try t.admin("keyvault", "escrow", "list", t.kv, "--json")
        let vaultID = try XCTUnwrap(((try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [String: Any])?["vaults"] as? [[String: Any]])?.first?["vaultID"] as? String, list.stdout)

        // A remove killed after the policy changed is finished by running it again.
        let killed = try Tool.run("/bin/bash", ["-c", "strace -f -o /dev/null -e inject=rename:signal=SIGKILL:when=2 \(Tool.diskvault) keyvault escrow remove \(t.kv) --vault-id \(vaultID) --passphrase-file \(t.kvPass) >/dev/null 2>&1"])
        XCTAssertNotEqual(killed.status, 0)
        try t.admin("keyvault", "escrow", "remove", t.kv, "--vault-id", vaultID)
        let gone = try Tool.run("/usr/bin/python3", ["-c", """
            import base64, json, os, sys
            d = sys.argv[1]
            print(sum(1 for n in os.listdir(d) if sys.argv[2].encode() in base64.b64decode(json.load(open(os.path.join(d, n)))["payload"])))
            """, "\(t.kv)/items", "escrow:\(vaultID)"])
        XCTAssertEqual(gone.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "0", "an item still sealed to the vault")
        try t.admin("keyvault", "escrow", "remove", t.kv, "--vault-id", vaultID, expect: 1)
        let after = try t.backup(image, disk: "win")
        XCTAssertNil(try t.keyBackup(after)["escrow"], after.stdout)
        XCTAssertTrue(after.stderr.contains("does not escrow its keys to vault"), after.stderr)
        // The point made while escrowed still goes into a new key vault.
        let escrowedID = try XCTUnwrap(try b.json()["id"] as? String)
        let other = try t.newKeyVault(t.s.file("kv2"))
        let put = try t.dv(["keys", "restore", "--disk", "win", "--point", escrowedID] + other + t.recovery)
        XCTAssertTrue(put.stdout.contains("restored secret win-bek version 1"), put.stdout)
    }
}
