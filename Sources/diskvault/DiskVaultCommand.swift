import ArgumentParser
import DiskVault

struct DiskVaultCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diskvault",
        abstract: "Back up raw virtual-machine disk images into a deduplicating vault; restore whole disks.",
        discussion: """
            Exit status: 0 success, 1 a failure the message explains, 2 bad usage.
            --vault may come from DISKVAULT_VAULT.
            """,
        version: "0.1.0",
        subcommands: [VaultCommand.self, InspectCommand.self, BackupCommand.self, PointsCommand.self, RestoreCommand.self,
                      VerifyCommand.self, PruneCommand.self, GCCommand.self, JobsCommand.self, PolicyCommand.self,
                      ProtectCommand.self, VMCommand.self, RunDueCommand.self, ScheduleCommand.self, KeyVaultCommand.self, KeysCommand.self,
                      RepairCommand.self, CopyCommand.self, ServeCommand.self]
    )
}

/// Thrown by a command that has already printed its outcome and must exit non-zero (e.g. verify found damage).
struct CommandFailed: Error {
    var status: Int32
}

/// Options every command that touches a vault takes.
struct VaultOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The vault: a directory, or s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX] (credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY).", valueName: "vault"))
    var vault: String?

    @Option(name: .long, help: ArgumentHelp("File holding an encrypted vault's passphrase (else DISKVAULT_PASSPHRASE, or a prompt on a terminal).", valueName: "file"))
    var passphraseFile: String?

    init() {}

    init(vault: String, passphraseFile: String?) {
        self.vault = vault
        self.passphraseFile = passphraseFile
    }

    func open() throws -> Vault {
        let file = passphraseFile
        return try Vault.open(try location()) { () throws(DiskVaultError) -> [UInt8] in
            do {
                return try Passphrase.read(file: file, environment: "DISKVAULT_PASSPHRASE", prompt: "vault passphrase")
            } catch let e as DiskVaultError {
                throw e.code == .usage && file == nil ? Vault.noPassphrase : e
            } catch {
                throw DiskVaultError(.usage, "\(error)")
            }
        }
    }

    func location() throws -> String {
        if let vault, !vault.isEmpty { return vault }
        if let env = Environment.value("DISKVAULT_VAULT"), !env.isEmpty { return env }
        throw DiskVaultError(.usage, "no vault given: pass --vault VAULT or set DISKVAULT_VAULT")
    }
}

/// How a backup or restore reaches a key vault: as a principal with its credential file.
struct KeyVaultAccessOptions: ParsableArguments {
    @Option(name: .customLong("keyvault"), help: "The key vault holding the disk's keys.")
    var keyVault: String?

    @Option(name: .long, help: "The principal to act as in the key vault.")
    var principal: String?

    @Option(name: .long, help: "The principal's credential file (from keyvault access grant).")
    var credential: String?

    func access() throws -> KeyVaultAccess? {
        switch (keyVault, principal, credential) {
        case (nil, nil, nil): return nil
        case (let kv?, let p?, let c?): return KeyVaultAccess(keyVault: kv, principal: p, credential: c)
        default: throw DiskVaultError(.usage, "--keyvault, --principal and --credential go together")
        }
    }
}

struct OutputOptions: ParsableArguments {
    @Flag(name: .long, help: "Print one JSON object instead of text.")
    var json = false
}

struct ThreadOptions: ParsableArguments {
    @Option(name: .long, help: "Worker threads (default: one per core, and one more to cover disk waits).")
    var threads: Int?

    func count() throws -> Int {
        guard let threads else { return defaultThreadCount() }
        guard (1...256).contains(threads) else { throw DiskVaultError(.usage, "--threads must be from 1 to 256") }
        return threads
    }
}

