import Foundation

/// A drive of a running qemu as QMP shows it: the block node its device reads, the device's QOM path, the
/// disk's size, the image file under it, and the dirty bitmaps on the node.
public struct QemuDrive: Sendable {
    public var node: String
    public var device: String?
    public var size: UInt64
    public var file: String?
    /// True when qemu decrypts the image (a qcow2 with LUKS encryption): read live, it would be plaintext.
    public var encrypted: Bool
    public var bitmaps: [Bitmap]

    public struct Bitmap: Sendable, Equatable {
        public var name: String
        public var recording: Bool
        public var busy: Bool
        public var inconsistent: Bool
        public var granularity: Int
    }
}

/// The names a live backup of `disk` into one vault gives what it makes in qemu, so that a later run finds what
/// a killed one left behind, and never touches what a backup of the same disk into another vault made (each
/// vault keeps its own bitmap chain). qemu limits node names to 31 characters: the fleece node is named by a hash.
struct LiveNames {
    let disk: String
    /// A tag of the vault (from its id).
    let vault: String

    init(disk: String, vaultID: String) {
        self.disk = disk
        vault = String(SHA256.digest(Array(vaultID.utf8)).hex.prefix(8))
    }

    var job: String { "diskvault-\(vault)-\(disk)" }
    var export: String { "diskvault-\(vault)-\(disk)" }
    var tag: String { String(SHA256.digest(Array("\(vault)/\(disk)".utf8)).hex.prefix(16)) }
    var fleeceNode: String { "dvfleece-" + tag }
    /// The protocol node of the overlay's file, under `fleeceNode`.
    var fleeceFileNode: String { "dvfleece-" + tag + "-f" }
    /// The job that formats the overlay.
    var createJob: String { "diskvault-\(vault)-\(disk)-create" }
    /// The overlay file's name: the disk's tag and the pid of the run that made it.
    var fleeceFilePrefix: String { "diskvault-fleece-\(tag)-" }
    func fleeceFile(in scratch: String) -> String { "\(scratch)/\(fleeceFilePrefix)\(ProcessLiveness.currentID)-\(randomHex(4)).qcow2" }
    var bitmapPrefix: String { "diskvault-\(disk).\(vault)." }
    func newBitmap() -> String { bitmapPrefix + randomHex(4) }
}

/// The QMP side of a live backup of one or more drives of one qemu (a VM's disks share one transaction, so
/// they are consistent with each other): each drive's point in time is a fleecing node — a qcow2 overlay whose
/// backing is the drive, filled by a `blockdev-backup sync=none` job with the old data of every block the
/// guest writes — exported read-only over NBD on a unix socket with the frozen dirty bitmap. Every step is
/// undone by `teardown`, whatever happened; a run killed before it is cleaned up by the next (`clearLeftovers`).
final class FleeceSession {
    let qmp: QMPClient
    let scratch: String
    /// The NBD server's socket, once started by this session.
    private(set) var socket: String?
    private var serverStarted = false

    struct Drive {
        let disk: String
        let names: LiveNames
        var info: QemuDrive
        /// The fleece overlay's file, once created.
        var fleeceFile: String?
        var fleeceAdded = false
        var fileNodeAdded = false
        var jobStarted = false
        var exported = false
    }
    private(set) var drives: [Drive]

    init(qmp: QMPClient, scratch: String, vaultID: String, drives: [(disk: String, info: QemuDrive)]) {
        self.qmp = qmp
        self.scratch = scratch
        self.drives = drives.map { Drive(disk: $0.disk, names: LiveNames(disk: $0.disk, vaultID: vaultID), info: $0.info) }
    }

    // MARK: Finding drives

