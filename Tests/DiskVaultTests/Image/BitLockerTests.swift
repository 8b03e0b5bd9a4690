import DiskVault
import Foundation
import XCTest

/// BitLockerHeader against real Windows-made images: field by field against images.conf and against cryptsetup's
/// own reader (`cryptsetup bitlkDump`), then against damaged, truncated and hostile copies of them.
final class BitLockerTests: XCTestCase {
    // MARK: Real images

    func testEveryFixtureAgreesWithImagesConfAndBitlkDump() throws {
        try Tool.require("cryptsetup")
        let config = try Fixtures.bitlockerConfig()
        let images = try fixtureImages()
        XCTAssertFalse(images.isEmpty, "no *.img in the BitLocker fixtures")
        for path in images {
            let name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
            let conf = try XCTUnwrap(config[name], "\(name) has no section in images.conf")
            let dump = try BitlkDump(path)
            let e = try XCTUnwrap(try BitLockerHeader.read(volume(path)), "\(name) is not seen as BitLocker")

            // images.conf
            XCTAssertEqual(e.format, .bitlocker, name)
            XCTAssertEqual(e.guid, conf["GUID"], name)
            XCTAssertEqual(e.cipher, conf["CIPHER"], name)
            var checked = 0
            for (key, kind) in [("PW_VMK_GUID", "password"), ("RP_VMK_GUID", "recovery-password"),
                                ("SK_VMK_GUID", "startup-key")] {
                guard let guid = conf[key] else { continue }
                XCTAssertTrue(e.protectors?.contains(.init(guid: guid, kind: kind)) == true,
                              "\(name): no \(kind) protector \(guid) in \(String(describing: e.protectors))")
                checked += 1
            }
            XCTAssertGreaterThanOrEqual(checked, 2, "\(name): images.conf names too few VMKs")

            // cryptsetup bitlkDump
            XCTAssertEqual(e.guid, dump.guid, name)
            XCTAssertEqual(e.cipher, dump.cipher, name)
            XCTAssertEqual(e.keyBits, dump.keyBits, name)
            XCTAssertEqual(e.keyBytes, dump.keyBits / 8, name)
            XCTAssertEqual(e.sectorSize, dump.sectorSize, name)
            XCTAssertEqual(e.description, dump.description, name)
            XCTAssertEqual(e.toGo, dump.toGo, name)
            XCTAssertEqual(e.toGo, name.contains("togo"), name)
            XCTAssertEqual(dump.vmks.count, e.protectors?.count, name)
            for (ours, theirs) in zip(e.protectors ?? [], dump.vmks) {
                XCTAssertEqual(ours.guid, theirs.guid, name)
                if theirs.kind == "unknown" {
                    XCTAssertFalse(["password", "recovery-password", "startup-key", "tpm", "tpm-pin", "clear-key"]
                        .contains(ours.kind), "\(name): bitlkDump does not know \(ours.kind)")
                } else {
                    XCTAssertEqual(ours.kind, theirs.kind, "\(name) VMK \(ours.guid)")
                }
            }
            XCTAssertNil(e.warnings, name)
            XCTAssertNil(e.payloadOffset, name)

            // The encrypted ranges skip the plaintext head and the three metadata areas, nothing else.
            let size = try volume(path).size
            let ranges = try XCTUnwrap(e.encryptedRanges, name)
            let header = try XCTUnwrap(dump.volumeHeader, name)
            XCTAssertEqual(ranges.first?.offset, header.size, "\(name): encrypted data starts after the head")
            XCTAssertEqual(ranges.last.map { $0.offset + $0.size }, size, name)
            XCTAssertEqual(ranges.reduce(0) { $0 + $1.size }, size - header.size - 3 * 65536, name)
            XCTAssertEqual(dump.metadataOffsets.count, 3, name)
            for area in dump.metadataOffsets {
                for r in ranges {
                    XCTAssertFalse(r.offset < area + 65536 && area < r.offset + r.size,
                                   "\(name): range \(r) overlaps the metadata area at \(area)")
                }
            }
            let holdsHeader = ranges.contains {
                $0.offset <= header.offset && header.offset + header.size <= $0.offset + $0.size
            }
            XCTAssertTrue(holdsHeader, "\(name): the relocated volume header is encrypted data")
        }
    }

