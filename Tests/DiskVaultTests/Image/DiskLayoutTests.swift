import DiskVault
import Foundation
import XCTest

/// Partition tables made by sfdisk/sgdisk, volumes made by mkfs and cryptsetup, read through `inspect --json`.
final class DiskLayoutTests: XCTestCase {
    func inspect(_ path: String, _ extra: [String] = []) throws -> [String: Any] {
        let r = try Tool.run(Tool.diskvault, ["inspect", path, "--json"] + extra)
        XCTAssertEqual(r.status, 0, r.output)
        return try r.json()
    }

    func volumes(_ layout: [String: Any]) -> [[String: Any]] { layout["volumes"] as? [[String: Any]] ?? [] }
    func encryption(_ volume: [String: Any]) -> [String: Any] { volume["encryption"] as? [String: Any] ?? [:] }

    /// A GPT disk: an EFI partition (FAT), an ext4 partition and a LUKS2 partition.
    func makeGPTDisk(_ s: Scratch) throws -> String {
        try Tool.require("sgdisk", "mkfs.ext4", "mkfs.vfat", "cryptsetup")
        let disk = s.file("gpt.img")
        try Tool.sh("""
            truncate -s 64M \(disk)
            sgdisk -o -n 1:2048:+8M -t 1:ef00 -c 1:EFI -n 2:0:+24M -t 2:8300 -c 2:root -n 3:0:+30M -t 3:8309 -c 3:secret \(disk) >/dev/null
            truncate -s 8M \(s.file("p1")); mkfs.vfat \(s.file("p1")) >/dev/null
            mkfs.ext4 -q -F \(s.file("p2")) 24M
            size3=$(( $(sgdisk -i 3 \(disk) | awk '/Partition size/ {print $3}') * 512 ))
            truncate -s $size3 \(s.file("p3"))
            printf 'pw' | cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --sector-size 4096 \(s.file("p3")) 2>/dev/null
            dd if=\(s.file("p1")) of=\(disk) bs=512 seek=$(sgdisk -i 1 \(disk) | awk '/First sector/ {print $3}') conv=notrunc,sparse status=none
            dd if=\(s.file("p2")) of=\(disk) bs=512 seek=$(sgdisk -i 2 \(disk) | awk '/First sector/ {print $3}') conv=notrunc,sparse status=none
            dd if=\(s.file("p3")) of=\(disk) bs=512 seek=$(sgdisk -i 3 \(disk) | awk '/First sector/ {print $3}') conv=notrunc,sparse status=none
            """)
        return disk
    }

    func testGPTDiskWithEFIExt4AndLUKS2() throws {
        let s = try Scratch(self)
        let disk = try makeGPTDisk(s)
        let layout = try inspect(disk)
        XCTAssertEqual(layout["partitionTable"] as? String, "gpt")
        let sgdisk = try Tool.sh("sgdisk -p \(disk)")
        XCTAssertTrue(sgdisk.uppercased().contains((layout["diskGUID"] as? String ?? "?").uppercased()), sgdisk)
        let vols = volumes(layout)
        XCTAssertEqual(vols.map { $0["number"] as? Int }, [1, 2, 3])
        XCTAssertEqual(vols.map { $0["name"] as? String }, ["EFI", "root", "secret"])
        XCTAssertEqual(vols.map { $0["typeName"] as? String }, ["EFI System", "Linux filesystem", "Linux LUKS"])
        for v in vols {
            let n = v["number"] as! Int
            let info = try Tool.sh("sgdisk -i \(n) \(disk)")
            let first = UInt64(info.split(separator: "\n").first { $0.hasPrefix("First sector") }!.split(separator: " ")[2])!
            XCTAssertEqual(v["offset"] as? UInt64, first * 512, "partition \(n) offset")
            XCTAssertTrue(info.lowercased().contains((v["guid"] as? String) ?? "?"), "unique GUID of \(n)")
        }
        XCTAssertEqual(encryption(vols[0])["format"] as? String, "none")
        XCTAssertEqual(encryption(vols[1])["format"] as? String, "none")
        let luks = encryption(vols[2])
        XCTAssertEqual(luks["format"] as? String, "luks2")
        XCTAssertEqual(luks["sectorSize"] as? Int, 4096)
        XCTAssertEqual(luks["uuid"] as? String, try Tool.sh("cryptsetup luksUUID \(s.file("p3"))").trimmingCharacters(in: .whitespacesAndNewlines))
        XCTAssertEqual((layout["warnings"] as? [String]) ?? [], [])
    }

