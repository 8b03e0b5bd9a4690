import DiskVault
import Foundation
import XCTest

/// The key vault's permissions attacked as a principal would: with its credential and the key vault's files,
/// through an independent reader of the on-disk format (keyvault_attack.py, Python `cryptography`), and by
/// writing files by hand. Its permissions must hold whatever the command line would have allowed.
final class KeyVaultAttackTests: XCTestCase {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("keyvault_attack.py").path
    /// The BEKs: one stored as it is, two wrapped (RSA-OAEP and AES key wrap).
    static let plainBEK = "plain-bek-0123456789-recognisable"
    static let rsaBEK = "rsa-wrapped-bek-9876543210-recognisable"
    static let aesBEK = "aes-wrapped-bek-5555555555-recognisable"

    struct Setup {
        let s: Scratch
        let kv: String, pw: String

        init(_ test: XCTestCase) throws {
            s = try Scratch(test)
            kv = s.file("kv"); pw = s.file("kv.pass")
            try Tool.sh("printf 'the administrator passphrase' > \(pw)")
            try run("keyvault", "init", kv, "--kdf-work-factor", "10")
            try run("keyvault", "key", "create", kv, "--name", "rsa-kek", "--kind", "rsa-2048")
            try run("keyvault", "key", "create", kv, "--name", "aes-kek", "--kind", "aes-256")
            for (name, bek, wrap) in [("plain", plainBEK, nil), ("rsa-wrapped", rsaBEK, "rsa-kek"), ("aes-wrapped", aesBEK, "aes-kek")] as [(String, String, String?)] {
                try Tool.sh("printf '%s' '\(bek)' > \(s.file("\(name).bek"))")
                try run(["keyvault", "secret", "set", kv, "--name", name, "--file", s.file("\(name).bek"), "--volume", "vol-\(name)"] + (wrap.map { ["--wrap-key", $0] } ?? []))
            }
            try grant("lister", keys: "list", secrets: "list")
            try grant("getter", keys: "get,list", secrets: "get,list")
            try grant("restorer", keys: "get,list,unwrap,restore", secrets: "get,list,restore")
        }

        func cred(_ principal: String) -> String { s.file("\(principal).cred") }

        func grant(_ principal: String, keys: String, secrets: String) throws {
            try run("keyvault", "access", "grant", kv, "--principal", principal, "--keys", keys, "--secrets", secrets, "--credential-out", cred(principal))
        }

        @discardableResult
        func run(_ args: String..., expect: Int32 = 0, file: StaticString = #filePath, line: UInt = #line) throws -> RunResult {
            try run(Array(args), expect: expect, file: file, line: line)
        }

        @discardableResult
        func run(_ args: [String], expect: Int32 = 0, file: StaticString = #filePath, line: UInt = #line) throws -> RunResult {
            let r = try Tool.run(Tool.diskvault, args + ["--passphrase-file", pw])
            XCTAssertEqual(r.status, expect, "\(args.joined(separator: " ")): \(r.output)", file: file, line: line)
            return r
        }

        func open(_ principal: String, _ root: String? = nil) throws -> KeyVault {
            try KeyVault.open(root ?? kv, principal: principal, credentialFile: cred(principal))
        }
    }

    struct Loot {
        var capabilities: [String]
        /// (file, part, plaintext) of every part the credential opened by following the format.
        var opened: [(String, String, Data)]
        /// Every plaintext the brute sweep recovered.
        var swept: [Data]
        var tried: Int

        var everything: [Data] { opened.map(\.2) + swept }

        func contains(_ needle: String) -> Bool {
            let b64 = Data(needle.utf8).base64EncodedString()
            return everything.contains { text in
                let s = String(decoding: text, as: UTF8.self)
                return s.contains(needle) || s.contains(b64)
            }
        }
    }

    func python(_ args: [String], file: StaticString = #filePath, line: UInt = #line) throws -> RunResult {
        let r = try Tool.run("/usr/bin/python3", [Self.script] + args)
        XCTAssertEqual(r.status, 0, "keyvault_attack.py \(args.joined(separator: " ")): \(r.output)", file: file, line: line)
        return r
    }

