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
            """
    )

    @OptionGroup var vaultOptions: VaultOptions

    @Option(name: .long, help: "The protected disk.")
    var disk: String

    @Option(name: .long, help: "Point id, or latest.")
    var point: String = "latest"

    @Option(name: .long, help: "Path of the disk image to write, or - for standard output.")
    var target: String

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
            restored disk \(result.disk) point \(result.point) to \(result.target)
              size     \(ByteCount.format(result.size)) in \(seconds(result.seconds)) (\(rate(result.size, result.seconds))), \(ByteCount.format(result.holeBytes)) left as holes
              attach   \(result.attachFiles.joined(separator: ", "))
            """)
        for key in result.exportedKeys { print("  key      \(key)") }
    }
}
