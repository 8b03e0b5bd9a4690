import Foundation
import XCTest

/// Where blobs sit: new vaults keep them in one folder (`chunks/<64 hex>`); vaults made before, with
/// `chunks/<4 hex>/<64 hex>` and no `chunkPrefixDigits` in vault.json, keep working unchanged.
final class VaultLayoutTests: XCTestCase {
    func makeImage(_ path: String, seed: String) throws {
        try Tool.sh("""
            head -c 3M /dev/urandom > \(path)
            yes '\(seed): a line of a text file on a disk' | head -c 3M >> \(path)
            """)
    }

    func blobFiles(_ vault: String) -> [String] {
        treeListing("\(vault)/chunks").filter { $0.split(separator: "/").last?.count == 64 }
    }

    func testNewVaultKeepsBlobsInOneFolder() throws {
        let s = try Scratch(self)
        let vault = s.file("vault"), image = s.file("disk.img")
        try makeImage(image, seed: "one")
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--chunk-size", "1MiB", "--encryption", "none").status, 0)
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(vault)/vault.json"))) as? [String: Any]
        XCTAssertEqual(config?["chunkPrefixDigits"] as? Int, 0)
        XCTAssertEqual(config?["version"] as? Int, 2)
        let r = try Tool.dv("backup", image, "--vault", vault, "--disk", "d", "--json")
        XCTAssertEqual(r.status, 0, r.output)
        let files = blobFiles(vault)
        XCTAssertEqual(files.count, (try r.json()["stats"] as? [String: Any])?["newChunks"] as? Int)
        XCTAssertTrue(files.allSatisfy { !$0.contains("/") }, "no prefix folders: \(files)")
    }

    func testVaultOfTheEarlierLayoutStillBacksUpRestoresVerifiesAndCollects() throws {
        let s = try Scratch(self)
        let vault = s.file("vault"), image = s.file("disk.img")
        try makeImage(image, seed: "one")
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--chunk-size", "1MiB", "--encryption", "none").status, 0)
        XCTAssertEqual(try Tool.dv("backup", image, "--vault", vault, "--disk", "d").status, 0)
        // Turn it into a vault as format version 1 wrote it: blobs under a 4-hex folder, no field in vault.json.
        _ = try Tool.sh("""
            cd \(vault)/chunks && for f in *; do mkdir -p "${f:0:4}" && mv "$f" "${f:0:4}/$f"; done
            jq 'del(.chunkPrefixDigits) | .version = 1' \(vault)/vault.json > \(vault)/vault.json.new && mv \(vault)/vault.json.new \(vault)/vault.json
            """)
        XCTAssertTrue(blobFiles(vault).allSatisfy { $0.split(separator: "/").count == 2 && $0.hasPrefix(String($0.split(separator: "/")[1].prefix(4))) })

        // A second backup of changed data: its new blobs land in the same layout.
        try makeImage(image, seed: "two")
        let second = try Tool.dv("backup", image, "--vault", vault, "--disk", "d", "--json")
        XCTAssertEqual(second.status, 0, second.output)
        XCTAssertGreaterThan((try second.json()["stats"] as? [String: Any])?["newChunks"] as? Int ?? 0, 0)
        XCTAssertTrue(blobFiles(vault).allSatisfy { $0.split(separator: "/").count == 2 }, "\(blobFiles(vault))")

        let verify = try Tool.dv("verify", "--vault", vault)
        XCTAssertEqual(verify.status, 0, verify.output)
        let target = s.file("restored.img")
        XCTAssertEqual(try Tool.dv("restore", "--vault", vault, "--disk", "d", "--target", target).status, 0)
        XCTAssertTrue(try fileBytesEqual(image, target))

        // gc finds blobs in the prefix folders: every referenced one kept, an unreferenced one removed.
        let kept = blobFiles(vault).count
        let stray = String(repeating: "ab", count: 32)
        _ = try Tool.sh("mkdir -p \(vault)/chunks/abab && cp \(vault)/chunks/\(blobFiles(vault)[0]) \(vault)/chunks/abab/\(stray)")
        let gc = try Tool.dv("gc", "--vault", vault, "--json")
        XCTAssertEqual(gc.status, 0, gc.output)
        XCTAssertEqual(try gc.json()["blobsRemoved"] as? Int, 1)
        XCTAssertEqual(try gc.json()["blobsKept"] as? Int, kept)
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(vault)/chunks/abab/\(stray)"))
    }

    func testVaultJSONWhoseVersionAndLayoutDisagreeIsRefused() throws {
        let s = try Scratch(self)
        let vault = s.file("vault")
        XCTAssertEqual(try Tool.dv("vault", "init", vault, "--encryption", "none").status, 0)
        for (edit, says) in [
            (".version = 1", "format version 1 has chunkPrefixDigits 0; expected none"),
            ("del(.chunkPrefixDigits)", "format version 2 has chunkPrefixDigits missing"),
            (".chunkPrefixDigits = 3", "chunkPrefixDigits 3; expected 0, 2 or 4"),
            (".version = 3", "vault format version 3 is not supported"),
        ] {
            _ = try Tool.sh("cp \(vault)/vault.json \(s.file("good.json")) && jq '\(edit)' \(s.file("good.json")) > \(vault)/vault.json")
            let r = try Tool.dv("points", "--vault", vault)
            XCTAssertEqual(r.status, 1, edit)
            XCTAssertTrue(r.stderr.contains(says), "\(edit): \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("\(vault)/vault.json"), r.stderr)
            _ = try Tool.sh("cp \(s.file("good.json")) \(vault)/vault.json")
        }
    }
}
