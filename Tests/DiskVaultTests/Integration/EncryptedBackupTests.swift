import Foundation
import XCTest

/// The rules of encrypted backup, end to end, with real images and real tools as the judges.
final class EncryptedBackupTests: XCTestCase {
    /// A key vault with an administrator passphrase file, a backup principal (get,list) and a restore
    /// principal (get,list,restore,unwrap); the vault encrypted (the test suite's passphrase), or clear for a
    /// test that edits its files by hand.
    struct Setup {
        let s: Scratch
        let kv: String, pw: String, vault: String
        let backupCred: String, restoreCred: String

        /// `vault`: where the vault goes (an object store's, say); a folder of the scratch space by default.
        init(_ test: XCTestCase, clearVault: Bool = false, vault: String? = nil) throws {
            s = try Scratch(test)
            kv = s.file("kv"); pw = s.file("kv.pass"); self.vault = vault ?? s.file("vault")
            backupCred = s.file("backup.cred"); restoreCred = s.file("restore.cred")
            try Tool.sh("printf 'admin passphrase of the key vault' > \(pw)")
            try run("keyvault", "init", kv, "--kdf-work-factor", "10")
            try run("keyvault", "access", "grant", kv, "--principal", "backup", "--keys", "get,list", "--secrets", "get,list", "--credential-out", backupCred)
            try run("keyvault", "access", "grant", kv, "--principal", "restorer", "--keys", "get,list,unwrap,restore", "--secrets", "get,list,restore", "--credential-out", restoreCred)
            let encryption = clearVault ? ["--encryption", "none"] : ["--kdf-work-factor", "10"]
            XCTAssertEqual(try Tool.run(Tool.diskvault, ["vault", "init", self.vault, "--chunk-size", "1MiB"] + encryption).status, 0)
        }

        @discardableResult
        func run(_ args: String..., expect: Int32 = 0, file: StaticString = #filePath, line: UInt = #line) throws -> RunResult {
            var a = args
            if args.first == "keyvault" { a += ["--passphrase-file", pw] }
            let r = try Tool.run(Tool.diskvault, a)
            XCTAssertEqual(r.status, expect, "\(args.joined(separator: " ")): \(r.output)", file: file, line: line)
            return r
        }

        var asBackup: [String] { ["--keyvault", kv, "--principal", "backup", "--credential", backupCred] }
        var asRestorer: [String] { ["--keyvault", kv, "--principal", "restorer", "--credential", restoreCred] }

        func backup(_ image: String, disk: String, expect: Int32 = 0, file: StaticString = #filePath, line: UInt = #line) throws -> RunResult {
            let r = try Tool.run(Tool.diskvault, ["backup", image, "--vault", vault, "--disk", disk, "--json"] + asBackup)
            XCTAssertEqual(r.status, expect, r.output, file: file, line: line)
            return r
        }

        func restore(disk: String, target: String, _ extra: [String] = [], expect: Int32 = 0, file: StaticString = #filePath, line: UInt = #line) throws -> RunResult {
            let r = try Tool.run(Tool.diskvault, ["restore", "--vault", vault, "--disk", disk, "--target", target] + asRestorer + extra)
            XCTAssertEqual(r.status, expect, r.output, file: file, line: line)
            return r
        }

        func pointCount(_ disk: String) throws -> Int {
            let r = try Tool.dv("points", "--vault", vault, "--disk", disk, "--json")
            return (try r.json()["points"] as? [Any])?.count ?? -1
        }
    }