    /// Every drive of the qemu with a medium, as `query-block` lists them.
    static func listDrives(_ qmp: QMPClient) throws(DiskVaultError) -> [QemuDrive] {
        guard let blocks = try qmp.execute("query-block") as? [[String: Any]] else {
            throw DiskVaultError(.io, "qemu's query-block answer is not a list", path: qmp.socketPath)
        }
        let nodes = try namedNodes(qmp)
        var out: [QemuDrive] = []
        for b in blocks {
            guard let inserted = b["inserted"] as? [String: Any], let node = inserted["node-name"] as? String else { continue }
            let image = inserted["image"] as? [String: Any] ?? [:]
            let qdev = (b["qdev"] as? String).flatMap { $0.isEmpty ? nil : $0 }
            out.append(QemuDrive(
                node: node, device: qdev, size: (image["virtual-size"] as? NSNumber)?.uint64Value ?? 0,
                file: inserted["file"] as? String, encrypted: inserted["encrypted"] as? Bool ?? false,
                bitmaps: bitmaps(of: node, in: nodes)))
        }
        return out
    }

    static func namedNodes(_ qmp: QMPClient) throws(DiskVaultError) -> [[String: Any]] {
        guard let nodes = try qmp.execute("query-named-block-nodes", ["flat": true]) as? [[String: Any]] else {
            throw DiskVaultError(.io, "qemu's query-named-block-nodes answer is not a list", path: qmp.socketPath)
        }
        return nodes
    }

    static func bitmaps(of node: String, in nodes: [[String: Any]]) -> [QemuDrive.Bitmap] {
        guard let n = nodes.first(where: { $0["node-name"] as? String == node }) else { return [] }
        return (n["dirty-bitmaps"] as? [[String: Any]] ?? []).compactMap { b in
            guard let name = b["name"] as? String else { return nil }
            return QemuDrive.Bitmap(
                name: name, recording: b["recording"] as? Bool ?? false, busy: b["busy"] as? Bool ?? false,
                inconsistent: b["inconsistent"] as? Bool ?? false, granularity: b["granularity"] as? Int ?? 0)
        }
    }

    /// The drive `spec` names: a node name, a device's QOM path (/machine/peripheral/vda/virtio-backend), or
    /// its qdev id (vda).
    static func resolve(_ spec: String, in drives: [QemuDrive], qmp: QMPClient) throws(DiskVaultError) -> QemuDrive {
        let found = drives.first { $0.node == spec || $0.device == spec }
            ?? drives.first { d in d.device.map { $0.hasPrefix("/machine/peripheral/\(spec)/") } ?? false }
        guard let found else {
            let known = drives.map { d in d.device.map { "\(d.node) (\($0))" } ?? d.node }
            throw DiskVaultError(.notFound, "qemu has no drive \(spec)\(known.isEmpty ? " (it has none)" : "; its drives: " + known.joined(separator: ", "))", path: qmp.socketPath)
        }
        return found
    }

    // MARK: Leftovers of a killed run

    /// Removes what a run killed before its teardown left for these disks: the export, the backup job, the
    /// fleece node (and its file) — under the disk's lock no live run of the disk can own them. A killed run's
    /// bitmaps are put right by `settleBitmaps`. Returns what was removed, for the output.
    static func clearLeftovers(_ qmp: QMPClient, names: [LiveNames], scratch: String) throws(DiskVaultError) -> [String] {
        var removed: [String] = []
        let exports = (try qmp.execute("query-block-exports") as? [[String: Any]]) ?? []
        let jobs = (try qmp.execute("query-block-jobs") as? [[String: Any]]) ?? []
        let nodes = try namedNodes(qmp)
        for n in names {
            if exports.contains(where: { $0["id"] as? String == n.export }) {
                try deleteExport(qmp, n.export)
                removed.append("export \(n.export)")
            }
            if jobs.contains(where: { $0["device"] as? String == n.job }) {
                try cancelJob(qmp, n.job)
                removed.append("backup job \(n.job)")
            }
            for node in [n.fleeceNode, n.fleeceFileNode] where nodes.contains(where: { $0["node-name"] as? String == node }) {
                _ = try qmp.attempt("blockdev-del", ["node-name": node])
                removed.append("fleece node \(node)")
            }
            _ = try qmp.attempt("job-dismiss", ["id": n.createJob])
            // Overlay files of this disk whose run is gone (its pid is in the name).
            for f in (try? FileManager.default.contentsOfDirectory(atPath: scratch)) ?? [] where f.hasPrefix(n.fleeceFilePrefix) {
                let pid = f.dropFirst(n.fleeceFilePrefix.count).split(separator: "-").first.flatMap { Int32($0) } ?? 0
                if pid > 0 && !ProcessLiveness.exists(pid) {
                    unlink("\(scratch)/\(f)")
                    removed.append("overlay file \(f)")
                }
            }
        }
        // An NBD server with no export left is a killed run's (ours export nothing else): stopped, so that
        // this run can start its own.
        if !removed.isEmpty, (try qmp.execute("query-block-exports") as? [[String: Any]])?.isEmpty ?? false {
            _ = try qmp.attempt("nbd-server-stop")
        }
        return removed
    }