    func loot(_ kv: String, _ cred: String) throws -> Loot {
        let json = try python(["loot", kv, cred]).json()
        func decode(_ s: Any?) -> Data { Data(base64Encoded: s as? String ?? "") ?? Data() }
        let opened = (json["opened"] as? [[String: Any]] ?? []).map { ($0["file"] as? String ?? "", $0["part"] as? String ?? "", decode($0["plaintext"])) }
        let swept = (json["sweep"] as? [[String: Any]] ?? []).map { decode($0["plaintext"]) }
        return Loot(capabilities: json["capabilities"] as? [String] ?? [], opened: opened, swept: swept, tried: json["tried"] as? Int ?? 0)
    }

    /// A KEK's private half, in any plaintext: an RSA private key, or a key part holding material.
    func holdsKEKMaterial(_ loot: Loot) -> Bool {
        loot.everything.contains { text in
            let s = String(decoding: text, as: UTF8.self)
            if s.contains("PRIVATE KEY") { return true }
            guard let o = try? JSONSerialization.jsonObject(with: text) as? [String: Any] else { return false }
            return o["material"] != nil
        }
    }

    func testAListPrincipalOpensNamesOnly() throws {
        let t = try Setup(self)
        let loot = try loot(t.kv, t.cred("lister"))
        XCTAssertEqual(Set(loot.capabilities.map { String($0.split(separator: "@")[0]) }), ["secrets.list", "keys.list"])
        XCTAssertGreaterThan(loot.tried, 100, "the sweep tried the credential's keys on the sealed files")
        XCTAssertEqual(loot.opened.count, 5, "the five listings: \(loot.opened.map { "\($0.0) \($0.1)" })")
        XCTAssertEqual(Set(loot.opened.map(\.1)), ["listing"])
        for bek in [Self.plainBEK, Self.rsaBEK, Self.aesBEK] { XCTAssertFalse(loot.contains(bek), "a list principal recovered \(bek)") }
        XCTAssertFalse(holdsKEKMaterial(loot), "a list principal recovered a KEK")
        // What it may see: the names.
        XCTAssertTrue(loot.opened.contains { String(decoding: $0.2, as: UTF8.self).contains("\"rsa-wrapped\"") })
        // And the library, asked for more, has nothing to give it.
        let kv = try t.open("lister")
        XCTAssertEqual(try kv.secrets().map(\.name), ["aes-wrapped", "plain", "rsa-wrapped"])
        XCTAssertThrowsError(try kv.secret(name: "plain"))
    }

    func testAGetPrincipalWithoutUnwrapSeesTheWrappedBEKOnly() throws {
        let t = try Setup(self)
        let loot = try loot(t.kv, t.cred("getter"))
        XCTAssertFalse(loot.capabilities.contains { $0.hasPrefix("keys.unwrap") || $0.hasPrefix("secrets.restore") }, "\(loot.capabilities)")
        // get on an unwrapped secret reveals its BEK (the README says so): wrap BEKs the backup principal must not hold.
        XCTAssertTrue(loot.contains(Self.plainBEK))
        XCTAssertFalse(loot.contains(Self.rsaBEK), "the RSA-wrapped BEK was recovered in clear")
        XCTAssertFalse(loot.contains(Self.aesBEK), "the AES-wrapped BEK was recovered in clear")
        XCTAssertFalse(holdsKEKMaterial(loot), "a principal without unwrap recovered a KEK")
        // It does hold the wrapped bytes, and the RSA KEK's public half.
        let values = loot.opened.filter { $0.1 == "value" }
        XCTAssertEqual(values.count, 3)
        XCTAssertTrue(loot.opened.contains { $0.1 == "public" && String(decoding: $0.2, as: UTF8.self).contains("pem") })
        let kv = try t.open("getter")
        XCTAssertThrowsError(try kv.unwrappedValue(of: try kv.secret(name: "rsa-wrapped"))) { error in
            XCTAssertTrue("\(error)".contains("lacks unwrap"), "\(error)")
        }
        // The restorer, with unwrap, gets the BEKs in clear; the administrator too.
        let restorer = try t.open("restorer")
        XCTAssertEqual(try restorer.unwrappedValue(of: try restorer.secret(name: "rsa-wrapped")), Array(Self.rsaBEK.utf8))
        XCTAssertEqual(try restorer.unwrappedValue(of: try restorer.secret(name: "aes-wrapped")), Array(Self.aesBEK.utf8))
        let admin = try KeyVault.open(t.kv, passphrase: Array("the administrator passphrase".utf8))
        XCTAssertEqual(try admin.unwrappedValue(of: try admin.secret(name: "aes-wrapped")), Array(Self.aesBEK.utf8))
    }

