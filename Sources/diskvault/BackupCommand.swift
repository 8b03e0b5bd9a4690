import ArgumentParser
import DiskVault
import Foundation

struct BackupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Back up a disk image (file, block device, NBD export, or - for standard input) as a new recovery point.",
        discussion: """
            A qcow2 (or qed, vmdk, vdi, vhdx, vpc) is recognised by its header and read as the VM sees it, backing \
            files included, through a qemu-nbd that diskvault starts on a private socket: only allocated data is read, \
            and the point shares every chunk with a raw copy of the same disk. A qcow2 that qemu encrypts (LUKS) is \
            kept as its container, never decrypted; its key must come from the key vault like any encrypted disk's.

            Examples:
              diskvault backup vm.qcow2 --vault /backup/v --disk web
              diskvault backup --vault /backup/v --disk web      # a protected disk: its source and key vault
              diskvault backup --source nbd+unix:///img?socket=/run/exp.sock --vault /backup/v --disk web
              diskvault backup /dev/vg0/db --vault /backup/v --disk db --keyvault kv --principal ops --credential ops.cred
              diskvault backup --qmp /run/vm/web.qmp --drive vda --vault /backup/v --disk web \\
                  --freeze 'virsh domfsfreeze web' --thaw 'virsh domfsthaw web'

            A running VM (--qmp) is read through qemu as of one instant: a fleecing job holds the disk as it was when \
            the backup started while the guest goes on writing. After its first point, a disk is read incrementally: \
            only what qemu's dirty bitmap says the guest wrote since the previous point is read; the rest is taken \
            from that point. A full read is made when the bitmap cannot be trusted (qemu restarted, the disk \
            resized), with --full-read, and every --full-read-every points.
            """
    )

    @Argument(help: "The image: a file, a block device, an NBD URI (nbd://…, nbd+unix:///…?socket=…), or - for standard input.")
    var image: String?

    @Option(name: .long, help: "Read an NBD export someone else serves (nbd://HOST[:PORT]/NAME or nbd+unix:///NAME?socket=PATH).")
    var source: String?

    @Option(name: .long, help: "The image's format, when its header should not decide: raw, qcow2, qed, vmdk, vdi, vhdx, vpc.")
    var format: String?

    @OptionGroup var vaultOptions: VaultOptions

    @Option(name: .long, help: "Name of the protected disk (letters, digits, '.', '_', '-').")
    var disk: String

    @Option(name: .long, help: "Keep this point until the date (YYYY-MM-DD or ISO 8601), whatever the policy.")
    var retainUntil: String?

    @Option(name: .long, help: "Treat volumes without a header as encrypted (dm-crypt plain, detached LUKS header): disk, all, or partition numbers (1,3).")
    var declareEncrypted: String?

    @OptionGroup var keys: KeyVaultAccessOptions

    @Flag(name: .long, help: "Back up a raw image or device that a running VM or another user holds for write: a crash-consistent point.")
    var allowLive = false

    @Flag(name: .long, help: "Back up an encrypted disk without backing up its keys (recorded in the point).")
    var withoutKeys = false

    @OptionGroup var live: LiveOptions

    @Option(name: .long, help: ArgumentHelp("With --qmp: the drive to back up (its node name, its device's QOM path, or its qdev id).", valueName: "drive"))
    var drive: String?

    @OptionGroup var threads: ThreadOptions
    @OptionGroup var lock: LockOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        try DiskName.validate(disk)
        var options = BackupOptions(disk: disk)
        options.now = Clock.now()
        options.retainUntil = try retainUntil.map { (text) throws(DiskVaultError) in try parseRetainUntil(text, now: options.now) }
        options.threads = try threads.count()
        options.keyVault = try keys.access()
        options.withoutKeys = withoutKeys
        if let declareEncrypted { options.declared = try LayoutReader.Declaration(parsing: declareEncrypted) }
        let vault = try vaultOptions.open()
        // A protected disk backed up on demand with no source given: as it is protected (its source, key vault
        // and declarations), a point of trigger on-demand.
        if image == nil, source == nil, live.qmp == nil, let protected = try vault.protectedDisks().first(where: { $0.disk == disk }) {
            guard format == nil, drive == nil, declareEncrypted == nil else {
                throw DiskVaultError(.usage, "disk \(disk) is protected: its source and declarations are its protection's (change them with protect add), or give the image")
            }
            try live.checkUnused()
            let manifest = try withProgress("backup \(disk)") { progress in
                try protected.backUp(vault, base: options, policy: try? vault.policy(protected.policy), control: lock.control, observer: progress)
            }
            if output.json { printJSON(manifest); return }
            print("disk \(disk) is protected: backed up from \(protected.source)")
            printSummary(manifest)
            return
        }
        if let qmp = live.qmp {
            guard image == nil && source == nil && format == nil && !allowLive else {
                throw DiskVaultError(.usage, "--qmp reads the drive through qemu: give no image, --source, --format or --allow-live with it")
            }
            guard let drive else { throw DiskVaultError(.usage, "--qmp needs --drive (a node name, QOM path or qdev id of the VM's drive)") }
            let backup = LiveBackup(vault: vault, options: try live.options(qmp: qmp, drives: [(disk, drive)], base: options))
            let manifests = try withProgress("backup \(disk)") { progress in
                backup.observer = progress
                return try backup.run(lock.control)
            }
            for w in backup.warnings { Terminal.warning(w) }
            if output.json {
                printJSON(manifests[0])
                return
            }
            for n in backup.notes { print(n) }
            printSummary(manifests[0])
            return
        }
        guard drive == nil else { throw DiskVaultError(.usage, "--drive goes with --qmp") }
        try live.checkUnused()
        guard (image == nil) != (source == nil) else {
            throw DiskVaultError(.usage, image == nil ? "give the image to back up, or --source URI (or protect disk \(disk) first: protect add)" : "give the image to back up, or --source URI (one of them)")
        }
        if let source, !ImageSource.isNBDURI(source) {
            throw DiskVaultError(.usage, "--source \(source) is not an NBD URI (nbd://…, nbds://…, nbd+unix:///…?socket=…)")
        }
        // A protected disk backed up from an image given by hand still reaches its keys through its protection's
        // key vault, unless another is given.
        if options.keyVault == nil, !withoutKeys, let protected = try vault.protectedDisks().first(where: { $0.disk == disk }) {
            options.keyVault = protected.keyVault
        }
        let forced = try format.map { (value) throws(DiskVaultError) in try ImageFormat.parse(option: value) }
        let source = try ImageSource.open(image ?? self.source!, format: forced, inUse: allowLive ? .allow : .refuse)
        // One backup of a disk at a time; backups share the vault with each other, not with gc.
        let backup = Backup(vault: vault, source: source, options: options)
        let manifest = try withProgress("backup \(disk)") { progress in
            backup.observer = progress
            return try backup.run(lock.control)
        }
        if output.json {
            printJSON(manifest)
            return
        }
        printSummary(manifest)
    }
}