    // MARK: The point in time

    /// One transaction for every drive: the new bitmap added (recording from now), the trusted one disabled
    /// (frozen: it says what changed since the previous point), the fleecing job started. After it returns, each
    /// drive's export reads as the disk was at this instant.
    func begin(newBitmaps: [String], frozen: [String?]) throws(DiskVaultError) {
        precondition(newBitmaps.count == drives.count && frozen.count == drives.count)
        for i in drives.indices { try makeOverlay(i) }
        var actions: [[String: Any]] = []
        for (i, d) in drives.enumerated() {
            actions.append(["type": "block-dirty-bitmap-add", "data": ["node": d.info.node, "name": newBitmaps[i], "persistent": false]])
            if let old = frozen[i] {
                actions.append(["type": "block-dirty-bitmap-disable", "data": ["node": d.info.node, "name": old]])
            }
            actions.append(["type": "blockdev-backup", "data": [
                "device": d.info.node, "target": d.names.fleeceNode, "sync": "none", "job-id": d.names.job,
                "auto-finalize": true, "auto-dismiss": true,
            ]])
        }
        try qmp.execute("transaction", ["actions": actions])
        for i in drives.indices { drives[i].jobStarted = true }
    }

    /// The fleece overlay of drive `i`, made by qemu itself (no qemu-img process): the file's name taken
    /// exclusively (mode 0600), opened as a protocol node, formatted as a qcow2 of the disk's size by a
    /// `blockdev-create` job, then opened as a qcow2 whose backing is the drive.
    private func makeOverlay(_ i: Int) throws(DiskVaultError) {
        let names = drives[i].names
        let file = names.fleeceFile(in: scratch)
        let placeholder = try FileDescriptor(path: file, flags: O_WRONLY | O_CREAT | O_EXCL, mode: FileSystem.privateFileMode, doing: "cannot create the fleecing overlay")
        try placeholder.close()
        drives[i].fleeceFile = file
        try qmp.execute("blockdev-add", ["driver": "file", "node-name": names.fleeceFileNode, "filename": file])
        drives[i].fileNodeAdded = true
        try qmp.execute("blockdev-create", ["job-id": names.createJob, "options": [
            "driver": "qcow2", "file": names.fleeceFileNode, "size": NSNumber(value: drives[i].info.size),
        ]])
        _ = try qmp.waitForEvent("JOB_STATUS_CHANGE") { $0["id"] as? String == names.createJob && $0["status"] as? String == "concluded" }
        let jobs = (try qmp.execute("query-jobs") as? [[String: Any]]) ?? []
        let problem = jobs.first { $0["id"] as? String == names.createJob }?["error"] as? String
        _ = try qmp.attempt("job-dismiss", ["id": names.createJob])
        if let problem { throw DiskVaultError(.io, "qemu could not make the fleecing overlay: \(problem)", path: file) }
        try qmp.execute("blockdev-add", [
            "driver": "qcow2", "node-name": names.fleeceNode, "file": names.fleeceFileNode, "backing": drives[i].info.node,
        ])
        drives[i].fleeceAdded = true
    }

