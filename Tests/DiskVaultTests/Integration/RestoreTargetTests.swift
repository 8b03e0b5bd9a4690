import Foundation
import XCTest

/// Where a restore may write, what it leaves beside the target, and the disk on standard output.
final class RestoreTargetTests: XCTestCase {
    /// A vault with one point of a 6 MiB disk in 64 KiB chunks: random data, a run of zeros, text.
    func makePoint(_ s: Scratch) throws -> (vault: String, image: String) {
        let vault = s.file("vault"), image = s.file("disk.img")
        try Tool.sh("""
            head -c 3M /dev/urandom > \(image)
            head -c 1M /dev/zero >> \(image)
            yes 'a line of text on the disk' | head -c 2M >> \(image)
            """)
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--chunk-size", "64KiB", "--kdf-work-factor", "10").status, 0)
        let b = try Tool.dv("backup", image, "--vault", vault, "--disk", "d")
        XCTAssertEqual(b.status, 0, b.output)
        return (vault, image)
    }

    /// A scratch path as the kernel names the working directory (no doubled slash).
    func canonical(_ path: String) -> String { path.replacingOccurrences(of: "//", with: "/") }

    func kind(_ path: String) throws -> String {
        try Tool.sh("stat -c %F \(path)").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A character device, a symbolic link to one, a FIFO, a socket and a directory are each refused, with and
    /// without --replace, and left as they were, with nothing beside them. (Block devices are targets of their
    /// own: BlockDeviceRestoreTests.)
    func testRestoreRefusesEveryTargetThatIsNotARegularFileOrANewPath() throws {
        let s = try Scratch(self)
        let (vault, _) = try makePoint(s)
        var targets = ["/dev/null"]
        let fifo = s.file("fifo"), socket = s.file("socket"), dir = s.file("adir")
        try Tool.sh("""
            mkfifo \(fifo); mkdir \(dir)
            ln -s /dev/null \(s.file("link-to-null"))
            python3 -c "import socket; socket.socket(socket.AF_UNIX).bind('\(socket)')"
            """)
        targets += [s.file("link-to-null"), fifo, socket, dir]
        for target in targets {
            let before = try kind(target)
            for replace in [false, true] {
                let r = try Tool.dv("restore", "--vault", vault, "--disk", "d", "--target", target, replace ? "--replace" : "--json")
                XCTAssertEqual(r.status, 1, "\(target) replace=\(replace): \(r.output)")
                XCTAssertTrue(r.stderr.contains(target) && r.stderr.contains("regular file"), r.stderr)
                XCTAssertEqual(try kind(target), before, "\(target) is left as it was")
                for suffix in [".attach.json", ".libvirt.xml", ".qemu-args"] {
                    XCTAssertFalse(FileManager.default.fileExists(atPath: target + suffix), "nothing beside \(target)")
                }
                let parent = (target as NSString).deletingLastPathComponent
                let temporaries = ((try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? []).filter { $0.contains("diskvault-restore") }
                XCTAssertEqual(temporaries, [], "no temporary disk beside \(target)")
            }
        }
    }

    /// `--target -` writes exactly the disk to standard output, into a file and through a pipe; nothing else on
    /// standard output, no re-attach files, the summary on standard error; `--json` with it is a usage error;
    /// a damaged chunk stops the stream and is named.
    func testRestoreToStandardOutputIsTheWholeDiskCheckedChunkByChunk() throws {
        let s = try Scratch(self)
        let (vault, image) = try makePoint(s)
        let before = Set(try FileManager.default.contentsOfDirectory(atPath: s.path))
        let redirected = try Tool.run("/bin/bash", ["-c", "cd \(s.path) && \(Tool.diskvault) restore --vault \(vault) --disk d --target - > \(s.file("out.img"))"])
        XCTAssertEqual(redirected.status, 0, redirected.output)
        XCTAssertTrue(redirected.stderr.contains("standard output"), redirected.stderr)
        XCTAssertTrue(try fileBytesEqual(image, s.file("out.img")))
        let piped = try Tool.run("/bin/bash", ["-c", "set -o pipefail; cd \(s.path) && \(Tool.diskvault) restore --vault \(vault) --disk d --target - --threads 3 | dd of=\(s.file("piped.img")) bs=1M iflag=fullblock status=none"])
        XCTAssertEqual(piped.status, 0, piped.output)
        XCTAssertTrue(try fileBytesEqual(image, s.file("piped.img")))
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: s.path)), before.union(["out.img", "piped.img"]),
                       "no file named - and no re-attach files")

