import Foundation

/// What a live backup of a running VM is asked to do.
public struct LiveBackupOptions: Sendable {
    /// qemu's QMP socket.
    public var qmp: String
    /// Each disk to back up and the drive that holds it (a node name, a QOM path, or a qdev id).
    public var drives: [(disk: String, drive: String)]
    /// What each disk's backup shares: retention, trigger, policy, threads, key vault.
    public var base: BackupOptions
    /// Read every chunk even when the dirty bitmap could be trusted.
    public var fullRead = false
    /// A full read after this many points (the first of N, then every Nth): trusting a change map forever would
    /// let one lost write live on in every later point.
    public var fullReadEvery = LiveBackupOptions.defaultFullReadEvery
    public static let defaultFullReadEvery = 7
    /// Run before the point in time is taken (freeze the guest's file systems) and after it (thaw them).
    public var freeze: String?
    public var thaw: String?
    public var hookTimeout: TimeInterval = 300
    /// Where the fleecing overlays and the NBD socket are made: a folder the qemu process can write.
    public var scratch: String
    /// The VM point the disk points belong to, for a VM backup.
    public var vm: Manifest.VMRef?

    public init(qmp: String, drives: [(disk: String, drive: String)], base: BackupOptions, scratch: String) {
        self.qmp = qmp
        self.drives = drives
        self.base = base
        self.scratch = scratch
    }

    /// TMPDIR, else /var/tmp.
    public static var defaultScratch: String {
        let t = ProcessInfo.processInfo.environment["TMPDIR"] ?? ""
        return t.isEmpty ? "/var/tmp" : t
    }
}

/// Backs up drives of a running qemu as of one instant, through QMP: a fleecing job per drive in one
/// transaction, each point read from its NBD export; incremental after the first, reading only what qemu's
/// dirty bitmap marks when the bitmap provably covers the time since the disk's previous point.
///
/// The bitmap chain per disk: the point records the bitmap that records writes since its instant. The next
/// backup freezes that bitmap and adds a new one in the same transaction as the fleecing job; once its point is
/// committed the frozen one is removed, else the new one is merged back into it, so no write is ever lost from
/// the chain. A run killed between leaves both, and the next run settles them the same way.
public final class LiveBackup {
    let vault: Vault
    let options: LiveBackupOptions
    public weak var observer: (any ProgressObserver)?
    /// What the run says beside its points: leftovers removed, why a read was full, hook results.
    public private(set) var notes: [String] = []
    public private(set) var warnings: [String] = []
    /// Runs once every disk's point is committed, still under the disks' locks (a VM point's record is written).
    var whenCommitted: (([Manifest]) throws(DiskVaultError) -> Void)?

    public init(vault: Vault, options: LiveBackupOptions) {
        self.vault = vault
        self.options = options
    }

    /// Per disk: what the run decided and did.
    struct DiskPlan {
        var disk: String
        var info: QemuDrive
        /// The disk's points, scanned under its lock (the backup takes them from here).
        var scan: PointScan
        var previous: RecoveryPoint? { scan.points.last }
        /// The bitmap trusted to cover every write since the previous point (frozen by the transaction).
        var trusted: String?
        var newBitmap: String
        var fullReason: String?
        var sinceFullRead: Int
        var committed = false
    }

    /// Runs the backup: one job per disk, each disk's lock held (taken in name order) and the vault shared.
    /// `holding` names disk locks the caller already holds (run-due holds the disk while it decides).
    public func run(_ control: JobControl = .init(), holding: [VaultLock.Kind] = []) throws(DiskVaultError) -> [Manifest] {
        let disks = options.drives.map(\.disk)
        for d in disks { try DiskName.validate(d) }
        guard Set(disks).count == disks.count else { throw DiskVaultError(.usage, "a disk is named twice") }
        let order = disks.indices.sorted { disks[$0] < disks[$1] }
        return try InterruptCleanup.deferring { () throws(DiskVaultError) -> [Manifest] in
            var manifests: [Manifest] = []
            func nest(_ k: Int) throws(DiskVaultError) {
                guard k < order.count else {
                    manifests = try perform(control)
                    try whenCommitted?(manifests)
                    return
                }
                let i = order[k]
                try Job.run(vault, kind: .backup, disk: disks[i], control: control, holding: holding) { (outcome) throws(DiskVaultError) in
                    try nest(k + 1)
                    outcome.bytes = manifests[i].source.size
                    outcome.point = manifests[i].id
                    outcome.warnings = warnings
                }
            }
            try nest(0)
            return manifests
        }
    }

