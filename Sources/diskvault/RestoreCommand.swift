import ArgumentParser
import DiskVault

struct RestoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Restore a whole disk from a recovery point (there is no file-level restore).",
        discussion: """
            The disk is written beside the target, checked chunk by chunk, synced, and only then renamed into place. \
            The target is a new path, or with --replace an existing regular file; anything else (a device, a \
            directory, a symbolic link) is refused. --target - writes the whole disk, checked the same way, to \
            standard output (e.g. | dd of=/dev/sdX), with no re-attach files and the summary on standard error.

            --format qcow2 writes a sparse qcow2 through qemu (zero chunks stay unallocated); the re-attach files \
            name the format written. A point of a qcow2 that qemu encrypts restores as that same qcow2.

            Examples:
              diskvault restore --vault /backup/v --disk web --target /var/lib/libvirt/images/web-restored.qcow2 --format qcow2
              diskvault restore --vault /backup/v --disk web --point 20261201T021500Z-3f2a1b --target web.img
            """
    )

    @OptionGroup var vaultOptions: VaultOptions

    @Option(name: .long, help: "The protected disk.")
    var disk: String

    @Option(name: .long, help: "Point id, or latest.")
    var point: String = "latest"

    @Option(name: .long, help: "Path of the disk image to write, or - for standard output.")
    var target: String

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
        try DiskName.validate(disk)
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
}
