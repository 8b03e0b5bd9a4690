import Foundation
import XCTest

/// The operator's day: one JSON contract over every command, stats, status as a monitoring check, points diff
/// and retain, the systemd units, and a failed scheduled run announced through --notify-command.
final class OperatorTests: XCTestCase {
    /// Every leaf command of the tree the parser describes (`--experimental-dump-help`), as argument paths.
    func leafCommands() throws -> [(path: [String], hasJSON: Bool)] {
        let dump = try Tool.dv("--experimental-dump-help")
        XCTAssertEqual(dump.status, 0, dump.output)
        let root = try XCTUnwrap(try dump.json()["command"] as? [String: Any])
        var out: [(path: [String], hasJSON: Bool)] = []
        func walk(_ c: [String: Any], _ path: [String]) {
            let subs = c["subcommands"] as? [[String: Any]] ?? []
            if subs.isEmpty, path.last != "help" {
                let args = c["arguments"] as? [[String: Any]] ?? []
                let json = args.contains { ($0["names"] as? [[String: Any]] ?? []).contains { $0["name"] as? String == "json" } }
                out.append((path, json))
            }
            for s in subs { walk(s, path + [s["commandName"] as? String ?? "?"]) }
        }
        walk(root, [])
        return out
    }

    /// Every option and argument has help; every leaf command has examples (its own, not its parent's); every
    /// option an example uses is one its command takes (an example that would not parse is a wrong one).
    func testEveryCommandHasHelpAndExamplesThatParse() throws {
        let dump = try Tool.dv("--experimental-dump-help")
        let root = try XCTUnwrap(try dump.json()["command"] as? [String: Any])
        func options(_ c: [String: Any]) -> Set<String> {
            Set((c["arguments"] as? [[String: Any]] ?? []).flatMap { ($0["names"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String } })
        }
        func subcommands(_ c: [String: Any]) -> [String: [String: Any]] {
            Dictionary(uniqueKeysWithValues: (c["subcommands"] as? [[String: Any]] ?? []).map { ($0["commandName"] as? String ?? "", $0) })
        }
        var examples: [(line: String, from: String)] = []
        func walk(_ c: [String: Any], _ path: [String]) {
            let name = path.joined(separator: " ")
            for a in c["arguments"] as? [[String: Any]] ?? [] where path.last != "help" {
                let names = (a["names"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
                if names.contains("help") || names.contains("version") { continue }
                XCTAssertFalse((a["abstract"] as? String ?? "").isEmpty, "\(name): \(names.first ?? a["valueName"] as? String ?? "?") has no help")
            }
            let discussion = c["discussion"] as? String ?? ""
            let subs = subcommands(c)
            if subs.isEmpty, path.last != "help" {
                XCTAssertTrue(discussion.contains("Example"), "\(name) has no examples")
            }
            for line in discussion.split(separator: "\n") {
                let t = line.trimmingCharacters(in: .whitespaces)
                if let r = t.range(of: "diskvault "), !t.hasPrefix("#"), t.hasPrefix("diskvault ") || t[..<r.lowerBound].contains("=") || t[..<r.lowerBound].hasSuffix("$(") {
                    examples.append((String(t[r.lowerBound...]), name))
                }
            }
            for (n, s) in subs { walk(s, path + [n]) }
        }
        walk(root, [])
        XCTAssertGreaterThan(examples.count, 60)
        for (line, from) in examples {
            // Up to a pipe, a redirection, && or a comment: the words of one diskvault command.
            let command = line.components(separatedBy: CharacterSet(charactersIn: "|;#>")).first!.components(separatedBy: "&&").first!
            let words = command.split(separator: " ").map(String.init).dropFirst()
            var c = root
            var rest = Array(words)
            while let next = rest.first, let sub = subcommands(c)[next] {
                c = sub
                rest.removeFirst()
            }
            if !subcommands(c).isEmpty, let list = subcommands(c)["list"] { c = list }  // a default subcommand
            let known = options(c)
            for w in rest where w.hasPrefix("--") {
                let flag = String(w.dropFirst(2).prefix { $0 != "=" })
                XCTAssertTrue(known.contains(flag), "example of \(from.isEmpty ? "diskvault" : from): \(line): --\(flag) is not an option of its command")
            }
        }
    }

    /// A new clear vault of 1 MiB chunks in the scratch space.
    func clearVault(_ s: Scratch, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let vault = s.file("vault")
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--chunk-size", "1MiB", "--encryption", "none").status, 0, file: file, line: line)
        return vault
    }

    /// Backs `image` up as disk `d`; the new point's id.
    func pointID(backup image: String, into vault: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        try XCTUnwrap(try Tool.dv("backup", image, "--vault", vault, "--disk", "d", "--json").json()["id"] as? String, file: file, line: line)
    }

    /// stdout is exactly one JSON object (a second object, a line of text or nothing all fail to parse whole).
    func oneObject(_ r: RunResult, _ what: String, file: StaticString = #filePath, line: UInt = #line) -> [String: Any]? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any] else {
            XCTFail("\(what): standard output is not one JSON object: \(r.stdout.prefix(400)) / \(r.stderr.prefix(400))", file: file, line: line)
            return nil
        }
        return object
    }

    /// Every command takes --json; run with nothing else (so each fails: no vault, a missing argument), each
    /// prints one error object whose exitStatus is the process's and whose code and message say what is wrong.
    func testEveryCommandFailsWithOneJSONErrorObject() throws {
        let s = try Scratch(self)
        let leaves = try leafCommands()
        XCTAssertGreaterThan(leaves.count, 40, "the tree: \(leaves.map { $0.path.joined(separator: " ") })")
        for leaf in leaves {
            let name = leaf.path.joined(separator: " ")
            XCTAssertTrue(leaf.hasJSON, "\(name) takes --json")
            let r = try Tool.run(Tool.diskvault, leaf.path + ["--json"], environment: ["DISKVAULT_PASSPHRASE": "", "HOME": s.path])
            XCTAssertNotEqual(r.status, 0, "\(name) with nothing to act on: \(r.output)")
            guard let object = oneObject(r, name), let error = object["error"] as? [String: Any] else {
                XCTFail("\(name): no error object: \(r.stdout)")
                continue
            }
            XCTAssertEqual(error["exitStatus"] as? Int, Int(r.status), "\(name): \(r.stdout)")
            XCTAssertFalse((error["message"] as? String ?? "").isEmpty, "\(name): \(r.stdout)")
            XCTAssertNotNil(error["code"] as? String, "\(name): \(r.stdout)")
        }
        // A failure after the command began: a vault that does not exist names the path.
        let missing = try Tool.dv("points", "--vault", s.file("nowhere"), "--json")
        XCTAssertEqual(missing.status, 1)
        let error = try XCTUnwrap(oneObject(missing, "points")?["error"] as? [String: Any])
        XCTAssertEqual(error["code"] as? String, "notFound")
        XCTAssertEqual(error["path"] as? String, s.file("nowhere"))
        // A disk image given as the vault: said in words, not as a failed system call.
        try Tool.sh("truncate -s 1M \(s.file("plain.img"))")
        let file = try Tool.dv("points", "--vault", s.file("plain.img"), "--json")
        XCTAssertEqual(file.status, 1)
        let fileError = try XCTUnwrap(oneObject(file, "points")?["error"] as? [String: Any])
        XCTAssertEqual(fileError["code"] as? String, "notAVault", file.stdout)
        XCTAssertTrue((fileError["message"] as? String ?? "").contains("it is a file"), file.stdout)
    }

    /// The day's commands on a real vault, each with --json: one object on standard output, exit 0.
    func testTheDaysCommandsPrintOneJSONObjectEach() throws {
        let s = try Scratch(self)
        let vault = s.file("vault"), image = s.file("disk.img"), kv = s.file("kv"), pass = s.file("kv.pass")
        try Tool.sh("head -c 3M /dev/urandom > \(image); truncate -s 8M \(image); printf 'admin pass' > \(pass)")
        var ran: [String] = []
        @discardableResult
        func ok(_ args: [String], environment: [String: String] = [:], file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
            let r = try Tool.dv(args + ["--json"], environment: environment)
            XCTAssertEqual(r.status, 0, "\(args.joined(separator: " ")): \(r.output)", file: file, line: line)
            ran.append(args.prefix { !$0.hasPrefix("-") }.joined(separator: " "))
            let object = oneObject(r, args.joined(separator: " "), file: file, line: line) ?? [:]
            XCTAssertNil(object["error"], "\(args.joined(separator: " ")): \(r.stdout)", file: file, line: line)
            return object
        }
        try ok(["vault", "init", vault, "--chunk-size", "1MiB", "--kdf-work-factor", "10"])
        try ok(["vault", "info", "--vault", vault])
        let first = try ok(["backup", image, "--vault", vault, "--disk", "d"])
        try Tool.sh("printf 'changed' | dd of=\(image) bs=1 seek=2097152 conv=notrunc status=none")
        let second = try ok(["backup", image, "--vault", vault, "--disk", "d"])
        let a = try XCTUnwrap(first["id"] as? String), b = try XCTUnwrap(second["id"] as? String)
        try ok(["points", "--vault", vault])
        try ok(["points", "list", "--vault", vault, "--disk", "d"])
        try ok(["points", "diff", "--vault", vault, "--disk", "d", a, b])
        try ok(["points", "retain", "--vault", vault, "--disk", "d", "--point", a, "--until", "forever"])
        try ok(["stats", "--vault", vault, "--points"])
        try ok(["verify", "--vault", vault])
        try ok(["restore", "--vault", vault, "--disk", "d", "--target", s.file("back.img")])
        try ok(["inspect", image])
        try ok(["policy", "create", "--vault", vault, "--name", "p", "--schedule", "daily 02:00", "--keep-last", "3"])
        try ok(["policy", "list", "--vault", vault])
        try ok(["policy", "show", "--vault", vault, "--name", "p"])
        try ok(["protect", "add", "--vault", vault, "--disk", "d", "--source", image, "--policy", "p"])
        try ok(["protect", "list", "--vault", vault])
        try ok(["status", "--vault", vault])
        try ok(["run-due", "--vault", vault])
        try ok(["schedule", "systemd", "--vault", vault])
        try ok(["prune", "--vault", vault, "--dry-run"])
        try ok(["gc", "--vault", vault, "--dry-run"])
        let jobs = try XCTUnwrap(try ok(["jobs", "list", "--vault", vault])["jobs"] as? [[String: Any]])
        try ok(["jobs", "show", "--vault", vault, try XCTUnwrap(jobs.last?["id"] as? String)])
        try ok(["vault", "init", s.file("copy"), "--chunk-size", "1MiB", "--kdf-work-factor", "10"])
        try ok(["copy", "--from", vault, "--to", s.file("copy"), "--disk", "d"])
        try ok(["vault", "key", "export", "--vault", vault, "--out", s.file("vault.key")])
        try ok(["protect", "remove", "--vault", vault, "--disk", "d"])
        try ok(["policy", "delete", "--vault", vault, "--name", "p"])
        try ok(["points", "forget", "--vault", vault, "--disk", "d", "--point", b])

        let admin = ["--passphrase-file", pass]
        try ok(["keyvault", "init", kv, "--kdf-work-factor", "10"] + admin)
        try ok(["keyvault", "key", "create", "--keyvault", kv, "--name", "kek", "--kind", "aes-256"] + admin)
        try Tool.sh("printf 'disk secret' > \(s.file("bek"))")
        let set = try ok(["keyvault", "secret", "set", kv, "--name", "bek", "--file", s.file("bek"), "--wrap-key", "kek"] + admin)
        XCTAssertEqual((set["result"] as? [String: Any])?["wrappedBy"] as? String, "kek", "\(set)")
        XCTAssertFalse("\(set)".contains("disk secret"), "a secret's value never appears")
        try ok(["keyvault", "secret", "get", kv, "--name", "bek", "--out", s.file("bek.out")] + admin)
        try ok(["keyvault", "access", "grant", kv, "--principal", "host1", "--secrets", "get", "--credential-out", s.file("host1.cred")] + admin)
        try ok(["keyvault", "access", "rotate", kv, "--principal", "host1", "--credential-out", s.file("host1.cred2")] + admin)
        try ok(["keyvault", "access", "revoke", kv, "--principal", "host1"] + admin)
        try ok(["keyvault", "list", kv] + admin)
        try ok(["keyvault", "list"] + admin, environment: ["DISKVAULT_KEYVAULT": kv])
        try ok(["keyvault", "secret", "delete", kv, "--name", "bek"] + admin)
        try ok(["keyvault", "key", "delete", kv, "--name", "kek"] + admin)
        XCTAssertGreaterThanOrEqual(Set(ran).count, 30, "\(Set(ran).sorted())")
    }

    /// stats and points diff against what is known: a qemu-io write of 64 KiB at 5 MiB and 2 MiB at 30 MiB
    /// changes exactly chunks 5, 30 and 31 (1 MiB chunks); the unchanged chunks are shared.
    func testPointsDiffAndStatsOfAKnownChange() throws {
        try Tool.require("qemu-io")
        let s = try Scratch(self)
        let vault = try clearVault(s), image = s.file("disk.img")
        try Tool.sh("head -c 24M /dev/urandom > \(image); truncate -s 40M \(image)")
        let a = try pointID(backup: image, into: vault)
        try Tool.sh("qemu-io -f raw -c 'write -P 0x5a 5M 64k' -c 'write -P 0x33 30M 2M' \(image) >/dev/null")
        let b = try pointID(backup: image, into: vault)
        let diff = try Tool.dv("points", "diff", "--vault", vault, "--disk", "d", a, b, "--json").json()
        XCTAssertEqual(diff["changedChunks"] as? Int, 3)
        XCTAssertEqual(diff["changedBytes"] as? Int, 3 << 20)
        let ranges = try XCTUnwrap(diff["ranges"] as? [[String: Int]])
        XCTAssertEqual(ranges, [["offset": 5 << 20, "length": 1 << 20], ["offset": 30 << 20, "length": 2 << 20]])
        let same = try Tool.dv("points", "diff", "--vault", vault, "--disk", "d", b, "latest", "--json").json()
        XCTAssertEqual(same["changedBytes"] as? Int, 0)

        let stats = try Tool.dv("stats", "--vault", vault, "--json").json()
        // 24 random chunks, then chunk 5 changed and chunks 30 and 31 (zeros before), one chunk of 0x33 twice.
        XCTAssertEqual(stats["uniqueChunks"] as? Int, 26, "\(stats)")
        XCTAssertEqual(stats["points"] as? Int, 2)
        XCTAssertEqual(stats["logicalBytes"] as? Int, 80 << 20)
        XCTAssertEqual(stats["dataBytes"] as? Int, (24 + 26) << 20, "\(stats)")
        let dedup = try XCTUnwrap(stats["dedupRatio"] as? Double)
        XCTAssertEqual(dedup, 1.92, accuracy: 0.01, "50 MiB of data in 26 MiB of unique chunks")
        let blobBytes = try Tool.sh("find \(vault)/chunks -type f -printf '%s\\n' | awk '{ t += $1 } END { print t }'")
        XCTAssertEqual(stats["storedBytes"] as? Int, Int(blobBytes.trimmingCharacters(in: .whitespacesAndNewlines)))
    }

    /// status is a monitoring check: exit 0 while every protected disk is fresh, 1 when one is overdue (too old a
    /// point, or a missed scheduled run), with the reason; --notify-command gets the status's JSON. A point
    /// retained until a date survives a prune whose rules would remove it, until that date.
    func testStatusIsAMonitoringCheckAndRetainHoldsAPoint() throws {
        let s = try Scratch(self)
        let vault = try clearVault(s), image = s.file("disk.img")
        try Tool.sh("head -c 2M /dev/urandom > \(image)")
        XCTAssertEqual(try Tool.dv("policy", "create", "--vault", vault, "--name", "p", "--schedule", "daily 02:00", "--keep-last", "1").status, 0)
        let at = { (when: String, args: [String]) throws -> RunResult in try Tool.dv(args, environment: ["DISKVAULT_NOW": when]) }
        XCTAssertEqual(try at("2026-11-01T01:00:00Z", ["protect", "add", "--vault", vault, "--disk", "d", "--source", image, "--policy", "p"]).status, 0)
        // Protected, never backed up: overdue.
        let none = try at("2026-11-01T01:30:00Z", ["status", "--vault", vault, "--json"])
        XCTAssertEqual(none.status, 1, none.output)
        XCTAssertTrue(none.stdout.contains("no recovery point yet"), none.stdout)
        let first = try at("2026-11-01T02:01:00Z", ["run-due", "--vault", vault, "--json"])
        XCTAssertEqual(first.status, 0, first.output)
        let fresh = try at("2026-11-01T12:00:00Z", ["status", "--vault", vault])
        XCTAssertEqual(fresh.status, 0, fresh.output)
        XCTAssertTrue(fresh.stdout.contains("ok"), fresh.stdout)
        // The next day's run did not happen: overdue an hour after its slot, and the notification says so.
        let notified = s.file("notified.json")
        let late = try at("2026-11-02T03:30:00Z", ["status", "--vault", vault, "--json", "--notify-command", "cat > '\(notified)'"])
        XCTAssertEqual(late.status, 1, late.output)
        let disk = try XCTUnwrap((try late.json()["disks"] as? [[String: Any]])?.first)
        XCTAssertEqual(disk["overdue"] as? Bool, true)
        XCTAssertTrue("\(disk["warnings"] ?? "")".contains("2026-11-02T02:00"), "\(disk)")
        let note = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: notified))) as? [String: Any]
        XCTAssertEqual(note?["overdue"] as? Int, 1, "\(String(describing: note))")
        // Within --grace it is not late yet; past --max-age it is.
        XCTAssertEqual(try at("2026-11-02T02:30:00Z", ["status", "--vault", vault]).status, 0)
        let old = try at("2026-11-02T02:30:00Z", ["status", "--vault", vault, "--max-age", "12h"])
        XCTAssertEqual(old.status, 1, old.output)
        XCTAssertTrue(old.stdout.contains("no successful backup in 12 h"), old.stdout)
        XCTAssertEqual(try at("2026-11-02T02:30:00Z", ["status", "--vault", vault, "--max-age", "soon"]).status, 2)