    private func perform(_ control: JobControl) throws(DiskVaultError) -> [Manifest] {
        // A signal that came while the locks were awaited: nothing is set up yet.
        try InterruptCleanup.checkInterrupted()
        let qmp = try QMPClient(socket: options.qmp)
        defer { qmp.close() }
        let names = options.drives.map { LiveNames(disk: $0.disk, vaultID: vault.config.id) }
        let removed = try FleeceSession.clearLeftovers(qmp, names: names, scratch: options.scratch)
        if !removed.isEmpty { notes.append("removed what a killed run left in qemu: \(removed.joined(separator: ", "))") }
        let all = try FleeceSession.listDrives(qmp)
        var plans: [DiskPlan] = []
        for (disk, spec) in options.drives {
            let info = try FleeceSession.resolve(spec, in: all, qmp: qmp)
            if info.encrypted {
                throw DiskVaultError(.unsupported, "drive \(spec) is an image qemu decrypts (LUKS in qcow2): read live it would be plaintext, which diskvault never stores; back up the image file while the VM is stopped (it is kept as its encrypted container)", path: options.qmp)
            }
            if plans.contains(where: { $0.info.node == info.node }) {
                throw DiskVaultError(.usage, "drive \(spec) is given twice (node \(info.node))")
            }
            plans.append(try plan(disk: disk, info: info, qmp: qmp))
        }
        let session = FleeceSession(qmp: qmp, scratch: options.scratch, vaultID: vault.config.id, drives: plans.map { ($0.disk, $0.info) })
        var manifests: [Manifest] = []
        var began = false
        do {
            let frozen = plans.map { $0.fullReason == nil ? $0.trusted : nil }
            let (freezeStatus, thawStatus, uris) = try takePointInTime(session, plans: plans, exporting: frozen, began: &began)
            try InterruptCleanup.checkInterrupted()
            let consistency: ImageSource.Consistency = options.freeze != nil && freezeStatus == 0 ? .applicationConsistent : .liveConsistent
            for (i, plan) in plans.enumerated() {
                let m = try backUp(plan, uri: uris[i], frozen: frozen[i], consistency: consistency,
                                   freezeStatus: freezeStatus, thawStatus: thawStatus, session: session, control: control)
                plans[i].committed = true
                manifests.append(m)
            }
        } catch {
            finish(session, plans: plans, began: began)
            throw error
        }
        finish(session, plans: plans, began: began)
        return manifests
    }

    /// What the previous point says, and whether qemu still holds the bitmap it left: trusted only when the
    /// same qemu process, the same node and size, and the bitmap there and consistent.
    private func plan(disk: String, info: QemuDrive, qmp: QMPClient) throws(DiskVaultError) -> DiskPlan {
        let scan = try vault.scanPoints(disk: disk, now: options.base.now)
        let previous = scan.points.last
        let prefix = LiveNames(disk: disk, vaultID: vault.config.id).bitmapPrefix
        let ours = info.bitmaps.filter { $0.name.hasPrefix(prefix) }
        var reason: String? = nil
        var named: String? = nil
        if previous == nil {
            reason = "the first backup of the disk"
        } else if let live = previous?.manifest.live {
            if live.qemuPID != qmp.qemuPID || live.qemuStart != qmp.qemuStart || qmp.qemuStart == 0 {
                reason = "qemu was restarted since the previous point (its dirty bitmap went with it)"
            } else if live.node != info.node {
                reason = "the drive is node \(info.node) now, \(live.node) at the previous point"
            } else if previous?.manifest.source.size != info.size {
                reason = "the disk was resized since the previous point"
            } else {
                named = live.bitmap
            }
        } else {
            reason = "the previous point was not read from this running VM"
        }
        var trusted: String? = nil
        if let named {
            trusted = try settle(named: named, ours: ours, node: info.node, qmp: qmp, reason: &reason)
        } else {
            for b in ours { _ = try qmp.attempt("block-dirty-bitmap-remove", ["node": info.node, "name": b.name]) }
        }
        let since = previous?.manifest.live?.sinceFullRead ?? 0
        if reason == nil && options.fullRead { reason = "--full-read" }
        if reason == nil && since + 1 >= max(1, options.fullReadEvery) {
            reason = "a full read every \(options.fullReadEvery) points"
        }
        return DiskPlan(disk: disk, info: info, scan: scan, trusted: trusted, newBitmap: LiveNames(disk: disk, vaultID: vault.config.id).newBitmap(),
                        fullReason: reason, sinceFullRead: reason == nil ? since + 1 : 0)
    }