    func testLUKS1FromQemuImgFullCycleWithKeysRestore() throws {
        try Tool.require("qemu-img", "cryptsetup")
        let t = try Setup(self)
        let plain = t.s.file("plain.img"), luks = t.s.file("luks.img")
        try Images.ext4(plain, megabytes: 24, scratch: t.s)
        try Images.luks1(from: plain, to: luks)
        let uuid = try Tool.sh("cryptsetup luksUUID \(luks)").trimmingCharacters(in: .whitespacesAndNewlines)
        try Tool.sh("printf '%s' '\(Images.passphrase)' > \(t.s.file("bek"))")
        try t.run("keyvault", "secret", "set", t.kv, "--name", "web-disk", "--file", t.s.file("bek"), "--volume", uuid)

        let b = try t.backup(luks, disk: "web")
        let kb = try XCTUnwrap(try b.json()["keyBackup"] as? [String: Any])
        let volume = try XCTUnwrap((kb["volumes"] as? [[String: Any]])?.first)
        XCTAssertEqual(volume["secret"] as? String, "web-disk")
        XCTAssertEqual(volume["check"] as? String, "fits")
        XCTAssertEqual(volume["volumeID"] as? String, uuid)
        // Never a key in the manifest.
        XCTAssertFalse(b.stdout.contains(Images.passphrase))
        let id = try XCTUnwrap(try b.json()["id"] as? String)

        // The secret is deleted: restore stops and names it, and how to put it back.
        try t.run("keyvault", "secret", "delete", t.kv, "--name", "web-disk")
        let refused = try t.restore(disk: "web", target: t.s.file("r.img"), expect: 1)
        XCTAssertTrue(refused.stderr.contains("secret web-disk version 1") && refused.stderr.contains("keys restore"), refused.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: t.s.file("r.img")))

        let put = try Tool.run(Tool.diskvault, ["keys", "restore", "--vault", t.vault, "--disk", "web", "--point", id] + t.asRestorer)
        XCTAssertEqual(put.status, 0, put.output)
        XCTAssertTrue(put.stdout.contains("restored secret web-disk version 1"), put.stdout)

