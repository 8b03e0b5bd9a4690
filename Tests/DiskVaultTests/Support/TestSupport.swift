import DiskVault
import Foundation
import XCTest

/// A scratch directory, removed when the test ends.
final class Scratch {
    let path: String

    init(_ test: XCTestCase) throws {
        let base = ProcessInfo.processInfo.environment["DISKVAULT_TEST_TMP"] ?? NSTemporaryDirectory()
        path = "\(base)/dv-test-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        // World-readable so a test can run the tool as another user.
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
        let p = path
        test.addTeardownBlock { try? FileManager.default.removeItem(atPath: p) }
    }

    func file(_ name: String) -> String { "\(path)/\(name)" }
}

struct RunResult {
    var status: Int32
    var stdout: String
    var stderr: String
    var output: String { stdout + stderr }

    /// stdout parsed as one JSON object.
    func json() throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any] else {
            throw NSError(domain: "test", code: 1, userInfo: [NSLocalizedDescriptionKey: "not a JSON object: \(stdout)"])
        }
        return object
    }
}

enum Tool {
    /// The diskvault executable built beside the test bundle.
    static let diskvault: String = {
        if let explicit = ProcessInfo.processInfo.environment["DISKVAULT_BIN"] { return explicit }
        let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
        for candidate in ["\(dir)/diskvault", "\(dir)/../diskvault", FileManager.default.currentDirectoryPath + "/.build/debug/diskvault"]
        where FileManager.default.isExecutableFile(atPath: candidate) {
            return candidate
        }
        return "diskvault"
    }()

    /// The passphrase of the vaults the tests make with `vault init` (encrypted by default), given to every child
    /// as DISKVAULT_PASSPHRASE unless the caller passes that variable in `environment:` (`""` for none) or the
    /// test process has it already. A vault made with `--passphrase-file` of another passphrase needs that file.
    static let vaultPassphrase = "diskvault test vault passphrase"

    /// The environment of a child: the test process's without DISKVAULT_VAULT, with `vaultPassphrase` as above,
    /// then `environment`.
    static func childEnvironment(_ environment: [String: String] = [:]) -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "DISKVAULT_VAULT")
        if env["DISKVAULT_PASSPHRASE"] == nil { env["DISKVAULT_PASSPHRASE"] = vaultPassphrase }
        for (k, v) in environment { env[k] = v }
        return env
    }

    /// Runs a program to completion. `stdinPath` feeds standard input from a file.
    @discardableResult
    static func run(_ executable: String, _ arguments: [String], stdinPath: String? = nil, environment: [String: String] = [:]) throws -> RunResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable.hasPrefix("/") ? executable : try which(executable))
        process.arguments = arguments
        process.environment = childEnvironment(environment)
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        if let stdinPath {
            process.standardInput = FileHandle(forReadingAtPath: stdinPath)
        } else {
            // A fresh handle each time: corelibs Foundation closes FileHandle.nullDevice after a run.
            process.standardInput = FileHandle(forReadingAtPath: "/dev/null")
        }
        try process.run()
        // Drain both pipes concurrently so neither fills up.
        let errData = LockedData()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async {
            errData.set(err.fileHandleForReading.readDataToEndOfFile())
            group.leave()
        }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        return RunResult(
            status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
            stderr: String(decoding: errData.get(), as: UTF8.self))
    }

    /// Starts diskvault (or `executable`) in the background with its output discarded.
    static func start(_ arguments: [String], executable: String? = nil) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try executable.map { try which($0) } ?? diskvault)
        process.arguments = arguments
        process.environment = childEnvironment()
        process.standardInput = FileHandle(forReadingAtPath: "/dev/null")
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        return process
    }

    /// Runs diskvault.
    @discardableResult
    static func dv(_ arguments: String..., stdinPath: String? = nil, environment: [String: String] = [:]) throws -> RunResult {
        try run(diskvault, arguments, stdinPath: stdinPath, environment: environment)
    }

    /// Runs diskvault with arguments built as an array.
    @discardableResult
    static func dv(_ arguments: [String], stdinPath: String? = nil, environment: [String: String] = [:]) throws -> RunResult {
        try run(diskvault, arguments, stdinPath: stdinPath, environment: environment)
    }

    /// Runs a shell command line and fails the test when it fails.
    @discardableResult
    static func sh(_ command: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let r = try run("/bin/bash", ["-c", "set -eu; " + command])
        guard r.status == 0 else {
            XCTFail("command failed (\(r.status)): \(command)\n\(r.output)", file: file, line: line)
            throw NSError(domain: "test", code: Int(r.status), userInfo: [NSLocalizedDescriptionKey: r.output])
        }
        return r.stdout
    }

    static func which(_ name: String) throws -> String {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":").map(String.init)
        for dir in path + ["/usr/sbin", "/sbin"] {
            let p = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        throw XCTSkip("\(name) is not installed (scripts/test installs it)")
    }

    /// Skips the test, naming the package, when a real tool it needs is absent.
    static func require(_ names: String...) throws {
        for n in names { _ = try which(n) }
    }
}