        // Retain: keep-last 1 would remove the first point once a second exists; retained, it stays until then.
        let p1 = try XCTUnwrap((try Tool.dv("points", "--vault", vault, "--json").json()["points"] as? [[String: Any]])?.first?["id"] as? String)
        let retain = try at("2026-11-02T03:00:00Z", ["points", "retain", "--vault", vault, "--disk", "d", "--point", p1, "--until", "2026-11-10"])
        XCTAssertEqual(retain.status, 0, retain.output)
        XCTAssertEqual(try at("2026-11-02T03:00:00Z", ["points", "retain", "--vault", vault, "--disk", "d", "--point", p1, "--until", "2026-10-01"]).status, 2)
        try Tool.sh("head -c 1M /dev/urandom >> \(image)")
        XCTAssertEqual(try at("2026-11-02T04:00:00Z", ["run-due", "--vault", vault]).status, 0)
        let kept = try at("2026-11-03T00:00:00Z", ["prune", "--vault", vault, "--json"])
        XCTAssertEqual(kept.status, 0, kept.output)
        XCTAssertTrue(kept.stdout.contains("retain-until 2026-11-10"), kept.stdout)
        XCTAssertEqual((try Tool.dv("points", "--vault", vault, "--json").json()["points"] as? [[String: Any]])?.count, 2)
        let gone = try at("2026-11-11T00:00:00Z", ["prune", "--vault", vault, "--json"])
        XCTAssertEqual(gone.status, 0, gone.output)
        let left = try XCTUnwrap(try Tool.dv("points", "--vault", vault, "--json").json()["points"] as? [[String: Any]])
        XCTAssertEqual(left.count, 1)
        XCTAssertNotEqual(left.first?["id"] as? String, p1)
    }

    /// protect add checks at once what a scheduled run would find hours later: a source that is not there, an
    /// encrypted disk with no key vault, a key vault whose key does not open it. A protected disk backed up on
    /// demand with no image given uses its stored source and key vault.
    func testProtectAddFailsEarlyAndAProtectedDiskBacksUpAsProtected() throws {
        try Tool.require("cryptsetup")
        let t = try EncryptedBackupTests.Setup(self)
        let image = t.s.file("luks2.img"), key = t.s.file("key")
        let uuid = try Images.luks2(image, key: key)
        let missing = try Tool.dv("protect", "add", "--vault", t.vault, "--disk", "enc", "--source", t.s.file("nowhere.img"))
        XCTAssertEqual(missing.status, 1, missing.output)
        XCTAssertTrue(missing.stderr.contains("nowhere.img"), missing.stderr)
        let noKeys = try Tool.dv("protect", "add", "--vault", t.vault, "--disk", "enc", "--source", image)
        XCTAssertEqual(noKeys.status, 2, noKeys.output)
        XCTAssertTrue(noKeys.stderr.contains("--keyvault"), noKeys.stderr)
        let noSecret = try Tool.dv(["protect", "add", "--vault", t.vault, "--disk", "enc", "--source", image] + t.asBackup)
        XCTAssertEqual(noSecret.status, 1, noSecret.output)
        XCTAssertTrue(noSecret.stderr.contains("no secret in key vault"), noSecret.stderr)
        try Tool.sh("head -c 32 /dev/urandom > \(t.s.file("wrong"))")
        try t.run("keyvault", "secret", "set", t.kv, "--name", "k", "--file", t.s.file("wrong"), "--volume", uuid)
        let wrong = try Tool.dv(["protect", "add", "--vault", t.vault, "--disk", "enc", "--source", image] + t.asBackup)
        XCTAssertEqual(wrong.status, 1, wrong.output)
        XCTAssertTrue(wrong.stderr.contains("does not open"), wrong.stderr)
        XCTAssertEqual((try Tool.dv("protect", "list", "--vault", t.vault, "--json").json()["disks"] as? [Any])?.count, 0, "nothing protected")

        try t.run("keyvault", "secret", "set", t.kv, "--name", "k", "--file", key, "--volume", uuid)
        let ok = try Tool.dv(["protect", "add", "--vault", t.vault, "--disk", "enc", "--source", image] + t.asBackup)
        XCTAssertEqual(ok.status, 0, ok.output)
        XCTAssertTrue(ok.stdout.contains("keys checked"), ok.stdout)
        // On demand, no image, no key-vault flags: the protection's source and key vault.
        let b = try Tool.dv("backup", "--vault", t.vault, "--disk", "enc", "--json")
        XCTAssertEqual(b.status, 0, b.output)
        let manifest = try b.json()
        XCTAssertEqual(manifest["trigger"] as? String, "on-demand")
        XCTAssertEqual((manifest["source"] as? [String: Any])?["path"] as? String, image)
        XCTAssertNotNil(manifest["keyBackup"], "the keys were backed up through the stored key vault: \(manifest)")
        // The image given by hand, no key-vault flags: the protection's key vault still gives the keys.
        let byHand = try Tool.dv("backup", image, "--vault", t.vault, "--disk", "enc", "--json")
        XCTAssertEqual(byHand.status, 0, byHand.output)
        XCTAssertNotNil(try byHand.json()["keyBackup"], byHand.stdout)
        let unprotected = try Tool.dv("backup", "--vault", t.vault, "--disk", "other")
        XCTAssertEqual(unprotected.status, 2)
        XCTAssertTrue(unprotected.stderr.contains("protect add"), unprotected.stderr)
    }

    /// `echo s3cret > f` stores a newline: with --check IMAGE the key is tried on the header first, the error
    /// names the newline and --strip-newline, and nothing is stored; with --strip-newline it fits and is stored.
    /// The same hint comes from a backup whose stored key has the newline.
    func testASecretIsCheckedAgainstItsDiskBeforeItIsStored() throws {
        try Tool.require("cryptsetup")
        let t = try EncryptedBackupTests.Setup(self)
        let image = t.s.file("luks.img"), pass = t.s.file("pass"), echoed = t.s.file("echoed")
        try Tool.sh("""
            printf s3cret > \(pass); echo s3cret > \(echoed); truncate -s 20M \(image)
            cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file \(pass) \(image)
            """)
        let uuid = try Tool.sh("cryptsetup luksUUID \(image)").trimmingCharacters(in: .whitespacesAndNewlines)
        let bad = try t.run("keyvault", "secret", "set", t.kv, "--name", "p", "--file", echoed, "--volume", uuid, "--check", image, expect: 1)
        XCTAssertTrue(bad.stderr.contains("newline") && bad.stderr.contains("--strip-newline") && bad.stderr.contains(image), bad.stderr)
        XCTAssertFalse(try t.run("keyvault", "list", t.kv).stdout.contains("secret  p"), "nothing was stored")
        let good = try t.run("keyvault", "secret", "set", t.kv, "--name", "p", "--file", echoed, "--volume", uuid, "--check", image, "--strip-newline")
        XCTAssertTrue(good.stderr.contains("the key opens"), good.stderr)
        _ = try t.backup(image, disk: "enc")
        // Stored with the newline (no check): the backup refuses and says why.
        try t.run("keyvault", "secret", "set", t.kv, "--name", "p", "--file", echoed, "--volume", uuid)
        let refused = try t.backup(image, disk: "enc", expect: 1)
        XCTAssertTrue(refused.stderr.contains("ends with a newline"), refused.stderr)
    }

    /// A scheduled run that fails runs --notify-command (and the policy's) with the run's JSON; job records
    /// older than --older-than go with jobs prune; a usage error leaves no job record.
    func testAFailedRunNotifiesAndJobRecordsArePruned() throws {
        let s = try Scratch(self)
        let vault = s.file("vault"), image = s.file("disk.img"), fromFlag = s.file("flag.json"), fromPolicy = s.file("policy.json")
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--chunk-size", "1MiB", "--encryption", "none").status, 0)
        try Tool.sh("head -c 2M /dev/urandom > \(image)")
        XCTAssertEqual(try Tool.dv("policy", "create", "--vault", vault, "--name", "p", "--schedule", "daily 02:00", "--keep-last", "3",
                                   "--notify-command", "cat > '\(fromPolicy)'").status, 0)
        let at = { (when: String, args: [String]) throws -> RunResult in try Tool.dv(args, environment: ["DISKVAULT_NOW": when]) }
        XCTAssertEqual(try at("2026-11-01T01:00:00Z", ["protect", "add", "--vault", vault, "--disk", "d", "--source", image, "--policy", "p"]).status, 0)
        try FileManager.default.removeItem(atPath: image)
        let run = try at("2026-11-01T02:05:00Z", ["run-due", "--vault", vault, "--notify-command", "cat > '\(fromFlag)'"])
        XCTAssertEqual(run.status, 1, run.output)
        for file in [fromFlag, fromPolicy] {
            let note = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: file))) as? [String: Any]
            XCTAssertEqual(note?["disk"] as? String, "d", file)
            XCTAssertEqual(note?["outcome"] as? String, "failed", file)
            XCTAssertTrue((note?["error"] as? String ?? "").contains("disk.img"), "\(String(describing: note))")
        }
        // A typo is not a job.
        let before = try XCTUnwrap(try Tool.dv("jobs", "--vault", vault, "--json").json()["jobs"] as? [[String: Any]]).count
        XCTAssertEqual(try Tool.dv("backup", image, "--vault", vault, "--disk", "d", "--threads", "0").status, 2)
        XCTAssertEqual(try Tool.dv("points", "retain", "--vault", vault, "--disk", "d", "--point", "latest", "--until", "soon").status, 2)
        XCTAssertEqual(try XCTUnwrap(try Tool.dv("jobs", "--vault", vault, "--json").json()["jobs"] as? [[String: Any]]).count, before)
        XCTAssertGreaterThan(before, 0)
        let dry = try at("2027-06-01T00:00:00Z", ["jobs", "prune", "--vault", vault, "--dry-run", "--json"])
        XCTAssertEqual(((try dry.json()["result"] as? [String: Any])?["removed"] as? [String])?.count, before, dry.output)
        XCTAssertEqual(try at("2026-11-02T00:00:00Z", ["jobs", "prune", "--vault", vault]).stdout, "removed 0 job records older than 90d\n")
        XCTAssertEqual(try at("2027-06-01T00:00:00Z", ["jobs", "prune", "--vault", vault, "--older-than", "30d"]).status, 0)
        XCTAssertEqual(try XCTUnwrap(try Tool.dv("jobs", "--vault", vault, "--json").json()["jobs"] as? [[String: Any]]).count, 0)
    }

    /// The progress line under tmux at 40 and 160 columns: while a slowed backup runs, every capture of the pane
    /// shows it on one line no wider than the pane; when the backup ends it is gone.
    func testTheProgressLineFitsTheTerminalAndIsClearedAtTheEnd() throws {
        try Tool.require("tmux", "strace")
        let s = try Scratch(self)
        let vault = try clearVault(s), image = s.file("disk.img")
        try Tool.sh("seq 1 9999999 | head -c 24M > \(image)")  // text: no warning that it looks encrypted
        for width in [40, 160] {
            let session = "dv-progress-\(getpid())-\(width)", done = s.file("done-\(width)")
            // Each read of the image slowed by 60 ms: 24 chunks, about a second and a half of progress.
            let command = "strace -f -o /dev/null -e trace=pread64 -e inject=pread64:delay_enter=60000 \(Tool.diskvault) backup \(image) --vault \(vault) --disk d\(width) --threads 1 >/dev/null; touch \(done); sleep 30"
            // tmux's server keeps every descriptor it inherits, and one that Foundation watches (the pipes of a
            // run, the descriptor that tells it a child has ended) would make this wait as long as the server
            // lives: every descriptor above 2 is closed first.
            let started = try Tool.run("/bin/bash", ["-c", "for fd in $(ls /proc/$$/fd); do [ $fd -gt 2 ] && eval \"exec $fd>&-\"; done; exec tmux \"$@\" </dev/null >/dev/null 2>&1",
                                                     "tmux", "-L", session, "new-session", "-d", "-s", session, "-x", "\(width)", "-y", "20", command])
            XCTAssertEqual(started.status, 0, started.output)
            defer { _ = try? Tool.run("tmux", ["-L", session, "kill-server"]) }
            var sawProgress = false, sawFull = false, last = ""
            let deadline = Date().addingTimeInterval(60)
            while !FileManager.default.fileExists(atPath: done), Date() < deadline {
                let pane = try Tool.sh("tmux -L \(session) capture-pane -p -t \(session)")
                last = pane
                let lines = pane.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.isEmpty }
                let progress = lines.filter { $0.contains("backup d\(width)") }
                XCTAssertLessThanOrEqual(progress.count, 1, "one line at \(width) columns: \(pane)")
                XCTAssertLessThanOrEqual(lines.count, 1, "nothing wraps at \(width) columns: \(pane)")
                for l in lines { XCTAssertLessThan(l.count, width, "\(width) columns: \(l)") }
                if !progress.isEmpty { sawProgress = true }
                if progress.contains(where: { $0.contains("%") && $0.contains("ETA") && $0.contains("new ") && $0.contains("stored ") }) { sawFull = true }
                usleep(100_000)
            }
            XCTAssertTrue(FileManager.default.fileExists(atPath: done), "the backup ended")
            XCTAssertTrue(sawProgress, "a progress line was drawn at \(width) columns: \(last)")
            usleep(200_000)
            let after = try Tool.sh("tmux -L \(session) capture-pane -p -t \(session)")
            XCTAssertFalse(after.contains("backup d\(width)"), "cleared at the end: \(after)")
            if width == 160 { XCTAssertTrue(sawFull, "at 160 columns: percent, ETA, new and stored bytes") }
        }
    }

    /// Attacks on the new commands: `points retain` killed at each rename leaves the point whole (its old
    /// retain-until or its new one, never a broken manifest); `points diff` of an index edited by hand is an error
    /// naming the point, never a crash or a wrong answer; a job record of garbage or of 2 MiB does not stop
    /// `jobs prune`, `status` or `jobs`.
    func testRetainKilledMidwayDiffOfAnEditedIndexAndHostileJobRecords() throws {
        try Tool.require("strace")
        let s = try Scratch(self)
        let vault = try clearVault(s), image = s.file("disk.img")
        try Tool.sh("head -c 3M /dev/urandom > \(image)")
        let a = try pointID(backup: image, into: vault)
        try Tool.sh("head -c 1M /dev/urandom >> \(image)")
        let b = try pointID(backup: image, into: vault)
        for n in 1...3 {
            let killed = try Tool.run("strace", ["-f", "-o", "/dev/null", "-e", "trace=rename,renameat,renameat2", "-e", "inject=rename,renameat,renameat2:signal=SIGKILL:when=\(n)",
                                                 Tool.diskvault, "points", "retain", "--vault", vault, "--disk", "d", "--point", a, "--until", "forever"])
            let points = try Tool.dv("points", "--vault", vault, "--json")
            XCTAssertEqual(points.status, 0, "\(n): \(killed.output) / \(points.output)")
            let first = try XCTUnwrap((try points.json()["points"] as? [[String: Any]])?.first { $0["id"] as? String == a }, "point \(a) is whole after a kill at rename \(n)")
            XCTAssertTrue(first["retainUntil"] == nil || first["retainUntil"] as? String == "9999-12-31T23:59:59.000Z", "\(first)")
        }
        XCTAssertEqual(try Tool.dv("verify", "--vault", vault).status, 0)
        // What a kill before the rename left (the replace's hidden temporary) never keeps the point from going.
        let forget = try Tool.dv("points", "forget", "--vault", vault, "--disk", "d", "--point", a)
        XCTAssertEqual(forget.status, 0, forget.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(vault)/disks/d/points/\(a)"), "the point's folder is gone")

        try Tool.sh("head -c 1M /dev/urandom >> \(image)")
        let c = try pointID(backup: image, into: vault)
        let index = "\(vault)/disks/d/points/\(c)/index"
        try Tool.sh("printf 'XXXXXXXX' | dd of=\(index) bs=1 seek=40 conv=notrunc status=none")
        let diff = try Tool.dv("points", "diff", "--vault", vault, "--disk", "d", b, c, "--json")
        XCTAssertEqual(diff.status, 1, diff.output)
        XCTAssertTrue("\(try diff.json())".contains(c), diff.stdout)

        try Tool.sh("printf 'not json' > \(vault)/jobs/garbage.json; head -c 2M /dev/zero | tr '\\0' 'x' > \(vault)/jobs/huge.json")
        XCTAssertEqual(try Tool.dv("jobs", "--vault", vault, "--json").status, 0)
        XCTAssertEqual(try Tool.dv("status", "--vault", vault, "--json").status, 0)
        XCTAssertEqual(try Tool.dv("jobs", "prune", "--vault", vault, "--older-than", "1s", "--json").status, 0)
    }
}
