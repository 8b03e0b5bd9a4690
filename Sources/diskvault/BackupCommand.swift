import ArgumentParser
import DiskVault
import Foundation

struct BackupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Back up a raw disk image (file, block device, or - for standard input) as a new recovery point."
    )

    @Argument(help: "The image: a file, a block device, or - for standard input.")
    var image: String

    @OptionGroup var vaultOptions: VaultOptions

    @Option(name: .long, help: "Name of the protected disk (letters, digits, '.', '_', '-').")
    var disk: String

    @Option(name: .long, help: "Keep this point until the date (YYYY-MM-DD or ISO 8601), whatever the policy.")
    var retainUntil: String?

    @Option(name: .long, help: "Treat volumes without a header as encrypted (dm-crypt plain, detached LUKS header): disk, all, or partition numbers (1,3).")
    var declareEncrypted: String?

    @OptionGroup var keys: KeyVaultAccessOptions

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
        let source = try ImageSource.open(image)
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
              source   \(manifest.source.path) (\(manifest.source.kind.rawValue), \(ByteCount.format(manifest.source.size)))
              read     \(ByteCount.format(s.readBytes)) in \(seconds(s.seconds)) (\(rate(manifest.source.size, s.seconds))), holes skipped \(ByteCount.format(s.holeBytes))
              chunks   \(s.chunks): \(s.newChunks) new, \(s.reusedChunks) already in the vault, \(s.zeroChunks) zero
              stored   \(ByteCount.format(s.storedBytes)) for \(ByteCount.format(s.newBytes)) of new data (\(s.compressedChunks) chunks compressed)
            """)
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