    /// Puts the disk's bitmaps in order before a run: the one the previous point names is kept, recording; a
    /// killed run's successor (which recorded writes while the named one was frozen) is merged into it; every
    /// other bitmap of the disk is removed. Returns the named bitmap if it can be trusted, else sets `reason`.
    private func settle(named: String, ours: [QemuDrive.Bitmap], node: String, qmp: QMPClient, reason: inout String?) throws(DiskVaultError) -> String? {
        let others = ours.filter { $0.name != named }
        guard let b = ours.first(where: { $0.name == named }) else {
            reason = "qemu no longer has the dirty bitmap \(named) the previous point left"
            for o in others { _ = try qmp.attempt("block-dirty-bitmap-remove", ["node": node, "name": o.name]) }
            return nil
        }
        if b.inconsistent || b.busy {
            reason = "the dirty bitmap \(named) is \(b.inconsistent ? "inconsistent" : "in use")"
            for o in ours where !o.busy { _ = try qmp.attempt("block-dirty-bitmap-remove", ["node": node, "name": o.name]) }
            return nil
        }
        var actions: [[String: Any]] = []
        if !b.recording {
            // Frozen by a run that never finished: its successor holds the writes since.
            let successors = others.filter(\.recording)
            guard !successors.isEmpty else {
                reason = "the dirty bitmap \(named) was frozen and nothing recorded the writes since"
                for o in ours { _ = try qmp.attempt("block-dirty-bitmap-remove", ["node": node, "name": o.name]) }
                return nil
            }
            actions.append(["type": "block-dirty-bitmap-merge", "data": ["node": node, "target": named, "bitmaps": successors.map(\.name)]])
            actions.append(["type": "block-dirty-bitmap-enable", "data": ["node": node, "name": named]])
            notes.append("the dirty bitmap of a run that did not finish was merged back into \(named)")
        }
        for o in others { actions.append(["type": "block-dirty-bitmap-remove", "data": ["node": node, "name": o.name]]) }
        if !actions.isEmpty { try qmp.execute("transaction", ["actions": actions]) }
        return named
    }

    /// The freeze hook, the transaction and the exports, the thaw hook (run whenever the freeze ran, whatever
    /// happened). Returns the hooks' statuses and each export's URI.
    private func takePointInTime(
        _ session: FleeceSession, plans: [DiskPlan], exporting frozen: [String?], began: inout Bool
    ) throws(DiskVaultError) -> (Int32?, Int32?, [String]) {
        let env = ["DISKVAULT_QMP": options.qmp, "DISKVAULT_DISKS": plans.map(\.disk).joined(separator: " ")]
        var freezeStatus: Int32? = nil
        if let freeze = options.freeze {
            let status = ExternalCommand.runHook(freeze, environment: env.merging(["DISKVAULT_HOOK": "freeze"]) { $1 }, timeout: options.hookTimeout)
            freezeStatus = status
            if status != 0 { warnings.append("the freeze hook exited with status \(status): the point is live-consistent, not application-consistent") }
        }
        var failure: DiskVaultError? = nil
        var uris: [String] = []
        do throws(DiskVaultError) {
            try InterruptCleanup.checkInterrupted()
            try session.begin(newBitmaps: plans.map(\.newBitmap), frozen: plans.map(\.trusted))
            began = true
            uris = try session.export(frozen: frozen)
        } catch {
            failure = error
        }
        var thawStatus: Int32? = nil
        if let thaw = options.thaw {
            let status = ExternalCommand.runHook(thaw, environment: env.merging(["DISKVAULT_HOOK": "thaw"]) { $1 }, timeout: options.hookTimeout)
            thawStatus = status
            if status != 0 { warnings.append("the thaw hook exited with status \(status)") }
        }
        if let failure { throw failure }
        return (freezeStatus, thawStatus, uris)
    }

