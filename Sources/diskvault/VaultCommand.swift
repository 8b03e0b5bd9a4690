import ArgumentParser
import DiskVault

struct VaultCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vault",
        abstract: "Create and describe vaults.",
        subcommands: [VaultInit.self]
    )
}

struct VaultInit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a new vault in a new or empty directory."
    )

    @Argument(help: "Directory for the new vault.")
    var vault: String

    @Option(name: .long, help: "Chunk size: a power of two from 64KiB to 16MiB.")
    var chunkSize: String = "4MiB"

    @OptionGroup var output: OutputOptions

    func run() throws {
        guard let size = ByteCount.parse(chunkSize), size <= UInt64(Int.max) else {
            throw DiskVaultError(.usage, "cannot read chunk size \"\(chunkSize)\" (e.g. 4MiB, 1M, 65536)")
        }
        let created = try Vault.create(vault, chunkSize: Int(size))
        if output.json {
            printJSON(created.config)
        } else {
            print("created vault \(vault) (chunk size \(ByteCount.format(UInt64(created.config.chunkSize))), id \(created.config.id))")
        }
    }
}
