import Foundation

/// A VM's disks backed up as one: vms/<vm>/<id>.json lists each disk's point. Written after every disk point is
/// committed, so a VM point exists only when all its disks do; its disks are pruned as a unit (a disk point is
/// kept while any disk of its VM point is kept) and restored together.
public struct VMPoint: Codable, Sendable, Equatable {
    public static let currentVersion = 1

    public var version: Int
    public var vm: String
    public var id: String
    public var created: String
    /// Its place in the VM's commit order (ids made in the same second do not sort by time).
    public var sequence: Int
    /// The weakest consistency of its disks: live- or application-consistent when read from a running qemu in
    /// one transaction (every disk as of the same instant), cold when the VM was stopped.
    public var consistency: ImageSource.Consistency
    public var disks: [Member]

    public struct Member: Codable, Sendable, Equatable {
        /// The disk's name within the VM (os, data, vda).
        public var name: String
        /// The vault's disk holding it: <vm>.<name>.
        public var disk: String
        public var point: String
        public var size: UInt64
        /// The drive of the running qemu it was read from.
        public var drive: String?
    }

    static func prefix(_ vm: String) -> String { "vms/\(vm)" }
    static func key(_ vm: String, _ id: String) -> String { "vms/\(vm)/\(id).json" }

    /// The vault disk a VM's disk is kept as.
    public static func diskName(vm: String, disk: String) -> String { "\(vm).\(disk)" }

    /// Checks a record as every reader does: names valid, its members' disks those of this VM.
    func validate(file: String) throws(DiskVaultError) {
        func bad(_ why: String) -> DiskVaultError { DiskVaultError(.corrupt, "VM point record is damaged: \(why)", path: file) }
        guard version == Self.currentVersion else { throw bad("version \(version) is not known") }
        guard DiskName.isValid(vm), PointID.isValid(id) else { throw bad("its VM name or id is not valid") }
        guard !disks.isEmpty, disks.count <= 256 else { throw bad("it lists \(disks.count) disks") }
        guard sequence >= 1 else { throw bad("sequence \(sequence) is not positive") }
        for d in disks {
            guard DiskName.isValid(d.name), d.disk == Self.diskName(vm: vm, disk: d.name), PointID.isValid(d.point) else {
                throw bad("disk \(d.disk) is not one of VM \(vm)'s")
            }
        }
    }
}

extension Vault {
    /// Every VM with points, by name.
    public func vms() throws(DiskVaultError) -> [String] {
        try storage.list("vms").filter(DiskName.isValid).sorted()
    }

    /// The VM's points, oldest first; damaged records are skipped (`scanVMPoints` names them).
    public func vmPoints(_ vm: String) throws(DiskVaultError) -> [VMPoint] {
        try scanVMPoints(vm).points
    }

    /// The VM's points, oldest first, and the records that cannot be used (each with what is wrong): one
    /// damaged record never stops the others' listing, pruning or restore.
    public func scanVMPoints(_ vm: String) throws(DiskVaultError) -> (points: [VMPoint], damaged: [DamagedPoint]) {
        try DiskName.validate(vm)
        var out: [VMPoint] = []
        var damaged: [DamagedPoint] = []
        for name in try storage.list(VMPoint.prefix(vm)) where name.hasSuffix(".json") {
            let id = String(name.dropLast(5))
            guard PointID.isValid(id) else { continue }
            let key = VMPoint.key(vm, id)
            let file = "\(location)/\(key)"
            do throws(DiskVaultError) {
                let bytes = try storage.get(key, limit: 1 << 20)
                guard let p = try? JSONDecoder().decode(VMPoint.self, from: Data(bytes)) else {
                    throw DiskVaultError(.corrupt, "VM point record is damaged (not a VM point's JSON)", path: file)
                }
                try p.validate(file: file)
                guard p.vm == vm, p.id == id else { throw DiskVaultError(.corrupt, "VM point record names another VM or point", path: file) }
                out.append(p)
            } catch where error.code == .corrupt {
                damaged.append(DamagedPoint(disk: vm, id: id, problem: error.description))
            }
        }
        return (out.sorted { ($0.sequence, $0.id) < ($1.sequence, $1.id) }, damaged)
    }

    /// The VM point `id` ("latest": the newest).
    public func vmPoint(_ vm: String, id: String?) throws(DiskVaultError) -> VMPoint {
        let all = try vmPoints(vm)
        let found = (id == nil || id == "latest") ? all.last : all.first { $0.id == id }
        guard let found else {
            throw DiskVaultError(.notFound, all.isEmpty ? "VM \(vm) has no points in vault" : "VM \(vm) has no point \(id ?? "")", path: location)
        }
        return found
    }

    func saveVMPoint(_ p: VMPoint) throws(DiskVaultError) {
        try storage.barrier()
        try storage.replace(VMPoint.key(p.vm, p.id), try JSON.encode(p))
    }

    /// Removes VM point records whose disk points are all gone (pruned or forgotten); their ids.
    func removeEmptyVMPoints() throws(DiskVaultError) -> [String] {
        var removed: [String] = []
        for vm in try vms() {
            for p in try vmPoints(vm) {
                var left = 0
                for m in p.disks where try storage.list(RecoveryPoint.prefix(disk: m.disk)).contains(m.point) { left += 1 }
                if left == 0 {
                    try storage.delete(VMPoint.key(vm, p.id))
                    removed.append("\(vm)@\(p.id)")
                }
            }
            if try storage.list(VMPoint.prefix(vm)).isEmpty { try? storage.delete(VMPoint.prefix(vm)) }
        }
        return removed
    }
}

