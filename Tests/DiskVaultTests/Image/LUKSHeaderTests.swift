import DiskVault
import Foundation
import XCTest

/// LUKS1 and LUKS2 headers read without keys, judged field by field by `cryptsetup luksDump`.
final class LUKSHeaderTests: XCTestCase {
    func volume(_ path: String) throws -> VolumeBytes {
        let file = try FileDescriptor(path: path, flags: O_RDONLY)
        return VolumeBytes(file: file, image: path, offset: 0, size: try file.status().size)
    }

    /// `cryptsetup luksDump` as key → value lines (first occurrence), plus its whole text; or the same of a
    /// recorded dump `text`.
    func luksDump(_ path: String, recorded: String? = nil) throws -> (fields: [String: String], text: String) {
        let text = try recorded ?? Tool.sh("cryptsetup luksDump \(path)")
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = line[..<colon].trimmingCharacters(in: .whitespaces)
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if fields[key] == nil { fields[key] = value }
        }
        return (fields, text)
    }

    func assertLUKS1MatchesLuksDump(_ path: String, recorded: String? = nil, file: StaticString = #filePath, line: UInt = #line) throws {
        let e = try XCTUnwrap(try LUKS1Header.read(try volume(path)), path, file: file, line: line)
        let dump = try luksDump(path, recorded: recorded)
        XCTAssertEqual(e.format, .luks1)
        XCTAssertEqual(e.cipher, "\(dump.fields["Cipher name"]!)-\(dump.fields["Cipher mode"]!)", path, file: file, line: line)
        XCTAssertEqual(e.hash, dump.fields["Hash spec"], path, file: file, line: line)
        XCTAssertEqual(e.payloadOffset, UInt64(dump.fields["Payload offset"]!)! * 512, path, file: file, line: line)
        XCTAssertEqual(e.keyBytes.map { $0 * 8 }, Int(dump.fields["MK bits"]!), path, file: file, line: line)
        XCTAssertEqual(e.uuid, dump.fields["UUID"], path, file: file, line: line)
        let slots = try XCTUnwrap(e.keyslots)
        XCTAssertEqual(slots.count, 8)
        for slot in slots {
            XCTAssertTrue(dump.text.contains("Key Slot \(slot.id): \(slot.active ? "ENABLED" : "DISABLED")"), "\(path) slot \(slot.id)", file: file, line: line)
        }
        let enabled = slots.filter(\.active)
        if let first = enabled.first {
            XCTAssertEqual(first.iterations, UInt64(dump.fields["Iterations"]!), file: file, line: line)
            XCTAssertEqual(first.offset, UInt64(dump.fields["Key material offset"]!)! * 512, file: file, line: line)
            XCTAssertEqual(first.stripes, Int(dump.fields["AF stripes"]!), file: file, line: line)
        }
        XCTAssertNil(try LUKS2Header.read(try volume(path)), "a LUKS1 header is not LUKS2")
    }

    func assertLUKS2MatchesLuksDump(
        _ path: String, recorded: String? = nil, file: StaticString = #filePath, line: UInt = #line
    ) throws -> VolumeEncryption {
        let e = try XCTUnwrap(try LUKS2Header.read(try volume(path)), path, file: file, line: line)
        let dump = try luksDump(path, recorded: recorded)
        XCTAssertEqual(dump.fields["Version"], "2")
        XCTAssertEqual(e.format, .luks2)
        XCTAssertEqual(e.uuid, dump.fields["UUID"], file: file, line: line)
        XCTAssertEqual("\(e.metadataSize!) [bytes]", dump.fields["Metadata area"], file: file, line: line)
        XCTAssertEqual("\(e.payloadOffset!) [bytes]", dump.fields["offset"], file: file, line: line)
        XCTAssertEqual(e.cipher, dump.fields["cipher"], file: file, line: line)
        XCTAssertEqual("\(e.sectorSize!) [bytes]", dump.fields["sector"], file: file, line: line)
        XCTAssertEqual("\(e.keyBytes! * 8) bits", dump.fields["Key"], file: file, line: line)
        for slot in e.keyslots ?? [] {
            XCTAssertTrue(dump.text.contains("  \(slot.id): \(slot.type ?? "?")"), "keyslot \(slot.id)", file: file, line: line)
        }
        XCTAssertEqual(e.keyslots?.first?.stripes, Int(dump.fields["AF stripes"] ?? ""), file: file, line: line)
        XCTAssertEqual(e.keyslots?.first.flatMap(\.offset).map { "\($0) [bytes]" }, dump.fields["Area offset"], file: file, line: line)
        XCTAssertNil(try LUKS1Header.read(try volume(path)), "a LUKS2 header is not LUKS1")
        return e
    }

    func testEveryLUKS1FixtureAgreesWithLuksDump() throws {
        try Tool.require("cryptsetup")
        let dir = try Fixtures.directory("luks") + "/luks1-images"
        let images = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".img") }.sorted()
        XCTAssertGreaterThanOrEqual(images.count, 10)
        for name in images { try assertLUKS1MatchesLuksDump("\(dir)/\(name)") }
    }

    func testLUKS2FixtureAgreesWithLuksDump() throws {
        try Tool.require("cryptsetup")
        let e = try assertLUKS2MatchesLuksDump(try Fixtures.directory("luks") + "/luks2_valid_hdr.img")
        XCTAssertEqual(e.keyslots?.first?.kdf, "argon2")  // as this old header names it, and luksDump prints
        XCTAssertEqual(e.headerCopy, "primary")
    }

    func testSelfMadeLUKS2AcrossSectorAndMetadataSizes() throws {
        try Tool.require("cryptsetup")
        let s = try Scratch(self)
        for (sector, metadata) in [(512, "16k"), (4096, "64k"), (1024, "256k"), (2048, "4096k")] {
            let image = s.file("luks2-\(sector)-\(metadata).img")
            try Tool.sh("""
                truncate -s 40M \(image)
                printf 'pw' | cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
                  --sector-size \(sector) --luks2-metadata-size \(metadata) --luks2-keyslots-size 2m \(image) 2>/dev/null
                """)
            let e = try assertLUKS2MatchesLuksDump(image)
            XCTAssertEqual(e.sectorSize, sector)
            XCTAssertEqual(e.keyslots?.first?.kdf, "pbkdf2")
            XCTAssertEqual(e.keyslots?.first?.iterations, 1000)
            XCTAssertEqual(e.encryptedRanges, [.init(offset: e.payloadOffset!, size: (40 << 20) - e.payloadOffset!)])
        }
    }

    func testLUKS1MadeByQemuImgThroughInspect() throws {
        try Tool.require("qemu-img", "cryptsetup")
        let s = try Scratch(self)
        let plain = s.file("plain.img"), luks = s.file("luks.img")
        try Tool.sh("truncate -s 16M \(plain)")
        try Images.luks1(from: plain, to: luks)
        try assertLUKS1MatchesLuksDump(luks)
        let r = try Tool.dv("inspect", luks, "--json")
        XCTAssertEqual(r.status, 0, r.output)
        let volume = try XCTUnwrap((try r.json()["volumes"] as? [[String: Any]])?.first)
        let e = try XCTUnwrap(volume["encryption"] as? [String: Any])
        XCTAssertEqual(e["format"] as? String, "luks1")
        XCTAssertEqual(e["cipher"] as? String, "aes-xts-plain64")
        XCTAssertEqual(e["uuid"] as? String, try Tool.sh("cryptsetup luksUUID \(luks)").trimmingCharacters(in: .whitespacesAndNewlines))
        let human = try Tool.dv("inspect", luks)
        XCTAssertTrue(human.stdout.contains("luks1 aes-xts-plain64"), human.stdout)
    }

    // MARK: testdata (in every clone)

    /// The dump scripts/make-testdata recorded beside `image`; when cryptsetup is here, its dump of the unpacked
    /// image must say the same (all but the first line, which names the file).
    func recordedLuksDump(_ image: String, at path: String) throws -> String {
        let recorded = try TestData.text("\(image.replacingOccurrences(of: ".img", with: "")).luksDump.txt")
        if (try? Tool.which("cryptsetup")) != nil {
            let live = try Tool.sh("cryptsetup luksDump \(path)")
            XCTAssertEqual(live.split(separator: "\n").dropFirst(), recorded.split(separator: "\n").dropFirst(), image)
        }
        return recorded
    }

    func testTestDataLUKS1AgreesWithLuksDump() throws {
        let path = try TestData.image("luks1.img")
        try assertLUKS1MatchesLuksDump(path, recorded: try recordedLuksDump("luks1.img", at: path))
        let e = try XCTUnwrap(try LUKS1Header.read(try volume(path)))
        XCTAssertEqual(e.uuid, "1d5e7a2c-0b4f-4c3e-9a61-7e2f0c8b5d41")
        XCTAssertEqual(e.cipher, "aes-xts-plain64")
        XCTAssertEqual(e.keyBytes, 32)
        XCTAssertEqual(e.payloadOffset, 2 << 20)
        XCTAssertEqual(e.keyslots?.map(\.active), [true] + Array(repeating: false, count: 7))
        XCTAssertEqual(e.keyslots?.first?.iterations, 1000)
    }

    func testTestDataLUKS2AgreesWithLuksDump() throws {
        let path = try TestData.image("luks2.img")
        let e = try assertLUKS2MatchesLuksDump(path, recorded: try recordedLuksDump("luks2.img", at: path))
        XCTAssertEqual(e.uuid, "2d5e7a2c-0b4f-4c3e-9a61-7e2f0c8b5d42")
        XCTAssertEqual(e.cipher, "aes-xts-plain64")
        XCTAssertEqual(e.keyBytes, 32)
        XCTAssertEqual(e.payloadOffset, 16 << 20)
        XCTAssertEqual(e.sectorSize, 4096)
        XCTAssertEqual(e.headerCopy, "primary")
        XCTAssertEqual(e.keyslots?.map(\.id), [0])
        XCTAssertEqual(e.keyslots?.first?.kdf, "pbkdf2")
        XCTAssertEqual(e.keyslots?.first?.iterations, 1000)
    }

    /// A LUKS2 header cut off inside the primary JSON area, before the secondary header: both copies are named.
    func testTestDataTruncatedLUKS2IsAClearError() throws {
        let path = try TestData.image("luks2-truncated.img")
        assertCorrupt(try LUKS2Header.read(try volume(path)), path: path, mentions: ["both copies", "truncated", "9000 of 16384"])
        let r = try Tool.dv("inspect", path)
        XCTAssertEqual(r.status, 1, r.output)
        XCTAssertTrue(r.stderr.contains("LUKS2 header is damaged") && r.stderr.contains(path), r.stderr)
    }

    // MARK: hostile input

    func testTruncatedLUKS2HeadersAreRefusedClearly() throws {
        let template = try TestData.image("luks2.img")
        let good = try Array(Data(contentsOf: URL(fileURLWithPath: template)).prefix(40000))
        let s = try Scratch(self)
        let path = s.file("cut.img")
        for length in Array(0..<600) + Array(stride(from: 600, to: 40000, by: 997)) {
            try Data(good.prefix(length)).write(to: URL(fileURLWithPath: path))
            do {
                _ = try LUKS2Header.read(try volume(path))
            } catch let error as DiskVaultError {
                XCTAssertEqual(error.code, .corrupt, "length \(length)")
                XCTAssertEqual(error.path, path)
            }
        }
    }

    func testTruncatedLUKS1HeadersAtEveryLength() throws {
        let dir = try Fixtures.directory("luks") + "/luks1-images"
        let good = try Array(Data(contentsOf: URL(fileURLWithPath: "\(dir)/luks1_aes-xts-plain64-sha256.img")).prefix(1024))
        let s = try Scratch(self)
        let path = s.file("cut.img")
        for length in 0..<600 {
            try Data(good.prefix(length)).write(to: URL(fileURLWithPath: path))
            do {
                let e = try LUKS1Header.read(try volume(path))
                XCTAssertTrue(e == nil || length >= 592, "length \(length) parsed")
            } catch let error as DiskVaultError {
                XCTAssertEqual(error.code, .corrupt)
                XCTAssertEqual(error.path, path)
                XCTAssertTrue(error.message.contains("truncated"), error.message)
            }
        }
    }

    /// Rewrites the JSON area of both copies of a LUKS2 header with a valid checksum: the reader must judge the JSON.
    func craftLUKS2(_ template: String, json: [UInt8], to path: String) throws {
        var bytes = try Array(Data(contentsOf: URL(fileURLWithPath: template)))
        let size = 16384
        for (offset, magic) in [(0, LUKS2Header.primaryMagic), (size, LUKS2Header.secondaryMagic)] {
            var header = Array(bytes[offset..<offset + size])
            for i in 4096..<size { header[i] = i - 4096 < json.count ? json[i - 4096] : 0 }
            for i in 448..<512 { header[i] = 0 }
            for (i, b) in magic.enumerated() { header[i] = b }
            let digest = SHA256.digest(header).bytes
            for i in 0..<32 { header[448 + i] = digest[i] }
            bytes.replaceSubrange(offset..<offset + size, with: header)
        }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    func testHostileLUKS2JSONIsRefusedClearly() throws {
        let template = try Fixtures.directory("luks") + "/luks2_valid_hdr.img"
        let s = try Scratch(self)
        let path = s.file("hostile.img")
        let original = try luks2JSON(template)
        let cases: [(String, String, String)] = [
            ("not JSON", "this is { not json", "not a JSON object"),
            ("deeply nested", String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000), "deeper than"),
            ("huge", "{\"x\":\"" + String(repeating: "A", count: 12200) + "\"}", "no \"segments\""),
            ("no crypt segment", "{\"segments\":{},\"keyslots\":{}}", "no crypt segment"),
            ("segment offset not a number", original.replacingOccurrences(of: "\"offset\":\"4194304\"", with: "\"offset\":\"lots\""), "offset is not a number"),
            ("bad sector size", original.replacingOccurrences(of: "\"sector_size\":512", with: "\"sector_size\":3"), "sector size 3"),
        ]
        for (name, json, needle) in cases {
            try craftLUKS2(template, json: Array(json.utf8), to: path)
            XCTAssertThrowsError(try LUKS2Header.read(try volume(path)), name) { error in
                let e = error as? DiskVaultError
                XCTAssertEqual(e?.code, .corrupt, name)
                XCTAssertEqual(e?.path, path, name)
                XCTAssertTrue(e?.message.contains(needle) == true, "\(name): \(e?.message ?? "")")
            }
        }
        // Offsets past the end of the volume: read, with a warning (a detached header), never trusted as data.
        try craftLUKS2(template, json: Array(original.replacingOccurrences(of: "\"offset\":\"4194304\"", with: "\"offset\":\"999999999999\"").utf8), to: path)
        let far = try XCTUnwrap(try LUKS2Header.read(try volume(path)))
        XCTAssertTrue(far.warnings?.contains { $0.contains("past the end") } == true, "\(far.warnings ?? [])")
        XCTAssertEqual(far.encryptedRanges, [])
    }

    func luks2JSON(_ path: String) throws -> String {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return String(decoding: data[4096..<16384].prefix(while: { $0 != 0 }), as: UTF8.self)
    }

    func testDamagedLUKS2CopiesFallBackOrFailClearly() throws {
        let template = try TestData.image("luks2.img")
        let s = try Scratch(self)
        let path = s.file("damaged.img")
        // Primary checksum broken: the secondary is used, with a warning.
        try Tool.sh("cp \(template) \(path); printf 'X' | dd of=\(path) bs=1 seek=5000 conv=notrunc status=none")
        let e = try XCTUnwrap(try LUKS2Header.read(try volume(path)))
        XCTAssertEqual(e.headerCopy, "secondary")
        XCTAssertTrue(e.warnings?.contains { $0.contains("primary header is damaged") } == true, "\(e.warnings ?? [])")
        // Primary magic wiped too: the secondary is found at its fixed offset.
        try Tool.sh("printf 'XXXXXX' | dd of=\(path) bs=1 seek=0 conv=notrunc status=none")
        XCTAssertEqual(try LUKS2Header.read(try volume(path))?.uuid, e.uuid)
        // Both broken: a clear error naming both.
        try Tool.sh("cp \(template) \(path); printf 'X' | dd of=\(path) bs=1 seek=5000 conv=notrunc status=none; printf 'X' | dd of=\(path) bs=1 seek=21000 conv=notrunc status=none")
        XCTAssertThrowsError(try LUKS2Header.read(try volume(path))) { error in
            XCTAssertTrue("\(error)".contains("both copies"), "\(error)")
        }
        // Secondary broken only: primary used, with a warning.
        try Tool.sh("cp \(template) \(path); printf 'X' | dd of=\(path) bs=1 seek=21000 conv=notrunc status=none")
        let p = try XCTUnwrap(try LUKS2Header.read(try volume(path)))
        XCTAssertEqual(p.headerCopy, "primary")
        XCTAssertTrue(p.warnings?.contains { $0.contains("secondary header is damaged") } == true)
    }
}
