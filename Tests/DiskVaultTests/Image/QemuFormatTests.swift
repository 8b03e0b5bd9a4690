import Foundation
import XCTest

/// qcow2 images made by qemu-img from a real ext4 file system, overlays changed by qemu-io, NBD exports served
/// by qemu-nbd: read as a VM sees them, judged by qemu-img.
final class QemuFormatTests: XCTestCase {
    private func stats(_ r: RunResult) throws -> [String: Any] { try XCTUnwrap(try r.json()["stats"] as? [String: Any]) }
    private func source(_ r: RunResult) throws -> [String: Any] { try XCTUnwrap(try r.json()["source"] as? [String: Any]) }

    /// Bytes of the image's virtual disk that qemu reports as data (not holes, not zero clusters).
    private func dataBytes(_ image: String) throws -> Int {
        let map = try Tool.sh("qemu-img map --output=json \(image)")
        let extents = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(map.utf8)) as? [[String: Any]])
        return extents.filter { ($0["data"] as? Bool) == true && ($0["zero"] as? Bool) != true }.reduce(0) { $0 + ($1["length"] as? Int ?? 0) }
    }

    func testQcow2AndItsOverlayAreReadAsTheVMSeesThem() throws {
        try Tool.require("qemu-img", "qemu-io", "qemu-nbd", "mkfs.ext4")
        let s = try Scratch(self)
        let plain = s.file("fs.raw"), base = s.file("base.qcow2"), top = s.file("top.qcow2"), vault = s.file("vault")
        try Images.ext4(plain, megabytes: 32, scratch: s)
        try Tool.sh("qemu-img convert -O qcow2 \(plain) \(base)")
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--chunk-size", "1MiB", "--kdf-work-factor", "10").status, 0)

        let b = try Tool.dv("backup", base, "--vault", vault, "--disk", "base", "--json")
        XCTAssertEqual(b.status, 0, b.output)
        let src = try source(b)
        XCTAssertEqual(src["format"] as? String, "qcow2")
        XCTAssertEqual(src["size"] as? Int, 32 << 20, "the disk's virtual size, not the container's")
        XCTAssertEqual((src["chain"] as? [[String: Any]])?.count, 1)
        // Only what qemu reports as data is read: the rest of each chunk is known to be zero.
        let read = try XCTUnwrap(try stats(b)["readBytes"] as? Int)
        XCTAssertEqual(read, try dataBytes(base))
        XCTAssertLessThan(read, 32 << 20)

        // Restore: the raw disk qemu-img converts the image to, byte for byte, and a raw re-attach.
        XCTAssertEqual(try Tool.dv("restore", "--vault", vault, "--disk", "base", "--target", s.file("r.raw")).status, 0)
        XCTAssertTrue(try fileBytesEqual(s.file("r.raw"), plain))
        XCTAssertTrue(try String(contentsOfFile: s.file("r.raw.libvirt.xml"), encoding: .utf8).contains("type='raw'"))

        // The raw conversion of the same disk stores no new chunk.
        let raw = try Tool.dv("backup", plain, "--vault", vault, "--disk", "raw", "--json")
        XCTAssertEqual(raw.status, 0, raw.output)
        XCTAssertEqual(try stats(raw)["newChunks"] as? Int, 0, raw.stdout)

        // An overlay with changes written through qemu: read with its backing file, recorded as a chain.
        try Tool.sh("qemu-img create -q -f qcow2 -b \(base) -F qcow2 \(top)")
        try Tool.sh("qemu-io -c 'write -P 0x5a 3M 2M' -c 'write -z 10M 1M' \(top) >/dev/null")
        let o = try Tool.dv("backup", top, "--vault", vault, "--disk", "top", "--json")
        XCTAssertEqual(o.status, 0, o.output)
        let chain = try XCTUnwrap(try source(o)["chain"] as? [[String: Any]])
        XCTAssertEqual(chain.map { $0["path"] as? String }, [top, base])
        XCTAssertLessThanOrEqual(try stats(o)["newChunks"] as? Int ?? 99, 3, "only the chunks the overlay changed are new")
        XCTAssertEqual(try Tool.dv("restore", "--vault", vault, "--disk", "top", "--target", s.file("top.raw")).status, 0)
        try Tool.sh("qemu-img convert -O raw \(top) \(s.file("top.expected"))")
        XCTAssertTrue(try fileBytesEqual(s.file("top.raw"), s.file("top.expected")))
        try Tool.sh("qemu-img compare -f raw -F qcow2 \(s.file("top.raw")) \(top)")

        // Restored as a qcow2 the host uses: qemu agrees it is the same disk; zero chunks stay unallocated.
        let q = try Tool.dv("restore", "--vault", vault, "--disk", "top", "--target", s.file("r.qcow2"), "--format", "qcow2", "--json")
        XCTAssertEqual(q.status, 0, q.output)
        XCTAssertEqual(try q.json()["format"] as? String, "qcow2")
        try Tool.sh("qemu-img compare -f qcow2 -F qcow2 \(s.file("r.qcow2")) \(top)")
        let info = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try Tool.sh("qemu-img info --output=json \(s.file("r.qcow2"))").utf8)) as? [String: Any])
        XCTAssertEqual(info["format"] as? String, "qcow2")
        XCTAssertEqual(info["virtual-size"] as? Int, 32 << 20)
        let written = try XCTUnwrap(try q.json()["writtenBytes"] as? Int)
        XCTAssertLessThan(written, 32 << 20)
        XCTAssertLessThanOrEqual(try dataBytes(s.file("r.qcow2")), written, "zero chunks are never written: they stay unallocated")
        XCTAssertEqual(try FileManager.default.attributesOfItem(atPath: s.file("r.qcow2"))[.posixPermissions] as? Int, 0o600)
        let qxml = try String(contentsOfFile: s.file("r.qcow2.libvirt.xml"), encoding: .utf8)
        XCTAssertTrue(qxml.contains("type='qcow2'"), qxml)
        XCTAssertTrue(try String(contentsOfFile: s.file("r.qcow2.qemu-args"), encoding: .utf8).contains("driver=qcow2"))
        XCTAssertEqual(try Tool.dv("restore", "--vault", vault, "--disk", "top", "--target", s.file("x.vmdk"), "--format", "vmdk").status, 2)
        XCTAssertFalse(FileManager.default.fileExists(atPath: s.file("x.vmdk")))

        // An export someone else serves, named by its URI: the same disk, the same chunks.
        let sock = s.file("nbd.sock")
        let server = try Tool.start(["--read-only", "--format=qcow2", "--socket=\(sock)", "--persistent", top], executable: "qemu-nbd")
        defer { server.terminate(); server.waitUntilExit() }
        waitUntilExists(sock, seconds: 10)
        let n = try Tool.dv("backup", "--source", "nbd+unix:///?socket=\(sock)", "--vault", vault, "--disk", "nbd", "--json")
        XCTAssertEqual(n.status, 0, n.output)
        XCTAssertEqual(try source(n)["kind"] as? String, "nbd")
        XCTAssertEqual(try stats(n)["newChunks"] as? Int, 0)

        // inspect of a big empty qcow2 names its virtual size.
        try Tool.sh("qemu-img create -q -f qcow2 \(s.file("big.qcow2")) 10G")
        let i = try Tool.dv("inspect", s.file("big.qcow2"))
        XCTAssertEqual(i.status, 0, i.output)
        XCTAssertTrue(i.stdout.contains("10.0 GiB") && i.stdout.contains("format: qcow2"), i.stdout)
        let ij = try Tool.dv("inspect", top, "--json")
        XCTAssertEqual(try ij.json()["size"] as? Int, 32 << 20)
        XCTAssertEqual((try ij.json()["chain"] as? [Any])?.count, 2)
    }

    func testBadFormatOptionsAndAnExportThatIsNotThere() throws {
        let s = try Scratch(self)
        let vault = s.file("vault")
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--kdf-work-factor", "10").status, 0)
        try Tool.sh("head -c 1048576 /dev/zero > \(s.file("d.img"))")
        let bad = try Tool.dv("backup", s.file("d.img"), "--format", "qcow3", "--vault", vault, "--disk", "d")
        XCTAssertEqual(bad.status, 2)
        XCTAssertTrue(bad.stderr.contains("--format qcow3"), bad.stderr)
        let both = try Tool.dv("backup", s.file("d.img"), "--source", "nbd://localhost/x", "--vault", vault, "--disk", "d")
        XCTAssertEqual(both.status, 2, both.output)
        // A raw file forced to be read as qcow2: qemu's own refusal, named, and no point.
        let forced = try Tool.dv("backup", s.file("d.img"), "--format", "qcow2", "--vault", vault, "--disk", "d")
        XCTAssertEqual(forced.status, 1, forced.output)
        XCTAssertTrue(forced.stderr.contains(s.file("d.img")), forced.stderr)
        let gone = try Tool.dv("backup", "--source", "nbd+unix:///?socket=\(s.file("none.sock"))", "--vault", vault, "--disk", "d")
        XCTAssertEqual(gone.status, 1, gone.output)
        XCTAssertTrue(gone.stderr.contains("NBD export"), gone.stderr)
        let points = try Tool.dv("points", "--vault", vault, "--disk", "d", "--json")
        XCTAssertEqual((try? points.json()["points"] as? [Any])?.count ?? 0, 0, points.output)
    }

    func testAQcow2EncryptedByQemuIsKeptAsItsContainerAndNeedsItsKey() throws {
        try Tool.require("qemu-img", "qemu-io", "cryptsetup")
        let t = try EncryptedBackupTests.Setup(self)
        let image = t.s.file("enc.qcow2"), secretFile = t.s.file("pass")
        try Tool.sh("printf '%s' '\(Images.passphrase)' > \(secretFile)")
        try Images.encryptedQcow2(image, secretFile: secretFile)
        try Tool.sh("qemu-io --object secret,id=k,file=\(secretFile) --image-opts driver=qcow2,encrypt.key-secret=k,file.filename=\(image) -c 'write -P 0x61 1M 3M' >/dev/null")

        let inspect = try Tool.dv("inspect", image, "--json")
        XCTAssertEqual(inspect.status, 0, inspect.output)
        let volume = try XCTUnwrap((try inspect.json()["volumes"] as? [[String: Any]])?.first)
        let encryption = try XCTUnwrap(volume["encryption"] as? [String: Any])
        XCTAssertEqual(encryption["format"] as? String, "luks1")
        let uuid = try XCTUnwrap(encryption["uuid"] as? String)

        // The key rule holds: without the key vault, refused and nothing written.
        let refused = try Tool.dv("backup", image, "--vault", t.vault, "--disk", "enc")
        XCTAssertNotEqual(refused.status, 0)
        XCTAssertTrue(refused.stderr.contains("encrypted") && refused.stderr.contains("--keyvault"), refused.stderr)
        XCTAssertEqual(try t.pointCount("enc"), 0)

        try t.run("keyvault", "secret", "set", t.kv, "--name", "enc-key", "--file", secretFile, "--volume", uuid)
        let b = try t.backup(image, disk: "enc")
        let kb = try XCTUnwrap((try b.json()["keyBackup"] as? [String: Any])?["volumes"] as? [[String: Any]])
        XCTAssertEqual(kb.first?["check"] as? String, "fits", b.stdout)
        XCTAssertEqual(try source(b)["contents"] as? String, "container")
        XCTAssertEqual(try stats(b)["compressedChunks"] as? Int, 0, "ciphertext is never compressed")

        // Restore gives back the same container; qemu opens it with the key the key vault holds.
        let r = try t.restore(disk: "enc", target: t.s.file("r.qcow2"), ["--export-key", t.s.file("k")])
        _ = r
        XCTAssertTrue(try fileBytesEqual(t.s.file("r.qcow2"), image))
        try Tool.sh("qemu-img compare --object secret,id=k,file=\(t.s.file("k")) --image-opts driver=qcow2,encrypt.key-secret=k,file.filename=\(t.s.file("r.qcow2")) driver=qcow2,encrypt.key-secret=k,file.filename=\(image)")
        // Decrypting it to raw is refused: its data is never decrypted.
        let raw = try t.restore(disk: "enc", target: t.s.file("r.raw"), ["--format", "raw"], expect: 2)
        XCTAssertTrue(raw.stderr.contains("never decrypted"), raw.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: t.s.file("r.raw")))
        let xml = try String(contentsOfFile: t.s.file("r.qcow2.libvirt.xml"), encoding: .utf8)
        XCTAssertTrue(xml.contains("type='qcow2'") && xml.contains("<encryption format='luks'>"), xml)
        let args = try String(contentsOfFile: t.s.file("r.qcow2.qemu-args"), encoding: .utf8)
        XCTAssertTrue(args.contains("driver=qcow2") && args.contains("encrypt.format=luks"), args)
    }

    /// The qemu-nbd a backup starts ends with it, however the backup is killed: while it waits for a rival's
    /// lock (connected), and before the NBD handshake (qemu-nbd alone waits forever for a client that vanished
    /// then). A slow start is made by a qemu-nbd first in PATH that sleeps before it runs the real one.
    func testTheQemuNBDOfAKilledBackupEndsWithIt() throws {
        try Tool.require("qemu-img", "qemu-nbd", "pgrep")
        let s = try Scratch(self)
        let vault = s.file("vault"), image = s.file("d.qcow2"), fifo = s.file("fifo"), slow = s.file("slow")
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--kdf-work-factor", "10").status, 0)
        let real = try Tool.which("qemu-nbd")
        try Tool.sh("""
            qemu-img create -q -f qcow2 \(image) 64M && mkfifo \(fifo) && mkdir \(slow)
            printf '#!/bin/sh\\nsleep 2\\nexec %s "$@"\\n' '\(real)' > \(slow)/qemu-nbd && chmod +x \(slow)/qemu-nbd
            """)
        for (path, when) in [("$PATH", "connected"), ("\(slow):$PATH", "before the handshake")] {
            // A rival backup of the same disk, from a pipe nobody writes to, holds the disk's lock meanwhile.
            let out = try Tool.sh("""
                exec 3<>\(fifo)
                \(Tool.diskvault) backup - --vault \(vault) --disk d < \(fifo) >/dev/null 2>&1 & rival=$!
                sleep 0.5
                PATH=\(path) \(Tool.diskvault) backup \(image) --vault \(vault) --disk d --lock-wait 60 >/dev/null 2>&1 & b=$!
                for i in $(seq 1 200); do n=$(pgrep -P $b qemu-nbd) && break; sleep 0.05; done
                [ -n "$n" ] || { echo "no qemu-nbd under the backup"; kill -9 $b $rival; exit 1; }
                sleep 0.3
                kill -9 $b
                for i in $(seq 1 200); do kill -0 $n 2>/dev/null || break; sleep 0.05; done
                if kill -0 $n 2>/dev/null; then echo "qemu-nbd $n still runs"; kill -9 $n; else echo "qemu-nbd ended"; fi
                kill $rival; wait $rival || true; exec 3>&-
                """)
            XCTAssertTrue(out.contains("qemu-nbd ended"), "killed \(when): \(out)")
        }
    }
}