/// A --retain-until date, which must be in the future.
func parseRetainUntil(_ text: String, now: Date) throws(DiskVaultError) -> Date {
    guard let date = Timestamp.parse(text) else {
        throw DiskVaultError(.usage, "cannot read --retain-until \"\(text)\" (use YYYY-MM-DD or ISO 8601)")
    }
    guard date > now else { throw DiskVaultError(.usage, "--retain-until \(text) is in the past") }
    return date
}

/// What a backup prints of its point.
func printSummary(_ manifest: Manifest) {
        let s = manifest.stats
        print("""
            recovery point \(manifest.id) of disk \(manifest.disk)
              source   \(manifest.source.path) (\(manifest.source.kind.rawValue)\(formatSummary(manifest.source)), \(ByteCount.format(manifest.source.size)))
              taken    \(manifest.consistency?.rawValue ?? "cold")\(liveSummary(manifest))
              read     \(ByteCount.format(s.readBytes)) in \(seconds(s.seconds)) (\(rate(manifest.source.size, s.seconds))), holes skipped \(ByteCount.format(s.holeBytes))
              chunks   \(s.chunks): \(s.newChunks) new, \(s.reusedChunks) already in the vault, \(s.zeroChunks) zero
              stored   \(ByteCount.format(s.storedBytes)) for \(ByteCount.format(s.newBytes)) of new data (\(s.compressedChunks) \(s.compressedChunks == 1 ? "chunk" : "chunks") compressed)
            """)
        for link in (manifest.source.chain ?? []).dropFirst() { print("  backing  \(link.path) (\(link.format))") }
        if let live = manifest.live, live.freezeStatus != nil || live.thawStatus != nil {
            let parts = [live.freezeStatus.map { "freeze exited \($0)" }, live.thawStatus.map { "thaw exited \($0)" }].compactMap { $0 }
            print("  hooks    \(parts.joined(separator: ", "))")
        }
        if let layout = manifest.layout {
            for v in layout.volumes where v.encryption.isEncrypted {
                print("  \(v.number == 0 ? "disk" : "volume \(v.number)")  \(summary(v.encryption))")
            }
            for w in layout.warnings + layout.volumes.flatMap({ $0.encryption.warnings ?? [] }) { Terminal.warning(w) }
        }
        for change in manifest.layoutChanges ?? [] { print("  changed  \(change)") }
        if let kb = manifest.keyBackup {
            for v in kb.volumes {
                print("  keys     \(v.number == 0 ? "disk" : "volume \(v.number)"): secret \(v.secret) v\(v.secretVersion)\(v.wrappedBy.map { " wrapped by \($0) v\(v.keyVersion ?? 0)" } ?? "") from key vault \(kb.keyVault), key \(v.check.rawValue)\(v.check == .fits ? " (\(v.checkDetail))" : ": \(v.checkDetail)")")
            }
        }
        if manifest.keyBackupWaived == true { Terminal.warning("encrypted disk backed up without its keys (--without-keys)") }
}