    /// Files a principal wrote, or moved, are refused, each naming the file.
    func testForgedPolicySlotItemAndSwappedItemsAreRefused() throws {
        let t = try Setup(self)
        let pristine = t.s.file("pristine")
        try Tool.sh("cp -a \(t.kv) \(pristine)")
        func reset() throws { try Tool.sh("rm -rf \(t.kv) && cp -a \(pristine) \(t.kv)") }
        func refused(_ principal: String?, naming file: String, _ message: String, line: UInt = #line) {
            do {
                let kv = try principal.map { try t.open($0) } ?? KeyVault.open(t.kv, passphrase: Array("the administrator passphrase".utf8))
                _ = try kv.secrets()
                XCTFail("\(principal ?? "admin") opened a key vault with a forged \(file)", line: line)
            } catch {
                XCTAssertTrue("\(error)".contains("\(t.kv)/\(file)"), "names \(file): \(error)", line: line)
                XCTAssertTrue("\(error)".contains(message), "\(message): \(error)", line: line)
            }
        }

        // The list principal grants itself everything, signed with its own key.
        _ = try python(["forge-policy", t.kv, t.cred("lister")])
        refused("lister", naming: "policy.json", "was not signed by the key vault's administrator")
        refused(nil, naming: "policy.json", "was not signed by the key vault's administrator")
        let cli = try t.run("keyvault", "list", t.kv, expect: 1)
        XCTAssertTrue(cli.stderr.contains("policy.json"), cli.stderr)
        try reset()

        // It gives itself a secrets.get key of its own in its slot.
        _ = try python(["forge-slot", t.kv, t.cred("lister")])
        refused("lister", naming: "principals/lister.json", "was not signed by the key vault's administrator")
        try reset()

        // It plants a secret (it has no set): refused for everyone who lists, admin included.
        let planted = try python(["forge-item", t.kv, t.cred("lister")]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        refused("getter", naming: "items/\(planted)", "may not write secrets")
        refused(nil, naming: "items/\(planted)", "may not write secrets")
        try reset()

        // Two items' files swapped.
        let items = try FileManager.default.contentsOfDirectory(atPath: "\(t.kv)/items").sorted()
        try Tool.sh("cd \(t.kv)/items && mv \(items[0]) x && mv \(items[1]) \(items[0]) && mv x \(items[1])")
        refused("getter", naming: "items/", "written or moved by someone else")
        try reset()

        // One byte of an item changed.
        let path = "\(t.kv)/items/\(items[0])"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let at = bytes.count / 2
        bytes[at] = bytes[at] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        try bytes.write(to: URL(fileURLWithPath: path))
        refused(nil, naming: "items/\(items[0])", "refused")
        try reset()
        XCTAssertEqual(try t.open("getter").secrets().count, 3, "the pristine key vault opens")
    }

    /// A revoked principal keeps a copy of every file and puts it back over the new ones: it reads nothing set
    /// after its revocation, and the library refuses the rolled-back key vault.
    func testRevocationHoldsAgainstOldCopiesOfEveryFile() throws {
        let t = try Setup(self)
        let copy = t.s.file("copied-by-getter")
        try Tool.sh("cp -a \(t.kv) \(copy)")
        let before = try loot(t.kv, t.cred("getter"))
        XCTAssertTrue(before.contains(Self.plainBEK))

        try t.run("keyvault", "access", "revoke", t.kv, "--principal", "getter")
        XCTAssertThrowsError(try t.open("getter")) { XCTAssertTrue("\($0)".contains("no access"), "\($0)") }
        let after = "a-secret-set-after-the-revocation-424242"
        try Tool.sh("printf '%s' '\(after)' > \(t.s.file("after.bek"))")
        try t.run("keyvault", "secret", "set", t.kv, "--name", "plain", "--file", t.s.file("after.bek"))
        try t.run("keyvault", "secret", "set", t.kv, "--name", "newcomer", "--file", t.s.file("after.bek"))
        // Every item was sealed again: none of them is byte for byte what the principal copied.
        for name in try FileManager.default.contentsOfDirectory(atPath: "\(copy)/items") {
            XCTAssertNotEqual(try Data(contentsOf: URL(fileURLWithPath: "\(copy)/items/\(name)")), try Data(contentsOf: URL(fileURLWithPath: "\(t.kv)/items/\(name)")))
        }

        // Its old files put back over the new ones (the new items stay: it cannot know to delete them).
        try Tool.sh("cp -a \(t.kv)/keyvault.json \(t.s.file("kv.current.json")) && cp -a \(copy)/. \(t.kv)/")
        let rolledBack = try loot(t.kv, t.cred("getter"))
        XCTAssertFalse(rolledBack.contains(after), "a revoked principal read a secret set after its revocation")
        // The library sees the rollback: the policy is older than the new items.
        XCTAssertThrowsError(try t.open("getter").secrets()) { XCTAssertTrue("\($0)".contains("an old copy of the policy was put back"), "\($0)") }
        // It did get back what it could read before: the copy holds nothing newer.
        XCTAssertTrue(rolledBack.contains(Self.plainBEK))

        // It also deletes the newer items, so that nothing in the folder is newer than its old policy; then the
        // administrator, unaware, sets another secret: sealed to the newest keys, which the old slot lacks.
        for name in try FileManager.default.contentsOfDirectory(atPath: "\(t.kv)/items") where !FileManager.default.fileExists(atPath: "\(copy)/items/\(name)") {
            try FileManager.default.removeItem(atPath: "\(t.kv)/items/\(name)")
        }
        let later = "set-by-the-administrator-after-the-rollback-777"
        try Tool.sh("printf '%s' '\(later)' > \(t.s.file("later.bek"))")
        // With keyvault.json put back too, this host knows it is older than what it saw: refused.
        let refused = try t.run("keyvault", "secret", "set", t.kv, "--name", "later", "--file", t.s.file("later.bek"), expect: 1)
        XCTAssertTrue(refused.stderr.contains("older than this host last saw it"), refused.stderr)
        // With the current keyvault.json kept, the policy is still older than this host saw: refused too.
        try Tool.sh("cp -a \(t.s.file("kv.current.json")) \(t.kv)/keyvault.json")
        let again = try t.run("keyvault", "secret", "set", t.kv, "--name", "later", "--file", t.s.file("later.bek"), expect: 1)
        XCTAssertTrue(again.stderr.contains("policy.json is older than this host last saw it"), again.stderr)
        XCTAssertFalse(try loot(t.kv, t.cred("getter")).contains(later), "a revoked principal read what the administrator set after a rollback")
    }

    /// The policy a revocation writes before it seals every item again still names the revoked principal and
    /// the capability keys it holds. Whoever watches the folder copies that interim policy and puts it back once
    /// the revocation is done: it must be older than the final one (a later epoch), so that every writer on the
    /// host that saw the final refuses it.
    func testTheInterimPolicyOfARevocationPutBackIsRefused() throws {
        try Tool.require("strace")
        let t = try Setup(self)
        // How many renames the revocation makes, counted on a copy (with a copy of this host's records, which
        // it updates with renames too).
        let copy = t.s.file("count"), state = t.s.file("count-state")
        let env = ProcessInfo.processInfo.environment
        let records = env["DISKVAULT_STATE_DIR"].flatMap { $0.isEmpty ? nil : $0 }
            ?? env["XDG_STATE_HOME"].flatMap { $0.isEmpty ? nil : "\($0)/diskvault" } ?? "\(env["HOME"] ?? "/root")/.local/state/diskvault"
        try Tool.sh("cp -a \(t.kv) \(copy) && mkdir -p \(state) && { [ ! -d '\(records)' ] || cp -a '\(records)'/. \(state)/; }")
        let counted = try Tool.run("/bin/bash", ["-c", "strace -f -e trace=rename -o \(t.s.file("renames")) \(Tool.diskvault) keyvault access revoke \(copy) --principal getter --passphrase-file \(t.pw) >/dev/null"],
                                   environment: ["DISKVAULT_STATE_DIR": state])
        XCTAssertEqual(counted.status, 0, counted.output)
        // The ordinal of the last rename onto policy.json: the final policy's.
        let renames = try Tool.sh("grep 'rename(' \(t.s.file("renames")) | grep -n '/policy.json\"' | tail -1 | cut -d: -f1").trimmingCharacters(in: .whitespacesAndNewlines)
        let last = try XCTUnwrap(Int(renames), "no rename onto policy.json")
        XCTAssertGreaterThan(last, 3)
        // The revocation stopped just before that rename, which is then done by hand: the interim policy is
        // copied on the way.
        let killed = try Tool.run("/bin/bash", ["-c", "strace -f -o /dev/null -e inject=rename:signal=SIGKILL:when=\(last) \(Tool.diskvault) keyvault access revoke \(t.kv) --principal getter --passphrase-file \(t.pw) >/dev/null 2>&1"])
        XCTAssertNotEqual(killed.status, 0)
        try Tool.sh("cp \(t.kv)/policy.json \(t.s.file("interim.json")) && mv \(t.kv)/.policy.json.tmp-* \(t.kv)/policy.json")
        // A write sees the final policy (and records its epoch on this host).
        try Tool.sh("printf 'a probe' > \(t.s.file("probe.bek"))")
        try t.run("keyvault", "secret", "set", t.kv, "--name", "probe", "--file", t.s.file("probe.bek"))
        XCTAssertThrowsError(try t.open("getter")) { XCTAssertTrue("\($0)".contains("no access"), "\($0)") }
        // The interim policy put back: every writer refuses it (a principal writing under it would seal to the
        // capability keys the revoked principal holds).
        try Tool.sh("cp \(t.s.file("interim.json")) \(t.kv)/policy.json && printf 'set after the revocation' > \(t.s.file("late.bek"))")
        let write = try t.run("keyvault", "secret", "set", t.kv, "--name", "late", "--file", t.s.file("late.bek"), expect: 1)
        XCTAssertTrue(write.stderr.contains("policy.json is older than this host last saw it"), write.stderr)
    }

    func testRevokedSlotCopiedBackIsRefusedAndRotationEndsTheOldCredential() throws {
        let t = try Setup(self)
        let slot = "\(t.kv)/principals/getter.json"
        let oldSlot = try Data(contentsOf: URL(fileURLWithPath: slot))
        try t.run("keyvault", "access", "revoke", t.kv, "--principal", "getter")
        try oldSlot.write(to: URL(fileURLWithPath: slot))
        XCTAssertThrowsError(try t.open("getter")) { XCTAssertTrue("\($0)".contains("no access"), "\($0)") }

        // Rotation: the old credential stops working, the new one works, and its old slot is not its own.
        let restorerSlot = try Data(contentsOf: URL(fileURLWithPath: "\(t.kv)/principals/restorer.json"))
        let old = t.s.file("restorer.old.cred")
        try FileManager.default.moveItem(atPath: t.cred("restorer"), toPath: old)
        try t.run("keyvault", "access", "rotate", t.kv, "--principal", "restorer", "--credential-out", t.cred("restorer"))
        XCTAssertThrowsError(try KeyVault.open(t.kv, principal: "restorer", credentialFile: old)) {
            XCTAssertTrue("\($0)".contains("not principal restorer's current credential"), "\($0)")
        }
        XCTAssertEqual(try t.open("restorer").unwrappedValue(of: try t.open("restorer").secret(name: "rsa-wrapped")), Array(Self.rsaBEK.utf8))
        try restorerSlot.write(to: URL(fileURLWithPath: "\(t.kv)/principals/restorer.json"))
        XCTAssertThrowsError(try t.open("restorer")) { XCTAssertTrue("\($0)".contains("principals/restorer.json"), "\($0)") }
    }

    /// Revoking, re-granting or rotating a principal that wrote items (keys restore does) keeps its items:
    /// they are signed again by the administrator before its key leaves the policy.
    func testRevokingOrRotatingAWriterKeepsWhatItWrote() throws {
        let t = try Setup(self)
        let byRestorer = try python(["forge-item", t.kv, t.cred("restorer")]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        try t.grant("setter", keys: "", secrets: "set")
        let bySetter = try python(["forge-item", t.kv, t.cred("setter")]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(try t.open("getter").secrets().filter { $0.name == "planted" }.count, 1, "a writer's items are accepted")
        try t.run("keyvault", "access", "revoke", t.kv, "--principal", "restorer")
        try FileManager.default.removeItem(atPath: t.cred("setter"))
        try t.run("keyvault", "access", "rotate", t.kv, "--principal", "setter", "--credential-out", t.cred("setter"))
        try FileManager.default.removeItem(atPath: t.cred("getter"))
        try t.grant("getter", keys: "get,list", secrets: "get,list")
        let listed = try t.run("keyvault", "list", t.kv, "--json")
        XCTAssertEqual((try listed.json()["secrets"] as? [Any])?.count, 4, listed.stdout)
        let getter = try t.open("getter")
        XCTAssertEqual(try getter.unwrappedValue(of: try getter.secret(name: "planted")), Array("a planted key".utf8))
        for id in [byRestorer, bySetter] {
            let file = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(t.kv)/items/\(id)"))) as? [String: Any]
            XCTAssertEqual(file?["signer"] as? String, "admin", "item \(id) signed again by the administrator")
        }
    }

    /// Administrators changing access at the same moment: every change is kept, none is lost.
    func testConcurrentChangesOfAccessAreAllKept() throws {
        let t = try Setup(self)
        let dv = Tool.diskvault
        let grants = (1...4).map { "\(dv) keyvault access grant \(t.kv) --principal p\($0) --secrets get,list --credential-out \(t.cred("p\($0)")) --passphrase-file \(t.pw) >/dev/null" }
        let r = try Tool.run("/bin/bash", ["-c", grants.map { "( \($0) ) &" }.joined(separator: "\n") + "\nfail=0; for j in $(jobs -p); do wait $j || fail=1; done; exit $fail"])
        XCTAssertEqual(r.status, 0, r.output)
        for p in ["p1", "p2", "p3", "p4", "lister", "getter", "restorer"] {
            XCTAssertEqual(try t.open(p).secrets().count, 3, p)
        }
        let revokes = ["p1", "p2", "p3"].map { "\(dv) keyvault access revoke \(t.kv) --principal \($0) --passphrase-file \(t.pw) >/dev/null" }
        let v = try Tool.run("/bin/bash", ["-c", revokes.map { "( \($0) ) &" }.joined(separator: "\n") + "\nfail=0; for j in $(jobs -p); do wait $j || fail=1; done; exit $fail"])
        XCTAssertEqual(v.status, 0, v.output)
        let access = try t.run("keyvault", "list", t.kv, "--json").json()["access"] as? [String: Any] ?? [:]
        XCTAssertEqual(Set(access.keys), ["p4", "lister", "getter", "restorer"])
        let p4 = try t.open("p4")
        XCTAssertEqual(try p4.unwrappedValue(of: try p4.secret(name: "plain")), Array(Self.plainBEK.utf8))
        let restorer = try t.open("restorer")
        XCTAssertEqual(try restorer.unwrappedValue(of: try restorer.secret(name: "rsa-wrapped")), Array(Self.rsaBEK.utf8))
    }

    /// What is not a regular file in the key vault (a FIFO, a symbolic link) is refused at once, naming it.
    func testAFIFOOrASymlinkInTheKeyVaultIsRefusedNotWaitedOn() throws {
        let t = try Setup(self)
        let fifo = "\(t.kv)/items/0123456789abcdef0123456789abcdef"
        try Tool.sh("mkfifo \(fifo)")
        let r = try Tool.run("/bin/bash", ["-c", "timeout 20 \(Tool.diskvault) keyvault list \(t.kv) --passphrase-file \(t.pw)"])
        XCTAssertEqual(r.status, 1, r.output)
        XCTAssertTrue(r.stderr.contains(fifo) && r.stderr.contains("not a regular file"), r.stderr)
        try FileManager.default.removeItem(atPath: fifo)
        try FileManager.default.moveItem(atPath: "\(t.kv)/policy.json", toPath: t.s.file("policy.json"))
        try FileManager.default.createSymbolicLink(atPath: "\(t.kv)/policy.json", withDestinationPath: t.s.file("policy.json"))
        XCTAssertThrowsError(try t.open("getter")) { XCTAssertTrue("\($0)".contains("\(t.kv)/policy.json"), "\($0)") }
    }

    /// A grant whose credential file cannot be written changes nothing: the principal's credential still works.
    func testAGrantThatCannotWriteItsCredentialChangesNothing() throws {
        let t = try Setup(self)
        let r = try t.run("keyvault", "access", "grant", t.kv, "--principal", "getter", "--secrets", "list", "--credential-out", t.cred("lister"), expect: 1)
        XCTAssertTrue(r.stderr.contains(t.cred("lister")), r.stderr)
        XCTAssertEqual(try t.open("getter").secret(name: "plain").name, "plain", "the old grant and credential stand")
    }

    /// A revoked principal puts its old policy and slot back: a writer on this host refuses to write under
    /// that policy (it would seal to keys the revoked one holds), and so does the administrator.
    func testNoOneWritesUnderAPolicyPutBackFromAnOldCopy() throws {
        let t = try Setup(self)
        try t.grant("writer", keys: "", secrets: "set,list")
        try Tool.sh("cp -a \(t.kv)/policy.json \(t.s.file("policy.old")) && cp -a \(t.kv)/principals/getter.json \(t.s.file("getter.old"))")
        try t.run("keyvault", "access", "revoke", t.kv, "--principal", "getter")
        try Tool.sh("cp -a \(t.s.file("policy.old")) \(t.kv)/policy.json && cp -a \(t.s.file("getter.old")) \(t.kv)/principals/getter.json")
        // Refused when it opens (its slot is newer than that policy) or, were it not, when it takes the write lock.
        XCTAssertThrowsError(try t.open("writer").setSecret(name: "after", value: Array("written after the rollback".utf8))) {
            XCTAssertTrue("\($0)".contains("policy.json is older than") && "\($0)".contains("old copy"), "\($0)")
        }
        let grant = try t.run("keyvault", "access", "grant", t.kv, "--principal", "z", "--secrets", "list", "--credential-out", t.cred("z"), expect: 1)
        XCTAssertTrue(grant.stderr.contains("policy.json is older than this host last saw it"), grant.stderr)
        XCTAssertFalse(try loot(t.kv, t.cred("getter")).contains("written after the rollback"))
    }

    /// A principal revoked or changed after it opened the key vault writes nothing.
    func testAWriterRevokedAfterItOpenedWritesNothing() throws {
        let t = try Setup(self)
        try t.grant("writer", keys: "", secrets: "set,list")
        let writer = try t.open("writer")
        try t.run("keyvault", "access", "revoke", t.kv, "--principal", "writer")
        XCTAssertThrowsError(try writer.setSecret(name: "late", value: Array("late".utf8))) {
            XCTAssertTrue("\($0)".contains("revoked or changed meanwhile"), "\($0)")
        }
        XCTAssertEqual(try t.open("getter").secrets().map(\.name), ["aes-wrapped", "plain", "rsa-wrapped"])
    }

    /// The principal being revoked cannot veto its revocation with an item no one can open, nor can anyone
    /// with a file in items/ that is not an item: both are moved aside and named.
    func testAnItemNoOneCanOpenDoesNotStopARevocation() throws {
        let t = try Setup(self)
        try t.grant("setter", keys: "", secrets: "set,list")
        let junk = try python(["forge-item-with-junk", t.kv, t.cred("setter")]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        try Tool.sh("mkfifo \(t.kv)/items/ffffffffffffffffffffffffffffffff")
        let revoke = try t.run("keyvault", "access", "revoke", t.kv, "--principal", "setter")
        XCTAssertTrue(revoke.stderr.contains("items/\(junk)") && revoke.stderr.contains("items/ffffffffffffffffffffffffffffffff"), revoke.stderr)
        let list = try t.run("keyvault", "list", t.kv, "--json")
        XCTAssertNil((try list.json()["access"] as? [String: Any])?["setter"], "setter is revoked")
        XCTAssertEqual(try t.open("getter").secret(name: "plain").name, "plain")
    }

    /// A secret deleted before a revocation stays deleted when its old file is put back: it predates the re-seal.
    func testAnItemFromBeforeARevocationIsRefused() throws {
        let t = try Setup(self)
        try Tool.sh("printf 'compromised' > \(t.s.file("c.bek"))")
        try t.run("keyvault", "secret", "set", t.kv, "--name", "compromised", "--file", t.s.file("c.bek"))
        let before = Set(try FileManager.default.contentsOfDirectory(atPath: "\(t.kv)/items"))
        try Tool.sh("cp -a \(t.kv)/items \(t.s.file("items.old"))")
        try t.run("keyvault", "secret", "delete", t.kv, "--name", "compromised")
        let deleted = before.subtracting(try FileManager.default.contentsOfDirectory(atPath: "\(t.kv)/items"))
        XCTAssertEqual(deleted.count, 1)
        try t.run("keyvault", "access", "revoke", t.kv, "--principal", "lister")
        try Tool.sh("cp -a \(t.s.file("items.old"))/\(deleted.first!) \(t.kv)/items/")
        let list = try t.run("keyvault", "list", t.kv, expect: 1)
        XCTAssertTrue(list.stderr.contains("items/\(deleted.first!)") && list.stderr.contains("older than the key vault's last re-seal"), list.stderr)
    }

    func testPasswdSealsTheAdministratorKeysUnderTheNewPassphrase() throws {
        let t = try Setup(self)
        try Tool.sh("printf 'a new passphrase' > \(t.s.file("new.pass"))")
        try t.run("keyvault", "passwd", t.kv, "--new-passphrase-file", t.s.file("new.pass"))
        let old = try Tool.dv("keyvault", "list", t.kv, "--passphrase-file", t.pw)
        XCTAssertEqual(old.status, 1)
        XCTAssertTrue(old.stderr.contains("wrong passphrase"), old.stderr)
        let new = try Tool.dv("keyvault", "list", t.kv, "--passphrase-file", t.s.file("new.pass"), "--json")
        XCTAssertEqual(new.status, 0, new.output)
        XCTAssertEqual((try new.json()["secrets"] as? [Any])?.count, 3)
        // Principals are not touched by it.
        XCTAssertEqual(try t.open("getter").secrets().count, 3)
    }
}
