// libFuzzer entry for the header parsers and the vault's own formats (blobs, indexes). Build and run with scripts/fuzz; without libFuzzer this program
// replays the inputs named on its command line (crash reproducers, corpus files) through the same parsers.
#if canImport(Glibc)
import Glibc
#endif
import DiskVault

/// Which parser to feed: mbr, gpt, luks1, luks2, bitlocker or layout (all of them, as inspect reads a disk);
/// blob (a chunk blob: header, CRC, inflate into a chunk-sized buffer, and the in-place check a restore
/// makes of a raw blob), index (a recovery point's index), manifest (a point's manifest.json) or vaultconfig
/// (vault.json), or keyvault (a key vault's files: the first byte picks policy.json, a principal's slot, an
/// item or keyvault.json, the rest replaces it; then the key vault is opened as the principal and listed).
let parser = getenv("DISKVAULT_FUZZ_PARSER").map { String(cString: $0) } ?? "layout"

/// A chunk-sized output, and the inflater a restore worker would use.
let chunkOutput = ByteBuffer(capacity: 1 << 20)
// libFuzzer calls in from one thread.
nonisolated(unsafe) let inflater = IsalInflater()

func feedVaultFormat(_ bytes: UnsafeRawBufferPointer) {
    switch parser {
    case "blob":
        // A damaged blob is refused with a reason; only crashes, hangs and leaks are findings.
        _ = try? Blob.decode(bytes, into: chunkOutput.storage, inflater: inflater)
        _ = try? Blob.check(bytes)
    case "manifest":
        // A manifest as a vault holds it: parsed, then checked as every reader of a point checks it.
        do {
            let manifest = try Manifest.decode(Array(bytes), source: "fuzz-input")
            try manifest.validate(vaultChunkSize: 1 << 20, file: "fuzz-input")
        } catch {
            precondition(error.path == "fuzz-input", "error without the manifest's name: \(error)")
        }
    case "vaultconfig":
        do {
            let config = try VaultConfig.decode(Array(bytes), source: "fuzz-input")
            precondition(config.prefixDigits >= 0 && config.chunkSize >= 64 << 10, "a configuration that decodes is sane")
        } catch {
            precondition(error.path == "fuzz-input", "error without the file's name: \(error)")
        }
    default:
        do {
            // As every reader of the vault does: streamed, zero runs skipped without a loop per chunk.
            let reader = try ChunkIndexReader(MemoryObjectReader(Array(bytes)), source: "fuzz-input")
            var chunks = 0
            try reader.forEachDataChunk { (i, _) in chunks = i + 1 }
            precondition(chunks <= reader.count, "no data chunk beyond the index's count")
            guard reader.count <= 1 << 16 else { return }
            let index = try ChunkIndex.decode(Array(bytes), source: "fuzz-input")
            let v = bytes.count >= 12 ? bytes.loadUnaligned(fromByteOffset: 8, as: UInt32.self) : 0
            precondition(index.encoded(version: UInt32(littleEndian: v)) == Array(bytes), "an index that decodes encodes to the same bytes")
        } catch {
            precondition(error.path == "fuzz-input", "error without the index's name: \(error)")
        }
    }
}

/// A key vault made once per run: an AES KEK, a secret wrapped by it, a secret in clear, principal p (get,list).
let fuzzKeyVault: (root: String, credential: String, files: [String: [UInt8]]) = {
    let root = "/dev/shm/diskvault-fuzz-kv-\(getpid())"
    let kv = try! KeyVault.create(root, passphrase: Array("fuzz".utf8), logN: 10)
    _ = try! kv.createKey(name: "kek", kind: .aes256)
    _ = try! kv.setSecret(name: "wrapped", value: Array("a disk key".utf8), wrapKey: "kek", volume: "vol-1")
    _ = try! kv.setSecret(name: "plain", value: Array("another disk key".utf8), volume: "vol-2")
    let credential = "\(root).cred"
    let bytes = try! kv.grantAccess(principal: "p", keys: [.get, .list], secrets: [.get, .list])
    _ = try? FileSystem.remove(credential)
    try! FileSystem.writeFileAtomically(credential, bytes)
    let item = try! FileSystem.list("\(root)/items").sorted()[0]
    var files: [String: [UInt8]] = [:]
    for f in ["policy.json", "principals/p.json", "items/\(item)", "keyvault.json"] { files[f] = try! FileSystem.readFile("\(root)/\(f)") }
    return (root, credential, files)
}()

func feedKeyVault(_ bytes: UnsafeRawBufferPointer) {
    let kv = fuzzKeyVault
    let names = kv.files.keys.sorted()
    let which = names[Int(bytes.first ?? 0) % names.count]
    let path = "\(kv.root)/\(which)"
    try! FileSystem.writeFileAtomically(path, Array(bytes.dropFirst()))
    defer { try! FileSystem.writeFileAtomically(path, kv.files[which]!) }
    // Refused with a reason, or opened and listed; only crashes, hangs and leaks are findings.
    if let opened = try? KeyVault.open(kv.root, principal: "p", credentialFile: kv.credential) {
        _ = try? opened.secrets()
        _ = try? opened.keys()
        if let s = try? opened.secret(forVolume: "vol-2") { _ = try? opened.unwrappedValue(of: s) }
    }
    // The administrator's scrypt parameters come from keyvault.json: not the fuzzer's to pick (up to 1 GiB).
    if which != "keyvault.json", let admin = try? KeyVault.open(kv.root, passphrase: Array("fuzz".utf8)) {
        if let s = try? admin.secret(name: "wrapped") { _ = try? admin.unwrappedValue(of: s) }
    }
}

func feed(_ bytes: UnsafeRawBufferPointer) {
    if parser == "keyvault" { return feedKeyVault(bytes) }
    if ["blob", "index", "manifest", "vaultconfig"].contains(parser) { return feedVaultFormat(bytes) }
    let fd = FuzzInput.memfd()
    let file = FileDescriptor(adopting: fd, path: "fuzz-input")
    if bytes.count > 0 { try? file.write(bytes, at: 0) }
    let volume = VolumeBytes(file: file, image: "fuzz-input", offset: 0, size: UInt64(bytes.count))
    do {
        switch parser {
        case "luks1": _ = try LUKS1Header.read(volume)
        case "luks2": _ = try LUKS2Header.read(volume)
        case "bitlocker": _ = try BitLockerHeader.read(volume)
        case "mbr", "gpt", "layout": _ = try LayoutReader.read(file: file, image: "fuzz-input", size: UInt64(bytes.count), strict: true)
        default: fatalError("unknown DISKVAULT_FUZZ_PARSER \(parser)")
        }
    } catch {
        // A clear error is a correct answer to hostile input; only crashes, hangs and leaks are findings.
        precondition(error.path == "fuzz-input", "error without the image's name: \(error)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    feed(UnsafeRawBufferPointer(start: data, count: data == nil ? 0 : size))
    return 0
}

#if FUZZING
// libFuzzer's own driver, entered from this main (built with -sanitize=fuzzer by scripts/fuzz).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

var argc = CommandLine.argc
var argv = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzOneInput))
#else
for path in CommandLine.arguments.dropFirst() {
    guard let bytes = try? FileSystem.readFile(path) else {
        print("cannot read \(path)")
        exit(1)
    }
    bytes.withUnsafeBytes { feed($0) }
    print("\(path): ok (\(parser))")
}
#endif