/// How a backup reads a running VM through qemu's QMP.
struct LiveOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Back up a running VM through its QMP socket (qemu -qmp unix:PATH,server=on,wait=off).", valueName: "socket"))
    var qmp: String?

    @Flag(name: .long, help: "With --qmp: read every chunk, even where qemu's dirty bitmap says nothing changed.")
    var fullRead = false

    @Option(name: .long, help: ArgumentHelp("With --qmp: a full read every N points (default 7).", valueName: "n"))
    var fullReadEvery: Int?

    @Option(name: .long, help: ArgumentHelp("With --qmp: a command run just before the point in time (freeze the guest's file systems); the point is application-consistent when it succeeds.", valueName: "command"))
    var freeze: String?

    @Option(name: .long, help: ArgumentHelp("With --qmp: a command run just after the point in time (thaw the guest), always run when --freeze ran.", valueName: "command"))
    var thaw: String?

    @Option(name: .long, help: ArgumentHelp("With --qmp: a folder qemu can write, for the fleecing overlay and the NBD socket (default $TMPDIR or /var/tmp).", valueName: "dir"))
    var scratch: String?

    func options(qmp: String, drives: [(disk: String, drive: String)], base: BackupOptions) throws -> LiveBackupOptions {
        var o = LiveBackupOptions(qmp: FileSystem.absolutePath(qmp), drives: drives, base: base,
                                  scratch: FileSystem.absolutePath(scratch ?? LiveBackupOptions.defaultScratch))
        o.fullRead = fullRead
        if let fullReadEvery {
            guard fullReadEvery >= 1 else { throw DiskVaultError(.usage, "--full-read-every must be at least 1") }
            o.fullReadEvery = fullReadEvery
        }
        o.freeze = freeze
        o.thaw = thaw
        return o
    }

    func checkUnused() throws {
        guard !fullRead && fullReadEvery == nil && freeze == nil && thaw == nil && scratch == nil else {
            throw DiskVaultError(.usage, "--full-read, --full-read-every, --freeze, --thaw and --scratch go with --qmp")
        }
    }
}

/// ", qcow2" for a format qemu read; ", qcow2 container" for one kept as its file.
func formatSummary(_ s: Manifest.Source) -> String {
    guard let f = s.format, f != .raw else { return "" }
    return s.contents == .container ? ", \(f.rawValue) container of \(ByteCount.format(s.fileSize ?? s.size))" : ", \(f.rawValue)"
}

/// For a running VM's point: how it was read (incremental, or full and why).
func liveSummary(_ m: Manifest) -> String {
    guard let live = m.live else { return "" }
    let read = live.read == .incremental
        ? "; incremental: \(ByteCount.format(m.stats.unchangedBytes ?? 0)) unchanged per qemu's dirty bitmap, not read"
        : "; full read (\(live.reason ?? "asked"))"
    return read
}