final class LockedData: @unchecked Sendable {
    private let lock = NSLock()
    private var data = Data()
    func set(_ d: Data) { lock.lock(); data = d; lock.unlock() }
    func get() -> Data { lock.lock(); defer { lock.unlock() }; return data }
}

/// Real images made by real tools, small enough for tests.
enum Images {
    static let passphrase = "correct horse battery staple"

    /// An ext4 file system of `megabytes` MiB holding real files (copied from /usr/share/doc and /usr/lib).
    static func ext4(_ path: String, megabytes: Int, scratch: Scratch) throws {
        try Tool.require("mkfs.ext4")
        let tree = scratch.file("tree-\(UUID().uuidString.prefix(6))")
        let budget = megabytes * 1024 * 6 / 10
        // Copy real files up to about 60% of the file system: text (compressible) and binaries.
        try Tool.sh("""
            mkdir -p \(tree)/doc \(tree)/lib
            total=0
            for f in $(find /usr/share/doc /usr/lib/x86_64-linux-gnu -maxdepth 2 -type f -size -2M 2>/dev/null | sort | head -4000); do
              s=$(( $(stat -c %s "$f") / 1024 + 1 ))
              [ $((total + s)) -gt \(budget) ] && break
              cp "$f" \(tree)/$( [ "${f#/usr/share/doc}" != "$f" ] && echo doc || echo lib )/$(echo "$f" | tr / _) 2>/dev/null || true
              total=$((total + s))
            done
            mkfs.ext4 -q -F -d \(tree) \(path) \(megabytes)M
            rm -rf \(tree)
            """)
    }

    /// A LUKS1 image made by qemu-img from a plain image, with real encrypted data.
    static func luks1(from plain: String, to path: String) throws {
        try Tool.require("qemu-img")
        // qemu-img's key-slot timing fails now and then ("Unable to get accurate CPU usage"): try again.
        try Tool.sh("""
            for try in $(seq 20); do
              qemu-img convert -O luks --object secret,id=sec0,data='\(passphrase)' -o key-secret=sec0,iter-time=100 \(plain) \(path) 2>/dev/null && exit 0
              rm -f \(path); sleep 0.2
            done
            echo "qemu-img failed 20 times to make a LUKS image" >&2; exit 1
            """)
    }

    /// A 16 MiB qcow2 that qemu encrypts (LUKS inside), its passphrase in `secretFile`; retried like `luks1`.
    static func encryptedQcow2(_ path: String, secretFile: String) throws {
        try Tool.require("qemu-img")
        try Tool.sh("""
            for try in $(seq 20); do
              qemu-img create -q -f qcow2 --object secret,id=k,file=\(secretFile) -o encrypt.format=luks,encrypt.key-secret=k,encrypt.iter-time=10 \(path) 16M 2>/dev/null && exit 0
              rm -f \(path); sleep 0.2
            done
            echo "qemu-img failed 20 times to make an encrypted qcow2" >&2; exit 1
            """)
    }