    func testStartupKeyProtectorIsNamedByTheBEKFile() throws {
        let dir = try Fixtures.directory("bitlocker")
        let bek = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: dir).first { $0.hasSuffix(".BEK") })
        XCTAssertEqual(bek, "4381F759-C4F8-4DE0-BB61-FC33A831BDA5.BEK")
        let guid = String(bek.dropLast(4)).lowercased()
        let e = try XCTUnwrap(try BitLockerHeader.read(volume("\(dir)/bitlk-aes-xts-128-startup-key.img")))
        XCTAssertEqual(e.protectors?.filter { $0.kind == "startup-key" }, [.init(guid: guid, kind: "startup-key")])
        XCTAssertEqual(e.protectors?.map(\.kind).sorted(), ["password", "recovery-password", "startup-key"])
    }

    // MARK: Not BitLocker

    func testVolumesWithoutBitLockerAreNil() throws {
        let scratch = try Scratch(self)
        let zeros = scratch.file("zeros.img")
        try write([UInt8](repeating: 0, count: 1 << 20), to: zeros)
        XCTAssertNil(try BitLockerHeader.read(volume(zeros)))

        var random = SeededRandom(seed: 0xB17_10C4)
        let noise = scratch.file("random.img")
        try write((0..<(1 << 20)).map { _ in random.byte() }, to: noise)
        XCTAssertNil(try BitLockerHeader.read(volume(noise)))

        // A FAT32 boot sector says MSWIN4.1 whatever it holds: To Go needs the BitLocker identifier as well.
        let dir = try Fixtures.directory("bitlocker")
        var fat = try readBytes("\(dir)/bitlk-togo-aes-xts-128.img", at: 0, count: 1 << 20)
        XCTAssertEqual(Array(fat[3..<11]), Array("MSWIN4.1".utf8))
        fat.replaceSubrange(424..<440, with: [UInt8](repeating: 0, count: 16))
        let plainFAT = scratch.file("fat32.img")
        try write(fat, to: plainFAT)
        XCTAssertNil(try BitLockerHeader.read(volume(plainFAT)))

        // An empty volume.
        try write([], to: scratch.file("empty.img"))
        XCTAssertNil(try BitLockerHeader.read(volume(scratch.file("empty.img"))))
    }

    func testSignatureWithoutMetadataIsAClearError() throws {
        let scratch = try Scratch(self)
        var bytes = [UInt8](repeating: 0, count: 1 << 20)
        bytes.replaceSubrange(0..<11, with: [0xEB, 0x58, 0x90] + Array("-FVE-FS-".utf8))
        let path = scratch.file("signature-only.img")
        try write(bytes, to: path)
        assertCorrupt(try BitLockerHeader.read(volume(path)), path: path, mentions: ["no valid FVE metadata block"])
    }

    // MARK: Truncated

    func testTruncatedVolumesGiveNilOrAClearError() throws {
        let dir = try Fixtures.directory("bitlocker")
        let scratch = try Scratch(self)
        for image in ["bitlk-aes-xts-128.img", "bitlk-togo-aes-xts-128.img"] {
            let path = "\(dir)/\(image)"
            let head = try readBytes(path, at: 0, count: 65536)
            let toGo = image.contains("togo")
            // A volume that ends early, at every length of the boot record and then by sectors up to 64 KiB.
            let lengths = Array(0...600) + Array(stride(from: 1024, through: 65536, by: 512))
            for length in lengths {
                let v = try volume(path, size: UInt64(length))
                let needed = toGo ? 440 : 11
                if length < needed {
                    XCTAssertNil(try BitLockerHeader.read(v), "\(image) cut at \(length)")
                } else {
                    assertCorrupt(try BitLockerHeader.read(v), path: path, mentions: [], "\(image) cut at \(length)")
                }
            }
            // The same with real files holding only the first bytes.
            for length in [0, 5, 11, 12, 100, 175, 199, 200, 439, 440, 511, 512, 4096, 65535] {
                let cut = scratch.file("cut-\(length).img")
                try write(Array(head.prefix(length)), to: cut)
                let needed = toGo ? 440 : 11
                if length < needed {
                    XCTAssertNil(try BitLockerHeader.read(volume(cut)), "\(image) file cut at \(length)")
                } else {
                    assertCorrupt(try BitLockerHeader.read(volume(cut)), path: cut, mentions: [],
                                  "\(image) file cut at \(length)")
                }
            }
        }
    }

    func testVolumeEndingInsideTheMetadataCopies() throws {
        let path = "\(try Fixtures.directory("bitlocker"))/bitlk-aes-xts-128.img"
        let offsets = try metadataOffsets(path)
        let good = try XCTUnwrap(try BitLockerHeader.read(volume(path)))
        // Ending inside the first copy leaves none: the other two lie past the end.
        for k: UInt64 in [0, 1, 8, 63, 64, 111, 112, 500, 879, 880, 887] {
            assertCorrupt(try BitLockerHeader.read(volume(path, size: offsets[0] + k)), path: path,
                          mentions: ["no valid FVE metadata block"], "cut at copy 1 + \(k)")
        }
        // Ending inside the third copy leaves two good ones: read, with a warning naming the third.
        for k: UInt64 in [0, 1, 100, 879, 887] {
            let e = try XCTUnwrap(try BitLockerHeader.read(volume(path, size: offsets[2] + k)), "cut at copy 3 + \(k)")
            XCTAssertEqual(e.guid, good.guid)
            XCTAssertEqual(e.protectors, good.protectors)
            let warnings = e.warnings ?? []
            XCTAssertEqual(warnings.count, 2, "cut at copy 3 + \(k): \(warnings)")
            XCTAssertTrue(warnings.first?.contains("FVE metadata block 3") == true, "\(warnings)")
            XCTAssertTrue(warnings.last?.contains("gives the volume 104857600 bytes") == true, "\(warnings)")
        }
        // The CRC-covered bytes and the validation header are all a copy needs.
        let one = try XCTUnwrap(try BitLockerHeader.read(volume(path, size: offsets[0] + 888)))
        XCTAssertEqual(one.warnings?.count, 3, "\(one.warnings ?? [])")
        let three = try XCTUnwrap(try BitLockerHeader.read(volume(path, size: offsets[2] + 888)))
        XCTAssertEqual(three.warnings?.count, 1, "\(three.warnings ?? [])")
    }

    // MARK: Damaged copies

    func testEachDamagedCopyIsSkippedWithAWarning() throws {
        let (path, offsets) = try scratchCopy("bitlk-aes-xts-128.img")
        let good = try XCTUnwrap(try BitLockerHeader.read(volume(path)))
        for copy in 0..<3 {
            let blockSize = try coveredSize(path, offsets[copy])
            // The stored CRC, then a byte it covers (in the description).
            for at in [offsets[copy] + blockSize + 4, offsets[copy] + 0x80] {
                let saved = try readBytes(path, at: at, count: 1)
                try patch(path, at: at, [saved[0] ^ 0x5A])
                var e = try XCTUnwrap(try BitLockerHeader.read(volume(path)), "copy \(copy + 1) damaged at \(at)")
                let warnings = e.warnings ?? []
                XCTAssertEqual(warnings.count, 1, "\(warnings)")
                XCTAssertTrue(warnings.first?.contains("FVE metadata block \(copy + 1)") == true, "\(warnings)")
                XCTAssertTrue(warnings.first?.contains("CRC-32") == true, "\(warnings)")
                e.warnings = nil
                XCTAssertEqual(e, good, "copy \(copy + 1) damaged at \(at)")
                try patch(path, at: at, saved)
            }
        }
        XCTAssertEqual(try BitLockerHeader.read(volume(path)), good, "all restored")

        // A signature gone from copy 1 and copy 2: copy 3 alone still serves.
        try patch(path, at: offsets[0], Array("-XXX-XX-".utf8))
        try patch(path, at: offsets[1] + 10, [9, 0])  // version 9
        var e = try XCTUnwrap(try BitLockerHeader.read(volume(path)))
        XCTAssertEqual(e.warnings?.count, 2)
        XCTAssertTrue(e.warnings?[0].contains("no -FVE-FS- signature") == true, "\(e.warnings ?? [])")
        XCTAssertTrue(e.warnings?[1].contains("version 9") == true, "\(e.warnings ?? [])")
        e.warnings = nil
        XCTAssertEqual(e, good)
    }

    func testAllCopiesDamagedIsAClearError() throws {
        let (path, offsets) = try scratchCopy("bitlk-aes-xts-128.img")
        for offset in offsets {
            let crcAt = offset + (try coveredSize(path, offset)) + 4
            let saved = try readBytes(path, at: crcAt, count: 4)
            try patch(path, at: crcAt, saved.map { ~$0 })
        }
        assertCorrupt(try BitLockerHeader.read(volume(path)), path: path,
                      mentions: ["no valid FVE metadata block", "FVE metadata block 1", "FVE metadata block 2",
                                 "FVE metadata block 3", "CRC-32"])
    }

    func testMetadataOffsetsPastTheEnd() throws {
        for (image, base) in [("bitlk-aes-xts-128.img", 176), ("bitlk-togo-aes-xts-128.img", 440)] {
            let (path, offsets) = try scratchCopy(image)
            let size = try volume(path).size
            for bad: UInt64 in [size, size + 1, 1 << 40, UInt64.max, UInt64.max - 65535] {
                for i in 0..<3 { try patch(path, at: UInt64(base + 8 * i), le(bad, 8)) }
                assertCorrupt(try BitLockerHeader.read(volume(path)), path: path,
                              mentions: ["past the end of the volume"], "\(image) offsets \(bad)")
            }
            // One good offset is enough; the others are named.
            try patch(path, at: UInt64(base + 8), le(offsets[1], 8))
            let e = try XCTUnwrap(try BitLockerHeader.read(volume(path)), image)
            XCTAssertEqual(e.warnings?.count, 2, "\(e.warnings ?? [])")
            // All three pointing at one copy: it is not where copies 1 and 3 should be.
            for i in 0..<3 { try patch(path, at: UInt64(base + 8 * i), le(offsets[1], 8)) }
            let same = try XCTUnwrap(try BitLockerHeader.read(volume(path)), image)
            XCTAssertEqual(same.warnings?.count, 2, "\(same.warnings ?? [])")
            XCTAssertTrue(same.warnings?.first?.contains("names offset") == true, "\(same.warnings ?? [])")
            // Offsets at the boot record and in the middle of encrypted data.
            for i in 0..<3 { try patch(path, at: UInt64(base + 8 * i), le(UInt64([0, 4096, 12345][i]), 8)) }
            assertCorrupt(try BitLockerHeader.read(volume(path)), path: path, mentions: ["no -FVE-FS- signature"])
        }
    }

    /// No Vista image exists among the fixtures: a Windows 7 one rewritten into the Vista layout (boot code EB 52 90,
    /// the first copy named by cluster number at 56, version 1 blocks without a CRC) stands in for one.
    func testVistaLayoutMadeFromAWindows7Image() throws {
        let (path, offsets) = try scratchCopy("bitlk-aes-xts-128.img")
        let good = try XCTUnwrap(try BitLockerHeader.read(volume(path)))
        let cluster: UInt64 = 512 * 8
        XCTAssertEqual(offsets[0] % cluster, 0)
        try patch(path, at: 0, [0xEB, 0x52, 0x90])
        try patch(path, at: 56, le(offsets[0] / cluster, 8))
        try patch(path, at: 160, [UInt8](repeating: 0, count: 40))  // no offsets where Windows 7 keeps them
        for offset in offsets { try patch(path, at: offset + 10, le(1, 2)) }
        var e = try XCTUnwrap(try BitLockerHeader.read(volume(path)))
        XCTAssertEqual(e.guid, good.guid)
        XCTAssertEqual(e.cipher, good.cipher)
        XCTAssertEqual(e.protectors, good.protectors)
        XCTAssertEqual(e.description, good.description)
        XCTAssertNil(e.warnings)
        XCTAssertEqual(e.encryptedRanges?.first?.offset, 8192)
        let size = try volume(path).size
        XCTAssertEqual(e.encryptedRanges?.reduce(0) { $0 + $1.size }, size - 8192 - 3 * 16384)
        // Its copies 2 and 3 are found through copy 1: damage there is named, and copy 1 still serves.
        try patch(path, at: offsets[2], Array("-XXX-XX-".utf8))
        e = try XCTUnwrap(try BitLockerHeader.read(volume(path)))
        XCTAssertEqual(e.warnings?.count, 1)
        XCTAssertTrue(e.warnings?.first?.contains("FVE metadata block 3") == true, "\(e.warnings ?? [])")
        // A cluster number past the end, and a cluster size of 0.
        try patch(path, at: 56, le(UInt64.max / 2, 8))
        assertCorrupt(try BitLockerHeader.read(volume(path)), path: path, mentions: ["cluster"])
        try patch(path, at: 56, le(offsets[0] / cluster, 8))
        try patch(path, at: 13, [0])
        assertCorrupt(try BitLockerHeader.read(volume(path)), path: path, mentions: ["cluster size 0"])
    }

    // MARK: Hostile metadata (with a matching CRC, so the checks past the CRC are what stops them)

    func testHostileFieldsInEveryCopy() throws {
        let (path, offsets) = try scratchCopy("bitlk-aes-xts-128.img")
        let original = try offsets.map { try readBytes(path, at: $0, count: 65536) }
        let firstEntry: UInt64 = 112
        let cases: [(String, UInt64, [UInt8], String)] = [
            ("entry size 1", firstEntry, le(1, 2), "outside 8..."),
            ("entry size 7", firstEntry, le(7, 2), "outside 8..."),
            ("entry size past the metadata", firstEntry, le(0xFFFF, 2), "outside 8..."),
            ("metadata size 0", 64, le(0, 4), "metadata size 0"),
            ("metadata size 47", 64, le(47, 4), "metadata size 47"),
            ("metadata size 2^32-1", 64, le(0xFFFF_FFFF, 4), "does not fit"),
            ("metadata size one past the block", 64, le(880 - 64 + 1, 4), "does not fit"),
            ("metadata header size 2^32-1", 72, le(0xFFFF_FFFF, 4), "metadata header size"),
            ("metadata header size 0", 72, le(0, 4), "metadata header size"),
            ("VMK entry too small", 0xB0, le(8, 2) + le(2, 2), "too small"),
            ("volume header entry too small", 0x300, le(8, 2) + le(15, 2), "too small"),
        ]
        for (name, at, bytes, message) in cases {
            for offset in offsets {
                try patch(path, at: offset + at, bytes)
                try fixCRC(path, offset)
            }
            assertCorrupt(try BitLockerHeader.read(volume(path)), path: path,
                          mentions: ["no valid FVE metadata block", message], name)
            for (offset, bytes) in zip(offsets, original) { try patch(path, at: offset, bytes) }
        }

        // Block sizes the CRC cannot cover: rejected before any CRC is computed.
        for size: UInt16 in [0, 1, 6, 0x1000, 0xFFFF] {
            for offset in offsets { try patch(path, at: offset + 8, le(UInt64(size), 2)) }
            assertCorrupt(try BitLockerHeader.read(volume(path)), path: path, mentions: ["block size"], "size \(size)")
        }
        // The largest size that fits finds no validation header after it.
        for offset in offsets { try patch(path, at: offset + 8, le(0x0FFF, 2)) }
        assertCorrupt(try BitLockerHeader.read(volume(path)), path: path, mentions: ["validation header"])
        for (offset, bytes) in zip(offsets, original) { try patch(path, at: offset, bytes) }

        // An entry of size 0 ends the entries early: read, with what follows named as ignored.
        for offset in offsets {
            try patch(path, at: offset + firstEntry, le(0, 2))
            try fixCRC(path, offset)
        }
        let early = try XCTUnwrap(try BitLockerHeader.read(volume(path)))
        XCTAssertEqual(early.protectors, [])
        XCTAssertTrue(early.warnings?.contains { $0.contains("size 0") } == true, "\(early.warnings ?? [])")
        for (offset, bytes) in zip(offsets, original) { try patch(path, at: offset, bytes) }

        // One hostile copy among good ones is skipped with a warning.
        try patch(path, at: offsets[0] + firstEntry, le(3, 2))
        try fixCRC(path, offsets[0])
        let e = try XCTUnwrap(try BitLockerHeader.read(volume(path)))
        XCTAssertEqual(e.warnings?.count, 1)
        XCTAssertTrue(e.warnings?.first?.contains("entry at byte 112 has size 3") == true, "\(e.warnings ?? [])")
    }

    /// Random bytes written over the headers and entries of all three copies alike (CRCs fixed in most rounds, so
    /// the checks past the CRC are reached): every read ends in a result or a corrupt error, never a crash or hang.
    func testRandomDamageNeverCrashes() throws {
        let (path, offsets) = try scratchCopy("bitlk-aes-xts-128.img")
        let originals = try offsets.map { try readBytes(path, at: $0, count: 65536) }
        var random = SeededRandom(seed: 42)
        var results = 0, errors = 0
        for round in 0..<400 {
            for _ in 0..<(1 + Int(random.next() % 4)) {
                let at = random.next() % 880
                let width = [1, 2, 4, 8][Int(random.next() % 4)]
                let bytes = (0..<width).map { _ in random.byte() }
                for offset in offsets { try patch(path, at: offset + at, bytes) }
            }
            if round % 4 != 0 {
                for offset in offsets { try fixCRC(path, offset) }
            }
            do {
                _ = try BitLockerHeader.read(volume(path))
                results += 1
            } catch let error as DiskVaultError {
                XCTAssertEqual(error.code, .corrupt, "round \(round): \(error)")
                XCTAssertEqual(error.path, path, "round \(round)")
                errors += 1
            }
            for (offset, bytes) in zip(offsets, originals) { try patch(path, at: offset, bytes) }
        }
        XCTAssertEqual(results + errors, 400)
        // Both outcomes occur: the damage reached past the CRC check and was sometimes harmless.
        XCTAssertGreaterThan(results, 0)
        XCTAssertGreaterThan(errors, 0)
    }

    // MARK: Helpers

    func fixtureImages() throws -> [String] {
        let dir = try Fixtures.directory("bitlocker")
        return try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".img") }.sorted()
            .map { "\(dir)/\($0)" }
    }

    func volume(_ path: String, size: UInt64? = nil) throws -> VolumeBytes {
        let file = try FileDescriptor(path: path, flags: O_RDONLY)
        return VolumeBytes(file: file, image: path, offset: 0, size: try size ?? file.status().size)
    }

    /// A sparse copy of a fixture to damage, and its metadata offsets as bitlkDump reports them.
    func scratchCopy(_ image: String) throws -> (String, [UInt64]) {
        let scratch = try Scratch(self)
        let path = scratch.file(image)
        try Tool.sh("cp --sparse=always '\(try Fixtures.directory("bitlocker"))/\(image)' '\(path)'")
        return (path, try metadataOffsets(path))
    }

    func metadataOffsets(_ path: String) throws -> [UInt64] {
        try Tool.require("cryptsetup")
        let offsets = try BitlkDump(path).metadataOffsets
        XCTAssertEqual(offsets.count, 3)
        return offsets
    }

    /// Bytes a version 2 block's CRC covers (block header field 8 × 16).
    func coveredSize(_ path: String, _ offset: UInt64) throws -> UInt64 {
        let b = try readBytes(path, at: offset + 8, count: 2)
        return (UInt64(b[0]) | UInt64(b[1]) << 8) * 16
    }

    func fixCRC(_ path: String, _ offset: UInt64) throws {
        let size = try coveredSize(path, offset)
        guard size > 0, size + 8 <= 65536 else { return }
        let crc = CRC32.checksum(try readBytes(path, at: offset, count: Int(size)))
        try patch(path, at: offset + size + 4, le(UInt64(crc), 4))
    }

    func le(_ value: UInt64, _ width: Int) -> [UInt8] {
        (0..<width).map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }
    }

    func readBytes(_ path: String, at offset: UInt64, count: Int) throws -> [UInt8] {
        let handle = try XCTUnwrap(FileHandle(forReadingAtPath: path))
        defer { try? handle.close() }
        try handle.seek(toOffset: offset)
        return [UInt8](try handle.read(upToCount: count) ?? Data())
    }

    func patch(_ path: String, at offset: UInt64, _ bytes: [UInt8]) throws {
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        defer { try? handle.close() }
        try handle.seek(toOffset: offset)
        try handle.write(contentsOf: Data(bytes))
    }

    func write(_ bytes: [UInt8], to path: String) throws {
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

}