    /// Starts the NBD server on a socket in the scratch folder and exports each drive's fleece node read-only,
    /// with its frozen bitmap; returns each export's URI.
    func export(frozen: [String?]) throws(DiskVaultError) -> [String] {
        let path = "\(scratch)/diskvault-nbd-\(ProcessLiveness.currentID)-\(randomHex(4)).sock"
        let started = try qmp.attempt("nbd-server-start", ["addr": ["type": "unix", "data": ["path": path]]])
        if case .failure(let e) = started {
            let busy = e.desc.contains("already running")
            throw DiskVaultError(busy ? .locked : .io, busy
                ? "qemu already runs an NBD server (another live backup of this VM, or an export of its own); qemu has only one: back up the VM's disks together with diskvault vm backup, or wait"
                : "qemu refused nbd-server-start: \(e.desc)", path: qmp.socketPath)
        }
        socket = path
        serverStarted = true
        var uris: [String] = []
        for i in drives.indices {
            var args: [String: Any] = ["type": "nbd", "id": drives[i].names.export, "node-name": drives[i].names.fleeceNode,
                                       "name": drives[i].disk, "writable": false]
            if let b = frozen[i] { args["bitmaps"] = [b] }
            try qmp.execute("block-export-add", args)
            drives[i].exported = true
            uris.append("nbd+unix:///\(drives[i].disk)?socket=\(path)")
        }
        return uris
    }

    /// Whether every drive's fleecing job still runs: a job that failed (its overlay could not take the old data
    /// of a block the guest wrote) means the export may no longer be the point in time.
    func checkJobs() throws(DiskVaultError) {
        let jobs = (try qmp.execute("query-block-jobs") as? [[String: Any]]) ?? []
        for d in drives {
            guard let job = jobs.first(where: { $0["device"] as? String == d.names.job }) else {
                throw DiskVaultError(.io, "the fleecing job of disk \(d.disk) in qemu ended while the disk was read; no point was written", path: qmp.socketPath)
            }
            let status = job["status"] as? String ?? ""
            if let error = job["error"] as? String {
                throw DiskVaultError(.io, "the fleecing job of disk \(d.disk) failed in qemu (\(error)); no point was written", path: qmp.socketPath)
            }
            guard status == "running" || status == "ready" else {
                throw DiskVaultError(.io, "the fleecing job of disk \(d.disk) in qemu is \(status), not running; no point was written", path: qmp.socketPath)
            }
        }
    }

    private static func deleteExport(_ qmp: QMPClient, _ id: String) throws(DiskVaultError) {
        if case .success = try qmp.attempt("block-export-del", ["id": id, "mode": "hard"]) {
            _ = try qmp.waitForEvent("BLOCK_EXPORT_DELETED") { $0["id"] as? String == id }
        }
    }

    private static func cancelJob(_ qmp: QMPClient, _ id: String) throws(DiskVaultError) {
        if case .success = try qmp.attempt("block-job-cancel", ["device": id, "force": true]) {
            _ = try qmp.waitForEvent("BLOCK_JOB_CANCELLED") { $0["device"] as? String == id }
        }
    }

    /// Undoes every step taken, last first: exports, the NBD server, jobs, fleece nodes and their files. Each
    /// step is tried even when an earlier one failed; the first failure is returned (qemu gone: nothing is left
    /// to undo in it, and the files are still removed).
    @discardableResult
    func teardown() -> DiskVaultError? {
        var first: DiskVaultError? = nil
        func step(_ body: () throws(DiskVaultError) -> Void) {
            do { try body() } catch { if first == nil { first = error } }
        }
        for i in drives.indices where drives[i].exported {
            step { () throws(DiskVaultError) in try Self.deleteExport(qmp, drives[i].names.export) }
            drives[i].exported = false
        }
        if serverStarted {
            step { () throws(DiskVaultError) in _ = try qmp.attempt("nbd-server-stop") }
            serverStarted = false
        }
        if let socket { unlink(socket) }
        socket = nil
        for i in drives.indices where drives[i].jobStarted {
            step { () throws(DiskVaultError) in try Self.cancelJob(qmp, drives[i].names.job) }
            drives[i].jobStarted = false
        }
        for i in drives.indices {
            if drives[i].fleeceAdded {
                step { () throws(DiskVaultError) in _ = try qmp.attempt("blockdev-del", ["node-name": drives[i].names.fleeceNode]) }
                drives[i].fleeceAdded = false
            }
            if drives[i].fileNodeAdded {
                step { () throws(DiskVaultError) in _ = try qmp.attempt("blockdev-del", ["node-name": drives[i].names.fleeceFileNode]) }
                drives[i].fileNodeAdded = false
            }
            if let f = drives[i].fleeceFile { unlink(f) }
            drives[i].fleeceFile = nil
        }
        return first
    }
}
