import ArgumentParser
import DiskVault

struct KeysCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract: "Work with the keys backed up with recovery points.",
        subcommands: [Restore.self]
    )

    struct Restore: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Put the key and secret a recovery point carries back into its key vault (needs restore permission).")
        @OptionGroup var vaultOptions: VaultOptions
        @Option(name: .long) var disk: String
        @Option(name: .long, help: "Point id, or latest.") var point: String = "latest"
        @OptionGroup var keys: KeyVaultAccessOptions
        @OptionGroup var lock: LockOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            try DiskName.validate(disk)
            guard let access = try keys.access() else { throw DiskVaultError(.usage, "keys restore needs --keyvault, --principal and --credential") }
            let result = try KeyRestore.run(vault: try vaultOptions.open(), disk: disk, point: point, access: access, control: lock.control)
            if output.json { printJSON(result); return }
            for item in result.restored { print("restored \(item) into key vault \(result.keyVault)") }
            for item in result.alreadyPresent { print("present  \(item)") }
        }
    }
}