    private func backUp(
        _ plan: DiskPlan, uri: String, frozen: String?, consistency: ImageSource.Consistency, freezeStatus: Int32?, thawStatus: Int32?,
        session: FleeceSession, control: JobControl
    ) throws(DiskVaultError) -> Manifest {
        let context = frozen.map { "qemu:dirty-bitmap:\($0)" }
        let client = try NBDClient.connect(uri: uri, contexts: context.map { [$0] } ?? [])
        defer { client.close() }
        guard client.size == plan.info.size else {
            throw DiskVaultError(.io, "qemu exports \(client.size) bytes for disk \(plan.disk), its drive has \(plan.info.size)", path: options.qmp)
        }
        let source = ImageSource(path: plan.info.file ?? "qemu node \(plan.info.node)", kind: .runningVM, size: client.size, file: nil, bytes: client, nbd: client)
        source.consistency = consistency
        var backupOptions = options.base
        backupOptions.disk = plan.disk
        backupOptions.live = Manifest.Live(
            qmp: options.qmp, qemuPID: session.qmp.qemuPID, qemuStart: session.qmp.qemuStart, node: plan.info.node, device: plan.info.device,
            bitmap: plan.newBitmap, read: plan.fullReason == nil ? .incremental : .full, reason: plan.fullReason,
            sinceFullRead: plan.sinceFullRead, freezeStatus: freezeStatus, thawStatus: thawStatus)
        backupOptions.vm = options.vm
        let backup = Backup(vault: vault, source: source, options: backupOptions)
        backup.observer = observer
        if let frozen { backup.changes = DirtyBitmapPlan(client: client, bitmap: frozen) }
        backup.scanned = plan.scan
        backup.beforeCommit = { () throws(DiskVaultError) in
            try InterruptCleanup.checkInterrupted()
            try session.checkJobs()
        }
        let manifest = try backup.runUnlocked()
        warnings += backup.warnings
        for w in backup.warnings { control.notice(w) }
        return manifest
    }

    /// Tears down what the run made in qemu, then settles each disk's bitmaps: the frozen one removed where the
    /// point was committed, the new one merged back into it where not (or removed, when nothing was trusted).
    private func finish(_ session: FleeceSession, plans: [DiskPlan], began: Bool) {
        if let e = session.teardown() { warnings.append("qemu could not undo every step of the backup: \(e.message)") }
        guard began else { return }
        let qmp = session.qmp
        for p in plans {
            var actions: [[String: Any]] = []
            if p.committed {
                if let old = p.trusted { actions.append(["type": "block-dirty-bitmap-remove", "data": ["node": p.info.node, "name": old]]) }
            } else if let old = p.trusted {
                actions.append(["type": "block-dirty-bitmap-merge", "data": ["node": p.info.node, "target": old, "bitmaps": [p.newBitmap]]])
                actions.append(["type": "block-dirty-bitmap-enable", "data": ["node": p.info.node, "name": old]])
                actions.append(["type": "block-dirty-bitmap-remove", "data": ["node": p.info.node, "name": p.newBitmap]])
            } else {
                actions.append(["type": "block-dirty-bitmap-remove", "data": ["node": p.info.node, "name": p.newBitmap]])
            }
            guard !actions.isEmpty else { continue }
            do {
                try qmp.execute("transaction", ["actions": actions])
            } catch {
                // The next run settles them (the previous point names the bitmap to keep).
                warnings.append("the dirty bitmaps of disk \(p.disk) could not be settled now (\(error.message)); the next backup settles them")
            }
        }
    }
}