/// Backs up a VM's disks as one point: drives of a running qemu in one transaction (`LiveBackup`), or the
/// image files of a stopped VM one after the other (each refused if a VM holds it).
public enum VMBackup {
    public struct Result: Codable, Sendable {
        public var point: VMPoint
        public var manifests: [Manifest]
        public var notes: [String]
        public var warnings: [String]
    }

    /// The disks of a running qemu: `names` maps a VM disk name to a drive; empty means every drive, each named
    /// by its qdev id (vda) or else its node name.
    public static func live(
        _ vault: Vault, vm: String, qmp: String, names: [(name: String, drive: String)], options: LiveBackupOptions,
        observer: (any ProgressObserver)?, control: JobControl
    ) throws(DiskVaultError) -> Result {
        try DiskName.validate(vm)
        var chosen = names
        if chosen.isEmpty {
            let client = try QMPClient(socket: qmp)
            let drives = try FleeceSession.listDrives(client)
            client.close()
            guard !drives.isEmpty else { throw DiskVaultError(.notFound, "qemu has no drive with a medium", path: qmp) }
            chosen = drives.map { d in
                let id = d.device.flatMap { dev -> String? in
                    let parts = dev.split(separator: "/")
                    return parts.count >= 3 && parts[0] == "machine" && parts[1] == "peripheral" ? String(parts[2]) : nil
                }
                return (id ?? d.node, d.node)
            }
        }
        for c in chosen { try DiskName.validate(c.name) }
        let now = options.base.now
        let id = RecoveryPoint.newID(at: now)
        var o = options
        o.qmp = qmp
        o.drives = chosen.map { (VMPoint.diskName(vm: vm, disk: $0.name), $0.drive) }
        o.vm = Manifest.VMRef(name: vm, point: id)
        let backup = LiveBackup(vault: vault, options: o)
        backup.observer = observer
        var point: VMPoint? = nil
        backup.whenCommitted = { (manifests) throws(DiskVaultError) in
            point = try record(vault, vm: vm, id: id, now: now, manifests: manifests, names: chosen.map(\.name), drives: chosen.map(\.drive))
        }
        let manifests = try backup.run(control)
        return Result(point: point!, manifests: manifests, notes: backup.notes, warnings: backup.warnings)
    }

    /// The image files of a stopped VM, each read cold under qemu's locks (a VM that runs is refused).
    public static func stopped(
        _ vault: Vault, vm: String, images: [(name: String, image: String)], options: BackupOptions,
        observer: (any ProgressObserver)?, control: JobControl
    ) throws(DiskVaultError) -> Result {
        try DiskName.validate(vm)
        guard !images.isEmpty else { throw DiskVaultError(.usage, "name the VM's disks: --disk NAME=IMAGE (or --qmp for a running VM)") }
        for c in images { try DiskName.validate(c.name) }
        guard Set(images.map(\.name)).count == images.count else { throw DiskVaultError(.usage, "a disk is named twice") }
        let id = RecoveryPoint.newID(at: options.now)
        // Every image opened (and its locks taken) before any is read: the VM cannot start in between.
        var sources: [ImageSource] = []
        for c in images { sources.append(try ImageSource.open(c.image)) }
        var manifests: [Manifest] = []
        var warnings: [String] = []
        for (c, source) in zip(images, sources) {
            var o = options
            o.disk = VMPoint.diskName(vm: vm, disk: c.name)
            o.vm = Manifest.VMRef(name: vm, point: id)
            let backup = Backup(vault: vault, source: source, options: o)
            backup.observer = observer
            manifests.append(try backup.run(control))
            warnings += backup.warnings
        }
        let point = try record(vault, vm: vm, id: id, now: options.now, manifests: manifests, names: images.map(\.name), drives: images.map { _ in nil })
        return Result(point: point, manifests: manifests, notes: [], warnings: warnings)
    }

    private static func record(
        _ vault: Vault, vm: String, id: String, now: Date, manifests: [Manifest], names: [String], drives: [String?]
    ) throws(DiskVaultError) -> VMPoint {
        let order: [ImageSource.Consistency] = [.crashConsistent, .liveConsistent, .applicationConsistent, .cold]
        let weakest = manifests.map { $0.consistency ?? .cold }.min { (order.firstIndex(of: $0) ?? 0) < (order.firstIndex(of: $1) ?? 0) } ?? .cold
        let members = zip(zip(names, drives), manifests).map { pair, m in
            VMPoint.Member(name: pair.0, disk: m.disk, point: m.id, size: m.source.size, drive: pair.1)
        }
        let sequence = (try vault.vmPoints(vm).map(\.sequence).max() ?? 0) + 1
        let point = VMPoint(version: VMPoint.currentVersion, vm: vm, id: id, created: Timestamp.format(now), sequence: sequence,
                            consistency: weakest, disks: members)
        try vault.saveVMPoint(point)
        return point
    }
}
