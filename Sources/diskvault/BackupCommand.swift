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
              diskvault backup --source nbd+unix:///img?socket=/run/exp.sock --vault /backup/v --disk web
              diskvault backup /dev/vg0/db --vault /backup/v --disk db --keyvault kv --principal ops --credential ops.cred
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

    @OptionGroup var threads: ThreadOptions
    @OptionGroup var lock: LockOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        try DiskName.validate(disk)
        var options = BackupOptions(disk: disk)
        options.now = Clock.now()
        if let retainUntil {
            guard let date = Timestamp.parse(retainUntil) else {
                throw DiskVaultError(.usage, "cannot read --retain-until \"\(retainUntil)\" (use YYYY-MM-DD or ISO 8601)")
            }
            guard date > options.now else { throw DiskVaultError(.usage, "--retain-until \(retainUntil) is in the past") }
            options.retainUntil = date
        }
        options.threads = try threads.count()
        options.keyVault = try keys.access()
        options.withoutKeys = withoutKeys
        if let declareEncrypted { options.declared = try LayoutReader.Declaration(parsing: declareEncrypted) }
        let vault = try vaultOptions.open()
        guard (image == nil) != (source == nil) else {
            throw DiskVaultError(.usage, "give the image to back up, or --source URI (one of them)")
        }
        if let source, !ImageSource.isNBDURI(source) {
            throw DiskVaultError(.usage, "--source \(source) is not an NBD URI (nbd://…, nbds://…, nbd+unix:///…?socket=…)")
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
        let s = manifest.stats
        print("""
            recovery point \(manifest.id) of disk \(manifest.disk)
              source   \(manifest.source.path) (\(manifest.source.kind.rawValue)\(formatSummary(manifest.source)), \(ByteCount.format(manifest.source.size)))
              taken    \(manifest.consistency?.rawValue ?? "cold")
              read     \(ByteCount.format(s.readBytes)) in \(seconds(s.seconds)) (\(rate(manifest.source.size, s.seconds))), holes skipped \(ByteCount.format(s.holeBytes))
              chunks   \(s.chunks): \(s.newChunks) new, \(s.reusedChunks) already in the vault, \(s.zeroChunks) zero
              stored   \(ByteCount.format(s.storedBytes)) for \(ByteCount.format(s.newBytes)) of new data (\(s.compressedChunks) chunks compressed)
            """)
        for link in (manifest.source.chain ?? []).dropFirst() { print("  backing  \(link.path) (\(link.format))") }
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
}

/// ", qcow2" for a format qemu read; ", qcow2 container" for one kept as its file.
func formatSummary(_ s: Manifest.Source) -> String {
    guard let f = s.format, f != .raw else { return "" }
    return s.contents == .container ? ", \(f.rawValue) container of \(ByteCount.format(s.fileSize ?? s.size))" : ", \(f.rawValue)"
}