    func testDamagedPrimaryGPTFallsBackToTheBackupHeader() throws {
        let s = try Scratch(self)
        let disk = try makeGPTDisk(s)
        try Tool.sh("printf 'XXXX' | dd of=\(disk) bs=1 seek=$((512 + 40)) conv=notrunc status=none")
        let layout = try inspect(disk)
        XCTAssertEqual(volumes(layout).count, 3)
        XCTAssertTrue(((layout["warnings"] as? [String]) ?? []).contains { $0.contains("primary GPT header is damaged") }, "\(layout)")
        // Both headers damaged: a clear error naming the image.
        try Tool.sh("size=$(stat -c %s \(disk)); printf 'XXXX' | dd of=\(disk) bs=1 seek=$((size - 512 + 20)) conv=notrunc status=none")
        let r = try Tool.dv("inspect", disk)
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stderr.contains("GPT is damaged") && r.stderr.contains(disk), r.stderr)
    }

    func testHostileGPTEntryCountIsRefused() throws {
        let s = try Scratch(self)
        let disk = try makeGPTDisk(s)
        // 2^32-1 entries with a correct header CRC: the count itself must be refused, not allocated.
        try Tool.sh("""
            printf '\\xff\\xff\\xff\\xff' | dd of=\(disk) bs=1 seek=$((512 + 80)) conv=notrunc status=none
            printf '\\x00\\x00\\x00\\x00' | dd of=\(disk) bs=1 seek=$((512 + 16)) conv=notrunc status=none
            crc=$(head -c 604 \(disk) | tail -c 92 | gzip -c | tail -c 8 | head -c 4 | xxd -p)
            printf "\\x${crc:0:2}\\x${crc:2:2}\\x${crc:4:2}\\x${crc:6:2}" | dd of=\(disk) bs=1 seek=$((512 + 16)) conv=notrunc status=none
            """)
        let layout = try inspect(disk)
        let warnings = (layout["warnings"] as? [String]) ?? []
        XCTAssertTrue(warnings.contains { $0.contains("primary GPT header is damaged") && $0.contains("4294967295 partition entries") }, "\(warnings)")
        XCTAssertEqual(volumes(layout).count, 3, "the backup header still describes the disk")
    }

    // MARK: testdata (in every clone)

    /// `sfdisk --json` of `path`'s partitions: number (from the node's suffix), start and size in bytes, type,
    /// and for GPT the unique GUID and name, lower-cased as inspect prints them. Nil when sfdisk is absent.
    func sfdiskPartitions(_ path: String) throws -> (id: String, partitions: [[String: String]])? {
        guard (try? Tool.which("sfdisk")) != nil else { return nil }
        let json = try JSONSerialization.jsonObject(with: Data(try Tool.sh("sfdisk --json \(path)").utf8))
        let table = try XCTUnwrap((json as? [String: Any])?["partitiontable"] as? [String: Any])
        let partitions = (table["partitions"] as? [[String: Any]] ?? []).map { p -> [String: String] in
            let node = p["node"] as? String ?? ""
            var entry = [
                "number": String(node.reversed().prefix { $0.isNumber }.reversed()),
                "offset": "\((p["start"] as? Int ?? -1) * 512)", "size": "\((p["size"] as? Int ?? -1) * 512)",
                "type": (p["type"] as? String ?? "").lowercased(),
            ]
            if let uuid = p["uuid"] as? String { entry["guid"] = uuid.lowercased() }
            if let name = p["name"] as? String { entry["name"] = name }
            return entry
        }
        return ((table["id"] as? String ?? "").lowercased(), partitions)
    }

    /// What inspect says of a volume, in sfdiskPartitions' terms (an MBR type as sfdisk prints it: "83", "7").
    func described(_ volume: [String: Any]) -> [String: String] {
        var entry = [
            "number": "\(volume["number"] as? Int ?? -1)", "offset": "\(volume["offset"] as? Int ?? -1)",
            "size": "\(volume["size"] as? Int ?? -1)",
        ]
        let type = volume["type"] as? String ?? ""
        entry["type"] = type.hasPrefix("0x") ? String(UInt8(type.dropFirst(2), radix: 16) ?? 0, radix: 16) : type
        if let guid = volume["guid"] as? String { entry["guid"] = guid }
        if let name = volume["name"] as? String { entry["name"] = name }
        return entry
    }

    /// testdata/mbr.img (sfdisk): two primary partitions, an extended one holding logical partitions 5 and 6.
    func testTestDataMBRWithLogicalPartitions() throws {
        let path = try TestData.image("mbr.img")
        let layout = try inspect(path)
        XCTAssertEqual(layout["partitionTable"] as? String, "mbr")
        let vols = volumes(layout)
        XCTAssertEqual(vols.map { $0["number"] as? Int }, [1, 2, 5, 6], "the extended partition is a container, not a volume")
        XCTAssertEqual(vols.map { $0["offset"] as? Int }, [2048, 8192, 14336, 24576].map { $0 * 512 })
        XCTAssertEqual(vols.map { $0["size"] as? Int }, [6144, 4096, 8192, 8192].map { $0 * 512 })
        XCTAssertEqual(vols.map { $0["type"] as? String }, ["0x83", "0x82", "0x83", "0x07"])
        XCTAssertEqual(vols.map { encryption($0)["format"] as? String }, Array(repeating: "none", count: 4))
        XCTAssertEqual((layout["warnings"] as? [String]) ?? [], [])
        // sfdisk reads the same table (and lists the extended partition, 3, which inspect does not).
        if let sfdisk = try sfdiskPartitions(path) {
            XCTAssertEqual(sfdisk.id, "0x0d15c0de")
            XCTAssertEqual(sfdisk.partitions.filter { $0["type"] != "5" }, vols.map(described))
        }
    }

    /// testdata/gpt.img (sgdisk): EFI, Linux file system and Linux LUKS partitions with fixed GUIDs and names.
    func testTestDataGPT() throws {
        let path = try TestData.image("gpt.img")
        let layout = try inspect(path)
        XCTAssertEqual(layout["partitionTable"] as? String, "gpt")
        XCTAssertEqual(layout["diskGUID"] as? String, "5a0c4e1d-8e5b-4c1e-9d7a-3b2f6e4d1c00")
        let vols = volumes(layout)
        XCTAssertEqual(vols.map { $0["number"] as? Int }, [1, 2, 3])
        XCTAssertEqual(vols.map { $0["name"] as? String }, ["EFI", "root", "secret"])
        XCTAssertEqual(vols.map { $0["typeName"] as? String }, ["EFI System", "Linux filesystem", "Linux LUKS"])
        XCTAssertEqual(vols.map { $0["guid"] as? String }, (1...3).map { "0d1d2c3b-4a59-4687-9504-a1b2c3d4e50\($0)" })
        XCTAssertEqual(vols.map { $0["offset"] as? Int }, [2048, 10240, 22528].map { $0 * 512 })
        XCTAssertEqual(vols.map { $0["size"] as? Int }, [8192, 12288, 10207].map { $0 * 512 })
        XCTAssertEqual((layout["warnings"] as? [String]) ?? [], [])
        if let sfdisk = try sfdiskPartitions(path) {
            XCTAssertEqual(sfdisk.id, layout["diskGUID"] as? String)
            XCTAssertEqual(sfdisk.partitions, vols.map(described))
        }
        // The backup header at the end of the disk describes it too.
        let s = try Scratch(self)
        let damaged = s.file("gpt.img")
        try Tool.sh("cp \(path) \(damaged); printf 'XXXX' | dd of=\(damaged) bs=1 seek=$((512 + 40)) conv=notrunc status=none")
        let fallback = try inspect(damaged)
        XCTAssertEqual(volumes(fallback).map(described), vols.map(described))
        XCTAssertTrue(((fallback["warnings"] as? [String]) ?? []).contains { $0.contains("primary GPT header is damaged") })
    }

    /// An MBR disk whose logical partition (inside an extended one) holds a BitLocker volume made by Windows.
    func testMBRLogicalPartitionHoldingBitLocker() throws {
        try Tool.require("sfdisk")
        let dir = try Fixtures.directory("bitlocker")
        let s = try Scratch(self)
        let disk = s.file("mbr.img")
        let fixture = "\(dir)/bitlk-aes-xts-128.img"
        let fixtureSize = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: fixture)[.size] as? Int)
        let sectors = fixtureSize / 512
        try Tool.sh("""
            truncate -s \(fixtureSize + 32 * 1024 * 1024) \(disk)
            printf 'label: dos\\nstart=2048, size=16384, type=83\\nstart=18432, type=5\\nstart=20480, size=\(sectors), type=7\\n' | sfdisk -q \(disk)
            dd if=\(fixture) of=\(disk) bs=512 seek=20480 conv=notrunc,sparse status=none
            """)
        let layout = try inspect(disk)
        XCTAssertEqual(layout["partitionTable"] as? String, "mbr")
        let vols = volumes(layout)
        XCTAssertEqual(vols.map { $0["number"] as? Int }, [1, 5])
        XCTAssertEqual(vols.last?["offset"] as? Int, 20480 * 512)
        XCTAssertEqual(vols.last?["type"] as? String, "0x07")
        let bitlocker = encryption(vols.last!)
        XCTAssertEqual(bitlocker["format"] as? String, "bitlocker")
        XCTAssertEqual(bitlocker["guid"] as? String, try Fixtures.bitlockerConfig()["bitlk-aes-xts-128"]?["GUID"])
    }

    func testRandomVolumeWithoutHeaderEarnsAWarningAndCanBeDeclared() throws {
        let s = try Scratch(self)
        let disk = s.file("plain-dmcrypt.img")
        try Tool.sh("head -c 8M /dev/urandom > \(disk)")
        let layout = try inspect(disk)
        XCTAssertEqual(layout["partitionTable"] as? String, "none")
        XCTAssertTrue(((layout["warnings"] as? [String]) ?? []).contains { $0.contains("looks encrypted but has no recognised header — declare it") })
        let declared = try inspect(disk, ["--declare-encrypted", "disk"])
        XCTAssertEqual(encryption(volumes(declared)[0])["format"] as? String, "declared")
        XCTAssertEqual((declared["warnings"] as? [String]) ?? [], [])
        // An ext4 file system is not random.
        try Tool.sh("mkfs.ext4 -q -F \(s.file("fs.img")) 8M")
        XCTAssertEqual((try inspect(s.file("fs.img"))["warnings"] as? [String]) ?? [], [])
    }

    /// `inspect --json` on every BitLocker volume made by Windows agrees with images.conf.
    func testInspectEveryBitLockerFixture() throws {
        let dir = try Fixtures.directory("bitlocker")
        for (name, conf) in try Fixtures.bitlockerConfig() {
            let e = encryption(volumes(try inspect("\(dir)/\(name).img")).first ?? [:])
            XCTAssertEqual(e["format"] as? String, "bitlocker", name)
            XCTAssertEqual(e["guid"] as? String, conf["GUID"], name)
            XCTAssertEqual(e["cipher"] as? String, conf["CIPHER"], name)
            let protectors = (e["protectors"] as? [[String: Any]] ?? []).map { "\($0["kind"] ?? "")=\($0["guid"] ?? "")" }
            if let pw = conf["PW_VMK_GUID"] { XCTAssertTrue(protectors.contains("password=\(pw)"), "\(name): \(protectors)") }
            if let rp = conf["RP_VMK_GUID"] { XCTAssertTrue(protectors.contains("recovery-password=\(rp)"), "\(name): \(protectors)") }
            XCTAssertEqual(e["toGo"] as? Bool, name.contains("togo"), name)
        }
    }
}
