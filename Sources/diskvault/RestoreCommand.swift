import ArgumentParser
import DiskVault
import Foundation

struct RestoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Restore a whole disk from a recovery point (there is no file-level restore).",
        discussion: """
            The disk is written beside the target, checked chunk by chunk, synced, and only then renamed into place. \
            The target is a new path, or with --replace an existing regular file; anything else (a device, a \
            directory, a symbolic link) is refused. --target - writes the whole disk, checked the same way, to \
            standard output (e.g. | dd of=/dev/sdX), with no re-attach files and the summary on standard error.

            A target that is a block device (or a symbolic link to one, as /dev/disk/by-id names them) is written \
            in place: it must be at least the disk's size, used by no one (not mounted, not part of a device-mapper \
            or RAID device), and blank (blkid finds nothing) unless --replace; an encrypted disk goes only onto a \
            blank device. Zero chunks are punched out, so thin volumes stay thin; one flush at the end. A restore \
            that fails leaves the device partly written: restore again.

            --format qcow2 writes a sparse qcow2 through qemu (zero chunks stay unallocated); the re-attach files \
            name the format written. A point of a qcow2 that qemu encrypts restores as that same qcow2.

            --instant starts at once: it serves the point over NBD (diskvault serve, in the background), writes a \
            qcow2 overlay at the target with the export as its backing file, and the re-attach files; the VM boots \
            from the overlay, reading what it has not written from the point. `restore --finish T.qcow2` then copies \
            the rest into the overlay (qemu-img rebase; or, while a VM runs it, qemu's block-stream through \
            --qmp SOCKET --drive NODE), detaches it from the export and stops the export. The point never changes.

            Examples:
              diskvault restore --vault /backup/v --disk web --target /var/lib/libvirt/images/web-restored.qcow2 --format qcow2
              diskvault restore --vault /backup/v --disk web --target /dev/disk/by-id/nvme-spare --replace
              diskvault restore --vault /backup/v --disk web --target /var/lib/libvirt/images/web.qcow2 --instant
              diskvault restore --finish /var/lib/libvirt/images/web.qcow2 --qmp /run/web.qmp --drive drive0
              diskvault restore --vault /backup/v --disk web --point 20261201T021500Z-3f2a1b --target web.img
            """
    )

    @OptionGroup var vaultOptions: VaultOptions

    @Option(name: .long, help: "The protected disk.")
    var disk: String?

    @Option(name: .long, help: "Point id, or latest.")
    var point: String = "latest"

    @Option(name: .long, help: "Path of the disk image to write, a block device, or - for standard output.")
    var target: String?

    @Flag(name: .long, help: "Start at once: serve the point over NBD and write a qcow2 overlay backed by it at the target.")
    var instant = false

    @Option(name: .long, help: ArgumentHelp("Finish the instant restore into this overlay: copy the rest in, stop the export.", valueName: "overlay"))
    var finish: String?

    @Option(name: .long, help: ArgumentHelp("With --finish: the QMP socket of the VM that runs the overlay.", valueName: "socket"))
    var qmp: String?

    @Option(name: .long, help: ArgumentHelp("With --qmp: the VM's node name (or device) of the overlay.", valueName: "node"))
    var drive: String?

    @Option(name: .long, help: "The format to write: raw or qcow2 (default: the point's own; raw for a disk).")
    var format: String?

    @Flag(name: .long, help: "Restore over an existing image at the target.")
    var replace = false

    @OptionGroup var keys: KeyVaultAccessOptions

    @Option(name: .long, help: "Write the disk's key (BEK, unwrapped) to this new file, mode 0600.")
    var exportKey: String?

    @OptionGroup var threads: ThreadOptions
    @OptionGroup var lock: LockOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        if let finish {
            guard disk == nil, target == nil, !instant else { throw DiskVaultError(.usage, "--finish takes the overlay alone (with --qmp and --drive when a VM runs it)") }
            let done = try InstantRestore.finish(target: finish, qmp: qmp, drive: drive)
            if output.json { printJSON(done); return }
            print("finished the instant restore of disk \(done.disk) point \(done.point) into \(done.target) (\(done.through), \(seconds(done.seconds))): it stands alone, and the export is stopped")
            return
        }
        guard qmp == nil, drive == nil else { throw DiskVaultError(.usage, "--qmp and --drive go with --finish") }
        guard let disk else { throw DiskVaultError(.usage, "give --disk (the protected disk to restore)") }
        guard let target else { throw DiskVaultError(.usage, "give --target (where the disk goes)") }
        try DiskName.validate(disk)
        if instant { return try runInstant(disk: disk, target: target) }
        let toStream = target == RestoreOptions.standardOutput
        if toStream && output.json {
            throw DiskVaultError(.usage, "--json cannot be used with --target -: standard output carries the disk")
        }
        let vault = try vaultOptions.open()
        var options = RestoreOptions(disk: disk, point: point, target: target)
        options.replace = replace
        options.threads = try threads.count()
        options.keyVault = try keys.access()
        options.exportKey = exportKey
        if let format {
            guard let f = ImageFormat(rawValue: format), f == .raw || f == .qcow2 else {
                throw DiskVaultError(.usage, "--format \(format): a restore writes raw or qcow2")
            }
            options.format = f
        }
        let restore = Restore(vault: vault, options: options)
        let result = try withProgress("restore \(disk)") { progress in
            restore.observer = progress
            return try restore.run(lock.control)
        }
        for warning in result.warnings { Terminal.warning(warning) }
        if toStream {
            Terminal.raw("restored disk \(result.disk) point \(result.point) to standard output (\(ByteCount.format(result.size)) in \(seconds(result.seconds)))")
            for key in result.exportedKeys { Terminal.raw("  key      \(key)") }
            return
        }
        if output.json {
            printJSON(result)
            return
        }
        print("""
            restored disk \(result.disk) point \(result.point) to \(result.target)\(result.format.map { " (\($0))" } ?? "")
              size     \(ByteCount.format(result.size)) in \(seconds(result.seconds)) (\(rate(result.size, result.seconds))), \(ByteCount.format(result.holeBytes)) left as holes
              attach   \(result.attachFiles.joined(separator: ", "))
            """)
        for key in result.exportedKeys { print("  key      \(key)") }
    }

    private func runInstant(disk: String, target: String) throws {
        guard exportKey == nil else { throw DiskVaultError(.usage, "--export-key does not apply to --instant (restore the disk whole to export its key)") }
        let vault = try vaultOptions.open()
        var options = RestoreOptions(disk: disk, point: point, target: target)
        options.keyVault = try keys.access()
        options.format = try format.map { f throws -> ImageFormat in
            guard let v = ImageFormat(rawValue: f) else { throw DiskVaultError(.usage, "--format \(f): --instant writes qcow2") }
            return v
        }
        // The export is this program's own serve, with the same vault, passphrase and key vault.
        var serve = [Self.executable, "serve", "--vault", try vaultOptions.location(), "--disk", disk]
        if let f = vaultOptions.passphraseFile { serve += ["--passphrase-file", FileSystem.absolutePath(f)] }
        if let a = options.keyVault {
            serve += ["--keyvault", FileSystem.absolutePath(a.keyVault), "--principal", a.principal, "--credential", FileSystem.absolutePath(a.credential)]
        }
        let started = try InstantRestore.start(vault, options: options, serveArguments: serve)
        if output.json { printJSON(started); return }
        let s = started.state
        print("""
            instant restore of disk \(s.disk) point \(s.point): \(s.target) is ready (\(ByteCount.format(started.size)))
              overlay  \(s.target) (qcow2; reads what it lacks from \(s.uri))
              export   pid \(s.pid), log \(s.log)
              attach   \(started.attachFiles.joined(separator: ", "))
            start the VM from the overlay now; its writes stay in the overlay. Then copy the rest in and stop the export:
              diskvault restore --finish \(s.target)                 (no VM running it)
              diskvault restore --finish \(s.target) --qmp SOCKET --drive NODE   (a VM runs it)
            """)
    }

    /// This program, as the kernel knows it.
    static var executable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }
}