    /// A 20 MiB LUKS2 image by cryptsetup, opened by the 32 random bytes it writes to `key`, with 4 MiB of
    /// random bytes (ciphertext, as far as anyone can tell) at 8 MiB; returns its UUID.
    static func luks2(_ path: String, key: String) throws -> String {
        try Tool.require("cryptsetup")
        try Tool.sh("""
            head -c 32 /dev/urandom > \(key); truncate -s 20M \(path)
            cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file \(key) \(path)
            head -c 4M /dev/urandom | dd of=\(path) bs=1M seek=8 conv=notrunc status=none
            """)
        return try Tool.sh("cryptsetup luksUUID \(path)").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Writes `pattern` through the LUKS layer with qemu-io: real ciphertext changes.
    static func luksWrite(_ path: String, pattern: UInt8, offset: String, length: String) throws {
        try Tool.require("qemu-io")
        try Tool.sh("qemu-io --object secret,id=sec0,data='\(passphrase)' --image-opts driver=luks,key-secret=sec0,file.filename=\(path) -c 'write -P \(pattern) \(offset) \(length)' >/dev/null")
    }

    /// Decrypts a LUKS image with qemu-img to a raw file.
    static func luksDecrypt(_ path: String, to out: String) throws {
        try Tool.sh("qemu-img convert --object secret,id=sec0,data='\(passphrase)' --image-opts driver=luks,key-secret=sec0,file.filename=\(path) -O raw \(out)")
    }
}

func fileBytesEqual(_ a: String, _ b: String) throws -> Bool {
    let r = try Tool.run("/usr/bin/cmp", ["-s", a, b])
    return r.status == 0
}

/// Bytes allocated on disk for a file (st_blocks × 512).
func allocatedBytes(_ path: String) throws -> UInt64 {
    var st = stat()
    guard stat(path, &st) == 0 else { throw NSError(domain: "test", code: 2, userInfo: [NSLocalizedDescriptionKey: "stat \(path)"]) }
    return UInt64(st.st_blocks) * 512
}

/// A regular file's tree under a directory, for checking that a failed command wrote nothing.
func treeListing(_ path: String) -> [String] {
    (FileManager.default.enumerator(atPath: path)?.allObjects as? [String] ?? []).sorted()
}

/// A vault's tree without its job records and locks: what a refused command must leave unchanged.
func vaultContents(_ vault: String) -> [String] {
    treeListing(vault).filter { !$0.hasPrefix("jobs") && !$0.hasPrefix("locks") }
}

/// SplitMix64: reproducible random bytes, so that a failing random case can be replayed from its seed.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: next()) }
}

/// Asserts that `body` fails with a `.corrupt` DiskVaultError naming `path` and saying each of `mentions`.
func assertCorrupt<T>(
    _ body: @autoclosure () throws -> T, path: String, mentions: [String] = [], _ context: String = "",
    file: StaticString = #filePath, line: UInt = #line
) {
    do {
        let value = try body()
        XCTFail("\(context): expected a corrupt error, got \(value)", file: file, line: line)
    } catch let error as DiskVaultError {
        XCTAssertEqual(error.code, .corrupt, context, file: file, line: line)
        XCTAssertEqual(error.path, path, context, file: file, line: line)
        XCTAssertFalse(error.message.isEmpty, context, file: file, line: line)
        for text in mentions {
            XCTAssertTrue(error.message.contains(text), "\(context): \"\(error.message)\" does not say \"\(text)\"", file: file, line: line)
        }
    } catch {
        XCTFail("\(context): not a DiskVaultError: \(error)", file: file, line: line)
    }
}

/// Waits (up to `seconds`) until `path` exists: a started process has reached the point that creates it.
func waitUntilExists(_ path: String, seconds: Double = 2) {
    let deadline = Date().addingTimeInterval(seconds)
    while !FileManager.default.fileExists(atPath: path) && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
}

/// The holders' records under a vault's locks/ (`NAME@PID-TOKEN.json`): a live or a dead holder's; the lock
/// files themselves (`NAME.lock`) stay for good and hold nothing.
func lockRecords(_ vault: String, _ name: String? = nil) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: "\(vault)/locks")) ?? []).filter { entry in
        entry.hasSuffix(".json") && (name.map { entry.hasPrefix("\($0)@") } ?? true)
    }.sorted()
}

/// Everything under locks/ but the lock files: what an interrupted run must not leave behind.
func lockLeftovers(_ vault: String) -> [String] {
    treeListing("\(vault)/locks").filter { !$0.hasSuffix(".lock") }
}

/// Waits (up to `seconds`) until a process holds lock `name` of `vault` (its record has appeared).
func waitForLockHolder(_ vault: String, _ name: String, seconds: Double = 2) {
    let deadline = Date().addingTimeInterval(seconds)
    while lockRecords(vault, name).isEmpty && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
}

extension Scratch {
    /// An image of `megabytes` MiB, half random bytes and half text: some chunks compress, some do not.
    func mixedImage(_ name: String, megabytes: Int) throws -> String {
        let image = file(name)
        try Tool.sh("head -c \(megabytes / 2)M /dev/urandom > \(image); yes 'text in a disk image' | head -c \(megabytes / 2)M >> \(image)")
        return image
    }
}