/// What `cryptsetup bitlkDump` prints, parsed: the independent reader the parser must agree with.
private struct BitlkDump {
    var toGo = false
    var guid = ""
    var sectorSize = 0
    var description = ""
    var cipher = ""
    var keyBits = 0
    var vmks: [(guid: String, kind: String)] = []
    var metadataOffsets: [UInt64] = []
    var volumeHeader: (offset: UInt64, size: UInt64)?

    init(_ path: String) throws {
        let r = try Tool.run("cryptsetup", ["bitlkDump", path])
        guard r.status == 0 else {
            throw NSError(domain: "test", code: 1, userInfo: [NSLocalizedDescriptionKey: "bitlkDump: \(r.output)"])
        }
        var section = "", cipherName = "", cipherMode = ""
        var segment = ""
        for raw in r.stdout.split(separator: "\n") {
            let line = String(raw)
            if line.hasPrefix("Info for BITLK") { toGo = line.contains("To Go") }
            if line == "Keyslots:" || line == "Metadata segments:" { section = line }
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = line[..<colon].trimmingCharacters(in: .whitespaces)
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            let number = UInt64(value.prefix { $0.isNumber }) ?? 0
            if !line.hasPrefix(" ") && !line.hasPrefix("\t") {
                switch key {
                case "GUID": guid = value
                case "Sector size": sectorSize = Int(number)
                case "Description": description = value
                case "Cipher name": cipherName = value
                case "Cipher mode": cipherMode = value
                case "Cipher key": keyBits = Int(number)
                default: break
                }
            } else if section == "Keyslots:" {
                if Int(key) != nil {
                    segment = value
                    if value == "VMK" { vmks.append(("", "")) }
                } else if segment == "VMK" && key == "GUID" {
                    vmks[vmks.count - 1].guid = value
                } else if segment == "VMK" && key == "Protection" {
                    vmks[vmks.count - 1].kind = Self.kind(value)
                }
            } else if section == "Metadata segments:" {
                if Int(key) != nil {
                    segment = value
                    if value == "Volume header" { volumeHeader = (0, 0) }
                } else if segment == "FVE metadata area" && key == "Offset" {
                    metadataOffsets.append(number)
                } else if segment == "Volume header" && key == "Offset" {
                    volumeHeader?.offset = number
                } else if segment == "Volume header" && key == "Size" {
                    volumeHeader?.size = number
                }
            }
        }
        cipher = "\(cipherName)-\(cipherMode)"
    }

    static func kind(_ protection: String) -> String {
        switch protection {
        case "VMK protected with passphrase": "password"
        case "VMK protected with recovery passphrase": "recovery-password"
        case "VMK protected with startup key": "startup-key"
        case "VMK protected with TPM": "tpm"
        case "VMK protected with TPM and PIN": "tpm-pin"
        case "VMK protected with clear key": "clear-key"
        case "VMK protected with smart card": "smart-card"
        default: "unknown"
        }
    }
}

