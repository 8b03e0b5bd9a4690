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
            commandName: "restore",
            abstract: "Put the key and secret a recovery point carries back into its key vault, or into a new one (needs restore permission).",
            discussion: """
                Into the key vault the point was backed up from, the key backup opens with the principal's credential. \
                Into another or a new key vault (the first one lost), it opens with the recovery passphrase of the \
                vault's escrow key, when the first key vault escrowed its keys to this vault (`diskvault keyvault \
                escrow add`); the keys and secrets keep their names, versions, tags and KEK wrapping.

                Examples:
                  diskvault keys restore --vault /backup/vault --disk web --keyvault /keys/kv --principal restorer --credential restorer.cred
                  diskvault keyvault init /keys/kv2 && diskvault keyvault access grant /keys/kv2 --principal restorer --keys set,restore,get,list --secrets set,restore,get,list --credential-out r2.cred
                  diskvault keys restore --vault /backup/vault --disk web --keyvault /keys/kv2 --principal restorer --credential r2.cred --recovery-passphrase-file recovery.pass
                """)
        @OptionGroup var vaultOptions: VaultOptions
        @Option(name: .long, help: "The disk whose keys to restore.") var disk: String
        @Option(name: .long, help: "Point id, or latest.") var point: String = "latest"
        @OptionGroup var keys: KeyVaultAccessOptions
        @Option(name: .long, help: ArgumentHelp("File holding the recovery passphrase of the vault's escrow key (only for another key vault than the point's; else DISKVAULT_RECOVERY_PASSPHRASE or a prompt).", valueName: "file"))
        var recoveryPassphraseFile: String?
        @OptionGroup var lock: LockOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            try DiskName.validate(disk)
            guard let access = try keys.access() else { throw DiskVaultError(.usage, "keys restore needs --keyvault, --principal and --credential") }
            let file = recoveryPassphraseFile
            let recovery: KeyRestore.RecoveryPassphrase = { () throws(DiskVaultError) -> [UInt8] in
                do { return try Passphrase.read(file: file, environment: "DISKVAULT_RECOVERY_PASSPHRASE", prompt: "recovery passphrase") } catch let e as DiskVaultError {
                    throw e.code == .usage && file == nil ? DiskVaultError(.usage, "these keys come from the vault's escrow: give its recovery passphrase with --recovery-passphrase-file or DISKVAULT_RECOVERY_PASSPHRASE") : e
                } catch { throw DiskVaultError(.usage, "\(error)") }
            }
            let result = try KeyRestore.run(vault: try vaultOptions.open(), disk: disk, point: point, access: access, recovery: recovery, control: lock.control)
            if output.json { printJSON(result); return }
            let from = result.fromEscrow ? " (from the vault's escrow)" : ""
            for item in result.restored { print("restored \(item) into key vault \(result.keyVault)\(from)") }
            for item in result.alreadyPresent { print("present  \(item)") }
        }
    }
}