        let restored = try t.restore(disk: "web", target: t.s.file("r.img"), ["--export-key", t.s.file("exported.key")])
        XCTAssertTrue(try fileBytesEqual(luks, t.s.file("r.img")))
        XCTAssertEqual(try String(contentsOfFile: t.s.file("exported.key"), encoding: .utf8), Images.passphrase)
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: t.s.file("exported.key"))[.posixPermissions] as? Int, 0o600)
        let open = try Tool.run("/bin/bash", ["-c", "cryptsetup open --test-passphrase --key-file \(t.s.file("exported.key")) \(t.s.file("r.img"))"])
        XCTAssertEqual(open.status, 0, open.output)
        try Tool.sh("qemu-img convert --object secret,id=k,file=\(t.s.file("exported.key")) --image-opts driver=luks,key-secret=k,file.filename=\(t.s.file("r.img")) -O raw \(t.s.file("r.raw"))")
        XCTAssertTrue(try fileBytesEqual(plain, t.s.file("r.raw")), "decrypts to exactly the original plaintext")

        // Re-attach: JSON, libvirt <disk> with <encryption format='luks'>, qemu -blockdev.
        XCTAssertTrue(restored.stdout.contains("r.img.libvirt.xml"), restored.stdout)
        let xml = try String(contentsOfFile: t.s.file("r.img.libvirt.xml"), encoding: .utf8)
        XCTAssertTrue(xml.contains("<encryption format='luks'>") && xml.contains("<secret type='passphrase'"), xml)
        let args = try String(contentsOfFile: t.s.file("r.img.qemu-args"), encoding: .utf8)
        XCTAssertTrue(args.contains("driver=luks") && args.contains("-blockdev"), args)
        let attach = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: t.s.file("r.img.attach.json")))) as? [String: Any]
        let av = (attach?["volumes"] as? [[String: Any]])?.first
        XCTAssertEqual(av?["secret"] as? String, "web-disk")
        XCTAssertEqual(av?["uuid"] as? String, uuid)
        // qemu itself opens the disk the way the arguments say.
        try Tool.sh("qemu-img info --object secret,id=k,file=\(t.s.file("exported.key")) --image-opts driver=luks,key-secret=k,file.filename=\(t.s.file("r.img")) >/dev/null")

        // verify notices a point whose key backup is gone.
        XCTAssertEqual(try Tool.dv("verify", "--vault", t.vault).status, 0)
        let keysBlob = "\(t.vault)/disks/web/points/\(id)/keys"
        try FileManager.default.moveItem(atPath: keysBlob, toPath: t.s.file("keys.aside"))
        let verify = try Tool.dv("verify", "--vault", t.vault)
        XCTAssertEqual(verify.status, 1)
        XCTAssertTrue(verify.stdout.contains("key backup of point \(id) is missing"), verify.stdout)
        try FileManager.default.moveItem(atPath: t.s.file("keys.aside"), toPath: keysBlob)

        // --replace over an encrypted disk is refused.
        let replace = try t.restore(disk: "web", target: t.s.file("r.img"), ["--replace"], expect: 2)
        XCTAssertTrue(replace.stderr.contains("restoring over an existing disk is not supported for encrypted disks"), replace.stderr)
    }

    func testLUKS2WithKeyFileAndWrappedBEKs() throws {
        try Tool.require("cryptsetup")
        // Clear: the point's key backup and manifest are edited by hand below.
        let t = try Setup(self, clearVault: true)
        try t.run("keyvault", "key", "create", t.kv, "--name", "rsa-kek", "--kind", "rsa-3072")
        try t.run("keyvault", "key", "create", t.kv, "--name", "aes-kek", "--kind", "aes-256")
        for (n, wrap) in [(1, nil), (2, "rsa-kek"), (3, "aes-kek")] as [(Int, String?)] {
            let image = t.s.file("luks2-\(n).img"), keyFile = t.s.file("key-\(n)")
            try Tool.sh("""
                head -c 64 /dev/urandom > \(keyFile)
                truncate -s 24M \(image)
                cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file \(keyFile) \(image)
                """)
            let uuid = try Tool.sh("cryptsetup luksUUID \(image)").trimmingCharacters(in: .whitespacesAndNewlines)
            var set = ["keyvault", "secret", "set", t.kv, "--name", "disk\(n)", "--file", keyFile, "--volume", uuid, "--passphrase-file", t.pw]
            if let wrap { set += ["--wrap-key", wrap] }
            XCTAssertEqual(try Tool.run(Tool.diskvault, set).status, 0)
            let b = try t.backup(image, disk: "d\(n)")
            let v = try XCTUnwrap(((try b.json()["keyBackup"] as? [String: Any])?["volumes"] as? [[String: Any]])?.first)
            XCTAssertEqual(v["wrappedBy"] as? String, wrap)
            if let wrap {
                // The backup principal (get,list) holds the wrapped BEK only: it cannot check it, and says so.
                XCTAssertEqual(v["check"] as? String, "unchecked", "\(v)")
                XCTAssertEqual(v["checkDetail"] as? String, "no unwrap permission on key \(wrap)", "\(v)")
                // A backup principal granted unwrap checks it.
                let r = try Tool.run(Tool.diskvault, ["backup", image, "--vault", t.vault, "--disk", "d\(n)", "--json",
                                                      "--keyvault", t.kv, "--principal", "restorer", "--credential", t.restoreCred])
                XCTAssertEqual(r.status, 0, r.output)
                let checked = ((try r.json()["keyBackup"] as? [String: Any])?["volumes"] as? [[String: Any]])?.first
                XCTAssertEqual(checked?["check"] as? String, "fits", "\(checked ?? [:])")
            } else {
                XCTAssertEqual(v["check"] as? String, "fits", "\(v)")
            }
            let out = t.s.file("restored-\(n).img"), key = t.s.file("exported-\(n)")
            _ = try t.restore(disk: "d\(n)", target: out, ["--export-key", key])
            XCTAssertTrue(try fileBytesEqual(image, out))
            XCTAssertTrue(try fileBytesEqual(keyFile, key), "the exported BEK is the key file, unwrapped")
            let open = try Tool.run("/bin/bash", ["-c", "cryptsetup open --test-passphrase --key-file \(key) \(out)"])
            XCTAssertEqual(open.status, 0, open.output)
        }
        // The KEK deleted: restore of the wrapped point names the missing key.
        try t.run("keyvault", "key", "delete", t.kv, "--name", "rsa-kek")
        let r = try t.restore(disk: "d2", target: t.s.file("again.img"), expect: 1)
        XCTAssertTrue(r.stderr.contains("key rsa-kek version 1") && r.stderr.contains("keys restore"), r.stderr)

        // The point's key backup carries the KEK's item, which the backup principal copied without being able
        // to open it. Edited by hand (its items swapped, the manifest's digest made to match), it is refused,
        // naming it; as written, the restorer puts the KEK back and the disk's key unwraps again.
        let points = try XCTUnwrap(try Tool.dv("points", "--vault", t.vault, "--disk", "d2", "--json").json()["points"] as? [[String: Any]])
        let id = try XCTUnwrap(points.first?["id"] as? String)
        let folder = "\(t.vault)/disks/d2/points/\(id)"
        let keys = try Data(contentsOf: URL(fileURLWithPath: "\(folder)/keys"))
        let manifest = try Data(contentsOf: URL(fileURLWithPath: "\(folder)/manifest.json"))
        try Tool.sh("""
            /usr/bin/python3 - <<'PY'
            import json, hashlib
            k = json.load(open("\(folder)/keys"))
            a, b = k["items"][0], k["items"][1]
            a["file"], b["file"] = b["file"], a["file"]
            blob = json.dumps(k).encode()
            open("\(folder)/keys", "wb").write(blob)
            m = json.load(open("\(folder)/manifest.json"))
            m["keyBackup"]["blobDigest"] = hashlib.sha256(blob).hexdigest()
            json.dump(m, open("\(folder)/manifest.json", "w"))
            PY
            """)
        let forged = try Tool.run(Tool.diskvault, ["keys", "restore", "--vault", t.vault, "--disk", "d2", "--point", id] + t.asRestorer)
        XCTAssertEqual(forged.status, 1, forged.output)
        XCTAssertTrue(forged.stderr.contains("\(folder)/keys") && forged.stderr.contains("refused"), forged.stderr)
        try keys.write(to: URL(fileURLWithPath: "\(folder)/keys"))
        try manifest.write(to: URL(fileURLWithPath: "\(folder)/manifest.json"))
        let put = try Tool.run(Tool.diskvault, ["keys", "restore", "--vault", t.vault, "--disk", "d2", "--point", id] + t.asRestorer)
        XCTAssertEqual(put.status, 0, put.output)
        XCTAssertTrue(put.stdout.contains("restored key rsa-kek version 1"), put.stdout)
        XCTAssertTrue(put.stdout.contains("secret disk2 version 1"), put.stdout)
        _ = try t.restore(disk: "d2", target: t.s.file("again.img"), ["--export-key", t.s.file("again.key")])
        XCTAssertTrue(try fileBytesEqual(t.s.file("key-2"), t.s.file("again.key")))
    }

    func testBitLockerStartupKeyBackupAndRestore() throws {
        try Tool.require("cryptsetup")
        let dir = try Fixtures.directory("bitlocker")
        let t = try Setup(self)
        let image = "\(dir)/bitlk-aes-xts-128-startup-key.img"
        let bek = "\(dir)/4381F759-C4F8-4DE0-BB61-FC33A831BDA5.BEK"
        // The .BEK's file name links it to the volume's startup-key protector.
        try t.run("keyvault", "secret", "set", t.kv, "--name", "win-bek", "--file", bek)
        let b = try t.backup(image, disk: "win")
        let v = try XCTUnwrap(((try b.json()["keyBackup"] as? [String: Any])?["volumes"] as? [[String: Any]])?.first)
        XCTAssertEqual(v["check"] as? String, "fits", "\(v)")
        XCTAssertEqual(v["volumeID"] as? String, "4381f759-c4f8-4de0-bb61-fc33a831bda5")
        let out = t.s.file("win.img"), exported = t.s.file("exported.BEK")
        _ = try t.restore(disk: "win", target: out, ["--export-key", exported])
        XCTAssertTrue(try fileBytesEqual(image, out))
        let open = try Tool.run("/bin/bash", ["-c", "cryptsetup open --type bitlk --test-passphrase --key-file \(exported) \(out)"])
        XCTAssertEqual(open.status, 0, open.output)
    }

    func testRulesRefuseWhatTheyMust() throws {
        try Tool.require("cryptsetup")
        let t = try Setup(self)
        let image = t.s.file("disk.img")
        try Tool.sh("mkfs.ext4 -q -F \(image) 16M")
        // A plain disk needs no key vault.
        XCTAssertEqual(try Tool.dv("backup", image, "--vault", t.vault, "--disk", "d").status, 0)
        // It becomes encrypted: from now on the key vault is needed.
        try Tool.sh("printf 'the passphrase' > \(t.s.file("bek")); cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file \(t.s.file("bek")) \(image)")
        let noKV = try Tool.dv("backup", image, "--vault", t.vault, "--disk", "d")
        XCTAssertEqual(noKV.status, 2, noKV.output)
        XCTAssertTrue(noKV.stderr.contains("--keyvault") && noKV.stderr.contains("luks2"), noKV.stderr)
        XCTAssertEqual(try t.pointCount("d"), 1)

        // No secret for the volume yet: named.
        let uuid = try Tool.sh("cryptsetup luksUUID \(image)").trimmingCharacters(in: .whitespacesAndNewlines)
        let missing = try t.backup(image, disk: "d", expect: 1)
        XCTAssertTrue(missing.stderr.contains("no secret") && missing.stderr.contains(uuid), missing.stderr)

        // A wrong key fails the backup.
        try Tool.sh("printf 'not the passphrase' > \(t.s.file("wrong"))")
        try t.run("keyvault", "secret", "set", t.kv, "--name", "d-key", "--file", t.s.file("wrong"), "--volume", uuid)
        let wrong = try t.backup(image, disk: "d", expect: 1)
        XCTAssertTrue(wrong.stderr.contains("does not open"), wrong.stderr)
        XCTAssertEqual(try t.pointCount("d"), 1)

        // The right key (a new version): the backup goes through.
        try t.run("keyvault", "secret", "set", t.kv, "--name", "d-key", "--file", t.s.file("bek"), "--volume", uuid)
        XCTAssertEqual(try t.backup(image, disk: "d").status, 0)
        XCTAssertEqual(try t.pointCount("d"), 2)

        // Unchanged header and secret: the next point reuses the check instead of paying for PBKDF2 again.
        let again = try t.backup(image, disk: "d")
        let reused = ((try again.json()["keyBackup"] as? [String: Any])?["volumes"] as? [[String: Any]])?.first
        XCTAssertEqual(reused?["check"] as? String, "fits")
        XCTAssertTrue((reused?["checkDetail"] as? String ?? "").contains("as at the previous point"), "\(reused ?? [:])")
        // The passphrase is changed with cryptsetup: the header differs, the key is checked again and no longer fits.
        try Tool.sh("printf 'a new passphrase' > \(t.s.file("new")); cryptsetup luksChangeKey -q --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file \(t.s.file("bek")) \(image) \(t.s.file("new"))")
        let changed = try t.backup(image, disk: "d", expect: 1)
        XCTAssertTrue(changed.stderr.contains("does not open"), changed.stderr)
        XCTAssertEqual(try t.pointCount("d"), 3)

        // A principal without get/list: refused, nothing written.
        let weakCred = t.s.file("weak.cred")
        try t.run("keyvault", "access", "grant", t.kv, "--principal", "weak", "--secrets", "get", "--credential-out", weakCred)
        let before = vaultContents(t.vault)
        let weak = try Tool.dv("backup", image, "--vault", t.vault, "--disk", "d", "--keyvault", t.kv, "--principal", "weak", "--credential", weakCred)
        XCTAssertEqual(weak.status, 1)
        XCTAssertTrue(weak.stderr.contains("backup service lacks permission to key vault \(t.kv): grant get,list on keys and secrets to weak"), weak.stderr)
        XCTAssertEqual(vaultContents(t.vault), before, "nothing written")

        // A revoked principal's credential stops working.
        try t.run("keyvault", "access", "revoke", t.kv, "--principal", "weak")
        let revoked = try Tool.dv("backup", image, "--vault", t.vault, "--disk", "d", "--keyvault", t.kv, "--principal", "weak", "--credential", weakCred)
        XCTAssertEqual(revoked.status, 1)
        XCTAssertTrue(revoked.stderr.contains("no access"), revoked.stderr)

        // A certificate is refused; a standalone key is accepted.
        try Tool.sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout \(t.s.file("k.pem")) -out \(t.s.file("c.pem")) -subj /CN=kek -days 1 2>/dev/null")
        let cert = try t.run("keyvault", "key", "import", t.kv, "--name", "cert", "--file", t.s.file("c.pem"), expect: 1)
        XCTAssertTrue(cert.stderr.contains("certificate-based keys are not supported; import a standalone key"), cert.stderr)
        try t.run("keyvault", "key", "import", t.kv, "--name", "standalone", "--file", t.s.file("k.pem"))

        // The key vault deleted: restore names the missing key vault.
        try FileManager.default.removeItem(atPath: t.kv)
        let gone = try t.restore(disk: "d", target: t.s.file("r.img"), expect: 1)
        XCTAssertTrue(gone.stderr.contains("key vault \(t.kv) is missing"), gone.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: t.s.file("r.img")))
    }

    func testKeyVaultHoldsNothingInClear() throws {
        let t = try Setup(self)
        let secret = "a-very-recognisable-disk-passphrase-0123456789"
        try Tool.sh("printf '%s' '\(secret)' > \(t.s.file("bek"))")
        try t.run("keyvault", "key", "create", t.kv, "--name", "aes-kek", "--kind", "aes-256")
        try t.run("keyvault", "key", "create", t.kv, "--name", "rsa-kek", "--kind", "rsa-2048")
        try t.run("keyvault", "secret", "set", t.kv, "--name", "plain", "--file", t.s.file("bek"), "--volume", "some-uuid")
        try t.run("keyvault", "secret", "set", t.kv, "--name", "wrapped", "--file", t.s.file("bek"), "--wrap-key", "rsa-kek")
        let b64 = Data(secret.utf8).base64EncodedString()
        for needle in [secret, b64, "PRIVATE KEY", "some-uuid", "aes-kek", "\"value\""] {
            let grep = try Tool.run("/bin/grep", ["-rlF", needle, t.kv])
            XCTAssertEqual(grep.status, 1, "\(needle) found in clear in \(grep.stdout)")
        }
        // And the administrator reads it back through the passphrase only.
        try t.run("keyvault", "secret", "get", t.kv, "--name", "wrapped", "--out", t.s.file("back"))
        XCTAssertEqual(try String(contentsOfFile: t.s.file("back"), encoding: .utf8), secret)
        try Tool.sh("printf 'wrong' > \(t.s.file("wrong.pass"))")
        let wrong = try Tool.dv("keyvault", "list", t.kv, "--passphrase-file", t.s.file("wrong.pass"))
        XCTAssertEqual(wrong.status, 1)
        XCTAssertTrue(wrong.stderr.contains("wrong passphrase"), wrong.stderr)
    }

    /// A protected encrypted disk: run-due backs it up with its key vault settings, no other arguments.
    func testRunDueBacksUpAProtectedEncryptedDiskWithItsKeys() throws {
        try Tool.require("cryptsetup")
        let t = try Setup(self)
        let image = t.s.file("luks2.img"), key = t.s.file("key")
        try Tool.sh("""
            head -c 32 /dev/urandom > \(key); truncate -s 20M \(image)
            cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file \(key) \(image)
            """)
        let uuid = try Tool.sh("cryptsetup luksUUID \(image)").trimmingCharacters(in: .whitespacesAndNewlines)
        try t.run("keyvault", "secret", "set", t.kv, "--name", "k", "--file", key, "--volume", uuid)
        let add = try Tool.run(Tool.diskvault, ["protect", "add", "--vault", t.vault, "--disk", "enc", "--source", image] + t.asBackup)
        XCTAssertEqual(add.status, 0, add.output)
        let run = try Tool.run(Tool.diskvault, ["run-due", "--vault", t.vault], environment: ["DISKVAULT_NOW": "2026-11-20T02:30:00Z"])
        XCTAssertEqual(run.status, 0, run.output)
        let points = try XCTUnwrap(try Tool.dv("points", "--vault", t.vault, "--disk", "enc", "--json").json()["points"] as? [[String: Any]])
        XCTAssertEqual(points.count, 1)
        XCTAssertEqual(points.first?["trigger"] as? String, "scheduled")
        let volume = ((points.first?["keyBackup"] as? [String: Any])?["volumes"] as? [[String: Any]])?.first
        XCTAssertEqual(volume?["check"] as? String, "fits")
    }

    /// A point's key backup flipped by one byte or cut short: verify finds it, with or without the key vault;
    /// with the key vault it also opens each sound key backup.
    func testVerifyFindsADamagedKeyBackup() throws {
        try Tool.require("qemu-img", "cryptsetup")
        let t = try Setup(self)
        let plain = t.s.file("plain.img"), luks = t.s.file("luks.img")
        try Images.ext4(plain, megabytes: 8, scratch: t.s)
        try Images.luks1(from: plain, to: luks)
        let uuid = try Tool.sh("cryptsetup luksUUID \(luks)").trimmingCharacters(in: .whitespacesAndNewlines)
        try Tool.sh("printf '%s' '\(Images.passphrase)' > \(t.s.file("bek"))")
        try t.run("keyvault", "secret", "set", t.kv, "--name", "web-disk", "--file", t.s.file("bek"), "--volume", uuid)
        let id = try XCTUnwrap(try t.backup(luks, disk: "web").json()["id"] as? String)
        let keys = "\(t.vault)/disks/web/points/\(id)/keys"
        let sound = try Tool.dv("verify", "--vault", t.vault)
        XCTAssertEqual(sound.status, 0, sound.output)
        let opened = try Tool.run(Tool.diskvault, ["verify", "--vault", t.vault] + t.asRestorer)
        XCTAssertEqual(opened.status, 0, opened.output)

        let original = try Data(contentsOf: URL(fileURLWithPath: keys))
        var flipped = original
        flipped[flipped.count / 2] ^= 0x01
        var cut = original
        cut.removeLast(cut.count / 3)
        for (what, bytes) in [("one byte flipped", flipped), ("cut short", cut)] {
            try bytes.write(to: URL(fileURLWithPath: keys))
            for extra in [[], t.asRestorer] {
                let r = try Tool.run(Tool.diskvault, ["verify", "--vault", t.vault, "--json"] + extra)
                XCTAssertEqual(r.status, 1, "\(what): \(r.output)")
                let problems = try XCTUnwrap(try r.json()["problems"] as? [[String: Any]])
                XCTAssertTrue(problems.contains { ($0["message"] as? String ?? "").contains("key backup of point \(id)") }, "\(what): \(problems)")
            }
        }
        try original.write(to: URL(fileURLWithPath: keys))
        XCTAssertEqual(try Tool.dv("verify", "--vault", t.vault).status, 0)
    }
}