        let json = try Tool.dv("restore", "--vault", vault, "--disk", "d", "--target", "-", "--json")
        XCTAssertEqual(json.status, 2, json.output)
        // The disk would go to standard output: refused before a byte of it, with the JSON contract's error object.
        XCTAssertEqual((try json.json()["error"] as? [String: Any])?["code"] as? String, "usage", json.stdout)

        let blob = try XCTUnwrap(treeListing("\(vault)/chunks").filter { $0.count == 64 }.sorted().first)
        try Tool.sh("printf 'XXXX' | dd of=\(vault)/chunks/\(blob) bs=1 seek=100 conv=notrunc status=none")
        let damaged = try Tool.run("/bin/bash", ["-c", "\(Tool.diskvault) restore --vault \(vault) --disk d --target - > \(s.file("damaged.img"))"])
        XCTAssertEqual(damaged.status, 1, damaged.output)
        XCTAssertTrue(damaged.stderr.contains(blob), damaged.stderr)
    }

    /// A restore killed mid-way (SIGKILL at its fifth data write) leaves its temporary disk; the next restore to
    /// that target removes it and says so. A temporary disk whose maker lives, or whose maker cannot be told,
    /// is left alone.
    func testKilledRestoreLeavesATemporaryDiskTheNextRestoreRemoves() throws {
        try Tool.require("strace")
        let s = try Scratch(self)
        let (vault, image) = try makePoint(s)
        let target = s.file("r.img")
        let killed = try Tool.run("/bin/bash", ["-c", "strace -f -o /dev/null -e inject=pwrite64:signal=SIGKILL:when=5 \(Tool.diskvault) restore --vault \(vault) --disk d --target \(target) --threads 1"])
        XCTAssertNotEqual(killed.status, 0, killed.output)
        func temporaries() throws -> [String] {
            try FileManager.default.contentsOfDirectory(atPath: s.path).filter { $0.hasPrefix(".r.img.diskvault-restore-") }.sorted()
        }
        let left = try temporaries()
        XCTAssertEqual(left.count, 1, "the killed restore left its temporary disk: \(left)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: target))

        // One of a live process (this test's), and one without a maker in its name (an older build's).
        let host = try Tool.sh("hostname | tr -d '\\n' | sha256sum | cut -c1-8").trimmingCharacters(in: .whitespacesAndNewlines)
        let stat = try String(contentsOfFile: "/proc/self/stat", encoding: .utf8)
        let ticks = stat[stat.range(of: ")", options: .backwards)!.upperBound...].split(separator: " ")[19]
        let live = ".r.img.diskvault-restore-\(host)-\(getpid())-\(ticks)-abcd", unknown = ".r.img.diskvault-restore-1a2b3c4d"
        try Tool.sh("touch \(s.file(live)) \(s.file(unknown))")

        let again = try Tool.dv("restore", "--vault", vault, "--disk", "d", "--target", target)
        XCTAssertEqual(again.status, 0, again.output)
        XCTAssertTrue(again.stderr.contains("warning") && again.stderr.contains(left[0]), again.stderr)
        XCTAssertEqual(try temporaries(), [unknown, live].sorted(), "only the dead restore's temporary disk went")
        XCTAssertTrue(try fileBytesEqual(image, target))
    }

    /// Existing re-attach files refuse a restore without --replace before the disk is written; with --replace
    /// they are replaced; one that is not a regular file refuses even with --replace, before the disk is written.
    func testExistingReattachFilesAreCheckedBeforeAnythingIsWritten() throws {
        let s = try Scratch(self)
        let (vault, image) = try makePoint(s)
        let target = s.file("r.img"), xml = s.file("r.img.libvirt.xml")
        try Tool.sh("echo precious > \(xml)")
        let refused = try Tool.dv("restore", "--vault", vault, "--disk", "d", "--target", target)
        XCTAssertEqual(refused.status, 1, refused.output)
        XCTAssertTrue(refused.stderr.contains(xml) && refused.stderr.contains("--replace"), refused.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: target), "no disk written")
        XCTAssertFalse(FileManager.default.fileExists(atPath: target + ".attach.json"))
        XCTAssertEqual(try String(contentsOfFile: xml, encoding: .utf8), "precious\n")

        let replaced = try Tool.dv("restore", "--vault", vault, "--disk", "d", "--target", target, "--replace")
        XCTAssertEqual(replaced.status, 0, replaced.output)
        XCTAssertTrue(try fileBytesEqual(image, target))
        XCTAssertTrue(try String(contentsOfFile: xml, encoding: .utf8).contains("<disk type='file'"))

        let other = s.file("o.img")
        try FileManager.default.createDirectory(atPath: other + ".qemu-args", withIntermediateDirectories: false)
        let blocked = try Tool.dv("restore", "--vault", vault, "--disk", "d", "--target", other, "--replace")
        XCTAssertEqual(blocked.status, 1, blocked.output)
        XCTAssertTrue(blocked.stderr.contains(other + ".qemu-args"), blocked.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: other), "no disk left behind a failure")
    }

    /// With umask 000, everything a vault and a key vault are made of is private (files 0600, folders 0700),
    /// and so is a restored disk, whatever its source's mode.
    func testVaultKeyVaultAndRestoredDiskArePrivateWhateverTheUmask() throws {
        let s = try Scratch(self)
        let image = s.file("disk.img"), vault = s.file("vault"), kv = s.file("kv"), pw = s.file("pw")
        try Tool.sh("""
            head -c 2M /dev/urandom > \(image); chmod 644 \(image); printf 'a passphrase' > \(pw)
            umask 000
            dv=\(Tool.diskvault)
            $dv vault init \(vault) --chunk-size 64KiB --kdf-work-factor 10 >/dev/null
            $dv backup \(image) --vault \(vault) --disk d >/dev/null
            $dv policy create --vault \(vault) --name nightly --schedule 'daily 02:00' --keep-last 2 >/dev/null
            $dv keyvault init \(kv) --passphrase-file \(pw) --kdf-work-factor 10 >/dev/null
            $dv keyvault key create \(kv) --name kek --kind aes-256 --passphrase-file \(pw) >/dev/null
            $dv keyvault secret set \(kv) --name s --file \(pw) --wrap-key kek --passphrase-file \(pw) >/dev/null
            $dv keyvault access grant \(kv) --principal p --keys get,list --secrets get,list --credential-out \(s.file("p.cred")) --passphrase-file \(pw) >/dev/null
            $dv restore --vault \(vault) --disk d --target \(s.file("r.img")) >/dev/null
            """)
        for root in [vault, kv] {
            let listing = try Tool.sh("find \(root) -printf '%y %m %p\\n'").split(separator: "\n")
            XCTAssertGreaterThan(listing.count, 8, "\(root) holds something to check")
            for line in listing {
                let f = line.split(separator: " ", maxSplits: 2)
                XCTAssertEqual(String(f[1]), f[0] == "d" ? "700" : "600", String(line))
            }
        }
        XCTAssertEqual(try Tool.sh("stat -c %a \(s.file("r.img"))"), "600\n")
        XCTAssertTrue(try fileBytesEqual(image, s.file("r.img")))
    }

    /// Relative paths given on the command line are recorded absolute: the image in the manifest, the disk in the
    /// re-attach files.
    func testRecordedPathsAreAbsolute() throws {
        let s = try Scratch(self)
        try Tool.sh("head -c 1M /dev/urandom > \(s.file("disk.img"))")
        let cd = "cd \(s.path) && \(Tool.diskvault)"
        let b = try Tool.run("/bin/bash", ["-c", "\(cd) vault init vault --chunk-size 64KiB --kdf-work-factor 10 >/dev/null && \(cd) backup ./disk.img --vault vault --disk d --json"])
        XCTAssertEqual(b.status, 0, b.output)
        XCTAssertEqual((try b.json()["source"] as? [String: Any])?["path"] as? String, canonical(s.file("disk.img")))
        let r = try Tool.run("/bin/bash", ["-c", "\(cd) restore --vault vault --disk d --target r.img"])
        XCTAssertEqual(r.status, 0, r.output)
        let attach = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: s.file("r.img.attach.json")))) as? [String: Any]
        XCTAssertEqual(attach?["image"] as? String, canonical(s.file("r.img")))
        XCTAssertTrue(try String(contentsOfFile: s.file("r.img.libvirt.xml"), encoding: .utf8).contains("file='\(canonical(s.file("r.img")))'"))
        XCTAssertTrue(try String(contentsOfFile: s.file("r.img.qemu-args"), encoding: .utf8).contains("filename=\(canonical(s.file("r.img"))) "))
    }

    /// An encrypted point streams only with its key vault, like any restore; with it, the stream is the disk.
    /// Its key backup and re-attach files name the key vault by its absolute path, given relative.
    func testEncryptedPointToStandardOutputNeedsItsKeyVault() throws {
        try Tool.require("qemu-img", "cryptsetup")
        let t = try EncryptedBackupTests.Setup(self)
        let plain = t.s.file("plain.img"), luks = t.s.file("luks.img")
        try Images.ext4(plain, megabytes: 16, scratch: t.s)
        try Images.luks1(from: plain, to: luks)
        let uuid = try Tool.sh("cryptsetup luksUUID \(luks)").trimmingCharacters(in: .whitespacesAndNewlines)
        try Tool.sh("printf '%s' '\(Images.passphrase)' > \(t.s.file("bek"))")
        try t.run("keyvault", "secret", "set", t.kv, "--name", "web-disk", "--file", t.s.file("bek"), "--volume", uuid)
        let relative = "--keyvault kv --principal backup --credential backup.cred"
        let b = try Tool.run("/bin/bash", ["-c", "cd \(t.s.path) && \(Tool.diskvault) backup luks.img --vault vault --disk web --json \(relative)"])
        XCTAssertEqual(b.status, 0, b.output)
        XCTAssertEqual((try b.json()["keyBackup"] as? [String: Any])?["keyVault"] as? String, canonical(t.kv))

        let refused = try Tool.run("/bin/bash", ["-c", "\(Tool.diskvault) restore --vault \(t.vault) --disk web --target - > \(t.s.file("no.img"))"])
        XCTAssertEqual(refused.status, 2, refused.output)
        XCTAssertTrue(refused.stderr.contains("--keyvault"), refused.stderr)
        XCTAssertEqual(try allocatedBytes(t.s.file("no.img")), 0, "nothing streamed")

        let access = "--keyvault kv --principal restorer --credential restore.cred"
        let streamed = try Tool.run("/bin/bash", ["-c", "set -o pipefail; cd \(t.s.path) && \(Tool.diskvault) restore --vault vault --disk web --target - \(access) | cat > out.img"])
        XCTAssertEqual(streamed.status, 0, streamed.output)
        XCTAssertTrue(try fileBytesEqual(luks, t.s.file("out.img")))

        let file = try Tool.run("/bin/bash", ["-c", "cd \(t.s.path) && \(Tool.diskvault) restore --vault vault --disk web --target r.img \(access)"])
        XCTAssertEqual(file.status, 0, file.output)
        let attach = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: t.s.file("r.img.attach.json")))) as? [String: Any]
        XCTAssertEqual(attach?["image"] as? String, canonical(t.s.file("r.img")))
        XCTAssertEqual((attach?["volumes"] as? [[String: Any]])?.first?["keyVault"] as? String, canonical(t.kv))
    }
}
